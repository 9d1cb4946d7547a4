/* cli_bench.c - `inferkv-cli bench`: prompt-processing and decoding speed.
 *
 *   pp  : one sequence, N prompt tokens in one forward pass (matrix-matrix)
 *   tg  : one sequence, N tokens decoded one at a time
 *   agg : S sequences decoding together, one token each per step (the
 *         continuous-batching case): tokens/s summed over the sequences
 * (`bench --embed`, for encoder models, is cli_embed.c's.)
 * Token ids are fixed pseudo-random values and no sampling is timed, so the
 * figures are the engine's alone.  Each figure is the median of --reps runs. */
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

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    infer_ctx *ctx;
    int32_t n_vocab;
    char err[512];
} bench_state;

static int32_t tok_at(int32_t i, int32_t n_vocab) {
    return (int32_t)(((uint32_t)i * 2654435761u) % (uint32_t)(n_vocab > 4 ? n_vocab - 3 : 1)) + (n_vocab > 4 ? 3 : 0);
}

/* Seconds to process n tokens as one prompt. */
static double run_pp(bench_state *b, int32_t n, int32_t max_batch) {
    infer_seq *s;
    if (infer_seq_create(b->ctx, &s, b->err, sizeof b->err) < 0) return -1;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) {
        infer_seq_free(s);
        return -1;
    }
    for (int32_t i = 0; i < n; i++) ids[i] = tok_at(i, b->n_vocab);
    double t0 = now_s();
    int ok = 0;
    for (int32_t off = 0; off < n && ok == 0; off += max_batch) {
        int32_t c = n - off < max_batch ? n - off : max_batch;
        infer_batch_entry e = {s, ids + off, c, off + c == n ? INFER_LOGITS_LAST : INFER_LOGITS_NONE};
        ok = infer_decode(b->ctx, &e, 1, b->err, sizeof b->err);
    }
    double t = now_s() - t0;
    free(ids);
    infer_seq_free(s);
    return ok < 0 ? -1 : t;
}

/* Seconds for n decode steps of `seqs` sequences together (after a
 * one-token start each, not timed). */
static double run_tg(bench_state *b, int32_t n, int32_t seqs) {
    infer_seq **s = calloc((size_t)seqs, sizeof *s);
    infer_batch_entry *e = calloc((size_t)seqs, sizeof *e);
    int32_t *tok = calloc((size_t)seqs, sizeof *tok);
    double t = -1;
    if (!s || !e || !tok) goto out;
    for (int32_t i = 0; i < seqs; i++) {
        if (infer_seq_create(b->ctx, &s[i], b->err, sizeof b->err) < 0) goto out;
        tok[i] = tok_at(i, b->n_vocab);
        e[i] = (infer_batch_entry){s[i], &tok[i], 1, INFER_LOGITS_LAST};
    }
    if (infer_decode(b->ctx, e, seqs, b->err, sizeof b->err) < 0) goto out;
    double t0 = now_s();
    for (int32_t step = 0; step < n; step++) {
        for (int32_t i = 0; i < seqs; i++) tok[i] = tok_at(step * seqs + i + 7, b->n_vocab);
        if (infer_decode(b->ctx, e, seqs, b->err, sizeof b->err) < 0) goto out;
    }
    t = now_s() - t0;
out:
    if (s)
        for (int32_t i = 0; i < seqs; i++) infer_seq_free(s[i]);
    free(s), free(e), free(tok);
    return t;
}

/* s as a JSON string literal (quotes, backslashes and control characters
 * escaped), truncated to fit cap. */
static void json_string(const char *s, char *out, size_t cap) {
    size_t n = 0;
    out[n++] = '"';
    for (; *s && n + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n++] = '"';
    out[n] = '\0';
}

int cli_bench(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--embed")) return cli_bench_embed(argc, argv);
    const char *model = NULL;
    int64_t pp = 128, tg = 64, seqs = 4, threads = 0, reps = 3;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
#define VAL() if (!(v = cli_value(argc, argv, &i))) return 2
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VAL(); model = v; }
        else if (!strcmp(a, "--pp")) { VAL(); if (cli_parse_i64(a, v, 0, 65536, &pp) < 0) return 2; }
        else if (!strcmp(a, "--tg")) { VAL(); if (cli_parse_i64(a, v, 0, 65536, &tg) < 0) return 2; }
        else if (!strcmp(a, "--seqs")) { VAL(); if (cli_parse_i64(a, v, 0, 512, &seqs) < 0) return 2; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) { VAL(); if (cli_parse_i64(a, v, 1, 256, &threads) < 0) return 2; }
        else if (!strcmp(a, "--reps")) { VAL(); if (cli_parse_i64(a, v, 1, 100, &reps) < 0) return 2; }
        else if (!strcmp(a, "--json")) json = 1;
        else {
            fprintf(stderr, "error: unknown option '%s'\n", a);
            return 2;
        }
