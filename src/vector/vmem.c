/* vmem.c - libvset's allocator seam (see vmem.h): the host's functions when
 * installed, the C library's otherwise. */
#include "vmem.h"

#include "vset.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static vset_allocator A = {malloc, realloc, free, malloc_usable_size};

void vset_set_allocator(const vset_allocator *a) {
    if (a) A = *a;
}

void *vs_malloc(size_t n) { return A.alloc(n ? n : 1); }

void *vs_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    void *p = A.alloc(bytes ? bytes : 1);
    if (p) memset(p, 0, bytes);
    return p;
}

void *vs_realloc(void *p, size_t n) { return A.realloc(p, n ? n : 1); }

void vs_free(void *p) {
    if (p) A.free(p);
}

char *vs_memdup(const void *p, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *d = A.alloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, p, n);
    d[n] = 0;
    return d;
}

size_t vs_usable(void *p) { return p && A.usable ? A.usable(p) : 0; }
