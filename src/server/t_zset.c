/* t_zset.c - the sorted-set commands over zset.c.
 *
 * Range queries (by rank, score or lex; forward or reverse; with LIMIT)
 * all go through one walker that feeds a result sink: the sink either
 * writes the reply (flat pairs in RESP2, [member, score] pairs in RESP3,
 * as Redis 7.0 does) or builds a new zset for ZRANGESTORE. */
#include "server.h"
#include "zset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- lookups */

static zset *get_zset(client *c, const dstr key, int write, int *err) {
    kobj *o = write ? db_lookup_write(c, key) : db_lookup_read(c, key);
    *err = db_check_type(c, o, OBJ_ZSET);
    return o && !*err ? o->ptr : NULL;
}

static zset *create_zset(client *c, const dstr key) {
    zset *z = zset_new();
    kobj *o = z ? obj_new(OBJ_ZSET, ENC_SKIPLIST, z) : NULL;
    if (!o || db_add(c->db, key, o) != OK) {
        if (o) obj_decref(o);
        else zset_free(z);
        return NULL;
    }
    return z;
}

/* After the command's own event: an emptied zset is deleted ("del"). */
static void drop_if_empty(client *c, const dstr key, zset *z) {
    if (zset_len(z) == 0) {
        db_delete(c->db, key);
        notify_keyspace_event(NOTIFY_GENERIC, "del", key, c->db->id);
    } else {
        db_signal_modified(c->db, key);
    }
}

/* Score bounds: "(1.5" exclusive, "-inf", "+inf"; parsed like Redis
 * (strtod, the whole string must be consumed, NaN refused). */
static int parse_score_bound(const dstr s, double *v, int *ex) {
    const char *p = s;
    *ex = 0;
    if (p[0] == '(') {
        *ex = 1;
        p++;
    }
    char *end;
    *v = strtod(p, &end);
    return end[0] == '\0' && !isnan(*v);
}

static int parse_range(const dstr min, const dstr max, zrange_spec *r) {
    return parse_score_bound(min, &r->min, &r->minex) && parse_score_bound(max, &r->max, &r->maxex);
}

static int parse_lex_item(const dstr s, dstr *out, int *ex) {
    size_t len = dstr_len(s);
    if (len == 1 && s[0] == '-') {
        *out = zlex_min_s;
        *ex = 0;
        return 1;
    }
    if (len == 1 && s[0] == '+') {
        *out = zlex_max_s;
        *ex = 0;
        return 1;
    }
    if (len == 0 || (s[0] != '(' && s[0] != '[')) return 0;
    *ex = s[0] == '(';
    *out = dstr_newlen(s + 1, len - 1);
    return *out != NULL;
}

static void free_lex(zlex_spec *r) {
    if (r->min && r->min != zlex_min_s && r->min != zlex_max_s) dstr_free(r->min);
    if (r->max && r->max != zlex_min_s && r->max != zlex_max_s) dstr_free(r->max);
    r->min = r->max = NULL;
}

static int parse_lex(const dstr min, const dstr max, zlex_spec *r) {
    r->min = r->max = NULL;
    if (!zlex_min_s && !zset_new()) return 0; /* creates the sentinels */
    if (parse_lex_item(min, &r->min, &r->minex) && parse_lex_item(max, &r->max, &r->maxex)) return 1;
    free_lex(r);
    return 0;
}

/* zset_new creates the sentinels on first use; make sure they exist. */
static void ensure_sentinels(void) {
    if (!zlex_min_s) {
        zset *z = zset_new();
        zset_free(z);
    }
}

/* --------------------------------------------------------------- ZADD */

enum { ZA_NX = 1, ZA_XX = 2, ZA_GT = 4, ZA_LT = 8, ZA_CH = 16, ZA_INCR = 32 };

/* Applies one score under the flags.  *out_score gets the final score,
 * *old the one it replaced (updates); returns 1 added, 2 updated, 3 the
 * same score, 0 nothing, -1 NaN, -2 OOM. */
static int zadd_one(zset *z, int flags, double score, const dstr ele, double *out_score, double *old) {
    double cur;
    if (zset_score(z, ele, &cur)) {
        *old = cur;
        if (flags & ZA_NX) return 0;
        if (flags & ZA_INCR) {
            score += cur;
            if (isnan(score)) return -1;
        }
        if (((flags & ZA_LT) && score >= cur) || ((flags & ZA_GT) && score <= cur)) return 0;
        *out_score = score;
        if (score == cur) return 3; /* same score: neither added nor changed */
        int added;
        if (zset_add(z, score, ele, dstr_len(ele), &added) != OK) return -2;
        return 2;
    }
    if (flags & ZA_XX) return 0;
    int added;
    if (zset_add(z, score, ele, dstr_len(ele), &added) != OK) return -2;
    *out_score = score;
    return 1;
}

/* Takes back the first n elements of a ZADD that ran out of memory, last
 * first: an added one is removed (no allocation), an updated one gets its
 * old score back - one node, the only allocation an undo makes; should
 * that fail too the element keeps its new score, and the log says so. */
