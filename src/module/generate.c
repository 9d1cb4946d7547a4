/* generate.c - INFER.GENERATE inside Redis: a blocked client served by a
 * model's scheduler.
 *
 * The command callback runs on the main thread with the server lock held:
 * libinfercmd parses and range-checks every argument, the prompt is copied
 * out of the argument or the key (so a key overwritten, deleted or evicted
 * later changes nothing) and tokenized, the client is blocked and the
 * request submitted.  The engine thread only appends to the request's own
 * buffers; at the end RedisModule_UnblockClient hands the request to the
 * main thread, where gen_reply answers.  A client that disconnects cancels
 * its request.
 *
 * STORE key: the final text is SET from the reply callback, as the calling
 * user (ACL-checked), propagated to replicas and the AOF.
 * STREAM key: each piece of text is XADDed (field "text") as it is
 * produced, then a final entry (fields "finish" and "tokens").  The engine
 * thread asks for a main-thread callback (mod_run_on_main: a one-shot that
 * arms a module timer, so that the XADDs' propagation is flushed); the
 * writes go through a detached context on the client's database.  The
 * user's write permission on the key is checked when the command runs.
 * A request stays alive (and counted in flight, so MODULE UNLOAD waits)
 * until its last pending callback has run. */
#include "mod.h"
#include "vcmd.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gen_req *g_inflight;

static void list_add(gen_req *g) {
    g->prev = NULL;
    g->next = g_inflight;
    if (g_inflight) g_inflight->prev = g;
    g_inflight = g;
}

static void list_del(gen_req *g) {
    if (g->prev) g->prev->next = g->next;
    else g_inflight = g->next;
    if (g->next) g->next->prev = g->prev;
}

static void release(gen_req *g) {
    if (atomic_fetch_sub(&g->holds, 1) != 1) return;
    ic_req_free(&g_mod.reg, g->r);
    ic_ereq_free(&g_mod.reg, g->e);
    ic_rag_free(&g_mod.reg, g->rag);
    free(g->user);
    free(g->store_key);
    free(g->stream_key);
    free(g);
}

/* ---- STREAM writes (main thread) ---------------------------------------- */

static int xadd_ok(RedisModuleCallReply *rep, gen_req *g) {
    if (rep && RedisModule_CallReplyType(rep) != REDISMODULE_REPLY_ERROR) {
        RedisModule_FreeCallReply(rep);
        return 1;
    }
    size_t el = 0;
    const char *e = rep ? RedisModule_CallReplyStringPtr(rep, &el) : "the write was refused";
    if (!rep) el = strlen(e);
    if (!g->stream_err[0]) snprintf(g->stream_err, sizeof g->stream_err, "%.*s", (int)(el > 200 ? 200 : el), e);
    if (rep) RedisModule_FreeCallReply(rep);
    return 0;
}

static void stream_flush(gen_req *g) {
    if (!g->stream_key || g->stream_done || !g->r) return;
    char *buf;
    size_t *lens;
    size_t n = ic_req_take_pieces(g->r, &buf, &lens);
    RedisModule_SelectDb(g_mod.dctx, g->dbid);
    size_t off = 0;
    for (size_t i = 0; i < n && !g->stream_err[0]; i++) {
        xadd_ok(RedisModule_Call(g_mod.dctx, "XADD", "!bccb", g->stream_key, g->stream_len, "*", IC_STREAM_TEXT,
                                 buf + off, lens[i]),
                g);
        off += lens[i];
    }
    free(buf);
    free(lens);
}

static void stream_finish(gen_req *g) {
    if (!g->stream_key || g->stream_done || !g->r) return;
    stream_flush(g);
    g->stream_done = 1;
    if (g->stream_err[0]) return;
    const char *fv[4];
    size_t fl[4];
    char num[24];
    ic_req_final_entry(g->r, fv, fl, num);
    xadd_ok(RedisModule_Call(g_mod.dctx, "XADD", "!bcbbbb", g->stream_key, g->stream_len, "*", fv[0], fl[0], fv[1],
                             fl[1], fv[2], fl[2], fv[3], fl[3]),
            g);
}

/* main thread, in a module context (mainthread.c): the pieces so far */
static void main_flush(RedisModuleCtx *ctx, void *arg) {
    (void)ctx;
    gen_req *g = arg;
    stream_flush(g);
    release(g);
}

/* ---- engine thread -------------------------------------------------------- */

