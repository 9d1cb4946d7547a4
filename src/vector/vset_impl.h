/* vset_impl.h - internal to libvset: the set and node layout shared by
 * vset.c (API, quantization, names), hnsw.c (the graph) and vserial.c
 * (save and load).
 *
 * Node records (header, level-0 links, then the stored vector, one fixed
 * size per set) live in chunks that never move: chunk k holds 8 << k
 * records up to 4096, then 4096 each, so a small set costs a few records
 * and a large one wastes at most part of one chunk.  An id maps to its
 * record by arithmetic, with no pointer to chase in the search loop (as
 * hnswlib's flat level-0 array, but growable).  The directory of chunk
 * addresses grows by copying; older copies stay until the set is freed, so
 * a reader on another thread never reads a freed directory.  A record's
 * upper-level links, reverse-link lists, name and attributes hang off it.
 *
 * Links are directed, as in the HNSW paper; every node also keeps, per
 * level, the list of nodes that link to it (reverse links), which is what
 * lets a deletion find and relink every node that pointed at the deleted
 * one instead of leaving a tombstone.
 *
 * Locking (see vset.h for the contract):
 *   lock   rwlock: shared for searches and inserts, exclusive for the
 *          owner's deletions, replacements and frees;
 *   n->lk  spin lock of a node's forward links (all levels);
 *   n->ilk spin lock of a node's reverse links.
 *   tab_mu id allocation, chunk allocation, the name index, card.
 *   ep_mu  entry point and top level.
 * Order: lock, then ep_mu, then at most one lk, then at most one ilk, then
 * tab_mu; never a second lk while holding one.  Forward-link counts and ids
 * are written with release stores and read with acquire loads, so a search
 * that races an insert sees an old or a new list, each id a live node (no
 * node is freed while anyone holds the shared lock). */
#ifndef INFERKV_VSET_IMPL_H
#define INFERKV_VSET_IMPL_H

#include "vdist.h"
#include "vmem.h"
#include "vnames.h"
#include "vset.h"

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#define VS_SMALL 10          /* chunks 0..9 hold 8, 16, ..., 4096 records */
#define VS_SMALL_TOTAL 8184u /* records in those */
#define VS_BIG 4096u         /* records in each later chunk */
#define VS_NO_NODE UINT32_MAX

/* Invariants the code relies on, checked in debug and sanitizer builds. */
#if defined(INFERKV_DEBUG) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VS_ASSERT(c) assert(c)
#else
#define VS_ASSERT(c) ((void)0)
#endif

typedef struct vinl { /* reverse links of one level */
    uint32_t n, cap;
    uint32_t *ids;
} vinl;

typedef struct vnode {
    uint32_t id;     /* its own id while live, VS_NO_NODE in a free slot */
    uint8_t level;
    uint8_t lk, ilk; /* spin locks, through __atomic builtins */
    uint8_t unused;
    float l2;        /* norm of the (projected) input before normalisation */
    float range;     /* Q8: stored int8 v stands for v / 127 * range */
    uint32_t name_len, attr_len;
    char *name;      /* NUL-terminated copy */
    char *attr;      /* NULL when none */
    uint32_t *up;    /* levels 1..level, each [count, m ids] */
    vinl *in;        /* reverse links, levels 0..level */
    uint32_t n0;     /* level-0 link count */
    uint32_t links[]; /* m0 level-0 ids, then the stored vector */
} vnode;

typedef struct vdir {
    uint32_t cap;
    struct vdir *older; /* the copies this one replaced */
    char *chunk[];
} vdir;

typedef struct vcand {
    float d;
    uint32_t id;
} vcand;

typedef struct vheap {
    vcand *v;
    uint32_t n, cap;
} vheap;

/* One search's working memory, pooled per set so that a search allocates
 * nothing once warm: visited marks (a 16-bit epoch per id), the candidate
 * and result heaps, and a copy of the links being expanded. */
typedef struct vvisit {
    uint16_t *tag;
    uint32_t cap;
    uint16_t epoch;
    vheap cand, top, res;
    uint32_t *nb;
    struct vnode **nodes;
    vcand *tmp;
    uint32_t tmp_cap;
    struct vvisit *next;
} vvisit;

