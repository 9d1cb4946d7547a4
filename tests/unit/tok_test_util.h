/* tok_test_util.h - helpers shared by the tokenizer unit tests: reading
 * files, the llama.cpp .inp/.out vector format, and building small GGUF
 * vocabularies in memory with gguf_write.h. */
#ifndef TOK_TEST_UTIL_H
#define TOK_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "infer.h"
#include "text/vocab.h"
int vocab_from_json(const char *buf, size_t len, infer_vocab **out, char *err, size_t errlen);

static inline char *tt_read(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = 0;
    if (len) *len = n;
    return b;
}

static inline const char *tt_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/models/%s", test_shared_dir(), rel);
    return buf;
}

/* Runs the llama.cpp vectors of vocab NAME (ggml-vocab-NAME.gguf(.inp|.out)):
 * returns the number of strings whose ids match, sets *total; -1 if the files
 * are missing.  Mismatches are printed. */
static inline int tt_run_vectors_with(const char *name, const char *vocab_path, int *total) {
    char p[1024], pin[1100], pout[1100];
    snprintf(p, sizeof p, "%s/models/ggml-org_llama.cpp/ggml-vocab-%s.gguf", test_shared_dir(), name);
    snprintf(pin, sizeof pin, "%s.inp", p);
    snprintf(pout, sizeof pout, "%s.out", p);
    if (vocab_path) snprintf(p, sizeof p, "%s", vocab_path);
    size_t inl, outl;
    char *in = tt_read(pin, &inl), *out = tt_read(pout, &outl);
    infer_vocab *v = NULL;
    char err[256];
    if (!in || !out || infer_vocab_load(p, &v, err, sizeof err) < 0) {
        free(in);
        free(out);
        return -1;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int ok = 0, n = 0;
    char *s = in, *line = out;
    int32_t ids[2048];
    for (;;) {
        char *e = strstr(s, sep);
        if (!e) break;
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        int64_t k = infer_tokenize(v, s, (size_t)(e - s), 0, ids, 2048, err, sizeof err);
        int match = k >= 0 && k <= 2048;
        char *q = line;
        for (int64_t i = 0; match && i < k; i++) {
            char *end;
            long x = strtol(q, &end, 10);
            if (end == q || x != ids[i]) match = 0;
            q = end;
        }
        while (match && *q == ' ') q++;
        if (match && *q) match = 0;
        if (match) ok++;
        else printf("    %s #%d: expected [%s], got %lld ids\n", name, n, line, (long long)k);
        n++;
        s = e + sizeof sep - 1;
        line = nl + 1;
    }
    infer_vocab_free(v);
    free(in);
    free(out);
    *total = n;
    return ok;
}

static inline int tt_run_vectors(const char *name, int *total) { return tt_run_vectors_with(name, NULL, total); }

/* Where scripts/fetch-tokenizers.sh puts the npm tokenizers. */
static inline const char *tt_tokjson(char *buf, size_t cap, const char *name) {
    const char *c = getenv("INFERKV_TOKCACHE");
    snprintf(buf, cap, "%s/%s/package/models/tokenizer.json", c && *c ? c : ".cache/tokenizers", name);
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* Writes a GGUF into memory; returns a malloc'd buffer. */
static inline void *tt_gguf_mem(gguf_writer *w, size_t *len) {
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    char err[256];
    if (!f) return NULL;
    int rc = gguf_writer_begin(w, f, err, sizeof err);
    if (rc == 0) rc = gguf_writer_finish(w, NULL, err, sizeof err);
    fclose(f);
    if (rc != 0) {
        printf("    gguf write failed: %s\n", err);
        free(buf);
        return NULL;
    }
    *len = sz;
    return buf;
}

/* Loads a vocab from a writer's GGUF: the return of vocab_from_gguf
 * (-99 if the GGUF itself could not be made or opened). */
static inline int tt_vocab_from_writer(gguf_writer *w, infer_vocab **v, char *err, size_t errlen) {
    size_t len;
    void *buf = tt_gguf_mem(w, &len);
    gguf_file *g;
    *v = NULL;
    if (!buf) return -99;
    if (gguf_open_mem(buf, len, &g, err, errlen) < 0) {
        free(buf);
        return -99;
    }
    int rc = vocab_from_gguf(g, v, err, errlen);
    gguf_close(g);
    free(buf);
    return rc;
}

#endif
