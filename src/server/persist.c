/* persist.c - RDB snapshots in the running server: SAVE, BGSAVE, LASTSAVE,
 * the save points, loading at start, SHUTDOWN's final save, DEBUG RELOAD,
 * FLUSHALL's save, stop-writes-on-bgsave-error and INFO persistence, with
 * Redis 7.0's replies, log lines and INFO fields.
 *
 * BGSAVE forks.  The child has one thread - the event loop's, which forked
 * - and a copy-on-write view of the keyspace as it was at fork time; it
 * writes temp-<pid>.rdb, fsyncs, renames it over dbfilename and leaves
 * with _exit.  The parent keeps serving; the cron (persist_cron) reaps the
 * child and takes the result.  While it works the child reports, at most
 * once a second and once at the end, how many keys it wrote and how much
 * memory copy-on-write has cost so far (its Private_Dirty pages: each one
 * is a page the parent wrote to after the fork, or the child's own
 * buffers), through a pipe the cron drains; INFO shows current_cow_size,
 * current_cow_peak, rdb_last_cow_size and current_fork_perc from it.
 *
 * The engine's threads (INFER.* generation, model loads, vector-set
 * searches) do not exist in the child.  The child must therefore never
 * touch an engine object, a lock those threads may have held at fork
 * time, or the event loop: it only reads the keyspace (whose owner, the
 * event loop thread, is the thread that forked, so the keyspace is
 * consistent - vector-set inserts commit on the loop too) and writes a
 * file.  It resets the signals the server handles, closes the listening
 * sockets (so that a restarted server can bind while it finishes), and
 * never returns into server code. */
#include "aof.h"
#include "rdb.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

persist_state persist = {
    .compression = 1,
    .checksum = 1,
    .stop_writes_on_error = 1,
    .child = -1,
    .child_pipe = -1,
    .last_bgsave_ok = 1,
    .last_bgsave_secs = -1,
};

#define BGSAVE_RETRY_DELAY 5 /* seconds before a failed save point is tried again */
#define REPORT_MAGIC 0x52444243u

/* What the child sends: progress, and the copy-on-write size so far. */
typedef struct child_report {
    uint32_t magic, final;
    uint64_t keys, cow;
} child_report;

/* ------------------------------------------------------------ save points */

typedef struct save_point {
    long long secs, changes;
} save_point;

/* The `save` option's pairs (config.c keeps the text, already checked). */
static int save_points(save_point *sp, int max) {
    int n = 0;
    const char *p = srv.save_params;
    if (!p) return 0;
    while (*p && n < max) {
        char *end;
        long long a = strtoll(p, &end, 10);
        if (end == p) break;
        p = end;
        long long b = strtoll(p, &end, 10);
        if (end == p) break;
        p = end;
        sp[n].secs = a;
        sp[n].changes = b;
        n++;
    }
    return n;
}

static int have_save_points(void) {
    save_point sp[1];
    return save_points(sp, 1) > 0;
}

int persist_writes_denied(void) {
    return persist.stop_writes_on_error && !persist.last_bgsave_ok && have_save_points();
}

/* -------------------------------------------------------------- the child */

/* Private_Dirty of this process in bytes, from /proc/self/smaps_rollup
 * (read with plain syscalls: the child avoids stdio), else 0. */
static size_t private_dirty(void) {
    int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *at = strstr(buf, "Private_Dirty:");
    return at ? (size_t)strtoull(at + 14, NULL, 10) * 1024 : 0;
}

typedef struct child_ctx {
    int fd;
    long long last_report_ms;
} child_ctx;

static void child_send(child_ctx *cx, uint64_t keys, int final) {
    child_report r = {REPORT_MAGIC, (uint32_t)final, keys, private_dirty()};
    ssize_t w = write(cx->fd, &r, sizeof r); /* non-blocking: a full pipe drops a report */
    (void)w;
}

