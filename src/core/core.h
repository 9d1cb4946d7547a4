/* core.h - the public API of libcore, the utilities every inferkv part shares.
 *
 * One header for the library, one data structure per .c file:
 *   mem.c     malloc wrappers that count the bytes in use (INFO used_memory,
 *             maxmemory) - the count is exact because it uses the size the
 *             allocator really handed out (malloc_usable_size).
 *   dstr.c    binary-safe dynamic strings whose pointer is a plain char *
 *             (NUL-terminated, so it can go to printf), length in a header.
 *   dict.c    chained hash table with incremental rehashing and a stateless
 *             reverse-binary SCAN cursor.
 *   util.c    number <-> text conversions with Redis's exact rules, glob
 *             matching, hashing, monotonic clocks.
 *   cqueue.c  a thread-safe completion queue that wakes an event loop through
 *             an eventfd (engine threads post results, the loop drains them).
 */
#ifndef INFERKV_CORE_H
#define INFERKV_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* ---------------------------------------------------------------- mem.c */
/* Every allocation of the keyspace goes through these so that used memory is
 * known.  They return NULL on failure; callers check. */
void *km_malloc(size_t n);
void *km_calloc(size_t n);
void *km_realloc(void *p, size_t n);
void km_free(void *p);
/* km_malloc / km_realloc for another library's seam, which passes the
 * address its own caller returns to (the site a failure is reported at). */
void *km_malloc_at(size_t n, const void *site);
void *km_realloc_at(void *p, size_t n, const void *site);
char *km_strdup(const char *s);
size_t km_used(void);        /* bytes currently allocated through km_* */
size_t km_usable(void *p);   /* real size of an allocation */
/* Test hook: make the Nth next allocation fail (0 disables).  Only that
 * one fails; km_fail_site() is then the code address it returned NULL to
 * (the caller's call site; NULL while none has failed), km_fail_calls()
 * how many allocations were counted since km_fail_after. */
void km_fail_after(long n);
void *km_fail_site(void);
long km_fail_calls(void);
/* One allocation made elsewhere (another library's seam) counted against
 * the same countdown: 1 when it is the one to fail. */
int km_fail_now(void *site);
/* How many allocations have returned NULL so far (memory out, or a failure
 * injected): a caller that must not go on after any - a loader replaying
 * commands whose errors it cannot see - compares it before and after. */
unsigned long km_failures(void);

/* --------------------------------------------------------------- dstr.c */
typedef char *dstr;

