/* test_rdb_io.c - the byte layer of RDB files (crc64.c, rdb_io.c,
 * rdb_packed.c, compiled into this test): the CRC's check value, every
 * length and integer encoding at its boundaries through the writer and
 * back through the reader, LZF both ways and a lying LZF header, listpacks
 * written and checked at every integer width, ziplist / intset / zipmap
 * checks, and truncated input refused at every cut with an offset. */
#include "test.h"
#include "../../src/server/crc64.c"
#include "../../src/server/rdb_io.c"
#include "../../src/server/rdb_packed.c"

/* What fn writes, as one string (NULL if the writer failed). */
static dstr write_all(void (*fn)(rdb_out *o, void *ud), void *ud, int compress) {
    dstr d = dstr_empty();
    rdb_out o;
    if (rdbo_init(&o, rdbo_sink_dstr, &d, compress, 1) != OK) abort();
    fn(&o, ud);
    int rc = rdbo_flush(&o);
    rdbo_release(&o);
    if (rc != OK) {
        dstr_free(d);
        return NULL;
    }
    return d;
}

static void test_crc64_check_value(void) {
    CHECK(crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9caULL);
    /* slicing-by-8 and the byte loop agree at every length and offset */
    unsigned char buf[100];
    for (int i = 0; i < 100; i++) buf[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= 64; n++) {
        uint64_t a = crc64(0, buf + 3, n), b = 0;
        for (size_t k = 0; k < n; k++) b = crc64(b, buf + 3 + k, 1);
        CHECKF(a == b, "length %zu", n);
    }
}

static const uint64_t lens[] = {0, 1, 63, 64, 16383, 16384, 65535, UINT32_MAX, (uint64_t)UINT32_MAX + 1,
                                UINT64_MAX};

static void put_lens(rdb_out *o, void *ud) {
    (void)ud;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) rdbo_len(o, lens[i]);
}

static void test_lengths(void) {
    dstr d = write_all(put_lens, NULL, 0);
    CHECK(d != NULL);
    CHECK_EQ_INT(dstr_len(d), 1 + 1 + 1 + 2 + 2 + 5 + 5 + 5 + 9 + 9);
    rdb_in in;
    rdbi_init_mem(&in, d, dstr_len(d), 1);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint64_t v;
        CHECK(rdbi_len(&in, &v, NULL) == OK);
        CHECKF(v == lens[i], "length %zu", i);
    }
    unsigned b;
    CHECK(rdbi_u8(&in, &b) == ERR);
    CHECK(strstr(in.err, "at offset 40") != NULL);
    dstr_free(d);
}

static const char *strs[] = {"0", "-1", "127", "128", "-128", "-129", "32767", "32768", "2147483647",
                             "2147483648", "-2147483648", "-2147483649", "007", "-0", "+1", "1 ", "",
                             "12345678901", "abc"};

static void put_strs(rdb_out *o, void *ud) {
    (void)ud;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) rdbo_string(o, strs[i], strlen(strs[i]));
    rdbo_string_ll(o, LLONG_MIN);
    rdbo_string_ll(o, 5);
}

static void test_strings_and_integers(void) {
    dstr d = write_all(put_strs, NULL, 1);
    CHECK(d != NULL);
    rdb_in in;
    rdbi_init_mem(&in, d, dstr_len(d), 1);
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        rdb_str s;
        CHECK(rdbi_string(&in, &s) == OK);
        CHECKF(s.len == strlen(strs[i]) && memcmp(s.p, strs[i], s.len) == 0, "'%s'", strs[i]);
        long long v;
        int canonical32 = str_to_ll(strs[i], strlen(strs[i]), &v) && v >= INT32_MIN && v <= INT32_MAX;
        CHECKF(s.is_int == canonical32, "'%s' integer encoded: %d", strs[i], s.is_int);
        rdb_str_free(&s);
    }
    rdb_str s;
    CHECK(rdbi_string(&in, &s) == OK && !s.is_int && s.len == 20 && !memcmp(s.p, "-9223372036854775808", 20));
    CHECK(rdbi_string(&in, &s) == OK && s.is_int && s.ll == 5);
    CHECK_EQ_INT(rdbi_remaining(&in), 0);
    dstr_free(d);
}

static void put_lzf(rdb_out *o, void *ud) {
    const char *p = ud;
    rdbo_string(o, p, strlen(p));
}

static void test_lzf(void) {
    char big[5000];
    for (int i = 0; i < 4999; i++) big[i] = "abcdefg"[i % 7];
    big[4999] = '\0';
    dstr d = write_all(put_lzf, big, 1);
    CHECK(d != NULL && (unsigned char)d[0] == 0xC3);
    CHECK(dstr_len(d) < 200);
    rdb_in in;
    rdbi_init_mem(&in, d, dstr_len(d), 1);
    rdb_str s;
    CHECK(rdbi_string(&in, &s) == OK);
    CHECK(s.len == 4999 && memcmp(s.p, big, 4999) == 0);
    rdb_str_free(&s);
    /* the same header claiming 100 MB: refused before anything is allocated */
    unsigned char lie[] = {0xC3, 0x05, 0x80, 0x05, 0xf5, 0xe1, 0x00, 1, 2, 3, 4, 5};
    rdbi_init_mem(&in, lie, sizeof lie, 1);
    CHECK(rdbi_string(&in, &s) == ERR);
    CHECK(strstr(in.err, "at offset 0: LZF string claims") != NULL);
    /* a broken stream of the right size */
    unsigned char bad[] = {0xC3, 0x03, 0x06, 0xE0, 0xff, 0xff};
    rdbi_init_mem(&in, bad, sizeof bad, 1);
    CHECK(rdbi_string(&in, &s) == ERR);
    dstr_free(d);
}

