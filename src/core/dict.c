/* dict.c - chained hash table with incremental rehashing.
 *
 * Why incremental: a keyspace of millions of keys cannot be rehashed in one
 * go without stalling every client for seconds.  While a resize is under way
 * the dict holds two tables; each lookup/insert/delete moves one bucket from
 * the old table to the new one, and the server cron moves more for a
 * millisecond at a time.  New keys always go into the new table, lookups
 * check both.
 *
 * Tables are powers of two.  They grow when the load reaches 1 and shrink
 * (from the cron, dict_resize_to_fit) when it falls under 10%.
 *
 * SCAN keeps no state on the server: the cursor is a bucket index that is
 * incremented on its reversed bits.  Because both tables are powers of two,
 * the buckets of the small table map onto groups of buckets of the large one
 * that share the same low bits, and walking the high bits first means no
 * group is skipped when the table grows or shrinks between calls.  Elements
 * can be reported twice, never missed. */
#include "core.h"

#include <string.h>

#define MIN_EXP 2
#define FORCE_RATIO 5

static uint8_t hash_seed[16] = {0x5e, 0x17, 0x9a, 0x23, 0xb1, 0x44, 0x0c, 0xd2,
                                0x7f, 0x68, 0x91, 0x3a, 0xee, 0x05, 0x2b, 0xc4};

void dict_set_hash_seed(const uint8_t seed[16]) { memcpy(hash_seed, seed, 16); }

static uint64_t seed64(void) {
    uint64_t s;
    memcpy(&s, hash_seed, 8);
    return s;
}

uint64_t dict_hash_dstr(const void *key) {
    const dstr s = (const dstr)key;
    return hash_bytes(s, dstr_len(s), seed64());
}

uint64_t dict_hash_dstr_nocase(const void *key) {
    const dstr s = (const dstr)key;
    size_t n = dstr_len(s);
    uint64_t h = seed64() ^ 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + 32);
        h = (h ^ c) * 0x100000001b3ULL;
    }
    return h;
}

int dict_eq_dstr(const void *a, const void *b) {
    size_t la = dstr_len((const dstr)a);
    return la == dstr_len((const dstr)b) && memcmp(a, b, la) == 0;
}

int dict_eq_dstr_nocase(const void *a, const void *b) {
    size_t la = dstr_len((const dstr)a);
    return la == dstr_len((const dstr)b) && strncasecmp(a, b, la) == 0;
}

void dict_free_dstr(void *p) { dstr_free(p); }

static size_t tsize(const dict *d, int t) {
    return d->table[t] ? (size_t)1 << d->size_exp[t] : 0;
}
static size_t tmask(const dict *d, int t) { return tsize(d, t) ? tsize(d, t) - 1 : 0; }

static void reset_table(dict *d, int t) {
    d->table[t] = NULL;
    d->size_exp[t] = 0;
    d->used[t] = 0;
}

dict *dict_create(const dict_type *type) {
    dict *d = km_malloc(sizeof *d);
    if (!d) return NULL;
    d->type = type;
    reset_table(d, 0);
    reset_table(d, 1);
    d->rehash_idx = -1;
    d->pause_rehash = 0;
    d->embed_keys = 0;
    return d;
}

dict *dict_create_embedded(const dict_type *type) {
    dict *d = dict_create(type);
    if (d) d->embed_keys = 1;
    return d;
}

size_t dict_size(const dict *d) { return d->used[0] + d->used[1]; }
size_t dict_buckets(const dict *d) { return tsize(d, 0) + tsize(d, 1); }
int dict_is_rehashing(const dict *d) { return d->rehash_idx != -1; }

size_t dict_table_bytes(const dict *d) {
    return km_usable(d->table[0]) + km_usable(d->table[1]);
}

static void free_entry(dict *d, dict_entry *e) {
    if (d->type->key_free && !d->embed_keys) d->type->key_free(e->key);
    if (d->type->val_free) d->type->val_free(e->v.val);
    km_free(e);
}

