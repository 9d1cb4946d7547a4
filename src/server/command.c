/* command.c - the command table and the path every command takes.
 *
 * command_process() is the single gate: lookup (with subcommands, as Redis
 * 7 has them: "config|get"), arity, authentication, memory limit, then the
 * handler, then statistics.  The checks run in Redis's order so that the
 * same bad request gets the same error here and there.  A handler either
 * replies before it returns or blocks the client (block.c) and replies
 * later; the dispatcher does not care which. */
#include "server.h"
#include "aof.h"
#include "rdb.h"
#include "vcmd.h"

#include <ctype.h>
#include <string.h>

#define W CMD_WRITE
#define R CMD_READONLY
#define M CMD_DENYOOM
#define F CMD_FAST
#define A CMD_ADMIN
#define NS CMD_NOSCRIPT
#define LD CMD_LOADING
#define ST CMD_STALE
#define NA CMD_NO_AUTH
#define SE CMD_SENTINEL
#define MR CMD_MAY_REPLICATE
#define NMK CMD_NO_MANDATORY_KEYS
#define AB CMD_ALLOW_BUSY
#define NM CMD_NO_MULTI
#define END {NULL, NULL, 0, 0, NULL, 0, 0, 0, NULL, NULL, 0, 0, 0, 0}
#define C(n, fn, ar, fl, acl, fk, lk, st) {n, fn, ar, fl, acl, fk, lk, st, NULL, NULL, 0, 0, 0, 0}
#define CS(n, ar, fl, acl, subs) {n, NULL, ar, fl, acl, 0, 0, 0, subs, NULL, 0, 0, 0, 0}

static void client_sub(client *c) { client_cmd(c); }
static void config_sub(client *c) { config_cmd(c); }
static void command_sub(client *c) { command_cmd(c); }
static void object_sub(client *c) { object_cmd(c); }
static void memory_sub(client *c) { memory_cmd(c); }
static void pubsub_sub(client *c) { pubsub_cmd(c); }

static command client_subs[] = {
    C("client|id", client_sub, 2, NS | LD | ST, "slow connection", 0, 0, 0),
    C("client|setname", client_sub, 3, NS | LD | ST, "slow connection", 0, 0, 0),
    C("client|getname", client_sub, 2, NS | LD | ST, "slow connection", 0, 0, 0),
    C("client|list", client_sub, -2, A | NS | LD | ST, "admin slow dangerous connection", 0, 0, 0),
    C("client|kill", client_sub, -3, A | NS | LD | ST, "admin slow dangerous connection", 0, 0, 0),
    C("client|info", client_sub, 2, NS | LD | ST, "slow connection", 0, 0, 0),
    C("client|no-evict", client_sub, 3, A | NS | LD | ST, "admin slow dangerous connection", 0, 0, 0),
    C("client|reply", client_sub, 3, NS | LD | ST, "slow connection", 0, 0, 0),
    C("client|help", client_sub, 2, LD | ST, "slow connection", 0, 0, 0),
    C("client|unblock", client_sub, -3, A | NS | LD | ST, "admin slow dangerous connection", 0, 0, 0),
    END};
static command config_subs[] = {
    C("config|get", config_sub, -3, A | NS | LD | ST, "admin slow dangerous", 0, 0, 0),
    C("config|set", config_sub, -4, A | NS | LD | ST, "admin slow dangerous", 0, 0, 0),
    C("config|resetstat", config_sub, 2, A | NS | LD | ST, "admin slow dangerous", 0, 0, 0),
    C("config|rewrite", config_sub, 2, A | NS | LD | ST, "admin slow dangerous", 0, 0, 0),
    C("config|help", config_sub, 2, LD | ST, "slow", 0, 0, 0),
    END};
static command command_subs[] = {
    C("command|count", command_sub, 2, LD | ST, "slow connection", 0, 0, 0),
    C("command|info", command_sub, -2, LD | ST, "slow connection", 0, 0, 0),
    C("command|list", command_sub, -2, LD | ST, "slow connection", 0, 0, 0),
    C("command|docs", command_sub, -2, LD | ST, "slow connection", 0, 0, 0),
    C("command|getkeys", command_sub, -4, LD | ST, "slow connection", 0, 0, 0),
    C("command|help", command_sub, 2, LD | ST, "slow connection", 0, 0, 0),
    END};
static command slowlog_subs[] = {
    C("slowlog|get", slowlog_cmd, -2, A | LD | ST, "admin slow dangerous", 0, 0, 0),
    C("slowlog|len", slowlog_cmd, 2, A | LD | ST, "admin slow dangerous", 0, 0, 0),
    C("slowlog|reset", slowlog_cmd, 2, A | LD | ST, "admin slow dangerous", 0, 0, 0),
    C("slowlog|help", slowlog_cmd, 2, LD | ST, "slow", 0, 0, 0),
    END};
static command object_subs[] = {
    C("object|encoding", object_sub, 3, R, "keyspace read slow", 2, 2, 1),
    C("object|refcount", object_sub, 3, R, "keyspace read slow", 2, 2, 1),
    C("object|idletime", object_sub, 3, R, "keyspace read slow", 2, 2, 1),
    C("object|freq", object_sub, 3, R, "keyspace read slow", 2, 2, 1),
    C("object|help", object_sub, 2, LD | ST, "keyspace slow", 0, 0, 0),
    END};
static command memory_subs[] = {
    C("memory|usage", memory_sub, -3, R, "read slow", 2, 2, 1),
    C("memory|help", memory_sub, 2, LD | ST, "slow", 0, 0, 0),
    END};

static command pubsub_subs[] = {
    C("pubsub|channels", pubsub_sub, -2, CMD_PUBSUB | LD | ST, "pubsub slow", 0, 0, 0),
    C("pubsub|numpat", pubsub_sub, 2, CMD_PUBSUB | LD | ST, "pubsub slow", 0, 0, 0),
    C("pubsub|numsub", pubsub_sub, -2, CMD_PUBSUB | LD | ST, "pubsub slow", 0, 0, 0),
    C("pubsub|shardchannels", pubsub_sub, -2, CMD_PUBSUB | LD | ST, "pubsub slow", 0, 0, 0),
    C("pubsub|shardnumsub", pubsub_sub, -2, CMD_PUBSUB | LD | ST, "pubsub slow", 0, 0, 0),
    C("pubsub|help", pubsub_sub, 2, LD | ST, "slow", 0, 0, 0),
    END};

