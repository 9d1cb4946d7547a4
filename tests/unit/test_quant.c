/* test_quant.c - the tensor-type kernels (quant.c, quant_avx2.c,
 * quant_avx512.c) against the GGUF format definition and each other.
 *
 *  - known values: hand-built blocks whose dequantized values the test
 *    derives from the format definition (and a few literals worked out by
 *    hand), so the reference cannot be self-consistently wrong;
 *  - activation preparation: dequantized activations are within half a
 *    quantization step of the input, block sums match;
 *  - reference matmul vs a float64 dot of the dequantized weights and the
 *    dequantized prepared activations (tolerance 1e-4 of sum|w*a| for the
 *    quantized types, 1e-5 for the float ones);
 *  - every SIMD level this CPU has: dequant bit-identical to the reference,
 *    matmul within 2e-5 of the magnitude sum|w*a| (sum of |d*sc*q|*|a| +
 *    |dmin*m|*|a| for Q4_K/Q5_K, whose two terms may cancel) of the
 *    reference, over odd row counts, nt = 1..17 and 70, and row ranges that
 *    are not multiples of any tile;
 *  - determinism: (t, r) is bit-identical whatever nt, token offset, r0, r1. */
#include "kernels/quant.h"
#include "test.h"

#include <stdint.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd32() & 0xffffff) / 16777216.0f; }

static const uint32_t ALL_TYPES[] = {QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_K, QT_Q5_K, QT_Q6_K};
#define NTYPES (int)(sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static int is_float_type(uint32_t t) { return t == QT_F32 || t == QT_F16 || t == QT_BF16; }

/* Random weights: random bytes for the quants, with finite fp16 scales of
 * either sign (the format allows negative d and dmin). */
static void rand_weights(uint32_t type, void *w, int64_t rows, int64_t k) {
    size_t rb = quant_row_bytes(type, k);
    uint8_t *p = w;
    for (size_t i = 0; i < rb * (size_t)rows; i++) p[i] = (uint8_t)rnd32();
    int64_t n = rows * k;
    switch (type) {
    case QT_F32: for (int64_t i = 0; i < n; i++) ((float *)w)[i] = rndf(-1, 1); break;
    case QT_F16: for (int64_t i = 0; i < n; i++) ((qhalf *)w)[i] = quant_f32_to_f16(rndf(-1, 1)); break;
    case QT_BF16: for (int64_t i = 0; i < n; i++) ((uint16_t *)w)[i] = quant_f32_to_bf16(rndf(-1, 1)); break;
    case QT_Q8_0: for (int64_t i = 0; i < n / 32; i++) ((block_q8_0 *)w)[i].d = quant_f32_to_f16(rndf(-0.02f, 0.02f)); break;
    case QT_Q4_0: for (int64_t i = 0; i < n / 32; i++) ((block_q4_0 *)w)[i].d = quant_f32_to_f16(rndf(-0.1f, 0.1f)); break;
    case QT_Q4_K:
        for (int64_t i = 0; i < n / QK_K; i++) {
            ((block_q4_K *)w)[i].d = quant_f32_to_f16(rndf(-0.01f, 0.01f));
            ((block_q4_K *)w)[i].dmin = quant_f32_to_f16(rndf(-0.01f, 0.01f));
        }
        break;
    case QT_Q5_K:
        for (int64_t i = 0; i < n / QK_K; i++) {
            ((block_q5_K *)w)[i].d = quant_f32_to_f16(rndf(-0.01f, 0.01f));
            ((block_q5_K *)w)[i].dmin = quant_f32_to_f16(rndf(-0.01f, 0.01f));
        }
        break;
    case QT_Q6_K: for (int64_t i = 0; i < n / QK_K; i++) ((block_q6_K *)w)[i].d = quant_f32_to_f16(rndf(-0.002f, 0.002f)); break;
    }
}

/* Random activations: mostly [-1,1], some outliers, one all-zero block. */
static void rand_acts(float *x, int64_t n, int64_t zero_from) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = rndf(-1, 1);
        if ((rnd32() & 63) == 0) x[i] *= 20.0f;
    }
    if (zero_from >= 0 && zero_from + 32 <= n)
        for (int i = 0; i < 32; i++) x[zero_from + i] = 0.0f;
}

/* Which ISA levels this CPU can run: lvls[0..n). */
static int isa_levels(int *lvls) {
    int n = 0;
    int saved = quant_isa();
    for (int l = QUANT_ISA_REF; l <= QUANT_ISA_AVX512; l++)
        if (quant_set_isa(l) == l) lvls[n++] = l;
    quant_set_isa(saved);
    return n;
}

