/* nn_avx512.c - AVX-512 versions of the encoder kernels (nn.h), sixteen
 * lanes at a time with masked tails.  Only reached after nn_get's CPUID
 * check.
 *
 * GELU, SwiGLU and the exponential run the reference's operations lane by
 * lane (fp16 conversions round as quant_f32_to_f16 does), so they return
 * its bits; the LayerNorm and softmax sums are in f32 lanes, so those agree
 * with the reference to rounding. */
#include "kernels/nn.h"

#include <immintrin.h>
#include <stdint.h>
#include <math.h>

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

static void layernorm_avx512(float *x, const float *r, const float *rb, const float *w, const float *b, int64_t n,
                             float eps) {
    __m512 s = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        if (r) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, r + i));
        if (rb) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, rb + i));
        if (r || rb) _mm512_mask_storeu_ps(x + i, m, v);
        s = _mm512_add_ps(s, v);
    }
    float mean = _mm512_reduce_add_ps(s) / (float)n;
    __m512 vm = _mm512_set1_ps(mean), ss = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vm);
        ss = _mm512_fmadd_ps(d, d, ss);
    }
    float scale = 1.0f / sqrtf(_mm512_reduce_add_ps(ss) / (float)n + eps);
    __m512 vs = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), vs);
        __m512 o = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, b + i));
        _mm512_mask_storeu_ps(x + i, m, o);
    }
}

static void add_avx512(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 s = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i));
        _mm512_mask_storeu_ps(y + i, m, s);
    }
}

/* nn_expf on sixteen lanes: the same operations in the same order. */
static inline __m512 exp16(__m512 x) {
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(NN_EXP_LO)), _mm512_set1_ps(NN_EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(NN_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-NN_LN2_HI), xc);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(-NN_LN2_LO), r);
    __m512 p = _mm512_set1_ps(NN_EXP_C7);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_C6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(NN_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    __m512 out = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
    out = _mm512_mask_mov_ps(out, _mm512_cmp_ps_mask(x, _mm512_set1_ps(NN_EXP_LO), _CMP_LT_OQ), _mm512_setzero_ps());
    out = _mm512_mask_mov_ps(out, _mm512_cmp_ps_mask(x, _mm512_set1_ps(NN_EXP_HI), _CMP_GT_OQ),
                             _mm512_set1_ps(__builtin_inff()));
    return _mm512_mask_mov_ps(out, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x);
}

/* nn_gelu1 on sixteen lanes, the same operations in the same order. */
static void gelu_avx512(float *y, const float *bias, int64_t n) {
    const __m512 lo = _mm512_set1_ps(NN_GELU_LO), hi = _mm512_set1_ps(NN_GELU_HI), one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32(INT32_MIN);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, y + i);
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
        __m512 h = _mm512_cvtph_ps(_mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(NN_GELU_A), _mm512_mul_ps(h, h), one);
        __m512 z2 = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(NN_GELU_2C), h), p);
        __m512 e = exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(z2), sign)));
        __m512 g = _mm512_div_ps(h, _mm512_add_ps(one, e));
        g = _mm512_cvtph_ps(_mm512_cvtps_ph(g, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        g = _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(v, hi, _CMP_GE_OQ), v);
        g = _mm512_mask_mov_ps(g, _mm512_cmp_ps_mask(v, lo, _CMP_LE_OQ), _mm512_setzero_ps());
        _mm512_mask_storeu_ps(y + i, m, g);
    }
}

static void silu_mul_avx512(float *g, const float *u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(m, g + i);
        __m512 e = exp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN))));
        __m512 o = _mm512_mul_ps(_mm512_div_ps(v, _mm512_add_ps(one, e)), _mm512_maskz_loadu_ps(m, u + i));
        _mm512_mask_storeu_ps(g + i, m, o);
    }
}