static void zadd_undo(zset *z, client *c, int first, int n, const unsigned char *done, const double *olds) {
    while (n-- > 0) {
        const dstr ele = c->argv[first + n * 2 + 1];
        int added;
        if (done[n] == 1) zset_remove(z, ele);
        else if (done[n] == 2 && zset_add(z, olds[n], ele, dstr_len(ele), &added) != OK)
            log_msg(LL_WARNING, "ZADD ran out of memory and could not restore the old score of one member");
    }
}

static void zadd_generic(client *c, int flags) {
    int i = 2;
    for (; i < c->argc; i++) {
        const dstr a = c->argv[i];
        if (arg_is(a, "nx")) flags |= ZA_NX;
        else if (arg_is(a, "xx")) flags |= ZA_XX;
        else if (arg_is(a, "gt")) flags |= ZA_GT;
        else if (arg_is(a, "lt")) flags |= ZA_LT;
        else if (arg_is(a, "ch")) flags |= ZA_CH;
        else if (arg_is(a, "incr")) flags |= ZA_INCR;
        else break;
    }
    int elements = c->argc - i;
    if (elements % 2 || elements == 0) {
        reply_syntax_error(c);
        return;
    }
    elements /= 2;
    if ((flags & ZA_NX) && (flags & ZA_XX)) {
        reply_error(c, "ERR XX and NX options at the same time are not compatible");
        return;
    }
    if (((flags & ZA_GT) && (flags & ZA_NX)) || ((flags & ZA_LT) && (flags & ZA_NX)) ||
        ((flags & ZA_GT) && (flags & ZA_LT))) {
        reply_error(c, "ERR GT, LT, and/or NX options at the same time are not compatible");
        return;
    }
    if ((flags & ZA_INCR) && elements > 1) {
        reply_error(c, "ERR INCR option supports a single increment-element pair");
        return;
    }
    /* the scores given, then what each element had (to undo: 1 added,
     * 2 updated from old[k]), in one block taken before any change */
    double *scores = km_malloc((sizeof(double) * 2 + 1) * (size_t)elements);
    double *olds = scores ? scores + elements : NULL;
    unsigned char *done = scores ? (unsigned char *)(olds + elements) : NULL;
    if (!scores) {
        reply_error(c, "ERR out of memory");
        return;
    }
    for (int k = 0; k < elements; k++)
        if (arg_double(c, c->argv[i + k * 2], &scores[k]) != OK) {
            km_free(scores);
            return;
        }
    int err;
    zset *z = get_zset(c, c->argv[1], 1, &err);
    if (err) goto done;
    if (!z) {
        if (flags & ZA_XX) {
            if (flags & ZA_INCR) reply_null(c);
            else reply_ll(c, 0);
            goto done;
        }
        z = create_zset(c, c->argv[1]);
        if (!z) {
            reply_error(c, "ERR out of memory");
            goto done;
        }
    }
    long long added = 0, updated = 0;
    double last = 0;
    int applied = 0;
    for (int k = 0; k < elements; k++) {
        done[k] = 0;
        int r = zadd_one(z, flags, scores[k], c->argv[i + k * 2 + 1], &last, &olds[k]);
        if (r == -1) {
            if (added || updated)
                notify_keyspace_event(NOTIFY_ZSET, (flags & ZA_INCR) ? "zincr" : "zadd", c->argv[1], c->db->id);
            drop_if_empty(c, c->argv[1], z);
            reply_error(c, "ERR resulting score is not a number (NaN)");
            goto done;
        }
        if (r == -2) {
            zadd_undo(z, c, i, k, done, olds);
            drop_if_empty(c, c->argv[1], z);
            reply_error(c, "ERR out of memory");
            goto done;
        }
        if (r == 1 || r == 2) done[k] = (unsigned char)r;
        if (r == 1) added++;
        if (r == 2) updated++;
        if (r) applied = 1;
    }
    if (added || updated)
        notify_keyspace_event(NOTIFY_ZSET, (flags & ZA_INCR) ? "zincr" : "zadd", c->argv[1], c->db->id);
    /* no change, no signal: a WATCH on the key survives, as in Redis */
    if (zset_len(z) == 0 || added || updated) drop_if_empty(c, c->argv[1], z);
    if (flags & ZA_INCR) {
        if (applied) reply_double(c, last);
        else reply_null(c);
    } else {
        reply_ll(c, (flags & ZA_CH) ? added + updated : added);
    }
done:
    km_free(scores);
}

void zadd_cmd(client *c) { zadd_generic(c, 0); }
void zincrby_cmd(client *c) {
    /* ZINCRBY key increment member == ZADD key INCR increment member */
    double by;
    if (arg_double(c, c->argv[2], &by) != OK) return;
    int err;
    zset *z = get_zset(c, c->argv[1], 1, &err);
    if (err) return;
    if (!z && !(z = create_zset(c, c->argv[1]))) {
        reply_error(c, "ERR out of memory");
        return;
    }
    double out = 0, old;
    int r = zadd_one(z, ZA_INCR, by, c->argv[3], &out, &old);
    if (r == -1) {
        drop_if_empty(c, c->argv[1], z);
        reply_error(c, "ERR resulting score is not a number (NaN)");
        return;
    }
    if (r == -2) {
        drop_if_empty(c, c->argv[1], z);
        reply_error(c, "ERR out of memory");
        return;
    }
    db_signal_modified(c->db, c->argv[1]);
    notify_keyspace_event(NOTIFY_ZSET, "zincr", c->argv[1], c->db->id);
    reply_double(c, out);
}

