/* test_encoder.c - encoder models (bert, nomic-bert) and their kernels,
 * the parts that need no Python (tests/integration/test_encoder.py holds
 * the engine to a float64 reference).
 *
 * - Kernels (kernels/nn.h): every SIMD version against the plain C
 *   reference: GELU, SwiGLU and the attention products bit for bit,
 *   LayerNorm and softmax to rounding; the exponential against libm, GELU
 *   against ggml's tanh formula through fp16, rotary positions against a
 *   direct rotation; the batch Q8_0 product against its stated arithmetic,
 *   bit for bit, and against quant_matmul.
 * - Models written by gguf-gen (next to this binary, ../gguf-gen): info,
 *   refusals both ways (decoding an encoder, embedding with a decoder),
 *   context limits, bad parameters, batched equals alone (and any thread
 *   count, and passes of any size) bit for bit, pooling and normalisation,
 *   long inputs refused or cut into windows equal to embedding the windows
 *   by hand.
 * - The embedding scheduler: concurrent clients get infer_embed's vectors
 *   bit for bit; a full queue refuses; cancel, timeout and free end
 *   requests with the right reason exactly once; errors come through
 *   on_done; statistics count. */
#include "test.h"

#include "infer.h"
#include "kernels/nn.h"
#include "kernels/quant.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double urand(void) { /* [0, 1) */
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1p-53;
}
static float nrand(float scale) { return (float)((urand() * 2 - 1) * scale); }

static const nn_table *levels[3];
static const char *level_names[3] = {"ref", "avx2", "avx512"};
static int n_levels;

static void find_levels(void) {
    int saved = quant_isa();
    n_levels = 0;
    levels[n_levels++] = nn_ref();
    if (quant_set_isa(QUANT_ISA_AVX2) == QUANT_ISA_AVX2) levels[n_levels++] = nn_avx2_table();
    if (quant_set_isa(QUANT_ISA_AVX512) == QUANT_ISA_AVX512) levels[n_levels++] = nn_avx512_table();
    quant_set_isa(saved);
}

static int same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

/* The same bits, or both NaN (SIMD conversions may keep another payload). */
static int same_values(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a) != 0 && !(isnan(a[i]) && isnan(b[i]))) return 0;
    return 1;
}

/* ---- kernels ------------------------------------------------------------------ */

static void test_gelu_formula(void) {
    /* every fp16 value in (-10, 10): ggml's tanh formula in double, rounded
     * to fp16, within one fp16 step (f32 evaluation may round the other
     * way at a boundary); and mostly exactly */
    int exact = 0, total = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float x = quant_f16_to_f32((qhalf)h);
        if (!(x > -10.0f && x < 10.0f)) continue;
        double g = 0.5 * x * (1.0 + tanh(0.7978845608028654 * x * (1.0 + 0.044715 * (double)x * x)));
        float want = quant_f16_to_f32(quant_f32_to_f16((float)g)), got = nn_gelu1(x);
        float ulp = fabsf(quant_f16_to_f32((qhalf)(quant_f32_to_f16(want) + 1)) - want);
        CHECKF(fabsf(got - want) <= ulp, "h=%04x x=%g got %g want %g", h, x, got, want);
        exact += got == want;
        total++;
    }
    CHECKF(exact >= total - total / 200, "only %d of %d exact", exact, total);
    CHECK_NEAR(nn_gelu1(1.0f), 0.8413f, 1e-3);
    CHECK(nn_gelu1(0.0f) == 0.0f && nn_gelu1(-10.0f) == 0.0f && nn_gelu1(10.0f) == 10.0f);
    /* the input is rounded to fp16 first, as ggml's table lookup does */
    CHECK(nn_gelu1(1.0f + 1e-5f) == nn_gelu1(1.0f));
}

static void test_gelu_simd(void) {
    enum { N = 4099 };
    static float x[N], b[N], y0[N], y1[N], yb[N];
    for (int i = 0; i < N; i++) x[i] = nrand(12.0f), b[i] = nrand(1.0f);
    float special[] = {-10.0f, 10.0f, -9.9999f, 9.9999f, -10.001f, 10.001f, 0.0f, -0.0f, 1e-8f, -1e-8f,
                       65504.0f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN, 3.0e-5f, 6.1e-5f};
    memcpy(x, special, sizeof special);
    memcpy(y0, x, sizeof x);
    levels[0]->gelu(y0, NULL, N);
    CHECK(y0[0] == 0.0f && y0[1] == 10.0f && y0[4] == 0.0f && y0[5] == 10.001f && y0[13] == INFINITY &&
          y0[14] == 0.0f && isnan(y0[15]));
    memcpy(yb, x, sizeof x); /* with a bias: GELU of the sum */
    levels[0]->gelu(yb, b, N);
    for (int i = 20; i < N; i++) {
        float v = x[i] + b[i];
        y1[i] = v;
        levels[0]->gelu(y1 + i, NULL, 1);
        CHECK(memcmp(&y1[i], &yb[i], 4) == 0);
    }
    for (int l = 1; l < n_levels; l++)
        for (int n = 1; n <= N; n += n < 40 ? 1 : 997) {
            memcpy(y1, x, sizeof x);
            levels[l]->gelu(y1, NULL, n);
            CHECKF(same_values(y0, y1, (size_t)n), "%s gelu differs from ref at n=%d", level_names[l], n);
            memcpy(y1, x, sizeof x);
            levels[l]->gelu(y1, b, n);
            CHECKF(same_values(yb, y1, (size_t)n), "%s gelu+bias differs from ref at n=%d", level_names[l], n);
        }
}

