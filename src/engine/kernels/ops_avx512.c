/* ops_avx512.c - AVX-512 version of the attention accumulation (axpy_rows).
 * Only reached after ops_get's CPUID check.
 *
 * axpy_rows is the P*V product of attention: four queries' outputs, 64
 * columns at a time, live in 16 zmm accumulators across every position, so
 * each V row chunk is loaded once for the four queries and each weight is
 * broadcast once per chunk.  Every element gets one fused multiply-add per
 * position in position order, as in the AVX2 version. */
#include "kernels/ops.h"

#include <immintrin.h>

static void axpy_rows_avx512(float *const *y, const float *const *w, const int32_t *cnt, int m, const float *const *x,
                             int64_t n) {
    for (int j0 = 0; j0 < m; j0 += 4) {
        int mj = m - j0 < 4 ? m - j0 : 4;
        int32_t last = cnt[j0 + mj - 1];
        for (int64_t c = 0; c < n; c += 64) {
            int64_t width = n - c < 64 ? n - c : 64;
            __mmask16 mk[4];
            for (int k = 0; k < 4; k++) {
                int64_t lanes = width - 16 * k;
                mk[k] = lanes >= 16 ? (__mmask16)0xffff : lanes > 0 ? (__mmask16)((1u << lanes) - 1) : 0;
            }
            __m512 acc[4][4];
            for (int j = 0; j < 4; j++)
                for (int k = 0; k < 4; k++)
                    acc[j][k] = j < mj ? _mm512_maskz_loadu_ps(mk[k], y[j0 + j] + c + 16 * k) : _mm512_setzero_ps();
            int first = 0;
            for (int32_t p = 0; p < last; p++) {
                while (cnt[j0 + first] <= p) first++;
                const float *xp = x[p] + c;
                __m512 v0 = _mm512_maskz_loadu_ps(mk[0], xp), v1 = _mm512_maskz_loadu_ps(mk[1], xp + 16);
                __m512 v2 = _mm512_maskz_loadu_ps(mk[2], xp + 32), v3 = _mm512_maskz_loadu_ps(mk[3], xp + 48);
                for (int j = 0; j < 4; j++) {
                    if (j < first || j >= mj) continue;
                    __m512 wj = _mm512_set1_ps(w[j0 + j][p]);
                    acc[j][0] = _mm512_fmadd_ps(wj, v0, acc[j][0]);
                    acc[j][1] = _mm512_fmadd_ps(wj, v1, acc[j][1]);
                    acc[j][2] = _mm512_fmadd_ps(wj, v2, acc[j][2]);
                    acc[j][3] = _mm512_fmadd_ps(wj, v3, acc[j][3]);
                }
            }
            for (int j = 0; j < mj; j++)
                for (int k = 0; k < 4; k++) _mm512_mask_storeu_ps(y[j0 + j] + c + 16 * k, mk[k], acc[j][k]);
        }
    }
}

static const ops_table T512 = {axpy_rows_avx512};

const ops_table *ops_avx512_table(void) { return &T512; }
