/* args.c - argument parsing with range checks and Redis-style errors.
 *
 * Every number a client sends is checked against an explicit range and a
 * bad one is answered with an error that names the option: a silent
 * default would hide the client's mistake. */
#include "mod.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int mod_arg_is(const RedisModuleString *s, const char *word) {
    size_t len;
    const char *p = RedisModule_StringPtrLen(s, &len);
    return len == strlen(word) && strncasecmp(p, word, len) == 0;
}

int mod_reply_errorf(RedisModuleCtx *ctx, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* the reply protocol forbids newlines inside an error line */
    for (char *p = buf; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
    return RedisModule_ReplyWithError(ctx, buf);
}

int mod_arg_ll(RedisModuleCtx *ctx, const RedisModuleString *s, const char *what, long long lo,
               long long hi, long long *out) {
    long long v;
    if (RedisModule_StringToLongLong(s, &v) != REDISMODULE_OK || v < lo || v > hi) {
        mod_reply_errorf(ctx, "ERR %s must be an integer between %lld and %lld", what, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int mod_arg_double(RedisModuleCtx *ctx, const RedisModuleString *s, const char *what, double lo,
                   double hi, double *out) {
    double v;
    if (RedisModule_StringToDouble(s, &v) != REDISMODULE_OK || !isfinite(v) || v < lo || v > hi) {
        mod_reply_errorf(ctx, "ERR %s must be a number between %g and %g", what, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int mod_arg_u64(RedisModuleCtx *ctx, const RedisModuleString *s, const char *what, uint64_t *out) {
    size_t len;
    const char *p = RedisModule_StringPtrLen(s, &len);
    uint64_t v = 0;
    int ok = len > 0 && len <= 20;
    for (size_t i = 0; ok && i < len; i++) {
        if (p[i] < '0' || p[i] > '9') ok = 0;
        else {
            unsigned d = (unsigned)(p[i] - '0');
            if (v > (UINT64_MAX - d) / 10) ok = 0;
            else v = v * 10 + d;
        }
    }
    if (!ok) {
        mod_reply_errorf(ctx, "ERR %s must be an integer between 0 and %llu", what,
                         (unsigned long long)UINT64_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

int mod_is_resp3(RedisModuleCtx *ctx) {
    return (RedisModule_GetContextFlagsAll() & REDISMODULE_CTX_FLAGS_RESP3) &&
           (RedisModule_GetContextFlags(ctx) & REDISMODULE_CTX_FLAGS_RESP3);
}

mod_model *mod_arg_model(RedisModuleCtx *ctx, const RedisModuleString *name) {
    size_t len;
    const char *p = RedisModule_StringPtrLen(name, &len);
    mod_model *m = mod_model_find(p, len);
    if (!m) {
        char shown[MOD_NAME_MAX];
        size_t n = len < sizeof shown - 1 ? len : sizeof shown - 1;
        for (size_t i = 0; i < n; i++) shown[i] = (p[i] >= 32 && p[i] < 127) ? p[i] : '?';
        shown[n] = 0;
        mod_reply_errorf(ctx, "ERR no such model '%s' (INFER.LOAD it first)", shown);
    }
    return m;
}
