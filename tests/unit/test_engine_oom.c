/* test_engine_oom.c - every allocation libinfer makes, failed in turn, as
 * SQLite tests itself (issue 25).
 *
 * Through infer_set_alloc_hook, allocation n of a workload returns NULL,
 * for n = 1, 2, ... until a run makes fewer than n allocations.  Each
 * failed run must end in an error from the API call that ran out (never a
 * crash, never a result that pretends to be whole), and free everything:
 * the ASan build of this suite (test_fault_sweep.sh runs it under
 * LeakSanitizer) reports any allocation a failed path lost.  The run that
 * reaches no failure must give exactly what a run without the hook gives.
 *
 * Workloads, on ../shared's files (skipped, saying so, when absent):
 *   - GGUF parsing, tokenizer building and weight loading: infer_model_load
 *     of stories260K (SentencePiece BPE);
 *   - the vocabularies alone: infer_vocab_load and a tokenization of the
 *     GPT-2 (byte-level BPE) and BERT (WordPiece) vocabularies;
 *   - generation: a ctx, a sequence, the prompt decoded, eight greedy
 *     tokens sampled and detokenized;
 *   - the scheduler: a request submitted to infer_sched and waited for
 *     (an allocation failed on the scheduler's thread must end the
 *     request with INFER_FINISH_ERROR and its message);
 *   - embeddings: a gguf-gen tiny-bert (when gguf-gen is built beside
 *     this binary) loaded and two texts embedded, directly and through
 *     the embedding scheduler's thread (where an allocation failed in
 *     its admission, then a free at once, once left the thread waiting
 *     for a stop it had missed);
 *   - chat: a JSON message list parsed and rendered in ChatML and Llama 3;
 *   - GGUF writing (what gguf-gen and tokjson2gguf build files with): a
 *     file with metadata of every kind and two tensors, read back.
 * The hook counts across threads; generation runs on one compute thread
 * so that the n-th allocation is nearly always the same from run to run
 * (which one fails does not matter: every run is checked on its own). */
#include "test.h"

#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "kernels/quant.h"
#include "infer.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic long countdown, calls;
static _Atomic int fired;
/* the distinct call sites failed, for the coverage figure (docs/testing.md) */
static const void *sites[4096];
static int n_sites;
static pthread_mutex_t sites_mu = PTHREAD_MUTEX_INITIALIZER;

static void note_site(const void *site) {
    pthread_mutex_lock(&sites_mu);
    int known = 0;
    for (int i = 0; i < n_sites && !known; i++) known = sites[i] == site;
    if (!known && n_sites < 4096) sites[n_sites++] = site;
    pthread_mutex_unlock(&sites_mu);
}

static int fail_nth(size_t bytes, const void *site, void *ud) {
    (void)bytes, (void)ud;
    atomic_fetch_add(&calls, 1);
    long n = atomic_load(&countdown);
    if (n <= 0) return 1;
    if (atomic_fetch_sub(&countdown, 1) != 1) return 1;
    atomic_store(&fired, 1);
    note_site(site);
    return 0;
}

static void arm(long n) {
    atomic_store(&calls, 0);
    atomic_store(&fired, 0);
    atomic_store(&countdown, n);
    infer_set_alloc_hook(n ? fail_nth : NULL, NULL);
}

static char path_buf[3][1024];

static const char *shared(int slot, const char *rel) {
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", test_shared_dir(), rel);
    FILE *f = fopen(path_buf[slot], "rb");
    if (!f) return NULL;
    fclose(f);
    return path_buf[slot];
}

/* A workload: 0 and its result in out (a string compared between runs),
 * or -1 with the error of the call that failed. */
typedef int (*workload)(const char *path, char *out, size_t cap, char *err, size_t errlen);

static int load_model(const char *path, char *out, size_t cap, char *err, size_t errlen) {
    infer_model *m = NULL;
    if (infer_model_load(path, &m, err, errlen) != 0) return -1;
    const infer_model_info *i = infer_model_get_info(m);
    snprintf(out, cap, "%s vocab=%d", i ? "loaded" : "?", infer_vocab_size(infer_model_vocab(m)));
    infer_model_unref(m);
    return 0;
}

static const char *TEXT = "Hello, world! Once upon a time there was a little dog called Spot. 123 ünïcödé";

