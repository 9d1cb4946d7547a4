/* ops_avx2.c - AVX2/FMA version of the attention primitive in ops.h.
 * Compiled with -mavx2 -mfma; only reached after ops_get's CPUID check. */
#include "kernels/ops.h"

#include <immintrin.h>

/* Eight columns at a time: the m accumulators stay in registers across all
 * rows, so each x row is loaded once and each y element once.  Each step is
 * one fmadd(w, x, y) per element, in row order. */
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

static const ops_table AVX2 = {axpy_rows_avx2};

const ops_table *ops_avx2_table(void) { return &AVX2; }