static void test_silu_add(void) {
    enum { N = 1000 };
    static float g[N], u[N], y0[N], y1[N];
    for (int i = 0; i < N; i++) g[i] = nrand(30.0f), u[i] = nrand(2.0f);
    g[0] = 0.0f, g[1] = -0.0f, g[2] = 100.0f, g[3] = -100.0f;
    memcpy(y0, g, sizeof g);
    levels[0]->silu_mul(y0, u, N);
    for (int i = 0; i < N; i++)
        CHECKF(fabs(y0[i] - g[i] / (1.0 + exp(-(double)g[i])) * u[i]) <= 1e-6 * (1 + fabs(g[i] * u[i])),
               "silu ref i=%d", i);
    for (int l = 1; l < n_levels; l++)
        for (int n = 1; n <= N; n += n < 40 ? 1 : 191) {
            memcpy(y1, g, sizeof g);
            levels[l]->silu_mul(y1, u, n);
            CHECKF(same_bits(y0, y1, (size_t)n), "%s silu_mul differs at n=%d", level_names[l], n);
            memcpy(y1, g, sizeof g);
            levels[l]->add(y1, u, n);
            for (int i = 0; i < n; i++) CHECK(y1[i] == g[i] + u[i]);
            CHECK(n == N || y1[n] == g[n]);
        }
}

static void test_expf(void) {
    /* within 4 ulp of exp over the range the softmax uses, and the edges */
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        float x = (float)(-87.0 + 175.0 * urand());
        if (x > 88.0f) x = 88.0f;
        double want = exp((double)x);
        float got = nn_expf(x);
        double ulp = nextafterf((float)want, INFINITY) - (float)want;
        double e = fabs(got - want) / ulp;
        if (e > worst) worst = e;
    }
    CHECKF(worst <= 4, "worst error %.2f ulp", worst);
    CHECK(nn_expf(0.0f) == 1.0f);
    CHECK(nn_expf(-100.0f) == 0.0f);
    CHECK(isinf(nn_expf(100.0f)));
    CHECK(isnan(nn_expf(NAN)));
}

static void test_softmax(void) {
    enum { N = 700 };
    static float x[N], y0[N], y1[N];
    for (int n = 1; n <= N; n += n < 40 ? 1 : 131) {
        for (int i = 0; i < n; i++) x[i] = nrand(20.0f);
        memcpy(y0, x, sizeof x);
        levels[0]->softmax(y0, n, 0.17f);
        double sum = 0;
        float mx = -INFINITY;
        for (int i = 0; i < n; i++) mx = fmaxf(mx, x[i] * 0.17f);
        double z = 0;
        for (int i = 0; i < n; i++) z += exp((double)(x[i] * 0.17f) - mx);
        for (int i = 0; i < n; i++) {
            sum += y0[i];
            double want = exp((double)(x[i] * 0.17f) - mx) / z;
            CHECKF(fabs(y0[i] - want) <= 1e-6 * want + 1e-12, "ref n=%d i=%d %g vs %g", n, i, y0[i], want);
        }
        CHECK_NEAR(sum, 1.0, 1e-5);
        for (int l = 1; l < n_levels; l++) {
            memcpy(y1, x, sizeof x);
            levels[l]->softmax(y1, n, 0.17f);
            for (int i = 0; i < n; i++)
                CHECKF(fabsf(y1[i] - y0[i]) <= 1e-6f * y0[i] + 1e-30f, "%s n=%d i=%d %g vs %g", level_names[l], n, i,
                       y1[i], y0[i]);
        }
    }
}

static void test_layernorm(void) {
    enum { N = 800 };
    static float x[N], r[N], rb[N], w[N], b[N], y0[N], y1[N];
    for (int n = 1; n <= N; n += n < 40 ? 1 : 97)
        for (int adds = 0; adds < 3; adds++) {
            for (int i = 0; i < n; i++) {
                x[i] = nrand(3.0f) + 5.0f, r[i] = nrand(1.0f), rb[i] = nrand(0.5f);
                w[i] = 1 + nrand(0.1f), b[i] = nrand(0.1f);
            }
            const float *ra = adds >= 1 ? r : NULL, *rba = adds >= 2 ? rb : NULL;
            memcpy(y0, x, sizeof x);
            levels[0]->layernorm(y0, ra, rba, w, b, n, 1e-12f);
            /* float64 check of the reference */
            double m = 0, v = 0, s[N];
            for (int i = 0; i < n; i++) s[i] = (double)x[i] + (ra ? r[i] : 0) + (rba ? rb[i] : 0), m += s[i];
            m /= n;
            for (int i = 0; i < n; i++) v += (s[i] - m) * (s[i] - m);
            v /= n;
            for (int i = 0; i < n; i++) {
                double want = n == 1 ? b[i] : (s[i] - m) / sqrt(v + 1e-12) * w[i] + b[i];
                CHECKF(fabs(y0[i] - want) <= 3e-5, "ref n=%d i=%d %g vs %g", n, i, y0[i], want);
            }
            for (int l = 1; l < n_levels; l++) {
                memcpy(y1, x, sizeof x);
                levels[l]->layernorm(y1, ra, rba, w, b, n, 1e-12f);
                for (int i = 0; i < n; i++)
                    CHECKF(fabsf(y1[i] - y0[i]) <= 3e-5f, "%s n=%d i=%d %g vs %g", level_names[l], n, i, y1[i], y0[i]);
            }
        }
}