static void clear_table(dict *d, int t) {
    size_t n = tsize(d, t);
    for (size_t i = 0; i < n && d->used[t] > 0; i++) {
        dict_entry *e = d->table[t][i];
        while (e) {
            dict_entry *next = e->next;
            free_entry(d, e);
            d->used[t]--;
            e = next;
        }
    }
    km_free(d->table[t]);
    reset_table(d, t);
}

void dict_clear(dict *d) {
    clear_table(d, 0);
    clear_table(d, 1);
    d->rehash_idx = -1;
}

void dict_release(dict *d) {
    if (!d) return;
    dict_clear(d);
    km_free(d);
}

static size_t exp_for(size_t size) {
    size_t e = MIN_EXP;
    while (e < 63 && ((size_t)1 << e) < size) e++;
    return e;
}

/* Creates the table a resize moves into (or the first table). */
static int resize_to(dict *d, size_t size) {
    if (dict_is_rehashing(d)) return DICT_ERR;
    size_t e = exp_for(size);
    if (d->table[0] && e == d->size_exp[0]) return DICT_ERR;
    dict_entry **t = km_calloc(((size_t)1 << e) * sizeof *t);
    if (!t) return DICT_ERR;
    if (!d->table[0]) {
        d->table[0] = t;
        d->size_exp[0] = e;
        return DICT_OK;
    }
    d->table[1] = t;
    d->size_exp[1] = e;
    d->used[1] = 0;
    d->rehash_idx = 0;
    return DICT_OK;
}

int dict_expand(dict *d, size_t size) {
    if (size < d->used[0]) return DICT_ERR;
    return resize_to(d, size);
}

int dict_resize_to_fit(dict *d) {
    if (dict_is_rehashing(d) || !d->table[0]) return DICT_ERR;
    size_t used = d->used[0];
    if (tsize(d, 0) <= ((size_t)1 << MIN_EXP) || used * 10 >= tsize(d, 0))
        return DICT_ERR;
    return resize_to(d, used < 4 ? 4 : used);
}

static void expand_if_needed(dict *d) {
    if (dict_is_rehashing(d)) return;
    if (!d->table[0]) {
        resize_to(d, 4);
        return;
    }
    /* A failed allocation here only means more collisions: not an error. */
    if (d->used[0] >= tsize(d, 0)) resize_to(d, d->used[0] + 1);
}

int dict_rehash(dict *d, int steps) {
    int empty_visits = steps * 10;
    if (!dict_is_rehashing(d)) return 0;
    while (steps-- && d->used[0] != 0) {
        while (d->table[0][d->rehash_idx] == NULL) {
            d->rehash_idx++;
            if (--empty_visits == 0) return 1;
        }
        dict_entry *e = d->table[0][d->rehash_idx];
        while (e) {
            dict_entry *next = e->next;
            size_t h = d->type->hash(e->key) & tmask(d, 1);
            e->next = d->table[1][h];
            d->table[1][h] = e;
            d->used[0]--;
            d->used[1]++;
            e = next;
        }
        d->table[0][d->rehash_idx] = NULL;
        d->rehash_idx++;
    }
    if (d->used[0] == 0) {
        km_free(d->table[0]);
        d->table[0] = d->table[1];
        d->size_exp[0] = d->size_exp[1];
        d->used[0] = d->used[1];
        reset_table(d, 1);
        d->rehash_idx = -1;
        return 0;
    }
    return 1;
}

int dict_rehash_ms(dict *d, int ms) {
    long long start = mono_us();
    int n = 0;
    while (dict_rehash(d, 100)) {
        n += 100;
        if (mono_us() - start > (long long)ms * 1000) break;
    }
    return n;
}

static void rehash_step(dict *d) {
    if (d->pause_rehash == 0) dict_rehash(d, 1);
}

