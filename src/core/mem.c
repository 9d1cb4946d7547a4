/* mem.c - malloc wrappers that keep an exact count of the bytes in use.
 *
 * The server reports used_memory and enforces maxmemory from this count, so
 * it must reflect what the allocator really reserved: each wrapper adds or
 * subtracts malloc_usable_size() of the block, not the size asked for.  The
 * counter is atomic because engine threads may allocate through it too.
 * km_fail_after() lets unit tests inject allocation failures. */
#include "core.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic size_t used_bytes;
static _Atomic long fail_countdown;

static int should_fail(void) {
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n <= 0) return 0;
    return atomic_fetch_sub(&fail_countdown, 1) == 1;
}

void km_fail_after(long n) { atomic_store(&fail_countdown, n); }

static void *account(void *p) {
    if (p) atomic_fetch_add_explicit(&used_bytes, malloc_usable_size(p),
                                     memory_order_relaxed);
    return p;
}

void *km_malloc(size_t n) {
    if (should_fail()) return NULL;
    return account(malloc(n ? n : 1));
}

void *km_calloc(size_t n) {
    if (should_fail()) return NULL;
    return account(calloc(1, n ? n : 1));
}

void *km_realloc(void *p, size_t n) {
    if (!p) return km_malloc(n);
    if (should_fail()) return NULL;
    size_t old = malloc_usable_size(p);
    void *q = realloc(p, n ? n : 1);
    if (!q) return NULL;
    atomic_fetch_sub_explicit(&used_bytes, old, memory_order_relaxed);
    return account(q);
}

void km_free(void *p) {
    if (!p) return;
    atomic_fetch_sub_explicit(&used_bytes, malloc_usable_size(p),
                              memory_order_relaxed);
    free(p);
}

char *km_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = km_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

size_t km_used(void) {
    return atomic_load_explicit(&used_bytes, memory_order_relaxed);
}

size_t km_usable(void *p) { return p ? malloc_usable_size(p) : 0; }