static void test_attention_products(void) {
    static const int hds[] = {8, 16, 32, 48, 64, 80, 128};
    enum { NQ = 11, NP = 150, HD = 128 };
    static float q[NQ * HD], kt[HD * NP], s0[NQ * NP], s1[NQ * NP], v[NP * HD], o0[NQ * HD], o1[NQ * HD];
    for (size_t i = 0; i < sizeof q / sizeof *q; i++) q[i] = nrand(1);
    for (size_t i = 0; i < sizeof kt / sizeof *kt; i++) kt[i] = nrand(1);
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) v[i] = nrand(1);
    for (size_t h = 0; h < sizeof hds / sizeof *hds; h++)
        for (int nq = 1; nq <= NQ; nq += 3)
            for (int np = 1; np <= NP; np += np < 20 ? 1 : 37) {
                int hd = hds[h];
                levels[0]->qk(s0, NP, q, HD, nq, kt, NP, np, hd);
                levels[0]->pv(o0, HD, s0, NP, nq, v, HD, np, hd);
                /* the reference against a double sum */
                double want = 0;
                for (int d = 0; d < hd; d++) want += (double)q[(nq - 1) * HD + d] * kt[d * NP + np - 1];
                float got = s0[(nq - 1) * NP + np - 1];
                CHECKF(fabs(got - want) <= 1e-4, "qk ref %g vs %g", got, want);
                for (int l = 1; l < n_levels; l++) {
                    memset(s1, 0, sizeof s1);
                    memset(o1, 0, sizeof o1);
                    levels[l]->qk(s1, NP, q, HD, nq, kt, NP, np, hd);
                    levels[l]->pv(o1, HD, s0, NP, nq, v, HD, np, hd);
                    for (int i = 0; i < nq; i++) {
                        CHECKF(same_bits(s0 + i * NP, s1 + i * NP, (size_t)np), "%s qk differs hd=%d nq=%d np=%d",
                               level_names[l], hd, nq, np);
                        CHECKF(same_bits(o0 + i * HD, o1 + i * HD, (size_t)hd), "%s pv differs hd=%d nq=%d np=%d",
                               level_names[l], hd, nq, np);
                    }
                }
            }
}

static void test_rope(void) {
    float u[64], w[64], cs[64];
    for (int i = 0; i < 64; i++) u[i] = w[i] = nrand(1);
    for (int i = 0; i < 16; i++) {
        double th = 5.0 * pow(10000.0, -2.0 * i / 32);
        cs[2 * i] = (float)cos(th), cs[2 * i + 1] = (float)sin(th);
    }
    nn_rope_neox(u, cs, 32);
    for (int i = 0; i < 16; i++) {
        double th = 5.0 * pow(10000.0, -2.0 * i / 32);
        CHECK_NEAR(u[i], w[i] * cos(th) - w[i + 16] * sin(th), 1e-6);
        CHECK_NEAR(u[i + 16], w[i] * sin(th) + w[i + 16] * cos(th), 1e-6);
    }
    for (int i = 32; i < 64; i++) CHECK(u[i] == w[i]); /* past n_rot: untouched */
}

/* quant_matmul_batch's Q8_0 kernel: per (row, token), for each block in
 * order, acc = fma((float)dot, d_w * d_a, acc). */
static void test_batch_q8_0(void) {
    if (quant_set_isa(QUANT_ISA_AVX512) != QUANT_ISA_AVX512)
        TEST_SKIP("no AVX-512 VNNI: the batch kernel is quant_matmul");
    /* 4128: more blocks than the kernel takes, so quant_matmul's own */
    static const int ks[] = {32, 96, 384, 1536, 4096, 4128};
    for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
        int k = ks[ki], rows = 37, nt = 21;
        size_t rb = quant_row_bytes(QT_Q8_0, k), ab = quant_act_row_bytes(QT_Q8_0, k);
        uint8_t *w = malloc(rb * rows), *act = aligned_alloc(64, ab * nt);
        float *x = malloc(sizeof(float) * (size_t)k * nt), *row = malloc(sizeof(float) * k);
        float *y = calloc((size_t)rows * nt, sizeof *y), *y2 = calloc((size_t)rows * nt, sizeof *y2),
              *y3 = calloc((size_t)rows * nt, sizeof *y3);
        CHECK(w && act && x && row && y && y2 && y3);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < k; i++) row[i] = nrand(1);
            quant_quantize_row(QT_Q8_0, row, w + (size_t)r * rb, k);
        }
        /* a weight of -128 (never written by our quantizer, legal in a file) */
        ((block_q8_0 *)w)[0].qs[3] = -128;
        for (int i = 0; i < k * nt; i++) x[i] = nrand(2);
        quant_act_prepare(QT_Q8_0, x, k, nt, (size_t)k, act);
        quant_matmul_batch(QT_Q8_0, w, rb, k, 0, rows, act, nt, y, rows);
        /* in pieces: other row ranges and token counts give the same bits */
        quant_matmul_batch(QT_Q8_0, w, rb, k, 0, 5, act, nt, y2, rows);
        quant_matmul_batch(QT_Q8_0, w, rb, k, 5, rows, act, 3, y2, rows);
        quant_matmul_batch(QT_Q8_0, w, rb, k, 5, rows, act + 3 * ab, nt - 3, y2 + 3 * rows, rows);
        quant_matmul(QT_Q8_0, w, rb, k, 0, rows, act, nt, y3, rows);
        int64_t nb = k / 32;
        for (int t = 0; t < nt; t++)
            for (int r = 0; r < rows; r++) {
                const block_q8_0 *bw = (const block_q8_0 *)(w + (size_t)r * rb);
                const int8_t *qa = (const int8_t *)(act + (size_t)t * ab);
                const float *da = (const float *)(act + (size_t)t * ab + k);
                float acc = 0;
                for (int64_t b = 0; b < nb; b++) {
                    int32_t dot = 0;
                    for (int i = 0; i < 32; i++) dot += (int32_t)bw[b].qs[i] * qa[b * 32 + i];
                    acc = fmaf((float)dot, quant_f16_to_f32(bw[b].d) * da[b], acc);
                }
                float got = y[(size_t)t * rows + r];
                if (nb > QUANT_BATCH_MAX_BLOCKS) acc = y3[(size_t)t * rows + r];
                CHECKF(memcmp(&got, &acc, 4) == 0, "k=%d r=%d t=%d: %.9g vs %.9g", k, r, t, got, acc);
                CHECKF(memcmp(&got, &y2[(size_t)t * rows + r], 4) == 0, "k=%d r=%d t=%d: split differs", k, r, t);
                /* another summation order: rounding grows with the blocks */
                CHECKF(fabsf(got - y3[(size_t)t * rows + r]) <= 1e-5f * sqrtf((float)nb) * (1 + fabsf(got)),
                       "k=%d: vs quant_matmul %g %g", k, got, y3[(size_t)t * rows + r]);
            }
        free(w), free(act), free(x), free(row), free(y), free(y2), free(y3);
    }
}

