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
#define REDISMODULE_CTX_FLAGS_MASTER (1 << 2)
#define REDISMODULE_CTX_FLAGS_SLAVE (1 << 3)
#define REDISMODULE_CTX_FLAGS_READONLY (1 << 4)  /* a replica with replica-read-only yes */
#define REDISMODULE_CTX_FLAGS_CLUSTER (1 << 5)
#define REDISMODULE_CTX_FLAGS_REPLICATED (1 << 12) /* sent by our master over the replication link */
#define REDISMODULE_CTX_FLAGS_LOADING (1 << 13)
#define REDISMODULE_CTX_FLAGS_DENY_BLOCKING (1 << 21)
#define REDISMODULE_CTX_FLAGS_RESP3 (1 << 22)

/* CallReplyType results */
#define REDISMODULE_REPLY_STRING 0
#define REDISMODULE_REPLY_ERROR 1
#define REDISMODULE_REPLY_INTEGER 2
#define REDISMODULE_REPLY_ARRAY 3
#define REDISMODULE_REPLY_NULL 4

/* OpenKey modes */
#define REDISMODULE_READ (1 << 0)
#define REDISMODULE_WRITE (1 << 1)

/* KeyType results (only those the module tells apart) */
#define REDISMODULE_KEYTYPE_EMPTY 0
#define REDISMODULE_KEYTYPE_STRING 1
#define REDISMODULE_KEYTYPE_HASH 3
#define REDISMODULE_KEYTYPE_MODULE 6

/* HashGet: field names given as C strings */
#define REDISMODULE_HASH_CFIELDS (1 << 2)

/* NotifyKeyspaceEvent classes: 'g' and 'd' (module key types) */
#define REDISMODULE_NOTIFY_GENERIC (1 << 2)
#define REDISMODULE_NOTIFY_MODULE (1 << 13)

/* SetModuleOptions: the data type's rdb_load checks IsIOError itself
 * instead of the server panicking on a short or corrupt read. */
#define REDISMODULE_OPTIONS_HANDLE_IO_ERRORS (1 << 0)

/* Key-spec flags (ACLCheckKeyPermissions, SetCommandInfo): exactly one of
 * RO/RW/OW/RM, at most one of INSERT/DELETE/UPDATE. */
#define REDISMODULE_CMD_KEY_RO (1ULL << 0)
#define REDISMODULE_CMD_KEY_RW (1ULL << 1)
#define REDISMODULE_CMD_KEY_OW (1ULL << 2)
#define REDISMODULE_CMD_KEY_RM (1ULL << 3)
#define REDISMODULE_CMD_KEY_ACCESS (1ULL << 4)
#define REDISMODULE_CMD_KEY_UPDATE (1ULL << 5)
#define REDISMODULE_CMD_KEY_INSERT (1ULL << 6)
#define REDISMODULE_CMD_KEY_DELETE (1ULL << 7)
#define REDISMODULE_CMD_KEY_NOT_KEY (1ULL << 8)
#define REDISMODULE_CMD_KEY_INCOMPLETE (1ULL << 9) /* the spec may miss or misplace keys: ask getkeys */
#define REDISMODULE_CMD_KEY_VARIABLE_FLAGS (1ULL << 10)

/* Cluster nodes (GetMyClusterID, GetClusterNodeInfo): ids are exactly
 * REDISMODULE_NODE_ID_LEN bytes, not NUL-terminated. */
#define REDISMODULE_NODE_ID_LEN 40
#define REDISMODULE_NODE_MYSELF (1 << 0)
#define REDISMODULE_NODE_MASTER (1 << 1)
#define REDISMODULE_NODE_SLAVE (1 << 2)

/* Server events (SubscribeToServerEvent) */
#define REDISMODULE_EVENT_SHUTDOWN 5

/* Opaque server objects. */
typedef struct RedisModuleCtx RedisModuleCtx;
typedef struct RedisModuleString RedisModuleString;
typedef struct RedisModuleBlockedClient RedisModuleBlockedClient;
typedef struct RedisModuleCallReply RedisModuleCallReply;
typedef struct RedisModuleInfoCtx RedisModuleInfoCtx;
typedef struct RedisModuleUser RedisModuleUser;
typedef struct RedisModuleKey RedisModuleKey;
typedef struct RedisModuleType RedisModuleType;
typedef struct RedisModuleIO RedisModuleIO;
typedef struct RedisModuleDigest RedisModuleDigest;
typedef struct RedisModuleCommand RedisModuleCommand;
typedef struct RedisModuleDefragCtx RedisModuleDefragCtx;

