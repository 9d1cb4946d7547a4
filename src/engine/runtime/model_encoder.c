/* model_encoder.c - loads the encoder architectures used for embeddings:
 * `bert` (BERT, BGE, GTE, all-MiniLM: learned absolute positions, token
 * types, post-LayerNorm, GELU) and `nomic-bert` (rotary positions, one
 * fused q/k/v matrix, SwiGLU), in the tensor names and metadata keys that
 * llama.cpp's converter writes.
 *
 * As for decoders (model.c), every hyper-parameter is range-checked and
 * every tensor's shape is checked against them here, so a file whose
 * metadata and tensors disagree fails at load with a message that names
 * the key or tensor, and the forward pass can trust every shape.  Matrices
 * stay in place in the file's image; vectors (biases, LayerNorm weights,
 * token type 0) are copied as f32. */
#include "runtime/model.h"

#include "kernels/quant.h"
#include "kernels/ialloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 1024
#define MAX_DIM (1 << 20)
#define MAX_TYPES 4096

/* llama.cpp's llama_pooling_type values, as <arch>.pooling_type stores them. */
enum { GGUF_POOL_NONE = 0, GGUF_POOL_MEAN = 1, GGUF_POOL_CLS = 2, GGUF_POOL_LAST = 3, GGUF_POOL_RANK = 4 };

static int read_pooling(infer_model *m, char *err, size_t errlen) {
    char key[64];
    snprintf(key, sizeof key, "%s.pooling_type", m->arch_name);
    uint32_t v;
    int rc = gguf_get_u32(m->g, key, &v);
    if (rc == -2) return model_fail(err, errlen, "metadata key %s is not an unsigned integer", key);
    if (rc == -1) {
        /* llama.cpp requires it for nomic-bert; a bert file without it is
         * pooled by mean, sentence-transformers' default. */
        if (m->arch == ARCH_NOMIC_BERT) return model_fail(err, errlen, "missing metadata key %s", key);
        v = GGUF_POOL_MEAN;
    }
    switch (v) {
    case GGUF_POOL_NONE: m->enc.pooling = 0; break;
    case GGUF_POOL_MEAN: m->enc.pooling = INFER_POOL_MEAN; break;
    case GGUF_POOL_CLS: m->enc.pooling = INFER_POOL_CLS; break;
    case GGUF_POOL_LAST: m->enc.pooling = INFER_POOL_LAST; break;
    case GGUF_POOL_RANK:
        return model_fail(err, errlen, "%s = 4 (rank): reranker models are not supported, only embedding models",
                          key);
    default:
        return model_fail(err, errlen, "%s = %u is not a pooling type (0 none, 1 mean, 2 cls, 3 last)", key, v);
    }
    m->info.pooling = m->enc.pooling;
    return 0;
}

