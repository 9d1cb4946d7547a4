/* aof.c - the append-only file, as Redis 7 keeps it: a directory
 * (appenddirname) holding one base file, the incremental files written
 * since, and a manifest naming them:
 *
 *     appendonly.aof.1.base.rdb     the dataset at the last rewrite (an RDB,
 *                                   or commands with aof-use-rdb-preamble no:
 *                                   .base.aof)
 *     appendonly.aof.1.incr.aof     every write since, as RESP commands
 *     appendonly.aof.manifest       "file <name> seq <n> type <b|h|i>" lines
 *
 * The same files redis-server 7.0 writes and reads, so either loads the
 * other's directory.
 *
 * Writing.  propagate.c hands over the ops of each execution unit;
 * aof_feed appends them to a buffer (with a SELECT when the database
 * changes).  The buffer is written in the event loop's before-sleep, before
 * any reply goes out, so no client hears "OK" for a write the file does not
 * hold; under appendfsync always it is also fsynced there, under everysec a
 * background thread fsyncs once a second, under no the kernel decides.  A
 * failed write keeps the buffer, refuses writes with -MISCONF until a later
 * write succeeds, and under always stops the server (Redis does the same:
 * it promised the data is on disk and can no longer keep that promise).
 *
 * Rewriting (BGREWRITEAOF, the auto-rewrite threshold, turning the AOF on):
 * the parent first opens a new incremental file and records it in the
 * manifest, so writes from then on land there; then a fork child (persist.c
 * owns forking) writes the new base from its copy-on-write view of the
 * dataset.  When it succeeds, the manifest becomes {new base, the files
 * opened since the fork}, written to a temp file and renamed; the older
 * files are deleted.  A crash at any point leaves a manifest that names a
 * complete set of files.  While the AOF is being turned on (WAIT_REWRITE)
 * the new incremental file is a temp file that only the successful rewrite
 * names. */
#include "aof.h"
#include "rdb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

aof_config aofcfg = {
    .fsync = AOF_FSYNC_EVERYSEC,
    .use_rdb_preamble = 1,
    .load_truncated = 1,
    .rewrite_incremental_fsync = 1,
    .auto_rewrite_perc = 100,
    .auto_rewrite_min_size = 64LL * 1024 * 1024,
};

#define MANIFEST_LINE_MAX 1024
#define REWRITE_RETRY_MS 5000
#define TEMP_INCR "temp-incr.aof"

typedef struct aof_file {
    char *name;
    long long seq;
    char type; /* 'b', 'h', 'i' */
} aof_file;

typedef struct manifest {
    aof_file base;             /* name NULL: none */
    aof_file *incr, *hist;
    int nincr, nhist;
    long long base_seq, incr_seq; /* the highest used */
} manifest;

static struct {
    int state;
    int fd;                     /* the incremental file appended to, or -1 */
    dstr buf;
    int selected_db;
    long long cur_size;         /* bytes in base + incremental files */
    long long base_size;        /* ... at the last rewrite (auto-rewrite growth) */
    long long last_fsync_ms;
    long long written, synced;  /* bytes written to / fsynced in fd */
    int write_ok;
    int write_errno;
    int lost_op;
    manifest m;
    /* rewrite */
    int scheduled;
    long long rewrite_start_ms, last_rewrite_secs, next_try_ms;
    int last_bgrewrite_ok;
    long long rewrites, consecutive_failures;
    int first_new_incr;         /* m.incr index of the first file opened for this rewrite */
    pid_t child_pid;
    /* background fsync (everysec) */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int th_started, fsync_fd, fsync_busy, fsync_pending;
    long long fsync_upto;
} A = {.fd = -1, .selected_db = -1, .write_ok = 1, .last_rewrite_secs = -1, .last_bgrewrite_ok = 1,
       .child_pid = -1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .fsync_fd = -1};

int aof_feeding(void) { return A.state != AOF_OFF; }
int aof_has_pending(void) { return A.buf && dstr_len(A.buf) > 0; }

void aof_lost_op(void) {
    if (A.state == AOF_OFF) return;
    A.lost_op = 1;
    log_msg(LL_WARNING, "AOF: out of memory building a propagated command; the AOF no longer matches the "
                        "dataset and writes are refused until BGREWRITEAOF succeeds");
}

const char *aof_write_error(void) {
    static char msg[256];
    if (A.state == AOF_OFF) return NULL;
    if (A.lost_op) return "MISCONF Errors writing to the AOF file: out of memory (run BGREWRITEAOF)";
    if (A.write_ok) return NULL;
    snprintf(msg, sizeof msg, "MISCONF Errors writing to the AOF file: %s", strerror(A.write_errno));
    return msg;
}

/* ------------------------------------------------------------ file names */

static int path_in_dir(char *out, size_t cap, const char *name) {
    int n = snprintf(out, cap, "%s/%s", aofcfg.dirname, name);
    return n > 0 && (size_t)n < cap ? OK : ERR;
}

static char *file_name(long long seq, const char *kind) {
    char b[512];
    snprintf(b, sizeof b, "%s.%lld.%s", aofcfg.filename, seq, kind);
    return strdup(b);
}

