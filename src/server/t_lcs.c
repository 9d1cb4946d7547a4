/* t_lcs.c - LCS: the longest common subsequence of two strings.
 *
 * The classic dynamic-programming table: cell (i, j) holds the LCS length
 * of the first i bytes of a and the first j bytes of b, so the table costs
 * (|a|+1) * (|b|+1) 32-bit cells.  That is transient memory a client can
 * ask for with two modest strings, so, as Redis does, it is refused when
 * it would exceed proto-max-bulk-len, and the allocation itself is
 * checked.  The match ranges (IDX) are found by walking the table back
 * from the end, which yields them last-first: Redis's order. */
#include "server.h"

#include <string.h>

/* Cell (i, j) of a table with blen+1 columns. */
#define CELL(t, i, j, blen) ((t)[(size_t)(j) + (size_t)(i) * ((size_t)(blen) + 1)])

/* Fills the table for a[0..alen) and b[0..blen). */
static void lcs_fill(uint32_t *t, const unsigned char *a, uint32_t alen, const unsigned char *b, uint32_t blen) {
    for (uint32_t i = 0; i <= alen; i++) {
        for (uint32_t j = 0; j <= blen; j++) {
            if (i == 0 || j == 0) CELL(t, i, j, blen) = 0;
            else if (a[i - 1] == b[j - 1]) CELL(t, i, j, blen) = CELL(t, i - 1, j - 1, blen) + 1;
            else {
                uint32_t up = CELL(t, i - 1, j, blen), left = CELL(t, i, j - 1, blen);
                CELL(t, i, j, blen) = up > left ? up : left;
            }
        }
    }
}

typedef struct lcs_opts {
    int len, idx, withmatchlen;
    long long minmatchlen;
} lcs_opts;

/* One match range of IDX: [[a_start, a_end], [b_start, b_end], len?]. */
static void reply_range(client *c, uint32_t as, uint32_t ae, uint32_t bs, uint32_t be, int withlen) {
    reply_array_len(c, 2 + withlen);
    reply_array_len(c, 2);
    reply_ll(c, as);
    reply_ll(c, ae);
    reply_array_len(c, 2);
    reply_ll(c, bs);
    reply_ll(c, be);
    if (withlen) reply_ll(c, (long long)(ae - as + 1));
}

/* Walks the table back from (alen, blen): writes the LCS into out (when
 * not NULL) and, with IDX, replies each maximal run of contiguous matches
 * at least minmatchlen long.  Returns the number of ranges replied. */
static long lcs_walk(client *c, const uint32_t *t, const unsigned char *a, uint32_t alen, const unsigned char *b,
                     uint32_t blen, char *out, const lcs_opts *o) {
    uint32_t i = alen, j = blen, k = CELL(t, alen, blen, blen);
    uint32_t as = alen, ae = 0, bs = 0, be = 0; /* as == alen: no open range */
    long ranges = 0;
    while (i > 0 && j > 0) {
        int emit = 0;
        if (a[i - 1] == b[j - 1]) {
            if (out) out[k - 1] = (char)a[i - 1];
            if (as == alen) {
                as = ae = i - 1;
                bs = be = j - 1;
            } else if (as == i && bs == j) {
                as--; /* the run goes on backwards */
                bs--;
            } else {
                emit = 1;
            }
            if (as == 0 || bs == 0) emit = 1; /* the walk ends here */
            k--;
            i--;
            j--;
        } else {
            if (CELL(t, i - 1, j, blen) > CELL(t, i, j - 1, blen)) i--;
            else j--;
            if (as != alen) emit = 1;
        }
        if (emit) {
            if (o->idx && (o->minmatchlen == 0 || (long long)(ae - as + 1) >= o->minmatchlen)) {
                reply_range(c, as, ae, bs, be, o->withmatchlen);
                ranges++;
            }
            as = alen;
        }
    }
    return ranges;
}

/* The bytes of a string key for LCS (empty when missing). */
static const unsigned char *lcs_bytes(kobj *o, char buf[LL_STR_SIZE], size_t *len) {
    if (!o) {
        *len = 0;
        return (const unsigned char *)"";
    }
    return (const unsigned char *)obj_str(o, buf, len);
}

/* LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
 * O(N*M) time and memory, N and M the lengths of the two strings. */
void lcs_cmd(client *c) {
    /* both keys are looked up before any option is read, as in Redis */
    kobj *oa = db_lookup_read(c, c->argv[1]);
    kobj *ob = db_lookup_read(c, c->argv[2]);
    if ((oa && oa->type != OBJ_STRING) || (ob && ob->type != OBJ_STRING)) {
        reply_error(c, "ERR The specified keys must contain string values");
        return;
    }
    lcs_opts o = {0, 0, 0, 0};
    for (int j = 3; j < c->argc; j++) {
        const dstr opt = c->argv[j];
        if (arg_is(opt, "idx")) o.idx = 1;
        else if (arg_is(opt, "len")) o.len = 1;
        else if (arg_is(opt, "withmatchlen")) o.withmatchlen = 1;
        else if (arg_is(opt, "minmatchlen") && j + 1 < c->argc) {
            if (arg_ll(c, c->argv[++j], &o.minmatchlen) != OK) return;
            if (o.minmatchlen < 0) o.minmatchlen = 0;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    if (o.len && o.idx) {
        reply_error(c, "ERR If you want both the length and indexes, please just use IDX.");
        return;
    }
    char abuf[LL_STR_SIZE], bbuf[LL_STR_SIZE];
    size_t al, bl;
    const unsigned char *a = lcs_bytes(oa, abuf, &al), *b = lcs_bytes(ob, bbuf, &bl);
    if (al >= UINT32_MAX - 1 || bl >= UINT32_MAX - 1) {
        reply_error(c, "ERR String too long for LCS");
        return;
    }
    uint32_t alen = (uint32_t)al, blen = (uint32_t)bl;
    /* both below 2^32, so the product fits 64 bits */
    unsigned long long cells = ((unsigned long long)alen + 1) * ((unsigned long long)blen + 1);
    unsigned long long bytes = cells * sizeof(uint32_t);
    uint32_t *t = NULL;
    if (bytes / sizeof(uint32_t) == cells && bytes < SIZE_MAX) {
        if (bytes > (unsigned long long)srv.proto_max_bulk_len) {
            reply_error(c, "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
            return;
        }
        t = km_malloc((size_t)bytes);
    }
    if (!t) {
        reply_error(c, "ERR Insufficient memory, failed allocating transient memory for LCS");
        return;
    }
    lcs_fill(t, a, alen, b, blen);
    uint32_t total = CELL(t, alen, blen, blen);
    if (o.idx) {
        reply_map_len(c, 2);
        reply_bulk_cstr(c, "matches");
        void *node = reply_defer_len(c);
        long ranges = lcs_walk(c, t, a, alen, b, blen, NULL, &o);
        reply_bulk_cstr(c, "len");
        reply_ll(c, total);
        reply_set_deferred_array(c, node, ranges);
    } else if (o.len) {
        reply_ll(c, total);
    } else {
        dstr out = dstr_newlen(NULL, total);
        if (!out) {
            km_free(t);
            reply_error(c, "ERR out of memory");
            return;
        }
        lcs_walk(c, t, a, alen, b, blen, out, &o);
        reply_bulk_dstr(c, out);
        dstr_free(out);
    }
    km_free(t);
}
