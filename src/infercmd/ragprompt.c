/* ragprompt.c - INFER.RAG's prompt: the template filled with the question
 * and as many retrieved chunks as the generator's context holds.
 *
 * The template is IC_RAG_DEFAULT_TEMPLATE or the value of the TEMPLATE
 * key; every "{context}" in it becomes the chunks in rank order separated
 * by a blank line, every "{question}" the question; nothing else in it is
 * special.  The prompt must leave MAXTOKENS of the context for the answer:
 * when all the chunks do not fit, the lowest-ranked are dropped, as few as
 * possible.  Token counts grow with the number of chunks kept, so the
 * largest count that fits is found by bisection - O(log k) tokenizations,
 * each skipped when a byte count alone proves the prompt too long (no
 * token covers more than infer_detok_max_bytes bytes).  The ids submitted
 * are those of the prompt reported by WITHPROMPT, tokenized exactly as
 * INFER.GENERATE tokenizes a prompt (CHAT included), so the two commands
 * give the same answer for it.  Being the last step before the
 * generation, ic_rag_build also hands it what the question's embedding
 * left of TIMEOUT. */
#include "infercmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PH_CONTEXT "{context}"
#define PH_QUESTION "{question}"

static const char *find(const char *h, size_t hl, const char *n) {
    size_t nl = strlen(n);
    for (size_t i = 0; i + nl <= hl; i++)
        if (h[i] == n[0] && memcmp(h + i, n, nl) == 0) return h + i;
    return NULL;
}

int ic_rag_set_template(ic_rag *g, const char *p, size_t len, char *err, size_t errlen) {
    if (!find(p, len, PH_CONTEXT) || !find(p, len, PH_QUESTION)) {
        snprintf(err, errlen, "ERR the TEMPLATE must contain %s and %s", PH_CONTEXT, PH_QUESTION);
        return -1;
    }
    if (len > g->chunk_cap) {
        snprintf(err, errlen, "ERR the TEMPLATE (%zu bytes) cannot fit the generator's context", len);
        return -1;
    }
    free(g->tmpl);
    if (!(g->tmpl = infer_malloc(len + 1))) {
        snprintf(err, errlen, "ERR out of memory");
        return -1;
    }
    memcpy(g->tmpl, p, len);
    g->tmpl[len] = 0;
    g->tmpl_len = len;
    return 0;
}

/* Bytes of the prompt with the first k chunks of order[] (SIZE_MAX when
 * it overflows). */
static size_t prompt_bytes(const ic_rag *g, const char *t, size_t tl, const int *order, int k) {
    size_t ctx = 0;
    for (int j = 0; j < k; j++) ctx += g->hits[order[j]].text_len + (j ? strlen(IC_RAG_CHUNK_SEP) : 0);
    size_t n = 0, nc = strlen(PH_CONTEXT), nq = strlen(PH_QUESTION);
    for (size_t i = 0; i < tl;) {
        if (tl - i >= nc && memcmp(t + i, PH_CONTEXT, nc) == 0) {
            if (n > SIZE_MAX - ctx) return SIZE_MAX;
            n += ctx, i += nc;
        } else if (tl - i >= nq && memcmp(t + i, PH_QUESTION, nq) == 0) {
            if (n > SIZE_MAX - g->question_len) return SIZE_MAX;
            n += g->question_len, i += nq;
        } else {
            n++, i++;
        }
    }
    return n;
}

/* The prompt with the first k chunks of order[] into g->prompt. */
static int render(ic_rag *g, const char *t, size_t tl, const int *order, int k) {
    size_t need = prompt_bytes(g, t, tl, order, k);
    if (need == SIZE_MAX) return -1;
    char *out = infer_malloc(need + 1);
    if (!out) return -1;
    size_t n = 0, nc = strlen(PH_CONTEXT), nq = strlen(PH_QUESTION), ns = strlen(IC_RAG_CHUNK_SEP);
    for (size_t i = 0; i < tl;) {
        if (tl - i >= nc && memcmp(t + i, PH_CONTEXT, nc) == 0) {
            for (int j = 0; j < k; j++) {
                const ic_rag_hit *h = &g->hits[order[j]];
                if (j) memcpy(out + n, IC_RAG_CHUNK_SEP, ns), n += ns;
                memcpy(out + n, h->text, h->text_len);
                n += h->text_len;
            }
            i += nc;
        } else if (tl - i >= nq && memcmp(t + i, PH_QUESTION, nq) == 0) {
            memcpy(out + n, g->question, g->question_len);
            n += g->question_len, i += nq;
        } else {
            out[n++] = t[i++];
        }
    }
    out[n] = 0;
    free(g->prompt);
    g->prompt = out;
    g->prompt_len = n;
    return 0;
}

