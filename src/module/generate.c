/* generate.c - INFER.GENERATE: a blocked client served by a model's scheduler.
 *
 * The command callback runs on the main thread with the server lock held:
 * it parses and range-checks every argument, copies the prompt out of the
 * argument or the key (so a key overwritten, deleted or evicted later
 * changes nothing), tokenizes the copy, blocks the client and submits.  The
 * scheduler's callbacks run on the engine thread and only append to the
 * request's own buffer; on_done hands the request to the main thread with
 * RedisModule_UnblockClient, and the reply is written in gen_reply there.
 * A client that disconnects cancels its request.  STORE key writes the
 * final text with SET from the reply callback (main thread), as the
 * calling user (ACL-checked), propagated to replicas and the AOF. */
#include "mod.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STOP 16
#define MAX_STOP_LEN 256
#define MAX_TIMEOUT_MS (24LL * 3600 * 1000)

typedef struct gen_req {
    struct gen_req *prev, *next; /* in-flight list (main thread) */
    RedisModuleBlockedClient *bc;
    mod_model *m;   /* holds a reference until the request is freed */
    uint64_t id;
    int64_t timeout_ms;
    char *store_key; /* STORE key (copied), or NULL */
    size_t store_len;
    /* written by the engine thread before UnblockClient, read after */
    char *text;
    size_t len, cap;
    int oom;
    int reason;
    infer_request_stats st;
    char errmsg[256];
} gen_req;

static gen_req *g_inflight;

static void list_add(gen_req *r) {
    r->prev = NULL;
    r->next = g_inflight;
    if (g_inflight) g_inflight->prev = r;
    g_inflight = r;
}

static void list_del(gen_req *r) {
    if (r->prev) r->prev->next = r->next;
    else g_inflight = r->next;
    if (r->next) r->next->prev = r->prev;
}

/* ---- engine thread ------------------------------------------------------ */

static void on_text(void *ud, const char *text, size_t n) {
    gen_req *r = ud;
    if (r->oom) return;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) {
            r->oom = 1;
            return;
        }
        r->text = t;
        r->cap = cap;
    }
    memcpy(r->text + r->len, text, n);
    r->len += n;
}

static void on_done(void *ud, int reason, const infer_request_stats *st, const char *errmsg) {
    gen_req *r = ud;
    r->reason = reason;
    r->st = *st;
    if (errmsg) snprintf(r->errmsg, sizeof r->errmsg, "%s", errmsg);
    /* from here on the request belongs to the main thread */
    RedisModule_UnblockClient(r->bc, r);
}

/* ---- main thread ---------------------------------------------------------- */

static int gen_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    gen_req *r = RedisModule_GetBlockedClientPrivateData(ctx);
    if (r->oom) return RedisModule_ReplyWithError(ctx, "ERR out of memory while collecting the answer");
    switch (r->reason) {
    case INFER_FINISH_TIMEOUT:
        return mod_reply_errorf(ctx, "TIMEOUT generation did not finish within %lld ms",
                                (long long)r->timeout_ms);
    case INFER_FINISH_CANCELLED:
        return RedisModule_ReplyWithError(ctx, "ERR generation cancelled (model unloaded or server shutting down)");
    case INFER_FINISH_ERROR:
        return mod_reply_errorf(ctx, "ERR generation failed: %s", r->errmsg);
    default:
        break;
    }
    if (r->store_key) {
        errno = 0;
        RedisModuleCallReply *rep =
            RedisModule_Call(ctx, "SET", "!Cbb", r->store_key, r->store_len, r->text ? r->text : "", r->len);
        if (!rep || RedisModule_CallReplyType(rep) == REDISMODULE_REPLY_ERROR) {
            size_t el = 0;
            const char *e = rep ? RedisModule_CallReplyStringPtr(rep, &el) : NULL;
            if (!rep && errno == EACCES) e = "no permissions to write the key", el = strlen(e);
            mod_reply_errorf(ctx, "ERR STORE failed: %.*s", e ? (int)(el > 200 ? 200 : el) : 0, e ? e : "");
            if (rep) RedisModule_FreeCallReply(rep);
            return REDISMODULE_OK;
        }
        RedisModule_FreeCallReply(rep);
    }
    if (!mod_is_resp3(ctx)) return RedisModule_ReplyWithStringBuffer(ctx, r->text ? r->text : "", r->len);
    RedisModule_ReplyWithMap(ctx, 8);
    RedisModule_ReplyWithCString(ctx, "text");
    RedisModule_ReplyWithStringBuffer(ctx, r->text ? r->text : "", r->len);
    RedisModule_ReplyWithCString(ctx, "tokens");
    RedisModule_ReplyWithLongLong(ctx, r->st.generated_tokens);
    RedisModule_ReplyWithCString(ctx, "finish");
    RedisModule_ReplyWithCString(ctx, infer_finish_name(r->reason));
    RedisModule_ReplyWithCString(ctx, "prompt_tokens");
    RedisModule_ReplyWithLongLong(ctx, r->st.prompt_tokens);
    RedisModule_ReplyWithCString(ctx, "reused_tokens");
    RedisModule_ReplyWithLongLong(ctx, r->st.reused_tokens);
    RedisModule_ReplyWithCString(ctx, "queue_ms");
    RedisModule_ReplyWithDouble(ctx, r->st.queue_ms);
    RedisModule_ReplyWithCString(ctx, "prefill_ms");
    RedisModule_ReplyWithDouble(ctx, r->st.prefill_ms);
    RedisModule_ReplyWithCString(ctx, "decode_ms");
    RedisModule_ReplyWithDouble(ctx, r->st.decode_ms);
    return REDISMODULE_OK;
}

