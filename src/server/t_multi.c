/* t_multi.c - transactions: MULTI EXEC DISCARD WATCH UNWATCH.
 *
 * Inside MULTI the dispatcher (command.c) hands every command but
 * MULTI/EXEC/DISCARD/WATCH/QUIT/RESET to multi_maybe_queue(), which keeps
 * its arguments and answers +QUEUED.  A command refused while queuing
 * (unknown, wrong arity, ...) marks the transaction so that EXEC answers
 * EXECABORT.  EXEC runs the queue back to back with CF_IN_EXEC set (a
 * blocking command then answers as if it timed out), each command's reply
 * an element of EXEC's array; a command failing at run time does not stop
 * the others, as in Redis.
 *
 * WATCH is optimistic locking: each database has a dict of watched key ->
 * clients watching it, and every write to a key (db_signal_modified), every
 * expiry, FLUSHDB/FLUSHALL and SWAPDB that touches a watched key marks
 * those clients dirty; a dirty client's EXEC answers a null array.  The
 * cost of a write when nobody watches anything is one counter test. */
#include "server.h"
#include "aof.h"

#include <string.h>

typedef struct queued_cmd {
    const command *cmd;
    dstr *argv;
    int argc;
} queued_cmd;

typedef struct watched_key {
    int dbid;
    dstr key;
    int expired; /* already logically expired when watched */
} watched_key;

struct multi_client {
    queued_cmd *q;
    int count, cap;
    int dirty_cas;  /* a watched key changed: EXEC fails with null */
    int dirty_exec; /* a command was refused while queuing: EXECABORT */
    int denyoom;    /* some queued command is CMD_DENYOOM */
    watched_key *watched;
    size_t nwatched, wcap;
};

static dict **watched_by_db; /* [dbnum], created on first WATCH */
static size_t watched_total;  /* keys watched, all clients: 0 = nothing to do */

static struct multi_client *state(client *c) {
    if (!c->mx) c->mx = km_calloc(sizeof *c->mx);
    return c->mx;
}

/* ------------------------------------------------------------- the queue */

static void free_queue(struct multi_client *m) {
    for (int i = 0; i < m->count; i++) resp_free_args(m->q[i].argv, m->q[i].argc);
    km_free(m->q);
    m->q = NULL;
    m->count = m->cap = 0;
    m->denyoom = 0;
}

int multi_maybe_queue(client *c) {
    cmd_fn *p = c->cmd->proc;
    if (p == exec_cmd || p == discard_cmd || p == multi_cmd || p == watch_cmd || p == quit_cmd ||
        p == reset_cmd)
        return 0;
    struct multi_client *m = state(c);
    if (!m) goto oom;
    if (m->count == m->cap) {
        int ncap = m->cap ? m->cap * 2 : 8;
        queued_cmd *nq = km_realloc(m->q, (size_t)ncap * sizeof *nq);
        if (!nq) goto oom;
        m->q = nq;
        m->cap = ncap;
    }
    m->q[m->count++] = (queued_cmd){c->cmd, c->argv, c->argc};
    if (c->cmd->flags & CMD_DENYOOM) m->denyoom = 1;
    c->argv = NULL; /* the queue owns the arguments now */
    c->argc = 0;
    reply_status(c, "QUEUED");
    return 1;
oom:
    if (c->mx) c->mx->dirty_exec = 1;
    reply_error(c, "ERR out of memory queueing the command");
    return 1;
}

void multi_flag_error(client *c) {
    if (!(c->flags & CF_MULTI)) return;
    struct multi_client *m = state(c);
    if (m) m->dirty_exec = 1;
    else c->flags &= ~CF_MULTI; /* cannot remember the error: drop the transaction */
}

int multi_queued_denyoom(const client *c) {
    return (c->flags & CF_MULTI) && c->mx && c->mx->denyoom;
}

int multi_queue_len(const client *c) {
    if (!(c->flags & CF_MULTI)) return -1;
    return c->mx ? c->mx->count : 0;
}

/* ------------------------------------------------------------- watching */

static void unwatch_all(client *c) {
    struct multi_client *m = c->mx;
    if (!m) return;
    for (size_t i = 0; i < m->nwatched; i++) {
        watched_key *wk = &m->watched[i];
        dict *d = watched_by_db ? watched_by_db[wk->dbid] : NULL;
        keyclients_remove(d, wk->key, c);
        dstr_free(wk->key);
        watched_total--;
    }
    km_free(m->watched);
    m->watched = NULL;
    m->nwatched = m->wcap = 0;
}

/* A key counts as expired while it is still stored but past its deadline
 * (lazy expiry has not deleted it yet). */
static int key_is_expired(kdb *db, const dstr key) {
    long long when = db_get_expire(db, key);
    return when >= 0 && when <= srv.now_ms;
}

