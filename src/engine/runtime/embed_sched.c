/* embed_sched.c - the embedding scheduler: one engine thread owns the ctx
 * of an encoder model and serves the embedding requests of many clients.
 *
 * Clients submit texts from any thread; a bounded queue holds the requests
 * (a full queue fails the submit at once).  Each step the scheduler thread
 * admits waiting requests (up to max_active), tokenizing their texts there,
 * off the caller's thread, and runs one forward pass over the next windows
 * of the active requests, as many as fit in the ctx's batch (embed.c's
 * embed_step), taken round robin (each request's first text in arrival
 * order, then each one's second, ...), so texts of different clients share
 * the pass, every weight matrix is read once for all of them, and a request
 * of many texts does not hold the others up.  A request
 * whose texts are all pooled gets its vectors through on_done.
 * Cancellation and timeouts are noticed between passes; a pass is bounded
 * by the ctx's batch, so that is within one pass.  A sequence's vector does
 * not depend on what shares its pass: a request gets the vectors
 * infer_embed would give it alone.
 *
 * It shares the public calls infer_sched_free / _cancel / _get_stats with
 * the decoding scheduler (sched_kind.h), its shape (queue, live list under
 * one mutex, callbacks on the engine thread without the lock held) and its
 * thread priority handling.  Statistics: prompt_tokens counts the tokens
 * embedded, steps the forward passes, tokens_per_s embedded tokens/s. */
#include "runtime/encoder.h"
#include "runtime/sched_kind.h"
#include "kernels/ialloc.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_QUEUE 64
#define DEFAULT_ACTIVE 16

typedef struct ereq {
    uint64_t id;
    struct ereq *next; /* queue link */
    infer_embed_request r;
    char **texts; /* copies */
    size_t *lens;
    _Atomic int cancel;
    double t_submit, deadline;
    /* the scheduler thread's, once admitted */
    int32_t **toks, *n_toks;
    embed_item *items;
    float *vectors;
} ereq;

typedef struct {
    sched_head head; /* SCHED_EMBED */
    infer_ctx *c;
    infer_sched_params p;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    ereq *q_head, *q_tail;
    int32_t q_len;
    uint64_t next_id;
    ereq **active;
    int32_t n_active;
    embed_item **order; /* a step's items, grown as needed */
    size_t order_cap;
    infer_sched_stats st;
    double rate_t0;
    uint64_t rate_tokens0;
} esched;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void ereq_free(ereq *q) {
    if (!q) return;
    for (int32_t i = 0; q->texts && i < q->r.n; i++) free(q->texts[i]);
    for (int32_t i = 0; q->toks && i < q->r.n; i++) free(q->toks[i]);
    for (int32_t i = 0; q->items && i < q->r.n; i++) embed_item_release(&q->items[i]);
    free(q->texts), free(q->lens), free(q->toks), free(q->n_toks), free(q->items), free(q->vectors);
    free(q);
}

/* Counts the request's end, then calls on_done (without the lock) and
 * frees it; the request is in neither the queue nor the active set. */
static void finish(esched *s, ereq *q, int reason, const char *msg) {
    int32_t dim = s->c->m->info.n_embd;
    pthread_mutex_lock(&s->mu);
    s->st.completed++;
    if (reason == INFER_FINISH_CANCELLED) s->st.cancelled++;
    if (reason == INFER_FINISH_TIMEOUT) s->st.timeouts++;
    if (reason == INFER_FINISH_ERROR) s->st.errors++;
    pthread_mutex_unlock(&s->mu);
    if (q->r.on_done) {
        int ok = reason == INFER_FINISH_STOP;
        q->r.on_done(q->r.ud, reason, ok ? q->vectors : NULL, q->r.n, dim, ok ? q->n_toks : NULL, msg);
    }
    ereq_free(q);
}

/* Active requests are read by cancel under mu, so changes take mu too. */
static void remove_active(esched *s, int32_t i) {
    pthread_mutex_lock(&s->mu);
    s->active[i] = s->active[--s->n_active];
    pthread_mutex_unlock(&s->mu);
}

