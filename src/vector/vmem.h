/* vmem.h - internal to libvset: the allocator every libvset file uses.
 *
 * A vector set's memory belongs to whoever hosts it: inferkv-server counts
 * it in used_memory (km_malloc), the module hands it to the host
 * (RedisModule_Alloc) so that Redis's INFO and maxmemory see it.  So no
 * file here calls malloc directly: they call vs_malloc & co., which go to
 * the functions installed with vset_set_allocator (vset.h), plain malloc
 * until then.  Every call may return NULL; callers check. */
#ifndef INFERKV_VMEM_H
#define INFERKV_VMEM_H

#include <stddef.h>

void *vs_malloc(size_t n);
void *vs_calloc(size_t n, size_t size); /* NULL when n * size overflows */
void *vs_realloc(void *p, size_t n);
void vs_free(void *p);
char *vs_memdup(const void *p, size_t n); /* n bytes + a NUL */
/* Bytes the allocator really handed out for p (for MEMORY USAGE). */
size_t vs_usable(void *p);

#endif
