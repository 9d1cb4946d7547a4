/* config.c - options: defaults, the config file, --option arguments, and
 * CONFIG GET / SET / RESETSTAT / REWRITE.
 *
 * Every option is one row of a table (name, kind, where it lives, bounds),
 * so the file parser, the command line and CONFIG SET share one validator
 * and give the same errors Redis gives.  Options that only make sense at
 * startup (databases, daemonize, ...) are immutable at run time. */
#include "server.h"
#include "aof.h"
#include "rdb.h"
#include "stream.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

enum cfg_kind { K_BOOL, K_INT, K_LL, K_UINT, K_MEM, K_STR, K_ENUM, K_SPECIAL };
#define IMMUTABLE 1
#define SENSITIVE 2

typedef struct enum_name {
    const char *name;
    int value;
} enum_name;

typedef struct cfg {
    const char *name, *alias;
    int kind;
    void *ptr;
    long long min, max;
    int flags;
    const enum_name *enums;
    int (*set)(const char **argv, int argc, char *err, size_t errlen);
    dstr (*get)(dstr out);
} cfg;

static const enum_name policy_names[] = {
    {"volatile-lru", EVICT_VOLATILE_LRU}, {"volatile-lfu", EVICT_VOLATILE_LFU},
    {"volatile-random", EVICT_VOLATILE_RANDOM}, {"volatile-ttl", EVICT_VOLATILE_TTL},
    {"allkeys-lru", EVICT_ALLKEYS_LRU}, {"allkeys-lfu", EVICT_ALLKEYS_LFU},
    {"allkeys-random", EVICT_ALLKEYS_RANDOM}, {"noeviction", EVICT_NOEVICTION}, {NULL, 0}};
static const enum_name loglevel_names[] = {
    {"debug", LL_DEBUG}, {"verbose", LL_VERBOSE}, {"notice", LL_NOTICE}, {"warning", LL_WARNING}, {NULL, 0}};

static int set_obuf(const char **argv, int argc, char *err, size_t errlen);
static dstr get_obuf(dstr out);
static int set_save(const char **argv, int argc, char *err, size_t errlen);
static dstr get_save(dstr out);
static int set_bind(const char **argv, int argc, char *err, size_t errlen);
static dstr get_bind(dstr out);
static int set_perm(const char **argv, int argc, char *err, size_t errlen);
static dstr get_perm(dstr out);
static int set_dir(const char **argv, int argc, char *err, size_t errlen);
static dstr get_dir(dstr out);
static int set_dbfilename(const char **argv, int argc, char *err, size_t errlen);
static dstr get_dbfilename(dstr out);
static int set_appendonly(const char **argv, int argc, char *err, size_t errlen);
static dstr get_appendonly(dstr out);
static int set_appendfilename(const char **argv, int argc, char *err, size_t errlen);
static dstr get_appendfilename(dstr out);
static int set_appenddirname(const char **argv, int argc, char *err, size_t errlen);
static dstr get_appenddirname(dstr out);
static const enum_name fsync_names[] = {
    {"everysec", AOF_FSYNC_EVERYSEC}, {"always", AOF_FSYNC_ALWAYS}, {"no", AOF_FSYNC_NO}, {NULL, 0}};

/* Options that CONFIG accepts only to be compatible with tools that set
 * them (redis-benchmark, test harnesses); they have no effect yet. */
static int compat_yesno[8];
static dstr compat_str[2];

