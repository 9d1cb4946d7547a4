/* infercmd.h - the INFER.* command front-end shared by inferkv-server and
 * inferkv.so.
 *
 * Both front-ends speak the same INFER.* language over the same engine;
 * everything that does not depend on how a reply is written or how a
 * client is blocked lives here, so the two never drift apart:
 *   - argument grammar: INFER.LOAD, INFER.GENERATE options, INFER.DETOKENIZE
 *     ids, each range-checked, with the error texts clients see;
 *   - TOKENSKEY decoding (little-endian uint32, byte by byte) and prompt
 *     tokenization (CHAT templates included);
 *   - model paths confined to infer-models-dir;
 *   - the model registry: names -> reference-counted models, swap on
 *     reload, the live list of models still serving requests, totals;
 *   - model loading on a thread of its own;
 *   - the request lifecycle over infer_sched, with the answer collected and,
 *     for streaming, handed over in pieces of complete UTF-8;
 *   - statistics aggregation for INFER.STATS and INFO infer;
 *   - INFER.EMBED: its grammar and the embedding request over an encoder's
 *     scheduler (infer_embed_submit);
 *   - INFER.RAG: its grammar, the retrieved hits, the chunk texts read out
 *     of their attributes, the prompt built from a template and cut to the
 *     generator's context, and the reply fields.
 * No server or module API type appears here.  Arguments arrive as
 * (pointer, length) pairs.  Error texts are whole Redis error lines
 * ("ERR ...", "TIMEOUT ...") without the leading '-'.
 *
 * Threads: the registry, models and requests are touched only on the
 * front-end's main thread, except the request fields and callbacks marked
 * "engine thread" and the load thread's work on its own ic_load. */
#ifndef INFERKV_INFERCMD_H
#define INFERKV_INFERCMD_H

#include "infer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define IC_MAX_MODELS 64           /* registered names */
#define IC_NAME_MAX 128            /* model name bytes + NUL */
#define IC_MAX_ALIASES 8
#define IC_MAX_STOP 16
#define IC_MAX_STOP_LEN 256
#define IC_MAX_TIMEOUT_MS (24LL * 3600 * 1000)
#define IC_MAX_CONTEXT (1 << 20)
#define IC_ERRLEN 512

typedef struct ic_arg {
    const char *ptr;
    size_t len;
} ic_arg;

/* ---- numbers (args.c) ----------------------------------------------------
 * Strict decimal parsing: optional '-', digits, nothing else. */
int ic_parse_ll(const ic_arg *a, long long *out);
int ic_parse_u64(const ic_arg *a, uint64_t *out);
int ic_parse_double(const ic_arg *a, double *out); /* finite only */
int ic_arg_is(const ic_arg *a, const char *word);  /* case-insensitive */
/* Integer in [lo, hi], else "ERR <what> must be an integer between lo and hi". */
int ic_arg_ll(const ic_arg *a, const char *what, long long lo, long long hi, long long *out, char *err,
              size_t errlen);
int ic_arg_double(const ic_arg *a, const char *what, double lo, double hi, double *out, char *err,
                  size_t errlen);
/* Printable copy of untrusted bytes for an error message. */
void ic_shown(const char *p, size_t len, char *out, size_t cap);
/* "ERR syntax error: <why> '<word>'" (at most 64 bytes of the word). */
int ic_syntax(const ic_arg *a, const char *why, char *err, size_t errlen);
/* Whether p[0..len) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF).  1, or 0 with *bad the offset of the first
 * byte that is not. */
int ic_utf8_valid(const char *p, size_t len, size_t *bad);

/* ---- model paths (paths.c) ----------------------------------------------- */

/* The path must name a file inside models_dir: relative, no ".." component,
 * no NUL.  *out = "models_dir/path" (malloc'd).  models_dir NULL or "":
 * loading is disabled. */
int ic_confine_path(const char *models_dir, const char *p, size_t len, char **out, char *err,
                    size_t errlen);

/* ---- models and the registry (registry.c) ---------------------------------- */

/* The engine's memory against infer-max-memory (budget.c): bytes charged
 * by live models (installed, replaced ones too until freed) and by loads
 * in progress.  Atomics: load threads reserve while the main thread frees. */
