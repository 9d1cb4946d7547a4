/* t_infer.c - INFER.* in inferkv-server: LOAD, UNLOAD, MODELS, GENERATE,
 * EMBED, RAG, TOKENIZE, DETOKENIZE, STATS, and the figures of INFO infer.
 *
 * The grammar, the registry, the load thread and the request lifecycle are
 * libinfercmd's (shared with inferkv.so); this file is the event-loop side.
 * An INFER.GENERATE is parsed and checked on the loop, its input copied out
 * of the keyspace there (PROMPTKEY/TOKENSKEY: a later overwrite, eviction
 * or FLUSHALL changes nothing), the client blocked and the request
 * submitted to the model's scheduler.  Engine threads never touch a client
 * or the keyspace: they post completions with block_post() and the loop
 * delivers them here - STREAM pieces (XADDed as produced), then the end
 * (final stream entry, STORE, the reply).  A client that disconnects
 * cancels its request (on_cancel).  INFER.LOAD maps and checks the model
 * on a thread of its own and installs it on the loop when done.  Engine
 * and load threads run at a lower priority (nice) than the loop.
 *
 * INFER.EMBED goes to an encoder's scheduler the same way; its INTO form
 * runs VADD on the loop once the vector is back, through t_vset.c's own
 * handler, so the write is exactly a VADD of that moment (the key may have
 * been deleted or replaced meanwhile).  INFER.RAG is three steps: the
 * question is embedded on the encoder's scheduler; back on the loop one
 * delivery runs VSIM (libvcmd), reads every chunk and the TEMPLATE key and
 * builds the prompt - all of it before the loop does anything else, so the
 * answer is built from one state of the keyspace; then the generator's
 * scheduler answers and the reply goes out as INFER.GENERATE's does. */
#include "server.h"
#include "aof.h"
#include "infercmd.h"
#include "vcmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


infer_settings infer_cfg = {0, 64, 16, 0, 0, NULL, 128, 2, 5, 1, 0};

static ic_registry reg;
static int exit_hook_set;

/* --------------------------------------------------------------- helpers */

/* argv as (pointer, length) pairs; NULL (error replied) on OOM. */
static ic_arg *args_of(client *c) {
    ic_arg *a = km_malloc((size_t)c->argc * sizeof *a);
    if (!a) {
        reply_error(c, "ERR out of memory");
        return NULL;
    }
    for (int i = 0; i < c->argc; i++) {
        a[i].ptr = c->argv[i];
        a[i].len = dstr_len(c->argv[i]);
    }
    return a;
}

static ic_model *model_of(client *c, const dstr name) {
    ic_arg a = {name, dstr_len(name)};
    char err[IC_ERRLEN];
    ic_model *m = ic_lookup(&reg, &a, err, sizeof err);
    if (!m) reply_error(c, err);
    return m;
}

static int in_exec(client *c, const char *what) {
    if (srv.loading) { /* an AOF holds the effects of INFER.*, never the commands */
        reply_errorf(c, "ERR %s cannot run while loading the AOF", what);
        return 1;
    }
    if (!(c->flags & CF_IN_EXEC)) return 0;
    reply_errorf(c, "ERR %s cannot run inside MULTI or a script", what);
    return 1;
}

/* Process exit with models loaded: end every request and join every
 * engine thread first, so none runs while the process tears down. */
static void stop_engines(void) { ic_stop_all(&reg); }

static void ensure_exit_hook(void) {
    if (!exit_hook_set && atexit(stop_engines) == 0) exit_hook_set = 1;
}

static ic_load_params load_params(void) {
    ic_load_params p;
    p.threads = infer_cfg.threads;
    p.max_queue = infer_cfg.max_queue;
    p.max_active = infer_cfg.max_batch;
    p.nice = infer_cfg.nice;
    p.idle = infer_cfg.idle;
    p.max_loads = infer_cfg.max_loads;
    p.kv_bytes = (uint64_t)infer_cfg.kv_memory;
    p.max_memory = (uint64_t)infer_cfg.max_memory;
    return p;
}

/* ----------------------------------------------------------- config rows */

void infer_config_defaults(void) { infer_cfg.max_memory = (long long)ic_default_max_memory(); }

int infer_set_models_dir(const char **argv, int argc, char *err, size_t errlen) {
    if (argc != 1) {
        snprintf(err, errlen, "wrong number of arguments");
        return ERR;
    }
    if (argv[0][0] == '\0') { /* "" turns model loading off */
        dstr_free(infer_cfg.models_dir);
        infer_cfg.models_dir = NULL;
        return OK;
    }
    char *real = realpath(argv[0], NULL);
    struct stat sb;
    if (!real || stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "infer-models-dir '%.200s' is not a directory", argv[0]);
        free(real);
        return ERR;
    }
    dstr d = dstr_new(real);
    free(real);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return ERR;
    }
    dstr_free(infer_cfg.models_dir);
    infer_cfg.models_dir = d;
    return OK;
}

dstr infer_get_models_dir(dstr out) {
    return infer_cfg.models_dir ? dstr_catlen(out, infer_cfg.models_dir, dstr_len(infer_cfg.models_dir)) : out;
}

/* ------------------------------------------------------------ INFER.LOAD */

typedef struct srv_load {
    cq_item item;  /* posted by the load thread when done */
    ic_load *l;
    uint64_t cid;  /* 0 once the client has gone */
} srv_load;

/* load thread */
static void load_done(ic_load *l) {
    srv_load *s = l->ud;
    block_post(&s->item);
}

/* loop: install, answer if the client is still there */
static void load_deliver(cq_item *it) {
    srv_load *s = it->data;
    char err[IC_ERRLEN];
    int rc = ic_load_install(&reg, s->l, err, sizeof err);
    if (rc == 0) {
        ensure_exit_hook();
        log_msg(LL_NOTICE, "infer: loaded model '%s' from %s", s->l->names[0], s->l->m->path);
    }
    client *c = s->cid ? client_by_id(s->cid) : NULL;
    if (c && (c->flags & CF_BLOCKED) && c->bstate.priv == s) {
        if (rc == 0) reply_ok(c);
        else reply_error(c, err);
        unblock_client(c);
    }
    ic_load_free(&reg, s->l);
    km_free(s);
}

