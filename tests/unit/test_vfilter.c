/* test_vfilter.c - VSIM FILTER expressions and the JSON validator of
 * src/vector/vfilter.c: every operator and precedence rule, literals,
 * selectors, Redis's type rules (strings vs numbers, null, tuples, `in` on
 * arrays and substrings), elements that cannot match (missing fields,
 * invalid JSON, objects), syntax-error positions, nesting and length
 * limits, allocation failures, matching from several threads, and a
 * randomized differential test against a tree evaluator written here,
 * independently of the compiler and its JSON scanner. */
#include "test.h"
#include "vfilter.h"
#include "vset.h"

#include <malloc.h>
#include <pthread.h>
#include <stdint.h>

/* 1 or 0 as vfilter_match answers, -1 when the expression does not compile. */
static int match(const char *expr, const char *json) {
    char err[256];
    vfilter *f = vfilter_compile(expr, strlen(expr), err, sizeof err);
    if (!f) {
        printf("    (compile error: %s)\n", err);
        return -1;
    }
    int r = vfilter_match(f, json, json ? strlen(json) : 0);
    vfilter_free(f);
    return r;
}

static const char *shown(const char *json) { return json ? json : "(no attributes)"; }

#define T(expr, json, want)                                                    \
    CHECKF(match(expr, json) == (want), "'%s' on %s should give %d", expr,     \
           shown(json), want)
/* A constant expression, against an empty object. */
#define C(expr, want) T(expr, "{}", want)

/* The compile error of expr (length n), or "" when it compiles. */
static const char *compile_error(const char *expr, size_t n) {
    static char err[512];
    vfilter *f = vfilter_compile(expr, n, err, sizeof err);
    if (f) {
        vfilter_free(f);
        return "";
    }
    return err;
}

#define SYNTAX(expr, pos, what)                                                \
    do {                                                                       \
        char want_[300];                                                       \
        snprintf(want_, sizeof want_,                                          \
                 "ERR syntax error in FILTER expression at position %d: %s",   \
                 pos, what);                                                   \
        CHECK_STR(compile_error(expr, strlen(expr)), want_);                   \
    } while (0)

static void test_arithmetic(void) {
    C("1 + 2 == 3", 1);
    C("7 - 2 - 3 == 2", 1);       /* left to right */
    C("8 / 4 / 2 == 1", 1);
    C("7 % 3 == 1", 1);
    C("-7 % 3 == -1", 1);         /* fmod keeps the dividend's sign */
    C("7.5 % 2 == 1.5", 1);
    C("10 / 4 == 2.5", 1);
    C("2 * 3 + 4 == 10", 1);
    C("2 + 3 * 4 == 14", 1);
    C("(2 + 3) * 4 == 20", 1);
    C("2 ** 10 == 1024", 1);
    C("2 ** 3 ** 2 == 512", 1);   /* right to left: 2 ** 9 */
    C("(2 ** 3) ** 2 == 64", 1);
    C("2 * 3 ** 2 == 18", 1);     /* ** binds tighter than * */
    C("-2 ** 2 == 4", 1);         /* the sign belongs to the literal */
    C("2 ** -1 == 0.5", 1);
    C("3 - -2 == 5", 1);
    C("3--2 == 5", 1);
    C("2*-3 == -6", 1);
    C("(1) -1 == 0", 1);          /* after ')' a '-' is the operator */
    C("1e3 == 1000", 1);
    C("1.5e-1 == 0.15", 1);
    C("2.5E+2 == 250", 1);
    C("1. == 1", 1);
    C("0", 0);
    C("-0", 0);
    C("0.0001", 1);
    C("1 - 1", 0);
    /* Division and modulo by zero are IEEE: inf and NaN, never an error;
     * NaN is not 0, so on its own it counts as true, and it equals nothing. */
    C("1 / 0 > 1e308", 1);
    C("-1 / 0 < -1e308", 1);
    C("0 / 0", 1);
    C("5 % 0", 1);
    C("0 / 0 == 0 / 0", 0);
    C("5 % 0 > 0 or 5 % 0 <= 0", 0);
    C("!(0 / 0)", 0);
    C("(-8) ** 0.5 != (-8) ** 0.5", 1); /* pow's NaN */
    C("10 ** 400 == 1 / 0", 1);          /* overflow is inf */
}

static void test_comparison_and_logic(void) {
    C("3 > 2", 1);
    C("2 > 2", 0);
    C("2 >= 2", 1);
    C("1 < 2", 1);
    C("2 <= 1", 0);
    C("2 == 2.0", 1);
    C("2 != 2", 0);
    C("1 and 1", 1);
    C("1 && 0", 0);
    C("0 or 1", 1);
    C("0 || 0", 0);
    C("not 0", 1);
    C("!1", 0);
    C("!!5", 1);
    C("not not 0", 0);
    C("!!!0", 1);
    C("not!0", 0);
    /* The comparisons and `in` share one level, left to right. */
    C("1 < 2 == 1", 1);  /* (1 < 2) == 1 */
    C("3 > 2 > 1", 0);   /* (3 > 2) > 1 */
    C("1 == 1 in [1]", 1);
    /* and binds tighter than or. */
    C("1 or 0 and 0", 1);
    C("0 and 0 or 1", 1);
    C("0 and (0 or 1)", 0);
    /* not binds tighter than everything, as Redis's ! does. */
    C("not 1 == 0", 1);   /* (not 1) == 0 */
    C("!0 + 1 == 2", 1);  /* (!0) + 1 */
    C("!2 ** 2 == 0", 1); /* (!2) ** 2 */
    C("not (1 == 0)", 1);
    C("2 ** !0 == 2", 1);
    C("1 + 2 > 2 and 3 * 2 == 6 or 0", 1);
    /* Word operators need no boundary after them, as in Redis. */
    C("1and 1", 1);
    C("0 or(1)", 1);
    C("1 in[1,2]", 1);
    /* Spaces of every kind separate tokens. */
    C("\t1\n+\r1\v==\f2 ", 1);
}

static void test_literals(void) {
    C("'abc' == \"abc\"", 1);
    C("'' == \"\"", 1);
    C("'a\"b' == \"a\\\"b\"", 1);
    C("\"it's\" == 'it\\'s'", 1);
    C("'a\\\\b' == \"a\\u005cb\"", 1);
    C("'\\u00e9' == '\xc3\xa9'", 1);
    C("'\\u00E9' == '\xc3\xa9'", 1);
    C("'\\ud83d\\ude00' == '\xf0\x9f\x98\x80'", 1); /* a surrogate pair */
    C("'\\ud83d' == '\xef\xbf\xbd'", 1);            /* a lone one is U+FFFD */
    C("'\\n' == '\n'", 1);
    C("'\\t\\r\\b\\f\\/' == '\t\r\b\f/'", 1);
    C("'\\q' == 'q'", 1); /* an unknown escape stands for its character */
    C("'\\u0041BC' == 'ABC'", 1);
    C("true", 1);
    C("false", 0);
    C("true == 1 and false == 0", 1);
    C("null", 0);
    C("null == null", 1);
    C("null == 0", 0);
    C("null != ''", 1);
    C("[1, 'a']", 1); /* a tuple is true, even an empty one */
    C("[]", 1);
    C("1 in [1, 2,]", 1); /* a trailing comma is fine, as in Redis */
    C("1 in []", 0);
    C("'a' in ['b', \"a\"]", 1);
    C("-2 in [1, -2]", 1);
    C("null in [1, null]", 1);
    C("true in [0, 1]", 1);
    C("2.5e0 in [ 2.5 ]", 1);
    C("'' == 0", 1); /* a string that is not a number counts as 0 */
}

