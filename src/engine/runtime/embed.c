/* embed.c - the embedding entry points (infer_embed, infer_embed_texts) and
 * the bookkeeping they share with the embedding scheduler: inputs checked,
 * long inputs cut into windows of the context, windows packed into forward
 * passes, and each input's windows pooled into one vector.
 *
 * A window of a cut input is embedded like any short input (when the input
 * starts with the vocabulary's CLS and ends with its SEP, each window gets
 * its own CLS and SEP around its share of the text) and the input's vector
 * is the mean of its windows' pooled vectors, each weighted by the tokens
 * in it; L2 normalisation, when asked, comes last.  A pass takes whole
 * windows in order until the ctx's batch is full, so many short inputs
 * share one pass and every weight matrix is read once for all of them. */
#include "runtime/encoder.h"
#include "kernels/ialloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const char *pool_name(int p) {
    return p == INFER_POOL_MEAN ? "mean" : p == INFER_POOL_CLS ? "cls" : p == INFER_POOL_LAST ? "last" : "none";
}

void infer_embed_defaults(infer_embed_params *p) {
    p->pooling = INFER_POOL_DEFAULT;
    p->normalize = 1;
    p->long_input = INFER_LONG_REFUSE;
}

int infer_model_is_encoder(const infer_model *m) { return m && m->is_encoder; }

int32_t infer_model_embed_dim(const infer_model *m) { return m && m->is_encoder ? m->info.n_embd : 0; }

int embed_item_init(const infer_ctx *c, embed_item *it, const int32_t *toks, int32_t n, const infer_embed_params *p,
                    float *out, char *err, size_t errlen) {
    infer_embed_params d;
    infer_embed_defaults(&d);
    if (!p) p = &d;
    const infer_model *m = c->m;
    memset(it, 0, sizeof *it);
    int pool = p->pooling == INFER_POOL_DEFAULT ? m->enc.pooling : p->pooling;
    if (p->pooling < INFER_POOL_DEFAULT || p->pooling > INFER_POOL_LAST)
        return fail(err, errlen, "pooling mode %d is not one of default, mean, cls, last", p->pooling);
    if (pool == 0)
        return fail(err, errlen, "the model names no pooling (pooling_type none): choose mean, cls or last");
    if (p->long_input != INFER_LONG_REFUSE && p->long_input != INFER_LONG_CHUNK)
        return fail(err, errlen, "long-input mode %d is not refuse (0) or chunk (1)", p->long_input);
    if (n <= 0 || !toks) return fail(err, errlen, "an input has no tokens");
    for (int32_t i = 0; i < n; i++)
        if (toks[i] < 0 || toks[i] >= m->info.n_vocab)
            return fail(err, errlen, "token id %d is outside the vocabulary (0..%d)", toks[i], m->info.n_vocab - 1);
    it->toks = toks;
    it->n = n;
    it->pooling = pool;
    it->normalize = p->normalize != 0;
    it->out = out;
    it->wrap_pre = it->wrap_post = -1;
    if (n <= c->n_ctx) {
        it->n_windows = 1;
        it->width = n;
        return 0;
    }
    if (p->long_input == INFER_LONG_REFUSE)
        return fail(err, errlen, "input of %d tokens exceeds the context of %d tokens (long inputs are refused; chunk "
                    "them to embed windows and pool them)", n, c->n_ctx);
    const infer_vocab *v = m->vocab;
    int32_t cls = infer_vocab_bos(v), sep = infer_vocab_eos(v);
    if (c->n_ctx > 2 && cls >= 0 && sep >= 0 && toks[0] == cls && toks[n - 1] == sep) {
        it->wrap_pre = cls;
        it->wrap_post = sep;
        it->width = c->n_ctx - 2;
        it->n_windows = (n - 2 + it->width - 1) / it->width;
    } else {
        it->width = c->n_ctx;
        it->n_windows = (n + it->width - 1) / it->width;
    }
    it->acc = ie_calloc((size_t)m->info.n_embd, sizeof *it->acc);
    if (!it->acc) return fail(err, errlen, "out of memory");
    return 0;
}

void embed_item_release(embed_item *it) {
    free(it->acc);
    it->acc = NULL;
}

/* Window w of an item as a sequence of the pass. */
static enc_seq window(const embed_item *it, int32_t w) {
    if (it->n_windows == 1) return (enc_seq){it->toks, it->n, -1, -1, it->pooling};
    int wrap = it->wrap_pre >= 0;
    const int32_t *body = it->toks + wrap;
    int32_t body_n = it->n - 2 * wrap, off = w * it->width;
    int32_t len = body_n - off < it->width ? body_n - off : it->width;
    return (enc_seq){body + off, len, it->wrap_pre, it->wrap_post, it->pooling};
}

int32_t embed_step(infer_ctx *c, embed_item *const *items, int32_t n) {
    enc_scratch *s = c->enc;
    int64_t E = c->m->info.n_embd;
    int32_t n_seqs = 0, tokens = 0;
    for (int32_t i = 0; i < n; i++) {
        embed_item *it = items[i];
        int32_t w = it->done;
        /* windows not yet placed in this pass: done counts placed ones until the pass ends */
        for (; w < it->n_windows; w++) {
            enc_seq q = window(it, w);
            int32_t len = enc_seq_len(&q);
            if (tokens + len > c->max_batch || n_seqs == c->max_batch) break;
            s->pass_seqs[n_seqs] = q;
            s->pass_item[n_seqs++] = i;
            tokens += len;
        }
        if (w < it->n_windows) break; /* the batch is full: later items wait for the next pass */
    }
    if (!n_seqs) return 0;
    encode_batch(c, s->pass_seqs, n_seqs, s->pass_vecs);
    for (int32_t q = 0; q < n_seqs; q++) {
        embed_item *it = items[s->pass_item[q]];
        double wt = (double)enc_seq_len(&s->pass_seqs[q]);
        const float *v = s->pass_vecs + (size_t)q * E;
        if (it->acc)
            for (int64_t i = 0; i < E; i++) it->acc[i] += wt * v[i];
        else
            memcpy(it->out, v, (size_t)E * sizeof *v);
        it->wsum += wt;
        it->done++;
    }
    return tokens;
}

