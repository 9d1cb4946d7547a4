/* test_server_resp.c - the request parser of inferkv-server (resp.c,
 * compiled into this test): commands split at every byte boundary, inline
 * quoting, and each malformed input getting Redis's protocol error without
 * trusting the sizes it claims. */
#include "test.h"
#include "../../src/server/resp.c"

static const resp_limits lim = {512LL * 1024 * 1024, 0};

/* Feeds buf in pieces of `step` bytes, like a slow network. */
static int feed(resp_parser *p, const char *buf, size_t len, size_t step, char *err) {
    dstr acc = dstr_empty();
    size_t pos = 0;
    int r = RESP_NEED_MORE;
    for (size_t off = 0; off < len && r == RESP_NEED_MORE;) {
        size_t n = len - off < step ? len - off : step;
        acc = dstr_catlen(acc, buf + off, n);
        off += n;
        r = resp_parse(p, acc, dstr_len(acc), &pos, &lim, err, 256);
    }
    dstr_free(acc);
    return r;
}

static void test_multibulk_any_split(void) {
    static const char cmd[] = "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$0\r\n\r\n";
    size_t len = sizeof cmd - 1;
    for (size_t step = 1; step <= len; step++) {
        resp_parser p;
        resp_parser_init(&p);
        char err[256];
        CHECKF(feed(&p, cmd, len, step, err) == RESP_COMMAND, "step %zu", step);
        CHECK_EQ_INT(p.argc, 3);
        CHECK(dstr_len(p.argv[1]) == 3 && memcmp(p.argv[1], "k\0y", 3) == 0);
        CHECK_EQ_INT(dstr_len(p.argv[2]), 0);
        resp_parser_reset(&p);
    }
}

static void test_inline_quoting(void) {
    dstr *argv;
    const char *line = "SET \"a b\\x41\\n\" 'it\\'s' plain";
    int argc = resp_split_args(line, strlen(line), &argv);
    CHECK_EQ_INT(argc, 4);
    CHECK(dstr_len(argv[1]) == 5 && memcmp(argv[1], "a bA\n", 5) == 0);
    CHECK_STR(argv[2], "it's");
    CHECK_STR(argv[3], "plain");
    resp_free_args(argv, argc);
    CHECK(resp_split_args("\"abc", 4, &argv) == -1);
    CHECK(resp_split_args("\"a\"b", 4, &argv) == -1);
    CHECK(resp_split_args("'a", 2, &argv) == -1);
}

static int parse_once(const char *buf, size_t len, char *err) {
    resp_parser p;
    resp_parser_init(&p);
    size_t pos = 0;
    int r = resp_parse(&p, buf, len, &pos, &lim, err, 256);
    resp_parser_reset(&p);
    return r;
}

static void test_errors_match_redis(void) {
    char err[256];
    CHECK(parse_once("*abc\r\n", 6, err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: invalid multibulk length");
    CHECK(parse_once("*2147483648\r\n", 13, err) == RESP_PROTO_ERR);
    CHECK(parse_once("*1\r\n$-1\r\n", 9, err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: invalid bulk length");
    CHECK(parse_once("*1\r\n$1x\r\n", 9, err) == RESP_PROTO_ERR);
    CHECK(parse_once("*1\r\nPING\r\n", 10, err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: expected '$', got 'P'");
    CHECK(parse_once("*1\r\n$536870913\r\n", 16, err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: invalid bulk length");
    CHECK(parse_once("SET \"abc\r\n", 10, err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: unbalanced quotes in request");
    CHECK(parse_once("*0\r\n", 4, err) == RESP_EMPTY);
    CHECK(parse_once("*-5\r\n", 5, err) == RESP_EMPTY);
    CHECK(parse_once("\r\n", 2, err) == RESP_EMPTY);
}

/* A claimed count of 2^31-1 arguments reserves no more than 1024 slots:
 * memory follows the bytes that actually arrive. */
static void test_huge_count_not_trusted(void) {
    resp_parser p;
    resp_parser_init(&p);
    char err[256];
    size_t pos = 0, before = km_used();
    const char *buf = "*2147483647\r\n$1\r\na\r\n";
    CHECK(resp_parse(&p, buf, strlen(buf), &pos, &lim, err, sizeof err) == RESP_NEED_MORE);
    CHECK(km_used() - before < 64 * 1024);
    CHECK_EQ_INT(p.argc, 1);
    resp_parser_reset(&p);
}

/* Header lines that never end are refused after 64 KB. */
static void test_endless_lines(void) {
    size_t n = RESP_INLINE_MAX + 10;
    char *buf = malloc(n);
    char err[256];
    memset(buf, 'a', n);
    CHECK(parse_once(buf, n, err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: too big inline request");
    buf[0] = '*';
    CHECK(parse_once(buf, n, err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: too big mbulk count string");
    memcpy(buf, "*1\r\n$", 5);
    CHECK(parse_once(buf, n, err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: too big bulk count string");
    free(buf);
}

/* Before AUTH, big requests are refused early (Redis 7.0 rules). */
static void test_unauthenticated_limits(void) {
    resp_limits strict = {512LL * 1024 * 1024, 1};
    resp_parser p;
    char err[256];
    size_t pos = 0;
    resp_parser_init(&p);
    CHECK(resp_parse(&p, "*11\r\n", 5, &pos, &strict, err, sizeof err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: unauthenticated multibulk length");
    resp_parser_reset(&p);
    pos = 0;
    CHECK(resp_parse(&p, "*1\r\n$16385\r\n", 12, &pos, &strict, err, sizeof err) == RESP_PROTO_ERR);
    CHECK_STR(err, "Protocol error: unauthenticated bulk length");
    resp_parser_reset(&p);
}

int main(void) {
    TEST_RUN(test_multibulk_any_split);
    TEST_RUN(test_inline_quoting);
    TEST_RUN(test_errors_match_redis);
    TEST_RUN(test_huge_count_not_trusted);
    TEST_RUN(test_endless_lines);
    TEST_RUN(test_unauthenticated_limits);
    return TEST_DONE();
}
