/* stream.c - the stream data structure: entries ordered by 128-bit ids
 * (ms-seq), consumer groups and their pending-entries lists.
 *
 * Entries live in nodes.  A node is one packed byte buffer: first the
 * field names of the node's first ("master") entry, then one record per
 * entry
 *     flags u8 | id as two varints relative to the master id |
 *     [npairs varint, (len varint, field, len varint, value) ...]     or
 *     (len varint, value) ...   when the fields are the master's
 * plus an array of record offsets for binary search and backward walks.
 * Appending is a copy to the end of the last node; a range walk is two
 * binary searches and then a sequential read.  Deleting only sets a flag
 * (as Redis does): a node goes away when its last live entry does.  The
 * node array is sorted by master id, so finding the node of an id is a
 * binary search too.
 *
 * Why emulate listpack sizes: Redis closes a node when it holds 100
 * entries or its listpack would reach 4096 bytes, and approximate trimming
 * removes whole nodes only, so the reply of XTRIM ~ (and XINFO STREAM's
 * radix-tree-keys) depends on where nodes end.  Each node therefore keeps
 * the byte size the same entries would have in a Redis listpack (a few
 * integer-size formulas, below) and closes exactly when Redis would.
 *
 * PELs are id-sorted arrays of nack pointers that may start past index 0,
 * so acknowledging in delivery order is O(1) and inserting a new delivery
 * (always the greatest id, in the common case) is an append. */
#include "stream.h"

#include <assert.h>

#include <string.h>

/* Redis's defaults; CONFIG stream-node-max-bytes / -entries set them */
long long stream_node_max_bytes = 4096, stream_node_max_entries = 100;
/* a listpack's size limit, which a node never passes whatever the setting */
#define NODE_BYTES_CAP (1LL << 30)
#define F_DELETED 1
#define F_SAMEFIELDS 2

struct snode {
    sid master;
    uint32_t n;      /* entries, deleted included */
    uint32_t live;   /* entries not deleted */
    uint32_t *off;   /* record offsets in buf (a node stays under 4 GB: it
                        closes at 4 KB and one entry is at most 1 GB) */
    uint32_t offcap;
    unsigned char *buf;
    size_t used, cap;
    size_t lpbytes;  /* size of the same node as a Redis listpack */
    uint32_t mfields;   /* master fields: the first entry's field names */
    size_t mfields_end; /* they occupy buf[0 .. mfields_end) */
};

/* ------------------------------------------------------------------ ids */

int sid_cmp(const sid *a, const sid *b) {
    if (a->ms != b->ms) return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq) return a->seq < b->seq ? -1 : 1;
    return 0;
}

int sid_incr(sid *id) {
    if (id->seq == UINT64_MAX) {
        if (id->ms == UINT64_MAX) return -1;
        id->ms++;
        id->seq = 0;
    } else {
        id->seq++;
    }
    return 0;
}

int sid_decr(sid *id) {
    if (id->seq == 0) {
        if (id->ms == 0) return -1;
        id->ms--;
        id->seq = UINT64_MAX;
    } else {
        id->seq--;
    }
    return 0;
}

/* Decimal digits of v at p; returns the count.  (Ids are formatted for
 * every entry a read returns: snprintf was a visible share of XREAD.) */
static int u64_digits(char *p, uint64_t v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

int sid_format(const sid *id, char *buf) {
    int n = u64_digits(buf, id->ms);
    buf[n++] = '-';
    n += u64_digits(buf + n, id->seq);
    buf[n] = '\0';
    return n;
}

/* ------------------------------------------------- listpack size model */

static size_t lp_int_len(int64_t v) {
    if (v >= 0 && v <= 127) return 1;
    if (v >= -4096 && v <= 4095) return 2;
    if (v >= -32768 && v <= 32767) return 3;
    if (v >= -8388608 && v <= 8388607) return 4;
    if (v >= INT32_MIN && v <= INT32_MAX) return 5;
    return 9;
}

static size_t lp_backlen(size_t l) {
    if (l <= 127) return 1;
    if (l < 16383) return 2;
    if (l < 2097151) return 3;
    if (l < 268435455) return 4;
    return 5;
}

static size_t lp_elem_int(int64_t v) {
    size_t l = lp_int_len(v);
    return l + lp_backlen(l);
}

/* A listpack stores a string that is a canonical int64 as an integer. */
static int lp_str_is_int(const char *p, size_t len, int64_t *out) {
    if (len == 0 || len > 20) return 0;
    if (len == 1 && p[0] == '0') {
        *out = 0;
        return 1;
    }
    size_t i = 0;
    int neg = 0;
    if (p[0] == '-') {
        neg = 1;
        i = 1;
        if (len == 1) return 0;
    }
    if (p[i] < '1' || p[i] > '9') return 0;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return 0;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)v;
    }
    return 1;
}

