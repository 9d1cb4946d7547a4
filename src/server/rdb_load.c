/* rdb_load.c - RDB files in: versions 1 to 10, every value type Redis
 * 7.0.15 writes or still reads (0-5, 7, 9-19), into inferkv's encodings.
 *
 * Hostile input, above all.  A file is read into a fresh array of
 * databases (db_array_new); only when every record parsed, every value
 * checked out and the CRC matched does the caller install it.  Nothing is
 * sized from a count before the count is compared with the bytes left in
 * the file (rdbi_count), packed blobs are checked whole before they are
 * decoded (rdb_packed.c), and each structure's own invariants are checked
 * as it is rebuilt: no duplicate keys, members or fields, no NaN scores,
 * stream ids strictly increasing with every entry inside its node, stream
 * counters that agree with the entries, consumer PELs that point into
 * their group's PEL and a consumer for every pending entry.  An error says
 * where and what: "at offset 4711 (key 'user:1' in db 0): ...".
 *
 * What Redis itself skips is skipped here too: keys whose expiry time has
 * passed (unless RDB_LOAD_KEEP_EXPIRED: an AOF preamble), empty
 * collections, unknown aux fields, module aux data, FUNCTION libraries
 * (logged: inferkv has no scripting).  Module values other than inferkv's
 * vector sets are refused: their data could not be kept. */
#include "rdb.h"
#include "stream.h"
#include "vset.h"
#include "zset.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Scratch arrays for one stream entry's strings (fields and values). */
typedef struct strvec {
    const char **p;
    size_t *len;
    char (*num)[LL_STR_SIZE]; /* integers formatted as text */
    size_t cap;
} strvec;

static int strvec_reserve(strvec *v, size_t n) {
    if (n <= v->cap) return OK;
    size_t cap = v->cap ? v->cap : 16;
    while (cap < n) cap *= 2;
    const char **p = km_realloc(v->p, cap * sizeof *p);
    if (p) v->p = p;
    size_t *l = km_realloc(v->len, cap * sizeof *l);
    if (l) v->len = l;
    char(*num)[LL_STR_SIZE] = km_realloc(v->num, cap * sizeof *num);
    if (num) v->num = num;
    if (!p || !l || !num) return ERR;
    v->cap = cap;
    return OK;
}

