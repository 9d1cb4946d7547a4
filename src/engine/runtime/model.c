/* model.c - loads a model from a GGUF file.
 *
 * Reads the hyper-parameters of the architecture (llama, qwen2, qwen3; the
 * encoders bert and nomic-bert are handed to model_encoder.c), binds
 * every weight to its place in the mmap and checks each shape against the
 * hyper-parameters before any forward pass can use it, so that a file whose
 * tensors disagree with its metadata fails here with a message instead of
 * reading out of bounds later.  Matrices are used in place in the file's
 * read-only image; 1-D tensors (norms, biases) are copied as f32 because
 * they are tiny and touched on every token. */
#include "runtime/model.h"

#include "kernels/quant.h"
#include "text/vocab.h"
#include "kernels/ialloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 1024
#define MAX_DIM (1 << 20)

int model_fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An architecture-scoped u32 hyper-parameter, range-checked. */
int model_hparam(const gguf_file *g, const char *arch, const char *suffix, int required, uint32_t dflt,
                  uint32_t lo, uint32_t hi, int32_t *out, char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v;
    int rc = gguf_get_u32(g, key, &v);
    if (rc == -1) {
        if (required) return model_fail(err, errlen, "missing metadata key %s", key);
        v = dflt;
    } else if (rc == -2) {
        return model_fail(err, errlen, "metadata key %s has the wrong type or is out of range", key);
    }
    if (v < lo || v > hi) return model_fail(err, errlen, "%s = %u is out of range [%u, %u]", key, v, lo, hi);
    *out = (int32_t)v;
    return 0;
}

int model_hparam_f32(const gguf_file *g, const char *arch, const char *suffix, float dflt, float *out,
                      char *err, size_t errlen) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(g, key, out);
    if (rc == -1) *out = dflt;
    else if (rc == -2) return model_fail(err, errlen, "metadata key %s is not a float", key);
    if (!isfinite(*out) || *out <= 0) return model_fail(err, errlen, "%s = %g must be positive and finite", key, *out);
    return 0;
}

static int read_hparams(infer_model *m, char *err, size_t errlen) {
    const gguf_file *g = m->g;
    const char *a = m->arch_name;
    infer_model_info *I = &m->info;
    if (model_hparam(g, a, "embedding_length", 1, 0, 1, MAX_DIM, &I->n_embd, err, errlen) < 0 ||
        model_hparam(g, a, "block_count", 1, 0, 1, MAX_LAYERS, &I->n_layer, err, errlen) < 0 ||
        model_hparam(g, a, "feed_forward_length", 1, 0, 1, MAX_DIM, &I->n_ff, err, errlen) < 0 ||
        model_hparam(g, a, "attention.head_count", 1, 0, 1, 4096, &I->n_head, err, errlen) < 0 ||
        model_hparam(g, a, "context_length", 0, 2048, 1, 1u << 24, &I->n_ctx_train, err, errlen) < 0)
        return -1;
    if (model_hparam(g, a, "attention.head_count_kv", 0, (uint32_t)I->n_head, 1, (uint32_t)I->n_head, &I->n_head_kv,
               err, errlen) < 0)
        return -1;
    if (I->n_head % I->n_head_kv)
        return model_fail(err, errlen, "head count %d is not a multiple of the KV head count %d", I->n_head,
                    I->n_head_kv);
    /* Head dim: key_length when given (qwen3's q dim differs from n_embd),
     * else n_embd / n_head. */
    int32_t dflt_hd = I->n_embd / I->n_head;
    if (model_hparam(g, a, "attention.key_length", 0, (uint32_t)dflt_hd, 1, 65536, &I->head_dim, err, errlen) < 0)
        return -1;
    int32_t vlen;
    if (model_hparam(g, a, "attention.value_length", 0, (uint32_t)I->head_dim, 1, 65536, &vlen, err, errlen) < 0)
        return -1;
    if (vlen != I->head_dim)
        return model_fail(err, errlen, "value length %d differs from key length %d (not supported)", vlen, I->head_dim);
    if (I->head_dim % 2) return model_fail(err, errlen, "head dimension %d is odd", I->head_dim);
    if (model_hparam(g, a, "rope.dimension_count", 0, (uint32_t)I->head_dim, 2, (uint32_t)I->head_dim, &I->n_rot,
               err, errlen) < 0)
        return -1;
    if (I->n_rot % 2) return model_fail(err, errlen, "rope dimension %d is odd", I->n_rot);
    if (model_hparam_f32(g, a, "rope.freq_base", 10000.0f, &I->rope_base, err, errlen) < 0 ||
        model_hparam_f32(g, a, "attention.layer_norm_rms_epsilon", 1e-5f, &I->norm_eps, err, errlen) < 0)
        return -1;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a);
    const char *s;
    uint64_t len;
    if (gguf_get_str(g, key, &s, &len) == 0 && !(len == 4 && memcmp(s, "none", 4) == 0))
        return model_fail(err, errlen, "RoPE scaling '%.*s' is not supported", (int)(len < 32 ? len : 32), s);
    I->rope_neox = m->arch != ARCH_LLAMA;
    return 0;
}

