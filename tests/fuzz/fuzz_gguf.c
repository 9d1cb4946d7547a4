/* fuzz_gguf.c - libFuzzer target for the GGUF reader and everything that
 * reads a model file's header: metadata getters, the vocab loader and the
 * model loader (hyper-parameters, tensor binding and shape checks).
 * Whatever the bytes, loading must either succeed or fail with a message:
 * no crash, no read outside the buffer, no leak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "infer.h"
#include "text/vocab.h"

static void walk(const gguf_file *g) {
    volatile uint64_t sink = 0;
    for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        uint32_t u;
        int64_t v;
        float f;
        int b;
        const char *s;
        uint64_t len;
        sink += (uint64_t)gguf_get_u32(g, kv->key, &u) + (uint64_t)gguf_get_i64(g, kv->key, &v);
        sink += (uint64_t)gguf_get_f32(g, kv->key, &f) + (uint64_t)gguf_get_bool(g, kv->key, &b);
        if (gguf_get_str(g, kv->key, &s, &len) == 0 && len) sink += (uint8_t)s[len - 1];
        if (kv->type == GGUF_ARRAY && kv->arr_n) {
            uint64_t last = kv->arr_n - 1;
            if (kv->arr_type == GGUF_STRING) {
                gguf_arr_str(kv, last, &s, &len);
                if (len) sink += (uint8_t)s[len - 1];
            } else if (kv->arr_type == GGUF_FLOAT32) {
                sink += (uint64_t)gguf_arr_f32(kv, last);
            } else {
                sink += (uint64_t)gguf_arr_int(kv, last);
            }
        }
    }
    for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        if (t->nbytes) sink += ((const uint8_t *)t->data)[t->nbytes - 1];
    }
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    gguf_file *g;
    if (gguf_open_mem(data, size, &g, err, sizeof err) == 0) {
        walk(g);
        infer_vocab *v;
        if (vocab_from_gguf(g, &v, err, sizeof err) == 0) infer_vocab_free(v);
        gguf_close(g);
    }
    /* The model loader takes a path: give it the bytes through a memfd. */
    int fd = memfd_create("fuzz-gguf", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        infer_model *m;
        if (infer_model_load(path, &m, err, sizeof err) == 0) infer_model_unref(m);
    }
    close(fd);
    return 0;
}
