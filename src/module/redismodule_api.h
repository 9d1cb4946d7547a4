/* redismodule_api.h - the part of the Redis module API that inferkv.so uses,
 * declared from the published reference (redis.io, "Modules API reference").
 *
 * A module does not link against the server: every API entry point is a
 * function pointer that the module fills at load time by asking the server's
 * lookup function for "RedisModule_<Name>".  The lookup function is the
 * first pointer stored in the context handed to RedisModule_OnLoad.  Only
 * the functions, constants and types this module needs are declared; the
 * list lives in one X-macro so declaration, definition and lookup never
 * drift apart. */
#ifndef INFERKV_REDISMODULE_API_H
#define INFERKV_REDISMODULE_API_H

#include <stddef.h>
#include <stdint.h>

#define REDISMODULE_OK 0
#define REDISMODULE_ERR 1
#define REDISMODULE_APIVER_1 1

/* GetContextFlags bits */
#define REDISMODULE_CTX_FLAGS_LUA (1 << 0)
#define REDISMODULE_CTX_FLAGS_MULTI (1 << 1)
#define REDISMODULE_CTX_FLAGS_SLAVE (1 << 3)
#define REDISMODULE_CTX_FLAGS_READONLY (1 << 4)
#define REDISMODULE_CTX_FLAGS_DENY_BLOCKING (1 << 21)
#define REDISMODULE_CTX_FLAGS_RESP3 (1 << 22)

/* CallReplyType results */
#define REDISMODULE_REPLY_STRING 0
#define REDISMODULE_REPLY_ERROR 1
#define REDISMODULE_REPLY_NULL 4

/* Key-spec flags (ACLCheckKeyPermissions) */
#define REDISMODULE_CMD_KEY_INSERT (1ULL << 6)

/* Server events (SubscribeToServerEvent) */
#define REDISMODULE_EVENT_SHUTDOWN 5

/* Opaque server objects. */
typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleString RedisModuleString;
typedef struct RedisModuleBlockedClient RedisModuleBlockedClient;
typedef struct RedisModuleCallReply RedisModuleCallReply;
typedef struct RedisModuleInfoCtx RedisModuleInfoCtx;
typedef struct RedisModuleUser RedisModuleUser;

typedef struct RedisModuleEvent {
    uint64_t id;      /* REDISMODULE_EVENT_* */
    uint64_t dataver; /* version of the event's data structure */
} RedisModuleEvent;

typedef void (*RedisModuleInfoFunc)(RedisModuleInfoCtx *ctx, int for_crash_report);
typedef int (*RedisModuleCmdFunc)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
typedef void (*RedisModuleDisconnectFunc)(RedisModuleCtx *ctx, RedisModuleBlockedClient *bc);
typedef void (*RedisModuleFreePrivdataFunc)(RedisModuleCtx *ctx, void *privdata);
typedef void (*RedisModuleEventLoopOneShotFunc)(void *user_data);
typedef void (*RedisModuleEventCallback)(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t subevent,
                                         void *data);

