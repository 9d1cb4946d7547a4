/* gguf.h - internal: a validating GGUF v2/v3 reader over a read-only
 * in-memory image of the file (see load_bytes in gguf.c for why not a mapping).
 *
 * gguf_open loads the file and checks the whole header before returning:
 * every string, array, metadata value and tensor info lies inside the file,
 * counts fit in memory, tensor shapes are positive and their byte sizes do
 * not overflow, data offsets are aligned and inside the file, and no two
 * tensors overlap.  After that, every accessor here is bounds-safe.
 * Values are little-endian and may be unaligned in the map: read numbers via
 * the getters, never by casting pointers. */
#ifndef INFER_GGUF_H
#define INFER_GGUF_H

#include <stddef.h>
#include <stdint.h>

enum gguf_vtype {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3,
    GGUF_UINT32 = 4, GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7,
    GGUF_STRING = 8, GGUF_ARRAY = 9, GGUF_UINT64 = 10, GGUF_INT64 = 11,
    GGUF_FLOAT64 = 12,
};

#define GGUF_MAX_DIMS 4

typedef struct gguf_kv {
    const char *key;       /* NUL-terminated copy */
    uint32_t type;         /* enum gguf_vtype */
    uint32_t arr_type;     /* element type when type == GGUF_ARRAY */
    uint64_t arr_n;        /* element count when type == GGUF_ARRAY */
    const uint8_t *data;   /* the value's bytes in the map (after the type tags) */
    uint64_t *str_offsets; /* for arrays of strings: offset of each element from data */
} gguf_kv;

typedef struct gguf_tensor {
    const char *name;      /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] is contiguous; unused dims are 1 */
    uint32_t type;         /* ggml type id (see quant.h) */
    uint64_t offset;       /* from the start of the data section */
    uint64_t nbytes;
    const void *data;      /* in the loaded image */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Loads and validates path.  A tensor of a type libinfer cannot compute with
 * (quant_type_supported) is an error that names the tensor and the type. */
int gguf_open(const char *path, gguf_file **out, char *err, size_t errlen);
/* Reads and checks only the header (metadata and tensor infos, every
 * tensor's extent checked against the file's size) without reading the
 * tensor data: for sizing a model up before loading it.  Every tensor's
 * data pointer is NULL; gguf_file_size is the whole file's. */
int gguf_open_header(const char *path, gguf_file **out, char *err, size_t errlen);
/* Same checks over a caller-owned buffer (fuzzing, tests); no copy is made. */
int gguf_open_mem(const void *buf, size_t len, gguf_file **out, char *err, size_t errlen);
void gguf_close(gguf_file *g);

uint32_t gguf_version(const gguf_file *g);
uint64_t gguf_file_size(const gguf_file *g);
uint32_t gguf_alignment(const gguf_file *g);

uint64_t gguf_n_kv(const gguf_file *g);
const gguf_kv *gguf_kv_at(const gguf_file *g, uint64_t i);
const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key); /* NULL if absent */

/* Typed getters: 0 ok; -1 absent; -2 present with an incompatible type or a
 * value out of the target's range.  Integer getters accept any integer type
 * (and bool) whose value fits; gguf_get_f32 accepts float32 and float64. */
int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out);
int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *g, const char *key, float *out);
int gguf_get_bool(const gguf_file *g, const char *key, int *out);
/* Strings are not NUL-terminated in the map: (ptr, len). */
int gguf_get_str(const gguf_file *g, const char *key, const char **s, uint64_t *len);
/* An array: 0 ok and *kv set; -1 absent; -2 not an array of elem_type
 * (pass UINT32_MAX to accept any element type). */
int gguf_get_arr(const gguf_file *g, const char *key, uint32_t elem_type, const gguf_kv **kv);

/* Elements of an array kv (i < kv->arr_n is the caller's check). */
void gguf_arr_str(const gguf_kv *kv, uint64_t i, const char **s, uint64_t *len);
float gguf_arr_f32(const gguf_kv *kv, uint64_t i);   /* FLOAT32 arrays */
int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i); /* any integer element type */

uint64_t gguf_n_tensors(const gguf_file *g);
const gguf_tensor *gguf_tensor_at(const gguf_file *g, uint64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name);

/* Size in bytes of one value of a scalar type; 0 for STRING/ARRAY/unknown. */
size_t gguf_vtype_size(uint32_t t);
const char *gguf_vtype_name(uint32_t t);

#endif
