/* scan.c - SCAN, HSCAN, SSCAN and ZSCAN share this walk.
 *
 * The cursor is dict_scan's reverse-binary bucket index, so the guarantee
 * is the dict's: whatever stays in the collection for the whole iteration
 * is returned at least once, however the table is resized in between.
 * COUNT is a hint of work per call (buckets visited are capped at ten times
 * it), MATCH and TYPE filter after the walk, as in Redis.  Small collections
 * (the sizes Redis keeps in its compact encodings) come back whole in one
 * call with cursor 0, which is what clients of Redis see for them. */
#include "server.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#define SMALL_HASH_ZSET 128
#define SMALL_INT_SET 512

typedef struct scan_out {
    dstr *items; /* key, or key + value pairs */
    size_t n, cap;
    int with_values; /* 1 hash, 2 zset */
    int oom;
} scan_out;

static void push(scan_out *o, dstr s) {
    if (!s) {
        o->oom = 1;
        return;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 32;
        dstr *n = km_realloc(o->items, cap * sizeof *n);
        if (!n) {
            dstr_free(s);
            o->oom = 1;
            return;
        }
        o->items = n;
        o->cap = cap;
    }
    o->items[o->n++] = s;
}

/* One entry: its key, and for HSCAN / ZSCAN its value - both or neither,
 * so that items stays a list of whole pairs when memory runs out (the
 * filter below walks it two by two). */
static void collect(void *priv, dict_entry *e) {
    scan_out *o = priv;
    if (o->oom) return;
    size_t n0 = o->n;
    push(o, dstr_dup(e->key));
    if (o->with_values == 1) {
        push(o, dstr_dup(e->v.val));
    } else if (o->with_values == 2) {
        char buf[64];
        int n = double_to_str(buf, sizeof buf, e->v.d);
        push(o, dstr_newlen(buf, (size_t)n));
    }
    if (o->oom)
        while (o->n > n0) dstr_free(o->items[--o->n]);
}

/* Cursor text follows strtoul, as Redis parses it: "" is 0 and a leading
 * '-' wraps around; spaces, junk and overflow are refused. */
int scan_parse_cursor(client *c, const dstr s, unsigned long *cursor) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (isspace((unsigned char)s[0]) || (size_t)(end - s) != dstr_len(s) || errno == ERANGE) {
        reply_error(c, "ERR invalid cursor");
        return ERR;
    }
    *cursor = v;
    return OK;
}

static int all_integers(dict *d) {
    dict_iter it;
    dict_iter_init(&it, d, 0);
    int ok = 1;
    long long v;
    for (dict_entry *e; ok && (e = dict_next(&it));)
        ok = str_to_ll(e->key, dstr_len(e->key), &v);
    dict_iter_done(&it);
    return ok;
}

static int is_small(kobj *o, dict *d) {
    if (!o) return 0;
    if (o->type == OBJ_SET) return dict_size(d) <= SMALL_INT_SET && all_integers(d);
    return dict_size(d) <= SMALL_HASH_ZSET;
}

static int type_of_name(const dstr s) {
    for (int t = OBJ_STRING; t <= OBJ_TYPE_MAX; t++)
        if (!strcasecmp(s, obj_type_name(t))) return t;
    return -1;
}

void scan_generic(client *c, kobj *o, int first, unsigned long cursor) {
    long long count = 10;
    const char *pat = NULL;
    size_t patlen = 0;
    int type = -2; /* -2: no filter, -1: unknown type (matches nothing) */
    for (int i = first; i < c->argc; i += 2) {
        if (i + 1 >= c->argc) goto syntax;
        if (arg_is(c->argv[i], "count")) {
            if (arg_ll(c, c->argv[i + 1], &count) != OK) return;
            if (count < 1) goto syntax;
        } else if (arg_is(c->argv[i], "match")) {
            pat = c->argv[i + 1];
            patlen = dstr_len(c->argv[i + 1]);
            if (patlen == 1 && pat[0] == '*') pat = NULL;
        } else if (arg_is(c->argv[i], "type") && !o) {
            type = type_of_name(c->argv[i + 1]);
        } else {
            goto syntax;
        }
    }
    scan_out out = {NULL, 0, 0, !o ? 0 : o->type == OBJ_HASH ? 1 : o->type == OBJ_ZSET ? 2 : 0, 0};
    if (o && o->type == OBJ_HASH && o->enc == ENC_PACKED) {
        hash_iter it;
        hp_entry e;
        hash_iter_init(&it, o);
        while (!out.oom && hash_iter_next(&it, &e)) {
            size_t n0 = out.n;
            push(&out, dstr_newlen(e.f, e.flen));
            push(&out, dstr_newlen(e.v, e.vlen));
            if (out.oom)
                while (out.n > n0) dstr_free(out.items[--out.n]);
        }
        hash_iter_done(&it);
        cursor = 0;
        goto filter;
    }
    dict *d = !o ? c->db->keys : o->type == OBJ_ZSET ? zset_dict(o->ptr) : o->ptr;
    if (is_small(o, d)) {
        cursor = 0;
        do cursor = dict_scan(d, cursor, collect, &out);
        while (cursor && !out.oom);
    } else {
        /* COUNT can be any positive long long: cap the arithmetic */
        long long max_buckets = count > LLONG_MAX / 10 ? LLONG_MAX : count * 10;
        size_t want = count > (long long)(SIZE_MAX / 4) ? SIZE_MAX / 2 : (size_t)count * (out.with_values ? 2 : 1);
        do cursor = dict_scan(d, cursor, collect, &out);
        while (cursor && --max_buckets && out.n < want && !out.oom);
    }
filter:;
    int step = out.with_values ? 2 : 1;
    assert(out.n % (size_t)step == 0); /* whole pairs (collect) */
    size_t kept = 0;
    for (size_t i = 0; i < out.n; i += step) {
        int keep = !out.oom;
        if (keep && pat) keep = glob_match(pat, patlen, out.items[i], dstr_len(out.items[i]), 0);
        if (keep && !o) {
            /* SCAN drops keys that have expired, and filters by TYPE */
            kobj *v = db_lookup(c->db, out.items[i], LOOKUP_NOTOUCH);
            keep = v && (type == -2 || (int)v->type == type);
        }
        if (!keep) {
            for (int k = 0; k < step; k++) {
                dstr_free(out.items[i + k]);
                out.items[i + k] = NULL;
            }
            continue;
        }
        kept++;
    }
    if (out.oom) {
        for (size_t i = 0; i < out.n; i++) dstr_free(out.items[i]);
        km_free(out.items);
        reply_error(c, "ERR out of memory");
        return;
    }
    reply_array_len(c, 2);
    reply_bulk_ll(c, (long long)cursor);
    reply_array_len(c, (long)(kept * (size_t)step));
    for (size_t i = 0; i < out.n; i++) {
        if (!out.items[i]) continue;
        reply_bulk_dstr(c, out.items[i]);
        dstr_free(out.items[i]);
    }
    km_free(out.items);
    return;
syntax:
    reply_syntax_error(c);
}
