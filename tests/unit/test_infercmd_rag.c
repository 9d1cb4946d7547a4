/* test_infercmd_rag.c - libinfercmd's INFER.EMBED and INFER.RAG pieces that
 * need no engine thread: the UTF-8 check, the JSON string-field reader
 * (escapes, nesting, duplicates, every truncation of valid input, garbage),
 * INFER.EMBED's grammar (options read from the end, INTO, every error),
 * and - with stories260K from ../shared - INFER.RAG's grammar, chunk
 * sources, templates and the prompt cut to the context, whose ids must be
 * exactly those INFER.GENERATE makes of the prompt it reports. */
#include "infercmd.h"
#include "test.h"

#include <stdarg.h>
#include <unistd.h>

#define STORIES "models/cozy-creator_python-gen-worker/stories260K.gguf"

static ic_arg A(const char *s) { return (ic_arg){s, strlen(s)}; }

static void test_utf8(void) {
    size_t bad = 99;
    const char *ok[] = {"", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        CHECKF(ic_utf8_valid(ok[i], strlen(ok[i]), &bad), "'%s' refused", ok[i]);
    struct {
        const char *s;
        size_t at;
    } no[] = {{"a\xff", 1},          {"\xc0\xaf", 0},         {"ab\xe0\x80\xaf", 2}, {"\xed\xa0\x80", 0},
              {"\xf4\x90\x80\x80", 0}, {"x\xc3", 1},           {"\xe2\x82", 0},       {"\x80", 0},
              {"ok\xf8\x88\x80\x80\x80", 2}, {"\xc3\x28", 0}};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        CHECKF(!ic_utf8_valid(no[i].s, strlen(no[i].s), &bad), "case %zu accepted", i);
        CHECK_EQ_INT(bad, no[i].at);
    }
}

/* The field as a string ("" + rc 0 when absent), or NULL when out of memory. */
static int field(const char *json, const char *name, char *out, size_t cap) {
    char *v;
    size_t n;
    int rc = ic_json_string_field(json, json ? strlen(json) : 0, name, strlen(name), &v, &n);
    out[0] = 0;
    if (rc == 1) {
        snprintf(out, cap, "%.*s", (int)n, v);
        free(v);
    }
    return rc;
}

static void test_json_field(void) {
    char v[256];
    CHECK(field("{\"text\": \"hello\"}", "text", v, sizeof v) == 1);
    CHECK_STR(v, "hello");
    CHECK(field("  {\"a\":1,\"b\":[1,{\"text\":\"no\"}],\"text\":\"yes\"} ", "text", v, sizeof v) == 1);
    CHECK_STR(v, "yes");
    CHECK(field("{\"text\":\"first\",\"text\":\"second\"}", "text", v, sizeof v) == 1);
    CHECK_STR(v, "first");
    CHECK(field("{\"t\\u0065xt\":\"escaped key\"}", "text", v, sizeof v) == 1);
    CHECK_STR(v, "escaped key");
    CHECK(field("{\"text\":\"a\\\"b\\\\c\\/d\\n\\t\"}", "text", v, sizeof v) == 1);
    CHECK_STR(v, "a\"b\\c/d\n\t");
    CHECK(field("{\"text\":\"\\u00e9\\ud83d\\ude00\"}", "text", v, sizeof v) == 1);
    CHECK_STR(v, "\xc3\xa9\xf0\x9f\x98\x80");
    CHECK(field("{\"text\":\"x\\ud800y\\udc00z\"}", "text", v, sizeof v) == 1);
    CHECK_STR(v, "x\xef\xbf\xbdy\xef\xbf\xbdz"); /* lone surrogates: U+FFFD */
    CHECK(field("{\"text\":\"\"}", "text", v, sizeof v) == 1);
    CHECK_STR(v, "");
    CHECK(field("{\"k\":{\"deep\":[[[[\"]]]]}\"]]]]},\"text\":\"after\"}", "text", v, sizeof v) == 1);
    CHECK_STR(v, "after");
    const char *none[] = {NULL,
                          "",
                          "[\"text\",\"x\"]",
                          "\"text\"",
                          "{}",
                          "{\"text\": 42}",
                          "{\"text\": null}",
                          "{\"text\": [\"x\"]}",
                          "{\"text\": \"unterminated",
                          "{\"text\" \"x\"}",
                          "{\"a\":1 \"text\":\"x\"}",
                          "{\"text\":\"bad \\x escape\"}",
                          "{\"text\":\"bad \\u12g4\"}",
                          "{\"text\":\"raw\ncontrol\"}",
                          "{\"a\": {\"text\": \"nested only\"}}",
                          "{\"a\":]}",
                          "not json"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        CHECKF(field(none[i], "text", v, sizeof v) == 0, "case %zu gave '%s'", i, v);
    /* every truncation of a valid object: never a crash, never a read past
     * the end (ASan), at most the full value */
    const char *full = "{\"a\":[1,2,{\"b\":\"c\"}],\"n\":-1.5e3,\"t\":true,\"text\":\"caf\\u00e9 \\\"q\\\"\",\"z\":null}";
    size_t fl = strlen(full);
    for (size_t n = 0; n <= fl; n++) {
        char *cut = malloc(n ? n : 1);
        CHECK(cut);
        memcpy(cut, full, n);
        char *o;
        size_t ol;
        int rc = ic_json_string_field(cut, n, "text", 4, &o, &ol);
        free(cut);
        CHECKF(rc == 0 || (rc == 1 && ol == strlen("caf\xc3\xa9 \"q\"")), "prefix %zu: rc %d", n, rc);
        if (rc == 1) free(o);
    }
    /* pseudo-random bytes */
    unsigned x = 12345;
    for (int round = 0; round < 20000; round++) {
        char buf[64];
        size_t n = (size_t)(round % 64);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = "{}[]\":,\\ute x0"[(x >> 16) % 15];
        }
        char *o;
        size_t ol;
        int rc = ic_json_string_field(buf, n, "text", 4, &o, &ol);
        CHECK(rc == 0 || rc == 1);
        if (rc == 1) free(o);
    }
}