static cfg table[] = {
    {"bind", NULL, K_SPECIAL, NULL, 0, 0, 0, NULL, set_bind, get_bind},
    {"port", NULL, K_INT, &srv.port, 0, 65535, IMMUTABLE, NULL, NULL, NULL},
    {"unixsocket", NULL, K_STR, &srv.unixsocket, 0, 0, IMMUTABLE, NULL, NULL, NULL},
    {"unixsocketperm", NULL, K_SPECIAL, NULL, 0, 0, IMMUTABLE, NULL, set_perm, get_perm},
    {"databases", NULL, K_INT, &srv.dbnum, 1, INT_MAX, IMMUTABLE, NULL, NULL, NULL},
    {"maxclients", NULL, K_UINT, &srv.maxclients, 1, UINT_MAX, 0, NULL, NULL, NULL},
    {"timeout", NULL, K_LL, &srv.timeout_s, 0, INT_MAX, 0, NULL, NULL, NULL},
    {"requirepass", NULL, K_STR, &srv.requirepass, 0, 0, SENSITIVE, NULL, NULL, NULL},
    {"proto-max-bulk-len", NULL, K_MEM, &srv.proto_max_bulk_len, 1024 * 1024, LLONG_MAX, 0, NULL, NULL, NULL},
    {"client-query-buffer-limit", NULL, K_MEM, &srv.client_query_buffer_limit, 1024 * 1024, LLONG_MAX, 0, NULL, NULL, NULL},
    {"client-output-buffer-limit", NULL, K_SPECIAL, NULL, 0, 0, 0, NULL, set_obuf, get_obuf},
    {"notify-keyspace-events", NULL, K_SPECIAL, NULL, 0, 0, 0, NULL, notify_config_set, notify_config_get},
    {"maxmemory", NULL, K_MEM, &srv.maxmemory, 0, LLONG_MAX, 0, NULL, NULL, NULL},
    {"hash-max-listpack-entries", "hash-max-ziplist-entries", K_LL, &hash_max_listpack_entries, 0, LLONG_MAX, 0, NULL, NULL, NULL},
    {"hash-max-listpack-value", "hash-max-ziplist-value", K_MEM, &hash_max_listpack_value, 0, LLONG_MAX, 0, NULL, NULL, NULL},
    {"stream-node-max-bytes", NULL, K_MEM, &stream_node_max_bytes, 0, LONG_MAX, 0, NULL, NULL, NULL},
    {"stream-node-max-entries", NULL, K_LL, &stream_node_max_entries, 0, LLONG_MAX, 0, NULL, NULL, NULL},
    {"maxmemory-policy", NULL, K_ENUM, &srv.maxmemory_policy, 0, 0, 0, policy_names, NULL, NULL},
    {"maxmemory-samples", NULL, K_INT, &srv.maxmemory_samples, 1, 64, 0, NULL, NULL, NULL},
    {"loglevel", NULL, K_ENUM, &srv.verbosity, 0, 0, 0, loglevel_names, NULL, NULL},
    {"logfile", NULL, K_STR, &srv.logfile, 0, 0, IMMUTABLE, NULL, NULL, NULL},
    {"daemonize", NULL, K_BOOL, &srv.daemonize, 0, 0, IMMUTABLE, NULL, NULL, NULL},
    {"pidfile", NULL, K_STR, &srv.pidfile, 0, 0, IMMUTABLE, NULL, NULL, NULL},
    {"dir", NULL, K_SPECIAL, NULL, 0, 0, 0, NULL, set_dir, get_dir},
    {"hz", NULL, K_INT, &srv.hz, 1, 500, 0, NULL, NULL, NULL},
    {"tcp-backlog", NULL, K_INT, &srv.tcp_backlog, 0, INT_MAX, IMMUTABLE, NULL, NULL, NULL},
    {"tcp-keepalive", NULL, K_INT, &srv.tcp_keepalive, 0, INT_MAX, 0, NULL, NULL, NULL},
    {"protected-mode", NULL, K_BOOL, &srv.protected_mode, 0, 0, 0, NULL, NULL, NULL},
    {"active-expire-effort", NULL, K_INT, &srv.active_expire_effort, 1, 10, 0, NULL, NULL, NULL},
    {"lazyfree-lazy-user-del", NULL, K_BOOL, &srv.lazyfree_lazy_user_del, 0, 0, 0, NULL, NULL, NULL},
    {"lazyfree-lazy-user-flush", NULL, K_BOOL, &srv.lazyfree_lazy_user_flush, 0, 0, 0, NULL, NULL, NULL},
    {"save", NULL, K_SPECIAL, NULL, 0, 0, 0, NULL, set_save, get_save},
    /* AOF (aof.c) */
    {"appendonly", NULL, K_SPECIAL, NULL, 0, 0, 0, NULL, set_appendonly, get_appendonly},
    {"appendfsync", NULL, K_ENUM, &aofcfg.fsync, 0, 0, 0, fsync_names, NULL, NULL},
    {"appendfilename", NULL, K_SPECIAL, NULL, 0, 0, IMMUTABLE, NULL, set_appendfilename, get_appendfilename},
    {"appenddirname", NULL, K_SPECIAL, NULL, 0, 0, IMMUTABLE, NULL, set_appenddirname, get_appenddirname},
    {"aof-use-rdb-preamble", NULL, K_BOOL, &aofcfg.use_rdb_preamble, 0, 0, 0, NULL, NULL, NULL},
    {"aof-load-truncated", NULL, K_BOOL, &aofcfg.load_truncated, 0, 0, 0, NULL, NULL, NULL},
    {"aof-timestamp-enabled", NULL, K_BOOL, &aofcfg.timestamp_enabled, 0, 0, 0, NULL, NULL, NULL},
    {"aof-rewrite-incremental-fsync", NULL, K_BOOL, &aofcfg.rewrite_incremental_fsync, 0, 0, 0, NULL, NULL, NULL},
    {"no-appendfsync-on-rewrite", NULL, K_BOOL, &aofcfg.no_fsync_on_rewrite, 0, 0, 0, NULL, NULL, NULL},
    {"auto-aof-rewrite-percentage", NULL, K_LL, &aofcfg.auto_rewrite_perc, 0, INT_MAX, 0, NULL, NULL, NULL},
    {"auto-aof-rewrite-min-size", NULL, K_MEM, &aofcfg.auto_rewrite_min_size, 0, LLONG_MAX, 0, NULL, NULL, NULL},
    {"dbfilename", NULL, K_SPECIAL, NULL, 0, 0, 0, NULL, set_dbfilename, get_dbfilename},
    {"lazyfree-lazy-eviction", NULL, K_BOOL, &compat_yesno[0], 0, 0, 0, NULL, NULL, NULL},
    {"lazyfree-lazy-expire", NULL, K_BOOL, &compat_yesno[1], 0, 0, 0, NULL, NULL, NULL},
    {"lazyfree-lazy-server-del", NULL, K_BOOL, &compat_yesno[2], 0, 0, 0, NULL, NULL, NULL},
    {"latency-tracking", NULL, K_BOOL, &srv.latency_tracking, 0, 0, 0, NULL, NULL, NULL},
    {"activerehashing", NULL, K_BOOL, &compat_yesno[3], 0, 0, 0, NULL, NULL, NULL},
    /* RDB snapshots (persist.c) */
    {"stop-writes-on-bgsave-error", NULL, K_BOOL, &persist.stop_writes_on_error, 0, 0, 0, NULL, NULL, NULL},
    {"rdbcompression", NULL, K_BOOL, &persist.compression, 0, 0, 0, NULL, NULL, NULL},
    {"rdbchecksum", NULL, K_BOOL, &persist.checksum, 0, 0, IMMUTABLE, NULL, NULL, NULL},
    {"rdb-key-save-delay", NULL, K_LL, &persist.key_save_delay, INT_MIN, INT_MAX, 0, NULL, NULL, NULL},
    {"rdb-del-sync-files", NULL, K_BOOL, &persist.del_sync_files, 0, 0, 0, NULL, NULL, NULL},
    /* tamper-evident sidecars of dumps and AOF bases (persist_sidecar.c) */
    {"rdb-sidecar", NULL, K_BOOL, &persist_sidecar_enabled, 0, 0, 0, NULL, NULL, NULL},
    {"slowlog-log-slower-than", NULL, K_LL, &slowlog_slower_than, -1, LLONG_MAX, 0, NULL, NULL, NULL},
    {"slowlog-max-len", NULL, K_LL, &slowlog_max_len, 0, LONG_MAX, 0, NULL, NULL, NULL},
    {"enable-debug-command", NULL, K_STR, &compat_str[1], 0, 0, IMMUTABLE, NULL, NULL, NULL},
    /* INFER.* (t_infer.c) */
    {"infer-threads", NULL, K_INT, &infer_cfg.threads, 0, 256, 0, NULL, NULL, NULL},
    {"infer-max-queue", NULL, K_INT, &infer_cfg.max_queue, 1, 1 << 20, 0, NULL, NULL, NULL},
    {"infer-max-batch", NULL, K_INT, &infer_cfg.max_batch, 1, 4096, 0, NULL, NULL, NULL},
    {"infer-kv-memory", NULL, K_MEM, &infer_cfg.kv_memory, 0, LLONG_MAX, 0, NULL, NULL, NULL},
    {"infer-max-memory", NULL, K_MEM, &infer_cfg.max_memory, 0, LLONG_MAX, 0, NULL, NULL, NULL},
    {"infer-default-timeout", NULL, K_LL, &infer_cfg.default_timeout, 0, 24LL * 3600 * 1000, 0, NULL, NULL, NULL},
    {"infer-default-max-tokens", NULL, K_INT, &infer_cfg.default_max_tokens, 1, 1 << 20, 0, NULL, NULL, NULL},
    {"infer-max-loads", NULL, K_INT, &infer_cfg.max_loads, 1, 64, 0, NULL, NULL, NULL},
    {"infer-nice", NULL, K_INT, &infer_cfg.nice, 0, 19, 0, NULL, NULL, NULL},
    {"infer-idle-priority", NULL, K_BOOL, &infer_cfg.idle, 0, 0, 0, NULL, NULL, NULL},
    {"infer-models-dir", NULL, K_SPECIAL, NULL, 0, 0, 0, NULL, infer_set_models_dir, infer_get_models_dir},
    /* vector sets (t_vset.c), Redis 8's option of the same name */
    {"vset-force-single-threaded-execution", NULL, K_BOOL, &vset_force_single_thread, 0, 0, 0, NULL, NULL, NULL},
};
#define NCFG (sizeof table / sizeof table[0])