#undef VAL
    }
    if (!model) {
        fprintf(stderr, "usage: inferkv-cli bench -m MODEL [--pp N] [--tg N] [--seqs N] [--threads T] [--reps R] [--json]\n");
        return 2;
    }
    bench_state b = {0};
    infer_model *m;
    if (infer_model_load(model, &m, b.err, sizeof b.err) < 0) {
        fprintf(stderr, "error: %s\n", b.err);
        return 1;
    }
    const infer_model_info *I = infer_model_get_info(m);
    b.n_vocab = I->n_vocab;
    infer_threadpool *tp = infer_threadpool_create((int)threads, b.err, sizeof b.err);
    int rc = 1;
    if (!tp) goto done;
    int32_t max_batch = (int32_t)(pp > seqs ? (pp > 512 ? 512 : pp) : seqs);
    if (max_batch < 1) max_batch = 1;
    int64_t per_seq = pp > tg + 1 ? pp : tg + 1;
    infer_ctx_params cp = {.n_ctx = (int32_t)per_seq, .max_batch = max_batch};
    /* KV room for the widest phase: seqs sequences of tg+1 tokens, or one of pp */
    int64_t kv_tokens = seqs * (tg + 1) > per_seq ? seqs * (tg + 1) : per_seq;
    uint64_t per_tok = (uint64_t)I->n_layer * 2 * (uint64_t)I->n_head_kv * (uint64_t)I->head_dim * sizeof(float);
    cp.kv_bytes = (uint64_t)(kv_tokens + 16 * (seqs + 1)) * per_tok;
    if (infer_ctx_create(m, tp, &cp, &b.ctx, b.err, sizeof b.err) < 0) goto done;

    double pp_t[100], tg_t[100], agg_t[100];
    double pp_s = 0, tg_s = 0, agg_s = 0;
    run_pp(&b, pp > 16 ? 16 : (pp ? (int32_t)pp : 1), max_batch); /* warm the page cache and pool */
    for (int r = 0; r < reps; r++) {
        if (pp && (pp_t[r] = run_pp(&b, (int32_t)pp, max_batch)) < 0) goto done;
        if (tg && (tg_t[r] = run_tg(&b, (int32_t)tg, 1)) < 0) goto done;
        if (tg && seqs && (agg_t[r] = run_tg(&b, (int32_t)tg, (int32_t)seqs)) < 0) goto done;
    }
    if (pp) pp_s = pp / median(pp_t, (int)reps);
    if (tg) tg_s = tg / median(tg_t, (int)reps);
    if (tg && seqs) agg_s = (double)tg * seqs / median(agg_t, (int)reps);
    char types[256];
    infer_model_type_summary(m, types, sizeof types);
    fprintf(json ? stderr : stdout,
            "model %s (%s, %.1fM params, %s), %d threads, kernels %s\n"
            "  pp%-5lld %10.1f tok/s\n  tg%-5lld %10.1f tok/s\n  agg%-4lld %10.1f tok/s (%lld seqs x %lld tokens)\n",
            model, I->arch, I->n_params / 1e6, I->ftype, infer_threadpool_size(tp), infer_simd_name(),
            (long long)pp, pp_s, (long long)tg, tg_s, (long long)seqs, agg_s, (long long)seqs, (long long)tg);
    char model_json[512];
    json_string(model, model_json, sizeof model_json);
    if (json)
        printf("{\"model\":%s,\"arch\":\"%s\",\"type\":\"%s\",\"params\":%llu,\"threads\":%d,\"kernels\":\"%s\","
               "\"pp\":%lld,\"pp_tok_s\":%.2f,\"tg\":%lld,\"tg_tok_s\":%.2f,\"seqs\":%lld,\"agg_tok_s\":%.2f,"
               "\"reps\":%lld}\n",
               model_json, I->arch, I->ftype, (unsigned long long)I->n_params, infer_threadpool_size(tp),
               infer_simd_name(), (long long)pp, pp_s, (long long)tg, tg_s, (long long)seqs, agg_s,
               (long long)reps);
    rc = 0;
done:
    if (rc) fprintf(stderr, "error: %s\n", b.err);
    infer_ctx_free(b.ctx);
    if (tp) infer_threadpool_free(tp);
    infer_model_unref(m);
    return rc;
}