typedef struct ic_budget {
    _Atomic uint64_t charged; /* live models + loads in progress */
    _Atomic uint64_t loaded;  /* of which live models */
    _Atomic int models;       /* live models in `loaded` */
    _Atomic int loads;        /* loads holding a reservation */
} ic_budget;

typedef struct ic_model {
    char *path;
    infer_model *model;
    infer_threadpool *tp;
    infer_ctx *ctx;
    infer_sched *sched; /* NULL once stopped for shutdown */
    int encoder;        /* an embedding model: sched is infer_embed_sched_create's */
    int32_t embed_dim;  /* encoder: the length of its vectors */
    int refs;           /* one per registered name, one per request in flight */
    int requests;       /* requests in flight */
    int live;           /* on the registry's live list */
    struct ic_model *live_prev, *live_next;
    infer_mem mem;      /* as loaded (kv_used then: 0) */
    ic_budget *budget;  /* the registry's; charged back when the model is freed */
    uint64_t charged;   /* bytes this model holds in the budget */
    int reserved;       /* charged in the budget (a load reserved it) */
    int counted;        /* installed: counted as a loaded model, not a load */
} ic_model;

typedef struct ic_entry {
    char name[IC_NAME_MAX];
    ic_model *m;
} ic_entry;

typedef struct ic_totals {
    uint64_t submitted, completed, rejected, cancelled, timeouts, errors;
    uint64_t prompt_tokens, generated_tokens;
} ic_totals;

typedef struct ic_registry {
    ic_entry entries[IC_MAX_MODELS];
    int n;
    ic_model *live;    /* every installed model not yet freed (replaced ones too) */
    ic_totals retired; /* figures of freed models */
    uint64_t refused;  /* requests refused before reaching a scheduler */
    int in_flight;     /* requests + loads */
    int loads_running;
    struct ic_load *loads; /* started loads not yet freed */
    ic_budget budget;
} ic_registry;

/* The model registered as name, or NULL with "ERR no such model '...'". */
ic_model *ic_lookup(ic_registry *r, const ic_arg *name, char *err, size_t errlen);
ic_model *ic_find(ic_registry *r, const char *name, size_t len);
void ic_model_unref(ic_registry *r, ic_model *m);
/* Drops name from the registry; -1 with "ERR no such model" if absent. */
int ic_unregister(ic_registry *r, const ic_arg *name, char *err, size_t errlen);
/* Server shutdown: ends every request and joins every engine thread,
 * load threads included (a model loaded but not installed is stopped). */
void ic_stop_all(ic_registry *r);
/* Module unload with nothing in flight: frees every model. */
void ic_free_all(ic_registry *r);

/* What INFER.MODELS shows for one registered name. */
typedef struct ic_model_desc {
    const char *name, *arch, *kind, *ftype, *path; /* kind: "generator" or "encoder" */
    char types[512];
    size_t types_len;
    long long params, bytes, context, requests, dim; /* dim: 0 for a generator */
} ic_model_desc;
void ic_describe(const ic_entry *e, ic_model_desc *d);

/* ---- INFER.LOAD (load.c) ----------------------------------------------------- */

typedef struct ic_load_params {
    int threads, max_queue, max_active, nice, max_loads;
    int idle; /* engine and load threads in SCHED_IDLE (infer-idle-priority) */
    uint64_t kv_bytes;
    uint64_t max_memory; /* infer-max-memory: the engine's budget, 0: none */
} ic_load_params;

typedef struct ic_load {
    ic_model *m; /* built by the load thread; NULL when it failed */
    int32_t n_ctx;
    ic_load_params p;
    int n_names;
    char names[1 + IC_MAX_ALIASES][IC_NAME_MAX];
    char err[IC_ERRLEN];
    int refused; /* err is infer-max-memory's refusal (a whole message) */
    int installed;
    pthread_t thread;
    int started, joined;
    struct ic_load *prev, *next; /* the registry's list of started loads */
    /* Called on the load thread as the last thing it does with the job:
     * hand the job to the main thread there (which then ic_load_join()s). */
    void (*done)(struct ic_load *l);
    void *ud;
} ic_load;

