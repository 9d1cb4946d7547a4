/* stream.h - the stream structure (stream.c) behind the stream commands
 * (t_stream.c): entries ordered by a 128-bit id, kept in nodes of up to
 * 100 entries, plus consumer groups with their pending-entries lists.
 *
 * Node boundaries follow Redis's rule (a node closes at 100 entries,
 * deleted ones included, or when its listpack would reach 4096 bytes: the
 * settings below), so that approximate trimming (MAXLEN ~ / MINID ~), which
 * removes whole nodes only, trims exactly what redis-server trims. */
#ifndef INFERKV_STREAM_H
#define INFERKV_STREAM_H

#include "core.h"

#include <stdint.h>

/* Where a node closes, as CONFIG stream-node-max-bytes (0: only the
 * listpack limit, 1 GiB) and stream-node-max-entries (0: no limit) set it;
 * a change applies to nodes opened or appended to from then on. */
extern long long stream_node_max_bytes, stream_node_max_entries;

typedef struct sid {
    uint64_t ms, seq;
} sid;

int sid_cmp(const sid *a, const sid *b);
int sid_incr(sid *id); /* OK, or ERR at the maximum id */
int sid_decr(sid *id); /* OK, or ERR at 0-0 */
/* Formats "ms-seq" into buf (at least SID_STR_SIZE bytes); returns length. */
#define SID_STR_SIZE 44
int sid_format(const sid *id, char *buf);

typedef struct snode snode;

/* One pending (delivered, not acknowledged) entry of a group.  The same
 * nack sits in the group's PEL and in its consumer's PEL. */
typedef struct sconsumer sconsumer;
typedef struct nack {
    sid id;
    long long delivery_time; /* unix ms */
    unsigned long long delivery_count;
    sconsumer *consumer;
} nack;

/* A PEL: nacks sorted by id.  Acknowledging the oldest entry (the common
 * case) only moves `start`. */
typedef struct pelvec {
    nack **a;
    size_t start, n, cap;
} pelvec;

struct sconsumer {
    dstr name;
    long long seen_time;
    pelvec pel;
};

typedef struct sgroup {
    dstr name;
    sid last_id;
    long long entries_read; /* -1: unknown */
    pelvec pel;
    sconsumer **consumers; /* sorted by name (bytes) */
    size_t nconsumers, capconsumers;
} sgroup;

typedef struct stream {
    snode **nodes; /* sorted by master id */
    size_t nnodes, capnodes;
    uint64_t length;
    sid last_id;     /* the last id ever generated */
    sid first_id;    /* the first live entry (recorded) */
    sid max_deleted; /* the greatest id removed by XDEL */
    uint64_t entries_added;
    sgroup **groups; /* sorted by name (bytes) */
    size_t ngroups, capgroups;
} stream;

/* A borrowed view of one entry: its id and field/value pairs, read in
 * order with sentry_next_pair (which consumes the view). */
typedef struct sentry {
    sid id;
    uint32_t npairs;
    const unsigned char *p;       /* next value, or field when inline */
    const unsigned char *mfields; /* next shared field name; NULL: inline */
} sentry;

void sentry_next_pair(sentry *e, const char **f, size_t *flen, const char **v, size_t *vlen);

/* Walks live entries with start <= id <= end, forward or backward.  The
 * stream must not change during the walk. */
typedef struct siter {
    const stream *s;
    sid start, end;
    int rev;
    size_t node; /* current node index */
    size_t idx;  /* next entry in it (backward: one past) */
    int done;
} siter;
void siter_start(siter *it, const stream *s, const sid *start, const sid *end, int rev);
int siter_next(siter *it, sentry *e);

stream *stream_new(void);
void stream_free(stream *s);
stream *stream_dup(const stream *s);
size_t stream_memory(const stream *s);
size_t stream_node_count(const stream *s);
/* What Redis's XINFO STREAM calls radix-tree-nodes: the node count of a
 * compressed radix tree holding the nodes' master ids (16-byte keys). */
size_t stream_rax_nodes(const stream *s);

/* Total bytes of fields and values at or above which one entry is refused
 * ("Elements are too large to be stored"), as Redis's listpack limit. */
