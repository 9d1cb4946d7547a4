/* tok_wpm.c - WordPiece encoding (tokenizer.ggml.model "bert").
 *
 * The reference is llama.cpp's WordPiece, BERT's basic tokenizer as it
 * implements it (docs/tokenizers.md lists where that differs from Hugging
 * Face's).  Per code point: with accent stripping on, it is replaced by the
 * first code point of its canonical decomposition and dropped when it is a
 * mark (Mn, Mc or Me: virama, vowel signs and enclosing keycaps go too);
 * White_Space ends a word; NUL, U+FFFD and Cc/Cf/Co/Cs characters are
 * dropped; the rest is lowercased (simple mapping) and either joins the word
 * or, for punctuation (P*), ASCII symbols and CJK ideographs, becomes a word
 * of its own.  Words are matched greedily, longest token first; the GGUF
 * vocab marks word starts with U+2581 instead of continuations with "##".
 * A word that cannot be matched completely becomes one [UNK]. */
#include "text/tok.h"
#include "text/unicode.h"
#include "kernels/ialloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CJK ideographs that BERT splits one by one.  The range after extension D
 * starts at U+2B920, not U+2B820, as in llama.cpp (and Hugging Face's Rust
 * code it follows); BERT's Python code and the JavaScript port use 2B820. */
static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* One code point as llama.cpp's WordPiece reads UTF-8: the lead byte gives
 * the length and the continuation bytes are only checked for their top bits,
 * so overlong forms and surrogates decode to what their bits say (C1 81 is
 * 'A').  A bad lead byte or a missing continuation gives U+FFFD and
 * advances one byte.  Values past U+10FFFF (F4 90.. to F7) make llama.cpp
 * throw; they become U+FFFD here, which is dropped like any other. */
static uint32_t decode_lenient(const unsigned char *s, size_t len, size_t *i) {
    size_t p = *i;
    unsigned char c = s[p];
    size_t n = c < 0x80 ? 1 : c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
    if (n == 0 || n > len - p) {
        *i = p + 1;
        return 0xFFFD;
    }
    uint32_t cp = n == 1 ? c : (uint32_t)(c & (0x7F >> n));
    for (size_t k = 1; k < n; k++) {
        if ((s[p + k] & 0xC0) != 0x80) {
            *i = p + 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (s[p + k] & 0x3F);
    }
    *i = p + n;
    return cp > 0x10FFFF ? 0xFFFD : cp;
}

/* w[0..3) is U+2581, the word follows. */
static void match_word(const infer_vocab *v, const char *w, size_t n, tok_out *o) {
    if (n <= 3) return;
    int64_t mark = o->n;
    for (size_t i = 0; i < n;) {
        size_t j = n - i > v->max_len ? i + v->max_len : n;
        int32_t id = -1;
        for (; j > i; j--) {
            id = vocab_find(v, w + i, j - i);
            if (id >= 0) break;
        }
        if (id < 0) {
            o->n = mark; /* the whole word is unknown */
            break;
        }
        tok_push(o, id);
        i = j;
    }
    if (o->n == mark && v->unk >= 0) tok_push(o, v->unk);
}

int wpm_encode(const infer_vocab *v, const char *text, size_t len, tok_out *o, char *err, size_t errlen) {
    if (len == 0) return 0;
    /* A code point never takes more than 4 bytes, nor more than 4 times the
     * bytes it was read from: 4x + the marker holds any word. */
    char *w = ie_malloc(4 * len + 8);
    if (!w) {
        snprintf(err, errlen, "tokenize: out of memory");
        return -1;
    }
    const unsigned char *s = (const unsigned char *)text;
    size_t wn = 3;
    memcpy(w, "\xe2\x96\x81", 3);
    for (size_t i = 0; i < len;) {
        uint32_t cp = decode_lenient(s, len, &i);
        if (v->wpm_strip_accents) cp = ucd_nfd_base(cp);
        unsigned f = ucd_flags(cp);
        if (f & UCD_WHITESPACE) {
            match_word(v, w, wn, o);
            wn = 3;
            continue;
        }
        if (cp == 0 || cp == 0xFFFD || (f & UCD_CONTROL)) continue;
        if (v->wpm_strip_accents && (f & UCD_MARK)) continue;
        /* The class is the character's before lowercasing, as llama.cpp
         * decides it. */
        int alone = (f & UCD_PUNCT) || (cp < 0x7F && (f & UCD_SYMBOL)) || is_cjk(cp);
        if (v->wpm_lowercase) cp = ucd_tolower(cp);
        if (alone) {
            match_word(v, w, wn, o);
            wn = 3 + utf8_encode(cp, w + 3);
            match_word(v, w, wn, o);
            wn = 3;
            continue;
        }
        wn += utf8_encode(cp, w + wn);
    }
    match_word(v, w, wn, o);
    free(w);
    return 0;
}
