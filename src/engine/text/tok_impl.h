/* tok_impl.h - internal: the infer_vocab structure shared by the tokenizers.
 *
 * vocab.c builds it (from GGUF metadata or a Hugging Face tokenizer.json),
 * tok_spm.c / tok_bpe.c / tok_wpm.c encode with it, detok.c decodes with it.
 * Token texts live in one blob; a single open-addressing table maps text to
 * id, so lookups by (pointer, length) never allocate. */
#ifndef INFER_TOK_IMPL_H
#define INFER_TOK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "infer.h"

enum vocab_kind { VOCAB_SPM = 1, VOCAB_BPE = 2, VOCAB_WPM = 3 };

/* tokenizer.ggml.token_type values */
enum tok_type {
    TT_UNDEFINED = 0, TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3,
    TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6,
};

/* Byte-level BPE pre-tokenizers (tokenizer.ggml.pre). */
enum bpe_pre {
    PRE_GPT2 = 1, PRE_LLAMA3, PRE_QWEN2, PRE_DEEPSEEK_LLM, PRE_DEEPSEEK_CODER,
    PRE_FALCON, PRE_MPT, PRE_STARCODER, PRE_REFACT,
};

#define VOCAB_MAX_REGEX 8

/* One merge rule; rank UINT32_MAX marks an empty slot.  Key, rank and result
 * share a 16-byte slot so a lookup touches one cache line. */
struct bpe_merge {
    uint64_t key; /* left id << 32 | right id */
    uint32_t rank;
    int32_t result;
};

struct infer_vocab {
    int kind; /* enum vocab_kind */
    int32_t n;
    char *blob;         /* every token text, each NUL-terminated */
    uint32_t *off;      /* text of id i: blob + off[i], length len[i] */
    uint32_t *len;
    float *score;
    uint8_t *type;      /* enum tok_type */
    uint8_t *eog;       /* 1 when the id ends generation */
    int32_t *ht;        /* text -> id, open addressing, -1 empty */
    uint32_t ht_mask;
    uint32_t max_len;   /* longest token text in bytes */

    int32_t bos, eos, unk, sep, pad, cls, mask, eot;
    int add_bos, add_eos, add_space_prefix;
    int nfc;            /* NFC-normalize plain text before encoding */
    int js_text;        /* the reference is JavaScript: invalid UTF-8 becomes
                         * U+FFFD and \s means JavaScript's white space */

    int32_t byte_tok[256]; /* id that stands for a raw byte, or -1 */
    int spm_split;         /* SPM: no token has U+2581 after another character */

    /* Tokens matched in text before the model's own tokenization: sorted by
     * (first byte, length descending).  User-defined tokens always match;
     * control/unknown tokens only with INFER_TOK_PARSE_SPECIAL. */
    int32_t *specials;
    int32_t n_specials;
    int32_t special_first[257]; /* specials with first byte b: [first[b], first[b+1]) */

    /* Byte-level BPE */
    int pre;                 /* enum bpe_pre */
    char pre_name[32];       /* as tokenizer.ggml.pre spells it */
    int ignore_merges;       /* a word that is a token is emitted whole */
    void *re[VOCAB_MAX_REGEX]; /* pcre2_code_8 * */
    int n_re;
    struct bpe_merge *merges; /* (left, right) -> rank, result; open addressing */
    uint64_t merge_mask;
    uint32_t byte_enc[256];  /* byte -> code point of the GPT-2 byte alphabet */
    int16_t byte_dec[0x180]; /* that code point -> byte, or -1 */
};

/* Construction helpers (vocab.c), used by the GGUF and JSON loaders:
 * alloc, then set_text for ids 0..n-1 in order (and types, scores, special
 * ids), then finish (lookup table, byte tokens, specials, end-of-generation). */
