/* test_quantize.c - quant_quantize_row (src/engine/kernels/quantize.c): every type
 * writes valid blocks in the GGUF layout, and quantize -> dequantize stays
 * within an error bound on Gaussian and adversarial rows.
 *
 * The dequantizer here is written independently of src/engine/kernels/quant.c, from
 * the GGUF block layouts, so the blocks are checked against the format and
 * not against a second copy of the same understanding.  The layout itself is
 * checked against llama.cpp: when ../shared/refs is present, the tensors of
 * llama-quantize's tiny-qwen3 files, decoded here, must match the F32
 * originals within the quantization error; libinfer's quant_dequant_row is
 * then checked against this one.  The figures printed ("rel rms")
 * are relative RMS errors: sqrt(sum (x - y)^2 / sum x^2). */
#include "gguf/gguf.h"
#include "kernels/quant.h"
#include "test.h"

#include <stdint.h>

/* ---- independent reference dequantizer ------------------------------------ */

/* Scale j and min j of a K-quant 12-byte scale field. */
static void k_scale(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static void ref_dequant(uint32_t type, const void *src, float *y, int64_t n) {
    const uint8_t *p = src;
    switch (type) {
    case QT_F32: memcpy(y, src, (size_t)n * 4); return;
    case QT_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            y[i] = quant_f16_to_f32(h);
        }
        return;
    case QT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            y[i] = quant_bf16_to_f32(h);
        }
        return;
    }
    int64_t nb = n / quant_block_elems(type);
    for (int64_t b = 0; b < nb; b++) {
        switch (type) {
        case QT_Q8_0: {
            const block_q8_0 *x = (const block_q8_0 *)p + b;
            float d = quant_f16_to_f32(x->d);
            for (int i = 0; i < 32; i++) y[32 * b + i] = d * (float)x->qs[i];
            break;
        }
        case QT_Q4_0: {
            const block_q4_0 *x = (const block_q4_0 *)p + b;
            float d = quant_f16_to_f32(x->d);
            for (int i = 0; i < 16; i++) {
                y[32 * b + i] = d * (float)((x->qs[i] & 15) - 8);
                y[32 * b + i + 16] = d * (float)((x->qs[i] >> 4) - 8);
            }
            break;
        }
        case QT_Q4_K:
        case QT_Q5_K: {
            const uint8_t *scales, *qs, *qh = NULL;
            qhalf hd, hm;
            if (type == QT_Q4_K) {
                const block_q4_K *x = (const block_q4_K *)p + b;
                hd = x->d; hm = x->dmin; scales = x->scales; qs = x->qs;
            } else {
                const block_q5_K *x = (const block_q5_K *)p + b;
                hd = x->d; hm = x->dmin; scales = x->scales; qs = x->qs; qh = x->qh;
            }
            float d = quant_f16_to_f32(hd), dm = quant_f16_to_f32(hm);
            float *o = y + 256 * b;
            for (int e = 0; e < 256; e++) {
                int sub = e / 32, chunk = e / 64, l = e % 32, hi = (e % 64) >= 32;
                int q = hi ? qs[32 * chunk + l] >> 4 : qs[32 * chunk + l] & 15;
                if (qh && (qh[l] >> sub) & 1) q += 16;
                int sc, mn;
                k_scale(scales, sub, &sc, &mn);
                o[e] = d * (float)sc * (float)q - dm * (float)mn;
            }
            break;
        }
        case QT_Q6_K: {
            const block_q6_K *x = (const block_q6_K *)p + b;
            float d = quant_f16_to_f32(x->d);
            float *o = y + 256 * b;
            for (int e = 0; e < 256; e++) {
                int h = e / 128, r = e % 128, g = r / 32, l = r % 32;
                uint8_t lb = x->ql[64 * h + l + 32 * (g & 1)];
                int lo = g < 2 ? lb & 15 : lb >> 4;
                int top = (x->qh[32 * h + l] >> (2 * g)) & 3;
                int q = (lo | (top << 4)) - 32;
                o[e] = d * (float)x->scales[8 * h + r / 16] * (float)q;
            }
            break;
        }
        }
    }
}