static int ended(const ereq *q, double t) {
    return atomic_load(&q->cancel) ? INFER_FINISH_CANCELLED
           : q->deadline && t >= q->deadline ? INFER_FINISH_TIMEOUT
                                             : -1;
}

/* Tokenizes a request's texts and sets up its items; a message on failure. */
static int prepare(esched *s, ereq *q, char *err, size_t errlen) {
    infer_ctx *c = s->c;
    size_t n = (size_t)q->r.n, dim = (size_t)c->m->info.n_embd;
    q->toks = ie_calloc(n, sizeof *q->toks);
    q->n_toks = ie_calloc(n, sizeof *q->n_toks);
    q->items = ie_calloc(n, sizeof *q->items);
    q->vectors = ie_malloc(n * dim * sizeof *q->vectors);
    if (!q->toks || !q->n_toks || !q->items || !q->vectors) {
        snprintf(err, errlen, "out of memory for %zu texts", n);
        return -1;
    }
    char sub[256];
    for (size_t i = 0; i < n; i++) {
        int64_t k = embed_tokenize(c->m->vocab, q->texts[i], q->lens[i], &q->toks[i], sub, sizeof sub);
        if (k < 0 || embed_item_init(c, &q->items[i], q->toks[i], (int32_t)k, &q->r.params, q->vectors + i * dim,
                                     sub, sizeof sub) < 0) {
            snprintf(err, errlen, "text %zu: %s", i, sub);
            return -1;
        }
        q->n_toks[i] = (int32_t)k;
    }
    return 0;
}

/* Ends queued requests that were cancelled or timed out, then admits while
 * there is room.  Called with mu held; drops it around the work. */