/* ic_embed_parse over the NULL-terminated argument list. */
static int embed_parse(const ic_model *m, ic_embed_opts *o, char *err, ...) {
    ic_arg a[32];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    for (const char *s; n < 32 && (s = va_arg(ap, const char *));) a[n++] = A(s);
    va_end(ap);
    return ic_embed_parse(a, n, m, 0, o, err, IC_ERRLEN);
}

static void test_embed_grammar(void) {
    ic_model enc = {0}, dec = {0};
    enc.encoder = 1, enc.embed_dim = 8;
    ic_embed_opts o;
    char err[IC_ERRLEN];
#define P(m, ...) embed_parse((m), &o, err, __VA_ARGS__, (const char *)NULL)
    CHECK(P(&enc, "INFER.EMBED", "e", "one", "two") == 0 && o.n_texts == 2 && !o.fp32 && o.params.normalize &&
          !o.into);
    CHECK(P(&enc, "INFER.EMBED", "e", "one", "two", "NORMALIZE", "no", "FP32", "TIMEOUT", "5") == 0 &&
          o.n_texts == 2 && o.fp32 && !o.params.normalize && o.timeout_ms == 5);
    CHECK(P(&enc, "INFER.EMBED", "e", "FP32") == 0 && o.n_texts == 1 && !o.fp32); /* the only text */
    CHECK(P(&enc, "INFER.EMBED", "e", "NORMALIZE", "no") == 0 && o.n_texts == 2);
    CHECK(P(&enc, "INFER.EMBED", "e", "FP32", "x", "LONG", "chunk") == 0 && o.n_texts == 2 &&
          o.params.long_input == INFER_LONG_CHUNK);
    CHECK(P(&enc, "INFER.EMBED", "e", "x", "NORMALIZE", "maybe") < 0 && strstr(err, "NORMALIZE"));
    CHECK(P(&enc, "INFER.EMBED", "e", "x", "FP32", "FP32") < 0 && strstr(err, "twice"));
    CHECK(P(&enc, "INFER.EMBED", "e", "x", "TIMEOUT", "-3") < 0 && strstr(err, "TIMEOUT"));
    CHECK(P(&enc, "INFER.EMBED", "e", "x", "") < 0 && strstr(err, "text 2 is empty"));
    CHECK(P(&enc, "INFER.EMBED", "e", "ok", "bad\xff") < 0 && strstr(err, "text 2 is not valid UTF-8 (at byte 3)"));
    CHECK(P(&dec, "INFER.EMBED", "s", "x") < 0 && strstr(err, "not an encoder"));
    CHECK(P(&enc, "INFER.EMBED", "e") < 0 && strstr(err, "wrong number"));
    CHECK(P(&enc, "INFER.EMBED", "e", "INTO", "k", "el", "text", "SETATTR", "{}", "BIN", "TIMEOUT", "7") == 0 &&
          o.into && o.n_texts == 1 && !strcmp(o.quant, "BIN") && o.setattr.len == 2 && o.timeout_ms == 7 &&
          o.key.len == 1 && o.element.len == 2);
    CHECK(P(&enc, "INFER.EMBED", "e", "INTO", "k", "el", "text") == 0 && !o.quant && !o.setattr.ptr);
    CHECK(P(&enc, "INFER.EMBED", "e", "INTO", "k", "el") < 0 && strstr(err, "wrong number"));
    CHECK(P(&enc, "INFER.EMBED", "e", "INTO", "k", "el", "t", "FP32") < 0);
    CHECK(P(&enc, "INFER.EMBED", "e", "INTO", "k", "el", "t", "Q8", "NOQUANT") < 0 && strstr(err, "quantization"));
    CHECK(P(&enc, "INFER.EMBED", "e", "INTO", "k", "el", "t", "SETATTR") < 0 && strstr(err, "no value after"));
    CHECK(P(&enc, "INFER.EMBED", "e", "INTO", "k", "el", "t", "WAT", "1") < 0 && strstr(err, "unknown option 'WAT'"));
#undef P
    /* the byte limit, counted over all texts */
    size_t big = IC_EMBED_MAX_BYTES / 2 + 1;
    char *b = malloc(big);
    CHECK(b);
    memset(b, 'a', big);
    ic_arg t2[2] = {{b, big}, {b, big}};
    CHECK(ic_embed_check_texts(t2, 2, "text", err, sizeof err) < 0 && strstr(err, "too large"));
    CHECK(ic_embed_check_texts(t2, 1, "text", err, sizeof err) == 0);
    free(b);
    float f[2] = {1.0f, -2.5f};
    unsigned char le[8];
    ic_f32_le(f, 2, le);
    CHECK(le[0] == 0 && le[1] == 0 && le[2] == 0x80 && le[3] == 0x3f && le[7] == 0xc0 && le[6] == 0x20);
}

