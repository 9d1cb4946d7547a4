/* vfilter.c - VSIM FILTER expressions (vfilter.h), and the one JSON scanner
 * that both matching and attribute validation run on.
 *
 * The language is Redis 8's (modules/vector-sets: the README's "FILTER
 * expressions capabilities", expr.c, fastjson.c), reimplemented here:
 *   - values are numbers (double), byte strings, null, and tuples (array
 *     literals, JSON arrays) for `in`; true and false are 1 and 0;
 *   - precedence, loosest first: or ||, and &&, then the comparisons and
 *     `in` on one level (left to right), + -, * / %, ** (right to left),
 *     and the prefix not ! binding tightest of all;
 *   - `-` is a sign only as the first character of a number literal in
 *     operand position, so -2 ** 2 is 4 and -.x is a syntax error;
 *   - == and `in` on tuples compare two strings as bytes, two numbers as
 *     numbers, null equal only to null, anything else as numbers; < <= > >=
 *     and arithmetic always convert to numbers, where a string that is not
 *     entirely a number (strtod) is 0; x/0 and x%0 give IEEE inf and NaN,
 *     and NaN counts as true (it is not 0);
 *   - `.name` reads the top-level key name of the element's JSON object.
 *     If any field the expression reads is missing or holds an object, or
 *     the attributes are not one valid JSON object, the element does not
 *     match: never a runtime error.
 *
 * Why a postfix program: the graph search runs the filter for every
 * candidate it visits, from several threads.  Compiling once leaves an
 * immutable list of constant pushes, field pushes and operators; a match is
 * one pass over the JSON, which validates it and captures only the fields
 * the program reads (the first occurrence of a key wins, as in Redis), then
 * one pass over the program with a value stack on the C stack: nothing is
 * allocated and nothing shared is written.  Strings taken from the JSON
 * point into its text; their escapes are decoded only when compared.
 *
 * Both parsers are loops over explicit, bounded stacks, never recursion,
 * so '((((...' or '[[[[...' cannot exhaust the C stack. */
#include "vfilter.h"

#include "vmem.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VF_MAX_LEN 65536  /* bytes of an expression */
#define VF_MAX_DEPTH 128  /* pending operators, and values on the stack */
#define VF_MAX_FIELDS 64  /* distinct fields one expression reads */
#define VJ_MAX_DEPTH 128  /* nesting of JSON arrays and objects */
#define NUM_MAX 256       /* a string or number this long is no number (Redis's buffer) */

/* ---- values ------------------------------------------------------------- */

enum { V_NONE, V_NUM, V_STR, V_NULL, V_TUPLE, V_JARR, V_BAD };

/* V_STR: u.s/len are the bytes, or with esc the raw text of a JSON string
 * whose escapes are still to decode.  V_TUPLE: len constants at u.tup.
 * V_JARR: the JSON text of an array, '[' to ']', already validated. */
typedef struct val {
    uint8_t kind;
    uint8_t esc;
    size_t len;
    union {
        double num;
        const char *s;
        const struct val *tup;
        size_t idx; /* V_TUPLE while compiling: first element */
    } u;
} val;

static val num_val(double d) {
    val v;
    v.kind = V_NUM;
    v.esc = 0;
    v.len = 0;
    v.u.num = d;
    return v;
}

/* ---- program ------------------------------------------------------------ */

enum {
    OP_CONST, OP_FIELD, OP_NOT, OP_POW, OP_MUL, OP_DIV, OP_MOD, OP_ADD, OP_SUB,
    OP_GT, OP_GE, OP_LT, OP_LE, OP_EQ, OP_NE, OP_IN, OP_AND, OP_OR, OP_PAREN
};

typedef struct {
    uint32_t op, arg;
} instr;

typedef struct {
    const char *name;
    size_t len;
} field;

struct vfilter {
    instr *code;
    size_t ncode;
    val *consts;
    size_t nconsts;
    val *elems; /* elements of tuple constants */
    size_t nelems;
    char *pool; /* decoded string literals and field names */
    size_t nfields;
    field fields[VF_MAX_FIELDS];
};

typedef struct {
    const char *text;
    uint8_t len, op;
} opdef;

/* Longest match wins, so "**" before "*" does not matter; word operators
 * need no word boundary after them ("1and 2" is valid in Redis too). */
static const opdef OPS[] = {
    {"or", 2, OP_OR},  {"||", 2, OP_OR},  {"and", 3, OP_AND}, {"&&", 2, OP_AND},
    {">", 1, OP_GT},   {">=", 2, OP_GE},  {"<", 1, OP_LT},    {"<=", 2, OP_LE},
    {"==", 2, OP_EQ},  {"!=", 2, OP_NE},  {"in", 2, OP_IN},   {"+", 1, OP_ADD},
    {"-", 1, OP_SUB},  {"*", 1, OP_MUL},  {"/", 1, OP_DIV},   {"%", 1, OP_MOD},
    {"**", 2, OP_POW}, {"!", 1, OP_NOT},  {"not", 3, OP_NOT},
};

static const uint8_t PREC[] = {
    [OP_OR] = 0, [OP_AND] = 1, [OP_GT] = 2, [OP_GE] = 2, [OP_LT] = 2, [OP_LE] = 2,
    [OP_EQ] = 2, [OP_NE] = 2,  [OP_IN] = 2, [OP_ADD] = 3, [OP_SUB] = 3, [OP_MUL] = 4,
    [OP_DIV] = 4, [OP_MOD] = 4, [OP_POW] = 5, [OP_NOT] = 6,
};