static void admit(esched *s) {
    double t = now_s();
    ereq **link = &s->q_head, *prev = NULL;
    while (*link) {
        ereq *q = *link;
        int reason = ended(q, t);
        if (reason < 0) {
            prev = q;
            link = &q->next;
            continue;
        }
        *link = q->next;
        if (s->q_tail == q) s->q_tail = prev;
        s->q_len--;
        pthread_mutex_unlock(&s->mu);
        finish(s, q, reason, NULL);
        pthread_mutex_lock(&s->mu);
    }
    while (s->q_head && s->n_active < s->p.max_active) {
        /* prepared while still queued (only this thread takes from the
         * queue, so the head stays put), so cancel finds it throughout */
        ereq *q = s->q_head;
        pthread_mutex_unlock(&s->mu);
        char err[320];
        int rc = prepare(s, q, err, sizeof err);
        pthread_mutex_lock(&s->mu);
        s->q_head = q->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        if (rc < 0) {
            pthread_mutex_unlock(&s->mu);
            finish(s, q, INFER_FINISH_ERROR, err);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        s->active[s->n_active++] = q;
    }
}

static int all_done(const ereq *q) {
    for (int32_t i = 0; i < q->r.n; i++)
        if (q->items[i].done < q->items[i].n_windows) return 0;
    return 1;
}

/* One pass over the next windows of the active requests, in order. */
static void step(esched *s) {
    infer_ctx *c = s->c;
    double t = now_s();
    for (int32_t i = 0; i < s->n_active;) {
        ereq *q = s->active[i];
        int reason = ended(q, t);
        if (reason < 0) {
            i++;
            continue;
        }
        remove_active(s, i); /* the last request moved into slot i */
        finish(s, q, reason, NULL);
    }
    size_t n = 0;
    for (int32_t i = 0; i < s->n_active; i++) n += (size_t)s->active[i]->r.n;
    if (n > s->order_cap) {
        embed_item **o = ie_realloc(s->order, n * sizeof *o);
        if (!o) {
            while (s->n_active) {
                ereq *q = s->active[s->n_active - 1];
                remove_active(s, s->n_active - 1);
                finish(s, q, INFER_FINISH_ERROR, "out of memory");
            }
            return;
        }
        s->order = o;
        s->order_cap = n;
    }
    /* arrival order: the active array is unordered after removals, so
     * sort the requests by id (there are at most max_active) */
    for (int32_t i = 1; i < s->n_active; i++)
        for (int32_t j = i; j > 0 && s->active[j - 1]->id > s->active[j]->id; j--) {
            ereq *x = s->active[j];
            s->active[j] = s->active[j - 1];
            s->active[j - 1] = x;
        }
    /* round robin: the first unfinished text of each request, then the
     * second, ..., so a request of many texts does not hold up the others
     * for more than its share of each pass */
    n = 0;
    int32_t most = 0;
    for (int32_t i = 0; i < s->n_active; i++) most = s->active[i]->r.n > most ? s->active[i]->r.n : most;
    for (int32_t k = 0; k < most; k++)
        for (int32_t i = 0; i < s->n_active; i++) {
            ereq *q = s->active[i];
            if (k < q->r.n && q->items[k].done < q->items[k].n_windows) s->order[n++] = &q->items[k];
        }
    int32_t tokens = n ? embed_step(c, s->order, (int32_t)n) : 0;
    for (int32_t i = 0; i < s->n_active;) {
        ereq *q = s->active[i];
        if (!all_done(q)) {
            i++;
            continue;
        }
        for (int32_t k = 0; k < q->r.n; k++) embed_item_finish(c, &q->items[k]);
        remove_active(s, i);
        finish(s, q, INFER_FINISH_STOP, NULL);
    }
    pthread_mutex_lock(&s->mu);
    s->st.steps += tokens > 0;
    s->st.prompt_tokens += (uint64_t)tokens;
    double now = now_s();
    if (now - s->rate_t0 >= 1.0) {
        s->st.tokens_per_s = (double)(s->st.prompt_tokens - s->rate_tokens0) / (now - s->rate_t0);
        s->rate_t0 = now;
        s->rate_tokens0 = s->st.prompt_tokens;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *sched_main(void *arg) {
    esched *s = arg;
    if (s->p.nice || s->p.idle) {
        infer_thread_set_priority(s->p.nice, s->p.idle);
        infer_threadpool_set_priority(s->c->tp, s->p.nice, s->p.idle);
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        admit(s);
        s->st.queued = s->q_len;
        s->st.active = s->n_active;
        if (s->n_active == 0) {
            /* admit may have let go of mu to finish a request, and a
             * free may have asked to stop meanwhile: its broadcast is
             * gone, so look before waiting */
            if (!s->q_head && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        step(s);
        pthread_mutex_lock(&s->mu);
    }
    /* shutting down: everything still here is cancelled */
    ereq *q = s->q_head;
    s->q_head = s->q_tail = NULL;
    s->q_len = 0;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        ereq *nx = q->next;
        finish(s, q, INFER_FINISH_CANCELLED, NULL);
        q = nx;
    }
    while (s->n_active) {
        ereq *a = s->active[s->n_active - 1];
        remove_active(s, s->n_active - 1);
        finish(s, a, INFER_FINISH_CANCELLED, NULL);
    }
    return NULL;
}

int infer_embed_sched_create(infer_ctx *c, const infer_sched_params *p, infer_sched **out, char *err,
                             size_t errlen) {
    *out = NULL;
    if (!c->m->is_encoder) {
        snprintf(err, errlen, "%s is not an encoder: schedule it with infer_sched_create", c->m->arch_name);
        return -1;
    }
    esched *s = ie_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->head.kind = SCHED_EMBED;
    s->head.ctx = c; /* reserve 0: a request holds only its own texts, tokens and vectors */
    s->c = c;
    if (p) s->p = *p;
    if (s->p.max_queue <= 0) s->p.max_queue = DEFAULT_QUEUE;
    if (s->p.max_active <= 0) s->p.max_active = DEFAULT_ACTIVE;
    s->active = ie_calloc((size_t)s->p.max_active, sizeof *s->active);
    if (!s->active) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->rate_t0 = now_s();
    int rc = pthread_create(&s->thread, NULL, sched_main, s);
    if (rc) {
        snprintf(err, errlen, "cannot start the scheduler thread: %s", strerror(rc));
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s->active), free(s);
        return -1;
    }
    *out = (infer_sched *)(void *)s;
    return 0;
}

void embed_sched_free(infer_sched *is) {
    esched *s = (esched *)(void *)is;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->p.nice || s->p.idle) infer_threadpool_set_priority(s->c->tp, 0, 0);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->active), free(s->order);
    free(s);
}

static int reject(esched *s, char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->mu);
    s->st.rejected++;
    pthread_mutex_unlock(&s->mu);
    return -1;
}