static command xgroup_subs[] = {
    C("xgroup|create", xgroup_cmd, -5, W | M, "write stream slow", 2, 2, 1),
    C("xgroup|setid", xgroup_cmd, -5, W, "write stream slow", 2, 2, 1),
    C("xgroup|destroy", xgroup_cmd, 4, W, "write stream slow", 2, 2, 1),
    C("xgroup|createconsumer", xgroup_cmd, 5, W | M, "write stream slow", 2, 2, 1),
    C("xgroup|delconsumer", xgroup_cmd, 5, W, "write stream slow", 2, 2, 1),
    C("xgroup|help", xgroup_cmd, 2, LD | ST, "stream slow", 0, 0, 0),
    END};
static command xinfo_subs[] = {
    C("xinfo|consumers", xinfo_cmd, 4, R, "read stream slow", 2, 2, 1),
    C("xinfo|groups", xinfo_cmd, 3, R, "read stream slow", 2, 2, 1),
    C("xinfo|stream", xinfo_cmd, -3, R, "read stream slow", 2, 2, 1),
    C("xinfo|help", xinfo_cmd, 2, LD | ST, "stream slow", 0, 0, 0),
    END};

static command table[] = {
    /* connection and server */
    C("ping", ping_cmd, -1, F | SE, "fast connection", 0, 0, 0),
    C("echo", echo_cmd, 2, F, "fast connection", 0, 0, 0),
    C("quit", quit_cmd, -1, NS | LD | ST | NA | F | AB, "fast connection", 0, 0, 0),
    C("select", select_cmd, 2, LD | ST | F, "fast connection", 0, 0, 0),
    C("swapdb", swapdb_cmd, 3, W | F, "keyspace write fast dangerous", 0, 0, 0),
    C("dbsize", dbsize_cmd, 1, R | F, "keyspace read fast", 0, 0, 0),
    C("flushdb", flushdb_cmd, -1, W, "keyspace write slow dangerous", 0, 0, 0),
    C("flushall", flushall_cmd, -1, W, "keyspace write slow dangerous", 0, 0, 0),
    C("time", time_cmd, 1, LD | ST | F, "fast", 0, 0, 0),
    C("hello", hello_cmd, -1, NS | LD | ST | F | NA | SE | AB, "fast connection", 0, 0, 0),
    C("auth", auth_cmd, -2, NS | LD | ST | F | NA | SE | AB, "fast connection", 0, 0, 0),
    C("lastsave", lastsave_cmd, 1, LD | ST | F, "fast dangerous", 0, 0, 0),
    C("shutdown", shutdown_cmd, -1, A | NS | LD | ST | NMK | AB | NM, "admin slow dangerous", 0, 0, 0),
    C("info", info_cmd, -1, LD | ST | SE, "slow dangerous", 0, 0, 0),
    C("reset", reset_cmd, 1, NS | LD | ST | NA | F | AB, "fast connection", 0, 0, 0),
    C("debug", debug_cmd, -2, A | NS | LD | ST, "admin slow dangerous", 0, 0, 0),
    C("save", save_cmd, 1, A | NS | NM, "admin slow dangerous", 0, 0, 0),
    C("bgsave", bgsave_cmd, -1, A | NS, "admin slow dangerous", 0, 0, 0),
    C("bgrewriteaof", bgrewriteaof_cmd, 1, A | NS, "admin slow dangerous", 0, 0, 0),
    CS("client", -2, SE, "slow", client_subs),
    CS("config", -2, 0, "slow", config_subs),
    {"command", command_cmd, -1, LD | ST | SE, "slow connection", 0, 0, 0, command_subs, NULL, 0, 0, 0, 0},
    CS("object", -2, 0, "slow", object_subs),
    CS("slowlog", -2, 0, "slow", slowlog_subs),
    CS("memory", -2, 0, "slow", memory_subs),
    /* pub/sub and transactions */
    C("subscribe", subscribe_cmd, -2, CMD_PUBSUB | NS | LD | ST, "pubsub slow", 0, 0, 0),
    C("unsubscribe", unsubscribe_cmd, -1, CMD_PUBSUB | NS | LD | ST, "pubsub slow", 0, 0, 0),
    C("psubscribe", psubscribe_cmd, -2, CMD_PUBSUB | NS | LD | ST, "pubsub slow", 0, 0, 0),
    C("punsubscribe", punsubscribe_cmd, -1, CMD_PUBSUB | NS | LD | ST, "pubsub slow", 0, 0, 0),
    C("ssubscribe", ssubscribe_cmd, -2, CMD_PUBSUB | NS | LD | ST, "pubsub slow", 1, -1, 1),
    C("sunsubscribe", sunsubscribe_cmd, -1, CMD_PUBSUB | NS | LD | ST, "pubsub slow", 1, -1, 1),
    C("publish", publish_cmd, 3, CMD_PUBSUB | LD | ST | F, "pubsub fast", 0, 0, 0),
    C("spublish", spublish_cmd, 3, CMD_PUBSUB | LD | ST | F, "pubsub fast", 1, 1, 1),
    CS("pubsub", -2, 0, "slow", pubsub_subs),
    C("multi", multi_cmd, 1, NS | LD | ST | F | AB, "fast transaction", 0, 0, 0),
    C("exec", exec_cmd, 1, NS | LD | ST, "slow transaction", 0, 0, 0),
    C("discard", discard_cmd, 1, NS | LD | ST | F | AB, "fast transaction", 0, 0, 0),
    C("watch", watch_cmd, -2, NS | LD | ST | F | AB, "fast transaction", 1, -1, 1),
    C("unwatch", unwatch_cmd, 1, NS | LD | ST | F | AB, "fast transaction", 0, 0, 0),
    /* keys */
    C("del", del_cmd, -2, W, "keyspace write slow", 1, -1, 1),
    C("unlink", unlink_cmd, -2, W | F, "keyspace write fast", 1, -1, 1),
    C("exists", exists_cmd, -2, R | F, "keyspace read fast", 1, -1, 1),
    C("type", type_cmd, 2, R | F, "keyspace read fast", 1, 1, 1),
    C("rename", rename_cmd, 3, W, "keyspace write slow", 1, 2, 1),
    C("renamenx", renamenx_cmd, 3, W | F, "keyspace write fast", 1, 2, 1),
    C("keys", keys_cmd, 2, R, "keyspace read slow dangerous", 0, 0, 0),
    C("scan", scan_cmd, -2, R, "keyspace read slow", 0, 0, 0),
    C("randomkey", randomkey_cmd, 1, R, "keyspace read slow", 0, 0, 0),
    C("expire", expire_cmd, -3, W | F, "keyspace write fast", 1, 1, 1),
    C("pexpire", pexpire_cmd, -3, W | F, "keyspace write fast", 1, 1, 1),
    C("expireat", expireat_cmd, -3, W | F, "keyspace write fast", 1, 1, 1),
    C("pexpireat", pexpireat_cmd, -3, W | F, "keyspace write fast", 1, 1, 1),
    C("ttl", ttl_cmd, 2, R | F, "keyspace read fast", 1, 1, 1),
    C("pttl", pttl_cmd, 2, R | F, "keyspace read fast", 1, 1, 1),
    C("expiretime", expiretime_cmd, 2, R | F, "keyspace read fast", 1, 1, 1),
    C("pexpiretime", pexpiretime_cmd, 2, R | F, "keyspace read fast", 1, 1, 1),
    C("persist", persist_cmd, 2, W | F, "keyspace write fast", 1, 1, 1),
    C("touch", touch_cmd, -2, R | F, "keyspace read fast", 1, -1, 1),
    C("copy", copy_cmd, -3, W | M, "keyspace write slow", 1, 2, 1),
    C("move", move_cmd, 3, W | F, "keyspace write fast", 1, 1, 1),
    /* strings */
    C("get", get_cmd, 2, R | F, "read string fast", 1, 1, 1),
    C("set", set_cmd, -3, W | M, "write string slow", 1, 1, 1),
    C("setnx", setnx_cmd, 3, W | M | F, "write string fast", 1, 1, 1),
    C("setex", setex_cmd, 4, W | M, "write string slow", 1, 1, 1),
    C("psetex", psetex_cmd, 4, W | M, "write string slow", 1, 1, 1),
    C("mget", mget_cmd, -2, R | F, "read string fast", 1, -1, 1),
    C("mset", mset_cmd, -3, W | M, "write string slow", 1, -1, 2),
    C("msetnx", msetnx_cmd, -3, W | M, "write string slow", 1, -1, 2),
    C("getset", getset_cmd, 3, W | M | F, "write string fast", 1, 1, 1),
    C("getdel", getdel_cmd, 2, W | F, "write string fast", 1, 1, 1),
    C("getex", getex_cmd, -2, W | F, "write string fast", 1, 1, 1),
    C("append", append_cmd, 3, W | M | F, "write string fast", 1, 1, 1),
    C("strlen", strlen_cmd, 2, R | F, "read string fast", 1, 1, 1),
    C("incr", incr_cmd, 2, W | M | F, "write string fast", 1, 1, 1),
    C("decr", decr_cmd, 2, W | M | F, "write string fast", 1, 1, 1),
    C("incrby", incrby_cmd, 3, W | M | F, "write string fast", 1, 1, 1),
    C("decrby", decrby_cmd, 3, W | M | F, "write string fast", 1, 1, 1),
    C("incrbyfloat", incrbyfloat_cmd, 3, W | M | F, "write string fast", 1, 1, 1),
    C("getrange", getrange_cmd, 4, R, "read string slow", 1, 1, 1),
    C("substr", substr_cmd, 4, R, "read string slow", 1, 1, 1),
    C("setrange", setrange_cmd, 4, W | M, "write string slow", 1, 1, 1),
    C("setbit", setbit_cmd, 4, W | M, "write bitmap slow", 1, 1, 1),
    C("getbit", getbit_cmd, 3, R | F, "read bitmap fast", 1, 1, 1),
    C("bitcount", bitcount_cmd, -2, R, "read bitmap slow", 1, 1, 1),
    C("bitpos", bitpos_cmd, -3, R, "read bitmap slow", 1, 1, 1),
    C("bitop", bitop_cmd, -4, W | M, "write bitmap slow", 2, -1, 1),
    C("bitfield", bitfield_cmd, -2, W | M, "write bitmap slow", 1, 1, 1),
    C("bitfield_ro", bitfield_ro_cmd, -2, R | F, "read bitmap fast", 1, 1, 1),
    C("lcs", lcs_cmd, -3, R, "read string slow", 1, 2, 1),
    /* SORT's STORE key is found by getkeys_movable below; its BY and GET
     * keys derive from the data and cannot be declared */
    C("sort", sort_cmd, -2, W | M, "write set sortedset list slow dangerous", 1, 1, 1),
    C("sort_ro", sort_ro_cmd, -2, R, "read set sortedset list slow dangerous", 1, 1, 1),
    /* lists */
    C("lpush", lpush_cmd, -3, W | M | F, "write list fast", 1, 1, 1),
    C("rpush", rpush_cmd, -3, W | M | F, "write list fast", 1, 1, 1),
    C("lpushx", lpushx_cmd, -3, W | M | F, "write list fast", 1, 1, 1),
    C("rpushx", rpushx_cmd, -3, W | M | F, "write list fast", 1, 1, 1),
    C("lpop", lpop_cmd, -2, W | F, "write list fast", 1, 1, 1),
    C("rpop", rpop_cmd, -2, W | F, "write list fast", 1, 1, 1),
    C("llen", llen_cmd, 2, R | F, "read list fast", 1, 1, 1),
    C("lrange", lrange_cmd, 4, R, "read list slow", 1, 1, 1),
    C("lindex", lindex_cmd, 3, R, "read list slow", 1, 1, 1),
    C("lset", lset_cmd, 4, W | M, "write list slow", 1, 1, 1),
    C("linsert", linsert_cmd, 5, W | M, "write list slow", 1, 1, 1),
    C("lrem", lrem_cmd, 4, W, "write list slow", 1, 1, 1),
    C("ltrim", ltrim_cmd, 4, W, "write list slow", 1, 1, 1),
    C("lpos", lpos_cmd, -3, R, "read list slow", 1, 1, 1),
    C("lmove", lmove_cmd, 5, W | M, "write list slow", 1, 2, 1),
    C("rpoplpush", rpoplpush_cmd, 3, W | M, "write list slow", 1, 2, 1),
    C("lmpop", lmpop_cmd, -4, W, "write list slow", 0, 0, 0),
    C("blpop", blpop_cmd, -3, W | NS | CMD_BLOCKING, "write list slow blocking", 1, -2, 1),
    C("brpop", brpop_cmd, -3, W | NS | CMD_BLOCKING, "write list slow blocking", 1, -2, 1),
    C("blmove", blmove_cmd, 6, W | M | NS | CMD_BLOCKING, "write list slow blocking", 1, 2, 1),
    C("brpoplpush", brpoplpush_cmd, 4, W | M | NS | CMD_BLOCKING, "write list slow blocking", 1, 2, 1),
    C("blmpop", blmpop_cmd, -5, W | CMD_BLOCKING, "write list slow blocking", 0, 0, 0),
    /* hashes */
    C("hset", hset_cmd, -4, W | M | F, "write hash fast", 1, 1, 1),
    C("hsetnx", hsetnx_cmd, 4, W | M | F, "write hash fast", 1, 1, 1),
    C("hget", hget_cmd, 3, R | F, "read hash fast", 1, 1, 1),
    C("hmset", hmset_cmd, -4, W | M | F, "write hash fast", 1, 1, 1),
    C("hmget", hmget_cmd, -3, R | F, "read hash fast", 1, 1, 1),
    C("hdel", hdel_cmd, -3, W | F, "write hash fast", 1, 1, 1),
    C("hlen", hlen_cmd, 2, R | F, "read hash fast", 1, 1, 1),
    C("hstrlen", hstrlen_cmd, 3, R | F, "read hash fast", 1, 1, 1),
    C("hexists", hexists_cmd, 3, R | F, "read hash fast", 1, 1, 1),
    C("hkeys", hkeys_cmd, 2, R, "read hash slow", 1, 1, 1),
    C("hvals", hvals_cmd, 2, R, "read hash slow", 1, 1, 1),
    C("hgetall", hgetall_cmd, 2, R, "read hash slow", 1, 1, 1),
    C("hincrby", hincrby_cmd, 4, W | M | F, "write hash fast", 1, 1, 1),
    C("hincrbyfloat", hincrbyfloat_cmd, 4, W | M | F, "write hash fast", 1, 1, 1),
    C("hrandfield", hrandfield_cmd, -2, R, "read hash slow", 1, 1, 1),
    C("hscan", hscan_cmd, -3, R, "read hash slow", 1, 1, 1),
    /* sets */
    C("sadd", sadd_cmd, -3, W | M | F, "write set fast", 1, 1, 1),
    C("srem", srem_cmd, -3, W | F, "write set fast", 1, 1, 1),
    C("smembers", smembers_cmd, 2, R, "read set slow", 1, 1, 1),
    C("sismember", sismember_cmd, 3, R | F, "read set fast", 1, 1, 1),
    C("smismember", smismember_cmd, -3, R | F, "read set fast", 1, 1, 1),
    C("scard", scard_cmd, 2, R | F, "read set fast", 1, 1, 1),
    C("spop", spop_cmd, -2, W | F, "write set fast", 1, 1, 1),
    C("srandmember", srandmember_cmd, -2, R, "read set slow", 1, 1, 1),
    C("sinter", sinter_cmd, -2, R, "read set slow", 1, -1, 1),
    C("sunion", sunion_cmd, -2, R, "read set slow", 1, -1, 1),
    C("sdiff", sdiff_cmd, -2, R, "read set slow", 1, -1, 1),
    C("sinterstore", sinterstore_cmd, -3, W | M, "write set slow", 1, -1, 1),
    C("sunionstore", sunionstore_cmd, -3, W | M, "write set slow", 1, -1, 1),
    C("sdiffstore", sdiffstore_cmd, -3, W | M, "write set slow", 1, -1, 1),
    C("sintercard", sintercard_cmd, -3, R, "read set slow", 0, 0, 0),
    C("smove", smove_cmd, 4, W | F, "write set fast", 1, 2, 1),
    C("sscan", sscan_cmd, -3, R, "read set slow", 1, 1, 1),
    /* sorted sets */
    C("zadd", zadd_cmd, -4, W | M | F, "write sortedset fast", 1, 1, 1),
    C("zrem", zrem_cmd, -3, W | F, "write sortedset fast", 1, 1, 1),
    C("zcard", zcard_cmd, 2, R | F, "read sortedset fast", 1, 1, 1),
    C("zscore", zscore_cmd, 3, R | F, "read sortedset fast", 1, 1, 1),
    C("zmscore", zmscore_cmd, -3, R | F, "read sortedset fast", 1, 1, 1),
    C("zincrby", zincrby_cmd, 4, W | M | F, "write sortedset fast", 1, 1, 1),
    C("zrank", zrank_cmd, 3, R | F, "read sortedset fast", 1, 1, 1),
    C("zrevrank", zrevrank_cmd, 3, R | F, "read sortedset fast", 1, 1, 1),
    C("zrange", zrange_cmd, -4, R, "read sortedset slow", 1, 1, 1),
    C("zrangebyscore", zrangebyscore_cmd, -4, R, "read sortedset slow", 1, 1, 1),
    C("zrevrangebyscore", zrevrangebyscore_cmd, -4, R, "read sortedset slow", 1, 1, 1),
    C("zrangebylex", zrangebylex_cmd, -4, R, "read sortedset slow", 1, 1, 1),
    C("zrevrangebylex", zrevrangebylex_cmd, -4, R, "read sortedset slow", 1, 1, 1),
    C("zrevrange", zrevrange_cmd, -4, R, "read sortedset slow", 1, 1, 1),
    C("zcount", zcount_cmd, 4, R | F, "read sortedset fast", 1, 1, 1),
    C("zlexcount", zlexcount_cmd, 4, R | F, "read sortedset fast", 1, 1, 1),
    C("zpopmin", zpopmin_cmd, -2, W | F, "write sortedset fast", 1, 1, 1),
    C("zpopmax", zpopmax_cmd, -2, W | F, "write sortedset fast", 1, 1, 1),
    C("zmpop", zmpop_cmd, -4, W, "write sortedset slow", 0, 0, 0),
    C("bzpopmin", bzpopmin_cmd, -3, W | NS | F | CMD_BLOCKING, "write sortedset fast blocking", 1, -2, 1),
    C("bzpopmax", bzpopmax_cmd, -3, W | NS | F | CMD_BLOCKING, "write sortedset fast blocking", 1, -2, 1),
    C("bzmpop", bzmpop_cmd, -5, W | CMD_BLOCKING, "write sortedset slow blocking", 0, 0, 0),
    C("zremrangebyrank", zremrangebyrank_cmd, 4, W, "write sortedset slow", 1, 1, 1),
    C("zremrangebyscore", zremrangebyscore_cmd, 4, W, "write sortedset slow", 1, 1, 1),
    C("zremrangebylex", zremrangebylex_cmd, 4, W, "write sortedset slow", 1, 1, 1),
    C("zunion", zunion_cmd, -3, R, "read sortedset slow", 0, 0, 0),
    C("zinter", zinter_cmd, -3, R, "read sortedset slow", 0, 0, 0),
    C("zdiff", zdiff_cmd, -3, R, "read sortedset slow", 0, 0, 0),
    C("zunionstore", zunionstore_cmd, -4, W | M, "write sortedset slow", 1, 1, 1),
    C("zinterstore", zinterstore_cmd, -4, W | M, "write sortedset slow", 1, 1, 1),
    C("zdiffstore", zdiffstore_cmd, -4, W | M, "write sortedset slow", 1, 1, 1),
    C("zintercard", zintercard_cmd, -3, R, "read sortedset slow", 0, 0, 0),
    C("zrandmember", zrandmember_cmd, -2, R, "read sortedset slow", 1, 1, 1),
    C("zrangestore", zrangestore_cmd, -5, W | M, "write sortedset slow", 1, 2, 1),
    C("zscan", zscan_cmd, -3, R, "read sortedset slow", 1, 1, 1),
    /* streams */
    C("xadd", xadd_cmd, -5, W | M | F, "write stream fast", 1, 1, 1),
    C("xlen", xlen_cmd, 2, R | F, "read stream fast", 1, 1, 1),
    C("xrange", xrange_cmd, -4, R, "read stream slow", 1, 1, 1),
    C("xrevrange", xrevrange_cmd, -4, R, "read stream slow", 1, 1, 1),
    C("xread", xread_cmd, -4, R | CMD_BLOCKING, "read stream slow blocking", 0, 0, 0),
    C("xreadgroup", xreadgroup_cmd, -7, W | CMD_BLOCKING, "write stream slow blocking", 0, 0, 0),
    C("xdel", xdel_cmd, -3, W | F, "write stream fast", 1, 1, 1),
    C("xtrim", xtrim_cmd, -4, W, "write stream slow", 1, 1, 1),
    C("xsetid", xsetid_cmd, -3, W | M | F, "write stream fast", 1, 1, 1),
    C("xack", xack_cmd, -4, W | F, "write stream fast", 1, 1, 1),
    C("xpending", xpending_cmd, -3, R, "read stream slow", 1, 1, 1),
    C("xclaim", xclaim_cmd, -6, W | F, "write stream fast", 1, 1, 1),
    C("xautoclaim", xautoclaim_cmd, -6, W | F, "write stream fast", 1, 1, 1),
    CS("xgroup", -2, 0, "slow", xgroup_subs),
    CS("xinfo", -2, 0, "slow", xinfo_subs),
    /* INFER.* (t_infer.c): their own ACL category, so an operator can keep
     * them from untrusted users (-@infer); not in cmdmeta_gen.c, COMMAND
     * INFO shows these rows (GENERATE, EMBED and RAG: cmdmeta_infer.c's
     * records, with their key specs). */
    C("infer.load", infer_load_cmd, -3, NS | CMD_BLOCKING, "infer slow dangerous", 0, 0, 0),
    C("infer.unload", infer_unload_cmd, 2, NS, "infer slow dangerous", 0, 0, 0),
    C("infer.models", infer_models_cmd, 1, LD | ST, "infer slow", 0, 0, 0),
    /* GENERATE reads PROMPTKEY / TOKENSKEY and writes with STREAM / STORE;
     * EMBED writes with INTO; RAG reads its vector set (argv[3]), its
     * TEMPLATE key and the chunk keys its attributes name, and writes with
     * STREAM / STORE; ANSWER (RAG's prompt and generation for chunks
     * given) reads its TEMPLATE key and writes with STREAM / STORE.
     * Flagged readonly, as inferkv.so registers them: a
     * call that writes nothing is a read (replicas may serve it), one that
     * names a key it writes is a write (infer_call_writes, checked in
     * command_process).  Keys: libinfercmd's finder (getkeys_movable);
     * GENERATE's, EMBED's and ANSWER's are all optional (no_mandatory_keys). */
    C("infer.generate", infer_generate_cmd, -3, R | NS | CMD_BLOCKING | NMK, "infer read slow blocking", 0, 0, 0),
    C("infer.embed", infer_embed_cmd, -3, R | NS | CMD_BLOCKING | NMK, "infer read slow blocking", 0, 0, 0),
    C("infer.rag", infer_rag_cmd, -5, R | NS | CMD_BLOCKING, "infer read slow blocking", 3, 3, 1),
    C("infer.answer", infer_answer_cmd, -5, R | NS | CMD_BLOCKING | NMK, "infer read slow blocking", 0, 0, 0),
    C("infer.tokenize", infer_tokenize_cmd, 3, R, "infer read slow", 0, 0, 0),
    C("infer.detokenize", infer_detokenize_cmd, -3, R, "infer read slow", 0, 0, 0),
    C("infer.stats", infer_stats_cmd, 1, LD | ST, "infer slow", 0, 0, 0),
    /* what AOF rewrites without an RDB preamble write for a vector set
     * (aof_rewrite.c), the same command inferkv.so registers */
    C("infer.vsetrestore", vset_restore_cmd, -3, W | M, "infer write slow", 1, 1, 1),
    /* Vector sets (t_vset.c): one handler, libvcmd parses.  Named in upper
     * case because that is how Redis 8 registers them (arity errors say
     * 'VADD', COMMAND LIST lists VADD); lookup ignores case.  Their
     * COMMAND INFO is cmdmeta_vset.c's. */
    C("VADD", vset_cmd, -5, W | M, "write slow vectorset", 1, 1, 1),
    C("VREM", vset_cmd, 3, W, "write slow vectorset", 1, 1, 1),
    C("VSIM", vset_cmd, -4, R, "read slow vectorset", 1, 1, 1),
    C("VDIM", vset_cmd, 2, R | F, "read fast vectorset", 1, 1, 1),
    C("VCARD", vset_cmd, 2, R | F, "read fast vectorset", 1, 1, 1),
    C("VEMB", vset_cmd, -3, R | F, "read fast vectorset", 1, 1, 1),
    C("VLINKS", vset_cmd, -3, R | F, "read fast vectorset", 1, 1, 1),
    C("VINFO", vset_cmd, 2, R | F, "read fast vectorset", 1, 1, 1),
    C("VSETATTR", vset_cmd, 4, W | F, "write fast vectorset", 1, 1, 1),
    C("VGETATTR", vset_cmd, 3, R | F, "read fast vectorset", 1, 1, 1),
    C("VRANDMEMBER", vset_cmd, -2, R, "read slow vectorset", 1, 1, 1),
    C("VISMEMBER", vset_cmd, 3, R, "read slow vectorset", 1, 1, 1),
    C("VRANGE", vset_cmd, -4, R, "read slow vectorset", 1, 1, 1),
};

