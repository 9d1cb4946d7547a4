/* quant_avx512.c - AVX-512 (F, BW, VL, DQ, VNNI) kernels for the tensor
 * types; compiled with those flags and only called after quant.c's CPUID
 * check.
 *
 * The product is tiled R rows x T tokens: each weight vector loaded (and
 * unpacked) once feeds T tokens, each activation vector feeds R rows.  Every
 * (token, row) pair has its own accumulators and sees exactly the same
 * instruction sequence whatever the tile shape, so its value does not depend
 * on nt, r0, r1 or where the tile boundaries fall.  Tokens are walked in
 * chunks whose activations fit in L2, rows inside a chunk, tiles inside a
 * row block, so a row block's weights stay in L1 while the chunk streams.
 *
 * Integer products use VNNI with the unsigned operand on the weight side:
 * Q8_0 weights are biased by +128 (the bias times the activation block sum
 * is subtracted through the accumulator's start value), 4-, 5- and 6-bit
 * weights are unsigned already.  K-quant sub-block scales multiply the
 * maddubs pairs through vpdpwssd, so a 256-block costs one float multiply-add
 * per (token, row), plus one for the Q4_K/Q5_K mins, which meet the
 * activation sums (da * sum of each 32) as a short float dot product.
 * Decode tiles prefetch the weights a few rows ahead.  Q8_0 and Q4_0 run
 * in a block-lane form (one 32-block per 32-bit lane, see there) that
 * keeps the per-block float work off the VNNI path. */
#include "kernels/quant.h"

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

typedef void (*tile_fn)(const uint8_t *w, size_t ws, const uint8_t *act, size_t ab, int64_t k, float *y,
                        size_t ldy);

/* Walks the product in tiles: nt==1 uses the decode table (more rows per
 * tile), otherwise the batch table.  Tables are [R-1][T-1]. */
typedef struct {
    int rm, tm;
    tile_fn tab[4][6];
} tile_set;

/* Decode (one token) streams every weight once from memory; the hardware
 * prefetcher alone leaves bandwidth unused, so each tile also asks for the
 * same bytes PF_AHEAD rows further on, which a later tile will read. */
