/* tokjson2gguf.c - converts a Hugging Face tokenizer.json into a vocab-only
 * GGUF (no tensors) with the tokenizer.ggml.* metadata llama.cpp and
 * libinfer read.
 *
 *   tokjson2gguf tokenizer.json out.gguf [--name NAME] [--arch ARCH]
 *
 * The tokenizer is loaded with libinfer's own reader first, so an
 * unsupported file (unknown pre-tokenizer, another model type) is refused
 * here with the loader's message, and the GGUF holds exactly the tokenizer
 * the engine runs.  The output is written to a temporary file and renamed,
 * so a failed conversion never leaves a truncated GGUF behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_write.h"
#include "infer.h"
#include "text/vocab.h"

static int usage(void) {
    fprintf(stderr, "usage: tokjson2gguf TOKENIZER.json OUT.gguf [--name NAME] [--arch ARCH]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *name = NULL, *arch = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--arch") && i + 1 < argc) arch = argv[++i];
        else if (argv[i][0] == '-') return usage();
        else if (!in) in = argv[i];
        else if (!out) out = argv[i];
        else return usage();
    }
    if (!in || !out) return usage();
    char err[512] = "";
    infer_vocab *v;
    if (infer_vocab_load(in, &v, err, sizeof err) < 0) {
        fprintf(stderr, "tokjson2gguf: %s\n", err);
        return 1;
    }
    if (!arch) arch = "llama";
    gguf_writer *w = gguf_writer_new();
    int rc = 1;
    char tmp[4096];
    FILE *f = NULL;
    if (!w) {
        fprintf(stderr, "tokjson2gguf: out of memory\n");
        goto done;
    }
    gguf_writer_set_str(w, "general.architecture", arch);
    gguf_writer_set_str(w, "general.name", name ? name : "vocab");
    if (vocab_to_gguf(v, w, err, sizeof err) < 0) {
        fprintf(stderr, "tokjson2gguf: %s\n", err);
        goto done;
    }
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp) {
        fprintf(stderr, "tokjson2gguf: output path too long\n");
        goto done;
    }
    f = fopen(tmp, "wb");
    if (!f) {
        perror(tmp);
        goto done;
    }
    uint64_t size = 0;
    if (gguf_writer_begin(w, f, err, sizeof err) < 0 || gguf_writer_finish(w, &size, err, sizeof err) < 0) {
        fprintf(stderr, "tokjson2gguf: %s\n", err);
        fclose(f);
        remove(tmp);
        goto done;
    }
    if (fclose(f) != 0 || rename(tmp, out) != 0) {
        perror(out);
        remove(tmp);
        goto done;
    }
    printf("%s: %d tokens (%s), %llu bytes\n", out, infer_vocab_size(v), infer_vocab_kind(v), (unsigned long long)size);
    rc = 0;
done:
    gguf_writer_free(w);
    infer_vocab_free(v);
    return rc;
}
