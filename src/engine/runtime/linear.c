/* linear.c - matrix products over the thread pool (linear.h).
 *
 * Activations are prepared once per weight type (quantized per block for
 * the integer kernels), split by tokens across the threads; then every
 * thread multiplies an even share of the rows of all the group's weights
 * against every token, so each weight row is read once per call however
 * many tokens there are. */
#include "runtime/linear.h"

#include "kernels/quant.h"
#include "runtime/threadpool.h"

typedef struct {
    int n;
    const weight *w[3];
    float *y[3];
    const uint8_t *act[3];
    int32_t nt;
    int batch; /* quant_matmul_batch instead of quant_matmul */
} mm_job;

static void mm_worker(void *arg, int ith, int nth) {
    const mm_job *j = arg;
    int64_t total = 0;
    for (int i = 0; i < j->n; i++) total += j->w[i]->rows;
    /* Split all rows of all weights evenly; boundaries on multiples of 16
     * rows keep the kernels' row tiles whole. */
    int64_t r0 = total * ith / nth / 16 * 16, r1 = ith == nth - 1 ? total : total * (ith + 1) / nth / 16 * 16;
    int64_t base = 0;
    for (int i = 0; i < j->n; i++) {
        const weight *w = j->w[i];
        int64_t lo = r0 > base ? r0 - base : 0, hi = r1 - base < w->rows ? r1 - base : w->rows;
        if (lo < hi)
            (j->batch ? quant_matmul_batch : quant_matmul)(w->type, w->data, w->row_bytes, w->cols, lo, hi,
                                                           j->act[i], j->nt, j->y[i], (size_t)w->rows);
        base += w->rows;
    }
}

typedef struct {
    const mm_job *mm;
    const float *x;
    int64_t k;
} prep_job;

static void prep_worker(void *arg, int ith, int nth) {
    const prep_job *p = arg;
    int32_t t0 = (int32_t)((int64_t)p->mm->nt * ith / nth), t1 = (int32_t)((int64_t)p->mm->nt * (ith + 1) / nth);
    if (t0 >= t1) return;
    for (int i = 0; i < p->mm->n; i++) {
        uint32_t type = p->mm->w[i]->type;
        size_t rb = quant_act_row_bytes(type, p->k);
        quant_act_prepare(type, p->x + (size_t)t0 * p->k, p->k, t1 - t0, (size_t)p->k,
                          (void *)(p->mm->act[i] + (size_t)t0 * rb));
    }
}

static void run_group(infer_threadpool *tp, uint8_t *const *act, const float *x, int32_t nt, int n,
                      const weight *const *w, float *const *y, int batch) {
    mm_job j = {.n = n, .nt = nt, .batch = batch};
    for (int i = 0; i < n; i++) {
        j.w[i] = w[i];
        j.y[i] = y[i];
        j.act[i] = act[i];
    }
    prep_job p = {&j, x, w[0]->cols};
    if (nt >= 8) tp_run(tp, prep_worker, &p);
    else prep_worker(&p, 0, 1);
    tp_run(tp, mm_worker, &j);
}

void linear_group(infer_threadpool *tp, uint8_t *const *act, const float *x, int32_t nt, int n,
                  const weight *const *w, float *const *y) {
    run_group(tp, act, x, nt, n, w, y, 0);
}

void linear_group_batch(infer_threadpool *tp, uint8_t *const *act, const float *x, int32_t nt, int n,
                        const weight *const *w, float *const *y) {
    run_group(tp, act, x, nt, n, w, y, 1);
}
