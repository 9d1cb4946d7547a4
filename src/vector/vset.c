/* vset.c - vector sets: the public API of libvset over the HNSW graph.
 *
 * What is here: creating and freeing sets, turning an input vector into
 * its stored form (random projection, L2 normalisation, quantization),
 * node memory, the id table and the name index, and the operations of
 * vset.h, each taking the lock its contract names (vset_impl.h).  The graph
 * algorithms are in hnsw.c, serialization in vserial.c. */
#include "vset_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vs_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *vset_quant_name(int quant) {
    switch (quant) {
    case VSET_Q8: return "int8";
    case VSET_BIN: return "bin";
    default: return "f32";
    }
}

const char *vset_kernels(void) { return vdist_best()->name; }

/* ---- random numbers --------------------------------------------------------- */

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* splitmix64 over an atomic counter: any thread may draw. */
static uint64_t next_rand(vset *s) {
    return mix64(__atomic_add_fetch(&s->rng, 0x9e3779b97f4a7c15ull, __ATOMIC_RELAXED));
}

static int draw_level(vset *s) {
    double u = ((double)(next_rand(s) >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double l = -log(u) * s->level_mult;
    return l >= VSET_MAX_LEVEL ? VSET_MAX_LEVEL : (int)l;
}

static uint64_t next_uid = 0; /* VINFO vset-uid: Redis counts from 0 */

/* ---- creation ---------------------------------------------------------------- */

static const char *key_of(void *ud, uint32_t id, size_t *len) {
    vnode *n = vs_node(ud, id);
    *len = n->name_len;
    return n->name;
}

static int init_locks(vset *s) {
    if (pthread_rwlock_init(&s->lock, NULL)) return -1;
    if (pthread_mutex_init(&s->ep_mu, NULL)) goto e1;
    if (pthread_mutex_init(&s->tab_mu, NULL)) goto e2;
    if (pthread_mutex_init(&s->vis_mu, NULL)) goto e3;
    return 0;
e3:
    pthread_mutex_destroy(&s->tab_mu);
e2:
    pthread_mutex_destroy(&s->ep_mu);
e1:
    pthread_rwlock_destroy(&s->lock);
    return -1;
}

/* The projection Redis 8 uses, so that a reduced set holds the same
 * numbers in both: row i, column j is +-1/sqrt(input dim), the sign the
 * parity of popcount(i & j) (rows of a Walsh-Hadamard matrix, which are
 * orthogonal, so distances shrink evenly). */
static void fill_projection(float *p, uint32_t rows, uint32_t cols) {
    float v = 1.0f / sqrtf((float)cols);
    for (uint32_t i = 0; i < rows; i++)
        for (uint32_t j = 0; j < cols; j++)
            p[(size_t)i * cols + j] = __builtin_parity(i & j) ? -v : v;
}

vset *vset_new(const vset_config *cfg, char *err, size_t errlen) {
    int m = cfg->m ? cfg->m : VSET_DEFAULT_M;
    if (cfg->dim == 0 || cfg->dim > VSET_MAX_DIM)
        return vs_fail(err, errlen, "ERR vector dimension must be between 1 and %d", VSET_MAX_DIM), NULL;
    if (cfg->reduce && cfg->reduce > cfg->dim)
        return vs_fail(err, errlen, "ERR invalid vector specification"), NULL;
    if (m < VSET_MIN_M || m > VSET_MAX_M) return vs_fail(err, errlen, "ERR invalid M"), NULL;
    if (cfg->quant != VSET_Q8 && cfg->quant != VSET_BIN && cfg->quant != VSET_NOQUANT)
        return vs_fail(err, errlen, "ERR unknown quantization"), NULL;
    vset *s = vs_calloc(1, sizeof *s);
    if (!s) return vs_fail(err, errlen, "ERR out of memory"), NULL;
    if (init_locks(s) < 0) {
        vs_free(s);
        return vs_fail(err, errlen, "ERR cannot create locks"), NULL;
    }
    s->in_dim = cfg->dim;
    s->reduce = cfg->reduce;
    s->dim = cfg->reduce ? cfg->reduce : cfg->dim;
    s->quant = cfg->quant;
    s->m = m;
    s->m0 = 2 * m;
    s->level_mult = 1.0 / log((double)m);
    s->words = (s->dim + 63) / 64;
    s->vbytes = s->quant == VSET_NOQUANT ? s->dim * 4 : s->quant == VSET_Q8 ? s->dim : s->words * 8;
    /* The vector after the level-0 links, 16-byte aligned for the kernels. */
    s->voff = (uint32_t)((sizeof(vnode) + (size_t)s->m0 * 4 + 15) & ~(size_t)15);
    s->rec_size = (uint32_t)(((size_t)s->voff + s->vbytes + 15) & ~(size_t)15);
    s->k = vdist_best();
    s->entry = VS_NO_NODE;
    s->max_level = -1;
    s->rng = cfg->seed;
    s->refs = 1;
    s->uid = __atomic_fetch_add(&next_uid, 1, __ATOMIC_RELAXED);
    vnames_init(&s->names, key_of, s);
    if (s->reduce) {
        size_t n = (size_t)s->reduce * s->in_dim;
        s->proj = vs_malloc(n * sizeof *s->proj);
        if (!s->proj) {
            vset_free(s);
            return vs_fail(err, errlen, "ERR out of memory"), NULL;
        }
        fill_projection(s->proj, s->reduce, s->in_dim);
    }
    return s;
}

/* Frees what hangs off a record (not the record). */
static void node_release(vset *s, vnode *n) {
    for (int l = 0; l <= n->level && n->in; l++) {
        if (n->in[l].ids) vs_mem_sub(s, n->in[l].ids, (size_t)n->in[l].cap * 4);
        vs_free(n->in[l].ids);
    }
    if (n->in) vs_mem_sub(s, n->in, (size_t)(n->level + 1) * sizeof *n->in);
    if (n->up) vs_mem_sub(s, n->up, (size_t)n->level * (s->m + 1) * 4);
    if (n->name) vs_mem_sub(s, n->name, n->name_len + 1);
    if (n->attr) vs_mem_sub(s, n->attr, n->attr_len + 1);
    vs_free(n->in);
    vs_free(n->up);
    vs_free(n->name);
    vs_free(n->attr);
    n->in = NULL;
    n->up = NULL;
    n->name = n->attr = NULL;
}

void vs_node_free(vset *s, vnode *n) {
    if (!n) return;
    node_release(s, n);
    vs_free(n);
}

void vset_retain(vset *s) { __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED); }

void vset_free(vset *s) {
    if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    for (uint32_t id = 0; id < s->next_id; id++) {
        vnode *n = vs_node(s, id);
        if (n) node_release(s, n);
    }
    for (vdir *d = s->dir, *older; d; d = older) {
        older = d->older;
        if (d == s->dir)
            for (uint32_t k = 0; k < d->cap; k++) vs_free(d->chunk[k]);
        vs_free(d);
    }
    vnames_clear(&s->names);
    hnsw_visit_free_all(s);
    vs_free(s->free_ids);
    vs_free(s->proj);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->ep_mu);
    pthread_mutex_destroy(&s->tab_mu);
    pthread_mutex_destroy(&s->vis_mu);
    vs_free(s);
}