static void strvec_free(strvec *v) {
    km_free(v->p);
    km_free(v->len);
    km_free(v->num);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------------ blobs */

/* A packed blob as one string; *blob is NULL-safe to free afterwards. */
static int read_blob(rdb_in *in, rdb_str *s, uint64_t *off) {
    *off = rdbi_offset(in);
    return rdbi_string(in, s);
}

static int check_packed(rdb_in *in, uint64_t off, const rdb_str *s, int kind, size_t *count) {
    char why[200];
    int rc = kind == 0 ? listpack_check((const unsigned char *)s->p, s->len, count, why, sizeof why)
                       : ziplist_check((const unsigned char *)s->p, s->len, count, why, sizeof why);
    if (rc != OK) return rdbi_fail(in, off, "%s", why);
    return OK;
}

/* ------------------------------------------------------------------ lists */

static int list_add(rdb_in *in, klist *l, const char *p, size_t len, dstr own) {
    dstr s = own ? own : dstr_newlen(p, len);
    if (!s || klist_push_tail(l, s) != OK) {
        dstr_free(s);
        return rdbi_fail(in, rdbi_offset(in), "out of memory");
    }
    return OK;
}

static int list_add_packed(rdb_in *in, klist *l, const rdb_str *blob, uint64_t off, int kind) {
    size_t count;
    if (check_packed(in, off, blob, kind, &count) != OK) return ERR;
    packed_iter it;
    packed_ele e;
    packed_iter_init(&it, (const unsigned char *)blob->p, blob->len, kind);
    while (packed_next(&it, &e)) {
        char buf[LL_STR_SIZE];
        size_t len;
        const char *p = packed_str(&e, buf, &len);
        if (list_add(in, l, p, len, NULL) != OK) return ERR;
    }
    return OK;
}

static kobj *load_list(rdb_in *in, int type) {
    klist *l = klist_new();
    kobj *o = l ? obj_new(OBJ_LIST, ENC_LIST, l) : NULL;
    if (!o) {
        klist_free(l);
        rdbi_fail(in, rdbi_offset(in), "out of memory");
        return NULL;
    }
    rdb_str s;
    uint64_t off, n;
    if (type == RDB_TYPE_LIST) {
        if (rdbi_count(in, &n, 1, "a list") != OK) goto fail;
        for (uint64_t i = 0; i < n; i++) {
            if (rdbi_string(in, &s) != OK) goto fail;
            dstr own = s.own;
            s.own = NULL;
            if (list_add(in, l, s.p, s.len, own) != OK) goto fail;
        }
    } else if (type == RDB_TYPE_LIST_ZIPLIST) {
        if (read_blob(in, &s, &off) != OK) goto fail;
        int rc = list_add_packed(in, l, &s, off, 1);
        rdb_str_free(&s);
        if (rc != OK) goto fail;
    } else {
        if (rdbi_count(in, &n, 1, "a quicklist") != OK) goto fail;
        for (uint64_t i = 0; i < n; i++) {
            uint64_t container = 2;
            if (type == RDB_TYPE_LIST_QUICKLIST_2) {
                uint64_t coff = rdbi_offset(in);
                if (rdbi_len(in, &container, NULL) != OK) goto fail;
                if (container != 1 && container != 2) {
                    rdbi_fail(in, coff, "quicklist node container %llu (1 plain or 2 packed)",
                              (unsigned long long)container);
                    goto fail;
                }
            }
            if (read_blob(in, &s, &off) != OK) goto fail;
            int rc;
            if (container == 1) {
                dstr own = s.own;
                s.own = NULL;
                rc = list_add(in, l, s.p, s.len, own);
            } else {
                rc = list_add_packed(in, l, &s, off, type == RDB_TYPE_LIST_QUICKLIST_2 ? 0 : 1);
            }
            rdb_str_free(&s);
            if (rc != OK) goto fail;
        }
    }
    return o;
fail:
    obj_decref(o);
    return NULL;
}

/* ------------------------------------------------------------------- sets */

static int set_member(rdb_in *in, kobj *o, const char *p, size_t len, uint64_t off) {
    int r = set_add(o, p, len);
    if (r < 0) return rdbi_fail(in, off, "out of memory");
    if (r == 0) return rdbi_fail(in, off, "duplicate set member");
    return OK;
}

static kobj *load_set(rdb_in *in, int type) {
    kobj *o = set_create();
    if (!o) {
        rdbi_fail(in, rdbi_offset(in), "out of memory");
        return NULL;
    }
    rdb_str s;
    uint64_t n, off;
    if (type == RDB_TYPE_SET) {
        if (rdbi_count(in, &n, 1, "a set") != OK) goto fail;
        if (n > 4) dict_expand(o->ptr, (size_t)n);
        for (uint64_t i = 0; i < n; i++) {
            off = rdbi_offset(in);
            if (rdbi_string(in, &s) != OK) goto fail;
            int rc = set_member(in, o, s.p, s.len, off);
            rdb_str_free(&s);
            if (rc != OK) goto fail;
        }
        return o;
    }
    if (read_blob(in, &s, &off) != OK) goto fail;
    char why[200];
    size_t count;
    if (intset_check((const unsigned char *)s.p, s.len, &count, why, sizeof why) != OK) {
        rdbi_fail(in, off, "%s", why);
        rdb_str_free(&s);
        goto fail;
    }
    if (count > 4) dict_expand(o->ptr, count);
    for (size_t i = 0; i < count; i++) {
        char buf[LL_STR_SIZE];
        int len = ll_to_str(buf, sizeof buf, intset_get((const unsigned char *)s.p, i));
        if (set_member(in, o, buf, (size_t)len, off) != OK) {
            rdb_str_free(&s);
            goto fail;
        }
    }
    rdb_str_free(&s);
    return o;
fail:
    obj_decref(o);
    return NULL;
}

/* ------------------------------------------------------------ sorted sets */

static int zset_member(rdb_in *in, zset *z, const char *p, size_t len, double score, uint64_t off) {
    if (isnan(score)) return rdbi_fail(in, off, "a NaN score");
    int added;
    if (zset_add(z, score, p, len, &added) != OK) return rdbi_fail(in, off, "out of memory");
    if (!added) return rdbi_fail(in, off, "duplicate sorted set member");
    return OK;
}

static kobj *load_zset(rdb_in *in, int type) {
    zset *z = zset_new();
    kobj *o = z ? obj_new(OBJ_ZSET, ENC_SKIPLIST, z) : NULL;
    if (!o) {
        if (z) zset_free(z);
        rdbi_fail(in, rdbi_offset(in), "out of memory");
        return NULL;
    }
    rdb_str s;
    uint64_t n, off;
    if (type == RDB_TYPE_ZSET || type == RDB_TYPE_ZSET_2) {
        if (rdbi_count(in, &n, 2, "a sorted set") != OK) goto fail;
        if (n > 4) dict_expand(z->d, (size_t)n);
        for (uint64_t i = 0; i < n; i++) {
            off = rdbi_offset(in);
            if (rdbi_string(in, &s) != OK) goto fail;
            /* the member's bytes may live in the reader's window: copy
             * them before reading the score */
            dstr m = rdb_str_take(&s);
            if (!m) {
                rdbi_fail(in, off, "out of memory");
                goto fail;
            }
            double score;
            int rc = type == RDB_TYPE_ZSET_2 ? rdbi_binary_double(in, &score) : rdbi_text_double(in, &score);
            if (rc == OK) rc = zset_member(in, z, m, dstr_len(m), score, off);
            dstr_free(m);
            if (rc != OK) goto fail;
        }
        return o;
    }
    if (read_blob(in, &s, &off) != OK) goto fail;
    size_t count;
    int kind = type == RDB_TYPE_ZSET_LISTPACK ? 0 : 1;
    if (check_packed(in, off, &s, kind, &count) != OK) goto fail_blob;
    if (count % 2) {
        rdbi_fail(in, off, "a packed sorted set of %zu elements (member, score pairs)", count);
        goto fail_blob;
    }
    packed_iter it;
    packed_ele m, sc;
    packed_iter_init(&it, (const unsigned char *)s.p, s.len, kind);
    while (packed_next(&it, &m) && packed_next(&it, &sc)) {
        char mb[LL_STR_SIZE], sb[LL_STR_SIZE];
        size_t ml, sl;
        const char *mp = packed_str(&m, mb, &ml), *sp = packed_str(&sc, sb, &sl);
        double score;
        if (!sc.s) score = (double)sc.v;
        else if (!str_to_double(sp, sl, &score)) {
            rdbi_fail(in, off, "a packed sorted set score that is not a number ('%.*s')", (int)(sl > 40 ? 40 : sl), sp);
            goto fail_blob;
        }
        if (zset_member(in, z, mp, ml, score, off) != OK) goto fail_blob;
    }
    rdb_str_free(&s);
    return o;
fail_blob:
    rdb_str_free(&s);
fail:
    obj_decref(o);
    return NULL;
}

/* ----------------------------------------------------------------- hashes */

static int hash_field(rdb_in *in, kobj *o, const char *f, size_t flen, const char *v, size_t vlen, uint64_t off) {
    int r = hash_set_field(o, f, flen, v, vlen);
    if (r < 0) return rdbi_fail(in, off, "out of memory");
    if (r == 0) return rdbi_fail(in, off, "duplicate hash field");
    return OK;
}

static kobj *load_hash(rdb_in *in, int type) {
    kobj *o = hash_create(0);
    if (!o) {
        rdbi_fail(in, rdbi_offset(in), "out of memory");
        return NULL;
    }
    rdb_str s, v;
    uint64_t n, off;
    if (type == RDB_TYPE_HASH) {
        if (rdbi_count(in, &n, 2, "a hash") != OK) goto fail;
        for (uint64_t i = 0; i < n; i++) {
            off = rdbi_offset(in);
            if (rdbi_string(in, &s) != OK) goto fail;
            dstr f = rdb_str_take(&s); /* the value's read may move the window */
            if (!f) {
                rdbi_fail(in, off, "out of memory");
                goto fail;
            }
            int rc = rdbi_string(in, &v);
            if (rc == OK) rc = hash_field(in, o, f, dstr_len(f), v.p, v.len, off);
            dstr_free(f);
            rdb_str_free(&v);
            if (rc != OK) goto fail;
        }
        return o;
    }
    if (read_blob(in, &s, &off) != OK) goto fail;
    size_t count;
    if (type == RDB_TYPE_HASH_ZIPMAP) {
        char why[200];
        if (zipmap_check((const unsigned char *)s.p, s.len, &count, why, sizeof why) != OK) {
            rdbi_fail(in, off, "%s", why);
            goto fail_blob;
        }
        zipmap_iter zi;
        const unsigned char *f, *val;
        size_t fl, vl;
        zipmap_iter_init(&zi, (const unsigned char *)s.p);
        while (zipmap_next(&zi, &f, &fl, &val, &vl))
            if (hash_field(in, o, (const char *)f, fl, (const char *)val, vl, off) != OK) goto fail_blob;
        rdb_str_free(&s);
        return o;
    }
    int kind = type == RDB_TYPE_HASH_LISTPACK ? 0 : 1;
    if (check_packed(in, off, &s, kind, &count) != OK) goto fail_blob;
    if (count % 2) {
        rdbi_fail(in, off, "a packed hash of %zu elements (field, value pairs)", count);
        goto fail_blob;
    }
    packed_iter it;
    packed_ele fe, ve;
    packed_iter_init(&it, (const unsigned char *)s.p, s.len, kind);
    while (packed_next(&it, &fe) && packed_next(&it, &ve)) {
        char fb[LL_STR_SIZE], vb[LL_STR_SIZE];
        size_t fl, vl;
        const char *fp = packed_str(&fe, fb, &fl), *vp = packed_str(&ve, vb, &vl);
        if (hash_field(in, o, fp, fl, vp, vl, off) != OK) goto fail_blob;
    }
    rdb_str_free(&s);
    return o;
fail_blob:
    rdb_str_free(&s);
fail:
    obj_decref(o);
    return NULL;
}

/* ---------------------------------------------------------------- streams */

/* The next listpack element of a stream node as an integer. */
static int node_int(rdb_in *in, uint64_t off, packed_iter *it, long long *v, const char *what) {
    packed_ele e;
    if (!packed_next(it, &e)) return rdbi_fail(in, off, "stream node ends before its %s", what);
    if (e.s) {
        if (!str_to_ll((const char *)e.s, e.len, v)) return rdbi_fail(in, off, "stream node %s is not an integer", what);
    } else {
        *v = e.v;
    }
    return OK;
}

static int node_str(rdb_in *in, uint64_t off, packed_iter *it, strvec *sv, size_t k, const char *what) {
    packed_ele e;
    if (!packed_next(it, &e)) return rdbi_fail(in, off, "stream node ends before its %s", what);
    sv->p[k] = packed_str(&e, sv->num[k], &sv->len[k]);
    return OK;
}

static sid id_from_be(const unsigned char *b) {
    sid id = {0, 0};
    for (int i = 0; i < 8; i++) {
        id.ms = (id.ms << 8) | b[i];
        id.seq = (id.seq << 8) | b[8 + i];
    }
    return id;
}

/* One node: its master id (the string before it) and its listpack.
 * *last is the greatest id so far (has_last: whether there is one).  The
 * master fields' strings go to mf, each entry's to ent; both point into
 * the blob or at integers formatted in their own arrays, so neither is
 * grown while pointers into it are in use. */
static int load_stream_node(rdb_in *in, stream *s, strvec *mf, strvec *ent, sid *last, int *has_last) {
    rdb_str key, lp;
    uint64_t koff = rdbi_offset(in), off;
    if (rdbi_string(in, &key) != OK) return ERR;
    if (key.len != 16) {
        rdb_str_free(&key);
        return rdbi_fail(in, koff, "a stream node key of %zu bytes (16: the master id)", key.len);
    }
    sid master = id_from_be((const unsigned char *)key.p);
    rdb_str_free(&key);
    if (read_blob(in, &lp, &off) != OK) return ERR;
    size_t count;
    int rc = ERR;
    if (check_packed(in, off, &lp, 0, &count) != OK) goto out;
    if (count == 0) {
        rdbi_fail(in, off, "an empty listpack inside a stream");
        goto out;
    }
    if (*has_last && sid_cmp(&master, last) <= 0) {
        rdbi_fail(in, off, "stream node master id %llu-%llu is not above the previous entries",
                  (unsigned long long)master.ms, (unsigned long long)master.seq);
        goto out;
    }
    packed_iter it;
    packed_iter_init(&it, (const unsigned char *)lp.p, lp.len, 0);
    long long live, deleted, nmf, zero;
    if (node_int(in, off, &it, &live, "entry count") != OK || node_int(in, off, &it, &deleted, "deleted count") != OK ||
        node_int(in, off, &it, &nmf, "master field count") != OK)
        goto out;
    /* every element takes at least one listpack byte: counts are bounded
     * by the blob, so none of these can size anything large */
    if (live < 0 || deleted < 0 || (size_t)live + (size_t)deleted > count || nmf < 1 || (size_t)nmf > count ||
        nmf > INT_MAX / 4) {
        rdbi_fail(in, off, "stream node header counts %lld live, %lld deleted, %lld fields", live, deleted, nmf);
        goto out;
    }
    if (strvec_reserve(mf, (size_t)nmf) != OK) {
        rdbi_fail(in, off, "out of memory");
        goto out;
    }
    for (long long k = 0; k < nmf; k++)
        if (node_str(in, off, &it, mf, (size_t)k, "master fields") != OK) goto out;
    if (node_int(in, off, &it, &zero, "master entry end") != OK) goto out;
    if (zero != 0) {
        rdbi_fail(in, off, "stream node master entry does not end with 0");
        goto out;
    }
    if (stream_load_node(s, &master, mf->p, mf->len, (int)nmf) != 0) {
        rdbi_fail(in, off, "out of memory");
        goto out;
    }
    long long seen_live = 0, seen_deleted = 0;
    while (seen_live + seen_deleted < live + deleted) {
        long long flags, dms, dseq, npairs, lpcount;
        if (node_int(in, off, &it, &flags, "entry flags") != OK || node_int(in, off, &it, &dms, "entry id") != OK ||
            node_int(in, off, &it, &dseq, "entry id") != OK)
            goto out;
        if (flags < 0 || flags > 3) {
            rdbi_fail(in, off, "stream entry flags %lld", flags);
            goto out;
        }
        sid id = {master.ms + (uint64_t)dms, master.seq + (uint64_t)dseq};
        if (sid_cmp(&id, &master) < 0 || (*has_last && sid_cmp(&id, last) <= 0)) {
            rdbi_fail(in, off, "stream entry id %llu-%llu out of order", (unsigned long long)id.ms,
                      (unsigned long long)id.seq);
            goto out;
        }
        int same = (flags & 2) != 0;
        if (same) {
            npairs = nmf;
        } else {
            if (node_int(in, off, &it, &npairs, "entry field count") != OK) goto out;
            if (npairs < 1 || (size_t)npairs > count || npairs > INT_MAX / 4) {
                rdbi_fail(in, off, "stream entry with %lld fields", npairs);
                goto out;
            }
        }
        if (strvec_reserve(ent, 2 * (size_t)npairs) != OK) {
            rdbi_fail(in, off, "out of memory");
            goto out;
        }
        for (long long k = 0; k < npairs; k++) {
            if (same) {
                ent->p[2 * k] = mf->p[k];
                ent->len[2 * k] = mf->len[k];
            } else if (node_str(in, off, &it, ent, 2 * (size_t)k, "entry fields") != OK) {
                goto out;
            }
            if (node_str(in, off, &it, ent, 2 * (size_t)k + 1, "entry values") != OK) goto out;
        }
        if (node_int(in, off, &it, &lpcount, "entry element count") != OK) goto out;
        if (lpcount != (same ? npairs + 3 : 2 * npairs + 4)) {
            rdbi_fail(in, off, "stream entry element count %lld does not match its %lld fields", lpcount, npairs);
            goto out;
        }
        int del = (flags & 1) != 0;
        if (stream_load_entry(s, &id, del, ent->p, ent->len, (int)npairs) != 0) {
            rdbi_fail(in, off, "out of memory");
            goto out;
        }
        if (del) seen_deleted++;
        else seen_live++;
        *last = id;
        *has_last = 1;
    }
    packed_ele extra;
    if (packed_next(&it, &extra)) {
        rdbi_fail(in, off, "stream node has elements after its last entry");
        goto out;
    }
    if (seen_live != live || seen_deleted != deleted) {
        rdbi_fail(in, off, "stream node counts %lld live and %lld deleted entries, it holds %lld and %lld", live,
                  deleted, seen_live, seen_deleted);
        goto out;
    }
    /* live == 0 is legal: XTRIM MINID can delete every live entry of a
     * node whose last (already deleted) entry is at or above the minimum,
     * and Redis keeps such a node, as stream.c does */
    rc = OK;
out:
    rdb_str_free(&lp);
    return rc;
}

static int read_id_be(rdb_in *in, sid *id) {
    unsigned char b[16];
    if (rdbi_bytes(in, b, 16) != OK) return ERR;
    *id = id_from_be(b);
    return OK;
}

static int read_id_len(rdb_in *in, sid *id) {
    uint64_t ms, seq;
    if (rdbi_len(in, &ms, NULL) != OK || rdbi_len(in, &seq, NULL) != OK) return ERR;
    id->ms = ms;
    id->seq = seq;
    return OK;
}

static int load_stream_group(rdb_in *in, stream *s, int type) {
    uint64_t off = rdbi_offset(in);
    rdb_str name;
    if (rdbi_string(in, &name) != OK) return ERR;
    dstr gname = rdb_str_take(&name);
    if (!gname) return rdbi_fail(in, off, "out of memory");
    sid last;
    uint64_t er = 0;
    if (read_id_len(in, &last) != OK || (type == RDB_TYPE_STREAM_LISTPACKS_2 && rdbi_len(in, &er, NULL) != OK)) {
        dstr_free(gname);
        return ERR;
    }
    long long entries_read =
        type == RDB_TYPE_STREAM_LISTPACKS_2 ? (long long)er : stream_estimate_entries_read(s, &last);
    int oom;
    sgroup *g = sgroup_create(s, gname, dstr_len(gname), &last, entries_read, &oom);
    dstr_free(gname);
    if (!g) return rdbi_fail(in, off, oom ? "out of memory" : "duplicate consumer group name");
    /* Groups, consumers and PELs come in the order Redis's radix trees
     * keep them (names byte by byte, ids ascending), which is the order of
     * inferkv's arrays: each one is then an append, and a file that
     * shuffles them (which neither server writes) cannot make loading
     * quadratic. */
    if (s->groups[s->ngroups - 1] != g) return rdbi_fail(in, off, "consumer groups out of order");
    uint64_t npel;
    if (rdbi_count(in, &npel, 25, "a consumer group PEL") != OK) return ERR;
    for (uint64_t i = 0; i < npel; i++) {
        uint64_t eoff = rdbi_offset(in);
        nack *n = km_calloc(sizeof *n);
        if (!n) return rdbi_fail(in, eoff, "out of memory");
        uint64_t count;
        if (read_id_be(in, &n->id) != OK || rdbi_ms(in, &n->delivery_time) != OK ||
            rdbi_len(in, &count, NULL) != OK) {
            km_free(n);
            return ERR;
        }
        n->delivery_count = count;
        if (pel_len(&g->pel) && sid_cmp(&n->id, &pel_at(&g->pel, pel_len(&g->pel) - 1)->id) <= 0) {
            km_free(n);
            return rdbi_fail(in, eoff, "consumer group PEL entries out of order or repeated");
        }
        if (pel_insert(&g->pel, n) != 0) {
            km_free(n);
            return rdbi_fail(in, eoff, "out of memory");
        }
    }
    uint64_t ncons;
    if (rdbi_count(in, &ncons, 10, "a consumer group's consumers") != OK) return ERR;
    for (uint64_t i = 0; i < ncons; i++) {
        uint64_t coff = rdbi_offset(in);
        if (rdbi_string(in, &name) != OK) return ERR;
        dstr cname = rdb_str_take(&name);
        if (!cname) return rdbi_fail(in, coff, "out of memory");
        if (sconsumer_find(g, cname, dstr_len(cname))) {
            dstr_free(cname);
            return rdbi_fail(in, coff, "duplicate consumer in a group");
        }
        sconsumer *c = sconsumer_create(g, cname, dstr_len(cname), 0);
        dstr_free(cname);
        if (!c) return rdbi_fail(in, coff, "out of memory");
        if (g->consumers[g->nconsumers - 1] != c) return rdbi_fail(in, coff, "consumers out of order");
        uint64_t cpel;
        if (rdbi_ms(in, &c->seen_time) != OK || rdbi_count(in, &cpel, 16, "a consumer PEL") != OK) return ERR;
        for (uint64_t k = 0; k < cpel; k++) {
            uint64_t eoff = rdbi_offset(in);
            sid id;
            if (read_id_be(in, &id) != OK) return ERR;
            if (pel_len(&c->pel) && sid_cmp(&id, &pel_at(&c->pel, pel_len(&c->pel) - 1)->id) <= 0)
                return rdbi_fail(in, eoff, "consumer PEL entries out of order or repeated");
            nack *n = pel_find(&g->pel, &id);
            if (!n) return rdbi_fail(in, eoff, "a consumer's pending entry is not in its group's PEL");
            if (n->consumer) return rdbi_fail(in, eoff, "a pending entry claimed by two consumers");
            n->consumer = c;
            if (pel_insert(&c->pel, n) != 0) return rdbi_fail(in, eoff, "out of memory");
        }
    }
    for (size_t i = 0; i < pel_len(&g->pel); i++)
        if (!pel_at(&g->pel, i)->consumer) return rdbi_fail(in, off, "a pending entry with no consumer");
    return OK;
}

static kobj *load_stream(rdb_in *in, int type) {
    stream *s = stream_new();
    kobj *o = s ? obj_new(OBJ_STREAM, ENC_STREAM, s) : NULL;
    if (!o) {
        stream_free(s);
        rdbi_fail(in, rdbi_offset(in), "out of memory");
        return NULL;
    }
    strvec mf = {0}, ent = {0};
    uint64_t nodes;
    sid last = {0, 0};
    int has_last = 0;
    if (rdbi_count(in, &nodes, 18, "a stream's nodes") != OK) goto fail;
    for (uint64_t i = 0; i < nodes; i++)
        if (load_stream_node(in, s, &mf, &ent, &last, &has_last) != OK) goto fail;
    strvec_free(&mf);
    strvec_free(&ent);
    uint64_t off = rdbi_offset(in), length, added;
    if (rdbi_len(in, &length, NULL) != OK) goto fail;
    if (length != s->length) {
        rdbi_fail(in, off, "stream length %llu, its nodes hold %llu live entries", (unsigned long long)length,
                  (unsigned long long)s->length);
        goto fail;
    }
    off = rdbi_offset(in);
    if (read_id_len(in, &s->last_id) != OK) goto fail;
    if (has_last && sid_cmp(&s->last_id, &last) < 0) {
        rdbi_fail(in, off, "stream last id is below its last entry");
        goto fail;
    }
    if (type == RDB_TYPE_STREAM_LISTPACKS_2) {
        if (read_id_len(in, &s->first_id) != OK || read_id_len(in, &s->max_deleted) != OK ||
            rdbi_len(in, &added, NULL) != OK)
            goto fail;
        s->entries_added = added;
    } else {
        if (!stream_edge_id(s, 0, &s->first_id)) s->first_id = (sid){0, 0};
        s->max_deleted = (sid){0, 0};
        s->entries_added = s->length;
    }
    uint64_t ngroups;
    if (rdbi_count(in, &ngroups, 5, "a stream's consumer groups") != OK) goto fail;
    for (uint64_t i = 0; i < ngroups; i++)
        if (load_stream_group(in, s, type) != OK) goto fail;
    return o;
fail:
    strvec_free(&mf);
    strvec_free(&ent);
    obj_decref(o);
    return NULL;
}

/* ------------------------------------------------------------ vector sets */

typedef struct vs_in {
    rdb_in *in;
    rdb_str cur;
    size_t pos;
    int ended; /* the empty terminator was read */
    const char *why;
} vs_in;

/* The next chunk: 1, 0 at the empty terminator, -1 on error. */
static int vs_next(vs_in *v) {
    rdb_str_free(&v->cur);
    v->pos = 0;
    uint64_t off = rdbi_offset(v->in), op;
    if (rdbi_len(v->in, &op, NULL) != OK) return -1;
    if (op != RDB_MODULE_OPCODE_STRING) {
        rdbi_fail(v->in, off, "vector set data: module opcode %llu where a string chunk belongs", (unsigned long long)op);
        return -1;
    }
    if (rdbi_string(v->in, &v->cur) != OK) return -1;
    if (v->cur.len > RDB_VSET_CHUNK) {
        rdbi_fail(v->in, off, "vector set data: a chunk of %zu bytes (at most %u)", v->cur.len, RDB_VSET_CHUNK);
        return -1;
    }
    if (v->cur.len == 0) v->ended = 1;
    return v->cur.len > 0;
}

static int vs_read(void *ud, void *p, size_t n) {
    vs_in *v = ud;
    unsigned char *out = p;
    while (n) {
        if (v->pos == v->cur.len) {
            if (v->ended) {
                v->why = "the data ends early";
                return -1;
            }
            int rc = vs_next(v);
            if (rc < 0) return -1;
            if (rc == 0) {
                v->why = "the data ends early";
                return -1;
            }
        }
        size_t take = v->cur.len - v->pos < n ? v->cur.len - v->pos : n;
        memcpy(out, v->cur.p + v->pos, take);
        out += take;
        v->pos += take;
        n -= take;
    }
    return 0;
}

static kobj *load_module(rdb_in *in, int type) {
    uint64_t off = rdbi_offset(in), id;
    if (type == RDB_TYPE_MODULE) {
        rdbi_fail(in, off, "a pre-release module value (type 6), which no module can load");
        return NULL;
    }
    if (rdbi_len(in, &id, NULL) != OK) return NULL;
    char name[10];
    unsigned ver;
    rdb_module_name(id, name, &ver);
    if (strcmp(name, RDB_VSET_MODULE_NAME) != 0 || ver != RDB_VSET_ENCVER) {
        if (!strcmp(name, RDB_VSET_MODULE_NAME))
            rdbi_fail(in, off, "a vectorset value of encoding version %u: only inferkv's version %u is readable "
                               "(Redis 8's own vector sets use version 0)", ver, RDB_VSET_ENCVER);
        else
            rdbi_fail(in, off, "a value of module type '%s' (version %u), which inferkv-server does not have",
                      name, ver);
        return NULL;
    }
    vs_in v = {in, {0}, 0, 0, NULL};
    char err[256];
    vset *s = vset_load(vs_read, &v, err, sizeof err);
    kobj *o = NULL;
    if (!s) {
        const char *why = v.why ? v.why : strncmp(err, "ERR ", 4) ? err : err + 4;
        if (!in->failed) rdbi_fail(in, off, "vector set data: %s", why);
        goto out;
    }
    if (v.pos != v.cur.len) {
        rdbi_fail(in, off, "vector set data: bytes after the end of the set");
        goto out;
    }
    if (!v.ended) {
        int rc = vs_next(&v);
        if (rc < 0) goto out;
        if (rc > 0) {
            rdbi_fail(in, off, "vector set data: bytes after the end of the set");
            goto out;
        }
    }
    uint64_t eoff = rdbi_offset(in), op;
    if (rdbi_len(in, &op, NULL) != OK) goto out;
    if (op != RDB_MODULE_OPCODE_EOF) {
        rdbi_fail(in, eoff, "vector set value does not end with the module EOF opcode");
        goto out;
    }
    if (vset_card(s) == 0) {
        rdbi_fail(in, off, "an empty vector set");
        goto out;
    }
    o = obj_vset(s);
    if (!o) rdbi_fail(in, off, "out of memory");
    else s = NULL;
out:
    if (s) vset_free(s);
    rdb_str_free(&v.cur);
    return o;
}

/* Skips a module value's items (aux data of modules we do not have). */
static int skip_module_items(rdb_in *in) {
    for (;;) {
        uint64_t off = rdbi_offset(in), op, x;
        if (rdbi_len(in, &op, NULL) != OK) return ERR;
        switch (op) {
        case RDB_MODULE_OPCODE_EOF: return OK;
        case RDB_MODULE_OPCODE_SINT:
        case RDB_MODULE_OPCODE_UINT:
            if (rdbi_len(in, &x, NULL) != OK) return ERR;
            break;
        case RDB_MODULE_OPCODE_FLOAT: {
            unsigned char b[4];
            if (rdbi_bytes(in, b, 4) != OK) return ERR;
            break;
        }
        case RDB_MODULE_OPCODE_DOUBLE: {
            double d;
            if (rdbi_binary_double(in, &d) != OK) return ERR;
            break;
        }
        case RDB_MODULE_OPCODE_STRING:
            if (rdbi_skip_string(in) != OK) return ERR;
            break;
        default: return rdbi_fail(in, off, "unknown module opcode %llu", (unsigned long long)op);
        }
    }
}

/* ------------------------------------------------------------- any value */

static kobj *load_string(rdb_in *in) {
    rdb_str s;
    if (rdbi_string(in, &s) != OK) return NULL;
    kobj *o;
    if (s.is_int) o = obj_string_ll(s.ll);
    else if (s.own) {
        o = obj_string_dstr(s.own); /* takes it */
        if (o) s.own = NULL;
    } else o = obj_string(s.p, s.len);
    rdb_str_free(&s);
    if (!o) rdbi_fail(in, rdbi_offset(in), "out of memory");
    return o;
}

static size_t value_len(const kobj *o) {
    switch (o->type) {
    case OBJ_LIST: return klist_len(o->ptr);
    case OBJ_SET: return set_len(o);
    case OBJ_ZSET: return zset_len(o->ptr);
    case OBJ_HASH: return hash_len(o);
    default: return 1; /* strings, streams (kept even when empty), vector sets */
    }
}

kobj *rdb_load_value(rdb_in *in, int type, int *empty) {
    *empty = 0;
    kobj *o;
    switch (type) {
    case RDB_TYPE_STRING: return load_string(in);
    case RDB_TYPE_LIST:
    case RDB_TYPE_LIST_ZIPLIST:
    case RDB_TYPE_LIST_QUICKLIST:
    case RDB_TYPE_LIST_QUICKLIST_2: o = load_list(in, type); break;
    case RDB_TYPE_SET:
    case RDB_TYPE_SET_INTSET: o = load_set(in, type); break;
    case RDB_TYPE_ZSET:
    case RDB_TYPE_ZSET_2:
    case RDB_TYPE_ZSET_ZIPLIST:
    case RDB_TYPE_ZSET_LISTPACK: o = load_zset(in, type); break;
    case RDB_TYPE_HASH:
    case RDB_TYPE_HASH_ZIPMAP:
    case RDB_TYPE_HASH_ZIPLIST:
    case RDB_TYPE_HASH_LISTPACK: o = load_hash(in, type); break;
    case RDB_TYPE_STREAM_LISTPACKS:
    case RDB_TYPE_STREAM_LISTPACKS_2: o = load_stream(in, type); break;
    case RDB_TYPE_MODULE:
    case RDB_TYPE_MODULE_2: o = load_module(in, type); break;
    default:
        rdbi_fail(in, rdbi_offset(in), "unknown value type %d", type);
        return NULL;
    }
    if (o && value_len(o) == 0) {
        obj_decref(o);
        *empty = 1;
        return NULL;
    }
    return o;
}

/* -------------------------------------------------------------- the file */

static int valid_value_type(unsigned t) { return t <= 7 || (t >= 9 && t <= 19); }

typedef struct key_scratch {
    char *buf;
    size_t cap;
} key_scratch;

/* The key as a dstr built in scratch memory (dict_add copies it). */
static dstr scratch_key(key_scratch *ks, const char *p, size_t len) {
    size_t need = dstr_embed_size(len);
    if (need > ks->cap) {
        char *b = km_realloc(ks->buf, need);
        if (!b) return NULL;
        ks->buf = b;
        ks->cap = need;
    }
    return dstr_embed(ks->buf, p, len);
}

static int read_aux(rdb_in *in, rdb_load_result *res) {
    rdb_str k, v;
    uint64_t off = rdbi_offset(in);
    if (rdbi_string(in, &k) != OK) return ERR;
    dstr key = rdb_str_take(&k);
    if (!key) return rdbi_fail(in, off, "out of memory");
    if (rdbi_string(in, &v) != OK) {
        dstr_free(key);
        return ERR;
    }
    if (!strcmp(key, "redis-ver") || !strcmp(key, "inferkv-ver"))
        log_msg(LL_NOTICE, "Loading RDB produced by %s version %.*s", !strcmp(key, "redis-ver") ? "Redis" : "inferkv",
                (int)(v.len > 32 ? 32 : v.len), v.p);
    else if (!strcmp(key, "ctime") && v.is_int) {
        long long age = time_ms() / 1000 - v.ll;
        log_msg(LL_NOTICE, "RDB age %lld seconds", age < 0 ? 0 : age);
    } else if (!strcmp(key, "used-mem") && v.is_int) {
        log_msg(LL_NOTICE, "RDB memory usage when created %.2f Mb", (double)v.ll / (1024 * 1024));
    }
    (void)res;
    dstr_free(key);
    rdb_str_free(&v);
    return OK;
}

int rdb_load_stream(rdb_in *in, int flags, rdb_load_result *res, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    key_scratch ks = {NULL, 0};
    kdb *dbs = NULL;
    kobj *val = NULL;
    long long now = time_ms();

    unsigned char magic[9];
    if (rdbi_bytes(in, magic, 9) != OK) goto fail;
    if (memcmp(magic, "REDIS", 5) != 0) {
        rdbi_fail(in, 0, "not an RDB file: it does not start with \"REDIS\"");
        goto fail;
    }
    int ver = 0;
    for (int i = 5; i < 9; i++) {
        if (magic[i] < '0' || magic[i] > '9') {
            rdbi_fail(in, 5, "the version after \"REDIS\" is not a number");
            goto fail;
        }
        ver = ver * 10 + (magic[i] - '0');
    }
    if (ver < 1 || ver > RDB_VERSION) {
        rdbi_fail(in, 5, "RDB format version %d: this server reads versions 1 to %d (Redis 7.0)", ver, RDB_VERSION);
        goto fail;
    }
    res->version = ver;
    dbs = db_array_new(srv.dbnum);
    if (!dbs) {
        rdbi_fail(in, 9, "out of memory creating the databases");
        goto fail;
    }
    kdb *db = &dbs[0];
    long long expire = -1, idle = -1;
    for (;;) {
        uint64_t off = rdbi_offset(in);
        unsigned type;
        in->ctx_key = NULL;
        if (rdbi_u8(in, &type) != OK) goto fail;
        if (type == RDB_OPCODE_EOF) break;
        switch (type) {
        case RDB_OPCODE_EXPIRETIME: {
            uint32_t secs;
            if (rdbi_u32le(in, &secs) != OK) goto fail;
            expire = (long long)(int32_t)secs * 1000;
            continue;
        }
        case RDB_OPCODE_EXPIRETIME_MS:
            if (rdbi_ms(in, &expire) != OK) goto fail;
            continue;
        case RDB_OPCODE_FREQ: {
            unsigned f;
            if (rdbi_u8(in, &f) != OK) goto fail;
            continue;
        }
        case RDB_OPCODE_IDLE: {
            uint64_t v;
            if (rdbi_len(in, &v, NULL) != OK) goto fail;
            idle = v > LRU_MAX ? LRU_MAX : (long long)v;
            continue;
        }
        case RDB_OPCODE_SELECTDB: {
            uint64_t id;
            if (rdbi_len(in, &id, NULL) != OK) goto fail;
            if (id >= (uint64_t)srv.dbnum) {
                rdbi_fail(in, off, "keys for database %llu, this server has %d databases (the databases option)",
                          (unsigned long long)id, srv.dbnum);
                goto fail;
            }
            db = &dbs[id];
            continue;
        }
        case RDB_OPCODE_RESIZEDB: {
            uint64_t nk, ne;
            if (rdbi_len(in, &nk, NULL) != OK || rdbi_len(in, &ne, NULL) != OK) goto fail;
            /* a hint only: never larger than the keys the file can hold */
            uint64_t rem = rdbi_remaining(in) / 4;
            if (nk > rem) nk = rem;
            if (ne > nk) ne = nk;
            if (nk > dict_size(db->keys)) dict_expand(db->keys, (size_t)nk);
            if (ne > dict_size(db->expires)) dict_expand(db->expires, (size_t)ne);
            continue;
        }
        case RDB_OPCODE_AUX:
            if (read_aux(in, res) != OK) goto fail;
            continue;
        case RDB_OPCODE_MODULE_AUX: {
            uint64_t id, when_op, when;
            if (rdbi_len(in, &id, NULL) != OK || rdbi_len(in, &when_op, NULL) != OK) goto fail;
            if (when_op != RDB_MODULE_OPCODE_UINT) {
                rdbi_fail(in, off, "module aux data without its 'when' field");
                goto fail;
            }
            if (rdbi_len(in, &when, NULL) != OK || skip_module_items(in) != OK) goto fail;
            char name[10];
            unsigned ver9;
            rdb_module_name(id, name, &ver9);
            log_msg(LL_WARNING, "RDB: skipped aux data of module '%s' (inferkv-server has no such module)", name);
            continue;
        }
        case RDB_OPCODE_FUNCTION2:
            if (rdbi_skip_string(in) != OK) goto fail;
            res->functions_skipped++;
            continue;
        case RDB_OPCODE_FUNCTION_PRE_GA:
            rdbi_fail(in, off, "functions in the pre-release format of Redis 7.0 RC");
            goto fail;
        default: break;
        }
        if (!valid_value_type(type)) {
            rdbi_fail(in, off, "unknown record type %u", type);
            goto fail;
        }
        rdb_str k;
        uint64_t koff = rdbi_offset(in);
        if (rdbi_string(in, &k) != OK) goto fail;
        dstr key = scratch_key(&ks, k.p, k.len);
        rdb_str_free(&k);
        if (!key) {
            rdbi_fail(in, koff, "out of memory");
            goto fail;
        }
        in->ctx_key = key;
        in->ctx_klen = dstr_len(key);
        in->ctx_db = db->id;
        /* The key's bucket is a cache miss in a large keyspace: ask for it
         * now, so that it arrives while the value is parsed. */
        if (db->keys->table[0] && !dict_is_rehashing(db->keys))
            __builtin_prefetch(&db->keys->table[0][dict_hash_dstr(key) & (((size_t)1 << db->keys->size_exp[0]) - 1)]);
        int empty;
        val = rdb_load_value(in, (int)type, &empty);
        if (!val) {
            if (!empty) goto fail;
            if (res->empty++ < 10) log_msg(LL_NOTICE, "RDB: skipping an empty collection (db %d)", db->id);
            expire = idle = -1;
            continue;
        }
        if (!(flags & RDB_LOAD_KEEP_EXPIRED) && expire != -1 && expire < now) {
            obj_decref(val);
            val = NULL;
            res->expired++;
            expire = idle = -1;
            continue;
        }
        dict_entry *existing;
        dict_entry *e = dict_add_raw(db->keys, key, &existing);
        if (!e) {
            rdbi_fail(in, koff, existing ? "the key appears twice" : "out of memory");
            goto fail;
        }
        e->v.val = val;
        if (idle >= 0) val->lru = (lru_clock_now() + LRU_MAX + 1 - (unsigned)idle) & LRU_MAX;
        val = NULL;
        if (expire != -1) {
            dict_entry *x = dict_add_raw(db->expires, e->key, &existing);
            if (!x) {
                rdbi_fail(in, koff, "out of memory");
                goto fail;
            }
            x->v.s64 = expire;
        }
        res->loaded++;
        expire = idle = -1;
    }
    in->ctx_key = NULL;
    if (ver >= 5) {
        uint64_t off = rdbi_offset(in);
        uint64_t computed = rdbi_crc(in);
        unsigned char b[8];
        if (rdbi_bytes(in, b, 8) != OK) goto fail;
        uint64_t stored = 0;
        for (int i = 7; i >= 0; i--) stored = (stored << 8) | b[i];
        if (stored == 0) {
            log_msg(LL_WARNING, "RDB file was saved with checksum disabled: no check performed.");
        } else if (in->checksum && stored != computed) {
            rdbi_fail(in, off, "wrong checksum: the file says %016llx, its bytes give %016llx",
                      (unsigned long long)stored, (unsigned long long)computed);
            goto fail;
        }
    }
    res->end_offset = rdbi_offset(in);
    res->dbs = dbs;
    res->ndbs = srv.dbnum;
    km_free(ks.buf);
    return OK;
fail:
    in->ctx_key = NULL;
    if (val) obj_decref(val);
    db_array_free(dbs, srv.dbnum);
    km_free(ks.buf);
    snprintf(err, errlen, "%s", in->failed ? in->err : "unknown error");
    res->dbs = NULL;
    return ERR;
}

int rdb_load_path(const char *path, int flags, rdb_load_result *res, int *missing, char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    *missing = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            *missing = 1;
            return OK;
        }
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return ERR;
    }
    rdb_in in;
    if (rdbi_init_fd(&in, fd, persist.checksum, err, errlen) != OK) {
        close(fd);
        return ERR;
    }
    int rc = rdb_load_stream(&in, flags, res, err, errlen);
    if (rc == OK && in.size != UINT64_MAX && res->end_offset < in.size)
        log_msg(LL_WARNING, "RDB: %llu bytes after the end of the data in %s were ignored",
                (unsigned long long)(in.size - res->end_offset), path);
    rdbi_release(&in);
    close(fd);
    return rc;
}