static void test_strings_and_numbers(void) {
    /* == compares two strings as bytes... */
    C("'abc' == 'abc'", 1);
    C("'abc' != 'abd'", 1);
    C("'abc' == 'ab'", 0);
    C("'1.0' == '1'", 0);
    /* ...a string and a number as numbers (strtod on the whole string)... */
    C("'1.0' == 1", 1);
    C("'12' == 12", 1);
    C("' 5' == 5", 1);    /* strtod skips leading blanks */
    C("'5 ' == 5", 0);    /* but the whole string must be the number: 5 ' ' is 0 */
    C("'0x10' == 16", 1); /* strtod reads hex */
    C("'abc' == 0", 1);   /* not a number: 0 */
    C("'1e2' == 100", 1);
    /* ...and < <= > >= always as numbers, so 'b' > 'a' is 0 > 0. */
    C("'b' > 'a'", 0);
    C("'10' > '9'", 1);
    C("'abc' < 1", 1);
    C("'3' * '4' == 12", 1);
    C("'3' + 1 == 4", 1);
    /* Strings of 256 bytes or more never convert (Redis's buffer). */
    char big[600];
    memset(big, '0', sizeof big);
    snprintf(big, sizeof big, "'%0255d' == 1", 1);
    C(big, 1);
    snprintf(big, sizeof big, "'%0256d' == 1", 1);
    C(big, 0);
    /* Truthiness: empty string false, any other string true. */
    C("''", 0);
    C("'0'", 1);
    C("!''", 1);
}

static void test_in(void) {
    C("'foo' in 'barfoobar'", 1);
    C("'zap' in 'foobar'", 0);
    C("'' in ''", 1);
    C("'' in 'abc'", 1);
    C("'a' in ''", 0);
    C("'bar' in 'bar'", 1);
    C("'bars' in 'bar'", 0);
    C("1 in '1'", 0);          /* substrings only between two strings */
    C("'1' in 1", 0);
    C("'1' in [1]", 1);        /* tuple members compare with == */
    C("1 in ['1.0']", 1);
    C("'x' in [0]", 1);        /* 'x' is 0 as a number: Redis's rule */
    C("[1] in [0]", 1);        /* a tuple is 0 as a number too */
    const char *doc = "{\"tags\": [\"drama\", \"war\", 1984, true, null], \"s\": \"New York\", "
                      "\"e\": \"caf\\u00e9 \\\"x\\\"\", \"arr\": [\"\\u00e9\", \"a\\nb\"]}";
    T("'drama' in .tags", doc, 1);
    T("'dram' in .tags", doc, 0);
    T("1984 in .tags", doc, 1);
    T("'1984' in .tags", doc, 1);
    T("1 in .tags", doc, 1);       /* true is 1 */
    T("null in .tags", doc, 1);
    T("2 in .tags", doc, 0);
    T("'ork' in .s", doc, 1);
    T("'New' in .s", doc, 1);
    T("'new' in .s", doc, 0);
    T(".s in ['Boston', 'New York']", doc, 1);
    T(".s in 'I love New York!'", doc, 1);
    T("'\xc3\xa9' in .e", doc, 1);        /* decoded \u00e9 */
    T("'\\u00e9 \"' in .e", doc, 1);
    T("'\"x\"' in .e", doc, 1);
    T(".e == 'caf\xc3\xa9 \"x\"'", doc, 1);
    T("'\xc3\xa9' in .arr", doc, 1);
    T("'a\\nb' in .arr", doc, 1);
    T("'a' in .arr", doc, 0);
    T(".tags", doc, 1); /* arrays are true */
    T("'x' in .tags", doc, 0); /* 'x' is 0 as a number; null equals only null */
    T("0 in .tags", doc, 1);   /* but "drama" is 0 as a number: Redis's rule */
}

static void test_selectors(void) {
    const char *doc = "{\"year\": 1984, \"genre\": \"drama\", \"rating\": 8.5, \"a-b\": 3, "
                      "\"_x\": 1, \"5\": 7, \"A\": 1, \"a\": 2, \"nested\": {\"year\": 2000}}";
    T(".year > 1990", doc, 0);
    T(".year < 1990", doc, 1);
    T(".year == 1984 and .genre == 'drama'", doc, 1);
    T(".year > 1950 and .year < 1990 and .rating >= 8.5", doc, 1);
    T(".year - 1984", doc, 0);
    T(".year-1984", doc, 0); /* "year-1984" is one field name, and it is missing */
    T(".a-b == 3", doc, 1);  /* '-' belongs to field names, as in Redis */
    T(".a - 1 == 1", doc, 1);
    T("._x", doc, 1);
    T(".5 == 7", doc, 1);    /* ".5" is the field "5", not a number */
    T(".A == 1 and .a == 2", doc, 1); /* case matters */
    T(".nested", doc, 0);    /* objects are unusable */
    T(".year and .genre", doc, 1);
    T(".rating * 2 == 17", doc, 1);
    T("(.year - 2000) ** 2 < 300", doc, 1);
    /* Only top-level keys: "year" inside "nested" is not seen. */
    T(".year == 2000", "{\"nested\": {\"year\": 2000}}", 0);
    /* The first occurrence of a key wins (as in Redis). */
    T(".a == 1", "{\"a\": 1, \"a\": 2}", 1);
    T(".a == 2", "{\"a\": 1, \"a\": 2}", 0);
    T(".a == 1", "{\"a\": {\"x\": 1}, \"a\": 1}", 0);
    /* Keys are compared decoded. */
    T(".year == 2000", "{\"\\u0079ear\": 2000}", 1);
    T(".year == 2000", "{\"y\\u0065ar\": 2000, \"year\": 1}", 1);
    /* Values of every JSON type. */
    T(".t and !.f", "{\"t\": true, \"f\": false}", 1);
    T(".t == 1 and .f == 0", "{\"t\": true, \"f\": false}", 1);
    T(".n == null", "{\"n\": null}", 1);
    T(".n", "{\"n\": null}", 0);
    T("!.n", "{\"n\": null}", 1);
    T(".n == 0", "{\"n\": null}", 0);
    T(".x == -12.5e-1", "{\"x\": -1.25}", 1);
    T(".x == 0.1", "{\"x\": 1e-1}", 1);
    T(".x == 123456789012345678", "{\"x\": 123456789012345678}", 1);
    T(".x == 1e300", "{\"x\": 1E+300}", 1);
    T(".x == 0.3", "{\"x\": 0.299999999999999988897769753748434595763683319091796875}", 1);
    T(".x == -0", "{\"x\": -0.0}", 1);
    T(".s == ''", "{\"s\": \"\"}", 1);
    T(".s", "{\"s\": \"\"}", 0);
    T(".s == 'a/b'", "{\"s\": \"a\\/b\"}", 1);
    T(".s == '\xf0\x9f\x98\x80'", "{\"s\": \"\\ud83d\\ude00\"}", 1);
    T(".s == '\xf0\x9f\x98\x80'", "{\"s\": \"\xf0\x9f\x98\x80\"}", 1);
    T(".s == '\xef\xbf\xbd'", "{\"s\": \"\\udc00\"}", 1);
    T(".s == 5", "{\"s\": \"5\"}", 1);
    T(".s > 4", "{\"s\": \"5\"}", 1);
    T(".s == 5", "{\"s\": \"\\u0035\"}", 1);
    /* A field may be used several times; it is read once. */
    T(".x > 1 and .x < 3 and .x != 2.5", "{\"x\": 2}", 1);
}