static void child_progress(void *ud, uint64_t keys) {
    child_ctx *cx = ud;
    long long now = time_ms();
    if (now - cx->last_report_ms < 1000) return;
    cx->last_report_ms = now;
    child_send(cx, keys, 0);
}

static void child_final(void *ud, uint64_t keys) {
    child_ctx *cx = ud;
    child_send(cx, keys, 1);
}

/* What every fork child does first: see the file comment for what it may
 * and may not do. */
static void child_setup(void) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGUSR1, SIG_DFL); /* the parent's way to cancel the save */
    for (int i = 0; i < srv.nlisten; i++) close(srv.listen_fds[i]);
    if (srv.unix_fd >= 0) close(srv.unix_fd); /* the socket file stays: it is the parent's */
}

/* The BGSAVE child. */
__attribute__((noreturn)) static void child_main(int report_fd) {
    child_setup();
    child_ctx cx = {report_fd, time_ms()};
    rdb_save_opts opts = {0};
    opts.compress = persist.compression;
    opts.checksum = persist.checksum;
    opts.progress = child_progress;
    opts.progress_ud = &cx;
    opts.key_delay_us = persist.key_save_delay;
    char err[1024];
    struct sidecar_writer *sc = persist_sidecar_start(srv.dbfilename, &opts);
    int rc = rdb_save_path(srv.dbfilename, &opts, err, sizeof err);
    persist_sidecar_finish(sc, srv.dbfilename, rc == OK);
    if (rc != OK) log_msg(LL_WARNING, "%s", err);
    else log_msg(LL_NOTICE, "DB saved on disk");
    child_final(&cx, 0);
    _exit(rc == OK ? 0 : 1);
}

/* ------------------------------------------------------------- the parent */

static unsigned long long dataset_keys(void) {
    unsigned long long n = 0;
    for (int i = 0; i < srv.dbnum; i++) n += dict_size(srv.dbs[i].keys);
    return n;
}

static void drain_reports(void) {
    child_report r;
    while (persist.child_pipe >= 0 && read(persist.child_pipe, &r, sizeof r) == (ssize_t)sizeof r) {
        if (r.magic != REPORT_MAGIC) continue;
        persist.cow_current = (size_t)r.cow;
        if (r.cow > persist.cow_peak) persist.cow_peak = (size_t)r.cow;
        persist.cow_updated_ms = srv.now_ms;
        if (!r.final) persist.keys_done = r.keys;
        else persist.keys_done = persist.keys_total;
    }
}

static void remove_temp_file(pid_t pid) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "temp-%d.rdb", (int)pid);
    unlink(tmp);
}

static void child_done(int status) {
    drain_reports();
    int bysignal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    server_update_clock();
    if (persist.child_kind == PERSIST_CHILD_AOF) {
        persist.aof_cow_last = persist.cow_current;
        if (persist.child_pipe >= 0) close(persist.child_pipe);
        persist.child_pipe = -1;
        persist.child = -1;
        persist.cow_current = persist.cow_peak = 0;
        persist.keys_done = persist.keys_total = 0;
        aof_rewrite_done(!bysignal && code == 0, bysignal);
        return;
    }
    if (!bysignal && code == 0) {
        log_msg(LL_NOTICE, "Background saving terminated with success");
        srv.dirty -= persist.dirty_at_fork;
        if (srv.dirty < 0) srv.dirty = 0;
        srv.lastsave = srv.now_ms / 1000;
        persist.last_bgsave_ok = 1;
    } else if (!bysignal) {
        log_msg(LL_WARNING, "Background saving error");
        persist.last_bgsave_ok = 0;
    } else {
        log_msg(LL_WARNING, "Background saving terminated by signal %d", bysignal);
        remove_temp_file(persist.child);
        /* SIGUSR1 is ours: a cancelled save is not a failed one */
        if (bysignal != SIGUSR1) persist.last_bgsave_ok = 0;
    }
    persist.last_bgsave_secs = (srv.now_ms - persist.child_start_ms) / 1000;
    persist.cow_last = persist.cow_current;
    if (persist.child_pipe >= 0) close(persist.child_pipe);
    persist.child_pipe = -1;
    persist.child = -1;
    persist.cow_current = persist.cow_peak = 0;
    persist.keys_done = persist.keys_total = 0;
}