/* Renders and tokenizes with k chunks: 1 fits (ids in *ids), 0 does not,
 * -1 error (line in err). */
static int attempt(ic_rag *g, const char *t, size_t tl, const int *order, int k, size_t per_token, int32_t **ids,
                   int64_t *n, char *err, size_t errlen) {
    size_t bytes = prompt_bytes(g, t, tl, order, k);
    if (bytes == SIZE_MAX || bytes / per_token > (size_t)g->budget) return 0;
    if (render(g, t, tl, order, k) < 0) {
        snprintf(err, errlen, "ERR out of memory");
        return -1;
    }
    int32_t *got = ic_tokenize_prompt(infer_model_vocab(g->gen->model), g->prompt, g->prompt_len, g->gen_opts.chat,
                                      n, err, errlen);
    if (!got) return -1;
    if (*n > g->budget) {
        free(got);
        return 0;
    }
    *ids = got;
    return 1;
}

int32_t *ic_rag_build(ic_rag *g, int32_t *n_prompt, char *err, size_t errlen) {
    const char *t = g->tmpl ? g->tmpl : IC_RAG_DEFAULT_TEMPLATE;
    size_t tl = g->tmpl ? g->tmpl_len : strlen(IC_RAG_DEFAULT_TEMPLATE);
    size_t per_token = infer_detok_max_bytes(infer_model_vocab(g->gen->model));
    if (per_token < 1) per_token = 1;
    int32_t n_ctx = infer_ctx_n_ctx(g->gen->ctx);
    if (g->gen_opts.timeout_ms > 0) {
        /* TIMEOUT covers the whole request: the generation gets what the
         * embedding left */
        long long left = g->gen_opts.timeout_ms - (long long)(g->embed_ms + 0.999);
        if (left < 1) {
            snprintf(err, errlen, "TIMEOUT the question's embedding took the whole TIMEOUT of %lld ms",
                     g->gen_opts.timeout_ms);
            return NULL;
        }
        g->gen_opts.timeout_ms = left;
    }
    /* the chunks that can be used, in rank order; a chunk too long to ever
     * fit ends the list (everything ranked below it is dropped with it) */
    int *order = infer_malloc((size_t)(g->n_hits ? g->n_hits : 1) * sizeof *order);
    if (!order) {
        snprintf(err, errlen, "ERR out of memory");
        return NULL;
    }
    int avail = 0, blocked = 0;
    for (int i = 0; i < g->n_hits; i++) {
        ic_rag_hit *h = &g->hits[i];
        h->state = IC_HIT_NOTEXT;
        if (!h->text && !h->too_long) continue;
        h->state = IC_HIT_CUT;
        if (h->too_long) blocked = 1;
        if (!blocked) order[avail++] = i;
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    int k = avail, rc = attempt(g, t, tl, order, k, per_token, &ids, &n, err, errlen);
    if (rc == 0) {
        /* bisect the largest k < avail that fits: lo fits (or is 0, to
         * be tried last), hi does not */
        int lo = 0, hi = avail;
        int32_t *best = NULL;
        int64_t best_n = 0;
        while (rc >= 0 && hi - lo > 1) {
            int mid = lo + (hi - lo) / 2;
            int32_t *mids = NULL;
            int64_t mn = 0;
            rc = attempt(g, t, tl, order, mid, per_token, &mids, &mn, err, errlen);
            if (rc == 1) {
                free(best);
                best = mids, best_n = mn, lo = mid;
            } else if (rc == 0) {
                hi = mid;
            }
        }
        if (rc >= 0 && !best) {
            /* no chunk at all, if even that fits */
            rc = attempt(g, t, tl, order, 0, per_token, &best, &best_n, err, errlen);
            if (rc == 0) {
                snprintf(err, errlen,
                         "ERR the prompt does not fit: without any chunk it already needs more than the %d tokens "
                         "the context of %d leaves beside MAXTOKENS %lld",
                         g->budget, n_ctx, g->gen_opts.max_tokens);
                rc = -1;
            }
            lo = 0;
        } else if (rc >= 0) {
            /* best was rendered before later attempts: render it again */
            if (render(g, t, tl, order, lo) < 0) {
                snprintf(err, errlen, "ERR out of memory");
                rc = -1;
            }
        }
        if (rc < 0) {
            free(best);
            free(order);
            return NULL;
        }
        ids = best, n = best_n, k = lo;
    } else if (rc < 0) {
        free(order);
        return NULL;
    }
    for (int j = 0; j < k; j++) g->hits[order[j]].state = IC_HIT_USED;
    g->used = k;
    free(order);
    if (n == 0) {
        free(ids);
        snprintf(err, errlen, "ERR the prompt is empty and the generator's vocab has no BOS token");
        return NULL;
    }
    *n_prompt = (int32_t)n;
    return ids;
}
