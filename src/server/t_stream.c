/* t_stream.c - the stream commands: XADD XLEN XRANGE XREVRANGE XREAD XDEL
 * XTRIM XSETID XINFO, and consumer groups: XGROUP XREADGROUP XACK XPENDING
 * XCLAIM XAUTOCLAIM.
 *
 * The structure is in stream.c; this file parses arguments, checks them in
 * the order redis-server 7.0 does (so the same bad call gets the same
 * error), replies, and tells the rest of the server about writes: WATCH
 * (db_signal_modified), keyspace notifications, and blocked readers
 * (block_signal_key after every XADD, so XREAD BLOCK on an existing stream
 * wakes up).  Blocked XREAD/XREADGROUP keep the ids they wait past in an
 * xwait and are served by xread_serve() in the order they blocked. */
#include "server.h"
#include "aof.h"
#include "stream.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define INVALID_ENTRIES_READ (-1LL)
#define XREAD_BLOCKED_DEFAULT_COUNT 1000

static const char *err_invalid_id = "ERR Invalid stream ID specified as stream command argument";

/* ------------------------------------------------------------- helpers */

static void reply_sid(client *c, const sid *id) {
    char buf[SID_STR_SIZE];
    int n = sid_format(id, buf);
    reply_bulk(c, buf, (size_t)n);
}

/* ---------------------------------------------------------- propagation
 * Consumer-group state depends on the clock (delivery times, min-idle)
 * and on what was pending when a command ran, so group commands propagate
 * explicit forms, as Redis 7.0 does: one XCLAIM ... FORCE JUSTID per
 * delivery or claim with its time and count, XGROUP SETID for the group's
 * position, XACK for a pending entry dropped because it was deleted, and
 * XGROUP CREATECONSUMER for a consumer a read created. */

static void pa_sid(prop_args *a, const sid *id) {
    char buf[SID_STR_SIZE];
    int n = sid_format(id, buf);
    pa_add(a, buf, (size_t)n);
}

static void prop_claim(kdb *db, const dstr key, const sgroup *g, const nack *k) {
    if (!prop_active()) return;
    prop_args a;
    pa_init(&a);
    pa_cstr(&a, "XCLAIM");
    pa_dstr(&a, key);
    pa_dstr(&a, g->name);
    pa_dstr(&a, k->consumer->name);
    pa_cstr(&a, "0");
    pa_sid(&a, &k->id);
    pa_cstr(&a, "TIME");
    pa_ll(&a, k->delivery_time);
    pa_cstr(&a, "RETRYCOUNT");
    pa_ll(&a, (long long)k->delivery_count);
    pa_cstr(&a, "FORCE");
    pa_cstr(&a, "JUSTID");
    pa_cstr(&a, "LASTID");
    pa_sid(&a, &g->last_id);
    prop_emit(db->id, &a);
}

static void prop_group_pos(kdb *db, const dstr key, const sgroup *g) {
    if (!prop_active()) return;
    prop_args a;
    pa_init(&a);
    pa_cstr(&a, "XGROUP");
    pa_cstr(&a, "SETID");
    pa_dstr(&a, key);
    pa_dstr(&a, g->name);
    pa_sid(&a, &g->last_id);
    pa_cstr(&a, "ENTRIESREAD");
    pa_ll(&a, g->entries_read);
    prop_emit(db->id, &a);
}

static void prop_ack(kdb *db, const dstr key, const sgroup *g, const sid *id) {
    if (!prop_active()) return;
    prop_args a;
    pa_init(&a);
    pa_cstr(&a, "XACK");
    pa_dstr(&a, key);
    pa_dstr(&a, g->name);
    pa_sid(&a, id);
    prop_emit(db->id, &a);
}

static void prop_new_consumer(kdb *db, const dstr key, const sgroup *g, const dstr name) {
    if (!prop_active()) return;
    prop_args a;
    pa_init(&a);
    pa_cstr(&a, "XGROUP");
    pa_cstr(&a, "CREATECONSUMER");
    pa_dstr(&a, key);
    pa_dstr(&a, g->name);
    pa_dstr(&a, name);
    prop_emit(db->id, &a);
}

/* Redis's string2ull: a canonical long long >= 0, or what strtoull takes
 * whole (leading blanks, '+', leading zeros). */
static int parse_ull(const char *s, unsigned long long *out) {
    long long ll;
    size_t len = strlen(s);
    if (str_to_ll(s, len, &ll)) {
        if (ll < 0) return 0;
        *out = (unsigned long long)ll;
        return 1;
    }
    if (*s == '\0') return 0;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == EINVAL || errno == ERANGE || *end != '\0') return 0;
    *out = v;
    return 1;
}

/* Parses "ms-seq", "ms" (seq = missing_seq), "-" and "+" (not when
 * strict), and with seq_given "ms-*".  Replies the error unless quiet. */
static int parse_id_generic(client *c, const dstr arg, sid *id, uint64_t missing_seq, int strict,
                            int *seq_given, int quiet) {
    char buf[128];
    size_t len = dstr_len(arg);
    if (len > sizeof buf - 1) goto invalid;
    memcpy(buf, arg, len + 1);
    if (strict && (buf[0] == '-' || buf[0] == '+') && buf[1] == '\0') goto invalid;
    if (seq_given) *seq_given = 1;
    if (buf[0] == '-' && buf[1] == '\0') {
        id->ms = 0;
        id->seq = 0;
        return OK;
    }
    if (buf[0] == '+' && buf[1] == '\0') {
        id->ms = UINT64_MAX;
        id->seq = UINT64_MAX;
        return OK;
    }
    unsigned long long ms, seq;
    char *dash = strchr(buf, '-');
    if (dash) *dash = '\0';
    if (!parse_ull(buf, &ms)) goto invalid;
    if (dash) {
        if (seq_given && dash[1] == '*' && dash[2] == '\0') {
            seq = 0;
            *seq_given = 0;
        } else if (!parse_ull(dash + 1, &seq)) {
            goto invalid;
        }
    } else {
        seq = missing_seq;
    }
    id->ms = ms;
    id->seq = seq;
    return OK;
invalid:
    if (!quiet) reply_error(c, err_invalid_id);
    return ERR;
}

static int parse_strict_id(client *c, const dstr arg, sid *id, int *seq_given) {
    return parse_id_generic(c, arg, id, 0, 1, seq_given, 0);
}

/* A range bound: "(" makes it exclusive (strict id after it). */
static int parse_interval_id(client *c, const dstr arg, sid *id, int *exclude, uint64_t missing_seq) {
    size_t len = dstr_len(arg);
    *exclude = len > 1 && arg[0] == '(';
    if (!*exclude) return parse_id_generic(c, arg, id, missing_seq, 0, NULL, 0);
    dstr t = dstr_newlen(arg + 1, len - 1);
    if (!t) {
        reply_error(c, "ERR out of memory");
        return ERR;
    }
    int r = parse_id_generic(c, t, id, missing_seq, 1, NULL, 0);
    dstr_free(t);
    return r;
}

static void reply_entry(client *c, const sentry *e) {
    reply_array_len(c, 2);
    reply_sid(c, &e->id);
    reply_array_len(c, (long)e->npairs * 2);
    sentry cur = *e;
    for (uint32_t i = 0; i < e->npairs; i++) {
        const char *f, *v;
        size_t fl, vl;
        sentry_next_pair(&cur, &f, &fl, &v, &vl);
        reply_bulk(c, f, fl);
        reply_bulk(c, v, vl);
    }
}

/* Replies the one entry with id; 0 (nothing sent) if it is gone. */
static int reply_entry_by_id(client *c, const stream *s, const sid *id) {
    siter it;
    sentry e;
    siter_start(&it, s, id, id, 0);
    if (!siter_next(&it, &e)) return 0;
    reply_entry(c, &e);
    return 1;
}

static stream *stream_of(kobj *o) { return o ? o->ptr : NULL; }

static void notify(const char *event, const dstr key, kdb *db) {
    notify_keyspace_event(NOTIFY_STREAM, event, key, db->id);
}

/* ---------------------------------------- consumer-group read counters */

/* Whether an XDEL tombstone may lie in [start, end] (NULL: open). */
static int range_has_tombstones(const stream *s, const sid *start, const sid *end) {
    static const sid zero = {0, 0}, max = {UINT64_MAX, UINT64_MAX};
    if (!s->length || sid_cmp(&s->max_deleted, &zero) == 0) return 0;
    if (sid_cmp(&s->first_id, &s->max_deleted) > 0) return 0;
    const sid *a = start ? start : &zero, *b = end ? end : &max;
    return sid_cmp(a, &s->max_deleted) <= 0 && sid_cmp(&s->max_deleted, b) <= 0;
}

