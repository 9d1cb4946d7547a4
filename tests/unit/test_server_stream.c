/* test_server_stream.c - the stream structure (stream.c, compiled into this
 * test): id arithmetic at its edges, appends and range walks in both
 * directions across nodes, where nodes close (100 entries or 4096 listpack
 * bytes, as Redis) and the radix-tree node count Redis reports for them,
 * deletes that empty a node, exact and approximate
 * trimming, PEL ordering, groups and consumers, deep copies, and failed
 * allocations that leave the stream as it was. */
#include "test.h"
#include "../../src/server/stream.c"

static int add(stream *s, uint64_t ms, uint64_t seq, const char *f, const char *v) {
    sid id = {ms, seq};
    const char *strs[2] = {f, v};
    size_t lens[2] = {strlen(f), strlen(v)};
    return stream_append(s, &id, strs, lens, 1);
}

/* Ids seen by a full walk, forward or backward, into out; returns count. */
static size_t walk(const stream *s, uint64_t lo_ms, uint64_t hi_ms, int rev, sid *out, size_t cap) {
    sid lo = {lo_ms, 0}, hi = {hi_ms, UINT64_MAX};
    siter it;
    sentry e;
    size_t n = 0;
    siter_start(&it, s, &lo, &hi, rev);
    while (siter_next(&it, &e) && n < cap) out[n++] = e.id;
    return n;
}

static void test_ids(void) {
    sid a = {5, UINT64_MAX};
    CHECK(sid_incr(&a) == 0 && a.ms == 6 && a.seq == 0);
    CHECK(sid_decr(&a) == 0 && a.ms == 5 && a.seq == UINT64_MAX);
    sid max = {UINT64_MAX, UINT64_MAX}, zero = {0, 0};
    CHECK(sid_incr(&max) != 0);
    CHECK(sid_decr(&zero) != 0);
    sid x = {1, 2}, y = {1, 3}, z = {2, 0};
    CHECK(sid_cmp(&x, &y) < 0 && sid_cmp(&y, &z) < 0 && sid_cmp(&z, &x) > 0 && sid_cmp(&x, &x) == 0);
    char buf[SID_STR_SIZE];
    sid_format(&max, buf);
    CHECK_STR(buf, "18446744073709551615-18446744073709551615");
}

/* The listpack model stores canonical int64 strings as integers. */
static void test_listpack_int_strings(void) {
    int64_t v;
    CHECK(lp_str_is_int("0", 1, &v) && v == 0);
    CHECK(!lp_str_is_int("-0", 2, &v));
    CHECK(!lp_str_is_int("01", 2, &v));
    CHECK(!lp_str_is_int("", 0, &v));
    CHECK(!lp_str_is_int("1a", 2, &v));
    CHECK(lp_str_is_int("9223372036854775807", 19, &v) && v == INT64_MAX);
    CHECK(!lp_str_is_int("9223372036854775808", 19, &v));
    CHECK(lp_str_is_int("-9223372036854775808", 20, &v) && v == INT64_MIN);
    CHECK(!lp_str_is_int("-9223372036854775809", 20, &v));
    CHECK_EQ_INT(lp_elem_int(127), 2);
    CHECK_EQ_INT(lp_elem_int(128), 3);
    CHECK_EQ_INT(lp_elem_str("abc", 3), 5);
}

static void test_append_and_walk(void) {
    stream *s = stream_new();
    CHECK(s);
    for (uint64_t i = 1; i <= 350; i++) CHECK(add(s, i, i % 3, "f", "v") == 0);
    CHECK_EQ_INT(s->length, 350);
    CHECK_EQ_INT(stream_node_count(s), 4); /* 100 + 100 + 100 + 50 */
    /* redis-server 7.0.15 reports radix-tree-nodes 11 for this stream */
    CHECK_EQ_INT(stream_rax_nodes(s), 11);
    CHECK(s->last_id.ms == 350 && s->first_id.ms == 1);
    static sid got[400];
    CHECK_EQ_INT(walk(s, 0, UINT64_MAX, 0, got, 400), 350);
    for (size_t i = 0; i < 350; i++) CHECK(got[i].ms == i + 1);
    CHECK_EQ_INT(walk(s, 0, UINT64_MAX, 1, got, 400), 350);
    for (size_t i = 0; i < 350; i++) CHECK(got[i].ms == 350 - i);
    /* ranges that start and end inside nodes and on node edges */
    CHECK_EQ_INT(walk(s, 95, 205, 0, got, 400), 111);
    CHECK(got[0].ms == 95 && got[110].ms == 205);
    CHECK_EQ_INT(walk(s, 95, 205, 1, got, 400), 111);
    CHECK(got[0].ms == 205 && got[110].ms == 95);
    CHECK_EQ_INT(walk(s, 101, 101, 0, got, 400), 1);
    CHECK_EQ_INT(walk(s, 400, 500, 0, got, 400), 0);
    CHECK_EQ_INT(walk(s, 400, 500, 1, got, 400), 0);
    CHECK_EQ_INT(walk(s, 0, 0, 1, got, 400), 0);
    /* fields come back as stored */
    sid lo = {7, 0}, hi = {7, UINT64_MAX};
    siter it;
    sentry e;
    siter_start(&it, s, &lo, &hi, 0);
    CHECK(siter_next(&it, &e) && e.npairs == 1);
    const char *f, *v;
    size_t fl, vl;
    sentry_next_pair(&e, &f, &fl, &v, &vl);
    CHECK(fl == 1 && f[0] == 'f' && vl == 1 && v[0] == 'v');
    stream_free(s);
}