void zrem_cmd(client *c) {
    int err;
    zset *z = get_zset(c, c->argv[1], 1, &err);
    if (err) return;
    long long n = 0;
    for (int i = 2; z && i < c->argc; i++) n += zset_remove(z, c->argv[i]);
    if (z && n) {
        notify_keyspace_event(NOTIFY_ZSET, "zrem", c->argv[1], c->db->id);
        drop_if_empty(c, c->argv[1], z);
    }
    reply_ll(c, n);
}

void zcard_cmd(client *c) {
    int err;
    zset *z = get_zset(c, c->argv[1], 0, &err);
    if (!err) reply_ll(c, z ? (long long)zset_len(z) : 0);
}

void zscore_cmd(client *c) {
    int err;
    zset *z = get_zset(c, c->argv[1], 0, &err);
    if (err) return;
    double s;
    if (z && zset_score(z, c->argv[2], &s)) reply_double(c, s);
    else reply_null(c);
}

void zmscore_cmd(client *c) {
    int err;
    zset *z = get_zset(c, c->argv[1], 0, &err);
    if (err) return;
    reply_array_len(c, c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
        double s;
        if (z && zset_score(z, c->argv[i], &s)) reply_double(c, s);
        else reply_null(c);
    }
}

static void rank_generic(client *c, int reverse) {
    int err;
    zset *z = get_zset(c, c->argv[1], 0, &err);
    if (err) return;
    long r = z ? zset_rank(z, c->argv[2], reverse) : -1;
    if (r < 0) reply_null(c);
    else reply_ll(c, r);
}

void zrank_cmd(client *c) { rank_generic(c, 0); }
void zrevrank_cmd(client *c) { rank_generic(c, 1); }

/* ------------------------------------------------------ range results */

typedef struct zsink {
    client *c;
    int withscores, store;
    zset *dst;
    void *deferred;
    long count;
    int oom;
} zsink;

static void sink_begin(zsink *s, long n) {
    s->count = 0;
    if (s->store) {
        s->dst = zset_new();
        if (!s->dst) s->oom = 1;
        return;
    }
    if (n >= 0) reply_array_len(s->c, s->withscores && s->c->resp == 2 ? n * 2 : n);
    else s->deferred = reply_defer_len(s->c);
}

static void sink_emit(zsink *s, const dstr ele, double score) {
    s->count++;
    if (s->store) {
        int added;
        if (!s->oom && zset_add(s->dst, score, ele, dstr_len(ele), &added) != OK) s->oom = 1;
        return;
    }
    if (s->withscores && s->c->resp > 2) reply_array_len(s->c, 2);
    reply_bulk_dstr(s->c, ele);
    if (s->withscores) reply_double(s->c, score);
}

/* event: the keyspace event of a store ("zrangestore", "zunionstore"...). */
static void sink_end(zsink *s, const dstr dstkey, const char *event) {
    client *c = s->c;
    if (!s->store) {
        if (s->deferred)
            reply_set_deferred_array(c, s->deferred, s->withscores && c->resp == 2 ? s->count * 2 : s->count);
        return;
    }
    if (s->oom) {
        zset_free(s->dst);
        reply_error(c, "ERR out of memory");
        return;
    }
    long long n = s->dst ? (long long)zset_len(s->dst) : 0;
    if (n == 0) {
        zset_free(s->dst);
        if (db_delete(c->db, dstkey)) notify_keyspace_event(NOTIFY_GENERIC, "del", dstkey, c->db->id);
    } else {
        kobj *o = obj_new(OBJ_ZSET, ENC_SKIPLIST, s->dst);
        if (!o || db_set(c->db, dstkey, o, 0) != OK) {
            if (o) obj_decref(o);
            else zset_free(s->dst);
            reply_error(c, "ERR out of memory");
            return;
        }
        notify_keyspace_event(NOTIFY_ZSET, event, dstkey, c->db->id);
    }
    reply_ll(c, n);
}

enum { ZR_RANK, ZR_SCORE, ZR_LEX };

typedef struct zrange_req {
    int type, rev;
    long long start, end;   /* rank */
    zrange_spec score;
    zlex_spec lex;
    long long offset, limit; /* limit -1: all */
} zrange_req;

static void range_by_rank(zsink *s, zset *z, zrange_req *q) {
    long long len = (long long)zset_len(z), start = q->start, end = q->end;
    if (start < 0) start += len;
    if (end < 0) end += len;
    if (start < 0) start = 0;
    if (start > end || start >= len) {
        sink_begin(s, 0);
        return;
    }
    if (end >= len) end = len - 1;
    long n = (long)(end - start + 1);
    sink_begin(s, n);
    zsl_node *x = q->rev ? zsl_by_rank(z->zsl, (unsigned long)(len - start))
                         : zsl_by_rank(z->zsl, (unsigned long)(start + 1));
    for (long i = 0; i < n && x; i++) {
        sink_emit(s, x->ele, x->score);
        x = q->rev ? x->backward : x->level[0].forward;
    }
}

