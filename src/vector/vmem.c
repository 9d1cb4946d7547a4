/* vmem.c - libvset's allocator seam (see vmem.h): the host's functions when
 * installed, the C library's otherwise.  Each allocation carries the
 * address its caller returns to, for a host allocator that reports where a
 * fault-injection sweep failed one (alloc_at / realloc_at). */
#include "vmem.h"

#include "vset.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static vset_allocator A = {malloc, realloc, free, malloc_usable_size, NULL, NULL};

void vset_set_allocator(const vset_allocator *a) {
    if (a) A = *a;
}

static void *alloc_at(size_t n, const void *site) {
    if (!n) n = 1;
    return A.alloc_at ? A.alloc_at(n, site) : A.alloc(n);
}

static void *calloc_at(size_t n, size_t size, const void *site) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    void *p = alloc_at(bytes, site);
    if (p) memset(p, 0, bytes);
    return p;
}

static void *realloc_at(void *p, size_t n, const void *site) {
    if (!n) n = 1;
    return A.realloc_at ? A.realloc_at(p, n, site) : A.realloc(p, n);
}

void *vs_malloc(size_t n) { return alloc_at(n, __builtin_return_address(0)); }
void *vs_calloc(size_t n, size_t size) { return calloc_at(n, size, __builtin_return_address(0)); }
void *vs_realloc(void *p, size_t n) { return realloc_at(p, n, __builtin_return_address(0)); }

void vs_free(void *p) {
    if (p) A.free(p);
}

char *vs_memdup(const void *p, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *d = alloc_at(n + 1, __builtin_return_address(0));
    if (!d) return NULL;
    if (n) memcpy(d, p, n);
    d[n] = 0;
    return d;
}

size_t vs_usable(void *p) { return p && A.usable ? A.usable(p) : 0; }

/* The public forms, for libvcmd: the same, the site being their caller's. */
void *vset_mem_alloc(size_t n) { return alloc_at(n, __builtin_return_address(0)); }
void *vset_mem_calloc(size_t n, size_t size) { return calloc_at(n, size, __builtin_return_address(0)); }
void *vset_mem_realloc(void *p, size_t n) { return realloc_at(p, n, __builtin_return_address(0)); }
void vset_mem_free(void *p) { vs_free(p); }
