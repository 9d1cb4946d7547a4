/* vserial.c - a vector set as bytes and back (RDB records, module RDB
 * callbacks, copies).
 *
 * The graph is written as it is, node by node with its links, so loading
 * costs a read, not a rebuild (rebuilding a million-node HNSW takes
 * minutes).  The reader trusts nothing: every count, id, level, length
 * and float is checked, links are checked against the nodes once all are
 * read, and the reverse links are rebuilt from the forward ones rather
 * than read, so a file cannot make them disagree.
 *
 * Layout (little-endian throughout), version 1:
 *   "VSET" u32 version
 *   u32 input_dim  u32 reduce  u8 quant  u32 m
 *   u64 rng  u64 node_uid  u32 id_bound  u64 count  u32 entry  i32 max_level
 *   count x node:
 *     u32 id  u8 level  f32 l2  f32 range
 *     u32 name_len  name  u32 attr_len + 1 (0: none)  attr
 *     stored vector (dim x f32 | dim x i8 | ceil(dim / 64) x u64)
 *     for each level 0..level: u32 n  n x u32 id
 *   "VEND"
 * The projection matrix is a function of the dimensions (vset.c), so it
 * is not written. */
#include "vset_impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define VSER_VERSION 1u

/* ---- writing ---------------------------------------------------------------- */

typedef struct wr {
    vset_write_fn w;
    void *ud;
    int rc;
} wr;

static void put(wr *o, const void *p, size_t n) {
    if (!o->rc && n) o->rc = o->w(o->ud, p, n);
}
static void put_u8(wr *o, uint8_t v) { put(o, &v, 1); }
static void put_u32(wr *o, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(o, b, 4);
}
static void put_u64(wr *o, uint64_t v) {
    put_u32(o, (uint32_t)v);
    put_u32(o, (uint32_t)(v >> 32));
}
static void put_f32(wr *o, float f) {
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(o, v);
}

/* The stored vector in little-endian form (x86 is already). */
static void put_vector(wr *o, const vset *s, const vnode *n) {
    const unsigned char *v = vs_vec(s, n);
    if (s->quant == VSET_Q8) {
        put(o, v, s->dim);
        return;
    }
    if (s->quant == VSET_NOQUANT) {
        for (uint32_t i = 0; i < s->dim; i++) {
            float f;
            memcpy(&f, v + 4 * i, 4);
            put_f32(o, f);
        }
        return;
    }
    for (uint32_t i = 0; i < s->words; i++) {
        uint64_t w;
        memcpy(&w, v + 8 * i, 8);
        put_u64(o, w);
    }
}

int vset_save(const vset *s, vset_write_fn w, void *ud) {
    wr o = {w, ud, 0};
    put(&o, "VSET", 4);
    put_u32(&o, VSER_VERSION);
    put_u32(&o, s->in_dim);
    put_u32(&o, s->reduce);
    put_u8(&o, (uint8_t)s->quant);
    put_u32(&o, (uint32_t)s->m);
    put_u64(&o, s->rng);
    put_u64(&o, s->node_uid);
    put_u32(&o, s->next_id);
    put_u64(&o, s->card);
    put_u32(&o, s->entry);
    put_u32(&o, (uint32_t)s->max_level);
    for (uint32_t id = 0; id < s->next_id && !o.rc; id++) {
        vnode *n = vs_node(s, id);
        if (!n) continue;
        put_u32(&o, id);
        put_u8(&o, n->level);
        put_f32(&o, n->l2);
        put_f32(&o, n->range);
        put_u32(&o, n->name_len);
        put(&o, n->name, n->name_len);
        put_u32(&o, n->attr ? n->attr_len + 1 : 0);
        if (n->attr) put(&o, n->attr, n->attr_len);
        put_vector(&o, s, n);
        for (int l = 0; l <= n->level; l++) {
            uint32_t *cnt, *ids = vs_links(s, n, l, &cnt);
            put_u32(&o, *cnt);
            for (uint32_t i = 0; i < *cnt; i++) put_u32(&o, ids[i]);
        }
    }
    put(&o, "VEND", 4);
    return o.rc;
}

/* ---- reading ---------------------------------------------------------------- */

typedef struct rd {
    vset_read_fn r;
    void *ud;
    int rc;
} rd;

