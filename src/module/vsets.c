/* vsets.c - Redis 8's vector sets (VADD, VSIM, ... VRANGE) inside a stock
 * Redis that has none, as the "vectorset" module data type.
 *
 * libvcmd (src/vcmd/) holds the commands - grammar, order of checks, error
 * texts, reply shapes - once for inferkv-server and for this module, over
 * libvset's HNSW sets.  This file is the module API's half of that
 * contract:
 *
 *   - a reply writer over RedisModule_ReplyWith*;
 *   - key access over RedisModule_OpenKey: WRONGTYPE for keys of any other
 *     type, the key created by the first VADD and deleted by the VREM that
 *     empties it, and for every change verbatim replication (replicas and
 *     the AOF see the command itself, as Redis 8 does) and a keyspace
 *     event;
 *   - the data type: RDB save/load (DUMP, RESTORE, DEBUG RELOAD too), AOF
 *     rewrite, MEMORY USAGE, DEBUG DIGEST-VALUE, COPY, lazy free;
 *   - registration only where the host has no VADD of its own.
 *
 * Memory: libvset allocates through RedisModule_Alloc & co., so sets count
 * in used_memory and maxmemory, and MEMORY USAGE is what the allocator
 * really handed out.
 *
 * Persistence, encoding version 1.  The value is vset_save's byte stream
 * (configuration, every node with its vector, attributes and links, so
 * that loading does not rebuild the graph), cut into string chunks of at
 * most 1 MiB and ended by an empty string:
 *     chunk(1..1 MiB) ... chunk(1..1 MiB) ""
 * so that neither side ever holds a second copy of a large set, and the
 * loader can check every length before it trusts it.  Redis 8's own type
 * has the same name with encoding version 0 and another layout: each side
 * refuses the other's records (encver differs) instead of misreading them.
 *
 * Unload: Redis never unloads a module that defines a data type, so with
 * vector sets (the default) MODULE UNLOAD infer is refused for good; a
 * deployment that needs to unload loads the module with
 * infer-vector-sets no.
 *
 * Threads: every command completes on the main thread (vc_ctx.can_defer
 * 0), which inside MULTI and scripts it must anyway.  rdb_save and
 * aof_rewrite run on the main thread or in a fork child, one at a time;
 * free may run on a lazy-free thread once the key is gone. */
#include "mod.h"
#include "vcmd.h"
#include "vset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VS_TYPE_NAME "vectorset" /* exactly 9 characters, as the API requires */
#define VS_ENCVER 1
#define VS_CHUNK (1u << 20)
#define VS_RESTORE_CMD "infer.vsetrestore" /* lower case, as the INFER.* commands are registered */

static RedisModuleType *vs_type;
static uint64_t vs_rng; /* main thread only: VRANDMEMBER draws, new sets' seeds */