/* the client went away: the model still gets loaded */
static void load_cancel(client *c) {
    srv_load *s = c->bstate.priv;
    s->cid = 0;
}

/* INFER.LOAD name path [CONTEXT n] [ALIAS name ...]
 * O(1) on the loop; the mapping and checks of the file on a load thread. */
void infer_load_cmd(client *c) {
    if (in_exec(c, "INFER.LOAD")) return;
    ic_arg *a = args_of(c);
    if (!a) return;
    char err[IC_ERRLEN];
    ic_load_params p = load_params();
    ic_load *l = ic_load_parse(&reg, a, c->argc, infer_cfg.models_dir, &p, err, sizeof err);
    km_free(a);
    if (!l) {
        reply_error(c, err);
        return;
    }
    srv_load *s = km_malloc(sizeof *s);
    if (!s) {
        ic_load_free(&reg, l);
        reply_error(c, "ERR out of memory");
        return;
    }
    memset(s, 0, sizeof *s);
    s->item.deliver = load_deliver;
    s->item.data = s;
    s->item.client_id = c->id;
    s->l = l;
    s->cid = c->id;
    l->done = load_done;
    l->ud = s;
    block_client(c, 0, NULL, load_cancel, s);
    if (!(c->flags & CF_BLOCKED)) { /* could not block: already answered */
        ic_load_free(&reg, l);
        km_free(s);
        return;
    }
    if (ic_load_start(&reg, l, err, sizeof err) < 0) {
        unblock_client(c);
        ic_load_free(&reg, l);
        km_free(s);
        reply_error(c, err);
    }
}

/* ---------------------------------------------------- UNLOAD, MODELS, STATS */

/* INFER.UNLOAD name - O(models); requests in flight finish on the model. */
void infer_unload_cmd(client *c) {
    ic_arg a = {c->argv[1], dstr_len(c->argv[1])};
    char err[IC_ERRLEN];
    if (ic_unregister(&reg, &a, err, sizeof err) < 0) reply_error(c, err);
    else reply_ok(c);
}

static void reply_fields(client *c, const ic_field *f, int n) {
    reply_map_len(c, n);
    for (int i = 0; i < n; i++) {
        reply_bulk_cstr(c, f[i].name);
        if (f[i].kind == IC_F_DOUBLE) reply_double(c, f[i].d);
        else if (f[i].kind == IC_F_STR) reply_bulk(c, f[i].s, f[i].slen);
        else reply_ll(c, f[i].ll);
    }
}

/* INFER.MODELS - O(models) */
void infer_models_cmd(client *c) {
    reply_array_len(c, reg.n);
    for (int i = 0; i < reg.n; i++) {
        ic_model_desc d;
        ic_field f[IC_MODEL_FIELDS];
        reply_fields(c, f, ic_model_fields(&reg.entries[i], &d, f));
    }
}

/* INFER.STATS - O(models): the statistics, then the engine's memory */
void infer_stats_cmd(client *c) {
    ic_field f[IC_STATS_FIELDS + IC_MEM_FIELDS];
    int n = ic_stats(&reg, f);
    n += ic_mem_fields(&reg, (uint64_t)infer_cfg.max_memory, f + n);
    reply_fields(c, f, n);
}

/* infer_used_memory ... infer_loading_bytes, with the two _human lines
 * after their figures, as INFO memory writes used_memory. */
static dstr mem_lines(dstr s) {
    ic_field f[IC_MEM_FIELDS];
    int n = ic_mem_fields(&reg, (uint64_t)infer_cfg.max_memory, f);
    for (int i = 0; s && i < n; i++) {
        s = dstr_or_free(s, dstr_catfmt(s, "infer_%s:%lld\r\n", f[i].name, f[i].ll));
        if (s && (!strcmp(f[i].name, "used_memory") || !strcmp(f[i].name, "max_memory"))) {
            char h[32];
            ic_info_human((uint64_t)f[i].ll, h, sizeof h);
            s = dstr_or_free(s, dstr_catfmt(s, "infer_%s_human:%s\r\n", f[i].name, h));
        }
    }
    return s;
}

dstr infer_info_memory(dstr s) { return mem_lines(s); }

dstr infer_info_section(dstr s) {
    ic_field f[IC_STATS_FIELDS];
    int n = ic_stats(&reg, f);
    s = dstr_or_free(s, dstr_cat(s, "# Infer\r\n"));
    for (int i = 0; s && i < n; i++) {
        if (f[i].kind == IC_F_DOUBLE) s = dstr_or_free(s, dstr_catfmt(s, "infer_%s:%.4f\r\n", f[i].name, f[i].d));
        else s = dstr_or_free(s, dstr_catfmt(s, "infer_%s:%lld\r\n", f[i].name, f[i].ll));
    }
    if (s) s = dstr_or_free(s, dstr_catfmt(s, "infer_simd:%s\r\n", infer_simd_name()));
    if (s) s = mem_lines(s);
    /* one line per live model, replaced ones still finishing included */
    int k = 0;
    for (const ic_model *m = reg.live; s && m; m = m->live_next) {
        char line[512];
        ic_mem_model_line(&reg, m, line, sizeof line);
        s = dstr_or_free(s, dstr_catfmt(s, "infer_model%d:%s\r\n", k++, line));
    }
    return s;
}

/* ------------------------------------------------- TOKENIZE, DETOKENIZE */

/* INFER.TOKENIZE name text - O(text) on the loop */
void infer_tokenize_cmd(client *c) {
    ic_model *m = model_of(c, c->argv[1]);
    if (!m) return;
    char err[IC_ERRLEN];
    int64_t n;
    int32_t *ids = ic_tokenize(m, c->argv[2], dstr_len(c->argv[2]), &n, err, sizeof err);
    if (!ids) {
        reply_error(c, err);
        return;
    }
    reply_array_len(c, (long)n);
    for (int64_t i = 0; i < n; i++) reply_ll(c, ids[i]);
    free(ids);
}

