/* hnsw.c - the HNSW graph of a vector set: search, insert, delete.
 *
 * Hierarchical Navigable Small World graphs (Malkov and Yashunin, 2016):
 * every node lives on level 0 and, with probability falling by a factor
 * of M per level, on levels above; a search descends greedily from the
 * entry point on the top level and runs a best-first search with ef
 * candidates on level 0.  Neighbours are chosen with the paper's heuristic
 * (a candidate is kept when it is nearer to the new node than to every
 * neighbour already kept), which keeps links spread in every direction.
 *
 * Deletion is real: the deleted node's reverse links (vset_impl.h) name
 * every node that linked to it; each of those loses the link and is offered
 * the deleted node's own neighbours as replacements, through the same
 * heuristic; a neighbour left with no incoming link is reattached to the
 * nearest node of the neighbourhood.  The graph a long life of adds and
 * removes leaves behind is therefore a graph, not a field of tombstones.
 *
 * Locking is described in vset_impl.h; the functions here say which lock
 * their caller holds. */
#include "vset_impl.h"

#include "vfilter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- distances ---------------------------------------------------------- */

static inline float dist_data(const vset *s, const void *a, float ra, const vnode *n) {
    const void *b = vs_vec(s, n);
    switch (s->quant) {
    case VSET_NOQUANT:
        return 1.0f - s->k->dot_f32(a, b, s->dim);
    case VSET_Q8: {
        float d = 1.0f - (float)s->k->dot_i8(a, b, s->dim) * (ra * (1.0f / 127)) * (n->range * (1.0f / 127));
        return d < 0 ? 0 : d > 2 ? 2 : d; /* rounding must not leave [0, 2] */
    }
    default:
        return 2.0f * (float)s->k->hamming(a, b, s->words) / (float)s->dim;
    }
}

float hnsw_dist(const vset *s, const vq *q, const vnode *n) { return dist_data(s, q->data, q->range, n); }

void hnsw_node_query(const vset *s, const vnode *n, vq *q) {
    q->f = NULL;
    q->data = vs_vec(s, n);
    q->range = n->range;
}

static inline float node_dist(const vset *s, const vnode *a, const vnode *b) {
    return dist_data(s, vs_vec(s, a), a->range, b);
}

/* The similarity a user sees: exact floats when the query has them. */
static float rescore(const vset *s, const vq *q, const vnode *n, float d) {
    if (!q->f) return d;
    const void *v = vs_vec(s, n);
    if (s->quant != VSET_Q8) return d;
    float r = 1.0f - s->k->dot_f32_i8(q->f, v, s->dim) * (n->range * (1.0f / 127));
    /* rounding of the int8 components must not leave [0, 2] (scores in [0, 1]) */
    return r < 0 ? 0 : r > 2 ? 2 : r;
}

/* ---- heaps of (distance, id) --------------------------------------------- */

static int heap_reserve(vheap *h, uint32_t need) {
    if (need <= h->cap) return 0;
    uint32_t nc = h->cap ? h->cap : 64;
    while (nc < need) nc *= 2;
    vcand *nv = vs_realloc(h->v, (size_t)nc * sizeof *nv);
    if (!nv) return -1;
    h->v = nv;
    h->cap = nc;
    return 0;
}

/* Max-heap (worst on top) when max, else min-heap.  Callers reserve. */
static inline int before(const vcand *a, const vcand *b, int max) {
    return max ? a->d > b->d : a->d < b->d;
}

static void heap_push(vheap *h, float d, uint32_t id, int max) {
    uint32_t i = h->n++;
    vcand c = {d, id};
    while (i) {
        uint32_t p = (i - 1) / 2;
        if (!before(&c, &h->v[p], max)) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

static vcand heap_pop(vheap *h, int max) {
    vcand top = h->v[0], last = h->v[--h->n];
    uint32_t i = 0, n = h->n;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, b = i;
        const vcand *bv = &last;
        if (l < n && before(&h->v[l], bv, max)) b = l, bv = &h->v[l];
        if (r < n && before(&h->v[r], bv, max)) b = r;
        if (b == i) break;
        h->v[i] = h->v[b];
        i = b;
    }
    if (n) h->v[i] = last;
    return top;
}

/* Replaces the top with (d, id) and sifts it down: a push and a pop in
 * one pass, for a full result heap taking a better candidate. */
static void heap_replace_top(vheap *h, float d, uint32_t id, int max) {
    vcand c = {d, id};
    uint32_t i = 0, n = h->n;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, b = i;
        const vcand *bv = &c;
        if (l < n && before(&h->v[l], bv, max)) b = l, bv = &h->v[l];
        if (r < n && before(&h->v[r], bv, max)) b = r;
        if (b == i) break;
        h->v[i] = h->v[b];
        i = b;
    }
    h->v[i] = c;
}

