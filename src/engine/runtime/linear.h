/* linear.h - internal: the matrix products of a forward pass, spread over
 * the thread pool.  Shared by the decoder (forward.c) and the encoder
 * (encode.c). */
#ifndef INFER_LINEAR_H
#define INFER_LINEAR_H

#include "runtime/model.h"

/* y_i = x W_i^T for each of n <= 3 weights that read the same input (q/k/v,
 * gate/up): x is nt rows of w[0]->cols floats, y_i is nt rows of
 * w[i]->rows.  act[i] is scratch for nt rows prepared for w[i]'s kernel
 * (quant_act_row_bytes).  Rows of all the weights are split evenly over the
 * threads; every value is what the kernel computes alone (quant.h), so the
 * split never changes a result. */
void linear_group(infer_threadpool *tp, uint8_t *const *act, const float *x, int32_t nt, int n,
                  const weight *const *w, float *const *y);
/* The same with quant_matmul_batch's kernels (encoders: many tokens per
 * product; a caller uses one of the two for all of its products). */
void linear_group_batch(infer_threadpool *tp, uint8_t *const *act, const float *x, int32_t nt, int n,
                        const weight *const *w, float *const *y);

#endif
