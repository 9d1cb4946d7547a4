/* jsonfield.c - one string field of a JSON object, for INFER.RAG's chunks.
 *
 * A vector-set element's attributes are a JSON object written by a client
 * (VADD ... SETATTR, VSETATTR), so they are read as hostile: the walk is
 * iterative (nesting depth costs no stack), every read is bounded by the
 * length, and anything malformed simply has no field.  Only the top-level
 * object's members are looked at; nested values are skipped by matching
 * brackets outside strings.  The first member with the name wins.  String
 * escapes are decoded (\uXXXX with surrogate pairs to UTF-8; a lone
 * surrogate becomes U+FFFD), so the chunk handed to the prompt is the text
 * the client meant, not its JSON spelling. */
#include "infercmd.h"

#include <stdlib.h>
#include <string.h>

typedef struct jcur {
    const char *p;
    size_t len, i;
} jcur;

static void ws(jcur *c) {
    while (c->i < c->len && (c->p[c->i] == ' ' || c->p[c->i] == '\t' || c->p[c->i] == '\n' || c->p[c->i] == '\r'))
        c->i++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char h = p[k];
        v <<= 4;
        if (h >= '0' && h <= '9') v |= (unsigned)(h - '0');
        else if (h >= 'a' && h <= 'f') v |= (unsigned)(h - 'a' + 10);
        else if (h >= 'A' && h <= 'F') v |= (unsigned)(h - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at c->i (on its opening quote).  With out set, decodes into
 * out (room for the raw length + 1 is always enough: no escape decodes
 * longer than it is spelled).  Returns the decoded length, or -1 when
 * malformed; c->i ends after the closing quote. */
static long long string(jcur *c, char *out) {
    if (c->i >= c->len || c->p[c->i] != '"') return -1;
    size_t i = c->i + 1, n = 0;
    while (i < c->len) {
        unsigned char ch = (unsigned char)c->p[i];
        if (ch == '"') {
            c->i = i + 1;
            if (out) out[n] = 0;
            return (long long)n;
        }
        if (ch < 0x20) return -1;
        if (ch != '\\') {
            if (out) out[n] = (char)ch;
            n++, i++;
            continue;
        }
        if (i + 1 >= c->len) return -1;
        char e = c->p[i + 1];
        const char *simple = "\"\\/bfnrt", *means = "\"\\/\b\f\n\r\t";
        const char *k = e ? strchr(simple, e) : NULL;
        if (k) {
            if (out) out[n] = means[k - simple];
            n++, i += 2;
            continue;
        }
        if (e != 'u' || i + 6 > c->len) return -1;
        unsigned cp, lo;
        if (hex4(c->p + i + 2, &cp) < 0) return -1;
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= c->len && c->p[i] == '\\' && c->p[i + 1] == 'u' &&
            hex4(c->p + i + 2, &lo) == 0 && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        char tmp[4];
        size_t w = put_utf8(out ? out + n : tmp, cp);
        n += w;
    }
    return -1;
}

/* Skips one value of any kind at c->i.  0, or -1 when malformed. */
static int skip_value(jcur *c) {
    ws(c);
    if (c->i >= c->len) return -1;
    char ch = c->p[c->i];
    if (ch == '"') return string(c, NULL) < 0 ? -1 : 0;
    if (ch == '{' || ch == '[') {
        size_t depth = 0;
        while (c->i < c->len) {
            ch = c->p[c->i];
            if (ch == '"') {
                if (string(c, NULL) < 0) return -1;
                continue;
            }
            if (ch == '{' || ch == '[') depth++;
            else if (ch == '}' || ch == ']') {
                if (depth == 0) return -1;
                if (--depth == 0) {
                    c->i++;
                    return 0;
                }
            }
            c->i++;
        }
        return -1;
    }
    /* numbers, true, false, null: up to the next delimiter */
    size_t start = c->i;
    while (c->i < c->len && !strchr(",}] \t\r\n", c->p[c->i])) c->i++;
    return c->i > start ? 0 : -1;
}

int ic_json_string_field(const char *json, size_t len, const char *name, size_t nlen, char **out, size_t *olen) {
    *out = NULL;
    *olen = 0;
    if (!json) return 0;
    jcur c = {json, len, 0};
    ws(&c);
    if (c.i >= c.len || json[c.i] != '{') return 0;
    c.i++;
    ws(&c);
    if (c.i < c.len && json[c.i] == '}') return 0;
    while (c.i < c.len) {
        ws(&c);
        size_t kstart = c.i;
        long long kl = string(&c, NULL);
        if (kl < 0) return 0;
        int match = 0;
        if ((size_t)kl == nlen) {
            /* decode the key to compare it: escapes may spell the name */
            char *k = infer_malloc(c.i - kstart + 1);
            if (!k) return -1;
            jcur kc = {json, len, kstart};
            string(&kc, k);
            match = memcmp(k, name, nlen) == 0;
            free(k);
        }
        ws(&c);
        if (c.i >= c.len || json[c.i] != ':') return 0;
        c.i++;
        ws(&c);
        if (match) {
            if (c.i >= c.len || json[c.i] != '"') return 0; /* not a string */
            size_t vstart = c.i;
            long long vl = string(&c, NULL);
            if (vl < 0) return 0;
            char *v = infer_malloc(c.i - vstart + 1);
            if (!v) return -1;
            jcur vc = {json, len, vstart};
            string(&vc, v);
            *out = v;
            *olen = (size_t)vl;
            return 1;
        }
        if (skip_value(&c) < 0) return 0;
        ws(&c);
        if (c.i >= c.len) return 0;
        if (json[c.i] == '}') return 0;
        if (json[c.i] != ',') return 0;
        c.i++;
    }
    return 0;
}
