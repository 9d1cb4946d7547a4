/* test_tokenizer_spm.c - SentencePiece BPE tokenization and detokenization.
 *
 * Reference vectors: llama.cpp's .inp/.out for the Llama 2 and Phi-3 vocabs,
 * llama2.c's encode tests (Meta's reference ids), the stories260K prompt and
 * its greedy output text; plus round trips, streaming detokenization of
 * characters split over byte tokens, and malformed vocabularies. */
#include "test.h"
#include "text/tok.h"
#include "text/unicode.h"
#include "tok_test_util.h"

static infer_vocab *load_shared(const char *rel) {
    char p[1024], err[256];
    infer_vocab *v = NULL;
    if (infer_vocab_load(tt_path(p, sizeof p, rel), &v, err, sizeof err) < 0) return NULL;
    return v;
}

#define LLAMA_SPM "ggml-org_llama.cpp/ggml-vocab-llama-spm.gguf"
#define STORIES "cozy-creator_python-gen-worker/stories260K.gguf"

/* Every llama.cpp vector of the Llama 2 vocab gives exactly its ids. */
static void test_llama_spm_vectors(void) {
    int total = 0, ok = tt_run_vectors("llama-spm", &total);
    if (ok < 0) TEST_SKIP("llama-spm vectors not found under %s", test_shared_dir());
    CHECKF(ok == total && total == 46, "%d of %d match", ok, total);
}

/* Phi-3's vocab (user-defined and control tokens past 32000) gives the same ids. */
static void test_phi3_vectors(void) {
    int total = 0, ok = tt_run_vectors("phi-3", &total);
    if (ok < 0) TEST_SKIP("phi-3 vectors not found");
    CHECKF(ok == total && total == 46, "%d of %d match", ok, total);
}

/* A minimal reader for tokenizer.bin.encode-tests.json: "text" strings with
 * JSON escapes and "ids" arrays, in order. */
static const char *json_str(const char *p, char *out, size_t cap) {
    size_t n = 0;
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\') {
            c = *p++;
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
            else if (c == 'r') c = '\r';
        }
        if (n + 1 < cap) out[n++] = c;
    }
    out[n] = 0;
    return *p ? p + 1 : p;
}

/* llama2.c's encode tests: with BOS, the same Llama 2 vocab gives Meta's ids. */
static void test_llama2c_encode_tests(void) {
    char p[1024];
    char *js = tt_read(tt_path(p, sizeof p, "karpathy_llama2.c/tokenizer.bin.encode-tests.json"), NULL);
    infer_vocab *v = load_shared(LLAMA_SPM);
    if (!js || !v) {
        free(js);
        infer_vocab_free(v);
        TEST_SKIP("encode tests or llama-spm vocab not found");
    }
    int cases = 0, ok = 0;
    const char *q = js;
    while ((q = strstr(q, "\"text\":"))) {
        q = strchr(q + 7, '"');
        if (!q) break;
        char text[1024];
        q = json_str(q + 1, text, sizeof text);
        const char *a = strstr(q, "\"ids\":");
        if (!a || !(a = strchr(a, '['))) break;
        int32_t want[256], got[256];
        int nw = 0;
        a++;
        while (*a && *a != ']') {
            char *end;
            long x = strtol(a, &end, 10);
            if (end == a) { a++; continue; }
            if (nw < 256) want[nw++] = (int32_t)x;
            a = end;
        }
        char err[256];
        int64_t n = infer_tokenize(v, text, strlen(text), INFER_TOK_ADD_SPECIAL, got, 256, err, sizeof err);
        cases++;
        if (n == nw && memcmp(got, want, sizeof(int32_t) * (size_t)nw) == 0) ok++;
        else printf("    case \"%.40s\": %lld ids, want %d\n", text, (long long)n, nw);
        q = a;
    }
    free(js);
    infer_vocab_free(v);
    CHECKF(cases == 5 && ok == cases, "%d of %d cases", ok, cases);
}