dict_entry *dict_find(dict *d, const void *key) {
    if (dict_size(d) == 0) return NULL;
    if (dict_is_rehashing(d)) rehash_step(d);
    uint64_t h = d->type->hash(key);
    for (int t = 0; t <= 1; t++) {
        if (!d->table[t]) break;
        dict_entry *e = d->table[t][h & tmask(d, t)];
        for (; e; e = e->next)
            if (e->key == key || d->type->key_eq(e->key, key)) return e;
        if (!dict_is_rehashing(d)) break;
    }
    return NULL;
}

void *dict_fetch(dict *d, const void *key) {
    dict_entry *e = dict_find(d, key);
    return e ? e->v.val : NULL;
}

dict_entry *dict_add_raw(dict *d, void *key, dict_entry **existing) {
    if (existing) *existing = NULL;
    if (dict_is_rehashing(d)) rehash_step(d);
    dict_entry *old = dict_find(d, key);
    if (old) {
        if (existing) *existing = old;
        return NULL;
    }
    expand_if_needed(d);
    if (!d->table[0]) return NULL;
    int t = dict_is_rehashing(d) ? 1 : 0;
    dict_entry *e;
    if (d->embed_keys) {
        size_t klen = dstr_len(key);
        if (klen > SIZE_MAX - sizeof *e - 32) return NULL;
        e = km_malloc(sizeof *e + dstr_embed_size(klen));
        if (!e) return NULL;
        e->key = dstr_embed(e + 1, key, klen);
    } else {
        e = km_malloc(sizeof *e);
        if (!e) return NULL;
        e->key = key;
    }
    size_t idx = d->type->hash(key) & tmask(d, t);
    e->v.val = NULL;
    e->next = d->table[t][idx];
    d->table[t][idx] = e;
    d->used[t]++;
    return e;
}

int dict_add(dict *d, void *key, void *val) {
    dict_entry *e = dict_add_raw(d, key, NULL);
    if (!e) return DICT_ERR;
    e->v.val = val;
    return DICT_OK;
}

dict_entry *dict_unlink(dict *d, const void *key) {
    if (dict_size(d) == 0) return NULL;
    if (dict_is_rehashing(d)) rehash_step(d);
    uint64_t h = d->type->hash(key);
    for (int t = 0; t <= 1; t++) {
        if (!d->table[t]) break;
        dict_entry **pp = &d->table[t][h & tmask(d, t)];
        for (; *pp; pp = &(*pp)->next) {
            dict_entry *e = *pp;
            if (e->key == key || d->type->key_eq(e->key, key)) {
                *pp = e->next;
                d->used[t]--;
                e->next = NULL;
                return e;
            }
        }
        if (!dict_is_rehashing(d)) break;
    }
    return NULL;
}

void dict_free_unlinked(dict *d, dict_entry *e) {
    if (e) free_entry(d, e);
}

int dict_delete(dict *d, const void *key) {
    dict_entry *e = dict_unlink(d, key);
    if (!e) return DICT_ERR;
    free_entry(d, e);
    return DICT_OK;
}

dict_entry *dict_random(dict *d) {
    if (dict_size(d) == 0) return NULL;
    if (dict_is_rehashing(d)) rehash_step(d);
    dict_entry *e = NULL;
    while (!e) {
        if (dict_is_rehashing(d)) {
            /* buckets below rehash_idx of table 0 are empty */
            size_t span = tsize(d, 0) + tsize(d, 1) - (size_t)d->rehash_idx;
            size_t i = (size_t)d->rehash_idx + rand_u64() % span;
            e = i >= tsize(d, 0) ? d->table[1][i - tsize(d, 0)] : d->table[0][i];
        } else {
            e = d->table[0][rand_u64() & tmask(d, 0)];
        }
    }
    size_t len = 0;
    for (dict_entry *p = e; p; p = p->next) len++;
    for (size_t k = rand_u64() % len; k; k--) e = e->next;
    return e;
}

