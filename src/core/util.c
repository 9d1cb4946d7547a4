/* util.c - conversions and small helpers with Redis's exact rules.
 *
 * Clients see these rules: which strings count as integers ("01" and "+1" do
 * not), how doubles are printed (%.17g, "inf"), how INCRBYFLOAT trims its
 * result.  Keeping them in one place keeps every command consistent. */
#include "core.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int str_to_ull(const char *s, size_t len, unsigned long long *out) {
    if (len == 0 || len > 20) return 0;
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return 1;
    }
    if (s[0] < '1' || s[0] > '9') return 0;
    unsigned long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10) return 0;
        v = v * 10 + d;
    }
    *out = v;
    return 1;
}

int str_to_ll(const char *s, size_t len, long long *out) {
    int neg = 0;
    if (len > 0 && s[0] == '-') {
        neg = 1;
        s++;
        len--;
        if (len == 1 && s[0] == '0') return 0; /* "-0" is not canonical */
    }
    unsigned long long v;
    if (!str_to_ull(s, len, &v)) return 0;
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1) return 0;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > LLONG_MAX) return 0;
        *out = (long long)v;
    }
    return 1;
}

int str_to_double(const char *s, size_t len, double *out) {
    char buf[256];
    if (len == 0 || len >= sizeof buf || isspace((unsigned char)s[0])) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if ((size_t)(end - buf) != len || isnan(v)) return 0;
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL || v == 0)) return 0;
    *out = v;
    return 1;
}

#define MAX_LD_CHARS 5120
int str_to_ldouble(const char *s, size_t len, long double *out) {
    char buf[MAX_LD_CHARS + 1];
    if (len == 0 || len > MAX_LD_CHARS || isspace((unsigned char)s[0])) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long double v = strtold(buf, &end);
    if ((size_t)(end - buf) != len || isnan(v)) return 0;
    if (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || v == 0)) return 0;
    *out = v;
    return 1;
}

int ll_to_str(char *buf, size_t cap, long long v) {
    char tmp[LL_STR_SIZE];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[n++] = '-';
    if ((size_t)n + 1 > cap) return 0;
    for (int i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

int double_to_str(char *buf, size_t cap, double v) {
    if (isinf(v)) return snprintf(buf, cap, "%s", v > 0 ? "inf" : "-inf");
    if (isnan(v)) return snprintf(buf, cap, "nan");
    return snprintf(buf, cap, "%.17g", v);
}

int ldouble_to_str(char *buf, size_t cap, long double v) {
    if (isinf(v)) return snprintf(buf, cap, "%s", v > 0 ? "inf" : "-inf");
    int l = snprintf(buf, cap, "%.17Lf", v);
    if (l < 0 || (size_t)l + 1 > cap) return 0;
    if (strchr(buf, '.')) {
        while (buf[l - 1] == '0') l--;
        if (buf[l - 1] == '.') l--;
    }
    if (l == 2 && buf[0] == '-' && buf[1] == '0') {
        buf[0] = '0';
        l = 1;
    }
    buf[l] = '\0';
    return l;
}

/* Matches one [...] class starting just after '['; advances *pp to the
 * class's last character (the ']', or the pattern's last byte when the
 * class is never closed).  Follows Redis exactly: '^' negates, "x-y" is a
 * range whatever y is (even ']'), and characters compare as signed char. */
static int class_match(const char **pp, const char *pend, char c, int nocase) {
    const char *p = *pp;
    int neg = 0, match = 0;
    if (p < pend && *p == '^') {
        neg = 1;
        p++;
    }
    for (;;) {
        if (p >= pend) { /* unclosed: the class ends with the pattern */
            p--;
            break;
        }
        if (*p == '\\' && pend - p >= 2) {
            p++;
            if (*p == c) match = 1;
        } else if (*p == ']') {
            break;
        } else if (pend - p >= 3 && p[1] == '-') {
            int lo = p[0], hi = p[2], x = c;
            if (lo > hi) {
                int t = lo;
                lo = hi;
                hi = t;
            }
            if (nocase) {
                lo = tolower(lo);
                hi = tolower(hi);
                x = tolower(x);
            }
            p += 2;
            if (x >= lo && x <= hi) match = 1;
        } else if (nocase ? tolower((unsigned char)*p) == tolower((unsigned char)c) : *p == c) {
            match = 1;
        }
        p++;
    }
    *pp = p;
    return neg ? !match : match;
}

/* Iterative glob: on a mismatch, backtrack only to the last '*', which keeps
 * the match linear-times-pattern instead of exponential on hostile patterns. */
int glob_match(const char *pat, size_t plen, const char *s, size_t slen, int nocase) {
    /* Redis never matches an empty subject except with an empty pattern. */
    if (slen == 0) return plen == 0;
    const char *p = pat, *pend = pat + plen, *str = s, *send = s + slen;
    const char *star_p = NULL, *star_s = NULL;
    while (str < send) {
        if (p < pend && *p == '*') {
            while (p < pend && *p == '*') p++;
            if (p == pend) return 1;
            star_p = p;
            star_s = str;
            continue;
        }
        if (p < pend) {
            const char *np = p + 1;
            int ok;
            if (*p == '?') {
                ok = 1;
            } else if (*p == '[') {
                ok = class_match(&np, pend, *str, nocase);
                np++; /* past the class's last character */
            } else {
                char pc = *p;
                if (pc == '\\' && p + 1 < pend) {
                    np = p + 2;
                    pc = p[1];
                }
                ok = nocase ? tolower((unsigned char)pc) == tolower((unsigned char)*str)
                            : pc == *str;
            }
            if (ok) {
                p = np;
                str++;
                continue;
            }
        }
        if (!star_p) return 0;
        p = star_p;
        str = ++star_s;
    }
    while (p < pend && *p == '*') p++;
    return p == pend;
}

/* A 64-bit multiply-xorshift hash over 8-byte words (MurmurHash64A
 * construction); the seed is random per process so clients cannot aim
 * collisions at one bucket. */
uint64_t hash_bytes(const void *data, size_t len, uint64_t seed) {
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = seed ^ (len * m);
    const unsigned char *p = data;
    size_t nblocks = len / 8;
    for (size_t i = 0; i < nblocks; i++, p += 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    uint64_t tail = 0;
    switch (len & 7) {
    case 7: tail ^= (uint64_t)p[6] << 48; /* fall through */
    case 6: tail ^= (uint64_t)p[5] << 40; /* fall through */
    case 5: tail ^= (uint64_t)p[4] << 32; /* fall through */
    case 4: tail ^= (uint64_t)p[3] << 24; /* fall through */
    case 3: tail ^= (uint64_t)p[2] << 16; /* fall through */
    case 2: tail ^= (uint64_t)p[1] << 8;  /* fall through */
    case 1: tail ^= (uint64_t)p[0]; h ^= tail; h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

long long time_us(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

long long time_ms(void) { return time_us() / 1000; }

long long mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t rng_state;

uint64_t rand_u64(void) {
    if (rng_state == 0) rng_state = (uint64_t)mono_us() * 0x9e3779b97f4a7c15ULL | 1;
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

void random_hex(char *buf, size_t n) {
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, raw, n < sizeof raw ? n : sizeof raw);
        got = r > 0 ? (size_t)r : 0;
        close(fd);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v = i < got ? raw[i] : (unsigned)rand_u64();
        buf[i] = hex[v & 15];
    }
}

int write_full(int fd, const void *p, size_t n) {
    const unsigned char *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}