/* INFER.LOAD name path [CONTEXT n] [ALIAS name ...]: argv[0] is the
 * command name.  Checks everything that can be checked on the main thread
 * (names, path confinement, the load limit) and returns a job to start. */
ic_load *ic_load_parse(ic_registry *r, const ic_arg *argv, int argc, const char *models_dir,
                       const ic_load_params *p, char *err, size_t errlen);
/* Starts the load thread (counts the job as in flight).  -1: the job was
 * not started, free it with ic_load_free. */
int ic_load_start(ic_registry *r, ic_load *l, char *err, size_t errlen);
void ic_load_join(ic_registry *r, ic_load *l);
/* Main thread, after join: registers the model under every name (replacing
 * models of those names: their requests finish on them).  -1 with the
 * error line when the load failed or the registry is full. */
int ic_load_install(ic_registry *r, ic_load *l, char *err, size_t errlen);
/* Joins if needed, frees a model that was not installed, and the job. */
void ic_load_free(ic_registry *r, ic_load *l);

/* ---- INFER.GENERATE (generate.c) ----------------------------------------------- */

enum { IC_SRC_TEXT, IC_SRC_PROMPTKEY, IC_SRC_TOKENSKEY };

typedef struct ic_gen_opts {
    int src;
    ic_arg input;         /* the prompt, or the key holding it (borrowed from argv) */
    long long max_tokens; /* 0 until ic_gen_prepare: the default */
    infer_sampler_params sp;
    char *stop[IC_MAX_STOP]; /* copies */
    int n_stop;
    int chat;
    long long timeout_ms;
    ic_arg store, stream; /* keys (borrowed); ptr NULL when absent */
} ic_gen_opts;

/* "ERR model 'name' is an encoder ..." when m cannot generate. */
int ic_need_generator(const ic_arg *name, const ic_model *m, char *err, size_t errlen);
/* The sampler defaults, the default timeout, nothing else set. */
void ic_gen_defaults(ic_gen_opts *o, long long default_timeout_ms);
/* One generation option at argv[*pos] (MAXTOKENS ... STREAM, CHAT), for
 * commands that take INFER.GENERATE's options after their own.  1: taken
 * (*pos at its last argument); 0: not a generation option; -1: the error
 * line ("no value after" when it is the last argument). */
int ic_gen_option(const ic_arg *argv, int argc, int *pos, int32_t n_ctx, int32_t n_vocab, ic_gen_opts *o,
                  char *err, size_t errlen);
/* INFER.GENERATE name (prompt | PROMPTKEY key | TOKENSKEY key) [options]:
 * argv[0] is the command name, argv[1] the model (already looked up).
 * 0, or -1 with the error line (free o either way). */
int ic_gen_parse(const ic_arg *argv, int argc, const ic_model *m, long long default_timeout_ms,
                 ic_gen_opts *o, char *err, size_t errlen);
void ic_gen_opts_free(ic_gen_opts *o);

/* TOKENSKEY bytes: little-endian uint32 ids, each < n_vocab. */
int32_t *ic_decode_tokens(const unsigned char *p, size_t len, int32_t n_vocab, int64_t *n, char *err,
                          size_t errlen);
/* Tokenizes text (wrapped in the model's chat template with chat). */
int32_t *ic_tokenize_prompt(const infer_vocab *v, const char *text, size_t len, int chat, int64_t *n,
                            char *err, size_t errlen);
/* Turns the copied input (prompt text or key bytes) into prompt ids and
 * settles max_tokens against the context.  malloc'd ids, or NULL with the
 * error line. */
int32_t *ic_gen_prepare(const ic_model *m, ic_gen_opts *o, int default_max_tokens, const char *input,
                        size_t len, int32_t *n_prompt, char *err, size_t errlen);

/* ---- requests (request.c) ----------------------------------------------------------- */

enum { IC_EV_TEXT, IC_EV_DONE };

typedef struct ic_req ic_req;
/* Called on the engine thread.  IC_EV_TEXT (streaming requests only): new
 * pieces wait in ic_req_take_pieces; it is not called again until they are
 * taken.  IC_EV_DONE: exactly once, last; from then on the request belongs
 * to the main thread. */
typedef void (*ic_notify_fn)(ic_req *r, int event);

