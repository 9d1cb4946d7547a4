/* ctx.c - execution contexts: the paged KV cache, sequences, and the
 * validated entry point of a batched decode.
 *
 * The KV cache is one pool of fixed-size blocks (block_tokens positions of K
 * and V for every layer); each sequence owns a table of block indices, so
 * sequences of any length share one budget without fragmentation, and a
 * finished sequence returns its blocks at once.  infer_decode checks the
 * whole batch (ids, sequence ownership, context length, free blocks) before
 * touching anything: a rejected batch leaves every sequence as it was. */
#include "runtime/ctx.h"

#include "kernels/quant.h"
#include "runtime/encoder.h"
#include "kernels/ialloc.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define DEFAULT_MAX_BATCH 512
#define DEFAULT_BLOCK_TOKENS 16
#define DEFAULT_CTX_CAP 4096
#define DEFAULT_KV_CAP ((uint64_t)2 << 30)

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Every scratch buffer of a ctx comes from here, so that its figure in
 * infer_mem is the sum of what was allocated, and a dry ctx (mem.c sizing
 * a model up) adds up the same sizes without allocating them. */
void *ctx_calloc(infer_ctx *c, size_t n, size_t sz, int *oom) {
    c->scratch_bytes += (uint64_t)(n ? n : 1) * sz;
    if (c->dry) return NULL;
    void *p = ie_calloc(n ? n : 1, sz);
    if (!p) *oom = 1;
    return p;
}

int ctx_reserve_logits(infer_ctx *c, size_t rows) {
    if (rows <= c->logits_cap_rows) return 0;
    size_t row = (size_t)c->m->info.n_vocab * sizeof(float);
    if (!c->dry) {
        float *l = ie_realloc(c->logits, rows * row);
        if (!l) return -1;
        c->logits = l;
    }
    c->scratch_bytes += (uint64_t)(rows - c->logits_cap_rows) * row;
    c->logits_cap_rows = rows;
    return 0;
}

/* Largest activation row any weight of the model needs, for k = its cols. */
static size_t max_act_row(const infer_model *m) {
    size_t best = 0;
    const weight *ws[] = {&m->output};
    for (size_t i = 0; i < 1; i++) {
        size_t b = quant_act_row_bytes(ws[i]->type, ws[i]->cols);
        if (b > best) best = b;
    }
    for (int il = 0; il < m->info.n_layer; il++) {
        const layer_weights *L = &m->layers[il];
        const weight *lw[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof lw / sizeof lw[0]; i++) {
            size_t b = quant_act_row_bytes(lw[i]->type, lw[i]->cols);
            if (b > best) best = b;
        }
    }
    return best;
}

int infer_ctx_create(infer_model *m, infer_threadpool *tp, const infer_ctx_params *p, infer_ctx **out, char *err,
                     size_t errlen) {
    return ctx_create(m, tp, infer_threadpool_size(tp), p, 0, out, err, errlen);
}

