/* test_tokenizer_wpm.c - WordPiece normalization and special-token types,
 * as llama.cpp does them.
 *
 * With bge's vocab (../shared): each text must give the same ids as a
 * second text that spells out what llama.cpp's BERT preprocessing makes of
 * it (marks of every kind dropped after NFD, Hangul syllables reduced to
 * their first jamo, VT/NEL as white space, format characters dropped,
 * overlong UTF-8 decoded), with ids taken from llama.cpp.  With small
 * vocabs built in memory: the tokenizer.ggml.normalizer flags, punctuation
 * and CJK splitting, hostile bytes.  With Phi-3's vocab: "</s>" is text
 * unless special tokens are parsed, and the white space after its special
 * tokens is stripped as llama.cpp does. */
#include "test.h"
#include "tok_test_util.h"

static infer_vocab *load_vocab(const char *name) {
    char p[1024];
    snprintf(p, sizeof p, "%s/models/ggml-org_llama.cpp/ggml-vocab-%s.gguf", test_shared_dir(), name);
    infer_vocab *v = NULL;
    char err[256];
    if (infer_vocab_load(p, &v, err, sizeof err) < 0) return NULL;
    return v;
}

/* Tokenizes s (len bytes) into a space-separated id string. */
static const char *ids_of(const infer_vocab *v, const char *s, size_t len, unsigned flags, char *buf, size_t cap) {
    int32_t ids[256];
    char err[256];
    int64_t n = infer_tokenize(v, s, len, flags, ids, 256, err, sizeof err);
    size_t o = 0;
    buf[0] = 0;
    if (n < 0 || n > 256) {
        snprintf(buf, cap, "error %lld", (long long)n);
        return buf;
    }
    for (int64_t i = 0; i < n && o < cap; i++) o += (size_t)snprintf(buf + o, cap - o, i ? " %d" : "%d", ids[i]);
    return buf;
}

