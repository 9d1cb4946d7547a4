/* t_hash.c - hashes: a dict of field -> value strings, and their commands. */
#include "server.h"

#include <math.h>
#include <string.h>

static const dict_type hash_type = {dict_hash_dstr, dict_eq_dstr, dict_free_dstr, dict_free_dstr};

static dict *get_hash(client *c, const dstr key, int write, int *err) {
    kobj *o = write ? db_lookup_write(c, key) : db_lookup_read(c, key);
    *err = db_check_type(c, o, OBJ_HASH);
    return o && !*err ? o->ptr : NULL;
}

static dict *get_or_create(client *c, const dstr key, int *err) {
    dict *h = get_hash(c, key, 1, err);
    if (h || *err) return h;
    h = dict_create(&hash_type);
    kobj *o = h ? obj_new(OBJ_HASH, ENC_HT, h) : NULL;
    if (!o || db_add(c->db, key, o) != OK) {
        if (o) obj_decref(o);
        else dict_release(h);
        reply_error(c, "ERR out of memory");
        *err = 1;
        return NULL;
    }
    return h;
}

/* Sets field to a copy of val.  1 if the field is new, 0 if updated, -1 OOM. */
static int hash_set(dict *h, const dstr field, const char *val, size_t vlen) {
    dstr v = dstr_newlen(val, vlen);
    if (!v) return -1;
    dict_entry *e = dict_find(h, field);
    if (e) {
        dstr_free(e->v.val);
        e->v.val = v;
        return 0;
    }
    dstr f = dstr_dup(field);
    if (!f || dict_add(h, f, v) != DICT_OK) {
        dstr_free(f);
        dstr_free(v);
        return -1;
    }
    return 1;
}

static void drop_if_empty(client *c, const dstr key, dict *h) {
    if (dict_size(h) == 0) db_delete(c->db, key);
    else db_signal_modified(c->db, key);
}

static void hset_generic(client *c, int reply_count) {
    if (c->argc % 2 == 1) {
        reply_errorf(c, "ERR wrong number of arguments for '%s' command", c->cmd->name);
        return;
    }
    int err;
    dict *h = get_or_create(c, c->argv[1], &err);
    if (err) return;
    long long created = 0;
    for (int i = 2; i < c->argc; i += 2) {
        int r = hash_set(h, c->argv[i], c->argv[i + 1], dstr_len(c->argv[i + 1]));
        if (r < 0) {
            drop_if_empty(c, c->argv[1], h);
            reply_error(c, "ERR out of memory");
            return;
        }
        created += r;
    }
    db_signal_modified(c->db, c->argv[1]);
    if (reply_count) reply_ll(c, created);
    else reply_ok(c);
}

void hset_cmd(client *c) { hset_generic(c, 1); }
void hmset_cmd(client *c) { hset_generic(c, 0); }

void hsetnx_cmd(client *c) {
    int err;
    dict *h = get_or_create(c, c->argv[1], &err);
    if (err) return;
    if (dict_find(h, c->argv[2])) {
        reply_ll(c, 0);
        return;
    }
    if (hash_set(h, c->argv[2], c->argv[3], dstr_len(c->argv[3])) < 0) {
        drop_if_empty(c, c->argv[1], h);
        reply_error(c, "ERR out of memory");
        return;
    }
    db_signal_modified(c->db, c->argv[1]);
    reply_ll(c, 1);
}

void hget_cmd(client *c) {
    int err;
    dict *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    dstr v = h ? dict_fetch(h, c->argv[2]) : NULL;
    if (v) reply_bulk_dstr(c, v);
    else reply_null(c);
}

void hmget_cmd(client *c) {
    int err;
    dict *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    reply_array_len(c, c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
        dstr v = h ? dict_fetch(h, c->argv[i]) : NULL;
        if (v) reply_bulk_dstr(c, v);
        else reply_null(c);
    }
}

void hdel_cmd(client *c) {
    int err;
    dict *h = get_hash(c, c->argv[1], 1, &err);
    if (err) return;
    long long n = 0;
    for (int i = 2; h && i < c->argc; i++) n += dict_delete(h, c->argv[i]) == DICT_OK;
    if (h && n) drop_if_empty(c, c->argv[1], h);
    reply_ll(c, n);
}

void hlen_cmd(client *c) {
    int err;
    dict *h = get_hash(c, c->argv[1], 0, &err);
    if (!err) reply_ll(c, h ? (long long)dict_size(h) : 0);
}

