/* server.h - the types every part of inferkv-server shares.
 *
 * The server is one event-loop thread that owns the keyspace and the
 * clients (see DESIGN.md, threads and ownership).  This header declares:
 * the global `srv` state, clients and their buffers, value objects, the
 * databases, the command table, the reply writers, and the hooks a command
 * uses to block a client until a result arrives from another thread.  Each
 * group is implemented in its own file, named in the comment above it. */
#ifndef INFERKV_SERVER_H
#define INFERKV_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "core.h"
#include "ae.h"
#include "resp.h"

#define INFERKV_VERSION "7.0.15"      /* the Redis version we answer as */
#define INFERKV_OWN_VERSION "0.1.0"

#define OK 0
#define ERR (-1)

/* ------------------------------------------------------------ objects.c */
/* 5 is Redis's module type, left unused so that OBJ_VSET can keep its own
 * number when a generic module type arrives. */
enum obj_type {
    OBJ_STRING = 0, OBJ_LIST = 1, OBJ_SET = 2, OBJ_ZSET = 3, OBJ_HASH = 4, OBJ_STREAM = 6,
    OBJ_VSET = 7, /* t_vset.c: a vector set (libvset's vset*), TYPE "vectorset" */
};
#define OBJ_TYPE_MAX OBJ_VSET
enum obj_enc {
    ENC_RAW = 0,    /* string in its own dstr */
    ENC_INT = 1,    /* string that is a long long held in ptr */
    ENC_EMBSTR = 2, /* short string allocated together with the object */
    ENC_LIST = 3,   /* klist ring buffer */
    ENC_HT = 4,     /* dict (hash field->value, set member->NULL) */
    ENC_INTSET = 5, /* sorted int64 array for sets of integers */
    ENC_SKIPLIST = 6,
    ENC_PACKED = 7, /* small hash packed in one string (hpack.c) */
    ENC_STREAM = 8, /* stream.c: id-ordered nodes of entries */
    ENC_VSET = 9,   /* libvset's HNSW set; OBJECT ENCODING says "raw", as Redis
                     * does for every module type */
};
#define LRU_BITS 24
#define LRU_MAX ((1 << LRU_BITS) - 1)

/* An ENC_EMBSTR object has no `ptr`: its string (8-bit dstr header, bytes,
 * NUL) starts where `ptr` would be, so that a 12-byte value plus header fits
 * the allocator's 24-byte class.  Only objects.c reads string bytes (through
 * obj_str / obj_get_ll); never read `ptr` of a string that is not ENC_RAW or
 * ENC_INT. */
typedef struct kobj {
    unsigned type : 4;
    unsigned enc : 4;
    unsigned lru : LRU_BITS; /* seconds clock of last access */
    int refcount;
    void *ptr;
} kobj;

kobj *obj_new(int type, int enc, void *ptr);
kobj *obj_string(const char *p, size_t len); /* picks int/embstr/raw */
kobj *obj_string_ll(long long v);
kobj *obj_string_dstr(dstr s);                /* takes ownership */
void obj_decref(kobj *o);
void obj_free_value(void *o);                 /* dict val destructor */
/* Borrowed view of a string object's bytes (ints are formatted into buf). */
const char *obj_str(const kobj *o, char buf[LL_STR_SIZE], size_t *len);
size_t obj_strlen(const kobj *o);
/* A fresh dstr copy of a string object's bytes; NULL on OOM. */
dstr obj_to_dstr(const kobj *o);
/* Makes a string object privately writable as ENC_RAW; NULL on OOM. */
kobj *obj_unshare_string(kobj *o);
int obj_get_ll(const kobj *o, long long *out);
const char *obj_type_name(int type);
const char *obj_enc_name(const kobj *o);
kobj *obj_dup(const kobj *o);                 /* deep copy, NULL on OOM */
size_t obj_stream_memory(const kobj *o);      /* bytes held by a stream value */
struct vset;
/* A vector-set object taking the key's reference on s; NULL on OOM (s is
 * then still the caller's). */
kobj *obj_vset(struct vset *s);

/* ------------------------------------------------------------------ db.c */
typedef struct kdb {
    dict *keys;    /* dstr -> kobj* */
    dict *expires; /* same key pointer -> s64 unix ms */
    int id;
    long long avg_ttl;
    unsigned long expire_cursor;
} kdb;

#define LOOKUP_NONE 0
#define LOOKUP_NOTOUCH 1  /* do not update the LRU clock (TYPE, OBJECT...) */
#define LOOKUP_WRITE 2

struct client;
kobj *db_lookup(kdb *db, const dstr key, int flags);
kobj *db_lookup_read(struct client *c, const dstr key);
kobj *db_lookup_read_flags(struct client *c, const dstr key, int flags);
kobj *db_lookup_write(struct client *c, const dstr key);
/* Adds a key that must not exist; takes the object.  OK or ERR (OOM). */
int db_add(kdb *db, const dstr key, kobj *val);
int db_add_unsignalled(kdb *db, const dstr key, kobj *val); /* WATCH untouched: the caller signals */
/* Overwrites (or adds); clears the TTL unless keep_ttl. */
int db_set(kdb *db, const dstr key, kobj *val, int keep_ttl);
/* Replaces the value of an existing key, keeping its TTL. */
void db_replace(kdb *db, dict_entry *de, kobj *val);
int db_delete(kdb *db, const dstr key);
int db_exists(kdb *db, const dstr key);
/* The key's expire time (it must exist): ERR when out of memory, the
 * key then keeping the deadline it had. */