/* INFER.DETOKENIZE name id [id ...] - O(ids) on the loop */
void infer_detokenize_cmd(client *c) {
    ic_model *m = model_of(c, c->argv[1]);
    if (!m) return;
    ic_arg *a = args_of(c);
    if (!a) return;
    char err[IC_ERRLEN];
    size_t len;
    char *text = ic_detokenize(m, a + 2, c->argc - 2, &len, err, sizeof err);
    km_free(a);
    if (!text) {
        reply_error(c, err);
        return;
    }
    reply_bulk(c, text, len);
    free(text);
}

/* -------------------------------------------------------- INFER.GENERATE */

typedef struct srv_gen {
    ic_req *r;        /* the generation; NULL while INFER.RAG embeds */
    ic_rag *rag;      /* INFER.RAG's state, NULL for INFER.GENERATE */
    ic_ereq *e;       /* INFER.RAG's question while it is embedded */
    uint64_t cid;     /* 0 once the client has gone */
    int dbid;
    dstr store_key;   /* or NULL */
    dstr stream_key;  /* or NULL */
    int stream_done;
    char stream_err[256];
    cq_item text_item, done_item, embed_item;
} srv_gen;

static void gen_free(srv_gen *g) {
    ic_req_free(&reg, g->r);
    ic_ereq_free(&reg, g->e);
    ic_rag_free(&reg, g->rag);
    dstr_free(g->store_key);
    dstr_free(g->stream_key);
    km_free(g);
}

static void stream_add(srv_gen *g, const char *const *fv, const size_t *lens, int npairs) {
    if (g->stream_err[0]) return;
    char err[256];
    if (stream_append_auto(db_get(g->dbid), g->stream_key, fv, lens, npairs, err, sizeof err) != OK)
        snprintf(g->stream_err, sizeof g->stream_err, "%s", err);
}

/* Writes the pieces produced so far, one entry each. */
static void stream_flush(srv_gen *g) {
    if (!g->stream_key || g->stream_done || !g->r) return;
    char *buf;
    size_t *lens;
    size_t n = ic_req_take_pieces(g->r, &buf, &lens);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const char *fv[2] = {IC_STREAM_TEXT, buf + off};
        size_t fl[2] = {strlen(IC_STREAM_TEXT), lens[i]};
        stream_add(g, fv, fl, 1);
        off += lens[i];
    }
    free(buf);
    free(lens);
}

static void stream_finish(srv_gen *g) {
    if (!g->stream_key || g->stream_done || !g->r) return;
    stream_flush(g);
    g->stream_done = 1;
    const char *fv[4];
    size_t fl[4];
    char num[24];
    ic_req_final_entry(g->r, fv, fl, num);
    stream_add(g, fv, fl, 2);
}

/* loop: pieces for STREAM */
static void text_deliver(cq_item *it) { stream_flush(it->data); }

static int store_text(srv_gen *g, char *err, size_t errlen) {
    kdb *db = db_get(g->dbid);
    kobj *o = obj_string(g->r->text ? g->r->text : "", g->r->len);
    if (!o || db_set(db, g->store_key, o, 0) != OK) {
        if (o) obj_decref(o);
        snprintf(err, errlen, "ERR STORE failed: out of memory");
        return ERR;
    }
    if (prop_active()) { /* the generated text, as a plain SET */
        prop_args a;
        pa_init(&a);
        pa_cstr(&a, "SET");
        pa_dstr(&a, g->store_key);
        pa_add(&a, g->r->text ? g->r->text : "", g->r->len);
        prop_emit(db->id, &a);
    }
    notify_keyspace_event(NOTIFY_STRING, "set", g->store_key, db->id);
    return OK;
}

/* A score as VSIM prints it (Redis 8's digits), in either protocol. */
static void reply_score(client *c, double d) {
    char buf[64];
    int n = vc_format_double(buf, sizeof buf, d);
    if (c->resp == 2) {
        reply_bulk(c, buf, (size_t)n);
        return;
    }
    reply_raw(c, ",", 1);
    reply_raw(c, buf, (size_t)n);
    reply_raw(c, "\r\n", 2);
}

/* INFER.RAG's and INFER.ANSWER's answer: a map in both protocols (the
 * chunk counts are part of it), with the sources and the prompt when
 * asked for. */
static void reply_rag(client *c, const ic_rag *g, const ic_req *r) {
    ic_field f[IC_RAG_FIELDS];
    int n = ic_rag_result(g, r, f);
    reply_map_len(c, n + g->withsources + g->withprompt);
    for (int i = 0; i < n; i++) {
        reply_bulk_cstr(c, f[i].name);
        if (f[i].kind == IC_F_DOUBLE) reply_double(c, f[i].d);
        else if (f[i].kind == IC_F_STR) reply_bulk(c, f[i].s, f[i].slen);
        else reply_ll(c, f[i].ll);
    }
    if (g->withsources && !g->emb) { /* INFER.ANSWER: the chunks given have no names */
        reply_bulk_cstr(c, "sources");
        reply_array_len(c, g->n_hits);
        for (int i = 0; i < g->n_hits; i++) reply_bulk_cstr(c, ic_rag_hit_state(&g->hits[i]));
    } else if (g->withsources) {
        reply_bulk_cstr(c, "sources");
        reply_array_len(c, g->n_hits);
        for (int i = 0; i < g->n_hits; i++) {
            reply_array_len(c, 3);
            reply_bulk(c, g->hits[i].name, g->hits[i].name_len);
            reply_score(c, g->hits[i].score);
            reply_bulk_cstr(c, ic_rag_hit_state(&g->hits[i]));
        }
    }
    if (g->withprompt) {
        reply_bulk_cstr(c, "prompt");
        reply_bulk(c, g->prompt ? g->prompt : "", g->prompt_len);
    }
}

static void reply_result(client *c, const ic_req *r) {
    if (c->resp < 3) {
        reply_bulk(c, r->text ? r->text : "", r->len);
        return;
    }
    ic_field f[IC_RESULT_FIELDS];
    reply_fields(c, f, ic_req_result(r, f));
}

