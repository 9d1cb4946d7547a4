/* tok_json.c - loading a Hugging Face tokenizer.json as an infer_vocab.
 *
 * Qwen's and Llama 3's tokenizers are published as tokenizer.json; reading
 * them directly means no conversion step stands between a download and the
 * engine.  json.c parses the file into a tree, then the byte-level BPE
 * parts are picked out:
 * model.vocab, model.merges (either "a b" strings or ["a", "b"] pairs),
 * added_tokens, the normalizer (NFC or none) and the pre-tokenizer, which
 * must be one this engine knows (its Split regex is compared with the
 * patterns of tok_bpe.c; anything else is refused). */
#include "text/json.h"
#include "text/vocab.h"
#include "kernels/ialloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the tokenizer ------------------------------------------------------------- */

#define HF_QWEN2 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define HF_LLAMA3 "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* The pre-tokenizer name (as tokenizer.ggml.pre spells it) of a tokenizer.json. */
static const char *detect_pre(const jdoc *d, const jnode *pre, char *err, size_t errlen) {
    if (!pre || pre->type != J_OBJ) {
        snprintf(err, errlen, "vocab: tokenizer.json has no pre_tokenizer");
        return NULL;
    }
    const jnode *list = pre;
    uint32_t n = 1, idx = 0;
    const jnode *type = json_get(d, pre, "type");
    if (json_str_is(d, type, "Sequence")) {
        list = json_get(d, pre, "pretokenizers");
        if (!list || list->type != J_ARR) {
            snprintf(err, errlen, "vocab: tokenizer.json: bad pre_tokenizer sequence");
            return NULL;
        }
        n = list->count;
        idx = list->first;
    }
    const char *found = NULL;
    int byte_level = 0;
    for (uint32_t i = 0; i < n; i++) {
        const jnode *p = list == pre ? pre : &d->nodes[idx];
        if (list != pre) idx = p->next;
        const jnode *t = json_get(d, p, "type");
        if (json_str_is(d, t, "ByteLevel")) {
            byte_level = 1;
            const jnode *ur = json_get(d, p, "use_regex");
            if (ur && ur->type == J_TRUE) {
                if (found) goto unknown;
                found = "gpt-2";
            }
        } else if (json_str_is(d, t, "Split")) {
            const jnode *pat = json_get(d, json_get(d, p, "pattern"), "Regex");
            const jnode *beh = json_get(d, p, "behavior");
            if (found || !json_str_is(d, beh, "Isolated")) goto unknown;
            if (json_str_is(d, pat, HF_QWEN2)) found = "qwen2";
            else if (json_str_is(d, pat, HF_LLAMA3)) found = "llama-bpe";
            else goto unknown;
        } else {
            goto unknown;
        }
    }
    if (found && byte_level) return found;
unknown:
    snprintf(err, errlen, "vocab: tokenizer.json: unsupported pre-tokenizer (supported: byte-level BPE with the GPT-2, Llama 3 or Qwen2 split)");
    return NULL;
}

static int json_fail(char *err, size_t errlen, const char *msg) {
    snprintf(err, errlen, "vocab: tokenizer.json: %s", msg);
    return -1;
}