static void fsync_dir(void) {
    int fd = open(aofcfg.dirname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static long long file_size(const char *name) {
    char p[1024];
    struct stat st;
    if (path_in_dir(p, sizeof p, name) != OK || stat(p, &st) != 0) return 0;
    return (long long)st.st_size;
}

/* --------------------------------------------------------------- manifest */

static void mf_file_free(aof_file *f) {
    free(f->name);
    f->name = NULL;
}

static void mf_free(manifest *m) {
    mf_file_free(&m->base);
    for (int i = 0; i < m->nincr; i++) mf_file_free(&m->incr[i]);
    for (int i = 0; i < m->nhist; i++) mf_file_free(&m->hist[i]);
    free(m->incr);
    free(m->hist);
    memset(m, 0, sizeof *m);
}

static int mf_push(aof_file **v, int *n, const char *name, long long seq, char type) {
    aof_file *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) return ERR;
    *v = nv;
    nv[*n].name = strdup(name);
    if (!nv[*n].name) return ERR;
    nv[*n].seq = seq;
    nv[*n].type = type;
    (*n)++;
    return OK;
}

/* A file name from a manifest: a plain name in the directory, never a
 * path (a hostile manifest must not reach other files). */
static int name_ok(const char *s) {
    if (!*s || !strcmp(s, ".") || !strcmp(s, "..")) return 0;
    for (const char *p = s; *p; p++)
        if (*p == '/' || (unsigned char)*p < 32) return 0;
    return 1;
}

/* Reads dir/<appendfilename>.manifest.  OK (missing: *exists 0), or ERR
 * naming the line and the problem. */
static int mf_load(manifest *m, int *exists, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    *exists = 0;
    char name[600], path[1024];
    snprintf(name, sizeof name, "%s.manifest", aofcfg.filename);
    if (path_in_dir(path, sizeof path, name) != OK) {
        snprintf(err, errlen, "the AOF manifest path is too long");
        return ERR;
    }
    FILE *fp = fopen(path, "r");
    if (!fp) {
        if (errno == ENOENT) return OK;
        snprintf(err, errlen, "cannot open the AOF manifest %.300s: %s", path, strerror(errno));
        return ERR;
    }
    *exists = 1;
    char line[MANIFEST_LINE_MAX + 2];
    int lineno = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, errlen, "AOF manifest %.300s line %d: longer than %d bytes", path, lineno, MANIFEST_LINE_MAX);
            goto bad;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        char *fname = NULL, *save = NULL;
        long long seq = -1;
        char type = 0;
        int tokens = 0;
        for (char *k = strtok_r(line, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
            char *v = strtok_r(NULL, " ", &save);
            tokens++;
            if (!v) {
                snprintf(err, errlen, "AOF manifest %.300s line %d: '%.50s' has no value", path, lineno, k);
                goto bad;
            }
            if (!strcmp(k, "file")) fname = v;
            else if (!strcmp(k, "seq")) {
                char *end;
                errno = 0;
                seq = strtoll(v, &end, 10);
                if (*end || errno || seq < 1) {
                    snprintf(err, errlen, "AOF manifest %.300s line %d: bad seq '%.30s'", path, lineno, v);
                    goto bad;
                }
            } else if (!strcmp(k, "type")) {
                if (strlen(v) != 1 || (v[0] != 'b' && v[0] != 'h' && v[0] != 'i')) {
                    snprintf(err, errlen, "AOF manifest %.300s line %d: unknown type '%.30s'", path, lineno, v);
                    goto bad;
                }
                type = v[0];
            } /* other keys: a later version's, ignored as Redis does */
        }
        if (!fname || seq < 0 || !type) {
            snprintf(err, errlen, "AOF manifest %.300s line %d: needs file, seq and type", path, lineno);
            goto bad;
        }
        if (!name_ok(fname)) {
            snprintf(err, errlen, "AOF manifest %.300s line %d: '%.100s' is not a file name in %.100s", path, lineno, fname,
                     aofcfg.dirname);
            goto bad;
        }
        if (type == 'b') {
            if (m->base.name) {
                snprintf(err, errlen, "AOF manifest %.300s line %d: a second base file", path, lineno);
                goto bad;
            }
            m->base.name = strdup(fname);
            if (!m->base.name) goto oom;
            m->base.seq = seq;
            m->base.type = 'b';
            if (seq > m->base_seq) m->base_seq = seq;
        } else if (type == 'i') {
            if (m->nincr && seq <= m->incr[m->nincr - 1].seq) {
                snprintf(err, errlen, "AOF manifest %.300s line %d: incremental files out of order", path, lineno);
                goto bad;
            }
            if (mf_push(&m->incr, &m->nincr, fname, seq, 'i') != OK) goto oom;
            if (seq > m->incr_seq) m->incr_seq = seq;
        } else {
            if (mf_push(&m->hist, &m->nhist, fname, seq, 'h') != OK) goto oom;
        }
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "reading the AOF manifest %.300s: %s", path, strerror(errno));
        goto bad;
    }
    fclose(fp);
    if (!m->base.name && m->nincr == 0) {
        snprintf(err, errlen, "the AOF manifest %.300s names no base and no incremental file", path);
        mf_free(m);
        return ERR;
    }
    return OK;
oom:
    snprintf(err, errlen, "out of memory reading the AOF manifest");
bad:
    fclose(fp);
    mf_free(m);
    return ERR;
}

/* Writes m as the manifest: temp file, fsync, rename, fsync the directory. */
static int mf_persist(const manifest *m, char *err, size_t errlen) {
    dstr s = dstr_empty();
    if (!s) goto oom;
    /* base, history, incremental: the order Redis writes */
    const aof_file *lists[3] = {m->base.name ? &m->base : NULL, m->hist, m->incr};
    int counts[3] = {m->base.name ? 1 : 0, m->nhist, m->nincr};
    for (int l = 0; l < 3; l++) {
        for (int i = 0; i < counts[l]; i++) {
            const aof_file *f = &lists[l][i];
            dstr t = dstr_catfmt(s, "file %s seq %lld type %c\n", f->name, f->seq, f->type);
            if (!t) { /* dstr_catfmt leaves s as it was */
                dstr_free(s);
                goto oom;
            }
            s = t;
        }
    }
    char name[600], tmp[1024], path[1024];
    snprintf(name, sizeof name, "%s.manifest", aofcfg.filename);
    if (path_in_dir(path, sizeof path, name) != OK) goto toolong;
    snprintf(name, sizeof name, "temp-%s.manifest", aofcfg.filename);
    if (path_in_dir(tmp, sizeof tmp, name) != OK) goto toolong;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write the AOF manifest %s: %s", tmp, strerror(errno));
        dstr_free(s);
        return ERR;
    }
    int ok = write_full(fd, s, dstr_len(s)) == 0 && fsync(fd) == 0;
    int e = errno;
    close(fd);
    dstr_free(s);
    if (!ok || rename(tmp, path) != 0) {
        if (ok) e = errno;
        unlink(tmp);
        snprintf(err, errlen, "cannot write the AOF manifest %s: %s", path, strerror(e));
        return ERR;
    }
    fsync_dir();
    return OK;
