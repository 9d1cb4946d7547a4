/* registry.c - the model registry: names -> reference-counted models.
 *
 * A model is mapped from a file, never stored in a key, so FLUSHALL,
 * eviction or maxmemory cannot free it under a request.  Each model owns a
 * thread pool, a context and a scheduler.  References: one per registered
 * name (INFER.LOAD ... ALIAS registers one model under several names), one
 * per request in flight.  Replacing or unloading a name drops that name's
 * reference only: requests in flight finish on the old model, which is
 * freed (its scheduler joined) when the last one ends.  Every installed
 * model not yet freed is on the live list, so statistics and shutdown see
 * replaced models that still serve requests.  Main thread only. */
#include "infercmd.h"
#include "ic_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ic_model *ic_find(ic_registry *r, const char *name, size_t len) {
    for (int i = 0; i < r->n; i++)
        if (strlen(r->entries[i].name) == len && memcmp(r->entries[i].name, name, len) == 0)
            return r->entries[i].m;
    return NULL;
}

ic_model *ic_lookup(ic_registry *r, const ic_arg *name, char *err, size_t errlen) {
    ic_model *m = ic_find(r, name->ptr, name->len);
    if (!m) {
        char shown[IC_NAME_MAX];
        ic_shown(name->ptr, name->len, shown, sizeof shown);
        snprintf(err, errlen, "ERR no such model '%s' (INFER.LOAD it first)", shown);
    }
    return m;
}

static void totals_add(ic_totals *t, const infer_sched_stats *st) {
    t->submitted += st->submitted;
    t->completed += st->completed;
    t->rejected += st->rejected;
    t->cancelled += st->cancelled;
    t->timeouts += st->timeouts;
    t->errors += st->errors;
    t->prompt_tokens += st->prompt_tokens;
    t->generated_tokens += st->generated_tokens;
}

/* Stops the scheduler (joins its thread) and frees the rest.  Only with no
 * request left on the model.  r is NULL for a model never installed. */
static void model_destroy(ic_registry *r, ic_model *m) {
    if (m->live && r) {
        if (m->live_prev) m->live_prev->live_next = m->live_next;
        else r->live = m->live_next;
        if (m->live_next) m->live_next->live_prev = m->live_prev;
    }
    if (m->sched) {
        infer_sched_stats st;
        infer_sched_get_stats(m->sched, &st);
        if (r) totals_add(&r->retired, &st);
        infer_sched_free(m->sched);
    }
    infer_ctx_free(m->ctx);
    if (m->tp) infer_threadpool_free(m->tp);
    if (m->model) infer_model_unref(m->model);
    ic_budget_release(m); /* its memory is back: infer-max-memory has room again */
    free(m->path);
    free(m);
}

void ic_model_discard(ic_model *m) { model_destroy(NULL, m); }

void ic_model_unref(ic_registry *r, ic_model *m) {
    if (--m->refs == 0) model_destroy(r, m);
}

static void remove_at(ic_registry *r, int i) {
    ic_model *m = r->entries[i].m;
    r->entries[i] = r->entries[--r->n];
    ic_model_unref(r, m);
}

int ic_unregister(ic_registry *r, const ic_arg *name, char *err, size_t errlen) {
    for (int i = 0; i < r->n; i++) {
        if (strlen(r->entries[i].name) == name->len && memcmp(r->entries[i].name, name->ptr, name->len) == 0) {
            remove_at(r, i);
            return 0;
        }
    }
    return ic_lookup(r, name, err, errlen) ? 0 : -1;
}

int ic_registry_install(ic_registry *r, ic_model *m, char names[][IC_NAME_MAX], int n, char *err,
                        size_t errlen) {
    int fresh = 0;
    for (int k = 0; k < n; k++)
        if (!ic_find(r, names[k], strlen(names[k]))) fresh++;
    if (r->n + fresh > IC_MAX_MODELS) {
        snprintf(err, errlen, "ERR too many models loaded (at most %d names)", IC_MAX_MODELS);
        return -1;
    }
    /* one reference per name, taken before any replaced model is let go
     * (a repeated name in the list drops one of them again below) */
    m->refs += n;
    m->live = 1;
    ic_budget_commit(m);
    m->live_prev = NULL;
    m->live_next = r->live;
    if (r->live) r->live->live_prev = m;
    r->live = m;
    for (int k = 0; k < n; k++) {
        size_t len = strlen(names[k]);
        for (int i = 0; i < r->n; i++)
            if (strlen(r->entries[i].name) == len && memcmp(r->entries[i].name, names[k], len) == 0) {
                remove_at(r, i);
                break;
            }
        memcpy(r->entries[r->n].name, names[k], len + 1);
        r->entries[r->n].m = m;
        r->n++;
    }
    return 0;
}

void ic_stop_all(ic_registry *r) {
    ic_stop_loads(r);
    for (ic_model *m = r->live; m; m = m->live_next) {
        if (!m->sched) continue;
        infer_sched_stats st;
        infer_sched_get_stats(m->sched, &st);
        totals_add(&r->retired, &st);
        infer_sched_free(m->sched);
        m->sched = NULL;
    }
}

void ic_free_all(ic_registry *r) {
    while (r->n > 0) remove_at(r, r->n - 1);
}

void ic_describe(const ic_entry *e, ic_model_desc *d) {
    const ic_model *m = e->m;
    const infer_model_info *mi = infer_model_get_info(m->model);
    d->name = e->name;
    d->arch = mi->arch;
    d->kind = m->encoder ? "encoder" : "generator";
    d->dim = m->encoder ? m->embed_dim : 0;
    d->ftype = mi->ftype;
    d->path = m->path;
    d->types_len = infer_model_type_summary(m->model, d->types, sizeof d->types);
    if (d->types_len >= sizeof d->types) d->types_len = sizeof d->types - 1;
    d->params = (long long)mi->n_params;
    d->bytes = (long long)mi->file_bytes;
    d->context = infer_ctx_n_ctx(m->ctx);
    d->requests = m->requests;
}
