/* tokens.c - INFER.TOKENIZE and INFER.DETOKENIZE.
 *
 * Tokenizing is cheap next to a forward pass, so these answer at once on
 * the main thread. */
#include "mod.h"

#include <stdlib.h>
#include <string.h>

/* INFER.TOKENIZE name text -> array of ids (BOS added as the vocab asks,
 * the same ids INFER.GENERATE feeds the model). */
int mod_cmd_tokenize(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    mod_model *m = mod_arg_model(ctx, argv[1]);
    if (!m) return REDISMODULE_OK;
    const infer_vocab *v = infer_model_vocab(m->model);
    size_t len;
    const char *text = RedisModule_StringPtrLen(argv[2], &len);
    char err[256];
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    int64_t n = infer_tokenize(v, text, len, INFER_TOK_ADD_SPECIAL, ids, cap, err, sizeof err);
    if (n > (int64_t)cap) {
        int32_t *b = realloc(ids, (size_t)n * sizeof *ids);
        if (!b) {
            free(ids);
            return RedisModule_ReplyWithError(ctx, "ERR out of memory");
        }
        ids = b;
        n = infer_tokenize(v, text, len, INFER_TOK_ADD_SPECIAL, ids, (size_t)n, err, sizeof err);
    }
    if (n < 0) {
        free(ids);
        return mod_reply_errorf(ctx, "ERR %s", err);
    }
    RedisModule_ReplyWithArray(ctx, (long)n);
    for (int64_t i = 0; i < n; i++) RedisModule_ReplyWithLongLong(ctx, ids[i]);
    free(ids);
    return REDISMODULE_OK;
}

/* INFER.DETOKENIZE name id... -> the text (special tokens dropped). */
int mod_cmd_detokenize(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3) return RedisModule_WrongArity(ctx);
    mod_model *m = mod_arg_model(ctx, argv[1]);
    if (!m) return REDISMODULE_OK;
    const infer_vocab *v = infer_model_vocab(m->model);
    int32_t n_vocab = infer_vocab_size(v);
    size_t n = (size_t)argc - 2;
    int32_t *ids = malloc(n * sizeof *ids);
    if (!ids) return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    for (size_t i = 0; i < n; i++) {
        long long id;
        if (mod_arg_ll(ctx, argv[2 + i], "token id", 0, (long long)n_vocab - 1, &id) < 0) {
            free(ids);
            return REDISMODULE_OK;
        }
        ids[i] = (int32_t)id;
    }
    char err[256];
    unsigned flags = INFER_DETOK_REMOVE_SPECIAL;
    int64_t need = infer_detokenize(v, ids, n, flags, NULL, 0, err, sizeof err);
    char *out = need >= 0 ? malloc((size_t)need + 1) : NULL;
    if (need >= 0 && !out) {
        free(ids);
        return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    }
    if (need >= 0) need = infer_detokenize(v, ids, n, flags, out, (size_t)need + 1, err, sizeof err);
    free(ids);
    if (need < 0) {
        free(out);
        return mod_reply_errorf(ctx, "ERR %s", err);
    }
    RedisModule_ReplyWithStringBuffer(ctx, out, (size_t)need);
    free(out);
    return REDISMODULE_OK;
}
