/* aof.h - the write stream and the append-only file.
 *
 *   propagate.c   what every executed command changed, as commands whose
 *                 replay gives the same state (Redis's "propagation"): the
 *                 command's own argv, or a deterministic form a handler
 *                 puts in its place (SET ... PXAT for SET ... EX, SREM for
 *                 SPOP), plus the deletions the server makes by itself
 *                 (expiry, eviction).  The ops of one execution unit (a
 *                 command, an EXEC, a served blocked client) are handed on
 *                 together, wrapped in MULTI/EXEC when there are several.
 *   aof.c         Redis 7's multi-part AOF: the manifest, the base and
 *                 incremental files in appenddirname, appending and the
 *                 three fsync policies, BGREWRITEAOF, INFO fields
 *   aof_load.c    reading AOF files back: at start, and --check-aof
 *   aof_rewrite.c the base file in command form (aof-use-rdb-preamble no)
 *
 * Nothing here runs on engine threads: propagation, appending and loading
 * belong to the event loop, the rewrite to a fork child. */
#ifndef INFERKV_AOF_H
#define INFERKV_AOF_H

#include "server.h"

/* ------------------------------------------------------- propagate.c */

/* Arguments of one propagated command, built by a handler. */
typedef struct prop_args {
    dstr *v;
    int n, cap;
    int oom; /* an allocation failed: the op is lost, and the AOF says so */
} prop_args;

void pa_init(prop_args *a);
void pa_free(prop_args *a);
void pa_add(prop_args *a, const void *p, size_t len);
void pa_cstr(prop_args *a, const char *s);
void pa_dstr(prop_args *a, const dstr s);
void pa_ll(prop_args *a, long long v);

/* Whether anything consumes the stream (the AOF is on): handlers build
 * their deterministic forms only then. */
int prop_active(void);
/* Runs c->cmd for c (the dispatcher, EXEC, a served blocked client) and
 * propagates what it changed. */
void prop_call(client *c);
/* An execution unit that is not a command (active expiry, a completion on
 * the loop): ops between enter and exit are handed on together. */
void prop_enter(void);
void prop_exit(void);
/* Adds an op of its own (takes a's strings). */
void prop_emit(int dbid, prop_args *a);
/* The running command propagates a instead of its argv (takes a). */
void prop_replace(prop_args *a);
/* The running command propagates `NAME key [p/len] [opt] [ms]` (p NULL,
 * opt NULL, ms < 0: left out): the absolute forms of SET EX, EXPIRE,
 * GETEX, INCRBYFLOAT. */
void prop_replace_key(const char *name, const dstr key, const char *p, size_t len, const char *opt, long long ms);
/* The running command propagates nothing of itself (it emitted its own
 * ops, or changed nothing that replay must repeat). */
void prop_prevent(void);
/* DEL key in db (expiry, eviction). */
void prop_del(int dbid, const dstr key);

/* ------------------------------------------------------------- aof.c */

enum { AOF_OFF = 0, AOF_ON = 1, AOF_WAIT_REWRITE = 2 };
enum { AOF_FSYNC_NO = 0, AOF_FSYNC_ALWAYS = 1, AOF_FSYNC_EVERYSEC = 2 };

typedef struct aof_config {
    int appendonly;           /* appendonly yes|no */
    int fsync;                /* appendfsync */
    dstr filename;            /* appendfilename: a plain file name */
    dstr dirname;             /* appenddirname: a directory name inside dir */
    int use_rdb_preamble;     /* aof-use-rdb-preamble */
    int load_truncated;       /* aof-load-truncated */
    int timestamp_enabled;    /* aof-timestamp-enabled (accepted, no annotations) */
    int no_fsync_on_rewrite;  /* no-appendfsync-on-rewrite */
    int rewrite_incremental_fsync;
    long long auto_rewrite_perc;     /* auto-aof-rewrite-percentage */
    long long auto_rewrite_min_size; /* auto-aof-rewrite-min-size, bytes */
} aof_config;
extern aof_config aofcfg;

/* Whether propagated ops are wanted (the AOF is on or being turned on). */
int aof_feeding(void);
/* An op could not be built (out of memory): the file no longer matches the
 * dataset, so writes are refused until a rewrite succeeds. */
void aof_lost_op(void);
/* The ops of one execution unit, in order (propagate.c hands them on). */
void aof_feed(int dbid, int argc, const dstr *argv);
/* Writes the buffer (and fsyncs under always) before replies go out. */
void aof_flush_before_replies(void);
int aof_has_pending(void);
void aof_cron(void);
/* Writes are refused while the AOF cannot be written (aof_last_write_status
 * err): the error to send, or NULL. */
const char *aof_write_error(void);
/* Startup: appendonly yes loads the AOF (or the RDB when there is no AOF
 * yet) and opens it for appending.  OK, or ERR with the reason. */
int aof_load_at_start(char *err, size_t errlen);
/* DEBUG LOADAOF: the AOF flushed and synced, then the dataset replaced by
 * what its files load (into fresh databases: when they do not load, the
 * dataset stays and err says why - Redis 7.0 exits there).  OK or ERR. */
int aof_debug_reload(char *err, size_t errlen);
/* CONFIG SET appendonly: turn on (a rewrite writes the base) or off. */
int aof_set_enabled(int on, char *err, size_t errlen);
int aof_rewrite_background(char *err, size_t errlen);
/* The fork child finished (persist.c reaps it): ok, or the signal. */
void aof_rewrite_done(int ok, int bysignal);
void aof_on_shutdown(void);  /* flush and fsync what is buffered */
/* INFO text writers own s: on OOM they free it and return NULL. */
dstr aof_info(dstr s);       /* the aof_* lines of INFO persistence */
void aof_start_scheduled(void); /* the cron: a rewrite waiting for a BGSAVE to end */

/* ------------------------------------------------------- aof_load.c */

typedef struct aof_file_result {
    long long commands;
    uint64_t valid_up_to;   /* bytes that parsed whole */
    uint64_t size;
    int truncated;          /* the file ended inside a command or a MULTI */
    int preamble;           /* began with an RDB */
} aof_file_result;

/* Replays one AOF file (RDB preamble and/or commands) into the live
 * databases.  last: this is the last file, where a truncated tail may be
 * cut (aof-load-truncated).  OK or ERR with the reason. */
int aof_load_file(const char *path, int is_base, int last, aof_file_result *res, char *err, size_t errlen);
/* inferkv-server --check-aof PATH [--fix]: PATH a manifest, an AOF file or
 * the AOF directory.  Prints what it found; the exit status. */
int aof_check_main(const char *path, int fix);
/* aof.c: checks every file the manifest in aofcfg.dirname names, in
 * order, with check(path, is_base, last, fix); the exit status. */
int aof_check_dir(int fix, int (*check)(const char *path, int is_base, int last, int fix));

/* ---------------------------------------------------- aof_rewrite.c */

/* The dataset as commands (SELECT, SET, RPUSH, ..., PEXPIREAT) into out.
 * OK / ERR with out->failed set. */
struct rdb_out;
int aof_rewrite_commands(struct rdb_out *out);

#endif
