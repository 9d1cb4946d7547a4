/* t_set.c - sets: a dict of members (no values), and the set commands.
 * The algebra (SINTER/SUNION/SDIFF and their STORE forms) builds the result
 * in a temporary dict, so a destination that is also a source is safe. */
#include "server.h"
#include "aof.h"

#include <string.h>

static const dict_type set_type = {dict_hash_dstr, dict_eq_dstr, dict_free_dstr, NULL};

void set_free(kobj *o) { dict_release(o->ptr); }
size_t set_len(const kobj *o) { return dict_size(o->ptr); }

static dict *set_copy(dict *src) {
    dict *d = dict_create(&set_type);
    if (!d) return NULL;
    dict_iter it;
    dict_iter_init(&it, src, 0);
    for (dict_entry *e; (e = dict_next(&it));) {
        dstr m = dstr_dup(e->key);
        if (!m || dict_add(d, m, NULL) != DICT_OK) {
            dstr_free(m);
            dict_iter_done(&it);
            dict_release(d);
            return NULL;
        }
    }
    dict_iter_done(&it);
    return d;
}

kobj *set_create(void) {
    dict *d = dict_create(&set_type);
    kobj *o = d ? obj_new(OBJ_SET, ENC_HT, d) : NULL;
    if (!o) dict_release(d);
    return o;
}

int set_add(kobj *o, const char *p, size_t len) {
    dstr m = dstr_newlen(p, len);
    if (!m) return -1;
    dict_entry *existing;
    if (dict_add_raw(o->ptr, m, &existing)) return 1;
    dstr_free(m);
    return existing ? 0 : -1;
}

kobj *set_dup(const kobj *o) {
    dict *d = set_copy(o->ptr);
    if (!d) return NULL;
    kobj *n = obj_new(OBJ_SET, ENC_HT, d);
    if (!n) dict_release(d);
    return n;
}

static dict *get_set(client *c, const dstr key, int write, int *err) {
    kobj *o = write ? db_lookup_write(c, key) : db_lookup_read(c, key);
    *err = db_check_type(c, o, OBJ_SET);
    return o && !*err ? o->ptr : NULL;
}

static int add_member(dict *s, const char *p, size_t len) {
    dstr m = dstr_newlen(p, len);
    if (!m) return -1;
    dict_entry *existing;
    if (dict_add_raw(s, m, &existing)) return 1;
    dstr_free(m);
    return existing ? 0 : -1;
}

static kobj *new_set_obj(dict **out) {
    dict *d = dict_create(&set_type);
    kobj *o = d ? obj_new(OBJ_SET, ENC_HT, d) : NULL;
    if (!o) dict_release(d);
    *out = o ? d : NULL;
    return o;
}

void sadd_cmd(client *c) {
    int err;
    dict *s = get_set(c, c->argv[1], 1, &err);
    if (err) return;
    if (!s) {
        kobj *o = new_set_obj(&s);
        if (!o || db_add(c->db, c->argv[1], o) != OK) {
            obj_decref(o);
            reply_error(c, "ERR out of memory");
            return;
        }
    }
    /* which arguments this call added, so that out of memory can take
     * them back (the set is then as it was) */
    int n = c->argc - 2;
    unsigned char stack[64], *mine = n <= 64 ? stack : km_calloc((size_t)n);
    long long added = 0;
    int i = 0;
    if (mine) {
        for (; i < n; i++) {
            int r = add_member(s, c->argv[2 + i], dstr_len(c->argv[2 + i]));
            if (r < 0) break;
            mine[i] = (unsigned char)r;
            added += r;
        }
    }
    if (!mine || i < n) {
        while (i-- > 0)
            if (mine[i]) dict_delete(s, c->argv[2 + i]);
        if (mine != stack) km_free(mine);
        if (dict_size(s) == 0) db_delete(c->db, c->argv[1]);
        reply_error(c, "ERR out of memory");
        return;
    }
    if (mine != stack) km_free(mine);
    if (added) {
        db_signal_modified(c->db, c->argv[1]);
        notify_keyspace_event(NOTIFY_SET, "sadd", c->argv[1], c->db->id);
    }
    reply_ll(c, added);
}

/* After the command's own event: an emptied set is deleted ("del"). */
static void drop_if_empty(client *c, const dstr key, dict *s) {
    if (dict_size(s) == 0) {
        db_delete(c->db, key);
        notify_keyspace_event(NOTIFY_GENERIC, "del", key, c->db->id);
    } else {
        db_signal_modified(c->db, key);
    }
}