struct ic_req {
    ic_model *m; /* holds a reference until ic_req_free */
    uint64_t id;
    long long timeout_ms;
    int streaming;
    ic_notify_fn notify;
    void *ud;
    /* engine thread until IC_EV_DONE, then main thread */
    char *text;
    size_t len, cap;
    int oom;
    int reason;
    infer_request_stats st;
    char errmsg[256];
    /* streaming pieces not yet taken (under mu) */
    pthread_mutex_t mu;
    char *pend;
    size_t plen, pcap;
    size_t *piece_lens;
    size_t npieces, pieces_cap;
    int text_posted;
};

ic_req *ic_req_new(ic_registry *r, ic_model *m, int streaming, ic_notify_fn notify, void *ud);
/* Submits; -1 with the error line (queue full, too big): then no callback
 * ever comes and the caller frees the request. */
int ic_req_submit(ic_registry *reg, ic_req *r, const ic_gen_opts *o, const int32_t *ids, int32_t n,
                  char *err, size_t errlen);
int ic_req_cancel(ic_req *r);
/* Moves the waiting pieces out: *buf (malloc'd, caller frees) holds them
 * back to back, lens[i] their sizes.  Returns the number of pieces. */
size_t ic_req_take_pieces(ic_req *r, char **buf, size_t **lens);
/* After IC_EV_DONE: NULL when the answer is to be sent, else the error
 * line to answer with. */
const char *ic_req_error(const ic_req *r, char *buf, size_t cap);
void ic_req_free(ic_registry *reg, ic_req *r);

/* STREAM entries: each piece is one entry with field IC_STREAM_TEXT; the
 * last entry (after IC_EV_DONE) has these two pairs, finish reason and
 * token count, written into fv/lens (num holds the digits). */
#define IC_STREAM_TEXT "text"
void ic_req_final_entry(const ic_req *r, const char *fv[4], size_t lens[4], char num[24]);

/* ---- statistics (stats.c) ------------------------------------------------------------ */

/* One name/value pair of a reply map (INFER.STATS, INFER.MODELS, the RESP3
 * answer of INFER.GENERATE): the front-ends write them in order. */
enum { IC_F_LL, IC_F_DOUBLE, IC_F_STR };
typedef struct ic_field {
    const char *name;
    int kind;
    long long ll;
    double d;
    const char *s; /* IC_F_STR: s[0..slen) */
    size_t slen;
} ic_field;

#define IC_STATS_FIELDS 20
/* INFER.STATS / INFO infer figures, in order: totals over every model,
 * replaced and freed ones included. */
int ic_stats(const ic_registry *r, ic_field out[IC_STATS_FIELDS]);

/* INFER.MODELS: name, arch, kind, dim, parameters, type, types, bytes,
 * context, requests, path (strings point into d and the registry). */
#define IC_MODEL_FIELDS 11
int ic_model_fields(const ic_entry *e, ic_model_desc *d, ic_field out[IC_MODEL_FIELDS]);

/* INFER.GENERATE's RESP3 map after IC_EV_DONE: text, tokens, finish,
 * prompt_tokens, reused_tokens, queue_ms, prefill_ms, decode_ms. */
#define IC_RESULT_FIELDS 8
int ic_req_result(const ic_req *r, ic_field out[IC_RESULT_FIELDS]);

/* ---- the engine's memory budget (budget.c) ------------------------------------------
 *
 * infer-max-memory bounds weights + KV reserved + scratch summed over every
 * live model (a replaced model counts until its last request ends) and the
 * reservations of loads in progress.  A load reserves its estimate
 * (infer_mem_estimate, from the file's header) before reading the file and
 * is refused with the figures when it would not fit:
 *   infer-max-memory: loading 'qwen' needs 812.4 MiB (weights 640.0 MiB +
 *   KV 128.0 MiB + scratch 44.4 MiB), 301.0 MiB of 1.00 GiB free (1 model
 *   loaded uses 723.0 MiB)
 * Lowering the budget below what is loaded unloads nothing: it refuses
 * loads until enough is freed (as maxmemory refuses writes). */

/* The default: half the memory this process may use (the machine's RAM,
 * or its cgroup's limit when lower). */
