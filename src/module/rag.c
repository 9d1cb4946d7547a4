/* rag.c - INFER.RAG inside Redis: embed the question, retrieve on the main
 * thread, generate; and INFER.ANSWER, its last two steps for chunks
 * retrieved elsewhere (at the end of the file).
 *
 * The steps and the threads they run on:
 *   1. the command (main thread, lock held): libinfercmd parses and checks
 *      everything, copying what later steps need; the FILTER expression is
 *      compiled once to refuse a bad one now; the client is blocked
 *      (generate.c's gen_req) and the question submitted to the encoder's
 *      scheduler;
 *   2. the encoder's thread hands the vector over and asks for a
 *      main-thread callback (mod_run_on_main: a one-shot event-loop
 *      callback that arms a 0 ms module timer, so that the reads run in a
 *      module context - a lazily expired chunk key's DEL is propagated);
 *   3. retrieve() on the main thread: VSIM, every chunk, the TEMPLATE key
 *      and the prompt, all in that one callback - no command of any client
 *      runs in between, so the prompt comes from one state of the
 *      keyspace, and what was read is copied, so writes during the
 *      generation change nothing of it; then the generation is submitted;
 *   4. the generator's scheduler answers and gen_reply (generate.c)
 *      replies from the blocked client's reply callback, as for
 *      INFER.GENERATE (STREAM and STORE included).
 *
 * Where the re-entrancy hazard bites: the keyspace must be read on the
 * main thread with the lock held, and step 3 is where that happens.  The
 * alternative, RedisModule_ThreadSafeContextLock taken from the encoder's
 * thread, would make that thread wait for the server lock while other
 * clients' embeddings queue behind it, and would deadlock at shutdown or
 * MODULE UNLOAD, which stop the schedulers (joining their threads) while
 * holding the lock the thread waits for.  Doing the reads in the blocked
 * client's reply callback is not possible either: that callback ends the
 * block, and the generation still has to run.  So the encoder's thread
 * only schedules a main-thread callback (as STREAM writes do), which runs
 * with the lock held, between commands.
 *
 * The reads go through a detached context on the client's database
 * (RedisModule_Call: VSIM, GET, HGET, TYPE), so they work with this
 * module's vector sets and with a host's own (Redis 8).  A detached
 * context has no user, so the calling user's key permissions are checked
 * explicitly before each key is read (RedisModule_ACLCheckKeyPermissions,
 * the user looked up again by name: one deleted meanwhile fails the
 * request).
 *
 * On a Redis Cluster replica RedisModule_Call cannot read: Redis 7.0
 * routes a module's call by its keys, and the detached context's client
 * never sent READONLY, so each read is sent to the primary and refused.
 * INFER.RAG without STORE / STREAM is a read that replicas serve, so
 * there the reads go direct: VSIM through libvcmd in-process (this
 * module's own vector sets: mod_vsim_direct), the chunk and TEMPLATE keys
 * through RedisModule_OpenKey.  The host already checked that the vector
 * set's slot is served here (the replica's primary owns it); chunk keys
 * outside that slot are simply not found, as on the primary. */
#include "mod.h"
#include "vcmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static RedisModuleUser *user_of(gen_req *g) {
    if (!g->user) return NULL;
    RedisModuleString *n = RedisModule_CreateString(NULL, g->user, strlen(g->user));
    RedisModuleUser *u = n ? RedisModule_GetModuleUserFromUserName(n) : NULL;
    if (n) RedisModule_FreeString(NULL, n);
    return u;
}

/* 0 when u may read the key, else -1 with the NOPERM line. */
static int may_read(RedisModuleUser *u, const char *key, size_t klen, const char *what, char *err, size_t errlen) {
    RedisModuleString *k = RedisModule_CreateString(NULL, key, klen);
    int ok = k && RedisModule_ACLCheckKeyPermissions(u, k, REDISMODULE_CMD_KEY_ACCESS) == REDISMODULE_OK;
    if (k) RedisModule_FreeString(NULL, k);
    if (ok) return 0;
    char shown[128];
    ic_shown(key, klen, shown, sizeof shown);
    snprintf(err, errlen, "NOPERM this user has no permissions to read the %s '%s'", what, shown);
    return -1;
}

/* A string reply's bytes, or NULL (with *n 0) for anything else. */
static const char *str_of(RedisModuleCallReply *r, size_t *n) {
    *n = 0;
    if (!r || RedisModule_CallReplyType(r) != REDISMODULE_REPLY_STRING) return NULL;
    return RedisModule_CallReplyStringPtr(r, n);
}

