/* routing.c - what inferkv.so tells Redis about the keys of INFER.GENERATE,
 * INFER.EMBED and INFER.RAG, and where their write forms are refused.
 *
 * Keys.  In Redis Cluster a command runs where its keys live only if it
 * declares them: cluster clients route by COMMAND INFO / COMMAND GETKEYS,
 * and the host answers MOVED and CROSSSLOT from the keys it finds.  These
 * commands find their keys by keyword after a varying number of options,
 * so each is registered with
 *   - key specs (RedisModule_SetCommandInfo): libinfercmd's ic_keyspecs,
 *     the keyword-search form, flagged incomplete (a prompt may spell a
 *     keyword) - what COMMAND INFO shows, the same as inferkv-server's;
 *   - "getkeys-api": the command itself answers a keys-position request
 *     with libinfercmd's exact finder (ic_keys).  Redis 7.0's cluster
 *     routing asks only this (getKeysFromCommand), and COMMAND GETKEYS and
 *     ACL key checks fall back to it because the specs are incomplete.
 * The chunk keys INFER.RAG reads are named in attributes (data): they
 * cannot be declared; a vector set and its chunk keys share a hash tag.
 *
 * Read or write.  The commands are registered "readonly": a call that
 * writes nothing is a read, which a replica serves (a cluster replica
 * after READONLY), and that is how inference scales out.  A call with
 * STORE, STREAM or INTO writes, and since no static write flag stops it,
 * it is refused here, first thing, with the answer Redis gives a write
 * command there:
 *   - a cluster replica: "MOVED <slot> <master ip>:<port>" (Redis sends
 *     writes to the slot's primary, READONLY or not);
 *   - a replica with replica-read-only yes: "READONLY You can't write
 *     against a read only replica.";
 * and never for what our own master sends over the replication link
 * (Redis obeys its master). */
#include "mod.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const RedisModuleCommandInfoVersion info_version = {1, sizeof(RedisModuleCommandHistoryEntry),
                                                           sizeof(RedisModuleCommandKeySpec), 0};

static uint64_t key_flags(int access) {
    switch (access) {
    case IC_KEY_READ:
        return REDISMODULE_CMD_KEY_RO | REDISMODULE_CMD_KEY_ACCESS;
    case IC_KEY_INSERT:
        return REDISMODULE_CMD_KEY_RW | REDISMODULE_CMD_KEY_INSERT;
    default:
        return REDISMODULE_CMD_KEY_OW | REDISMODULE_CMD_KEY_UPDATE;
    }
}

int mod_register_keyed(RedisModuleCtx *ctx, const char *name, RedisModuleCmdFunc fn, int cmd, int arity,
                       const char *summary) {
    /* no-mandatory-keys where every key is optional (a plain prompt names
     * none): COMMAND GETKEYS then answers an empty list, not an error */
    const char *flags = cmd == IC_KEYS_RAG ? "readonly deny-script getkeys-api"
                                           : "readonly deny-script getkeys-api no-mandatory-keys";
    if (RedisModule_CreateCommand(ctx, name, fn, flags, 0, 0, 0) != REDISMODULE_OK) {
        RedisModule_Log(ctx, "warning", "infer: cannot register %s", name);
        return REDISMODULE_ERR;
    }
    int n = 0;
    const ic_keyspec *ks = ic_keyspecs(cmd, &n);
    RedisModuleCommandKeySpec specs[IC_MAX_KEYS + 1];
    memset(specs, 0, sizeof specs); /* the zeroed entry after the last ends the list */
    for (int i = 0; i < n && i < IC_MAX_KEYS; i++) {
        specs[i].flags = key_flags(ks[i].access) | (ks[i].incomplete ? REDISMODULE_CMD_KEY_INCOMPLETE : 0);
        if (ks[i].keyword) {
            specs[i].begin_search_type = REDISMODULE_KSPEC_BS_KEYWORD;
            specs[i].bs.keyword.keyword = ks[i].keyword;
            specs[i].bs.keyword.startfrom = ks[i].startfrom;
        } else {
            specs[i].begin_search_type = REDISMODULE_KSPEC_BS_INDEX;
            specs[i].bs.index.pos = ks[i].index;
        }
        specs[i].find_keys_type = REDISMODULE_KSPEC_FK_RANGE; /* one key: lastkey 0, keystep 1 */
        specs[i].fk.range.lastkey = 0;
        specs[i].fk.range.keystep = 1;
        specs[i].fk.range.limit = 0;
    }
    RedisModuleCommandInfo info;
    memset(&info, 0, sizeof info);
    info.version = &info_version;
    info.summary = summary;
    info.arity = arity;
    info.key_specs = specs;
    RedisModuleCommand *c = RedisModule_GetCommand(ctx, name);
    if (!c || RedisModule_SetCommandInfo(c, &info) != REDISMODULE_OK) {
        RedisModule_Log(ctx, "warning", "infer: cannot set the command info of %s", name);
        return REDISMODULE_ERR;
    }
    return REDISMODULE_OK;
}

