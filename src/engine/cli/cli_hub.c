/* cli_hub.c - resolving `inferkv-cli pull OWNER/REPO[:QUANT|:FILE.gguf]` on
 * a Hugging Face-style hub: the repository's file listing
 * (GET {endpoint}/api/models/{owner}/{repo}, "siblings"), the choice of one
 * GGUF file in it, and that file's size and SHA-256 from the tree listing
 * (GET .../tree/{rev}: "size", "lfs": {"oid", "size"}).  The download is
 * cli_pull.c's; this file owns everything that reads the hub's JSON.
 *
 * Why a parser of its own: the engine's JSON reader is internal to text/
 * and the CLI sits on the public API (tests/integration/test_layers.py), and
 * what the hub sends is hostile input.  So a small strict pull reader:
 * bounded responses (HUB_JSON_MAX), bounded nesting, RFC 8259 grammar with
 * nothing tolerated (no trailing commas, no garbage after the value), and
 * strings decoded with their true length so that an embedded NUL is seen.
 * File names from the hub are checked before use: one that could name a
 * path outside the repository (a ".." component, an absolute path,
 * backslashes, control bytes) makes the whole listing untrusted. */
#include "cli_hub.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HUB_JSON_MAX ((size_t)8 << 20) /* largest listing accepted */
#define JR_DEPTH_MAX 64
#define MAX_NAMES 100000

static void print_bytes(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
}

void hub_print_safe(FILE *f, const char *s) { print_bytes(f, s, strlen(s)); }

/* ---- a strict JSON pull reader ---- */

typedef struct {
    const char *p, *end;
    int depth;
} jr;

static int jr_peek(jr *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

static int jr_eat(jr *r, char c) {
    if (jr_peek(r) != (unsigned char)c) return 0;
    r->p++;
    return 1;
}

static int jr_hex4(jr *r, unsigned *v) {
    if (r->end - r->p < 4) return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = (unsigned char)*r->p++, d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* A string value.  Decoded into out (cap bytes, always NUL-terminated when
 * cap > 0) when out is not NULL; *len gets the decoded length, which may be
 * more than cap - 1 (then out holds a prefix) and counts any \u0000. */
static int jr_string(jr *r, char *out, size_t cap, size_t *len) {
    size_t n = 0;
#define PUT(ch)                                    \
    do {                                           \
        if (out && n + 1 < cap) out[n] = (char)(ch); \
        n++;                                       \
    } while (0)
    if (!jr_eat(r, '"')) return -1;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p++;
        if (c == '"') {
            if (out && cap) out[n < cap ? n : cap - 1] = '\0';
            if (len) *len = n;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c != '\\') {
            PUT(c);
            continue;
        }
        if (r->p >= r->end) return -1;
        c = (unsigned char)*r->p++;
        unsigned u, lo;
        switch (c) {
        case '"': case '\\': case '/': PUT(c); break;
        case 'b': PUT('\b'); break;
        case 'f': PUT('\f'); break;
        case 'n': PUT('\n'); break;
        case 'r': PUT('\r'); break;
        case 't': PUT('\t'); break;
        case 'u':
            if (jr_hex4(r, &u)) return -1;
            if (u >= 0xDC00 && u <= 0xDFFF) return -1; /* lone low surrogate */
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u') return -1;
                r->p += 2;
                if (jr_hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (u < 0x80) {
                PUT(u);
            } else if (u < 0x800) {
                PUT(0xC0 | u >> 6);
                PUT(0x80 | (u & 0x3F));
            } else if (u < 0x10000) {
                PUT(0xE0 | u >> 12);
                PUT(0x80 | (u >> 6 & 0x3F));
                PUT(0x80 | (u & 0x3F));
            } else {
                PUT(0xF0 | u >> 18);
                PUT(0x80 | (u >> 12 & 0x3F));
                PUT(0x80 | (u >> 6 & 0x3F));
                PUT(0x80 | (u & 0x3F));
            }
            break;
        default: return -1;
        }
    }
#undef PUT
    return -1;
}

/* A number in JSON's grammar.  *u (when u is not NULL) receives its value
 * when it is a plain non-negative integer below 2^63; *is_u says whether it
 * was one. */
static int jr_number(jr *r, uint64_t *u, int *is_u) {
    const char *s = r->p;
    int plain = 1;
    uint64_t v = 0;
    if (r->p < r->end && *r->p == '-') {
        plain = 0;
        r->p++;
    }
    if (r->p >= r->end || !isdigit((unsigned char)*r->p)) return -1;
    if (*r->p == '0') {
        r->p++;
    } else {
        while (r->p < r->end && isdigit((unsigned char)*r->p)) {
            if (v > (UINT64_C(1) << 62) / 5) plain = 0; /* would pass 2^63 */
            v = v * 10 + (uint64_t)(*r->p++ - '0');
        }
    }
    if (r->p < r->end && *r->p == '.') {
        plain = 0;
        r->p++;
        if (r->p >= r->end || !isdigit((unsigned char)*r->p)) return -1;
        while (r->p < r->end && isdigit((unsigned char)*r->p)) r->p++;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        plain = 0;
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
        if (r->p >= r->end || !isdigit((unsigned char)*r->p)) return -1;
        while (r->p < r->end && isdigit((unsigned char)*r->p)) r->p++;
    }
    if (r->p == s) return -1;
    if (plain && v >= UINT64_C(1) << 63) plain = 0;
    if (u) *u = v;
    if (is_u) *is_u = plain;
    return 0;
}

static int jr_literal(jr *r, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n)) return -1;
    r->p += n;
    return 0;
}