typedef struct RedisModuleEvent {
    uint64_t id;      /* REDISMODULE_EVENT_* */
    uint64_t dataver; /* version of the event's data structure */
} RedisModuleEvent;

typedef void (*RedisModuleInfoFunc)(RedisModuleInfoCtx *ctx, int for_crash_report);
typedef int (*RedisModuleCmdFunc)(RedisModuleCtx *ctx, RedisModuleString **argv, int argc);
typedef void (*RedisModuleDisconnectFunc)(RedisModuleCtx *ctx, RedisModuleBlockedClient *bc);
typedef void (*RedisModuleFreePrivdataFunc)(RedisModuleCtx *ctx, void *privdata);
typedef void (*RedisModuleEventLoopOneShotFunc)(void *user_data);
typedef void (*RedisModuleTimerProc)(RedisModuleCtx *ctx, void *data);
typedef uint64_t RedisModuleTimerID;
typedef void (*RedisModuleEventCallback)(RedisModuleCtx *ctx, RedisModuleEvent eid, uint64_t subevent,
                                         void *data);

/* ---- module data types (CreateDataType) ------------------------------------
 * The method table is versioned by its first field: version 3 (Redis >= 6.0)
 * adds free_effort, unlink, copy and defrag to the version 1 callbacks and
 * version 2's aux fields.  The server reads only the fields its version
 * knows, so the layout below must stay exactly this. */
#define REDISMODULE_TYPE_METHOD_VERSION_3 3

typedef void *(*RedisModuleTypeLoadFunc)(RedisModuleIO *rdb, int encver);
typedef void (*RedisModuleTypeSaveFunc)(RedisModuleIO *rdb, void *value);
typedef void (*RedisModuleTypeRewriteFunc)(RedisModuleIO *aof, RedisModuleString *key, void *value);
typedef size_t (*RedisModuleTypeMemUsageFunc)(const void *value);
typedef void (*RedisModuleTypeDigestFunc)(RedisModuleDigest *digest, void *value);
typedef void (*RedisModuleTypeFreeFunc)(void *value);
typedef int (*RedisModuleTypeAuxLoadFunc)(RedisModuleIO *rdb, int encver, int when);
typedef void (*RedisModuleTypeAuxSaveFunc)(RedisModuleIO *rdb, int when);
typedef size_t (*RedisModuleTypeFreeEffortFunc)(RedisModuleString *key, const void *value);
typedef void (*RedisModuleTypeUnlinkFunc)(RedisModuleString *key, const void *value);
typedef void *(*RedisModuleTypeCopyFunc)(RedisModuleString *fromkey, RedisModuleString *tokey, const void *value);
typedef int (*RedisModuleTypeDefragFunc)(RedisModuleDefragCtx *ctx, RedisModuleString *key, void **value);

typedef struct RedisModuleTypeMethods {
    uint64_t version; /* REDISMODULE_TYPE_METHOD_VERSION_3 */
    RedisModuleTypeLoadFunc rdb_load;
    RedisModuleTypeSaveFunc rdb_save;
    RedisModuleTypeRewriteFunc aof_rewrite;
    RedisModuleTypeMemUsageFunc mem_usage;
    RedisModuleTypeDigestFunc digest;
    RedisModuleTypeFreeFunc free;
    RedisModuleTypeAuxLoadFunc aux_load;   /* version 2 */
    RedisModuleTypeAuxSaveFunc aux_save;
    int aux_save_triggers;
    RedisModuleTypeFreeEffortFunc free_effort; /* version 3 */
    RedisModuleTypeUnlinkFunc unlink;
    RedisModuleTypeCopyFunc copy;
    RedisModuleTypeDefragFunc defrag;
} RedisModuleTypeMethods;

/* ---- command info (SetCommandInfo, Redis >= 7.0) ----------------------------
 * Version 1 of the structures, as 7.0 defines them; the version record
 * tells the server the sizes of the array elements it walks. */
