/* infer.h - the public API of libinfer, inferkv's inference engine.
 *
 * libinfer loads GGUF models (llama, qwen2, qwen3 decoders) through mmap,
 * tokenizes text, and runs batched forward passes over a paged KV cache.
 * Nothing here keeps global mutable state: every object is created and freed
 * by the caller, and the only threads are those of an infer_threadpool the
 * caller owns.  Errors come back as a negative return value plus a message
 * written into the caller's (err, errlen) buffer; input from files or users
 * never aborts the process.
 *
 * Ownership in one paragraph: a model is reference-counted (load returns one
 * reference; every ctx holds one), so a model replaced under traffic stays
 * mapped until its last user lets go.  A vocab belongs to its model, or to
 * the caller when loaded on its own.  A ctx owns the KV pool and scratch of
 * one model; sequences belong to a ctx.  One thread at a time per ctx. */
#ifndef INFER_H
#define INFER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct infer_vocab infer_vocab;
typedef struct infer_model infer_model;
typedef struct infer_threadpool infer_threadpool;
typedef struct infer_ctx infer_ctx;
typedef struct infer_seq infer_seq;
typedef struct infer_sampler infer_sampler;
typedef struct infer_detok infer_detok;

/* ---- Vocabulary and tokenizer ------------------------------------------ */

/* Loads the tokenizer of a GGUF file (a full model or a vocab-only file), or
 * of a Hugging Face tokenizer.json (byte-level BPE; recognised by content). */
int infer_vocab_load(const char *path, infer_vocab **out, char *err, size_t errlen);
void infer_vocab_free(infer_vocab *v);

int32_t infer_vocab_size(const infer_vocab *v);
int32_t infer_vocab_bos(const infer_vocab *v); /* -1 when the vocab has none */
int32_t infer_vocab_eos(const infer_vocab *v); /* -1 when the vocab has none */
int infer_vocab_is_eog(const infer_vocab *v, int32_t id); /* ends generation */
const char *infer_vocab_kind(const infer_vocab *v);      /* "llama", "gpt2", "bert" */

#define INFER_TOK_ADD_SPECIAL   1u /* BOS/EOS/CLS/SEP as the vocab asks */
#define INFER_TOK_PARSE_SPECIAL 2u /* "<|im_start|>" in text becomes its id */

/* Tokenizes len bytes of text into ids[0..cap).  Returns the number of ids
 * the text needs (which may exceed cap: call again with a larger buffer), or
 * -1 with a message in err. */
int64_t infer_tokenize(const infer_vocab *v, const char *text, size_t len, unsigned flags,
                       int32_t *ids, size_t cap, char *err, size_t errlen);

#define INFER_DETOK_REMOVE_SPECIAL 1u  /* drop BOS/EOS text */
#define INFER_DETOK_UNPARSE_SPECIAL 2u /* render special tokens as their text */

/* Detokenizes a whole sequence into out[0..cap) (no NUL added).  Returns the
 * byte length needed (may exceed cap), or -1 on an out-of-range id. */
int64_t infer_detokenize(const infer_vocab *v, const int32_t *ids, size_t n, unsigned flags,
                         char *out, size_t cap, char *err, size_t errlen);

/* Streaming detokenizer: push ids one at a time, get back only complete
 * UTF-8 (a token may end in the middle of a character; its bytes are held
 * until the character completes).  `after_bos`: the stream starts right after
 * a BOS, so a SentencePiece leading space is dropped as the reference does.
 * push returns bytes written to out (cap >= infer_detok_max_bytes(v) is
 * always enough), or -1 on a bad id or a too small cap.  flush returns held bytes of an incomplete
 * character at the end of generation (invalid UTF-8, emitted as is). */
infer_detok *infer_detok_create(const infer_vocab *v, int after_bos);
int infer_detok_push(infer_detok *d, int32_t id, char *out, size_t cap);
int infer_detok_flush(infer_detok *d, char *out, size_t cap);
void infer_detok_free(infer_detok *d);
/* A buffer size with which infer_detok_push and infer_detok_flush never run
 * out of room for this vocabulary (its longest token plus held bytes). */
