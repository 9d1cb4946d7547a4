/* ialloc.h - internal: every allocation libinfer makes goes through these,
 * so that one hook (infer_set_alloc_hook, infer.h) sees each of them -
 * for the fault-injection sweeps (fail the Nth) and for accounting.  The
 * memory comes from the C library: free() releases it, and callers of the
 * public API free what it returns with free() as before. */
#ifndef INFER_IALLOC_H
#define INFER_IALLOC_H

#include <stddef.h>

void *ie_malloc(size_t n);
void *ie_calloc(size_t n, size_t size);
void *ie_realloc(void *p, size_t n);
char *ie_strdup(const char *s);

#endif
