/* gguf_write.c - the streaming GGUF v3 writer of gguf_write.h.
 *
 * Metadata values are serialized as soon as they are set (each kv keeps its
 * own byte blob: type tag and payload), so begin only concatenates them.
 * Tensor infos keep name, shape and type; their data offsets are computed
 * at begin, when the alignment is final.  Writing then streams: the writer
 * tracks how many bytes of the current tensor are still due and pads after
 * each one, so nothing but the description is ever held in memory.
 * The on-disk byte order is little-endian; so is every host we build on. */
#include "gguf/gguf_write.h"

#include "kernels/quant.h"
#include "kernels/ialloc.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_write.c writes host-order values and needs a little-endian host"
#endif

typedef struct {
    char *key;
    uint32_t type;    /* enum gguf_vtype */
    uint8_t *payload; /* the value as on disk, after the type tag */
    size_t len;
} wkv;

typedef struct {
    char *name;
    uint32_t n_dims, type;
    int64_t ne[GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} wtensor;

struct gguf_writer {
    wkv *kvs;
    uint64_t n_kv, cap_kv;
    wtensor *ts;
    uint64_t n_t, cap_t;
    uint32_t alignment;
    char error[256];
    /* streaming state */
    FILE *f;
    int begun, failed;
    uint64_t cur;  /* tensor being written */
    uint64_t left; /* its bytes still due */
    uint64_t pos;  /* bytes written to the file so far */
};

static int set_error(gguf_writer *w, const char *fmt, ...) {
    if (!w->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->error, sizeof w->error, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

gguf_writer *gguf_writer_new(void) {
    gguf_writer *w = ie_calloc(1, sizeof *w);
    if (w) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return w;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].payload);
    }
    for (uint64_t i = 0; i < w->n_t; i++) free(w->ts[i].name);
    free(w->kvs);
    free(w->ts);
    free(w);
}

const char *gguf_writer_error(const gguf_writer *w) { return w->error; }
uint64_t gguf_writer_n_kv(const gguf_writer *w) { return w->n_kv; }
uint32_t gguf_writer_alignment(const gguf_writer *w) { return w->alignment; }
uint64_t gguf_writer_n_tensors(const gguf_writer *w) { return w->n_t; }
uint64_t gguf_writer_current(const gguf_writer *w) { return w->cur; }

uint64_t gguf_writer_tensor_nbytes(const gguf_writer *w, uint64_t i) {
    return i < w->n_t ? w->ts[i].nbytes : 0;
}

/* ---- metadata ---------------------------------------------------------------- */

static int64_t find_kv(const gguf_writer *w, const char *key) {
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0) return (int64_t)i;
    return -1;
}

/* Takes ownership of payload (freed on failure too). */
static int put_kv(gguf_writer *w, const char *key, uint32_t type, uint8_t *payload, size_t len) {
    if (w->begun) {
        free(payload);
        return set_error(w, "key '%s' set after writing began", key ? key : "");
    }
    if (!key) {
        free(payload);
        return set_error(w, "metadata key is NULL");
    }
    size_t klen = strlen(key);
    if (klen == 0 || klen > GGUF_WRITE_MAX_KEY) {
        free(payload);
        return set_error(w, "metadata key of %zu bytes (must be 1..%d)", klen, GGUF_WRITE_MAX_KEY);
    }
    int64_t at = find_kv(w, key);
    if (at >= 0) {
        free(w->kvs[at].payload);
        w->kvs[at].type = type;
        w->kvs[at].payload = payload;
        w->kvs[at].len = len;
        return 0;
    }
    if (w->n_kv == w->cap_kv) {
        uint64_t nc = w->cap_kv ? 2 * w->cap_kv : 16;
        wkv *n = ie_realloc(w->kvs, (size_t)nc * sizeof *n);
        if (!n) {
            free(payload);
            return set_error(w, "out of memory adding key '%s'", key);
        }
        w->kvs = n;
        w->cap_kv = nc;
    }
    char *k = ie_strdup(key);
    if (!k) {
        free(payload);
        return set_error(w, "out of memory adding key '%s'", key);
    }
    w->kvs[w->n_kv++] = (wkv){k, type, payload, len};
    return 0;
}

static int put_scalar(gguf_writer *w, const char *key, uint32_t type, const void *v) {
    size_t sz = gguf_vtype_size(type);
    uint8_t *p = ie_malloc(sz);
    if (!p) return set_error(w, "out of memory setting key '%s'", key ? key : "");
    memcpy(p, v, sz);
    return put_kv(w, key, type, p, sz);
}

int gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v) { return put_scalar(w, key, GGUF_UINT8, &v); }
int gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v) { return put_scalar(w, key, GGUF_INT8, &v); }
int gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v) { return put_scalar(w, key, GGUF_UINT16, &v); }
int gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v) { return put_scalar(w, key, GGUF_INT16, &v); }
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { return put_scalar(w, key, GGUF_INT32, &v); }
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v) { return put_scalar(w, key, GGUF_FLOAT32, &v); }
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { return put_scalar(w, key, GGUF_UINT64, &v); }
int gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v) { return put_scalar(w, key, GGUF_INT64, &v); }
int gguf_writer_set_f64(gguf_writer *w, const char *key, double v) { return put_scalar(w, key, GGUF_FLOAT64, &v); }

int gguf_writer_set_bool(gguf_writer *w, const char *key, int v) {
    uint8_t b = v ? 1 : 0;
    return put_scalar(w, key, GGUF_BOOL, &b);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    if (key && strcmp(key, "general.alignment") == 0) {
        if (v == 0 || (v & (v - 1)) != 0)
            return set_error(w, "general.alignment %u is not a power of two", v);
        if (w->begun) return set_error(w, "general.alignment set after writing began");
        if (put_scalar(w, key, GGUF_UINT32, &v) < 0) return -1;
        w->alignment = v;
        return 0;
    }
    return put_scalar(w, key, GGUF_UINT32, &v);
}

int gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, uint64_t len) {
    if (!s && len) return set_error(w, "key '%s': NULL string", key ? key : "");
    if (len > SIZE_MAX - 8) return set_error(w, "key '%s': string too long", key ? key : "");
    uint8_t *p = ie_malloc((size_t)len + 8);
    if (!p) return set_error(w, "out of memory setting key '%s'", key ? key : "");
    memcpy(p, &len, 8);
    if (len) memcpy(p + 8, s, (size_t)len);
    return put_kv(w, key, GGUF_STRING, p, (size_t)len + 8);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *s) {
    if (!s) return set_error(w, "key '%s': NULL string", key ? key : "");
    return gguf_writer_set_strn(w, key, s, strlen(s));
}

int gguf_writer_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n) {
    size_t esz = gguf_vtype_size(elem_type);
    if (!esz) return set_error(w, "key '%s': arrays of %s cannot be set here", key ? key : "",
                               gguf_vtype_name(elem_type));
    if (n > (SIZE_MAX - 12) / esz) return set_error(w, "key '%s': array too long", key ? key : "");
    if (n && !data) return set_error(w, "key '%s': NULL array data", key ? key : "");
    size_t len = 12 + (size_t)n * esz;
    uint8_t *p = ie_malloc(len);
    if (!p) return set_error(w, "out of memory setting key '%s'", key ? key : "");
    memcpy(p, &elem_type, 4);
    memcpy(p + 4, &n, 8);
    if (n) memcpy(p + 12, data, (size_t)n * esz);
    return put_kv(w, key, GGUF_ARRAY, p, len);
}

/* Builds the payload of an array of strings from a getter, in two passes
 * (size, then copy) so that large vocabularies are allocated once. */
typedef void (*str_getter)(const void *ctx, uint64_t i, const char **s, uint64_t *len);

static int put_str_array(gguf_writer *w, const char *key, const void *ctx, str_getter get, uint64_t n) {
    size_t len = 12;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t l;
        get(ctx, i, &s, &l);
        if (l > SIZE_MAX - 8 - len) return set_error(w, "key '%s': string array too long", key ? key : "");
        if (l && !s) return set_error(w, "key '%s': NULL string at %llu", key ? key : "", (unsigned long long)i);
        len += 8 + (size_t)l;
    }
    uint8_t *p = ie_malloc(len);
    if (!p) return set_error(w, "out of memory setting key '%s' (%zu bytes)", key ? key : "", len);
    uint32_t t = GGUF_STRING;
    memcpy(p, &t, 4);
    memcpy(p + 4, &n, 8);
    size_t at = 12;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t l;
        get(ctx, i, &s, &l);
        memcpy(p + at, &l, 8);
        if (l) memcpy(p + at + 8, s, (size_t)l);
        at += 8 + (size_t)l;
    }
    return put_kv(w, key, GGUF_ARRAY, p, len);
}

typedef struct { const char *const *strs; const uint64_t *lens; } str_list;

static void list_get(const void *ctx, uint64_t i, const char **s, uint64_t *len) {
    const str_list *l = ctx;
    *s = l->strs[i];
    *len = l->lens ? l->lens[i] : (*s ? strlen(*s) : 0);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                            uint64_t n) {
    if (n && !strs) return set_error(w, "key '%s': NULL string array", key ? key : "");
    str_list l = {strs, lens};
    return put_str_array(w, key, &l, list_get, n);
}

