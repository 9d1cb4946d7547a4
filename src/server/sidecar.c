/* sidecar.c - writes, checks and repairs the sidecar of a persistence file:
 * BLAKE2b-256 per block (libb2) to find damage, Reed-Solomon parity per
 * stripe (ISA-L, a Cauchy matrix over GF(2^8)) to rebuild it.  Why and how
 * to use it: sidecar.h; the bytes: docs/sidecar-format.md.
 *
 * Every byte of a sidecar read back is treated as hostile: the header is
 * checked field by field, the file's size must be exactly what the header
 * implies (so no count read from it sizes an allocation beyond the file's
 * real size), and the manifest (header and hash tables) must match its own
 * hash before anything in it is used.  The parity blocks after it are
 * covered by their own hashes instead, so that a damaged parity block
 * costs the protection of its stripe only: it is used only after its hash
 * matched, and a rebuilt data block only after it matched its hash. */
#include "sidecar.h"

#include "core.h"

#include <blake2.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/erasure_code.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define HASH_LEN 32
#define HEADER_LEN 64
#define MANIFEST_HASH_LEN HASH_LEN
#define FORMAT_VERSION 1
#define HASH_ALG_BLAKE2B_256 1
#define CODE_RS_CAUCHY_GF256 1
#define IO_CHUNK (64u * 1024)
#define PATH_CAP 4200

static const unsigned char MAGIC[8] = {'I', 'K', 'V', 'S', 'I', 'D', 'E', 'C'};

/* ------------------------------------------------------------- helpers */

static void seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void hash(unsigned char out[HASH_LEN], const void *p, size_t n) {
    blake2b_state s;
    blake2b_init(&s, HASH_LEN);
    blake2b_update(&s, (const uint8_t *)p, n);
    blake2b_final(&s, out, HASH_LEN);
}

static void put16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int valid_params(size_t bs, int k, int p, char *err, size_t errlen) {
    if (bs < SIDECAR_MIN_BLOCK || bs > SIDECAR_MAX_BLOCK || (bs & (bs - 1))) {
        seterr(err, errlen, "sidecar block size %zu is not a power of two between %u and %u", bs, SIDECAR_MIN_BLOCK,
               SIDECAR_MAX_BLOCK);
        return 0;
    }
    if (k < 1 || k > SIDECAR_MAX_K) {
        seterr(err, errlen, "sidecar stripe of %d data blocks is not between 1 and %d", k, SIDECAR_MAX_K);
        return 0;
    }
    if (p < 0 || p > SIDECAR_MAX_P) {
        seterr(err, errlen, "sidecar parity of %d blocks is not between 0 and %d", p, SIDECAR_MAX_P);
        return 0;
    }
    return 1;
}

/* The generator matrix: k identity rows, then p Cauchy rows (any k of its
 * k + p rows are invertible, so any p erasures are recoverable). */
static unsigned char *gen_matrix(int k, int p) {
    unsigned char *a = km_malloc((size_t)(k + p) * (size_t)k);
    if (a) gf_gen_cauchy1_matrix(a, k + p, k);
    return a;
}

/* Up to n bytes at off; *got < n only at the end of the file.  0 or -1. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off, size_t *got) {
    unsigned char *b = buf;
    *got = 0;
    while (*got < n) {
        ssize_t r = pread(fd, b + *got, n - *got, (off_t)(off + *got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        *got += (size_t)r;
    }
    return 0;
}

/* The directory part of path ("." when none). */
static void dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == path)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

