/* mem.c - the engine's memory, counted and sized up in advance.
 *
 * A model's memory is its weights (the file's read-only image plus the f32
 * copies of its 1-D tensors), its ctx's KV pool (allocated whole, never
 * grown) and scratch (activations, logits, attention buffers, the pool's
 * block tables, and what a scheduler's requests may hold: mem.h).  A server
 * must refuse a model that would not fit before reading gigabytes, so
 * infer_mem_estimate gives the same figures from the file's header alone:
 * the model is opened header-only (every shape and type bound and checked,
 * no data read) and a dry ctx and scheduler add up the sizes their real
 * counterparts allocate, through the same code, so that estimate and
 * actual agree. */
#include "runtime/ctx.h"
#include "runtime/mem.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

uint64_t infer_mem_total(const infer_mem *m) { return m->weights + m->kv_reserved + m->scratch; }

void infer_model_mem(const infer_model *m, infer_mem *out) {
    memset(out, 0, sizeof *out);
    out->weights = m->info.file_bytes + m->host_bytes;
}

int infer_mem_estimate(const char *path, const infer_ctx_params *cp, int n_threads, const infer_sched_params *sp,
                       infer_mem *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (n_threads <= 0) { /* as infer_threadpool_create picks them */
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = n > 256 ? 256 : n > 0 ? (int)n : 1;
    }
    if (n_threads > 256) {
        snprintf(err, errlen, "thread count %d is above the limit of 256", n_threads);
        return -1;
    }
    infer_model *m;
    if (model_open(path, 1, &m, err, errlen) < 0) return -1;
    infer_ctx *c;
    int rc = ctx_create(m, NULL, n_threads, cp, 1, &c, err, errlen);
    if (rc == 0) {
        uint64_t reserve = sp && !m->is_encoder ? sched_reserve(c, sp) : 0;
        out->weights = m->info.file_bytes + m->host_bytes;
        out->kv_reserved = c->kv_len;
        out->scratch = c->scratch_bytes + reserve;
        infer_ctx_free(c);
    }
    infer_model_unref(m);
    return rc;
}
