/* cli_generate.c - `inferkv-cli info` and `inferkv-cli generate`.
 *
 * generate writes exactly the prompt text followed by the generated text to
 * stdout (nothing else, so outputs can be compared byte for byte) and its
 * figures to stderr.  Text is streamed as it is produced, holding back only
 * the bytes of a UTF-8 character that a token split. */
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

int cli_info(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: inferkv-cli info MODEL\n");
        return 2;
    }
    char err[512];
    infer_model *m;
    if (infer_model_load(argv[1], &m, err, sizeof err) < 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    const infer_model_info *I = infer_model_get_info(m);
    const infer_vocab *v = infer_model_vocab(m);
    char types[512];
    infer_model_type_summary(m, types, sizeof types);
    printf("file:            %s (%.2f MiB)\n", argv[1], I->file_bytes / 1048576.0);
    printf("architecture:    %s\n", I->arch);
    printf("name:            %s\n", I->name[0] ? I->name : "(none)");
    printf("parameters:      %llu (%.1fM)\n", (unsigned long long)I->n_params, I->n_params / 1e6);
    printf("layers:          %d\n", I->n_layer);
    printf("embedding:       %d\n", I->n_embd);
    printf("feed-forward:    %d\n", I->n_ff);
    printf("heads:           %d (kv %d, head dim %d)\n", I->n_head, I->n_head_kv, I->head_dim);
    if (I->n_rot)
        printf("rope:            %s, %d dims, base %g\n", I->rope_neox ? "neox" : "normal", I->n_rot, I->rope_base);
    else
        printf("positions:       learned (position_embd)\n");
    printf("%-17s%g\n", I->is_encoder ? "layernorm eps:" : "rms norm eps:", I->norm_eps);
    printf("context (train): %d\n", I->n_ctx_train);
    printf("vocab:           %d (%s)\n", I->n_vocab, infer_vocab_kind(v));
    if (I->is_encoder) {
        static const char *const pools[] = {"none named", "mean", "cls", "last"};
        printf("encoder:         bidirectional, pooling %s, %d-dim embeddings\n",
               pools[I->pooling >= 0 && I->pooling <= 3 ? I->pooling : 0], infer_model_embed_dim(m));
    } else {
        printf("embeddings:      %s\n", I->tied_embeddings ? "tied (lm head = token_embd)" : "separate output.weight");
    }
    printf("tensors:         %u (%s)\n", I->n_tensors, types);
    printf("weights:         %.2f MiB, mostly %s\n", I->weight_bytes / 1048576.0, I->ftype);
    infer_model_unref(m);
    return 0;
}

typedef struct {
    const char *model, *prompt, *prompt_file;
    int64_t n_predict, threads, n_ctx;
    infer_sampler_params sp;
    int seed_given;
} gen_opts;