static int vocab_tokenize(const char *path, char *out, size_t cap, char *err, size_t errlen) {
    infer_vocab *v = NULL;
    if (infer_vocab_load(path, &v, err, errlen) != 0) return -1;
    int32_t ids[256];
    int64_t n = infer_tokenize(v, TEXT, strlen(TEXT), INFER_TOK_ADD_SPECIAL, ids, 256, err, errlen);
    int rc = -1;
    if (n >= 0 && n <= 256) {
        size_t o = (size_t)snprintf(out, cap, "%lld:", (long long)n);
        for (int64_t i = 0; i < n && o < cap; i++) o += (size_t)snprintf(out + o, cap - o, " %d", ids[i]);
        rc = 0;
    } else if (n > 256) {
        snprintf(err, errlen, "too many ids");
    }
    infer_vocab_free(v);
    return rc;
}

static int generate(const char *path, char *out, size_t cap, char *err, size_t errlen) {
    infer_model *m = NULL;
    infer_threadpool *tp = NULL;
    infer_ctx *c = NULL;
    infer_seq *s = NULL;
    infer_sampler *smp = NULL;
    int rc = -1;
    if (infer_model_load(path, &m, err, errlen) != 0) return -1;
    if (!(tp = infer_threadpool_create(1, err, errlen))) goto out;
    infer_ctx_params cp = {.n_ctx = 128, .max_batch = 64, .block_tokens = 16, .kv_bytes = 0};
    if (infer_ctx_create(m, tp, &cp, &c, err, errlen) != 0) goto out;
    if (infer_seq_create(c, &s, err, errlen) != 0) goto out;
    infer_sampler_params sp;
    infer_sampler_defaults(&sp);
    sp.temperature = 0;
    if (!(smp = infer_sampler_create(&sp, err, errlen))) goto out;
    int32_t ids[64];
    const char *prompt = "Once upon a time";
    int64_t n = infer_tokenize(infer_model_vocab(m), prompt, strlen(prompt), INFER_TOK_ADD_SPECIAL, ids, 64, err,
                               errlen);
    if (n <= 0 || n > 32) goto out;
    int32_t gen[8];
    infer_batch_entry e = {s, ids, (int32_t)n, INFER_LOGITS_LAST};
    for (int k = 0; k < 8; k++) {
        if (infer_decode(c, &e, 1, err, errlen) != 0) goto out;
        const float *lg = infer_logits(c, 0, 0);
        gen[k] = infer_sampler_sample(smp, lg, infer_vocab_size(infer_model_vocab(m)));
        e.tokens = &gen[k];
        e.n_tokens = 1;
    }
    char text[512];
    int64_t tl = infer_detokenize(infer_model_vocab(m), gen, 8, 0, text, sizeof text - 1, err, errlen);
    if (tl < 0 || tl >= (int64_t)sizeof text) goto out;
    text[tl] = 0;
    snprintf(out, cap, "%s", text);
    rc = 0;
out:
    infer_sampler_free(smp);
    if (s) infer_seq_free(s);
    if (c) infer_ctx_free(c);
    if (tp) infer_threadpool_free(tp);
    infer_model_unref(m);
    return rc;
}

/* ---- the scheduler: one request, waited for ---- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, reason;
    char text[512];
    size_t len;
    char err[256];
} waiter;

static void w_text(void *ud, const char *t, size_t n) {
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    if (w->len + n < sizeof w->text) memcpy(w->text + w->len, t, n), w->len += n;
    pthread_mutex_unlock(&w->mu);
}

static void w_done(void *ud, int reason, const infer_request_stats *st, const char *errmsg) {
    (void)st;
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->reason = reason;
    snprintf(w->err, sizeof w->err, "%s", errmsg ? errmsg : "");
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int scheduled(const char *path, char *out, size_t cap, char *err, size_t errlen) {
    infer_model *m = NULL;
    infer_threadpool *tp = NULL;
    infer_ctx *c = NULL;
    infer_sched *s = NULL;
    int rc = -1;
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    if (infer_model_load(path, &m, err, errlen) != 0) return -1;
    if (!(tp = infer_threadpool_create(1, err, errlen))) goto out;
    infer_ctx_params cp = {.n_ctx = 128, .max_batch = 64};
    if (infer_ctx_create(m, tp, &cp, &c, err, errlen) != 0) goto out;
    infer_sched_params sp = {.max_queue = 4, .max_active = 2};
    if (infer_sched_create(c, &sp, &s, err, errlen) != 0) goto out; /* c is the scheduler's until it is freed */
    int32_t ids[64];
    int64_t n = infer_tokenize(infer_model_vocab(m), "Once upon a time", 16, INFER_TOK_ADD_SPECIAL, ids, 64, err,
                               errlen);
    if (n <= 0 || n > 64) goto out;
    infer_request r = {.prompt = ids, .n_prompt = (int32_t)n, .max_tokens = 8, .on_text = w_text,
                       .on_done = w_done, .ud = &w};
    infer_sampler_defaults(&r.sampling);
    r.sampling.temperature = 0;
    uint64_t id;
    if (infer_sched_submit(s, &r, &id, err, errlen) != 0) goto out;
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.reason == INFER_FINISH_ERROR) {
        snprintf(err, errlen, "%s", w.err[0] ? w.err : "(no message)");
        goto out;
    }
    snprintf(out, cap, "%s %.*s", infer_finish_name(w.reason), (int)w.len, w.text);
    rc = 0;
