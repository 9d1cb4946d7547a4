/* encode.c - the encoder forward pass (bert, nomic-bert) over a batch of
 * whole sequences, ending in one pooled vector per sequence.
 *
 * Every sequence of the batch is complete in this one pass, and attention
 * runs over all of a sequence's tokens in both directions (no mask, no KV
 * cache).  As in the decoder (forward.c), each weight matrix is multiplied
 * once per layer against every token of every sequence, and attention is
 * the only part done per sequence.  Read it top to bottom in encode_batch:
 *
 *   x = LN(tok_embd[id] + token_types[0] + position_embd[pos])   (nomic: no positions)
 *   per layer (post-LayerNorm):
 *     q, k, v = x Wq + bq, x Wk + bk, x Wv + bv ; [nomic: rope(q, k)]
 *     a = softmax(q k^T / sqrt(d)) v        over all keys of the sequence
 *     x = LN(x + a Wo + bo)
 *     bert: h = gelu(x Wup + bup)    nomic: h = silu(x Wgate) * (x Wup)
 *     x = LN(x + h Wdown + bdown)
 *   pool each sequence: the mean of its rows, its first (CLS) or its last.
 * (The last layer carries on after attention with the rows pooling reads
 * only: one per sequence pooled by CLS or last.)
 *
 * Per-token stages split tokens over the thread pool, matrix products split
 * weight rows, attention deals (sequence, KV head, block of queries) tiles.
 * No value depends on which other sequences share the pass. */
#include "runtime/encoder.h"

#include "kernels/quant.h"
#include "runtime/linear.h"
#include "runtime/threadpool.h"

#include <math.h>
#include <string.h>

static void token_range(int32_t n, int ith, int nth, int32_t *t0, int32_t *t1) {
    *t0 = (int32_t)((int64_t)n * ith / nth);
    *t1 = (int32_t)((int64_t)n * (ith + 1) / nth);
}

/* Below this many tokens a per-token stage costs less than a dispatch. */
#define SMALL_BATCH 4

static void run(infer_ctx *c, int parallel, tp_fn fn, void *arg) {
    if (parallel) tp_run(c->tp, fn, arg);
    else fn(arg, 0, 1);
}

typedef struct {
    infer_ctx *c;
    int32_t n;
    const enc_layer *L;
} job;

/* ---- embeddings ------------------------------------------------------------------ */

static void embed_worker(void *arg, int ith, int nth) {
    const job *j = arg;
    infer_ctx *c = j->c;
    const infer_model *m = c->m;
    enc_scratch *s = c->enc;
    int64_t E = m->info.n_embd;
    int32_t t0, t1, half = m->info.n_rot / 2;
    token_range(j->n, ith, nth, &t0, &t1);
    for (int32_t t = t0; t < t1; t++) {
        float *x = s->x + (size_t)t * E, *tmp = s->o + (size_t)t * E;
        quant_dequant_row(m->tok_embd.type, m->tok_embd.data + (size_t)s->tok_id[t] * m->tok_embd.row_bytes, x, E);
        if (m->enc.pos.data)
            quant_dequant_row(m->enc.pos.type, m->enc.pos.data + (size_t)s->tok_pos[t] * m->enc.pos.row_bytes, tmp, E);
        s->nn->layernorm(x, m->enc.type0, m->enc.pos.data ? tmp : NULL, m->enc.tok_norm, m->enc.tok_norm_b, E,
                         m->info.norm_eps);
        if (m->enc.rope) {
            float *cs = s->rope + (size_t)t * m->info.n_rot;
            for (int32_t i = 0; i < half; i++) {
                double theta = (double)s->tok_pos[t] * s->inv_freq[i];
                cs[2 * i] = (float)cos(theta);
                cs[2 * i + 1] = (float)sin(theta);
            }
        }
    }
}

/* ---- attention ---------------------------------------------------------------------- */