/* ---- character classes (ASCII only: no locale may change the language) -- */

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_ident(int c) { return is_alpha(c) || is_digit(c) || c == '_'; }
static int is_selector(int c) { return is_ident(c) || c == '-'; }
static int is_space(int c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
static int is_jspace(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static long hex4(const char *p) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* p holds avail bytes after a "\u".  A surrogate pair becomes one code
 * point; a lone surrogate becomes U+FFFD so that it compares like itself
 * on both sides of ==.  0 when the four hex digits are not there. */
static int decode_u(const char *p, size_t avail, uint32_t *cp, size_t *used) {
    long hi = avail >= 4 ? hex4(p) : -1;
    if (hi < 0) return 0;
    *used = 4;
    *cp = (uint32_t)hi;
    if (hi >= 0xD800 && hi <= 0xDBFF && avail >= 10 && p[4] == '\\' && p[5] == 'u') {
        long lo = hex4(p + 6);
        if (lo >= 0xDC00 && lo <= 0xDFFF) {
            *cp = 0x10000 + (((uint32_t)hi - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            *used = 10;
            return 1;
        }
    }
    if (hi >= 0xD800 && hi <= 0xDFFF) *cp = 0xFFFD;
    return 1;
}

static size_t utf8_put(uint32_t cp, unsigned char *o) {
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- decoding JSON strings lazily --------------------------------------- */

/* Yields the decoded bytes of a V_STR one at a time, so that comparing a
 * string with escapes needs no buffer.  The text was validated by jscan. */
typedef struct {
    const char *p, *end;
    unsigned char buf[4];
    uint8_t nb, ib, esc;
} sdec;

static void sdec_init(sdec *d, const val *v) {
    d->p = v->u.s;
    d->end = v->u.s + v->len;
    d->nb = d->ib = 0;
    d->esc = v->esc;
}

static int sdec_next(sdec *d) {
    if (d->ib < d->nb) return d->buf[d->ib++];
    if (d->p >= d->end) return -1;
    unsigned char c = (unsigned char)*d->p++;
    if (c != '\\' || !d->esc || d->p >= d->end) return c;
    c = (unsigned char)*d->p++;
    switch (c) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': {
        uint32_t cp;
        size_t used;
        if (!decode_u(d->p, (size_t)(d->end - d->p), &cp, &used)) return 'u';
        d->p += used;
        d->nb = (uint8_t)utf8_put(cp, d->buf);
        d->ib = 1;
        return d->buf[0];
    }
    default: return c; /* \" \\ \/ */
    }
}

static int str_eq(const val *a, const val *b) {
    if (!a->esc && !b->esc) return a->len == b->len && memcmp(a->u.s, b->u.s, a->len) == 0;
    sdec x, y;
    sdec_init(&x, a);
    sdec_init(&y, b);
    for (;;) {
        int c = sdec_next(&x);
        if (c != sdec_next(&y)) return 0;
        if (c < 0) return 1;
    }
}

/* Whether needle occurs in hay (Redis: `"foo" in "barfoobar"`). */
static int str_contains(const val *hay, const val *needle) {
    if (!hay->esc && !needle->esc) {
        if (needle->len == 0) return 1;
        const char *h = hay->u.s, *end = hay->u.s + hay->len;
        while ((size_t)(end - h) >= needle->len) {
            const char *q = memchr(h, needle->u.s[0], (size_t)(end - h) - needle->len + 1);
            if (!q) return 0;
            if (memcmp(q, needle->u.s, needle->len) == 0) return 1;
            h = q + 1;
        }
        return 0;
    }
    sdec h;
    sdec_init(&h, hay);
    for (;;) {
        sdec hh = h, nn;
        sdec_init(&nn, needle);
        for (;;) {
            int c = sdec_next(&nn);
            if (c < 0) return 1;
            if (sdec_next(&hh) != c) break;
        }
        if (sdec_next(&h) < 0) return 0;
    }
}

/* ---- numbers ------------------------------------------------------------ */

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A validated JSON number, shorter than NUM_MAX.  Most attribute numbers
 * have at most 15 significant digits and a small exponent: then the digits
 * as an integer and the power of ten are both exact doubles and one
 * multiplication or division rounds correctly (Clinger's fast path), well
 * ahead of strtod.  Anything else goes to strtod. */
static double json_number(const char *s, size_t n) {
    size_t i = 0;
    if (n == 0 || n >= NUM_MAX) return 0; /* never: capture refuses these */
    int neg = 0, digits = 0, exp10 = 0;
    uint64_t m = 0;
    if (s[i] == '-') {
        neg = 1;
        i++;
    }
    for (; i < n && is_digit(s[i]); i++) {
        if (m || s[i] != '0') digits++;
        m = m * 10 + (uint64_t)(s[i] - '0');
        if (digits > 15) goto slow;
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && is_digit(s[i]); i++) {
            if (m || s[i] != '0') digits++;
            m = m * 10 + (uint64_t)(s[i] - '0');
            exp10--;
            if (digits > 15) goto slow;
        }
    }
    if (i < n) { /* an exponent */
        int eneg = 0, e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        for (; i < n; i++) {
            e = e * 10 + (s[i] - '0');
            if (e > 1000) goto slow;
        }
        exp10 += eneg ? -e : e;
    }
    if (exp10 >= -22 && exp10 <= 22) {
        double d = (double)m;
        d = exp10 < 0 ? d / POW10[-exp10] : d * POW10[exp10];
        return neg ? -d : d;
    }
slow:;
    char buf[NUM_MAX];
    memcpy(buf, s, n);
    buf[n] = 0;
    return strtod(buf, NULL);
}

/* Redis's string-to-number rule: the whole string through strtod (leading
 * blanks, hex, inf and nan included), else 0; 256 bytes or more are 0. */
static double str_number(const val *v) {
    char buf[NUM_MAX];
    size_t n = 0;
    if (!v->esc) {
        if (v->len >= NUM_MAX) return 0;
        n = v->len;
        if (n) memcpy(buf, v->u.s, n);
    } else {
        sdec d;
        sdec_init(&d, v);
        for (int c; (c = sdec_next(&d)) >= 0;) {
            if (n == NUM_MAX - 1) return 0;
            buf[n++] = (char)c;
        }
    }
    if (n && memchr(buf, 0, n)) return 0;
    buf[n] = 0;
    char *end;
    double d = strtod(buf, &end);
    return *end ? 0 : d;
}

/* ---- evaluation --------------------------------------------------------- */

static double to_num(const val *v) {
    if (v->kind == V_NUM) return v->u.num;
    if (v->kind == V_STR) return str_number(v);
    return 0;
}

static int truthy(const val *v) {
    switch (v->kind) {
    case V_NUM: return v->u.num != 0;
    case V_STR: return v->len != 0; /* an escape never decodes to nothing */
    case V_NULL: return 0;
    default: return 1; /* tuples, even empty ones */
    }
}

static int equal(const val *a, const val *b) {
    if (a->kind == V_STR && b->kind == V_STR) return str_eq(a, b);
    if (a->kind == V_NUM && b->kind == V_NUM) return a->u.num == b->u.num;
    if (a->kind == V_NULL || b->kind == V_NULL) return a->kind == b->kind;
    return to_num(a) == to_num(b);
}

/* Skips a validated JSON string (p at its quote); returns the position
 * after it, with *esc set when it holds a backslash. */
static const char *skip_jstring(const char *p, const char *end, int *esc) {
    *esc = 0;
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\') {
            *esc = 1;
            p++;
        }
    return p < end ? p + 1 : end;
}

/* Next element of a validated JSON array: *pp is after '[' or after the
 * previous element.  0 at the closing ']'.  Objects never get here: a
 * field whose array holds one was made unusable when it was captured. */
static int jarr_next(const char **pp, const char *end, val *out) {
    const char *p = *pp;
    while (p < end && (is_jspace((unsigned char)*p) || *p == ',')) p++;
    if (p >= end || *p == ']' || *p == '{') return 0;
    out->esc = 0;
    switch (*p) {
    case '"': {
        int esc;
        const char *q = skip_jstring(p, end, &esc);
        out->kind = V_STR;
        out->esc = (uint8_t)esc;
        out->u.s = p + 1;
        out->len = (size_t)(q - p) - 2;
        p = q;
        break;
    }
    case '[': {
        const char *q = p + 1;
        int depth = 1, esc;
        while (q < end && depth) {
            if (*q == '"') {
                q = skip_jstring(q, end, &esc);
                continue;
            }
            if (*q == '[') depth++;
            else if (*q == ']') depth--;
            q++;
        }
        out->kind = V_JARR;
        out->u.s = p;
        out->len = (size_t)(q - p);
        p = q;
        break;
    }
    case 't': *out = num_val(1); p += 4; break;
    case 'f': *out = num_val(0); p += 5; break;
    case 'n': out->kind = V_NULL; out->len = 0; p += 4; break;
    default: {
        const char *q = p;
        while (q < end && (is_digit(*q) || *q == '-' || *q == '+' || *q == '.' || *q == 'e' || *q == 'E')) q++;
        *out = num_val(json_number(p, (size_t)(q - p)));
        p = q;
    }
    }
    *pp = p > end ? end : p;
    return 1;
}

static int op_in(const val *a, const val *b) {
    if (b->kind == V_TUPLE) {
        for (size_t i = 0; i < b->len; i++)
            if (equal(a, &b->u.tup[i])) return 1;
        return 0;
    }
    if (b->kind == V_JARR) {
        const char *p = b->u.s + 1, *end = b->u.s + b->len;
        val e;
        while (jarr_next(&p, end, &e))
            if (equal(a, &e)) return 1;
        return 0;
    }
    if (a->kind == V_STR && b->kind == V_STR) return str_contains(b, a);
    return 0;
}

static int run(const vfilter *f, const val *slots) {
    val st[VF_MAX_DEPTH + 1];
    size_t sp = 0;
    for (size_t i = 0; i < f->ncode; i++) {
        instr in = f->code[i];
        if (in.op == OP_CONST) {
            st[sp++] = f->consts[in.arg];
            continue;
        }
        if (in.op == OP_FIELD) {
            st[sp++] = slots[in.arg];
            continue;
        }
        if (in.op == OP_NOT) {
            st[sp - 1] = num_val(!truthy(&st[sp - 1]));
            continue;
        }
        const val *a = &st[sp - 2], *b = &st[sp - 1];
        double r;
        switch (in.op) {
        case OP_POW: r = pow(to_num(a), to_num(b)); break;
        case OP_MUL: r = to_num(a) * to_num(b); break;
        case OP_DIV: r = to_num(a) / to_num(b); break;
        case OP_MOD: r = fmod(to_num(a), to_num(b)); break;
        case OP_ADD: r = to_num(a) + to_num(b); break;
        case OP_SUB: r = to_num(a) - to_num(b); break;
        case OP_GT: r = to_num(a) > to_num(b); break;
        case OP_GE: r = to_num(a) >= to_num(b); break;
        case OP_LT: r = to_num(a) < to_num(b); break;
        case OP_LE: r = to_num(a) <= to_num(b); break;
        case OP_EQ: r = equal(a, b); break;
        case OP_NE: r = !equal(a, b); break;
        case OP_IN: r = op_in(a, b); break;
        case OP_AND: r = truthy(a) && truthy(b); break;
        default: r = truthy(a) || truthy(b); break; /* OP_OR */
        }
        sp--;
        st[sp - 1] = num_val(r);
    }
    return truthy(&st[0]);
}

/* ---- the JSON scanner --------------------------------------------------- */

/* x->f NULL: validation of any JSON value (vjson_valid).  Otherwise the
 * value must be an object, and the first value of each top-level key the
 * filter reads is captured into x->slots. */
typedef struct {
    const vfilter *f;
    val *slots;
    size_t errpos;
    const char *msg;
    int last_esc; /* the last string scanned held a backslash */
} jscan_ctx;

static int jfail(jscan_ctx *x, size_t pos, const char *msg) {
    x->errpos = pos;
    x->msg = msg;
    return 0;
}

static size_t jskip(const char *s, size_t n, size_t i) {
    while (i < n && is_jspace((unsigned char)s[i])) i++;
    return i;
}

/* Bytes a string holds as they are: printable ASCII but '"' and '\\'.  A
 * table lookup per byte is the scanner's inner loop. */
#define P8(a) a, a, a, a, a, a, a, a
static const uint8_t PLAIN[256] = {
    P8(0), P8(0), P8(0), P8(0), /* 0x00-0x1f: control characters */
    1, 1, 0, 1, 1, 1, 1, 1, P8(1), P8(1), P8(1),                     /* 0x20-0x3f: '"' */
    P8(1), P8(1), P8(1), 1, 1, 1, 1, 0, 1, 1, 1,                     /* 0x40-0x5f: '\\' */
    P8(1), P8(1), P8(1), P8(1),                                      /* 0x60-0x7f */
};
#undef P8

/* Validates the string whose quote is at *ip (UTF-8 included) and moves
 * *ip past it. */
static int jstring(const char *s, size_t n, size_t *ip, jscan_ctx *x) {
    size_t i = *ip + 1;
    const unsigned char *u = (const unsigned char *)s;
    x->last_esc = 0;
    for (;;) {
        while (i < n && PLAIN[u[i]]) i++;
        if (i >= n) return jfail(x, *ip, "unterminated string");
        unsigned c = u[i];
        if (c == '"') break;
        if (c == '\\') {
            x->last_esc = 1;
            if (i + 1 >= n) return jfail(x, *ip, "unterminated string");
            switch (u[i + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                i += 2;
                continue;
            case 'u':
                if (n - i < 6 || hex4(s + i + 2) < 0) return jfail(x, i, "invalid \\u escape");
                i += 6;
                continue;
            default: return jfail(x, i, "invalid escape in string");
            }
        }
        if (c < 0x20) return jfail(x, i, "control character in string");
        /* UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. */
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else
            return jfail(x, i, "invalid UTF-8 in string");
        if (n - i <= need) return jfail(x, i, "invalid UTF-8 in string");
        if (u[i + 1] < lo || u[i + 1] > hi) return jfail(x, i, "invalid UTF-8 in string");
        for (size_t k = 2; k <= need; k++)
            if (u[i + k] < 0x80 || u[i + k] > 0xBF) return jfail(x, i, "invalid UTF-8 in string");
        i += need + 1;
    }
    *ip = i + 1;
    return 1;
}

static int jnumber(const char *s, size_t n, size_t *ip, jscan_ctx *x) {
    size_t i = *ip;
    if (s[i] == '-') i++;
    if (i < n && s[i] == '0') i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && is_digit(s[i])) i++;
    else
        return jfail(x, *ip, "invalid number");
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) return jfail(x, i, "invalid number: digits expected after '.'");
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) return jfail(x, i, "invalid number: digits expected in the exponent");
        while (i < n && is_digit(s[i])) i++;
    }
    *ip = i;
    return 1;
}