out:
    if (s) infer_sched_free(s); /* joins its thread: c is ours again */
    if (c) infer_ctx_free(c);
    if (tp) infer_threadpool_free(tp);
    infer_model_unref(m);
    return rc;
}

/* ---- embeddings ---- */

static int embed(const char *path, char *out, size_t cap, char *err, size_t errlen) {
    infer_model *m = NULL;
    infer_threadpool *tp = NULL;
    infer_ctx *c = NULL;
    int rc = -1;
    if (infer_model_load(path, &m, err, errlen) != 0) return -1;
    if (!(tp = infer_threadpool_create(1, err, errlen))) goto out;
    infer_ctx_params cp = {.n_ctx = 48, .max_batch = 96};
    if (infer_ctx_create(m, tp, &cp, &c, err, errlen) != 0) goto out;
    const char *texts[2] = {"the cat sat on the mat", "stars shine at night"};
    size_t lens[2] = {strlen(texts[0]), strlen(texts[1])};
    int32_t dim = infer_model_embed_dim(m);
    float vec[2 * 1024];
    if (dim <= 0 || dim > 1024) goto out;
    infer_embed_params ep;
    infer_embed_defaults(&ep);
    if (infer_embed_texts(c, texts, lens, 2, &ep, vec, err, errlen) != 0) goto out;
    snprintf(out, cap, "%d %.6f %.6f", dim, vec[0], vec[dim]);
    rc = 0;
out:
    if (c) infer_ctx_free(c);
    if (tp) infer_threadpool_free(tp);
    infer_model_unref(m);
    return rc;
}

/* ---- the embedding scheduler ---- */

typedef struct ewaiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, reason;
    float first;
    int32_t dim;
    char err[256];
} ewaiter;

static void e_done(void *ud, int reason, const float *vectors, int32_t n, int32_t dim, const int32_t *n_tokens,
                   const char *errmsg) {
    (void)n, (void)n_tokens;
    ewaiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->reason = reason;
    w->dim = dim;
    if (vectors) w->first = vectors[0];
    snprintf(w->err, sizeof w->err, "%s", errmsg ? errmsg : "");
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int embed_scheduled(const char *path, char *out, size_t cap, char *err, size_t errlen) {
    infer_model *m = NULL;
    infer_threadpool *tp = NULL;
    infer_ctx *c = NULL;
    infer_sched *s = NULL;
    int rc = -1;
    ewaiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    if (infer_model_load(path, &m, err, errlen) != 0) return -1;
    if (!(tp = infer_threadpool_create(1, err, errlen))) goto out;
    infer_ctx_params cp = {.n_ctx = 48, .max_batch = 96};
    if (infer_ctx_create(m, tp, &cp, &c, err, errlen) != 0) goto out;
    infer_sched_params sp = {.max_queue = 4, .max_active = 2};
    if (infer_embed_sched_create(c, &sp, &s, err, errlen) != 0) goto out;
    const char *texts[2] = {"the cat sat on the mat", "stars shine at night"};
    infer_embed_request r = {.texts = texts, .lens = NULL, .n = 2, .on_done = e_done, .ud = &w};
    infer_embed_defaults(&r.params);
    uint64_t id;
    if (infer_embed_submit(s, &r, &id, err, errlen) != 0) goto out;
    pthread_mutex_lock(&w.mu);
    while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.reason != INFER_FINISH_STOP) {
        snprintf(err, errlen, "%s", w.err[0] ? w.err : infer_finish_name(w.reason));
        goto out;
    }
    snprintf(out, cap, "%d %.6f", w.dim, w.first);
    rc = 0;
out:
    if (s) infer_sched_free(s);
    if (c) infer_ctx_free(c);
    if (tp) infer_threadpool_free(tp);
    infer_model_unref(m);
    return rc;
}