/* Elements that cannot match: whatever the expression, they give 0. */
static void test_cannot_match(void) {
    T("1", NULL, 0);                         /* no attributes at all */
    T("1", "", 0);
    T(".a == 1", "{\"b\": 1}", 0);           /* missing field */
    T(".a == 1 or .b == 1", "{\"a\": 1}", 0); /* any missing field fails all */
    T("!.b", "{\"a\": 1}", 0);
    T(".a", "{\"a\": {}}", 0);               /* an object */
    T(".a", "{\"a\": [1, {\"b\": 2}]}", 0);  /* an array holding an object */
    T(".a", "{\"a\": [1, [2, [{}]]]}", 0);
    T("1 in .a", "{\"a\": [1, [2, 3]]}", 1); /* nested arrays are fine */
    T("0 in .a", "{\"a\": [1, [2, 3]]}", 1); /* and are 0 as numbers (Redis) */
    {
        /* A number too long to convert is unusable, as in Redis. */
        char doc[700];
        char digits[301];
        memset(digits, '9', 300);
        digits[300] = 0;
        snprintf(doc, sizeof doc, "{\"a\": %s, \"b\": 1}", digits);
        T(".b == 1", doc, 1);
        T(".a > 0", doc, 0);
        snprintf(doc, sizeof doc, "{\"a\": [%s], \"b\": 1}", digits);
        T(".b == 1", doc, 1);
        T(".a", doc, 0);
    }
    /* Invalid JSON never matches, even a constant expression. */
    const char *bad[] = {
        "invalid json", "{", "{\"a\": 1", "{\"a\": 1,}", "{\"a\": 1,, \"b\": 2}", "{'a': 1}",
        "{a: 1}", "{\"a\": 01}", "{\"a\": 1.}", "{\"a\": .5}", "{\"a\": +1}", "{\"a\": 1e}",
        "{\"a\": -}", "{\"a\": tru}", "{\"a\": True}", "{\"a\": nul}", "{\"a\": \"x}",
        "{\"a\": \"\\x\"}", "{\"a\": \"\\u12\"}", "{\"a\": \"\t\"}", "{\"a\": \"\x80\"}",
        "{\"a\": \"\xc0\xaf\"}", "{\"a\": \"\xed\xa0\x80\"}", "{\"a\": \"\xf4\x90\x80\x80\"}",
        "{\"a\": 1} x", "{\"a\": 1}}", "{\"a\" 1}", "{\"a\": [1, 2}", "{\"a\": [1 2]}",
        "{\"a\": 1 \"b\": 2}", "\xef\xbb\xbf{\"a\": 1}", "{\"a\": NaN}", "{\"a\": Infinity}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        T("1", bad[i], 0);
        T(".a", bad[i], 0);
        CHECKF(!vjson_valid(bad[i], strlen(bad[i]), NULL, 0), "'%s' is not JSON", bad[i]);
    }
    /* Valid JSON that is not an object: no fields, so no match either. */
    const char *notobj[] = {"1", "[1]", "\"a\"", "null", "true"};
    for (size_t i = 0; i < sizeof notobj / sizeof notobj[0]; i++) {
        T("1", notobj[i], 0);
        CHECK(vjson_valid(notobj[i], strlen(notobj[i]), NULL, 0));
    }
    /* A NUL byte inside the attributes is invalid JSON. */
    {
        vfilter *f = vfilter_compile("1", 1, NULL, 0);
        CHECK(f);
        CHECK_EQ_INT(vfilter_match(f, "{\"a\":\"\0\"}", 9), 0);
        CHECK_EQ_INT(vfilter_match(f, "{\"a\": 1}\0", 9), 0);
        CHECK_EQ_INT(vfilter_match(f, "{\"a\": 1}", 8), 1);
        CHECK_EQ_INT(vfilter_match(f, " \t\r\n{}\n", 7), 1);
        CHECK_EQ_INT(vfilter_match(NULL, "{}", 2), 0);
        vfilter_free(f);
        vfilter_free(NULL);
    }
}

