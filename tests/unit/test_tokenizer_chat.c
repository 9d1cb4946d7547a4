/* test_tokenizer_chat.c - chat templates, text preparation (UTF-8 repair,
 * NFC) and the tokenizer.json -> GGUF conversion.
 *
 * Template outputs are compared with the text the reference Jinja templates
 * render for the same messages (Llama 3's was checked with the JavaScript
 * library's renderer; Qwen3's by reading its template, which that renderer
 * cannot parse). */
#include "test.h"
#include "text/tok.h"
#include "text/unicode.h"
#include "tok_test_util.h"

static const infer_chat_msg conv[] = {
    {"system", "You are helpful."},
    {"user", "Hi"},
    {"assistant", "<think>\nhmm\n</think>\n\nHello!"},
    {"user", "2+2?"},
};

static int64_t render(int t, const infer_chat_msg *m, size_t n, unsigned flags, char *out, size_t cap) {
    char err[256];
    return infer_chat_format(t, m, n, flags, out, cap, err, sizeof err);
}

/* Qwen3: earlier reasoning is dropped; thinking off adds an empty block. */
static void test_qwen3_template(void) {
    char out[1024];
    int64_t n = render(INFER_CHAT_QWEN3, conv, 4, INFER_CHAT_ADD_ASSISTANT | INFER_CHAT_NO_THINKING, out, sizeof out);
    const char *want =
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n";
    CHECK_EQ_INT(n, strlen(want));
    CHECK_STR(out, want);
    n = render(INFER_CHAT_QWEN3, conv, 4, INFER_CHAT_ADD_ASSISTANT, out, sizeof out);
    CHECK(n > 0 && strcmp(out + n - 22, "<|im_start|>assistant\n") == 0);
    /* an assistant turn after the last user message keeps its reasoning, and
     * a last one without any gets an empty think block */
    infer_chat_msg tail[] = {{"user", "Q"}, {"assistant", "<think>r</think>A"}, {"assistant", "B"}};
    n = render(INFER_CHAT_QWEN3, tail, 3, 0, out, sizeof out);
    CHECK_STR(out, "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nr\n</think>\n\nA<|im_end|>\n"
                   "<|im_start|>assistant\n<think>\n\n</think>\n\nB<|im_end|>\n");
}