int infer_embed_submit(infer_sched *is, const infer_embed_request *r, uint64_t *id, char *err, size_t errlen) {
    if (sched_kind(is) != SCHED_EMBED) {
        snprintf(err, errlen, "this scheduler decodes: embeddings need one made by infer_embed_sched_create");
        return -1;
    }
    esched *s = (esched *)(void *)is;
    const infer_embed_params *p = &r->params;
    if (r->n <= 0 || !r->texts) return reject(s, err, errlen, "no texts to embed");
    if (p->pooling < INFER_POOL_DEFAULT || p->pooling > INFER_POOL_LAST)
        return reject(s, err, errlen, "pooling mode %d is not one of default, mean, cls, last", p->pooling);
    if (p->pooling == INFER_POOL_DEFAULT && !s->c->m->enc.pooling)
        return reject(s, err, errlen, "the model names no pooling (pooling_type none): choose mean, cls or last");
    if (p->long_input != INFER_LONG_REFUSE && p->long_input != INFER_LONG_CHUNK)
        return reject(s, err, errlen, "long-input mode %d is not refuse (0) or chunk (1)", p->long_input);
    ereq *q = ie_calloc(1, sizeof *q);
    if (!q) return reject(s, err, errlen, "out of memory");
    q->r = *r;
    q->texts = ie_calloc((size_t)r->n, sizeof *q->texts);
    q->lens = ie_calloc((size_t)r->n, sizeof *q->lens);
    int bad = !q->texts || !q->lens;
    for (int32_t i = 0; !bad && i < r->n; i++) {
        size_t len = r->lens ? r->lens[i] : (r->texts[i] ? strlen(r->texts[i]) : 0);
        q->texts[i] = ie_malloc(len + 1);
        bad = !q->texts[i] || (len && !r->texts[i]);
        if (!bad) {
            if (len) memcpy(q->texts[i], r->texts[i], len);
            q->texts[i][len] = '\0';
            q->lens[i] = len;
        }
    }
    if (bad) {
        ereq_free(q);
        return reject(s, err, errlen, "out of memory copying %d texts", r->n);
    }
    q->r.texts = NULL; /* the caller's: never read after submit */
    q->r.lens = NULL;
    q->t_submit = now_s();
    q->deadline = r->timeout_ms > 0 ? q->t_submit + (double)r->timeout_ms / 1e3 : 0;
    pthread_mutex_lock(&s->mu);
    if (s->q_len >= s->p.max_queue) {
        s->st.rejected++;
        pthread_mutex_unlock(&s->mu);
        snprintf(err, errlen, "queue full (%d requests waiting)", s->p.max_queue);
        ereq_free(q);
        return -1;
    }
    q->id = ++s->next_id;
    if (s->q_tail) s->q_tail->next = q;
    else s->q_head = q;
    s->q_tail = q;
    s->q_len++;
    s->st.submitted++;
    if (id) *id = q->id;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int embed_sched_cancel(infer_sched *is, uint64_t id) {
    esched *s = (esched *)(void *)is;
    int found = -1;
    pthread_mutex_lock(&s->mu);
    for (ereq *q = s->q_head; q && found < 0; q = q->next)
        if (q->id == id) atomic_store(&q->cancel, 1), found = 0;
    for (int32_t i = 0; i < s->n_active && found < 0; i++)
        if (s->active[i]->id == id) atomic_store(&s->active[i]->cancel, 1), found = 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return found;
}

void embed_sched_get_stats(infer_sched *is, infer_sched_stats *st) {
    esched *s = (esched *)(void *)is;
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    st->queued = s->q_len; /* live, as infer_sched_get_stats */
    st->active = s->n_active;
    pthread_mutex_unlock(&s->mu);
}