/* stories260K.gguf: "Once upon a time" with BOS is 1 403 407 261 378 (run.c). */
static void test_stories260k_prompt(void) {
    infer_vocab *v = load_shared(STORIES);
    if (!v) TEST_SKIP("stories260K.gguf not found");
    int32_t ids[16];
    char err[256];
    int64_t n = infer_tokenize(v, "Once upon a time", 16, INFER_TOK_ADD_SPECIAL, ids, 16, err, sizeof err);
    int32_t want[] = {1, 403, 407, 261, 378};
    int good = n == 5 && memcmp(ids, want, sizeof want) == 0;
    CHECK(vocab_add_bos(v));
    CHECK_EQ_INT(infer_vocab_bos(v), 1);
    CHECK_EQ_INT(infer_vocab_eos(v), 2);
    CHECK(infer_vocab_is_eog(v, 2));
    CHECK(!infer_vocab_is_eog(v, 403));
    CHECK_STR(infer_vocab_kind(v), "llama");
    infer_vocab_free(v);
    CHECK(good);
}

/* Streaming the greedy ids of run.c after a BOS reproduces its printed text
 * byte for byte (no leading space, newlines from byte tokens). */
static void test_stories260k_greedy_text(void) {
    char p[1024];
    char *ids_txt = tt_read(tt_path(p, sizeof p, "reference-outputs/stories260K.greedy.ids.txt"), NULL);
    size_t exp_len = 0;
    char *expected = tt_read(tt_path(p, sizeof p, "karpathy_llama2.c/stories260K.greedy-n200.expected.txt"), &exp_len);
    infer_vocab *v = load_shared(STORIES);
    if (!ids_txt || !expected || !v) {
        free(ids_txt);
        free(expected);
        infer_vocab_free(v);
        TEST_SKIP("stories260K reference outputs not found");
    }
    const char *q = strstr(ids_txt, "next_ids:");
    infer_detok *d = infer_detok_create(v, 1);
    char *text = malloc(8192);
    size_t tn = 0;
    int bad = !q || !d || !text;
    if (!bad) {
        q += 9;
        while (*q && *q != '\n') {
            char *end;
            long id = strtol(q, &end, 10);
            if (end == q) break;
            q = end;
            int k = infer_detok_push(d, (int32_t)id, text + tn, 8192 - tn);
            if (k < 0 || tn + (size_t)k > 8000) { bad = 1; break; }
            tn += (size_t)k;
        }
        int k = infer_detok_flush(d, text + tn, 8192 - tn);
        if (k < 0) bad = 1; else tn += (size_t)k;
    }
    /* run.c's stdout ends with a newline that the expected text strips. */
    while (tn > 0 && text[tn - 1] == '\n' && tn > exp_len) tn--;
    int same = !bad && tn == exp_len && memcmp(text, expected, exp_len) == 0;
    if (!same && text) printf("    got %zu bytes: \"%.80s\"\n", tn, text);
    free(text);
    infer_detok_free(d);
    free(ids_txt);
    free(expected);
    infer_vocab_free(v);
    CHECK(same);
}