void embed_item_finish(const infer_ctx *c, embed_item *it) {
    int64_t E = c->m->info.n_embd;
    float *out = it->out;
    if (it->acc) /* the token-weighted mean of the windows */
        for (int64_t i = 0; i < E; i++) out[i] = (float)(it->acc[i] / it->wsum);
    embed_item_release(it);
    if (!it->normalize) return;
    double norm = 0;
    for (int64_t i = 0; i < E; i++) norm += (double)out[i] * out[i];
    norm = sqrt(norm);
    double scale = norm > 0 ? 1.0 / norm : 0;
    for (int64_t i = 0; i < E; i++) out[i] = (float)(out[i] * scale);
}

static int check_encoder(const infer_ctx *c, char *err, size_t errlen) {
    if (!c || !c->m->is_encoder)
        return fail(err, errlen, "%s is not an encoder: embeddings need a bert or nomic-bert model",
                    c ? c->m->arch_name : "(no context)");
    return 0;
}

int infer_embed(infer_ctx *c, const int32_t *const *toks, const int32_t *n_toks, int32_t n, const infer_embed_params *p,
                float *out, char *err, size_t errlen) {
    if (check_encoder(c, err, errlen) < 0) return -1;
    if (n < 0) return fail(err, errlen, "negative input count");
    if (n == 0) return 0;
    int64_t E = c->m->info.n_embd;
    embed_item *items = ie_calloc((size_t)n, sizeof *items);
    embed_item **order = ie_calloc((size_t)n, sizeof *order);
    int rc = -1;
    if (!items || !order) {
        fail(err, errlen, "out of memory for %d inputs", n);
        goto out;
    }
    char sub[256];
    for (int32_t i = 0; i < n; i++) {
        if (embed_item_init(c, &items[i], toks[i], n_toks[i], p, out + (size_t)i * E, sub, sizeof sub) < 0) {
            fail(err, errlen, "input %d: %s", i, sub);
            goto out;
        }
        order[i] = &items[i];
    }
    /* Items leave the front of the order as they finish. */
    for (int32_t first = 0; first < n;) {
        embed_step(c, order + first, n - first);
        while (first < n && order[first]->done == order[first]->n_windows) embed_item_finish(c, order[first++]);
    }
    rc = 0;
out:
    for (int32_t i = 0; items && i < n; i++) embed_item_release(&items[i]);
    free(items), free(order);
    return rc;
}

int infer_embed_texts(infer_ctx *c, const char *const *texts, const size_t *lens, int32_t n,
                      const infer_embed_params *p, float *out, char *err, size_t errlen) {
    if (check_encoder(c, err, errlen) < 0) return -1;
    if (n < 0) return fail(err, errlen, "negative input count");
    if (n == 0) return 0;
    int32_t **toks = ie_calloc((size_t)n, sizeof *toks);
    int32_t *n_toks = ie_calloc((size_t)n, sizeof *n_toks);
    int rc = -1;
    if (!toks || !n_toks) {
        fail(err, errlen, "out of memory for %d inputs", n);
        goto out;
    }
    char sub[256];
    for (int32_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(texts[i]);
        int64_t k = embed_tokenize(c->m->vocab, texts[i], len, &toks[i], sub, sizeof sub);
        if (k < 0) {
            fail(err, errlen, "text %d: %s", i, sub);
            goto out;
        }
        n_toks[i] = (int32_t)k;
    }
    rc = infer_embed(c, (const int32_t *const *)toks, n_toks, n, p, out, err, errlen);
out:
    for (int32_t i = 0; toks && i < n; i++) free(toks[i]);
    free(toks), free(n_toks);
    return rc;
}

int64_t embed_tokenize(const infer_vocab *v, const char *text, size_t len, int32_t **out, char *err, size_t errlen) {
    *out = NULL;
    if (len > (size_t)INT32_MAX / 2) return fail(err, errlen, "text of %zu bytes is too long", len);
    size_t cap = len + 8;
    for (;;) {
        int32_t *ids = ie_malloc(cap * sizeof *ids);
        if (!ids) return fail(err, errlen, "out of memory tokenizing %zu bytes", len);
        int64_t k = infer_tokenize(v, text, len, INFER_TOK_ADD_SPECIAL, ids, cap, err, errlen);
        if (k < 0) {
            free(ids);
            return -1;
        }
        if ((size_t)k <= cap) {
            if (k == 0) {
                free(ids);
                return fail(err, errlen, "the text makes no tokens");
            }
            if (k > INT32_MAX) {
                free(ids);
                return fail(err, errlen, "the text makes too many tokens");
            }
            *out = ids;
            return k;
        }
        free(ids);
        cap = (size_t)k;
    }
}

const char *embed_pool_name(int pooling) { return pool_name(pooling); }
