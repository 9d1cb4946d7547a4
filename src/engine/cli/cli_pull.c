/* cli_pull.c - `inferkv-cli pull OWNER/REPO[:QUANT|:FILE.gguf]`: fetches one
 * GGUF file from a Hugging Face-style hub into --dir, the way llama.cpp's
 * -hf and `ollama pull` do, so that the server itself never downloads
 * (INFER.LOAD reads only infer-models-dir).  cli_hub.c picks the file and
 * reads the size and SHA-256 the hub publishes; this file downloads it.
 *
 * The download goes to DIR/.NAME.part and is renamed to DIR/NAME only once
 * its SHA-256 (OpenSSL's EVP) equals the hub's (or --sha256), with the file
 * and the directory fsync'ed, so DIR/NAME is always either absent or whole.
 * A cut download keeps its .part; the next run hashes what it holds and asks
 * for the rest with Range (a server answering 200 instead of 206 restarts
 * it).  A mismatch deletes the .part.  Everything is opened relative to
 * --dir's descriptor, under a name with no '/', never following a symlink,
 * so nothing is written outside --dir.  An installed file whose size and
 * SHA-256 match is hashed again and not downloaded (no sidecar to trust).
 * Free space is checked before the transfer when the size is known, and a
 * write that fails with ENOSPC says how much is free and how much is
 * needed.  Exit statuses: cli_hub.h, docs/cli.md#pull. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_hub.h"

typedef struct {
    CURL *curl;
    const hub_repo *r;
    const char *dir, *name;
    int dirfd, fd;
    EVP_MD_CTX *md;
    uint64_t offset; /* bytes already in the .part when the request went out */
    uint64_t got;    /* bytes written by this request */
    uint64_t total;  /* the file's size, when has_total */
    int has_total;
    char sha[65];        /* the expected SHA-256 ("" until known) */
    const char *sha_src; /* where it came from */
    /* from the response headers */
    char link_sha[65], crange[128];
    uint64_t link_size;
    int has_link_sha, has_link_size;
    long status;
    int started;
    /* an error found in a callback: exit status and message */
    int err;
    char msg[1024];
    /* progress */
    int tty, quiet, drawn, decile;
    double t0, last;
} dl;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *fmt_size(char *buf, size_t cap, uint64_t b) {
    if (b >= (UINT64_C(1) << 30))
        snprintf(buf, cap, "%.2f GiB", (double)b / (1 << 30));
    else
        snprintf(buf, cap, "%.1f MiB", (double)b / (1 << 20));
    return buf;
}

static const char *fmt_eta(char *buf, size_t cap, double s) {
    if (!(s >= 0) || s > 360000) return snprintf(buf, cap, "--:--"), buf;
    unsigned t = (unsigned)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, cap, "%u:%02u", t / 60, t % 60);
    return buf;
}

