/* vcmd.h - the V* command front-end shared by inferkv-server and inferkv.so.
 *
 * Redis 8's vector-set commands (VADD, VSIM, VREM, VCARD, VDIM, VEMB,
 * VGETATTR, VSETATTR, VINFO, VLINKS, VISMEMBER, VRANDMEMBER, VRANGE) are
 * implemented once, here, over libvset: argument grammar, the order in
 * which Redis checks things (some commands validate every argument before
 * looking at the key, others answer a missing key before parsing), error
 * texts, and reply shapes in RESP2 and RESP3.  The two front-ends only
 * supply
 *   - a reply writer (vc_reply): how to put a value on the wire;
 *   - key access (vc_keyops): find the key's set, create it, delete it,
 *     and learn that it changed (WATCH, dirty counter, notifications,
 *     propagation);
 * so that their grammar, errors and replies cannot drift apart.  No server
 * or module type appears here.
 *
 * Threads: vc_exec runs on the front-end's main thread.  When the
 * front-end allows it (vc_ctx.can_defer), VSIM and VADD ... CAS hand back a
 * job instead of answering: vc_job_run does the slow part on any thread
 * (the search; VADD's neighbour search), vc_job_finish answers on the main
 * thread.  A job holds a reference on its set (vset_retain), so a DEL in
 * between frees nothing under it. */
#ifndef INFERKV_VCMD_H
#define INFERKV_VCMD_H

#include "vset.h"

#include <stddef.h>
#include <stdint.h>

typedef struct vc_arg {
    const char *ptr;
    size_t len;
} vc_arg;

/* How a front-end writes replies.  Errors are whole lines without the
 * leading '-' ("ERR ...", "WRONGTYPE ..."). */
typedef struct vc_reply {
    void *c;
    int resp3;
    void (*array)(void *c, long n);
    void (*map)(void *c, long pairs); /* RESP2: flat array of 2 * pairs */
    void (*bulk)(void *c, const char *p, size_t n);
    void (*simple)(void *c, const char *s);
    void (*integer)(void *c, long long v);
    void (*dbl)(void *c, double d);     /* RESP2: bulk string */
    void (*boolean)(void *c, int b);    /* RESP2: :1 / :0 */
    void (*null)(void *c);              /* RESP2: $-1 */
    void (*null_array)(void *c);        /* RESP2: *-1 */
    void (*error)(void *c, const char *line);
    /* Optional: non-zero once the client is gone (closed, or over its
     * output limit), so that a long reply (VRANDMEMBER -1000000000) stops
     * instead of holding the main thread for nothing.  NULL: never. */
    int (*aborted)(void *c);
} vc_reply;

/* What each V* command needs of the keyspace, for the key in argv[1]. */
enum { VC_KEY_MISSING = 0, VC_KEY_FOUND = 1, VC_KEY_WRONGTYPE = -1 };
typedef struct vc_keyops {
    /* The key's set (borrowed) in *s: VC_KEY_FOUND, VC_KEY_MISSING, or
     * VC_KEY_WRONGTYPE (vcmd answers the WRONGTYPE error).  write: the
     * command may modify it (lookup for write, expiry as a write). */
    int (*lookup)(void *ctx, int write, vset **s);
    /* Stores a new set under the key, taking it: 0, or -1 when out of
     * memory (the set is freed by vcmd then). */
    int (*create)(void *ctx, vset *s);
    /* The set lost its last element: delete the key (which drops the
     * key's reference to the set). */
    void (*remove)(void *ctx);
    /* The set changed (event: "vadd", "vrem", "vsetattr"): dirty
     * counter, keyspace notification, propagation. */
    void (*changed)(void *ctx, const char *event);
} vc_keyops;
/* WATCH: a lookup with write set must, as in Redis (which signals every
 * key a module opens for writing), invalidate WATCH on the key when the
 * command ends, even when nothing changed (VREM of a missing element). */

typedef struct vc_job vc_job;

typedef struct vc_ctx {
    const vc_keyops *ops;
    void *key_ctx;        /* passed to ops */
    vc_reply *r;
    int can_defer;        /* VSIM / VADD CAS may return VC_DEFERRED */
    uint64_t rand;        /* a fresh random value: VRANDMEMBER's draws and
                           * the seed of a set VADD creates */
    vc_job *job;          /* out: the deferred job */
} vc_ctx;

enum { VC_DONE = 0, VC_DEFERRED = 1, VC_UNKNOWN = -1 };

/* Runs the V* command argv[0..argc) (argv[0] its name, any case).
 * VC_DONE: the reply has been written.  VC_DEFERRED: nothing written yet,
 * ctx->job is to be run and finished.  VC_UNKNOWN: not a V* command. */
int vc_exec(const vc_arg *argv, int argc, vc_ctx *ctx);

/* The slow part of a deferred command; any thread, once. */
void vc_job_run(vc_job *j);
/* Main thread, after vc_job_run: writes the reply through r (and, for
 * VADD CAS, inserts through ops/key_ctx, which must refer to the same key
 * as when the job was made).  Frees the job. */
void vc_job_finish(vc_job *j, const vc_keyops *ops, void *key_ctx, vc_reply *r);
/* Drops a job that will not be finished (client gone): frees it; call
 * after vc_job_run returned, or instead of running it. */
void vc_job_free(vc_job *j);

/* ---- command table facts, for COMMAND INFO and the module's registration */

typedef struct vc_command {
    const char *name;     /* upper case, as Redis registers them */
    int arity;
    const char *flags;    /* Redis module flag string: "write deny-oom", "readonly fast", ... */
    const char *summary;
    const char *since;
    int write;
} vc_command;
/* The table, terminated by a NULL name. */
const vc_command *vc_commands(void);
const vc_command *vc_lookup(const char *name, size_t len);

/* A double as Redis 8 prints its replies (d2string): an integer when it
 * is one within +-2^62, else the fewest significant digits that read back
 * as d, plain decimal for moderate exponents, d.ddde+-X otherwise; "nan",
 * "inf", "-inf", "-0".  Redis 7's %.17g differs in the last digits, so both
 * front-ends print V* doubles with this.  Returns the length (cap >= 32). */
int vc_format_double(char *out, size_t cap, double d);

/* Whether expr[0..len) compiles as a VSIM FILTER expression: 0, or -1
 * with the error line VSIM would answer for it.  For commands that run a
 * VSIM later (INFER.RAG, after embedding its question) and want to refuse
 * a bad expression before doing the work.  Any thread. */
int vc_filter_check(const char *expr, size_t len, char *err, size_t errlen);

/* Writes a vector set's contents into a digest-like 64-bit value (DEBUG
 * DIGEST-VALUE): names, vectors and attributes, order-independent. */
uint64_t vc_digest(vset *s);

#endif