static void range_by_score_or_lex(zsink *s, zset *z, zrange_req *q) {
    int lex = q->type == ZR_LEX;
    if (q->offset > 0 && q->offset >= (long long)zset_len(z)) {
        sink_begin(s, 0);
        return;
    }
    zsl_node *x;
    if (lex) x = q->rev ? zsl_last_in_lex(z->zsl, &q->lex) : zsl_first_in_lex(z->zsl, &q->lex);
    else x = q->rev ? zsl_last_in_range(z->zsl, &q->score) : zsl_first_in_range(z->zsl, &q->score);
    sink_begin(s, -1);
    /* A negative offset skips everything and a negative limit means "all",
     * which is what Redis's loops do with such values. */
    long long offset = q->offset, limit = q->limit;
    if (offset < 0) x = NULL;
    for (; x && offset > 0; offset--) x = q->rev ? x->backward : x->level[0].forward;
    for (; x && limit != 0; limit = limit > 0 ? limit - 1 : limit) {
        int in;
        if (lex) in = q->rev ? zsl_lex_gte_min(x->ele, &q->lex) : zsl_lex_lte_max(x->ele, &q->lex);
        else in = q->rev ? zsl_value_gte_min(x->score, &q->score) : zsl_value_lte_max(x->score, &q->score);
        if (!in) break;
        sink_emit(s, x->ele, x->score);
        x = q->rev ? x->backward : x->level[0].forward;
    }
}

/* The ZRANGE family.  first: index of the source key; store_key: argv
 * index of the destination (ZRANGESTORE) or 0; type/rev preset by legacy
 * commands (-1 when options decide). */
