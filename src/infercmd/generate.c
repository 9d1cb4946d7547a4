/* generate.c - INFER.GENERATE's grammar and its prompt.
 *
 *   INFER.GENERATE name (prompt | PROMPTKEY key | TOKENSKEY key)
 *       [MAXTOKENS n] [TEMPERATURE t] [TOPK k] [TOPP p] [MINP p]
 *       [REPEAT-PENALTY r] [SEED s] [STOP str]... [CHAT] [STREAM key]
 *       [STORE key] [TIMEOUT ms]
 *
 * Each option is range-checked against the model it runs on (MAXTOKENS
 * against the context, TOPK against the vocabulary); unknown options are a
 * syntax error.  The prompt is turned into ids here too: text through the
 * tokenizer (CHAT: inside the model's chat template), TOKENSKEY bytes
 * decoded explicitly as little-endian uint32, never through a pointer cast
 * on key data. */
#include "infercmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ic_gen_opts_free(ic_gen_opts *o) {
    for (int i = 0; i < o->n_stop; i++) free(o->stop[i]);
    o->n_stop = 0;
}

/* Names the offending word (at most 64 bytes of it), so a typo in a long
 * option list is found at a glance. */
int ic_syntax(const ic_arg *a, const char *why, char *err, size_t errlen) {
    int n = a->len > 64 ? 64 : (int)a->len;
    snprintf(err, errlen, "ERR syntax error: %s '%.*s'", why, n, a->ptr);
    for (char *p = err; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
    return -1;
}

int ic_gen_option(const ic_arg *argv, int argc, int *pos, int32_t n_ctx, int32_t n_vocab, ic_gen_opts *o,
                  char *err, size_t errlen) {
    int i = *pos;
    const ic_arg *a = &argv[i];
    double d;
    long long ll;
    if (ic_arg_is(a, "CHAT")) {
        o->chat = 1;
        return 1;
    }
    if (i + 1 >= argc) return ic_syntax(a, "no value after", err, errlen);
    const ic_arg *v = &argv[i + 1];
    if (ic_arg_is(a, "MAXTOKENS")) {
        if (ic_arg_ll(v, "MAXTOKENS", 1, n_ctx, &o->max_tokens, err, errlen) < 0) return -1;
    } else if (ic_arg_is(a, "TEMPERATURE")) {
        if (ic_arg_double(v, "TEMPERATURE", 0, 100, &d, err, errlen) < 0) return -1;
        o->sp.temperature = (float)d;
    } else if (ic_arg_is(a, "TOPK")) {
        if (ic_arg_ll(v, "TOPK", 0, n_vocab, &ll, err, errlen) < 0) return -1;
        o->sp.top_k = (int32_t)ll;
    } else if (ic_arg_is(a, "TOPP")) {
        if (ic_arg_double(v, "TOPP", 0, 1, &d, err, errlen) < 0) return -1;
        if (d <= 0) {
            snprintf(err, errlen, "ERR TOPP must be a number between 0 (exclusive) and 1");
            return -1;
        }
        o->sp.top_p = (float)d;
    } else if (ic_arg_is(a, "MINP")) {
        if (ic_arg_double(v, "MINP", 0, 1, &d, err, errlen) < 0) return -1;
        o->sp.min_p = (float)d;
    } else if (ic_arg_is(a, "REPEAT-PENALTY")) {
        if (ic_arg_double(v, "REPEAT-PENALTY", 0.01, 100, &d, err, errlen) < 0) return -1;
        o->sp.repeat_penalty = (float)d;
    } else if (ic_arg_is(a, "SEED")) {
        if (ic_parse_u64(v, &o->sp.seed) < 0) {
            snprintf(err, errlen, "ERR SEED must be an integer between 0 and %llu", (unsigned long long)UINT64_MAX);
            return -1;
        }
    } else if (ic_arg_is(a, "TIMEOUT")) {
        if (ic_arg_ll(v, "TIMEOUT", 0, IC_MAX_TIMEOUT_MS, &o->timeout_ms, err, errlen) < 0) return -1;
    } else if (ic_arg_is(a, "STOP")) {
        if (o->n_stop >= IC_MAX_STOP) {
            snprintf(err, errlen, "ERR at most %d STOP strings", IC_MAX_STOP);
            return -1;
        }
        if (v->len == 0 || v->len > IC_MAX_STOP_LEN || memchr(v->ptr, 0, v->len)) {
            snprintf(err, errlen, "ERR STOP string must be 1 to %d bytes without NUL", IC_MAX_STOP_LEN);
            return -1;
        }
        char *c = infer_malloc(v->len + 1);
        if (!c) {
            snprintf(err, errlen, "ERR out of memory");
            return -1;
        }
        memcpy(c, v->ptr, v->len);
        c[v->len] = 0;
        o->stop[o->n_stop++] = c;
    } else if (ic_arg_is(a, "STORE")) {
        o->store = *v;
    } else if (ic_arg_is(a, "STREAM")) {
        o->stream = *v;
    } else {
        return 0;
    }
    *pos = i + 1;
    return 1;
}

void ic_gen_defaults(ic_gen_opts *o, long long default_timeout_ms) {
    memset(o, 0, sizeof *o);
    infer_sampler_defaults(&o->sp);
    o->timeout_ms = default_timeout_ms;
}

int ic_need_generator(const ic_arg *name, const ic_model *m, char *err, size_t errlen) {
    if (!m->encoder) return 0;
    char shown[IC_NAME_MAX];
    ic_shown(name->ptr, name->len, shown, sizeof shown);
    snprintf(err, errlen, "ERR model '%s' is an encoder (it makes embeddings): use INFER.EMBED, or name a generator",
             shown);
    return -1;
}

int ic_gen_parse(const ic_arg *argv, int argc, const ic_model *m, long long default_timeout_ms,
                 ic_gen_opts *o, char *err, size_t errlen) {
    ic_gen_defaults(o, default_timeout_ms);
    if (argc < 3) {
        snprintf(err, errlen, "ERR wrong number of arguments for 'infer.generate' command");
        return -1;
    }
    if (ic_need_generator(&argv[1], m, err, errlen) < 0) return -1;
    int32_t n_vocab = infer_vocab_size(infer_model_vocab(m->model));
    int32_t n_ctx = infer_ctx_n_ctx(m->ctx);
    int from = 3;
    o->src = IC_SRC_TEXT;
    o->input = argv[2];
    if (argc >= 4 && ic_arg_is(&argv[2], "PROMPTKEY")) o->src = IC_SRC_PROMPTKEY, o->input = argv[3], from = 4;
    else if (argc >= 4 && ic_arg_is(&argv[2], "TOKENSKEY")) o->src = IC_SRC_TOKENSKEY, o->input = argv[3], from = 4;
    for (int i = from; i < argc; i++) {
        int rc = ic_gen_option(argv, argc, &i, n_ctx, n_vocab, o, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) return ic_syntax(&argv[i], "unknown option", err, errlen);
    }
    if (o->src == IC_SRC_TOKENSKEY && o->chat) {
        snprintf(err, errlen, "ERR CHAT cannot be combined with TOKENSKEY");
        return -1;
    }
    return 0;
}

int32_t *ic_tokenize_prompt(const infer_vocab *v, const char *text, size_t len, int chat, int64_t *n,
                            char *err, size_t errlen) {
    char *chat_text = NULL;
    char e[IC_ERRLEN] = "";
    unsigned flags = INFER_TOK_ADD_SPECIAL;
    if (chat) {
        if (memchr(text, 0, len)) {
            snprintf(err, errlen, "ERR a CHAT prompt must not contain NUL bytes");
            return NULL;
        }
        /* the message must be NUL-terminated for the template code */
        char *msg_text = infer_malloc(len + 1);
        if (!msg_text) {
            snprintf(err, errlen, "ERR out of memory");
            return NULL;
        }
        memcpy(msg_text, text, len);
        msg_text[len] = 0;
        int tmpl = infer_chat_template(v);
        infer_chat_msg msg = {"user", msg_text};
        unsigned cf = INFER_CHAT_ADD_ASSISTANT | (tmpl == INFER_CHAT_QWEN3 ? INFER_CHAT_NO_THINKING : 0);
        int64_t need = infer_chat_format(tmpl, &msg, 1, cf, NULL, 0, e, sizeof e);
        if (need >= 0 && !(chat_text = infer_malloc((size_t)need + 1))) {
            snprintf(e, sizeof e, "out of memory");
            need = -1;
        }
        if (need >= 0 && infer_chat_format(tmpl, &msg, 1, cf, chat_text, (size_t)need + 1, e, sizeof e) < 0)
            need = -1;
        free(msg_text);
        if (need < 0) {
            free(chat_text);
            snprintf(err, errlen, "ERR %s", e);
            return NULL;
        }
        text = chat_text;
        len = (size_t)need;
        flags = INFER_TOK_PARSE_SPECIAL;
    }
    size_t cap = len + 16;
    int32_t *ids = infer_malloc(cap * sizeof *ids);
    int64_t r = -1;
    if (!ids) snprintf(e, sizeof e, "out of memory");
    else r = infer_tokenize(v, text, len, flags, ids, cap, e, sizeof e);
    if (r > (int64_t)cap) {
        int32_t *b = infer_realloc(ids, (size_t)r * sizeof *ids);
        if (b) {
            ids = b;
            r = infer_tokenize(v, text, len, flags, ids, (size_t)r, e, sizeof e);
        } else {
            snprintf(e, sizeof e, "out of memory");
            r = -1;
        }
    }
    free(chat_text);
    if (r < 0) {
        free(ids);
        snprintf(err, errlen, "ERR %s", e);
        return NULL;
    }
    *n = r;
    return ids;
}

int32_t *ic_decode_tokens(const unsigned char *p, size_t len, int32_t n_vocab, int64_t *n, char *err,
                          size_t errlen) {
    if (len == 0 || len % 4 != 0) {
        snprintf(err, errlen,
                 "ERR TOKENSKEY value must be a non-empty sequence of 4-byte little-endian ids (got %zu bytes)", len);
        return NULL;
    }
    size_t cnt = len / 4;
    int32_t *ids = infer_malloc(cnt * sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "ERR out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cnt; i++) {
        uint32_t v = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                     (uint32_t)p[4 * i + 3] << 24;
        if (v >= (uint32_t)n_vocab) {
            snprintf(err, errlen, "ERR TOKENSKEY id %u at position %zu is out of range (vocab size %d)", v, i,
                     n_vocab);
            free(ids);
            return NULL;
        }
        ids[i] = (int32_t)v;
    }
    *n = (int64_t)cnt;
    return ids;
}

int32_t *ic_gen_prepare(const ic_model *m, ic_gen_opts *o, int default_max_tokens, const char *input,
                        size_t len, int32_t *n_prompt, char *err, size_t errlen) {
    const infer_vocab *v = infer_model_vocab(m->model);
    int32_t n_ctx = infer_ctx_n_ctx(m->ctx);
    int64_t n = 0;
    int32_t *ids = o->src == IC_SRC_TOKENSKEY
                       ? ic_decode_tokens((const unsigned char *)input, len, infer_vocab_size(v), &n, err, errlen)
                       : ic_tokenize_prompt(v, input, len, o->chat, &n, err, errlen);
    if (!ids) return NULL;
    if (n == 0) {
        snprintf(err, errlen, "ERR the prompt is empty and the model's vocab has no BOS token");
    } else if (n >= n_ctx) {
        snprintf(err, errlen, "ERR the prompt has %lld tokens; the context holds %d", (long long)n, n_ctx);
    } else if (o->max_tokens == 0) {
        o->max_tokens = default_max_tokens;
        if (o->max_tokens > n_ctx - n) o->max_tokens = n_ctx - n;
        *n_prompt = (int32_t)n;
        return ids;
    } else if (n + o->max_tokens > n_ctx) {
        snprintf(err, errlen, "ERR prompt (%lld tokens) + MAXTOKENS %lld exceed the context of %d tokens",
                 (long long)n, o->max_tokens, n_ctx);
    } else {
        *n_prompt = (int32_t)n;
        return ids;
    }
    free(ids);
    return NULL;
}