static uint64_t next_random(void) {
    /* splitmix64: cheap, and only needs to differ between calls */
    uint64_t z = (vs_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- replies ----------------------------------------------------------------- */

static void r_array(void *c, long n) { RedisModule_ReplyWithArray(c, n); }
static void r_map(void *c, long pairs) { RedisModule_ReplyWithMap(c, pairs); }
static void r_bulk(void *c, const char *p, size_t n) { RedisModule_ReplyWithStringBuffer(c, p, n); }
static void r_simple(void *c, const char *s) { RedisModule_ReplyWithSimpleString(c, s); }
static void r_integer(void *c, long long v) { RedisModule_ReplyWithLongLong(c, v); }
static void r_bool(void *c, int b) { RedisModule_ReplyWithBool(c, b); }
static void r_null(void *c) { RedisModule_ReplyWithNull(c); }
static void r_null_array(void *c) { RedisModule_ReplyWithNullArray(c); }

static void r_double_resp2(void *c, double d) {
    char buf[64];
    int n = vc_format_double(buf, sizeof buf, d);
    RedisModule_ReplyWithStringBuffer(c, buf, (size_t)n);
}

/* RESP3 has a double type a client reads as a number, whatever the digits. */
static void r_double_resp3(void *c, double d) { RedisModule_ReplyWithDouble(c, d); }

static void r_error(void *c, const char *line) {
    /* A FILTER error echoes the client's expression, which may hold line
     * breaks; an error reply must be one line.  (7.0 maps them too, but
     * nothing in the API promises it.) */
    if (!strpbrk(line, "\r\n")) {
        RedisModule_ReplyWithError(c, line);
        return;
    }
    size_t n = strlen(line);
    char *copy = infer_malloc(n + 1);
    if (!copy) {
        RedisModule_ReplyWithError(c, "ERR out of memory");
        return;
    }
    for (size_t i = 0; i <= n; i++) copy[i] = line[i] == '\r' || line[i] == '\n' ? ' ' : line[i];
    RedisModule_ReplyWithError(c, copy);
    free(copy);
}

/* ---- key access ------------------------------------------------------------ */

/* The key in argv[1], opened as the command asks and closed after it. */
typedef struct vkey {
    RedisModuleCtx *ctx;
    RedisModuleString *name;
    RedisModuleKey *key;
    int removed; /* the last element went, and the key with it */
} vkey;

static int vk_lookup(void *kc, int write, vset **s) {
    vkey *k = kc;
    RedisModule_CloseKey(k->key); /* NULL-safe; a CAS finish looks up again */
    k->key = RedisModule_OpenKey(k->ctx, k->name, write ? REDISMODULE_READ | REDISMODULE_WRITE : REDISMODULE_READ);
    int t = RedisModule_KeyType(k->key); /* EMPTY for a NULL handle (a missing key opened to read) */
    if (t == REDISMODULE_KEYTYPE_EMPTY) return VC_KEY_MISSING;
    if (t != REDISMODULE_KEYTYPE_MODULE || RedisModule_ModuleTypeGetType(k->key) != vs_type)
        return VC_KEY_WRONGTYPE;
    *s = RedisModule_ModuleTypeGetValue(k->key);
    return *s ? VC_KEY_FOUND : VC_KEY_MISSING;
}

static int vk_create(void *kc, vset *s) {
    vkey *k = kc;
    if (!k->key || RedisModule_ModuleTypeSetValue(k->key, vs_type, s) != REDISMODULE_OK) return -1;
    return 0;
}

static void vk_remove(void *kc) {
    vkey *k = kc;
    if (k->key && RedisModule_DeleteKey(k->key) == REDISMODULE_OK) k->removed = 1;
}

/* Events in the module class 'd' ("vadd", "vrem", "vsetattr"), as
 * inferkv-server sends them: a subscriber to 'g' alone is not sent events
 * of a type it never asked for.  Redis 8 sends none. */
static void vk_changed(void *kc, const char *event) {
    vkey *k = kc;
    RedisModule_ReplicateVerbatim(k->ctx);
    RedisModule_NotifyKeyspaceEvent(k->ctx, REDISMODULE_NOTIFY_MODULE, event, k->name);
}

static const vc_keyops keyops = {.lookup = vk_lookup, .create = vk_create, .remove = vk_remove, .changed = vk_changed};

/* Closing a key opened for writing signals WATCH (even when nothing
 * changed, as for any module key); the VREM that emptied the set is
 * followed by "del", as emptying any other collection is. */
static void vk_close(vkey *k) {
    RedisModule_CloseKey(k->key);
    k->key = NULL;
    if (k->removed) RedisModule_NotifyKeyspaceEvent(k->ctx, REDISMODULE_NOTIFY_GENERIC, "del", k->name);
}

/* ---- the commands ------------------------------------------------------------- */

/* One handler for the thirteen commands; libvcmd dispatches on argv[0]. */
static int cmd_vset(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    vc_arg stack[16], *a = stack;
    if (argc > (int)(sizeof stack / sizeof stack[0])) {
        /* VALUES takes one argument per component: up to 65536 */
        a = infer_malloc((size_t)argc * sizeof *a);
        if (!a) return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    }
    for (int i = 0; i < argc; i++) a[i].ptr = RedisModule_StringPtrLen(argv[i], &a[i].len);
    int resp3 = mod_is_resp3(ctx);
    vc_reply r = {.c = ctx, .resp3 = resp3, .array = r_array, .map = r_map, .bulk = r_bulk, .simple = r_simple,
                  .integer = r_integer, .dbl = resp3 ? r_double_resp3 : r_double_resp2, .boolean = r_bool,
                  .null = r_null, .null_array = r_null_array, .error = r_error};
    vkey k = {ctx, argc > 1 ? argv[1] : NULL, NULL, 0};
    vc_ctx x = {.ops = &keyops, .key_ctx = &k, .r = &r, .can_defer = 0, .rand = next_random()};
    if (argc < 2) {
        /* only when the server did not take the arity from SetCommandInfo */
        RedisModule_WrongArity(ctx);
    } else {
        int rc = vc_exec(a, argc, &x);
        if (rc == VC_DEFERRED) {
            /* can_defer is 0, so libvcmd should not defer; if it does, the
             * job runs here, on the main thread */
            vc_job_run(x.job);
            vc_job_finish(x.job, &keyops, &k, &r);
        } else if (rc == VC_UNKNOWN) {
            RedisModule_ReplyWithError(ctx, "ERR unknown vector-set command");
        }
    }
    vk_close(&k);
    if (a != stack) free(a);
    return REDISMODULE_OK;
}

/* Reads a byte stream spread over consecutive string arguments. */
typedef struct arg_in {
    RedisModuleString **argv;
    int argc, i;
    size_t pos;
} arg_in;

static int arg_read(void *ud, void *p, size_t n) {
    arg_in *in = ud;
    unsigned char *out = p;
    while (n) {
        if (in->i >= in->argc) return -1;
        size_t len;
        const char *s = RedisModule_StringPtrLen(in->argv[in->i], &len);
        if (in->pos == len) {
            in->i++;
            in->pos = 0;
            continue;
        }
        size_t take = len - in->pos < n ? len - in->pos : n;
        memcpy(out, s + in->pos, take);
        out += take;
        in->pos += take;
        n -= take;
    }
    return 0;
}

static int arg_rest_empty(arg_in *in) {
    for (; in->i < in->argc; in->i++, in->pos = 0) {
        size_t len;
        RedisModule_StringPtrLen(in->argv[in->i], &len);
        if (in->pos < len) return 0;
    }
    return 1;
}

/* INFER.VSETRESTORE key chunk [chunk ...] - creates key from vset_save
 * bytes (the chunks concatenated).  What the AOF rewrite writes for a set
 * made with REDUCE, whose input vectors are gone (see aof_rewrite); the
 * bytes are checked as hostile, as an RDB's are.  O(N) in the bytes. */
static int cmd_vsetrestore(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3) return RedisModule_WrongArity(ctx);
    RedisModuleKey *key = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE);
    if (RedisModule_KeyType(key) != REDISMODULE_KEYTYPE_EMPTY) {
        RedisModule_CloseKey(key);
        return RedisModule_ReplyWithError(ctx, "BUSYKEY Target key name already exists.");
    }
    arg_in in = {argv + 2, argc - 2, 0, 0};
    char err[256];
    vset *s = vset_load(arg_read, &in, err, sizeof err);
    const char *bad = s ? NULL : err;
    if (s && !arg_rest_empty(&in)) bad = "ERR vector set data: bytes after the end";
    else if (s && vset_card(s) == 0) bad = "ERR vector set data: an empty set"; /* never stored */
    if (!bad && RedisModule_ModuleTypeSetValue(key, vs_type, s) != REDISMODULE_OK) bad = "ERR cannot store the set";
    if (bad) {
        if (s) vset_free(s);
        RedisModule_CloseKey(key);
        return r_error(ctx, bad), REDISMODULE_OK;
    }
    RedisModule_CloseKey(key);
    RedisModule_ReplicateVerbatim(ctx);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_GENERIC, "restore", argv[1]);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* ---- persistence: chunked byte streams ------------------------------------------ */

