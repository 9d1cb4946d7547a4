/* test_engine.c - the forward pass against independent references.
 *
 * - ../shared/refs: ten tiny llama/qwen2/qwen3 models in every supported
 *   weight type, with float64 logits for a fixed 48-token input and
 *   llama.cpp's logits and 32 greedy ids.  Ours must sit within 1e-4 (F32),
 *   1e-3 (F16/BF16) or 5e-2 (quantized) of the float64 logits, agree with
 *   llama.cpp's argmax wherever its top-two gap exceeds 1e-2, and continue
 *   greedily with exactly llama.cpp's 32 ids.
 * - stories260K (llama2.c's reference run): logits of positions 0-31 within
 *   1e-4, greedy ids of both reference cases.
 * - Batched equals unbatched, KV blocks come back, rejected batches change
 *   nothing, sampling is reproducible. */
#include "test.h"

#include "infer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char path_buf[1024];

static const char *shared_path(const char *rel) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", test_shared_dir(), rel);
    return path_buf;
}

static int file_exists(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static float *read_f32(const char *p, size_t n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    float *v = malloc(n * sizeof *v);
    if (v && fread(v, sizeof *v, n, f) != n) {
        free(v);
        v = NULL;
    }
    fclose(f);
    return v;
}

/* Reads whitespace-separated decimal ids; skips lines starting with '#'. */
static int read_ids(const char *p, int32_t *ids, int cap) {
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    int n = 0;
    long v;
    while (n < cap && fscanf(f, "%ld", &v) == 1) ids[n++] = (int32_t)v;
    fclose(f);
    return n;
}

static infer_threadpool *pool(int n) {
    char err[256];
    infer_threadpool *tp = infer_threadpool_create(n, err, sizeof err);
    if (!tp) printf("  threadpool: %s\n", err);
    return tp;
}

static int32_t argmax(const float *v, int n) {
    int32_t b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static float top2_gap(const float *v, int n) {
    float a = -1e30f, b = -1e30f;
    for (int i = 0; i < n; i++) {
        if (v[i] > a) {
            b = a;
            a = v[i];
        } else if (v[i] > b) {
            b = v[i];
        }
    }
    return a - b;
}

/* ---- ../shared/refs ------------------------------------------------------- */

static void check_ref_model(const char *name, double tol) {
    char p[1024];
    snprintf(p, sizeof p, "%s/refs/%s.gguf", test_shared_dir(), name);
    if (!file_exists(p)) TEST_SKIP("%s not found (../shared/refs absent)", p);
    char err[512];
    infer_model *m;
    CHECKF(infer_model_load(p, &m, err, sizeof err) == 0, "%s", err);
    const int N = 48, V = 512;
    int32_t toks[64];
    snprintf(p, sizeof p, "%s/refs/%s.tokens.txt", test_shared_dir(), name);
    CHECK(read_ids(p, toks, 64) == N);
    snprintf(p, sizeof p, "%s/refs/%s.f64ref.logits.f32", test_shared_dir(), name);
    float *ref = read_f32(p, (size_t)N * V);
    snprintf(p, sizeof p, "%s/refs/%s.llamacpp.logits.f32", test_shared_dir(), name);
    float *lcpp = read_f32(p, (size_t)N * V);
    int32_t greedy[32];
    snprintf(p, sizeof p, "%s/refs/%s.greedy32.txt", test_shared_dir(), name);
    int ng = read_ids(p, greedy, 32);
    CHECK(ref && lcpp && ng == 32);

    infer_threadpool *tp = pool(2);
    infer_ctx *c;
    infer_ctx_params cp = {.n_ctx = 128, .max_batch = 64};
    CHECKF(infer_ctx_create(m, tp, &cp, &c, err, sizeof err) == 0, "%s", err);
    infer_seq *s;
    CHECK(infer_seq_create(c, &s, err, sizeof err) == 0);
    infer_batch_entry e = {s, toks, N, INFER_LOGITS_ALL};
    CHECKF(infer_decode(c, &e, 1, err, sizeof err) == 0, "%s", err);
    double maxdiff = 0;
    int argmax_bad = 0;
    for (int pos = 0; pos < N; pos++) {
        const float *l = infer_logits(c, 0, pos);
        for (int t = 0; t < V; t++) {
            double d = fabs((double)l[t] - ref[pos * V + t]);
            if (d > maxdiff) maxdiff = d;
        }
        if (top2_gap(lcpp + pos * V, V) > 1e-2f && argmax(l, V) != argmax(lcpp + pos * V, V)) argmax_bad++;
    }
    printf("  %-16s max |ours - f64| = %.3g (tol %.0e)\n", name, maxdiff, tol);
    /* greedy continuation, one token at a time */
    int32_t tok = argmax(infer_logits(c, 0, N - 1), V);
    int greedy_bad = -1;
    for (int i = 0; i < 32; i++) {
        if (tok != greedy[i] && greedy_bad < 0) greedy_bad = i;
        infer_batch_entry g = {s, &tok, 1, INFER_LOGITS_LAST};
        CHECKF(infer_decode(c, &g, 1, err, sizeof err) == 0, "%s", err);
        tok = argmax(infer_logits(c, 0, 0), V);
    }
    infer_seq_free(s);
    infer_ctx_free(c);
    infer_threadpool_free(tp);
    infer_model_unref(m);
    free(ref);
    free(lcpp);
    CHECKF(maxdiff <= tol, "%s: max diff %g", name, maxdiff);
    CHECKF(argmax_bad == 0, "%s: %d positions disagree with llama.cpp's argmax", name, argmax_bad);
    CHECKF(greedy_bad < 0, "%s: greedy id %d differs from llama.cpp", name, greedy_bad);
}

static void test_ref_llama_f16(void) { check_ref_model("tiny-llama-F16", 1e-3); }
static void test_ref_qwen2_f16(void) { check_ref_model("tiny-qwen2-F16", 1e-3); }
static void test_ref_qwen3_f32(void) { check_ref_model("tiny-qwen3-F32", 1e-4); }
static void test_ref_qwen3_f16(void) { check_ref_model("tiny-qwen3-F16", 1e-3); }
static void test_ref_qwen3_bf16(void) { check_ref_model("tiny-qwen3-BF16", 1e-3); }
static void test_ref_qwen3_q8_0(void) { check_ref_model("tiny-qwen3-Q8_0", 5e-2); }
static void test_ref_qwen3_q6_k(void) { check_ref_model("tiny-qwen3-Q6_K", 5e-2); }
static void test_ref_qwen3_q5_k(void) { check_ref_model("tiny-qwen3-Q5_K", 5e-2); }
static void test_ref_qwen3_q4_k(void) { check_ref_model("tiny-qwen3-Q4_K", 5e-2); }
static void test_ref_qwen3_q4_0(void) { check_ref_model("tiny-qwen3-Q4_0", 5e-2); }

/* ---- stories260K -------------------------------------------------------------- */

#define STORIES "models/cozy-creator_python-gen-worker/stories260K.gguf"
#define STORIES_IDS "models/reference-outputs/stories260K.greedy.ids.txt"

/* Parses the next "next_ids:" line of the reference file after `from`. */
static int parse_next_ids(const char *text, int which, int32_t *ids, int cap) {
    const char *p = text;
    for (int i = 0; i <= which; i++) {
        p = strstr(p, "next_ids:");
        if (!p) return -1;
        p += 9;
    }
    int n = 0;
    while (n < cap) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)v;
        p = end;
        if (*p == '\n') break;
    }
    return n;
}