void srem_cmd(client *c) {
    int err;
    dict *s = get_set(c, c->argv[1], 1, &err);
    if (err) return;
    long long n = 0;
    for (int i = 2; s && i < c->argc; i++) n += dict_delete(s, c->argv[i]) == DICT_OK;
    if (s && n) {
        notify_keyspace_event(NOTIFY_SET, "srem", c->argv[1], c->db->id);
        drop_if_empty(c, c->argv[1], s);
    }
    reply_ll(c, n);
}

static void reply_members(client *c, dict *s) {
    reply_set_len(c, s ? (long)dict_size(s) : 0);
    if (!s) return;
    dict_iter it;
    dict_iter_init(&it, s, 0);
    for (dict_entry *e; (e = dict_next(&it));) reply_bulk_dstr(c, e->key);
    dict_iter_done(&it);
}

void smembers_cmd(client *c) {
    int err;
    dict *s = get_set(c, c->argv[1], 0, &err);
    if (!err) reply_members(c, s);
}

void sismember_cmd(client *c) {
    int err;
    dict *s = get_set(c, c->argv[1], 0, &err);
    if (!err) reply_ll(c, s && dict_find(s, c->argv[2]) ? 1 : 0);
}

void smismember_cmd(client *c) {
    int err;
    dict *s = get_set(c, c->argv[1], 0, &err);
    if (err) return;
    reply_array_len(c, c->argc - 2);
    for (int i = 2; i < c->argc; i++) reply_ll(c, s && dict_find(s, c->argv[i]) ? 1 : 0);
}

void scard_cmd(client *c) {
    int err;
    dict *s = get_set(c, c->argv[1], 0, &err);
    if (!err) reply_ll(c, s ? (long long)dict_size(s) : 0);
}

void spop_cmd(client *c) {
    long long count = -1;
    if (c->argc > 3) {
        reply_syntax_error(c);
        return;
    }
    if (c->argc == 3 && arg_positive(c, c->argv[2], &count, NULL) != OK) return;
    int err;
    dict *s = get_set(c, c->argv[1], 1, &err);
    if (err) return;
    if (!s) {
        if (count >= 0) reply_set_len(c, 0);
        else reply_null(c);
        return;
    }
    if (count == 0) {
        reply_set_len(c, 0);
        return;
    }
    long long n = count < 0 ? 1 : count;
    if ((size_t)n > dict_size(s)) n = (long long)dict_size(s);
    if (count >= 0) reply_set_len(c, (long)n);
    /* replay pops the same members: SREM them, 1024 to a command */
    int prop = prop_active();
    prop_args a;
    pa_init(&a);
    if (prop) prop_prevent();
    for (long long i = 0; i < n; i++) {
        dict_entry *e = dict_random(s);
        reply_bulk_dstr(c, e->key);
        if (prop) {
            if (a.n == 0) {
                pa_cstr(&a, "SREM");
                pa_dstr(&a, c->argv[1]);
            }
            pa_dstr(&a, e->key);
            if (a.n == 2 + 1024) prop_emit(c->db->id, &a);
        }
        dict_delete(s, e->key);
    }
    if (prop && a.n) prop_emit(c->db->id, &a);
    notify_keyspace_event(NOTIFY_SET, "spop", c->argv[1], c->db->id);
    drop_if_empty(c, c->argv[1], s);
}

void srandmember_cmd(client *c) {
    long long count = 0;
    int has_count = c->argc == 3;
    if (c->argc > 3) {
        reply_syntax_error(c);
        return;
    }
    if (has_count) {
        if (arg_ll_range(c, c->argv[2], -LONG_MAX, LONG_MAX, &count, NULL) != OK) return;
    }
    int err;
    dict *s = get_set(c, c->argv[1], 0, &err);
    if (err) return;
    if (!has_count) {
        if (!s) reply_null(c);
        else reply_bulk_dstr(c, dict_random(s)->key);
        return;
    }
    if (!s || count == 0) {
        reply_array_len(c, 0);
        return;
    }
    if (count < 0) {
        reply_array_len(c, (long)-count);
        for (long long i = 0; i < -count && !(c->flags & CF_CLOSE_ASAP); i++) reply_bulk_dstr(c, dict_random(s)->key);
        return;
    }
    size_t size = dict_size(s);
    if ((size_t)count >= size) {
        reply_array_len(c, (long)size);
        dict_iter it;
        dict_iter_init(&it, s, 0);
        for (dict_entry *e; (e = dict_next(&it));) reply_bulk_dstr(c, e->key);
        dict_iter_done(&it);
        return;
    }
    dict_entry **all = km_malloc(size * sizeof *all);
    if (!all) {
        reply_error(c, "ERR out of memory");
        return;
    }
    size_t k = 0;
    dict_iter it;
    dict_iter_init(&it, s, 0);
    for (dict_entry *e; (e = dict_next(&it)) && k < size;) all[k++] = e;
    dict_iter_done(&it);
    reply_array_len(c, (long)count);
    for (long long i = 0; i < count; i++) {
        size_t j = (size_t)i + rand_u64() % (k - (size_t)i);
        dict_entry *t = all[i];
        all[i] = all[j];
        all[j] = t;
        reply_bulk_dstr(c, all[i]->key);
    }
    km_free(all);
}