/* An error reply as a line (at most 300 bytes), or NULL. */
static const char *err_of(RedisModuleCallReply *r, char *buf, size_t cap) {
    if (!r) return snprintf(buf, cap, "ERR the call was refused"), buf;
    if (RedisModule_CallReplyType(r) != REDISMODULE_REPLY_ERROR) return NULL;
    size_t n = 0;
    const char *p = RedisModule_CallReplyStringPtr(r, &n);
    snprintf(buf, cap, "%.*s", p ? (int)(n > 300 ? 300 : n) : 0, p ? p : "");
    return buf;
}

/* Whether the reads must bypass RedisModule_Call: a cluster replica (see
 * the top of the file). */
static int reads_direct(void) {
    int cf = RedisModule_GetContextFlags(g_mod.dctx);
    return (cf & REDISMODULE_CTX_FLAGS_CLUSTER) && (cf & REDISMODULE_CTX_FLAGS_SLAVE);
}

/* Opens key to read, directly: the key type, with *k open (close it) when
 * the key exists. */
static int open_direct(const char *key, size_t klen, RedisModuleKey **k) {
    *k = NULL;
    RedisModuleString *s = RedisModule_CreateString(g_mod.dctx, key, klen);
    if (!s) return -1;
    *k = RedisModule_OpenKey(g_mod.dctx, s, REDISMODULE_READ);
    RedisModule_FreeString(g_mod.dctx, s);
    return RedisModule_KeyType(*k); /* EMPTY for a NULL handle */
}

/* A string key's value, read directly: 1 with p/n (valid until *k is
 * closed), 0 when missing, -2 another type, -1 out of memory. */
static int string_direct(const char *key, size_t klen, RedisModuleKey **k, const char **p, size_t *n) {
    int t = open_direct(key, klen, k);
    if (t < 0) return -1; /* out of memory */
    if (t == REDISMODULE_KEYTYPE_EMPTY) return 0;
    if (t != REDISMODULE_KEYTYPE_STRING) return -2;
    *p = RedisModule_StringDMA(*k, n, REDISMODULE_READ);
    return *p ? 1 : -2;
}

/* One hit of VSIM's RESP2 reply (name, score, attributes or NULL) into the
 * request.  0; -1 malformed; -2 out of memory. */
static int add_hit(ic_rag *rag, const char *name, size_t nl, const char *sc, size_t sl, const char *attr,
                   size_t al) {
    char num[64], *end;
    if (!name || !sc || sl == 0 || sl >= sizeof num) return -1;
    memcpy(num, sc, sl);
    num[sl] = 0;
    double score = strtod(num, &end);
    if (*end) return -1;
    return ic_rag_add_hit(rag, name, nl, score, attr, al) < 0 ? -2 : 0;
}

/* run_vsim on a cluster replica: the module's own sets, in-process. */
static int run_vsim_direct(ic_rag *rag, const ic_arg *a, int n, const char *shown, char *err, size_t errlen) {
    RedisModuleKey *k;
    int t = open_direct(rag->vset, rag->vset_len, &k);
    if (k) RedisModule_CloseKey(k);
    if (t < 0) return snprintf(err, errlen, "ERR out of memory"), -1;
    if (t == REDISMODULE_KEYTYPE_EMPTY) return snprintf(err, errlen, "ERR vector set '%s' does not exist", shown), -1;
    mod_vsim_out o;
    int rc = mod_vsim_direct(g_mod.dctx, a, n, &o);
    if (rc == 1) {
        snprintf(err, errlen,
                 "ERR vector set '%s': on a cluster replica INFER.RAG reads only inferkv.so's own vector sets; "
                 "run it on the primary",
                 shown);
        rc = -1;
    } else if (rc < 0) {
        ic_rag_vsim_error(rag, o.err, err, errlen);
    } else if (o.n % 3) {
        rc = -1;
        snprintf(err, errlen, "ERR unexpected VSIM reply for '%s'", shown);
    }
    for (size_t i = 0; rc == 0 && i < o.n; i += 3) {
        const mod_vsim_item *it = &o.items[i];
        int h = add_hit(rag, it[0].null ? NULL : it[0].p, it[0].len, it[1].null ? NULL : it[1].p, it[1].len,
                        it[2].null ? NULL : it[2].p, it[2].null ? 0 : it[2].len);
        if (h == -2) rc = -1, snprintf(err, errlen, "ERR out of memory");
        else if (h < 0) rc = -1, snprintf(err, errlen, "ERR unexpected VSIM reply for '%s'", shown);
    }
    mod_vsim_out_free(&o);
    return rc;
}

