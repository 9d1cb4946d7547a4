/* load.c - INFER.LOAD: argument checks on the main thread, the load itself
 * on a thread of its own.
 *
 * Mapping and validating a GGUF file and starting a model's threads take
 * from milliseconds to seconds, so they never run on the main thread: the
 * front-end blocks the client, this file's thread builds the model, and
 * the front-end installs it on the main thread when the thread's done
 * callback has handed the job back.  A failed load frees what it built on
 * its own thread; an installed model belongs to the registry.  Encoders
 * (embedding models) load the same way and get the engine's embedding
 * scheduler instead of the generation one. */
#include "infercmd.h"
#include "ic_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int name_ok(const ic_arg *a, char *err, size_t errlen) {
    if (a->len == 0 || a->len >= IC_NAME_MAX || memchr(a->ptr, 0, a->len)) {
        snprintf(err, errlen, "ERR model name must be 1 to %d bytes", IC_NAME_MAX - 1);
        return 0;
    }
    return 1;
}

ic_load *ic_load_parse(ic_registry *r, const ic_arg *argv, int argc, const char *models_dir,
                       const ic_load_params *p, char *err, size_t errlen) {
    if (argc < 3) {
        snprintf(err, errlen, "ERR wrong number of arguments for 'infer.load' command");
        return NULL;
    }
    if (!name_ok(&argv[1], err, errlen)) return NULL;
    long long n_ctx = 0;
    int n_alias = 0;
    ic_arg alias[IC_MAX_ALIASES];
    for (int i = 3; i < argc; i++) {
        if (ic_arg_is(&argv[i], "CONTEXT") && i + 1 < argc) {
            if (ic_arg_ll(&argv[++i], "CONTEXT", 1, IC_MAX_CONTEXT, &n_ctx, err, errlen) < 0) return NULL;
        } else if (ic_arg_is(&argv[i], "ALIAS") && i + 1 < argc) {
            while (i + 1 < argc && !ic_arg_is(&argv[i + 1], "CONTEXT")) {
                if (n_alias == IC_MAX_ALIASES) {
                    snprintf(err, errlen, "ERR at most %d ALIAS names", IC_MAX_ALIASES);
                    return NULL;
                }
                if (!name_ok(&argv[i + 1], err, errlen)) return NULL;
                alias[n_alias++] = argv[++i];
            }
        } else {
            int n = argv[i].len > 64 ? 64 : (int)argv[i].len;
            snprintf(err, errlen, "ERR syntax error: %s '%.*s'",
                     ic_arg_is(&argv[i], "CONTEXT") || ic_arg_is(&argv[i], "ALIAS") ? "no value after"
                                                                                    : "unknown option",
                     n, argv[i].ptr);
            for (char *q = err; *q; q++)
                if (*q == '\r' || *q == '\n') *q = ' ';
            return NULL;
        }
    }
    if (r->loads_running >= p->max_loads) {
        snprintf(err, errlen, "ERR too many model loads in progress (infer-max-loads %d)", p->max_loads);
        return NULL;
    }
    char *full = NULL;
    if (ic_confine_path(models_dir, argv[2].ptr, argv[2].len, &full, err, errlen) < 0) return NULL;
    ic_load *l = infer_calloc(1, sizeof *l);
    ic_model *m = infer_calloc(1, sizeof *m);
    if (!l || !m) {
        free(l), free(m), free(full);
        snprintf(err, errlen, "ERR out of memory");
        return NULL;
    }
    m->path = full;
    m->budget = &r->budget;
    l->m = m;
    l->n_ctx = (int32_t)n_ctx;
    l->p = *p;
    memcpy(l->names[0], argv[1].ptr, argv[1].len);
    for (int k = 0; k < n_alias; k++) memcpy(l->names[1 + k], alias[k].ptr, alias[k].len);
    l->n_names = 1 + n_alias;
    return l;
}

