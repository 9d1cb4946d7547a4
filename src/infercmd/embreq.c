/* embreq.c - one embedding request (INFER.EMBED, INFER.RAG's question) from
 * submit to its vectors.
 *
 * The encoder's scheduler batches the texts of every waiting request into
 * its forward passes, so concurrent clients share weight reads as they do
 * for generation, and its queue is bounded: a full queue fails the submit
 * at once.  The scheduler calls back exactly once, on its own thread, with
 * vectors it owns only during the call: they are copied into the request
 * there, and the front-end is told through its notify function.  From then
 * on the request is the main thread's, which replies (or runs INTO's VADD,
 * or RAG's retrieval) and frees it. */
#include "infercmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

ic_ereq *ic_ereq_new(ic_registry *reg, ic_model *m, ic_enotify_fn notify, void *ud) {
    ic_ereq *e = infer_calloc(1, sizeof *e);
    if (!e) return NULL;
    e->m = m;
    e->notify = notify;
    e->ud = ud;
    m->refs++;
    m->requests++;
    reg->in_flight++;
    return e;
}

void ic_ereq_free(ic_registry *reg, ic_ereq *e) {
    if (!e) return;
    e->m->requests--;
    ic_model_unref(reg, e->m);
    reg->in_flight--;
    free(e->vec);
    free(e);
}

/* engine thread */
static void on_done(void *ud, int reason, const float *vectors, int32_t n, int32_t dim, const int32_t *n_tokens,
                    const char *errmsg) {
    ic_ereq *e = ud;
    e->reason = reason;
    e->embed_ms = now_ms() - e->t_submit;
    if (reason == INFER_FINISH_STOP) {
        if (!vectors || n < 1 || dim < 1 || (size_t)n > SIZE_MAX / sizeof(float) / (size_t)dim ||
            !(e->vec = infer_malloc((size_t)n * (size_t)dim * sizeof(float)))) {
            e->oom = 1;
        } else {
            memcpy(e->vec, vectors, (size_t)n * (size_t)dim * sizeof(float));
            e->n = n;
            e->dim = dim;
            for (int32_t i = 0; n_tokens && i < n; i++) e->tokens += n_tokens[i];
        }
    } else if (errmsg) {
        snprintf(e->errmsg, sizeof e->errmsg, "%s", errmsg);
    }
    e->notify(e);
}

int ic_ereq_submit(ic_ereq *e, const ic_arg *texts, int n, const infer_embed_params *p, long long timeout_ms,
                   char *err, size_t errlen) {
    if (!e->m->sched) {
        snprintf(err, errlen, "ERR the server is shutting down");
        return -1;
    }
    const char **tp = infer_malloc((size_t)n * sizeof *tp);
    size_t *lens = infer_malloc((size_t)n * sizeof *lens);
    if (!tp || !lens) {
        free(tp), free(lens);
        snprintf(err, errlen, "ERR out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) tp[i] = texts[i].ptr, lens[i] = texts[i].len;
    infer_embed_request r;
    memset(&r, 0, sizeof r);
    r.texts = tp;
    r.lens = lens;
    r.n = n;
    r.params = *p;
    r.timeout_ms = timeout_ms;
    r.on_done = on_done;
    r.ud = e;
    e->timeout_ms = timeout_ms;
    e->t_submit = now_ms();
    char msg[IC_ERRLEN];
    int rc = infer_embed_submit(e->m->sched, &r, &e->id, msg, sizeof msg);
    free(tp);
    free(lens);
    if (rc < 0) {
        snprintf(err, errlen, "ERR %s", msg);
        return -1;
    }
    return 0;
}

int ic_ereq_cancel(ic_ereq *e) { return e->m->sched ? infer_sched_cancel(e->m->sched, e->id) : -1; }

const char *ic_ereq_error(const ic_ereq *e, char *buf, size_t cap) {
    if (e->oom) return "ERR out of memory while collecting the vectors";
    switch (e->reason) {
    case INFER_FINISH_STOP:
        return NULL;
    case INFER_FINISH_TIMEOUT:
        snprintf(buf, cap, "TIMEOUT embedding did not finish within %lld ms", e->timeout_ms);
        return buf;
    case INFER_FINISH_CANCELLED:
        return "ERR embedding cancelled (model unloaded or server shutting down)";
    default:
        snprintf(buf, cap, "ERR embedding failed: %s", e->errmsg[0] ? e->errmsg : "unknown error");
        return buf;
    }
}

void ic_f32_le(const float *v, size_t n, unsigned char *out) {
    for (size_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, &v[i], 4);
        out[4 * i] = (unsigned char)w;
        out[4 * i + 1] = (unsigned char)(w >> 8);
        out[4 * i + 2] = (unsigned char)(w >> 16);
        out[4 * i + 3] = (unsigned char)(w >> 24);
    }
}
