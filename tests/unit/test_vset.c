/* test_vset.c - libvset: distance kernels, the name index, the HNSW graph
 * under adds, removes and updates, CAS inserts, concurrent inserts, and
 * serialization of good and hostile bytes.
 *
 * The graph tests lean on vset_check, which verifies every invariant the
 * deletion repair relies on (forward and reverse links mirror each other,
 * links point at live nodes of high enough levels, the entry point is on
 * the top level), after each phase of a random workload; recall is checked
 * against brute force computed here. */
#include "test.h"

#include "vdist.h"
#include "vnames.h"
#include "vset.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t rng_state = 12345;
static uint64_t rnd64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rnd01(void) { return ((rnd64() >> 11) + 0.5) / 9007199254740992.0; }
static float gauss(void) { return (float)(sqrt(-2 * log(rnd01())) * cos(2 * M_PI * rnd01())); }

/* n vectors of dim around 20 cluster centres. */
static float *clustered(int n, int dim) {
    float *c = malloc(sizeof(float) * 20 * dim), *v = malloc(sizeof(float) * (size_t)n * dim);
    for (int i = 0; i < 20 * dim; i++) c[i] = gauss();
    for (int i = 0; i < n; i++) {
        int k = (int)(rnd01() * 20);
        for (int j = 0; j < dim; j++) v[(size_t)i * dim + j] = c[k * dim + j] + 0.3f * gauss();
    }
    free(c);
    return v;
}

static double cosine(const float *a, const float *b, int dim) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static vset *new_set(int dim, int quant, int m) {
    vset_config cfg = {(uint32_t)dim, 0, quant, m, 7};
    char err[128];
    return vset_new(&cfg, err, sizeof err);
}

static int add(vset *s, const float *v, int i) {
    char name[32], err[128];
    snprintf(name, sizeof name, "e%d", i);
    return vset_add(s, v, name, strlen(name), 0, NULL, 0, err, sizeof err);
}

static int rem(vset *s, int i) {
    char name[32];
    snprintf(name, sizeof name, "e%d", i);
    return vset_remove(s, name, strlen(name));
}

static int name_index(vset *s, uint32_t id) {
    size_t len;
    const char *n = vset_name(s, id, &len);
    return n ? atoi(n + 1) : -1;
}

/* recall@k of the graph against a brute-force scan over live[]. */
static double recall(vset *s, const float *v, const int *live, int n, int dim, int k, int ef, int nq) {
    double hit = 0;
    vset_hit *h = calloc((size_t)k, sizeof *h);
    int *best = malloc(sizeof(int) * k);
    double *bs = malloc(sizeof(double) * k);
    for (int q = 0; q < nq; q++) {
        float *qv = malloc(sizeof(float) * dim);
        for (int j = 0; j < dim; j++) qv[j] = v[(size_t)(q * 7 % n) * dim + j] + 0.2f * gauss();
        for (int i = 0; i < k; i++) best[i] = -1, bs[i] = -2;
        for (int i = 0; i < n; i++) {
            if (!live[i]) continue;
            double c = cosine(qv, v + (size_t)i * dim, dim);
            if (c <= bs[k - 1]) continue;
            int j = k - 1;
            while (j > 0 && bs[j - 1] < c) bs[j] = bs[j - 1], best[j] = best[j - 1], j--;
            bs[j] = c, best[j] = i;
        }
        vset_query qq = {qv, -1, (uint32_t)k, (uint32_t)ef, 0, NULL, 0, 0, 0, 0};
        int got = vset_search(s, &qq, h);
        for (int i = 0; i < got; i++) {
            int id = name_index(s, h[i].id);
            for (int j = 0; j < k; j++)
                if (best[j] == id) {
                    hit++;
                    break;
                }
        }
        free(qv);
    }
    free(h);
    free(best);
    free(bs);
    return hit / ((double)nq * k);
}

/* ---- kernels ------------------------------------------------------------------ */