static int64_t k_for(uint32_t type, int which) {
    static const int64_t kf[] = {1024, 172, 64, 17};
    static const int64_t k32[] = {1024, 96, 32, 160};
    static const int64_t kk[] = {1024, 256, 512, 768};
    if (type == QT_F32) return kf[which & 3];
    if (is_float_type(type)) return kf[which & 3];
    if (type == QT_Q8_0 || type == QT_Q4_0) return k32[which & 3];
    return kk[which & 3];
}

/* --------------------------------------------------------- known values */

static void pack_k4_scales(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12]) {
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
}

static void test_known_f16_bf16(void) {
    /* fp16 1.0, -2.0, 1/3 rounded, smallest subnormal; bf16 1.0, -3.0 */
    qhalf h[4] = {0x3C00, 0xC000, 0x3555, 0x0001};
    float out[4];
    for (int lvl = 0; lvl < 3; lvl++) {
        if (quant_set_isa(lvl) != lvl) continue;
        quant_dequant_row(QT_F16, h, out, 4);
        CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 0.333251953125f && out[3] == 0x1p-24f);
        uint16_t b[4] = {0x3F80, 0xC040, 0x0000, 0x4120};
        quant_dequant_row(QT_BF16, b, out, 4);
        CHECK(out[0] == 1.0f && out[1] == -3.0f && out[2] == 0.0f && out[3] == 10.0f);
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

static void test_known_q8_0_q4_0(void) {
    block_q8_0 b8 = {.d = 0x3800}; /* 0.5 */
    for (int j = 0; j < 32; j++) b8.qs[j] = (int8_t)(j - 16);
    block_q4_0 b4 = {.d = 0x4000}; /* 2.0 */
    for (int j = 0; j < 16; j++) b4.qs[j] = (uint8_t)((j & 0xF) | (((15 - j) & 0xF) << 4));
    float out[32];
    for (int lvl = 0; lvl < 3; lvl++) {
        if (quant_set_isa(lvl) != lvl) continue;
        quant_dequant_row(QT_Q8_0, &b8, out, 32);
        CHECK(out[0] == -8.0f && out[31] == 7.5f);
        for (int j = 0; j < 32; j++) CHECK(out[j] == 0.5f * (float)(j - 16));
        quant_dequant_row(QT_Q4_0, &b4, out, 32);
        CHECK(out[0] == -16.0f && out[15] == 14.0f && out[16] == 14.0f && out[31] == -16.0f);
        for (int j = 0; j < 16; j++) {
            CHECK(out[j] == 2.0f * (float)(j - 8));
            CHECK(out[j + 16] == 2.0f * (float)(15 - j - 8));
        }
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

static const uint8_t KSC[8] = {1, 2, 3, 4, 17, 33, 50, 63};
static const uint8_t KM[8] = {0, 5, 10, 63, 16, 31, 47, 60};

static void test_known_q4_K_q5_K(void) {
    block_q4_K b4;
    memset(&b4, 0, sizeof b4);
    b4.d = 0x3C00;    /* 1.0 */
    b4.dmin = 0x3800; /* 0.5 */
    pack_k4_scales(KSC, KM, b4.scales);
    block_q5_K b5;
    memset(&b5, 0, sizeof b5);
    b5.d = 0x3C00;
    b5.dmin = 0x3800;
    pack_k4_scales(KSC, KM, b5.scales);
    /* element e = 64c + 32h + l: nibble h of qs[32c + l]; Q5_K's 5th bit is
     * bit (e / 32) of qh[l]. */
    for (int e = 0; e < 256; e++) {
        int c = e / 64, hsel = (e / 32) & 1, l = e % 32;
        int q4 = (e * 7 + 3) % 16, q5 = (e * 11 + 5) % 32;
        b4.qs[32 * c + l] |= (uint8_t)(q4 << (4 * hsel));
        b5.qs[32 * c + l] |= (uint8_t)((q5 & 15) << (4 * hsel));
        b5.qh[l] |= (uint8_t)((q5 >> 4) << (e / 32));
    }
    float out[256];
    for (int lvl = 0; lvl < 3; lvl++) {
        if (quant_set_isa(lvl) != lvl) continue;
        quant_dequant_row(QT_Q4_K, &b4, out, 256);
        /* worked by hand: e=200 is sub-block 6 (sc 50, m 47), q = 1403 % 16 = 11 */
        CHECK(out[0] == 3.0f && out[37] == 9.5f && out[200] == 526.5f && out[255] == 726.0f);
        for (int e = 0; e < 256; e++)
            CHECKF(out[e] == 1.0f * KSC[e / 32] * (float)((e * 7 + 3) % 16) - 0.5f * KM[e / 32], "q4_K e=%d", e);
        quant_dequant_row(QT_Q5_K, &b5, out, 256);
        CHECK(out[0] == 5.0f && out[100] == 36.5f && out[255] == 1608.0f);
        for (int e = 0; e < 256; e++)
            CHECKF(out[e] == 1.0f * KSC[e / 32] * (float)((e * 11 + 5) % 32) - 0.5f * KM[e / 32], "q5_K e=%d", e);
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

static void test_known_q6_K(void) {
    block_q6_K b;
    memset(&b, 0, sizeof b);
    b.d = 0x3400; /* 0.25 */
    for (int j = 0; j < 16; j++) b.scales[j] = (int8_t)(j - 8);
    /* element e = 128h + 32q + l: low 4 bits in ql[64h + l + 32*(q&1)]
     * (low nibble for q < 2, high for q >= 2), top 2 bits in bits 2q..2q+1
     * of qh[32h + l]; value = d * scale[e/16] * (q6 - 32). */
    for (int e = 0; e < 256; e++) {
        int h = e / 128, qq = (e % 128) / 32, l = e % 32, v = (e * 13 + 1) % 64;
        b.ql[64 * h + l + 32 * (qq & 1)] |= (uint8_t)((v & 15) << (qq >= 2 ? 4 : 0));
        b.qh[32 * h + l] |= (uint8_t)((v >> 4) << (2 * qq));
    }
    float out[256];
    for (int lvl = 0; lvl < 3; lvl++) {
        if (quant_set_isa(lvl) != lvl) continue;
        quant_dequant_row(QT_Q6_K, &b, out, 256);
        CHECK(out[0] == 62.0f && out[77] == -10.0f && out[255] == 35.0f);
        for (int e = 0; e < 256; e++)
            CHECKF(out[e] == 0.25f * (float)(e / 16 - 8) * (float)((e * 13 + 1) % 64 - 32), "q6_K e=%d", e);
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

/* A product with a known answer: weights all 1 (per format), activations
 * all 1, so each output is k; and all-zero activations give exactly 0. */
static void test_known_matmul(void) {
    const int64_t k = 512;
    _Alignas(64) uint8_t w[2 * 512 * 4];
    float x[512], y[4];
    for (int i = 0; i < 512; i++) x[i] = 1.0f;
    for (int ti = 0; ti < NTYPES; ti++) {
        uint32_t type = ALL_TYPES[ti];
        size_t rb = quant_row_bytes(type, k);
        memset(w, 0, sizeof w);
        for (int r = 0; r < 2; r++) {
            uint8_t *row = w + r * rb;
            switch (type) {
            case QT_F32: for (int i = 0; i < k; i++) ((float *)row)[i] = 1.0f; break;
            case QT_F16: for (int i = 0; i < k; i++) ((qhalf *)row)[i] = 0x3C00; break;
            case QT_BF16: for (int i = 0; i < k; i++) ((uint16_t *)row)[i] = 0x3F80; break;
            case QT_Q8_0:
                for (int b = 0; b < k / 32; b++) {
                    ((block_q8_0 *)row)[b].d = 0x3C00;
                    memset(((block_q8_0 *)row)[b].qs, 1, 32);
                }
                break;
            case QT_Q4_0: /* nibble 9 = +1 */
                for (int b = 0; b < k / 32; b++) {
                    ((block_q4_0 *)row)[b].d = 0x3C00;
                    memset(((block_q4_0 *)row)[b].qs, 0x99, 16);
                }
                break;
            case QT_Q4_K: case QT_Q5_K: { /* d=1, sc=2, dmin=1, m=1, q=1 (Q5_K: 17 with dmin... kept 1) */
                uint8_t sc[8], m[8];
                for (int j = 0; j < 8; j++) sc[j] = 2, m[j] = 1;
                for (int b = 0; b < k / QK_K; b++) {
                    if (type == QT_Q4_K) {
                        block_q4_K *bk = (block_q4_K *)row + b;
                        bk->d = 0x3C00, bk->dmin = 0x3C00;
                        pack_k4_scales(sc, m, bk->scales);
                        memset(bk->qs, 0x11, sizeof bk->qs);
                    } else {
                        block_q5_K *bk = (block_q5_K *)row + b;
                        bk->d = 0x3C00, bk->dmin = 0x3C00;
                        pack_k4_scales(sc, m, bk->scales);
                        memset(bk->qs, 0x11, sizeof bk->qs);
                    }
                }
                break;
            }
            case QT_Q6_K: /* d=1, scale=1, q=33 (ql nibble 1, qh bits 2) */
                for (int b = 0; b < k / QK_K; b++) {
                    block_q6_K *bk = (block_q6_K *)row + b;
                    bk->d = 0x3C00;
                    memset(bk->scales, 1, sizeof bk->scales);
                    memset(bk->ql, 0x11, sizeof bk->ql);
                    memset(bk->qh, 0xAA, sizeof bk->qh);
                }
                break;
            }
        }
        float dq[512];
        quant_dequant_row(type, w, dq, k);
        for (int i = 0; i < k; i++) CHECKF(dq[i] == 1.0f, "%s element %d = %g", quant_type_name(type), i, dq[i]);
        size_t ab = quant_act_row_bytes(type, k);
        _Alignas(64) uint8_t act[2 * 4096];
        CHECK(ab * 2 <= sizeof act);
        quant_act_prepare(type, x, k, 1, k, act);
        float xz[512] = {0};
        quant_act_prepare(type, xz, k, 1, k, act + ab);
        for (int lvl = 0; lvl < 3; lvl++) {
            if (quant_set_isa(lvl) != lvl) continue;
            quant_matmul(type, w, rb, k, 0, 2, act, 2, y, 2);
            CHECKF(fabs(y[0] - 512.0) < 1e-3 && fabs(y[1] - 512.0) < 1e-3, "%s %s: %g %g",
                   quant_type_name(type), quant_isa_name(lvl), y[0], y[1]);
            CHECKF(y[2] == 0.0f && y[3] == 0.0f, "%s zero input gives %g %g", quant_type_name(type), y[2], y[3]);
        }
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

/* ------------------------------------------------------------ activations */

static void test_act_prepare(void) {
    for (int ti = 0; ti < NTYPES; ti++) {
        uint32_t type = ALL_TYPES[ti];
        int64_t k = k_for(type, 0), nt = 3;
        size_t ab = quant_act_row_bytes(type, k);
        CHECK(ab % 64 == 0 && ab >= (size_t)k);
        float *x = malloc(sizeof(float) * (size_t)(k * nt)), *xd = malloc(sizeof(float) * (size_t)k);
        uint8_t *act = malloc(ab * (size_t)nt);
        CHECK(x && xd && act);
        rand_acts(x, k * nt, 64);
        quant_act_prepare(type, x, k, nt, (size_t)k, act);
        for (int64_t t = 0; t < nt; t++) {
            const uint8_t *a = act + t * ab;
            quant_act_dequant_row(type, a, k, xd);
            int64_t bl = is_float_type(type) ? 0 : (type == QT_Q8_0 || type == QT_Q4_0) ? 32 : 256;
            for (int64_t i = 0; i < k; i++) {
                if (!bl) {
                    CHECK(xd[i] == x[t * k + i]);
                    continue;
                }
                float amax = 0;
                for (int64_t j = i / bl * bl; j < (i / bl + 1) * bl; j++) amax = fmaxf(amax, fabsf(x[t * k + j]));
                CHECKF(fabsf(xd[i] - x[t * k + i]) <= amax / 127.0f * 0.5001f + 1e-30f, "%s i=%lld",
                       quant_type_name(type), (long long)i);
            }
            /* the block sums the integer kernels rely on */
            const int8_t *qs = (const int8_t *)a;
            if (type == QT_Q8_0 || type == QT_Q4_0) {
                const int32_t *s = (const int32_t *)(a + k + k / 32 * 4);
                for (int64_t b = 0; b < k / 32; b++) {
                    int32_t sum = 0;
                    for (int j = 0; j < 32; j++) sum += qs[b * 32 + j];
                    CHECK(s[b] == sum);
                }
            } else if (!is_float_type(type)) {
                const int16_t *bs = (const int16_t *)(a + k + k / 256 * 4);
                for (int64_t g = 0; g < k / 16; g++) {
                    int sum = 0;
                    for (int j = 0; j < 16; j++) sum += qs[quant_act_qs_index(type, g * 16 + j)];
                    CHECK(bs[g] == sum);
                }
            }
        }
        free(x), free(xd), free(act);
    }
}

/* ------------------------------------------------------------- products */

/* Magnitude of dot(W_r, a) against which rounding is judged: sum |w_i a_i|,
 * except Q4_K/Q5_K where the d*sc*q and dmin*m terms are summed apart. */
static double row_mag(uint32_t type, const uint8_t *wrow, const float *wd, const float *ad, int64_t k) {
    double mag = 0;
    if (type == QT_Q4_K || type == QT_Q5_K) {
        size_t bb = quant_block_bytes(type);
        for (int64_t b = 0; b < k / 256; b++) {
            const uint8_t *blk = wrow + b * bb;
            qhalf dh, mh;
            memcpy(&dh, blk, 2), memcpy(&mh, blk + 2, 2);
            uint8_t sc[8], m[8];
            quant_k4_scales(blk + 4, sc, m);
            double dmin = quant_f16_to_f32(mh);
            for (int i = 0; i < 256; i++) {
                double mm = dmin * m[i / 32];
                mag += (fabs((double)wd[b * 256 + i] + mm) + fabs(mm)) * fabs(ad[b * 256 + i]);
            }
        }
        return mag;
    }
    for (int64_t i = 0; i < k; i++) mag += fabs((double)wd[i] * ad[i]);
    return mag;
}

typedef struct {
    uint32_t type;
    int64_t k, rows, nt;
    size_t wrb, ab;
    uint8_t *w, *act;
    float *x, *wd, *ad; /* dequantized weights (rows*k), activations (nt*k) */
    double *mag;        /* nt*rows */
} problem;

static int problem_make(problem *p, uint32_t type, int64_t k, int64_t rows, int64_t nt) {
    memset(p, 0, sizeof *p);
    p->type = type, p->k = k, p->rows = rows, p->nt = nt;
    p->wrb = quant_row_bytes(type, k);
    p->ab = quant_act_row_bytes(type, k);
    p->w = malloc(p->wrb * (size_t)rows);
    p->act = malloc(p->ab * (size_t)nt);
    p->x = malloc(sizeof(float) * (size_t)(k * nt));
    p->wd = malloc(sizeof(float) * (size_t)(k * rows));
    p->ad = malloc(sizeof(float) * (size_t)(k * nt));
    p->mag = malloc(sizeof(double) * (size_t)(nt * rows));
    if (!p->w || !p->act || !p->x || !p->wd || !p->ad || !p->mag) return -1;
    rand_weights(type, p->w, rows, k);
    rand_acts(p->x, k * nt, k >= 64 ? 32 : -1);
    quant_act_prepare(type, p->x, k, nt, (size_t)k, p->act);
    int saved = quant_isa();
    quant_set_isa(QUANT_ISA_REF);
    for (int64_t r = 0; r < rows; r++) quant_dequant_row(type, p->w + r * p->wrb, p->wd + r * k, k);
    quant_set_isa(saved);
    for (int64_t t = 0; t < nt; t++) quant_act_dequant_row(type, p->act + t * p->ab, k, p->ad + t * k);
    for (int64_t t = 0; t < nt; t++)
        for (int64_t r = 0; r < rows; r++)
            p->mag[t * rows + r] = row_mag(type, p->w + r * p->wrb, p->wd + r * k, p->ad + t * k, k);
    return 0;
}

static void problem_free(problem *p) {
    free(p->w), free(p->act), free(p->x), free(p->wd), free(p->ad), free(p->mag);
}

static void test_ref_vs_float64(void) {
    quant_set_isa(QUANT_ISA_REF);
    for (int ti = 0; ti < NTYPES; ti++) {
        uint32_t type = ALL_TYPES[ti];
        for (int kw = 0; kw < 4; kw++) {
            problem p;
            CHECK(problem_make(&p, type, k_for(type, kw), 5, 3) == 0);
            float *y = malloc(sizeof(float) * 15);
            CHECK(y);
            quant_matmul(type, p.w, p.wrb, p.k, 0, 5, p.act, 3, y, 5);
            double tol = is_float_type(type) ? 1e-5 : 1e-4;
            for (int t = 0; t < 3; t++)
                for (int r = 0; r < 5; r++) {
                    double ref = 0;
                    for (int64_t i = 0; i < p.k; i++) ref += (double)p.wd[r * p.k + i] * p.ad[t * p.k + i];
                    double m = p.mag[t * 5 + r];
                    CHECKF(fabs(y[t * 5 + r] - ref) <= tol * m + 1e-30, "%s k=%lld t=%d r=%d: %.9g vs %.9g (mag %g)",
                           quant_type_name(type), (long long)p.k, t, r, y[t * 5 + r], ref, m);
                }
            free(y);
            problem_free(&p);
        }
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

static void test_simd_dequant_exact(void) {
    int lv[3], nl = isa_levels(lv);
    if (nl < 2) TEST_SKIP("no SIMD level on this CPU");
    for (int ti = 0; ti < NTYPES; ti++) {
        uint32_t type = ALL_TYPES[ti];
        int64_t n = quant_block_elems(type) == 1 ? 1000 + 7 : 256 * 5;
        size_t bytes = quant_row_bytes(type, n);
        uint8_t *w = malloc(bytes);
        float *ref = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
        CHECK(w && ref && got);
        for (int rep = 0; rep < 4; rep++) {
            rand_weights(type, w, 1, n);
            quant_set_isa(QUANT_ISA_REF);
            quant_dequant_row(type, w, ref, n);
            for (int li = 1; li < nl; li++) {
                quant_set_isa(lv[li]);
                memset(got, 0xff, sizeof(float) * (size_t)n);
                quant_dequant_row(type, w, got, n);
                CHECKF(memcmp(ref, got, sizeof(float) * (size_t)n) == 0, "%s at %s", quant_type_name(type),
                       quant_isa_name(lv[li]));
            }
        }
        free(w), free(ref), free(got);
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

static void test_simd_matmul_vs_ref(void) {
    int lv[3], nl = isa_levels(lv);
    if (nl < 2) TEST_SKIP("no SIMD level on this CPU");
    static const int64_t rows_list[] = {1, 5, 13, 37};
    for (int ti = 0; ti < NTYPES; ti++) {
        uint32_t type = ALL_TYPES[ti];
        for (int kw = 0; kw < 4; kw++) {
            int64_t rows = rows_list[kw], nt = kw == 3 ? 70 : 17;
            problem p;
            CHECK(problem_make(&p, type, k_for(type, kw), rows, nt) == 0);
            float *yr = malloc(sizeof(float) * (size_t)(rows * nt)), *ys = malloc(sizeof(float) * (size_t)(rows * nt));
            CHECK(yr && ys);
            quant_set_isa(QUANT_ISA_REF);
            quant_matmul(type, p.w, p.wrb, p.k, 0, rows, p.act, nt, yr, (size_t)rows);
            for (int li = 1; li < nl; li++) {
                quant_set_isa(lv[li]);
                memset(ys, 0xff, sizeof(float) * (size_t)(rows * nt));
                quant_matmul(type, p.w, p.wrb, p.k, 0, rows, p.act, nt, ys, (size_t)rows);
                for (int64_t i = 0; i < rows * nt; i++)
                    CHECKF(fabs((double)ys[i] - yr[i]) <= 2e-5 * p.mag[i] + 1e-30,
                           "%s %s k=%lld rows=%lld t=%lld r=%lld: %.9g vs ref %.9g (mag %g)", quant_type_name(type),
                           quant_isa_name(lv[li]), (long long)p.k, (long long)rows, (long long)(i / rows),
                           (long long)(i % rows), ys[i], yr[i], p.mag[i]);
            }
            free(yr), free(ys);
            problem_free(&p);
        }
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

/* Every (t, r) bit-identical whether computed in one call over everything,
 * one token and one row at a time, or any sub-range of tokens and rows. */
static void test_determinism(void) {
    int lv[3], nl = isa_levels(lv);
    for (int ti = 0; ti < NTYPES; ti++) {
        uint32_t type = ALL_TYPES[ti];
        int64_t rows = 37, nt = 70;
        problem p;
        CHECK(problem_make(&p, type, k_for(type, ti & 1 ? 2 : 1), rows, nt) == 0);
        float *full = malloc(sizeof(float) * (size_t)(rows * nt)), *part = malloc(sizeof(float) * (size_t)(rows * nt));
        CHECK(full && part);
        for (int li = 0; li < nl; li++) {
            quant_set_isa(lv[li]);
            quant_matmul(type, p.w, p.wrb, p.k, 0, rows, p.act, nt, full, (size_t)rows);
            /* one (t, r) at a time, on a sample */
            for (int64_t t = 0; t < nt; t += 3)
                for (int64_t r = 0; r < rows; r += 2) {
                    float one[37];
                    quant_matmul(type, p.w, p.wrb, p.k, r, r + 1, p.act + t * p.ab, 1, one, 0);
                    CHECKF(memcmp(&one[r], &full[t * rows + r], 4) == 0, "%s %s single t=%lld r=%lld",
                           quant_type_name(type), quant_isa_name(lv[li]), (long long)t, (long long)r);
                }
            /* token ranges of every length 1..17 at odd offsets, odd row ranges */
            for (int64_t n = 1; n <= 17; n++) {
                int64_t t0 = (n * 5) % (nt - n + 1);
                int64_t r0 = (n * 3) % rows, r1 = r0 + 1 + (n * 7) % (rows - r0);
                memset(part, 0, sizeof(float) * (size_t)(rows * nt));
                quant_matmul(type, p.w, p.wrb, p.k, r0, r1, p.act + t0 * p.ab, n, part, (size_t)rows);
                for (int64_t t = 0; t < n; t++)
                    for (int64_t r = r0; r < r1; r++)
                        CHECKF(memcmp(&part[t * rows + r], &full[(t0 + t) * rows + r], 4) == 0,
                               "%s %s n=%lld t0=%lld r=[%lld,%lld) t=%lld r=%lld", quant_type_name(type),
                               quant_isa_name(lv[li]), (long long)n, (long long)t0, (long long)r0, (long long)r1,
                               (long long)t, (long long)r);
                /* nothing outside [r0, r1) was written */
                for (int64_t t = 0; t < n; t++)
                    for (int64_t r = 0; r < rows; r++)
                        if (r < r0 || r >= r1) CHECK(part[t * rows + r] == 0.0f);
            }
        }
        free(full), free(part);
        problem_free(&p);
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

/* Q8_0/Q4_0 at row lengths the small shapes above miss: a partial last
 * group of 16 blocks with token counts that span several of the AVX-512
 * kernel's token chunks (k = 3232), and a row too long for its chunk buffer
 * (k = 53248, another code path).  Each SIMD level stays within tolerance of
 * the reference, and every (t, r) is bit-identical between one product over
 * all 40 tokens, one token at a time, and token ranges at odd offsets. */
static void test_q8_long_rows(void) {
    int lv[3], nl = isa_levels(lv);
    static const uint32_t types[] = {QT_Q8_0, QT_Q4_0};
    static const int64_t ks[] = {3232, 53248};
    for (int ti = 0; ti < 2; ti++)
        for (int ki = 0; ki < 2; ki++) {
            uint32_t type = types[ti];
            int64_t rows = 5, nt = ki == 0 ? 40 : 3, k = ks[ki];
            problem p;
            CHECK(problem_make(&p, type, k, rows, nt) == 0);
            float *yr = malloc(sizeof(float) * (size_t)(rows * nt)), *ys = malloc(sizeof(float) * (size_t)(rows * nt));
            CHECK(yr && ys);
            quant_set_isa(QUANT_ISA_REF);
            quant_matmul(type, p.w, p.wrb, k, 0, rows, p.act, nt, yr, (size_t)rows);
            for (int li = 1; li < nl; li++) {
                quant_set_isa(lv[li]);
                quant_matmul(type, p.w, p.wrb, k, 0, rows, p.act, nt, ys, (size_t)rows);
                for (int64_t i = 0; i < rows * nt; i++)
                    CHECKF(fabs((double)ys[i] - yr[i]) <= 2e-5 * p.mag[i] + 1e-30, "%s %s k=%lld t=%lld r=%lld: %.9g vs %.9g",
                           quant_type_name(type), quant_isa_name(lv[li]), (long long)k, (long long)(i / rows),
                           (long long)(i % rows), ys[i], yr[i]);
                for (int64_t t = 0; t < nt; t++) {
                    float one[5];
                    quant_matmul(type, p.w, p.wrb, k, 0, rows, p.act + t * p.ab, 1, one, 0);
                    for (int64_t r = 0; r < rows; r++)
                        CHECKF(memcmp(&one[r], &ys[t * rows + r], 4) == 0, "%s %s k=%lld single t=%lld r=%lld",
                               quant_type_name(type), quant_isa_name(lv[li]), (long long)k, (long long)t, (long long)r);
                }
                for (int64_t n = 2; n < nt; n += 7) {
                    int64_t t0 = (n * 3) % (nt - n + 1);
                    float part[5 * 40];
                    quant_matmul(type, p.w, p.wrb, k, 1, rows, p.act + t0 * p.ab, n, part, (size_t)rows);
                    for (int64_t t = 0; t < n; t++)
                        for (int64_t r = 1; r < rows; r++)
                            CHECKF(memcmp(&part[t * rows + r], &ys[(t0 + t) * rows + r], 4) == 0,
                                   "%s %s k=%lld n=%lld t0=%lld t=%lld r=%lld", quant_type_name(type),
                                   quant_isa_name(lv[li]), (long long)k, (long long)n, (long long)t0, (long long)t,
                                   (long long)r);
                }
            }
            free(yr), free(ys);
            problem_free(&p);
        }
    quant_set_isa(QUANT_ISA_AVX512);
}

/* Prepared activations are the same bytes at every ISA level (the kernels
 * of all levels consume one format), including zero blocks, outliers, ties
 * and non-finite inputs. */
static void test_prepare_same_bytes(void) {
    int lv[3], nl = isa_levels(lv);
    if (nl < 2) TEST_SKIP("no SIMD level on this CPU");
    for (int ti = 0; ti < NTYPES; ti++) {
        uint32_t type = ALL_TYPES[ti];
        int64_t k = k_for(type, 0), nt = 5;
        size_t ab = quant_act_row_bytes(type, k);
        float *x = malloc(sizeof(float) * (size_t)(k * nt));
        uint8_t *ref = calloc(ab, (size_t)nt), *got = calloc(ab, (size_t)nt);
        CHECK(x && ref && got);
        rand_acts(x, k * nt, 96);
        x[5] = 0.5f, x[6] = -0.5f, x[7] = 1.5f; /* rounding ties once scaled by an exact 127/1 */
        x[8] = 1.0f, x[9] = -1.0f, x[10] = 127.0f / 254.0f;
        x[k + 3] = NAN, x[2 * k + 40] = INFINITY, x[3 * k + 7] = 1e30f;
        quant_set_isa(QUANT_ISA_REF);
        quant_act_prepare(type, x, k, nt, (size_t)k, ref);
        for (int li = 1; li < nl; li++) {
            quant_set_isa(lv[li]);
            quant_act_prepare(type, x, k, nt, (size_t)k, got);
            for (int64_t t = 0; t < nt; t++) {
                size_t used = is_float_type(type) ? (size_t)k * 4
                              : (type == QT_Q8_0 || type == QT_Q4_0) ? (size_t)k + (size_t)k / 32 * 8
                                                                     : (size_t)k + (size_t)k / 256 * 4 + (size_t)k / 8;
                CHECKF(memcmp(ref + t * ab, got + t * ab, used) == 0, "%s %s token %lld", quant_type_name(type),
                       quant_isa_name(lv[li]), (long long)t);
            }
        }
        free(x), free(ref), free(got);
    }
    quant_set_isa(QUANT_ISA_AVX512);
}

static void test_isa_api(void) {
    int top = quant_set_isa(QUANT_ISA_AVX512);
    CHECK(top >= QUANT_ISA_REF && top <= QUANT_ISA_AVX512);
    CHECK(quant_isa() == top);
    CHECK(quant_set_isa(QUANT_ISA_REF) == QUANT_ISA_REF && quant_isa() == QUANT_ISA_REF);
    CHECK_STR(quant_isa_name(QUANT_ISA_REF), "ref");
    CHECK_STR(quant_isa_name(QUANT_ISA_AVX2), "avx2");
    CHECK_STR(quant_isa_name(QUANT_ISA_AVX512), "avx512-vnni");
    CHECK(quant_act_row_bytes(QT_Q4_K, 100) == 0 && quant_act_row_bytes(QT_Q8_0, 33) == 0);
    CHECK(quant_act_row_bytes(QT_F32, 172) == 704);
    quant_set_isa(top);
    printf("  kernels: %s\n", quant_isa_name(top));
}

int main(void) {
    TEST_RUN(test_isa_api);
    TEST_RUN(test_known_f16_bf16);
    TEST_RUN(test_known_q8_0_q4_0);
    TEST_RUN(test_known_q4_K_q5_K);
    TEST_RUN(test_known_q6_K);
    TEST_RUN(test_known_matmul);
    TEST_RUN(test_act_prepare);
    TEST_RUN(test_ref_vs_float64);
    TEST_RUN(test_prepare_same_bytes);
    TEST_RUN(test_simd_dequant_exact);
    TEST_RUN(test_simd_matmul_vs_ref);
    TEST_RUN(test_determinism);
    TEST_RUN(test_q8_long_rows);
    return TEST_DONE();
}
