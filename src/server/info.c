/* info.c - INFO: the server's state as "field:value" lines in sections,
 * with the field names Redis uses so that monitoring tools read it. */
#include "server.h"
#include "rdb.h"

#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

static dstr human_bytes(dstr s, const char *field, unsigned long long n) {
    double d = (double)n;
    if (n < 1024) return dstr_catfmt(s, "%s:%lluB\r\n", field, n);
    if (n < 1024ULL * 1024) return dstr_catfmt(s, "%s:%.2fK\r\n", field, d / 1024);
    if (n < 1024ULL * 1024 * 1024) return dstr_catfmt(s, "%s:%.2fM\r\n", field, d / (1024 * 1024));
    return dstr_catfmt(s, "%s:%.2fG\r\n", field, d / (1024.0 * 1024 * 1024));
}

/* Each section appends to s, which it owns: on OOM it frees s and returns
 * NULL (dstr_or_free), so info_cmd's one check covers every step. */
static dstr sec_server(dstr s) {
    struct utsname u;
    uname(&u);
    long long uptime = (srv.now_ms - srv.start_ms) / 1000;
    s = dstr_or_free(s, dstr_catfmt(s,
        "# Server\r\nredis_version:%s\r\ninferkv_version:%s\r\nredis_git_sha1:00000000\r\n"
        "redis_git_dirty:0\r\nredis_mode:standalone\r\nos:%s %s %s\r\narch_bits:64\r\n"
        "multiplexing_api:epoll\r\nprocess_id:%d\r\nrun_id:%s\r\ntcp_port:%d\r\n"
        "server_time_usec:%lld\r\nuptime_in_seconds:%lld\r\nuptime_in_days:%lld\r\nhz:%d\r\n"
        "configured_hz:%d\r\nlru_clock:%u\r\nconfig_file:%s\r\nio_threads_active:0\r\n",
        INFERKV_VERSION, INFERKV_OWN_VERSION, u.sysname, u.release, u.machine, (int)getpid(), srv.runid,
        srv.port, time_us(), uptime, uptime / 86400, srv.hz, srv.hz, lru_clock_now(),
        srv.configfile ? srv.configfile : ""));
    return s;
}

static dstr sec_clients(dstr s) {
    size_t maxin = 0, maxout = 0;
    for (client *c = srv.clients; c; c = c->next) {
        if (c->qb_peak > maxin) maxin = c->qb_peak;
        if (c->reply_bytes > maxout) maxout = c->reply_bytes;
    }
    return dstr_or_free(s, dstr_catfmt(s,
        "# Clients\r\nconnected_clients:%zu\r\ncluster_connections:0\r\nmaxclients:%u\r\n"
        "client_recent_max_input_buffer:%zu\r\nclient_recent_max_output_buffer:%zu\r\n"
        "blocked_clients:%zu\r\ntracking_clients:0\r\nclients_in_timeout_table:%zu\r\n",
        clients_count(), srv.maxclients, maxin, maxout, blocked_count(), blocked_count()));
}