static char *slurp(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    if (buf) {
        size_t n = fread(buf, 1, (1 << 16) - 1, f);
        buf[n] = 0;
    }
    fclose(f);
    return buf;
}

static void test_stories_logits(void) {
    if (!file_exists(shared_path(STORIES))) TEST_SKIP("stories260K.gguf not found under ../shared");
    char err[512];
    infer_model *m;
    CHECKF(infer_model_load(shared_path(STORIES), &m, err, sizeof err) == 0, "%s", err);
    char *txt = slurp(shared_path(STORIES_IDS));
    CHECK(txt);
    int32_t next[256], toks[32];
    CHECK(parse_next_ids(txt, 0, next, 256) == 200);
    free(txt);
    toks[0] = 1;
    for (int i = 1; i < 32; i++) toks[i] = next[i - 1];
    float *ref = read_f32(shared_path("models/reference-outputs/stories260K.greedy.logits-pos0-31.f32"), 32 * 512);
    CHECK(ref);
    infer_threadpool *tp = pool(2);
    infer_ctx *c;
    infer_ctx_params cp = {.n_ctx = 256, .max_batch = 32};
    CHECKF(infer_ctx_create(m, tp, &cp, &c, err, sizeof err) == 0, "%s", err);
    infer_seq *s;
    CHECK(infer_seq_create(c, &s, err, sizeof err) == 0);
    infer_batch_entry e = {s, toks, 32, INFER_LOGITS_ALL};
    CHECKF(infer_decode(c, &e, 1, err, sizeof err) == 0, "%s", err);
    double maxdiff = 0;
    for (int p = 0; p < 32; p++) {
        const float *l = infer_logits(c, 0, p);
        for (int t = 0; t < 512; t++) {
            double d = fabs((double)l[t] - ref[p * 512 + t]);
            if (d > maxdiff) maxdiff = d;
        }
    }
    printf("  stories260K logits pos 0-31: max diff %.3g\n", maxdiff);
    infer_seq_free(s);
    infer_ctx_free(c);
    infer_threadpool_free(tp);
    infer_model_unref(m);
    free(ref);
    CHECKF(maxdiff <= 1e-4, "max diff %g", maxdiff);
}