static int watch_key(client *c, const dstr key) {
    struct multi_client *m = state(c);
    if (!m) return ERR;
    int dbid = c->db->id;
    for (size_t i = 0; i < m->nwatched; i++)
        if (m->watched[i].dbid == dbid && dstr_len(m->watched[i].key) == dstr_len(key) &&
            memcmp(m->watched[i].key, key, dstr_len(key)) == 0)
            return OK;
    if (!watched_by_db && !(watched_by_db = km_calloc(sizeof *watched_by_db * (size_t)srv.dbnum)))
        return ERR;
    dict **d = &watched_by_db[dbid];
    if (m->nwatched == m->wcap) {
        size_t ncap = m->wcap ? m->wcap * 2 : 4;
        watched_key *nw = km_realloc(m->watched, ncap * sizeof *nw);
        if (!nw) return ERR;
        m->watched = nw;
        m->wcap = ncap;
    }
    dstr own = dstr_dup(key);
    if (!own) return ERR;
    if (keyclients_add(d, key, c) != OK) {
        dstr_free(own);
        return ERR;
    }
    m->watched[m->nwatched++] = (watched_key){dbid, own, key_is_expired(c->db, key)};
    watched_total++;
    return OK;
}

static watched_key *find_watched(client *c, int dbid, const dstr key) {
    struct multi_client *m = c->mx;
    for (size_t i = 0; m && i < m->nwatched; i++)
        if (m->watched[i].dbid == dbid && dstr_len(m->watched[i].key) == dstr_len(key) &&
            memcmp(m->watched[i].key, key, dstr_len(key)) == 0)
            return &m->watched[i];
    return NULL;
}

/* Marks c dirty and forgets its watched keys: nothing can undo the
 * failure, and later writes to them need not find c again. */
static client **copy_watchers(dict *d, const dstr key, size_t *n);

static void mark_dirty(client *c) {
    c->mx->dirty_cas = 1;
    unwatch_all(c);
}

void multi_touch_key(kdb *db, const dstr key) {
    if (watched_total == 0) return;
    size_t n;
    client **v = copy_watchers(watched_by_db[db->id], key, &n);
    int exists = dict_find(db->keys, key) != NULL;
    for (size_t i = 0; i < n; i++) {
        watched_key *wk = find_watched(v[i], db->id, key);
        if (!wk) continue;
        /* A key that was already expired when watched and is now deleted
         * (by expiry) did not logically change. */
        if (wk->expired && !exists) {
            wk->expired = 0;
            continue;
        }
        mark_dirty(v[i]);
    }
    km_free(v);
}

/* A copy of the clients watching key in d (mark_dirty edits the list);
 * NULL when none or on OOM.  *n gets the count. */
static client **copy_watchers(dict *d, const dstr key, size_t *n) {
    keyclients *w = d ? dict_fetch(d, key) : NULL;
    *n = 0;
    if (!w || w->n == 0) return NULL;
    client **v = km_malloc(w->n * sizeof *v);
    if (!v) return NULL;
    memcpy(v, w->v, w->n * sizeof *v);
    *n = w->n;
    return v;
}

/* FLUSHDB/FLUSHALL (other == NULL: db is emptied) and SWAPDB (db now
 * holds what other held): a watched key is touched when it exists in
 * either, except where it was, and stays, logically expired. */
static void touch_db_common(kdb *db, kdb *other) {
    dict *d = watched_total && watched_by_db ? watched_by_db[db->id] : NULL;
    if (!d || dict_size(d) == 0) return;
    size_t n = dict_size(d);
    dstr *keys = km_malloc(n * sizeof *keys);
    if (!keys) return;
    size_t got = 0;
    dict_iter it;
    dict_iter_init(&it, d, 1);
    for (dict_entry *e; (e = dict_next(&it)) && got < n;) keys[got++] = dstr_dup(e->key);
    dict_iter_done(&it);
    for (size_t i = 0; i < got; i++) {
        dstr key = keys[i];
        if (!key) continue;
        int in_db = dict_find(db->keys, key) != NULL;
        int in_other = other && dict_find(other->keys, key) != NULL;
        size_t nc = 0;
        client **v = in_db || in_other ? copy_watchers(d, key, &nc) : NULL;
        for (size_t j = 0; j < nc; j++) {
            watched_key *wk = find_watched(v[j], db->id, key);
            if (!wk) continue;
            if (wk->expired) {
                if (!in_other) {
                    wk->expired = 0; /* the expired key is gone: no logical change */
                    continue;
                }
                if (key_is_expired(other, key)) continue;
            } else if (!in_db && key_is_expired(other, key)) {
                wk->expired = 1; /* a missing key replaced by an expired one */
                continue;
            }
            mark_dirty(v[j]);
        }
        km_free(v);
        dstr_free(key);
    }
    km_free(keys);
}