#ifndef PF_AHEAD
#define PF_AHEAD 8
#endif
/* Float rows are longer (2-4 KiB): about 8-16 KiB ahead as well. */
#define PF_AHEAD_F(wt) ((wt) == WF32 ? 2 : 4)
AI void prefetch_span(const uint8_t *p, size_t n) {
    for (size_t o = 0; o < n; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
    _mm_prefetch((const char *)(p + n - 1), _MM_HINT_T0);
}

/* Activation bytes per token chunk: about a quarter of Zen 5's 1 MiB L2
 * (16 to 256 KiB measured alike). */
#ifndef CHUNK_KB
#define CHUNK_KB 256
#endif
static void drive(const tile_set *ts, const uint8_t *w, size_t ws, int64_t k, int64_t r0, int64_t r1,
                  const uint8_t *act, size_t ab, int64_t nt, float *y, size_t ldy) {
    int64_t tc = (int64_t)((CHUNK_KB * 1024) / ab) / ts->tm * ts->tm;
    if (tc < ts->tm) tc = ts->tm;
    for (int64_t t0 = 0; t0 < nt; t0 += tc) {
        int64_t t1 = t0 + tc < nt ? t0 + tc : nt;
        for (int64_t r = r0; r < r1; r += ts->rm) {
            int rr = (int)(r1 - r < ts->rm ? r1 - r : ts->rm);
            /* small batches stream weights like decode, which prefetches
             * inside its tiles; here the row block after next is fetched */
            if (nt > 1 && nt <= 16 && r + 3 * ts->rm <= r1)
                prefetch_span(w + (size_t)(r + 2 * ts->rm) * ws, (size_t)ts->rm * ws);
            for (int64_t t = t0; t < t1; t += ts->tm) {
                int tt = (int)(t1 - t < ts->tm ? t1 - t : ts->tm);
                ts->tab[rr - 1][tt - 1](w + (size_t)r * ws, ws, act + (size_t)t * ab, ab, k,
                                        y + (size_t)t * ldy + (size_t)r, ldy);
            }
        }
    }
}

/* ------------------------------------------------------ F32 / F16 / BF16 */

enum { WF32, WF16, WBF16 };

AI __m512 load_w16(int wt, const uint8_t *row, int64_t i) {
    if (wt == WF32) return _mm512_loadu_ps((const float *)row + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i));
    if (wt == WF16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AI __m512 load_w16_mask(int wt, const uint8_t *row, int64_t i, __mmask16 m) {
    if (wt == WF32) return _mm512_maskz_loadu_ps(m, (const float *)row + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i);
    if (wt == WF16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AI void ftile(const int wt, const int R, const int T, const uint8_t *w, size_t ws, const uint8_t *act,
              size_t ab, int64_t k, float *y, size_t ldy) {
    __m512 acc[4][6];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (T == 1 && (wt == WF32 || !(i & 16)))
                _mm_prefetch((const char *)(w + (r + PF_AHEAD_F(wt)) * ws + i * (wt == WF32 ? 4 : 2)), _MM_HINT_T0);
            wv[r] = load_w16(wt, w + r * ws, i);
        }
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            __m512 x = _mm512_loadu_ps((const float *)(act + t * ab) + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], x, acc[r][t]);
        }
    }
    if (i < k) {
        __mmask16 m = (__mmask16)((1u << (k - i)) - 1);
        __m512 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = load_w16_mask(wt, w + r * ws, i, m);
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            __m512 x = _mm512_maskz_loadu_ps(m, (const float *)(act + t * ab) + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], x, acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

#define TILE_ARGS const uint8_t *w, size_t ws, const uint8_t *act, size_t ab, int64_t k, float *y, size_t ldy
#define TILE_PASS w, ws, act, ab, k, y, ldy

#define FT(name, wt, R, T) \
    static void name##_##R##_##T(TILE_ARGS) { ftile(wt, R, T, TILE_PASS); }
#define FT_ROWS(name, wt, T) FT(name, wt, 1, T) FT(name, wt, 2, T) FT(name, wt, 3, T) FT(name, wt, 4, T)
#define FT_ALL(name, wt)                                                                           \
    FT_ROWS(name, wt, 1) FT_ROWS(name, wt, 2) FT_ROWS(name, wt, 3) FT_ROWS(name, wt, 4)           \
    FT_ROWS(name, wt, 5) FT_ROWS(name, wt, 6)                                                      \
    static const tile_set name##_set = {4, 6,                                                      \
        {{name##_1_1, name##_1_2, name##_1_3, name##_1_4, name##_1_5, name##_1_6},                 \
         {name##_2_1, name##_2_2, name##_2_3, name##_2_4, name##_2_5, name##_2_6},                 \
         {name##_3_1, name##_3_2, name##_3_3, name##_3_4, name##_3_5, name##_3_6},                 \
         {name##_4_1, name##_4_2, name##_4_3, name##_4_4, name##_4_5, name##_4_6}}};

FT_ALL(f32t, WF32)
FT_ALL(f16t, WF16)
FT_ALL(bf16t, WBF16)

static void matmul_f32(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act, int64_t nt,
                       float *y, size_t ldy) {
    drive(&f32t_set, w, ws, k, r0, r1, act, quant_act_row_bytes(QT_F32, k), nt, y, ldy);
}
static void matmul_f16(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act, int64_t nt,
                       float *y, size_t ldy) {
    drive(&f16t_set, w, ws, k, r0, r1, act, quant_act_row_bytes(QT_F16, k), nt, y, ldy);
}
static void matmul_bf16(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act, int64_t nt,
                        float *y, size_t ldy) {
    drive(&bf16t_set, w, ws, k, r0, r1, act, quant_act_row_bytes(QT_BF16, k), nt, y, ldy);
}

/* ------------------------------------------------------------ Q8_0 / Q4_0 */

AI float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* q8 (is_q4 == 0) or q4_0 (is_q4 == 1) weights against Q8_0-style
 * activations, two blocks per 512-bit step: lanes 0-7 belong to block b,
 * 8-15 to block b+1, and an odd last block runs with the upper half zero. */
AI void q80_tile(const int is_q4, const int R, const int T, const uint8_t *w, size_t ws, const uint8_t *act,
                 size_t ab, int64_t k, float *y, size_t ldy) {
    const size_t bb = is_q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const int64_t nb = k / 32;
    const int corr = is_q4 ? -8 : -128;
    const __m512i bias = _mm512_set1_epi8((char)0x80), m4 = _mm512_set1_epi8(0x0F);
    const __m512i nib_shift = _mm512_set_epi64(4 * 0x0001000100010001ll, 4 * 0x0001000100010001ll, 0, 0,
                                               4 * 0x0001000100010001ll, 4 * 0x0001000100010001ll, 0, 0);
    /* lanes 0-7 take element 0 (block b), lanes 8-15 element 1 (block b+1) */
    const __m512i pair_idx = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 acc[4][6];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2) {
        const int two = b + 1 < nb;
        __m512i wq[4];
        __m512 dw[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *b0 = w + r * ws + b * bb, *b1 = b0 + bb;
            if (T == 1) prefetch_span(b0 + PF_AHEAD * ws, two ? 2 * bb : bb);
            if (is_q4) {
                __m128i q0 = _mm_loadu_si128((const __m128i *)(b0 + 2));
                __m128i q1 = two ? _mm_loadu_si128((const __m128i *)(b1 + 2)) : _mm_setzero_si128();
                __m512i z = _mm512_castsi256_si512(_mm256_set_m128i(q1, q0));
                z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0));
                wq[r] = _mm512_and_si512(_mm512_srlv_epi16(z, nib_shift), m4);
            } else {
                __m256i q0 = _mm256_loadu_si256((const __m256i *)(b0 + 2));
                __m256i q1 = two ? _mm256_loadu_si256((const __m256i *)(b1 + 2)) : _mm256_set1_epi8((char)0x80);
                wq[r] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1), bias);
            }
            uint16_t h0, h1 = 0;
            memcpy(&h0, b0, 2);
            if (two) memcpy(&h1, b1, 2);
            __m128 dw2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)h0 | ((uint32_t)h1 << 16))));
            dw[r] = _mm512_permutexvar_ps(pair_idx, _mm512_castps128_ps512(dw2));
        }
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + t * ab;
            const float *da = (const float *)(a + k);
            const int32_t *as = (const int32_t *)(a + k + nb * 4);
            __m512i av = two ? _mm512_loadu_si512(a + b * 32)
                             : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(a + b * 32)));
            __m128 da2 = two ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(da + b))) : _mm_load_ss(da + b);
            __m512 dav = _mm512_permutexvar_ps(pair_idx, _mm512_castps128_ps512(da2));
            __m128i s2 = two ? _mm_loadl_epi64((const __m128i *)(as + b)) : _mm_cvtsi32_si128(as[b]);
            __m512i c0 = _mm512_maskz_permutexvar_epi32(0x0101, pair_idx,
                                                         _mm512_castsi128_si512(_mm_mullo_epi32(s2, _mm_set1_epi32(corr))));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512i is = _mm512_dpbusd_epi32(c0, wq[r], av);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dw[r], dav), acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