/* ---- models ---------------------------------------------------------------------------- */

static char tmpdir[256], gen_path[1100];
static char bert_path[300], nomic_path[300], llama_path[300], bert_q8_path[300];
static int have_models;

/* gguf-gen sits next to the tests directory this binary is in. */
static int make_models(void) {
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 0;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) return 0;
    *slash = 0;
    snprintf(gen_path, sizeof gen_path, "%s/../gguf-gen", self);
    if (access(gen_path, X_OK) != 0) return 0;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_encoder.XXXXXX");
    if (!mkdtemp(tmpdir)) return 0;
    snprintf(bert_path, sizeof bert_path, "%s/bert.gguf", tmpdir);
    snprintf(bert_q8_path, sizeof bert_q8_path, "%s/bert-q8.gguf", tmpdir);
    snprintf(nomic_path, sizeof nomic_path, "%s/nomic.gguf", tmpdir);
    snprintf(llama_path, sizeof llama_path, "%s/llama.gguf", tmpdir);
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "'%s' -q --preset tiny-bert --type f32 --ctx 48 -o '%s' && '%s' -q --preset tiny-bert --type q8_0 "
             "--ctx 48 -o '%s' && '%s' -q --preset tiny-nomic-bert --type f16 --kv-heads 2 --ctx 48 -o '%s' && "
             "'%s' -q --preset tiny-llama -o '%s'",
             gen_path, bert_path, gen_path, bert_q8_path, gen_path, nomic_path, gen_path, llama_path);
    return system(cmd) == 0;
}

static void remove_models(void) {
    if (!tmpdir[0]) return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("  note: could not remove %s\n", tmpdir);
}

typedef struct {
    infer_model *m;
    infer_threadpool *tp;
    infer_ctx *c;
} rig;

static int rig_open(rig *r, const char *path, int threads, int32_t n_ctx, int32_t max_batch) {
    char err[512];
    memset(r, 0, sizeof *r);
    if (infer_model_load(path, &r->m, err, sizeof err) < 0) {
        printf("  load %s: %s\n", path, err);
        return -1;
    }
    r->tp = infer_threadpool_create(threads, err, sizeof err);
    infer_ctx_params cp = {.n_ctx = n_ctx, .max_batch = max_batch};
    if (!r->tp || infer_ctx_create(r->m, r->tp, &cp, &r->c, err, sizeof err) < 0) {
        printf("  ctx: %s\n", err);
        return -1;
    }
    return 0;
}

static void rig_close(rig *r) {
    infer_ctx_free(r->c);
    if (r->tp) infer_threadpool_free(r->tp);
    infer_model_unref(r->m);
}

static const char *TEXTS[] = {"hello world", "the quick brown fox jumps over the lazy dog",
                              "a", "", "embeddings: mean, cls or last?",
                              "zz qq xx some more words to make this one a little longer than the others"};
#define N_TEXTS (int32_t)(sizeof TEXTS / sizeof *TEXTS)

#define NEED_MODELS() \
    if (!have_models) TEST_SKIP("gguf-gen not found next to the tests (build it: make)")