/* loop: the request ended (its last posted item) */
static void done_deliver(cq_item *it) {
    srv_gen *g = it->data;
    stream_finish(g); /* readers see the end even if the client went away */
    client *c = g->cid ? client_by_id(g->cid) : NULL;
    if (c && (c->flags & CF_BLOCKED) && c->bstate.priv == g) {
        char buf[IC_ERRLEN];
        const char *e = ic_req_error(g->r, buf, sizeof buf);
        if (e) reply_error(c, e);
        else if (g->stream_err[0]) reply_errorf(c, "ERR STREAM failed: %s", g->stream_err);
        else if (g->store_key && store_text(g, buf, sizeof buf) != OK) reply_error(c, buf);
        else if (g->rag) reply_rag(c, g->rag, g->r);
        else reply_result(c, g->r);
        unblock_client(c);
    }
    gen_free(g);
}

/* engine thread: only posts; the loop does the rest */
static void gen_notify(ic_req *r, int ev) {
    srv_gen *g = r->ud;
    block_post(ev == IC_EV_DONE ? &g->done_item : &g->text_item);
}

static void gen_cancel(client *c) {
    srv_gen *g = c->bstate.priv;
    g->cid = 0;
    if (g->e) ic_ereq_cancel(g->e); /* INFER.RAG, still embedding */
    else if (g->r) ic_req_cancel(g->r);
}

/* CLIENT UNBLOCK (its TIMEOUT form; the ERROR form goes through
 * gen_cancel): the request is cancelled, not left running for nobody. */
static void gen_unblocked(client *c) {
    gen_cancel(c);
    reply_error(c, "UNBLOCKED generation cancelled via CLIENT UNBLOCK");
}

/* Blocks c on its request g (the client's id and database recorded, the
 * engine's posts pointed at the loop's handlers).  0 when the client could
 * not block - already answered, g freed. */
static int gen_block(client *c, srv_gen *g) {
    g->cid = c->id;
    g->dbid = c->db->id;
    g->text_item = (cq_item){NULL, c->id, text_deliver, g};
    g->done_item = (cq_item){NULL, c->id, done_deliver, g};
    block_client(c, 0, gen_unblocked, gen_cancel, g);
    if (!(c->flags & CF_BLOCKED)) {
        gen_free(g);
        return 0;
    }
    return 1;
}

/* The copied bytes of a string key for PROMPTKEY / TOKENSKEY; NULL with
 * the error replied. */
static dstr copy_key(client *c, const dstr key) {
    kobj *o = db_lookup_read(c, key);
    if (!o) {
        reply_error(c, "ERR no such key");
        return NULL;
    }
    if (db_check_type(c, o, OBJ_STRING)) return NULL;
    dstr s = obj_to_dstr(o);
    if (!s) reply_error(c, "ERR out of memory");
    return s;
}

/* STREAM key: a stream or absent. */
static int stream_key_ok(client *c, const dstr key) {
    kobj *o = db_lookup(c->db, key, LOOKUP_NOTOUCH);
    if (o && o->type != OBJ_STREAM) {
        reply_wrong_type(c);
        return 0;
    }
    return 1;
}

/* INFER.GENERATE name (prompt | PROMPTKEY key | TOKENSKEY key) [MAXTOKENS n]
 *     [TEMPERATURE t] [TOPK k] [TOPP p] [MINP p] [REPEAT-PENALTY r] [SEED s]
 *     [STOP str]... [CHAT] [STREAM key] [STORE key] [TIMEOUT ms]
 * O(prompt + MAXTOKENS) forward-pass tokens on the engine; O(prompt) on
 * the loop (copy, tokenization). */
void infer_generate_cmd(client *c) {
    ic_model *m = model_of(c, c->argv[1]);
    if (!m) return;
    if (!m->sched) {
        reply_error(c, "ERR the server is shutting down");
        return;
    }
    ic_arg *a = args_of(c);
    if (!a) return;
    char err[IC_ERRLEN];
    ic_gen_opts o;
    int32_t *ids = NULL, n_prompt = 0;
    srv_gen *g = NULL;
    if (ic_gen_parse(a, c->argc, m, infer_cfg.default_timeout, &o, err, sizeof err) < 0) {
        reg.refused++;
        reply_error(c, err);
        goto out;
    }
    if (in_exec(c, "INFER.GENERATE")) goto out;
    /* o.stream points into c->argv: it is that argument's dstr */
    if (o.stream.ptr && !stream_key_ok(c, (dstr)o.stream.ptr)) goto out;

    /* Copy the input on the loop; everything after works on the copy. */
    if (o.src == IC_SRC_TEXT) {
        ids = ic_gen_prepare(m, &o, infer_cfg.default_max_tokens, o.input.ptr, o.input.len, &n_prompt, err, sizeof err);
    } else {
        dstr copy = copy_key(c, c->argv[3]);
        if (!copy) goto out;
        ids = ic_gen_prepare(m, &o, infer_cfg.default_max_tokens, copy, dstr_len(copy), &n_prompt, err, sizeof err);
        dstr_free(copy);
    }
    if (!ids) {
        reg.refused++;
        reply_error(c, err);
        goto out;
    }
    g = km_malloc(sizeof *g);
    if (g) memset(g, 0, sizeof *g);
    if (!g || (o.store.ptr && !(g->store_key = dstr_newlen(o.store.ptr, o.store.len))) ||
        (o.stream.ptr && !(g->stream_key = dstr_newlen(o.stream.ptr, o.stream.len))) ||
        !(g->r = ic_req_new(&reg, m, o.stream.ptr != NULL, gen_notify, g))) {
        if (g) dstr_free(g->store_key), dstr_free(g->stream_key), km_free(g);
        reply_error(c, "ERR out of memory");
        goto out;
    }
    if (!gen_block(c, g)) goto out;
    if (ic_req_submit(&reg, g->r, &o, ids, n_prompt, err, sizeof err) < 0) {
        /* no callback will ever come: answer from here */
        unblock_client(c);
        gen_free(g);
        reply_error(c, err);
    }
out:
    free(ids);
    ic_gen_opts_free(&o);
    km_free(a);
}

/* ----------------------------------------------------------- INFER.EMBED */

typedef struct srv_embed {
    ic_ereq *e;
    uint64_t cid;      /* 0 once the client has gone */
    int fp32;
    int into;
    dstr key, element, attr; /* INTO (attr NULL without SETATTR) */
    const char *quant;       /* INTO: static string or NULL */
    cq_item done_item;
} srv_embed;

