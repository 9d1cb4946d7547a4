/* quant.c - the reference (plain C) kernels over libinfer's tensor types,
 * activation preparation, and the run-time choice of SIMD kernels.
 *
 * The reference defines what every kernel computes: the SIMD files
 * (quant_avx2.c, quant_avx512.c) must dequantize to the same floats bit for
 * bit and compute the same integer block dot products, differing only in the
 * order of float additions.  Activations are prepared (quantized) here, in
 * one place, for every ISA, so that all kernels consume identical bytes.
 *
 * Quantized dot products work on integers per block: for Q8_0/Q4_0 a block
 * of 32 contributes dw*da*sum(w*a); for the K-quants a 256-block contributes
 * da*(d*sum_j sc_j*dot_j - dmin*sum_j m_j*asum_j) (Q4_K/Q5_K) or
 * da*d*sum_j sc_j*(dot_j - 32*asum_j) (Q6_K), where the activation sums come
 * precomputed with the activations. */
#include "kernels/quant.h"

#include <cpuid.h>
#include <pthread.h>
#include <string.h>

/* ---------------------------------------------------------------- dequant */

static void dequant_f32(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *dst, int64_t n) {
    const qhalf *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = quant_f16_to_f32(s[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++) dst[i] = quant_bf16_to_f32(s[i]);
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
    const block_q8_0 *b = src;
    for (int64_t i = 0; i < n / QK8_0; i++) {
        float d = quant_f16_to_f32(b[i].d);
        for (int j = 0; j < QK8_0; j++) dst[i * QK8_0 + j] = d * (float)b[i].qs[j];
    }
}

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
    const block_q4_0 *b = src;
    for (int64_t i = 0; i < n / QK4_0; i++) {
        float d = quant_f16_to_f32(b[i].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            dst[i * QK4_0 + j] = d * (float)((b[i].qs[j] & 0xF) - 8);
            dst[i * QK4_0 + j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

/* Q4_K and Q5_K: value = d*sc*q - dmin*m, computed as two products and a
 * difference (no fused multiply-add), the rounding every kernel reproduces. */
static void dequant_q4_K(const void *src, float *dst, int64_t n) {
    const block_q4_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float d = quant_f16_to_f32(b->d), dmin = quant_f16_to_f32(b->dmin);
        uint8_t sc[8], m[8];
        quant_k4_scales(b->scales, sc, m);
        float *y = dst + i * QK_K;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = b->qs + 32 * c;
            float d1 = d * sc[2 * c], m1 = dmin * m[2 * c];
            float d2 = d * sc[2 * c + 1], m2 = dmin * m[2 * c + 1];
            for (int l = 0; l < 32; l++) y[64 * c + l] = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) y[64 * c + 32 + l] = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

static void dequant_q5_K(const void *src, float *dst, int64_t n) {
    const block_q5_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float d = quant_f16_to_f32(b->d), dmin = quant_f16_to_f32(b->dmin);
        uint8_t sc[8], m[8];
        quant_k4_scales(b->scales, sc, m);
        float *y = dst + i * QK_K;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = b->qs + 32 * c;
            float d1 = d * sc[2 * c], m1 = dmin * m[2 * c];
            float d2 = d * sc[2 * c + 1], m2 = dmin * m[2 * c + 1];
            for (int l = 0; l < 32; l++) {
                int hi1 = (b->qh[l] >> (2 * c)) & 1, hi2 = (b->qh[l] >> (2 * c + 1)) & 1;
                y[64 * c + l] = d1 * (float)((q[l] & 0xF) | (hi1 << 4)) - m1;
                y[64 * c + 32 + l] = d2 * (float)((q[l] >> 4) | (hi2 << 4)) - m2;
            }
        }
    }
}

/* Q6_K value of element e (0..255) of a block, before scaling: 0..63. */
static inline int q6_value(const block_q6_K *b, int e) {
    int h = e >> 7, r = e & 127, l = r & 31, quarter = r >> 5;
    uint8_t ql = b->ql[64 * h + l + ((quarter & 1) ? 32 : 0)];
    int lo = (quarter & 2) ? ql >> 4 : ql & 0xF;
    int hi = (b->qh[32 * h + l] >> (2 * quarter)) & 3;
    return lo | (hi << 4);
}

static void dequant_q6_K(const void *src, float *dst, int64_t n) {
    const block_q6_K *b = src;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float d = quant_f16_to_f32(b->d);
        for (int e = 0; e < QK_K; e++)
            dst[i * QK_K + e] = d * (float)b->scales[e / 16] * (float)(q6_value(b, e) - 32);
    }
}

/* -------------------------------------------------------------- activations */

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t quant_act_row_bytes(uint32_t wtype, int64_t k) {
    if (k < 0) return 0;
    switch (wtype) {
    case QT_F32: case QT_F16: case QT_BF16:
        return round64((size_t)k * sizeof(float));
    case QT_Q8_0: case QT_Q4_0:
        if (k % 32) return 0;
        return round64((size_t)k + (size_t)(k / 32) * 8);
    case QT_Q4_K: case QT_Q5_K: case QT_Q6_K:
        if (k % QK_K) return 0;
        return round64((size_t)k + (size_t)(k / QK_K) * 4 + (size_t)(k / 16) * 2);
    default:
        return 0;
    }
}

/* Round to nearest (ties to even) of a value clamped to [-127, 127]; NaN
 * gives 0.  Adding and removing 1.5*2^23 rounds in the FPU's default mode and
 * vectorizes, unlike a call to nearbyintf. */
static inline int round_q(float v) {
    if (!(v > -127.0f)) v = (v <= -127.0f) ? -127.0f : 0.0f;
    if (v > 127.0f) v = 127.0f;
    return (int)((v + 12582912.0f) - 12582912.0f);
}

/* One block of n values: scale d = max|x| / 127, q = round(x / d). */
static float quant_block_act(const float *x, int n, int8_t *q, int64_t stride_map_base,
                             uint32_t wtype, int8_t *qs_row) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) {
        float a = x[i] < 0 ? -x[i] : x[i];
        if (a > amax) amax = a;
    }
    float d = amax / 127.0f;
    float id = d > 0.0f ? 127.0f / amax : 0.0f;
    if (q) {
        for (int i = 0; i < n; i++) q[i] = (int8_t)round_q(x[i] * id);
    } else {
        for (int i = 0; i < n; i++)
            qs_row[quant_act_qs_index(wtype, stride_map_base + i)] = (int8_t)round_q(x[i] * id);
    }
    return d;
}