#define TABLE_LEN (sizeof table / sizeof table[0])

static const dict_type cmd_dict_type = {dict_hash_dstr_nocase, dict_eq_dstr_nocase, dict_free_dstr, NULL};
static dict *commands;

command *command_table(size_t *n) {
    *n = TABLE_LEN;
    return table;
}

/* A V* row must agree with libvcmd's table, which the module registers
 * from: same arity, and write exactly when libvcmd says it writes. */
static void check_vcmd_row(const command *x) {
    const vc_command *v = vc_lookup(x->name, strlen(x->name));
    if (!v)
        log_msg(LL_WARNING, "'%s' runs vset_cmd but libvcmd does not know it", x->name);
    else if (v->arity != x->arity || !v->write != !(x->flags & CMD_WRITE))
        log_msg(LL_WARNING, "'%s' disagrees with libvcmd's table (arity %d, write %d)", x->name, v->arity, v->write);
}

void commands_init(void) {
    commands = dict_create(&cmd_dict_type);
    for (size_t i = 0; commands && i < TABLE_LEN; i++) {
        dstr k = dstr_new(table[i].name);
        if (!k || dict_add(commands, k, &table[i]) != DICT_OK) dstr_free(k);
        for (command *s = table[i].subcmds; s && s->name; s++) s->parent = &table[i];
    }
    /* COMMAND INFO shows cmdmeta_gen.c while dispatch uses this table: say
     * so loudly if they disagree (a command added without regenerating). */
    for (size_t i = 0; i < TABLE_LEN; i++) {
        for (const command *x = &table[i]; x && x->name; x = x == &table[i] ? table[i].subcmds : x + 1) {
            long long arity;
            if (!strncmp(x->name, "infer.", 6)) continue; /* ours: Redis has no entry to match */
            if (!cmdmeta_arity(x->name, &arity))
                log_msg(LL_WARNING, "COMMAND INFO has no entry for '%s': run tools/cmdmeta/gen_cmdmeta.py", x->name);
            else if (arity != x->arity)
                log_msg(LL_WARNING, "arity of '%s' is %d but COMMAND INFO says %lld", x->name, x->arity, arity);
            if (x->proc == vset_cmd) check_vcmd_row(x);
        }
    }
}