static void embed_free(srv_embed *s) {
    ic_ereq_free(&reg, s->e);
    dstr_free(s->key);
    dstr_free(s->element);
    dstr_free(s->attr);
    km_free(s);
}

/* One vector per text: an array of doubles (VEMB's digits), or with FP32
 * one blob of little-endian float32s. */
static void reply_vectors(client *c, const ic_ereq *e, int fp32) {
    unsigned char *blob = fp32 ? km_malloc((size_t)e->dim * 4) : NULL;
    if (fp32 && !blob) {
        reply_error(c, "ERR out of memory");
        return;
    }
    reply_array_len(c, e->n);
    for (int32_t i = 0; i < e->n; i++) {
        const float *v = e->vec + (size_t)i * (size_t)e->dim;
        if (fp32) {
            ic_f32_le(v, (size_t)e->dim, blob);
            reply_bulk(c, blob, (size_t)e->dim * 4);
            continue;
        }
        reply_array_len(c, e->dim);
        for (int32_t d = 0; d < e->dim; d++) reply_score(c, v[d]);
    }
    km_free(blob);
}

/* INTO: the vector goes in as "VADD key FP32 blob element [quant]
 * [SETATTR json]", run by t_vset.c's handler on this client.
 * Re-entrancy: the client is blocked in INFER.EMBED, whose argv it still
 * holds; that argv is set aside for the call and put back after it, and
 * nothing else runs in between (we are on the loop).  The client cannot
 * have SELECTed another database while blocked, so VADD sees the database
 * the command was sent to.  Whatever happened to the key meanwhile -
 * deleted, replaced by another type, given another dimension - VADD
 * answers for it now: created anew, WRONGTYPE, a dimension error.  As for
 * any VADD, maxmemory is checked first. */
static void into_vadd(client *c, srv_embed *s) {
    const ic_ereq *e = s->e;
    size_t blen = (size_t)e->dim * 4;
    unsigned char *blob = km_malloc(blen);
    dstr argv[8] = {0};
    int argc = 0, oom = !blob;
    if (blob) {
        ic_f32_le(e->vec, (size_t)e->dim, blob);
        argv[argc++] = dstr_new("VADD");
        argv[argc++] = dstr_newlen(s->key, dstr_len(s->key));
        argv[argc++] = dstr_new("FP32");
        argv[argc++] = dstr_newlen(blob, blen);
        argv[argc++] = dstr_newlen(s->element, dstr_len(s->element));
        if (s->quant) argv[argc++] = dstr_new(s->quant);
        if (s->attr) {
            argv[argc++] = dstr_new("SETATTR");
            argv[argc++] = dstr_newlen(s->attr, dstr_len(s->attr));
        }
        for (int i = 0; i < argc; i++)
            if (!argv[i]) oom = 1;
    }
    if (oom) {
        reply_error(c, "ERR out of memory");
    } else if (srv.maxmemory && evict_if_needed() == ERR) {
        reply_error(c, "OOM command not allowed when used memory > 'maxmemory'.");
    } else {
        dstr *saved = c->argv;
        int saved_argc = c->argc;
        c->argv = argv;
        c->argc = argc;
        /* the VADD with the vector as FP32 is what replay must run: the
         * model need not be loaded then, and its output is not replayed */
        long long dirty0 = srv.dirty;
        prop_enter();
        vset_cmd(c);
        if (srv.dirty != dirty0 && prop_active()) {
            prop_args a;
            pa_init(&a);
            for (int i = 0; i < argc; i++) pa_dstr(&a, argv[i]);
            prop_emit(c->db->id, &a);
        }
        prop_exit();
        c->argv = saved;
        c->argc = saved_argc;
    }
    for (int i = 0; i < argc; i++) dstr_free(argv[i]);
    km_free(blob);
}

/* loop: the vectors are back (or the request ended otherwise) */
static void embed_deliver(cq_item *it) {
    srv_embed *s = it->data;
    client *c = s->cid ? client_by_id(s->cid) : NULL;
    if (c && (c->flags & CF_BLOCKED) && c->bstate.priv == s) {
        char buf[IC_ERRLEN];
        const char *e = ic_ereq_error(s->e, buf, sizeof buf);
        if (e) reply_error(c, e);
        else if (s->into) into_vadd(c, s);
        else reply_vectors(c, s->e, s->fp32);
        unblock_client(c);
    }
    embed_free(s);
}

/* engine thread: only posts */
static void embed_notify(ic_ereq *e) {
    srv_embed *s = e->ud;
    block_post(&s->done_item);
}

static void embed_cancel(client *c) {
    srv_embed *s = c->bstate.priv;
    s->cid = 0;
    ic_ereq_cancel(s->e);
}

static void embed_unblocked(client *c) {
    embed_cancel(c);
    reply_error(c, "UNBLOCKED embedding cancelled via CLIENT UNBLOCK");
}

/* INFER.EMBED model text [text ...] [NORMALIZE yes|no] [LONG refuse|chunk]
 *     [FP32] [TIMEOUT ms]
 * INFER.EMBED model INTO key element text [SETATTR json] [Q8|BIN|NOQUANT]
 *     [NORMALIZE yes|no] [LONG refuse|chunk] [TIMEOUT ms]
 * O(tokens) on the encoder's engine; O(bytes) checks on the loop, and
 * INTO's VADD, O(log N), on the loop when the vector is back. */
