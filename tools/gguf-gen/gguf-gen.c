/* gguf-gen.c - writes GGUF models for tests and benchmarks: seeded random
 * weights in the tensor layout and metadata llama.cpp expects for the
 * decoders llama, qwen2 and qwen3 and the encoders bert and nomic-bert, in
 * any type libinfer computes with (or the Q4_K_M mix), and re-quantizes
 * existing GGUF files.
 *
 * It streams: tensors are generated (or read from the source map) and
 * quantized one row at a time and written through gguf_write.h, so memory
 * stays at a few rows plus the metadata whatever the model's size.
 * Weights: matrices and biases normal(0, 0.02), RMSNorm and LayerNorm
 * weights 1 + 0.1 * normal(0, 1), each tensor from its own xoshiro256** stream
 * seeded by (seed, tensor name), so a tensor's values do not depend on the
 * output type or on which other tensors exist.  See docs/gguf-gen.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/gguf_write.h"
#include "kernels/quant.h"

#define TYPE_Q4_K_M 1000 /* pseudo type: the Q4_K_M mix */

/* The synthetic WordPiece vocabulary: 104 specials and unused slots (ids as
 * in BERT's uncased vocab), then each of these characters as a word start
 * and as a continuation. */
#define WPM_CHARS "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-;:()\""
#define WPM_MIN_VOCAB (104 + 2 * (int)(sizeof WPM_CHARS - 1))

/* llama.cpp's llama_ftype values for general.file_type. */
enum { FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q8_0 = 7, FT_Q4_K_M = 15, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_BF16 = 32 };

typedef struct {
    const char *arch; /* "llama", "qwen2", "qwen3", "bert", "nomic-bert" */
    const char *name;
    int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    double rope_base, eps;
    int tied; /* 1: no output.weight, the lm head is token_embd */
    const char *pooling; /* encoders: "mean", "cls", "last", "none" (NULL: mean) */
} shape;

static int is_encoder(const char *arch) { return !strcmp(arch, "bert") || !strcmp(arch, "nomic-bert"); }

typedef struct {
    shape s;
    int type;          /* a QT_* or TYPE_Q4_K_M */
    uint64_t seed;
    const char *out, *vocab, *from;
    int quiet;
    int vocab_size_given; /* with --vocab: the file's size must equal it */
} options;

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("gguf-gen: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static int quiet;
static void note(const char *fmt, ...) {
    if (quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("gguf-gen: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- presets and options ----------------------------------------------------- */

static const struct { const char *name; shape s; } PRESETS[] = {
    /* the exact shapes of Qwen3-0.6B */
    {"qwen3-0.6b", {"qwen3", "Qwen3-0.6B-synthetic", 28, 1024, 16, 8, 128, 3072, 151936, 40960, 1e6, 1e-6, 1, NULL}},
    /* the exact shapes of Qwen3-4B (tie_word_embeddings true in its config) */
    {"qwen3-4b", {"qwen3", "Qwen3-4B-synthetic", 36, 2560, 32, 8, 128, 9728, 151936, 40960, 1e6, 1e-6, 1, NULL}},
    /* the models of ../shared/refs/README.md */
    {"tiny-llama", {"llama", "tiny-llama", 2, 256, 4, 2, 64, 768, 512, 2048, 1e4, 1e-5, 0, NULL}},
    {"tiny-qwen2", {"qwen2", "tiny-qwen2", 2, 256, 4, 2, 64, 768, 512, 2048, 1e6, 1e-6, 0, NULL}},
    {"tiny-qwen3", {"qwen3", "tiny-qwen3", 2, 256, 4, 2, 128, 768, 512, 2048, 1e6, 1e-6, 1, NULL}},
    /* stories260K's shapes: rows of 64 and 172 exercise the type fallbacks */
    {"stories260k", {"llama", "stories260k-synthetic", 5, 64, 8, 4, 8, 172, 512, 2048, 1e4, 1e-5, 0, NULL}},
    /* encoders: BERT-base (and BGE-base) and all-MiniLM-L6-v2 shapes, and
     * small ones for tests */
    {"bert-base", {"bert", "bert-base-synthetic", 12, 768, 12, 12, 64, 3072, 30522, 512, 0, 1e-12, 0, "cls"}},
    {"minilm-l6", {"bert", "all-MiniLM-L6-v2-synthetic", 6, 384, 12, 12, 32, 1536, 30522, 512, 0, 1e-12, 0, "mean"}},
    {"tiny-bert", {"bert", "tiny-bert", 2, 64, 4, 4, 16, 128, 512, 128, 0, 1e-12, 0, "mean"}},
    {"tiny-nomic-bert", {"nomic-bert", "tiny-nomic-bert", 2, 64, 4, 4, 16, 128, 512, 128, 1000, 1e-12, 0, "mean"}},
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: gguf-gen [--preset NAME] [shape options] [--vocab FILE] [--type T] [--seed N] -o OUT\n"
            "       gguf-gen --from FILE --type T -o OUT\n"
            "\n"
            "Writes a GGUF model with seeded random weights (or re-quantizes FILE).\n"
            "\n"
            "  --preset NAME     qwen3-0.6b, qwen3-4b, tiny-llama, tiny-qwen2, tiny-qwen3,\n"
            "                    stories260k, bert-base, minilm-l6, tiny-bert, tiny-nomic-bert\n"
            "  --arch A          llama | qwen2 | qwen3 | bert | nomic-bert (default llama)\n"
            "  --layers N        blocks (default 2)\n"
            "  --embd N          hidden size (default 256)\n"
            "  --heads N         attention heads (default 4)\n"
            "  --kv-heads N      KV heads, divides --heads (default = heads)\n"
            "  --head-dim N      per-head size, even (default embd/heads)\n"
            "  --ffn N           feed-forward size (default 768)\n"
            "  --vocab-size N    vocabulary (default 512); a synthetic SentencePiece vocab\n"
            "                    (WordPiece for bert, nomic-bert) of this size is generated\n"
            "                    unless --vocab is given\n"
            "  --vocab FILE      copy every tokenizer.* key from a vocab-only or full GGUF\n"
            "  --ctx N           context_length metadata (default 2048)\n"
            "  --rope-base F     rope.freq_base (default 10000 llama, 1000000 qwen, 1000 nomic-bert)\n"
            "  --eps F           RMSNorm epsilon (default 1e-5 llama, 1e-6 qwen); encoders:\n"
            "                    LayerNorm epsilon (default 1e-12)\n"
            "  --pooling P       encoders: mean | cls | last | none (default: the preset's, else mean)\n"
            "  --tied / --untied lm head tied to token_embd (default: qwen3 tied)\n"
            "  --name S          general.name\n"
            "  --type T          f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q4_k_m (default f16)\n"
            "  --seed N          weight seed (default 1)\n"
            "  --from FILE       re-quantize FILE: 2-D tensors to --type, 1-D to f32\n"
            "  -o, --output OUT  file to write\n"
            "  -q, --quiet       no progress on stderr\n"
            "  -h, --help        this text\n");
}

static long long parse_int(const char *opt, const char *v, long long lo, long long hi) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die("%s: '%s' is not an integer in [%lld, %lld]", opt, v, lo, hi);
    return x;
}

static double parse_float(const char *opt, const char *v, double lo, double hi) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) die("%s: '%s' is not a number in [%g, %g]", opt, v, lo, hi);
    return x;
}