/* Steps over the next element of an array or object: call with *first = 1
 * just after '[' or '{'.  Returns 1 when an element follows, 0 at the
 * closing bracket (consumed), -1 on a syntax error. */
static int jr_next(jr *r, char close, int *first) {
    if (*first) {
        *first = 0;
        return jr_eat(r, close) ? 0 : 1;
    }
    if (jr_eat(r, ',')) return 1;
    if (jr_eat(r, close)) return 0;
    return -1;
}

/* The key of an object member and its ':'.  A key longer than cap - 1 is
 * returned as "" (it is never one the caller looks for). */
static int jr_key(jr *r, char *key, size_t cap) {
    size_t n;
    if (jr_string(r, key, cap, &n) || !jr_eat(r, ':')) return -1;
    if (n >= cap || strlen(key) != n) key[0] = '\0';
    return 0;
}

static int jr_open(jr *r, char open) {
    if (!jr_eat(r, open)) return -1;
    return ++r->depth > JR_DEPTH_MAX ? -1 : 0;
}

/* Validates and steps over any value. */
static int jr_skip(jr *r) {
    int c = jr_peek(r);
    if (c == '"') return jr_string(r, NULL, 0, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        if (jr_open(r, (char)c)) return -1;
        int first = 1, k;
        while ((k = jr_next(r, close, &first)) == 1) {
            if (c == '{' && (jr_string(r, NULL, 0, NULL) || !jr_eat(r, ':'))) return -1;
            if (jr_skip(r)) return -1;
        }
        r->depth--;
        return k;
    }
    if (c == 't') return jr_literal(r, "true");
    if (c == 'f') return jr_literal(r, "false");
    if (c == 'n') return jr_literal(r, "null");
    if (c == '-' || (c >= '0' && c <= '9')) return jr_number(r, NULL, NULL);
    return -1;
}

static int jr_done(jr *r) { return jr_peek(r) == -1 ? 0 : -1; }