void infer_embed_cmd(client *c) {
    ic_model *m = model_of(c, c->argv[1]);
    if (!m) return;
    ic_arg *a = args_of(c);
    if (!a) return;
    char err[IC_ERRLEN];
    ic_embed_opts o;
    srv_embed *s = NULL;
    if (ic_embed_parse(a, c->argc, m, infer_cfg.default_timeout, &o, err, sizeof err) < 0) {
        reg.refused++;
        reply_error(c, err);
        goto out;
    }
    if (in_exec(c, "INFER.EMBED")) goto out;
    if (!m->sched) {
        reply_error(c, "ERR the server is shutting down");
        goto out;
    }
    s = km_malloc(sizeof *s);
    if (s) memset(s, 0, sizeof *s);
    if (!s || (o.into && (!(s->key = dstr_newlen(o.key.ptr, o.key.len)) ||
                          !(s->element = dstr_newlen(o.element.ptr, o.element.len)) ||
                          (o.setattr.ptr && !(s->attr = dstr_newlen(o.setattr.ptr, o.setattr.len))))) ||
        !(s->e = ic_ereq_new(&reg, m, embed_notify, s))) {
        if (s) embed_free(s);
        reply_error(c, "ERR out of memory");
        goto out;
    }
    s->cid = c->id;
    s->fp32 = o.fp32;
    s->into = o.into;
    s->quant = o.quant;
    s->done_item = (cq_item){NULL, c->id, embed_deliver, s};
    block_client(c, 0, embed_unblocked, embed_cancel, s);
    if (!(c->flags & CF_BLOCKED)) { /* could not block: already answered */
        embed_free(s);
        goto out;
    }
    if (ic_ereq_submit(s->e, o.texts, o.n_texts, &o.params, o.timeout_ms, err, sizeof err) < 0) {
        unblock_client(c);
        embed_free(s);
        reply_error(c, err);
    }
out:
    km_free(a);
}

/* ------------------------------------------------------------- INFER.RAG */

/* VSIM's reply, captured instead of written: with WITHSCORES and
 * WITHATTRIBS in RESP2 it is a flat array of (name, score, attributes or
 * null) triples, or an error line. */
typedef struct vsim_capture {
    ic_rag *g;
    int pos;      /* within the current triple */
    const char *name;
    size_t name_len;
    double score;
    int oom, odd;
    char err[IC_ERRLEN];
} vsim_capture;

static void cap_triple_end(vsim_capture *k, const char *attr, size_t alen) {
    if (ic_rag_add_hit(k->g, k->name, k->name_len, k->score, attr, alen) < 0) k->oom = 1;
    k->pos = 0;
}
static void cap_array(void *c, long n) { (void)c, (void)n; }
static void cap_bulk(void *c, const char *p, size_t n) {
    vsim_capture *k = c;
    if (k->pos == 0) k->name = p, k->name_len = n, k->pos = 1;
    else if (k->pos == 2) cap_triple_end(k, p, n);
    else k->odd = 1;
}
static void cap_dbl(void *c, double d) {
    vsim_capture *k = c;
    if (k->pos == 1) k->score = d, k->pos = 2;
    else k->odd = 1;
}
static void cap_null(void *c) {
    vsim_capture *k = c;
    if (k->pos == 2) cap_triple_end(k, NULL, 0);
    else k->odd = 1;
}
static void cap_error(void *c, const char *line) {
    vsim_capture *k = c;
    snprintf(k->err, sizeof k->err, "%s", line);
}
static void cap_odd(void *c) { ((vsim_capture *)c)->odd = 1; }
static void cap_odd_n(void *c, long n) { (void)n, cap_odd(c); }
static void cap_odd_s(void *c, const char *s) { (void)s, cap_odd(c); }
static void cap_odd_ll(void *c, long long v) { (void)v, cap_odd(c); }
static void cap_odd_b(void *c, int b) { (void)b, cap_odd(c); }

/* VSIM's key access: a read, answered from the client's database. */
typedef struct rag_key {
    client *c;
    dstr key;
    int missing;
} rag_key;

static int rk_lookup(void *ctx, int write, vset **s) {
    rag_key *k = ctx;
    (void)write; /* VSIM only reads */
    kobj *o = db_lookup_read(k->c, k->key);
    if (!o) return k->missing = 1, VC_KEY_MISSING;
    if (o->type != OBJ_VSET) return VC_KEY_WRONGTYPE;
    *s = o->ptr;
    return VC_KEY_FOUND;
}
static int rk_create(void *ctx, vset *s) { (void)ctx, (void)s; return -1; }
static void rk_remove(void *ctx) { (void)ctx; }
static void rk_changed(void *ctx, const char *event) { (void)ctx, (void)event; }

/* The chunk of a key a hit's attributes name: a string's value, or a
 * hash's field "text"; NULL when the key is missing or of another type.
 * Points into the key (or num): copied by ic_rag_set_text right away. */
static const char *chunk_of(client *c, const char *name, size_t nlen, char num[LL_STR_SIZE], size_t *len,
                            int *oom) {
    dstr k = dstr_newlen(name, nlen);
    if (!k) return *oom = 1, NULL;
    kobj *o = db_lookup_read(c, k);
    dstr_free(k);
    if (!o) return NULL;
    if (o->type == OBJ_STRING) return obj_str(o, num, len);
    if (o->type != OBJ_HASH) return NULL;
    if (o->enc == ENC_PACKED) {
        hp_entry e;
        if (!hpack_find(o->ptr, IC_RAG_TEXT_FIELD, strlen(IC_RAG_TEXT_FIELD), &e)) return NULL;
        *len = e.vlen;
        return e.v;
    }
    dstr f = dstr_new(IC_RAG_TEXT_FIELD);
    if (!f) return *oom = 1, NULL;
    dstr v = dict_fetch(o->ptr, f);
    dstr_free(f);
    if (!v) return NULL;
    *len = dstr_len(v);
    return v;
}

/* The TEMPLATE key, if one is named, then the prompt from the chunks in
 * the request (INFER.RAG's last step on the loop, and INFER.ANSWER's
 * only one).  ids, or NULL with the error line. */
static int32_t *rag_prompt(client *c, ic_rag *rag, int32_t *n_prompt, char *err, size_t errlen) {
    if (rag->tmpl_key) {
        char shown[128];
        ic_shown(rag->tmpl_key, rag->tmpl_key_len, shown, sizeof shown);
        dstr k = dstr_newlen(rag->tmpl_key, rag->tmpl_key_len);
        if (!k) return snprintf(err, errlen, "ERR out of memory"), NULL;
        kobj *o = db_lookup_read(c, k);
        dstr_free(k);
        if (!o) return snprintf(err, errlen, "ERR TEMPLATE key '%s' does not exist", shown), NULL;
        if (o->type != OBJ_STRING)
            return snprintf(err, errlen, "WRONGTYPE the TEMPLATE key '%s' must hold a string", shown), NULL;
        char num[LL_STR_SIZE];
        size_t tl;
        const char *t = obj_str(o, num, &tl);
        if (ic_rag_set_template(rag, t, tl, err, errlen) < 0) return NULL;
    }
    return ic_rag_build(rag, n_prompt, err, errlen);
}

