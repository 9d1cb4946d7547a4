/* aof_rewrite.c - the dataset as commands: the base file of an AOF rewrite
 * with aof-use-rdb-preamble no.
 *
 * Each key becomes the fewest commands that rebuild it exactly, in RESP as
 * any AOF holds them: SET; RPUSH / SADD / ZADD / HSET in batches of 64
 * items (as Redis does: a batch bounds the size of one command and of the
 * memory its replay takes); streams as XADD of each entry with its id,
 * XSETID with the counters, XGROUP CREATE with the group's position and
 * read counter, XGROUP CREATECONSUMER, and one XCLAIM ... FORCE JUSTID per
 * pending entry with its delivery time and count; vector sets as
 * INFER.VSETRESTORE with the set's serialized bytes (vset_save, the same
 * bytes an RDB holds), which keeps quantized vectors, attributes and the
 * graph exact where re-adding vectors would not; then PEXPIREAT for a key
 * with a TTL.  Scores are written with 17 significant digits, which
 * round-trip every double.
 *
 * Runs in the rewrite's fork child (or at start, before clients): it only
 * reads the dataset. */
#include "aof.h"
#include "rdb.h"
#include "stream.h"
#include "vset.h"
#include "zset.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define BATCH 64

static void put_count(struct rdb_out *out, char lead, long long n) {
    char b[32];
    int len = snprintf(b, sizeof b, "%c%lld\r\n", lead, n);
    rdbo_raw(out, b, (size_t)len);
}

static void put_bulk(struct rdb_out *out, const void *p, size_t n) {
    put_count(out, '$', (long long)n);
    rdbo_raw(out, p, n);
    rdbo_raw(out, "\r\n", 2);
}

static void put_cstr(struct rdb_out *out, const char *s) { put_bulk(out, s, strlen(s)); }

static void put_ll(struct rdb_out *out, long long v) {
    char b[LL_STR_SIZE];
    int n = snprintf(b, sizeof b, "%lld", v);
    put_bulk(out, b, (size_t)n);
}

static void put_double(struct rdb_out *out, double d) {
    char b[64];
    int n = snprintf(b, sizeof b, "%.17g", d);
    put_bulk(out, b, (size_t)n);
}

static void put_sid(struct rdb_out *out, const sid *id) {
    char b[SID_STR_SIZE];
    int n = sid_format(id, b);
    put_bulk(out, b, (size_t)n);
}

static void put_key(struct rdb_out *out, const dstr key) { put_bulk(out, key, dstr_len(key)); }

/* ------------------------------------------------------------------ types */

static void rewrite_string(struct rdb_out *out, const dstr key, const kobj *o) {
    char buf[LL_STR_SIZE];
    size_t len;
    const char *p = obj_str(o, buf, &len);
    put_count(out, '*', 3);
    put_cstr(out, "SET");
    put_key(out, key);
    put_bulk(out, p, len);
}

static void rewrite_list(struct rdb_out *out, const dstr key, const klist *l) {
    size_t n = klist_len(l);
    for (size_t i = 0; i < n; i += BATCH) {
        size_t take = n - i < BATCH ? n - i : BATCH;
        put_count(out, '*', (long long)(2 + take));
        put_cstr(out, "RPUSH");
        put_key(out, key);
        for (size_t k = 0; k < take; k++) {
            dstr s = klist_get(l, i + k);
            put_bulk(out, s, dstr_len(s));
        }
    }
}

static void rewrite_set(struct rdb_out *out, const dstr key, dict *d) {
    size_t left = dict_size(d);
    dict_iter it;
    dict_iter_init(&it, d, 0);
    size_t in_batch = 0;
    for (dict_entry *e; (e = dict_next(&it));) {
        if (in_batch == 0) {
            size_t take = left < BATCH ? left : BATCH;
            put_count(out, '*', (long long)(2 + take));
            put_cstr(out, "SADD");
            put_key(out, key);
            in_batch = take;
            left -= take;
        }
        put_bulk(out, e->key, dstr_len(e->key));
        in_batch--;
    }
    dict_iter_done(&it);
}

