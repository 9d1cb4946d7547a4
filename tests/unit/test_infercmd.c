/* test_infercmd.c - libinfercmd, the INFER.* front-end shared by the server
 * and the module: number parsing and range errors, the INFER.GENERATE and
 * INFER.LOAD grammars, TOKENSKEY decoding, path confinement, and (with
 * stories260K from ../shared) the registry, the load thread, a streamed
 * request's pieces, reload while a request runs, and the statistics. */
#include "infercmd.h"
#include "test.h"

#include <limits.h>
#include <pthread.h>
#include <unistd.h>

#define STORIES_DIR "models/cozy-creator_python-gen-worker"

static ic_arg A(const char *s) { return (ic_arg){s, strlen(s)}; }

static void test_numbers(void) {
    long long v;
    uint64_t u;
    double d;
    ic_arg a;
    a = A("123");
    CHECK(ic_parse_ll(&a, &v) == 0 && v == 123);
    a = A("-9223372036854775808");
    CHECK(ic_parse_ll(&a, &v) == 0 && v == LLONG_MIN);
    a = A("9223372036854775808");
    CHECK(ic_parse_ll(&a, &v) < 0);
    a = A("99999999999999999999999");
    CHECK(ic_parse_ll(&a, &v) < 0);
    const char *bad[] = {"", "-", "1x", " 1", "+1", "1.0", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        a = A(bad[i]);
        CHECKF(ic_parse_ll(&a, &v) < 0, "'%s' accepted", bad[i]);
    }
    a = (ic_arg){"12\0" "3", 4};
    CHECK(ic_parse_ll(&a, &v) < 0); /* embedded NUL */
    a = A("18446744073709551615");
    CHECK(ic_parse_u64(&a, &u) == 0 && u == UINT64_MAX);
    a = A("18446744073709551616");
    CHECK(ic_parse_u64(&a, &u) < 0);
    a = A("-1");
    CHECK(ic_parse_u64(&a, &u) < 0);
    a = A("0.25");
    CHECK(ic_parse_double(&a, &d) == 0 && d == 0.25);
    a = A("nan");
    CHECK(ic_parse_double(&a, &d) < 0);
    a = A("inf");
    CHECK(ic_parse_double(&a, &d) < 0);
    a = A("1e999");
    CHECK(ic_parse_double(&a, &d) < 0);
    a = A("1.5x");
    CHECK(ic_parse_double(&a, &d) < 0);
    char err[IC_ERRLEN];
    a = A("0");
    CHECK(ic_arg_ll(&a, "MAXTOKENS", 1, 512, &v, err, sizeof err) < 0);
    CHECK_STR(err, "ERR MAXTOKENS must be an integer between 1 and 512");
    a = A("2");
    CHECK(ic_arg_double(&a, "MINP", 0, 1, &d, err, sizeof err) < 0);
    CHECK_STR(err, "ERR MINP must be a number between 0 and 1");
    char shown[8];
    ic_shown("a\nb\x01\xff" "cdefgh", 10, shown, sizeof shown);
    CHECK_STR(shown, "a?b??cd");
}

static void test_confine_path(void) {
    char err[IC_ERRLEN], *out = NULL;
    CHECK(ic_confine_path("/m", "a/b.gguf", 8, &out, err, sizeof err) == 0);
    CHECK_STR(out, "/m/a/b.gguf");
    free(out);
    CHECK(ic_confine_path("/m", "x..y/..z.gguf", 13, &out, err, sizeof err) == 0); /* ".." only as a component */
    free(out);
    const char *bad[] = {"/etc/passwd", "../x.gguf", "a/../../x", "..", "a/..", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(ic_confine_path("/m", bad[i], strlen(bad[i]), &out, err, sizeof err) < 0, "'%s' accepted", bad[i]);
        CHECKF(strstr(err, "infer-models-dir") || strstr(err, "invalid"), "'%s': %s", bad[i], err);
    }
    CHECK(ic_confine_path("/m", "a\0b", 3, &out, err, sizeof err) < 0);
    CHECK(ic_confine_path(NULL, "a.gguf", 6, &out, err, sizeof err) < 0);
    CHECK(strstr(err, "infer-models-dir is not set") != NULL);
    CHECK(ic_confine_path("", "a.gguf", 6, &out, err, sizeof err) < 0);
}