/* The retrieval step, on the loop in one go: VSIM for the question's
 * vector, every hit's chunk, the TEMPLATE key, the prompt.  Nothing in
 * here returns to the event loop, so no other client's command runs
 * between the first read and the last: the prompt is built from one state
 * of the keyspace.  What was read is copied, so whatever happens to those
 * keys during the generation changes nothing of this answer.  ids (the
 * prompt's tokens), or NULL with the error line. */
static int32_t *rag_retrieve(client *c, srv_gen *g, int32_t *n_prompt, char *err, size_t errlen) {
    ic_rag *rag = g->rag;
    ic_arg va[IC_RAG_VSIM_ARGS];
    int n = ic_rag_vsim_args(rag, g->e->vec, g->e->dim, va, err, errlen);
    if (n < 0) return NULL;
    vc_arg vargs[IC_RAG_VSIM_ARGS];
    for (int i = 0; i < n; i++) vargs[i].ptr = va[i].ptr, vargs[i].len = va[i].len;
    rag_key rk = {c, dstr_newlen(rag->vset, rag->vset_len), 0};
    if (!rk.key) return snprintf(err, errlen, "ERR out of memory"), NULL;
    static const vc_keyops ops = {rk_lookup, rk_create, rk_remove, rk_changed};
    vsim_capture cap;
    memset(&cap, 0, sizeof cap);
    cap.g = rag;
    vc_reply r = {.c = &cap, .resp3 = 0, .array = cap_array, .map = cap_odd_n, .bulk = cap_bulk,
                  .simple = cap_odd_s, .integer = cap_odd_ll, .dbl = cap_dbl, .boolean = cap_odd_b,
                  .null = cap_null, .null_array = cap_odd, .error = cap_error, .aborted = NULL};
    vc_ctx x = {.ops = &ops, .key_ctx = &rk, .r = &r, .can_defer = 0, .rand = 0};
    int rc = vc_exec(vargs, n, &x);
    if (rc == VC_DEFERRED) { /* can_defer is 0: should not happen; run it here */
        vc_job_run(x.job);
        vc_job_finish(x.job, &ops, &rk, &r);
    }
    dstr_free(rk.key);
    char shown[128];
    ic_shown(rag->vset, rag->vset_len, shown, sizeof shown);
    if (cap.err[0]) return ic_rag_vsim_error(rag, cap.err, err, errlen), NULL;
    if (rk.missing) return snprintf(err, errlen, "ERR vector set '%s' does not exist", shown), NULL;
    if (cap.oom) return snprintf(err, errlen, "ERR out of memory"), NULL;
    if (cap.odd || cap.pos) return snprintf(err, errlen, "ERR unexpected VSIM reply for '%s'", shown), NULL;
    for (int i = 0; i < rag->n_hits; i++) {
        const char *key;
        size_t klen;
        int src = ic_rag_hit_source(rag, i, &key, &klen);
        if (src < 0) return snprintf(err, errlen, "ERR out of memory"), NULL;
        if (src != IC_SRC_KEY) continue;
        char num[LL_STR_SIZE];
        size_t len = 0;
        int oom = 0;
        const char *text = chunk_of(c, key, klen, num, &len, &oom);
        if (text && ic_rag_set_text(rag, i, text, len) < 0) oom = 1;
        if (oom) return snprintf(err, errlen, "ERR out of memory"), NULL;
    }
    return rag_prompt(c, rag, n_prompt, err, errlen);
}

/* loop: the question's vector is back: retrieve, build, generate */
static void rag_embed_deliver(cq_item *it) {
    srv_gen *g = it->data;
    client *c = g->cid ? client_by_id(g->cid) : NULL;
    if (!c || !(c->flags & CF_BLOCKED) || c->bstate.priv != g) { /* gone: nothing more to do */
        gen_free(g);
        return;
    }
    char err[IC_ERRLEN];
    const char *e = ic_ereq_error(g->e, err, sizeof err);
    int32_t *ids = NULL, n = 0;
    if (!e) {
        g->rag->embed_ms = g->e->embed_ms;
        ids = rag_retrieve(c, g, &n, err, sizeof err);
        if (!ids) e = err;
    }
    ic_ereq_free(&reg, g->e);
    g->e = NULL;
    if (!e && !(g->r = ic_req_new(&reg, g->rag->gen, g->stream_key != NULL, gen_notify, g))) e = "ERR out of memory";
    if (!e && ic_req_submit(&reg, g->r, &g->rag->gen_opts, ids, n, err, sizeof err) < 0) e = err;
    free(ids);
    if (e) {
        /* no generation callback will come: answer from here */
        reply_error(c, e);
        unblock_client(c);
        gen_free(g);
    }
}

/* engine thread: only posts */
static void rag_embed_notify(ic_ereq *e) {
    srv_gen *g = e->ud;
    block_post(&g->embed_item);
}

/* The request of an INFER.RAG / INFER.ANSWER whose arguments were
 * parsed into rag (owned from here on): its STORE / STREAM keys copied,
 * the STREAM key checked.  NULL with the error replied (rag freed). */
static srv_gen *rag_gen_new(client *c, ic_rag *rag) {
    srv_gen *g = km_malloc(sizeof *g);
    if (g) memset(g, 0, sizeof *g);
    if (!g || (rag->store && !(g->store_key = dstr_newlen(rag->store, rag->store_len))) ||
        (rag->stream && !(g->stream_key = dstr_newlen(rag->stream, rag->stream_len)))) {
        if (g) dstr_free(g->store_key), dstr_free(g->stream_key), km_free(g);
        ic_rag_free(&reg, rag);
        reply_error(c, "ERR out of memory");
        return NULL;
    }
    g->rag = rag;
    if (g->stream_key && !stream_key_ok(c, g->stream_key)) {
        gen_free(g);
        return NULL;
    }
    return g;
}

