/* sched.c - continuous batching: one engine thread serving many requests.
 *
 * Clients submit requests from any thread; a bounded queue holds them until
 * the KV pool can take their whole prompt + max_tokens beside every active
 * request's (a reservation, so an admitted request never runs out of KV
 * memory midway and nothing needs preempting).  Each step the scheduler
 * thread builds one batch: first the next token of every decoding sequence
 * (so decoding latency stays steady), then prompt chunks of sequences being
 * prefilled, up to the context's batch size.  One forward pass, then
 * sampling, streaming detokenization, stop strings and finish checks.
 * Cancellation and timeouts are noticed at the next step boundary.
 *
 * Locking: `mu` guards the queue, the list of live requests (for cancel),
 * the stop flag and the statistics snapshot.  Everything else (the ctx, the
 * active sequences) belongs to the scheduler thread alone, and callbacks run
 * on it without the lock held. */
#include "runtime/ctx.h"
#include "runtime/mem.h"
#include "runtime/sched_kind.h"
#include "kernels/ialloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_QUEUE 64
#define DEFAULT_ACTIVE 16
#define DEFAULT_CHUNK 256

typedef struct req {
    uint64_t id;
    struct req *next;       /* queue link */
    infer_request r;        /* callbacks; prompt and stop point into our copies */
    int32_t *prompt;
    char **stop;
    size_t max_stop;        /* longest stop string */
    _Atomic int cancel;
    double t_submit, t_admit, t_prefilled, deadline;
    /* scheduler-thread state once active */
    infer_seq *seq;
    infer_sampler *smp;
    infer_detok *detok;
    int32_t fed;            /* prompt tokens already in the KV cache */
    int32_t reused;         /* of which came from the prefix cache */
    int32_t last;           /* last sampled token, to feed next step */
    int32_t generated;
    int32_t need_blocks;    /* KV blocks for prompt + max_tokens */
    char *text;             /* generated text not yet passed to on_text */
    size_t text_len, text_cap;
} req;

struct infer_sched {
    sched_head head; /* SCHED_DECODE */
    infer_ctx *c;
    infer_sched_params p;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    req *q_head, *q_tail;
    int32_t q_len;
    uint64_t next_id;
    req **active;
    int32_t n_active;
    infer_batch_entry *batch;
    req **batch_req;
    infer_sched_stats st;
    char *piece; /* detokenizer output, infer_detok_max_bytes long */
    uint64_t finished;       /* requests finished so far (their blocks came back) */
    uint64_t head_failed_at; /* `finished` when the queue head last failed to fit, +1; 0 = never */
    size_t piece_cap;
    double rate_t0;
    uint64_t rate_tokens0;
};