toolong:
    dstr_free(s);
    snprintf(err, errlen, "the AOF directory path is too long");
    return ERR;
oom:
    snprintf(err, errlen, "out of memory writing the AOF manifest");
    return ERR;
}

static void remove_sidecar_of(const char *path) {
    char p[1100];
    snprintf(p, sizeof p, "%s.sidecar", path);
    unlink(p);
}

static void delete_history(manifest *m) {
    for (int i = 0; i < m->nhist; i++) {
        char p[1024];
        if (path_in_dir(p, sizeof p, m->hist[i].name) == OK && unlink(p) == 0)
            log_msg(LL_NOTICE, "Removing the history file %s in the background", m->hist[i].name);
        remove_sidecar_of(p);
        mf_file_free(&m->hist[i]);
    }
    m->nhist = 0;
}

static int ensure_dir(char *err, size_t errlen) {
    if (mkdir(aofcfg.dirname, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(aofcfg.dirname, &st) == 0 && S_ISDIR(st.st_mode)) return OK;
        snprintf(err, errlen, "%s exists and is not a directory (appenddirname)", aofcfg.dirname);
        return ERR;
    }
    snprintf(err, errlen, "cannot create the append-only directory %s: %s", aofcfg.dirname, strerror(errno));
    return ERR;
}

/* ------------------------------------------------------- background fsync */

static long long synced_upto(void);
static void set_synced(long long v);

static void *fsync_thread(void *arg) {
    (void)arg;
    pthread_mutex_lock(&A.mu);
    for (;;) {
        while (!A.fsync_pending) pthread_cond_wait(&A.cv, &A.mu);
        int fd = A.fsync_fd;
        long long upto = A.fsync_upto;
        A.fsync_pending = 0;
        A.fsync_busy = 1;
        pthread_mutex_unlock(&A.mu);
        int rc = fd >= 0 ? fdatasync(fd) : 0;
        int e = errno;
        pthread_mutex_lock(&A.mu);
        A.fsync_busy = 0;
        if (rc == 0) {
            if (fd == A.fsync_fd && upto > A.synced) A.synced = upto;
        } else {
            /* logged from a thread: log_msg only formats and writes */
            log_msg(LL_WARNING, "AOF: background fsync failed: %s", strerror(e));
        }
        pthread_cond_broadcast(&A.cv);
    }
    return NULL;
}

static void bg_fsync_request(void) {
    if (!A.th_started) {
        if (pthread_create(&A.th, NULL, fsync_thread, NULL) != 0) {
            /* no thread: fsync here, as appendfsync always would */
            if (fdatasync(A.fd) == 0) set_synced(A.written);
            A.last_fsync_ms = srv.now_ms;
            return;
        }
        pthread_detach(A.th);
        A.th_started = 1;
    }
    pthread_mutex_lock(&A.mu);
    if (!A.fsync_busy && !A.fsync_pending) {
        A.fsync_fd = A.fd;
        A.fsync_upto = A.written;
        A.fsync_pending = 1;
        pthread_cond_signal(&A.cv);
        A.last_fsync_ms = srv.now_ms;
    }
    pthread_mutex_unlock(&A.mu);
}

/* How far the file is known to be on disk (the fsync thread moves it). */
static long long synced_upto(void) {
    pthread_mutex_lock(&A.mu);
    long long v = A.synced;
    pthread_mutex_unlock(&A.mu);
    return v;
}

static void set_synced(long long v) {
    pthread_mutex_lock(&A.mu);
    A.synced = v;
    pthread_mutex_unlock(&A.mu);
}

/* Waits for an fsync in flight (the file is about to be closed). */
static void bg_fsync_drain(void) {
    if (!A.th_started) return;
    pthread_mutex_lock(&A.mu);
    while (A.fsync_busy || A.fsync_pending) pthread_cond_wait(&A.cv, &A.mu);
    A.fsync_fd = -1;
    pthread_mutex_unlock(&A.mu);
}

static int pending_bg_fsync(void) {
    if (!A.th_started) return 0;
    pthread_mutex_lock(&A.mu);
    int n = A.fsync_busy + A.fsync_pending;
    pthread_mutex_unlock(&A.mu);
    return n;
}

/* ---------------------------------------------------------------- writing */

static int buf_cat(const void *p, size_t n) {
    dstr b = dstr_catlen(A.buf, p, n);
    if (!b) return ERR;
    A.buf = b;
    return OK;
}

/* Appends one command in RESP; on OOM the buffer is cut back to where it
 * was, so the file never gets half a command. */
static int buf_cat_cmd(int argc, const dstr *argv) {
    if (!A.buf && !(A.buf = dstr_empty())) {
        aof_lost_op();
        return ERR;
    }
    size_t mark = dstr_len(A.buf);
    char h[32];
    int hl = snprintf(h, sizeof h, "*%d\r\n", argc);
    int ok = buf_cat(h, (size_t)hl) == OK;
    for (int i = 0; ok && i < argc; i++) {
        hl = snprintf(h, sizeof h, "$%zu\r\n", dstr_len(argv[i]));
        ok = buf_cat(h, (size_t)hl) == OK && buf_cat(argv[i], dstr_len(argv[i])) == OK && buf_cat("\r\n", 2) == OK;
    }
    if (!ok) {
        dstr_setlen(A.buf, mark);
        aof_lost_op();
    }
    return ok ? OK : ERR;
}

