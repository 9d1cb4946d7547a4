/* forward.c - the transformer forward pass over a batch of tokens.
 *
 * One call runs every token of the batch (which may belong to several
 * sequences) through every layer.  Each weight matrix is multiplied once per
 * layer against the whole batch, so weights stream from memory once per step
 * however many sequences are decoding; attention is the only part done per
 * sequence, reading that sequence's K/V blocks.  Read it top to bottom in
 * forward_batch: embed, then per layer
 *
 *   h = rmsnorm(x) ; q,k,v = h Wq,Wk,Wv (+bias) ; [qwen3: per-head rmsnorm]
 *   rope(q, k) ; store k,v ; a = softmax(q k^T / sqrt(d)) v ; x += a Wo
 *   h = rmsnorm(x) ; x += (silu(h Wgate) * h Wup) Wdown
 *
 * then the final norm and the lm head for the rows that want logits.
 * Parallel regions split rows of a weight (matrix products) or tokens /
 * (token, head) pairs (everything else) across the thread pool.  No value
 * depends on how tokens are batched: batched and unbatched decoding agree. */
#include "runtime/ctx.h"

#include "kernels/quant.h"
#include "runtime/linear.h"
#include "runtime/threadpool.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* ---- elementwise helpers ---------------------------------------------------- */

static void rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

/* Rotates one head vector u in place: pairs (2i, 2i+1) (llama) or
 * (i, i + n_rot/2) (neox: qwen2/3); cs holds cos,sin per pair. */
static void rope_head(float *u, const float *cs, int32_t n_rot, int neox) {
    int32_t half = n_rot / 2;
    for (int32_t i = 0; i < half; i++) {
        float c = cs[2 * i], s = cs[2 * i + 1];
        int32_t ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
        float a = u[ia], b = u[ib];
        u[ia] = a * c - b * s;
        u[ib] = a * s + b * c;
    }
}

static void token_range(int32_t n, int ith, int nth, int32_t *t0, int32_t *t1) {
    *t0 = (int32_t)((int64_t)n * ith / nth);
    *t1 = (int32_t)((int64_t)n * (ith + 1) / nth);
}

/* ---- matrix products ------------------------------------------------------- */

/* y_i = x W_i^T for each weight of the group, x being nt rows of k floats. */
static void matmul_group(infer_ctx *c, const float *x, int32_t nt, int n, const weight *const *w,
                         float *const *y) {
    linear_group(c->tp, c->act, x, nt, n, w, y);
}

static void matmul1(infer_ctx *c, const float *x, int32_t nt, const weight *w, float *y) {
    matmul_group(c, x, nt, 1, &w, &y);
}

/* ---- per-token stages -------------------------------------------------------- */

typedef struct {
    infer_ctx *c;
    int32_t n;
    const float *add;   /* residual to add into x first (or NULL) */
    const float *norm;  /* rmsnorm weight */
} norm_job;

static void norm_worker(void *arg, int ith, int nth) {
    const norm_job *j = arg;
    infer_ctx *c = j->c;
    int64_t E = c->m->info.n_embd;
    int32_t t0, t1;
    token_range(j->n, ith, nth, &t0, &t1);
    for (int32_t t = t0; t < t1; t++) {
        float *x = c->x + (size_t)t * E;
        if (j->add) {
            const float *a = j->add + (size_t)t * E;
            for (int64_t i = 0; i < E; i++) x[i] += a[i];
        }
        rmsnorm(c->h + (size_t)t * E, x, j->norm, E, c->m->info.norm_eps);
    }
}

typedef struct {
    infer_ctx *c;
    const layer_weights *L;
    int il;
    int32_t n;
    infer_seq *const *seq_of_entry;
} qkv_job;

