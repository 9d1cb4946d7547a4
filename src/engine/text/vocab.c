/* vocab.c - the infer_vocab: loading and lookups.
 *
 * A vocabulary comes from GGUF metadata (tokenizer.ggml.*), either inside a
 * model file or in a vocab-only file, or from a Hugging Face tokenizer.json
 * (tok_json.c).  Everything is copied out of the file, so the vocab outlives
 * the mapping.  Encoding text is tokenize.c's job, over the encoders of
 * tok.h; nothing here calls them. */
#include "text/vocab.h"
#include "kernels/ialloc.h"


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---- text -> id table ------------------------------------------------------ */

static uint32_t hash_bytes(const char *s, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

int32_t vocab_find(const infer_vocab *v, const char *s, size_t len) {
    if (len > v->max_len) return -1;
    uint32_t i = hash_bytes(s, len) & v->ht_mask;
    for (;;) {
        int32_t id = v->ht[i];
        if (id < 0) return -1;
        if (v->len[id] == len && memcmp(v->blob + v->off[id], s, len) == 0) return id;
        i = (i + 1) & v->ht_mask;
    }
}

/* Builds the table.  A text present twice maps to its first id, as the
 * reference tokenizers do. */
static int build_table(infer_vocab *v, char *err, size_t errlen) {
    uint32_t cap = 16;
    while (cap < (uint32_t)v->n * 2u) cap <<= 1;
    v->ht = ie_malloc(sizeof(int32_t) * cap);
    if (!v->ht) return fail(err, errlen, "vocab: out of memory");
    memset(v->ht, 0xff, sizeof(int32_t) * cap);
    v->ht_mask = cap - 1;
    for (int32_t id = 0; id < v->n; id++) {
        uint32_t i = hash_bytes(v->blob + v->off[id], v->len[id]) & v->ht_mask;
        int dup = 0;
        while (v->ht[i] >= 0) {
            int32_t o = v->ht[i];
            if (v->len[o] == v->len[id] && memcmp(v->blob + v->off[o], v->blob + v->off[id], v->len[id]) == 0) {
                dup = 1;
                break;
            }
            i = (i + 1) & v->ht_mask;
        }
        if (!dup) v->ht[i] = id;
    }
    return 0;
}

/* ---- special tokens -------------------------------------------------------- */

static int cmp_special(const void *a, const void *b, void *ctx) {
    const infer_vocab *v = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    unsigned char fx = (unsigned char)v->blob[v->off[x]];
    unsigned char fy = (unsigned char)v->blob[v->off[y]];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (v->len[x] != v->len[y]) return v->len[x] > v->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int build_specials(infer_vocab *v, char *err, size_t errlen) {
    int32_t n = 0;
    for (int32_t id = 0; id < v->n; id++) {
        uint8_t t = v->type[id];
        if ((t == TT_CONTROL || t == TT_USER_DEFINED || t == TT_UNKNOWN) && v->len[id] > 0) n++;
    }
    v->specials = ie_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (!v->specials) return fail(err, errlen, "vocab: out of memory");
    n = 0;
    for (int32_t id = 0; id < v->n; id++) {
        uint8_t t = v->type[id];
        if ((t == TT_CONTROL || t == TT_USER_DEFINED || t == TT_UNKNOWN) && v->len[id] > 0)
            v->specials[n++] = id;
    }
    v->n_specials = n;
    qsort_r(v->specials, (size_t)n, sizeof(int32_t), cmp_special, v);
    int32_t j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < n && (unsigned char)v->blob[v->off[v->specials[j]]] < b) j++;
        v->special_first[b] = j;
    }
    return 0;
}

/* ---- llama.cpp's corrections of token types --------------------------------
 *
 * llama.cpp does not trust tokenizer.ggml.token_type alone: on load it finds
 * end-of-generation and fill-in-the-middle tokens by their text and makes
 * them control tokens (so "</s>", user-defined in Phi-3's vocab, is plain
 * text without --parse-special), and turns a few texts back into ordinary
 * tokens for the families that need it.  GGUF vocabs follow the same rules
 * so that they tokenize as llama.cpp does; the lists are its own. */