const command *command_lookup(const dstr name) {
    return commands ? dict_fetch(commands, name) : NULL;
}

static const command *find_subcommand(const command *parent, const dstr sub) {
    size_t plen = strlen(parent->name);
    for (const command *s = parent->subcmds; s->name; s++) {
        const char *tail = s->name + plen + 1;
        if (strlen(tail) == dstr_len(sub) && strncasecmp(tail, sub, dstr_len(sub)) == 0) return s;
    }
    return NULL;
}

const char *command_full_name(const command *cmd, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", cmd->name);
    return buf;
}

void commands_reset_stats(void) {
    for (size_t i = 0; i < TABLE_LEN; i++) {
        table[i].calls = table[i].usec = table[i].rejected = table[i].failed = 0;
        for (command *s = table[i].subcmds; s && s->name; s++)
            s->calls = s->usec = s->rejected = s->failed = 0;
    }
}

static void reject_unknown(client *c) {
    char args[160] = "";
    size_t used = 0;
    for (int i = 1; i < c->argc && used < 128; i++) {
        int n = snprintf(args + used, sizeof args - used, "'%.*s' ", (int)(128 - used), c->argv[i]);
        if (n < 0) break;
        used += (size_t)n;
        if (used >= sizeof args) used = sizeof args - 1;
    }
    reply_errorf(c, "ERR unknown command '%.128s', with args beginning with: %s", c->argv[0], args);
}