static int parse_type(const char *v) {
    if (!strcasecmp(v, "q4_k_m")) return TYPE_Q4_K_M;
    int t = quant_type_from_name(v);
    if (t < 0 || !quant_type_supported((uint32_t)t))
        die("--type: unknown type '%s' (f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q4_k_m)", v);
    return t;
}

static const char *type_label(int t) { return t == TYPE_Q4_K_M ? "q4_k_m" : quant_type_name((uint32_t)t); }

static uint32_t file_type_of(int t) {
    switch (t) {
    case QT_F32: return FT_F32;
    case QT_F16: return FT_F16;
    case QT_BF16: return FT_BF16;
    case QT_Q8_0: return FT_Q8_0;
    case QT_Q4_0: return FT_Q4_0;
    case QT_Q4_K: return FT_Q4_K_M; /* what llama-quantize writes for "Q4_K" */
    case QT_Q5_K: return FT_Q5_K_M;
    case QT_Q6_K: return FT_Q6_K;
    default: return FT_Q4_K_M;
    }
}

static void parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->s = (shape){"llama", NULL, 2, 256, 4, 0, 0, 768, 512, 2048, 0, 0, -1, NULL};
    o->type = QT_F16;
    o->seed = 1;
    int shape_given = 0;
    /* The preset goes first so that explicit options refine it. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(argv[i], "--preset")) {
            if (i + 1 >= argc) die("--preset needs a value");
            size_t k;
            for (k = 0; k < sizeof PRESETS / sizeof PRESETS[0]; k++)
                if (!strcmp(PRESETS[k].name, argv[i + 1])) break;
            if (k == sizeof PRESETS / sizeof PRESETS[0])
                die("--preset: unknown preset '%s' (qwen3-0.6b qwen3-4b tiny-llama tiny-qwen2 tiny-qwen3 stories260k "
                    "bert-base minilm-l6 tiny-bert tiny-nomic-bert)",
                    argv[i + 1]);
            o->s = PRESETS[k].s;
            shape_given = 1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--tied")) { o->s.tied = 1; shape_given = 1; continue; }
        if (!strcmp(a, "--untied")) { o->s.tied = 0; shape_given = 1; continue; }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { o->quiet = 1; continue; }
        if (a[0] != '-') die("unexpected argument '%s' (see --help)", a);
        if (i + 1 >= argc) die("%s needs a value (see --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--preset")) continue;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) o->out = v;
        else if (!strcmp(a, "--type")) o->type = parse_type(v);
        else if (!strcmp(a, "--seed")) o->seed = (uint64_t)parse_int(a, v, 0, LLONG_MAX);
        else if (!strcmp(a, "--vocab")) o->vocab = v;
        else if (!strcmp(a, "--from")) o->from = v;
        else {
            shape_given = 1;
            if (!strcmp(a, "--arch")) {
                if (strcmp(v, "llama") && strcmp(v, "qwen2") && strcmp(v, "qwen3") && !is_encoder(v))
                    die("--arch: '%s' is not llama, qwen2, qwen3, bert or nomic-bert", v);
                o->s.arch = v;
            } else if (!strcmp(a, "--pooling")) {
                if (strcmp(v, "mean") && strcmp(v, "cls") && strcmp(v, "last") && strcmp(v, "none"))
                    die("--pooling: '%s' is not mean, cls, last or none", v);
                o->s.pooling = v;
            } else if (!strcmp(a, "--layers")) o->s.n_layer = (int)parse_int(a, v, 1, 1024);
            else if (!strcmp(a, "--embd")) o->s.n_embd = (int)parse_int(a, v, 1, 65536);
            else if (!strcmp(a, "--heads")) o->s.n_head = (int)parse_int(a, v, 1, 1024);
            else if (!strcmp(a, "--kv-heads")) o->s.n_head_kv = (int)parse_int(a, v, 1, 1024);
            else if (!strcmp(a, "--head-dim")) o->s.head_dim = (int)parse_int(a, v, 2, 4096);
            else if (!strcmp(a, "--ffn")) o->s.n_ff = (int)parse_int(a, v, 1, 1 << 20);
            else if (!strcmp(a, "--vocab-size")) {
                o->s.n_vocab = (int)parse_int(a, v, 1, 1 << 24);
                o->vocab_size_given = 1;
            } else if (!strcmp(a, "--ctx")) o->s.n_ctx = (int)parse_int(a, v, 1, 1 << 24);
            else if (!strcmp(a, "--rope-base")) o->s.rope_base = parse_float(a, v, 1e-3, 1e12);
            else if (!strcmp(a, "--eps")) o->s.eps = parse_float(a, v, 1e-12, 1.0);
            else if (!strcmp(a, "--name")) o->s.name = v;
            else die("unknown option '%s' (see --help)", a);
        }
    }
    quiet = o->quiet;
    if (!o->out) die("no output file (-o OUT)");
    if (o->from) {
        if (shape_given || o->vocab) die("--from re-quantizes a file as it is: shape and --vocab options do not apply");
        return;
    }
    shape *s = &o->s;
    int qwen = strcmp(s->arch, "llama") != 0, enc = is_encoder(s->arch);
    if (s->pooling && !enc) die("--pooling applies to the encoders (bert, nomic-bert) only");
    if (enc) {
        /* encoders have no lm head; nomic-embed's rotary base is 1000 */
        s->tied = 0;
        if (s->rope_base == 0) s->rope_base = !strcmp(s->arch, "nomic-bert") ? 1000 : 1e4;
        if (s->eps == 0) s->eps = 1e-12;
        if (!s->pooling) s->pooling = "mean";
        if (s->n_embd % s->n_head) die("--embd %d is not a multiple of --heads %d", s->n_embd, s->n_head);
        if (s->head_dim && s->head_dim * s->n_head != s->n_embd)
            die("an encoder's head size is embd / heads (%d), not %d", s->n_embd / s->n_head, s->head_dim);
    }
    if (s->tied < 0) s->tied = !strcmp(s->arch, "qwen3");
    if (s->rope_base == 0) s->rope_base = qwen ? 1e6 : 1e4;
    if (s->eps == 0) s->eps = qwen ? 1e-6 : 1e-5;
    if (s->n_head_kv == 0) s->n_head_kv = s->n_head;
    if (s->n_head % s->n_head_kv) die("--kv-heads %d does not divide --heads %d", s->n_head_kv, s->n_head);
    if (s->head_dim == 0) {
        if (s->n_embd % s->n_head) die("--embd %d is not a multiple of --heads %d: give --head-dim", s->n_embd, s->n_head);
        s->head_dim = s->n_embd / s->n_head;
    }
    if (s->head_dim % 2) die("head dim %d is odd (RoPE rotates pairs)", s->head_dim);
    if ((long long)s->n_head * s->head_dim > 1 << 20) die("heads x head dim is too large");
    if (!o->vocab && !enc && s->n_vocab < 3 + 256 + 1)
        die("--vocab-size %d: the synthetic vocabulary needs at least 260 tokens (3 special + 256 bytes + 1)",
            s->n_vocab);
    if (!o->vocab && enc && s->n_vocab < WPM_MIN_VOCAB)
        die("--vocab-size %d: the synthetic WordPiece vocabulary needs at least %d tokens", s->n_vocab, WPM_MIN_VOCAB);
    if (!s->name) s->name = s->arch;
}