/* INFER.RAG generator embedder vset question [COUNT k] [FILTER expr]
 *     [CONTEXTKEY-FIELD name] [TEMPLATE key] [WITHSOURCES] [WITHPROMPT]
 *     [MAXTOKENS n] [TEMPERATURE t] [TOPK k] [TOPP p] [MINP p]
 *     [REPEAT-PENALTY r] [SEED s] [STOP str]... [CHAT] [STREAM key]
 *     [STORE key] [TIMEOUT ms]
 * O(question tokens) on the encoder, then on the loop O(log N) for VSIM
 * plus the copy of COUNT chunks and O(log COUNT) tokenizations of the
 * prompt, then O(prompt + MAXTOKENS) on the generator. */
void infer_rag_cmd(client *c) {
    ic_arg *a = args_of(c);
    if (!a) return;
    char err[IC_ERRLEN];
    srv_gen *g = NULL;
    ic_rag *rag = ic_rag_parse(&reg, a, c->argc, infer_cfg.default_timeout, infer_cfg.default_max_tokens, err,
                               sizeof err);
    km_free(a);
    if (!rag || (rag->filter && vc_filter_check(rag->filter, rag->filter_len, err, sizeof err) < 0)) {
        reg.refused++;
        reply_error(c, err);
        ic_rag_free(&reg, rag);
        return;
    }
    if (in_exec(c, "INFER.RAG")) {
        ic_rag_free(&reg, rag);
        return;
    }
    if (!(g = rag_gen_new(c, rag))) return;
    if (!(g->e = ic_ereq_new(&reg, rag->emb, rag_embed_notify, g))) {
        gen_free(g);
        reply_error(c, "ERR out of memory");
        return;
    }
    g->embed_item = (cq_item){NULL, c->id, rag_embed_deliver, g};
    if (!gen_block(c, g)) return;
    ic_arg q = {rag->question, rag->question_len};
    infer_embed_params p;
    infer_embed_defaults(&p);
    if (ic_ereq_submit(g->e, &q, 1, &p, rag->gen_opts.timeout_ms, err, sizeof err) < 0) {
        unblock_client(c);
        gen_free(g);
        reply_error(c, err);
    }
}

/* ---------------------------------------------------------- INFER.ANSWER */

/* INFER.ANSWER generator question CHUNKS n chunk [chunk ...] [TEMPLATE key]
 *     [WITHSOURCES] [WITHPROMPT] [MAXTOKENS n] ... [CHAT] [STREAM key]
 *     [STORE key] [TIMEOUT ms]
 * On the loop O(chunk bytes) for the copy and O(log n) tokenizations of
 * the prompt (as INFER.RAG's last step), then O(prompt + MAXTOKENS) on the
 * generator. */
void infer_answer_cmd(client *c) {
    ic_arg *a = args_of(c);
    if (!a) return;
    char err[IC_ERRLEN];
    ic_rag *rag = ic_answer_parse(&reg, a, c->argc, infer_cfg.default_timeout, infer_cfg.default_max_tokens, err,
                                  sizeof err);
    km_free(a);
    if (!rag) {
        reg.refused++;
        reply_error(c, err);
        return;
    }
    if (in_exec(c, "INFER.ANSWER")) {
        ic_rag_free(&reg, rag);
        return;
    }
    srv_gen *g = rag_gen_new(c, rag);
    if (!g) return;
    int32_t n = 0;
    int32_t *ids = rag_prompt(c, rag, &n, err, sizeof err);
    if (!ids) {
        reg.refused++;
        reply_error(c, err);
        gen_free(g);
        return;
    }
    if (!(g->r = ic_req_new(&reg, rag->gen, g->stream_key != NULL, gen_notify, g))) {
        free(ids);
        gen_free(g);
        reply_error(c, "ERR out of memory");
        return;
    }
    if (!gen_block(c, g)) {
        free(ids);
        return;
    }
    if (ic_req_submit(&reg, g->r, &rag->gen_opts, ids, n, err, sizeof err) < 0) {
        /* no callback will ever come: answer from here */
        unblock_client(c);
        gen_free(g);
        reply_error(c, err);
    }
    free(ids);
}

/* ---- keys and the read/write rule ------------------------------------------
 * libinfercmd's finder (keys.c, shared with inferkv.so) says which
 * arguments of INFER.GENERATE / EMBED / RAG are keys.  The commands carry
 * no static write flag: a call that names no key it writes is a read (it
 * may run on a replica once there is replication), one with STORE, STREAM
 * or INTO is a write - refused where writes are (MISCONF, a failing AOF).
 * What they write is propagated explicitly (SET, XADD, VADD), so a read
 * call never reaches the AOF or a replica. */

/* argv as (pointer, length) pairs: in buf when it fits, else allocated.
 * NULL when out of memory. */
static ic_arg *args_in(dstr *argv, int argc, ic_arg *buf, int cap) {
    ic_arg *a = argc <= cap ? buf : km_malloc((size_t)argc * sizeof *a);
    if (!a) return NULL;
    for (int i = 0; i < argc; i++) a[i] = (ic_arg){argv[i], dstr_len(argv[i])};
    return a;
}

int infer_getkeys(client *c, const char *name, dstr *argv, int argc) {
    int cmd = ic_keys_command(name, strlen(name));
    if (cmd < 0) return 0;
    ic_arg buf[32];
    ic_arg *a = args_in(argv, argc, buf, 32);
    if (!a) {
        reply_error(c, "ERR out of memory");
        return 1;
    }
    ic_key k[IC_MAX_KEYS];
    int n = ic_keys(cmd, a, argc, k);
    if (a != buf) km_free(a);
    reply_array_len(c, n);
    for (int i = 0; i < n; i++) reply_bulk_dstr(c, argv[k[i].pos]);
    return 1;
}

int infer_keyed(const char *name) { return ic_keys_command(name, strlen(name)) >= 0; }

int infer_call_writes(const char *name, dstr *argv, int argc) {
    int cmd = ic_keys_command(name, strlen(name));
    if (cmd < 0) return 0;
    ic_arg buf[32];
    ic_arg *a = args_in(argv, argc, buf, 32);
    if (!a) return 1; /* cannot tell: treated as the write it may be */
    int w = ic_keys_write(cmd, a, argc);
    if (a != buf) km_free(a);
    return w;
}
