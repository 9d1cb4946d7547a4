/* quant_batch_avx512.c - the Q8_0 product for large batches of tokens
 * (encoders: every product of a pass covers hundreds to thousands of
 * tokens), AVX-512 VNNI.  Only called after quant.c's CPUID check.
 *
 * quant_matmul's Q8_0 kernels put the 32-element blocks of one weight row
 * in the lanes of a vector (quant_avx512.c), which suits decoding but
 * leaves lanes idle when a row has fewer than 16 blocks (MiniLM's rows of
 * 384 have 12) and re-transposes each row's weights for every 16 tokens.
 * Here the lanes hold 16 weight rows instead: a group of 16 rows is
 * repacked once (by gathers: 4 bytes of each row per vector, biased to
 * unsigned as VNNI wants) and then meets every token of the call, 8 tokens
 * at a time, with the token's 4 activation bytes broadcast from memory.
 * The 16 results of a token land in one vector, so nothing is summed
 * across lanes and the store is contiguous.
 *
 * Each (row, token) is the same arithmetic whatever nt, r0, r1 or the
 * tiling: for each block b in order, the exact integer dot product, then
 * acc = fma((float)dot, d_w * d_a, acc).  This order differs from
 * quant_matmul's, which is why it is a separate entry point
 * (quant_matmul_batch) that a caller uses for all of its products. */
#include "kernels/quant.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))
#define TOKENS 8 /* tokens per tile: 8 int and 8 float accumulators */

/* Rows r .. r+nr-1 (nr <= 16), every block, into wp (8 vectors per block:
 * vector c holds bytes 4c..4c+3 of each row's block, +128) and dw (the 16
 * scales per block).  Lanes past nr are zero. */
static void repack16(const uint8_t *w, size_t ws, int64_t nb, int nr, __m512i *wp, __m512 *dw) {
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
    const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)ws));
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t)b * sizeof(block_q8_0);
        __m512i dh = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, rows, blk, 1);
        dw[b] = _mm512_maskz_mov_ps(m, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dh)));
        for (int c = 0; c < 8; c++) {
            __m512i q = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, rows, blk + 2 + 4 * c, 1);
            wp[b * 8 + c] = _mm512_maskz_mov_epi32(m, _mm512_xor_si512(q, bias));
        }
    }
}

static inline int32_t load4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* TOKENS tokens (activation rows a[u]) against the repacked group. */
AI void tile(const __m512i *wp, const __m512 *dw, int64_t nb, int64_t k, const uint8_t *const *a, __m512 *acc) {
    const int8_t *qs[TOKENS];
    const float *da[TOKENS];
    const int32_t *sa[TOKENS];
#pragma GCC unroll 16
    for (int u = 0; u < TOKENS; u++) {
        qs[u] = (const int8_t *)a[u];
        da[u] = (const float *)(a[u] + k);
        sa[u] = (const int32_t *)(a[u] + k + nb * 4);
        acc[u] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        __m512i is[TOKENS];
#pragma GCC unroll 16
        for (int u = 0; u < TOKENS; u++) is[u] = _mm512_set1_epi32(-128 * sa[u][b]);
#pragma GCC unroll 16
        for (int c = 0; c < 8; c++) {
            __m512i wv = _mm512_load_si512(wp + b * 8 + c);
#pragma GCC unroll 16
            for (int u = 0; u < TOKENS; u++)
                is[u] = _mm512_dpbusd_epi32(is[u], wv, _mm512_set1_epi32(load4(qs[u] + 32 * b + 4 * c)));
        }
#pragma GCC unroll 16
        for (int u = 0; u < TOKENS; u++)
            acc[u] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[u]), _mm512_mul_ps(dw[b], _mm512_set1_ps(da[u][b])), acc[u]);
    }
}

void quant_q8_0_batch_avx512(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act,
                             int64_t nt, float *y, size_t ldy) {
    const int64_t nb = k / 32;
    const size_t ab = quant_act_row_bytes(QT_Q8_0, k);
    _Alignas(64) __m512i wp[QUANT_BATCH_MAX_BLOCKS * 8];
    _Alignas(64) __m512 dw[QUANT_BATCH_MAX_BLOCKS];
    for (int64_t r = r0; r < r1; r += 16) {
        int nr = (int)(r1 - r < 16 ? r1 - r : 16);
        const __mmask16 m = (__mmask16)((1u << nr) - 1);
        repack16((const uint8_t *)w + (size_t)r * ws, ws, nb, nr, wp, dw);
        for (int64_t t = 0; t < nt; t += TOKENS) {
            int tt = (int)(nt - t < TOKENS ? nt - t : TOKENS);
            /* a short last tile repeats its first token and stores only tt */
            const uint8_t *a[TOKENS];
            for (int u = 0; u < TOKENS; u++) a[u] = (const uint8_t *)act + (size_t)(t + (u < tt ? u : 0)) * ab;
            __m512 acc[TOKENS];
            tile(wp, dw, nb, k, a, acc);
            for (int u = 0; u < tt; u++) _mm512_mask_storeu_ps(y + (size_t)(t + u) * ldy + (size_t)r, m, acc[u]);
        }
    }
}