static void rewrite_zset(struct rdb_out *out, const dstr key, const zset *z) {
    size_t left = z->zsl->length, in_batch = 0;
    for (const zsl_node *x = z->zsl->header->level[0].forward; x; x = x->level[0].forward) {
        if (in_batch == 0) {
            size_t take = left < BATCH ? left : BATCH;
            put_count(out, '*', (long long)(2 + 2 * take));
            put_cstr(out, "ZADD");
            put_key(out, key);
            in_batch = take;
            left -= take;
        }
        put_double(out, x->score);
        put_bulk(out, x->ele, dstr_len(x->ele));
        in_batch--;
    }
}

static void rewrite_hash(struct rdb_out *out, const dstr key, kobj *o) {
    size_t left = hash_len(o), in_batch = 0;
    hash_iter it;
    hp_entry e;
    hash_iter_init(&it, o);
    while (hash_iter_next(&it, &e)) {
        if (in_batch == 0) {
            size_t take = left < BATCH ? left : BATCH;
            put_count(out, '*', (long long)(2 + 2 * take));
            put_cstr(out, "HSET");
            put_key(out, key);
            in_batch = take;
            left -= take;
        }
        put_bulk(out, e.f, e.flen);
        put_bulk(out, e.v, e.vlen);
        in_batch--;
    }
    hash_iter_done(&it);
}

static void rewrite_stream(struct rdb_out *out, const dstr key, const stream *s) {
    static const sid min = {0, 0}, max = {UINT64_MAX, UINT64_MAX};
    if (s->length == 0) {
        /* an empty stream exists only with its ids: XADD MAXLEN 0 creates
         * it (and trims the entry away), XSETID below sets the rest */
        sid one = s->last_id;
        if (one.ms == 0 && one.seq == 0) one.seq = 1;
        put_count(out, '*', 7);
        put_cstr(out, "XADD");
        put_key(out, key);
        put_cstr(out, "MAXLEN");
        put_cstr(out, "0");
        put_sid(out, &one);
        put_cstr(out, "x");
        put_cstr(out, "y");
    } else {
        siter it;
        sentry e;
        siter_start(&it, s, &min, &max, 0);
        while (siter_next(&it, &e)) {
            put_count(out, '*', 3 + 2 * (long long)e.npairs);
            put_cstr(out, "XADD");
            put_key(out, key);
            put_sid(out, &e.id);
            for (uint32_t p = 0; p < e.npairs; p++) {
                const char *f, *v;
                size_t flen, vlen;
                sentry_next_pair(&e, &f, &flen, &v, &vlen);
                put_bulk(out, f, flen);
                put_bulk(out, v, vlen);
            }
        }
    }
    put_count(out, '*', 7);
    put_cstr(out, "XSETID");
    put_key(out, key);
    put_sid(out, &s->last_id);
    put_cstr(out, "ENTRIESADDED");
    put_ll(out, (long long)s->entries_added);
    put_cstr(out, "MAXDELETEDID");
    put_sid(out, &s->max_deleted);
    for (size_t g = 0; g < s->ngroups; g++) {
        const sgroup *gr = s->groups[g];
        put_count(out, '*', 7);
        put_cstr(out, "XGROUP");
        put_cstr(out, "CREATE");
        put_key(out, key);
        put_bulk(out, gr->name, dstr_len(gr->name));
        put_sid(out, &gr->last_id);
        put_cstr(out, "ENTRIESREAD");
        put_ll(out, gr->entries_read);
        for (size_t c = 0; c < gr->nconsumers; c++) {
            const sconsumer *cs = gr->consumers[c];
            put_count(out, '*', 5);
            put_cstr(out, "XGROUP");
            put_cstr(out, "CREATECONSUMER");
            put_key(out, key);
            put_bulk(out, gr->name, dstr_len(gr->name));
            put_bulk(out, cs->name, dstr_len(cs->name));
        }
        size_t np = pel_len(&gr->pel);
        for (size_t k = 0; k < np; k++) {
            const nack *n = pel_at(&gr->pel, k);
            put_count(out, '*', 14);
            put_cstr(out, "XCLAIM");
            put_key(out, key);
            put_bulk(out, gr->name, dstr_len(gr->name));
            put_bulk(out, n->consumer->name, dstr_len(n->consumer->name));
            put_cstr(out, "0");
            put_sid(out, &n->id);
            put_cstr(out, "TIME");
            put_ll(out, n->delivery_time);
            put_cstr(out, "RETRYCOUNT");
            put_ll(out, (long long)n->delivery_count);
            put_cstr(out, "FORCE");
            put_cstr(out, "JUSTID");
            put_cstr(out, "LASTID");
            put_sid(out, &gr->last_id);
        }
    }
}