size_t infer_detok_max_bytes(const infer_vocab *v);

/* Length of the longest prefix of s[0..len) that ends on a UTF-8 character
 * boundary (an incomplete trailing sequence is excluded). */
size_t infer_utf8_complete_prefix(const char *s, size_t len);

/* A token's id by its exact text (-1 if none), and a token's raw text. */
int32_t infer_vocab_find(const infer_vocab *v, const char *text, size_t len);
const char *infer_vocab_text(const infer_vocab *v, int32_t id, size_t *len);

/* Chat templates, as code.  The family is recognised from the vocab's
 * special tokens: ChatML (<|im_start|>/<|im_end|>: Qwen2, Qwen2.5, Qwen3,
 * which also has <think>) and Llama 3 (<|start_header_id|>...<|eot_id|>).
 * Anything else is RAW: the contents joined by newlines, and callers should
 * warn that the model's template is unknown.  The rendered text contains
 * special tokens as text (and Llama 3's <|begin_of_text|>): tokenize it with
 * INFER_TOK_PARSE_SPECIAL and without INFER_TOK_ADD_SPECIAL. */
#define INFER_CHAT_RAW 0
#define INFER_CHAT_CHATML 1 /* plain ChatML (Qwen2, Qwen1.5: no default system) */
#define INFER_CHAT_QWEN3 2  /* ChatML with thinking */
#define INFER_CHAT_LLAMA3 3
#define INFER_CHAT_QWEN25 4 /* ChatML with Qwen2.5's default system message */
int infer_chat_template(const infer_vocab *v);
const char *infer_chat_template_name(int tmpl); /* "raw", "chatml", "qwen3", "llama3", "qwen2.5" */

typedef struct infer_chat_msg {
    const char *role;    /* "system", "user" or "assistant" */
    const char *content; /* NUL-terminated UTF-8 */
} infer_chat_msg;

#define INFER_CHAT_ADD_ASSISTANT 1u /* open the assistant's turn at the end */
#define INFER_CHAT_NO_THINKING 2u   /* Qwen3: an empty think block, so it answers directly */

/* Renders msgs with template tmpl into out[0..cap) (NUL-terminated when it
 * fits).  Returns the length needed without the NUL, or -1 with a message
 * (unknown role, bad template). */
int64_t infer_chat_format(int tmpl, const infer_chat_msg *msgs, size_t n, unsigned flags,
                          char *out, size_t cap, char *err, size_t errlen);
/* Parses a JSON list of {"role": ..., "content": ...} objects.  *msgs and
 * the strings it points to are one allocation: free(*msgs). */
int infer_chat_parse_json(const char *json, size_t len, infer_chat_msg **msgs, size_t *n,
                          char *err, size_t errlen);

/* ---- Models -------------------------------------------------------------- */

typedef struct infer_model_info {
    const char *arch; /* "llama", "qwen2", "qwen3", "bert", "nomic-bert" */
    const char *name; /* general.name, or "" */
    int32_t n_vocab, n_ctx_train, n_embd, n_layer, n_head, n_head_kv;
    int32_t head_dim, n_ff, n_rot;
    int rope_neox; /* 1: pairs (i, i+d/2); 0: pairs (2i, 2i+1) */
    float rope_base, norm_eps;
    int tied_embeddings;
    uint32_t n_tensors;
    uint64_t n_params;     /* number of weights */
    uint64_t weight_bytes; /* bytes of tensor data */
    uint64_t file_bytes;
    const char *ftype;     /* the type of most weight bytes, e.g. "q8_0" */
    int is_encoder;        /* 1: bert / nomic-bert, for infer_embed (see "Embeddings") */
    int pooling;           /* encoders: the file's INFER_POOL_* (0: it names none) */
} infer_model_info;

