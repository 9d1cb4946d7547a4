/* gguf.c - a validating GGUF v2/v3 reader over a read-only in-memory image.
 *
 * The whole header is parsed and checked once, in gguf_open: a model file is
 * hostile input like any other, and checking everything up front lets every
 * later accessor stay simple and safe.  Counts are bounded by the bytes left
 * in the file before anything is allocated for them, so a 40-byte file that
 * claims 2^60 tensors fails fast instead of exhausting memory.
 *
 * Layout (all little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * then n_kv (string key, u32 type, value), then n_tensors (string name,
 * u32 n_dims, u64 ne[n_dims], u32 type, u64 offset), then padding to the
 * alignment (general.alignment, default 32), then the tensor data. */
#include "gguf/gguf.h"

#include "kernels/quant.h"
#include "kernels/ialloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 4096 /* longer keys or tensor names are refused */

struct gguf_file {
    const uint8_t *base;
    size_t size;      /* bytes at base */
    size_t file_size; /* bytes of the file: more than size for a header-only open */
    int mapped;       /* base came from mmap and must be unmapped */
    int header_only;  /* base holds a prefix of the file: no tensor data */
    int ran_out;      /* parse failed for want of bytes at base (read more and retry) */
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv, n_tensors;
    gguf_kv *kvs;
    gguf_tensor *tensors;
    char *names; /* one allocation holding every key and tensor name */
    uint64_t data_offset;
};

typedef struct {
    const uint8_t *p;
    size_t size, pos;
    char *err;
    size_t errlen;
    int *ran_out; /* set when a check failed because the bytes ended */
} cursor;

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static size_t left(const cursor *c) { return c->size - c->pos; }

/* A check that failed at the end of the bytes: a header-only open reads
 * more and tries again; for a whole file it is the error. */
static int short_of(cursor *c) {
    *c->ran_out = 1;
    return -1;
}

static int take(cursor *c, void *dst, size_t n, const char *what) {
    if (left(c) < n)
        return short_of(c), fail(c->err, c->errlen, "truncated file: %s at byte %zu needs %zu bytes, %zu left",
                                 what, c->pos, n, left(c));
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return 0;
}

static int skip(cursor *c, uint64_t n, const char *what) {
    if (left(c) < n)
        return short_of(c), fail(c->err, c->errlen, "truncated file: %s at byte %zu needs %llu bytes, %zu left",
                                 what, c->pos, (unsigned long long)n, left(c));
    c->pos += (size_t)n;
    return 0;
}

