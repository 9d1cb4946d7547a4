/* request.c - one INFER.GENERATE request from submit to its last piece.
 *
 * The scheduler's callbacks run on the engine thread.  They only append to
 * the request's own buffers: the whole answer (read by the main thread
 * after IC_EV_DONE) and, for a STREAM request, the pieces not yet written
 * to the stream, guarded by a mutex because the main thread takes them
 * while generation goes on.  The engine hands text over in pieces of
 * complete UTF-8, so every piece a stream entry gets is valid text.  The
 * front-end is told through its notify function, at most one IC_EV_TEXT
 * outstanding at a time, and IC_EV_DONE exactly once, last. */
#include "infercmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ic_req *ic_req_new(ic_registry *reg, ic_model *m, int streaming, ic_notify_fn notify, void *ud) {
    ic_req *r = infer_calloc(1, sizeof *r);
    if (!r) return NULL;
    if (pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r);
        return NULL;
    }
    r->m = m;
    r->streaming = streaming;
    r->notify = notify;
    r->ud = ud;
    m->refs++;
    m->requests++;
    reg->in_flight++;
    return r;
}

void ic_req_free(ic_registry *reg, ic_req *r) {
    if (!r) return;
    r->m->requests--;
    ic_model_unref(reg, r->m);
    reg->in_flight--;
    pthread_mutex_destroy(&r->mu);
    free(r->text);
    free(r->pend);
    free(r->piece_lens);
    free(r);
}

static int grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    char *b = infer_realloc(*buf, c);
    if (!b) return -1;
    *buf = b;
    *cap = c;
    return 0;
}

/* engine thread */
static void on_text(void *ud, const char *text, size_t n) {
    ic_req *r = ud;
    if (r->oom || n == 0) return;
    if (grow(&r->text, &r->cap, r->len + n + 1) < 0) {
        r->oom = 1;
        return;
    }
    memcpy(r->text + r->len, text, n);
    r->len += n;
    if (!r->streaming) return;
    int post = 0;
    pthread_mutex_lock(&r->mu);
    if (grow(&r->pend, &r->pcap, r->plen + n) == 0 && r->npieces < SIZE_MAX / sizeof(size_t)) {
        if (r->npieces == r->pieces_cap) {
            size_t c = r->pieces_cap ? r->pieces_cap * 2 : 16;
            size_t *l = infer_realloc(r->piece_lens, c * sizeof *l);
            if (l) r->piece_lens = l, r->pieces_cap = c;
        }
        if (r->npieces < r->pieces_cap) {
            memcpy(r->pend + r->plen, text, n);
            r->plen += n;
            r->piece_lens[r->npieces++] = n;
        } else {
            r->oom = 1;
        }
    } else {
        r->oom = 1;
    }
    if (!r->text_posted && r->npieces) post = r->text_posted = 1;
    pthread_mutex_unlock(&r->mu);
    if (post) r->notify(r, IC_EV_TEXT);
}

/* engine thread */
static void on_done(void *ud, int reason, const infer_request_stats *st, const char *errmsg) {
    ic_req *r = ud;
    r->reason = reason;
    r->st = *st;
    if (errmsg) snprintf(r->errmsg, sizeof r->errmsg, "%s", errmsg);
    r->notify(r, IC_EV_DONE);
}

int ic_req_submit(ic_registry *reg, ic_req *r, const ic_gen_opts *o, const int32_t *ids, int32_t n,
                  char *err, size_t errlen) {
    if (!r->m->sched) {
        snprintf(err, errlen, "ERR the server is shutting down");
        return -1;
    }
    infer_request req = {0};
    req.prompt = ids;
    req.n_prompt = n;
    req.max_tokens = (int32_t)o->max_tokens;
    req.sampling = o->sp;
    req.stop = (const char *const *)o->stop;
    req.n_stop = o->n_stop;
    req.timeout_ms = o->timeout_ms;
    req.on_text = on_text;
    req.on_done = on_done;
    req.ud = r;
    r->timeout_ms = o->timeout_ms;
    char e[IC_ERRLEN];
    if (infer_sched_submit(r->m->sched, &req, &r->id, e, sizeof e) < 0) {
        snprintf(err, errlen, "ERR %s", e);
        (void)reg;
        return -1;
    }
    return 0;
}

int ic_req_cancel(ic_req *r) {
    return r->m->sched ? infer_sched_cancel(r->m->sched, r->id) : -1;
}

size_t ic_req_take_pieces(ic_req *r, char **buf, size_t **lens) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->npieces;
    *buf = r->pend;
    *lens = r->piece_lens;
    r->pend = NULL;
    r->piece_lens = NULL;
    r->plen = r->pcap = r->npieces = r->pieces_cap = 0;
    r->text_posted = 0;
    pthread_mutex_unlock(&r->mu);
    return n;
}

const char *ic_req_error(const ic_req *r, char *buf, size_t cap) {
    if (r->oom) return "ERR out of memory while collecting the answer";
    switch (r->reason) {
    case INFER_FINISH_TIMEOUT:
        snprintf(buf, cap, "TIMEOUT generation did not finish within %lld ms", r->timeout_ms);
        return buf;
    case INFER_FINISH_CANCELLED:
        return "ERR generation cancelled (model unloaded or server shutting down)";
    case INFER_FINISH_ERROR:
        snprintf(buf, cap, "ERR generation failed: %s", r->errmsg);
        return buf;
    default:
        return NULL;
    }
}

void ic_req_final_entry(const ic_req *r, const char *fv[4], size_t lens[4], char num[24]) {
    const char *reason = r->oom ? "error" : infer_finish_name(r->reason);
    int n = snprintf(num, 24, "%d", r->st.generated_tokens);
    fv[0] = "finish", lens[0] = 6;
    fv[1] = reason, lens[1] = strlen(reason);
    fv[2] = "tokens", lens[2] = 6;
    fv[3] = num, lens[3] = n > 0 ? (size_t)n : 0;
}
