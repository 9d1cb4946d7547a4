/* test_gguf_write.c - the streaming GGUF writer (src/engine/gguf/gguf_write.c),
 * checked by reading its files back with the validating reader (gguf.h):
 * every metadata type survives with its type and value, tensor shapes,
 * types, offsets and data are exact, the alignment is honoured, and misuse
 * (long names, duplicates, bad shapes, short or long data, failing writes)
 * is reported, not written. */
#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "kernels/quant.h"
#include "test.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

static char tmp_path[256];

static FILE *open_tmp(void) {
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_path, sizeof tmp_path, "%s/test_gguf_write_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmp_path);
    if (fd < 0) return NULL;
    return fdopen(fd, "wb");
}

/* Writes w to a temporary file; data[i] holds tensor i's bytes, written in
 * pieces of `piece` bytes.  Returns 0 and the size on success. */
static int write_file(gguf_writer *w, unsigned char **data, size_t piece, uint64_t *size, char *err, size_t errlen) {
    FILE *f = open_tmp();
    if (!f) {
        snprintf(err, errlen, "cannot create a temporary file");
        return -1;
    }
    int rc = gguf_writer_begin(w, f, err, errlen);
    for (uint64_t i = 0; rc == 0 && i < gguf_writer_n_tensors(w); i++) {
        uint64_t nb = gguf_writer_tensor_nbytes(w, i);
        for (uint64_t at = 0; rc == 0 && at < nb; at += piece) {
            size_t k = nb - at < piece ? (size_t)(nb - at) : piece;
            rc = gguf_writer_write(w, data[i] + at, k, err, errlen);
        }
    }
    if (rc == 0) rc = gguf_writer_finish(w, size, err, errlen);
    if (fclose(f) != 0 && rc == 0) {
        snprintf(err, errlen, "fclose failed");
        rc = -1;
    }
    return rc;
}

