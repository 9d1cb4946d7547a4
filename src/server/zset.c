/* zset.c - sorted sets: skiplist (ordered walk, ranks) + dict (by member).
 *
 * The skiplist is the published structure (Pugh 1990) with Redis's two
 * additions: each forward link stores its span (how many nodes it skips) so
 * ranks are found in O(log n), and a backward pointer on level 0 for reverse
 * walks.  Ties on score order by member bytes.  The dict maps member ->
 * score and shares the member string owned by the skiplist node. */
#include "server.h"
#include "zset.h"

#include <assert.h>
#include <math.h>
#include <string.h>

static uint64_t member_hash(const void *k) { return dict_hash_dstr(k); }
static const dict_type zset_dict_type = {member_hash, dict_eq_dstr, NULL, NULL};

dstr zlex_min_s, zlex_max_s; /* identity-compared sentinels */

static zsl_node *node_new(int level, double score, dstr ele) {
    zsl_node *n = km_malloc(sizeof *n + (size_t)level * sizeof(struct zsl_level));
    if (!n) return NULL;
    n->score = score;
    n->ele = ele;
    n->backward = NULL;
    for (int i = 0; i < level; i++) {
        n->level[i].forward = NULL;
        n->level[i].span = 0;
    }
    return n;
}

static zskiplist *zsl_create(void) {
    zskiplist *zsl = km_malloc(sizeof *zsl);
    if (!zsl) return NULL;
    zsl->header = node_new(ZSL_MAXLEVEL, 0, NULL);
    if (!zsl->header) {
        km_free(zsl);
        return NULL;
    }
    zsl->tail = NULL;
    zsl->length = 0;
    zsl->level = 1;
    return zsl;
}

static void zsl_free(zskiplist *zsl) {
    zsl_node *n = zsl->header->level[0].forward;
    km_free(zsl->header);
    while (n) {
        zsl_node *next = n->level[0].forward;
        dstr_free(n->ele);
        km_free(n);
        n = next;
    }
    km_free(zsl);
}

static int random_level(void) {
    int level = 1;
    while ((rand_u64() & 0xFFFF) < 0xFFFF / 4 && level < ZSL_MAXLEVEL) level++;
    return level;
}

/* (score, ele) strictly before node n? */
static int before(zsl_node *n, double score, const dstr ele) {
    return n->score < score || (n->score == score && dstr_cmp(n->ele, ele) < 0);
}

static zsl_node *zsl_insert(zskiplist *zsl, double score, dstr ele) {
    zsl_node *update[ZSL_MAXLEVEL], *x = zsl->header;
    unsigned long rank[ZSL_MAXLEVEL];
    for (int i = zsl->level - 1; i >= 0; i--) {
        rank[i] = i == zsl->level - 1 ? 0 : rank[i + 1];
        while (x->level[i].forward && before(x->level[i].forward, score, ele)) {
            rank[i] += x->level[i].span;
            x = x->level[i].forward;
        }
        update[i] = x;
    }
    int level = random_level();
    x = node_new(level, score, ele); /* before anything changes: out of memory leaves the list as it was */
    if (!x) return NULL;
    if (level > zsl->level) {
        for (int i = zsl->level; i < level; i++) {
            rank[i] = 0;
            update[i] = zsl->header;
            update[i]->level[i].span = zsl->length;
        }
        zsl->level = level;
    }
    for (int i = 0; i < level; i++) {
        x->level[i].forward = update[i]->level[i].forward;
        update[i]->level[i].forward = x;
        x->level[i].span = update[i]->level[i].span - (rank[0] - rank[i]);
        update[i]->level[i].span = (rank[0] - rank[i]) + 1;
    }
    for (int i = level; i < zsl->level; i++) update[i]->level[i].span++;
    x->backward = update[0] == zsl->header ? NULL : update[0];
    if (x->level[0].forward) x->level[0].forward->backward = x;
    else zsl->tail = x;
    zsl->length++;
    return x;
}

static void unlink_node(zskiplist *zsl, zsl_node *x, zsl_node **update) {
    for (int i = 0; i < zsl->level; i++) {
        if (update[i]->level[i].forward == x) {
            update[i]->level[i].span += x->level[i].span - 1;
            update[i]->level[i].forward = x->level[i].forward;
        } else {
            update[i]->level[i].span -= 1;
        }
    }
    if (x->level[0].forward) x->level[0].forward->backward = x->backward;
    else zsl->tail = x->backward;
    while (zsl->level > 1 && zsl->header->level[zsl->level - 1].forward == NULL) zsl->level--;
    zsl->length--;
}