/* Plain ChatML, Qwen2.5's default system message, Llama 3's trimming, raw. */
static void test_other_templates(void) {
    char out[1024];
    infer_chat_msg one[] = {{"user", "  Hi there \n"}};
    render(INFER_CHAT_CHATML, one, 1, INFER_CHAT_ADD_ASSISTANT, out, sizeof out);
    CHECK_STR(out, "<|im_start|>user\n  Hi there \n<|im_end|>\n<|im_start|>assistant\n");
    render(INFER_CHAT_QWEN25, one, 1, INFER_CHAT_ADD_ASSISTANT, out, sizeof out);
    CHECK_STR(out, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
                   "<|im_start|>user\n  Hi there \n<|im_end|>\n<|im_start|>assistant\n");
    render(INFER_CHAT_LLAMA3, one, 1, INFER_CHAT_ADD_ASSISTANT, out, sizeof out);
    CHECK_STR(out, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n");
    render(INFER_CHAT_RAW, conv, 2, INFER_CHAT_ADD_ASSISTANT, out, sizeof out);
    CHECK_STR(out, "You are helpful.\nHi");
}

/* Size queries, small buffers, unknown roles and templates. */
static void test_template_errors(void) {
    char out[8], err[256] = "";
    int64_t need = infer_chat_format(INFER_CHAT_CHATML, conv, 2, 0, NULL, 0, err, sizeof err);
    int64_t small = infer_chat_format(INFER_CHAT_CHATML, conv, 2, 0, out, sizeof out, err, sizeof err);
    CHECK(need > 8);
    CHECK_EQ_INT(small, need);
    CHECK(memcmp(out, "<|im_sta", 8) == 0);
    infer_chat_msg bad[] = {{"tool", "x"}};
    CHECK_EQ_INT(infer_chat_format(INFER_CHAT_CHATML, bad, 1, 0, out, sizeof out, err, sizeof err), -1);
    CHECK(strstr(err, "role") != NULL);
    CHECK_EQ_INT(infer_chat_format(99, conv, 1, 0, out, sizeof out, err, sizeof err), -1);
}

/* JSON message lists: accepted and refused. */
static void test_parse_messages(void) {
    const char *ok = "[{\"role\":\"user\",\"content\":\"caf\\u00e9 \\ud83e\\udd99\\n\"},{\"content\":\"x\",\"role\":\"assistant\"}]";
    infer_chat_msg *m;
    size_t n;
    char err[256];
    CHECK(infer_chat_parse_json(ok, strlen(ok), &m, &n, err, sizeof err) == 0);
    int good = n == 2 && !strcmp(m[0].role, "user") && !strcmp(m[0].content, "caf\xc3\xa9 \xf0\x9f\xa6\x99\n") &&
               !strcmp(m[1].role, "assistant") && !strcmp(m[1].content, "x");
    free(m);
    CHECK(good);
    const char *bad[] = {"{}", "[{\"role\":\"user\"}]", "[{\"role\":1,\"content\":\"x\"}]",
                         "[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]", "[", "[] x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECKF(infer_chat_parse_json(bad[i], strlen(bad[i]), &m, &n, err, sizeof err) < 0 && err[0], "%s", bad[i]);
    }
}

static infer_vocab *json_vocab(const char *doc) {
    infer_vocab *v = NULL;
    char err[256];
    if (vocab_from_json(doc, strlen(doc), &v, err, sizeof err) < 0) printf("    %s\n", err);
    return v;
}

/* The family comes from the special tokens a vocab has. */
static void test_template_detection(void) {
    static const char head[] = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                               "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true}, \"added_tokens\": [";
    char doc[1024];
    snprintf(doc, sizeof doc, "%s{\"id\":1,\"content\":\"<|im_start|>\",\"special\":true},{\"id\":2,\"content\":\"<|im_end|>\",\"special\":true}]}", head);
    infer_vocab *v = json_vocab(doc);
    CHECK(v);
    int t1 = infer_chat_template(v);
    infer_vocab_free(v);
    snprintf(doc, sizeof doc, "%s{\"id\":1,\"content\":\"<|im_start|>\",\"special\":true},{\"id\":2,\"content\":\"<|im_end|>\",\"special\":true},"
             "{\"id\":3,\"content\":\"<think>\",\"special\":false},{\"id\":4,\"content\":\"</think>\",\"special\":false}]}", head);
    v = json_vocab(doc);
    CHECK(v);
    int t2 = infer_chat_template(v);
    infer_vocab_free(v);
    snprintf(doc, sizeof doc, "%s{\"id\":1,\"content\":\"<|begin_of_text|>\",\"special\":true},{\"id\":2,\"content\":\"<|start_header_id|>\",\"special\":true},"
             "{\"id\":3,\"content\":\"<|end_header_id|>\",\"special\":true},{\"id\":4,\"content\":\"<|eot_id|>\",\"special\":true}]}", head);
    v = json_vocab(doc);
    CHECK(v);
    int t3 = infer_chat_template(v);
    int eog = infer_vocab_is_eog(v, 4), bos = infer_vocab_bos(v);
    infer_vocab_free(v);
    snprintf(doc, sizeof doc, "%s{\"id\":1,\"content\":\"<s>\",\"special\":true}]}", head);
    v = json_vocab(doc);
    CHECK(v);
    int t4 = infer_chat_template(v);
    infer_vocab_free(v);
    CHECK_EQ_INT(t1, INFER_CHAT_CHATML);
    CHECK_EQ_INT(t2, INFER_CHAT_QWEN3);
    CHECK_EQ_INT(t3, INFER_CHAT_LLAMA3);
    CHECK(eog);
    CHECK_EQ_INT(bos, 1);
    CHECK_EQ_INT(t4, INFER_CHAT_RAW);
    CHECK_STR(infer_chat_template_name(t4), "raw");
}

static int prepared(const char *in, size_t len, int repair, int nfc, const char *want, size_t wlen) {
    size_t n;
    char *p = ucd_prepare(in, len, repair, nfc, &n);
    const char *got = p ? p : in;
    int ok = n == wlen && memcmp(got, want, wlen) == 0;
    if (!ok) printf("    prepare: %zu bytes, want %zu\n", n, wlen);
    free(p);
    return ok;
}
#define PREP(in, r, f, want) prepared(in, sizeof in - 1, r, f, want, sizeof want - 1)

/* NFC composes, reorders marks, keeps exclusions decomposed; invalid UTF-8
 * becomes U+FFFD per maximal subpart (as TextDecoder), or stays raw. */
static void test_text_preparation(void) {
    CHECK(PREP("plain ascii", 1, 1, "plain ascii"));
    CHECK(PREP("cafe\xcc\x81!", 0, 1, "caf\xc3\xa9!"));                      /* e + U+0301 */
    CHECK(PREP("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", 0, 1, "\xea\xb0\x81")); /* jamo -> U+AC01 */
    CHECK(PREP("\xe0\xa5\x98", 0, 1, "\xe0\xa4\x95\xe0\xa4\xbc"));            /* U+0958 is excluded */
    CHECK(PREP("q\xcc\x87\xcc\xa3", 0, 1, "q\xcc\xa3\xcc\x87"));              /* ccc 230 after 220 */
    CHECK(PREP("\xe2\x84\xab", 0, 1, "\xc3\x85"));                            /* U+212B -> U+00C5 */
    CHECK(PREP("a\xe2\x82(", 1, 0, "a\xef\xbf\xbd("));                        /* one U+FFFD */
    CHECK(PREP("\xed\xa0\x80", 1, 0, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"));
    CHECK(PREP("x\xff" "e\xcc\x81", 0, 1, "x\xff\xc3\xa9"));                   /* raw byte kept */
}

/* tokenizer.json -> GGUF metadata -> vocab tokenizes exactly as the JSON
 * vocab, flags (NFC, JavaScript text rules) included. */
static void test_convert_roundtrip(void) {
    char p[1024];
    const char *path = tt_tokjson(p, sizeof p, "qwen3");
    if (!path) TEST_SKIP("qwen3 tokenizer.json not fetched (scripts/fetch-tokenizers.sh)");
    infer_vocab *a;
    char err[256];
    CHECKF(infer_vocab_load(path, &a, err, sizeof err) == 0, "%s", err);
    gguf_writer *w = gguf_writer_new();
    CHECK(w);
    gguf_writer_set_str(w, "general.architecture", "qwen3");
    int rc = vocab_to_gguf(a, w, err, sizeof err);
    infer_vocab *b = NULL;
    if (rc == 0) rc = tt_vocab_from_writer(w, &b, err, sizeof err);
    gguf_writer_free(w);
    if (rc != 0) infer_vocab_free(a);
    CHECKF(rc == 0, "%s", err);
    const char *texts[] = {"Hello world, it's 2026!", "cafe\xcc\x81 \xe1\x84\x80\xe1\x85\xa1 \xff\xfe",
                           "<|im_start|>user\n\xe4\xbd\xa0\xe5\xa5\xbd<|im_end|>", "   \n\n\t x"};
    int same = 1;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t x[128], y[128];
        int64_t nx = infer_tokenize(a, texts[i], strlen(texts[i]), INFER_TOK_PARSE_SPECIAL, x, 128, err, sizeof err);
        int64_t ny = infer_tokenize(b, texts[i], strlen(texts[i]), INFER_TOK_PARSE_SPECIAL, y, 128, err, sizeof err);
        if (nx != ny || nx < 0 || memcmp(x, y, sizeof(int32_t) * (size_t)nx) != 0) same = 0;
    }
    int sizes = infer_vocab_size(a) == infer_vocab_size(b) && infer_chat_template(b) == INFER_CHAT_QWEN3;
    infer_vocab_free(a);
    infer_vocab_free(b);
    CHECK(same);
    CHECK(sizes);
}

/* Streaming a byte-level BPE sequence yields the same bytes as the whole
 * call, holding back characters split over tokens. */
static void test_bpe_stream(void) {
    char p[1024], err[256];
    snprintf(p, sizeof p, "%s/models/ggml-org_llama.cpp/ggml-vocab-gpt-2.gguf", test_shared_dir());
    infer_vocab *v;
    if (infer_vocab_load(p, &v, err, sizeof err) < 0) TEST_SKIP("gpt-2 vocab not found");
    const char *s = "h\xc3\xa9llo \xf0\x9f\xa6\x99 \xe4\xbd\xa0\xe5\xa5\xbd world";
    int32_t ids[64];
    int64_t n = infer_tokenize(v, s, strlen(s), 0, ids, 64, err, sizeof err);
    infer_detok *d = infer_detok_create(v, 1);
    char out[256], piece[256];
    size_t o = 0;
    int partial_held = 0;
    for (int64_t i = 0; d && i < n; i++) {
        int k = infer_detok_push(d, ids[i], piece, sizeof piece);
        if (k < 0) break;
        if (infer_utf8_complete_prefix(piece, (size_t)k) != (size_t)k) partial_held = -1; /* never emitted */
        memcpy(out + o, piece, (size_t)k);
        o += (size_t)k;
        if (k == 0) partial_held = partial_held < 0 ? -1 : 1;
    }
    int k = d ? infer_detok_flush(d, out + o, sizeof out - o) : -1;
    infer_detok_free(d);
    infer_vocab_free(v);
    CHECK(n > 0);
    CHECK_EQ_INT(k, 0);
    CHECK(o == strlen(s) && memcmp(out, s, o) == 0);
    CHECK(partial_held == 1); /* the emoji spans tokens and was held at least once */
}

int main(void) {
    TEST_RUN(test_qwen3_template);
    TEST_RUN(test_other_templates);
    TEST_RUN(test_template_errors);
    TEST_RUN(test_parse_messages);
    TEST_RUN(test_template_detection);
    TEST_RUN(test_text_preparation);
    TEST_RUN(test_convert_roundtrip);
    TEST_RUN(test_bpe_stream);
    return TEST_DONE();
}
