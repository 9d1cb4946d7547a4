/* cli_embed.c - `inferkv-cli embed` and `inferkv-cli bench --embed`: an
 * encoder model's sentence vectors from the command line, and their speed.
 *
 * embed prints one line per input on stdout, the vector's floats separated
 * by spaces (printed with %.9g, so the text converts back to the same
 * floats), and nothing else, so outputs can be compared and parsed; counts
 * and timings go to stderr.  bench --embed times infer_embed over batches of
 * fixed pseudo-random token sequences: embeddings/s of wall-clock time and
 * per CPU-second of the process, each the median of --reps runs. */
#include "cli.h"

#include "cli_args.h"
#include "infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU seconds of every thread of the process: on a shared machine the
 * wall-clock rate says what this run got, the rate per CPU-second what the
 * engine does with a core (spinning workers count, so it is a floor). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_pooling(const char *v, int *out) {
    if (!strcmp(v, "mean")) *out = INFER_POOL_MEAN;
    else if (!strcmp(v, "cls")) *out = INFER_POOL_CLS;
    else if (!strcmp(v, "last")) *out = INFER_POOL_LAST;
    else {
        fprintf(stderr, "error: --pooling must be mean, cls or last, got '%s'\n", v);
        return -1;
    }
    return 0;
}

/* A model, a pool and an encoder ctx, or a message on stderr. */
typedef struct {
    infer_model *m;
    infer_threadpool *tp;
    infer_ctx *c;
} embed_rig;

static int rig_open(embed_rig *r, const char *path, int64_t threads, int64_t n_ctx, int64_t max_batch) {
    char err[512];
    memset(r, 0, sizeof *r);
    if (infer_model_load(path, &r->m, err, sizeof err) < 0) goto bad;
    if (!infer_model_is_encoder(r->m)) {
        snprintf(err, sizeof err, "%s is a %s model, not an encoder (bert, nomic-bert): it cannot embed", path,
                 infer_model_get_info(r->m)->arch);
        goto bad;
    }
    if (!(r->tp = infer_threadpool_create((int)threads, err, sizeof err))) goto bad;
    infer_ctx_params cp = {.n_ctx = (int32_t)n_ctx, .max_batch = (int32_t)max_batch};
    if (infer_ctx_create(r->m, r->tp, &cp, &r->c, err, sizeof err) < 0) goto bad;
    return 0;
bad:
    fprintf(stderr, "error: %s\n", err);
    return -1;
}

static void rig_close(embed_rig *r) {
    infer_ctx_free(r->c);
    if (r->tp) infer_threadpool_free(r->tp);
    infer_model_unref(r->m);
}

/* Splits buf into lines (a final newline ends the last line, it does not
 * start another); \r before \n is dropped.  Lines point into buf. */
static int split_lines(char *buf, size_t len, const char ***lines, size_t **lens, int32_t *n) {
    size_t cap = 16, k = 0;
    *lines = malloc(cap * sizeof **lines);
    *lens = malloc(cap * sizeof **lens);
    if (!*lines || !*lens) return -1;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        size_t l = e - i;
        if (l && buf[i + l - 1] == '\r') l--;
        if (k == cap) {
            cap *= 2;
            const char **nl = realloc(*lines, cap * sizeof **lines);
            if (nl) *lines = nl;
            size_t *ns = realloc(*lens, cap * sizeof **lens);
            if (ns) *lens = ns;
            if (!nl || !ns) return -1;
        }
        if (k >= INT32_MAX) return -1;
        (*lines)[k] = buf + i;
        (*lens)[k++] = l;
        i = e + 1;
    }
    *n = (int32_t)k;
    return 0;
}

int cli_embed(int argc, char **argv) {
    const char *model = NULL, *file = NULL;
    int64_t threads = 0, n_ctx = 0, batch = 0;
    infer_embed_params ep;
    infer_embed_defaults(&ep);
    const char **texts = calloc((size_t)argc + 1, sizeof *texts);
    size_t *lens = NULL;
    int32_t n = 0;
    char *buf = NULL;
    int rc = 2;
    if (!texts) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() if (!(v = cli_value(argc, argv, &i))) goto out
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VAL(); model = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { VAL(); file = v; }
        else if (!strcmp(a, "--pooling")) { VAL(); if (parse_pooling(v, &ep.pooling) < 0) goto out; }
        else if (!strcmp(a, "--no-normalize")) ep.normalize = 0;
        else if (!strcmp(a, "--long")) {
            VAL();
            if (!strcmp(v, "refuse")) ep.long_input = INFER_LONG_REFUSE;
            else if (!strcmp(v, "chunk")) ep.long_input = INFER_LONG_CHUNK;
            else {
                fprintf(stderr, "error: --long must be refuse or chunk, got '%s'\n", v);
                goto out;
            }
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL(); if (cli_parse_i64(a, v, 1, 256, &threads) < 0) goto out;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            VAL(); if (cli_parse_i64(a, v, 1, 1 << 20, &n_ctx) < 0) goto out;
        }
        else if (!strcmp(a, "--batch")) { VAL(); if (cli_parse_i64(a, v, 1, 1 << 30, &batch) < 0) goto out; }
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "error: unknown option '%s' (see inferkv-cli --help)\n", a);
            goto out;
        } else texts[n++] = a;