/* detokenize(tokenize(s)) == s for every vector string, with and without BOS. */
static void test_roundtrip(void) {
    char p[1024];
    char *in = tt_read(tt_path(p, sizeof p, LLAMA_SPM ".inp"), NULL);
    infer_vocab *v = load_shared(LLAMA_SPM);
    if (!in || !v) {
        free(in);
        infer_vocab_free(v);
        TEST_SKIP("llama-spm vocab not found");
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int n = 0, ok = 0;
    int32_t ids[2048];
    char out[4096], err[256];
    for (char *s = in, *e; (e = strstr(s, sep)); s = e + sizeof sep - 1) {
        size_t len = (size_t)(e - s);
        for (unsigned flags = 0; flags <= INFER_TOK_ADD_SPECIAL; flags += INFER_TOK_ADD_SPECIAL) {
            int64_t k = infer_tokenize(v, s, len, flags, ids, 2048, err, sizeof err);
            int64_t m = k < 0 ? -1 : infer_detokenize(v, ids, (size_t)k, 0, out, sizeof out, err, sizeof err);
            n++;
            if (m == (int64_t)len && memcmp(out, s, len) == 0) ok++;
            else printf("    round trip failed for \"%.*s\"\n", (int)(len > 40 ? 40 : len), s);
        }
    }
    free(in);
    infer_vocab_free(v);
    CHECKF(n == 92 && ok == n, "%d of %d", ok, n);
}

/* A 4-byte character becomes 4 byte tokens; the stream holds them until the
 * character is complete, and flush returns an unfinished one as is. */
static void test_stream_split_utf8(void) {
    infer_vocab *v = load_shared(LLAMA_SPM);
    if (!v) TEST_SKIP("llama-spm vocab not found");
    int32_t ids[16];
    char err[256], out[256];
    /* U+1F999 (llama) has no token: ▁ then the four bytes F0 9F A6 99 */
    int64_t n = infer_tokenize(v, "\xf0\x9f\xa6\x99", 4, 0, ids, 16, err, sizeof err);
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_INT(ids[1], 3 + 0xF0);
    infer_detok *d = infer_detok_create(v, 1);
    CHECK(d);
    int r0 = infer_detok_push(d, ids[0], out, sizeof out);
    int r1 = infer_detok_push(d, ids[1], out, sizeof out);
    int r2 = infer_detok_push(d, ids[2], out, sizeof out);
    int r3 = infer_detok_push(d, ids[3], out, sizeof out);
    int r4 = infer_detok_push(d, ids[4], out, sizeof out);
    int same = r4 == 4 && memcmp(out, "\xf0\x9f\xa6\x99", 4) == 0;
    /* an unfinished character at the end comes out of flush */
    int r5 = infer_detok_push(d, 3 + 0xE2, out, sizeof out);
    int r6 = infer_detok_flush(d, out, sizeof out);
    int flushed = r6 == 1 && (unsigned char)out[0] == 0xE2;
    int r7 = infer_detok_push(d, 999999, out, sizeof out);
    infer_detok_free(d);
    infer_vocab_free(v);
    CHECK_EQ_INT(r0, 0); /* the leading space after BOS is dropped */
    CHECK_EQ_INT(r1, 0);
    CHECK_EQ_INT(r2, 0);
    CHECK_EQ_INT(r3, 0);
    CHECK(same);
    CHECK_EQ_INT(r5, 0);
    CHECK(flushed);
    CHECK_EQ_INT(r7, -1);
}

/* The complete-prefix rule on its own. */
static void test_utf8_complete_prefix(void) {
    CHECK_EQ_INT(infer_utf8_complete_prefix("", 0), 0);
    CHECK_EQ_INT(infer_utf8_complete_prefix("abc", 3), 3);
    CHECK_EQ_INT(infer_utf8_complete_prefix("a\xc3", 2), 1);
    CHECK_EQ_INT(infer_utf8_complete_prefix("a\xc3\xa9", 3), 3);
    CHECK_EQ_INT(infer_utf8_complete_prefix("a\xe2\x82", 3), 1);
    CHECK_EQ_INT(infer_utf8_complete_prefix("\xf0\x9f\xa6", 3), 0);
    CHECK_EQ_INT(infer_utf8_complete_prefix("\xf0\x9f\xa6\x99", 4), 4);
    /* invalid bytes are not held back forever */
    CHECK_EQ_INT(infer_utf8_complete_prefix("a\xff", 2), 2);
    CHECK_EQ_INT(infer_utf8_complete_prefix("\x80\x80\x80\x80\x80", 5), 5);
}

/* BOS/EOS render as nothing, as their text on request, and REMOVE_SPECIAL
 * drops them; an id outside the vocab is an error with a message. */
static void test_detok_special_and_errors(void) {
    infer_vocab *v = load_shared(LLAMA_SPM);
    if (!v) TEST_SKIP("llama-spm vocab not found");
    int32_t ids[] = {1, 15043, 2}; /* <s> ▁Hello </s> */
    char out[64], err[256] = "";
    int64_t a = infer_detokenize(v, ids, 3, 0, out, sizeof out, err, sizeof err);
    int a_ok = a == 5 && memcmp(out, "Hello", 5) == 0;
    int64_t b = infer_detokenize(v, ids, 3, INFER_DETOK_UNPARSE_SPECIAL, out, sizeof out, err, sizeof err);
    int b_ok = b == 12 && memcmp(out, "<s>Hello</s>", 12) == 0;
    int64_t c = infer_detokenize(v, ids, 3, INFER_DETOK_UNPARSE_SPECIAL | INFER_DETOK_REMOVE_SPECIAL, out,
                                 sizeof out, err, sizeof err);
    int c_ok = c == 5 && memcmp(out, "Hello", 5) == 0;
    int64_t d = infer_detokenize(v, ids, 3, 0, out, 2, err, sizeof err); /* too small: size needed */
    int32_t bad[] = {15043, 32000};
    err[0] = 0;
    int64_t e = infer_detokenize(v, bad, 2, 0, out, sizeof out, err, sizeof err);
    int32_t neg[] = {-1};
    int64_t f = infer_detokenize(v, neg, 1, 0, out, sizeof out, err, sizeof err);
    infer_vocab_free(v);
    CHECK(a_ok);
    CHECK(b_ok);
    CHECK(c_ok);
    CHECK_EQ_INT(d, 5);
    CHECK_EQ_INT(e, -1);
    CHECK(strstr(err, "32000") != NULL);
    CHECK_EQ_INT(f, -1);
}

/* A buffer too small gets the count needed and a correct prefix. */
static void test_tokenize_capacity(void) {
    infer_vocab *v = load_shared(LLAMA_SPM);
    if (!v) TEST_SKIP("llama-spm vocab not found");
    const char *s = "I believe the meaning of life is";
    int32_t full[32], part[3];
    char err[256];
    int64_t n = infer_tokenize(v, s, strlen(s), INFER_TOK_ADD_SPECIAL, full, 32, err, sizeof err);
    int64_t m = infer_tokenize(v, s, strlen(s), INFER_TOK_ADD_SPECIAL, part, 3, err, sizeof err);
    int64_t z = infer_tokenize(v, s, strlen(s), 0, NULL, 0, err, sizeof err);
    int64_t e = infer_tokenize(v, NULL, 5, 0, full, 32, err, sizeof err);
    infer_vocab_free(v);
    CHECK_EQ_INT(n, 8);
    CHECK_EQ_INT(m, 8);
    CHECK(memcmp(full, part, sizeof part) == 0);
    CHECK_EQ_INT(z, 7);
    CHECK_EQ_INT(e, -1);
}

/* "<s>" in text is one token only with PARSE_SPECIAL; the text after a
 * special token gets its own space prefix, as SentencePiece pieces do. */
static void test_parse_special(void) {
    infer_vocab *v = load_shared(LLAMA_SPM);
    if (!v) TEST_SKIP("llama-spm vocab not found");
    int32_t ids[32];
    char err[256];
    int64_t n = infer_tokenize(v, "<s>Hello</s>", 12, INFER_TOK_PARSE_SPECIAL, ids, 32, err, sizeof err);
    int parsed = n == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 2;
    int64_t m = infer_tokenize(v, "<s>Hello</s>", 12, 0, ids, 32, err, sizeof err);
    int plain = m > 3;
    for (int64_t i = 0; plain && i < m && i < 32; i++)
        if (ids[i] == 1 || ids[i] == 2) plain = 0;
    infer_vocab_free(v);
    CHECK(parsed);
    CHECK(plain);
}

/* ---- synthetic vocabularies ---------------------------------------------------- */

/* <unk> <s> </s> <0x00>..<0xFF> then the pieces given, with their scores. */
static gguf_writer *spm_writer(const char *const *pieces, const float *scores, int n) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return NULL;
    int total = 3 + 256 + n;
    const char **toks = calloc((size_t)total, sizeof *toks);
    char(*bytes)[8] = calloc(256, 8);
    float *sc = calloc((size_t)total, sizeof *sc);
    int32_t *ty = calloc((size_t)total, sizeof *ty);
    toks[0] = "<unk>"; ty[0] = 2;
    toks[1] = "<s>"; ty[1] = 3;
    toks[2] = "</s>"; ty[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], 8, "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        ty[3 + b] = 6;
    }
    for (int i = 0; i < n; i++) {
        toks[259 + i] = pieces[i];
        sc[259 + i] = scores[i];
        ty[259 + i] = 1;
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, (uint64_t)total);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, sc, (uint64_t)total);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, ty, (uint64_t)total);
    free(toks);
    free(bytes);
    free(sc);
    free(ty);
    return w;
}