static void test_json_validator(void) {
    const char *good[] = {
        "{}", "[]", "0", "-0", "-0.0e-0", "1E+2", "\"\"", "true", "false", "null", " [ 1 , 2 ] ",
        "{\"a\":{\"b\":[{},[],\"\\u0000\\ud800\\\"\\\\\\/\\b\\f\\n\\r\\t\"]}}",
        "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"",
        "{\"a\":1,\"a\":2}", "123456789012345678901234567890",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECKF(vjson_valid(good[i], strlen(good[i]), NULL, 0), "'%s' is JSON", good[i]);
    const char *bad[] = {
        "", " ", "{", "}", "[", "]", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{,}", "01", "1.", "-",
        "--1", "1e+", "0x10", "\"\\u00g0\"", "\"\xe0\x80\x80\"", "\"\xf0\x80\x80\x80\"",
        "\"\xf5\x80\x80\x80\"", "\"\xc2\"", "\"\xe2\x82\"", "\"a\x01\"", "[1] [2]", "nulll",
        "'a'", "[\"a\"\"b\"]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECKF(!vjson_valid(bad[i], strlen(bad[i]), NULL, 0), "'%s' is not JSON", bad[i]);
    /* Every printable ASCII byte but '"' and '\\' stands for itself in a
     * string; every control character is refused. */
    char str[200];
    size_t k = 0;
    str[k++] = '"';
    for (int ch = 0x20; ch < 0x80; ch++)
        if (ch != '"' && ch != '\\') str[k++] = (char)ch;
    str[k++] = '"';
    CHECK(vjson_valid(str, k, NULL, 0));
    for (int ch = 0; ch < 0x20; ch++) {
        str[1] = (char)ch;
        CHECKF(!vjson_valid(str, k, NULL, 0), "control character 0x%02x", ch);
    }
    char err[128];
    CHECK(!vjson_valid("{\"a\": [1, 2,]}", 14, err, sizeof err));
    CHECK_STR(err, "invalid JSON at position 13: expected a value");
    CHECK(!vjson_valid("{\"a\": \"x", 8, err, sizeof err));
    CHECK_STR(err, "invalid JSON at position 7: unterminated string");
    CHECK(!vjson_valid("[1] x", 5, err, sizeof err));
    CHECK_STR(err, "invalid JSON at position 5: unexpected data after the JSON value");
    CHECK(!vjson_valid("", 0, err, sizeof err));
    CHECK_STR(err, "invalid JSON at position 1: unexpected end of input, expected a value");
    CHECK(!vjson_valid(NULL, 5, err, sizeof err));
    CHECK(!vjson_valid("\"\xff\"", 3, err, sizeof err));
    CHECK_STR(err, "invalid JSON at position 2: invalid UTF-8 in string");
    CHECK(!vjson_valid("[1]\0", 4, err, 8)); /* a short buffer is cut, not overrun */
    CHECK(strlen(err) == 7);
}

/* Nesting and length bounds: limits are errors with a message, and no input
 * can make either parser recurse. */
static void test_limits(void) {
    size_t n = 1000000;
    char *s = malloc(2 * n + 64);
    CHECK(s);
    /* 128 parentheses compile; the 129th is refused. */
    for (int depth = 128; depth <= 129; depth++) {
        size_t k = 0;
        for (int i = 0; i < depth; i++) s[k++] = '(';
        s[k++] = '1';
        for (int i = 0; i < depth; i++) s[k++] = ')';
        const char *e = compile_error(s, k);
        if (depth == 128) CHECK_STR(e, "");
        else CHECK_STR(e, "ERR syntax error in FILTER expression at position 129: expression nested too deeply (limit 128)");
    }
    memset(s, '(', n);
    CHECK(strstr(compile_error(s, 60000), "nested too deeply"));
    memset(s, '!', n);
    CHECK(strstr(compile_error(s, 60000), "nested too deeply"));
    /* A right-to-left chain keeps every operand on the stack. */
    for (int terms = 128; terms <= 129; terms++) {
        size_t k = 0;
        for (int i = 0; i < terms; i++) k += (size_t)sprintf(s + k, i ? " ** 1" : "1");
        s[k] = 0;
        if (terms == 128) {
            C(s, 1);
        } else
            CHECK(strstr(compile_error(s, k), "nested too deeply"));
    }
    /* A long left-to-right chain is fine: two values on the stack. */
    {
        size_t k = 0;
        for (int i = 0; i < 20000; i++) k += (size_t)sprintf(s + k, i ? "+1" : "1");
        k += (size_t)sprintf(s + k, " == 20000");
        CHECK(k < 65536);
        C(s, 1);
    }
    /* The expression length bound: 65536 bytes compile, 65537 do not. */
    s[0] = '\'';
    memset(s + 1, 'x', 65534);
    s[65535] = '\'';
    CHECK_STR(compile_error(s, 65536), "");
    CHECK_STR(compile_error(s, 65537),
              "ERR syntax error in FILTER expression at position 65537: expression too long (limit 65536 bytes)");
    CHECK(strstr(compile_error(s, 2 * n), "too long"));
    /* JSON nesting: 128 levels are valid, 129 are not, a million cost nothing. */
    for (int depth = 128; depth <= 129; depth++) {
        memset(s, '[', (size_t)depth);
        memset(s + depth, ']', (size_t)depth);
        CHECK(vjson_valid(s, 2 * (size_t)depth, NULL, 0) == (depth == 128));
    }
    memset(s, '[', n);
    CHECK(!vjson_valid(s, n, NULL, 0));
    memset(s, '{', n);
    CHECK(!vjson_valid(s, n, NULL, 0));
    {
        /* As attributes: the object is the first level. */
        size_t k = (size_t)sprintf(s, "{\"a\": 1, \"b\": ");
        memset(s + k, '[', 127);
        memset(s + k + 127, ']', 127);
        strcpy(s + k + 254, "}");
        T(".a == 1", s, 1);
        k = (size_t)sprintf(s, "{\"a\": 1, \"b\": ");
        memset(s + k, '[', 128);
        memset(s + k + 128, ']', 128);
        strcpy(s + k + 256, "}");
        T(".a == 1", s, 0);
    }
    {
        /* A large document: the field comes last, after 1 MB of others. */
        size_t k = (size_t)sprintf(s, "{\"text\": \"");
        for (size_t i = 0; i < n; i++) s[k++] = (char)('a' + i % 26);
        k += (size_t)sprintf(s + k, "\", \"x\": [1,2,3], \"year\": 2001}");
        T(".year > 2000 and 'xyz' in .text and 3 in .x", s, 1);
        T("'zyx' in .text", s, 0);
    }
    /* Too many distinct fields. */
    {
        size_t k = 0;
        for (int i = 0; i < 65; i++) k += (size_t)sprintf(s + k, i ? " and .f%d" : ".f%d", i);
        CHECK(strstr(compile_error(s, k), "too many fields (limit 64)"));
        s[k - 9 + 0] = 0; /* drop " and .f64": 64 fields are fine */
        CHECK_STR(compile_error(s, strlen(s)), "");
    }
    /* A number literal longer than 255 bytes. */
    memset(s, '1', 300);
    CHECK(strstr(compile_error(s, 300), "number too long"));
    free(s);
}

static void test_syntax_errors(void) {
    SYNTAX("", 1, "empty expression");
    SYNTAX("  \t ", 1, "empty expression");
    SYNTAX("(1 + 2", 7, "missing ')' to close the '(' at position 1");
    SYNTAX("((1) + 2", 9, "missing ')' to close the '(' at position 1");
    SYNTAX("1 + 2)", 6, "unexpected ')' without a matching '('");
    SYNTAX("()", 2, "unexpected ')', expected an operand");
    SYNTAX(".year >", 8, "unexpected end of expression, expected an operand");
    SYNTAX("not", 4, "unexpected end of expression, expected an operand");
    SYNTAX("'abc", 1, "unterminated string");
    SYNTAX(".a == \"x\\\"", 7, "unterminated string");
    SYNTAX(".a = 1", 4, "unknown operator '=' (did you mean '=='?)");
    SYNTAX(".a & .b", 4, "unknown operator '&' (did you mean '&&'?)");
    SYNTAX(".a | .b", 4, "unknown operator '|' (did you mean '||'?)");
    SYNTAX(".a .b", 4, "expected an operator, got a field");
    SYNTAX("1 2", 3, "expected an operator, got a number");
    SYNTAX(".a 'x'", 4, "expected an operator, got a string");
    SYNTAX(".a [1]", 4, "expected an operator, got an array");
    SYNTAX("1 (2)", 3, "expected an operator, got '('");
    SYNTAX("1 not 2", 3, "expected an operator, got 'not'");
    SYNTAX("1 ! 2", 3, "expected an operator, got '!'");
    SYNTAX(".a # 1", 4, "expected an operator, got '#'");
    SYNTAX("1 + * 2", 5, "expected an operand before '*'");
    SYNTAX("-.a", 1, "expected an operand before '-'");
    SYNTAX("- 1", 1, "expected an operand before '-'");
    SYNTAX("and 1", 1, "expected an operand, got 'and'");
    SYNTAX("foo > 1", 1, "expected an operand, got 'foo' (field names start with '.')");
    SYNTAX("nullx", 1, "expected an operand, got 'nullx' (field names start with '.')");
    SYNTAX("notes > 1", 4, "expected an operand, got 'es' (field names start with '.')");
    SYNTAX(". > 1", 1, "expected a field name after '.'");
    SYNTAX(".a in [1, [2]]", 11, "nested arrays are not supported");
    SYNTAX(".a in [1 2]", 10, "expected ',' or ']' in the array, got a number");
    SYNTAX(".a in [1, .b]", 11, "expected a number or a string in the array, got a field");
    SYNTAX(".a in [1, 2", 7, "unterminated array, ']' expected");
    SYNTAX("'\\u12' == 1", 2, "invalid \\u escape");
    SYNTAX("1.5.3", 4, "expected an operator, got a field");
    SYNTAX("1e5e5", 4, "expected an operator, got 'e5'");
    SYNTAX("\x01", 1, "expected an operand, got byte 0x01");
    SYNTAX("1 +\r\n", 6, "unexpected end of expression, expected an operand");
    SYNTAX("1 \x7f", 3, "expected an operator, got byte 0x7f");
    /* A NUL byte is just a bad byte: the expression has a length. */
    CHECK_STR(compile_error("1 \0 2", 5),
              "ERR syntax error in FILTER expression at position 3: expected an operator, got byte 0x00");
    /* No error line may carry CR or LF, whatever the input. */
    const char *nasty[] = {"\r", "\n", "1 \n\r x", "'\n", "[1,\n"};
    for (size_t i = 0; i < sizeof nasty / sizeof nasty[0]; i++) {
        const char *e = compile_error(nasty[i], strlen(nasty[i]));
        CHECK(*e && !strchr(e, '\r') && !strchr(e, '\n'));
    }
    /* A NULL or tiny error buffer is fine. */
    CHECK(vfilter_compile("(", 1, NULL, 0) == NULL);
    char tiny[8];
    CHECK(vfilter_compile("(", 1, tiny, sizeof tiny) == NULL);
    CHECK_STR(tiny, "ERR syn");
    /* NULL with a length is the empty expression. */
    CHECK(vfilter_compile(NULL, 3, tiny, sizeof tiny) == NULL);
}

/* ---- allocation failures ------------------------------------------------- */

static long fail_at = -1, allocs, live;

static void *fa_alloc(size_t n) {
    if (fail_at >= 0 && allocs++ >= fail_at) return NULL;
    void *p = malloc(n);
    if (p) live++;
    return p;
}
static void *fa_realloc(void *p, size_t n) {
    if (fail_at >= 0 && allocs++ >= fail_at) return NULL;
    void *q = realloc(p, n);
    if (q && !p) live++;
    return q;
}
static void fa_free(void *p) {
    if (p) live--;
    free(p);
}

static void test_oom(void) {
    const vset_allocator failing = {fa_alloc, fa_realloc, fa_free, NULL, NULL, NULL};
    const vset_allocator libc = {malloc, realloc, free, malloc_usable_size, NULL, NULL};
    const char *expr = ".a in [1, 2, 'x', 3, 4, 5, 6, 7, 8, 9, 10] and .b == 'y' or (.c + 1 > 2 "
                       "and .d and .e and .f and .g and .h and .i and .j and .k)";
    vset_set_allocator(&failing);
    int ok_seen = 0;
    for (long k = 0; k < 200 && !ok_seen; k++) {
        char err[128];
        fail_at = k;
        allocs = 0;
        live = 0;
        vfilter *f = vfilter_compile(expr, strlen(expr), err, sizeof err);
        if (f) {
            ok_seen = 1;
            fail_at = -1;
            vfilter_free(f);
        } else if (strcmp(err, "ERR out of memory compiling the FILTER expression") != 0) {
            vset_set_allocator(&libc);
            CHECKF(0, "unexpected error at allocation %ld: %s", k, err);
        }
        if (live != 0) {
            vset_set_allocator(&libc);
            CHECKF(0, "%ld blocks leaked failing allocation %ld", live, k);
        }
    }
    vset_set_allocator(&libc);
    CHECK(ok_seen);
}

/* ---- threads --------------------------------------------------------------- */

typedef struct {
    const vfilter *f;
    const char **docs;
    int ndocs, *want, bad;
} thread_arg;

static void *matcher(void *p) {
    thread_arg *a = p;
    for (int round = 0; round < 2000; round++)
        for (int i = 0; i < a->ndocs; i++)
            if (vfilter_match(a->f, a->docs[i], strlen(a->docs[i])) != a->want[i]) a->bad++;
    return NULL;
}

/* One compiled filter, many threads: it is immutable and matching shares
 * nothing, so every thread sees the single-threaded answers. */
static void test_threads(void) {
    const char *docs[] = {
        "{\"year\": 1995, \"genre\": \"drama\", \"tags\": [\"a\", \"b\"]}",
        "{\"year\": 1985, \"genre\": \"drama\", \"tags\": [\"a\"]}",
        "{\"year\": 1995, \"genre\": \"dr\\u0061ma\", \"tags\": [\"b\"]}",
        "{\"year\": 1995, \"genre\": \"comedy\", \"tags\": []}",
        "{\"year\": 1995}",
        "not json",
    };
    int want[6];
    const char *expr = ".year > 1990 and .genre == \"drama\" and 'b' in .tags";
    vfilter *f = vfilter_compile(expr, strlen(expr), NULL, 0);
    CHECK(f);
    for (int i = 0; i < 6; i++) want[i] = vfilter_match(f, docs[i], strlen(docs[i]));
    CHECK(want[0] == 1 && want[1] == 0 && want[2] == 1 && want[3] == 0 && want[4] == 0 && want[5] == 0);
    pthread_t th[4];
    thread_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (thread_arg){f, docs, 6, want, 0};
        CHECK(pthread_create(&th[t], NULL, matcher, &args[t]) == 0);
    }
    int bad = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        bad += args[t].bad;
    }
    vfilter_free(f);
    CHECK_EQ_INT(bad, 0);
}

