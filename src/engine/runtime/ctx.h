/* ctx.h - internal: the state of an infer_ctx (KV pool, scratch buffers)
 * shared between ctx.c (creation, sequences, decode entry point) and
 * forward.c (the forward pass); an encoder's ctx holds enc_scratch instead
 * (encoder.h). */
#ifndef INFER_CTX_H
#define INFER_CTX_H

#include "runtime/kvpool.h"
#include "runtime/model.h"
#include "kernels/ops.h"

typedef struct att_tile att_tile;
typedef struct enc_scratch enc_scratch; /* encoder models: runtime/encoder.h */

struct infer_seq {
    infer_ctx *c;
    int32_t len;      /* tokens whose K/V are in the cache */
    int32_t n_blocks; /* blocks in the table */
    int32_t *blocks;  /* block table: position p lives in blocks[p / block_tokens] */
    int32_t *toks;    /* the tokens of positions 0..len-1 (for block hashes) */
    uint64_t *bhash;  /* chain hash of each full block (0 while not full) */
};

struct infer_ctx {
    infer_model *m;
    infer_threadpool *tp;
    int nth;          /* threads of tp (a dry ctx has no tp) */
    int dry;          /* sizing only (mem.c): nothing allocated, every size counted */
    uint64_t scratch_bytes; /* every buffer below but the KV data, as allocated */
    const ops_table *ops;
    int32_t n_ctx, max_batch, bt;
    int32_t kv_dim;      /* n_head_kv * head_dim */
    int32_t q_dim;       /* n_head * head_dim */

    /* KV pool: block b holds, for every layer l, K then V for bt tokens:
     * K(b, l, slot) = kv + b*block_floats + (2*l)*bt*kv_dim + slot*kv_dim. */
    float *kv;
    size_t kv_len; /* bytes, an anonymous mapping */
    size_t block_floats;
    kv_pool pool;
    int32_t max_seq_blocks;
    uint64_t reused_tokens, prompt_tokens; /* prefix-reuse statistics */

    /* scratch, sized for max_batch tokens */
    float *x, *h, *q, *k, *v, *att, *o, *ffa, *ffb;
    uint8_t *act[3];
    size_t act_bytes; /* capacity of each act buffer */
    float *scores;    /* per thread: scores_per_thread floats */
    size_t scores_per_thread;
    uint8_t *att_act;          /* per thread: a tile's queries as matmul activations */
    size_t att_act_per_thread;
    const float **att_rows;    /* per thread: n_ctx V row pointers */
    struct att_tile { int32_t t0, nt, g; } *att_tiles; /* attention work of the current batch */
    int32_t n_att_tiles;
    float *rope;      /* max_batch * n_rot (cos, sin pairs) */
    float *inv_freq;  /* n_rot / 2 */
    int32_t *tok_entry, *tok_pos, *tok_id;

    /* logits of the last decode */
    float *logits;
    size_t logits_cap_rows;
    int32_t *entry_row, *entry_nrows; /* per entry: first logits row and count */
    int32_t n_entries;
    infer_seq **entry_seq; /* max_batch: the sequence of each entry */
    int32_t *out_rows;     /* max_batch: batch rows that want logits */

    /* Encoder models: their own scratch instead of all of the above but m,
     * tp, ops and the sizes (no KV cache: a sequence lives for one pass). */
    enc_scratch *enc;
};

/* infer_ctx_create for nth threads; with dry, a ctx that only adds up the
 * sizes of its buffers (scratch_bytes, kv_len) and allocates none of them,
 * for sizing a model up before loading it.  A dry ctx may only be freed. */
int ctx_create(infer_model *m, infer_threadpool *tp, int nth, const infer_ctx_params *p, int dry, infer_ctx **out,
               char *err, size_t errlen);
/* calloc that counts into c->scratch_bytes (and only counts when dry). */
void *ctx_calloc(infer_ctx *c, size_t n, size_t sz, int *oom);
/* Makes room for rows of logits at once (counted as scratch); -1 on OOM. */
int ctx_reserve_logits(infer_ctx *c, size_t rows);

/* Runs the forward pass for the n tokens described by tok_* (already placed
 * in their sequences' blocks).  Rows listed in out_rows get logits into
 * c->logits, in that order. */
void forward_batch(infer_ctx *c, infer_seq *const *seq_of_entry, int32_t n, const int32_t *out_rows,
                   int32_t n_out);

#endif
