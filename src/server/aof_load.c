/* aof_load.c - reading AOF files: replay at start, and --check-aof.
 *
 * A file is an optional RDB (the base of a rewrite with
 * aof-use-rdb-preamble yes, recognised by its "REDIS" magic) followed by
 * RESP commands (multibulk only: an AOF never holds inline commands), with
 * "#..." annotation lines allowed between commands as Redis 7 writes them
 * with aof-timestamp-enabled.  The file is read in chunks, never whole.
 *
 * Every byte is hostile.  A command that does not parse is a bad format
 * (the offset is named and the server does not start); an unknown command
 * or a wrong argument count stops loading too, since replaying around it
 * would build a dataset nobody wrote.  The one damage that can be cut away
 * is a truncated tail - a crash in the middle of a write, or a MULTI whose
 * EXEC never made it - and only in the last file: with aof-load-truncated
 * yes the file is cut back to its last whole command (or to before the
 * unfinished MULTI) and the server starts, saying so in the log; with no,
 * it stops and says how to fix the file.
 *
 * Replay runs commands through their handlers on a client with no
 * connection, with srv.loading set: keys do not expire during replay (the
 * file holds the DELs), nothing is propagated, and blocking commands
 * answer as if their timeout had passed. */
#include "aof.h"
#include "rdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)
#define ANNOTATION_MAX 1024

typedef struct reader {
    int fd;
    dstr buf;
    size_t pos;       /* next byte of buf to parse */
    uint64_t base;    /* file offset of buf[0] */
    int eof;
} reader;