static void notify(ic_req *r, int ev) {
    gen_req *g = r->ud;
    if (ev == IC_EV_DONE) {
        /* from here on the request belongs to the main thread */
        RedisModule_UnblockClient(g->bc, g);
        return;
    }
    atomic_fetch_add(&g->holds, 1);
    if (mod_run_on_main(main_flush, g) < 0) atomic_fetch_sub(&g->holds, 1); /* the pieces wait for the final flush */
}

/* ---- main thread ------------------------------------------------------------ */

/* A score as VSIM prints it: Redis 8's digits in RESP2, a double in RESP3. */
static void reply_score(RedisModuleCtx *ctx, double d) {
    if (mod_is_resp3(ctx)) {
        RedisModule_ReplyWithDouble(ctx, d);
        return;
    }
    char buf[64];
    int n = vc_format_double(buf, sizeof buf, d);
    RedisModule_ReplyWithStringBuffer(ctx, buf, (size_t)n);
}

/* INFER.RAG's and INFER.ANSWER's answer: a map in both protocols (flat in
 * RESP2). */
static int rag_reply(RedisModuleCtx *ctx, const ic_rag *g, const ic_req *r) {
    ic_field f[IC_RAG_FIELDS];
    int n = ic_rag_result(g, r, f);
    RedisModule_ReplyWithMap(ctx, n + g->withsources + g->withprompt);
    for (int i = 0; i < n; i++) {
        RedisModule_ReplyWithCString(ctx, f[i].name);
        if (f[i].kind == IC_F_DOUBLE) RedisModule_ReplyWithDouble(ctx, f[i].d);
        else if (f[i].kind == IC_F_STR) RedisModule_ReplyWithStringBuffer(ctx, f[i].s, f[i].slen);
        else RedisModule_ReplyWithLongLong(ctx, f[i].ll);
    }
    if (g->withsources && !g->emb) { /* INFER.ANSWER: the chunks given have no names */
        RedisModule_ReplyWithCString(ctx, "sources");
        RedisModule_ReplyWithArray(ctx, g->n_hits);
        for (int i = 0; i < g->n_hits; i++) RedisModule_ReplyWithCString(ctx, ic_rag_hit_state(&g->hits[i]));
    } else if (g->withsources) {
        RedisModule_ReplyWithCString(ctx, "sources");
        RedisModule_ReplyWithArray(ctx, g->n_hits);
        for (int i = 0; i < g->n_hits; i++) {
            RedisModule_ReplyWithArray(ctx, 3);
            RedisModule_ReplyWithStringBuffer(ctx, g->hits[i].name, g->hits[i].name_len);
            reply_score(ctx, g->hits[i].score);
            RedisModule_ReplyWithCString(ctx, ic_rag_hit_state(&g->hits[i]));
        }
    }
    if (g->withprompt) {
        RedisModule_ReplyWithCString(ctx, "prompt");
        RedisModule_ReplyWithStringBuffer(ctx, g->prompt ? g->prompt : "", g->prompt_len);
    }
    return REDISMODULE_OK;
}

static int gen_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    gen_req *g = RedisModule_GetBlockedClientPrivateData(ctx);
    ic_req *r = g->r;
    if (!r) return mod_reply_err(ctx, g->early_err[0] ? g->early_err : "ERR the request ended early");
    stream_finish(g);
    char buf[IC_ERRLEN];
    const char *e = ic_req_error(r, buf, sizeof buf);
    if (e) return mod_reply_err(ctx, e);
    if (g->stream_err[0]) return mod_reply_errorf(ctx, "ERR STREAM failed: %s", g->stream_err);
    if (g->store_key) {
        errno = 0;
        RedisModuleCallReply *rep =
            RedisModule_Call(ctx, "SET", "!Cbb", g->store_key, g->store_len, r->text ? r->text : "", r->len);
        if (!rep || RedisModule_CallReplyType(rep) == REDISMODULE_REPLY_ERROR) {
            size_t el = 0;
            const char *m = rep ? RedisModule_CallReplyStringPtr(rep, &el) : NULL;
            if (!rep && errno == EACCES) m = "no permissions to write the key", el = strlen(m);
            mod_reply_errorf(ctx, "ERR STORE failed: %.*s", m ? (int)(el > 200 ? 200 : el) : 0, m ? m : "");
            if (rep) RedisModule_FreeCallReply(rep);
            return REDISMODULE_OK;
        }
        RedisModule_FreeCallReply(rep);
    }
    if (g->rag) return rag_reply(ctx, g->rag, r);
    if (!mod_is_resp3(ctx)) return RedisModule_ReplyWithStringBuffer(ctx, r->text ? r->text : "", r->len);
    ic_field f[IC_RESULT_FIELDS];
    return mod_reply_fields(ctx, f, ic_req_result(r, f));
}

