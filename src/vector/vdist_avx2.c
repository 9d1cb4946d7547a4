/* vdist_avx2.c - distance kernels for AVX2 + FMA machines (see vdist.h).
 * Compiled with -mavx2 -mfma; called only after vdist.c saw them in CPUID. */
#include "vdist.h"

#include <immintrin.h>

static float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot_f32(const float *a, const float *b, uint32_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    if (i + 8 <= n) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        i += 8;
    }
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* 16 int8 pairs per step: widened to int16, multiplied and pair-summed to
 * int32 (pmaddwd), which cannot overflow for |x| <= 127. */
static int32_t dot_i8(const int8_t *a, const int8_t *b, uint32_t n) {
    __m256i acc = _mm256_setzero_si256();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i x = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
        __m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + i)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    int32_t r = _mm_cvtsi128_si32(s);
    for (; i < n; i++) r += (int32_t)a[i] * b[i];
    return r;
}

static float dot_f32_i8(const float *a, const int8_t *b, uint32_t n) {
    __m256 s0 = _mm256_setzero_ps();
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i q = _mm_loadl_epi64((const __m128i *)(b + i));
        __m256 y = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), y, s0);
    }
    float s = hsum256(s0);
    for (; i < n; i++) s += a[i] * (float)b[i];
    return s;
}

const vdist_kernels vdist_avx2 = {"avx2", dot_f32, dot_i8, dot_f32_i8, vdist_hamming_popcnt};
