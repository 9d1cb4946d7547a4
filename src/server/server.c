/* server.c - inferkv-server's main(): options, startup, the cron, shutdown.
 *
 * Startup follows redis-server: an optional config file, then --option
 * value pairs that override it; daemonize and pidfile when asked; listen;
 * then the event loop.  The cron (hz times a second) does the periodic
 * work: active expiry, dict resizing, idle clients, statistics, the
 * BGSAVE child and the save points (persist.c).  The dataset in
 * dir/dbfilename is loaded before the event loop starts.  The
 * before-sleep hook runs every loop turn: it writes pending replies, frees
 * closed clients, and runs the fast expire cycle. */
#include "server.h"
#include "aof.h"
#include "rdb.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

server srv;

static volatile sig_atomic_t got_signal;

unsigned lru_clock_now(void) { return (unsigned)((srv.now_ms / 1000) & LRU_MAX); }

unsigned long long obj_idle_ms(const kobj *o) {
    unsigned now = lru_clock_now();
    unsigned long long secs = now >= o->lru ? now - o->lru : (unsigned long long)LRU_MAX - o->lru + now;
    return secs * 1000;
}

void server_update_clock(void) { srv.now_ms = time_ms(); }

static void sample_ops(void) {
    long long now = srv.now_ms;
    long long dt = now - srv.stat_ops_sec_last_sample_ms;
    if (dt < 100) return;
    long long ops = srv.stat_numcommands - srv.stat_ops_sec_last_cmds;
    srv.stat_ops_sec[srv.stat_ops_idx++ % 16] = ops * 1000 / dt;
    srv.stat_ops_sec_last_sample_ms = now;
    srv.stat_ops_sec_last_cmds = srv.stat_numcommands;
}

int server_prepare_shutdown(int flags) {
    log_msg(LL_WARNING, "User requested shutdown...");
    aof_on_shutdown(); /* what is buffered is written and fsynced */
    if (persist_on_shutdown(flags) != OK) return ERR; /* a failed final save keeps the server up */
    net_close_listeners();
    if (srv.pidfile) unlink(srv.pidfile);
    log_msg(LL_WARNING, "Redis is now ready to exit, bye bye...");
    return OK;
}

static long long server_cron(evloop *el, long long id, void *priv) {
    (void)id; (void)priv;
    server_update_clock();
    if (got_signal) {
        const char *name = got_signal == SIGINT ? "SIGINT" : "SIGTERM";
        got_signal = 0;
        log_msg(LL_WARNING, "Received %s scheduling shutdown...", name);
        if (server_prepare_shutdown(SHUTDOWN_NOFLAGS) == OK) {
            ev_stop(el);
            return -1;
        }
        log_msg(LL_WARNING, "%s received but errors trying to shut down the server, check the logs for more "
                            "information", name);
    }
    sample_ops();
    size_t used = km_used();
    if (used > srv.stat_peak_memory) srv.stat_peak_memory = used;
    db_active_expire_cycle(0);
    /* No resizing or background rehashing while a BGSAVE child runs, as
     * Redis: moving entries between tables writes to every page they are
     * on, and each such page is copied for the parent (copy-on-write). */
    if (persist.child == -1) db_cron();
    clients_cron();
    persist_cron(); /* BGSAVE child, save points */
    aof_cron();     /* everysec fsync, scheduled and automatic rewrites */
    return 1000 / srv.hz;
}

static void before_sleep(evloop *el) {
    (void)el;
    server_update_clock();
    block_check_timeouts();
    block_handle_ready_keys();
    block_resume_pending();
    db_active_expire_cycle(1);
    /* the AOF holds every write before its reply goes out (and is on
     * disk first under appendfsync always) */
    aof_flush_before_replies();
    clients_handle_pending_writes();
    clients_free_pending();
    if (srv.shutdown_asap) ev_stop(srv.el); /* SHUTDOWN already prepared it */
}

static void on_signal(int sig) {
    got_signal = sig;
}

static void setup_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