static void softmax_avx512(float *x, int64_t n, float scale) {
    __m512 vs = _mm512_set1_ps(scale), mx = _mm512_set1_ps(-__builtin_inff());
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
        _mm512_mask_storeu_ps(x + i, m, v);
        mx = _mm512_mask_max_ps(mx, m, mx, v);
    }
    __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(mx)), sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum = _mm512_mask_add_ps(sum, m, sum, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

#define AI static inline __attribute__((always_inline))

/* Four queries x 64 keys in 16 accumulators; per dimension four key
 * vectors are loaded once for the four queries.  Missing queries of the
 * last block repeat the first one and are not stored, so the loops have
 * constant bounds and the accumulators stay in registers. */
static void qk_avx512(float *s, size_t lds, const float *q, size_t ldq, int nq, const float *kt, size_t ldk, int np,
                      int hd) {
    for (int i0 = 0; i0 < nq; i0 += 4) {
        int mi = nq - i0 < 4 ? nq - i0 : 4;
        const float *qr[4];
        for (int i = 0; i < 4; i++) qr[i] = q + (size_t)(i0 + (i < mi ? i : 0)) * ldq;
        for (int p0 = 0; p0 < np; p0 += 64) {
            __mmask16 mk[4];
            for (int j = 0; j < 4; j++) mk[j] = tail_mask(np - p0 - 16 * j > 0 ? np - p0 - 16 * j : 0);
            __m512 acc[4][4];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
            for (int d = 0; d < hd; d++) {
                const float *kr = kt + (size_t)d * ldk + p0;
                __m512 kv[4];
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) kv[j] = _mm512_maskz_loadu_ps(mk[j], kr + 16 * j);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    __m512 b = _mm512_set1_ps(qr[i][d]);
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(b, kv[j], acc[i][j]);
                }
            }
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                if (i < mi)
#pragma GCC unroll 4
                    for (int j = 0; j < 4; j++)
                        _mm512_mask_storeu_ps(s + (size_t)(i0 + i) * lds + p0 + 16 * j, mk[j], acc[i][j]);
        }
    }
}

/* NV vectors of output columns (16 NV <= 64) for 16 / NV queries: 16
 * accumulators at most; per key the NV value vectors are loaded once for
 * all the queries. */
AI void pv_cols(const int NV, float *o, size_t ldo, const float *w, size_t ldw, int nq, const float *v, size_t ldv,
                int np, int c0, int cw) {
    const int QB = 16 / NV;
    __mmask16 mk[4];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) mk[j] = tail_mask(cw - 16 * j > 0 ? cw - 16 * j : 0);
    for (int i0 = 0; i0 < nq; i0 += QB) {
        int mi = nq - i0 < QB ? nq - i0 : QB;
        const float *wr[16];
        for (int i = 0; i < QB; i++) wr[i] = w + (size_t)(i0 + (i < mi ? i : 0)) * ldw;
        __m512 acc[16];
#pragma GCC unroll 16
        for (int a = 0; a < QB * NV; a++) acc[a] = _mm512_setzero_ps();
        for (int p = 0; p < np; p++) {
            const float *vr = v + (size_t)p * ldv + c0;
            __m512 vv[4];
#pragma GCC unroll 4
            for (int j = 0; j < NV; j++) vv[j] = _mm512_maskz_loadu_ps(mk[j], vr + 16 * j);
#pragma GCC unroll 16
            for (int i = 0; i < QB; i++) {
                __m512 b = _mm512_set1_ps(wr[i][p]);
#pragma GCC unroll 4
                for (int j = 0; j < NV; j++) acc[i * NV + j] = _mm512_fmadd_ps(b, vv[j], acc[i * NV + j]);
            }
        }
#pragma GCC unroll 16
        for (int i = 0; i < QB; i++)
            if (i < mi)
#pragma GCC unroll 4
                for (int j = 0; j < NV; j++)
                    _mm512_mask_storeu_ps(o + (size_t)(i0 + i) * ldo + c0 + 16 * j, mk[j], acc[i * NV + j]);
    }
}

static void pv_avx512(float *o, size_t ldo, const float *w, size_t ldw, int nq, const float *v, size_t ldv, int np,
                      int hd) {
    for (int c0 = 0; c0 < hd; c0 += 64) {
        int cw = hd - c0 < 64 ? hd - c0 : 64;
        switch ((cw + 15) / 16) {
        case 1: pv_cols(1, o, ldo, w, ldw, nq, v, ldv, np, c0, cw); break;
        case 2: pv_cols(2, o, ldo, w, ldw, nq, v, ldv, np, c0, cw); break;
        case 3: pv_cols(3, o, ldo, w, ldw, nq, v, ldv, np, c0, cw); break;
        default: pv_cols(4, o, ldo, w, ldw, nq, v, ldv, np, c0, cw); break;
        }
    }
}

static const nn_table T512 = {layernorm_avx512, gelu_avx512, silu_mul_avx512, add_avx512,
                              softmax_avx512,   qk_avx512,   pv_avx512};

const nn_table *nn_avx512_table(void) { return &T512; }
