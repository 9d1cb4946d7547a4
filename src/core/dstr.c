/* dstr.c - binary-safe dynamic strings.
 *
 * A dstr is a char * to the bytes, always NUL-terminated, with the length
 * and capacity stored just before the bytes.  Keys and values are millions
 * of short strings, so the header comes in three widths chosen by capacity:
 * 8-bit (3 bytes of header), 32-bit (9) and 64-bit (17).  The byte right
 * before the data says which.  Appends grow geometrically up to 1 MB, then by
 * 1 MB, so that a long run of APPENDs is amortised O(1) without doubling a
 * huge buffer. */
#include "core.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { H8 = 0, H32 = 1, H64 = 2 };
#define GROW_LINEAR (1024 * 1024)

struct __attribute__((packed)) hdr8 { uint8_t len, alloc; uint8_t type; };
struct __attribute__((packed)) hdr32 { uint32_t len, alloc; uint8_t type; };
struct __attribute__((packed)) hdr64 { uint64_t len, alloc; uint8_t type; };

static int type_for(size_t cap) {
    if (cap < 256) return H8;
    if (cap <= UINT32_MAX) return H32;
    return H64;
}

static size_t hdr_size(int t) {
    return t == H8 ? sizeof(struct hdr8)
                   : t == H32 ? sizeof(struct hdr32) : sizeof(struct hdr64);
}

#define TYPE(s) ((uint8_t)(s)[-1])
#define H8P(s) ((struct hdr8 *)((s) - sizeof(struct hdr8)))
#define H32P(s) ((struct hdr32 *)((s) - sizeof(struct hdr32)))
#define H64P(s) ((struct hdr64 *)((s) - sizeof(struct hdr64)))

size_t dstr_len(const dstr s) {
    switch (TYPE(s)) {
    case H8: return H8P(s)->len;
    case H32: return H32P(s)->len;
    default: return H64P(s)->len;
    }
}

static size_t cap_of(const dstr s) {
    switch (TYPE(s)) {
    case H8: return H8P(s)->alloc;
    case H32: return H32P(s)->alloc;
    default: return H64P(s)->alloc;
    }
}

static void set_fields(dstr s, size_t len, size_t cap) {
    switch (TYPE(s)) {
    case H8: H8P(s)->len = (uint8_t)len; H8P(s)->alloc = (uint8_t)cap; break;
    case H32: H32P(s)->len = (uint32_t)len; H32P(s)->alloc = (uint32_t)cap; break;
    default: H64P(s)->len = len; H64P(s)->alloc = cap; break;
    }
}

size_t dstr_avail(const dstr s) { return cap_of(s) - dstr_len(s); }

static void *base_of(const dstr s) { return s - hdr_size(TYPE(s)); }

size_t dstr_alloc_size(const dstr s) { return km_usable(base_of(s)); }

/* Allocates a string of capacity `cap` holding `len` bytes copied from init
 * (or zeroed when init is NULL). */
static dstr alloc_str(const void *init, size_t len, size_t cap) {
    int t = type_for(cap);
    size_t h = hdr_size(t);
    if (cap > SIZE_MAX - h - 1) return NULL;
    char *base = km_malloc(h + cap + 1);
    if (!base) return NULL;
    dstr s = base + h;
    s[-1] = (char)t;
    set_fields(s, len, cap);
    if (init) memcpy(s, init, len);
    else memset(s, 0, len);
    s[len] = '\0';
    return s;
}

dstr dstr_newlen(const void *init, size_t len) { return alloc_str(init, len, len); }
dstr dstr_new(const char *s) { return dstr_newlen(s, s ? strlen(s) : 0); }
dstr dstr_empty(void) { return dstr_newlen("", 0); }
dstr dstr_dup(const dstr s) { return dstr_newlen(s, dstr_len(s)); }

dstr dstr_fromll(long long v) {
    char buf[LL_STR_SIZE];
    int n = ll_to_str(buf, sizeof buf, v);
    return dstr_newlen(buf, (size_t)n);
}

void dstr_free(dstr s) {
    if (s) km_free(base_of(s));
}

dstr dstr_reserve(dstr s, size_t add) {
    size_t len = dstr_len(s), cap = cap_of(s);
    if (cap - len >= add) return s;
    if (add > SIZE_MAX / 2 - len) return NULL;
    size_t need = len + add;
    size_t newcap = need < GROW_LINEAR ? need * 2 : need + GROW_LINEAR;
    int t = type_for(newcap);
    if (t == TYPE(s)) {
        size_t h = hdr_size(t);
        char *base = km_realloc(base_of(s), h + newcap + 1);
        if (!base) return NULL;
        s = base + h;
        set_fields(s, len, newcap);
        return s;
    }
    dstr n = alloc_str(s, len, newcap);
    if (!n) return NULL;
    dstr_free(s);
    return n;
}

dstr dstr_catlen(dstr s, const void *p, size_t len) {
    dstr n = dstr_reserve(s, len);
    if (!n) return NULL;
    size_t cur = dstr_len(n);
    memcpy(n + cur, p, len);
    dstr_setlen(n, cur + len);
    return n;
}

dstr dstr_cat(dstr s, const char *p) { return dstr_catlen(s, p, strlen(p)); }

dstr dstr_catfmt(dstr s, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return NULL;
    if ((size_t)n < sizeof small) return dstr_catlen(s, small, (size_t)n);
    dstr r = dstr_reserve(s, (size_t)n + 1);
    if (!r) return NULL;
    size_t cur = dstr_len(r);
    va_start(ap, fmt);
    vsnprintf(r + cur, (size_t)n + 1, fmt, ap);
    va_end(ap);
    dstr_setlen(r, cur + (size_t)n);
    return r;
}

dstr dstr_or_free(dstr s, dstr appended) {
    if (!appended) dstr_free(s);
    return appended;
}

void dstr_setlen(dstr s, size_t len) {
    set_fields(s, len, cap_of(s));
    s[len] = '\0';
}

void dstr_consume(dstr s, size_t n) {
    size_t len = dstr_len(s);
    if (n >= len) {
        dstr_setlen(s, 0);
        return;
    }
    memmove(s, s + n, len - n);
    dstr_setlen(s, len - n);
}

void dstr_range(dstr s, size_t start, size_t len) {
    if (start && len) memmove(s, s + start, len);
    dstr_setlen(s, len);
}

dstr dstr_shrink(dstr s) {
    size_t len = dstr_len(s);
    if (cap_of(s) == len) return s;
    dstr n = alloc_str(s, len, len);
    if (!n) return s; /* keeping the larger buffer is harmless */
    dstr_free(s);
    return n;
}

size_t dstr_embed_size(size_t len) { return hdr_size(type_for(len)) + len + 1; }

dstr dstr_embed(void *buf, const void *p, size_t len) {
    int t = type_for(len);
    dstr s = (char *)buf + hdr_size(t);
    s[-1] = (char)t;
    set_fields(s, len, len);
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

int dstr_cmp(const dstr a, const dstr b) {
    size_t la = dstr_len(a), lb = dstr_len(b);
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c) return c;
    return la < lb ? -1 : la > lb;
}

void dstr_tolower(dstr s) {
    size_t n = dstr_len(s);
    for (size_t i = 0; i < n; i++) s[i] = (char)tolower((unsigned char)s[i]);
}
