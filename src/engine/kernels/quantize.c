/* quantize.c - float rows into every tensor type libinfer stores, in the
 * exact GGUF block layouts of quant.h (quant_quantize_row).
 *
 * Used by tools (gguf-gen writes and re-quantizes models) and by tests that
 * need weights of a given type; it is not on the inference hot path, so it
 * favours accuracy over speed.  The algorithms are our own:
 *
 *  - Q8_0, Q4_0 and the sub-blocks of Q6_K (symmetric levels): candidate
 *    scales put the largest-magnitude value on or near the extreme level;
 *    each is scored by the error of the least-squares scale for the levels
 *    it picks (one pass, closed form), and the winner is polished by two
 *    re-pick/refit rounds.  Q8_0 never uses level -128.
 *  - Q4_K / Q5_K (levels a*q - b, q in [0, 2^bits - 1]): per sub-block of 32,
 *    candidate steps over [min(x, 0), max(x)] with the origin at the minimum
 *    or half a step below, each refit by least squares in (a, b) with b >= 0
 *    and scored in closed form, then polished; the sub-block (a, b) become
 *    6-bit multiples of the super-block d / dmin, and every value is
 *    re-quantized against the scales actually stored, so the error the
 *    dequantizer sees is the one the search minimised.
 *  - Q6_K: sub-block scales from the symmetric search, coded as int8
 *    multiples of the super-block d, values re-quantized against them.
 *
 * Every stored scale is rounded to fp16 (or int8/6-bit) before the final
 * levels are picked.  NaN inputs quantize as 0; values beyond the range of a
 * block saturate to its extreme level. */
#include "kernels/quant.h"

#include <math.h>
#include <string.h>

/* The largest finite fp16; a scale beyond it would be stored as inf. */
#define F16_MAX 65504.0f

#ifndef AFFINE_CANDIDATES
#define AFFINE_CANDIDATES 6 /* more buys < 0.1% relative error on Gaussian rows */
#endif

/* Rounds v to the nearest integer (ties to even) in [lo, hi]; NaN gives 0.
 * Adding and removing 1.5 * 2^23 rounds in the FPU's default mode without a
 * libm call; it is exact because v is already clamped to a few hundred. */
static inline int qround(float v, int lo, int hi) {
    if (v != v) return 0;
    if (v <= (float)lo) return lo;
    if (v >= (float)hi) return hi;
    return (int)((v + 0x1.8p23f) - 0x1.8p23f); /* not folded: we never build with -ffast-math */
}

static float clamp_f16_range(float d) {
    if (d > F16_MAX) return F16_MAX;
    if (d < -F16_MAX) return -F16_MAX;
    return d;
}

/* ---- symmetric levels ([-nneg, npos]) ------------------------------------ */

/* Every candidate scale is judged by one pass: it picks the levels q, and
 * for those levels the least-squares scale d* = sum(xq) / sum(q^2) leaves an
 * error of sum(x^2) - sum(xq)^2 / sum(q^2).  Re-rounding x against d* can
 * only lower that error, so the score is an upper bound on what d* gets. */
static void sym_sums(const float *x, int n, float d, int nneg, int npos, float *sxq, float *sqq) {
    float id = d != 0 ? 1.0f / d : 0.0f, a = 0, b = 0;
    for (int i = 0; i < n; i++) {
        int q = qround(x[i] * id, -nneg, npos);
        a += x[i] * (float)q;
        b += (float)(q * q);
    }
    *sxq = a;
    *sqq = b;
}

/* A float scale for x[0..n) with integer levels in [-nneg, npos] (0 when
 * x is all zero).  Candidates put the largest-magnitude value m on level
 * -t (t near nneg, the wider side) or +t (t near npos), for ncand values of
 * t from top + 0.5 down by 2 + 6% of top: levels beyond the extreme clip,
 * which pays when one value stands out, and wide grids gain from clipping
 * more levels than narrow ones. */