/* Index of the field named by the key s[0..len), if it is still to be
 * captured (the first occurrence of a key wins), else -1. */
static int find_field(const jscan_ctx *x, const char *s, size_t len, int esc) {
    const vfilter *f = x->f;
    for (size_t i = 0; i < f->nfields; i++) {
        if (x->slots[i].kind != V_NONE) continue;
        const field *fd = &f->fields[i];
        if (!esc) {
            if (fd->len == len && fd->name[0] == s[0] && memcmp(fd->name, s, len) == 0) return (int)i;
            continue;
        }
        val k = {V_STR, 1, len, {.s = s}}, name = {V_STR, 0, fd->len, {.s = fd->name}};
        if (str_eq(&k, &name)) return (int)i;
    }
    return -1;
}

/* Turns the captured top-level value s[a..b) into a value; bad when an
 * object occurs in it or a number too long to convert (as in Redis). */
static void capture(const char *s, size_t a, size_t b, int bad, int esc, val *out) {
    out->esc = 0;
    if (bad) {
        out->kind = V_BAD;
        return;
    }
    switch (s[a]) {
    case '"':
        out->kind = V_STR;
        out->esc = (uint8_t)esc;
        out->u.s = s + a + 1;
        out->len = b - a - 2;
        break;
    case '[':
        out->kind = V_JARR;
        out->u.s = s + a;
        out->len = b - a;
        break;
    case 't': *out = num_val(1); break;
    case 'f': *out = num_val(0); break;
    case 'n': out->kind = V_NULL; out->len = 0; break;
    default: *out = num_val(json_number(s + a, b - a)); break;
    }
}