/* The report pipe of a child forked by persist_fork (in that child). */
static int child_report_fd = -1;

void persist_child_final(void) {
    if (child_report_fd < 0) return;
    child_ctx cx = {child_report_fd, 0};
    child_final(&cx, 0);
}

/* Forks a child of kind PERSIST_CHILD_AOF: the child returns 0 (set up,
 * and must end with _exit), the parent the pid, or -1 with err set. */
pid_t persist_fork(int kind, char *err, size_t errlen) {
    if (persist.child != -1) {
        snprintf(err, errlen, "a child process is already running");
        return -1;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    long long start = mono_us();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_report_fd = fds[1];
        child_setup();
        return 0;
    }
    int fork_errno = errno;
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        snprintf(err, errlen, "fork: %s", strerror(fork_errno));
        return -1;
    }
    persist.last_fork_us = mono_us() - start;
    persist.total_forks++;
    persist.child = pid;
    persist.child_kind = kind;
    persist.child_pipe = fds[0];
    persist.child_start_ms = srv.now_ms;
    persist.keys_done = 0;
    persist.keys_total = 0;
    persist.cow_current = persist.cow_peak = 0;
    persist.cow_updated_ms = srv.now_ms;
    return pid;
}

int persist_bgsave(char *err, size_t errlen) {
    if (persist.child != -1) {
        if (persist.child_kind == PERSIST_CHILD_AOF)
            snprintf(err, errlen, "An AOF log rewriting in progress: can't BGSAVE right now. Use BGSAVE SCHEDULE "
                                  "in order to schedule a BGSAVE whenever possible.");
        else
            snprintf(err, errlen, "Background save already in progress");
        return ERR;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "Can't save in background: pipe: %s", strerror(errno));
        persist.last_bgsave_ok = 0;
        return ERR;
    }
    server_update_clock();
    persist.last_bgsave_try = srv.now_ms / 1000;
    persist.saves++;
    fflush(NULL);
    long long start = mono_us();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child_main(fds[1]);
    }
    int fork_errno = errno;
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        persist.last_bgsave_ok = 0;
        snprintf(err, errlen, "Can't save in background: fork: %s", strerror(fork_errno));
        log_msg(LL_WARNING, "%s", err);
        return ERR;
    }
    persist.last_fork_us = mono_us() - start;
    persist.total_forks++;
    persist.child = pid;
    persist.child_kind = PERSIST_CHILD_RDB;
    persist.child_pipe = fds[0];
    persist.child_start_ms = srv.now_ms;
    persist.dirty_at_fork = srv.dirty;
    persist.keys_done = 0;
    persist.keys_total = dataset_keys();
    persist.cow_current = persist.cow_peak = 0;
    persist.cow_updated_ms = srv.now_ms;
    persist.scheduled = 0;
    log_msg(LL_NOTICE, "Background saving started by pid %d", (int)pid);
    return OK;
}

void persist_kill_child(void) {
    if (persist.child == -1) return;
    kill(persist.child, SIGUSR1);
    int status;
    while (waitpid(persist.child, &status, 0) < 0 && errno == EINTR) {
    }
    child_done(status);
}

/* SAVE and every other foreground save. */
static int save_now(char *err, size_t errlen) {
    rdb_save_opts opts = {0};
    opts.compress = persist.compression;
    opts.checksum = persist.checksum;
    persist.saves++;
    struct sidecar_writer *sc = persist_sidecar_start(srv.dbfilename, &opts);
    int rc = rdb_save_path(srv.dbfilename, &opts, err, errlen);
    persist_sidecar_finish(sc, srv.dbfilename, rc == OK);
    if (rc != OK) {
        log_msg(LL_WARNING, "%s", err);
        return ERR;
    }
    server_update_clock();
    srv.dirty = 0;
    srv.lastsave = srv.now_ms / 1000;
    persist.last_bgsave_ok = 1;
    log_msg(LL_NOTICE, "DB saved on disk");
    return OK;
}