static void *load_main(void *arg) {
    ic_load *l = arg;
    ic_model *m = l->m;
    infer_ctx_params cp = {0};
    infer_sched_params sp = {0};
    infer_mem est;
    /* the load competes with the event loop for CPU like the engine does */
    if (l->p.nice || l->p.idle) infer_thread_set_priority(l->p.nice, l->p.idle);
    cp.n_ctx = l->n_ctx;
    cp.kv_bytes = l->p.kv_bytes;
    sp.max_queue = l->p.max_queue;
    sp.max_active = l->p.max_active;
    sp.nice = l->p.nice;
    sp.idle = l->p.idle;
    /* infer-max-memory first, from the header alone: a model that would
     * not fit is refused before its weights are read */
    if (infer_mem_estimate(m->path, &cp, l->p.threads, &sp, &est, l->err, sizeof l->err) < 0) goto fail;
    if (ic_budget_reserve(m, l->p.max_memory, l->names[0], &est, l->err, sizeof l->err) < 0) {
        l->refused = 1;
        goto fail;
    }
    if (infer_model_load(m->path, &m->model, l->err, sizeof l->err) < 0) goto fail;
    if (!(m->tp = infer_threadpool_create(l->p.threads, l->err, sizeof l->err))) goto fail;
    if (infer_ctx_create(m->model, m->tp, &cp, &m->ctx, l->err, sizeof l->err) < 0) goto fail;
    /* An encoder (bert) gets the embedding scheduler, which batches the
     * texts of every waiting INFER.EMBED / INFER.RAG question; a decoder
     * the generation scheduler.  Both are bounded by infer-max-queue. */
    m->encoder = infer_model_is_encoder(m->model);
    if (m->encoder) {
        m->embed_dim = infer_model_embed_dim(m->model);
        if (infer_embed_sched_create(m->ctx, &sp, &m->sched, l->err, sizeof l->err) < 0) goto fail;
    } else if (infer_sched_create(m->ctx, &sp, &m->sched, l->err, sizeof l->err) < 0) {
        goto fail;
    }
    infer_sched_mem(m->sched, &m->mem);
    if (ic_budget_settle(m, l->p.max_memory, l->names[0], &m->mem, l->err, sizeof l->err) < 0) {
        l->refused = 1;
        goto fail;
    }
    l->done(l);
    return NULL;
fail:
    l->m = NULL;
    ic_model_discard(m);
    l->done(l); /* the last touch of the job on this thread */
    return NULL;
}

int ic_load_start(ic_registry *r, ic_load *l, char *err, size_t errlen) {
    int rc = pthread_create(&l->thread, NULL, load_main, l);
    if (rc) {
        snprintf(err, errlen, "ERR cannot start the load thread: %s", strerror(rc));
        return -1;
    }
    l->started = 1;
    r->loads_running++;
    r->in_flight++;
    l->prev = NULL;
    l->next = r->loads;
    if (r->loads) r->loads->prev = l;
    r->loads = l;
    return 0;
}

void ic_load_join(ic_registry *r, ic_load *l) {
    if (l->started && !l->joined) {
        pthread_join(l->thread, NULL);
        l->joined = 1;
        r->loads_running--;
    }
}

int ic_load_install(ic_registry *r, ic_load *l, char *err, size_t errlen) {
    ic_load_join(r, l);
    if (!l->m) {
        snprintf(err, errlen, l->refused ? "ERR %s" : "ERR cannot load model: %s", l->err);
        return -1;
    }
    if (ic_registry_install(r, l->m, l->names, l->n_names, err, errlen) < 0) return -1;
    l->installed = 1;
    return 0;
}

void ic_load_free(ic_registry *r, ic_load *l) {
    if (!l) return;
    ic_load_join(r, l);
    if (l->m && !l->installed) ic_model_discard(l->m);
    if (l->started) {
        r->in_flight--;
        if (l->prev) l->prev->next = l->next;
        else r->loads = l->next;
        if (l->next) l->next->prev = l->prev;
    }
    free(l);
}

void ic_stop_loads(ic_registry *r) {
    for (ic_load *l = r->loads; l; l = l->next) {
        ic_load_join(r, l);
        if (l->m && !l->installed && l->m->sched) {
            infer_sched_free(l->m->sched);
            l->m->sched = NULL;
        }
    }
}