int ctx_create(infer_model *m, infer_threadpool *tp, int nth, const infer_ctx_params *p, int dry, infer_ctx **out,
               char *err, size_t errlen) {
    *out = NULL;
    infer_ctx_params d = {0};
    if (p) d = *p;
    const infer_model_info *I = &m->info;
    if (d.n_ctx < 0 || d.max_batch < 0 || d.block_tokens < 0)
        return fail(err, errlen, "context parameters must not be negative");
    if (m->is_encoder) {
        infer_ctx *c = ie_calloc(1, sizeof *c);
        if (!c) return fail(err, errlen, "out of memory");
        c->m = infer_model_ref(m);
        c->tp = tp;
        c->nth = nth;
        c->dry = dry;
        c->ops = ops_get();
        if (encoder_ctx_init(c, &d, err, errlen) < 0) {
            infer_ctx_free(c);
            return -1;
        }
        *out = c;
        return 0;
    }
    int32_t n_ctx = d.n_ctx ? d.n_ctx : (I->n_ctx_train < DEFAULT_CTX_CAP ? I->n_ctx_train : DEFAULT_CTX_CAP);
    if (n_ctx > (1 << 24)) return fail(err, errlen, "context of %d tokens is above the limit of 2^24", n_ctx);
    int32_t max_batch = d.max_batch ? d.max_batch : DEFAULT_MAX_BATCH;
    if (max_batch > 65536) return fail(err, errlen, "batch of %d tokens is above the limit of 65536", max_batch);
    int32_t bt = d.block_tokens ? d.block_tokens : DEFAULT_BLOCK_TOKENS;
    if (bt > 4096) return fail(err, errlen, "KV block of %d tokens is above the limit of 4096", bt);

    infer_ctx *c = ie_calloc(1, sizeof *c);
    if (!c) return fail(err, errlen, "out of memory");
    c->m = infer_model_ref(m);
    c->tp = tp;
    c->nth = nth;
    c->dry = dry;
    c->ops = ops_get();
    c->n_ctx = n_ctx;
    c->max_batch = max_batch;
    c->bt = bt;
    c->kv_dim = I->n_head_kv * I->head_dim;
    c->q_dim = I->n_head * I->head_dim;
    c->block_floats = (size_t)I->n_layer * 2 * (size_t)bt * (size_t)c->kv_dim;
    c->max_seq_blocks = (n_ctx + bt - 1) / bt;

    uint64_t block_bytes = c->block_floats * sizeof(float);
    uint64_t kv_bytes = d.kv_bytes;
    if (!kv_bytes) {
        kv_bytes = (uint64_t)4 * (uint64_t)c->max_seq_blocks * block_bytes;
        if (kv_bytes > DEFAULT_KV_CAP) kv_bytes = DEFAULT_KV_CAP;
    }
    uint64_t nb = kv_bytes / block_bytes;
    if (nb < 1) {
        infer_ctx_free(c);
        return fail(err, errlen, "KV budget of %llu bytes is below one block (%llu bytes)",
                    (unsigned long long)kv_bytes, (unsigned long long)block_bytes);
    }
    if (nb > INT32_MAX / 2) nb = INT32_MAX / 2;

    int oom = 0;
    size_t B = (size_t)max_batch, E = (size_t)I->n_embd, F = (size_t)I->n_ff;
    c->kv_len = (size_t)nb * block_bytes;
    /* the pool's block tables are scratch; its K/V data is kv_len */
    c->scratch_bytes += kv_pool_bytes((int32_t)nb, bt);
    if (!dry) {
        c->kv = mmap(NULL, c->kv_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c->kv == MAP_FAILED) {
            c->kv = NULL;
            oom = 1;
        } else {
#ifdef MADV_HUGEPAGE
            madvise(c->kv, c->kv_len, MADV_HUGEPAGE); /* attention walks the pool per token */
#endif
        }
        if (kv_pool_init(&c->pool, (int32_t)nb, bt) < 0) oom = 1;
    }
    c->x = ctx_calloc(c, B * E, sizeof(float), &oom);
    c->h = ctx_calloc(c, B * E, sizeof(float), &oom);
    c->o = ctx_calloc(c, B * E, sizeof(float), &oom);
    c->q = ctx_calloc(c, B * (size_t)c->q_dim, sizeof(float), &oom);
    c->att = ctx_calloc(c, B * (size_t)c->q_dim, sizeof(float), &oom);
    c->k = ctx_calloc(c, B * (size_t)c->kv_dim, sizeof(float), &oom);
    c->v = ctx_calloc(c, B * (size_t)c->kv_dim, sizeof(float), &oom);
    c->ffa = ctx_calloc(c, B * F, sizeof(float), &oom);
    c->ffb = ctx_calloc(c, B * F, sizeof(float), &oom);
    c->act_bytes = B * max_act_row(m);
    for (int i = 0; i < 3; i++) c->act[i] = ctx_calloc(c, c->act_bytes, 1, &oom);
    /* attention tiles: up to 4 tokens x the query heads of one KV head */
    if (I->n_head / I->n_head_kv > 64) {
        infer_ctx_free(c);
        return fail(err, errlen, "more than 64 query heads per KV head are not supported");
    }
    c->scores_per_thread = (size_t)4 * (size_t)(I->n_head / I->n_head_kv) * (size_t)n_ctx;
    c->scores = ctx_calloc(c, (size_t)nth * c->scores_per_thread, sizeof(float), &oom);
    c->att_tiles = ctx_calloc(c, B * (size_t)I->n_head_kv, sizeof *c->att_tiles, &oom);
    c->att_act_per_thread = (size_t)4 * (size_t)(I->n_head / I->n_head_kv) * quant_act_row_bytes(QT_F32, I->head_dim);
    c->att_act = ctx_calloc(c, (size_t)nth * c->att_act_per_thread, 1, &oom);
    c->att_rows = ctx_calloc(c, (size_t)nth * (size_t)n_ctx, sizeof *c->att_rows, &oom);
    c->rope = ctx_calloc(c, B * (size_t)I->n_rot, sizeof(float), &oom);
    c->inv_freq = ctx_calloc(c, (size_t)I->n_rot / 2, sizeof(float), &oom);
    c->tok_entry = ctx_calloc(c, B, sizeof(int32_t), &oom);
    c->tok_pos = ctx_calloc(c, B, sizeof(int32_t), &oom);
    c->tok_id = ctx_calloc(c, B, sizeof(int32_t), &oom);
    c->entry_row = ctx_calloc(c, B, sizeof(int32_t), &oom);
    c->entry_nrows = ctx_calloc(c, B, sizeof(int32_t), &oom);
    c->entry_seq = ctx_calloc(c, B, sizeof(infer_seq *), &oom);
    c->out_rows = ctx_calloc(c, B, sizeof(int32_t), &oom);
    if (oom) {
        infer_ctx_free(c);
        return fail(err, errlen, "out of memory allocating the context (%llu KV blocks of %llu bytes)",
                    (unsigned long long)nb, (unsigned long long)block_bytes);
    }
    for (int32_t i = 0; !dry && i < I->n_rot / 2; i++)
        c->inv_freq[i] = (float)pow((double)I->rope_base, -2.0 * i / (double)I->n_rot);
    *out = c;
    return 0;
}

