/* detok.c - token ids back to text, whole or streamed.
 *
 * Each token renders as a piece: SentencePiece and WordPiece pieces have
 * U+2581 turned back into spaces, byte tokens become their byte, byte-level
 * BPE pieces are mapped back through the GPT-2 byte alphabet, and control
 * tokens (BOS, EOS, <|im_end|>...) render as nothing unless the caller asks
 * for their text.  The space SentencePiece and WordPiece put before the
 * first word is removed from the first piece that has text, so that
 * detokenize(tokenize(s)) == s.  The streaming form holds back the bytes of
 * a character split across tokens until it completes. */
#include "text/unicode.h"
#include "text/vocab.h"
#include "kernels/ialloc.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>

/* Writes the piece of id into out (at most cap bytes) and returns its full
 * length.  A piece is never longer than the token's text. */
static size_t render(const infer_vocab *v, int32_t id, unsigned flags, char *out, size_t cap) {
    const char *s = v->blob + v->off[id];
    size_t len = v->len[id], n = 0;
    switch (v->type[id]) {
    case TT_CONTROL:
    case TT_UNKNOWN:
        if (!(flags & INFER_DETOK_UNPARSE_SPECIAL)) return 0;
        /* fall through */
    case TT_USER_DEFINED:
        if (len <= cap) memcpy(out, s, len);
        return len;
    case TT_BYTE: {
        int b = vocab_byte_of(v, id);
        if (b >= 0) {
            if (cap >= 1) out[0] = (char)b;
            return 1;
        }
        break; /* a byte token without the <0xXX> form: render its text */
    }
    case TT_NORMAL:
        break;
    default: /* unused / undefined */
        return 0;
    }
    if (v->kind == VOCAB_BPE) {
        for (size_t i = 0; i < len;) {
            size_t at = i;
            uint32_t cp = utf8_decode(s, len, &i);
            if (cp < 0x180 && v->byte_dec[cp] >= 0) {
                if (n < cap) out[n] = (char)v->byte_dec[cp];
                n++;
            } else { /* not of the byte alphabet: copy as is */
                for (size_t k = at; k < i; k++, n++)
                    if (n < cap) out[n] = s[k];
            }
        }
        return n;
    }
    /* WordPiece: a word-start punctuation mark joins the previous word, as
     * BERT's decoder cleans "hello !" into "hello!". */
    if (v->kind == VOCAB_WPM && len == 4 && memcmp(s, "\xe2\x96\x81", 3) == 0 && strchr(".,!?;:)]}%", s[3]) && s[3]) {
        if (cap >= 1) out[0] = s[3];
        return 1;
    }
    for (size_t i = 0; i < len;) {
        if (len - i >= 3 && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
            if (n < cap) out[n] = ' ';
            n++;
            i += 3;
        } else {
            if (n < cap) out[n] = s[i];
            n++;
            i++;
        }
    }
    return n;
}

/* Whether this vocab puts a space before the first word. */
static int strips_first_space(const infer_vocab *v) {
    return (v->kind == VOCAB_SPM && v->add_space_prefix) || v->kind == VOCAB_WPM;
}

int64_t infer_detokenize(const infer_vocab *v, const int32_t *ids, size_t n, unsigned flags,
                         char *out, size_t cap, char *err, size_t errlen) {
    if (!v) {
        snprintf(err, errlen, "detokenize: no vocabulary");
        return -1;
    }
    if (!out) cap = 0;
    size_t start = 0, end = n;
    if (flags & INFER_DETOK_REMOVE_SPECIAL) {
        int32_t bos = infer_vocab_bos(v), eos = infer_vocab_eos(v);
        if (end > start && bos >= 0 && ids[start] == bos) start++;
        if (end > start && eos >= 0 && ids[end - 1] == eos) end--;
    }
    int strip = strips_first_space(v);
    size_t total = 0;
    for (size_t i = start; i < end; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= v->n) {
            snprintf(err, errlen, "detokenize: token id %d is outside the vocabulary (%d tokens)", id, v->n);
            return -1;
        }
        size_t room = total < cap ? cap - total : 0;
        size_t k = render(v, id, flags, out + (room ? total : 0), room);
        if (k == 0) continue;
        if (v->type[id] == TT_CONTROL || v->type[id] == TT_UNKNOWN) { /* transparent to the strip */
            total += k;
            continue;
        }
        if (k > room) { /* did not fit: only count it */
            char first = 0;
            render(v, id, flags, &first, 1);
            if (strip && first == ' ') k--;
            strip = 0;
            total += k;
            continue;
        }
        if (strip) {
            strip = 0;
            if (out[total] == ' ') {
                memmove(out + total, out + total + 1, k - 1);
                k--;
            }
        }
        total += k;
    }
    return (int64_t)total;
}

size_t infer_utf8_complete_prefix(const char *s, size_t len) {
    if (!s) return 0;
    for (size_t back = 1; back <= 4 && back <= len; back++) {
        unsigned char c = (unsigned char)s[len - back];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte: keep looking for the lead */
        size_t need = utf8_len(c);
        return need > back ? len - back : len;
    }
    return len; /* no lead byte in reach: invalid, emitted as is */
}

struct infer_detok {
    const infer_vocab *v;
    int strip;      /* the next piece with text loses a leading space */
    size_t held;    /* bytes of an incomplete character at buf[0..held) */
    char *buf;      /* held bytes + one piece */
};

infer_detok *infer_detok_create(const infer_vocab *v, int after_bos) {
    if (!v) return NULL;
    infer_detok *d = ie_calloc(1, sizeof *d);
    if (!d) return NULL;
    d->buf = ie_malloc(v->max_len + 8);
    if (!d->buf) {
        free(d);
        return NULL;
    }
    d->v = v;
    d->strip = after_bos && strips_first_space(v);
    return d;
}

int infer_detok_push(infer_detok *d, int32_t id, char *out, size_t cap) {
    if (!d || id < 0 || id >= d->v->n) return -1;
    char *b = d->buf;
    size_t k = render(d->v, id, 0, b + d->held, d->v->max_len + 4);
    if (k == 0) return 0;
    if (d->strip) {
        d->strip = 0;
        if (b[d->held] == ' ') {
            memmove(b + d->held, b + d->held + 1, k - 1);
            k--;
        }
    }
    size_t total = d->held + k;
    size_t ready = infer_utf8_complete_prefix(b, total);
    if (ready > cap || ready > INT32_MAX) return -1;
    memcpy(out, b, ready);
    d->held = total - ready;
    memmove(b, b + ready, d->held);
    return (int)ready;
}

int infer_detok_flush(infer_detok *d, char *out, size_t cap) {
    if (!d) return -1;
    if (d->held > cap) return -1;
    size_t n = d->held;
    memcpy(out, d->buf, n);
    d->held = 0;
    return (int)n;
}

void infer_detok_free(infer_detok *d) {
    if (!d) return;
    free(d->buf);
    free(d);
}

/* push renders at most max_len + 4 bytes after at most 3 held ones. */
size_t infer_detok_max_bytes(const infer_vocab *v) { return (size_t)v->max_len + 8; }
