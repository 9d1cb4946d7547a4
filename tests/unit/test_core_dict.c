/* test_core_dict.c - the hash table: add/find/delete through incremental
 * rehashing, iteration with deletion, and the SCAN guarantee (every key
 * present for the whole scan is returned, even while the table grows or
 * shrinks between calls). */
#include "test.h"
#include "core.h"

#include <string.h>

static const dict_type str_type = {dict_hash_dstr, dict_eq_dstr, dict_free_dstr, NULL};

static dstr key_n(int i) {
    char buf[32];
    snprintf(buf, sizeof buf, "key:%d", i);
    return dstr_new(buf);
}

static int has(dict *d, int i) {
    dstr k = key_n(i);
    int r = dict_find(d, k) != NULL;
    dstr_free(k);
    return r;
}

/* An embedded-key dict copies each key into its entry (one allocation):
 * the caller keeps its own key, keys of every header width (short, >255
 * bytes) survive rehashing intact, deleting frees the whole block (the
 * byte count returns to where it started), and key_free is never called. */
static int key_frees;
static void count_free(void *p) { (void)p; key_frees++; }
static const dict_type embed_type = {dict_hash_dstr, dict_eq_dstr, count_free, NULL};

static void test_embedded_keys(void) {
    size_t before = km_used();
    dict *d = dict_create_embedded(&embed_type);
    CHECK(d);
    char big[300];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 2000; i++) {
        dstr k = i % 100 == 0 ? dstr_newlen(big, 256 + (size_t)(i % 40)) : key_n(i);
        if (i % 100 == 0) k[0] = (char)('a' + i / 100);
        CHECK(dict_add(d, k, (void *)(intptr_t)i) == DICT_OK);
        dict_entry *e = dict_find(d, k);
        CHECK(e && e->key != (void *)k && dstr_cmp(e->key, k) == 0);
        CHECK(((char *)e->key)[dstr_len(e->key)] == '\0');
        dstr_free(k); /* still the caller's */
    }
    while (dict_is_rehashing(d)) dict_rehash(d, 100);
    CHECK(dict_size(d) == 2000);
    for (int i = 1; i < 2000; i++)
        if (i % 100) CHECK(has(d, i));
    dstr k = dstr_newlen(big, 256 + 100 % 40);
    k[0] = 'b';
    dict_entry *e = dict_find(d, k);
    CHECK(e && dstr_len(e->key) == 256 + 100 % 40 && (intptr_t)e->v.val == 100);
    CHECK(dict_delete(d, k) == DICT_OK);
    dstr_free(k);
    dict_release(d);
    CHECK(key_frees == 0);
    CHECKF(km_used() == before, "used %zu, was %zu", km_used(), before);
}

/* Every key stays findable while the table rehashes step by step. */
static void test_add_find_through_rehash(void) {
    dict *d = dict_create(&str_type);
    CHECK(d);
    int saw_rehash = 0;
    for (int i = 0; i < 5000; i++) {
        CHECK(dict_add(d, key_n(i), (void *)(intptr_t)i) == DICT_OK);
        if (dict_is_rehashing(d)) saw_rehash = 1;
        if (i % 97 == 0)
            for (int j = 0; j <= i; j += 13) CHECKF(has(d, j), "key %d lost at size %d", j, i);
    }
    CHECK(saw_rehash);
    CHECK_EQ_INT(dict_size(d), 5000);
    dstr dup = key_n(42);
    dict_entry *existing = NULL;
    CHECK(dict_add_raw(d, dup, &existing) == NULL);
    CHECK(existing && existing->v.val == (void *)(intptr_t)42);
    dstr_free(dup);
    dict_release(d);
}

/* Deleting half the keys keeps the other half; shrinking keeps them too. */
static void test_delete_and_shrink(void) {
    dict *d = dict_create(&str_type);
    for (int i = 0; i < 4000; i++) dict_add(d, key_n(i), NULL);
    for (int i = 0; i < 4000; i += 2) {
        dstr k = key_n(i);
        CHECK(dict_delete(d, k) == DICT_OK);
        CHECK(dict_delete(d, k) == DICT_ERR);
        dstr_free(k);
    }
    for (int i = 0; i < 3960; i += 2) {
        dstr k = key_n(i + 1);
        dict_delete(d, k);
        dstr_free(k);
    }
    size_t before = dict_buckets(d);
    CHECK(dict_resize_to_fit(d) == DICT_OK);
    while (dict_rehash(d, 100)) {}
    CHECK(dict_buckets(d) < before);
    for (int i = 3961; i < 4000; i += 2) CHECKF(has(d, i), "key %d lost by shrink", i);
    CHECK_EQ_INT(dict_size(d), 20);
    dict_release(d);
}

