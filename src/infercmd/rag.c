/* rag.c - INFER.RAG's and INFER.ANSWER's grammar, their request state and
 * their reply fields.
 *
 *   INFER.RAG generator embedder vset question [COUNT k] [FILTER expr]
 *             [FILTER-EF n] [EF n]
 *       [CONTEXTKEY-FIELD name] [TEMPLATE key] [WITHSOURCES] [WITHPROMPT]
 *       [MAXTOKENS n] [TEMPERATURE t] [TOPK k] [TOPP p] [MINP p]
 *       [REPEAT-PENALTY r] [SEED s] [STOP str]... [CHAT] [STREAM key]
 *       [STORE key] [TIMEOUT ms]
 *   INFER.ANSWER generator question CHUNKS n chunk [chunk ...]
 *       [TEMPLATE key] [WITHSOURCES] [WITHPROMPT] [generation options]
 *
 * INFER.ANSWER is INFER.RAG's last two steps alone - the prompt from the
 * template, the question and chunks in rank order, then the generation -
 * for chunks retrieved elsewhere: a cluster client that ran VSIM on every
 * shard and merged the hits gets the very prompt INFER.RAG would build
 * for them, without a copy of the template logic of its own.
 *
 * A RAG request lives across three steps on two engines (the question's
 * embedding, the retrieval on the main thread, the generation), so
 * everything it needs after the command returns is copied here, and it
 * holds a reference on both models: unloading either meanwhile lets this
 * request finish on it.  The retrieval step feeds the hits in (ic_rag_add_hit),
 * the front-ends having run VSIM their own way; ragprompt.c turns the
 * hits into the prompt.  TIMEOUT bounds the whole request: the embedding
 * gets it, the generation what is left of it. */
#include "infercmd.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_arg(const ic_arg *a, size_t *len) {
    char *s = infer_malloc(a->len + 1);
    if (!s) return NULL;
    memcpy(s, a->ptr, a->len);
    s[a->len] = 0;
    *len = a->len;
    return s;
}

void ic_rag_free(ic_registry *reg, ic_rag *g) {
    if (!g) return;
    if (g->gen) ic_model_unref(reg, g->gen);
    if (g->emb) ic_model_unref(reg, g->emb);
    free(g->vset), free(g->question), free(g->filter), free(g->key_field), free(g->tmpl_key);
    free(g->store), free(g->stream);
    ic_gen_opts_free(&g->gen_opts);
    for (int i = 0; i < g->n_hits; i++) free(g->hits[i].name), free(g->hits[i].attr), free(g->hits[i].key), free(g->hits[i].text);
    free(g->hits);
    free(g->blob);
    free(g->tmpl);
    free(g->prompt);
    free(g);
}

/* The prompt's share of the generator's context, and the chunk size over
 * which no chunk can ever fit it: every token covers at most
 * infer_detok_max_bytes bytes, so a text of more than budget * that many
 * bytes needs more than budget tokens. */
static void settle_budget(ic_rag *g, int default_max_tokens) {
    int32_t n_ctx = infer_ctx_n_ctx(g->gen->ctx);
    if (g->gen_opts.max_tokens == 0) {
        long long mt = default_max_tokens;
        if (mt > n_ctx / 2) mt = n_ctx / 2;
        g->gen_opts.max_tokens = mt > 0 ? mt : 1;
    }
    g->budget = n_ctx - (int32_t)g->gen_opts.max_tokens;
    if (g->budget < 0) g->budget = 0;
    size_t per = infer_detok_max_bytes(infer_model_vocab(g->gen->model));
    if (per < 1) per = 1;
    g->chunk_cap = (size_t)g->budget > SIZE_MAX / per ? SIZE_MAX : (size_t)g->budget * per;
}

/* A request holding a reference on gen (and emb, NULL for INFER.ANSWER);
 * NULL with the line. */
static ic_rag *rag_new(ic_model *gen, ic_model *emb, long long default_timeout_ms, char *err, size_t errlen) {
    ic_rag *g = infer_calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "ERR out of memory");
        return NULL;
    }
    g->gen = gen, gen->refs++;
    if (emb) g->emb = emb, emb->refs++;
    ic_gen_defaults(&g->gen_opts, default_timeout_ms);
    g->count = IC_RAG_DEFAULT_COUNT;
    return g;
}

/* The options from argv[from] on, and what follows them: the copies the
 * request keeps and the prompt's budget.  retrieval: INFER.RAG's own
 * options (COUNT, FILTER, FILTER-EF, EF, CONTEXTKEY-FIELD) are allowed;
 * INFER.ANSWER, which retrieves nothing, refuses them as unknown.
 * 0, or -1 with the line. */