#define QT(name, fn, arg, R, T) \
    static void name##_##R##_##T(TILE_ARGS) { fn(arg, R, T, TILE_PASS); }
/* Q8_0/Q4_0: batch tiles up to 4 rows x 4 tokens; decode tiles 4 rows x 1 token. */
#define QSET44(name, fn, arg)                                                                       \
    QT(name, fn, arg, 1, 1) QT(name, fn, arg, 2, 1) QT(name, fn, arg, 3, 1) QT(name, fn, arg, 4, 1) \
    QT(name, fn, arg, 1, 2) QT(name, fn, arg, 2, 2) QT(name, fn, arg, 3, 2) QT(name, fn, arg, 4, 2) \
    QT(name, fn, arg, 1, 3) QT(name, fn, arg, 2, 3) QT(name, fn, arg, 3, 3) QT(name, fn, arg, 4, 3) \
    QT(name, fn, arg, 1, 4) QT(name, fn, arg, 2, 4) QT(name, fn, arg, 3, 4) QT(name, fn, arg, 4, 4) \
    static const tile_set name##_dec = {4, 1, {{name##_1_1}, {name##_2_1}, {name##_3_1}, {name##_4_1}}}; \
    static const tile_set name##_bat = {4, 4, {{name##_1_1, name##_1_2, name##_1_3, name##_1_4},    \
                                               {name##_2_1, name##_2_2, name##_2_3, name##_2_4},    \
                                               {name##_3_1, name##_3_2, name##_3_3, name##_3_4},    \
                                               {name##_4_1, name##_4_2, name##_4_3, name##_4_4}}};
/* K-quants (two int32 accumulator sets per pair, so fewer rows): batch tiles
 * up to 2 rows x 4 tokens; decode tiles 4 rows x 1 token.  (2x5, 3x3, 4x2 and
 * 2x6 measured the same or slower on Zen 5.) */
#define QSET24(name, fn, arg)                                                                       \
    QT(name, fn, arg, 1, 1) QT(name, fn, arg, 2, 1) QT(name, fn, arg, 3, 1) QT(name, fn, arg, 4, 1) \
    QT(name, fn, arg, 1, 2) QT(name, fn, arg, 2, 2) QT(name, fn, arg, 1, 3) QT(name, fn, arg, 2, 3) \
    QT(name, fn, arg, 1, 4) QT(name, fn, arg, 2, 4)                                                 \
    static const tile_set name##_dec = {4, 1, {{name##_1_1}, {name##_2_1}, {name##_3_1}, {name##_4_1}}}; \
    static const tile_set name##_bat = {2, 4, {{name##_1_1, name##_1_2, name##_1_3, name##_1_4},    \
                                               {name##_2_1, name##_2_2, name##_2_3, name##_2_4}}};

QSET44(q80t, q80_tile, 0)
QSET44(q40t, q80_tile, 1)

/* Block-lane form.  The pair tile above spends, per (row, token) and pair
 * of blocks, a conversion, a scale product and a multiply-add on one VNNI
 * product, so batches run far below VNNI's rate.  Here a 512-bit lane
 * holds one whole block instead: 16 blocks (a "group") are transposed so
 * that vector i carries bytes 4i..4i+3 of each block, eight VNNI products
 * give the 16 block dots of one (row, token) in one int32 vector, and the
 * float work is one conversion and one multiply-add per 16 blocks.  The
 * activations of a token chunk are transposed once into a stack buffer
 * (with their correction and scale vectors).  Decode and short rows take
 * one weight row at a time against up to 16 tokens, everything in
 * registers; longer rows take 4 x 4 tiles, whose weight groups are
 * transposed once into a small buffer and whose float accumulators live in
 * memory, so each activation load feeds 4 rows.  Every (row, token) runs
 * the same sequence whatever nt or path: lane j accumulates
 * fma(block dot, dw * da) of block 16g+j over the groups g, then the 16
 * lanes are summed.  Rows too long for the buffer use the pair tile, for
 * every nt alike. */
#define QX_BUF (64 * 1024)
#define QX_GROUP 640 /* bytes per token and group: 8 x 64 qs, 64 correction, 64 scale */

/* Transposes 8 vectors of two 32-byte blocks each (4-byte columns) so that
 * vector i holds column i of 16 blocks; with L[p] = blocks (p, p+4) for
 * p < 4 and (p+4, p+8) for p >= 4, lane j ends up holding block j. */
AI void qx_transpose(const __m512i L[8], __m512i V[8]) {
    __m512i t[8], u[8];
#pragma GCC unroll 4
    for (int h = 0; h < 2; h++) {
        const __m512i *l = L + 4 * h;
        t[4 * h + 0] = _mm512_unpacklo_epi32(l[0], l[1]);
        t[4 * h + 1] = _mm512_unpackhi_epi32(l[0], l[1]);
        t[4 * h + 2] = _mm512_unpacklo_epi32(l[2], l[3]);
        t[4 * h + 3] = _mm512_unpackhi_epi32(l[2], l[3]);
        u[4 * h + 0] = _mm512_unpacklo_epi64(t[4 * h + 0], t[4 * h + 2]);
        u[4 * h + 1] = _mm512_unpackhi_epi64(t[4 * h + 0], t[4 * h + 2]);
        u[4 * h + 2] = _mm512_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
        u[4 * h + 3] = _mm512_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        V[i] = _mm512_shuffle_i32x4(u[i], u[4 + i], _MM_SHUFFLE(2, 0, 2, 0));
        V[i + 4] = _mm512_shuffle_i32x4(u[i], u[4 + i], _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* Block j of the L[p] layout above: low half of L[p] */
AI int qx_lo(int p) { return p < 4 ? p : p + 4; }

/* The group's 32-byte blocks as L vectors; blocks >= n are zero. */
AI void qx_load32(const uint8_t *base, size_t stride, int n, __m512i L[8]) {
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        int j = qx_lo(p);
        __m256i lo = j < n ? _mm256_loadu_si256((const __m256i *)(base + (size_t)j * stride)) : _mm256_setzero_si256();
        __m256i hi = j + 4 < n ? _mm256_loadu_si256((const __m256i *)(base + (size_t)(j + 4) * stride))
                               : _mm256_setzero_si256();
        L[p] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
}

/* Transposes tokens [0, n) of act (rows ab apart) into buf (rows xs apart). */
static void qx_prepare(const int is_q4, const uint8_t *act, size_t ab, int64_t k, int64_t n, uint8_t *buf,
                       size_t xs) {
    const int64_t nb = k / 32;
    const __m512i corr = _mm512_set1_epi32(is_q4 ? -8 : -128);
    for (int64_t t = 0; t < n; t++) {
        const uint8_t *a = act + (size_t)t * ab;
        const float *da = (const float *)(a + k);
        const int32_t *as = (const int32_t *)(a + k + nb * 4);
        uint8_t *x = buf + (size_t)t * xs;
        for (int64_t b0 = 0; b0 < nb; b0 += 16, x += QX_GROUP) {
            int n16 = nb - b0 < 16 ? (int)(nb - b0) : 16;
            __mmask16 m = (__mmask16)((1u << n16) - 1);
            __m512i L[8], V[8];
            qx_load32(a + b0 * 32, 32, n16, L);
            qx_transpose(L, V);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) _mm512_store_si512(x + 64 * i, V[i]);
            _mm512_store_si512(x + 512, _mm512_mullo_epi32(_mm512_maskz_loadu_epi32(m, as + b0), corr));
            _mm512_store_ps(x + 576, _mm512_maskz_loadu_ps(m, da + b0));
        }
    }
}

/* One weight row's group of n16 blocks (from blk), unsigned (Q8_0 biased
 * by 128, Q4_0 nibbles) and transposed into W; returns the 16 scales, zero
 * past n16. */
AI __m512 qx_wload(const int is_q4, const uint8_t *blk, int n16, __m512i W[8]) {
    const size_t bb = is_q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    __m512i L[8];
    if (is_q4) {
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        const __m512i nib_shift = _mm512_set_epi64(4 * 0x0001000100010001ll, 4 * 0x0001000100010001ll, 0, 0,
                                                   4 * 0x0001000100010001ll, 4 * 0x0001000100010001ll, 0, 0);
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            int j = qx_lo(p);
            __m128i q0 = j < n16 ? _mm_loadu_si128((const __m128i *)(blk + j * bb + 2)) : _mm_setzero_si128();
            __m128i q1 = j + 4 < n16 ? _mm_loadu_si128((const __m128i *)(blk + (j + 4) * bb + 2)) : _mm_setzero_si128();
            __m512i z = _mm512_castsi256_si512(_mm256_set_m128i(q1, q0));
            z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(1, 1, 0, 0)); /* q0, q0, q1, q1 */
            L[p] = _mm512_and_si512(_mm512_srlv_epi16(z, nib_shift), m4);
        }
    } else {
        const __m512i bias = _mm512_set1_epi8((char)0x80);
        qx_load32(blk + 2, bb, n16, L);
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) L[p] = _mm512_xor_si512(L[p], bias);
    }
    qx_transpose(L, W);
    if (n16 == 16) {
        /* the 16 fp16 scales, 4 from each window of 4 blocks (block m of
         * a window starts at its word 17m for Q8_0, 9m for Q4_0); Q8_0's
         * last window ends 8 bytes before the group's end */
        const int st = (int)(bb / 2);
        int16_t ix[32] = {0};
        for (int i = 0; i < 16; i++) ix[i] = (int16_t)((i & 3) * st);
        const __m512i idx = _mm512_loadu_si512(ix);
        __m512i h = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const uint8_t *win = blk + 4 * q * bb;
            const __mmask32 mq = (__mmask32)(0xFu << (4 * q));
            /* Q4_0's 4 blocks (72 bytes) have their scales in the first 64:
             * one load, none past the row's end */
            __m512i v = is_q4 ? _mm512_maskz_permutexvar_epi16(mq, idx, _mm512_loadu_si512(win))
                              : _mm512_maskz_permutex2var_epi16(mq, _mm512_loadu_si512(win), idx, _mm512_loadu_si512(win + 64));
            h = _mm512_or_si512(h, v);
        }
        return _mm512_cvtph_ps(_mm512_castsi512_si256(h));
    }
    /* a partial group: the fp16 scale and the first qs byte pair of each
     * block by one gather, which reads nothing past the last block */
    const __m512i didx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)bb));
    __m512i dh = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), (__mmask16)((1u << n16) - 1), didx, blk, 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dh));
}

