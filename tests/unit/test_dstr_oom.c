/* test_dstr_oom.c - builders of dstr text under allocation failure.
 *
 * dstr_cat* return NULL on OOM and leave their string alive; code that
 * writes `s = dstr_cat(s, ...)` loses it.  Here every allocation of a build
 * is failed in turn (km_fail_after(1), (2), ... until the build succeeds):
 * each failing run must come back NULL with km_used() where it started
 * (nothing leaked; nothing freed twice, which the ASan build checks), and
 * the run that succeeds must give the whole text.
 *
 * A dstr grows geometrically, so one build allocates only a few times and
 * most appends never reach the allocator.  The builds are therefore
 * repeated with every starting length (a prefix, or padding in the
 * stand-ins' lines) up to the text's size: the append that crosses the
 * capacity moves by one byte each time, so each append in turn is the one
 * that allocates and fails.
 *
 * The builders are the core helper dstr_or_free and INFO's section writers
 * (info.c, compiled into this test; the server functions it calls are
 * replaced by stand-ins keeping the same rule: on OOM they free s). */
#include "test.h"
#include "../../src/server/info.c"

/* ---------------------------------------------------------- stand-ins */

server srv;
static command cmds[3], subcmds[2];
static dstr last_reply;
static int last_was_error;
static size_t pad; /* bytes added to each stand-in line */

unsigned lru_clock_now(void) { return 42; }
size_t clients_count(void) { return 1; }
size_t blocked_count(void) { return 0; }
command *command_table(size_t *n) {
    *n = sizeof cmds / sizeof cmds[0];
    return cmds;
}
void pubsub_totals(long long *channels, long long *patterns, long long *shard_channels) {
    *channels = 1, *patterns = 2, *shard_channels = 3;
}
int arg_is(const dstr s, const char *word) { return !strcasecmp(s, word); }

/* Two appends each, as persist_info + aof_info and the engine's writers
 * make, so that a failure inside another file's writer is swept too. */
static dstr two_steps(dstr s, const char *a, const char *b) {
    s = dstr_or_free(s, dstr_catfmt(s, "%s:%*s1\r\n", a, (int)pad, ""));
    if (s) s = dstr_or_free(s, dstr_catfmt(s, "%s:2\r\n", b));
    return s;
}
dstr persist_info(dstr s) { return two_steps(s, "# Persistence\r\nloading", "aof_enabled"); }
dstr persist_info_stats(dstr s) { return two_steps(s, "latest_fork_usec", "total_forks"); }
dstr infer_info_memory(dstr s) { return two_steps(s, "infer_used_memory", "infer_max_memory"); }
dstr infer_info_section(dstr s) { return two_steps(s, "# Infer\r\ninfer_models", "infer_simd"); }

void reply_error(client *c, const char *msg) {
    (void)c;
    dstr_free(last_reply);
    last_reply = dstr_new(msg);
    last_was_error = 1;
}
void reply_verbatim(client *c, const char *p, size_t len, const char *ext) {
    (void)c, (void)ext;
    dstr_free(last_reply);
    last_reply = dstr_newlen(p, len);
    last_was_error = 0;
}

static const dict_type keys_type = {dict_hash_dstr, dict_eq_dstr, dict_free_dstr, NULL};
static kdb dbs[3];

static void setup(void) {
    srv.dbs = dbs;
    srv.dbnum = 3;
    snprintf(srv.runid, sizeof srv.runid, "%040d", 7);
    for (int i = 0; i < 3; i++) {
        dbs[i].id = i;
        dbs[i].keys = dict_create(&keys_type);
        dbs[i].expires = dict_create(&keys_type);
    }
    /* db 1 stays empty: its line is skipped */
    dict_add(dbs[0].keys, dstr_new("a"), NULL);
    dict_add(dbs[2].keys, dstr_new("b"), NULL);
    dict_add(dbs[2].keys, dstr_new("c"), NULL);
    cmds[0] = (command){.name = "get", .calls = 5, .usec = 10};
    cmds[1] = (command){.name = "config", .subcmds = subcmds};
    subcmds[0] = (command){.name = "config|get", .calls = 1, .usec = 3, .failed = 1};
    cmds[2] = (command){.name = "set"}; /* never called: no line */
}

/* ---------------------------------------------------------------- sweep */

typedef dstr build_fn(void *arg);

typedef struct sweep_result {
    long failures;  /* failing runs, over every starting length */
    long leaked_at; /* first failing allocation that leaked, 0: none */
} sweep_result;

/* Fails allocation 1, 2, ... of fn until a run succeeds; returns that
 * run's text (the caller frees it), NULL if none did. */
static dstr sweep(build_fn *fn, void *arg, sweep_result *r) {
    for (long n = 1; n < 10000; n++) {
        size_t before = km_used();
        km_fail_after(n);
        dstr s = fn(arg);
        km_fail_after(0);
        if (s) return s;
        r->failures++;
        if (km_used() != before && !r->leaked_at) r->leaked_at = n;
    }
    return NULL;
}

static size_t prefix; /* starting length of the string a build appends to */

static dstr start(void) {
    static char fill[4096];
    if (!fill[0]) memset(fill, '.', sizeof fill);
    return dstr_newlen(fill, prefix);
}

static dstr build_or_free_chain(void *arg) {
    (void)arg;
    dstr s = start();
    for (int i = 0; s && i < 50; i++) s = dstr_or_free(s, dstr_catfmt(s, "line %d of text\n", i));
    return s;
}