static void test_kernels_match_reference(void) {
    const vdist_kernels *ks[4];
    int nk = vdist_all(ks, 4);
    CHECK(nk >= 1);
    CHECK_STR(ks[0]->name, "scalar");
    for (uint32_t n = 1; n <= 300; n += (n < 70 ? 1 : 37)) {
        float a[300], b[300];
        int8_t qa[300], qb[300];
        uint64_t wa[5], wb[5];
        for (uint32_t i = 0; i < n; i++) {
            a[i] = gauss(), b[i] = gauss();
            qa[i] = (int8_t)((int)(rnd64() % 255) - 127);
            qb[i] = (int8_t)((int)(rnd64() % 255) - 127);
        }
        for (int i = 0; i < 5; i++) wa[i] = rnd64(), wb[i] = rnd64();
        uint32_t words = (n + 63) / 64;
        for (int k = 1; k < nk; k++) {
            CHECK_NEAR(ks[k]->dot_f32(a, b, n), ks[0]->dot_f32(a, b, n), 1e-3 * n);
            CHECK_EQ_INT(ks[k]->dot_i8(qa, qb, n), ks[0]->dot_i8(qa, qb, n));
            CHECK_NEAR(ks[k]->dot_f32_i8(a, qb, n), ks[0]->dot_f32_i8(a, qb, n), 1e-2 * n);
            CHECK_EQ_INT(ks[k]->hamming(wa, wb, words), ks[0]->hamming(wa, wb, words));
        }
    }
    /* The extremes of int8: -127 * -127 summed over many lanes. */
    int8_t lo[256];
    for (int i = 0; i < 256; i++) lo[i] = -127;
    for (int k = 0; k < nk; k++) CHECK_EQ_INT(ks[k]->dot_i8(lo, lo, 256), 256 * 127 * 127);
    printf("  kernels: %s (best %s)\n", ks[nk - 1]->name, vdist_best()->name);
}

/* ---- names ---------------------------------------------------------------------- */

#define NNAMES 3000
static char names[NNAMES][12];
static size_t name_len[NNAMES];
static const char *key_of(void *ud, uint32_t id, size_t *len) {
    (void)ud;
    *len = name_len[id];
    return names[id];
}

static int cmp_names(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    size_t m = name_len[x] < name_len[y] ? name_len[x] : name_len[y];
    int c = memcmp(names[x], names[y], m);
    if (c) return c;
    return (name_len[x] > name_len[y]) - (name_len[x] < name_len[y]);
}

typedef struct walk {
    int out[NNAMES];
    int n, stop;
} walk;
static int walk_fn(void *ud, uint32_t id) {
    walk *w = ud;
    w->out[w->n++] = (int)id;
    return w->stop && w->n >= w->stop;
}

static void test_names_order_and_lookup(void) {
    /* Short binary names over a 3-letter alphabet with NUL bytes: many
     * prefixes of one another and many near-duplicates. */
    int n = 0;
    for (int i = 0; i < NNAMES; i++) {
        size_t len = rnd64() % 7;
        for (size_t j = 0; j < len; j++) names[i][j] = "\0ab"[rnd64() % 3];
        int dup = 0;
        for (int k = 0; k < i && !dup; k++)
            dup = name_len[k] == len && memcmp(names[k], names[i], len) == 0 && name_len[k] != (size_t)-1;
        name_len[i] = dup ? (size_t)-1 : len;
        if (!dup) n++;
    }
    vnames t;
    vnames_init(&t, key_of, NULL);
    int *live = malloc(sizeof(int) * NNAMES), nl = 0;
    for (int i = 0; i < NNAMES; i++) {
        if (name_len[i] == (size_t)-1) continue;
        CHECK_EQ_INT(vnames_insert(&t, names[i], name_len[i], (uint32_t)i), 1);
        CHECK_EQ_INT(vnames_insert(&t, names[i], name_len[i], (uint32_t)i), 0);
        live[nl++] = i;
    }
    CHECK_EQ_INT(nl, n);
    for (int i = 0; i < nl; i++) CHECK_EQ_INT(vnames_find(&t, names[live[i]], name_len[live[i]]), live[i]);
    /* Remove every third, then the walk must be the sorted survivors. */
    int kept = 0;
    for (int i = 0; i < nl; i++) {
        if (i % 3 == 0) CHECK_EQ_INT(vnames_remove(&t, names[live[i]], name_len[live[i]]), 1);
        else live[kept++] = live[i];
    }
    qsort(live, (size_t)kept, sizeof *live, cmp_names);
    walk w = {{0}, 0, 0};
    CHECK_EQ_INT(vnames_walk(&t, NULL, 0, 0, walk_fn, &w), 0);
    CHECK_EQ_INT(w.n, kept);
    for (int i = 0; i < kept; i++) CHECK_EQ_INT(w.out[i], live[i]);
    /* From every possible start, inclusive and exclusive, for present and
     * absent start names. */
    for (int trial = 0; trial < 400; trial++) {
        char st[8];
        size_t sl = rnd64() % 7;
        for (size_t j = 0; j < sl; j++) st[j] = "\0ab"[rnd64() % 3];
        int excl = (int)(rnd64() & 1);
        int first = 0;
        for (; first < kept; first++) {
            int x = live[first];
            size_t m = name_len[x] < sl ? name_len[x] : sl;
            int c = memcmp(names[x], st, m);
            if (!c) c = (name_len[x] > sl) - (name_len[x] < sl);
            if (c > 0 || (c == 0 && !excl)) break;
        }
        walk w2 = {{0}, 0, 5};
        vnames_walk(&t, st, sl, excl, walk_fn, &w2);
        int expect = kept - first < 5 ? kept - first : 5;
        CHECKF(w2.n == expect, "trial %d: %d names, expected %d", trial, w2.n, expect);
        for (int i = 0; i < expect; i++) CHECK_EQ_INT(w2.out[i], live[first + i]);
    }
    vnames_clear(&t);
    free(live);
}