/* Group b0 (n16 blocks) of R weight rows into wt (R x 8 vectors) and dw
 * (R x 16 scales). */
AI void qx_wgroup(const int is_q4, const uint8_t *w, size_t ws, int R, int64_t b0, int n16, int pf,
                  __m512i *wt, float *dw) {
    const size_t bb = is_q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    for (int r = 0; r < R; r++) {
        const uint8_t *blk = w + (size_t)r * ws + b0 * bb;
        if (pf) prefetch_span(blk + PF_AHEAD * ws, (size_t)n16 * bb);
        _mm512_store_ps(dw + 16 * r, qx_wload(is_q4, blk, n16, wt + 8 * r));
    }
}

/* R transposed weight rows of one group against T prepared tokens (xs
 * apart): f[r*fs + t] (16-lane accumulators) += block dots x scales. */
AI void qx_tile(const int R, const int T, const __m512i *wt, const float *dw, const uint8_t *x, size_t xs,
                __m512 *f, size_t fs) {
    __m512i is[4][4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        __m512i c = _mm512_load_si512(x + (size_t)t * xs + 512);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) is[r][t] = c;
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        __m512i wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = _mm512_load_si512(wt + 8 * r + i);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            __m512i a = _mm512_load_si512(x + (size_t)t * xs + 64 * i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) is[r][t] = _mm512_dpbusd_epi32(is[r][t], wv[r], a);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        __m512 da = _mm512_load_ps(x + (size_t)t * xs + 576);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 *fp = f + (size_t)r * fs + t;
            *fp = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is[r][t]), _mm512_mul_ps(_mm512_load_ps(dw + 16 * r), da), *fp);
        }
    }
}

