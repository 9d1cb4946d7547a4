/* rdb_io.c - the byte layer of RDB files: a buffered writer and a buffered
 * reader that speak Redis's primitive encodings.
 *
 * Encodings (all public facts of the RDB format):
 *   length    00xxxxxx                      6 bits
 *             01xxxxxx yyyyyyyy             14 bits, big-endian
 *             10000000 + 4 bytes            32 bits, big-endian
 *             10000001 + 8 bytes            64 bits, big-endian
 *             11xxxxxx                      not a length: a string encoding
 *   string    length + bytes, or 11000000 int8 / 11000001 int16 /
 *             11000010 int32 (little-endian) / 11000011 LZF: compressed
 *             length, original length, the compressed bytes
 *   double    8 bytes IEEE little-endian (binary), or the old text form:
 *             a length byte (253 NaN, 254 +inf, 255 -inf) then the digits
 *   time      8 bytes little-endian milliseconds (4-byte seconds, old)
 *
 * The writer keeps errors sticky so that serializers write straight
 * through and check once; the CRC and the observer (a sidecar) see each
 * buffer as it is flushed, so the checksum costs one pass per megabyte and
 * not one call per field.
 *
 * The reader treats its input as hostile: every byte is bounds-checked,
 * lengths are compared with what the file still holds before anything is
 * allocated, an LZF string may not claim more than 128 bytes out per byte
 * in, and the first failure is recorded as "at offset N: problem" (with
 * what was being read) so that the server can say exactly what is wrong. */
#include "rdb.h"

#include <errno.h>
#include <liblzf/lzf.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OUT_BUF ((size_t)1 << 20)
#define IN_BUF ((size_t)1 << 20)
/* Strings up to this size are handed out as pointers into the reader's
 * window; longer ones get a string of their own. */
#define INLINE_MAX ((size_t)64 * 1024)
/* The most an LZF string may expand (a 3-byte back reference yields at
 * most 264 bytes, i.e. 88x); claims beyond this are corrupt. */
#define LZF_MAX_RATIO 128

/* ------------------------------------------------------------ module ids */