/* ---- random numbers ------------------------------------------------------------ */

typedef struct { uint64_t s[4]; int has_spare; double spare; } rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the name */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) { /* xoshiro256** */
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Box-Muller: two normals per pair of uniforms in (0, 1). */
static double rng_normal(rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u = ((double)(rng_next(r) >> 11) + 0.5) * 0x1p-53, v = ((double)(rng_next(r) >> 11) + 0.5) * 0x1p-53;
    double m = sqrt(-2.0 * log(u)), a = 6.283185307179586 * v;
    r->spare = m * sin(a);
    r->has_spare = 1;
    return m * cos(a);
}

/* ---- tensor plan ------------------------------------------------------------------ */

enum { INIT_MATRIX, INIT_NORM, INIT_BIAS };

typedef struct {
    char name[GGUF_WRITE_MAX_NAME + 1];
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    int init;
    uint32_t type;    /* chosen output type */
    uint32_t src;     /* --from: index of the source tensor */
} tplan;

typedef struct { tplan *t; size_t n, cap; } plan;

static tplan *plan_add(plan *p, const char *name, uint32_t n_dims, int64_t ne0, int64_t ne1, int init) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->t = realloc(p->t, p->cap * sizeof *p->t);
        if (!p->t) die("out of memory");
    }
    tplan *t = &p->t[p->n++];
    memset(t, 0, sizeof *t);
    if (strlen(name) > GGUF_WRITE_MAX_NAME) die("tensor name '%s' too long", name);
    strcpy(t->name, name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = n_dims > 1 ? ne1 : 1;
    t->ne[2] = t->ne[3] = 1;
    t->init = init;
    return t;
}

/* llama.cpp's "use_more_bits": the first and last eighth of the layers and
 * every third layer in between get more bits in its K_M mixes. */
static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* Layer index of "blk.N.xxx", or -1. */
static int layer_of(const char *name) {
    if (strncmp(name, "blk.", 4)) return -1;
    char *end;
    long v = strtol(name + 4, &end, 10);
    return end != name + 4 && *end == '.' && v >= 0 && v < INT_MAX ? (int)v : -1;
}

static int name_is(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && !strcmp(name + n - k, suffix);
}

/* The type a weight tensor gets.  Q4_K_M: Q4_K everywhere except Q6_K for
 * the lm head (output.weight, or token_embd.weight when tied) and for
 * attn_v and ffn_down in the layers use_more_bits picks.  Then, if rows do
 * not split into the type's blocks: q8_0, else f16. */
