/* resp.c - incremental parser for client requests (RESP multibulk + inline).
 *
 * Errors use Redis's exact texts because clients and tests match on them.
 * Nothing the client claims is trusted: a multibulk count only reserves
 * argv space for at most 1024 arguments up front, a bulk length is checked
 * against proto-max-bulk-len before it is waited for, and a header line that
 * never ends is refused once it passes 64 KB. */
#include "resp.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define ARGV_PREALLOC_MAX 1024
#define UNAUTH_MULTIBULK_MAX 10
#define UNAUTH_BULK_MAX 16384

void resp_parser_init(resp_parser *p) {
    memset(p, 0, sizeof *p);
    p->bulk = -1;
}

void resp_free_args(dstr *argv, int argc) {
    for (int i = 0; i < argc; i++) dstr_free(argv[i]);
    km_free(argv);
}

void resp_parser_reset(resp_parser *p) {
    resp_free_args(p->argv, p->argc);
    resp_parser_init(p);
}

static int push_arg(resp_parser *p, const char *s, size_t len) {
    if (p->argc == p->argcap) {
        int cap = p->argcap ? p->argcap * 2 : 8;
        dstr *n = km_realloc(p->argv, sizeof(dstr) * (size_t)cap);
        if (!n) return -1;
        p->argv = n;
        p->argcap = cap;
    }
    dstr a = dstr_newlen(s, len);
    if (!a) return -1;
    p->argv[p->argc++] = a;
    return 0;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char unescape(char c) {
    switch (c) {
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'b': return '\b';
    case 'a': return '\a';
    default: return c;
    }
}

/* Reads one quoted token starting at line[*i] (the quote); appends to cur.
 * Returns 0, or -1 on unbalanced quotes / OOM. */
static int read_quoted(const char *line, size_t len, size_t *i, dstr *cur) {
    char q = line[*i];
    size_t k = *i + 1;
    for (;;) {
        if (k >= len) return -1;
        char ch = line[k];
        char out;
        if (q == '"' && ch == '\\' && k + 3 < len && line[k + 1] == 'x' &&
            hexval((unsigned char)line[k + 2]) >= 0 && hexval((unsigned char)line[k + 3]) >= 0) {
            out = (char)(hexval((unsigned char)line[k + 2]) * 16 + hexval((unsigned char)line[k + 3]));
            k += 4;
        } else if (ch == '\\' && k + 1 < len && (q == '"' || line[k + 1] == '\'')) {
            out = q == '"' ? unescape(line[k + 1]) : '\'';
            k += 2;
        } else if (ch == q) {
            /* the closing quote must end the token */
            if (k + 1 < len && !isspace((unsigned char)line[k + 1])) return -1;
            *i = k + 1;
            return 0;
        } else {
            out = ch;
            k++;
        }
        dstr n = dstr_catlen(*cur, &out, 1);
        if (!n) return -1;
        *cur = n;
    }
}

int resp_split_args(const char *line, size_t len, dstr **argv_out) {
    resp_parser tmp;
    resp_parser_init(&tmp);
    size_t i = 0;
    for (;;) {
        while (i < len && isspace((unsigned char)line[i])) i++;
        if (i >= len) break;
        dstr cur = dstr_empty();
        if (!cur) goto fail;
        while (i < len && !isspace((unsigned char)line[i])) {
            if (line[i] == '"' || line[i] == '\'') {
                if (read_quoted(line, len, &i, &cur) < 0) {
                    dstr_free(cur);
                    goto fail;
                }
                break;
            }
            dstr n = dstr_catlen(cur, &line[i], 1);
            if (!n) {
                dstr_free(cur);
                goto fail;
            }
            cur = n;
            i++;
        }
        int r = push_arg(&tmp, cur, dstr_len(cur));
        dstr_free(cur);
        if (r < 0) goto fail;
    }
    *argv_out = tmp.argv;
    return tmp.argc;
fail:
    resp_free_args(tmp.argv, tmp.argc);
    *argv_out = NULL;
    return -1;
}

static int parse_inline(resp_parser *p, const char *buf, size_t len, size_t *pos,
                        char *err, size_t errlen) {
    const char *start = buf + *pos;
    size_t avail = len - *pos;
    const char *nl = memchr(start, '\n', avail);
    if (!nl) {
        if (avail > RESP_INLINE_MAX) {
            snprintf(err, errlen, "Protocol error: too big inline request");
            return RESP_PROTO_ERR;
        }
        return RESP_NEED_MORE;
    }
    size_t linelen = (size_t)(nl - start);
    if (linelen && start[linelen - 1] == '\r') linelen--;
    dstr *argv;
    int argc = resp_split_args(start, linelen, &argv);
    if (argc < 0) {
        snprintf(err, errlen, "Protocol error: unbalanced quotes in request");
        return RESP_PROTO_ERR;
    }
    *pos += (size_t)(nl - start) + 1;
    p->type = 0;
    if (argc == 0) {
        km_free(argv);
        return RESP_EMPTY;
    }
    p->argv = argv;
    p->argc = p->argcap = argc;
    return RESP_COMMAND;
}

/* Finds the "\r\n"-terminated header at buf[*pos] and parses the number
 * after its type byte.  0 need more, 1 parsed, -1 not a valid number,
 * -2 header line too long. */
static int read_header(const char *buf, size_t len, size_t *pos, long long *out) {
    const char *start = buf + *pos;
    size_t avail = len - *pos;
    const char *cr = memchr(start, '\r', avail);
    if (!cr) return avail > RESP_INLINE_MAX ? -2 : 0;
    if ((size_t)(cr - start) + 1 >= avail) return 0; /* the '\n' not yet here */
    if (!str_to_ll(start + 1, (size_t)(cr - start) - 1, out)) return -1;
    *pos += (size_t)(cr - start) + 2;
    return 1;
}

static void sanitize(char *s) {
    for (; *s; s++)
        if (*s == '\r' || *s == '\n') *s = ' ';
}

static int start_multibulk(resp_parser *p, const char *buf, size_t len, size_t *pos,
                           const resp_limits *lim, char *err, size_t errlen) {
    long long n;
    int r = read_header(buf, len, pos, &n);
    if (r == 0) return RESP_NEED_MORE;
    if (r == -2) {
        snprintf(err, errlen, "Protocol error: too big mbulk count string");
        return RESP_PROTO_ERR;
    }
    if (r < 0 || n > INT_MAX) {
        snprintf(err, errlen, "Protocol error: invalid multibulk length");
        return RESP_PROTO_ERR;
    }
    if (n > UNAUTH_MULTIBULK_MAX && lim->unauthenticated) {
        snprintf(err, errlen, "Protocol error: unauthenticated multibulk length");
        return RESP_PROTO_ERR;
    }
    p->type = 0;
    if (n <= 0) return RESP_EMPTY;
    p->type = 2;
    p->multibulk = n;
    p->bulk = -1;
    int want = n > ARGV_PREALLOC_MAX ? ARGV_PREALLOC_MAX : (int)n;
    dstr *a = km_malloc(sizeof(dstr) * (size_t)want);
    if (!a) return RESP_OOM;
    p->argv = a;
    p->argcap = want;
    p->argc = 0;
    return RESP_COMMAND; /* caller continues with the bulks */
}

static int read_bulks(resp_parser *p, const char *buf, size_t len, size_t *pos,
                      const resp_limits *lim, char *err, size_t errlen) {
    while (p->multibulk > 0) {
        if (p->bulk == -1) {
            if (*pos >= len) return RESP_NEED_MORE;
            if (buf[*pos] != '$') {
                const char *cr = memchr(buf + *pos, '\r', len - *pos);
                if (!cr) {
                    if (len - *pos > RESP_INLINE_MAX) goto too_big;
                    return RESP_NEED_MORE;
                }
                snprintf(err, errlen, "Protocol error: expected '$', got '%c'", buf[*pos]);
                sanitize(err);
                return RESP_PROTO_ERR;
            }
            long long n;
            int r = read_header(buf, len, pos, &n);
            if (r == 0) return RESP_NEED_MORE;
            if (r == -2) goto too_big;
            if (r < 0 || n < 0 || n > lim->max_bulk) {
                snprintf(err, errlen, "Protocol error: invalid bulk length");
                return RESP_PROTO_ERR;
            }
            if (n > UNAUTH_BULK_MAX && lim->unauthenticated) {
                snprintf(err, errlen, "Protocol error: unauthenticated bulk length");
                return RESP_PROTO_ERR;
            }
            p->bulk = n;
        }
        /* The two bytes after the data are skipped unchecked, as Redis does. */
        if (len - *pos < (size_t)p->bulk + 2) return RESP_NEED_MORE;
        if (push_arg(p, buf + *pos, (size_t)p->bulk) < 0) return RESP_OOM;
        *pos += (size_t)p->bulk + 2;
        p->bulk = -1;
        p->multibulk--;
    }
    p->type = 0;
    return RESP_COMMAND;
too_big:
    snprintf(err, errlen, "Protocol error: too big bulk count string");
    return RESP_PROTO_ERR;
}

int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *pos,
               const resp_limits *lim, char *err, size_t errlen) {
    if (*pos >= len) return RESP_NEED_MORE;
    if (p->type == 0) {
        if (buf[*pos] != '*') return parse_inline(p, buf, len, pos, err, errlen);
        int r = start_multibulk(p, buf, len, pos, lim, err, errlen);
        if (r != RESP_COMMAND) return r;
    }
    return read_bulks(p, buf, len, pos, lim, err, errlen);
}