void infer_ctx_free(infer_ctx *c) {
    if (!c) return;
    encoder_ctx_free(c);
    if (c->kv) munmap(c->kv, c->kv_len);
    kv_pool_destroy(&c->pool);
    free(c->x), free(c->h), free(c->o), free(c->q), free(c->att), free(c->k), free(c->v);
    free(c->ffa), free(c->ffb);
    for (int i = 0; i < 3; i++) free(c->act[i]);
    free(c->scores), free(c->att_tiles), free(c->att_act), free(c->att_rows), free(c->rope), free(c->inv_freq);
    free(c->tok_entry), free(c->tok_pos), free(c->tok_id);
    free(c->entry_row), free(c->entry_nrows), free(c->logits);
    free(c->entry_seq), free(c->out_rows);
    infer_model_unref(c->m);
    free(c);
}

const infer_model *infer_ctx_model(const infer_ctx *c) { return c->m; }
int32_t infer_ctx_n_ctx(const infer_ctx *c) { return c->n_ctx; }

void infer_ctx_mem(const infer_ctx *c, infer_mem *out) {
    infer_model_mem(c->m, out);
    out->kv_reserved = c->kv_len;
    out->kv_used = c->enc ? 0
                          : (uint64_t)(c->pool.n_blocks - c->pool.n_free - c->pool.n_cached) * c->block_floats *
                                sizeof(float);
    out->scratch = c->scratch_bytes;
}

void infer_ctx_kv_usage(const infer_ctx *c, int32_t *used, int32_t *total) {
    *used = c->pool.n_blocks - c->pool.n_free - c->pool.n_cached;
    *total = c->pool.n_blocks;
}

void infer_ctx_kv_stats(const infer_ctx *c, infer_kv_stats *st) {
    memset(st, 0, sizeof *st);
    st->blocks_total = c->pool.n_blocks;
    st->blocks_cached = c->pool.n_cached;
    st->blocks_free = c->pool.n_free;
    st->blocks_used = c->pool.n_blocks - c->pool.n_free - c->pool.n_cached;
    st->block_tokens = c->bt;
    st->block_bytes = (uint64_t)c->block_floats * sizeof(float);
    st->prefix_lookups = c->pool.lookups;
    st->prefix_hits = c->pool.hits;
    st->evictions = c->pool.evictions;
    st->reused_tokens = c->reused_tokens;
    st->prompt_tokens = c->prompt_tokens;
}

