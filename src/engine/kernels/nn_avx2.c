/* nn_avx2.c - AVX2/FMA/F16C versions of the encoder kernels (nn.h), eight
 * lanes at a time with a scalar tail that calls the reference's per-element
 * code.  Only reached after nn_get's CPUID check.  As in nn_avx512.c, GELU,
 * SwiGLU and the exponential return the reference's bits; the sums agree
 * with it to rounding. */
#include "kernels/nn.h"

#include <immintrin.h>
#include <stdint.h>
#include <math.h>

static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static void layernorm_avx2(float *x, const float *r, const float *rb, const float *w, const float *b, int64_t n,
                           float eps) {
    __m256 s = _mm256_setzero_ps();
    int64_t i = 0, n8 = n & ~(int64_t)7;
    for (; i < n8; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        if (r) v = _mm256_add_ps(v, _mm256_loadu_ps(r + i));
        if (rb) v = _mm256_add_ps(v, _mm256_loadu_ps(rb + i));
        if (r || rb) _mm256_storeu_ps(x + i, v);
        s = _mm256_add_ps(s, v);
    }
    float sum = hsum8(s);
    for (; i < n; i++) {
        if (r) x[i] += r[i];
        if (rb) x[i] += rb[i];
        sum += x[i];
    }
    float mean = sum / (float)n;
    __m256 vm = _mm256_set1_ps(mean), ss = _mm256_setzero_ps();
    for (i = 0; i < n8; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        ss = _mm256_fmadd_ps(d, d, ss);
    }
    float sq = hsum8(ss);
    for (; i < n; i++) sq += (x[i] - mean) * (x[i] - mean);
    float scale = 1.0f / sqrtf(sq / (float)n + eps);
    __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i < n8; i += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vs);
        _mm256_storeu_ps(x + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < n; i++) x[i] = fmaf((x[i] - mean) * scale, w[i], b[i]);
}

static void add_avx2(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

static inline __m256 exp8(__m256 x) {
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(NN_EXP_LO)), _mm256_set1_ps(NN_EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(NN_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-NN_LN2_HI), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-NN_LN2_LO), r);
    __m256 p = _mm256_set1_ps(NN_EXP_C7);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN_EXP_C6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(NN_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 out = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    out = _mm256_blendv_ps(out, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(NN_EXP_LO), _CMP_LT_OQ));
    out = _mm256_blendv_ps(out, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(NN_EXP_HI), _CMP_GT_OQ));
    return _mm256_blendv_ps(out, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

static void gelu_avx2(float *y, const float *bias, int64_t n) {
    const __m256 lo = _mm256_set1_ps(NN_GELU_LO), hi = _mm256_set1_ps(NN_GELU_HI), one = _mm256_set1_ps(1.0f);
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(y + i);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + i));
        __m256 h = _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(NN_GELU_A), _mm256_mul_ps(h, h), one);
        __m256 z2 = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(NN_GELU_2C), h), p);
        __m256 g = _mm256_div_ps(h, _mm256_add_ps(one, exp8(_mm256_xor_ps(z2, sign))));
        g = _mm256_cvtph_ps(_mm256_cvtps_ph(g, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        g = _mm256_blendv_ps(g, v, _mm256_cmp_ps(v, hi, _CMP_GE_OQ));
        g = _mm256_blendv_ps(g, _mm256_setzero_ps(), _mm256_cmp_ps(v, lo, _CMP_LE_OQ));
        _mm256_storeu_ps(y + i, g);
    }
    for (; i < n; i++) y[i] = nn_gelu1(bias ? y[i] + bias[i] : y[i]);
}

static void silu_mul_avx2(float *g, const float *u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(g + i);
        __m256 e = exp8(_mm256_xor_ps(v, sign));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(v, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + nn_expf(-g[i])) * u[i];
}