static float fit_symmetric(const float *x, int n, int nneg, int npos, int ncand) {
    float amax = 0, m = 0;
    for (int i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > amax) { amax = a; m = x[i]; }
    }
    if (!(amax > 0)) return 0;
    float best_d = -m / (float)nneg, best_score = -1;
    /* With as many levels on each side, the second family repeats the first. */
    for (int side = 0; side < (nneg == npos ? 1 : 2); side++) {
        float top = side == 0 ? (float)nneg : (float)npos;
        float sign = side == 0 ? -1.0f : 1.0f;
        float span = 2.0f + 0.06f * top;
        for (int k = 0; k < ncand; k++) {
            float t = top + 0.5f - span * (float)k / (float)(ncand > 1 ? ncand - 1 : 1);
            float sxq, sqq;
            sym_sums(x, n, sign * m / t, nneg, npos, &sxq, &sqq);
            if (sqq > 0 && sxq * sxq / sqq > best_score) {
                best_score = sxq * sxq / sqq;
                best_d = sxq / sqq;
            }
        }
    }
    /* Polish: re-pick the levels for the winner and refit (each round can
     * only lower the error). */
    for (int it = 0; it < 2; it++) {
        float sxq, sqq;
        sym_sums(x, n, best_d, nneg, npos, &sxq, &sqq);
        if (!(sqq > 0) || !(sxq * sxq / sqq > best_score)) break;
        best_score = sxq * sxq / sqq;
        best_d = sxq / sqq;
    }
    return best_d;
}

/* ---- affine levels a*q - b, q in [0, qmax], a >= 0, b >= 0 -------------- */

/* Sums over the levels that (a, b) picks: q, q^2, q*x. */
static void affine_sums(const float *x, int n, float a, float b, int qmax, float s[3]) {
    float ia = 1.0f / a, s0 = 0, s1 = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        int q = qround((x[i] + b) * ia, 0, qmax);
        s0 += (float)q;
        s1 += (float)(q * q);
        s2 += (float)q * x[i];
    }
    s[0] = s0; s[1] = s1; s[2] = s2;
}

/* Least-squares (a, b) for fixed levels, keeping b >= 0 (the format's lowest
 * value is -b, so the grid must reach down to 0 or below), and the squared
 * error they leave; sx, sxx: sum x, sum x^2.  Returns 0 if degenerate. */
static int affine_refit(const float s[3], int n, float sx, float sxx, float *a, float *b, float *err) {
    float det = (float)n * s[1] - s[0] * s[0];
    float na = det > 0 ? ((float)n * s[2] - s[0] * sx) / det : 0;
    float nb = det > 0 ? -(sx - na * s[0]) / (float)n : -1;
    if (nb < 0) { /* pin the offset at 0 and refit the scale alone */
        nb = 0;
        na = s[1] > 0 ? s[2] / s[1] : 0;
    }
    if (!(na > 0)) return 0;
    *a = na;
    *b = nb;
    /* sum (a q - b - x)^2 expanded over the sums */
    *err = na * na * s[1] + (float)n * nb * nb + sxx - 2 * na * nb * s[0] - 2 * na * s[2] + 2 * nb * sx;
    return 1;
}

/* Chooses (a, b) for one sub-block: candidate grids spanning [lo, hi] with
 * a step shrunk by up to a few levels (clipping the extremes, refining the
 * bulk), each scored after its least-squares refit. */
static void fit_affine(const float *x, int n, int qmax, float *pa, float *pb) {
    float lo = 0, hi = -INFINITY, sx = 0, sxx = 0;
    for (int i = 0; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sx += x[i];
        sxx += x[i] * x[i];
    }
    if (!(hi > lo) || !isfinite(hi - lo)) { /* every value equal (and <= 0), or not finite */
        *pa = isfinite(hi - lo) ? 0 : (hi - lo) / (float)qmax;
        *pb = lo < 0 ? -lo : 0;
        return;
    }
    float best_a = (hi - lo) / (float)qmax, best_b = -lo, best_e = INFINITY;
    for (int k = -1; k < AFFINE_CANDIDATES - 1; k++) {
        float a = (hi - lo) / ((float)qmax + 0.3f * (float)k);
        for (int sh = 0; sh < 2; sh++) { /* origin at lo, or half a step below */
            float s[3], ra, rb, e;
            affine_sums(x, n, a, -lo + 0.5f * (float)sh * a, qmax, s);
            if (affine_refit(s, n, sx, sxx, &ra, &rb, &e) && e < best_e) {
                best_e = e;
                best_a = ra;
                best_b = rb;
            }
        }
    }
    for (int it = 0; it < 2; it++) { /* polish as in fit_symmetric */
        float s[3], ra, rb, e;
        affine_sums(x, n, best_a, best_b, qmax, s);
        if (!affine_refit(s, n, sx, sxx, &ra, &rb, &e) || !(e < best_e)) break;
        best_e = e;
        best_a = ra;
        best_b = rb;
    }
    *pa = best_a;
    *pb = best_b;
}