static void prepare_row(uint32_t wtype, const float *x, int64_t k, uint8_t *act) {
    switch (wtype) {
    case QT_F32: case QT_F16: case QT_BF16:
        memcpy(act, x, (size_t)k * sizeof(float));
        return;
    case QT_Q8_0: case QT_Q4_0: {
        int64_t nb = k / 32;
        int8_t *qs = (int8_t *)act;
        float *d = (float *)(act + k);
        int32_t *s = (int32_t *)(act + k + nb * 4);
        for (int64_t b = 0; b < nb; b++) {
            d[b] = quant_block_act(x + b * 32, 32, qs + b * 32, 0, wtype, NULL);
            int32_t sum = 0;
            for (int i = 0; i < 32; i++) sum += qs[b * 32 + i];
            s[b] = sum;
        }
        return;
    }
    case QT_Q4_K: case QT_Q5_K: case QT_Q6_K: {
        int64_t nb = k / QK_K;
        int8_t *qs = (int8_t *)act;
        float *d = (float *)(act + k);
        int16_t *bs = (int16_t *)(act + k + nb * 4);
        for (int64_t b = 0; b < nb; b++) {
            d[b] = quant_block_act(x + b * QK_K, QK_K, NULL, b * QK_K, wtype, qs);
            for (int g = 0; g < QK_K / 16; g++) {
                int sum = 0;
                for (int i = 0; i < 16; i++)
                    sum += qs[quant_act_qs_index(wtype, b * QK_K + g * 16 + i)];
                bs[b * 16 + g] = (int16_t)sum;
            }
        }
        return;
    }
    default:
        return;
    }
}

