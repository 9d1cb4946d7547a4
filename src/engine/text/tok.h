/* tok.h - internal: the encoders of one plain-text fragment.
 *
 * tok_spm.c (SentencePiece BPE), tok_bpe.c (byte-level BPE) and tok_wpm.c
 * (WordPiece) each turn a fragment with no special tokens inside into ids;
 * tokenize.c (infer_tokenize) cuts the text around special tokens and
 * hands them the pieces. */
#ifndef INFER_TOK_H
#define INFER_TOK_H

#include "text/vocab.h"

#include <stddef.h>
#include <stdint.h>

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

#endif