/* A safe iterator visits every entry exactly once and tolerates deleting
 * the entry it is on. */
static void test_iterator_delete(void) {
    dict *d = dict_create(&str_type);
    for (int i = 0; i < 1000; i++) dict_add(d, key_n(i), NULL);
    dict_iter it;
    dict_iter_init(&it, d, 1);
    int seen = 0;
    for (dict_entry *e; (e = dict_next(&it));) {
        seen++;
        dstr k = dstr_dup(e->key);
        dict_delete(d, k);
        dstr_free(k);
    }
    dict_iter_done(&it);
    CHECK_EQ_INT(seen, 1000);
    CHECK_EQ_INT(dict_size(d), 0);
    dict_release(d);
}

typedef struct seen_set {
    unsigned char *seen;
    int n;
} seen_set;

static void mark(void *priv, dict_entry *e) {
    seen_set *s = priv;
    int i = atoi((char *)e->key + 4);
    if (i >= 0 && i < s->n) s->seen[i] = 1;
}

/* SCAN returns every key that exists for the whole scan although the
 * table grows 16x and then shrinks in the middle of it. */
static void test_scan_guarantee_across_resize(void) {
    dict *d = dict_create(&str_type);
    const int base = 500, extra = 8000;
    for (int i = 0; i < base; i++) dict_add(d, key_n(i), NULL);
    seen_set s = {calloc((size_t)(base + extra), 1), base + extra};
    unsigned long cursor = 0;
    int calls = 0;
    do {
        cursor = dict_scan(d, cursor, mark, &s);
        calls++;
        if (calls == 10) /* grow a lot mid-scan */
            for (int i = base; i < base + extra; i++) dict_add(d, key_n(i), NULL);
        if (calls == 40) { /* then shrink mid-scan */
            for (int i = base; i < base + extra; i++) {
                dstr k = key_n(i);
                dict_delete(d, k);
                dstr_free(k);
            }
            dict_resize_to_fit(d);
        }
        dict_rehash(d, 3); /* leave it mid-rehash between calls */
    } while (cursor != 0 && calls < 1000000);
    CHECK(cursor == 0);
    for (int i = 0; i < base; i++) CHECKF(s.seen[i], "key %d never returned by scan", i);
    free(s.seen);
    dict_release(d);
}

/* Random sampling only returns live entries and covers the table. */
static void test_random_and_sample(void) {
    dict *d = dict_create(&str_type);
    for (int i = 0; i < 64; i++) dict_add(d, key_n(i), NULL);
    unsigned char hit[64] = {0};
    for (int t = 0; t < 5000; t++) {
        dict_entry *e = dict_random(d);
        CHECK(e);
        hit[atoi((char *)e->key + 4)] = 1;
    }
    int all = 1;
    for (int i = 0; i < 64; i++) all &= hit[i];
    CHECK(all);
    dict_entry *out[10];
    CHECK(dict_sample(d, out, 10) > 0);
    dict_release(d);
}

/* Allocation failure while growing: the add fails cleanly or succeeds,
 * never corrupts the table. */
static void test_oom_is_clean(void) {
    dict *d = dict_create(&str_type);
    for (int i = 0; i < 200; i++) {
        dstr k = key_n(i);
        km_fail_after(1);
        if (dict_add(d, k, NULL) != DICT_OK) dstr_free(k);
        km_fail_after(0);
    }
    for (int i = 0; i < 200; i++) {
        dstr k = key_n(i);
        if (!dict_find(d, k) && dict_add(d, k, NULL) == DICT_OK) k = NULL;
        dstr_free(k);
    }
    CHECK_EQ_INT(dict_size(d), 200);
    dict_release(d);
}

int main(void) {
    TEST_RUN(test_embedded_keys);
    TEST_RUN(test_add_find_through_rehash);
    TEST_RUN(test_delete_and_shrink);
    TEST_RUN(test_iterator_delete);
    TEST_RUN(test_scan_guarantee_across_resize);
    TEST_RUN(test_random_and_sample);
    TEST_RUN(test_oom_is_clean);
    return TEST_DONE();
}
