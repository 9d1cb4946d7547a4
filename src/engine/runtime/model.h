/* model.h - internal: a loaded decoder model (weights bound to the mmap'd
 * GGUF, hyper-parameters validated) shared by the forward pass and the
 * context code. */
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

enum { ARCH_LLAMA, ARCH_QWEN2, ARCH_QWEN3 };

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
    float *f32_arena; /* one allocation for every 1-D tensor copy */
};

#endif
