/* t_block.c - blocking pops: BLPOP BRPOP BLMOVE BRPOPLPUSH BLMPOP BZPOPMIN
 * BZPOPMAX BZMPOP, built on the blocked-client hooks of block.c.
 *
 * A blocking command first tries to serve at once, exactly like its
 * non-blocking twin.  When every key is empty it registers the client as a
 * waiter on each key (per database, first come first served) and blocks it
 * with its timeout; its argv is kept.  Keys only get data again by being
 * created (a waiter always waits on a missing key), so db_add() calls
 * block_signal_key(); after the command that created the key, the waiters
 * are taken in order and their saved command is run again, looking only at
 * the key that got data (of the type the command pops) - it now finds data
 * and replies.  Timeouts answer a null array, as Redis does.
 *
 * Streams get data without a key being created (XADD to an existing
 * stream), and what a waiter is owed depends on ids it saved when it
 * blocked, so XREAD/XREADGROUP register a serve callback instead
 * (block_on_keys_custom): t_stream.c calls block_signal_key() on every
 * XADD and the callback decides, per waiter in arrival order, whether
 * there is something to deliver.  Inside EXEC (CF_IN_EXEC) nothing blocks:
 * the command answers as if its timeout had passed. */
#include "server.h"
#include "aof.h"
#include "zset.h"

#include <math.h>
#include <string.h>

typedef struct waiters {
    uint64_t *ids;
    size_t n, cap;
} waiters;

typedef struct bpop {
    int dbid;
    int nkeys;
    dstr *keys;
    const command *cmd;
    /* streams: a serve callback and its state instead of a re-run */
    block_serve_fn *serve;
    void (*free_priv)(void *priv);
    void *priv;
} bpop;

typedef struct ready_key {
    int dbid;
    dstr key;
    struct ready_key *next;
} ready_key;

static void waiters_free(void *p) {
    waiters *w = p;
    km_free(w->ids);
    km_free(w);
}

static const dict_type waiters_type = {dict_hash_dstr, dict_eq_dstr, dict_free_dstr, waiters_free};
static dict **by_db; /* per database: key -> waiters */
static ready_key *ready_head, *ready_tail;

static dict *db_waiters(int dbid, int create) {
    if (!by_db) {
        if (!create) return NULL;
        by_db = km_calloc(sizeof(dict *) * (size_t)srv.dbnum);
        if (!by_db) return NULL;
    }
    if (!by_db[dbid] && create) by_db[dbid] = dict_create(&waiters_type);
    return by_db[dbid];
}

static int add_waiter(int dbid, const dstr key, uint64_t id) {
    dict *d = db_waiters(dbid, 1);
    if (!d) return ERR;
    waiters *w = dict_fetch(d, key);
    if (!w) {
        w = km_calloc(sizeof *w);
        dstr k = dstr_dup(key);
        if (!w || !k || dict_add(d, k, w) != DICT_OK) {
            km_free(w);
            dstr_free(k);
            return ERR;
        }
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4;
        uint64_t *n = km_realloc(w->ids, cap * sizeof *n);
        if (!n) return ERR;
        w->ids = n;
        w->cap = cap;
    }
    w->ids[w->n++] = id;
    return OK;
}

static void remove_waiter(int dbid, const dstr key, uint64_t id) {
    dict *d = db_waiters(dbid, 0);
    waiters *w = d ? dict_fetch(d, key) : NULL;
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        if (w->ids[i] != id) continue;
        memmove(w->ids + i, w->ids + i + 1, (w->n - i - 1) * sizeof *w->ids);
        w->n--;
        break;
    }
    if (w->n == 0) dict_delete(d, key);
}

static void bpop_free(bpop *b) {
    if (!b) return;
    if (b->free_priv) b->free_priv(b->priv);
    for (int i = 0; i < b->nkeys; i++) dstr_free(b->keys[i]);
    km_free(b->keys);
    km_free(b);
}

/* Drops every registration of a blocked client and its saved state. */
static void forget(client *c) {
    bpop *b = c->bstate.priv;
    if (!b) return;
    for (int i = 0; i < b->nkeys; i++) remove_waiter(b->dbid, b->keys[i], c->id);
    bpop_free(b);
    c->bstate.priv = NULL;
}

static void on_timeout(client *c) {
    forget(c);
    reply_null_array(c);
    client_reset_args(c);
}

static void on_cancel(client *c) { forget(c); }