static void test_info_and_refusals(void) {
    NEED_MODELS();
    rig b, l;
    char err[512];
    CHECK(rig_open(&b, bert_path, 1, 0, 0) == 0);
    CHECK(rig_open(&l, llama_path, 1, 0, 0) == 0);
    const infer_model_info *I = infer_model_get_info(b.m);
    CHECK_STR(I->arch, "bert");
    CHECK(I->is_encoder == 1 && I->pooling == INFER_POOL_MEAN);
    CHECK(infer_model_is_encoder(b.m) && infer_model_embed_dim(b.m) == 64);
    CHECK(!infer_model_is_encoder(l.m) && infer_model_embed_dim(l.m) == 0 && !infer_model_get_info(l.m)->is_encoder);
    CHECK(infer_ctx_n_ctx(b.c) == 48);
    /* an encoder does not decode; a decoder does not embed */
    infer_seq *sq;
    CHECK(infer_seq_create(b.c, &sq, err, sizeof err) < 0 && strstr(err, "encoder"));
    int32_t tok[2] = {101, 102};
    infer_batch_entry e = {NULL, tok, 2, INFER_LOGITS_LAST};
    CHECK(infer_decode(b.c, &e, 1, err, sizeof err) < 0 && strstr(err, "encoder"));
    infer_sched *s;
    CHECK(infer_sched_create(b.c, NULL, &s, err, sizeof err) < 0 && strstr(err, "infer_embed_sched_create"));
    float out[64];
    const int32_t *tp = tok;
    int32_t nt = 2;
    CHECK(infer_embed(l.c, &tp, &nt, 1, NULL, out, err, sizeof err) < 0 && strstr(err, "not an encoder"));
    CHECK(infer_embed_texts(l.c, TEXTS, NULL, 1, NULL, out, err, sizeof err) < 0 && strstr(err, "not an encoder"));
    CHECK(infer_embed_sched_create(l.c, NULL, &s, err, sizeof err) < 0 && strstr(err, "not an encoder"));
    /* each scheduler refuses the other kind's requests */
    CHECK(infer_sched_create(l.c, NULL, &s, err, sizeof err) == 0);
    infer_embed_request er = {TEXTS, NULL, 1, {0, 1, 0}, 0, NULL, NULL};
    CHECK(infer_embed_submit(s, &er, NULL, err, sizeof err) < 0 && strstr(err, "decodes"));
    infer_sched_free(s);
    CHECK(infer_embed_sched_create(b.c, NULL, &s, err, sizeof err) == 0);
    infer_request dr;
    memset(&dr, 0, sizeof dr);
    dr.prompt = tok;
    dr.n_prompt = 2;
    dr.max_tokens = 1;
    CHECK(infer_sched_submit(s, &dr, NULL, err, sizeof err) < 0 && strstr(err, "infer_embed_submit"));
    infer_sched_free(s);
    rig_close(&b);
    rig_close(&l);
    /* context limits */
    infer_model *m;
    infer_ctx *c;
    CHECK(infer_model_load(bert_path, &m, err, sizeof err) == 0);
    infer_threadpool *pool = infer_threadpool_create(1, err, sizeof err);
    infer_ctx_params cp = {.n_ctx = 49};
    CHECK(infer_ctx_create(m, pool, &cp, &c, err, sizeof err) < 0 && strstr(err, "exceeds the model's 48"));
    cp = (infer_ctx_params){.n_ctx = 40, .max_batch = 39};
    CHECK(infer_ctx_create(m, pool, &cp, &c, err, sizeof err) < 0 && strstr(err, "below the context"));
    infer_threadpool_free(pool);
    infer_model_unref(m);
}

static void test_bad_params(void) {
    NEED_MODELS();
    rig b;
    char err[512];
    float out[128];
    CHECK(rig_open(&b, bert_path, 1, 0, 0) == 0);
    int32_t ok[3] = {101, 200, 102}, badid[2] = {101, 512};
    const int32_t *t1 = ok, *t2 = badid;
    int32_t n3 = 3, n2 = 2, n0 = 0;
    infer_embed_params p;
    infer_embed_defaults(&p);
    p.pooling = 7;
    CHECK(infer_embed(b.c, &t1, &n3, 1, &p, out, err, sizeof err) < 0 && strstr(err, "pooling mode 7"));
    infer_embed_defaults(&p);
    p.long_input = 5;
    CHECK(infer_embed(b.c, &t1, &n3, 1, &p, out, err, sizeof err) < 0 && strstr(err, "long-input mode 5"));
    CHECK(infer_embed(b.c, &t1, &n0, 1, NULL, out, err, sizeof err) < 0 && strstr(err, "no tokens"));
    const int32_t *two[2] = {t1, t2};
    int32_t lens[2] = {3, 2};
    CHECK(infer_embed(b.c, two, lens, 2, NULL, out, err, sizeof err) < 0 && strstr(err, "input 1") &&
          strstr(err, "outside the vocabulary"));
    CHECK(infer_embed(b.c, &t2, &n2, 0, NULL, out, err, sizeof err) == 0); /* nothing to do */
    rig_close(&b);
}

/* Embeds TEXTS with the given rig, one call; returns malloc'd vectors. */
static float *embed_all(rig *r, const infer_embed_params *p, int32_t per_call) {
    int32_t dim = infer_model_embed_dim(r->m);
    float *v = malloc((size_t)N_TEXTS * dim * sizeof *v);
    char err[512];
    for (int32_t i = 0; v && i < N_TEXTS; i += per_call) {
        int32_t k = N_TEXTS - i < per_call ? N_TEXTS - i : per_call;
        if (infer_embed_texts(r->c, TEXTS + i, NULL, k, p, v + (size_t)i * dim, err, sizeof err) < 0) {
            printf("  embed: %s\n", err);
            free(v);
            return NULL;
        }
    }
    return v;
}

