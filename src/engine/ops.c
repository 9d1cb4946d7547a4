/* ops.c - reference f32 vector primitives and the run-time choice between
 * them and the AVX2 versions (ops_avx2.c).  The reference sums with eight
 * partial accumulators so that its rounding matches the SIMD path's lane
 * structure closely; both are deterministic for a given input. */
#include "ops.h"

#include "quant.h"

static float dot_ref(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_ref(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void dot_multi_ref(const float *const *q, int m, const float *k, int64_t n, float *out) {
    for (int j = 0; j < m; j++) out[j] = dot_ref(q[j], k, n);
}

static void axpy_multi_ref(float *const *y, const float *a, int m, const float *x, int64_t n) {
    for (int j = 0; j < m; j++) axpy_ref(y[j], a[j], x, n);
}

static void axpy_rows_ref(float *const *y, const float *const *w, const int32_t *cnt, int m, const float *const *x,
                          int64_t n) {
    for (int j = 0; j < m; j++)
        for (int32_t p = 0; p < cnt[j]; p++) axpy_ref(y[j], w[j][p], x[p], n);
}

static const ops_table REF = {dot_ref, axpy_ref, dot_multi_ref, axpy_multi_ref, axpy_rows_ref};

const ops_table *ops_ref(void) { return &REF; }

const ops_table *ops_get(void) {
    int isa = quant_isa();
    return isa >= QUANT_ISA_AVX512 ? ops_avx512_table() : isa >= QUANT_ISA_AVX2 ? ops_avx2_table() : &REF;
}

const char *infer_simd_name(void) { return quant_isa_name(quant_isa()); }