/* ---- the graph -------------------------------------------------------------------- */

static void test_graph_recall_and_churn(void) {
    const int n = 3000, dim = 24;
    float *v = clustered(n, dim);
    int *live = calloc(n, sizeof *live);
    int quants[] = {VSET_NOQUANT, VSET_Q8};
    for (int qi = 0; qi < 2; qi++) {
        vset *s = new_set(dim, quants[qi], 8);
        CHECK(s);
        for (int i = 0; i < n; i++) {
            CHECK_EQ_INT(add(s, v + (size_t)i * dim, i), 1);
            live[i] = 1;
        }
        char err[256];
        CHECKF(vset_check(s, err, sizeof err) == 0, "%s", err);
        CHECK_EQ_INT(vset_card(s), n);
        double r0 = recall(s, v, live, n, dim, 10, 100, 100);
        CHECKF(r0 > 0.9, "recall %.3f", r0);
        /* Remove 30%, checking invariants as we go, then re-add half. */
        for (int i = 0; i < n; i++)
            if (rnd01() < 0.3) {
                CHECK_EQ_INT(rem(s, i), 1);
                CHECK_EQ_INT(rem(s, i), 0);
                live[i] = 0;
                if (i % 97 == 0) CHECKF(vset_check(s, err, sizeof err) == 0, "after removing %d: %s", i, err);
            }
        CHECKF(vset_check(s, err, sizeof err) == 0, "%s", err);
        for (int i = 0; i < n; i++)
            if (!live[i] && (i & 1)) {
                CHECK_EQ_INT(add(s, v + (size_t)i * dim, i), 1);
                live[i] = 1;
            }
        CHECKF(vset_check(s, err, sizeof err) == 0, "%s", err);
        double r1 = recall(s, v, live, n, dim, 10, 100, 100);
        printf("  %s: recall@10 %.3f fresh, %.3f after churn\n", qi ? "q8" : "noquant", r0, r1);
        CHECKF(r1 > r0 - 0.02, "recall fell from %.3f to %.3f", r0, r1);
        /* Every element finds itself first. */
        for (int i = 0; i < n; i += 101) {
            if (!live[i]) continue;
            vset_hit h[1];
            vset_query q = {v + (size_t)i * dim, -1, 1, 50, 0, NULL, 0, 0, 0, 0};
            CHECK_EQ_INT(vset_search(s, &q, h), 1);
            CHECK_EQ_INT(name_index(s, h[0].id), i);
        }
        /* Down to empty and up again. */
        for (int i = 0; i < n; i++)
            if (live[i]) {
                CHECK_EQ_INT(rem(s, i), 1);
                live[i] = 0;
            }
        CHECK_EQ_INT(vset_card(s), 0);
        CHECK_EQ_INT(vset_max_level(s), -1);
        CHECKF(vset_check(s, err, sizeof err) == 0, "%s", err);
        for (int i = 0; i < 50; i++) CHECK_EQ_INT(add(s, v + (size_t)i * dim, i), 1);
        CHECKF(vset_check(s, err, sizeof err) == 0, "%s", err);
        vset_free(s);
    }
    free(v);
    free(live);
}

