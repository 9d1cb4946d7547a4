/* t_sort.c - SORT and SORT_RO: the elements of a list, set or sorted set,
 * ordered numerically or lexically, by themselves or by the values of
 * other keys (BY pattern), with LIMIT, GET patterns and STORE.
 *
 * Redis 7.0's rules are kept to the letter because clients see all of
 * them: numbers parse with strtod (so " 1", "0x10" and "" are numbers,
 * "nan" is not); equal numbers fall back to comparing the elements as
 * bytes; ALPHA compares with strcoll, or as bytes when storing; missing BY
 * values sort first in ALPHA and as 0 otherwise; `BY nosort` keeps a
 * list's or a sorted set's own order (reading only the LIMIT range), and
 * STORE of a set with `BY nosort` sorts ALPHA anyway.  A pattern is read
 * as a C string: its first `*` takes the element, `->field` after it reads
 * a hash field, `#` alone is the element itself.
 *
 * The sort is a stable merge sort, which is what glibc's qsort under
 * Redis is, or with BY and a LIMIT the partial quicksort Redis uses there,
 * so lists come out as Redis orders them even where ALPHA BY values tie.
 * A set or sorted set has no order of its own to be stable about (Redis
 * walks its hash table), so there ties are broken by the elements' bytes:
 * SORT ... STORE is then a function of the data alone, and its argv
 * replays from the AOF to the same list. */
#include "server.h"
#include "zset.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One element being sorted.  p borrows the element's bytes from the
 * sorted value, which SORT holds a reference on until it is done. */
typedef struct sort_item {
    const char *p;
    size_t len;
    double score; /* numeric sort: the element's or its BY value */
    dstr cmp;     /* ALPHA with BY: a copy of the BY value, NULL if none */
} sort_item;

typedef struct sort_ctx {
    int desc, alpha, bypattern, store;
    int tiebreak; /* break ALPHA ties on the bytes (sets, sorted sets) */
} sort_ctx;

/* A BY or GET pattern, taken apart once. */
enum { PAT_SELF, PAT_CONSTANT, PAT_KEY, PAT_FIELD };
typedef struct sort_pattern {
    int kind;
    const char *pre, *post; /* key name = pre + element + post */
    size_t prelen, postlen;
    dstr field;             /* PAT_FIELD: the hash field */
} sort_pattern;

/* ----------------------------------------------------------- patterns */

static int pattern_init(sort_pattern *sp, const dstr pat) {
    size_t len = dstr_len(pat), clen = strlen(pat);
    memset(sp, 0, sizeof *sp);
    if (clen == 1 && pat[0] == '#') {
        sp->kind = PAT_SELF;
        return OK;
    }
    const char *star = memchr(pat, '*', clen);
    if (!star) {
        sp->kind = PAT_CONSTANT; /* GET of a fixed key makes no sense: nil */
        return OK;
    }
    size_t at = (size_t)(star - pat) + 1;
    const char *arrow = memmem(star + 1, clen - at, "->", 2);
    size_t fieldlen = 0;
    if (arrow && (size_t)(arrow - pat) + 2 < clen) fieldlen = len - (size_t)(arrow - pat) - 2;
    sp->kind = fieldlen ? PAT_FIELD : PAT_KEY;
    sp->pre = pat;
    sp->prelen = (size_t)(star - pat);
    sp->post = star + 1;
    sp->postlen = len - sp->prelen - 1 - (fieldlen ? fieldlen + 2 : 0);
    if (fieldlen && !(sp->field = dstr_newlen(arrow + 2, fieldlen))) return ERR;
    return OK;
}

static void pattern_free(sort_pattern *sp) { dstr_free(sp->field); }

/* The value a pattern names for one element: 1 with *p / *len set
 * (borrowed until the next write to the dataset; int strings are written
 * into buf), 0 when there is none (missing key, wrong type, missing field,
 * a pattern without '*'), -1 on OOM.  The key is read like any read
 * command reads (hits, misses, keymiss events). */