struct vset {
    /* fixed at creation */
    uint32_t in_dim, dim, reduce;
    int quant;
    int m, m0;
    double level_mult;
    uint32_t vbytes;  /* stored vector bytes */
    uint32_t voff;    /* where a node's vector starts */
    uint32_t words;   /* BIN: 64-bit words per vector */
    float *proj;      /* reduce x in_dim, row-major; NULL without REDUCE */
    uint64_t uid;
    const vdist_kernels *k;
    int refs; /* atomic */

    pthread_rwlock_t lock;
    pthread_mutex_t ep_mu;
    uint32_t entry;   /* VS_NO_NODE when empty (atomic) */
    int max_level;    /* -1 when empty (atomic) */

    pthread_mutex_t tab_mu;
    vdir *dir;        /* atomic pointer loads */
    uint32_t rec_size;
    uint32_t next_id; /* every id is below it */
    uint32_t *free_ids;
    uint32_t nfree, free_cap;
    uint64_t card;
    uint64_t node_uid;   /* inserts so far, updates included (VINFO) */
    uint64_t attr_count; /* elements with attributes */
    vnames names;

    pthread_mutex_t vis_mu;
    vvisit *vis_pool;

    uint64_t rng;     /* level draws (atomic) */
    uint64_t level_count[VSET_MAX_LEVEL + 1]; /* nodes per top level (atomic) */
    uint64_t del_gen; /* deletions so far: invalidates CAS candidates */
    size_t mem;       /* bytes held (atomic) */
};

static inline uint32_t vs_chunk_slots(uint32_t k) { return k < VS_SMALL ? 8u << k : VS_BIG; }

static inline void vs_slot(uint32_t id, uint32_t *k, uint32_t *off) {
    if (id < VS_SMALL_TOTAL) {
        uint32_t x = id + 8, b = 31u - (uint32_t)__builtin_clz(x); /* b >= 3 */
        *k = b - 3;
        *off = x - (1u << b);
    } else {
        uint32_t r = id - VS_SMALL_TOTAL;
        *k = VS_SMALL + r / VS_BIG;
        *off = r % VS_BIG;
    }
}

/* The record of slot id, live or free; NULL when its chunk does not
 * exist.  Links only ever name live nodes, so the search loop uses this
 * directly; everything else asks vs_node. */
static inline vnode *vs_rec(const vset *s, uint32_t id) {
    uint32_t k, off;
    vs_slot(id, &k, &off);
    vdir *d = __atomic_load_n(&s->dir, __ATOMIC_ACQUIRE);
    if (!d || k >= d->cap) return NULL;
    char *c = __atomic_load_n(&d->chunk[k], __ATOMIC_ACQUIRE);
    return c ? (vnode *)(c + (size_t)off * s->rec_size) : NULL;
}

/* The live node id, or NULL. */
static inline vnode *vs_node(const vset *s, uint32_t id) {
    vnode *n = vs_rec(s, id);
    return n && __atomic_load_n(&n->id, __ATOMIC_ACQUIRE) == id ? n : NULL;
}

static inline void *vs_vec(const vset *s, const vnode *n) {
    return (char *)n + s->voff;
}

static inline uint32_t *vs_links(const vset *s, vnode *n, int level, uint32_t **count) {
    if (level == 0) {
        *count = &n->n0;
        return n->links;
    }
    uint32_t *b = n->up + (size_t)(level - 1) * (uint32_t)(s->m + 1);
    *count = b;
    return b + 1;
}

static inline int vs_cap(const vset *s, int level) { return level == 0 ? s->m0 : s->m; }

/* A node lock is held for a few hundred nanoseconds; spinning beats a
 * mutex then.  But a holder may be preempted (more threads than cores, or
 * a busy machine), and spinning on would burn its time slice: after a
 * while the waiter yields the CPU. */
