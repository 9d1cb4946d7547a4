/* test_core_dstr.c - dynamic strings and the number/text rules of util.c
 * that clients observe (integers, doubles, INCRBYFLOAT output, globs). */
#include "test.h"
#include "core.h"

#include <limits.h>
#include <string.h>

/* Appends across the 8-bit -> 32-bit header switch keep the content. */
static void test_dstr_grow_and_binary(void) {
    dstr s = dstr_newlen("a\0b", 3);
    CHECK(s && dstr_len(s) == 3 && s[1] == '\0' && s[3] == '\0');
    for (int i = 0; i < 1000; i++) {
        s = dstr_catlen(s, "xyz", 3);
        CHECK(s);
    }
    CHECK_EQ_INT(dstr_len(s), 3003);
    CHECK(memcmp(s, "a\0bxyz", 6) == 0);
    dstr_consume(s, 3);
    CHECK_EQ_INT(dstr_len(s), 3000);
    CHECK(s[0] == 'x' && s[3000] == '\0');
    s = dstr_catfmt(s, "%d-%s", 42, "end");
    CHECK(s && dstr_len(s) == 3006 && memcmp(s + 3000, "42-end", 6) == 0);
    dstr_range(s, 3000, 2);
    CHECK_STR(s, "42");
    s = dstr_shrink(s);
    CHECK_EQ_INT(dstr_avail(s), 0);
    dstr_free(s);
}

static void test_dstr_cmp_and_oom(void) {
    dstr a = dstr_new("abc"), b = dstr_new("abd"), c = dstr_new("ab");
    CHECK(dstr_cmp(a, b) < 0 && dstr_cmp(b, a) > 0 && dstr_cmp(c, a) < 0 && dstr_cmp(a, a) == 0);
    km_fail_after(1);
    dstr n = dstr_catlen(a, "0123456789012345678901234567890123456789", 40);
    km_fail_after(0);
    CHECK(n == NULL);
    CHECK_STR(a, "abc"); /* untouched on failure */
    dstr_free(a);
    dstr_free(b);
    dstr_free(c);
}

/* Integers: the exact set Redis accepts. */
static void test_str_to_ll(void) {
    long long v;
    CHECK(str_to_ll("0", 1, &v) && v == 0);
    CHECK(str_to_ll("-1", 2, &v) && v == -1);
    CHECK(str_to_ll("9223372036854775807", 19, &v) && v == LLONG_MAX);
    CHECK(str_to_ll("-9223372036854775808", 20, &v) && v == LLONG_MIN);
    CHECK(!str_to_ll("9223372036854775808", 19, &v));
    CHECK(!str_to_ll("-9223372036854775809", 20, &v));
    CHECK(!str_to_ll("01", 2, &v));
    CHECK(!str_to_ll("+1", 2, &v));
    CHECK(!str_to_ll(" 1", 2, &v));
    CHECK(!str_to_ll("1 ", 2, &v));
    CHECK(!str_to_ll("-0", 2, &v));
    CHECK(!str_to_ll("", 0, &v));
    CHECK(!str_to_ll("1\0" "2", 3, &v));
    char buf[LL_STR_SIZE];
    CHECK_EQ_INT(ll_to_str(buf, sizeof buf, LLONG_MIN), 20);
    CHECK_STR(buf, "-9223372036854775808");
}

/* Doubles: strict parse, %.17g output, INCRBYFLOAT trimming. */
static void test_doubles(void) {
    double d;
    CHECK(str_to_double("1.5", 3, &d) && d == 1.5);
    CHECK(str_to_double("-inf", 4, &d) && isinf(d) && d < 0);
    CHECK(str_to_double("+inf", 4, &d) && isinf(d));
    CHECK(!str_to_double("nan", 3, &d));
    CHECK(!str_to_double(" 1", 2, &d));
    CHECK(!str_to_double("1x", 2, &d));
    CHECK(!str_to_double("", 0, &d));
    CHECK(!str_to_double("1e400", 5, &d));
    char buf[128];
    double_to_str(buf, sizeof buf, 1.1);
    CHECK_STR(buf, "1.1000000000000001");
    double_to_str(buf, sizeof buf, 3.0);
    CHECK_STR(buf, "3");
    double_to_str(buf, sizeof buf, -1.0 / 0.0);
    CHECK_STR(buf, "-inf");
    long double ld;
    CHECK(str_to_ldouble("10.5", 4, &ld));
    ldouble_to_str(buf, sizeof buf, ld + 0.1L);
    CHECK_STR(buf, "10.6");
    ldouble_to_str(buf, sizeof buf, 5.0e3L);
    CHECK_STR(buf, "5000");
    ldouble_to_str(buf, sizeof buf, -0.0L);
    CHECK_STR(buf, "0");
}

static int gm(const char *p, const char *s) { return glob_match(p, strlen(p), s, strlen(s), 0); }

/* Glob: *, ?, classes, ranges, negation, escapes, and no blow-up on a
 * pathological pattern. */
static void test_glob(void) {
    CHECK(gm("*", "anything"));
    CHECK(gm("h?llo", "hello") && !gm("h?llo", "hllo"));
    CHECK(gm("h[ae]llo", "hallo") && !gm("h[ae]llo", "hillo"));
    CHECK(gm("h[^e]llo", "hallo") && !gm("h[^e]llo", "hello"));
    CHECK(gm("h[a-c]llo", "hbllo") && !gm("h[a-c]llo", "hdllo"));
    CHECK(gm("a\\*b", "a*b") && !gm("a\\*b", "axb"));
    CHECK(gm("*x*y*", "__x__y__") && !gm("*x*y*", "__y__x__"));
    CHECK(glob_match("HELLO", 5, "hello", 5, 1));
    char s[200];
    memset(s, 'a', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    CHECK(!gm("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", s)); /* returns, quickly */
}

/* A string built inside a caller's buffer reads like any dstr (length,
 * bytes, NUL) with exactly dstr_embed_size bytes used, for short keys and
 * for ones past the 8-bit header (the keyspace embeds keys this way). */
static void test_dstr_embed(void) {
    char buf[400];
    char src[300];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (char)('a' + i % 26);
    size_t lens[] = {0, 1, 12, 255, 256, 300};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t len = lens[k], need = dstr_embed_size(len);
        CHECK(need <= sizeof buf && need >= len + 1);
        memset(buf, 0x5a, sizeof buf);
        dstr s = dstr_embed(buf, src, len);
        CHECK(s > buf && s + len + 1 == buf + need);
        CHECK(dstr_len(s) == len && dstr_avail(s) == 0);
        CHECK(memcmp(s, src, len) == 0 && s[len] == '\0');
        CHECK((unsigned char)buf[need] == 0x5a); /* nothing written past it */
    }
}

int main(void) {
    TEST_RUN(test_dstr_embed);
    TEST_RUN(test_dstr_grow_and_binary);
    TEST_RUN(test_dstr_cmp_and_oom);
    TEST_RUN(test_str_to_ll);
    TEST_RUN(test_doubles);
    TEST_RUN(test_glob);
    return TEST_DONE();
}
