/* sampler.c - picks the next token from logits.
 *
 * Order of operations (each optional): repetition penalty over the recent
 * history, top-k, min-p, temperature, top-p (nucleus), then a draw from the
 * renormalised distribution with a seeded xoshiro256** generator.  With
 * temperature <= 0 the choice is the argmax (lowest id on ties), after the
 * penalty.  The sampler owns its history and its generator, so the same seed
 * and the same logits give the same tokens on every run and every thread. */
#include "infer.h"
#include "runtime/mem.h"
#include "kernels/ialloc.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_CAP 4096

typedef struct {
    float logit;
    int32_t id;
} cand;

struct infer_sampler {
    infer_sampler_params p;
    uint64_t rng[4];
    int32_t hist[HISTORY_CAP]; /* ring buffer of accepted tokens */
    int32_t hist_n, hist_head;
    cand *cands;
    double *probs;
    uint32_t *stamp; /* per token id: stamp_gen when penalised this call */
    uint32_t stamp_gen;
    int32_t cands_cap;
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* uniform in [0, 1) with 53 random bits */
static double next_unit(uint64_t s[4]) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

void infer_sampler_defaults(infer_sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
}

infer_sampler *infer_sampler_create(const infer_sampler_params *p, char *err, size_t errlen) {
    const char *bad = NULL;
    if (!isfinite(p->temperature) || p->temperature < 0) bad = "temperature must be >= 0";
    else if (!isfinite(p->top_p) || p->top_p <= 0 || p->top_p > 1) bad = "top-p must be in (0, 1]";
    else if (!isfinite(p->min_p) || p->min_p < 0 || p->min_p > 1) bad = "min-p must be in [0, 1]";
    else if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0) bad = "repeat penalty must be > 0";
    else if (p->repeat_last_n < 0 || p->repeat_last_n > HISTORY_CAP) bad = "repeat window must be in [0, 4096]";
    else if (p->top_k < 0) bad = "top-k must be >= 0";
    if (bad) {
        snprintf(err, errlen, "%s", bad);
        return NULL;
    }
    infer_sampler *s = ie_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->p = *p;
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    return s;
}

size_t sampler_bytes(int32_t n_vocab) {
    size_t per_id = sizeof(cand) + sizeof(double) + sizeof(uint32_t); /* cands, probs, stamp */
    return sizeof(infer_sampler) + (n_vocab > 0 ? (size_t)n_vocab * per_id : 0);
}

void infer_sampler_free(infer_sampler *s) {
    if (!s) return;
    free(s->cands);
    free(s->probs);
    free(s->stamp);
    free(s);
}

void infer_sampler_accept(infer_sampler *s, int32_t token) {
    s->hist[s->hist_head] = token;
    s->hist_head = (s->hist_head + 1) % HISTORY_CAP;
    if (s->hist_n < HISTORY_CAP) s->hist_n++;
}

static int cmp_cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id; /* ties: lower id first, deterministic */
}

/* Penalises tokens seen in the window: positive logits divided, negative
 * multiplied, so a repeat always becomes less likely.  Each token once: a
 * token's stamp says whether this call has penalised it already, which keeps
 * the work linear in the window. */
static void apply_penalty(infer_sampler *s, cand *c, int32_t n) {
    if (s->p.repeat_penalty == 1.0f || s->hist_n == 0) return;
    int32_t win = s->p.repeat_last_n ? s->p.repeat_last_n : s->hist_n;
    if (win > s->hist_n) win = s->hist_n;
    /* the index below stays non-negative only for a head inside the ring
     * and a window no longer than it */
    assert(s->hist_head >= 0 && s->hist_head < HISTORY_CAP && win <= HISTORY_CAP);
    if (++s->stamp_gen == 0) { /* wrapped: old stamps could collide */
        memset(s->stamp, 0, (size_t)s->cands_cap * sizeof *s->stamp);
        s->stamp_gen = 1;
    }
    for (int32_t i = 0; i < win; i++) {
        int32_t id = s->hist[(s->hist_head - 1 - i + HISTORY_CAP) % HISTORY_CAP];
        if (id < 0 || id >= n || s->stamp[id] == s->stamp_gen) continue;
        s->stamp[id] = s->stamp_gen;
        float *l = &c[id].logit;
        *l = *l > 0 ? *l / s->p.repeat_penalty : *l * s->p.repeat_penalty;
    }
}

/* Keeps the k best candidates of c[0..n) at the front (unordered), with a
 * min-heap on the k-th best: O(n log k), no full sort of the vocabulary. */