static uint64_t free_bytes(int dirfd) {
    struct statvfs sv;
    if (fstatvfs(dirfd, &sv)) return UINT64_MAX;
    return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* DIR must hold `need` more bytes; PULL_NOSPACE with a message if not. */
static int space_check(const dl *d, uint64_t need) {
    uint64_t have = free_bytes(d->dirfd);
    if (have == UINT64_MAX || have >= need) return PULL_OK;
    char a[32], b[32], c[32];
    fprintf(stderr, "error: not enough space in %s for %s: %s free, %s needed (the file is %s); nothing downloaded\n",
            d->dir, d->name, fmt_size(a, sizeof a, have), fmt_size(b, sizeof b, need),
            fmt_size(c, sizeof c, d->total));
    return PULL_NOSPACE;
}

static void progress(dl *d, int final) {
    if (d->quiet) return;
    double t = now_s(), el = t - d->t0;
    uint64_t done = d->offset + d->got;
    /* the average of this run; not shown in its first half second */
    double rate = el > 0 && (final || el > 0.5) ? (double)d->got / el : 0;
    char a[32], b[32], e[32], sp[32];
    if (rate > 0)
        snprintf(sp, sizeof sp, "%.1f", rate / (1 << 20));
    else
        snprintf(sp, sizeof sp, "--");
    if (d->tty) {
        if (!final && t - d->last < 0.1) return;
        d->last = t;
        d->drawn = 1;
        if (d->has_total && d->total)
            fprintf(stderr, "\r%s  %s / %s  %3d%%  %s MiB/s  ETA %s\033[K", d->name, fmt_size(a, sizeof a, done),
                    fmt_size(b, sizeof b, d->total), (int)(done * 100 / d->total), sp,
                    fmt_eta(e, sizeof e, rate > 0 ? (double)(d->total - done) / rate : -1));
        else
            fprintf(stderr, "\r%s  %s  %s MiB/s\033[K", d->name, fmt_size(a, sizeof a, done), sp);
        if (final) {
            fputc('\n', stderr);
            d->drawn = 0;
        }
        return;
    }
    if (!d->has_total || !d->total) return;
    int dec = (int)(done * 10 / d->total);
    while (d->decile < dec) {
        d->decile++;
        fprintf(stderr, "%s: %d%% (%s of %s, %s MiB/s, ETA %s)\n", d->name, d->decile * 10,
                fmt_size(a, sizeof a, done), fmt_size(b, sizeof b, d->total), sp,
                fmt_eta(e, sizeof e, rate > 0 ? (double)(d->total - done) / rate : -1));
    }
}

/* Ends a redrawn progress line before a message. */
static void progress_break(dl *d) {
    if (d->drawn) fputc('\n', stderr);
    d->drawn = 0;
}

static int fail(dl *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(dl *d, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    d->err = code;
    return -1;
}

static int is_sha_hex(const char *s, size_t n) {
    if (n != 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* "Name: value\r\n" -> value (trimmed) in out when the header is `name`. */
static int header_is(const char *b, size_t n, const char *name, char *out, size_t cap) {
    size_t k = strlen(name);
    if (n <= k || strncasecmp(b, name, k) || b[k] != ':') return 0;
    const char *v = b + k + 1, *e = b + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t len = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
    memcpy(out, v, len);
    out[len] = '\0';
    return 1;
}

static size_t on_header(char *b, size_t sz, size_t nm, void *ud) {
    dl *d = ud;
    size_t n = sz * nm;
    char v[160];
    if (n >= 5 && !memcmp(b, "HTTP/", 5)) {
        d->crange[0] = '\0'; /* a new response (the hub's redirect, then the CDN's answer) */
        return n;
    }
    /* X-Linked-Etag / X-Linked-Size come with the hub's redirect and
     * describe the LFS object the CDN serves; the first seen is the hub's. */
    if (header_is(b, n, "x-linked-etag", v, sizeof v) && !d->has_link_sha) {
        char *s = v;
        if (!strncmp(s, "W/", 2)) s += 2;
        size_t l = strlen(s);
        if (l >= 2 && s[0] == '"' && s[l - 1] == '"') s++, l -= 2;
        if (is_sha_hex(s, l)) {
            for (size_t i = 0; i < 64; i++) d->link_sha[i] = (char)tolower((unsigned char)s[i]);
            d->link_sha[64] = '\0';
            d->has_link_sha = 1;
        }
    } else if (header_is(b, n, "x-linked-size", v, sizeof v) && !d->has_link_size) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (v[0] >= '0' && v[0] <= '9' && !*end && !errno) {
            d->link_size = x;
            d->has_link_size = 1;
        }
    } else if (header_is(b, n, "content-range", v, sizeof v)) {
        memcpy(d->crange, v, sizeof d->crange - 1);
        d->crange[sizeof d->crange - 1] = '\0';
    }
    return n;
}

static int rehash_from(dl *d, uint64_t upto) {
    static unsigned char buf[1 << 16];
    EVP_DigestInit_ex(d->md, EVP_sha256(), NULL);
    for (uint64_t off = 0; off < upto;) {
        size_t want = upto - off < sizeof buf ? (size_t)(upto - off) : sizeof buf;
        ssize_t k = pread(d->fd, buf, want, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        EVP_DigestUpdate(d->md, buf, (size_t)k);
        off += (uint64_t)k;
    }
    return 0;
}

/* The final response's headers are in: check them against what is known. */
static int on_start(dl *d) {
    char a[32], b[32];
    d->started = 1;
    curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &d->status);
    if (d->status != 200 && d->status != 206) return 0; /* an error page, discarded */
    if (d->has_link_sha) {
        if (!d->sha[0]) {
            memcpy(d->sha, d->link_sha, sizeof d->sha);
            d->sha_src = "the hub's X-Linked-Etag";
        } else if (strcmp(d->sha, d->link_sha)) {
            return fail(d, PULL_CHECKSUM,
                        "the SHA-256 of %s from %s is %s, but the hub's redirect (X-Linked-Etag) says %s; "
                        "nothing downloaded",
                        d->name, d->sha_src, d->sha, d->link_sha);
        }
    }
    if (d->has_link_size) {
        if (d->has_total && d->total != d->link_size)
            return fail(d, PULL_ERR, "the hub gives two sizes for %s: %llu (tree) and %llu (X-Linked-Size)", d->name,
                        (unsigned long long)d->total, (unsigned long long)d->link_size);
        d->total = d->link_size;
        d->has_total = 1;
    }
    if (!d->sha[0])
        return fail(d, PULL_ERR,
                    "the hub publishes no SHA-256 for %s (not in its tree listing, no X-Linked-Etag); "
                    "pass --sha256 HEX to pull it verified",
                    d->name);
    if (d->status == 206) {
        unsigned long long s, e, t;
        char extra;
        if (sscanf(d->crange, "bytes %llu-%llu/%llu%c", &s, &e, &t, &extra) != 3 || s != d->offset || e + 1 != t ||
            (d->has_total && t != d->total))
            return fail(d, PULL_ERR, "asked for %s from byte %llu, the server answered 206 with Content-Range '%s'",
                        d->name, (unsigned long long)d->offset, d->crange);
        d->total = t;
        d->has_total = 1;
    } else {
        if (d->offset) {
            if (!d->quiet)
                fprintf(stderr, "%s: the server ignored the Range request (200, not 206): starting over\n", d->name);
            if (ftruncate(d->fd, 0) || lseek(d->fd, 0, SEEK_SET) != 0)
                return fail(d, PULL_ERR, "cannot truncate %s/.%s.part: %s", d->dir, d->name, strerror(errno));
            EVP_DigestInit_ex(d->md, EVP_sha256(), NULL);
            d->offset = 0;
        }
        curl_off_t cl = -1;
        if (curl_easy_getinfo(d->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0) {
            if (d->has_total && (uint64_t)cl != d->total)
                return fail(d, PULL_ERR, "the server sends %s with %llu bytes, the hub says %llu", d->name,
                            (unsigned long long)cl, (unsigned long long)d->total);
            d->total = (uint64_t)cl;
            d->has_total = 1;
        }
    }
    if (d->has_total) {
        uint64_t need = d->total - d->offset, have = free_bytes(d->dirfd);
        if (have != UINT64_MAX && have < need)
            return fail(d, PULL_NOSPACE, "not enough space in %s for %s: %s free, %s needed; nothing downloaded",
                        d->dir, d->name, fmt_size(a, sizeof a, have), fmt_size(b, sizeof b, need));
        d->decile = (int)(d->total ? d->offset * 10 / d->total : 0);
    }
    d->t0 = d->last = now_s();
    return 0;
}

static size_t on_data(char *b, size_t sz, size_t nm, void *ud) {
    dl *d = ud;
    size_t n = sz * nm;
    if (!d->started && on_start(d)) return 0;
    if (d->status != 200 && d->status != 206) return n;
    if (d->has_total && n > d->total - d->offset - d->got) {
        fail(d, PULL_ERR, "the server sends more than the %llu bytes of %s", (unsigned long long)d->total, d->name);
        return 0;
    }
    for (size_t w = 0; w < n;) {
        ssize_t k = write(d->fd, b + w, n - w);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == ENOSPC || errno == EDQUOT)) {
            char a[32], c[32], e[32], f[32];
            const char *why = strerror(errno);
            uint64_t done = d->offset + d->got + w;
            fail(d, PULL_NOSPACE,
                 "disk full (%s) writing %s/.%s.part after %s of %s: %s free, %s more needed; "
                 "the partial file is kept: free space and run again to resume, or delete it",
                 why, d->dir, d->name, fmt_size(a, sizeof a, done), d->has_total ? fmt_size(c, sizeof c, d->total) : "?",
                 fmt_size(e, sizeof e, free_bytes(d->dirfd)),
                 d->has_total ? fmt_size(f, sizeof f, d->total - done) : "?");
            return 0;
        }
        if (k <= 0) {
            fail(d, PULL_ERR, "cannot write %s/.%s.part: %s", d->dir, d->name, k < 0 ? strerror(errno) : "short write");
            return 0;
        }
        w += (size_t)k;
    }
    EVP_DigestUpdate(d->md, b, n);
    d->got += n;
    progress(d, 0);
    return n;
}

/* One GET of the file from d->offset.  Returns PULL_OK, an exit status
 * (message printed), or -416 when the server refused the range. */
static int fetch(dl *d) {
    char *url = hub_resolve_url(d->r, d->name);
    struct curl_slist *hdrs = NULL;
    CURL *c = url ? hub_curl(d->r, url, &hdrs) : NULL;
    if (!c) {
        free(url);
        fprintf(stderr, "error: cannot set up libcurl\n");
        return PULL_ERR;
    }
    char errbuf[CURL_ERROR_SIZE] = "", range[32];
    d->curl = c;
    d->started = 0;
    d->got = 0;
    d->status = 0;
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (d->offset) {
        /* "Range: bytes=N-"; not CURLOPT_RESUME_FROM, which fails on a 200
         * instead of letting on_start() start over */
        snprintf(range, sizeof range, "%llu-", (unsigned long long)d->offset);
        curl_easy_setopt(c, CURLOPT_RANGE, range);
    }
    CURLcode res = curl_easy_perform(c);
    if (res == CURLE_OK && !d->started && !d->err) on_start(d); /* an empty body */
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    free(url);
    d->curl = NULL;
    int ok = !d->err && res == CURLE_OK && (d->status == 200 || d->status == 206);
    if (ok)
        progress(d, 1);
    else
        progress_break(d);
    if (d->err) {
        fprintf(stderr, "error: %s\n", d->msg);
        return d->err;
    }
    char a[32], b[32];
    if (res != CURLE_OK) {
        if (d->started && (d->status == 200 || d->status == 206))
            fprintf(stderr,
                    "error: download of %s cut at %s of %s: %s; %s/.%s.part is kept: run the same command again "
                    "to resume\n",
                    d->name, fmt_size(a, sizeof a, d->offset + d->got),
                    d->has_total ? fmt_size(b, sizeof b, d->total) : "?", errbuf[0] ? errbuf : curl_easy_strerror(res),
                    d->dir, d->name);
        else
            fprintf(stderr, "error: cannot download %s: %s\n", d->name, errbuf[0] ? errbuf : curl_easy_strerror(res));
        return PULL_ERR;
    }
    if (d->status == 416 && d->offset) return -416;
    if (d->status != 200 && d->status != 206) {
        char what[512];
        snprintf(what, sizeof what, "file %s of %s/%s", d->name, d->r->owner, d->r->repo);
        return hub_http_error(d->r, d->status, what);
    }
    return PULL_OK;
}

/* SHA-256 of an installed file (opened without following a symlink). */
static int hash_file(int dirfd, const char *name, char hex[65]) {
    static unsigned char buf[1 << 16];
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) ? 0 : -1;
    ssize_t k;
    while (!rc && (k = read(fd, buf, sizeof buf)) != 0) {
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) rc = -1;
        else EVP_DigestUpdate(md, buf, (size_t)k);
    }
    unsigned char dg[32];
    unsigned dl_len = 0;
    if (!rc && EVP_DigestFinal_ex(md, dg, &dl_len) != 1) rc = -1;
    for (unsigned i = 0; !rc && i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", dg[i]);
    EVP_MD_CTX_free(md);
    close(fd);
    return rc;
}

static void print_installed(const char *dir, const char *name) {
    size_t n = strlen(dir);
    printf("%s%s%s\n", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

static int pull(const hub_repo *r, const char *sel, const char *dir, int dirfd, const char *sha_opt) {
    hub_file f;
    char a[32], b[32];
    int rc = hub_resolve(r, sel, &f);
    if (rc) return rc;
    const char *name = f.name;
    if (!r->quiet)
        fprintf(stderr, "%s/%s%s%s -> %s (%s, sha256 %s)\n", r->owner, r->repo, sel[0] ? ":" : "", sel, name,
                f.has_size ? fmt_size(a, sizeof a, f.size) : "size not listed", f.sha256[0] ? f.sha256 : "not listed");
    if (sha_opt && f.sha256[0] && strcmp(sha_opt, f.sha256)) {
        fprintf(stderr, "error: --sha256 %s does not match the SHA-256 the hub publishes for %s, %s; nothing downloaded\n",
                sha_opt, name, f.sha256);
        return PULL_CHECKSUM;
    }
    dl d = {.r = r, .dir = dir, .name = name, .dirfd = dirfd, .fd = -1, .total = f.size, .has_total = f.has_size,
            .quiet = r->quiet, .tty = isatty(2)};
    if (sha_opt) {
        memcpy(d.sha, sha_opt, 65);
        d.sha_src = "--sha256";
    } else if (f.sha256[0]) {
        memcpy(d.sha, f.sha256, 65);
        d.sha_src = "the hub's tree listing";
    }

    /* an installed file: never through a symlink; kept when it verifies */
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "error: %s/%s is %s; refusing to replace it\n", dir, name,
                    S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file");
            return PULL_ERR;
        }
        char hex[65];
        if (d.sha[0] && (!d.has_total || (uint64_t)st.st_size == d.total)) {
            if (hash_file(dirfd, name, hex)) {
                fprintf(stderr, "error: cannot read %s/%s: %s\n", dir, name, strerror(errno));
                return PULL_ERR;
            }
            if (!strcmp(hex, d.sha)) {
                if (!r->quiet)
                    fprintf(stderr, "%s/%s is already present and its SHA-256 matches; nothing downloaded\n", dir,
                            name);
                print_installed(dir, name);
                return PULL_OK;
            }
            if (!r->quiet)
                fprintf(stderr, "%s/%s differs from the hub's (sha256 %s): downloading it again\n", dir, name, hex);
        } else if (!r->quiet) {
            fprintf(stderr, "%s/%s exists (%s) but cannot be verified as the hub's: downloading it again\n", dir, name,
                    fmt_size(a, sizeof a, (uint64_t)st.st_size));
        }
    } else if (errno != ENOENT) {
        fprintf(stderr, "error: %s/%s: %s\n", dir, name, strerror(errno));
        return PULL_ERR;
    }

    /* the .part: created or resumed, locked against a second pull */
    char part[HUB_NAME_MAX + 8];
    snprintf(part, sizeof part, ".%s.part", name);
    d.fd = openat(dirfd, part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (d.fd < 0) {
        fprintf(stderr, "error: cannot open %s/%s: %s\n", dir, part,
                errno == ELOOP ? "it is a symbolic link; refusing" : strerror(errno));
        return PULL_ERR;
    }
    rc = PULL_ERR;
    int locked = 0;
    if (fstat(d.fd, &st) || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "error: %s/%s is not a regular file\n", dir, part);
        goto out;
    }
    if (flock(d.fd, LOCK_EX | LOCK_NB)) {
        fprintf(stderr, "error: %s/%s is locked: another pull of %s is running\n", dir, part, name);
        goto out;
    }
    locked = 1;
    /* The lock may have come free because another pull just renamed this
     * inode into place as the installed file: only the inode still named
     * .part, and still linked, is ours to write; its size is read now. */
    struct stat named;
    if (fstat(d.fd, &st) || fstatat(dirfd, part, &named, AT_SYMLINK_NOFOLLOW) || st.st_nlink == 0 ||
        st.st_dev != named.st_dev || st.st_ino != named.st_ino) {
        fprintf(stderr, "error: %s/%s changed while this pull started (another pull finished?); run it again\n",
                dir, part);
        goto out;
    }
    d.md = EVP_MD_CTX_new();
    if (!d.md || !EVP_DigestInit_ex(d.md, EVP_sha256(), NULL)) {
        fprintf(stderr, "error: cannot set up SHA-256 (libcrypto)\n");
        goto out;
    }
    d.offset = (uint64_t)st.st_size;
    if (d.offset && ((d.has_total && d.offset > d.total) || (d.offset == d.total && !d.sha[0]))) {
        if (ftruncate(d.fd, 0)) goto io_err;
        d.offset = 0;
    }
    if (d.offset) {
        if (!r->quiet)
            fprintf(stderr, "%s: resuming from %s (%s/%s)\n", name, fmt_size(a, sizeof a, d.offset), dir, part);
        if (rehash_from(&d, d.offset)) goto io_err;
    }
    if (lseek(d.fd, (off_t)d.offset, SEEK_SET) < 0) goto io_err;
    if (d.has_total && (rc = space_check(&d, d.total - d.offset))) goto out;

    if (!d.has_total || d.offset < d.total) {
        rc = fetch(&d);
        if (rc == -416) { /* the .part is longer than the file: start over */
            if (ftruncate(d.fd, 0) || lseek(d.fd, 0, SEEK_SET)) goto io_err;
            EVP_DigestInit_ex(d.md, EVP_sha256(), NULL);
            d.offset = 0;
            rc = fetch(&d);
            if (rc == -416) rc = hub_http_error(r, 416, name);
        }
        if (rc) goto out;
    } else if (!r->quiet) {
        fprintf(stderr, "%s: %s/%s is complete: verifying it\n", name, dir, part);
    }
    uint64_t have = d.offset + d.got;
    if (d.has_total && have != d.total) {
        fprintf(stderr, "error: %s ended at %llu of %llu bytes; %s/%s is kept: run again to resume\n", name,
                (unsigned long long)have, (unsigned long long)d.total, dir, part);
        rc = PULL_ERR;
        goto out;
    }
    if (fsync(d.fd)) {
        rc = errno == ENOSPC || errno == EDQUOT ? PULL_NOSPACE : PULL_ERR;
        fprintf(stderr, "error: cannot sync %s/%s: %s\n", dir, part, strerror(errno));
        goto out;
    }

    /* verify, then install */
    unsigned char dg[32];
    unsigned dlen = 0;
    char hex[65];
    if (EVP_DigestFinal_ex(d.md, dg, &dlen) != 1) goto io_err;
    for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", dg[i]);
    if (strcmp(hex, d.sha)) {
        unlinkat(dirfd, part, 0);
        fsync(dirfd);
        fprintf(stderr,
                "error: SHA-256 mismatch for %s: expected %s (%s), got %s; the download is deleted and nothing "
                "is installed\n",
                name, d.sha, d.sha_src, hex);
        rc = PULL_CHECKSUM;
        goto out;
    }
    if (renameat(dirfd, part, dirfd, name) || fsync(dirfd)) {
        fprintf(stderr, "error: cannot install %s/%s: %s\n", dir, name, strerror(errno));
        rc = PULL_ERR;
        goto out;
    }
    if (!r->quiet)
        fprintf(stderr, "installed %s/%s (%s, sha256 %s verified)\n", dir, name, fmt_size(b, sizeof b, have), hex);
    print_installed(dir, name);
    rc = PULL_OK;
    goto out;
io_err:
    fprintf(stderr, "error: %s/%s: %s\n", dir, part, strerror(errno));
    rc = PULL_ERR;
out:
    /* a failure before the first byte leaves no empty .part behind */
    if (rc && locked && !fstat(d.fd, &st) && st.st_size == 0) unlinkat(dirfd, part, 0);
    EVP_MD_CTX_free(d.md);
    close(d.fd);
    return rc;
}

static void pull_usage(FILE *f) {
    fprintf(f,
            "usage: inferkv-cli pull OWNER/REPO[:QUANT|:FILE.gguf] [--dir DIR] [--sha256 HEX]\n"
            "                        [--endpoint URL] [--token TOKEN] [--revision REV] [--quiet]\n"
            "Downloads one GGUF file from a Hugging Face-style hub into DIR (default $INFERKV_MODELS_DIR, else .),\n"
            "resuming a cut download and installing it only when its SHA-256 matches.  HF_ENDPOINT and HF_TOKEN\n"
            "are honoured.  Exit status: 0 installed or already present, 1 error, 2 usage, 3 not found or not\n"
            "accessible or no single file matches, 4 SHA-256 mismatch, 5 not enough disk space.  See docs/cli.md.\n");
}

int cli_pull(int argc, char **argv) {
    const char *spec = NULL, *dir = getenv("INFERKV_MODELS_DIR"), *sha_arg = NULL, *endpoint = getenv("HF_ENDPOINT"),
               *token = getenv("HF_TOKEN"), *revision = "main";
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            pull_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dir")) {
            if (!(dir = cli_value(argc, argv, &i))) return PULL_USAGE;
        } else if (!strcmp(a, "--sha256")) {
            if (!(sha_arg = cli_value(argc, argv, &i))) return PULL_USAGE;
        } else if (!strcmp(a, "--endpoint")) {
            if (!(endpoint = cli_value(argc, argv, &i))) return PULL_USAGE;
        } else if (!strcmp(a, "--token")) {
            if (!(token = cli_value(argc, argv, &i))) return PULL_USAGE;
        } else if (!strcmp(a, "--revision")) {
            if (!(revision = cli_value(argc, argv, &i))) return PULL_USAGE;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
        } else if (a[0] == '-' || spec) {
            fprintf(stderr, "error: %s '%s'\n", a[0] == '-' ? "unknown option" : "unexpected argument", a);
            pull_usage(stderr);
            return PULL_USAGE;
        } else {
            spec = a;
        }
    }
    if (!spec) {
        pull_usage(stderr);
        return PULL_USAGE;
    }
    if (!dir || !*dir) dir = ".";
    if (!endpoint || !*endpoint) endpoint = "https://huggingface.co";
    if (token && !*token) token = NULL;

    hub_repo r = {.token = token, .quiet = quiet};
    char sel[HUB_NAME_MAX + 1], sha[65] = "";
    if (hub_parse_spec(spec, &r, sel, sizeof sel)) return PULL_USAGE;
    size_t n = strlen(endpoint);
    while (n && endpoint[n - 1] == '/') n--;
    int ok = (!strncasecmp(endpoint, "http://", 7) || !strncasecmp(endpoint, "https://", 8)) && n < sizeof r.endpoint;
    for (size_t i = 0; ok && i < n; i++) ok = endpoint[i] > 0x20 && endpoint[i] < 0x7f;
    if (!ok) {
        fprintf(stderr, "error: the endpoint (--endpoint / HF_ENDPOINT) must be an http:// or https:// URL, got '%s'\n",
                endpoint);
        return PULL_USAGE;
    }
    memcpy(r.endpoint, endpoint, n);
    r.endpoint[n] = '\0';
    n = strlen(revision);
    ok = n > 0 && n < sizeof r.revision && !strstr(revision, "..");
    for (size_t i = 0; ok && i < n; i++) ok = isalnum((unsigned char)revision[i]) || strchr("-_./", revision[i]);
    if (!ok) {
        fprintf(stderr, "error: --revision must be a branch, tag or commit name (letters, digits, '-', '_', '.', '/'), "
                        "got '%s'\n", revision);
        return PULL_USAGE;
    }
    memcpy(r.revision, revision, n + 1);
    if (token) {
        n = strlen(token);
        ok = n <= 1024;
        for (size_t i = 0; ok && i < n; i++) ok = token[i] > 0x20 && token[i] < 0x7f;
        if (!ok) {
            fprintf(stderr, "error: the token (--token / HF_TOKEN) must be at most 1024 printable characters without "
                            "spaces\n");
            return PULL_USAGE;
        }
    }
    if (sha_arg) {
        if (!is_sha_hex(sha_arg, strlen(sha_arg))) {
            fprintf(stderr, "error: --sha256 expects 64 hex digits, got '%s'\n", sha_arg);
            return PULL_USAGE;
        }
        for (int i = 0; i < 64; i++) sha[i] = (char)tolower((unsigned char)sha_arg[i]);
    }
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        fprintf(stderr, "error: --dir %s: %s\n", dir, strerror(errno));
        return PULL_ERR;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc;
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "error: cannot initialise libcurl\n");
        rc = PULL_ERR;
    } else {
        rc = pull(&r, sel, dir, dirfd, sha_arg ? sha : NULL);
        curl_global_cleanup();
    }
    close(dirfd);
    return rc;
}