/* Binds a 2-D weight and checks its shape is [cols, rows] in GGML order. */
int model_bind_weight(infer_model *m, const char *name, int64_t cols, int64_t rows, int optional, weight *w,
                       char *err, size_t errlen) {
    const gguf_tensor *t = gguf_find_tensor(m->g, name);
    if (!t) return optional ? 1 : model_fail(err, errlen, "missing tensor %s", name);
    if (t->n_dims > 2 || t->ne[0] != cols || t->ne[1] != rows)
        return model_fail(err, errlen, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", name,
                    (long long)t->ne[0], (long long)t->ne[1], (long long)cols, (long long)rows);
    /* The kernels read floats and fp16 scales in place; the GGUF alignment
     * (>= 32 unless a file says otherwise) guarantees this, so check it. */
    if ((uintptr_t)t->data % 4)
        return model_fail(err, errlen, "tensor %s is not 4-byte aligned in the file", name);
    w->type = t->type;
    w->data = t->data;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = quant_row_bytes(t->type, cols);
    return 0;
}

/* Copies a 1-D tensor of length n as f32 into *dst (from the arena). */
int model_bind_vec(infer_model *m, const char *name, int64_t n, int optional, float **arena, float **dst,
                    char *err, size_t errlen) {
    const gguf_tensor *t = gguf_find_tensor(m->g, name);
    *dst = NULL;
    if (!t) return optional ? 1 : model_fail(err, errlen, "missing tensor %s", name);
    if (t->n_dims != 1 || t->ne[0] != n)
        return model_fail(err, errlen, "tensor %s has %u dims and %lld values, expected 1 dim of %lld", name,
                    t->n_dims, (long long)t->ne[0], (long long)n);
    if ((uintptr_t)t->data % 4)
        return model_fail(err, errlen, "tensor %s is not 4-byte aligned in the file", name);
    if (!m->header_only) quant_dequant_row(t->type, t->data, *arena, n);
    *dst = *arena;
    *arena += n;
    return 0;
}