static uint32_t choose_type(const tplan *t, int want, int n_layer, int has_output) {
    if (t->n_dims == 1) return QT_F32;
    /* BERT's learned positions and token types stay f32, as llama.cpp's
     * converter and llama-quantize leave them */
    if (!strcmp(t->name, "position_embd.weight") || !strcmp(t->name, "token_types.weight")) return QT_F32;
    uint32_t ty = (uint32_t)want;
    if (want == TYPE_Q4_K_M) {
        int layer = layer_of(t->name);
        ty = QT_Q4_K;
        if (!strcmp(t->name, "output.weight") || (!has_output && !strcmp(t->name, "token_embd.weight")))
            ty = QT_Q6_K;
        else if (layer >= 0 && (name_is(t->name, ".attn_v.weight") || name_is(t->name, ".ffn_down.weight")) &&
                 use_more_bits(layer, n_layer))
            ty = QT_Q6_K;
    }
    if (t->ne[0] % quant_block_elems(ty) == 0) return ty;
    uint32_t fb = t->ne[0] % QK8_0 == 0 ? QT_Q8_0 : QT_F16;
    note("%s: rows of %lld are not a multiple of the %s block (%lld); using %s", t->name, (long long)t->ne[0],
         quant_type_name(ty), (long long)quant_block_elems(ty), quant_type_name(fb));
    return fb;
}

/* The tensors of bert / nomic-bert, named as llama.cpp's converter names
 * them: token, type and (bert) position embeddings, their LayerNorm, then
 * per block the attention (bert: q/k/v with biases; nomic-bert: one fused
 * qkv, no biases), its post-LayerNorm, the FFN (bert: up/down with biases,
 * GELU; nomic-bert: up, gate, down, SwiGLU) and the output LayerNorm. */
static void build_encoder_plan(const shape *s, plan *p) {
    char nm[80];
    int nomic = !strcmp(s->arch, "nomic-bert");
    int64_t E = s->n_embd, kv = (int64_t)s->n_head_kv * s->head_dim, F = s->n_ff;
    plan_add(p, "token_embd.weight", 2, E, s->n_vocab, INIT_MATRIX);
    plan_add(p, "token_types.weight", 2, E, 2, INIT_MATRIX);
    if (!nomic) plan_add(p, "position_embd.weight", 2, E, s->n_ctx, INIT_MATRIX);
    plan_add(p, "token_embd_norm.weight", 1, E, 1, INIT_NORM);
    plan_add(p, "token_embd_norm.bias", 1, E, 1, INIT_BIAS);
    for (int l = 0; l < s->n_layer; l++) {
#define T(suffix, nd, a, b, init)                                                                            \
    do {                                                                                                         \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix);                                                         \
        plan_add(p, nm, nd, a, b, init);                                                                         \
    } while (0)
        if (nomic) {
            T("attn_qkv.weight", 2, E, E + 2 * kv, INIT_MATRIX);
        } else {
            T("attn_q.weight", 2, E, E, INIT_MATRIX);
            T("attn_q.bias", 1, E, 1, INIT_BIAS);
            T("attn_k.weight", 2, E, kv, INIT_MATRIX);
            T("attn_k.bias", 1, kv, 1, INIT_BIAS);
            T("attn_v.weight", 2, E, kv, INIT_MATRIX);
            T("attn_v.bias", 1, kv, 1, INIT_BIAS);
        }
        T("attn_output.weight", 2, E, E, INIT_MATRIX);
        if (!nomic) T("attn_output.bias", 1, E, 1, INIT_BIAS);
        T("attn_output_norm.weight", 1, E, 1, INIT_NORM);
        T("attn_output_norm.bias", 1, E, 1, INIT_BIAS);
        T("ffn_up.weight", 2, E, F, INIT_MATRIX);
        if (!nomic) T("ffn_up.bias", 1, F, 1, INIT_BIAS);
        if (nomic) T("ffn_gate.weight", 2, E, F, INIT_MATRIX);
        T("ffn_down.weight", 2, F, E, INIT_MATRIX);
        if (!nomic) T("ffn_down.bias", 1, E, 1, INIT_BIAS);
        T("layer_output_norm.weight", 1, E, 1, INIT_NORM);
        T("layer_output_norm.bias", 1, E, 1, INIT_BIAS);
#undef T
    }
}

static void build_plan(const shape *s, plan *p) {
    if (is_encoder(s->arch)) {
        build_encoder_plan(s, p);
        return;
    }
    char nm[80];
    int64_t q_dim = (int64_t)s->n_head * s->head_dim, kv_dim = (int64_t)s->n_head_kv * s->head_dim;
    int qwen2 = !strcmp(s->arch, "qwen2"), qwen3 = !strcmp(s->arch, "qwen3");
    plan_add(p, "token_embd.weight", 2, s->n_embd, s->n_vocab, INIT_MATRIX);
    for (int l = 0; l < s->n_layer; l++) {
#define T(suffix, nd, a, b, init)                                                                            \
    do {                                                                                                         \
        snprintf(nm, sizeof nm, "blk.%d.%s", l, suffix);                                                         \
        plan_add(p, nm, nd, a, b, init);                                                                         \
    } while (0)
        T("attn_norm.weight", 1, s->n_embd, 1, INIT_NORM);
        T("attn_q.weight", 2, s->n_embd, q_dim, INIT_MATRIX);
        T("attn_k.weight", 2, s->n_embd, kv_dim, INIT_MATRIX);
        T("attn_v.weight", 2, s->n_embd, kv_dim, INIT_MATRIX);
        if (qwen2) {
            T("attn_q.bias", 1, q_dim, 1, INIT_BIAS);
            T("attn_k.bias", 1, kv_dim, 1, INIT_BIAS);
            T("attn_v.bias", 1, kv_dim, 1, INIT_BIAS);
        }
        if (qwen3) {
            T("attn_q_norm.weight", 1, s->head_dim, 1, INIT_NORM);
            T("attn_k_norm.weight", 1, s->head_dim, 1, INIT_NORM);
        }
        T("attn_output.weight", 2, q_dim, s->n_embd, INIT_MATRIX);
        T("ffn_norm.weight", 1, s->n_embd, 1, INIT_NORM);
        T("ffn_gate.weight", 2, s->n_embd, s->n_ff, INIT_MATRIX);
        T("ffn_up.weight", 2, s->n_embd, s->n_ff, INIT_MATRIX);
        T("ffn_down.weight", 2, s->n_ff, s->n_embd, INIT_MATRIX);
#undef T
    }
    plan_add(p, "output_norm.weight", 1, s->n_embd, 1, INIT_NORM);
    if (!s->tied) plan_add(p, "output.weight", 2, s->n_embd, s->n_vocab, INIT_MATRIX);
}