static size_t rss_bytes(void) {
    FILE *fp = fopen("/proc/self/statm", "r");
    if (!fp) return 0;
    unsigned long pages = 0, rss = 0;
    int n = fscanf(fp, "%lu %lu", &pages, &rss);
    fclose(fp);
    return n == 2 ? rss * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

static const char *policy_name(int p) {
    static const char *names[] = {"noeviction", "allkeys-lru", "volatile-lru", "allkeys-random",
                                  "volatile-random", "volatile-ttl", "allkeys-lfu", "volatile-lfu"};
    return p >= 0 && p < 8 ? names[p] : "unknown";
}

static dstr sec_memory(dstr s) {
    size_t used = km_used(), rss = rss_bytes();
    if (used > srv.stat_peak_memory) srv.stat_peak_memory = used;
    s = dstr_or_free(s, dstr_cat(s, "# Memory\r\n"));
    if (!s) return NULL;
    s = dstr_or_free(s, dstr_catfmt(s, "used_memory:%zu\r\n", used));
    if (s) s = dstr_or_free(s, human_bytes(s, "used_memory_human", used));
    if (s) s = dstr_or_free(s, dstr_catfmt(s, "used_memory_rss:%zu\r\n", rss));
    if (s) s = dstr_or_free(s, human_bytes(s, "used_memory_rss_human", rss));
    if (s) s = dstr_or_free(s, dstr_catfmt(s, "used_memory_peak:%zu\r\n", srv.stat_peak_memory));
    if (s) s = dstr_or_free(s, human_bytes(s, "used_memory_peak_human", srv.stat_peak_memory));
    if (s) s = dstr_or_free(s, dstr_catfmt(s, "maxmemory:%llu\r\n", srv.maxmemory));
    if (s) s = dstr_or_free(s, human_bytes(s, "maxmemory_human", srv.maxmemory));
    if (s) s = dstr_or_free(s, dstr_catfmt(s, "maxmemory_policy:%s\r\nmem_fragmentation_ratio:%.2f\r\n"
                              "mem_allocator:libc\r\n",
                           policy_name(srv.maxmemory_policy), used ? (double)rss / (double)used : 0.0));
    /* The engine's memory, beside the dataset's and not part of it:
     * used_memory (what maxmemory evicts against) counts the dataset only. */
    if (s) s = infer_info_memory(s);
    return s;
}

static dstr sec_persistence(dstr s) { return persist_info(s); }

static dstr sec_stats(dstr s) {
    long long ops = 0, channels, patterns, shard;
    for (int i = 0; i < 16; i++) ops += srv.stat_ops_sec[i];
    pubsub_totals(&channels, &patterns, &shard);
    s = dstr_or_free(s, dstr_catfmt(s,
        "# Stats\r\ntotal_connections_received:%lld\r\ntotal_commands_processed:%lld\r\n"
        "instantaneous_ops_per_sec:%lld\r\ntotal_net_input_bytes:%lld\r\ntotal_net_output_bytes:%lld\r\n"
        "rejected_connections:%lld\r\nexpired_keys:%lld\r\nexpired_stale_perc:%.2f\r\n"
        "expire_cycle_cpu_milliseconds:%lld\r\nevicted_keys:%lld\r\nevicted_clients:%lld\r\n"
        "keyspace_hits:%lld\r\nkeyspace_misses:%lld\r\npubsub_channels:%lld\r\npubsub_patterns:%lld\r\n"
        "pubsubshard_channels:%lld\r\n"
        "total_error_replies:%lld\r\nclient_query_buffer_limit_disconnections:%lld\r\n"
        "client_output_buffer_limit_disconnections:%lld\r\n",
        srv.stat_numconnections, srv.stat_numcommands, ops / 16, srv.stat_net_input_bytes,
        srv.stat_net_output_bytes, srv.stat_rejected_conn, srv.stat_expiredkeys,
        (double)srv.stat_expired_stale_perc_x100 / 100.0, srv.stat_expire_cycle_time_used / 1000,
        srv.stat_evictedkeys, srv.stat_evicted_clients, srv.stat_keyspace_hits, srv.stat_keyspace_misses,
        channels, patterns, shard, srv.stat_total_error_replies, srv.stat_client_qbuf_limit_disconnections,
        srv.stat_client_outbuf_limit_disconnections));
    return s ? persist_info_stats(s) : s; /* latest_fork_usec, total_forks */
}

static dstr sec_replication(dstr s) {
    return dstr_or_free(s, dstr_catfmt(s, "# Replication\r\nrole:master\r\nconnected_slaves:0\r\nmaster_replid:%s\r\n"
                          "master_repl_offset:0\r\n", srv.runid));
}

static dstr sec_cpu(dstr s) {
    struct rusage self;
    getrusage(RUSAGE_SELF, &self);
    return dstr_or_free(s, dstr_catfmt(s, "# CPU\r\nused_cpu_sys:%ld.%06ld\r\nused_cpu_user:%ld.%06ld\r\n",
                       (long)self.ru_stime.tv_sec, (long)self.ru_stime.tv_usec,
                       (long)self.ru_utime.tv_sec, (long)self.ru_utime.tv_usec));
}

static dstr stat_line(dstr s, const command *cmd) {
    if (!cmd->calls && !cmd->rejected && !cmd->failed) return s;
    return dstr_catfmt(s, "cmdstat_%s:calls=%lld,usec=%lld,usec_per_call=%.2f,rejected_calls=%lld,failed_calls=%lld\r\n",
                       cmd->name, cmd->calls, cmd->usec,
                       cmd->calls ? (double)cmd->usec / (double)cmd->calls : 0.0, cmd->rejected, cmd->failed);
}

static dstr sec_commandstats(dstr s) {
    size_t n;
    command *t = command_table(&n);
    s = dstr_or_free(s, dstr_cat(s, "# Commandstats\r\n"));
    for (size_t i = 0; s && i < n; i++) {
        s = dstr_or_free(s, stat_line(s, &t[i]));
        for (command *x = t[i].subcmds; s && x && x->name; x++) s = dstr_or_free(s, stat_line(s, x));
    }
    return s;
}

static dstr sec_keyspace(dstr s) {
    s = dstr_or_free(s, dstr_cat(s, "# Keyspace\r\n"));
    for (int i = 0; s && i < srv.dbnum; i++) {
        kdb *db = &srv.dbs[i];
        size_t keys = dict_size(db->keys);
        if (!keys) continue;
        s = dstr_or_free(s, dstr_catfmt(s, "db%d:keys=%zu,expires=%zu,avg_ttl=%lld\r\n", i, keys,
                        dict_size(db->expires), db->avg_ttl));
    }
    return s;
}

/* ---- errorstats
 * One counter per error code, the reply's first word ("ERR", "WRONGTYPE",
 * "NOGROUP"), as Redis counts them: a code is at most 32 bytes, and a reply
 * with no space in its first 32 bytes counts as ERR.  Kept sorted, so INFO
 * lists them in Redis's order.  The codes come from our own replies, so
 * there are few; a table full at ERRORSTAT_MAX codes counts any new code
 * under ERR rather than grow. */
#define ERRORSTAT_MAX 128
#define ERRORSTAT_LEN 32

static struct errorstat {
    char code[ERRORSTAT_LEN + 1];
    long long count;
} errorstats[ERRORSTAT_MAX];
static int n_errorstats;

/* Byte order, a prefix first: the order Redis lists them in. */
static int code_cmp(const char *a, const char *b, size_t blen) {
    size_t alen = strlen(a);
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static void errorstat_add(const char *code, size_t len) {
    int lo = 0, hi = n_errorstats;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (code_cmp(errorstats[mid].code, code, len) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < n_errorstats && code_cmp(errorstats[lo].code, code, len) == 0) {
        errorstats[lo].count++;
        return;
    }
    int is_err = len == 3 && !memcmp(code, "ERR", 3);
    if (n_errorstats >= ERRORSTAT_MAX - 1 && !is_err) { /* the last slot is kept for ERR */
        errorstat_add("ERR", 3);
        return;
    }
    memmove(&errorstats[lo + 1], &errorstats[lo], (size_t)(n_errorstats - lo) * sizeof errorstats[0]);
    memcpy(errorstats[lo].code, code, len);
    errorstats[lo].code[len] = '\0';
    errorstats[lo].count = 1;
    n_errorstats++;
}

void errorstat_count(const char *msg) {
    if (msg[0] == '-') msg++;
    size_t n = strnlen(msg, ERRORSTAT_LEN + 1);
    const char *sp = memchr(msg, ' ', n < ERRORSTAT_LEN ? n : ERRORSTAT_LEN);
    if (sp && sp > msg) errorstat_add(msg, (size_t)(sp - msg));
    else errorstat_add("ERR", 3);
}

void errorstat_reset(void) { n_errorstats = 0; }

static dstr sec_errorstats(dstr s) {
    s = dstr_or_free(s, dstr_cat(s, "# Errorstats\r\n"));
    for (int i = 0; s && i < n_errorstats; i++)
        s = dstr_or_free(s, dstr_catfmt(s, "errorstat_%s:count=%lld\r\n", errorstats[i].code, errorstats[i].count));
    return s;
}

/* Sections a Redis without modules or cluster mode prints, for tools that
 * look for them. */
static dstr sec_modules(dstr s) { return dstr_or_free(s, dstr_cat(s, "# Modules\r\n")); }
static dstr sec_cluster(dstr s) { return dstr_or_free(s, dstr_cat(s, "# Cluster\r\ncluster_enabled:0\r\n")); }

typedef struct section {
    const char *name;
    dstr (*fn)(dstr);
    int in_default;
} section;

static const section sections[] = {
    {"server", sec_server, 1}, {"clients", sec_clients, 1}, {"memory", sec_memory, 1},
    {"persistence", sec_persistence, 1}, {"stats", sec_stats, 1},
    {"replication", sec_replication, 1}, {"cpu", sec_cpu, 1}, {"modules", sec_modules, 1},
    {"commandstats", sec_commandstats, 0}, {"errorstats", sec_errorstats, 1},
    {"cluster", sec_cluster, 1}, {"keyspace", sec_keyspace, 1},
    {"infer", infer_info_section, 0},
};
#define NSECTIONS (sizeof sections / sizeof sections[0])

static int wanted(client *c, const section *sec) {
    if (c->argc == 1) return sec->in_default;
    for (int i = 1; i < c->argc; i++) {
        if (arg_is(c->argv[i], "all") || arg_is(c->argv[i], "everything")) return 1;
        if (arg_is(c->argv[i], "default") && sec->in_default) return 1;
        if (arg_is(c->argv[i], sec->name)) return 1;
    }
    return 0;
}

void info_cmd(client *c) {
    dstr s = dstr_empty();
    int first = 1;
    for (size_t i = 0; s && i < NSECTIONS; i++) {
        if (!wanted(c, &sections[i])) continue;
        if (!first) s = dstr_or_free(s, dstr_cat(s, "\r\n"));
        if (s) s = sections[i].fn(s);
        first = 0;
    }
    if (!s) {
        reply_error(c, "ERR out of memory");
        return;
    }
    reply_verbatim(c, s, dstr_len(s), "txt");
    dstr_free(s);
}

dstr info_section_text(const char *name, dstr s) {
    for (size_t i = 0; s && i < NSECTIONS; i++)
        if (!strcasecmp(name, sections[i].name)) return sections[i].fn(s);
    return s;
}