static int gen_timeout(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    /* never armed (the engine enforces TIMEOUT), kept because the API
     * wants one */
    (void)argv, (void)argc;
    return RedisModule_ReplyWithError(ctx, "TIMEOUT generation timed out");
}

static void gen_free(RedisModuleCtx *ctx, void *priv) {
    (void)ctx;
    gen_req *r = priv;
    if (!r) return;
    list_del(r);
    mod_model_unref(r->m);
    g_mod.in_flight--;
    free(r->store_key);
    free(r->text);
    free(r);
}

static void gen_disconnected(RedisModuleCtx *ctx, RedisModuleBlockedClient *bc) {
    (void)ctx;
    for (gen_req *r = g_inflight; r; r = r->next) {
        if (r->bc == bc) {
            if (r->m->sched) infer_sched_cancel(r->m->sched, r->id);
            return;
        }
    }
}

/* Copies the string value of key into a fresh buffer (caller frees).  The
 * value is read with GET run as the calling user, so the user's ACL key
 * patterns apply (the command declares no key positions, and opening the
 * key directly would bypass them) and a wrong type answers WRONGTYPE.
 * Replies the error and returns NULL when it cannot. */
static char *copy_key(RedisModuleCtx *ctx, RedisModuleString *key, size_t *len) {
    errno = 0;
    RedisModuleCallReply *rep = RedisModule_Call(ctx, "GET", "Cs", key);
    if (!rep) {
        /* the call is refused before running: EACCES is the ACL */
        RedisModule_ReplyWithError(ctx, errno == EACCES ? "NOPERM this user has no permissions to access the key"
                                                        : "ERR cannot read the key");
        return NULL;
    }
    int type = RedisModule_CallReplyType(rep);
    if (type == REDISMODULE_REPLY_NULL) {
        RedisModule_FreeCallReply(rep);
        RedisModule_ReplyWithError(ctx, "ERR no such key");
        return NULL;
    }
    size_t n = 0;
    const char *p = RedisModule_CallReplyStringPtr(rep, &n);
    if (type == REDISMODULE_REPLY_ERROR || type != REDISMODULE_REPLY_STRING || !p) {
        mod_reply_errorf(ctx, "%.*s", p ? (int)(n > 300 ? 300 : n) : 3, p ? p : "ERR");
        RedisModule_FreeCallReply(rep);
        return NULL;
    }
    char *copy = malloc(n + 1);
    if (copy) {
        if (n) memcpy(copy, p, n);
        copy[n] = 0;
    }
    RedisModule_FreeCallReply(rep); /* no pointer into the reply survives */
    if (!copy) {
        RedisModule_ReplyWithError(ctx, "ERR out of memory");
        return NULL;
    }
    *len = n;
    return copy;
}

/* Tokenizes text (with CHAT: wrapped in the model's template).  Returns a
 * malloc'd id array or NULL with err set. */
