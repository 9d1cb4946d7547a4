/* encoder_ctx.c - the context of an encoder model: scratch for one forward
 * pass of up to max_batch tokens, in sequences of up to n_ctx tokens.
 *
 * An encoder keeps nothing between calls (attention is bidirectional over a
 * sequence that is complete in one pass, so there is no KV cache): its ctx
 * is activations, prepared matmul inputs and per-thread attention buffers,
 * all allocated here once so that a pass never allocates.  A sequence must
 * fit in one pass, so max_batch may not be below n_ctx; n_ctx may not
 * exceed the context the model was trained for (BERT's learned positions
 * end there). */
#include "runtime/encoder.h"

#include "kernels/nn.h"
#include "kernels/quant.h"
#include "kernels/ialloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_MIN_BATCH 2048 /* tokens: 16 chunks of 128, 4 full BERT windows */
#define DEFAULT_CTX_CAP 8192   /* a default context above this is asked for, not assumed */

static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static size_t act_row(const weight *w, size_t best) {
    size_t b = quant_act_row_bytes(w->type, w->cols);
    return b > best ? b : best;
}

int encoder_ctx_init(infer_ctx *c, const infer_ctx_params *p, char *err, size_t errlen) {
    const infer_model *m = c->m;
    const infer_model_info *I = &m->info;
    int32_t n_ctx = p->n_ctx ? p->n_ctx : I->n_ctx_train < DEFAULT_CTX_CAP ? I->n_ctx_train : DEFAULT_CTX_CAP;
    if (n_ctx > I->n_ctx_train)
        return fail(err, errlen, "context of %d tokens exceeds the model's %d (an encoder's positions end there)",
                    n_ctx, I->n_ctx_train);
    int32_t max_batch = p->max_batch ? p->max_batch : n_ctx > DEFAULT_MIN_BATCH ? n_ctx : DEFAULT_MIN_BATCH;
    if (max_batch > 65536) return fail(err, errlen, "batch of %d tokens is above the limit of 65536", max_batch);
    if (max_batch < n_ctx)
        return fail(err, errlen,
                    "batch of %d tokens is below the context of %d: an encoder runs a sequence in one pass",
                    max_batch, n_ctx);
    c->n_ctx = n_ctx;
    c->max_batch = max_batch;
    c->q_dim = I->n_embd;
    c->kv_dim = I->n_head_kv * I->head_dim;

    enc_scratch *s = ie_calloc(1, sizeof *s);
    if (!s) return fail(err, errlen, "out of memory");
    c->enc = s;
    int oom = 0;
    int nth = c->nth;
    size_t B = (size_t)max_batch, E = (size_t)I->n_embd, F = (size_t)I->n_ff, KV = (size_t)c->kv_dim;
    int32_t rep = I->n_head / I->n_head_kv;
    s->tile_tokens = rep >= ENC_TILE_QUERIES ? 1 : ENC_TILE_QUERIES / rep;
    s->tile_queries = s->tile_tokens * rep;
    s->nn = nn_get();

    size_t row_e = 0, row_any;
    for (int il = 0; il < I->n_layer; il++) {
        const enc_layer *L = &m->enc.layers[il];
        const weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_up};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) row_e = act_row(ws[i], row_e);
        if (m->enc.swiglu) row_e = act_row(&L->w_gate, row_e);
    }
    row_any = row_e;
    for (int il = 0; il < I->n_layer; il++) row_any = act_row(&m->enc.layers[il].w_down, row_any);

    s->x = ctx_calloc(c, B * E, sizeof(float), &oom);
    s->q = ctx_calloc(c, B * E, sizeof(float), &oom);
    s->k = ctx_calloc(c, B * KV, sizeof(float), &oom);
    s->v = ctx_calloc(c, B * KV, sizeof(float), &oom);
    s->att = ctx_calloc(c, B * E, sizeof(float), &oom);
    s->o = ctx_calloc(c, B * E, sizeof(float), &oom);
    s->ffa = ctx_calloc(c, B * F, sizeof(float), &oom);
    if (m->enc.swiglu) s->ffb = ctx_calloc(c, B * F, sizeof(float), &oom);
    s->act[0] = ctx_calloc(c, B, row_any, &oom);
    s->act[1] = ctx_calloc(c, B, row_e, &oom);
    s->act[2] = ctx_calloc(c, B, row_e, &oom);
    s->kt = ctx_calloc(c, KV * B, sizeof(float), &oom);
    s->scores_per_thread = (size_t)s->tile_queries * (size_t)n_ctx;
    s->scores = ctx_calloc(c, (size_t)nth * s->scores_per_thread, sizeof(float), &oom);
    if (m->enc.rope) {
        s->rope = ctx_calloc(c, B * (size_t)I->n_rot, sizeof(float), &oom);
        s->inv_freq = ctx_calloc(c, (size_t)I->n_rot / 2, sizeof(float), &oom);
    }
    s->tok_id = ctx_calloc(c, B, sizeof(int32_t), &oom);
    s->tok_pos = ctx_calloc(c, B, sizeof(int32_t), &oom);
    s->seq_t0 = ctx_calloc(c, B, sizeof(int32_t), &oom);
    s->seq_len = ctx_calloc(c, B, sizeof(int32_t), &oom);
    s->seq_pool = ctx_calloc(c, B, sizeof(int), &oom);
    /* each sequence of L tokens makes ceil(L / tile_tokens) tiles per KV head */
    s->tiles = ctx_calloc(c, (B / (size_t)s->tile_tokens + B) * (size_t)I->n_head_kv, sizeof *s->tiles, &oom);
    s->pass_seqs = ctx_calloc(c, B, sizeof *s->pass_seqs, &oom);
    s->pass_item = ctx_calloc(c, B, sizeof(int32_t), &oom);
    s->pass_vecs = ctx_calloc(c, B * E, sizeof(float), &oom);
    if (oom)
        return fail(err, errlen, "out of memory allocating the encoder's scratch for %d tokens", max_batch);
    for (int32_t i = 0; !c->dry && s->inv_freq && i < I->n_rot / 2; i++)
        s->inv_freq[i] = (float)pow((double)I->rope_base, -2.0 * i / (double)I->n_rot);
    return 0;
}

void encoder_ctx_free(infer_ctx *c) {
    enc_scratch *s = c->enc;
    if (!s) return;
    free(s->x), free(s->q), free(s->k), free(s->v), free(s->att), free(s->o), free(s->ffa), free(s->ffb);
    for (int i = 0; i < 3; i++) free(s->act[i]);
    free(s->kt), free(s->scores), free(s->rope), free(s->inv_freq);
    free(s->tok_id), free(s->tok_pos), free(s->seq_t0), free(s->seq_len), free(s->seq_pool), free(s->tiles);
    free(s->pass_seqs), free(s->pass_item), free(s->pass_vecs);
    free(s);
    c->enc = NULL;
}