static void test_decode_tokens(void) {
    char err[IC_ERRLEN];
    int64_t n;
    const unsigned char ok[] = {1, 0, 0, 0, 0x34, 0x12, 0, 0, 0xff, 1, 0, 0};
    int32_t *ids = ic_decode_tokens(ok, sizeof ok, 10000, &n, err, sizeof err);
    CHECK(ids && n == 3 && ids[0] == 1 && ids[1] == 0x1234 && ids[2] == 0x1ff);
    free(ids);
    CHECK(!ic_decode_tokens(ok, 5, 1000, &n, err, sizeof err) && strstr(err, "4-byte"));
    CHECK(!ic_decode_tokens(ok, 0, 1000, &n, err, sizeof err) && strstr(err, "4-byte"));
    CHECK(!ic_decode_tokens(ok, sizeof ok, 0x1234, &n, err, sizeof err));
    CHECK_STR(err, "ERR TOKENSKEY id 4660 at position 1 is out of range (vocab size 4660)");
    const unsigned char neg[] = {0xff, 0xff, 0xff, 0xff};
    CHECK(!ic_decode_tokens(neg, 4, 1000, &n, err, sizeof err) && strstr(err, "out of range"));
}

/* ---- with a model ---------------------------------------------------------- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int loads_done, reqs_done, text_events;
} waiter;
static waiter W = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void on_load_done(ic_load *l) {
    (void)l;
    pthread_mutex_lock(&W.mu);
    W.loads_done++;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

static void on_req(ic_req *r, int ev) {
    (void)r;
    pthread_mutex_lock(&W.mu);
    if (ev == IC_EV_DONE) W.reqs_done++;
    else W.text_events++;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
}

static void wait_for(int *counter, int value) {
    pthread_mutex_lock(&W.mu);
    while (*counter < value) pthread_cond_wait(&W.cv, &W.mu);
    pthread_mutex_unlock(&W.mu);
}

static const char *models_dir(char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", test_shared_dir(), STORIES_DIR);
    char f[1200];
    snprintf(f, sizeof f, "%s/stories260K.gguf", buf);
    return access(f, R_OK) == 0 ? buf : NULL;
}

static ic_load_params params(void) {
    ic_load_params p = {.threads = 1, .max_queue = 8, .max_active = 4, .nice = 0, .max_loads = 2, .kv_bytes = 0};
    return p;
}

/* Loads name (+ argv extras) synchronously through the load thread. */
static int load(ic_registry *r, const char *dir, const ic_arg *argv, int argc, char *err, size_t errlen) {
    ic_load_params p = params();
    ic_load *l = ic_load_parse(r, argv, argc, dir, &p, err, errlen);
    if (!l) return -1;
    l->done = on_load_done;
    pthread_mutex_lock(&W.mu);
    int want = W.loads_done + 1;
    pthread_mutex_unlock(&W.mu);
    if (ic_load_start(r, l, err, errlen) < 0) {
        ic_load_free(r, l);
        return -1;
    }
    wait_for(&W.loads_done, want);
    int rc = ic_load_install(r, l, err, errlen);
    ic_load_free(r, l);
    return rc;
}

static void test_load_grammar(void) {
    char dirbuf[1024], err[IC_ERRLEN];
    ic_registry r;
    memset(&r, 0, sizeof r);
    ic_load_params p = params();
    ic_arg a1[] = {A("INFER.LOAD"), A("s")};
    CHECK(!ic_load_parse(&r, a1, 2, "/tmp", &p, err, sizeof err) && strstr(err, "wrong number"));
    ic_arg a2[] = {A("INFER.LOAD"), A("s"), A("x.gguf"), A("CONTEXT"), A("0")};
    CHECK(!ic_load_parse(&r, a2, 5, "/tmp", &p, err, sizeof err) && strstr(err, "CONTEXT must be"));
    ic_arg a3[] = {A("INFER.LOAD"), A("s"), A("x.gguf"), A("BOGUS")};
    CHECK(!ic_load_parse(&r, a3, 4, "/tmp", &p, err, sizeof err) && strstr(err, "syntax"));
    ic_arg a4[] = {A("INFER.LOAD"), A(""), A("x.gguf")};
    CHECK(!ic_load_parse(&r, a4, 3, "/tmp", &p, err, sizeof err) && strstr(err, "model name"));
    ic_arg a5[] = {A("INFER.LOAD"), A("s"), A("../x.gguf")};
    CHECK(!ic_load_parse(&r, a5, 3, "/tmp", &p, err, sizeof err) && strstr(err, "infer-models-dir"));
    ic_arg a6[] = {A("INFER.LOAD"), A("s"), A("x.gguf"), A("ALIAS"), A("t"), A("u"), A("CONTEXT"), A("64")};
    ic_load *l = ic_load_parse(&r, a6, 8, "/tmp", &p, err, sizeof err);
    CHECK(l && l->n_names == 3 && !strcmp(l->names[2], "u") && l->n_ctx == 64);
    ic_load_free(&r, l);
    CHECK(r.in_flight == 0 && r.loads_running == 0);
    /* a missing file fails on the load thread with the engine's reason */
    if (!models_dir(dirbuf, sizeof dirbuf)) TEST_SKIP("stories260K.gguf not under ../shared");
    ic_arg a7[] = {A("INFER.LOAD"), A("s"), A("nosuch.gguf")};
    CHECK(load(&r, dirbuf, a7, 3, err, sizeof err) < 0 && strstr(err, "ERR cannot load model: "));
    CHECK(r.n == 0 && r.in_flight == 0 && r.loads_running == 0);
}

