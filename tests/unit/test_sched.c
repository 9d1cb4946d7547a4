/* test_sched.c - the continuous-batching scheduler with a real model
 * (stories260K from ../shared).
 *
 * - Requests decoded together give exactly the text each gives alone
 *   (greedy, and seeded sampling).
 * - A full queue refuses at once; cancel and timeout end a request with
 *   the right reason and give its KV blocks back.
 * - Stop strings end the text before the match; prefix blocks are reused.
 * - A stress run with random lengths and cancels: every request gets
 *   exactly one on_done and the KV pool ends empty. */
#include "test.h"

#include "infer.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORIES "models/cozy-creator_python-gen-worker/stories260K.gguf"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char text[8192];
    size_t len;
    int done, reason, n_done;
    infer_request_stats st;
} result;

static void on_text(void *ud, const char *t, size_t n) {
    result *r = ud;
    pthread_mutex_lock(&r->mu);
    if (r->len + n < sizeof r->text) {
        memcpy(r->text + r->len, t, n);
        r->len += n;
        r->text[r->len] = 0;
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_done(void *ud, int reason, const infer_request_stats *st, const char *msg) {
    (void)msg;
    result *r = ud;
    pthread_mutex_lock(&r->mu);
    r->done = 1;
    r->n_done++;
    r->reason = reason;
    r->st = *st;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void result_init(result *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static void wait_done(result *r) {
    pthread_mutex_lock(&r->mu);
    while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

typedef struct {
    infer_model *m;
    infer_threadpool *tp;
    infer_ctx *c;
    infer_sched *s;
} env;

static int env_open(env *e, int max_queue, int max_active, uint64_t kv_bytes) {
    char p[1024], err[512];
    snprintf(p, sizeof p, "%s/%s", test_shared_dir(), STORIES);
    if (access(p, R_OK) != 0) return 1;
    memset(e, 0, sizeof *e);
    if (infer_model_load(p, &e->m, err, sizeof err) < 0) return -1;
    e->tp = infer_threadpool_create(2, err, sizeof err);
    infer_ctx_params cp = {.n_ctx = 512, .max_batch = 256, .kv_bytes = kv_bytes};
    if (!e->tp || infer_ctx_create(e->m, e->tp, &cp, &e->c, err, sizeof err) < 0) return -1;
    infer_sched_params sp = {.max_queue = max_queue, .max_active = max_active, .prefill_chunk = 32, .nice = 0};
    if (infer_sched_create(e->c, &sp, &e->s, err, sizeof err) < 0) return -1;
    return 0;
}

static void env_close(env *e) {
    infer_sched_free(e->s);
    infer_ctx_free(e->c);
    infer_threadpool_free(e->tp);
    infer_model_unref(e->m);
}

static int32_t prompt_ids(env *e, const char *text, int32_t *ids, int cap) {
    char err[256];
    return (int32_t)infer_tokenize(infer_model_vocab(e->m), text, strlen(text), INFER_TOK_ADD_SPECIAL, ids, (size_t)cap,
                                   err, sizeof err);
}

static infer_request make_req(const int32_t *ids, int32_t n, int32_t max_tokens, float temp, uint64_t seed,
                              result *r) {
    infer_request q = {0};
    q.prompt = ids;
    q.n_prompt = n;
    q.max_tokens = max_tokens;
    infer_sampler_defaults(&q.sampling);
    q.sampling.temperature = temp;
    q.sampling.seed = seed;
    q.on_text = on_text;
    q.on_done = on_done;
    q.ud = r;
    return q;
}

static const char *PROMPTS[] = {"Once upon a time", "The cat", "Lily and Tom went to the park. They", "",
                                "One day, a big dog", "Sue had a red ball", "The sun was hot", "Max liked to"};
#define NP 8

/* Greedy and seeded requests give the same text together as alone. */
static void check_concurrent_equals_alone(float temp) {
    env e;
    int rc = env_open(&e, 64, 16, 0);
    if (rc == 1) TEST_SKIP("stories260K.gguf not under ../shared");
    CHECK(rc == 0);
    int32_t ids[NP][64], n[NP];
    for (int i = 0; i < NP; i++) CHECK((n[i] = prompt_ids(&e, PROMPTS[i], ids[i], 64)) > 0);
    static result alone[NP], together[NP];
    char err[256];
    for (int i = 0; i < NP; i++) {
        result_init(&alone[i]);
        infer_request q = make_req(ids[i], n[i], 20 + 9 * i, temp, 1000 + (uint64_t)i, &alone[i]);
        CHECKF(infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0, "%s", err);
        wait_done(&alone[i]);
    }
    for (int i = 0; i < NP; i++) {
        result_init(&together[i]);
        infer_request q = make_req(ids[i], n[i], 20 + 9 * i, temp, 1000 + (uint64_t)i, &together[i]);
        CHECKF(infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0, "%s", err);
    }
    for (int i = 0; i < NP; i++) {
        wait_done(&together[i]);
        CHECK(alone[i].len > 0);
        CHECKF(strcmp(alone[i].text, together[i].text) == 0, "request %d:\n  alone:    %s\n  together: %s", i,
               alone[i].text, together[i].text);
        CHECK_EQ_INT(together[i].n_done, 1);
    }
    infer_sched_stats st;
    infer_sched_get_stats(e.s, &st);
    CHECK_EQ_INT(st.kv.blocks_used, 0);
    env_close(&e);
}

static void test_concurrent_greedy(void) { check_concurrent_equals_alone(0.0f); }
static void test_concurrent_seeded(void) { check_concurrent_equals_alone(0.9f); }

/* The scheduler's greedy text equals a direct decode loop's. */
static void test_matches_direct_decode(void) {
    env e;
    int rc = env_open(&e, 8, 4, 0);
    if (rc == 1) TEST_SKIP("stories260K.gguf not under ../shared");
    CHECK(rc == 0);
    int32_t ids[64];
    int32_t n = prompt_ids(&e, "", ids, 64);
    CHECK_EQ_INT(n, 1);
    result r;
    result_init(&r);
    char err[256];
    infer_request q = make_req(ids, n, 200, 0, 0, &r);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0);
    wait_done(&r);
    CHECK_EQ_INT(r.reason, INFER_FINISH_LENGTH);
    CHECK_EQ_INT(r.st.generated_tokens, 200);
    char p[1024];
    snprintf(p, sizeof p, "%s/models/karpathy_llama2.c/stories260K.greedy-n200.expected.txt", test_shared_dir());
    FILE *f = fopen(p, "rb");
    if (f) {
        char want[2048];
        size_t wn = fread(want, 1, sizeof want - 1, f);
        want[wn] = 0;
        fclose(f);
        CHECKF(strcmp(r.text, want) == 0, "text differs from llama2.c's:\n%s", r.text);
    }
    env_close(&e);
}

/* With one active slot busy on a long request and a queue of 2, further
 * submits fail at once with "queue full". */
static void test_queue_full(void) {
    env e;
    int rc = env_open(&e, 2, 1, 0);
    if (rc == 1) TEST_SKIP("stories260K.gguf not under ../shared");
    CHECK(rc == 0);
    int32_t ids[64];
    int32_t n = prompt_ids(&e, "Once upon a time", ids, 64);
    static result r[10];
    char err[256];
    int ok = 0, full = 0;
    for (int i = 0; i < 10; i++) {
        result_init(&r[i]);
        infer_request q = make_req(ids, n, 400, 0, 0, &r[i]);
        if (infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0) ok++;
        else {
            CHECKF(strstr(err, "queue full") != NULL, "%s", err);
            full++;
            r[i].done = 1; /* never called back */
        }
    }
    CHECK(full >= 6 && ok <= 4);
    for (int i = 0; i < 10; i++) wait_done(&r[i]);
    infer_sched_stats st;
    infer_sched_get_stats(e.s, &st);
    CHECK_EQ_INT(st.rejected, (uint64_t)full);
    env_close(&e);
}

static void test_cancel_and_timeout(void) {
    env e;
    int rc = env_open(&e, 8, 4, 0);
    if (rc == 1) TEST_SKIP("stories260K.gguf not under ../shared");
    CHECK(rc == 0);
    int32_t ids[64];
    int32_t n = prompt_ids(&e, "Once upon a time", ids, 64);
    result a, b;
    result_init(&a);
    result_init(&b);
    char err[256];
    uint64_t id;
    infer_request q = make_req(ids, n, 500, 0, 0, &a);
    CHECK(infer_sched_submit(e.s, &q, &id, err, sizeof err) == 0);
    usleep(2000);
    CHECK_EQ_INT(infer_sched_cancel(e.s, id), 0);
    wait_done(&a);
    CHECK_EQ_INT(a.reason, INFER_FINISH_CANCELLED);
    CHECK(a.st.generated_tokens < 500);
    CHECK(infer_sched_cancel(e.s, id) < 0); /* finished: unknown now */

    q = make_req(ids, n, 500, 0, 0, &b);
    q.timeout_ms = 1;
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0);
    wait_done(&b);
    CHECK_EQ_INT(b.reason, INFER_FINISH_TIMEOUT);
    infer_sched_stats st;
    infer_sched_get_stats(e.s, &st);
    CHECK_EQ_INT(st.cancelled, 1);
    CHECK_EQ_INT(st.timeouts, 1);
    CHECK_EQ_INT(st.kv.blocks_used, 0);
    env_close(&e);
}

/* Generation ends before the first occurrence of a stop string, and the
 * text up to it is exactly the unstopped text's prefix. */
static void test_stop_string(void) {
    env e;
    int rc = env_open(&e, 8, 4, 0);
    if (rc == 1) TEST_SKIP("stories260K.gguf not under ../shared");
    CHECK(rc == 0);
    int32_t ids[64];
    int32_t n = prompt_ids(&e, "", ids, 64);
    result full, cut;
    result_init(&full);
    result_init(&cut);
    char err[256];
    infer_request q = make_req(ids, n, 120, 0, 0, &full);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0);
    wait_done(&full);
    const char *stop[] = {"zzz-never", "park"};
    char *at = strstr(full.text, "park");
    CHECK(at != NULL);
    q = make_req(ids, n, 120, 0, 0, &cut);
    q.stop = stop;
    q.n_stop = 2;
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0);
    wait_done(&cut);
    CHECK_EQ_INT(cut.reason, INFER_FINISH_STOP);
    CHECK_EQ_INT(cut.len, (size_t)(at - full.text));
    CHECK(strncmp(cut.text, full.text, cut.len) == 0);
    env_close(&e);
}

/* A second request with the same 100-token prompt reuses its prefix. */
static void test_prefix_hits(void) {
    env e;
    int rc = env_open(&e, 8, 4, 0);
    if (rc == 1) TEST_SKIP("stories260K.gguf not under ../shared");
    CHECK(rc == 0);
    char text[2048] = "";
    for (int i = 0; i < 12; i++) strcat(text, "Lily and Tom played in the park. ");
    int32_t ids[512];
    int32_t n = prompt_ids(&e, text, ids, 512);
    CHECK(n > 100);
    result a, b;
    result_init(&a);
    result_init(&b);
    char err[256];
    infer_request q = make_req(ids, n, 8, 0, 0, &a);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0);
    wait_done(&a);
    CHECK_EQ_INT(a.st.reused_tokens, 0);
    q = make_req(ids, n, 8, 0, 0, &b);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) == 0);
    wait_done(&b);
    CHECK(b.st.reused_tokens >= n - 16);
    CHECK(strcmp(a.text, b.text) == 0);
    infer_sched_stats st;
    infer_sched_get_stats(e.s, &st);
    CHECK(st.kv.prefix_hits > 0);
    env_close(&e);
}

