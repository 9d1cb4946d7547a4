/* vmem.c - libvset's allocator seam (see vmem.h): the host's functions when
 * installed, the C library's otherwise. */
#include "vmem.h"

#include "vset.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static vset_allocator A = {malloc, realloc, free, malloc_usable_size, NULL, NULL};

/* One allocation for the caller whose return address is site. */
static void *alloc_for(size_t n, const void *site) { return A.alloc_at ? A.alloc_at(n, site) : A.alloc(n); }

void vset_set_allocator(const vset_allocator *a) {
    if (a) A = *a;
}

void *vs_malloc(size_t n) { return alloc_for(n ? n : 1, __builtin_return_address(0)); }

void *vs_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    void *p = alloc_for(bytes ? bytes : 1, __builtin_return_address(0));
    if (p) memset(p, 0, bytes);
    return p;
}

void *vs_realloc(void *p, size_t n) {
    return A.realloc_at ? A.realloc_at(p, n ? n : 1, __builtin_return_address(0)) : A.realloc(p, n ? n : 1);
}

void vs_free(void *p) {
    if (p) A.free(p);
}

char *vs_memdup(const void *p, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *d = alloc_for(n + 1, __builtin_return_address(0));
    if (!d) return NULL;
    if (n) memcpy(d, p, n);
    d[n] = 0;
    return d;
}

size_t vs_usable(void *p) { return p && A.usable ? A.usable(p) : 0; }

/* The public forms: the same, the site being their own caller's. */
void *vset_mem_alloc(size_t n) { return alloc_for(n ? n : 1, __builtin_return_address(0)); }

void *vset_mem_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    void *p = alloc_for(bytes ? bytes : 1, __builtin_return_address(0));
    if (p) memset(p, 0, bytes);
    return p;
}

void *vset_mem_realloc(void *p, size_t n) {
    return A.realloc_at ? A.realloc_at(p, n ? n : 1, __builtin_return_address(0)) : A.realloc(p, n ? n : 1);
}

void vset_mem_free(void *p) { vs_free(p); }
