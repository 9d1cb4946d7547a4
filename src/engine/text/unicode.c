/* unicode.c - UTF-8 coding and the few Unicode properties tokenizers use.
 *
 * The property tables (unicode_data.h) are generated from the Unicode
 * database by scripts/gen-unicode-tables.py; lookups are binary searches over
 * sorted ranges, with ASCII answered without a search because it dominates
 * real text. */
#include "text/unicode.h"

#include "text/unicode_data.h"
#include "kernels/ialloc.h"

#include <stdlib.h>
#include <string.h>

uint32_t utf8_decode(const char *str, size_t len, size_t *i) {
    const unsigned char *s = (const unsigned char *)str;
    size_t p = *i;
    unsigned char c = s[p];
    if (c < 0x80) {
        *i = p + 1;
        return c;
    }
    size_t n = utf8_len(c);
    if (n == 1 || n > len - p) goto bad;
    uint32_t cp = c & (0x7F >> n);
    for (size_t k = 1; k < n; k++) {
        if ((s[p + k] & 0xC0) != 0x80) goto bad;
        cp = (cp << 6) | (s[p + k] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        goto bad;
    *i = p + n;
    return cp;
bad:
    *i = p + 1;
    return 0xFFFD;
}

size_t utf8_encode(uint32_t cp, char *buf) {
    unsigned char *b = (unsigned char *)buf;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | (cp >> 18));
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

unsigned ucd_flags(uint32_t cp) {
    size_t lo = 0, hi = sizeof ucd_ranges / sizeof ucd_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < ucd_ranges[mid].lo) hi = mid;
        else if (cp > ucd_ranges[mid].hi) lo = mid + 1;
        else return ucd_ranges[mid].flags;
    }
    return 0;
}

static uint32_t map_lookup(const struct ucd_map *m, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < m[mid].from) hi = mid;
        else if (cp > m[mid].from) lo = mid + 1;
        else return m[mid].to;
    }
    return cp;
}

uint32_t ucd_tolower(uint32_t cp) {
    if (cp < 0x80) return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    return map_lookup(ucd_lower, sizeof ucd_lower / sizeof ucd_lower[0], cp);
}

uint32_t ucd_nfd_base(uint32_t cp) {
    if (cp < 0xC0) return cp;
    return map_lookup(ucd_nfd, sizeof ucd_nfd / sizeof ucd_nfd[0], cp);
}

/* ---- text preparation: UTF-8 repair and NFC ---------------------------------------- */

/* One character by the WHATWG decoder's rule: an invalid sequence becomes
 * one U+FFFD per maximal valid prefix, as TextDecoder and Node's Buffer do.
 * Returns the bytes consumed; *bad tells the character was invalid. */
static size_t decode_whatwg(const unsigned char *s, size_t n, size_t i, uint32_t *cp, int *bad) {
    unsigned char b = s[i];
    *bad = 0;
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b == 0xE0) { need = 2; lo = 0xA0; }
    else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) need = 2;
    else if (b == 0xED) { need = 2; hi = 0x9F; }
    else if (b == 0xF0) { need = 3; lo = 0x90; }
    else if (b >= 0xF1 && b <= 0xF3) need = 3;
    else if (b == 0xF4) { need = 3; hi = 0x8F; }
    else {
        *cp = 0xFFFD;
        *bad = 1;
        return 1;
    }
    uint32_t v = b & (0x3F >> need);
    size_t j = i + 1;
    for (size_t k = 0; k < need; k++, j++) {
        if (j >= n || s[j] < lo || s[j] > hi) {
            *cp = 0xFFFD;
            *bad = 1;
            return j - i;
        }
        v = (v << 6) | (s[j] & 0x3F);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp = v;
    return j - i;
}

static int ccc_of(uint32_t cp) {
    if (cp < 0x300 || cp & 0x80000000u) return 0;
    uint32_t r = map_lookup(ucd_ccc, sizeof ucd_ccc / sizeof ucd_ccc[0], cp);
    return r == cp ? 0 : (int)r; /* map_lookup answers cp itself when absent */
}

#define H_SBASE 0xAC00u
#define H_LBASE 0x1100u
#define H_VBASE 0x1161u
#define H_TBASE 0x11A7u
#define H_LCOUNT 19u
#define H_VCOUNT 21u
#define H_TCOUNT 28u
#define H_NCOUNT (H_VCOUNT * H_TCOUNT)
#define H_SCOUNT (H_LCOUNT * H_NCOUNT)

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    size_t lo = 0, hi = sizeof ucd_comp / sizeof ucd_comp[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct ucd_comp *c = &ucd_comp[mid];
        if (a < c->a || (a == c->a && b < c->b)) hi = mid;
        else if (a > c->a || b > c->b) lo = mid + 1;
        else return c->c;
    }
    return 0;
}