static int pattern_value(client *c, const sort_pattern *sp, const char *elem, size_t elen, dstr *keybuf,
                         char buf[LL_STR_SIZE], const char **p, size_t *len) {
    if (sp->kind == PAT_SELF) {
        *p = elem;
        *len = elen;
        return 1;
    }
    if (sp->kind == PAT_CONSTANT) return 0;
    dstr k = *keybuf;
    dstr_setlen(k, 0);
    dstr n = dstr_reserve(k, sp->prelen + elen + sp->postlen);
    if (!n) return -1;
    memcpy(n, sp->pre, sp->prelen);
    memcpy(n + sp->prelen, elem, elen);
    memcpy(n + sp->prelen + elen, sp->post, sp->postlen);
    dstr_setlen(n, sp->prelen + elen + sp->postlen);
    *keybuf = n;
    kobj *o = db_lookup_read(c, n);
    if (!o) return 0;
    if (sp->kind == PAT_KEY) {
        if (o->type != OBJ_STRING) return 0;
        *p = obj_str(o, buf, len);
        return 1;
    }
    if (o->type != OBJ_HASH) return 0;
    if (o->enc == ENC_PACKED) {
        hp_entry e;
        if (!hpack_find(o->ptr, sp->field, dstr_len(sp->field), &e)) return 0;
        *p = e.v;
        *len = e.vlen;
        return 1;
    }
    dstr v = dict_fetch(o->ptr, sp->field);
    if (!v) return 0;
    *p = v;
    *len = dstr_len(v);
    return 1;
}

/* ------------------------------------------------------------ ordering */

/* Redis's numeric reading of a sort key: strtod on the bytes as a C
 * string, refusing trailing junk, ERANGE and NaN.  1 ok, 0 not a
 * number, -1 OOM. */
static int parse_score(const char *p, size_t len, double *out) {
    char small[128], *s = small;
    if (len >= sizeof small && !(s = km_malloc(len + 1))) return -1;
    memcpy(s, p, len);
    s[len] = '\0';
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    int ok = end[0] == '\0' && errno != ERANGE && !isnan(d);
    if (s != small) km_free(s);
    *out = d;
    return ok;
}

static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl) {
    int r = memcmp(a, b, al < bl ? al : bl);
    if (r) return r;
    return al < bl ? -1 : al > bl;
}

static int item_cmp(const sort_item *x, const sort_item *y, const sort_ctx *ctx) {
    int r;
    if (!ctx->alpha) {
        if (x->score != y->score) r = x->score > y->score ? 1 : -1;
        else r = bytes_cmp(x->p, x->len, y->p, y->len);
    } else if (ctx->bypattern) {
        if (!x->cmp || !y->cmp) r = x->cmp == y->cmp ? 0 : x->cmp ? 1 : -1;
        else if (ctx->store) r = bytes_cmp(x->cmp, dstr_len(x->cmp), y->cmp, dstr_len(y->cmp));
        else r = strcoll(x->cmp, y->cmp);
    } else {
        /* elements of lists, sets and sorted sets are NUL-terminated
         * dstrs, so strcoll can read them in place */
        r = ctx->store ? bytes_cmp(x->p, x->len, y->p, y->len) : strcoll(x->p, y->p);
    }
    if (r == 0 && ctx->alpha && ctx->tiebreak) r = bytes_cmp(x->p, x->len, y->p, y->len);
    return ctx->desc ? -r : r;
}

/* Stable merge sort of v[0..n) using tmp[0..n). */
static void merge_sort(sort_item *v, sort_item *tmp, size_t n, const sort_ctx *ctx) {
    if (n < 2) return;
    size_t h = n / 2;
    merge_sort(v, tmp, h, ctx);
    merge_sort(v + h, tmp, n - h, ctx);
    if (item_cmp(&v[h - 1], &v[h], ctx) <= 0) return; /* already in order */
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = item_cmp(&v[j], &v[i], ctx) < 0 ? v[j++] : v[i++];
    while (i < h) tmp[k++] = v[i++];
    memcpy(v, tmp, k * sizeof *v); /* the rest of the right half is in place */
}

/* Sorting only the part of v that LIMIT keeps, where Redis does (BY with
 * a LIMIT): Bentley and McIlroy's quicksort ("Engineering a Sort
 * Function", 1993) - median of three (of nine above 40 elements) as
 * pivot, three-way partitioning, insertion sort below 7 elements - that
 * skips the partitions lying wholly outside [lo, hi].  The same steps as
 * the partial sort Redis uses there, so that elements whose BY values tie
 * under ALPHA come out in the same order as from redis-server. */