int db_set_expire(kdb *db, const dstr key, long long when_ms);
/* db_set (no keep_ttl) and then, when_ms >= 0, the expire time: all or
 * nothing - ERR when out of memory with nothing changed and val still the
 * caller's; OK with val consumed. */
int db_set_ttl(kdb *db, const dstr key, kobj *val, long long when_ms);
long long db_get_expire(kdb *db, const dstr key); /* -1 if none */
int db_remove_expire(kdb *db, const dstr key);
int db_expire_if_needed(kdb *db, const dstr key);
long long db_flush(kdb *db);
int db_init_all(char *err, size_t errlen);
/* Whole sets of n databases, for loading (rdb_load.c): a fresh array
 * (NULL on OOM), its release, and moving one into the live databases
 * (srv.dbnum of them; the array is freed). */
kdb *db_array_new(int n);
void db_array_free(kdb *dbs, int n);
void db_array_install(kdb *dbs);
/* For a loader that fills the live databases in place (DEBUG LOADAOF):
 * take swaps empty databases in and returns the old contents (NULL when
 * out of memory: nothing changed); put_back undoes it, freeing what was
 * loaded meanwhile.  On success the caller frees the old ones
 * (db_array_free). */
kdb *db_array_take(void);
void db_array_put_back(kdb *old);
kdb *db_get(int id);
int db_swap(int a, int b);
void db_active_expire_cycle(int fast);
void db_cron(void);
/* WRONGTYPE check helper: 1 if o is non-NULL and of another type (and
 * replies the error). */
int db_check_type(struct client *c, kobj *o, int type);
/* Called when a key's value changes (for future WATCH and notifications). */
void db_signal_modified(kdb *db, const dstr key);

/* ---------------------------------------------------------- t_list.c etc */
typedef struct klist klist; /* t_list.c: ring buffer of dstr */
klist *klist_new(void);
void klist_free(klist *l);
size_t klist_len(const klist *l);
dstr klist_get(const klist *l, size_t i);
klist *klist_dup(const klist *l);
size_t klist_bytes(const klist *l);
int klist_push_tail(klist *l, dstr s); /* takes s; OK or ERR (OOM) */

/* Shared with the blocking variants (t_block.c). */
void list_pop_reply(struct client *c, const dstr key, klist *l, int head, long long count);
void list_move(struct client *c, const dstr src, const dstr dst, int from_head, int to_head);
int list_parse_side(const dstr s, int *head);

typedef struct zset zset; /* t_zset.c: dict + skiplist */
void zset_pop_reply(struct client *c, const dstr key, zset *z, int max, long long count, int nested);
zset *zset_new(void);
void zset_free(zset *z);
size_t zset_len(const zset *z);
zset *zset_dup(const zset *z);
dict *zset_dict(zset *z); /* member -> score (e->v.d) */

/* hpack.c: small hashes as one packed string */
/* Small hashes stay packed while they have at most hash-max-listpack-
 * entries fields and every field and value is at most hash-max-listpack-
 * value bytes (Redis's names, also under the 6.x ziplist names, and its
 * defaults).  Lengths are stored in one byte: a value limit above
 * HPACK_LEN_LIMIT packs up to HPACK_LEN_LIMIT bytes. */
#define HPACK_LEN_LIMIT 255
extern long long hash_max_listpack_entries, hash_max_listpack_value;
typedef struct hp_entry {
    const char *f, *v;
    size_t flen, vlen;
    size_t off, end; /* the entry's byte range in the buffer */
} hp_entry;
int hpack_fits(size_t flen, size_t vlen);
int hpack_next(const dstr b, size_t *off, hp_entry *e);
int hpack_find(const dstr b, const char *f, size_t flen, hp_entry *e);
size_t hpack_count(const dstr b);
dstr hpack_set(dstr b, const char *f, size_t flen, const char *v, size_t vlen, int *added);
void hpack_delete(dstr b, const hp_entry *e);

/* t_hash.c: the hash type over its two encodings */
typedef struct hash_iter {
    struct kobj *o;
    size_t off;
    dict_iter di;
} hash_iter;
void hash_iter_init(hash_iter *it, struct kobj *o);
int hash_iter_next(hash_iter *it, hp_entry *e);
void hash_iter_done(hash_iter *it);
size_t hash_len(const struct kobj *o);
void hash_free(struct kobj *o);
struct kobj *hash_dup(const struct kobj *o);
size_t hash_memory(struct kobj *o);
/* A new empty (packed) hash with room for hint bytes; NULL on OOM. */
struct kobj *hash_create(size_t hint);
/* Sets a field, converting the encoding as a write would: 1 new, 0
 * updated, -1 OOM. */
