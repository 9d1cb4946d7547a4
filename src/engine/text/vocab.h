/* vocab.h - internal: the infer_vocab structure and how one is built.
 *
 * vocab.c builds it from GGUF metadata (the model loader calls
 * vocab_from_gguf on the model's own file, so a model and its tokenizer are
 * validated together; infer_vocab_load in infer.h does the same for
 * vocab-only files), tok_json.c from a Hugging Face tokenizer.json,
 * vocab_bpe.c adds a byte-level BPE vocabulary's pre-tokenizer and merges,
 * vocab_write.c writes one back as GGUF metadata.  Token texts live in one
 * blob; a single open-addressing table maps text to id, so lookups by
 * (pointer, length) never allocate.
 *
 * The encoders (tok.h) read this structure; nothing here calls them, so
 * the text layer has no include circle: unicode.h <- vocab.h <- tok.h. */
#ifndef INFER_VOCAB_H
#define INFER_VOCAB_H

#include "gguf/gguf.h"
#include "infer.h"

#include <stddef.h>
#include <stdint.h>

enum vocab_kind { VOCAB_SPM = 1, VOCAB_BPE = 2, VOCAB_WPM = 3 };

/* tokenizer.ggml.token_type values */
enum tok_type {
    TT_UNDEFINED = 0, TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3,
    TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6,
};
#define VOCAB_LSTRIP 1u
#define VOCAB_RSTRIP 2u

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
    uint8_t *strip;     /* NULL, or per id: VOCAB_LSTRIP / VOCAB_RSTRIP (white
                         * space next to a matched special token is dropped) */
    int32_t *ht;        /* text -> id, open addressing, -1 empty */
    uint32_t ht_mask;
    uint32_t max_len;   /* longest token text in bytes */

    int32_t bos, eos, unk, sep, pad, cls, mask, eot;
    /* GGUF vocabs: token types are corrected by text as llama.cpp does on
     * load (vocab_finish); fim_named has bit r set when the file names the
     * id of fill-in-the-middle role r, which then is not looked up by text */
    int llama_rules;
    unsigned fim_named;
    int add_bos, add_eos, add_space_prefix;
    int nfc;            /* NFC-normalize plain text before encoding */
    int js_text;        /* the reference is JavaScript: invalid UTF-8 becomes
                         * U+FFFD and \s means JavaScript's white space */

    /* WordPiece normalizer (tokenizer.ggml.normalizer.*; both default on,
     * strip_accents to lowercase's value, as llama.cpp reads them) */
    int wpm_lowercase, wpm_strip_accents;

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

/* Byte-level BPE vocabularies (vocab_bpe.c): pre-tokenizer regexes and the
 * merge table. */
/* Compiles the pre-tokenizer named pre (v->js_text picks JavaScript's \s). */
int bpe_setup_pre(infer_vocab *v, const char *pre, size_t pre_len, char *err, size_t errlen);
/* Adds merge (l, r) with its rank; scratch holds 2 * max_len bytes.  A merge
 * whose parts or result are no tokens is ignored, as it can never apply. */
int bpe_add_merge(infer_vocab *v, const char *l, size_t ll, const char *r, size_t rl, uint32_t rank,
                  char *scratch);
int bpe_merges_alloc(infer_vocab *v, uint64_t n_merges);
void bpe_init_bytes(infer_vocab *v);
void bpe_free(infer_vocab *v);

/* The merge (l, r): 1 with its rank and result, 0 when there is none. */
static inline int bpe_find_merge(const infer_vocab *v, int32_t l, int32_t r, uint32_t *rank, int32_t *res) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    uint64_t i = (key * 0x9E3779B97F4A7C15ULL) >> 32 & v->merge_mask;
    for (;;) {
        const struct bpe_merge *m = &v->merges[i];
        if (m->rank == UINT32_MAX) return 0;
        if (m->key == key) {
            *rank = m->rank;
            *res = m->result;
            return 1;
        }
        i = (i + 1) & v->merge_mask;
    }
}


/* Reads tokenizer.ggml.* from g and builds the tokenizer it names.  The vocab
 * copies what it needs: it stays valid after gguf_close(g). */
int vocab_from_gguf(const gguf_file *g, infer_vocab **out, char *err, size_t errlen);

/* Whether a BOS should start a prompt (tokenizer.ggml.add_bos_token, or the
 * tokenizer kind's default). */
int vocab_add_bos(const infer_vocab *v);

/* Writes the vocab as tokenizer.ggml.* metadata (model, pre, tokens, scores,
 * token types, merges, special ids, flags) into w, so that vocab_from_gguf
 * reads back the same tokenizer.  Used by tools/tokjson2gguf. */
struct gguf_writer;
int vocab_to_gguf(const infer_vocab *v, struct gguf_writer *w, char *err, size_t errlen);

#endif