/* How many entries were added up to id, when that can be known. */
static long long estimate_entries_read(const stream *s, const sid *id) {
    static const sid zero = {0, 0};
    if (!s->entries_added) return 0;
    if (!s->length && sid_cmp(id, &s->last_id) < 1) return (long long)s->entries_added;
    int cmp_last = sid_cmp(id, &s->last_id);
    if (cmp_last == 0) return (long long)s->entries_added;
    if (cmp_last > 0) return INVALID_ENTRIES_READ;
    int cmp_first = sid_cmp(id, &s->first_id);
    if (sid_cmp(&s->max_deleted, &zero) == 0 || sid_cmp(&s->max_deleted, &s->first_id) < 0) {
        if (cmp_first < 0) return (long long)(s->entries_added - s->length);
        if (cmp_first == 0) return (long long)(s->entries_added - s->length + 1);
    }
    return INVALID_ENTRIES_READ;
}

long long stream_estimate_entries_read(const stream *s, const sid *id) { return estimate_entries_read(s, id); }

/* entries_added - read in two's complement, as Redis computes it: both
 * counters can be set by hand (XSETID ENTRIESADDED, XGROUP ... ENTRIESREAD)
 * to values whose signed difference overflows. */
static long long counter_diff(uint64_t added, long long read) {
    return (long long)(added - (uint64_t)read);
}

static void reply_lag(client *c, const stream *s, const sgroup *g) {
    if (!s->entries_added) {
        reply_ll(c, 0);
        return;
    }
    if (g->entries_read != INVALID_ENTRIES_READ && !range_has_tombstones(s, &g->last_id, NULL)) {
        reply_ll(c, counter_diff(s->entries_added, g->entries_read));
        return;
    }
    long long read = estimate_entries_read(s, &g->last_id);
    if (read != INVALID_ENTRIES_READ) reply_ll(c, counter_diff(s->entries_added, read));
    else reply_null(c);
}

static void reply_entries_read(client *c, const sgroup *g) {
    if (g->entries_read != INVALID_ENTRIES_READ) reply_ll(c, g->entries_read);
    else reply_null(c);
}

/* ------------------------------------------------------ range replies */

/* For the claims, which must not fail halfway: what a claim by consumer
 * `name` of up to n entries can need, taken before anything changes - the
 * consumer when it is new (prepared, put in the group only by the first
 * claim, as Redis creates it), room in its PEL, and for FORCE room in the
 * group's PEL and n fresh nacks. */
typedef struct claim_res {
    sconsumer *cons;  /* the consumer, once found or put in */
    sconsumer *spare; /* prepared, not in the group yet */
    nack **fresh;     /* FORCE: unused nacks */
    size_t nfresh;
} claim_res;

/* What was reserved and not used; r can be released again after. */
static void claim_release(claim_res *r) {
    sconsumer_discard(r->spare);
    while (r->nfresh) km_free(r->fresh[--r->nfresh]);
    km_free(r->fresh);
    r->spare = NULL;
    r->fresh = NULL;
}

static int claim_reserve(claim_res *r, sgroup *g, const dstr name, size_t n, int force, long long now) {
    memset(r, 0, sizeof *r);
    r->cons = sconsumer_find(g, name, dstr_len(name));
    if (!r->cons && !(r->spare = sconsumer_prepare(g, name, dstr_len(name), now))) return ERR;
    if (pel_reserve(r->cons ? &r->cons->pel : &r->spare->pel, n) != 0) goto oom;
    if (force) {
        if (pel_reserve(&g->pel, n) != 0 || !(r->fresh = km_malloc((n ? n : 1) * sizeof *r->fresh))) goto oom;
        for (; r->nfresh < n; r->nfresh++)
            if (!(r->fresh[r->nfresh] = km_malloc(sizeof(nack)))) goto oom;
    }
    return OK;
oom:
    claim_release(r);
    return ERR;
}

/* The claiming consumer, put in the group on first use (with its event). */
static sconsumer *claim_consumer(claim_res *r, sgroup *g, kdb *db, const dstr key, long long now) {
    if (!r->cons) {
        sconsumer_insert(g, r->spare);
        r->cons = r->spare;
        r->spare = NULL;
        notify("xgroup-createconsumer", key, db);
        prop_new_consumer(db, key, g, r->cons->name);
    }
    r->cons->seen_time = now;
    return r->cons;
}

/* XREADGROUP's deliveries from start on, at most count (0: all), reserved
 * before its reply starts: the consumer, room in both PELs and a nack for
 * each entry (counted by walking them: as many steps as the delivery will
 * take).  With NOACK only the consumer. */
static int deliver_reserve(claim_res *r, sgroup *g, const dstr consumer, stream *s, const sid *start,
                           long long count, int noack, long long now) {
    size_t n = 0;
    if (!noack) {
        static const sid max = {UINT64_MAX, UINT64_MAX};
        siter it;
        sentry e;
        siter_start(&it, s, start, &max, 0);
        while ((!count || (long long)n < count) && siter_next(&it, &e)) n++;
    }
    return claim_reserve(r, g, consumer, n, !noack, now);
}

/* Records a delivery of id to cons: a new nack, or the existing one moved
 * to cons with its counters reset (XGROUP SETID can re-deliver). */
static void pel_deliver(sgroup *g, sconsumer *cons, const sid *id, claim_res *res) {
    nack *n = pel_find(&g->pel, id);
    if (n) {
        if (n->consumer != cons) {
            pel_remove(&n->consumer->pel, id);
            n->consumer = cons;
            int rc = pel_insert(&cons->pel, n);
            assert(rc == OK); /* deliver_reserve made the room */
            (void)rc;
        }
        n->delivery_time = time_ms();
        n->delivery_count = 1;
        return;
    }
    assert(res->nfresh > 0); /* one per entry delivered */
    n = res->fresh[--res->nfresh];
    n->id = *id;
    n->delivery_time = time_ms();
    n->delivery_count = 1;
    n->consumer = cons;
    int rc = pel_insert(&g->pel, n);
    assert(rc == OK);
    rc = pel_insert(&cons->pel, n);
    assert(rc == OK);
    (void)rc;
}

/* Replies the entries in [start, end] (end NULL: open), at most count
 * (0: all); with a group, moves its last id and records deliveries, from
 * what res reserved (deliver_reserve). */
static size_t reply_range(client *c, stream *s, const sid *start, const sid *end, long long count, int rev,
                          sgroup *g, sconsumer *cons, int noack, kdb *db, const dstr key, claim_res *res) {
    static const sid max = {UINT64_MAX, UINT64_MAX};
    void *len = reply_defer_len(c);
    size_t n = 0;
    int moved = 0;
    siter it;
    sentry e;
    siter_start(&it, s, start, end ? end : &max, rev);
    while (siter_next(&it, &e)) {
        if (g && sid_cmp(&e.id, &g->last_id) > 0) {
            if (g->entries_read != INVALID_ENTRIES_READ && !range_has_tombstones(s, &e.id, NULL))
                g->entries_read = (long long)((uint64_t)g->entries_read + 1); /* may be LLONG_MAX */
            else if (s->entries_added)
                g->entries_read = estimate_entries_read(s, &e.id);
            g->last_id = e.id;
            moved = 1;
        }
        reply_entry(c, &e);
        if (g && !noack) {
            pel_deliver(g, cons, &e.id, res);
            nack *k = pel_find(&g->pel, &e.id);
            if (k && k->consumer) prop_claim(db, key, g, k);
        }
        n++;
        if (count && (long long)n == count) break;
    }
    if (moved) prop_group_pos(db, key, g);
    reply_set_deferred_array(c, len, (long)n);
    return n;
}

/* XREADGROUP with an id: the consumer's own pending entries after start;
 * an entry deleted meanwhile shows as [id, nil]. */
static void reply_consumer_history(client *c, stream *s, const sid *start, long long count, sconsumer *cons,
                                   sgroup *g, const dstr key) {
    void *len = reply_defer_len(c);
    size_t n = 0;
    for (size_t i = pel_lower_bound(&cons->pel, start); i < pel_len(&cons->pel); i++) {
        if (count && (long long)n >= count) break;
        nack *k = pel_at(&cons->pel, i);
        if (reply_entry_by_id(c, s, &k->id)) {
            k->delivery_time = time_ms();
            k->delivery_count++;
            prop_claim(c->db, key, g, k);
        } else {
            reply_array_len(c, 2);
            reply_sid(c, &k->id);
            reply_null_array(c);
        }
        n++;
    }
    reply_set_deferred_array(c, len, (long)n);
}

/* ------------------------------------------------------- XADD / XTRIM */

typedef struct trim_args {
    int strategy;
    int approx;
    unsigned long long maxlen;
    sid minid;
    long long limit;
    int nomkstream;
    int id_given, seq_given;
    sid id;
} trim_args;

/* Parses the options of XADD (xadd=1: up to and including the id) or
 * XTRIM.  Returns the index after the id (XADD) or argc, -1 on error. */
