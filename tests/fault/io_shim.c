/* io_shim.c - LD_PRELOAD fault injection into inferkv-server's I/O, for
 * tests/integration/test_io_faults.py (which compiles it).
 *
 * Why a shim: full disks, failing disks, interrupted and short system calls
 * and peers that reset are what a server meets in production and almost
 * never in a test; an interposed read/write/writev/fsync/fdatasync makes
 * each of them happen on demand, without root, a tmpfs or a network.
 *
 * The faults are read from the file $IOFAULT_CTL, re-read whenever it
 * changes (so a test turns them on and off while the server runs), one per
 * line:
 *   aof enospc | aof eio      write() to a file whose name contains ".aof"
 *                             fails with that error
 *   aof short                 such writes write at most half of what is asked
 *   fsync eio                 fsync/fdatasync of such files fails with EIO
 *   sockread short            read() from a socket returns at most 1 byte
 *   sockread eintr            every other read() from a socket fails with EINTR
 *   sockwrite short           write/writev to a socket write at most 7 bytes
 *   sockwrite eintr|eagain    every other write/writev to a socket fails so
 *   sockwrite reset N         once N bytes have gone to sockets, writes fail
 *                             with ECONNRESET (the counter restarts when the
 *                             line changes)
 * An empty or missing file: no fault. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { AOF_ENOSPC = 1, AOF_EIO = 2, AOF_SHORT = 4, FSYNC_EIO = 8, RD_SHORT = 16, RD_EINTR = 32, WR_SHORT = 64,
       WR_EINTR = 128, WR_EAGAIN = 256, WR_RESET = 512 };

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int faults;
static long long reset_after, sock_written;
static struct timespec seen; /* mtime of the control file last read */
static unsigned long flips[3]; /* one per "every other call" fault, so they do not mask each other */
enum { FLIP_READ, FLIP_EINTR, FLIP_EAGAIN };

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void resolve(void) {
    if (real_read) return;
    *(void **)&real_read = dlsym(RTLD_NEXT, "read");
    *(void **)&real_write = dlsym(RTLD_NEXT, "write");
    *(void **)&real_writev = dlsym(RTLD_NEXT, "writev");
    *(void **)&real_fsync = dlsym(RTLD_NEXT, "fsync");
    *(void **)&real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
}

/* Re-reads the control file when its mtime changed; the faults now on. */
static int current(void) {
    const char *ctl = getenv("IOFAULT_CTL");
    if (!ctl) return 0;
    struct stat st;
    pthread_mutex_lock(&mu);
    if (stat(ctl, &st) != 0) {
        faults = 0;
    } else if (st.st_mtim.tv_sec != seen.tv_sec || st.st_mtim.tv_nsec != seen.tv_nsec) {
        seen = st.st_mtim;
        int f = 0;
        long long n = 0;
        int fd = open(ctl, O_RDONLY | O_CLOEXEC);
        char buf[512] = {0};
        if (fd >= 0) {
            ssize_t k = real_read(fd, buf, sizeof buf - 1);
            (void)k;
            close(fd);
        }
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
            char what[32] = {0}, how[32] = {0};
            long long arg = 0;
            if (sscanf(line, "%31s %31s %lld", what, how, &arg) < 2) continue;
            if (!strcmp(what, "aof") && !strcmp(how, "enospc")) f |= AOF_ENOSPC;
            if (!strcmp(what, "aof") && !strcmp(how, "eio")) f |= AOF_EIO;
            if (!strcmp(what, "aof") && !strcmp(how, "short")) f |= AOF_SHORT;
            if (!strcmp(what, "fsync") && !strcmp(how, "eio")) f |= FSYNC_EIO;
            if (!strcmp(what, "sockread") && !strcmp(how, "short")) f |= RD_SHORT;
            if (!strcmp(what, "sockread") && !strcmp(how, "eintr")) f |= RD_EINTR;
            if (!strcmp(what, "sockwrite") && !strcmp(how, "short")) f |= WR_SHORT;
            if (!strcmp(what, "sockwrite") && !strcmp(how, "eintr")) f |= WR_EINTR;
            if (!strcmp(what, "sockwrite") && !strcmp(how, "eagain")) f |= WR_EAGAIN;
            if (!strcmp(what, "sockwrite") && !strcmp(how, "reset")) f |= WR_RESET, n = arg;
        }
        faults = f;
        reset_after = n;
        sock_written = 0;
    }
    int f = faults;
    pthread_mutex_unlock(&mu);
    return f;
}

