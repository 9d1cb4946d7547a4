/* rdb_save.c - the dataset out as an RDB file (version 10).
 *
 * File: "REDIS0010", aux fields (redis-ver, redis-bits, ctime, used-mem,
 * aof-base, as redis-server 7.0.15 writes them, plus inferkv-ver, which
 * Redis skips), then per non-empty database SELECTDB and RESIZEDB and its
 * keys, each as [EXPIRETIME_MS ms] [IDLE secs] type key value, then EOF and
 * the CRC-64 of everything before it (zero with rdbchecksum no).
 *
 * Value encodings.  Redis 7.0 dumps small collections in its packed forms
 * and large ones as plain sequences; it loads both and converts on load to
 * the encoding its own thresholds ask for.  inferkv's collections are never
 * packed in Redis's way, so it writes the plain forms, which mirror its
 * memory layout and load into it without conversion:
 *     string  RDB_TYPE_STRING    integer encoding or LZF as Redis chooses
 *     list    RDB_TYPE_LIST      count, elements (Redis makes a quicklist)
 *     set     RDB_TYPE_SET       count, members (Redis: intset/hashtable)
 *     zset    RDB_TYPE_ZSET_2    count, (member, binary double) from the
 *                                highest score down, so that every insert
 *                                on load lands at the head of the skiplist
 *     hash    RDB_TYPE_HASH      count, (field, value) (Redis: listpack /
 *                                hashtable by its thresholds)
 *     stream  RDB_TYPE_STREAM_LISTPACKS_2, the only stream form: each node
 *             becomes the listpack Redis would hold (deleted entries and
 *             the master entry included), then the counters, the consumer
 *             groups with their PELs and consumers
 *     vector set  RDB_TYPE_MODULE_2 "vectorset" version 1, the layout of
 *             inferkv.so (src/module/vsets.c): vset_save's bytes in string
 *             chunks of at most 1 MiB, an empty string, the module EOF
 * Listpacks and long strings are LZF-compressed when rdbcompression is on,
 * as Redis does for every string it writes.
 *
 * Runs on the event loop (SAVE, SHUTDOWN, DEBUG RELOAD) or in the BGSAVE
 * fork child; it only reads the dataset. */
#include "rdb.h"
#include "stream.h"
#include "vset.h"
#include "zset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int rdb_value_type(const kobj *o) {
    switch (o->type) {
    case OBJ_STRING: return RDB_TYPE_STRING;
    case OBJ_LIST: return RDB_TYPE_LIST;
    case OBJ_SET: return RDB_TYPE_SET;
    case OBJ_ZSET: return RDB_TYPE_ZSET_2;
    case OBJ_HASH: return RDB_TYPE_HASH;
    case OBJ_STREAM: return RDB_TYPE_STREAM_LISTPACKS_2;
    case OBJ_VSET: return RDB_TYPE_MODULE_2;
    }
    return -1;
}

static void save_string_obj(rdb_out *out, const kobj *o) {
    if (o->enc == ENC_INT) {
        rdbo_string_ll(out, (long long)(intptr_t)o->ptr);
        return;
    }
    char buf[LL_STR_SIZE];
    size_t len;
    const char *p = obj_str(o, buf, &len);
    rdbo_string(out, p, len);
}

static void save_list(rdb_out *out, const klist *l) {
    size_t n = klist_len(l);
    rdbo_len(out, n);
    for (size_t i = 0; i < n; i++) {
        dstr s = klist_get(l, i);
        rdbo_string(out, s, dstr_len(s));
    }
}

static void save_set(rdb_out *out, dict *d) {
    rdbo_len(out, dict_size(d));
    dict_iter it;
    dict_iter_init(&it, d, 0);
    for (dict_entry *e; (e = dict_next(&it));) rdbo_string(out, e->key, dstr_len(e->key));
    dict_iter_done(&it);
}

static void save_zset(rdb_out *out, const zset *z) {
    rdbo_len(out, z->zsl->length);
    for (const zsl_node *x = z->zsl->tail; x; x = x->backward) {
        rdbo_string(out, x->ele, dstr_len(x->ele));
        rdbo_binary_double(out, x->score);
    }
}

static void save_hash(rdb_out *out, kobj *o) {
    rdbo_len(out, hash_len(o));
    hash_iter it;
    hp_entry e;
    hash_iter_init(&it, o);
    while (hash_iter_next(&it, &e)) {
        rdbo_string(out, e.f, e.flen);
        rdbo_string(out, e.v, e.vlen);
    }
    hash_iter_done(&it);
}

/* ---------------------------------------------------------------- streams */

static void put_id_be(unsigned char *b, const sid *id) {
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(id->ms >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(id->seq >> (56 - 8 * i));
    }
}

