/* quant.h - internal: tensor types, their exact GGUF block layouts, and the
 * kernels over them (dequantize, quantize, matrix product).
 *
 * Block layouts are the GGUF on-disk ones (ggml type ids), byte for byte.
 * Every kernel has a plain C reference; SIMD versions (AVX2+FMA+F16C,
 * AVX-512/VNNI) are chosen once at run time by CPUID and must agree with the
 * reference (tests/unit/test_quant.c).
 *
 * Matrix product contract (quant_matmul): W is `rows` rows of k weights, row
 * r at w + r*w_stride; X is nt tokens of k floats.  Y[t*ldy + r] =
 * dot(W_r, X_t).  Activations are first converted by quant_act_prepare into
 * the form the weight type's kernel consumes (f32 for F32, f32 for F16/BF16,
 * Q8_0-style blocks for Q8_0/Q4_0, Q8_K-style blocks for the K-quants); token
 * t's prepared row starts at act + t*quant_act_row_bytes(wtype, k), so
 * callers may prepare and multiply disjoint token or row ranges on different
 * threads.  The value computed for (t, r) is bit-identical whatever nt, r0,
 * r1 or the tiling are: batched decoding equals unbatched decoding. */
#ifndef INFER_QUANT_H
#define INFER_QUANT_H

#include <stddef.h>
#include <stdint.h>

enum {
    QT_F32 = 0, QT_F16 = 1, QT_Q4_0 = 2, QT_Q8_0 = 8,
    QT_Q4_K = 12, QT_Q5_K = 13, QT_Q6_K = 14, QT_Q8_K = 15, QT_BF16 = 30,
};

#define QK8_0 32
#define QK4_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t qhalf; /* IEEE fp16 bits */

typedef struct { qhalf d; int8_t qs[QK8_0]; } block_q8_0;            /* 34 B */
typedef struct { qhalf d; uint8_t qs[QK4_0 / 2]; } block_q4_0;       /* 18 B */
typedef struct { qhalf d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; } block_q4_K; /* 144 B */
typedef struct { qhalf d, dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; } block_q5_K; /* 176 B */
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; qhalf d; } block_q6_K; /* 210 B */
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K; /* 292 B */

/* 1 if libinfer can compute with this type (the eight above, not Q8_K). */
int quant_type_supported(uint32_t type);
const char *quant_type_name(uint32_t type);      /* "q8_0"; "type-N" if unknown */
int quant_type_from_name(const char *name);      /* -1 if unknown */
int64_t quant_block_elems(uint32_t type);        /* 0 if unknown */
size_t quant_block_bytes(uint32_t type);         /* 0 if unknown */
/* Bytes of a row of n elements; 0 if type unknown or n not a multiple of the block. */
size_t quant_row_bytes(uint32_t type, int64_t n);

float quant_f16_to_f32(qhalf h);
qhalf quant_f32_to_f16(float f); /* round to nearest even */
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f); /* round to nearest even */

/* n must be a multiple of the type's block. */
void quant_dequant_row(uint32_t type, const void *src, float *dst, int64_t n);
void quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

size_t quant_act_row_bytes(uint32_t wtype, int64_t k);
void quant_act_prepare(uint32_t wtype, const float *x, int64_t k, int64_t nt, size_t ldx, void *act);
void quant_matmul(uint32_t wtype, const void *w, size_t w_stride, int64_t k, int64_t r0, int64_t r1,
                  const void *act, int64_t nt, float *y, size_t ldy);

/* The product for large batches of tokens (encoders): the contract of
 * quant_matmul, computed in another order where a kernel for it exists
 * (Q8_0 with AVX-512 VNNI and rows of at most QUANT_BATCH_MAX_BLOCKS
 * blocks: 16 weight rows in the lanes of a vector, quant_batch_avx512.c),
 * else by quant_matmul itself.  Its values are as deterministic, but not
 * bit-identical to quant_matmul's, so a caller uses one or the other for
 * all of its products. */
void quant_matmul_batch(uint32_t wtype, const void *w, size_t w_stride, int64_t k, int64_t r0, int64_t r1,
                        const void *act, int64_t nt, float *y, size_t ldy);