static void test_submit_errors(void) {
    env e;
    int rc = env_open(&e, 8, 4, 0);
    if (rc == 1) TEST_SKIP("stories260K.gguf not under ../shared");
    CHECK(rc == 0);
    result r;
    result_init(&r);
    char err[256];
    int32_t ids[4] = {1, 403, 407, 9999};
    infer_request q = make_req(ids, 4, 10, 0, 0, &r);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) < 0 && strstr(err, "outside the vocabulary"));
    q = make_req(ids, 3, 0, 0, 0, &r);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) < 0 && strstr(err, "max tokens"));
    q = make_req(ids, 3, 600, 0, 0, &r);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) < 0 && strstr(err, "exceed the context"));
    q = make_req(ids, 0, 10, 0, 0, &r);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) < 0 && strstr(err, "empty prompt"));
    q = make_req(ids, 3, 10, -1, 0, &r);
    CHECK(infer_sched_submit(e.s, &q, NULL, err, sizeof err) < 0 && strstr(err, "temperature"));
    CHECK_EQ_INT(r.n_done, 0);
    env_close(&e);
}

/* Random lengths, random cancels, a small KV pool so admission waits. */
static void test_stress(void) {
    env e;
    int rc = env_open(&e, 256, 8, (uint64_t)5 * 2 * 64 * 4 * 8 * 16 * 24);
    if (rc == 1) TEST_SKIP("stories260K.gguf not under ../shared");
    CHECK(rc == 0);
    enum { N = 120 };
    static result r[N];
    static int32_t ids[N][64];
    static uint64_t id[N];
    char err[256];
    uint64_t x = 12345;
    int submitted[N] = {0};
    for (int i = 0; i < N; i++) {
        result_init(&r[i]);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const char *p = PROMPTS[(x >> 33) % NP];
        int32_t n = prompt_ids(&e, p, ids[i], 64);
        infer_request q = make_req(ids[i], n, 1 + (int32_t)((x >> 40) % 150), (x >> 20) & 1 ? 0.8f : 0, x, &r[i]);
        if (infer_sched_submit(e.s, &q, &id[i], err, sizeof err) == 0) submitted[i] = 1;
        if (((x >> 50) & 7) == 0 && i > 3) infer_sched_cancel(e.s, id[i - 3]);
    }
    for (int i = 0; i < N; i++)
        if (submitted[i]) {
            wait_done(&r[i]);
            CHECK_EQ_INT(r[i].n_done, 1);
        }
    infer_sched_stats st;
    infer_sched_get_stats(e.s, &st);
    CHECK_EQ_INT(st.kv.blocks_used, 0);
    CHECK_EQ_INT(st.completed, st.submitted);
    env_close(&e);
}

int main(void) {
    TEST_RUN(test_matches_direct_decode);
    TEST_RUN(test_concurrent_greedy);
    TEST_RUN(test_concurrent_seeded);
    TEST_RUN(test_queue_full);
    TEST_RUN(test_cancel_and_timeout);
    TEST_RUN(test_stop_string);
    TEST_RUN(test_prefix_hits);
    TEST_RUN(test_submit_errors);
    TEST_RUN(test_stress);
    return TEST_DONE();
}