static inline void vs_spin_lock(uint8_t *l) {
    for (unsigned spins = 0; __atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE);)
        while (__atomic_load_n(l, __ATOMIC_RELAXED)) {
            if (++spins < 128) __builtin_ia32_pause();
            else sched_yield();
        }
}
static inline void vs_spin_unlock(uint8_t *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

static inline void vs_mem_add(vset *s, void *p, size_t asked) {
    size_t u = vs_usable(p);
    __atomic_add_fetch(&s->mem, u ? u : asked, __ATOMIC_RELAXED);
}
static inline void vs_mem_sub(vset *s, void *p, size_t asked) {
    size_t u = vs_usable(p);
    __atomic_sub_fetch(&s->mem, u ? u : asked, __ATOMIC_RELAXED);
}
/* A query in the set's stored form (and, for re-scoring, as floats). */
typedef struct vq {
    const float *f;     /* normalised floats, or NULL */
    const void *data;   /* same layout as a node's stored vector */
    float range;        /* Q8 */
} vq;

/* ---- vset.c, for vserial.c --------------------------------------------------- */

/* Formats an error line into err; returns -1. */
int vs_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A node of the given level with no name, vector or links yet, outside
 * the set (a record of its own, until placed). */
vnode *vs_node_alloc(vset *s, int level);
int vs_node_name(vset *s, vnode *n, const char *name, size_t len);
int vs_node_attr(vset *s, vnode *n, const char *attr, size_t alen); /* alen 0: none */
/* Frees a node made by vs_node_alloc and not placed. */
void vs_node_free(vset *s, vnode *n);
/* Moves a loaded node into slot id (a free slot, a name not yet used):
 * the slot's record, or NULL (n is then still the caller's). */
vnode *vs_load_place(vset *s, vnode *n, uint32_t id);
/* After every node is placed: the free-id list. */
int vs_load_finish(vset *s);

/* ---- hnsw.c ---------------------------------------------------------------- */

/* Distance (1 - cosine, in [0, 2]) between a query and a node. */
float hnsw_dist(const vset *s, const vq *q, const vnode *n);
/* The query form of a stored node. */
void hnsw_node_query(const vset *s, const vnode *n, vq *q);

/* Links node n (already in the table, not yet reachable) into the graph.
 * Caller holds the shared lock. */
void hnsw_link(vset *s, vnode *n, int ef);
/* Candidate lists for a node not in the graph, for CAS: *out[l] holds up
 * to ef candidates of level l (0..min(level, top)), sorted nearest first.
 * Returns the top level the lists were computed against, or -2 when out
 * of memory. */
typedef struct vlevel_cands {
    vcand *c;
    uint32_t n;
} vlevel_cands;
int hnsw_collect(vset *s, const vq *q, int level, int ef, vlevel_cands *out);
/* Links n from candidates hnsw_collect found against top level top_seen,
 * searching only the levels they do not cover.  Caller holds the shared
 * lock, and no node was deleted since the collection. */
void hnsw_link_with(vset *s, vnode *n, int ef, vlevel_cands *cands, int top_seen);
/* Removes n from the graph, relinking every node that linked to it.
 * Caller holds the exclusive lock.  n stays in the table. */
void hnsw_unlink(vset *s, vnode *n);
/* The best opt->count hits for q (caller holds the shared lock), best
 * first, similarities from q->f when given (re-scoring Q8); returns how
 * many, or -1 when out of memory. */
int hnsw_search(vset *s, const vq *q, const vset_query *opt, vset_hit *hits);
/* The same by a scan of every node (TRUTH). */
int hnsw_scan(vset *s, const vq *q, const vset_query *opt, vset_hit *hits);
vvisit *hnsw_visit_get(vset *s);
void hnsw_visit_put(vset *s, vvisit *w);
void hnsw_visit_free_all(vset *s);
int hnsw_check(vset *s, char *err, size_t errlen);
/* Reverse-link list helpers (caller holds the node's ilk or the exclusive
 * lock): 0 / -1 on OOM. */
int vinl_add(vset *s, vinl *l, uint32_t id);
void vinl_del(vinl *l, uint32_t id);

#endif
