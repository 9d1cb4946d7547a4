/* quant_avx2.c - AVX2 + FMA + F16C kernels for the tensor types; compiled
 * with those flags and only called after quant.c's CPUID check.
 *
 * Same plan as quant_avx512.c at half the width and with 16 registers: R
 * rows x T tokens per tile, one accumulator set per (token, row) fed by the
 * same instruction sequence whatever the tile, so results do not depend on
 * nt, r0, r1 or tile boundaries.  Without VNNI, int8 products go through
 * maddubs (unsigned x signed -> int16 pairs) and madd (-> int32): Q8_0 takes
 * |w| as the unsigned side and moves w's sign onto the activation; 4/5/6-bit
 * weights are unsigned already and their sub-block scales ride in the madd. */
#include "kernels/quant.h"

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

typedef void (*tile_fn)(const uint8_t *w, size_t ws, const uint8_t *act, size_t ab, int64_t k, float *y,
                        size_t ldy);

typedef struct {
    int rm, tm;
    tile_fn tab[4][4];
} tile_set;

/* Decode (one token) streams every weight once from memory; besides the
 * hardware prefetcher, each tile asks for the bytes PF_AHEAD rows on. */
#define PF_AHEAD 8
/* Float rows are longer (2-4 KiB): about 8-16 KiB ahead as well. */
#define PF_AHEAD_F(wt) ((wt) == WF32 ? 2 : 4)
AI void prefetch_span(const uint8_t *p, size_t n) {
    for (size_t o = 0; o < n; o += 64) _mm_prefetch((const char *)(p + o), _MM_HINT_T0);
    _mm_prefetch((const char *)(p + n - 1), _MM_HINT_T0);
}

/* Token chunks that fit in L2, row blocks inside, token tiles innermost. */
static void drive(const tile_set *ts, const uint8_t *w, size_t ws, int64_t k, int64_t r0, int64_t r1,
                  const uint8_t *act, size_t ab, int64_t nt, float *y, size_t ldy) {
    int64_t tc = (int64_t)((256 * 1024) / ab) / ts->tm * ts->tm;
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

/* Horizontal sum in one fixed order. */
AI float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI float half_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

#define TILE_ARGS const uint8_t *w, size_t ws, const uint8_t *act, size_t ab, int64_t k, float *y, size_t ldy
#define TILE_PASS w, ws, act, ab, k, y, ldy
#define T_(name, fn, arg, R, T) \
    static void name##_##R##_##T(TILE_ARGS) { fn(arg, R, T, TILE_PASS); }
/* batch tiles up to 2 rows x 2 tokens (3 x 3 for float weights), decode tiles 4 rows x 1 token */
#define SET22(name, fn, arg)                                                                        \
    T_(name, fn, arg, 1, 1) T_(name, fn, arg, 2, 1) T_(name, fn, arg, 3, 1) T_(name, fn, arg, 4, 1) \
    T_(name, fn, arg, 1, 2) T_(name, fn, arg, 2, 2)                                                 \
    static const tile_set name##_dec = {4, 1, {{name##_1_1}, {name##_2_1}, {name##_3_1}, {name##_4_1}}}; \
    static const tile_set name##_bat = {2, 2, {{name##_1_1, name##_1_2}, {name##_2_1, name##_2_2}}};
#define SET33(name, fn, arg)                                                                        \
    T_(name, fn, arg, 1, 1) T_(name, fn, arg, 2, 1) T_(name, fn, arg, 3, 1) T_(name, fn, arg, 4, 1) \
    T_(name, fn, arg, 1, 2) T_(name, fn, arg, 2, 2) T_(name, fn, arg, 3, 2)                         \
    T_(name, fn, arg, 1, 3) T_(name, fn, arg, 2, 3) T_(name, fn, arg, 3, 3)                         \
    static const tile_set name##_dec = {4, 1, {{name##_1_1}, {name##_2_1}, {name##_3_1}, {name##_4_1}}}; \
    static const tile_set name##_bat = {3, 3, {{name##_1_1, name##_1_2, name##_1_3},               \
                                               {name##_2_1, name##_2_2, name##_2_3},               \
                                               {name##_3_1, name##_3_2, name##_3_3}}};

/* ------------------------------------------------------ F32 / F16 / BF16 */

enum { WF32, WF16, WBF16 };

AI __m256 load_w8(int wt, const uint8_t *row, int64_t i) {
    if (wt == WF32) return _mm256_loadu_ps((const float *)row + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + i));
    if (wt == WF16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* The last k % 8 elements, zero-padded, as a full vector. */
AI __m256 load_w8_tail(int wt, const uint8_t *row, int64_t i, int64_t n) {
    uint8_t buf[32] = {0};
    memcpy(buf, row + i * (wt == WF32 ? 4 : 2), (size_t)n * (wt == WF32 ? 4 : 2));
    return load_w8(wt, buf, 0);
}

AI void ftile(const int wt, const int R, const int T, const uint8_t *w, size_t ws, const uint8_t *act,
              size_t ab, int64_t k, float *y, size_t ldy) {
    __m256 acc[4][3];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (T == 1 && (wt == WF32 ? !(i & 8) : !(i & 24)))
                _mm_prefetch((const char *)(w + (r + PF_AHEAD_F(wt)) * ws + i * (wt == WF32 ? 4 : 2)), _MM_HINT_T0);
            wv[r] = load_w8(wt, w + r * ws, i);
        }
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) {
            __m256 x = _mm256_loadu_ps((const float *)(act + t * ab) + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], x, acc[r][t]);
        }
    }
    if (i < k) {
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k - i)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = load_w8_tail(wt, w + r * ws, i, k - i);
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) {
            __m256 x = _mm256_maskload_ps((const float *)(act + t * ab) + i, m);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], x, acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(acc[r][t]);
}