#undef VAL
    }
    if (!model || (file && n) || (!file && !n)) {
        fprintf(stderr, "usage: inferkv-cli embed -m MODEL [TEXT... | -f FILE] [--pooling mean|cls|last] "
                        "[--no-normalize] [--long refuse|chunk] [--threads T] [--ctx N] [--batch N]\n");
        goto out;
    }
    rc = 1;
    if (file) {
        size_t len;
        free(texts);
        texts = NULL;
        if (!(buf = cli_read_file(file, &len))) goto out;
        if (split_lines(buf, len, &texts, &lens, &n) < 0) {
            fprintf(stderr, "error: out of memory reading '%s'\n", file);
            goto out;
        }
        if (!n) {
            fprintf(stderr, "error: '%s' has no lines to embed\n", file);
            goto out;
        }
    } else {
        lens = calloc((size_t)n, sizeof *lens);
        if (!lens) goto out;
        for (int32_t i = 0; i < n; i++) lens[i] = strlen(texts[i]);
    }
    embed_rig r;
    if (rig_open(&r, model, threads, n_ctx, 0) < 0) goto out;
    int32_t dim = infer_model_embed_dim(r.m);
    int32_t per = batch ? (int32_t)(batch < n ? batch : n) : n;
    float *vec = malloc((size_t)per * (size_t)dim * sizeof *vec);
    char err[512];
    double t0 = now_s();
    int ok = vec != NULL;
    if (!ok) snprintf(err, sizeof err, "out of memory");
    for (int32_t i = 0; ok && i < n; i += per) {
        int32_t k = n - i < per ? n - i : per;
        if (infer_embed_texts(r.c, texts + i, lens + i, k, &ep, vec, err, sizeof err) < 0) {
            ok = 0;
            break;
        }
        for (int32_t j = 0; j < k; j++) {
            for (int32_t d = 0; d < dim; d++) printf(d ? " %.9g" : "%.9g", vec[(size_t)j * dim + d]);
            putchar('\n');
        }
    }
    if (ok) {
        fprintf(stderr, "%d inputs, %d dims, %.1f ms (%s, %d threads, kernels %s)\n", n, dim, (now_s() - t0) * 1e3,
                infer_model_get_info(r.m)->arch, infer_threadpool_size(r.tp), infer_simd_name());
        rc = fflush(stdout) == 0 ? 0 : 1;
    } else {
        fprintf(stderr, "error: %s\n", err);
    }
    free(vec);
    rig_close(&r);
out:
    free(texts), free(lens), free(buf);
    return rc;
}

/* ---- bench --embed ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sequence i of a run: CLS, pseudo-random ids, SEP (the vocab's, when it has them). */
static void fill_seq(int32_t *ids, int32_t n, int32_t i, const infer_vocab *v) {
    int32_t nv = infer_vocab_size(v), cls = infer_vocab_bos(v), sep = infer_vocab_eos(v);
    for (int32_t j = 0; j < n; j++)
        ids[j] = (int32_t)(((uint32_t)(i * 7919 + j) * 2654435761u) % (uint32_t)(nv > 1000 ? nv - 1000 : nv)) +
                 (nv > 1000 ? 1000 : 0);
    if (n >= 2 && cls >= 0 && sep >= 0) ids[0] = cls, ids[n - 1] = sep;
}

int cli_bench_embed(int argc, char **argv) {
    const char *model = NULL;
    int64_t threads = 0, tokens = 128, reps = 3, batches[16];
    int n_batches = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() if (!(v = cli_value(argc, argv, &i))) return 2
        if (!strcmp(a, "--embed")) continue;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VAL(); model = v; }
        else if (!strcmp(a, "--batch")) {
            VAL();
            if (n_batches == 16) {
                fprintf(stderr, "error: at most 16 --batch values\n");
                return 2;
            }
            if (cli_parse_i64(a, v, 1, 65536, &batches[n_batches++]) < 0) return 2;
        } else if (!strcmp(a, "--tokens")) { VAL(); if (cli_parse_i64(a, v, 1, 1 << 20, &tokens) < 0) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL(); if (cli_parse_i64(a, v, 1, 256, &threads) < 0) return 2;
        }
        else if (!strcmp(a, "--reps")) { VAL(); if (cli_parse_i64(a, v, 1, 100, &reps) < 0) return 2; }
        else if (!strcmp(a, "--json")) json = 1;
        else {
            fprintf(stderr, "error: unknown option '%s'\n", a);
            return 2;
        }