static cfg *find_cfg(const char *name) {
    for (size_t i = 0; i < NCFG; i++)
        if (!strcasecmp(table[i].name, name) || (table[i].alias && !strcasecmp(table[i].alias, name)))
            return &table[i];
    return NULL;
}

int config_is_sensitive(const char *name) {
    const cfg *x = find_cfg(name);
    return x && (x->flags & SENSITIVE);
}

/* Memory values: plain bytes or k/kb/m/mb/g/gb (k = 1000, kb = 1024). */
static int parse_mem(const char *s, long long *out) {
    size_t len = strlen(s);
    long long mul = 1;
    size_t digits = len;
    static const struct { const char *suf; long long mul; } units[] = {
        {"kb", 1024}, {"mb", 1024 * 1024}, {"gb", 1024LL * 1024 * 1024},
        {"k", 1000}, {"m", 1000 * 1000}, {"g", 1000LL * 1000 * 1000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t sl = strlen(units[i].suf);
        if (len > sl && !strcasecmp(s + len - sl, units[i].suf)) {
            mul = units[i].mul;
            digits = len - sl;
            break;
        }
    }
    long long v;
    if (digits == 0 && len == 0) {
        *out = 0;
        return 1;
    }
    if (!str_to_ll(s, digits, &v) || v < 0) return 0;
    if (v > LLONG_MAX / mul) return 0;
    *out = v * mul;
    return 1;
}

static int set_dstr(dstr *slot, const char *v) {
    dstr n = NULL;
    if (v && *v) {
        n = dstr_new(v);
        if (!n) return ERR;
    }
    dstr_free(*slot);
    *slot = n;
    return OK;
}

static int set_scalar(cfg *c, const char *v, char *err, size_t errlen) {
    long long ll;
    switch (c->kind) {
    case K_BOOL:
        if (!strcasecmp(v, "yes")) *(int *)c->ptr = 1;
        else if (!strcasecmp(v, "no")) *(int *)c->ptr = 0;
        else {
            snprintf(err, errlen, "argument must be 'yes' or 'no'");
            return ERR;
        }
        return OK;
    case K_INT: case K_LL: case K_UINT:
        if (!str_to_ll(v, strlen(v), &ll)) {
            snprintf(err, errlen, "argument couldn't be parsed into an integer");
            return ERR;
        }
        if (!strcmp(c->name, "hz")) ll = ll < 1 ? 1 : ll > 500 ? 500 : ll;
        if (ll < c->min || ll > c->max) {
            snprintf(err, errlen, "argument must be between %lld and %lld inclusive", c->min, c->max);
            return ERR;
        }
        if (c->kind == K_INT) *(int *)c->ptr = (int)ll;
        else if (c->kind == K_UINT) *(unsigned *)c->ptr = (unsigned)ll;
        else *(long long *)c->ptr = ll;
        return OK;
    case K_MEM:
        if (!parse_mem(v, &ll)) {
            snprintf(err, errlen, "argument must be a memory value");
            return ERR;
        }
        if (ll < c->min || ll > c->max) {
            snprintf(err, errlen, "argument must be between %lld and %lld inclusive", c->min, c->max);
            return ERR;
        }
        *(long long *)c->ptr = ll;
        return OK;
    case K_STR:
        if (set_dstr((dstr *)c->ptr, v) != OK) {
            snprintf(err, errlen, "out of memory");
            return ERR;
        }
        return OK;
    case K_ENUM:
        for (const enum_name *e = c->enums; e->name; e++)
            if (!strcasecmp(e->name, v)) {
                *(int *)c->ptr = e->value;
                return OK;
            }
        {
            size_t off = (size_t)snprintf(err, errlen, "argument(s) must be one of the following: ");
            for (const enum_name *e = c->enums; e->name && off < errlen; e++)
                off += (size_t)snprintf(err + off, errlen - off, "%s%s", e->name, e[1].name ? ", " : "");
        }
        return ERR;
    }
    return ERR;
}

int config_set_option(const char *name, const char **argv, int argc, int at_startup,
                      char *err, size_t errlen) {
    cfg *c = find_cfg(name);
    if (!c) {
        snprintf(err, errlen, "Bad directive or wrong number of arguments");
        return ERR;
    }
    if (!at_startup && (c->flags & IMMUTABLE)) {
        snprintf(err, errlen, "can't set immutable config");
        return ERR;
    }
    if (c->kind == K_SPECIAL) return c->set(argv, argc, err, errlen);
    if (argc != 1) {
        snprintf(err, errlen, "wrong number of arguments");
        return ERR;
    }
    return set_scalar(c, argv[0], err, errlen);
}

static dstr get_value(cfg *c, dstr out) {
    switch (c->kind) {
    case K_BOOL: return dstr_cat(out, *(int *)c->ptr ? "yes" : "no");
    case K_INT: return dstr_catfmt(out, "%d", *(int *)c->ptr);
    case K_UINT: return dstr_catfmt(out, "%u", *(unsigned *)c->ptr);
    case K_LL: case K_MEM: return dstr_catfmt(out, "%lld", *(long long *)c->ptr);
    case K_STR: {
        dstr v = *(dstr *)c->ptr;
        return v ? dstr_catlen(out, v, dstr_len(v)) : out;
    }
    case K_ENUM:
        for (const enum_name *e = c->enums; e->name; e++)
            if (e->value == *(int *)c->ptr) return dstr_cat(out, e->name);
        return out;
    case K_SPECIAL: return c->get(out);
    }
    return out;
}

/* get_value() keeps dstr_cat's contract (NULL on OOM, out left alive), so
 * the string it was given is freed here. */
static dstr value_of(cfg *c) {
    dstr e = dstr_empty();
    return e ? dstr_or_free(e, get_value(c, e)) : NULL;
}

/* ---------------------------------------------------------- special kinds */

static int parse_class(const char *s, obuf_limit **out) {
    if (!strcasecmp(s, "normal")) *out = &srv.obuf_normal;
    else if (!strcasecmp(s, "replica") || !strcasecmp(s, "slave")) *out = &srv.obuf_replica;
    else if (!strcasecmp(s, "pubsub")) *out = &srv.obuf_pubsub;
    else return 0;
    return 1;
}

static int set_obuf(const char **argv, int argc, char *err, size_t errlen) {
    /* A single CONFIG SET argument holds all the words. */
    dstr *words = NULL;
    int n = argc;
    const char **w = argv;
    if (argc == 1) {
        n = resp_split_args(argv[0], strlen(argv[0]), &words);
        if (n < 0) goto bad;
        w = (const char **)words;
    }
    if (n % 4 != 0 || n == 0) goto bad;
    obuf_limit vals[3];
    obuf_limit *slots[3];
    for (int i = 0; i < n / 4 && i < 3; i++) {
        long long hard, soft, secs;
        if (!parse_class(w[i * 4], &slots[i])) {
            if (words) resp_free_args(words, n);
            snprintf(err, errlen, "Invalid client class specified in buffer limit configuration.");
            return ERR;
        }
        if (!parse_mem(w[i * 4 + 1], &hard) ||
            !parse_mem(w[i * 4 + 2], &soft) || !str_to_ll(w[i * 4 + 3], strlen(w[i * 4 + 3]), &secs) ||
            secs < 0)
            goto bad;
        vals[i].hard = (unsigned long long)hard;
        vals[i].soft = (unsigned long long)soft;
        vals[i].soft_seconds = secs;
    }
    if (n / 4 > 3) goto bad;
    for (int i = 0; i < n / 4; i++) *slots[i] = vals[i];
    if (words) resp_free_args(words, n);
    return OK;
bad:
    if (words) resp_free_args(words, n);
    snprintf(err, errlen, "Wrong number of arguments in buffer limit configuration.");
    return ERR;
}

static dstr get_obuf(dstr out) {
    return dstr_catfmt(out, "normal %llu %llu %lld slave %llu %llu %lld pubsub %llu %llu %lld",
                       srv.obuf_normal.hard, srv.obuf_normal.soft, srv.obuf_normal.soft_seconds,
                       srv.obuf_replica.hard, srv.obuf_replica.soft, srv.obuf_replica.soft_seconds,
                       srv.obuf_pubsub.hard, srv.obuf_pubsub.soft, srv.obuf_pubsub.soft_seconds);
}

/* Save points are validated here and kept as text; persist.c reads the
 * pairs (seconds, changes) from it in the cron. */
static int set_save(const char **argv, int argc, char *err, size_t errlen) {
    dstr joined = dstr_empty();
    for (int i = 0; joined && i < argc; i++) {
        joined = dstr_or_free(joined, dstr_catfmt(joined, "%s%s", i ? " " : "", argv[i]));
    }
    if (!joined) {
        snprintf(err, errlen, "out of memory");
        return ERR;
    }
    dstr *w;
    int n = resp_split_args(joined, dstr_len(joined), &w);
    int bad = n < 0 || n % 2 != 0;
    for (int i = 0; !bad && i < n; i++) {
        long long v;
        if (!str_to_ll(w[i], dstr_len(w[i]), &v) || v < 0) bad = 1;
    }
    if (n >= 0) resp_free_args(w, n);
    if (bad) {
        dstr_free(joined);
        snprintf(err, errlen, "Invalid save parameters");
        return ERR;
    }
    dstr_free(srv.save_params);
    srv.save_params = joined;
    return OK;
}

static dstr get_save(dstr out) {
    return srv.save_params ? dstr_catlen(out, srv.save_params, dstr_len(srv.save_params)) : out;
}

static int set_bind(const char **argv, int argc, char *err, size_t errlen) {
    dstr joined = dstr_empty();
    for (int i = 0; joined && i < argc; i++)
        joined = dstr_or_free(joined, dstr_catfmt(joined, "%s%s", i ? " " : "", argv[i]));
    if (!joined) {
        snprintf(err, errlen, "out of memory");
        return ERR;
    }
    dstr_free(srv.bindaddr);
    srv.bindaddr = joined;
    return OK;
}

static dstr get_bind(dstr out) {
    return dstr_cat(out, srv.bindaddr ? srv.bindaddr : "* -::*");
}

static int set_perm(const char **argv, int argc, char *err, size_t errlen) {
    char *end;
    if (argc != 1) goto bad;
    errno = 0;
    long v = strtol(argv[0], &end, 8);
    if (errno || *end || v < 0 || v > 0777) goto bad;
    srv.unixsocketperm = (int)v;
    return OK;
bad:
    snprintf(err, errlen, "Invalid socket file permissions");
    return ERR;
}

static dstr get_perm(dstr out) { return dstr_catfmt(out, "%o", srv.unixsocketperm); }

static int set_dir(const char **argv, int argc, char *err, size_t errlen) {
    if (argc != 1 || chdir(argv[0]) != 0) {
        snprintf(err, errlen, "%s", argc == 1 ? strerror(errno) : "wrong number of arguments");
        return ERR;
    }
    return OK;
}

/* As Redis: a file name in `dir`, never a path. */
static int set_dbfilename(const char **argv, int argc, char *err, size_t errlen) {
    if (argc != 1) {
        snprintf(err, errlen, "wrong number of arguments");
        return ERR;
    }
    if (strchr(argv[0], '/')) {
        snprintf(err, errlen, "dbfilename can't be a path, just a filename");
        return ERR;
    }
    if (!*argv[0]) {
        snprintf(err, errlen, "dbfilename can't be empty");
        return ERR;
    }
    dstr n = dstr_new(argv[0]);
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return ERR;
    }
    dstr_free(srv.dbfilename);
    srv.dbfilename = n;
    return OK;
}

