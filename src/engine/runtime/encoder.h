/* encoder.h - internal: what the encoder (embedding) code shares between
 * its files: the context scratch (encoder_ctx.c), the forward pass over a
 * batch of sequences (encode.c), and the bookkeeping of inputs cut into
 * windows and packed into passes (embed.c), which the embedding scheduler
 * (embed_sched.c) drives too. */
#ifndef INFER_ENCODER_H
#define INFER_ENCODER_H

#include "kernels/nn.h"
#include "runtime/ctx.h"

/* One sequence of a forward pass: toks[0..n), with an optional token before
 * and after them (the CLS and SEP that each window of a cut input gets). */
typedef struct {
    const int32_t *toks;
    int32_t n;
    int32_t pre, post; /* token ids, or -1 for none */
    int pooling;       /* INFER_POOL_MEAN, _CLS or _LAST */
} enc_seq;

static inline int32_t enc_seq_len(const enc_seq *s) { return s->n + (s->pre >= 0) + (s->post >= 0); }

/* Attention tile: about ENC_TILE_QUERIES query rows (tokens x the heads
 * sharing one KV head) of one sequence, against all of its keys. */
#define ENC_TILE_QUERIES 32
typedef struct {
    int32_t seq, g, t0, nt; /* sequence, KV head, first token (batch row), tokens */
} enc_tile;

/* Scratch of an encoder ctx, sized for max_batch tokens in sequences of at
 * most n_ctx; one forward pass at a time. */
struct enc_scratch {
    const nn_table *nn;        /* LayerNorm, GELU, softmax for this CPU */
    int32_t tile_tokens;       /* tokens per attention tile */
    int32_t tile_queries;      /* their query rows: tile_tokens x heads per KV head */
    float *x, *q, *k, *v, *att, *o, *ffa, *ffb; /* activations, per token */
    uint8_t *act[3];           /* prepared matmul inputs: act[0] any k, act[1..2] k = n_embd */
    float *kt;                 /* the layer's keys transposed: kv_dim rows of max_batch */
    float *scores;             /* per thread: tile_queries x n_ctx */
    size_t scores_per_thread;
    float *rope;               /* nomic-bert: per token, cos/sin of each pair */
    float *inv_freq;
    int32_t *tok_id, *tok_pos; /* per token of the pass */
    int32_t *seq_t0, *seq_len; /* per sequence: first row, tokens */
    int *seq_pool;
    enc_tile *tiles;
    int32_t n_tiles;
    /* embed.c's per-pass bookkeeping: up to max_batch windows */
    enc_seq *pass_seqs;
    int32_t *pass_item;
    float *pass_vecs; /* max_batch x n_embd pooled vectors */
};

/* encoder_ctx.c: called by infer_ctx_create / infer_ctx_free for encoders. */
int encoder_ctx_init(infer_ctx *c, const infer_ctx_params *p, char *err, size_t errlen);
void encoder_ctx_free(infer_ctx *c);

/* encode.c: one forward pass over seqs[0..n) (each 1..n_ctx tokens of valid
 * ids, max_batch tokens and sequences in all); writes each one's pooled,
 * not normalised, vector to out[i * n_embd].  A sequence's vector does not
 * depend on the others in the pass. */
void encode_batch(infer_ctx *c, const enc_seq *seqs, int32_t n, float *out);

/* ---- embed.c: inputs, windows, passes ------------------------------------ */

/* One input being embedded: its tokens, cut into windows of the context
 * when longer (INFER_LONG_CHUNK), and where its vector goes.  A one-window
 * input's pooled vector is written to out; a cut one keeps the running
 * token-weighted sum of its windows' vectors in acc. */
typedef struct {
    const int32_t *toks;
    int32_t n;
    int pooling;               /* resolved: INFER_POOL_MEAN, _CLS or _LAST */
    int normalize;
    int32_t n_windows, done;   /* windows in all, windows pooled so far */
    int32_t wrap_pre, wrap_post; /* CLS and SEP given to each window, or -1 */
    int32_t width;             /* tokens of the input per window */
    float *out;                /* n_embd floats (the caller's) */
    double *acc;               /* n_embd sums when n_windows > 1, else NULL */
    double wsum;
} embed_item;

/* Checks params and the tokens against the ctx and sets up it, its vector
 * to go to out (n_embd floats, the caller's).  Returns -1 with a message
 * for a bad pooling mode, an empty input, an id outside the vocabulary, an
 * input over the context when long inputs are refused, or no memory for a
 * cut input's sums.  embed_item_release frees what init allocated. */
int embed_item_init(const infer_ctx *c, embed_item *it, const int32_t *toks, int32_t n,
                    const infer_embed_params *p, float *out, char *err, size_t errlen);
void embed_item_release(embed_item *it);
/* Runs one forward pass over the next windows of items[0..n) in order, as
 * many as fit in the ctx's batch (at least one).  Returns the number of
 * tokens computed, 0 when every item is done. */
int32_t embed_step(infer_ctx *c, embed_item *const *items, int32_t n);
/* Completes a finished item's vector in its out: the token-weighted mean
 * of its windows, L2-normalised when asked; then releases it. */
void embed_item_finish(const infer_ctx *c, embed_item *it);
/* Tokenizes a text for an encoder (CLS/SEP as the vocab asks) into a new
 * array (*out, the caller frees).  Returns the token count (>= 1) or -1. */
int64_t embed_tokenize(const infer_vocab *v, const char *text, size_t len, int32_t **out, char *err, size_t errlen);
const char *embed_pool_name(int pooling); /* "mean", "cls", "last" */

#endif
