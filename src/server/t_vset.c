/* t_vset.c - vector sets: Redis 8's V* commands in inferkv-server.
 *
 * A vector set is a key whose value is a libvset set (OBJ_VSET: TYPE says
 * "vectorset", OBJECT ENCODING "raw", as Redis says for its module types).
 * The commands themselves - grammar, the order of checks, error texts and
 * reply shapes - are written once in libvcmd (src/vcmd/), which inferkv.so
 * shares; this file is the server's half of that contract:
 *
 *   - a reply writer over reply.c (RESP2 flattens maps and writes doubles
 *     as bulk strings, exactly as for every other command);
 *   - key access over db.c: lookups with lazy expiry and hit/miss counts,
 *     creation with db_add ("new"), deletion of a set whose last element
 *     went (db_delete, then "del");
 *   - what a write owes the rest of the server: WATCH (db_signal_modified)
 *     and keyspace notifications.
 *
 * WATCH: as in Redis, where a module key opened for writing is signalled
 * when it is closed, VADD, VREM and VSETATTR invalidate WATCH once they
 * have looked the key up, even when they change nothing (VREM of a missing
 * element).
 *
 * Notifications: Redis's vector sets send none.  inferkv sends "vadd",
 * "vrem" and "vsetattr" in the module class ('d', part of 'A'): that is the
 * class in which inferkv.so's events reach subscribers of a stock Redis,
 * so the two front-ends agree, and a subscriber to the generic class 'g'
 * is not sent events of a type it never asked for.  The VREM that empties
 * a set also sends "del" (generic), as emptying any other collection does.
 *
 * Memory: libvset allocates through km_* (vset_server_init), so vector
 * sets count in used_memory, maxmemory eviction sees them and MEMORY USAGE
 * is vset_memory, the bytes the allocator really handed out.
 *
 * Threads: everything runs on the event loop for now (vc_ctx.can_defer 0).
 * libvcmd can hand VSIM and VADD ... CAS back as a job to run on another
 * thread; run_job() is where that will plug in (see there). */
#include "server.h"
#include "vcmd.h"

#include <math.h>
#include <string.h>

int vset_force_single_thread; /* CONFIG vset-force-single-threaded-execution */

void vset_server_init(void) {
    /* km_* have the exact signatures libvset asks for, and count real
     * allocated bytes (malloc_usable_size), which is what used_memory is. */
    static const vset_allocator a = {km_malloc, km_realloc, km_free, km_usable, km_malloc_at, km_realloc_at};
    vset_set_allocator(&a);
}

/* ------------------------------------------------------------ replies */

static void r_array(void *c, long n) { reply_array_len(c, n); }
static void r_map(void *c, long pairs) { reply_map_len(c, pairs); }
static void r_bulk(void *c, const char *p, size_t n) { reply_bulk(c, p, n); }
static void r_simple(void *c, const char *s) { reply_status(c, s); }
static void r_integer(void *c, long long v) { reply_ll(c, v); }
static void r_bool(void *c, int b) { reply_bool(c, b); }
static void r_null(void *c) { reply_null(c); }
static void r_null_array(void *c) { reply_null_array(c); }
static void r_error(void *c, const char *line) { reply_error(c, line); }
/* A client over its output limit is closed asap: a long reply stops. */
static int r_aborted(void *c) { return (((client *)c)->flags & CF_CLOSE_ASAP) != 0; }

