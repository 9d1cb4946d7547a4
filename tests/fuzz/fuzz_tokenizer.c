/* fuzz_tokenizer.c - libFuzzer target for the tokenizers.
 *
 * The first input byte picks what is fuzzed, the rest is the data:
 *   0-2  tokenize with a SentencePiece, byte-level BPE or WordPiece vocab
 *        (flags from the second byte), then detokenize whole and streamed;
 *        byte-level BPE with GPT-2's vocab must give the input back
 *        exactly, and the stream must give what the whole call gives
 *   3    parse the data as a tokenizer.json
 *   4    parse the data as chat messages and render them with each template
 * Vocabularies come from $INFERKV_SHARED (or ../shared) when present, else
 * small ones are built in memory, so the target runs anywhere. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "infer.h"
#include "text/vocab.h"

int vocab_from_json(const char *buf, size_t len, infer_vocab **out, char *err, size_t errlen);

static infer_vocab *vocabs[3];
static int bpe_lossless; /* vocabs[1] has a token for every byte */

static infer_vocab *load_shared(const char *name) {
    const char *dir = getenv("INFERKV_SHARED");
    char p[1024], err[256];
    snprintf(p, sizeof p, "%s/models/ggml-org_llama.cpp/ggml-vocab-%s.gguf", dir && *dir ? dir : "../shared", name);
    infer_vocab *v = NULL;
    return infer_vocab_load(p, &v, err, sizeof err) == 0 ? v : NULL;
}

/* A small vocab of the given model built in memory: the 256 byte tokens
 * (SentencePiece <0xXX>, or the GPT-2 byte alphabet), a few merges/words. */