/* Greedy from `prompt` must reproduce next_ids[skip..]. */
static void stories_greedy_case(int which, const char *prompt, int n_expect, int skip) {
    if (!file_exists(shared_path(STORIES))) TEST_SKIP("stories260K.gguf not found under ../shared");
    char err[512];
    infer_model *m;
    CHECKF(infer_model_load(shared_path(STORIES), &m, err, sizeof err) == 0, "%s", err);
    char *txt = slurp(shared_path(STORIES_IDS));
    CHECK(txt);
    int32_t next[256];
    CHECK(parse_next_ids(txt, which, next, 256) == n_expect);
    free(txt);
    int32_t ids[64];
    int64_t n = infer_tokenize(infer_model_vocab(m), prompt, strlen(prompt), INFER_TOK_ADD_SPECIAL, ids, 64, err,
                               sizeof err);
    CHECKF(n >= 1, "%s", err);
    CHECK_EQ_INT(n, skip + 1);
    for (int i = 1; i < n; i++) CHECK_EQ_INT(ids[i], next[i - 1]);
    infer_threadpool *tp = pool(2);
    infer_ctx *c;
    infer_ctx_params cp = {.n_ctx = 256};
    CHECKF(infer_ctx_create(m, tp, &cp, &c, err, sizeof err) == 0, "%s", err);
    infer_seq *s;
    CHECK(infer_seq_create(c, &s, err, sizeof err) == 0);
    infer_batch_entry e = {s, ids, (int32_t)n, INFER_LOGITS_LAST};
    CHECKF(infer_decode(c, &e, 1, err, sizeof err) == 0, "%s", err);
    int bad = -1;
    for (int i = skip; i < n_expect; i++) {
        int32_t tok = argmax(infer_logits(c, 0, 0), 512);
        if (tok != next[i]) {
            bad = i;
            break;
        }
        infer_batch_entry g = {s, &tok, 1, INFER_LOGITS_LAST};
        CHECKF(infer_decode(c, &g, 1, err, sizeof err) == 0, "%s", err);
    }
    infer_seq_free(s);
    infer_ctx_free(c);
    infer_threadpool_free(tp);
    infer_model_unref(m);
    CHECKF(bad < 0, "greedy id at position %d differs", bad);
}

static void test_stories_greedy_empty(void) { stories_greedy_case(0, "", 200, 0); }
static void test_stories_greedy_prompt(void) { stories_greedy_case(1, "Once upon a time", 64, 4); }

/* ---- batching, KV pool, errors -------------------------------------------------- */

static const char *small_model(void) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/refs/tiny-qwen2-F16.gguf", test_shared_dir());
    return p;
}

/* Four sequences with different prompt lengths, prefilled and then decoded
 * together, give the same logits as each run alone. */