void aof_feed(int dbid, int argc, const dstr *argv) {
    if (A.state == AOF_OFF) return;
    if (dbid >= 0 && dbid != A.selected_db) {
        char n[16];
        snprintf(n, sizeof n, "%d", dbid);
        dstr sel[2] = {dstr_new("SELECT"), dstr_new(n)};
        /* a SELECT that did not make it leaves the old one in force: the
         * next op tries again */
        if (sel[0] && sel[1] && buf_cat_cmd(2, sel) == OK) A.selected_db = dbid;
        else if (!sel[0] || !sel[1]) aof_lost_op();
        dstr_free(sel[0]);
        dstr_free(sel[1]);
        if (A.selected_db != dbid) return; /* the op would land in the wrong database */
    }
    buf_cat_cmd(argc, argv);
}

/* Writes the buffer; OK, or ERR with the buffer kept (and, after a short
 * write, the file cut back so that it never ends in half a command). */
static int write_buffer(void) {
    if (A.fd < 0 || !aof_has_pending()) return OK;
    size_t len = dstr_len(A.buf), off = 0;
    while (off < len) {
        ssize_t w = write(A.fd, A.buf + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) break;
        off += (size_t)w;
    }
    if (off == len) {
        A.written += (long long)len;
        A.cur_size += (long long)len;
        if (A.buf) dstr_setlen(A.buf, 0);
        if (!A.write_ok) log_msg(LL_WARNING, "AOF write error looks solved, Redis can write again.");
        A.write_ok = 1;
        return OK;
    }
    int e = errno ? errno : ENOSPC;
    if (off > 0 && ftruncate(A.fd, (off_t)A.written) != 0) {
        /* could not undo the half write: keep what went out, drop it from the buffer */
        A.written += (long long)off;
        A.cur_size += (long long)off;
        dstr_consume(A.buf, off);
    }
    if (A.write_ok || A.write_errno != e)
        log_msg(LL_WARNING, "Error writing to the AOF file: %s", strerror(e));
    A.write_ok = 0;
    A.write_errno = e;
    return ERR;
}

void aof_flush_before_replies(void) {
    if (A.state == AOF_OFF || A.fd < 0) return;
    if (!aof_has_pending()) return;
    if (write_buffer() != OK) {
        if (aofcfg.fsync == AOF_FSYNC_ALWAYS) {
            log_msg(LL_WARNING, "Can't recover from AOF write error when the AOF fsync policy is 'always'. "
                                "Exiting...");
            _exit(1);
        }
        return;
    }
    if (aofcfg.fsync == AOF_FSYNC_ALWAYS) {
        if (aofcfg.no_fsync_on_rewrite && A.child_pid != -1) return;
        if (fdatasync(A.fd) != 0) {
            log_msg(LL_WARNING, "Can't persist AOF for fsync error when the AOF fsync policy is 'always': %s. "
                                "Exiting...", strerror(errno));
            _exit(1);
        }
        set_synced(A.written);
        A.last_fsync_ms = srv.now_ms;
    } else if (aofcfg.fsync == AOF_FSYNC_EVERYSEC && srv.now_ms - A.last_fsync_ms >= 1000) {
        if (!(aofcfg.no_fsync_on_rewrite && A.child_pid != -1)) bg_fsync_request();
    }
}

/* Flushes everything and fsyncs it here (before closing or switching the
 * file, and at shutdown). */
static void flush_and_sync(void) {
    if (A.fd < 0) return;
    write_buffer();
    bg_fsync_drain();
    if (synced_upto() < A.written) {
        if (fdatasync(A.fd) == 0) set_synced(A.written);
        A.last_fsync_ms = srv.now_ms;
    }
}

/* Opens (creating) name in the directory for appending and makes it the
 * file written to. */
static int open_incr(const char *name, char *err, size_t errlen) {
    char p[1024];
    if (path_in_dir(p, sizeof p, name) != OK) {
        snprintf(err, errlen, "the AOF path is too long");
        return ERR;
    }
    int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the AOF file %s: %s", p, strerror(errno));
        return ERR;
    }
    if (A.fd >= 0) {
        flush_and_sync();
        close(A.fd);
    }
    struct stat st;
    A.fd = fd;
    A.written = fstat(fd, &st) == 0 ? (long long)st.st_size : 0;
    set_synced(A.written);
    A.selected_db = -1; /* a new file starts without a SELECT in force */
    return OK;
}

/* ---------------------------------------------------------------- rewrite */

/* Writes the dataset as a base file at tmp (an RDB, or commands), with
 * its sidecar (rdb-sidecar) at tmp.sidecar, and fsyncs it.  OK, or ERR
 * with the reason in why.  The rewrite child and the first base at start
 * both use it. */
static int write_base_file(const char *tmp, char *why, size_t whylen) {
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, whylen, "cannot create %s: %s", tmp, strerror(errno));
        return ERR;
    }
    rdb_out out;
    if (rdbo_init(&out, rdbo_sink_fd, &fd, persist.compression, persist.checksum) != OK) {
        close(fd);
        unlink(tmp);
        snprintf(why, whylen, "out of memory");
        return ERR;
    }
    rdb_save_opts opts = {0};
    opts.compress = persist.compression;
    opts.checksum = persist.checksum;
    opts.aof_base = 1;
    opts.key_delay_us = persist.key_save_delay;
    struct sidecar_writer *sc = persist_sidecar_start(tmp, &opts);
    out.observe = opts.observe;
    out.observe_ud = opts.observe_ud;
    int rc;
    if (aofcfg.use_rdb_preamble) {
        rc = rdb_write_file(&out, &opts, why, whylen);
    } else {
        rc = aof_rewrite_commands(&out);
        if (rc != OK) snprintf(why, whylen, "%s", strerror(out.failed));
    }
    rdbo_release(&out);
    if (rc == OK && fsync(fd) != 0) {
        snprintf(why, whylen, "fsync: %s", strerror(errno));
        rc = ERR;
    }
    close(fd);
    persist_sidecar_finish(sc, tmp, rc == OK);
    if (rc != OK) unlink(tmp);
    return rc;
}

