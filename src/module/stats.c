/* stats.c - INFER.STATS and the "infer" section of INFO.
 *
 * Both show the same figures: totals over every model (models already
 * replaced or unloaded included), read from the schedulers under their own
 * locks, on the main thread. */
#include "mod.h"

#include <string.h>

typedef struct stats_view {
    mod_totals t;
    long long queued, active, kv_used, kv_free, kv_total, kv_cached;
    unsigned long long lookups, hits;
    double tps;
} stats_view;

static void collect(stats_view *v) {
    memset(v, 0, sizeof *v);
    v->t = g_mod.retired;
    for (int i = 0; i < g_mod.n_models; i++) {
        mod_model *m = g_mod.models[i];
        if (!m->sched) continue;
        infer_sched_stats st;
        infer_sched_get_stats(m->sched, &st);
        v->t.submitted += st.submitted;
        v->t.completed += st.completed;
        v->t.rejected += st.rejected;
        v->t.cancelled += st.cancelled;
        v->t.timeouts += st.timeouts;
        v->t.errors += st.errors;
        v->t.prompt_tokens += st.prompt_tokens;
        v->t.generated_tokens += st.generated_tokens;
        v->queued += st.queued;
        v->active += st.active;
        v->tps += st.tokens_per_s;
        v->kv_used += st.kv.blocks_used;
        v->kv_free += st.kv.blocks_free;
        v->kv_total += st.kv.blocks_total;
        v->kv_cached += st.kv.blocks_cached;
        v->lookups += st.kv.prefix_lookups;
        v->hits += st.kv.prefix_hits;
    }
}

/* One list drives both outputs, so they never disagree. */
#define STATS_FIELDS(LL, DBL)                                         \
    LL("models", g_mod.n_models)                                      \
    LL("in_flight", g_mod.in_flight)                                  \
    LL("loads_running", g_mod.loads_running)                          \
    LL("queued", v.queued)                                            \
    LL("active", v.active)                                            \
    LL("submitted", v.t.submitted)                                    \
    LL("completed", v.t.completed)                                    \
    LL("rejected", v.t.rejected)                                      \
    LL("refused", g_mod.refused)                                      \
    LL("cancelled", v.t.cancelled)                                    \
    LL("timeouts", v.t.timeouts)                                      \
    LL("errors", v.t.errors)                                          \
    LL("prompt_tokens", v.t.prompt_tokens)                            \
    LL("generated_tokens", v.t.generated_tokens)                      \
    DBL("tokens_per_s", v.tps)                                        \
    LL("kv_blocks_used", v.kv_used)                                   \
    LL("kv_blocks_cached", v.kv_cached)                               \
    LL("kv_blocks_free", v.kv_free)                                   \
    LL("kv_blocks_total", v.kv_total)                                 \
    DBL("prefix_hit_rate", v.lookups ? (double)v.hits / (double)v.lookups : 0.0)

#define COUNT_ONE(k, val) +1
#define N_FIELDS (0 STATS_FIELDS(COUNT_ONE, COUNT_ONE))

/* INFER.STATS -> map of the fields above */
int mod_cmd_stats(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RedisModule_WrongArity(ctx);
    stats_view v;
    collect(&v);
    RedisModule_ReplyWithMap(ctx, N_FIELDS);
#define REPLY_LL(k, val)                  \
    RedisModule_ReplyWithCString(ctx, k); \
    RedisModule_ReplyWithLongLong(ctx, (long long)(val));
#define REPLY_DBL(k, val)                 \
    RedisModule_ReplyWithCString(ctx, k); \
    RedisModule_ReplyWithDouble(ctx, (double)(val));
    STATS_FIELDS(REPLY_LL, REPLY_DBL)
#undef REPLY_LL
#undef REPLY_DBL
    return REDISMODULE_OK;
}

/* INFO infer: the same fields, prefixed "infer_" by the server. */
void mod_info(RedisModuleInfoCtx *ctx, int for_crash_report) {
    /* a crash report must not take the schedulers' locks */
    if (for_crash_report) return;
    stats_view v;
    collect(&v);
    RedisModule_InfoAddSection(ctx, "");
#define INFO_LL(k, val) RedisModule_InfoAddFieldLongLong(ctx, k, (long long)(val));
#define INFO_DBL(k, val) RedisModule_InfoAddFieldDouble(ctx, k, (double)(val));
    STATS_FIELDS(INFO_LL, INFO_DBL)
#undef INFO_LL
#undef INFO_DBL
}