/* One timer wakes the loop at the earliest deadline registered since it
 * was last armed; before-sleep then answers every client whose deadline
 * passed (block_check_timeouts), and the server cron wakes the loop for
 * the others, as often as Redis checks its own timeouts.  A timer per
 * blocked client would outlive the client's wait: a client served long
 * before its deadline (BLPOP k 100000, then LPUSH k x, in a loop) left a
 * timer behind each time, and the event loop walks its whole timer list
 * on every turn. */
#define WAKE_MAX_DELAY_MS (24LL * 3600 * 1000) /* later deadlines: the cron */
static long long wake_id = -1;
static long long wake_due; /* ms deadline the armed timer is for */

static long long wake_timer(evloop *el, long long id, void *priv) {
    (void)el; (void)id; (void)priv;
    wake_id = -1;
    return -1; /* only wakes the loop; before-sleep checks the deadlines */
}

static void arm_wake_timer(long long deadline) {
    if (wake_id >= 0 && wake_due <= deadline) return;
    if (wake_id >= 0) ev_del_timer(srv.el, wake_id);
    long long delay = deadline - srv.now_ms;
    if (delay < 0) delay = 0;
    if (delay > WAKE_MAX_DELAY_MS) delay = WAKE_MAX_DELAY_MS;
    wake_id = ev_add_timer(srv.el, delay, wake_timer, NULL);
    wake_due = srv.now_ms + delay;
}

/* Inside EXEC a blocking command answers at once, as on timeout
 * (BLMOVE/BRPOPLPUSH there answer a null bulk, as Redis does). */
static int deny_blocking(client *c) {
    /* inside EXEC, and for the AOF loader, a blocking command answers as
     * if its timeout had passed */
    if (!(c->flags & CF_IN_EXEC) && !srv.loading) return 0;
    if (c->cmd && (!strcmp(c->cmd->name, "blmove") || !strcmp(c->cmd->name, "brpoplpush"))) reply_null(c);
    else reply_null_array(c);
    return 1;
}

static void register_block(client *c, const dstr *keys, int nkeys, long long deadline,
                           block_serve_fn *serve, void (*free_priv)(void *), void *priv) {
    int replied = 0;
    bpop *b = km_calloc(sizeof *b);
    if (b) b->keys = km_calloc(sizeof(dstr) * (size_t)nkeys);
    if (!b || !b->keys) {
        if (free_priv) free_priv(priv);
        goto oom;
    }
    b->dbid = c->db->id;
    b->cmd = c->cmd;
    b->serve = serve;
    b->free_priv = free_priv;
    b->priv = priv;
    for (int i = 0; i < nkeys; i++) {
        b->keys[i] = dstr_dup(keys[i]);
        if (!b->keys[i]) goto oom;
        b->nkeys = i + 1;
        if (add_waiter(b->dbid, b->keys[i], c->id) != OK) goto oom;
    }
    block_client(c, deadline, on_timeout, on_cancel, b);
    if (!(c->flags & CF_BLOCKED)) {
        replied = 1; /* block_client answered the OOM error itself */
        goto oom;
    }
    if (deadline) arm_wake_timer(deadline);
    return;
oom:
    if (b) {
        for (int i = 0; i < b->nkeys; i++) remove_waiter(b->dbid, b->keys[i], c->id);
        bpop_free(b);
    }
    if (!replied) reply_error(c, "ERR out of memory blocking the client");
}

/* Blocks on argv[first .. first + nkeys). */
static void block_on_keys(client *c, int first, int nkeys, long long deadline) {
    if (deny_blocking(c)) return;
    register_block(c, c->argv + first, nkeys, deadline, NULL, NULL, NULL);
}

void block_on_keys_custom(client *c, const dstr *keys, int nkeys, long long deadline_ms,
                          block_serve_fn *serve, void (*free_priv)(void *priv), void *priv) {
    if (deny_blocking(c)) {
        if (free_priv) free_priv(priv);
        return;
    }
    register_block(c, keys, nkeys, deadline_ms, serve, free_priv, priv);
}

int block_unblock_by_request(client *target, int with_error) {
    if (!target || !(target->flags & CF_BLOCKED) || !target->bstate.on_timeout) return 0;
    if (with_error) {
        if (target->bstate.on_cancel) target->bstate.on_cancel(target);
        reply_error(target, "UNBLOCKED client unblocked via CLIENT UNBLOCK");
        client_reset_args(target);
    } else {
        target->bstate.on_timeout(target);
    }
    unblock_client(target);
    return 1;
}

