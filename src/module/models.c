/* models.c - the model registry and INFER.LOAD / INFER.UNLOAD / INFER.MODELS.
 *
 * A model is mapped from a file under infer-models-dir, never stored in a
 * key, so FLUSHALL, eviction or maxmemory cannot free it under a request.
 * Each registered model owns a thread pool, a context and a scheduler.
 * Loading (mmap, validation, pool and scheduler start) runs on a thread of
 * its own while the client is blocked; the new model is installed on the
 * main thread, in the reply callback.  Replacing a name drops the
 * registry's reference only: requests in flight keep theirs and finish on
 * the old model, which is freed when the last one ends. */
#include "mod.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mod_model *mod_model_find(const char *name, size_t len) {
    for (int i = 0; i < g_mod.n_models; i++) {
        mod_model *m = g_mod.models[i];
        if (strlen(m->name) == len && memcmp(m->name, name, len) == 0) return m;
    }
    return NULL;
}

static void totals_add(mod_totals *t, const infer_sched_stats *st) {
    t->submitted += st->submitted;
    t->completed += st->completed;
    t->rejected += st->rejected;
    t->cancelled += st->cancelled;
    t->timeouts += st->timeouts;
    t->errors += st->errors;
    t->prompt_tokens += st->prompt_tokens;
    t->generated_tokens += st->generated_tokens;
}

/* Stops the scheduler (joins its thread) and frees the rest.  Only called
 * with no request left on this model. */
static void model_destroy(mod_model *m) {
    if (m->live) { /* installed once: on the live list (main thread only) */
        if (m->live_prev) m->live_prev->live_next = m->live_next;
        else g_mod.live = m->live_next;
        if (m->live_next) m->live_next->live_prev = m->live_prev;
    }
    if (m->sched) {
        infer_sched_stats st;
        infer_sched_get_stats(m->sched, &st);
        totals_add(&g_mod.retired, &st);
        infer_sched_free(m->sched);
    }
    infer_ctx_free(m->ctx);
    if (m->tp) infer_threadpool_free(m->tp);
    if (m->model) infer_model_unref(m->model);
    free(m->path);
    free(m);
}

void mod_model_unref(mod_model *m) {
    if (--m->refs == 0) model_destroy(m);
}

static void registry_remove(mod_model *m) {
    for (int i = 0; i < g_mod.n_models; i++) {
        if (g_mod.models[i] == m) {
            g_mod.models[i] = g_mod.models[--g_mod.n_models];
            m->registered = 0;
            mod_model_unref(m);
            return;
        }
    }
}

/* Installs m under its name, replacing (and releasing) any model there. */
static int registry_install(mod_model *m, char *err, size_t errlen) {
    mod_model *old = mod_model_find(m->name, strlen(m->name));
    if (old) registry_remove(old);
    if (g_mod.n_models >= MOD_MAX_MODELS) {
        snprintf(err, errlen, "too many models loaded (at most %d)", MOD_MAX_MODELS);
        return -1;
    }
    m->refs = 1;
    m->registered = 1;
    g_mod.models[g_mod.n_models++] = m;
    m->live = 1;
    m->live_prev = NULL;
    m->live_next = g_mod.live;
    if (g_mod.live) g_mod.live->live_prev = m;
    g_mod.live = m;
    return 0;
}

void mod_model_stop_all(void) {
    /* server shutdown: end every request and join every engine thread, so
     * nothing runs while the process exits; the rest dies with it */
    for (mod_model *m = g_mod.live; m; m = m->live_next) {
        if (m->sched) infer_sched_free(m->sched);
        m->sched = NULL;
    }
}

void mod_model_free_all(void) {
    while (g_mod.n_models > 0) registry_remove(g_mod.models[g_mod.n_models - 1]);
}

/* ---- INFER.LOAD ---------------------------------------------------------- */

typedef struct load_job {
    RedisModuleBlockedClient *bc;
    pthread_t thread;
    int joined;
    mod_model *m;   /* built by the thread; NULL on failure */
    char err[512];
    int32_t n_ctx;
    int installed;
} load_job;