static void zrange_generic(client *c, int first, int store_key, int type, int rev) {
    zrange_req q;
    memset(&q, 0, sizeof q);
    q.limit = -1;
    int withscores = 0, legacy = type >= 0;
    int t = type, r = rev;
    for (int j = first + 3; j < c->argc; j++) {
        int left = c->argc - j - 1;
        const dstr a = c->argv[j];
        if (!store_key && arg_is(a, "withscores")) withscores = 1;
        else if (arg_is(a, "limit") && left >= 2) {
            if (arg_ll(c, c->argv[j + 1], &q.offset) != OK || arg_ll(c, c->argv[j + 2], &q.limit) != OK) return;
            j += 2;
        } else if (!legacy && r < 0 && arg_is(a, "rev")) r = 1;
        else if (!legacy && t < 0 && arg_is(a, "bylex")) t = ZR_LEX;
        else if (!legacy && t < 0 && arg_is(a, "byscore")) t = ZR_SCORE;
        else {
            reply_syntax_error(c);
            return;
        }
    }
    q.rev = r < 0 ? 0 : r;
    q.type = t < 0 ? ZR_RANK : t;
    if (q.limit != -1 && q.type == ZR_RANK) {
        reply_error(c, "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
        return;
    }
    if (withscores && q.type == ZR_LEX) {
        reply_error(c, "ERR syntax error, WITHSCORES not supported in combination with BYLEX");
        return;
    }
    const dstr lo = c->argv[first + 1], hi = c->argv[first + 2];
    const dstr mn = q.rev && q.type != ZR_RANK ? hi : lo, mx = q.rev && q.type != ZR_RANK ? lo : hi;
    if (q.type == ZR_RANK) {
        if (arg_ll(c, mn, &q.start) != OK || arg_ll(c, mx, &q.end) != OK) return;
    } else if (q.type == ZR_SCORE) {
        if (!parse_range(mn, mx, &q.score)) {
            reply_error(c, "ERR min or max is not a float");
            return;
        }
    } else {
        ensure_sentinels();
        if (!parse_lex(mn, mx, &q.lex)) {
            reply_error(c, "ERR min or max not valid string range item");
            return;
        }
    }
    zsink s = {c, withscores, store_key != 0, NULL, NULL, 0, 0};
    int err;
    zset *z = get_zset(c, c->argv[first], 0, &err);
    if (err) goto out;
    if (!z) {
        if (store_key) {
            sink_begin(&s, -1);
            sink_end(&s, c->argv[store_key], "zrangestore");
        } else {
            reply_array_len(c, 0);
        }
        goto out;
    }
    if (q.type == ZR_RANK) range_by_rank(&s, z, &q);
    else range_by_score_or_lex(&s, z, &q);
    sink_end(&s, store_key ? c->argv[store_key] : NULL, "zrangestore");
out:
    if (q.type == ZR_LEX) free_lex(&q.lex);
}

void zrange_cmd(client *c) { zrange_generic(c, 1, 0, -1, -1); }
void zrangestore_cmd(client *c) { zrange_generic(c, 2, 1, -1, -1); }
void zrevrange_cmd(client *c) { zrange_generic(c, 1, 0, ZR_RANK, 1); }
void zrangebyscore_cmd(client *c) { zrange_generic(c, 1, 0, ZR_SCORE, 0); }
void zrevrangebyscore_cmd(client *c) { zrange_generic(c, 1, 0, ZR_SCORE, 1); }
void zrangebylex_cmd(client *c) { zrange_generic(c, 1, 0, ZR_LEX, 0); }
void zrevrangebylex_cmd(client *c) { zrange_generic(c, 1, 0, ZR_LEX, 1); }

void zcount_cmd(client *c) {
    zrange_spec r;
    if (!parse_range(c->argv[2], c->argv[3], &r)) {
        reply_error(c, "ERR min or max is not a float");
        return;
    }
    int err;
    zset *z = get_zset(c, c->argv[1], 0, &err);
    if (err) return;
    zsl_node *first = z ? zsl_first_in_range(z->zsl, &r) : NULL;
    if (!first) {
        reply_ll(c, 0);
        return;
    }
    zsl_node *last = zsl_last_in_range(z->zsl, &r);
    unsigned long a = zsl_rank_of(z->zsl, first->score, first->ele);
    unsigned long b = zsl_rank_of(z->zsl, last->score, last->ele);
    reply_ll(c, (long long)(b - a + 1));
}

void zlexcount_cmd(client *c) {
    zlex_spec r;
    ensure_sentinels();
    if (!parse_lex(c->argv[2], c->argv[3], &r)) {
        reply_error(c, "ERR min or max not valid string range item");
        return;
    }
    int err;
    zset *z = get_zset(c, c->argv[1], 0, &err);
    if (!err) {
        zsl_node *first = z ? zsl_first_in_lex(z->zsl, &r) : NULL;
        if (!first) {
            reply_ll(c, 0);
        } else {
            zsl_node *last = zsl_last_in_lex(z->zsl, &r);
            unsigned long a = zsl_rank_of(z->zsl, first->score, first->ele);
            unsigned long b = zsl_rank_of(z->zsl, last->score, last->ele);
            reply_ll(c, (long long)(b - a + 1));
        }
    }
    free_lex(&r);
}

/* ------------------------------------------------------- ZREMRANGEBY* */

static void zremrange_generic(client *c, int type) {
    zrange_spec sr;
    zlex_spec lr = {NULL, NULL, 0, 0};
    long long start = 0, end = 0;
    if (type == ZR_RANK) {
        if (arg_ll(c, c->argv[2], &start) != OK || arg_ll(c, c->argv[3], &end) != OK) return;
    } else if (type == ZR_SCORE) {
        if (!parse_range(c->argv[2], c->argv[3], &sr)) {
            reply_error(c, "ERR min or max is not a float");
            return;
        }
    } else {
        ensure_sentinels();
        if (!parse_lex(c->argv[2], c->argv[3], &lr)) {
            reply_error(c, "ERR min or max not valid string range item");
            return;
        }
    }
    int err;
    zset *z = get_zset(c, c->argv[1], 1, &err);
    if (err || !z) {
        if (!err) reply_ll(c, 0);
        free_lex(&lr);
        return;
    }
    zsl_node *x = NULL;
    long long todo = -1;
    if (type == ZR_RANK) {
        long long len = (long long)zset_len(z);
        if (start < 0) start += len;
        if (end < 0) end += len;
        if (start < 0) start = 0;
        if (start > end || start >= len) {
            reply_ll(c, 0);
            return;
        }
        if (end >= len) end = len - 1;
        x = zsl_by_rank(z->zsl, (unsigned long)start + 1);
        todo = end - start + 1;
    } else if (type == ZR_SCORE) {
        x = zsl_first_in_range(z->zsl, &sr);
    } else {
        x = zsl_first_in_lex(z->zsl, &lr);
    }
    long long removed = 0;
    while (x && todo != 0) {
        if (type == ZR_SCORE && !zsl_value_lte_max(x->score, &sr)) break;
        if (type == ZR_LEX && !zsl_lex_lte_max(x->ele, &lr)) break;
        zsl_node *next = x->level[0].forward;
        zset_remove(z, x->ele);
        removed++;
        if (todo > 0) todo--;
        x = next;
    }
    free_lex(&lr);
    if (removed) {
        static const char *events[] = {[ZR_RANK] = "zremrangebyrank", [ZR_SCORE] = "zremrangebyscore",
                                       [ZR_LEX] = "zremrangebylex"};
        notify_keyspace_event(NOTIFY_ZSET, events[type], c->argv[1], c->db->id);
        drop_if_empty(c, c->argv[1], z);
    }
    reply_ll(c, removed);
}

void zremrangebyrank_cmd(client *c) { zremrange_generic(c, ZR_RANK); }
void zremrangebyscore_cmd(client *c) { zremrange_generic(c, ZR_SCORE); }
void zremrangebylex_cmd(client *c) { zremrange_generic(c, ZR_LEX); }

/* --------------------------------------------------------------- pops */

/* Pops up to count from one end; nested: each pair as its own array. */
void zset_pop_reply(client *c, const dstr key, zset *z, int max, long long count, int nested) {
    long long n = (long long)zset_len(z);
    if (count < n) n = count;
    if (nested) reply_array_len(c, (long)n);
    else reply_array_len(c, (long)n * 2);
    for (long long i = 0; i < n; i++) {
        zsl_node *x = max ? z->zsl->tail : z->zsl->header->level[0].forward;
        dstr ele = dstr_dup(x->ele);
        double score = x->score;
        if (nested) reply_array_len(c, 2);
        reply_bulk_dstr(c, x->ele);
        reply_double(c, score);
        zset_remove(z, x->ele);
        dstr_free(ele);
    }
    if (n > 0) notify_keyspace_event(NOTIFY_ZSET, max ? "zpopmax" : "zpopmin", key, c->db->id);
    drop_if_empty(c, key, z);
}

static void zpop_generic(client *c, int max) {
    long long count = 1;
    int has_count = c->argc == 3;
    if (c->argc > 3) {
        reply_syntax_error(c);
        return;
    }
    if (has_count && arg_positive(c, c->argv[2], &count, NULL) != OK) return;
    int err;
    zset *z = get_zset(c, c->argv[1], 1, &err);
    if (err) return;
    if (!z || count == 0) {
        reply_array_len(c, 0);
        return;
    }
    zset_pop_reply(c, c->argv[1], z, max, count, has_count && c->resp > 2);
}

void zpopmin_cmd(client *c) { zpop_generic(c, 0); }
void zpopmax_cmd(client *c) { zpop_generic(c, 1); }

void zmpop_cmd(client *c) {
    long long numkeys, count = 1;
    if (arg_ll_range(c, c->argv[1], 1, LONG_MAX, &numkeys, "ERR numkeys should be greater than 0") != OK)
        return;
    if (numkeys > c->argc - 3) {
        reply_syntax_error(c);
        return;
    }
    int where = 2 + (int)numkeys, max;
    if (where >= c->argc) {
        reply_syntax_error(c);
        return;
    }
    if (arg_is(c->argv[where], "min")) max = 0;
    else if (arg_is(c->argv[where], "max")) max = 1;
    else {
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
        zset *z = get_zset(c, c->argv[k], 1, &err);
        if (err) return;
        if (!z) continue;
        reply_array_len(c, 2);
        reply_bulk_dstr(c, c->argv[k]);
        zset_pop_reply(c, c->argv[k], z, max, count, 1);
        return;
    }
    reply_null_array(c);
}

/* ---------------------------------------------------- union and friends */

enum { AGG_SUM, AGG_MIN, AGG_MAX };
enum { ZOP_UNION, ZOP_INTER, ZOP_DIFF };

typedef struct zsrc {
    kobj *o; /* zset, set, or NULL (empty) */
    double weight;
} zsrc;

static size_t src_len(const zsrc *s) {
    if (!s->o) return 0;
    return s->o->type == OBJ_ZSET ? zset_len(s->o->ptr) : set_len(s->o);
}

/* Score of ele in src (1.0 for set members); 0 when absent. */
static int src_score(const zsrc *s, const dstr ele, double *out) {
    if (!s->o) return 0;
    if (s->o->type == OBJ_SET) {
        *out = 1.0;
        return dict_find(s->o->ptr, ele) != NULL;
    }
    return zset_score(s->o->ptr, ele, out);
}

static void aggregate(double *target, double v, int agg) {
    if (agg == AGG_SUM) {
        *target += v;
        if (isnan(*target)) *target = 0.0;
    } else if (agg == AGG_MIN) {
        if (v < *target) *target = v;
    } else if (v > *target) {
        *target = v;
    }
}

static double weighted(double v, double w) {
    double r = v * w;
    return isnan(r) ? 0.0 : r;
}

typedef struct zitem_cb {
    zset *out;
    const zsrc *src;
    int nsrc, op, agg, oom;
} zitem_cb;

/* Called for each element of the first/iterated source. */
static void combine_one(zitem_cb *cb, int i, const dstr ele, double score) {
    zset *out = cb->out;
    double acc = weighted(score, cb->src[i].weight), cur;
    if (cb->op == ZOP_UNION) {
        int added;
        if (zset_score(out, ele, &cur)) {
            aggregate(&cur, acc, cb->agg);
            if (zset_add(out, cur, ele, dstr_len(ele), &added) != OK) cb->oom = 1;
        } else if (zset_add(out, acc, ele, dstr_len(ele), &added) != OK) {
            cb->oom = 1;
        }
        return;
    }
    if (cb->op == ZOP_INTER) {
        for (int k = 0; k < cb->nsrc; k++) {
            if (k == i) continue;
            double v;
            if (!src_score(&cb->src[k], ele, &v)) return;
            aggregate(&acc, weighted(v, cb->src[k].weight), cb->agg);
        }
    } else {
        for (int k = 1; k < cb->nsrc; k++) {
            double v;
            if (src_score(&cb->src[k], ele, &v)) return;
        }
        acc = score;
    }
    int added;
    if (zset_add(out, acc, ele, dstr_len(ele), &added) != OK) cb->oom = 1;
}

static void walk_source(zitem_cb *cb, int i) {
    const zsrc *s = &cb->src[i];
    if (!s->o) return;
    if (s->o->type == OBJ_SET) {
        dict_iter it;
        dict_iter_init(&it, s->o->ptr, 0);
        for (dict_entry *e; (e = dict_next(&it)) && !cb->oom;) combine_one(cb, i, e->key, 1.0);
        dict_iter_done(&it);
        return;
    }
    zset *z = s->o->ptr;
    for (zsl_node *x = z->zsl->header->level[0].forward; x && !cb->oom; x = x->level[0].forward)
        combine_one(cb, i, x->ele, x->score);
}

static int cmp_src_len(const void *a, const void *b) {
    size_t x = src_len(a), y = src_len(b);
    return x < y ? -1 : x > y;
}

/* ZUNION/ZINTER/ZDIFF[STORE].  dst: argv index of the destination or 0. */
static void zsetop_generic(client *c, int nk_index, int dst, int op) {
    long long numkeys;
    if (arg_ll(c, c->argv[nk_index], &numkeys) != OK) return;
    if (numkeys < 1) {
        reply_errorf(c, "ERR at least 1 input key is needed for '%s' command", c->cmd->name);
        return;
    }
    if (numkeys > c->argc - nk_index - 1) {
        reply_syntax_error(c);
        return;
    }
    int n = (int)numkeys;
    zsrc *src = km_calloc(sizeof(zsrc) * (size_t)n);
    if (!src) {
        reply_error(c, "ERR out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        kobj *o = db_lookup_read(c, c->argv[nk_index + 1 + i]);
        if (o && o->type != OBJ_ZSET && o->type != OBJ_SET) {
            reply_wrong_type(c);
            km_free(src);
            return;
        }
        src[i].o = o;
        src[i].weight = 1.0;
    }
    int agg = AGG_SUM, withscores = 0;
    int j = nk_index + 1 + n, remaining = c->argc - j;
    while (remaining) {
        if (op != ZOP_DIFF && remaining >= n + 1 && arg_is(c->argv[j], "weights")) {
            j++;
            remaining--;
            for (int i = 0; i < n; i++, j++, remaining--) {
                if (!str_to_double(c->argv[j], dstr_len(c->argv[j]), &src[i].weight)) {
                    reply_error(c, "ERR weight value is not a float");
                    km_free(src);
                    return;
                }
            }
        } else if (op != ZOP_DIFF && remaining >= 2 && arg_is(c->argv[j], "aggregate")) {
            const dstr a = c->argv[j + 1];
            if (arg_is(a, "sum")) agg = AGG_SUM;
            else if (arg_is(a, "min")) agg = AGG_MIN;
            else if (arg_is(a, "max")) agg = AGG_MAX;
            else {
                reply_syntax_error(c);
                km_free(src);
                return;
            }
            j += 2;
            remaining -= 2;
        } else if (!dst && arg_is(c->argv[j], "withscores")) {
            withscores = 1;
            j++;
            remaining--;
        } else {
            reply_syntax_error(c);
            km_free(src);
            return;
        }
    }
    zitem_cb cb = {zset_new(), src, n, op, agg, 0};
    if (!cb.out) cb.oom = 1;
    if (!cb.oom) {
        if (op == ZOP_INTER) {
            qsort(src, (size_t)n, sizeof *src, cmp_src_len);
            if (src_len(&src[0]) > 0) walk_source(&cb, 0);
        } else if (op == ZOP_DIFF) {
            walk_source(&cb, 0);
        } else {
            for (int i = 0; i < n && !cb.oom; i++) walk_source(&cb, i);
        }
    }
    km_free(src);
    zsink s = {c, withscores, dst != 0, NULL, NULL, 0, cb.oom};
    if (dst) {
        s.dst = cb.out;
        s.count = cb.out ? (long)zset_len(cb.out) : 0;
        static const char *events[] = {[ZOP_UNION] = "zunionstore", [ZOP_INTER] = "zinterstore",
                                       [ZOP_DIFF] = "zdiffstore"};
        sink_end(&s, c->argv[dst], events[op]);
        return;
    }
    if (cb.oom) {
        zset_free(cb.out);
        reply_error(c, "ERR out of memory");
        return;
    }
    sink_begin(&s, (long)zset_len(cb.out));
    for (zsl_node *x = cb.out->zsl->header->level[0].forward; x; x = x->level[0].forward)
        sink_emit(&s, x->ele, x->score);
    zset_free(cb.out);
}

void zunion_cmd(client *c) { zsetop_generic(c, 1, 0, ZOP_UNION); }
void zinter_cmd(client *c) { zsetop_generic(c, 1, 0, ZOP_INTER); }
void zdiff_cmd(client *c) { zsetop_generic(c, 1, 0, ZOP_DIFF); }
void zunionstore_cmd(client *c) { zsetop_generic(c, 2, 1, ZOP_UNION); }
void zinterstore_cmd(client *c) { zsetop_generic(c, 2, 1, ZOP_INTER); }
void zdiffstore_cmd(client *c) { zsetop_generic(c, 2, 1, ZOP_DIFF); }

void zintercard_cmd(client *c) {
    long long numkeys, limit = 0;
    if (arg_ll(c, c->argv[1], &numkeys) != OK) return;
    if (numkeys < 1) {
        reply_error(c, "ERR at least 1 input key is needed for 'zintercard' command");
        return;
    }
    if (numkeys > c->argc - 2) {
        reply_syntax_error(c);
        return;
    }
    int n = (int)numkeys;
    zsrc *src = km_calloc(sizeof(zsrc) * (size_t)n);
    if (!src) {
        reply_error(c, "ERR out of memory");
        return;
    }
    for (int i = 0; i < n; i++) { /* keys first, then options, as Redis */
        kobj *o = db_lookup_read(c, c->argv[2 + i]);
        if (o && o->type != OBJ_ZSET && o->type != OBJ_SET) {
            reply_wrong_type(c);
            km_free(src);
            return;
        }
        src[i].o = o;
        src[i].weight = 1.0;
    }
    for (int i = 2 + n; i < c->argc; i += 2) {
        if (arg_is(c->argv[i], "limit") && i + 1 < c->argc) {
            if (arg_positive(c, c->argv[i + 1], &limit, "ERR LIMIT can't be negative") != OK) {
                km_free(src);
                return;
            }
        } else {
            reply_syntax_error(c);
            km_free(src);
            return;
        }
    }
    qsort(src, (size_t)n, sizeof *src, cmp_src_len);
    long long card = 0;
    if (src[0].o) {
        /* walk the smallest source, probing the others */
        dict *d = src[0].o->type == OBJ_SET ? src[0].o->ptr : zset_dict(src[0].o->ptr);
        dict_iter it;
        dict_iter_init(&it, d, 0);
        for (dict_entry *e; (e = dict_next(&it));) {
            int in_all = 1;
            double v;
            for (int k = 1; k < n && in_all; k++) in_all = src_score(&src[k], e->key, &v);
            if (in_all && ++card == limit) break;
        }
        dict_iter_done(&it);
    }
    km_free(src);
    reply_ll(c, card);
}

/* -------------------------------------------------------- ZRANDMEMBER */

static void reply_member(client *c, zsl_node *x, int withscores) {
    if (withscores && c->resp > 2) reply_array_len(c, 2);
    reply_bulk_dstr(c, x->ele);
    if (withscores) reply_double(c, x->score);
}

void zrandmember_cmd(client *c) {
    long long count = 0;
    int has_count = c->argc >= 3;
    if (c->argc > 4 || (c->argc == 4 && !arg_is(c->argv[3], "withscores"))) {
        reply_syntax_error(c);
        return;
    }
    int withscores = c->argc == 4;
    if (has_count) {
        if (arg_ll_range(c, c->argv[2], -LONG_MAX, LONG_MAX, &count, NULL) != OK) return;
        if (withscores && (count < -LONG_MAX / 2 || count > LONG_MAX / 2)) {
            reply_error(c, "ERR value is out of range");
            return;
        }
    }
    int err;
    zset *z = get_zset(c, c->argv[1], 0, &err);
    if (err) return;
    if (!has_count) {
        if (!z) reply_null(c);
        else reply_bulk_dstr(c, zsl_by_rank(z->zsl, 1 + rand_u64() % zset_len(z))->ele);
        return;
    }
    if (!z || count == 0) {
        reply_array_len(c, 0);
        return;
    }
    unsigned long len = zset_len(z);
    if (count < 0) {
        long n = (long)-count;
        reply_array_len(c, withscores && c->resp == 2 ? n * 2 : n);
        for (long i = 0; i < n && !(c->flags & CF_CLOSE_ASAP); i++)
            reply_member(c, zsl_by_rank(z->zsl, 1 + rand_u64() % len), withscores);
        return;
    }
    if ((unsigned long)count >= len) {
        /* the whole set, highest rank first, as Redis answers this case */
        reply_array_len(c, withscores && c->resp == 2 ? (long)len * 2 : (long)len);
        for (zsl_node *x = z->zsl->tail; x; x = x->backward) reply_member(c, x, withscores);
        return;
    }
    unsigned long *ranks = km_malloc(len * sizeof *ranks);
    if (!ranks) {
        reply_error(c, "ERR out of memory");
        return;
    }
    for (unsigned long i = 0; i < len; i++) ranks[i] = i + 1;
    reply_array_len(c, withscores && c->resp == 2 ? (long)count * 2 : (long)count);
    for (long long i = 0; i < count; i++) {
        unsigned long j = (unsigned long)i + rand_u64() % (len - (unsigned long)i);
        unsigned long t = ranks[i];
        ranks[i] = ranks[j];
        ranks[j] = t;
        reply_member(c, zsl_by_rank(z->zsl, ranks[i]), withscores);
    }
    km_free(ranks);
}

void zscan_cmd(client *c) {
    unsigned long cursor;
    if (scan_parse_cursor(c, c->argv[2], &cursor) != OK) return;
    kobj *o = db_lookup_read(c, c->argv[1]);
    if (db_check_type(c, o, OBJ_ZSET)) return;
    if (!o) {
        reply_array_len(c, 2);
        reply_bulk_cstr(c, "0");
        reply_array_len(c, 0);
        return;
    }
    scan_generic(c, o, 3, cursor);
}