static void item_swap(sort_item *v, size_t i, size_t j) {
    sort_item t = v[i];
    v[i] = v[j];
    v[j] = t;
}

/* Swaps the k elements from i with the k elements from j, pairwise. */
static void item_vecswap(sort_item *v, size_t i, size_t j, size_t k) {
    for (size_t m = 0; m < k; m++) item_swap(v, i + m, j + m);
}

static size_t med3(const sort_item *v, size_t a, size_t b, size_t c, const sort_ctx *ctx) {
    if (item_cmp(&v[a], &v[b], ctx) < 0)
        return item_cmp(&v[b], &v[c], ctx) < 0 ? b : item_cmp(&v[a], &v[c], ctx) < 0 ? c : a;
    return item_cmp(&v[b], &v[c], ctx) > 0 ? b : item_cmp(&v[a], &v[c], ctx) < 0 ? a : c;
}

/* Whether the n elements from `first` meet the range [lo, hi] (which may
 * be empty, hi = lo - 1, as LIMIT past the end makes it). */
static int meets_range(size_t first, size_t n, long long lo, long long hi) {
    long long l = (long long)first, r = (long long)(first + n) - 1;
    return !((lo < l && hi < l) || (lo > r && hi > r));
}

static void partial_sort(sort_item *v, size_t base, size_t n, long long lo, long long hi, const sort_ctx *ctx) {
    for (;;) {
        if (n < 7) {
            for (size_t m = base + 1; m < base + n; m++)
                for (size_t l = m; l > base && item_cmp(&v[l - 1], &v[l], ctx) > 0; l--) item_swap(v, l, l - 1);
            return;
        }
        size_t pm = base + n / 2;
        if (n > 7) {
            size_t pl = base, pn = base + n - 1;
            if (n > 40) {
                size_t d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, ctx);
                pm = med3(v, pm - d, pm, pm + d, ctx);
                pn = med3(v, pn - 2 * d, pn - d, pn, ctx);
            }
            pm = med3(v, pl, pm, pn, ctx);
        }
        item_swap(v, base, pm); /* the pivot waits at base */
        /* [base+1, pa): equal to the pivot; [pa, pb): less; (pc, pd]:
         * greater; (pd, end): equal */
        size_t pa = base + 1, pb = pa, pc = base + n - 1, pd = pc;
        for (;;) {
            int r;
            while (pb <= pc && (r = item_cmp(&v[pb], &v[base], ctx)) <= 0) {
                if (r == 0) item_swap(v, pa++, pb);
                pb++;
            }
            while (pb <= pc && (r = item_cmp(&v[pc], &v[base], ctx)) >= 0) {
                if (r == 0) item_swap(v, pc, pd--);
                pc--;
            }
            if (pb > pc) break;
            item_swap(v, pb++, pc--);
        }
        /* move the equal runs from both ends to the middle */
        size_t end = base + n;
        size_t k = pa - base < pb - pa ? pa - base : pb - pa;
        item_vecswap(v, base, pb - k, k);
        k = pd - pc < end - pd - 1 ? pd - pc : end - pd - 1;
        item_vecswap(v, pb, end - k, k);
        /* The two sides are disjoint, so the order they are sorted in
         * changes nothing: recursing into the smaller one and looping on
         * the larger bounds the stack to log2(n) frames whatever the
         * input. */
        size_t lb = base, ln = pb - pa, rb = end - (pd - pc), rn = pd - pc;
        int lwant = ln > 1 && meets_range(lb, ln, lo, hi), rwant = rn > 1 && meets_range(rb, rn, lo, hi);
        if (lwant && rwant) {
            if (ln < rn) {
                partial_sort(v, lb, ln, lo, hi, ctx);
                base = rb, n = rn;
            } else {
                partial_sort(v, rb, rn, lo, hi, ctx);
                base = lb, n = ln;
            }
        } else if (lwant) {
            base = lb, n = ln;
        } else if (rwant) {
            base = rb, n = rn;
        } else {
            return;
        }
    }
}