static void reject_unknown_sub(client *c) {
    char up[64];
    snprintf(up, sizeof up, "%s", c->argv[0]);
    for (char *p = up; *p; p++) *p = (char)toupper((unsigned char)*p);
    reply_errorf(c, "ERR unknown subcommand '%.128s'. Try %s HELP.", c->argv[1], up);
}

static int arity_ok(const command *cmd, int argc) {
    return cmd->arity > 0 ? argc == cmd->arity : argc >= -cmd->arity;
}

/* Resolves argv to a command; replies and returns NULL when unknown. */
static const command *resolve(client *c) {
    const command *cmd = command_lookup(c->argv[0]);
    if (!cmd) {
        reject_unknown(c);
        return NULL;
    }
    if (cmd->subcmds && c->argc >= 2) {
        const command *sub = find_subcommand(cmd, c->argv[1]);
        if (sub) return sub;
        reject_unknown_sub(c);
        return NULL;
    }
    return cmd;
}

/* The command argv names, with its subcommand, or NULL; NULL too when the
 * arity is wrong (*bad_arity set).  The AOF loader's lookup: no reply. */
const command *command_resolve(dstr *argv, int argc, int *bad_arity) {
    *bad_arity = 0;
    if (argc < 1) return NULL;
    const command *cmd = command_lookup(argv[0]);
    if (cmd && cmd->subcmds) cmd = argc >= 2 ? find_subcommand(cmd, argv[1]) : NULL;
    if (cmd && !arity_ok(cmd, argc)) {
        *bad_arity = 1;
        return NULL;
    }
    return cmd;
}