static void softmax_avx2(float *x, int64_t n, float scale) {
    __m256 vs = _mm256_set1_ps(scale), vmx = _mm256_set1_ps(-INFINITY);
    int64_t i = 0, n8 = n & ~(int64_t)7;
    for (; i < n8; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        _mm256_storeu_ps(x + i, v);
        vmx = _mm256_max_ps(vmx, v);
    }
    float mx = hmax8(vmx);
    for (; i < n; i++) {
        x[i] *= scale;
        mx = x[i] > mx ? x[i] : mx;
    }
    __m256 vm = _mm256_set1_ps(mx), vsum = _mm256_setzero_ps();
    for (i = 0; i < n8; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    float sum = hsum8(vsum);
    for (; i < n; i++) {
        x[i] = nn_expf(x[i] - mx);
        sum += x[i];
    }
    __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (i = 0; i < n8; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; i++) x[i] *= 1.0f / sum;
}

/* Masks for a tail of n < 8 lanes (maskload/maskstore). */
static __m256i mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Four queries x 16 keys in 8 accumulators (missing queries repeat the
 * first and are not stored, so the accumulators stay in registers). */
static void qk_avx2(float *s, size_t lds, const float *q, size_t ldq, int nq, const float *kt, size_t ldk, int np,
                    int hd) {
    for (int i0 = 0; i0 < nq; i0 += 4) {
        int mi = nq - i0 < 4 ? nq - i0 : 4;
        const float *qr[4];
        for (int i = 0; i < 4; i++) qr[i] = q + (size_t)(i0 + (i < mi ? i : 0)) * ldq;
        for (int p0 = 0; p0 < np; p0 += 16) {
            __m256i m0 = mask8(np - p0), m1 = mask8(np - p0 - 8);
            __m256 acc[4][2];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
            for (int d = 0; d < hd; d++) {
                const float *kr = kt + (size_t)d * ldk + p0;
                __m256 k0 = _mm256_maskload_ps(kr, m0), k1 = _mm256_maskload_ps(kr + 8, m1);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    __m256 b = _mm256_set1_ps(qr[i][d]);
                    acc[i][0] = _mm256_fmadd_ps(b, k0, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(b, k1, acc[i][1]);
                }
            }
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                if (i < mi) {
                    _mm256_maskstore_ps(s + (size_t)(i0 + i) * lds + p0, m0, acc[i][0]);
                    _mm256_maskstore_ps(s + (size_t)(i0 + i) * lds + p0 + 8, m1, acc[i][1]);
                }
        }
    }
}

/* Four queries x 16 output columns in 8 accumulators. */
static void pv_avx2(float *o, size_t ldo, const float *w, size_t ldw, int nq, const float *v, size_t ldv, int np,
                    int hd) {
    for (int c0 = 0; c0 < hd; c0 += 16) {
        __m256i m0 = mask8(hd - c0), m1 = mask8(hd - c0 - 8);
        for (int i0 = 0; i0 < nq; i0 += 4) {
            int mi = nq - i0 < 4 ? nq - i0 : 4;
            const float *wr[4];
            for (int i = 0; i < 4; i++) wr[i] = w + (size_t)(i0 + (i < mi ? i : 0)) * ldw;
            __m256 acc[4][2];
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
            for (int p = 0; p < np; p++) {
                const float *vr = v + (size_t)p * ldv + c0;
                __m256 v0 = _mm256_maskload_ps(vr, m0), v1 = _mm256_maskload_ps(vr + 8, m1);
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++) {
                    __m256 b = _mm256_set1_ps(wr[i][p]);
                    acc[i][0] = _mm256_fmadd_ps(b, v0, acc[i][0]);
                    acc[i][1] = _mm256_fmadd_ps(b, v1, acc[i][1]);
                }
            }
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++)
                if (i < mi) {
                    _mm256_maskstore_ps(o + (size_t)(i0 + i) * ldo + c0, m0, acc[i][0]);
                    _mm256_maskstore_ps(o + (size_t)(i0 + i) * ldo + c0 + 8, m1, acc[i][1]);
                }
        }
    }
}

static const nn_table AVX2 = {layernorm_avx2, gelu_avx2, silu_mul_avx2, add_avx2, softmax_avx2, qk_avx2, pv_avx2};

const nn_table *nn_avx2_table(void) { return &AVX2; }