/* Node i as Redis's listpack: the master entry (count, deleted, fields,
 * 0), then every entry: flags, id relative to the master, [field count,
 * fields and values | values when the fields are the master's], and the
 * entry's element count. */
static int node_listpack(const stream *s, size_t i, lp_writer *w) {
    snode_info ni;
    stream_node_info(s, i, &ni);
    if (lpw_init(w) != OK) return ERR;
    lpw_int(w, ni.live);
    lpw_int(w, (long long)(ni.n - ni.live));
    lpw_int(w, ni.mfields);
    sentry m;
    stream_node_master_fields(s, i, &m);
    for (uint32_t k = 0; k < ni.mfields; k++) {
        const char *f;
        size_t flen;
        sentry_next_master_field(&m, &f, &flen);
        lpw_str(w, f, flen);
    }
    lpw_int(w, 0);
    for (uint32_t k = 0; k < ni.n; k++) {
        sentry e;
        int flags;
        stream_node_entry(s, i, k, &e, &flags);
        int same = (flags & 2) != 0;
        lpw_int(w, flags);
        lpw_int(w, (long long)(e.id.ms - ni.master.ms));
        lpw_int(w, (long long)(e.id.seq - ni.master.seq));
        if (!same) lpw_int(w, e.npairs);
        uint32_t npairs = e.npairs;
        for (uint32_t p = 0; p < npairs; p++) {
            const char *f, *v;
            size_t flen, vlen;
            sentry_next_pair(&e, &f, &flen, &v, &vlen);
            if (!same) lpw_str(w, f, flen);
            lpw_str(w, v, vlen);
        }
        lpw_int(w, same ? (long long)npairs + 3 : 2 * (long long)npairs + 4);
    }
    return lpw_finish(w);
}

static void save_pel_id(rdb_out *out, const sid *id) {
    unsigned char b[16];
    put_id_be(b, id);
    rdbo_raw(out, b, 16);
}

static void save_stream(rdb_out *out, const stream *s) {
    size_t nn = stream_node_count(s);
    rdbo_len(out, nn);
    for (size_t i = 0; i < nn; i++) {
        snode_info ni;
        stream_node_info(s, i, &ni);
        unsigned char key[16];
        put_id_be(key, &ni.master);
        rdbo_string(out, key, 16);
        lp_writer w;
        if (node_listpack(s, i, &w) != OK) {
            dstr_free(w.b);
            if (!out->failed) out->failed = ENOMEM;
            return;
        }
        rdbo_string(out, w.b, dstr_len(w.b));
        dstr_free(w.b);
    }
    rdbo_len(out, s->length);
    rdbo_len(out, s->last_id.ms);
    rdbo_len(out, s->last_id.seq);
    rdbo_len(out, s->first_id.ms);
    rdbo_len(out, s->first_id.seq);
    rdbo_len(out, s->max_deleted.ms);
    rdbo_len(out, s->max_deleted.seq);
    rdbo_len(out, s->entries_added);
    rdbo_len(out, s->ngroups);
    for (size_t g = 0; g < s->ngroups; g++) {
        const sgroup *gr = s->groups[g];
        rdbo_string(out, gr->name, dstr_len(gr->name));
        rdbo_len(out, gr->last_id.ms);
        rdbo_len(out, gr->last_id.seq);
        rdbo_len(out, (uint64_t)gr->entries_read); /* -1 (unknown) as Redis writes it */
        size_t np = pel_len(&gr->pel);
        rdbo_len(out, np);
        for (size_t k = 0; k < np; k++) {
            const nack *n = pel_at(&gr->pel, k);
            save_pel_id(out, &n->id);
            rdbo_ms(out, n->delivery_time);
            rdbo_len(out, n->delivery_count);
        }
        rdbo_len(out, gr->nconsumers);
        for (size_t c = 0; c < gr->nconsumers; c++) {
            const sconsumer *cs = gr->consumers[c];
            rdbo_string(out, cs->name, dstr_len(cs->name));
            rdbo_ms(out, cs->seen_time);
            size_t cp = pel_len(&cs->pel);
            rdbo_len(out, cp);
            for (size_t k = 0; k < cp; k++) save_pel_id(out, &pel_at(&cs->pel, k)->id);
        }
    }
}

/* ------------------------------------------------------------ vector sets */

/* One chunk being filled: a vector set can be far larger than any string
 * Redis wants in one piece, and a static buffer means saving never depends
 * on an allocation (SAVE and the fork child run one at a time). */
static unsigned char vs_chunk[RDB_VSET_CHUNK];

typedef struct vs_out {
    rdb_out *out;
    size_t used;
} vs_out;