void multi_touch_db(kdb *db) {
    touch_db_common(db, NULL);
}

void multi_touch_swapped(int a, int b) {
    kdb *x = db_get(a), *y = db_get(b);
    if (!x || !y) return;
    touch_db_common(x, y);
    touch_db_common(y, x);
}

/* ------------------------------------------------------------ lifecycle */

static void discard_transaction(client *c) {
    if (c->mx) {
        free_queue(c->mx);
        c->mx->dirty_cas = c->mx->dirty_exec = 0;
    }
    c->flags &= ~CF_MULTI;
    unwatch_all(c);
}

void multi_client_release(client *c) {
    if (!c->mx) {
        c->flags &= ~CF_MULTI;
        return;
    }
    discard_transaction(c);
    km_free(c->mx);
    c->mx = NULL;
}

void multi_exec_abort(client *c, const char *err) {
    discard_transaction(c);
    if (err[0] == '-') err++;
    /* a formatted error carries Redis's default "ERR " prefix: drop it */
    if (!strncmp(err, "ERR ", 4)) err += 4;
    reply_errorf(c, "EXECABORT Transaction discarded because of: %s", err);
}

/* ------------------------------------------------------------- commands */

void multi_cmd(client *c) {
    if (c->flags & CF_MULTI) {
        reply_error(c, "ERR MULTI calls can not be nested");
        return;
    }
    c->flags |= CF_MULTI;
    reply_ok(c);
}

void discard_cmd(client *c) {
    if (!(c->flags & CF_MULTI)) {
        reply_error(c, "ERR DISCARD without MULTI");
        return;
    }
    discard_transaction(c);
    reply_ok(c);
}

void watch_cmd(client *c) {
    if (c->flags & CF_MULTI) {
        reply_error(c, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    /* Already doomed: watching more changes nothing (Redis skips too). */
    if (c->mx && c->mx->dirty_cas) {
        reply_ok(c);
        return;
    }
    for (int i = 1; i < c->argc; i++) {
        if (watch_key(c, c->argv[i]) != OK) {
            reply_error(c, "ERR out of memory watching a key");
            return;
        }
    }
    reply_ok(c);
}

void unwatch_cmd(client *c) {
    unwatch_all(c);
    if (c->mx) c->mx->dirty_cas = 0;
    reply_ok(c);
}

/* 1 if a watched key expired since WATCH without being deleted yet. */
static int watched_key_expired(client *c) {
    struct multi_client *m = c->mx;
    for (size_t i = 0; m && i < m->nwatched; i++) {
        watched_key *wk = &m->watched[i];
        if (wk->expired) continue;
        kdb *db = db_get(wk->dbid);
        if (db && key_is_expired(db, wk->key)) return 1;
    }
    return 0;
}

void exec_cmd(client *c) {
    if (!(c->flags & CF_MULTI)) {
        reply_error(c, "ERR EXEC without MULTI");
        return;
    }
    struct multi_client *m = c->mx;
    if (m && watched_key_expired(c)) m->dirty_cas = 1;
    if (m && (m->dirty_cas || m->dirty_exec)) {
        if (m->dirty_exec) reply_error(c, "EXECABORT Transaction discarded because of previous errors.");
        else reply_null_array(c);
        discard_transaction(c);
        return;
    }
    unwatch_all(c);
    /* The queue stays in place and CF_MULTI stays set while it runs (CLIENT
     * INFO inside EXEC shows flags=x multi=N, as in Redis); nothing that a
     * queued command can do queues more or discards. */
    queued_cmd *q = m ? m->q : NULL;
    int count = m ? m->count : 0;
    dstr *orig_argv = c->argv;
    int orig_argc = c->argc;
    const command *orig_cmd = c->cmd;
    reply_array_len(c, count);
    c->flags |= CF_IN_EXEC;
    for (int i = 0; i < count; i++) {
        c->argv = q[i].argv;
        c->argc = q[i].argc;
        c->cmd = q[i].cmd;
        command *mc = (command *)q[i].cmd;
        long long start = mono_us();
        prop_call(c); /* EXEC is the unit: its ops are handed on together */
        mc->calls++;
        mc->usec += mono_us() - start;
        c->total_cmds++;
        srv.stat_numcommands++;
        /* a command may have swapped argv (none does today); free what is there */
        q[i].argv = c->argv;
        q[i].argc = c->argc;
    }
    c->flags &= ~CF_IN_EXEC;
    c->argv = orig_argv;
    c->argc = orig_argc;
    c->cmd = orig_cmd;
    discard_transaction(c); /* frees the queue, clears CF_MULTI */
}

int multi_dirty(const client *c) { return c->mx && c->mx->dirty_cas; }
