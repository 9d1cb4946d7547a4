/* rdb_packed.c - Redis's packed encodings, as they appear inside RDB
 * files: listpack (read and write), ziplist, intset and zipmap (read).
 *
 * Redis keeps small collections in these blobs and dumps them as they are
 * (types 10-18), and stream nodes are always listpacks.  inferkv keeps its
 * own in-memory encodings, so a blob is only ever decoded once, while a
 * file loads.  Each reader therefore checks the whole blob first - header
 * sizes against the blob's length, every entry's encoding and length
 * against the end, listpack back lengths and ziplist previous-entry
 * lengths against the entries they describe, the end byte, the element
 * count - and the iterators that follow trust what was checked.  Layouts
 * (public facts of Redis's formats):
 *
 *   listpack  total bytes u32 LE, element count u16 LE (65535: unknown),
 *             entries, 0xFF.  Entry: encoding + data, then its own length
 *             written backwards in 7-bit groups.  Encodings: 0xxxxxxx
 *             7-bit uint; 10xxxxxx 6-bit string length; 110xxxxx +1 byte
 *             13-bit int; 1110xxxx +1 byte 12-bit string length; 0xF0 +
 *             u32 string length; 0xF1/F2/F3/F4 int16/24/32/64 LE.
 *   ziplist   total bytes u32, offset of the last entry u32, count u16,
 *             entries, 0xFF.  Entry: previous entry's length (1 byte, or
 *             0xFE + u32), encoding: 00xxxxxx / 01xxxxxx xxxxxxxx /
 *             0x80 + u32 BE string length; 0xC0 int16, 0xD0 int32, 0xE0
 *             int64, 0xF0 int24, 0xFE int8, 0xF1..0xFD the values 0..12.
 *   intset    encoding u32 (2, 4, 8: bytes per value), count u32, values
 *             LE, strictly increasing.
 *   zipmap    a count byte, then (len key len free value [free bytes])*,
 *             0xFF; a len is one byte below 254, or 254 + u32.
 *
 * The listpack writer builds stream nodes for rdb_save.c, with Redis's
 * choice of encodings (a string that is a canonical integer is stored as
 * an integer). */
#include "rdb.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