static int32_t *tokenize_prompt(const infer_vocab *v, const char *text, size_t len, int chat, int64_t *n,
                                char *err, size_t errlen) {
    char *chat_text = NULL;
    unsigned flags = INFER_TOK_ADD_SPECIAL;
    if (chat) {
        if (memchr(text, 0, len)) {
            snprintf(err, errlen, "a CHAT prompt must not contain NUL bytes");
            return NULL;
        }
        int tmpl = infer_chat_template(v);
        infer_chat_msg msg = {"user", text};
        unsigned cf = INFER_CHAT_ADD_ASSISTANT | (tmpl == INFER_CHAT_QWEN3 ? INFER_CHAT_NO_THINKING : 0);
        int64_t need = infer_chat_format(tmpl, &msg, 1, cf, NULL, 0, err, errlen);
        if (need < 0) return NULL;
        if (!(chat_text = malloc((size_t)need + 1))) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        if (infer_chat_format(tmpl, &msg, 1, cf, chat_text, (size_t)need + 1, err, errlen) < 0) {
            free(chat_text);
            return NULL;
        }
        text = chat_text;
        len = (size_t)need;
        flags = INFER_TOK_PARSE_SPECIAL;
    }
    size_t cap = len + 16;
    int32_t *ids = malloc(cap * sizeof *ids);
    int64_t r = ids ? infer_tokenize(v, text, len, flags, ids, cap, err, errlen) : -1;
    if (!ids) snprintf(err, errlen, "out of memory");
    if (r > (int64_t)cap) {
        int32_t *b = realloc(ids, (size_t)r * sizeof *ids);
        if (b) {
            ids = b;
            r = infer_tokenize(v, text, len, flags, ids, (size_t)r, err, errlen);
        } else {
            snprintf(err, errlen, "out of memory");
            r = -1;
        }
    }
    free(chat_text);
    if (r < 0) {
        free(ids);
        return NULL;
    }
    *n = r;
    return ids;
}

/* TOKENSKEY bytes: little-endian uint32 ids, decoded byte by byte. */
static int32_t *decode_tokens(const unsigned char *p, size_t len, int32_t n_vocab, int64_t *n, char *err,
                              size_t errlen) {
    if (len == 0 || len % 4 != 0) {
        snprintf(err, errlen, "TOKENSKEY value must be a non-empty sequence of 4-byte little-endian ids (got %zu bytes)", len);
        return NULL;
    }
    size_t cnt = len / 4;
    int32_t *ids = malloc(cnt * sizeof *ids);
    if (!ids) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cnt; i++) {
        uint32_t v = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                     (uint32_t)p[4 * i + 3] << 24;
        if (v >= (uint32_t)n_vocab) {
            snprintf(err, errlen, "TOKENSKEY id %u at position %zu is out of range (vocab size %d)", v, i, n_vocab);
            free(ids);
            return NULL;
        }
        ids[i] = (int32_t)v;
    }
    *n = (int64_t)cnt;
    return ids;
}

typedef struct gen_opts {
    long long max_tokens; /* 0: default */
    infer_sampler_params sp;
    const char *stop[MAX_STOP];
    char *stop_copy[MAX_STOP];
    int n_stop;
    int chat;
    long long timeout_ms;
    RedisModuleString *store;
} gen_opts;

static void opts_free(gen_opts *o) {
    for (int i = 0; i < o->n_stop; i++) free(o->stop_copy[i]);
}

