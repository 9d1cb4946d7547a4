/* tok_spm.c - SentencePiece BPE encoding (tokenizer.ggml.model "llama").
 *
 * The text (with a leading space when the vocab asks for one) has its spaces
 * replaced by U+2581 and is cut into UTF-8 characters (by the lead byte
 * alone, as llama.cpp cuts them).  Then, as
 * SentencePiece's BPE model does, the adjacent pair whose concatenation is
 * the highest-scoring token is merged, again and again, until no pair forms
 * a token (equal scores: the leftmost pair first).  A symbol list and a
 * binary heap of candidate pairs make this O(n log n), so a long prompt
 * costs no more per byte than a short one.  A final symbol that is not a
 * token falls back to one <0xXX> token per byte. */
#include "text/tok.h"
#include "kernels/ialloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t prev, next; /* neighbours in the list, -1 at the ends */
    uint32_t start, n;  /* bytes of the symbol in the escaped text; n 0: merged away */
} sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the merged pair when it was queued */
} bigram;

/* Heap order: higher score first, then the leftmost pair. */
static int before(const bigram *a, const bigram *b) {
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

static void heap_push(bigram *h, size_t *n, bigram b) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = b;
}

static bigram heap_pop(bigram *h, size_t *n) {
    bigram top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && before(&h[c + 1], &h[c])) c++;
        if (!before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static void try_pair(const infer_vocab *v, const char *t, const sym *s, int32_t l, int32_t r,
                     bigram *h, size_t *hn) {
    if (l < 0 || r < 0) return;
    uint32_t size = s[l].n + s[r].n;
    int32_t id = vocab_find(v, t + s[l].start, size);
    if (id < 0) return;
    bigram b = {v->score[id], l, r, size};
    heap_push(h, hn, b);
}

/* The length of the symbol that byte c starts, as llama.cpp cuts text: by
 * the top four bits alone, so an invalid lead byte F8..FF takes four bytes
 * (and the U+2581 of an escaped space after it) and a stray continuation
 * byte one. */
static size_t sym_len(unsigned char c) {
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Merges the symbols of t[0..len) (one segment) and appends the ids. */
static void encode_segment(const infer_vocab *v, const char *t, size_t len, sym *s, bigram *h, tok_out *o) {
    int32_t ns = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = sym_len((unsigned char)t[i]);
        if (cl > len - i) cl = len - i;
        s[ns].prev = ns - 1;
        s[ns].next = -1;
        if (ns > 0) s[ns - 1].next = ns;
        s[ns].start = (uint32_t)i;
        s[ns].n = (uint32_t)cl;
        ns++;
        i += cl;
    }
    size_t hn = 0;
    for (int32_t i = 1; i < ns; i++) try_pair(v, t, s, i - 1, i, h, &hn);
    while (hn > 0) {
        bigram b = heap_pop(h, &hn);
        sym *l = &s[b.left], *r = &s[b.right];
        if (l->n == 0 || r->n == 0 || l->next != b.right || l->n + r->n != b.size) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = b.left;
        try_pair(v, t, s, l->prev, b.left, h, &hn);
        try_pair(v, t, s, b.left, l->next, h, &hn);
    }
    for (int32_t i = 0; i >= 0 && ns > 0; i = s[i].next) {
        int32_t id = vocab_find(v, t + s[i].start, s[i].n);
        if (id >= 0) {
            tok_push(o, id);
            continue;
        }
        for (uint32_t k = 0; k < s[i].n; k++) {
            int32_t bt = v->byte_tok[(unsigned char)t[s[i].start + k]];
            if (bt >= 0) tok_push(o, bt);
            else if (v->unk >= 0) tok_push(o, v->unk);
        }
    }
}

#define SP "\xe2\x96\x81"

/* Where the next segment starts: before a U+2581 that follows another
 * character, when the vocab allows it (v->spm_split), else at the end. */
static size_t segment_end(const infer_vocab *v, const char *t, size_t pos, size_t len) {
    if (!v->spm_split) return len;
    size_t i = pos;
    while (i + 3 <= len && memcmp(t + i, SP, 3) == 0) i += 3; /* the leading run of U+2581 */
    while (i < len) { /* step by symbol, as encode_segment cuts them */
        if (i + 3 <= len && memcmp(t + i, SP, 3) == 0) return i;
        size_t cl = sym_len((unsigned char)t[i]);
        i += cl < len - i ? cl : len - i;
    }
    return len;
}

int spm_encode(const infer_vocab *v, const char *text, size_t len, int space_prefix,
               tok_out *o, char *err, size_t errlen) {
    /* Escaped text: each space becomes the 3 bytes of U+2581. */
    size_t elen = 0;
    for (size_t i = 0; i < len; i++) elen += text[i] == ' ' ? 3 : 1;
    if (space_prefix) elen += 3;
    if (elen == 0) return 0;
    /* Symbols are indexed by int32 and located by uint32 offsets: refuse a
     * text whose escaped form would overflow them (infer_tokenize accepts
     * 2 GiB, and each space triples) instead of wrapping an index. */
    if (elen > (size_t)INT32_MAX) {
        snprintf(err, errlen, "tokenize: text of %zu bytes is too long for SentencePiece", len);
        return -1;
    }
    char *t = ie_malloc(elen);
    if (!t) goto oom;
    size_t p = 0;
    if (space_prefix) { memcpy(t, SP, 3); p = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(t + p, SP, 3); p += 3; }
        else t[p++] = text[i];
    }
    /* Segments are merged independently (see vocab.c: no token has U+2581
     * after another character, so no merge can cross "x|U+2581"); scratch
     * is sized by the longest segment, so a long text costs memory in
     * proportion to its longest word, and the heap stays small. */
    size_t longest = 0;
    for (size_t a = 0, b; a < elen; a = b) {
        b = segment_end(v, t, a, elen);
        if (b - a > longest) longest = b - a;
    }
    sym *s = ie_malloc(sizeof(sym) * longest);
    bigram *h = ie_malloc(sizeof(bigram) * (3 * longest + 1)); /* initial pairs + two per merge */
    if (!s || !h) {
        free(s);
        free(h);
        goto oom;
    }
    for (size_t a = 0, b; a < elen; a = b) {
        b = segment_end(v, t, a, elen);
        encode_segment(v, t + a, b - a, s, h, o);
    }
    free(t);
    free(s);
    free(h);
    return 0;
oom:
    free(t);
    snprintf(err, errlen, "tokenize: out of memory");
    return -1;
}