/* Unlinks the node (score, ele) and frees it, member string included. */
static int zsl_delete(zskiplist *zsl, double score, const dstr ele) {
    zsl_node *update[ZSL_MAXLEVEL], *x = zsl->header;
    for (int i = zsl->level - 1; i >= 0; i--) {
        while (x->level[i].forward && before(x->level[i].forward, score, ele)) x = x->level[i].forward;
        update[i] = x;
    }
    x = x->level[0].forward;
    if (!x || x->score != score || dstr_cmp(x->ele, ele) != 0) return 0;
    unlink_node(zsl, x, update);
    dstr_free(x->ele);
    km_free(x);
    return 1;
}

unsigned long zsl_rank_of(zskiplist *zsl, double score, const dstr ele) {
    zsl_node *x = zsl->header;
    unsigned long rank = 0;
    for (int i = zsl->level - 1; i >= 0; i--) {
        while (x->level[i].forward &&
               (before(x->level[i].forward, score, ele) ||
                (x->level[i].forward->score == score && dstr_cmp(x->level[i].forward->ele, ele) == 0))) {
            rank += x->level[i].span;
            x = x->level[i].forward;
        }
        if (x->ele && x->score == score && dstr_cmp(x->ele, ele) == 0) return rank;
    }
    return 0;
}

zsl_node *zsl_by_rank(zskiplist *zsl, unsigned long rank) {
    zsl_node *x = zsl->header;
    unsigned long traversed = 0;
    for (int i = zsl->level - 1; i >= 0; i--) {
        while (x->level[i].forward && traversed + x->level[i].span <= rank) {
            traversed += x->level[i].span;
            x = x->level[i].forward;
        }
        if (traversed == rank) return x;
    }
    return NULL;
}

int zsl_value_gte_min(double v, const zrange_spec *r) { return r->minex ? v > r->min : v >= r->min; }
int zsl_value_lte_max(double v, const zrange_spec *r) { return r->maxex ? v < r->max : v <= r->max; }

static int range_empty(zskiplist *zsl, const zrange_spec *r) {
    if (r->min > r->max || (r->min == r->max && (r->minex || r->maxex))) return 1;
    if (!zsl->tail || !zsl_value_gte_min(zsl->tail->score, r)) return 1;
    zsl_node *x = zsl->header->level[0].forward;
    return !x || !zsl_value_lte_max(x->score, r);
}

zsl_node *zsl_first_in_range(zskiplist *zsl, const zrange_spec *r) {
    if (range_empty(zsl, r)) return NULL;
    zsl_node *x = zsl->header;
    for (int i = zsl->level - 1; i >= 0; i--)
        while (x->level[i].forward && !zsl_value_gte_min(x->level[i].forward->score, r))
            x = x->level[i].forward;
    x = x->level[0].forward;
    return x && zsl_value_lte_max(x->score, r) ? x : NULL;
}

zsl_node *zsl_last_in_range(zskiplist *zsl, const zrange_spec *r) {
    if (range_empty(zsl, r)) return NULL;
    zsl_node *x = zsl->header;
    for (int i = zsl->level - 1; i >= 0; i--)
        while (x->level[i].forward && zsl_value_lte_max(x->level[i].forward->score, r))
            x = x->level[i].forward;
    return x != zsl->header && zsl_value_gte_min(x->score, r) ? x : NULL;
}

static int lex_cmp(const dstr a, const dstr b) {
    if (a == b) return 0;
    if (a == zlex_min_s || b == zlex_max_s) return -1;
    if (a == zlex_max_s || b == zlex_min_s) return 1;
    return dstr_cmp(a, b);
}

int zsl_lex_gte_min(const dstr v, const zlex_spec *r) {
    return r->minex ? lex_cmp(v, r->min) > 0 : lex_cmp(v, r->min) >= 0;
}
int zsl_lex_lte_max(const dstr v, const zlex_spec *r) {
    return r->maxex ? lex_cmp(v, r->max) < 0 : lex_cmp(v, r->max) <= 0;
}

static int lex_empty(zskiplist *zsl, const zlex_spec *r) {
    int c = lex_cmp(r->min, r->max);
    if (c > 0 || (c == 0 && (r->minex || r->maxex))) return 1;
    if (!zsl->tail || !zsl_lex_gte_min(zsl->tail->ele, r)) return 1;
    zsl_node *x = zsl->header->level[0].forward;
    return !x || !zsl_lex_lte_max(x->ele, r);
}

