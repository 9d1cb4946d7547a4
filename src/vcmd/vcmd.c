/* vcmd.c - Redis 8's vector-set commands over libvset, for both front-ends
 * (see vcmd.h).
 *
 * Each handler follows Redis 8.4's order of checks, because clients see it:
 * VADD validates every argument before it looks at the key (a syntax error
 * wins over WRONGTYPE), VSIM answers a missing key with an empty array
 * before parsing anything, VEMB, VRANDMEMBER 0 and VRANGE reject bad
 * arguments before the key lookup.  Where Redis accepts input that then
 * corrupts the set (NaN or infinite components), inferkv refuses it with
 * the error Redis gives for any malformed vector.
 *
 * The handlers run on the front-end's main thread and never hold a pointer
 * into the set across a call that may delete from it. */
#include "vcmd.h"

#include "vfilter.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define VC_MAX_DIM 65536
#define VC_MAX_EF 1000000
#define VC_ERRLEN 256

/* ---- small helpers ----------------------------------------------------------- */

static int is(const vc_arg *a, const char *w) {
    size_t n = strlen(w);
    return a->len == n && strncasecmp(a->ptr, w, n) == 0;
}

/* Redis's string2ll: optional '-', digits, no leading zeros, no '+', no
 * spaces, fits in a long long. */
static int parse_ll(const vc_arg *a, long long *out) {
    const char *p = a->ptr;
    size_t n = a->len, i = 0;
    if (n == 0 || n > 20) return -1;
    int neg = 0;
    if (p[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1) return -1;
    }
    if (p[i] == '0' && n - i > 1) return -1;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (ULLONG_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1) return -1;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX) return -1;
        *out = (long long)v;
    }
    return 0;
}

/* Redis's string2d: the whole argument is one number, no leading space,
 * not NaN, no overflow. */
static int parse_double(const vc_arg *a, double *out) {
    char buf[256];
    if (a->len == 0 || a->len >= sizeof buf || isspace((unsigned char)a->ptr[0])) return -1;
    memcpy(buf, a->ptr, a->len);
    buf[a->len] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + a->len || isnan(v)) return -1;
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL || v == 0)) return -1;
    *out = v;
    return 0;
}

static void err_line(vc_reply *r, const char *line) { r->error(r->c, line); }

static void arity(vc_reply *r, const char *cmd) {
    char b[96];
    snprintf(b, sizeof b, "ERR wrong number of arguments for '%s' command", cmd);
    err_line(r, b);
}

static const char WRONGTYPE[] = "WRONGTYPE Operation against a key holding the wrong kind of value";

/* Looks the key up; on WRONGTYPE replies and returns VC_KEY_WRONGTYPE. */
static int lookup(vc_ctx *x, int write, vset **s) {
    *s = NULL;
    int rc = x->ops->lookup(x->key_ctx, write, s);
    if (rc == VC_KEY_WRONGTYPE) err_line(x->r, WRONGTYPE);
    if (rc != VC_KEY_FOUND) *s = NULL;
    return rc;
}

/* ---- vectors from arguments -------------------------------------------------------- */

typedef struct vc_vec {
    float *v;       /* malloc'd */
    uint32_t dim;
    uint32_t reduce; /* REDUCE dim, 0 when absent */
} vc_vec;

/* [REDUCE dim] (FP32 blob | VALUES n v...) from argv[*pos]; advances *pos.
 * Every failure is "invalid vector specification", as in Redis. */
static int parse_vector(const vc_arg *argv, int argc, int *pos, int allow_reduce, vc_vec *out) {
    int p = *pos;
    memset(out, 0, sizeof *out);
    if (allow_reduce && argc > p + 2 && is(&argv[p], "REDUCE")) {
        long long r;
        if (parse_ll(&argv[p + 1], &r) < 0 || r <= 0 || r > VC_MAX_DIM) return -1;
        out->reduce = (uint32_t)r;
        p += 2;
    }
    if (p + 1 >= argc) return -1;
    if (is(&argv[p], "FP32")) {
        const vc_arg *b = &argv[p + 1];
        if (b->len < 4 || b->len % 4 || b->len / 4 > VC_MAX_DIM) return -1;
        out->dim = (uint32_t)(b->len / 4);
        out->v = vset_mem_alloc(b->len);
        if (!out->v) return -2;
        for (uint32_t i = 0; i < out->dim; i++) {
            const unsigned char *q = (const unsigned char *)b->ptr + 4 * i;
            uint32_t w = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
            memcpy(&out->v[i], &w, 4);
        }
        p += 2;
    } else if (is(&argv[p], "VALUES")) {
        long long n;
        if (parse_ll(&argv[p + 1], &n) < 0 || n < 1 || n > VC_MAX_DIM || n > argc - p - 2) return -1;
        out->dim = (uint32_t)n;
        out->v = vset_mem_alloc((size_t)n * sizeof *out->v);
        if (!out->v) return -2;
        for (long long i = 0; i < n; i++) {
            double d;
            if (parse_double(&argv[p + 2 + i], &d) < 0) {
                vset_mem_free(out->v);
                out->v = NULL;
                return -1;
            }
            out->v[i] = (float)d;
        }
        p += 2 + (int)n;
    } else {
        return -1;
    }
    /* Redis stores NaN and infinities and then answers garbage: refused. */
    for (uint32_t i = 0; i < out->dim; i++)
        if (!isfinite(out->v[i])) {
            vset_mem_free(out->v);
            out->v = NULL;
            return -1;
        }
    if (out->reduce && out->reduce > out->dim) {
        vset_mem_free(out->v);
        out->v = NULL;
        return -1;
    }
    *pos = p;
    return 0;
}

