/* nn.c - the plain C reference of the encoder kernels (nn.h) and the
 * run-time choice between it and the SIMD versions (nn_avx2.c,
 * nn_avx512.c).
 *
 * The reference favours clarity and accuracy over speed: sums in double.
 * It is what runs on a CPU without AVX2, and what the tests hold the SIMD
 * versions to. */
#include "kernels/nn.h"

#include "kernels/quant.h"

#include <math.h>
#include <string.h>

float nn_expf(float x) {
    if (x != x) return x;
    if (x < NN_EXP_LO) return 0.0f;
    if (x > NN_EXP_HI) return INFINITY;
    float n = rintf(x * NN_LOG2E);
    float r = fmaf(n, -NN_LN2_HI, x);
    r = fmaf(n, -NN_LN2_LO, r);
    float p = NN_EXP_C7;
    p = fmaf(p, r, NN_EXP_C6);
    p = fmaf(p, r, NN_EXP_C5);
    p = fmaf(p, r, NN_EXP_C4);
    p = fmaf(p, r, NN_EXP_C3);
    p = fmaf(p, r, NN_EXP_C2);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

float nn_gelu1(float x) {
    if (x <= NN_GELU_LO) return 0.0f;
    if (x >= NN_GELU_HI) return x;
    float h = quant_f16_to_f32(quant_f32_to_f16(x));
    float p = fmaf(NN_GELU_A, h * h, 1.0f);
    float z2 = (NN_GELU_2C * h) * p;
    float g = h / (1.0f + nn_expf(-z2));
    return quant_f16_to_f32(quant_f32_to_f16(g));
}

/* ---- reference kernels -------------------------------------------------------- */

static void layernorm_ref(float *x, const float *r, const float *rb, const float *w, const float *b, int64_t n,
                          float eps) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        if (r) x[i] += r[i];
        if (rb) x[i] += rb[i];
        sum += x[i];
    }
    float mean = (float)(sum / (double)n);
    double ss = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)(x[i] - mean);
        ss += d * d;
    }
    float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) x[i] = (x[i] - mean) * scale * w[i] + b[i];
}

static void gelu_ref(float *x, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = nn_gelu1(b ? x[i] + b[i] : x[i]);
}

static void silu_mul_ref(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + nn_expf(-g[i])) * u[i];
}

static void add_ref(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void softmax_ref(float *x, int64_t n, float scale) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] *= scale;
        mx = x[i] > mx ? x[i] : mx;
    }
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = nn_expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

static void qk_ref(float *s, size_t lds, const float *q, size_t ldq, int nq, const float *kt, size_t ldk, int np,
                   int hd) {
    for (int i = 0; i < nq; i++)
        for (int p = 0; p < np; p++) {
            float acc = 0.0f;
            for (int d = 0; d < hd; d++) acc = fmaf(q[(size_t)i * ldq + d], kt[(size_t)d * ldk + p], acc);
            s[(size_t)i * lds + p] = acc;
        }
}

static void pv_ref(float *o, size_t ldo, const float *w, size_t ldw, int nq, const float *v, size_t ldv, int np,
                   int hd) {
    for (int i = 0; i < nq; i++)
        for (int d = 0; d < hd; d++) {
            float acc = 0.0f;
            for (int p = 0; p < np; p++) acc = fmaf(w[(size_t)i * ldw + p], v[(size_t)p * ldv + d], acc);
            o[(size_t)i * ldo + d] = acc;
        }
}

void nn_rope_neox(float *u, const float *cs, int32_t n_rot) {
    int32_t half = n_rot / 2;
    for (int32_t i = 0; i < half; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1];
        float a = u[i], b = u[i + half];
        u[i] = a * c - b * s;
        u[i + half] = a * s + b * c;
    }
}

static const nn_table REF = {layernorm_ref, gelu_ref, silu_mul_ref, add_ref, softmax_ref, qk_ref, pv_ref};

const nn_table *nn_ref(void) { return &REF; }

const nn_table *nn_get(void) {
    int isa = quant_isa();
    return isa >= QUANT_ISA_AVX512 ? nn_avx512_table() : isa >= QUANT_ISA_AVX2 ? nn_avx2_table() : &REF;
}