static const char module_charset[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

uint64_t rdb_module_id(const char *name9, unsigned encver) {
    uint64_t id = 0;
    for (int i = 0; i < 9; i++) {
        const char *at = strchr(module_charset, name9[i]);
        id = (id << 6) | (uint64_t)(at && name9[i] ? at - module_charset : 0);
    }
    return (id << 10) | (encver & 1023);
}

void rdb_module_name(uint64_t id, char name9[10], unsigned *encver) {
    *encver = (unsigned)(id & 1023);
    id >>= 10;
    for (int i = 8; i >= 0; i--) {
        name9[i] = module_charset[id & 63];
        id >>= 6;
    }
    name9[9] = '\0';
}

/* ---------------------------------------------------------------- writer */

int rdbo_init(rdb_out *o, rdb_sink_fn sink, void *ud, int compress, int checksum) {
    memset(o, 0, sizeof *o);
    o->buf = km_malloc(OUT_BUF);
    if (!o->buf) return ERR;
    o->cap = OUT_BUF;
    o->sink = sink;
    o->sink_ud = ud;
    o->compress = compress;
    o->checksum = checksum;
    return OK;
}

void rdbo_release(rdb_out *o) {
    km_free(o->buf);
    km_free(o->lzf);
    o->buf = o->lzf = NULL;
    o->cap = o->lzf_cap = o->used = 0;
}

int rdbo_sink_fd(void *ud, const void *p, size_t n) { return write_full(*(int *)ud, p, n); }

int rdbo_sink_dstr(void *ud, const void *p, size_t n) {
    dstr *d = ud;
    dstr x = dstr_catlen(*d, p, n);
    if (!x) {
        errno = ENOMEM;
        return -1;
    }
    *d = x;
    return 0;
}

int rdbo_flush(rdb_out *o) {
    if (o->failed) return ERR;
    if (!o->used) return OK;
    if (o->checksum) o->crc = crc64(o->crc, o->buf, o->used);
    if (o->observe) o->observe(o->observe_ud, o->buf, o->used);
    errno = 0;
    if (o->sink(o->sink_ud, o->buf, o->used) != 0) {
        o->failed = errno ? errno : EIO;
        return ERR;
    }
    o->flushed += o->used;
    o->used = 0;
    return OK;
}

uint64_t rdbo_offset(const rdb_out *o) { return o->flushed + o->used; }

uint64_t rdbo_crc(rdb_out *o) {
    rdbo_flush(o);
    return o->crc;
}

void rdbo_raw(rdb_out *o, const void *p, size_t n) {
    if (o->failed) return;
    if (n <= o->cap - o->used) {
        memcpy(o->buf + o->used, p, n);
        o->used += n;
        return;
    }
    const unsigned char *s = p;
    while (n) {
        if (o->used == o->cap && rdbo_flush(o) != OK) return;
        size_t take = o->cap - o->used < n ? o->cap - o->used : n;
        memcpy(o->buf + o->used, s, take);
        o->used += take;
        s += take;
        n -= take;
    }
}

void rdbo_u8(rdb_out *o, unsigned v) {
    if (o->used < o->cap) {
        o->buf[o->used++] = (unsigned char)v;
        return;
    }
    unsigned char b = (unsigned char)v;
    rdbo_raw(o, &b, 1);
}

void rdbo_len(rdb_out *o, uint64_t len) {
    unsigned char b[9];
    size_t n;
    if (len < 64) {
        b[0] = (unsigned char)len;
        n = 1;
    } else if (len < 16384) {
        b[0] = (unsigned char)(0x40 | (len >> 8));
        b[1] = (unsigned char)len;
        n = 2;
    } else if (len <= UINT32_MAX) {
        b[0] = 0x80;
        for (int i = 0; i < 4; i++) b[1 + i] = (unsigned char)(len >> (24 - 8 * i));
        n = 5;
    } else {
        b[0] = 0x81;
        for (int i = 0; i < 8; i++) b[1 + i] = (unsigned char)(len >> (56 - 8 * i));
        n = 9;
    }
    rdbo_raw(o, b, n);
}

/* The integer encodings: 1 + 1, 2 or 4 bytes; 0 when v needs more. */
static size_t encode_int(unsigned char *b, long long v) {
    if (v >= INT8_MIN && v <= INT8_MAX) {
        b[0] = 0xC0;
        b[1] = (unsigned char)(v & 0xff);
        return 2;
    }
    if (v >= INT16_MIN && v <= INT16_MAX) {
        b[0] = 0xC1;
        b[1] = (unsigned char)(v & 0xff);
        b[2] = (unsigned char)((v >> 8) & 0xff);
        return 3;
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        b[0] = 0xC2;
        for (int i = 0; i < 4; i++) b[1 + i] = (unsigned char)((v >> (8 * i)) & 0xff);
        return 5;
    }
    return 0;
}

/* LZF when it saves bytes, as Redis decides: only strings over 20 bytes,
 * and only when the result fits in len - 4. */
static int try_lzf(rdb_out *o, const void *p, size_t n) {
    if (n <= 20 || n > UINT32_MAX) return 0;
    size_t outcap = n - 4;
    if (o->lzf_cap < outcap) {
        size_t cap = outcap < 64 * 1024 ? 64 * 1024 : outcap;
        unsigned char *b = km_realloc(o->lzf, cap);
        if (!b) return 0; /* written uncompressed */
        o->lzf = b;
        o->lzf_cap = cap;
    }
    unsigned clen = lzf_compress(p, (unsigned)n, o->lzf, (unsigned)outcap);
    if (clen == 0) return 0;
    rdbo_u8(o, 0xC3);
    rdbo_len(o, clen);
    rdbo_len(o, n);
    rdbo_raw(o, o->lzf, clen);
    return 1;
}

void rdbo_string(rdb_out *o, const void *p, size_t n) {
    long long v;
    unsigned char b[5];
    size_t k;
    if (n > 0 && n <= 11 && str_to_ll(p, n, &v) && (k = encode_int(b, v)) > 0) {
        rdbo_raw(o, b, k);
        return;
    }
    if (o->compress && try_lzf(o, p, n)) return;
    rdbo_len(o, n);
    rdbo_raw(o, p, n);
}

void rdbo_string_ll(rdb_out *o, long long v) {
    unsigned char b[5];
    size_t k = encode_int(b, v);
    if (k) {
        rdbo_raw(o, b, k);
        return;
    }
    char buf[LL_STR_SIZE];
    int n = ll_to_str(buf, sizeof buf, v);
    rdbo_len(o, (uint64_t)n);
    rdbo_raw(o, buf, (size_t)n);
}

void rdbo_ms(rdb_out *o, long long ms) {
    unsigned char b[8];
    uint64_t u = (uint64_t)ms;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(u >> (8 * i));
    rdbo_raw(o, b, 8);
}

void rdbo_binary_double(rdb_out *o, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(u >> (8 * i));
    rdbo_raw(o, b, 8);
}

/* ---------------------------------------------------------------- reader */

int rdbi_init_fd(rdb_in *in, int fd, int checksum, char *err, size_t errlen) {
    memset(in, 0, sizeof *in);
    in->fd = fd;
    in->checksum = checksum;
    in->size = UINT64_MAX;
    struct stat st;
    off_t cur = lseek(fd, 0, SEEK_CUR);
    if (cur < 0) cur = 0;
    in->base = (uint64_t)cur;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) in->size = (uint64_t)st.st_size;
    in->buf = km_malloc(IN_BUF);
    if (!in->buf) {
        snprintf(err, errlen, "out of memory for the read buffer");
        return ERR;
    }
    in->cap = IN_BUF;
    return OK;
}