static int cmp_cand(const void *a, const void *b) {
    const vcand *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* ---- search scratch --------------------------------------------------------- */

vvisit *hnsw_visit_get(vset *s) {
    pthread_mutex_lock(&s->vis_mu);
    vvisit *w = s->vis_pool;
    if (w) s->vis_pool = w->next;
    uint32_t need = __atomic_load_n(&s->next_id, __ATOMIC_ACQUIRE) + 1024;
    pthread_mutex_unlock(&s->vis_mu);
    if (!w) {
        w = vs_calloc(1, sizeof *w);
        if (!w) return NULL;
        w->nb = vs_malloc((size_t)s->m0 * sizeof *w->nb);
        w->nodes = vs_malloc((size_t)s->m0 * sizeof *w->nodes);
        if (!w->nb || !w->nodes) {
            vs_free(w->nb);
            vs_free(w->nodes);
            vs_free(w);
            return NULL;
        }
    }
    if (w->cap < need) {
        uint16_t *t = vs_realloc(w->tag, (size_t)need * sizeof *t);
        if (!t) {
            hnsw_visit_put(s, w);
            return NULL;
        }
        memset(t, 0, (size_t)need * sizeof *t);
        w->tag = t;
        w->cap = need;
        w->epoch = 0;
    }
    return w;
}

void hnsw_visit_put(vset *s, vvisit *w) {
    pthread_mutex_lock(&s->vis_mu);
    w->next = s->vis_pool;
    s->vis_pool = w;
    pthread_mutex_unlock(&s->vis_mu);
}

void hnsw_visit_free_all(vset *s) {
    vvisit *w = s->vis_pool;
    while (w) {
        vvisit *n = w->next;
        vs_free(w->tag);
        vs_free(w->cand.v);
        vs_free(w->top.v);
        vs_free(w->res.v);
        vs_free(w->nb);
        vs_free(w->nodes);
        vs_free(w->tmp);
        vs_free(w);
        w = n;
    }
    s->vis_pool = NULL;
}

static void new_epoch(vvisit *w) {
    if (++w->epoch == 0) {
        memset(w->tag, 0, (size_t)w->cap * sizeof *w->tag);
        w->epoch = 1;
    }
}

/* Marks id; 1 when it was not yet marked.  Ids past the marks were handed
 * out after the search started (a concurrent insert): skipped. */
static inline int visit(vvisit *w, uint32_t id) {
    if (id >= w->cap || w->tag[id] == w->epoch) return 0;
    w->tag[id] = w->epoch;
    return 1;
}

/* Copies the links of n at level into out; returns how many.  A racing
 * insert may be rewriting them: each id read is still a live node. */
static uint32_t read_links(const vset *s, vnode *n, int level, uint32_t *out) {
    uint32_t *cnt, *ids = vs_links(s, n, level, &cnt);
    uint32_t c = __atomic_load_n(cnt, __ATOMIC_ACQUIRE), cap = (uint32_t)vs_cap(s, level);
    if (c > cap) c = cap;
    for (uint32_t i = 0; i < c; i++) out[i] = __atomic_load_n(&ids[i], __ATOMIC_RELAXED);
    return c;
}

/* Greedy walk on one level from *cur toward q. */
static void greedy(vset *s, vvisit *w, const vq *q, int level, uint32_t *cur, float *curd) {
    for (int changed = 1; changed;) {
        changed = 0;
        vnode *c = vs_node(s, *cur);
        uint32_t n = read_links(s, c, level, w->nb);
        for (uint32_t i = 0; i < n; i++) {
            vnode *x = vs_rec(s, w->nb[i]);
            VS_ASSERT(x && x->id == w->nb[i] && x->level >= level);
            float d = hnsw_dist(s, q, x);
            if (d < *curd) {
                *curd = d;
                *cur = w->nb[i];
                changed = 1;
            }
        }
    }
}

static int matches(const vset *s, uint32_t id, const struct vfilter *f) {
    vnode *n = vs_node(s, id);
    return n && vfilter_match(f, n->attr, n->attr_len);
}

/* Best-first search of one level from the entry point (ep, epd), keeping
 * the ef nearest in w->top (max-heap).  With a filter, only matching nodes
 * enter the result heap (every node still guides the walk) and at most
 * filter_ef nodes are expanded (0: no bound).  -1 when out of memory. */
static int search_level(vset *s, vvisit *w, const vq *q, uint32_t ep, float epd, uint32_t ef, int level,
                        const struct vfilter *flt, uint64_t filter_ef) {
    vheap *cand = &w->cand, *top = &w->top;
    cand->n = top->n = 0;
    if (heap_reserve(top, ef + 1) < 0 || heap_reserve(cand, 64) < 0) return -1;
    new_epoch(w);
    visit(w, ep);
    heap_push(cand, epd, ep, 0);
    if (!flt || matches(s, ep, flt)) heap_push(top, epd, ep, 1);
    /* FILTER-EF counts the nodes expanded, as Redis's effort counter does. */
    uint64_t expanded = 1;
    while (cand->n) {
        vcand c = cand->v[0];
        if (top->n >= ef && c.d > top->v[0].d) break;
        if (flt && filter_ef && expanded >= filter_ef) break;
        heap_pop(cand, 0);
        expanded++;
        vnode *cn = vs_rec(s, c.id);
        /* First the unvisited neighbours, their vectors prefetched, then
         * the distances: the loads overlap instead of queueing. */
        uint32_t n = read_links(s, cn, level, w->nb), m = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t id = w->nb[i];
            if (!visit(w, id)) continue;
            /* Links name live nodes of this level or above (vset_check). */
            vnode *x = vs_rec(s, id);
            VS_ASSERT(x && x->id == id && x->level >= level);
            __builtin_prefetch(vs_vec(s, x));
            w->nodes[m++] = x;
        }
        for (uint32_t i = 0; i < m; i++) {
            vnode *x = w->nodes[i];
            float d = hnsw_dist(s, q, x);
            if (top->n < ef || d < top->v[0].d) {
                if (heap_reserve(cand, cand->n + 1) < 0) return -1;
                heap_push(cand, d, x->id, 0);
                if (flt && !vfilter_match(flt, x->attr, x->attr_len)) continue;
                if (top->n < ef) heap_push(top, d, x->id, 1);
                else heap_replace_top(top, d, x->id, 1);
            }
        }
    }
    return 0;
}