static void vector_error(vc_reply *r, int rc) {
    err_line(r, rc == -2 ? "ERR out of memory" : "ERR invalid vector specification");
}

/* ---- jobs (deferred VSIM and VADD CAS) ----------------------------------------------- */

enum { JOB_VSIM, JOB_VADD };

typedef struct vsim_opts {
    int withscores, withattribs;
    long long count;
} vsim_opts;

struct vc_job {
    int kind;
    vset *s; /* a reference of the job's own */
    /* VSIM */
    vset_query q;
    vsim_opts o;
    vfilter *filter;
    vset_hit *hits;
    int nhits;
    /* VADD CAS */
    vset_prep *prep;
    float *vec;
    int ef;
    char *name, *attr;
    size_t name_len, attr_len;
    int has_attr;
    char err[VC_ERRLEN];
};

void vc_job_free(vc_job *j) {
    if (!j) return;
    if (j->hits) {
        vset_hits_free(j->hits, j->nhits > 0 ? j->nhits : 0);
        vset_mem_free(j->hits);
    }
    vfilter_free(j->filter);
    vset_mem_free((void *)j->q.vec);
    vset_prep_free(j->prep);
    vset_mem_free(j->vec);
    vset_mem_free(j->name);
    vset_mem_free(j->attr);
    if (j->s) vset_free(j->s);
    vset_mem_free(j);
}

/* ---- VADD ------------------------------------------------------------------------------ */

/* VADD key [REDUCE dim] (FP32 blob | VALUES n v...) element [CAS] [NOQUANT | Q8 | BIN]
 *      [EF build-ef] [SETATTR json] [M numlinks]
 * O(log N) per element added (an HNSW insert); an existing element's
 * vector is replaced (delete and re-insert). */
static int cmd_vadd(const vc_arg *argv, int argc, vc_ctx *x) {
    vc_reply *r = x->r;
    int pos = 2;
    vc_vec v;
    int rc = parse_vector(argv, argc, &pos, 1, &v);
    if (rc < 0) return vector_error(r, rc), VC_DONE;
    if (pos >= argc) {
        vset_mem_free(v.v);
        return arity(r, "VADD"), VC_DONE;
    }
    const vc_arg *ele = &argv[pos++];
    int quant = VSET_Q8, cas = 0, m = VSET_DEFAULT_M;
    long long ef = VSET_DEFAULT_EF_BUILD;
    const vc_arg *attr = NULL;
    for (; pos < argc; pos++) {
        const vc_arg *a = &argv[pos];
        int more = pos + 1 < argc;
        if (is(a, "CAS")) {
            cas = 1;
        } else if (is(a, "NOQUANT")) {
            quant = VSET_NOQUANT;
        } else if (is(a, "Q8")) {
            quant = VSET_Q8;
        } else if (is(a, "BIN")) {
            quant = VSET_BIN;
        } else if (is(a, "EF") && more) {
            if (parse_ll(&argv[++pos], &ef) < 0 || ef <= 0 || ef > VC_MAX_EF) {
                vset_mem_free(v.v);
                return err_line(r, "ERR invalid EF"), VC_DONE;
            }
        } else if (is(a, "M") && more) {
            long long mm;
            if (parse_ll(&argv[++pos], &mm) < 0 || mm < VSET_MIN_M || mm > VSET_MAX_M) {
                vset_mem_free(v.v);
                return err_line(r, "ERR invalid M"), VC_DONE;
            }
            m = (int)mm;
        } else if (is(a, "SETATTR") && more) {
            attr = &argv[++pos];
        } else {
            vset_mem_free(v.v);
            return err_line(r, "ERR invalid option after element"), VC_DONE;
        }
    }
    vset *s;
    int k = lookup(x, 1, &s);
    if (k == VC_KEY_WRONGTYPE) {
        vset_mem_free(v.v);
        return VC_DONE;
    }
    char err[VC_ERRLEN];
    if (k == VC_KEY_MISSING) {
        vset_config cfg = {v.dim, v.reduce, quant, m, x->rand};
        s = vset_new(&cfg, err, sizeof err);
        if (!s) {
            vset_mem_free(v.v);
            return err_line(r, err), VC_DONE;
        }
        rc = vset_add(s, v.v, ele->ptr, ele->len, (int)ef, attr ? attr->ptr : NULL, attr ? attr->len : 0, err,
                      sizeof err);
        vset_mem_free(v.v);
        if (rc < 0) {
            vset_free(s);
            return err_line(r, err), VC_DONE;
        }
        if (x->ops->create(x->key_ctx, s) < 0) {
            vset_free(s);
            return err_line(r, "ERR out of memory"), VC_DONE;
        }
        x->ops->changed(x->key_ctx, "vadd");
        r->boolean(r->c, 1);
        return VC_DONE;
    }
    if (quant != vset_quant(s)) {
        vset_mem_free(v.v);
        return err_line(r, "ERR asked quantization mismatch with existing vector set"), VC_DONE;
    }
    if (m != vset_m(s)) {
        vset_mem_free(v.v);
        return err_line(r, "ERR asked M value mismatch with existing vector set"), VC_DONE;
    }
    int projected = vset_reduce(s) != 0;
    if ((!projected && v.dim != vset_dim(s)) || (projected && v.reduce != vset_dim(s))) {
        snprintf(err, sizeof err, "ERR Vector dimension mismatch - got %u but set has %u", v.dim, vset_dim(s));
        vset_mem_free(v.v);
        return err_line(r, err), VC_DONE;
    }
    if (v.reduce && !projected) {
        vset_mem_free(v.v);
        return err_line(r, "ERR cannot add projection to existing set without projection"), VC_DONE;
    }
    if (projected && v.dim != vset_input_dim(s)) {
        snprintf(err, sizeof err, "ERR Input dimension mismatch for projection - got %u but projection expects %u",
                 v.dim, vset_input_dim(s));
        vset_mem_free(v.v);
        return err_line(r, err), VC_DONE;
    }
    int64_t id = vset_find(s, ele->ptr, ele->len);
    if (id >= 0) {
        /* An existing element: its vector is replaced; SETATTR "" removes
         * the attributes, no SETATTR keeps them. */
        rc = vset_update(s, (uint32_t)id, v.v, (int)ef, err, sizeof err);
        vset_mem_free(v.v);
        if (rc == 0 && attr && vset_set_attr(s, (uint32_t)id, attr->ptr, attr->len) < 0) {
            rc = -1;
            snprintf(err, sizeof err, "ERR out of memory");
        }
        if (rc < 0) return err_line(r, err), VC_DONE;
        x->ops->changed(x->key_ctx, "vadd");
        r->boolean(r->c, 0);
        return VC_DONE;
    }
    if (cas && x->can_defer) {
        vc_job *j = vset_mem_calloc(1, sizeof *j);
        if (j) {
            j->kind = JOB_VADD;
            j->s = s;
            vset_retain(s);
            j->vec = v.v;
            j->ef = (int)ef;
            j->name = vset_mem_alloc(ele->len + 1);
            if (j->name) memcpy(j->name, ele->ptr, ele->len), j->name_len = ele->len;
            if (attr) {
                j->has_attr = 1;
                j->attr = vset_mem_alloc(attr->len + 1);
                if (j->attr) memcpy(j->attr, attr->ptr, attr->len), j->attr_len = attr->len;
            }
            if (j->name && (!attr || j->attr)) {
                x->job = j;
                return VC_DEFERRED;
            }
            j->vec = NULL;
            vc_job_free(j);
        }
        /* Out of memory for the job: insert here instead. */
    }
    rc = vset_add(s, v.v, ele->ptr, ele->len, (int)ef, attr ? attr->ptr : NULL, attr ? attr->len : 0, err,
                  sizeof err);
    vset_mem_free(v.v);
    if (rc < 0) return err_line(r, err), VC_DONE;
    x->ops->changed(x->key_ctx, "vadd");
    r->boolean(r->c, rc == 1);
    return VC_DONE;
}