/* One weight row against T <= 16 prepared tokens, the weights held in
 * registers and the accumulators too: for decode and short rows.  The same
 * arithmetic as qx_tile. */
AI void qx_rowtile(const int is_q4, const int T, const uint8_t *w, size_t ws, const uint8_t *buf, size_t xs,
                   int64_t nb, int pf, float *y, size_t ldy) {
    const size_t bb = is_q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    __m512 acc[16];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b0 = 0, g = 0; b0 < nb; b0 += 16, g++) {
        const int n16 = nb - b0 < 16 ? (int)(nb - b0) : 16;
        const uint8_t *blk = w + b0 * bb;
        if (pf) prefetch_span(blk + PF_AHEAD * ws, (size_t)n16 * bb);
        __m512i W[8];
        __m512 dw = qx_wload(is_q4, blk, n16, W);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            const uint8_t *x = buf + (size_t)t * xs + (size_t)g * QX_GROUP;
            __m512i is = _mm512_load_si512(x + 512);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) is = _mm512_dpbusd_epi32(is, W[i], _mm512_load_si512(x + 64 * i));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dw, _mm512_load_ps(x + 576)), acc[t]);
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; t++) y[t * ldy] = _mm512_reduce_add_ps(acc[t]);
}

typedef void (*qx_row_fn)(const uint8_t *w, size_t ws, const uint8_t *buf, size_t xs, int64_t nb, int pf, float *y,
                          size_t ldy);
#define QXRT(name, q4, T)                                                                                  \
    static void name##_##T(const uint8_t *w, size_t ws, const uint8_t *buf, size_t xs, int64_t nb, int pf, \
                           float *y, size_t ldy) {                                                         \
        qx_rowtile(q4, T, w, ws, buf, xs, nb, pf, y, ldy);                                                    \
    }
#define QXRSET(name, q4)                                                                                   \
    QXRT(name, q4, 1) QXRT(name, q4, 2) QXRT(name, q4, 3) QXRT(name, q4, 4) QXRT(name, q4, 5)              \
    QXRT(name, q4, 6) QXRT(name, q4, 7) QXRT(name, q4, 8) QXRT(name, q4, 9) QXRT(name, q4, 10)             \
    QXRT(name, q4, 11) QXRT(name, q4, 12) QXRT(name, q4, 13) QXRT(name, q4, 14) QXRT(name, q4, 15)         \
    QXRT(name, q4, 16)                                                                                     \
    static const qx_row_fn name##_tab[16] = {name##_1, name##_2, name##_3, name##_4, name##_5, name##_6,   \
                                             name##_7, name##_8, name##_9, name##_10, name##_11, name##_12, \
                                             name##_13, name##_14, name##_15, name##_16};
QXRSET(q80r, 0)
QXRSET(q40r, 1)
static void qx_wgroup_q8(const uint8_t *w, size_t ws, int R, int64_t b0, int n16, int pf, __m512i *wt, float *dw) {
    qx_wgroup(0, w, ws, R, b0, n16, pf, wt, dw);
}
static void qx_wgroup_q4(const uint8_t *w, size_t ws, int R, int64_t b0, int n16, int pf, __m512i *wt, float *dw) {
    qx_wgroup(1, w, ws, R, b0, n16, pf, wt, dw);
}

typedef void (*qx_fn)(const __m512i *wt, const float *dw, const uint8_t *x, size_t xs, __m512 *f, size_t fs);
#define QXT(R, T)                                                                                           \
    static void qx_##R##_##T(const __m512i *wt, const float *dw, const uint8_t *x, size_t xs, __m512 *f, \
                             size_t fs) {                                                                   \
        qx_tile(R, T, wt, dw, x, xs, f, fs);                                                                \
    }
#define QXR(R) QXT(R, 1) QXT(R, 2) QXT(R, 3) QXT(R, 4)
QXR(1) QXR(2) QXR(3) QXR(4)
static const qx_fn qx_tab[4][4] = {{qx_1_1, qx_1_2, qx_1_3, qx_1_4}, {qx_2_1, qx_2_2, qx_2_3, qx_2_4},
                                   {qx_3_1, qx_3_2, qx_3_3, qx_3_4}, {qx_4_1, qx_4_2, qx_4_3, qx_4_4}};

/* 0 when a row is too long for the buffer (then the pair tile runs). */
static int qx_fits(int64_t k) { return (size_t)((k / 32 + 15) / 16) * QX_GROUP <= QX_BUF; }

/* Token chunks (transposed once into buf), blocks of 4 rows inside, and per
 * row block the groups in order: each weight group is transposed once and
 * meets every token of the chunk, 4 rows x 4 tokens per tile. */