/* Biases, rotary positions (nomic-bert) on every head of q and k, then k
 * stored transposed (kt: one row of max_batch tokens per dimension) for the
 * score kernel, which takes 16 keys per vector. */
static void qkv_post_worker(void *arg, int ith, int nth) {
    const job *j = arg;
    infer_ctx *c = j->c;
    const infer_model_info *I = &c->m->info;
    enc_scratch *s = c->enc;
    const enc_layer *L = j->L;
    int32_t E = I->n_embd, kvd = c->kv_dim, hd = I->head_dim, t0, t1;
    token_range(j->n, ith, nth, &t0, &t1);
    for (int32_t t = t0; t < t1; t++) {
        float *q = s->q + (size_t)t * E, *k = s->k + (size_t)t * kvd, *v = s->v + (size_t)t * kvd;
        if (L->bq) s->nn->add(q, L->bq, E);
        if (L->bk) s->nn->add(k, L->bk, kvd);
        if (L->bv) s->nn->add(v, L->bv, kvd);
        if (c->m->enc.rope) {
            const float *cs = s->rope + (size_t)t * I->n_rot;
            for (int32_t h = 0; h < I->n_head; h++) nn_rope_neox(q + (size_t)h * hd, cs, I->n_rot);
            for (int32_t h = 0; h < I->n_head_kv; h++) nn_rope_neox(k + (size_t)h * hd, cs, I->n_rot);
        }
    }
    /* 16 tokens at a time, so the 16 k rows stay in L1 while each kt row
     * gets one cache line */
    for (int32_t tb = t0; tb < t1; tb += 16) {
        int32_t te = tb + 16 < t1 ? tb + 16 : t1;
        for (int32_t i = 0; i < kvd; i++) {
            float *dst = s->kt + (size_t)i * c->max_batch;
            for (int32_t t = tb; t < te; t++) dst[t] = s->k[(size_t)t * kvd + i];
        }
    }
}

/* One tile: the queries of tokens t0 .. t0+nt-1 for each head that shares
 * KV head g, against every key of their sequence: scores (nn qk, keys from
 * kt), softmax, then the weighted sum of V rows (nn pv).  Both kernels sum
 * in a fixed order, so each query's values are what they would be alone. */
static void attend_tile(infer_ctx *c, const enc_tile *tl, float *scores) {
    const infer_model_info *I = &c->m->info;
    enc_scratch *s = c->enc;
    int32_t hd = I->head_dim, E = I->n_embd, kvd = c->kv_dim, rep = I->n_head / I->n_head_kv, nt = tl->nt;
    int32_t base = s->seq_t0[tl->seq], len = s->seq_len[tl->seq];
    size_t lds = (size_t)c->n_ctx;
    float scale = 1.0f / sqrtf((float)hd);
    const float *kt = s->kt + (size_t)tl->g * hd * c->max_batch + base;
    for (int32_t j = 0; j < rep; j++) {
        int32_t h = tl->g * rep + j;
        s->nn->qk(scores + (size_t)j * nt * lds, lds, s->q + (size_t)tl->t0 * E + (size_t)h * hd, (size_t)E, nt, kt,
                  (size_t)c->max_batch, len, hd);
    }
    for (int32_t i = 0; i < rep * nt; i++) s->nn->softmax(scores + (size_t)i * lds, len, scale);
    for (int32_t j = 0; j < rep; j++) {
        int32_t h = tl->g * rep + j;
        s->nn->pv(s->att + (size_t)tl->t0 * E + (size_t)h * hd, (size_t)E, scores + (size_t)j * nt * lds, lds, nt,
                  s->v + (size_t)base * kvd + (size_t)tl->g * hd, (size_t)kvd, len, hd);
    }
}

static void attn_worker(void *arg, int ith, int nth) {
    const job *j = arg;
    infer_ctx *c = j->c;
    enc_scratch *s = c->enc;
    float *scores = s->scores + (size_t)ith * s->scores_per_thread;
    for (int32_t i = ith; i < s->n_tiles; i += nth) attend_tile(c, &s->tiles[i], scores);
}