/* Maps and validates a GGUF model.  The new model has one reference. */
int infer_model_load(const char *path, infer_model **out, char *err, size_t errlen);
infer_model *infer_model_ref(infer_model *m);
void infer_model_unref(infer_model *m);
const infer_model_info *infer_model_get_info(const infer_model *m);
const infer_vocab *infer_model_vocab(const infer_model *m);
/* "f32:113 q8_0:197" style summary of tensor types; returns length needed. */
size_t infer_model_type_summary(const infer_model *m, char *buf, size_t cap);

/* ---- Threads --------------------------------------------------------------- */

/* A persistent pool: n_threads workers including the caller (n_threads - 1
 * are spawned).  n_threads <= 0 picks the number of online CPUs. */
infer_threadpool *infer_threadpool_create(int n_threads, char *err, size_t errlen);
void infer_threadpool_free(infer_threadpool *tp);
int infer_threadpool_size(const infer_threadpool *tp);

/* ---- Contexts, sequences, decoding ---------------------------------------- */

typedef struct infer_ctx_params {
    int32_t n_ctx;           /* max tokens per sequence (0: model's, capped at 4096) */
    int32_t max_batch;       /* max tokens in one decode call (0: 512) */
    int32_t block_tokens;    /* KV block size in tokens (0: 16) */
    uint64_t kv_bytes;       /* KV pool budget in bytes (0: room for 4 full sequences) */
} infer_ctx_params;

int infer_ctx_create(infer_model *m, infer_threadpool *tp, const infer_ctx_params *p,
                     infer_ctx **out, char *err, size_t errlen);
void infer_ctx_free(infer_ctx *c);
const infer_model *infer_ctx_model(const infer_ctx *c);
int32_t infer_ctx_n_ctx(const infer_ctx *c);
/* KV pool occupancy in blocks: held by sequences, out of the total (cached
 * prefix blocks nobody holds count as not used: they are evictable). */
void infer_ctx_kv_usage(const infer_ctx *c, int32_t *used, int32_t *total);

typedef struct infer_kv_stats {
    int32_t blocks_total, blocks_used, blocks_cached, blocks_free;
    int32_t block_tokens;
    uint64_t block_bytes;
    uint64_t prefix_lookups, prefix_hits, evictions; /* in blocks */
    uint64_t prompt_tokens, reused_tokens;           /* via infer_seq_reuse_prefix */
} infer_kv_stats;
void infer_ctx_kv_stats(const infer_ctx *c, infer_kv_stats *st);

int infer_seq_create(infer_ctx *c, infer_seq **out, char *err, size_t errlen);
void infer_seq_free(infer_seq *s); /* returns its KV blocks to the pool */
int32_t infer_seq_len(const infer_seq *s); /* tokens in its KV cache */

/* Prefix reuse: on an empty sequence about to process prompt toks[0..n),
 * attaches every leading full KV block already computed for the same tokens
 * (by any sequence, alive or finished and still cached) and returns how many
 * tokens that covers (a multiple of the block size, always < n).  The caller
 * then decodes only toks[returned..n). */
int32_t infer_seq_reuse_prefix(infer_seq *s, const int32_t *toks, int32_t n);

#define INFER_LOGITS_NONE 0
#define INFER_LOGITS_LAST 1
#define INFER_LOGITS_ALL 2

typedef struct infer_batch_entry {
    infer_seq *seq;
    const int32_t *tokens;
    int32_t n_tokens;
    int logits; /* INFER_LOGITS_* */
} infer_batch_entry;

/* One forward pass over the tokens of every entry (each sequence at most once
 * per call).  Each linear layer is one matrix product over all the tokens.
 * On success every sequence has grown by its n_tokens.  On failure (KV pool
 * full, context exhausted, bad id) nothing has changed. */
int infer_decode(infer_ctx *c, const infer_batch_entry *entries, int32_t n_entries,
                 char *err, size_t errlen);
