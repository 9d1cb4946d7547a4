/* t_conn.c - connection and server commands: PING ECHO QUIT SELECT SWAPDB
 * DBSIZE FLUSHDB FLUSHALL TIME HELLO AUTH RESET SHUTDOWN CLIENT DEBUG
 * MEMORY.  INFO is in info.c, CONFIG in config.c, COMMAND in command.c,
 * SAVE BGSAVE LASTSAVE (and SHUTDOWN's save, DEBUG RELOAD) in persist.c. */
#include "server.h"
#include "aof.h"
#include "rdb.h"
#include "vset.h"

#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

void ping_cmd(client *c) {
    if (c->argc > 2) {
        reply_error(c, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if ((c->flags & CF_PUBSUB) && c->resp == 2) {
        /* RESP2 subscribed mode: replies look like messages */
        reply_array_len(c, 2);
        reply_bulk_cstr(c, "pong");
        if (c->argc == 2) reply_bulk_dstr(c, c->argv[1]);
        else reply_bulk(c, "", 0);
        return;
    }
    if (c->argc == 2) reply_bulk_dstr(c, c->argv[1]);
    else reply_status(c, "PONG");
}

void echo_cmd(client *c) { reply_bulk_dstr(c, c->argv[1]); }

void quit_cmd(client *c) {
    reply_ok(c);
    c->flags |= CF_CLOSE_AFTER_REPLY;
}

void select_cmd(client *c) {
    long long id;
    if (arg_ll_range(c, c->argv[1], INT_MIN, INT_MAX, &id, NULL) != OK) return;
    kdb *db = db_get((int)id);
    if (!db) {
        reply_error(c, "ERR DB index is out of range");
        return;
    }
    c->db = db;
    reply_ok(c);
}

void swapdb_cmd(client *c) {
    long long a, b;
    if (!str_to_ll(c->argv[1], dstr_len(c->argv[1]), &a) || a < INT_MIN || a > INT_MAX) {
        reply_error(c, "ERR invalid first DB index");
        return;
    }
    if (!str_to_ll(c->argv[2], dstr_len(c->argv[2]), &b) || b < INT_MIN || b > INT_MAX) {
        reply_error(c, "ERR invalid second DB index");
        return;
    }
    if (db_swap((int)a, (int)b) != OK) {
        reply_error(c, "ERR DB index is out of range");
        return;
    }
    multi_touch_swapped((int)a, (int)b);
    block_signal_swapped((int)a, (int)b);
    srv.dirty++; /* as Redis: a write (the AOF replays it), though no key event */
    reply_ok(c);
}

void dbsize_cmd(client *c) { reply_ll(c, (long long)dict_size(c->db->keys)); }

static int flush_flags_ok(client *c) {
    if (c->argc == 1) return 1;
    if (c->argc == 2 && (arg_is(c->argv[1], "async") || arg_is(c->argv[1], "sync"))) return 1;
    reply_syntax_error(c);
    return 0;
}

void flushdb_cmd(client *c) {
    if (!flush_flags_ok(c)) return;
    multi_touch_db(c->db);
    srv.dirty += db_flush(c->db);
    reply_ok(c);
}

/* As Redis: a BGSAVE in progress is dropped (it would bring the keys
 * back) and, with save points configured, the empty dataset is saved at
 * once (persist.c). */
void flushall_cmd(client *c) {
    if (!flush_flags_ok(c)) return;
    for (int i = 0; i < srv.dbnum; i++) {
        multi_touch_db(&srv.dbs[i]);
        srv.dirty += db_flush(&srv.dbs[i]);
    }
    persist_after_flushall();
    srv.dirty++;
    reply_ok(c);
}

void time_cmd(client *c) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    reply_array_len(c, 2);
    reply_bulk_ll(c, (long long)tv.tv_sec);
    reply_bulk_ll(c, (long long)tv.tv_usec);
}

/* One user ("default") for now: ACL users are a later issue. */
static int check_password(const char *user, const dstr pass) {
    if (strcasecmp(user, "default") != 0 && strcmp(user, "default") != 0) return 0;
    if (!srv.requirepass) return 1;
    return dstr_len(pass) == dstr_len(srv.requirepass) &&
           memcmp(pass, srv.requirepass, dstr_len(pass)) == 0;
}

void auth_cmd(client *c) {
    if (c->argc > 3) {
        reply_syntax_error(c);
        return;
    }
    if (c->argc == 2 && !srv.requirepass) {
        reply_error(c, "ERR AUTH <password> called without any password configured for the default user. "
                       "Are you sure your configuration is correct?");
        return;
    }
    const char *user = c->argc == 3 ? c->argv[1] : "default";
    const dstr pass = c->argv[c->argc - 1];
    if (strcmp(user, "default") != 0 || !check_password(user, pass)) {
        reply_error(c, "WRONGPASS invalid username-password pair or user is disabled.");
        return;
    }
    c->authenticated = 1;
    reply_ok(c);
}

static int valid_client_name(const dstr name) {
    for (size_t i = 0; i < dstr_len(name); i++)
        if (name[i] < '!' || name[i] > '~') return 0;
    return 1;
}

static int set_name(client *c, const dstr name) {
    if (!valid_client_name(name)) {
        reply_error(c, "ERR Client names cannot contain spaces, newlines or special characters.");
        return ERR;
    }
    dstr_free(c->name);
    c->name = dstr_len(name) ? dstr_dup(name) : NULL;
    return OK;
}

void hello_cmd(client *c) {
    long long ver = 0;
    int i = 1;
    if (c->argc >= 2) {
        if (!str_to_ll(c->argv[1], dstr_len(c->argv[1]), &ver)) {
            reply_error(c, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            reply_error(c, "NOPROTO unsupported protocol version");
            return;
        }
        i = 2;
    }
    dstr user = NULL, pass = NULL;
    for (; i < c->argc; i++) {
        int more = c->argc - i - 1;
        if (arg_is(c->argv[i], "auth") && more >= 2) {
            user = c->argv[i + 1];
            pass = c->argv[i + 2];
            i += 2;
        } else if (arg_is(c->argv[i], "setname") && more >= 1) {
            /* Redis 7.0 renames at once, even if a later option fails */
            if (set_name(c, c->argv[i + 1]) != OK) return;
            i++;
        } else {
            reply_errorf(c, "ERR Syntax error in HELLO option '%s'", c->argv[i]);
            return;
        }
    }
    if (user) {
        if (strcmp(user, "default") != 0 || !check_password(user, pass)) {
            reply_error(c, "WRONGPASS invalid username-password pair or user is disabled.");
            return;
        }
        c->authenticated = 1;
    }
    if (!c->authenticated) {
        reply_error(c, "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                       "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
                       "select the RESP protocol version at the same time");
        return;
    }
    if (ver) c->resp = (int)ver;
    reply_map_len(c, 7);
    reply_bulk_cstr(c, "server");
    reply_bulk_cstr(c, "redis");
    reply_bulk_cstr(c, "version");
    reply_bulk_cstr(c, INFERKV_VERSION);
    reply_bulk_cstr(c, "proto");
    reply_ll(c, c->resp);
    reply_bulk_cstr(c, "id");
    reply_ll(c, (long long)c->id);
    reply_bulk_cstr(c, "mode");
    reply_bulk_cstr(c, "standalone");
    reply_bulk_cstr(c, "role");
    reply_bulk_cstr(c, "master");
    reply_bulk_cstr(c, "modules");
    reply_array_len(c, 0);
}

void reset_cmd(client *c) {
    multi_client_release(c);
    pubsub_client_release(c); /* silently, as Redis */
    c->db = &srv.dbs[0];
    c->resp = 2;
    dstr_free(c->name);
    c->name = NULL;
    c->flags &= ~CF_NO_EVICT;
    c->authenticated = srv.requirepass == NULL;
    reply_status(c, "RESET");
}

void shutdown_cmd(client *c) {
    int nosave = 0, save = 0, other = 0, abort_req = 0;
    for (int i = 1; i < c->argc; i++) {
        const dstr a = c->argv[i];
        if (arg_is(a, "nosave")) nosave = 1;
        else if (arg_is(a, "save")) save = 1;
        else if (arg_is(a, "now") || arg_is(a, "force")) other = 1;
        else if (arg_is(a, "abort")) abort_req = 1;
        else {
            reply_syntax_error(c);
            return;
        }
    }
    if ((abort_req && (nosave || save || other)) || (nosave && save)) {
        reply_syntax_error(c);
        return;
    }
    if (abort_req) {
        reply_error(c, "ERR No shutdown in progress.");
        return;
    }
    int flags = (nosave ? SHUTDOWN_NOSAVE : 0) | (save ? SHUTDOWN_SAVE : 0);
    for (int i = 1; i < c->argc; i++) {
        if (arg_is(c->argv[i], "now")) flags |= SHUTDOWN_NOW;
        if (arg_is(c->argv[i], "force")) flags |= SHUTDOWN_FORCE;
    }
    /* The final save happens here, so that its failure is this command's
     * error; on success, like Redis, the client gets no reply: the
     * connection just closes. */
    if (server_prepare_shutdown(flags) != OK) {
        reply_error(c, "ERR Errors trying to SHUTDOWN. Check logs.");
        return;
    }
    srv.shutdown_asap = 1;
}

/* ---------------------------------------------------------------- CLIENT */

static int type_matches(client *x, const char *type) {
    /* replicas arrive with a later issue */
    if (!strcasecmp(type, "pubsub")) return (x->flags & CF_PUBSUB) != 0;
    return !strcasecmp(type, "normal") && !(x->flags & CF_PUBSUB);
}

static void client_list(client *c) {
    const char *type = NULL;
    int ids_from = 0;
    if (c->argc == 4 && arg_is(c->argv[2], "type")) {
        type = c->argv[3];
        if (strcasecmp(type, "normal") && strcasecmp(type, "master") && strcasecmp(type, "replica") &&
            strcasecmp(type, "slave") && strcasecmp(type, "pubsub")) {
            reply_errorf(c, "ERR Unknown client type '%s'", type);
            return;
        }
    } else if (c->argc >= 4 && arg_is(c->argv[2], "id")) {
        ids_from = 3;
        for (int i = 3; i < c->argc; i++) {
            long long id;
            if (!str_to_ll(c->argv[i], dstr_len(c->argv[i]), &id)) {
                reply_error(c, "ERR Invalid client ID");
                return;
            }
        }
    } else if (c->argc != 2) {
        reply_syntax_error(c);
        return;
    }
    dstr out = dstr_empty();
    for (client *x = srv.clients; x && out; x = x->next) {
        if (x->fd < 0 && x != c) continue;
        if (type && !type_matches(x, type)) continue;
        if (ids_from) {
            int hit = 0;
            for (int i = ids_from; i < c->argc; i++) {
                long long id;
                str_to_ll(c->argv[i], dstr_len(c->argv[i]), &id);
                if ((uint64_t)id == x->id) hit = 1;
            }
            if (!hit) continue;
        }
        out = dstr_or_free(out, client_info_line(out, x));
        if (out) out = dstr_or_free(out, dstr_cat(out, "\n"));
    }
    if (!out) {
        reply_error(c, "ERR out of memory");
        return;
    }
    reply_verbatim(c, out, dstr_len(out), "txt");
    dstr_free(out);
}

typedef struct kill_filter {
    long long id;
    const char *addr, *laddr, *type, *user;
    int skipme;
} kill_filter;

static int kill_matches(client *c, client *x, const kill_filter *f) {
    if (f->id && (uint64_t)f->id != x->id) return 0;
    if (f->addr && strcmp(f->addr, x->addr)) return 0;
    if (f->laddr && strcmp(f->laddr, x->laddr)) return 0;
    if (f->type && !type_matches(x, f->type)) return 0;
    if (f->user && strcmp(f->user, "default")) return 0;
    if (f->skipme && x == c) return 0;
    return 1;
}

static int parse_kill_filter(client *c, kill_filter *f) {
    memset(f, 0, sizeof *f);
    f->skipme = 1;
    for (int i = 2; i < c->argc; i += 2) {
        if (i + 1 >= c->argc) goto syntax;
        const dstr opt = c->argv[i], val = c->argv[i + 1];
        if (arg_is(opt, "id")) {
            if (!str_to_ll(val, dstr_len(val), &f->id) || f->id <= 0) {
                reply_error(c, "ERR client-id should be greater than 0");
                return ERR;
            }
        } else if (arg_is(opt, "type")) {
            if (strcasecmp(val, "normal") && strcasecmp(val, "master") && strcasecmp(val, "replica") &&
                strcasecmp(val, "slave") && strcasecmp(val, "pubsub")) {
                reply_errorf(c, "ERR Unknown client type '%s'", val);
                return ERR;
            }
            f->type = val;
        } else if (arg_is(opt, "addr")) {
            f->addr = val;
        } else if (arg_is(opt, "laddr")) {
            f->laddr = val;
        } else if (arg_is(opt, "user")) {
            if (strcmp(val, "default") != 0) {
                reply_errorf(c, "ERR No such user '%s'", val);
                return ERR;
            }
            f->user = val;
        } else if (arg_is(opt, "skipme")) {
            if (arg_is(val, "yes")) f->skipme = 1;
            else if (arg_is(val, "no")) f->skipme = 0;
            else goto syntax;
        } else {
            goto syntax;
        }
    }
    return OK;
syntax:
    reply_syntax_error(c);
    return ERR;
}

static void kill_one(client *c, client *x) {
    if (x == c) c->flags |= CF_CLOSE_AFTER_REPLY;
    else client_free_async(x);
}

static void client_kill(client *c) {
    if (c->argc == 3) { /* old form: CLIENT KILL addr:port */
        for (client *x = srv.clients; x; x = x->next) {
            if (x->fd >= 0 && !(x->flags & CF_CLOSE_ASAP) && !strcmp(x->addr, c->argv[2])) {
                kill_one(c, x);
                reply_ok(c);
                return;
            }
        }
        reply_error(c, "ERR No such client");
        return;
    }
    kill_filter f;
    if (parse_kill_filter(c, &f) != OK) return;
    long long killed = 0;
    for (client *x = srv.clients; x; x = x->next) {
        if (x->fd < 0 || (x->flags & CF_CLOSE_ASAP) || !kill_matches(c, x, &f)) continue;
        kill_one(c, x);
        killed++;
    }
    reply_ll(c, killed);
}

void client_cmd(client *c) {
    static const char *help[] = {
        "GETNAME", "    Return the name of the current connection.", "ID",
        "    Return the ID of the current connection.", "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>", "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are:", "    * ADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made from the specified address",
        "    * LADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made to specified local address", "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Kill connections by type.", "    * USER <username>",
        "      Kill connections authenticated by <username>.", "    * SKIPME (YES|NO)",
        "      Skip killing current connection (default: yes).", "    * ID <client-id>",
        "      Kill connections by client id.",
        "LIST [options ...]", "    Return information about client connections. Options:",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Return clients of specified type.",
        "    * ID <client-id> [<client-id> ...]", "      Return clients of specified IDs only.",
        "NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
        "SETNAME <name>", "    Assign the name <name> to the current connection.",
        "UNBLOCK <clientid> [TIMEOUT|ERROR]", "    Unblock the specified blocked client.", NULL};
    const dstr sub = c->argv[1];
    if (arg_is(sub, "id")) {
        reply_ll(c, (long long)c->id);
    } else if (arg_is(sub, "getname")) {
        if (c->name) reply_bulk_dstr(c, c->name);
        else reply_null(c);
    } else if (arg_is(sub, "setname")) {
        if (set_name(c, c->argv[2]) == OK) reply_ok(c);
    } else if (arg_is(sub, "info")) {
        dstr e = dstr_empty();
        dstr s = e ? dstr_or_free(e, client_info_line(e, c)) : NULL;
        if (s) s = dstr_or_free(s, dstr_cat(s, "\n"));
        if (!s) {
            reply_error(c, "ERR out of memory");
            return;
        }
        reply_verbatim(c, s, dstr_len(s), "txt");
        dstr_free(s);
    } else if (arg_is(sub, "list")) {
        client_list(c);
    } else if (arg_is(sub, "kill")) {
        client_kill(c);
    } else if (arg_is(sub, "no-evict")) {
        if (arg_is(c->argv[2], "on")) c->flags |= CF_NO_EVICT;
        else if (arg_is(c->argv[2], "off")) c->flags &= ~CF_NO_EVICT;
        else {
            reply_syntax_error(c);
            return;
        }
        reply_ok(c);
    } else if (arg_is(sub, "unblock") && (c->argc == 3 || c->argc == 4)) {
        int with_error = 0;
        if (c->argc == 4) {
            if (arg_is(c->argv[3], "error")) {
                with_error = 1;
            } else if (!arg_is(c->argv[3], "timeout")) {
                reply_error(c, "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
                return;
            }
        }
        long long id;
        if (arg_ll(c, c->argv[2], &id) != OK) return;
        client *target = id > 0 ? client_by_id((uint64_t)id) : NULL;
        reply_ll(c, block_unblock_by_request(target, with_error));
    } else if (arg_is(sub, "help")) {
        reply_help(c, "CLIENT", help);
    } else {
        reply_subcommand_syntax_error(c);
    }
}

/* ------------------------------------------------------- DEBUG / MEMORY */

void debug_cmd(client *c) {
    if (arg_is(c->argv[1], "sleep") && c->argc == 3) {
        double secs;
        if (arg_double(c, c->argv[2], &secs) != OK) return;
        if (secs > 0 && secs < 3600) usleep((useconds_t)(secs * 1e6));
        reply_ok(c);
    } else if (arg_is(c->argv[1], "set-active-expire") && c->argc == 3) {
        reply_ok(c);
    } else if (arg_is(c->argv[1], "change-repl-id")) {
        reply_ok(c);
    } else if (arg_is(c->argv[1], "reload")) {
        persist_debug_reload(c);
    } else if (arg_is(c->argv[1], "alloc-fail")) {
        debug_alloc_fail(c);
    } else if (arg_is(c->argv[1], "loadaof") && c->argc == 2) {
        char err[1024];
        if (aof_debug_reload(err, sizeof err) != OK) reply_error(c, err);
        else reply_ok(c);
    } else {
        reply_errorf(c, "ERR unknown subcommand '%.128s'. Try DEBUG HELP.", c->argv[1]);
    }
}

static size_t obj_memory(kobj *o) {
    size_t n = km_usable(o);
    switch (o->type) {
    case OBJ_STRING:
        if (o->enc == ENC_RAW) n += dstr_alloc_size(o->ptr);
        break;
    case OBJ_LIST: n += klist_bytes(o->ptr); break;
    case OBJ_HASH: n += hash_memory(o); break;
    case OBJ_STREAM: n += obj_stream_memory(o); break;
    case OBJ_VSET: n += vset_memory(o->ptr); break;
    default: n += 64 * (o->type == OBJ_SET ? set_len(o) : zset_len(o->ptr)); break;
    }
    return n;
}

void memory_cmd(client *c) {
    static const char *help[] = {"USAGE <key> [SAMPLES <count>]",
                                 "    Return memory in bytes used by <key> and its value. Nested values are",
                                 "    sampled up to <count> times (default: 5, 0 means sample all).", NULL};
    if (arg_is(c->argv[1], "usage")) {
        if (c->argc != 3 && !(c->argc == 5 && arg_is(c->argv[3], "samples"))) {
            reply_syntax_error(c);
            return;
        }
        if (c->argc == 5) {
            long long s;
            if (arg_ll(c, c->argv[4], &s) != OK) return;
        }
        kobj *o = db_lookup(c->db, c->argv[2], LOOKUP_NOTOUCH);
        if (!o) {
            reply_null(c);
            return;
        }
        /* The key lives inside its dict entry (db.c): one block. */
        dict_entry *de = dict_find(c->db->keys, c->argv[2]);
        reply_ll(c, (long long)(obj_memory(o) + (de ? km_usable(de) : 0)));
    } else if (arg_is(c->argv[1], "help")) {
        reply_help(c, "MEMORY", help);
    } else {
        reply_subcommand_syntax_error(c);
    }
}
