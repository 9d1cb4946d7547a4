/* models.c - INFER.LOAD / INFER.UNLOAD / INFER.MODELS inside Redis.
 *
 * The registry and the load thread are libinfercmd's; this file blocks the
 * client while the load runs, and installs the model on the main thread in
 * the reply callback (or in the free callback when the client went away:
 * the model still gets loaded). */
#include "mod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* load thread: the job goes back to the main thread */
static void load_done(ic_load *l) { RedisModule_UnblockClient(l->ud, l); }

static int load_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    ic_load *l = RedisModule_GetBlockedClientPrivateData(ctx);
    char err[IC_ERRLEN];
    if (ic_load_install(&g_mod.reg, l, err, sizeof err) < 0) return mod_reply_err(ctx, err);
    RedisModule_Log(ctx, "notice", "infer: loaded model '%s' from %s", l->names[0], l->m->path);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

static int load_timeout(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    return RedisModule_ReplyWithError(ctx, "ERR model load timed out");
}

static void load_free(RedisModuleCtx *ctx, void *priv) {
    (void)ctx;
    ic_load *l = priv;
    if (!l) return;
    /* a client that went away still gets its model loaded */
    if (!l->installed && !g_mod.shutting_down) {
        char err[IC_ERRLEN];
        ic_load_install(&g_mod.reg, l, err, sizeof err);
    }
    ic_load_free(&g_mod.reg, l);
}

/* INFER.LOAD name path [CONTEXT n] [ALIAS name ...] */
int mod_cmd_load(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3) return RedisModule_WrongArity(ctx);
    ic_arg *a = mod_args(ctx, argv, argc);
    if (!a) return REDISMODULE_OK;
    char err[IC_ERRLEN];
    ic_load *l = ic_load_parse(&g_mod.reg, a, argc, g_mod.cfg.models_dir, &g_mod.cfg.load, err, sizeof err);
    free(a);
    if (!l) return mod_reply_err(ctx, err);
    if (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_DENY_BLOCKING) {
        ic_load_free(&g_mod.reg, l);
        return RedisModule_ReplyWithError(ctx, "ERR INFER.LOAD cannot run inside MULTI or a script");
    }
    RedisModuleBlockedClient *bc = RedisModule_BlockClient(ctx, load_reply, load_timeout, load_free, 0);
    if (!bc) {
        ic_load_free(&g_mod.reg, l);
        return RedisModule_ReplyWithError(ctx, "ERR cannot block the client");
    }
    l->done = load_done;
    l->ud = bc;
    if (ic_load_start(&g_mod.reg, l, err, sizeof err) < 0) {
        RedisModule_AbortBlock(bc);
        ic_load_free(&g_mod.reg, l);
        return mod_reply_err(ctx, err);
    }
    return REDISMODULE_OK;
}

/* INFER.UNLOAD name: requests in flight finish on the model first */
int mod_cmd_unload(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    ic_arg a;
    char err[IC_ERRLEN];
    a.ptr = RedisModule_StringPtrLen(argv[1], &a.len);
    if (ic_unregister(&g_mod.reg, &a, err, sizeof err) < 0) return mod_reply_err(ctx, err);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* INFER.MODELS: one map per registered name. */
int mod_cmd_models(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RedisModule_WrongArity(ctx);
    RedisModule_ReplyWithArray(ctx, g_mod.reg.n);
    for (int i = 0; i < g_mod.reg.n; i++) {
        ic_model_desc d;
        ic_field f[IC_MODEL_FIELDS];
        mod_reply_fields(ctx, f, ic_model_fields(&g_mod.reg.entries[i], &d, f));
    }
    return REDISMODULE_OK;
}
