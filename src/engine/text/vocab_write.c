/* vocab_write.c - an infer_vocab back to GGUF tokenizer metadata.
 *
 * tools/tokjson2gguf reads a Hugging Face tokenizer.json and writes a
 * vocab-only GGUF with what llama.cpp and our own loader read; writing from
 * the loaded vocab (rather than from the JSON) means the file holds exactly
 * what the engine tokenizes with.  Merges come out in rank order, each as
 * "left right" in the byte alphabet. */
#include "text/vocab.h"

#include "gguf/gguf_write.h"
#include "kernels/ialloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t rank;
    uint64_t key;
} merge_ent;

static int cmp_rank(const void *a, const void *b) {
    uint32_t x = ((const merge_ent *)a)->rank, y = ((const merge_ent *)b)->rank;
    return x < y ? -1 : x > y;
}

static int write_merges(const infer_vocab *v, gguf_writer *w, char *err, size_t errlen) {
    uint64_t n = 0;
    for (uint64_t i = 0; i <= v->merge_mask; i++)
        if (v->merges[i].rank != UINT32_MAX) n++;
    merge_ent *m = ie_malloc(sizeof *m * (n ? n : 1));
    char **strs = ie_malloc(sizeof *strs * (n ? n : 1));
    char *blob = NULL;
    int rc = -1;
    if (!m || !strs) goto oom;
    uint64_t k = 0, bytes = 0;
    for (uint64_t i = 0; i <= v->merge_mask; i++) {
        if (v->merges[i].rank == UINT32_MAX) continue;
        m[k].rank = v->merges[i].rank;
        m[k].key = v->merges[i].key;
        int32_t l = (int32_t)(m[k].key >> 32), r = (int32_t)(uint32_t)m[k].key;
        bytes += v->len[l] + v->len[r] + 2;
        k++;
    }
    qsort(m, n, sizeof *m, cmp_rank);
    blob = ie_malloc(bytes ? bytes : 1);
    if (!blob) goto oom;
    char *p = blob;
    for (uint64_t i = 0; i < n; i++) {
        int32_t l = (int32_t)(m[i].key >> 32), r = (int32_t)(uint32_t)m[i].key;
        strs[i] = p;
        memcpy(p, v->blob + v->off[l], v->len[l]);
        p += v->len[l];
        *p++ = ' ';
        memcpy(p, v->blob + v->off[r], v->len[r]);
        p += v->len[r];
        *p++ = 0;
    }
    rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)strs, NULL, n);
    if (rc < 0) snprintf(err, errlen, "%s", gguf_writer_error(w));
    goto done;
oom:
    snprintf(err, errlen, "vocab: out of memory");
done:
    free(m);
    free(strs);
    free(blob);
    return rc;
}

int vocab_to_gguf(const infer_vocab *v, gguf_writer *w, char *err, size_t errlen) {
    static const char *const models[] = {"", "llama", "gpt2", "bert"};
    if (!v || !w || v->kind < 1 || v->kind > 3) {
        snprintf(err, errlen, "vocab: nothing to write");
        return -1;
    }
    const char **toks = ie_malloc(sizeof *toks * (size_t)v->n);
    uint64_t *lens = ie_malloc(sizeof *lens * (size_t)v->n);
    int32_t *types = ie_malloc(sizeof *types * (size_t)v->n);
    if (!toks || !lens || !types) {
        free(toks);
        free(lens);
        free(types);
        snprintf(err, errlen, "vocab: out of memory");
        return -1;
    }
    for (int32_t i = 0; i < v->n; i++) {
        toks[i] = v->blob + v->off[i];
        lens[i] = v->len[i];
        types[i] = v->type[i];
    }
    int bad = 0;
    bad |= gguf_writer_set_str(w, "tokenizer.ggml.model", models[v->kind]);
    if (v->kind == VOCAB_BPE) bad |= gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre_name);
    bad |= gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, lens, (uint64_t)v->n);
    if (v->kind == VOCAB_SPM) bad |= gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, v->score, (uint64_t)v->n);
    bad |= gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)v->n);
    free(toks);
    free(lens);
    free(types);
    const struct { const char *key; int32_t id; } ids[] = {
        {"tokenizer.ggml.bos_token_id", v->bos}, {"tokenizer.ggml.eos_token_id", v->eos},
        {"tokenizer.ggml.unknown_token_id", v->unk}, {"tokenizer.ggml.seperator_token_id", v->sep},
        {"tokenizer.ggml.padding_token_id", v->pad}, {"tokenizer.ggml.cls_token_id", v->cls},
        {"tokenizer.ggml.mask_token_id", v->mask}, {"tokenizer.ggml.eot_token_id", v->eot},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id >= 0) bad |= gguf_writer_set_u32(w, ids[i].key, (uint32_t)ids[i].id);
    bad |= gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos);
    bad |= gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos);
    if (v->kind == VOCAB_SPM) bad |= gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix);
    if (v->kind == VOCAB_WPM) {
        bad |= gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.lowercase", v->wpm_lowercase);
        bad |= gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.strip_accents", v->wpm_strip_accents);
    }
    if (v->nfc) bad |= gguf_writer_set_bool(w, "inferkv.tokenizer.nfc", 1);
    if (v->js_text) bad |= gguf_writer_set_bool(w, "inferkv.tokenizer.js_text", 1);
    if (bad) {
        snprintf(err, errlen, "vocab: %s", gguf_writer_error(w));
        return -1;
    }
    if (v->kind == VOCAB_BPE) return write_merges(v, w, err, errlen);
    return 0;
}
