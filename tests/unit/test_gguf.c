/* test_gguf.c - the GGUF reader on good and hostile files.
 *
 * Files are built byte by byte in memory so each corruption is exact: every
 * truncation point of a valid file, bad magic and versions, counts and
 * lengths far beyond the file, unknown types, bad shapes, tensors outside the
 * file or overlapping, misalignment, duplicates.  Each must fail with a
 * message (never crash: the ASan build runs this too).  Model-level checks
 * patch real model files so that tensors disagree with the metadata. */
#include "test.h"

#include "gguf/gguf.h"
#include "infer.h"
#include "kernels/quant.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort(); /* test harness only */
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) {
    u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void pad_to(buf *b, size_t align) {
    while (b->n % align) put(b, "", 1);
}

typedef struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
    uint64_t offset;
} tinfo;

/* A header with the given tensors and a data section of data_bytes. */
static buf build(uint32_t version, const tinfo *t, int nt, size_t data_bytes, int with_kv) {
    buf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, version);
    u64(&b, (uint64_t)nt);
    u64(&b, with_kv ? 3 : 0);
    if (with_kv) {
        str(&b, "general.name");
        u32(&b, GGUF_STRING);
        str(&b, "test");
        str(&b, "test.count");
        u32(&b, GGUF_UINT32);
        u32(&b, 7);
        str(&b, "test.words");
        u32(&b, GGUF_ARRAY);
        u32(&b, GGUF_STRING);
        u64(&b, 3);
        str(&b, "a");
        str(&b, "");
        str(&b, "ccc");
    }
    for (int i = 0; i < nt; i++) {
        str(&b, t[i].name);
        u32(&b, t[i].n_dims);
        /* a claimed 5th dimension (a corruption case) is written as 1 */
        for (uint32_t d = 0; d < t[i].n_dims; d++) u64(&b, d < 4 ? t[i].ne[d] : 1);
        u32(&b, t[i].type);
        u64(&b, t[i].offset);
    }
    pad_to(&b, 32);
    for (size_t i = 0; i < data_bytes; i++) put(&b, "\x01", 1);
    return b;
}

static const tinfo GOOD[2] = {
    {"a", 1, {8}, QT_F32, 0},
    {"b", 2, {32, 2}, QT_Q8_0, 32},
};

static int opens(const buf *b, char *err, size_t errlen) {
    gguf_file *g;
    int rc = gguf_open_mem(b->p, b->n, &g, err, errlen);
    if (rc == 0) gguf_close(g);
    return rc;
}