/* ------------------------------------------------------------- loading */

/* Fills v with the elements to sort.  For a list or sorted set read in
 * its own order (dontsort), only `count` elements from position `from`
 * (counted from the end with desc) are read. */
static size_t load_items(kobj *o, int dontsort, int desc, long long from, long long count, sort_item *v) {
    size_t n = 0;
    if (!o) return 0;
    if (o->type == OBJ_LIST) {
        klist *l = o->ptr;
        size_t len = klist_len(l);
        if (!dontsort) {
            from = 0;
            count = (long long)len;
            desc = 0;
        }
        for (long long k = 0; k < count; k++) {
            size_t i = desc ? len - 1 - (size_t)(from + k) : (size_t)(from + k);
            dstr s = klist_get(l, i);
            v[n++] = (sort_item){s, dstr_len(s), 0, NULL};
        }
    } else if (o->type == OBJ_ZSET) {
        zskiplist *zsl = ((struct zset *)o->ptr)->zsl;
        if (!dontsort) {
            from = 0;
            count = (long long)zsl->length;
            desc = 0;
        }
        if (count <= 0) return 0;
        zsl_node *x = desc ? zsl_by_rank(zsl, zsl->length - (unsigned long)from)
                           : zsl_by_rank(zsl, (unsigned long)from + 1);
        for (long long k = 0; k < count && x; k++, x = desc ? x->backward : x->level[0].forward)
            v[n++] = (sort_item){x->ele, dstr_len(x->ele), 0, NULL};
    } else {
        dict_iter it;
        dict_iter_init(&it, o->ptr, 0);
        for (dict_entry *e; (e = dict_next(&it));) v[n++] = (sort_item){e->key, dstr_len(e->key), 0, NULL};
        dict_iter_done(&it);
    }
    return n;
}

static size_t value_len(kobj *o) {
    if (!o) return 0;
    if (o->type == OBJ_LIST) return klist_len(o->ptr);
    if (o->type == OBJ_ZSET) return zset_len(o->ptr);
    return set_len(o);
}

/* -------------------------------------------------------------- output */

/* STORE: the output as a new list at dst (dst deleted when empty). */
static int store_result(client *c, const dstr dst, sort_item *v, long long start, long long end,
                        sort_pattern *gets, int ngets, dstr *keybuf, long long outputlen) {
    klist *l = klist_new();
    if (!l) return ERR;
    for (long long j = start; j <= end; j++) {
        for (int g = 0; g < (ngets ? ngets : 1); g++) {
            const char *p = v[j].p;
            size_t len = v[j].len;
            char buf[LL_STR_SIZE];
            if (ngets) {
                int r = pattern_value(c, &gets[g], v[j].p, v[j].len, keybuf, buf, &p, &len);
                if (r < 0) goto oom;
                if (r == 0) p = "", len = 0; /* a missing GET stores "" */
            }
            dstr s = dstr_newlen(p, len);
            if (!s || klist_push_tail(l, s) != OK) {
                dstr_free(s);
                goto oom;
            }
        }
    }
    if (outputlen) {
        kobj *o = obj_new(OBJ_LIST, ENC_LIST, l);
        if (!o) goto oom;
        if (db_set(c->db, dst, o, 0) != OK) {
            obj_decref(o);
            return ERR;
        }
        notify_keyspace_event(NOTIFY_LIST, "sortstore", dst, c->db->id);
        srv.dirty += outputlen - 1; /* Redis counts one change per element */
    } else {
        klist_free(l);
        if (db_delete(c->db, dst)) notify_keyspace_event(NOTIFY_GENERIC, "del", dst, c->db->id);
    }
    reply_ll(c, outputlen);
    return OK;
oom:
    klist_free(l);
    return ERR;
}

/* Room in keybuf for the longest key name a GET pattern will build for
 * elements start..end, taken before the reply starts: its array length
 * goes out first, so a name that could not be built then could only be
 * answered as nil - a value that exists reported missing. */