/* Each pair: a text, what llama.cpp reduces it to, and llama.cpp's ids. */
static void test_bge_normalization(void) {
    infer_vocab *v = load_vocab("bert-bge");
    if (!v) TEST_SKIP("bert-bge vocab not found under %s", test_shared_dir());
    static const struct { const char *text, *same_as, *ids; } cases[] = {
        {"caf\xc3\xa9", "cafe\xcc\x81", "7668"},                                  /* precomposed = decomposed */
        {"Z\xcc\xb5\xcc\xa1" "a\xcc\xb6l\xcc\xb7g\xcc\xb4o\xd2\x88", "zalgo", "23564 2140 3995"}, /* stacked + Me */
        {"1\xef\xb8\x8f\xe2\x83\xa3", "1", "1015"},                               /* keycap: VS16 and U+20E3 go */
        {"\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87", /* Devanagari: virama, vowel sign */
         "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa4\xa4", "1327 29867 29874 29859"},
        {"\xd7\xa9\xd6\xb8\xd7\x81\xd7\x9c\xd7\x95\xd6\xb9\xd7\x9d", "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", /* niqqud */
         "1266 29799 29792 29800"},
        {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4", "\xe1\x84\x92\xe1\x84\x80\xe1\x84\x8b", "1469 29991 29999"}, /* Hangul */
        {"a\x0b" "b", "a b", "1037 1038"},                                        /* VT is white space */
        {"a\xc2\x85" "b", "a b", "1037 1038"},                                    /* so is NEL */
        {"\xc1\x81", "a", "1037"},                                                /* overlong 'A' */
        {"co\xc2\xadop\xe2\x80\x8d", "coop", "21859"},                            /* soft hyphen, ZWJ */
        {"\xf5\x80\x80\x80" "a", "a", "1037"},                                    /* past U+10FFFF: dropped */
        {"\xce\x9f\xce\x94\xce\x9f\xce\xa3", "\xce\xbf\xce\xb4\xce\xbf\xcf\x83", "1169 29722 29730 29733"}, /* no final sigma */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char a[512], b[512];
        ids_of(v, cases[i].text, strlen(cases[i].text), 0, a, sizeof a);
        ids_of(v, cases[i].same_as, strlen(cases[i].same_as), 0, b, sizeof b);
        CHECKF(strcmp(a, cases[i].ids) == 0 && strcmp(b, cases[i].ids) == 0, "case %zu: [%s] [%s], llama.cpp [%s]", i,
               a, b, cases[i].ids);
    }
    /* Arabic-Indic digits are one unknown word; U+2B820 joins its word
     * (llama.cpp's CJK ranges skip 2B820..2B91F), U+2B920 stands alone. */
    char a[512];
    CHECK_STR(ids_of(v, "\xd9\xa3\xd9\xa4\xd9\xa5", 6, 0, a, sizeof a), "100");
    CHECK_STR(ids_of(v, "x\xf0\xab\xa0\xa0y", 6, 0, a, sizeof a), "100");
    CHECK_STR(ids_of(v, "x\xf0\xab\xa4\xa0y", 6, 0, a, sizeof a), "1060 100 1061");
    /* [CLS] in text is text unless special tokens are parsed */
    CHECK_STR(ids_of(v, "[CLS]", 5, 0, a, sizeof a), "1031 18856 2015 1033");
    CHECK_STR(ids_of(v, "[CLS]", 5, INFER_TOK_PARSE_SPECIAL, a, sizeof a), "101");
    infer_vocab_free(v);
}

/* A small WordPiece vocab: tokens are "\xe2\x96\x81"-prefixed word starts
 * and bare continuations, as llama.cpp's converter writes them. */
static infer_vocab *tiny_wpm(int lowercase, int strip_accents) {
    static const char *const toks[] = {
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xe2\x96\x81" "cafe", "\xe2\x96\x81" "Cafe", "\xe2\x96\x81" "caf",
        "\xc3\xa9", "\xe2\x96\x81" "caf\xc3\xa9", "\xe2\x96\x81" "!", "\xe2\x96\x81" "$", "\xe2\x96\x81\xe4\xb8\xad",
        "\xe2\x96\x81" "a", "b", "\xe2\x96\x81" "e", "\xcc\x81", "\xe2\x96\x81\xe2\x82\xac",
    };
    enum { N = sizeof toks / sizeof toks[0] };
    int32_t types[N];
    for (int i = 0; i < N; i++) types[i] = i < 4 ? 3 : 1;
    gguf_writer *w = gguf_writer_new();
    if (!w) return NULL;
    gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, N);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, N);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3);
    if (lowercase >= 0) gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.lowercase", lowercase);
    if (strip_accents >= 0) gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.strip_accents", strip_accents);
    infer_vocab *v = NULL;
    char err[256];
    int rc = tt_vocab_from_writer(w, &v, err, sizeof err);
    gguf_writer_free(w);
    if (rc < 0) printf("    tiny_wpm: %s\n", err);
    return v;
}

/* The normalizer flags as llama.cpp reads them: lowercase defaults to on,
 * strip_accents to lowercase's value. */
static void test_normalizer_flags(void) {
    char a[256];
    infer_vocab *v = tiny_wpm(-1, -1);
    CHECK(v != NULL);
    if (!v) return;
    CHECK_STR(ids_of(v, "Caf\xc3\xa9", 5, 0, a, sizeof a), "4");          /* lowercase + strip */
    CHECK_STR(ids_of(v, "Cafe\xcc\x81", 6, 0, a, sizeof a), "4");
    CHECK_STR(ids_of(v, "a!b $ \xe4\xb8\xad\xe4\xb8\xad", 12, 0, a, sizeof a), "12 9 1 10 11 11"); /* "b" alone is [UNK] */
    CHECK_STR(ids_of(v, "\xe2\x82\xac", 3, 0, a, sizeof a), "16");         /* a non-ASCII symbol stays in its word */
    CHECK_STR(ids_of(v, "ab", 2, 0, a, sizeof a), "12 13");
    infer_vocab_free(v);
    v = tiny_wpm(0, -1); /* no lowercase, hence no accent stripping */
    CHECK(v != NULL);
    if (!v) return;
    CHECK_STR(ids_of(v, "Cafe", 4, 0, a, sizeof a), "5");
    CHECK_STR(ids_of(v, "caf\xc3\xa9", 5, 0, a, sizeof a), "8");
    CHECK_STR(ids_of(v, "e\xcc\x81", 3, 0, a, sizeof a), "14 15");
    infer_vocab_free(v);
    v = tiny_wpm(1, 0); /* lowercase, keep accents: no NFD either */
    CHECK(v != NULL);
    if (!v) return;
    CHECK_STR(ids_of(v, "CAF\xc3\xa9", 5, 0, a, sizeof a), "8");
    CHECK_STR(ids_of(v, "Cafe", 4, 0, a, sizeof a), "4");
    infer_vocab_free(v);
}

