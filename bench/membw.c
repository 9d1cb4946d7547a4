/* membw.c - this machine's memory read bandwidth, the ceiling of decoding
 * (used by bench_4b.sh: decoding one token at one sequence reads every
 * weight once, so tokens/s can be at most bandwidth / weight bytes).
 *
 *   membw THREADS MIB SECONDS
 *
 * Each thread sums its share of a MIB-sized buffer (far larger than the
 * caches) with wide loads and four independent accumulators, again and
 * again for SECONDS; the figure is the best pass (GB/s = 1e9 bytes/s), for
 * one thread and for THREADS at once.  Prints one JSON object.  The best
 * pass, not the average: on a machine shared with other work it measures
 * the memory system rather than the neighbours.
 *
 * Build: cc -O2 -march=native -pthread membw.c -o membw
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    const uint64_t *p;
    size_t n; /* uint64_t words */
    pthread_barrier_t *start, *end;
    int passes;
    uint64_t sink;
} job;

static uint64_t sum(const uint64_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n; i += 4) {
        a += p[i];
        b += p[i + 1];
        c += p[i + 2];
        d += p[i + 3];
    }
    return a ^ b ^ c ^ d;
}

static void *worker(void *arg) {
    job *j = arg;
    for (int k = 0; k < j->passes; k++) {
        pthread_barrier_wait(j->start);
        j->sink += sum(j->p, j->n);
        pthread_barrier_wait(j->end);
    }
    return NULL;
}

/* Best GB/s of a pass over the buffer by t threads, passes of at most
 * `seconds` in all. */
static double measure(const uint64_t *buf, size_t words, int t, double seconds) {
    int passes = 1;
    double t0 = now();
    volatile uint64_t s = sum(buf, words); /* warm, and time one pass */
    (void)s;
    double one = now() - t0;
    passes = (int)(seconds / (one > 1e-3 ? one / t : 1e-3)) + 1;
    if (passes > 200) passes = 200;
    pthread_barrier_t start, end;
    pthread_barrier_init(&start, NULL, (unsigned)t + 1);
    pthread_barrier_init(&end, NULL, (unsigned)t + 1);
    job *jobs = calloc((size_t)t, sizeof *jobs);
    pthread_t *th = calloc((size_t)t, sizeof *th);
    size_t per = words / (size_t)t;
    for (int i = 0; i < t; i++) {
        jobs[i] = (job){buf + (size_t)i * per, per, &start, &end, passes, 0};
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    double best = 0;
    for (int k = 0; k < passes; k++) {
        pthread_barrier_wait(&start);
        double a = now();
        pthread_barrier_wait(&end);
        double gbs = (double)(per * (size_t)t * 8) / (now() - a) / 1e9;
        if (gbs > best) best = gbs;
    }
    for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
    free(jobs);
    free(th);
    return best;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    double seconds = argc > 3 ? atof(argv[3]) : 3;
    if (threads < 1 || threads > 256 || mib < 64) {
        fprintf(stderr, "usage: membw THREADS MIB(>=64) SECONDS\n");
        return 2;
    }
    size_t words = mib * 1024 * 1024 / 8;
    uint64_t *buf = aligned_alloc(64, words * 8);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %zu MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < words; i++) buf[i] = i * 0x9e3779b97f4a7c15ull;
    double one = measure(buf, words, 1, seconds / 2);
    double all = threads > 1 ? measure(buf, words, threads, seconds / 2) : one;
    printf("{\"buffer_mib\":%zu,\"read_gb_s_1_thread\":%.2f,\"threads\":%d,\"read_gb_s\":%.2f}\n", mib, one, threads,
           all);
    free(buf);
    return 0;
}