/* ---- the differential test ------------------------------------------------ */

/* Values as the reference evaluator sees them: written from Redis's rules,
 * sharing no code with vfilter.c. */
enum { R_NUM, R_STR, R_NULL, R_TUP };
typedef struct rval {
    int kind;
    double num;
    char str[24];
    size_t len;
    int n;
    struct rval *el; /* R_TUP elements */
} rval;

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static double r_num(const rval *v) {
    if (v->kind == R_NUM) return v->num;
    if (v->kind != R_STR || v->len >= 256 || memchr(v->str, 0, v->len)) return 0;
    char buf[256];
    memcpy(buf, v->str, v->len);
    buf[v->len] = 0;
    char *e;
    double d = strtod(buf, &e);
    return *e ? 0 : d;
}
static int r_true(const rval *v) {
    if (v->kind == R_NUM) return v->num != 0;
    if (v->kind == R_STR) return v->len > 0;
    return v->kind == R_TUP;
}
static int r_eq(const rval *a, const rval *b) {
    if (a->kind == R_STR && b->kind == R_STR) return a->len == b->len && !memcmp(a->str, b->str, a->len);
    if (a->kind == R_NUM && b->kind == R_NUM) return a->num == b->num;
    if (a->kind == R_NULL || b->kind == R_NULL) return a->kind == b->kind;
    return r_num(a) == r_num(b);
}
static int r_in(const rval *a, const rval *b) {
    if (b->kind == R_TUP) {
        for (int i = 0; i < b->n; i++)
            if (r_eq(a, &b->el[i])) return 1;
        return 0;
    }
    if (a->kind != R_STR || b->kind != R_STR) return 0;
    if (a->len > b->len) return 0;
    for (size_t i = 0; i + a->len <= b->len; i++)
        if (!memcmp(b->str + i, a->str, a->len)) return 1;
    return 0;
}

