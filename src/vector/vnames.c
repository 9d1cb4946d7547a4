/* vnames.c - crit-bit tree of element names (see vnames.h).
 *
 * Every internal node splits on one bit of one 9-bit symbol: the position
 * of the first symbol where the names below it start to differ, and the
 * highest differing bit there.  A lookup follows the bits of the name and
 * compares the whole name once, at the leaf. */
#include "vnames.h"

#include "vmem.h"

#include <string.h>

typedef struct cbnode {
    uintptr_t child[2];
    size_t pos;     /* symbol index */
    uint8_t bit;    /* 0..8, the bit of that symbol */
} cbnode;

#define IS_LEAF(p) ((p) & 1u)
#define LEAF_ID(p) ((uint32_t)((p) >> 1))
#define MK_LEAF(id) (((uintptr_t)(id) << 1) | 1u)
#define NODE(p) ((cbnode *)(p))

static inline unsigned sym(const char *k, size_t len, size_t i) {
    return i < len ? 0x100u | (unsigned char)k[i] : 0u;
}

static inline int dir_of(const cbnode *n, const char *k, size_t len) {
    return (int)((sym(k, len, n->pos) >> n->bit) & 1u);
}

void vnames_init(vnames *t, vnames_key_fn key_of, void *ud) {
    t->root = 0;
    t->key_of = key_of;
    t->ud = ud;
    t->bytes = 0;
}

void vnames_clear(vnames *t) {
    /* The depth is bounded by the element count, not by a constant, so
     * no recursion: rotate left children up until a node has none, then
     * free it and go right. */
    uintptr_t p = t->root;
    while (p && !IS_LEAF(p)) {
        cbnode *n = NODE(p);
        uintptr_t l = n->child[0];
        if (l && !IS_LEAF(l)) {
            cbnode *ln = NODE(l);
            n->child[0] = ln->child[1];
            ln->child[1] = p;
            p = l;
        } else {
            uintptr_t r = n->child[1];
            vs_free(n);
            p = r;
        }
    }
    t->root = 0;
    t->bytes = 0;
}

static uintptr_t best_leaf(const vnames *t, const char *k, size_t len) {
    uintptr_t p = t->root;
    while (!IS_LEAF(p)) p = NODE(p)->child[dir_of(NODE(p), k, len)];
    return p;
}

int64_t vnames_find(const vnames *t, const char *k, size_t len) {
    if (!t->root) return -1;
    uintptr_t p = best_leaf(t, k, len);
    size_t ll;
    const char *lk = t->key_of(t->ud, LEAF_ID(p), &ll);
    if (ll == len && (len == 0 || memcmp(lk, k, len) == 0)) return LEAF_ID(p);
    return -1;
}

/* The first symbol where a and b differ and the highest bit differing
 * there; 0 when they are equal. */
static int crit(const char *a, size_t al, const char *b, size_t bl, size_t *pos, uint8_t *bit) {
    size_t n = al < bl ? al : bl, i = 0;
    while (i < n && a[i] == b[i]) i++;
    if (i == n && al == bl) return 0;
    unsigned x = sym(a, al, i) ^ sym(b, bl, i);
    uint8_t hb = 0;
    while (x >> (hb + 1)) hb++;
    *pos = i;
    *bit = hb;
    return 1;
}

/* Whether node n splits before (pos, bit): earlier symbol, or the same
 * symbol at a higher bit. */
static inline int splits_before(const cbnode *n, size_t pos, uint8_t bit) {
    return n->pos < pos || (n->pos == pos && n->bit > bit);
}