static void fsync_dir_of(const char *path) {
    char dir[PATH_CAP];
    dir_of(path, dir, sizeof dir);
    int dfd = open(dir, O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

/* sidecar_path, or data_path + SIDECAR_SUFFIX in buf; NULL when too long. */
static const char *sidecar_name(const char *data_path, const char *sidecar_path, char *buf, size_t cap) {
    if (sidecar_path) return sidecar_path;
    int n = snprintf(buf, cap, "%s%s", data_path, SIDECAR_SUFFIX);
    return n < 0 || (size_t)n >= cap ? NULL : buf;
}

/* A new file beside path, named path + tag + a unique tail, opened for
 * writing; its name in tmp.  fd, or -1 with errno. */
static int open_temp(const char *path, const char *tag, char *tmp, size_t cap) {
    static unsigned counter;
    for (int tries = 0; tries < 100; tries++) {
        int n = snprintf(tmp, cap, "%s.%s-%d-%u", path, tag, (int)getpid(), counter++);
        if (n < 0 || (size_t)n >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

/* fsync, close, rename tmp over path, fsync the directory.  On failure tmp
 * is removed.  0 or -1 with err. */
static int install(int fd, const char *tmp, const char *path, const char *what, char *err, size_t errlen) {
    int rc = 0;
    if (fsync(fd) != 0) {
        seterr(err, errlen, "%s: fsync of %s: %s", what, tmp, strerror(errno));
        rc = -1;
    }
    if (close(fd) != 0 && rc == 0) {
        seterr(err, errlen, "%s: close of %s: %s", what, tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        seterr(err, errlen, "%s: renaming %s to %s: %s", what, tmp, path, strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        unlink(tmp);
        return -1;
    }
    fsync_dir_of(path);
    return 0;
}

/* -------------------------------------------------------------- writer */

struct sidecar_writer {
    uint32_t bs;
    int k, p;
    unsigned char *stripe;  /* k * bs: the stripe being filled */
    size_t fill;            /* bytes in it */
    uint64_t total;         /* bytes observed */
    unsigned char *gtbl;    /* encoding tables: 32 * k * p */
    unsigned char *hashes;  /* one per data block so far */
    size_t hashes_len, hashes_cap;
    unsigned char *phashes; /* one per parity block so far */
    size_t phashes_len, phashes_cap;
    unsigned char **parity; /* per stripe: p * bs */
    size_t nparity, parity_cap;
    int failed;             /* errno of the first failure, sticky */
    int finished;
};

sidecar_writer *sidecar_writer_new(size_t block_size, int k, int p, char *err, size_t errlen) {
    if (!valid_params(block_size, k, p, err, errlen)) return NULL;
    sidecar_writer *w = km_calloc(sizeof *w);
    if (!w) goto oom;
    w->bs = (uint32_t)block_size;
    w->k = k;
    w->p = p;
    w->stripe = km_malloc((size_t)k * block_size);
    if (!w->stripe) goto oom;
    if (p > 0) {
        unsigned char *a = gen_matrix(k, p);
        w->gtbl = km_malloc((size_t)32 * (size_t)k * (size_t)p);
        if (!a || !w->gtbl) {
            km_free(a);
            goto oom;
        }
        ec_init_tables(k, p, a + (size_t)k * (size_t)k, w->gtbl);
        km_free(a);
    }
    return w;
oom:
    sidecar_writer_free(w);
    seterr(err, errlen, "out of memory for the sidecar writer");
    return NULL;
}

void sidecar_writer_free(sidecar_writer *w) {
    if (!w) return;
    km_free(w->stripe);
    km_free(w->gtbl);
    km_free(w->hashes);
    km_free(w->phashes);
    for (size_t i = 0; i < w->nparity; i++) km_free(w->parity[i]);
    km_free(w->parity);
    km_free(w);
}

uint64_t sidecar_writer_size(const sidecar_writer *w) { return w->total; }

/* Makes room for `add` more bytes in a growing buffer; 0 or -1. */
static int grow(unsigned char **buf, size_t *cap, size_t len, size_t add) {
    if (add <= *cap - len) return 0;
    size_t need = len + add, ncap = *cap ? *cap : 1024;
    if (need < len) return -1;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return -1;
        ncap *= 2;
    }
    unsigned char *n = km_realloc(*buf, ncap);
    if (!n) return -1;
    *buf = n;
    *cap = ncap;
    return 0;
}

/* The stripe in w->stripe is complete (or the last one): hash its blocks,
 * encode and hash its parity, keep them. */
static void stripe_done(sidecar_writer *w) {
    size_t bs = w->bs, nblk = (w->fill + bs - 1) / bs;
    if (grow(&w->hashes, &w->hashes_cap, w->hashes_len, nblk * HASH_LEN) != 0) goto oom;
    for (size_t i = 0; i < nblk; i++) {
        size_t len = w->fill - i * bs < bs ? w->fill - i * bs : bs;
        hash(w->hashes + w->hashes_len, w->stripe + i * bs, len);
        w->hashes_len += HASH_LEN;
    }
    if (w->p > 0) {
        /* the blocks of a short last stripe, and the tail of a short last
         * block, are zeros */
        memset(w->stripe + w->fill, 0, (size_t)w->k * bs - w->fill);
        if (w->nparity == w->parity_cap) {
            size_t ncap = w->parity_cap ? w->parity_cap * 2 : 16;
            unsigned char **n = km_realloc(w->parity, ncap * sizeof *n);
            if (!n) goto oom;
            w->parity = n;
            w->parity_cap = ncap;
        }
        unsigned char *par = km_malloc((size_t)w->p * bs);
        if (!par) goto oom;
        if (grow(&w->phashes, &w->phashes_cap, w->phashes_len, (size_t)w->p * HASH_LEN) != 0) {
            km_free(par);
            goto oom;
        }
        unsigned char *src[SIDECAR_MAX_K], *dst[SIDECAR_MAX_P];
        for (int i = 0; i < w->k; i++) src[i] = w->stripe + (size_t)i * bs;
        for (int j = 0; j < w->p; j++) dst[j] = par + (size_t)j * bs;
        ec_encode_data((int)bs, w->k, w->p, w->gtbl, src, dst);
        for (int j = 0; j < w->p; j++) {
            hash(w->phashes + w->phashes_len, dst[j], bs);
            w->phashes_len += HASH_LEN;
        }
        w->parity[w->nparity++] = par;
    }
    w->fill = 0;
    return;
oom:
    w->failed = ENOMEM;
    w->fill = 0;
}

void sidecar_observe(void *ud, const void *p, size_t n) {
    sidecar_writer *w = ud;
    const unsigned char *b = p;
    w->total += n;
    if (w->failed || w->finished) return;
    size_t cap = (size_t)w->k * w->bs;
    while (n) {
        size_t take = cap - w->fill < n ? cap - w->fill : n;
        memcpy(w->stripe + w->fill, b, take);
        w->fill += take;
        b += take;
        n -= take;
        if (w->fill == cap) {
            stripe_done(w);
            if (w->failed) return;
        }
    }
}

/* Writes p[0..n) to fd and into the running hash of the manifest. */
static int emit(int fd, blake2b_state *s, const void *p, size_t n) {
    blake2b_update(s, (const uint8_t *)p, n);
    return write_full(fd, p, n);
}

int sidecar_writer_finish(sidecar_writer *w, const char *sidecar_path, char *err, size_t errlen) {
    if (w->finished) {
        seterr(err, errlen, "sidecar writer already finished");
        return -1;
    }
    w->finished = 1;
    if (!w->failed && w->fill > 0) stripe_done(w);
    if (w->failed) {
        seterr(err, errlen, "sidecar for %s: %s", sidecar_path, strerror(w->failed));
        return -1;
    }
    uint64_t nblocks = w->total / w->bs + (w->total % w->bs != 0);
    uint64_t nstripes = nblocks / (uint64_t)w->k + (nblocks % (uint64_t)w->k != 0);
    if (w->hashes_len != nblocks * HASH_LEN || (w->p > 0 && w->nparity != nstripes)) {
        seterr(err, errlen, "sidecar for %s: internal error (block count)", sidecar_path);
        return -1;
    }
    unsigned char hdr[HEADER_LEN] = {0};
    memcpy(hdr, MAGIC, sizeof MAGIC);
    put32(hdr + 8, FORMAT_VERSION);
    put32(hdr + 12, HEADER_LEN);
    put64(hdr + 16, w->total);
    put64(hdr + 24, nblocks);
    put64(hdr + 32, nstripes);
    put32(hdr + 40, w->bs);
    put16(hdr + 44, (uint16_t)w->k);
    put16(hdr + 46, (uint16_t)w->p);
    hdr[48] = HASH_ALG_BLAKE2B_256;
    hdr[49] = HASH_LEN;
    hdr[50] = CODE_RS_CAUCHY_GF256;
    hdr[51] = 0; /* flags */

    char tmp[PATH_CAP];
    int fd = open_temp(sidecar_path, "tmp", tmp, sizeof tmp);
    if (fd < 0) {
        seterr(err, errlen, "sidecar: cannot create a temp file beside %s: %s", sidecar_path, strerror(errno));
        return -1;
    }
    /* the manifest (header, block hashes, parity hashes) and its hash,
     * then the parity blocks */
    blake2b_state s;
    blake2b_init(&s, HASH_LEN);
    int rc = emit(fd, &s, hdr, sizeof hdr);
    if (rc == 0 && w->hashes_len) rc = emit(fd, &s, w->hashes, w->hashes_len);
    if (rc == 0 && w->phashes_len) rc = emit(fd, &s, w->phashes, w->phashes_len);
    unsigned char mh[MANIFEST_HASH_LEN];
    blake2b_final(&s, mh, HASH_LEN);
    if (rc == 0) rc = write_full(fd, mh, sizeof mh);
    for (size_t i = 0; rc == 0 && i < w->nparity; i++) rc = write_full(fd, w->parity[i], (size_t)w->p * w->bs);
    if (rc != 0) {
        seterr(err, errlen, "sidecar: writing %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    return install(fd, tmp, sidecar_path, "sidecar", err, errlen);
}

int sidecar_write_for_file(const char *data_path, const char *sidecar_path, size_t block_size, int k, int p,
                           char *err, size_t errlen) {
    char name[PATH_CAP];
    const char *sc = sidecar_name(data_path, sidecar_path, name, sizeof name);
    if (!sc) {
        seterr(err, errlen, "sidecar: path too long: %s", data_path);
        return -1;
    }
    sidecar_writer *w = sidecar_writer_new(block_size, k, p, err, errlen);
    if (!w) return -1;
    unsigned char *buf = km_malloc(IO_CHUNK);
    int fd = open(data_path, O_RDONLY | O_CLOEXEC);
    int rc = -1;
    if (!buf) {
        seterr(err, errlen, "out of memory for the sidecar writer");
    } else if (fd < 0) {
        seterr(err, errlen, "sidecar: cannot open %s: %s", data_path, strerror(errno));
    } else {
        for (;;) {
            ssize_t r = read(fd, buf, IO_CHUNK);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                seterr(err, errlen, "sidecar: reading %s: %s", data_path, strerror(errno));
                break;
            }
            if (r == 0) {
                rc = sidecar_writer_finish(w, sc, err, errlen);
                break;
            }
            sidecar_observe(w, buf, (size_t)r);
        }
    }
    if (fd >= 0) close(fd);
    km_free(buf);
    sidecar_writer_free(w);
    return rc;
}

int sidecar_remove(const char *data_path, const char *sidecar_path, char *err, size_t errlen) {
    char name[PATH_CAP];
    const char *sc = sidecar_name(data_path, sidecar_path, name, sizeof name);
    if (!sc) {
        seterr(err, errlen, "sidecar: path too long: %s", data_path);
        return -1;
    }
    if (unlink(sc) != 0) {
        if (errno == ENOENT) return 0;
        seterr(err, errlen, "sidecar: removing %s: %s", sc, strerror(errno));
        return -1;
    }
    fsync_dir_of(sc);
    return 0;
}

/* ------------------------------------------------------------- reading */

/* A file (fd >= 0) or bytes in memory (fd < 0), of known size. */
typedef struct src {
    int fd;
    const unsigned char *mem;
    uint64_t size;
} src;

/* Up to n bytes at off; *got < n past the end.  0, or -1 (errno). */
static int src_read(const src *s, uint64_t off, void *buf, size_t n, size_t *got) {
    if (s->fd >= 0) return pread_all(s->fd, buf, n, off, got);
    *got = 0;
    if (off >= s->size) return 0;
    *got = s->size - off < n ? (size_t)(s->size - off) : n;
    memcpy(buf, s->mem + off, *got);
    return 0;
}

/* Where repaired bytes go, in order: 0 or -1 (errno). */
typedef int (*out_fn)(void *ud, const void *p, size_t n);

typedef struct manifest {
    uint64_t data_size, nblocks, nstripes;
    uint32_t bs;
    int k, p;
    unsigned char *hashes;  /* nblocks data block hashes, then nstripes * p parity hashes */
    unsigned char *phashes; /* into hashes */
    uint64_t parity_off;    /* where the parity blocks start in the sidecar */
} manifest;

enum { LOAD_OK = 0, LOAD_BAD = 1, LOAD_ERROR = 2 };

/* Reads and checks the sidecar's header, its size and the manifest's hash,
 * and keeps the hash tables.  LOAD_OK, or LOAD_BAD / LOAD_ERROR with the reason. */
static int manifest_load(const src *sc, manifest *m, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    unsigned char hdr[HEADER_LEN];
    size_t got;
    if (sc->size < HEADER_LEN + MANIFEST_HASH_LEN) {
        seterr(err, errlen, "%llu bytes, shorter than the smallest sidecar", (unsigned long long)sc->size);
        return LOAD_BAD;
    }
    if (src_read(sc, 0, hdr, sizeof hdr, &got) != 0) {
        seterr(err, errlen, "read error: %s", strerror(errno));
        return LOAD_ERROR;
    }
    if (got < sizeof hdr) {
        seterr(err, errlen, "the header is cut short");
        return LOAD_BAD;
    }
    if (memcmp(hdr, MAGIC, sizeof MAGIC) != 0) {
        seterr(err, errlen, "not a sidecar file (bad magic)");
        return LOAD_BAD;
    }
    uint32_t version = get32(hdr + 8), hlen = get32(hdr + 12);
    if (version != FORMAT_VERSION) {
        seterr(err, errlen, "unsupported format version %u", version);
        return LOAD_BAD;
    }
    if (hlen != HEADER_LEN) {
        seterr(err, errlen, "header length %u, expected %u", hlen, HEADER_LEN);
        return LOAD_BAD;
    }
    m->data_size = get64(hdr + 16);
    m->nblocks = get64(hdr + 24);
    m->nstripes = get64(hdr + 32);
    m->bs = get32(hdr + 40);
    unsigned k = get16(hdr + 44), p = get16(hdr + 46);
    if (hdr[48] != HASH_ALG_BLAKE2B_256 || hdr[49] != HASH_LEN) {
        seterr(err, errlen, "unknown hash algorithm %u / length %u", hdr[48], hdr[49]);
        return LOAD_BAD;
    }
    if (hdr[50] != CODE_RS_CAUCHY_GF256) {
        seterr(err, errlen, "unknown parity code %u", hdr[50]);
        return LOAD_BAD;
    }
    if (hdr[51] != 0) {
        seterr(err, errlen, "unknown flags 0x%02x", hdr[51]);
        return LOAD_BAD;
    }
    for (int i = 52; i < HEADER_LEN; i++) {
        if (hdr[i]) {
            seterr(err, errlen, "reserved header byte %d is not zero", i);
            return LOAD_BAD;
        }
    }
    if (k > SIDECAR_MAX_K || p > SIDECAR_MAX_P) {
        seterr(err, errlen, "stripe of %u data and %u parity blocks is out of range", k, p);
        return LOAD_BAD;
    }
    char why[128];
    if (!valid_params(m->bs, (int)k, (int)p, why, sizeof why)) {
        seterr(err, errlen, "%s", why);
        return LOAD_BAD;
    }
    m->k = (int)k;
    m->p = (int)p;
    uint64_t nb = m->data_size / m->bs + (m->data_size % m->bs != 0);
    uint64_t ns = nb / k + (nb % k != 0);
    if (m->nblocks != nb || m->nstripes != ns) {
        seterr(err, errlen, "%llu blocks in %llu stripes do not fit %llu bytes", (unsigned long long)m->nblocks,
               (unsigned long long)m->nstripes, (unsigned long long)m->data_size);
        return LOAD_BAD;
    }
    /* the size everything above implies, checked for overflow: the hashes
     * and parity are then known to exist in the file */
    uint64_t nparity, dh, ph, pb, total;
    if (__builtin_mul_overflow(ns, (uint64_t)p, &nparity) || __builtin_mul_overflow(nb, (uint64_t)HASH_LEN, &dh) ||
        __builtin_mul_overflow(nparity, (uint64_t)HASH_LEN, &ph) ||
        __builtin_mul_overflow(nparity, (uint64_t)m->bs, &pb) ||
        __builtin_add_overflow((uint64_t)HEADER_LEN + MANIFEST_HASH_LEN, dh, &total) ||
        __builtin_add_overflow(total, ph, &total) || __builtin_add_overflow(total, pb, &total) ||
        total != sc->size) {
        seterr(err, errlen, "%llu bytes, but its header describes a sidecar of a different size",
               (unsigned long long)sc->size);
        return LOAD_BAD;
    }
    if (dh + ph > SIZE_MAX) {
        seterr(err, errlen, "too large for this machine");
        return LOAD_ERROR;
    }
    m->hashes = km_malloc((size_t)(dh + ph) + MANIFEST_HASH_LEN);
    if (!m->hashes) {
        seterr(err, errlen, "out of memory for the sidecar's hashes");
        return LOAD_ERROR;
    }
    m->phashes = m->hashes + dh;
    m->parity_off = HEADER_LEN + dh + ph + MANIFEST_HASH_LEN;
    /* the manifest's own hash, over the header and the hash tables: what
     * is then used is the very bytes that were hashed */
    size_t want = (size_t)(dh + ph) + MANIFEST_HASH_LEN;
    if (src_read(sc, HEADER_LEN, m->hashes, want, &got) != 0) {
        seterr(err, errlen, "read error: %s", strerror(errno));
        km_free(m->hashes);
        m->hashes = NULL;
        return LOAD_ERROR;
    }
    unsigned char have[HASH_LEN];
    blake2b_state s;
    blake2b_init(&s, HASH_LEN);
    blake2b_update(&s, hdr, HEADER_LEN);
    blake2b_update(&s, m->hashes, (size_t)(dh + ph));
    blake2b_final(&s, have, HASH_LEN);
    if (got < want || memcmp(have, m->hashes + dh + ph, HASH_LEN) != 0) {
        seterr(err, errlen, "%s", got < want ? "the file shrank while being read"
                                             : "the manifest's hash does not match: the sidecar is damaged");
        km_free(m->hashes);
        m->hashes = NULL;
        return LOAD_BAD;
    }
    return LOAD_OK;
}

/* The working state of one check. */
typedef struct checker {
    const manifest *m;
    const src *data, *sc;
    size_t bs;
    int k, p;
    unsigned char *buf;   /* k data blocks, then p parity blocks */
    unsigned char *rec;   /* rebuilt blocks: p * bs */
    unsigned char *enc;   /* (k + p) x k generator matrix */
    unsigned char *sub;   /* k x k: the rows of the surviving blocks */
    unsigned char *inv;   /* k x k: its inverse */
    unsigned char *dec;   /* p x k: the inverse's rows of the lost blocks */
    unsigned char *gtbl;  /* 32 * k * p */
    sidecar_report *rep;
    /* the first stripe beyond repair, for the summary */
    int bad_stripe_data, bad_stripe_parity, bad_stripe_rebuild;
    int rebuild_failed;   /* do_stripe's STRIPE_LOST: 1 when the counts allowed a
                           * rebuild but it did not give the hashed bytes */
    char err[256];        /* I/O errors */
} checker;

static void checker_free(checker *c) {
    km_free(c->buf);
    km_free(c->rec);
    km_free(c->enc);
    km_free(c->sub);
    km_free(c->inv);
    km_free(c->dec);
    km_free(c->gtbl);
}

static int checker_init(checker *c, const manifest *m, const src *data, const src *sc, sidecar_report *rep) {
    memset(c, 0, sizeof *c);
    c->m = m;
    c->data = data;
    c->sc = sc;
    c->bs = m->bs;
    c->k = m->k;
    c->p = m->p;
    c->rep = rep;
    size_t k = (size_t)m->k, p = (size_t)m->p;
    c->buf = km_malloc((k + p) * c->bs);
    c->rec = km_malloc((p ? p : 1) * c->bs);
    c->enc = gen_matrix(m->k, m->p);
    c->sub = km_malloc(k * k);
    c->inv = km_malloc(k * k);
    c->dec = km_malloc((p ? p : 1) * k);
    c->gtbl = km_malloc(32 * k * (p ? p : 1));
    return c->buf && c->rec && c->enc && c->sub && c->inv && c->dec && c->gtbl ? 0 : -1;
}

enum { STRIPE_OK, STRIPE_FIXED, STRIPE_LOST, STRIPE_IOERR };

/* Reads and verifies stripe s into c->buf, rebuilding lost data blocks
 * when parity allows.  bad_data[] gets the stripe-relative indices of the
 * data blocks that did not match. */
static int do_stripe(checker *c, uint64_t s, int *bad_data, int *nbd, int *nbp) {
    const manifest *m = c->m;
    size_t bs = c->bs, got;
    unsigned char h[HASH_LEN];
    int good[SIDECAR_MAX_K + SIDECAR_MAX_P], ngood = 0;
    *nbd = *nbp = 0;
    c->rebuild_failed = 0;
    for (int i = 0; i < c->k; i++) {
        unsigned char *blk = c->buf + (size_t)i * bs;
        uint64_t b = s * (uint64_t)c->k + (uint64_t)i;
        if (b >= m->nblocks) { /* past the end of a short last stripe: zeros */
            memset(blk, 0, bs);
            good[ngood++] = i;
            continue;
        }
        uint64_t off = b * bs;
        size_t len = m->data_size - off < bs ? (size_t)(m->data_size - off) : bs;
        if (src_read(c->data, off, blk, len, &got) != 0) {
            seterr(c->err, sizeof c->err, "reading the data file at %llu: %s", (unsigned long long)off,
                     strerror(errno));
            return STRIPE_IOERR;
        }
        memset(blk + got, 0, bs - got);
        if (got == len) hash(h, blk, len);
        if (got < len || memcmp(h, m->hashes + b * HASH_LEN, HASH_LEN) != 0)
            bad_data[(*nbd)++] = i;
        else
            good[ngood++] = i;
    }
    for (int j = 0; j < c->p; j++) {
        unsigned char *blk = c->buf + (size_t)(c->k + j) * bs;
        uint64_t pi = s * (uint64_t)c->p + (uint64_t)j;
        if (src_read(c->sc, m->parity_off + pi * bs, blk, bs, &got) != 0) {
            seterr(c->err, sizeof c->err, "reading the sidecar: %s", strerror(errno));
            return STRIPE_IOERR;
        }
        if (got == bs) hash(h, blk, bs);
        if (got < bs || memcmp(h, m->phashes + pi * HASH_LEN, HASH_LEN) != 0)
            (*nbp)++;
        else
            good[ngood++] = c->k + j;
    }
    if (*nbd == 0) return STRIPE_OK;
    if (ngood < c->k) return STRIPE_LOST;
    c->rebuild_failed = 1;
    /* rebuild: the first k surviving blocks (data before parity) give k
     * equations; invert their rows of the generator, take the rows of the
     * lost blocks */
    size_t k = (size_t)c->k;
    for (size_t r = 0; r < k; r++) memcpy(c->sub + r * k, c->enc + (size_t)good[r] * k, k);
    if (gf_invert_matrix(c->sub, c->inv, c->k) != 0) return STRIPE_LOST;
    for (int e = 0; e < *nbd; e++) memcpy(c->dec + (size_t)e * k, c->inv + (size_t)bad_data[e] * k, k);
    unsigned char *srcs[SIDECAR_MAX_K], *outs[SIDECAR_MAX_P];
    for (size_t r = 0; r < k; r++) srcs[r] = c->buf + (size_t)good[r] * bs;
    for (int e = 0; e < *nbd; e++) outs[e] = c->rec + (size_t)e * bs;
    ec_init_tables(c->k, *nbd, c->dec, c->gtbl);
    ec_encode_data((int)bs, c->k, *nbd, c->gtbl, srcs, outs);
    for (int e = 0; e < *nbd; e++) {
        uint64_t b = s * k + (uint64_t)bad_data[e];
        size_t len = m->data_size - b * bs < bs ? (size_t)(m->data_size - b * bs) : bs;
        hash(h, outs[e], len);
        if (memcmp(h, m->hashes + b * HASH_LEN, HASH_LEN) != 0) return STRIPE_LOST;
        memcpy(c->buf + (size_t)bad_data[e] * bs, outs[e], bs);
    }
    return STRIPE_FIXED;
}

/* One pass over every stripe.  Without out: verify and fill the report.
 * With out: write the data, rebuilt, to out; any stripe beyond repair now
 * (the file changed since the first pass) stops it.  0, or -1 with
 * c->err. */
static int scan(checker *c, out_fn out, void *out_ud) {
    const manifest *m = c->m;
    sidecar_report *rep = c->rep;
    int bad[SIDECAR_MAX_K];
    for (uint64_t s = 0; s < m->nstripes; s++) {
        int nbd, nbp;
        int r = do_stripe(c, s, bad, &nbd, &nbp);
        if (r == STRIPE_IOERR) return -1;
        if (!out) {
            rep->bad_parity += (uint64_t)nbp;
            rep->bad_blocks += (uint64_t)nbd;
            for (int e = 0; e < nbd && rep->nlisted < SIDECAR_REPORT_MAX_BAD; e++)
                rep->bad[rep->nlisted++] = s * (uint64_t)c->k + (uint64_t)bad[e];
            if (r == STRIPE_LOST) {
                if (rep->bad_stripes++ == 0) {
                    rep->first_bad_stripe = s;
                    c->bad_stripe_data = nbd;
                    c->bad_stripe_parity = nbp;
                    c->bad_stripe_rebuild = c->rebuild_failed;
                }
            }
            continue;
        }
        if (r == STRIPE_LOST) {
            seterr(c->err, sizeof c->err, "the data file changed during the repair (stripe %llu)",
                     (unsigned long long)s);
            return -1;
        }
        uint64_t off = s * (uint64_t)c->k * c->bs;
        uint64_t left = m->data_size - off;
        size_t len = left < (uint64_t)c->k * c->bs ? (size_t)left : (size_t)c->k * c->bs;
        if (out(out_ud, c->buf, len) != 0) {
            seterr(c->err, sizeof c->err, "writing the repaired file: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static const char *size_text(uint32_t bs, char *buf, size_t cap) {
    if (bs >= 1024 * 1024 && bs % (1024 * 1024) == 0)
        snprintf(buf, cap, "%u MiB", bs / (1024 * 1024));
    else
        snprintf(buf, cap, "%u KiB", bs / 1024);
    return buf;
}

/* The one-line summary of a finished check. */
static void summarize(sidecar_report *rep, const checker *c) {
    char *o = rep->summary;
    size_t cap = sizeof rep->summary, n = 0;
#define ADD(...)                                                                                                   \
    do {                                                                                                           \
        if (n < cap) {                                                                                             \
            int w_ = snprintf(o + n, cap - n, __VA_ARGS__);                                                        \
            if (w_ > 0) n += (size_t)w_;                                                                           \
        }                                                                                                          \
    } while (0)
    char bsz[32];
    size_text(rep->block_size, bsz, sizeof bsz);
    if (rep->truncated)
        ADD("file is %llu bytes, %llu short of the %llu its sidecar describes; ", (unsigned long long)rep->file_size,
            (unsigned long long)(rep->data_size - rep->file_size), (unsigned long long)rep->data_size);
    if (rep->extended)
        ADD("file is %llu bytes, %llu more than the %llu its sidecar describes; ",
            (unsigned long long)rep->file_size, (unsigned long long)(rep->file_size - rep->data_size),
            (unsigned long long)rep->data_size);
    if (rep->bad_blocks == 0) {
        if (rep->nblocks == 0)
            ADD("%s matches its sidecar", rep->extended ? "its empty start" : "the empty file");
        else if (rep->nblocks == 1)
            ADD("%s only block (%s) matches its hash", rep->extended ? "its" : "the", bsz);
        else
            ADD("%s %llu blocks (%s each) match their hashes", rep->extended ? "its" : "all",
                (unsigned long long)rep->nblocks, bsz);
    } else {
        const int shown = 8;
        ADD("block%s ", rep->bad_blocks == 1 ? "" : "s");
        for (int i = 0; i < rep->nlisted && i < shown; i++)
            ADD("%s%llu", i ? ", " : "", (unsigned long long)rep->bad[i]);
        if (rep->bad_blocks > (uint64_t)shown)
            ADD(" and %llu more", (unsigned long long)(rep->bad_blocks - (uint64_t)shown));
        ADD(" of %llu (%s each) did not match %s", (unsigned long long)rep->nblocks, bsz,
            rep->bad_blocks == 1 ? "its hash" : "their hashes");
    }
    switch (rep->status) {
    case SIDECAR_REPAIRABLE: ADD("; repairable from parity"); break;
    case SIDECAR_REPAIRED: ADD("; repaired from parity"); break;
    case SIDECAR_UNREPAIRABLE:
        if (rep->bad_stripes && c->bad_stripe_rebuild) {
            ADD("; stripe %llu: its parity did not rebuild the blocks' hashed bytes",
                (unsigned long long)rep->first_bad_stripe);
            if (rep->bad_stripes > 1) ADD(" (%llu stripes beyond repair in all)", (unsigned long long)rep->bad_stripes);
            ADD(": unrepairable");
        } else if (rep->bad_stripes) {
            ADD("; stripe %llu has %d damaged data", (unsigned long long)rep->first_bad_stripe, c->bad_stripe_data);
            if (c->bad_stripe_parity) ADD(" and %d damaged parity", c->bad_stripe_parity);
            ADD(" blocks, parity rebuilds at most %d", rep->p);
            if (rep->bad_stripes > 1) ADD(" (%llu stripes beyond repair in all)", (unsigned long long)rep->bad_stripes);
            ADD(": unrepairable");
        } else {
            ADD("; not repaired: the sidecar cannot say what the extra bytes should be");
        }
        break;
    default: break;
    }
    if (rep->bad_parity)
        ADD("; %llu parity block%s in the sidecar did not match: rewrite it", (unsigned long long)rep->bad_parity,
            rep->bad_parity == 1 ? "" : "s");
#undef ADD
}

/* The whole check over two sources.  With out set and the damage within
 * parity, the repaired data is written to out. */
static sidecar_status check_sources(const src *data, const src *sc, int repair, out_fn out, void *out_ud,
                                    sidecar_report *rep, char *err, size_t errlen) {
    manifest m;
    char why[200];
    int lr = manifest_load(sc, &m, why, sizeof why);
    if (lr != LOAD_OK) {
        seterr(err, errlen, "%s", why);
        seterr(rep->summary, sizeof rep->summary, "sidecar %s: %s", lr == LOAD_BAD ? "ignored" : "error", why);
        return rep->status = lr == LOAD_BAD ? SIDECAR_BAD_SIDECAR : SIDECAR_ERROR;
    }
    rep->data_size = m.data_size;
    rep->file_size = data->size;
    rep->nblocks = m.nblocks;
    rep->block_size = m.bs;
    rep->k = m.k;
    rep->p = m.p;
    rep->truncated = data->size < m.data_size;
    rep->extended = data->size > m.data_size;
    checker c;
    sidecar_status st;
    if (checker_init(&c, &m, data, sc, rep) != 0) {
        seterr(err, errlen, "out of memory for the sidecar check");
        seterr(rep->summary, sizeof rep->summary, "sidecar check: out of memory");
        st = SIDECAR_ERROR;
        goto done;
    }
    if (scan(&c, NULL, NULL) != 0) {
        seterr(err, errlen, "%s", c.err);
        seterr(rep->summary, sizeof rep->summary, "sidecar check: %s", c.err);
        st = SIDECAR_ERROR;
        goto done;
    }
    if (rep->bad_stripes || rep->extended)
        st = SIDECAR_UNREPAIRABLE;
    else if (rep->bad_blocks == 0)
        st = SIDECAR_OK;
    else if (!repair || !out)
        st = SIDECAR_REPAIRABLE;
    else if (scan(&c, out, out_ud) != 0) {
        seterr(err, errlen, "%s", c.err);
        seterr(rep->summary, sizeof rep->summary, "sidecar repair: %s", c.err);
        st = SIDECAR_ERROR;
        goto done;
    } else {
        st = SIDECAR_REPAIRED;
    }
    rep->status = st;
    summarize(rep, &c);
done:
    checker_free(&c);
    km_free(m.hashes);
    return rep->status = st;
}

/* The repaired file: a temp file beside the data file, created on the
 * first write (so that a check with nothing to repair writes nothing). */
typedef struct fd_out {
    const char *path;
    char tmp[PATH_CAP];
    int fd;
} fd_out;

static int fd_out_write(void *ud, const void *p, size_t n) {
    fd_out *o = ud;
    if (o->fd < 0 && (o->fd = open_temp(o->path, "repair", o->tmp, sizeof o->tmp)) < 0) return -1;
    return write_full(o->fd, p, n);
}

sidecar_status sidecar_check(const char *data_path, const char *sidecar_path, int repair, sidecar_report *rep,
                             char *err, size_t errlen) {
    sidecar_report local;
    if (!rep) rep = &local;
    memset(rep, 0, sizeof *rep);
    char why[300] = "";
    char name[PATH_CAP];
    src sc = {.fd = -1}, data = {.fd = -1};
    struct stat st_sc, st_data;
    sidecar_status st;
    const char *scp = sidecar_name(data_path, sidecar_path, name, sizeof name);
    if (!scp) {
        seterr(why, sizeof why, "path too long: %s", data_path);
        goto io_error;
    }
    sc.fd = open(scp, O_RDONLY | O_CLOEXEC);
    if (sc.fd < 0 && errno == ENOENT) {
        seterr(rep->summary, sizeof rep->summary, "no sidecar %s", scp);
        seterr(err, errlen, "%s", "");
        return rep->status = SIDECAR_MISSING;
    }
    if (sc.fd < 0 || fstat(sc.fd, &st_sc) != 0) {
        seterr(why, sizeof why, "sidecar %s: %s", scp, strerror(errno));
        goto io_error;
    }
    if (!S_ISREG(st_sc.st_mode)) {
        seterr(why, sizeof why, "sidecar %s: not a regular file", scp);
        goto io_error;
    }
    sc.size = (uint64_t)st_sc.st_size;
    data.fd = open(data_path, O_RDONLY | O_CLOEXEC);
    if (data.fd < 0 || fstat(data.fd, &st_data) != 0) {
        seterr(why, sizeof why, "data file %s: %s", data_path, strerror(errno));
        goto io_error;
    }
    if (!S_ISREG(st_data.st_mode)) {
        seterr(why, sizeof why, "data file %s: not a regular file", data_path);
        goto io_error;
    }
    data.size = (uint64_t)st_data.st_size;
    fd_out o = {.path = data_path, .fd = -1};
    st = check_sources(&data, &sc, repair, fd_out_write, &o, rep, why, sizeof why);
    if (st == SIDECAR_BAD_SIDECAR) seterr(rep->summary, sizeof rep->summary, "sidecar %s ignored: %s", scp, why);
    if (st == SIDECAR_REPAIRED) {
        if (o.fd < 0) { /* cannot happen: a repair writes every byte */
            seterr(why, sizeof why, "sidecar repair of %s wrote nothing", data_path);
            st = SIDECAR_ERROR;
        } else {
            fchmod(o.fd, st_data.st_mode & 07777);
            int rc = install(o.fd, o.tmp, data_path, "sidecar repair", why, sizeof why);
            o.fd = -1;
            if (rc != 0) st = SIDECAR_ERROR;
        }
        if (st == SIDECAR_ERROR)
            seterr(rep->summary, sizeof rep->summary, "sidecar repair of %s failed: %s", data_path, why);
    }
    if (o.fd >= 0) { /* a repair that stopped half way */
        close(o.fd);
        unlink(o.tmp);
    }
    close(sc.fd);
    close(data.fd);
    seterr(err, errlen, "%s", why);
    return rep->status = st;
io_error:
    seterr(rep->summary, sizeof rep->summary, "sidecar check: %s", why);
    seterr(err, errlen, "%s", why);
    if (sc.fd >= 0) close(sc.fd);
    if (data.fd >= 0) close(data.fd);
    return rep->status = SIDECAR_ERROR;
}

const char *sidecar_status_name(sidecar_status s) {
    switch (s) {
    case SIDECAR_OK: return "ok";
    case SIDECAR_REPAIRABLE: return "repairable";
    case SIDECAR_REPAIRED: return "repaired";
    case SIDECAR_UNREPAIRABLE: return "unrepairable";
    case SIDECAR_MISSING: return "missing";
    case SIDECAR_BAD_SIDECAR: return "bad-sidecar";
    case SIDECAR_ERROR: return "error";
    }
    return "?";
}
