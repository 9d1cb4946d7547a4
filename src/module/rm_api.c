/* rm_api.c - fills the module API function pointers at load time.
 *
 * The server passes its lookup function as the first pointer of the context
 * given to RedisModule_OnLoad; each entry point is fetched by its published
 * name.  A missing required one fails the load cleanly instead of leaving a
 * NULL to crash on later; a missing optional one (an API newer than the
 * oldest server supported) stays NULL for its caller to test. */
#include "redismodule_api.h"

#define INFERKV_RM_DEFINE(ret, name, params) ret(*RedisModule_##name) params = NULL;
INFERKV_RM_FUNCS(INFERKV_RM_DEFINE)
INFERKV_RM_OPTIONAL_FUNCS(INFERKV_RM_DEFINE)
#undef INFERKV_RM_DEFINE

int inferkv_rm_init(RedisModuleCtx *ctx, const char *name, int ver, int apiver) {
    typedef int (*getapi_fn)(const char *name, void *out);
    getapi_fn getapi;
    void *first = ((void **)ctx)[0];
    /* object pointer -> function pointer goes through an integer, as the
     * API's own convention does */
    getapi = (getapi_fn)(uintptr_t)first;
    int missing = 0;
#define INFERKV_RM_FETCH(ret, fname, params)                                          \
    if (getapi("RedisModule_" #fname, (void *)&RedisModule_##fname) != REDISMODULE_OK || \
        !RedisModule_##fname)                                                        \
        missing++;
    INFERKV_RM_FUNCS(INFERKV_RM_FETCH)
#undef INFERKV_RM_FETCH
    /* the lookup leaves its target alone when the name is unknown, and a
     * module reloaded into the same address must not keep a stale one */
#define INFERKV_RM_FETCH_OPTIONAL(ret, fname, params)                                 \
    if (getapi("RedisModule_" #fname, (void *)&RedisModule_##fname) != REDISMODULE_OK) \
        RedisModule_##fname = NULL;
    INFERKV_RM_OPTIONAL_FUNCS(INFERKV_RM_FETCH_OPTIONAL)
#undef INFERKV_RM_FETCH_OPTIONAL
    if (missing) return REDISMODULE_ERR;
    if (RedisModule_IsModuleNameBusy(name)) return REDISMODULE_ERR;
    RedisModule_SetModuleAttribs(ctx, name, ver, apiver);
    return REDISMODULE_OK;
}