static quant_kernels kernels_for(uint32_t type);

void quant_act_prepare(uint32_t wtype, const float *x, int64_t k, int64_t nt, size_t ldx, void *act) {
    size_t rb = quant_act_row_bytes(wtype, k);
    if (!rb) return;
    quant_prepare_fn f = kernels_for(wtype).prepare;
    for (int64_t t = 0; t < nt; t++) {
        if (f)
            f(wtype, x + (size_t)t * ldx, k, (uint8_t *)act + (size_t)t * rb);
        else
            prepare_row(wtype, x + (size_t)t * ldx, k, (uint8_t *)act + (size_t)t * rb);
    }
}

void quant_act_dequant_row(uint32_t wtype, const void *act, int64_t k, float *dst) {
    const uint8_t *a = act;
    switch (wtype) {
    case QT_F32: case QT_F16: case QT_BF16:
        memcpy(dst, a, (size_t)k * sizeof(float));
        return;
    case QT_Q8_0: case QT_Q4_0: {
        const int8_t *qs = (const int8_t *)a;
        const float *d = (const float *)(a + k);
        for (int64_t i = 0; i < k; i++) dst[i] = d[i / 32] * (float)qs[i];
        return;
    }
    case QT_Q4_K: case QT_Q5_K: case QT_Q6_K: {
        const int8_t *qs = (const int8_t *)a;
        const float *d = (const float *)(a + k);
        for (int64_t i = 0; i < k; i++) dst[i] = d[i / QK_K] * (float)qs[quant_act_qs_index(wtype, i)];
        return;
    }
    default:
        return;
    }
}

/* ------------------------------------------------------- reference matmul */

static float dot_f32(const void *w, const uint8_t *a, int64_t k) {
    const float *x = (const float *)a, *wf = w;
    float acc = 0.0f;
    for (int64_t i = 0; i < k; i++) acc += wf[i] * x[i];
    return acc;
}

static float dot_f16(const void *w, const uint8_t *a, int64_t k) {
    const float *x = (const float *)a;
    const qhalf *wh = w;
    float acc = 0.0f;
    for (int64_t i = 0; i < k; i++) acc += quant_f16_to_f32(wh[i]) * x[i];
    return acc;
}

static float dot_bf16(const void *w, const uint8_t *a, int64_t k) {
    const float *x = (const float *)a;
    const uint16_t *wh = w;
    float acc = 0.0f;
    for (int64_t i = 0; i < k; i++) acc += quant_bf16_to_f32(wh[i]) * x[i];
    return acc;
}

static float dot_q8_0(const void *w, const uint8_t *a, int64_t k) {
    const block_q8_0 *b = w;
    const int8_t *qs = (const int8_t *)a;
    const float *d = (const float *)(a + k);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / 32; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 32; j++) isum += b[i].qs[j] * qs[i * 32 + j];
        acc += quant_f16_to_f32(b[i].d) * d[i] * (float)isum;
    }
    return acc;
}

static float dot_q4_0(const void *w, const uint8_t *a, int64_t k) {
    const block_q4_0 *b = w;
    const int8_t *qs = (const int8_t *)a;
    const float *d = (const float *)(a + k);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / 32; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += ((b[i].qs[j] & 0xF) - 8) * qs[i * 32 + j];
            isum += ((b[i].qs[j] >> 4) - 8) * qs[i * 32 + j + 16];
        }
        acc += quant_f16_to_f32(b[i].d) * d[i] * (float)isum;
    }
    return acc;
}

/* Q4_K/Q5_K: value(e) for element e of a block, 0..15 or 0..31. */
static inline int q45_value(const uint8_t *qs, const uint8_t *qh, int e) {
    int c = e >> 6, hi = (e >> 5) & 1, l = e & 31;
    int v = hi ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 0xF;
    if (qh) v |= ((qh[l] >> (e >> 5)) & 1) << 4;
    return v;
}