/* Expression trees. */
enum { N_CONST, N_FIELD, N_NOT, N_BIN };
enum { B_OR, B_AND, B_GT, B_GE, B_LT, B_LE, B_EQ, B_NE, B_IN, B_ADD, B_SUB, B_MUL, B_DIV, B_MOD, B_POW, B_COUNT };
static const int B_PREC[B_COUNT] = {0, 1, 2, 2, 2, 2, 2, 2, 2, 3, 3, 4, 4, 4, 5};
static const char *B_TEXT[B_COUNT][2] = {
    {"or", "||"}, {"and", "&&"}, {">", ">"}, {">=", ">="}, {"<", "<"}, {"<=", "<="}, {"==", "=="},
    {"!=", "!="}, {"in", "in"}, {"+", "+"}, {"-", "-"}, {"*", "*"}, {"/", "/"}, {"%", "%"}, {"**", "**"},
};

typedef struct node {
    int kind, op, field;
    rval c;
    rval tup[4];
    const char *text; /* how a constant is written */
    struct node *l, *r;
} node;

#define NFIELDS 5
static const char *FIELD_NAMES[NFIELDS] = {"a", "b", "c", "s", "t"};

/* Number literals and their values (what strtod reads from the same text). */
static const char *NUMS[] = {"0", "1", "2", "3", "-1", "-2", "2.5", "0.5", "10", "1e1", "-0.5", "100", "7", "1.5e0"};
/* String constants: bytes, and how they may be written between quotes. */
static const char *STRS[] = {"", "a", "ab", "b", "12", "1e1", " 5", "x\"y", "\xc3\xa9", "\n", "it's", "abc", "0"};

static node pool_nodes[64];
static int npool;

static void set_str(rval *v, const char *s) {
    v->kind = R_STR;
    v->len = strlen(s);
    memcpy(v->str, s, v->len + 1);
}

static void rand_scalar(rval *v) {
    switch (rnd(6)) {
    case 0: case 1: v->kind = R_NUM; v->num = strtod(NUMS[rnd(sizeof NUMS / sizeof NUMS[0])], NULL); break;
    case 2: case 3: set_str(v, STRS[rnd(sizeof STRS / sizeof STRS[0])]); break;
    case 4: v->kind = R_NUM; v->num = rnd(2); break;
    default: v->kind = R_NULL; break;
    }
}

static node *gen(int depth) {
    node *n = &pool_nodes[npool++];
    memset(n, 0, sizeof *n);
    int leaf = depth == 0 || rnd(4) == 0;
    if (leaf) {
        if (rnd(2)) {
            n->kind = N_FIELD;
            n->field = (int)rnd(NFIELDS);
            return n;
        }
        n->kind = N_CONST;
        if (rnd(6) == 0) {
            n->c.kind = R_TUP;
            n->c.n = (int)rnd(4);
            n->c.el = n->tup;
            for (int i = 0; i < n->c.n; i++) rand_scalar(&n->tup[i]);
        } else
            rand_scalar(&n->c);
        return n;
    }
    if (rnd(7) == 0) {
        n->kind = N_NOT;
        n->l = gen(depth - 1);
        return n;
    }
    n->kind = N_BIN;
    n->op = (int)rnd(B_COUNT);
    n->l = gen(depth - 1);
    n->r = gen(depth - 1);
    return n;
}

static size_t put(char *o, size_t k, const char *s) {
    size_t n = strlen(s);
    memcpy(o + k, s, n);
    return k + n;
}

/* Writes a value as an expression literal, escaping at random. */
static size_t put_value(char *o, size_t k, const rval *v) {
    if (v->kind == R_NULL) return put(o, k, "null");
    if (v->kind == R_NUM) {
        /* Booleans may come back as true/false, other numbers as written. */
        if ((v->num == 0 || v->num == 1) && rnd(3) == 0) return put(o, k, v->num ? "true" : "false");
        for (size_t i = 0; i < sizeof NUMS / sizeof NUMS[0]; i++)
            if (strtod(NUMS[i], NULL) == v->num && rnd(2)) return put(o, k, NUMS[i]);
        return k + (size_t)sprintf(o + k, "%.17g", v->num);
    }
    if (v->kind == R_STR) {
        char q = rnd(2) ? '"' : '\'';
        o[k++] = q;
        for (size_t i = 0; i < v->len; i++) {
            unsigned char ch = (unsigned char)v->str[i];
            if (ch == (unsigned char)q || ch == '\\') {
                o[k++] = '\\';
                o[k++] = (char)ch;
            } else if (ch == '\n' && rnd(2)) {
                k = put(o, k, "\\n");
            } else if (ch == 0xc3 && i + 1 < v->len && rnd(2)) {
                k += (size_t)sprintf(o + k, "\\u00%02x", 0xc0 | (v->str[i + 1] & 0x3f));
                i++;
            } else if (ch < 0x80 && ch >= 0x20 && rnd(8) == 0) {
                k += (size_t)sprintf(o + k, "\\u%04x", ch);
            } else
                o[k++] = (char)ch;
        }
        o[k++] = q;
        return k;
    }
    o[k++] = '[';
    for (int i = 0; i < v->n; i++) {
        if (i) k = put(o, k, rnd(2) ? ", " : ",");
        k = put_value(o, k, &v->el[i]);
    }
    if (v->n && rnd(4) == 0) o[k++] = ',';
    o[k++] = ']';
    return k;
}

static int prec_of(const node *n) { return n->kind == N_BIN ? B_PREC[n->op] : n->kind == N_NOT ? 6 : 7; }