static int parse_add_trim(client *c, trim_args *a, int xadd) {
    memset(a, 0, sizeof *a);
    int limit_given = 0;
    int i = 2;
    for (; i < c->argc; i++) {
        int more = c->argc - 1 - i;
        const dstr opt = c->argv[i];
        if (xadd && opt[0] == '*' && opt[1] == '\0') {
            break;
        } else if ((arg_is(opt, "maxlen") || arg_is(opt, "minid")) && more) {
            int maxlen = arg_is(opt, "maxlen");
            if (a->strategy != TRIM_NONE) {
                reply_error(c, "ERR syntax error, MAXLEN and MINID options at the same time are not compatible");
                return -1;
            }
            a->approx = 0;
            const dstr next = c->argv[i + 1];
            if (more >= 2 && next[0] == '~' && next[1] == '\0') {
                a->approx = 1;
                i++;
            } else if (more >= 2 && next[0] == '=' && next[1] == '\0') {
                i++;
            }
            if (maxlen) {
                long long v;
                if (arg_ll(c, c->argv[i + 1], &v) != OK) return -1;
                if (v < 0) {
                    reply_error(c, "ERR The MAXLEN argument must be >= 0.");
                    return -1;
                }
                a->maxlen = (unsigned long long)v;
                a->strategy = TRIM_MAXLEN;
            } else {
                if (parse_strict_id(c, c->argv[i + 1], &a->minid, NULL) != OK) return -1;
                a->strategy = TRIM_MINID;
            }
            i++;
        } else if (arg_is(opt, "limit") && more) {
            if (arg_ll(c, c->argv[i + 1], &a->limit) != OK) return -1;
            if (a->limit < 0) {
                reply_error(c, "ERR The LIMIT argument must be >= 0.");
                return -1;
            }
            limit_given = 1;
            i++;
        } else if (xadd && arg_is(opt, "nomkstream")) {
            a->nomkstream = 1;
        } else if (xadd) {
            if (parse_strict_id(c, opt, &a->id, &a->seq_given) != OK) return -1;
            a->id_given = 1;
            break;
        } else {
            reply_syntax_error(c);
            return -1;
        }
    }
    if (a->limit && a->strategy == TRIM_NONE) {
        reply_error(c, "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy");
        return -1;
    }
    if (!xadd && a->strategy == TRIM_NONE) {
        reply_error(c, "ERR syntax error, XTRIM must be called with a trimming strategy");
        return -1;
    }
    if (limit_given) {
        if (!a->approx) {
            reply_error(c, "ERR syntax error, LIMIT cannot be used without the special ~ option");
            return -1;
        }
    } else {
        a->limit = a->approx ? 100 * 100 : 0; /* 100 x stream-node-max-entries */
    }
    return i;
}

/* next_id() when "<ms>-*" names the ms of a last id whose seq is already
 * UINT64_MAX: redis-server 7.0.15 fails that case without setting errno
 * and so answers "Elements are too large to be stored"; XADD does too. */
#define NEXT_ID_SEQ_EXHAUSTED (-2)

/* The id XADD would give: explicit, "<ms>-*", or "*".  ERR when it would
 * not be greater than the stream's last id. */
static int next_id(const stream *s, const trim_args *a, sid *out) {
    sid id;
    if (a->id_given) {
        if (a->seq_given) {
            id = a->id;
        } else if (s->last_id.ms == a->id.ms) {
            if (s->last_id.seq == UINT64_MAX) return NEXT_ID_SEQ_EXHAUSTED;
            id = s->last_id;
            id.seq++;
        } else {
            id = a->id;
        }
    } else {
        uint64_t ms = (uint64_t)time_ms();
        if (ms > s->last_id.ms) {
            id.ms = ms;
            id.seq = 0;
        } else {
            id = s->last_id;
            if (sid_incr(&id) != 0) return ERR;
        }
    }
    if (sid_cmp(&id, &s->last_id) <= 0) return ERR;
    *out = id;
    return OK;
}

static kobj *create_stream_key(kdb *db, const dstr key) {
    stream *s = stream_new();
    kobj *o = s ? obj_new(OBJ_STREAM, ENC_STREAM, s) : NULL;
    if (!o) {
        stream_free(s);
        return NULL;
    }
    if (db_add(db, key, o) != OK) {
        obj_decref(o);
        return NULL;
    }
    return o;
}

/* After an entry was appended: WATCH, notifications, blocked readers. */
static void after_append(kdb *db, const dstr key, stream *s, const trim_args *a) {
    db_signal_modified(db, key);
    notify("xadd", key, db);
    if (a && a->strategy != TRIM_NONE &&
        stream_trim(s, a->strategy, a->maxlen, &a->minid, a->approx, a->limit) > 0)
        notify("xtrim", key, db);
    block_signal_key(db, key);
}

void xadd_cmd(client *c) {
    trim_args a;
    int fpos = parse_add_trim(c, &a, 1);
    if (fpos < 0) return;
    fpos++; /* past the id */
    if (c->argc - fpos < 2 || (c->argc - fpos) % 2 == 1) {
        reply_errorf(c, "ERR wrong number of arguments for '%s' command", "xadd");
        return;
    }
    if (a.id_given && a.seq_given && a.id.ms == 0 && a.id.seq == 0) {
        reply_error(c, "ERR The ID specified in XADD must be greater than 0-0");
        return;
    }
    kobj *o = db_lookup_write(c, c->argv[1]);
    if (db_check_type(c, o, OBJ_STREAM)) return;
    if (!o && a.nomkstream) {
        reply_null(c);
        return;
    }
    int npairs = (c->argc - fpos) / 2;
    size_t total = 0;
    for (int i = fpos; i < c->argc; i++) total += dstr_len(c->argv[i]);
    stream *s = stream_of(o);
    if (s && s->last_id.ms == UINT64_MAX && s->last_id.seq == UINT64_MAX) {
        reply_error(c, "ERR The stream has exhausted the last possible ID, unable to add more items");
        return;
    }
    stream empty;
    memset(&empty, 0, sizeof empty); /* a missing key: ids as for an empty stream */
    sid id;
    int idr = next_id(s ? s : &empty, &a, &id);
    if (idr == NEXT_ID_SEQ_EXHAUSTED) {
        reply_error(c, "ERR Elements are too large to be stored");
        return;
    }
    if (idr != OK) {
        reply_error(c, "ERR The ID specified in XADD is equal or smaller than the target stream top item");
        return;
    }
    if (total >= STREAM_ENTRY_MAX_BYTES) {
        reply_error(c, "ERR Elements are too large to be stored");
        return;
    }
    int created = !o;
    if (!o) {
        o = create_stream_key(c->db, c->argv[1]);
        if (!o) {
            reply_error(c, "ERR out of memory");
            return;
        }
        s = o->ptr;
    }
    size_t small[32]; /* most entries have a few fields: no allocation */
    size_t *lens = npairs <= 16 ? small : km_malloc(sizeof(size_t) * (size_t)(2 * npairs));
    int r = ERR;
    if (lens) {
        for (int i = 0; i < 2 * npairs; i++) lens[i] = dstr_len(c->argv[fpos + i]);
        r = stream_append(s, &id, (const char *const *)(c->argv + fpos), lens, npairs);
        if (lens != small) km_free(lens);
    }
    if (r != OK) {
        if (created) db_delete(c->db, c->argv[1]); /* no entry went in: no stream either */
        reply_error(c, "ERR out of memory");
        return;
    }
    reply_sid(c, &id);
    after_append(c->db, c->argv[1], s, &a);
    int approx = a.strategy != TRIM_NONE && a.approx;
    if (prop_active() && (!(a.id_given && a.seq_given) || approx)) {
        /* XADD * (or ms-*): the id it chose, so replay picks the same; a
         * ~ trim: the exact length it left (whole nodes go, and a stream
         * rebuilt by a rewrite need not have the same nodes) */
        prop_args pa;
        pa_init(&pa);
        pa_cstr(&pa, "XADD");
        pa_dstr(&pa, c->argv[1]);
        if (a.nomkstream) pa_cstr(&pa, "NOMKSTREAM");
        if (approx) {
            pa_cstr(&pa, "MAXLEN");
            pa_cstr(&pa, "=");
            pa_ll(&pa, (long long)s->length);
        } else {
            for (int i = 2; i < fpos - 1; i++)
                if (!arg_is(c->argv[i], "nomkstream")) pa_dstr(&pa, c->argv[i]);
        }
        pa_sid(&pa, &id);
        for (int i = fpos; i < c->argc; i++) pa_dstr(&pa, c->argv[i]);
        prop_replace(&pa);
    }
}