/* Kernel ISA levels; quant_set_isa is for tests (returns the level in force,
 * lower than asked when the CPU lacks it). */
enum { QUANT_ISA_REF = 0, QUANT_ISA_AVX2 = 1, QUANT_ISA_AVX512 = 2 };
int quant_isa(void);
int quant_set_isa(int level);
const char *quant_isa_name(int level);

/* ---- Internal to the kernel files (quant.c, quant_avx2.c, quant_avx512.c)
 * and their test: the prepared-activation layouts and the per-ISA tables. ----
 *
 * A prepared activation row (quant_act_row_bytes apart, a multiple of 64):
 *   F32/F16/BF16 weights: k floats.
 *   Q8_0/Q4_0: int8 qs[k], then float d[k/32], then int32 s[k/32] (s = sum of
 *     the block's qs, for the unsigned-weight correction of VNNI/maddubs).
 *   Q4_K/Q5_K/Q6_K: int8 qs[k], then float d[k/256], then int16
 *     bsums[k/16] (sum of each 16 qs, in element order).  For Q4_K and Q5_K
 *     the 32-element sub-blocks of each 256-block are stored in the order
 *     0,2,1,3,4,6,5,7 so that a 64-byte load of the weights' low (high)
 *     nibbles meets its activations in one 64-byte load; Q6_K keeps element
 *     order.  x[i] ~= d * qs[i] with |qs| <= 127. */
static inline int64_t quant_act_qs_index(uint32_t wtype, int64_t i) {
    static const unsigned char perm[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    if (wtype != QT_Q4_K && wtype != QT_Q5_K) return i;
    int64_t blk = i & ~(int64_t)255, sb = (i >> 5) & 7;
    /* position of logical sub-block sb in the stored order (perm is its own inverse) */
    return blk + perm[sb] * 32 + (i & 31);
}
/* The 6-bit scales and mins of a Q4_K/Q5_K block (8 sub-blocks of 32):
 * sub-blocks 0-3 use the low 6 bits of bytes 0-3 (scale) and 4-7 (min);
 * 4-7 take their low 4 bits from bytes 8-11 and the top 2 bits from the
 * spare high bits of bytes 0-7. */
static inline void quant_k4_scales(const uint8_t *q, uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = q[j] & 63;
        m[j] = q[j + 4] & 63;
        sc[j + 4] = (uint8_t)((q[j + 8] & 0xF) | ((q[j] >> 6) << 4));
        m[j + 4] = (uint8_t)((q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4));
    }
}
/* Dequantizes a prepared activation row back to k floats in element order
 * (for tests and debugging). */
void quant_act_dequant_row(uint32_t wtype, const void *act, int64_t k, float *dst);

typedef void (*quant_dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*quant_matmul_fn)(const void *w, size_t w_stride, int64_t k, int64_t r0, int64_t r1,
                                const void *act, int64_t nt, float *y, size_t ldy);
/* Prepares one activation row; must write the same bytes as the reference. */
typedef void (*quant_prepare_fn)(uint32_t wtype, const float *x, int64_t k, uint8_t *act);
/* One ISA's kernels for one weight type; a NULL member means "use the
 * reference".  Each kernel computes every (t, r) with one fixed summation
 * order, whatever the tile (the determinism contract above). */
typedef struct {
    quant_dequant_fn dequant;
    quant_matmul_fn matmul;
    quant_prepare_fn prepare;
} quant_kernels;
quant_kernels quant_kernels_avx2(uint32_t type);
quant_kernels quant_kernels_avx512(uint32_t type);
/* quant_batch_avx512.c: quant_matmul_batch's Q8_0 kernel.  Per (row,
 * token): for each block in order, acc = fma((float)exact_dot, d_w * d_a,
 * acc), starting from 0 (what its test checks bit for bit). */
#define QUANT_BATCH_MAX_BLOCKS 128
void quant_q8_0_batch_avx512(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act,
                             int64_t nt, float *y, size_t ldy);

#endif