static void *load_main(void *arg) {
    load_job *j = arg;
    mod_model *m = j->m;
    infer_ctx_params cp = {0};
    infer_sched_params sp = {0};
    if (infer_model_load(m->path, &m->model, j->err, sizeof j->err) < 0) goto fail;
    if (!(m->tp = infer_threadpool_create(g_mod.cfg.threads, j->err, sizeof j->err))) goto fail;
    cp.n_ctx = j->n_ctx;
    cp.kv_bytes = g_mod.cfg.kv_bytes;
    if (infer_ctx_create(m->model, m->tp, &cp, &m->ctx, j->err, sizeof j->err) < 0) goto fail;
    sp.max_queue = g_mod.cfg.max_queue;
    sp.max_active = g_mod.cfg.max_active;
    sp.nice = g_mod.cfg.nice;
    if (infer_sched_create(m->ctx, &sp, &m->sched, j->err, sizeof j->err) < 0) goto fail;
    RedisModule_UnblockClient(j->bc, j);
    return NULL;
fail:
    j->m = NULL;
    model_destroy(m);
    /* the last thing this thread does with module state: the main thread
     * joins it before freeing the job */
    RedisModule_UnblockClient(j->bc, j);
    return NULL;
}

static void load_join(load_job *j) {
    if (!j->joined) {
        pthread_join(j->thread, NULL);
        j->joined = 1;
        g_mod.loads_running--;
    }
}

static int load_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    load_job *j = RedisModule_GetBlockedClientPrivateData(ctx);
    load_join(j);
    if (!j->m) return mod_reply_errorf(ctx, "ERR cannot load model: %s", j->err);
    if (registry_install(j->m, j->err, sizeof j->err) < 0) {
        model_destroy(j->m);
        j->m = NULL;
        return mod_reply_errorf(ctx, "ERR %s", j->err);
    }
    j->installed = 1;
    RedisModule_Log(ctx, "notice", "infer: loaded model '%s' from %s", j->m->name, j->m->path);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

static int load_timeout(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    return RedisModule_ReplyWithError(ctx, "ERR model load timed out");
}

static void load_free(RedisModuleCtx *ctx, void *priv) {
    (void)ctx;
    load_job *j = priv;
    if (!j) return;
    load_join(j);
    /* a client that went away still gets its model loaded */
    if (j->m && !j->installed && !g_mod.shutting_down) {
        char err[256];
        if (registry_install(j->m, err, sizeof err) < 0) model_destroy(j->m);
    }
    g_mod.in_flight--;
    free(j);
}

/* The path must name a file inside infer-models-dir: relative, no ".."
 * component, no NUL.  Symbolic links placed in the directory by the
 * operator are followed (the directory's contents are the operator's). */
static int confine_path(const char *p, size_t len, char **out, char *err, size_t errlen) {
    if (!g_mod.cfg.models_dir) {
        snprintf(err, errlen, "infer-models-dir is not set: loading models is disabled");
        return -1;
    }
    if (len == 0 || len > 4096 || memchr(p, 0, len)) {
        snprintf(err, errlen, "invalid model path");
        return -1;
    }
    if (p[0] == '/') {
        snprintf(err, errlen, "model path must be relative to infer-models-dir");
        return -1;
    }
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && p[e] != '/') e++;
        if (e - i == 2 && p[i] == '.' && p[i + 1] == '.') {
            snprintf(err, errlen, "model path must not leave infer-models-dir");
            return -1;
        }
        i = e + 1;
    }
    size_t dl = strlen(g_mod.cfg.models_dir);
    char *full = malloc(dl + 1 + len + 1);
    if (!full) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(full, g_mod.cfg.models_dir, dl);
    full[dl] = '/';
    memcpy(full + dl + 1, p, len);
    full[dl + 1 + len] = 0;
    *out = full;
    return 0;
}