/* One Q4_K/Q5_K block against one prepared activation block: returns its
 * float contribution da*(d*isum - dmin*imin). */
static float dot_q45_block(const uint8_t *scales, qhalf dh, qhalf dminh, const uint8_t *qs,
                           const uint8_t *qh, const int8_t *aq, const int16_t *bs, float da,
                           uint32_t wtype) {
    uint8_t sc[8], m[8];
    quant_k4_scales(scales, sc, m);
    int32_t isum = 0, imin = 0;
    for (int j = 0; j < 8; j++) {
        int32_t dot = 0;
        for (int l = 0; l < 32; l++) {
            int e = 32 * j + l;
            dot += q45_value(qs, qh, e) * aq[quant_act_qs_index(wtype, e)];
        }
        isum += sc[j] * dot;
        imin += m[j] * (bs[2 * j] + bs[2 * j + 1]);
    }
    return quant_f16_to_f32(dh) * da * (float)isum - quant_f16_to_f32(dminh) * da * (float)imin;
}

static float dot_q4_K(const void *w, const uint8_t *a, int64_t k) {
    const block_q4_K *b = w;
    const float *d = (const float *)(a + k);
    const int16_t *bs = (const int16_t *)(a + k + (k / QK_K) * 4);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / QK_K; i++)
        acc += dot_q45_block(b[i].scales, b[i].d, b[i].dmin, b[i].qs, NULL, (const int8_t *)a + i * QK_K,
                             bs + i * 16, d[i], QT_Q4_K);
    return acc;
}

static float dot_q5_K(const void *w, const uint8_t *a, int64_t k) {
    const block_q5_K *b = w;
    const float *d = (const float *)(a + k);
    const int16_t *bs = (const int16_t *)(a + k + (k / QK_K) * 4);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / QK_K; i++)
        acc += dot_q45_block(b[i].scales, b[i].d, b[i].dmin, b[i].qs, b[i].qh, (const int8_t *)a + i * QK_K,
                             bs + i * 16, d[i], QT_Q5_K);
    return acc;
}

static float dot_q6_K(const void *w, const uint8_t *a, int64_t k) {
    const block_q6_K *b = w;
    const int8_t *qs = (const int8_t *)a;
    const float *d = (const float *)(a + k);
    const int16_t *bs = (const int16_t *)(a + k + (k / QK_K) * 4);
    float acc = 0.0f;
    for (int64_t i = 0; i < k / QK_K; i++) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            int32_t dot = 0;
            for (int l = 0; l < 16; l++) dot += q6_value(&b[i], 16 * j + l) * qs[i * QK_K + 16 * j + l];
            isum += b[i].scales[j] * (dot - 32 * bs[i * 16 + j]);
        }
        acc += quant_f16_to_f32(b[i].d) * d[i] * (float)isum;
    }
    return acc;
}

typedef float (*dot_fn)(const void *w, const uint8_t *a, int64_t k);

static dot_fn ref_dot(uint32_t type) {
    switch (type) {
    case QT_F32: return dot_f32;
    case QT_F16: return dot_f16;
    case QT_BF16: return dot_bf16;
    case QT_Q8_0: return dot_q8_0;
    case QT_Q4_0: return dot_q4_0;
    case QT_Q4_K: return dot_q4_K;
    case QT_Q5_K: return dot_q5_K;
    case QT_Q6_K: return dot_q6_K;
    default: return NULL;
    }
}

static quant_dequant_fn ref_dequant(uint32_t type) {
    switch (type) {
    case QT_F32: return dequant_f32;
    case QT_F16: return dequant_f16;
    case QT_BF16: return dequant_bf16;
    case QT_Q8_0: return dequant_q8_0;
    case QT_Q4_0: return dequant_q4_0;
    case QT_Q4_K: return dequant_q4_K;
    case QT_Q5_K: return dequant_q5_K;
    case QT_Q6_K: return dequant_q6_K;
    default: return NULL;
    }
}