infer_vocab *vocab_alloc(int kind, int64_t n, uint64_t text_bytes, char *err, size_t errlen);
void vocab_set_text(infer_vocab *v, int32_t id, const char *s, uint32_t len, uint32_t *blob_pos);
int vocab_finish(infer_vocab *v, char *err, size_t errlen);
int vocab_byte_of(const infer_vocab *v, int32_t id); /* "<0xXX>" -> byte, else -1 */
/* Hugging Face tokenizer.json (tok_json.c). */
int vocab_from_json_file(const char *path, infer_vocab **out, char *err, size_t errlen);
int vocab_from_json(const char *buf, size_t len, infer_vocab **out, char *err, size_t errlen);

/* Text -> id, or -1. */
int32_t vocab_find(const infer_vocab *v, const char *s, size_t len);
static inline const char *vocab_text(const infer_vocab *v, int32_t id) {
    return v->blob + v->off[id];
}

/* A growable id buffer shared by the encoders: ids past cap are counted,
 * not stored, so the caller learns the size it needs. */
typedef struct tok_out {
    int32_t *ids;
    size_t cap;
    int64_t n;
} tok_out;
static inline void tok_push(tok_out *o, int32_t id) {
    if ((size_t)o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* Encoders of one raw-text fragment (no special tokens inside).  Return 0,
 * or -1 with a message (allocation failure). */
int spm_encode(const infer_vocab *v, const char *text, size_t len, int space_prefix,
               tok_out *o, char *err, size_t errlen);
int bpe_encode(const infer_vocab *v, const char *text, size_t len, tok_out *o,
               char *err, size_t errlen);
int wpm_encode(const infer_vocab *v, const char *text, size_t len, tok_out *o,
               char *err, size_t errlen);

/* Byte-level BPE set-up (tok_bpe.c): pre-tokenizer regexes and merges. */
/* Compiles the pre-tokenizer named pre (v->js_text picks JavaScript's \s). */
int bpe_setup_pre(infer_vocab *v, const char *pre, size_t pre_len, char *err, size_t errlen);
/* Adds merge (l, r) with its rank; scratch holds 2 * max_len bytes.  A merge
 * whose parts or result are no tokens is ignored, as it can never apply. */
int bpe_add_merge(infer_vocab *v, const char *l, size_t ll, const char *r, size_t rl, uint32_t rank,
                  char *scratch);
int bpe_merges_alloc(infer_vocab *v, uint64_t n_merges);
void bpe_init_bytes(infer_vocab *v);
void bpe_free(infer_vocab *v);

/* UTF-8 helpers (utf8.c) */
/* Length of the sequence a lead byte starts (1 for invalid bytes). */
static inline size_t utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}
/* Decodes one code point at s[*i] (advancing *i); invalid bytes decode as
 * U+FFFD and advance by one. */
uint32_t utf8_decode(const char *s, size_t len, size_t *i);
/* Encodes cp into buf (4 bytes), returns the length. */
size_t utf8_encode(uint32_t cp, char *buf);

/* Unicode properties (tok_unicode.c), from tables generated by
 * scripts/gen-unicode-tables.py. */
#define UCD_LETTER 1u
#define UCD_NUMBER 2u
#define UCD_PUNCT 4u
#define UCD_SYMBOL 8u
#define UCD_MARK 16u
#define UCD_SEPARATOR 32u
#define UCD_CONTROL 64u
#define UCD_WHITESPACE 128u
unsigned ucd_flags(uint32_t cp);
uint32_t ucd_tolower(uint32_t cp);
uint32_t ucd_nfd_base(uint32_t cp); /* first code point of the NFD form */
/* The text a Unicode-string tokenizer would see: invalid UTF-8 replaced by
 * U+FFFD as WHATWG decoders do (repair_utf8), then NFC (nfc).  Returns a
 * new buffer, or NULL with *out_len == len when nothing changes (and NULL
 * with *out_len == 0 when out of memory). */
char *ucd_prepare(const char *text, size_t len, int repair_utf8, int nfc, size_t *out_len);

#endif
