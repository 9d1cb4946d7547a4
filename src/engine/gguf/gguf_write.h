/* gguf_write.h - internal: a streaming GGUF v3 writer.
 *
 * A file is described first (metadata and tensor infos, held in memory),
 * then written in one pass: gguf_writer_begin writes the header, metadata
 * and tensor infos with every data offset already computed, and the tensor
 * data follows in the order the tensors were added, in pieces of any size
 * (gguf_writer_write), so a model is never held in memory whole.  Each
 * tensor starts at a multiple of the alignment (general.alignment, default
 * 32) from the start of the data section and is followed by zero padding.
 *
 * Errors: the describing calls (set_*, add_tensor) return 0 or -1 and keep
 * the first error, which gguf_writer_begin then reports; begin, write and
 * finish return 0 or -1 with a message in (err, errlen).  Setting a key that
 * exists replaces its value in place (the key keeps its position). */
#ifndef INFER_GGUF_WRITE_H
#define INFER_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf/gguf.h"

#define GGUF_WRITE_MAX_NAME 63       /* tensor names: llama.cpp's 64-byte buffer, NUL included */
#define GGUF_WRITE_MAX_KEY 65535     /* metadata keys (a u16 length in the spec's words) */
#define GGUF_DEFAULT_ALIGNMENT 32

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void); /* NULL when out of memory */
void gguf_writer_free(gguf_writer *w);
/* The first error of a describing call, or "" if none. */
const char *gguf_writer_error(const gguf_writer *w);

/* ---- metadata -------------------------------------------------------------- */
int gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v);
/* general.alignment must be set as u32, a power of two. */
int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, int v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v);
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s); /* NUL-terminated */
int gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, uint64_t len);
/* An array of n scalars of elem_type (enum gguf_vtype, not STRING/ARRAY),
 * given as n * gguf_vtype_size(elem_type) bytes in little-endian order. */
int gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n);
/* An array of n strings; lens may be NULL for NUL-terminated strings. */
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                            uint64_t n);
/* Copies a value read by gguf.h, with its type, under kv->key. */
int gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
/* Removes a key; 0 if removed, -1 if absent (not an error state). */
int gguf_writer_remove_kv(gguf_writer *w, const char *key);
uint64_t gguf_writer_n_kv(const gguf_writer *w);
uint32_t gguf_writer_alignment(const gguf_writer *w);

/* ---- tensors --------------------------------------------------------------- */
/* ne[0] is the contiguous dimension and must be a multiple of the type's
 * block; 1 <= n_dims <= GGUF_MAX_DIMS; every ne[i] >= 1. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type);
uint64_t gguf_writer_n_tensors(const gguf_writer *w);
/* Bytes of tensor i's data (0 if out of range). */
uint64_t gguf_writer_tensor_nbytes(const gguf_writer *w, uint64_t i);

/* ---- writing ----------------------------------------------------------------- */
/* Writes header, metadata, tensor infos and the padding before the data.
 * After this the description is frozen. */
int gguf_writer_begin(gguf_writer *w, FILE *f, char *err, size_t errlen);
/* Appends n bytes of the current tensor's data; a piece never spans two
 * tensors.  Padding is written when a tensor is complete. */
int gguf_writer_write(gguf_writer *w, const void *data, size_t n, char *err, size_t errlen);
/* Index of the tensor the next write goes to (== n_tensors when all done). */
uint64_t gguf_writer_current(const gguf_writer *w);
/* Checks that every tensor is complete and flushes the FILE (it stays open:
 * the caller fcloses it and checks that too).  The file's total size is
 * stored in *size if size is not NULL. */
int gguf_writer_finish(gguf_writer *w, uint64_t *size, char *err, size_t errlen);

#endif
