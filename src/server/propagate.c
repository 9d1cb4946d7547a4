/* propagate.c - the write stream: what each execution unit changed, as
 * commands whose replay gives the same state.
 *
 * Why a layer of its own: the AOF (and later replication) must see the
 * effect of a command, not always its text.  EXPIRE k 10 replayed an hour
 * later would keep the key an hour too long; SPOP would pop another
 * member; XADD * would pick another id.  So a handler may put a
 * deterministic form in place of its argv (prop_replace), or emit ops of
 * its own and none for itself (prop_emit + prop_prevent), and the server
 * emits the deletions it makes by itself (expiry and eviction: DEL).
 *
 * By default a write command whose run changed the dataset propagates its
 * own argv.  "Changed" is srv.dirty moving, less the deletions of expired
 * keys the command met on its way (those were emitted as DELs already, and
 * a write that then failed, e.g. WRONGTYPE, must not be replayed), or a
 * keyspace event of a write (some writes, XGROUP CREATE for one, leave
 * WATCH alone as Redis does, so they do not move srv.dirty).
 *
 * The ops of one unit - a command, an EXEC with all its commands, a
 * blocked client being served - are collected and handed to the AOF when
 * the outermost unit ends, inside MULTI/EXEC when there are several, so a
 * crash never leaves half of a unit in the file. */
#include "aof.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

typedef struct prop_op {
    int dbid;
    int argc;
    dstr *argv;
} prop_op;

/* The running command's choice about its own propagation. */
typedef struct prop_frame {
    prop_args repl;
    int replaced, prevented;
} prop_frame;

static struct {
    prop_op *ops;
    int n, cap;
    int depth;
    prop_frame *cur;
} P;

/* ------------------------------------------------------------ arguments */

void pa_init(prop_args *a) { memset(a, 0, sizeof *a); }

void pa_free(prop_args *a) {
    for (int i = 0; i < a->n; i++) dstr_free(a->v[i]);
    km_free(a->v);
    memset(a, 0, sizeof *a);
}

void pa_add(prop_args *a, const void *p, size_t len) {
    if (a->oom) return;
    if (a->n == a->cap) {
        int ncap = a->cap ? a->cap * 2 : 8;
        dstr *nv = km_realloc(a->v, (size_t)ncap * sizeof *nv);
        if (!nv) {
            a->oom = 1;
            return;
        }
        a->v = nv;
        a->cap = ncap;
    }
    dstr s = dstr_newlen(p, len);
    if (!s) {
        a->oom = 1;
        return;
    }
    a->v[a->n++] = s;
}

void pa_cstr(prop_args *a, const char *s) { pa_add(a, s, strlen(s)); }
void pa_dstr(prop_args *a, const dstr s) { pa_add(a, s, dstr_len(s)); }

void pa_ll(prop_args *a, long long v) {
    char b[LL_STR_SIZE];
    int n = snprintf(b, sizeof b, "%lld", v);
    pa_add(a, b, (size_t)n);
}

/* --------------------------------------------------------------- the ops */

int prop_active(void) { return !srv.loading && aof_feeding(); }

static void op_free(prop_op *o) {
    for (int i = 0; i < o->argc; i++) dstr_free(o->argv[i]);
    km_free(o->argv);
}

/* Takes a's strings into the unit's list. */
static void push_op(int dbid, prop_args *a) {
    if (a->oom || a->n == 0) {
        if (a->oom) aof_lost_op();
        pa_free(a);
        return;
    }
    if (P.n == P.cap) {
        int ncap = P.cap ? P.cap * 2 : 8;
        prop_op *no = km_realloc(P.ops, (size_t)ncap * sizeof *no);
        if (!no) {
            aof_lost_op();
            pa_free(a);
            return;
        }
        P.ops = no;
        P.cap = ncap;
    }
    P.ops[P.n++] = (prop_op){dbid, a->n, a->v};
    a->v = NULL;
    a->n = a->cap = 0;
}

static void hand_on(void) {
    if (P.n == 0) return;
    static dstr multi_argv[1], exec_argv[1];
    if (!multi_argv[0]) multi_argv[0] = dstr_new("MULTI");
    if (!exec_argv[0]) exec_argv[0] = dstr_new("EXEC");
    int wrap = P.n > 1 && multi_argv[0] && exec_argv[0];
    if (P.n > 1 && !wrap) aof_lost_op();
    if (wrap) aof_feed(P.ops[0].dbid, 1, multi_argv);
    for (int i = 0; i < P.n; i++) {
        aof_feed(P.ops[i].dbid, P.ops[i].argc, P.ops[i].argv);
        op_free(&P.ops[i]);
    }
    if (wrap) aof_feed(-1, 1, exec_argv);
    P.n = 0;
}

void prop_enter(void) { P.depth++; }

void prop_exit(void) {
    assert(P.depth > 0);
    if (--P.depth == 0) hand_on();
}

void prop_emit(int dbid, prop_args *a) {
    if (!prop_active()) {
        pa_free(a);
        return;
    }
    push_op(dbid, a);
    if (P.depth == 0) hand_on();
}

void prop_del(int dbid, const dstr key) {
    if (!prop_active()) return;
    prop_args a;
    pa_init(&a);
    pa_cstr(&a, "DEL");
    pa_dstr(&a, key);
    prop_emit(dbid, &a);
}

void prop_replace(prop_args *a) {
    prop_frame *f = P.cur;
    if (!f || !prop_active()) {
        pa_free(a);
        return;
    }
    pa_free(&f->repl);
    f->repl = *a;
    f->replaced = 1;
    pa_init(a);
}

void prop_replace_key(const char *name, const dstr key, const char *p, size_t len, const char *opt, long long ms) {
    if (!prop_active()) return;
    prop_args a;
    pa_init(&a);
    pa_cstr(&a, name);
    pa_dstr(&a, key);
    if (p) pa_add(&a, p, len);
    if (opt) pa_cstr(&a, opt);
    if (ms >= 0) pa_ll(&a, ms);
    prop_replace(&a);
}

void prop_prevent(void) {
    if (P.cur) P.cur->prevented = 1;
}

void prop_call(client *c) {
    const command *cmd = c->cmd;
    prop_frame f = {0};
    prop_frame *outer = P.cur;
    P.cur = &f;
    prop_enter();
    long long dirty0 = srv.dirty, expired0 = srv.dirty_expired, events0 = srv.dirty_events;
    /* every command runs here, inside EXEC too: the slow log times it */
    long long t0 = mono_us();
    cmd->proc(c);
    if (!(c->flags & CF_BLOCKED)) slowlog_push(c, cmd, mono_us() - t0);
    P.cur = outer;
    int changed = srv.dirty - dirty0 > srv.dirty_expired - expired0 || srv.dirty_events != events0;
    if (prop_active() && (cmd->flags & CMD_WRITE) && !(c->flags & CF_BLOCKED) && !f.prevented) {
        if (f.replaced) {
            push_op(c->db->id, &f.repl);
        } else if (changed) {
            prop_args a;
            pa_init(&a);
            for (int i = 0; i < c->argc; i++) pa_dstr(&a, c->argv[i]);
            push_op(c->db->id, &a);
        }
    }
    pa_free(&f.repl);
    prop_exit();
}
