/* tok_bpe.c - byte-level BPE encoding (tokenizer.ggml.model "gpt2").
 *
 * Text is first cut into words by the model's pre-tokenizer (vocab_bpe.c):
 * a sequence of regular expressions, each one splitting every piece left by
 * the previous one into its matches and the gaps between them.  Each word's bytes are then spelled in GPT-2's
 * byte alphabet (every byte is one printable code point) and merged pairwise
 * by rank, lowest rank first (equal ranks: leftmost first), as the merges
 * list orders them.  Merging works on token ids over a symbol list with a
 * heap of candidate pairs, so a long word costs O(n log n). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "text/tok.h"
#include "text/unicode.h"
#include "kernels/ialloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding --------------------------------------------------------------- */

typedef struct {
    int32_t prev, next, id; /* id -1: a byte with no token; -2: merged away */
} bsym;

typedef struct {
    uint32_t rank;
    int32_t left, right, lid, rid;
} bpair;

static int pair_before(const bpair *a, const bpair *b) {
    if (a->rank != b->rank) return a->rank < b->rank;
    return a->left < b->left;
}

static void bheap_push(bpair *h, size_t *n, bpair b) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pair_before(&b, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = b;
}

static bpair bheap_pop(bpair *h, size_t *n) {
    bpair top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && pair_before(&h[c + 1], &h[c])) c++;
        if (!pair_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
    return top;
}

static void bpe_try(const infer_vocab *v, const bsym *s, int32_t l, int32_t r, bpair *h, size_t *hn) {
    if (l < 0 || r < 0 || s[l].id < 0 || s[r].id < 0) return;
    uint32_t rank;
    int32_t res;
    if (!bpe_find_merge(v, s[l].id, s[r].id, &rank, &res)) return;
    (void)res;
    bpair p = {rank, l, r, s[l].id, s[r].id};
    bheap_push(h, hn, p);
}

/* Per-call state: scratch that grows with the longest word seen, the regex
 * match data, and the word cache (long texts only). */
typedef struct {
    const infer_vocab *v;
    const char *text;
    tok_out *o;
    bsym *sym;
    bpair *heap;
    char *spell; /* a word spelled in the byte alphabet (ignore_merges) */
    int32_t *word_ids;
    size_t cap;  /* words of up to cap bytes fit the scratch */
    pcre2_match_data *md;
    pcre2_match_context *mc;
    /* word cache: real text repeats its words, and a repeated word's ids are
     * copied instead of merged again.  It lives for one call, so the vocab
     * stays read-only and shareable between threads. */
    struct wc_slot *slots;
    int32_t *pool;
    size_t pool_n, pool_cap, used;
    char *err;
    size_t errlen;
    int have_msg; /* err holds this call's message (else a failure is out of memory) */
} bpe_state;

#define WC_MIN_TEXT 4096 /* shorter texts do not repay the table */
#define WC_MAX_WORD 48
#define WC_SLOTS (1u << 16)

struct wc_slot {
    uint32_t hash, off, len; /* the word at text + off; len 0: empty slot */
    uint32_t ids, n_ids;     /* its ids in the pool */
};

static int grow_scratch(bpe_state *st, size_t n) {
    if (n <= st->cap) return 0;
    size_t c = n < 64 ? 64 : n * 2;
    bsym *sym = ie_realloc(st->sym, sizeof(bsym) * c);
    if (sym) st->sym = sym;
    bpair *heap = ie_realloc(st->heap, sizeof(bpair) * (3 * c + 1));
    if (heap) st->heap = heap;
    char *spell = ie_realloc(st->spell, 2 * c + 1);
    if (spell) st->spell = spell;
    int32_t *ids = ie_realloc(st->word_ids, sizeof(int32_t) * (c + 1));
    if (ids) st->word_ids = ids;
    if (!sym || !heap || !spell || !ids) return -1;
    st->cap = c;
    return 0;
}

/* Merges one word (its bytes) and appends its ids to o. */
static void encode_word(const infer_vocab *v, const unsigned char *w, size_t n, bpe_state *st, tok_out *o) {
    if (n == 0) return;
    if (n == 1) { /* nothing to merge */
        int32_t id = v->byte_tok[w[0]];
        if (id >= 0) tok_push(o, id);
        else if (v->unk >= 0) tok_push(o, v->unk);
        return;
    }
    if (v->ignore_merges) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) k += utf8_encode(v->byte_enc[w[i]], st->spell + k);
        int32_t id = vocab_find(v, st->spell, k);
        if (id >= 0) {
            tok_push(o, id);
            return;
        }
    }
    bsym *s = st->sym;
    for (size_t i = 0; i < n; i++) {
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        s[i].id = v->byte_tok[w[i]];
    }
    size_t hn = 0;
    for (size_t i = 1; i < n; i++) bpe_try(v, s, (int32_t)i - 1, (int32_t)i, st->heap, &hn);
    while (hn > 0) {
        bpair p = bheap_pop(st->heap, &hn);
        bsym *l = &s[p.left], *r = &s[p.right];
        if (l->id != p.lid || r->id != p.rid || l->next != p.right) continue;
        uint32_t rank;
        int32_t res;
        if (!bpe_find_merge(v, l->id, r->id, &rank, &res)) continue;
        l->id = res;
        r->id = -2;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = p.left;
        bpe_try(v, s, l->prev, p.left, st->heap, &hn);
        bpe_try(v, s, p.left, l->next, st->heap, &hn);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        if (s[i].id >= 0) tok_push(o, s[i].id);
        else if (v->unk >= 0) tok_push(o, v->unk);
    }
}