/* One chunk being filled, shared by rdb_save and aof_rewrite: the server
 * calls them one at a time (main thread or fork child), and a static
 * buffer means saving never depends on an allocation. */
static char chunk_buf[VS_CHUNK];

typedef struct chunk_out {
    size_t used;
    RedisModuleIO *io;
    /* aof_rewrite of a REDUCE set: the chunks become strings */
    RedisModuleString **parts;
    size_t nparts, cap;
} chunk_out;

static void chunk_flush(chunk_out *o) {
    if (!o->used) return;
    if (!o->parts) {
        RedisModule_SaveStringBuffer(o->io, chunk_buf, o->used);
    } else {
        if (o->nparts == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 8;
            /* RedisModule_Realloc aborts when memory runs out: in the
             * rewrite's fork child that fails the rewrite and the old AOF
             * stays, which is the right outcome (never a partial set) */
            o->parts = RedisModule_Realloc(o->parts, o->cap * sizeof *o->parts);
        }
        o->parts[o->nparts++] = RedisModule_CreateString(NULL, chunk_buf, o->used);
    }
    o->used = 0;
}

static int chunk_write(void *ud, const void *p, size_t n) {
    chunk_out *o = ud;
    const char *b = p;
    while (n) {
        size_t take = VS_CHUNK - o->used < n ? VS_CHUNK - o->used : n;
        memcpy(chunk_buf + o->used, b, take);
        o->used += take;
        b += take;
        n -= take;
        if (o->used == VS_CHUNK) chunk_flush(o);
    }
    return 0;
}