static dstr get_dbfilename(dstr out) { return srv.dbfilename ? dstr_cat(out, srv.dbfilename) : out; }

/* appendonly: at start it only says whether to load and keep an AOF; at
 * run time (the event loop exists) turning it on starts the rewrite that
 * writes the base, turning it off closes the file. */
static int set_appendonly(const char **argv, int argc, char *err, size_t errlen) {
    int on;
    if (argc != 1 || (strcasecmp(argv[0], "yes") && strcasecmp(argv[0], "no"))) {
        snprintf(err, errlen, "argument must be 'yes' or 'no'");
        return ERR;
    }
    on = !strcasecmp(argv[0], "yes");
    if (srv.el && on != aofcfg.appendonly && aof_set_enabled(on, err, errlen) != OK) return ERR;
    aofcfg.appendonly = on;
    return OK;
}

static dstr get_appendonly(dstr out) { return dstr_cat(out, aofcfg.appendonly ? "yes" : "no"); }

static int set_plain_name(dstr *slot, const char *what, const char **argv, int argc, char *err, size_t errlen) {
    if (argc != 1) {
        snprintf(err, errlen, "wrong number of arguments");
        return ERR;
    }
    if (strchr(argv[0], '/')) {
        snprintf(err, errlen, "%s can't be a path, just a %s", what, !strcmp(what, "appenddirname") ? "dirname" : "filename");
        return ERR;
    }
    if (!*argv[0] || !strcmp(argv[0], ".") || !strcmp(argv[0], "..")) {
        snprintf(err, errlen, "%s is not valid", what);
        return ERR;
    }
    dstr n = dstr_new(argv[0]);
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return ERR;
    }
    dstr_free(*slot);
    *slot = n;
    return OK;
}