/* ---- chat templates ---- */

static int chat(const char *unused, char *out, size_t cap, char *err, size_t errlen) {
    (void)unused;
    const char *json = "[{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                       "{\"role\": \"user\", \"content\": \"Hello \\u00e9 \\ud83d\\ude00\"}, "
                       "{\"role\": \"assistant\", \"content\": \"Hi.\"}]";
    infer_chat_msg *msgs = NULL;
    size_t n = 0;
    if (infer_chat_parse_json(json, strlen(json), &msgs, &n, err, errlen) != 0) return -1;
    size_t o = 0;
    int tmpls[2] = {INFER_CHAT_CHATML, INFER_CHAT_LLAMA3};
    for (int t = 0; t < 2; t++) {
        int64_t k = infer_chat_format(tmpls[t], msgs, n, INFER_CHAT_ADD_ASSISTANT, out + o, cap - o, err, errlen);
        if (k < 0 || (size_t)k >= cap - o) {
            free(msgs);
            if (k >= 0) snprintf(err, errlen, "too long");
            return -1;
        }
        o += (size_t)k;
    }
    out[o] = 0;
    free(msgs);
    return 0;
}

/* ---- GGUF writing ---- */

static int write_gguf(const char *path, char *out, size_t cap, char *err, size_t errlen) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return snprintf(err, errlen, "gguf_writer_new: out of memory"), -1;
    int rc = -1;
    FILE *f = NULL;
    static const char *strs[3] = {"a", "bb", "ccc"};
    static const uint64_t lens[3] = {1, 2, 3};
    static const int32_t ints[4] = {1, 2, 3, 4};
    const int64_t ne1[1] = {64}, ne2[2] = {32, 4};
    if (gguf_writer_set_str(w, "general.name", "sweep") || gguf_writer_set_u32(w, "k.u32", 7) ||
        gguf_writer_set_f32(w, "k.f32", 0.5f) || gguf_writer_set_bool(w, "k.bool", 1) ||
        gguf_writer_set_arr(w, "k.ints", GGUF_INT32, ints, 4) ||
        gguf_writer_set_arr_str(w, "k.strs", strs, lens, 3) ||
        gguf_writer_add_tensor(w, "t.a", 1, ne1, QT_F32) ||
        gguf_writer_add_tensor(w, "t.b", 2, ne2, QT_F32)) {
        snprintf(err, errlen, "%s", gguf_writer_error(w)[0] ? gguf_writer_error(w) : "describing failed");
        goto out;
    }
    if (!(f = fopen(path, "wb"))) {
        snprintf(err, errlen, "cannot open %s", path);
        goto out;
    }
    float data[128] = {0};
    uint64_t size = 0;
    if (gguf_writer_begin(w, f, err, errlen) || gguf_writer_write(w, data, 64 * sizeof(float), err, errlen) ||
        gguf_writer_write(w, data, 128 * sizeof(float), err, errlen) || gguf_writer_finish(w, &size, err, errlen))
        goto out;
    snprintf(out, cap, "%llu bytes, %llu kv", (unsigned long long)size, (unsigned long long)gguf_writer_n_kv(w));
    rc = 0;
out:
    if (f) fclose(f);
    gguf_writer_free(w);
    return rc;
}

/* Sweeps a workload; 0 when every run behaved.  Prints the counts. */
static int sweep(const char *what, workload w, const char *path) {
    char want[4096], got[4096], err[512];
    arm(0);
    err[0] = 0;
    if (w(path, want, sizeof want, err, sizeof err) != 0) {
        printf("  %s: the clean run failed: %s\n", what, err);
        return -1;
    }
    long n;
    for (n = 1; n < 1000000; n++) {
        if (getenv("INFERKV_SWEEP_TRACE")) printf("  %s: n=%ld\n", what, n), fflush(stdout);
        arm(n);
        err[0] = 0;
        got[0] = 0;
        int rc = w(path, got, sizeof got, err, sizeof err);
        int f = atomic_load(&fired);
        long made = atomic_load(&calls);
        arm(0);
        if (!f) {
            if (rc != 0 || strcmp(got, want) != 0) {
                printf("  %s: no failure injected (%ld allocations), yet the run differs: %s\n", what, made, err);
                return -1;
            }
            break;
        }
        if (rc == 0 && strcmp(got, want) != 0) {
            printf("  %s: allocation %ld failed and the run 'succeeded' with another result: %.200s\n", what, n,
                   got);
            return -1;
        }
        if (rc != 0 && !err[0]) {
            printf("  %s: allocation %ld failed without an error message\n", what, n);
            return -1;
        }
    }
    printf("  %s: %ld allocations, each failed in turn\n", what, n - 1);
    return 0;
}