int persist_save_sync(char *err, size_t errlen) {
    if (persist.child != -1) {
        snprintf(err, errlen, "Background save already in progress");
        return ERR;
    }
    return save_now(err, errlen);
}

void persist_cron(void) {
    if (persist.child != -1) {
        drain_reports();
        int status;
        pid_t r = waitpid(persist.child, &status, WNOHANG);
        if (r == persist.child) {
            child_done(status);
        } else if (r < 0 && errno == ECHILD) {
            log_msg(LL_WARNING, "The background save child %d is gone without a status", (int)persist.child);
            child_done(1 << 8); /* as an exit code of 1 */
        }
        return;
    }
    aof_start_scheduled(); /* a BGREWRITEAOF that waited for a BGSAVE */
    if (persist.child != -1) return;
    char err[512];
    if (persist.scheduled) {
        persist_bgsave(err, sizeof err);
        return;
    }
    save_point sp[32];
    int n = save_points(sp, 32);
    long long now = srv.now_ms / 1000;
    for (int i = 0; i < n; i++) {
        if (srv.dirty >= sp[i].changes && now - srv.lastsave > sp[i].secs &&
            (now - persist.last_bgsave_try > BGSAVE_RETRY_DELAY || persist.last_bgsave_ok)) {
            log_msg(LL_NOTICE, "%lld changes in %lld seconds. Saving...", sp[i].changes, sp[i].secs);
            persist_bgsave(err, sizeof err);
            break;
        }
    }
}

void persist_after_flushall(void) {
    /* an AOF rewrite goes on: FLUSHALL itself lands in the new incr file */
    if (persist.child_kind == PERSIST_CHILD_RDB) persist_kill_child();
    if (have_save_points()) {
        char err[512];
        save_now(err, sizeof err);
    }
}

int persist_on_shutdown(int flags) {
    if (persist.child != -1 && persist.child_kind == PERSIST_CHILD_RDB) {
        log_msg(LL_WARNING, "There is a child saving an .rdb. Killing it!");
        persist_kill_child();
    }
    if ((have_save_points() && !(flags & SHUTDOWN_NOSAVE)) || (flags & SHUTDOWN_SAVE)) {
        log_msg(LL_NOTICE, "Saving the final RDB snapshot before exiting.");
        char err[512];
        if (save_now(err, sizeof err) != OK) {
            if (flags & SHUTDOWN_FORCE) {
                log_msg(LL_WARNING, "Error trying to save the DB. Exit anyway.");
            } else {
                log_msg(LL_WARNING, "Error trying to save the DB, can't exit.");
                return ERR;
            }
        }
    }
    return OK;
}

/* ------------------------------------------------------------------ load */

static void log_loaded(const rdb_load_result *res, long long us) {
    log_msg(LL_NOTICE, "Done loading RDB, keys loaded: %lld, keys expired: %lld.", res->loaded, res->expired);
    if (res->functions_skipped)
        log_msg(LL_WARNING, "RDB: %d FUNCTION libraries skipped: inferkv-server has no scripting",
                res->functions_skipped);
    log_msg(LL_NOTICE, "DB loaded from disk: %.3f seconds", (double)us / 1e6);
}

int persist_load_at_start(char *err, size_t errlen) {
    /* with appendonly yes the AOF is the dataset (aof.c) */
    if (aofcfg.appendonly) return aof_load_at_start(err, errlen);
    return persist_load_rdb_at_start(err, errlen);
}

/* Whether path loads whole and carries a real CRC64 (a zero one, from
 * rdbchecksum no, vouches for nothing). */