/* INFER.LOAD name path [CONTEXT n] */
int mod_cmd_load(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 3 && argc != 5) return RedisModule_WrongArity(ctx);
    size_t nlen, plen;
    const char *name = RedisModule_StringPtrLen(argv[1], &nlen);
    const char *path = RedisModule_StringPtrLen(argv[2], &plen);
    if (nlen == 0 || nlen >= MOD_NAME_MAX || memchr(name, 0, nlen))
        return mod_reply_errorf(ctx, "ERR model name must be 1 to %d bytes", MOD_NAME_MAX - 1);
    long long n_ctx = 0;
    if (argc == 5) {
        if (!mod_arg_is(argv[3], "CONTEXT")) return RedisModule_ReplyWithError(ctx, "ERR syntax error");
        if (mod_arg_ll(ctx, argv[4], "CONTEXT", 1, 1 << 20, &n_ctx) < 0) return REDISMODULE_OK;
    }
    if (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_DENY_BLOCKING)
        return RedisModule_ReplyWithError(ctx, "ERR INFER.LOAD cannot run inside MULTI or a script");
    if (g_mod.loads_running >= g_mod.cfg.max_loads)
        return mod_reply_errorf(ctx, "ERR too many model loads in progress (infer-max-loads %d)",
                                g_mod.cfg.max_loads);
    char err[512];
    char *full = NULL;
    if (confine_path(path, plen, &full, err, sizeof err) < 0) return mod_reply_errorf(ctx, "ERR %s", err);
    load_job *j = calloc(1, sizeof *j);
    mod_model *m = calloc(1, sizeof *m);
    if (!j || !m) {
        free(j), free(m), free(full);
        return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    }
    memcpy(m->name, name, nlen);
    m->path = full;
    j->m = m;
    j->n_ctx = (int32_t)n_ctx;
    j->bc = RedisModule_BlockClient(ctx, load_reply, load_timeout, load_free, 0);
    if (!j->bc) {
        free(j), free(m), free(full);
        return RedisModule_ReplyWithError(ctx, "ERR cannot block the client");
    }
    int rc = pthread_create(&j->thread, NULL, load_main, j);
    if (rc) {
        RedisModule_AbortBlock(j->bc);
        free(j), free(m), free(full);
        return mod_reply_errorf(ctx, "ERR cannot start the load thread: %s", strerror(rc));
    }
    g_mod.loads_running++;
    g_mod.in_flight++;
    return REDISMODULE_OK;
}

/* INFER.UNLOAD name */
int mod_cmd_unload(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc != 2) return RedisModule_WrongArity(ctx);
    mod_model *m = mod_arg_model(ctx, argv[1]);
    if (!m) return REDISMODULE_OK;
    registry_remove(m);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}

/* INFER.MODELS: one map per model. */
int mod_cmd_models(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv;
    if (argc != 1) return RedisModule_WrongArity(ctx);
    RedisModule_ReplyWithArray(ctx, g_mod.n_models);
    for (int i = 0; i < g_mod.n_models; i++) {
        mod_model *m = g_mod.models[i];
        const infer_model_info *mi = infer_model_get_info(m->model);
        char types[512];
        size_t tl = infer_model_type_summary(m->model, types, sizeof types);
        if (tl >= sizeof types) tl = sizeof types - 1;
        RedisModule_ReplyWithMap(ctx, 9);
        RedisModule_ReplyWithCString(ctx, "name");
        RedisModule_ReplyWithCString(ctx, m->name);
        RedisModule_ReplyWithCString(ctx, "arch");
        RedisModule_ReplyWithCString(ctx, mi->arch);
        RedisModule_ReplyWithCString(ctx, "parameters");
        RedisModule_ReplyWithLongLong(ctx, (long long)mi->n_params);
        RedisModule_ReplyWithCString(ctx, "type");
        RedisModule_ReplyWithCString(ctx, mi->ftype);
        RedisModule_ReplyWithCString(ctx, "types");
        RedisModule_ReplyWithStringBuffer(ctx, types, tl);
        RedisModule_ReplyWithCString(ctx, "bytes");
        RedisModule_ReplyWithLongLong(ctx, (long long)mi->file_bytes);
        RedisModule_ReplyWithCString(ctx, "context");
        RedisModule_ReplyWithLongLong(ctx, infer_ctx_n_ctx(m->ctx));
        RedisModule_ReplyWithCString(ctx, "requests");
        RedisModule_ReplyWithLongLong(ctx, m->refs - 1);
        RedisModule_ReplyWithCString(ctx, "path");
        RedisModule_ReplyWithCString(ctx, m->path);
    }
    return REDISMODULE_OK;
}