typedef struct chunk_in {
    RedisModuleIO *io;
    char *cur; /* RedisModule_Alloc'd by LoadStringBuffer */
    size_t len, pos;
    const char *why; /* what was wrong with the stream itself */
    char whybuf[96];
} chunk_in;

/* The next chunk into in->cur: 1 (one), 0 (the terminator), -1 (error). */
static int chunk_next(chunk_in *in) {
    if (in->cur) RedisModule_Free(in->cur);
    in->cur = NULL;
    in->len = in->pos = 0;
    size_t len = 0;
    char *c = RedisModule_LoadStringBuffer(in->io, &len);
    if (RedisModule_IsIOError(in->io) || !c) {
        if (c) RedisModule_Free(c);
        in->why = "short read or not a string chunk";
        return -1;
    }
    if (len > VS_CHUNK) {
        RedisModule_Free(c);
        snprintf(in->whybuf, sizeof in->whybuf, "a chunk of %zu bytes (at most %u)", len, VS_CHUNK);
        in->why = in->whybuf;
        return -1;
    }
    in->cur = c;
    in->len = len;
    return len > 0;
}

static int chunk_read(void *ud, void *p, size_t n) {
    chunk_in *in = ud;
    unsigned char *out = p;
    while (n) {
        if (in->pos == in->len) {
            int rc = chunk_next(in);
            if (rc < 0) return -1;
            if (rc == 0) {
                in->why = "the data ends early";
                return -1;
            }
        }
        size_t take = in->len - in->pos < n ? in->len - in->pos : n;
        memcpy(out, in->cur + in->pos, take);
        out += take;
        in->pos += take;
        n -= take;
    }
    return 0;
}

/* ---- the data type's callbacks -------------------------------------------------- */

static void *vs_rdb_load(RedisModuleIO *io, int encver) {
    if (encver != VS_ENCVER) {
        RedisModule_LogIOError(io, "warning",
                               "vectorset: encoding version %d is not inferkv.so's (%d); Redis 8's vector sets "
                               "(version 0) are not readable here",
                               encver, VS_ENCVER);
        return NULL;
    }
    chunk_in in = {io, NULL, 0, 0, NULL, {0}};
    char err[256];
    vset *s = vset_load(chunk_read, &in, err, sizeof err);
    const char *bad = NULL;
    if (!s) {
        bad = err;
    } else if (in.pos != in.len) {
        bad = "bytes after the end of the set";
    } else {
        int rc = chunk_next(&in);
        if (rc != 0) bad = rc > 0 ? "bytes after the end of the set" : "no end marker";
        else if (vset_card(s) == 0) bad = "an empty set (never saved)";
    }
    if (bad && !in.why) {
        /* The chunks themselves are intact: read up to the end marker, so
         * that the server goes on to say the module could not load the
         * value rather than that the value has no end. */
        while (in.len && chunk_next(&in) > 0) {
        }
    }
    if (in.cur) RedisModule_Free(in.cur);
    if (bad) {
        if (!strncmp(bad, "ERR ", 4)) bad += 4;
        RedisModule_LogIOError(io, "warning", "vectorset: corrupt value, not loaded: %s%s%s%s", bad,
                               in.why ? " (" : "", in.why ? in.why : "", in.why ? ")" : "");
        if (s) vset_free(s);
        return NULL;
    }
    return s;
}