/* argv as (pointer, length) pairs without replying (a keys-position
 * request has no client to answer); NULL when out of memory. */
static ic_arg *quiet_args(RedisModuleString **argv, int argc) {
    ic_arg *a = infer_malloc((size_t)(argc > 0 ? argc : 1) * sizeof *a);
    if (a)
        for (int i = 0; i < argc; i++) a[i].ptr = RedisModule_StringPtrLen(argv[i], &a[i].len);
    return a;
}

int mod_reply_keys(RedisModuleCtx *ctx, int cmd, RedisModuleString **argv, int argc) {
    ic_arg *a = quiet_args(argv, argc);
    /* out of memory: no key reported, so the host routes nothing and the
     * command runs (or fails) where it was sent */
    if (!a) return REDISMODULE_OK;
    ic_key k[IC_MAX_KEYS];
    int n = ic_keys(cmd, a, argc, k);
    free(a);
    for (int i = 0; i < n; i++) RedisModule_KeyAtPosWithFlags(ctx, k[i].pos, (int)key_flags(k[i].access));
    return REDISMODULE_OK;
}

/* "MOVED <slot> <ip>:<port>" naming this replica's primary, as Redis
 * answers a write sent to a cluster replica.  -1 when the primary is not
 * known (no such answer can be built). */
static int moved_to_master(RedisModuleCtx *ctx, const ic_arg *key) {
    const char *me = RedisModule_GetMyClusterID();
    if (!me) return -1;
    /* ids are 40 bytes without a NUL; the API looks them up by strlen */
    char myid[REDISMODULE_NODE_ID_LEN + 1], master[REDISMODULE_NODE_ID_LEN + 1], ip[64];
    memcpy(myid, me, REDISMODULE_NODE_ID_LEN);
    myid[REDISMODULE_NODE_ID_LEN] = 0;
    memset(master, 0, sizeof master);
    if (RedisModule_GetClusterNodeInfo(ctx, myid, NULL, master, NULL, NULL) != REDISMODULE_OK || !master[0])
        return -1;
    int port = 0;
    memset(ip, 0, sizeof ip); /* the server writes up to 46 bytes (NET_IP_STR_LEN) */
    if (RedisModule_GetClusterNodeInfo(ctx, master, ip, NULL, &port, NULL) != REDISMODULE_OK || !ip[0]) return -1;
    ip[sizeof ip - 1] = 0;
    char line[128];
    snprintf(line, sizeof line, "MOVED %u %s:%d", ic_key_slot(key->ptr, key->len), ip, port);
    RedisModule_ReplyWithError(ctx, line);
    return 0;
}

int mod_refuse_replica_write(RedisModuleCtx *ctx, int cmd, RedisModuleString **argv, int argc) {
    int cf = RedisModule_GetContextFlags(ctx);
    /* a primary, or our own primary speaking: nothing to refuse */
    if (!(cf & REDISMODULE_CTX_FLAGS_SLAVE) || (cf & REDISMODULE_CTX_FLAGS_REPLICATED)) return 0;
    int cluster = (cf & REDISMODULE_CTX_FLAGS_CLUSTER) != 0;
    /* outside a cluster a replica with replica-read-only no takes writes */
    if (!cluster && !(cf & REDISMODULE_CTX_FLAGS_READONLY)) return 0;
    ic_arg *a = quiet_args(argv, argc);
    if (!a) {
        RedisModule_ReplyWithError(ctx, "ERR out of memory");
        return 1;
    }
    ic_key k[IC_MAX_KEYS];
    int n = ic_keys(cmd, a, argc, k), w = -1;
    for (int i = 0; i < n && w < 0; i++)
        if (k[i].access != IC_KEY_READ) w = k[i].pos;
    int refused = w >= 0;
    if (refused && (!cluster || moved_to_master(ctx, &a[w]) < 0))
        RedisModule_ReplyWithError(ctx, "READONLY You can't write against a read only replica.");
    free(a);
    return refused;
}