/* ---- helpers ------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_unit(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }
static float rng_gauss(void) {
    return (float)(sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit()));
}

static const uint32_t ALL_TYPES[] = {QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_K, QT_Q5_K, QT_Q6_K};
#define N_TYPES (sizeof ALL_TYPES / sizeof ALL_TYPES[0])

/* The error target of each type on a Gaussian row (relative RMS). */
static double bound_of(uint32_t t) {
    switch (t) {
    case QT_F32: return 0;
    case QT_F16: return 5e-4;
    case QT_BF16: return 4e-3;
    case QT_Q8_0: return 0.005;
    case QT_Q6_K: return 0.02;
    case QT_Q5_K: return 0.04;
    case QT_Q4_K: return 0.08;
    case QT_Q4_0: return 0.10;
    }
    return 0;
}

#define ROW 4096

/* Quantizes x, decodes it with the reference above into y; returns bytes. */
static size_t roundtrip(uint32_t t, const float *x, float *y, int64_t n, void *buf) {
    size_t rb = quant_row_bytes(t, n);
    memset(buf, 0xA5, rb);
    quant_quantize_row(t, x, buf, n);
    ref_dequant(t, buf, y, n);
    return rb;
}

static double rel_rms(const float *x, const float *y, int64_t n) {
    double e = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    return s > 0 ? sqrt(e / s) : sqrt(e);
}

static unsigned char qbuf[ROW * 4 + 64];
static float xs[ROW], ys[ROW];

/* ---- tests --------------------------------------------------------------- */

/* F16/BF16 round to nearest, ties to even: every midpoint between two
 * adjacent representable values goes to the one with an even mantissa. */
static void test_f16_bf16_round_to_nearest_even(void) {
    for (uint32_t h = 0; h < 0x7bff; h++) {
        float a = quant_f16_to_f32((qhalf)h), b = quant_f16_to_f32((qhalf)(h + 1));
        float v[3] = {a, a + (b - a) * 0.5f, -(a + (b - a) * 0.5f)};
        qhalf out[3];
        quant_quantize_row(QT_F16, v, out, 3);
        CHECKF(out[0] == h, "f16 %#x does not round-trip", h);
        uint32_t even = (h & 1) ? h + 1 : h;
        CHECKF(out[1] == even, "midpoint above %#x gave %#x, want %#x", h, out[1], even);
        CHECKF(out[2] == (even | 0x8000), "negative midpoint above %#x gave %#x", h, out[2]);
    }
    for (uint32_t h = 0; h < 0x7f7f; h += 7) {
        float a = quant_bf16_to_f32((uint16_t)h), b = quant_bf16_to_f32((uint16_t)(h + 1));
        float v[2] = {a, a + (b - a) * 0.5f};
        uint16_t out[2];
        quant_quantize_row(QT_BF16, v, out, 2);
        CHECKF(out[0] == h, "bf16 %#x does not round-trip", h);
        CHECKF(out[1] == ((h & 1) ? h + 1 : h), "bf16 midpoint above %#x gave %#x", h, out[1]);
    }
    /* Just above a midpoint rounds up, just below rounds down. */
    float v[2] = {nextafterf(1.0f + 0x1p-11f, 2.0f), nextafterf(1.0f + 0x1p-11f, 0.0f)};
    qhalf o[2];
    quant_quantize_row(QT_F16, v, o, 2);
    CHECK_EQ_INT(o[0], 0x3c01);
    CHECK_EQ_INT(o[1], 0x3c00);
}

/* Each quantized type reaches its error target on a Gaussian row. */
static void test_gaussian_error_bounds(void) {
    for (size_t k = 0; k < N_TYPES; k++) {
        uint32_t t = ALL_TYPES[k];
        double worst = 0;
        for (int trial = 0; trial < 4; trial++) {
            for (int i = 0; i < ROW; i++) xs[i] = 0.02f * rng_gauss();
            roundtrip(t, xs, ys, ROW, qbuf);
            double r = rel_rms(xs, ys, ROW);
            if (r > worst) worst = r;
        }
        printf("  %-5s gaussian rel rms %.4f%% (bound %.2f%%)\n", quant_type_name(t), 100 * worst,
               100 * bound_of(t));
        CHECKF(worst <= bound_of(t), "%s: %.5f > %.5f", quant_type_name(t), worst, bound_of(t));
    }
}