/* A registry with stories260K as "s" (a generator) and a stand-in encoder
 * "e": the grammar and the prompt need no scheduler (a dummy pointer that
 * is never used: references stay high so nothing is ever freed here). */
static int rag_registry(ic_registry *r, ic_model *gen, ic_model *enc, char *path) {
    const char *shared = getenv("INFERKV_SHARED") ? getenv("INFERKV_SHARED") : "../shared";
    snprintf(path, 512, "%s/%s", shared, STORIES);
    if (access(path, R_OK) != 0) return -1;
    char err[IC_ERRLEN];
    memset(r, 0, sizeof *r);
    memset(gen, 0, sizeof *gen);
    memset(enc, 0, sizeof *enc);
    if (infer_model_load(path, &gen->model, err, sizeof err) < 0) return -1;
    gen->tp = infer_threadpool_create(1, err, sizeof err);
    infer_ctx_params cp = {0};
    cp.n_ctx = 256;
    if (!gen->tp || infer_ctx_create(gen->model, gen->tp, &cp, &gen->ctx, err, sizeof err) < 0) return -1;
    gen->sched = (infer_sched *)gen; /* never used */
    gen->refs = enc->refs = 1000;
    enc->encoder = 1;
    enc->embed_dim = 4;
    enc->sched = (infer_sched *)enc;
    snprintf(r->entries[0].name, IC_NAME_MAX, "s");
    r->entries[0].m = gen;
    snprintf(r->entries[1].name, IC_NAME_MAX, "e");
    r->entries[1].m = enc;
    r->n = 2;
    return 0;
}