int stream_append_auto(kdb *db, const dstr key, const char *const *fields, const size_t *lens, int nfields,
                       char *err, size_t errlen) {
    if (nfields < 1) {
        snprintf(err, errlen, "ERR wrong number of arguments for 'xadd' command");
        return ERR;
    }
    kobj *o = db_lookup(db, key, LOOKUP_WRITE);
    if (o && o->type != OBJ_STREAM) {
        snprintf(err, errlen, "WRONGTYPE Operation against a key holding the wrong kind of value");
        return ERR;
    }
    size_t total = 0;
    for (int i = 0; i < 2 * nfields; i++) total += lens[i];
    if (total >= STREAM_ENTRY_MAX_BYTES) {
        snprintf(err, errlen, "ERR Elements are too large to be stored");
        return ERR;
    }
    trim_args a;
    memset(&a, 0, sizeof a);
    stream *s = stream_of(o), empty;
    memset(&empty, 0, sizeof empty);
    sid id;
    if (next_id(s ? s : &empty, &a, &id) != OK) {
        snprintf(err, errlen, "ERR The stream has exhausted the last possible ID, unable to add more items");
        return ERR;
    }
    if (!o) {
        o = create_stream_key(db, key);
        if (!o) {
            snprintf(err, errlen, "OOM out of memory creating the stream");
            return ERR;
        }
        s = o->ptr;
    }
    if (stream_append(s, &id, fields, lens, nfields) != OK) {
        snprintf(err, errlen, "OOM out of memory appending to the stream");
        return ERR;
    }
    if (prop_active()) { /* written by the server itself: XADD with its id */
        prop_args pa;
        pa_init(&pa);
        pa_cstr(&pa, "XADD");
        pa_dstr(&pa, key);
        pa_sid(&pa, &id);
        for (int i = 0; i < 2 * nfields; i++) pa_add(&pa, fields[i], lens[i]);
        prop_emit(db->id, &pa);
    }
    after_append(db, key, s, NULL);
    block_handle_ready_keys(); /* no command is running to do it afterwards */
    return OK;
}

void xtrim_cmd(client *c) {
    trim_args a;
    if (parse_add_trim(c, &a, 0) < 0) return;
    kobj *o = db_lookup_write(c, c->argv[1]);
    if (!o) {
        reply_ll(c, 0);
        return;
    }
    if (db_check_type(c, o, OBJ_STREAM)) return;
    long long deleted = stream_trim(o->ptr, a.strategy, a.maxlen, &a.minid, a.approx, a.limit);
    if (deleted) {
        notify("xtrim", c->argv[1], c->db);
        db_signal_modified(c->db, c->argv[1]);
        if (a.approx && prop_active()) { /* a ~ trim: the exact length it left */
            prop_args pa;
            pa_init(&pa);
            pa_cstr(&pa, "XTRIM");
            pa_dstr(&pa, c->argv[1]);
            pa_cstr(&pa, "MAXLEN");
            pa_cstr(&pa, "=");
            pa_ll(&pa, (long long)((stream *)o->ptr)->length);
            prop_replace(&pa);
        }
    }
    reply_ll(c, deleted);
}

/* ------------------------------------------------- XLEN XRANGE XDEL */

void xlen_cmd(client *c) {
    kobj *o = db_lookup_read(c, c->argv[1]);
    if (!o) {
        reply_ll(c, 0);
        return;
    }
    if (db_check_type(c, o, OBJ_STREAM)) return;
    reply_ll(c, (long long)((stream *)o->ptr)->length);
}