static void vs_flush(vs_out *v) {
    if (!v->used) return;
    rdbo_len(v->out, RDB_MODULE_OPCODE_STRING);
    rdbo_string(v->out, vs_chunk, v->used);
    v->used = 0;
}

static int vs_write(void *ud, const void *p, size_t n) {
    vs_out *v = ud;
    const unsigned char *b = p;
    while (n) {
        size_t take = RDB_VSET_CHUNK - v->used < n ? RDB_VSET_CHUNK - v->used : n;
        memcpy(vs_chunk + v->used, b, take);
        v->used += take;
        b += take;
        n -= take;
        if (v->used == RDB_VSET_CHUNK) vs_flush(v);
    }
    return v->out->failed ? -1 : 0;
}

static void save_vset(rdb_out *out, const vset *s) {
    rdbo_len(out, rdb_module_id(RDB_VSET_MODULE_NAME, RDB_VSET_ENCVER));
    vs_out v = {out, 0};
    vset_save(s, vs_write, &v);
    vs_flush(&v);
    rdbo_len(out, RDB_MODULE_OPCODE_STRING);
    rdbo_string(out, "", 0);
    rdbo_len(out, RDB_MODULE_OPCODE_EOF);
}

/* -------------------------------------------------------------- the file */

void rdb_save_value(rdb_out *out, const kobj *o) {
    switch (o->type) {
    case OBJ_STRING: save_string_obj(out, o); break;
    case OBJ_LIST: save_list(out, o->ptr); break;
    case OBJ_SET: save_set(out, o->ptr); break;
    case OBJ_ZSET: save_zset(out, o->ptr); break;
    case OBJ_HASH: save_hash(out, (kobj *)o); break;
    case OBJ_STREAM: save_stream(out, o->ptr); break;
    case OBJ_VSET: save_vset(out, o->ptr); break;
    }
}

static void aux_str(rdb_out *out, const char *k, const char *v) {
    rdbo_u8(out, RDB_OPCODE_AUX);
    rdbo_string(out, k, strlen(k));
    rdbo_string(out, v, strlen(v));
}

static void aux_ll(rdb_out *out, const char *k, long long v) {
    char buf[LL_STR_SIZE];
    ll_to_str(buf, sizeof buf, v);
    aux_str(out, k, buf);
}

static int policy_saves_lru(void) {
    return srv.maxmemory_policy == EVICT_ALLKEYS_LRU || srv.maxmemory_policy == EVICT_VOLATILE_LRU;
}

typedef struct key_walk {
    rdb_out *out;
    const rdb_save_opts *opts;
    int save_lru;
    int db;
    uint64_t keys;
    dict *expires; /* NULL when the database has no TTLs */
} key_walk;

/* One key record: [EXPIRETIME_MS ms] [IDLE secs] type key value. */
static void save_key(key_walk *kw, dict_entry *e) {
    rdb_out *out = kw->out;
    const kobj *o = e->v.val;
    dstr key = e->key;
    uint64_t start = rdbo_offset(out);
    if (kw->expires) {
        dict_entry *x = dict_find(kw->expires, key);
        if (x) {
            rdbo_u8(out, RDB_OPCODE_EXPIRETIME_MS);
            rdbo_ms(out, x->v.s64);
        }
    }
    if (kw->save_lru) {
        rdbo_u8(out, RDB_OPCODE_IDLE);
        rdbo_len(out, obj_idle_ms(o) / 1000);
    }
    rdbo_u8(out, (unsigned)rdb_value_type(o));
    rdbo_string(out, key, dstr_len(key));
    rdb_save_value(out, o);
    const rdb_save_opts *opts = kw->opts;
    if (opts->on_key) opts->on_key(opts->on_key_ud, kw->db, key, dstr_len(key), start, rdbo_offset(out) - start);
    kw->keys++;
    if (opts->progress && (kw->keys & 1023) == 0) opts->progress(opts->progress_ud, kw->keys);
    if (opts->key_delay_us > 0) usleep((useconds_t)opts->key_delay_us);
}

/* Every key of a database, bucket by bucket.  Why not dict_next: the
 * entries of a large keyspace lie in memory in no relation to their
 * buckets, so each one is a cache miss, and then its value another; a
 * walk that prefetches the entry a few buckets ahead, and its value a few
 * buckets closer, overlaps those misses (SAVE of 1M keys spent most of its
 * time waiting on them).  Nothing changes the dict meanwhile: SAVE runs on
 * the event loop, BGSAVE in the fork child. */
