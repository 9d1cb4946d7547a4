/* t_infer.c - INFER.* in inferkv-server: LOAD, UNLOAD, MODELS, GENERATE,
 * TOKENIZE, DETOKENIZE, STATS, and the figures of INFO infer.
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
 * and load threads run at a lower priority (nice) than the loop. */
#include "server.h"
#include "infercmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


infer_settings infer_cfg = {0, 64, 16, 0, 0, NULL, 128, 2, 5, 1};

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
    return p;
}

/* ----------------------------------------------------------- config rows */

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

void infer_models_cmd(client *c) {
    reply_array_len(c, reg.n);
    for (int i = 0; i < reg.n; i++) {
        ic_model_desc d;
        ic_field f[IC_MODEL_FIELDS];
        reply_fields(c, f, ic_model_fields(&reg.entries[i], &d, f));
    }
}

void infer_stats_cmd(client *c) {
    ic_field f[IC_STATS_FIELDS];
    reply_fields(c, f, ic_stats(&reg, f));
}

dstr infer_info_section(dstr s) {
    ic_field f[IC_STATS_FIELDS];
    int n = ic_stats(&reg, f);
    s = dstr_cat(s, "# Infer\r\n");
    for (int i = 0; s && i < n; i++) {
        if (f[i].kind == IC_F_DOUBLE) s = dstr_catfmt(s, "infer_%s:%.4f\r\n", f[i].name, f[i].d);
        else s = dstr_catfmt(s, "infer_%s:%lld\r\n", f[i].name, f[i].ll);
    }
    if (s) s = dstr_catfmt(s, "infer_simd:%s\r\n", infer_simd_name());
    return s;
}

/* ------------------------------------------------- TOKENIZE, DETOKENIZE */

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
    ic_req *r;
    uint64_t cid;     /* 0 once the client has gone */
    int dbid;
    dstr store_key;   /* or NULL */
    dstr stream_key;  /* or NULL */
    int stream_done;
    char stream_err[256];
    cq_item text_item, done_item;
} srv_gen;

static void gen_free(srv_gen *g) {
    ic_req_free(&reg, g->r);
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
    if (!g->stream_key || g->stream_done) return;
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
    if (!g->stream_key || g->stream_done) return;
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
    notify_keyspace_event(NOTIFY_STRING, "set", g->store_key, db->id);
    return OK;
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
    ic_req_cancel(g->r);
}

/* CLIENT UNBLOCK (its TIMEOUT form; the ERROR form goes through
 * gen_cancel): the request is cancelled, not left running for nobody. */
static void gen_unblocked(client *c) {
    gen_cancel(c);
    reply_error(c, "UNBLOCKED generation cancelled via CLIENT UNBLOCK");
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
    g->cid = c->id;
    g->dbid = c->db->id;
    g->text_item = (cq_item){NULL, c->id, text_deliver, g};
    g->done_item = (cq_item){NULL, c->id, done_deliver, g};
    block_client(c, 0, gen_unblocked, gen_cancel, g);
    if (!(c->flags & CF_BLOCKED)) { /* could not block: already answered */
        gen_free(g);
        goto out;
    }
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