static int set_appendfilename(const char **argv, int argc, char *err, size_t errlen) {
    return set_plain_name(&aofcfg.filename, "appendfilename", argv, argc, err, errlen);
}
static dstr get_appendfilename(dstr out) { return dstr_cat(out, aofcfg.filename ? aofcfg.filename : ""); }
static int set_appenddirname(const char **argv, int argc, char *err, size_t errlen) {
    return set_plain_name(&aofcfg.dirname, "appenddirname", argv, argc, err, errlen);
}
static dstr get_appenddirname(dstr out) { return dstr_cat(out, aofcfg.dirname ? aofcfg.dirname : ""); }

static dstr get_dir(dstr out) {
    char buf[4096];
    if (!getcwd(buf, sizeof buf)) return out;
    return dstr_cat(out, buf);
}

/* ---------------------------------------------------------------- loading */

void config_init_defaults(void) {
    srv.port = 6379;
    srv.dbnum = 16;
    srv.maxclients = 10000;
    srv.hz = 10;
    srv.tcp_backlog = 511;
    srv.tcp_keepalive = 300;
    srv.protected_mode = 1;
    srv.proto_max_bulk_len = 512LL * 1024 * 1024;
    srv.client_query_buffer_limit = 1024LL * 1024 * 1024;
    srv.obuf_normal = (obuf_limit){0, 0, 0};
    srv.obuf_replica = (obuf_limit){256ULL << 20, 64ULL << 20, 60};
    srv.obuf_pubsub = (obuf_limit){32ULL << 20, 8ULL << 20, 60};
    srv.maxmemory_policy = EVICT_NOEVICTION;
    srv.maxmemory_samples = 5;
    srv.active_expire_effort = 1;
    srv.verbosity = LL_NOTICE;
    srv.latency_tracking = 1;
    srv.save_params = dstr_new("3600 1 300 100 60 10000");
    srv.dbfilename = dstr_new("dump.rdb");
    compat_yesno[3] = compat_yesno[4] = compat_yesno[5] = 1;
    compat_str[1] = dstr_new("no");
    aofcfg.filename = dstr_new("appendonly.aof");
    aofcfg.dirname = dstr_new("appendonlydir");
    infer_config_defaults();
}