/* Logits of token i of entry e of the last decode (INFER_LOGITS_LAST: i=0). */
const float *infer_logits(const infer_ctx *c, int32_t e, int32_t i);

/* ---- Sampling ----------------------------------------------------------------- */

typedef struct infer_sampler_params {
    float temperature;    /* <= 0: greedy */
    int32_t top_k;        /* <= 0: off */
    float top_p;          /* >= 1: off */
    float min_p;          /* <= 0: off */
    float repeat_penalty; /* 1: off */
    int32_t repeat_last_n;/* window of the penalty (0: whole history) */
    uint64_t seed;
} infer_sampler_params;

void infer_sampler_defaults(infer_sampler_params *p);
/* Returns NULL with a message when a parameter is out of range. */
infer_sampler *infer_sampler_create(const infer_sampler_params *p, char *err, size_t errlen);
void infer_sampler_free(infer_sampler *s);
/* Records a token in the history the repetition penalty sees. */
void infer_sampler_accept(infer_sampler *s, int32_t token);
/* Picks a token from logits[0..n) (the array is not modified) and accepts it. */
int32_t infer_sampler_sample(infer_sampler *s, const float *logits, int32_t n);

/* ---- Scheduler: continuous batching on an engine thread ------------------- */

/* One scheduler thread owns a ctx (and its thread pool) from creation on:
 * each step it runs one forward pass over the next token of every decoding
 * sequence plus prompt chunks of sequences being prefilled (so a long prompt
 * never stalls the others), samples, and reports through the request's
 * callbacks.  Requests join and leave between steps.  Admission is bounded:
 * a full queue fails the submit at once.  A request is admitted only when
 * the KV pool can hold its whole prompt + max_tokens beside every active
 * request's, so an admitted request never fails for lack of memory.
 * Leading KV blocks are reused from earlier requests with the same prefix. */
typedef struct infer_sched infer_sched;

enum { INFER_FINISH_STOP, INFER_FINISH_LENGTH, INFER_FINISH_TIMEOUT, INFER_FINISH_CANCELLED, INFER_FINISH_ERROR };
const char *infer_finish_name(int reason); /* "stop", "length", "timeout", "cancelled", "error" */

typedef struct infer_request_stats {
    int32_t prompt_tokens, reused_tokens, generated_tokens;
    double queue_ms, prefill_ms, decode_ms; /* waiting, prompt processing, generation */
} infer_request_stats;

typedef struct infer_request {
    const int32_t *prompt; /* copied by submit; must hold at least one token */
    int32_t n_prompt;
    int32_t max_tokens;    /* >= 1 */
    infer_sampler_params sampling;
    const char *const *stop; /* stop strings (copied); generation ends before the first match */
    int32_t n_stop;
    int64_t timeout_ms;    /* from submit, queue time included; 0 = none */
    /* Called on the scheduler thread.  on_text receives the answer in pieces
     * of complete UTF-8 (text that could begin a stop string is held back
     * until it cannot); on_done is called exactly once, last, with the
     * reason (INFER_FINISH_*) and, for INFER_FINISH_ERROR, a message. */
    void (*on_text)(void *ud, const char *text, size_t len);
    void (*on_done)(void *ud, int reason, const infer_request_stats *st, const char *errmsg);
    void *ud;
} infer_request;

typedef struct infer_sched_params {
    int32_t max_queue;        /* requests waiting for admission (0: 64) */
    int32_t max_active;       /* sequences stepping together (0: 16) */
    int32_t prefill_chunk;    /* prompt tokens per sequence per step (0: 256) */
    int nice;                 /* nice value for the engine's threads (0: leave as is) */
    int idle;                 /* 1: run them in the SCHED_IDLE class: they get only the CPU
                                 time no other thread wants, so a server's event loop
                                 (and anything else on the machine) always goes first */
} infer_sched_params;