/* ---- HTTP ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int over;
} membuf;

static size_t mem_write(char *p, size_t sz, size_t nm, void *ud) {
    membuf *m = ud;
    size_t k = sz * nm;
    if (k > HUB_JSON_MAX - m->len) {
        m->over = 1;
        return 0;
    }
    if (m->len + k + 1 > m->cap) {
        size_t nc = m->cap ? m->cap : 1 << 16;
        while (nc < m->len + k + 1) nc *= 2;
        char *nb = realloc(m->buf, nc);
        if (!nb) return 0;
        m->buf = nb;
        m->cap = nc;
    }
    memcpy(m->buf + m->len, p, k);
    m->len += k;
    m->buf[m->len] = '\0';
    return k;
}

CURL *hub_curl(const hub_repo *r, const char *url, struct curl_slist **hdrs) {
    *hdrs = NULL;
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    int https = !strncasecmp(r->endpoint, "https://", 8);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "inferkv-cli-pull/1");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* The hub answers /resolve/ with a redirect to its CDN; an https hub may
     * not send us to plain http. */
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a stalled transfer (under 1 KiB/s for a minute) fails instead of hanging */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    if (r->token) {
        /* The token is for the hub only.  libcurl sends a custom
         * Authorization header to the host of the original URL and not to
         * another host a redirect leads to (the hub's CDN, a mirror's
         * storage), as long as CURLOPT_UNRESTRICTED_AUTH stays off, which it
         * is, explicitly, here.  test_cli_pull.py checks it. */
        char h[1100];
        snprintf(h, sizeof h, "Authorization: Bearer %s", r->token);
        *hdrs = curl_slist_append(NULL, h);
        if (!*hdrs) {
            curl_easy_cleanup(c);
            return NULL;
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    }
    curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
    return c;
}

/* The "error" string of a hub's JSON error body, if there is one. */
static void print_hub_error(const char *body, size_t len) {
    if (!body || !len) return;
    jr r = {body, body + len, 0};
    char key[16], msg[201];
    int first = 1;
    if (jr_open(&r, '{')) return;
    while (jr_next(&r, '}', &first) == 1) {
        if (jr_key(&r, key, sizeof key)) return;
        if (!strcmp(key, "error") && jr_peek(&r) == '"') {
            size_t n;
            if (jr_string(&r, msg, sizeof msg, &n) || !msg[0]) return;
            fputs(" (the hub says: ", stderr);
            hub_print_safe(stderr, msg);
            fputs(n >= sizeof msg ? "...)" : ")", stderr);
            return;
        }
        if (jr_skip(&r)) return;
    }
}

static int http_error(const hub_repo *r, long status, const char *what, const char *body, size_t len) {
    fprintf(stderr, "error: %s: ", what);
    int rc = PULL_NOTFOUND;
    if (status == 401 && !r->token)
        fprintf(stderr,
                "HTTP 401: the hub wants a token: a private or gated repository, or one that does not exist; "
                "set HF_TOKEN or pass --token");
    else if (status == 401)
        fprintf(stderr, "HTTP 401: the hub refused the token (HF_TOKEN / --token), or the repository does not exist");
    else if (status == 403)
        fprintf(stderr, "HTTP 403: access denied%s",
                r->token ? " (a gated repository: accept its terms on the hub with this token's account)"
                         : "; set HF_TOKEN or pass --token");
    else if (status == 404)
        fprintf(stderr, "HTTP 404: not found at %s", r->endpoint);
    else {
        fprintf(stderr, "HTTP %ld from %s", status, r->endpoint);
        rc = PULL_ERR;
    }
    print_hub_error(body, len);
    fputc('\n', stderr);
    return rc;
}

int hub_http_error(const hub_repo *r, long status, const char *what) {
    return http_error(r, status, what, NULL, 0);
}

/* GET url into m.  Returns PULL_OK (with m->buf NUL-terminated), or an exit
 * status with a message naming `what`.  With allow404, a 404 returns -1
 * quietly. */
static int hub_get(const hub_repo *r, const char *url, const char *what, membuf *m, int allow404) {
    struct curl_slist *hdrs;
    CURL *c = hub_curl(r, url, &hdrs);
    if (!c) {
        fprintf(stderr, "error: cannot set up libcurl\n");
        return PULL_ERR;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, m);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    CURLcode res = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    if (m->over) {
        fprintf(stderr, "error: %s: the hub's answer is larger than %zu MiB; refusing it\n", what, HUB_JSON_MAX >> 20);
        return PULL_ERR;
    }
    if (res != CURLE_OK) {
        fprintf(stderr, "error: %s: %s\n", what, errbuf[0] ? errbuf : curl_easy_strerror(res));
        return PULL_ERR;
    }
    if (status == 404 && allow404) return -1;
    if (status != 200) return http_error(r, status, what, m->buf, m->len);
    if (!m->buf && !(m->buf = calloc(1, 1))) return PULL_ERR; /* an empty body */
    return PULL_OK;
}