int config_load_file(const char *path, char *err, size_t errlen) {
    FILE *fp = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!fp) {
        snprintf(err, errlen, "Fatal error, can't open config file '%s': %s", path, strerror(errno));
        return ERR;
    }
    char line[4096];
    int lineno = 0, rc = OK;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        size_t len = strlen(line);
        while (len && isspace((unsigned char)line[len - 1])) line[--len] = '\0';
        const char *p = line;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '\0' || *p == '#') continue;
        dstr *argv;
        int argc = resp_split_args(p, strlen(p), &argv);
        char e[256] = "Unbalanced quotes in configuration line";
        if (argc < 1 || config_set_option(argv[0], (const char **)argv + 1, argc - 1, 1, e, sizeof e) != OK) {
            snprintf(err, errlen,
                     "\n*** FATAL CONFIG FILE ERROR (Redis %s) ***\nReading the configuration file, at line %d\n>>> '%s'\n%s",
                     INFERKV_VERSION, lineno, p, e);
            if (argc >= 0) resp_free_args(argv, argc);
            rc = ERR;
            break;
        }
        resp_free_args(argv, argc);
    }
    if (fp != stdin) fclose(fp);
    return rc;
}

/* ------------------------------------------------------------- CONFIG */

/* A name without glob characters is looked up directly and answered under
 * the spelling the client used; a pattern is matched against every name. */