static void qx_drive(const int is_q4, const uint8_t *w, size_t ws, int64_t k, int64_t r0, int64_t r1,
                     const uint8_t *act, size_t ab, int64_t nt, float *y, size_t ldy) {
    _Alignas(64) uint8_t buf[QX_BUF];
    _Alignas(64) __m512 f[4 * (QX_BUF / QX_GROUP)];
    _Alignas(64) __m512i wt[4 * 8];
    _Alignas(64) float dw[4 * 16];
    const int64_t nb = k / 32;
    const size_t xs = (size_t)((nb + 15) / 16) * QX_GROUP;
    const int64_t tc = (int64_t)(QX_BUF / xs);
    for (int64_t t0 = 0; t0 < nt; t0 += tc) {
        int64_t t1 = t0 + tc < nt ? t0 + tc : nt, n = t1 - t0;
        qx_prepare(is_q4, act + (size_t)t0 * ab, ab, k, n, buf, xs);
        if (nt == 1 || nb < 48) {
            /* one row at a time, its weights in registers: decode, and
             * short rows, where the 4 x 4 tiles' per-row overhead is not
             * repaid by their reuse of activation loads (measured: rows of
             * 1024 still gain from this path, rows of 1536 run 1.5x faster
             * in the tiles) */
            const qx_row_fn *tab = is_q4 ? q40r_tab : q80r_tab;
            for (int64_t r = r0; r < r1; r++) {
                if (nt > 1 && nt <= 16 && r + PF_AHEAD < r1) prefetch_span(w + (size_t)(r + PF_AHEAD) * ws, ws);
                for (int64_t t = 0; t < n; t += 16) {
                    int tt = (int)(n - t < 16 ? n - t : 16);
                    tab[tt - 1](w + (size_t)r * ws, ws, buf + (size_t)t * xs, xs, nb, nt == 1,
                                y + (size_t)(t0 + t) * ldy + (size_t)r, ldy);
                }
            }
            continue;
        }
        for (int64_t r = r0; r < r1; r += 4) {
            int rr = (int)(r1 - r < 4 ? r1 - r : 4);
            for (int i = 0; i < rr * (int)n; i++) f[i] = _mm512_setzero_ps();
            for (int64_t b0 = 0, g = 0; b0 < nb; b0 += 16, g++) {
                int n16 = nb - b0 < 16 ? (int)(nb - b0) : 16;
                (is_q4 ? qx_wgroup_q4 : qx_wgroup_q8)(w + (size_t)r * ws, ws, rr, b0, n16, nt <= 16, wt, dw);
                for (int64_t t = 0; t < n; t += 4) {
                    int tt = (int)(n - t < 4 ? n - t : 4);
                    qx_tab[rr - 1][tt - 1](wt, dw, buf + (size_t)t * xs + (size_t)g * QX_GROUP, xs, f + t,
                                           (size_t)n);
                }
            }
            for (int j = 0; j < rr; j++)
                for (int64_t t = 0; t < n; t++)
                    y[(size_t)(t0 + t) * ldy + (size_t)(r + j)] = _mm512_reduce_add_ps(f[(size_t)j * n + t]);
        }
    }
}

static void matmul_q8_0(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act, int64_t nt,
                        float *y, size_t ldy) {
    size_t ab = quant_act_row_bytes(QT_Q8_0, k);
    if (qx_fits(k))
        qx_drive(0, w, ws, k, r0, r1, act, ab, nt, y, ldy);
    else
        drive(nt == 1 ? &q80t_dec : &q80t_bat, w, ws, k, r0, r1, act, ab, nt, y, ldy);
}
static void matmul_q4_0(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act, int64_t nt,
                        float *y, size_t ldy) {
    size_t ab = quant_act_row_bytes(QT_Q4_0, k);
    if (qx_fits(k))
        qx_drive(1, w, ws, k, r0, r1, act, ab, nt, y, ldy);
    else
        drive(nt == 1 ? &q40t_dec : &q40t_bat, w, ws, k, r0, r1, act, ab, nt, y, ldy);
}

/* -------------------------------------------------------------- K-quants */

/* Scales and mins of a Q4_K/Q5_K block, six bits each, unpacked with word
 * arithmetic: returns the 8 scales in the low and the 8 mins in the high
 * qword of an xmm. */
AI __m128i k4_scales_mins(const uint8_t *q) {
    uint32_t a0, a1, a2;
    memcpy(&a0, q, 4), memcpy(&a1, q + 4, 4), memcpy(&a2, q + 8, 4);
    uint32_t sc_lo = a0 & 0x3f3f3f3fu, m_lo = a1 & 0x3f3f3f3fu;
    uint32_t sc_hi = (a2 & 0x0f0f0f0fu) | (((a0 >> 6) & 0x03030303u) << 4);
    uint32_t m_hi = ((a2 >> 4) & 0x0f0f0f0fu) | (((a1 >> 6) & 0x03030303u) << 4);
    return _mm_set_epi32((int)m_hi, (int)m_lo, (int)sc_hi, (int)sc_lo);
}

/* int16 index vectors that spread per-sub-block scales over the 32 int16
 * lanes of one maddubs result; Q4_K/Q5_K step s covers sub-blocks
 * (a, b) = (0,2), (1,3), (4,6), (5,7); Q6_K step s covers 16-sub-blocks 4s..4s+3. */