/* Bias, per-head norm, RoPE, and the store of k/v into the cache. */
static void qkv_post_worker(void *arg, int ith, int nth) {
    const qkv_job *j = arg;
    infer_ctx *c = j->c;
    const infer_model_info *I = &c->m->info;
    int32_t hd = I->head_dim, qd = c->q_dim, kvd = c->kv_dim;
    int32_t t0, t1;
    token_range(j->n, ith, nth, &t0, &t1);
    for (int32_t t = t0; t < t1; t++) {
        float *q = c->q + (size_t)t * qd, *k = c->k + (size_t)t * kvd, *v = c->v + (size_t)t * kvd;
        const layer_weights *L = j->L;
        if (L->bq)
            for (int32_t i = 0; i < qd; i++) q[i] += L->bq[i];
        if (L->bk)
            for (int32_t i = 0; i < kvd; i++) k[i] += L->bk[i];
        if (L->bv)
            for (int32_t i = 0; i < kvd; i++) v[i] += L->bv[i];
        const float *cs = c->rope + (size_t)t * I->n_rot;
        for (int32_t h = 0; h < I->n_head; h++) {
            if (L->q_norm) rmsnorm(q + h * hd, q + h * hd, L->q_norm, hd, I->norm_eps);
            rope_head(q + h * hd, cs, I->n_rot, I->rope_neox);
        }
        for (int32_t h = 0; h < I->n_head_kv; h++) {
            if (L->k_norm) rmsnorm(k + h * hd, k + h * hd, L->k_norm, hd, I->norm_eps);
            rope_head(k + h * hd, cs, I->n_rot, I->rope_neox);
        }
        const infer_seq *s = j->seq_of_entry[c->tok_entry[t]];
        int32_t pos = c->tok_pos[t];
        float *kc = c->kv + (size_t)s->blocks[pos / c->bt] * c->block_floats +
                    (size_t)(2 * j->il) * c->bt * kvd + (size_t)(pos % c->bt) * kvd;
        memcpy(kc, k, (size_t)kvd * sizeof(float));
        memcpy(kc + (size_t)c->bt * kvd, v, (size_t)kvd * sizeof(float));
    }
}

/* Causal attention for one tile: up to ATT_TOKENS consecutive tokens of one
 * sequence times the query heads that share KV head g.  Every K and V row
 * is loaded once for the whole tile (the f32 matrix kernel for scores, ops axpy_rows for the V sum), and each
 * query's arithmetic is the same as if it were alone, so tiling never
 * changes a value.  Token positions increase within a tile, so the queries
 * still attending at position p are a suffix of the tile. */
#define ATT_TOKENS 4

static const float *kv_row(const infer_ctx *c, const infer_seq *s, int il, int32_t p, int v) {
    return c->kv + (size_t)s->blocks[p / c->bt] * c->block_floats + (size_t)(2 * il + v) * c->bt * c->kv_dim +
           (size_t)(p % c->bt) * c->kv_dim;
}

static void attend_tile(infer_ctx *c, const infer_seq *s, int il, int32_t t0, int32_t nt, int32_t g, float *scores,
                        uint8_t *qact, const float **rows) {
    const infer_model_info *I = &c->m->info;
    int32_t hd = I->head_dim, rep = I->n_head / I->n_head_kv, nq = nt * rep;
    float scale = 1.0f / sqrtf((float)hd);
    float *out[ATT_TOKENS * 64];
    const float *w[ATT_TOKENS * 64];
    int32_t pos[ATT_TOKENS * 64] = {0}, cnt[ATT_TOKENS * 64];
    size_t rb = quant_act_row_bytes(QT_F32, hd);
    for (int32_t k = 0; k < nt; k++) { /* this KV head's query heads of token t0+k are contiguous */
        int32_t t = t0 + k;
        quant_act_prepare(QT_F32, c->q + (size_t)t * c->q_dim + (size_t)g * rep * hd, hd, rep, (size_t)hd,
                          qact + (size_t)k * rep * rb);
    }
    for (int32_t i = 0; i < nq; i++) {
        int32_t t = t0 + i / rep, h = g * rep + i % rep;
        out[i] = c->att + (size_t)t * c->q_dim + (size_t)h * hd;
        w[i] = scores + (size_t)i * c->n_ctx;
        pos[i] = c->tok_pos[t];
        cnt[i] = pos[i] + 1;
        memset(out[i], 0, (size_t)hd * sizeof(float));
    }
    /* Scores, one KV block at a time: the block's positions are rows of a
     * small f32 matrix (stride kv_dim) multiplied against all queries.
     * Positions past a query's own are computed and never read. */
    int32_t last = pos[nq - 1];
    size_t koff = (size_t)g * hd;
    for (int32_t p0 = 0; p0 <= last; p0 += c->bt) {
        int32_t np = last + 1 - p0 < c->bt ? last + 1 - p0 : c->bt;
        quant_matmul(QT_F32, kv_row(c, s, il, p0, 0) + koff, (size_t)c->kv_dim * sizeof(float), hd, 0, np, qact, nq,
                     scores + p0, (size_t)c->n_ctx);
    }
    for (int32_t i = 0; i < nq; i++) { /* softmax over positions 0..pos[i] */
        float *sc = scores + (size_t)i * c->n_ctx;
        float mx = -INFINITY;
        for (int32_t p = 0; p <= pos[i]; p++) {
            sc[p] *= scale;
            mx = sc[p] > mx ? sc[p] : mx;
        }
        double sum = 0;
        for (int32_t p = 0; p <= pos[i]; p++) {
            sc[p] = expf(sc[p] - mx);
            sum += sc[p];
        }
        float inv = (float)(1.0 / sum);
        for (int32_t p = 0; p <= pos[i]; p++) sc[p] *= inv;
    }
    for (int32_t p = 0; p <= last; p++) rows[p] = kv_row(c, s, il, p, 1) + koff;
    for (int32_t i = 0; i < nq; i += OPS_ROWS) {
        int m = nq - i < OPS_ROWS ? nq - i : OPS_ROWS;
        c->ops->axpy_rows(out + i, w + i, cnt + i, m, rows, hd);
    }
}

