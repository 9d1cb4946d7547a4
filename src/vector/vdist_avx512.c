/* vdist_avx512.c - distance kernels for AVX-512 (F, BW, VL, VNNI) machines
 * (see vdist.h).  Tails are handled with masked loads, so no scalar loop
 * runs for dimensions that are not multiples of the vector width. */
#include "vdist.h"

#include <immintrin.h>

static float dot_f32(const float *a, const float *b, uint32_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    uint32_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* VNNI multiplies unsigned by signed bytes, so a is shifted into unsigned
 * range (a + 128, by flipping the top bit) and 128 * sum(b) taken off:
 * sum((a + 128) * b) - 128 * sum(b) = sum(a * b).  The sum of b comes from
 * a second VNNI against all-ones on the same loads. */
static int32_t dot_i8(const int8_t *a, const int8_t *b, uint32_t n) {
    const __m512i flip = _mm512_set1_epi8((char)0x80), ones = _mm512_set1_epi8(1);
    __m512i acc = _mm512_setzero_si512(), bsum = _mm512_setzero_si512();
    for (uint32_t i = 0; i < n; i += 64) {
        __mmask64 m = n - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - i)) - 1);
        __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, a + i), flip);
        __m512i y = _mm512_maskz_loadu_epi8(m, b + i);
        acc = _mm512_dpbusd_epi32(acc, x, y);
        bsum = _mm512_dpbusd_epi32(bsum, ones, y);
    }
    return _mm512_reduce_add_epi32(acc) - 128 * _mm512_reduce_add_epi32(bsum);
}

static float dot_f32_i8(const float *a, const int8_t *b, uint32_t n) {
    __m512 s0 = _mm512_setzero_ps();
    for (uint32_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m128i q = _mm_maskz_loadu_epi8(m, b + i);
        __m512 y = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q));
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), y, s0);
    }
    return _mm512_reduce_add_ps(s0);
}

const vdist_kernels vdist_avx512 = {"avx512-vnni", dot_f32, dot_i8, dot_f32_i8, vdist_hamming_popcnt};
