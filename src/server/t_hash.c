/* t_hash.c - hashes and their commands.
 *
 * A hash starts packed (hpack.c: one string, insertion order, like Redis's
 * listpack, so small hashes reply fields in the same order Redis does) and
 * becomes a dict of field -> value strings once it has more than
 * hash-max-listpack-entries fields or a field or value longer than
 * hash-max-listpack-value bytes.
 * It never converts back.  The hash_* layer below hides the encoding from
 * the commands and from SCAN, COPY and MEMORY USAGE. */
#include "server.h"
#include "aof.h"

#include <math.h>
#include <string.h>

static const dict_type hash_type = {dict_hash_dstr, dict_eq_dstr, dict_free_dstr, dict_free_dstr};

/* ------------------------------------------------------------ the type */

size_t hash_len(const kobj *o) {
    return o->enc == ENC_PACKED ? hpack_count(o->ptr) : dict_size(o->ptr);
}

void hash_free(kobj *o) {
    if (o->enc == ENC_PACKED) dstr_free(o->ptr);
    else dict_release(o->ptr);
}

size_t hash_memory(kobj *o) {
    if (o->enc == ENC_PACKED) return dstr_alloc_size(o->ptr);
    dict *d = o->ptr;
    size_t n = dict_table_bytes(d);
    dict_iter it;
    dict_iter_init(&it, d, 0);
    for (dict_entry *e; (e = dict_next(&it));)
        n += sizeof *e + dstr_alloc_size(e->key) + dstr_alloc_size(e->v.val);
    dict_iter_done(&it);
    return n;
}

void hash_iter_init(hash_iter *it, kobj *o) {
    it->o = o;
    it->off = 0;
    if (o->enc != ENC_PACKED) dict_iter_init(&it->di, o->ptr, 0);
}

int hash_iter_next(hash_iter *it, hp_entry *e) {
    if (it->o->enc == ENC_PACKED) return hpack_next(it->o->ptr, &it->off, e);
    dict_entry *de = dict_next(&it->di);
    if (!de) return 0;
    e->f = de->key;
    e->flen = dstr_len(de->key);
    e->v = de->v.val;
    e->vlen = dstr_len(de->v.val);
    return 1;
}

void hash_iter_done(hash_iter *it) {
    if (it->o->enc != ENC_PACKED) dict_iter_done(&it->di);
}

static int hash_get(kobj *o, const dstr f, hp_entry *e) {
    if (o->enc == ENC_PACKED) return hpack_find(o->ptr, f, dstr_len(f), e);
    dstr v = dict_fetch(o->ptr, f);
    if (!v) return 0;
    e->f = f;
    e->flen = dstr_len(f);
    e->v = v;
    e->vlen = dstr_len(v);
    return 1;
}

/* Adds or replaces one field in a dict-encoded hash: 1 new, 0 updated,
 * -1 OOM. */
static int dict_set(dict *h, const char *f, size_t flen, const char *val, size_t vlen) {
    dstr v = dstr_newlen(val, vlen);
    if (!v) return -1;
    dstr key = dstr_newlen(f, flen);
    if (!key) {
        dstr_free(v);
        return -1;
    }
    dict_entry *existing;
    dict_entry *e = dict_add_raw(h, key, &existing);
    if (e) {
        e->v.val = v;
        return 1;
    }
    dstr_free(key);
    if (!existing) {
        dstr_free(v);
        return -1;
    }
    dstr_free(existing->v.val);
    existing->v.val = v;
    return 0;
}

static int convert_to_dict(kobj *o) {
    dict *d = dict_create(&hash_type);
    if (!d) return ERR;
    size_t off = 0;
    hp_entry e;
    while (hpack_next(o->ptr, &off, &e)) {
        if (dict_set(d, e.f, e.flen, e.v, e.vlen) < 0) {
            dict_release(d);
            return ERR;
        }
    }
    dstr_free(o->ptr);
    o->ptr = d;
    o->enc = ENC_HT;
    return OK;
}

