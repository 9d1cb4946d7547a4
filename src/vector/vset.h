/* vset.h - libvset: vector sets, the public API.
 *
 * A vector set maps element names (binary strings) to vectors and keeps an
 * HNSW graph over them for approximate nearest-neighbour search by cosine
 * similarity, as Redis 8's vector sets do.  Vectors are L2-normalised on
 * insert and stored as int8 with a per-vector range (Q8, the default), as
 * one bit per dimension (BIN) or as float32 (NOQUANT).  An optional random
 * projection (REDUCE) maps inputs to fewer dimensions first.  Each element
 * may carry a JSON attribute string that FILTER expressions read.
 *
 * Deleting an element removes it from the graph for good: every node that
 * linked to it is relinked from the deleted node's neighbours, so recall
 * does not decay over a long life of adds and removes (no tombstones).
 *
 * Threads.  A set has one owner thread (the server's event loop, the host's
 * main thread): it alone frees the set, deletes elements, replaces vectors
 * and sets attributes.  Any number of threads may at the same time search
 * (vset_search) and insert new elements (vset_add with a name not in the
 * set): the graph is guarded by a reader/writer lock taken shared by both,
 * and each node's links by a spin lock of its own, so inserts proceed in
 * parallel.  Owner-only operations take the lock exclusively.  Element ids
 * returned by a search stay valid until the owner next deletes.
 *
 * VADD's CAS mode splits an insert: vset_prepare runs the slow neighbour
 * search on any thread under the shared lock, vset_commit links the node
 * on the owner thread, redoing the search only if a deletion happened in
 * between.
 *
 * No server or module type appears here.  Memory comes from the allocator
 * installed with vset_set_allocator (the host's, so that it is counted).
 * Errors are whole Redis error lines without the leading '-'. */
#ifndef INFERKV_VSET_H
#define INFERKV_VSET_H

#include <stddef.h>
#include <stdint.h>

/* ---- allocator ---------------------------------------------------------- */

typedef struct vset_allocator {
    void *(*alloc)(size_t);
    void *(*realloc)(void *, size_t);
    void (*free)(void *);
    size_t (*usable)(void *); /* may be NULL: memory figures count requests */
    /* optional: alloc and realloc told the address libvset's caller
     * returns to - where a fault-injection sweep reports a failure */
    void *(*alloc_at)(size_t, const void *site);
    void *(*realloc_at)(void *, size_t, const void *site);
} vset_allocator;
/* Installs the allocator for every set created afterwards.  Call once, at
 * start, before any set exists. */
void vset_set_allocator(const vset_allocator *a);
/* The installed allocator, for the front-end libraries (libvcmd): their
 * memory is then the host's too, counted and swept with the sets'.  What
 * vset_mem_alloc / _calloc / _realloc return is freed with vset_mem_free,
 * never free(). */
void *vset_mem_alloc(size_t n);
void *vset_mem_calloc(size_t n, size_t size);
void *vset_mem_realloc(void *p, size_t n);
void vset_mem_free(void *p);

/* ---- limits and defaults (Redis 8's) ------------------------------------ */

enum vset_quant { VSET_Q8 = 0, VSET_BIN = 1, VSET_NOQUANT = 2 };

#define VSET_DEFAULT_M 16
#define VSET_MIN_M 4
#define VSET_MAX_M 4096             /* links per node above level 0 */
#define VSET_DEFAULT_EF_BUILD 200
#define VSET_MAX_EF 1000000
#define VSET_MAX_DIM 65536          /* components of an input vector */
#define VSET_MAX_LEVEL 32
#define VSET_DEFAULT_EF_SEARCH 100
#define VSET_DEFAULT_COUNT 10
#define VSET_MAX_NAME (512u << 20)  /* bytes of an element name */

/* Name of a quantization as VINFO and VEMB RAW spell it: "int8", "bin",
 * "f32" (VINFO) */
const char *vset_quant_name(int quant);

/* ---- sets --------------------------------------------------------------- */

typedef struct vset vset;

typedef struct vset_config {
    uint32_t dim;        /* components of input vectors */
    uint32_t reduce;     /* 0, or the projected dimension (< dim) */
    int quant;           /* enum vset_quant */
    int m;               /* 0: VSET_DEFAULT_M */
    uint64_t seed;       /* level draws and the projection matrix */
} vset_config;

