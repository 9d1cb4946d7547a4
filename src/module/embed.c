/* embed.c - INFER.EMBED inside Redis: a blocked client served by an
 * encoder's scheduler.
 *
 * The command callback runs on the main thread with the server lock held:
 * libinfercmd parses and checks every argument and text, the client is
 * blocked and the texts submitted (the engine copies them).  The encoder's
 * scheduler batches them with every other waiting request and hands the
 * vectors over on its own thread, which only copies them into the request
 * and calls RedisModule_UnblockClient; embed_reply answers on the main
 * thread.  A client that disconnects (or CLIENT UNBLOCK) cancels.
 *
 * INTO key element text: once the vector is back, embed_reply runs
 *     VADD key FP32 blob element [Q8|BIN|NOQUANT] [SETATTR json]
 * through RedisModule_Call as the calling user ("C": ACL key permissions
 * apply), with "M" (refused over maxmemory, as VADD is) and "!" (VADD
 * replicates itself verbatim: replicas and the AOF get the VADD with the
 * vector, not the INFER.EMBED, so they need no model).  Going through the
 * server's own VADD means the write is exactly a VADD of that moment -
 * whoever implements it (this module's vector sets or Redis 8's), and
 * whatever happened to the key while the engine ran.  The reply is VADD's
 * (1 added, 0 updated, or its error).  If the client has gone by then,
 * nothing is written (the reply callback does not run). */
#include "mod.h"
#include "vcmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct emb_req {
    struct emb_req *prev, *next; /* in-flight list (main thread) */
    RedisModuleBlockedClient *bc;
    ic_ereq *e;
    int fp32, into;
    char *key, *element, *attr; /* INTO (attr NULL without SETATTR) */
    size_t key_len, element_len, attr_len;
    const char *quant;
} emb_req;

static emb_req *e_inflight;

static void list_add(emb_req *r) {
    r->prev = NULL;
    r->next = e_inflight;
    if (e_inflight) e_inflight->prev = r;
    e_inflight = r;
}

static void list_del(emb_req *r) {
    if (r->prev) r->prev->next = r->next;
    else e_inflight = r->next;
    if (r->next) r->next->prev = r->prev;
}

static void emb_free_req(emb_req *r) {
    ic_ereq_free(&g_mod.reg, r->e);
    free(r->key);
    free(r->element);
    free(r->attr);
    free(r);
}

/* engine thread: from here on the request belongs to the main thread */
static void emb_notify(ic_ereq *e) {
    emb_req *r = e->ud;
    RedisModule_UnblockClient(r->bc, r);
}

static void reply_double(RedisModuleCtx *ctx, int resp3, double d) {
    if (resp3) {
        RedisModule_ReplyWithDouble(ctx, d);
        return;
    }
    char buf[64];
    int n = vc_format_double(buf, sizeof buf, d);
    RedisModule_ReplyWithStringBuffer(ctx, buf, (size_t)n);
}

static int reply_vectors(RedisModuleCtx *ctx, const ic_ereq *e, int fp32) {
    unsigned char *blob = fp32 ? infer_malloc((size_t)e->dim * 4) : NULL;
    if (fp32 && !blob) return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    int resp3 = mod_is_resp3(ctx);
    RedisModule_ReplyWithArray(ctx, e->n);
    for (int32_t i = 0; i < e->n; i++) {
        const float *v = e->vec + (size_t)i * (size_t)e->dim;
        if (fp32) {
            ic_f32_le(v, (size_t)e->dim, blob);
            RedisModule_ReplyWithStringBuffer(ctx, (const char *)blob, (size_t)e->dim * 4);
            continue;
        }
        RedisModule_ReplyWithArray(ctx, e->dim);
        for (int32_t d = 0; d < e->dim; d++) reply_double(ctx, resp3, v[d]);
    }
    free(blob);
    return REDISMODULE_OK;
}

/* INTO's VADD, as the calling user, from the reply callback (main thread,
 * lock held: the key is as it is now). */