/* Empties w->top into w->tmp sorted nearest first (popping the max-heap
 * fills the array from the back); returns the count. */
static int sorted_top(vvisit *w, vcand **out) {
    uint32_t n = w->top.n;
    if (w->tmp_cap < n + 1) {
        vcand *t = vs_realloc(w->tmp, (size_t)(n + 1) * sizeof *t);
        if (!t) return -1;
        w->tmp = t;
        w->tmp_cap = n + 1;
    }
    for (uint32_t i = n; i > 0; i--) w->tmp[i - 1] = heap_pop(&w->top, 1);
    *out = w->tmp;
    return (int)n;
}

/* Where a search starts: the entry point, descended greedily to level. */
static int descend(vset *s, vvisit *w, const vq *q, int to_level, uint32_t *cur, float *curd, int *top_out) {
    uint32_t ep = __atomic_load_n(&s->entry, __ATOMIC_ACQUIRE);
    int top = __atomic_load_n(&s->max_level, __ATOMIC_ACQUIRE);
    if (ep == VS_NO_NODE || top < 0) return -1;
    vnode *e = vs_node(s, ep);
    if (!e) return -1;
    if (top > e->level) top = e->level; /* a torn read of (entry, top) */
    *cur = ep;
    *curd = hnsw_dist(s, q, e);
    for (int l = top; l > to_level; l--) greedy(s, w, q, l, cur, curd);
    *top_out = top;
    return 0;
}

int hnsw_search(vset *s, const vq *q, const vset_query *opt, vset_hit *hits) {
    if (!opt->count) return 0;
    vvisit *w = hnsw_visit_get(s);
    if (!w) return -1;
    uint32_t cur;
    float curd;
    int top, found = 0;
    if (descend(s, w, q, 0, &cur, &curd, &top) < 0) goto done;
    uint32_t ef = opt->ef > opt->count ? opt->ef : opt->count;
    if (search_level(s, w, q, cur, curd, ef, 0, opt->filter, opt->filter_ef) < 0) {
        found = -1;
        goto done;
    }
    vcand *c;
    int n = sorted_top(w, &c);
    if (n < 0) {
        found = -1;
        goto done;
    }
    if (q->f && s->quant == VSET_Q8) {
        for (int i = 0; i < n; i++) c[i].d = rescore(s, q, vs_node(s, c[i].id), c[i].d);
        qsort(c, (size_t)n, sizeof *c, cmp_cand);
    }
    for (int i = 0; i < n && found < (int)opt->count; i++) {
        if (opt->epsilon > 0 && (double)c[i].d / 2 > opt->epsilon) break;
        hits[found].id = c[i].id;
        hits[found].sim = 1.0 - (double)c[i].d / 2.0;
        found++;
    }
done:
    hnsw_visit_put(s, w);
    return found;
}

