/* fault.c - INFER.DEBUG ALLOC-FAIL: an allocation failure injected into one
 * command of inferkv.so, for the sweeps through Redis with the module
 * (tests/fault/sweep_server.py --redis), as DEBUG ALLOC-FAIL does in
 * inferkv-server.
 *
 *   INFER.DEBUG ALLOC-FAIL n [ID client-id]   the n-th allocation of the
 *                                             next INFER.* or V* command of
 *                                             this client (or client-id)
 *                                             fails
 *   INFER.DEBUG ALLOC-FAIL STATUS             [fired, allocations, site]
 *
 * The allocations counted are the module's and its libraries' (libinfer,
 * libinfercmd, libvcmd, libvset): all go through libinfer's seam
 * (infer_set_alloc_hook; libvset's allocator asks it too, see vsets.c).
 * The window is the command's own callback (mod_fault_enter / _leave in
 * module.c's trampolines); what the command leaves to later callbacks (a
 * RAG's retrieval, the reply of a generation) runs outside it.  Registered
 * only when the module is loaded with infer-debug yes: a client must not
 * reach failure paths on demand in production. */
#include "mod.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static struct {
    _Atomic uint64_t armed_client;
    long armed_n;
    _Atomic long countdown, calls;
    const void *_Atomic site;
    int fired;
    long last_calls;
    char last_site[160];
} F;

static int hook(size_t bytes, const void *site, void *ud) {
    (void)bytes, (void)ud;
    long n = atomic_load(&F.countdown);
    if (n <= 0) return 1;
    atomic_fetch_add(&F.calls, 1);
    if (atomic_fetch_sub(&F.countdown, 1) != 1) return 1;
    atomic_store(&F.site, site);
    return 0;
}

int mod_fault_enter(RedisModuleCtx *ctx) {
    uint64_t armed = atomic_load_explicit(&F.armed_client, memory_order_relaxed);
    if (!armed || RedisModule_IsKeysPositionRequest(ctx) || RedisModule_GetClientId(ctx) != armed) return 0;
    atomic_store(&F.armed_client, 0);
    atomic_store(&F.site, NULL);
    atomic_store(&F.calls, 0);
    atomic_store(&F.countdown, F.armed_n);
    infer_set_alloc_hook(hook, NULL);
    return 1;
}

void mod_fault_leave(void) {
    infer_set_alloc_hook(NULL, NULL);
    atomic_store(&F.countdown, 0);
    const void *site = atomic_load(&F.site);
    F.fired = site != NULL;
    F.last_calls = atomic_load(&F.calls);
    F.last_site[0] = 0;
    Dl_info di;
    if (site && dladdr(site, &di) && di.dli_fname) {
        const char *base = strrchr(di.dli_fname, '/');
        snprintf(F.last_site, sizeof F.last_site, "%s+0x%lx", base ? base + 1 : di.dli_fname,
                 (unsigned long)((const char *)site - (const char *)di.dli_fbase));
    }
}

/* INFER.DEBUG ALLOC-FAIL n [ID client-id] | INFER.DEBUG ALLOC-FAIL STATUS - O(1) */
int mod_cmd_debug(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    if (argc < 3 || strcasecmp(RedisModule_StringPtrLen(argv[1], NULL), "ALLOC-FAIL"))
        return RedisModule_ReplyWithError(ctx, "ERR syntax: INFER.DEBUG ALLOC-FAIL n [ID client-id] | STATUS");
    if (argc == 3 && !strcasecmp(RedisModule_StringPtrLen(argv[2], NULL), "STATUS")) {
        RedisModule_ReplyWithArray(ctx, 3);
        RedisModule_ReplyWithLongLong(ctx, F.fired);
        RedisModule_ReplyWithLongLong(ctx, F.last_calls);
        return RedisModule_ReplyWithStringBuffer(ctx, F.last_site, strlen(F.last_site));
    }
    long long n, id = (long long)RedisModule_GetClientId(ctx);
    if (RedisModule_StringToLongLong(argv[2], &n) != REDISMODULE_OK || n < 1)
        return RedisModule_ReplyWithError(ctx, "ERR INFER.DEBUG ALLOC-FAIL wants a count of 1 or more, or STATUS");
    if (argc == 5 && !strcasecmp(RedisModule_StringPtrLen(argv[3], NULL), "ID")) {
        if (RedisModule_StringToLongLong(argv[4], &id) != REDISMODULE_OK || id < 1)
            return RedisModule_ReplyWithError(ctx, "ERR bad client id");
    } else if (argc != 3) {
        return RedisModule_ReplyWithError(ctx, "ERR syntax: INFER.DEBUG ALLOC-FAIL n [ID client-id] | STATUS");
    }
    F.armed_n = (long)n;
    F.fired = 0;
    F.last_calls = 0;
    F.last_site[0] = 0;
    atomic_store(&F.armed_client, (uint64_t)id);
    return RedisModule_ReplyWithSimpleString(ctx, "OK");
}
