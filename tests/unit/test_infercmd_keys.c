/* test_infercmd_keys.c - libinfercmd's key finder (keys.c): which arguments
 * of INFER.GENERATE, INFER.EMBED and INFER.RAG are keys and what is done
 * to them, exactly as the commands' own parsers read them (what COMMAND
 * GETKEYS and the module's getkeys-api answer, and the read/write rule);
 * the static key specs; Redis Cluster's hash slot of a key. */
#include "infercmd.h"
#include "test.h"

#define MAXA 24

/* argv from a NULL-terminated list of C strings. */
static int args(ic_arg *a, const char *const *words) {
    int n = 0;
    for (; words[n] && n < MAXA; n++) a[n] = (ic_arg){words[n], strlen(words[n])};
    return n;
}

/* The keys found, as "pos:access pos:access ..." */
static const char *keys_of(int cmd, const char *const *words) {
    static char out[128];
    ic_arg a[MAXA];
    ic_key k[IC_MAX_KEYS];
    int n = ic_keys(cmd, a, args(a, words), k), len = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++)
        len += snprintf(out + len, sizeof out - (size_t)len, "%s%d:%s", i ? " " : "", k[i].pos,
                        k[i].access == IC_KEY_READ ? "R" : k[i].access == IC_KEY_INSERT ? "I" : "U");
    return out;
}

static int writes(int cmd, const char *const *words) {
    ic_arg a[MAXA];
    return ic_keys_write(cmd, a, args(a, words));
}

#define W(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_generate(void) {
    int g = IC_KEYS_GENERATE;
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s", "hello")), "");
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s", "PROMPTKEY", "p", "STORE", "o")), "3:R 5:U");
    CHECK_STR(keys_of(g, W("infer.generate", "s", "tokenskey", "t", "stream", "x", "maxtokens", "5")), "3:R 5:I");
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s", "hi", "STORE", "a", "STREAM", "b", "STORE", "c")), "6:I 8:U");
    /* keywords spelled by a prompt or an option's value are not keys */
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s", "STORE", "MAXTOKENS", "5")), "");
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s", "hi", "STOP", "STORE", "CHAT", "TIMEOUT", "9")), "");
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s", "PROMPTKEY")), ""); /* the prompt text "PROMPTKEY" */
    /* the parser stops at what it refuses; so does the finder */
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s", "hi", "BOGUS", "STORE", "o")), "");
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s", "hi", "STORE")), "");
    CHECK_STR(keys_of(g, W("INFER.GENERATE", "s")), "");
    CHECK(!writes(g, W("INFER.GENERATE", "s", "PROMPTKEY", "p", "MAXTOKENS", "5")));
    CHECK(writes(g, W("INFER.GENERATE", "s", "hi", "STORE", "o")));
    CHECK(writes(g, W("INFER.GENERATE", "s", "hi", "STREAM", "o")));
    CHECK(!writes(g, W("INFER.GENERATE", "s", "STORE", "TEMPERATURE", "0")));
}

static void test_embed_and_rag(void) {
    int e = IC_KEYS_EMBED, r = IC_KEYS_RAG;
    CHECK_STR(keys_of(e, W("INFER.EMBED", "m", "INTO", "k", "el", "text", "Q8")), "3:I");
    CHECK_STR(keys_of(e, W("INFER.EMBED", "m", "INTO", "k", "el")), ""); /* refused: too few */
    CHECK_STR(keys_of(e, W("INFER.EMBED", "m", "hello", "INTO", "x", "y", "z")), "");
    CHECK(writes(e, W("INFER.EMBED", "m", "into", "k", "el", "text")));
    CHECK(!writes(e, W("INFER.EMBED", "m", "a", "b", "FP32")));
    CHECK_STR(keys_of(r, W("INFER.RAG", "g", "e", "vs", "q")), "3:R");
    CHECK_STR(keys_of(r, W("INFER.RAG", "g", "e", "vs", "q", "WITHSOURCES", "COUNT", "3", "TEMPLATE", "t", "CHAT",
                           "FILTER", "STORE", "STREAM", "s", "STORE", "o")),
              "3:R 9:R 14:I 16:U");
    CHECK_STR(keys_of(r, W("INFER.RAG", "g", "e", "vs", "STORE")), "3:R"); /* the question "STORE" */
    CHECK_STR(keys_of(r, W("INFER.RAG", "g", "e", "vs")), "");
    CHECK(!writes(r, W("INFER.RAG", "g", "e", "vs", "q", "TEMPLATE", "t")));
    CHECK(writes(r, W("INFER.RAG", "g", "e", "vs", "q", "STORE", "o")));
    CHECK_EQ_INT(ic_keys_command("INFER.Rag", 9), IC_KEYS_RAG);
    CHECK_EQ_INT(ic_keys_command("infer.load", 10), -1);
}

static void test_specs(void) {
    int n;
    const ic_keyspec *s = ic_keyspecs(IC_KEYS_GENERATE, &n);
    CHECK(n == 4 && !strcmp(s[0].keyword, "PROMPTKEY") && s[0].startfrom == 2 && s[0].access == IC_KEY_READ);
    CHECK(!strcmp(s[3].keyword, "STORE") && s[3].startfrom == 3 && s[3].access == IC_KEY_UPDATE && s[3].incomplete);
    s = ic_keyspecs(IC_KEYS_RAG, &n);
    CHECK(n == 4 && !s[0].keyword && s[0].index == 3 && !s[0].incomplete);
    s = ic_keyspecs(IC_KEYS_EMBED, &n);
    CHECK(n == 1 && !strcmp(s[0].keyword, "INTO") && s[0].access == IC_KEY_INSERT);
    CHECK(ic_keyspecs(-1, &n) == NULL && n == 0);
}

static void test_slots(void) {
    /* the values redis-py's key_slot (and CLUSTER KEYSLOT) give */
    CHECK_EQ_INT(ic_key_slot("foo", 3), 12182);
    CHECK_EQ_INT(ic_key_slot("bar", 3), 5061);
    CHECK_EQ_INT(ic_key_slot("123456789", 9), 12739);
    CHECK_EQ_INT(ic_key_slot("{a}p", 4), 15495);
    CHECK_EQ_INT(ic_key_slot("{user1000}.following", 20), 3443); /* the tag's slot: user1000's */
    CHECK_EQ_INT(ic_key_slot("{}x", 3), 10595);                  /* an empty tag: the whole key */
    CHECK_EQ_INT(ic_key_slot("a{}{b}", 6), 15033);               /* the first '{' decides */
    CHECK_EQ_INT(ic_key_slot("foo{bar}{zap}", 13), 5061);        /* the first tag: bar */
    CHECK_EQ_INT(ic_key_slot("foo{{bar}}", 10), 4015);           /* the tag is "{bar" */
}

int main(void) {
    TEST_RUN(test_generate);
    TEST_RUN(test_embed_and_rag);
    TEST_RUN(test_specs);
    TEST_RUN(test_slots);
    return TEST_DONE();
}