/* vset_save's bytes as the arguments of one INFER.VSETRESTORE, chunked as
 * the RDB record is; the total is known only at the end, so the set is
 * serialized twice: once to count the chunks, once to write them. */
typedef struct vs_count {
    size_t bytes;
} vs_count;

static int vs_count_fn(void *ud, const void *p, size_t n) {
    (void)p;
    ((vs_count *)ud)->bytes += n;
    return 0;
}

typedef struct vs_emit {
    struct rdb_out *out;
    size_t total, done;
} vs_emit;

static int vs_emit_fn(void *ud, const void *p, size_t n) {
    vs_emit *v = ud;
    const unsigned char *b = p;
    while (n) {
        size_t in_chunk = v->done % RDB_VSET_CHUNK;
        if (in_chunk == 0) {
            size_t left = v->total - v->done;
            put_count(v->out, '$', (long long)(left < RDB_VSET_CHUNK ? left : RDB_VSET_CHUNK));
        }
        size_t room = RDB_VSET_CHUNK - in_chunk;
        size_t take = n < room ? n : room;
        rdbo_raw(v->out, b, take);
        v->done += take;
        b += take;
        n -= take;
        if (v->done % RDB_VSET_CHUNK == 0 || v->done == v->total) rdbo_raw(v->out, "\r\n", 2);
    }
    return v->out->failed ? -1 : 0;
}

static void rewrite_vset(struct rdb_out *out, const dstr key, const vset *s) {
    vs_count cnt = {0};
    vset_save(s, vs_count_fn, &cnt);
    if (cnt.bytes == 0) return;
    size_t chunks = (cnt.bytes + RDB_VSET_CHUNK - 1) / RDB_VSET_CHUNK;
    put_count(out, '*', 2 + (long long)chunks);
    put_cstr(out, "INFER.VSETRESTORE");
    put_key(out, key);
    vs_emit v = {out, cnt.bytes, 0};
    vset_save(s, vs_emit_fn, &v);
    if (v.done != cnt.bytes && !out->failed) out->failed = EIO; /* the set changed: cannot happen in the child */
}

/* ------------------------------------------------------------ the dataset */

int aof_rewrite_commands(struct rdb_out *out) {
    for (int db = 0; db < srv.dbnum && !out->failed; db++) {
        kdb *d = &srv.dbs[db];
        if (dict_size(d->keys) == 0) continue;
        put_count(out, '*', 2);
        put_cstr(out, "SELECT");
        put_ll(out, db);
        dict_iter it;
        dict_iter_init(&it, d->keys, 0);
        for (dict_entry *e; (e = dict_next(&it)) && !out->failed;) {
            const dstr key = e->key;
            kobj *o = e->v.val;
            switch (o->type) {
            case OBJ_STRING: rewrite_string(out, key, o); break;
            case OBJ_LIST: rewrite_list(out, key, o->ptr); break;
            case OBJ_SET: rewrite_set(out, key, o->ptr); break;
            case OBJ_ZSET: rewrite_zset(out, key, o->ptr); break;
            case OBJ_HASH: rewrite_hash(out, key, o); break;
            case OBJ_STREAM: rewrite_stream(out, key, o->ptr); break;
            case OBJ_VSET: rewrite_vset(out, key, o->ptr); break;
            }
            long long when = db_get_expire(d, key);
            if (when >= 0) {
                put_count(out, '*', 3);
                put_cstr(out, "PEXPIREAT");
                put_key(out, key);
                put_ll(out, when);
            }
        }
        dict_iter_done(&it);
    }
    rdbo_flush(out);
    return out->failed ? ERR : OK;
}
