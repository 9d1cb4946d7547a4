/* slowlog.c - SLOWLOG: the commands that ran longer than
 * slowlog-log-slower-than microseconds (-1: none, 0: all), newest first, at
 * most slowlog-max-len of them, in Redis's entry format so that redis-cli
 * and monitoring tools read it unchanged:
 *
 *   id, unix time, microseconds, arguments, client ip:port, client name
 *
 * The time is the command's own run time, measured around its handler in
 * prop_call() (so a command inside EXEC is logged by itself and EXEC is
 * not, as in Redis); the wait of a blocked command is not counted and such
 * a command is logged only if its first run was slow.  An entry keeps at
 * most SL_MAX_ARGC arguments of at most SL_MAX_STRING bytes each, the rest
 * summarised, so a slow MSET of a million keys cannot pin its arguments in
 * memory; passwords (AUTH, HELLO ... AUTH, CONFIG SET of a sensitive
 * setting) are stored as "(redacted)". */
#include "server.h"

#include <string.h>
#include <strings.h>

#define SL_MAX_ARGC 32
#define SL_MAX_STRING 128

long long slowlog_slower_than = 10000, slowlog_max_len = 128;

typedef struct sl_entry {
    long long id, time, duration;
    int argc;
    dstr *argv;
    dstr peer, name;
    struct sl_entry *newer, *older;
} sl_entry;

static struct {
    sl_entry *newest, *oldest;
    long long len, next_id;
} L;

static void entry_free(sl_entry *e) {
    for (int i = 0; i < e->argc; i++) dstr_free(e->argv[i]);
    km_free(e->argv);
    dstr_free(e->peer);
    dstr_free(e->name);
    km_free(e);
}

static void drop_oldest(void) {
    sl_entry *e = L.oldest;
    L.oldest = e->newer;
    if (L.oldest) L.oldest->older = NULL;
    else L.newest = NULL;
    L.len--;
    entry_free(e);
}

static void trim(void) {
    while (L.len > slowlog_max_len && L.oldest) drop_oldest();
}

/* Which arguments are passwords: AUTH's, HELLO's after AUTH, and the value
 * of a sensitive setting in CONFIG SET. */
static int redacted(const command *cmd, dstr *argv, int argc, int i) {
    if (!strcmp(cmd->name, "auth")) return i >= 1;
    if (!strcmp(cmd->name, "hello")) {
        for (int k = 2; k < argc && k < i; k++)
            if (!strcasecmp(argv[k], "auth") && (i == k + 1 || i == k + 2)) return 1;
        return 0;
    }
    int config_set = !strcmp(cmd->name, "config|set") ||
                     (!strcmp(cmd->name, "config") && argc > 1 && !strcasecmp(argv[1], "set"));
    if (config_set) return i >= 3 && (i - 3) % 2 == 0 && config_is_sensitive(argv[i - 1]);
    return 0;
}

/* One logged argument: the first SL_MAX_STRING bytes and how many more. */
static dstr shown_arg(const dstr a) {
    size_t n = dstr_len(a);
    if (n <= SL_MAX_STRING) return dstr_newlen(a, n);
    dstr s = dstr_newlen(a, SL_MAX_STRING);
    return s ? dstr_or_free(s, dstr_catfmt(s, "... (%zu more bytes)", n - SL_MAX_STRING)) : NULL;
}

void slowlog_push(client *c, const command *cmd, long long duration_us) {
    if (slowlog_slower_than < 0 || duration_us < slowlog_slower_than || slowlog_max_len == 0) return;
    if (!strcmp(cmd->name, "exec")) return; /* its commands are logged one by one */
    sl_entry *e = km_calloc(sizeof *e);
    int argc = c->argc > SL_MAX_ARGC ? SL_MAX_ARGC : c->argc;
    if (!e || !(e->argv = km_calloc(sizeof(dstr) * (size_t)argc))) goto oom;
    for (int i = 0; i < argc; i++, e->argc++) {
        if (i == SL_MAX_ARGC - 1 && c->argc > SL_MAX_ARGC) {
            dstr s = dstr_empty();
            e->argv[i] = s ? dstr_or_free(s, dstr_catfmt(s, "... (%d more arguments)", c->argc - SL_MAX_ARGC + 1))
                           : NULL;
        }
        else if (redacted(cmd, c->argv, c->argc, i))
            e->argv[i] = dstr_new("(redacted)");
        else
            e->argv[i] = shown_arg(c->argv[i]);
        if (!e->argv[i]) goto oom;
    }
    e->peer = dstr_new(c->addr);
    e->name = c->name ? dstr_dup(c->name) : dstr_empty();
    if (!e->peer || !e->name) goto oom;
    e->id = L.next_id++;
    e->time = srv.now_ms / 1000;
    e->duration = duration_us;
    e->older = L.newest;
    if (L.newest) L.newest->newer = e;
    else L.oldest = e;
    L.newest = e;
    L.len++;
    trim();
    return;
oom: /* the log is best effort: a command is never failed for it */
    if (e) entry_free(e);
}

void slowlog_reset(void) {
    while (L.oldest) drop_oldest();
}

void slowlog_apply_max_len(void) { trim(); }

static void reply_entry(client *c, const sl_entry *e) {
    reply_array_len(c, 6);
    reply_ll(c, e->id);
    reply_ll(c, e->time);
    reply_ll(c, e->duration);
    reply_array_len(c, e->argc);
    for (int i = 0; i < e->argc; i++) reply_bulk_dstr(c, e->argv[i]);
    reply_bulk_dstr(c, e->peer);
    reply_bulk_dstr(c, e->name);
}

/* SLOWLOG GET [count] | LEN | RESET | HELP
 * GET: O(N) in the entries returned; LEN and RESET: O(1) and O(N). */
void slowlog_cmd(client *c) {
    const dstr sub = c->argv[1];
    if (arg_is(sub, "help") && c->argc == 2) {
        static const char *help[] = {
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            NULL};
        reply_help(c, "SLOWLOG", help);
    } else if (arg_is(sub, "reset") && c->argc == 2) {
        slowlog_reset();
        reply_ok(c);
    } else if (arg_is(sub, "len") && c->argc == 2) {
        reply_ll(c, L.len);
    } else if (arg_is(sub, "get") && (c->argc == 2 || c->argc == 3)) {
        long long count = 10;
        if (c->argc == 3) {
            /* one message for both, as Redis answers */
            if (!str_to_ll(c->argv[2], dstr_len(c->argv[2]), &count) || count < -1) {
                reply_error(c, "ERR count should be greater than or equal to -1");
                return;
            }
            if (count == -1) count = L.len;
        }
        long long n = count < L.len ? count : L.len;
        reply_array_len(c, n);
        const sl_entry *e = L.newest;
        for (long long i = 0; i < n && e; i++, e = e->older) reply_entry(c, e);
    } else {
        reply_subcommand_syntax_error(c);
    }
}