/* Prints with the fewest parentheses the precedence rules allow (plus some
 * at random), so the parser's precedence is what is under test. */
static size_t print(char *o, size_t k, const node *n) {
    int paren = rnd(12) == 0;
    if (paren) o[k++] = '(';
    if (n->kind == N_CONST) {
        k = put_value(o, k, &n->c);
    } else if (n->kind == N_FIELD) {
        k += (size_t)sprintf(o + k, ".%s", FIELD_NAMES[n->field]);
    } else if (n->kind == N_NOT) {
        k = put(o, k, rnd(2) ? "!" : "not ");
        int p = prec_of(n->l) < 6;
        if (p) o[k++] = '(';
        k = print(o, k, n->l);
        if (p) o[k++] = ')';
    } else {
        int pr = B_PREC[n->op], right = n->op == B_POW;
        int lp = prec_of(n->l) < pr || (right && prec_of(n->l) == pr);
        int rp = prec_of(n->r) < pr || (!right && prec_of(n->r) == pr);
        if (lp) o[k++] = '(';
        k = print(o, k, n->l);
        if (lp) o[k++] = ')';
        /* Words and '-' need blanks around them (".a-1" is one field name). */
        const char *t = B_TEXT[n->op][rnd(2)];
        int blank = n->op == B_OR || n->op == B_AND || n->op == B_IN || n->op == B_SUB || rnd(2);
        if (blank) o[k++] = ' ';
        k = put(o, k, t);
        if (blank) o[k++] = ' ';
        if (rp) o[k++] = '(';
        k = print(o, k, n->r);
        if (rp) o[k++] = ')';
    }
    if (paren) o[k++] = ')';
    return k;
}

static void uses(const node *n, int *used) {
    if (n->kind == N_FIELD) used[n->field] = 1;
    if (n->l) uses(n->l, used);
    if (n->r) uses(n->r, used);
}

static rval eval(const node *n, const rval *fields) {
    if (n->kind == N_CONST) return n->c;
    if (n->kind == N_FIELD) return fields[n->field];
    rval r = {0};
    r.kind = R_NUM;
    if (n->kind == N_NOT) {
        rval a = eval(n->l, fields);
        r.num = !r_true(&a);
        return r;
    }
    rval a = eval(n->l, fields), b = eval(n->r, fields);
    double x = r_num(&a), y = r_num(&b);
    switch (n->op) {
    case B_OR: r.num = r_true(&a) || r_true(&b); break;
    case B_AND: r.num = r_true(&a) && r_true(&b); break;
    case B_GT: r.num = x > y; break;
    case B_GE: r.num = x >= y; break;
    case B_LT: r.num = x < y; break;
    case B_LE: r.num = x <= y; break;
    case B_EQ: r.num = r_eq(&a, &b); break;
    case B_NE: r.num = !r_eq(&a, &b); break;
    case B_IN: r.num = r_in(&a, &b); break;
    case B_ADD: r.num = x + y; break;
    case B_SUB: r.num = x - y; break;
    case B_MUL: r.num = x * y; break;
    case B_DIV: r.num = x / y; break;
    case B_MOD: r.num = fmod(x, y); break;
    default: r.num = pow(x, y); break;
    }
    return r;
}

/* A document: each field missing, unusable (object), or a value. */
enum { F_MISSING, F_OBJECT, F_VALUE };
typedef struct {
    int state[NFIELDS];
    rval v[NFIELDS];
    rval el[NFIELDS][4];
} doc;

static size_t put_json_string(char *o, size_t k, const char *s, size_t len) {
    o[k++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            o[k++] = '\\';
            o[k++] = (char)ch;
        } else if (ch < 0x20) {
            k += (size_t)(rnd(2) ? sprintf(o + k, "\\u%04x", ch) : sprintf(o + k, "\\n"));
        } else if (ch == 0xc3 && i + 1 < len && rnd(2)) {
            k += (size_t)sprintf(o + k, "\\u00%02X", 0xc0 | (s[i + 1] & 0x3f));
            i++;
        } else if (ch < 0x80 && rnd(10) == 0) {
            k += (size_t)sprintf(o + k, "\\u%04x", ch);
        } else if (ch == '/' && rnd(2)) {
            k = put(o, k, "\\/");
        } else
            o[k++] = (char)ch;
    }
    o[k++] = '"';
    return k;
}

static size_t put_json_value(char *o, size_t k, const rval *v) {
    if (v->kind == R_NULL) return put(o, k, "null");
    if (v->kind == R_NUM) {
        if (v->num == 1 && rnd(2)) return put(o, k, "true");
        if (v->num == 0 && rnd(2)) return put(o, k, "false");
        return k + (size_t)sprintf(o + k, rnd(2) ? "%.17g" : "%g", v->num);
    }
    if (v->kind == R_STR) return put_json_string(o, k, v->str, v->len);
    o[k++] = '[';
    for (int i = 0; i < v->n; i++) {
        if (i) k = put(o, k, rnd(2) ? " , " : ",");
        k = put_json_value(o, k, &v->el[i]);
    }
    o[k++] = ']';
    return k;
}

static void rand_doc(doc *d) {
    for (int f = 0; f < NFIELDS; f++) {
        int r = (int)rnd(10);
        d->state[f] = r == 0 ? F_MISSING : r == 1 ? F_OBJECT : F_VALUE;
        memset(&d->v[f], 0, sizeof d->v[f]);
        if (rnd(6) == 0) {
            d->v[f].kind = R_TUP;
            d->v[f].n = (int)rnd(4);
            d->v[f].el = d->el[f];
            for (int i = 0; i < d->v[f].n; i++) rand_scalar(&d->el[f][i]);
        } else {
            rand_scalar(&d->v[f]);
            if (d->v[f].kind == R_NUM && rnd(3) == 0) d->v[f].num = (double)((int)rnd(2000) - 1000) / 8;
        }
    }
}

/* Writes d as JSON with noise: other keys holding objects and arrays, keys
 * written with escapes, blanks, and later duplicates that must be ignored. */
static size_t put_doc(char *o, const doc *d) {
    size_t k = 0;
    int first = 1;
    o[k++] = '{';
    int order[NFIELDS];
    for (int f = 0; f < NFIELDS; f++) order[f] = f;
    for (int f = NFIELDS - 1; f > 0; f--) {
        int j = (int)rnd((uint32_t)f + 1), t = order[f];
        order[f] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < NFIELDS; i++) {
        int f = order[i];
        if (rnd(3) == 0) {
            k = put(o, k, first ? " \"other\" : {\"a\": [1, {\"b\": \"}\"}], \"s\": 2}" : ",\"x\":[[],{}]");
            first = 0;
        }
        if (d->state[f] == F_MISSING) continue;
        if (!first) o[k++] = ',';
        first = 0;
        if (rnd(2)) o[k++] = ' ';
        if (rnd(5) == 0) k += (size_t)sprintf(o + k, "\"\\u%04x\"", FIELD_NAMES[f][0]);
        else k += (size_t)sprintf(o + k, "\"%s\"", FIELD_NAMES[f]);
        k = put(o, k, rnd(2) ? ": " : ":");
        if (d->state[f] == F_OBJECT) k = put(o, k, rnd(2) ? "{\"v\": 1}" : "[1, {}]");
        else k = put_json_value(o, k, &d->v[f]);
    }
    if (rnd(4) == 0) { /* duplicates come later and lose */
        int f = (int)rnd(NFIELDS);
        if (d->state[f] != F_MISSING) k += (size_t)sprintf(o + k, "%s\"%s\": \"dup\"", first ? "" : ",", FIELD_NAMES[f]);
    }
    o[k++] = rnd(2) ? '}' : ' ';
    if (o[k - 1] == ' ') o[k++] = '}';
    o[k] = 0;
    return k;
}