static int parse_options(ic_rag *g, const ic_arg *argv, int argc, int from, int retrieval, int default_max_tokens,
                         char *err, size_t errlen) {
    int32_t n_ctx = infer_ctx_n_ctx(g->gen->ctx);
    int32_t n_vocab = infer_vocab_size(infer_model_vocab(g->gen->model));
    ic_arg filter = {0}, field = {0}, tmpl = {0};
    for (int i = from; i < argc; i++) {
        const ic_arg *a = &argv[i];
        if (ic_arg_is(a, "WITHSOURCES")) {
            g->withsources = 1;
            continue;
        }
        if (ic_arg_is(a, "WITHPROMPT")) {
            g->withprompt = 1;
            continue;
        }
        int own = ic_arg_is(a, "TEMPLATE") ||
                  (retrieval && (ic_arg_is(a, "COUNT") || ic_arg_is(a, "FILTER") || ic_arg_is(a, "CONTEXTKEY-FIELD") ||
                                 ic_arg_is(a, "FILTER-EF") || ic_arg_is(a, "EF")));
        if (own && i + 1 >= argc) return ic_syntax(a, "no value after", err, errlen);
        if (!own) {
            int rc = ic_gen_option(argv, argc, &i, n_ctx, n_vocab, &g->gen_opts, err, errlen);
            if (rc < 0) return -1;
            if (rc == 0) return ic_syntax(a, "unknown option", err, errlen);
        } else if (ic_arg_is(a, "COUNT")) {
            if (ic_arg_ll(&argv[++i], "COUNT", 1, IC_RAG_MAX_COUNT, &g->count, err, errlen) < 0) return -1;
        } else if (ic_arg_is(a, "FILTER")) {
            filter = argv[++i];
        } else if (ic_arg_is(a, "FILTER-EF")) {
            /* a selective FILTER needs more than VSIM's COUNT x 100 */
            if (ic_arg_ll(&argv[++i], "FILTER-EF", 1, LLONG_MAX, &g->filter_ef, err, errlen) < 0) return -1;
        } else if (ic_arg_is(a, "EF")) {
            if (ic_arg_ll(&argv[++i], "EF", 1, 1000000, &g->ef, err, errlen) < 0) return -1;
        } else if (ic_arg_is(a, "CONTEXTKEY-FIELD")) {
            field = argv[++i];
            if (field.len == 0) {
                snprintf(err, errlen, "ERR CONTEXTKEY-FIELD must name an attribute");
                return -1;
            }
        } else {
            tmpl = argv[++i];
        }
    }
    int oom = 0;
    if (filter.ptr && !(g->filter = dup_arg(&filter, &g->filter_len))) oom = 1;
    if (field.ptr && !(g->key_field = dup_arg(&field, &g->key_field_len))) oom = 1;
    if (tmpl.ptr && !(g->tmpl_key = dup_arg(&tmpl, &g->tmpl_key_len))) oom = 1;
    if (g->gen_opts.store.ptr && !(g->store = dup_arg(&g->gen_opts.store, &g->store_len))) oom = 1;
    if (g->gen_opts.stream.ptr && !(g->stream = dup_arg(&g->gen_opts.stream, &g->stream_len))) oom = 1;
    if (oom) {
        snprintf(err, errlen, "ERR out of memory");
        return -1;
    }
    /* from here on the options point at the copies, not at argv */
    g->gen_opts.store = (ic_arg){g->store, g->store_len};
    g->gen_opts.stream = (ic_arg){g->stream, g->stream_len};
    g->gen_opts.src = IC_SRC_TEXT;
    if (g->gen_opts.max_tokens >= n_ctx) {
        snprintf(err, errlen, "ERR MAXTOKENS %lld leaves no room for the prompt in the context of %d tokens",
                 g->gen_opts.max_tokens, n_ctx);
        return -1;
    }
    settle_budget(g, default_max_tokens);
    return 0;
}

ic_rag *ic_rag_parse(ic_registry *reg, const ic_arg *argv, int argc, long long default_timeout_ms,
                     int default_max_tokens, char *err, size_t errlen) {
    if (argc < 5) {
        snprintf(err, errlen, "ERR wrong number of arguments for 'infer.rag' command");
        return NULL;
    }
    ic_model *gen = ic_lookup(reg, &argv[1], err, errlen);
    if (!gen || ic_need_generator(&argv[1], gen, err, errlen) < 0) return NULL;
    ic_model *emb = ic_lookup(reg, &argv[2], err, errlen);
    if (!emb || ic_need_encoder(&argv[2], emb, err, errlen) < 0) return NULL;
    if (!gen->sched || !emb->sched) {
        snprintf(err, errlen, "ERR the server is shutting down");
        return NULL;
    }
    if (ic_embed_check_texts(&argv[4], 1, "the question", err, errlen) < 0) return NULL;
    if (argv[3].len == 0) {
        snprintf(err, errlen, "ERR the vector set name is empty");
        return NULL;
    }
    ic_rag *g = rag_new(gen, emb, default_timeout_ms, err, errlen);
    if (!g) return NULL;
    if (!(g->vset = dup_arg(&argv[3], &g->vset_len)) || !(g->question = dup_arg(&argv[4], &g->question_len))) {
        snprintf(err, errlen, "ERR out of memory");
        goto fail;
    }
    if (parse_options(g, argv, argc, 5, 1, default_max_tokens, err, errlen) < 0) goto fail;
    return g;
fail:
    ic_rag_free(reg, g);
    return NULL;
}

