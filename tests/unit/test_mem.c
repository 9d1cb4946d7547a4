/* test_mem.c - the engine's memory figures and infer-max-memory's budget.
 *
 * - infer_mem_estimate, from a file's header alone, equals byte for byte
 *   what loading the model, its ctx and its scheduler then report
 *   (infer_sched_mem), for decoders of every weight type in ../shared/refs,
 *   stories260K and gguf-gen's encoders; weights are within a few percent
 *   of the tensor bytes.
 * - The estimate of a 2 GiB file reads its header, not its weights (peak
 *   RSS stays small), and a broken header fails the estimate as it fails
 *   the load.
 * - A scheduler's figures do not move under requests: KV reserved and
 *   scratch stay what they were at creation, KV used never exceeds
 *   reserved, and comes back to 0.
 * - libinfercmd's budget: memory units, the human figures, reservations
 *   that fit or are refused with the figures, racing reservations never
 *   overshoot, release gives the room back. */
#include "test.h"

#include "infer.h"
#include "infercmd.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char path_buf[1024];

static const char *shared_path(const char *rel) {
    snprintf(path_buf, sizeof path_buf, "%s/%s", test_shared_dir(), rel);
    return path_buf;
}

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

static char tmpdir[256], gen_path[1100];

/* gguf-gen sits next to the tests directory this binary is in. */
static int find_gen(void) {
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 0;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) return 0;
    *slash = 0;
    snprintf(gen_path, sizeof gen_path, "%s/../gguf-gen", self);
    return access(gen_path, X_OK) == 0;
}

static int make_tmpdir(void) {
    if (tmpdir[0]) return 1;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_mem.XXXXXX");
    return mkdtemp(tmpdir) != NULL;
}

static void remove_tmpdir(void) {
    if (!tmpdir[0]) return;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("  note: could not remove %s\n", tmpdir);
}

/* Loads path as the front-ends do (model, pool, ctx, scheduler) and
 * compares its figures with the estimate.  Returns 0 when they agree. */
static int estimate_matches(const char *path, const infer_ctx_params *cp, int threads, const infer_sched_params *sp,
                            int near_tensor_bytes) {
    char err[512];
    infer_mem est, act;
    if (infer_mem_estimate(path, cp, threads, sp, &est, err, sizeof err) < 0) {
        printf("  estimate %s: %s\n", path, err);
        return -1;
    }
    infer_model *m = NULL;
    infer_threadpool *tp = NULL;
    infer_ctx *c = NULL;
    infer_sched *s = NULL;
    int rc = -1;
    if (infer_model_load(path, &m, err, sizeof err) < 0 || !(tp = infer_threadpool_create(threads, err, sizeof err)) ||
        infer_ctx_create(m, tp, cp, &c, err, sizeof err) < 0) {
        printf("  load %s: %s\n", path, err);
        goto out;
    }
    int enc = infer_model_is_encoder(m);
    if ((enc ? infer_embed_sched_create(c, sp, &s, err, sizeof err) : infer_sched_create(c, sp, &s, err, sizeof err)) <
        0) {
        printf("  scheduler %s: %s\n", path, err);
        goto out;
    }
    infer_sched_mem(s, &act);
    const infer_model_info *I = infer_model_get_info(m);
    if (est.weights != act.weights || est.kv_reserved != act.kv_reserved || est.scratch != act.scratch ||
        act.kv_used != 0) {
        printf("  %s: estimate weights %llu kv %llu scratch %llu, actual %llu %llu %llu (kv used %llu)\n", path,
               (unsigned long long)est.weights, (unsigned long long)est.kv_reserved, (unsigned long long)est.scratch,
               (unsigned long long)act.weights, (unsigned long long)act.kv_reserved, (unsigned long long)act.scratch,
               (unsigned long long)act.kv_used);
        goto out;
    }
    /* the file's image is its tensors plus a header: within a few percent
     * for any real model (stories260K's 512-token vocab is the largest share) */
    if (act.weights < I->weight_bytes ||
        (near_tensor_bytes && act.weights > I->weight_bytes + I->weight_bytes / 10 + 65536)) {
        printf("  %s: weights %llu vs tensor bytes %llu\n", path, (unsigned long long)act.weights,
               (unsigned long long)I->weight_bytes);
        goto out;
    }
    if (!enc && act.kv_reserved == 0) goto out;
    rc = 0;
out:
    if (s) infer_sched_free(s);
    infer_ctx_free(c);
    if (tp) infer_threadpool_free(tp);
    infer_model_unref(m);
    return rc;
}