#define IC_MAX_MEMORY_DIVISOR 2
uint64_t ic_default_max_memory(void);
/* A memory value as Redis's config takes it: bytes, or k/kb/m/mb/g/gb
 * (k = 1000, kb = 1024), case-insensitive.  0, or -1 when malformed. */
int ic_parse_mem(const char *s, uint64_t *out);
/* "812.4 MiB" (error messages); ic_info_human: "812.40M" (INFO's _human). */
void ic_human_bytes(uint64_t n, char *buf, size_t cap);
void ic_info_human(uint64_t n, char *buf, size_t cap);
/* Load thread: charges m's estimate, or writes the refusal into err. */
int ic_budget_reserve(ic_model *m, uint64_t max, const char *name, const infer_mem *need, char *err, size_t errlen);
/* Load thread, once loaded: the charge becomes the actual figures (a rise
 * checked like a reservation). */
int ic_budget_settle(ic_model *m, uint64_t max, const char *name, const infer_mem *actual, char *err,
                     size_t errlen);
/* Main thread, at install: the reservation now counts as a loaded model. */
void ic_budget_commit(ic_model *m);
/* When the model is freed (or its load failed): gives its charge back. */
void ic_budget_release(ic_model *m);
/* The engine's figures over every live model (kv_used as of now). */
void ic_mem_totals(const ic_registry *r, infer_mem *out);
/* INFO / INFER.STATS, in order: used_memory (weights + kv reserved +
 * scratch), max_memory, weights_bytes, kv_reserved_bytes, kv_used_bytes,
 * scratch_bytes, loading_bytes (reserved by loads in progress). */
#define IC_MEM_FIELDS 7
int ic_mem_fields(const ic_registry *r, uint64_t max, ic_field out[IC_MEM_FIELDS]);
/* One live model's INFO line value: "name=s,replaced=0,weights=N,
 * kv_reserved=N,kv_used=N,scratch=N,total=N,requests=N" (name made safe
 * for INFO; replaced=1 and an empty name once no name points to it). */
int ic_mem_model_line(const ic_registry *r, const ic_model *m, char *buf, size_t cap);

/* ---- tokenizer commands (tokens.c) ------------------------------------------------------- */

/* INFER.TOKENIZE: malloc'd ids (BOS as the vocab asks). */
int32_t *ic_tokenize(const ic_model *m, const char *text, size_t len, int64_t *n, char *err, size_t errlen);
/* INFER.DETOKENIZE: ids as arguments, each checked; malloc'd text. */
char *ic_detokenize(const ic_model *m, const ic_arg *ids, int n, size_t *len, char *err, size_t errlen);


/* ---- INFER.EMBED (embed.c) and embedding requests (embreq.c) ---------------------------- */

#define IC_EMBED_MAX_TEXTS 1024          /* texts in one INFER.EMBED */
#define IC_EMBED_MAX_BYTES (16u << 20)   /* bytes of all its texts together */

typedef struct ic_embed_opts {
    const ic_arg *texts;   /* borrowed from argv */
    int n_texts;
    int into;              /* INTO key element text: VADD the vector */
    ic_arg key, element;   /* INTO (borrowed) */
    ic_arg setattr;        /* INTO SETATTR json; ptr NULL when absent */
    const char *quant;     /* INTO "Q8" / "BIN" / "NOQUANT"; NULL: VADD's default */
    int fp32;              /* reply each vector as one FP32 blob */
    infer_embed_params params;
    long long timeout_ms;
} ic_embed_opts;

/* INFER.EMBED model text [text ...] [NORMALIZE yes|no] [LONG refuse|chunk]
 *     [FP32] [TIMEOUT ms]
 * INFER.EMBED model INTO key element text [SETATTR json] [Q8|BIN|NOQUANT]
 *     [NORMALIZE yes|no] [LONG refuse|chunk] [TIMEOUT ms]
 * argv[1] is the model (already looked up: it must be an encoder).  In the
 * first form the options are read from the end (see docs/commands.md).
 * Every text is checked (ic_embed_check_texts).  0, or -1 with the line. */
int ic_embed_parse(const ic_arg *argv, int argc, const ic_model *m, long long default_timeout_ms,
                   ic_embed_opts *o, char *err, size_t errlen);
