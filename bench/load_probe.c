/* load_probe.c - how long a model takes to load and how much memory it then
 * holds, for inferkv's engine and for llama.cpp on the same file (used by
 * bench_4b.sh; neither inferkv-cli bench nor llama-bench reports a load).
 *
 *   load_probe FILE [MODE]
 *
 * Times one load call (infer_model_load, or llama_model_load_from_file with
 * the CPU backend only), then prints one JSON object: load_s, and from
 * /proc/self/status after the load rss_kib, rss_anon_kib (private memory:
 * weights copied or repacked) and rss_file_kib (pages of the file mapped
 * and touched).  MODE is llama.cpp's load mode: "auto" (its default: mmap
 * here) or "none" (read into its own buffers); inferkv has one way to load.
 *
 * Build (bench_4b.sh does it):
 *   inferkv:   cc -O2 -Isrc/engine bench/load_probe.c BUILD/libinfer.a BUILD/libcore.a -lpcre2-8 -lm -lpthread
 *   llama.cpp: cc -O2 -DPROBE_LLAMA -ILLAMA/include -ILLAMA/ggml/include bench/load_probe.c
 *              -LLLAMA/build/bin -lllama -lggml -lggml-base -Wl,-rpath,LLAMA/build/bin
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef PROBE_LLAMA
#include "llama.h"
#else
#include "infer.h"
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* One "Name:   123 kB" field of /proc/self/status, in KiB (-1: none). */
static long status_kib(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    size_t n = strlen(name);
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, name, n) && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

#ifdef PROBE_LLAMA
static void quiet_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}
#endif

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: load_probe FILE [auto|none]\n");
        return 2;
    }
    const char *mode = argc > 2 ? argv[2] : "auto";
    double t0, t1;
#ifdef PROBE_LLAMA
    llama_log_set(quiet_log, NULL);
    ggml_backend_load_all();
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.load_mode = !strcmp(mode, "none") ? LLAMA_LOAD_MODE_NONE : LLAMA_LOAD_MODE_AUTO;
    t0 = now();
    struct llama_model *m = llama_model_load_from_file(argv[1], mp);
    t1 = now();
    if (!m) {
        fprintf(stderr, "load_probe: llama.cpp could not load %s\n", argv[1]);
        return 1;
    }
    const char *engine = "llama.cpp";
#else
    char err[512];
    infer_model *m = NULL;
    mode = "read";
    t0 = now();
    if (infer_model_load(argv[1], &m, err, sizeof err) < 0) {
        fprintf(stderr, "load_probe: %s\n", err);
        return 1;
    }
    t1 = now();
    const char *engine = "inferkv";
#endif
    printf("{\"engine\":\"%s\",\"mode\":\"%s\",\"load_s\":%.3f,\"rss_kib\":%ld,\"rss_anon_kib\":%ld,"
           "\"rss_file_kib\":%ld}\n",
           engine, mode, t1 - t0, status_kib("VmRSS"), status_kib("RssAnon"), status_kib("RssFile"));
#ifdef PROBE_LLAMA
    llama_model_free(m);
    llama_backend_free();
#else
    infer_model_unref(m);
#endif
    return 0;
}
