/* t_list.c - lists: a ring buffer of strings, and the list commands.
 *
 * Why a ring buffer: pushes and pops at both ends are O(1), LINDEX and
 * LRANGE are O(1) to find their start, and an element costs one pointer
 * plus its string (a linked list would add two pointers and a node
 * allocation per element).  Inserting or removing in the middle moves
 * pointers, which is a memmove of 8 bytes per element. */
#include "server.h"

#include <assert.h>
#include <string.h>

struct klist {
    dstr *buf;
    size_t cap, head, len; /* element i lives at buf[(head + i) % cap] */
};

klist *klist_new(void) { return km_calloc(sizeof(klist)); }

size_t klist_len(const klist *l) { return l->len; }

static size_t slot(const klist *l, size_t i) { return (l->head + i) % l->cap; }

dstr klist_get(const klist *l, size_t i) { return l->buf[slot(l, i)]; }

void klist_free(klist *l) {
    if (!l) return;
    for (size_t i = 0; i < l->len; i++) dstr_free(klist_get(l, i));
    km_free(l->buf);
    km_free(l);
}

size_t klist_bytes(const klist *l) {
    size_t n = km_usable(l->buf);
    for (size_t i = 0; i < l->len; i++) n += dstr_alloc_size(klist_get(l, i));
    return n;
}

static int grow(klist *l, size_t need) {
    if (need <= l->cap) return OK;
    size_t cap = l->cap ? l->cap : 4;
    while (cap < need) cap *= 2;
    dstr *nb = km_malloc(cap * sizeof *nb);
    if (!nb) return ERR;
    for (size_t i = 0; i < l->len; i++) nb[i] = klist_get(l, i);
    km_free(l->buf);
    l->buf = nb;
    l->cap = cap;
    l->head = 0;
    return OK;
}

/* The ring's shape every operation relies on: slot() reduces modulo cap,
 * so head must be a slot and len must fit. */
#define RING_OK(l) ((l)->len <= (l)->cap && ((l)->cap ? (l)->head < (l)->cap : (l)->head == 0))

static int push(klist *l, dstr s, int head) {
    if (grow(l, l->len + 1) != OK) return ERR;
    assert(RING_OK(l) && l->len < l->cap);
    if (head) {
        l->head = (l->head + l->cap - 1) % l->cap;
        l->buf[l->head] = s;
    } else {
        l->buf[slot(l, l->len)] = s;
    }
    l->len++;
    return OK;
}

static dstr pop(klist *l, int head) {
    if (l->len == 0) return NULL;
    assert(RING_OK(l));
    dstr s;
    if (head) {
        s = l->buf[l->head];
        l->head = (l->head + 1) % l->cap;
    } else {
        s = klist_get(l, l->len - 1);
    }
    l->len--;
    return s;
}

/* Inserts s so that it becomes element i (0 <= i <= len). */
static int insert_at(klist *l, size_t i, dstr s) {
    assert(i <= l->len);
    if (grow(l, l->len + 1) != OK) return ERR;
    assert(RING_OK(l) && l->len < l->cap);
    l->len++;
    for (size_t k = l->len - 1; k > i; k--) l->buf[slot(l, k)] = l->buf[slot(l, k - 1)];
    l->buf[slot(l, i)] = s;
    return OK;
}

int klist_push_tail(klist *l, dstr s) { return push(l, s, 0); }

klist *klist_dup(const klist *l) {
    klist *n = klist_new();
    if (!n || grow(n, l->len ? l->len : 1) != OK) {
        klist_free(n);
        return NULL;
    }
    for (size_t i = 0; i < l->len; i++) {
        dstr s = dstr_dup(klist_get(l, i));
        if (!s) {
            klist_free(n);
            return NULL;
        }
        n->buf[n->len++] = s;
    }
    return n;
}

/* ------------------------------------------------------------- commands */

