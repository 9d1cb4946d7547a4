/* vdist.h - internal to libvset: the distance kernels.
 *
 * Three stored forms, three inner loops: float32 dot products (NOQUANT and
 * re-scoring), int8 dot products (Q8), and Hamming distances over bitmaps
 * (BIN).  Each has a plain C reference (vdist.c) and SIMD versions
 * (vdist_avx2.c, vdist_avx512.c) picked once at run time from CPUID; the
 * unit tests hold every version to the reference. */
#ifndef INFERKV_VDIST_H
#define INFERKV_VDIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct vdist_kernels {
    const char *name;
    float (*dot_f32)(const float *a, const float *b, uint32_t n);
    /* sum over i of a[i] * b[i]; components in [-127, 127] */
    int32_t (*dot_i8)(const int8_t *a, const int8_t *b, uint32_t n);
    /* float query against int8 components (re-scoring a Q8 set) */
    float (*dot_f32_i8)(const float *a, const int8_t *b, uint32_t n);
    /* differing bits over nwords 64-bit words */
    uint32_t (*hamming)(const uint64_t *a, const uint64_t *b, uint32_t nwords);
} vdist_kernels;

/* The kernels this CPU runs best (resolved once, thread-safe). */
const vdist_kernels *vdist_best(void);
/* Every version this CPU can run, for the tests: fills up to max, returns
 * how many (the reference first). */
int vdist_all(const vdist_kernels **out, int max);

/* Hamming distance with the POPCNT instruction (both SIMD versions). */
uint32_t vdist_hamming_popcnt(const uint64_t *a, const uint64_t *b, uint32_t nwords);

/* Versions defined in the ISA-specific files (only called when the CPU
 * has the instructions). */
extern const vdist_kernels vdist_scalar, vdist_avx2, vdist_avx512;

#endif
