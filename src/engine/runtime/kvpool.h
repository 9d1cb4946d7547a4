/* kvpool.h - internal: the KV cache's block allocator with prefix reuse.
 *
 * Blocks are reference-counted.  A full block can be registered under a
 * hash of (parent block's hash, its tokens); a later sequence whose prompt
 * starts with the same tokens finds the chain of registered blocks and
 * shares them instead of recomputing.  A registered block whose last user
 * leaves stays cached (its K/V intact) on an LRU list and is evicted, least
 * recently used first, only when a fresh block is needed.
 *
 * A lookup matches only a block with the same tokens whose parent is the
 * very block the caller already holds for the previous position (block
 * index and allocation generation, so a parent evicted and reused for other
 * content cannot match).  By induction from the first block, a reused chain
 * holds exactly the K/V of the caller's tokens: hash collisions, accidental
 * or crafted, cost at most a missed reuse.  The hash only picks a bucket;
 * it is keyed per pool so that crafted collisions cannot flood one. */
#ifndef INFER_KVPOOL_H
#define INFER_KVPOOL_H

#include <stdint.h>

typedef struct {
    int32_t n_blocks, bt;
    int32_t *refs;             /* users of each block */
    uint64_t *hash;            /* registered blocks: chain hash; 0 = not registered */
    int32_t *parent;           /* registered blocks: parent block index, -1 for a first block */
    uint32_t *parent_gen;      /* ... and the parent's generation when registered */
    uint32_t *gen;             /* bumped each time a block is (re)allocated */
    uint64_t seed;             /* hash key */
    int32_t *toks;             /* registered blocks: their bt tokens */
    int32_t *prev, *next;      /* LRU list of cached blocks (refs 0, registered); -1 ends */
    int32_t lru_head, lru_tail, n_cached;
    int32_t *free_stack, n_free;
    int32_t *table;            /* open addressing (linear probing), hash -> block, -1 empty */
    uint32_t table_mask;
    uint64_t lookups, hits, evictions;
} kv_pool;

int kv_pool_init(kv_pool *p, int32_t n_blocks, int32_t bt);
/* The bytes kv_pool_init allocates for n_blocks of bt tokens (its tables,
 * not the K/V data, which the ctx holds). */
uint64_t kv_pool_bytes(int32_t n_blocks, int32_t bt);
void kv_pool_destroy(kv_pool *p);

/* Blocks that an allocation can get: free ones plus evictable cached ones. */
int32_t kv_pool_available(const kv_pool *p);
/* A block with one reference, evicting the least recently used cached block
 * when none is free; -1 when neither exists. */
int32_t kv_pool_alloc(kv_pool *p);
/* Drops one reference; at zero the block is cached if registered, else freed. */
void kv_pool_release(kv_pool *p, int32_t b);

/* The bucket hash of a block: its tokens chained onto the parent's hash. */
uint64_t kv_chain_hash(const kv_pool *p, uint64_t parent_hash, const int32_t *toks);
/* The registered block holding toks right after block parent_blk (-1: at
 * the start), which the caller holds, with a reference taken for the
 * caller; -1 if none. */
int32_t kv_pool_lookup(kv_pool *p, int32_t parent_blk, uint64_t parent_hash, const int32_t *toks);
/* Registers full block b (held by the caller, following parent_blk, also
 * held) unless that content is already registered after that parent. */
void kv_pool_register(kv_pool *p, int32_t b, int32_t parent_blk, uint64_t parent_hash, const int32_t *toks);

#endif