/* VSIM for the question's vector, the hits into the request.  0, or -1
 * with the line. */
static int run_vsim(ic_rag *rag, const ic_ereq *e, char *err, size_t errlen) {
    RedisModuleCtx *dc = g_mod.dctx;
    char shown[128], line[IC_ERRLEN];
    ic_shown(rag->vset, rag->vset_len, shown, sizeof shown);
    ic_arg a[IC_RAG_VSIM_ARGS];
    int n = ic_rag_vsim_args(rag, e->vec, e->dim, a, err, errlen);
    if (n < 0) return -1;
    if (reads_direct()) return run_vsim_direct(rag, a, n, shown, err, errlen);
    RedisModuleCallReply *t = RedisModule_Call(dc, "TYPE", "b", rag->vset, rag->vset_len);
    size_t tl;
    const char *ty = t ? RedisModule_CallReplyStringPtr(t, &tl) : NULL;
    int missing = ty && tl == 4 && !memcmp(ty, "none", 4);
    if (t) RedisModule_FreeCallReply(t);
    if (missing) return snprintf(err, errlen, "ERR vector set '%s' does not exist", shown), -1;
    /* a[0] is "VSIM": the command name; the rest as strings, however many
     * options (FILTER, FILTER-EF, EF) there are */
    RedisModuleString *v[IC_RAG_VSIM_ARGS];
    int nv = 0;
    for (int i = 1; i < n; i++) {
        if (!(v[nv] = RedisModule_CreateString(dc, a[i].ptr, a[i].len))) break;
        nv++;
    }
    RedisModuleCallReply *r = nv == n - 1 ? RedisModule_Call(dc, "VSIM", "v", v, (size_t)nv) : NULL;
    for (int i = 0; i < nv; i++) RedisModule_FreeString(dc, v[i]);
    if (nv != n - 1) return snprintf(err, errlen, "ERR out of memory"), -1;
    if (!r) return snprintf(err, errlen, "ERR vector set '%s': the server has no VSIM (vector sets are off)", shown), -1;
    if (err_of(r, line, sizeof line)) {
        RedisModule_FreeCallReply(r);
        ic_rag_vsim_error(rag, line, err, errlen);
        return -1;
    }
    int rc = 0;
    size_t len = RedisModule_CallReplyType(r) == REDISMODULE_REPLY_ARRAY ? RedisModule_CallReplyLength(r) : 1;
    if (len % 3) rc = -1;
    /* RESP2 with WITHSCORES WITHATTRIBS: name, score, attributes (or null) */
    for (size_t i = 0; rc == 0 && i < len; i += 3) {
        size_t nl, sl, al;
        const char *name = str_of(RedisModule_CallReplyArrayElement(r, i), &nl);
        const char *sc = str_of(RedisModule_CallReplyArrayElement(r, i + 1), &sl);
        const char *attr = str_of(RedisModule_CallReplyArrayElement(r, i + 2), &al);
        int h = add_hit(rag, name, nl, sc, sl, attr, al);
        if (h == -2) {
            RedisModule_FreeCallReply(r);
            return snprintf(err, errlen, "ERR out of memory"), -1;
        }
        rc = h;
    }
    RedisModule_FreeCallReply(r);
    if (rc < 0) snprintf(err, errlen, "ERR unexpected VSIM reply for '%s'", shown);
    return rc;
}

/* read_chunk on a cluster replica: a string's value, or a hash's "text". */
static int read_chunk_direct(ic_rag *rag, int i, const char *key, size_t klen) {
    RedisModuleKey *k;
    const char *p;
    size_t n;
    int rc = 0, t = string_direct(key, klen, &k, &p, &n);
    if (t == 1) {
        rc = ic_rag_set_text(rag, i, p, n);
    } else if (t == -2 && RedisModule_KeyType(k) == REDISMODULE_KEYTYPE_HASH) {
        RedisModuleString *v = NULL;
        if (RedisModule_HashGet(k, REDISMODULE_HASH_CFIELDS, IC_RAG_TEXT_FIELD, &v, NULL) == REDISMODULE_OK && v) {
            p = RedisModule_StringPtrLen(v, &n);
            rc = ic_rag_set_text(rag, i, p, n);
            RedisModule_FreeString(g_mod.dctx, v);
        }
    }
    if (k) RedisModule_CloseKey(k);
    return rc;
}

