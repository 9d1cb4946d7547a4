/* ops.h - internal: the f32 vector primitive of attention outside the
 * matrix kernels (the weighted sum of V rows), with a plain C reference and
 * AVX2/FMA and AVX-512 paths chosen at run time. */
#ifndef INFER_OPS_H
#define INFER_OPS_H

#include <stdint.h>

#define OPS_ROWS 8

typedef struct {
    /* For j < m <= OPS_ROWS: y[j] += w[j][p] * x[p] for p = 0 .. cnt[j]-1 in
     * that order, each step one multiply-add per element, with every x row
     * loaded once for all j.  cnt must be non-decreasing in j.  Grouping
     * never changes a value: y[j] is what it would be alone. */
    void (*axpy_rows)(float *const *y, const float *const *w, const int32_t *cnt, int m, const float *const *x,
                      int64_t n);
} ops_table;

const ops_table *ops_get(void);          /* best for this CPU */
const ops_table *ops_ref(void);          /* the plain C reference */
const ops_table *ops_avx2_table(void);   /* ops_avx2.c; call only after a CPUID check */
const ops_table *ops_avx512_table(void); /* ops_avx512.c; likewise */

#endif
