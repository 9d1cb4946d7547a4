/* mainthread.c - running module code on Redis's main thread, from any
 * thread, inside a module context whose writes are propagated.
 *
 * Engine threads must not touch the keyspace; when they have something
 * for it (STREAM pieces, INFER.RAG's question vector) they ask for a
 * main-thread callback with RedisModule_EventLoopAddOneShot.  That
 * callback runs with no module context around it, and in Redis 7.0 a
 * write made there through a detached context (RedisModule_Call with "!"
 * replicating an XADD, or a lazily expired key's DEL during a read) stays
 * queued in the server's propagation list: the next beforeSleep finds it
 * there and the server asserts (blocked.c, also_propagate.numops == 0) as
 * soon as a replica or the AOF makes propagation live.  So the one-shot
 * only arms a 0 ms module timer, and the work runs in the timer's
 * callback: a real module context, whose end flushes what the work
 * propagated.  (RedisModule_ThreadSafeContextLock is no way out: the main
 * thread already holds the lock there, and taking it from the engine
 * thread would stall that thread behind the server and deadlock shutdown,
 * which joins engine threads while holding it.) */
#include "mod.h"

#include <stdlib.h>

typedef struct hop {
    mod_main_fn fn;
    void *arg;
} hop;

/* main thread, inside a module timer's context */
static void in_timer(RedisModuleCtx *ctx, void *data) {
    hop *h = data;
    mod_main_fn fn = h->fn;
    void *arg = h->arg;
    free(h);
    fn(ctx, arg);
}

/* main thread, outside any module context: only hands over to a timer */
static void in_oneshot(void *data) { RedisModule_CreateTimer(g_mod.dctx, 0, in_timer, data); }

int mod_run_on_main(mod_main_fn fn, void *arg) {
    hop *h = infer_malloc(sizeof *h);
    if (!h) return -1;
    h->fn = fn;
    h->arg = arg;
    if (RedisModule_EventLoopAddOneShot(in_oneshot, h) != REDISMODULE_OK) {
        free(h);
        return -1;
    }
    return 0;
}
