/* kvpool.c - reference-counted KV blocks, a content index of full blocks
 * for prefix reuse, and LRU eviction of unreferenced cached blocks.  See
 * kvpool.h for the rules; the index is a linear-probing hash table with
 * backward-shift deletion (no tombstones, so lookups stay short however many
 * blocks come and go). */
#include "runtime/kvpool.h"
#include "kernels/ialloc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Buckets of the index: a power of two, at least twice the blocks. */
static uint32_t table_cap(int32_t n_blocks) {
    uint32_t cap = 16;
    while (cap < (uint32_t)n_blocks * 2u && cap < (1u << 30)) cap <<= 1;
    return cap;
}

uint64_t kv_pool_bytes(int32_t n_blocks, int32_t bt) {
    const kv_pool *p = NULL; /* for the element sizes only */
    uint64_t per_block = sizeof *p->refs + sizeof *p->hash + sizeof *p->parent + sizeof *p->parent_gen +
                         sizeof *p->gen + (uint64_t)bt * sizeof *p->toks + sizeof *p->prev + sizeof *p->next +
                         sizeof *p->free_stack;
    return (uint64_t)n_blocks * per_block + (uint64_t)table_cap(n_blocks) * sizeof *p->table;
}

int kv_pool_init(kv_pool *p, int32_t n_blocks, int32_t bt) {
    memset(p, 0, sizeof *p);
    p->n_blocks = n_blocks;
    p->bt = bt;
    uint32_t cap = table_cap(n_blocks);
    p->table_mask = cap - 1;
    size_t n = (size_t)n_blocks;
    p->refs = ie_calloc(n, sizeof *p->refs);
    p->hash = ie_calloc(n, sizeof *p->hash);
    p->parent = ie_calloc(n, sizeof *p->parent);
    p->parent_gen = ie_calloc(n, sizeof *p->parent_gen);
    p->gen = ie_calloc(n, sizeof *p->gen);
    p->toks = ie_calloc(n * (size_t)bt, sizeof *p->toks);
    p->prev = ie_malloc(n * sizeof *p->prev);
    p->next = ie_malloc(n * sizeof *p->next);
    p->free_stack = ie_malloc(n * sizeof *p->free_stack);
    p->table = ie_malloc((size_t)cap * sizeof *p->table);
    if (!p->refs || !p->hash || !p->parent || !p->parent_gen || !p->gen || !p->toks || !p->prev || !p->next ||
        !p->free_stack || !p->table) {
        kv_pool_destroy(p);
        return -1;
    }
    memset(p->table, 0xff, (size_t)cap * sizeof *p->table);
    if (getrandom(&p->seed, sizeof p->seed, GRND_NONBLOCK) != (ssize_t)sizeof p->seed)
        p->seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)p;
    for (int32_t i = 0; i < n_blocks; i++) {
        p->free_stack[i] = n_blocks - 1 - i; /* block 0 first */
        p->prev[i] = p->next[i] = -1;
    }
    p->n_free = n_blocks;
    p->lru_head = p->lru_tail = -1;
    return 0;
}

void kv_pool_destroy(kv_pool *p) {
    free(p->refs), free(p->hash), free(p->parent), free(p->parent_gen), free(p->gen), free(p->toks);
    free(p->prev), free(p->next), free(p->free_stack), free(p->table);
    memset(p, 0, sizeof *p);
}

int32_t kv_pool_available(const kv_pool *p) { return p->n_free + p->n_cached; }