/* Appends the canonical decomposition of cp. */
static size_t decompose(uint32_t cp, uint32_t *out) {
    if (cp >= H_SBASE && cp < H_SBASE + H_SCOUNT) {
        uint32_t s = cp - H_SBASE, t = s % H_TCOUNT;
        out[0] = H_LBASE + s / H_NCOUNT;
        out[1] = H_VBASE + (s % H_NCOUNT) / H_TCOUNT;
        if (!t) return 2;
        out[2] = H_TBASE + t;
        return 3;
    }
    if (cp >= 0xC0 && !(cp & 0x80000000u)) {
        size_t lo = 0, hi = sizeof ucd_decomp / sizeof ucd_decomp[0];
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cp < ucd_decomp[mid].cp) hi = mid;
            else if (cp > ucd_decomp[mid].cp) lo = mid + 1;
            else {
                memcpy(out, ucd_decomp_cps + ucd_decomp[mid].off, sizeof(uint32_t) * ucd_decomp[mid].len);
                return ucd_decomp[mid].len;
            }
        }
    }
    out[0] = cp;
    return 1;
}

/* NFC of c[0..n) in place (the result is never longer); returns the new
 * length.  Raw bytes kept from invalid input are marked with the top bit
 * and never combine. */
static size_t nfc_cps(uint32_t *c, size_t n, uint32_t *tmp) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) m += decompose(c[i], tmp + m);
    /* canonical order: a stable insertion sort inside runs of marks */
    for (size_t i = 1; i < m; i++) {
        int cc = ccc_of(tmp[i]);
        if (!cc) continue;
        size_t j = i;
        uint32_t x = tmp[i];
        while (j > 0 && ccc_of(tmp[j - 1]) > cc) {
            tmp[j] = tmp[j - 1];
            j--;
        }
        tmp[j] = x;
    }
    size_t o = 0;
    long starter = -1;
    int last_ccc = 0;
    for (size_t i = 0; i < m; i++) {
        uint32_t x = tmp[i];
        int cc = ccc_of(x);
        if (starter >= 0 && !(x & 0x80000000u)) {
            int adjacent = (size_t)starter == o - 1;
            if (adjacent || (last_ccc != 0 && last_ccc < cc)) {
                uint32_t comp = compose_pair(c[starter], x);
                if (comp) {
                    c[starter] = comp;
                    continue;
                }
            }
        }
        if (cc == 0) starter = (long)o;
        last_ccc = cc;
        c[o++] = x;
    }
    return o;
}

char *ucd_prepare(const char *text, size_t len, int repair_utf8, int nfc, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)text;
    int work = 0;
    for (size_t i = 0; i < len && !work;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int bad;
        i += decode_whatwg(s, len, i, &cp, &bad);
        if ((bad && repair_utf8) || (nfc && cp >= 0x300)) work = 1;
    }
    *out_len = len;
    if (!work) return NULL;
    /* Work segment by segment: a boundary before an ASCII character is
     * always safe for NFC (ASCII never combines with what precedes it), so
     * a segment is one character plus the non-ASCII run after it, and
     * scratch space follows the longest run, not the text.  A segment's
     * output is at most 3x its input (NFC's bound, and U+FFFD for single
     * bad bytes), which decides when the output grows. */
    size_t out_cap = len + len / 8 + 64; /* grown when a segment could overflow it */
    char *out = ie_malloc(out_cap);
    uint32_t *c = NULL, *tmp = NULL;
    size_t seg_cap = 0, o = 0;
    if (!out) goto oom;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80 && (i + 1 == len || s[i + 1] < 0x80)) {
            out[o++] = (char)s[i++];
            continue;
        }
        size_t j = i + 1;
        while (j < len && s[j] >= 0x80) j++;
        size_t seg = j - i;
        if (o + 3 * seg + 4 + (len - j) > out_cap) {
            size_t nc = out_cap * 2 > o + 3 * seg + 4 + (len - j) ? out_cap * 2 : o + 3 * seg + 4 + (len - j);
            char *no = ie_realloc(out, nc);
            if (!no) goto oom;
            out = no;
            out_cap = nc;
        }
        if (seg > seg_cap) {
            free(c);
            free(tmp);
            seg_cap = seg * 2;
            c = ie_malloc(sizeof(uint32_t) * seg_cap);
            tmp = ie_malloc(sizeof(uint32_t) * 4 * seg_cap); /* a decomposition has at most 4 code points */
            if (!c || !tmp) goto oom;
        }
        size_t n = 0;
        for (size_t k = i; k < j;) {
            uint32_t cp;
            int bad;
            size_t step = decode_whatwg(s, j, k, &cp, &bad);
            if (bad && !repair_utf8) {
                for (size_t b = 0; b < step; b++) c[n++] = 0x80000000u | s[k + b];
            } else {
                c[n++] = cp;
            }
            k += step;
        }
        if (nfc) n = nfc_cps(c, n, tmp);
        for (size_t k = 0; k < n; k++) {
            if (c[k] & 0x80000000u) out[o++] = (char)(c[k] & 0xFF);
            else o += utf8_encode(c[k], out + o);
        }
        i = j;
    }
    free(c);
    free(tmp);
    *out_len = o;
    return out;
oom:
    free(c);
    free(tmp);
    free(out);
    *out_len = 0;
    return NULL;
}