#define PREFETCH_AHEAD 32
static void save_keys(key_walk *kw, dict *d) {
    for (int t = 0; t < 2 && !kw->out->failed; t++) {
        dict_entry **tab = d->table[t];
        if (!tab) continue;
        size_t n = (size_t)1 << d->size_exp[t];
        for (size_t i = 0; i < n && !kw->out->failed; i++) {
            if (i + PREFETCH_AHEAD < n && tab[i + PREFETCH_AHEAD]) __builtin_prefetch(tab[i + PREFETCH_AHEAD]);
            if (i + PREFETCH_AHEAD / 2 < n && tab[i + PREFETCH_AHEAD / 2])
                __builtin_prefetch(tab[i + PREFETCH_AHEAD / 2]->v.val);
            for (dict_entry *e = tab[i]; e; e = e->next) save_key(kw, e);
        }
    }
}

int rdb_write_file(rdb_out *out, const rdb_save_opts *opts, char *err, size_t errlen) {
    char magic[16];
    snprintf(magic, sizeof magic, "REDIS%04d", RDB_VERSION);
    rdbo_raw(out, magic, 9);
    aux_str(out, "redis-ver", INFERKV_VERSION);
    aux_ll(out, "redis-bits", (long long)(sizeof(void *) * 8));
    aux_ll(out, "ctime", (long long)time(NULL));
    aux_ll(out, "used-mem", (long long)km_used());
    aux_str(out, "inferkv-ver", INFERKV_OWN_VERSION);
    aux_ll(out, "aof-base", opts->aof_base ? 1 : 0);

    key_walk kw = {out, opts, policy_saves_lru(), 0, 0, NULL};
    for (int d = 0; d < srv.dbnum && !out->failed; d++) {
        kdb *db = &srv.dbs[d];
        if (dict_size(db->keys) == 0) continue;
        rdbo_u8(out, RDB_OPCODE_SELECTDB);
        rdbo_len(out, (uint64_t)d);
        rdbo_u8(out, RDB_OPCODE_RESIZEDB);
        rdbo_len(out, dict_size(db->keys));
        rdbo_len(out, dict_size(db->expires));
        kw.db = d;
        kw.expires = dict_size(db->expires) ? db->expires : NULL;
        save_keys(&kw, db->keys);
    }
    uint64_t keys = kw.keys;
    rdbo_u8(out, RDB_OPCODE_EOF);
    uint64_t crc = opts->checksum ? rdbo_crc(out) : 0;
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(crc >> (8 * i));
    rdbo_raw(out, b, 8);
    rdbo_flush(out);
    if (opts->progress) opts->progress(opts->progress_ud, keys);
    if (out->failed) {
        snprintf(err, errlen, "%s", strerror(out->failed));
        return ERR;
    }
    return OK;
}

/* The directory part of path ("." when none), for the fsync that makes
 * the rename durable. */
static void dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
    } else if (slash == path) {
        snprintf(out, cap, "/");
    } else {
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
    }
}

int rdb_save_path(const char *path, const rdb_save_opts *opts, char *err, size_t errlen) {
    char dir[4096], tmp[4200];
    dir_of(path, dir, sizeof dir);
    snprintf(tmp, sizeof tmp, "%s/temp-%d.rdb", dir, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        char cwd[4096];
        snprintf(err, errlen, "Failed opening the temp RDB file %s (in server root dir %s) for saving: %s", tmp,
                 getcwd(cwd, sizeof cwd) ? cwd : "?", strerror(errno));
        return ERR;
    }
    rdb_out out;
    if (rdbo_init(&out, rdbo_sink_fd, &fd, opts->compress, opts->checksum) != OK) {
        close(fd);
        unlink(tmp);
        snprintf(err, errlen, "out of memory for the write buffer");
        return ERR;
    }
    out.observe = opts->observe;
    out.observe_ud = opts->observe_ud;
    char why[256];
    int rc = rdb_write_file(&out, opts, why, sizeof why);
    rdbo_release(&out);
    if (rc != OK) {
        snprintf(err, errlen, "Write error saving DB on disk: %s", why);
    } else if (fsync(fd) != 0) {
        snprintf(err, errlen, "Write error saving DB on disk (fsync): %s", strerror(errno));
        rc = ERR;
    }
    if (close(fd) != 0 && rc == OK) {
        snprintf(err, errlen, "Write error saving DB on disk (close): %s", strerror(errno));
        rc = ERR;
    }
    if (rc == OK && rename(tmp, path) != 0) {
        snprintf(err, errlen, "Error moving temp DB file %s on the final destination %s: %s", tmp, path,
                 strerror(errno));
        rc = ERR;
    }
    if (rc != OK) {
        unlink(tmp);
        return ERR;
    }
    int dfd = open(dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd); /* the rename itself, durable */
        close(dfd);
    }
    return OK;
}