/* Ends the request at whatever step it is: INFER.RAG's embedding, its
 * retrieval (not run yet: its main-thread callback sees the flag), the
 * generation. */
static void cancel(gen_req *g) {
    g->cancelled = 1;
    if (g->e) ic_ereq_cancel(g->e);
    else if (g->r) ic_req_cancel(g->r);
}

/* Never armed by time (the engine enforces TIMEOUT): only CLIENT UNBLOCK
 * (its TIMEOUT form) lands here.  Redis does not call the disconnect
 * callback after it, so the request is cancelled here, not left running
 * for nobody.  (The ERROR form goes through gen_disconnected.) */
static int gen_timeout(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    RedisModuleBlockedClient *bc = RedisModule_GetBlockedClientHandle(ctx);
    for (gen_req *g = g_inflight; bc && g; g = g->next) {
        if (g->bc == bc) {
            cancel(g);
            break;
        }
    }
    return RedisModule_ReplyWithError(ctx, "UNBLOCKED generation cancelled via CLIENT UNBLOCK");
}

static void gen_free(RedisModuleCtx *ctx, void *priv) {
    (void)ctx;
    gen_req *g = priv;
    if (!g) return;
    list_del(g);
    stream_finish(g); /* the client went away: readers still see the end */
    release(g);
}

static void gen_disconnected(RedisModuleCtx *ctx, RedisModuleBlockedClient *bc) {
    (void)ctx;
    for (gen_req *g = g_inflight; g; g = g->next) {
        if (g->bc == bc) {
            cancel(g);
            return;
        }
    }
}

/* Copies the string value of key into a fresh buffer (caller frees).  The
 * value is read with GET run as the calling user, so the user's ACL key
 * patterns apply (the command declares no key positions, and opening the
 * key directly would bypass them) and a wrong type answers WRONGTYPE.
 * Replies the error and returns NULL when it cannot. */