/* ---- vocabulary ---------------------------------------------------------------------- */

/* A set of strings (open addressing) to keep synthetic pieces unique. */
typedef struct { char **slot; size_t cap; } strset;

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
    return h;
}

/* Inserts s (owned by the caller, must outlive the set); 0 if present. */
static int strset_add(strset *set, char *s) {
    size_t i = (size_t)hash_str(s) & (set->cap - 1);
    while (set->slot[i]) {
        if (!strcmp(set->slot[i], s)) return 0;
        i = (i + 1) & (set->cap - 1);
    }
    set->slot[i] = s;
    return 1;
}

/* A SentencePiece ("llama") vocabulary of n tokens: <unk>, <s>, </s>, the
 * 256 byte tokens, then pieces that are each the concatenation of two
 * earlier ones (so BPE merges can reach every one of them), with scores
 * falling in order of creation.  The first pieces are single characters and
 * "▁" + letter; a "▁" only ever starts a piece, as in real SPM vocabs. */
static void synth_vocab(gguf_writer *w, int n) {
    char **tok = calloc((size_t)n, sizeof *tok);
    float *score = calloc((size_t)n, sizeof *score);
    int32_t *ttype = calloc((size_t)n, sizeof *ttype);
    strset set = {NULL, 1};
    while (set.cap < 4 * (size_t)n) set.cap <<= 1;
    set.slot = calloc(set.cap, sizeof *set.slot);
    if (!tok || !score || !ttype || !set.slot) die("out of memory building the vocabulary");
    static const char *const special[3] = {"<unk>", "<s>", "</s>"};
    int k = 0;
    for (; k < 3; k++) {
        tok[k] = strdup(special[k]);
        ttype[k] = k == 0 ? 2 : 3; /* UNKNOWN, CONTROL */
    }
    for (int b = 0; b < 256; b++, k++) {
        char buf[8];
        snprintf(buf, sizeof buf, "<0x%02X>", b);
        tok[k] = strdup(buf);
        ttype[k] = 6; /* BYTE */
    }
    for (int i = 0; i < k; i++) {
        if (!tok[i]) die("out of memory building the vocabulary");
        strset_add(&set, tok[i]);
    }
    int first_piece = k;
    static const char base[] = "etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,!?'-";
    const char *space = "\xe2\x96\x81"; /* U+2581, SentencePiece's word boundary */
    /* Seeds: "▁", then each base character alone and after "▁". */
    char buf[512];
    if (k < n) {
        if (!(tok[k] = strdup(space))) die("out of memory building the vocabulary");
        strset_add(&set, tok[k]);
        k++;
    }
    for (const char *c = base; *c && k < n; c++) {
        snprintf(buf, sizeof buf, "%c", *c);
        if (!(tok[k] = strdup(buf))) die("out of memory building the vocabulary");
        if (strset_add(&set, tok[k])) k++; else free(tok[k]);
        if (k >= n) break;
        snprintf(buf, sizeof buf, "%s%c", space, *c);
        if (!(tok[k] = strdup(buf))) die("out of memory building the vocabulary");
        if (strset_add(&set, tok[k])) k++; else free(tok[k]);
    }
    /* Pairs (i, j) of earlier pieces along anti-diagonals i + j = d, the
     * right part never containing "▁". */
    for (long d = 0; k < n; d++) {
        int grew = 0;
        for (long i = 0; i <= d && k < n; i++) {
            long j = d - i;
            long li = first_piece + i, lj = first_piece + j;
            if (li >= k || lj >= k) continue;
            if (strstr(tok[lj], space)) continue;
            size_t la = strlen(tok[li]), lb = strlen(tok[lj]);
            if (la + lb >= sizeof buf) continue;
            memcpy(buf, tok[li], la);
            memcpy(buf + la, tok[lj], lb + 1);
            if (!(tok[k] = strdup(buf))) die("out of memory building the vocabulary");
            if (strset_add(&set, tok[k])) { k++; grew = 1; } else free(tok[k]);
        }
        if (!grew && d > 2L * k) die("cannot build a vocabulary of %d pieces", n);
    }
    for (int i = 0; i < n; i++) {
        if (ttype[i] == 0) ttype[i] = 1; /* NORMAL */
        score[i] = i >= first_piece ? -(float)(i - first_piece) : 0.0f;
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, NULL, (uint64_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, score, (uint64_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, ttype, (uint64_t)n);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
    for (int i = 0; i < n; i++) free(tok[i]);
    free(tok);
    free(score);
    free(ttype);
    free(set.slot);
}

/* A WordPiece ("bert") vocabulary of n tokens in the layout of BERT's
 * uncased vocab as llama.cpp's converter writes it: [PAD] 0, [unused0..98]
 * 1-99, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103, then word pieces, a
 * word start marked by a leading "\u2581" and a continuation ("##x" in the
 * original) bare: every character of WPM_CHARS in both forms, then pairs
 * and triples of letters in both forms until n. */
static void synth_wpm_vocab(gguf_writer *w, int n) {
    char **tok = calloc((size_t)n, sizeof *tok);
    int32_t *ttype = calloc((size_t)n, sizeof *ttype);
    if (!tok || !ttype) die("out of memory building the vocabulary");
    static const char *const special[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    static const int ids[5] = {0, 100, 101, 102, 103};
    for (int i = 0; i < 5; i++) {
        tok[ids[i]] = strdup(special[i]);
        ttype[ids[i]] = i == 1 ? 2 : 3; /* UNKNOWN, CONTROL */
    }
    char buf[32];
    for (int i = 1; i < 100; i++) {
        snprintf(buf, sizeof buf, "[unused%d]", i - 1);
        tok[i] = strdup(buf);
        ttype[i] = 1;
    }
    const char *space = "\xe2\x96\x81";
    int k = 104;
    for (const char *c = WPM_CHARS; *c && k + 1 < n; c++) {
        snprintf(buf, sizeof buf, "%s%c", space, *c);
        tok[k++] = strdup(buf);
        snprintf(buf, sizeof buf, "%c", *c);
        tok[k++] = strdup(buf);
    }
    static const char letters[] = "etaoinshrdlucmfwypvbgkjqxz";
    for (int len = 2; k < n; len++) {
        if (len > 6) die("cannot build a WordPiece vocabulary of %d tokens", n);
        long count = 1;
        for (int i = 0; i < len; i++) count *= 26;
        for (long idx = 0; idx < count && k < n; idx++) {
            char word[8];
            long x = idx;
            for (int i = len - 1; i >= 0; i--, x /= 26) word[i] = letters[x % 26];
            word[len] = '\0';
            snprintf(buf, sizeof buf, "%s%s", space, word);
            tok[k++] = strdup(buf);
            if (k < n) tok[k++] = strdup(word);
        }
    }
    for (int i = 0; i < n; i++) {
        if (!tok[i]) die("out of memory building the vocabulary");
        if (!ttype[i]) ttype[i] = 1; /* NORMAL */
    }
    gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, NULL, (uint64_t)n);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, ttype, (uint64_t)n);
    gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 100);
    gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 102);
    gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 0);
    gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", 101);
    gguf_writer_set_u32(w, "tokenizer.ggml.mask_token_id", 103);
    for (int i = 0; i < n; i++) free(tok[i]);
    free(tok);
    free(ttype);
}