void rdbi_init_mem(rdb_in *in, const void *p, size_t n, int checksum) {
    memset(in, 0, sizeof *in);
    in->fd = -1;
    in->buf = (unsigned char *)p; /* never written through */
    in->len = in->cap = n;
    in->size = n;
    in->checksum = checksum;
}

void rdbi_release(rdb_in *in) {
    if (in->fd >= 0) km_free(in->buf);
    in->buf = NULL;
}

uint64_t rdbi_offset(const rdb_in *in) { return in->base + in->pos; }

uint64_t rdbi_remaining(const rdb_in *in) {
    if (in->size == UINT64_MAX) return UINT64_MAX;
    uint64_t off = rdbi_offset(in);
    return in->size > off ? in->size - off : 0;
}

uint64_t rdbi_crc(rdb_in *in) {
    if (in->checksum && in->pos > in->crc_pos) {
        in->crc = crc64(in->crc, in->buf + in->crc_pos, in->pos - in->crc_pos);
        in->crc_pos = in->pos;
    }
    return in->crc;
}

int rdbi_fail(rdb_in *in, uint64_t off, const char *fmt, ...) {
    if (in->failed) return ERR;
    in->failed = 1;
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (in->ctx_key) {
        char shown[80];
        size_t n = 0;
        for (size_t i = 0; i < in->ctx_klen && n < 60; i++) {
            unsigned char c = (unsigned char)in->ctx_key[i];
            if (c >= 32 && c < 127 && c != '\'' && c != '\\') shown[n++] = (char)c;
            else n += (size_t)snprintf(shown + n, sizeof shown - n, "\\x%02x", c);
        }
        snprintf(shown + n, sizeof shown - n, "%s", n >= 60 && in->ctx_klen > 60 ? "..." : "");
        snprintf(in->err, sizeof in->err, "at offset %llu (key '%s' in db %d): %s", (unsigned long long)off, shown,
                 in->ctx_db, msg);
    } else
        snprintf(in->err, sizeof in->err, "at offset %llu: %s", (unsigned long long)off, msg);
    return ERR;
}