static void test_node_closes_by_bytes(void) {
    stream *s = stream_new();
    CHECK_EQ_INT(stream_rax_nodes(s), 1); /* Redis: an empty tree is its root */
    char big[1001];
    memset(big, 'x', 1000);
    big[1000] = '\0';
    for (uint64_t i = 1; i <= 12; i++) CHECK(add(s, i, 0, "f", big) == 0);
    /* about 1 KB per entry: a node holds 4 before its listpack would pass
     * 4096 bytes, so 12 entries take 3 nodes (redis-server agrees: the
     * conformance corpus trims such a stream with MAXLEN ~) */
    CHECK_EQ_INT(stream_node_count(s), 3);
    stream_free(s);
}

static void test_delete(void) {
    stream *s = stream_new();
    for (uint64_t i = 1; i <= 150; i++) CHECK(add(s, i, 0, "f", "v") == 0);
    sid id = {50, 0};
    CHECK(stream_delete(s, &id) == 1);
    CHECK(stream_delete(s, &id) == 0);
    CHECK(!stream_has(s, &id));
    sid missing = {50, 1};
    CHECK(stream_delete(s, &missing) == 0);
    CHECK_EQ_INT(s->length, 149);
    /* emptying the first node frees it */
    for (uint64_t i = 1; i <= 100; i++) {
        sid d = {i, 0};
        stream_delete(s, &d);
    }
    CHECK_EQ_INT(stream_node_count(s), 1);
    sid first, last;
    CHECK(stream_edge_id(s, 0, &first) && first.ms == 101);
    CHECK(stream_edge_id(s, 1, &last) && last.ms == 150);
    /* a deleted entry still counts toward its node's 100 */
    for (uint64_t i = 151; i <= 200; i++) CHECK(add(s, i, 0, "f", "v") == 0);
    CHECK_EQ_INT(stream_node_count(s), 1);
    CHECK(add(s, 201, 0, "f", "v") == 0);
    CHECK_EQ_INT(stream_node_count(s), 2);
    stream_free(s);
}

static void test_trim(void) {
    stream *s = stream_new();
    for (uint64_t i = 1; i <= 250; i++) CHECK(add(s, i, 0, "f", "v") == 0);
    /* approximate: only whole nodes */
    CHECK_EQ_INT(stream_trim(s, TRIM_MAXLEN, 200, NULL, 1, 10000), 0);
    CHECK_EQ_INT(stream_trim(s, TRIM_MAXLEN, 149, NULL, 1, 10000), 100);
    CHECK_EQ_INT(s->length, 150);
    CHECK(s->first_id.ms == 101);
    /* LIMIT stops before a node that would pass it */
    CHECK_EQ_INT(stream_trim(s, TRIM_MAXLEN, 0, NULL, 1, 99), 0);
    /* exact: inside the node */
    CHECK_EQ_INT(stream_trim(s, TRIM_MAXLEN, 140, NULL, 0, 0), 10);
    CHECK(s->first_id.ms == 111);
    sid minid = {205, 0};
    CHECK_EQ_INT(stream_trim(s, TRIM_MINID, 0, &minid, 0, 0), 94);
    CHECK(s->first_id.ms == 205);
    CHECK_EQ_INT(stream_trim(s, TRIM_MAXLEN, 0, NULL, 0, 0), 46);
    CHECK_EQ_INT(s->length, 0);
    CHECK(s->first_id.ms == 0 && s->first_id.seq == 0);
    CHECK(s->last_id.ms == 250);
    stream_free(s);
}

