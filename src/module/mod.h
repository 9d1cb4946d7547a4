/* mod.h - what the files of inferkv.so share: the configuration, the model
 * registry, the in-flight request list and the argument helpers.
 *
 * Threading rule of the whole module: everything declared here is touched
 * only on the server's main thread (command, reply, free and disconnect
 * callbacks), except where a comment says otherwise.  Engine threads talk
 * to the main thread only through RedisModule_UnblockClient. */
#ifndef INFERKV_MOD_H
#define INFERKV_MOD_H

#include "infer.h"
#include "redismodule_api.h"

#include <pthread.h>
#include <stdint.h>

#define MOD_MAX_MODELS 64
#define MOD_NAME_MAX 128

typedef struct mod_config {
    char *models_dir;          /* NULL: INFER.LOAD refused */
    int threads;               /* compute threads per model (pool size) */
    int max_queue;             /* waiting requests per model */
    int max_active;            /* sequences batched together per model */
    uint64_t kv_bytes;         /* KV budget per model (0: engine default) */
    int64_t default_timeout_ms;/* 0: none */
    int max_loads;             /* INFER.LOAD running at once */
    int nice;                  /* engine threads' nice value */
    int default_max_tokens;
} mod_config;

/* A loaded model with its own pool, context and scheduler.  refs: one for
 * the registry while registered, one per request in flight; the last unref
 * stops the scheduler and frees everything (main thread). */
typedef struct mod_model {
    char name[MOD_NAME_MAX];
    char *path;
    infer_model *model;
    infer_threadpool *tp;
    infer_ctx *ctx;
    infer_sched *sched;
    int refs;
    int registered;
    int live;                                /* on the live list */
    struct mod_model *live_prev, *live_next; /* every installed model not yet freed */
} mod_model;

typedef struct mod_totals {
    uint64_t submitted, completed, rejected, cancelled, timeouts, errors;
    uint64_t prompt_tokens, generated_tokens;
} mod_totals;

typedef struct mod_state {
    mod_config cfg;
    mod_model *models[MOD_MAX_MODELS];
    int n_models;
    mod_model *live; /* registered or replaced but still serving requests */
    int in_flight;     /* blocked clients of this module (requests + loads) */
    int loads_running;
    int shutting_down;
    mod_totals retired; /* stats of freed models */
    uint64_t refused;   /* requests refused before reaching a scheduler */
} mod_state;

extern mod_state g_mod;

/* registry (models.c) */
mod_model *mod_model_find(const char *name, size_t len);
void mod_model_unref(mod_model *m);
void mod_model_stop_all(void); /* server shutdown: stop every scheduler */
void mod_model_free_all(void); /* module unload, nothing in flight */
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

/* argument helpers (args.c) */
int mod_arg_is(const RedisModuleString *s, const char *word);
/* Integer in [lo, hi]; else replies an error naming `what` and returns -1. */
int mod_arg_ll(RedisModuleCtx *ctx, const RedisModuleString *s, const char *what, long long lo,
               long long hi, long long *out);
/* Finite number in [lo, hi]. */
int mod_arg_double(RedisModuleCtx *ctx, const RedisModuleString *s, const char *what, double lo,
                   double hi, double *out);
/* Unsigned 64-bit decimal. */
int mod_arg_u64(RedisModuleCtx *ctx, const RedisModuleString *s, const char *what, uint64_t *out);
int mod_reply_errorf(RedisModuleCtx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mod_is_resp3(RedisModuleCtx *ctx);
/* The model named by argv (error replied and NULL when unknown). */
mod_model *mod_arg_model(RedisModuleCtx *ctx, const RedisModuleString *name);

#endif
