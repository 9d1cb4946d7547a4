/* ops.h - internal: the f32 vector primitives of the forward pass outside
 * the weight matrix products (attention dot products and accumulations),
 * with a plain C reference and an AVX2/FMA path chosen at run time. */
#ifndef INFER_OPS_H
#define INFER_OPS_H

#include <stdint.h>

/* The *_multi forms apply one x to up to OPS_MULTI vectors at once, so a
 * K or V row loaded once serves several queries.  Each of their results is
 * computed by exactly the arithmetic of the single form: grouping never
 * changes a value. */
#define OPS_MULTI 4
typedef struct {
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*axpy)(float *y, float a, const float *x, int64_t n); /* y += a*x */
    /* out[j] = dot(q[j], k) for j < m <= OPS_MULTI */
    void (*dot_multi)(const float *const *q, int m, const float *k, int64_t n, float *out);
    /* y[j] += a[j] * x for j < m <= OPS_MULTI */
    void (*axpy_multi)(float *const *y, const float *a, int m, const float *x, int64_t n);
    /* For j < m <= OPS_ROWS: y[j] += w[j][p] * x[p] for p = 0 .. cnt[j]-1 in
     * that order, each step one multiply-add per element: exactly the values
     * of cnt[j] axpy calls, with every x row loaded once for all j.  cnt
     * must be non-decreasing in j. */
    void (*axpy_rows)(float *const *y, const float *const *w, const int32_t *cnt, int m, const float *const *x,
                      int64_t n);
} ops_table;

#define OPS_ROWS 8

const ops_table *ops_get(void);    /* best for this CPU */
const ops_table *ops_ref(void);    /* the plain C reference */
const ops_table *ops_avx2_table(void);   /* ops_avx2.c; call only after a CPUID check */
const ops_table *ops_avx512_table(void); /* ops_avx512.c; likewise */

#endif
