/* db.c - the keyspace: 16 (configurable) databases of key -> object, plus a
 * second dict per database holding the expire time of keys that have one.
 *
 * The expires dict shares its key strings with the main dict (it does not
 * own them), so a key is always removed from expires first.  Expiry is
 * lazy (every lookup checks the key's deadline) and active (a cron cycle
 * walks the expires dict with the SCAN cursor and deletes what is due,
 * continuing while more than 10% of what it samples turns out expired, so
 * memory held by dead keys stays bounded without a full sweep). */
#include "server.h"
#include "aof.h"

#include <assert.h>

#include <string.h>

/* Keys are embedded in their dict entries (dict_create_embedded): one
 * allocation per key instead of an entry plus a string. */
static const dict_type keyspace_type = {dict_hash_dstr, dict_eq_dstr, NULL, obj_free_value};
static const dict_type expires_type = {dict_hash_dstr, dict_eq_dstr, NULL, NULL};

int db_init_all(char *err, size_t errlen) {
    srv.dbs = km_calloc(sizeof(kdb) * (size_t)srv.dbnum);
    if (!srv.dbs) goto oom;
    for (int i = 0; i < srv.dbnum; i++) {
        srv.dbs[i].id = i;
        srv.dbs[i].keys = dict_create_embedded(&keyspace_type);
        srv.dbs[i].expires = dict_create(&expires_type);
        if (!srv.dbs[i].keys || !srv.dbs[i].expires) goto oom;
    }
    return OK;
oom:
    snprintf(err, errlen, "out of memory creating the databases");
    return ERR;
}

kdb *db_get(int id) { return id >= 0 && id < srv.dbnum ? &srv.dbs[id] : NULL; }

/* ---------------------------------------------- whole sets of databases */

/* A loader (rdb_load.c) fills a fresh array and the server takes it only
 * once the whole file checked out: a corrupt file never leaves half a
 * dataset behind. */
kdb *db_array_new(int n) {
    kdb *dbs = km_calloc(sizeof(kdb) * (size_t)n);
    if (!dbs) return NULL;
    for (int i = 0; i < n; i++) {
        dbs[i].id = i;
        dbs[i].keys = dict_create_embedded(&keyspace_type);
        dbs[i].expires = dict_create(&expires_type);
        if (!dbs[i].keys || !dbs[i].expires) {
            db_array_free(dbs, n);
            return NULL;
        }
    }
    return dbs;
}

void db_array_free(kdb *dbs, int n) {
    if (!dbs) return;
    for (int i = 0; i < n; i++) {
        if (dbs[i].expires) dict_release(dbs[i].expires); /* first: it borrows the keys */
        if (dbs[i].keys) dict_release(dbs[i].keys);
    }
    km_free(dbs);
}

/* Swaps the contents of the live databases with those of dbs. */
static void swap_live(kdb *dbs) {
    for (int i = 0; i < srv.dbnum; i++) {
        kdb *x = &srv.dbs[i], *y = &dbs[i];
        dict *k = x->keys, *e = x->expires;
        x->keys = y->keys;
        x->expires = y->expires;
        y->keys = k;
        y->expires = e;
        x->avg_ttl = 0;
        x->expire_cursor = 0;
    }
}

kdb *db_array_take(void) {
    kdb *fresh = db_array_new(srv.dbnum);
    if (fresh) swap_live(fresh);
    return fresh;
}

void db_array_put_back(kdb *old) {
    swap_live(old);
    db_array_free(old, srv.dbnum);
}

/* Moves the contents of dbs (srv.dbnum of them) into the live databases,
 * whose old contents are freed with the array.  Clients keep pointing at
 * srv.dbs; WATCHed keys are touched. */
void db_array_install(kdb *dbs) {
    for (int i = 0; i < srv.dbnum; i++) multi_touch_db(&srv.dbs[i]);
    swap_live(dbs);
    db_array_free(dbs, srv.dbnum);
}

long long db_get_expire(kdb *db, const dstr key) {
    if (dict_size(db->expires) == 0) return -1;
    dict_entry *e = dict_find(db->expires, key);
    return e ? e->v.s64 : -1;
}

int db_delete(kdb *db, const dstr key) {
    if (dict_size(db->expires)) dict_delete(db->expires, key);
    if (dict_delete(db->keys, key) != DICT_OK) return 0;
    db_signal_modified(db, key);
    /* an XREADGROUP waiter is answered when its stream goes away (a list
     * or zset waiter just stays blocked); a no-op when nobody waits */
    block_signal_key(db, key);
    return 1;
}

int db_expire_if_needed(kdb *db, const dstr key) {
    /* While an AOF replays, keys die only by the DELs it holds: its
     * commands ran when those keys were alive. */
    if (srv.loading) return 0;
    long long when = db_get_expire(db, key);
    if (when < 0 || when > srv.now_ms) return 0;
    srv.stat_expiredkeys++;
    prop_del(db->id, key); /* before the key dies: the DEL names it */
    if (db_delete(db, key)) srv.dirty_expired++;
    notify_keyspace_event(NOTIFY_EXPIRED, "expired", key, db->id);
    return 1;
}