/* Renames base file from -> to, and its sidecar along with it. */
static int rename_base(const char *from, const char *to) {
    if (rename(from, to) != 0) return ERR;
    char a[1100], b[1100];
    snprintf(a, sizeof a, "%s.sidecar", from);
    snprintf(b, sizeof b, "%s.sidecar", to);
    if (rename(a, b) != 0 && errno != ENOENT) log_msg(LL_WARNING, "rdb-sidecar: cannot rename %s: %s", a, strerror(errno));
    return OK;
}

/* The fork child: writes the new base into the directory's temp file. */
__attribute__((noreturn)) static void child_write_base(const char *tmp) {
    char why[512] = "";
    if (write_base_file(tmp, why, sizeof why) != OK) {
        log_msg(LL_WARNING, "Write error writing append only file on disk: %s", why);
        _exit(1);
    }
    log_msg(LL_NOTICE, "Successfully created the temporary AOF base file %s", tmp);
    persist_child_final();
    _exit(0);
}

static void temp_base_path(char *out, size_t cap, pid_t pid) {
    char name[64];
    snprintf(name, sizeof name, "temp-rewriteaof-bg-%d.aof", (int)pid);
    if (path_in_dir(out, cap, name) != OK) snprintf(out, cap, "%s", name);
}

int aof_rewrite_background(char *err, size_t errlen) {
    if (A.child_pid != -1) {
        snprintf(err, errlen, "Background append only file rewriting already in progress");
        return ERR;
    }
    if (persist.child != -1) {
        A.scheduled = 1;
        return OK; /* starts when the BGSAVE ends (aof_start_scheduled) */
    }
    if (ensure_dir(err, errlen) != OK) return ERR;
    /* 1. from now on writes go to a new incremental file */
    flush_and_sync();
    char ierr[512];
    if (A.state == AOF_OFF) {
        /* BGREWRITEAOF with appendonly no: a base and a manifest only,
         * numbered after what the directory holds */
        manifest m;
        int exists;
        if (!A.m.base.name && !A.m.nincr && mf_load(&m, &exists, ierr, sizeof ierr) == OK && exists) A.m = m;
        A.first_new_incr = A.m.nincr;
    } else if (A.state == AOF_WAIT_REWRITE) {
        char p[1024];
        if (path_in_dir(p, sizeof p, TEMP_INCR) == OK) unlink(p); /* a failed try's */
        if (open_incr(TEMP_INCR, ierr, sizeof ierr) != OK) goto fail;
        A.first_new_incr = A.m.nincr;
    } else {
        long long seq = A.m.incr_seq + 1;
        char *name = file_name(seq, "incr.aof");
        if (!name || mf_push(&A.m.incr, &A.m.nincr, name, seq, 'i') != OK) {
            free(name);
            snprintf(ierr, sizeof ierr, "out of memory");
            goto fail;
        }
        free(name);
        A.m.incr_seq = seq;
        if (open_incr(A.m.incr[A.m.nincr - 1].name, ierr, sizeof ierr) != OK ||
            mf_persist(&A.m, ierr, sizeof ierr) != OK) {
            mf_file_free(&A.m.incr[--A.m.nincr]);
            goto fail;
        }
        A.first_new_incr = A.m.nincr - 1;
    }
    /* 2. the child writes the base */
    pid_t pid = persist_fork(PERSIST_CHILD_AOF, ierr, sizeof ierr);
    if (pid < 0) goto fail;
    if (pid == 0) {
        char tmp[1024];
        temp_base_path(tmp, sizeof tmp, getpid());
        child_write_base(tmp);
    }
    A.child_pid = pid;
    A.scheduled = 0;
    A.rewrite_start_ms = srv.now_ms;
    log_msg(LL_NOTICE, "Background append only file rewriting started by pid %d", (int)pid);
    return OK;
fail:
    snprintf(err, errlen, "Can't rewrite append only file in background: %s", ierr);
    log_msg(LL_WARNING, "%s", err);
    A.last_bgrewrite_ok = 0;
    A.consecutive_failures++;
    A.next_try_ms = srv.now_ms + REWRITE_RETRY_MS;
    return ERR;
}

static void rewrite_failed(void) {
    A.last_bgrewrite_ok = 0;
    A.consecutive_failures++;
    A.next_try_ms = srv.now_ms + REWRITE_RETRY_MS;
    if (A.state == AOF_WAIT_REWRITE) {
        /* the temp file holds writes the failed base does not: the next
         * try starts over from the dataset, so it goes */
        if (A.fd >= 0) close(A.fd);
        A.fd = -1;
        char p[1024];
        if (path_in_dir(p, sizeof p, TEMP_INCR) == OK) unlink(p);
        A.scheduled = 1;
    }
}

