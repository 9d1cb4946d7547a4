/* vnames.h - internal to libvset: the element-name index of a set.
 *
 * A crit-bit tree (D. J. Bernstein's binary radix tree) over the names of
 * the elements: lookups for VADD / VREM / VSIM ELE, and in-order walks for
 * VRANGE, from one structure of one internal node per element.  Names are
 * binary: each byte is seen as a 9-bit symbol (0x100 | byte) and the end
 * of the name as 0, so a name sorts after its prefixes and the tree order
 * is memcmp order, shorter first.  Leaves hold element ids; the name bytes
 * themselves live in the set's nodes and are fetched through key_of. */
#ifndef INFERKV_VNAMES_H
#define INFERKV_VNAMES_H

#include <stddef.h>
#include <stdint.h>

typedef const char *(*vnames_key_fn)(void *ud, uint32_t id, size_t *len);

typedef struct vnames {
    uintptr_t root; /* 0 empty; low bit set: a leaf (id << 1 | 1) */
    vnames_key_fn key_of;
    void *ud;
    size_t bytes;   /* allocated by the internal nodes */
} vnames;

void vnames_init(vnames *t, vnames_key_fn key_of, void *ud);
void vnames_clear(vnames *t);
/* id of name, or -1 */
int64_t vnames_find(const vnames *t, const char *k, size_t len);
/* 1 inserted, 0 already present, -1 out of memory */
int vnames_insert(vnames *t, const char *k, size_t len, uint32_t id);
/* 1 removed, 0 absent */
int vnames_remove(vnames *t, const char *k, size_t len);
/* Calls fn(ud, id) in name order from the first name >= start (> with
 * excl; every name when start is NULL) until fn returns non-zero.  -1 out
 * of memory (the walk's stack), else 0. */
int vnames_walk(const vnames *t, const char *start, size_t slen, int excl,
                int (*fn)(void *ud, uint32_t id), void *ud);

#endif