/* Texts to embed: 1..IC_EMBED_MAX_TEXTS of them, each non-empty,
 * well-formed UTF-8 and without NUL, IC_EMBED_MAX_BYTES together. */
int ic_embed_check_texts(const ic_arg *texts, int n, const char *what, char *err, size_t errlen);
/* "ERR model 'name' is not an encoder ..." when m cannot embed. */
int ic_need_encoder(const ic_arg *name, const ic_model *m, char *err, size_t errlen);

typedef struct ic_ereq ic_ereq;
/* Called once, on the engine thread, when the request has ended; from
 * then on it belongs to the main thread. */
typedef void (*ic_enotify_fn)(ic_ereq *e);

struct ic_ereq {
    ic_model *m; /* holds a reference until ic_ereq_free */
    uint64_t id;
    long long timeout_ms;
    ic_enotify_fn notify;
    void *ud;
    double t_submit;   /* monotonic ms */
    /* engine thread until notify, then main thread */
    int reason;        /* INFER_FINISH_* */
    float *vec;        /* n * dim floats, text i at vec + i * dim */
    int32_t n, dim;
    long long tokens;  /* over all texts */
    double embed_ms;   /* submit to completion */
    int oom;
    char errmsg[256];
};

ic_ereq *ic_ereq_new(ic_registry *reg, ic_model *m, ic_enotify_fn notify, void *ud);
/* Submits texts (copied by the engine); -1 with the error line (queue
 * full, shutting down): then notify never comes and the caller frees. */
int ic_ereq_submit(ic_ereq *e, const ic_arg *texts, int n, const infer_embed_params *p, long long timeout_ms,
                   char *err, size_t errlen);
int ic_ereq_cancel(ic_ereq *e);
/* After notify: NULL when the vectors are there, else the error line. */
const char *ic_ereq_error(const ic_ereq *e, char *buf, size_t cap);
void ic_ereq_free(ic_registry *reg, ic_ereq *e);
/* v[0..n) as little-endian float32 bytes into out[0..4n): what VADD and
 * VSIM take after FP32, on any host byte order. */
void ic_f32_le(const float *v, size_t n, unsigned char *out);

/* ---- INFER.RAG (rag.c, ragprompt.c, jsonfield.c) ------------------------------------------- */

#define IC_RAG_DEFAULT_COUNT 5
#define IC_RAG_MAX_COUNT 1000
#define IC_RAG_TEXT_FIELD "text" /* attribute (or hash field) holding a chunk */
/* The prompt when no TEMPLATE key is given: {context} is the chunks in
 * rank order separated by blank lines, {question} the question. */
#define IC_RAG_DEFAULT_TEMPLATE \
    "Use the context below to answer the question.\n\nContext:\n{context}\n\nQuestion: {question}\nAnswer:"
#define IC_RAG_CHUNK_SEP "\n\n"

enum { IC_HIT_NOTEXT = 0, IC_HIT_USED = 1, IC_HIT_CUT = 2 };

typedef struct ic_rag_hit {
    char *name;          /* the element (copy) */
    size_t name_len;
    double score;        /* VSIM's similarity in [0, 1] */
    char *attr;          /* its attributes (copy), NULL when none */
    size_t attr_len;
    char *key;           /* CONTEXTKEY-FIELD: the key its attributes name */
    size_t key_len;
    char *text;          /* its chunk (copy), NULL when none was found */
    size_t text_len;
    int too_long;        /* the chunk alone can never fit the context */
    int state;           /* IC_HIT_*: in the prompt, cut for length, no text */
} ic_rag_hit;

typedef struct ic_rag {
    ic_model *gen, *emb;  /* a reference on each until ic_rag_free */
    /* the command's arguments, copied: the request outlives argv */
    char *vset, *question, *filter, *key_field, *tmpl_key, *store, *stream;
    size_t vset_len, question_len, filter_len, key_field_len, tmpl_key_len, store_len, stream_len;
    long long count;
    long long ef, filter_ef; /* VSIM's EF and FILTER-EF, 0: VSIM's defaults */
    int withsources, withprompt;
    ic_gen_opts gen_opts; /* store / stream point at the copies above */
    int32_t budget;       /* prompt tokens the generator's context leaves */
    size_t chunk_cap;     /* bytes over which a chunk can never fit */
    /* what the retrieval step found */
    unsigned char *blob;  /* the question's vector as FP32 bytes */
    size_t blob_len;
    char count_str[24], ef_str[24], filter_ef_str[24];
    ic_rag_hit *hits;
    int n_hits, cap_hits;
    char *tmpl;           /* the TEMPLATE key's value (copy), NULL: default */
    size_t tmpl_len;
    double embed_ms;
    /* the prompt built from them */
    char *prompt;
    size_t prompt_len;
    int used;             /* chunks in the prompt */
} ic_rag;