int encoder_read_hparams(infer_model *m, char *err, size_t errlen) {
    const gguf_file *g = m->g;
    const char *a = m->arch_name;
    infer_model_info *I = &m->info;
    if (model_hparam(g, a, "embedding_length", 1, 0, 1, MAX_DIM, &I->n_embd, err, errlen) < 0 ||
        model_hparam(g, a, "block_count", 1, 0, 1, MAX_LAYERS, &I->n_layer, err, errlen) < 0 ||
        model_hparam(g, a, "feed_forward_length", 1, 0, 1, MAX_DIM, &I->n_ff, err, errlen) < 0 ||
        model_hparam(g, a, "attention.head_count", 1, 0, 1, 4096, &I->n_head, err, errlen) < 0 ||
        model_hparam(g, a, "context_length", 1, 0, 1, 1u << 20, &I->n_ctx_train, err, errlen) < 0)
        return -1;
    if (model_hparam(g, a, "attention.head_count_kv", 0, (uint32_t)I->n_head, 1, (uint32_t)I->n_head, &I->n_head_kv,
                     err, errlen) < 0)
        return -1;
    if (I->n_head % I->n_head_kv)
        return model_fail(err, errlen, "head count %d is not a multiple of the KV head count %d", I->n_head,
                          I->n_head_kv);
    if (I->n_embd % I->n_head)
        return model_fail(err, errlen, "embedding length %d is not a multiple of the head count %d", I->n_embd,
                          I->n_head);
    I->head_dim = I->n_embd / I->n_head;
    int32_t klen, vlen;
    if (model_hparam(g, a, "attention.key_length", 0, (uint32_t)I->head_dim, 1, 65536, &klen, err, errlen) < 0 ||
        model_hparam(g, a, "attention.value_length", 0, (uint32_t)I->head_dim, 1, 65536, &vlen, err, errlen) < 0)
        return -1;
    if (klen != I->head_dim || vlen != I->head_dim)
        return model_fail(err, errlen, "head size %d/%d differs from embedding length / heads = %d (not supported)",
                          klen, vlen, I->head_dim);

    char key[128];
    snprintf(key, sizeof key, "%s.attention.layer_norm_epsilon", a);
    int rc = gguf_get_f32(g, key, &I->norm_eps);
    if (rc == -1) return model_fail(err, errlen, "missing metadata key %s", key);
    if (rc == -2) return model_fail(err, errlen, "metadata key %s is not a float", key);
    if (!isfinite(I->norm_eps) || I->norm_eps <= 0 || I->norm_eps > 1)
        return model_fail(err, errlen, "%s = %g is not in (0, 1]", key, I->norm_eps);

    int causal = 0;
    snprintf(key, sizeof key, "%s.attention.causal", a);
    rc = gguf_get_bool(g, key, &causal);
    if (rc == -2) return model_fail(err, errlen, "metadata key %s is not a boolean", key);
    if (rc == 0 && causal)
        return model_fail(err, errlen, "%s is true: a causal encoder is not supported (embeddings attend both ways)",
                          key);

    uint32_t types;
    rc = gguf_get_u32(g, "tokenizer.ggml.token_type_count", &types);
    if (rc == -2 || (rc == 0 && (types < 1 || types > MAX_TYPES)))
        return model_fail(err, errlen, "tokenizer.ggml.token_type_count must be an integer in [1, %d]", MAX_TYPES);
    m->enc.n_types = rc == 0 ? (int32_t)types : 0;

    if (m->arch == ARCH_NOMIC_BERT) {
        m->enc.rope = 1;
        m->enc.swiglu = 1;
        if (I->head_dim % 2) return model_fail(err, errlen, "head dimension %d is odd (rotary pairs)", I->head_dim);
        if (model_hparam(g, a, "rope.dimension_count", 0, (uint32_t)I->head_dim, 2, (uint32_t)I->head_dim,
                         &I->n_rot, err, errlen) < 0)
            return -1;
        if (I->n_rot % 2) return model_fail(err, errlen, "rope dimension %d is odd", I->n_rot);
        if (model_hparam_f32(g, a, "rope.freq_base", 10000.0f, &I->rope_base, err, errlen) < 0) return -1;
        snprintf(key, sizeof key, "%s.rope.scaling.type", a);
        const char *s;
        uint64_t len;
        if (gguf_get_str(g, key, &s, &len) == 0 && !(len == 4 && memcmp(s, "none", 4) == 0))
            return model_fail(err, errlen, "RoPE scaling '%.*s' is not supported", (int)(len < 32 ? len : 32), s);
        I->rope_neox = 1;
    }
    return read_pooling(m, err, errlen);
}

/* Splits nomic-bert's fused attn_qkv (rows: q, then k, then v) into three
 * weights that view its row ranges, so the forward pass is the same for
 * both architectures. */
static void split_rows(const weight *all, int64_t r0, int64_t n, weight *part) {
    *part = *all;
    part->data = all->data ? all->data + (size_t)r0 * all->row_bytes : NULL; /* NULL: header only */
    part->rows = n;
}

