/* peak.c - this machine's compute peak, measured with tight loops (used by
 * bench_rag.sh to say what fraction of it the encoder reaches).
 *
 *   peak THREADS SECONDS
 *
 * Prints one JSON object: the clock (GHz, from a chain of dependent integer
 * adds: one per cycle on every x86 core of the last twenty years), and per
 * thread and for THREADS threads at once the rate of
 *   - int8 multiply-accumulates through AVX-512 VNNI (vpdpbusd zmm: 64 u8 x s8
 *     products added into 16 int32 per instruction), and
 *   - fp32 fused multiply-adds (vfmadd231ps zmm: 16 per instruction),
 * each with 12 independent accumulators so that latency is hidden and only
 * throughput counts.  These are upper bounds no real kernel reaches (no
 * loads, no conversions, no scales).  Each figure is the best of many short
 * bursts (well under a millisecond each) over SECONDS: on a machine shared
 * with other work, a burst that was not preempted measures the core itself,
 * so the best one is the clock and the per-cycle rate, while the average
 * would measure the neighbours.
 *
 * Build: cc -O2 -mavx512f -mavx512bw -mavx512vnni -mfma -pthread peak.c -o peak
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile int sink_i;
static volatile float sink_f;
static double seconds = 0.3;

/* GHz: 100 dependent adds per iteration, one cycle each */
static double ghz(void)
{
    uint64_t x = 1;
    double best = 0, start = now();
    do {
        double t0 = now();
        for (int i = 0; i < 10000; i++) {
            __asm__ volatile(
#define A10 "add %0, %0\n\t" "add %0, %0\n\t" "add %0, %0\n\t" "add %0, %0\n\t" "add %0, %0\n\t" \
            "add %0, %0\n\t" "add %0, %0\n\t" "add %0, %0\n\t" "add %0, %0\n\t" "add %0, %0\n\t"
                A10 A10 A10 A10 A10 A10 A10 A10 A10 A10
                : "+r"(x));
        }
        double r = 10000 * 100.0 / (now() - t0);
        if (r > best) best = r;
    } while (now() - start < seconds);
    sink_i = (int)x;
    return best / 1e9;
}

/* int8 MACs per second of one thread */
static double vnni(void)
{
    __m512i a = _mm512_set1_epi8((char)(sink_i | 3)), b = _mm512_set1_epi8(1);
    /* distinct starting values: equal ones would let the compiler merge the chains */
#define I(k) _mm512_set1_epi32(k)
    __m512i c0 = I(0), c1 = I(1), c2 = I(2), c3 = I(3), c4 = I(4), c5 = I(5), c6 = I(6), c7 = I(7), c8 = I(8),
            c9 = I(9), c10 = I(10), c11 = I(11);
    double best = 0, start = now();
    do {
        double t0 = now();
        for (int i = 0; i < 16384; i++) {
            c0 = _mm512_dpbusd_epi32(c0, a, b);
            c1 = _mm512_dpbusd_epi32(c1, a, b);
            c2 = _mm512_dpbusd_epi32(c2, a, b);
            c3 = _mm512_dpbusd_epi32(c3, a, b);
            c4 = _mm512_dpbusd_epi32(c4, a, b);
            c5 = _mm512_dpbusd_epi32(c5, a, b);
            c6 = _mm512_dpbusd_epi32(c6, a, b);
            c7 = _mm512_dpbusd_epi32(c7, a, b);
            c8 = _mm512_dpbusd_epi32(c8, a, b);
            c9 = _mm512_dpbusd_epi32(c9, a, b);
            c10 = _mm512_dpbusd_epi32(c10, a, b);
            c11 = _mm512_dpbusd_epi32(c11, a, b);
            __asm__ volatile("" : "+v"(a), "+v"(b)); /* no hoisting */
        }
        double r = 16384 * 12.0 * 64 / (now() - t0);
        if (r > best) best = r;
    } while (now() - start < seconds);
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
    sink_i = _mm512_reduce_add_epi32(s);
    return best;
}

/* fp32 FMAs per second of one thread */
static double fma32(void)
{
    __m512 a = _mm512_set1_ps(0.999f + sink_f), b = _mm512_set1_ps(1e-7f);
#define F(k) _mm512_set1_ps(k)
    __m512 c0 = F(1), c1 = F(2), c2 = F(3), c3 = F(4), c4 = F(5), c5 = F(6), c6 = F(7), c7 = F(8), c8 = F(9),
           c9 = F(10), c10 = F(11), c11 = F(12);
    double best = 0, start = now();
    do {
        double t0 = now();
        for (int i = 0; i < 16384; i++) {
            c0 = _mm512_fmadd_ps(c0, a, b);
            c1 = _mm512_fmadd_ps(c1, a, b);
            c2 = _mm512_fmadd_ps(c2, a, b);
            c3 = _mm512_fmadd_ps(c3, a, b);
            c4 = _mm512_fmadd_ps(c4, a, b);
            c5 = _mm512_fmadd_ps(c5, a, b);
            c6 = _mm512_fmadd_ps(c6, a, b);
            c7 = _mm512_fmadd_ps(c7, a, b);
            c8 = _mm512_fmadd_ps(c8, a, b);
            c9 = _mm512_fmadd_ps(c9, a, b);
            c10 = _mm512_fmadd_ps(c10, a, b);
            c11 = _mm512_fmadd_ps(c11, a, b);
            __asm__ volatile("" : "+v"(a), "+v"(b));
        }
        double r = 16384 * 12.0 * 16 / (now() - t0);
        if (r > best) best = r;
    } while (now() - start < seconds);
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
                             _mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(c8, c9), _mm512_add_ps(c10, c11)));
    sink_f = _mm512_reduce_add_ps(s);
    return best;
}

struct job {
    double (*fn)(void);
    double rate;
};

static void *run(void *p)
{
    struct job *j = p;
    j->rate = j->fn();
    return NULL;
}

/* fn on n threads at once: the sum of their best bursts */
static double together(double (*fn)(void), int n)
{
    pthread_t t[64];
    struct job j[64];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        j[i].fn = fn;
        pthread_create(&t[i], NULL, run, &j[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        sum += j[i].rate;
    }
    return sum;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2;
    if (n < 1 || n > 64)
        n = 2;
    if (argc > 2)
        seconds = atof(argv[2]);
    double g = ghz();
    double v1 = vnni(), f1 = fma32();
    double vn = together(vnni, n), fn = together(fma32, n);
    double g2 = ghz();
    printf("{\"threads\": %d, \"ghz\": %.3f, \"ghz_after\": %.3f, "
           "\"int8_vnni_macs_per_cycle_1t\": %.1f, \"fp32_fma_per_cycle_1t\": %.1f, "
           "\"int8_vnni_gmacs_1t\": %.1f, \"fp32_gfmas_1t\": %.1f, "
           "\"int8_vnni_gmacs\": %.1f, \"fp32_gfmas\": %.1f}\n",
           n, g, g2, v1 / (g * 1e9), f1 / (g * 1e9), v1 / 1e9, f1 / 1e9, vn / 1e9, fn / 1e9);
    return 0;
}