static int fail_short(rdb_in *in, size_t n) {
    uint64_t off = rdbi_offset(in);
    if (in->size != UINT64_MAX)
        return rdbi_fail(in, off, "unexpected end of file: %zu more bytes needed, the file ends at offset %llu",
                         n, (unsigned long long)in->size);
    return rdbi_fail(in, off, "unexpected end of input: %zu more bytes needed", n);
}

/* Makes the window hold at least n (<= cap) unread bytes. */
static int fill(rdb_in *in, size_t n) {
    if (in->failed) return ERR;
    if (in->len - in->pos >= n) return OK;
    if (in->fd < 0 || n > in->cap) return fail_short(in, n);
    rdbi_crc(in); /* the bytes about to slide out of the window */
    size_t keep = in->len - in->pos;
    memmove(in->buf, in->buf + in->pos, keep);
    in->base += in->pos;
    in->len = keep;
    in->pos = in->crc_pos = 0;
    while (in->len < n) {
        ssize_t r = read(in->fd, in->buf + in->len, in->cap - in->len);
        if (r < 0) {
            if (errno == EINTR) continue;
            return rdbi_fail(in, rdbi_offset(in), "read error: %s", strerror(errno));
        }
        if (r == 0) return fail_short(in, n - (in->len - in->pos));
        in->len += (size_t)r;
    }
    return OK;
}

int rdbi_u8(rdb_in *in, unsigned *v) {
    if (in->pos < in->len && !in->failed) {
        *v = in->buf[in->pos++];
        return OK;
    }
    if (fill(in, 1) != OK) return ERR;
    *v = in->buf[in->pos++];
    return OK;
}

int rdbi_bytes(rdb_in *in, void *dst, size_t n) {
    if (in->failed) return ERR;
    unsigned char *d = dst;
    size_t avail = in->len - in->pos;
    if (avail >= n) {
        if (n) memcpy(d, in->buf + in->pos, n);
        in->pos += n;
        return OK;
    }
    if (in->fd < 0) return fail_short(in, n);
    if (avail) memcpy(d, in->buf + in->pos, avail);
    in->pos += avail;
    d += avail;
    n -= avail;
    if (n <= in->cap / 2) {
        if (fill(in, n) != OK) return ERR;
        memcpy(d, in->buf + in->pos, n);
        in->pos += n;
        return OK;
    }
    /* A long string: straight from the file into its destination. */
    rdbi_crc(in);
    in->base += in->len;
    in->pos = in->len = in->crc_pos = 0;
    while (n) {
        ssize_t r = read(in->fd, d, n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return rdbi_fail(in, rdbi_offset(in), "read error: %s", strerror(errno));
        }
        if (r == 0) return fail_short(in, n);
        if (in->checksum) in->crc = crc64(in->crc, d, (size_t)r);
        in->base += (uint64_t)r;
        d += r;
        n -= (size_t)r;
    }
    return OK;
}

int rdbi_len(rdb_in *in, uint64_t *len, int *special) {
    uint64_t off = rdbi_offset(in);
    unsigned b, c;
    if (rdbi_u8(in, &b) != OK) return ERR;
    if (special) *special = -1;
    switch (b >> 6) {
    case 0:
        *len = b & 0x3f;
        return OK;
    case 1:
        if (rdbi_u8(in, &c) != OK) return ERR;
        *len = ((uint64_t)(b & 0x3f) << 8) | c;
        return OK;
    case 2: {
        int nb = b == 0x80 ? 4 : b == 0x81 ? 8 : 0;
        if (!nb) return rdbi_fail(in, off, "unknown length encoding 0x%02x", b);
        unsigned char x[8];
        if (rdbi_bytes(in, x, (size_t)nb) != OK) return ERR;
        uint64_t v = 0;
        for (int i = 0; i < nb; i++) v = (v << 8) | x[i];
        *len = v;
        return OK;
    }
    default:
        if (!special) return rdbi_fail(in, off, "a string encoding (0x%02x) where a length belongs", b);
        *special = (int)(b & 0x3f);
        *len = 0;
        return OK;
    }
}