void hstrlen_cmd(client *c) {
    int err;
    dict *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    dstr v = h ? dict_fetch(h, c->argv[2]) : NULL;
    reply_ll(c, v ? (long long)dstr_len(v) : 0);
}

void hexists_cmd(client *c) {
    int err;
    dict *h = get_hash(c, c->argv[1], 0, &err);
    if (!err) reply_ll(c, h && dict_find(h, c->argv[2]) ? 1 : 0);
}

enum { H_KEYS = 1, H_VALS = 2 };

static void getall_generic(client *c, int what) {
    int err;
    dict *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    long n = h ? (long)dict_size(h) : 0;
    if (what == (H_KEYS | H_VALS)) reply_map_len(c, n);
    else reply_array_len(c, n);
    if (!h) return;
    dict_iter it;
    dict_iter_init(&it, h, 0);
    for (dict_entry *e; (e = dict_next(&it));) {
        if (what & H_KEYS) reply_bulk_dstr(c, e->key);
        if (what & H_VALS) reply_bulk_dstr(c, e->v.val);
    }
    dict_iter_done(&it);
}

void hkeys_cmd(client *c) { getall_generic(c, H_KEYS); }
void hvals_cmd(client *c) { getall_generic(c, H_VALS); }
void hgetall_cmd(client *c) { getall_generic(c, H_KEYS | H_VALS); }

void hincrby_cmd(client *c) {
    long long by, v = 0;
    if (arg_ll(c, c->argv[3], &by) != OK) return;
    int err;
    dict *h = get_or_create(c, c->argv[1], &err);
    if (err) return;
    dstr cur = dict_fetch(h, c->argv[2]);
    if (cur && !str_to_ll(cur, dstr_len(cur), &v)) {
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
    if (hash_set(h, c->argv[2], buf, (size_t)n) < 0) {
        drop_if_empty(c, c->argv[1], h);
        reply_error(c, "ERR out of memory");
        return;
    }
    db_signal_modified(c->db, c->argv[1]);
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
    dict *h = get_or_create(c, c->argv[1], &err);
    if (err) return;
    dstr cur = dict_fetch(h, c->argv[2]);
    if (cur && !str_to_ldouble(cur, dstr_len(cur), &v)) {
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
    if (hash_set(h, c->argv[2], buf, (size_t)n) < 0) {
        drop_if_empty(c, c->argv[1], h);
        reply_error(c, "ERR out of memory");
        return;
    }
    db_signal_modified(c->db, c->argv[1]);
    reply_bulk(c, buf, (size_t)n);
}

static void reply_pair(client *c, dict_entry *e, int withvalues) {
    if (withvalues && c->resp > 2) reply_array_len(c, 2);
    reply_bulk_dstr(c, e->key);
    if (withvalues) reply_bulk_dstr(c, e->v.val);
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
    dict *h = get_hash(c, c->argv[1], 0, &err);
    if (err) return;
    if (!has_count) {
        if (!h) reply_null(c);
        else reply_bulk_dstr(c, dict_random(h)->key);
        return;
    }
    if (!h || count == 0) {
        reply_array_len(c, 0);
        return;
    }
    size_t size = dict_size(h);
    if (count < 0) { /* repeats allowed */
        long n = (long)-count;
        reply_array_len(c, withvalues && c->resp == 2 ? n * 2 : n);
        for (long i = 0; i < n && !(c->flags & CF_CLOSE_ASAP); i++) reply_pair(c, dict_random(h), withvalues);
        return;
    }
    if ((size_t)count > size) count = (long long)size;
    reply_array_len(c, withvalues && c->resp == 2 ? (long)count * 2 : (long)count);
    /* Distinct fields: pick a random starting point in a snapshot of the
     * entries and take `count` of them after a partial Fisher-Yates. */
    dict_entry **all = km_malloc(size * sizeof *all);
    if (!all) {
        for (long long i = 0; i < count; i++) reply_pair(c, dict_random(h), withvalues);
        return;
    }
    dict_iter it;
    size_t k = 0;
    dict_iter_init(&it, h, 0);
    for (dict_entry *e; (e = dict_next(&it)) && k < size;) all[k++] = e;
    dict_iter_done(&it);
    for (long long i = 0; i < count; i++) {
        size_t j = (size_t)i + rand_u64() % (k - (size_t)i);
        dict_entry *t = all[i];
        all[i] = all[j];
        all[j] = t;
        reply_pair(c, all[i], withvalues);
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