static void check_batched(const char *path) {
    rig a, b, c;
    CHECK(rig_open(&a, path, 2, 0, 0) == 0);
    CHECK(rig_open(&b, path, 1, 0, 0) == 0);
    CHECK(rig_open(&c, path, 3, 0, 48) == 0); /* passes of at most 48 tokens */
    int32_t dim = infer_model_embed_dim(a.m);
    static const int pools[] = {INFER_POOL_MEAN, INFER_POOL_CLS, INFER_POOL_LAST};
    for (int pi = 0; pi < 3; pi++) {
        infer_embed_params p;
        infer_embed_defaults(&p);
        p.pooling = pools[pi];
        float *all = embed_all(&a, &p, N_TEXTS), *one = embed_all(&b, &p, 1), *small = embed_all(&c, &p, N_TEXTS);
        CHECK(all && one && small);
        CHECKF(same_bits(all, one, (size_t)N_TEXTS * dim), "pool %d: batched differs from alone", pools[pi]);
        CHECKF(same_bits(all, small, (size_t)N_TEXTS * dim), "pool %d: small passes / 3 threads differ", pools[pi]);
        for (int32_t i = 0; i < N_TEXTS; i++) { /* normalised */
            double n2 = 0;
            for (int32_t d = 0; d < dim; d++) n2 += (double)all[i * dim + d] * all[i * dim + d];
            CHECK_NEAR(n2, 1.0, 1e-5);
        }
        p.normalize = 0;
        float *raw = embed_all(&a, &p, N_TEXTS);
        CHECK(raw);
        for (int32_t i = 0; i < N_TEXTS; i++) {
            double n2 = 0;
            for (int32_t d = 0; d < dim; d++) n2 += (double)raw[i * dim + d] * raw[i * dim + d];
            CHECK(fabs(n2 - 1.0) > 1e-3); /* the raw vector is not unit length */
            for (int32_t d = 0; d < dim; d++) CHECK_NEAR(raw[i * dim + d] / sqrt(n2), all[i * dim + d], 1e-6);
        }
        free(all), free(one), free(small), free(raw);
    }
    /* the three poolings give three different vectors */
    infer_embed_params p;
    infer_embed_defaults(&p);
    float v[3][64];
    for (int pi = 0; pi < 3; pi++) {
        char err[256];
        p.pooling = pools[pi];
        CHECK(infer_embed_texts(a.c, TEXTS + 1, NULL, 1, &p, v[pi], err, sizeof err) == 0);
    }
    CHECK(!same_bits(v[0], v[1], 16) && !same_bits(v[1], v[2], 16) && !same_bits(v[0], v[2], 16));
    rig_close(&a);
    rig_close(&b);
    rig_close(&c);
}

static void test_batched_bert(void) {
    NEED_MODELS();
    check_batched(bert_path);
}
static void test_batched_bert_q8_0(void) {
    NEED_MODELS();
    check_batched(bert_q8_path);
}
static void test_batched_nomic(void) {
    NEED_MODELS();
    check_batched(nomic_path);
}

/* Every kernel level (ref, AVX2, AVX-512 where the CPU has them) gives the
 * same vectors to rounding: the plain C path and the AVX2 one work too. */
static void test_isa_levels(void) {
    NEED_MODELS();
    static const char *const paths[] = {bert_path, bert_q8_path, nomic_path};
    int saved = quant_isa();
    for (int pi = 0; pi < 3; pi++) {
        float *v[3] = {NULL, NULL, NULL};
        int32_t dim = 64;
        for (int l = 0; l < n_levels; l++) {
            static const int isa[3] = {QUANT_ISA_REF, QUANT_ISA_AVX2, QUANT_ISA_AVX512};
            quant_set_isa(isa[l]);
            rig r;
            CHECK(rig_open(&r, paths[pi], 2, 0, 0) == 0);
            v[l] = embed_all(&r, NULL, N_TEXTS);
            rig_close(&r);
            CHECK(v[l]);
        }
        quant_set_isa(saved);
        for (int l = 1; l < n_levels; l++)
            for (int32_t i = 0; i < N_TEXTS * dim; i++)
                CHECKF(fabsf(v[l][i] - v[0][i]) <= 2e-4f, "%s: %s vs ref at %d: %g vs %g", paths[pi], level_names[l], i,
                       v[l][i], v[0][i]);
        for (int l = 0; l < n_levels; l++) free(v[l]);
    }
}

/* A long input cut into windows equals the token-weighted mean of the
 * windows embedded by hand (each [CLS] + share + [SEP], not normalised),
 * normalised at the end. */
static void check_long(const char *path, int32_t n_ctx) {
    rig r;
    CHECK(rig_open(&r, path, 2, n_ctx, 0) == 0);
    char err[512];
    const infer_vocab *voc = infer_model_vocab(r.m);
    const char *text = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                       "sixteen seventeen eighteen nineteen twenty and then some more words to be sure";
    int32_t ids[512];
    int64_t n = infer_tokenize(voc, text, strlen(text), INFER_TOK_ADD_SPECIAL, ids, 512, err, sizeof err);
    CHECK(n > 2 * n_ctx && n < 512);
    int32_t dim = infer_model_embed_dim(r.m);
    float got[64], win[64];
    infer_embed_params p;
    infer_embed_defaults(&p);
    const int32_t *tp = ids;
    int32_t nn = (int32_t)n;
    CHECK(infer_embed(r.c, &tp, &nn, 1, &p, got, err, sizeof err) < 0 && strstr(err, "exceeds the context") &&
          strstr(err, "refused"));
    p.long_input = INFER_LONG_CHUNK;
    CHECK(infer_embed(r.c, &tp, &nn, 1, &p, got, err, sizeof err) == 0);
    double acc[64] = {0}, wsum = 0;
    int32_t width = n_ctx - 2, body = nn - 2;
    infer_embed_params raw = p;
    raw.normalize = 0;
    for (int32_t off = 0; off < body; off += width) {
        int32_t len = body - off < width ? body - off : width, w[600];
        w[0] = ids[0];
        memcpy(w + 1, ids + 1 + off, (size_t)len * sizeof *w);
        w[len + 1] = ids[nn - 1];
        const int32_t *wp = w;
        int32_t wl = len + 2;
        CHECK(infer_embed(r.c, &wp, &wl, 1, &raw, win, err, sizeof err) == 0);
        for (int32_t d = 0; d < dim; d++) acc[d] += wl * (double)win[d];
        wsum += wl;
    }
    double n2 = 0;
    for (int32_t d = 0; d < dim; d++) n2 += (acc[d] / wsum) * (acc[d] / wsum);
    for (int32_t d = 0; d < dim; d++) CHECK_NEAR(got[d], acc[d] / wsum / sqrt(n2), 1e-6);
    /* without CLS/SEP at the ends: plain windows of n_ctx */
    const int32_t *inner = ids + 1;
    int32_t ni = nn - 2;
    CHECK(infer_embed(r.c, &inner, &ni, 1, &raw, got, err, sizeof err) == 0);
    memset(acc, 0, sizeof acc);
    wsum = 0;
    for (int32_t off = 0; off < ni; off += n_ctx) {
        const int32_t *wp = inner + off;
        int32_t wl = ni - off < n_ctx ? ni - off : n_ctx;
        CHECK(infer_embed(r.c, &wp, &wl, 1, &raw, win, err, sizeof err) == 0);
        for (int32_t d = 0; d < dim; d++) acc[d] += wl * (double)win[d];
        wsum += wl;
    }
    for (int32_t d = 0; d < dim; d++) CHECK_NEAR(got[d], acc[d] / wsum, 1e-6);
    rig_close(&r);
}