static int into_vadd(RedisModuleCtx *ctx, emb_req *r) {
    const ic_ereq *e = r->e;
    size_t blen = (size_t)e->dim * 4;
    unsigned char *blob = infer_malloc(blen);
    if (!blob) return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    ic_f32_le(e->vec, (size_t)e->dim, blob);
    const char *q = r->quant;
    RedisModuleCallReply *rep;
    errno = 0;
    if (q && r->attr)
        rep = RedisModule_Call(ctx, "VADD", "!CMbcbbccb", r->key, r->key_len, "FP32", (const char *)blob, blen,
                               r->element, r->element_len, q, "SETATTR", r->attr, r->attr_len);
    else if (q)
        rep = RedisModule_Call(ctx, "VADD", "!CMbcbbc", r->key, r->key_len, "FP32", (const char *)blob, blen,
                               r->element, r->element_len, q);
    else if (r->attr)
        rep = RedisModule_Call(ctx, "VADD", "!CMbcbbcb", r->key, r->key_len, "FP32", (const char *)blob, blen,
                               r->element, r->element_len, "SETATTR", r->attr, r->attr_len);
    else
        rep = RedisModule_Call(ctx, "VADD", "!CMbcbb", r->key, r->key_len, "FP32", (const char *)blob, blen,
                               r->element, r->element_len);
    free(blob);
    if (!rep) {
        /* refused before running: the ACL, maxmemory, or no VADD at all */
        if (errno == EACCES)
            return RedisModule_ReplyWithError(ctx, "NOPERM this user has no permissions to write the INTO key");
        if (errno == ENOSPC)
            return RedisModule_ReplyWithError(ctx, "OOM command not allowed when used memory > 'maxmemory'.");
        if (errno == ENOENT)
            return RedisModule_ReplyWithError(
                ctx, "ERR INTO needs vector sets: the server has no VADD (load inferkv.so with infer-vector-sets yes)");
        return mod_reply_errorf(ctx, "ERR the VADD was refused (%s)", strerror(errno));
    }
    int t = RedisModule_CallReplyType(rep);
    if (t == REDISMODULE_REPLY_INTEGER) {
        /* VADD answers a boolean: :1/:0 in RESP2, #t/#f in RESP3 */
        RedisModule_ReplyWithBool(ctx, RedisModule_CallReplyInteger(rep) != 0);
    } else {
        size_t n = 0;
        const char *p = RedisModule_CallReplyStringPtr(rep, &n);
        if (t == REDISMODULE_REPLY_ERROR && p) mod_reply_errorf(ctx, "%.*s", (int)(n > 400 ? 400 : n), p);
        else RedisModule_ReplyWithError(ctx, "ERR unexpected reply from VADD");
    }
    RedisModule_FreeCallReply(rep);
    return REDISMODULE_OK;
}

static int embed_reply(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    emb_req *r = RedisModule_GetBlockedClientPrivateData(ctx);
    char buf[IC_ERRLEN];
    const char *e = ic_ereq_error(r->e, buf, sizeof buf);
    if (e) return mod_reply_err(ctx, e);
    if (r->into) return into_vadd(ctx, r);
    return reply_vectors(ctx, r->e, r->fp32);
}

/* Only CLIENT UNBLOCK lands here (the engine enforces TIMEOUT); Redis does
 * not call the disconnect callback after it, so cancel here. */
static int embed_timeout(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    RedisModuleBlockedClient *bc = RedisModule_GetBlockedClientHandle(ctx);
    for (emb_req *r = e_inflight; bc && r; r = r->next) {
        if (r->bc == bc) {
            ic_ereq_cancel(r->e);
            break;
        }
    }
    return RedisModule_ReplyWithError(ctx, "UNBLOCKED embedding cancelled via CLIENT UNBLOCK");
}

static void embed_free(RedisModuleCtx *ctx, void *priv) {
    (void)ctx;
    emb_req *r = priv;
    if (!r) return;
    list_del(r);
    emb_free_req(r);
}

static void embed_disconnected(RedisModuleCtx *ctx, RedisModuleBlockedClient *bc) {
    (void)ctx;
    for (emb_req *r = e_inflight; r; r = r->next) {
        if (r->bc == bc) {
            ic_ereq_cancel(r->e);
            return;
        }
    }
}

static char *dup_arg(const ic_arg *a, size_t *len) {
    char *s = infer_malloc(a->len + 1);
    if (s) {
        memcpy(s, a->ptr, a->len);
        s[a->len] = 0;
        *len = a->len;
    }
    return s;
}