static klist *get_list(client *c, const dstr key, int write, int *err) {
    kobj *o = write ? db_lookup_write(c, key) : db_lookup_read(c, key);
    *err = db_check_type(c, o, OBJ_LIST);
    return o && !*err ? o->ptr : NULL;
}

static klist *create_list(client *c, const dstr key) {
    klist *l = klist_new();
    kobj *o = l ? obj_new(OBJ_LIST, ENC_LIST, l) : NULL;
    if (!o || db_add(c->db, key, o) != OK) {
        if (o) obj_decref(o);
        else klist_free(l);
        return NULL;
    }
    return l;
}

/* After the command's own event: an emptied list is deleted ("del"). */
static void delete_if_empty(client *c, const dstr key, klist *l) {
    if (l->len == 0) {
        db_delete(c->db, key);
        notify_keyspace_event(NOTIFY_GENERIC, "del", key, c->db->id);
    } else {
        db_signal_modified(c->db, key);
    }
}

static void push_generic(client *c, int head, int only_existing) {
    int err;
    klist *l = get_list(c, c->argv[1], 1, &err);
    if (err) return;
    if (!l) {
        if (only_existing) {
            reply_ll(c, 0);
            return;
        }
        l = create_list(c, c->argv[1]);
        if (!l) goto oom;
    }
    /* room for every element first, then the copies: out of memory takes
     * back what this call pushed, so the list is as it was */
    size_t n = (size_t)(c->argc - 2), pushed = 0;
    if (grow(l, l->len + n) != OK) {
        delete_if_empty(c, c->argv[1], l);
        goto oom;
    }
    for (int i = 2; i < c->argc; i++, pushed++) {
        dstr s = dstr_dup(c->argv[i]);
        if (!s) {
            while (pushed--) dstr_free(pop(l, head));
            delete_if_empty(c, c->argv[1], l);
            goto oom;
        }
        int rc = push(l, s, head);
        assert(rc == OK); /* the room was made above */
        (void)rc;
    }
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_LIST, head ? "lpush" : "rpush", c->argv[1], c->db->id);
    reply_ll(c, (long long)l->len);
    return;
oom:
    reply_error(c, "ERR out of memory");
}

void lpush_cmd(client *c) { push_generic(c, 1, 0); }
void rpush_cmd(client *c) { push_generic(c, 0, 0); }
void lpushx_cmd(client *c) { push_generic(c, 1, 1); }
void rpushx_cmd(client *c) { push_generic(c, 0, 1); }

/* Pops up to count elements, replying them as an array (or the single
 * element when count < 0). */
void list_pop_reply(client *c, const dstr key, klist *l, int head, long long count) {
    if (count < 0) {
        dstr s = pop(l, head);
        reply_bulk_dstr(c, s);
        dstr_free(s);
    } else {
        if ((unsigned long long)count > l->len) count = (long long)l->len;
        reply_array_len(c, (long)count);
        for (long long i = 0; i < count; i++) {
            dstr s = pop(l, head);
            reply_bulk_dstr(c, s);
            dstr_free(s);
        }
    }
    notify_keyspace_event(NOTIFY_LIST, head ? "lpop" : "rpop", key, c->db->id);
    delete_if_empty(c, key, l);
}

static void pop_generic(client *c, int head) {
    long long count = -1;
    if (c->argc > 3) {
        reply_errorf(c, "ERR wrong number of arguments for '%s' command", c->cmd->name);
        return;
    }
    if (c->argc == 3 && arg_positive(c, c->argv[2], &count, NULL) != OK) return;
    int err;
    klist *l = get_list(c, c->argv[1], 1, &err);
    if (err) return;
    if (!l) {
        if (count >= 0) reply_null_array(c);
        else reply_null(c);
        return;
    }
    if (count == 0) {
        reply_array_len(c, 0);
        return;
    }
    list_pop_reply(c, c->argv[1], l, head, count);
}

void lpop_cmd(client *c) { pop_generic(c, 1); }
void rpop_cmd(client *c) { pop_generic(c, 0); }