SET33(f32t, ftile, WF32)
SET33(f16t, ftile, WF16)
SET33(bf16t, ftile, WBF16)

/* ------------------------------------------------------------ Q8_0 / Q4_0 */

AI void q80_tile(const int is_q4, const int R, const int T, const uint8_t *w, size_t ws, const uint8_t *act,
                 size_t ab, int64_t k, float *y, size_t ldy) {
    const size_t bb = is_q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    const int64_t nb = k / 32;
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wu[4], ws8[4];
        float dw[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = w + r * ws + b * bb;
            if (T == 1 && !(b & 1)) prefetch_span(blk + PF_AHEAD * ws, 2 * bb);
            dw[r] = half_at(blk);
            if (is_q4) {
                __m128i q = _mm_loadu_si128((const __m128i *)(blk + 2));
                wu[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
                ws8[r] = wu[r];
            } else {
                ws8[r] = _mm256_loadu_si256((const __m256i *)(blk + 2));
                wu[r] = _mm256_abs_epi8(ws8[r]);
            }
        }
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + t * ab;
            __m256i av = _mm256_loadu_si256((const __m256i *)(a + b * 32));
            float da = ((const float *)(a + k))[b];
            __m256i corr = _mm256_zextsi128_si256(_mm_cvtsi32_si128(-8 * ((const int32_t *)(a + k + nb * 4))[b]));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m256i p;
                if (is_q4)
                    p = _mm256_add_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(wu[r], av), ones), corr);
                else
                    p = _mm256_madd_epi16(_mm256_maddubs_epi16(wu[r], _mm256_sign_epi8(av, ws8[r])), ones);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw[r] * da), acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(acc[r][t]);
}

SET22(q80t, q80_tile, 0)
SET22(q40t, q80_tile, 1)

/* -------------------------------------------------------------- K-quants */

/* Q4_K (q5 == 0) and Q5_K (q5 == 1): per sub-block j of 32, maddubs then
 * madd by the scale; the mins meet the activation sums once per block. */