static void vs_rdb_save(RedisModuleIO *io, void *value) {
    chunk_out o = {0, io, NULL, 0, 0};
    vset_save(value, chunk_write, &o); /* chunk_write never fails: IO errors are the server's */
    chunk_flush(&o);
    RedisModule_SaveStringBuffer(io, "", 0);
}

/* A float vector as little-endian bytes, in place. */
static void to_le(float *v, uint32_t n) {
    unsigned char *b = (unsigned char *)v;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &v[i], 4);
        b[4 * i] = (unsigned char)w;
        b[4 * i + 1] = (unsigned char)(w >> 8);
        b[4 * i + 2] = (unsigned char)(w >> 16);
        b[4 * i + 3] = (unsigned char)(w >> 24);
    }
}

typedef struct emit_ud {
    RedisModuleIO *aof;
    RedisModuleString *key;
    vset *s;
    const char *quant;
    long long m;
} emit_ud;

static float emit_vec[VSET_MAX_DIM]; /* static for the reason chunk_buf is */

static int emit_one(void *ud, uint32_t id) {
    emit_ud *e = ud;
    size_t nlen, alen;
    const char *name = vset_name(e->s, id, &nlen);
    const char *attr = vset_attr(e->s, id, &alen);
    uint32_t dim = vset_dim(e->s);
    vset_get_vector(e->s, id, emit_vec);
    to_le(emit_vec, dim);
    char *blob = (char *)emit_vec;
    size_t blen = (size_t)dim * 4;
    if (attr && alen)
        RedisModule_EmitAOF(e->aof, "VADD", "scbbcclcb", e->key, "FP32", blob, blen, (char *)name, nlen, e->quant,
                            "M", e->m, "SETATTR", (char *)attr, alen);
    else
        RedisModule_EmitAOF(e->aof, "VADD", "scbbccl", e->key, "FP32", blob, blen, (char *)name, nlen, e->quant,
                            "M", e->m);
    return 0;
}

/* Only runs with aof-use-rdb-preamble no (otherwise the rewrite is an
 * RDB).  A set is written as one VADD per element, with its quantization,
 * M and attributes, so that any server with vector sets replays it; the
 * vector is the stored one turned back into input space (Q8 gives back
 * the same int8 codes when re-added; the graph is rebuilt).  A set made
 * with REDUCE stores only projected vectors, which VADD would project a
 * second time: it is written whole instead, as INFER.VSETRESTORE with the
 * RDB bytes, which restores it exactly (graph included). */
static void vs_aof_rewrite(RedisModuleIO *aof, RedisModuleString *key, void *value) {
    vset *s = value;
    if (vset_reduce(s)) {
        chunk_out o = {0, NULL, NULL, 0, 0};
        /* parts set: flushed chunks become strings (Alloc aborts rather
         * than fail, which in the fork child fails the rewrite) */
        o.parts = RedisModule_Alloc(8 * sizeof *o.parts);
        o.cap = 8;
        vset_save(s, chunk_write, &o);
        chunk_flush(&o);
        RedisModule_EmitAOF(aof, VS_RESTORE_CMD, "sv", key, o.parts, o.nparts);
        for (size_t i = 0; i < o.nparts; i++) RedisModule_FreeString(NULL, o.parts[i]);
        RedisModule_Free(o.parts);
        return;
    }
    int q = vset_quant(s);
    emit_ud e = {aof, key, s, q == VSET_NOQUANT ? "NOQUANT" : q == VSET_BIN ? "BIN" : "Q8", vset_m(s)};
    vset_range(s, NULL, 0, 0, emit_one, &e);
}

static void vs_free(void *value) { vset_free(value); }

static size_t vs_mem_usage(const void *value) { return vset_memory(value); }

static void vs_digest(RedisModuleDigest *md, void *value) {
    RedisModule_DigestAddLongLong(md, (long long)vc_digest(value));
    RedisModule_DigestEndSequence(md);
}