uint64_t kv_chain_hash(const kv_pool *p, uint64_t parent, const int32_t *toks) {
    /* Multiply-xorshift mixing of each token into the keyed parent hash;
     * lookups verify identity and content, so this only spreads buckets. */
    uint64_t h = (parent ^ p->seed) * 0x9e3779b97f4a7c15ull;
    for (int32_t i = 0; i < p->bt; i++) {
        h ^= (uint32_t)toks[i];
        h *= 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    return h ? h : 1; /* 0 means "not registered" */
}

static void lru_unlink(kv_pool *p, int32_t b) {
    assert(p->refs[b] == 0 && p->hash[b] && p->n_cached > 0); /* only unused registered blocks are listed */
    if (p->prev[b] >= 0) p->next[p->prev[b]] = p->next[b];
    else p->lru_head = p->next[b];
    if (p->next[b] >= 0) p->prev[p->next[b]] = p->prev[b];
    else p->lru_tail = p->prev[b];
    p->prev[b] = p->next[b] = -1;
    p->n_cached--;
}

static void lru_push(kv_pool *p, int32_t b) {
    assert(p->prev[b] < 0 && p->next[b] < 0 && p->lru_head != b); /* listed once: a double release would relink it */
    p->prev[b] = p->lru_tail;
    p->next[b] = -1;
    if (p->lru_tail >= 0) p->next[p->lru_tail] = b;
    else p->lru_head = b;
    p->lru_tail = b;
    p->n_cached++;
}

static uint32_t slot_of(const kv_pool *p, uint64_t h) { return (uint32_t)(h ^ (h >> 32)) & p->table_mask; }

static void table_remove(kv_pool *p, int32_t b) {
    uint32_t i = slot_of(p, p->hash[b]);
    /* only registered blocks are removed, and registering indexed b: an
     * empty slot before it would mean the index lost it */
    while (p->table[i] != b) {
        assert(p->table[i] >= 0);
        i = (i + 1) & p->table_mask;
    }
    /* backward-shift: move later entries of the probe run into the hole */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & p->table_mask; p->table[j] >= 0; j = (j + 1) & p->table_mask) {
        uint32_t home = slot_of(p, p->hash[p->table[j]]);
        /* j's entry may move to hole if its home is not in (hole, j] cyclically */
        int move = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (move) {
            p->table[hole] = p->table[j];
            hole = j;
        }
    }
    p->table[hole] = -1;
    p->hash[b] = 0;
}

int32_t kv_pool_alloc(kv_pool *p) {
    int32_t b;
    if (p->n_free > 0) {
        b = p->free_stack[--p->n_free];
        /* a free block has no user, no index entry and no LRU link */
        assert(b >= 0 && b < p->n_blocks && p->refs[b] == 0 && !p->hash[b] && p->prev[b] < 0);
    } else if (p->lru_head >= 0) {
        b = p->lru_head;
        lru_unlink(p, b);
        table_remove(p, b);
        p->evictions++;
    } else {
        return -1;
    }
    p->refs[b] = 1;
    p->gen[b]++;
    return b;
}

void kv_pool_release(kv_pool *p, int32_t b) {
    assert(b >= 0 && b < p->n_blocks && p->refs[b] > 0); /* a release without its alloc or lookup */
    if (--p->refs[b] > 0) return;
    if (p->hash[b]) lru_push(p, b);
    else {
        assert(p->n_free < p->n_blocks); /* the stack holds each block once */
        p->free_stack[p->n_free++] = b;
    }
}

static int same_block(const kv_pool *p, int32_t b, uint64_t h, int32_t parent_blk, const int32_t *toks) {
    if (p->hash[b] != h || p->parent[b] != parent_blk) return 0;
    if (parent_blk >= 0 && p->parent_gen[b] != p->gen[parent_blk]) return 0;
    return memcmp(p->toks + (size_t)b * p->bt, toks, (size_t)p->bt * sizeof *toks) == 0;
}

int32_t kv_pool_lookup(kv_pool *p, int32_t parent_blk, uint64_t parent_hash, const int32_t *toks) {
    assert(parent_blk < p->n_blocks && (parent_blk < 0 || p->refs[parent_blk] > 0)); /* the caller holds it */
    uint64_t h = kv_chain_hash(p, parent_hash, toks);
    p->lookups++;
    for (uint32_t i = slot_of(p, h); p->table[i] >= 0; i = (i + 1) & p->table_mask) {
        int32_t b = p->table[i];
        if (same_block(p, b, h, parent_blk, toks)) {
            if (p->refs[b] == 0) lru_unlink(p, b);
            p->refs[b]++;
            p->hits++;
            return b;
        }
    }
    return -1;
}

void kv_pool_register(kv_pool *p, int32_t b, int32_t parent_blk, uint64_t parent_hash, const int32_t *toks) {
    /* the caller holds both: an unheld block could be reallocated under the index */
    assert(b >= 0 && b < p->n_blocks && p->refs[b] > 0);
    assert(parent_blk < p->n_blocks && (parent_blk < 0 || p->refs[parent_blk] > 0));
    if (p->hash[b]) return;
    uint64_t h = kv_chain_hash(p, parent_hash, toks);
    uint32_t i = slot_of(p, h);
    for (; p->table[i] >= 0; i = (i + 1) & p->table_mask)
        if (same_block(p, p->table[i], h, parent_blk, toks)) return; /* already indexed: b stays private */
    p->table[i] = b;
    p->hash[b] = h;
    p->parent[b] = parent_blk;
    p->parent_gen[b] = parent_blk >= 0 ? p->gen[parent_blk] : 0;
    memcpy(p->toks + (size_t)b * p->bt, toks, (size_t)p->bt * sizeof *toks);
}