/* Drops the parsed prefix and reads more: 1, 0 at end of file, -1 error. */
static int fill(reader *r) {
    if (r->pos > 0) {
        dstr_consume(r->buf, r->pos);
        r->base += r->pos;
        r->pos = 0;
    }
    if (r->eof) return 0;
    size_t old = dstr_len(r->buf);
    dstr b = dstr_reserve(r->buf, READ_CHUNK);
    if (!b) return -1;
    r->buf = b;
    ssize_t n;
    do {
        n = read(r->fd, r->buf + old, READ_CHUNK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    dstr_setlen(r->buf, old + (size_t)n);
    if (n == 0) r->eof = 1;
    return n > 0;
}

static uint64_t roff(const reader *r) { return r->base + r->pos; }

typedef struct loader {
    const char *path;
    int execute;          /* replay (at start), or only check (--check-aof) */
    client *c;            /* the replaying client */
    int in_multi;
    uint64_t multi_start; /* where the open MULTI began */
    char *err;
    size_t errlen;
} loader;

static void discard_replies(client *c) {
    reply_free_blocks(c);
}

/* One parsed command.  OK, or ERR with the reason. */
static int run_one(loader *L, dstr *argv, int argc, uint64_t at) {
    int bad_arity;
    const command *cmd = command_resolve(argv, argc, &bad_arity);
    if (!cmd) {
        if (bad_arity)
            snprintf(L->err, L->errlen, "wrong number of arguments for '%.64s' at offset %llu of the append only "
                                        "file %s", argv[0], (unsigned long long)at, L->path);
        else
            snprintf(L->err, L->errlen, "Unknown command '%.64s' at offset %llu reading the append only file %s",
                     argv[0], (unsigned long long)at, L->path);
        resp_free_args(argv, argc);
        return ERR;
    }
    int is_multi = cmd->proc == multi_cmd, is_exec = cmd->proc == exec_cmd;
    /* An AOF holds writes, SELECT and MULTI/EXEC, nothing else: a file
     * asking for SHUTDOWN, CONFIG or DEBUG is not one this server (or
     * Redis) wrote, and is refused rather than obeyed. */
    if (!(cmd->flags & CMD_WRITE) && cmd->proc != select_cmd && !is_multi && !is_exec) {
        snprintf(L->err, L->errlen, "'%.64s' at offset %llu of the append only file %s is not a write: an AOF holds "
                                    "only writes, SELECT and MULTI/EXEC", argv[0], (unsigned long long)at, L->path);
        resp_free_args(argv, argc);
        return ERR;
    }
    if (is_multi && L->in_multi) {
        snprintf(L->err, L->errlen, "a MULTI inside a MULTI at offset %llu of the append only file %s",
                 (unsigned long long)at, L->path);
        resp_free_args(argv, argc);
        return ERR;
    }
    if (is_exec && !L->in_multi) {
        snprintf(L->err, L->errlen, "an EXEC without MULTI at offset %llu of the append only file %s",
                 (unsigned long long)at, L->path);
        resp_free_args(argv, argc);
        return ERR;
    }
    if (is_multi) {
        L->in_multi = 1;
        L->multi_start = at;
    }
    if (is_exec) L->in_multi = 0;
    if (!L->execute) {
        resp_free_args(argv, argc);
        return OK;
    }
    client *c = L->c;
    c->argv = argv;
    c->argc = argc;
    c->cmd = cmd;
    /* The replayed command's reply is dropped, so an error in it is not
     * seen; out of memory may have left the command half done (or not
     * done), and a dataset missing part of its file must not be served as
     * the file's: any failed allocation fails the load. */
    unsigned long failures = km_failures();
    if (!((c->flags & CF_MULTI) && multi_maybe_queue(c))) cmd->proc(c);
    discard_replies(c);
    client_reset_args(c);
    if (km_failures() != failures) {
        snprintf(L->err, L->errlen, "out of memory replaying the command at offset %llu of the append only file %s",
                 (unsigned long long)at, L->path);
        return ERR;
    }
    return OK;
}

/* The RDB at the start of a base file: loaded into fresh databases that
 * replace the live ones (replay), or checked and dropped. */
static int load_preamble(loader *L, int fd, uint64_t *end, char *err, size_t errlen) {
    rdb_in in;
    char why[768];
    if (rdbi_init_fd(&in, fd, persist.checksum, why, sizeof why) != OK) {
        snprintf(err, errlen, "%s: %s", L->path, why);
        return ERR;
    }
    rdb_load_result res;
    int rc = rdb_load_stream(&in, RDB_LOAD_KEEP_EXPIRED, &res, why, sizeof why);
    rdbi_release(&in);
    if (rc != OK) {
        snprintf(err, errlen, "Bad file format reading the RDB preamble of the append only file %s: %s", L->path,
                 why);
        return ERR;
    }
    if (L->execute) db_array_install(res.dbs);
    else db_array_free(res.dbs, res.ndbs);
    *end = res.end_offset;
    return OK;
}

/* Reads (and replays or checks) one file.  Returns OK, or ERR with the
 * reason; res says how far it parsed and whether the tail was truncated
 * (then OK means the caller may cut it there). */
static int scan_file(loader *L, int fd, int is_base, aof_file_result *res) {
    memset(res, 0, sizeof *res);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(L->err, L->errlen, "cannot stat the append only file %s: %s", L->path, strerror(errno));
        return ERR;
    }
    res->size = (uint64_t)st.st_size;
    uint64_t start = 0;
    char magic[5];
    ssize_t got = pread(fd, magic, sizeof magic, 0);
    if (got == (ssize_t)sizeof magic && !memcmp(magic, "REDIS", 5)) {
        if (!is_base) {
            snprintf(L->err, L->errlen, "the append only file %s starts with an RDB but is not the base file",
                     L->path);
            return ERR;
        }
        if (load_preamble(L, fd, &start, L->err, L->errlen) != OK) return ERR;
        res->preamble = 1;
    }
    if (lseek(fd, (off_t)start, SEEK_SET) < 0) {
        snprintf(L->err, L->errlen, "cannot seek in %s: %s", L->path, strerror(errno));
        return ERR;
    }
    reader r = {fd, dstr_empty(), 0, start, 0};
    if (!r.buf) goto oom;
    resp_parser p;
    resp_parser_init(&p);
    resp_limits lim = {srv.proto_max_bulk_len, 0};
    uint64_t valid = start, cmd_start = start;
    int rc = OK;
    char perr[256];
    for (;;) {
        if (p.type == 0) {
            /* between commands: a '*', an annotation line, or the end */
            if (r.pos >= dstr_len(r.buf)) {
                int f = fill(&r);
                if (f < 0) goto readerr;
                if (f == 0 && r.pos >= dstr_len(r.buf)) break;
                continue;
            }
            char ch = r.buf[r.pos];
            if (ch == '#') {
                char *nl = memchr(r.buf + r.pos, '\n', dstr_len(r.buf) - r.pos);
                if (!nl) {
                    if (dstr_len(r.buf) - r.pos > ANNOTATION_MAX) goto badfmt_annotation;
                    int f = fill(&r);
                    if (f < 0) goto readerr;
                    if (f == 0) {
                        res->truncated = 1;
                        break;
                    }
                    continue;
                }
                r.pos = (size_t)(nl - r.buf) + 1;
                if (!L->in_multi) valid = roff(&r);
                continue;
            }
            if (ch != '*') {
                snprintf(L->err, L->errlen, "Bad file format reading the append only file %s: expected '*' at offset "
                                            "%llu, found 0x%02x", L->path, (unsigned long long)roff(&r),
                         (unsigned char)ch);
                rc = ERR;
                break;
            }
            cmd_start = roff(&r);
        }
        int pr = resp_parse(&p, r.buf, dstr_len(r.buf), &r.pos, &lim, perr, sizeof perr);
        if (pr == RESP_NEED_MORE) {
            int f = fill(&r);
            if (f < 0) goto readerr;
            if (f == 0) {
                res->truncated = 1;
                break;
            }
            continue;
        }
        if (pr == RESP_EMPTY) {
            if (!L->in_multi) valid = roff(&r);
            continue;
        }
        if (pr == RESP_PROTO_ERR) {
            snprintf(L->err, L->errlen, "Bad file format reading the append only file %s at offset %llu: %s", L->path,
                     (unsigned long long)cmd_start, perr);
            rc = ERR;
            break;
        }
        if (pr == RESP_OOM) goto oom_parser;
        dstr *argv = p.argv;
        int argc = p.argc;
        resp_parser_init(&p);
        if (run_one(L, argv, argc, cmd_start) != OK) {
            rc = ERR;
            break;
        }
        res->commands++;
        if (!L->in_multi) valid = roff(&r);
    }
    if (rc == OK && (p.type != 0 || L->in_multi)) res->truncated = 1;
    resp_parser_reset(&p);
    dstr_free(r.buf);
    res->valid_up_to = valid;
    return rc;
badfmt_annotation:
    snprintf(L->err, L->errlen, "Bad file format reading the append only file %s: an annotation line longer than %d "
                                "bytes at offset %llu", L->path, ANNOTATION_MAX, (unsigned long long)roff(&r));
    goto fail;
readerr:
    snprintf(L->err, L->errlen, "error reading the append only file %s: %s", L->path, strerror(errno));
    goto fail;
oom_parser:
    snprintf(L->err, L->errlen, "out of memory reading the append only file %s", L->path);
fail:
    resp_parser_reset(&p);
    dstr_free(r.buf);
    res->valid_up_to = valid;
    return ERR;
oom:
    snprintf(L->err, L->errlen, "out of memory reading the append only file %s", L->path);
    return ERR;
}

static client *fake_client(void) {
    client *c = client_create(-1, 0);
    if (c) c->authenticated = 1;
    return c;
}

int aof_load_file(const char *path, int is_base, int last, aof_file_result *res, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the append only file %s: %s", path, strerror(errno));
        return ERR;
    }
    client *c = fake_client();
    if (!c) {
        close(fd);
        snprintf(err, errlen, "out of memory creating the AOF loading client");
        return ERR;
    }
    loader L = {path, 1, c, 0, 0, err, errlen};
    srv.loading = 1;
    int rc = scan_file(&L, fd, is_base, res);
    srv.loading = 0;
    close(fd);
    /* an unfinished MULTI: its queued commands never ran */
    if (c->flags & CF_MULTI) multi_client_release(c);
    client_free(c);
    if (rc != OK) return ERR;
    if (!res->truncated) return OK;
    if (!last || !aofcfg.load_truncated) {
        snprintf(err, errlen,
                 "Unexpected end of file reading the append only file %s (whole commands up to offset %llu of %llu%s). "
                 "You can: 1) Make a backup of your AOF file, then use inferkv-server --check-aof --fix <file>. "
                 "2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the "
                 "server.%s", path, (unsigned long long)res->valid_up_to, (unsigned long long)res->size,
                 L.in_multi ? ", inside a MULTI whose EXEC is missing" : "",
                 last ? "" : " (only the last file of an AOF may be cut: this one is not the last)");
        return ERR;
    }
    log_msg(LL_WARNING, "!!! Warning: short read while loading the AOF file %s!!!", path);
    if (L.in_multi) log_msg(LL_WARNING, "Revert incomplete MULTI/EXEC transaction in AOF file %s", path);
    log_msg(LL_WARNING, "!!! Truncating the AOF %s at offset %llu (of %llu) !!!", path,
            (unsigned long long)res->valid_up_to, (unsigned long long)res->size);
    if (truncate(path, (off_t)res->valid_up_to) != 0) {
        snprintf(err, errlen, "cannot truncate the append only file %s at offset %llu: %s", path,
                 (unsigned long long)res->valid_up_to, strerror(errno));
        return ERR;
    }
    log_msg(LL_WARNING, "AOF %s loaded anyway because aof-load-truncated is enabled", path);
    return OK;
}

