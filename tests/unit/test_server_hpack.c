/* test_server_hpack.c - the packed small-hash encoding (hpack.c, compiled
 * into this test): insertion order is kept, updates that grow or shrink a
 * value move the following entries correctly, deletes close the gap, and a
 * failed allocation leaves the buffer intact. */
#include "test.h"
#include "../../src/server/hpack.c"

static int get(dstr b, const char *f, const char *want) {
    hp_entry e;
    if (!hpack_find(b, f, strlen(f), &e)) return want == NULL;
    return want && e.vlen == strlen(want) && memcmp(e.v, want, e.vlen) == 0;
}

static void test_set_update_delete(void) {
    dstr b = dstr_empty();
    int added;
    b = hpack_set(b, "name", 4, "ann", 3, &added);
    CHECK(b && added);
    b = hpack_set(b, "age", 3, "42", 2, &added);
    b = hpack_set(b, "city", 4, "oslo", 4, &added);
    CHECK_EQ_INT(hpack_count(b), 3);
    b = hpack_set(b, "age", 3, "a much longer value", 19, &added); /* grow in the middle */
    CHECK(!added);
    CHECK(get(b, "name", "ann") && get(b, "age", "a much longer value") && get(b, "city", "oslo"));
    b = hpack_set(b, "age", 3, "", 0, &added); /* shrink to empty */
    CHECK(get(b, "age", "") && get(b, "city", "oslo"));
    hp_entry e;
    CHECK(hpack_find(b, "name", 4, &e));
    hpack_delete(b, &e);
    CHECK(get(b, "name", NULL) && get(b, "age", "") && get(b, "city", "oslo"));
    size_t off = 0;
    CHECK(hpack_next(b, &off, &e) && e.flen == 3 && memcmp(e.f, "age", 3) == 0); /* order kept */
    CHECK(hpack_next(b, &off, &e) && e.flen == 4 && memcmp(e.f, "city", 4) == 0);
    CHECK(!hpack_next(b, &off, &e));
    dstr_free(b);
}

static void test_binary_and_limits(void) {
    dstr b = dstr_empty();
    int added;
    b = hpack_set(b, "a\0b", 3, "\xff\x00", 2, &added);
    hp_entry e;
    CHECK(hpack_find(b, "a\0b", 3, &e) && e.vlen == 2 && (unsigned char)e.v[0] == 0xff);
    CHECK(!hpack_find(b, "a", 1, &e));
    CHECK(hpack_fits(64, 64)); /* hash-max-listpack-value's default */
    CHECK(!hpack_fits(65, 1));
    hash_max_listpack_value = 1000; /* above what one length byte holds */
    CHECK(hpack_fits(HPACK_LEN_LIMIT, HPACK_LEN_LIMIT) && !hpack_fits(HPACK_LEN_LIMIT + 1, 1));
    hash_max_listpack_value = 64;
    dstr_free(b);
}

static void test_oom_keeps_buffer(void) {
    dstr b = dstr_empty();
    int added;
    b = hpack_set(b, "f", 1, "v", 1, &added);
    km_fail_after(1);
    dstr n = hpack_set(b, "g", 1, "0123456789012345678901234567890123456789", 40, &added);
    km_fail_after(0);
    CHECK(n == NULL);
    CHECK(get(b, "f", "v") && hpack_count(b) == 1);
    dstr_free(b);
}

int main(void) {
    TEST_RUN(test_set_update_delete);
    TEST_RUN(test_binary_and_limits);
    TEST_RUN(test_oom_keeps_buffer);
    return TEST_DONE();
}