/* ---- VSIM ------------------------------------------------------------------------------ */

static void vsim_reply(vc_reply *r, const vsim_opts *o, const vset_hit *h, int n, vset *s) {
    int pairs = o->withscores || o->withattribs;
    if (!pairs) {
        r->array(r->c, n);
    } else if (o->withscores && o->withattribs && !r->resp3) {
        r->array(r->c, 3L * n);
    } else {
        r->map(r->c, n);
    }
    for (int i = 0; i < n; i++) {
        size_t nl, al = 0;
        const char *name = h[i].name ? h[i].name : vset_name(s, h[i].id, &nl);
        const char *attr = h[i].name ? h[i].attr : vset_attr(s, h[i].id, &al);
        if (h[i].name) nl = h[i].name_len, al = h[i].attr_len;
        r->bulk(r->c, name, nl);
        if (o->withscores && o->withattribs && r->resp3) r->array(r->c, 2);
        if (o->withscores) r->dbl(r->c, h[i].sim);
        if (o->withattribs) {
            if (attr) r->bulk(r->c, attr, al);
            else r->null(r->c);
        }
    }
}

/* VSIM key (ELE element | FP32 blob | VALUES n v...) [WITHSCORES] [WITHATTRIBS]
 *      [COUNT n] [EPSILON d] [EF n] [FILTER expr] [FILTER-EF n] [TRUTH] [NOTHREAD]
 * O(log N) for the graph search (EF bounds the work), O(N) with TRUTH. */
