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
#include <stdatomic.h>
#include <stdint.h>

typedef struct mod_config {
    char *models_dir;          /* NULL: INFER.LOAD refused */
    ic_load_params load;       /* threads, queue, batch, KV budget, nice, loads at once */
    int64_t default_timeout_ms;/* 0: none */
    int default_max_tokens;
    int vector_sets;           /* infer-vector-sets yes: the V* commands and the vectorset type */
    int debug;                 /* infer-debug yes: INFER.DEBUG (fault injection, tests only) */
} mod_config;

typedef struct mod_state {
    mod_config cfg;
    ic_registry reg;
    int shutting_down;
    RedisModuleCtx *dctx; /* detached context for STREAM writes outside a command */
} mod_state;

extern mod_state g_mod;

/* INFER.DEBUG ALLOC-FAIL (fault.c): the trampolines of module.c and
 * vsets.c bracket every command's callback with enter (1 when this call
 * is the armed one) and leave. */
int mod_fault_enter(RedisModuleCtx *ctx);
void mod_fault_leave(void);
int mod_cmd_debug(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
/* fn called inside the fault window when this call is the armed one */
#define MOD_FAULTED(fn)                                                                   \
    static int fn##_faulted(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) { \
        int armed = mod_fault_enter(ctx);                                                 \
        int rc = fn(ctx, argv, argc);                                                     \
        if (armed) mod_fault_leave();                                                     \
        return rc;                                                                        \
    }

/* registry commands (models.c) */
int mod_cmd_load(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int mod_cmd_unload(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int mod_cmd_models(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* generation (generate.c) */
int mod_cmd_generate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

/* A blocked INFER.GENERATE or INFER.RAG (generate.c owns its lifecycle:
 * blocking, STREAM and STORE writes, the reply, cancellation; rag.c drives
 * INFER.RAG's steps before the generation).  Main thread, except holds. */
typedef struct gen_req {
    struct gen_req *prev, *next; /* in-flight list (main thread) */
    RedisModuleBlockedClient *bc;
    ic_req *r;         /* the generation; NULL while INFER.RAG embeds */
    ic_rag *rag;       /* INFER.RAG's state, NULL for INFER.GENERATE */
    ic_ereq *e;        /* INFER.RAG's question while it is embedded */
    char *user;        /* INFER.RAG: the calling user's name (retrieval ACL checks) */
    int cancelled;     /* the client went away, or CLIENT UNBLOCK */
    char early_err[IC_ERRLEN]; /* INFER.RAG: the answer when it ends before generating */
    atomic_int holds;  /* the blocked client + one per pending one-shot */
    char *store_key;   /* STORE key (copied), or NULL */
    size_t store_len;
    char *stream_key;  /* STREAM key (copied), or NULL */
    size_t stream_len;
    int dbid;
    int stream_done;   /* final entry written */
    char stream_err[256];
} gen_req;

/* A request for the calling client with the STORE / STREAM keys of o,
 * blocked with generate.c's callbacks and listed; NULL with the error
 * replied.  Its generation is started with mod_gen_submit, or it is
 * answered early by setting early_err and unblocking it. */
gen_req *mod_gen_block(RedisModuleCtx *ctx, const ic_gen_opts *o);
/* Undoes mod_gen_block when nothing was started (no callback will come). */
void mod_gen_abort(gen_req *g);
/* Starts the generation on model m (main thread): 0, or -1 with the line. */
int mod_gen_submit(gen_req *g, ic_model *m, const ic_gen_opts *o, const int32_t *ids, int32_t n, char *err,
                   size_t errlen);
/* Drops one hold (the last frees the request). */
void mod_gen_release(gen_req *g);
/* STREAM key checks (write permission, a stream or absent); -1 replied. */
int mod_check_stream_key(RedisModuleCtx *ctx, const ic_arg *key);

/* main-thread callbacks (mainthread.c) */
typedef void (*mod_main_fn)(RedisModuleCtx *ctx, void *arg);
/* Any thread: fn(ctx, arg) will run on the main thread inside a module
 * context (keyspace access allowed, its writes propagated).  -1 when it
 * cannot be scheduled: then fn never runs. */
int mod_run_on_main(mod_main_fn fn, void *arg);

/* embeddings (embed.c) and retrieval-augmented generation (rag.c) */
int mod_cmd_embed(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int mod_cmd_rag(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
int mod_cmd_answer(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);

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
/* VSIM run in-process on this module's own vector sets, without
 * RedisModule_Call (which a cluster replica refuses for reads outside a
 * command: rag.c).  The reply's items in RESP2 order, flattened (a null
 * attribute is an item with null set).  0; 1 when the sets are the host's
 * (or off): call VSIM instead; -1 with out->err, VSIM's error line or out
 * of memory.  Free out with mod_vsim_out_free either way. */
typedef struct mod_vsim_item {
    char *p; /* NUL-terminated copy */
    size_t len;
    int null;
} mod_vsim_item;
typedef struct mod_vsim_out {
    mod_vsim_item *items;
    size_t n, cap;
    int failed; /* out of memory */
    char err[IC_ERRLEN];
} mod_vsim_out;
int mod_vsim_direct(RedisModuleCtx *ctx, const ic_arg *args, int n, mod_vsim_out *out);
void mod_vsim_out_free(mod_vsim_out *out);

/* keys and the replica rule (routing.c) */
/* Registers INFER.GENERATE / EMBED / RAG (cmd: IC_KEYS_*) "readonly
 * deny-script getkeys-api" (GENERATE and EMBED also "no-mandatory-keys")
 * with libinfercmd's key specs and the arity;
 * REDISMODULE_ERR (logged) when it cannot. */
int mod_register_keyed(RedisModuleCtx *ctx, const char *name, RedisModuleCmdFunc fn, int cmd, int arity,
                       const char *summary);
/* Answers a keys-position request (RedisModule_IsKeysPositionRequest)
 * with the call's exact keys. */
int mod_reply_keys(RedisModuleCtx *ctx, int cmd, RedisModuleString **argv, int argc);
/* On a replica, a call that writes a key (STORE, STREAM, INTO) is refused
 * as Redis refuses a write there (MOVED to the primary in a cluster,
 * READONLY on a read-only replica): 1 with the error replied, else 0. */
int mod_refuse_replica_write(RedisModuleCtx *ctx, int cmd, RedisModuleString **argv, int argc);

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