/* COPY: a deep copy, so writes to either side leave the other alone. */
static void *vs_copy(RedisModuleString *from, RedisModuleString *to, const void *value) {
    (void)from, (void)to;
    return vset_dup(value);
}

/* Past 64 units of effort UNLINK, FLUSHALL ASYNC and lazyfree-lazy-* free
 * the value on a background thread: a set costs about one free per
 * element. */
static size_t vs_free_effort(RedisModuleString *key, const void *value) {
    (void)key;
    return (size_t)vset_card(value) + 1;
}

/* ---- registration ---------------------------------------------------------------- */

/* Whether the host already serves VADD (Redis 8 and later, whose vector
 * sets are built in): COMMAND INFO VADD answers [nil] when it does not. */
static int host_has_vadd(RedisModuleCtx *ctx) {
    RedisModuleCallReply *r = RedisModule_Call(ctx, "COMMAND", "cc", "INFO", "VADD");
    if (!r) return 0;
    int has = 0;
    if (RedisModule_CallReplyType(r) == REDISMODULE_REPLY_ARRAY && RedisModule_CallReplyLength(r) >= 1) {
        RedisModuleCallReply *e = RedisModule_CallReplyArrayElement(r, 0);
        has = e && RedisModule_CallReplyType(e) == REDISMODULE_REPLY_ARRAY;
    }
    RedisModule_FreeCallReply(r);
    return has;
}

/* What each command does to its key, for cluster clients and ACL key
 * permissions. */
static uint64_t key_flags(const char *name) {
    if (!strcmp(name, "VADD")) return REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_INSERT;
    if (!strcmp(name, "VREM")) return REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_DELETE;
    if (!strcmp(name, "VSETATTR")) return REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_UPDATE;
    return REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS;
}

static const RedisModuleCommandInfoVersion info_version = {1, sizeof(RedisModuleCommandHistoryEntry),
                                                           sizeof(RedisModuleCommandKeySpec), 0};

/* Registers one command with the key at argv[1], its info (summary,
 * since, arity, key spec) and, where the server has the API, its ACL
 * categories. */
static int register_one(RedisModuleCtx *ctx, const char *name, RedisModuleCmdFunc fn, const char *flags, int arity,
                        const char *summary, const char *since, uint64_t kflags, const char *acl) {
    if (RedisModule_CreateCommand(ctx, name, fn, flags, 1, 1, 1) != REDISMODULE_OK) {
        RedisModule_Log(ctx, "warning", "vectorset: cannot register %s", name);
        return REDISMODULE_ERR;
    }
    RedisModuleCommand *cmd = RedisModule_GetCommand(ctx, name);
    RedisModuleCommandKeySpec specs[2];
    memset(specs, 0, sizeof specs); /* the zeroed second entry ends the list */
    specs[0].flags = kflags;
    specs[0].begin_search_type = REDISMODULE_KSPEC_BS_INDEX;
    specs[0].bs.index.pos = 1;
    specs[0].find_keys_type = REDISMODULE_KSPEC_FK_RANGE;
    specs[0].fk.range.lastkey = 0;
    specs[0].fk.range.keystep = 1;
    specs[0].fk.range.limit = 0;
    RedisModuleCommandInfo info;
    memset(&info, 0, sizeof info);
    info.version = &info_version;
    info.summary = summary;
    info.since = since;
    info.arity = arity;
    info.key_specs = specs;
    if (!cmd || RedisModule_SetCommandInfo(cmd, &info) != REDISMODULE_OK) {
        RedisModule_Log(ctx, "warning", "vectorset: cannot set the command info of %s", name);
        return REDISMODULE_ERR;
    }
    if (RedisModule_SetCommandACLCategories && acl &&
        RedisModule_SetCommandACLCategories(cmd, acl) != REDISMODULE_OK)
        RedisModule_Log(ctx, "warning", "vectorset: cannot set the ACL categories of %s", name);
    return REDISMODULE_OK;
}

/* The ACL categories Redis 8 gives a command: @read or @write, @fast or
 * @slow, plus @vectorset where the server can add a category. */
