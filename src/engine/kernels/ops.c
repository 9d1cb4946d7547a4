/* ops.c - the reference f32 attention primitive and the run-time choice
 * between it and the SIMD versions (ops_avx2.c, ops_avx512.c). */
#include "kernels/ops.h"

#include "kernels/quant.h"

static void axpy_rows_ref(float *const *y, const float *const *w, const int32_t *cnt, int m, const float *const *x,
                          int64_t n) {
    for (int j = 0; j < m; j++)
        for (int32_t p = 0; p < cnt[j]; p++)
            for (int64_t i = 0; i < n; i++) y[j][i] += w[j][p] * x[p][i];
}

static const ops_table REF = {axpy_rows_ref};

const ops_table *ops_ref(void) { return &REF; }

const ops_table *ops_get(void) {
    int isa = quant_isa();
    return isa >= QUANT_ISA_AVX512 ? ops_avx512_table() : isa >= QUANT_ISA_AVX2 ? ops_avx2_table() : &REF;
}

const char *infer_simd_name(void) { return quant_isa_name(quant_isa()); }