static void test_batched_equals_unbatched(void) {
    if (!file_exists(small_model())) TEST_SKIP("refs model not found");
    char err[512];
    infer_model *m;
    CHECKF(infer_model_load(small_model(), &m, err, sizeof err) == 0, "%s", err);
    enum { S = 4, STEPS = 6, V = 512 };
    int32_t plen[S] = {5, 17, 1, 33};
    int32_t prompts[S][40];
    for (int i = 0; i < S; i++)
        for (int j = 0; j < plen[i]; j++) prompts[i][j] = 3 + (i * 131 + j * 17) % 500;
    static float alone[S][STEPS + 1][V];
    infer_threadpool *tp = pool(2);
    infer_ctx *c;
    infer_ctx_params cp = {.n_ctx = 64, .max_batch = 128};
    CHECKF(infer_ctx_create(m, tp, &cp, &c, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < S; i++) {
        infer_seq *s;
        CHECK(infer_seq_create(c, &s, err, sizeof err) == 0);
        infer_batch_entry e = {s, prompts[i], plen[i], INFER_LOGITS_LAST};
        CHECK(infer_decode(c, &e, 1, err, sizeof err) == 0);
        memcpy(alone[i][0], infer_logits(c, 0, 0), sizeof alone[i][0]);
        for (int st = 0; st < STEPS; st++) {
            int32_t tok = 3 + (st * 37 + i) % 500;
            infer_batch_entry g = {s, &tok, 1, INFER_LOGITS_LAST};
            CHECK(infer_decode(c, &g, 1, err, sizeof err) == 0);
            memcpy(alone[i][st + 1], infer_logits(c, 0, 0), sizeof alone[i][0]);
        }
        infer_seq_free(s);
    }
    infer_seq *seqs[S];
    infer_batch_entry e[S];
    for (int i = 0; i < S; i++) {
        CHECK(infer_seq_create(c, &seqs[i], err, sizeof err) == 0);
        e[i] = (infer_batch_entry){seqs[i], prompts[i], plen[i], INFER_LOGITS_LAST};
    }
    CHECKF(infer_decode(c, e, S, err, sizeof err) == 0, "%s", err);
    double maxdiff = 0;
    int32_t toks[S];
    for (int st = 0; st <= STEPS; st++) {
        for (int i = 0; i < S; i++) {
            const float *l = infer_logits(c, i, 0);
            for (int t = 0; t < V; t++) {
                double d = fabs((double)l[t] - alone[i][st][t]);
                if (d > maxdiff) maxdiff = d;
            }
        }
        if (st == STEPS) break;
        for (int i = 0; i < S; i++) {
            toks[i] = 3 + (st * 37 + i) % 500;
            e[i] = (infer_batch_entry){seqs[i], &toks[i], 1, INFER_LOGITS_LAST};
        }
        CHECK(infer_decode(c, e, S, err, sizeof err) == 0);
    }
    for (int i = 0; i < S; i++) infer_seq_free(seqs[i]);
    int32_t used, total;
    infer_ctx_kv_usage(c, &used, &total);
    CHECK_EQ_INT(used, 0);
    infer_ctx_free(c);
    infer_threadpool_free(tp);
    infer_model_unref(m);
    printf("  batched vs alone: max diff %.3g\n", maxdiff);
    CHECKF(maxdiff <= 1e-5, "max diff %g", maxdiff);
}

/* A batch that cannot run (bad id, KV full, context full, duplicate seq)
 * is refused with a message and changes nothing. */
static void test_rejected_batches(void) {
    if (!file_exists(small_model())) TEST_SKIP("refs model not found");
    char err[512];
    infer_model *m;
    CHECKF(infer_model_load(small_model(), &m, err, sizeof err) == 0, "%s", err);
    infer_threadpool *tp = pool(1);
    infer_ctx *c;
    /* 16-token blocks, 40 tokens of context, room for 4 blocks in all */
    const infer_model_info *I = infer_model_get_info(m);
    uint64_t block = (uint64_t)I->n_layer * 2 * 16 * I->n_head_kv * I->head_dim * 4;
    infer_ctx_params cp = {.n_ctx = 40, .max_batch = 64, .block_tokens = 16, .kv_bytes = 4 * block};
    CHECKF(infer_ctx_create(m, tp, &cp, &c, err, sizeof err) == 0, "%s", err);
    infer_seq *a, *b;
    CHECK(infer_seq_create(c, &a, err, sizeof err) == 0);
    CHECK(infer_seq_create(c, &b, err, sizeof err) == 0);
    int32_t toks[48];
    for (int i = 0; i < 48; i++) toks[i] = 5 + i;
    int32_t used, total;

    int32_t bad = 512;
    infer_batch_entry e = {a, &bad, 1, INFER_LOGITS_LAST};
    CHECK(infer_decode(c, &e, 1, err, sizeof err) < 0);
    CHECK(strstr(err, "outside the vocabulary") != NULL);
    bad = -1;
    CHECK(infer_decode(c, &e, 1, err, sizeof err) < 0);

    e = (infer_batch_entry){a, toks, 41, INFER_LOGITS_LAST};
    CHECK(infer_decode(c, &e, 1, err, sizeof err) < 0);
    CHECK(strstr(err, "context full") != NULL);

    e = (infer_batch_entry){a, toks, 33, INFER_LOGITS_LAST}; /* 3 blocks */
    CHECKF(infer_decode(c, &e, 1, err, sizeof err) == 0, "%s", err);
    infer_batch_entry eb = {b, toks, 17, INFER_LOGITS_LAST}; /* needs 2, 1 free */
    CHECK(infer_decode(c, &eb, 1, err, sizeof err) < 0);
    CHECK(strstr(err, "KV cache full") != NULL);
    CHECK_EQ_INT(infer_seq_len(b), 0);
    infer_ctx_kv_usage(c, &used, &total);
    CHECK_EQ_INT(used, 3);
    CHECK_EQ_INT(total, 4);

    infer_batch_entry dup[2] = {{a, toks, 1, 0}, {a, toks, 1, 0}};
    CHECK(infer_decode(c, dup, 2, err, sizeof err) < 0);
    CHECK(strstr(err, "twice") != NULL);
    CHECK_EQ_INT(infer_seq_len(a), 33);

    infer_seq_free(a);
    infer_ctx_kv_usage(c, &used, &total);
    CHECK_EQ_INT(used, 0);
    CHECKF(infer_decode(c, &eb, 1, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_INT(infer_seq_len(b), 17);
    CHECK(infer_logits(c, 0, 1) == NULL);
    CHECK(infer_logits(c, 1, 0) == NULL);
    infer_seq_free(b);
    infer_ctx_free(c);
    infer_threadpool_free(tp);
    infer_model_unref(m);
}

/* A second sequence with the same 40-token prefix reuses its two full
 * blocks (the first sequence already gone: its blocks stayed cached), and
 * its logits equal a full computation exactly.  Filling the pool evicts the
 * cached blocks, least recently used first, after which nothing is reused. */
static void test_prefix_reuse(void) {
    if (!file_exists(small_model())) TEST_SKIP("refs model not found");
    char err[512];
    infer_model *m;
    CHECKF(infer_model_load(small_model(), &m, err, sizeof err) == 0, "%s", err);
    const infer_model_info *I = infer_model_get_info(m);
    uint64_t block = (uint64_t)I->n_layer * 2 * 16 * I->n_head_kv * I->head_dim * 4;
    infer_threadpool *tp = pool(2);
    infer_ctx *c;
    infer_ctx_params cp = {.n_ctx = 64, .max_batch = 64, .block_tokens = 16, .kv_bytes = 6 * block};
    CHECKF(infer_ctx_create(m, tp, &cp, &c, err, sizeof err) == 0, "%s", err);
    int32_t toks[48];
    for (int i = 0; i < 48; i++) toks[i] = 3 + (i * 29) % 500;

    infer_seq *a;
    CHECK(infer_seq_create(c, &a, err, sizeof err) == 0);
    CHECK_EQ_INT(infer_seq_reuse_prefix(a, toks, 40), 0); /* nothing cached yet */
    infer_batch_entry e = {a, toks, 45, INFER_LOGITS_LAST};
    CHECK(infer_decode(c, &e, 1, err, sizeof err) == 0);
    static float full[512];
    memcpy(full, infer_logits(c, 0, 0), sizeof full);
    infer_seq_free(a);
    infer_kv_stats st;
    infer_ctx_kv_stats(c, &st);
    CHECK_EQ_INT(st.blocks_used, 0);
    CHECK_EQ_INT(st.blocks_cached, 2); /* two full blocks of 16; the partial third is freed */

    infer_seq *b;
    CHECK(infer_seq_create(c, &b, err, sizeof err) == 0);
    int32_t reused = infer_seq_reuse_prefix(b, toks, 45);
    CHECK_EQ_INT(reused, 32);
    CHECK_EQ_INT(infer_seq_len(b), 32);
    e = (infer_batch_entry){b, toks + reused, 45 - reused, INFER_LOGITS_LAST};
    CHECKF(infer_decode(c, &e, 1, err, sizeof err) == 0, "%s", err);
    const float *l = infer_logits(c, 0, 0);
    for (int t = 0; t < 512; t++) CHECKF(l[t] == full[t], "logit %d: %g vs %g", t, l[t], full[t]);
    infer_ctx_kv_stats(c, &st);
    CHECK_EQ_INT(st.prefix_hits, 2);
    CHECK_EQ_INT(st.reused_tokens, 32);

    /* a prompt differing in its first block reuses nothing */
    infer_seq *d;
    CHECK(infer_seq_create(c, &d, err, sizeof err) == 0);
    int32_t other[40];
    memcpy(other, toks, sizeof other);
    other[3] ^= 1;
    CHECK_EQ_INT(infer_seq_reuse_prefix(d, other, 40), 0);
    infer_seq_free(d);

    /* b holds 3 blocks; a 48-token sequence needs 3 more: the pool has 6,
     * so b's registered blocks cannot be evicted while b lives... */
    infer_seq *x;
    CHECK(infer_seq_create(c, &x, err, sizeof err) == 0);
    int32_t fill[48];
    for (int i = 0; i < 48; i++) fill[i] = 7 + i;
    e = (infer_batch_entry){x, fill, 48, INFER_LOGITS_NONE};
    CHECKF(infer_decode(c, &e, 1, err, sizeof err) == 0, "%s", err);
    infer_seq_free(x);
    infer_seq_free(b);
    /* ...but once both are gone, a new 64-token sequence evicts cached blocks */
    infer_seq *y;
    CHECK(infer_seq_create(c, &y, err, sizeof err) == 0);
    int32_t big[64];
    for (int i = 0; i < 64; i++) big[i] = 11 + i;
    e = (infer_batch_entry){y, big, 64, INFER_LOGITS_NONE};
    CHECKF(infer_decode(c, &e, 1, err, sizeof err) == 0, "%s", err);
    infer_ctx_kv_stats(c, &st);
    CHECK(st.evictions > 0);
    infer_seq_free(y);
    infer_ctx_free(c);
    infer_threadpool_free(tp);
    infer_model_unref(m);
}

/* ---- sampling ------------------------------------------------------------------------ */

static void test_sampler_greedy_and_seed(void) {
    char err[256];
    float logits[1000];
    for (int i = 0; i < 1000; i++) logits[i] = (float)((i * 7919) % 1000) / 250.0f;
    infer_sampler_params p;
    infer_sampler_defaults(&p);
    p.temperature = 0;
    infer_sampler *g = infer_sampler_create(&p, err, sizeof err);
    CHECK(g);
    CHECK_EQ_INT(infer_sampler_sample(g, logits, 1000), argmax(logits, 1000));
    infer_sampler_free(g);

    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 42;
    int32_t a[64], b[64];
    infer_sampler *s1 = infer_sampler_create(&p, err, sizeof err), *s2 = infer_sampler_create(&p, err, sizeof err);
    CHECK(s1 && s2);
    int distinct = 0;
    for (int i = 0; i < 64; i++) {
        a[i] = infer_sampler_sample(s1, logits, 1000);
        b[i] = infer_sampler_sample(s2, logits, 1000);
        CHECK_EQ_INT(a[i], b[i]);
        if (i && a[i] != a[i - 1]) distinct++;
    }
    CHECK(distinct > 10); /* temperature 1 over a flat-ish distribution varies */
    infer_sampler_free(s1);
    infer_sampler_free(s2);

    p.top_k = 1; /* top-k 1 is greedy whatever the temperature */
    infer_sampler *k1 = infer_sampler_create(&p, err, sizeof err);
    for (int i = 0; i < 16; i++) CHECK_EQ_INT(infer_sampler_sample(k1, logits, 1000), argmax(logits, 1000));
    infer_sampler_free(k1);

    p.top_k = 3; /* only the three best ids can come out */
    infer_sampler *k3 = infer_sampler_create(&p, err, sizeof err);
    float sorted[1000];
    memcpy(sorted, logits, sizeof sorted);
    for (int i = 0; i < 200; i++) {
        int32_t t = infer_sampler_sample(k3, logits, 1000);
        int better = 0;
        for (int j = 0; j < 1000; j++) better += logits[j] > logits[t];
        CHECK(better < 3);
    }
    infer_sampler_free(k3);

    p.temperature = -1;
    CHECK(infer_sampler_create(&p, err, sizeof err) == NULL);
    p.temperature = 1;
    p.top_p = 1.5f;
    CHECK(infer_sampler_create(&p, err, sizeof err) == NULL);
}

/* Frequencies of a temperature-1 draw follow the softmax. */
static void test_sampler_distribution(void) {
    char err[256];
    float logits[4] = {0.0f, logf(2.0f), logf(3.0f), logf(4.0f)}; /* p = .1 .2 .3 .4 */
    infer_sampler_params p;
    infer_sampler_defaults(&p);
    p.temperature = 1;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0;
    p.seed = 7;
    infer_sampler *s = infer_sampler_create(&p, err, sizeof err);
    CHECK(s);
    int count[4] = {0};
    for (int i = 0; i < 20000; i++) count[infer_sampler_sample(s, logits, 4)]++;
    infer_sampler_free(s);
    for (int i = 0; i < 4; i++) CHECK_NEAR(count[i] / 20000.0, (i + 1) / 10.0, 0.02);
}

/* The penalty lowers the logits of recent tokens (divides positives,
 * multiplies negatives). */
static void test_sampler_repeat_penalty(void) {
    char err[256];
    float logits[3] = {1.0f, 0.9f, -0.5f};
    infer_sampler_params p;
    infer_sampler_defaults(&p);
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    infer_sampler *s = infer_sampler_create(&p, err, sizeof err);
    CHECK(s);
    infer_sampler_accept(s, 0);
    CHECK_EQ_INT(infer_sampler_sample(s, logits, 3), 1); /* 1.0/2 < 0.9 */
    infer_sampler_free(s);
    /* a token repeated in the window is penalised once, not per repeat */
    float two[2] = {1.0f, 0.4f};
    p.repeat_last_n = 4096;
    s = infer_sampler_create(&p, err, sizeof err);
    CHECK(s);
    for (int i = 0; i < 3000; i++) infer_sampler_accept(s, 0);
    CHECK_EQ_INT(infer_sampler_sample(s, two, 2), 0); /* 1.0/2 > 0.4; twice would be 0.25 */
    infer_sampler_free(s);
}

/* NaN logits count as impossible: never picked, never an out-of-range id,
 * with the default (temperature, top-k, top-p, min-p) sampler. */
static void test_sampler_nan(void) {
    char err[256];
    float logits[8] = {NAN, 0.1f, 0.3f, NAN, 0.2f, 0.0f, NAN, 0.05f};
    infer_sampler_params p;
    infer_sampler_defaults(&p);
    p.seed = 3;
    infer_sampler *s = infer_sampler_create(&p, err, sizeof err);
    CHECK(s);
    for (int i = 0; i < 200; i++) {
        int32_t t = infer_sampler_sample(s, logits, 8);
        CHECK(t >= 0 && t < 8 && !isnan(logits[t]));
    }
    float all_nan[4] = {NAN, NAN, NAN, NAN};
    CHECK_EQ_INT(infer_sampler_sample(s, all_nan, 4), 0);
    infer_sampler_free(s);
    p.temperature = 0; /* greedy too */
    s = infer_sampler_create(&p, err, sizeof err);
    CHECK_EQ_INT(infer_sampler_sample(s, logits, 8), 2);
    infer_sampler_free(s);
}

int main(void) {
    TEST_RUN(test_ref_llama_f16);
    TEST_RUN(test_ref_qwen2_f16);
    TEST_RUN(test_ref_qwen3_f32);
    TEST_RUN(test_ref_qwen3_f16);
    TEST_RUN(test_ref_qwen3_bf16);
    TEST_RUN(test_ref_qwen3_q8_0);
    TEST_RUN(test_ref_qwen3_q6_k);
    TEST_RUN(test_ref_qwen3_q5_k);
    TEST_RUN(test_ref_qwen3_q4_k);
    TEST_RUN(test_ref_qwen3_q4_0);
    TEST_RUN(test_stories_logits);
    TEST_RUN(test_stories_greedy_empty);
    TEST_RUN(test_stories_greedy_prompt);
    TEST_RUN(test_batched_equals_unbatched);
    TEST_RUN(test_rejected_batches);
    TEST_RUN(test_prefix_reuse);
    TEST_RUN(test_sampler_greedy_and_seed);
    TEST_RUN(test_sampler_distribution);
    TEST_RUN(test_sampler_repeat_penalty);
    TEST_RUN(test_sampler_nan);
    return TEST_DONE();
}