/* A new empty set holding one reference; NULL with the error line (bad
 * config, out of memory). */
vset *vset_new(const vset_config *cfg, char *err, size_t errlen);
/* References: a key holds one; so does a search or insert running on
 * another thread, so that deleting the key in the meantime frees nothing
 * under it.  vset_free drops one and frees the set with the last.  Any
 * thread. */
void vset_retain(vset *s);
void vset_free(vset *s);
/* A deep copy (COPY, RESTORE-style duplication); NULL when out of memory.
 * Owner thread only. */
vset *vset_dup(const vset *s);

uint64_t vset_card(const vset *s);
uint32_t vset_dim(const vset *s);        /* stored dimension (reduced) */
uint32_t vset_input_dim(const vset *s);  /* what VADD/VSIM vectors have */
uint32_t vset_reduce(const vset *s);     /* 0 when not projected */
int vset_quant(const vset *s);
int vset_m(const vset *s);
int vset_max_level(const vset *s);       /* -1 when empty */
uint64_t vset_uid(const vset *s);        /* process-unique set id */
uint64_t vset_max_node_uid(const vset *s); /* inserts so far, updates included */
uint64_t vset_attr_count(const vset *s);   /* elements with attributes */
uint32_t vset_id_bound(const vset *s);     /* every id is below it */
/* Bytes held by the set (as the allocator reports them). */
size_t vset_memory(const vset *s);

/* ---- elements ----------------------------------------------------------- */

/* The id of an element, or -1.  Ids are < 2^31. */
int64_t vset_find(vset *s, const char *name, size_t len);
/* Name and attributes of a live id (attributes: NULL when none).  The
 * pointers stay valid until the element is deleted or its attributes set. */
const char *vset_name(const vset *s, uint32_t id, size_t *len);
const char *vset_attr(const vset *s, uint32_t id, size_t *len);

/* Adds name with vector vec (vset_input_dim components, finite) using
 * ef_build candidates (0: the default).  When the name is already present
 * its vector is left alone and 0 is returned (Redis's VADD answers 0 then;
 * see vset_update).  With attr non-NULL the attributes are set as well
 * (alen 0 removes them), on a new and on an existing element alike.
 * Returns 1 added, 0 already present, -1 with the error line.  Callable
 * from any thread for names that no other thread is adding at the same
 * time; setting attributes of an existing element is owner-only. */
int vset_add(vset *s, const float *vec, const char *name, size_t len, int ef_build, const char *attr,
             size_t alen, char *err, size_t errlen);

/* Replaces the vector of an existing element (delete and re-insert, the
 * name and attributes kept).  Owner thread.  0, or -1 with the error. */
int vset_update(vset *s, uint32_t id, const float *vec, int ef_build, char *err, size_t errlen);

/* Removes an element and repairs its neighbours' links.  1 removed, 0 not
 * present.  Owner thread. */
int vset_remove(vset *s, const char *name, size_t len);

/* Sets (alen > 0) or removes (alen == 0) the attributes of id.  Owner
 * thread.  0, or -1 out of memory. */
int vset_set_attr(vset *s, uint32_t id, const char *attr, size_t alen);

/* The vector of id as it is stored, turned back into input space as far as
 * possible: de-quantized and multiplied by the norm it had before
 * normalisation (projected sets return the projected vector).  out holds
 * vset_dim floats. */
void vset_get_vector(const vset *s, uint32_t id, float *out);

/* VEMB RAW: the stored bytes (*data, *len: int8 per component for Q8,
 * float32 for NOQUANT, a bitmap for BIN), the norm before normalisation,
 * and for Q8 the range the int8 values map onto ([-range, +range]). */
void vset_get_raw(const vset *s, uint32_t id, const void **data, size_t *len, float *l2, float *range);

/* Neighbours of id at each level 0..level (VLINKS).  Calls fn once per
 * level, from the top level down, with that level's ids. */
typedef void (*vset_links_fn)(void *ud, int level, const uint32_t *ids, uint32_t n);
int vset_node_level(const vset *s, uint32_t id);
void vset_links(vset *s, uint32_t id, vset_links_fn fn, void *ud);
/* Cosine similarity rescaled to [0, 1] between two stored elements. */
double vset_similarity(const vset *s, uint32_t a, uint32_t b);

