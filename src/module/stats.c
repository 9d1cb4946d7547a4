/* stats.c - INFER.STATS and the "infer" section of INFO, both from
 * libinfercmd's lists of figures: the statistics, then the engine's memory
 * (the same fields inferkv-server shows in INFO infer and INFO memory). */
#include "mod.h"

#include <stdio.h>
#include <string.h>

/* INFER.STATS -> map of the figures */
int mod_cmd_stats(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RedisModule_WrongArity(ctx);
    ic_field f[IC_STATS_FIELDS + IC_MEM_FIELDS];
    int n = ic_stats(&g_mod.reg, f);
    n += ic_mem_fields(&g_mod.reg, g_mod.cfg.load.max_memory, f + n);
    return mod_reply_fields(ctx, f, n);
}

/* INFO infer: the same fields, prefixed "infer_" by the server; the
 * memory figures with used_memory's and max_memory's _human lines, then
 * one line per live model (infer_model0 ...). */
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
    ic_field mf[IC_MEM_FIELDS];
    n = ic_mem_fields(&g_mod.reg, g_mod.cfg.load.max_memory, mf);
    for (int i = 0; i < n; i++) {
        RedisModule_InfoAddFieldLongLong(ctx, mf[i].name, mf[i].ll);
        if (!strcmp(mf[i].name, "used_memory") || !strcmp(mf[i].name, "max_memory")) {
            char name[32], h[32];
            snprintf(name, sizeof name, "%s_human", mf[i].name);
            ic_info_human((uint64_t)mf[i].ll, h, sizeof h);
            RedisModule_InfoAddFieldCString(ctx, name, h);
        }
    }
    int k = 0;
    for (const ic_model *m = g_mod.reg.live; m; m = m->live_next) {
        char name[32], line[512];
        snprintf(name, sizeof name, "model%d", k++);
        ic_mem_model_line(&g_mod.reg, m, line, sizeof line);
        RedisModule_InfoAddFieldCString(ctx, name, line);
    }
}
