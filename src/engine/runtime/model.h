/* model.h - internal: a loaded model (weights bound to the mmap'd GGUF,
 * hyper-parameters validated) shared by the forward passes and the context
 * code: a decoder (llama, qwen2, qwen3: model.c) or an encoder (bert,
 * nomic-bert: model_encoder.c). */
#ifndef INFER_MODEL_H
#define INFER_MODEL_H

#include <stdatomic.h>

#include "gguf/gguf.h"
#include "infer.h"

/* A 2-D weight: `rows` rows of `cols` values of `type`, row r at data + r*row_bytes. */
typedef struct {
    uint32_t type;
    const uint8_t *data;
    int64_t rows, cols;
    size_t row_bytes;
} weight;

typedef struct {
    float *attn_norm, *ffn_norm;  /* [n_embd], f32 copies */
    float *bq, *bk, *bv;          /* qwen2 biases or NULL */
    float *q_norm, *k_norm;       /* qwen3 per-head norms [head_dim] or NULL */
    weight wq, wk, wv, wo, w_gate, w_up, w_down;
} layer_weights;

enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3, ARCH_BERT, ARCH_NOMIC_BERT };

/* One encoder block (post-LayerNorm): x = LN(x + attn(x)); x = LN(x + ffn(x)). */
typedef struct {
    weight wq, wk, wv;              /* nomic-bert: three row ranges of attn_qkv */
    weight wo;
    float *bq, *bk, *bv, *bo;       /* NULL when the file has none */
    float *attn_norm, *attn_norm_b; /* attn_output_norm */
    weight w_up, w_gate, w_down;    /* w_gate: nomic-bert's SwiGLU only */
    float *b_up, *b_down;           /* NULL when absent */
    float *out_norm, *out_norm_b;   /* layer_output_norm */
} enc_layer;

/* What an encoder has beside its blocks. */
typedef struct {
    int pooling;              /* INFER_POOL_* named by the file; 0 = none named */
    int rope;                 /* nomic-bert: rotary positions (neox pairs) */
    int swiglu;               /* nomic-bert: silu(gate) * up; bert: gelu(up) */
    int32_t n_types;          /* rows of token_types (0: the file has none) */
    float *type0;             /* token type 0's embedding, f32 [n_embd], or NULL */
    weight pos;               /* bert: position_embd [n_embd, n_ctx_train] */
    float *tok_norm, *tok_norm_b; /* token_embd_norm, after the embeddings */
    enc_layer *layers;
} enc_weights;

struct infer_model {
    _Atomic int refs;
    gguf_file *g;
    infer_vocab *vocab;
    int arch;
    infer_model_info info;
    char arch_name[16];
    char name[128];
    weight tok_embd, output; /* output aliases tok_embd when tied */
    float *output_norm;
    layer_weights *layers;
    int is_encoder;   /* 1: the weights are in enc; tok_embd is shared */
    enc_weights enc;
    float *f32_arena; /* one allocation for every 1-D tensor copy */
    size_t host_bytes; /* the arena and the per-layer tables: memory beside the file's image */
    int header_only;   /* sized up from the header (model_open): no tensor data, no vocab */
};

/* Loads path (infer_model_load), or with header_only reads only its header
 * and binds every weight's shape and type with no data: a model that
 * mem.c sizes up before the real load (only shapes, types and
 * hyper-parameters may be read from it; its vocab is NULL). */
int model_open(const char *path, int header_only, infer_model **out, char *err, size_t errlen);

/* Helpers of the loaders (model.c), shared with model_encoder.c.  Each
 * returns 0, or -1 with a message; the bind_ calls return 1 for an optional
 * tensor that is absent. */
int model_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* <arch>.<suffix> as a u32 in [lo, hi]; dflt when absent and not required. */
int model_hparam(const gguf_file *g, const char *arch, const char *suffix, int required, uint32_t dflt, uint32_t lo,
                 uint32_t hi, int32_t *out, char *err, size_t errlen);
/* <arch>.<suffix> as a positive finite f32; dflt when absent. */
int model_hparam_f32(const gguf_file *g, const char *arch, const char *suffix, float dflt, float *out, char *err,
                     size_t errlen);
/* A 2-D weight of shape [cols, rows] (GGML order), used in place. */
int model_bind_weight(infer_model *m, const char *name, int64_t cols, int64_t rows, int optional, weight *w,
                      char *err, size_t errlen);
/* A 1-D tensor of n values, copied as f32 to *arena (which advances). */
int model_bind_vec(infer_model *m, const char *name, int64_t n, int optional, float **arena, float **dst, char *err,
                   size_t errlen);

/* model_encoder.c: reads an encoder's hyper-parameters into m->info and
 * binds and checks every weight; m->arch, m->arch_name and m->g are set. */
int encoder_read_hparams(infer_model *m, char *err, size_t errlen);
int encoder_bind(infer_model *m, char *err, size_t errlen);

#endif