/* 1 new field, 0 updated, -1 OOM (the hash is left as it was). */
static int hash_set(kobj *o, const char *f, size_t flen, const char *v, size_t vlen) {
    if (o->enc == ENC_PACKED) {
        hp_entry e;
        int exists = hpack_find(o->ptr, f, flen, &e);
        int fits = hpack_fits(flen, vlen) && (exists || (long long)hpack_count(o->ptr) < hash_max_listpack_entries);
        if (fits) {
            int added;
            dstr n = hpack_set(o->ptr, f, flen, v, vlen, &added);
            if (!n) return -1;
            o->ptr = n;
            return added;
        }
        if (convert_to_dict(o) != OK) return -1;
    }
    return dict_set(o->ptr, f, flen, v, vlen);
}

static int hash_del(kobj *o, const dstr f) {
    if (o->enc == ENC_PACKED) {
        hp_entry e;
        if (!hpack_find(o->ptr, f, dstr_len(f), &e)) return 0;
        hpack_delete(o->ptr, &e);
        return 1;
    }
    return dict_delete(o->ptr, f) == DICT_OK;
}

kobj *hash_dup(const kobj *o) {
    kobj *n;
    if (o->enc == ENC_PACKED) {
        dstr b = dstr_dup(o->ptr);
        n = b ? obj_new(OBJ_HASH, ENC_PACKED, b) : NULL;
        if (!n) dstr_free(b);
        return n;
    }
    dict *d = dict_create(&hash_type);
    n = d ? obj_new(OBJ_HASH, ENC_HT, d) : NULL;
    if (!n) {
        dict_release(d);
        return NULL;
    }
    hash_iter it;
    hp_entry e;
    hash_iter_init(&it, (kobj *)o);
    while (hash_iter_next(&it, &e)) {
        if (dict_set(d, e.f, e.flen, e.v, e.vlen) < 0) {
            hash_iter_done(&it);
            obj_decref(n);
            return NULL;
        }
    }
    hash_iter_done(&it);
    return n;
}

kobj *hash_create(size_t hint) {
    dstr b = dstr_newlen(NULL, hint); /* capacity hint, length 0 below */
    if (!b) return NULL;
    dstr_setlen(b, 0);
    kobj *o = obj_new(OBJ_HASH, ENC_PACKED, b);
    if (!o) dstr_free(b);
    return o;
}

int hash_set_field(kobj *o, const char *f, size_t flen, const char *v, size_t vlen) {
    return hash_set(o, f, flen, v, vlen);
}

/* ------------------------------------------------------------ commands */

static kobj *get_hash(client *c, const dstr key, int write, int *err) {
    kobj *o = write ? db_lookup_write(c, key) : db_lookup_read(c, key);
    *err = db_check_type(c, o, OBJ_HASH);
    return *err ? NULL : o;
}

/* Packed bytes that fields argv[first], argv[first+2], ... with their
 * values will take, so that a new hash is allocated once at its final size:
 * growing it field by field would leave freed odd-sized buffers behind for
 * the allocator to hand out with slack.  0 when they will not stay packed. */
static size_t packed_size_hint(client *c, int first) {
    size_t n = 0;
    if ((c->argc - first) / 2 > hash_max_listpack_entries) return 0;
    for (int i = first; i + 1 < c->argc; i += 2) {
        size_t fl = dstr_len(c->argv[i]), vl = dstr_len(c->argv[i + 1]);
        if (!hpack_fits(fl, vl)) return 0;
        n += 2 + fl + vl;
    }
    return n;
}

static kobj *get_or_create_sized(client *c, const dstr key, size_t hint, int *err) {
    kobj *o = get_hash(c, key, 1, err);
    if (o || *err) return o;
    dstr b = dstr_newlen(NULL, hint); /* capacity hint, length 0 below */
    if (b) dstr_setlen(b, 0);
    o = b ? obj_new(OBJ_HASH, ENC_PACKED, b) : NULL;
    if (!o || db_add(c->db, key, o) != OK) {
        if (o) obj_decref(o);
        else dstr_free(b);
        reply_error(c, "ERR out of memory");
        *err = 1;
        return NULL;
    }
    return o;
}

