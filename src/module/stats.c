/* stats.c - INFER.STATS and the "infer" section of INFO, both from
 * libinfercmd's one list of figures. */
#include "mod.h"

/* INFER.STATS -> map of the figures */
int mod_cmd_stats(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RedisModule_WrongArity(ctx);
    ic_field f[IC_STATS_FIELDS];
    int n = ic_stats(&g_mod.reg, f);
    return mod_reply_fields(ctx, f, n);
}

/* INFO infer: the same fields, prefixed "infer_" by the server. */
void mod_info(RedisModuleInfoCtx *ctx, int for_crash_report) {
    /* a crash report must not take the schedulers' locks */
    if (for_crash_report) return;
    ic_field f[IC_STATS_FIELDS];
    int n = ic_stats(&g_mod.reg, f);
    RedisModule_InfoAddSection(ctx, "");
    for (int i = 0; i < n; i++) {
        if (f[i].kind == IC_F_DOUBLE) RedisModule_InfoAddFieldDouble(ctx, f[i].name, f[i].d);
        else RedisModule_InfoAddFieldLongLong(ctx, f[i].name, f[i].ll);
    }
}