/* Submits a greedy request; returns it after IC_EV_DONE. */
static ic_req *run(ic_registry *r, ic_model *m, const char *prompt, int n, int streaming, char *err, size_t errlen) {
    char nbuf[16];
    snprintf(nbuf, sizeof nbuf, "%d", n);
    ic_arg argv[] = {A("INFER.GENERATE"), A("s"), A(prompt), A("MAXTOKENS"), A(nbuf), A("TEMPERATURE"), A("0")};
    ic_gen_opts o;
    if (ic_gen_parse(argv, 7, m, 0, &o, err, errlen) < 0) return NULL;
    int32_t np;
    int32_t *ids = ic_gen_prepare(m, &o, 128, o.input.ptr, o.input.len, &np, err, errlen);
    ic_req *q = ids ? ic_req_new(r, m, streaming, on_req, NULL) : NULL;
    pthread_mutex_lock(&W.mu);
    int want = W.reqs_done + 1;
    pthread_mutex_unlock(&W.mu);
    if (q && ic_req_submit(r, q, &o, ids, np, err, errlen) < 0) {
        ic_req_free(r, q);
        q = NULL;
    }
    free(ids);
    ic_gen_opts_free(&o);
    if (q) wait_for(&W.reqs_done, want);
    return q;
}

static void test_registry_and_requests(void) {
    char dirbuf[1024], err[IC_ERRLEN];
    const char *dir = models_dir(dirbuf, sizeof dirbuf);
    if (!dir) TEST_SKIP("stories260K.gguf not under ../shared");
    ic_registry r;
    memset(&r, 0, sizeof r);
    ic_arg la[] = {A("INFER.LOAD"), A("s"), A("stories260K.gguf"), A("CONTEXT"), A("256"), A("ALIAS"), A("t")};
    CHECKF(load(&r, dir, la, 7, err, sizeof err) == 0, "%s", err);
    CHECK(r.n == 2 && ic_find(&r, "s", 1) == ic_find(&r, "t", 1) && ic_find(&r, "s", 1)->refs == 2);
    ic_model *m = ic_find(&r, "s", 1);
    ic_model_desc d;
    ic_describe(&r.entries[0], &d);
    CHECK(!strcmp(d.arch, "llama") && d.context == 256 && d.params > 0 && d.requests == 0);
    ic_field mf[IC_MODEL_FIELDS];
    CHECK(ic_model_fields(&r.entries[1], &d, mf) == IC_MODEL_FIELDS && !strcmp(mf[0].name, "name") &&
          mf[0].slen == 1 && mf[0].s[0] == 't' && !strcmp(mf[2].name, "kind") && !strcmp(mf[2].s, "generator") &&
          !strcmp(mf[8].name, "context") && mf[8].ll == 256);

    /* grammar errors are checked against this model */
    ic_gen_opts o;
    ic_arg g1[] = {A("INFER.GENERATE"), A("s"), A("hi"), A("MAXTOKENS"), A("257")};
    CHECK(ic_gen_parse(g1, 5, m, 0, &o, err, sizeof err) < 0);
    CHECK_STR(err, "ERR MAXTOKENS must be an integer between 1 and 256");
    ic_gen_opts_free(&o);
    ic_arg g2[] = {A("INFER.GENERATE"), A("s"), A("TOKENSKEY"), A("k"), A("CHAT")};
    CHECK(ic_gen_parse(g2, 5, m, 0, &o, err, sizeof err) < 0 && strstr(err, "CHAT cannot"));
    ic_gen_opts_free(&o);
    ic_arg g3[] = {A("INFER.GENERATE"), A("s"), A("PROMPTKEY"), A("k"), A("STOP"), A("x"), A("STREAM"),
                   A("st"), A("STORE"), A("out"), A("SEED"), A("7"), A("TIMEOUT"), A("5")};
    CHECK(ic_gen_parse(g3, 14, m, 99, &o, err, sizeof err) == 0);
    CHECK(o.src == IC_SRC_PROMPTKEY && o.input.len == 1 && o.n_stop == 1 && o.stream.len == 2 &&
          o.store.len == 3 && o.sp.seed == 7 && o.timeout_ms == 5);
    ic_gen_opts_free(&o);
    ic_arg g4[] = {A("INFER.GENERATE"), A("s"), A("hi")};
    CHECK(ic_gen_parse(g4, 3, m, 99, &o, err, sizeof err) == 0 && o.timeout_ms == 99 && o.max_tokens == 0);
    int32_t np;
    int32_t *ids = ic_gen_prepare(m, &o, 1000, "hi", 2, &np, err, sizeof err);
    CHECK(ids && np >= 1 && o.max_tokens == 256 - np); /* the default is capped by the context */
    free(ids);
    ic_gen_opts_free(&o);

    /* a streamed request: the pieces, in order, are the answer */
    ic_req *q = run(&r, m, "Once upon a time", 60, 1, err, sizeof err);
    CHECKF(q != NULL, "%s", err);
    CHECK(ic_req_error(q, err, sizeof err) == NULL && q->reason == INFER_FINISH_LENGTH && q->st.generated_tokens == 60);
    char *buf;
    size_t *lens;
    size_t np2 = ic_req_take_pieces(q, &buf, &lens), total = 0;
    for (size_t i = 0; i < np2; i++) total += lens[i];
    CHECK(np2 > 1 && total == q->len && memcmp(buf, q->text, q->len) == 0);
    ic_field rf[IC_RESULT_FIELDS];
    CHECK(ic_req_result(q, rf) == IC_RESULT_FIELDS && !strcmp(rf[0].name, "text") && rf[0].kind == IC_F_STR &&
          rf[0].slen == q->len && !strcmp(rf[2].name, "finish") && rf[2].slen == 6 && !memcmp(rf[2].s, "length", 6) &&
          rf[1].ll == 60 && rf[7].kind == IC_F_DOUBLE);
    const char *fv[4];
    size_t fl[4];
    char num[24];
    ic_req_final_entry(q, fv, fl, num);
    CHECK(!strcmp(fv[0], "finish") && !strcmp(fv[1], "length") && fl[3] == 2 && !memcmp(fv[3], "60", 2));
    free(buf);
    free(lens);
    CHECK(W.text_events >= 1 && m->requests == 1 && r.in_flight == 1);
    ic_req_free(&r, q);
    CHECK(m->requests == 0 && r.in_flight == 0);

    /* reload while a request holds the old model: the name swaps, the old
     * model stays live until the request lets go */
    q = run(&r, m, "Once", 5, 0, err, sizeof err);
    CHECK(q != NULL);
    ic_arg lb[] = {A("INFER.LOAD"), A("s"), A("stories260K.gguf"), A("CONTEXT"), A("256")};
    CHECKF(load(&r, dir, lb, 5, err, sizeof err) == 0, "%s", err);
    CHECK(ic_find(&r, "s", 1) != m && ic_find(&r, "t", 1) == m && m->refs == 2);
    ic_arg tn = A("t");
    CHECK(ic_unregister(&r, &tn, err, sizeof err) == 0 && m->refs == 1 && m->live);
    int live = 0;
    for (ic_model *x = r.live; x; x = x->live_next) live++;
    CHECK(live == 2);
    ic_req_free(&r, q); /* frees m: its figures move to the retired totals */
    live = 0;
    for (ic_model *x = r.live; x; x = x->live_next) live++;
    CHECK(live == 1 && r.retired.completed == 2 && r.retired.generated_tokens == 65);
    CHECK(ic_unregister(&r, &tn, err, sizeof err) < 0 && strstr(err, "no such model 't'"));

    ic_field f[IC_STATS_FIELDS];
    int nf = ic_stats(&r, f);
    CHECK(nf == IC_STATS_FIELDS && !strcmp(f[0].name, "models") && f[0].ll == 1);
    CHECK(!strcmp(f[6].name, "completed") && f[6].ll == 2 && !strcmp(f[13].name, "generated_tokens") &&
          f[13].ll == 65 && f[19].kind == IC_F_DOUBLE);

    /* tokenizer commands */
    int64_t nt;
    int32_t *t = ic_tokenize(ic_find(&r, "s", 1), "Once upon", 9, &nt, err, sizeof err);
    CHECK(t && nt >= 2);
    char sid[3][16];
    ic_arg ia[3];
    for (int i = 0; i < 3 && i < nt; i++) snprintf(sid[i], 16, "%d", t[i]), ia[i] = A(sid[i]);
    size_t tl;
    char *text = ic_detokenize(ic_find(&r, "s", 1), ia, (int)(nt < 3 ? nt : 3), &tl, err, sizeof err);
    CHECK(text && tl >= 4 && memmem(text, tl, "Once", 4));
    free(text);
    free(t);
    ic_arg badid = A("512");
    CHECK(!ic_detokenize(ic_find(&r, "s", 1), &badid, 1, &tl, err, sizeof err) && strstr(err, "token id"));

    ic_free_all(&r);
    CHECK(r.n == 0 && r.live == NULL && r.in_flight == 0);
}

int main(void) {
    TEST_RUN(test_numbers);
    TEST_RUN(test_confine_path);
    TEST_RUN(test_decode_tokens);
    TEST_RUN(test_load_grammar);
    TEST_RUN(test_registry_and_requests);
    return TEST_DONE();
}
