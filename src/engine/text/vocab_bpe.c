/* vocab_bpe.c - what a byte-level BPE vocabulary holds besides its tokens:
 * the pre-tokenizer (regular expressions picked by tokenizer.ggml.pre),
 * the merge table, and GPT-2's byte alphabet.
 *
 * Built once, with the vocabulary; tok_bpe.c only reads them when it
 * encodes.  The regexes are PCRE2 in UTF + Unicode-property mode,
 * JIT-compiled. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "text/unicode.h"
#include "text/vocab.h"
#include "kernels/ialloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pre-tokenizers ---------------------------------------------------------- */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS_ANYCASE "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3 RE_CONTRACTIONS_ANYCASE "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2 RE_CONTRACTIONS_ANYCASE "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

static const char *const re_gpt2[] = {RE_GPT2, NULL};
static const char *const re_llama3[] = {RE_LLAMA3, NULL};
static const char *const re_qwen2[] = {RE_QWEN2, NULL};
static const char *const re_deepseek_llm[] = {
    "[\r\n]",
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    RE_CJK,
    "\\p{N}+",
    NULL,
};
static const char *const re_deepseek_coder[] = {
    "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}", NULL,
};
static const char *const re_falcon[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]", NULL,
};
static const char *const re_starcoder[] = {"\\p{N}", RE_GPT2, NULL};
static const char *const re_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL,
};

static const struct {
    const char *name;
    int pre;
    int ignore_merges;
    const char *const *re;
} pre_table[] = {
    {"gpt-2", PRE_GPT2, 0, re_gpt2},
    {"mpt", PRE_MPT, 0, re_gpt2},
    {"llama-bpe", PRE_LLAMA3, 1, re_llama3},
    {"llama3", PRE_LLAMA3, 1, re_llama3},
    {"llama-v3", PRE_LLAMA3, 1, re_llama3},
    {"qwen2", PRE_QWEN2, 0, re_qwen2},
    {"deepseek-llm", PRE_DEEPSEEK_LLM, 0, re_deepseek_llm},
    {"deepseek-coder", PRE_DEEPSEEK_CODER, 0, re_deepseek_coder},
    {"falcon", PRE_FALCON, 0, re_falcon},
    {"starcoder", PRE_STARCODER, 0, re_starcoder},
    {"refact", PRE_REFACT, 0, re_starcoder},
    {"default", PRE_GPT2, 0, re_default},
};

/* JavaScript's \s (WhiteSpace + LineTerminator): unlike Unicode's White_Space
 * (PCRE2's \s) it has U+FEFF and lacks U+0085. */
#define JS_WS "\\t\\n\\x{B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"

/* Copies pattern re into out, spelling \s and \S as JavaScript's classes
 * when js is set (inside a class, \s becomes its members). */
static int rewrite_ws(const char *re, int js, char *out, size_t cap) {
    size_t o = 0;
    int in_class = 0;
    for (const char *p = re; *p; p++) {
        const char *add = NULL;
        char two[3] = {0};
        if (*p == '\\' && p[1]) {
            if (js && p[1] == 's') add = in_class ? JS_WS : "[" JS_WS "]";
            else if (js && p[1] == 'S' && !in_class) add = "[^" JS_WS "]";
            else {
                two[0] = p[0];
                two[1] = p[1];
                add = two;
            }
            p++;
        } else {
            if (*p == '[') in_class = 1;
            else if (*p == ']') in_class = 0;
            two[0] = *p;
            add = two;
        }
        size_t l = strlen(add);
        if (o + l + 1 > cap) return -1;
        memcpy(out + o, add, l);
        o += l;
    }
    out[o] = 0;
    return 0;
}