static int32_t select_top_k(cand *c, int32_t n, int32_t k) {
    if (k >= n) return n;
    /* heap of c[0..k) ordered so c[0] is the worst kept candidate */
    for (int32_t i = k / 2 - 1; i >= 0; i--) {
        int32_t j = i;
        for (;;) {
            int32_t l = 2 * j + 1, r = l + 1, w = j;
            if (l < k && cmp_cand_desc(&c[l], &c[w]) > 0) w = l;
            if (r < k && cmp_cand_desc(&c[r], &c[w]) > 0) w = r;
            if (w == j) break;
            cand t = c[j]; c[j] = c[w]; c[w] = t;
            j = w;
        }
    }
    for (int32_t i = k; i < n; i++) {
        if (cmp_cand_desc(&c[i], &c[0]) >= 0) continue; /* not better than the worst kept */
        c[0] = c[i];
        int32_t j = 0;
        for (;;) {
            int32_t l = 2 * j + 1, r = l + 1, w = j;
            if (l < k && cmp_cand_desc(&c[l], &c[w]) > 0) w = l;
            if (r < k && cmp_cand_desc(&c[r], &c[w]) > 0) w = r;
            if (w == j) break;
            cand t = c[j]; c[j] = c[w]; c[w] = t;
            j = w;
        }
    }
    return k;
}

/* Order: penalty, top-k, min-p, temperature, top-p, draw.  min-p compares
 * probabilities with the best one, so it is a threshold on logits:
 * p_i >= min_p * p_max  <=>  l_i >= l_max + T ln(min_p); applying it before
 * sorting keeps the sort small. */
int32_t infer_sampler_sample(infer_sampler *s, const float *logits, int32_t n) {
    if (n <= 0) return -1;
    if (n > s->cands_cap) {
        cand *c = ie_realloc(s->cands, (size_t)n * sizeof *c);
        if (c) s->cands = c;
        double *pr = c ? ie_realloc(s->probs, (size_t)n * sizeof *pr) : NULL;
        if (pr) s->probs = pr;
        /* fresh zeroed stamps: stamp_gen never is 0 after its increment */
        uint32_t *st = pr ? ie_calloc((size_t)n, sizeof *st) : NULL;
        if (st) {
            free(s->stamp);
            s->stamp = st;
        }
        if (!c || !pr || !st) { /* rather than fail mid-generation, fall back to argmax */
            int32_t best = 0;
            for (int32_t i = 1; i < n; i++)
                if (logits[i] > logits[best]) best = i;
            infer_sampler_accept(s, best);
            return best;
        }
        s->cands_cap = n;
    }
    cand *c = s->cands;
    /* A NaN logit (a broken model, an fp overflow) would poison every
     * comparison below: it counts as impossible instead. */
    for (int32_t i = 0; i < n; i++) c[i] = (cand){isnan(logits[i]) ? -INFINITY : logits[i], i};
    apply_penalty(s, c, n);

    int32_t pick;
    if (s->p.temperature <= 0) {
        int32_t best = 0;
        for (int32_t i = 1; i < n; i++)
            if (c[i].logit > c[best].logit) best = i;
        pick = c[best].id;
    } else {
        int32_t m = s->p.top_k > 0 ? select_top_k(c, n, s->p.top_k) : n;
        float mx = c[0].logit;
        for (int32_t i = 1; i < m; i++)
            if (c[i].logit > mx) mx = c[i].logit;
        if (mx == -INFINITY) { /* nothing is possible: take the lowest id */
            pick = 0;
            infer_sampler_accept(s, pick);
            return pick;
        }
        if (s->p.min_p > 0) {
            float thr = mx + s->p.temperature * logf(s->p.min_p);
            int32_t w = 0;
            for (int32_t i = 0; i < m; i++)
                if (c[i].logit >= thr) c[w++] = c[i];
            m = w;
        }
        qsort(c, (size_t)m, sizeof *c, cmp_cand_desc);
        double *pr = s->probs, sum = 0;
        for (int32_t i = 0; i < m; i++) {
            pr[i] = exp(((double)c[i].logit - mx) / s->p.temperature);
            sum += pr[i];
        }
        int32_t keep = m;
        if (s->p.top_p < 1.0f) {
            double cum = 0;
            for (int32_t i = 0; i < m; i++) {
                cum += pr[i] / sum;
                if (cum >= s->p.top_p) {
                    keep = i + 1;
                    break;
                }
            }
        }
        double tot = 0;
        for (int32_t i = 0; i < keep; i++) tot += pr[i];
        double r = next_unit(s->rng) * tot, acc = 0;
        pick = c[keep - 1].id;
        for (int32_t i = 0; i < keep; i++) {
            acc += pr[i];
            if (r < acc) {
                pick = c[i].id;
                break;
            }
        }
    }
    infer_sampler_accept(s, pick);
    return pick;
}