enum { OP_INTER, OP_UNION, OP_DIFF };

/* Loads the sets named by argv[first..first+n); ERR after WRONGTYPE.  A
 * missing key is NULL (an empty set). */
static int load_sets(client *c, int first, int n, dict **sets) {
    for (int i = 0; i < n; i++) {
        int err;
        sets[i] = get_set(c, c->argv[first + i], 0, &err);
        if (err) return ERR;
    }
    return OK;
}

static int cmp_size(const void *a, const void *b) {
    dict *x = *(dict *const *)a, *y = *(dict *const *)b;
    size_t sx = x ? dict_size(x) : 0, sy = y ? dict_size(y) : 0;
    return sx < sy ? -1 : sx > sy;
}

/* Computes the operation into a new dict (NULL on OOM). */
static dict *set_algebra(dict **sets, int n, int op, long long limit) {
    dict *out = dict_create(&set_type);
    if (!out) return NULL;
    if (op == OP_INTER) {
        qsort(sets, (size_t)n, sizeof *sets, cmp_size);
        if (!sets[0]) return out;
        dict_iter it;
        dict_iter_init(&it, sets[0], 0);
        for (dict_entry *e; (e = dict_next(&it));) {
            int in_all = 1;
            for (int i = 1; i < n && in_all; i++) in_all = sets[i] && dict_find(sets[i], e->key);
            if (in_all && add_member(out, e->key, dstr_len(e->key)) < 0) goto oom_iter;
            if (limit && (long long)dict_size(out) >= limit) break;
            continue;
        oom_iter:
            dict_iter_done(&it);
            dict_release(out);
            return NULL;
        }
        dict_iter_done(&it);
        return out;
    }
    for (int i = 0; i < n; i++) {
        if (!sets[i]) continue;
        if (op == OP_DIFF && i > 0) {
            dict_iter it;
            dict_iter_init(&it, sets[i], 1);
            for (dict_entry *e; (e = dict_next(&it)) && dict_size(out);) dict_delete(out, e->key);
            dict_iter_done(&it);
            continue;
        }
        if (op == OP_DIFF && i == 0) {
            dict_release(out);
            out = set_copy(sets[0]);
            if (!out) return NULL;
            continue;
        }
        dict_iter it;
        dict_iter_init(&it, sets[i], 0);
        for (dict_entry *e; (e = dict_next(&it));) {
            if (add_member(out, e->key, dstr_len(e->key)) < 0) {
                dict_iter_done(&it);
                dict_release(out);
                return NULL;
            }
        }
        dict_iter_done(&it);
    }
    return out;
}

static void algebra_cmd(client *c, int op, int store) {
    int first = store ? 2 : 1, n = c->argc - first;
    dict **sets = km_malloc((size_t)n * sizeof *sets);
    if (!sets) {
        reply_error(c, "ERR out of memory");
        return;
    }
    if (load_sets(c, first, n, sets) != OK) {
        km_free(sets);
        return;
    }
    dict *res = set_algebra(sets, n, op, 0);
    km_free(sets);
    if (!res) {
        reply_error(c, "ERR out of memory");
        return;
    }
    if (!store) {
        reply_members(c, res);
        dict_release(res);
        return;
    }
    long long card = (long long)dict_size(res);
    if (card == 0) {
        dict_release(res);
        if (db_delete(c->db, c->argv[1])) notify_keyspace_event(NOTIFY_GENERIC, "del", c->argv[1], c->db->id);
    } else {
        kobj *o = obj_new(OBJ_SET, ENC_HT, res);
        if (!o || db_set(c->db, c->argv[1], o, 0) != OK) {
            if (o) obj_decref(o);
            else dict_release(res);
            reply_error(c, "ERR out of memory");
            return;
        }
        static const char *events[] = {[OP_INTER] = "sinterstore", [OP_UNION] = "sunionstore",
                                       [OP_DIFF] = "sdiffstore"};
        notify_keyspace_event(NOTIFY_SET, events[op], c->argv[1], c->db->id);
    }
    reply_ll(c, card);
}