int rdbi_count(rdb_in *in, uint64_t *n, unsigned min_bytes, const char *what) {
    uint64_t off = rdbi_offset(in);
    if (rdbi_len(in, n, NULL) != OK) return ERR;
    uint64_t rem = rdbi_remaining(in);
    if (min_bytes && rem != UINT64_MAX && *n > rem / min_bytes)
        return rdbi_fail(in, off, "%s claims %llu items but only %llu bytes remain", what,
                         (unsigned long long)*n, (unsigned long long)rem);
    return OK;
}

int rdbi_ms(rdb_in *in, long long *ms) {
    unsigned char b[8];
    if (rdbi_bytes(in, b, 8) != OK) return ERR;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = (u << 8) | b[i];
    *ms = (long long)u;
    return OK;
}

int rdbi_u32le(rdb_in *in, uint32_t *v) {
    unsigned char b[4];
    if (rdbi_bytes(in, b, 4) != OK) return ERR;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return OK;
}

int rdbi_binary_double(rdb_in *in, double *d) {
    unsigned char b[8];
    if (rdbi_bytes(in, b, 8) != OK) return ERR;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = (u << 8) | b[i];
    memcpy(d, &u, 8);
    return OK;
}

int rdbi_text_double(rdb_in *in, double *d) {
    uint64_t off = rdbi_offset(in);
    unsigned n;
    if (rdbi_u8(in, &n) != OK) return ERR;
    if (n == 253) *d = NAN;
    else if (n == 254) *d = INFINITY;
    else if (n == 255) *d = -INFINITY;
    else {
        char buf[256];
        if (rdbi_bytes(in, buf, n) != OK) return ERR;
        buf[n] = '\0';
        char *end;
        errno = 0;
        *d = strtod(buf, &end);
        if (n == 0 || end != buf + n) return rdbi_fail(in, off, "a score that is not a number ('%.40s')", buf);
    }
    return OK;
}

static void str_reset(rdb_str *s) {
    s->p = NULL;
    s->len = 0;
    s->own = NULL;
    s->is_int = 0;
    s->ll = 0;
}

void rdb_str_free(rdb_str *s) {
    dstr_free(s->own);
    s->own = NULL;
}

dstr rdb_str_take(rdb_str *s) {
    if (s->own) {
        dstr d = s->own;
        s->own = NULL;
        return d;
    }
    return dstr_newlen(s->p, s->len);
}

/* len bytes into a string of their own.  With the file size known, len
 * was checked against it; from a stream of unknown size the string grows
 * as bytes arrive, so a false length cannot allocate more than was sent. */
static dstr read_owned(rdb_in *in, uint64_t len) {
    if (len > SIZE_MAX / 2) {
        rdbi_fail(in, rdbi_offset(in), "a string of %llu bytes", (unsigned long long)len);
        return NULL;
    }
    if (in->size != UINT64_MAX) {
        dstr d = dstr_newlen(NULL, (size_t)len);
        if (!d) {
            rdbi_fail(in, rdbi_offset(in), "out of memory for a string of %llu bytes", (unsigned long long)len);
            return NULL;
        }
        if (rdbi_bytes(in, d, (size_t)len) != OK) {
            dstr_free(d);
            return NULL;
        }
        return d;
    }
    dstr d = dstr_empty();
    size_t have = 0;
    while (d && have < len) {
        size_t step = len - have < INLINE_MAX * 16 ? (size_t)(len - have) : INLINE_MAX * 16;
        dstr n = dstr_reserve(d, step);
        if (!n) break;
        d = n;
        if (rdbi_bytes(in, d + have, step) != OK) {
            dstr_free(d);
            return NULL;
        }
        have += step;
        dstr_setlen(d, have);
    }
    if (!d || have < len) {
        dstr_free(d);
        rdbi_fail(in, rdbi_offset(in), "out of memory for a string of %llu bytes", (unsigned long long)len);
        return NULL;
    }
    return d;
}