uint64_t vset_card(const vset *s) { return __atomic_load_n(&s->card, __ATOMIC_RELAXED); }
uint32_t vset_dim(const vset *s) { return s->dim; }
uint32_t vset_input_dim(const vset *s) { return s->in_dim; }
uint32_t vset_reduce(const vset *s) { return s->reduce; }
int vset_quant(const vset *s) { return s->quant; }
int vset_m(const vset *s) { return s->m; }
int vset_max_level(const vset *s) { return __atomic_load_n(&s->max_level, __ATOMIC_RELAXED); }
uint64_t vset_uid(const vset *s) { return s->uid; }
uint64_t vset_max_node_uid(const vset *s) { return __atomic_load_n(&s->node_uid, __ATOMIC_RELAXED); }
uint32_t vset_id_bound(const vset *s) { return __atomic_load_n(&s->next_id, __ATOMIC_ACQUIRE); }
uint64_t vset_attr_count(const vset *s) { return __atomic_load_n(&s->attr_count, __ATOMIC_RELAXED); }

size_t vset_memory(const vset *s) {
    size_t b = sizeof *s + __atomic_load_n(&s->mem, __ATOMIC_RELAXED) + s->names.bytes;
    if (s->proj) b += (size_t)s->reduce * s->in_dim * sizeof(float);
    b += (size_t)s->free_cap * 4;
    return b;
}