static void test_update_and_attributes(void) {
    vset *s = new_set(3, VSET_NOQUANT, 16);
    char err[128];
    float a[3] = {1, 0, 0}, b[3] = {0, 1, 0}, out[3];
    CHECK_EQ_INT(vset_add(s, a, "x", 1, 0, "{\"y\":1}", 7, err, sizeof err), 1);
    CHECK_EQ_INT(vset_add(s, b, "y", 1, 0, NULL, 0, err, sizeof err), 1);
    CHECK_EQ_INT(vset_add(s, b, "x", 1, 0, NULL, 0, err, sizeof err), 0); /* present: vector kept */
    int64_t id = vset_find(s, "x", 1);
    CHECK(id >= 0);
    vset_get_vector(s, (uint32_t)id, out);
    CHECK_NEAR(out[0], 1, 1e-6);
    uint64_t uid = vset_max_node_uid(s);
    CHECK_EQ_INT(vset_update(s, (uint32_t)id, b, 0, err, sizeof err), 0);
    CHECK_EQ_INT(vset_max_node_uid(s), uid + 1);
    vset_get_vector(s, (uint32_t)id, out);
    CHECK_NEAR(out[1], 1, 1e-6);
    CHECK_NEAR(out[0], 0, 1e-6);
    size_t len;
    CHECK_STR(vset_attr(s, (uint32_t)id, &len), "{\"y\":1}");
    CHECK_EQ_INT(vset_attr_count(s), 1);
    CHECK_EQ_INT(vset_set_attr(s, (uint32_t)id, "", 0), 0);
    CHECK(vset_attr(s, (uint32_t)id, &len) == NULL);
    CHECK_EQ_INT(vset_attr_count(s), 0);
    CHECK_EQ_INT(vset_check(s, err, sizeof err), 0);
    /* Non-finite components are refused. */
    float bad[3] = {1, NAN, 0};
    CHECK_EQ_INT(vset_add(s, bad, "z", 1, 0, NULL, 0, err, sizeof err), -1);
    CHECK_EQ_INT(vset_card(s), 2);
    vset_free(s);
}

static void test_quantization_forms(void) {
    char err[128];
    /* Q8: int8 = round(x / max|x| * 127) of the normalised vector. */
    vset *s = new_set(4, VSET_Q8, 16);
    float v[4] = {3, -4, 0, 0}, out[4];
    CHECK_EQ_INT(vset_add(s, v, "a", 1, 0, NULL, 0, err, sizeof err), 1);
    const void *raw;
    size_t len;
    float l2, range;
    vset_get_raw(s, 0, &raw, &len, &l2, &range);
    const int8_t *q = raw;
    CHECK_EQ_INT(len, 4);
    CHECK_NEAR(l2, 5, 1e-6);
    CHECK_NEAR(range, 0.8, 1e-6);
    CHECK_EQ_INT(q[0], 95); /* 0.6 / 0.8 * 127 = 95.25 */
    CHECK_EQ_INT(q[1], -127);
    vset_get_vector(s, 0, out);
    CHECK_NEAR(out[0], 95 / 127.0 * 0.8 * 5, 1e-5);
    vset_free(s);
    /* BIN: one bit per positive component, +-1 back. */
    s = new_set(70, VSET_BIN, 16);
    float w[70];
    for (int i = 0; i < 70; i++) w[i] = (i % 3 == 0) ? 1.0f : -1.0f;
    CHECK_EQ_INT(vset_add(s, w, "b", 1, 0, NULL, 0, err, sizeof err), 1);
    vset_get_raw(s, 0, &raw, &len, &l2, &range);
    CHECK_EQ_INT(len, 16);
    const uint64_t *bits = raw;
    CHECK_EQ_INT(bits[0] & 0xf, 0x9); /* bits 0 and 3 */
    CHECK_EQ_INT(bits[1] >> 6, 0);    /* past the dimension: zero */
    float back[70];
    vset_get_vector(s, 0, back);
    for (int i = 0; i < 70; i++) CHECK_NEAR(back[i], w[i], 0);
    vset_free(s);
    /* A zero vector keeps norm 1 and scores 0.5 against anything. */
    s = new_set(2, VSET_NOQUANT, 16);
    float z[2] = {0, 0}, one[2] = {1, 0};
    CHECK_EQ_INT(vset_add(s, z, "z", 1, 0, NULL, 0, err, sizeof err), 1);
    CHECK_EQ_INT(vset_add(s, one, "o", 1, 0, NULL, 0, err, sizeof err), 1);
    vset_get_raw(s, 0, &raw, &len, &l2, &range);
    CHECK_NEAR(l2, 1, 0);
    CHECK_NEAR(vset_similarity(s, 0, 1), 0.5, 1e-9);
    vset_free(s);
}