AI __m512i idx_pair(int a, int b) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16((short)a)), _mm256_set1_epi16((short)b), 1);
}
AI __m512i idx_quad(int s) {
    __m256i lo = _mm256_set_m128i(_mm_set1_epi16((short)(4 * s + 1)), _mm_set1_epi16((short)(4 * s)));
    __m256i hi = _mm256_set_m128i(_mm_set1_epi16((short)(4 * s + 3)), _mm_set1_epi16((short)(4 * s + 2)));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* Q4_K (q5 == 0) and Q5_K (q5 == 1). */
AI void q45k_tile(const int q5, const int R, const int T, const uint8_t *w, size_t ws, const uint8_t *act,
                  size_t ab, int64_t k, float *y, size_t ldy) {
    const size_t bb = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const size_t qs_off = q5 ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    const int64_t nb = k / QK_K;
    const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    const __m512i ones16 = _mm512_set1_epi16(1);
    __m512 acc[4][6];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m512i isum[4][6];
        __m512i scv[4]; /* 8 int16 scales in the low xmm */
        __m512 dv[4], mv[4]; /* d, and -dmin * mins in the low 8 lanes */
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + r * ws + b * bb;
            if (T == 1) prefetch_span(blk + PF_AHEAD * ws, bb);
            __m128i sm = k4_scales_mins(blk + 4);
            scv[r] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(sm));
            dv[r] = _mm512_set1_ps(half_at(blk));
            mv[r] = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(sm, sm))),
                                                         _mm256_set1_ps(-half_at(blk + 2))));
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) isum[r][t] = _mm512_setzero_si512();
        }
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            const __m512i idx = s == 0 ? idx_pair(0, 2) : s == 1 ? idx_pair(1, 3) : s == 2 ? idx_pair(4, 6) : idx_pair(5, 7);
            __m512i u[4], sv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const uint8_t *blk = w + r * ws + b * bb;
                __m512i q = _mm512_loadu_si512(blk + qs_off + 64 * (s >> 1));
                u[r] = (s & 1) ? _mm512_and_si512(_mm512_srli_epi16(q, 4), m4) : _mm512_and_si512(q, m4);
                if (q5) {
                    __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 16)));
                    /* sub-block j's fifth bit is bit j of qh[l]: shift it to bit 4 */
                    const __m512i cnt = s == 0 ? idx_pair(0, 2) : s == 1 ? idx_pair(1, 3) : s == 2 ? idx_pair(4, 6) : idx_pair(5, 7);
                    __m512i hb = _mm512_slli_epi16(_mm512_srlv_epi16(qh, cnt), 4);
                    u[r] = _mm512_ternarylogic_epi32(u[r], hb, b4, 0xF8); /* u | (hb & 0x10) */
                }
                sv[r] = _mm512_permutexvar_epi16(idx, scv[r]);
            }
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) {
                __m512i a = _mm512_loadu_si512(act + t * ab + b * QK_K + 64 * s);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    isum[r][t] = _mm512_dpwssd_epi32(isum[r][t], _mm512_maddubs_epi16(u[r], a), sv[r]);
            }
        }
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + t * ab;
            const __m512 dav = _mm512_set1_ps(((const float *)(a + k))[b]);
            /* da * (activation sum of each 32-sub-block), in the low 8 lanes:
             * the min term is then one multiply-add per (row, token) */
            __m256i bs16 = _mm256_loadu_si256((const __m256i *)(a + k + nb * 4 + b * 32));
            __m256i bs32 = _mm256_madd_epi16(bs16, _mm512_castsi512_si256(ones16));
            __m512 sv8 = _mm512_zextps256_ps512(_mm256_mul_ps(_mm256_cvtepi32_ps(bs32), _mm512_castps512_ps256(dav)));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r][t]), _mm512_mul_ps(dv[r], dav), acc[r][t]);
                acc[r][t] = _mm512_fmadd_ps(mv[r], sv8, acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

AI void q6k_tile(const int unused, const int R, const int T, const uint8_t *w, size_t ws, const uint8_t *act,
                 size_t ab, int64_t k, float *y, size_t ldy) {
    (void)unused;
    const int64_t nb = k / QK_K;
    const size_t bb = sizeof(block_q6_K);
    const __m512i m4 = _mm512_set1_epi8(0x0F), b30 = _mm512_set1_epi8(0x30);
    __m512 acc[4][6];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m512i isum[4][6];
        __m512i scv[4]; /* 16 int16 scales in the low ymm */
        __m512i nsc[4]; /* -32 * scales, for the offset of 32 */
        __m512 dv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const block_q6_K *blk = (const block_q6_K *)(w + r * ws + b * bb);
            if (T == 1) prefetch_span(w + (r + PF_AHEAD) * ws + b * bb, bb);
            __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales));
            scv[r] = _mm512_castsi256_si512(sc16);
            nsc[r] = _mm512_zextsi256_si512(_mm256_mullo_epi16(sc16, _mm256_set1_epi16(-32)));
            dv[r] = _mm512_set1_ps(half_at((const uint8_t *)&blk->d));
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) isum[r][t] = _mm512_setzero_si512();
        }
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            /* step s: elements 64s..64s+63 = half s/2, low (s even) or high nibbles */
            const __m512i cnt = (s & 1) ? idx_pair(4, 6) : idx_pair(0, 2);
            const __m512i idx = idx_quad(s);
            __m512i u[4], sv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const block_q6_K *blk = (const block_q6_K *)(w + r * ws + b * bb);
                __m512i ql = _mm512_loadu_si512(blk->ql + 64 * (s >> 1));
                __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk->qh + 32 * (s >> 1))));
                __m512i lo = (s & 1) ? _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4) : _mm512_and_si512(ql, m4);
                __m512i hb = _mm512_slli_epi16(_mm512_srlv_epi16(qh, cnt), 4);
                u[r] = _mm512_ternarylogic_epi32(lo, hb, b30, 0xF8); /* lo | (hb & 0x30) */
                sv[r] = _mm512_permutexvar_epi16(idx, scv[r]);
            }
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) {
                __m512i a = _mm512_loadu_si512(act + t * ab + b * QK_K + 64 * s);
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    isum[r][t] = _mm512_dpwssd_epi32(isum[r][t], _mm512_maddubs_epi16(u[r], a), sv[r]);
            }
        }
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + t * ab;
            const __m512 dav = _mm512_set1_ps(((const float *)(a + k))[b]);
            __m512i bs = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(a + k + nb * 4 + b * 32)));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                /* the offset: minus 32 * scale * (sum of the 16 activations) */
                __m512i is = _mm512_dpwssd_epi32(isum[r][t], nsc[r], bs);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), _mm512_mul_ps(dv[r], dav), acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