/* Parses argv[from..argc).  Replies the error and returns -1 on a bad one. */
static int parse_opts(RedisModuleCtx *ctx, RedisModuleString **argv, int from, int argc, int32_t n_ctx,
                      int32_t n_vocab, gen_opts *o) {
    infer_sampler_defaults(&o->sp);
    o->timeout_ms = g_mod.cfg.default_timeout_ms;
    for (int i = from; i < argc; i++) {
        RedisModuleString *a = argv[i];
        int has = i + 1 < argc;
        double d;
        long long ll;
        if (mod_arg_is(a, "CHAT")) {
            o->chat = 1;
            continue;
        }
        if (!has) goto syntax;
        RedisModuleString *v = argv[++i];
        if (mod_arg_is(a, "MAXTOKENS")) {
            if (mod_arg_ll(ctx, v, "MAXTOKENS", 1, n_ctx, &o->max_tokens) < 0) return -1;
        } else if (mod_arg_is(a, "TEMPERATURE")) {
            if (mod_arg_double(ctx, v, "TEMPERATURE", 0, 100, &d) < 0) return -1;
            o->sp.temperature = (float)d;
        } else if (mod_arg_is(a, "TOPK")) {
            if (mod_arg_ll(ctx, v, "TOPK", 0, n_vocab, &ll) < 0) return -1;
            o->sp.top_k = (int32_t)ll;
        } else if (mod_arg_is(a, "TOPP")) {
            if (mod_arg_double(ctx, v, "TOPP", 0, 1, &d) < 0) return -1;
            if (d <= 0) {
                RedisModule_ReplyWithError(ctx, "ERR TOPP must be a number between 0 (exclusive) and 1");
                return -1;
            }
            o->sp.top_p = (float)d;
        } else if (mod_arg_is(a, "MINP")) {
            if (mod_arg_double(ctx, v, "MINP", 0, 1, &d) < 0) return -1;
            o->sp.min_p = (float)d;
        } else if (mod_arg_is(a, "REPEAT-PENALTY")) {
            if (mod_arg_double(ctx, v, "REPEAT-PENALTY", 0.01, 100, &d) < 0) return -1;
            o->sp.repeat_penalty = (float)d;
        } else if (mod_arg_is(a, "SEED")) {
            if (mod_arg_u64(ctx, v, "SEED", &o->sp.seed) < 0) return -1;
        } else if (mod_arg_is(a, "TIMEOUT")) {
            if (mod_arg_ll(ctx, v, "TIMEOUT", 0, MAX_TIMEOUT_MS, &o->timeout_ms) < 0) return -1;
        } else if (mod_arg_is(a, "STOP")) {
            size_t sl;
            const char *s = RedisModule_StringPtrLen(v, &sl);
            if (o->n_stop >= MAX_STOP) {
                mod_reply_errorf(ctx, "ERR at most %d STOP strings", MAX_STOP);
                return -1;
            }
            if (sl == 0 || sl > MAX_STOP_LEN || memchr(s, 0, sl)) {
                mod_reply_errorf(ctx, "ERR STOP string must be 1 to %d bytes without NUL", MAX_STOP_LEN);
                return -1;
            }
            char *c = malloc(sl + 1);
            if (!c) {
                RedisModule_ReplyWithError(ctx, "ERR out of memory");
                return -1;
            }
            memcpy(c, s, sl);
            c[sl] = 0;
            o->stop_copy[o->n_stop] = c;
            o->stop[o->n_stop++] = c;
        } else if (mod_arg_is(a, "STORE")) {
            o->store = v;
        } else if (mod_arg_is(a, "STREAM")) {
            RedisModule_ReplyWithError(ctx, "ERR STREAM is not supported by the module yet");
            return -1;
        } else {
            goto syntax;
        }
    }
    return 0;
syntax:
    RedisModule_ReplyWithError(ctx, "ERR syntax error");
    return -1;
}

