/* embed.c - INFER.EMBED's grammar and the checks on texts to embed.
 *
 *   INFER.EMBED model text [text ...] [NORMALIZE yes|no] [LONG refuse|chunk]
 *       [FP32] [TIMEOUT ms]
 *   INFER.EMBED model INTO key element text [SETATTR json] [Q8|BIN|NOQUANT]
 *       [NORMALIZE yes|no] [LONG refuse|chunk] [TIMEOUT ms]
 *
 * The first form takes any number of texts followed by options, and a
 * text may be any string, so the options are read from the end: while the
 * last argument is FP32, or the one before it NORMALIZE, LONG or TIMEOUT,
 * they are options (each at most once; at least one text always stays).
 * A value that does not parse is an error, never a text, so a typo is
 * answered rather than embedded.  The INTO form has one text at a fixed
 * place and its options after it in any order.
 *
 * Texts are checked before anything is queued: empty texts, invalid
 * UTF-8 and NUL bytes are refused with the text's position, as is a
 * request over IC_EMBED_MAX_TEXTS texts or IC_EMBED_MAX_BYTES bytes.  A
 * text longer than the model's context is refused by the engine (LONG
 * refuse, the default) or embedded in windows (LONG chunk); it is never
 * cut silently. */
#include "infercmd.h"

#include <stdio.h>
#include <string.h>

int ic_need_encoder(const ic_arg *name, const ic_model *m, char *err, size_t errlen) {
    if (m->encoder) return 0;
    char shown[IC_NAME_MAX];
    ic_shown(name->ptr, name->len, shown, sizeof shown);
    snprintf(err, errlen,
             "ERR model '%s' is a generator, not an encoder: INFER.EMBED needs an embedding model (bert)", shown);
    return -1;
}

int ic_embed_check_texts(const ic_arg *texts, int n, const char *what, char *err, size_t errlen) {
    if (n < 1) {
        snprintf(err, errlen, "ERR no text to embed");
        return -1;
    }
    if (n > IC_EMBED_MAX_TEXTS) {
        snprintf(err, errlen, "ERR at most %d texts per request (got %d)", IC_EMBED_MAX_TEXTS, n);
        return -1;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        char where[48];
        if (n == 1) snprintf(where, sizeof where, "%s", what);
        else snprintf(where, sizeof where, "%s %d", what, i + 1);
        const ic_arg *t = &texts[i];
        size_t bad;
        if (t->len == 0) {
            snprintf(err, errlen, "ERR %s is empty", where);
            return -1;
        }
        if (t->len > IC_EMBED_MAX_BYTES - total) {
            snprintf(err, errlen, "ERR the text to embed is too large: at most %u bytes per request",
                     IC_EMBED_MAX_BYTES);
            return -1;
        }
        total += t->len;
        if (memchr(t->ptr, 0, t->len)) {
            snprintf(err, errlen, "ERR %s contains a NUL byte", where);
            return -1;
        }
        if (!ic_utf8_valid(t->ptr, t->len, &bad)) {
            snprintf(err, errlen, "ERR %s is not valid UTF-8 (at byte %zu)", where, bad);
            return -1;
        }
    }
    return 0;
}

/* NORMALIZE / LONG / TIMEOUT with their value at argv[i + 1]: 1 taken, 0
 * not one of them, -1 error. */
static int value_option(const ic_arg *a, const ic_arg *v, ic_embed_opts *o, int *seen, char *err, size_t errlen) {
    int bit;
    if (ic_arg_is(a, "NORMALIZE")) bit = 1;
    else if (ic_arg_is(a, "LONG")) bit = 2;
    else if (ic_arg_is(a, "TIMEOUT")) bit = 4;
    else return 0;
    if (*seen & bit) return ic_syntax(a, "option given twice:", err, errlen);
    *seen |= bit;
    if (bit == 1) {
        if (ic_arg_is(v, "yes")) o->params.normalize = 1;
        else if (ic_arg_is(v, "no")) o->params.normalize = 0;
        else return snprintf(err, errlen, "ERR NORMALIZE must be yes or no"), -1;
    } else if (bit == 2) {
        if (ic_arg_is(v, "refuse")) o->params.long_input = INFER_LONG_REFUSE;
        else if (ic_arg_is(v, "chunk")) o->params.long_input = INFER_LONG_CHUNK;
        else return snprintf(err, errlen, "ERR LONG must be refuse or chunk"), -1;
    } else if (ic_arg_ll(v, "TIMEOUT", 0, IC_MAX_TIMEOUT_MS, &o->timeout_ms, err, errlen) < 0) {
        return -1;
    }
    return 1;
}

static int parse_into(const ic_arg *argv, int argc, ic_embed_opts *o, char *err, size_t errlen) {
    if (argc < 6) {
        snprintf(err, errlen, "ERR wrong number of arguments: INFER.EMBED model INTO key element text [options]");
        return -1;
    }
    o->into = 1;
    o->key = argv[3];
    o->element = argv[4];
    o->texts = &argv[5];
    o->n_texts = 1;
    int seen = 0;
    for (int i = 6; i < argc; i++) {
        const ic_arg *a = &argv[i];
        if (ic_arg_is(a, "Q8") || ic_arg_is(a, "BIN") || ic_arg_is(a, "NOQUANT")) {
            if (o->quant) return ic_syntax(a, "more than one quantization:", err, errlen);
            o->quant = ic_arg_is(a, "Q8") ? "Q8" : ic_arg_is(a, "BIN") ? "BIN" : "NOQUANT";
            continue;
        }
        if (ic_arg_is(a, "FP32")) return ic_syntax(a, "INTO answers as VADD does; no", err, errlen);
        if (i + 1 >= argc) return ic_syntax(a, "no value after", err, errlen);
        if (ic_arg_is(a, "SETATTR")) {
            if (o->setattr.ptr) return ic_syntax(a, "option given twice:", err, errlen);
            o->setattr = argv[++i];
            continue;
        }
        int rc = value_option(a, &argv[i + 1], o, &seen, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) return ic_syntax(a, "unknown option", err, errlen);
        i++;
    }
    return 0;
}

int ic_embed_parse(const ic_arg *argv, int argc, const ic_model *m, long long default_timeout_ms,
                   ic_embed_opts *o, char *err, size_t errlen) {
    memset(o, 0, sizeof *o);
    infer_embed_defaults(&o->params); /* the model's pooling, normalised, long texts refused */
    o->timeout_ms = default_timeout_ms;
    if (argc < 3) {
        snprintf(err, errlen, "ERR wrong number of arguments for 'infer.embed' command");
        return -1;
    }
    if (ic_need_encoder(&argv[1], m, err, errlen) < 0) return -1;
    if (ic_arg_is(&argv[2], "INTO")) {
        if (parse_into(argv, argc, o, err, errlen) < 0) return -1;
    } else {
        int end = argc, seen = 0;
        for (;;) {
            /* argv[2] is always a text: options end at index 3 at the earliest */
            if (end - 1 >= 3 && ic_arg_is(&argv[end - 1], "FP32")) {
                if (o->fp32) return ic_syntax(&argv[end - 1], "option given twice:", err, errlen);
                o->fp32 = 1;
                end--;
                continue;
            }
            if (end - 2 >= 3) {
                int rc = value_option(&argv[end - 2], &argv[end - 1], o, &seen, err, errlen);
                if (rc < 0) return -1;
                if (rc == 1) {
                    end -= 2;
                    continue;
                }
            }
            break;
        }
        o->texts = &argv[2];
        o->n_texts = end - 2;
    }
    return ic_embed_check_texts(o->texts, o->n_texts, "text", err, errlen);
}
