/* tokens.c - INFER.TOKENIZE and INFER.DETOKENIZE, answered at once on the
 * main thread (tokenizing is cheap next to a forward pass). */
#include "mod.h"

#include <stdlib.h>

/* INFER.TOKENIZE name text -> array of ids (BOS added as the vocab asks,
 * the same ids INFER.GENERATE feeds the model). */
int mod_cmd_tokenize(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3) return RedisModule_WrongArity(ctx);
    ic_model *m = mod_arg_model(ctx, argv[1]);
    if (!m) return REDISMODULE_OK;
    size_t len;
    const char *text = RedisModule_StringPtrLen(argv[2], &len);
    char err[IC_ERRLEN];
    int64_t n;
    int32_t *ids = ic_tokenize(m, text, len, &n, err, sizeof err);
    if (!ids) return mod_reply_err(ctx, err);
    RedisModule_ReplyWithArray(ctx, (long)n);
    for (int64_t i = 0; i < n; i++) RedisModule_ReplyWithLongLong(ctx, ids[i]);
    free(ids);
    return REDISMODULE_OK;
}

/* INFER.DETOKENIZE name id... -> the text (special tokens dropped). */
int mod_cmd_detokenize(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3) return RedisModule_WrongArity(ctx);
    ic_model *m = mod_arg_model(ctx, argv[1]);
    if (!m) return REDISMODULE_OK;
    ic_arg *a = mod_args(ctx, argv, argc);
    if (!a) return REDISMODULE_OK;
    char err[IC_ERRLEN];
    size_t len;
    char *text = ic_detokenize(m, a + 2, argc - 2, &len, err, sizeof err);
    free(a);
    if (!text) return mod_reply_err(ctx, err);
    RedisModule_ReplyWithStringBuffer(ctx, text, len);
    free(text);
    return REDISMODULE_OK;
}