static size_t lp_elem_str(const char *p, size_t len) {
    int64_t v;
    if (lp_str_is_int(p, len, &v)) return lp_elem_int(v);
    size_t l = len < 64 ? 1 + len : len < 4096 ? 2 + len : 5 + len;
    return l + lp_backlen(l);
}

/* ----------------------------------------------------------- the nodes */

/* Unsigned LEB128: 7 bits a byte, high bit set on all but the last. */
static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void varint_put(unsigned char **p, uint64_t v) {
    unsigned char *q = *p;
    while (v >= 0x80) {
        *q++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *q++ = (unsigned char)v;
    *p = q;
}

static uint64_t varint_get(const unsigned char **p) {
    const unsigned char *q = *p;
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        unsigned char b = *q++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    *p = q;
    return v;
}

/* An id relative to the node's master: the ms difference, then the seq
 * difference when the ms is the master's (never negative) or else the seq
 * itself (normally 0), so both stay one byte in the common cases. */
static sid decode_id(const snode *nd, const unsigned char **p) {
    sid id;
    uint64_t dms = varint_get(p), s = varint_get(p);
    id.ms = nd->master.ms + dms;
    id.seq = dms == 0 ? nd->master.seq + s : s;
    return id;
}

static sid node_id_at(const snode *nd, uint32_t i) {
    const unsigned char *r = nd->buf + nd->off[i] + 1;
    return decode_id(nd, &r);
}

static int node_deleted_at(const snode *nd, uint32_t i) { return nd->buf[nd->off[i]] & F_DELETED; }

/* First entry index with id >= *id (nd->n if none). */
static uint32_t node_lower_bound(const snode *nd, const sid *id) {
    uint32_t lo = 0, hi = nd->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        sid m = node_id_at(nd, mid);
        if (sid_cmp(&m, id) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void node_free(snode *nd) {
    if (!nd) return;
    km_free(nd->off);
    km_free(nd->buf);
    km_free(nd);
}

static int node_reserve(snode *nd, size_t add) {
    if (nd->used + add <= nd->cap) return 0;
    size_t cap = nd->cap ? nd->cap : 256;
    while (cap < nd->used + add) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    unsigned char *b = km_realloc(nd->buf, cap);
    if (!b) return -1;
    nd->buf = b;
    nd->cap = cap;
    return 0;
}

/* A node that will take no more entries gives back its growth slack. */
static void node_shrink(snode *nd) {
    if (nd->cap > nd->used && nd->used) {
        unsigned char *b = km_realloc(nd->buf, nd->used);
        if (b) {
            nd->buf = b;
            nd->cap = nd->used;
        }
    }
    if (nd->offcap > nd->n && nd->n) {
        uint32_t *o = km_realloc(nd->off, nd->n * sizeof *o);
        if (o) {
            nd->off = o;
            nd->offcap = nd->n;
        }
    }
}

/* A node whose master fields are the fields of the entry about to come:
 * strs[stride * i] for i < npairs (stride 2 skips the values; a loaded
 * node's master fields come alone, stride 1). */
static snode *node_new(const sid *master, const char *const *strs, const size_t *lens, int npairs, int stride) {
    snode *nd = km_calloc(sizeof *nd);
    if (!nd) return NULL;
    nd->master = *master;
    size_t need = 0;
    for (int i = 0; i < npairs; i++) need += varint_len(lens[stride * i]) + lens[stride * i];
    if (node_reserve(nd, need) != 0) {
        node_free(nd);
        return NULL;
    }
    nd->lpbytes = 6 + 1 + lp_elem_int(0) /* count, set below */ + lp_elem_int(0) /* deleted */ +
                  lp_elem_int(npairs) + lp_elem_int(0) /* master terminator */;
    unsigned char *w = nd->buf;
    for (int i = 0; i < npairs; i++) {
        varint_put(&w, lens[stride * i]);
        if (lens[stride * i]) memcpy(w, strs[stride * i], lens[stride * i]);
        w += lens[stride * i];
        nd->lpbytes += lp_elem_str(strs[stride * i], lens[stride * i]);
    }
    nd->used = (size_t)(w - nd->buf);
    nd->mfields = (uint32_t)npairs;
    nd->mfields_end = nd->used;
    return nd;
}

static int node_same_fields(const snode *nd, const char *const *strs, const size_t *lens, int npairs) {
    if (nd->mfields != (uint32_t)npairs) return 0;
    const unsigned char *p = nd->buf;
    for (int i = 0; i < npairs; i++) {
        uint64_t l = varint_get(&p);
        if (l != lens[2 * i] || (l && memcmp(p, strs[2 * i], l) != 0)) return 0;
        p += l;
    }
    return 1;
}

/* Appends the entry record; the node has room by Redis's rules. */
static int node_append(snode *nd, const sid *id, const char *const *strs, const size_t *lens, int npairs) {
    if (nd->n == nd->offcap) {
        uint32_t cap = nd->offcap ? nd->offcap * 2 : 8;
        uint32_t *o = km_realloc(nd->off, cap * sizeof *o);
        if (!o) return -1;
        nd->off = o;
        nd->offcap = cap;
    }
    int same = node_same_fields(nd, strs, lens, npairs);
    uint64_t dms = id->ms - nd->master.ms;
    uint64_t dseq = dms == 0 ? id->seq - nd->master.seq : id->seq;
    size_t need = 1 + varint_len(dms) + varint_len(dseq) + (same ? 0 : varint_len((uint64_t)npairs));
    for (int i = 0; i < 2 * npairs; i++)
        if (!same || i % 2 == 1) need += varint_len(lens[i]) + lens[i];
    if (nd->used + need > UINT32_MAX || node_reserve(nd, need) != 0) return -1;

    /* The listpack bytes the same entry takes in Redis. */
    size_t lp = lp_elem_int(same ? F_SAMEFIELDS : 0) + lp_elem_int((int64_t)(id->ms - nd->master.ms)) +
                lp_elem_int((int64_t)(id->seq - nd->master.seq));
    if (!same) lp += lp_elem_int(npairs);
    for (int i = 0; i < npairs; i++) {
        if (!same) lp += lp_elem_str(strs[2 * i], lens[2 * i]);
        lp += lp_elem_str(strs[2 * i + 1], lens[2 * i + 1]);
    }
    lp += lp_elem_int(npairs + 3 + (same ? 0 : npairs + 1));
    nd->lpbytes += lp + lp_elem_int(nd->live + 1) - lp_elem_int(nd->live);

    nd->off[nd->n] = (uint32_t)nd->used;
    unsigned char *w = nd->buf + nd->used;
    *w++ = same ? F_SAMEFIELDS : 0;
    varint_put(&w, dms);
    varint_put(&w, dseq);
    if (!same) varint_put(&w, (uint64_t)npairs);
    for (int i = 0; i < 2 * npairs; i++) {
        if (same && i % 2 == 0) continue;
        varint_put(&w, lens[i]);
        if (lens[i]) memcpy(w, strs[i], lens[i]);
        w += lens[i];
    }
    nd->used = (size_t)(w - nd->buf);
    nd->n++;
    nd->live++;
    return 0;
}

/* Marks entry i deleted, keeping the listpack size model in step. */
static void node_mark_deleted(snode *nd, uint32_t i) {
    uint32_t deleted = nd->n - nd->live;
    nd->buf[nd->off[i]] |= F_DELETED;
    nd->lpbytes += lp_elem_int(nd->live - 1) - lp_elem_int(nd->live);
    nd->lpbytes += lp_elem_int(deleted + 1) - lp_elem_int(deleted);
    nd->live--;
}

static void entry_view(const snode *nd, uint32_t i, sentry *e) {
    const unsigned char *r = nd->buf + nd->off[i];
    unsigned char flags = *r++;
    e->id = decode_id(nd, &r);
    if (flags & F_SAMEFIELDS) {
        e->npairs = nd->mfields;
        e->mfields = nd->buf;
    } else {
        e->npairs = (uint32_t)varint_get(&r);
        e->mfields = NULL;
    }
    e->p = r;
}

void sentry_next_pair(sentry *e, const char **f, size_t *flen, const char **v, size_t *vlen) {
    const unsigned char **fp = e->mfields ? &e->mfields : &e->p;
    *flen = (size_t)varint_get(fp);
    *f = (const char *)*fp;
    *fp += *flen;
    *vlen = (size_t)varint_get(&e->p);
    *v = (const char *)e->p;
    e->p += *vlen;
}

/* ---------------------------------------------------------- the stream */

stream *stream_new(void) { return km_calloc(sizeof(stream)); }

static void pel_free_array(pelvec *p) {
    km_free(p->a);
    memset(p, 0, sizeof *p);
}

static void group_free(sgroup *g) {
    if (!g) return;
    for (size_t i = 0; i < pel_len(&g->pel); i++) km_free(pel_at(&g->pel, i));
    pel_free_array(&g->pel);
    for (size_t i = 0; i < g->nconsumers; i++) {
        pel_free_array(&g->consumers[i]->pel);
        dstr_free(g->consumers[i]->name);
        km_free(g->consumers[i]);
    }
    km_free(g->consumers);
    dstr_free(g->name);
    km_free(g);
}

void stream_free(stream *s) {
    if (!s) return;
    for (size_t i = 0; i < s->nnodes; i++) node_free(s->nodes[i]);
    km_free(s->nodes);
    for (size_t i = 0; i < s->ngroups; i++) group_free(s->groups[i]);
    km_free(s->groups);
    km_free(s);
}

size_t stream_node_count(const stream *s) { return s->nnodes; }

/* Byte d of node i's master id as a Redis radix-tree key (big-endian ms,
 * then big-endian seq). */
static unsigned key_byte(const stream *s, size_t i, int d) {
    uint64_t v = d < 8 ? s->nodes[i]->master.ms : s->nodes[i]->master.seq;
    return (unsigned)(v >> (56 - 8 * (d % 8))) & 0xff;
}

/* Nodes of the compressed radix tree over keys [lo, hi) below depth d: a
 * vertex with other than one child is a node of its own; a run of
 * one-child vertices is one (compressed) node. */
static size_t rax_count(const stream *s, size_t lo, size_t hi, int d, int parent_one_child) {
    if (d == 16) return 1; /* the leaf that marks the key */
    size_t deg = 0;
    for (size_t i = lo; i < hi; deg++) {
        unsigned b = key_byte(s, i, d);
        while (i < hi && key_byte(s, i, d) == b) i++;
    }
    size_t n = deg != 1 || !parent_one_child ? 1 : 0;
    for (size_t i = lo; i < hi;) {
        size_t j = i;
        unsigned b = key_byte(s, i, d);
        while (j < hi && key_byte(s, j, d) == b) j++;
        n += rax_count(s, i, j, d + 1, deg == 1);
        i = j;
    }
    return n;
}

size_t stream_rax_nodes(const stream *s) {
    if (s->nnodes == 0) return 1; /* the empty root */
    return rax_count(s, 0, s->nnodes, 0, 0);
}

/* Index of the last node whose master id is <= *id; -1 if none. */
static long node_index_for(const stream *s, const sid *id) {
    size_t lo = 0, hi = s->nnodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sid_cmp(&s->nodes[mid]->master, id) <= 0) lo = mid + 1;
        else hi = mid;
    }
    return (long)lo - 1;
}

static void remove_node_at(stream *s, size_t i) {
    node_free(s->nodes[i]);
    memmove(s->nodes + i, s->nodes + i + 1, (s->nnodes - i - 1) * sizeof *s->nodes);
    s->nnodes--;
}

int stream_append(stream *s, const sid *id, const char *const *strs, const size_t *lens, int npairs) {
    for (int i = 0; i < 2 * npairs; i++)
        if (lens[i] > UINT32_MAX) return -1;
    snode *last = s->nnodes ? s->nodes[s->nnodes - 1] : NULL;
    if (last) {
        size_t total = 0;
        for (int i = 0; i < 2 * npairs; i++) total += lens[i];
        long long max_bytes = stream_node_max_bytes;
        if (max_bytes <= 0 || max_bytes > NODE_BYTES_CAP) max_bytes = NODE_BYTES_CAP;
        if (last->lpbytes + total >= (size_t)max_bytes ||
            (stream_node_max_entries > 0 && last->n >= stream_node_max_entries)) {
            node_shrink(last);
            last = NULL;
        }
    }
    int fresh = 0;
    if (!last) {
        if (s->nnodes == s->capnodes) {
            size_t cap = s->capnodes ? s->capnodes * 2 : 4;
            snode **n = km_realloc(s->nodes, cap * sizeof *n);
            if (!n) return -1;
            s->nodes = n;
            s->capnodes = cap;
        }
        last = node_new(id, strs, lens, npairs, 2);
        if (!last) return -1;
        fresh = 1;
    }
    if (node_append(last, id, strs, lens, npairs) != 0) {
        if (fresh) node_free(last);
        return -1;
    }
    if (fresh) s->nodes[s->nnodes++] = last;
    s->length++;
    s->entries_added++;
    s->last_id = *id;
    if (s->length == 1) s->first_id = *id;
    return 0;
}

static int find_entry(const stream *s, const sid *id, long *ni, uint32_t *ei) {
    long i = node_index_for(s, id);
    if (i < 0) return 0;
    const snode *nd = s->nodes[i];
    uint32_t k = node_lower_bound(nd, id);
    if (k >= nd->n) return 0;
    sid got = node_id_at(nd, k);
    if (sid_cmp(&got, id) != 0 || node_deleted_at(nd, k)) return 0;
    *ni = i;
    *ei = k;
    return 1;
}

int stream_has(const stream *s, const sid *id) {
    long ni;
    uint32_t ei;
    return find_entry(s, id, &ni, &ei);
}

int stream_delete(stream *s, const sid *id) {
    long ni;
    uint32_t ei;
    if (!find_entry(s, id, &ni, &ei)) return 0;
    snode *nd = s->nodes[ni];
    node_mark_deleted(nd, ei);
    s->length--;
    if (nd->live == 0) remove_node_at(s, (size_t)ni);
    return 1;
}

int stream_edge_id(const stream *s, int last, sid *out) {
    siter it;
    sid lo = {0, 0}, hi = {UINT64_MAX, UINT64_MAX};
    sentry e;
    siter_start(&it, s, &lo, &hi, last);
    if (!siter_next(&it, &e)) return 0;
    *out = e.id;
    return 1;
}

long long stream_trim(stream *s, int strategy, unsigned long long maxlen, const sid *minid, int approx,
                      long long limit) {
    if (strategy == TRIM_NONE) return 0;
    long long deleted = 0;
    while (s->nnodes > 0) {
        if (strategy == TRIM_MAXLEN && s->length <= maxlen) break;
        snode *nd = s->nodes[0];
        long long entries = nd->live;
        if (limit && deleted + entries > limit) break;
        int remove;
        if (strategy == TRIM_MAXLEN) {
            remove = s->length - (uint64_t)entries >= maxlen;
        } else {
            sid lastid = node_id_at(nd, nd->n - 1); /* deleted entries count here */
            remove = sid_cmp(&lastid, minid) < 0;
        }
        if (remove) {
            s->length -= (uint64_t)entries;
            deleted += entries;
            remove_node_at(s, 0);
            continue;
        }
        if (approx) break;
        /* Mark entries inside this node, oldest first. */
        for (uint32_t i = 0; i < nd->n; i++) {
            int stop;
            if (strategy == TRIM_MAXLEN) {
                stop = s->length <= maxlen;
            } else {
                sid cur = node_id_at(nd, i);
                stop = sid_cmp(&cur, minid) >= 0;
            }
            if (stop) break;
            if (!node_deleted_at(nd, i)) {
                node_mark_deleted(nd, i);
                s->length--;
                deleted++;
            }
        }
        break;
    }
    if (deleted && !stream_edge_id(s, 0, &s->first_id)) s->first_id = (sid){0, 0};
    return deleted;
}

/* -------------------------------------------------------------- walking */

void siter_start(siter *it, const stream *s, const sid *start, const sid *end, int rev) {
    memset(it, 0, sizeof *it);
    it->s = s;
    it->start = *start;
    it->end = *end;
    it->rev = rev;
    if (s->nnodes == 0 || sid_cmp(start, end) > 0) {
        it->done = 1;
        return;
    }
    if (!rev) {
        long i = node_index_for(s, start);
        if (i < 0) i = 0;
        it->node = (size_t)i;
        it->idx = node_lower_bound(s->nodes[i], start);
    } else {
        long i = node_index_for(s, end);
        if (i < 0) {
            it->done = 1;
            return;
        }
        it->node = (size_t)i;
        sid after = *end;
        if (sid_incr(&after) != 0) it->idx = s->nodes[i]->n;
        else it->idx = node_lower_bound(s->nodes[i], &after);
    }
}

int siter_next(siter *it, sentry *e) {
    const stream *s = it->s;
    while (!it->done) {
        if (!it->rev) {
            if (it->node >= s->nnodes) break;
            const snode *nd = s->nodes[it->node];
            if (it->idx >= nd->n) {
                it->node++;
                it->idx = 0;
                continue;
            }
            uint32_t i = (uint32_t)it->idx++;
            sid id = node_id_at(nd, i);
            if (sid_cmp(&id, &it->end) > 0) break;
            if (node_deleted_at(nd, i) || sid_cmp(&id, &it->start) < 0) continue;
            entry_view(nd, i, e);
            return 1;
        }
        if (it->idx == 0) {
            if (it->node == 0) break;
            it->node--;
            it->idx = s->nodes[it->node]->n;
            continue;
        }
        const snode *nd = s->nodes[it->node];
        uint32_t i = (uint32_t)--it->idx;
        sid id = node_id_at(nd, i);
        if (sid_cmp(&id, &it->start) < 0) break;
        if (node_deleted_at(nd, i) || sid_cmp(&id, &it->end) > 0) continue;
        entry_view(nd, i, e);
        return 1;
    }
    it->done = 1;
    return 0;
}

/* ------------------------------------------------------------------ PELs */

size_t pel_len(const pelvec *p) { return p->n; }
nack *pel_at(const pelvec *p, size_t i) { return p->a[p->start + i]; }

size_t pel_lower_bound(const pelvec *p, const sid *id) {
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sid_cmp(&p->a[p->start + mid]->id, id) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

nack *pel_find(const pelvec *p, const sid *id) {
    size_t i = pel_lower_bound(p, id);
    if (i < p->n && sid_cmp(&p->a[p->start + i]->id, id) == 0) return p->a[p->start + i];
    return NULL;
}

/* Inserting or removing moves whichever side of the position is shorter
 * (the slack before `start` takes the front side).  A backlog acked in
 * order behind a few entries that stay pending (a stuck consumer's) is
 * removed near the front of the group's PEL; moving the whole tail each
 * time made acknowledging N entries cost O(N^2).  Removals far from both
 * ends (many consumers each acking only their own, interleaved entries)
 * still cost O(N): a tree would fix that (Redis uses a radix tree). */
int pel_reserve(pelvec *p, size_t extra) {
    if (p->start + p->n + extra <= p->cap) return 0;
    if (p->n + extra <= p->cap) { /* the room is there, before start */
        memmove(p->a, p->a + p->start, p->n * sizeof *p->a);
        p->start = 0;
        return 0;
    }
    if (extra > SIZE_MAX / sizeof *p->a - p->n) return -1;
    size_t cap = p->cap * 2 > p->n + extra ? p->cap * 2 : p->n + extra;
    nack **a = km_malloc(cap * sizeof *a);
    if (!a) return -1;
    if (p->n) memcpy(a, p->a + p->start, p->n * sizeof *a);
    km_free(p->a);
    p->a = a;
    p->cap = cap;
    p->start = 0;
    return 0;
}

int pel_insert(pelvec *p, nack *n) {
    size_t pos = pel_lower_bound(p, &n->id);
    if (p->start > 0 && pos < p->n - pos) {
        p->start--;
        nack **base = p->a + p->start;
        memmove(base, base + 1, pos * sizeof *base);
        base[pos] = n;
        p->n++;
        return 0;
    }
    if (p->start + p->n == p->cap) {
        if (p->start > 0) {
            memmove(p->a, p->a + p->start, p->n * sizeof *p->a);
            p->start = 0;
        } else {
            size_t cap = p->cap ? p->cap * 2 : 4;
            nack **a = km_realloc(p->a, cap * sizeof *a);
            if (!a) return -1;
            p->a = a;
            p->cap = cap;
        }
    }
    nack **base = p->a + p->start;
    memmove(base + pos + 1, base + pos, (p->n - pos) * sizeof *base);
    base[pos] = n;
    p->n++;
    return 0;
}

void pel_remove(pelvec *p, const sid *id) {
    size_t pos = pel_lower_bound(p, id);
    if (pos >= p->n || sid_cmp(&p->a[p->start + pos]->id, id) != 0) return;
    nack **base = p->a + p->start;
    if (pos < p->n - pos - 1) {
        memmove(base + 1, base, pos * sizeof *base);
        p->start++;
    } else {
        memmove(base + pos, base + pos + 1, (p->n - pos - 1) * sizeof *base);
    }
    p->n--;
    if (p->n == 0) p->start = 0;
}

/* ------------------------------------------------- groups and consumers */

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    size_t m = alen < blen ? alen : blen;
    int r = m ? memcmp(a, b, m) : 0;
    if (r) return r;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Groups and consumers are kept sorted by name (as Redis's radix trees
 * list them); these find a name or the place it would go. */
static size_t group_pos(const stream *s, const char *name, size_t len, int *found) {
    size_t lo = 0, hi = s->ngroups;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const dstr gn = s->groups[mid]->name;
        int r = name_cmp(gn, dstr_len(gn), name, len);
        if (r == 0) {
            *found = 1;
            return mid;
        }
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static size_t consumer_pos(const sgroup *g, const char *name, size_t len, int *found) {
    size_t lo = 0, hi = g->nconsumers;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const dstr cn = g->consumers[mid]->name;
        int r = name_cmp(cn, dstr_len(cn), name, len);
        if (r == 0) {
            *found = 1;
            return mid;
        }
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

sgroup *sgroup_find(const stream *s, const char *name, size_t len) {
    int found;
    size_t i = group_pos(s, name, len, &found);
    return found ? s->groups[i] : NULL;
}

sgroup *sgroup_create(stream *s, const char *name, size_t len, const sid *last, long long entries_read,
                      int *oom) {
    int found;
    size_t pos = group_pos(s, name, len, &found);
    *oom = 0;
    if (found) return NULL;
    *oom = 1;
    if (s->ngroups == s->capgroups) {
        size_t cap = s->capgroups ? s->capgroups * 2 : 2;
        sgroup **a = km_realloc(s->groups, cap * sizeof *a);
        if (!a) return NULL;
        s->groups = a;
        s->capgroups = cap;
    }
    sgroup *g = km_calloc(sizeof *g);
    if (!g) return NULL;
    g->name = dstr_newlen(name, len);
    if (!g->name) {
        km_free(g);
        return NULL;
    }
    g->last_id = *last;
    g->entries_read = entries_read;
    memmove(s->groups + pos + 1, s->groups + pos, (s->ngroups - pos) * sizeof *s->groups);
    s->groups[pos] = g;
    s->ngroups++;
    *oom = 0;
    return g;
}

int sgroup_destroy(stream *s, const char *name, size_t len) {
    int found;
    size_t pos = group_pos(s, name, len, &found);
    if (!found) return 0;
    group_free(s->groups[pos]);
    memmove(s->groups + pos, s->groups + pos + 1, (s->ngroups - pos - 1) * sizeof *s->groups);
    s->ngroups--;
    return 1;
}

sconsumer *sconsumer_find(const sgroup *g, const char *name, size_t len) {
    int found;
    size_t i = consumer_pos(g, name, len, &found);
    return found ? g->consumers[i] : NULL;
}

sconsumer *sconsumer_prepare(sgroup *g, const char *name, size_t len, long long now_ms) {
    if (g->nconsumers == g->capconsumers) {
        size_t cap = g->capconsumers ? g->capconsumers * 2 : 4;
        sconsumer **a = km_realloc(g->consumers, cap * sizeof *a);
        if (!a) return NULL;
        g->consumers = a;
        g->capconsumers = cap;
    }
    sconsumer *c = km_calloc(sizeof *c);
    if (!c) return NULL;
    c->name = dstr_newlen(name, len);
    if (!c->name) {
        km_free(c);
        return NULL;
    }
    c->seen_time = now_ms;
    return c;
}

void sconsumer_insert(sgroup *g, sconsumer *c) {
    int found;
    size_t pos = consumer_pos(g, c->name, dstr_len(c->name), &found);
    assert(!found && g->nconsumers < g->capconsumers); /* sconsumer_prepare made the room */
    memmove(g->consumers + pos + 1, g->consumers + pos, (g->nconsumers - pos) * sizeof *g->consumers);
    g->consumers[pos] = c;
    g->nconsumers++;
}

void sconsumer_discard(sconsumer *c) {
    if (!c) return;
    assert(pel_len(&c->pel) == 0); /* never in a group */
    pel_free_array(&c->pel);
    dstr_free(c->name);
    km_free(c);
}

sconsumer *sconsumer_create(sgroup *g, const char *name, size_t len, long long now_ms) {
    sconsumer *c = sconsumer_find(g, name, len);
    if (c) return c;
    if (!(c = sconsumer_prepare(g, name, len, now_ms))) return NULL;
    sconsumer_insert(g, c);
    return c;
}

size_t sconsumer_delete(sgroup *g, sconsumer *c) {
    int found;
    size_t pos = consumer_pos(g, c->name, dstr_len(c->name), &found);
    if (!found || g->consumers[pos] != c) return 0;
    size_t pending = pel_len(&c->pel);
    for (size_t i = 0; i < pending; i++) {
        nack *n = pel_at(&c->pel, i);
        pel_remove(&g->pel, &n->id);
        km_free(n);
    }
    pel_free_array(&c->pel);
    dstr_free(c->name);
    km_free(c);
    memmove(g->consumers + pos, g->consumers + pos + 1, (g->nconsumers - pos - 1) * sizeof *g->consumers);
    g->nconsumers--;
    return pending;
}

/* --------------------------------------------------------- copy, memory */

static snode *node_dup(const snode *src) {
    snode *nd = km_malloc(sizeof *nd);
    if (!nd) return NULL;
    *nd = *src;
    nd->off = km_malloc((src->offcap ? src->offcap : 1) * sizeof *nd->off);
    nd->buf = km_malloc(src->cap ? src->cap : 1);
    if (!nd->off || !nd->buf) {
        km_free(nd->off);
        km_free(nd->buf);
        km_free(nd);
        return NULL;
    }
    if (src->n) memcpy(nd->off, src->off, src->n * sizeof *nd->off);
    if (src->used) memcpy(nd->buf, src->buf, src->used);
    return nd;
}

static sgroup *group_dup(const sgroup *src) {
    sgroup *g = km_calloc(sizeof *g);
    if (!g) return NULL;
    g->name = dstr_dup(src->name);
    g->last_id = src->last_id;
    g->entries_read = src->entries_read;
    if (!g->name) goto oom;
    for (size_t i = 0; i < src->nconsumers; i++) {
        const sconsumer *sc = src->consumers[i];
        sconsumer *c = sconsumer_create(g, sc->name, dstr_len(sc->name), sc->seen_time);
        if (!c) goto oom;
    }
    for (size_t i = 0; i < pel_len(&src->pel); i++) {
        const nack *sn = pel_at(&src->pel, i);
        nack *n = km_malloc(sizeof *n);
        if (!n) goto oom;
        *n = *sn;
        n->consumer = sconsumer_find(g, sn->consumer->name, dstr_len(sn->consumer->name));
        if (pel_insert(&g->pel, n) != 0) {
            km_free(n);
            goto oom;
        }
        if (pel_insert(&n->consumer->pel, n) != 0) goto oom;
    }
    return g;
oom:
    group_free(g);
    return NULL;
}

stream *stream_dup(const stream *src) {
    stream *s = stream_new();
    if (!s) return NULL;
    s->length = src->length;
    s->last_id = src->last_id;
    s->first_id = src->first_id;
    s->max_deleted = src->max_deleted;
    s->entries_added = src->entries_added;
    if (src->nnodes) {
        s->nodes = km_calloc(src->nnodes * sizeof *s->nodes);
        if (!s->nodes) goto oom;
        s->capnodes = src->nnodes;
        for (size_t i = 0; i < src->nnodes; i++) {
            s->nodes[i] = node_dup(src->nodes[i]);
            if (!s->nodes[i]) goto oom;
            s->nnodes = i + 1;
        }
    }
    if (src->ngroups) {
        s->groups = km_calloc(src->ngroups * sizeof *s->groups);
        if (!s->groups) goto oom;
        s->capgroups = src->ngroups;
        for (size_t i = 0; i < src->ngroups; i++) {
            s->groups[i] = group_dup(src->groups[i]);
            if (!s->groups[i]) goto oom;
            s->ngroups = i + 1;
        }
    }
    return s;
oom:
    stream_free(s);
    return NULL;
}

size_t stream_memory(const stream *s) {
    size_t m = sizeof *s + s->capnodes * sizeof(snode *) + s->capgroups * sizeof(sgroup *);
    for (size_t i = 0; i < s->nnodes; i++) {
        const snode *nd = s->nodes[i];
        m += sizeof *nd + nd->cap + nd->offcap * sizeof(uint32_t);
    }
    for (size_t i = 0; i < s->ngroups; i++) {
        const sgroup *g = s->groups[i];
        m += sizeof *g + dstr_alloc_size(g->name) + g->pel.cap * sizeof(nack *) + g->pel.n * sizeof(nack) +
             g->capconsumers * sizeof(sconsumer *);
        for (size_t k = 0; k < g->nconsumers; k++)
            m += sizeof(sconsumer) + dstr_alloc_size(g->consumers[k]->name) +
                 g->consumers[k]->pel.cap * sizeof(nack *);
    }
    return m;
}

/* ----------------------------------------------------------- persistence */

void stream_node_info(const stream *s, size_t i, snode_info *out) {
    const snode *nd = s->nodes[i];
    out->master = nd->master;
    out->n = nd->n;
    out->live = nd->live;
    out->mfields = nd->mfields;
}

void stream_node_master_fields(const stream *s, size_t i, sentry *e) {
    const snode *nd = s->nodes[i];
    e->id = nd->master;
    e->npairs = nd->mfields;
    e->mfields = nd->buf;
    e->p = NULL;
}

void sentry_next_master_field(sentry *e, const char **f, size_t *flen) {
    *flen = (size_t)varint_get(&e->mfields);
    *f = (const char *)e->mfields;
    e->mfields += *flen;
}

void stream_node_entry(const stream *s, size_t i, uint32_t k, sentry *e, int *flags) {
    const snode *nd = s->nodes[i];
    *flags = nd->buf[nd->off[k]] & (F_DELETED | F_SAMEFIELDS);
    entry_view(nd, k, e);
}

int stream_load_node(stream *s, const sid *master, const char *const *fields, const size_t *lens, int nfields) {
    for (int i = 0; i < nfields; i++)
        if (lens[i] > UINT32_MAX) return -1;
    if (s->nnodes == s->capnodes) {
        size_t cap = s->capnodes ? s->capnodes * 2 : 4;
        snode **n = km_realloc(s->nodes, cap * sizeof *n);
        if (!n) return -1;
        s->nodes = n;
        s->capnodes = cap;
    }
    snode *nd = node_new(master, fields, lens, nfields, 1);
    if (!nd) return -1;
    if (s->nnodes) node_shrink(s->nodes[s->nnodes - 1]);
    s->nodes[s->nnodes++] = nd;
    return 0;
}

int stream_load_entry(stream *s, const sid *id, int deleted, const char *const *strs, const size_t *lens,
                      int npairs) {
    if (!s->nnodes) return -1;
    snode *nd = s->nodes[s->nnodes - 1];
    for (int i = 0; i < 2 * npairs; i++)
        if (lens[i] > UINT32_MAX) return -1;
    if (nd->n == UINT32_MAX || node_append(nd, id, strs, lens, npairs) != 0) return -1;
    if (deleted) node_mark_deleted(nd, nd->n - 1);
    else s->length++;
    return 0;
}