int bpe_setup_pre(infer_vocab *v, const char *pre, size_t pre_len, char *err, size_t errlen) {
    for (size_t i = 0; i < sizeof pre_table / sizeof pre_table[0]; i++) {
        if (strlen(pre_table[i].name) != pre_len || memcmp(pre_table[i].name, pre, pre_len) != 0) continue;
        v->pre = pre_table[i].pre;
        snprintf(v->pre_name, sizeof v->pre_name, "%s", pre_table[i].name);
        v->ignore_merges = pre_table[i].ignore_merges;
        for (const char *const *r = pre_table[i].re; *r; r++) {
            int ec;
            PCRE2_SIZE eo;
            char pat[2048];
            if (rewrite_ws(*r, v->js_text, pat, sizeof pat) < 0) {
                snprintf(err, errlen, "vocab: pre-tokenizer regex too long");
                return -1;
            }
            pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                             PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF |
                                                 PCRE2_DOLLAR_ENDONLY,
                                             &ec, &eo, NULL);
            if (!code) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(ec, msg, sizeof msg);
                snprintf(err, errlen, "vocab: pre-tokenizer regex failed to compile at %zu: %s", (size_t)eo, (char *)msg);
                return -1;
            }
            pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* the interpreter remains if JIT is unavailable */
            v->re[v->n_re++] = code;
        }
        return 0;
    }
    snprintf(err, errlen, "vocab: unknown BPE pre-tokenizer '%.*s' (known: gpt-2, mpt, llama-bpe, qwen2, deepseek-llm, deepseek-coder, falcon, starcoder, refact, default)",
             (int)(pre_len > 64 ? 64 : pre_len), pre);
    return -1;
}

/* ---- merges ---------------------------------------------------------------- */

static uint64_t pair_key(int32_t l, int32_t r) { return ((uint64_t)(uint32_t)l << 32) | (uint32_t)r; }
/* Fibonacci hashing: the high bits of key * 2^64/phi; ids are small and
 * dense, so a multiply mixes them well enough and costs one instruction. */
static uint64_t slot_of(const infer_vocab *v, uint64_t key) {
    return (key * 0x9E3779B97F4A7C15ULL) >> 32 & v->merge_mask;
}

int bpe_merges_alloc(infer_vocab *v, uint64_t n_merges) {
    uint64_t cap = 16;
    while (cap < n_merges * 2) cap <<= 1;
    if (cap > ((uint64_t)1 << 30)) return -1;
    v->merges = ie_malloc(sizeof(struct bpe_merge) * cap);
    if (!v->merges) return -1;
    for (uint64_t i = 0; i < cap; i++) v->merges[i].rank = UINT32_MAX;
    v->merge_mask = cap - 1;
    return 0;
}

int bpe_add_merge(infer_vocab *v, const char *l, size_t ll, const char *r, size_t rl, uint32_t rank,
                  char *scratch) {
    if (!v->merges || rank == UINT32_MAX) return -1;
    if (ll + rl > v->max_len) return 0; /* the result is no token */
    int32_t lid = vocab_find(v, l, ll), rid = vocab_find(v, r, rl);
    if (lid < 0 || rid < 0) return 0;
    memcpy(scratch, l, ll);
    memcpy(scratch + ll, r, rl);
    int32_t res = vocab_find(v, scratch, ll + rl);
    if (res < 0) return 0;
    uint64_t key = pair_key(lid, rid);
    uint64_t i = slot_of(v, key);
    while (v->merges[i].rank != UINT32_MAX) {
        if (v->merges[i].key == key) return 0; /* the first (lowest) rank wins */
        i = (i + 1) & v->merge_mask;
    }
    v->merges[i].key = key;
    v->merges[i].rank = rank;
    v->merges[i].result = res;
    return 0;
}

/* GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the
 * others take the code points from U+0100 up, in byte order. */
void bpe_init_bytes(infer_vocab *v) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        v->byte_enc[b] = printable ? (uint32_t)b : next++;
    }
    for (int i = 0; i < 0x180; i++) v->byte_dec[i] = -1;
    for (int b = 0; b < 256; b++) {
        v->byte_dec[v->byte_enc[b]] = (int16_t)b;
        char buf[4];
        size_t n = utf8_encode(v->byte_enc[b], buf);
        v->byte_tok[b] = vocab_find(v, buf, n);
    }
}

void bpe_free(infer_vocab *v) {
    for (int i = 0; i < v->n_re; i++) pcre2_code_free((pcre2_code *)v->re[i]);
    v->n_re = 0;
    free(v->merges);
}

