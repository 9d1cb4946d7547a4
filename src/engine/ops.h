/* ops.h - internal: the f32 vector primitives of the forward pass outside
 * the weight matrix products (attention dot products and accumulations),
 * with a plain C reference and an AVX2/FMA path chosen at run time. */
#ifndef INFER_OPS_H
#define INFER_OPS_H

#include <stdint.h>

typedef struct {
    float (*dot)(const float *a, const float *b, int64_t n);
    void (*axpy)(float *y, float a, const float *x, int64_t n); /* y += a*x */
} ops_table;

const ops_table *ops_get(void);    /* best for this CPU */
const ops_table *ops_ref(void);    /* the plain C reference */
const ops_table *ops_avx2_table(void); /* ops_avx2.c; call only after a CPUID check */

#endif