#define SP "\xe2\x96\x81"

/* Merging follows scores, not order: with "ab" scored above "bc", "abc"
 * becomes "ab"+"c"; with the scores swapped, "a"+"bc".  Equal scores merge
 * the leftmost pair.  A character with no token falls back to bytes. */
static void test_synthetic_merge_order(void) {
    const char *pieces[] = {SP, "a", "b", "c", "ab", "bc"};
    float s1[] = {-1, -1, -1, -1, -2, -3};
    float s2[] = {-1, -1, -1, -1, -3, -2};
    float s3[] = {-1, -1, -1, -1, -2, -2};
    const float *sets[] = {s1, s2, s3};
    int32_t want[3][2] = {{263, 262}, {260, 264}, {263, 262}}; /* ab=263 bc=264 a=260 c=262 */
    for (int t = 0; t < 3; t++) {
        gguf_writer *w = spm_writer(pieces, sets[t], 6);
        CHECK(w);
        infer_vocab *v;
        char err[256];
        int rc = tt_vocab_from_writer(w, &v, err, sizeof err);
        gguf_writer_free(w);
        CHECKF(rc == 0, "%s", err);
        int32_t ids[16];
        int64_t n = infer_tokenize(v, "abc", 3, 0, ids, 16, err, sizeof err);
        /* no space prefix token merges: ▁ stays alone */
        int ok = n == 3 && ids[0] == 259 && ids[1] == want[t][0] && ids[2] == want[t][1];
        if (!ok) printf("    score set %d: n=%lld %d %d %d\n", t, (long long)n, ids[0], ids[1], ids[2]);
        int64_t m = infer_tokenize(v, "\xc3\xa9", 2, 0, ids, 16, err, sizeof err);
        int bytes_ok = m == 3 && ids[1] == 3 + 0xC3 && ids[2] == 3 + 0xA9;
        infer_vocab_free(v);
        CHECK(ok);
        CHECK(bytes_ok);
    }
}