int hnsw_scan(vset *s, const vq *q, const vset_query *opt, vset_hit *hits) {
    if (!opt->count) return 0;
    vheap h = {0};
    if (heap_reserve(&h, opt->count + 1) < 0) return -1;
    uint32_t end = __atomic_load_n(&s->next_id, __ATOMIC_ACQUIRE);
    for (uint32_t id = 0; id < end; id++) {
        vnode *n = vs_node(s, id);
        if (!n) continue;
        if (opt->filter && !vfilter_match(opt->filter, n->attr, n->attr_len)) continue;
        /* Q8 with the query's floats: the re-scored distance is the one
         * that ranks, so the int8 one is not computed at all. */
        float d = q->f && s->quant == VSET_Q8 ? rescore(s, q, n, 0) : hnsw_dist(s, q, n);
        if (h.n < opt->count) heap_push(&h, d, id, 1);
        else if (d < h.v[0].d) heap_replace_top(&h, d, id, 1);
    }
    qsort(h.v, h.n, sizeof *h.v, cmp_cand);
    int found = 0;
    for (uint32_t i = 0; i < h.n; i++) {
        if (opt->epsilon > 0 && (double)h.v[i].d / 2 > opt->epsilon) break;
        hits[found].id = h.v[i].id;
        hits[found].sim = 1.0 - (double)h.v[i].d / 2.0;
        found++;
    }
    vs_free(h.v);
    return found;
}

/* ---- reverse links ---------------------------------------------------------- */

int vinl_add(vset *s, vinl *l, uint32_t id) {
    if (l->n == l->cap) {
        uint32_t nc = l->cap ? l->cap + l->cap / 2 + 1 : 8;
        /* Sized before the realloc frees the old block. */
        if (l->ids) vs_mem_sub(s, l->ids, (size_t)l->cap * sizeof *l->ids);
        uint32_t *nv = vs_realloc(l->ids, (size_t)nc * sizeof *nv);
        if (!nv) {
            if (l->ids) vs_mem_add(s, l->ids, (size_t)l->cap * sizeof *l->ids);
            return -1;
        }
        vs_mem_add(s, nv, (size_t)nc * sizeof *nv);
        l->ids = nv;
        l->cap = nc;
    }
    l->ids[l->n++] = id;
    return 0;
}

void vinl_del(vinl *l, uint32_t id) {
    for (uint32_t i = 0; i < l->n; i++)
        if (l->ids[i] == id) {
            l->ids[i] = l->ids[--l->n];
            return;
        }
    assert(!"reverse link missing");
}

static int inl_add_locked(vset *s, vnode *to, int level, uint32_t from) {
    vs_spin_lock(&to->ilk);
    int rc = vinl_add(s, &to->in[level], from);
    vs_spin_unlock(&to->ilk);
    return rc;
}

static void inl_del_locked(vnode *to, int level, uint32_t from) {
    vs_spin_lock(&to->ilk);
    vinl_del(&to->in[level], from);
    vs_spin_unlock(&to->ilk);
}

/* ---- neighbour selection ---------------------------------------------------- */

/* The paper's heuristic over c[0..n) sorted nearest first (distances to
 * the base node): keeps a candidate when it is nearer to the base than to
 * every one kept before it, up to max.  Compacts the kept ones to the front
 * of c; returns how many. */
static uint32_t heuristic(const vset *s, vcand *c, uint32_t n, uint32_t max) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n && kept < max; i++) {
        vnode *x = vs_node(s, c[i].id);
        int good = 1;
        for (uint32_t j = 0; j < kept; j++)
            if (node_dist(s, x, vs_node(s, c[j].id)) < c[i].d) {
                good = 0;
                break;
            }
        if (good) c[kept++] = c[i];
    }
    return kept;
}

/* Adds the link from -> to at level (with its reverse), pruning from's
 * links with the heuristic when they are full.  Takes from->lk. */