int hash_set_field(struct kobj *o, const char *f, size_t flen, const char *v, size_t vlen);

/* set values are dicts (or intsets); t_set.c */
void set_free(kobj *o);
kobj *set_dup(const kobj *o);
size_t set_len(const kobj *o);
kobj *set_create(void);                               /* NULL on OOM */
int set_add(kobj *o, const char *p, size_t len);      /* 1 added, 0 present, -1 OOM */

/* -------------------------------------------------------------- client.c */
enum client_flags {
    CF_CLOSE_AFTER_REPLY = 1 << 0,
    CF_CLOSE_ASAP = 1 << 1,
    CF_PENDING_WRITE = 1 << 2,
    CF_BLOCKED = 1 << 3,
    CF_UNIX = 1 << 4,
    CF_NO_EVICT = 1 << 5,
    CF_WRITE_HANDLER = 1 << 6,
    CF_EXECUTING = 1 << 8,
    CF_MULTI = 1 << 9,    /* inside MULTI: commands are queued */
    CF_IN_EXEC = 1 << 10, /* running EXEC's queue: blocking commands must not block */
    CF_PUBSUB = 1 << 11,  /* has subscribed: RESP2 subscribed mode, pubsub obuf class */
};

typedef struct reply_block {
    struct reply_block *next;
    size_t size, used;
    char buf[];
} reply_block;

/* What a blocked client waits for and how to let go of it (block.c). */
typedef struct block_state {
    long long deadline_ms;          /* 0 = no timeout */
    void (*on_timeout)(struct client *c);
    void (*on_cancel)(struct client *c); /* client freed while blocked */
    void *priv;
} block_state;

typedef struct client {
    uint64_t id;
    int fd;
    unsigned flags;
    int resp;                  /* 2 or 3 */
    int authenticated;
    kdb *db;
    dstr name;
    dstr querybuf;
    size_t qb_pos;             /* parsed up to here */
    size_t qb_peak;
    resp_parser parser;
    int argc;
    dstr *argv;                /* the command being executed (owned) */
    const struct command *cmd, *lastcmd;
    reply_block *reply_head, *reply_tail;
    size_t reply_bytes;        /* bytes queued, not yet written */
    size_t sent_in_head;       /* bytes of reply_head already written */
    long long obuf_soft_since; /* when the soft output limit was first hit */
    long long ctime_ms, last_ms;
    char addr[64], laddr[64];
    block_state bstate;
    struct client *prev, *next;     /* all clients */
    struct client *pw_next;         /* pending-write list */
    struct client *free_next;       /* async-free list */
    long long total_cmds;
    struct pubsub_client *ps;  /* t_pubsub.c: subscriptions; NULL if none ever */
    struct multi_client *mx;   /* t_multi.c: MULTI queue and WATCHed keys */
} client;

client *client_create(int fd, int is_unix);
void client_free(client *c);
void client_free_async(client *c);
client *client_by_id(uint64_t id);
void client_process_input(client *c);
void clients_handle_pending_writes(void);
void clients_free_pending(void);
void clients_cron(void);
dstr client_info_line(dstr s, client *c);
size_t clients_count(void);
void client_reset_args(client *c);
void net_accept_handler(evloop *el, int fd, void *priv, int mask);
void net_accept_unix_handler(evloop *el, int fd, void *priv, int mask);
int net_listen(char *err, size_t errlen);
void net_close_listeners(void);