/* Malformed vocabularies are refused with a message, never crash. */
static void test_malformed_vocab(void) {
    const char *pieces[] = {SP, "a"};
    float sc[] = {-1, -1};
    char err[256];
    infer_vocab *v;
    struct { const char *what; int kind; } cases[] = {
        {"scores shorter than tokens", 0}, {"types longer than tokens", 1},
        {"type value 9", 2}, {"bos out of range", 3}, {"unknown model", 4},
        {"tokens missing", 5}, {"tokens not strings", 6}, {"gpt2 unknown pre", 7},
        {"gpt2 without merges", 8}, {"scores not float", 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gguf_writer *w = spm_writer(pieces, sc, 2);
        CHECK(w);
        int32_t three[3] = {1, 1, 1};
        float two[2] = {0, 0};
        switch (cases[i].kind) {
        case 0: gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, two, 2); break;
        case 1: {
            int32_t *t = calloc(300, sizeof *t);
            gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, t, 300);
            free(t);
            break;
        }
        case 2: {
            int32_t *t = calloc(261, sizeof *t);
            t[5] = 9;
            gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, t, 261);
            free(t);
            break;
        }
        case 3: gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 5000); break;
        case 4: gguf_writer_set_str(w, "tokenizer.ggml.model", "unigram"); break;
        case 5: gguf_writer_remove_kv(w, "tokenizer.ggml.tokens"); break;
        case 6: gguf_writer_set_arr(w, "tokenizer.ggml.tokens", GGUF_INT32, three, 3); break;
        case 7:
            gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
            gguf_writer_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
            gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", pieces, NULL, 0);
            break;
        case 8:
            gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
            gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2");
            break;
        case 9: gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_INT32, three, 3); break;
        }
        err[0] = 0;
        int rc = tt_vocab_from_writer(w, &v, err, sizeof err);
        gguf_writer_free(w);
        if (rc == 0) infer_vocab_free(v);
        CHECKF(rc == -1 && err[0] && v == NULL, "%s: rc %d err '%s'", cases[i].what, rc, err);
    }
}