void aof_rewrite_done(int ok, int bysignal) {
    pid_t pid = A.child_pid;
    A.child_pid = -1;
    A.last_rewrite_secs = (srv.now_ms - A.rewrite_start_ms) / 1000;
    char tmp[1024];
    temp_base_path(tmp, sizeof tmp, pid);
    if (!ok) {
        unlink(tmp);
        remove_sidecar_of(tmp);
        if (bysignal) log_msg(LL_WARNING, "Background AOF rewrite terminated by signal %d", bysignal);
        else log_msg(LL_WARNING, "Background AOF rewrite terminated with error");
        rewrite_failed();
        return;
    }
    char err[512];
    manifest nm = {0};
    nm.base_seq = A.m.base_seq + 1;
    nm.incr_seq = A.m.incr_seq;
    nm.base.seq = nm.base_seq;
    nm.base.type = 'b';
    nm.base.name = file_name(nm.base_seq, aofcfg.use_rdb_preamble ? "base.rdb" : "base.aof");
    int oom = !nm.base.name;
    /* the old base and the files before the fork become history */
    if (!oom && A.m.base.name) oom = mf_push(&nm.hist, &nm.nhist, A.m.base.name, A.m.base.seq, 'h') != OK;
    for (int i = 0; !oom && i < A.m.nhist; i++)
        oom = mf_push(&nm.hist, &nm.nhist, A.m.hist[i].name, A.m.hist[i].seq, 'h') != OK;
    for (int i = 0; !oom && i < A.first_new_incr && i < A.m.nincr; i++)
        oom = mf_push(&nm.hist, &nm.nhist, A.m.incr[i].name, A.m.incr[i].seq, 'h') != OK;
    if (A.state == AOF_OFF) {
        /* no incremental file: nothing is appended */
    } else if (A.state == AOF_WAIT_REWRITE) {
        nm.incr_seq = A.m.incr_seq + 1;
        char *name = file_name(nm.incr_seq, "incr.aof");
        oom = oom || !name || mf_push(&nm.incr, &nm.nincr, name, nm.incr_seq, 'i') != OK;
        free(name);
    } else {
        for (int i = A.first_new_incr; !oom && i < A.m.nincr; i++)
            oom = mf_push(&nm.incr, &nm.nincr, A.m.incr[i].name, A.m.incr[i].seq, 'i') != OK;
    }
    if (oom) {
        log_msg(LL_WARNING, "AOF rewrite: out of memory building the new manifest");
        goto fail;
    }
    char base_path[1024];
    if (path_in_dir(base_path, sizeof base_path, nm.base.name) != OK || rename_base(tmp, base_path) != OK) {
        log_msg(LL_WARNING, "Error trying to rename the temporary AOF base file %s into %s: %s", tmp, nm.base.name,
                strerror(errno));
        goto fail;
    }
    if (A.state == AOF_WAIT_REWRITE) {
        char from[1024], to[1024];
        flush_and_sync();
        if (path_in_dir(from, sizeof from, TEMP_INCR) != OK ||
            path_in_dir(to, sizeof to, nm.incr[0].name) != OK || rename(from, to) != 0) {
            log_msg(LL_WARNING, "Error trying to rename the temporary AOF incr file: %s", strerror(errno));
            unlink(base_path);
            goto fail;
        }
    }
    if (mf_persist(&nm, err, sizeof err) != OK) {
        log_msg(LL_WARNING, "%s", err);
        unlink(base_path);
        goto fail;
    }
    mf_free(&A.m);
    A.m = nm;
    /* the manifest named the old files as history until they are gone:
     * a crash in between leaves them named, never dangling */
    if (A.m.nhist) {
        delete_history(&A.m);
        if (mf_persist(&A.m, err, sizeof err) != OK) log_msg(LL_WARNING, "%s", err);
    }
    if (A.state == AOF_WAIT_REWRITE) {
        A.state = AOF_ON;
        log_msg(LL_NOTICE, "Background AOF rewrite finished successfully");
    }
    A.base_size = file_size(A.m.base.name);
    A.cur_size = A.base_size;
    for (int i = 0; i < A.m.nincr; i++) A.cur_size += file_size(A.m.incr[i].name);
    A.last_bgrewrite_ok = 1;
    A.consecutive_failures = 0;
    A.lost_op = 0; /* the new base holds the dataset itself */
    A.rewrites++;
    log_msg(LL_NOTICE, "Background AOF rewrite terminated with success");
    return;
fail:
    unlink(tmp);
    remove_sidecar_of(tmp);
    mf_free(&nm);
    rewrite_failed();
}

void aof_start_scheduled(void) {
    /* appendonly no too: BGREWRITEAOF then writes a base and a manifest */
    if (!A.scheduled || A.child_pid != -1 || persist.child != -1) return;
    if (srv.now_ms < A.next_try_ms) return;
    char err[512];
    aof_rewrite_background(err, sizeof err);
}

void aof_cron(void) {
    if (A.state == AOF_OFF) {
        aof_start_scheduled();
        return;
    }
    /* everysec: fsync what the loop wrote, even when nothing new comes */
    if (A.fd >= 0) {
        if (!A.write_ok || aof_has_pending()) aof_flush_before_replies();
        if (aofcfg.fsync == AOF_FSYNC_EVERYSEC && synced_upto() < A.written && srv.now_ms - A.last_fsync_ms >= 1000 &&
            !(aofcfg.no_fsync_on_rewrite && A.child_pid != -1))
            bg_fsync_request();
    }
    aof_start_scheduled();
    if (A.state == AOF_ON && A.child_pid == -1 && persist.child == -1 && !A.scheduled &&
        aofcfg.auto_rewrite_perc > 0 && A.cur_size > aofcfg.auto_rewrite_min_size && srv.now_ms >= A.next_try_ms) {
        long long base = A.base_size ? A.base_size : 1;
        long long growth = (A.cur_size * 100 / base) - 100;
        if (growth >= aofcfg.auto_rewrite_perc) {
            log_msg(LL_NOTICE, "Starting automatic rewriting of AOF on %lld%% growth", growth);
            char err[512];
            aof_rewrite_background(err, sizeof err);
        }
    }
}

/* ---------------------------------------------------------- on and off */