/* Texts that end generation; each becomes a control token. */
static const char *const eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
    "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
    "<\xef\xbd\x9c" "end\xe2\x96\x81" "of\xe2\x96\x81" "sentence\xef\xbd\x9c>", "[e~[",
};

/* Fill-in-the-middle roles (prefix, suffix, middle, pad, repo, file
 * separator): when the file names no id for a role, a token with one of
 * the role's texts becomes a control token.  (llama.cpp takes the first it
 * meets in a hash map; a vocab with two candidates for one role, neither a
 * control token, could differ.) */
static const char *const fim_texts[6][9] = {
    {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
     "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL},
    {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>", "<SUF>",
     "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL},
    {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
     "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL},
    {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL},
    {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL},
    {"<|file_sep|>", NULL},
};
static const char *const fim_keys[6][2] = {
    {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"},
    {"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"},
    {"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"},
    {"tokenizer.ggml.fim_pad_token_id", NULL},
    {"tokenizer.ggml.fim_rep_token_id", NULL},
    {"tokenizer.ggml.fim_sep_token_id", NULL},
};

static int32_t find_cstr(const infer_vocab *v, const char *s) { return vocab_find(v, s, strlen(s)); }

static void set_type(infer_vocab *v, const char *text, uint8_t type) {
    int32_t id = find_cstr(v, text);
    if (id >= 0) v->type[id] = type;
}

static void llama_type_rules(infer_vocab *v) {
    for (size_t i = 0; i < sizeof eog_texts / sizeof eog_texts[0]; i++) {
        int32_t id = find_cstr(v, eog_texts[i]);
        if (id < 0) continue;
        v->eog[id] = 1;
        v->type[id] = TT_CONTROL;
    }
    for (int r = 0; r < 6; r++) {
        if (v->fim_named & (1u << r)) continue;
        for (int k = 0; fim_texts[r][k]; k++) {
            int32_t id = find_cstr(v, fim_texts[r][k]);
            if (id < 0) continue;
            v->type[id] = TT_CONTROL;
            if (r >= 3) v->eog[id] = 1; /* pad, repo and file separator end generation */
        }
    }
    /* gpt-oss: these are always rendered */
    static const char *const shown[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++) set_type(v, shown[i], TT_USER_DEFINED);
    /* o200k_harmony and solar-open: <|end|> ends a message, not generation */
    if ((find_cstr(v, "<|return|>") >= 0 && find_cstr(v, "<|call|>") >= 0) ||
        (find_cstr(v, "<|calls|>") >= 0 && find_cstr(v, "<|flush|>") >= 0)) {
        int32_t id = find_cstr(v, "<|end|>");
        if (id >= 0) {
            v->type[id] = TT_USER_DEFINED;
            v->eog[id] = 0;
        }
    }
    /* Gemma 4 and PaddleOCR: </s> is an ordinary token */
    if (find_cstr(v, "<|tool_response>") >= 0) {
        int32_t id = find_cstr(v, "</s>");
        if (id >= 0) {
            v->type[id] = TT_NORMAL;
            v->eog[id] = 0;
        }
    }
}

static int contains(const char *hay, size_t n, const char *needle) {
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0) return 1;
    return 0;
}

static int set_strip(infer_vocab *v, const char *text, unsigned bit, int on) {
    int32_t id = find_cstr(v, text);
    if (id < 0) return 0;
    if (!v->strip && !(v->strip = ie_calloc((size_t)v->n, 1))) return -1;
    v->strip[id] = (uint8_t)(on ? v->strip[id] | bit : v->strip[id] & ~bit);
    return 0;
}

/* White space that llama.cpp drops beside special tokens of some families,
 * chosen by the model's name, architecture and pre-tokenizer. */
static int llama_strip_rules(infer_vocab *v, const gguf_file *g) {
    char name[256] = "";
    const char *s;
    uint64_t n;
    if (gguf_get_str(g, "general.name", &s, &n) == 0) {
        if (n >= sizeof name) n = sizeof name - 1;
        for (uint64_t i = 0; i < n; i++) name[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
        name[n] = 0;
    }
    const char *arch = "", *pre = "";
    uint64_t arch_n = 0, pre_n = 0;
    if (gguf_get_str(g, "general.architecture", &arch, &arch_n) != 0) arch_n = 0;
    if (gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pre_n) != 0) pre_n = 0;
    if (contains(pre, pre_n, "jina-v2-de") || contains(pre, pre_n, "jina-v2-es") ||
        contains(pre, pre_n, "jina-v2-code") || contains(arch, arch_n, "nomic-bert-moe") ||
        contains(arch, arch_n, "jina-bert-v3"))
        return set_strip(v, "<mask>", VOCAB_LSTRIP, 1);
    size_t nl = strlen(name);
    if (contains(name, nl, "phi-3") || contains(name, nl, "phi3")) {
        if (!v->strip && !(v->strip = ie_calloc((size_t)v->n, 1))) return -1;
        for (int32_t i = 0; i < v->n_specials; i++) v->strip[v->specials[i]] |= VOCAB_RSTRIP;
        if (set_strip(v, "</s>", VOCAB_RSTRIP, 1) < 0) return -1;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) set_strip(v, keep[i], VOCAB_RSTRIP, 0);
        return 0;
    }
    if (contains(name, nl, "modern-bert")) return set_strip(v, "[MASK]", VOCAB_LSTRIP, 1);
    return 0;
}

/* End of generation: the eos and eot ids, and the turn-ending texts of the
 * chat formats we know when the vocab marks them as control tokens. */
static void mark_eog(infer_vocab *v) {
    if (v->eos >= 0) v->eog[v->eos] = 1;
    if (v->eot >= 0) v->eog[v->eot] = 1;
    static const char *const turn_ends[] = {
        "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>",
        "<end_of_turn>", "<|end_of_text|>", "</s>",
    };
    for (size_t i = 0; i < sizeof turn_ends / sizeof turn_ends[0]; i++) {
        int32_t id = find_cstr(v, turn_ends[i]);
        if (id >= 0 && v->type[id] == TT_CONTROL) v->eog[id] = 1;
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The byte a "<0xXX>" token stands for, or -1. */
int vocab_byte_of(const infer_vocab *v, int32_t id) {
    const char *s = v->blob + v->off[id];
    if (v->len[id] != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int h = hexval(s[3]), l = hexval(s[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

/* SentencePiece byte fallback: <0xXX> tokens, else a token whose text is
 * the byte itself. */
static void spm_init_bytes(infer_vocab *v) {
    for (int b = 0; b < 256; b++) v->byte_tok[b] = -1;
    for (int32_t id = 0; id < v->n; id++) {
        int b = vocab_byte_of(v, id);
        if (b >= 0 && v->byte_tok[b] < 0) v->byte_tok[b] = id;
    }
    for (int b = 0; b < 256; b++) {
        if (v->byte_tok[b] >= 0) continue;
        char c = (char)b;
        v->byte_tok[b] = vocab_find(v, &c, 1);
    }
}

/* Whether SentencePiece text may be merged word by word: true when no
 * token has a U+2581 preceded by a character other than U+2581, since only
 * such a token could be formed across the start of a word. */
static int spm_can_split(const infer_vocab *v) {
    for (int32_t id = 0; id < v->n; id++) {
        const char *s = v->blob + v->off[id];
        uint32_t n = v->len[id];
        for (uint32_t i = 1; i + 3 <= n; i++) {
            if (memcmp(s + i, "\xe2\x96\x81", 3) != 0) continue;
            if (i < 3 || memcmp(s + i - 3, "\xe2\x96\x81", 3) != 0) return 0;
        }
    }
    return 1;
}

/* ---- construction ---------------------------------------------------------- */

void infer_vocab_free(infer_vocab *v) {
    if (!v) return;
    bpe_free(v);
    free(v->blob);
    free(v->off);
    free(v->len);
    free(v->score);
    free(v->type);
    free(v->eog);
    free(v->strip);
    free(v->ht);
    free(v->specials);
    free(v);
}

infer_vocab *vocab_alloc(int kind, int64_t n, uint64_t text_bytes, char *err, size_t errlen) {
    if (n <= 0 || n >= INT32_MAX / 2) {
        fail(err, errlen, "vocab: bad token count %lld", (long long)n);
        return NULL;
    }
    if (text_bytes + (uint64_t)n >= UINT32_MAX) {
        fail(err, errlen, "vocab: token texts too large");
        return NULL;
    }
    infer_vocab *v = ie_calloc(1, sizeof *v);
    if (!v) {
        fail(err, errlen, "vocab: out of memory");
        return NULL;
    }
    v->kind = kind;
    v->n = (int32_t)n;
    v->blob = ie_malloc(text_bytes + (uint64_t)n);
    v->off = ie_malloc(sizeof(uint32_t) * (size_t)n);
    v->len = ie_malloc(sizeof(uint32_t) * (size_t)n);
    v->score = ie_calloc((size_t)n, sizeof(float));
    v->type = ie_malloc((size_t)n);
    v->eog = ie_calloc((size_t)n, 1);
    if (!v->blob || !v->off || !v->len || !v->score || !v->type || !v->eog) {
        infer_vocab_free(v);
        fail(err, errlen, "vocab: out of memory");
        return NULL;
    }
    memset(v->type, TT_NORMAL, (size_t)n);
    v->bos = v->eos = v->unk = v->sep = v->pad = v->cls = v->mask = v->eot = -1;
    v->wpm_lowercase = v->wpm_strip_accents = 1;
    for (int b = 0; b < 256; b++) v->byte_tok[b] = -1;
    return v;
}

/* Copies token texts one after another into the blob; call with ids in order. */
void vocab_set_text(infer_vocab *v, int32_t id, const char *s, uint32_t len, uint32_t *blob_pos) {
    v->off[id] = *blob_pos;
    v->len[id] = len;
    memcpy(v->blob + *blob_pos, s, len);
    v->blob[*blob_pos + len] = 0;
    *blob_pos += len + 1;
    if (len > v->max_len) v->max_len = len;
}

/* Everything after the texts, types and special ids are known. */
int vocab_finish(infer_vocab *v, char *err, size_t errlen) {
    if (build_table(v, err, errlen) < 0) return -1;
    if (v->llama_rules) llama_type_rules(v);
    if (v->kind == VOCAB_SPM) {
        spm_init_bytes(v);
        v->spm_split = spm_can_split(v);
    }
    if (v->kind == VOCAB_BPE) bpe_init_bytes(v);
    if (build_specials(v, err, errlen) < 0) return -1;
    mark_eog(v);
    return 0;
}

/* An optional token id: absent or the 0xFFFFFFFF / -1 sentinel give -1
 * (no such token); anything else must be a valid id. */
static int read_id(const gguf_file *g, const char *key, int32_t n, int32_t *out, char *err,
                   size_t errlen) {
    int64_t x;
    int rc = gguf_get_i64(g, key, &x);
    if (rc == -1) return 0;
    if (rc < 0) return fail(err, errlen, "vocab: %s has a non-integer type", key);
    if (x == -1 || x == (int64_t)UINT32_MAX) {
        *out = -1;
        return 0;
    }
    if (x < 0 || x >= n) return fail(err, errlen, "vocab: %s = %lld is outside the vocabulary (%d tokens)", key, (long long)x, n);
    *out = (int32_t)x;
    return 0;
}

static int read_flag(const gguf_file *g, const char *key, int *out, char *err, size_t errlen) {
    int b;
    int rc = gguf_get_bool(g, key, &b);
    if (rc == -1) return 0;
    if (rc < 0) return fail(err, errlen, "vocab: %s is not a boolean", key);
    *out = b;
    return 0;
}

int vocab_from_gguf(const gguf_file *g, infer_vocab **out, char *err, size_t errlen) {
    *out = NULL;
    const char *model;
    uint64_t model_len;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, &model_len) != 0)
        return fail(err, errlen, "vocab: tokenizer.ggml.model is missing or not a string");
    int kind;
    if (model_len == 5 && memcmp(model, "llama", 5) == 0) kind = VOCAB_SPM;
    else if (model_len == 4 && memcmp(model, "gpt2", 4) == 0) kind = VOCAB_BPE;
    else if (model_len == 4 && memcmp(model, "bert", 4) == 0) kind = VOCAB_WPM;
    else return fail(err, errlen, "vocab: unsupported tokenizer model '%.*s' (supported: llama, gpt2, bert)", (int)(model_len > 64 ? 64 : model_len), model);

    const gguf_kv *toks, *scores = NULL, *types = NULL, *merges = NULL;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_STRING, &toks) != 0)
        return fail(err, errlen, "vocab: tokenizer.ggml.tokens is missing or not an array of strings");
    uint64_t n = toks->arr_n;
    int rc = gguf_get_arr(g, "tokenizer.ggml.scores", GGUF_FLOAT32, &scores);
    if (rc == -2) return fail(err, errlen, "vocab: tokenizer.ggml.scores is not an array of float32");
    if (rc == 0 && scores->arr_n != n)
        return fail(err, errlen, "vocab: %llu scores for %llu tokens", (unsigned long long)scores->arr_n, (unsigned long long)n);
    rc = gguf_get_arr(g, "tokenizer.ggml.token_type", UINT32_MAX, &types);
    if (rc == -2) return fail(err, errlen, "vocab: tokenizer.ggml.token_type is not an array");
    if (rc == 0) {
        uint32_t t = types->arr_type;
        if (t == GGUF_STRING || t == GGUF_ARRAY || t == GGUF_FLOAT32 || t == GGUF_FLOAT64)
            return fail(err, errlen, "vocab: tokenizer.ggml.token_type is not an array of integers");
        if (types->arr_n != n)
            return fail(err, errlen, "vocab: %llu token types for %llu tokens", (unsigned long long)types->arr_n, (unsigned long long)n);
    }
    if (kind == VOCAB_BPE) {
        rc = gguf_get_arr(g, "tokenizer.ggml.merges", GGUF_STRING, &merges);
        if (rc != 0) return fail(err, errlen, "vocab: tokenizer.ggml.merges is missing or not an array of strings");
    }

    uint64_t text_bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        gguf_arr_str(toks, i, &s, &len);
        if (len > 65536) return fail(err, errlen, "vocab: token %llu is %llu bytes long", (unsigned long long)i, (unsigned long long)len);
        text_bytes += len;
    }
    infer_vocab *v = vocab_alloc(kind, (int64_t)n, text_bytes, err, errlen);
    if (!v) return -1;
    uint32_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        uint64_t len;
        gguf_arr_str(toks, i, &s, &len);
        vocab_set_text(v, (int32_t)i, s, (uint32_t)len, &pos);
        if (scores) v->score[i] = gguf_arr_f32(scores, i);
        if (types) {
            int64_t t = gguf_arr_int(types, i);
            if (t < 0 || t > TT_BYTE) {
                infer_vocab_free(v);
                return fail(err, errlen, "vocab: token %llu has unknown type %lld", (unsigned long long)i, (long long)t);
            }
            v->type[i] = (uint8_t)t;
        }
    }

    /* Defaults of the reference implementation, then the file's values. */
    if (kind == VOCAB_SPM) {
        v->unk = 0; v->bos = 1; v->eos = 2;
        if (v->n <= 2) v->bos = v->eos = -1;
        v->add_bos = 1;
        v->add_space_prefix = 1;
    } else if (kind == VOCAB_WPM) {
        v->unk = 100; v->cls = 101; v->sep = 102; v->pad = 0; v->mask = 103;
        if (v->n <= 103) v->unk = v->cls = v->sep = v->pad = v->mask = -1;
        v->add_bos = 1;
        v->add_eos = 1;
    }
    static const struct { const char *key; size_t field; } ids[] = {
        {"tokenizer.ggml.bos_token_id", offsetof(infer_vocab, bos)},
        {"tokenizer.ggml.eos_token_id", offsetof(infer_vocab, eos)},
        {"tokenizer.ggml.unknown_token_id", offsetof(infer_vocab, unk)},
        {"tokenizer.ggml.seperator_token_id", offsetof(infer_vocab, sep)},
        {"tokenizer.ggml.padding_token_id", offsetof(infer_vocab, pad)},
        {"tokenizer.ggml.cls_token_id", offsetof(infer_vocab, cls)},
        {"tokenizer.ggml.mask_token_id", offsetof(infer_vocab, mask)},
        {"tokenizer.ggml.eot_token_id", offsetof(infer_vocab, eot)},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        if (read_id(g, ids[i].key, v->n, (int32_t *)((char *)v + ids[i].field), err, errlen) < 0) {
            infer_vocab_free(v);
            return -1;
        }
    }
    /* Our own keys (tools/tokjson2gguf): text handling of the tokenizer.json
     * the file was converted from, so both tokenize alike. */
    if (read_flag(g, "inferkv.tokenizer.nfc", &v->nfc, err, errlen) < 0 ||
        read_flag(g, "inferkv.tokenizer.js_text", &v->js_text, err, errlen) < 0) {
        infer_vocab_free(v);
        return -1;
    }
    if (kind == VOCAB_BPE) {
        const char *pre = "default";
        uint64_t pre_len = 7;
        rc = gguf_get_str(g, "tokenizer.ggml.pre", &pre, &pre_len);
        if (rc == -2) {
            infer_vocab_free(v);
            return fail(err, errlen, "vocab: tokenizer.ggml.pre is not a string");
        }
        if (rc == -1) { pre = "default"; pre_len = 7; }
        if (bpe_setup_pre(v, pre, (size_t)pre_len, err, errlen) < 0) {
            infer_vocab_free(v);
            return -1;
        }
        if (bpe_merges_alloc(v, merges->arr_n) < 0) {
            infer_vocab_free(v);
            return fail(err, errlen, "vocab: out of memory for %llu merges", (unsigned long long)merges->arr_n);
        }
    }
    if (kind == VOCAB_WPM) {
        if (read_flag(g, "tokenizer.ggml.normalizer.lowercase", &v->wpm_lowercase, err, errlen) < 0) {
            infer_vocab_free(v);
            return -1;
        }
        v->wpm_strip_accents = v->wpm_lowercase;
        if (read_flag(g, "tokenizer.ggml.normalizer.strip_accents", &v->wpm_strip_accents, err, errlen) < 0) {
            infer_vocab_free(v);
            return -1;
        }
    }
    if (read_flag(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err, errlen) < 0 ||
        read_flag(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err, errlen) < 0 ||
        read_flag(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err, errlen) < 0) {
        infer_vocab_free(v);
        return -1;
    }
    /* The ids the vocab names are special whatever their recorded type (old
     * files mark everything normal). */
    if (!types) {
        if (v->unk >= 0) v->type[v->unk] = TT_UNKNOWN;
        int32_t ctl[] = {v->bos, v->eos, v->sep, v->pad, v->cls, v->mask, v->eot};
        for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++)
            if (ctl[i] >= 0) v->type[ctl[i]] = TT_CONTROL;
        if (kind == VOCAB_SPM)
            for (int32_t id = 0; id < v->n; id++)
                if (vocab_byte_of(v, id) >= 0) v->type[id] = TT_BYTE;
    }
    v->llama_rules = 1;
    for (int r = 0; r < 6; r++)
        for (int k = 0; k < 2; k++) {
            int64_t x;
            if (fim_keys[r][k] && gguf_get_i64(g, fim_keys[r][k], &x) == 0 && x >= 0 && x < v->n)
                v->fim_named |= 1u << r;
        }
    if (vocab_finish(v, err, errlen) < 0) {
        infer_vocab_free(v);
        return -1;
    }
    if (llama_strip_rules(v, g) < 0) {
        infer_vocab_free(v);
        return fail(err, errlen, "vocab: out of memory");
    }
    if (kind == VOCAB_BPE) {
        char *scratch = ie_malloc(2 * (size_t)v->max_len + 2);
        if (!scratch) {
            infer_vocab_free(v);
            return fail(err, errlen, "vocab: out of memory");
        }
        for (uint64_t i = 0; i < merges->arr_n; i++) {
            const char *s;
            uint64_t len;
            gguf_arr_str(merges, i, &s, &len);
            /* "left right": the parts are in the byte alphabet, so the only
             * raw space is the separator (searched from 1: a part is never empty). */
            const char *sp = len > 1 ? memchr(s + 1, ' ', (size_t)len - 1) : NULL;
            if (!sp || i >= UINT32_MAX ||
                bpe_add_merge(v, s, (size_t)(sp - s), sp + 1, (size_t)(s + len - sp - 1), (uint32_t)i, scratch) < 0) {
                free(scratch);
                infer_vocab_free(v);
                return fail(err, errlen, "vocab: merge %llu is malformed", (unsigned long long)i);
            }
        }
        free(scratch);
    }
    *out = v;
    return 0;
}

/* Whether the file looks like JSON (a tokenizer.json) rather than GGUF. */
static int looks_like_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    int c;
    do c = fgetc(f); while (c == ' ' || c == '\n' || c == '\r' || c == '\t');
    fclose(f);
    return c == '{';
}