/* Cuts every sequence into tiles: each KV head x blocks of tile_tokens
 * queries, always starting at the sequence's first token, so a sequence is
 * tiled the same way whatever else is in the batch. */
static void plan_attention(infer_ctx *c, int32_t n_seqs) {
    enc_scratch *s = c->enc;
    int32_t nt = 0;
    for (int32_t q = 0; q < n_seqs; q++)
        for (int32_t g = 0; g < c->m->info.n_head_kv; g++)
            for (int32_t t = 0; t < s->seq_len[q]; t += s->tile_tokens) {
                int32_t left = s->seq_len[q] - t;
                s->tiles[nt++] = (enc_tile){q, g, s->seq_t0[q] + t, left < s->tile_tokens ? left : s->tile_tokens};
            }
    s->n_tiles = nt;
}

/* ---- per-token stages after the products -------------------------------------------- */

typedef struct {
    infer_ctx *c;
    int32_t n;
    const float *bias, *w, *b; /* the branch's bias (or NULL), the LayerNorm's weight and bias */
} norm_job;

/* x = LN(x + o + bias): the residual and post-LayerNorm of a BERT block
 * (the bias is the branch's last product's). */
static void add_norm_worker(void *arg, int ith, int nth) {
    const norm_job *j = arg;
    infer_ctx *c = j->c;
    enc_scratch *s = c->enc;
    int64_t E = c->m->info.n_embd;
    int32_t t0, t1;
    token_range(j->n, ith, nth, &t0, &t1);
    for (int32_t t = t0; t < t1; t++)
        s->nn->layernorm(s->x + (size_t)t * E, s->o + (size_t)t * E, j->bias, j->w, j->b, E, c->m->info.norm_eps);
}

/* bert: ffa = gelu(ffa + b_up).  nomic-bert: ffa = silu(ffa) * ffb (gate, up). */
static void ffn_act_worker(void *arg, int ith, int nth) {
    const job *j = arg;
    infer_ctx *c = j->c;
    enc_scratch *s = c->enc;
    int64_t F = c->m->info.n_ff;
    int32_t t0, t1;
    token_range(j->n, ith, nth, &t0, &t1);
    for (int32_t t = t0; t < t1; t++) {
        float *a = s->ffa + (size_t)t * F;
        if (c->m->enc.swiglu) s->nn->silu_mul(a, s->ffb + (size_t)t * F, F);
        else s->nn->gelu(a, j->L->b_up, F);
    }
}

/* ---- pooling ------------------------------------------------------------------------ */

typedef struct {
    infer_ctx *c;
    int32_t n_seqs;
    float *out;
} pool_job;

static void pool_worker(void *arg, int ith, int nth) {
    const pool_job *j = arg;
    enc_scratch *s = j->c->enc;
    int64_t E = j->c->m->info.n_embd;
    int32_t q0, q1;
    token_range(j->n_seqs, ith, nth, &q0, &q1);
    for (int32_t q = q0; q < q1; q++) {
        float *out = j->out + (size_t)q * E;
        const float *first = s->x + (size_t)s->seq_t0[q] * E;
        int32_t len = s->seq_len[q];
        if (s->seq_pool[q] != INFER_POOL_MEAN) { /* CLS or last: the one row kept */
            memcpy(out, first, (size_t)E * sizeof(float));
        } else {
            for (int64_t i = 0; i < E; i++) {
                double sum = 0;
                for (int32_t t = 0; t < len; t++) sum += first[(size_t)t * E + i];
                out[i] = (float)(sum / len);
            }
        }
    }
}

/* ---- the pass ------------------------------------------------------------------------- */

/* After the last layer's attention, only the rows pooling reads go on (a
 * sequence pooled by CLS or last needs one row, by mean all of them): they
 * move down to the front, in order, with their residual rows, and the
 * sequences' row ranges are updated.  Returns the rows kept.  Every kept
 * row is computed exactly as before (the remaining stages are per row). */