typedef struct infer_sched_stats {
    int32_t queued, active;
    uint64_t submitted, completed, rejected, cancelled, timeouts, errors;
    uint64_t prompt_tokens, generated_tokens, steps;
    double tokens_per_s; /* generated tokens/s over the recent past */
    infer_kv_stats kv;
} infer_sched_stats;

/* Takes over c (and its thread pool) until infer_sched_free. */
int infer_sched_create(infer_ctx *c, const infer_sched_params *p, infer_sched **out, char *err, size_t errlen);
/* Ends every request (on_done with INFER_FINISH_CANCELLED, on the scheduler
 * thread) and joins it; the ctx is the caller's again. */
void infer_sched_free(infer_sched *s);
/* Queues a request.  Fails at once (-1, message) when the queue is full or
 * the request can never fit (context or KV pool too small); then no
 * callback is ever called. */
int infer_sched_submit(infer_sched *s, const infer_request *r, uint64_t *id, char *err, size_t errlen);
/* Asks for request id to end (on_done with INFER_FINISH_CANCELLED within one
 * step).  Returns 0 if it was still running, -1 if unknown or finished. */
int infer_sched_cancel(infer_sched *s, uint64_t id);
void infer_sched_get_stats(infer_sched *s, infer_sched_stats *st);

/* Sets the scheduling priority of the pool's worker threads: a nice value,
 * and the SCHED_IDLE class when idle is 1 (SCHED_OTHER when 0).  Best
 * effort: a change the process may not make (raising priority without
 * CAP_SYS_NICE) is skipped. */
void infer_threadpool_set_priority(infer_threadpool *tp, int nice, int idle);
/* The same for the calling thread (a loader thread, say). */
void infer_thread_set_priority(int nice, int idle);

/* ---- Embeddings: encoder models ----------------------------------------------------
 *
 * Architectures "bert" (BERT, BGE, GTE, all-MiniLM: absolute positions,
 * token types, post-LayerNorm, GELU) and "nomic-bert" (rotary positions,
 * SwiGLU), as llama.cpp's converter writes them.  An encoder model loads
 * with infer_model_load like any other (infer_model_info.arch says which)
 * and runs through an infer_ctx made for it; infer_decode and the decoder
 * scheduler refuse encoders, and the embedding calls below refuse decoders.
 *
 * Pooling comes from the file (<arch>.pooling_type: mean, CLS, last) unless
 * the caller overrides it; vectors are L2-normalised unless asked not to
 * be.  A text longer than the model's context is either refused or cut into
 * windows that are embedded and mean-pooled into one vector (weighted by
 * tokens), as the caller chooses: it is never silently truncated.  A cut
 * input that starts with the vocab's CLS and ends with its SEP (what
 * tokenizing with INFER_TOK_ADD_SPECIAL gives) has them around every
 * window's share of its tokens, so each window is a well-formed input;
 * L2 normalisation applies to the pooled mean of the windows.
 *
 * The ctx of an encoder (infer_ctx_create on an encoder model) has no KV
 * cache: n_ctx is the longest sequence (0: the model's context_length,
 * capped at 8192; never above the model's) and max_batch the tokens of one
 * forward pass (0: max(n_ctx, 2048); at least n_ctx); block_tokens and
 * kv_bytes are ignored.  infer_seq_create and infer_decode refuse it. */

#define INFER_POOL_DEFAULT 0 /* the model's own */
#define INFER_POOL_MEAN 1
#define INFER_POOL_CLS 2
#define INFER_POOL_LAST 3
#define INFER_LONG_REFUSE 0 /* a text over the context is an error */
#define INFER_LONG_CHUNK 1  /* windows of the context, pooled */

typedef struct infer_embed_params {
    int pooling;    /* INFER_POOL_* */
    int normalize;  /* 1: L2-normalise the result (0: the raw pooled vector) */
    int long_input; /* INFER_LONG_* */
} infer_embed_params;