static void connect(vset *s, vnode *from, vnode *to, int level) {
    uint32_t cap = (uint32_t)vs_cap(s, level);
    vs_spin_lock(&from->lk);
    uint32_t *cnt, *ids = vs_links(s, from, level, &cnt);
    uint32_t n = *cnt;
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == to->id) goto out;
    if (n < cap) {
        if (inl_add_locked(s, to, level, from->id) == 0) {
            __atomic_store_n(&ids[n], to->id, __ATOMIC_RELAXED);
            __atomic_store_n(cnt, n + 1, __ATOMIC_RELEASE);
        }
        goto out;
    }
    /* Full: choose cap of the old links plus the new one. */
    vcand stackc[257];
    vcand *c = n + 1 <= 257 ? stackc : vs_malloc((size_t)(n + 1) * sizeof *c);
    if (!c) goto out; /* out of memory: the link is not added */
    for (uint32_t i = 0; i < n; i++) {
        c[i].id = ids[i];
        c[i].d = node_dist(s, from, vs_node(s, ids[i]));
    }
    c[n].id = to->id;
    c[n].d = node_dist(s, from, to);
    qsort(c, n + 1, sizeof *c, cmp_cand);
    uint32_t k = heuristic(s, c, n + 1, cap);
    int has_to = 0;
    for (uint32_t i = 0; i < k; i++)
        if (c[i].id == to->id) has_to = 1;
    if (has_to && inl_add_locked(s, to, level, from->id) < 0) {
        /* No room to record the reverse link: keep the old list. */
        goto done;
    }
    /* Old links not kept lose their reverse entry. */
    for (uint32_t i = 0; i < n; i++) {
        int kept = 0;
        for (uint32_t j = 0; j < k; j++)
            if (c[j].id == ids[i]) kept = 1;
        if (!kept) inl_del_locked(vs_node(s, ids[i]), level, from->id);
    }
    for (uint32_t i = 0; i < k; i++) __atomic_store_n(&ids[i], c[i].id, __ATOMIC_RELAXED);
    __atomic_store_n(cnt, k, __ATOMIC_RELEASE);
done:
    if (c != stackc) vs_free(c);
out:
    vs_spin_unlock(&from->lk);
}

/* Links n at one level to the candidates c[0..nc) (nearest first). */
static void link_level(vset *s, vnode *n, int level, vcand *c, uint32_t nc) {
    uint32_t k = heuristic(s, c, nc, (uint32_t)s->m);
    for (uint32_t i = 0; i < k; i++) {
        vnode *x = vs_node(s, c[i].id);
        connect(s, n, x, level);
        connect(s, x, n, level);
    }
}

static void publish_entry(vset *s, vnode *n) {
    __atomic_store_n(&s->max_level, (int)n->level, __ATOMIC_RELEASE);
    __atomic_store_n(&s->entry, n->id, __ATOMIC_RELEASE);
}

/* Takes ep_mu and reads the top; returns with ep_mu still held when n
 * will raise the top (it becomes the entry point when done), or when the
 * graph is empty (n is the entry point, done: returns 1). */
static int begin_insert(vset *s, vnode *n, uint32_t *ep, int *top, int *hold) {
    pthread_mutex_lock(&s->ep_mu);
    *top = __atomic_load_n(&s->max_level, __ATOMIC_ACQUIRE);
    *ep = __atomic_load_n(&s->entry, __ATOMIC_ACQUIRE);
    if (*top < 0 || *ep == VS_NO_NODE) {
        publish_entry(s, n);
        pthread_mutex_unlock(&s->ep_mu);
        return 1;
    }
    *hold = n->level > *top;
    if (!*hold) pthread_mutex_unlock(&s->ep_mu);
    return 0;
}

static void end_insert(vset *s, vnode *n, int hold) {
    if (!hold) return;
    publish_entry(s, n);
    pthread_mutex_unlock(&s->ep_mu);
}

void hnsw_link(vset *s, vnode *n, int ef) {
    uint32_t ep;
    int top, hold = 0;
    __atomic_add_fetch(&s->level_count[n->level], 1, __ATOMIC_RELAXED);
    if (begin_insert(s, n, &ep, &top, &hold)) return;
    vvisit *w = hnsw_visit_get(s);
    vq q;
    hnsw_node_query(s, n, &q);
    if (!w) goto done; /* out of memory: n stays unreachable but consistent */
    vnode *e = vs_node(s, ep);
    if (top > e->level) top = e->level;
    uint32_t cur = ep;
    float curd = hnsw_dist(s, &q, e);
    for (int l = top; l > n->level; l--) greedy(s, w, &q, l, &cur, &curd);
    for (int l = top < n->level ? top : n->level; l >= 0; l--) {
        if (search_level(s, w, &q, cur, curd, (uint32_t)ef, l, NULL, 0) < 0) break;
        vcand *c;
        int nc = sorted_top(w, &c);
        if (nc <= 0) break;
        cur = c[0].id;
        curd = c[0].d;
        link_level(s, n, l, c, (uint32_t)nc);
    }
    hnsw_visit_put(s, w);
done:
    end_insert(s, n, hold);
}

int hnsw_collect(vset *s, const vq *q, int level, int ef, vlevel_cands *out) {
    uint32_t cur;
    float curd;
    int top;
    vvisit *w = hnsw_visit_get(s);
    if (!w) return -2;
    if (descend(s, w, q, level, &cur, &curd, &top) < 0) {
        hnsw_visit_put(s, w);
        return -1;
    }
    for (int l = top < level ? top : level; l >= 0; l--) {
        vcand *c;
        int nc;
        if (search_level(s, w, q, cur, curd, (uint32_t)ef, l, NULL, 0) < 0 || (nc = sorted_top(w, &c)) < 0) {
            hnsw_visit_put(s, w);
            return -2;
        }
        out[l].c = vs_malloc((size_t)(nc ? nc : 1) * sizeof *c);
        if (!out[l].c) {
            hnsw_visit_put(s, w);
            return -2;
        }
        memcpy(out[l].c, c, (size_t)nc * sizeof *c);
        out[l].n = (uint32_t)nc;
        if (nc) {
            cur = c[0].id;
            curd = c[0].d;
        }
    }
    hnsw_visit_put(s, w);
    return top;
}