static void acl_of(const vc_command *c, int vectorset, char *out, size_t cap) {
    snprintf(out, cap, "%s %s%s", c->write ? "write" : "read", strstr(c->flags, "fast") ? "fast" : "slow",
             vectorset ? " vectorset" : "");
}

/* libvset's allocations ask libinfer's hook first (INFER.DEBUG
 * ALLOC-FAIL's sweeps fail them too), then go to the server. */
static void *vs_alloc_at(size_t n, const void *site) {
    if (!infer_alloc_allowed(n, site)) return NULL;
    return RedisModule_TryAlloc ? RedisModule_TryAlloc(n) : RedisModule_Alloc(n);
}

static void *vs_realloc_at(void *p, size_t n, const void *site) {
    return infer_alloc_allowed(n, site) ? RedisModule_Realloc(p, n) : NULL;
}

MOD_FAULTED(cmd_vset)

int mod_vsets_init(RedisModuleCtx *ctx) {
    if (host_has_vadd(ctx)) {
        RedisModule_Log(ctx, "notice",
                        "vectorset: the server has its own vector sets (VADD): inferkv.so registers none");
        return REDISMODULE_OK;
    }
    RedisModule_GetRandomBytes((unsigned char *)&vs_rng, sizeof vs_rng);
    /* Before any set exists: libvset's memory is the server's from here on.
     * TryAlloc (where the server has it) lets libvset answer an error
     * rather than abort the server when memory runs out. */
    vset_allocator a = {RedisModule_TryAlloc ? RedisModule_TryAlloc : RedisModule_Alloc, RedisModule_Realloc,
                        RedisModule_Free, RedisModule_MallocSize, vs_alloc_at, vs_realloc_at};
    vset_set_allocator(&a);
    /* rdb_load checks IsIOError itself: a corrupt payload fails the load
     * (or the RESTORE) instead of panicking the server. */
    RedisModule_SetModuleOptions(ctx, REDISMODULE_OPTIONS_HANDLE_IO_ERRORS);
    RedisModuleTypeMethods tm;
    memset(&tm, 0, sizeof tm);
    tm.version = REDISMODULE_TYPE_METHOD_VERSION_3;
    tm.rdb_load = vs_rdb_load;
    tm.rdb_save = vs_rdb_save;
    tm.aof_rewrite = vs_aof_rewrite;
    tm.mem_usage = vs_mem_usage;
    tm.digest = vs_digest;
    tm.free = vs_free;
    tm.free_effort = vs_free_effort;
    tm.copy = vs_copy;
    vs_type = RedisModule_CreateDataType(ctx, VS_TYPE_NAME, VS_ENCVER, &tm);
    if (!vs_type) {
        RedisModule_Log(ctx, "warning", "vectorset: cannot create the data type (another module has the name?)");
        return REDISMODULE_ERR;
    }
    int vectorset = RedisModule_AddACLCategory && RedisModule_SetCommandACLCategories &&
                    RedisModule_AddACLCategory(ctx, "vectorset") == REDISMODULE_OK;
    int n = 0;
    for (const vc_command *c = vc_commands(); c->name; c++, n++) {
        char acl[48];
        acl_of(c, vectorset, acl, sizeof acl);
        if (register_one(ctx, c->name, cmd_vset_faulted, c->flags, c->arity, c->summary, c->since, key_flags(c->name),
                         acl) != REDISMODULE_OK)
            return REDISMODULE_ERR;
    }
    if (register_one(ctx, VS_RESTORE_CMD, cmd_vsetrestore, "write deny-oom", -3,
                     "Create a vector set from its serialized bytes (the AOF rewrite of a REDUCE set)", "1.0.0",
                     REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE,
                     vectorset ? "write slow vectorset" : "write slow") != REDISMODULE_OK)
        return REDISMODULE_ERR;
    RedisModule_Log(ctx, "notice", "vectorset: %d commands registered (kernels %s, ACL categories %s)", n,
                    vset_kernels(),
                    RedisModule_SetCommandACLCategories ? (vectorset ? "with @vectorset" : "without @vectorset")
                                                        : "not supported by this server");
    return REDISMODULE_OK;
}