static void matmul_ref(uint32_t wtype, const void *w, size_t w_stride, int64_t k, int64_t r0, int64_t r1,
                       const void *act, int64_t nt, float *y, size_t ldy) {
    dot_fn dot = ref_dot(wtype);
    size_t rb = quant_act_row_bytes(wtype, k);
    if (!dot || !rb) return;
    for (int64_t t = 0; t < nt; t++) {
        const uint8_t *a = (const uint8_t *)act + (size_t)t * rb;
        for (int64_t r = r0; r < r1; r++)
            y[(size_t)t * ldy + (size_t)r] = dot((const uint8_t *)w + (size_t)r * w_stride, a, k);
    }
}

/* --------------------------------------------------------------- dispatch */

static pthread_once_t isa_once = PTHREAD_ONCE_INIT;
static int isa_max;
static int isa_now; /* accessed with __atomic builtins: tests may switch it */

/* F16C is CPUID leaf 1, ECX bit 29; asked directly because not every
 * compiler's __builtin_cpu_supports knows the name (clang 14 does not). */
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}

static void isa_detect(void) {
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512vnni");
    isa_max = avx512 ? QUANT_ISA_AVX512 : avx2 ? QUANT_ISA_AVX2 : QUANT_ISA_REF;
    __atomic_store_n(&isa_now, isa_max, __ATOMIC_RELEASE);
}

int quant_isa(void) {
    pthread_once(&isa_once, isa_detect);
    return __atomic_load_n(&isa_now, __ATOMIC_ACQUIRE);
}

int quant_set_isa(int level) {
    pthread_once(&isa_once, isa_detect);
    if (level < QUANT_ISA_REF) level = QUANT_ISA_REF;
    if (level > isa_max) level = isa_max;
    __atomic_store_n(&isa_now, level, __ATOMIC_RELEASE);
    return level;
}

const char *quant_isa_name(int level) {
    switch (level) {
    case QUANT_ISA_REF: return "ref";
    case QUANT_ISA_AVX2: return "avx2";
    case QUANT_ISA_AVX512: return "avx512-vnni";
    default: return "unknown";
    }
}

static quant_kernels kernels_for(uint32_t type) {
    quant_kernels none = {NULL, NULL, NULL};
    switch (quant_isa()) {
    case QUANT_ISA_AVX512: return quant_kernels_avx512(type);
    case QUANT_ISA_AVX2: return quant_kernels_avx2(type);
    default: return none;
    }
}

void quant_dequant_row(uint32_t type, const void *src, float *dst, int64_t n) {
    int64_t be = quant_block_elems(type);
    if (n <= 0 || !be || n % be) return;
    quant_kernels kt = kernels_for(type);
    quant_dequant_fn f = kt.dequant ? kt.dequant : ref_dequant(type);
    if (f) f(src, dst, n);
}

void quant_matmul_batch(uint32_t wtype, const void *w, size_t w_stride, int64_t k, int64_t r0, int64_t r1,
                        const void *act, int64_t nt, float *y, size_t ldy) {
    if (r1 <= r0 || nt <= 0 || k <= 0 || !quant_act_row_bytes(wtype, k)) return;
    if (wtype == QT_Q8_0 && k / 32 <= QUANT_BATCH_MAX_BLOCKS && quant_isa() >= QUANT_ISA_AVX512)
        quant_q8_0_batch_avx512(w, w_stride, k, r0, r1, act, nt, y, ldy);
    else
        quant_matmul(wtype, w, w_stride, k, r0, r1, act, nt, y, ldy);
}

void quant_matmul(uint32_t wtype, const void *w, size_t w_stride, int64_t k, int64_t r0, int64_t r1,
                  const void *act, int64_t nt, float *y, size_t ldy) {
    if (r1 <= r0 || nt <= 0 || k <= 0 || !quant_act_row_bytes(wtype, k)) return;
    quant_kernels kt = kernels_for(wtype);
    if (kt.matmul)
        kt.matmul(w, w_stride, k, r0, r1, act, nt, y, ldy);
    else
        matmul_ref(wtype, w, w_stride, k, r0, r1, act, nt, y, ldy);
}
