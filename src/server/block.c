/* block.c - clients whose reply arrives later.
 *
 * A command that cannot answer at once (an INFER request running on engine
 * threads, a blocking pop waiting for data) blocks its client: the client
 * stays connected, its further pipelined commands wait in the query
 * buffer, and every other client goes on.  The reply comes from one of:
 *   - a completion posted from another thread with block_post(): the item
 *     names the client by id, the loop wakes on the queue's eventfd and
 *     calls the item's deliver() on the loop thread, where it may reply and
 *     unblock_client().  An item whose client has gone finds no client by
 *     that id and only frees its data;
 *   - the deadline passing (on_timeout, checked before each sleep);
 *   - the client disconnecting (on_cancel: cancel the work, free state).
 * Blocked clients are linked in a list so timeouts cost O(blocked). */
#include "server.h"

#include <string.h>

typedef struct blocked_link {
    client *c;
    struct blocked_link *next;
} blocked_link;

static blocked_link *blocked;
static size_t nblocked;
static cqueue *completions;

size_t blocked_count(void) { return nblocked; }

static void completions_ready(evloop *el, int fd, void *priv, int mask) {
    (void)el; (void)fd; (void)priv; (void)mask;
    cq_drain(completions);
}

int block_init(char *err, size_t errlen) {
    completions = cq_create(err, errlen);
    if (!completions) return ERR;
    if (ev_add(srv.el, cq_fd(completions), EV_READ, completions_ready, NULL) < 0) {
        snprintf(err, errlen, "cannot watch the completion queue");
        return ERR;
    }
    return OK;
}

void block_post(cq_item *item) { cq_post(completions, item); }

void block_client(client *c, long long deadline_ms, void (*on_timeout)(client *c),
                  void (*on_cancel)(client *c), void *priv) {
    blocked_link *l = km_malloc(sizeof *l);
    if (!l) {
        reply_error(c, "ERR out of memory blocking the client");
        return;
    }
    l->c = c;
    l->next = blocked;
    blocked = l;
    nblocked++;
    c->flags |= CF_BLOCKED;
    c->bstate.deadline_ms = deadline_ms;
    c->bstate.on_timeout = on_timeout;
    c->bstate.on_cancel = on_cancel;
    c->bstate.priv = priv;
}

static void resume_later(client *c);

void unblock_client(client *c) {
    if (!(c->flags & CF_BLOCKED)) return;
    for (blocked_link **pp = &blocked; *pp; pp = &(*pp)->next) {
        if ((*pp)->c == c) {
            blocked_link *l = *pp;
            *pp = l->next;
            km_free(l);
            nblocked--;
            break;
        }
    }
    c->flags &= ~CF_BLOCKED;
    memset(&c->bstate, 0, sizeof c->bstate);
    if (c->fd >= 0 && !(c->flags & CF_CLOSE_ASAP)) resume_later(c);
}

/* Pipelined commands that queued up behind the blocked one run before the
 * loop sleeps again, not from inside the unblocking callback. */
static uint64_t *resume_list; /* ids: a client may be freed before its turn */
static size_t resume_n, resume_cap;

static void resume_later(client *c) {
    if (dstr_len(c->querybuf) == 0) return;
    if (resume_n == resume_cap) {
        size_t cap = resume_cap ? resume_cap * 2 : 16;
        uint64_t *n = km_realloc(resume_list, cap * sizeof *n);
        if (!n) return; /* its next read will resume it */
        resume_list = n;
        resume_cap = cap;
    }
    resume_list[resume_n++] = c->id;
    ev_no_wait(srv.el);
}

void block_resume_pending(void) {
    while (resume_n > 0) {
        uint64_t id = resume_list[--resume_n];
        client *c = client_by_id(id); /* it may have been freed meanwhile */
        if (c && !(c->flags & (CF_BLOCKED | CF_CLOSE_ASAP))) client_process_input(c);
    }
}

void block_check_timeouts(void) {
    if (nblocked == 0) return;
    long long now = time_ms();
    for (blocked_link *l = blocked, *next; l; l = next) {
        next = l->next;
        client *c = l->c;
        if (c->bstate.deadline_ms && c->bstate.deadline_ms <= now) {
            if (c->bstate.on_timeout) c->bstate.on_timeout(c);
            unblock_client(c);
        }
    }
}