static kobj *get_or_create(client *c, const dstr key, int *err) {
    return get_or_create_sized(c, key, 0, err);
}

/* A packed buffer grows geometrically while a command adds fields; once the
 * command is done, give the slack back (a small hash is rarely written
 * again soon, and keyspaces of millions of them are where memory goes). */
static void hash_compact(kobj *h) {
    if (h->enc == ENC_PACKED) h->ptr = dstr_shrink(h->ptr);
}

static void drop_if_empty(client *c, const dstr key, kobj *h) {
    if (hash_len(h) == 0) {
        db_delete(c->db, key);
        notify_keyspace_event(NOTIFY_GENERIC, "del", key, c->db->id);
        return;
    }
    hash_compact(h);
    db_signal_modified(c->db, key);
}

static void hset_generic(client *c, int reply_count) {
    if (c->argc % 2 == 1) {
        reply_errorf(c, "ERR wrong number of arguments for '%s' command", c->cmd->name);
        return;
    }
    int err;
    kobj *h = get_or_create_sized(c, c->argv[1], packed_size_hint(c, 2), &err);
    if (err) return;
    long long created = 0;
    for (int i = 2; i < c->argc; i += 2) {
        const dstr f = c->argv[i], v = c->argv[i + 1];
        int r = hash_set(h, f, dstr_len(f), v, dstr_len(v));
        if (r < 0) {
            drop_if_empty(c, c->argv[1], h);
            reply_error(c, "ERR out of memory");
            return;
        }
        created += r;
    }
    hash_compact(h);
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_HASH, "hset", c->argv[1], c->db->id);
    if (reply_count) reply_ll(c, created);
    else reply_ok(c);
}

void hset_cmd(client *c) { hset_generic(c, 1); }
void hmset_cmd(client *c) { hset_generic(c, 0); }

void hsetnx_cmd(client *c) {
    int err;
    kobj *h = get_or_create(c, c->argv[1], &err);
    if (err) return;
    hp_entry e;
    if (hash_get(h, c->argv[2], &e)) {
        reply_ll(c, 0);
        return;
    }
    if (hash_set(h, c->argv[2], dstr_len(c->argv[2]), c->argv[3], dstr_len(c->argv[3])) < 0) {
        drop_if_empty(c, c->argv[1], h);
        reply_error(c, "ERR out of memory");
        return;
    }
    hash_compact(h);
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_HASH, "hset", c->argv[1], c->db->id);
    reply_ll(c, 1);
}

void hget_cmd(client *c) {
    int err;
    kobj *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    hp_entry e;
    if (h && hash_get(h, c->argv[2], &e)) reply_bulk(c, e.v, e.vlen);
    else reply_null(c);
}

void hmget_cmd(client *c) {
    int err;
    kobj *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    reply_array_len(c, c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
        hp_entry e;
        if (h && hash_get(h, c->argv[i], &e)) reply_bulk(c, e.v, e.vlen);
        else reply_null(c);
    }
}

void hdel_cmd(client *c) {
    int err;
    kobj *h = get_hash(c, c->argv[1], 1, &err);
    if (err) return;
    long long n = 0;
    for (int i = 2; h && i < c->argc; i++) n += hash_del(h, c->argv[i]);
    if (h && n) {
        notify_keyspace_event(NOTIFY_HASH, "hdel", c->argv[1], c->db->id);
        drop_if_empty(c, c->argv[1], h);
    }
    reply_ll(c, n);
}

void hlen_cmd(client *c) {
    int err;
    kobj *h = get_hash(c, c->argv[1], 0, &err);
    if (!err) reply_ll(c, h ? (long long)hash_len(h) : 0);
}

void hstrlen_cmd(client *c) {
    int err;
    kobj *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    hp_entry e;
    reply_ll(c, h && hash_get(h, c->argv[2], &e) ? (long long)e.vlen : 0);
}

