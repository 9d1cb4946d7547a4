/* tok_wpm.c - WordPiece encoding (tokenizer.ggml.model "bert").
 *
 * BERT's basic tokenization first: accents are stripped (each character is
 * replaced by the first code point of its canonical decomposition), text is
 * lowercased, control characters dropped, whitespace separates words, and
 * every punctuation mark, ASCII symbol and CJK ideograph is a word of its
 * own.  Each word is then matched greedily, longest token first, from its
 * start; the vocabulary (as GGUF stores it) marks word starts with U+2581
 * instead of marking continuations with "##".  A word that cannot be fully
 * matched becomes one [UNK]. */
#include "text/tok.h"
#include "text/unicode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
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
    /* Lowercasing can lengthen a character (at most 2 -> 3 bytes); 4x + the
     * marker is always enough for one word. */
    char *w = malloc(4 * len + 8);
    if (!w) {
        snprintf(err, errlen, "tokenize: out of memory");
        return -1;
    }
    size_t wn = 3;
    memcpy(w, "\xe2\x96\x81", 3);
    for (size_t i = 0; i < len;) {
        uint32_t cp = ucd_nfd_base(utf8_decode(text, len, &i));
        unsigned f = ucd_flags(cp);
        if (f & UCD_WHITESPACE) {
            match_word(v, w, wn, o);
            wn = 3;
            continue;
        }
        if (cp == 0 || cp == 0xFFFD || (f & UCD_CONTROL)) continue;
        cp = ucd_tolower(cp);
        if ((f & UCD_PUNCT) || (cp < 0x7F && (f & UCD_SYMBOL)) || is_cjk(cp)) {
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