static int rdb_loads_whole(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    unsigned char crc[8];
    off_t end = lseek(fd, 0, SEEK_END);
    int has_crc = end >= 8 && pread(fd, crc, 8, end - 8) == 8 && memcmp(crc, "\0\0\0\0\0\0\0\0", 8) != 0;
    close(fd);
    if (!has_crc) return 0;
    rdb_load_result res;
    int missing;
    char why[512];
    if (rdb_load_path(path, RDB_LOAD_KEEP_EXPIRED, &res, &missing, why, sizeof why) != OK || missing) return 0;
    db_array_free(res.dbs, res.ndbs);
    return 1;
}

int persist_rdb_loads_whole(const char *path) { return rdb_loads_whole(path); }

int persist_load_rdb_at_start(char *err, size_t errlen) {
    long long start = mono_us();
    if (access(srv.dbfilename, F_OK) == 0 && persist_sidecar_check(srv.dbfilename, rdb_loads_whole, err, errlen) != OK)
        return ERR;
    rdb_load_result res;
    int missing;
    char why[768];
    if (rdb_load_path(srv.dbfilename, 0, &res, &missing, why, sizeof why) != OK) {
        char cwd[1024];
        snprintf(err, errlen,
                 "Fatal error loading the RDB file %s (in %s): %s. The server does not start on a partial "
                 "dataset: move or repair the file.",
                 srv.dbfilename, getcwd(cwd, sizeof cwd) ? cwd : "?", why);
        return ERR;
    }
    if (missing) return OK;
    db_array_install(res.dbs);
    persist.load_loaded = res.loaded;
    persist.load_expired = res.expired;
    log_loaded(&res, mono_us() - start);
    return OK;
}

/* ---------------------------------------------------------------- commands */

/* SAVE
 * Writes the dataset to dir/dbfilename now, blocking every client.
 * O(N) in the dataset. */
void save_cmd(client *c) {
    char err[512];
    if (persist.child != -1) {
        reply_error(c, "ERR Background save already in progress");
        return;
    }
    if (save_now(err, sizeof err) != OK) reply_error(c, "ERR");
    else reply_ok(c);
}

/* BGSAVE [SCHEDULE]
 * Forks a child that writes the dataset while the server goes on; with
 * SCHEDULE (or inside MULTI) a save that cannot start now starts as soon
 * as it can.  O(1) for the caller (fork copies page tables: O(dataset
 * size / page size)). */
