/* json.c - the JSON parser of json.h: recursive descent over the bytes,
 * every length and escape checked, errors with a message instead of a crash
 * (tokenizer.json files and chat messages come from outside). */
#include "text/json.h"

#include "text/unicode.h"
#include "kernels/ialloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    jnode *nodes;
    uint32_t n, cap;
    char *arena;
    size_t alen;
    const char *p, *end;
    char *err;
    size_t errlen;
} jparser;

static int64_t parse_value(jparser *j, int depth);

#define J_MAX_DEPTH 64

static int jfail(jparser *j, const char *fmt, ...) {
    if (j->err && j->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->err, j->errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void skip_ws(jparser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

static int64_t new_node(jparser *j, uint8_t type) {
    if (j->n == j->cap) {
        uint32_t nc = j->cap ? j->cap * 2 : 1024;
        if (nc < j->cap || nc > (1u << 28)) return jfail(j, "json: too many values");
        jnode *nn = ie_realloc(j->nodes, sizeof(jnode) * nc);
        if (!nn) return jfail(j, "json: out of memory");
        j->nodes = nn;
        j->cap = nc;
    }
    jnode *x = &j->nodes[j->n];
    memset(x, 0, sizeof *x);
    x->type = type;
    return j->n++;
}

static int hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* Decodes a string (j->p after the opening quote) into the arena.  The
 * decoded form is never longer than the source, so the arena cannot overflow. */
static int parse_string(jparser *j, uint32_t *off, uint32_t *len) {
    *off = (uint32_t)j->alen;
    char *o = j->arena + j->alen;
    size_t n = 0;
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) return jfail(j, "json: control character in a string");
        if (c != '\\') {
            o[n++] = (char)c;
            continue;
        }
        if (j->p >= j->end) break;
        c = (unsigned char)*j->p++;
        switch (c) {
        case '"': case '\\': case '/': o[n++] = (char)c; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (j->end - j->p < 4 || hex4(j->p, &cp) < 0) return jfail(j, "json: bad \\u escape");
            j->p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u' && hex4(j->p + 2, &lo) == 0 &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    j->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    cp = 0xFFFD; /* a lone surrogate */
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            n += utf8_encode(cp, o + n);
            break;
        }
        default: return jfail(j, "json: bad escape \\%c", c);
        }
    }
    if (j->p >= j->end) return jfail(j, "json: unterminated string");
    j->p++;
    if (n > UINT32_MAX) return jfail(j, "json: string too long");
    *len = (uint32_t)n;
    j->alen += n;
    return 0;
}


static int64_t parse_container(jparser *j, int depth, int obj) {
    int64_t self = new_node(j, obj ? J_OBJ : J_ARR);
    if (self < 0) return -1;
    j->p++;
    skip_ws(j);
    uint32_t last = 0, count = 0;
    if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
        j->p++;
        return self;
    }
    for (;;) {
        skip_ws(j);
        int64_t key = -1;
        if (obj) {
            if (j->p >= j->end || *j->p != '"') return jfail(j, "json: expected a key");
            j->p++;
            if ((key = new_node(j, J_STR)) < 0) return -1;
            uint32_t off, len;
            if (parse_string(j, &off, &len) < 0) return -1;
            j->nodes[key].off = off;
            j->nodes[key].len = len;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':') return jfail(j, "json: expected ':'");
            j->p++;
        }
        int64_t val = parse_value(j, depth + 1);
        if (val < 0) return -1;
        int64_t head = obj ? key : val;
        if (obj) j->nodes[key].next = (uint32_t)val;
        if (count == 0) j->nodes[self].first = (uint32_t)head;
        else j->nodes[last].next = (uint32_t)head;
        last = (uint32_t)val;
        count++;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
            j->p++;
            break;
        }
        return jfail(j, "json: expected ',' or '%c'", obj ? '}' : ']');
    }
    j->nodes[self].count = count;
    return self;
}

static int64_t parse_value(jparser *j, int depth) {
    if (depth > J_MAX_DEPTH) return jfail(j, "json: nested too deeply");
    skip_ws(j);
    if (j->p >= j->end) return jfail(j, "json: unexpected end");
    char c = *j->p;
    if (c == '{' || c == '[') return parse_container(j, depth, c == '{');
    if (c == '"') {
        int64_t s = new_node(j, J_STR);
        if (s < 0) return -1;
        j->p++;
        uint32_t off, len;
        if (parse_string(j, &off, &len) < 0) return -1;
        j->nodes[s].off = off;
        j->nodes[s].len = len;
        return s;
    }
    static const struct { const char *w; uint8_t t; } words[] = {{"null", J_NULL}, {"true", J_TRUE}, {"false", J_FALSE}};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(words[i].w);
        if ((size_t)(j->end - j->p) >= l && memcmp(j->p, words[i].w, l) == 0) {
            j->p += l;
            return new_node(j, words[i].t);
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char buf[64];
        size_t n = 0;
        while (j->p < j->end && n < sizeof buf - 1 &&
               (strchr("+-.eE", *j->p) || (*j->p >= '0' && *j->p <= '9')))
            buf[n++] = *j->p++;
        buf[n] = 0;
        char *e;
        double d = strtod(buf, &e);
        if (e != buf + n) return jfail(j, "json: bad number");
        int64_t x = new_node(j, J_NUM);
        if (x >= 0) j->nodes[x].num = d;
        return x;
    }
    return jfail(j, "json: unexpected character '%c'", c);
}

/* ---- tree access --------------------------------------------------------------- */


int json_str_is(const jdoc *d, const jnode *x, const char *s) {
    return x && x->type == J_STR && x->len == strlen(s) && memcmp(d->arena + x->off, s, x->len) == 0;
}

jnode *json_get(const jdoc *d, const jnode *obj, const char *key) {
    if (!obj || obj->type != J_OBJ) return NULL;
    uint32_t k = obj->first;
    for (uint32_t i = 0; i < obj->count; i++) {
        jnode *kn = &d->nodes[k], *vn = &d->nodes[kn->next];
        if (json_str_is(d, kn, key)) return vn;
        k = vn->next;
    }
    return NULL;
}


int json_parse(const char *buf, size_t len, jdoc *d, char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    if (len >= (size_t)UINT32_MAX) {
        snprintf(err, errlen, "json: document too large");
        return -1;
    }
    jparser j = {0};
    j.p = buf;
    j.end = buf + len;
    j.err = err;
    j.errlen = errlen;
    j.arena = ie_malloc(len + 1);
    if (!j.arena) {
        snprintf(err, errlen, "json: out of memory");
        return -1;
    }
    int64_t root = parse_value(&j, 0);
    if (root == 0) {
        skip_ws(&j);
        if (j.p != j.end) root = jfail(&j, "json: trailing bytes after the document");
    }
    if (root != 0) {
        free(j.nodes);
        free(j.arena);
        return -1;
    }
    d->nodes = j.nodes;
    d->n = j.n;
    d->arena = j.arena;
    return 0;
}

void json_free(jdoc *d) {
    if (!d) return;
    free(d->nodes);
    free(d->arena);
    d->nodes = NULL;
    d->arena = NULL;
}