const char *infer_finish_name(int reason) {
    static const char *const names[] = {"stop", "length", "timeout", "cancelled", "error"};
    return reason >= 0 && reason <= INFER_FINISH_ERROR ? names[reason] : "unknown";
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int32_t blocks_for(const infer_ctx *c, int64_t tokens) { return (int32_t)((tokens + c->bt - 1) / c->bt); }

static void req_free(req *q) {
    if (!q) return;
    if (q->seq) infer_seq_free(q->seq);
    infer_sampler_free(q->smp);
    infer_detok_free(q->detok);
    for (int32_t i = 0; q->stop && i < q->r.n_stop; i++) free(q->stop[i]);
    free(q->stop);
    free(q->prompt);
    free(q->text);
    free(q);
}

/* ---- text output: stop strings and held-back bytes ----------------------- */

static int text_append(req *q, const char *s, size_t n) {
    if (q->text_len + n > q->text_cap) {
        size_t cap = (q->text_len + n) * 2 + 64;
        char *t = ie_realloc(q->text, cap);
        if (!t) return -1;
        q->text = t;
        q->text_cap = cap;
    }
    memcpy(q->text + q->text_len, s, n);
    q->text_len += n;
    return 0;
}

/* Passes on what can no longer be part of a stop string; returns 1 when a
 * stop string matched (the text before it has been passed on). */
static int text_release(req *q, int final) {
    size_t upto = q->text_len;
    for (int32_t i = 0; i < q->r.n_stop; i++) {
        size_t sl = strlen(q->stop[i]);
        if (sl == 0 || sl > q->text_len) continue;
        char *hit = memmem(q->text, q->text_len, q->stop[i], sl);
        if (hit && (size_t)(hit - q->text) < upto) upto = (size_t)(hit - q->text);
    }
    int matched = upto < q->text_len;
    if (!matched && !final && q->max_stop > 1) {
        /* hold the last max_stop-1 bytes: a stop string may begin there */
        upto = q->text_len > q->max_stop - 1 ? q->text_len - (q->max_stop - 1) : 0;
        while (upto > 0 && upto < q->text_len && ((unsigned char)q->text[upto] & 0xC0) == 0x80) upto--;
    }
    if (upto > 0 && q->r.on_text) q->r.on_text(q->r.ud, q->text, upto);
    if (upto > 0) memmove(q->text, q->text + upto, q->text_len - upto); /* text may still be NULL */
    q->text_len -= upto;
    if (matched) q->text_len = 0; /* the stop string and what follows are dropped */
    return matched;
}

/* ---- finishing -------------------------------------------------------------- */

static void finish(infer_sched *s, req *q, int reason, const char *msg) {
    double t = now_s();
    if (reason == INFER_FINISH_STOP || reason == INFER_FINISH_LENGTH) {
        int n = q->detok ? infer_detok_flush(q->detok, s->piece, s->piece_cap) : 0;
        if (n > 0) text_append(q, s->piece, (size_t)n);
        text_release(q, 1);
    }
    infer_request_stats rs = {0};
    rs.prompt_tokens = q->r.n_prompt;
    rs.reused_tokens = q->reused;
    rs.generated_tokens = q->generated;
    double admit = q->t_admit ? q->t_admit : t;
    double pre = q->t_prefilled ? q->t_prefilled : (q->t_admit ? t : admit);
    rs.queue_ms = (admit - q->t_submit) * 1e3;
    rs.prefill_ms = (pre - admit) * 1e3;
    rs.decode_ms = (t - pre) * 1e3;
    /* Counters and the KV blocks first: whoever on_done wakes may look. */
    if (q->seq) {
        infer_seq_free(q->seq);
        q->seq = NULL;
    }
    pthread_mutex_lock(&s->mu);
    s->finished++;
    s->st.completed++;
    if (reason == INFER_FINISH_CANCELLED) s->st.cancelled++;
    if (reason == INFER_FINISH_TIMEOUT) s->st.timeouts++;
    if (reason == INFER_FINISH_ERROR) s->st.errors++;
    infer_ctx_kv_stats(s->c, &s->st.kv);
    pthread_mutex_unlock(&s->mu);
    if (q->r.on_done) q->r.on_done(q->r.ud, reason, &rs, msg);
    req_free(q);
}

/* The active array is read by infer_sched_cancel under mu, so changes to it
 * take mu too; a request leaves the array before it is freed. */
static void remove_active(infer_sched *s, const req *q) {
    pthread_mutex_lock(&s->mu);
    for (int32_t i = 0; i < s->n_active; i++)
        if (s->active[i] == q) {
            s->active[i] = s->active[--s->n_active];
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

/* ---- admission ------------------------------------------------------------------ */

/* Blocks the active requests may still take beyond what they hold. */
static int32_t outstanding_blocks(const infer_sched *s) {
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_active; i++) {
        const req *q = s->active[i];
        int32_t held = q->seq ? q->seq->n_blocks : 0;
        if (q->need_blocks > held) n += q->need_blocks - held;
    }
    return n;
}

/* Ends queued requests that were cancelled or ran out of time while
 * waiting.  Called with mu held; drops it around the callbacks. */
static void sweep_queue(infer_sched *s) {
    double t = now_s();
    req **link = &s->q_head, *prev = NULL;
    while (*link) {
        req *q = *link;
        int reason = atomic_load(&q->cancel) ? INFER_FINISH_CANCELLED
                     : q->deadline && t >= q->deadline ? INFER_FINISH_TIMEOUT : -1;
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
}

/* Moves queued requests into the active set while they fit.  Called with
 * mu held.  A head that did not fit is tried again only once a request has
 * finished (only that frees blocks) or nothing is active, so a waiting
 * queue costs nothing per step. */
static void admit(infer_sched *s) {
    sweep_queue(s);
    while (s->q_head && s->n_active < s->p.max_active) {
        req *q = s->q_head;
        if (s->head_failed_at == s->finished + 1 && s->n_active > 0) return;
        char err[256];
        if (!q->seq && infer_seq_create(s->c, &q->seq, err, sizeof err) < 0) return; /* retry next step */
        if (q->seq->len == 0) q->fed = infer_seq_reuse_prefix(q->seq, q->prompt, q->r.n_prompt);
        int32_t extra = q->need_blocks - q->seq->n_blocks;
        if (extra > kv_pool_available(&s->c->pool) - outstanding_blocks(s)) {
            /* Not now.  Drop the prefix blocks it holds so they stay
             * evictable for others; they are found again next time. */
            infer_seq_free(q->seq);
            q->seq = NULL;
            q->fed = 0;
            s->head_failed_at = s->finished + 1;
            return;
        }
        s->head_failed_at = 0;
        s->q_head = q->next;
        if (!s->q_head) s->q_tail = NULL;
        s->q_len--;
        q->t_admit = now_s();
        q->reused = q->fed;
        s->active[s->n_active++] = q;
        s->st.prompt_tokens += (uint64_t)q->r.n_prompt;
    }
}

/* ---- one step ---------------------------------------------------------------------- */

/* Samples after a forward pass; returns 1 if the request finished. */
static void end(infer_sched *s, req *q, int reason, const char *msg) {
    remove_active(s, q);
    finish(s, q, reason, msg);
}

/* Samples after a forward pass; returns 1 if the request finished. */
static int after_logits(infer_sched *s, req *q, const float *logits) {
    int32_t n_vocab = s->c->m->info.n_vocab;
    const infer_vocab *v = s->c->m->vocab;
    if (!q->t_prefilled) q->t_prefilled = now_s();
    int32_t tok = infer_sampler_sample(q->smp, logits, n_vocab);
    q->generated++;
    if (infer_vocab_is_eog(v, tok)) {
        end(s, q, INFER_FINISH_STOP, NULL);
        return 1;
    }
    int n = infer_detok_push(q->detok, tok, s->piece, s->piece_cap);
    if (n < 0) {
        end(s, q, INFER_FINISH_ERROR, "detokenizer failed");
        return 1;
    }
    if (n > 0 && text_append(q, s->piece, (size_t)n) < 0) {
        end(s, q, INFER_FINISH_ERROR, "out of memory");
        return 1;
    }
    if (text_release(q, 0)) {
        end(s, q, INFER_FINISH_STOP, NULL);
        return 1;
    }
    if (q->generated >= q->r.max_tokens) {
        end(s, q, INFER_FINISH_LENGTH, NULL);
        return 1;
    }
    q->last = tok;
    return 0;
}

static void step(infer_sched *s) {
    infer_ctx *c = s->c;
    double t = now_s();
    /* cancellations and timeouts first */
    for (int32_t i = 0; i < s->n_active;) {
        req *q = s->active[i];
        int reason = atomic_load(&q->cancel) ? INFER_FINISH_CANCELLED
                     : q->deadline && t >= q->deadline ? INFER_FINISH_TIMEOUT : -1;
        if (reason < 0) {
            i++;
            continue;
        }
        end(s, q, reason, NULL); /* the last active request moved into slot i */
    }
    if (!s->n_active) return;

    int32_t n = 0, budget = c->max_batch;
    for (int pass = 0; pass < 2; pass++) /* decoding sequences, then prompt chunks */
        for (int32_t i = 0; i < s->n_active && budget > 0; i++) {
            req *q = s->active[i];
            int decoding = q->fed == q->r.n_prompt;
            if (decoding != (pass == 0)) continue;
            int32_t take = decoding ? 1 : q->r.n_prompt - q->fed;
            if (take > s->p.prefill_chunk) take = s->p.prefill_chunk;
            if (take > budget) take = budget;
            const int32_t *toks = decoding ? &q->last : q->prompt + q->fed;
            int last_chunk = !decoding && q->fed + take == q->r.n_prompt;
            s->batch[n] = (infer_batch_entry){q->seq, toks, take,
                                              decoding || last_chunk ? INFER_LOGITS_LAST : INFER_LOGITS_NONE};
            s->batch_req[n++] = q;
            budget -= take;
        }
    char err[256];
    if (infer_decode(c, s->batch, n, err, sizeof err) < 0) {
        /* Reservations make this unreachable; if it happens anyway, fail
         * the requests of this batch rather than spin on them. */
        for (int32_t j = 0; j < n; j++) {
            remove_active(s, s->batch_req[j]);
            finish(s, s->batch_req[j], INFER_FINISH_ERROR, err);
        }
        return;
    }
    uint64_t produced = 0;
    for (int32_t j = 0; j < n; j++) {
        req *q = s->batch_req[j];
        int decoding = q->fed == q->r.n_prompt;
        if (!decoding) q->fed += s->batch[j].n_tokens;
        if (s->batch[j].logits == INFER_LOGITS_NONE) continue;
        produced++;
        after_logits(s, q, infer_logits(c, j, 0));
    }
    pthread_mutex_lock(&s->mu);
    s->st.steps++;
    s->st.generated_tokens += produced;
    double now = now_s();
    if (now - s->rate_t0 >= 1.0) {
        s->st.tokens_per_s = (double)(s->st.generated_tokens - s->rate_tokens0) / (now - s->rate_t0);
        s->rate_t0 = now;
        s->rate_tokens0 = s->st.generated_tokens;
    }
    pthread_mutex_unlock(&s->mu);
}

static void *sched_main(void *arg) {
    infer_sched *s = arg;
    if (s->p.nice || s->p.idle) {
        infer_thread_set_priority(s->p.nice, s->p.idle);
        infer_threadpool_set_priority(s->c->tp, s->p.nice, s->p.idle);
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        admit(s);
        s->st.queued = s->q_len;
        s->st.active = s->n_active;
        infer_ctx_kv_stats(s->c, &s->st.kv);
        if (s->n_active == 0) {
            /* Idle: sleep until new work or a cancel; with requests queued
             * that did not fit (blocks held outside the scheduler), look
             * again every 100 ms so their deadlines are still enforced. */
            if (s->stop) {
                /* admit let go of mu to finish a request, and a free asked
                 * to stop meanwhile: its broadcast is gone */
            } else if (!s->q_head) {
                pthread_cond_wait(&s->cv, &s->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 100 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            }
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        step(s);
        pthread_mutex_lock(&s->mu);
    }
    /* shutting down: everything still here is cancelled */
    req *q = s->q_head;
    s->q_head = s->q_tail = NULL;
    s->q_len = 0;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        req *nx = q->next;
        finish(s, q, INFER_FINISH_CANCELLED, NULL);
        q = nx;
    }
    while (s->n_active) {
        req *a = s->active[s->n_active - 1];
        end(s, a, INFER_FINISH_CANCELLED, NULL);
    }
    return NULL;
}

/* The defaults of infer_sched_params, against the ctx's batch. */
static void resolve_params(const infer_ctx *c, const infer_sched_params *p, infer_sched_params *r) {
    memset(r, 0, sizeof *r);
    if (p) *r = *p;
    if (r->max_queue <= 0) r->max_queue = DEFAULT_QUEUE;
    if (r->max_active <= 0) r->max_active = DEFAULT_ACTIVE;
    if (r->max_active > c->max_batch) r->max_active = c->max_batch;
    if (r->prefill_chunk <= 0) r->prefill_chunk = DEFAULT_CHUNK;
}

/* A step has at most max_active entries, each wanting the logits of its
 * last token, so the logits are allocated for that many rows here, once.
 * Every request (queued or active) holds a req and a sampler; an active
 * one also a sequence (block table, token history) and the sampler's work
 * arrays; the scheduler its batch tables. */
uint64_t sched_reserve(infer_ctx *c, const infer_sched_params *p) {
    infer_sched_params r;
    resolve_params(c, p, &r);
    if (ctx_reserve_logits(c, (size_t)r.max_active) < 0) return UINT64_MAX;
    uint64_t seq = sizeof(infer_seq) + (uint64_t)c->max_seq_blocks * (sizeof(int32_t) + sizeof(uint64_t)) +
                   (uint64_t)c->n_ctx * sizeof(int32_t);
    uint64_t per_request = sizeof(req) + sampler_bytes(0);
    uint64_t per_active = seq + sampler_bytes(c->m->info.n_vocab) - sampler_bytes(0) +
                          2 * sizeof(req *) + sizeof(infer_batch_entry);
    return (uint64_t)(r.max_queue + r.max_active) * per_request + (uint64_t)r.max_active * per_active;
}

int infer_sched_create(infer_ctx *c, const infer_sched_params *p, infer_sched **out, char *err, size_t errlen) {
    *out = NULL;
    if (c->m->is_encoder) {
        snprintf(err, errlen, "%s is an encoder: schedule it with infer_embed_sched_create", c->m->arch_name);
        return -1;
    }
    infer_sched *s = ie_calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->head.kind = SCHED_DECODE;
    s->head.ctx = c;
    s->c = c;
    resolve_params(c, p, &s->p);
    s->head.reserve = sched_reserve(c, &s->p);
    if (s->head.reserve == UINT64_MAX) {
        snprintf(err, errlen, "out of memory for %d rows of logits", s->p.max_active);
        free(s);
        return -1;
    }
    s->active = ie_calloc((size_t)s->p.max_active, sizeof *s->active);
    s->batch = ie_calloc((size_t)s->p.max_active, sizeof *s->batch);
    s->batch_req = ie_calloc((size_t)s->p.max_active, sizeof *s->batch_req);
    s->piece_cap = infer_detok_max_bytes(c->m->vocab);
    s->piece = ie_malloc(s->piece_cap);
    if (!s->active || !s->batch || !s->batch_req || !s->piece) {
        free(s->active), free(s->batch), free(s->batch_req), free(s->piece), free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->rate_t0 = now_s();
    infer_ctx_kv_stats(c, &s->st.kv); /* the pool's figures before the thread's first look */
    int rc = pthread_create(&s->thread, NULL, sched_main, s);
    if (rc) {
        snprintf(err, errlen, "cannot start the scheduler thread: %s", strerror(rc));
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s->active), free(s->batch), free(s->batch_req), free(s->piece), free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void infer_sched_free(infer_sched *s) {
    if (!s) return;
    if (sched_kind(s) == SCHED_EMBED) {
        embed_sched_free(s);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    if (s->p.nice || s->p.idle) infer_threadpool_set_priority(s->c->tp, 0, 0);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->active), free(s->batch), free(s->batch_req), free(s->piece);
    free(s);
}

static int reject(infer_sched *s, char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&s->mu);
    s->st.rejected++;
    pthread_mutex_unlock(&s->mu);
    return -1;
}

int infer_sched_submit(infer_sched *s, const infer_request *r, uint64_t *id, char *err, size_t errlen) {
    if (sched_kind(s) != SCHED_DECODE) {
        snprintf(err, errlen, "this scheduler embeds (an encoder model): submit with infer_embed_submit");
        return -1;
    }
    infer_ctx *c = s->c;
    if (r->n_prompt <= 0 || !r->prompt) return reject(s, err, errlen, "empty prompt");
    if (r->max_tokens <= 0) return reject(s, err, errlen, "max tokens must be at least 1");
    if (r->n_stop < 0 || r->n_stop > 64) return reject(s, err, errlen, "at most 64 stop strings (got %d)", r->n_stop);
    int64_t total = (int64_t)r->n_prompt + r->max_tokens;
    if (total > c->n_ctx)
        return reject(s, err, errlen, "prompt + max tokens (%lld) exceed the context of %d tokens", (long long)total,
                      c->n_ctx);
    if (blocks_for(c, total) > c->pool.n_blocks)
        return reject(s, err, errlen, "prompt + max tokens (%lld) exceed the KV budget of %lld tokens",
                      (long long)total, (long long)c->pool.n_blocks * c->bt);
    for (int32_t i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= c->m->info.n_vocab)
            return reject(s, err, errlen, "token id %d is outside the vocabulary of %d", r->prompt[i],
                          c->m->info.n_vocab);
    req *q = ie_calloc(1, sizeof *q);
    char serr[256];
    if (!q) return reject(s, err, errlen, "out of memory");
    q->r = *r;
    q->prompt = ie_malloc((size_t)r->n_prompt * sizeof *q->prompt);
    q->stop = ie_calloc((size_t)(r->n_stop ? r->n_stop : 1), sizeof *q->stop);
    q->smp = infer_sampler_create(&r->sampling, serr, sizeof serr);
    const infer_vocab *v = c->m->vocab;
    q->detok = infer_detok_create(v, r->n_prompt == 1 && r->prompt[0] == infer_vocab_bos(v));
    int bad = !q->prompt || !q->stop || !q->smp || !q->detok;
    for (int32_t i = 0; !bad && i < r->n_stop; i++) {
        q->stop[i] = ie_strdup(r->stop[i] ? r->stop[i] : "");
        bad = !q->stop[i];
        if (!bad && strlen(q->stop[i]) > q->max_stop) q->max_stop = strlen(q->stop[i]);
    }
    if (bad) {
        int bad_sampling = !q->smp;
        req_free(q);
        return bad_sampling ? reject(s, err, errlen, "%s", serr) : reject(s, err, errlen, "out of memory");
    }
    memcpy(q->prompt, r->prompt, (size_t)r->n_prompt * sizeof *q->prompt);
    q->r.prompt = q->prompt;
    q->r.stop = (const char *const *)q->stop;
    for (int32_t i = 0; i < r->n_prompt; i++) infer_sampler_accept(q->smp, r->prompt[i]);
    q->need_blocks = blocks_for(c, total);
    q->t_submit = now_s();
    q->deadline = r->timeout_ms > 0 ? q->t_submit + (double)r->timeout_ms / 1e3 : 0;
    pthread_mutex_lock(&s->mu);
    if (s->q_len >= s->p.max_queue) {
        s->st.rejected++;
        pthread_mutex_unlock(&s->mu);
        snprintf(err, errlen, "queue full (%d requests waiting)", s->p.max_queue);
        req_free(q);
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

int infer_sched_cancel(infer_sched *s, uint64_t id) {
    if (sched_kind(s) == SCHED_EMBED) return embed_sched_cancel(s, id);
    int found = -1;
    pthread_mutex_lock(&s->mu);
    for (req *q = s->q_head; q && found < 0; q = q->next)
        if (q->id == id) atomic_store(&q->cancel, 1), found = 0;
    /* a request leaves `active` (under mu) before it is freed */
    for (int32_t i = 0; i < s->n_active && found < 0; i++)
        if (s->active[i]->id == id) atomic_store(&s->active[i]->cancel, 1), found = 0;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return found;
}

void infer_sched_mem(infer_sched *s, infer_mem *out) {
    const sched_head *h = (const sched_head *)(const void *)s;
    infer_sched_stats st;
    infer_sched_get_stats(s, &st);
    /* Fixed since creation: the scheduler reserved its logits then, and no
     * step allocates beyond them, so these reads race with nothing. */
    infer_model_mem(h->ctx->m, out);
    out->kv_reserved = h->ctx->kv_len;
    out->kv_used = (uint64_t)st.kv.blocks_used * st.kv.block_bytes;
    out->scratch = h->ctx->scratch_bytes + h->reserve;
}

void infer_sched_get_stats(infer_sched *s, infer_sched_stats *st) {
    if (sched_kind(s) == SCHED_EMBED) {
        embed_sched_get_stats(s, st);
        return;
    }
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    /* the live counts, not the step's snapshot: a request that just ended
     * has left them before the thread comes round to record it */
    st->queued = s->q_len;
    st->active = s->n_active;
    pthread_mutex_unlock(&s->mu);
}
