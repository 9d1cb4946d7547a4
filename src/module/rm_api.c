/* rm_api.c - fills the module API function pointers at load time.
 *
 * The server passes its lookup function as the first pointer of the context
 * given to RedisModule_OnLoad; each entry point is fetched by its published
 * name.  A missing one fails the load cleanly instead of leaving a NULL to
 * crash on later. */
#include "redismodule_api.h"

#define INFERKV_RM_DEFINE(ret, name, params) ret(*RedisModule_##name) params = NULL;
INFERKV_RM_FUNCS(INFERKV_RM_DEFINE)
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
    if (missing) return REDISMODULE_ERR;
    if (RedisModule_IsModuleNameBusy(name)) return REDISMODULE_ERR;
    RedisModule_SetModuleAttribs(ctx, name, ver, apiver);
    return REDISMODULE_OK;
}