static int str_eq(const gguf_file *g, const char *key, const char *want) {
    const char *s;
    uint64_t len;
    if (gguf_get_str(g, key, &s, &len) != 0) return 0;
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* Every scalar type, strings (empty and not), arrays of every scalar type,
 * an array of strings and empty arrays come back with type and value. */
static void test_every_metadata_type_roundtrips(void) {
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    CHECK(gguf_writer_set_u8(w, "t.u8", 200) == 0);
    CHECK(gguf_writer_set_i8(w, "t.i8", -100) == 0);
    CHECK(gguf_writer_set_u16(w, "t.u16", 65000) == 0);
    CHECK(gguf_writer_set_i16(w, "t.i16", -32000) == 0);
    CHECK(gguf_writer_set_u32(w, "t.u32", 4000000000u) == 0);
    CHECK(gguf_writer_set_i32(w, "t.i32", -2000000000) == 0);
    CHECK(gguf_writer_set_f32(w, "t.f32", 1e-6f) == 0);
    CHECK(gguf_writer_set_bool(w, "t.bool", 1) == 0);
    CHECK(gguf_writer_set_u64(w, "t.u64", 0xfedcba9876543210ull) == 0);
    CHECK(gguf_writer_set_i64(w, "t.i64", -1234567890123ll) == 0);
    CHECK(gguf_writer_set_f64(w, "t.f64", 3.141592653589793) == 0);
    CHECK(gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo") == 0);
    CHECK(gguf_writer_set_str(w, "t.empty", "") == 0);
    CHECK(gguf_writer_set_strn(w, "t.nul", "a\0b", 3) == 0);
    int32_t i32s[3] = {-1, 0, 7};
    float f32s[2] = {0.5f, -2.0f};
    uint8_t u8s[4] = {1, 2, 3, 255};
    double f64s[1] = {-0.25};
    int64_t i64s[2] = {INT64_MIN, INT64_MAX};
    CHECK(gguf_writer_set_arr(w, "a.i32", GGUF_INT32, i32s, 3) == 0);
    CHECK(gguf_writer_set_arr(w, "a.f32", GGUF_FLOAT32, f32s, 2) == 0);
    CHECK(gguf_writer_set_arr(w, "a.u8", GGUF_UINT8, u8s, 4) == 0);
    CHECK(gguf_writer_set_arr(w, "a.f64", GGUF_FLOAT64, f64s, 1) == 0);
    CHECK(gguf_writer_set_arr(w, "a.i64", GGUF_INT64, i64s, 2) == 0);
    CHECK(gguf_writer_set_arr(w, "a.empty", GGUF_INT32, NULL, 0) == 0);
    const char *strs[4] = {"<unk>", "", "\xe2\x96\x81the", "x"};
    CHECK(gguf_writer_set_arr_str(w, "a.str", strs, NULL, 4) == 0);
    CHECK(gguf_writer_set_arr_str(w, "a.str0", NULL, NULL, 0) == 0);
    CHECK(gguf_writer_set_arr(w, "a.bad", GGUF_STRING, strs, 1) < 0); /* strings go through set_arr_str */
    CHECK(strstr(gguf_writer_error(w), "a.bad") != NULL);
    gguf_writer_free(w);

    /* again without the bad call, and write it */
    w = gguf_writer_new();
    CHECK(w);
    gguf_writer_set_u8(w, "t.u8", 200);
    gguf_writer_set_i8(w, "t.i8", -100);
    gguf_writer_set_u16(w, "t.u16", 65000);
    gguf_writer_set_i16(w, "t.i16", -32000);
    gguf_writer_set_u32(w, "t.u32", 4000000000u);
    gguf_writer_set_i32(w, "t.i32", -2000000000);
    gguf_writer_set_f32(w, "t.f32", 1e-6f);
    gguf_writer_set_bool(w, "t.bool", 1);
    gguf_writer_set_u64(w, "t.u64", 0xfedcba9876543210ull);
    gguf_writer_set_i64(w, "t.i64", -1234567890123ll);
    gguf_writer_set_f64(w, "t.f64", 3.141592653589793);
    gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo");
    gguf_writer_set_str(w, "t.empty", "");
    gguf_writer_set_strn(w, "t.nul", "a\0b", 3);
    gguf_writer_set_arr(w, "a.i32", GGUF_INT32, i32s, 3);
    gguf_writer_set_arr(w, "a.f32", GGUF_FLOAT32, f32s, 2);
    gguf_writer_set_arr(w, "a.u8", GGUF_UINT8, u8s, 4);
    gguf_writer_set_arr(w, "a.f64", GGUF_FLOAT64, f64s, 1);
    gguf_writer_set_arr(w, "a.i64", GGUF_INT64, i64s, 2);
    gguf_writer_set_arr(w, "a.empty", GGUF_INT32, NULL, 0);
    gguf_writer_set_arr_str(w, "a.str", strs, NULL, 4);
    gguf_writer_set_arr_str(w, "a.str0", NULL, NULL, 0);
    CHECK_STR(gguf_writer_error(w), "");
    char err[256];
    uint64_t size;
    int rc = write_file(w, NULL, 1, &size, err, sizeof err);
    gguf_writer_free(w);
    CHECKF(rc == 0, "%s", err);
    gguf_file *g;
    rc = gguf_open(tmp_path, &g, err, sizeof err);
    unlink(tmp_path);
    CHECKF(rc == 0, "reader rejects the file: %s", err);
    CHECK_EQ_INT(gguf_version(g), 3);
    CHECK_EQ_INT(gguf_n_kv(g), 22);
    CHECK_EQ_INT(gguf_n_tensors(g), 0);
    CHECK_EQ_INT(gguf_file_size(g), size);
    static const struct { const char *key; uint32_t type; } TYPES[] = {
        {"t.u8", GGUF_UINT8}, {"t.i8", GGUF_INT8}, {"t.u16", GGUF_UINT16}, {"t.i16", GGUF_INT16},
        {"t.u32", GGUF_UINT32}, {"t.i32", GGUF_INT32}, {"t.f32", GGUF_FLOAT32}, {"t.bool", GGUF_BOOL},
        {"t.u64", GGUF_UINT64}, {"t.i64", GGUF_INT64}, {"t.f64", GGUF_FLOAT64}, {"t.str", GGUF_STRING},
        {"a.i32", GGUF_ARRAY}, {"a.str", GGUF_ARRAY},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        const gguf_kv *kv = gguf_find_kv(g, TYPES[i].key);
        if (!kv || kv->type != TYPES[i].type) {
            printf("  key %s missing or of type %u\n", TYPES[i].key, kv ? kv->type : 99);
            ok = 0;
        }
    }
    /* insertion order is kept */
    const gguf_kv *first = gguf_kv_at(g, 0), *last = gguf_kv_at(g, 21);
    ok = ok && first && last && strcmp(first->key, "t.u8") == 0 && strcmp(last->key, "a.str0") == 0;
    int64_t iv;
    uint32_t u32;
    float f;
    int b;
    ok = ok && gguf_get_i64(g, "t.u8", &iv) == 0 && iv == 200;
    ok = ok && gguf_get_i64(g, "t.i8", &iv) == 0 && iv == -100;
    ok = ok && gguf_get_i64(g, "t.u16", &iv) == 0 && iv == 65000;
    ok = ok && gguf_get_i64(g, "t.i16", &iv) == 0 && iv == -32000;
    ok = ok && gguf_get_u32(g, "t.u32", &u32) == 0 && u32 == 4000000000u;
    ok = ok && gguf_get_i64(g, "t.i32", &iv) == 0 && iv == -2000000000;
    ok = ok && gguf_get_f32(g, "t.f32", &f) == 0 && f == 1e-6f;
    ok = ok && gguf_get_bool(g, "t.bool", &b) == 0 && b == 1;
    ok = ok && gguf_get_i64(g, "t.i64", &iv) == 0 && iv == -1234567890123ll;
    ok = ok && gguf_get_f32(g, "t.f64", &f) == 0 && f == (float)3.141592653589793;
    CHECK(ok);
    const gguf_kv *kv = gguf_find_kv(g, "t.u64");
    uint64_t u64;
    memcpy(&u64, kv->data, 8);
    CHECK(u64 == 0xfedcba9876543210ull);
    double d;
    memcpy(&d, gguf_find_kv(g, "t.f64")->data, 8);
    CHECK(d == 3.141592653589793);
    CHECK(str_eq(g, "t.str", "h\xc3\xa9llo"));
    CHECK(str_eq(g, "t.empty", ""));
    const char *s;
    uint64_t len;
    CHECK(gguf_get_str(g, "t.nul", &s, &len) == 0 && len == 3 && memcmp(s, "a\0b", 3) == 0);
    CHECK(gguf_get_arr(g, "a.i32", GGUF_INT32, &kv) == 0 && kv->arr_n == 3);
    CHECK(gguf_arr_int(kv, 0) == -1 && gguf_arr_int(kv, 1) == 0 && gguf_arr_int(kv, 2) == 7);
    CHECK(gguf_get_arr(g, "a.f32", GGUF_FLOAT32, &kv) == 0 && kv->arr_n == 2);
    CHECK(gguf_arr_f32(kv, 0) == 0.5f && gguf_arr_f32(kv, 1) == -2.0f);
    CHECK(gguf_get_arr(g, "a.u8", GGUF_UINT8, &kv) == 0 && kv->arr_n == 4 && gguf_arr_int(kv, 3) == 255);
    CHECK(gguf_get_arr(g, "a.f64", GGUF_FLOAT64, &kv) == 0 && kv->arr_n == 1);
    memcpy(&d, kv->data, 8);
    CHECK(d == -0.25);
    CHECK(gguf_get_arr(g, "a.i64", GGUF_INT64, &kv) == 0 && kv->arr_n == 2);
    CHECK(gguf_arr_int(kv, 0) == INT64_MIN && gguf_arr_int(kv, 1) == INT64_MAX);
    CHECK(gguf_get_arr(g, "a.empty", GGUF_INT32, &kv) == 0 && kv->arr_n == 0);
    CHECK(gguf_get_arr(g, "a.str0", GGUF_STRING, &kv) == 0 && kv->arr_n == 0);
    CHECK(gguf_get_arr(g, "a.str", GGUF_STRING, &kv) == 0 && kv->arr_n == 4);
    for (uint64_t i = 0; i < 4; i++) {
        gguf_arr_str(kv, i, &s, &len);
        CHECKF(len == strlen(strs[i]) && memcmp(s, strs[i], len) == 0, "string %llu", (unsigned long long)i);
    }
    gguf_close(g);
}

/* Tensors: shapes, types, data and offsets come back exactly; every offset
 * is a multiple of the alignment (general.alignment = 64 here, 32 when
 * unset), including after tensors whose size is not a multiple of it. */
static void check_tensors_with_alignment(uint32_t alignment) {
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    gguf_writer_set_str(w, "general.architecture", "llama");
    if (alignment != GGUF_DEFAULT_ALIGNMENT) CHECK(gguf_writer_set_u32(w, "general.alignment", alignment) == 0);
    CHECK_EQ_INT(gguf_writer_alignment(w), alignment);
    int64_t ne_a[1] = {5}, ne_b[2] = {64, 3}, ne_c[3] = {3, 2, 2}, ne_d[2] = {256, 2};
    CHECK(gguf_writer_add_tensor(w, "a.weight", 1, ne_a, QT_F32) == 0);
    CHECK(gguf_writer_add_tensor(w, "b.weight", 2, ne_b, QT_Q8_0) == 0);
    CHECK(gguf_writer_add_tensor(w, "c.weight", 3, ne_c, QT_F16) == 0);
    CHECK(gguf_writer_add_tensor(w, "d.weight", 2, ne_d, QT_Q6_K) == 0);
    CHECK_EQ_INT(gguf_writer_tensor_nbytes(w, 0), 20);
    CHECK_EQ_INT(gguf_writer_tensor_nbytes(w, 1), 3 * 2 * 34);
    CHECK_EQ_INT(gguf_writer_tensor_nbytes(w, 2), 24);
    CHECK_EQ_INT(gguf_writer_tensor_nbytes(w, 3), 2 * 210);
    unsigned char *data[4];
    uint64_t nbytes[4];
    for (int i = 0; i < 4; i++) {
        size_t n = (size_t)(nbytes[i] = gguf_writer_tensor_nbytes(w, (uint64_t)i));
        data[i] = malloc(n);
        CHECK(data[i]);
        for (size_t j = 0; j < n; j++) data[i][j] = (unsigned char)(j * 7 + (size_t)i * 31 + 1);
    }
    char err[256];
    uint64_t size;
    int rc = write_file(w, data, 7, &size, err, sizeof err);
    gguf_writer_free(w);
    if (rc != 0) {
        for (int i = 0; i < 4; i++) free(data[i]);
        CHECKF(0, "%s", err);
    }
    gguf_file *g;
    rc = gguf_open(tmp_path, &g, err, sizeof err);
    unlink(tmp_path);
    if (rc != 0) {
        for (int i = 0; i < 4; i++) free(data[i]);
        CHECKF(0, "reader rejects the file: %s", err);
    }
    int ok = gguf_alignment(g) == alignment && gguf_n_tensors(g) == 4 && gguf_file_size(g) == size;
    static const char *const names[4] = {"a.weight", "b.weight", "c.weight", "d.weight"};
    static const uint32_t types[4] = {QT_F32, QT_Q8_0, QT_F16, QT_Q6_K};
    static const uint32_t dims[4] = {1, 2, 3, 2};
    const int64_t *nes[4] = {ne_a, ne_b, ne_c, ne_d};
    for (uint64_t i = 0; ok && i < 4; i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        ok = t && strcmp(t->name, names[i]) == 0 && t->type == types[i] && t->n_dims == dims[i] &&
             t->offset % alignment == 0 && t->nbytes == nbytes[i];
        if (!ok) break;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
            ok = ok && t->ne[d] == (d < dims[i] ? nes[i][d] : 1);
        ok = ok && memcmp(t->data, data[i], (size_t)t->nbytes) == 0;
        /* the data section itself starts aligned in the file */
        ok = ok && ((const unsigned char *)t->data - (const unsigned char *)gguf_tensor_at(g, 0)->data) ==
                       (long)t->offset;
    }
    gguf_close(g);
    for (int i = 0; i < 4; i++) free(data[i]);
    CHECK(ok);
}

static void test_tensors_default_alignment(void) { check_tensors_with_alignment(32); }
static void test_tensors_alignment_64(void) { check_tensors_with_alignment(64); }

/* Setting a key again replaces the value but keeps the key's position;
 * removing a key drops it. */
static void test_replace_and_remove_keys(void) {
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    gguf_writer_set_u32(w, "general.file_type", 1);
    gguf_writer_set_str(w, "general.name", "x");
    gguf_writer_set_u32(w, "general.file_type", 7);
    gguf_writer_set_u32(w, "general.alignment", 16);
    CHECK(gguf_writer_remove_kv(w, "general.alignment") == 0);
    CHECK_EQ_INT(gguf_writer_alignment(w), 32);
    CHECK(gguf_writer_remove_kv(w, "absent") == -1);
    CHECK_EQ_INT(gguf_writer_n_kv(w), 2);
    char err[256];
    uint64_t size;
    int rc = write_file(w, NULL, 1, &size, err, sizeof err);
    gguf_writer_free(w);
    CHECKF(rc == 0, "%s", err);
    gguf_file *g;
    rc = gguf_open(tmp_path, &g, err, sizeof err);
    unlink(tmp_path);
    CHECKF(rc == 0, "%s", err);
    uint32_t ft = 0;
    int ok = gguf_get_u32(g, "general.file_type", &ft) == 0 && ft == 7 &&
             strcmp(gguf_kv_at(g, 0)->key, "general.file_type") == 0 && gguf_n_kv(g) == 2;
    gguf_close(g);
    CHECK(ok);
}

/* Bad descriptions are refused with a message naming the problem, and
 * begin refuses to write anything after one. */
static void test_bad_descriptions_refused(void) {
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    char name[80];
    memset(name, 'n', 64);
    name[64] = 0;
    int64_t ne[2] = {32, 2}, bad0[2] = {0, 2}, odd[2] = {100, 1};
    CHECK(gguf_writer_add_tensor(w, name, 2, ne, QT_F32) < 0);
    CHECK(strstr(gguf_writer_error(w), "64 bytes") != NULL);
    name[63] = 0; /* 63 bytes: the longest allowed */
    gguf_writer *w2 = gguf_writer_new();
    CHECK(w2);
    int ok = gguf_writer_add_tensor(w2, name, 2, ne, QT_F32) == 0;
    ok = ok && gguf_writer_add_tensor(w2, name, 2, ne, QT_F32) < 0 && strstr(gguf_writer_error(w2), "duplicate");
    gguf_writer_free(w2);
    CHECK(ok);
    w2 = gguf_writer_new();
    CHECK(w2);
    ok = gguf_writer_add_tensor(w2, "t", 2, bad0, QT_F32) < 0;
    ok = ok && gguf_writer_add_tensor(w2, "t", 0, ne, QT_F32) < 0;
    ok = ok && gguf_writer_add_tensor(w2, "t", 5, ne, QT_F32) < 0;
    ok = ok && gguf_writer_add_tensor(w2, "t", 2, odd, QT_Q4_K) < 0;
    ok = ok && gguf_writer_add_tensor(w2, "t", 2, ne, 99) < 0;
    ok = ok && gguf_writer_add_tensor(w2, "", 2, ne, QT_F32) < 0;
    ok = ok && gguf_writer_set_u32(w2, "general.alignment", 0) < 0;
    ok = ok && gguf_writer_set_u32(w2, "general.alignment", 48) < 0;
    ok = ok && gguf_writer_set_u32(w2, "", 1) < 0;
    /* the first error is the one kept */
    ok = ok && strstr(gguf_writer_error(w2), "dimension 0") != NULL;
    gguf_writer_free(w2);
    CHECK(ok);
    char err[256] = "";
    FILE *f = open_tmp();
    CHECK(f);
    int rc = gguf_writer_begin(w, f, err, sizeof err);
    long pos = ftell(f);
    fclose(f);
    unlink(tmp_path);
    gguf_writer_free(w);
    CHECK(rc < 0 && strstr(err, "64 bytes") && pos == 0);
}

/* Streaming misuse: more bytes than the tensor holds, finishing early. */
static void test_stream_length_checked(void) {
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    int64_t ne[1] = {4};
    gguf_writer_add_tensor(w, "a", 1, ne, QT_F32);
    gguf_writer_add_tensor(w, "b", 1, ne, QT_F32);
    char err[256];
    unsigned char buf[32] = {0};
    FILE *f = open_tmp();
    CHECK(f);
    int ok = gguf_writer_begin(w, f, err, sizeof err) == 0;
    ok = ok && gguf_writer_write(w, buf, 17, err, sizeof err) < 0 && strstr(err, "'a'");
    ok = ok && gguf_writer_write(w, buf, 16, err, sizeof err) == 0 && gguf_writer_current(w) == 1;
    ok = ok && gguf_writer_write(w, buf, 8, err, sizeof err) == 0;
    ok = ok && gguf_writer_finish(w, NULL, err, sizeof err) < 0 && strstr(err, "'b'") && strstr(err, "incomplete");
    ok = ok && gguf_writer_write(w, buf, 8, err, sizeof err) == 0;
    ok = ok && gguf_writer_write(w, buf, 1, err, sizeof err) < 0 && strstr(err, "past the last");
    ok = ok && gguf_writer_finish(w, NULL, err, sizeof err) == 0;
    ok = ok && gguf_writer_set_u8(w, "late", 1) < 0; /* frozen after begin */
    fclose(f);
    unlink(tmp_path);
    gguf_writer_free(w);
    CHECK(ok);
}

/* A failing device (/dev/full: every write is ENOSPC) is reported. */
static void test_write_errors_reported(void) {
    FILE *f = fopen("/dev/full", "wb");
    if (!f) TEST_SKIP("/dev/full not available");
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    int64_t ne[1] = {1 << 16};
    gguf_writer_add_tensor(w, "big", 1, ne, QT_F32);
    char err[256] = "";
    int rc = gguf_writer_begin(w, f, err, sizeof err);
    static float zeros[1 << 16];
    if (rc == 0) rc = gguf_writer_write(w, zeros, sizeof zeros, err, sizeof err);
    if (rc == 0) rc = gguf_writer_finish(w, NULL, err, sizeof err);
    fclose(f);
    gguf_writer_free(w);
    CHECKF(rc < 0 && strstr(err, "No space"), "rc %d err '%s'", rc, err);
}

/* Every kv of a file read by gguf.h can be copied into a new file, with its
 * type: the tokenizer of a real vocab-only GGUF survives a copy. */
static void test_copy_kvs_from_reader(void) {
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/models/ggml-org_llama.cpp/ggml-vocab-llama-spm.gguf", test_shared_dir());
    gguf_file *src;
    if (gguf_open(path, &src, err, sizeof err) < 0) TEST_SKIP("%s not readable (%s)", path, err);
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    for (uint64_t i = 0; i < gguf_n_kv(src); i++) gguf_writer_copy_kv(w, gguf_kv_at(src, i));
    uint64_t size;
    int rc = *gguf_writer_error(w) ? -1 : write_file(w, NULL, 1, &size, err, sizeof err);
    if (*gguf_writer_error(w)) snprintf(err, sizeof err, "%s", gguf_writer_error(w));
    gguf_writer_free(w);
    gguf_file *g = NULL;
    if (rc == 0) rc = gguf_open(tmp_path, &g, err, sizeof err);
    unlink(tmp_path);
    if (rc != 0) gguf_close(src);
    CHECKF(rc == 0, "%s", err);
    int ok = gguf_n_kv(g) == gguf_n_kv(src);
    for (uint64_t i = 0; ok && i < gguf_n_kv(src); i++) {
        const gguf_kv *a = gguf_kv_at(src, i), *b = gguf_kv_at(g, i);
        ok = strcmp(a->key, b->key) == 0 && a->type == b->type;
        if (ok && a->type == GGUF_ARRAY) {
            ok = a->arr_type == b->arr_type && a->arr_n == b->arr_n;
            for (uint64_t j = 0; ok && a->arr_type == GGUF_STRING && j < a->arr_n; j++) {
                const char *s1, *s2;
                uint64_t l1, l2;
                gguf_arr_str(a, j, &s1, &l1);
                gguf_arr_str(b, j, &s2, &l2);
                ok = l1 == l2 && memcmp(s1, s2, l1) == 0;
            }
            if (ok && a->arr_type != GGUF_STRING)
                ok = memcmp(a->data, b->data, (size_t)a->arr_n * gguf_vtype_size(a->arr_type)) == 0;
        } else if (ok && a->type == GGUF_STRING) {
            uint64_t l1, l2;
            memcpy(&l1, a->data, 8);
            memcpy(&l2, b->data, 8);
            ok = l1 == l2 && memcmp(a->data, b->data, 8 + l1) == 0;
        } else if (ok) {
            ok = memcmp(a->data, b->data, gguf_vtype_size(a->type)) == 0;
        }
        if (!ok) printf("  key %s differs after the copy\n", a->key);
    }
    gguf_close(g);
    gguf_close(src);
    CHECK(ok);
}

int main(void) {
    TEST_RUN(test_every_metadata_type_roundtrips);
    TEST_RUN(test_tensors_default_alignment);
    TEST_RUN(test_tensors_alignment_64);
    TEST_RUN(test_replace_and_remove_keys);
    TEST_RUN(test_bad_descriptions_refused);
    TEST_RUN(test_stream_length_checked);
    TEST_RUN(test_write_errors_reported);
    TEST_RUN(test_copy_kvs_from_reader);
    return TEST_DONE();
}