/* A missing file and a non-GGUF file are load errors with a message. */
static void test_load_errors(void) {
    infer_vocab *v = (infer_vocab *)1;
    char err[256] = "";
    CHECK(infer_vocab_load("/nonexistent/vocab.gguf", &v, err, sizeof err) < 0);
    CHECK(v == NULL);
    CHECK(err[0] != 0);
    char tmp[] = "/tmp/tokXXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("not a gguf file at all, just text", f);
    fclose(f);
    err[0] = 0;
    int rc = infer_vocab_load(tmp, &v, err, sizeof err);
    remove(tmp);
    CHECK(rc < 0);
    CHECK(err[0] != 0);
}

/* Merging word by word (the fast path) gives exactly the ids of merging the
 * whole text at once, on text mixing words, runs of spaces, U+2581 itself,
 * invalid bytes and long runs. */
static void test_word_split_equivalence(void) {
    infer_vocab *v = load_shared(LLAMA_SPM);
    if (!v) TEST_SKIP("llama-spm vocab not found");
    CHECK(v->spm_split);
    static const char *parts[] = {"hello", " ", "  ", "world", "\xe2\x96\x81", "x\xe2\x96\x81y", "\xf0\xe2\x96\x81",
                                  "\xff", "\xc3\xa9t\xc3\xa9", "\xe4\xbd\xa0\xe5\xa5\xbd", "\n", "\t", "aaaaaaaa", "1234", "'s"};
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    int32_t *x = malloc(sizeof(int32_t) * cap), *y = malloc(sizeof(int32_t) * cap);
    CHECK(text && x && y);
    uint32_t seed = 12345;
    while (len < cap - 64) {
        seed = seed * 1103515245u + 12345u;
        const char *p = parts[(seed >> 16) % (sizeof parts / sizeof parts[0])];
        memcpy(text + len, p, strlen(p));
        len += strlen(p);
    }
    char err[256];
    int same = 1;
    for (size_t chunk = 7; chunk < len && same; chunk = chunk * 3 + 1) {
        for (size_t at = 0; at + chunk <= len && same; at += chunk) {
            v->spm_split = 1;
            int64_t a = infer_tokenize(v, text + at, chunk, 0, x, cap, err, sizeof err);
            v->spm_split = 0;
            int64_t b = infer_tokenize(v, text + at, chunk, 0, y, cap, err, sizeof err);
            if (a != b || a < 0 || memcmp(x, y, sizeof(int32_t) * (size_t)a) != 0) same = 0;
        }
    }
    v->spm_split = 1;
    free(text);
    free(x);
    free(y);
    infer_vocab_free(v);
    CHECK(same);
}

int main(void) {
    TEST_RUN(test_llama_spm_vectors);
    TEST_RUN(test_phi3_vectors);
    TEST_RUN(test_llama2c_encode_tests);
    TEST_RUN(test_stories260k_prompt);
    TEST_RUN(test_stories260k_greedy_text);
    TEST_RUN(test_roundtrip);
    TEST_RUN(test_stream_split_utf8);
    TEST_RUN(test_utf8_complete_prefix);
    TEST_RUN(test_detok_special_and_errors);
    TEST_RUN(test_tokenize_capacity);
    TEST_RUN(test_parse_special);
    TEST_RUN(test_synthetic_merge_order);
    TEST_RUN(test_malformed_vocab);
    TEST_RUN(test_load_errors);
    TEST_RUN(test_word_split_equivalence);
    return TEST_DONE();
}