/* Timeout argument in seconds (float); 0 means forever.  Absolute ms. */
static int parse_timeout(client *c, const dstr s, long long *deadline) {
    long double t;
    if (!str_to_ldouble(s, dstr_len(s), &t)) {
        reply_error(c, "ERR timeout is not a float or out of range");
        return ERR;
    }
    t = ceill(t * 1000.0L);
    if (t < 0) {
        reply_error(c, "ERR timeout is negative");
        return ERR;
    }
    if (!(t < 9223372036854775808.0L)) { /* does not fit a long long (inf too) */
        reply_error(c, "ERR timeout is out of range");
        return ERR;
    }
    long long ms = (long long)t;
    /* Redis 7.0 blocks for good when now + timeout overflows */
    *deadline = ms > 0 && ms <= LLONG_MAX - srv.now_ms ? srv.now_ms + ms : 0;
    return OK;
}

/* While serve_key() re-runs a waiter's command for one signalled key, only
 * that key is looked at: Redis 7.0 serves a waiter from the key that got
 * data (BLPOP a b, then RPUSH b 1 and RPUSH a 2 in one MULTI: b is
 * served), and never fails it on another of its keys that meanwhile
 * became a value of another type. */
static dstr serving_key;

/* First key in argv[first .. first+n) holding data of `type`; WRONGTYPE
 * replies and returns -2; -1 when all are empty. */
static int first_ready(client *c, int first, int n, int type) {
    for (int i = 0; i < n; i++) {
        if (serving_key && dict_eq_dstr(serving_key, c->argv[first + i]) == 0) continue;
        kobj *o = db_lookup_write(c, c->argv[first + i]);
        if (!o) continue;
        if (db_check_type(c, o, type)) return -2;
        return first + i;
    }
    return -1;
}

/* What a served blocking pop propagates: its non-blocking twin on the key
 * it popped from, so replay never waits (Redis 7.0's forms). */
static void prop_nonblocking(const char *name, const dstr key, const char *a1, const char *a2, long long count) {
    if (!prop_active()) return;
    prop_args a;
    pa_init(&a);
    pa_cstr(&a, name);
    if (count > 0) pa_cstr(&a, "1");
    pa_dstr(&a, key);
    if (a1) pa_cstr(&a, a1);
    if (a2) pa_cstr(&a, a2);
    if (count > 0) {
        pa_cstr(&a, "COUNT");
        pa_ll(&a, count);
    }
    prop_replace(&a);
}

static void bpop_generic(client *c, int max_or_head, int type) {
    long long deadline;
    if (parse_timeout(c, c->argv[c->argc - 1], &deadline) != OK) return;
    int k = first_ready(c, 1, c->argc - 2, type);
    if (k == -2) return;
    if (k < 0) {
        block_on_keys(c, 1, c->argc - 2, deadline);
        return;
    }
    kobj *o = db_lookup_write(c, c->argv[k]);
    if (type == OBJ_LIST) {
        prop_nonblocking(max_or_head ? "LPOP" : "RPOP", c->argv[k], NULL, NULL, 0);
        reply_array_len(c, 2);
        reply_bulk_dstr(c, c->argv[k]);
        list_pop_reply(c, c->argv[k], o->ptr, max_or_head, -1);
        return;
    }
    prop_nonblocking(max_or_head ? "ZPOPMAX" : "ZPOPMIN", c->argv[k], NULL, NULL, 0);
    /* BZPOPMIN/MAX: key, member, score in one flat array */
    zset *z = o->ptr;
    zsl_node *x = max_or_head ? z->zsl->tail : z->zsl->header->level[0].forward;
    reply_array_len(c, 3);
    reply_bulk_dstr(c, c->argv[k]);
    reply_bulk_dstr(c, x->ele);
    reply_double(c, x->score);
    zset_remove(z, x->ele);
    notify_keyspace_event(NOTIFY_ZSET, max_or_head ? "zpopmax" : "zpopmin", c->argv[k], c->db->id);
    if (zset_len(z) == 0) {
        db_delete(c->db, c->argv[k]);
        notify_keyspace_event(NOTIFY_GENERIC, "del", c->argv[k], c->db->id);
    } else {
        db_signal_modified(c->db, c->argv[k]);
    }
}