static int reserve_keybuf(dstr *keybuf, const sort_item *v, long long start, long long end, const sort_pattern *gets,
                          int ngets) {
    size_t longest = 0;
    for (int g = 0; g < ngets; g++)
        if (gets[g].kind != PAT_SELF && gets[g].kind != PAT_CONSTANT)
            for (long long j = start; j <= end; j++) {
                size_t need = gets[g].prelen + v[j].len + gets[g].postlen;
                if (need > longest) longest = need;
            }
    dstr_setlen(*keybuf, 0);
    dstr n = dstr_reserve(*keybuf, longest);
    if (!n) return ERR;
    *keybuf = n;
    return OK;
}

static void reply_result(client *c, sort_item *v, long long start, long long end, sort_pattern *gets, int ngets,
                         dstr *keybuf, long long outputlen) {
    reply_array_len(c, (long)outputlen);
    for (long long j = start; j <= end; j++) {
        if (!ngets) reply_bulk(c, v[j].p, v[j].len);
        for (int g = 0; g < ngets; g++) {
            const char *p;
            size_t len;
            char buf[LL_STR_SIZE];
            int r = pattern_value(c, &gets[g], v[j].p, v[j].len, keybuf, buf, &p, &len);
            assert(r >= 0); /* reserve_keybuf made the room: building a name allocates nothing */
            if (r > 0) reply_bulk(c, p, len);
            else reply_null(c);
        }
    }
}

/* ------------------------------------------------------------- command */

typedef struct sort_args {
    int desc, alpha, dontsort, ngets;
    long long limit_start, limit_count;
    dstr by, store;
    sort_pattern by_pat, *gets;
} sort_args;

/* Parses argv[2..] into a; replies and returns ERR on the first fault. */
static int parse_args(client *c, int readonly, sort_args *a) {
    a->gets = km_malloc(sizeof(sort_pattern) * (size_t)(c->argc / 2 + 1));
    if (!a->gets) {
        reply_error(c, "ERR out of memory");
        return ERR;
    }
    for (int j = 2; j < c->argc; j++) {
        int left = c->argc - j - 1;
        const dstr o = c->argv[j];
        if (arg_is(o, "asc")) a->desc = 0;
        else if (arg_is(o, "desc")) a->desc = 1;
        else if (arg_is(o, "alpha")) a->alpha = 1;
        else if (arg_is(o, "limit") && left >= 2) {
            if (arg_ll(c, c->argv[j + 1], &a->limit_start) != OK) return ERR;
            if (arg_ll(c, c->argv[j + 2], &a->limit_count) != OK) return ERR;
            j += 2;
        } else if (!readonly && arg_is(o, "store") && left >= 1) {
            a->store = c->argv[++j];
        } else if (arg_is(o, "by") && left >= 1) {
            a->by = c->argv[++j];
            /* a BY without '*' names one key for every element: nothing
             * to sort by, the value's own order is kept (and, as in
             * Redis, a later BY with '*' does not undo that) */
            if (!strchr(a->by, '*')) a->dontsort = 1;
        } else if (arg_is(o, "get") && left >= 1) {
            if (pattern_init(&a->gets[a->ngets], c->argv[++j]) != OK) {
                reply_error(c, "ERR out of memory");
                return ERR;
            }
            a->ngets++;
        } else {
            reply_syntax_error(c);
            return ERR;
        }
    }
    return OK;
}