static int cmd_vsim(const vc_arg *argv, int argc, vc_ctx *x) {
    vc_reply *r = x->r;
    vset *s;
    int k = lookup(x, 0, &s);
    if (k == VC_KEY_WRONGTYPE) return VC_DONE;
    if (k == VC_KEY_MISSING) return r->array(r->c, 0), VC_DONE;
    vset_query q = {0};
    q.ele = -1;
    vc_vec v = {0};
    int pos = 2;
    char err[VC_ERRLEN];
    if (is(&argv[2], "ELE")) {
        q.ele = vset_find(s, argv[3].ptr, argv[3].len);
        if (q.ele < 0) return err_line(r, "ERR element not found in set"), VC_DONE;
        pos = 4;
    } else {
        int rc = parse_vector(argv, argc, &pos, 0, &v);
        if (rc < 0) return vector_error(r, rc), VC_DONE;
        if (vset_reduce(s) && v.dim != vset_dim(s)) {
            if (v.dim != vset_input_dim(s)) {
                snprintf(err, sizeof err,
                         "ERR Input dimension mismatch for projection - got %u but projection expects %u", v.dim,
                         vset_input_dim(s));
                vset_mem_free(v.v);
                return err_line(r, err), VC_DONE;
            }
        } else if (v.dim != vset_dim(s)) {
            snprintf(err, sizeof err, "ERR Vector dimension mismatch - got %u but set has %u", v.dim, vset_dim(s));
            vset_mem_free(v.v);
            return err_line(r, err), VC_DONE;
        } else {
            q.reduced = vset_reduce(s) != 0; /* already in the reduced space: used as is */
        }
        q.vec = v.v;
    }
    vsim_opts o = {0, 0, VSET_DEFAULT_COUNT};
    long long ef = 0, filter_ef = 0;
    int nothread = 0;
    vfilter *filter = NULL;
    const char *bad = NULL;
    for (; pos < argc && !bad; pos++) {
        const vc_arg *a = &argv[pos];
        int more = pos + 1 < argc;
        if (is(a, "WITHSCORES")) {
            o.withscores = 1;
        } else if (is(a, "WITHATTRIBS")) {
            o.withattribs = 1;
        } else if (is(a, "TRUTH")) {
            q.truth = 1;
        } else if (is(a, "NOTHREAD")) {
            nothread = 1;
        } else if (is(a, "COUNT") && more) {
            if (parse_ll(&argv[++pos], &o.count) < 0 || o.count <= 0) bad = "ERR invalid COUNT";
        } else if (is(a, "EPSILON") && more) {
            if (parse_double(&argv[++pos], &q.epsilon) < 0 || !(q.epsilon > 0)) bad = "ERR invalid EPSILON";
        } else if (is(a, "EF") && more) {
            if (parse_ll(&argv[++pos], &ef) < 0 || ef <= 0 || ef > VC_MAX_EF) bad = "ERR invalid EF";
        } else if (is(a, "FILTER-EF") && more) {
            if (parse_ll(&argv[++pos], &filter_ef) < 0 || filter_ef <= 0) bad = "ERR invalid FILTER-EF";
        } else if (is(a, "FILTER") && more) {
            pos++;
            vfilter_free(filter);
            filter = vfilter_compile(argv[pos].ptr, argv[pos].len, err, sizeof err);
            if (!filter) bad = err;
        } else {
            bad = "ERR syntax error in VSIM command";
        }
    }
    if (bad) {
        vfilter_free(filter);
        vset_mem_free(v.v);
        return err_line(r, bad), VC_DONE;
    }
    uint64_t card = vset_card(s);
    q.count = (uint32_t)((uint64_t)o.count < card ? (uint64_t)o.count : card);
    uint64_t e = ef ? (uint64_t)ef : VSET_DEFAULT_EF_SEARCH;
    if ((uint64_t)o.count > e) e = (uint64_t)o.count;
    if (e > card) e = card;
    q.ef = (uint32_t)e;
    q.filter = filter;
    /* FILTER-EF defaults to COUNT x 100 (saturating). */
    q.filter_ef = filter_ef ? (uint64_t)filter_ef
                            : ((uint64_t)o.count > UINT64_MAX / 100 ? UINT64_MAX : (uint64_t)o.count * 100);
    if (x->can_defer && !nothread) {
        vc_job *j = vset_mem_calloc(1, sizeof *j);
        if (j) {
            j->kind = JOB_VSIM;
            j->s = s;
            vset_retain(s);
            j->q = q;
            j->q.copy = 1;
            j->o = o;
            j->filter = filter;
            x->job = j;
            return VC_DEFERRED;
        }
    }
    vset_hit *hits = q.count ? vset_mem_calloc(q.count, sizeof *hits) : NULL;
    int n = 0;
    if (q.count && !hits) n = -1;
    else if (q.count) n = vset_search(s, &q, hits);
    vfilter_free(filter);
    vset_mem_free(v.v);
    if (n < 0) {
        vset_mem_free(hits);
        return err_line(r, "ERR out of memory"), VC_DONE;
    }
    vsim_reply(r, &o, hits, n, s);
    vset_mem_free(hits);
    return VC_DONE;
}

/* ---- jobs ---------------------------------------------------------------------------- */

void vc_job_run(vc_job *j) {
    if (j->kind == JOB_VSIM) {
        j->hits = j->q.count ? vset_mem_calloc(j->q.count, sizeof *j->hits) : NULL;
        if (j->q.count && !j->hits) j->nhits = -1;
        else if (j->q.count) j->nhits = vset_search(j->s, &j->q, j->hits);
        return;
    }
    j->prep = vset_prepare(j->s, j->vec, j->ef, j->err, sizeof j->err);
}

void vc_job_finish(vc_job *j, const vc_keyops *ops, void *key_ctx, vc_reply *r) {
    if (j->kind == JOB_VSIM) {
        if (j->nhits < 0) err_line(r, "ERR out of memory");
        else vsim_reply(r, &j->o, j->hits, j->nhits, j->s);
        vc_job_free(j);
        return;
    }
    /* VADD CAS: Redis answers 1 whatever happened in between (the key
     * deleted or replaced, the element added by someone else). */
    vset *now = NULL;
    int k = ops->lookup(key_ctx, 1, &now);
    if (j->prep && k == VC_KEY_FOUND && now == j->s) {
        int rc = vset_commit(j->s, j->prep, j->name, j->name_len, j->has_attr ? j->attr : NULL, j->attr_len, j->err,
                             sizeof j->err);
        j->prep = NULL;
        if (rc < 0) {
            err_line(r, j->err);
            vc_job_free(j);
            return;
        }
        if (rc == 1) ops->changed(key_ctx, "vadd");
    } else if (!j->prep) {
        err_line(r, j->err);
        vc_job_free(j);
        return;
    }
    r->boolean(r->c, 1);
    vc_job_free(j);
}

/* ---- the small commands -------------------------------------------------------------- */

/* VREM key element - O(log N): the element's neighbours are relinked. */
static int cmd_vrem(const vc_arg *argv, int argc, vc_ctx *x) {
    (void)argc; /* checked against the table by vc_exec */
    vc_reply *r = x->r;
    vset *s;
    int k = lookup(x, 1, &s);
    if (k == VC_KEY_WRONGTYPE) return VC_DONE;
    if (k == VC_KEY_MISSING || !vset_remove(s, argv[2].ptr, argv[2].len)) return r->boolean(r->c, 0), VC_DONE;
    x->ops->changed(x->key_ctx, "vrem");
    if (vset_card(s) == 0) x->ops->remove(x->key_ctx);
    r->boolean(r->c, 1);
    return VC_DONE;
}