static void attn_worker(void *arg, int ith, int nth) {
    const qkv_job *j = arg;
    infer_ctx *c = j->c;
    float *scores = c->scores + (size_t)ith * c->scores_per_thread;
    uint8_t *qact = c->att_act + (size_t)ith * c->att_act_per_thread;
    const float **rows = c->att_rows + (size_t)ith * c->n_ctx;
    /* Tiles dealt round-robin: later tokens of a prompt attend over more
     * positions, and striding keeps the threads balanced. */
    for (int32_t i = ith; i < c->n_att_tiles; i += nth) {
        const att_tile *at = &c->att_tiles[i];
        attend_tile(c, j->seq_of_entry[c->tok_entry[at->t0]], j->il, at->t0, at->nt, at->g, scores, qact, rows);
    }
}

/* Cuts each entry's rows into tiles of ATT_TOKENS tokens x each KV head. */
static void plan_attention(infer_ctx *c, int32_t n) {
    int32_t nt = 0;
    for (int32_t t = 0; t < n;) {
        int32_t e = c->tok_entry[t], len = 1;
        while (t + len < n && len < ATT_TOKENS && c->tok_entry[t + len] == e) len++;
        /* att_tiles holds n_head_kv tiles per token of max_batch */
        assert(nt + c->m->info.n_head_kv <= (int64_t)c->max_batch * c->m->info.n_head_kv);
        for (int32_t g = 0; g < c->m->info.n_head_kv; g++) c->att_tiles[nt++] = (att_tile){t, len, g};
        t += len;
    }
    c->n_att_tiles = nt;
}

typedef struct {
    infer_ctx *c;
    int32_t n;
} ffn_job;