/* Hostile bytes never crash and give no ids for nothing: every lead and
 * continuation byte, alone and in runs, truncated sequences, and NULs. */
static void test_hostile_bytes(void) {
    infer_vocab *v = tiny_wpm(-1, -1);
    CHECK(v != NULL);
    if (!v) return;
    char s[1024];
    int32_t ids[2048];
    char err[256];
    int ok = 1;
    for (int b = 0; b < 256; b++) {
        for (int k = 0; k < 1024; k++) s[k] = (char)(k % 7 == 0 ? b : (b * 31 + k) & 0xFF);
        for (size_t len = 0; len < sizeof s; len += 97) {
            int64_t n = infer_tokenize(v, s, len, INFER_TOK_ADD_SPECIAL | INFER_TOK_PARSE_SPECIAL, ids, 2048, err, sizeof err);
            if (n < 2 || n > 2048) ok = 0;
            for (int64_t i = 0; i < n && i < 2048; i++)
                if (ids[i] < 0 || ids[i] >= infer_vocab_size(v)) ok = 0;
        }
    }
    infer_vocab_free(v);
    CHECK(ok);
}

/* Phi-3 marks "</s>" user-defined; llama.cpp makes it a control token (it
 * ends generation), so plain text keeps it as text.  Its special tokens
 * strip the white space after them, except <unk>, <s> and <|endoftext|>. */
static void test_phi3_special_text(void) {
    infer_vocab *v = load_vocab("phi-3");
    if (!v) TEST_SKIP("phi-3 vocab not found under %s", test_shared_dir());
    char a[512];
    CHECK_STR(ids_of(v, "</s> hi", 7, 0, a, sizeof a), "1533 29879 29958 7251");
    CHECK_STR(ids_of(v, "</s> hi", 7, INFER_TOK_PARSE_SPECIAL, a, sizeof a), "2 7251");
    CHECK_STR(ids_of(v, "<|end|> \n hi", 12, INFER_TOK_PARSE_SPECIAL, a, sizeof a), "32007 7251");
    CHECK_STR(ids_of(v, "<|end|> \n hi", 12, 0, a, sizeof a), "529 29989 355 29989 29958 29871 13 7251");
    CHECK_STR(ids_of(v, "<s> hi", 6, INFER_TOK_PARSE_SPECIAL, a, sizeof a), "1 29871 7251");
    CHECK(infer_vocab_is_eog(v, 2));
    infer_vocab_free(v);
    /* Llama 2's "</s>" is a control token already and strips nothing. */
    v = load_vocab("llama-spm");
    if (!v) TEST_SKIP("llama-spm vocab not found under %s", test_shared_dir());
    CHECK_STR(ids_of(v, "</s> hi", 7, INFER_TOK_PARSE_SPECIAL, a, sizeof a), "2 29871 7251");
    /* an invalid lead byte takes four bytes, as llama.cpp cuts symbols */
    CHECK_STR(ids_of(v, "a \xff" " b", 5, 0, a, sizeof a), "263 29871 258 229 153 132 29890");
    infer_vocab_free(v);
}

int main(void) {
    TEST_RUN(test_bge_normalization);
    TEST_RUN(test_normalizer_flags);
    TEST_RUN(test_hostile_bytes);
    TEST_RUN(test_phi3_special_text);
    return TEST_DONE();
}