/* INFER.GENERATE name (prompt | PROMPTKEY key | TOKENSKEY key) [options] */
int mod_cmd_generate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3) return RedisModule_WrongArity(ctx);
    mod_model *m = mod_arg_model(ctx, argv[1]);
    if (!m) return REDISMODULE_OK;
    if (!m->sched) return RedisModule_ReplyWithError(ctx, "ERR the server is shutting down");
    const infer_vocab *v = infer_model_vocab(m->model);
    int32_t n_vocab = infer_vocab_size(v);
    int32_t n_ctx = infer_ctx_n_ctx(m->ctx);

    int src = 0; /* 0: literal, 1: PROMPTKEY, 2: TOKENSKEY */
    int opt_from = 3;
    if (argc >= 4 && mod_arg_is(argv[2], "PROMPTKEY")) src = 1, opt_from = 4;
    else if (argc >= 4 && mod_arg_is(argv[2], "TOKENSKEY")) src = 2, opt_from = 4;

    gen_opts o;
    memset(&o, 0, sizeof o);
    if (parse_opts(ctx, argv, opt_from, argc, n_ctx, n_vocab, &o) < 0) {
        opts_free(&o);
        g_mod.refused++;
        return REDISMODULE_OK;
    }
    if (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_DENY_BLOCKING) {
        opts_free(&o);
        return RedisModule_ReplyWithError(ctx, "ERR INFER.GENERATE cannot run inside MULTI or a script");
    }
    int cf = RedisModule_GetContextFlags(ctx);
    if (o.store && (cf & REDISMODULE_CTX_FLAGS_SLAVE) && (cf & REDISMODULE_CTX_FLAGS_READONLY)) {
        opts_free(&o);
        return RedisModule_ReplyWithError(ctx, "READONLY You can't write against a read only replica.");
    }
    if (src == 2 && o.chat) {
        opts_free(&o);
        return RedisModule_ReplyWithError(ctx, "ERR CHAT cannot be combined with TOKENSKEY");
    }

    /* Copy the input while the lock is held; everything after works on
     * the copy. */
    char err[512];
    int64_t n_prompt = 0;
    int32_t *ids = NULL;
    if (src == 0) {
        size_t len;
        const char *p = RedisModule_StringPtrLen(argv[2], &len);
        ids = tokenize_prompt(v, p, len, o.chat, &n_prompt, err, sizeof err);
    } else {
        size_t len;
        char *copy = copy_key(ctx, argv[3], &len);
        if (!copy) {
            opts_free(&o);
            return REDISMODULE_OK;
        }
        ids = src == 1 ? tokenize_prompt(v, copy, len, o.chat, &n_prompt, err, sizeof err)
                       : decode_tokens((const unsigned char *)copy, len, n_vocab, &n_prompt, err, sizeof err);
        free(copy);
    }
    if (!ids) {
        opts_free(&o);
        g_mod.refused++;
        return mod_reply_errorf(ctx, "ERR %s", err);
    }
    if (n_prompt == 0) {
        free(ids);
        opts_free(&o);
        g_mod.refused++;
        return RedisModule_ReplyWithError(ctx, "ERR the prompt is empty and the model's vocab has no BOS token");
    }
    if (n_prompt >= n_ctx) {
        free(ids);
        opts_free(&o);
        g_mod.refused++;
        return mod_reply_errorf(ctx, "ERR the prompt has %lld tokens; the context holds %d", (long long)n_prompt,
                                n_ctx);
    }
    long long max_tokens = o.max_tokens;
    if (max_tokens == 0) {
        max_tokens = g_mod.cfg.default_max_tokens;
        if (max_tokens > n_ctx - n_prompt) max_tokens = n_ctx - n_prompt;
    } else if (n_prompt + max_tokens > n_ctx) {
        free(ids);
        opts_free(&o);
        g_mod.refused++;
        return mod_reply_errorf(ctx, "ERR prompt (%lld tokens) + MAXTOKENS %lld exceed the context of %d tokens",
                                (long long)n_prompt, max_tokens, n_ctx);
    }

    gen_req *r = calloc(1, sizeof *r);
    if (!r) {
        free(ids);
        opts_free(&o);
        return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    }
    r->m = m;
    r->timeout_ms = o.timeout_ms;
    if (o.store) {
        size_t kl;
        const char *k = RedisModule_StringPtrLen(o.store, &kl);
        if (!(r->store_key = malloc(kl + 1))) {
            free(r), free(ids);
            opts_free(&o);
            return RedisModule_ReplyWithError(ctx, "ERR out of memory");
        }
        memcpy(r->store_key, k, kl);
        r->store_key[kl] = 0;
        r->store_len = kl;
    }
    r->bc = RedisModule_BlockClient(ctx, gen_reply, gen_timeout, gen_free, 0);
    if (!r->bc) {
        free(r->store_key), free(r), free(ids);
        opts_free(&o);
        return RedisModule_ReplyWithError(ctx, "ERR cannot block the client");
    }
    infer_request req = {0};
    req.prompt = ids;
    req.n_prompt = (int32_t)n_prompt;
    req.max_tokens = (int32_t)max_tokens;
    req.sampling = o.sp;
    req.stop = o.stop;
    req.n_stop = o.n_stop;
    req.timeout_ms = o.timeout_ms;
    req.on_text = on_text;
    req.on_done = on_done;
    req.ud = r;
    /* registered before submit: on_done may run (and free_privdata follow)
     * as soon as submit returns, and both expect the bookkeeping */
    m->refs++;
    g_mod.in_flight++;
    list_add(r);
    int rc = infer_sched_submit(m->sched, &req, &r->id, err, sizeof err);
    free(ids);
    opts_free(&o);
    if (rc < 0) {
        /* no callback will ever come: unblock without callbacks and answer
         * from here */
        list_del(r);
        g_mod.in_flight--;
        mod_model_unref(m);
        RedisModule_AbortBlock(r->bc);
        free(r->store_key);
        free(r);
        return mod_reply_errorf(ctx, "ERR %s", err);
    }
    RedisModule_SetDisconnectCallback(r->bc, gen_disconnected);
    return REDISMODULE_OK;
}