static void swiglu_worker(void *arg, int ith, int nth) {
    const ffn_job *j = arg;
    int64_t F = j->c->m->info.n_ff;
    int32_t t0, t1;
    token_range(j->n, ith, nth, &t0, &t1);
    for (int32_t t = t0; t < t1; t++) {
        float *g = j->c->ffa + (size_t)t * F, *u = j->c->ffb + (size_t)t * F;
        for (int64_t i = 0; i < F; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
    }
}

/* Per-token stages of a few tokens cost microseconds: a pool dispatch (and
 * the risk of waiting on a descheduled worker) would cost more than the
 * work, so they run on the calling thread alone. */
#define SMALL_BATCH 4

static void run(infer_ctx *c, int parallel, tp_fn fn, void *arg) {
    if (parallel) tp_run(c->tp, fn, arg);
    else fn(arg, 0, 1);
}

/* ---- the pass --------------------------------------------------------------------- */

static void compute_rope(infer_ctx *c, int32_t n) {
    int32_t half = c->m->info.n_rot / 2;
    for (int32_t t = 0; t < n; t++) {
        float *cs = c->rope + (size_t)t * c->m->info.n_rot;
        for (int32_t i = 0; i < half; i++) {
            double theta = (double)c->tok_pos[t] * c->inv_freq[i];
            cs[2 * i] = (float)cos(theta);
            cs[2 * i + 1] = (float)sin(theta);
        }
    }
}

void forward_batch(infer_ctx *c, infer_seq *const *seq_of_entry, int32_t n, const int32_t *out_rows,
                   int32_t n_out) {
    const infer_model *m = c->m;
    const infer_model_info *I = &m->info;
    int64_t E = I->n_embd;

    /* infer_decode builds the batch from a checked one; the scratch holds
     * max_batch rows and attention indexes the block tables by position,
     * so a bad shape here would read and write outside them.  Once per
     * token per step, not per element. */
    assert(n > 0 && n <= c->max_batch && n_out >= 0 && n_out <= n && (size_t)n_out <= c->logits_cap_rows);
    assert(I->n_head / I->n_head_kv <= 64); /* attend_tile's arrays; ctx_create refuses more */
#ifndef NDEBUG
    for (int32_t t = 0; t < n; t++) {
        const infer_seq *s = seq_of_entry[c->tok_entry[t]];
        int32_t p = c->tok_pos[t];
        assert(c->tok_id[t] >= 0 && c->tok_id[t] < I->n_vocab);
        assert(p >= 0 && p < c->n_ctx && p / c->bt < s->n_blocks);
        assert(s->blocks[p / c->bt] >= 0 && s->blocks[p / c->bt] < c->pool.n_blocks);
        /* attend_tile takes a tile's last position as the furthest any of
         * its queries attends: an entry's positions must run consecutively */
        assert(t == 0 || c->tok_entry[t] != c->tok_entry[t - 1] || p == c->tok_pos[t - 1] + 1);
    }
    for (int32_t r = 0; r < n_out; r++) assert(out_rows[r] >= 0 && out_rows[r] < n);
#endif

    for (int32_t t = 0; t < n; t++)
        quant_dequant_row(m->tok_embd.type, m->tok_embd.data + (size_t)c->tok_id[t] * m->tok_embd.row_bytes,
                          c->x + (size_t)t * E, E);
    compute_rope(c, n);
    plan_attention(c, n);
    /* attention work: query heads x positions attended, summed */
    int64_t attn_work = 0;
    for (int32_t t = 0; t < n; t++) attn_work += (int64_t)(c->tok_pos[t] + 1) * I->n_head;

    const float *pending = NULL; /* residual branch output not yet added into x */
    for (int il = 0; il < I->n_layer; il++) {
        const layer_weights *L = &m->layers[il];
        norm_job nj = {c, n, pending, L->attn_norm};
        run(c, n >= SMALL_BATCH, norm_worker, &nj);

        const weight *qkv_w[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_y[3] = {c->q, c->k, c->v};
        matmul_group(c, c->h, n, 3, qkv_w, qkv_y);

        qkv_job qj = {c, L, il, n, seq_of_entry};
        run(c, n >= SMALL_BATCH, qkv_post_worker, &qj);
        run(c, attn_work >= 4096, attn_worker, &qj);

        matmul1(c, c->att, n, &L->wo, c->o);
        norm_job fj = {c, n, c->o, L->ffn_norm};
        run(c, n >= SMALL_BATCH, norm_worker, &fj);

        const weight *ff_w[2] = {&L->w_gate, &L->w_up};
        float *ff_y[2] = {c->ffa, c->ffb};
        matmul_group(c, c->h, n, 2, ff_w, ff_y);
        ffn_job sj = {c, n};
        run(c, n >= SMALL_BATCH, swiglu_worker, &sj);
        matmul1(c, c->ffa, n, &L->w_down, c->o);
        pending = c->o;
    }

    /* Final residual, then norm + lm head only for the rows that want logits,
     * gathered so the product runs over them alone. */
    for (int32_t t = 0; t < n; t++) {
        float *x = c->x + (size_t)t * E;
        for (int64_t i = 0; i < E; i++) x[i] += pending[(size_t)t * E + i];
    }
    if (n_out == 0) return;
    for (int32_t r = 0; r < n_out; r++)
        rmsnorm(c->h + (size_t)r * E, c->x + (size_t)out_rows[r] * E, m->output_norm, E, I->norm_eps);
    matmul1(c, c->h, n_out, &m->output, c->logits);
}