static int is_sock(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static int is_aof(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strstr(path, ".aof") != NULL;
}

static int every_other(int which) {
    pthread_mutex_lock(&mu);
    int yes = flips[which]++ & 1;
    pthread_mutex_unlock(&mu);
    return yes;
}

/* A socket write fault: -1 with errno set, or 0 (go on, with *cap the
 * bytes that may go). */
static int sock_write_fault(int f, size_t *cap) {
    if ((f & WR_EINTR) && every_other(FLIP_EINTR)) return errno = EINTR, -1;
    if ((f & WR_EAGAIN) && every_other(FLIP_EAGAIN)) return errno = EAGAIN, -1;
    if (f & WR_SHORT && *cap > 7) *cap = 7;
    if (f & WR_RESET) {
        pthread_mutex_lock(&mu);
        long long left = reset_after - sock_written;
        pthread_mutex_unlock(&mu);
        if (left <= 0) return errno = ECONNRESET, -1;
        if ((long long)*cap > left) *cap = (size_t)left;
    }
    return 0;
}

static void count_sock(ssize_t n) {
    if (n <= 0) return;
    pthread_mutex_lock(&mu);
    sock_written += n;
    pthread_mutex_unlock(&mu);
}

ssize_t read(int fd, void *buf, size_t n) {
    resolve();
    int f = current();
    if ((f & (RD_SHORT | RD_EINTR)) && is_sock(fd)) {
        if ((f & RD_EINTR) && every_other(FLIP_READ)) return errno = EINTR, -1;
        if ((f & RD_SHORT) && n > 1) n = 1;
    }
    return real_read(fd, buf, n);
}

ssize_t write(int fd, const void *buf, size_t n) {
    resolve();
    int f = current();
    if (f & (AOF_ENOSPC | AOF_EIO | AOF_SHORT) && is_aof(fd)) {
        if (f & AOF_ENOSPC) return errno = ENOSPC, -1;
        if (f & AOF_EIO) return errno = EIO, -1;
        if (n > 1) n /= 2;
        return real_write(fd, buf, n);
    }
    if (f & (WR_SHORT | WR_EINTR | WR_EAGAIN | WR_RESET) && is_sock(fd)) {
        if (sock_write_fault(f, &n) < 0) return -1;
        ssize_t k = real_write(fd, buf, n);
        count_sock(k);
        return k;
    }
    return real_write(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    resolve();
    int f = current();
    if (!(f & (WR_SHORT | WR_EINTR | WR_EAGAIN | WR_RESET)) || !is_sock(fd)) return real_writev(fd, iov, cnt);
    size_t total = 0;
    for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
    size_t cap = total;
    if (sock_write_fault(f, &cap) < 0) return -1;
    if (cap == total) {
        ssize_t k = real_writev(fd, iov, cnt);
        count_sock(k);
        return k;
    }
    /* cut short: the first cap bytes, from as many buffers as they span */
    struct iovec cut[64];
    int m = 0;
    for (int i = 0; i < cnt && cap > 0 && m < 64; i++) {
        size_t take = iov[i].iov_len < cap ? iov[i].iov_len : cap;
        cut[m].iov_base = iov[i].iov_base;
        cut[m++].iov_len = take;
        cap -= take;
    }
    ssize_t k = real_writev(fd, cut, m);
    count_sock(k);
    return k;
}

int fsync(int fd) {
    resolve();
    if ((current() & FSYNC_EIO) && is_aof(fd)) return errno = EIO, -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    resolve();
    if ((current() & FSYNC_EIO) && is_aof(fd)) return errno = EIO, -1;
    return real_fdatasync(fd);
}