static void test_estimate_equals_actual(void) {
    static const char *refs[] = {"refs/tiny-llama-F16.gguf", "refs/tiny-qwen2-F16.gguf", "refs/tiny-qwen3-BF16.gguf",
                                 "refs/tiny-qwen3-F32.gguf", "refs/tiny-qwen3-Q4_0.gguf", "refs/tiny-qwen3-Q4_K.gguf",
                                 "refs/tiny-qwen3-Q5_K.gguf", "refs/tiny-qwen3-Q6_K.gguf", "refs/tiny-qwen3-Q8_0.gguf",
                                 "models/cozy-creator_python-gen-worker/stories260K.gguf"};
    int tried = 0;
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        const char *p = shared_path(refs[i]);
        if (!file_exists(p)) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s", p);
        infer_ctx_params cp = {0};
        infer_sched_params sp = {0};
        CHECKF(estimate_matches(path, &cp, 1, &sp, 1) == 0, "%s with defaults", refs[i]);
        cp.n_ctx = 96;
        cp.kv_bytes = 3u << 20;
        cp.max_batch = 64;
        sp.max_active = 5;
        sp.max_queue = 7;
        CHECKF(estimate_matches(path, &cp, 3, &sp, 1) == 0, "%s with a context, KV budget and bounds", refs[i]);
        tried++;
    }
    if (!tried) TEST_SKIP("no models under %s", test_shared_dir());
}

static void test_estimate_encoders(void) {
    if (!find_gen() || !make_tmpdir()) TEST_SKIP("gguf-gen not built");
    char bert[400], nomic[400], cmd[4096];
    snprintf(bert, sizeof bert, "%s/bert.gguf", tmpdir);
    snprintf(nomic, sizeof nomic, "%s/nomic.gguf", tmpdir);
    snprintf(cmd, sizeof cmd,
             "'%s' -q --preset tiny-bert --type q8_0 --ctx 48 -o '%s' && '%s' -q --preset tiny-nomic-bert --type f16 "
             "--kv-heads 2 --ctx 48 -o '%s'",
             gen_path, bert, gen_path, nomic);
    CHECK(system(cmd) == 0);
    infer_ctx_params cp = {0};
    infer_sched_params sp = {0};
    CHECK(estimate_matches(bert, &cp, 2, &sp, 0) == 0);
    CHECK(estimate_matches(nomic, &cp, 1, &sp, 0) == 0);
    cp.n_ctx = 32;
    CHECK(estimate_matches(nomic, &cp, 2, &sp, 0) == 0);
}

/* A header over the first read (4 MiB: a 220k-token vocabulary) is read
 * in steps until it is whole. */
static void test_estimate_large_header(void) {
    if (!find_gen() || !make_tmpdir()) TEST_SKIP("gguf-gen not built");
    char big[400], cmd[4096];
    snprintf(big, sizeof big, "%s/bigvocab.gguf", tmpdir);
    snprintf(cmd, sizeof cmd,
             "'%s' -q --preset tiny-llama --layers 1 --embd 32 --heads 2 --ffn 64 --vocab-size 220000 --type q8_0 "
             "-o '%s'",
             gen_path, big);
    CHECK(system(cmd) == 0);
    infer_ctx_params cp = {0};
    infer_sched_params sp = {0};
    cp.n_ctx = 64;
    sp.max_active = 2;
    CHECK(estimate_matches(big, &cp, 1, &sp, 0) == 0);
}

static long peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A model of 2 GiB (stories260K followed by a sparse hole: the image a load
 * reads is the whole file) is sized up from its header. */