static void r_double(void *vc, double d) {
    client *c = vc;
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

/* --------------------------------------------------------- key access */

/* What libvcmd's callbacks need: the key is always argv[1]. */
typedef struct vkey {
    client *c;
    dstr key;
    int write_opened; /* looked up for writing: WATCH is touched at the end */
    int signalled;    /* db_signal_modified already done */
    int removed;      /* the last element went and the key with it */
} vkey;

static int vk_lookup(void *ctx, int write, vset **s) {
    vkey *k = ctx;
    kobj *o;
    if (write) {
        k->write_opened = 1;
        o = db_lookup_write(k->c, k->key);
    } else {
        o = db_lookup_read(k->c, k->key);
    }
    if (!o) return VC_KEY_MISSING;
    if (o->type != OBJ_VSET) return VC_KEY_WRONGTYPE;
    *s = o->ptr;
    return VC_KEY_FOUND;
}

static int vk_create(void *ctx, vset *s) {
    vkey *k = ctx;
    kobj *o = obj_vset(s);
    if (!o) return -1;
    if (db_add(k->c->db, k->key, o) != OK) {
        o->ptr = NULL; /* libvcmd frees the set itself on failure */
        obj_decref(o);
        return -1;
    }
    k->signalled = 1; /* db_add signalled WATCH and sent "new" */
    return 0;
}

static void vk_remove(void *ctx) {
    vkey *k = ctx;
    if (db_delete(k->c->db, k->key)) k->removed = 1;
}

static void vk_changed(void *ctx, const char *event) {
    vkey *k = ctx;
    db_signal_modified(k->c->db, k->key);
    k->signalled = 1;
    notify_keyspace_event(NOTIFY_MODULE, event, k->key, k->c->db->id);
}

static const vc_keyops keyops = {
    .lookup = vk_lookup, .create = vk_create, .remove = vk_remove, .changed = vk_changed};

/* After the command: the bookkeeping that must follow the whole of it. */
static void vk_close(vkey *k) {
    if (k->write_opened && !k->signalled) db_signal_modified(k->c->db, k->key);
    /* after the "vrem" that emptied the set, as SREM then "del" */
    if (k->removed) notify_keyspace_event(NOTIFY_GENERIC, "del", k->key, k->c->db->id);
}

/* A job libvcmd handed back (VSIM, VADD CAS).  With can_defer 0 there is
 * none; if one comes, it runs here, on the loop.  Running it elsewhere
 * means: block_client(c, ...), vc_job_run on a worker thread, block_post
 * a completion, and on the loop vc_job_finish with a vkey for the same db
 * and key (or vc_job_free when the client went away meanwhile); the job
 * holds a reference on its set, so a DEL in between frees nothing under
 * it. */
static void run_job(vc_job *j, vkey *k, vc_reply *r) {
    vc_job_run(j);
    vc_job_finish(j, &keyops, k, r);
}

/* ------------------------------------------------------------ commands */

/* One handler for the thirteen commands (libvcmd dispatches on argv[0]):
 *
 * VADD key [REDUCE dim] (FP32 blob | VALUES n v1..vn) element [CAS]
 *      [NOQUANT | Q8 | BIN] [EF build-ef] [SETATTR json] [M numlinks]
 *                                      O(log N) per element (HNSW insert)
 * VSIM key (ELE element | FP32 blob | VALUES n v1..vn) [WITHSCORES]
 *      [WITHATTRIBS] [COUNT n] [EPSILON d] [EF ef] [FILTER expr]
 *      [FILTER-EF fef] [TRUTH] [NOTHREAD]   O(log N) (TRUTH, FILTER: up to N)
 * VREM key element                     O(log N): neighbours are relinked
 * VCARD key, VDIM key, VINFO key       O(1)
 * VEMB key element [RAW]               O(1)
 * VLINKS key element [WITHSCORES]      O(M * levels)
 * VSETATTR key element json            O(1)
 * VGETATTR key element                 O(1)
 * VISMEMBER key element                O(1)
 * VRANDMEMBER key [count]              O(count)
 * VRANGE key start end [count]         O(log N + count)
 */
void vset_cmd(client *c) {
    vc_arg stack[16], *argv = stack;
    if (c->argc > (int)(sizeof stack / sizeof stack[0])) {
        /* VALUES takes one argument per component: up to 65536 and more */
        argv = km_malloc(sizeof *argv * (size_t)c->argc);
        if (!argv) {
            reply_error(c, "ERR out of memory");
            return;
        }
    }
    for (int i = 0; i < c->argc; i++) {
        argv[i].ptr = c->argv[i];
        argv[i].len = dstr_len(c->argv[i]);
    }
    vkey k = {.c = c, .key = c->argv[1]};
    vc_reply r = {.c = c, .resp3 = c->resp != 2, .array = r_array, .map = r_map, .bulk = r_bulk,
                  .simple = r_simple, .integer = r_integer, .dbl = r_double, .boolean = r_bool,
                  .null = r_null, .null_array = r_null_array, .error = r_error, .aborted = r_aborted};
    /* Nothing is deferred yet: every command completes on the loop (and
     * must inside EXEC, or with vset-force-single-threaded-execution).
     * The random value seeds VRANDMEMBER and a new set's level draws. */
    vc_ctx x = {.ops = &keyops, .key_ctx = &k, .r = &r, .can_defer = 0, .rand = rand_u64()};
    int rc = vc_exec(argv, c->argc, &x);
    if (rc == VC_DEFERRED) run_job(x.job, &k, &r);
    else if (rc == VC_UNKNOWN) reply_errorf(c, "ERR unknown command '%.128s'", c->argv[0]);
    vk_close(&k);
    if (argv != stack) km_free(argv);
}

/* ------------------------------------------------------------ restore */

typedef struct argv_in {
    dstr *argv;
    int argc, i;
    size_t pos;
} argv_in;

static int argv_read(void *ud, void *p, size_t n) {
    argv_in *in = ud;
    unsigned char *out = p;
    while (n) {
        if (in->i >= in->argc) return -1;
        size_t len = dstr_len(in->argv[in->i]);
        if (in->pos == len) {
            in->i++;
            in->pos = 0;
            continue;
        }
        size_t take = len - in->pos < n ? len - in->pos : n;
        memcpy(out, in->argv[in->i] + in->pos, take);
        out += take;
        in->pos += take;
        n -= take;
    }
    return 0;
}

/* INFER.VSETRESTORE key chunk [chunk ...]
 * Creates key from vset_save's bytes (the chunks concatenated): what an
 * AOF rewrite without RDB preamble writes for a vector set, as inferkv.so
 * does (src/module/vsets.c), so either reads the other's files.  The bytes
 * are checked as hostile, as an RDB's are.  O(N) in the bytes. */
void vset_restore_cmd(client *c) {
    if (db_lookup(c->db, c->argv[1], LOOKUP_WRITE)) {
        reply_error(c, "BUSYKEY Target key name already exists.");
        return;
    }
    argv_in in = {c->argv + 2, c->argc - 2, 0, 0};
    char err[256];
    vset *s = vset_load(argv_read, &in, err, sizeof err);
    const char *bad = s ? NULL : err;
    int rest = 0;
    for (int i = in.i; s && i < in.argc; i++) rest |= dstr_len(in.argv[i]) > (i == in.i ? in.pos : 0);
    if (s && rest) bad = "ERR vector set data: bytes after the end";
    else if (s && vset_card(s) == 0) bad = "ERR vector set data: an empty set";
    kobj *o = bad ? NULL : obj_vset(s);
    if (!bad && !o) bad = "ERR out of memory";
    if (!bad && db_add(c->db, c->argv[1], o) != OK) {
        obj_decref(o); /* frees the set */
        s = NULL;
        bad = "ERR out of memory";
    }
    if (bad) {
        if (s && !o) vset_free(s);
        if (!strncmp(bad, "ERR ", 4)) reply_error(c, bad);
        else reply_errorf(c, "ERR vector set data: %s", bad);
        return;
    }
    notify_keyspace_event(NOTIFY_GENERIC, "restore", c->argv[1], c->db->id);
    reply_ok(c);
}
