/* mem.c - malloc wrappers that keep an exact count of the bytes in use.
 *
 * The server reports used_memory and enforces maxmemory from this count, so
 * it must reflect what the allocator really reserved: each wrapper adds or
 * subtracts malloc_usable_size() of the block, not the size asked for.  The
 * counter is atomic because engine threads may allocate through it too.
 * km_fail_after() injects allocation failures (unit tests; the server's
 * DEBUG ALLOC-FAIL for the sweeps under tests/fault/), and says where the
 * injected one landed. */
#include "core.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic size_t used_bytes;
static _Atomic long fail_countdown;
static _Atomic long fail_calls;     /* allocations counted since km_fail_after */
static void *_Atomic fail_site;     /* where the injected failure was returned, or NULL */

/* site: the code address the allocation returns to (the caller's call
 * site), kept for the failure that fires so a sweep can name the site. */
static int should_fail(void *site) {
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n <= 0) return 0;
    atomic_fetch_add_explicit(&fail_calls, 1, memory_order_relaxed);
    if (atomic_fetch_sub(&fail_countdown, 1) != 1) return 0;
    atomic_store(&fail_site, site);
    return 1;
}

void km_fail_after(long n) {
    atomic_store(&fail_site, NULL);
    atomic_store(&fail_calls, 0);
    atomic_store(&fail_countdown, n);
}

void *km_fail_site(void) { return atomic_load(&fail_site); }

int km_fail_now(void *site) { return should_fail(site); }

long km_fail_calls(void) { return atomic_load(&fail_calls); }

static _Atomic unsigned long failures; /* allocations that returned NULL, injected or not */

static void *failed(void) {
    atomic_fetch_add_explicit(&failures, 1, memory_order_relaxed);
    return NULL;
}

unsigned long km_failures(void) { return atomic_load_explicit(&failures, memory_order_relaxed); }

static void *account(void *p) {
    if (!p) return failed();
    atomic_fetch_add_explicit(&used_bytes, malloc_usable_size(p), memory_order_relaxed);
    return p;
}

void *km_malloc_at(size_t n, const void *site) {
    if (should_fail((void *)site)) return failed();
    return account(malloc(n ? n : 1));
}

void *km_malloc(size_t n) { return km_malloc_at(n, __builtin_return_address(0)); }

void *km_calloc(size_t n) {
    if (should_fail(__builtin_return_address(0))) return failed();
    return account(calloc(1, n ? n : 1));
}

void *km_realloc(void *p, size_t n) { return km_realloc_at(p, n, __builtin_return_address(0)); }

void *km_realloc_at(void *p, size_t n, const void *site) {
    if (should_fail((void *)site)) return failed();
    if (!p) return account(malloc(n ? n : 1));
    size_t old = malloc_usable_size(p);
    void *q = realloc(p, n ? n : 1);
    if (!q) return failed();
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
