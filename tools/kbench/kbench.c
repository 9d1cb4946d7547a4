/* kbench - single-thread microbenchmark of the matmul kernels (quant.h), to
 * iterate on them: for each tensor type, W is `rows` x k random weights and
 * the product runs over nt tokens; prints the weight bandwidth (GB/s, weight
 * bytes read once per call / time) and GFLOP/s (2*rows*k*nt / time), best of
 * several runs, plus the activation-prepare cost.  Times are thread CPU
 * time (see now()).
 *
 *   kbench [--isa ref|avx2|avx512] [--k N] [--rows N] [--type NAME] [--nt N]...
 *          [--json PATH]   (also write the figures as a JSON array)
 * Defaults: k=1024, rows=3072, nt = 1 4 16 512, every type. */
#include "kernels/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Thread CPU time, not wall time: on a shared 2-core machine the process is
 * often descheduled, and CPU time still measures the kernel itself. */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rs = 88172645463325252ull;
static uint32_t rnd(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (uint32_t)(rs >> 20);
}

/* Random bytes with small finite scales where the format has them. */
static void fill(uint32_t type, uint8_t *w, int64_t rows, int64_t k) {
    size_t rb = quant_row_bytes(type, k), n = rb * (size_t)rows;
    for (size_t i = 0; i < n; i++) w[i] = (uint8_t)rnd();
    int64_t nblk = rows * k / quant_block_elems(type);
    size_t bb = quant_block_bytes(type);
    for (int64_t b = 0; b < nblk; b++) {
        uint8_t *p = w + (size_t)b * bb;
        qhalf h = quant_f32_to_f16((float)(rnd() % 1000) * 1e-5f);
        switch (type) {
        case QT_F32: { float f = (float)(rnd() % 2000) / 1000.0f - 1.0f; memcpy(p, &f, 4); break; }
        case QT_F16: h = quant_f32_to_f16((float)(rnd() % 2000) / 1000.0f - 1.0f); memcpy(p, &h, 2); break;
        case QT_BF16: { uint16_t v = quant_f32_to_bf16((float)(rnd() % 2000) / 1000.0f - 1.0f); memcpy(p, &v, 2); break; }
        case QT_Q8_0: case QT_Q4_0: memcpy(p, &h, 2); break;
        case QT_Q4_K: case QT_Q5_K: memcpy(p, &h, 2), memcpy(p + 2, &h, 2); break;
        case QT_Q6_K: memcpy(p + 208, &h, 2); break;
        }
    }
}

int main(int argc, char **argv) {
    int64_t k = 1024, rows = 3072;
    int64_t nts[16] = {1, 4, 16, 512};
    int n_nt = 4, user_nt = 0;
    const char *only = NULL, *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            const char *v = argv[++i];
            int want = !strcmp(v, "ref") ? QUANT_ISA_REF : !strcmp(v, "avx2") ? QUANT_ISA_AVX2 : QUANT_ISA_AVX512;
            quant_set_isa(want);
        } else if (!strcmp(argv[i], "--k") && i + 1 < argc) {
            k = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            rows = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else if (!strcmp(argv[i], "--nt") && i + 1 < argc) {
            if (!user_nt) n_nt = 0, user_nt = 1;
            if (n_nt < 16) nts[n_nt++] = atoll(argv[++i]);
        } else {
            fprintf(stderr, "usage: kbench [--isa ref|avx2|avx512] [--k N] [--rows N] [--type NAME] [--nt N]... "
                            "[--json PATH]\n");
            return 2;
        }
    }
    if (k <= 0 || rows <= 0 || k > (1 << 20) || rows > (1 << 20)) {
        fprintf(stderr, "kbench: k and rows must be in 1..1048576\n");
        return 2;
    }
    static const uint32_t types[] = {QT_F32, QT_F16, QT_BF16, QT_Q8_0, QT_Q4_0, QT_Q4_K, QT_Q5_K, QT_Q6_K};
    printf("kbench: kernels %s, k=%lld rows=%lld, 1 thread\n", quant_isa_name(quant_isa()), (long long)k,
           (long long)rows);
    printf("%-6s %5s %10s %8s %9s %12s\n", "type", "nt", "ms", "GB/s", "GFLOP/s", "prep ms");
    FILE *js = NULL;
    if (json_path) {
        js = fopen(json_path, "w");
        if (!js) {
            perror(json_path);
            return 1;
        }
        fprintf(js, "[");
    }
    int first = 1;
    int64_t maxnt = 0;
    for (int i = 0; i < n_nt; i++) maxnt = nts[i] > maxnt ? nts[i] : maxnt;
    float *x = malloc(sizeof(float) * (size_t)(k * maxnt)), *y = malloc(sizeof(float) * (size_t)(rows * maxnt));
    if (!x || !y) return 1;
    for (int64_t i = 0; i < k * maxnt; i++) x[i] = (float)(rnd() % 2000) / 1000.0f - 1.0f;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        if (only && strcasecmp(only, quant_type_name(type))) continue;
        size_t rb = quant_row_bytes(type, k), ab = quant_act_row_bytes(type, k);
        if (!rb || !ab) {
            printf("%-6s k=%lld is not a multiple of its block\n", quant_type_name(type), (long long)k);
            continue;
        }
        uint8_t *w = malloc(rb * (size_t)rows), *act = malloc(ab * (size_t)maxnt);
        if (!w || !act) return 1;
        fill(type, w, rows, k);
        for (int ni = 0; ni < n_nt; ni++) {
            int64_t nt = nts[ni];
            double prep = 1e30;
            for (int rep = 0; rep < 3; rep++) { /* the first run also pays page faults */
                double t0 = now();
                quant_act_prepare(type, x, k, nt, (size_t)k, act);
                prep = now() - t0 < prep ? now() - t0 : prep;
            }
            double best = 1e30, spent = 0;
            int reps = 0;
            while ((spent < 0.5 && reps < 200) || reps < 2) {
                double a = now();
                quant_matmul(type, w, rb, k, 0, rows, act, nt, y, (size_t)rows);
                double b = now() - a;
                best = b < best ? b : best;
                spent += b, reps++;
            }
            double gbs = (double)rb * (double)rows / best / 1e9;
            double gfl = 2.0 * (double)rows * (double)k * (double)nt / best / 1e9;
            printf("%-6s %5lld %10.3f %8.2f %9.1f %12.3f\n", quant_type_name(type), (long long)nt, best * 1e3, gbs,
                   gfl, prep * 1e3);
            fflush(stdout);
            if (js) {
                fprintf(js, "%s\n {\"isa\": \"%s\", \"type\": \"%s\", \"k\": %lld, \"rows\": %lld, \"nt\": %lld, "
                            "\"ms\": %.4f, \"gb_s\": %.3f, \"gflop_s\": %.2f, \"prep_ms\": %.4f}",
                        first ? "" : ",", quant_isa_name(quant_isa()), quant_type_name(type), (long long)k,
                        (long long)rows, (long long)nt, best * 1e3, gbs, gfl, prep * 1e3);
                first = 0;
            }
        }
        free(w), free(act);
    }
    free(x), free(y);
    if (js) {
        fprintf(js, "\n]\n");
        if (fclose(js) != 0) {
            perror(json_path);
            return 1;
        }
    }
    return 0;
}
