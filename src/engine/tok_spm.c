/* tok_spm.c - SentencePiece BPE encoding (tokenizer.ggml.model "llama").
 *
 * The text (with a leading space when the vocab asks for one) has its spaces
 * replaced by U+2581 and is cut into UTF-8 characters.  Then, as
 * SentencePiece's BPE model does, the adjacent pair whose concatenation is
 * the highest-scoring token is merged, again and again, until no pair forms
 * a token (equal scores: the leftmost pair first).  A symbol list and a
 * binary heap of candidate pairs make this O(n log n), so a long prompt
 * costs no more per byte than a short one.  A final symbol that is not a
 * token falls back to one <0xXX> token per byte. */
#include "tok_impl.h"

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

int spm_encode(const infer_vocab *v, const char *text, size_t len, int space_prefix,
               tok_out *o, char *err, size_t errlen) {
    /* Escaped text: each space becomes the 3 bytes of U+2581. */
    size_t elen = 0;
    for (size_t i = 0; i < len; i++) elen += text[i] == ' ' ? 3 : 1;
    if (space_prefix) elen += 3;
    if (elen == 0) return 0;
    size_t nsym_max = elen;
    size_t heap_max = 3 * nsym_max + 1; /* initial pairs + at most two per merge */
    char *t = malloc(elen);
    sym *s = malloc(sizeof(sym) * nsym_max);
    bigram *h = malloc(sizeof(bigram) * heap_max);
    if (!t || !s || !h) {
        free(t); free(s); free(h);
        snprintf(err, errlen, "tokenize: out of memory");
        return -1;
    }
    size_t p = 0;
    if (space_prefix) { memcpy(t, "\xe2\x96\x81", 3); p = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(t + p, "\xe2\x96\x81", 3); p += 3; }
        else t[p++] = text[i];
    }

    int32_t ns = 0;
    for (size_t i = 0; i < elen;) {
        size_t cl = utf8_len((unsigned char)t[i]);
        if (cl > elen - i) cl = elen - i;
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
    free(t);
    free(s);
    free(h);
    return 0;
}