static nack *mk(uint64_t ms) {
    nack *n = km_calloc(sizeof *n);
    n->id.ms = ms;
    return n;
}

static void test_pel(void) {
    pelvec p = {0};
    uint64_t order[] = {5, 1, 9, 3, 7, 2, 8};
    for (size_t i = 0; i < 7; i++) CHECK(pel_insert(&p, mk(order[i])) == 0);
    CHECK_EQ_INT(pel_len(&p), 7);
    for (size_t i = 1; i < 7; i++) CHECK(pel_at(&p, i - 1)->id.ms < pel_at(&p, i)->id.ms);
    sid three = {3, 0}, four = {4, 0};
    CHECK(pel_find(&p, &three) && !pel_find(&p, &four));
    CHECK_EQ_INT(pel_lower_bound(&p, &four), 3); /* 1 2 3 | 5 */
    /* acknowledging the oldest moves the start; inserts still work */
    for (uint64_t ms = 1; ms <= 3; ms++) {
        sid id = {ms, 0};
        nack *n = pel_find(&p, &id);
        pel_remove(&p, &id);
        km_free(n);
    }
    CHECK_EQ_INT(pel_len(&p), 4);
    CHECK(pel_at(&p, 0)->id.ms == 5);
    for (uint64_t ms = 10; ms < 40; ms++) CHECK(pel_insert(&p, mk(ms)) == 0);
    CHECK(pel_insert(&p, mk(6)) == 0);
    CHECK_EQ_INT(pel_len(&p), 35);
    for (size_t i = 1; i < pel_len(&p); i++) CHECK(pel_at(&p, i - 1)->id.ms < pel_at(&p, i)->id.ms);
    sid mid = {20, 0};
    nack *n = pel_find(&p, &mid);
    pel_remove(&p, &mid);
    km_free(n);
    CHECK(!pel_find(&p, &mid));
    while (pel_len(&p)) {
        nack *x = pel_at(&p, 0);
        pel_remove(&p, &x->id);
        km_free(x);
    }
    km_free(p.a);
}

/* Removing or inserting near the front of a PEL moves the few entries
 * before the position, not the long tail after it: acking a backlog in
 * order behind one entry that stays pending (a stuck consumer) must cost
 * O(1) per ack, not O(backlog) (review: it moved the whole tail, so
 * acknowledging N entries cost O(N^2)). */
static void test_pel_moves_the_short_side(void) {
    pelvec p = {0};
    for (uint64_t ms = 1; ms <= 1000; ms++) CHECK(pel_insert(&p, mk(ms)) == 0);
    for (uint64_t ms = 2; ms <= 500; ms++) { /* 1 stays pending in front */
        sid id = {ms, 0};
        nack *n = pel_find(&p, &id);
        pel_remove(&p, &id);
        km_free(n);
        CHECK_EQ_INT(p.start, ms - 1); /* the one entry before moved up */
    }
    CHECK_EQ_INT(pel_len(&p), 501);
    CHECK(pel_at(&p, 0)->id.ms == 1 && pel_at(&p, 1)->id.ms == 501);
    /* a re-delivery of an old id lands in the slack before start */
    size_t start = p.start;
    CHECK(pel_insert(&p, mk(300)) == 0);
    CHECK_EQ_INT(p.start, start - 1);
    CHECK(pel_at(&p, 0)->id.ms == 1 && pel_at(&p, 1)->id.ms == 300 && pel_at(&p, 2)->id.ms == 501);
    for (size_t i = 1; i < pel_len(&p); i++) CHECK(pel_at(&p, i - 1)->id.ms < pel_at(&p, i)->id.ms);
    /* near the back the tail side is the short one */
    sid late = {999, 0};
    nack *n = pel_find(&p, &late);
    start = p.start;
    pel_remove(&p, &late);
    km_free(n);
    CHECK_EQ_INT(p.start, start);
    CHECK(!pel_find(&p, &late) && pel_at(&p, pel_len(&p) - 1)->id.ms == 1000);
    while (pel_len(&p)) {
        nack *x = pel_at(&p, 0);
        pel_remove(&p, &x->id);
        km_free(x);
    }
    km_free(p.a);
}

