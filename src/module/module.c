/* module.c - inferkv.so's entry points: configuration, command table,
 * shutdown and unload.
 *
 *   redis-server --loadmodule inferkv.so [infer-models-dir DIR]
 *       [infer-threads N] [infer-max-queue N] [infer-max-batch N]
 *       [infer-kv-memory BYTES] [infer-max-memory BYTES] [infer-default-timeout MS]
 *       [infer-max-loads N] [infer-nice N] [infer-idle-priority yes|no] [infer-default-max-tokens N]
 *       [infer-vector-sets yes|no]
 *
 * Only RedisModule_OnLoad and RedisModule_OnUnload are exported.  Unload is
 * refused while any request or load is in flight; when it goes ahead every
 * engine thread is joined first, so no thread runs module code once the
 * server unmaps it.  With vector sets (infer-vector-sets yes, the default)
 * the module defines a data type, and Redis never unloads a module that
 * has one: MODULE UNLOAD then needs infer-vector-sets no.  On server shutdown the schedulers are stopped (their
 * threads joined) before the process exits. */
#include "mod.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define EXPORT __attribute__((visibility("default")))

mod_state g_mod;

static int parse_ll(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int load_config(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    mod_config *c = &g_mod.cfg;
    c->load.threads = 2;
    c->load.max_queue = 64;
    c->load.max_active = 16;
    c->load.kv_bytes = 0;
    c->load.max_memory = ic_default_max_memory();
    c->load.max_loads = 2;
    c->load.nice = 5;
    c->load.idle = 1;
    c->default_timeout_ms = 0;
    c->default_max_tokens = 128;
    c->vector_sets = 1;
    if (argc % 2) {
        RedisModule_Log(ctx, "warning", "infer: module arguments come in pairs: option value");
        return -1;
    }
    for (int i = 0; i < argc; i += 2) {
        const char *k = RedisModule_StringPtrLen(argv[i], NULL);
        const char *v = RedisModule_StringPtrLen(argv[i + 1], NULL);
        long long n = 0;
        int bad = 0;
        if (!strcasecmp(k, "infer-models-dir")) {
            char *real = realpath(v, NULL);
            struct stat sb;
            if (!real || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
                RedisModule_Log(ctx, "warning", "infer: infer-models-dir %s is not a directory", v);
                free(real);
                return -1;
            }
            free(c->models_dir);
            c->models_dir = real;
        } else if (!strcasecmp(k, "infer-threads")) {
            bad = parse_ll(v, 1, 256, &n);
            c->load.threads = (int)n;
        } else if (!strcasecmp(k, "infer-max-queue")) {
            bad = parse_ll(v, 1, 1 << 20, &n);
            c->load.max_queue = (int)n;
        } else if (!strcasecmp(k, "infer-max-batch") || !strcasecmp(k, "infer-max-active")) {
            bad = parse_ll(v, 1, 4096, &n);
            c->load.max_active = (int)n;
        } else if (!strcasecmp(k, "infer-kv-memory")) {
            bad = ic_parse_mem(v, &c->load.kv_bytes); /* bytes, or 512mb, 2gb ... as in redis.conf */
        } else if (!strcasecmp(k, "infer-max-memory")) {
            bad = ic_parse_mem(v, &c->load.max_memory); /* 0: no budget */
        } else if (!strcasecmp(k, "infer-default-timeout")) {
            bad = parse_ll(v, 0, 24LL * 3600 * 1000, &n);
            c->default_timeout_ms = n;
        } else if (!strcasecmp(k, "infer-max-loads")) {
            bad = parse_ll(v, 1, 64, &n);
            c->load.max_loads = (int)n;
        } else if (!strcasecmp(k, "infer-nice")) {
            bad = parse_ll(v, 0, 19, &n);
            c->load.nice = (int)n;
        } else if (!strcasecmp(k, "infer-idle-priority")) {
            bad = strcasecmp(v, "yes") && strcasecmp(v, "no");
            c->load.idle = !strcasecmp(v, "yes");
        } else if (!strcasecmp(k, "infer-default-max-tokens")) {
            bad = parse_ll(v, 1, 1 << 20, &n);
            c->default_max_tokens = (int)n;
        } else if (!strcasecmp(k, "infer-debug")) {
            bad = strcasecmp(v, "yes") && strcasecmp(v, "no");
            c->debug = !strcasecmp(v, "yes");
        } else if (!strcasecmp(k, "infer-vector-sets")) {
            bad = strcasecmp(v, "yes") && strcasecmp(v, "no");
            c->vector_sets = !strcasecmp(v, "yes");
        } else {
            RedisModule_Log(ctx, "warning", "infer: unknown module option %s", k);
            return -1;
        }
        if (bad) {
            RedisModule_Log(ctx, "warning", "infer: bad value '%s' for %s", v, k);
            return -1;
        }
    }
    return 0;
}

static void on_shutdown(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t subevent, void *data) {
    (void)ctx, (void)eid, (void)subevent, (void)data;
    g_mod.shutting_down = 1;
    ic_stop_all(&g_mod.reg);
}

typedef struct cmd_def {
    const char *name;
    RedisModuleCmdFunc fn;
    const char *flags;
} cmd_def;

/* The commands that name no key.  INFER.LOAD and INFER.UNLOAD are not
 * writes either: models are not data, and each node (replicas included)
 * loads its own (docs/module.md, "Keys, replicas and Redis Cluster"). */
/* every command through its trampoline: INFER.DEBUG ALLOC-FAIL's window */
MOD_FAULTED(mod_cmd_load)
MOD_FAULTED(mod_cmd_unload)
MOD_FAULTED(mod_cmd_models)
MOD_FAULTED(mod_cmd_tokenize)
MOD_FAULTED(mod_cmd_detokenize)
MOD_FAULTED(mod_cmd_stats)
MOD_FAULTED(mod_cmd_generate)
MOD_FAULTED(mod_cmd_embed)
MOD_FAULTED(mod_cmd_rag)
MOD_FAULTED(mod_cmd_answer)

static const cmd_def commands[] = {
    {"infer.load", mod_cmd_load_faulted, "deny-script"},
    {"infer.unload", mod_cmd_unload_faulted, "deny-script"},
    {"infer.models", mod_cmd_models_faulted, "readonly"},
    {"infer.tokenize", mod_cmd_tokenize_faulted, "readonly"},
    {"infer.detokenize", mod_cmd_detokenize_faulted, "readonly"},
    {"infer.stats", mod_cmd_stats_faulted, "readonly"},
};

/* The commands that name keys: readonly (a call without STORE, STREAM or
 * INTO is a read, served by replicas), their write forms refused on
 * replicas by the commands themselves; key specs and getkeys-api from
 * routing.c.  Arity as inferkv-server's table. */
static const struct {
    const char *name;
    RedisModuleCmdFunc fn;
    int keys, arity;
    const char *summary;
} keyed[] = {
    {"infer.generate", mod_cmd_generate_faulted, IC_KEYS_GENERATE, -3,
     "Generate text from a prompt with a loaded model"},
    {"infer.embed", mod_cmd_embed_faulted, IC_KEYS_EMBED, -3, "Embed texts with an encoder, or add one to a vector set"},
    {"infer.rag", mod_cmd_rag_faulted, IC_KEYS_RAG, -5, "Retrieve from a vector set and generate an answer"},
    {"infer.answer", mod_cmd_answer_faulted, IC_KEYS_ANSWER, -5,
     "Generate an answer from given chunks, as INFER.RAG would"},
};

EXPORT int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (inferkv_rm_init(ctx, "infer", 1, REDISMODULE_APIVER_1) != REDISMODULE_OK) return REDISMODULE_ERR;
    memset(&g_mod, 0, sizeof g_mod);
    if (load_config(ctx, argv, argc) < 0) {
        free(g_mod.cfg.models_dir);
        g_mod.cfg.models_dir = NULL;
        return REDISMODULE_ERR;
    }
    if (g_mod.cfg.vector_sets && mod_vsets_init(ctx) != REDISMODULE_OK) {
        free(g_mod.cfg.models_dir);
        g_mod.cfg.models_dir = NULL;
        return REDISMODULE_ERR;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (RedisModule_CreateCommand(ctx, commands[i].name, commands[i].fn, commands[i].flags, 0, 0, 0) !=
            REDISMODULE_OK) {
            RedisModule_Log(ctx, "warning", "infer: cannot register %s", commands[i].name);
            return REDISMODULE_ERR;
        }
    }
    for (size_t i = 0; i < sizeof keyed / sizeof keyed[0]; i++)
        if (mod_register_keyed(ctx, keyed[i].name, keyed[i].fn, keyed[i].keys, keyed[i].arity, keyed[i].summary) !=
            REDISMODULE_OK)
            return REDISMODULE_ERR;
    if (g_mod.cfg.debug) {
        if (RedisModule_CreateCommand(ctx, "infer.debug", mod_cmd_debug, "admin", 0, 0, 0) != REDISMODULE_OK)
            return REDISMODULE_ERR;
        RedisModule_Log(ctx, "warning", "infer: infer-debug yes: INFER.DEBUG can inject allocation failures");
    }
    if (!(g_mod.dctx = RedisModule_GetDetachedThreadSafeContext(ctx))) {
        RedisModule_Log(ctx, "warning", "infer: cannot create a detached context");
        return REDISMODULE_ERR;
    }
    RedisModule_RegisterInfoFunc(ctx, mod_info);
    RedisModuleEvent shutdown_ev = {REDISMODULE_EVENT_SHUTDOWN, 1};
    RedisModule_SubscribeToServerEvent(ctx, shutdown_ev, on_shutdown);
    char budget[32];
    ic_human_bytes(g_mod.cfg.load.max_memory, budget, sizeof budget);
    RedisModule_Log(ctx, "notice",
                    "infer: ready (models dir %s, %d threads per model, kernels %s, infer-max-memory %s)",
                    g_mod.cfg.models_dir ? g_mod.cfg.models_dir : "(none: INFER.LOAD disabled)",
                    g_mod.cfg.load.threads, infer_simd_name(),
                    g_mod.cfg.load.max_memory ? budget : "0 (no limit)");
    return REDISMODULE_OK;
}

EXPORT int RedisModule_OnUnload(RedisModuleCtx *ctx) {
    if (g_mod.reg.in_flight > 0) {
        RedisModule_Log(ctx, "warning", "infer: unload refused: %d requests or loads in flight", g_mod.reg.in_flight);
        return REDISMODULE_ERR;
    }
    ic_free_all(&g_mod.reg); /* joins every scheduler and pool thread */
    if (g_mod.dctx) RedisModule_FreeThreadSafeContext(g_mod.dctx);
    g_mod.dctx = NULL;
    free(g_mod.cfg.models_dir);
    g_mod.cfg.models_dir = NULL;
    return REDISMODULE_OK;
}