/* A uniformly drawn live id, or -1 when empty.  rnd: the caller's random
 * 64-bit value (the set keeps no generator shared across threads). */
int64_t vset_random(const vset *s, uint64_t rnd);

/* Elements in name order (memcmp order, shorter first on a tie) from the
 * first name >= (or > when excl) start, for VRANGE.  start NULL: from the
 * first element.  Calls fn(ud, id) until it returns non-zero or the set
 * ends. */
typedef int (*vset_each_fn)(void *ud, uint32_t id);
void vset_range(vset *s, const char *start, size_t slen, int excl, vset_each_fn fn, void *ud);

/* ---- search --------------------------------------------------------------- */

struct vfilter;

typedef struct vset_hit {
    uint32_t id;
    double sim;  /* cosine similarity rescaled to [0, 1]: 1 - (1 - cos) / 2 */
    /* With vset_query.copy: malloc'd copies (through the set's allocator,
     * freed by vset_hits_free), taken under the lock, so that a search on
     * another thread hands back names the owner may delete right after. */
    char *name, *attr; /* attr NULL when none */
    size_t name_len, attr_len;
} vset_hit;

typedef struct vset_query {
    const float *vec;     /* vset_input_dim components; or NULL with ele */
    int64_t ele;          /* search from a stored element's vector (-1: vec) */
    uint32_t count;       /* results wanted */
    uint32_t ef;          /* candidates explored (raised to count if lower) */
    double epsilon;       /* 0: off; else stop at the first hit with 1 - sim > epsilon */
    const struct vfilter *filter; /* NULL: none */
    uint64_t filter_ef;   /* candidates a filter may examine (0: unbounded) */
    int truth;            /* linear scan instead of the graph */
    int reduced;          /* vec already has vset_dim components (no projection) */
    int copy;             /* fill the hits' name and attr copies */
} vset_query;

/* Fills hits[0..count) best first; returns how many, or -1 when out of
 * memory.  Any thread. */
int vset_search(vset *s, const vset_query *q, vset_hit *hits);
void vset_hits_free(vset_hit *hits, int n);

/* ---- CAS inserts: search anywhere, commit on the owner thread ---------- */

typedef struct vset_prep vset_prep;
/* Quantizes vec and collects the new node's neighbour candidates at every
 * level.  NULL with the error line.  Any thread. */
vset_prep *vset_prepare(vset *s, const float *vec, int ef_build, char *err, size_t errlen);
/* Links the prepared node under name (attributes as in vset_add).  Owner
 * thread.  Uses the prepared candidates when the graph lost no node since
 * vset_prepare, else searches again.  Frees p.  1 added, 0 name already
 * present (nothing changed), -1 with the error line. */
int vset_commit(vset *s, vset_prep *p, const char *name, size_t len, const char *attr, size_t alen,
                char *err, size_t errlen);
void vset_prep_free(vset_prep *p);

/* ---- serialization (RDB records, DUMP, module RDB callbacks) ----------- */

/* The set as bytes: configuration, projection, every element with its
 * stored vector, attributes and links, so that loading does not rebuild
 * the graph.  The writer is called with consecutive pieces; a non-zero
 * return aborts (returned).  Owner thread. */
typedef int (*vset_write_fn)(void *ud, const void *p, size_t n);
int vset_save(const vset *s, vset_write_fn w, void *ud);
/* Reads what vset_save wrote, checking every count, id and link: hostile
 * bytes give NULL and the error line, never a crash or a half-valid set.
 * The reader fills exactly n bytes or returns non-zero. */
typedef int (*vset_read_fn)(void *ud, void *p, size_t n);
vset *vset_load(vset_read_fn r, void *ud, char *err, size_t errlen);

/* ---- checks (tests, DEBUG) --------------------------------------------- */

/* Verifies the graph's invariants: every link points at a live node of a
 * high enough level, reverse links mirror forward links, no node links to
 * itself or twice to one node, counts within capacity, the entry point is
 * on the top level.  0, or -1 with what is wrong. */
int vset_check(vset *s, char *err, size_t errlen);

/* Which distance kernels run here: "avx512-vnni", "avx2" or "scalar". */
const char *vset_kernels(void);

#endif