/* VCARD key - O(1) */
static int cmd_vcard(const vc_arg *argv, int argc, vc_ctx *x) {
    (void)argc; /* checked against the table by vc_exec */
    (void)argv;
    vset *s;
    int k = lookup(x, 0, &s);
    if (k == VC_KEY_WRONGTYPE) return VC_DONE;
    x->r->integer(x->r->c, s ? (long long)vset_card(s) : 0);
    return VC_DONE;
}

/* VDIM key - O(1) */
static int cmd_vdim(const vc_arg *argv, int argc, vc_ctx *x) {
    (void)argc; /* checked against the table by vc_exec */
    (void)argv;
    vset *s;
    int k = lookup(x, 0, &s);
    if (k == VC_KEY_WRONGTYPE) return VC_DONE;
    if (!s) return err_line(x->r, "ERR key does not exist"), VC_DONE;
    x->r->integer(x->r->c, vset_dim(s));
    return VC_DONE;
}

/* The element named argv[2] of a found set, or -1 after replying null. */
static int64_t element_or_null(vc_ctx *x, vset *s, const vc_arg *name) {
    int64_t id = s ? vset_find(s, name->ptr, name->len) : -1;
    if (id < 0) x->r->null(x->r->c);
    return id;
}

/* VEMB key element [RAW] - O(dim) */
static int cmd_vemb(const vc_arg *argv, int argc, vc_ctx *x) {
    vc_reply *r = x->r;
    int raw = 0;
    for (int i = 3; i < argc; i++) {
        if (!is(&argv[i], "RAW")) return err_line(r, "ERR invalid option"), VC_DONE;
        raw = 1;
    }
    vset *s;
    if (lookup(x, 0, &s) == VC_KEY_WRONGTYPE) return VC_DONE;
    int64_t id = element_or_null(x, s, &argv[2]);
    if (id < 0) return VC_DONE;
    if (raw) {
        const void *data;
        size_t len;
        float l2, range;
        vset_get_raw(s, (uint32_t)id, &data, &len, &l2, &range);
        int q8 = vset_quant(s) == VSET_Q8;
        r->array(r->c, q8 ? 4 : 3);
        r->simple(r->c, vset_quant_name(vset_quant(s)));
        r->bulk(r->c, data, len);
        r->dbl(r->c, l2);
        if (q8) r->dbl(r->c, range);
        return VC_DONE;
    }
    uint32_t dim = vset_dim(s);
    float *f = vset_mem_alloc((size_t)dim * sizeof *f);
    if (!f) return err_line(r, "ERR out of memory"), VC_DONE;
    vset_get_vector(s, (uint32_t)id, f);
    r->array(r->c, dim);
    for (uint32_t i = 0; i < dim; i++) r->dbl(r->c, f[i]);
    vset_mem_free(f);
    return VC_DONE;
}

typedef struct links_ud {
    vc_reply *r;
    vset *s;
    uint32_t self;
    int scores;
} links_ud;

static void links_level(void *ud, int level, const uint32_t *ids, uint32_t n) {
    links_ud *u = ud;
    (void)level;
    if (u->scores) u->r->map(u->r->c, n);
    else u->r->array(u->r->c, n);
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const char *name = vset_name(u->s, ids[i], &len);
        u->r->bulk(u->r->c, name, len);
        /* Redis rounds this score to a float before printing it. */
        if (u->scores) u->r->dbl(u->r->c, (float)vset_similarity(u->s, u->self, ids[i]));
    }
}

/* VLINKS key element [WITHSCORES] - O(M x levels) */
static int cmd_vlinks(const vc_arg *argv, int argc, vc_ctx *x) {
    vc_reply *r = x->r;
    /* Redis answers a bad fourth argument with the arity error too. */
    if (argc > 4 || (argc == 4 && !is(&argv[3], "WITHSCORES"))) return arity(r, "VLINKS"), VC_DONE;
    vset *s;
    if (lookup(x, 0, &s) == VC_KEY_WRONGTYPE) return VC_DONE;
    int64_t id = element_or_null(x, s, &argv[2]);
    if (id < 0) return VC_DONE;
    links_ud u = {r, s, (uint32_t)id, argc == 4};
    r->array(r->c, vset_node_level(s, (uint32_t)id) + 1);
    vset_links(s, (uint32_t)id, links_level, &u);
    return VC_DONE;
}

/* VINFO key - O(1) */
static int cmd_vinfo(const vc_arg *argv, int argc, vc_ctx *x) {
    (void)argc; /* checked against the table by vc_exec */
    (void)argv;
    vc_reply *r = x->r;
    vset *s;
    int k = lookup(x, 0, &s);
    if (k == VC_KEY_WRONGTYPE) return VC_DONE;
    if (!s) return r->null_array(r->c), VC_DONE;
    r->map(r->c, 9);
    r->simple(r->c, "quant-type");
    r->simple(r->c, vset_quant_name(vset_quant(s)));
    r->simple(r->c, "hnsw-m");
    r->integer(r->c, vset_m(s));
    r->simple(r->c, "vector-dim");
    r->integer(r->c, vset_dim(s));
    r->simple(r->c, "projection-input-dim");
    r->integer(r->c, vset_reduce(s) ? vset_input_dim(s) : 0);
    r->simple(r->c, "size");
    r->integer(r->c, (long long)vset_card(s));
    r->simple(r->c, "max-level");
    r->integer(r->c, vset_max_level(s));
    r->simple(r->c, "attributes-count");
    r->integer(r->c, (long long)vset_attr_count(s));
    r->simple(r->c, "vset-uid");
    r->integer(r->c, (long long)vset_uid(s));
    r->simple(r->c, "hnsw-max-node-uid");
    r->integer(r->c, (long long)vset_max_node_uid(s));
    return VC_DONE;
}