void hexists_cmd(client *c) {
    int err;
    kobj *h = get_hash(c, c->argv[1], 0, &err);
    hp_entry e;
    if (!err) reply_ll(c, h && hash_get(h, c->argv[2], &e) ? 1 : 0);
}

enum { H_KEYS = 1, H_VALS = 2 };

static void getall_generic(client *c, int what) {
    int err;
    kobj *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    long n = h ? (long)hash_len(h) : 0;
    if (what == (H_KEYS | H_VALS)) reply_map_len(c, n);
    else reply_array_len(c, n);
    if (!h) return;
    hash_iter it;
    hp_entry e;
    hash_iter_init(&it, h);
    while (hash_iter_next(&it, &e)) {
        if (what & H_KEYS) reply_bulk(c, e.f, e.flen);
        if (what & H_VALS) reply_bulk(c, e.v, e.vlen);
    }
    hash_iter_done(&it);
}

void hkeys_cmd(client *c) { getall_generic(c, H_KEYS); }
void hvals_cmd(client *c) { getall_generic(c, H_VALS); }
void hgetall_cmd(client *c) { getall_generic(c, H_KEYS | H_VALS); }

void hincrby_cmd(client *c) {
    long long by, v = 0;
    if (arg_ll(c, c->argv[3], &by) != OK) return;
    int err;
    kobj *h = get_or_create(c, c->argv[1], &err);
    if (err) return;
    hp_entry e;
    if (hash_get(h, c->argv[2], &e) && !str_to_ll(e.v, e.vlen, &v)) {
        reply_error(c, "ERR hash value is not an integer");
        return;
    }
    if ((by < 0 && v < 0 && by < LLONG_MIN - v) || (by > 0 && v > 0 && by > LLONG_MAX - v)) {
        reply_error(c, "ERR increment or decrement would overflow");
        return;
    }
    v += by;
    char buf[LL_STR_SIZE];
    int n = ll_to_str(buf, sizeof buf, v);
    if (hash_set(h, c->argv[2], dstr_len(c->argv[2]), buf, (size_t)n) < 0) {
        drop_if_empty(c, c->argv[1], h);
        reply_error(c, "ERR out of memory");
        return;
    }
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_HASH, "hincrby", c->argv[1], c->db->id);
    reply_ll(c, v);
}

void hincrbyfloat_cmd(client *c) {
    long double by, v = 0;
    if (arg_ldouble(c, c->argv[3], &by) != OK) return;
    if (isnan(by) || isinf(by)) {
        reply_error(c, "ERR value is NaN or Infinity");
        return;
    }
    int err;
    kobj *h = get_or_create(c, c->argv[1], &err);
    if (err) return;
    hp_entry e;
    if (hash_get(h, c->argv[2], &e) && !str_to_ldouble(e.v, e.vlen, &v)) {
        reply_error(c, "ERR hash value is not a float");
        return;
    }
    v += by;
    char buf[5200];
    int n = isnan(v) || isinf(v) ? 0 : ldouble_to_str(buf, sizeof buf, v);
    if (n <= 0) {
        reply_error(c, "ERR increment would produce NaN or Infinity");
        return;
    }
    if (hash_set(h, c->argv[2], dstr_len(c->argv[2]), buf, (size_t)n) < 0) {
        drop_if_empty(c, c->argv[1], h);
        reply_error(c, "ERR out of memory");
        return;
    }
    db_signal_modified(c->db, c->argv[1]);
    if (prop_active()) { /* the result, as HSET: float text is never re-parsed */
        prop_args a;
        pa_init(&a);
        pa_cstr(&a, "HSET");
        pa_dstr(&a, c->argv[1]);
        pa_dstr(&a, c->argv[2]);
        pa_add(&a, buf, (size_t)n);
        prop_replace(&a);
    }
    notify_keyspace_event(NOTIFY_HASH, "hincrbyfloat", c->argv[1], c->db->id);
    reply_bulk(c, buf, (size_t)n);
}