static void config_get(client *c) {
    const char *names[NCFG * 2];
    cfg *hits[NCFG * 2];
    size_t n = 0;
    for (int a = 2; a < c->argc; a++) {
        const dstr pat = c->argv[a];
        int glob = strpbrk(pat, "[*?") != NULL;
        for (size_t i = 0; i < NCFG && n < NCFG * 2; i++) {
            cfg *x = &table[i];
            const char *name = NULL;
            if (!glob) {
                if (!strcasecmp(pat, x->name) || (x->alias && !strcasecmp(pat, x->alias))) name = pat;
            } else if (glob_match(pat, dstr_len(pat), x->name, strlen(x->name), 1)) {
                name = x->name;
            }
            if (!name) continue;
            int dup = 0;
            for (size_t k = 0; k < n && !dup; k++) dup = !strcasecmp(names[k], name);
            if (dup) continue;
            names[n] = name;
            hits[n++] = x;
        }
    }
    /* all values before the map header: an error cannot follow it */
    dstr vals[NCFG * 2];
    for (size_t k = 0; k < n; k++) {
        vals[k] = value_of(hits[k]);
        if (!vals[k]) {
            while (k) dstr_free(vals[--k]);
            reply_error(c, "ERR out of memory");
            return;
        }
    }
    reply_map_len(c, (long)n);
    for (size_t k = 0; k < n; k++) {
        reply_bulk_cstr(c, names[k]);
        reply_bulk_dstr(c, vals[k]);
        dstr_free(vals[k]);
    }
}

static int apply_value(cfg *x, const char *val, char *err, size_t errlen) {
    const char *argv1[1] = {val};
    dstr *words = NULL;
    int wc = 1;
    const char **argv = argv1;
    if (x->kind == K_SPECIAL && strcmp(x->name, "dir") != 0 && strcmp(x->name, "infer-models-dir") != 0 &&
        strcmp(x->name, "dbfilename") != 0) {
        wc = resp_split_args(val, strlen(val), &words);
        if (wc < 0) wc = 0;
        argv = (const char **)words;
    }
    int r = config_set_option(x->name, argv, wc, 1, err, errlen);
    if (words) resp_free_args(words, wc);
    return r;
}

/* What a value needs beyond being stored, checked while it can still be
 * rolled back.  slowlog-max-len drops the oldest entries over it.
 * maxclients: the process must be allowed that many files (the
 * soft RLIMIT_NOFILE is raised up to the hard one; 32 fds are kept for
 * files and listeners, as Redis keeps them), and the event loop's fd table
 * grows to match (it never shrinks, ae.c).  Either failing keeps the old
 * value, with Redis's error texts. */