/* --------------------------------------------------------------- reply.c */
void reply_raw(client *c, const char *p, size_t len);
void reply_status(client *c, const char *s);
void reply_ok(client *c);
void reply_error(client *c, const char *msg);  /* msg without the '-' */
void reply_errorf(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_bulk(client *c, const void *p, size_t len);
void reply_bulk_cstr(client *c, const char *s);
void reply_bulk_dstr(client *c, const dstr s);
void reply_bulk_obj(client *c, const kobj *o);
void reply_bulk_ll(client *c, long long v);
void reply_ll(client *c, long long v);
void reply_double(client *c, double d);
void reply_bool(client *c, int b);
void reply_null(client *c);          /* nil bulk in RESP2 */
void reply_null_array(client *c);    /* nil array in RESP2 */
void reply_array_len(client *c, long len);
void reply_map_len(client *c, long pairs);
void reply_set_len(client *c, long len);
void reply_push_len(client *c, long len);
void reply_verbatim(client *c, const char *p, size_t len, const char *ext);
void reply_help(client *c, const char *cmd, const char **lines);
void reply_subcommand_syntax_error(client *c);
void *reply_defer_len(client *c);
void reply_set_deferred_array(client *c, void *node, long len);
void reply_set_deferred_map(client *c, void *node, long pairs);
void reply_set_deferred_set(client *c, void *node, long len);
void reply_wrong_type(client *c);
void reply_syntax_error(client *c);
void reply_not_integer(client *c);
void reply_not_float(client *c);
void reply_free_blocks(client *c);

/* Argument parsing helpers: on failure they reply the Redis error and
 * return ERR. */
int arg_ll(client *c, const dstr s, long long *out);
int arg_ll_range(client *c, const dstr s, long long min, long long max,
                 long long *out, const char *msg);
int arg_positive(client *c, const dstr s, long long *out, const char *msg);
int arg_double(client *c, const dstr s, double *out);
int arg_ldouble(client *c, const dstr s, long double *out);
int arg_is(const dstr s, const char *word); /* case-insensitive equality */

/* ------------------------------------------------------------ command.c */
enum cmd_flags {
    CMD_WRITE = 1 << 0,
    CMD_READONLY = 1 << 1,
    CMD_DENYOOM = 1 << 2,
    CMD_ADMIN = 1 << 3,
    CMD_PUBSUB = 1 << 4,
    CMD_NOSCRIPT = 1 << 5,
    CMD_BLOCKING = 1 << 6,
    CMD_LOADING = 1 << 7,
    CMD_STALE = 1 << 8,
    CMD_FAST = 1 << 9,
    CMD_NO_AUTH = 1 << 10,
    CMD_MAY_REPLICATE = 1 << 11,
    CMD_SENTINEL = 1 << 12,
    CMD_NO_MANDATORY_KEYS = 1 << 13,
    CMD_ALLOW_BUSY = 1 << 14,
    CMD_NO_MULTI = 1 << 15, /* refused while queuing a transaction */
};

typedef void cmd_fn(client *c);

typedef struct command {
    const char *name;        /* lower case; "config|get" for subcommands */
    cmd_fn *proc;
    int arity;               /* >0 exact, <0 at least -arity */
    unsigned flags;
    const char *acl;         /* space separated categories, without '@' */
    int first_key, last_key, key_step;
    struct command *subcmds; /* NULL-name terminated */
    struct command *parent;
    /* statistics (COMMAND INFO is static; these are INFO commandstats) */
    long long calls, usec, rejected, failed;
} command;

void commands_init(void);
const command *command_resolve(dstr *argv, int argc, int *bad_arity);
const command *command_lookup(const dstr name);
void command_process(client *c);  /* runs c->argv / c->argc */
void commands_reset_stats(void);
/* The whole table, for COMMAND and INFO. */
command *command_table(size_t *n);
void command_info_reply(client *c, const command *cmd);
const char *command_full_name(const command *cmd, char *buf, size_t cap);

/* cmdmeta.c / cmdmeta_gen.c: COMMAND INFO entries as redis-server 7.0.15
 * replies them (RESP3 text captured by tools/cmdmeta/gen_cmdmeta.py), and
 * cmdmeta_vset.c for the vector-set commands 7.0.15 does not have. */
typedef struct cmdmeta_record {
    const char *name;  /* top-level command (matched ignoring case) */
    const char *resp3; /* its whole COMMAND INFO entry */
} cmdmeta_record;
extern const cmdmeta_record cmdmeta_records[];
extern const size_t cmdmeta_count;
/* cmdmeta_vset.c: the V* commands, written by hand as Redis 8 answers. */
extern const cmdmeta_record cmdmeta_vset_records[];
extern const size_t cmdmeta_vset_count;
/* cmdmeta_infer.c: INFER.GENERATE, INFER.EMBED and INFER.RAG, the INFER.* that name keys */
extern const cmdmeta_record cmdmeta_infer_records[];
extern const size_t cmdmeta_infer_count;
/* Replies the entry of "name" or "parent|sub"; 0 (nothing sent) if unknown. */
int cmdmeta_reply(client *c, const char *full_name);
int cmdmeta_arity(const char *full_name, long long *arity);

/* -------------------------------------------------------------- block.c */
/* A command whose reply comes later (INFER.*, blocking pops) calls
 * block_client and returns without replying.  The client's further input is
 * held until unblock_client.  on_timeout fires at the deadline (it replies
 * and unblocks); on_cancel fires if the client goes away while blocked. */
void block_client(client *c, long long deadline_ms,
                  void (*on_timeout)(client *c), void (*on_cancel)(client *c),
                  void *priv);
void unblock_client(client *c);
void block_check_timeouts(void);
void block_resume_pending(void); /* runs input queued behind unblocked clients */
size_t blocked_count(void);
int block_init(char *err, size_t errlen);
void block_post(cq_item *item); /* thread-safe: completion for a client id */

/* -------------------------------------------------------------- config.c */
typedef struct obuf_limit {
    unsigned long long hard, soft;
    long long soft_seconds;
} obuf_limit;

enum evict_policy {
    EVICT_NOEVICTION, EVICT_ALLKEYS_LRU, EVICT_VOLATILE_LRU,
    EVICT_ALLKEYS_RANDOM, EVICT_VOLATILE_RANDOM, EVICT_VOLATILE_TTL,
    EVICT_ALLKEYS_LFU, EVICT_VOLATILE_LFU,
};

int config_load_file(const char *path, char *err, size_t errlen);
int config_set_option(const char *name, const char **argv, int argc,
                      int at_startup, char *err, size_t errlen);
void config_init_defaults(void);

/* ----------------------------------------------------------------- log.c */
enum { LL_DEBUG, LL_VERBOSE, LL_NOTICE, LL_WARNING };
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ----------------------------------------------------------- keyclients.c */
/* key -> clients, in the order they were added (WATCH, pub/sub). */
typedef struct keyclients {
    client **v;
    size_t n, cap;
} keyclients;
extern const dict_type keyclients_type;
int keyclients_add(dict **reg, const dstr key, client *c); /* creates *reg; OK/ERR */
void keyclients_remove(dict *reg, const dstr key, client *c);

/* --------------------------------------------------------------- notify.c */
/* Keyspace notifications (notify-keyspace-events).  `type` is one of the
 * NOTIFY_* classes; `event` the event name ("set", "xadd", "expired"...).
 * Cheap when notifications are off. */
enum {
    NOTIFY_KEYSPACE = 1 << 0, /* K */
    NOTIFY_KEYEVENT = 1 << 1, /* E */
    NOTIFY_GENERIC = 1 << 2,  /* g */
    NOTIFY_STRING = 1 << 3,   /* $ */
    NOTIFY_LIST = 1 << 4,     /* l */
    NOTIFY_SET = 1 << 5,      /* s */
    NOTIFY_HASH = 1 << 6,     /* h */
    NOTIFY_ZSET = 1 << 7,     /* z */
    NOTIFY_EXPIRED = 1 << 8,  /* x */
    NOTIFY_EVICTED = 1 << 9,  /* e */
    NOTIFY_STREAM = 1 << 10,  /* t */
    NOTIFY_KEY_MISS = 1 << 11, /* m */
    NOTIFY_NEW = 1 << 12,     /* n */
    NOTIFY_MODULE = 1 << 13,  /* d: Redis's module class; vector sets (t_vset.c) */
};
void notify_keyspace_event(int type, const char *event, const dstr key, int dbid);
/* The notify-keyspace-events option (config.c's table calls these). */
int notify_config_set(const char **argv, int argc, char *err, size_t errlen);
dstr notify_config_get(dstr out);

/* ------------------------------------------------------------ t_pubsub.c */
/* Sends message to every subscriber of channel and of a matching pattern;
 * returns how many received it. */
long long pubsub_publish(const char *chan, size_t clen, const char *msg, size_t mlen);
/* Subscriptions of the client: kind 0 channels, 1 patterns, 2 shard channels. */
size_t pubsub_client_count(const client *c, int kind);
/* Drops every subscription, silently (RESET and client_free). */
void pubsub_client_release(client *c);
/* INFO stats: channels, patterns, shard channels with subscribers. */
void pubsub_totals(long long *channels, long long *patterns, long long *shard_channels);
/* RESP2 subscribed mode: 1 if cmd may run while c is subscribed. */
int pubsub_command_allowed(const client *c, const struct command *cmd);

/* ------------------------------------------------------------- t_multi.c */
/* Queues the command in c->argv when c is inside MULTI; 1 if it did (the
 * dispatcher then only runs MULTI/EXEC/DISCARD/WATCH/... itself). */
int multi_maybe_queue(client *c);
void multi_flag_error(client *c);     /* a queued command was rejected */
/* EXEC refused before running: discard, reply "EXECABORT ... because of: err". */
void multi_exec_abort(client *c, const char *err);
int multi_queued_denyoom(const client *c); /* a queued command is CMD_DENYOOM */
void multi_client_release(client *c); /* discard MULTI, unwatch */
/* WATCH hooks: a key was modified, a db was flushed, two dbs swapped. */
void multi_touch_key(kdb *db, const dstr key);
void multi_touch_db(kdb *db);
void multi_touch_swapped(int a, int b);
int multi_queue_len(const client *c);  /* -1 outside MULTI (CLIENT LIST multi=) */
int multi_dirty(const client *c);      /* a WATCHed key changed (CLIENT LIST 'd') */

/* ---------------------------------------------------------------- evict.c */
/* Frees memory per maxmemory-policy.  OK if under the limit afterwards. */
int evict_if_needed(void);
size_t evict_used_memory(void);

/* ----------------------------------------------------------- the server */
typedef struct server {
    evloop *el;
    int hz;
    char runid[41];
    long long start_ms;
    int shutdown_asap;
    /* listeners */
    dstr bindaddr;              /* space separated, as configured */
    int port;
    int listen_fds[16];
    int nlisten;
    dstr unixsocket;
    int unixsocketperm;
    int unix_fd;
    int tcp_backlog;
    int tcp_keepalive;
    int protected_mode;
    /* clients */
    client *clients;            /* doubly linked list */
    dict *clients_by_id;
    client *pending_writes;
    client *to_free;            /* async free list (linked through free_next) */
    uint64_t next_client_id;
    unsigned maxclients;
    long long timeout_s;
    long long proto_max_bulk_len;
    long long client_query_buffer_limit;
    obuf_limit obuf_normal, obuf_replica, obuf_pubsub;
    dstr requirepass;
    /* data */
    kdb *dbs;
    int dbnum;
    unsigned lru_clock;
    long long now_ms;           /* cached at each loop iteration */
    /* memory */
    unsigned long long maxmemory;
    int maxmemory_policy;
    int maxmemory_samples;
    int active_expire_effort;
    /* logging / process */
    int verbosity;
    dstr logfile;
    int daemonize;
    dstr pidfile;
    dstr dir;
    dstr configfile;
    dstr save_params;
    dstr dbfilename;
    int appendonly;
    int lazyfree_lazy_user_del;
    int lazyfree_lazy_user_flush;
    int latency_tracking;
    /* stats */
    long long stat_numcommands, stat_numconnections, stat_rejected_conn;
    long long stat_expiredkeys, stat_evictedkeys, stat_keyspace_hits;
    long long stat_keyspace_misses, stat_net_input_bytes, stat_net_output_bytes;
    long long stat_total_error_replies, stat_unexpected_error_replies;
    long long stat_expired_stale_perc_x100, stat_expire_cycle_time_used;
    long long stat_client_qbuf_limit_disconnections, stat_client_outbuf_limit_disconnections;
    long long stat_evicted_clients, stat_total_eviction_exceeded_time;
    long long lastsave;
    long long stat_ops_sec_last_sample_ms, stat_ops_sec_last_cmds;
    long long stat_ops_sec[16];
    int stat_ops_idx;
    size_t stat_peak_memory;
    int executing_db_modified;
    long long dirty;            /* changes since the last save (db_signal_modified) */
    long long dirty_expired;    /* of those, deletions of expired keys (propagate.c) */
    long long dirty_events;     /* keyspace events of writes (notify.c, propagate.c) */
    int loading;                /* replaying an AOF: no expiry, no propagation */
} server;

extern server srv;

unsigned lru_clock_now(void);
unsigned long long obj_idle_ms(const kobj *o);
void server_update_clock(void);
void info_command(client *c);
/* INFO text writers own s: on OOM they free it and return NULL. */
dstr info_section_text(const char *section, dstr s);
/* slowlog.c: SLOWLOG and slowlog-log-slower-than / slowlog-max-len */
extern long long slowlog_slower_than, slowlog_max_len;
void slowlog_push(client *c, const command *cmd, long long duration_us);
void slowlog_apply_max_len(void);
int config_is_sensitive(const char *name); /* config.c: a password-like setting */
/* INFO errorstats: counts an error reply by its code (the first word);
 * CONFIG RESETSTAT clears them. */
void errorstat_count(const char *msg);
void errorstat_reset(void);
/* SHUTDOWN's options; none: save only when save points are configured. */
enum { SHUTDOWN_NOFLAGS = 0, SHUTDOWN_SAVE = 1, SHUTDOWN_NOSAVE = 2, SHUTDOWN_NOW = 4, SHUTDOWN_FORCE = 8 };
/* Everything before exiting: kills a BGSAVE child, the final save
 * (persist.c), listeners, pidfile.  ERR when the save failed without
 * SHUTDOWN_FORCE: the server must keep running. */
int server_prepare_shutdown(int flags);

/* Command implementations, one family per file. */
#define DECL(n) void n(client *c)
/* t_conn.c: connection and server (save, bgsave, lastsave: persist.c) */
DECL(ping_cmd); DECL(echo_cmd); DECL(quit_cmd); DECL(select_cmd); DECL(swapdb_cmd);
DECL(dbsize_cmd); DECL(flushdb_cmd); DECL(flushall_cmd); DECL(time_cmd);
DECL(hello_cmd); DECL(auth_cmd); DECL(lastsave_cmd); DECL(shutdown_cmd);
DECL(client_cmd); DECL(command_cmd); DECL(config_cmd); DECL(info_cmd);
DECL(reset_cmd); DECL(debug_cmd); DECL(memory_cmd); DECL(save_cmd); DECL(bgsave_cmd);
/* t_keys.c */
DECL(del_cmd); DECL(unlink_cmd); DECL(exists_cmd); DECL(type_cmd); DECL(rename_cmd);
DECL(renamenx_cmd); DECL(keys_cmd); DECL(scan_cmd); DECL(randomkey_cmd);
DECL(expire_cmd); DECL(pexpire_cmd); DECL(expireat_cmd); DECL(pexpireat_cmd);
DECL(ttl_cmd); DECL(pttl_cmd); DECL(expiretime_cmd); DECL(pexpiretime_cmd);
DECL(persist_cmd); DECL(touch_cmd); DECL(copy_cmd); DECL(move_cmd); DECL(object_cmd);
/* t_string.c */
DECL(get_cmd); DECL(set_cmd); DECL(setnx_cmd); DECL(setex_cmd); DECL(psetex_cmd);
DECL(mget_cmd); DECL(mset_cmd); DECL(msetnx_cmd); DECL(getset_cmd); DECL(getdel_cmd);
DECL(getex_cmd); DECL(append_cmd); DECL(strlen_cmd); DECL(incr_cmd); DECL(decr_cmd);
DECL(incrby_cmd); DECL(decrby_cmd); DECL(incrbyfloat_cmd); DECL(getrange_cmd);
DECL(setrange_cmd); DECL(setbit_cmd); DECL(getbit_cmd); DECL(bitcount_cmd);
DECL(bitpos_cmd); DECL(substr_cmd);
DECL(slowlog_cmd);
/* t_bitops.c */
DECL(bitop_cmd); DECL(bitfield_cmd); DECL(bitfield_ro_cmd);
/* t_lcs.c */
DECL(lcs_cmd);
/* t_sort.c */
DECL(sort_cmd); DECL(sort_ro_cmd);
/* t_list.c */
DECL(lpush_cmd); DECL(rpush_cmd); DECL(lpushx_cmd); DECL(rpushx_cmd); DECL(lpop_cmd);
DECL(rpop_cmd); DECL(llen_cmd); DECL(lrange_cmd); DECL(lindex_cmd); DECL(lset_cmd);
DECL(linsert_cmd); DECL(lrem_cmd); DECL(ltrim_cmd); DECL(lpos_cmd); DECL(lmove_cmd);
DECL(rpoplpush_cmd); DECL(lmpop_cmd);
/* t_hash.c */
DECL(hset_cmd); DECL(hsetnx_cmd); DECL(hget_cmd); DECL(hmset_cmd); DECL(hmget_cmd);
DECL(hdel_cmd); DECL(hlen_cmd); DECL(hstrlen_cmd); DECL(hexists_cmd); DECL(hkeys_cmd);
DECL(hvals_cmd); DECL(hgetall_cmd); DECL(hincrby_cmd); DECL(hincrbyfloat_cmd);
DECL(hrandfield_cmd); DECL(hscan_cmd);
/* t_set.c */
DECL(sadd_cmd); DECL(srem_cmd); DECL(smembers_cmd); DECL(sismember_cmd);
DECL(smismember_cmd); DECL(scard_cmd); DECL(spop_cmd); DECL(srandmember_cmd);
DECL(sinter_cmd); DECL(sunion_cmd); DECL(sdiff_cmd); DECL(sinterstore_cmd);
DECL(sunionstore_cmd); DECL(sdiffstore_cmd); DECL(sintercard_cmd); DECL(smove_cmd);
DECL(sscan_cmd);
/* t_zset.c */
DECL(zadd_cmd); DECL(zrem_cmd); DECL(zcard_cmd); DECL(zscore_cmd); DECL(zmscore_cmd);
DECL(zincrby_cmd); DECL(zrank_cmd); DECL(zrevrank_cmd); DECL(zrange_cmd);
DECL(zrangebyscore_cmd); DECL(zrevrangebyscore_cmd); DECL(zrangebylex_cmd);
DECL(zrevrangebylex_cmd); DECL(zrevrange_cmd); DECL(zcount_cmd); DECL(zlexcount_cmd);
DECL(zpopmin_cmd); DECL(zpopmax_cmd); DECL(zmpop_cmd); DECL(zremrangebyrank_cmd);
DECL(zremrangebyscore_cmd); DECL(zremrangebylex_cmd); DECL(zunion_cmd);
DECL(zinter_cmd); DECL(zdiff_cmd); DECL(zunionstore_cmd); DECL(zinterstore_cmd);
DECL(zdiffstore_cmd); DECL(zintercard_cmd); DECL(zrandmember_cmd);
DECL(zrangestore_cmd); DECL(zscan_cmd);

/* t_pubsub.c */
DECL(subscribe_cmd); DECL(unsubscribe_cmd); DECL(psubscribe_cmd); DECL(punsubscribe_cmd);
DECL(ssubscribe_cmd); DECL(sunsubscribe_cmd); DECL(publish_cmd); DECL(spublish_cmd);
DECL(pubsub_cmd);
/* t_multi.c */
DECL(multi_cmd); DECL(exec_cmd); DECL(discard_cmd); DECL(watch_cmd); DECL(unwatch_cmd);

/* t_stream.c: streams and consumer groups */
DECL(xadd_cmd); DECL(xlen_cmd); DECL(xrange_cmd); DECL(xrevrange_cmd); DECL(xread_cmd);
DECL(xreadgroup_cmd); DECL(xdel_cmd); DECL(xtrim_cmd); DECL(xack_cmd); DECL(xpending_cmd);
DECL(xclaim_cmd); DECL(xautoclaim_cmd); DECL(xsetid_cmd); DECL(xgroup_cmd); DECL(xinfo_cmd);
/* Appends one entry with an auto id to the stream at key (created if
 * missing), exactly as XADD key * f1 v1 ... would: wakes blocked readers,
 * signals WATCH and notifications.  OK, or ERR with a message in err
 * (WRONGTYPE, OOM).  Event loop only.  fields[0 .. 2*nfields) alternate
 * field, value (lens the same): nfields counts pairs, at least 1. */
int stream_append_auto(kdb *db, const dstr key, const char *const *fields, const size_t *lens,
                       int nfields, char *err, size_t errlen);

/* t_block.c: blocking pops */
DECL(blpop_cmd); DECL(brpop_cmd); DECL(blmove_cmd); DECL(brpoplpush_cmd); DECL(blmpop_cmd);
DECL(bzpopmin_cmd); DECL(bzpopmax_cmd); DECL(bzmpop_cmd);
void block_signal_key(kdb *db, const dstr key);  /* a key got data: serve its waiters */
/* Streams: block c on keys; when one is signalled, serve(c, db, key, priv)
 * runs for each waiter in arrival order and returns 1 once it replied (the
 * client is then unblocked), 0 to keep waiting.  free_priv releases priv
 * (on serve, timeout, disconnect, or at once if c may not block). */
typedef int block_serve_fn(client *c, kdb *db, const dstr key, void *priv);
void block_on_keys_custom(client *c, const dstr *keys, int nkeys, long long deadline_ms,
                          block_serve_fn *serve, void (*free_priv)(void *priv), void *priv);
/* CLIENT UNBLOCK: answers a client blocked with a timeout as on timeout, or
 * with the UNBLOCKED error; 1 if target was such a client. */
int block_unblock_by_request(client *target, int with_error);
void block_handle_ready_keys(void);               /* serve waiters of such keys */
void block_signal_swapped(int a, int b);          /* SWAPDB: recheck every waited key of both */
void block_signal_flushed(kdb *db);               /* FLUSHDB/FLUSHALL: let XREADGROUP waiters go */

/* t_infer.c: INFER.* over libinfercmd.  The settings are config.c rows
 * (infer-*); thread, queue, batch and KV settings apply to models loaded
 * after a change, the default timeout to requests submitted after it. */
typedef struct infer_settings {
    int threads;                /* compute threads per model (0: CPUs) */
    int max_queue;              /* requests waiting per model */
    int max_batch;              /* sequences stepping together per model */
    long long kv_memory;        /* KV budget per model in bytes (0: engine default) */
    long long default_timeout;  /* ms, 0: none */
    dstr models_dir;            /* resolved directory; NULL: INFER.LOAD refused */
    int default_max_tokens;     /* MAXTOKENS when a request gives none */
    int max_loads;              /* INFER.LOADs running at once */
    int nice;                   /* engine threads' nice value (loaded models) */
    int idle;                   /* engine threads in SCHED_IDLE (infer-idle-priority) */
    long long max_memory;       /* infer-max-memory: the engine's budget in bytes, 0: none */
} infer_settings;
extern infer_settings infer_cfg;
void infer_config_defaults(void); /* what needs the machine: infer-max-memory's default */
int infer_set_models_dir(const char **argv, int argc, char *err, size_t errlen);
dstr infer_get_models_dir(dstr out);
/* INFO text writers own s: on OOM they free it and return NULL. */
dstr infer_info_section(dstr s); /* INFO infer */
dstr infer_info_memory(dstr s);  /* the engine's lines of INFO memory */
DECL(infer_load_cmd); DECL(infer_unload_cmd); DECL(infer_models_cmd); DECL(infer_generate_cmd);
DECL(infer_tokenize_cmd); DECL(infer_detokenize_cmd); DECL(infer_stats_cmd);
DECL(infer_embed_cmd); DECL(infer_rag_cmd); DECL(infer_answer_cmd);
/* COMMAND GETKEYS of INFER.GENERATE / EMBED / RAG (libinfercmd's exact
 * finder): replies and returns 1; 0 for any other command. */
int infer_getkeys(client *c, const char *name, dstr *argv, int argc);
/* 1 when this call writes a key (STORE, STREAM, INTO): the INFER.*
 * commands carry no static write flag, their write forms are writes. */
int infer_call_writes(const char *name, dstr *argv, int argc);
/* Whether name is an INFER.* command whose keys libinfercmd finds (its
 * keys move with its options: COMMAND INFO flags it movablekeys). */
int infer_keyed(const char *name);

/* fault.c: DEBUG ALLOC-FAIL, an allocation failure injected into one
 * command (tests/fault/).  fault_enter / fault_leave bracket the handler's
 * call in command_process. */
void fault_enter(client *c);
void fault_leave(void);
void debug_alloc_fail(client *c);
/* config.c: enable-debug-command ("no", "yes" or "local"). */
const char *config_debug_command(void);
/* client.c: a loopback or Unix-socket client. */
int client_is_local(const client *c);

/* t_vset.c: vector sets.  One handler runs all thirteen V* commands
 * through libvcmd (src/vcmd/), the front-end inferkv.so shares. */
DECL(vset_cmd); DECL(vset_restore_cmd); DECL(bgrewriteaof_cmd);
/* Installs km_* as libvset's allocator, so that used_memory, maxmemory and
 * MEMORY USAGE see vector-set memory.  Before any set exists. */
void vset_server_init(void);
extern int vset_force_single_thread; /* vset-force-single-threaded-execution */
#undef DECL

/* scan.c: the cursor walk shared by SCAN/HSCAN/SSCAN/ZSCAN. */
void scan_generic(client *c, kobj *o, int first_arg, unsigned long cursor);
int scan_parse_cursor(client *c, const dstr s, unsigned long *cursor);

#endif