#define STREAM_ENTRY_MAX_BYTES ((size_t)1 << 30)
/* Appends an entry with id (greater than every id in s, checked by the
 * caller); pairs alternate field, value (2*npairs strings).  Updates
 * length, last_id, first_id, entries_added.  OK or ERR (OOM). */
int stream_append(stream *s, const sid *id, const char *const *strs, const size_t *lens, int npairs);
/* Deletes the entry with id: 1 if it was there (live), else 0. */
int stream_delete(stream *s, const sid *id);
/* Whether a live entry with id exists. */
int stream_has(const stream *s, const sid *id);
/* The first (last=0) or last live id; 0 if the stream is empty. */
int stream_edge_id(const stream *s, int last, sid *out);

enum { TRIM_NONE = 0, TRIM_MAXLEN = 1, TRIM_MINID = 2 };
/* Redis's trimming: whole nodes from the head while allowed, then (exact
 * only) entries inside the next node.  limit 0: no limit.  Returns the
 * number of entries removed. */
long long stream_trim(stream *s, int strategy, unsigned long long maxlen, const sid *minid,
                      int approx, long long limit);

/* Persistence (rdb_save.c, rdb_load.c): nodes exactly as they are,
 * deleted entries included, so that a dump keeps Redis's node boundaries
 * (each node is one listpack in the file). */
typedef struct snode_info {
    sid master;
    uint32_t n;       /* entries, deleted included */
    uint32_t live;
    uint32_t mfields; /* the master entry's field count */
} snode_info;
void stream_node_info(const stream *s, size_t i, snode_info *out);
/* The master fields of node i, read with sentry_next_master_field. */
void stream_node_master_fields(const stream *s, size_t i, sentry *e);
void sentry_next_master_field(sentry *e, const char **f, size_t *flen);
/* Entry k of node i (deleted or not); *flags: 1 deleted, 2 same fields as
 * the master (Redis's flag bits). */
void stream_node_entry(const stream *s, size_t i, uint32_t k, sentry *e, int *flags);
/* Loading: opens a new last node with these master fields, then appends
 * entries to it as they were (ids increasing, checked by the caller).
 * Only length changes; the caller sets the ids and counters.  0 or -1
 * (OOM, or a string over 4 GB). */
int stream_load_node(stream *s, const sid *master, const char *const *fields, const size_t *lens, int nfields);
int stream_load_entry(stream *s, const sid *id, int deleted, const char *const *strs, const size_t *lens,
                      int npairs);

/* t_stream.c: a group's entries_read for last id `id` when it can be
 * known, else -1 (what XGROUP CREATE and loading old dumps set). */
long long stream_estimate_entries_read(const stream *s, const sid *id);

/* Consumer groups. */
sgroup *sgroup_find(const stream *s, const char *name, size_t len);
/* NULL when it exists (*oom = 0) or on OOM (*oom = 1). */
sgroup *sgroup_create(stream *s, const char *name, size_t len, const sid *last, long long entries_read,
                      int *oom);
int sgroup_destroy(stream *s, const char *name, size_t len); /* 1 if it existed */
sconsumer *sconsumer_find(const sgroup *g, const char *name, size_t len);
sconsumer *sconsumer_create(sgroup *g, const char *name, size_t len, long long now_ms); /* NULL: OOM */
/* Creation in two steps, for a command that must not fail halfway: the
 * allocations (a consumer not yet in g, and room in g for it; NULL when
 * out of memory), then sconsumer_insert, which cannot fail (name must be
 * absent from g), or sconsumer_discard if it was not needed. */
sconsumer *sconsumer_prepare(sgroup *g, const char *name, size_t len, long long now_ms);
void sconsumer_insert(sgroup *g, sconsumer *c);
void sconsumer_discard(sconsumer *c);
/* Removes the consumer and its pending entries; returns how many. */
size_t sconsumer_delete(sgroup *g, sconsumer *c);

size_t pel_len(const pelvec *p);
nack *pel_at(const pelvec *p, size_t i);
size_t pel_lower_bound(const pelvec *p, const sid *id); /* first index with id >= *id */
nack *pel_find(const pelvec *p, const sid *id);
int pel_insert(pelvec *p, nack *n); /* OK or ERR (OOM); id must be absent */
/* Room for extra more inserts, so that they cannot fail: 0, or -1 (OOM). */
int pel_reserve(pelvec *p, size_t extra);
void pel_remove(pelvec *p, const sid *id);

#endif
