/* hpack.c - small hashes packed in one string.
 *
 * Most hashes are small (a user record, a few counters).  As a dict each
 * field costs a dict entry and two strings, three allocations and ~90
 * bytes of overhead; packed, a field costs two length bytes.  Entries are
 * stored back to back, in insertion order:
 *
 *     [flen:u8][field bytes][vlen:u8][value bytes] ...
 *
 * Lookups are linear, which is faster than hashing for a few dozen short
 * entries that share one cache-friendly buffer.  The owner (t_hash.c)
 * converts to a dict before a hash outgrows hash-max-listpack-entries or
 * receives a field or value longer than hash-max-listpack-value, so lengths always
 * fit one byte and walks stay short. */
#include "server.h"

#include <assert.h>
#include <string.h>

long long hash_max_listpack_entries = 512, hash_max_listpack_value = 64;

int hpack_fits(size_t flen, size_t vlen) {
    size_t lim = hash_max_listpack_value < HPACK_LEN_LIMIT ? (size_t)hash_max_listpack_value : HPACK_LEN_LIMIT;
    return flen <= lim && vlen <= lim;
}

int hpack_next(const dstr b, size_t *off, hp_entry *e) {
    size_t len = dstr_len(b), o = *off;
    if (o >= len) return 0;
    e->off = o;
    e->flen = (unsigned char)b[o];
    e->f = b + o + 1;
    o += 1 + e->flen;
    e->vlen = (unsigned char)b[o];
    e->v = b + o + 1;
    o += 1 + e->vlen;
    e->end = o;
    *off = o;
    return 1;
}

int hpack_find(const dstr b, const char *f, size_t flen, hp_entry *e) {
    size_t off = 0;
    while (hpack_next(b, &off, e))
        if (e->flen == flen && memcmp(e->f, f, flen) == 0) return 1;
    return 0;
}

size_t hpack_count(const dstr b) {
    size_t off = 0, n = 0;
    hp_entry e;
    while (hpack_next(b, &off, &e)) n++;
    return n;
}

/* Sets field to value, in place when the field exists.  Returns the
 * (possibly moved) buffer, or NULL on OOM with b unchanged. */
dstr hpack_set(dstr b, const char *f, size_t flen, const char *v, size_t vlen, int *added) {
    /* the owner converts first: lengths are stored in one byte */
    assert(flen <= HPACK_LEN_LIMIT && vlen <= HPACK_LEN_LIMIT);
    hp_entry e;
    *added = 0;
    if (hpack_find(b, f, flen, &e)) {
        size_t voff = (size_t)(e.v - b), old = e.vlen, len = dstr_len(b);
        if (vlen > old) {
            dstr n = dstr_reserve(b, vlen - old);
            if (!n) return NULL;
            b = n;
        }
        memmove(b + voff + vlen, b + voff + old, len - voff - old);
        memcpy(b + voff, v, vlen);
        b[voff - 1] = (char)vlen;
        dstr_setlen(b, len - old + vlen);
        return b;
    }
    unsigned char fl = (unsigned char)flen, vl = (unsigned char)vlen;
    dstr n = dstr_reserve(b, 2 + flen + vlen);
    if (!n) return NULL;
    /* the appends below then never reallocate, so none of them can fail */
    assert(dstr_avail(n) >= 2 + flen + vlen);
    n = dstr_catlen(n, &fl, 1);
    n = dstr_catlen(n, f, flen);
    n = dstr_catlen(n, &vl, 1);
    n = dstr_catlen(n, v, vlen);
    *added = 1;
    return n;
}

void hpack_delete(dstr b, const hp_entry *e) {
    size_t len = dstr_len(b);
    memmove(b + e->off, b + e->end, len - e->end);
    dstr_setlen(b, len - (e->end - e->off));
}