static int read_lzf(rdb_in *in, rdb_str *s, uint64_t off) {
    uint64_t clen, ulen;
    if (rdbi_len(in, &clen, NULL) != OK || rdbi_len(in, &ulen, NULL) != OK) return ERR;
    uint64_t rem = rdbi_remaining(in);
    if (clen == 0 || (rem != UINT64_MAX && clen > rem))
        return rdbi_fail(in, off, "LZF string of %llu compressed bytes, %llu remain in the file",
                         (unsigned long long)clen, (unsigned long long)rem);
    if (ulen == 0 || ulen > UINT32_MAX || clen > UINT32_MAX || ulen / LZF_MAX_RATIO > clen)
        return rdbi_fail(in, off, "LZF string claims %llu bytes from %llu compressed bytes",
                         (unsigned long long)ulen, (unsigned long long)clen);
    const unsigned char *cp;
    unsigned char *tmp = NULL;
    if (clen <= INLINE_MAX || in->fd < 0) {
        if (fill(in, (size_t)clen) != OK) return ERR;
        cp = in->buf + in->pos;
        in->pos += (size_t)clen;
    } else {
        tmp = km_malloc((size_t)clen);
        if (!tmp) return rdbi_fail(in, off, "out of memory for %llu compressed bytes", (unsigned long long)clen);
        if (rdbi_bytes(in, tmp, (size_t)clen) != OK) {
            km_free(tmp);
            return ERR;
        }
        cp = tmp;
    }
    dstr d = dstr_newlen(NULL, (size_t)ulen);
    if (!d) {
        km_free(tmp);
        return rdbi_fail(in, off, "out of memory for an LZF string of %llu bytes", (unsigned long long)ulen);
    }
    unsigned got = lzf_decompress(cp, (unsigned)clen, d, (unsigned)ulen);
    km_free(tmp);
    if (got != ulen) {
        dstr_free(d);
        return rdbi_fail(in, off, "LZF data does not decompress to its stated %llu bytes", (unsigned long long)ulen);
    }
    s->own = d;
    s->p = d;
    s->len = (size_t)ulen;
    return OK;
}

int rdbi_string(rdb_in *in, rdb_str *s) {
    str_reset(s);
    uint64_t off = rdbi_offset(in);
    uint64_t len;
    int enc;
    if (rdbi_len(in, &len, &enc) != OK) return ERR;
    if (enc >= 0) {
        unsigned char b[4];
        switch (enc) {
        case 0:
            if (rdbi_bytes(in, b, 1) != OK) return ERR;
            s->ll = (int8_t)b[0];
            break;
        case 1:
            if (rdbi_bytes(in, b, 2) != OK) return ERR;
            s->ll = (int16_t)(uint16_t)(b[0] | b[1] << 8);
            break;
        case 2:
            if (rdbi_bytes(in, b, 4) != OK) return ERR;
            s->ll = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
            break;
        case 3: return read_lzf(in, s, off);
        default: return rdbi_fail(in, off, "unknown string encoding %d", enc);
        }
        s->is_int = 1;
        s->len = (size_t)ll_to_str(s->num, sizeof s->num, s->ll);
        s->p = s->num;
        return OK;
    }
    uint64_t rem = rdbi_remaining(in);
    if (rem != UINT64_MAX && len > rem)
        return rdbi_fail(in, off, "a string of %llu bytes, only %llu remain in the file", (unsigned long long)len,
                         (unsigned long long)rem);
    if (len <= INLINE_MAX || in->fd < 0) {
        if (fill(in, (size_t)len) != OK) return ERR;
        s->p = (const char *)in->buf + in->pos;
        s->len = (size_t)len;
        in->pos += (size_t)len;
        return OK;
    }
    s->own = read_owned(in, len);
    if (!s->own) return ERR;
    s->p = s->own;
    s->len = (size_t)len;
    return OK;
}

int rdbi_skip_string(rdb_in *in) {
    rdb_str s;
    int rc = rdbi_string(in, &s);
    rdb_str_free(&s);
    return rc;
}