static infer_vocab *synthetic(const char *model) {
    gguf_writer *w = gguf_writer_new();
    if (!w) return NULL;
    const char *toks[300];
    char bytes[256][8];
    int32_t types[300];
    int n = 0;
    if (!strcmp(model, "bert")) {
        const char *words[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xe2\x96\x81hello", "\xe2\x96\x81world", "!", "\xe2\x96\x81!", "lo", "\xe2\x96\x81he"};
        for (int i = 0; i < 10; i++) { toks[n] = words[i]; types[n++] = i < 4 ? 3 : 1; }
        types[1] = 2;
    } else {
        for (int b = 0; b < 256; b++) {
            if (!strcmp(model, "llama")) snprintf(bytes[b], 8, "<0x%02X>", b);
            else { /* GPT-2 byte alphabet */
                int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
                static int next = 256;
                unsigned cp = printable ? (unsigned)b : (unsigned)next++;
                if (cp < 0x80) { bytes[b][0] = (char)cp; bytes[b][1] = 0; }
                else { bytes[b][0] = (char)(0xC0 | (cp >> 6)); bytes[b][1] = (char)(0x80 | (cp & 0x3F)); bytes[b][2] = 0; }
            }
            toks[n] = bytes[b];
            types[n++] = !strcmp(model, "llama") ? 6 : 1;
        }
        const char *extra[] = {"\xe2\x96\x81", "he", "ll", "hell", "<|special|>"};
        for (int i = 0; i < 5; i++) { toks[n] = extra[i]; types[n++] = i == 4 ? 3 : 1; }
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", model);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, (uint64_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)n);
    if (!strcmp(model, "gpt2")) {
        const char *merges[] = {"h e", "l l", "he ll"};
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
        gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, NULL, 3);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    char err[256];
    infer_vocab *v = NULL;
    gguf_file *g = NULL;
    if (f && gguf_writer_begin(w, f, err, sizeof err) == 0 && gguf_writer_finish(w, NULL, err, sizeof err) == 0) {
        fclose(f);
        f = NULL;
        if (gguf_open_mem(buf, len, &g, err, sizeof err) == 0) {
            if (vocab_from_gguf(g, &v, err, sizeof err) < 0) v = NULL;
            gguf_close(g);
        }
    }
    if (f) fclose(f);
    free(buf);
    gguf_writer_free(w);
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    vocabs[0] = load_shared("llama-spm");
    vocabs[1] = load_shared("gpt-2");
    vocabs[2] = load_shared("bert-bge");
    bpe_lossless = vocabs[1] != NULL;
    if (!vocabs[0]) vocabs[0] = synthetic("llama");
    if (!vocabs[1]) vocabs[1] = synthetic("gpt2");
    if (!vocabs[2]) vocabs[2] = synthetic("bert");
    if (!vocabs[1]) abort();
    if (!bpe_lossless) bpe_lossless = 1; /* the synthetic one has every byte too */
    return 0;
}

static void fuzz_tokenize(int which, unsigned flags, const char *s, size_t len) {
    infer_vocab *v = vocabs[which];
    if (!v) return;
    char err[256];
    /* At most three ids per input byte, plus BOS/EOS: SentencePiece escapes
     * a space as U+2581 (3 bytes), and after an invalid UTF-8 lead byte those
     * bytes can all fall back to byte tokens. */
    size_t cap = 3 * len + 8;
    int32_t *ids = malloc(sizeof(int32_t) * cap);
    if (!ids) return;
    int64_t n = infer_tokenize(v, s, len, flags & 3u, ids, cap, err, sizeof err);
    if (n < 0 || (size_t)n > cap) abort();
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= infer_vocab_size(v)) abort();
    int64_t need = infer_detokenize(v, ids, (size_t)n, flags >> 2 & 3u, NULL, 0, err, sizeof err);
    if (need < 0) abort();
    char *out = malloc((size_t)need + 1);
    if (out && infer_detokenize(v, ids, (size_t)n, flags >> 2 & 3u, out, (size_t)need, err, sizeof err) != need) abort();
    if (out && which == 1 && bpe_lossless && !(flags & 3u) && !(flags & 0xC) &&
        ((size_t)need != len || memcmp(out, s, len) != 0))
        abort(); /* byte-level BPE is lossless */
    /* streaming (no BOS skipping, no special text) equals the whole call */
    infer_detok *d = infer_detok_create(v, 0);
    char *st = malloc((size_t)need + 512);
    size_t sn = 0;
    if (d && st && out) {
        for (int64_t i = 0; i < n; i++) {
            char piece[1024];
            int k = infer_detok_push(d, ids[i], piece, sizeof piece);
            if (k < 0) abort();
            if (sn + (size_t)k > (size_t)need + 256) abort();
            memcpy(st + sn, piece, (size_t)k);
            sn += (size_t)k;
        }
        char piece[16];
        int k = infer_detok_flush(d, piece, sizeof piece);
        if (k < 0) abort();
        memcpy(st + sn, piece, (size_t)k);
        sn += (size_t)k;
        int64_t plain = infer_detokenize(v, ids, (size_t)n, 0, NULL, 0, err, sizeof err);
        char *p2 = malloc((size_t)plain + 1);
        if (p2 && infer_detokenize(v, ids, (size_t)n, 0, p2, (size_t)plain, err, sizeof err) == plain &&
            ((size_t)plain != sn || memcmp(p2, st, sn) != 0) && infer_vocab_kind(v)[0] == 'g')
            abort();
        free(p2);
    }
    infer_detok_free(d);
    free(st);
    free(out);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    unsigned mode = data[0] % 5, flags = data[1];
    const char *s = (const char *)data + 2;
    size_t len = size - 2;
    char err[256];
    if (mode <= 2) {
        fuzz_tokenize((int)mode, flags, s, len);
    } else if (mode == 3) {
        infer_vocab *v = NULL;
        if (vocab_from_json(s, len, &v, err, sizeof err) == 0) {
            int32_t ids[64];
            infer_tokenize(v, "hello <|x|> world", 17, INFER_TOK_PARSE_SPECIAL, ids, 64, err, sizeof err);
            infer_vocab_free(v);
        }
    } else {
        infer_chat_msg *m = NULL;
        size_t n = 0;
        if (infer_chat_parse_json(s, len, &m, &n, err, sizeof err) == 0) {
            for (int t = INFER_CHAT_RAW; t <= INFER_CHAT_QWEN25; t++) {
                int64_t need = infer_chat_format(t, m, n, flags & 3u, NULL, 0, err, sizeof err);
                if (need < 0) continue;
                char *out = malloc((size_t)need + 1);
                if (out && infer_chat_format(t, m, n, flags & 3u, out, (size_t)need + 1, err, sizeof err) != need) abort();
                free(out);
            }
            free(m);
        }
    }
    return 0;
}