/* ---- stored form ---------------------------------------------------------------- */

/* Projects (when the set reduces and in is not reduced already) and
 * normalises in into out[0..dim); returns the norm before normalisation. */
static float normalise(const vset *s, const float *in, int reduced, float *out) {
    if (s->proj && !reduced) {
        for (uint32_t r = 0; r < s->reduce; r++) {
            const float *row = s->proj + (size_t)r * s->in_dim;
            float acc = 0;
            for (uint32_t i = 0; i < s->in_dim; i++) acc += row[i] * in[i];
            out[r] = acc;
        }
    } else {
        memcpy(out, in, (size_t)s->dim * sizeof *out);
    }
    double ss = 0;
    for (uint32_t i = 0; i < s->dim; i++) ss += (double)out[i] * out[i];
    float l2 = (float)sqrt(ss);
    if (!(l2 > 0)) return 1.0f; /* an all-zero vector stays zero, norm 1 (as Redis) */
    float inv = 1.0f / l2;
    for (uint32_t i = 0; i < s->dim; i++) out[i] *= inv;
    return l2;
}

/* Writes the stored form of the normalised f[0..dim) into data; returns
 * the Q8 range (0 for the other forms). */
static float quantize(const vset *s, const float *f, void *data) {
    if (s->quant == VSET_NOQUANT) {
        memcpy(data, f, (size_t)s->dim * 4);
        return 0;
    }
    if (s->quant == VSET_Q8) {
        float range = 0;
        for (uint32_t i = 0; i < s->dim; i++) {
            float a = fabsf(f[i]);
            if (a > range) range = a;
        }
        int8_t *q = data;
        float scale = range > 0 ? 127.0f / range : 0;
        for (uint32_t i = 0; i < s->dim; i++) {
            float v = roundf(f[i] * scale);
            q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
        return range;
    }
    uint64_t *w = data;
    memset(w, 0, (size_t)s->words * 8);
    for (uint32_t i = 0; i < s->dim; i++)
        if (f[i] > 0) w[i / 64] |= 1ull << (i % 64);
    return 0;
}

/* Stored components back to normalised floats. */
static void dequantize(const vset *s, const vnode *n, float *out) {
    const void *v = vs_vec(s, n);
    if (s->quant == VSET_NOQUANT) {
        memcpy(out, v, (size_t)s->dim * 4);
    } else if (s->quant == VSET_Q8) {
        const int8_t *q = v;
        for (uint32_t i = 0; i < s->dim; i++) out[i] = (float)q[i] / 127.0f * n->range;
    } else {
        const uint64_t *w = v;
        for (uint32_t i = 0; i < s->dim; i++) out[i] = (w[i / 64] >> (i % 64)) & 1 ? 1.0f : -1.0f;
    }
}

/* Scratch floats: on the stack for common sizes. */
#define VS_STACK_DIM 2048

vnode *vs_node_alloc(vset *s, int level) {
    vnode *n = vs_malloc(s->rec_size);
    if (!n) return NULL;
    memset(n, 0, s->rec_size);
    n->id = VS_NO_NODE;
    n->level = (uint8_t)level;
    n->in = vs_calloc((size_t)level + 1, sizeof *n->in);
    if (level) n->up = vs_calloc((size_t)level * (s->m + 1), 4);
    if (!n->in || (level && !n->up)) {
        vs_free(n->in);
        vs_free(n->up);
        vs_free(n);
        return NULL;
    }
    vs_mem_add(s, n->in, (size_t)(level + 1) * sizeof *n->in);
    if (n->up) vs_mem_add(s, n->up, (size_t)level * (s->m + 1) * 4);
    return n;
}

int vs_node_name(vset *s, vnode *n, const char *name, size_t len) {
    n->name = vs_memdup(name, len);
    if (!n->name) return -1;
    n->name_len = (uint32_t)len;
    vs_mem_add(s, n->name, len + 1);
    return 0;
}

/* attr NULL or alen 0: none. */
int vs_node_attr(vset *s, vnode *n, const char *attr, size_t alen) {
    char *a = NULL;
    if (attr && alen) {
        a = vs_memdup(attr, alen);
        if (!a) return -1;
        vs_mem_add(s, a, alen + 1);
    }
    if (n->attr) vs_mem_sub(s, n->attr, n->attr_len + 1);
    vs_free(n->attr);
    n->attr = a;
    n->attr_len = a ? (uint32_t)alen : 0;
    return 0;
}

/* A node holding vec in stored form, not in the table yet. */
static vnode *node_from_vector(vset *s, const float *vec, int level) {
    float stackf[VS_STACK_DIM];
    float *f = s->dim <= VS_STACK_DIM ? stackf : vs_malloc((size_t)s->dim * sizeof *f);
    if (!f) return NULL;
    vnode *n = vs_node_alloc(s, level);
    if (n) {
        n->l2 = normalise(s, vec, 0, f);
        n->range = quantize(s, f, vs_vec(s, n));
    }
    if (f != stackf) vs_free(f);
    return n;
}

/* ---- the id table ------------------------------------------------------------------ */

/* Under tab_mu (or alone, loading).  Makes sure slot id has its chunk,
 * growing the directory when needed; -1 when out of memory. */
static int ensure_chunk(vset *s, uint32_t id) {
    uint32_t k, off;
    vs_slot(id, &k, &off);
    vdir *d = s->dir;
    if (!d || k >= d->cap) {
        uint32_t cap = d ? d->cap * 2 : 16;
        while (cap <= k) cap *= 2;
        vdir *nd = vs_calloc(1, sizeof *nd + (size_t)cap * sizeof(char *));
        if (!nd) return -1;
        vs_mem_add(s, nd, sizeof *nd + (size_t)cap * sizeof(char *));
        nd->cap = cap;
        nd->older = d;
        if (d) memcpy(nd->chunk, d->chunk, (size_t)d->cap * sizeof(char *));
        __atomic_store_n(&s->dir, nd, __ATOMIC_RELEASE);
        d = nd;
    }
    if (!d->chunk[k]) {
        size_t bytes = (size_t)vs_chunk_slots(k) * s->rec_size;
        char *c = vs_malloc(bytes);
        if (!c) return -1;
        vs_mem_add(s, c, bytes);
        for (uint32_t i = 0; i < vs_chunk_slots(k); i++) ((vnode *)(c + (size_t)i * s->rec_size))->id = VS_NO_NODE;
        __atomic_store_n(&d->chunk[k], c, __ATOMIC_RELEASE);
    }
    (void)off;
    return 0;
}

/* Under tab_mu.  A free slot for a new node; -1 when out of memory or
 * out of ids. */
static int64_t take_id(vset *s) {
    uint32_t id;
    int fresh = !s->nfree;
    if (!fresh) {
        id = s->free_ids[--s->nfree];
    } else {
        if (s->next_id >= (1u << 31)) return -1;
        id = s->next_id;
    }
    if (ensure_chunk(s, id) < 0) {
        if (!fresh) s->nfree++;
        return -1;
    }
    if (fresh) __atomic_store_n(&s->next_id, id + 1, __ATOMIC_RELEASE);
    return id;
}

static int give_back_id(vset *s, uint32_t id) {
    if (s->nfree == s->free_cap) {
        uint32_t nc = s->free_cap ? s->free_cap * 2 : 64;
        uint32_t *nv = vs_realloc(s->free_ids, (size_t)nc * sizeof *nv);
        if (!nv) return -1; /* the id is simply not reused */
        s->free_ids = nv;
        s->free_cap = nc;
    }
    s->free_ids[s->nfree++] = id;
    return 0;
}

/* Under tab_mu.  Moves the node record n into the free slot id, then
 * publishes it (its id written last) and indexes its name.  The slot, or
 * NULL when the name index is out of memory (n untouched then). */
static vnode *place(vset *s, vnode *n, uint32_t id) {
    vnode *slot = vs_rec(s, id);
    VS_ASSERT(slot && slot->id == VS_NO_NODE);
    memcpy(slot, n, s->rec_size);
    slot->id = VS_NO_NODE;
    __atomic_store_n(&slot->id, id, __ATOMIC_RELEASE);
    if (vnames_insert(&s->names, slot->name, slot->name_len, id) != 1) {
        __atomic_store_n(&slot->id, VS_NO_NODE, __ATOMIC_RELEASE);
        return NULL;
    }
    vs_free(n); /* the shell: what hangs off it now belongs to the slot */
    s->card++;
    s->node_uid++;
    if (slot->attr) s->attr_count++;
    return slot;
}

/* Registers the named node n under a fresh id.  1 with *out the node's
 * place in the set (n is consumed), 0 when the name exists (*dup gets its
 * id), -1 out of memory. */
static int table_insert(vset *s, vnode *n, vnode **out, int64_t *dup) {
    pthread_mutex_lock(&s->tab_mu);
    int64_t old = vnames_find(&s->names, n->name, n->name_len);
    if (old >= 0) {
        *dup = old;
        pthread_mutex_unlock(&s->tab_mu);
        return 0;
    }
    int64_t id = take_id(s);
    vnode *slot = id < 0 ? NULL : place(s, n, (uint32_t)id);
    if (id >= 0 && !slot) give_back_id(s, (uint32_t)id);
    pthread_mutex_unlock(&s->tab_mu);
    *out = slot;
    return slot ? 1 : -1;
}

/* Exclusive lock held: the node leaves the set, its slot becomes free. */
static void table_remove(vset *s, vnode *n) {
    pthread_mutex_lock(&s->tab_mu);
    uint32_t id = n->id;
    vnames_remove(&s->names, n->name, n->name_len);
    s->card--;
    if (n->attr) s->attr_count--;
    node_release(s, n);
    __atomic_store_n(&n->id, VS_NO_NODE, __ATOMIC_RELEASE);
    give_back_id(s, id);
    pthread_mutex_unlock(&s->tab_mu);
}

/* ---- elements ----------------------------------------------------------------------- */

int64_t vset_find(vset *s, const char *name, size_t len) {
    pthread_mutex_lock(&s->tab_mu);
    int64_t id = vnames_find(&s->names, name, len);
    pthread_mutex_unlock(&s->tab_mu);
    return id;
}

const char *vset_name(const vset *s, uint32_t id, size_t *len) {
    vnode *n = vs_node(s, id);
    *len = n ? n->name_len : 0;
    return n ? n->name : NULL;
}

const char *vset_attr(const vset *s, uint32_t id, size_t *len) {
    vnode *n = vs_node(s, id);
    *len = n && n->attr ? n->attr_len : 0;
    return n ? n->attr : NULL;
}

int vset_set_attr(vset *s, uint32_t id, const char *attr, size_t alen) {
    pthread_rwlock_wrlock(&s->lock);
    vnode *n = vs_node(s, id);
    int had = n && n->attr;
    int rc = n ? vs_node_attr(s, n, attr, alen) : -1;
    if (rc == 0) s->attr_count += (uint64_t)(n->attr != NULL) - (uint64_t)had;
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

static int check_vector(const vset *s, const float *vec, char *err, size_t errlen) {
    for (uint32_t i = 0; i < s->in_dim; i++)
        if (!isfinite(vec[i])) return vs_fail(err, errlen, "ERR vector components must be finite numbers");
    return 0;
}

int vset_add(vset *s, const float *vec, const char *name, size_t len, int ef_build, const char *attr,
             size_t alen, char *err, size_t errlen) {
    if (len > VSET_MAX_NAME) return vs_fail(err, errlen, "ERR element name too long");
    if (check_vector(s, vec, err, errlen) < 0) return -1;
    if (ef_build <= 0) ef_build = VSET_DEFAULT_EF_BUILD;
    int64_t id = vset_find(s, name, len);
    if (id >= 0) goto exists;
    vnode *n = node_from_vector(s, vec, draw_level(s));
    if (!n || vs_node_name(s, n, name, len) < 0 || (attr && vs_node_attr(s, n, attr, alen) < 0)) {
        vs_node_free(s, n);
        return vs_fail(err, errlen, "ERR out of memory");
    }
    pthread_rwlock_rdlock(&s->lock);
    vnode *slot;
    int rc = table_insert(s, n, &slot, &id);
    if (rc == 1) hnsw_link(s, slot, ef_build);
    pthread_rwlock_unlock(&s->lock);
    if (rc == 1) return 1;
    vs_node_free(s, n);
    if (rc < 0) return vs_fail(err, errlen, "ERR out of memory");
exists:
    if (attr && vset_set_attr(s, (uint32_t)id, attr, alen) < 0) return vs_fail(err, errlen, "ERR out of memory");
    return 0;
}

int vset_update(vset *s, uint32_t id, const float *vec, int ef_build, char *err, size_t errlen) {
    if (check_vector(s, vec, err, errlen) < 0) return -1;
    if (ef_build <= 0) ef_build = VSET_DEFAULT_EF_BUILD;
    float stackf[VS_STACK_DIM];
    float *f = s->dim <= VS_STACK_DIM ? stackf : vs_malloc((size_t)s->dim * sizeof *f);
    if (!f) return vs_fail(err, errlen, "ERR out of memory");
    pthread_rwlock_wrlock(&s->lock);
    vnode *n = vs_node(s, id);
    if (n) {
        hnsw_unlink(s, n);
        s->del_gen++;
        s->node_uid++;
        n->l2 = normalise(s, vec, 0, f);
        n->range = quantize(s, f, vs_vec(s, n));
        hnsw_link(s, n, ef_build);
    }
    pthread_rwlock_unlock(&s->lock);
    if (f != stackf) vs_free(f);
    return n ? 0 : vs_fail(err, errlen, "ERR no such element");
}

int vset_remove(vset *s, const char *name, size_t len) {
    pthread_rwlock_wrlock(&s->lock);
    int64_t id = vset_find(s, name, len);
    if (id < 0) {
        pthread_rwlock_unlock(&s->lock);
        return 0;
    }
    vnode *n = vs_node(s, (uint32_t)id);
    hnsw_unlink(s, n);
    table_remove(s, n);
    s->del_gen++;
    pthread_rwlock_unlock(&s->lock);
    return 1;
}

void vset_get_vector(const vset *s, uint32_t id, float *out) {
    vnode *n = vs_node(s, id);
    dequantize(s, n, out);
    if (s->quant == VSET_BIN) return; /* signs only: +-1, as Redis answers */
    for (uint32_t i = 0; i < s->dim; i++) out[i] *= n->l2;
}

void vset_get_raw(const vset *s, uint32_t id, const void **data, size_t *len, float *l2, float *range) {
    vnode *n = vs_node(s, id);
    *data = vs_vec(s, n);
    *len = s->vbytes;
    *l2 = n->l2;
    *range = n->range;
}

int vset_node_level(const vset *s, uint32_t id) {
    vnode *n = vs_node(s, id);
    return n ? n->level : -1;
}

void vset_links(vset *s, uint32_t id, vset_links_fn fn, void *ud) {
    vnode *n = vs_node(s, id);
    if (!n) return;
    uint32_t stackbuf[256];
    uint32_t *buf = s->m0 <= 256 ? stackbuf : vs_malloc((size_t)s->m0 * 4);
    if (!buf) return;
    for (int l = n->level; l >= 0; l--) {
        vs_spin_lock(&n->lk);
        uint32_t *cnt, *ids = vs_links(s, n, l, &cnt);
        uint32_t c = *cnt;
        memcpy(buf, ids, (size_t)c * 4);
        vs_spin_unlock(&n->lk);
        fn(ud, l, buf, c);
    }
    if (buf != stackbuf) vs_free(buf);
}

double vset_similarity(const vset *s, uint32_t a, uint32_t b) {
    vnode *x = vs_node(s, a), *y = vs_node(s, b);
    vq q;
    hnsw_node_query(s, x, &q);
    return 1.0 - hnsw_dist(s, &q, y) / 2.0;
}

int64_t vset_random(const vset *s, uint64_t rnd) {
    uint32_t end = __atomic_load_n(&s->next_id, __ATOMIC_ACQUIRE);
    if (!vset_card(s) || !end) return -1;
    for (int i = 0; i < 32; i++) {
        uint32_t id = (uint32_t)(mix64(rnd + (uint64_t)i * 0x9e3779b97f4a7c15ull) % end);
        if (vs_node(s, id)) return id;
    }
    /* A sparse table: walk on from a random slot. */
    uint32_t start = (uint32_t)(rnd % end);
    for (uint32_t i = 0; i < end; i++) {
        uint32_t id = (start + i) % end;
        if (vs_node(s, id)) return id;
    }
    return -1;
}

void vset_range(vset *s, const char *start, size_t slen, int excl, vset_each_fn fn, void *ud) {
    pthread_mutex_lock(&s->tab_mu);
    vnames_walk(&s->names, start, slen, excl, fn, ud);
    pthread_mutex_unlock(&s->tab_mu);
}

/* ---- search ------------------------------------------------------------------------- */

void vset_hits_free(vset_hit *hits, int n) {
    for (int i = 0; i < n; i++) {
        vs_free(hits[i].name);
        vs_free(hits[i].attr);
        hits[i].name = hits[i].attr = NULL;
    }
}

/* Shared lock held: the names and attributes are stable. */
static int copy_hits(const vset *s, vset_hit *hits, int n) {
    for (int i = 0; i < n; i++) hits[i].name = hits[i].attr = NULL;
    for (int i = 0; i < n; i++) {
        vnode *x = vs_node(s, hits[i].id);
        hits[i].name = vs_memdup(x->name, x->name_len);
        hits[i].name_len = x->name_len;
        if (x->attr) hits[i].attr = vs_memdup(x->attr, x->attr_len);
        hits[i].attr_len = x->attr ? x->attr_len : 0;
        if (!hits[i].name || (x->attr && !hits[i].attr)) {
            vset_hits_free(hits, i + 1);
            return -1;
        }
    }
    return 0;
}

int vset_search(vset *s, const vset_query *q, vset_hit *hits) {
    float stackf[VS_STACK_DIM];
    uint64_t stackd[VS_STACK_DIM / 2];
    float *f = stackf;
    void *data = stackd;
    int rc = -1;
    if (s->dim > VS_STACK_DIM) {
        f = vs_malloc((size_t)s->dim * sizeof *f);
        data = vs_malloc(s->vbytes);
        if (!f || !data) goto out;
    }
    vq query = {f, data, 0};
    pthread_rwlock_rdlock(&s->lock);
    if (q->ele >= 0) {
        vnode *n = vs_node(s, (uint32_t)q->ele);
        if (!n) {
            pthread_rwlock_unlock(&s->lock);
            rc = 0;
            goto out;
        }
        dequantize(s, n, f);
        memcpy(data, vs_vec(s, n), s->vbytes);
        query.range = n->range;
    } else {
        normalise(s, q->vec, q->reduced, f);
        query.range = quantize(s, f, data);
    }
    rc = q->truth ? hnsw_scan(s, &query, q, hits) : hnsw_search(s, &query, q, hits);
    if (rc > 0 && q->copy && copy_hits(s, hits, rc) < 0) rc = -1;
    pthread_rwlock_unlock(&s->lock);
out:
    if (f != stackf) vs_free(f);
    if (data != (void *)stackd) vs_free(data);
    return rc;
}

/* ---- CAS ------------------------------------------------------------------------------ */

struct vset_prep {
    vset *s;
    vnode *n;
    int top_seen;
    uint64_t del_gen;
    int ef;
    vlevel_cands cands[VSET_MAX_LEVEL + 1];
};

void vset_prep_free(vset_prep *p) {
    if (!p) return;
    for (int l = 0; l <= VSET_MAX_LEVEL; l++) vs_free(p->cands[l].c);
    vs_node_free(p->s, p->n);
    vs_free(p);
}

vset_prep *vset_prepare(vset *s, const float *vec, int ef_build, char *err, size_t errlen) {
    if (check_vector(s, vec, err, errlen) < 0) return NULL;
    vset_prep *p = vs_calloc(1, sizeof *p);
    if (!p) return vs_fail(err, errlen, "ERR out of memory"), NULL;
    p->s = s;
    p->ef = ef_build > 0 ? ef_build : VSET_DEFAULT_EF_BUILD;
    p->n = node_from_vector(s, vec, draw_level(s));
    if (!p->n) {
        vset_prep_free(p);
        return vs_fail(err, errlen, "ERR out of memory"), NULL;
    }
    vq q;
    hnsw_node_query(s, p->n, &q);
    pthread_rwlock_rdlock(&s->lock);
    p->del_gen = __atomic_load_n(&s->del_gen, __ATOMIC_ACQUIRE);
    p->top_seen = hnsw_collect(s, &q, p->n->level, p->ef, p->cands);
    pthread_rwlock_unlock(&s->lock);
    if (p->top_seen == -2) {
        vset_prep_free(p);
        return vs_fail(err, errlen, "ERR out of memory"), NULL;
    }
    return p;
}

int vset_commit(vset *s, vset_prep *p, const char *name, size_t len, const char *attr, size_t alen, char *err,
                size_t errlen) {
    int64_t id = -1;
    int rc = 0;
    if (p->s != s) {
        vset_prep_free(p);
        return vs_fail(err, errlen, "ERR prepared for another set");
    }
    if (len > VSET_MAX_NAME) {
        vset_prep_free(p);
        return vs_fail(err, errlen, "ERR element name too long");
    }
    vnode *n = p->n;
    if (vs_node_name(s, n, name, len) < 0 || (attr && vs_node_attr(s, n, attr, alen) < 0)) {
        vset_prep_free(p);
        return vs_fail(err, errlen, "ERR out of memory");
    }
    pthread_rwlock_rdlock(&s->lock);
    vnode *slot;
    rc = table_insert(s, n, &slot, &id);
    if (rc == 1) {
        p->n = NULL;
        if (p->del_gen == __atomic_load_n(&s->del_gen, __ATOMIC_ACQUIRE))
            hnsw_link_with(s, slot, p->ef, p->cands, p->top_seen);
        else
            hnsw_link(s, slot, p->ef);
    }
    pthread_rwlock_unlock(&s->lock);
    vset_prep_free(p);
    if (rc < 0) return vs_fail(err, errlen, "ERR out of memory");
    if (rc == 0 && attr && vset_set_attr(s, (uint32_t)id, attr, alen) < 0)
        return vs_fail(err, errlen, "ERR out of memory");
    return rc;
}

/* ---- copies and checks -------------------------------------------------------------------- */

typedef struct membuf {
    char *p;
    size_t len, cap, pos;
} membuf;

static int mem_write(void *ud, const void *p, size_t n) {
    membuf *b = ud;
    if (b->len + n > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n) nc *= 2;
        char *np = vs_realloc(b->p, nc);
        if (!np) return -1;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static int mem_read(void *ud, void *p, size_t n) {
    membuf *b = ud;
    if (n > b->len - b->pos) return -1;
    memcpy(p, b->p + b->pos, n);
    b->pos += n;
    return 0;
}

vset *vset_dup(const vset *s) {
    membuf b = {0};
    vset *d = NULL;
    char err[128];
    if (vset_save(s, mem_write, &b) == 0) d = vset_load(mem_read, &b, err, sizeof err);
    vs_free(b.p);
    return d;
}

int vset_check(vset *s, char *err, size_t errlen) {
    pthread_rwlock_wrlock(&s->lock);
    int rc = hnsw_check(s, err, errlen);
    if (rc == 0) {
        for (uint32_t id = 0; id < s->next_id && rc == 0; id++) {
            vnode *n = vs_node(s, id);
            if (n && vnames_find(&s->names, n->name, n->name_len) != (int64_t)id)
                rc = vs_fail(err, errlen, "node %u: its name does not lead back to it", id);
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

/* ---- loading (vserial.c) ------------------------------------------------------------------ */

vnode *vs_load_place(vset *s, vnode *n, uint32_t id) {
    if (ensure_chunk(s, id) < 0 || vs_node(s, id)) return NULL;
    vnode *slot = place(s, n, id);
    if (!slot) return NULL;
    if (id >= s->next_id) s->next_id = id + 1;
    s->level_count[slot->level]++;
    return slot;
}

int vs_load_finish(vset *s) {
    for (uint32_t id = 0; id < s->next_id; id++)
        if (!vs_node(s, id) && give_back_id(s, id) < 0) return -1;
    /* Handed out in ascending order after a load. */
    for (uint32_t i = 0, j = s->nfree ? s->nfree - 1 : 0; i < j; i++, j--) {
        uint32_t t = s->free_ids[i];
        s->free_ids[i] = s->free_ids[j];
        s->free_ids[j] = t;
    }
    return 0;
}
