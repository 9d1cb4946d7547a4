/* pull_fault_shim.c - LD_PRELOAD fault injection for test_cli_pull.py (the
 * test compiles it): a full disk without root or a tmpfs mount.
 *   PULL_ENOSPC_AFTER=N  write() to a file whose name ends in ".part" fails
 *                        with ENOSPC once N bytes have gone to such files
 *                        (the write that crosses N is cut short first)
 *   PULL_FAKE_FREE=N     fstatvfs() reports N bytes available */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static long long part_written;

static int is_part(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 5) return 0;
    path[n] = '\0';
    return !strcmp(path + n - 5, ".part");
}

ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "write");
    const char *lim = getenv("PULL_ENOSPC_AFTER");
    if (!lim || !is_part(fd)) return real(fd, buf, n);
    long long max = atoll(lim);
    if (part_written >= max) {
        errno = ENOSPC;
        return -1;
    }
    if ((long long)n > max - part_written) n = (size_t)(max - part_written);
    ssize_t k = real(fd, buf, n);
    if (k > 0) part_written += k;
    return k;
}

int fstatvfs(int fd, struct statvfs *sv) {
    static int (*real)(int, struct statvfs *);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "fstatvfs");
    int rc = real(fd, sv);
    const char *fake = getenv("PULL_FAKE_FREE");
    if (!rc && fake && sv->f_frsize) sv->f_bavail = (fsblkcnt_t)(atoll(fake) / (long long)sv->f_frsize);
    return rc;
}