/* VSETATTR key element json - O(1); an empty string removes them. */
static int cmd_vsetattr(const vc_arg *argv, int argc, vc_ctx *x) {
    (void)argc; /* checked against the table by vc_exec */
    vc_reply *r = x->r;
    vset *s;
    if (lookup(x, 1, &s) == VC_KEY_WRONGTYPE) return VC_DONE;
    int64_t id = s ? vset_find(s, argv[2].ptr, argv[2].len) : -1;
    if (id < 0) return r->boolean(r->c, 0), VC_DONE;
    if (vset_set_attr(s, (uint32_t)id, argv[3].ptr, argv[3].len) < 0) return err_line(r, "ERR out of memory"), VC_DONE;
    x->ops->changed(x->key_ctx, "vsetattr");
    r->boolean(r->c, 1);
    return VC_DONE;
}

/* VGETATTR key element - O(1) */
static int cmd_vgetattr(const vc_arg *argv, int argc, vc_ctx *x) {
    (void)argc; /* checked against the table by vc_exec */
    vc_reply *r = x->r;
    vset *s;
    if (lookup(x, 0, &s) == VC_KEY_WRONGTYPE) return VC_DONE;
    int64_t id = element_or_null(x, s, &argv[2]);
    if (id < 0) return VC_DONE;
    size_t len;
    const char *a = vset_attr(s, (uint32_t)id, &len);
    if (a) r->bulk(r->c, a, len);
    else r->null(r->c);
    return VC_DONE;
}

/* VISMEMBER key element - O(length of the name) */
static int cmd_vismember(const vc_arg *argv, int argc, vc_ctx *x) {
    (void)argc; /* checked against the table by vc_exec */
    vc_reply *r = x->r;
    vset *s;
    if (lookup(x, 0, &s) == VC_KEY_WRONGTYPE) return VC_DONE;
    r->boolean(r->c, s && vset_find(s, argv[2].ptr, argv[2].len) >= 0);
    return VC_DONE;
}

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void reply_name(vc_reply *r, vset *s, uint32_t id) {
    size_t len;
    const char *n = vset_name(s, id, &len);
    r->bulk(r->c, n, len);
}

static void reply_ids(vc_reply *r, vset *s, const uint32_t *ids, size_t n) {
    r->array(r->c, (long)n);
    for (size_t i = 0; i < n; i++) reply_name(r, s, ids[i]);
}

typedef struct walk_ud {
    vc_reply *r;
    vset *s;
    uint64_t left;
    uint32_t *ids;
    size_t n, cap;
    /* VRANGE end bound */
    const char *end;
    size_t end_len;
    int end_kind; /* 0 '+', 1 inclusive, 2 exclusive */
    int oom;
} walk_ud;

static int collect(void *ud, uint32_t id) {
    walk_ud *w = ud;
    if (w->end_kind) {
        size_t len;
        const char *name = vset_name(w->s, id, &len);
        size_t m = len < w->end_len ? len : w->end_len;
        int c = memcmp(name, w->end, m);
        if (c == 0) c = len < w->end_len ? -1 : len > w->end_len;
        if (c > 0 || (c == 0 && w->end_kind == 2)) return 1;
    }
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 64;
        uint32_t *ni = vset_mem_realloc(w->ids, nc * sizeof *ni);
        if (!ni) {
            w->oom = 1;
            return 1;
        }
        w->ids = ni;
        w->cap = nc;
    }
    w->ids[w->n++] = id;
    return --w->left == 0;
}

/* VRANDMEMBER key [count] - O(1) for one, O(count) otherwise. */
static int cmd_vrandmember(const vc_arg *argv, int argc, vc_ctx *x) {
    vc_reply *r = x->r;
    if (argc > 3) return arity(r, "VRANDMEMBER"), VC_DONE;
    long long count = 0;
    if (argc == 3) {
        if (parse_ll(&argv[2], &count) < 0) return err_line(r, "ERR COUNT value is not an integer"), VC_DONE;
        if (count == 0) return r->array(r->c, 0), VC_DONE;
        if (count == LLONG_MIN) return err_line(r, "ERR value is out of range"), VC_DONE;
    }
    vset *s;
    int k = lookup(x, 0, &s);
    if (k == VC_KEY_WRONGTYPE) return VC_DONE;
    if (!s || vset_card(s) == 0) {
        if (argc == 2) r->null(r->c);
        else r->array(r->c, 0);
        return VC_DONE;
    }
    uint64_t rnd = x->rand;
    if (argc == 2) {
        reply_name(r, s, (uint32_t)vset_random(s, rnd));
        return VC_DONE;
    }
    if (count < 0) {
        /* With repetitions: each draw independent. */
        unsigned long long n = (unsigned long long)(-count);
        r->array(r->c, (long)n);
        for (unsigned long long i = 0; i < n; i++) {
            if ((i & 1023) == 1023 && r->aborted && r->aborted(r->c)) break; /* nobody reads on */
            reply_name(r, s, (uint32_t)vset_random(s, mix(rnd + i)));
        }
        return VC_DONE;
    }
    uint64_t card = vset_card(s);
    if ((uint64_t)count >= card) {
        walk_ud w = {r, s, card, NULL, 0, 0, NULL, 0, 0, 0};
        vset_range(s, NULL, 0, 0, collect, &w);
        if (w.oom) {
            vset_mem_free(w.ids);
            return err_line(r, "ERR out of memory"), VC_DONE;
        }
        reply_ids(r, s, w.ids, w.n);
        vset_mem_free(w.ids);
        return VC_DONE;
    }
    if ((uint64_t)count * 5 > card) {
        /* Many of the set: consecutive names from a random one on, wrapping
         * around (as Redis does past 20% of the set: cheap, not uniform). */
        size_t sl;
        const char *start = vset_name(s, (uint32_t)vset_random(s, rnd), &sl);
        walk_ud w = {r, s, (uint64_t)count, NULL, 0, 0, NULL, 0, 0, 0};
        vset_range(s, start, sl, 0, collect, &w);
        if (!w.oom && w.n < (size_t)count) {
            walk_ud w2 = {r, s, (uint64_t)count - w.n, w.ids, w.n, w.cap, start, sl, 2, 0};
            vset_range(s, NULL, 0, 0, collect, &w2);
            w.ids = w2.ids, w.n = w2.n, w.oom = w2.oom;
        }
        if (w.oom) {
            vset_mem_free(w.ids);
            return err_line(r, "ERR out of memory"), VC_DONE;
        }
        reply_ids(r, s, w.ids, w.n);
        vset_mem_free(w.ids);
        return VC_DONE;
    }
    /* A few of many: independent draws, kept distinct by a bitmap of ids. */
    uint32_t bound = vset_id_bound(s);
    size_t words = ((size_t)bound + 63) / 64;
    uint64_t *seen = vset_mem_calloc(words ? words : 1, 8);
    uint32_t *ids = vset_mem_alloc((size_t)count * sizeof *ids);
    if (!seen || !ids) {
        vset_mem_free(seen);
        vset_mem_free(ids);
        return err_line(r, "ERR out of memory"), VC_DONE;
    }
    long long got = 0;
    for (uint64_t i = 0; got < count; i++) {
        int64_t id = vset_random(s, mix(rnd ^ (i * 0xd1b54a32d192ed03ull)));
        if (id < 0 || (uint64_t)id >= bound) break;
        if (seen[id / 64] >> (id % 64) & 1) continue;
        seen[id / 64] |= 1ull << (id % 64);
        ids[got++] = (uint32_t)id;
    }
    reply_ids(r, s, ids, (size_t)got);
    vset_mem_free(seen);
    vset_mem_free(ids);
    return VC_DONE;
}