static int bind_all(infer_model *m, char *err, size_t errlen) {
    infer_model_info *I = &m->info;
    int64_t E = I->n_embd, V = I->n_vocab, F = I->n_ff;
    int64_t qd = (int64_t)I->n_head * I->head_dim, kvd = (int64_t)I->n_head_kv * I->head_dim;
    /* arena: per layer 2 norms + 3 biases + 2 head norms, plus output norm */
    size_t per_layer = (size_t)(2 * E + qd + 2 * kvd + 2 * I->head_dim);
    size_t arena_bytes = ((size_t)I->n_layer * per_layer + (size_t)E) * sizeof(float);
    m->f32_arena = ie_malloc(arena_bytes);
    m->layers = ie_calloc((size_t)I->n_layer, sizeof *m->layers);
    m->host_bytes = arena_bytes + (size_t)I->n_layer * sizeof *m->layers;
    if (!m->f32_arena || !m->layers) return model_fail(err, errlen, "out of memory");
    float *arena = m->f32_arena;
    if (model_bind_weight(m, "token_embd.weight", E, V, 0, &m->tok_embd, err, errlen) != 0) return -1;
    if (model_bind_vec(m, "output_norm.weight", E, 0, &arena, &m->output_norm, err, errlen) != 0) return -1;
    int rc = model_bind_weight(m, "output.weight", E, V, 1, &m->output, err, errlen);
    if (rc < 0) return -1;
    I->tied_embeddings = rc == 1;
    if (rc == 1) m->output = m->tok_embd;
    for (int il = 0; il < I->n_layer; il++) {
        layer_weights *L = &m->layers[il];
        char n[96];
#define W(field, suffix, cols, rows)                                                   \
    snprintf(n, sizeof n, "blk.%d.%s.weight", il, suffix);                             \
    if (model_bind_weight(m, n, cols, rows, 0, &L->field, err, errlen) != 0) return -1;
#define VEC(field, suffix, kind, len, opt)                                             \
    snprintf(n, sizeof n, "blk.%d.%s.%s", il, suffix, kind);                           \
    if (model_bind_vec(m, n, len, opt, &arena, &L->field, err, errlen) < 0) return -1;
        VEC(attn_norm, "attn_norm", "weight", E, 0)
        VEC(ffn_norm, "ffn_norm", "weight", E, 0)
        W(wq, "attn_q", E, qd)
        W(wk, "attn_k", E, kvd)
        W(wv, "attn_v", E, kvd)
        W(wo, "attn_output", qd, E)
        W(w_gate, "ffn_gate", E, F)
        W(w_up, "ffn_up", E, F)
        W(w_down, "ffn_down", F, E)
        /* biases: qwen2 has them; llama files sometimes do too */
        VEC(bq, "attn_q", "bias", qd, 1)
        VEC(bk, "attn_k", "bias", kvd, 1)
        VEC(bv, "attn_v", "bias", kvd, 1)
        VEC(q_norm, "attn_q_norm", "weight", I->head_dim, m->arch != ARCH_QWEN3)
        VEC(k_norm, "attn_k_norm", "weight", I->head_dim, m->arch != ARCH_QWEN3)
#undef W
#undef VEC
    }
    return 0;
}

static void summarize(infer_model *m) {
    infer_model_info *I = &m->info;
    uint64_t by_type[64] = {0};
    I->n_tensors = (uint32_t)gguf_n_tensors(m->g);
    for (uint64_t i = 0; i < gguf_n_tensors(m->g); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->g, i);
        uint64_t n = 1;
        for (int d = 0; d < GGUF_MAX_DIMS; d++) n *= (uint64_t)t->ne[d];
        I->n_params += n;
        I->weight_bytes += t->nbytes;
        if (t->type < 64) by_type[t->type] += t->nbytes;
    }
    uint32_t best = 0;
    for (uint32_t t = 1; t < 64; t++)
        if (by_type[t] > by_type[best]) best = t;
    I->ftype = quant_type_name(best);
    I->file_bytes = gguf_file_size(m->g);
}

/* Without the tokenizer (a header-only model), the vocabulary's size is
 * the length of its token list, which the real load checks against the
 * embedding matrix. */
static int header_vocab_size(infer_model *m, char *err, size_t errlen) {
    const gguf_kv *kv;
    if (gguf_get_arr(m->g, "tokenizer.ggml.tokens", GGUF_STRING, &kv) == 0 && kv->arr_n > 0 &&
        kv->arr_n <= INT32_MAX) {
        m->info.n_vocab = (int32_t)kv->arr_n;
        return 0;
    }
    const gguf_tensor *t = gguf_find_tensor(m->g, "token_embd.weight");
    if (!t || t->ne[1] > INT32_MAX) return model_fail(err, errlen, "no tokenizer.ggml.tokens and no token_embd.weight");
    m->info.n_vocab = (int32_t)t->ne[1];
    return 0;
}