void hnsw_link_with(vset *s, vnode *n, int ef, vlevel_cands *cands, int top_seen) {
    uint32_t ep;
    int top, hold = 0;
    int cur_top = __atomic_load_n(&s->max_level, __ATOMIC_ACQUIRE);
    /* The top grew on the levels n reaches: the candidates miss a level. */
    if (top_seen < 0 || (cur_top > top_seen && n->level > top_seen)) {
        hnsw_link(s, n, ef);
        return;
    }
    __atomic_add_fetch(&s->level_count[n->level], 1, __ATOMIC_RELAXED);
    if (begin_insert(s, n, &ep, &top, &hold)) return;
    for (int l = top_seen < n->level ? top_seen : n->level; l >= 0; l--)
        link_level(s, n, l, cands[l].c, cands[l].n);
    end_insert(s, n, hold);
}

/* ---- deletion ------------------------------------------------------------------- */

/* Candidates a search around a deleted node adds to its neighbourhood, at
 * level 0 and above (tuned on 20k x 128-d sets, clustered and uniform:
 * recall after 30% churn at or above a fresh build's, ~2-3k removals/s). */
#define VS_REPAIR_EF0 64
#define VS_REPAIR_EF_UP 32

static int in_list(const uint32_t *ids, uint32_t n, uint32_t id) {
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == id) return 1;
    return 0;
}

/* p lost its link to the deleted node x at level: offers p the pool (x's
 * neighbourhood), nearest first, keeping those the heuristic accepts next
 * to p's remaining links, while p has room.  p's other links stay: a
 * deletion disturbs no more of the graph than it must.  Exclusive lock. */
static void refill(vset *s, vnode *p, int level, const uint32_t *pool, uint32_t npool, vcand *c) {
    uint32_t cap = (uint32_t)vs_cap(s, level);
    uint32_t *cnt, *ids = vs_links(s, p, level, &cnt);
    uint32_t nc = 0;
    for (uint32_t i = 0; i < npool; i++) {
        uint32_t id = pool[i];
        if (id == p->id || in_list(ids, *cnt, id)) continue;
        vnode *y = vs_node(s, id);
        VS_ASSERT(y && y->level >= level);
        c[nc].id = id;
        c[nc].d = node_dist(s, p, y);
        nc++;
    }
    qsort(c, nc, sizeof *c, cmp_cand);
    for (uint32_t i = 0; i < nc && *cnt < cap; i++) {
        vnode *y = vs_node(s, c[i].id);
        int good = 1;
        for (uint32_t j = 0; j < *cnt; j++)
            if (node_dist(s, y, vs_node(s, ids[j])) < c[i].d) {
                good = 0;
                break;
            }
        if (!good || vinl_add(s, &y->in[level], p->id) < 0) continue;
        ids[(*cnt)++] = c[i].id;
    }
}

/* The node of the pool nearest to y on level (y excluded), or NULL. */
static vnode *nearest_of(vset *s, vnode *y, int level, const uint32_t *pool, uint32_t npool) {
    vnode *best = NULL;
    float bestd = INFINITY;
    for (uint32_t i = 0; i < npool; i++) {
        vnode *p = vs_node(s, pool[i]);
        if (!p || p == y || p->level < level) continue;
        float d = node_dist(s, p, y);
        if (d < bestd) {
            bestd = d;
            best = p;
        }
    }
    return best;
}

/* y has no incoming link left at level: attach it to the nearest node of
 * the pool that can take it (has room, or drops its farthest link to a
 * node that keeps another incoming link).  Exclusive lock. */
static void reattach(vset *s, vnode *y, int level, const uint32_t *pool, uint32_t npool) {
    uint32_t cap = (uint32_t)vs_cap(s, level);
    vnode *best = nearest_of(s, y, level, pool, npool);
    if (!best) return;
    float bestd = node_dist(s, best, y);
    uint32_t *cnt, *ids = vs_links(s, best, level, &cnt);
    if (in_list(ids, *cnt, y->id)) return;
    if (*cnt >= cap) {
        int far = -1;
        float fard = -1;
        for (uint32_t j = 0; j < *cnt; j++) {
            vnode *z = vs_node(s, ids[j]);
            if (z->in[level].n < 2) continue;
            float d = node_dist(s, best, z);
            if (d > fard) {
                fard = d;
                far = (int)j;
            }
        }
        if (far < 0 || fard <= bestd) return;
        if (vinl_add(s, &y->in[level], best->id) < 0) return;
        vinl_del(&vs_node(s, ids[far])->in[level], best->id);
        ids[far] = y->id;
        return;
    }
    if (vinl_add(s, &y->in[level], best->id) < 0) return;
    ids[(*cnt)++] = y->id;
}