static void test_estimate_reads_header_only(void) {
    const char *src = shared_path("models/cozy-creator_python-gen-worker/stories260K.gguf");
    if (!file_exists(src)) TEST_SKIP("no stories260K");
    CHECK(make_tmpdir());
    char big[400], cmd[2048];
    snprintf(big, sizeof big, "%s/big.gguf", tmpdir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, big);
    CHECK(system(cmd) == 0);
    struct stat st;
    CHECK(stat(big, &st) == 0);
    uint64_t small = (uint64_t)st.st_size, size = 2ULL << 30;
    CHECK(truncate(big, (off_t)size) == 0);
    long before = peak_rss_kb();
    infer_mem est;
    char err[512];
    infer_ctx_params cp = {0};
    CHECKF(infer_mem_estimate(big, &cp, 1, NULL, &est, err, sizeof err) == 0, "%s", err);
    long grew_kb = peak_rss_kb() - before;
    CHECKF(grew_kb < 64 * 1024, "peak RSS grew by %ld KiB", grew_kb);
    CHECK(est.weights >= size && est.weights < size + small);
    /* a header cut short fails as the load fails, naming the file */
    CHECK(truncate(big, 100) == 0);
    CHECK(infer_mem_estimate(big, &cp, 1, NULL, &est, err, sizeof err) < 0);
    CHECKF(strstr(err, "big.gguf") && (strstr(err, "truncated") || strstr(err, "cannot fit")), "%s", err);
    /* not a GGUF */
    int fd = open(big, O_WRONLY | O_TRUNC);
    CHECK(fd >= 0);
    CHECK(write(fd, "not a model at all, just some bytes..", 38) == 38);
    close(fd);
    CHECK(infer_mem_estimate(big, &cp, 1, NULL, &est, err, sizeof err) < 0);
    CHECKF(strstr(err, "magic"), "%s", err);
    CHECK(infer_mem_estimate("/nonexistent/x.gguf", &cp, 1, NULL, &est, err, sizeof err) < 0);
}

/* ---- a scheduler's figures under requests ------------------------------------------- */

typedef struct {
    pthread_mutex_t mu;
    int done;
} waiter;

static void on_done(void *ud, int reason, const infer_request_stats *st, const char *msg) {
    (void)reason, (void)st, (void)msg;
    waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->done++;
    pthread_mutex_unlock(&w->mu);
}

static void test_sched_figures_fixed(void) {
    const char *p = shared_path("models/cozy-creator_python-gen-worker/stories260K.gguf");
    if (!file_exists(p)) TEST_SKIP("no stories260K");
    char err[512];
    infer_model *m;
    CHECKF(infer_model_load(p, &m, err, sizeof err) == 0, "%s", err);
    infer_threadpool *tp = infer_threadpool_create(1, err, sizeof err);
    CHECK(tp);
    infer_ctx *c;
    infer_ctx_params cp = {0};
    cp.kv_bytes = 1u << 20;
    CHECK(infer_ctx_create(m, tp, &cp, &c, err, sizeof err) == 0);
    infer_model_unref(m); /* the ctx holds it */
    infer_sched *s;
    infer_sched_params sp = {0};
    sp.max_active = 4;
    sp.max_queue = 64;
    CHECK(infer_sched_create(c, &sp, &s, err, sizeof err) == 0);
    infer_mem at0, now;
    infer_sched_mem(s, &at0);
    waiter w = {PTHREAD_MUTEX_INITIALIZER, 0};
    int32_t prompt[40];
    for (int i = 0; i < 40; i++) prompt[i] = 1 + (i * 7) % 400;
    int n = 24, submitted = 0;
    for (int i = 0; i < n; i++) {
        infer_request r;
        memset(&r, 0, sizeof r);
        r.prompt = prompt;
        r.n_prompt = 8 + i;
        r.max_tokens = 24;
        infer_sampler_defaults(&r.sampling);
        r.sampling.seed = (uint64_t)i;
        r.on_done = on_done;
        r.ud = &w;
        if (infer_sched_submit(s, &r, NULL, err, sizeof err) == 0) submitted++;
    }
    CHECK(submitted == n);
    uint64_t peak_used = 0;
    for (;;) {
        infer_sched_mem(s, &now);
        CHECK(now.weights == at0.weights && now.kv_reserved == at0.kv_reserved && now.scratch == at0.scratch);
        CHECK(now.kv_used <= now.kv_reserved);
        if (now.kv_used > peak_used) peak_used = now.kv_used;
        pthread_mutex_lock(&w.mu);
        int done = w.done;
        pthread_mutex_unlock(&w.mu);
        if (done == n) break;
        usleep(200);
    }
    CHECK(peak_used > 0);
    /* the snapshot is taken at the top of the scheduler's next loop */
    for (int i = 0; i < 1000; i++) {
        infer_sched_mem(s, &now);
        if (now.kv_used == 0) break;
        usleep(1000);
    }
    CHECK_EQ_INT(now.kv_used, 0);
    infer_sched_free(s);
    infer_ctx_free(c);
    infer_threadpool_free(tp);
}

