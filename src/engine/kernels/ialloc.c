/* ialloc.c - libinfer's allocation seam (ialloc.h): ask the hook, then the
 * C library.
 *
 * Why a hook and not a replaceable allocator: the engine's buffers leave it
 * (token ids, texts, vectors a front-end frees with free()), so the memory
 * must stay the C library's; what a caller needs to steer is whether an
 * allocation may happen (a sweep failing the Nth, a budget) and to see its
 * size.  A NULL from here is what the engine already handles as out of
 * memory: the hook only makes that path reachable on demand. */
#include "infer.h"
#include "kernels/ialloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static _Atomic(infer_alloc_hook) hook;
static void *_Atomic hook_ud;

void infer_set_alloc_hook(infer_alloc_hook fn, void *ud) {
    atomic_store(&hook_ud, ud);
    atomic_store(&hook, fn);
}

/* site: the code address the allocation returns to (the call site in the
 * caller of ie_* or infer_*), which a sweep reports as where it failed. */
static int allowed(size_t n, const void *site) {
    infer_alloc_hook h = atomic_load_explicit(&hook, memory_order_acquire);
    return !h || h(n, site, atomic_load_explicit(&hook_ud, memory_order_relaxed));
}

static void *alloc_at(size_t n, const void *site) { return allowed(n, site) ? malloc(n) : NULL; }

static void *calloc_at(size_t n, size_t size, const void *site) {
    return allowed(n * size, site) ? calloc(n, size) : NULL;
}

static void *realloc_at(void *p, size_t n, const void *site) { return allowed(n, site) ? realloc(p, n) : NULL; }

static char *strdup_at(const char *s, const void *site) {
    size_t n = strlen(s) + 1;
    char *d = alloc_at(n, site);
    if (d) memcpy(d, s, n);
    return d;
}

void *ie_malloc(size_t n) { return alloc_at(n, __builtin_return_address(0)); }
void *ie_calloc(size_t n, size_t size) { return calloc_at(n, size, __builtin_return_address(0)); }
void *ie_realloc(void *p, size_t n) { return realloc_at(p, n, __builtin_return_address(0)); }
char *ie_strdup(const char *s) { return strdup_at(s, __builtin_return_address(0)); }

void *infer_malloc(size_t n) { return alloc_at(n, __builtin_return_address(0)); }
void *infer_calloc(size_t n, size_t size) { return calloc_at(n, size, __builtin_return_address(0)); }
void *infer_realloc(void *p, size_t n) { return realloc_at(p, n, __builtin_return_address(0)); }
char *infer_strdup(const char *s) { return strdup_at(s, __builtin_return_address(0)); }

int infer_alloc_allowed(size_t bytes, const void *site) { return allowed(bytes, site); }