/* The fields of every block are in range: fp16 scales finite and (for the
 * affine K-quants) not negative, Q6_K scales never -128, Q8_0 levels never
 * -128, on Gaussian and adversarial rows. */
static int block_fields_ok(uint32_t t, const void *buf, int64_t n) {
    int64_t nb = n / quant_block_elems(t);
    for (int64_t b = 0; b < nb; b++) {
        switch (t) {
        case QT_Q8_0: {
            const block_q8_0 *x = (const block_q8_0 *)buf + b;
            if (!isfinite(quant_f16_to_f32(x->d))) return 0;
            for (int i = 0; i < 32; i++)
                if (x->qs[i] == -128) return 0;
            break;
        }
        case QT_Q4_0:
            if (!isfinite(quant_f16_to_f32(((const block_q4_0 *)buf + b)->d))) return 0;
            break;
        case QT_Q4_K: {
            const block_q4_K *x = (const block_q4_K *)buf + b;
            float d = quant_f16_to_f32(x->d), m = quant_f16_to_f32(x->dmin);
            if (!isfinite(d) || !isfinite(m) || d < 0 || m < 0) return 0;
            break;
        }
        case QT_Q5_K: {
            const block_q5_K *x = (const block_q5_K *)buf + b;
            float d = quant_f16_to_f32(x->d), m = quant_f16_to_f32(x->dmin);
            if (!isfinite(d) || !isfinite(m) || d < 0 || m < 0) return 0;
            break;
        }
        case QT_Q6_K: {
            const block_q6_K *x = (const block_q6_K *)buf + b;
            if (!isfinite(quant_f16_to_f32(x->d))) return 0;
            for (int i = 0; i < 16; i++)
                if (x->scales[i] == -128) return 0;
            break;
        }
        }
    }
    return 1;
}

enum { ROW_ZERO, ROW_CONST_POS, ROW_CONST_NEG, ROW_OUTLIER, ROW_TINY, ROW_NEGATIVE, ROW_WIDE, ROW_NONFINITE };
static const char *const ROW_NAMES[] = {"zeros", "const+", "const-", "outlier", "tiny", "negatives", "wide", "nonfinite"};

static void make_row(int kind, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = rng_gauss();
        switch (kind) {
        case ROW_ZERO: x[i] = 0; break;
        case ROW_CONST_POS: x[i] = 0.37f; break;
        case ROW_CONST_NEG: x[i] = -1.5f; break;
        case ROW_OUTLIER: x[i] = 0.02f * g; break;
        case ROW_TINY: x[i] = 1e-3f * g; break;
        case ROW_NEGATIVE: x[i] = -fabsf(0.02f * g); break;
        case ROW_WIDE: x[i] = g * (float)((i / 64) % 5 + 1) * 3.0f; break; /* mixed block scales */
        case ROW_NONFINITE: x[i] = g; break;
        }
    }
    if (kind == ROW_OUTLIER) x[1000] = 40.0f; /* 2000 sigma */
    if (kind == ROW_NONFINITE) {
        x[5] = NAN;
        x[300] = INFINITY;
        x[301] = -INFINITY;
    }
}