AI void q45k_tile(const int q5, const int R, const int T, const uint8_t *w, size_t ws, const uint8_t *act,
                  size_t ab, int64_t k, float *y, size_t ldy) {
    static const unsigned char perm[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    const size_t bb = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const size_t qs_off = q5 ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs);
    const int64_t nb = k / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10), ones = _mm256_set1_epi16(1);
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        uint8_t sc[4][8], mn[4][8];
        __m256i isum[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (T == 1) prefetch_span(w + (r + PF_AHEAD) * ws + b * bb, bb);
            quant_k4_scales(w + r * ws + b * bb + 4, sc[r], mn[r]);
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) isum[r][t] = _mm256_setzero_si256();
        }
        for (int j = 0; j < 8; j++) {
            __m256i u[4], sv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const uint8_t *blk = w + r * ws + b * bb;
                __m256i q = _mm256_loadu_si256((const __m256i *)(blk + qs_off + 32 * (j >> 1)));
                u[r] = (j & 1) ? _mm256_and_si256(_mm256_srli_epi16(q, 4), m4) : _mm256_and_si256(q, m4);
                if (q5) {
                    __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 16));
                    __m256i hb = _mm256_slli_epi16(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(j)), 4);
                    u[r] = _mm256_or_si256(u[r], _mm256_and_si256(hb, b4));
                }
                sv[r] = _mm256_set1_epi16(sc[r][j]);
            }
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) {
                __m256i a = _mm256_loadu_si256((const __m256i *)(act + t * ab + b * QK_K + 32 * perm[j]));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    isum[r][t] = _mm256_add_epi32(isum[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(u[r], a), sv[r]));
            }
        }
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + t * ab;
            const float da = ((const float *)(a + k))[b];
            __m256i bs32 = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a + k + nb * 4 + b * 32)), ones);
            __m128i bsp = _mm_packs_epi32(_mm256_castsi256_si128(bs32), _mm256_extracti128_si256(bs32, 1));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const uint8_t *blk = w + r * ws + b * bb;
                __m128i m16 = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn[r]));
                __m256 mins = _mm256_zextps128_ps256(_mm_cvtepi32_ps(_mm_madd_epi16(m16, bsp)));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][t]), _mm256_set1_ps(half_at(blk) * da), acc[r][t]);
                acc[r][t] = _mm256_fmadd_ps(mins, _mm256_set1_ps(-(half_at(blk + 2) * da)), acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(acc[r][t]);
}

AI void q6k_tile(const int unused, const int R, const int T, const uint8_t *w, size_t ws, const uint8_t *act,
                 size_t ab, int64_t k, float *y, size_t ldy) {
    (void)unused;
    const int64_t nb = k / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b30 = _mm256_set1_epi8(0x30);
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i isum[4][2];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            if (T == 1) prefetch_span(w + (r + PF_AHEAD) * ws + b * sizeof(block_q6_K), sizeof(block_q6_K));
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) isum[r][t] = _mm256_setzero_si256();
        }
        for (int j = 0; j < 8; j++) {
            /* elements 32j..32j+31: half h, quarter qq of that half */
            const int h = j >> 2, qq = j & 3;
            __m256i u[4], sv[4];
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const block_q6_K *blk = (const block_q6_K *)(w + r * ws) + b;
                __m256i ql = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32 * (qq & 1)));
                __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
                __m256i lo = qq >= 2 ? _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4) : _mm256_and_si256(ql, m4);
                __m256i hb = _mm256_slli_epi16(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * qq)), 4);
                u[r] = _mm256_or_si256(lo, _mm256_and_si256(hb, b30));
                sv[r] = _mm256_set_m128i(_mm_set1_epi16(blk->scales[2 * j + 1]), _mm_set1_epi16(blk->scales[2 * j]));
            }
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) {
                __m256i a = _mm256_loadu_si256((const __m256i *)(act + t * ab + b * QK_K + 32 * j));
#pragma GCC unroll 4
                for (int r = 0; r < R; r++)
                    isum[r][t] = _mm256_add_epi32(isum[r][t], _mm256_madd_epi16(_mm256_maddubs_epi16(u[r], a), sv[r]));
            }
        }
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            const uint8_t *a = act + t * ab;
            const float da = ((const float *)(a + k))[b];
            __m256i bs = _mm256_loadu_si256((const __m256i *)(a + k + nb * 4 + b * 32));
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const block_q6_K *blk = (const block_q6_K *)(w + r * ws) + b;
                __m256i nsc = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk->scales)),
                                                 _mm256_set1_epi16(-32));
                __m256i is = _mm256_add_epi32(isum[r][t], _mm256_madd_epi16(nsc, bs));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_set1_ps(half_at((const uint8_t *)&blk->d) * da),
                                            acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(acc[r][t]);
}

SET22(q4kt, q45k_tile, 0)
SET22(q5kt, q45k_tile, 1)
SET22(q6kt, q6k_tile, 0)