/* Q8 re-scores with the query's floats; the int8 rounding must never put a
 * score above 1 (or below 0), even for a query equal to a stored vector. */
static void test_q8_scores_stay_in_range(void) {
    const int n = 300, dim = 24;
    float *v = clustered(n, dim);
    vset *s = new_set(dim, VSET_Q8, 8);
    for (int i = 0; i < n; i++) add(s, v + (size_t)i * dim, i);
    vset_hit h[10];
    for (int i = 0; i < n; i++) {
        vset_query q = {v + (size_t)i * dim, -1, 10, 50, 0, NULL, 0, 0, 0, 0};
        int got = vset_search(s, &q, h);
        for (int k = 0; k < got; k++) CHECKF(h[k].sim >= 0 && h[k].sim <= 1, "score %.9f", h[k].sim);
        q.truth = 1;
        got = vset_search(s, &q, h);
        for (int k = 0; k < got; k++) CHECKF(h[k].sim >= 0 && h[k].sim <= 1, "TRUTH score %.9f", h[k].sim);
    }
    vset_free(s);
    free(v);
}

static void test_reduce_projection(void) {
    vset_config cfg = {8, 4, VSET_NOQUANT, 16, 1};
    char err[128];
    vset *s = vset_new(&cfg, err, sizeof err);
    CHECK(s);
    CHECK_EQ_INT(vset_dim(s), 4);
    CHECK_EQ_INT(vset_input_dim(s), 8);
    /* Row i, column j: sign of parity(i & j), scale 1/sqrt(8): the unit
     * vector e_j maps to the signs of column j, times 5 for a norm of 5. */
    float e3[8] = {0, 0, 0, 5, 0, 0, 0, 0}, out[4];
    CHECK_EQ_INT(vset_add(s, e3, "a", 1, 0, NULL, 0, err, sizeof err), 1);
    vset_get_vector(s, 0, out);
    for (int i = 0; i < 4; i++) {
        float expect = (__builtin_parity((unsigned)i & 3u) ? -1.0f : 1.0f) * 5 / sqrtf(8);
        CHECK_NEAR(out[i], expect, 1e-5);
    }
    vset_free(s);
    cfg.reduce = 9;
    CHECK(vset_new(&cfg, err, sizeof err) == NULL);
}

static void test_epsilon_and_ele(void) {
    vset *s = new_set(2, VSET_NOQUANT, 16);
    char err[128];
    float vs[5][2] = {{1, 1}, {0, 1}, {0, 0}, {0, -1}, {-1, -1}};
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(add(s, vs[i], i), 1);
    float q[2] = {1, 1};
    vset_hit h[5];
    /* EPSILON keeps hits with distance / 2 <= epsilon (Redis's tests). */
    double eps[4] = {0.5, 0.2, 0.001, 1};
    int expect[4] = {3, 2, 1, 5};
    for (int i = 0; i < 4; i++) {
        vset_query qq = {q, -1, 5, 5, eps[i], NULL, 0, 0, 0, 0};
        CHECK_EQ_INT(vset_search(s, &qq, h), expect[i]);
        qq.truth = 1;
        CHECK_EQ_INT(vset_search(s, &qq, h), expect[i]);
    }
    /* ELE search finds the element itself first with similarity 1. */
    vset_query qe = {NULL, vset_find(s, "e0", 2), 1, 10, 0, NULL, 0, 0, 0, 0};
    CHECK_EQ_INT(vset_search(s, &qe, h), 1);
    CHECK_EQ_INT(name_index(s, h[0].id), 0);
    CHECK_NEAR(h[0].sim, 1, 1e-6);
    CHECK_EQ_INT(vset_check(s, err, sizeof err), 0);
    vset_free(s);
}

/* ---- CAS -------------------------------------------------------------------------- */