static void test_adversarial_rows(void) {
    for (int kind = ROW_ZERO; kind <= ROW_NONFINITE; kind++) {
        make_row(kind, xs, ROW);
        for (size_t k = 0; k < N_TYPES; k++) {
            uint32_t t = ALL_TYPES[k];
            if (t == QT_F32) continue;
            roundtrip(t, xs, ys, ROW, qbuf);
            const char *tn = quant_type_name(t), *rn = ROW_NAMES[kind];
            CHECKF(block_fields_ok(t, qbuf, ROW), "%s/%s: block field out of range", tn, rn);
            if (kind == ROW_NONFINITE) {
                /* no crash; non-finite values may only appear for F16/BF16 (inf stays inf) */
                if (t == QT_F16 || t == QT_BF16) continue;
                for (int i = 0; i < ROW; i++) CHECKF(isfinite(ys[i]), "%s: y[%d] = %g", tn, i, ys[i]);
                continue;
            }
            if (kind == ROW_ZERO) {
                for (int i = 0; i < ROW; i++) CHECKF(ys[i] == 0.0f, "%s: zero row gave y[%d] = %g", tn, i, ys[i]);
                continue;
            }
            if (kind == ROW_CONST_POS || kind == ROW_CONST_NEG) {
                /* only the rounding of a stored scale (fp16: 2^-11 relative) or
                 * of the value itself (bf16: 2^-9) may show */
                float tol = t == QT_BF16 ? 4e-3f : 2e-3f;
                for (int i = 0; i < ROW; i++)
                    CHECKF(fabsf(ys[i] - xs[i]) <= tol * fabsf(xs[i]), "%s/%s: y[%d] = %.7g for %.7g", tn, rn,
                           i, ys[i], xs[i]);
                continue;
            }
            double r = rel_rms(xs, ys, ROW), bound = bound_of(t);
            if (kind == ROW_TINY) bound *= 1.5; /* fp16 sub-block scales go subnormal */
            if (kind == ROW_NEGATIVE && (t == QT_Q4_0 || t == QT_Q8_0 || t == QT_Q6_K))
                bound *= 2; /* a symmetric grid spends half its levels on the empty side */
            printf("  %-5s %-9s rel rms %.4f%%\n", tn, rn, 100 * r);
            CHECKF(r <= bound, "%s/%s: rel rms %.5f > %.5f", tn, rn, r, bound);
            if (kind == ROW_OUTLIER) {
                CHECKF(fabsf(ys[1000] - xs[1000]) <= 0.01f * xs[1000], "%s: outlier %g -> %g", tn, xs[1000],
                       ys[1000]);
                /* blocks away from the outlier's own block keep the Gaussian error */
                int64_t be = quant_block_elems(t);
                int64_t start = (1000 / be + 1) * be;
                double r2 = rel_rms(xs + start, ys + start, ROW - start);
                CHECKF(r2 <= bound_of(t), "%s: rows after the outlier block %.5f", tn, r2);
            }
        }
    }
}

/* Rows of several blocks: block b's values are decoded from block b (no
 * cross-talk), and quantizing is deterministic. */
static void test_blocks_independent_and_deterministic(void) {
    static unsigned char a[ROW * 4], b2[ROW * 4];
    for (size_t k = 0; k < N_TYPES; k++) {
        uint32_t t = ALL_TYPES[k];
        int64_t be = quant_block_elems(t) < 32 ? 32 : quant_block_elems(t);
        int64_t n = 3 * be;
        for (int64_t i = 0; i < n; i++) xs[i] = rng_gauss();
        size_t rb = quant_row_bytes(t, n);
        quant_quantize_row(t, xs, a, n);
        quant_quantize_row(t, xs, b2, n);
        CHECKF(memcmp(a, b2, rb) == 0, "%s not deterministic", quant_type_name(t));
        /* Quantizing the middle block alone gives the same bytes. */
        size_t blk = quant_row_bytes(t, be);
        quant_quantize_row(t, xs + be, b2, be);
        CHECKF(memcmp(a + blk, b2, blk) == 0, "%s block depends on its neighbours", quant_type_name(t));
    }
}

/* The tensors of llama-quantize's tiny-qwen3 files, decoded by the reference
 * above, are the F32 originals within the quantization error: this pins
 * our reading of each layout to llama.cpp's.  Our own quantizer on the same
 * F32 weights must do at least about as well as llama-quantize did. */