int vnames_insert(vnames *t, const char *k, size_t len, uint32_t id) {
    if (!t->root) {
        t->root = MK_LEAF(id);
        return 1;
    }
    uintptr_t leaf = best_leaf(t, k, len);
    size_t ll, pos;
    uint8_t bit;
    const char *lk = t->key_of(t->ud, LEAF_ID(leaf), &ll);
    if (!crit(k, len, lk, ll, &pos, &bit)) return 0;
    cbnode *nn = vs_malloc(sizeof *nn);
    if (!nn) return -1;
    t->bytes += vs_usable(nn) ? vs_usable(nn) : sizeof *nn;
    nn->pos = pos;
    nn->bit = bit;
    int d = (int)((sym(k, len, pos) >> bit) & 1u);
    nn->child[d] = MK_LEAF(id);
    uintptr_t *where = &t->root;
    while (!IS_LEAF(*where) && splits_before(NODE(*where), pos, bit))
        where = &NODE(*where)->child[dir_of(NODE(*where), k, len)];
    nn->child[!d] = *where;
    *where = (uintptr_t)nn;
    return 1;
}

int vnames_remove(vnames *t, const char *k, size_t len) {
    if (!t->root) return 0;
    uintptr_t *where = &t->root, *parent_slot = NULL;
    cbnode *parent = NULL;
    int d = 0;
    while (!IS_LEAF(*where)) {
        parent_slot = where;
        parent = NODE(*where);
        d = dir_of(parent, k, len);
        where = &parent->child[d];
    }
    size_t ll;
    const char *lk = t->key_of(t->ud, LEAF_ID(*where), &ll);
    if (ll != len || (len && memcmp(lk, k, len) != 0)) return 0;
    if (!parent) {
        t->root = 0;
        return 1;
    }
    *parent_slot = parent->child[!d];
    size_t u = vs_usable(parent);
    t->bytes -= u ? u : sizeof *parent;
    vs_free(parent);
    return 1;
}

typedef struct stack {
    uintptr_t *v;
    size_t n, cap;
} stack;

static int push(stack *s, uintptr_t p) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        uintptr_t *nv = vs_realloc(s->v, nc * sizeof *nv);
        if (!nv) return -1;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = p;
    return 0;
}

int vnames_walk(const vnames *t, const char *start, size_t slen, int excl,
                int (*fn)(void *ud, uint32_t id), void *ud) {
    stack st = {0};
    int rc = 0;
    if (!t->root) return 0;
    int64_t skip = -1; /* the leaf equal to start, with excl */
    if (!start) {
        if (push(&st, t->root) < 0) goto oom;
    } else {
        uintptr_t leaf = best_leaf(t, start, slen);
        size_t ll, pos = 0;
        uint8_t bit = 0;
        const char *lk = t->key_of(t->ud, LEAF_ID(leaf), &ll);
        int differs = crit(start, slen, lk, ll, &pos, &bit);
        if (!differs && excl) skip = LEAF_ID(leaf);
        /* Descend along start while the nodes split before the point where
         * start leaves the tree: each right sibling passed is greater than
         * start, and is visited after what lies below (innermost first, so
         * pushed outermost first). */
        uintptr_t p = t->root;
        while (!IS_LEAF(p) && (!differs || splits_before(NODE(p), pos, bit))) {
            int d = dir_of(NODE(p), start, slen);
            if (d == 0 && push(&st, NODE(p)->child[1]) < 0) goto oom;
            p = NODE(p)->child[d];
        }
        /* p's names all share the prefix of leaf up to (pos, bit): they
         * are all greater than start when start has a 0 there. */
        if (!differs) {
            if (push(&st, p) < 0) goto oom;
        } else if (((sym(start, slen, pos) >> bit) & 1u) == 0) {
            if (push(&st, p) < 0) goto oom;
        }
    }
    while (st.n) {
        uintptr_t p = st.v[--st.n];
        if (IS_LEAF(p)) {
            if ((int64_t)LEAF_ID(p) == skip) continue;
            if (fn(ud, LEAF_ID(p))) break;
            continue;
        }
        if (push(&st, NODE(p)->child[1]) < 0 || push(&st, NODE(p)->child[0]) < 0) goto oom;
    }
    vs_free(st.v);
    return rc;
oom:
    vs_free(st.v);
    return -1;
}