ic_rag *ic_answer_parse(ic_registry *reg, const ic_arg *argv, int argc, long long default_timeout_ms,
                        int default_max_tokens, char *err, size_t errlen) {
    if (argc < 5) {
        snprintf(err, errlen, "ERR wrong number of arguments for 'infer.answer' command");
        return NULL;
    }
    ic_model *gen = ic_lookup(reg, &argv[1], err, errlen);
    if (!gen || ic_need_generator(&argv[1], gen, err, errlen) < 0) return NULL;
    if (!gen->sched) {
        snprintf(err, errlen, "ERR the server is shutting down");
        return NULL;
    }
    if (ic_embed_check_texts(&argv[2], 1, "the question", err, errlen) < 0) return NULL;
    if (!ic_arg_is(&argv[3], "CHUNKS")) {
        ic_syntax(&argv[3], "CHUNKS expected after the question, got", err, errlen);
        return NULL;
    }
    long long n;
    if (ic_arg_ll(&argv[4], "CHUNKS", 0, IC_RAG_MAX_COUNT, &n, err, errlen) < 0) return NULL;
    if (n > argc - 5) {
        snprintf(err, errlen, "ERR CHUNKS %lld needs %lld chunk texts, got %d", n, n, argc - 5);
        return NULL;
    }
    ic_rag *g = rag_new(gen, NULL, default_timeout_ms, err, errlen);
    if (!g) return NULL;
    if (!(g->question = dup_arg(&argv[2], &g->question_len))) {
        snprintf(err, errlen, "ERR out of memory");
        goto fail;
    }
    if (parse_options(g, argv, argc, 5 + (int)n, 0, default_max_tokens, err, errlen) < 0) goto fail;
    /* the chunks as hits without a name or score, in the order given
     * (their rank); settle_budget has set chunk_cap, over which a chunk
     * is only marked too long */
    for (int i = 0; i < (int)n; i++) {
        if (ic_rag_add_hit(g, "", 0, 0, NULL, 0) < 0 || ic_rag_set_text(g, i, argv[5 + i].ptr, argv[5 + i].len) < 0) {
            snprintf(err, errlen, "ERR out of memory");
            goto fail;
        }
    }
    return g;
fail:
    ic_rag_free(reg, g);
    return NULL;
}

int ic_rag_vsim_args(ic_rag *g, const float *vec, int32_t dim, ic_arg out[IC_RAG_VSIM_ARGS], char *err,
                     size_t errlen) {
    free(g->blob);
    g->blob_len = (size_t)dim * 4;
    if (!(g->blob = infer_malloc(g->blob_len ? g->blob_len : 1))) {
        snprintf(err, errlen, "ERR out of memory");
        return -1;
    }
    ic_f32_le(vec, (size_t)dim, g->blob);
    snprintf(g->count_str, sizeof g->count_str, "%lld", g->count);
    int n = 0;
    out[n++] = (ic_arg){"VSIM", 4};
    out[n++] = (ic_arg){g->vset, g->vset_len};
    out[n++] = (ic_arg){"FP32", 4};
    out[n++] = (ic_arg){(const char *)g->blob, g->blob_len};
    out[n++] = (ic_arg){"WITHSCORES", 10};
    out[n++] = (ic_arg){"WITHATTRIBS", 11};
    out[n++] = (ic_arg){"COUNT", 5};
    out[n++] = (ic_arg){g->count_str, strlen(g->count_str)};
    if (g->filter) {
        out[n++] = (ic_arg){"FILTER", 6};
        out[n++] = (ic_arg){g->filter, g->filter_len};
    }
    if (g->filter_ef) {
        snprintf(g->filter_ef_str, sizeof g->filter_ef_str, "%lld", g->filter_ef);
        out[n++] = (ic_arg){"FILTER-EF", 9};
        out[n++] = (ic_arg){g->filter_ef_str, strlen(g->filter_ef_str)};
    }
    if (g->ef) {
        snprintf(g->ef_str, sizeof g->ef_str, "%lld", g->ef);
        out[n++] = (ic_arg){"EF", 2};
        out[n++] = (ic_arg){g->ef_str, strlen(g->ef_str)};
    }
    return n;
}