/* ---- VSIM for INFER.RAG's retrieval ----------------------------------------
 * INFER.RAG reads through RedisModule_Call, so that a host's own vector
 * sets serve it too.  On a Redis Cluster replica that cannot work: 7.0
 * routes a module's call by the keys it names, and a detached context has
 * no READONLY client, so every read there is sent to the primary (the call
 * fails).  Where this module serves the sets itself, rag.c then runs VSIM
 * here: libvcmd in-process, its reply collected instead of written. */

static int col_push(mod_vsim_out *o, const char *p, size_t n, int null) {
    if (o->failed) return -1;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 32;
        mod_vsim_item *v = infer_realloc(o->items, cap * sizeof *v);
        if (!v) return o->failed = 1, -1;
        o->items = v;
        o->cap = cap;
    }
    mod_vsim_item *it = &o->items[o->n];
    it->null = null;
    it->len = n;
    it->p = infer_malloc(n + 1);
    if (!it->p) return o->failed = 1, -1;
    if (n) memcpy(it->p, p, n);
    it->p[n] = 0;
    o->n++;
    return 0;
}

/* The RESP2 shape, flattened: arrays and maps add nothing but their items. */
static void c_nothing(void *c, long n) { (void)c, (void)n; }
static void c_bulk(void *c, const char *p, size_t n) { col_push(c, p, n, 0); }
static void c_simple(void *c, const char *s) { col_push(c, s, strlen(s), 0); }
static void c_null(void *c) { col_push(c, "", 0, 1); }
static void c_null_array(void *c) { col_push(c, "", 0, 1); }
static void c_integer(void *c, long long v) {
    char b[32];
    col_push(c, b, (size_t)snprintf(b, sizeof b, "%lld", v), 0);
}
static void c_bool(void *c, int v) { c_integer(c, v != 0); }
static void c_double(void *c, double d) {
    char b[64];
    col_push(c, b, (size_t)vc_format_double(b, sizeof b, d), 0);
}
static void c_error(void *c, const char *line) {
    mod_vsim_out *o = c;
    if (!o->err[0]) snprintf(o->err, sizeof o->err, "%s", line);
}

void mod_vsim_out_free(mod_vsim_out *o) {
    for (size_t i = 0; i < o->n; i++) free(o->items[i].p);
    free(o->items);
    memset(o, 0, sizeof *o);
}

int mod_vsim_direct(RedisModuleCtx *ctx, const ic_arg *args, int n, mod_vsim_out *out) {
    memset(out, 0, sizeof *out);
    if (!vs_type) return 1; /* the host's sets (or none): RedisModule_Call's */
    if (n < 2 || n > 16) return snprintf(out->err, sizeof out->err, "ERR bad VSIM call"), -1;
    vc_arg a[16];
    for (int i = 0; i < n; i++) a[i] = (vc_arg){args[i].ptr, args[i].len};
    RedisModuleString *name = RedisModule_CreateString(ctx, args[1].ptr, args[1].len);
    if (!name) return snprintf(out->err, sizeof out->err, "ERR out of memory"), -1;
    vc_reply r = {.c = out, .resp3 = 0, .array = c_nothing, .map = c_nothing, .bulk = c_bulk, .simple = c_simple,
                  .integer = c_integer, .dbl = c_double, .boolean = c_bool, .null = c_null,
                  .null_array = c_null_array, .error = c_error};
    vkey k = {ctx, name, NULL, 0};
    vc_ctx x = {.ops = &keyops, .key_ctx = &k, .r = &r, .can_defer = 0, .rand = next_random()};
    int rc = vc_exec(a, n, &x);
    if (rc == VC_DEFERRED) { /* can_defer is 0; should it defer, finish here */
        vc_job_run(x.job);
        vc_job_finish(x.job, &keyops, &k, &r);
    }
    vk_close(&k);
    RedisModule_FreeString(ctx, name);
    if (out->failed && !out->err[0]) snprintf(out->err, sizeof out->err, "ERR out of memory");
    if (rc == VC_UNKNOWN && !out->err[0]) snprintf(out->err, sizeof out->err, "ERR unknown vector-set command");
    return out->err[0] ? -1 : 0;
}
