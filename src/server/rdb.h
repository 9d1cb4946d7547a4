/* rdb.h - snapshots in Redis's RDB format, version 10: what redis-server
 * 7.0.15 writes and reads, so that real Redis (and its tools) load our
 * dumps and we load theirs.  docs/persistence.md describes the format
 * choices; this header is the API the rest of the server uses.
 *
 *   crc64.c       the CRC-64 (Jones) that ends every file
 *   rdb_io.c      the byte layer: a buffered writer over any sink (a file,
 *                 memory) and a buffered reader over a file or memory, with
 *                 Redis's length, string (integer, LZF), double and time
 *                 encodings, the running CRC, and errors that name the
 *                 offset and the problem
 *   rdb_packed.c  Redis's packed blobs: listpack (read and write), ziplist,
 *                 intset and zipmap (read), every byte checked
 *   rdb_save.c    values, keys and whole files out
 *   rdb_load.c    whole files in, into fresh databases that replace the
 *                 live ones only once the file checked out to its CRC
 *   persist.c     SAVE, BGSAVE (fork), LASTSAVE, save points, load at
 *                 start, SHUTDOWN's save, DEBUG RELOAD, INFO persistence
 *
 * For the parts that come later: an AOF rewrite with an RDB preamble
 * writes rdb_write_file() into its own rdb_out (aof_base 1) and reads the
 * preamble back with rdb_load_stream(), which stops right after the CRC
 * and says where (rdb_load_result.end_offset); a tamper-evident sidecar
 * sees every byte written, in order, through rdb_save_opts.observe, and
 * where each key's record starts and ends through rdb_save_opts.on_key;
 * DUMP / RESTORE are rdb_save_value() / rdb_load_value() around a type
 * byte, a version and a CRC. */
#ifndef INFERKV_RDB_H
#define INFERKV_RDB_H

#include "server.h"

#include <sys/types.h>

#define RDB_VERSION 10

/* Value types (the byte before a key). */
enum {
    RDB_TYPE_STRING = 0,
    RDB_TYPE_LIST = 1,
    RDB_TYPE_SET = 2,
    RDB_TYPE_ZSET = 3,   /* scores as text */
    RDB_TYPE_HASH = 4,
    RDB_TYPE_ZSET_2 = 5, /* scores as binary doubles */
    RDB_TYPE_MODULE = 6, /* pre-GA module values, refused */
    RDB_TYPE_MODULE_2 = 7,
    RDB_TYPE_HASH_ZIPMAP = 9,
    RDB_TYPE_LIST_ZIPLIST = 10,
    RDB_TYPE_SET_INTSET = 11,
    RDB_TYPE_ZSET_ZIPLIST = 12,
    RDB_TYPE_HASH_ZIPLIST = 13,
    RDB_TYPE_LIST_QUICKLIST = 14,
    RDB_TYPE_STREAM_LISTPACKS = 15,
    RDB_TYPE_HASH_LISTPACK = 16,
    RDB_TYPE_ZSET_LISTPACK = 17,
    RDB_TYPE_LIST_QUICKLIST_2 = 18,
    RDB_TYPE_STREAM_LISTPACKS_2 = 19,
};

/* Opcodes (bytes that are not value types). */
enum {
    RDB_OPCODE_FUNCTION2 = 245,
    RDB_OPCODE_FUNCTION_PRE_GA = 246,
    RDB_OPCODE_MODULE_AUX = 247,
    RDB_OPCODE_IDLE = 248,
    RDB_OPCODE_FREQ = 249,
    RDB_OPCODE_AUX = 250,
    RDB_OPCODE_RESIZEDB = 251,
    RDB_OPCODE_EXPIRETIME_MS = 252,
    RDB_OPCODE_EXPIRETIME = 253,
    RDB_OPCODE_SELECTDB = 254,
    RDB_OPCODE_EOF = 255,
};

/* Inside a module value (RDB_TYPE_MODULE_2): each item is preceded by one
 * of these, the value ends with RDB_MODULE_OPCODE_EOF. */