static void test_layout_matches_llamacpp_files(void) {
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/refs/tiny-qwen3-F32.gguf", test_shared_dir());
    gguf_file *f32;
    if (gguf_open(path, &f32, err, sizeof err) < 0) TEST_SKIP("%s not readable (%s)", path, err);
    static const struct { const char *file; uint32_t type; } FILES[] = {
        {"tiny-qwen3-F16", QT_F16}, {"tiny-qwen3-BF16", QT_BF16}, {"tiny-qwen3-Q8_0", QT_Q8_0},
        {"tiny-qwen3-Q6_K", QT_Q6_K}, {"tiny-qwen3-Q5_K", QT_Q5_K}, {"tiny-qwen3-Q4_K", QT_Q4_K},
        {"tiny-qwen3-Q4_0", QT_Q4_0},
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0] && !failed; i++) {
        snprintf(path, sizeof path, "%s/refs/%s.gguf", test_shared_dir(), FILES[i].file);
        gguf_file *q;
        if (gguf_open(path, &q, err, sizeof err) < 0) {
            printf("  %s: %s\n", path, err);
            failed = 1;
            break;
        }
        const char *names[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight"};
        for (size_t j = 0; j < 3 && !failed; j++) {
            const gguf_tensor *a = gguf_find_tensor(f32, names[j]), *b = gguf_find_tensor(q, names[j]);
            if (!a || !b || a->type != QT_F32 || b->type != FILES[i].type || a->ne[0] != b->ne[0] ||
                a->ne[1] != b->ne[1]) {
                printf("  %s: tensor %s missing or of unexpected type/shape\n", FILES[i].file, names[j]);
                failed = 1;
                break;
            }
            int64_t n = a->ne[0] * a->ne[1];
            float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4), *z = malloc((size_t)n * 4);
            void *mine = malloc(quant_row_bytes(FILES[i].type, n));
            if (!x || !y || !z || !mine) {
                failed = 1;
            } else {
                memcpy(x, a->data, (size_t)n * 4);
                ref_dequant(b->type, b->data, y, n);
                double theirs = rel_rms(x, y, n);
                quant_quantize_row(FILES[i].type, x, mine, n);
                ref_dequant(FILES[i].type, mine, z, n);
                double ours = rel_rms(x, z, n);
                if (j == 0)
                    printf("  %-5s %-20s llama-quantize rel rms %.4f%%, ours %.4f%%\n",
                           quant_type_name(FILES[i].type), names[j], 100 * theirs, 100 * ours);
                /* a misread layout is off by tens of percent, not by a fraction */
                if (theirs > 2 * bound_of(FILES[i].type)) {
                    printf("  %s %s: decoded llama.cpp data is off by %.5f: layout misread\n", FILES[i].file,
                           names[j], theirs);
                    failed = 1;
                }
                if (ours > theirs * 1.05 + 1e-7) {
                    printf("  %s %s: ours %.5f worse than llama-quantize %.5f\n", FILES[i].file, names[j], ours,
                           theirs);
                    failed = 1;
                }
            }
            free(x); free(y); free(z); free(mine);
        }
        gguf_close(q);
    }
    gguf_close(f32);
    CHECK(!failed);
}

/* libinfer's own dequantizer (quant.c) and the independent one above read
 * our blocks the same way (up to float rounding of the scale products). */
static void test_library_dequantizer_agrees(void) {
    static float z[ROW];
    for (size_t k = 0; k < N_TYPES; k++) {
        uint32_t t = ALL_TYPES[k];
        for (int i = 0; i < ROW; i++) xs[i] = rng_gauss() * (i % 300 == 0 ? 30.0f : 1.0f);
        roundtrip(t, xs, ys, ROW, qbuf);
        quant_dequant_row(t, qbuf, z, ROW);
        for (int i = 0; i < ROW; i++)
            CHECKF(fabsf(z[i] - ys[i]) <= 1e-6f * (1.0f + fabsf(ys[i])), "%s: y[%d] = %.9g vs %.9g",
                   quant_type_name(t), i, z[i], ys[i]);
    }
}

int main(void) {
    TEST_RUN(test_f16_bf16_round_to_nearest_even);
    TEST_RUN(test_gaussian_error_bounds);
    TEST_RUN(test_adversarial_rows);
    TEST_RUN(test_blocks_independent_and_deterministic);
    TEST_RUN(test_layout_matches_llamacpp_files);
    TEST_RUN(test_library_dequantizer_agrees);
    return TEST_DONE();
}