static int32_t keep_pooled_rows(infer_ctx *c, int32_t n_seqs) {
    enc_scratch *s = c->enc;
    size_t E = (size_t)c->m->info.n_embd;
    int32_t n = 0;
    for (int32_t q = 0; q < n_seqs; q++) {
        int32_t t0 = s->seq_t0[q], len = s->seq_len[q];
        if (s->seq_pool[q] == INFER_POOL_CLS) len = 1;
        else if (s->seq_pool[q] == INFER_POOL_LAST) t0 += len - 1, len = 1;
        if (t0 != n) {
            memmove(s->x + (size_t)n * E, s->x + (size_t)t0 * E, (size_t)len * E * sizeof(float));
            memmove(s->att + (size_t)n * E, s->att + (size_t)t0 * E, (size_t)len * E * sizeof(float));
        }
        s->seq_t0[q] = n;
        s->seq_len[q] = len;
        n += len;
    }
    return n;
}

void encode_batch(infer_ctx *c, const enc_seq *seqs, int32_t n_seqs, float *out) {
    const infer_model *m = c->m;
    enc_scratch *s = c->enc;
    int32_t n = 0;
    for (int32_t q = 0; q < n_seqs; q++) {
        const enc_seq *e = &seqs[q];
        s->seq_t0[q] = n;
        s->seq_len[q] = enc_seq_len(e);
        s->seq_pool[q] = e->pooling;
        int32_t p = 0;
        if (e->pre >= 0) s->tok_id[n] = e->pre, s->tok_pos[n++] = p++;
        for (int32_t i = 0; i < e->n; i++) s->tok_id[n] = e->toks[i], s->tok_pos[n++] = p++;
        if (e->post >= 0) s->tok_id[n] = e->post, s->tok_pos[n++] = p++;
    }
    int par = n >= SMALL_BATCH;
    job ej = {c, n, NULL};
    run(c, par, embed_worker, &ej);
    plan_attention(c, n_seqs);

    for (int il = 0; il < m->info.n_layer; il++) {
        const enc_layer *L = &m->enc.layers[il];
        job j = {c, n, L};

        const weight *qkv_w[3] = {&L->wq, &L->wk, &L->wv};
        float *qkv_y[3] = {s->q, s->k, s->v};
        linear_group_batch(c->tp, s->act, s->x, n, 3, qkv_w, qkv_y);
        run(c, par, qkv_post_worker, &j);
        run(c, 1, attn_worker, &j);
        if (il == m->info.n_layer - 1) {
            n = keep_pooled_rows(c, n_seqs);
            par = n >= SMALL_BATCH;
            j.n = n;
        }

        const weight *wo = &L->wo;
        linear_group_batch(c->tp, s->act, s->att, n, 1, &wo, &s->o);
        norm_job an = {c, n, L->bo, L->attn_norm, L->attn_norm_b};
        run(c, par, add_norm_worker, &an);

        if (m->enc.swiglu) {
            const weight *ff_w[2] = {&L->w_gate, &L->w_up};
            float *ff_y[2] = {s->ffa, s->ffb};
            linear_group_batch(c->tp, s->act, s->x, n, 2, ff_w, ff_y);
        } else {
            const weight *wu = &L->w_up;
            linear_group_batch(c->tp, s->act, s->x, n, 1, &wu, &s->ffa);
        }
        run(c, par, ffn_act_worker, &j);
        const weight *wd = &L->w_down;
        linear_group_batch(c->tp, s->act, s->ffa, n, 1, &wd, &s->o);
        norm_job on = {c, n, L->b_down, L->out_norm, L->out_norm_b};
        run(c, par, add_norm_worker, &on);
    }
    pool_job pj = {c, n_seqs, out};
    run(c, n_seqs >= SMALL_BATCH, pool_worker, &pj);
}