/* Percent-encodes s (everything but RFC 3986's unreserved characters) onto
 * out at *n; returns -1 when out is full. */
static int url_put(char *out, size_t cap, size_t *n, const char *s, int encode) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = !encode || isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (*n + (plain ? 1 : 3) >= cap) return -1;
        if (plain)
            out[(*n)++] = (char)*p;
        else
            *n += (size_t)snprintf(out + *n, cap - *n, "%%%02X", *p);
    }
    out[*n] = '\0';
    return 0;
}

/* endpoint + the pieces, alternately literal and encoded: url(r, out, cap,
 * "/api/models/", 0, owner, 0, ...), NULL-terminated. */
static int make_url(const hub_repo *r, char *out, size_t cap, ...) {
    size_t n = 0;
    va_list ap;
    int rc = url_put(out, cap, &n, r->endpoint, 0);
    va_start(ap, cap);
    const char *s;
    while (!rc && (s = va_arg(ap, const char *))) {
        int enc = va_arg(ap, int);
        rc = url_put(out, cap, &n, s, enc);
    }
    va_end(ap);
    return rc;
}

char *hub_resolve_url(const hub_repo *r, const char *file) {
    size_t cap = strlen(r->endpoint) + 3 * (strlen(r->revision) + strlen(file)) + 256;
    char *u = malloc(cap);
    if (u && make_url(r, u, cap, "/", 0, r->owner, 0, "/", 0, r->repo, 0, "/resolve/", 0, r->revision, 1, "/", 0,
                      file, 1, (const char *)NULL)) {
        free(u);
        u = NULL;
    }
    return u;
}

/* ---- names ---- */

static int part_ok(const char *s, size_t n) {
    if (!n || n > 96) return 0;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') return 0;
    return 1;
}

int hub_parse_spec(const char *spec, hub_repo *r, char *sel, size_t selcap) {
    const char *slash = strchr(spec, '/'), *colon = strchr(spec, ':');
    const char *end = colon ? colon : spec + strlen(spec);
    if (!slash || slash > end || !part_ok(spec, (size_t)(slash - spec)) ||
        !part_ok(slash + 1, (size_t)(end - slash - 1))) {
        fprintf(stderr, "error: '%s' is not OWNER/REPO[:QUANT|:FILE.gguf] (names of letters, digits, '-', '_', '.')\n",
                spec);
        return -1;
    }
    memcpy(r->owner, spec, (size_t)(slash - spec));
    r->owner[slash - spec] = '\0';
    memcpy(r->repo, slash + 1, (size_t)(end - slash - 1));
    r->repo[end - slash - 1] = '\0';
    sel[0] = '\0';
    if (colon) {
        const char *s = colon + 1;
        size_t n = strlen(s);
        int ok = n > 0 && n <= HUB_NAME_MAX && n < selcap && s[0] != '.';
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)s[i]) || strchr("-_.+", s[i]);
        if (!ok) {
            fprintf(stderr,
                    "error: '%s' after ':' must be a quantization (Q8_0, Q4_K_M) or a file name in the repository's "
                    "top directory (letters, digits, '-', '_', '.', '+'; no '/', no leading '.')\n",
                    s);
            return -1;
        }
        memcpy(sel, s, n + 1);
    }
    return 0;
}

/* A name no honest hub lists: one that could point outside the repository
 * (absolute, a "." or ".." component, an empty component, backslashes) or
 * holds control bytes or NUL. */
