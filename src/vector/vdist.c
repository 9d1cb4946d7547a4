/* vdist.c - the plain C distance kernels (the reference every SIMD version
 * is tested against) and the run-time choice between versions. */
#include "vdist.h"

#include <pthread.h>

static float dot_f32(const float *a, const float *b, uint32_t n) {
    float s = 0;
    for (uint32_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static int32_t dot_i8(const int8_t *a, const int8_t *b, uint32_t n) {
    int32_t s = 0;
    for (uint32_t i = 0; i < n; i++) s += (int32_t)a[i] * b[i];
    return s;
}

static float dot_f32_i8(const float *a, const int8_t *b, uint32_t n) {
    float s = 0;
    for (uint32_t i = 0; i < n; i++) s += a[i] * (float)b[i];
    return s;
}

static uint32_t popcount64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

static uint32_t hamming(const uint64_t *a, const uint64_t *b, uint32_t nwords) {
    uint32_t h = 0;
    for (uint32_t i = 0; i < nwords; i++) h += popcount64(a[i] ^ b[i]);
    return h;
}

__attribute__((target("popcnt"))) uint32_t vdist_hamming_popcnt(const uint64_t *a, const uint64_t *b,
                                                               uint32_t nwords) {
    uint64_t h = 0;
    for (uint32_t i = 0; i < nwords; i++) h += (uint64_t)__builtin_popcountll(a[i] ^ b[i]);
    return (uint32_t)h;
}

const vdist_kernels vdist_scalar = {"scalar", dot_f32, dot_i8, dot_f32_i8, hamming};

static const vdist_kernels *best = &vdist_scalar;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static int has_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("popcnt");
}

static int has_avx512(void) {
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

static void pick(void) {
    __builtin_cpu_init();
    if (has_avx512()) best = &vdist_avx512;
    else if (has_avx2()) best = &vdist_avx2;
}

const vdist_kernels *vdist_best(void) {
    pthread_once(&once, pick);
    return best;
}

int vdist_all(const vdist_kernels **out, int max) {
    int n = 0;
    __builtin_cpu_init();
    if (n < max) out[n++] = &vdist_scalar;
    if (n < max && has_avx2()) out[n++] = &vdist_avx2;
    if (n < max && has_avx512()) out[n++] = &vdist_avx512;
    return n;
}