int aof_set_enabled(int on, char *err, size_t errlen) {
    if (on && A.state == AOF_OFF) {
        if (ensure_dir(err, errlen) != OK) return ERR;
        /* an earlier AOF in the directory: its files become history of the
         * new base, and numbering goes on after them */
        manifest m;
        int exists;
        char merr[512];
        if (mf_load(&m, &exists, merr, sizeof merr) == OK && exists) {
            mf_free(&A.m);
            A.m = m;
        }
        A.first_new_incr = A.m.nincr;
        A.state = AOF_WAIT_REWRITE;
        A.next_try_ms = 0;
        if (aof_rewrite_background(err, errlen) != OK) {
            A.state = AOF_OFF;
            if (A.fd >= 0) close(A.fd);
            A.fd = -1;
            return ERR;
        }
        return OK;
    }
    if (!on && A.state != AOF_OFF) {
        if (A.child_pid != -1) {
            log_msg(LL_NOTICE, "Killing running AOF rewrite child: %d", (int)A.child_pid);
            persist_kill_child();
        }
        flush_and_sync();
        if (A.fd >= 0) close(A.fd);
        A.fd = -1;
        if (A.state == AOF_WAIT_REWRITE) {
            char p[1024];
            if (path_in_dir(p, sizeof p, TEMP_INCR) == OK) unlink(p);
        }
        A.state = AOF_OFF;
        A.scheduled = 0;
        if (A.buf) dstr_setlen(A.buf, 0);
        A.write_ok = 1;
        A.lost_op = 0;
    }
    return OK;
}

void aof_on_shutdown(void) {
    if (A.state == AOF_OFF) return;
    if (A.child_pid != -1) {
        log_msg(LL_WARNING, "There is a child rewriting the AOF. Killing it!");
        persist_kill_child();
    }
    log_msg(LL_NOTICE, "Calling fsync() on the AOF file.");
    flush_and_sync();
}

/* ---------------------------------------------------------------- startup */

/* The files of the manifest replayed in order into the live databases. */
static int load_manifest_files(char *err, size_t errlen) {
    int nfiles = (A.m.base.name ? 1 : 0) + A.m.nincr;
    int idx = 0;
    long long total = 0;
    long long start = mono_us();
    if (A.m.base.name) {
        char p[1024];
        aof_file_result r;
        if (path_in_dir(p, sizeof p, A.m.base.name) != OK) goto toolong;
        size_t n = strlen(p);
        int rdb_base = n > 4 && !strcmp(p + n - 4, ".rdb");
        if (persist_sidecar_check(p, rdb_base ? persist_rdb_loads_whole : NULL, err, errlen) != OK) return ERR;
        if (aof_load_file(p, 1, ++idx == nfiles, &r, err, errlen) != OK) return ERR;
        total += r.commands;
        log_msg(LL_NOTICE, "DB loaded from base file %s: %.3f seconds", A.m.base.name,
                (double)(mono_us() - start) / 1e6);
    }
    for (int i = 0; i < A.m.nincr; i++) {
        char p[1024];
        aof_file_result r;
        long long t0 = mono_us();
        if (path_in_dir(p, sizeof p, A.m.incr[i].name) != OK) goto toolong;
        if (aof_load_file(p, 0, ++idx == nfiles, &r, err, errlen) != OK) return ERR;
        total += r.commands;
        log_msg(LL_NOTICE, "DB loaded from incr file %s: %.3f seconds", A.m.incr[i].name,
                (double)(mono_us() - t0) / 1e6);
    }
    log_msg(LL_NOTICE, "DB loaded from append only file: %.3f seconds (%lld commands)",
            (double)(mono_us() - start) / 1e6, total);
    return OK;
toolong:
    snprintf(err, errlen, "the AOF path is too long");
    return ERR;
}

/* Writes base seq 1 from the dataset now (start-up, no clients yet). */
static int write_first_base(char *err, size_t errlen) {
    A.m.base_seq = 1;
    A.m.base.seq = 1;
    A.m.base.type = 'b';
    A.m.base.name = file_name(1, aofcfg.use_rdb_preamble ? "base.rdb" : "base.aof");
    if (!A.m.base.name) {
        snprintf(err, errlen, "out of memory");
        return ERR;
    }
    char p[1024], tmp[1024];
    if (path_in_dir(p, sizeof p, A.m.base.name) != OK || path_in_dir(tmp, sizeof tmp, "temp-base-start.aof") != OK) {
        snprintf(err, errlen, "the AOF path is too long");
        return ERR;
    }
    log_msg(LL_NOTICE, "Creating AOF base file %s on server start", A.m.base.name);
    char why[512] = "";
    if (write_base_file(tmp, why, sizeof why) != OK || rename_base(tmp, p) != OK) {
        unlink(tmp);
        remove_sidecar_of(tmp);
        snprintf(err, errlen, "cannot write the AOF base file %s: %s", p, why[0] ? why : strerror(errno));
        return ERR;
    }
    return OK;
}

int aof_load_at_start(char *err, size_t errlen) {
    if (!aofcfg.appendonly) return OK;
    if (ensure_dir(err, errlen) != OK) return ERR;
    int exists;
    char merr[768];
    if (mf_load(&A.m, &exists, merr, sizeof merr) != OK) {
        snprintf(err, errlen, "Fatal error: %s. The server does not start on a partial dataset.", merr);
        return ERR;
    }
    if (exists) {
        if (load_manifest_files(err, errlen) != OK) return ERR;
        if (A.m.nhist) { /* left by a crash after a rewrite: drop them now */
            delete_history(&A.m);
            char e2[512];
            if (mf_persist(&A.m, e2, sizeof e2) != OK) log_msg(LL_WARNING, "%s", e2);
        }
    } else {
        /* No AOF yet.  Redis 7.0 would start empty here even with a dump
         * beside it (turning appendonly on in the config then loses the
         * data); inferkv loads the RDB, and the new base holds it. */
        char rerr[1400];
        if (persist_load_rdb_at_start(rerr, sizeof rerr) != OK) {
            snprintf(err, errlen, "%s", rerr);
            return ERR;
        }
        if (write_first_base(err, errlen) != OK) return ERR;
    }
    /* append to the last incremental file, or to a new one */
    if (A.m.nincr == 0) {
        long long seq = A.m.incr_seq + 1;
        char *name = file_name(seq, "incr.aof");
        if (!name || mf_push(&A.m.incr, &A.m.nincr, name, seq, 'i') != OK) {
            free(name);
            snprintf(err, errlen, "out of memory");
            return ERR;
        }
        free(name);
        A.m.incr_seq = seq;
        if (open_incr(A.m.incr[0].name, err, errlen) != OK) return ERR;
        if (mf_persist(&A.m, err, errlen) != OK) return ERR;
    } else if (open_incr(A.m.incr[A.m.nincr - 1].name, err, errlen) != OK) {
        return ERR;
    }
    A.state = AOF_ON;
    A.base_size = A.m.base.name ? file_size(A.m.base.name) : 0;
    A.cur_size = A.base_size;
    for (int i = 0; i < A.m.nincr; i++) A.cur_size += file_size(A.m.incr[i].name);
    A.last_fsync_ms = srv.now_ms;
    return OK;
}