static void usage(void) {
    fprintf(stderr,
            "Usage: ./inferkv-server [/path/to/inferkv.conf] [options] [-]\n"
            "       ./inferkv-server - (read config from stdin)\n"
            "       ./inferkv-server -v or --version\n"
            "       ./inferkv-server -h or --help\n"
            "       ./inferkv-server --check-rdb FILE (load an RDB file, report what is wrong)\n"
            "       ./inferkv-server --check-aof [--fix] MANIFEST|DIR|FILE (check an AOF, cut a truncated tail)\n\n"
            "Examples:\n"
            "       ./inferkv-server (run the server with default config)\n"
            "       ./inferkv-server /etc/inferkv/6379.conf\n"
            "       ./inferkv-server --port 7777\n"
            "       ./inferkv-server /etc/myinferkv.conf --loglevel verbose\n");
}

/* --name v1 v2 --other v: each option takes the words up to the next "--". */
static int apply_args(int argc, char **argv, int start) {
    for (int i = start; i < argc;) {
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "Invalid argument '%s'\n", argv[i]);
            return ERR;
        }
        const char *name = argv[i] + 2;
        int j = i + 1;
        while (j < argc && !(strncmp(argv[j], "--", 2) == 0 && argv[j][2] != '\0' && j > i + 1))
            j++;
        /* a value may itself start with "--" only as the first word */
        const char **vals = (const char **)argv + i + 1;
        int nvals = j - i - 1;
        char err[512];
        if (config_set_option(name, vals, nvals, 1, err, sizeof err) != OK) {
            fprintf(stderr, "\n*** FATAL CONFIG FILE ERROR (Redis %s) ***\n"
                            "Reading the configuration file, at line 2\n>>> '%s'\n%s\n",
                    INFERKV_VERSION, name, err);
            return ERR;
        }
        i = j;
    }
    return OK;
}

static void daemonize(void) {
    if (fork() != 0) exit(0);
    setsid();
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO) close(fd);
    }
}

static void write_pidfile(void) {
    if (!srv.pidfile) return;
    FILE *fp = fopen(srv.pidfile, "w");
    if (!fp) {
        log_msg(LL_WARNING, "Failed to write PID file: %s", strerror(errno));
        return;
    }
    fprintf(fp, "%d\n", (int)getpid());
    fclose(fp);
}

/* Redis's startup rule: the process needs an fd per client plus 32 for
 * files and listeners.  The soft RLIMIT_NOFILE is raised toward that (up to
 * the hard limit); when it cannot go far enough, maxclients shrinks to what
 * fits, with a warning, rather than accept() failing with EMFILE later. */
static void adjust_open_files_limit(void) {
    rlim_t want = (rlim_t)srv.maxclients + 32;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_msg(LL_WARNING, "Unable to obtain the current NOFILE limit (%s), assuming 1024", strerror(errno));
        rl.rlim_cur = rl.rlim_max = 1024;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) return;
    rlim_t was = rl.rlim_cur;
    struct rlimit up = rl;
    up.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    int why = 0;
    if (up.rlim_cur > rl.rlim_cur) {
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) rl = up;
        else why = errno;
    }
    if (rl.rlim_cur >= want) {
        log_msg(LL_NOTICE, "Increased maximum number of open files to %llu (it was originally set to %llu).",
                (unsigned long long)rl.rlim_cur, (unsigned long long)was);
        return;
    }
    unsigned asked = srv.maxclients;
    if (rl.rlim_cur <= 32) { /* as Redis: no client would fit */
        log_msg(LL_WARNING, "Your current 'ulimit -n' of %llu is not enough for the server to start. Please increase "
                "your open file limit to at least %llu. Exiting.", (unsigned long long)rl.rlim_cur,
                (unsigned long long)want);
        exit(1);
    }
    srv.maxclients = (unsigned)(rl.rlim_cur - 32);
    log_msg(LL_WARNING,
            "You requested maxclients of %u requiring at least %llu max file descriptors; the limit is %llu "
            "(hard limit %llu%s%s). maxclients has been reduced to %u to compensate for low ulimit. If you need "
            "higher maxclients increase 'ulimit -n'.",
            asked, (unsigned long long)want, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
            why ? ", raising it failed: " : "", why ? strerror(why) : "", srv.maxclients);
}