/* ---- per type ------------------------------------------------------------ */

static void quantize_q8_0(const float *x, block_q8_0 *y, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++, x += QK8_0) {
        /* Levels stay in [-127, 127]: SIMD dot products that take |q| with
         * a sign trick cannot represent -128. */
        y[ib].d = quant_f32_to_f16(clamp_f16_range(fabsf(fit_symmetric(x, QK8_0, 127, 127, 12))));
        float d = quant_f16_to_f32(y[ib].d), id = d != 0 ? 1.0f / d : 0.0f;
        for (int i = 0; i < QK8_0; i++) y[ib].qs[i] = (int8_t)qround(x[i] * id, -127, 127);
    }
}

static void quantize_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++, x += QK4_0) {
        y[ib].d = quant_f32_to_f16(clamp_f16_range(fit_symmetric(x, QK4_0, 8, 7, 10)));
        float d = quant_f16_to_f32(y[ib].d), id = d != 0 ? 1.0f / d : 0.0f;
        uint8_t q[QK4_0];
        for (int i = 0; i < QK4_0; i++) q[i] = (uint8_t)(qround(x[i] * id, -8, 7) + 8);
        /* element j in the low nibble of byte j, element j+16 in the high one */
        for (int j = 0; j < QK4_0 / 2; j++) y[ib].qs[j] = (uint8_t)(q[j] | (q[j + QK4_0 / 2] << 4));
    }
}

/* The 12-byte K-quant scale field: eight 6-bit scales and eight 6-bit mins.
 * Sub-blocks 0-3 keep theirs in the low 6 bits of bytes 0-3 (scale) and 4-7
 * (min); sub-blocks 4-7 split theirs into a low nibble in bytes 8-11 and the
 * top two bits in the spare high bits of bytes 0-3 / 4-7. */
static void pack_k_scales(const uint8_t sc[8], const uint8_t mn[8], uint8_t out[K_SCALE_SIZE]) {
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
    }
}

/* Shared by Q4_K (bits 4) and Q5_K (bits 5): the levels of one super-block
 * of 256 in L[], and the stored d, dmin and packed scales. */
static void quantize_k_affine(const float *x, int bits, qhalf *d_out, qhalf *dmin_out,
                              uint8_t scales[K_SCALE_SIZE], uint8_t L[QK_K]) {
    const int qmax = (1 << bits) - 1;
    float a[8], b[8], amax = 0, bmax = 0;
    for (int j = 0; j < 8; j++) {
        fit_affine(x + 32 * j, 32, qmax, &a[j], &b[j]);
        if (a[j] > amax) amax = a[j];
        if (b[j] > bmax) bmax = b[j];
    }
    *d_out = quant_f32_to_f16(clamp_f16_range(amax / 63.0f));
    *dmin_out = quant_f32_to_f16(clamp_f16_range(bmax / 63.0f));
    float d = quant_f16_to_f32(*d_out), dmin = quant_f16_to_f32(*dmin_out);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d > 0 ? qround(a[j] / d, 0, 63) : 0);
        mn[j] = (uint8_t)(dmin > 0 ? qround(b[j] / dmin, 0, 63) : 0);
        /* Re-pick the levels for the scale and offset as stored. */
        float A = d * (float)sc[j], B = dmin * (float)mn[j], iA = A > 0 ? 1.0f / A : 0.0f;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)(A > 0 ? qround((x[32 * j + i] + B) * iA, 0, qmax) : 0);
    }
    pack_k_scales(sc, mn, scales);
}

