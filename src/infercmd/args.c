/* args.c - numbers and words from client arguments, with range checks.
 *
 * Every number a client sends is checked against an explicit range and a
 * bad one is answered with an error that names the option: a silent
 * default would hide the client's mistake.  Arguments are (pointer,
 * length) pairs that may hold any byte, so nothing here assumes a NUL. */
#include "infercmd.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ic_arg_is(const ic_arg *a, const char *word) {
    size_t n = strlen(word);
    return a->len == n && strncasecmp(a->ptr, word, n) == 0;
}

int ic_parse_ll(const ic_arg *a, long long *out) {
    const char *p = a->ptr;
    size_t len = a->len, i = 0;
    int neg = 0;
    if (len == 0 || len > 20) return -1;
    if (p[0] == '-') {
        neg = 1;
        i = 1;
        if (len == 1) return -1;
    }
    unsigned long long v = 0, lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (lim - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = neg ? (long long)(0 - v) : (long long)v;
    return 0;
}

int ic_parse_u64(const ic_arg *a, uint64_t *out) {
    uint64_t v = 0;
    if (a->len == 0 || a->len > 20) return -1;
    for (size_t i = 0; i < a->len; i++) {
        if (a->ptr[i] < '0' || a->ptr[i] > '9') return -1;
        unsigned d = (unsigned)(a->ptr[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int ic_parse_double(const ic_arg *a, double *out) {
    char buf[64];
    if (a->len == 0 || a->len >= sizeof buf || memchr(a->ptr, 0, a->len)) return -1;
    memcpy(buf, a->ptr, a->len);
    buf[a->len] = 0;
    if (buf[0] == ' ' || buf[0] == '\t') return -1;
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int ic_arg_ll(const ic_arg *a, const char *what, long long lo, long long hi, long long *out, char *err,
              size_t errlen) {
    long long v;
    if (ic_parse_ll(a, &v) < 0 || v < lo || v > hi) {
        snprintf(err, errlen, "ERR %s must be an integer between %lld and %lld", what, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int ic_arg_double(const ic_arg *a, const char *what, double lo, double hi, double *out, char *err,
                  size_t errlen) {
    double v;
    if (ic_parse_double(a, &v) < 0 || v < lo || v > hi) {
        snprintf(err, errlen, "ERR %s must be a number between %g and %g", what, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

void ic_shown(const char *p, size_t len, char *out, size_t cap) {
    if (cap == 0) return;
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++) out[i] = (p[i] >= 32 && p[i] < 127) ? p[i] : '?';
    out[n] = 0;
}

int ic_utf8_valid(const char *s, size_t len, size_t *bad) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t need;
        unsigned cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            need = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            need = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            break;
        }
        if (len - i <= need) break;
        size_t k;
        for (k = 1; k <= need && (p[i + k] & 0xC0) == 0x80; k++) cp = cp << 6 | (p[i + k] & 0x3F);
        if (k <= need || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) break;
        i += need + 1;
    }
    if (i < len) {
        if (bad) *bad = i;
        return 0;
    }
    return 1;
}