static int after_apply(const cfg *x, char *err, size_t errlen) {
    if (!strcmp(x->name, "slowlog-max-len")) slowlog_apply_max_len();
    if (strcmp(x->name, "maxclients") != 0) return OK;
    rlim_t want = (rlim_t)srv.maxclients + 32;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit up = rl;
        up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) rl = up;
        if (rl.rlim_cur < want) {
            long long can = rl.rlim_cur > 32 ? (long long)(rl.rlim_cur - 32) : 1;
            snprintf(err, errlen,
                     "The operating system is not able to handle the specified number of clients, try with %lld", can);
            return ERR;
        }
    }
    long long need = (long long)srv.maxclients + 128;
    if (need > INT_MAX || ev_resize(srv.el, (int)need) != 0) {
        snprintf(err, errlen, "The event loop API used by Redis is not able to handle the specified number of clients");
        return ERR;
    }
    return OK;
}

/* CONFIG SET is all or nothing: values set before a failing one are put
 * back. */
static void config_set(client *c) {
    if (c->argc % 2) {
        reply_syntax_error(c);
        return;
    }
    int n = (c->argc - 2) / 2;
    cfg *seen[64];
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) {
        const dstr name = c->argv[2 + i * 2];
        cfg *x = find_cfg(name);
        if (!x) {
            reply_errorf(c, "ERR Unknown option or number of arguments for CONFIG SET - '%s'", name);
            return;
        }
        for (int k = 0; k < i; k++)
            if (seen[k] == x) {
                reply_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - duplicate parameter", name);
                return;
            }
        seen[i] = x;
        if (x->flags & IMMUTABLE) {
            reply_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - can't set immutable config", name);
            return;
        }
    }
    dstr old[64] = {0};
    for (int i = 0; i < n; i++) {
        old[i] = value_of(seen[i]);
        if (!old[i]) {
            for (int k = 0; k < i; k++) dstr_free(old[k]);
            reply_error(c, "ERR out of memory");
            return;
        }
    }
    int failed = -1;
    char err[512];
    for (int i = 0; i < n && failed < 0; i++)
        if (apply_value(seen[i], c->argv[3 + i * 2], err, sizeof err) != OK ||
            after_apply(seen[i], err, sizeof err) != OK)
            failed = i;
    if (failed >= 0) {
        char ignored[512];
        /* the failed one too: after_apply() fails with its value applied */
        for (int i = 0; i <= failed; i++) apply_value(seen[i], old[i], ignored, sizeof ignored);
        reply_errorf(c, "ERR CONFIG SET failed (possibly related to argument '%s') - %s",
                     c->argv[2 + failed * 2], err);
    } else {
        for (int i = 0; i < n; i++)
            if (!strcmp(seen[i]->name, "maxmemory")) evict_if_needed();
        reply_ok(c);
    }
    for (int i = 0; i < n; i++) dstr_free(old[i]);
}

static void reset_stats(void) {
    srv.stat_numcommands = srv.stat_numconnections = srv.stat_rejected_conn = 0;
    srv.stat_expiredkeys = srv.stat_evictedkeys = srv.stat_keyspace_hits = 0;
    srv.stat_keyspace_misses = srv.stat_net_input_bytes = srv.stat_net_output_bytes = 0;
    srv.stat_total_error_replies = srv.stat_unexpected_error_replies = 0;
    srv.stat_client_qbuf_limit_disconnections = srv.stat_client_outbuf_limit_disconnections = 0;
    srv.stat_expire_cycle_time_used = 0;
    srv.stat_peak_memory = km_used();
    commands_reset_stats();
    errorstat_reset();
}

void config_cmd(client *c) {
    static const char *help[] = {
        "GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>", "    Set the configuration <directive> to <value>.", "RESETSTAT",
        "    Reset statistics reported by the INFO command.", "REWRITE",
        "    Rewrite the configuration file.", NULL};
    const dstr sub = c->argv[1];
    if (arg_is(sub, "get")) config_get(c);
    else if (arg_is(sub, "set")) config_set(c);
    else if (arg_is(sub, "resetstat")) {
        reset_stats();
        reply_ok(c);
    } else if (arg_is(sub, "rewrite")) {
        if (!srv.configfile) reply_error(c, "ERR The server is running without a config file");
        else reply_error(c, "ERR Rewriting config file: not supported by inferkv yet");
    } else if (arg_is(sub, "help")) {
        reply_help(c, "CONFIG", help);
    } else {
        reply_subcommand_syntax_error(c);
    }
}

const char *config_debug_command(void) { return compat_str[1] ? compat_str[1] : "no"; }