/* A command refused before it runs (Redis's rejectCommand): inside MULTI
 * it dooms the transaction, and a refused EXEC discards it at once. */
static void reject(client *c, command *mcmd, const char *msg) {
    mcmd->rejected++;
    c->cmd = NULL; /* rejected: not a failure of the command */
    if (c->flags & CF_MULTI) multi_flag_error(c);
    if (mcmd->proc == exec_cmd) multi_exec_abort(c, msg);
    else reply_error(c, msg);
}

void command_process(client *c) {
    srv.now_ms = time_ms();
    const command *cmd = resolve(c);
    if (!cmd) {
        if (c->flags & CF_MULTI) multi_flag_error(c);
        return;
    }
    command *mcmd = (command *)cmd;
    c->cmd = c->lastcmd = cmd;
    char msg[256];
    if (!arity_ok(cmd, c->argc)) {
        snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", cmd->name);
        reject(c, mcmd, msg);
        return;
    }
    if (!c->authenticated && !(cmd->flags & CMD_NO_AUTH)) {
        reject(c, mcmd, "NOAUTH Authentication required.");
        return;
    }
    /* as Redis (CMD_NO_MULTI: SAVE, SHUTDOWN): refused, not queued, and
     * the transaction is doomed; running them inside EXEC would block the
     * loop or end the server mid-transaction */
    if ((c->flags & CF_MULTI) && (cmd->flags & CMD_NO_MULTI)) {
        reject(c, mcmd, "ERR Command not allowed inside a transaction");
        return;
    }
    if (srv.maxmemory) {
        int out = evict_if_needed() == ERR;
        int denyoom = (cmd->flags & CMD_DENYOOM) || (cmd->proc == exec_cmd && multi_queued_denyoom(c));
        /* as Redis: inside MULTI queuing anything takes memory */
        if ((c->flags & CF_MULTI) && cmd->proc != exec_cmd && cmd->proc != discard_cmd &&
            cmd->proc != quit_cmd && cmd->proc != reset_cmd)
            denyoom = 1;
        if (out && denyoom) {
            reject(c, mcmd, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
    }
    /* stop-writes-on-bgsave-error: as Redis, writes and PING are refused
     * while the last background save failed (persist.c).  The INFER.*
     * write forms (STORE, STREAM, INTO) are writes here too. */
    int writes = (cmd->flags & CMD_WRITE) ||
                 (!strncmp(cmd->name, "infer.", 6) && infer_call_writes(cmd->name, c->argv, c->argc));
    if ((writes || cmd->proc == ping_cmd) && persist_writes_denied()) {
        reject(c, mcmd, "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist "
                        "to disk. Commands that may modify the data set are disabled, because this instance is "
                        "configured to report errors during writes if RDB snapshotting fails "
                        "(stop-writes-on-bgsave-error option). Please check the Redis logs for details about the "
                        "RDB error.");
        return;
    }
    /* as Redis: while the AOF cannot be written, writes are refused (an
     * acknowledged write must be in the file) */
    const char *aof_err = writes ? aof_write_error() : NULL;
    if (aof_err) {
        reject(c, mcmd, aof_err);
        return;
    }
    if (!pubsub_command_allowed(c, cmd)) {
        snprintf(msg, sizeof msg,
                 "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
                 "are allowed in this context", cmd->name);
        reject(c, mcmd, msg);
        return;
    }
    /* DEBUG ALLOC-FAIL's window: queueing inside MULTI, or the handler */
    fault_enter(c);
    if ((c->flags & CF_MULTI) && multi_maybe_queue(c)) {
        fault_leave();
        c->cmd = NULL;
        return;
    }
    long long start = mono_us();
    c->flags |= CF_EXECUTING;
    prop_call(c);
    fault_leave();
    c->flags &= ~CF_EXECUTING;
    mcmd->calls++;
    mcmd->usec += mono_us() - start;
    block_handle_ready_keys();
    c->total_cmds++;
    srv.stat_numcommands++;
    c->cmd = NULL;
}

/* ------------------------------------------------------------- COMMAND */

static const char *flag_names[] = {"write", "readonly", "denyoom", "admin", "pubsub",
                                   "noscript", "blocking", "loading", "stale", "fast",
                                   "no_auth", "may_replicate", "sentinel",
                                   "no_mandatory_keys", "allow_busy", "no_multi"};

static void reply_flags(client *c, const command *cmd) {
    unsigned f = cmd->flags;
    long n = 0;
    for (unsigned i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        if (f & (1u << i)) n++;
    int movable = infer_keyed(cmd->name) ||
                  (cmd->first_key == 0 && (!strcmp(cmd->name, "lmpop") || !strcmp(cmd->name, "zmpop") ||
                                          !strcmp(cmd->name, "sintercard") || !strcmp(cmd->name, "zunion") ||
                                          !strcmp(cmd->name, "zinter") || !strcmp(cmd->name, "zdiff") ||
                                          !strcmp(cmd->name, "zintercard")));
    reply_set_len(c, n + movable);
    for (unsigned i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
        if (f & (1u << i)) reply_status(c, flag_names[i]);
    if (movable) reply_status(c, "movablekeys");
}

static void reply_acl(client *c, const command *cmd) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", cmd->acl ? cmd->acl : "");
    long n = 0;
    for (char *s = NULL, *t = strtok_r(buf, " ", &s); t; t = strtok_r(NULL, " ", &s)) n++;
    reply_set_len(c, n);
    snprintf(buf, sizeof buf, "%s", cmd->acl ? cmd->acl : "");
    for (char *s = NULL, *t = strtok_r(buf, " ", &s); t; t = strtok_r(NULL, " ", &s)) {
        char cat[64];
        snprintf(cat, sizeof cat, "@%s", t);
        reply_status(c, cat);
    }
}

void command_info_reply(client *c, const command *cmd) {
    if (cmdmeta_reply(c, cmd->name)) return;
    /* Not in cmdmeta_gen.c (regenerate it): what the table knows. */
    reply_array_len(c, 10);
    reply_bulk_cstr(c, cmd->name);
    reply_ll(c, cmd->arity);
    reply_flags(c, cmd);
    reply_ll(c, cmd->first_key);
    reply_ll(c, cmd->last_key);
    reply_ll(c, cmd->key_step);
    reply_acl(c, cmd);
    reply_set_len(c, 0);   /* tips */
    reply_array_len(c, 0); /* key specs */
    long nsub = 0;
    for (const command *s = cmd->subcmds; s && s->name; s++) nsub++;
    reply_array_len(c, nsub);
    for (const command *s = cmd->subcmds; s && s->name; s++) command_info_reply(c, s);
}

static const command *lookup_full(const dstr name) {
    const char *bar = memchr(name, '|', dstr_len(name));
    if (!bar) return command_lookup(name);
    dstr parent = dstr_newlen(name, (size_t)(bar - name));
    if (!parent) return NULL;
    const command *p = command_lookup(parent);
    dstr_free(parent);
    if (!p || !p->subcmds) return NULL;
    dstr sub = dstr_new(bar + 1);
    if (!sub) return NULL;
    const command *s = find_subcommand(p, sub);
    dstr_free(sub);
    return s;
}

static void command_list(client *c) {
    const char *filter = NULL, *arg = NULL;
    if (c->argc == 5 && arg_is(c->argv[2], "filterby")) {
        filter = c->argv[3];
        arg = c->argv[4];
        if (!arg_is(c->argv[3], "module") && !arg_is(c->argv[3], "aclcat") && !arg_is(c->argv[3], "pattern")) {
            reply_syntax_error(c);
            return;
        }
    } else if (c->argc != 2) {
        reply_syntax_error(c);
        return;
    }
    void *node = reply_defer_len(c);
    long n = 0;
    for (size_t i = 0; i < TABLE_LEN; i++) {
        const command *cmd = &table[i];
        for (int pass = 0; pass < 2; pass++) {
            const command *list = pass == 0 ? cmd : cmd->subcmds;
            for (const command *x = list; x && x->name; x++) {
                int keep = 1;
                /* the vector-set commands are Redis 8's "vectorset" module */
                if (filter && !strcasecmp(filter, "module"))
                    keep = x->proc == vset_cmd && !strcasecmp(arg, "vectorset");
                else if (filter && !strcasecmp(filter, "pattern"))
                    keep = glob_match(arg, strlen(arg), x->name, strlen(x->name), 1);
                else if (filter) {
                    char want[64];
                    snprintf(want, sizeof want, " %s ", arg);
                    char have[160];
                    snprintf(have, sizeof have, " %s ", x->acl ? x->acl : "");
                    keep = strcasestr(have, want) != NULL;
                }
                if (keep) {
                    reply_bulk_cstr(c, x->name);
                    n++;
                }
                if (pass == 0) break;
            }
        }
    }
    reply_set_deferred_array(c, node, n);
}

/* Key positions of commands whose keys follow a numkeys argument.  Replies
 * and returns 1 when cmd is one of them. */
static int getkeys_movable(client *c, const command *cmd, dstr *argv, int argc) {
    /* INFER.GENERATE / EMBED / RAG: libinfercmd's exact finder, the one
     * inferkv.so's getkeys-api answers with */
    if (infer_getkeys(c, cmd->name, argv, argc)) return 1;
    if (!strcmp(cmd->name, "xread") || !strcmp(cmd->name, "xreadgroup")) {
        /* keys follow the keyword STREAMS, paired with as many ids */
        int at = -1;
        for (int i = 1; i < argc && at < 0; i++)
            if (!strcasecmp(argv[i], "streams")) at = i;
        int n = at < 0 ? 0 : argc - at - 1;
        if (n == 0 || n % 2) {
            reply_error(c, "ERR Invalid arguments specified for command");
            return 1;
        }
        reply_array_len(c, n / 2);
        for (int k = 0; k < n / 2; k++) reply_bulk_dstr(c, argv[at + 1 + k]);
        return 1;
    }
    if (!strcmp(cmd->name, "sort")) {
        /* the sorted key, and the last STORE's key: options are skipped
         * by how many values they take (Redis's sortGetKeys), and the word
         * after STORE is itself looked at as an option */
        int store = 0;
        for (int i = 2; i < argc; i++) {
            if (!strcasecmp(argv[i], "limit")) i += 2;
            else if (!strcasecmp(argv[i], "get") || !strcasecmp(argv[i], "by")) i++;
            else if (!strcasecmp(argv[i], "store") && i + 1 < argc) store = i + 1;
        }
        reply_array_len(c, store ? 2 : 1);
        reply_bulk_dstr(c, argv[1]);
        if (store) reply_bulk_dstr(c, argv[store]);
        return 1;
    }
    static const struct { const char *name; int numkeys_at, dest_at; } movable[] = {
        {"zunionstore", 2, 1}, {"zinterstore", 2, 1}, {"zdiffstore", 2, 1}, {"zunion", 1, 0},
        {"zinter", 1, 0}, {"zdiff", 1, 0}, {"zintercard", 1, 0}, {"sintercard", 1, 0},
        {"lmpop", 1, 0}, {"zmpop", 1, 0}, {"blmpop", 2, 0}, {"bzmpop", 2, 0}};
    for (size_t i = 0; i < sizeof movable / sizeof movable[0]; i++) {
        if (strcmp(cmd->name, movable[i].name) != 0) continue;
        long long n;
        int at = movable[i].numkeys_at;
        if (at >= argc || !str_to_ll(argv[at], dstr_len(argv[at]), &n) || n < 1 || n > argc - at - 1) {
            reply_error(c, "ERR Invalid arguments specified for command");
            return 1;
        }
        int dest = movable[i].dest_at;
        reply_array_len(c, (long)n + (dest ? 1 : 0));
        if (dest) reply_bulk_dstr(c, argv[dest]);
        for (long long k = 0; k < n; k++) reply_bulk_dstr(c, argv[at + 1 + k]);
        return 1;
    }
    return 0;
}

void command_cmd(client *c) {
    static const char *help[] = {
        "(no subcommand)", "    Return details about all Redis commands.", "COUNT",
        "    Return the total number of commands in this Redis server.", "LIST",
        "    Return a list of all commands in this Redis server.", "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.", "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.", "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.", NULL};
    size_t total = 0;
    for (size_t i = 0; i < TABLE_LEN; i++) total++;
    if (c->argc == 1) {
        reply_array_len(c, (long)total);
        for (size_t i = 0; i < TABLE_LEN; i++) command_info_reply(c, &table[i]);
        return;
    }
    const dstr sub = c->argv[1];
    if (arg_is(sub, "help")) {
        reply_help(c, "COMMAND", help);
    } else if (arg_is(sub, "count")) {
        reply_ll(c, (long long)total);
    } else if (arg_is(sub, "info")) {
        if (c->argc == 2) {
            reply_array_len(c, (long)total);
            for (size_t i = 0; i < TABLE_LEN; i++) command_info_reply(c, &table[i]);
            return;
        }
        reply_array_len(c, c->argc - 2);
        for (int i = 2; i < c->argc; i++) {
            const command *cmd = lookup_full(c->argv[i]);
            if (cmd) command_info_reply(c, cmd);
            else reply_null(c);
        }
    } else if (arg_is(sub, "list")) {
        command_list(c);
    } else if (arg_is(sub, "docs")) {
        reply_map_len(c, 0);
    } else if (arg_is(sub, "getkeys")) {
        const command *cmd = lookup_full(c->argv[2]);
        if (cmd && cmd->subcmds && c->argc >= 4) cmd = find_subcommand(cmd, c->argv[3]);
        if (!cmd) {
            reply_error(c, "ERR Invalid command specified");
            return;
        }
        int argc = c->argc - 2;
        if (!arity_ok(cmd, argc)) {
            reply_error(c, "ERR Invalid number of arguments specified for command");
            return;
        }
        if (getkeys_movable(c, cmd, c->argv + 2, argc)) return;
        if (cmd->first_key == 0) {
            reply_error(c, "ERR The command has no key arguments");
            return;
        }
        int last = cmd->last_key < 0 ? argc + cmd->last_key : cmd->last_key;
        long n = 0;
        for (int k = cmd->first_key; k <= last; k += cmd->key_step) n++;
        reply_array_len(c, n);
        for (int k = cmd->first_key; k <= last; k += cmd->key_step) reply_bulk_dstr(c, c->argv[k + 2]);
    } else {
        reply_subcommand_syntax_error(c);
    }
}