size_t dict_sample(dict *d, dict_entry **out, size_t count) {
    size_t size = dict_size(d);
    if (count > size) count = size;
    if (count == 0) return 0;
    for (size_t i = 0; i < count && dict_is_rehashing(d); i++) rehash_step(d);
    size_t maxmask = tmask(d, 0);
    if (dict_is_rehashing(d) && tmask(d, 1) > maxmask) maxmask = tmask(d, 1);
    size_t i = rand_u64() & maxmask, stored = 0, empty = 0;
    size_t maxsteps = count * 10;
    while (stored < count && maxsteps--) {
        for (int t = 0; t <= 1; t++) {
            if (!d->table[t]) continue;
            if (t == 0 && dict_is_rehashing(d) && i < (size_t)d->rehash_idx) continue;
            if (i >= tsize(d, t)) continue;
            dict_entry *e = d->table[t][i];
            if (!e) {
                if (++empty >= 5 && empty > count) {
                    i = rand_u64() & maxmask;
                    empty = 0;
                }
                continue;
            }
            empty = 0;
            for (; e && stored < count; e = e->next) out[stored++] = e;
        }
        i = (i + 1) & maxmask;
    }
    return stored;
}

void dict_iter_init(dict_iter *it, dict *d, int safe) {
    it->d = d;
    it->table = 0;
    it->index = -1;
    it->safe = safe;
    it->entry = it->next = NULL;
}

/* Iterators pause rehashing for their lifetime, so that the bucket they walk
 * does not move under them; the current entry may be deleted. */
dict_entry *dict_next(dict_iter *it) {
    dict *d = it->d;
    for (;;) {
        if (!it->entry) {
            if (it->index == -1 && it->table == 0) d->pause_rehash++;
            it->index++;
            if (it->index >= (long)tsize(d, it->table)) {
                if (dict_is_rehashing(d) && it->table == 0) {
                    it->table = 1;
                    it->index = 0;
                } else {
                    return NULL;
                }
            }
            if (it->index >= (long)tsize(d, it->table)) return NULL;
            it->entry = d->table[it->table][it->index];
        } else {
            it->entry = it->next;
        }
        if (it->entry) {
            it->next = it->entry->next;
            return it->entry;
        }
    }
}

void dict_iter_done(dict_iter *it) {
    if (!(it->index == -1 && it->table == 0)) it->d->pause_rehash--;
    it->index = -1;
    it->table = 0;
}

static unsigned long rev_bits(unsigned long v) {
    unsigned long s = 8 * sizeof v, mask = ~0UL;
    while ((s >>= 1) > 0) {
        mask ^= (mask << s);
        v = ((v >> s) & mask) | ((v << s) & ~mask);
    }
    return v;
}

/* Increments the reversed cursor under `mask`: set the bits above the mask
 * so the carry walks only the masked high-to-low order. */
static unsigned long next_cursor(unsigned long v, unsigned long mask) {
    v |= ~mask;
    v = rev_bits(v);
    v++;
    return rev_bits(v);
}

static void scan_bucket(dict_entry *e, dict_scan_fn *fn, void *priv) {
    while (e) {
        dict_entry *next = e->next; /* fn may not delete, but be defensive */
        fn(priv, e);
        e = next;
    }
}

unsigned long dict_scan(dict *d, unsigned long v, dict_scan_fn *fn, void *priv) {
    if (dict_size(d) == 0) return 0;
    d->pause_rehash++;
    if (!dict_is_rehashing(d)) {
        unsigned long m0 = tmask(d, 0);
        scan_bucket(d->table[0][v & m0], fn, priv);
        v = next_cursor(v, m0);
    } else {
        int small = tsize(d, 0) <= tsize(d, 1) ? 0 : 1, large = 1 - small;
        unsigned long m0 = tmask(d, small), m1 = tmask(d, large);
        scan_bucket(d->table[small][v & m0], fn, priv);
        /* Every large-table bucket that expands the small one. */
        do {
            scan_bucket(d->table[large][v & m1], fn, priv);
            v = next_cursor(v, m1);
        } while (v & (m0 ^ m1));
    }
    d->pause_rehash--;
    return v;
}