static int build(const jdoc *d, infer_vocab **out, char *err, size_t errlen) {
    const jnode *root = &d->nodes[0];
    const jnode *model = json_get(d, root, "model");
    if (!model || !json_str_is(d, json_get(d, model, "type"), "BPE"))
        return json_fail(err, errlen, "model.type is not \"BPE\" (only byte-level BPE tokenizer.json files are supported)");
    const jnode *vocab = json_get(d, model, "vocab"), *merges = json_get(d, model, "merges");
    const jnode *added = json_get(d, root, "added_tokens");
    if (!vocab || vocab->type != J_OBJ) return json_fail(err, errlen, "model.vocab is not an object");
    if (!merges || merges->type != J_ARR) return json_fail(err, errlen, "model.merges is not an array");
    if (added && added->type != J_ARR && added->type != J_NULL) return json_fail(err, errlen, "added_tokens is not an array");
    const char *pre = detect_pre(d, json_get(d, root, "pre_tokenizer"), err, errlen);
    if (!pre) return -1;
    const jnode *norm = json_get(d, root, "normalizer");
    int nfc = 0;
    if (norm && norm->type != J_NULL) {
        if (!json_str_is(d, json_get(d, norm, "type"), "NFC")) return json_fail(err, errlen, "unsupported normalizer (supported: none, NFC)");
        nfc = 1;
    }

    /* Ids: the vocab's, then the added tokens' (which may repeat an id). */
    double max_id = -1;
    uint32_t k = vocab->first;
    for (uint32_t i = 0; i < vocab->count; i++) {
        const jnode *kn = &d->nodes[k], *vn = &d->nodes[kn->next];
        if (vn->type != J_NUM || vn->num < 0 || vn->num >= (1 << 24) || vn->num != (double)(int64_t)vn->num)
            return json_fail(err, errlen, "a vocab id is not an integer in [0, 2^24)");
        if (vn->num > max_id) max_id = vn->num;
        k = vn->next;
    }
    uint32_t a = added && added->type == J_ARR ? added->first : 0, n_added = added && added->type == J_ARR ? added->count : 0;
    for (uint32_t i = 0; i < n_added; i++) {
        const jnode *t = &d->nodes[a], *id = json_get(d, t, "id"), *content = json_get(d, t, "content");
        if (!id || id->type != J_NUM || id->num < 0 || id->num >= (1 << 24) || !content || content->type != J_STR)
            return json_fail(err, errlen, "an added token has no valid id or content");
        if (id->num > max_id) max_id = id->num;
        a = t->next;
    }
    if (max_id < 0) return json_fail(err, errlen, "empty vocabulary");
    /* Real vocabularies number their tokens densely; a sparse id would make
     * a tiny file allocate for millions of tokens. */
    if (max_id >= (double)vocab->count + (double)n_added + 65536.0)
        return json_fail(err, errlen, "token ids are far from dense");
    int32_t n = (int32_t)max_id + 1;
    const jnode **text = ie_calloc((size_t)n, sizeof *text);
    uint8_t *types = ie_calloc((size_t)n, 1);
    if (!text || !types) {
        free(text);
        free(types);
        return json_fail(err, errlen, "out of memory");
    }
    int rc = -1;
    infer_vocab *v = NULL;
    uint64_t bytes = 0;
    k = vocab->first;
    for (uint32_t i = 0; i < vocab->count; i++) {
        const jnode *kn = &d->nodes[k], *vn = &d->nodes[kn->next];
        int32_t id = (int32_t)vn->num;
        if (text[id]) {
            json_fail(err, errlen, "two vocab entries share an id");
            goto done;
        }
        text[id] = kn;
        types[id] = TT_NORMAL;
        k = vn->next;
    }
    a = n_added ? added->first : 0;
    for (uint32_t i = 0; i < n_added; i++) {
        const jnode *t = &d->nodes[a];
        int32_t id = (int32_t)json_get(d, t, "id")->num;
        const jnode *sp = json_get(d, t, "special");
        text[id] = json_get(d, t, "content");
        types[id] = sp && sp->type == J_TRUE ? TT_CONTROL : TT_USER_DEFINED;
        a = t->next;
    }
    for (int32_t i = 0; i < n; i++) {
        if (text[i] && text[i]->len > 65536) {
            json_fail(err, errlen, "a token is longer than 64 KiB");
            goto done;
        }
        bytes += text[i] ? text[i]->len : 0;
    }
    v = vocab_alloc(VOCAB_BPE, n, bytes, err, errlen);
    if (!v) goto done;
    uint32_t pos = 0;
    for (int32_t i = 0; i < n; i++) {
        if (text[i]) vocab_set_text(v, i, d->arena + text[i]->off, text[i]->len, &pos);
        else vocab_set_text(v, i, "", 0, &pos);
        v->type[i] = text[i] ? types[i] : TT_UNUSED;
    }
    v->nfc = nfc;
    v->js_text = 1; /* a tokenizer.json's reference here is the JavaScript library */
    if (bpe_setup_pre(v, pre, strlen(pre), err, errlen) < 0) goto done;
    const jnode *im = json_get(d, model, "ignore_merges");
    if (im) v->ignore_merges = im->type == J_TRUE;
    if (bpe_merges_alloc(v, merges->count) < 0) {
        json_fail(err, errlen, "out of memory");
        goto done;
    }
    /* Special ids by the texts of the families we know. */
    static const char *const bos_texts[] = {"<|begin_of_text|>", "<s>", NULL};
    static const char *const eos_texts[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", NULL};
    if (vocab_finish(v, err, errlen) < 0) goto done;
    for (int i = 0; bos_texts[i] && v->bos < 0; i++) v->bos = vocab_find(v, bos_texts[i], strlen(bos_texts[i]));
    for (int i = 0; eos_texts[i] && v->eos < 0; i++) v->eos = vocab_find(v, eos_texts[i], strlen(eos_texts[i]));
    v->eot = vocab_find(v, "<|eot_id|>", 10);
    if (v->eot < 0) v->eot = vocab_find(v, "<|im_end|>", 10);
    if (v->eot >= 0) v->eog[v->eot] = 1;
    if (v->eos >= 0) v->eog[v->eos] = 1;
    v->add_bos = v->bos >= 0 && strcmp(pre, "llama-bpe") == 0;
    char *scratch = ie_malloc(2 * (size_t)v->max_len + 2);
    if (!scratch) {
        json_fail(err, errlen, "out of memory");
        goto done;
    }
    uint32_t m = merges->first;
    for (uint32_t i = 0; i < merges->count; i++) {
        const jnode *x = &d->nodes[m];
        m = x->next;
        const char *l, *r;
        size_t ll, rl;
        if (x->type == J_STR) {
            const char *s = d->arena + x->off;
            const char *sp = x->len > 1 ? memchr(s + 1, ' ', x->len - 1) : NULL;
            if (!sp) goto bad_merge;
            l = s;
            ll = (size_t)(sp - s);
            r = sp + 1;
            rl = x->len - ll - 1;
        } else if (x->type == J_ARR && x->count == 2) {
            const jnode *p0 = &d->nodes[x->first], *p1 = &d->nodes[p0->next];
            if (p0->type != J_STR || p1->type != J_STR) goto bad_merge;
            l = d->arena + p0->off;
            ll = p0->len;
            r = d->arena + p1->off;
            rl = p1->len;
        } else {
            goto bad_merge;
        }
        if (bpe_add_merge(v, l, ll, r, rl, i, scratch) < 0) goto bad_merge;
        continue;
    bad_merge:
        free(scratch);
        snprintf(err, errlen, "vocab: tokenizer.json: merge %u is malformed", i);
        goto done;
    }
    free(scratch);
    *out = v;
    v = NULL;
    rc = 0;
done:
    infer_vocab_free(v);
    free(text);
    free(types);
    return rc;
}

int vocab_from_json(const char *buf, size_t len, infer_vocab **out, char *err, size_t errlen) {
    *out = NULL;
    jdoc d;
    if (json_parse(buf, len, &d, err, errlen) < 0) return -1;
    int rc = d.nodes[0].type == J_OBJ ? build(&d, out, err, errlen)
                                      : json_fail(err, errlen, "the document is not an object");
    json_free(&d);
    return rc;
}

int vocab_from_json_file(const char *path, infer_vocab **out, char *err, size_t errlen) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "vocab: cannot open %s", path);
        return -1;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? cap * 2 : (1u << 20);
            if (nc > ((size_t)1 << 31)) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "vocab: %s is too large", path);
                return -1;
            }
            char *nb = ie_realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "vocab: out of memory");
                return -1;
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "vocab: read error on %s", path);
        return -1;
    }
    int rc = vocab_from_json(buf, n, out, err, errlen);
    free(buf);
    return rc;
}