int infer_vocab_load(const char *path, infer_vocab **out, char *err, size_t errlen) {
    if (!path || !out) return fail(err, errlen, "vocab: no path");
    *out = NULL;
    if (looks_like_json(path)) return vocab_from_json_file(path, out, err, errlen);
    gguf_file *g;
    if (gguf_open(path, &g, err, errlen) < 0) return -1;
    int rc = vocab_from_gguf(g, out, err, errlen);
    gguf_close(g);
    return rc;
}

/* ---- accessors ------------------------------------------------------------- */

int32_t infer_vocab_size(const infer_vocab *v) { return v ? v->n : 0; }
int32_t infer_vocab_bos(const infer_vocab *v) {
    if (!v) return -1;
    return v->kind == VOCAB_WPM && v->cls >= 0 ? v->cls : v->bos;
}
int32_t infer_vocab_eos(const infer_vocab *v) {
    if (!v) return -1;
    return v->kind == VOCAB_WPM && v->sep >= 0 ? v->sep : v->eos;
}
int infer_vocab_is_eog(const infer_vocab *v, int32_t id) {
    return v && id >= 0 && id < v->n && v->eog[id];
}
const char *infer_vocab_kind(const infer_vocab *v) {
    if (!v) return "";
    switch (v->kind) {
    case VOCAB_SPM: return "llama";
    case VOCAB_BPE: return "gpt2";
    case VOCAB_WPM: return "bert";
    }
    return "";
}
int vocab_add_bos(const infer_vocab *v) { return v && v->add_bos && infer_vocab_bos(v) >= 0; }

int32_t infer_vocab_find(const infer_vocab *v, const char *text, size_t len) {
    return v && text ? vocab_find(v, text, len) : -1;
}
const char *infer_vocab_text(const infer_vocab *v, int32_t id, size_t *len) {
    if (!v || id < 0 || id >= v->n) return NULL;
    if (len) *len = v->len[id];
    return v->blob + v->off[id];
}