/* The chunk in a key named by a hit: a string's value or a hash's field
 * "text" (read with GET, then HGET when GET says WRONGTYPE). */
static int read_chunk(ic_rag *rag, int i, const char *key, size_t klen) {
    if (reads_direct()) return read_chunk_direct(rag, i, key, klen);
    RedisModuleCtx *dc = g_mod.dctx;
    RedisModuleCallReply *r = RedisModule_Call(dc, "GET", "b", key, klen);
    if (r && RedisModule_CallReplyType(r) == REDISMODULE_REPLY_ERROR) {
        RedisModule_FreeCallReply(r);
        r = RedisModule_Call(dc, "HGET", "bc", key, klen, IC_RAG_TEXT_FIELD);
    }
    size_t n;
    const char *p = str_of(r, &n);
    int rc = p ? ic_rag_set_text(rag, i, p, n) : 0;
    if (r) RedisModule_FreeCallReply(r);
    return rc;
}

/* Step 3: everything that reads the keyspace, then the prompt.  ids, or
 * NULL with the line. */
static int32_t *retrieve(gen_req *g, int32_t *n_prompt, char *err, size_t errlen) {
    ic_rag *rag = g->rag;
    RedisModuleUser *u = user_of(g);
    if (!u) {
        snprintf(err, errlen, "NOPERM the user that sent the command no longer exists");
        return NULL;
    }
    int32_t *ids = NULL;
    RedisModule_SelectDb(g_mod.dctx, g->dbid);
    if (may_read(u, rag->vset, rag->vset_len, "vector set", err, errlen) < 0) goto out;
    if (run_vsim(rag, g->e, err, errlen) < 0) goto out;
    for (int i = 0; i < rag->n_hits; i++) {
        const char *key;
        size_t klen;
        int src = ic_rag_hit_source(rag, i, &key, &klen);
        if (src < 0) {
            snprintf(err, errlen, "ERR out of memory");
            goto out;
        }
        if (src != IC_SRC_KEY) continue;
        if (may_read(u, key, klen, "chunk key", err, errlen) < 0) goto out;
        if (read_chunk(rag, i, key, klen) < 0) {
            snprintf(err, errlen, "ERR out of memory");
            goto out;
        }
    }
    if (rag->tmpl_key) {
        char shown[128], line[IC_ERRLEN];
        ic_shown(rag->tmpl_key, rag->tmpl_key_len, shown, sizeof shown);
        if (may_read(u, rag->tmpl_key, rag->tmpl_key_len, "TEMPLATE key", err, errlen) < 0) goto out;
        RedisModuleCallReply *r = NULL;
        RedisModuleKey *k = NULL;
        size_t n = 0;
        const char *p = NULL;
        int found, rc = 0;
        if (reads_direct()) {
            found = string_direct(rag->tmpl_key, rag->tmpl_key_len, &k, &p, &n); /* 1, 0 missing, -2 type */
        } else {
            r = RedisModule_Call(g_mod.dctx, "GET", "b", rag->tmpl_key, rag->tmpl_key_len);
            p = str_of(r, &n);
            if (r && RedisModule_CallReplyType(r) == REDISMODULE_REPLY_NULL) found = 0;
            else found = err_of(r, line, sizeof line) ? -2 : 1;
        }
        if (found == 0)
            rc = -1, snprintf(err, errlen, "ERR TEMPLATE key '%s' does not exist", shown);
        else if (found == -2)
            rc = -1, snprintf(err, errlen, "WRONGTYPE the TEMPLATE key '%s' must hold a string", shown);
        else if (!p)
            rc = -1, snprintf(err, errlen, "ERR cannot read the TEMPLATE key '%s'", shown);
        else
            rc = ic_rag_set_template(rag, p, n, err, errlen);
        if (r) RedisModule_FreeCallReply(r);
        if (k) RedisModule_CloseKey(k);
        if (rc < 0) goto out;
    }
    ids = ic_rag_build(rag, n_prompt, err, errlen);
out:
    RedisModule_FreeModuleUser(u);
    return ids;
}

/* Ends the request before any generation: gen_reply answers early_err
 * (or, the client gone, gen_free just frees). */