int aof_debug_reload(char *err, size_t errlen) {
    if (A.state != AOF_ON) {
        snprintf(err, errlen, "ERR AOF is not enabled: nothing to load (CONFIG SET appendonly yes first)");
        return ERR;
    }
    if (A.child_pid != -1) {
        snprintf(err, errlen, "ERR an AOF rewrite is in progress: try again when it ends");
        return ERR;
    }
    flush_and_sync();
    if (aof_has_pending()) {
        snprintf(err, errlen, "ERR the AOF cannot be written: %s", strerror(A.write_errno));
        return ERR;
    }
    kdb *old = db_array_take();
    if (!old) {
        snprintf(err, errlen, "ERR out of memory");
        return ERR;
    }
    char lerr[768];
    if (load_manifest_files(lerr, sizeof lerr) != OK) {
        db_array_put_back(old); /* the dataset as it was */
        log_msg(LL_WARNING, "DEBUG LOADAOF: %s", lerr);
        snprintf(err, errlen, "ERR Error loading the append only file: %s", lerr);
        return ERR;
    }
    for (int i = 0; i < srv.dbnum; i++) multi_touch_db(&srv.dbs[i]);
    db_array_free(old, srv.dbnum);
    log_msg(LL_NOTICE, "Append Only File loaded by DEBUG LOADAOF");
    return OK;
}

int aof_check_dir(int fix, int (*check)(const char *path, int is_base, int last, int fix)) {
    manifest m;
    int exists;
    char err[768];
    if (mf_load(&m, &exists, err, sizeof err) != OK) {
        printf("error: %s\n", err);
        return 1;
    }
    if (!exists) {
        printf("error: no manifest %s.manifest in %s\n", aofcfg.filename, aofcfg.dirname);
        return 1;
    }
    printf("Start checking Multi Part AOF: %s/%s.manifest\n", aofcfg.dirname, aofcfg.filename);
    int n = (m.base.name ? 1 : 0) + m.nincr, idx = 0, bad = 0;
    char p[1024];
    if (m.base.name && path_in_dir(p, sizeof p, m.base.name) == OK) bad |= check(p, 1, ++idx == n, fix);
    for (int i = 0; i < m.nincr; i++)
        if (path_in_dir(p, sizeof p, m.incr[i].name) == OK) bad |= check(p, 0, ++idx == n, fix);
    mf_free(&m);
    printf(bad ? "The AOF is not valid\n" : "All AOF files and manifest are valid\n");
    return bad ? 1 : 0;
}

/* ------------------------------------------------------------------- INFO */

dstr aof_info(dstr s) {
    long long cur = A.child_pid != -1 ? (srv.now_ms - A.rewrite_start_ms) / 1000 : -1;
    s = dstr_or_free(s, dstr_catfmt(s,
        "aof_enabled:%d\r\naof_rewrite_in_progress:%d\r\naof_rewrite_scheduled:%d\r\n"
        "aof_last_rewrite_time_sec:%lld\r\naof_current_rewrite_time_sec:%lld\r\naof_last_bgrewrite_status:%s\r\n"
        "aof_rewrites:%lld\r\naof_rewrites_consecutive_failures:%lld\r\naof_last_write_status:%s\r\n"
        "aof_last_cow_size:%zu\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        A.state != AOF_OFF, A.child_pid != -1, A.scheduled, A.last_rewrite_secs, cur,
        A.last_bgrewrite_ok ? "ok" : "err", A.rewrites, A.consecutive_failures,
        A.write_ok && !A.lost_op ? "ok" : "err", persist.aof_cow_last));
    if (!s || A.state == AOF_OFF) return s;
    return dstr_or_free(s, dstr_catfmt(s,
        "aof_current_size:%lld\r\naof_base_size:%lld\r\naof_pending_rewrite:%d\r\naof_buffer_length:%zu\r\n"
        "aof_pending_bio_fsync:%d\r\naof_delayed_fsync:0\r\n",
        A.cur_size, A.base_size, A.scheduled,
        A.buf ? dstr_len(A.buf) : 0, pending_bg_fsync()));
}

/* ------------------------------------------------------------- command */

/* BGREWRITEAOF
 * Rewrites the AOF in a fork child: a new base from the dataset, after
 * which the older files go.  Scheduled when a BGSAVE is running.  O(1) for
 * the caller; the child's work is O(N). */
void bgrewriteaof_cmd(client *c) {
    char err[512];
    if (A.child_pid != -1) {
        reply_error(c, "ERR Background append only file rewriting already in progress");
    } else if (persist.child != -1 || (c->flags & CF_IN_EXEC)) {
        /* as Redis: inside EXEC too, so a transaction never forks */
        A.scheduled = 1;
        A.next_try_ms = 0;
        reply_status(c, "Background append only file rewriting scheduled");
    } else if (aof_rewrite_background(err, sizeof err) == OK) {
        reply_status(c, "Background append only file rewriting started");
    } else {
        reply_error(c, "ERR Can't execute an AOF background rewriting. Please check the server logs for more "
                       "information.");
    }
}