typedef enum {
    REDISMODULE_KSPEC_BS_INVALID = 0, /* terminates the key-spec array */
    REDISMODULE_KSPEC_BS_UNKNOWN,
    REDISMODULE_KSPEC_BS_INDEX,
    REDISMODULE_KSPEC_BS_KEYWORD
} RedisModuleKeySpecBeginSearchType;

typedef enum {
    REDISMODULE_KSPEC_FK_OMITTED = 0,
    REDISMODULE_KSPEC_FK_UNKNOWN,
    REDISMODULE_KSPEC_FK_RANGE,
    REDISMODULE_KSPEC_FK_KEYNUM
} RedisModuleKeySpecFindKeysType;

typedef struct RedisModuleCommandHistoryEntry {
    const char *since;
    const char *changes;
} RedisModuleCommandHistoryEntry;

typedef struct RedisModuleCommandKeySpec {
    const char *notes;
    uint64_t flags; /* REDISMODULE_CMD_KEY_* */
    RedisModuleKeySpecBeginSearchType begin_search_type;
    union {
        struct {
            int pos;
        } index;
        struct {
            const char *keyword;
            int startfrom;
        } keyword;
    } bs;
    RedisModuleKeySpecFindKeysType find_keys_type;
    union {
        struct {
            int lastkey, keystep, limit;
        } range;
        struct {
            int keynumidx, firstkey, keystep;
        } keynum;
    } fk;
} RedisModuleCommandKeySpec;

typedef struct RedisModuleCommandInfoVersion {
    int version; /* 1 */
    size_t sizeof_historyentry;
    size_t sizeof_keyspec;
    size_t sizeof_arg; /* argument docs are not given (args NULL): never read */
} RedisModuleCommandInfoVersion;