static int name_hostile(const char *s, size_t len) {
    if (!len || strlen(s) != len || s[0] == '/') return 1;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\') return 1;
    for (const char *c = s;;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (!n || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 1;
        if (!e) return 0;
        c = e + 1;
    }
}

static int ends_gguf(const char *s) {
    size_t n = strlen(s);
    return n > 5 && !strcasecmp(s + n - 5, ".gguf");
}

/* A name `pull` installs: a .gguf in the top directory, of plain
 * characters, not hidden, short enough for its ".NAME.part". */
static int name_pullable(const char *s) {
    size_t n = strlen(s);
    if (!ends_gguf(s) || n > HUB_NAME_MAX || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.+", s[i])) return 0;
    return 1;
}

typedef struct {
    char **v;
    size_t n;
} names;

static void names_free(names *ns) {
    for (size_t i = 0; i < ns->n; i++) free(ns->v[i]);
    free(ns->v);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* {"siblings": [{"rfilename": NAME, ...}, ...], ...} -> the names.
 * Returns 0, -1 on bad JSON, -2 on a hostile name (printed). */
static int parse_listing(const char *buf, size_t len, names *out) {
    jr r = {buf, buf + len, 0};
    char key[32];
    int first = 1, k, seen = 0;
    size_t cap = 0;
    if (jr_open(&r, '{')) return -1;
    while ((k = jr_next(&r, '}', &first)) == 1) {
        if (jr_key(&r, key, sizeof key)) return -1;
        if (strcmp(key, "siblings") || seen) {
            if (jr_skip(&r)) return -1;
            continue;
        }
        seen = 1;
        int f2 = 1, k2;
        if (jr_open(&r, '[')) return -1;
        while ((k2 = jr_next(&r, ']', &f2)) == 1) {
            int f3 = 1, k3;
            if (jr_open(&r, '{')) return -1;
            while ((k3 = jr_next(&r, '}', &f3)) == 1) {
                if (jr_key(&r, key, sizeof key)) return -1;
                if (strcmp(key, "rfilename")) {
                    if (jr_skip(&r)) return -1;
                    continue;
                }
                jr save = r;
                size_t n;
                if (jr_string(&r, NULL, 0, &n)) return -1;
                char *s = malloc(n + 1);
                if (!s) return -1;
                r = save;
                jr_string(&r, s, n + 1, &n);
                if (name_hostile(s, n)) {
                    fputs("error: the hub's listing holds an unsafe file name '", stderr);
                    print_bytes(stderr, s, n);
                    fputs("'; refusing to use this repository\n", stderr);
                    free(s);
                    return -2;
                }
                if (out->n == MAX_NAMES) {
                    free(s);
                    return -1;
                }
                if (out->n == cap) {
                    size_t nc = cap ? cap * 2 : 64;
                    char **nv = realloc(out->v, nc * sizeof *nv);
                    if (!nv) {
                        free(s);
                        return -1;
                    }
                    out->v = nv;
                    cap = nc;
                }
                out->v[out->n++] = s;
            }
            r.depth--;
            if (k3 < 0) return -1;
        }
        r.depth--;
        if (k2 < 0) return -1;
    }
    if (k < 0 || jr_done(&r) || !seen) return -1;
    return 0;
}

/* The tree listing's entry for `name`: [{"type": "file", "path": NAME,
 * "size": N, "lfs": {"oid": SHA256, "size": N}}, ...].  Fills f->size /
 * f->sha256 when found.  Returns 0, -1 on bad JSON, -2 on an entry that
 * contradicts itself (printed). */
static int parse_tree(const char *buf, size_t len, hub_file *f) {
    jr r = {buf, buf + len, 0};
    char key[16];
    int first = 1, k;
    if (jr_open(&r, '[')) return -1;
    while ((k = jr_next(&r, ']', &first)) == 1) {
        char path[HUB_NAME_MAX + 2] = "", type[8] = "", oid[66] = "";
        size_t plen = 0, olen = 0;
        uint64_t size = 0, lsize = 0;
        int has_size = 0, has_lsize = 0, f2 = 1, k2;
        if (jr_open(&r, '{')) return -1;
        while ((k2 = jr_next(&r, '}', &f2)) == 1) {
            if (jr_key(&r, key, sizeof key)) return -1;
            if (!strcmp(key, "path") && jr_peek(&r) == '"') {
                if (jr_string(&r, path, sizeof path, &plen)) return -1;
            } else if (!strcmp(key, "type") && jr_peek(&r) == '"') {
                if (jr_string(&r, type, sizeof type, NULL)) return -1;
            } else if (!strcmp(key, "size") && jr_peek(&r) != '"') {
                if (jr_number(&r, &size, &has_size)) return -1;
            } else if (!strcmp(key, "lfs") && jr_peek(&r) == '{') {
                int f3 = 1, k3;
                if (jr_open(&r, '{')) return -1;
                while ((k3 = jr_next(&r, '}', &f3)) == 1) {
                    if (jr_key(&r, key, sizeof key)) return -1;
                    if (!strcmp(key, "oid") && jr_peek(&r) == '"') {
                        if (jr_string(&r, oid, sizeof oid, &olen)) return -1;
                    } else if (!strcmp(key, "size") && jr_peek(&r) != '"') {
                        if (jr_number(&r, &lsize, &has_lsize)) return -1;
                    } else if (jr_skip(&r)) {
                        return -1;
                    }
                }
                r.depth--;
                if (k3 < 0) return -1;
            } else if (jr_skip(&r)) {
                return -1;
            }
        }
        r.depth--;
        if (k2 < 0) return -1;
        if (strcmp(type, "file") || plen != strlen(f->name) || strcmp(path, f->name)) continue;
        if (has_size && has_lsize && size != lsize) {
            fprintf(stderr, "error: the hub's tree gives %s two sizes (%llu and %llu)\n", f->name,
                    (unsigned long long)size, (unsigned long long)lsize);
            return -2;
        }
        if (has_lsize) size = lsize, has_size = 1;
        if (has_size) f->size = size, f->has_size = 1;
        int hex = olen == 64;
        for (size_t i = 0; hex && i < 64; i++) hex = isxdigit((unsigned char)oid[i]);
        if (hex) {
            for (size_t i = 0; i < 64; i++) f->sha256[i] = (char)tolower((unsigned char)oid[i]);
            f->sha256[64] = '\0';
        }
    }
    if (k < 0 || jr_done(&r)) return -1;
    return 0;
}

/* ---- choosing the file ---- */

/* tag occurs in name case-insensitively at a token boundary: not preceded
 * by a letter or digit, not followed by one or by '_' (so F16 is not BF16's,
 * Q4_K is not Q4_K_M's). */
static int tag_matches(const char *name, const char *tag) {
    size_t n = strlen(name), t = strlen(tag);
    for (size_t i = 0; i + t <= n; i++) {
        if (strncasecmp(name + i, tag, t)) continue;
        if (i > 0 && isalnum((unsigned char)name[i - 1])) continue;
        char after = name[i + t];
        if (after && (isalnum((unsigned char)after) || after == '_')) continue;
        return 1;
    }
    return 0;
}

/* "-00001-of-00003.gguf": one part of a split GGUF. */
static int is_split_part(const char *name) {
    size_t n = strlen(name);
    const char *s = name + n - 5;
    if (n < 5 + 15) return 0;
    s -= 15;
    return s[0] == '-' && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[5]) && !strncmp(s + 6, "-of-", 4) &&
           isdigit((unsigned char)s[10]) && isdigit((unsigned char)s[14]);
}

static void list_names(const char *const *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        fputs("  ", stderr);
        hub_print_safe(stderr, v[i]);
        fputc('\n', stderr);
    }
}

static int choose(const hub_repo *r, const names *all, const char *sel, hub_file *f) {
    const char **cand = malloc((all->n + 1) * sizeof *cand), **hit = malloc((all->n + 1) * sizeof *hit);
    size_t nc = 0, nh = 0;
    int rc = PULL_NOTFOUND;
    if (!cand || !hit) {
        fprintf(stderr, "error: out of memory\n");
        rc = PULL_ERR;
        goto out;
    }
    for (size_t i = 0; i < all->n; i++)
        if (name_pullable(all->v[i])) cand[nc++] = all->v[i];
    if (sel[0] && ends_gguf(sel)) {
        for (size_t i = 0; i < nc; i++)
            if (!strcmp(cand[i], sel)) hit[nh++] = cand[i];
        if (!nh) {
            fprintf(stderr, "error: %s/%s has no file '%s'; its .gguf files:\n", r->owner, r->repo, sel);
            list_names(cand, nc);
        }
    } else if (sel[0]) {
        for (size_t i = 0; i < nc; i++)
            if (tag_matches(cand[i], sel)) hit[nh++] = cand[i];
        size_t splits = 0;
        for (size_t i = 0; i < nh; i++) splits += (size_t)is_split_part(hit[i]);
        if (!nh) {
            fprintf(stderr, "error: no .gguf file of %s/%s matches '%s'; its .gguf files:\n", r->owner, r->repo, sel);
            list_names(cand, nc);
        } else if (nh > 1 && splits == nh) {
            fprintf(stderr,
                    "error: '%s' of %s/%s is split into %zu files; inferkv loads single-file GGUFs (merge them "
                    "with llama.cpp's llama-gguf-split --merge):\n",
                    sel, r->owner, r->repo, nh);
            list_names(hit, nh);
        } else if (nh > 1) {
            fprintf(stderr,
                    "error: '%s' matches %zu files of %s/%s; name one with %s/%s:FILE.gguf:\n", sel, nh, r->owner,
                    r->repo, r->owner, r->repo);
            list_names(hit, nh);
        }
    } else {
        memcpy(hit, cand, nc * sizeof *cand);
        nh = nc;
        if (!nh)
            fprintf(stderr, "error: %s/%s has no .gguf file in its top directory\n", r->owner, r->repo);
        else if (nh > 1) {
            fprintf(stderr, "error: %s/%s has %zu .gguf files; name one with %s/%s:QUANT or :FILE.gguf:\n",
                    r->owner, r->repo, nh, r->owner, r->repo);
            list_names(hit, nh);
        }
    }
    if (nh == 1) {
        snprintf(f->name, sizeof f->name, "%s", hit[0]);
        rc = PULL_OK;
    }
out:
    free(cand);
    free(hit);
    return rc;
}

int hub_resolve(const hub_repo *r, const char *sel, hub_file *f) {
    memset(f, 0, sizeof *f);
    size_t cap = strlen(r->endpoint) + 3 * strlen(r->revision) + 512;
    char *url = malloc(cap), what[512];
    membuf m = {0};
    names all = {0};
    int rc;
    if (!url) return PULL_ERR;

    /* 1. the listing: main's at /api/models/O/R, another revision's at
     *    /api/models/O/R/revision/REV */
    if (!strcmp(r->revision, "main"))
        rc = make_url(r, url, cap, "/api/models/", 0, r->owner, 0, "/", 0, r->repo, 0, (const char *)NULL);
    else
        rc = make_url(r, url, cap, "/api/models/", 0, r->owner, 0, "/", 0, r->repo, 0, "/revision/", 0, r->revision,
                      1, (const char *)NULL);
    if (rc) {
        rc = PULL_USAGE;
        goto out;
    }
    snprintf(what, sizeof what, "repository %s/%s (revision %s)", r->owner, r->repo, r->revision);
    if ((rc = hub_get(r, url, what, &m, 0))) goto out;
    int p = parse_listing(m.buf, m.len, &all);
    if (p) {
        if (p == -1) fprintf(stderr, "error: %s: the hub's listing is not the JSON expected\n", what);
        rc = PULL_ERR;
        goto out;
    }
    qsort(all.v, all.n, sizeof *all.v, cmp_str);
    if ((rc = choose(r, &all, sel, f))) goto out;

    /* 2. its size and SHA-256 from the tree listing of the top directory
     *    (a hub without one, 404, leaves them to the download's headers) */
    free(m.buf);
    memset(&m, 0, sizeof m);
    if (make_url(r, url, cap, "/api/models/", 0, r->owner, 0, "/", 0, r->repo, 0, "/tree/", 0, r->revision, 1,
                 (const char *)NULL)) {
        rc = PULL_USAGE;
        goto out;
    }
    snprintf(what, sizeof what, "tree of %s/%s (revision %s)", r->owner, r->repo, r->revision);
    rc = hub_get(r, url, what, &m, 1);
    if (rc == -1) {
        rc = PULL_OK;
        goto out;
    }
    if (rc) goto out;
    p = parse_tree(m.buf, m.len, f);
    if (p) {
        if (p == -1) fprintf(stderr, "error: %s: the hub's tree listing is not the JSON expected\n", what);
        rc = PULL_ERR;
    }
out:
    names_free(&all);
    free(m.buf);
    free(url);
    return rc;
}