static uint32_t u32le(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t u64le(const unsigned char *p) { return (uint64_t)u32le(p) | (uint64_t)u32le(p + 4) << 32; }

/* ---------------------------------------------------------------- listpack */

static size_t backlen_size(size_t l) {
    if (l <= 127) return 1;
    if (l < 16383) return 2;
    if (l < 2097151) return 3;
    if (l < 268435455) return 4;
    return 5;
}

static size_t backlen_encode(unsigned char *b, size_t l) {
    size_t k = backlen_size(l);
    b[0] = (unsigned char)(l >> (7 * (k - 1)));
    for (size_t i = 1; i < k; i++) b[i] = (unsigned char)(((l >> (7 * (k - 1 - i))) & 127) | 128);
    return k;
}

/* The encoding and data length of the entry at p (p < end), 0 if it is
 * not a valid entry or runs past end. */
static size_t lp_entry_len(const unsigned char *p, const unsigned char *end) {
    size_t avail = (size_t)(end - p), len;
    unsigned b = p[0];
    if ((b & 0x80) == 0) len = 1;
    else if ((b & 0xC0) == 0x80) len = 1 + (b & 0x3F);
    else if ((b & 0xE0) == 0xC0) len = 2;
    else if ((b & 0xF0) == 0xE0) {
        if (avail < 2) return 0;
        len = 2 + (((size_t)(b & 0x0F) << 8) | p[1]);
    } else if (b == 0xF0) {
        if (avail < 5) return 0;
        len = 5 + (size_t)u32le(p + 1);
    } else if (b == 0xF1) len = 3;
    else if (b == 0xF2) len = 4;
    else if (b == 0xF3) len = 5;
    else if (b == 0xF4) len = 9;
    else return 0;
    return len <= avail ? len : 0;
}

static void lp_decode(const unsigned char *p, packed_ele *e) {
    unsigned b = p[0];
    e->s = NULL;
    e->len = 0;
    if ((b & 0x80) == 0) {
        e->v = b;
    } else if ((b & 0xC0) == 0x80) {
        e->s = p + 1;
        e->len = b & 0x3F;
    } else if ((b & 0xE0) == 0xC0) {
        long long u = ((long long)(b & 0x1F) << 8) | p[1];
        e->v = u >= 4096 ? u - 8192 : u;
    } else if ((b & 0xF0) == 0xE0) {
        e->s = p + 2;
        e->len = ((size_t)(b & 0x0F) << 8) | p[1];
    } else if (b == 0xF0) {
        e->s = p + 5;
        e->len = u32le(p + 1);
    } else if (b == 0xF1) {
        e->v = (int16_t)(uint16_t)(p[1] | p[2] << 8);
    } else if (b == 0xF2) {
        uint32_t u = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16;
        e->v = u & 0x800000 ? (long long)u - 0x1000000 : (long long)u;
    } else if (b == 0xF3) {
        e->v = (int32_t)u32le(p + 1);
    } else {
        e->v = (long long)u64le(p + 1);
    }
}

int listpack_check(const unsigned char *p, size_t n, size_t *count, char *err, size_t errlen) {
    if (n < 7) return snprintf(err, errlen, "a listpack of %zu bytes (at least 7)", n), ERR;
    if (u32le(p) != n)
        return snprintf(err, errlen, "a listpack whose header says %u bytes in a string of %zu", u32le(p), n), ERR;
    if (p[n - 1] != 0xFF) return snprintf(err, errlen, "a listpack without its end byte"), ERR;
    unsigned hdr_count = p[4] | p[5] << 8;
    const unsigned char *q = p + 6, *end = p + n - 1;
    size_t c = 0;
    while (q < end) {
        size_t off = (size_t)(q - p);
        size_t el = lp_entry_len(q, end);
        if (!el) return snprintf(err, errlen, "listpack entry at byte %zu: bad encoding or length", off), ERR;
        size_t bl = backlen_size(el);
        if (bl > (size_t)(end - q) - el)
            return snprintf(err, errlen, "listpack entry at byte %zu runs past the end", off), ERR;
        unsigned char want[5];
        backlen_encode(want, el);
        if (memcmp(want, q + el, bl) != 0)
            return snprintf(err, errlen, "listpack entry at byte %zu: back length does not match", off), ERR;
        q += el + bl;
        c++;
    }
    if (hdr_count != 65535 && hdr_count != c)
        return snprintf(err, errlen, "a listpack whose header counts %u entries, it holds %zu", hdr_count, c), ERR;
    *count = c;
    return OK;
}

/* ---------------------------------------------------------------- ziplist */

/* Length of the ziplist entry at p (prevlen, encoding, data), 0 if it is
 * not valid or runs past end; *prev gets its recorded previous length. */
static size_t zl_entry_len(const unsigned char *p, const unsigned char *end, size_t *prev) {
    size_t avail = (size_t)(end - p), h;
    if (p[0] < 254) {
        *prev = p[0];
        h = 1;
    } else if (p[0] == 254) {
        if (avail < 5) return 0;
        *prev = u32le(p + 1);
        h = 5;
    } else {
        return 0;
    }
    if (h >= avail) return 0;
    unsigned b = p[h];
    size_t len;
    switch (b >> 6) {
    case 0: len = h + 1 + (b & 0x3F); break;
    case 1:
        if (avail < h + 2) return 0;
        len = h + 2 + (((size_t)(b & 0x3F) << 8) | p[h + 1]);
        break;
    case 2:
        if (b != 0x80 || avail < h + 5) return 0;
        len = h + 5 + ((size_t)p[h + 1] << 24 | (size_t)p[h + 2] << 16 | (size_t)p[h + 3] << 8 | p[h + 4]);
        break;
    default:
        if (b == 0xC0) len = h + 3;
        else if (b == 0xD0) len = h + 5;
        else if (b == 0xE0) len = h + 9;
        else if (b == 0xF0) len = h + 4;
        else if (b == 0xFE) len = h + 2;
        else if (b >= 0xF1 && b <= 0xFD) len = h + 1;
        else return 0;
    }
    return len <= avail ? len : 0;
}

static void zl_decode(const unsigned char *p, packed_ele *e) {
    size_t h = p[0] < 254 ? 1 : 5;
    unsigned b = p[h];
    const unsigned char *d = p + h;
    e->s = NULL;
    e->len = 0;
    switch (b >> 6) {
    case 0:
        e->s = d + 1;
        e->len = b & 0x3F;
        return;
    case 1:
        e->s = d + 2;
        e->len = ((size_t)(b & 0x3F) << 8) | d[1];
        return;
    case 2:
        e->s = d + 5;
        e->len = (size_t)d[1] << 24 | (size_t)d[2] << 16 | (size_t)d[3] << 8 | d[4];
        return;
    }
    if (b == 0xC0) e->v = (int16_t)(uint16_t)(d[1] | d[2] << 8);
    else if (b == 0xD0) e->v = (int32_t)u32le(d + 1);
    else if (b == 0xE0) e->v = (long long)u64le(d + 1);
    else if (b == 0xF0) {
        uint32_t u = (uint32_t)d[1] | (uint32_t)d[2] << 8 | (uint32_t)d[3] << 16;
        e->v = u & 0x800000 ? (long long)u - 0x1000000 : (long long)u;
    } else if (b == 0xFE) e->v = (int8_t)d[1];
    else e->v = (long long)(b & 0x0F) - 1;
}

int ziplist_check(const unsigned char *p, size_t n, size_t *count, char *err, size_t errlen) {
    if (n < 11) return snprintf(err, errlen, "a ziplist of %zu bytes (at least 11)", n), ERR;
    if (u32le(p) != n)
        return snprintf(err, errlen, "a ziplist whose header says %u bytes in a string of %zu", u32le(p), n), ERR;
    if (p[n - 1] != 0xFF) return snprintf(err, errlen, "a ziplist without its end byte"), ERR;
    size_t tail = u32le(p + 4);
    unsigned hdr_count = p[8] | p[9] << 8;
    const unsigned char *q = p + 10, *end = p + n - 1;
    size_t c = 0, prevlen = 0, last = 10;
    while (q < end) {
        size_t off = (size_t)(q - p), prev;
        size_t el = zl_entry_len(q, end, &prev);
        if (!el) return snprintf(err, errlen, "ziplist entry at byte %zu: bad encoding or length", off), ERR;
        if (prev != prevlen)
            return snprintf(err, errlen, "ziplist entry at byte %zu: previous length %zu, the previous entry has %zu",
                            off, prev, prevlen), ERR;
        last = off;
        prevlen = el;
        q += el;
        c++;
    }
    if (tail != last) return snprintf(err, errlen, "a ziplist whose tail offset %zu is not its last entry", tail), ERR;
    if (hdr_count != 65535 && hdr_count != c)
        return snprintf(err, errlen, "a ziplist whose header counts %u entries, it holds %zu", hdr_count, c), ERR;
    *count = c;
    return OK;
}

/* -------------------------------------------------------------- iterating */

void packed_iter_init(packed_iter *it, const unsigned char *p, size_t n, int kind) {
    it->kind = kind;
    it->p = p + (kind == 0 ? 6 : 10);
    it->end = p + n - 1;
    it->count = 0;
}

int packed_next(packed_iter *it, packed_ele *e) {
    if (it->p >= it->end) return 0;
    if (it->kind == 0) {
        size_t el = lp_entry_len(it->p, it->end);
        lp_decode(it->p, e);
        it->p += el + backlen_size(el);
    } else {
        size_t prev;
        size_t el = zl_entry_len(it->p, it->end, &prev);
        zl_decode(it->p, e);
        it->p += el;
    }
    it->count++;
    return 1;
}

const char *packed_str(const packed_ele *e, char *buf, size_t *len) {
    if (e->s) {
        *len = e->len;
        return (const char *)e->s;
    }
    *len = (size_t)ll_to_str(buf, LL_STR_SIZE, e->v);
    return buf;
}

/* ----------------------------------------------------------------- intset */

int intset_check(const unsigned char *p, size_t n, size_t *count, char *err, size_t errlen) {
    if (n < 8) return snprintf(err, errlen, "an intset of %zu bytes (at least 8)", n), ERR;
    uint32_t enc = u32le(p), len = u32le(p + 4);
    if (enc != 2 && enc != 4 && enc != 8) return snprintf(err, errlen, "an intset of %u-byte integers", enc), ERR;
    if ((uint64_t)enc * len + 8 != n)
        return snprintf(err, errlen, "an intset of %u values of %u bytes in %zu bytes", len, enc, n), ERR;
    for (uint32_t i = 1; i < len; i++)
        if (intset_get(p, i - 1) >= intset_get(p, i))
            return snprintf(err, errlen, "intset values out of order at index %u", i), ERR;
    *count = len;
    return OK;
}

long long intset_get(const unsigned char *p, size_t i) {
    uint32_t enc = u32le(p);
    const unsigned char *v = p + 8 + i * enc;
    if (enc == 2) return (int16_t)(uint16_t)(v[0] | v[1] << 8);
    if (enc == 4) return (int32_t)u32le(v);
    return (long long)u64le(v);
}

/* ----------------------------------------------------------------- zipmap */

/* A zipmap length at p: its value and size, 0 size if invalid. */
static size_t zm_len(const unsigned char *p, const unsigned char *end, size_t *len) {
    if (p >= end) return 0;
    if (p[0] < 254) {
        *len = p[0];
        return 1;
    }
    if (p[0] == 254 && end - p >= 5) {
        *len = u32le(p + 1);
        return 5;
    }
    return 0;
}

int zipmap_check(const unsigned char *p, size_t n, size_t *pairs, char *err, size_t errlen) {
    if (n < 2 || p[n - 1] != 0xFF) return snprintf(err, errlen, "a zipmap without its end byte"), ERR;
    const unsigned char *q = p + 1, *end = p + n - 1;
    size_t c = 0;
    while (q < end) {
        size_t off = (size_t)(q - p), flen, vlen, h;
        if (!(h = zm_len(q, end, &flen)) || flen > (size_t)(end - q) - h)
            return snprintf(err, errlen, "zipmap field at byte %zu runs past the end", off), ERR;
        q += h + flen;
        if (!(h = zm_len(q, end, &vlen)) || (size_t)(end - q) < h + 1 || vlen > (size_t)(end - q) - h - 1)
            return snprintf(err, errlen, "zipmap value at byte %zu runs past the end", off), ERR;
        size_t freeb = q[h];
        q += h + 1 + vlen;
        if (freeb > (size_t)(end - q)) return snprintf(err, errlen, "zipmap free space at byte %zu runs past the end", off), ERR;
        q += freeb;
        c++;
    }
    *pairs = c;
    return OK;
}

void zipmap_iter_init(zipmap_iter *it, const unsigned char *p) { it->p = p + 1; }

int zipmap_next(zipmap_iter *it, const unsigned char **f, size_t *flen, const unsigned char **v, size_t *vlen) {
    if (it->p[0] == 0xFF) return 0; /* zipmap_check made sure every length is in bounds */
    size_t h = it->p[0] < 254 ? 1 : 5;
    *flen = h == 1 ? it->p[0] : u32le(it->p + 1);
    *f = it->p + h;
    it->p += h + *flen;
    h = it->p[0] < 254 ? 1 : 5;
    *vlen = h == 1 ? it->p[0] : u32le(it->p + 1);
    size_t freeb = it->p[h];
    *v = it->p + h + 1;
    it->p += h + 1 + *vlen + freeb;
    return 1;
}

/* ---------------------------------------------------------- listpack out */

int lpw_init(lp_writer *w) {
    w->count = 0;
    w->b = dstr_newlen("\0\0\0\0\0\0", 6);
    return w->b ? OK : ERR;
}

static void lpw_entry(lp_writer *w, const unsigned char *hdr, size_t hlen, const void *data, size_t dlen) {
    if (!w->b) return;
    unsigned char bl[5];
    size_t bn = backlen_encode(bl, hlen + dlen);
    dstr n = dstr_reserve(w->b, hlen + dlen + bn);
    if (!n) {
        dstr_free(w->b);
        w->b = NULL;
        return;
    }
    /* the appends below then never reallocate, so none of them can fail */
    assert(dstr_avail(n) >= hlen + dlen + bn);
    n = dstr_catlen(n, hdr, hlen);
    if (dlen) n = dstr_catlen(n, data, dlen);
    n = dstr_catlen(n, bl, bn);
    w->b = n;
    w->count++;
}

void lpw_int(lp_writer *w, long long v) {
    unsigned char h[9];
    size_t n;
    if (v >= 0 && v <= 127) {
        h[0] = (unsigned char)v;
        n = 1;
    } else if (v >= -4096 && v <= 4095) {
        unsigned u = v < 0 ? (unsigned)(8192 + v) : (unsigned)v;
        h[0] = (unsigned char)(0xC0 | (u >> 8));
        h[1] = (unsigned char)(u & 0xff);
        n = 2;
    } else {
        int bytes;
        if (v >= INT16_MIN && v <= INT16_MAX) h[0] = 0xF1, bytes = 2;
        else if (v >= -8388608 && v <= 8388607) h[0] = 0xF2, bytes = 3;
        else if (v >= INT32_MIN && v <= INT32_MAX) h[0] = 0xF3, bytes = 4;
        else h[0] = 0xF4, bytes = 8;
        uint64_t u = (uint64_t)v;
        for (int i = 0; i < bytes; i++) h[1 + i] = (unsigned char)(u >> (8 * i));
        n = 1 + (size_t)bytes;
    }
    lpw_entry(w, h, n, NULL, 0);
}

void lpw_str(lp_writer *w, const char *p, size_t len) {
    long long v;
    if (len > 0 && len <= 20 && str_to_ll(p, len, &v)) {
        lpw_int(w, v);
        return;
    }
    unsigned char h[5];
    size_t n;
    if (len < 64) {
        h[0] = (unsigned char)(0x80 | len);
        n = 1;
    } else if (len < 4096) {
        h[0] = (unsigned char)(0xE0 | (len >> 8));
        h[1] = (unsigned char)(len & 0xff);
        n = 2;
    } else {
        h[0] = 0xF0;
        for (int i = 0; i < 4; i++) h[1 + i] = (unsigned char)((uint64_t)len >> (8 * i));
        n = 5;
    }
    lpw_entry(w, h, n, p, len);
}

int lpw_finish(lp_writer *w) {
    if (!w->b) return ERR;
    dstr n = dstr_catlen(w->b, "\xff", 1);
    if (!n) {
        dstr_free(w->b);
        w->b = NULL;
        return ERR;
    }
    w->b = n;
    size_t total = dstr_len(n);
    unsigned count = w->count < 65535 ? (unsigned)w->count : 65535;
    for (int i = 0; i < 4; i++) n[i] = (char)(unsigned char)((uint64_t)total >> (8 * i));
    n[4] = (char)(count & 0xff);
    n[5] = (char)(count >> 8);
    return OK;
}