void ic_rag_vsim_error(const ic_rag *g, const char *line, char *err, size_t errlen) {
    char shown[128];
    ic_shown(g->vset, g->vset_len, shown, sizeof shown);
    /* keep the error class of VSIM's line (ERR, WRONGTYPE, NOPERM) */
    const char *sp = strchr(line, ' ');
    int cls = sp && sp - line < 16 ? (int)(sp - line) : 0;
    if (cls) snprintf(err, errlen, "%.*s vector set '%s': %s", cls, line, shown, sp + 1);
    else snprintf(err, errlen, "ERR vector set '%s': %s", shown, line);
}

int ic_rag_add_hit(ic_rag *g, const char *name, size_t nlen, double score, const char *attr, size_t alen) {
    if (g->n_hits == g->cap_hits) {
        int cap = g->cap_hits ? g->cap_hits * 2 : 16;
        ic_rag_hit *h = infer_realloc(g->hits, (size_t)cap * sizeof *h);
        if (!h) return -1;
        g->hits = h;
        g->cap_hits = cap;
    }
    ic_rag_hit *h = &g->hits[g->n_hits];
    memset(h, 0, sizeof *h);
    h->name = infer_malloc(nlen + 1);
    h->attr = attr ? infer_malloc(alen + 1) : NULL;
    if (!h->name || (attr && !h->attr)) {
        free(h->name), free(h->attr);
        return -1;
    }
    memcpy(h->name, name, nlen);
    h->name[nlen] = 0;
    h->name_len = nlen;
    if (attr) {
        memcpy(h->attr, attr, alen);
        h->attr[alen] = 0;
        h->attr_len = alen;
    }
    h->score = score;
    h->state = IC_HIT_NOTEXT;
    g->n_hits++;
    return 0;
}

int ic_rag_set_text(ic_rag *g, int i, const char *p, size_t len) {
    ic_rag_hit *h = &g->hits[i];
    free(h->text);
    h->text = NULL;
    h->text_len = 0;
    if (len > g->chunk_cap) {
        h->too_long = 1; /* it could never fit: not even copied */
        return 0;
    }
    if (!(h->text = infer_malloc(len + 1))) return -1;
    memcpy(h->text, p, len);
    h->text[len] = 0;
    h->text_len = len;
    return 0;
}

int ic_rag_hit_source(ic_rag *g, int i, const char **key, size_t *klen) {
    ic_rag_hit *h = &g->hits[i];
    const char *field = g->key_field ? g->key_field : IC_RAG_TEXT_FIELD;
    size_t flen = g->key_field ? g->key_field_len : strlen(IC_RAG_TEXT_FIELD);
    char *v;
    size_t vl;
    int rc = ic_json_string_field(h->attr, h->attr_len, field, flen, &v, &vl);
    if (rc < 0) return -1;
    if (rc == 0) return IC_SRC_NONE;
    if (g->key_field) {
        /* the attribute names the key the front-end reads */
        free(h->key);
        h->key = v;
        h->key_len = vl;
        *key = v;
        *klen = vl;
        return IC_SRC_KEY;
    }
    rc = ic_rag_set_text(g, i, v, vl);
    free(v);
    return rc < 0 ? -1 : IC_SRC_ATTR;
}

const char *ic_rag_hit_state(const ic_rag_hit *h) {
    return h->state == IC_HIT_USED ? "used" : h->state == IC_HIT_CUT ? "cut" : "no-text";
}

int ic_rag_result(const ic_rag *g, const ic_req *r, ic_field out[IC_RAG_FIELDS]) {
    ic_field f[IC_RESULT_FIELDS];
    ic_req_result(r, f); /* text, tokens, finish, prompt_tokens, reused_tokens, queue_ms, prefill_ms, decode_ms */
    int i = 0;
    out[i++] = f[0];
    memset(&out[i], 0, sizeof out[i]);
    out[i].name = "chunks_used", out[i].kind = IC_F_LL, out[i++].ll = g->used;
    memset(&out[i], 0, sizeof out[i]);
    out[i].name = g->emb ? "chunks_retrieved" : "chunks_given", out[i].kind = IC_F_LL, out[i++].ll = g->n_hits;
    for (int k = 1; k <= 4; k++) out[i++] = f[k];
    if (g->emb) { /* INFER.ANSWER embeds nothing */
        memset(&out[i], 0, sizeof out[i]);
        out[i].name = "embed_ms", out[i].kind = IC_F_DOUBLE, out[i++].d = g->embed_ms;
    }
    for (int k = 5; k <= 7; k++) out[i++] = f[k];
    return i;
}