static void test_cas_prepare_commit(void) {
    const int n = 800, dim = 16;
    float *v = clustered(n + 10, dim);
    vset *s = new_set(dim, VSET_NOQUANT, 8);
    char err[128];
    for (int i = 0; i < n; i++) add(s, v + (size_t)i * dim, i);
    /* Prepared, nothing changed: committed from the candidates. */
    vset_prep *p = vset_prepare(s, v + (size_t)n * dim, 0, err, sizeof err);
    CHECK(p);
    CHECK_EQ_INT(vset_commit(s, p, "c1", 2, NULL, 0, err, sizeof err), 1);
    /* Prepared, then a deletion: the commit searches again. */
    p = vset_prepare(s, v + (size_t)(n + 1) * dim, 0, err, sizeof err);
    for (int i = 0; i < 50; i++) rem(s, i);
    CHECK_EQ_INT(vset_commit(s, p, "c2", 2, "{}", 2, err, sizeof err), 1);
    /* A name that exists meanwhile: 0, nothing added. */
    p = vset_prepare(s, v + (size_t)(n + 2) * dim, 0, err, sizeof err);
    CHECK_EQ_INT(vset_commit(s, p, "c1", 2, NULL, 0, err, sizeof err), 0);
    CHECK_EQ_INT(vset_card(s), n - 50 + 2);
    CHECKF(vset_check(s, err, sizeof err) == 0, "%s", err);
    /* Each finds itself. */
    for (int k = 0; k < 2; k++) {
        vset_hit h[1];
        vset_query q = {v + (size_t)(n + k) * dim, -1, 1, 50, 0, NULL, 0, 0, 0, 0};
        CHECK_EQ_INT(vset_search(s, &q, h), 1);
        size_t len;
        CHECK_STR(vset_name(s, h[0].id, &len), k ? "c2" : "c1");
    }
    vset_free(s);
    free(v);
}

/* ---- threads ------------------------------------------------------------------------ */

typedef struct job {
    vset *s;
    const float *v;
    int from, to, dim, bad;
} job;

static void *inserter(void *a) {
    job *j = a;
    for (int i = j->from; i < j->to; i++)
        if (add(j->s, j->v + (size_t)i * j->dim, i) != 1) j->bad++;
    return NULL;
}

static void *searcher(void *a) {
    job *j = a;
    vset_hit h[10];
    for (int i = j->from; i < j->to; i++) {
        vset_query q = {j->v + (size_t)i * j->dim, -1, 10, 40, 0, NULL, 0, 0, 0, 0};
        if (vset_search(j->s, &q, h) < 0) j->bad++;
    }
    return NULL;
}

static void test_concurrent_inserts(void) {
    const int n = 6000, dim = 16, T = 4;
    float *v = clustered(n, dim);
    vset *s = new_set(dim, VSET_Q8, 8);
    pthread_t th[T + 1];
    job jb[T + 1];
    for (int t = 0; t < T; t++) {
        jb[t] = (job){s, v, n * t / T, n * (t + 1) / T, dim, 0};
        pthread_create(&th[t], NULL, inserter, &jb[t]);
    }
    jb[T] = (job){s, v, 0, n, dim, 0};
    pthread_create(&th[T], NULL, searcher, &jb[T]);
    for (int t = 0; t <= T; t++) pthread_join(th[t], NULL);
    for (int t = 0; t <= T; t++) CHECK_EQ_INT(jb[t].bad, 0);
    CHECK_EQ_INT(vset_card(s), n);
    char err[256];
    CHECKF(vset_check(s, err, sizeof err) == 0, "%s", err);
    int *live = malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) live[i] = 1;
    double r = recall(s, v, live, n, dim, 10, 100, 100);
    printf("  %d threads: recall@10 %.3f\n", T, r);
    CHECKF(r > 0.85, "recall %.3f", r);
    free(live);
    vset_free(s);
    free(v);
}

/* ---- serialization -------------------------------------------------------------------- */

typedef struct buf {
    unsigned char *p;
    size_t len, cap, pos;
} buf;
static int bw(void *ud, const void *p, size_t n) {
    buf *b = ud;
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}
static int br(void *ud, void *p, size_t n) {
    buf *b = ud;
    if (n > b->len - b->pos) return -1;
    memcpy(p, b->p + b->pos, n);
    b->pos += n;
    return 0;
}