/* A new entry point when x, the current one, goes: the highest node of
 * x's neighbourhood, else (x had no neighbour at its top) a scan. */
static void replace_entry(vset *s, vnode *x) {
    vnode *best = NULL;
    for (int l = x->level; l >= 0 && !best; l--) {
        uint32_t *cnt, *ids = vs_links(s, x, l, &cnt);
        for (uint32_t i = 0; i < *cnt; i++) {
            vnode *y = vs_node(s, ids[i]);
            if (y && (!best || y->level > best->level)) best = y;
        }
        for (uint32_t i = 0; i < x->in[l].n; i++) {
            vnode *y = vs_node(s, x->in[l].ids[i]);
            if (y && (!best || y->level > best->level)) best = y;
        }
    }
    int want = -1; /* highest level any other node is on */
    for (int l = VSET_MAX_LEVEL; l >= 0; l--) {
        uint64_t c = s->level_count[l] - (l == x->level);
        if (c) {
            want = l;
            break;
        }
    }
    if (want >= 0 && (!best || best->level < want)) {
        for (uint32_t id = 0; id < s->next_id; id++) {
            vnode *y = vs_node(s, id);
            if (y && y != x && y->level == want) {
                best = y;
                break;
            }
        }
    }
    if (best) {
        s->entry = best->id;
        s->max_level = best->level;
    } else {
        s->entry = VS_NO_NODE;
        s->max_level = -1;
    }
}

/* Adds to pool[0..npool) the ef nearest nodes to x on level (x itself
 * excluded), from a search that can still walk through x's links. */
static uint32_t search_around(vset *s, vnode *x, int level, uint32_t ef, uint32_t *pool, uint32_t npool,
                              uint32_t cap) {
    vvisit *w = hnsw_visit_get(s);
    if (!w) return npool; /* out of memory: the neighbourhood alone */
    vq q;
    hnsw_node_query(s, x, &q);
    uint32_t cur;
    float curd;
    int top;
    /* (x may have been the only node this high: then nothing to find) */
    if (descend(s, w, &q, level, &cur, &curd, &top) == 0 && level <= top &&
        search_level(s, w, &q, cur, curd, ef, level, NULL, 0) == 0) {
        vcand *r;
        int nr = sorted_top(w, &r);
        for (int i = 0; i < nr && npool < cap; i++)
            if (r[i].id != x->id && !in_list(pool, npool, r[i].id)) pool[npool++] = r[i].id;
    }
    hnsw_visit_put(s, w);
    return npool;
}

void hnsw_unlink(vset *s, vnode *x) {
    if (s->entry == x->id) replace_entry(s, x);
    s->level_count[x->level]--;
    vcand c[512];
    for (int l = x->level; l >= 0; l--) {
        uint32_t *cnt, *out = vs_links(s, x, l, &cnt);
        uint32_t nout = *cnt;
        vinl *in = &x->in[l];
        /* The neighbourhood: x's links, the nodes linking to x, and the
         * nearest nodes a search around x finds.  The search is what keeps
         * a long life of deletes at the recall of a fresh build: x's own
         * links alone are too few good replacements (measured: 0.01 to
         * 0.02 of recall@10 lost after deleting 30% and re-adding half). */
        uint32_t xef = l ? VS_REPAIR_EF_UP : VS_REPAIR_EF0;
        uint32_t npool = 0, cap = nout + in->n + xef;
        uint32_t stackpool[512];
        uint32_t *pool = cap <= 512 ? stackpool : vs_malloc((size_t)cap * sizeof *pool);
        if (!pool) pool = stackpool, cap = 512; /* out of memory: a smaller pool */
        for (uint32_t i = 0; i < nout && npool < cap; i++) pool[npool++] = out[i];
        for (uint32_t i = 0; i < in->n && npool < cap; i++)
            if (!in_list(out, nout, in->ids[i])) pool[npool++] = in->ids[i];
        npool = search_around(s, x, l, xef, pool, npool, cap);
        for (uint32_t i = 0; i < nout; i++) vinl_del(&vs_node(s, out[i])->in[l], x->id);
        *cnt = 0;
        /* Every node that linked to x drops the link and is offered the
         * neighbourhood in its place. */
        while (in->n) {
            uint32_t pid = in->ids[--in->n];
            vnode *p = vs_node(s, pid);
            uint32_t *pc, *pids = vs_links(s, p, l, &pc);
            for (uint32_t j = 0; j < *pc; j++)
                if (pids[j] == x->id) {
                    memmove(pids + j, pids + j + 1, (size_t)(*pc - j - 1) * sizeof *pids);
                    (*pc)--;
                    break;
                }
            vcand *cc = npool <= sizeof c / sizeof *c ? c : vs_malloc((size_t)npool * sizeof *cc);
            if (cc) {
                refill(s, p, l, pool, npool, cc);
                if (cc != c) vs_free(cc);
            }
        }
        /* x's former neighbours each lost the link from x: each is offered
         * one from the nearest node of the pool instead (as an insert
         * offers back-links), so that they stay as reachable as they were;
         * one that still has none is attached by force. */
        for (uint32_t i = 0; i < nout; i++) {
            vnode *y = vs_node(s, pool[i]), *z = nearest_of(s, y, l, pool, npool);
            if (z) connect(s, z, y, l);
            if (y->in[l].n == 0 && y->id != s->entry) reattach(s, y, l, pool, npool);
        }
        if (pool != stackpool) vs_free(pool);
    }
}

