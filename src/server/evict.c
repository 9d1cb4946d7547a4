/* evict.c - maxmemory: which key to give up when memory is over the limit.
 *
 * Before a command that may grow memory runs, the server frees keys until
 * used memory is back under maxmemory, or answers OOM under noeviction.
 * Like Redis, the choice is approximate: a few keys are sampled from each
 * database (maxmemory-samples) and the best candidate among them goes -
 * the least recently used, the nearest to expiring, or any.  Sampling keeps
 * the cost per eviction constant whatever the size of the keyspace. */
#include "server.h"
#include "aof.h"

#define MAX_SAMPLES 64

size_t evict_used_memory(void) { return km_used(); }

static int policy_volatile(int p) {
    return p == EVICT_VOLATILE_LRU || p == EVICT_VOLATILE_RANDOM ||
           p == EVICT_VOLATILE_TTL || p == EVICT_VOLATILE_LFU;
}

/* Larger is a better victim. */
static long long score(int policy, kdb *db, dict_entry *e) {
    if (policy == EVICT_VOLATILE_TTL) return LLONG_MAX - e->v.s64;
    kobj *o = policy_volatile(policy) ? dict_fetch(db->keys, e->key) : e->v.val;
    return o ? (long long)obj_idle_ms(o) : 0;
}

/* Finds one victim key over all databases; returns its db or NULL. */
static kdb *pick_victim(dstr *key_out) {
    int policy = srv.maxmemory_policy;
    int random_pick = policy == EVICT_ALLKEYS_RANDOM || policy == EVICT_VOLATILE_RANDOM;
    kdb *best_db = NULL;
    dstr best_key = NULL;
    long long best_score = -1;
    int samples = srv.maxmemory_samples > MAX_SAMPLES ? MAX_SAMPLES : srv.maxmemory_samples;
    for (int i = 0; i < srv.dbnum; i++) {
        kdb *db = &srv.dbs[i];
        dict *d = policy_volatile(policy) ? db->expires : db->keys;
        if (dict_size(d) == 0) continue;
        if (random_pick) {
            dict_entry *e = dict_random(d);
            *key_out = e->key;
            return db;
        }
        dict_entry *pool[MAX_SAMPLES];
        size_t n = dict_sample(d, pool, (size_t)samples);
        for (size_t k = 0; k < n; k++) {
            long long s = score(policy, db, pool[k]);
            if (s > best_score) {
                best_score = s;
                best_db = db;
                best_key = pool[k]->key;
            }
        }
    }
    *key_out = best_key;
    return best_db;
}

int evict_if_needed(void) {
    if (srv.maxmemory == 0) return OK;
    if (evict_used_memory() <= srv.maxmemory) return OK;
    if (srv.maxmemory_policy == EVICT_NOEVICTION) return ERR;
    while (evict_used_memory() > srv.maxmemory) {
        dstr key;
        kdb *db = pick_victim(&key);
        if (!db) return ERR; /* nothing left that the policy may evict */
        dstr copy = dstr_dup(key);
        if (!copy) return ERR;
        prop_del(db->id, copy);
        db_delete(db, copy);
        srv.stat_evictedkeys++;
        notify_keyspace_event(NOTIFY_EVICTED, "evicted", copy, db->id);
        dstr_free(copy);
    }
    return OK;
}