int infer_seq_create(infer_ctx *c, infer_seq **out, char *err, size_t errlen) {
    *out = NULL;
    if (c->m->is_encoder)
        return fail(err, errlen, "%s is an encoder: it has no sequences to decode (use infer_embed)", c->m->arch_name);
    infer_seq *s = ie_calloc(1, sizeof *s);
    if (s) {
        s->blocks = ie_calloc((size_t)c->max_seq_blocks, sizeof(int32_t));
        s->bhash = ie_calloc((size_t)c->max_seq_blocks, sizeof(uint64_t));
        s->toks = ie_calloc((size_t)c->n_ctx, sizeof(int32_t));
    }
    if (!s || !s->blocks || !s->bhash || !s->toks) {
        if (s) free(s->blocks), free(s->bhash), free(s->toks);
        free(s);
        return fail(err, errlen, "out of memory");
    }
    s->c = c;
    *out = s;
    return 0;
}

void infer_seq_free(infer_seq *s) {
    if (!s) return;
    infer_ctx *c = s->c;
    for (int32_t i = 0; i < s->n_blocks; i++) kv_pool_release(&c->pool, s->blocks[i]);
    free(s->blocks), free(s->bhash), free(s->toks);
    free(s);
}

int32_t infer_seq_len(const infer_seq *s) { return s->len; }

/* Validates a batch; fills the per-token tables and counts the new blocks
 * and logits rows it needs. */
static int check_batch(infer_ctx *c, const infer_batch_entry *e, int32_t ne, int32_t *n_tok, int32_t *n_out,
                       int32_t *new_blocks, char *err, size_t errlen) {
    int32_t vocab = c->m->info.n_vocab;
    int64_t total = 0, rows = 0, blocks = 0;
    if (ne <= 0) return fail(err, errlen, "empty batch");
    for (int32_t i = 0; i < ne; i++) {
        const infer_seq *s = e[i].seq;
        if (!s || s->c != c) return fail(err, errlen, "entry %d: sequence does not belong to this context", i);
        for (int32_t j = 0; j < i; j++)
            if (e[j].seq == s) return fail(err, errlen, "entry %d: sequence appears twice in one batch", i);
        if (e[i].n_tokens <= 0 || !e[i].tokens) return fail(err, errlen, "entry %d: no tokens", i);
        if (e[i].logits < INFER_LOGITS_NONE || e[i].logits > INFER_LOGITS_ALL)
            return fail(err, errlen, "entry %d: bad logits mode %d", i, e[i].logits);
        if ((int64_t)s->len + e[i].n_tokens > c->n_ctx)
            return fail(err, errlen, "context full: sequence at %d tokens + %d exceeds %d", s->len, e[i].n_tokens,
                        c->n_ctx);
        total += e[i].n_tokens;
        if (total > c->max_batch)
            return fail(err, errlen, "batch of more than %d tokens (max_batch)", c->max_batch);
        for (int32_t j = 0; j < e[i].n_tokens; j++)
            if (e[i].tokens[j] < 0 || e[i].tokens[j] >= vocab)
                return fail(err, errlen, "token id %d is outside the vocabulary (0..%d)", e[i].tokens[j], vocab - 1);
        rows += e[i].logits == INFER_LOGITS_ALL ? e[i].n_tokens : e[i].logits == INFER_LOGITS_LAST;
        int32_t need = (s->len + e[i].n_tokens + c->bt - 1) / c->bt;
        blocks += need - s->n_blocks;
    }
    if (blocks > kv_pool_available(&c->pool))
        return fail(err, errlen, "KV cache full: batch needs %lld blocks, %d free of %d", (long long)blocks,
                    kv_pool_available(&c->pool), c->pool.n_blocks);
    *n_tok = (int32_t)total;
    *n_out = (int32_t)rows;
    *new_blocks = (int32_t)blocks;
    return 0;
}

/* Records the tokens a decode appended and registers every block they
 * filled, so later prompts with the same prefix can share it. */
static void commit_tokens(infer_ctx *c, infer_seq *s, const int32_t *toks, int32_t n) {
    memcpy(s->toks + s->len, toks, (size_t)n * sizeof *toks);
    int32_t first_full = s->len / c->bt;
    s->len += n;
    for (int32_t b = first_full; b < s->len / c->bt; b++) {
        uint64_t parent = b ? s->bhash[b - 1] : 0;
        const int32_t *bt = s->toks + (size_t)b * c->bt;
        s->bhash[b] = kv_chain_hash(&c->pool, parent, bt);
        kv_pool_register(&c->pool, s->blocks[b], b ? s->blocks[b - 1] : -1, parent, bt);
    }
}

