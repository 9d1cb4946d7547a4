/* test_kvpool.c - the KV block pool's prefix index: reuse only ever hands
 * out a block whose whole chain of ancestors is the caller's own.
 *
 * Hash collisions are simulated by passing the hash of one parent with the
 * identity of another (a crafted collision would look exactly like that to
 * the pool); a parent that was evicted and reallocated must not match
 * either.  Also: refcounts, LRU order of eviction, the free/cached counts. */
#include "test.h"

#include "runtime/kvpool.h"

#define BT 4

static void fill(int32_t *t, int32_t base) {
    for (int i = 0; i < BT; i++) t[i] = base + i;
}

static void test_chain_identity(void) {
    kv_pool p;
    CHECK(kv_pool_init(&p, 8, BT) == 0);
    int32_t a[BT], b[BT], z[BT];
    fill(a, 100), fill(b, 200), fill(z, 300);
    int32_t X = kv_pool_alloc(&p), Y = kv_pool_alloc(&p), W = kv_pool_alloc(&p);
    uint64_t ha = kv_chain_hash(&p, 0, a), hb = kv_chain_hash(&p, 0, b);
    kv_pool_register(&p, X, -1, 0, a);
    kv_pool_register(&p, Y, X, ha, z); /* Z after A */
    kv_pool_register(&p, W, -1, 0, b);
    /* the right parent finds Z */
    int32_t got = kv_pool_lookup(&p, X, ha, z);
    CHECK_EQ_INT(got, Y);
    kv_pool_release(&p, got);
    /* a "collision": parent B presented with A's hash must not find Z */
    CHECK_EQ_INT(kv_pool_lookup(&p, W, ha, z), -1);
    CHECK_EQ_INT(kv_pool_lookup(&p, W, hb, z), -1);
    /* first blocks are looked up with parent -1 only */
    CHECK_EQ_INT(kv_pool_lookup(&p, X, 0, a), -1);
    got = kv_pool_lookup(&p, -1, 0, a);
    CHECK_EQ_INT(got, X);
    kv_pool_release(&p, got);
    kv_pool_destroy(&p);
}

/* X is released, evicted and reallocated for other content: its old child
 * (still cached) must not match a lookup through the new X. */
static void test_reallocated_parent(void) {
    kv_pool p;
    CHECK(kv_pool_init(&p, 2, BT) == 0);
    int32_t a[BT], z[BT];
    fill(a, 1), fill(z, 2);
    int32_t X = kv_pool_alloc(&p), Y = kv_pool_alloc(&p);
    uint64_t ha = kv_chain_hash(&p, 0, a);
    kv_pool_register(&p, X, -1, 0, a);
    kv_pool_register(&p, Y, X, ha, z);
    kv_pool_release(&p, Y); /* Y cached first: least recently used */
    kv_pool_release(&p, X);
    CHECK_EQ_INT(p.n_cached, 2);
    CHECK_EQ_INT(kv_pool_available(&p), 2);
    /* one allocation evicts the LRU block, Y */
    int32_t n1 = kv_pool_alloc(&p);
    CHECK_EQ_INT(n1, Y);
    CHECK_EQ_INT(p.evictions, 1);
    kv_pool_release(&p, n1);
    /* now evict X and give it to someone else */
    int32_t n2 = kv_pool_alloc(&p);
    CHECK_EQ_INT(n2, n1); /* the free one first */
    int32_t n3 = kv_pool_alloc(&p);
    CHECK_EQ_INT(n3, X);
    CHECK_EQ_INT(kv_pool_lookup(&p, -1, 0, a), -1); /* X's old content is gone */
    kv_pool_release(&p, n2);
    kv_pool_release(&p, n3);
    kv_pool_destroy(&p);
}

/* A block registered after parent X, then X reallocated (generation bumped)
 * while the child is still cached: the child must not match via new X. */
static void test_generation(void) {
    kv_pool p;
    CHECK(kv_pool_init(&p, 3, BT) == 0);
    int32_t a[BT], z[BT];
    fill(a, 10), fill(z, 20);
    int32_t X = kv_pool_alloc(&p), Y = kv_pool_alloc(&p);
    uint64_t ha = kv_chain_hash(&p, 0, a);
    kv_pool_register(&p, X, -1, 0, a);
    kv_pool_register(&p, Y, X, ha, z);
    kv_pool_release(&p, X); /* X cached, LRU head */
    int32_t f = kv_pool_alloc(&p); /* the free block */
    int32_t again = kv_pool_alloc(&p); /* evicts X, reallocates it */
    CHECK_EQ_INT(again, X);
    kv_pool_register(&p, X, -1, 0, a); /* same content, new generation */
    CHECK_EQ_INT(kv_pool_lookup(&p, X, ha, z), -1);
    kv_pool_release(&p, f);
    kv_pool_release(&p, again);
    kv_pool_release(&p, Y);
    CHECK_EQ_INT(kv_pool_available(&p), 3);
    kv_pool_destroy(&p);
}

int main(void) {
    TEST_RUN(test_chain_identity);
    TEST_RUN(test_reallocated_parent);
    TEST_RUN(test_generation);
    return TEST_DONE();
}