static void kv_get(const void *ctx, uint64_t i, const char **s, uint64_t *len) {
    gguf_arr_str((const gguf_kv *)ctx, i, s, len);
}

int gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv) {
    if (!kv || !kv->key) return set_error(w, "copy of a NULL key");
    if (kv->type == GGUF_STRING) {
        uint64_t len;
        memcpy(&len, kv->data, 8);
        return gguf_writer_set_strn(w, kv->key, (const char *)kv->data + 8, len);
    }
    if (kv->type == GGUF_ARRAY) {
        if (kv->arr_type == GGUF_STRING) return put_str_array(w, kv->key, kv, kv_get, kv->arr_n);
        return gguf_writer_set_arr(w, kv->key, kv->arr_type, kv->data, kv->arr_n);
    }
    if (!gguf_vtype_size(kv->type)) return set_error(w, "key '%s': unknown value type %u", kv->key, kv->type);
    if (strcmp(kv->key, "general.alignment") == 0) {
        if (kv->type != GGUF_UINT32) return set_error(w, "general.alignment is not a u32");
        uint32_t v;
        memcpy(&v, kv->data, 4);
        return gguf_writer_set_u32(w, kv->key, v);
    }
    return put_scalar(w, kv->key, kv->type, kv->data);
}

int gguf_writer_remove_kv(gguf_writer *w, const char *key) {
    if (w->begun || !key) return -1;
    int64_t at = find_kv(w, key);
    if (at < 0) return -1;
    free(w->kvs[at].key);
    free(w->kvs[at].payload);
    memmove(&w->kvs[at], &w->kvs[at + 1], (size_t)(w->n_kv - (uint64_t)at - 1) * sizeof *w->kvs);
    w->n_kv--;
    if (strcmp(key, "general.alignment") == 0) w->alignment = GGUF_DEFAULT_ALIGNMENT;
    return 0;
}

/* ---- tensors ------------------------------------------------------------------ */

int gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type) {
    if (w->begun) return set_error(w, "tensor '%s' added after writing began", name ? name : "");
    if (!name || !*name) return set_error(w, "tensor with an empty name");
    size_t nlen = strlen(name);
    if (nlen > GGUF_WRITE_MAX_NAME)
        return set_error(w, "tensor name '%.40s...' is %zu bytes (at most %d)", name, nlen, GGUF_WRITE_MAX_NAME);
    for (uint64_t i = 0; i < w->n_t; i++)
        if (strcmp(w->ts[i].name, name) == 0) return set_error(w, "duplicate tensor name '%s'", name);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return set_error(w, "tensor '%s': %u dimensions (must be 1..%d)", name, n_dims, GGUF_MAX_DIMS);
    if (!quant_block_bytes(type)) return set_error(w, "tensor '%s': unknown type %u", name, type);
    wtensor t = {0};
    t.n_dims = n_dims;
    t.type = type;
    uint64_t rows = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1) return set_error(w, "tensor '%s': dimension %u is %lld", name, d, (long long)t.ne[d]);
        if (d > 0) {
            if ((uint64_t)t.ne[d] > UINT64_MAX / rows) return set_error(w, "tensor '%s': too large", name);
            rows *= (uint64_t)t.ne[d];
        }
    }
    size_t rb = quant_row_bytes(type, t.ne[0]);
    if (!rb)
        return set_error(w, "tensor '%s': row of %lld is not a multiple of the %s block (%lld)", name,
                         (long long)t.ne[0], quant_type_name(type), (long long)quant_block_elems(type));
    if (rows > (UINT64_MAX / 2) / rb) return set_error(w, "tensor '%s': too large", name);
    t.nbytes = rows * rb;
    if (w->n_t == w->cap_t) {
        uint64_t nc = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *n = ie_realloc(w->ts, (size_t)nc * sizeof *n);
        if (!n) return set_error(w, "out of memory adding tensor '%s'", name);
        w->ts = n;
        w->cap_t = nc;
    }
    t.name = ie_strdup(name);
    if (!t.name) return set_error(w, "out of memory adding tensor '%s'", name);
    w->ts[w->n_t++] = t;
    return 0;
}

/* ---- writing -------------------------------------------------------------------- */

static int put(gguf_writer *w, const void *p, size_t n, char *err, size_t errlen) {
    if (n && fwrite(p, 1, n, w->f) != n) {
        w->failed = 1;
        return fail(err, errlen, "write failed at byte %llu: %s", (unsigned long long)w->pos,
                    errno ? strerror(errno) : "short write");
    }
    w->pos += n;
    return 0;
}