static void reply_pair(client *c, const hp_entry *e, int withvalues) {
    if (withvalues && c->resp > 2) reply_array_len(c, 2);
    reply_bulk(c, e->f, e->flen);
    if (withvalues) reply_bulk(c, e->v, e->vlen);
}

/* Snapshot of every entry (valid until the hash changes). */
static hp_entry *entries_of(kobj *h, size_t *n) {
    size_t cap = hash_len(h);
    hp_entry *all = km_malloc((cap ? cap : 1) * sizeof *all);
    if (!all) return NULL;
    hash_iter it;
    size_t k = 0;
    hash_iter_init(&it, h);
    while (k < cap && hash_iter_next(&it, &all[k])) k++;
    hash_iter_done(&it);
    *n = k;
    return all;
}

static void random_entry(kobj *h, hp_entry *e) {
    if (h->enc == ENC_PACKED) {
        size_t target = rand_u64() % hpack_count(h->ptr), off = 0;
        for (size_t i = 0; i <= target; i++) hpack_next(h->ptr, &off, e);
        return;
    }
    dict_entry *de = dict_random(h->ptr);
    e->f = de->key;
    e->flen = dstr_len(de->key);
    e->v = de->v.val;
    e->vlen = dstr_len(de->v.val);
}

void hrandfield_cmd(client *c) {
    long long count = 0;
    int withvalues = 0, has_count = c->argc >= 3;
    if (c->argc > 4 || (c->argc == 4 && !arg_is(c->argv[3], "withvalues"))) {
        reply_syntax_error(c);
        return;
    }
    withvalues = c->argc == 4;
    if (has_count) {
        if (arg_ll_range(c, c->argv[2], -LONG_MAX, LONG_MAX, &count, NULL) != OK) return;
        if (withvalues && (count < -LONG_MAX / 2 || count > LONG_MAX / 2)) {
            reply_error(c, "ERR value is out of range");
            return;
        }
    }
    int err;
    kobj *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    hp_entry e;
    if (!has_count) {
        if (!h) {
            reply_null(c);
            return;
        }
        random_entry(h, &e);
        reply_bulk(c, e.f, e.flen);
        return;
    }
    if (!h || count == 0) {
        reply_array_len(c, 0);
        return;
    }
    if (count < 0) { /* repeats allowed */
        long n = (long)-count;
        reply_array_len(c, withvalues && c->resp == 2 ? n * 2 : n);
        for (long i = 0; i < n && !(c->flags & CF_CLOSE_ASAP); i++) {
            random_entry(h, &e);
            reply_pair(c, &e, withvalues);
        }
        return;
    }
    size_t k;
    hp_entry *all = entries_of(h, &k);
    if (!all) {
        reply_error(c, "ERR out of memory");
        return;
    }
    if ((size_t)count >= k) { /* the whole hash, in its order */
        reply_array_len(c, withvalues && c->resp == 2 ? (long)k * 2 : (long)k);
        for (size_t i = 0; i < k; i++) reply_pair(c, &all[i], withvalues);
        km_free(all);
        return;
    }
    /* distinct fields: a partial Fisher-Yates over the snapshot */
    reply_array_len(c, withvalues && c->resp == 2 ? (long)count * 2 : (long)count);
    for (long long i = 0; i < count; i++) {
        size_t j = (size_t)i + rand_u64() % (k - (size_t)i);
        hp_entry t = all[i];
        all[i] = all[j];
        all[j] = t;
        reply_pair(c, &all[i], withvalues);
    }
    km_free(all);
}

void hscan_cmd(client *c) {
    unsigned long cursor;
    if (scan_parse_cursor(c, c->argv[2], &cursor) != OK) return;
    kobj *o = db_lookup_read(c, c->argv[1]);
    if (db_check_type(c, o, OBJ_HASH)) return;
    if (!o) {
        reply_array_len(c, 2);
        reply_bulk_cstr(c, "0");
        reply_array_len(c, 0);
        return;
    }
    scan_generic(c, o, 3, cursor);
}