kobj *db_lookup(kdb *db, const dstr key, int flags) {
    db_expire_if_needed(db, key);
    dict_entry *e = dict_find(db->keys, key);
    if (!e) return NULL;
    kobj *o = e->v.val;
    if (!(flags & LOOKUP_NOTOUCH)) o->lru = lru_clock_now();
    return o;
}

kobj *db_lookup_read(client *c, const dstr key) { return db_lookup_read_flags(c, key, LOOKUP_NONE); }

/* A read lookup: counts the hit or miss and raises "keymiss", as Redis's
 * lookupKeyRead does for every read command (EXISTS, TYPE, TTL included). */
kobj *db_lookup_read_flags(client *c, const dstr key, int flags) {
    kobj *o = db_lookup(c->db, key, flags);
    if (o) {
        srv.stat_keyspace_hits++;
    } else {
        srv.stat_keyspace_misses++;
        notify_keyspace_event(NOTIFY_KEY_MISS, "keymiss", key, c->db->id);
    }
    return o;
}

kobj *db_lookup_write(client *c, const dstr key) {
    return db_lookup(c->db, key, LOOKUP_WRITE);
}

/* Adds key without touching its WATCHers: Redis's dbAdd, for a command
 * that decides afterwards whether it changed anything (BITFIELD with every
 * write refused by OVERFLOW FAIL creates the key but changes nothing). */
int db_add_unsignalled(kdb *db, const dstr key, kobj *val) {
    if (dict_add(db->keys, key, val) != DICT_OK) return ERR; /* copies key */
    if (val->type == OBJ_LIST || val->type == OBJ_ZSET || val->type == OBJ_STREAM)
        block_signal_key(db, key);
    notify_keyspace_event(NOTIFY_NEW, "new", key, db->id);
    return OK;
}

int db_add(kdb *db, const dstr key, kobj *val) {
    if (db_add_unsignalled(db, key, val) != OK) return ERR;
    db_signal_modified(db, key);
    return OK;
}

void db_replace(kdb *db, dict_entry *de, kobj *val) {
    kobj *old = de->v.val;
    de->v.val = val;
    obj_decref(old);
    db_signal_modified(db, de->key);
    block_signal_key(db, de->key); /* as db_delete: the old value is gone */
}

int db_set(kdb *db, const dstr key, kobj *val, int keep_ttl) {
    dict_entry *de = dict_find(db->keys, key);
    if (!de) return db_add(db, key, val);
    db_replace(db, de, val);
    if (!keep_ttl) db_remove_expire(db, key);
    return OK;
}

int db_exists(kdb *db, const dstr key) { return db_lookup(db, key, LOOKUP_NOTOUCH) != NULL; }

/* The expire entry of the key in de (its key string, which expires
 * borrows), added when missing: NULL when out of memory. */
static dict_entry *expire_slot(kdb *db, dict_entry *de) {
    dict_entry *existing;
    dict_entry *e = dict_add_raw(db->expires, de->key, &existing);
    return e ? e : existing;
}

int db_set_expire(kdb *db, const dstr key, long long when_ms) {
    dict_entry *kde = dict_find(db->keys, key);
    if (!kde) return ERR;
    dict_entry *e = expire_slot(db, kde);
    if (!e) return ERR;
    e->v.s64 = when_ms;
    return OK;
}

int db_set_ttl(kdb *db, const dstr key, kobj *val, long long when_ms) {
    if (when_ms < 0) return db_set(db, key, val, 0);
    dict_entry *de = dict_find(db->keys, key);
    if (de) {
        /* the expire entry first: the one step that can fail, taken
         * before the old value is let go */
        dict_entry *e = expire_slot(db, de);
        if (!e) return ERR;
        e->v.s64 = when_ms;
        db_replace(db, de, val);
        return OK;
    }
    if (db_add(db, key, val) != OK) return ERR;
    de = dict_find(db->keys, key);
    assert(de); /* just added */
    dict_entry *e = expire_slot(db, de);
    if (!e) {
        /* undo the add: the caller still owns val */
        val->refcount++;
        dict_delete(db->keys, key);
        return ERR;
    }
    e->v.s64 = when_ms;
    return OK;
}

int db_remove_expire(kdb *db, const dstr key) {
    if (dict_size(db->expires) == 0) return 0;
    return dict_delete(db->expires, key) == DICT_OK;
}

long long db_flush(kdb *db) {
    long long n = (long long)dict_size(db->keys);
    dict_clear(db->expires);
    dict_clear(db->keys);
    db->avg_ttl = 0;
    db->expire_cursor = 0;
    block_signal_flushed(db); /* as db_delete: XREADGROUP waiters of a gone stream */
    return n;
}