/* X(return type, Name, (parameters)) for every API function used. */
#define INFERKV_RM_FUNCS(X)                                                                        \
    X(void, SetModuleAttribs, (RedisModuleCtx * ctx, const char *name, int ver, int apiver))       \
    X(int, IsModuleNameBusy, (const char *name))                                                   \
    X(int, CreateCommand,                                                                          \
      (RedisModuleCtx * ctx, const char *name, RedisModuleCmdFunc cmdfunc, const char *strflags,   \
       int firstkey, int lastkey, int keystep))                                                    \
    X(int, WrongArity, (RedisModuleCtx * ctx))                                                     \
    X(int, ReplyWithError, (RedisModuleCtx * ctx, const char *err))                                \
    X(int, ReplyWithSimpleString, (RedisModuleCtx * ctx, const char *msg))                         \
    X(int, ReplyWithLongLong, (RedisModuleCtx * ctx, long long ll))                                \
    X(int, ReplyWithDouble, (RedisModuleCtx * ctx, double d))                                      \
    X(int, ReplyWithStringBuffer, (RedisModuleCtx * ctx, const char *buf, size_t len))             \
    X(int, ReplyWithCString, (RedisModuleCtx * ctx, const char *buf))                              \
    X(int, ReplyWithArray, (RedisModuleCtx * ctx, long len))                                       \
    X(int, ReplyWithMap, (RedisModuleCtx * ctx, long len))                                         \
    X(const char *, StringPtrLen, (const RedisModuleString *str, size_t *len))                     \
    X(int, StringToLongLong, (const RedisModuleString *str, long long *ll))                        \
    X(int, StringToDouble, (const RedisModuleString *str, double *d))                              \
    X(RedisModuleBlockedClient *, BlockClient,                                                     \
      (RedisModuleCtx * ctx, RedisModuleCmdFunc reply_callback, RedisModuleCmdFunc timeout_callback, \
       RedisModuleFreePrivdataFunc free_privdata, long long timeout_ms))                           \
    X(int, UnblockClient, (RedisModuleBlockedClient * bc, void *privdata))                         \
    X(int, AbortBlock, (RedisModuleBlockedClient * bc))                                            \
    X(void *, GetBlockedClientPrivateData, (RedisModuleCtx * ctx))                                 \
    X(RedisModuleBlockedClient *, GetBlockedClientHandle, (RedisModuleCtx * ctx))                 \
    X(void, SetDisconnectCallback, (RedisModuleBlockedClient * bc, RedisModuleDisconnectFunc cb))  \
    X(int, GetContextFlags, (RedisModuleCtx * ctx))                                                \
    X(int, GetContextFlagsAll, (void))                                                             \
    X(int, SubscribeToServerEvent,                                                                 \
      (RedisModuleCtx * ctx, RedisModuleEvent event, RedisModuleEventCallback callback))           \
    X(RedisModuleCallReply *, Call, (RedisModuleCtx * ctx, const char *cmdname, const char *fmt, ...)) \
    X(void, FreeCallReply, (RedisModuleCallReply * reply))                                         \
    X(int, CallReplyType, (RedisModuleCallReply * reply))                                          \
    X(const char *, CallReplyStringPtr, (RedisModuleCallReply * reply, size_t *len))               \
    X(int, RegisterInfoFunc, (RedisModuleCtx * ctx, RedisModuleInfoFunc cb))                      \
    X(int, InfoAddSection, (RedisModuleInfoCtx * ctx, const char *name))                          \
    X(int, InfoAddFieldLongLong, (RedisModuleInfoCtx * ctx, const char *field, long long value))  \
    X(int, InfoAddFieldDouble, (RedisModuleInfoCtx * ctx, const char *field, double value))       \
    X(void, Log, (RedisModuleCtx * ctx, const char *level, const char *fmt, ...))                  \
    X(int, EventLoopAddOneShot, (RedisModuleEventLoopOneShotFunc func, void *user_data))           \
    X(RedisModuleCtx *, GetDetachedThreadSafeContext, (RedisModuleCtx * ctx))                      \
    X(void, FreeThreadSafeContext, (RedisModuleCtx * ctx))                                         \
    X(int, SelectDb, (RedisModuleCtx * ctx, int newid))                                            \
    X(int, GetSelectedDb, (RedisModuleCtx * ctx))                                                  \
    X(RedisModuleString *, CreateString, (RedisModuleCtx * ctx, const char *ptr, size_t len))      \
    X(void, FreeString, (RedisModuleCtx * ctx, RedisModuleString *str))                            \
    X(RedisModuleString *, GetCurrentUserName, (RedisModuleCtx * ctx))                             \
    X(RedisModuleUser *, GetModuleUserFromUserName, (RedisModuleString * name))                    \
    X(int, ACLCheckKeyPermissions, (RedisModuleUser * user, RedisModuleString *key, int flags))    \
    X(int, FreeModuleUser, (RedisModuleUser * user))

#define INFERKV_RM_DECLARE(ret, name, params) extern ret(*RedisModule_##name) params;
INFERKV_RM_FUNCS(INFERKV_RM_DECLARE)
#undef INFERKV_RM_DECLARE

/* Fills every pointer above through the server's lookup function and
 * registers the module under `name`.  REDISMODULE_ERR when an entry point
 * is missing (a server older than 7.0) or the name is taken. */
int inferkv_rm_init(RedisModuleCtx *ctx, const char *name, int ver, int apiver);

#endif