static void end_early(gen_req *g, const char *line) {
    snprintf(g->early_err, sizeof g->early_err, "%s", line);
    RedisModule_UnblockClient(g->bc, g);
}

/* main thread, in a module context: step 3 */
static void retrieve_main(RedisModuleCtx *ctx, void *arg) {
    (void)ctx;
    gen_req *g = arg;
    char err[IC_ERRLEN];
    const char *e = NULL;
    int32_t *ids = NULL, n = 0;
    if (g->cancelled) e = "ERR cancelled";
    else e = ic_ereq_error(g->e, err, sizeof err);
    if (!e) {
        g->rag->embed_ms = g->e->embed_ms;
        if (!(ids = retrieve(g, &n, err, sizeof err))) e = err;
    }
    ic_ereq_free(&g_mod.reg, g->e);
    g->e = NULL;
    if (!e && mod_gen_submit(g, g->rag->gen, &g->rag->gen_opts, ids, n, err, sizeof err) < 0) {
        ic_req_free(&g_mod.reg, g->r); /* never started: no callback will come */
        g->r = NULL;
        e = err;
    }
    free(ids);
    if (e) end_early(g, e);
    mod_gen_release(g); /* this one-shot's hold */
}

/* engine thread (the encoder's): step 2 */
static void embedded(ic_ereq *e) {
    gen_req *g = e->ud;
    atomic_fetch_add(&g->holds, 1);
    if (mod_run_on_main(retrieve_main, g) < 0) {
        atomic_fetch_sub(&g->holds, 1);
        /* the main thread cannot be reached: answer without retrieving */
        end_early(g, "ERR cannot schedule the retrieval on the main thread");
    }
}

/* INFER.RAG generator embedder vset question [COUNT k] [FILTER expr]
 *     [CONTEXTKEY-FIELD name] [TEMPLATE key] [WITHSOURCES] [WITHPROMPT]
 *     [generation options as INFER.GENERATE's] */
int mod_cmd_rag(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return mod_reply_keys(ctx, IC_KEYS_RAG, argv, argc);
    if (argc < 5) return RedisModule_WrongArity(ctx);
    if (mod_refuse_replica_write(ctx, IC_KEYS_RAG, argv, argc)) return REDISMODULE_OK;
    ic_arg *a = mod_args(ctx, argv, argc);
    if (!a) return REDISMODULE_OK;
    char err[IC_ERRLEN];
    ic_rag *rag = ic_rag_parse(&g_mod.reg, a, argc, g_mod.cfg.default_timeout_ms, g_mod.cfg.default_max_tokens, err,
                               sizeof err);
    free(a);
    if (!rag || (rag->filter && vc_filter_check(rag->filter, rag->filter_len, err, sizeof err) < 0)) {
        g_mod.reg.refused++;
        ic_rag_free(&g_mod.reg, rag);
        return mod_reply_err(ctx, err);
    }
    int cf = RedisModule_GetContextFlags(ctx);
    const char *refuse = NULL;
    if (cf & REDISMODULE_CTX_FLAGS_DENY_BLOCKING) refuse = "ERR INFER.RAG cannot run inside MULTI or a script";
    if (refuse) {
        ic_rag_free(&g_mod.reg, rag);
        return RedisModule_ReplyWithError(ctx, refuse);
    }
    if (rag->stream && mod_check_stream_key(ctx, &rag->gen_opts.stream) < 0) {
        ic_rag_free(&g_mod.reg, rag);
        return REDISMODULE_OK;
    }
    RedisModuleString *uname = RedisModule_GetCurrentUserName(ctx);
    size_t ul = 0;
    const char *up = uname ? RedisModule_StringPtrLen(uname, &ul) : NULL;
    char *user = up ? infer_malloc(ul + 1) : NULL;
    if (user) memcpy(user, up, ul), user[ul] = 0;
    if (uname) RedisModule_FreeString(ctx, uname);
    if (!user) {
        ic_rag_free(&g_mod.reg, rag);
        return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    }
    gen_req *g = mod_gen_block(ctx, &rag->gen_opts);
    if (!g) { /* replied */
        free(user);
        ic_rag_free(&g_mod.reg, rag);
        return REDISMODULE_OK;
    }
    g->rag = rag;
    g->user = user;
    ic_arg q = {rag->question, rag->question_len};
    infer_embed_params p;
    infer_embed_defaults(&p);
    if (!(g->e = ic_ereq_new(&g_mod.reg, rag->emb, embedded, g))) {
        mod_gen_abort(g);
        return RedisModule_ReplyWithError(ctx, "ERR out of memory");
    }
    if (ic_ereq_submit(g->e, &q, 1, &p, rag->gen_opts.timeout_ms, err, sizeof err) < 0) {
        mod_gen_abort(g); /* frees the request, rag and user with it */
        return mod_reply_err(ctx, err);
    }
    return REDISMODULE_OK;
}