static int bind_layer(infer_model *m, int il, float **arena, char *err, size_t errlen) {
    const infer_model_info *I = &m->info;
    int64_t E = I->n_embd, F = I->n_ff, kvd = (int64_t)I->n_head_kv * I->head_dim;
    enc_layer *L = &m->enc.layers[il];
    char n[96];
#define NAME(suffix) (snprintf(n, sizeof n, "blk.%d.%s", il, suffix), n)
    if (m->arch == ARCH_NOMIC_BERT) {
        weight qkv;
        if (model_bind_weight(m, NAME("attn_qkv.weight"), E, E + 2 * kvd, 0, &qkv, err, errlen) != 0) return -1;
        split_rows(&qkv, 0, E, &L->wq);
        split_rows(&qkv, E, kvd, &L->wk);
        split_rows(&qkv, E + kvd, kvd, &L->wv);
        float *b;
        int rc = model_bind_vec(m, NAME("attn_qkv.bias"), E + 2 * kvd, 1, arena, &b, err, errlen);
        if (rc < 0) return -1;
        if (rc == 0) L->bq = b, L->bk = b + E, L->bv = b + E + kvd;
    } else {
        if (model_bind_weight(m, NAME("attn_q.weight"), E, E, 0, &L->wq, err, errlen) != 0 ||
            model_bind_weight(m, NAME("attn_k.weight"), E, kvd, 0, &L->wk, err, errlen) != 0 ||
            model_bind_weight(m, NAME("attn_v.weight"), E, kvd, 0, &L->wv, err, errlen) != 0 ||
            model_bind_vec(m, NAME("attn_q.bias"), E, 0, arena, &L->bq, err, errlen) != 0 ||
            model_bind_vec(m, NAME("attn_k.bias"), kvd, 0, arena, &L->bk, err, errlen) != 0 ||
            model_bind_vec(m, NAME("attn_v.bias"), kvd, 0, arena, &L->bv, err, errlen) != 0)
            return -1;
    }
    if (model_bind_weight(m, NAME("attn_output.weight"), E, E, 0, &L->wo, err, errlen) != 0 ||
        model_bind_vec(m, NAME("attn_output.bias"), E, 1, arena, &L->bo, err, errlen) < 0 ||
        model_bind_vec(m, NAME("attn_output_norm.weight"), E, 0, arena, &L->attn_norm, err, errlen) != 0 ||
        model_bind_vec(m, NAME("attn_output_norm.bias"), E, 0, arena, &L->attn_norm_b, err, errlen) != 0 ||
        model_bind_weight(m, NAME("ffn_up.weight"), E, F, 0, &L->w_up, err, errlen) != 0 ||
        model_bind_vec(m, NAME("ffn_up.bias"), F, 1, arena, &L->b_up, err, errlen) < 0 ||
        model_bind_weight(m, NAME("ffn_down.weight"), F, E, 0, &L->w_down, err, errlen) != 0 ||
        model_bind_vec(m, NAME("ffn_down.bias"), E, 1, arena, &L->b_down, err, errlen) < 0 ||
        model_bind_vec(m, NAME("layer_output_norm.weight"), E, 0, arena, &L->out_norm, err, errlen) != 0 ||
        model_bind_vec(m, NAME("layer_output_norm.bias"), E, 0, arena, &L->out_norm_b, err, errlen) != 0)
        return -1;
    if (m->enc.swiglu && model_bind_weight(m, NAME("ffn_gate.weight"), E, F, 0, &L->w_gate, err, errlen) != 0)
        return -1;
#undef NAME
    return 0;
}

int encoder_bind(infer_model *m, char *err, size_t errlen) {
    infer_model_info *I = &m->info;
    enc_weights *W = &m->enc;
    int64_t E = I->n_embd, V = I->n_vocab, F = I->n_ff, kvd = (int64_t)I->n_head_kv * I->head_dim;
    /* arena: per layer q/k/v/o biases, two LayerNorms, ffn biases; plus
     * token type 0 and the embedding LayerNorm */
    size_t per_layer = (size_t)(E + 2 * kvd + E + 4 * E + F + E);
    size_t arena_bytes = ((size_t)I->n_layer * per_layer + 3 * (size_t)E) * sizeof(float);
    m->f32_arena = ie_malloc(arena_bytes);
    W->layers = ie_calloc((size_t)I->n_layer, sizeof *W->layers);
    m->host_bytes = arena_bytes + (size_t)I->n_layer * sizeof *W->layers;
    if (!m->f32_arena || !W->layers) return model_fail(err, errlen, "out of memory");
    float *arena = m->f32_arena;

    if (model_bind_weight(m, "token_embd.weight", E, V, 0, &m->tok_embd, err, errlen) != 0) return -1;
    /* Token types: llama.cpp adds row 0 ("sentence A") to every token. */
    const gguf_tensor *tt = gguf_find_tensor(m->g, "token_types.weight");
    if (tt) {
        int64_t rows = tt->ne[1];
        if (rows < 1 || rows > MAX_TYPES || (W->n_types && rows != W->n_types))
            return model_fail(err, errlen, "tensor token_types.weight has %lld rows, expected %d (token_type_count)",
                              (long long)rows, W->n_types ? W->n_types : 1);
        weight types;
        if (model_bind_weight(m, "token_types.weight", E, rows, 0, &types, err, errlen) != 0) return -1;
        W->n_types = (int32_t)rows;
        W->type0 = arena;
        if (!m->header_only) quant_dequant_row(types.type, types.data, W->type0, E);
        arena += E;
    }
    if (m->arch == ARCH_BERT &&
        model_bind_weight(m, "position_embd.weight", E, I->n_ctx_train, 0, &W->pos, err, errlen) != 0)
        return -1;
    if (model_bind_vec(m, "token_embd_norm.weight", E, 0, &arena, &W->tok_norm, err, errlen) != 0 ||
        model_bind_vec(m, "token_embd_norm.bias", E, 0, &arena, &W->tok_norm_b, err, errlen) != 0)
        return -1;
    for (int il = 0; il < I->n_layer; il++)
        if (bind_layer(m, il, &arena, err, errlen) < 0) return -1;
    return 0;
}
