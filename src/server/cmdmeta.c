/* cmdmeta.c - renders the COMMAND INFO records of cmdmeta_gen.c (and of
 * cmdmeta_vset.c and cmdmeta_infer.c, the vector-set commands and the
 * INFER.* commands that name keys, written by hand in the same form).
 *
 * Each record is redis-server's own RESP3 reply for one command, captured
 * by tools/cmdmeta/gen_cmdmeta.py.  Keeping the reply as data (instead of
 * re-describing flags, key specs and tips in C structs) is what makes our
 * answer identical, nested key-spec maps included.  Rendering walks the
 * RESP3 text and re-emits it through the reply writers, which flatten maps
 * and sets for RESP2 clients.  The text is compiled in, but the walker still
 * checks every length against the end of the record: a truncated or
 * malformed record renders nothing rather than reading past it. */
#include "server.h"

#include <string.h>

/* Reads the decimal after a type byte up to CRLF.  Returns the position
 * after the CRLF, or NULL when malformed. */
static const char *read_num(const char *p, const char *end, long long *out) {
    const char *nl = memchr(p, '\r', (size_t)(end - p));
    if (!nl || nl + 1 >= end || nl[1] != '\n') return NULL;
    if (!str_to_ll(p, (size_t)(nl - p), out)) return NULL;
    return nl + 2;
}

/* Parses one value at p.  With c set, replies it; without, only skips.
 * Returns the position after the value, or NULL when malformed. */
static const char *walk(client *c, const char *p, const char *end, int depth) {
    if (p >= end || depth > 16) return NULL;
    char t = *p++;
    long long n;
    switch (t) {
    case '+': {
        const char *nl = memchr(p, '\r', (size_t)(end - p));
        if (!nl || nl + 1 >= end || nl[1] != '\n') return NULL;
        if (c) {
            char buf[128];
            size_t len = (size_t)(nl - p);
            if (len >= sizeof buf) return NULL;
            memcpy(buf, p, len);
            buf[len] = '\0';
            reply_status(c, buf);
        }
        return nl + 2;
    }
    case ':':
        if (!(p = read_num(p, end, &n))) return NULL;
        if (c) reply_ll(c, n);
        return p;
    case '$':
        if (!(p = read_num(p, end, &n)) || n < 0 || n > end - p - 2) return NULL;
        if (c) reply_bulk(c, p, (size_t)n);
        return p + n + 2;
    case '*':
    case '~':
    case '%':
        if (!(p = read_num(p, end, &n)) || n < 0 || n > end - p) return NULL;
        if (c) {
            if (t == '*') reply_array_len(c, (long)n);
            else if (t == '~') reply_set_len(c, (long)n);
            else reply_map_len(c, (long)n);
        }
        for (long long i = 0; i < (t == '%' ? 2 * n : n); i++)
            if (!(p = walk(c, p, end, depth + 1))) return NULL;
        return p;
    default:
        return NULL;
    }
}

static const cmdmeta_record *find_in(const cmdmeta_record *r, size_t n, const char *name, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(r[i].name) == len && strncasecmp(r[i].name, name, len) == 0) return &r[i];
    return NULL;
}

/* The generated table first; the hand-written V* and INFER.* entries next. */
static const cmdmeta_record *find_record(const char *name, size_t len) {
    const cmdmeta_record *r = find_in(cmdmeta_records, cmdmeta_count, name, len);
    if (!r) r = find_in(cmdmeta_vset_records, cmdmeta_vset_count, name, len);
    return r ? r : find_in(cmdmeta_infer_records, cmdmeta_infer_count, name, len);
}

/* Finds the RESP3 text of one command's entry; "parent|sub" names are looked
 * up among the parent's subcommands (the entry's tenth field).  1 when
 * found, with [*start, *stop) the entry. */
static int find_entry(const char *full, const char **start, const char **stop) {
    const char *bar = strchr(full, '|');
    const cmdmeta_record *r = find_record(full, bar ? (size_t)(bar - full) : strlen(full));
    if (!r) return 0;
    const char *p = r->resp3, *end = p + strlen(p);
    if (!bar) {
        *start = p;
        *stop = end;
        return 1;
    }
    long long n;
    if (*p != '*' || !(p = read_num(p + 1, end, &n)) || n != 10) return 0;
    for (int i = 0; i < 9; i++)
        if (!(p = walk(NULL, p, end, 0))) return 0;
    if (p >= end || *p != '*' || !(p = read_num(p + 1, end, &n))) return 0;
    size_t want = strlen(full);
    for (long long i = 0; i < n; i++) {
        const char *e = p, *name = p;
        long long fields, nlen;
        if (*name != '*' || !(name = read_num(name + 1, end, &fields)) || *name != '$' ||
            !(name = read_num(name + 1, end, &nlen)) || nlen < 0 || nlen > end - name)
            return 0;
        if (!(p = walk(NULL, e, end, 0))) return 0;
        if ((size_t)nlen == want && strncasecmp(name, full, want) == 0) {
            *start = e;
            *stop = p;
            return 1;
        }
    }
    return 0;
}

int cmdmeta_reply(client *c, const char *full_name) {
    const char *p, *end;
    if (!find_entry(full_name, &p, &end)) return 0;
    /* Validate before the first byte goes out, so that a bad record cannot
     * leave a half-written reply behind. */
    if (walk(NULL, p, end, 0) != end) return 0;
    walk(c, p, end, 0);
    return 1;
}

int cmdmeta_arity(const char *full_name, long long *arity) {
    const char *p, *end;
    if (!find_entry(full_name, &p, &end)) return 0;
    long long n;
    if (*p != '*' || !(p = read_num(p + 1, end, &n)) || n != 10) return 0;
    if (!(p = walk(NULL, p, end, 0)) || *p != ':') return 0;
    return read_num(p + 1, end, arity) != NULL;
}