static void test_groups_consumers_dup(void) {
    stream *s = stream_new();
    for (uint64_t i = 1; i <= 5; i++) CHECK(add(s, i, 0, "f", "v") == 0);
    sid zero = {0, 0};
    int oom;
    CHECK(sgroup_create(s, "zeta", 4, &zero, -1, &oom));
    CHECK(sgroup_create(s, "alpha", 5, &zero, -1, &oom));
    CHECK(sgroup_create(s, "alp", 3, &zero, -1, &oom));
    CHECK(!sgroup_create(s, "alpha", 5, &zero, -1, &oom) && !oom);
    CHECK(!strcmp(s->groups[0]->name, "alp") && !strcmp(s->groups[1]->name, "alpha") &&
          !strcmp(s->groups[2]->name, "zeta"));
    sgroup *g = sgroup_find(s, "alpha", 5);
    CHECK(g);
    sconsumer *bob = sconsumer_create(g, "bob", 3, 1), *ann = sconsumer_create(g, "ann", 3, 1);
    CHECK(bob && ann && g->consumers[0] == ann);
    for (uint64_t i = 1; i <= 4; i++) {
        nack *n = mk(i);
        n->consumer = i % 2 ? bob : ann;
        CHECK(pel_insert(&g->pel, n) == 0 && pel_insert(&n->consumer->pel, n) == 0);
    }
    stream *copy = stream_dup(s);
    CHECK(copy && copy->length == 5 && copy->ngroups == 3);
    sgroup *cg = sgroup_find(copy, "alpha", 5);
    CHECK(cg && pel_len(&cg->pel) == 4 && cg->nconsumers == 2);
    CHECK(pel_at(&cg->pel, 0)->consumer == sconsumer_find(cg, "bob", 3));
    /* deleting a consumer drops its entries from the group's PEL only in
     * the original */
    CHECK_EQ_INT(sconsumer_delete(g, bob), 2);
    CHECK_EQ_INT(pel_len(&g->pel), 2);
    CHECK_EQ_INT(pel_len(&cg->pel), 4);
    sid one = {1, 0};
    CHECK(stream_delete(s, &one) == 1 && stream_has(copy, &one));
    CHECK(sgroup_destroy(s, "zeta", 4) == 1 && sgroup_destroy(s, "zeta", 4) == 0);
    CHECK(sgroup_find(copy, "zeta", 4));
    stream_free(s);
    stream_free(copy);
}

static void test_oom_leaves_stream_intact(void) {
    stream *s = stream_new();
    for (uint64_t i = 1; i <= 100; i++) CHECK(add(s, i, 0, "f", "v") == 0);
    /* The k-th allocation of an append fails, for growing k: appends that
     * open a node allocate several times.  A failed append leaves length,
     * last id and nodes as they were; the stream stays walkable. */
    uint64_t len = 100, last = 100;
    int fails = 0, oks = 0;
    static char big[5001]; /* one entry over 4096 bytes fills a node alone */
    memset(big, 'x', 5000);
    for (long k = 1; k <= 12; k++) {
        size_t nodes = stream_node_count(s);
        km_fail_after(1 + k % 6);
        int r = add(s, 1000 + (uint64_t)k, 0, k % 2 ? "field" : "other", big);
        km_fail_after(0);
        if (r == 0) {
            oks++;
            len++;
            last = 1000 + (uint64_t)k;
        } else {
            fails++;
            CHECK_EQ_INT(stream_node_count(s), nodes);
        }
        CHECK_EQ_INT(s->length, len);
        CHECK(s->last_id.ms == last);
    }
    CHECKF(fails >= 2 && oks >= 1, "fails %d oks %d", fails, oks);
    for (uint64_t i = 0; i < 120; i++) CHECK(add(s, 2000 + i, 0, "a", "b") == 0);
    static sid got[400];
    size_t n = walk(s, 0, UINT64_MAX, 0, got, 400);
    CHECK(n == s->length);
    for (size_t i = 1; i < n; i++) CHECK(sid_cmp(&got[i - 1], &got[i]) < 0);
    stream_free(s);
}

int main(void) {
    TEST_RUN(test_ids);
    TEST_RUN(test_listpack_int_strings);
    TEST_RUN(test_append_and_walk);
    TEST_RUN(test_node_closes_by_bytes);
    TEST_RUN(test_delete);
    TEST_RUN(test_trim);
    TEST_RUN(test_pel);
    TEST_RUN(test_pel_moves_the_short_side);
    TEST_RUN(test_groups_consumers_dup);
    TEST_RUN(test_oom_leaves_stream_intact);
    return TEST_DONE();
}
