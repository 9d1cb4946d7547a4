/* hiredis_session.c - a realistic hiredis client session against
 * inferkv-server (host port from argv): synchronous commands of every
 * family, a pipeline through the reply reader, RESP3 after HELLO 3, binary
 * values, and error replies.  Prints one line per check and the summary
 * "N passed, N failed"; exits non-zero on failure.  Built and run by
 * tests/integration/test_server_hiredis.sh. */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void check(int ok, const char *what) {
    printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
    if (ok) passed++;
    else failed++;
}

static int is_str(redisReply *r, const char *want) {
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
           r->len == strlen(want) && memcmp(r->str, want, r->len) == 0;
}

static int is_int(redisReply *r, long long want) {
    return r && r->type == REDIS_REPLY_INTEGER && r->integer == want;
}

static redisReply *cmd(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    return r;
}

static void session(redisContext *c) {
    redisReply *r;
    freeReplyObject(cmd(c, "FLUSHALL"));
    r = cmd(c, "SET %s %b", "bin", "a\0b\r\n", (size_t)5);
    check(is_str(r, "OK"), "SET with a binary value");
    freeReplyObject(r);
    r = cmd(c, "GET bin");
    check(r && r->type == REDIS_REPLY_STRING && r->len == 5 && memcmp(r->str, "a\0b\r\n", 5) == 0,
          "GET returns the binary value intact");
    freeReplyObject(r);
    r = cmd(c, "INCRBY counter 5");
    check(is_int(r, 5), "INCRBY");
    freeReplyObject(r);
    r = cmd(c, "RPUSH list a b c");
    check(is_int(r, 3), "RPUSH");
    freeReplyObject(r);
    r = cmd(c, "LRANGE list 0 -1");
    check(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3 && is_str(r->element[2], "c"), "LRANGE");
    freeReplyObject(r);
    r = cmd(c, "HSET h f1 v1 f2 v2");
    check(is_int(r, 2), "HSET");
    freeReplyObject(r);
    r = cmd(c, "ZADD z 1 one 2 two");
    check(is_int(r, 2), "ZADD");
    freeReplyObject(r);
    r = cmd(c, "ZRANGE z 0 -1 WITHSCORES");
    check(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4 && is_str(r->element[3], "2"),
          "ZRANGE WITHSCORES flat in RESP2");
    freeReplyObject(r);
    r = cmd(c, "LPUSH counter x");
    check(r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0, "WRONGTYPE error");
    freeReplyObject(r);

    /* pipeline: 1000 commands queued, replies read back in order */
    for (int i = 0; i < 1000; i++) redisAppendCommand(c, "INCR pipelined");
    int in_order = 1;
    for (int i = 1; i <= 1000; i++) {
        void *rep = NULL;
        if (redisGetReply(c, &rep) != REDIS_OK || !is_int(rep, i)) in_order = 0;
        freeReplyObject(rep);
    }
    check(in_order, "1000 pipelined INCR replies in order");

#ifdef REDIS_REPLY_MAP /* hiredis >= 1.0 speaks RESP3 */
    r = cmd(c, "HELLO 3");
    check(r && r->type == REDIS_REPLY_MAP, "HELLO 3 answers a map");
    freeReplyObject(r);
    r = cmd(c, "HGETALL h");
    check(r && r->type == REDIS_REPLY_MAP && r->elements == 4, "HGETALL is a map in RESP3");
    freeReplyObject(r);
    r = cmd(c, "ZSCORE z two");
    check(r && r->type == REDIS_REPLY_DOUBLE && r->dval == 2.0, "ZSCORE is a double in RESP3");
    freeReplyObject(r);
    r = cmd(c, "GET nothing");
    check(r && r->type == REDIS_REPLY_NIL, "null in RESP3");
    freeReplyObject(r);
#else
    r = cmd(c, "GET nothing");
    check(r && r->type == REDIS_REPLY_NIL, "nil bulk in RESP2");
    freeReplyObject(r);
    r = cmd(c, "HGETALL h");
    check(r && r->type == REDIS_REPLY_ARRAY && r->elements == 4, "HGETALL flattened in RESP2");
    freeReplyObject(r);
#endif
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s host port\n", argv[0]);
        return 2;
    }
    redisContext *c = redisConnect(argv[1], atoi(argv[2]));
    if (!c || c->err) {
        printf("  FAIL connect: %s\n", c ? c->errstr : "out of memory");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    session(c);
    redisFree(c);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