static int parse_gen(int argc, char **argv, gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    infer_sampler_defaults(&o->sp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int64_t iv;
        double fv;
        uint64_t uv;
#define VAL() if (!(v = cli_value(argc, argv, &i))) return -1
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { VAL(); o->model = v; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { VAL(); o->prompt = v; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { VAL(); o->prompt_file = v; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            VAL(); if (cli_parse_i64(a, v, 0, 1 << 24, &o->n_predict) < 0) return -1;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            VAL(); if (cli_parse_i64(a, v, 1, 256, &o->threads) < 0) return -1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            VAL(); if (cli_parse_i64(a, v, 1, 1 << 24, &o->n_ctx) < 0) return -1;
        } else if (!strcmp(a, "--temp")) {
            VAL(); if (cli_parse_float(a, v, 0, 100, &fv) < 0) return -1; o->sp.temperature = (float)fv;
        } else if (!strcmp(a, "--top-k")) {
            VAL(); if (cli_parse_i64(a, v, 0, 1 << 30, &iv) < 0) return -1; o->sp.top_k = (int32_t)iv;
        } else if (!strcmp(a, "--top-p")) {
            VAL(); if (cli_parse_float(a, v, 1e-9, 1, &fv) < 0) return -1; o->sp.top_p = (float)fv;
        } else if (!strcmp(a, "--min-p")) {
            VAL(); if (cli_parse_float(a, v, 0, 1, &fv) < 0) return -1; o->sp.min_p = (float)fv;
        } else if (!strcmp(a, "--repeat-penalty")) {
            VAL(); if (cli_parse_float(a, v, 1e-6, 100, &fv) < 0) return -1; o->sp.repeat_penalty = (float)fv;
        } else if (!strcmp(a, "--repeat-last-n")) {
            VAL(); if (cli_parse_i64(a, v, 0, 4096, &iv) < 0) return -1; o->sp.repeat_last_n = (int32_t)iv;
        } else if (!strcmp(a, "--seed")) {
            VAL(); if (cli_parse_u64(a, v, &uv) < 0) return -1; o->sp.seed = uv; o->seed_given = 1;
        } else {
            fprintf(stderr, "error: unknown option '%s' (see inferkv-cli --help)\n", a);
            return -1;
        }
#undef VAL
    }
    if (!o->model) {
        fprintf(stderr, "error: -m MODEL is required\n");
        return -1;
    }
    if (o->prompt && o->prompt_file) {
        fprintf(stderr, "error: give -p or -f, not both\n");
        return -1;
    }
    return 0;
}

/* Tokenizes with the vocab's own BOS rule; grows the buffer as needed. */
static int32_t *tokenize_prompt(const infer_vocab *v, const char *text, size_t len, int64_t *n) {
    char err[256];
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) return NULL;
    int64_t r = infer_tokenize(v, text, len, INFER_TOK_ADD_SPECIAL, ids, cap, err, sizeof err);
    if (r > (int64_t)cap) {
        int32_t *b = realloc(ids, (size_t)r * sizeof *ids);
        if (!b) {
            free(ids);
            return NULL;
        }
        ids = b;
        r = infer_tokenize(v, text, len, INFER_TOK_ADD_SPECIAL, ids, (size_t)r, err, sizeof err);
    }
    if (r < 0) {
        fprintf(stderr, "error: tokenize: %s\n", err);
        free(ids);
        return NULL;
    }
    *n = r;
    return ids;
}

static int run_generate(const gen_opts *o, infer_model *m, const char *prompt, size_t plen) {
    char err[512];
    const infer_vocab *v = infer_model_vocab(m);
    int64_t n_prompt = 0;
    int32_t *ids = tokenize_prompt(v, prompt, plen, &n_prompt);
    if (!ids) return 1;
    if (n_prompt == 0) {
        fprintf(stderr, "error: the prompt is empty and the vocab has no BOS token to start from\n");
        free(ids);
        return 1;
    }
    int rc = 1;
    infer_threadpool *tp = infer_threadpool_create((int)o->threads, err, sizeof err);
    infer_ctx *ctx = NULL;
    infer_seq *seq = NULL;
    infer_sampler *smp = NULL;
    infer_detok *dt = NULL;
    char *out = NULL;
    if (!tp) goto fail;
    int64_t need = n_prompt + o->n_predict;
    infer_ctx_params cp = {0};
    cp.n_ctx = (int32_t)(o->n_ctx ? o->n_ctx : need);
    if (need > cp.n_ctx) {
        snprintf(err, sizeof err, "prompt (%lld tokens) + -n %lld exceed the context of %d tokens",
                 (long long)n_prompt, (long long)o->n_predict, cp.n_ctx);
        goto fail;
    }
    cp.max_batch = n_prompt < 512 ? (int32_t)n_prompt : 512;
    cp.kv_bytes = 0; /* default: room for this sequence */
    if (infer_ctx_create(m, tp, &cp, &ctx, err, sizeof err) < 0) goto fail;
    if (infer_seq_create(ctx, &seq, err, sizeof err) < 0) goto fail;
    if (!(smp = infer_sampler_create(&o->sp, err, sizeof err))) goto fail;
    fwrite(prompt, 1, plen, stdout);
    fflush(stdout);

    double t0 = now_s();
    for (int64_t off = 0; off < n_prompt; off += cp.max_batch) {
        int32_t chunk = (int32_t)(n_prompt - off < cp.max_batch ? n_prompt - off : cp.max_batch);
        infer_batch_entry e = {seq, ids + off, chunk, off + chunk == n_prompt ? INFER_LOGITS_LAST : INFER_LOGITS_NONE};
        if (infer_decode(ctx, &e, 1, err, sizeof err) < 0) goto fail;
    }
    for (int64_t i = 0; i < n_prompt; i++) infer_sampler_accept(smp, ids[i]);
    double t1 = now_s();

    dt = infer_detok_create(v, plen == 0);
    if (!dt) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    size_t out_cap = infer_detok_max_bytes(v);
    out = malloc(out_cap);
    if (!out) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    int64_t n_gen = 0;
    const int32_t n_vocab = infer_vocab_size(v);
    while (n_gen < o->n_predict) {
        int32_t tok = infer_sampler_sample(smp, infer_logits(ctx, 0, 0), n_vocab);
        n_gen++;
        if (infer_vocab_is_eog(v, tok)) break;
        int w = infer_detok_push(dt, tok, out, out_cap);
        if (w < 0) {
            snprintf(err, sizeof err, "cannot detokenize token %d", tok);
            goto fail;
        }
        if (w > 0) {
            fwrite(out, 1, (size_t)w, stdout);
            fflush(stdout);
        }
        if (n_gen == o->n_predict) break;
        infer_batch_entry e = {seq, &tok, 1, INFER_LOGITS_LAST};
        if (infer_decode(ctx, &e, 1, err, sizeof err) < 0) goto fail;
    }
    int w = infer_detok_flush(dt, out, out_cap);
    if (w > 0) fwrite(out, 1, (size_t)w, stdout);
    fflush(stdout);
    double t2 = now_s();
    fprintf(stderr, "\nprompt: %lld tokens in %.3f s (%.1f tok/s); generated: %lld tokens in %.3f s (%.1f tok/s); "
                    "%d threads, kernels %s\n",
            (long long)n_prompt, t1 - t0, n_prompt / (t1 - t0), (long long)n_gen, t2 - t1,
            n_gen > 0 ? n_gen / (t2 - t1) : 0.0, infer_threadpool_size(tp), infer_simd_name());
    rc = 0;
fail:
    if (rc) fprintf(stderr, "error: %s\n", err);
    free(out);
    infer_detok_free(dt);
    infer_sampler_free(smp);
    infer_seq_free(seq);
    infer_ctx_free(ctx);
    if (tp) infer_threadpool_free(tp);
    free(ids);
    return rc;
}

int cli_generate(int argc, char **argv) {
    gen_opts o;
    if (parse_gen(argc, argv, &o) < 0) return 2;
    if (!o.seed_given) {
        o.sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
        if (o.sp.temperature > 0) fprintf(stderr, "seed: %llu\n", (unsigned long long)o.sp.seed);
    }
    char *file_text = NULL;
    size_t plen = 0;
    const char *prompt = "";
    if (o.prompt_file) {
        if (!(file_text = cli_read_file(o.prompt_file, &plen))) return 1;
        prompt = file_text;
    } else if (o.prompt) {
        prompt = o.prompt;
        plen = strlen(prompt);
    }
    char err[512];
    infer_model *m;
    if (infer_model_load(o.model, &m, err, sizeof err) < 0) {
        fprintf(stderr, "error: %s\n", err);
        free(file_text);
        return 1;
    }
    int rc = run_generate(&o, m, prompt, plen);
    infer_model_unref(m);
    free(file_text);
    return rc;
}