void blpop_cmd(client *c) { bpop_generic(c, 1, OBJ_LIST); }
void brpop_cmd(client *c) { bpop_generic(c, 0, OBJ_LIST); }
void bzpopmin_cmd(client *c) { bpop_generic(c, 0, OBJ_ZSET); }
void bzpopmax_cmd(client *c) { bpop_generic(c, 1, OBJ_ZSET); }

static void bmove_generic(client *c, int from, int to, int timeout_arg) {
    long long deadline;
    if (parse_timeout(c, c->argv[timeout_arg], &deadline) != OK) return;
    int k = first_ready(c, 1, 1, OBJ_LIST);
    if (k == -2) return;
    if (k < 0) {
        block_on_keys(c, 1, 1, deadline);
        return;
    }
    if (prop_active()) {
        prop_args a;
        pa_init(&a);
        pa_cstr(&a, "LMOVE");
        pa_dstr(&a, c->argv[1]);
        pa_dstr(&a, c->argv[2]);
        pa_cstr(&a, from ? "LEFT" : "RIGHT");
        pa_cstr(&a, to ? "LEFT" : "RIGHT");
        prop_replace(&a);
    }
    list_move(c, c->argv[1], c->argv[2], from, to);
}

void blmove_cmd(client *c) {
    int from, to;
    if (list_parse_side(c->argv[3], &from) != OK || list_parse_side(c->argv[4], &to) != OK) {
        reply_syntax_error(c);
        return;
    }
    bmove_generic(c, from, to, 5);
}

void brpoplpush_cmd(client *c) { bmove_generic(c, 0, 1, 3); }

/* BLMPOP / BZMPOP timeout numkeys key... LEFT|RIGHT|MIN|MAX [COUNT n] */
static void bmpop_generic(client *c, int type) {
    long long deadline, numkeys, count = 1;
    if (parse_timeout(c, c->argv[1], &deadline) != OK) return;
    if (arg_ll_range(c, c->argv[2], 1, LONG_MAX, &numkeys, "ERR numkeys should be greater than 0") != OK)
        return;
    if (numkeys > c->argc - 4) {
        reply_syntax_error(c);
        return;
    }
    int where = 3 + (int)numkeys, side;
    const dstr w = c->argv[where];
    if (type == OBJ_LIST) {
        if (list_parse_side(w, &side) != OK) goto syntax;
    } else if (arg_is(w, "min")) side = 0;
    else if (arg_is(w, "max")) side = 1;
    else goto syntax;
    int count_given = 0;
    for (int i = where + 1; i < c->argc; i++) {
        if (arg_is(c->argv[i], "count") && i + 1 < c->argc && !count_given) {
            if (arg_ll_range(c, c->argv[++i], 1, LLONG_MAX, &count, "ERR count should be greater than 0") != OK)
                return;
            count_given = 1;
        } else {
            goto syntax;
        }
    }
    int k = first_ready(c, 3, (int)numkeys, type);
    if (k == -2) return;
    if (k < 0) {
        block_on_keys(c, 3, (int)numkeys, deadline);
        return;
    }
    kobj *o = db_lookup_write(c, c->argv[k]);
    if (type == OBJ_LIST) prop_nonblocking("LMPOP", c->argv[k], side ? "LEFT" : "RIGHT", NULL, count);
    else prop_nonblocking("ZMPOP", c->argv[k], side ? "MAX" : "MIN", NULL, count);
    reply_array_len(c, 2);
    reply_bulk_dstr(c, c->argv[k]);
    if (type == OBJ_LIST) list_pop_reply(c, c->argv[k], o->ptr, side, count);
    else zset_pop_reply(c, c->argv[k], o->ptr, side, count, 1);
    return;
syntax:
    reply_syntax_error(c);
}

void blmpop_cmd(client *c) { bmpop_generic(c, OBJ_LIST); }
void bzmpop_cmd(client *c) { bmpop_generic(c, OBJ_ZSET); }

/* ------------------------------------------------------------ waking up */

void block_signal_key(kdb *db, const dstr key) {
    dict *d = db_waiters(db->id, 0);
    if (!d || !dict_find(d, key)) return;
    /* a run of writes to one key (XADDs in a MULTI) queues it once */
    if (ready_tail && ready_tail->dbid == db->id && dstr_len(ready_tail->key) == dstr_len(key) &&
        memcmp(ready_tail->key, key, dstr_len(key)) == 0)
        return;
    ready_key *r = km_malloc(sizeof *r);
    if (!r) return; /* the waiters then wake at their timeout */
    r->dbid = db->id;
    r->key = dstr_dup(key);
    r->next = NULL;
    if (!r->key) {
        km_free(r);
        return;
    }
    if (ready_tail) ready_tail->next = r;
    else ready_head = r;
    ready_tail = r;
}