/* INTO key: the user must be allowed to write it (checked again when the
 * VADD runs, as that user).  -1 with the error replied. */
static int check_into_key(RedisModuleCtx *ctx, const ic_arg *key) {
    RedisModuleString *k = RedisModule_CreateString(ctx, key->ptr, key->len);
    RedisModuleString *uname = RedisModule_GetCurrentUserName(ctx);
    RedisModuleUser *u = uname ? RedisModule_GetModuleUserFromUserName(uname) : NULL;
    int allowed = u && RedisModule_ACLCheckKeyPermissions(u, k, REDISMODULE_CMD_KEY_INSERT) == REDISMODULE_OK;
    if (u) RedisModule_FreeModuleUser(u);
    if (uname) RedisModule_FreeString(ctx, uname);
    RedisModule_FreeString(ctx, k);
    if (allowed) return 0;
    RedisModule_ReplyWithError(ctx, "NOPERM this user has no permissions to write the INTO key");
    return -1;
}

/* INFER.EMBED model text [text ...] [NORMALIZE yes|no] [LONG refuse|chunk]
 *     [FP32] [TIMEOUT ms]
 * INFER.EMBED model INTO key element text [SETATTR json] [Q8|BIN|NOQUANT]
 *     [NORMALIZE yes|no] [LONG refuse|chunk] [TIMEOUT ms] */
int mod_cmd_embed(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return mod_reply_keys(ctx, IC_KEYS_EMBED, argv, argc);
    if (argc < 3) return RedisModule_WrongArity(ctx);
    if (mod_refuse_replica_write(ctx, IC_KEYS_EMBED, argv, argc)) return REDISMODULE_OK;
    ic_model *m = mod_arg_model(ctx, argv[1]);
    if (!m) return REDISMODULE_OK;
    ic_arg *a = mod_args(ctx, argv, argc);
    if (!a) return REDISMODULE_OK;
    char err[IC_ERRLEN];
    ic_embed_opts o;
    emb_req *r = NULL;
    if (ic_embed_parse(a, argc, m, g_mod.cfg.default_timeout_ms, &o, err, sizeof err) < 0) {
        g_mod.reg.refused++;
        mod_reply_err(ctx, err);
        goto out;
    }
    int cf = RedisModule_GetContextFlags(ctx);
    if (cf & REDISMODULE_CTX_FLAGS_DENY_BLOCKING) {
        RedisModule_ReplyWithError(ctx, "ERR INFER.EMBED cannot run inside MULTI or a script");
        goto out;
    }
    if (!m->sched) {
        RedisModule_ReplyWithError(ctx, "ERR the server is shutting down");
        goto out;
    }
    if (o.into && check_into_key(ctx, &o.key) < 0) goto out;
    r = infer_calloc(1, sizeof *r);
    if (!r || (o.into && (!(r->key = dup_arg(&o.key, &r->key_len)) ||
                          !(r->element = dup_arg(&o.element, &r->element_len)) ||
                          (o.setattr.ptr && !(r->attr = dup_arg(&o.setattr, &r->attr_len))))) ||
        !(r->e = ic_ereq_new(&g_mod.reg, m, emb_notify, r))) {
        if (r) emb_free_req(r);
        RedisModule_ReplyWithError(ctx, "ERR out of memory");
        goto out;
    }
    r->fp32 = o.fp32;
    r->into = o.into;
    r->quant = o.quant;
    r->bc = RedisModule_BlockClient(ctx, embed_reply, embed_timeout, embed_free, 0);
    if (!r->bc) {
        emb_free_req(r);
        RedisModule_ReplyWithError(ctx, "ERR cannot block the client");
        goto out;
    }
    list_add(r); /* before submit: the vectors may come back at once */
    if (ic_ereq_submit(r->e, o.texts, o.n_texts, &o.params, o.timeout_ms, err, sizeof err) < 0) {
        list_del(r);
        RedisModule_AbortBlock(r->bc);
        emb_free_req(r);
        mod_reply_err(ctx, err);
        goto out;
    }
    RedisModule_SetDisconnectCallback(r->bc, embed_disconnected);
out:
    free(a);
    return REDISMODULE_OK;
}