enum {
    RDB_MODULE_OPCODE_EOF = 0,
    RDB_MODULE_OPCODE_SINT = 1,
    RDB_MODULE_OPCODE_UINT = 2,
    RDB_MODULE_OPCODE_FLOAT = 3,
    RDB_MODULE_OPCODE_DOUBLE = 4,
    RDB_MODULE_OPCODE_STRING = 5,
};

/* Vector sets are the module type "vectorset", encoding version 1, as
 * inferkv.so registers it in a stock Redis (src/module/vsets.c): the value
 * is vset_save()'s bytes in string chunks of at most 1 MiB, then an empty
 * string.  Both servers read each other's records. */
#define RDB_VSET_MODULE_NAME "vectorset"
#define RDB_VSET_ENCVER 1
#define RDB_VSET_CHUNK (1u << 20)
/* A module id: nine characters of the name, six bits each, then ten bits
 * of encoding version. */
uint64_t rdb_module_id(const char *name9, unsigned encver);
/* The name and version of an id (name9 gets 10 bytes, NUL-terminated). */
void rdb_module_name(uint64_t id, char name9[10], unsigned *encver);

/* crc64.c */
uint64_t crc64(uint64_t crc, const void *p, size_t n);

/* ------------------------------------------------------------ rdb_io.c */

/* Where a writer's bytes go: 0, or -1 with errno set. */
typedef int (*rdb_sink_fn)(void *ud, const void *p, size_t n);
/* Sees every byte written, in file order (a sidecar hashing the file). */
typedef void (*rdb_observe_fn)(void *ud, const void *p, size_t n);

/* A buffered writer.  Errors are sticky: after the first failed write the
 * writer drops everything and `failed` holds errno, so that serializers
 * write straight through and check once at the end. */
typedef struct rdb_out {
    unsigned char *buf;
    size_t used, cap;
    rdb_sink_fn sink;
    void *sink_ud;
    rdb_observe_fn observe;
    void *observe_ud;
    uint64_t flushed;    /* bytes already handed to the sink */
    uint64_t crc;        /* over the flushed bytes */
    int checksum;        /* compute the CRC (rdbchecksum) */
    int compress;        /* LZF for strings longer than 20 bytes (rdbcompression) */
    int failed;          /* 0, or the errno of the first failure */
    unsigned char *lzf;  /* compression scratch */
    size_t lzf_cap;
} rdb_out;

/* A writer over sink; OK, or ERR when the buffer cannot be allocated. */
int rdbo_init(rdb_out *o, rdb_sink_fn sink, void *ud, int compress, int checksum);
void rdbo_release(rdb_out *o);
int rdbo_sink_fd(void *ud, const void *p, size_t n);   /* ud: int *fd */
int rdbo_sink_dstr(void *ud, const void *p, size_t n); /* ud: dstr * (appended) */
int rdbo_flush(rdb_out *o);                            /* OK or ERR */
uint64_t rdbo_offset(const rdb_out *o);                /* bytes written so far */
uint64_t rdbo_crc(rdb_out *o);                         /* flushes, then the CRC so far */
void rdbo_raw(rdb_out *o, const void *p, size_t n);
void rdbo_u8(rdb_out *o, unsigned v);
void rdbo_len(rdb_out *o, uint64_t len);
/* A string as Redis writes one: an integer encoding when the bytes are a
 * canonical 32-bit integer, LZF when compressing saves bytes, else raw. */
void rdbo_string(rdb_out *o, const void *p, size_t n);
void rdbo_string_ll(rdb_out *o, long long v); /* an integer value as a string */
void rdbo_ms(rdb_out *o, long long ms);       /* 8 bytes little-endian */
void rdbo_binary_double(rdb_out *o, double d);

/* A buffered reader over a file descriptor or memory.  Every read checks
 * that the bytes exist; the first failure records "offset N: problem" in
 * err and every later read fails too. */