/* ------------------------------------------------------------ --check-aof */

static int check_one(const char *path, int is_base, int last, int fix) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("error: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char err[1024] = "";
    loader L = {path, 0, NULL, 0, 0, err, sizeof err};
    aof_file_result res;
    int rc = scan_file(&L, fd, is_base, &res);
    close(fd);
    unsigned long long ok = res.valid_up_to, size = res.size;
    printf("AOF analyzed: filename=%s, size=%llu, ok_up_to=%llu, diff=%llu%s\n", path, size, ok, size - ok,
           res.preamble ? ", RDB preamble" : "");
    if (rc == OK && !res.truncated) {
        printf("AOF %s is valid (%lld commands)\n", path, res.commands);
        return 0;
    }
    if (rc != OK) printf("AOF %s is not valid: %s\n", path, err);
    else printf("AOF %s is not valid: it ends inside %s (whole commands up to offset %llu)\n", path,
                L.in_multi ? "a MULTI whose EXEC is missing" : "a command", ok);
    if (!fix) {
        printf("Use the --fix option to try fixing it%s.\n", last ? "" : " (only the last file can be fixed)");
        return 1;
    }
    if (!last) {
        printf("Not fixing %s: only the last file of an AOF may be cut; later files depend on it.\n", path);
        return 1;
    }
    if (truncate(path, (off_t)ok) != 0) {
        printf("Failed to truncate %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("Successfully truncated AOF %s to %llu bytes (%llu dropped)\n", path, ok, size - ok);
    return 0;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int aof_check_main(const char *path, int fix) {
    srv.verbosity = LL_WARNING + 1;
    server_update_clock();
    vset_server_init();
    commands_init();
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("error: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char dir[1024], mname[600];
    size_t plen = strlen(path);
    int is_manifest = plen > 9 && !strcmp(path + plen - 9, ".manifest");
    if (!S_ISDIR(st.st_mode) && !is_manifest) return check_one(path, 1, 1, fix);
    if (S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof dir, "%s", path);
        snprintf(mname, sizeof mname, "%s", aofcfg.filename);
    } else {
        const char *b = base_name(path);
        snprintf(dir, sizeof dir, "%.*s", (int)(b - path > 0 ? b - path - 1 : 1), b == path ? "." : path);
        snprintf(mname, sizeof mname, "%.*s", (int)(strlen(b) - 9), b);
    }
    dstr_free(aofcfg.dirname);
    dstr_free(aofcfg.filename);
    aofcfg.dirname = dstr_new(dir);
    aofcfg.filename = dstr_new(mname);
    if (!aofcfg.dirname || !aofcfg.filename) {
        printf("error: out of memory\n");
        return 1;
    }
    return aof_check_dir(fix, check_one);
}