zsl_node *zsl_first_in_lex(zskiplist *zsl, const zlex_spec *r) {
    if (lex_empty(zsl, r)) return NULL;
    zsl_node *x = zsl->header;
    for (int i = zsl->level - 1; i >= 0; i--)
        while (x->level[i].forward && !zsl_lex_gte_min(x->level[i].forward->ele, r)) x = x->level[i].forward;
    x = x->level[0].forward;
    return x && zsl_lex_lte_max(x->ele, r) ? x : NULL;
}

zsl_node *zsl_last_in_lex(zskiplist *zsl, const zlex_spec *r) {
    if (lex_empty(zsl, r)) return NULL;
    zsl_node *x = zsl->header;
    for (int i = zsl->level - 1; i >= 0; i--)
        while (x->level[i].forward && zsl_lex_lte_max(x->level[i].forward->ele, r)) x = x->level[i].forward;
    return x != zsl->header && zsl_lex_gte_min(x->ele, r) ? x : NULL;
}

/* ------------------------------------------------------------------ zset */

zset *zset_new(void) {
    if (!zlex_min_s) {
        zlex_min_s = dstr_new("minstring");
        zlex_max_s = dstr_new("maxstring");
        if (!zlex_min_s || !zlex_max_s) return NULL;
    }
    zset *z = km_malloc(sizeof *z);
    if (!z) return NULL;
    z->d = dict_create(&zset_dict_type);
    z->zsl = zsl_create();
    if (!z->d || !z->zsl) {
        dict_release(z->d);
        if (z->zsl) zsl_free(z->zsl);
        km_free(z);
        return NULL;
    }
    return z;
}

void zset_free(zset *z) {
    if (!z) return;
    dict_release(z->d);
    zsl_free(z->zsl);
    km_free(z);
}

size_t zset_len(const zset *z) { return z->zsl->length; }
dict *zset_dict(zset *z) { return z->d; }

int zset_score(zset *z, const dstr ele, double *score) {
    dict_entry *e = dict_find(z->d, ele);
    if (!e) return 0;
    *score = e->v.d;
    return 1;
}

int zset_add(zset *z, double score, const char *p, size_t len, int *added) {
    *added = 0;
    if (score == 0) score = 0.0; /* -0 is stored as 0, as Redis's compact sets do */
    dstr ele = dstr_newlen(p, len);
    if (!ele) return ERR;
    dict_entry *e = dict_find(z->d, ele);
    if (e) {
        if (e->v.d != score) {
            /* the node under the new score first (the one allocation: out
             * of memory changes nothing), then the old node goes with its
             * string, which the dict entry stops pointing at before */
            zsl_node *n = zsl_insert(z->zsl, score, ele);
            if (!n) {
                dstr_free(ele);
                return ERR;
            }
            double old = e->v.d;
            e->key = n->ele;
            e->v.d = score;
            int gone = zsl_delete(z->zsl, old, ele);
            assert(gone); /* the dict and the skiplist hold the same members */
            (void)gone;
        } else {
            dstr_free(ele);
        }
        return OK;
    }
    zsl_node *n = zsl_insert(z->zsl, score, ele);
    if (!n) {
        dstr_free(ele);
        return ERR;
    }
    dict_entry *ne = dict_add_raw(z->d, ele, NULL);
    if (!ne) {
        zsl_delete(z->zsl, score, ele); /* frees ele */
        return ERR;
    }
    ne->v.d = score;
    *added = 1;
    return OK;
}

int zset_remove(zset *z, const dstr ele) {
    dict_entry *e = dict_unlink(z->d, ele);
    if (!e) return 0;
    double score = e->v.d;
    km_free(e); /* key is owned by the node */
    zsl_delete(z->zsl, score, ele);
    return 1;
}

long zset_rank(zset *z, const dstr ele, int reverse) {
    double score;
    if (!zset_score(z, ele, &score)) return -1;
    unsigned long r = zsl_rank_of(z->zsl, score, ele);
    if (r == 0) return -1;
    return reverse ? (long)(z->zsl->length - r) : (long)(r - 1);
}

zset *zset_dup(const zset *z) {
    zset *n = zset_new();
    if (!n) return NULL;
    for (zsl_node *x = z->zsl->tail; x; x = x->backward) {
        int added;
        if (zset_add(n, x->score, x->ele, dstr_len(x->ele), &added) != OK) {
            zset_free(n);
            return NULL;
        }
    }
    return n;
}