/* ---- libinfercmd's budget ------------------------------------------------------------ */

static void test_parse_and_human(void) {
    uint64_t v;
    CHECK(ic_parse_mem("0", &v) == 0 && v == 0);
    CHECK(ic_parse_mem("123", &v) == 0 && v == 123);
    CHECK(ic_parse_mem("2gb", &v) == 0 && v == 2ULL << 30);
    CHECK(ic_parse_mem("512MB", &v) == 0 && v == 512ULL << 20);
    CHECK(ic_parse_mem("3k", &v) == 0 && v == 3000);
    CHECK(ic_parse_mem("1g", &v) == 0 && v == 1000000000ULL);
    CHECK(ic_parse_mem("", &v) < 0);
    CHECK(ic_parse_mem("gb", &v) < 0);
    CHECK(ic_parse_mem("-1", &v) < 0);
    CHECK(ic_parse_mem("1.5gb", &v) < 0);
    CHECK(ic_parse_mem("99999999999999999999", &v) < 0);
    CHECK(ic_parse_mem("9999999999gb", &v) < 0);
    char b[32];
    ic_human_bytes(812, b, sizeof b);
    CHECK_STR(b, "812 B");
    ic_human_bytes(3 * 1024 + 512, b, sizeof b);
    CHECK_STR(b, "3.5 KiB");
    ic_human_bytes(44ULL * 1024 * 1024 + 400 * 1024, b, sizeof b);
    CHECK_STR(b, "44.4 MiB");
    ic_human_bytes(1ULL << 30, b, sizeof b);
    CHECK_STR(b, "1.00 GiB");
    ic_info_human(1ULL << 30, b, sizeof b);
    CHECK_STR(b, "1.00G");
    ic_info_human(100, b, sizeof b);
    CHECK_STR(b, "100B");
    /* the default: half of the RAM (or of a cgroup's lower limit) */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = (uint64_t)pages * (uint64_t)page, dflt = ic_default_max_memory();
    CHECK(dflt > 0 && dflt <= ram / 2);
}