int32_t infer_seq_reuse_prefix(infer_seq *s, const int32_t *toks, int32_t n) {
    infer_ctx *c = s->c;
    if (s->len != 0 || n <= 0) return 0;
    c->prompt_tokens += (uint64_t)n;
    /* Leave at least one token to compute: its logits are what the caller wants. */
    int32_t max_blocks = (n - 1) / c->bt;
    if (max_blocks > c->n_ctx / c->bt) max_blocks = c->n_ctx / c->bt;
    uint64_t parent = 0;
    for (int32_t b = 0; b < max_blocks; b++) {
        const int32_t *bt = toks + (size_t)b * c->bt;
        int32_t blk = kv_pool_lookup(&c->pool, b ? s->blocks[b - 1] : -1, parent, bt);
        if (blk < 0) break;
        s->blocks[s->n_blocks++] = blk;
        parent = kv_chain_hash(&c->pool, parent, bt);
        s->bhash[b] = parent;
        memcpy(s->toks + (size_t)b * c->bt, bt, (size_t)c->bt * sizeof *bt);
        s->len += c->bt;
    }
    c->reused_tokens += (uint64_t)s->len;
    return s->len;
}

int infer_decode(infer_ctx *c, const infer_batch_entry *e, int32_t ne, char *err, size_t errlen) {
    int32_t n = 0, n_out = 0, new_blocks = 0;
    if (c->m->is_encoder)
        return fail(err, errlen, "%s is an encoder: it embeds (infer_embed), it does not decode", c->m->arch_name);
    if (ne > c->max_batch) return fail(err, errlen, "more than %d entries in one batch", c->max_batch);
    if (check_batch(c, e, ne, &n, &n_out, &new_blocks, err, errlen) < 0) return -1;
    /* a scheduler reserved its largest batch's rows up front: this grows
     * only for direct callers asking for more rows than ever before */
    if (ctx_reserve_logits(c, (size_t)n_out) < 0)
        return fail(err, errlen, "out of memory for %d rows of logits", n_out);
    infer_seq **seqs = c->entry_seq;
    int32_t *out_rows = c->out_rows;
    int32_t t = 0, r = 0;
    for (int32_t i = 0; i < ne; i++) {
        infer_seq *s = e[i].seq;
        seqs[i] = s;
        int32_t need = (s->len + e[i].n_tokens + c->bt - 1) / c->bt;
        while (s->n_blocks < need) {
            /* check_batch counted these blocks against kv_pool_available() and
             * the context length bounds the table: neither can run out here */
            int32_t b = kv_pool_alloc(&c->pool);
            assert(b >= 0 && s->n_blocks < c->max_seq_blocks);
            s->blocks[s->n_blocks++] = b;
        }
        c->entry_row[i] = r;
        c->entry_nrows[i] = 0;
        for (int32_t j = 0; j < e[i].n_tokens; j++, t++) {
            c->tok_entry[t] = i;
            c->tok_pos[t] = s->len + j;
            c->tok_id[t] = e[i].tokens[j];
            if (e[i].logits == INFER_LOGITS_ALL || (e[i].logits == INFER_LOGITS_LAST && j == e[i].n_tokens - 1)) {
                out_rows[r++] = t;
                c->entry_nrows[i]++;
            }
        }
    }
    assert(t == n && r == n_out); /* the shapes check_batch counted */
    forward_batch(c, seqs, n, out_rows, n_out);
    for (int32_t i = 0; i < ne; i++) commit_tokens(c, e[i].seq, e[i].tokens, e[i].n_tokens);
    c->n_entries = ne;
    return 0;
}

const float *infer_logits(const infer_ctx *c, int32_t e, int32_t i) {
    if (e < 0 || e >= c->n_entries || i < 0 || i >= c->entry_nrows[e]) return NULL;
    return c->logits + (size_t)(c->entry_row[e] + i) * (size_t)c->m->info.n_vocab;
}