/* Copies every tokenizer.* key of FILE; returns its number of tokens. */
static int copy_vocab(gguf_writer *w, const char *path) {
    char err[256];
    gguf_file *g;
    if (gguf_open(path, &g, err, sizeof err) < 0) die("--vocab %s: %s", path, err);
    const gguf_kv *toks;
    if (gguf_get_arr(g, "tokenizer.ggml.tokens", GGUF_STRING, &toks) != 0)
        die("--vocab %s: no tokenizer.ggml.tokens array of strings", path);
    if (toks->arr_n < 1 || toks->arr_n > (1u << 24)) die("--vocab %s: %llu tokens", path, (unsigned long long)toks->arr_n);
    int n = (int)toks->arr_n, copied = 0;
    for (uint64_t i = 0; i < gguf_n_kv(g); i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        if (strncmp(kv->key, "tokenizer.", 10)) continue;
        if (gguf_writer_copy_kv(w, kv) < 0) die("--vocab %s: %s", path, gguf_writer_error(w));
        copied++;
    }
    note("tokenizer: %d keys, %d tokens from %s", copied, n, path);
    gguf_close(g);
    return n;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    const char *path;
    gguf_writer *w;
    float *row;
    void *qrow;
    size_t row_cap, qrow_cap;
    uint64_t done_bytes, total_bytes;
    double t0;
    int last_pct;
    int regular; /* the output is a regular file (a partial one may be removed) */
} sink;

/* Removes a partial output, but only a regular file: -o /dev/full or a
 * pipe must never be unlinked (we may be running as root). */
static void sink_fail(sink *k, const char *what, const char *err) {
    if (k->f) fclose(k->f);
    if (k->regular) unlink(k->path);
    die("%s: %s", what, err);
}

static void ensure_rows(sink *k, int64_t n, uint32_t type) {
    size_t need = (size_t)n * sizeof(float), qneed = quant_row_bytes(type, n);
    if (need > k->row_cap) {
        free(k->row);
        if (!(k->row = malloc(need))) die("out of memory");
        k->row_cap = need;
    }
    if (qneed > k->qrow_cap) {
        free(k->qrow);
        if (!(k->qrow = malloc(qneed))) die("out of memory");
        k->qrow_cap = qneed;
    }
}

static void sink_write(sink *k, const void *data, size_t n, const char *tname) {
    char err[256];
    if (gguf_writer_write(k->w, data, n, err, sizeof err) < 0) sink_fail(k, tname, err);
    k->done_bytes += n;
    int pct = k->total_bytes ? (int)(100 * k->done_bytes / k->total_bytes) : 100;
    if (pct / 10 > k->last_pct / 10 && k->total_bytes > (64u << 20)) {
        note("%3d%% (%.1f s)", pct, now() - k->t0);
        k->last_pct = pct;
    }
}

static void sink_begin(sink *k, const char *path) {
    char err[256];
    k->path = path;
    k->f = fopen(path, "wb");
    if (!k->f) die("cannot create %s: %s", path, strerror(errno));
    struct stat st;
    k->regular = fstat(fileno(k->f), &st) == 0 && S_ISREG(st.st_mode);
    static char buf[1 << 20];
    setvbuf(k->f, buf, _IOFBF, sizeof buf);
    if (gguf_writer_begin(k->w, k->f, err, sizeof err) < 0) sink_fail(k, path, err);
    for (uint64_t i = 0; i < gguf_writer_n_tensors(k->w); i++) k->total_bytes += gguf_writer_tensor_nbytes(k->w, i);
    k->t0 = now();
}

