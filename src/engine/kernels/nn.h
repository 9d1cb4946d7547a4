/* nn.h - internal: the kernels of encoder models (the BERT family) beside
 * the weight products: LayerNorm with a bias, GELU computed the way
 * llama.cpp computes it, a softmax over a whole row (bidirectional
 * attention has no causal mask), the two products of attention, and rotary
 * position embedding in the neox layout (nomic-bert).
 *
 * The matrix products of an encoder are the decoder's (quant.h); these are
 * the per-element stages between them, which run over every token of every
 * layer and so cost real time next to int8 products (a MiniLM chunk of 128
 * tokens evaluates 1.2 million GELUs and 1.2 million exponentials).  Each
 * has a plain C reference and AVX2 / AVX-512 versions chosen at run time by
 * the same CPUID level as the matrix kernels (quant_isa); the unit tests
 * hold every version to its reference. */
#ifndef INFER_NN_H
#define INFER_NN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    /* The residual and post-LayerNorm of a BERT block, in place over n
     * values: v = x + r + rb (r, rb may be NULL), then x = (v - mean(v)) /
     * sqrt(var(v) + eps) * w + b. */
    void (*layernorm)(float *x, const float *r, const float *rb, const float *w, const float *b, int64_t n,
                      float eps);
    /* x = GELU(x + b) in place (b may be NULL): nn_gelu1 of each value.
     * Every version returns the same bits. */
    void (*gelu)(float *x, const float *b, int64_t n);
    /* g = silu(g) * u = g / (1 + e^-g) * u (SwiGLU), with nn_expf; every
     * version returns the same bits. */
    void (*silu_mul)(float *g, const float *u, int64_t n);
    /* y += x. */
    void (*add)(float *y, const float *x, int64_t n);
    /* x = softmax(scale * x) over n >= 1 values, in place.  The exponential
     * is nn_expf's: every version computes the same exponentials; only the
     * order of the final sum differs. */
    void (*softmax)(float *x, int64_t n, float scale);
    /* Attention scores: s[i*lds + p] = sum over d of q[i*ldq + d] *
     * kt[d*ldk + p], for i < nq queries and p < np keys, the keys given
     * transposed (one row per dimension) so that a vector holds 16 keys. */
    void (*qk)(float *s, size_t lds, const float *q, size_t ldq, int nq, const float *kt, size_t ldk, int np,
               int hd);
    /* Attention output: o[i*ldo + d] = sum over p of w[i*ldw + p] * v[p*ldv + d],
     * for i < nq and d < hd. */
    void (*pv)(float *o, size_t ldo, const float *w, size_t ldw, int nq, const float *v, size_t ldv, int np, int hd);
    /* Both sum in index order, one fused multiply-add per term, so every
     * version returns the reference's bits and a value never depends on
     * nq, np or the tiling. */
} nn_table;

const nn_table *nn_get(void);          /* best for this CPU (quant_isa's level) */
const nn_table *nn_ref(void);          /* the plain C reference */
const nn_table *nn_avx2_table(void);   /* nn_avx2.c; call only after a CPUID check */
const nn_table *nn_avx512_table(void); /* nn_avx512.c; likewise */

/* GELU as llama.cpp computes it for f32 (ggml's table): the tanh
 * approximation 0.5 h (1 + tanh(sqrt(2/pi) h (1 + 0.044715 h^2))) of the
 * input rounded to fp16, h, rounded to fp16 again; 0 at or below -10, the
 * input itself at or above 10.  Evaluated here as h / (1 + e^(-2z)), the
 * same function, with nn_expf, so SIMD lanes compute it exactly as this
 * scalar does (no 128 KiB table to gather from).  It equals ggml's table
 * wherever the fp16 rounding does not hide a last-bit difference of f32
 * evaluation, and below h = -4, where ggml's 1 + tanh cancels, it is the
 * more accurate (differences under 2e-7). */
float nn_gelu1(float x);

/* e^x for the softmax: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a
 * degree-7 Taylor polynomial in r by fused multiply-adds, times 2^n.  Within
 * a few ulp of e^x on [NN_EXP_LO, NN_EXP_HI]; 0 below, +inf above, NaN stays
 * NaN (the softmax only feeds it x - max <= 0).  The SIMD versions do the
 * same operations lane by lane, so they return the same bits. */
float nn_expf(float x);

/* Rotates one head vector u in the neox layout: pairs (i, i + n_rot/2),
 * cs holding cos, sin for each of the n_rot/2 pairs. */
void nn_rope_neox(float *u, const float *cs, int32_t n_rot);

/* ---- Internal to nn.c, nn_avx2.c, nn_avx512.c: the constants every version
 * of nn_expf uses, so all of them compute the same bits. ---- */
#define NN_EXP_LO (-87.33654f) /* ln(2^-126): below, the result is 0 */
#define NN_EXP_HI 88.0f        /* above, +inf (2^n must stay a normal float) */
#define NN_LOG2E 1.44269502f
#define NN_LN2_HI 0.693145751953125f /* ln 2 split so that n * NN_LN2_HI is exact */
#define NN_LN2_LO 1.42860677e-6f
#define NN_EXP_C2 0.5f /* 1/k!, the Taylor coefficients of e^r */
#define NN_EXP_C3 0.166666672f
#define NN_EXP_C4 0.0416666679f
#define NN_EXP_C5 0.00833333377f
#define NN_EXP_C6 0.00138888892f
#define NN_EXP_C7 0.000198412701f
/* GELU: ggml's coefficient, twice its sqrt(2/pi), and its clamps.  The
 * operations, in nn_gelu1's order: hh = h*h; p = fma(A, hh, 1); z2 =
 * (2C * h) * p; g = h / (1 + nn_expf(-z2)). */
#define NN_GELU_A 0.044715f
#define NN_GELU_2C 1.5957691216057308f /* 2 sqrt(2/pi) */
#define NN_GELU_LO (-10.0f)
#define NN_GELU_HI 10.0f

#endif