enum { J_VALUE, J_KEY, J_AFTER };

static int jscan(const char *s, size_t n, jscan_ctx *x) {
    uint8_t is_obj[VJ_MAX_DEPTH];
    int depth = 0, state = J_VALUE;
    int cap = -1, cap_bad = 0; /* the field whose value is being scanned */
    size_t cap_start = 0;
    size_t i = jskip(s, n, 0);
    if (x->f && (i >= n || s[i] != '{')) return jfail(x, i, "not a JSON object");
    for (;;) {
        if (state == J_VALUE) {
            if (i >= n) return jfail(x, i, "unexpected end of input, expected a value");
            state = J_AFTER;
            switch (s[i]) {
            case '{':
            case '[':
                if (depth == VJ_MAX_DEPTH) return jfail(x, i, "nested too deeply (limit 128)");
                if (s[i] == '{' && cap >= 0) cap_bad = 1;
                is_obj[depth++] = s[i] == '{';
                i = jskip(s, n, i + 1);
                if (i < n && s[i] == (is_obj[depth - 1] ? '}' : ']')) {
                    i++;
                    depth--;
                } else
                    state = is_obj[depth - 1] ? J_KEY : J_VALUE;
                break;
            case '"':
                if (!jstring(s, n, &i, x)) return 0;
                break;
            case 't':
                if (n - i < 4 || memcmp(s + i, "true", 4)) return jfail(x, i, "invalid literal");
                i += 4;
                break;
            case 'f':
                if (n - i < 5 || memcmp(s + i, "false", 5)) return jfail(x, i, "invalid literal");
                i += 5;
                break;
            case 'n':
                if (n - i < 4 || memcmp(s + i, "null", 4)) return jfail(x, i, "invalid literal");
                i += 4;
                break;
            default: {
                size_t start = i;
                if (s[i] != '-' && !is_digit(s[i])) return jfail(x, i, "expected a value");
                if (!jnumber(s, n, &i, x)) return 0;
                if (cap >= 0 && i - start >= NUM_MAX) cap_bad = 1;
            }
            }
        } else if (state == J_KEY) {
            if (i >= n) return jfail(x, i, "unexpected end of input, expected a key");
            if (s[i] != '"') return jfail(x, i, "expected a string key");
            size_t k = i;
            if (!jstring(s, n, &i, x)) return 0;
            int fi = depth == 1 && x->f ? find_field(x, s + k + 1, i - k - 2, x->last_esc) : -1;
            i = jskip(s, n, i);
            if (i >= n || s[i] != ':') return jfail(x, i, "expected ':' after a key");
            i = jskip(s, n, i + 1);
            if (fi >= 0) {
                cap = fi;
                cap_bad = 0;
                cap_start = i;
            }
            state = J_VALUE;
        } else { /* J_AFTER: a value ended at i */
            if (cap >= 0 && depth == 1) {
                capture(s, cap_start, i, cap_bad, x->last_esc, &x->slots[cap]);
                cap = -1;
            }
            i = jskip(s, n, i);
            if (depth == 0) return i == n ? 1 : jfail(x, i, "unexpected data after the JSON value");
            int obj = is_obj[depth - 1];
            if (i >= n) return jfail(x, i, obj ? "unexpected end of input, expected ',' or '}'"
                                               : "unexpected end of input, expected ',' or ']'");
            if (s[i] == ',') {
                i = jskip(s, n, i + 1);
                state = obj ? J_KEY : J_VALUE;
            } else if (s[i] == (obj ? '}' : ']')) {
                i++;
                depth--;
            } else
                return jfail(x, i, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
}

int vjson_valid(const char *json, size_t len, char *err, size_t errlen) {
    jscan_ctx x = {0};
    if (!json) len = 0;
    if (jscan(json ? json : "", len, &x)) return 1;
    if (err && errlen) snprintf(err, errlen, "invalid JSON at position %zu: %s", x.errpos + 1, x.msg);
    return 0;
}

int vfilter_match(const vfilter *f, const char *json, size_t len) {
    val slots[VF_MAX_FIELDS];
    if (!f || !json) return 0;
    for (size_t i = 0; i < f->nfields; i++) slots[i].kind = V_NONE;
    jscan_ctx x = {f, slots, 0, NULL, 0};
    if (!jscan(json, len, &x)) return 0;
    for (size_t i = 0; i < f->nfields; i++)
        if (slots[i].kind == V_NONE || slots[i].kind == V_BAD) return 0;
    return run(f, slots);
}

/* ---- the compiler ------------------------------------------------------- */

typedef struct {
    const char *s;
    size_t len;
    vfilter *f;
    size_t code_cap, consts_cap, elems_cap, pool_used;
    size_t depth; /* values on the stack when the program gets here */
    char *err;
    size_t errlen;
    int failed;
} comp;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int cfail(comp *c, size_t pos, const char *fmt, ...) {
    if (c->failed) return 0;
    c->failed = 1;
    if (!c->err || !c->errlen) return 0;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "ERR syntax error in FILTER expression at position %zu: %s", pos + 1, msg);
    return 0;
}

static int coom(comp *c) {
    if (c->failed) return 0;
    c->failed = 1;
    if (c->err && c->errlen) snprintf(c->err, c->errlen, "ERR out of memory compiling the FILTER expression");
    return 0;
}

/* What stands at position i, for messages: quoted when printable ASCII, a
 * byte value otherwise, so that an error line never carries CR or LF. */
static const char *describe(const comp *c, size_t i, char *buf, size_t n) {
    unsigned char ch = (unsigned char)c->s[i];
    if (is_alpha(ch)) {
        size_t e = i;
        while (e < c->len && is_ident((unsigned char)c->s[e]) && e - i < 32) e++;
        snprintf(buf, n, "'%.*s'", (int)(e - i), c->s + i);
    } else if (ch == '"' || ch == '\'')
        snprintf(buf, n, "a string");
    else if (is_digit(ch))
        snprintf(buf, n, "a number");
    else if (ch == '.' && i + 1 < c->len && is_selector((unsigned char)c->s[i + 1]))
        snprintf(buf, n, "a field");
    else if (ch == '[')
        snprintf(buf, n, "an array");
    else if (ch > 0x20 && ch < 0x7f)
        snprintf(buf, n, "'%c'", ch);
    else
        snprintf(buf, n, "byte 0x%02x", ch);
    return buf;
}

static void *grow(void *p, size_t *cap, size_t size) {
    size_t nc = *cap ? *cap * 2 : 8;
    void *q = vs_realloc(p, nc * size);
    if (q) *cap = nc;
    return q;
}

static int emit(comp *c, uint32_t op, uint32_t arg, size_t pos) {
    vfilter *f = c->f;
    if (f->ncode == c->code_cap) {
        instr *q = grow(f->code, &c->code_cap, sizeof *q);
        if (!q) return coom(c);
        f->code = q;
    }
    if (op == OP_CONST || op == OP_FIELD) {
        if (++c->depth > VF_MAX_DEPTH)
            return cfail(c, pos, "expression nested too deeply (limit %d)", VF_MAX_DEPTH);
    } else if (op != OP_NOT)
        c->depth--;
    f->code[f->ncode].op = op;
    f->code[f->ncode].arg = arg;
    f->ncode++;
    return 1;
}

static int add_const(comp *c, val v, size_t pos) {
    vfilter *f = c->f;
    if (f->nconsts == c->consts_cap) {
        val *q = grow(f->consts, &c->consts_cap, sizeof *q);
        if (!q) return coom(c);
        f->consts = q;
    }
    f->consts[f->nconsts] = v;
    return emit(c, OP_CONST, (uint32_t)f->nconsts++, pos);
}

static int add_elem(comp *c, val v) {
    vfilter *f = c->f;
    if (f->nelems == c->elems_cap) {
        val *q = grow(f->elems, &c->elems_cap, sizeof *q);
        if (!q) return coom(c);
        f->elems = q;
    }
    f->elems[f->nelems++] = v;
    return 1;
}

static size_t skip_space(const comp *c, size_t i) {
    while (i < c->len && is_space((unsigned char)c->s[i])) i++;
    return i;
}

/* The string literal whose quote is at i, decoded into the pool (the
 * escapes of JSON, plus \' ; any other escaped character stands for
 * itself).  Returns the position after it, 0 on error. */
static size_t parse_string(comp *c, size_t i, val *out) {
    const char *s = c->s;
    char q = s[i];
    size_t end = i + 1;
    while (end < c->len && s[end] != q) end += s[end] == '\\' ? 2 : 1;
    if (end >= c->len) return cfail(c, i, "unterminated string");
    unsigned char *o = (unsigned char *)c->f->pool + c->pool_used;
    size_t n = 0;
    for (size_t k = i + 1; k < end;) {
        if (s[k] != '\\') {
            o[n++] = (unsigned char)s[k++];
            continue;
        }
        char e = s[k + 1]; /* a backslash always has its pair before end */
        k += 2;
        switch (e) {
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            size_t used;
            if (!decode_u(s + k, end - k, &cp, &used)) return cfail(c, k - 2, "invalid \\u escape");
            k += used;
            n += utf8_put(cp, o + n);
            break;
        }
        default: o[n++] = (unsigned char)e;
        }
    }
    out->kind = V_STR;
    out->esc = 0;
    out->u.s = (const char *)o;
    out->len = n;
    c->pool_used += n;
    return end + 1;
}

/* A number literal at i (a '-' there is followed by a digit).  Returns the
 * position after it, 0 on error. */
static size_t parse_number(comp *c, size_t i, double *out) {
    const char *s = c->s;
    size_t k = i + (s[i] == '-');
    while (k < c->len && is_digit(s[k])) k++;
    if (k < c->len && s[k] == '.') {
        k++;
        while (k < c->len && is_digit(s[k])) k++;
    }
    if (k < c->len && (s[k] == 'e' || s[k] == 'E')) {
        size_t e = k + 1;
        if (e < c->len && (s[e] == '+' || s[e] == '-')) e++;
        if (e < c->len && is_digit(s[e])) {
            k = e;
            while (k < c->len && is_digit(s[k])) k++;
        }
    }
    if (k - i >= NUM_MAX) return cfail(c, i, "number too long");
    char buf[NUM_MAX];
    memcpy(buf, s + i, k - i);
    buf[k - i] = 0;
    *out = strtod(buf, NULL);
    return k;
}

/* true, false or null, when the word at i is exactly one of them. */
static int literal_word(const comp *c, size_t i, size_t *end, val *out) {
    size_t e = i;
    while (e < c->len && is_ident((unsigned char)c->s[e])) e++;
    *end = e;
    if (e - i == 4 && !memcmp(c->s + i, "true", 4)) *out = num_val(1);
    else if (e - i == 5 && !memcmp(c->s + i, "false", 5)) *out = num_val(0);
    else if (e - i == 4 && !memcmp(c->s + i, "null", 4)) {
        out->kind = V_NULL;
        out->esc = 0;
        out->len = 0;
    } else
        return 0;
    return 1;
}

/* An array literal at i: numbers, strings, true, false, null; a trailing
 * comma is allowed, as in Redis.  Returns the position after it, 0 on error. */
static size_t parse_tuple(comp *c, size_t i, val *out) {
    size_t first = c->f->nelems, k = i + 1;
    char what[48];
    for (;;) {
        k = skip_space(c, k);
        if (k >= c->len) return cfail(c, i, "unterminated array, ']' expected");
        if (c->s[k] == ']') break;
        val e;
        size_t end;
        unsigned char ch = (unsigned char)c->s[k];
        if (ch == '"' || ch == '\'') {
            if (!(end = parse_string(c, k, &e))) return 0;
        } else if (is_digit(ch) || (ch == '-' && k + 1 < c->len && is_digit((unsigned char)c->s[k + 1]))) {
            double d;
            if (!(end = parse_number(c, k, &d))) return 0;
            e = num_val(d);
        } else if (ch == '[') {
            return cfail(c, k, "nested arrays are not supported");
        } else if (!is_alpha(ch) || !literal_word(c, k, &end, &e)) {
            return cfail(c, k, "expected a number or a string in the array, got %s",
                         describe(c, k, what, sizeof what));
        }
        if (!add_elem(c, e)) return 0;
        k = skip_space(c, end);
        if (k >= c->len) return cfail(c, i, "unterminated array, ']' expected");
        if (c->s[k] == ']') break;
        if (c->s[k] != ',')
            return cfail(c, k, "expected ',' or ']' in the array, got %s", describe(c, k, what, sizeof what));
        k++;
    }
    out->kind = V_TUPLE;
    out->esc = 0;
    out->len = c->f->nelems - first;
    out->u.idx = first;
    return k + 1;
}

static int add_field(comp *c, size_t i, size_t n) {
    vfilter *f = c->f;
    const char *name = c->s + i;
    size_t k;
    for (k = 0; k < f->nfields; k++)
        if (f->fields[k].len == n && memcmp(f->fields[k].name, name, n) == 0) break;
    if (k == f->nfields) {
        if (k == VF_MAX_FIELDS) return cfail(c, i - 1, "too many fields (limit %d)", VF_MAX_FIELDS);
        char *p = c->f->pool + c->pool_used;
        memcpy(p, name, n);
        c->pool_used += n;
        f->fields[k].name = p;
        f->fields[k].len = n;
        f->nfields++;
    }
    return emit(c, OP_FIELD, (uint32_t)k, i - 1);
}

/* The operator at i, longest match first; -1 when none. */
static int match_op(const comp *c, size_t i) {
    int best = -1;
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
        if (c->len - i >= OPS[k].len && !memcmp(c->s + i, OPS[k].text, OPS[k].len) &&
            (best < 0 || OPS[k].len > OPS[best].len))
            best = (int)k;
    return best;
}

/* Reads one operand at i into the program (or a prefix operator or '('
 * onto the operator stack, *pushed then says which).  Returns the position
 * after it, 0 on error. */
static size_t operand(comp *c, size_t i, int *pushed) {
    const char *s = c->s;
    unsigned char ch = (unsigned char)s[i];
    char what[48];
    val v;
    size_t end;
    *pushed = -1;
    if (ch == '(') {
        *pushed = OP_PAREN;
        return i + 1;
    }
    if (ch == '"' || ch == '\'') {
        if (!(end = parse_string(c, i, &v))) return 0;
        return add_const(c, v, i) ? end : 0;
    }
    if (is_digit(ch) || (ch == '-' && i + 1 < c->len && is_digit((unsigned char)s[i + 1]))) {
        double d;
        if (!(end = parse_number(c, i, &d))) return 0;
        return add_const(c, num_val(d), i) ? end : 0;
    }
    if (ch == '.') {
        end = i + 1;
        while (end < c->len && is_selector((unsigned char)s[end])) end++;
        if (end == i + 1) return cfail(c, i, "expected a field name after '.'");
        return add_field(c, i + 1, end - i - 1) ? end : 0;
    }
    if (ch == '[') {
        if (!(end = parse_tuple(c, i, &v))) return 0;
        return add_const(c, v, i) ? end : 0;
    }
    if (is_alpha(ch) && literal_word(c, i, &end, &v)) return add_const(c, v, i) ? end : 0;
    int k = match_op(c, i);
    if (k >= 0 && OPS[k].op == OP_NOT) {
        *pushed = OP_NOT;
        return i + OPS[k].len;
    }
    if (ch == ')') return cfail(c, i, "unexpected ')', expected an operand");
    if (k >= 0 && !is_alpha(ch))
        return cfail(c, i, "expected an operand before '%s'", OPS[k].text);
    return cfail(c, i, "expected an operand, got %s%s", describe(c, i, what, sizeof what),
                 k < 0 && is_alpha(ch) ? " (field names start with '.')" : "");
}

static int compile(comp *c) {
    struct {
        uint8_t op;
        uint32_t pos;
    } ops[VF_MAX_DEPTH];
    size_t nops = 0, i = 0;
    int want_operand = 1, any = 0;
    char what[48];
    for (;;) {
        i = skip_space(c, i);
        if (i >= c->len) break;
        any = 1;
        if (want_operand) {
            int pushed;
            size_t end = operand(c, i, &pushed);
            if (!end) return 0;
            if (pushed >= 0) {
                if (nops == VF_MAX_DEPTH)
                    return cfail(c, i, "expression nested too deeply (limit %d)", VF_MAX_DEPTH);
                ops[nops].op = (uint8_t)pushed;
                ops[nops++].pos = (uint32_t)i;
            } else
                want_operand = 0;
            i = end;
            continue;
        }
        if (c->s[i] == ')') {
            while (nops && ops[nops - 1].op != OP_PAREN)
                if (!emit(c, ops[--nops].op, 0, i)) return 0;
            if (!nops) return cfail(c, i, "unexpected ')' without a matching '('");
            nops--;
            i++;
            continue;
        }
        int k = match_op(c, i);
        if (k < 0 || OPS[k].op == OP_NOT) {
            if (c->s[i] == '=' || c->s[i] == '&' || c->s[i] == '|')
                return cfail(c, i, "unknown operator '%c' (did you mean '%c%c'?)", c->s[i], c->s[i], c->s[i]);
            return cfail(c, i, "expected an operator, got %s", describe(c, i, what, sizeof what));
        }
        int op = OPS[k].op, p = PREC[op];
        /* ** groups right to left: 2 ** 3 ** 2 is 2 ** 9. */
        while (nops && ops[nops - 1].op != OP_PAREN &&
               (PREC[ops[nops - 1].op] > p || (PREC[ops[nops - 1].op] == p && op != OP_POW)))
            if (!emit(c, ops[--nops].op, 0, i)) return 0;
        if (nops == VF_MAX_DEPTH) return cfail(c, i, "expression nested too deeply (limit %d)", VF_MAX_DEPTH);
        ops[nops].op = (uint8_t)op;
        ops[nops++].pos = (uint32_t)i;
        i += OPS[k].len;
        want_operand = 1;
    }
    if (!any) return cfail(c, 0, "empty expression");
    if (want_operand) return cfail(c, c->len, "unexpected end of expression, expected an operand");
    while (nops) {
        if (ops[nops - 1].op == OP_PAREN)
            return cfail(c, c->len, "missing ')' to close the '(' at position %u", ops[nops - 1].pos + 1);
        if (!emit(c, ops[--nops].op, 0, c->len)) return 0;
    }
    return 1;
}

void vfilter_free(vfilter *f) {
    if (!f) return;
    vs_free(f->code);
    vs_free(f->consts);
    vs_free(f->elems);
    vs_free(f->pool);
    vs_free(f);
}

vfilter *vfilter_compile(const char *expr, size_t len, char *err, size_t errlen) {
    comp c = {0};
    c.s = expr ? expr : "";
    c.len = expr ? len : 0;
    c.err = err;
    c.errlen = errlen;
    if (err && errlen) err[0] = 0;
    if (c.len > VF_MAX_LEN) {
        cfail(&c, VF_MAX_LEN, "expression too long (limit %d bytes)", VF_MAX_LEN);
        return NULL;
    }
    c.f = vs_calloc(1, sizeof *c.f);
    if (!c.f) {
        coom(&c);
        return NULL;
    }
    /* Decoded literals and field names are never longer than their text. */
    c.f->pool = vs_malloc(c.len + 1);
    if (!c.f->pool) {
        coom(&c);
    } else if (compile(&c)) {
        for (size_t k = 0; k < c.f->nconsts; k++) {
            val *v = &c.f->consts[k];
            if (v->kind == V_TUPLE) v->u.tup = v->len ? c.f->elems + v->u.idx : NULL;
        }
        return c.f;
    }
    vfilter_free(c.f);
    return NULL;
}