static int init_server(char *err, size_t errlen) {
    server_update_clock();
    srv.start_ms = srv.now_ms;
    srv.lastsave = srv.now_ms / 1000;
    random_hex(srv.runid, 40);
    srv.runid[40] = '\0';
    uint8_t seed[16];
    char hex[32];
    random_hex(hex, 32);
    for (int i = 0; i < 16; i++) seed[i] = (uint8_t)(hex[i * 2] * 31 + hex[i * 2 + 1]);
    dict_set_hash_seed(seed);
    vset_server_init(); /* before any vector set is allocated */
    adjust_open_files_limit();
    if (srv.maxclients > INT_MAX - 128) {
        snprintf(err, errlen, "maxclients %u is more than the event loop can hold", srv.maxclients);
        return ERR;
    }
    srv.el = ev_create((int)srv.maxclients + 128, err, errlen);
    if (!srv.el) return ERR;
    if (db_init_all(err, errlen) != OK) return ERR;
    commands_init();
    if (net_listen(err, errlen) != OK) return ERR;
    if (block_init(err, errlen) != OK) return ERR;
    if (ev_add_timer(srv.el, 1, server_cron, NULL) < 0) {
        snprintf(err, errlen, "cannot create the cron timer");
        return ERR;
    }
    ev_set_before_sleep(srv.el, before_sleep);
    return OK;
}

int main(int argc, char **argv) {
    config_init_defaults();
    int start = 1;
    if (argc >= 2) {
        if (!strcmp(argv[1], "-v") || !strcmp(argv[1], "--version")) {
            printf("inferkv-server v=%s (redis-compatible %s)\n", INFERKV_OWN_VERSION, INFERKV_VERSION);
            return 0;
        }
        if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
            usage();
            return 0;
        }
        if (!strcmp(argv[1], "--check-rdb")) {
            /* like redis-check-rdb: load FILE, say what is wrong, exit */
            if (argc < 3) {
                fprintf(stderr, "Usage: inferkv-server --check-rdb FILE [--databases N]\n");
                return 1;
            }
            if (apply_args(argc, argv, 3) != OK) return 1;
            return persist_check_main(argv[2]);
        }
        if (!strcmp(argv[1], "--check-aof")) {
            /* like redis-check-aof: PATH is a manifest, the AOF directory
             * or one file; --fix cuts a truncated last file */
            int fix = argc >= 3 && !strcmp(argv[2], "--fix");
            if (argc < 3 + fix) {
                fprintf(stderr, "Usage: inferkv-server --check-aof [--fix] <file.manifest|dir|file.aof> "
                                "[--appendfilename NAME]\n");
                return 1;
            }
            if (apply_args(argc, argv, 3 + fix) != OK) return 1;
            return aof_check_main(argv[2 + fix], fix);
        }
        if (strncmp(argv[1], "--", 2) != 0) {
            char err[1024];
            srv.configfile = dstr_new(argv[1]);
            if (config_load_file(argv[1], err, sizeof err) != OK) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            start = 2;
        }
    }
    if (apply_args(argc, argv, start) != OK) return 1;
    if (srv.daemonize) daemonize();
    setup_signals();
    char err[512];
    if (init_server(err, sizeof err) != OK) {
        log_msg(LL_WARNING, "%s", err);
        return 1;
    }
    write_pidfile();
    log_msg(LL_NOTICE, "inferkv-server %s (Redis %s compatible) started, pid=%d, port=%d",
            INFERKV_OWN_VERSION, INFERKV_VERSION, (int)getpid(), srv.port);
    /* dir/dbfilename, before any client is served; a file that does not
     * load whole stops the server here (persist.c) */
    char lerr[1400];
    if (persist_load_at_start(lerr, sizeof lerr) != OK) {
        log_msg(LL_WARNING, "%s", lerr);
        if (srv.pidfile) unlink(srv.pidfile);
        return 1;
    }
    log_msg(LL_NOTICE, "Ready to accept connections");
    ev_run(srv.el);
    return 0;
}