static void sink_end(sink *k, const char *what) {
    char err[256];
    uint64_t size = 0;
    if (gguf_writer_finish(k->w, &size, err, sizeof err) < 0) sink_fail(k, k->path, err);
    if (fclose(k->f) != 0) {
        k->f = NULL;
        sink_fail(k, k->path, strerror(errno));
    }
    k->f = NULL;
    note("wrote %s: %s, %llu tensors, %.1f MB in %.1f s", k->path, what,
         (unsigned long long)gguf_writer_n_tensors(k->w), (double)size / 1e6, now() - k->t0);
    free(k->row);
    free(k->qrow);
}

static void set_common_meta(gguf_writer *w, int type) {
    gguf_writer_set_u32(w, "general.file_type", file_type_of(type));
    gguf_writer_set_u32(w, "general.quantization_version", 2);
}

static int generate(const options *o) {
    const shape *s = &o->s;
    gguf_writer *w = gguf_writer_new();
    if (!w) die("out of memory");
    char key[128];
    const char *a = s->arch;
    gguf_writer_set_str(w, "general.architecture", a);
    gguf_writer_set_str(w, "general.type", "model");
    gguf_writer_set_str(w, "general.name", s->name);
#define K(suffix) (snprintf(key, sizeof key, "%s.%s", a, suffix), key)
    int enc = is_encoder(a);
    gguf_writer_set_u32(w, K("context_length"), (uint32_t)s->n_ctx);
    gguf_writer_set_u32(w, K("embedding_length"), (uint32_t)s->n_embd);
    gguf_writer_set_u32(w, K("block_count"), (uint32_t)s->n_layer);
    gguf_writer_set_u32(w, K("feed_forward_length"), (uint32_t)s->n_ff);
    gguf_writer_set_u32(w, K("attention.head_count"), (uint32_t)s->n_head);
    if (enc) {
        /* what llama.cpp's converter writes for BERT-like models */
        if (s->n_head_kv != s->n_head) gguf_writer_set_u32(w, K("attention.head_count_kv"), (uint32_t)s->n_head_kv);
        gguf_writer_set_f32(w, K("attention.layer_norm_epsilon"), (float)s->eps);
        gguf_writer_set_bool(w, K("attention.causal"), 0);
        /* llama.cpp's llama_pooling_type: 0 none, 1 mean, 2 cls, 3 last */
        uint32_t pool = !strcmp(s->pooling, "mean")  ? 1
                        : !strcmp(s->pooling, "cls") ? 2
                        : !strcmp(s->pooling, "last") ? 3
                                                      : 0;
        gguf_writer_set_u32(w, K("pooling_type"), pool);
        if (!strcmp(a, "nomic-bert")) gguf_writer_set_f32(w, K("rope.freq_base"), (float)s->rope_base);
    } else {
        gguf_writer_set_u32(w, K("attention.head_count_kv"), (uint32_t)s->n_head_kv);
        gguf_writer_set_f32(w, K("rope.freq_base"), (float)s->rope_base);
        gguf_writer_set_f32(w, K("attention.layer_norm_rms_epsilon"), (float)s->eps);
    }
    /* qwen3 always states its head size; the others only when it is not embd/heads */
    if (!strcmp(a, "qwen3") || (!enc && s->head_dim * s->n_head != s->n_embd)) {
        gguf_writer_set_u32(w, K("attention.key_length"), (uint32_t)s->head_dim);
        gguf_writer_set_u32(w, K("attention.value_length"), (uint32_t)s->head_dim);
    }
    set_common_meta(w, o->type);

    shape sv = *s;
    if (o->vocab) {
        int n = copy_vocab(w, o->vocab);
        if (o->vocab_size_given && sv.n_vocab != n)
            die("--vocab-size %d but %s has %d tokens", sv.n_vocab, o->vocab, n);
        if (sv.n_vocab != n) note("vocabulary size %d (from %s, not %d)", n, o->vocab, sv.n_vocab);
        sv.n_vocab = n;
    } else if (enc) {
        synth_wpm_vocab(w, sv.n_vocab);
    } else {
        synth_vocab(w, sv.n_vocab);
    }
    /* the rows of token_types.weight (sentence A and B) */
    if (enc) gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", 2);
    if (!strcmp(a, "llama")) {
        gguf_writer_set_u32(w, K("vocab_size"), (uint32_t)sv.n_vocab);
        gguf_writer_set_u32(w, K("rope.dimension_count"), (uint32_t)sv.head_dim);
    }
#undef K

    plan p = {0};
    build_plan(&sv, &p);
    for (size_t i = 0; i < p.n; i++) {
        tplan *t = &p.t[i];
        t->type = choose_type(t, o->type, sv.n_layer, !sv.tied);
        if (gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type) < 0) die("%s", gguf_writer_error(w));
    }
    if (*gguf_writer_error(w)) die("%s", gguf_writer_error(w));

    sink k = {0};
    k.w = w;
    sink_begin(&k, o->out);
    int layer_seen = -1;
    for (size_t i = 0; i < p.n; i++) {
        tplan *t = &p.t[i];
        int layer = layer_of(t->name);
        if (layer != layer_seen && layer_seen >= 0 && sv.n_layer >= 8)
            note("layer %d/%d done (%.1f s)", layer_seen + 1, sv.n_layer, now() - k.t0);
        layer_seen = layer;
        rng r;
        rng_seed(&r, o->seed, t->name);
        int64_t n = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
        ensure_rows(&k, n, t->type);
        size_t rb = quant_row_bytes(t->type, n);
        for (int64_t row = 0; row < rows; row++) {
            for (int64_t j = 0; j < n; j++) {
                double z = rng_normal(&r);
                k.row[j] = (float)(t->init == INIT_NORM ? 1.0 + 0.1 * z : 0.02 * z);
            }
            quant_quantize_row(t->type, k.row, k.qrow, n);
            sink_write(&k, k.qrow, rb, t->name);
        }
    }
    char what[64];
    snprintf(what, sizeof what, "%s %s", sv.arch, type_label(o->type));
    sink_end(&k, what);
    free(p.t);
    gguf_writer_free(w);
    return 0;
}