static void test_model_load(void) {
    const char *p = shared(0, "models/cozy-creator_python-gen-worker/stories260K.gguf");
    if (!p) TEST_SKIP("no stories260K.gguf under %s", test_shared_dir());
    CHECK(sweep("infer_model_load stories260K", load_model, p) == 0);
}

static void test_vocabs(void) {
    const char *qwen = shared(1, "models/ggml-org_llama.cpp/ggml-vocab-gpt-2.gguf");
    const char *bert = shared(2, "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf");
    if (!qwen && !bert) TEST_SKIP("no vocabulary GGUFs under %s", test_shared_dir());
    if (qwen) CHECK(sweep("vocab + tokenize, GPT-2 byte-level BPE", vocab_tokenize, qwen) == 0);
    if (bert) CHECK(sweep("vocab + tokenize, BERT WordPiece", vocab_tokenize, bert) == 0);
}

static void test_generate(void) {
    const char *p = shared(0, "models/cozy-creator_python-gen-worker/stories260K.gguf");
    if (!p) TEST_SKIP("no stories260K.gguf under %s", test_shared_dir());
    CHECK(sweep("load, decode, sample, detokenize", generate, p) == 0);
}

static void test_scheduler(void) {
    const char *p = shared(0, "models/cozy-creator_python-gen-worker/stories260K.gguf");
    if (!p) TEST_SKIP("no stories260K.gguf under %s", test_shared_dir());
    CHECK(sweep("infer_sched: submit, generate on its thread", scheduled, p) == 0);
}

/* A tiny-bert from gguf-gen, which sits next to the tests directory. */
static void test_embeddings(void) {
    char self[1024], gen[1200], dir[] = "/tmp/test_engine_oom.XXXXXX", model[256], cmd[3000];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) TEST_SKIP("cannot find this binary");
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) *slash = 0;
    snprintf(gen, sizeof gen, "%s/../gguf-gen", self);
    if (access(gen, X_OK) != 0) TEST_SKIP("no gguf-gen at %s", gen);
    if (!mkdtemp(dir)) TEST_SKIP("no temporary directory");
    snprintf(model, sizeof model, "%s/bert.gguf", dir);
    snprintf(cmd, sizeof cmd, "'%s' -q --preset tiny-bert --type q8_0 --ctx 48 -o '%s'", gen, model);
    int made = system(cmd) == 0;
    int ok = made && sweep("encoder: load, embed two texts", embed, model) == 0 &&
             sweep("encoder: the embedding scheduler's thread", embed_scheduled, model) == 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("  note: could not remove %s\n", dir);
    CHECK(made);
    CHECK(ok);
}

/* The failed sites as offsets in this binary (addr2line -e <binary> reads
 * them), with INFERKV_FAULT_SITES set; always their number. */
static void report_sites(void) {
    printf("  distinct allocation call sites failed: %d\n", n_sites);
    if (!getenv("INFERKV_FAULT_SITES")) return;
    for (int i = 0; i < n_sites; i++) {
        Dl_info di;
        if (dladdr(sites[i], &di) && di.dli_fbase)
            printf("  site %s+0x%lx\n", di.dli_fname, (unsigned long)((const char *)sites[i] - (const char *)di.dli_fbase));
    }
}

static void test_chat(void) { CHECK(sweep("chat: JSON parsed, ChatML and Llama 3 rendered", chat, "") == 0); }

static void test_gguf_writer(void) {
    char path[] = "/tmp/test_engine_oom_gguf.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) TEST_SKIP("no temporary file");
    close(fd);
    int ok = sweep("GGUF writer: metadata of every kind, two tensors", write_gguf, path) == 0;
    unlink(path);
    CHECK(ok);
}

int main(void) {
    /* a run that hangs (a scheduler thread that missed its stop: found by
     * the embedding-scheduler sweep) must fail the suite, not stall it */
    alarm(600);
    TEST_RUN(test_chat);
    TEST_RUN(test_gguf_writer);
    TEST_RUN(test_model_load);
    TEST_RUN(test_vocabs);
    TEST_RUN(test_generate);
    TEST_RUN(test_scheduler);
    TEST_RUN(test_embeddings);
    report_sites();
    return TEST_DONE();
}