void llen_cmd(client *c) {
    int err;
    klist *l = get_list(c, c->argv[1], 0, &err);
    if (!err) reply_ll(c, l ? (long long)l->len : 0);
}

void lrange_cmd(client *c) {
    long long start, end;
    if (arg_ll(c, c->argv[2], &start) != OK || arg_ll(c, c->argv[3], &end) != OK) return;
    int err;
    klist *l = get_list(c, c->argv[1], 0, &err);
    if (err) return;
    long long len = l ? (long long)l->len : 0;
    if (start < 0) start += len;
    if (end < 0) end += len;
    if (start < 0) start = 0;
    if (start > end || start >= len) {
        reply_array_len(c, 0);
        return;
    }
    if (end >= len) end = len - 1;
    reply_array_len(c, (long)(end - start + 1));
    for (long long i = start; i <= end; i++) reply_bulk_dstr(c, klist_get(l, (size_t)i));
}

static int normalize_index(long long *i, size_t len) {
    if (*i < 0) *i += (long long)len;
    return *i >= 0 && *i < (long long)len;
}

/* Like Redis, the key is looked up (nil, WRONGTYPE) before the index is
 * parsed. */
void lindex_cmd(client *c) {
    long long i;
    int err;
    klist *l = get_list(c, c->argv[1], 0, &err);
    if (err) return;
    if (!l) {
        reply_null(c);
        return;
    }
    if (arg_ll(c, c->argv[2], &i) != OK) return;
    if (!normalize_index(&i, l->len)) reply_null(c);
    else reply_bulk_dstr(c, klist_get(l, (size_t)i));
}

void lset_cmd(client *c) {
    long long i;
    int err;
    klist *l = get_list(c, c->argv[1], 1, &err);
    if (err) return;
    if (!l) {
        reply_error(c, "ERR no such key");
        return;
    }
    if (arg_ll(c, c->argv[2], &i) != OK) return;
    if (!normalize_index(&i, l->len)) {
        reply_error(c, "ERR index out of range");
        return;
    }
    dstr s = dstr_dup(c->argv[3]);
    if (!s) {
        reply_error(c, "ERR out of memory");
        return;
    }
    size_t k = slot(l, (size_t)i);
    dstr_free(l->buf[k]);
    l->buf[k] = s;
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_LIST, "lset", c->argv[1], c->db->id);
    reply_ok(c);
}

void linsert_cmd(client *c) {
    int after;
    if (arg_is(c->argv[2], "after")) after = 1;
    else if (arg_is(c->argv[2], "before")) after = 0;
    else {
        reply_syntax_error(c);
        return;
    }
    int err;
    klist *l = get_list(c, c->argv[1], 1, &err);
    if (err) return;
    if (!l) {
        reply_ll(c, 0);
        return;
    }
    for (size_t i = 0; i < l->len; i++) {
        if (!dict_eq_dstr(klist_get(l, i), c->argv[3])) continue;
        dstr s = dstr_dup(c->argv[4]);
        if (!s || insert_at(l, i + (size_t)after, s) != OK) {
            dstr_free(s);
            reply_error(c, "ERR out of memory");
            return;
        }
        db_signal_modified(c->db, c->argv[1]);
        notify_keyspace_event(NOTIFY_LIST, "linsert", c->argv[1], c->db->id);
        reply_ll(c, (long long)l->len);
        return;
    }
    reply_ll(c, -1);
}

/* Removes the elements equal to v, at most |count| of them (all when count
 * is 0), from the head when count > 0 and from the tail when count < 0, in
 * one pass that slides the kept elements over the removed ones: O(N) however
 * many match (removing one at a time would shift the tail once per match,
 * O(N*M), with the event loop stalled for every client).  Returns how many
 * were removed. */