int model_open(const char *path, int header_only, infer_model **out, char *err, size_t errlen) {
    *out = NULL;
    infer_model *m = ie_calloc(1, sizeof *m);
    if (!m) return model_fail(err, errlen, "out of memory");
    atomic_init(&m->refs, 1);
    m->header_only = header_only;
    if ((header_only ? gguf_open_header(path, &m->g, err, errlen) : gguf_open(path, &m->g, err, errlen)) < 0)
        goto bad;
    const char *s;
    uint64_t len;
    if (gguf_get_str(m->g, "general.architecture", &s, &len) < 0) {
        model_fail(err, errlen, "%s: missing general.architecture", path);
        goto bad;
    }
    if (len == 5 && memcmp(s, "llama", 5) == 0) m->arch = ARCH_LLAMA;
    else if (len == 5 && memcmp(s, "qwen2", 5) == 0) m->arch = ARCH_QWEN2;
    else if (len == 5 && memcmp(s, "qwen3", 5) == 0) m->arch = ARCH_QWEN3;
    else if (len == 4 && memcmp(s, "bert", 4) == 0) m->arch = ARCH_BERT;
    else if (len == 10 && memcmp(s, "nomic-bert", 10) == 0) m->arch = ARCH_NOMIC_BERT;
    else {
        model_fail(err, errlen,
                   "%s: architecture '%.*s' is not supported (llama, qwen2, qwen3, bert, nomic-bert are)", path,
                   (int)(len < 64 ? len : 64), s);
        goto bad;
    }
    m->is_encoder = m->arch == ARCH_BERT || m->arch == ARCH_NOMIC_BERT;
    m->info.is_encoder = m->is_encoder;
    snprintf(m->arch_name, sizeof m->arch_name, "%.*s", (int)len, s);
    m->info.arch = m->arch_name;
    if (gguf_get_str(m->g, "general.name", &s, &len) == 0)
        snprintf(m->name, sizeof m->name, "%.*s", (int)(len < sizeof m->name ? len : sizeof m->name - 1), s);
    m->info.name = m->name;
    char sub[256];
    if ((m->is_encoder ? encoder_read_hparams(m, sub, sizeof sub) : read_hparams(m, sub, sizeof sub)) < 0) {
        model_fail(err, errlen, "%s: %s", path, sub);
        goto bad;
    }
    if (header_only) {
        if (header_vocab_size(m, sub, sizeof sub) < 0) {
            model_fail(err, errlen, "%s: tokenizer: %s", path, sub);
            goto bad;
        }
    } else if (vocab_from_gguf(m->g, &m->vocab, sub, sizeof sub) < 0) {
        model_fail(err, errlen, "%s: tokenizer: %s", path, sub);
        goto bad;
    } else {
        m->info.n_vocab = infer_vocab_size(m->vocab);
    }
    if ((m->is_encoder ? encoder_bind(m, sub, sizeof sub) : bind_all(m, sub, sizeof sub)) < 0) {
        model_fail(err, errlen, "%s: %s", path, sub);
        goto bad;
    }
    summarize(m);
    *out = m;
    return 0;
bad:
    m->refs = 1;
    infer_model_unref(m);
    return -1;
}

int infer_model_load(const char *path, infer_model **out, char *err, size_t errlen) {
    return model_open(path, 0, out, err, errlen);
}

infer_model *infer_model_ref(infer_model *m) {
    atomic_fetch_add(&m->refs, 1);
    return m;
}

void infer_model_unref(infer_model *m) {
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
    infer_vocab_free(m->vocab);
    gguf_close(m->g);
    free(m->layers);
    free(m->enc.layers);
    free(m->f32_arena);
    free(m);
}

const infer_model_info *infer_model_get_info(const infer_model *m) { return &m->info; }
const infer_vocab *infer_model_vocab(const infer_model *m) { return m->vocab; }

size_t infer_model_type_summary(const infer_model *m, char *buf, size_t cap) {
    uint32_t count[64] = {0};
    for (uint64_t i = 0; i < gguf_n_tensors(m->g); i++) {
        const gguf_tensor *t = gguf_tensor_at(m->g, i);
        if (t->type < 64) count[t->type]++;
    }
    size_t n = 0;
    if (cap) buf[0] = '\0';
    for (uint32_t t = 0; t < 64; t++) {
        if (!count[t]) continue;
        int w = snprintf(n < cap ? buf + n : NULL, n < cap ? cap - n : 0, "%s%s:%u", n ? " " : "",
                         quant_type_name(t), count[t]);
        if (w > 0) n += (size_t)w;
    }
    return n;
}