static char *copy_key(RedisModuleCtx *ctx, const ic_arg *key, size_t *len) {
    errno = 0;
    RedisModuleCallReply *rep = RedisModule_Call(ctx, "GET", "Cb", key->ptr, key->len);
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
    if (type != REDISMODULE_REPLY_STRING || !p) {
        mod_reply_errorf(ctx, "%.*s", p ? (int)(n > 300 ? 300 : n) : 3, p ? p : "ERR");
        RedisModule_FreeCallReply(rep);
        return NULL;
    }
    char *copy = infer_malloc(n + 1);
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

/* STREAM key: the user must be allowed to write it, and it must be a
 * stream or absent.  Replies the error and returns -1 otherwise. */
int mod_check_stream_key(RedisModuleCtx *ctx, const ic_arg *key) {
    RedisModuleString *k = RedisModule_CreateString(ctx, key->ptr, key->len);
    RedisModuleString *uname = RedisModule_GetCurrentUserName(ctx);
    RedisModuleUser *u = uname ? RedisModule_GetModuleUserFromUserName(uname) : NULL;
    int allowed = u && RedisModule_ACLCheckKeyPermissions(u, k, REDISMODULE_CMD_KEY_INSERT) == REDISMODULE_OK;
    if (u) RedisModule_FreeModuleUser(u);
    if (uname) RedisModule_FreeString(ctx, uname);
    int rc = 0;
    if (!allowed) {
        RedisModule_ReplyWithError(ctx, "NOPERM this user has no permissions to write the STREAM key");
        rc = -1;
    } else {
        RedisModuleCallReply *rep = RedisModule_Call(ctx, "TYPE", "s", k);
        size_t tl = 0;
        const char *t = rep ? RedisModule_CallReplyStringPtr(rep, &tl) : NULL;
        if (t && !(tl == 4 && !memcmp(t, "none", 4)) && !(tl == 6 && !memcmp(t, "stream", 6))) {
            RedisModule_ReplyWithError(ctx, "WRONGTYPE Operation against a key holding the wrong kind of value");
            rc = -1;
        }
        if (rep) RedisModule_FreeCallReply(rep);
    }
    RedisModule_FreeString(ctx, k);
    return rc;
}

static char *dup_arg(const ic_arg *a) {
    char *s = infer_malloc(a->len + 1);
    if (s) {
        memcpy(s, a->ptr, a->len);
        s[a->len] = 0;
    }
    return s;
}

gen_req *mod_gen_block(RedisModuleCtx *ctx, const ic_gen_opts *o) {
    gen_req *g = infer_calloc(1, sizeof *g);
    if (!g || (o->store.ptr && !(g->store_key = dup_arg(&o->store))) ||
        (o->stream.ptr && !(g->stream_key = dup_arg(&o->stream)))) {
        if (g) free(g->store_key), free(g->stream_key), free(g);
        RedisModule_ReplyWithError(ctx, "ERR out of memory");
        return NULL;
    }
    g->store_len = o->store.len;
    g->stream_len = o->stream.len;
    g->dbid = RedisModule_GetSelectedDb(ctx);
    atomic_init(&g->holds, 1);
    g->bc = RedisModule_BlockClient(ctx, gen_reply, gen_timeout, gen_free, 0);
    if (!g->bc) {
        release(g);
        RedisModule_ReplyWithError(ctx, "ERR cannot block the client");
        return NULL;
    }
    /* listed before anything is submitted: the reply may come as soon as
     * a submit returns */
    list_add(g);
    RedisModule_SetDisconnectCallback(g->bc, gen_disconnected);
    return g;
}

void mod_gen_abort(gen_req *g) {
    list_del(g);
    RedisModule_AbortBlock(g->bc);
    release(g);
}

int mod_gen_submit(gen_req *g, ic_model *m, const ic_gen_opts *o, const int32_t *ids, int32_t n, char *err,
                   size_t errlen) {
    if (!(g->r = ic_req_new(&g_mod.reg, m, o->stream.ptr != NULL, notify, g))) {
        snprintf(err, errlen, "ERR out of memory");
        return -1;
    }
    return ic_req_submit(&g_mod.reg, g->r, o, ids, n, err, errlen);
}

void mod_gen_release(gen_req *g) { release(g); }

/* INFER.GENERATE name (prompt | PROMPTKEY key | TOKENSKEY key) [options] */
int mod_cmd_generate(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return mod_reply_keys(ctx, IC_KEYS_GENERATE, argv, argc);
    if (argc < 3) return RedisModule_WrongArity(ctx);
    if (mod_refuse_replica_write(ctx, IC_KEYS_GENERATE, argv, argc)) return REDISMODULE_OK;
    ic_model *m = mod_arg_model(ctx, argv[1]);
    if (!m) return REDISMODULE_OK;
    if (!m->sched) return RedisModule_ReplyWithError(ctx, "ERR the server is shutting down");
    ic_arg *a = mod_args(ctx, argv, argc);
    if (!a) return REDISMODULE_OK;
    char err[IC_ERRLEN];
    ic_gen_opts o;
    int32_t *ids = NULL, n_prompt = 0;
    gen_req *g = NULL;
    if (ic_gen_parse(a, argc, m, g_mod.cfg.default_timeout_ms, &o, err, sizeof err) < 0) {
        g_mod.reg.refused++;
        mod_reply_err(ctx, err);
        goto out;
    }
    int cf = RedisModule_GetContextFlags(ctx);
    if (cf & REDISMODULE_CTX_FLAGS_DENY_BLOCKING) {
        RedisModule_ReplyWithError(ctx, "ERR INFER.GENERATE cannot run inside MULTI or a script");
        goto out;
    }
    if (o.stream.ptr && mod_check_stream_key(ctx, &o.stream) < 0) goto out;

    /* Copy the input while the lock is held; everything after works on
     * the copy. */
    if (o.src == IC_SRC_TEXT) {
        ids = ic_gen_prepare(m, &o, g_mod.cfg.default_max_tokens, o.input.ptr, o.input.len, &n_prompt, err,
                             sizeof err);
    } else {
        size_t len;
        char *copy = copy_key(ctx, &o.input, &len);
        if (!copy) goto out;
        ids = ic_gen_prepare(m, &o, g_mod.cfg.default_max_tokens, copy, len, &n_prompt, err, sizeof err);
        free(copy);
    }
    if (!ids) {
        g_mod.reg.refused++;
        mod_reply_err(ctx, err);
        goto out;
    }
    if (!(g = mod_gen_block(ctx, &o))) goto out;
    if (mod_gen_submit(g, m, &o, ids, n_prompt, err, sizeof err) < 0) {
        /* no callback will ever come: unblock without callbacks and answer
         * from here */
        mod_gen_abort(g);
        mod_reply_err(ctx, err);
    }
out:
    free(ids);
    ic_gen_opts_free(&o);
    free(a);
    return REDISMODULE_OK;
}