static void test_dstr_or_free(void) {
    size_t before = km_used();
    dstr s = dstr_new("abc");
    CHECK(dstr_or_free(s, NULL) == NULL);
    CHECK_EQ_INT(km_used(), before); /* s was freed */
    s = dstr_new("abc");
    dstr t = dstr_or_free(s, dstr_cat(s, "def"));
    CHECK(t);
    CHECK_STR(t, "abcdef");
    dstr_free(t);
    CHECK_EQ_INT(km_used(), before);

    prefix = 0;
    dstr want = build_or_free_chain(NULL);
    CHECK(want);
    sweep_result r = {0, 0};
    for (prefix = 0; prefix <= dstr_len(want); prefix++) {
        dstr got = sweep(build_or_free_chain, NULL, &r);
        CHECK(got);
        CHECKF(!r.leaked_at, "prefix %zu: leak when allocation %ld fails", prefix, r.leaked_at);
        CHECK(dstr_len(got) == prefix + dstr_len(want) && !memcmp(got + prefix, want, dstr_len(want)));
        dstr_free(got);
    }
    dstr_free(want);
    CHECK(r.failures > 1000);
    CHECK_EQ_INT(km_used(), before);
}

static dstr build_section(void *arg) {
    dstr s = start();
    return s ? info_section_text(arg, s) : NULL;
}

/* Every section on its own, at every starting length; the deterministic
 * ones compared whole. */
static void test_info_sections(void) {
    static const char *names[] = {"server", "clients", "memory", "persistence", "stats",
                                  "replication", "cpu", "commandstats", "keyspace", "infer"};
    size_t before = km_used();
    pad = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        prefix = 0;
        dstr want = build_section((void *)names[i]);
        CHECK(want);
        int fixed = !strcmp(names[i], "commandstats") || !strcmp(names[i], "keyspace") ||
                    !strcmp(names[i], "persistence") || !strcmp(names[i], "infer") ||
                    !strcmp(names[i], "replication");
        sweep_result r = {0, 0};
        for (prefix = 0; prefix <= dstr_len(want) + 8; prefix++) {
            dstr got = sweep(build_section, (void *)names[i], &r);
            CHECKF(got, "section %s, prefix %zu: never succeeded", names[i], prefix);
            CHECKF(!r.leaked_at, "section %s, prefix %zu: leak when allocation %ld fails", names[i], prefix,
                   r.leaked_at);
            CHECKF(!strncmp(got + prefix, "# ", 2), "section %s: %.40s", names[i], got + prefix);
            if (fixed)
                CHECKF(dstr_len(got) == prefix + dstr_len(want) && !strcmp(got + prefix, want),
                       "section %s: %s vs %s", names[i], got + prefix, want);
            dstr_free(got);
        }
        CHECKF(r.failures > (long)dstr_len(want), "section %s: %ld failing runs", names[i], r.failures);
        dstr_free(want);
    }
    prefix = 0;
    dstr ks = build_section("keyspace");
    CHECK(ks);
    CHECK_STR(ks, "# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\ndb2:keys=2,expires=0,avg_ttl=0\r\n");
    dstr_free(ks);
    dstr cs = build_section("commandstats");
    CHECK(cs);
    CHECK(strstr(cs, "cmdstat_get:calls=5,") && strstr(cs, "cmdstat_config|get:calls=1,") &&
          !strstr(cs, "cmdstat_set:"));
    dstr_free(cs);
    CHECK_EQ_INT(km_used(), before);
}

static dstr build_info_cmd(void *arg) {
    client *c = arg;
    dstr_free(last_reply);
    last_reply = NULL;
    info_cmd(c);
    /* the reply stand-ins allocate too: the sweep fails them as well */
    if (!last_reply || last_was_error) {
        dstr_free(last_reply);
        last_reply = NULL;
        return NULL;
    }
    dstr r = last_reply;
    last_reply = NULL;
    return r;
}

/* INFO everything: the sections joined and info_cmd's one error check,
 * with the stand-ins' padding moving the allocating append through it. */
static void test_info_cmd(void) {
    client c;
    memset(&c, 0, sizeof c);
    dstr argv[2] = {dstr_new("info"), dstr_new("everything")};
    c.argc = 2;
    c.argv = argv;
    size_t before = km_used();
    sweep_result r = {0, 0};
    for (pad = 0; pad <= 600; pad++) {
        dstr got = sweep(build_info_cmd, &c, &r);
        CHECKF(got, "pad %zu: never succeeded", pad);
        CHECKF(!r.leaked_at, "pad %zu: leak when allocation %ld fails", pad, r.leaked_at);
        CHECK(strstr(got, "# Server\r\n") && strstr(got, "\r\n\r\n# Keyspace\r\ndb0:keys=1") &&
              strstr(got, "# Infer\r\n") && strstr(got, "infer_simd:2\r\n"));
        dstr_free(got);
    }
    pad = 0;
    CHECK(r.failures > 2000);
    CHECK_EQ_INT(km_used(), before);
    /* an OOM in the middle answers the error, not a cut text */
    km_fail_after(3);
    info_cmd(&c);
    km_fail_after(0);
    CHECK(last_reply && last_was_error);
    CHECK_STR(last_reply, "ERR out of memory");
    dstr_free(last_reply);
    last_reply = NULL;
    dstr_free(argv[0]);
    dstr_free(argv[1]);
}

int main(void) {
    setup();
    TEST_RUN(test_dstr_or_free);
    TEST_RUN(test_info_sections);
    TEST_RUN(test_info_cmd);
    for (int i = 0; i < 3; i++) {
        dict_release(dbs[i].keys);
        dict_release(dbs[i].expires);
    }
    return TEST_DONE();
}