void sinter_cmd(client *c) { algebra_cmd(c, OP_INTER, 0); }
void sunion_cmd(client *c) { algebra_cmd(c, OP_UNION, 0); }
void sdiff_cmd(client *c) { algebra_cmd(c, OP_DIFF, 0); }
void sinterstore_cmd(client *c) { algebra_cmd(c, OP_INTER, 1); }
void sunionstore_cmd(client *c) { algebra_cmd(c, OP_UNION, 1); }
void sdiffstore_cmd(client *c) { algebra_cmd(c, OP_DIFF, 1); }

void sintercard_cmd(client *c) {
    long long numkeys, limit = 0;
    if (arg_ll_range(c, c->argv[1], 1, LONG_MAX, &numkeys, "ERR numkeys should be greater than 0") != OK)
        return;
    if (numkeys > c->argc - 2) {
        reply_error(c, "ERR Number of keys can't be greater than number of args");
        return;
    }
    for (int i = 2 + (int)numkeys; i < c->argc; i += 2) {
        if (arg_is(c->argv[i], "limit") && i + 1 < c->argc) {
            if (arg_positive(c, c->argv[i + 1], &limit, "ERR LIMIT can't be negative") != OK) return;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    dict **sets = km_malloc((size_t)numkeys * sizeof *sets);
    if (!sets) {
        reply_error(c, "ERR out of memory");
        return;
    }
    if (load_sets(c, 2, (int)numkeys, sets) != OK) {
        km_free(sets);
        return;
    }
    dict *res = set_algebra(sets, (int)numkeys, OP_INTER, limit);
    km_free(sets);
    if (!res) {
        reply_error(c, "ERR out of memory");
        return;
    }
    reply_ll(c, (long long)dict_size(res));
    dict_release(res);
}

void smove_cmd(client *c) {
    int err;
    if (!db_lookup_write(c, c->argv[1])) { /* a missing source wins over types */
        reply_ll(c, 0);
        return;
    }
    dict *src = get_set(c, c->argv[1], 1, &err);
    if (err) return;
    dict *dst = get_set(c, c->argv[2], 1, &err);
    if (err) return;
    if (!src || !dict_find(src, c->argv[3])) {
        reply_ll(c, 0);
        return;
    }
    if (src == dst) {
        reply_ll(c, 1);
        return;
    }
    /* Redis's order of events: srem (and del) on the source, then the
     * destination is created (new) and gets sadd.  The member is added to
     * the destination set before it is removed, so OOM loses nothing. */
    kobj *newdst = NULL;
    if (!dst && !(newdst = new_set_obj(&dst))) {
        reply_error(c, "ERR out of memory");
        return;
    }
    if (add_member(dst, c->argv[3], dstr_len(c->argv[3])) < 0) {
        if (newdst) obj_decref(newdst);
        reply_error(c, "ERR out of memory");
        return;
    }
    dict_delete(src, c->argv[3]);
    notify_keyspace_event(NOTIFY_SET, "srem", c->argv[1], c->db->id);
    drop_if_empty(c, c->argv[1], src);
    if (newdst && db_add(c->db, c->argv[2], newdst) != OK) {
        obj_decref(newdst);
        reply_error(c, "ERR out of memory");
        return;
    }
    db_signal_modified(c->db, c->argv[2]);
    notify_keyspace_event(NOTIFY_SET, "sadd", c->argv[2], c->db->id);
    reply_ll(c, 1);
}

void sscan_cmd(client *c) {
    unsigned long cursor;
    if (scan_parse_cursor(c, c->argv[2], &cursor) != OK) return;
    kobj *o = db_lookup_read(c, c->argv[1]);
    if (db_check_type(c, o, OBJ_SET)) return;
    if (!o) {
        reply_array_len(c, 2);
        reply_bulk_cstr(c, "0");
        reply_array_len(c, 0);
        return;
    }
    scan_generic(c, o, 3, cursor);
}