static int put_zeros(gguf_writer *w, uint64_t n, char *err, size_t errlen) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (put(w, zeros, k, err, errlen) < 0) return -1;
        n -= k;
    }
    return 0;
}

static uint64_t pad_to(uint64_t x, uint64_t a) { return (a - x % a) % a; }

static int put_gstr(gguf_writer *w, const char *s, char *err, size_t errlen) {
    uint64_t len = strlen(s);
    if (put(w, &len, 8, err, errlen) < 0) return -1;
    return put(w, s, (size_t)len, err, errlen);
}

int gguf_writer_begin(gguf_writer *w, FILE *f, char *err, size_t errlen) {
    if (w->error[0]) return fail(err, errlen, "%s", w->error);
    if (w->begun) return fail(err, errlen, "gguf_writer_begin called twice");
    if (!f) return fail(err, errlen, "no output file");
    w->f = f;
    w->begun = 1;
    w->pos = 0;
    /* Offsets are relative to the data section, each aligned. */
    uint64_t off = 0;
    for (uint64_t i = 0; i < w->n_t; i++) {
        off += pad_to(off, w->alignment);
        w->ts[i].offset = off;
        if (w->ts[i].nbytes > UINT64_MAX / 2 - off) return fail(err, errlen, "tensor data too large");
        off += w->ts[i].nbytes;
    }
    uint32_t version = 3;
    errno = 0;
    if (put(w, "GGUF", 4, err, errlen) < 0 || put(w, &version, 4, err, errlen) < 0 ||
        put(w, &w->n_t, 8, err, errlen) < 0 || put(w, &w->n_kv, 8, err, errlen) < 0)
        return -1;
    for (uint64_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kvs[i];
        if (put_gstr(w, kv->key, err, errlen) < 0 || put(w, &kv->type, 4, err, errlen) < 0 ||
            put(w, kv->payload, kv->len, err, errlen) < 0)
            return -1;
    }
    for (uint64_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->ts[i];
        if (put_gstr(w, t->name, err, errlen) < 0 || put(w, &t->n_dims, 4, err, errlen) < 0) return -1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t v = (uint64_t)t->ne[d];
            if (put(w, &v, 8, err, errlen) < 0) return -1;
        }
        if (put(w, &t->type, 4, err, errlen) < 0 || put(w, &t->offset, 8, err, errlen) < 0) return -1;
    }
    if (put_zeros(w, pad_to(w->pos, w->alignment), err, errlen) < 0) return -1;
    w->cur = 0;
    w->left = w->n_t ? w->ts[0].nbytes : 0;
    return 0;
}

int gguf_writer_write(gguf_writer *w, const void *data, size_t n, char *err, size_t errlen) {
    if (!w->begun) return fail(err, errlen, "gguf_writer_write before gguf_writer_begin");
    if (w->failed) return fail(err, errlen, "an earlier write failed");
    if (w->cur >= w->n_t) return fail(err, errlen, "%zu bytes written past the last tensor", n);
    if (n > w->left)
        return fail(err, errlen, "tensor '%s': %zu bytes written where %llu remain", w->ts[w->cur].name, n,
                    (unsigned long long)w->left);
    errno = 0;
    if (put(w, data, n, err, errlen) < 0) return -1;
    w->left -= n;
    if (w->left == 0) {
        /* llama.cpp's and gguf-py's writers pad after every tensor, the last included */
        if (put_zeros(w, pad_to(w->ts[w->cur].nbytes, w->alignment), err, errlen) < 0) return -1;
        w->cur++;
        /* adding a tensor refuses any ne < 1, so the next one has bytes due:
         * left reaching 0 is what moves to the next tensor */
        w->left = w->cur < w->n_t ? w->ts[w->cur].nbytes : 0;
        assert(w->cur >= w->n_t || w->left > 0);
    }
    return 0;
}

int gguf_writer_finish(gguf_writer *w, uint64_t *size, char *err, size_t errlen) {
    if (!w->begun) return fail(err, errlen, "gguf_writer_finish before gguf_writer_begin");
    if (w->failed) return fail(err, errlen, "an earlier write failed");
    if (w->cur < w->n_t)
        return fail(err, errlen, "tensor '%s' is incomplete (%llu bytes missing) and %llu more not written",
                    w->ts[w->cur].name, (unsigned long long)w->left, (unsigned long long)(w->n_t - w->cur - 1));
    errno = 0;
    if (fflush(w->f) != 0 || ferror(w->f)) {
        w->failed = 1;
        return fail(err, errlen, "flushing the output failed: %s", errno ? strerror(errno) : "I/O error");
    }
    if (size) *size = w->pos;
    return 0;
}