static long long remove_matches(klist *l, const dstr v, long long count) {
    unsigned long long limit = count >= 0 ? (unsigned long long)count : 0ULL - (unsigned long long)count;
    unsigned long long removed = 0;
    size_t n = l->len;
    if (count >= 0) {
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            dstr e = klist_get(l, i);
            if ((count == 0 || removed < limit) && dict_eq_dstr(e, v)) {
                dstr_free(e);
                removed++;
            } else {
                l->buf[slot(l, w++)] = e;
            }
        }
        l->len = w;
    } else {
        size_t w = n; /* the kept elements end up in [w, n) */
        for (size_t i = n; i-- > 0;) {
            dstr e = klist_get(l, i);
            if (removed < limit && dict_eq_dstr(e, v)) {
                dstr_free(e);
                removed++;
            } else {
                l->buf[slot(l, --w)] = e;
            }
        }
        if (n) l->head = slot(l, w);
        l->len = n - w;
    }
    assert(l->len + removed == n);
    return (long long)removed;
}

/* LREM key count element   O(N+M): N the list's length, M the removed */
void lrem_cmd(client *c) {
    long long count;
    if (arg_ll(c, c->argv[2], &count) != OK) return;
    int err;
    klist *l = get_list(c, c->argv[1], 1, &err);
    if (err) return;
    if (!l) {
        reply_ll(c, 0);
        return;
    }
    long long removed = remove_matches(l, c->argv[3], count);
    if (removed) {
        notify_keyspace_event(NOTIFY_LIST, "lrem", c->argv[1], c->db->id);
        delete_if_empty(c, c->argv[1], l);
    }
    reply_ll(c, removed);
}

void ltrim_cmd(client *c) {
    long long start, end;
    if (arg_ll(c, c->argv[2], &start) != OK || arg_ll(c, c->argv[3], &end) != OK) return;
    int err;
    klist *l = get_list(c, c->argv[1], 1, &err);
    if (err) return;
    if (!l) {
        reply_ok(c);
        return;
    }
    long long len = (long long)l->len;
    if (start < 0) start += len;
    if (end < 0) end += len;
    if (start < 0) start = 0;
    long long ltrim, rtrim;
    if (start > end || start >= len) {
        ltrim = len;
        rtrim = 0;
    } else {
        if (end >= len) end = len - 1;
        ltrim = start;
        rtrim = len - end - 1;
    }
    for (long long i = 0; i < ltrim; i++) dstr_free(pop(l, 1));
    for (long long i = 0; i < rtrim; i++) dstr_free(pop(l, 0));
    notify_keyspace_event(NOTIFY_LIST, "ltrim", c->argv[1], c->db->id);
    delete_if_empty(c, c->argv[1], l);
    reply_ok(c);
}