#define MATMUL(fname, set, type)                                                                             \
    static void fname(const void *w, size_t ws, int64_t k, int64_t r0, int64_t r1, const void *act, int64_t nt, \
                      float *y, size_t ldy) {                                                                \
        drive(nt == 1 ? &set##_dec : &set##_bat, w, ws, k, r0, r1, act, quant_act_row_bytes(type, k), nt, y, ldy); \
    }
MATMUL(matmul_f32, f32t, QT_F32)
MATMUL(matmul_f16, f16t, QT_F16)
MATMUL(matmul_bf16, bf16t, QT_BF16)
MATMUL(matmul_q8_0, q80t, QT_Q8_0)
MATMUL(matmul_q4_0, q40t, QT_Q4_0)
MATMUL(matmul_q4_K, q4kt, QT_Q4_K)
MATMUL(matmul_q5_K, q5kt, QT_Q5_K)
MATMUL(matmul_q6_K, q6kt, QT_Q6_K)

/* ---------------------------------------------------------------- dequant */

static void dequant_f16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(s[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_si256((__m256i *)(dst + i),
                            _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i))), 16));
    for (; i < n; i++) dst[i] = quant_bf16_to_f32(s[i]);
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / 32; i++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(b[i].d));
        for (int j = 0; j < 4; j++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(b[i].qs + 8 * j));
            _mm256_storeu_ps(dst + 32 * i + 8 * j, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q))));
        }
    }
}

/* ------------------------------------------------------------ activations */

/* Same arithmetic as the reference (quant.c) so the bytes are identical:
 * d = amax/127, q = x*(127/amax) clamped to [-127, 127], rounded to nearest
 * even by the conversion, NaN -> 0. */
AI __m256i quant8(__m256 x, __m256 id) {
    __m256 v = _mm256_mul_ps(x, id);
    __m256i ord = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_ORD_Q));
    v = _mm256_min_ps(_mm256_set1_ps(127.0f), _mm256_max_ps(_mm256_set1_ps(-127.0f), v));
    return _mm256_and_si256(_mm256_cvtps_epi32(v), ord);
}

AI int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static void prepare_row(uint32_t wtype, const float *x, int64_t k, uint8_t *act) {
    if (wtype == QT_F32 || wtype == QT_F16 || wtype == QT_BF16) {
        memcpy(act, x, (size_t)k * sizeof(float));
        return;
    }
    const __m256 signbit = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    int8_t *qs = (int8_t *)act;
    float *d = (float *)(act + k);
    const int bl = (wtype == QT_Q8_0 || wtype == QT_Q4_0) ? 32 : QK_K;
    const int64_t nb = k / bl;
    int32_t *s = (int32_t *)(act + k + nb * 4);
    int16_t *bs = (int16_t *)(act + k + nb * 4);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * bl;
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < bl; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(signbit, _mm256_loadu_ps(xb + i)), m);
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        d[b] = amax / 127.0f;
        __m256 id = _mm256_set1_ps(d[b] > 0.0f ? 127.0f / amax : 0.0f);
        for (int i = 0; i < bl; i += 32) {
            __m256i q0 = quant8(_mm256_loadu_ps(xb + i), id), q1 = quant8(_mm256_loadu_ps(xb + i + 8), id);
            __m256i q2 = quant8(_mm256_loadu_ps(xb + i + 16), id), q3 = quant8(_mm256_loadu_ps(xb + i + 24), id);
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
            _mm256_storeu_si256((__m256i *)(qs + quant_act_qs_index(wtype, b * bl + i)),
                                _mm256_permutevar8x32_epi32(p, order));
            int32_t g0 = hsum_i32(_mm256_add_epi32(q0, q1)), g1 = hsum_i32(_mm256_add_epi32(q2, q3));
            if (bl == 32) {
                s[b] = g0 + g1;
            } else {
                bs[b * 16 + i / 16] = (int16_t)g0;
                bs[b * 16 + i / 16 + 1] = (int16_t)g1;
            }
        }
    }
}

quant_kernels quant_kernels_avx2(uint32_t type) {
    quant_kernels kt = {NULL, NULL, NULL};
    if (quant_act_row_bytes(type, QK_K)) kt.prepare = prepare_row;
    switch (type) {
    case QT_F32: kt.matmul = matmul_f32; break;
    case QT_F16: kt.dequant = dequant_f16, kt.matmul = matmul_f16; break;
    case QT_BF16: kt.dequant = dequant_bf16, kt.matmul = matmul_bf16; break;
    case QT_Q8_0: kt.dequant = dequant_q8_0, kt.matmul = matmul_q8_0; break;
    case QT_Q4_0: kt.matmul = matmul_q4_0; break;
    case QT_Q4_K: kt.matmul = matmul_q4_K; break;
    case QT_Q5_K: kt.matmul = matmul_q5_K; break;
    case QT_Q6_K: kt.matmul = matmul_q6_K; break;
    }
    return kt;
}