/* A VRANGE bound: '-', '+', '[x' or '(x' with x at least one byte. */
static int parse_bound(const vc_arg *a, int *kind, const char **p, size_t *len) {
    if (a->len == 1 && a->ptr[0] == '-') return *kind = 0, *p = NULL, *len = 0, 0;
    if (a->len == 1 && a->ptr[0] == '+') return *kind = 3, *p = NULL, *len = 0, 0;
    if (a->len >= 2 && (a->ptr[0] == '[' || a->ptr[0] == '(')) {
        *kind = a->ptr[0] == '[' ? 1 : 2;
        *p = a->ptr + 1;
        *len = a->len - 1;
        return 0;
    }
    return -1;
}

/* VRANGE key start end [count] - O(log N + M) for M elements returned. */
static int cmd_vrange(const vc_arg *argv, int argc, vc_ctx *x) {
    vc_reply *r = x->r;
    if (argc > 5) return arity(r, "VRANGE"), VC_DONE;
    long long count = -1;
    if (argc == 5 && parse_ll(&argv[4], &count) < 0) return err_line(r, "ERR invalid COUNT value"), VC_DONE;
    int sk, ek;
    const char *sp, *ep;
    size_t sl, el;
    if (parse_bound(&argv[2], &sk, &sp, &sl) < 0) return err_line(r, "ERR invalid start range format"), VC_DONE;
    if (parse_bound(&argv[3], &ek, &ep, &el) < 0) return err_line(r, "ERR invalid end range format"), VC_DONE;
    if (sk == 3 || ek == 0)
        return err_line(r, "ERR '-' can only be used as first argument, '+' only as second"), VC_DONE;
    vset *s;
    int k = lookup(x, 0, &s);
    if (k == VC_KEY_WRONGTYPE) return VC_DONE;
    if (!s || count == 0) return r->array(r->c, 0), VC_DONE;
    walk_ud w = {r, s, count < 0 ? UINT64_MAX : (uint64_t)count, NULL, 0, 0, ep, el, ek == 3 ? 0 : ek, 0};
    vset_range(s, sk == 0 ? NULL : sp, sl, sk == 2, collect, &w);
    if (w.oom) {
        vset_mem_free(w.ids);
        return err_line(r, "ERR out of memory"), VC_DONE;
    }
    reply_ids(r, s, w.ids, w.n);
    vset_mem_free(w.ids);
    return VC_DONE;
}

/* ---- the table ---------------------------------------------------------------------------- */

typedef int (*vc_handler)(const vc_arg *argv, int argc, vc_ctx *x);