static const long long ints[] = {0, 127, 128, -1, 4095, -4096, 4096, -4097, 32767, -32768, 32768, 8388607,
                                 -8388608, 8388608, INT32_MAX, INT32_MIN, (long long)INT32_MAX + 1, LLONG_MAX,
                                 LLONG_MIN};

static void test_listpack_round_trip(void) {
    lp_writer w;
    CHECK(lpw_init(&w) == OK);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) lpw_int(&w, ints[i]);
    char long_str[5000];
    memset(long_str, 'q', sizeof long_str);
    lpw_str(&w, "hello", 5);
    lpw_str(&w, long_str, 100);
    lpw_str(&w, long_str, 5000);
    lpw_str(&w, "-42", 3);
    CHECK(lpw_finish(&w) == OK);
    size_t count;
    char err[200];
    CHECK(listpack_check((unsigned char *)w.b, dstr_len(w.b), &count, err, sizeof err) == OK);
    CHECK_EQ_INT(count, sizeof ints / sizeof ints[0] + 4);
    packed_iter it;
    packed_ele e;
    packed_iter_init(&it, (unsigned char *)w.b, dstr_len(w.b), 0);
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        CHECK(packed_next(&it, &e) && !e.s);
        CHECKF(e.v == ints[i], "%lld", ints[i]);
    }
    CHECK(packed_next(&it, &e) && e.s && e.len == 5);
    CHECK(packed_next(&it, &e) && e.s && e.len == 100);
    CHECK(packed_next(&it, &e) && e.s && e.len == 5000);
    CHECK(packed_next(&it, &e) && !e.s && e.v == -42);
    CHECK(!packed_next(&it, &e));
    /* every cut and every flipped byte: checked, never read out of bounds */
    for (size_t n = 0; n < dstr_len(w.b); n++) {
        listpack_check((unsigned char *)w.b, n, &count, err, sizeof err);
        dstr c = dstr_dup(w.b);
        c[n] ^= 0x5a;
        if (listpack_check((unsigned char *)c, dstr_len(c), &count, err, sizeof err) == OK) {
            packed_iter_init(&it, (unsigned char *)c, dstr_len(c), 0);
            while (packed_next(&it, &e)) {
            }
        }
        dstr_free(c);
    }
    dstr_free(w.b);
}

static void test_ziplist_intset_zipmap(void) {
    /* a ziplist of "ab", 5 (immediate), -2 (int8), 300 (int16): header
     * (24 bytes, last entry at 19, 4 entries), entries, end byte */
    unsigned char fixed[24] = {24, 0, 0, 0, 19, 0, 0, 0, 4, 0, 0x00, 0x02, 'a', 'b', 0x04, 0xF6, 0x02, 0xFE,
                               0xFE, 0x03, 0xC0, 0x2C, 0x01, 0xFF};
    size_t count;
    char err[200];
    CHECKF(ziplist_check(fixed, 24, &count, err, sizeof err) == OK, "%s", err);
    CHECK_EQ_INT(count, 4);
    packed_iter it;
    packed_ele e;
    packed_iter_init(&it, fixed, 24, 1);
    CHECK(packed_next(&it, &e) && e.s && e.len == 2);
    CHECK(packed_next(&it, &e) && !e.s && e.v == 5);
    CHECK(packed_next(&it, &e) && !e.s && e.v == -2);
    CHECK(packed_next(&it, &e) && !e.s && e.v == 300);
    fixed[4] = 14; /* a tail that is not the last entry */
    CHECK(ziplist_check(fixed, 24, &count, err, sizeof err) == ERR);
    unsigned char is[] = {2, 0, 0, 0, 3, 0, 0, 0, 0xfb, 0xff, 1, 0, 0x2c, 0x01};
    CHECK(intset_check(is, sizeof is, &count, err, sizeof err) == OK && count == 3);
    CHECK(intset_get(is, 0) == -5 && intset_get(is, 2) == 300);
    is[10] = 0xfb;
    is[11] = 0xff; /* out of order */
    CHECK(intset_check(is, sizeof is, &count, err, sizeof err) == ERR);
    unsigned char zm[] = {1, 1, 'f', 2, 1, 'v', 'w', 'x', 0xFF};
    CHECK(zipmap_check(zm, sizeof zm, &count, err, sizeof err) == OK && count == 1);
    zm[3] = 9; /* a value running past the end */
    CHECK(zipmap_check(zm, sizeof zm, &count, err, sizeof err) == ERR);
}

static void test_truncation_names_offset(void) {
    dstr d = write_all(put_strs, NULL, 1);
    CHECK(d != NULL);
    for (size_t n = 0; n < dstr_len(d); n++) {
        rdb_in in;
        rdbi_init_mem(&in, d, n, 1);
        int rc = OK;
        for (size_t i = 0; rc == OK && i < sizeof strs / sizeof strs[0] + 2; i++) {
            rdb_str s;
            rc = rdbi_string(&in, &s);
            rdb_str_free(&s);
        }
        CHECKF(rc == ERR && strstr(in.err, "at offset "), "cut at %zu", n);
    }
    dstr_free(d);
}

int main(void) {
    TEST_RUN(test_crc64_check_value);
    TEST_RUN(test_lengths);
    TEST_RUN(test_strings_and_integers);
    TEST_RUN(test_lzf);
    TEST_RUN(test_listpack_round_trip);
    TEST_RUN(test_ziplist_intset_zipmap);
    TEST_RUN(test_truncation_names_offset);
    return TEST_DONE();
}