/* The defaults: the model's pooling, L2-normalised, long inputs refused.
 * (A zeroed struct is the same but NOT normalised.)  A NULL params pointer
 * means these defaults. */
void infer_embed_defaults(infer_embed_params *p);

int infer_model_is_encoder(const infer_model *m);
int32_t infer_model_embed_dim(const infer_model *m); /* n_embd of an encoder, 0 for a decoder */

/* Embeds n token sequences (toks[i][0..n_toks[i]), each as the tokenizer
 * made it, CLS/SEP included) in as few forward passes as the ctx's batch
 * allows: every weight matrix is multiplied once per pass against all the
 * tokens of all the sequences in it.  out holds n * embed_dim floats.
 * Batched and alone give the same vector, bit for bit.  p NULL: the
 * defaults.  Returns 0, or -1 with a message ("input 3: ...") for an empty
 * input, an id outside the vocabulary, an input over the context in refuse
 * mode, or a bad parameter; then out is unspecified.  One thread at a time
 * per ctx. */
int infer_embed(infer_ctx *c, const int32_t *const *toks, const int32_t *n_toks, int32_t n,
                const infer_embed_params *p, float *out, char *err, size_t errlen);

/* Tokenizes texts[i] (lens[i] bytes; lens NULL: NUL-terminated) for an
 * encoder (special tokens as the vocab asks) and embeds them: a convenience
 * over infer_tokenize + infer_embed. */
int infer_embed_texts(infer_ctx *c, const char *const *texts, const size_t *lens, int32_t n,
                      const infer_embed_params *p, float *out, char *err, size_t errlen);

/* The scheduler for encoders: one thread owns a ctx of an encoder model and
 * batches the texts of every waiting request into its forward passes, so
 * many clients embedding at once share weight reads as generation does.
 * Texts are tokenized on that thread.  Admission is bounded the same way (a
 * full queue fails the submit); max_active requests are worked on at once
 * (0: 16), their texts taken round robin into each pass (a request of many
 * texts does not hold the others up); prefill_chunk is not used; nice and
 * idle as for decoding.  infer_sched_free, infer_sched_cancel (effective
 * between passes) and infer_sched_get_stats work on it (stats:
 * prompt_tokens = tokens embedded, steps = forward passes, tokens_per_s =
 * tokens embedded per second, generated_tokens and kv zero).  A request
 * gets exactly the vectors infer_embed gives for its texts. */
typedef struct infer_embed_request {
    const char *const *texts; /* copied by submit */
    const size_t *lens;       /* NULL: the texts are NUL-terminated */
    int32_t n;                /* >= 1 */
    infer_embed_params params; /* set it with infer_embed_defaults: zeroed is not normalised */
    int64_t timeout_ms;       /* from submit; 0 = none */
    /* Called exactly once, on the scheduler thread, without a lock held:
     * with INFER_FINISH_STOP, vectors[n * dim] (owned by the scheduler,
     * valid during the call) and each text's token count (before any cut);
     * otherwise (INFER_FINISH_CANCELLED, _TIMEOUT, _ERROR: a text over the
     * context in refuse mode, a tokenizer error) vectors and n_tokens are
     * NULL and, for an error, errmsg says which text and why. */
    void (*on_done)(void *ud, int reason, const float *vectors, int32_t n, int32_t dim,
                    const int32_t *n_tokens, const char *errmsg);
    void *ud;
} infer_embed_request;

/* Takes over c (and its thread pool) until infer_sched_free; c's model
 * must be an encoder (infer_sched_create refuses encoders). */
int infer_embed_sched_create(infer_ctx *c, const infer_sched_params *p, infer_sched **out, char *err,
                             size_t errlen);
/* Queues a request.  Fails at once (-1, message; no callback ever) when the
 * queue is full, there are no texts, a parameter is bad, or s schedules
 * decoding; infer_sched_submit likewise refuses an embedding scheduler. */