static void test_budget_reserve(void) {
    ic_registry *r = calloc(1, sizeof *r);
    CHECK(r);
    ic_model a = {0}, b = {0}, c = {0};
    a.budget = b.budget = c.budget = &r->budget;
    infer_mem need = {600ULL << 20, 100ULL << 20, 0, 23ULL << 20};
    uint64_t max = 1ULL << 30;
    char err[IC_ERRLEN];
    CHECK(ic_budget_reserve(&a, max, "qwen", &need, err, sizeof err) == 0);
    CHECK(atomic_load(&r->budget.charged) == infer_mem_total(&need));
    CHECK(atomic_load(&r->budget.loads) == 1);
    /* the load comes out a little smaller: the charge follows */
    infer_mem got = need;
    got.scratch -= 1 << 20;
    CHECK(ic_budget_settle(&a, max, "qwen", &got, err, sizeof err) == 0);
    CHECK(a.charged == infer_mem_total(&got));
    ic_budget_commit(&a);
    CHECK(atomic_load(&r->budget.models) == 1 && atomic_load(&r->budget.loads) == 0);
    CHECK(atomic_load(&r->budget.loaded) == infer_mem_total(&got));
    /* a second one does not fit: refused with the figures */
    infer_mem more = {640ULL << 20, 128ULL << 20, 0, (uint64_t)(44.4 * 1024 * 1024)};
    CHECK(ic_budget_reserve(&b, max, "big\r\none", &more, err, sizeof err) < 0);
    CHECK_STR(err, "infer-max-memory: loading 'big??one' needs 812.4 MiB (weights 640.0 MiB + KV 128.0 MiB + scratch "
                   "44.4 MiB), 302.0 MiB of 1.00 GiB free (1 model loaded uses 722.0 MiB)");
    CHECK(!b.reserved && atomic_load(&r->budget.charged) == infer_mem_total(&got));
    /* a load in progress is named too */
    infer_mem small = {100ULL << 20, 0, 0, 0};
    CHECK(ic_budget_reserve(&c, max, "c", &small, err, sizeof err) == 0);
    CHECK(ic_budget_reserve(&b, max, "b", &more, err, sizeof err) < 0);
    CHECKF(strstr(err, "202.0 MiB of 1.00 GiB free (1 model loaded uses 722.0 MiB; 1 load in progress reserves "
                       "100.0 MiB)"),
           "%s", err);
    /* no limit: anything fits */
    CHECK(ic_budget_reserve(&b, 0, "b", &more, err, sizeof err) == 0);
    ic_budget_release(&b);
    ic_budget_release(&c);
    /* a rise at settle beyond the budget is refused; the reservation stays for release */
    CHECK(ic_budget_reserve(&c, max, "c", &small, err, sizeof err) == 0);
    infer_mem huge = {900ULL << 20, 0, 0, 0};
    CHECK(ic_budget_settle(&c, max, "c", &huge, err, sizeof err) < 0);
    CHECKF(strstr(err, "loading 'c' needs 900.0 MiB"), "%s", err);
    ic_budget_release(&c);
    /* lowering the budget below what is loaded: nothing fits, figures say so */
    CHECK(ic_budget_reserve(&b, 100, "b", &small, err, sizeof err) < 0);
    CHECKF(strstr(err, "0 B of 100 B free"), "%s", err);
    ic_budget_release(&a);
    CHECK(atomic_load(&r->budget.charged) == 0 && atomic_load(&r->budget.loaded) == 0);
    CHECK(atomic_load(&r->budget.models) == 0 && atomic_load(&r->budget.loads) == 0);
    /* the room is back */
    CHECK(ic_budget_reserve(&b, max, "b", &more, err, sizeof err) == 0);
    ic_budget_release(&b);
    free(r);
}

#define RACE_TRIES 1000

typedef struct {
    ic_registry *r;
    int won;
    ic_model m[RACE_TRIES];
} racer;

static void *race(void *arg) {
    racer *x = arg;
    char err[IC_ERRLEN];
    infer_mem need = {1000, 0, 0, 0};
    for (int i = 0; i < RACE_TRIES; i++) {
        x->m[i].budget = &x->r->budget;
        if (ic_budget_reserve(&x->m[i], 50000, "r", &need, err, sizeof err) == 0) x->won++;
    }
    return NULL;
}

static void test_budget_race(void) {
    ic_registry *r = calloc(1, sizeof *r);
    racer *x = calloc(4, sizeof *x);
    pthread_t t[4];
    int started = 0, won = 0;
    if (r && x)
        for (; started < 4; started++) {
            x[started].r = r;
            if (pthread_create(&t[started], NULL, race, &x[started]) != 0) break;
        }
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        won += x[i].won;
    }
    uint64_t charged = r ? atomic_load(&r->budget.charged) : 0;
    for (int i = 0; x && i < started; i++)
        for (int k = 0; k < RACE_TRIES; k++) ic_budget_release(&x[i].m[k]);
    uint64_t after = r ? atomic_load(&r->budget.charged) : 1;
    free(x);
    free(r);
    CHECK(started == 4);
    CHECK_EQ_INT(won, 50);
    CHECK_EQ_INT(charged, 50000);
    CHECK_EQ_INT(after, 0);
}

int main(void) {
    TEST_RUN(test_estimate_equals_actual);
    TEST_RUN(test_estimate_encoders);
    TEST_RUN(test_estimate_reads_header_only);
    TEST_RUN(test_estimate_large_header);
    TEST_RUN(test_sched_figures_fixed);
    TEST_RUN(test_parse_and_human);
    TEST_RUN(test_budget_reserve);
    TEST_RUN(test_budget_race);
    remove_tmpdir();
    return TEST_DONE();
}