static void test_long_bert(void) {
    NEED_MODELS();
    check_long(bert_path, 16);
}
static void test_long_nomic(void) {
    NEED_MODELS();
    check_long(nomic_path, 20);
}

/* ---- the embedding scheduler -------------------------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_done, reason, n;
    float vec[8 * 64];
    int32_t n_tokens[8];
    char msg[256];
} eres;

static void eres_init(eres *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void on_edone(void *ud, int reason, const float *v, int32_t n, int32_t dim, const int32_t *nt, const char *msg) {
    eres *r = ud;
    pthread_mutex_lock(&r->mu);
    r->n_done++;
    r->reason = reason;
    r->n = n;
    if (v && n <= 8 && dim <= 64) {
        memcpy(r->vec, v, (size_t)n * dim * sizeof *v);
        memcpy(r->n_tokens, nt, (size_t)n * sizeof *nt);
    }
    if (msg) snprintf(r->msg, sizeof r->msg, "%s", msg);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static int eres_wait(eres *r) {
    pthread_mutex_lock(&r->mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60;
    while (!r->n_done)
        if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) != 0) break;
    int d = r->n_done;
    pthread_mutex_unlock(&r->mu);
    return d;
}

static infer_embed_request ereq_of(const char *const *texts, int32_t n, eres *r) {
    infer_embed_request q;
    memset(&q, 0, sizeof q);
    q.texts = texts;
    q.n = n;
    infer_embed_defaults(&q.params);
    q.on_done = on_edone;
    q.ud = r;
    return q;
}

typedef struct {
    infer_sched *s;
    int first;
    eres res;
    int rc;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    char err[256];
    infer_embed_request q = ereq_of(TEXTS + c->first, 2, &c->res);
    c->rc = infer_embed_submit(c->s, &q, NULL, err, sizeof err);
    if (c->rc == 0) eres_wait(&c->res);
    return NULL;
}

static void test_sched_matches_embed(void) {
    NEED_MODELS();
    rig a, b;
    char err[256];
    CHECK(rig_open(&a, bert_q8_path, 2, 0, 0) == 0);
    CHECK(rig_open(&b, bert_q8_path, 1, 0, 0) == 0);
    float *want = embed_all(&b, NULL, N_TEXTS);
    CHECK(want);
    infer_sched_params sp = {.max_queue = 16, .max_active = 3, .idle = 1};
    infer_sched *s;
    CHECK(infer_embed_sched_create(a.c, &sp, &s, err, sizeof err) == 0);
    client cl[N_TEXTS - 1];
    pthread_t th[N_TEXTS - 1];
    for (int i = 0; i < N_TEXTS - 1; i++) {
        cl[i].s = s;
        cl[i].first = i;
        eres_init(&cl[i].res);
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    for (int i = 0; i < N_TEXTS - 1; i++) pthread_join(th[i], NULL);
    int32_t dim = infer_model_embed_dim(a.m);
    for (int i = 0; i < N_TEXTS - 1; i++) {
        CHECK(cl[i].rc == 0 && cl[i].res.n_done == 1 && cl[i].res.reason == INFER_FINISH_STOP && cl[i].res.n == 2);
        CHECKF(same_bits(cl[i].res.vec, want + (size_t)i * dim, 2 * (size_t)dim), "client %d's vectors differ", i);
        CHECK(cl[i].res.n_tokens[0] >= 2);
    }
    infer_sched_stats st;
    infer_sched_get_stats(s, &st);
    CHECK(st.submitted == N_TEXTS - 1 && st.completed == N_TEXTS - 1 && st.errors == 0 && st.rejected == 0);
    CHECK(st.prompt_tokens > 0 && st.steps >= 1 && st.generated_tokens == 0);
    infer_sched_free(s);
    free(want);
    rig_close(&a);
    rig_close(&b);
}

/* Many long texts keep the scheduler busy for a while. */
#define BUSY_N 32
static const char *busy_texts[BUSY_N];
static char busy_buf[20000];