typedef struct RedisModuleCommandInfo {
    const RedisModuleCommandInfoVersion *version;
    const char *summary;
    const char *complexity;
    const char *since;
    RedisModuleCommandHistoryEntry *history;
    const char *tips;
    int arity;                            /* -N: at least N */
    RedisModuleCommandKeySpec *key_specs; /* ends with a zeroed entry */
    const void *args;                     /* RedisModuleCommandArg[]; NULL here */
} RedisModuleCommandInfo;

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
    X(int, InfoAddFieldCString, (RedisModuleInfoCtx * ctx, const char *field, const char *value)) \
    X(void, Log, (RedisModuleCtx * ctx, const char *level, const char *fmt, ...))                  \
    X(int, EventLoopAddOneShot, (RedisModuleEventLoopOneShotFunc func, void *user_data))           \
    X(RedisModuleCtx *, GetDetachedThreadSafeContext, (RedisModuleCtx * ctx))                      \
    X(void, FreeThreadSafeContext, (RedisModuleCtx * ctx))                                         \
    X(int, SelectDb, (RedisModuleCtx * ctx, int newid))                                            \
    X(int, GetSelectedDb, (RedisModuleCtx * ctx))                                                  \
    X(unsigned long long, GetClientId, (RedisModuleCtx * ctx))                                     \
    X(RedisModuleString *, CreateString, (RedisModuleCtx * ctx, const char *ptr, size_t len))      \
    X(void, FreeString, (RedisModuleCtx * ctx, RedisModuleString *str))                            \
    X(RedisModuleString *, GetCurrentUserName, (RedisModuleCtx * ctx))                             \
    X(RedisModuleUser *, GetModuleUserFromUserName, (RedisModuleString * name))                    \
    X(int, ACLCheckKeyPermissions, (RedisModuleUser * user, RedisModuleString *key, int flags))    \
    X(int, FreeModuleUser, (RedisModuleUser * user))                                               \
    X(RedisModuleType *, CreateDataType,                                                           \
      (RedisModuleCtx * ctx, const char *name, int encver, void *typemethods))                     \
    X(int, ModuleTypeSetValue, (RedisModuleKey * key, RedisModuleType *mt, void *value))           \
    X(RedisModuleType *, ModuleTypeGetType, (RedisModuleKey * key))                                \
    X(void *, ModuleTypeGetValue, (RedisModuleKey * key))                                          \
    X(RedisModuleKey *, OpenKey, (RedisModuleCtx * ctx, RedisModuleString *keyname, int mode))     \
    X(void, CloseKey, (RedisModuleKey * key))                                                      \
    X(int, KeyType, (RedisModuleKey * key))                                                        \
    X(int, DeleteKey, (RedisModuleKey * key))                                                      \
    X(void, SaveStringBuffer, (RedisModuleIO * io, const char *str, size_t len))                   \
    X(char *, LoadStringBuffer, (RedisModuleIO * io, size_t *lenptr))                              \
    X(int, IsIOError, (RedisModuleIO * io))                                                        \
    X(void, SetModuleOptions, (RedisModuleCtx * ctx, int options))                                 \
    X(void, LogIOError, (RedisModuleIO * io, const char *levelstr, const char *fmt, ...))          \
    X(void, EmitAOF, (RedisModuleIO * io, const char *cmdname, const char *fmt, ...))              \
    X(void, DigestAddLongLong, (RedisModuleDigest * md, long long ll))                             \
    X(void, DigestEndSequence, (RedisModuleDigest * md))                                           \
    X(void *, Alloc, (size_t bytes))                                                               \
    X(void *, Realloc, (void *ptr, size_t bytes))                                                  \
    X(void, Free, (void *ptr))                                                                     \
    X(size_t, MallocSize, (void *ptr))                                                             \
    X(int, ReplicateVerbatim, (RedisModuleCtx * ctx))                                              \
    X(int, NotifyKeyspaceEvent,                                                                    \
      (RedisModuleCtx * ctx, int type, const char *event, RedisModuleString *key))                 \
    X(int, ReplyWithBool, (RedisModuleCtx * ctx, int b))                                           \
    X(int, ReplyWithNull, (RedisModuleCtx * ctx))                                                  \
    X(int, ReplyWithNullArray, (RedisModuleCtx * ctx))                                             \
    X(RedisModuleCommand *, GetCommand, (RedisModuleCtx * ctx, const char *name))                  \
    X(int, SetCommandInfo, (RedisModuleCommand * command, const RedisModuleCommandInfo *info))     \
    X(void, GetRandomBytes, (unsigned char *dst, size_t len))                                      \
    X(size_t, CallReplyLength, (RedisModuleCallReply * reply))                                     \
    X(RedisModuleCallReply *, CallReplyArrayElement, (RedisModuleCallReply * reply, size_t idx))   \
    X(long long, CallReplyInteger, (RedisModuleCallReply * reply))                                 \
    X(RedisModuleTimerID, CreateTimer,                                                             \
      (RedisModuleCtx * ctx, long long period, RedisModuleTimerProc callback, void *data))          \
    X(int, IsKeysPositionRequest, (RedisModuleCtx * ctx))                                          \
    X(void, KeyAtPosWithFlags, (RedisModuleCtx * ctx, int pos, int flags))                         \
    X(const char *, GetMyClusterID, (void))                                                        \
    X(int, GetClusterNodeInfo,                                                                     \
      (RedisModuleCtx * ctx, const char *id, char *ip, char *master_id, int *port, int *flags))     \
    X(char *, StringDMA, (RedisModuleKey * key, size_t *len, int mode))                            \
    X(int, HashGet, (RedisModuleKey * key, int flags, ...))

/* Entry points newer than Redis 7.0: fetched when the server has them and
 * left NULL otherwise (a caller checks before using one).
 *   TryAlloc                  Alloc that returns NULL instead of aborting
 *   SetCommandACLCategories   7.2
 *   AddACLCategory            7.4 */
#define INFERKV_RM_OPTIONAL_FUNCS(X)                                                               \
    X(void *, TryAlloc, (size_t bytes))                                                            \
    X(int, SetCommandACLCategories, (RedisModuleCommand * command, const char *aclflags))          \
    X(int, AddACLCategory, (RedisModuleCtx * ctx, const char *name))

#define INFERKV_RM_DECLARE(ret, name, params) extern ret(*RedisModule_##name) params;
INFERKV_RM_FUNCS(INFERKV_RM_DECLARE)
INFERKV_RM_OPTIONAL_FUNCS(INFERKV_RM_DECLARE)
#undef INFERKV_RM_DECLARE

/* Fills every pointer above through the server's lookup function and
 * registers the module under `name`.  REDISMODULE_ERR when a required entry
 * point is missing (a server older than 7.0) or the name is taken; the
 * optional ones stay NULL where the server lacks them. */
int inferkv_rm_init(RedisModuleCtx *ctx, const char *name, int ver, int apiver);

#endif