static void get(rd *in, void *p, size_t n) {
    if (in->rc) {
        memset(p, 0, n);
        return;
    }
    if (n && in->r(in->ud, p, n)) {
        in->rc = -1;
        memset(p, 0, n);
    }
}
static uint8_t get_u8(rd *in) {
    uint8_t v;
    get(in, &v, 1);
    return v;
}
static uint32_t get_u32(rd *in) {
    uint8_t b[4];
    get(in, b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t get_u64(rd *in) {
    uint64_t lo = get_u32(in);
    return lo | (uint64_t)get_u32(in) << 32;
}
static float get_f32(rd *in) {
    uint32_t v = get_u32(in);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

/* len bytes into a fresh NUL-terminated buffer, grown as the bytes arrive
 * so that a hostile length cannot make us allocate more than the input
 * really holds (plus one step). */
static char *get_bytes(rd *in, size_t len) {
    size_t cap = len < 65536 ? len : 65536, have = 0;
    char *b = vs_malloc(cap + 1);
    while (b && have < len && !in->rc) {
        size_t step = len - have < 65536 ? len - have : 65536;
        if (have + step > cap) {
            size_t nc = cap * 2 > have + step ? cap * 2 : have + step;
            if (nc > len) nc = len;
            char *nb = vs_realloc(b, nc + 1);
            if (!nb) break;
            b = nb;
            cap = nc;
        }
        get(in, b + have, step);
        have += step;
    }
    if (!b || have < len || in->rc) {
        vs_free(b);
        return NULL;
    }
    b[len] = 0;
    return b;
}

static int read_vector(rd *in, vset *s, vnode *n) {
    unsigned char *v = vs_vec(s, n);
    if (s->quant == VSET_Q8) {
        get(in, v, s->dim);
        for (uint32_t i = 0; i < s->dim; i++)
            if ((int8_t)v[i] == -128) return -1; /* never written: components are within +-127 */
        return 0;
    }
    if (s->quant == VSET_NOQUANT) {
        for (uint32_t i = 0; i < s->dim; i++) {
            float f = get_f32(in);
            if (!isfinite(f)) return -1;
            memcpy(v + 4 * i, &f, 4);
        }
        return 0;
    }
    for (uint32_t i = 0; i < s->words; i++) {
        uint64_t w = get_u64(in);
        memcpy(v + 8 * i, &w, 8);
    }
    uint32_t tail = s->dim % 64;
    if (tail) {
        uint64_t last;
        memcpy(&last, v + 8 * (s->words - 1), 8);
        if (last >> tail) return -1; /* bits past the dimension are always zero */
    }
    return 0;
}

/* Reads one node; NULL with err on bad input. */
static vnode *read_node(rd *in, vset *s, uint32_t bound, char *err, size_t errlen) {
    uint32_t id = get_u32(in);
    uint8_t level = get_u8(in);
    float l2 = get_f32(in), range = get_f32(in);
    if (in->rc) return vs_fail(err, errlen, "truncated"), NULL;
    if (id >= bound) return vs_fail(err, errlen, "node id %u past the id bound %u", id, bound), NULL;
    if (level > VSET_MAX_LEVEL) return vs_fail(err, errlen, "node %u: level %u", id, level), NULL;
    if (!isfinite(l2) || !isfinite(range) || range < 0 || l2 < 0)
        return vs_fail(err, errlen, "node %u: bad norm or range", id), NULL;
    vnode *n = vs_node_alloc(s, level);
    if (!n) return vs_fail(err, errlen, "out of memory"), NULL;
    n->l2 = l2;
    n->range = s->quant == VSET_Q8 ? range : 0;
    n->id = id;
    uint32_t nlen = get_u32(in);
    char *name = nlen <= VSET_MAX_NAME ? get_bytes(in, nlen) : NULL;
    if (!name) {
        vs_node_free(s, n);
        return vs_fail(err, errlen, "node %u: bad name", id), NULL;
    }
    n->name = name;
    n->name_len = nlen;
    vs_mem_add(s, name, (size_t)nlen + 1);
    uint32_t alen1 = get_u32(in);
    if (alen1) {
        char *a = alen1 - 1 <= VSET_MAX_NAME ? get_bytes(in, alen1 - 1) : NULL;
        if (!a) {
            vs_node_free(s, n);
            return vs_fail(err, errlen, "node %u: bad attributes", id), NULL;
        }
        if (alen1 - 1 == 0) {
            vs_free(a); /* an empty attribute is no attribute */
        } else {
            n->attr = a;
            n->attr_len = alen1 - 1;
            vs_mem_add(s, a, alen1);
        }
    }
    if (read_vector(in, s, n) < 0 || in->rc) {
        vs_node_free(s, n);
        return vs_fail(err, errlen, "node %u: bad vector", id), NULL;
    }
    for (int l = 0; l <= level; l++) {
        uint32_t c = get_u32(in), *cnt, *ids = vs_links(s, n, l, &cnt);
        if (in->rc || c > (uint32_t)vs_cap(s, l)) {
            vs_node_free(s, n);
            return vs_fail(err, errlen, "node %u level %d: %u links", id, l, c), NULL;
        }
        for (uint32_t i = 0; i < c; i++) ids[i] = get_u32(in);
        *cnt = c;
    }
    if (in->rc) {
        vs_node_free(s, n);
        return vs_fail(err, errlen, "truncated"), NULL;
    }
    return n;
}

/* Every link of every node: to a live node of a high enough level, not to
 * itself, not twice; then the reverse links. */
static int link_pass(vset *s, char *err, size_t errlen) {
    for (uint32_t id = 0; id < s->next_id; id++) {
        vnode *n = vs_node(s, id);
        if (!n) continue;
        for (int l = 0; l <= n->level; l++) {
            uint32_t *cnt, *ids = vs_links(s, n, l, &cnt);
            for (uint32_t i = 0; i < *cnt; i++) {
                vnode *y = ids[i] < s->next_id ? vs_node(s, ids[i]) : NULL;
                if (!y || y == n || y->level < l)
                    return vs_fail(err, errlen, "node %u level %d: bad link to %u", id, l, ids[i]);
                for (uint32_t j = 0; j < i; j++)
                    if (ids[j] == ids[i]) return vs_fail(err, errlen, "node %u level %d: duplicate link", id, l);
                if (vinl_add(s, &y->in[l], id) < 0) return vs_fail(err, errlen, "out of memory");
            }
        }
    }
    return 0;
}

vset *vset_load(vset_read_fn r, void *ud, char *err, size_t errlen) {
    rd in = {r, ud, 0};
    char magic[4];
    get(&in, magic, 4);
    uint32_t version = get_u32(&in);
    if (in.rc || memcmp(magic, "VSET", 4) != 0) return vs_fail(err, errlen, "ERR vector set data: bad header"), NULL;
    if (version != VSER_VERSION)
        return vs_fail(err, errlen, "ERR vector set data: version %u not supported", version), NULL;
    vset_config cfg = {0};
    cfg.dim = get_u32(&in);
    cfg.reduce = get_u32(&in);
    cfg.quant = get_u8(&in);
    uint32_t m = get_u32(&in);
    uint64_t rng = get_u64(&in), node_uid = get_u64(&in);
    uint32_t bound = get_u32(&in);
    uint64_t count = get_u64(&in);
    uint32_t entry = get_u32(&in);
    int32_t max_level = (int32_t)get_u32(&in);
    if (in.rc) return vs_fail(err, errlen, "ERR vector set data: truncated header"), NULL;
    if (m < VSET_MIN_M || m > VSET_MAX_M) return vs_fail(err, errlen, "ERR vector set data: M %u", m), NULL;
    cfg.m = (int)m;
    char why[160];
    vset *s = vset_new(&cfg, why, sizeof why);
    if (!s) return vs_fail(err, errlen, "ERR vector set data: %s", why), NULL;
    s->rng = rng;
    s->node_uid = node_uid;
    if (bound > (1u << 31) || count > bound) {
        vs_fail(err, errlen, "ERR vector set data: %llu nodes under id bound %u", (unsigned long long)count, bound);
        goto bad;
    }
    for (uint64_t i = 0; i < count; i++) {
        vnode *n = read_node(&in, s, bound, why, sizeof why);
        if (!n) {
            vs_fail(err, errlen, "ERR vector set data: %s", why);
            goto bad;
        }
        uint32_t id = n->id;
        if (!vs_load_place(s, n, id)) {
            vs_node_free(s, n);
            vs_fail(err, errlen, "ERR vector set data: node %u repeats an id or a name, or out of memory", id);
            goto bad;
        }
    }
    s->node_uid = node_uid; /* placing each node counted it once more */
    get(&in, magic, 4);
    if (in.rc || memcmp(magic, "VEND", 4) != 0) {
        vs_fail(err, errlen, "ERR vector set data: bad trailer");
        goto bad;
    }
    if (link_pass(s, why, sizeof why) < 0) {
        vs_fail(err, errlen, "ERR vector set data: %s", why);
        goto bad;
    }
    if (count == 0) {
        if (entry != VS_NO_NODE || max_level != -1) {
            vs_fail(err, errlen, "ERR vector set data: empty set with an entry point");
            goto bad;
        }
    } else {
        vnode *e = entry < s->next_id ? vs_node(s, entry) : NULL;
        int top = -1;
        for (int l = VSET_MAX_LEVEL; l >= 0 && top < 0; l--)
            if (s->level_count[l]) top = l;
        if (!e || e->level != top || max_level != top) {
            vs_fail(err, errlen, "ERR vector set data: the entry point is not on the top level");
            goto bad;
        }
        s->entry = entry;
        s->max_level = top;
    }
    if (vs_load_finish(s) < 0) {
        vs_fail(err, errlen, "ERR out of memory");
        goto bad;
    }
    return s;
bad:
    vset_free(s);
    return NULL;
}