static void test_differential(void) {
    char expr[8192], json[8192];
    int compiled = 0, matched = 0, checks = 0;
    for (int iter = 0; iter < 4000; iter++) {
        npool = 0;
        node *tree = gen((int)rnd(5));
        size_t elen = print(expr, 0, tree);
        expr[elen] = 0;
        char err[256];
        vfilter *f = vfilter_compile(expr, elen, err, sizeof err);
        CHECKF(f, "'%s' does not compile: %s", expr, err);
        compiled++;
        int used[NFIELDS] = {0};
        uses(tree, used);
        for (int j = 0; j < 8; j++) {
            doc d;
            rand_doc(&d);
            size_t jlen = put_doc(json, &d);
            int want = 1, invalid = rnd(20) == 0;
            if (invalid) { /* cut the document short, or leave a comma before '}' */
                if (rnd(2)) jlen -= 1 + rnd((uint32_t)jlen - 1);
                else {
                    json[jlen - 1] = ',';
                    json[jlen++] = '}';
                }
                want = 0;
            }
            for (int fi = 0; fi < NFIELDS && want; fi++)
                if (used[fi] && d.state[fi] != F_VALUE) want = 0;
            if (want) {
                rval r = eval(tree, d.v);
                want = r_true(&r);
            }
            int got = vfilter_match(f, json, jlen);
            if (got != want) {
                vfilter_free(f);
                CHECKF(0, "'%s' on '%.*s': got %d, want %d", expr, (int)jlen, json, got, want);
            }
            CHECKF(invalid || vjson_valid(json, jlen, err, sizeof err), "%.*s: %s", (int)jlen, json, err);
            matched += got;
            checks++;
        }
        vfilter_free(f);
    }
    printf("  differential: %d expressions, %d matches checked, %d true\n", compiled, checks, matched);
    CHECK(matched > checks / 20 && matched < checks - checks / 20);
}

/* Fields used in the README's examples and Redis's own tests. */
static void test_redis_examples(void) {
    const char *items[] = {
        "{\"age\": 25, \"name\": \"Alice\", \"active\": true, \"scores\": [85, 90, 95], \"city\": \"New York\"}",
        "{\"age\": 30, \"name\": \"Bob\", \"active\": false, \"scores\": [70, 75, 80], \"city\": \"Boston\"}",
        "{\"age\": 35, \"name\": \"Charlie\", \"scores\": [60, 65, 70], \"city\": \"Seattle\"}",
        NULL,
        "invalid json",
    };
    struct {
        const char *expr;
        int want;
    } cases[] = {
        {".age == 25", 1},    {".age > 25", 2},        {".age <= 30", 2},   {".name == \"Alice\"", 1},
        {".name != \"Alice\"", 2}, {".active", 1},     {".age > 20 and .age < 30", 1},
        {".age < 30 or .age > 35", 1},                 {"!(.age == 25)", 2}, {".age in [25, 35]", 2},
        {".name in [\"Alice\", \"David\"]", 1},        {"\"lic\" in .name", 1}, {"\"ork\" in .city", 1},
        {"\"xyz\" in .name", 0}, {"\"\" in .name", 3}, {".name in \"\"", 0}, {"\"\" in .name && \"\" in \"\"", 3},
        {".age + 10 > 40", 1}, {".age * 2 > 60", 1},   {".age / 5 == 5", 1}, {".age % 2 == 0", 1},
        {".age ** 2 > 900", 1}, {".missing_field == \"value\"", 0}, {".any_field", 0},
        {"(.age > 20 and .age < 40) and (.city == \"Boston\" or .city == \"New York\")", 2},
        {".age > (20 + 10)", 1}, {".scores", 3},      {"!!.active", 1},    {"not not .active", 1},
        {"!!!.active", 1},     {"!.active or !!.active", 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        vfilter *f = vfilter_compile(cases[c].expr, strlen(cases[c].expr), NULL, 0);
        CHECKF(f, "%s", cases[c].expr);
        int n = 0;
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++)
            n += vfilter_match(f, items[i], items[i] ? strlen(items[i]) : 0);
        vfilter_free(f);
        CHECKF(n == cases[c].want, "%s: %d matches, want %d", cases[c].expr, n, cases[c].want);
    }
    /* filter_string_escape.py */
    const char *esc = "{\"dq\": \"a\\\"b\", \"sq\": \"O'Brien\", \"bs\": \"x\\\\y\", \"nl\": \"l1\\nl2\"}";
    T(".dq == \"a\\\"b\"", esc, 1);
    T(".sq == 'O\\'Brien'", esc, 1);
    T(".bs == \"x\\\\y\"", esc, 1);
    T(".nl == \"l1\\nl2\"", esc, 1);
    T("\"\\\"b\" in .dq", esc, 1);
    T(".dq in [\"zzz\", \"a\\\"b\"]", esc, 1);
    T("'a\"b' == .dq", esc, 1);
    T(".sq == \"O'Brien\"", esc, 1);
    /* Redis's README examples. */
    const char *movie = "{\"year\": 1985, \"genre\": \"action\", \"rating\": 8.5, \"director\": \"Nolan\"}";
    T(".year >= 1980 and .year < 1990", movie, 1);
    T(".genre == \"action\" and .rating > 8.0", movie, 1);
    T(".director in [\"Spielberg\", \"Nolan\"]", movie, 1);
    T("(.year - 2000) ** 2 < 100 and .rating / 2 > 4", movie, 0);
    T("5 in [1, 2, 3]", movie, 0);
    T("\"foo\" in [1, \"foo\", \"bar\"]", movie, 1);
}

int main(void) {
    TEST_RUN(test_arithmetic);
    TEST_RUN(test_comparison_and_logic);
    TEST_RUN(test_literals);
    TEST_RUN(test_strings_and_numbers);
    TEST_RUN(test_in);
    TEST_RUN(test_selectors);
    TEST_RUN(test_cannot_match);
    TEST_RUN(test_json_validator);
    TEST_RUN(test_limits);
    TEST_RUN(test_syntax_errors);
    TEST_RUN(test_oom);
    TEST_RUN(test_threads);
    TEST_RUN(test_redis_examples);
    TEST_RUN(test_differential);
    return TEST_DONE();
}