/* INFER.ANSWER's TEMPLATE key, read with GET as the calling user (the
 * command's own context: it runs on a cluster replica after READONLY as
 * GET would).  0, or -1 with the line. */
static int answer_template(RedisModuleCtx *ctx, ic_rag *rag, char *err, size_t errlen) {
    char shown[128], line[IC_ERRLEN];
    ic_shown(rag->tmpl_key, rag->tmpl_key_len, shown, sizeof shown);
    errno = 0;
    RedisModuleCallReply *r = RedisModule_Call(ctx, "GET", "Cb", rag->tmpl_key, rag->tmpl_key_len);
    if (!r) {
        if (errno == EACCES)
            snprintf(err, errlen, "NOPERM this user has no permissions to read the TEMPLATE key '%s'", shown);
        else
            snprintf(err, errlen, "ERR cannot read the TEMPLATE key '%s'", shown);
        return -1;
    }
    size_t n = 0;
    const char *p = str_of(r, &n);
    int rc = 0;
    if (RedisModule_CallReplyType(r) == REDISMODULE_REPLY_NULL)
        rc = -1, snprintf(err, errlen, "ERR TEMPLATE key '%s' does not exist", shown);
    else if (err_of(r, line, sizeof line) || !p)
        rc = -1, snprintf(err, errlen, "WRONGTYPE the TEMPLATE key '%s' must hold a string", shown);
    else
        rc = ic_rag_set_template(rag, p, n, err, errlen);
    RedisModule_FreeCallReply(r);
    return rc;
}

/* INFER.ANSWER generator question CHUNKS n chunk [chunk ...] [TEMPLATE key]
 *     [WITHSOURCES] [WITHPROMPT] [generation options as INFER.GENERATE's]
 * INFER.RAG's prompt and generation for chunks retrieved elsewhere (a
 * cluster client's merge of every shard's VSIM): all on the main thread
 * while the command runs - the TEMPLATE key, the prompt - then the
 * generation as INFER.GENERATE's, replied by generate.c's gen_reply. */
int mod_cmd_answer(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (RedisModule_IsKeysPositionRequest(ctx)) return mod_reply_keys(ctx, IC_KEYS_ANSWER, argv, argc);
    if (argc < 5) return RedisModule_WrongArity(ctx);
    if (mod_refuse_replica_write(ctx, IC_KEYS_ANSWER, argv, argc)) return REDISMODULE_OK;
    ic_arg *a = mod_args(ctx, argv, argc);
    if (!a) return REDISMODULE_OK;
    char err[IC_ERRLEN];
    ic_rag *rag = ic_answer_parse(&g_mod.reg, a, argc, g_mod.cfg.default_timeout_ms, g_mod.cfg.default_max_tokens,
                                  err, sizeof err);
    free(a);
    if (!rag) {
        g_mod.reg.refused++;
        return mod_reply_err(ctx, err);
    }
    int32_t *ids = NULL, n = 0;
    if (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_DENY_BLOCKING) {
        RedisModule_ReplyWithError(ctx, "ERR INFER.ANSWER cannot run inside MULTI or a script");
        goto fail;
    }
    if (rag->stream && mod_check_stream_key(ctx, &rag->gen_opts.stream) < 0) goto fail;
    if ((rag->tmpl_key && answer_template(ctx, rag, err, sizeof err) < 0) ||
        !(ids = ic_rag_build(rag, &n, err, sizeof err))) {
        g_mod.reg.refused++;
        mod_reply_err(ctx, err);
        goto fail;
    }
    gen_req *g = mod_gen_block(ctx, &rag->gen_opts);
    if (!g) goto fail; /* replied */
    g->rag = rag;      /* freed with the request from here on */
    if (mod_gen_submit(g, rag->gen, &rag->gen_opts, ids, n, err, sizeof err) < 0) {
        mod_gen_abort(g);
        mod_reply_err(ctx, err);
    }
    free(ids);
    return REDISMODULE_OK;
fail:
    free(ids);
    ic_rag_free(&g_mod.reg, rag);
    return REDISMODULE_OK;
}