QSET24(q4kt, q45k_tile, 0)
QSET24(q5kt, q45k_tile, 1)
QSET24(q6kt, q6k_tile, 0)

#define KMATMUL(fname, set, type)                                                                           \
    static void fname(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act, int64_t nt, \
                      float *y, size_t ldy) {                                                                \
        drive(nt == 1 ? &set##_dec : &set##_bat, w, ws, k, r0, r1, act, quant_act_row_bytes(type, k), nt, y, ldy); \
    }
KMATMUL(matmul_q4_K, q4kt, QT_Q4_K)
KMATMUL(matmul_q5_K, q5kt, QT_Q5_K)
KMATMUL(matmul_q6_K, q6kt, QT_Q6_K)

/* ---------------------------------------------------------------- dequant */

static void dequant_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + i))));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s + i)));
    }
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_si512(dst + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(s + i))), 16));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_epi32(dst + i, m, _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s + i)), 16));
    }
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(b[i].d));
        __m256i q = _mm256_loadu_si256((const __m256i *)b[i].qs);
        _mm512_storeu_ps(dst + 32 * i, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(q)))));
        _mm512_storeu_ps(dst + 32 * i + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(q, 1)))));
    }
}

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    const __m128i m4 = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    for (int64_t i = 0; i < n / 32; i++) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(b[i].d));
        __m128i q = _mm_loadu_si128((const __m128i *)b[i].qs);
        __m128i lo = _mm_sub_epi8(_mm_and_si128(q, m4), eight);
        __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), eight);
        _mm512_storeu_ps(dst + 32 * i, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo))));
        _mm512_storeu_ps(dst + 32 * i + 16, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi))));
    }
}

/* ------------------------------------------------------------ activations */

/* Same arithmetic as the reference (quant.c): d = amax/127, q = x*(127/amax)
 * clamped to [-127, 127] and rounded to nearest even, NaN -> 0, so the bytes
 * are identical whatever the ISA. */
AI __m512i quant16(__m512 x, __m512 id) {
    __m512 v = _mm512_mul_ps(x, id);
    __mmask16 ord = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
    v = _mm512_min_ps(_mm512_set1_ps(127.0f), _mm512_max_ps(_mm512_set1_ps(-127.0f), v));
    return _mm512_maskz_cvtps_epi32(ord, v);
}

AI float block_amax(const float *x, int n) {
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + i)), m); /* NaN lanes keep m, as the reference skips NaN */
    return _mm512_reduce_max_ps(m);
}

static void prepare_row(uint32_t wtype, const float *x, int64_t k, uint8_t *act) {
    if (wtype == QT_F32 || wtype == QT_F16 || wtype == QT_BF16) {
        memcpy(act, x, (size_t)k * sizeof(float));
        return;
    }
    int8_t *qs = (int8_t *)act;
    float *d = (float *)(act + k);
    const int bl = (wtype == QT_Q8_0 || wtype == QT_Q4_0) ? 32 : QK_K;
    const int64_t nb = k / bl;
    int32_t *s = (int32_t *)(act + k + nb * 4);
    int16_t *bs = (int16_t *)(act + k + nb * 4);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * bl;
        float amax = block_amax(xb, bl);
        d[b] = amax / 127.0f;
        __m512 id = _mm512_set1_ps(d[b] > 0.0f ? 127.0f / amax : 0.0f);
        int32_t sum = 0;
        for (int i = 0; i < bl; i += 16) {
            __m512i q = quant16(_mm512_loadu_ps(xb + i), id);
            int64_t pos = quant_act_qs_index(wtype, b * bl + i);
            _mm_storeu_si128((__m128i *)(qs + pos), _mm512_cvtepi32_epi8(q));
            int32_t g = _mm512_reduce_add_epi32(q);
            if (bl == 32)
                sum += g;
            else
                bs[b * 16 + i / 16] = (int16_t)g;
        }
        if (bl == 32) s[b] = sum;
    }
}

quant_kernels quant_kernels_avx512(uint32_t type) {
    quant_kernels kt = {NULL, NULL, NULL};
    if (quant_act_row_bytes(type, QK_K)) kt.prepare = prepare_row;
    switch (type) {
    case QT_F32: kt.matmul = matmul_f32; break;
    case QT_F16: kt.dequant = dequant_f16, kt.matmul = matmul_f16; break;
    case QT_BF16: kt.dequant = dequant_bf16, kt.matmul = matmul_bf16; break;
    case QT_Q8_0: kt.dequant = dequant_q8_0, kt.matmul = matmul_q8_0; break;
    case QT_Q4_0: kt.dequant = dequant_q4_0, kt.matmul = matmul_q4_0; break;
    case QT_Q4_K: kt.matmul = matmul_q4_K; break;
    case QT_Q5_K: kt.matmul = matmul_q5_K; break;
    case QT_Q6_K: kt.matmul = matmul_q6_K; break;
    }
    return kt;
}