/* INFER.RAG generator embedder vset question [COUNT k] [FILTER expr]
 *     [CONTEXTKEY-FIELD name] [TEMPLATE key] [WITHSOURCES] [WITHPROMPT]
 *     [generation options: MAXTOKENS ... STREAM key STORE key CHAT TIMEOUT]
 * Looks both models up, checks their kinds, the question (as an
 * INFER.EMBED text) and every option; copies what the later steps need
 * and takes a reference on each model.  NULL with the error line. */
ic_rag *ic_rag_parse(ic_registry *reg, const ic_arg *argv, int argc, long long default_timeout_ms,
                     int default_max_tokens, char *err, size_t errlen);
/* INFER.ANSWER generator question CHUNKS n chunk [chunk ...]
 *     [TEMPLATE key] [WITHSOURCES] [WITHPROMPT] [generation options]
 * INFER.RAG without the retrieval: the chunks, in rank order, are the
 * request's hits (no name, no score; emb NULL).  The front-end then reads
 * the TEMPLATE key (ic_rag_set_template) and calls ic_rag_build.  NULL
 * with the error line. */
ic_rag *ic_answer_parse(ic_registry *reg, const ic_arg *argv, int argc, long long default_timeout_ms,
                        int default_max_tokens, char *err, size_t errlen);
void ic_rag_free(ic_registry *reg, ic_rag *g);

/* The retrieval step, on the main thread, all of it in one go so that it
 * sees one state of the keyspace:
 *   1. ic_rag_vsim_args: the VSIM to run for the question's vector
 *      (VSIM vset FP32 blob WITHSCORES WITHATTRIBS COUNT k [FILTER expr]);
 *      the front-end runs it (libvcmd, or the host's VSIM) and adds each
 *      result with ic_rag_add_hit, best first;
 *   2. for each hit, ic_rag_hit_source says where its chunk is: already
 *      taken from the attributes, or in a key the front-end reads and
 *      hands over with ic_rag_set_text (a string key's value, or a hash
 *      key's field "text");
 *   3. ic_rag_set_template with the TEMPLATE key's value, if one is named;
 *   4. ic_rag_build: the prompt and its ids. */
#define IC_RAG_VSIM_ARGS 15
int ic_rag_vsim_args(ic_rag *g, const float *vec, int32_t dim, ic_arg out[IC_RAG_VSIM_ARGS], char *err,
                     size_t errlen);
/* A VSIM error turned into INFER.RAG's: "ERR vector set 'k': ...". */
void ic_rag_vsim_error(const ic_rag *g, const char *line, char *err, size_t errlen);
int ic_rag_add_hit(ic_rag *g, const char *name, size_t nlen, double score, const char *attr, size_t alen);
enum { IC_SRC_NONE = 0, IC_SRC_ATTR = 1, IC_SRC_KEY = 2 };
int ic_rag_hit_source(ic_rag *g, int i, const char **key, size_t *klen);
/* Copies the chunk text of hit i (unless it is too long to ever fit);
 * -1 when out of memory. */
int ic_rag_set_text(ic_rag *g, int i, const char *p, size_t len);
/* The TEMPLATE key's value; -1 with the line when it lacks {context} or
 * {question}, or cannot fit the context. */
int ic_rag_set_template(ic_rag *g, const char *p, size_t len, char *err, size_t errlen);
/* Builds the prompt from the template with as many chunks as fit, the
 * lowest-ranked dropped first, and tokenizes it (CHAT: in the generator's
 * chat template); sets each hit's state and `used`, and leaves the
 * generation what the embedding left of TIMEOUT (embed_ms must be set).
 * malloc'd ids, or NULL with the error line. */