static const vc_command commands[] = {
    {"VADD", -5, "write deny-oom", "Add one or more elements to a vector set, or update its vector if it already exists",
     "8.0.0", 1},
    {"VREM", 3, "write", "Remove an element from a vector set", "8.0.0", 1},
    {"VSIM", -4, "readonly", "Return elements by vector similarity", "8.0.0", 0},
    {"VDIM", 2, "readonly fast", "Return the dimension of vectors in the vector set", "8.0.0", 0},
    {"VCARD", 2, "readonly fast", "Return the number of elements in a vector set", "8.0.0", 0},
    {"VEMB", -3, "readonly fast", "Return the vector associated with an element", "8.0.0", 0},
    {"VLINKS", -3, "readonly fast", "Return the neighbors of an element at each layer in the HNSW graph", "8.0.0", 0},
    {"VINFO", 2, "readonly fast", "Return information about a vector set", "8.0.0", 0},
    {"VSETATTR", 4, "write fast", "Associate or remove the JSON attributes of elements", "8.0.0", 1},
    {"VGETATTR", 3, "readonly fast", "Retrieve the JSON attributes of elements", "8.0.0", 0},
    {"VRANDMEMBER", -2, "readonly", "Return one or multiple random members from a vector set", "8.0.0", 0},
    {"VISMEMBER", 3, "readonly", "Check if an element exists in a vector set", "8.2.0", 0},
    {"VRANGE", -4, "readonly", "Return vector set elements in a lex range", "8.4.0", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

static const vc_handler handlers[] = {cmd_vadd,     cmd_vrem,     cmd_vsim,        cmd_vdim,      cmd_vcard,
                                      cmd_vemb,     cmd_vlinks,   cmd_vinfo,       cmd_vsetattr,  cmd_vgetattr,
                                      cmd_vrandmember, cmd_vismember, cmd_vrange};

const vc_command *vc_commands(void) { return commands; }

const vc_command *vc_lookup(const char *name, size_t len) {
    for (const vc_command *c = commands; c->name; c++)
        if (strlen(c->name) == len && strncasecmp(c->name, name, len) == 0) return c;
    return NULL;
}

int vc_exec(const vc_arg *argv, int argc, vc_ctx *ctx) {
    if (argc < 1) return VC_UNKNOWN;
    const vc_command *c = vc_lookup(argv[0].ptr, argv[0].len);
    if (!c) return VC_UNKNOWN;
    ctx->job = NULL;
    /* The table's arity: exact when positive, a minimum when negative. */
    if ((c->arity > 0 && argc != c->arity) || (c->arity < 0 && argc < -c->arity)) {
        arity(ctx->r, c->name);
        return VC_DONE;
    }
    return handlers[c - commands](argv, argc, ctx);
}

/* ---- doubles ---------------------------------------------------------------------------- */

int vc_format_double(char *out, size_t cap, double d) {
    if (isnan(d)) return snprintf(out, cap, "nan");
    if (isinf(d)) return snprintf(out, cap, d > 0 ? "inf" : "-inf");
    if (d == 0) return snprintf(out, cap, signbit(d) ? "-0" : "0");
    if (fabs(d) <= 4611686018427387904.0 && d == floor(d)) return snprintf(out, cap, "%lld", (long long)d);
    /* Fewest significant digits that read back as d: more digits never
     * stop reading back once fewer do, so a binary search finds them. */
    char sci[40];
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(sci, sizeof sci, "%.*e", mid - 1, d);
        if (strtod(sci, NULL) == d) hi = mid;
        else lo = mid + 1;
    }
    snprintf(sci, sizeof sci, "%.*e", lo - 1, d);
    /* sci: [-]d[.ddd]e(+|-)x */
    char dig[24];
    int nd = 0, neg = sci[0] == '-';
    const char *p = sci + neg;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < (int)sizeof dig - 1) dig[nd++] = *p;
    int e = *p == 'e' ? atoi(p + 1) : 0; /* exponent of the first digit */
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    int last = e - (nd - 1); /* exponent of the last digit */
    int ae = e < 0 ? -e : e;
    int n = 0;
    char buf[64];
    if (neg) buf[n++] = '-';
    if (last >= 0 && ae < nd + 7) {
        memcpy(buf + n, dig, (size_t)nd);
        n += nd;
        for (int i = 0; i < last; i++) buf[n++] = '0';
    } else if (last < 0 && (last > -7 || ae < 4)) {
        int whole = nd + last; /* digits before the point */
        if (whole <= 0) {
            buf[n++] = '0';
            buf[n++] = '.';
            for (int i = 0; i < -whole; i++) buf[n++] = '0';
            memcpy(buf + n, dig, (size_t)nd);
            n += nd;
        } else {
            memcpy(buf + n, dig, (size_t)whole);
            n += whole;
            buf[n++] = '.';
            memcpy(buf + n, dig + whole, (size_t)(nd - whole));
            n += nd - whole;
        }
    } else {
        buf[n++] = dig[0];
        if (nd > 1) {
            buf[n++] = '.';
            memcpy(buf + n, dig + 1, (size_t)(nd - 1));
            n += nd - 1;
        }
        n += snprintf(buf + n, sizeof buf - (size_t)n, "e%c%d", e < 0 ? '-' : '+', ae);
    }
    buf[n] = 0;
    return snprintf(out, cap, "%s", buf);
}

/* ---- FILTER check ---------------------------------------------------------------------- */

int vc_filter_check(const char *expr, size_t len, char *err, size_t errlen) {
    vfilter *f = vfilter_compile(expr, len, err, errlen);
    if (!f) return -1;
    vfilter_free(f);
    return 0;
}

/* ---- digest ------------------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

typedef struct digest_ud {
    vset *s;
    uint64_t acc;
} digest_ud;

static int digest_one(void *ud, uint32_t id) {
    digest_ud *d = ud;
    size_t nl, al, rl;
    const char *n = vset_name(d->s, id, &nl);
    const char *a = vset_attr(d->s, id, &al);
    const void *raw;
    float l2, range;
    vset_get_raw(d->s, id, &raw, &rl, &l2, &range);
    uint64_t h = fnv(0xcbf29ce484222325ull, n, nl);
    h = fnv(h, "\0", 1);
    h = fnv(h, raw, rl);
    h = fnv(h, &l2, sizeof l2);
    h = fnv(h, &range, sizeof range);
    if (a) h = fnv(h, a, al);
    d->acc += mix(h); /* a sum: independent of the order names are visited in */
    return 0;
}

uint64_t vc_digest(vset *s) {
    digest_ud d = {s, mix(vset_quant(s)) ^ mix((uint64_t)vset_dim(s) << 8) ^ mix((uint64_t)vset_m(s) << 32)};
    vset_range(s, NULL, 0, 0, digest_one, &d);
    return d.acc;
}