/* ---- invariants ---------------------------------------------------------------- */

int hnsw_check(vset *s, char *err, size_t errlen) {
    uint64_t live = 0, per_level[VSET_MAX_LEVEL + 1] = {0};
    int top = -1;
    for (uint32_t id = 0; id < s->next_id; id++) {
        vnode *n = vs_node(s, id);
        if (!n) continue;
        live++;
        if (n->id != id) return snprintf(err, errlen, "node %u holds id %u", id, n->id), -1;
        per_level[n->level]++;
        if (n->level > top) top = n->level;
        for (int l = 0; l <= n->level; l++) {
            uint32_t *cnt, *ids = vs_links(s, n, l, &cnt);
            if (*cnt > (uint32_t)vs_cap(s, l))
                return snprintf(err, errlen, "node %u level %d: %u links over capacity", id, l, *cnt), -1;
            for (uint32_t i = 0; i < *cnt; i++) {
                vnode *y = vs_node(s, ids[i]);
                if (!y) return snprintf(err, errlen, "node %u level %d links to free id %u", id, l, ids[i]), -1;
                if (y == n) return snprintf(err, errlen, "node %u links to itself", id), -1;
                if (y->level < l)
                    return snprintf(err, errlen, "node %u level %d links to %u of level %d", id, l, y->id,
                                    y->level),
                           -1;
                for (uint32_t j = 0; j < i; j++)
                    if (ids[j] == ids[i])
                        return snprintf(err, errlen, "node %u level %d links twice to %u", id, l, ids[i]), -1;
                int back = 0;
                for (uint32_t j = 0; j < y->in[l].n; j++)
                    if (y->in[l].ids[j] == id) back++;
                if (back != 1)
                    return snprintf(err, errlen, "link %u -> %u level %d has %d reverse entries", id, y->id, l,
                                    back),
                           -1;
            }
            for (uint32_t j = 0; j < n->in[l].n; j++) {
                vnode *p = vs_node(s, n->in[l].ids[j]);
                uint32_t *pc;
                if (!p || p->level < l) return snprintf(err, errlen, "node %u: stale reverse link", id), -1;
                uint32_t *pids = vs_links(s, p, l, &pc);
                if (!in_list(pids, *pc, id))
                    return snprintf(err, errlen, "reverse link %u <- %u level %d has no forward link", id, p->id,
                                    l),
                           -1;
            }
        }
    }
    if (live != s->card) return snprintf(err, errlen, "%llu nodes, card %llu", (unsigned long long)live,
                                         (unsigned long long)s->card), -1;
    for (int l = 0; l <= VSET_MAX_LEVEL; l++)
        if (per_level[l] != s->level_count[l])
            return snprintf(err, errlen, "level %d: %llu nodes, count %llu", l, (unsigned long long)per_level[l],
                            (unsigned long long)s->level_count[l]),
                   -1;
    if (live == 0) {
        if (s->entry != VS_NO_NODE || s->max_level != -1) return snprintf(err, errlen, "empty set with an entry"), -1;
        return 0;
    }
    vnode *e = s->entry == VS_NO_NODE ? NULL : vs_node(s, s->entry);
    if (!e) return snprintf(err, errlen, "no entry point"), -1;
    if (e->level != top || s->max_level != top)
        return snprintf(err, errlen, "entry point on level %d, top level %d (recorded %d)", e->level, top,
                        s->max_level),
               -1;
    return 0;
}