int db_swap(int a, int b) {
    kdb *x = db_get(a), *y = db_get(b);
    if (!x || !y) return ERR;
    kdb tmp = *x;
    x->keys = y->keys;
    x->expires = y->expires;
    x->avg_ttl = y->avg_ttl;
    x->expire_cursor = y->expire_cursor;
    y->keys = tmp.keys;
    y->expires = tmp.expires;
    y->avg_ttl = tmp.avg_ttl;
    y->expire_cursor = tmp.expire_cursor;
    return OK;
}

int db_check_type(client *c, kobj *o, int type) {
    if (o && (int)o->type != type) {
        reply_wrong_type(c);
        return 1;
    }
    return 0;
}

/* Every write to a key passes here: it records that the running command
 * wrote, counts one change for the save points (persist.c) and invalidates
 * the WATCHes on the key (t_multi.c).  Keyspace notifications are sent by
 * the commands, which know the event's name. */
void db_signal_modified(kdb *db, const dstr key) {
    srv.executing_db_modified = 1;
    srv.dirty++; /* INFO rdb_changes_since_last_save, save points */
    multi_touch_key(db, key);
}

/* ---------------------------------------------------------- active expiry */

#define EXPIRE_KEYS_PER_LOOP 20
#define EXPIRE_STALE_PERC 10
#define EXPIRE_SLOW_CYCLE_PERC 25
#define EXPIRE_FAST_DURATION_US 1000

typedef struct expire_sample {
    dstr keys[EXPIRE_KEYS_PER_LOOP * 4];
    int n, sampled;
    long long ttl_sum;
    int ttl_samples;
} expire_sample;

static void expire_scan_cb(void *priv, dict_entry *e) {
    expire_sample *s = priv;
    s->sampled++;
    long long ttl = e->v.s64 - srv.now_ms;
    if (ttl <= 0) {
        if (s->n < (int)(sizeof s->keys / sizeof s->keys[0])) s->keys[s->n++] = e->key;
    } else {
        /* TTLs near LLONG_MAX (PXAT far in the future) would overflow. */
        s->ttl_sum = ttl > LLONG_MAX - s->ttl_sum ? LLONG_MAX : s->ttl_sum + ttl;
        s->ttl_samples++;
    }
}

/* One pass of sampling in one db.  Returns the percentage found expired. */
static int expire_db_pass(kdb *db, int *expired_out) {
    expire_sample s;
    s.n = s.sampled = s.ttl_samples = 0;
    s.ttl_sum = 0;
    int buckets = 0;
    do {
        db->expire_cursor = dict_scan(db->expires, db->expire_cursor, expire_scan_cb, &s);
        buckets++;
    } while (db->expire_cursor && s.sampled < EXPIRE_KEYS_PER_LOOP &&
             buckets < EXPIRE_KEYS_PER_LOOP * 20);
    for (int i = 0; i < s.n; i++) {
        dstr k = dstr_dup(s.keys[i]); /* the key dies inside db_delete */
        if (!k) break;
        if (db_expire_if_needed(db, k)) (*expired_out)++;
        dstr_free(k);
    }
    if (s.ttl_samples) {
        long long avg = s.ttl_sum / s.ttl_samples;
        db->avg_ttl = db->avg_ttl ? (db->avg_ttl / 50) * 49 + avg / 50 : avg;
    }
    return s.sampled ? s.n * 100 / s.sampled : 0;
}

void db_active_expire_cycle(int fast) {
    static int current_db;
    static long long last_fast_start;
    long long start = mono_us();
    long long limit_us;
    if (fast) {
        if (srv.stat_expired_stale_perc_x100 < EXPIRE_STALE_PERC * 100) return;
        if (start < last_fast_start + EXPIRE_FAST_DURATION_US * 2) return;
        last_fast_start = start;
        limit_us = EXPIRE_FAST_DURATION_US;
    } else {
        limit_us = 1000000LL * EXPIRE_SLOW_CYCLE_PERC / srv.hz / 100;
    }
    int sampled_pct_sum = 0, passes = 0;
    for (int j = 0; j < srv.dbnum; j++) {
        kdb *db = &srv.dbs[current_db % srv.dbnum];
        current_db++;
        if (dict_size(db->expires) == 0) continue;
        int pct;
        do {
            int expired = 0;
            pct = expire_db_pass(db, &expired);
            sampled_pct_sum += pct;
            passes++;
            if (mono_us() - start > limit_us) goto out;
        } while (pct > EXPIRE_STALE_PERC && dict_size(db->expires));
    }
out:
    srv.stat_expire_cycle_time_used += mono_us() - start;
    long long cur = passes ? sampled_pct_sum * 100 / passes : 0;
    srv.stat_expired_stale_perc_x100 = (cur + srv.stat_expired_stale_perc_x100 * 19) / 20;
}

/* Resizes and rehashes the dicts a little each cron tick. */
void db_cron(void) {
    for (int i = 0; i < srv.dbnum; i++) {
        kdb *db = &srv.dbs[i];
        dict_resize_to_fit(db->keys);
        dict_resize_to_fit(db->expires);
        if (dict_rehash_ms(db->keys, 1)) continue;
        dict_rehash_ms(db->expires, 1);
    }
}