int32_t *ic_rag_build(ic_rag *g, int32_t *n_prompt, char *err, size_t errlen);

/* INFER.RAG's reply after the generation: text, chunks_used,
 * chunks_retrieved, tokens, finish, prompt_tokens, reused_tokens,
 * embed_ms, queue_ms, prefill_ms, decode_ms; the front-end adds "sources"
 * (WITHSOURCES: [element, score, state] per hit, state "used", "cut" or
 * "no-text") and "prompt" (WITHPROMPT).  INFER.ANSWER's (g->emb NULL):
 * chunks_given for chunks_retrieved, no embed_ms, and its sources are
 * the states alone, one per chunk given. */
#define IC_RAG_FIELDS 11
int ic_rag_result(const ic_rag *g, const ic_req *r, ic_field out[IC_RAG_FIELDS]);
const char *ic_rag_hit_state(const ic_rag_hit *h);

/* The string value of field name in the top-level JSON object json[0..len)
 * (escapes decoded, a lone surrogate as U+FFFD): 1 with *out (malloc'd,
 * NUL-terminated) and *olen, 0 when json is not an object, has no such
 * field or the field is not a string, -1 when out of memory. */
int ic_json_string_field(const char *json, size_t len, const char *name, size_t nlen, char **out, size_t *olen);

/* ---- keys and routing (keys.c) ---------------------------------------------------------------
 * Which arguments of INFER.GENERATE, INFER.EMBED and INFER.RAG are keys,
 * and what each command does to them: what both front-ends declare (key
 * specs in COMMAND INFO, COMMAND GETKEYS, the module's getkeys-api) so that
 * cluster clients route the commands and the host answers MOVED and
 * CROSSSLOT.  One rule decides read or write: a command whose arguments
 * name a key it writes (STORE, STREAM, INTO) is a write, any other is a
 * read (it may run on a replica). */
enum { IC_KEYS_GENERATE, IC_KEYS_EMBED, IC_KEYS_RAG, IC_KEYS_ANSWER };
/* What a command does to a key, as Redis's key-spec flags name it. */
enum {
    IC_KEY_READ = 1, /* RO access: PROMPTKEY, TOKENSKEY, the vector set, TEMPLATE */
    IC_KEY_INSERT,   /* RW insert: STREAM (XADD), INTO (VADD) */
    IC_KEY_UPDATE    /* OW update: STORE (SET) */
};
#define IC_MAX_KEYS 4

typedef struct ic_key {
    int pos;    /* index in argv (argv[0] is the command name) */
    int access; /* IC_KEY_* */
} ic_key;

/* The command's static declaration: one entry per key spec, in order.
 * keyword NULL: the key is at index (begin_search index); else the key
 * follows the first `keyword` found from argument `startfrom` on.  Every
 * keyword spec is flagged incomplete: a prompt, a STOP string or a text may
 * spell a keyword, so a plain keyword search can point at a non-key, and
 * the flag makes the host (and careful clients) ask the exact finder
 * below instead (COMMAND GETKEYS, the module's getkeys-api). */
typedef struct ic_keyspec {
    const char *keyword;
    int index, startfrom;
    int access;
    int incomplete;
} ic_keyspec;

/* IC_KEYS_* for a command name (any case), -1 for a command without keys. */
int ic_keys_command(const char *name, size_t len);
/* The key specs of IC_KEYS_* cmd (*n of them). */
const ic_keyspec *ic_keyspecs(int cmd, int *n);
/* The keys of one call, exactly as the command's own parser reads them
 * (the last STORE / STREAM / TEMPLATE wins, as it does when the command
 * runs; a text that spells a keyword is a text), in argument order.
 * Parsing stops at the first word the command would refuse, with the keys
 * seen so far: the command fails there anyway.  Returns how many. */
int ic_keys(int cmd, const ic_arg *argv, int argc, ic_key out[IC_MAX_KEYS]);
/* 1 when the call writes a key (STORE, STREAM, INTO), else 0. */
int ic_keys_write(int cmd, const ic_arg *argv, int argc);
/* The Redis Cluster hash slot of a key (CRC16/XMODEM of the key, or of
 * its {hash tag}, modulo 16384). */
unsigned ic_key_slot(const char *key, size_t len);

#endif