static void test_valid_file(void) {
    buf b = build(3, GOOD, 2, 32 + 2 * 34, 1);
    char err[256];
    gguf_file *g;
    CHECKF(gguf_open_mem(b.p, b.n, &g, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(gguf_version(g), 3);
    CHECK_EQ_INT(gguf_n_kv(g), 3);
    CHECK_EQ_INT(gguf_n_tensors(g), 2);
    uint32_t v;
    CHECK(gguf_get_u32(g, "test.count", &v) == 0 && v == 7);
    CHECK(gguf_get_u32(g, "general.name", &v) == -2);
    CHECK(gguf_get_u32(g, "absent", &v) == -1);
    const char *s;
    uint64_t len;
    CHECK(gguf_get_str(g, "general.name", &s, &len) == 0 && len == 4 && !memcmp(s, "test", 4));
    const gguf_kv *kv;
    CHECK(gguf_get_arr(g, "test.words", GGUF_STRING, &kv) == 0 && kv->arr_n == 3);
    gguf_arr_str(kv, 2, &s, &len);
    CHECK(len == 3 && !memcmp(s, "ccc", 3));
    gguf_arr_str(kv, 1, &s, &len);
    CHECK(len == 0);
    CHECK(gguf_get_arr(g, "test.words", GGUF_UINT32, &kv) == -2);
    const gguf_tensor *t = gguf_find_tensor(g, "b");
    CHECK(t && t->nbytes == 68 && t->ne[0] == 32 && t->ne[1] == 2 && t->type == QT_Q8_0);
    CHECK(gguf_find_tensor(g, "c") == NULL);
    gguf_close(g);
    free(b.p);
}

/* Every proper prefix of a valid file is refused. */
static void test_every_truncation(void) {
    buf b = build(3, GOOD, 2, 32 + 2 * 34, 1);
    char err[256];
    for (size_t n = 0; n < b.n; n++) {
        buf t = {b.p, n, n};
        CHECKF(opens(&t, err, sizeof err) < 0, "prefix of %zu bytes accepted", n);
    }
    CHECK(opens(&b, err, sizeof err) == 0);
    free(b.p);
}

static void expect_fail(buf *b, const char *needle) {
    char err[256] = "";
    int rc = opens(b, err, sizeof err);
    free(b->p);
    CHECKF(rc < 0, "accepted, expected '%s'", needle);
    CHECKF(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
}

static void test_bad_magic_and_version(void) {
    buf b = build(3, GOOD, 2, 100, 0);
    b.p[0] = 'X';
    expect_fail(&b, "bad magic");
    b = build(1, GOOD, 2, 100, 0);
    expect_fail(&b, "version 1");
    b = build(4, GOOD, 2, 100, 0);
    expect_fail(&b, "version 4");
}

static void test_huge_counts(void) {
    buf b = build(3, GOOD, 2, 100, 0);
    uint64_t huge = UINT64_C(1) << 60;
    memcpy(b.p + 8, &huge, 8); /* n_tensors */
    expect_fail(&b, "tensor count");
    b = build(3, GOOD, 2, 100, 0);
    memcpy(b.p + 16, &huge, 8); /* n_kv */
    expect_fail(&b, "metadata count");
    /* a string length that runs past the end */
    b = build(3, GOOD, 2, 100, 1);
    memcpy(b.p + 24, &huge, 8); /* first key's length */
    expect_fail(&b, "truncated");
}

static void test_bad_values(void) {
    buf b = {0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, 1);
    str(&b, "k");
    u32(&b, 13); /* no such value type */
    u32(&b, 0);
    expect_fail(&b, "unknown value type");

    b = (buf){0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, 1);
    str(&b, "k");
    u32(&b, GGUF_ARRAY);
    u32(&b, GGUF_UINT64);
    u64(&b, UINT64_C(1) << 40); /* far more elements than bytes */
    expect_fail(&b, "past the end");

    b = (buf){0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, 1);
    str(&b, "k");
    u32(&b, GGUF_ARRAY);
    u32(&b, GGUF_ARRAY); /* nested arrays are not supported */
    u64(&b, 1);
    expect_fail(&b, "not supported");

    b = (buf){0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, 2);
    str(&b, "dup");
    u32(&b, GGUF_UINT8);
    put(&b, "\x01", 1);
    str(&b, "dup");
    u32(&b, GGUF_UINT8);
    put(&b, "\x02", 1);
    expect_fail(&b, "appears twice");

    b = (buf){0};
    put(&b, "GGUF", 4);
    u32(&b, 3);
    u64(&b, 0);
    u64(&b, 1);
    str(&b, "general.alignment");
    u32(&b, GGUF_UINT32);
    u32(&b, 24);
    expect_fail(&b, "power of two");
}

static void test_bad_tensors(void) {
    tinfo t[2];
    buf b;
#define CASE(mutate, size, needle)                                                 \
    memcpy(t, GOOD, sizeof t);                                                     \
    mutate;                                                                        \
    b = build(3, t, 2, size, 0);                                                   \
    expect_fail(&b, needle);
    CASE(t[0].n_dims = 0, 100, "dimensions")
    CASE(t[0].n_dims = 5, 100, "dimensions")
    CASE(t[1].ne[1] = 0, 100, "dimension 1 is 0")
    CASE((t[1].n_dims = 4, t[1].ne[1] = 1u << 31, t[1].ne[2] = 1u << 31, t[1].ne[3] = 1u << 31), 100, "overflows")
    CASE(t[1].type = 3, 100, "not supported")
    CASE(t[1].type = 999, 100, "not supported")
    CASE(t[1].ne[0] = 33, 100, "multiple of the q8_0 block")
    CASE(t[1].offset = 40, 200, "alignment")
    CASE(t[1].offset = 64, 100, "outside")
    CASE(t[1].offset = UINT64_MAX - 30, 100, "alignment")
    CASE(t[1].offset = (UINT64_MAX / 32) * 32, 100, "outside")
    CASE(t[1].offset = 0, 200, "overlap")
    CASE(t[1].name = "a", 200, "appears twice")
    CASE(t[0].name = "", 200, "name of length 0")
#undef CASE
}

static void test_shared_files_parse(void) {
    const char *files[] = {
        "models/ggml-org_llama.cpp/ggml-vocab-gpt-2.gguf", "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf",
        "models/ggml-org_llama.cpp/ggml-vocab-llama-spm.gguf", "models/cozy-creator_python-gen-worker/stories260K.gguf",
        "refs/tiny-qwen3-Q4_K.gguf", "refs/tiny-llama-F16.gguf",
    };
    int found = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[1024], err[512];
        snprintf(p, sizeof p, "%s/%s", test_shared_dir(), files[i]);
        if (access(p, R_OK) != 0) continue;
        found++;
        gguf_file *g;
        CHECKF(gguf_open(p, &g, err, sizeof err) == 0, "%s", err);
        CHECK(gguf_find_kv(g, "tokenizer.ggml.model") != NULL);
        gguf_close(g);
    }
    if (!found) TEST_SKIP("no GGUF files under %s", test_shared_dir());
}

static void test_open_errors(void) {
    char err[512];
    gguf_file *g;
    CHECK(gguf_open("/nonexistent/x.gguf", &g, err, sizeof err) < 0 && strstr(err, "cannot open"));
    CHECK(gguf_open("/tmp", &g, err, sizeof err) < 0 && strstr(err, "not a regular file"));
    char tmp[] = "/tmp/inferkv-test-XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    CHECK(write(fd, "GGUF", 4) == 4);
    close(fd);
    CHECK(gguf_open(tmp, &g, err, sizeof err) < 0 && strstr(err, "too small"));
    unlink(tmp);
}

/* ---- model-level: a real file patched so tensors and metadata disagree ---- */

static uint8_t *load_file(const char *p, size_t *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *d = malloc((size_t)sz);
    if (d && fread(d, 1, (size_t)sz, f) != (size_t)sz) {
        free(d);
        d = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return d;
}

/* Writes d to a temp file, loads it as a model, expects failure containing needle. */
static int model_fails_with(const uint8_t *d, size_t n, const char *needle, char *err, size_t errlen) {
    char tmp[] = "/tmp/inferkv-model-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) return 0;
    int ok = write(fd, d, n) == (ssize_t)n;
    close(fd);
    infer_model *m = NULL;
    int rc = ok ? infer_model_load(tmp, &m, err, errlen) : 0;
    unlink(tmp);
    if (rc == 0) {
        if (m) infer_model_unref(m);
        return 0;
    }
    return strstr(err, needle) != NULL;
}

static uint8_t *find_bytes(uint8_t *hay, size_t n, const char *needle) {
    return memmem(hay, n, needle, strlen(needle));
}

static void test_model_shape_mismatch(void) {
    char p[1024], err[512];
    snprintf(p, sizeof p, "%s/refs/tiny-llama-F16.gguf", test_shared_dir());
    size_t n;
    uint8_t *orig = load_file(p, &n);
    if (!orig) TEST_SKIP("%s not found", p);
    uint8_t *d = malloc(n);
    CHECK(d);

    /* blk.0.attn_q.weight is [256, 256]: make its ne[0] 128 */
    memcpy(d, orig, n);
    uint8_t *at = find_bytes(d, n, "blk.0.attn_q.weight");
    CHECK(at);
    uint64_t v = 128;
    memcpy(at + strlen("blk.0.attn_q.weight") + 4, &v, 8);
    CHECKF(model_fails_with(d, n, "blk.0.attn_q.weight has shape", err, sizeof err), "%s", err);

    /* rename a tensor: its absence is named */
    memcpy(d, orig, n);
    at = find_bytes(d, n, "blk.1.ffn_up.weight");
    CHECK(at);
    memcpy(at + 10, "xx", 2);
    CHECKF(model_fails_with(d, n, "missing tensor blk.1.ffn_up.weight", err, sizeof err), "%s", err);

    /* block_count 3: the third layer's tensors do not exist */
    memcpy(d, orig, n);
    at = find_bytes(d, n, "llama.block_count");
    CHECK(at);
    uint32_t three = 3, zero = 0;
    memcpy(at + strlen("llama.block_count") + 4, &three, 4);
    CHECKF(model_fails_with(d, n, "missing tensor blk.2", err, sizeof err), "%s", err);
    memcpy(at + strlen("llama.block_count") + 4, &zero, 4);
    CHECKF(model_fails_with(d, n, "out of range", err, sizeof err), "%s", err);

    /* a head count that does not divide by the KV heads */
    memcpy(d, orig, n);
    at = find_bytes(d, n, "llama.attention.head_count_kv");
    CHECK(at);
    memcpy(at + strlen("llama.attention.head_count_kv") + 4, &three, 4);
    CHECKF(model_fails_with(d, n, "not a multiple", err, sizeof err), "%s", err);

    /* an architecture we do not run */
    memcpy(d, orig, n);
    at = find_bytes(d, n, "general.architecture");
    CHECK(at);
    uint8_t *val = at + strlen("general.architecture") + 4 + 8;
    CHECK(!memcmp(val, "llama", 5));
    memcpy(val, "gpt99", 5);
    CHECKF(model_fails_with(d, n, "not supported", err, sizeof err), "%s", err);

    free(d);
    free(orig);
}

int main(void) {
    TEST_RUN(test_valid_file);
    TEST_RUN(test_every_truncation);
    TEST_RUN(test_bad_magic_and_version);
    TEST_RUN(test_huge_counts);
    TEST_RUN(test_bad_values);
    TEST_RUN(test_bad_tensors);
    TEST_RUN(test_shared_files_parse);
    TEST_RUN(test_open_errors);
    TEST_RUN(test_model_shape_mismatch);
    return TEST_DONE();
}
