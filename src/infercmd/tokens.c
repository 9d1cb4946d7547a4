/* tokens.c - INFER.TOKENIZE and INFER.DETOKENIZE.
 *
 * Tokenizing is cheap next to a forward pass, so the front-ends answer
 * these at once on the main thread. */
#include "infercmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int32_t *ic_tokenize(const ic_model *m, const char *text, size_t len, int64_t *n, char *err, size_t errlen) {
    return ic_tokenize_prompt(infer_model_vocab(m->model), text, len, 0, n, err, errlen);
}

char *ic_detokenize(const ic_model *m, const ic_arg *args, int n, size_t *len, char *err, size_t errlen) {
    const infer_vocab *v = infer_model_vocab(m->model);
    int32_t n_vocab = infer_vocab_size(v);
    int32_t *ids = infer_malloc((size_t)(n > 0 ? n : 1) * sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "ERR out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        long long id;
        if (ic_arg_ll(&args[i], "token id", 0, (long long)n_vocab - 1, &id, err, errlen) < 0) {
            free(ids);
            return NULL;
        }
        ids[i] = (int32_t)id;
    }
    char e[256];
    unsigned flags = INFER_DETOK_REMOVE_SPECIAL;
    int64_t need = infer_detokenize(v, ids, (size_t)n, flags, NULL, 0, e, sizeof e);
    char *out = need >= 0 ? infer_malloc((size_t)need + 1) : NULL;
    if (need >= 0 && !out) {
        free(ids);
        snprintf(err, errlen, "ERR out of memory");
        return NULL;
    }
    if (need >= 0) need = infer_detokenize(v, ids, (size_t)n, flags, out, (size_t)need + 1, e, sizeof e);
    free(ids);
    if (need < 0) {
        free(out);
        snprintf(err, errlen, "ERR %s", e);
        return NULL;
    }
    *len = (size_t)need;
    return out;
}