static void quantize_q4_K(const float *x, block_q4_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t ib = 0; ib < nb; ib++, x += QK_K) {
        quantize_k_affine(x, 4, &y[ib].d, &y[ib].dmin, y[ib].scales, L);
        /* Each 64-value chunk c: byte 32c+l holds value 64c+l (low nibble)
         * and value 64c+32+l (high nibble). */
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                y[ib].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

static void quantize_q5_K(const float *x, block_q5_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t ib = 0; ib < nb; ib++, x += QK_K) {
        quantize_k_affine(x, 5, &y[ib].d, &y[ib].dmin, y[ib].scales, L);
        /* Low nibbles as in Q4_K; the fifth bit of value 64c+l is bit 2c of
         * qh[l], that of value 64c+32+l is bit 2c+1. */
        memset(y[ib].qh, 0, sizeof y[ib].qh);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                y[ib].qs[32 * c + l] = (uint8_t)((lo & 15) | ((hi & 15) << 4));
                y[ib].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
    }
}

static void quantize_q6_K(const float *x, block_q6_K *y, int64_t nb) {
    uint8_t L[QK_K];
    for (int64_t ib = 0; ib < nb; ib++, x += QK_K) {
        float s[16], smax = 0;
        for (int j = 0; j < 16; j++) {
            s[j] = fit_symmetric(x + 16 * j, 16, 32, 31, 10);
            if (fabsf(s[j]) > smax) smax = fabsf(s[j]);
        }
        y[ib].d = quant_f32_to_f16(clamp_f16_range(smax / 127.0f));
        float d = quant_f16_to_f32(y[ib].d);
        for (int j = 0; j < 16; j++) {
            int sc = d > 0 ? qround(s[j] / d, -127, 127) : 0;
            y[ib].scales[j] = (int8_t)sc;
            float A = d * (float)sc, iA = A != 0 ? 1.0f / A : 0.0f;
            for (int i = 0; i < 16; i++)
                L[16 * j + i] = (uint8_t)(A != 0 ? qround(x[16 * j + i] * iA, -32, 31) + 32 : 32);
        }
        /* Two halves of 128.  In half h, value 32g+l (g = 0..3, l < 32) keeps
         * its low nibble in ql[64h + l + 32*(g&1)] (low nibble for g < 2, high
         * for g >= 2) and its top two bits in bits 2g..2g+1 of qh[32h + l]. */
        for (int h = 0; h < 2; h++) {
            uint8_t *ql = y[ib].ql + 64 * h, *qh = y[ib].qh + 32 * h;
            const uint8_t *q = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((q[l] & 15) | ((q[l + 64] & 15) << 4));
                ql[l + 32] = (uint8_t)((q[l + 32] & 15) | ((q[l + 96] & 15) << 4));
                qh[l] = (uint8_t)((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) |
                                  ((q[l + 96] >> 4) << 6));
            }
        }
    }
}

void quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n) {
    int64_t be = quant_block_elems(type);
    if (be <= 0 || n <= 0) return;
    int64_t nb = n / be;
    switch (type) {
    case QT_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case QT_F16: {
        qhalf *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = quant_f32_to_f16(src[i]);
        break;
    }
    case QT_BF16: {
        uint16_t *h = dst;
        for (int64_t i = 0; i < n; i++) h[i] = quant_f32_to_bf16(src[i]);
        break;
    }
    case QT_Q8_0: quantize_q8_0(src, dst, nb); break;
    case QT_Q4_0: quantize_q4_0(src, dst, nb); break;
    case QT_Q4_K: quantize_q4_K(src, dst, nb); break;
    case QT_Q5_K: quantize_q5_K(src, dst, nb); break;
    case QT_Q6_K: quantize_q6_K(src, dst, nb); break;
    default: break; /* Q8_K is an activation format only; unknown types write nothing */
    }
}