static int emit_word(bpe_state *st, size_t off, size_t wl) {
    if (wl == 0) return 0;
    if (grow_scratch(st, wl) < 0) return -1;
    const char *w = st->text + off;
    if (!st->slots || wl > WC_MAX_WORD) {
        encode_word(st->v, (const unsigned char *)w, wl, st, st->o);
        return 0;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < wl; i++) h = (h ^ (unsigned char)w[i]) * 16777619u;
    uint32_t i = h & (WC_SLOTS - 1);
    struct wc_slot *sl = st->slots;
    while (sl[i].len && !(sl[i].hash == h && sl[i].len == wl && memcmp(st->text + sl[i].off, w, wl) == 0))
        i = (i + 1) & (WC_SLOTS - 1);
    if (sl[i].len) {
        for (uint32_t j = 0; j < sl[i].n_ids; j++) tok_push(st->o, st->pool[sl[i].ids + j]);
        return 0;
    }
    tok_out t = {st->word_ids, wl + 1, 0};
    encode_word(st->v, (const unsigned char *)w, wl, st, &t);
    for (int64_t j = 0; j < t.n; j++) tok_push(st->o, st->word_ids[j]);
    if (st->used >= WC_SLOTS / 2) return 0; /* full enough: stop caching */
    if (st->pool_n + (size_t)t.n > st->pool_cap) {
        int32_t *np = ie_realloc(st->pool, sizeof(int32_t) * st->pool_cap * 2);
        if (!np) return 0; /* the cache is an optimisation only */
        st->pool = np;
        st->pool_cap *= 2;
    }
    memcpy(st->pool + st->pool_n, st->word_ids, sizeof(int32_t) * (size_t)t.n);
    sl[i] = (struct wc_slot){h, (uint32_t)off, (uint32_t)wl, (uint32_t)st->pool_n, (uint32_t)t.n};
    st->pool_n += (size_t)t.n;
    st->used++;
    return 0;
}

/* Splits text[ps, ps + pl) with regex `level` into its matches and the gaps
 * between them; each piece goes on to the next regex, or is a word after
 * the last.  Streaming the pieces keeps memory flat however long the text. */
static int split(bpe_state *st, int level, size_t ps, size_t pl) {
    if (level == st->v->n_re) return emit_word(st, ps, pl);
    pcre2_code *re = (pcre2_code *)st->v->re[level];
    PCRE2_SPTR subj = (PCRE2_SPTR)(st->text + ps);
    size_t off = 0, prev = 0;
    while (off < pl) {
        int rc = pcre2_match(re, subj, pl, off, 0, st->md, st->mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            snprintf(st->err, st->errlen, "tokenize: pre-tokenizer failed: %s", (char *)msg);
            st->have_msg = 1;
            return -1;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* an empty match splits nothing */
            off = ms + utf8_len((unsigned char)st->text[ps + ms]);
            continue;
        }
        if (ms > prev && split(st, level + 1, ps + prev, ms - prev) < 0) return -1;
        if (split(st, level + 1, ps + ms, me - ms) < 0) return -1;
        prev = off = me;
    }
    if (prev < pl) return split(st, level + 1, ps + prev, pl - prev);
    return 0;
}

int bpe_encode(const infer_vocab *v, const char *text, size_t len, tok_out *o, char *err, size_t errlen) {
    if (len == 0) return 0;
    int rc = -1;
    bpe_state st = {0};
    st.v = v;
    st.text = text;
    st.o = o;
    st.err = err;
    st.errlen = errlen;
    st.md = pcre2_match_data_create(4, NULL);
    st.mc = pcre2_match_context_create(NULL);
    /* Short texts match on the default 32 KiB JIT stack; long ones (long
     * runs of white space backtrack deeply) get a stack that can grow. */
    pcre2_jit_stack *js = len >= 1024 ? pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL) : NULL;
    if (!st.md || !st.mc || (len >= 1024 && !js) || grow_scratch(&st, 64) < 0) goto oom;
    if (js) pcre2_jit_stack_assign(st.mc, NULL, js);
    if (len >= WC_MIN_TEXT) {
        st.slots = ie_calloc(WC_SLOTS, sizeof *st.slots);
        st.pool_cap = 1u << 16;
        st.pool = ie_malloc(sizeof(int32_t) * st.pool_cap);
        if (!st.slots || !st.pool) goto oom;
    }
    rc = split(&st, 0, 0, len);
    /* err may be NULL, or hold an older message: only our flag says
     * whether this failure already wrote its own. */
    if (rc < 0 && !st.have_msg) goto oom;
    goto done;
oom:
    rc = -1;
    snprintf(err, errlen, "tokenize: out of memory");
done:
    free(st.sym);
    free(st.heap);
    free(st.spell);
    free(st.word_ids);
    free(st.slots);
    free(st.pool);
    if (js) pcre2_jit_stack_free(js);
    if (st.mc) pcre2_match_context_free(st.mc);
    if (st.md) pcre2_match_data_free(st.md);
    return rc;
}