void bgsave_cmd(client *c) {
    int schedule = 0;
    if (c->argc > 1) {
        if (c->argc == 2 && arg_is(c->argv[1], "schedule")) {
            schedule = 1;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    char err[512];
    if (persist.child != -1) {
        reply_error(c, "ERR Background save already in progress");
    } else if (c->flags & CF_IN_EXEC) {
        (void)schedule;
        persist.scheduled = 1;
        reply_status(c, "Background saving scheduled");
    } else if (persist_bgsave(err, sizeof err) == OK) {
        reply_status(c, "Background saving started");
    } else {
        reply_errorf(c, "ERR %s", err);
    }
}

/* LASTSAVE
 * The Unix time of the last successful save.  O(1). */
void lastsave_cmd(client *c) { reply_ll(c, srv.lastsave); }

/* DEBUG RELOAD [NOSAVE]
 * Saves (unless NOSAVE), then replaces the dataset with what the file
 * holds; the dataset stays as it was if the file does not load. */
void persist_debug_reload(client *c) {
    int save = 1;
    for (int i = 2; i < c->argc; i++) {
        if (arg_is(c->argv[i], "nosave")) {
            save = 0;
        } else if (arg_is(c->argv[i], "merge") || arg_is(c->argv[i], "noflush")) {
            reply_error(c, "ERR DEBUG RELOAD MERGE and NOFLUSH are not supported by inferkv");
            return;
        } else {
            reply_error(c, "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.");
            return;
        }
    }
    char err[768];
    /* a BGSAVE finishing later would put an older dataset over this file */
    if (save && persist.child_kind == PERSIST_CHILD_RDB) persist_kill_child();
    if (save && save_now(err, sizeof err) != OK) {
        reply_error(c, "ERR Error trying to save the DB");
        return;
    }
    long long start = mono_us();
    rdb_load_result res;
    int missing;
    if (rdb_load_path(srv.dbfilename, 0, &res, &missing, err, sizeof err) != OK || missing) {
        log_msg(LL_WARNING, "DEBUG RELOAD: %s", missing ? "no RDB file" : err);
        reply_error(c, "ERR Error trying to load the RDB dump, check server logs.");
        return;
    }
    db_array_install(res.dbs);
    persist.load_loaded = res.loaded;
    persist.load_expired = res.expired;
    log_loaded(&res, mono_us() - start);
    reply_ok(c);
}

/* -------------------------------------------------------------------- INFO */

dstr persist_info(dstr s) {
    int in_progress = persist.child != -1 && persist.child_kind == PERSIST_CHILD_RDB;
    double perc = in_progress && persist.keys_total ? 100.0 * (double)persist.keys_done / (double)persist.keys_total
                                                    : 0.0;
    long long cow_age = in_progress ? (srv.now_ms - persist.cow_updated_ms) / 1000 : 0;
    long long cur_secs = in_progress ? (srv.now_ms - persist.child_start_ms) / 1000 : -1;
    s = dstr_or_free(s, dstr_catfmt(s,
        "# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:%zu\r\ncurrent_cow_size:%zu\r\n"
        "current_cow_size_age:%lld\r\ncurrent_fork_perc:%.2f\r\ncurrent_save_keys_processed:%llu\r\n"
        "current_save_keys_total:%llu\r\nrdb_changes_since_last_save:%lld\r\nrdb_bgsave_in_progress:%d\r\n"
        "rdb_last_save_time:%lld\r\nrdb_last_bgsave_status:%s\r\nrdb_last_bgsave_time_sec:%lld\r\n"
        "rdb_current_bgsave_time_sec:%lld\r\nrdb_saves:%lld\r\nrdb_last_cow_size:%zu\r\n"
        "rdb_last_load_keys_expired:%lld\r\nrdb_last_load_keys_loaded:%lld\r\n",
        in_progress ? persist.cow_peak : 0, in_progress ? persist.cow_current : 0, cow_age, perc,
        in_progress ? persist.keys_done : 0, in_progress ? persist.keys_total : 0, srv.dirty, in_progress,
        srv.lastsave, persist.last_bgsave_ok ? "ok" : "err", persist.last_bgsave_secs, cur_secs, persist.saves,
        persist.cow_last, persist.load_expired, persist.load_loaded));
    return s ? aof_info(s) : s;
}

dstr persist_info_stats(dstr s) {
    return dstr_or_free(s, dstr_catfmt(s, "latest_fork_usec:%lld\r\ntotal_forks:%lld\r\n", persist.last_fork_us,
                       persist.total_forks));
}

/* --------------------------------------------------------------- checking */

int persist_check_main(const char *path) {
    srv.verbosity = LL_WARNING + 1; /* only the verdict below */
    server_update_clock();
    vset_server_init();
    rdb_load_result res;
    int missing;
    char err[1024];
    if (rdb_load_path(path, RDB_LOAD_KEEP_EXPIRED, &res, &missing, err, sizeof err) != OK || missing) {
        printf("error: %s: %s\n", path, missing ? "no such file" : err);
        return 1;
    }
    printf("OK: %s: RDB version %d, %lld keys, %lld empty collections skipped, data ends at offset %llu\n", path,
           res.version, res.loaded, res.empty, (unsigned long long)res.end_offset);
    db_array_free(res.dbs, res.ndbs);
    return 0;
}
