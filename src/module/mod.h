/* mod.h - what the files of inferkv.so share: the configuration, the model
 * registry (libinfercmd's, driven from here), the argument helpers and the
 * vector-set front-end's entry points.
 *
 * Threading rule of the whole module: everything declared here is touched
 * only on the server's main thread (command, reply, free, disconnect and
 * event-loop callbacks), except where a comment says otherwise.  Engine
 * and load threads talk to the main thread only through
 * RedisModule_UnblockClient and RedisModule_EventLoopAddOneShot. */
#ifndef INFERKV_MOD_H
#define INFERKV_MOD_H

#include "infer.h"
#include "infercmd.h"
#include "redismodule_api.h"

#include <pthread.h>
#include <stdint.h>

typedef struct mod_config {
    char *models_dir;          /* NULL: INFER.LOAD refused */
    ic_load_params load;       /* threads, queue, batch, KV budget, nice, loads at once */
    int64_t default_timeout_ms;/* 0: none */
    int default_max_tokens;
    int vector_sets;           /* infer-vector-sets yes: the V* commands and the vectorset type */
} mod_config;

typedef struct mod_state {
    mod_config cfg;
    ic_registry reg;
    int shutting_down;
    RedisModuleCtx *dctx; /* detached context for STREAM writes outside a command */
} mod_state;

extern mod_state g_mod;

/* registry commands (models.c) */
int mod_cmd_load(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int mod_cmd_unload(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int mod_cmd_models(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* generation (generate.c) */
int mod_cmd_generate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* tokenizer commands (tokens.c) */
int mod_cmd_tokenize(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int mod_cmd_detokenize(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* INFER.STATS and INFO infer (stats.c) */
int mod_cmd_stats(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
void mod_info(RedisModuleInfoCtx *ctx, int for_crash_report);

/* vector sets (vsets.c) */
/* From RedisModule_OnLoad: registers the "vectorset" data type and the V*
 * commands unless the host already has VADD (then logs it and registers
 * nothing).  REDISMODULE_ERR (logged) when registration fails. */
int mod_vsets_init(RedisModuleCtx *ctx);

/* argument helpers (args.c) */
/* argv as (pointer, length) pairs for libinfercmd; NULL on OOM (replied). */
ic_arg *mod_args(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
/* Replies a libinfercmd error line (newlines made spaces). */
int mod_reply_err(RedisModuleCtx *ctx, const char *line);
int mod_reply_errorf(RedisModuleCtx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mod_is_resp3(RedisModuleCtx *ctx);
/* A libinfercmd field list as a map reply. */
int mod_reply_fields(RedisModuleCtx *ctx, const ic_field *f, int n);
/* The model named by argv (error replied and NULL when unknown). */
ic_model *mod_arg_model(RedisModuleCtx *ctx, RedisModuleString *name);

#endif
