/* ops_avx2.c - AVX2/FMA versions of the f32 vector primitives in ops.h.
 * Compiled with -mavx2 -mfma; only reached after ops_get's CPUID check. */
#include "ops.h"

#include <immintrin.h>

static float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_avx2(float *y, float a, const float *x, int64_t n) {
    __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* Same per-query sequence of operations as dot_avx2 (two accumulators over
 * 16-wide steps, one 8-wide step, horizontal sum, scalar tail), with k's
 * loads shared by the queries. */
static void dot_multi_avx2(const float *const *q, int m, const float *k, int64_t n, float *out) {
    __m256 s0[OPS_MULTI], s1[OPS_MULTI];
    for (int j = 0; j < m; j++) s0[j] = s1[j] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 k0 = _mm256_loadu_ps(k + i), k1 = _mm256_loadu_ps(k + i + 8);
        for (int j = 0; j < m; j++) {
            s0[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q[j] + i), k0, s0[j]);
            s1[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q[j] + i + 8), k1, s1[j]);
        }
    }
    int64_t i8 = i;
    if (i + 8 <= n) {
        __m256 k0 = _mm256_loadu_ps(k + i);
        for (int j = 0; j < m; j++) s0[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q[j] + i), k0, s0[j]);
        i8 = i + 8;
    }
    for (int j = 0; j < m; j++) {
        float s = hsum256(_mm256_add_ps(s0[j], s1[j]));
        for (int64_t t = i8; t < n; t++) s += q[j][t] * k[t];
        out[j] = s;
    }
}

static void axpy_multi_avx2(float *const *y, const float *a, int m, const float *x, int64_t n) {
    __m256 va[OPS_MULTI];
    for (int j = 0; j < m; j++) va[j] = _mm256_set1_ps(a[j]);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 vx = _mm256_loadu_ps(x + i);
        for (int j = 0; j < m; j++)
            _mm256_storeu_ps(y[j] + i, _mm256_fmadd_ps(va[j], vx, _mm256_loadu_ps(y[j] + i)));
    }
    for (; i < n; i++)
        for (int j = 0; j < m; j++) y[j][i] += a[j] * x[i];
}

/* Eight columns at a time: the m accumulators stay in registers across all
 * rows, so each x row is loaded once and each y element once.  The per-row
 * step is axpy_avx2's fmadd(a, x, y), in row order, so results equal
 * cnt[j] axpy calls exactly. */
static void axpy_rows_avx2(float *const *y, const float *const *w, const int32_t *cnt, int m, const float *const *x,
                           int64_t n) {
    int32_t last = m ? cnt[m - 1] : 0;
    int64_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 acc[OPS_ROWS];
        for (int j = 0; j < m; j++) acc[j] = _mm256_loadu_ps(y[j] + c);
        int first = 0;
        for (int32_t p = 0; p < last; p++) {
            while (cnt[first] <= p) first++;
            __m256 vx = _mm256_loadu_ps(x[p] + c);
            for (int j = first; j < m; j++) acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(w[j][p]), vx, acc[j]);
        }
        for (int j = 0; j < m; j++) _mm256_storeu_ps(y[j] + c, acc[j]);
    }
    for (; c < n; c++)
        for (int j = 0; j < m; j++)
            for (int32_t p = 0; p < cnt[j]; p++) y[j][c] += w[j][p] * x[p][c];
}

static const ops_table AVX2 = {dot_avx2, axpy_avx2, dot_multi_avx2, axpy_multi_avx2, axpy_rows_avx2};

const ops_table *ops_avx2_table(void) { return &AVX2; }
