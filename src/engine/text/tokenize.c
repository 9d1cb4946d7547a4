/* tokenize.c - infer_tokenize: text to token ids.
 *
 * The text is cut around special tokens (user-defined tokens always, control
 * and unknown tokens with INFER_TOK_PARSE_SPECIAL; white space beside the
 * ones llama.cpp strips for some families, Phi-3's among them, is dropped),
 * each plain fragment is normalised as the reference tokenizer does (NFC, or
 * JavaScript's repair of invalid UTF-8) and handed to the vocabulary's
 * encoder: SentencePiece BPE (tok_spm.c), byte-level BPE (tok_bpe.c) or
 * WordPiece (tok_wpm.c). */
#include "text/tok.h"
#include "text/unicode.h"

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

/* White space as llama.cpp's isspace() sees it beside a special token. */
static int is_c_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* The special token that starts at text[pos], or -1. */
static int32_t match_special(const infer_vocab *v, const char *text, size_t len, size_t pos, int parse) {
    unsigned char c = (unsigned char)text[pos];
    for (int32_t j = v->special_first[c]; j < v->special_first[c + 1]; j++) {
        int32_t id = v->specials[j];
        if (!parse && v->type[id] != TT_USER_DEFINED) continue;
        uint32_t l = v->len[id];
        if (l <= len - pos && memcmp(text + pos, v->blob + v->off[id], l) == 0) return id;
    }
    return -1;
}

static int encode_fragment(const infer_vocab *v, const char *s, size_t len, int after_special,
                           tok_out *o, char *err, size_t errlen) {
    if (v->nfc || v->js_text) {
        size_t plen;
        char *p = ucd_prepare(s, len, v->js_text, v->nfc, &plen);
        if (!p && plen != len) return fail(err, errlen, "tokenize: out of memory");
        if (p) {
            int rc = v->kind == VOCAB_BPE ? bpe_encode(v, p, plen, o, err, errlen)
                                          : v->kind == VOCAB_SPM ? spm_encode(v, p, plen, v->add_space_prefix && after_special, o, err, errlen)
                                                                 : wpm_encode(v, p, plen, o, err, errlen);
            free(p);
            return rc;
        }
    }
    switch (v->kind) {
    case VOCAB_SPM: return spm_encode(v, s, len, v->add_space_prefix && after_special, o, err, errlen);
    case VOCAB_BPE: return bpe_encode(v, s, len, o, err, errlen);
    case VOCAB_WPM: return wpm_encode(v, s, len, o, err, errlen);
    }
    return fail(err, errlen, "vocab: unknown kind");
}

int64_t infer_tokenize(const infer_vocab *v, const char *text, size_t len, unsigned flags,
                       int32_t *ids, size_t cap, char *err, size_t errlen) {
    if (!v) return fail(err, errlen, "tokenize: no vocabulary");
    if (!text && len) return fail(err, errlen, "tokenize: no text");
    if (!ids) cap = 0;
    if (len > ((size_t)1 << 31)) return fail(err, errlen, "tokenize: text of %zu bytes is too long", len);
    tok_out o = {ids, cap, 0};
    int parse = (flags & INFER_TOK_PARSE_SPECIAL) != 0;
    int add = (flags & INFER_TOK_ADD_SPECIAL) != 0;
    if (add) {
        int32_t first = infer_vocab_bos(v);
        if (v->add_bos && first >= 0) tok_push(&o, first);
    }
    size_t frag = 0;
    int after_special = 1;
    if (v->n_specials > 0) {
        for (size_t pos = 0; pos < len;) {
            int32_t id = match_special(v, text, len, pos, parse);
            if (id < 0) {
                pos++;
                continue;
            }
            unsigned strip = v->strip ? v->strip[id] : 0;
            size_t end = pos;
            if (strip & VOCAB_LSTRIP)
                while (end > frag && is_c_space(text[end - 1])) end--;
            if (end > frag && encode_fragment(v, text + frag, end - frag, after_special, &o, err, errlen) < 0)
                return -1;
            tok_push(&o, id);
            after_special = 1;
            pos += v->len[id];
            if (strip & VOCAB_RSTRIP)
                while (pos < len && is_c_space(text[pos])) pos++;
            frag = pos;
        }
    }
    if (len > frag && encode_fragment(v, text + frag, len - frag, after_special, &o, err, errlen) < 0)
        return -1;
    if (add) {
        int32_t last = infer_vocab_eos(v);
        if (v->add_eos && last >= 0) tok_push(&o, last);
    }
    return o.n;
}
