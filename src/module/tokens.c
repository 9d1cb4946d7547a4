/* tokens.c - INFER.TOKENIZE, INFER.DETOKENIZE and INFER.STATS.
 *
 * Tokenizing is cheap next to a forward pass, so these answer at once on
 * the main thread; statistics are read from the schedulers under their own
 * locks. */
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

/* INFER.STATS: totals over every model (freed ones included). */
int mod_cmd_stats(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RedisModule_WrongArity(ctx);
    mod_totals t = g_mod.retired;
    long long queued = 0, active = 0, kv_used = 0, kv_free = 0, kv_total = 0, kv_cached = 0;
    unsigned long long lookups = 0, hits = 0;
    double tps = 0;
    for (int i = 0; i < g_mod.n_models; i++) {
        mod_model *m = g_mod.models[i];
        if (!m->sched) continue;
        infer_sched_stats st;
        infer_sched_get_stats(m->sched, &st);
        t.submitted += st.submitted;
        t.completed += st.completed;
        t.rejected += st.rejected;
        t.cancelled += st.cancelled;
        t.timeouts += st.timeouts;
        t.errors += st.errors;
        t.prompt_tokens += st.prompt_tokens;
        t.generated_tokens += st.generated_tokens;
        queued += st.queued;
        active += st.active;
        tps += st.tokens_per_s;
        kv_used += st.kv.blocks_used;
        kv_free += st.kv.blocks_free;
        kv_total += st.kv.blocks_total;
        kv_cached += st.kv.blocks_cached;
        lookups += st.kv.prefix_lookups;
        hits += st.kv.prefix_hits;
    }
    RedisModule_ReplyWithMap(ctx, 20);
#define FIELD_LL(k, val)                         \
    RedisModule_ReplyWithCString(ctx, k);        \
    RedisModule_ReplyWithLongLong(ctx, (long long)(val))
    FIELD_LL("models", g_mod.n_models);
    FIELD_LL("in_flight", g_mod.in_flight);
    FIELD_LL("loads_running", g_mod.loads_running);
    FIELD_LL("queued", queued);
    FIELD_LL("active", active);
    FIELD_LL("submitted", t.submitted);
    FIELD_LL("completed", t.completed);
    FIELD_LL("rejected", t.rejected);
    FIELD_LL("refused", g_mod.refused);
    FIELD_LL("cancelled", t.cancelled);
    FIELD_LL("timeouts", t.timeouts);
    FIELD_LL("errors", t.errors);
    FIELD_LL("prompt_tokens", t.prompt_tokens);
    FIELD_LL("generated_tokens", t.generated_tokens);
    RedisModule_ReplyWithCString(ctx, "tokens_per_s");
    RedisModule_ReplyWithDouble(ctx, tps);
    FIELD_LL("kv_blocks_used", kv_used);
    FIELD_LL("kv_blocks_cached", kv_cached);
    FIELD_LL("kv_blocks_free", kv_free);
    FIELD_LL("kv_blocks_total", kv_total);
    RedisModule_ReplyWithCString(ctx, "prefix_hit_rate");
    RedisModule_ReplyWithDouble(ctx, lookups ? (double)hits / (double)lookups : 0.0);
#undef FIELD_LL
    return REDISMODULE_OK;
}