void lpos_cmd(client *c) {
    long long rank = 1, count = -1, maxlen = 0;
    for (int i = 3; i < c->argc; i += 2) {
        if (i + 1 >= c->argc) {
            reply_syntax_error(c);
            return;
        }
        const dstr opt = c->argv[i], val = c->argv[i + 1];
        if (arg_is(opt, "rank")) {
            if (arg_ll(c, val, &rank) != OK) return;
            if (rank == 0) {
                reply_error(c, "ERR RANK can't be zero: use 1 to start from the first match, 2 from the "
                               "second ... or use negative to start from the end of the list");
                return;
            }
        } else if (arg_is(opt, "count")) {
            if (arg_positive(c, val, &count, "ERR COUNT can't be negative") != OK) return;
        } else if (arg_is(opt, "maxlen")) {
            if (arg_positive(c, val, &maxlen, "ERR MAXLEN can't be negative") != OK) return;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    int err;
    klist *l = get_list(c, c->argv[1], 0, &err);
    if (err) return;
    if (!l) {
        if (count >= 0) reply_array_len(c, 0);
        else reply_null(c);
        return;
    }
    void *node = count >= 0 ? reply_defer_len(c) : NULL;
    long found = 0;
    /* Redis negates the rank in signed arithmetic: LLONG_MIN stays negative
     * there and matches the first element from the tail. */
    unsigned long long skip = rank == LLONG_MIN ? 0
                              : (unsigned long long)(rank > 0 ? rank : -rank) - 1;
    size_t n = l->len;
    for (size_t k = 0; k < n && (maxlen == 0 || (long long)k < maxlen); k++) {
        size_t i = rank > 0 ? k : n - 1 - k;
        if (!dict_eq_dstr(klist_get(l, i), c->argv[2])) continue;
        if (skip > 0) {
            skip--;
            continue;
        }
        reply_ll(c, (long long)i);
        found++;
        if (count < 0 || (count > 0 && found == count)) break;
    }
    if (count >= 0) reply_set_deferred_array(c, node, found);
    else if (!found) reply_null(c);
}

int list_parse_side(const dstr s, int *head) {
    if (arg_is(s, "left")) *head = 1;
    else if (arg_is(s, "right")) *head = 0;
    else return ERR;
    return OK;
}

void list_move(client *c, const dstr srckey, const dstr dstkey, int from_head, int to_head) {
    int err;
    klist *src = get_list(c, srckey, 1, &err);
    if (err) return;
    if (!src) {
        reply_null(c);
        return;
    }
    klist *dst = get_list(c, dstkey, 1, &err);
    if (err) return;
    if (!dst) {
        dst = create_list(c, dstkey);
        if (!dst) {
            reply_error(c, "ERR out of memory");
            return;
        }
    }
    dstr s = pop(src, from_head);
    dstr r = dstr_dup(s);
    if (!r || push(dst, s, to_head) != OK) {
        push(src, s, from_head); /* capacity is still there */
        dstr_free(r);
        if (dst->len == 0) db_delete(c->db, dstkey); /* created above: nothing moved into it */
        reply_error(c, "ERR out of memory");
        return;
    }
    reply_bulk_dstr(c, r);
    dstr_free(r);
    db_signal_modified(c->db, dstkey);
    notify_keyspace_event(NOTIFY_LIST, to_head ? "lpush" : "rpush", dstkey, c->db->id);
    notify_keyspace_event(NOTIFY_LIST, from_head ? "lpop" : "rpop", srckey, c->db->id);
    delete_if_empty(c, srckey, src);
}

void lmove_cmd(client *c) {
    int from, to;
    if (list_parse_side(c->argv[3], &from) != OK || list_parse_side(c->argv[4], &to) != OK) {
        reply_syntax_error(c);
        return;
    }
    list_move(c, c->argv[1], c->argv[2], from, to);
}

void rpoplpush_cmd(client *c) { list_move(c, c->argv[1], c->argv[2], 0, 1); }

void lmpop_cmd(client *c) {
    long long numkeys, count = 1;
    if (arg_ll_range(c, c->argv[1], 1, LONG_MAX, &numkeys, "ERR numkeys should be greater than 0") != OK)
        return;
    if (numkeys > c->argc - 3) {
        reply_syntax_error(c);
        return;
    }
    int where = 2 + (int)numkeys, head;
    if (where >= c->argc || list_parse_side(c->argv[where], &head) != OK) {
        reply_syntax_error(c);
        return;
    }
    int count_given = 0;
    for (int i = where + 1; i < c->argc; i++) {
        if (arg_is(c->argv[i], "count") && i + 1 < c->argc && !count_given) {
            if (arg_ll_range(c, c->argv[++i], 1, LLONG_MAX, &count, "ERR count should be greater than 0") != OK)
                return;
            count_given = 1;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    for (int k = 2; k < where; k++) {
        int err;
        klist *l = get_list(c, c->argv[k], 1, &err);
        if (err) return;
        if (!l) continue;
        reply_array_len(c, 2);
        reply_bulk_dstr(c, c->argv[k]);
        list_pop_reply(c, c->argv[k], l, head, count);
        return;
    }
    reply_null_array(c);
}