typedef struct rdb_in {
    unsigned char *buf;     /* window (owned for fd input) */
    size_t pos, len, cap;
    size_t crc_pos;         /* window bytes before this are in crc */
    uint64_t base;          /* stream offset of buf[0] */
    uint64_t size;          /* total bytes, or UINT64_MAX when unknown */
    uint64_t crc;
    int fd;                 /* -1: memory */
    int checksum;           /* compute the CRC */
    int failed;
    char err[512];
    /* the key being read, named in messages ("key 'x' in db 0"); formatted
     * only when an error happens */
    const char *ctx_key;
    size_t ctx_klen;
    int ctx_db;
} rdb_in;

int rdbi_init_fd(rdb_in *in, int fd, int checksum, char *err, size_t errlen);
void rdbi_init_mem(rdb_in *in, const void *p, size_t n, int checksum);
void rdbi_release(rdb_in *in);
uint64_t rdbi_offset(const rdb_in *in);
uint64_t rdbi_remaining(const rdb_in *in);  /* UINT64_MAX when unknown */
uint64_t rdbi_crc(rdb_in *in);              /* CRC of every byte consumed */
/* Records the first error: "at offset <off>: <message>".  Returns ERR. */
int rdbi_fail(rdb_in *in, uint64_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rdbi_u8(rdb_in *in, unsigned *v);
int rdbi_bytes(rdb_in *in, void *dst, size_t n);
/* A length; *special gets the encoding number when the byte is a string
 * encoding (11xxxxxx) and special is not NULL, else that is an error. */
int rdbi_len(rdb_in *in, uint64_t *len, int *special);
/* A count of items that each take at least min_bytes: larger than the
 * rest of the file is an error, so hostile counts never size anything. */
int rdbi_count(rdb_in *in, uint64_t *n, unsigned min_bytes, const char *what);
int rdbi_ms(rdb_in *in, long long *ms);
int rdbi_u32le(rdb_in *in, uint32_t *v);
int rdbi_binary_double(rdb_in *in, double *d);
int rdbi_text_double(rdb_in *in, double *d); /* old format: length byte, text */

/* One string read by rdbi_string: p/len are valid until the next read on
 * the reader, unless `own` is set (the bytes are that dstr, which the
 * caller may keep by setting own to NULL).  Integer encodings are also
 * given as is_int/ll. */
typedef struct rdb_str {
    const char *p;
    size_t len;
    dstr own;
    int is_int;
    long long ll;
    char num[LL_STR_SIZE];
} rdb_str;
int rdbi_string(rdb_in *in, rdb_str *s);
void rdb_str_free(rdb_str *s);
/* The string as a dstr of its own (takes s->own when there is one). */
dstr rdb_str_take(rdb_str *s);
int rdbi_skip_string(rdb_in *in);

/* --------------------------------------------------------- rdb_packed.c */

/* One element of a packed blob: a string or an integer. */
typedef struct packed_ele {
    const unsigned char *s; /* NULL: an integer (v) */
    size_t len;
    long long v;
} packed_ele;

/* Readers check the whole blob up front (header, every entry, the end
 * byte, back lengths) and then iterate without further checks.  They
 * return OK, or ERR with the problem (and its offset in the blob) in err. */
typedef struct packed_iter {
    const unsigned char *p, *end;
    size_t count;
    int kind; /* 0 listpack, 1 ziplist */
} packed_iter;
int listpack_check(const unsigned char *p, size_t n, size_t *count, char *err, size_t errlen);
int ziplist_check(const unsigned char *p, size_t n, size_t *count, char *err, size_t errlen);
void packed_iter_init(packed_iter *it, const unsigned char *p, size_t n, int kind);
int packed_next(packed_iter *it, packed_ele *e); /* 1, or 0 at the end */
/* An element as text: integers are formatted into buf (LL_STR_SIZE). */
const char *packed_str(const packed_ele *e, char *buf, size_t *len);
int intset_check(const unsigned char *p, size_t n, size_t *count, char *err, size_t errlen);
long long intset_get(const unsigned char *p, size_t i);
/* zipmap (Redis < 2.6 small hashes): pairs field, value. */
int zipmap_check(const unsigned char *p, size_t n, size_t *pairs, char *err, size_t errlen);
typedef struct zipmap_iter {
    const unsigned char *p;
} zipmap_iter;
void zipmap_iter_init(zipmap_iter *it, const unsigned char *p);
int zipmap_next(zipmap_iter *it, const unsigned char **f, size_t *flen, const unsigned char **v, size_t *vlen);

/* A listpack being built (stream nodes). */
typedef struct lp_writer {
    dstr b;     /* NULL after an allocation failure */
    size_t count;
} lp_writer;
int lpw_init(lp_writer *w);
void lpw_int(lp_writer *w, long long v);
void lpw_str(lp_writer *w, const char *p, size_t len); /* canonical integers go in as integers */
/* Writes the header and end byte; the blob is w->b (the caller frees it).
 * ERR on OOM. */
int lpw_finish(lp_writer *w);

/* ----------------------------------------------------------- rdb_save.c */

typedef struct rdb_save_opts {
    int compress, checksum;
    int aof_base;              /* the aux field "aof-base": 1 in an AOF's base file */
    rdb_observe_fn observe;    /* every byte, in order (a sidecar) */
    void *observe_ud;
    /* each key record (expiry, type, key, value) as written: its db, key,
     * and byte range [off, off + len) in the file */
    void (*on_key)(void *ud, int db, const char *key, size_t klen, uint64_t off, uint64_t len);
    void *on_key_ud;
    /* every 1024 keys: how many were written (the fork child's report) */
    void (*progress)(void *ud, uint64_t keys);
    void *progress_ud;
    long long key_delay_us;    /* rdb-key-save-delay: sleep per key (tests) */
} rdb_save_opts;

/* The RDB type byte a value is written with. */
int rdb_value_type(const kobj *o);
/* The value only (no type, no key), as rdb_value_type says. */
void rdb_save_value(rdb_out *out, const kobj *o);
/* The whole file: header, aux fields, every database, EOF, CRC.  OK, or
 * ERR with errno's text in err. */
int rdb_write_file(rdb_out *out, const rdb_save_opts *opts, char *err, size_t errlen);
/* rdb_write_file into path via a temp file in the same directory, fsync,
 * rename: the old file stays whole until the new one is.  OK / ERR. */
int rdb_save_path(const char *path, const rdb_save_opts *opts, char *err, size_t errlen);

/* ----------------------------------------------------------- rdb_load.c */

enum {
    RDB_LOAD_KEEP_EXPIRED = 1 << 0, /* an AOF preamble: expired keys load too */
};

typedef struct rdb_load_result {
    kdb *dbs;              /* fresh databases (db_array_free) */
    int ndbs;
    long long loaded;      /* keys */
    long long expired;     /* keys skipped because their time had passed */
    long long empty;       /* empty collections skipped, as Redis does */
    int version;
    uint64_t end_offset;   /* just past the CRC: where an AOF's commands start */
    int functions_skipped; /* FUNCTION libraries (inferkv has no scripting) */
} rdb_load_result;

/* Reads one whole RDB from in, into fresh databases.  OK with res filled,
 * or ERR with "at offset N (context): problem" in err and nothing kept. */
int rdb_load_stream(rdb_in *in, int flags, rdb_load_result *res, char *err, size_t errlen);
/* rdb_load_stream on a file; *missing is set (and OK returned, with empty
 * databases) when the file does not exist. */
int rdb_load_path(const char *path, int flags, rdb_load_result *res, int *missing, char *err, size_t errlen);
/* One value of the given type (DUMP / RESTORE, module chunks); NULL with
 * the reader's error set.  *empty is set for an empty collection (NULL
 * returned, no error). */
kobj *rdb_load_value(rdb_in *in, int type, int *empty);

/* ----------------------------------------------------------- persist.c */

typedef struct persist_state {
    /* configuration */
    int compression;           /* rdbcompression */
    int checksum;              /* rdbchecksum */
    int stop_writes_on_error;  /* stop-writes-on-bgsave-error */
    long long key_save_delay;  /* rdb-key-save-delay, microseconds */
    int del_sync_files;        /* rdb-del-sync-files (accepted; no replication) */
    /* the background save */
    pid_t child;               /* -1: none */
    int child_kind;            /* PERSIST_CHILD_RDB / _AOF */
    int child_pipe;            /* read end of the child's report pipe */
    long long child_start_ms;
    long long dirty_at_fork;
    int scheduled;             /* BGSAVE SCHEDULE / in MULTI: start when possible */
    int last_bgsave_ok;
    long long last_bgsave_try; /* seconds */
    long long last_bgsave_secs;
    long long saves;           /* rdb_saves */
    size_t cow_current, cow_peak, cow_last;
    long long cow_updated_ms;
    unsigned long long keys_done, keys_total;
    long long last_fork_us, total_forks;
    size_t aof_cow_last;       /* aof_last_cow_size */
    /* the last load */
    long long load_loaded, load_expired;
} persist_state;
extern persist_state persist;

enum { PERSIST_CHILD_RDB = 0, PERSIST_CHILD_AOF = 1 };

void persist_init_defaults(void);
/* One fork child at a time, BGSAVE's or an AOF rewrite's: 0 in the child
 * (set up; it must end with _exit), the pid in the parent, -1 with err. */
pid_t persist_fork(int kind, char *err, size_t errlen);
/* In such a child, at the end: its copy-on-write size for INFO. */
void persist_child_final(void);
/* Loads dir/dbfilename (persist_load_at_start without an AOF). */
int persist_load_rdb_at_start(char *err, size_t errlen);
/* Loads dir/dbfilename at start.  OK (also when there is no file), or ERR
 * with the reason: the server must not start. */
int persist_load_at_start(char *err, size_t errlen);
void persist_cron(void);                /* child reaping, save points */
int persist_save_sync(char *err, size_t errlen);
int persist_bgsave(char *err, size_t errlen);
void persist_kill_child(void);          /* FLUSHALL, SHUTDOWN: the dump being written is dropped */
int persist_writes_denied(void);        /* stop-writes-on-bgsave-error applies */
void persist_after_flushall(void);      /* Redis saves at once when save points exist */
/* INFO text writers own s: on OOM they free it and return NULL. */
dstr persist_info(dstr s);              /* INFO persistence */
dstr persist_info_stats(dstr s);        /* fork lines of INFO stats */
void persist_debug_reload(client *c);   /* DEBUG RELOAD [NOSAVE] */
/* inferkv-server --check-rdb FILE: loads FILE as the server would (keys
 * whose time passed included), prints "OK ..." or the error with its
 * offset; the exit status (0 / 1).  Options are already applied. */
int persist_check_main(const char *path);
/* SHUTDOWN's save: flags are SHUTDOWN_*.  OK, or ERR when the save
 * failed and the shutdown must not go on. */
int persist_on_shutdown(int flags);

/* ---------------------------------------------------- persist_sidecar.c */

struct sidecar_writer;
extern int persist_sidecar_enabled; /* rdb-sidecar yes|no */
/* Before data_path is (re)written: removes its old sidecar and, with
 * rdb-sidecar yes, hangs a sidecar writer on opts (NULL otherwise). */
struct sidecar_writer *persist_sidecar_start(const char *data_path, rdb_save_opts *opts);
/* After: writes data_path.sidecar when ok, frees the writer. */
void persist_sidecar_finish(struct sidecar_writer *w, const char *data_path, int ok);
/* Before data_path is loaded (rdb-sidecar yes): checks it against its
 * sidecar and repairs it from parity when it can.  loads_whole (or NULL)
 * says whether the file is whole by its own checksum, which then wins over
 * a disagreeing sidecar.  OK (go on and load), or ERR with the blocks that
 * could not be repaired. */
int persist_rdb_loads_whole(const char *path); /* persist.c: loads_whole for an RDB */
int persist_sidecar_check(const char *data_path, int (*loads_whole)(const char *path), char *err, size_t errlen);

#endif