static void test_save_load_roundtrip_and_hostile_bytes(void) {
    const int n = 400, dim = 12;
    float *v = clustered(n, dim);
    int quants[] = {VSET_Q8, VSET_BIN, VSET_NOQUANT};
    for (int qi = 0; qi < 3; qi++) {
        vset *s = new_set(dim, quants[qi], 6);
        char err[256];
        for (int i = 0; i < n; i++) add(s, v + (size_t)i * dim, i);
        for (int i = 0; i < n; i += 5) rem(s, i);
        vset_set_attr(s, (uint32_t)vset_find(s, "e7", 2), "{\"a\":1}", 7);
        buf b = {0};
        CHECK_EQ_INT(vset_save(s, bw, &b), 0);
        vset *t = vset_load(br, &b, err, sizeof err);
        CHECKF(t != NULL, "%s", err);
        CHECKF(vset_check(t, err, sizeof err) == 0, "%s", err);
        CHECK_EQ_INT(vset_card(t), vset_card(s));
        CHECK_EQ_INT(vset_max_level(t), vset_max_level(s));
        CHECK_EQ_INT(vset_max_node_uid(t), vset_max_node_uid(s));
        CHECK_EQ_INT(vset_attr_count(t), vset_attr_count(s));
        size_t len;
        CHECK_STR(vset_attr(t, (uint32_t)vset_find(t, "e7", 2), &len), "{\"a\":1}");
        /* Same graph: the same answers. */
        for (int i = 1; i < n; i += 37) {
            vset_hit h1[5], h2[5];
            vset_query q = {v + (size_t)i * dim, -1, 5, 30, 0, NULL, 0, 0, 0, 0};
            int a = vset_search(s, &q, h1), c = vset_search(t, &q, h2);
            CHECK_EQ_INT(a, c);
            for (int k = 0; k < a; k++) CHECK_EQ_INT(name_index(s, h1[k].id), name_index(t, h2[k].id));
        }
        /* The copy goes on living: adds after load. */
        CHECK_EQ_INT(add(t, v, n + 1), 1);
        CHECKF(vset_check(t, err, sizeof err) == 0, "%s", err);
        vset *d = vset_dup(t);
        CHECK(d && vset_card(d) == vset_card(t));
        vset_free(d);
        vset_free(t);
        /* Every truncation fails cleanly; flipped bytes either fail or load
         * a set whose invariants hold. */
        if (qi == 0) {
            for (size_t cut = 0; cut < b.len; cut += (cut < 200 ? 1 : 97)) {
                buf c = {b.p, cut, cut, 0};
                vset *x = vset_load(br, &c, err, sizeof err);
                CHECK(x == NULL);
            }
            int loaded = 0;
            for (int trial = 0; trial < 3000; trial++) {
                unsigned char *copy = malloc(b.len);
                memcpy(copy, b.p, b.len);
                int flips = 1 + (int)(rnd64() % 4);
                for (int f = 0; f < flips; f++) copy[rnd64() % b.len] ^= (unsigned char)(1u << (rnd64() % 8));
                buf c = {copy, b.len, b.len, 0};
                vset *x = vset_load(br, &c, err, sizeof err);
                if (x) {
                    loaded++;
                    CHECKF(vset_check(x, err, sizeof err) == 0, "trial %d: %s", trial, err);
                    vset_hit h[5];
                    vset_query q = {v, -1, 5, 30, 0, NULL, 0, 0, 0, 0};
                    CHECK(vset_search(x, &q, h) >= 0);
                    vset_free(x);
                }
                free(copy);
            }
            printf("  hostile bytes: %d of 3000 flipped copies still loaded (all consistent)\n", loaded);
        }
        free(b.p);
        vset_free(s);
    }
    free(v);
}

int main(void) {
    TEST_RUN(test_kernels_match_reference);
    TEST_RUN(test_names_order_and_lookup);
    TEST_RUN(test_graph_recall_and_churn);
    TEST_RUN(test_update_and_attributes);
    TEST_RUN(test_quantization_forms);
    TEST_RUN(test_q8_scores_stay_in_range);
    TEST_RUN(test_reduce_projection);
    TEST_RUN(test_epsilon_and_ele);
    TEST_RUN(test_cas_prepare_commit);
    TEST_RUN(test_concurrent_inserts);
    TEST_RUN(test_save_load_roundtrip_and_hostile_bytes);
    return TEST_DONE();
}