static void make_busy(void) {
    size_t n = 0;
    while (n + 30 < sizeof busy_buf)
        n += (size_t)snprintf(busy_buf + n, sizeof busy_buf - n, "word%zu and more ", n % 97);
    for (int i = 0; i < BUSY_N; i++) busy_texts[i] = busy_buf;
}

static void test_sched_queue_cancel_timeout(void) {
    NEED_MODELS();
    make_busy();
    rig a;
    char err[256];
    CHECK(rig_open(&a, bert_path, 1, 0, 64) == 0);
    infer_sched_params sp = {.max_queue = 2, .max_active = 1};
    infer_sched *s;
    CHECK(infer_embed_sched_create(a.c, &sp, &s, err, sizeof err) == 0);
    eres busy, queued, timed, extra, err_res;
    eres_init(&busy), eres_init(&queued), eres_init(&timed), eres_init(&extra), eres_init(&err_res);
    infer_embed_request q = ereq_of(busy_texts, BUSY_N, &busy);
    q.params.long_input = INFER_LONG_CHUNK;
    uint64_t id_busy, id_q;
    CHECK(infer_embed_submit(s, &q, &id_busy, err, sizeof err) == 0);
    /* let it become the active one, then fill the queue */
    for (int i = 0; i < 200; i++) {
        infer_sched_stats st;
        infer_sched_get_stats(s, &st);
        if (st.active == 1 && st.queued == 0) break;
        usleep(5000);
    }
    q = ereq_of(TEXTS, 2, &queued);
    CHECK(infer_embed_submit(s, &q, &id_q, err, sizeof err) == 0);
    q = ereq_of(TEXTS, 1, &timed);
    q.timeout_ms = 1;
    CHECK(infer_embed_submit(s, &q, NULL, err, sizeof err) == 0);
    q = ereq_of(TEXTS, 1, &extra);
    int full = infer_embed_submit(s, &q, NULL, err, sizeof err);
    CHECKF(full < 0 && strstr(err, "queue full"), "the third waiting request was not refused (%s)", err);
    usleep(20000); /* the 1 ms deadline passes while the busy request runs */
    CHECK(infer_sched_cancel(s, id_q) == 0);
    CHECK(infer_sched_cancel(s, id_busy) == 0);
    CHECK(infer_sched_cancel(s, 999999) == -1);
    CHECK(eres_wait(&busy) == 1 && busy.reason == INFER_FINISH_CANCELLED);
    CHECK(eres_wait(&queued) == 1 && queued.reason == INFER_FINISH_CANCELLED);
    CHECKF(eres_wait(&timed) == 1 && timed.reason == INFER_FINISH_TIMEOUT, "timed: %d done, reason %d", timed.n_done,
           timed.reason);
    /* a text over the context in refuse mode: an error through on_done */
    q = ereq_of(busy_texts, 1, &err_res);
    CHECK(infer_embed_submit(s, &q, NULL, err, sizeof err) == 0);
    CHECK(eres_wait(&err_res) == 1 && err_res.reason == INFER_FINISH_ERROR && strstr(err_res.msg, "text 0") &&
          strstr(err_res.msg, "exceeds the context"));
    /* bad requests fail the submit */
    q = ereq_of(TEXTS, 0, &extra);
    CHECK(infer_embed_submit(s, &q, NULL, err, sizeof err) < 0);
    q = ereq_of(TEXTS, 1, &extra);
    q.params.pooling = 9;
    CHECK(infer_embed_submit(s, &q, NULL, err, sizeof err) < 0 && strstr(err, "pooling"));
    infer_sched_stats st;
    infer_sched_get_stats(s, &st);
    CHECK(st.cancelled == 2 && st.timeouts == 1 && st.errors == 1 && st.rejected == 3 && st.completed == 4);
    /* freeing with work in flight cancels it, once each */
    eres last[3];
    int taken[3];
    for (int i = 0; i < 3; i++) {
        eres_init(&last[i]);
        q = ereq_of(busy_texts, BUSY_N, &last[i]);
        q.params.long_input = INFER_LONG_CHUNK;
        taken[i] = infer_embed_submit(s, &q, NULL, err, sizeof err) == 0;
    }
    CHECK(taken[0]);
    infer_sched_free(s);
    for (int i = 0; i < 3; i++)
        CHECK(taken[i] ? last[i].n_done == 1 && last[i].reason == INFER_FINISH_CANCELLED : last[i].n_done == 0);
    rig_close(&a);
}

int main(void) {
    find_levels();
    have_models = make_models();
    if (!have_models) printf("  note: gguf-gen not found next to the tests: model tests skip\n");
    TEST_RUN(test_gelu_formula);
    TEST_RUN(test_gelu_simd);
    TEST_RUN(test_silu_add);
    TEST_RUN(test_expf);
    TEST_RUN(test_softmax);
    TEST_RUN(test_layernorm);
    TEST_RUN(test_attention_products);
    TEST_RUN(test_rope);
    TEST_RUN(test_batch_q8_0);
    TEST_RUN(test_info_and_refusals);
    TEST_RUN(test_bad_params);
    TEST_RUN(test_batched_bert);
    TEST_RUN(test_batched_bert_q8_0);
    TEST_RUN(test_batched_nomic);
    TEST_RUN(test_isa_levels);
    TEST_RUN(test_long_bert);
    TEST_RUN(test_long_nomic);
    TEST_RUN(test_sched_matches_embed);
    TEST_RUN(test_sched_queue_cancel_timeout);
    remove_models();
    return TEST_DONE();
}