int infer_embed_submit(infer_sched *s, const infer_embed_request *r, uint64_t *id, char *err, size_t errlen);

/* ---- Memory ------------------------------------------------------------------------
 *
 * What the engine holds for a model, in bytes.  Weights: the file's image
 * (read whole into read-only memory) plus f32 copies of its 1-D tensors.
 * KV reserved: the ctx's pool, allocated whole by infer_ctx_create and
 * never grown (a request that does not fit waits or is refused: it never
 * enlarges the pool); KV used: the blocks sequences hold (cached prefix
 * blocks nobody holds are not used: they are evictable).  Scratch: the
 * ctx's buffers (activations, attention, the pool's tables, logits) plus,
 * for a scheduler, what its requests may hold at most (samplers, block
 * tables, work arrays over the vocabulary for max_active sequences): all
 * of it allocated or bounded when the scheduler is made, so requests never
 * take a model past its figure.  Not counted: request data on its way in
 * and out (prompt ids, texts, answers: bounded by the caller's limits),
 * the tokenizer's tables and thread stacks.  The total that a budget must
 * hold is weights + kv_reserved + scratch (kv_used is part of kv_reserved). */
typedef struct infer_mem {
    uint64_t weights, kv_reserved, kv_used, scratch;
} infer_mem;

uint64_t infer_mem_total(const infer_mem *m); /* weights + kv_reserved + scratch */
/* A model's weights (the other figures 0). */
void infer_model_mem(const infer_model *m, infer_mem *out);
/* A ctx with its model's weights; on the ctx's thread (kv_used reads its pool). */
void infer_ctx_mem(const infer_ctx *c, infer_mem *out);
/* A scheduler's ctx, its model's weights and its requests' reserve; any
 * thread (kv_used from the statistics snapshot). */
void infer_sched_mem(infer_sched *s, infer_mem *out);
/* The figures a model would have once loaded with infer_model_load,
 * infer_threadpool_create(n_threads), infer_ctx_create(cp) and, unless sp
 * is NULL, a scheduler with sp (infer_sched_create, or the embedding one
 * for an encoder) - from the file's header alone: nothing big is read or
 * allocated.  Shapes, types and hyper-parameters are checked as the load
 * checks them, so a broken file fails here too.  KV and scratch are what
 * the load allocates, byte for byte; weights are the file's size plus the
 * 1-D copies.  0, or -1 with a message. */
int infer_mem_estimate(const char *path, const infer_ctx_params *cp, int n_threads, const infer_sched_params *sp,
                       infer_mem *out, char *err, size_t errlen);

/* ---- Misc ------------------------------------------------------------------------ */

const char *infer_simd_name(void); /* kernel ISA chosen at run time */

/* Every allocation libinfer makes first asks hook(bytes, site, ud) (NULL,
 * the default: none) - site is the code address the allocation returns to,
 * in the function that asked; 0 makes that allocation fail as when memory
 * runs out,
 * which the engine reports as an error.  For fault-injection sweeps
 * (tests/unit/test_engine_oom.c fails the Nth) and accounting.  The
 * memory itself is the C library's: free() still releases what the API
 * returns.  It may be set or cleared at any time; allocations on every
 * thread see the change at once. */
typedef int (*infer_alloc_hook)(size_t bytes, const void *site, void *ud);
void infer_set_alloc_hook(infer_alloc_hook hook, void *ud);
/* The same seam for the engine's front-ends (libinfercmd): malloc,
 * calloc, realloc and strdup that ask the hook first.  free() releases. */
/* Asks the hook about an allocation another library's seam is about to
 * make (libvset's allocator in inferkv.so): 1 to go ahead, 0 to fail it. */
int infer_alloc_allowed(size_t bytes, const void *site);
void *infer_malloc(size_t n);
void *infer_calloc(size_t n, size_t size);
void *infer_realloc(void *p, size_t n);
char *infer_strdup(const char *s);

#ifdef __cplusplus
}
#endif
#endif