/* ic_rag_parse over the NULL-terminated argument list. */
static ic_rag *rag_parse_(ic_registry *r, char *err, ...) {
    ic_arg a[32];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    for (const char *s; n < 32 && (s = va_arg(ap, const char *));) a[n++] = A(s);
    va_end(ap);
    return ic_rag_parse(r, a, n, 0, 64, err, IC_ERRLEN);
}
#define rag_parse(r, err, ...) rag_parse_((r), (err), __VA_ARGS__, (const char *)NULL)

static void test_rag(void) {
    ic_registry r;
    ic_model gen, enc;
    char path[512], err[IC_ERRLEN];
    if (rag_registry(&r, &gen, &enc, path) < 0) TEST_SKIP("no stories260K under ../shared");
    /* grammar */
    CHECK(!rag_parse(&r, err, "INFER.RAG", "s", "e", "docs") && strstr(err, "wrong number"));
    CHECK(!rag_parse(&r, err, "INFER.RAG", "e", "e", "docs", "q") && strstr(err, "encoder"));
    CHECK(!rag_parse(&r, err, "INFER.RAG", "s", "s", "docs", "q") && strstr(err, "not an encoder"));
    CHECK(!rag_parse(&r, err, "INFER.RAG", "s", "x", "docs", "q") && strstr(err, "no such model"));
    CHECK(!rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "") && strstr(err, "question is empty"));
    CHECK(!rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "q", "COUNT", "0") && strstr(err, "COUNT"));
    CHECK(!rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "q", "TEMPLATE") && strstr(err, "no value after"));
    CHECK(!rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "q", "MAXTOKENS", "256") &&
          strstr(err, "leaves no room"));
    CHECK(!rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "q", "BOGUS", "1") && strstr(err, "'BOGUS'"));
    CHECK(r.entries[0].m->refs == 1000 && r.entries[1].m->refs == 1000); /* failures keep no reference */
    ic_rag *g = rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "the question", "COUNT", "4", "FILTER",
                          ".y > 1", "WITHSOURCES", "MAXTOKENS", "40", "TEMPERATURE", "0", "STORE");
    CHECK(!g && strstr(err, "no value after 'STORE'"));
    g = rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "the question", "COUNT", "4", "FILTER", ".y > 1",
                  "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", "40", "TEMPERATURE", "0", "STORE", "out",
                  "CONTEXTKEY-FIELD", "src");
    CHECKF(g, "%s", err);
    CHECK(g->count == 4 && g->withsources && g->withprompt && g->gen_opts.max_tokens == 40 && g->budget == 216 &&
          g->store_len == 3 && !memcmp(g->gen_opts.store.ptr, "out", 3) && g->gen_opts.store.ptr == g->store);
    CHECK(gen.refs == 1001 && enc.refs == 1001);
    /* the VSIM it asks for */
    float q[4] = {1, 0, 0, 0};
    ic_arg va[IC_RAG_VSIM_ARGS];
    int nv = ic_rag_vsim_args(g, q, 4, va, err, sizeof err);
    CHECK(nv == 10 && va[3].len == 16 && !memcmp(va[7].ptr, "4", 1) && !memcmp(va[9].ptr, ".y > 1", 6));
    /* hits: chunks named by key, one too long to ever fit, one without */
    const char *attrs[] = {"{\"src\":\"k0\"}", "{\"src\":\"k1\"}", "{\"other\":1}", "{\"src\":\"k3\"}"};
    for (int i = 0; i < 4; i++) CHECK(ic_rag_add_hit(g, "e0", 2, 0.9 - i * 0.1, attrs[i], strlen(attrs[i])) == 0);
    const char *key;
    size_t kl;
    CHECK(ic_rag_hit_source(g, 0, &key, &kl) == IC_SRC_KEY && kl == 2 && !memcmp(key, "k0", 2));
    CHECK(ic_rag_set_text(g, 0, "Lily saw a big red ball in the park.", 36) == 0);
    CHECK(ic_rag_hit_source(g, 1, &key, &kl) == IC_SRC_KEY);
    CHECK(ic_rag_set_text(g, 1, "Tom liked to run fast with his dog.", 35) == 0);
    CHECK(ic_rag_hit_source(g, 2, &key, &kl) == IC_SRC_NONE);
    CHECK(ic_rag_hit_source(g, 3, &key, &kl) == IC_SRC_KEY);
    size_t hl = g->chunk_cap + 1;
    char *huge = malloc(hl);
    CHECK(huge);
    memset(huge, 'z', hl);
    CHECK(ic_rag_set_text(g, 3, huge, hl) == 0 && g->hits[3].too_long && !g->hits[3].text);
    free(huge);
    CHECK(ic_rag_set_template(g, "no placeholders", 15, err, sizeof err) < 0 && strstr(err, "{context}"));
    CHECK(ic_rag_set_template(g, "{context} only", 14, err, sizeof err) < 0);
    const char *tpl = "Story bits:\n{context}\nQ: {question}\nA:";
    CHECK(ic_rag_set_template(g, tpl, strlen(tpl), err, sizeof err) == 0);
    int32_t n;
    int32_t *ids = ic_rag_build(g, &n, err, sizeof err);
    CHECKF(ids, "%s", err);
    CHECK(g->used == 2 && g->hits[0].state == IC_HIT_USED && g->hits[1].state == IC_HIT_USED &&
          g->hits[2].state == IC_HIT_NOTEXT && g->hits[3].state == IC_HIT_CUT);
    const char *want = "Story bits:\nLily saw a big red ball in the park.\n\nTom liked to run fast with his dog.\n"
                       "Q: the question\nA:";
    CHECK(g->prompt_len == strlen(want) && !memcmp(g->prompt, want, g->prompt_len));
    int64_t n2;
    int32_t *ids2 = ic_tokenize_prompt(infer_model_vocab(gen.model), g->prompt, g->prompt_len, 0, &n2, err,
                                       sizeof err);
    CHECK(ids2 && n2 == n && !memcmp(ids, ids2, (size_t)n * sizeof *ids));
    free(ids);
    free(ids2);
    ic_rag_free(&r, g);
    CHECK(gen.refs == 1000 && enc.refs == 1000);

    /* cut to the context: many long chunks, the lowest-ranked dropped */
    g = rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "What did Lily do?", "MAXTOKENS", "100");
    CHECKF(g, "%s", err);
    char chunk[400];
    for (int i = 0; i < 10; i++) {
        char a[64];
        snprintf(a, sizeof a, "{\"text\":\"%d\"}", i);
        CHECK(ic_rag_add_hit(g, "x", 1, 1.0 - i * 0.01, a, strlen(a)) == 0);
        CHECK(ic_rag_hit_source(g, i, &key, &kl) == IC_SRC_ATTR);
        int cl = snprintf(chunk, sizeof chunk, "Chunk %d: Once upon a time there was a little girl named Lily. "
                                               "She liked to play outside in the sun with her friends.", i);
        CHECK(ic_rag_set_text(g, i, chunk, (size_t)cl) == 0);
    }
    ids = ic_rag_build(g, &n, err, sizeof err);
    CHECKF(ids, "%s", err);
    CHECKF(g->used > 0 && g->used < 10 && n <= 256 - 100, "used %d, %d tokens", g->used, n);
    for (int i = 0; i < 10; i++) CHECK(g->hits[i].state == (i < g->used ? IC_HIT_USED : IC_HIT_CUT));
    /* one more chunk would not have fitted: as few dropped as possible */
    CHECK(strstr(g->prompt, "Chunk 0:") && !strstr(g->prompt, "Chunk 9:"));
    free(ids);
    ic_rag_free(&r, g);

    /* nothing fits: a clear error */
    g = rag_parse(&r, err, "INFER.RAG", "s", "e", "docs", "What did Lily do?", "MAXTOKENS", "250");
    CHECKF(g, "%s", err);
    CHECK(!ic_rag_build(g, &n, err, sizeof err) && strstr(err, "does not fit"));
    ic_rag_free(&r, g);

    infer_ctx_free(gen.ctx);
    infer_threadpool_free(gen.tp);
    infer_model_unref(gen.model);
}

int main(void) {
    TEST_RUN(test_utf8);
    TEST_RUN(test_json_field);
    TEST_RUN(test_embed_grammar);
    TEST_RUN(test_rag);
    return TEST_DONE();
}