#undef VAL
    }
    if (!model) {
        fprintf(stderr, "usage: inferkv-cli bench --embed -m MODEL [--batch N]... [--tokens N] [--threads T] "
                        "[--reps R] [--json]\n");
        return 2;
    }
    if (!n_batches) batches[n_batches++] = 1, batches[n_batches++] = 32, batches[n_batches++] = 256;
    int64_t most = 0;
    for (int b = 0; b < n_batches; b++) most = batches[b] > most ? batches[b] : most;
    embed_rig r;
    if (rig_open(&r, model, threads, 0, 0) < 0) return 1;
    const infer_model_info *I = infer_model_get_info(r.m);
    int rc = 1;
    char err[512] = "out of memory";
    int32_t n_ctx = infer_ctx_n_ctx(r.c), dim = infer_model_embed_dim(r.m);
    if (tokens > n_ctx) {
        fprintf(stderr, "error: --tokens %lld exceeds the model's context of %d\n", (long long)tokens, n_ctx);
        rig_close(&r);
        return 2;
    }
    int32_t *ids = malloc((size_t)most * (size_t)tokens * sizeof *ids);
    const int32_t **seqs = malloc((size_t)most * sizeof *seqs);
    int32_t *lens = malloc((size_t)most * sizeof *lens);
    float *out = malloc((size_t)most * (size_t)dim * sizeof *out);
    double rate[16], cpu_rate[16];
    if (!ids || !seqs || !lens || !out) goto done;
    for (int64_t i = 0; i < most; i++) {
        fill_seq(ids + i * tokens, (int32_t)tokens, (int32_t)i, infer_model_vocab(r.m));
        seqs[i] = ids + i * tokens;
        lens[i] = (int32_t)tokens;
    }
    infer_embed_params ep;
    infer_embed_defaults(&ep);
    /* warm up with one full pass: its first run touches the ctx's scratch */
    int64_t warm = 2048 / tokens > 0 ? 2048 / tokens : 1;
    if (warm > most) warm = most;
    if (infer_embed(r.c, seqs, lens, (int32_t)warm, &ep, out, err, sizeof err) < 0) goto done;
    for (int b = 0; b < n_batches; b++) {
        double t[100], tc[100];
        for (int k = 0; k < reps; k++) {
            double t0 = now_s(), c0 = cpu_s();
            if (infer_embed(r.c, seqs, lens, (int32_t)batches[b], &ep, out, err, sizeof err) < 0) goto done;
            t[k] = now_s() - t0;
            tc[k] = cpu_s() - c0;
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        qsort(tc, (size_t)reps, sizeof *tc, cmp_double);
        double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
        double medc = reps % 2 ? tc[reps / 2] : 0.5 * (tc[reps / 2 - 1] + tc[reps / 2]);
        rate[b] = (double)batches[b] / med;
        cpu_rate[b] = (double)batches[b] / medc;
    }
    fprintf(json ? stderr : stdout, "model %s (%s, %.1fM params, %s), %d threads, kernels %s, %lld tokens per input\n",
            model, I->arch, I->n_params / 1e6, I->ftype, infer_threadpool_size(r.tp), infer_simd_name(),
            (long long)tokens);
    for (int b = 0; b < n_batches; b++)
        fprintf(json ? stderr : stdout, "  batch %-5lld %10.1f embeddings/s %10.0f tok/s   %8.1f per CPU-second\n",
                (long long)batches[b], rate[b], rate[b] * (double)tokens, cpu_rate[b]);
    if (json) {
        printf("{\"arch\":\"%s\",\"type\":\"%s\",\"params\":%llu,\"threads\":%d,\"kernels\":\"%s\",\"tokens\":%lld,"
               "\"reps\":%lld,\"batches\":[",
               I->arch, I->ftype, (unsigned long long)I->n_params, infer_threadpool_size(r.tp), infer_simd_name(),
               (long long)tokens, (long long)reps);
        for (int b = 0; b < n_batches; b++)
            printf("%s{\"batch\":%lld,\"embeddings_s\":%.2f,\"per_cpu_s\":%.2f}", b ? "," : "", (long long)batches[b],
                   rate[b], cpu_rate[b]);
        printf("]}\n");
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", err);
    free(ids), free(seqs), free(lens), free(out);
    rig_close(&r);
    return rc;
}