static void xrange_generic(client *c, int rev) {
    const dstr startarg = rev ? c->argv[3] : c->argv[2];
    const dstr endarg = rev ? c->argv[2] : c->argv[3];
    sid start, end;
    int startex, endex;
    long long count = -1;
    if (parse_interval_id(c, startarg, &start, &startex, 0) != OK) return;
    if (startex && sid_incr(&start) != 0) {
        reply_error(c, "ERR invalid start ID for the interval");
        return;
    }
    if (parse_interval_id(c, endarg, &end, &endex, UINT64_MAX) != OK) return;
    if (endex && sid_decr(&end) != 0) {
        reply_error(c, "ERR invalid end ID for the interval");
        return;
    }
    for (int j = 4; j < c->argc; j++) {
        if (arg_is(c->argv[j], "count") && j + 1 < c->argc) {
            if (arg_ll(c, c->argv[++j], &count) != OK) return;
            if (count < 0) count = 0;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    kobj *o = db_lookup_read(c, c->argv[1]);
    if (!o) {
        reply_array_len(c, 0);
        return;
    }
    if (db_check_type(c, o, OBJ_STREAM)) return;
    if (count == 0) {
        reply_null_array(c);
        return;
    }
    reply_range(c, o->ptr, &start, &end, count == -1 ? 0 : count, rev, NULL, NULL, 0, NULL, NULL, NULL);
}

void xrange_cmd(client *c) { xrange_generic(c, 0); }
void xrevrange_cmd(client *c) { xrange_generic(c, 1); }

/* The n ids at argv[first..]: a fresh array, or NULL with the error
 * replied (out of memory, or the first id that does not parse). */
static sid *parse_id_list(client *c, int first, int n) {
    sid *ids = km_malloc(sizeof(sid) * (size_t)n);
    if (!ids) {
        reply_error(c, "ERR out of memory");
        return NULL;
    }
    for (int j = 0; j < n; j++) {
        if (parse_strict_id(c, c->argv[j + first], &ids[j], NULL) != OK) {
            km_free(ids);
            return NULL;
        }
    }
    return ids;
}

void xdel_cmd(client *c) {
    kobj *o = db_lookup_write(c, c->argv[1]);
    if (!o) {
        reply_ll(c, 0);
        return;
    }
    if (db_check_type(c, o, OBJ_STREAM)) return;
    stream *s = o->ptr;
    int n = c->argc - 2;
    sid *ids = parse_id_list(c, 2, n);
    if (!ids) return;
    long long deleted = 0;
    int first_gone = 0;
    for (int j = 0; j < n; j++) {
        if (!stream_delete(s, &ids[j])) continue;
        if (sid_cmp(&ids[j], &s->first_id) == 0) first_gone = 1;
        if (sid_cmp(&ids[j], &s->max_deleted) > 0) s->max_deleted = ids[j];
        deleted++;
    }
    km_free(ids);
    if (deleted) {
        if (s->length == 0) s->first_id = (sid){0, 0};
        else if (first_gone) stream_edge_id(s, 0, &s->first_id);
        db_signal_modified(c->db, c->argv[1]);
        notify("xdel", c->argv[1], c->db);
    }
    reply_ll(c, deleted);
}

void xsetid_cmd(client *c) {
    sid id, maxdel = {0, 0};
    long long added = -1;
    if (parse_strict_id(c, c->argv[2], &id, NULL) != OK) return;
    for (int i = 3; i < c->argc; i += 2) {
        int more = c->argc - 1 - i;
        if (arg_is(c->argv[i], "entriesadded") && more) {
            if (arg_ll(c, c->argv[i + 1], &added) != OK) return;
            if (added < 0) {
                reply_error(c, "ERR entries_added must be positive");
                return;
            }
        } else if (arg_is(c->argv[i], "maxdeletedid") && more) {
            if (parse_strict_id(c, c->argv[i + 1], &maxdel, NULL) != OK) return;
            if (sid_cmp(&id, &maxdel) < 0) {
                reply_error(c, "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
                return;
            }
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    kobj *o = db_lookup_write(c, c->argv[1]);
    if (!o) {
        reply_error(c, "ERR no such key");
        return;
    }
    if (db_check_type(c, o, OBJ_STREAM)) return;
    stream *s = o->ptr;
    if (s->length > 0) {
        sid top;
        stream_edge_id(s, 1, &top);
        if (sid_cmp(&id, &top) < 0) {
            reply_error(c, "ERR The ID specified in XSETID is smaller than the target stream top item");
            return;
        }
        if (added != -1 && s->length > (unsigned long long)added) {
            reply_error(c, "ERR The entries_added specified in XSETID is smaller than the target stream length");
            return;
        }
    }
    s->last_id = id;
    if (added != -1) s->entries_added = (uint64_t)added;
    if (maxdel.ms || maxdel.seq) s->max_deleted = maxdel;
    reply_ok(c);
    /* no db_signal_modified: redis-server 7.0.15 does not touch WATCH here */
    notify("xsetid", c->argv[1], c->db);
}

/* ------------------------------------------------- XREAD / XREADGROUP */

typedef struct xwait {
    int nkeys;
    dstr *keys;
    sid *ids;
    long long count;
    dstr group, consumer; /* XREADGROUP only */
    int noack;
} xwait;

static void xwait_free(void *p) {
    xwait *w = p;
    if (!w) return;
    for (int i = 0; i < w->nkeys; i++) dstr_free(w->keys[i]);
    km_free(w->keys);
    km_free(w->ids);
    dstr_free(w->group);
    dstr_free(w->consumer);
    km_free(w);
}

/* A key a blocked reader waits on got an entry (or its group went away). */
static int xread_serve(client *c, kdb *db, const dstr key, void *priv) {
    xwait *w = priv;
    kobj *o = db_lookup(db, key, LOOKUP_NOTOUCH);
    if (!o || o->type != OBJ_STREAM) {
        /* The stream an XREADGROUP waits on (it existed: the group did) was
         * deleted or overwritten; Redis 7.0 lets go of such readers. */
        if (!w->group) return 0;
        reply_error(c, "UNBLOCKED the stream key no longer exists");
        return 1;
    }
    stream *s = o->ptr;
    int k = -1;
    for (int i = 0; i < w->nkeys && k < 0; i++)
        if (dstr_len(w->keys[i]) == dstr_len(key) && memcmp(w->keys[i], key, dstr_len(key)) == 0) k = i;
    if (k < 0) return 0;
    sid gt = w->ids[k];
    sgroup *g = NULL;
    if (w->group) {
        g = sgroup_find(s, w->group, dstr_len(w->group));
        if (!g) {
            reply_error(c, "NOGROUP the consumer group this client was blocked on no longer exists");
            return 1;
        }
        gt = g->last_id;
    }
    if (sid_cmp(&s->last_id, &gt) <= 0) return 0;
    sid start = gt;
    sid_incr(&start);
    sconsumer *cons = NULL;
    claim_res res = {0};
    if (g) {
        long long now = time_ms();
        if (deliver_reserve(&res, g, w->consumer, s, &start, w->count, w->noack, now) != OK) {
            reply_error(c, "ERR out of memory");
            return 1;
        }
        cons = claim_consumer(&res, g, db, key, now);
    }
    if (c->resp == 2) {
        reply_array_len(c, 1);
        reply_array_len(c, 2);
    } else {
        reply_map_len(c, 1);
    }
    reply_bulk_dstr(c, key);
    reply_range(c, s, &start, NULL, w->count, 0, g, cons, w->noack, db, key, &res);
    claim_release(&res);
    return 1;
}

static void xread_generic(client *c, int xreadgroup) {
    long long timeout = -1, count = 0;
    int streams_arg = 0, nstreams = 0, noack = 0;
    dstr groupname = NULL, consumername = NULL;
    for (int i = 1; i < c->argc; i++) {
        int more = c->argc - i - 1;
        const dstr o = c->argv[i];
        if (arg_is(o, "block") && more) {
            i++;
            long long t;
            if (arg_ll_range(c, c->argv[i], LLONG_MIN, LLONG_MAX, &t, "ERR timeout is not an integer or out of range") != OK)
                return;
            if (t < 0) {
                reply_error(c, "ERR timeout is negative");
                return;
            }
            timeout = t;
        } else if (arg_is(o, "count") && more) {
            i++;
            if (arg_ll(c, c->argv[i], &count) != OK) return;
            if (count < 0) count = 0;
        } else if (arg_is(o, "streams") && more) {
            streams_arg = i + 1;
            nstreams = c->argc - streams_arg;
            if (nstreams % 2 != 0) {
                reply_error(c, "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be "
                               "specified.");
                return;
            }
            nstreams /= 2;
            break;
        } else if (arg_is(o, "group") && more >= 2) {
            if (!xreadgroup) {
                reply_error(c, "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.");
                return;
            }
            groupname = c->argv[i + 1];
            consumername = c->argv[i + 2];
            i += 2;
        } else if (arg_is(o, "noack")) {
            if (!xreadgroup) {
                reply_error(c, "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.");
                return;
            }
            noack = 1;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    if (streams_arg == 0) {
        reply_syntax_error(c);
        return;
    }
    if (xreadgroup && !groupname) {
        reply_error(c, "ERR Missing GROUP option for XREADGROUP");
        return;
    }
    claim_res *res = NULL;
    sid *ids = km_calloc(sizeof(sid) * (size_t)nstreams);
    sgroup **groups = groupname ? km_calloc(sizeof(sgroup *) * (size_t)nstreams) : NULL;
    if (!ids || (groupname && !groups)) {
        km_free(ids);
        km_free(groups);
        reply_error(c, "ERR out of memory");
        return;
    }
    for (int k = 0; k < nstreams; k++) {
        const dstr key = c->argv[streams_arg + k];
        const dstr idarg = c->argv[streams_arg + nstreams + k];
        kobj *o = db_lookup_read(c, key);
        if (db_check_type(c, o, OBJ_STREAM)) goto done;
        if (groupname) {
            sgroup *g = o ? sgroup_find(o->ptr, groupname, dstr_len(groupname)) : NULL;
            if (!g) {
                reply_errorf(c, "NOGROUP No such key '%s' or consumer group '%s' in XREADGROUP with GROUP option",
                             key, groupname);
                goto done;
            }
            groups[k] = g;
        }
        if (strcmp(idarg, "$") == 0) {
            if (xreadgroup) {
                reply_error(c, "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the "
                               "history of this consumer by specifying a proper ID, or use the > ID to get new "
                               "messages. The $ ID would just return an empty result set.");
                goto done;
            }
            ids[k] = o ? ((stream *)o->ptr)->last_id : (sid){0, 0};
            continue;
        }
        if (strcmp(idarg, ">") == 0) {
            if (!xreadgroup) {
                reply_error(c, "ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
                               "<group> <consumer> option.");
                goto done;
            }
            ids[k] = (sid){UINT64_MAX, UINT64_MAX};
            continue;
        }
        if (parse_strict_id(c, idarg, &ids[k], NULL) != OK) goto done;
    }

    long served = 0;
    void *top = NULL;
    /* Two passes over the streams: which are served and, for a group, the
     * reservation of everything its deliveries need (deliver_reserve);
     * then the reply.  Out of memory in the first pass answers an error
     * with nothing changed; the second cannot run out. */
    res = groups ? km_calloc(sizeof *res * (size_t)nstreams) : NULL;
    if (groups && !res) {
        reply_error(c, "ERR out of memory");
        goto done;
    }
    long long now = time_ms();
    for (int pass = 0; pass < 2; pass++)
    for (int k = 0; k < nstreams; k++) {
        /* the reservation pass looks without counting a keyspace hit: the
         * serving pass counts it, as before */
        kobj *o = pass ? db_lookup_read(c, c->argv[streams_arg + k])
                       : db_lookup(c->db, c->argv[streams_arg + k], LOOKUP_NOTOUCH);
        if (!o) continue;
        stream *s = o->ptr;
        sid gt = ids[k];
        int sync = 0, history = 0;
        if (groups) {
            if (gt.ms != UINT64_MAX || gt.seq != UINT64_MAX) {
                sync = history = 1;
            } else if (s->length) {
                sid maxid;
                stream_edge_id(s, 1, &maxid);
                if (sid_cmp(&maxid, &groups[k]->last_id) > 0) {
                    sync = 1;
                    gt = groups[k]->last_id;
                }
            }
        } else if (s->length) {
            sid maxid;
            stream_edge_id(s, 1, &maxid);
            if (sid_cmp(&maxid, &gt) > 0) sync = 1;
        }
        if (!sync) continue;
        sid start = gt;
        sid_incr(&start);
        if (pass == 0) {
            if (groups && deliver_reserve(&res[k], groups[k], consumername, s, &start, history ? 0 : count,
                                          noack || history, now) != OK) {
                reply_error(c, "ERR out of memory");
                goto done;
            }
            continue;
        }
        if (++served == 1) top = reply_defer_len(c);
        if (c->resp == 2) reply_array_len(c, 2);
        reply_bulk_dstr(c, c->argv[streams_arg + k]);
        sconsumer *cons = NULL;
        if (groups) cons = claim_consumer(&res[k], groups[k], c->db, c->argv[streams_arg + k], now);
        if (groups && history) reply_consumer_history(c, s, &start, count, cons, groups[k], c->argv[streams_arg + k]);
        else reply_range(c, s, &start, NULL, count, 0, groups ? groups[k] : NULL, cons, noack, c->db,
                             c->argv[streams_arg + k], groups ? &res[k] : NULL);
    }
    if (served) {
        if (c->resp == 2) reply_set_deferred_array(c, top, served);
        else reply_set_deferred_map(c, top, served);
        goto done;
    }
    if (timeout == -1) {
        reply_null_array(c);
        goto done;
    }
    xwait *w = km_calloc(sizeof *w);
    if (w) {
        w->keys = km_calloc(sizeof(dstr) * (size_t)nstreams);
        w->ids = ids;
        ids = NULL;
        w->count = count ? count : XREAD_BLOCKED_DEFAULT_COUNT;
        w->noack = noack;
        if (groupname) {
            w->group = dstr_dup(groupname);
            w->consumer = dstr_dup(consumername);
        }
    }
    int ok = w && w->keys && w->ids && (!groupname || (w->group && w->consumer));
    for (int k = 0; ok && k < nstreams; k++) {
        w->keys[k] = dstr_dup(c->argv[streams_arg + k]);
        if (!w->keys[k]) ok = 0;
        else w->nkeys = k + 1;
    }
    if (!ok) {
        xwait_free(w);
        reply_error(c, "ERR out of memory blocking the client");
        goto done;
    }
    /* a deadline past LLONG_MAX blocks for good, as in Redis 7.0 */
    now = time_ms();
    long long deadline = timeout > 0 && timeout <= LLONG_MAX - now ? now + timeout : 0;
    block_on_keys_custom(c, c->argv + streams_arg, nstreams, deadline, xread_serve, xwait_free, w);
done:
    if (res)
        for (int k = 0; k < nstreams; k++) claim_release(&res[k]);
    km_free(res);
    km_free(ids);
    km_free(groups);
}

void xread_cmd(client *c) { xread_generic(c, 0); }
void xreadgroup_cmd(client *c) {
    prop_prevent(); /* its deliveries went out as XCLAIM / XGROUP SETID */
    xread_generic(c, 1);
}

/* ------------------------------------------------------ XACK XPENDING */

/* The stream at argv[1] and its group argv[2].  wrongtype: 1 when a
 * WRONGTYPE error was replied; otherwise NULL means no such key or group
 * (nothing replied: XACK answers 0, the others NOGROUP). */
static sgroup *lookup_group(client *c, kobj **op, int *wrongtype) {
    kobj *o = db_lookup_read(c, c->argv[1]);
    *op = o;
    *wrongtype = 0;
    if (!o) return NULL;
    if (db_check_type(c, o, OBJ_STREAM)) {
        *wrongtype = 1;
        return NULL;
    }
    return sgroup_find(o->ptr, c->argv[2], dstr_len(c->argv[2]));
}

/* lookup_group, answering NOGROUP when it finds nothing. */
static sgroup *lookup_group_or_reply(client *c, kobj **op) {
    int wt;
    sgroup *g = lookup_group(c, op, &wt);
    if (!g && !wt) reply_errorf(c, "NOGROUP No such key '%s' or consumer group '%s'", c->argv[1], c->argv[2]);
    return g;
}

void xack_cmd(client *c) {
    kobj *o;
    int wrongtype;
    sgroup *g = lookup_group(c, &o, &wrongtype);
    if (!g) {
        if (!wrongtype) reply_ll(c, 0);
        return;
    }
    int n = c->argc - 3;
    sid *ids = parse_id_list(c, 3, n);
    if (!ids) return;
    long long acked = 0;
    for (int j = 0; j < n; j++) {
        nack *k = pel_find(&g->pel, &ids[j]);
        if (!k) continue;
        pel_remove(&g->pel, &ids[j]);
        pel_remove(&k->consumer->pel, &ids[j]);
        km_free(k);
        acked++;
    }
    km_free(ids);
    /* no WATCH and no event (as Redis), but a change the AOF must hold */
    srv.dirty += acked;
    reply_ll(c, acked);
}

void xpending_cmd(client *c) {
    int justinfo = c->argc == 3;
    sid start = {0, 0}, end = {0, 0};
    long long count = 0, minidle = 0;
    dstr consname = NULL;
    if (c->argc != 3 && (c->argc < 6 || c->argc > 9)) {
        reply_syntax_error(c);
        return;
    }
    if (c->argc >= 6) {
        int si = 3;
        if (arg_is(c->argv[3], "idle")) {
            if (arg_ll(c, c->argv[4], &minidle) != OK) return;
            if (c->argc < 8) {
                reply_syntax_error(c);
                return;
            }
            si += 2;
        }
        if (arg_ll(c, c->argv[si + 2], &count) != OK) return;
        if (count < 0) count = 0;
        int startex, endex;
        if (parse_interval_id(c, c->argv[si], &start, &startex, 0) != OK) return;
        if (startex && sid_incr(&start) != 0) {
            reply_error(c, "ERR invalid start ID for the interval");
            return;
        }
        if (parse_interval_id(c, c->argv[si + 1], &end, &endex, UINT64_MAX) != OK) return;
        if (endex && sid_decr(&end) != 0) {
            reply_error(c, "ERR invalid end ID for the interval");
            return;
        }
        if (si + 3 < c->argc) consname = c->argv[si + 3];
    }
    kobj *o;
    sgroup *g = lookup_group_or_reply(c, &o);
    if (!g) return;
    if (justinfo) {
        size_t n = pel_len(&g->pel);
        reply_array_len(c, 4);
        reply_ll(c, (long long)n);
        if (n == 0) {
            reply_null(c);
            reply_null(c);
            reply_null_array(c);
            return;
        }
        reply_sid(c, &pel_at(&g->pel, 0)->id);
        reply_sid(c, &pel_at(&g->pel, n - 1)->id);
        long with = 0;
        for (size_t i = 0; i < g->nconsumers; i++)
            if (pel_len(&g->consumers[i]->pel)) with++;
        reply_array_len(c, with);
        for (size_t i = 0; i < g->nconsumers; i++) {
            sconsumer *k = g->consumers[i];
            if (!pel_len(&k->pel)) continue;
            reply_array_len(c, 2);
            reply_bulk_dstr(c, k->name);
            reply_bulk_ll(c, (long long)pel_len(&k->pel));
        }
        return;
    }
    const pelvec *pel = &g->pel;
    if (consname) {
        sconsumer *k = sconsumer_find(g, consname, dstr_len(consname));
        if (!k) {
            reply_array_len(c, 0);
            return;
        }
        pel = &k->pel;
    }
    long long now = time_ms();
    void *len = reply_defer_len(c);
    long n = 0;
    for (size_t i = pel_lower_bound(pel, &start); count && i < pel_len(pel); i++) {
        nack *k = pel_at(pel, i);
        if (sid_cmp(&k->id, &end) > 0) break;
        if (minidle && now - k->delivery_time < minidle) continue;
        n++;
        count--;
        reply_array_len(c, 4);
        reply_sid(c, &k->id);
        reply_bulk_dstr(c, k->consumer->name);
        long long elapsed = now - k->delivery_time;
        reply_ll(c, elapsed < 0 ? 0 : elapsed);
        reply_ll(c, (long long)k->delivery_count);
    }
    reply_set_deferred_array(c, len, n);
}

/* --------------------------------------------------- XCLAIM XAUTOCLAIM */

/* Moves nack k to consumer cons (k may be unowned: FORCE). */
static int nack_move(nack *k, sconsumer *cons) {
    if (k->consumer == cons) return OK;
    if (k->consumer) pel_remove(&k->consumer->pel, &k->id);
    k->consumer = cons;
    return pel_insert(&cons->pel, k);
}

static void nack_drop(sgroup *g, nack *k) {
    pel_remove(&g->pel, &k->id);
    if (k->consumer) pel_remove(&k->consumer->pel, &k->id);
    km_free(k);
}

void xclaim_cmd(client *c) {
    kobj *o;
    sgroup *g = lookup_group_or_reply(c, &o);
    if (!g) return;
    stream *s = o->ptr;
    long long minidle, retrycount = -1, deliverytime = -1;
    int force = 0, justid = 0;
    if (arg_ll_range(c, c->argv[4], LLONG_MIN, LLONG_MAX, &minidle, "ERR Invalid min-idle-time argument for XCLAIM") != OK)
        return;
    if (minidle < 0) minidle = 0;
    int j;
    sid tmp;
    for (j = 5; j < c->argc; j++)
        if (parse_id_generic(c, c->argv[j], &tmp, 0, 1, NULL, 1) != OK) break;
    int last_id_arg = j - 1;
    long long now = time_ms();
    sid last_id = {0, 0};
    for (; j < c->argc; j++) {
        int more = c->argc - 1 - j;
        const dstr opt = c->argv[j];
        if (arg_is(opt, "force")) {
            force = 1;
        } else if (arg_is(opt, "justid")) {
            justid = 1;
        } else if (arg_is(opt, "idle") && more) {
            if (arg_ll_range(c, c->argv[++j], LLONG_MIN, LLONG_MAX, &deliverytime,
                             "ERR Invalid IDLE option argument for XCLAIM") != OK)
                return;
            /* A negative idle lies in the future and is clamped to now
             * below; only a non-negative one is subtracted, so that
             * IDLE -9223372036854775808 cannot overflow. */
            deliverytime = deliverytime < 0 ? now + 1 : now - deliverytime;
        } else if (arg_is(opt, "time") && more) {
            if (arg_ll_range(c, c->argv[++j], LLONG_MIN, LLONG_MAX, &deliverytime,
                             "ERR Invalid TIME option argument for XCLAIM") != OK)
                return;
        } else if (arg_is(opt, "retrycount") && more) {
            if (arg_ll_range(c, c->argv[++j], LLONG_MIN, LLONG_MAX, &retrycount,
                             "ERR Invalid RETRYCOUNT option argument for XCLAIM") != OK)
                return;
        } else if (arg_is(opt, "lastid") && more) {
            if (parse_strict_id(c, c->argv[++j], &last_id, NULL) != OK) return;
        } else {
            reply_errorf(c, "ERR Unrecognized XCLAIM option '%s'", opt);
            return;
        }
    }
    prop_prevent(); /* each claim goes out as its own absolute XCLAIM */
    if (sid_cmp(&last_id, &g->last_id) > 0) {
        g->last_id = last_id;
        prop_group_pos(c->db, c->argv[1], g);
    }
    if (deliverytime != -1) {
        if (deliverytime < 0 || deliverytime > now) deliverytime = now;
    } else {
        deliverytime = now;
    }
    /* every allocation a claim can need, before the first change */
    claim_res res;
    if (claim_reserve(&res, g, c->argv[3], (size_t)(last_id_arg - 4), force, now) != OK) {
        reply_error(c, "ERR out of memory");
        return;
    }
    sconsumer *cons = NULL;
    void *len = reply_defer_len(c);
    long n = 0;
    for (j = 5; j <= last_id_arg; j++) {
        sid id;
        parse_id_generic(c, c->argv[j], &id, 0, 1, NULL, 1);
        nack *k = pel_find(&g->pel, &id);
        if (!stream_has(s, &id)) {
            if (k) {
                prop_ack(c->db, c->argv[1], g, &id);
                nack_drop(g, k);
            }
            continue;
        }
        if (force && !k) {
            /* the consumer first: an unowned nack must never stay in the
             * PEL (XPENDING and XINFO read its consumer's name) */
            if (!cons) cons = claim_consumer(&res, g, c->db, c->argv[1], now);
            assert(res.nfresh > 0); /* one per id given */
            k = res.fresh[--res.nfresh];
            k->id = id;
            k->delivery_time = now;
            k->delivery_count = 1;
            k->consumer = NULL;
            int rc = pel_insert(&g->pel, k);
            assert(rc == OK); /* reserved */
            (void)rc;
        }
        if (!k) continue;
        if (k->consumer && minidle && now - k->delivery_time < minidle) continue;
        if (!cons) cons = claim_consumer(&res, g, c->db, c->argv[1], now);
        int moved = nack_move(k, cons);
        assert(moved == OK); /* room reserved in cons's PEL */
        (void)moved;
        k->delivery_time = deliverytime;
        if (retrycount >= 0) k->delivery_count = (unsigned long long)retrycount;
        else if (!justid) k->delivery_count++;
        prop_claim(c->db, c->argv[1], g, k);
        if (justid) reply_sid(c, &id);
        else if (!reply_entry_by_id(c, s, &id)) reply_null(c);
        n++;
    }
    claim_release(&res);
    reply_set_deferred_array(c, len, n);
}

void xautoclaim_cmd(client *c) {
    long long minidle, count = 100;
    int justid = 0, startex;
    sid start;
    if (arg_ll_range(c, c->argv[4], LLONG_MIN, LLONG_MAX, &minidle,
                     "ERR Invalid min-idle-time argument for XAUTOCLAIM") != OK)
        return;
    if (minidle < 0) minidle = 0;
    if (parse_interval_id(c, c->argv[5], &start, &startex, 0) != OK) return;
    if (startex && sid_incr(&start) != 0) {
        reply_error(c, "ERR invalid start ID for the interval");
        return;
    }
    for (int j = 6; j < c->argc; j++) {
        int more = c->argc - 1 - j;
        if (arg_is(c->argv[j], "count") && more) {
            if (arg_ll_range(c, c->argv[j + 1], 1, LONG_MAX / 16, &count, "ERR COUNT must be > 0") != OK) return;
            j++;
        } else if (arg_is(c->argv[j], "justid")) {
            justid = 1;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    kobj *o;
    sgroup *g = lookup_group_or_reply(c, &o);
    if (!g) return;
    prop_prevent(); /* claims and drops go out as XCLAIM / XACK */
    stream *s = o->ptr;
    /* Claim first, reply after: the reply starts with the cursor, which is
     * known only at the end.  ids[0 .. nclaimed) claimed, then the ids of
     * entries found deleted (their nacks dropped) from the top down. */
    /* At most count entries are claimed or found gone, and no more than
     * the PEL holds: the lists and the claims' room are taken at that size
     * before the first change, so the loop cannot run out of memory. */
    size_t cap = pel_len(&g->pel) < (size_t)count ? pel_len(&g->pel) : (size_t)count, nclaimed = 0, ngone = 0;
    long long attempts = count * 10, now = time_ms();
    sid *ids = km_malloc(sizeof(sid) * (cap ? cap : 1)), *gone = km_malloc(sizeof(sid) * (cap ? cap : 1));
    claim_res res;
    if (!ids || !gone || claim_reserve(&res, g, c->argv[3], cap, 0, now) != OK) {
        km_free(ids);
        km_free(gone);
        reply_error(c, "ERR out of memory");
        return;
    }
    sconsumer *cons = NULL;
    size_t i = pel_lower_bound(&g->pel, &start);
    while (attempts-- && count) {
        if (i >= pel_len(&g->pel)) break;
        assert(nclaimed + ngone < cap || cap == 0);
        nack *k = pel_at(&g->pel, i);
        sid id = k->id;
        if (!stream_has(s, &id)) {
            prop_ack(c->db, c->argv[1], g, &id);
            nack_drop(g, k); /* index i now holds the next one */
            gone[ngone++] = id;
            count--;
            continue;
        }
        if (minidle && now - k->delivery_time < minidle) {
            i++;
            continue;
        }
        if (!cons) cons = claim_consumer(&res, g, c->db, c->argv[1], now);
        int moved = nack_move(k, cons);
        assert(moved == OK); /* room reserved in cons's PEL */
        (void)moved;
        k->delivery_time = now;
        if (!justid) k->delivery_count++;
        prop_claim(c->db, c->argv[1], g, k);
        ids[nclaimed++] = id;
        count--;
        i++;
    }
    sid cursor = {0, 0};
    if (i < pel_len(&g->pel)) cursor = pel_at(&g->pel, i)->id;
    reply_array_len(c, 3);
    reply_sid(c, &cursor);
    reply_array_len(c, (long)nclaimed);
    for (size_t x = 0; x < nclaimed; x++) {
        if (justid) reply_sid(c, &ids[x]);
        else if (!reply_entry_by_id(c, s, &ids[x])) reply_null(c);
    }
    reply_array_len(c, (long)ngone);
    for (size_t x = 0; x < ngone; x++) reply_sid(c, &gone[x]);
    claim_release(&res);
    km_free(ids);
    km_free(gone);
}

/* ------------------------------------------------------------- XGROUP */

void xgroup_cmd(client *c) {
    static const char *help[] = {
        "CREATE <key> <groupname> <id|$> [option]",
        "    Create a new consumer group. Options are:",
        "    * MKSTREAM",
        "      Create the empty stream if it does not exist.",
        "    * ENTRIESREAD entries_read",
        "      Set the group's entries_read counter (internal use).",
        "CREATECONSUMER <key> <groupname> <consumer>",
        "    Create a new consumer in the specified group.",
        "DELCONSUMER <key> <groupname> <consumer>",
        "    Remove the specified consumer.",
        "DESTROY <key> <groupname>",
        "    Remove the specified group.",
        "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
        "    Set the current group ID and entries_read counter.",
        NULL};
    const dstr opt = c->argv[1];
    stream *s = NULL;
    sgroup *g = NULL;
    int mkstream = 0;
    long long entries_read = INVALID_ENTRIES_READ;
    if (c->argc >= 4) {
        if (arg_is(opt, "create") || arg_is(opt, "setid")) {
            int create = arg_is(opt, "create");
            int i = 5;
            while (i < c->argc) {
                if (create && arg_is(c->argv[i], "mkstream")) {
                    mkstream = 1;
                    i++;
                } else if (arg_is(c->argv[i], "entriesread") && i + 1 < c->argc) {
                    if (arg_ll(c, c->argv[i + 1], &entries_read) != OK) return;
                    if (entries_read < 0 && entries_read != INVALID_ENTRIES_READ) {
                        reply_error(c, "ERR value for ENTRIESREAD must be positive or -1");
                        return;
                    }
                    i += 2;
                } else {
                    reply_subcommand_syntax_error(c);
                    return;
                }
            }
        }
        kobj *o = db_lookup_write(c, c->argv[2]);
        if (o) {
            if (db_check_type(c, o, OBJ_STREAM)) return;
            s = o->ptr;
        }
        if (!mkstream) {
            if (!s) {
                reply_error(c, "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you "
                               "may want to use the MKSTREAM option to create an empty stream automatically.");
                return;
            }
            g = sgroup_find(s, c->argv[3], dstr_len(c->argv[3]));
            if (!g && (arg_is(opt, "setid") || arg_is(opt, "createconsumer") || arg_is(opt, "delconsumer"))) {
                reply_errorf(c, "NOGROUP No such consumer group '%s' for key name '%s'", c->argv[3], c->argv[2]);
                return;
            }
        }
    }
    if (c->argc == 2 && arg_is(opt, "help")) {
        reply_help(c, "XGROUP", help);
    } else if (arg_is(opt, "create") && c->argc >= 5 && c->argc <= 8) {
        sid id;
        if (strcmp(c->argv[4], "$") == 0) {
            id = s ? s->last_id : (sid){0, 0};
        } else if (parse_strict_id(c, c->argv[4], &id, NULL) != OK) {
            return;
        }
        if (!s) {
            kobj *o = create_stream_key(c->db, c->argv[2]);
            if (!o) {
                reply_error(c, "ERR out of memory");
                return;
            }
            s = o->ptr;
            db_signal_modified(c->db, c->argv[2]);
        }
        int oom;
        if (sgroup_create(s, c->argv[3], dstr_len(c->argv[3]), &id, entries_read, &oom)) {
            reply_ok(c);
            notify("xgroup-create", c->argv[2], c->db);
        } else if (oom) {
            reply_error(c, "ERR out of memory");
        } else {
            reply_error(c, "BUSYGROUP Consumer Group name already exists");
        }
    } else if (arg_is(opt, "setid") && (c->argc == 5 || c->argc == 7)) {
        sid id;
        if (strcmp(c->argv[4], "$") == 0) id = s->last_id;
        else if (parse_id_generic(c, c->argv[4], &id, 0, 0, NULL, 0) != OK) return;
        g->last_id = id;
        g->entries_read = entries_read;
        reply_ok(c);
        notify("xgroup-setid", c->argv[2], c->db);
    } else if (arg_is(opt, "destroy") && c->argc == 4) {
        if (g && sgroup_destroy(s, c->argv[3], dstr_len(c->argv[3]))) {
            reply_ll(c, 1);
            notify("xgroup-destroy", c->argv[2], c->db);
            block_signal_key(c->db, c->argv[2]); /* XREADGROUP waiters get NOGROUP */
        } else {
            reply_ll(c, 0);
        }
    } else if (arg_is(opt, "createconsumer") && c->argc == 5) {
        if (sconsumer_find(g, c->argv[4], dstr_len(c->argv[4]))) {
            reply_ll(c, 0);
        } else if (!sconsumer_create(g, c->argv[4], dstr_len(c->argv[4]), time_ms())) {
            reply_error(c, "ERR out of memory");
        } else {
            reply_ll(c, 1);
            notify("xgroup-createconsumer", c->argv[2], c->db);
        }
    } else if (arg_is(opt, "delconsumer") && c->argc == 5) {
        sconsumer *k = sconsumer_find(g, c->argv[4], dstr_len(c->argv[4]));
        reply_ll(c, k ? (long long)sconsumer_delete(g, k) : 0);
        if (k) notify("xgroup-delconsumer", c->argv[2], c->db);
    } else {
        reply_subcommand_syntax_error(c);
    }
}

/* -------------------------------------------------------------- XINFO */

static void xinfo_stream(client *c, stream *s) {
    int full = 0;
    long long count = 10;
    int argc = c->argc - 3;
    if (argc > 0) {
        if (!arg_is(c->argv[3], "full")) {
            reply_subcommand_syntax_error(c);
            return;
        }
        full = 1;
        if (argc > 1) {
            if (argc != 3 || !arg_is(c->argv[4], "count")) {
                reply_subcommand_syntax_error(c);
                return;
            }
            if (arg_ll(c, c->argv[5], &count) != OK) return;
            if (count < 0) count = 10;
        }
    }
    reply_map_len(c, full ? 9 : 10);
    reply_bulk_cstr(c, "length");
    reply_ll(c, (long long)s->length);
    reply_bulk_cstr(c, "radix-tree-keys");
    reply_ll(c, (long long)stream_node_count(s));
    reply_bulk_cstr(c, "radix-tree-nodes");
    reply_ll(c, (long long)stream_rax_nodes(s));
    reply_bulk_cstr(c, "last-generated-id");
    reply_sid(c, &s->last_id);
    reply_bulk_cstr(c, "max-deleted-entry-id");
    reply_sid(c, &s->max_deleted);
    reply_bulk_cstr(c, "entries-added");
    reply_ll(c, (long long)s->entries_added);
    reply_bulk_cstr(c, "recorded-first-entry-id");
    reply_sid(c, &s->first_id);
    static const sid lo = {0, 0}, hi = {UINT64_MAX, UINT64_MAX};
    if (!full) {
        reply_bulk_cstr(c, "groups");
        reply_ll(c, (long long)s->ngroups);
        siter it;
        sentry e;
        reply_bulk_cstr(c, "first-entry");
        siter_start(&it, s, &lo, &hi, 0);
        if (siter_next(&it, &e)) reply_entry(c, &e);
        else reply_null(c);
        reply_bulk_cstr(c, "last-entry");
        siter_start(&it, s, &lo, &hi, 1);
        if (siter_next(&it, &e)) reply_entry(c, &e);
        else reply_null(c);
        return;
    }
    reply_bulk_cstr(c, "entries");
    reply_range(c, s, &lo, &hi, count, 0, NULL, NULL, 0, NULL, NULL, NULL);
    reply_bulk_cstr(c, "groups");
    reply_array_len(c, (long)s->ngroups);
    for (size_t gi = 0; gi < s->ngroups; gi++) {
        sgroup *g = s->groups[gi];
        reply_map_len(c, 7);
        reply_bulk_cstr(c, "name");
        reply_bulk_dstr(c, g->name);
        reply_bulk_cstr(c, "last-delivered-id");
        reply_sid(c, &g->last_id);
        reply_bulk_cstr(c, "entries-read");
        reply_entries_read(c, g);
        reply_bulk_cstr(c, "lag");
        reply_lag(c, s, g);
        reply_bulk_cstr(c, "pel-count");
        reply_ll(c, (long long)pel_len(&g->pel));
        reply_bulk_cstr(c, "pending");
        size_t np = pel_len(&g->pel);
        if (count && (size_t)count < np) np = (size_t)count;
        reply_array_len(c, (long)np);
        for (size_t i = 0; i < np; i++) {
            nack *k = pel_at(&g->pel, i);
            reply_array_len(c, 4);
            reply_sid(c, &k->id);
            reply_bulk_dstr(c, k->consumer->name);
            reply_ll(c, k->delivery_time);
            reply_ll(c, (long long)k->delivery_count);
        }
        reply_bulk_cstr(c, "consumers");
        reply_array_len(c, (long)g->nconsumers);
        for (size_t ci = 0; ci < g->nconsumers; ci++) {
            sconsumer *k = g->consumers[ci];
            reply_map_len(c, 4);
            reply_bulk_cstr(c, "name");
            reply_bulk_dstr(c, k->name);
            reply_bulk_cstr(c, "seen-time");
            reply_ll(c, k->seen_time);
            reply_bulk_cstr(c, "pel-count");
            reply_ll(c, (long long)pel_len(&k->pel));
            reply_bulk_cstr(c, "pending");
            size_t kp = pel_len(&k->pel);
            if (count && (size_t)count < kp) kp = (size_t)count;
            reply_array_len(c, (long)kp);
            for (size_t i = 0; i < kp; i++) {
                nack *x = pel_at(&k->pel, i);
                reply_array_len(c, 3);
                reply_sid(c, &x->id);
                reply_ll(c, x->delivery_time);
                reply_ll(c, (long long)x->delivery_count);
            }
        }
    }
}

void xinfo_cmd(client *c) {
    static const char *help[] = {
        "CONSUMERS <key> <groupname>",
        "    Show consumers of <groupname>.",
        "GROUPS <key>",
        "    Show the stream consumer groups.",
        "STREAM <key> [FULL [COUNT <count>]",
        "    Show information about the stream.",
        NULL};
    const dstr opt = c->argv[1];
    if (arg_is(opt, "help")) {
        reply_help(c, "XINFO", help);
        return;
    }
    kobj *o = db_lookup_read(c, c->argv[2]);
    if (!o) {
        reply_error(c, "ERR no such key");
        return;
    }
    if (db_check_type(c, o, OBJ_STREAM)) return;
    stream *s = o->ptr;
    if (arg_is(opt, "consumers")) {
        sgroup *g = sgroup_find(s, c->argv[3], dstr_len(c->argv[3]));
        if (!g) {
            reply_errorf(c, "NOGROUP No such consumer group '%s' for key name '%s'", c->argv[3], c->argv[2]);
            return;
        }
        long long now = time_ms();
        reply_array_len(c, (long)g->nconsumers);
        for (size_t i = 0; i < g->nconsumers; i++) {
            sconsumer *k = g->consumers[i];
            long long idle = now - k->seen_time;
            reply_map_len(c, 3);
            reply_bulk_cstr(c, "name");
            reply_bulk_dstr(c, k->name);
            reply_bulk_cstr(c, "pending");
            reply_ll(c, (long long)pel_len(&k->pel));
            reply_bulk_cstr(c, "idle");
            reply_ll(c, idle < 0 ? 0 : idle);
        }
    } else if (arg_is(opt, "groups")) {
        reply_array_len(c, (long)s->ngroups);
        for (size_t i = 0; i < s->ngroups; i++) {
            sgroup *g = s->groups[i];
            reply_map_len(c, 6);
            reply_bulk_cstr(c, "name");
            reply_bulk_dstr(c, g->name);
            reply_bulk_cstr(c, "consumers");
            reply_ll(c, (long long)g->nconsumers);
            reply_bulk_cstr(c, "pending");
            reply_ll(c, (long long)pel_len(&g->pel));
            reply_bulk_cstr(c, "last-delivered-id");
            reply_sid(c, &g->last_id);
            reply_bulk_cstr(c, "entries-read");
            reply_entries_read(c, g);
            reply_bulk_cstr(c, "lag");
            reply_lag(c, s, g);
        }
    } else if (arg_is(opt, "stream")) {
        xinfo_stream(c, s);
    } else {
        reply_subcommand_syntax_error(c);
    }
}