size_t gguf_vtype_size(uint32_t t) {
    switch (t) {
    case GGUF_UINT8: case GGUF_INT8: case GGUF_BOOL: return 1;
    case GGUF_UINT16: case GGUF_INT16: return 2;
    case GGUF_UINT32: case GGUF_INT32: case GGUF_FLOAT32: return 4;
    case GGUF_UINT64: case GGUF_INT64: case GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_vtype_name(uint32_t t) {
    static const char *const names[] = {"uint8", "int8", "uint16", "int16", "uint32",
                                        "int32", "float32", "bool", "string", "array",
                                        "uint64", "int64", "float64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* A string is u64 length + bytes; returns its position without copying. */
static int read_str(cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    if (take(c, len, 8, what) < 0) return -1;
    *s = c->p + c->pos;
    return skip(c, *len, what);
}

/* Checks a value of type t at the cursor and moves past it.  Arrays of
 * strings get an offset table so that element i is O(1) later. */
static int read_value(cursor *c, gguf_kv *kv, const char *key) {
    kv->data = c->p + c->pos;
    if (kv->type == GGUF_STRING) {
        const uint8_t *s;
        uint64_t len;
        return read_str(c, &s, &len, "string value");
    }
    if (kv->type != GGUF_ARRAY) {
        size_t sz = gguf_vtype_size(kv->type);
        if (!sz) return fail(c->err, c->errlen, "key '%s': unknown value type %u", key, kv->type);
        return skip(c, sz, "metadata value");
    }
    if (take(c, &kv->arr_type, 4, "array type") < 0 || take(c, &kv->arr_n, 8, "array length") < 0)
        return -1;
    kv->data = c->p + c->pos;
    if (kv->arr_type == GGUF_STRING) {
        /* Each element needs at least its 8-byte length: bound n before allocating. */
        if (kv->arr_n > left(c) / 8)
            return short_of(c), fail(c->err, c->errlen,
                                     "key '%s': array of %llu strings cannot fit in the %zu bytes left", key,
                                     (unsigned long long)kv->arr_n, left(c));
        kv->str_offsets = ie_malloc((size_t)(kv->arr_n ? kv->arr_n : 1) * sizeof(uint64_t));
        if (!kv->str_offsets) return fail(c->err, c->errlen, "out of memory reading key '%s'", key);
        size_t start = c->pos;
        for (uint64_t i = 0; i < kv->arr_n; i++) {
            const uint8_t *s;
            uint64_t len;
            kv->str_offsets[i] = c->pos - start;
            if (read_str(c, &s, &len, "string array element") < 0) return -1;
        }
        return 0;
    }
    size_t esz = gguf_vtype_size(kv->arr_type);
    if (!esz)
        return fail(c->err, c->errlen, "key '%s': arrays of type %s are not supported", key,
                    gguf_vtype_name(kv->arr_type));
    if (kv->arr_n > left(c) / esz)
        return short_of(c), fail(c->err, c->errlen,
                                 "key '%s': array of %llu %s elements runs past the end of the file", key,
                                 (unsigned long long)kv->arr_n, gguf_vtype_name(kv->arr_type));
    return skip(c, kv->arr_n * esz, "array data");
}

/* Copies a name into the shared name arena (NUL-terminated). */
static const char *intern(char **arena, const uint8_t *s, uint64_t len) {
    char *dst = *arena;
    memcpy(dst, s, (size_t)len);
    dst[len] = '\0';
    *arena += len + 1;
    return dst;
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int check_tensor(gguf_file *g, gguf_tensor *t, char *err, size_t errlen) {
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return fail(err, errlen, "tensor '%s': %u dimensions (1 to %d allowed)", t->name, t->n_dims,
                    GGUF_MAX_DIMS);
    uint64_t n = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        if (t->ne[d] <= 0)
            return fail(err, errlen, "tensor '%s': dimension %u is %lld", t->name, d, (long long)t->ne[d]);
        if ((uint64_t)t->ne[d] > (UINT64_C(1) << 62) / n)
            return fail(err, errlen, "tensor '%s': element count overflows", t->name);
        n *= (uint64_t)t->ne[d];
    }
    if (!quant_type_supported(t->type))
        return fail(err, errlen, "tensor '%s': type %u (%s) is not supported", t->name, t->type,
                    quant_type_name(t->type));
    size_t row = quant_row_bytes(t->type, t->ne[0]);
    if (!row)
        return fail(err, errlen, "tensor '%s': row length %lld is not a multiple of the %s block (%lld)",
                    t->name, (long long)t->ne[0], quant_type_name(t->type),
                    (long long)quant_block_elems(t->type));
    uint64_t rows = n / (uint64_t)t->ne[0];
    if (rows > UINT64_MAX / row) return fail(err, errlen, "tensor '%s': byte size overflows", t->name);
    t->nbytes = rows * row;
    if (t->offset % g->alignment)
        return fail(err, errlen, "tensor '%s': data offset %llu is not a multiple of the alignment %u",
                    t->name, (unsigned long long)t->offset, g->alignment);
    uint64_t data_size = g->file_size - g->data_offset;
    if (t->offset > data_size || t->nbytes > data_size - t->offset)
        return fail(err, errlen, "tensor '%s': data [%llu, +%llu) lies outside the file's %llu data bytes",
                    t->name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                    (unsigned long long)data_size);
    t->data = g->header_only ? NULL : g->base + g->data_offset + t->offset;
    return 0;
}

static int check_overlaps(gguf_file *g, char *err, size_t errlen) {
    if (g->n_tensors < 2) return 0;
    const gguf_tensor **by_off = ie_malloc((size_t)g->n_tensors * sizeof *by_off);
    if (!by_off) return fail(err, errlen, "out of memory");
    for (uint64_t i = 0; i < g->n_tensors; i++) by_off[i] = &g->tensors[i];
    qsort(by_off, (size_t)g->n_tensors, sizeof *by_off, cmp_tensor_offset);
    int rc = 0;
    for (uint64_t i = 1; i < g->n_tensors && rc == 0; i++) {
        const gguf_tensor *a = by_off[i - 1], *b = by_off[i];
        if (a->offset + a->nbytes > b->offset)
            rc = fail(err, errlen, "tensors '%s' and '%s' overlap in the file", a->name, b->name);
    }
    free(by_off);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts the names (a char* at name_off in each of n records of size rec) and
 * reports the first one that appears twice. */
static int find_duplicate(const void *recs, uint64_t n, size_t rec, size_t name_off, char *err,
                          size_t errlen, const char *what) {
    if (n < 2) return 0;
    const char **names = ie_malloc((size_t)n * sizeof *names);
    if (!names) return fail(err, errlen, "out of memory");
    for (uint64_t i = 0; i < n; i++)
        memcpy(&names[i], (const char *)recs + i * rec + name_off, sizeof(char *));
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    int rc = 0;
    for (uint64_t i = 1; i < n && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0) rc = fail(err, errlen, "%s '%s' appears twice", what, names[i]);
    free(names);
    return rc;
}

static int parse(gguf_file *g, char *err, size_t errlen) {
    cursor c = {g->base, g->size, 0, err, errlen, &g->ran_out};
    char magic[4];
    if (take(&c, magic, 4, "magic") < 0) return -1;
    if (memcmp(magic, "GGUF", 4) != 0) return fail(err, errlen, "not a GGUF file (bad magic)");
    if (take(&c, &g->version, 4, "version") < 0) return -1;
    if (g->version != 2 && g->version != 3)
        return fail(err, errlen, "GGUF version %u is not supported (2 and 3 are)", g->version);
    if (take(&c, &g->n_tensors, 8, "tensor count") < 0 || take(&c, &g->n_kv, 8, "metadata count") < 0)
        return -1;
    /* A key needs >= 12 bytes (length + type), a tensor info >= 28. */
    if (g->n_kv > left(&c) / 12)
        return short_of(&c), fail(err, errlen, "metadata count %llu cannot fit in a %zu-byte file",
                                  (unsigned long long)g->n_kv, g->size);
    if (g->n_tensors > left(&c) / 28)
        return short_of(&c), fail(err, errlen, "tensor count %llu cannot fit in a %zu-byte file",
                                  (unsigned long long)g->n_tensors, g->size);
    g->kvs = ie_calloc((size_t)g->n_kv + 1, sizeof *g->kvs);
    g->tensors = ie_calloc((size_t)g->n_tensors + 1, sizeof *g->tensors);
    if (!g->kvs || !g->tensors) return fail(err, errlen, "out of memory");

    /* First pass over names only to size the arena; values are checked on the way. */
    size_t names_bytes = 0;
    const uint8_t **kname = ie_calloc((size_t)g->n_kv + 1, sizeof *kname);
    uint64_t *klen = ie_calloc((size_t)g->n_kv + 1, sizeof *klen);
    if (!kname || !klen) {
        free(kname), free(klen);
        return fail(err, errlen, "out of memory");
    }
    int rc = 0;
    for (uint64_t i = 0; i < g->n_kv && rc == 0; i++) {
        gguf_kv *kv = &g->kvs[i];
        char shown[64];
        if (read_str(&c, &kname[i], &klen[i], "metadata key") < 0 ||
            take(&c, &kv->type, 4, "value type") < 0) {
            rc = -1;
            break;
        }
        if (klen[i] == 0 || klen[i] > GGUF_MAX_NAME) {
            rc = fail(err, errlen, "metadata key %llu has length %llu", (unsigned long long)i,
                      (unsigned long long)klen[i]);
            break;
        }
        snprintf(shown, sizeof shown, "%.*s", (int)(klen[i] < 60 ? klen[i] : 60), (const char *)kname[i]);
        rc = read_value(&c, kv, shown);
        names_bytes += klen[i] + 1;
    }
    const uint8_t **tname = NULL;
    uint64_t *tlen = NULL;
    if (rc == 0) {
        tname = ie_calloc((size_t)g->n_tensors + 1, sizeof *tname);
        tlen = ie_calloc((size_t)g->n_tensors + 1, sizeof *tlen);
        if (!tname || !tlen) rc = fail(err, errlen, "out of memory");
    }
    for (uint64_t i = 0; i < g->n_tensors && rc == 0; i++) {
        gguf_tensor *t = &g->tensors[i];
        if (read_str(&c, &tname[i], &tlen[i], "tensor name") < 0 ||
            take(&c, &t->n_dims, 4, "tensor dimension count") < 0) {
            rc = -1;
            break;
        }
        if (tlen[i] == 0 || tlen[i] > GGUF_MAX_NAME) {
            rc = fail(err, errlen, "tensor %llu has a name of length %llu", (unsigned long long)i,
                      (unsigned long long)tlen[i]);
            break;
        }
        if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS) {
            rc = fail(err, errlen, "tensor '%.*s': %u dimensions (1 to %d allowed)",
                      (int)(tlen[i] < 60 ? tlen[i] : 60), (const char *)tname[i], t->n_dims, GGUF_MAX_DIMS);
            break;
        }
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims && rc == 0; d++) {
            uint64_t ne;
            if (take(&c, &ne, 8, "tensor shape") < 0) rc = -1;
            else if (ne > (UINT64_C(1) << 62)) t->ne[d] = -1; /* rejected by check_tensor */
            else t->ne[d] = (int64_t)ne;
        }
        if (rc == 0 && (take(&c, &t->type, 4, "tensor type") < 0 || take(&c, &t->offset, 8, "tensor offset") < 0))
            rc = -1;
        names_bytes += tlen[i] + 1;
    }
    if (rc == 0) {
        g->names = ie_malloc(names_bytes + 1);
        if (!g->names) rc = fail(err, errlen, "out of memory");
    }
    if (rc == 0) {
        char *arena = g->names;
        for (uint64_t i = 0; i < g->n_kv; i++) g->kvs[i].key = intern(&arena, kname[i], klen[i]);
        for (uint64_t i = 0; i < g->n_tensors; i++) g->tensors[i].name = intern(&arena, tname[i], tlen[i]);
    }
    free(kname), free(klen), free(tname), free(tlen);
    if (rc) return rc;

    /* Duplicate keys or names would make lookups ambiguous: refuse them. */
    if (find_duplicate(g->kvs, g->n_kv, sizeof *g->kvs, offsetof(gguf_kv, key), err, errlen,
                       "metadata key") < 0)
        return -1;

    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *al = gguf_find_kv(g, "general.alignment");
    if (al) {
        uint32_t a;
        if (gguf_get_u32(g, "general.alignment", &a) < 0 || a == 0 || (a & (a - 1)) || a > (1u << 20))
            return fail(err, errlen, "general.alignment must be a power of two up to 1 MiB");
        g->alignment = a;
    }
    uint64_t data = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    if (g->n_tensors && data > g->file_size)
        return fail(err, errlen, "truncated file: tensor data would start at byte %llu of %zu",
                    (unsigned long long)data, g->file_size);
    g->data_offset = data > g->file_size ? g->file_size : data;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (check_tensor(g, &g->tensors[i], err, errlen) < 0) return -1;
    if (find_duplicate(g->tensors, g->n_tensors, sizeof *g->tensors, offsetof(gguf_tensor, name),
                       err, errlen, "tensor") < 0)
        return -1;
    return check_overlaps(g, err, errlen);
}

static int open_common(gguf_file *g, gguf_file **out, char *err, size_t errlen) {
    if (parse(g, err, errlen) < 0) {
        gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int gguf_open_mem(const void *buf, size_t len, gguf_file **out, char *err, size_t errlen) {
    *out = NULL;
    gguf_file *g = ie_calloc(1, sizeof *g);
    if (!g) return fail(err, errlen, "out of memory");
    g->base = buf;
    g->size = g->file_size = len;
    return open_common(g, out, err, errlen);
}

/* Reads the whole file into anonymous memory advised for huge pages, then
 * makes it read-only.  Not a file mapping: on the virtual machines we run on,
 * streaming weights from page-cache-backed mappings measured 0.5 GB/s against
 * 10-16 GB/s from anonymous memory, and decoding reads every weight once per
 * token.  Read-only protection turns a stray write into a fault instead of a
 * silently corrupted model shared by every request. */
static void *load_bytes(int fd, size_t size, const char *path, char *err, size_t errlen) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fail(err, errlen, "cannot allocate %zu bytes for '%s': %s", size, path, strerror(errno));
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE); /* advisory: failure only costs speed */
#endif
    size_t done = 0;
    while (done < size) {
        size_t want = size - done < ((size_t)1 << 30) ? size - done : ((size_t)1 << 30);
        ssize_t r = pread(fd, (uint8_t *)p + done, want, (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fail(err, errlen, "cannot read '%s': %s", path, r < 0 ? strerror(errno) : "file shrank while reading");
            munmap(p, size);
            return NULL;
        }
        done += (size_t)r;
    }
    mprotect(p, size, PROT_READ);
    return p;
}

/* Opens path for reading: a regular file large enough for a GGUF header.
 * The descriptor, or -1 with a message. */
static int open_model_file(const char *path, struct stat *st, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, errlen, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fd, st) < 0) {
        int e = errno;
        close(fd);
        return fail(err, errlen, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return fail(err, errlen, "'%s' is not a regular file", path);
    }
    if (st->st_size < 24) {
        close(fd);
        return fail(err, errlen, "'%s' is too small to be a GGUF file (%lld bytes)", path, (long long)st->st_size);
    }
    return fd;
}

int gguf_open(const char *path, gguf_file **out, char *err, size_t errlen) {
    *out = NULL;
    struct stat st;
    int fd = open_model_file(path, &st, err, errlen);
    if (fd < 0) return -1;
    void *map = load_bytes(fd, (size_t)st.st_size, path, err, errlen);
    close(fd);
    if (!map) return -1;
    gguf_file *g = ie_calloc(1, sizeof *g);
    if (!g) {
        munmap(map, (size_t)st.st_size);
        return fail(err, errlen, "out of memory");
    }
    g->base = map;
    g->size = g->file_size = (size_t)st.st_size;
    g->mapped = 1;
    if (open_common(g, out, err, errlen) < 0) {
        /* prefix the path so the message says which file is broken */
        char tmp[512];
        if (err && errlen) {
            snprintf(tmp, sizeof tmp, "%s", err);
            snprintf(err, errlen, "%s: %s", path, tmp);
        }
        return -1;
    }
    return 0;
}

/* Reads bytes [0, n) of fd into a malloc'd buffer. */
static uint8_t *read_prefix(int fd, size_t n, const char *path, char *err, size_t errlen) {
    uint8_t *p = ie_malloc(n ? n : 1);
    if (!p) {
        fail(err, errlen, "out of memory reading the header of '%s'", path);
        return NULL;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, p + done, n - done, (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fail(err, errlen, "cannot read '%s': %s", path, r < 0 ? strerror(errno) : "file shrank while reading");
            free(p);
            return NULL;
        }
        done += (size_t)r;
    }
    return p;
}

/* The header is what comes before the tensor data: metadata (a large
 * vocabulary makes it megabytes) and tensor infos.  Start with a prefix big
 * enough for nearly every file and double it while the parse runs out of
 * bytes, so a model of gigabytes is sized up without reading its weights. */
#define HEADER_FIRST_READ ((size_t)4 << 20)
#define HEADER_MAX_READ ((size_t)256 << 20)

int gguf_open_header(const char *path, gguf_file **out, char *err, size_t errlen) {
    *out = NULL;
    struct stat st;
    int fd = open_model_file(path, &st, err, errlen);
    if (fd < 0) return -1;
    size_t fsize = (size_t)st.st_size;
    size_t n = fsize < HEADER_FIRST_READ ? fsize : HEADER_FIRST_READ;
    for (;;) {
        uint8_t *buf = read_prefix(fd, n, path, err, errlen);
        if (!buf) {
            close(fd);
            return -1;
        }
        gguf_file *g = ie_calloc(1, sizeof *g);
        if (!g) {
            free(buf);
            close(fd);
            return fail(err, errlen, "out of memory");
        }
        g->base = buf;
        g->size = n;
        g->file_size = fsize;
        g->header_only = 1;
        if (parse(g, err, errlen) == 0) {
            close(fd);
            *out = g;
            return 0;
        }
        int more = g->ran_out && n < fsize && n < HEADER_MAX_READ;
        gguf_close(g);
        if (!more) {
            char tmp[512];
            close(fd);
            if (err && errlen) {
                snprintf(tmp, sizeof tmp, "%s", err);
                snprintf(err, errlen, "%s: %s", path, tmp);
            }
            return -1;
        }
        n = n > fsize / 2 ? fsize : n * 2;
        if (n > HEADER_MAX_READ) n = HEADER_MAX_READ;
    }
}

void gguf_close(gguf_file *g) {
    if (!g) return;
    if (g->kvs)
        for (uint64_t i = 0; i < g->n_kv; i++) free(g->kvs[i].str_offsets);
    free(g->kvs);
    free(g->tensors);
    free(g->names);
    if (g->mapped) munmap((void *)g->base, g->size);
    if (g->header_only) free((void *)g->base);
    free(g);
}

uint32_t gguf_version(const gguf_file *g) { return g->version; }
uint64_t gguf_file_size(const gguf_file *g) { return g->file_size; }
uint32_t gguf_alignment(const gguf_file *g) { return g->alignment; }
uint64_t gguf_n_kv(const gguf_file *g) { return g->n_kv; }
const gguf_kv *gguf_kv_at(const gguf_file *g, uint64_t i) { return i < g->n_kv ? &g->kvs[i] : NULL; }
uint64_t gguf_n_tensors(const gguf_file *g) { return g->n_tensors; }
const gguf_tensor *gguf_tensor_at(const gguf_file *g, uint64_t i) {
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const gguf_kv *gguf_find_kv(const gguf_file *g, const char *key) {
    /* keys are only searched while loading (tens of lookups): linear is fine */
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kvs[i].key && strcmp(g->kvs[i].key, key) == 0) return &g->kvs[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

/* Reads an integer of scalar type t at p as a signed 128-bit-safe pair:
 * returns 0 and sets *v (value) and *neg, or -1 when t is not an integer. */
static int read_int(uint32_t t, const uint8_t *p, uint64_t *mag, int *neg) {
    *neg = 0;
    switch (t) {
    case GGUF_UINT8: case GGUF_BOOL: *mag = p[0]; return 0;
    case GGUF_INT8: { int8_t v; memcpy(&v, p, 1); *neg = v < 0; *mag = (uint64_t)(v < 0 ? -(int64_t)v : v); return 0; }
    case GGUF_UINT16: { uint16_t v; memcpy(&v, p, 2); *mag = v; return 0; }
    case GGUF_INT16: { int16_t v; memcpy(&v, p, 2); *neg = v < 0; *mag = (uint64_t)(v < 0 ? -(int64_t)v : v); return 0; }
    case GGUF_UINT32: { uint32_t v; memcpy(&v, p, 4); *mag = v; return 0; }
    case GGUF_INT32: { int32_t v; memcpy(&v, p, 4); *neg = v < 0; *mag = (uint64_t)(v < 0 ? -(int64_t)v : v); return 0; }
    case GGUF_UINT64: { uint64_t v; memcpy(&v, p, 8); *mag = v; return 0; }
    case GGUF_INT64: {
        int64_t v;
        memcpy(&v, p, 8);
        *neg = v < 0;
        *mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        return 0;
    }
    default: return -1;
    }
}

int gguf_get_u32(const gguf_file *g, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return -1;
    uint64_t mag;
    int neg;
    if (read_int(kv->type, kv->data, &mag, &neg) < 0 || (neg && mag) || mag > UINT32_MAX) return -2;
    *out = (uint32_t)mag;
    return 0;
}

int gguf_get_i64(const gguf_file *g, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return -1;
    uint64_t mag;
    int neg;
    if (read_int(kv->type, kv->data, &mag, &neg) < 0) return -2;
    if (!neg && mag > (uint64_t)INT64_MAX) return -2;
    *out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

int gguf_get_f32(const gguf_file *g, const char *key, float *out) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return -1;
    if (kv->type == GGUF_FLOAT32) {
        memcpy(out, kv->data, 4);
        return 0;
    }
    if (kv->type == GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
        return 0;
    }
    return -2;
}

int gguf_get_bool(const gguf_file *g, const char *key, int *out) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return -1;
    if (kv->type != GGUF_BOOL) return -2;
    *out = kv->data[0] != 0;
    return 0;
}

int gguf_get_str(const gguf_file *g, const char *key, const char **s, uint64_t *len) {
    const gguf_kv *kv = gguf_find_kv(g, key);
    if (!kv) return -1;
    if (kv->type != GGUF_STRING) return -2;
    memcpy(len, kv->data, 8);
    *s = (const char *)kv->data + 8;
    return 0;
}

int gguf_get_arr(const gguf_file *g, const char *key, uint32_t elem_type, const gguf_kv **kv) {
    const gguf_kv *k = gguf_find_kv(g, key);
    if (!k) return -1;
    if (k->type != GGUF_ARRAY || (elem_type != UINT32_MAX && k->arr_type != elem_type)) return -2;
    *kv = k;
    return 0;
}

void gguf_arr_str(const gguf_kv *kv, uint64_t i, const char **s, uint64_t *len) {
    const uint8_t *p = kv->data + kv->str_offsets[i];
    memcpy(len, p, 8);
    *s = (const char *)p + 8;
}

float gguf_arr_f32(const gguf_kv *kv, uint64_t i) {
    float f;
    memcpy(&f, kv->data + i * 4, 4);
    return f;
}

int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i) {
    size_t sz = gguf_vtype_size(kv->arr_type);
    uint64_t mag = 0;
    int neg = 0;
    if (read_int(kv->arr_type, kv->data + i * sz, &mag, &neg) < 0) return 0;
    return neg ? (int64_t)(0 - mag) : (int64_t)mag;
}
