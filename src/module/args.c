/* args.c - the module's side of argument handling: RedisModuleString
 * arguments handed to libinfercmd as (pointer, length) pairs, and its
 * error lines turned into replies. */
#include "mod.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ic_arg *mod_args(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    ic_arg *a = infer_malloc((size_t)(argc > 0 ? argc : 1) * sizeof *a);
    if (!a) {
        RedisModule_ReplyWithError(ctx, "ERR out of memory");
        return NULL;
    }
    for (int i = 0; i < argc; i++) a[i].ptr = RedisModule_StringPtrLen(argv[i], &a[i].len);
    return a;
}

int mod_reply_err(RedisModuleCtx *ctx, const char *line) {
    return mod_reply_errorf(ctx, "%s", line);
}

int mod_reply_errorf(RedisModuleCtx *ctx, const char *fmt, ...) {
    char buf[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* the reply protocol forbids newlines inside an error line */
    for (char *p = buf; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
    return RedisModule_ReplyWithError(ctx, buf);
}

int mod_is_resp3(RedisModuleCtx *ctx) {
    return (RedisModule_GetContextFlagsAll() & REDISMODULE_CTX_FLAGS_RESP3) &&
           (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_RESP3);
}

ic_model *mod_arg_model(RedisModuleCtx *ctx, RedisModuleString *name) {
    ic_arg a;
    char err[IC_ERRLEN];
    a.ptr = RedisModule_StringPtrLen(name, &a.len);
    ic_model *m = ic_lookup(&g_mod.reg, &a, err, sizeof err);
    if (!m) mod_reply_err(ctx, err);
    return m;
}

int mod_reply_fields(RedisModuleCtx *ctx, const ic_field *f, int n) {
    RedisModule_ReplyWithMap(ctx, n);
    for (int i = 0; i < n; i++) {
        RedisModule_ReplyWithCString(ctx, f[i].name);
        if (f[i].kind == IC_F_DOUBLE) RedisModule_ReplyWithDouble(ctx, f[i].d);
        else if (f[i].kind == IC_F_STR) RedisModule_ReplyWithStringBuffer(ctx, f[i].s, f[i].slen);
        else RedisModule_ReplyWithLongLong(ctx, f[i].ll);
    }
    return REDISMODULE_OK;
}