/* ---- re-quantizing ------------------------------------------------------------------------ */

/* A source file, mapped read-only from the page cache.  gguf_open would
 * copy the whole file into anonymous memory (right for serving a model,
 * wrong for a one-pass conversion); this map lets each tensor's pages come
 * in as they are read and be dropped once converted. */
typedef struct { void *map; size_t len; } mapped_file;

static gguf_file *open_mapped(const char *path, mapped_file *m) {
    char err[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("--from %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        die("--from %s: not a regular file", path);
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        die("--from %s: empty file", path);
    }
    m->len = (size_t)st.st_size;
    m->map = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m->map == MAP_FAILED) die("--from %s: cannot map it: %s", path, strerror(errno));
    madvise(m->map, m->len, MADV_SEQUENTIAL);
    gguf_file *g;
    if (gguf_open_mem(m->map, m->len, &g, err, sizeof err) < 0) die("--from %s: %s", path, err);
    return g;
}

/* Drops the source pages just converted from this process (they are clean
 * file pages: a later read would fault them in again from the file). */
static void drop_pages(const void *p, uint64_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(pg - 1);
    if (e > a) madvise((void *)a, e - a, MADV_DONTNEED);
}

static int requantize(const options *o) {
    struct stat a, b;
    if (stat(o->from, &a) == 0 && stat(o->out, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
        die("-o %s is the --from file itself: write to another file", o->out);
    mapped_file src_map;
    gguf_file *g = open_mapped(o->from, &src_map);
    gguf_writer *w = gguf_writer_new();
    if (!w) die("out of memory");
    for (uint64_t i = 0; i < gguf_n_kv(g); i++)
        if (gguf_writer_copy_kv(w, gguf_kv_at(g, i)) < 0) die("--from %s: %s", o->from, gguf_writer_error(w));
    set_common_meta(w, o->type);
    /* layer count for the Q4_K_M rule: block_count, else the highest blk index */
    const char *arch = NULL;
    uint64_t alen = 0;
    char key[160];
    int64_t n_layer = -1;
    if (gguf_get_str(g, "general.architecture", &arch, &alen) == 0 && alen < 64) {
        snprintf(key, sizeof key, "%.*s.block_count", (int)alen, arch);
        if (gguf_get_i64(g, key, &n_layer) != 0) n_layer = -1;
    }
    int has_output = gguf_find_tensor(g, "output.weight") != NULL;
    plan p = {0};
    for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *st = gguf_tensor_at(g, i);
        int l = layer_of(st->name);
        if (l >= n_layer && n_layer >= 0 && l >= 0) n_layer = -1; /* metadata disagrees: count instead */
        if (!quant_type_supported(st->type))
            die("--from %s: tensor '%s' has type %s, which cannot be converted", o->from, st->name,
                quant_type_name(st->type));
    }
    if (n_layer < 0) {
        n_layer = 0;
        for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
            int l = layer_of(gguf_tensor_at(g, i)->name);
            if (l + 1 > n_layer) n_layer = l + 1;
        }
    }
    for (uint64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *st = gguf_tensor_at(g, i);
        tplan *t = plan_add(&p, st->name, st->n_dims, st->ne[0], st->ne[1], INIT_MATRIX);
        for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = st->ne[d];
        t->src = (uint32_t)i;
        t->type = choose_type(t, o->type, (int)n_layer, has_output);
        if (gguf_writer_add_tensor(w, t->name, t->n_dims, t->ne, t->type) < 0) die("%s", gguf_writer_error(w));
    }
    sink k = {0};
    k.w = w;
    sink_begin(&k, o->out);
    for (size_t i = 0; i < p.n; i++) {
        tplan *t = &p.t[i];
        const gguf_tensor *st = gguf_tensor_at(g, t->src);
        int64_t n = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
        size_t srb = quant_row_bytes(st->type, n), rb = quant_row_bytes(t->type, n);
        ensure_rows(&k, n, t->type);
        const unsigned char *src = st->data;
        uint64_t dropped = 0; /* source bytes of this tensor already released */
        for (int64_t row = 0; row < rows; row++) {
            const unsigned char *sr = src + (size_t)row * srb;
            if ((uint64_t)row * srb - dropped >= (8u << 20)) { /* every 8 MB: a big embedding is 300 MB */
                drop_pages(src + dropped, (uint64_t)row * srb - dropped);
                dropped = (uint64_t)row * srb;
            }
            if (st->type == t->type) { /* same type: the bytes as they are, no second rounding */
                sink_write(&k, sr, rb, t->name);
                continue;
            }
            quant_dequant_row(st->type, sr, k.row, n);
            quant_quantize_row(t->type, k.row, k.qrow, n);
            sink_write(&k, k.qrow, rb, t->name);
        }
        drop_pages(st->data, st->nbytes);
    }
    char what[300];
    snprintf(what, sizeof what, "%s re-quantized to %s", o->from, type_label(o->type));
    sink_end(&k, what);
    free(p.t);
    gguf_writer_free(w);
    gguf_close(g);
    munmap(src_map.map, src_map.len);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    options o;
    parse_args(argc, argv, &o);
    return o.from ? requantize(&o) : generate(&o);
}