dstr dstr_newlen(const void *init, size_t len); /* NULL on OOM */
dstr dstr_new(const char *s);
dstr dstr_empty(void);
dstr dstr_dup(const dstr s);
dstr dstr_fromll(long long v);
void dstr_free(dstr s);
size_t dstr_len(const dstr s);
size_t dstr_avail(const dstr s);
size_t dstr_alloc_size(const dstr s); /* header + buffer, for accounting */
/* Grows so that at least `add` more bytes fit; NULL on OOM (s untouched). */
dstr dstr_reserve(dstr s, size_t add);
dstr dstr_catlen(dstr s, const void *p, size_t len); /* NULL on OOM */
dstr dstr_cat(dstr s, const char *p);
dstr dstr_catfmt(dstr s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* For code that owns s and builds it in several steps: the dstr_cat* calls
 * above leave s alive when they fail, so `s = dstr_cat(s, ...)` would leak
 * it.  `s = dstr_or_free(s, dstr_cat(s, ...))` frees s when the append
 * returned NULL, so the builder ends with s NULL and nothing allocated. */
dstr dstr_or_free(dstr s, dstr appended);
/* Sets the length to `len` (<= capacity), adding the terminating NUL. */
void dstr_setlen(dstr s, size_t len);
/* Drops the first `n` bytes (moves the rest down). */
void dstr_consume(dstr s, size_t n);
/* Keeps [start, end] inclusive, Redis GETRANGE index rules already applied. */
void dstr_range(dstr s, size_t start, size_t len);
/* Gives back unused capacity. */
dstr dstr_shrink(dstr s);
/* Bytes a fixed string of `len` bytes needs when built inside another
 * allocation, and building it there (buf must hold dstr_embed_size(len)).
 * Such a string must never be grown, shrunk or passed to dstr_free. */
size_t dstr_embed_size(size_t len);
dstr dstr_embed(void *buf, const void *p, size_t len);
int dstr_cmp(const dstr a, const dstr b);
void dstr_tolower(dstr s);

/* --------------------------------------------------------------- dict.c */
typedef struct dict_entry {
    void *key;
    union {
        void *val;
        int64_t s64;
        double d;
    } v;
    struct dict_entry *next;
} dict_entry;

typedef struct dict_type {
    uint64_t (*hash)(const void *key);
    int (*key_eq)(const void *a, const void *b); /* 1 when equal */
    void (*key_free)(void *key);
    void (*val_free)(void *val);
} dict_type;

typedef struct dict {
    const dict_type *type;
    dict_entry **table[2];
    size_t size_exp[2]; /* table size is 1 << exp; 0 entries means no table */
    size_t used[2];
    long rehash_idx;    /* -1 when not rehashing */
    int pause_rehash;   /* > 0 while a safe iterator runs */
    int embed_keys;     /* dict_create_embedded: keys live in their entry */
} dict;

typedef struct dict_iter {
    dict *d;
    int table;
    long index;
    int safe;
    dict_entry *entry, *next;
} dict_iter;

typedef void dict_scan_fn(void *priv, dict_entry *e);

#define DICT_OK 0
#define DICT_ERR (-1)

dict *dict_create(const dict_type *type);
/* A dict of dstr keys that copies each added key into its entry's own
 * allocation (one block instead of two: the keyspace holds millions of
 * short keys).  dict_add / dict_add_raw then only read the caller's key,
 * which stays the caller's; e->key points into the entry and lives exactly
 * as long as it; the type's key_free is never called. */
dict *dict_create_embedded(const dict_type *type);
void dict_release(dict *d);
void dict_clear(dict *d);
size_t dict_size(const dict *d);
size_t dict_buckets(const dict *d);
/* Adds key; returns the new entry, or NULL if the key exists (*existing is set
 * then) or on OOM (*existing is NULL then). */
dict_entry *dict_add_raw(dict *d, void *key, dict_entry **existing);
int dict_add(dict *d, void *key, void *val);
dict_entry *dict_find(dict *d, const void *key);
void *dict_fetch(dict *d, const void *key);
/* Unlinks the entry and frees it with the type's destructors. */
int dict_delete(dict *d, const void *key);
/* Unlinks and returns the entry without freeing key/value; the caller frees
 * it with dict_free_unlinked. */
dict_entry *dict_unlink(dict *d, const void *key);
void dict_free_unlinked(dict *d, dict_entry *e);
/* Runs `steps` buckets of incremental rehash; 1 while more remains. */
int dict_rehash(dict *d, int steps);
int dict_rehash_ms(dict *d, int ms);
int dict_is_rehashing(const dict *d);
/* Shrinks when fill drops under 10%; call from cron. */
int dict_resize_to_fit(dict *d);
int dict_expand(dict *d, size_t size);
dict_entry *dict_random(dict *d);
/* Up to `count` entries sampled from consecutive buckets (fast, not uniform). */
size_t dict_sample(dict *d, dict_entry **out, size_t count);
void dict_iter_init(dict_iter *it, dict *d, int safe);
dict_entry *dict_next(dict_iter *it);
void dict_iter_done(dict_iter *it);
/* One SCAN step.  Returns the next cursor (0 when the scan is complete).
 * Every key present from start to end of the scan is reported at least once,
 * even across resizes, because the cursor walks bucket indexes in
 * reverse-binary order. */
unsigned long dict_scan(dict *d, unsigned long cursor, dict_scan_fn *fn,
                        void *priv);
/* Memory the table arrays use (entries excluded), for accounting. */
size_t dict_table_bytes(const dict *d);

/* Ready-made hash/compare functions for dstr keys. */
uint64_t dict_hash_dstr(const void *key);
uint64_t dict_hash_dstr_nocase(const void *key);
int dict_eq_dstr(const void *a, const void *b);
int dict_eq_dstr_nocase(const void *a, const void *b);
void dict_free_dstr(void *p);
void dict_set_hash_seed(const uint8_t seed[16]);

/* --------------------------------------------------------------- util.c */
#define LL_STR_SIZE 21
/* Exact string -> long long with Redis's rules: no spaces, no '+', no leading
 * zeros, no overflow.  1 on success. */
int str_to_ll(const char *s, size_t len, long long *out);
/* Writes all n bytes to fd (retrying short writes and EINTR): 0, or -1
 * with errno set (EIO for a write that made no progress). */
int write_full(int fd, const void *p, size_t n);
int str_to_ull(const char *s, size_t len, unsigned long long *out);
/* Strict string -> double: rejects NaN, spaces, empty, trailing junk.
 * Accepts inf / -inf / +inf. */
int str_to_double(const char *s, size_t len, double *out);
int str_to_ldouble(const char *s, size_t len, long double *out);
int ll_to_str(char *buf, size_t cap, long long v);
/* %.17g style used by RESP2 doubles; inf/-inf/nan spelled as Redis does. */
int double_to_str(char *buf, size_t cap, double v);
/* The shortest "%.17Lg"-then-trimmed form INCRBYFLOAT uses. 0 on failure. */
int ldouble_to_str(char *buf, size_t cap, long double v);
/* Glob match with * ? [...] \ and the nocase option. */
int glob_match(const char *pat, size_t plen, const char *s, size_t slen,
               int nocase);
uint64_t hash_bytes(const void *p, size_t len, uint64_t seed);
long long time_ms(void);       /* wall clock, ms */
long long time_us(void);       /* wall clock, us */
long long mono_us(void);       /* monotonic, us */
/* Fills buf with n random hex chars (from /dev/urandom, else time). */
void random_hex(char *buf, size_t n);
/* xorshift PRNG for sampling (not cryptographic). */
uint64_t rand_u64(void);

/* ------------------------------------------------------------- cqueue.c */
/* A multi-producer queue drained by one consumer (the event loop).  post()
 * may be called from any thread; it writes the eventfd so that epoll wakes.
 * The loop reads the fd when readable and calls cq_drain. */
typedef struct cq_item {
    struct cq_item *next;
    uint64_t client_id;                    /* who waits for this result */
    void (*deliver)(struct cq_item *item); /* runs on the loop thread */
    void *data;
} cq_item;

typedef struct cqueue cqueue;

cqueue *cq_create(char *err, size_t errlen);
void cq_destroy(cqueue *q);
int cq_fd(const cqueue *q);
void cq_post(cqueue *q, cq_item *item);
/* Takes every posted item in post order and calls deliver on each. Returns
 * the number delivered. */
size_t cq_drain(cqueue *q);

#endif