/* Signals every key that has waiters in database dbid, whatever it holds
 * now: each waiter's own check decides (a pop finds no data and stays
 * blocked, an XREADGROUP whose stream is gone is let go with UNBLOCKED,
 * one whose stream lost its group gets NOGROUP).  O(waited keys). */
static void signal_all_waited(int dbid) {
    dict *d = db_waiters(dbid, 0);
    kdb *db = db_get(dbid);
    if (!d || !db) return;
    dict_iter it;
    dict_iter_init(&it, d, 0);
    dict_entry *e;
    while ((e = dict_next(&it))) block_signal_key(db, e->key);
    dict_iter_done(&it);
}

/* SWAPDB: a waited key of either database may now hold data, or the
 * stream an XREADGROUP waits on may be gone (Redis 7.0's
 * scanDatabaseForReadyKeys and scanDatabaseForDeletedStreams). */
void block_signal_swapped(int a, int b) {
    signal_all_waited(a);
    if (b != a) signal_all_waited(b);
}

/* FLUSHDB / FLUSHALL emptied db: its XREADGROUP waiters are answered
 * UNBLOCKED, as when their stream is deleted (Redis 7.0); the others stay
 * blocked. */
void block_signal_flushed(kdb *db) { signal_all_waited(db->id); }

/* Whether key holds what the waiter's command pops: a sorted set for the
 * BZ* commands, a list for the others.  A key that got a value of the
 * other type leaves the waiter blocked, as in Redis 7.0. */
static int key_has_data(kdb *db, const dstr key, const command *cmd) {
    kobj *o = db_lookup(db, key, LOOKUP_NOTOUCH);
    int zset = cmd->proc == bzpopmin_cmd || cmd->proc == bzpopmax_cmd || cmd->proc == bzmpop_cmd;
    return o && o->type == (zset ? OBJ_ZSET : OBJ_LIST);
}

/* Serves the waiters of a key that got data, in the order they blocked:
 * a stream waiter's callback decides; a pop re-runs its saved command. */
static void serve_key(int dbid, const dstr key) {
    kdb *db = db_get(dbid);
    dict *d = db_waiters(dbid, 0);
    waiters *w = d ? dict_fetch(d, key) : NULL;
    if (!db || !w || w->n == 0) return;
    size_t n = w->n;
    uint64_t *ids = km_malloc(n * sizeof *ids);
    if (!ids) return;
    memcpy(ids, w->ids, n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        client *c = client_by_id(ids[i]);
        if (!c || !(c->flags & CF_BLOCKED) || !c->bstate.priv || c->bstate.on_timeout != on_timeout) continue;
        bpop *b = c->bstate.priv;
        if (b->serve) {
            /* a served reader is a unit of its own: XREADGROUP emits its
             * XCLAIM / XGROUP SETID forms from inside serve */
            kdb *saved_db = c->db;
            c->db = db;
            prop_enter();
            int served = b->serve(c, db, key, b->priv);
            prop_exit();
            c->db = saved_db;
            if (!served) continue;
            forget(c);
            unblock_client(c);
            client_reset_args(c);
            continue;
        }
        const command *cmd = b->cmd;
        if (!key_has_data(db, key, cmd)) continue;
        forget(c);
        unblock_client(c);
        kdb *saved = c->db;
        c->db = db;
        c->cmd = cmd;
        c->flags |= CF_EXECUTING;
        serving_key = key;
        prop_call(c); /* propagates the non-blocking form the handler chose */
        serving_key = NULL;
        c->flags &= ~CF_EXECUTING;
        c->cmd = NULL;
        if (!(c->flags & CF_BLOCKED)) client_reset_args(c);
        c->db = saved;
    }
    km_free(ids);
}

void block_handle_ready_keys(void) {
    while (ready_head) {
        ready_key *r = ready_head;
        ready_head = r->next;
        if (!ready_head) ready_tail = NULL;
        serve_key(r->dbid, r->key);
        dstr_free(r->key);
        km_free(r);
    }
}