static void sort_generic(client *c, int readonly) {
    sort_args a;
    memset(&a, 0, sizeof a);
    a.limit_count = -1;
    sort_item *v = NULL, *tmp = NULL;
    dstr keybuf = NULL;
    long long n = 0;
    kobj *o = NULL;
    if (parse_args(c, readonly, &a) != OK) goto done;
    o = db_lookup_read(c, c->argv[1]);
    if (o && o->type != OBJ_SET && o->type != OBJ_LIST && o->type != OBJ_ZSET) {
        reply_wrong_type(c);
        o = NULL;
        goto done;
    }
    if (o) o->refcount++; /* STORE may replace the very key being sorted */
    int sorting_by = a.by && !a.dontsort;
    if (a.dontsort && o && o->type == OBJ_SET && a.store) {
        /* a set has no order of its own: what is stored must not depend
         * on hash-table order, so it is sorted ALPHA */
        a.dontsort = 0;
        a.alpha = 1;
        sorting_by = 0;
    }
    long long len = (long long)value_len(o);
    /* LIMIT, clamped to the value's size */
    long long start = a.limit_start < 0 ? 0 : a.limit_start > len ? len : a.limit_start;
    long long count = a.limit_count < -1 ? -1 : a.limit_count > len ? len : a.limit_count;
    long long end = count < 0 ? len - 1 : start + count - 1;
    if (start >= len) {
        start = len - 1;
        end = len - 2;
    }
    if (end >= len) end = len - 1;
    /* a list or sorted set in its own order: read only the range */
    long long nload = len;
    int direct = o && o->type != OBJ_SET && a.dontsort;
    if (direct && (start != 0 || end != len - 1)) nload = end - start + 1;
    v = km_malloc(sizeof *v * (size_t)(nload > 0 ? nload : 1));
    if (!v || !(keybuf = dstr_empty())) goto oom;
    if (direct) {
        n = (long long)load_items(o, 1, a.desc, start, end >= start ? nload : 0, v);
        end -= start;
        start = 0;
    } else {
        n = (long long)load_items(o, 0, 0, 0, 0, v);
    }
    if (sorting_by && pattern_init(&a.by_pat, a.by) != OK) goto oom;
    int conversion_error = 0;
    if (!a.dontsort) {
        for (long long j = 0; j < n; j++) {
            const char *p = v[j].p;
            size_t plen = v[j].len;
            char buf[LL_STR_SIZE];
            if (sorting_by) {
                int r = pattern_value(c, &a.by_pat, v[j].p, v[j].len, &keybuf, buf, &p, &plen);
                if (r < 0) goto oom;
                if (r == 0) continue; /* no value: 0, or first in ALPHA */
            }
            if (a.alpha) {
                if (sorting_by && !(v[j].cmp = dstr_newlen(p, plen))) goto oom;
            } else {
                int r = parse_score(p, plen, &v[j].score);
                if (r < 0) goto oom;
                if (r == 0) conversion_error = 1;
            }
        }
        sort_ctx ctx = {a.desc, a.alpha, sorting_by, a.store != NULL, o && o->type != OBJ_LIST};
        if (conversion_error) {
            /* nothing to order: the reply is the error */
        } else if (sorting_by && (start != 0 || end != n - 1)) {
            partial_sort(v, 0, (size_t)n, start, end, &ctx);
        } else {
            if (!(tmp = km_malloc(sizeof *tmp * (size_t)(n > 0 ? n : 1)))) goto oom;
            merge_sort(v, tmp, (size_t)n, &ctx);
        }
    }
    long long outputlen = (end - start + 1) * (a.ngets ? a.ngets : 1);
    if (outputlen < 0) outputlen = 0;
    if (!conversion_error && !a.store && reserve_keybuf(&keybuf, v, start, end, a.gets, a.ngets) != OK) goto oom;
    if (conversion_error) reply_error(c, "ERR One or more scores can't be converted into double");
    else if (!a.store) reply_result(c, v, start, end, a.gets, a.ngets, &keybuf, outputlen);
    else if (store_result(c, a.store, v, start, end, a.gets, a.ngets, &keybuf, outputlen) != OK) goto oom;
    goto done;
oom:
    reply_error(c, "ERR out of memory");
done:
    if (v)
        for (long long j = 0; j < n; j++) dstr_free(v[j].cmp);
    km_free(v);
    km_free(tmp);
    dstr_free(keybuf);
    for (int g = 0; g < a.ngets; g++) pattern_free(&a.gets[g]);
    km_free(a.gets);
    pattern_free(&a.by_pat);
    if (o) obj_decref(o);
}

/* SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]]
 *     [ASC|DESC] [ALPHA] [STORE destination]
 * O(N*log(N)) to sort N elements (O(N+M) with BY nosort on a list or
 * sorted set: M the elements returned), plus one lookup per element for
 * BY and for each GET. */
void sort_cmd(client *c) { sort_generic(c, 0); }

/* SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]]
 *     [ASC|DESC] [ALPHA]
 * Same as SORT without STORE. */
void sort_ro_cmd(client *c) { sort_generic(c, 1); }
