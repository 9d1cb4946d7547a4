/* reply.c - writing replies into a client's output chain, RESP2 or RESP3.
 *
 * Replies are appended to a chain of 16 KB blocks and written to the socket
 * before the loop sleeps (client.c).  The writers know both protocols:
 * RESP3 has maps, sets, doubles, nulls and booleans; RESP2 flattens a map to
 * an array of 2N elements, a double to a bulk string, a null to $-1 or *-1,
 * a boolean to :1/:0, exactly as Redis does.  Commands whose element count
 * is only known at the end reserve a header slot (reply_defer_len) that is
 * filled in later.  Nothing is queued for a client that is being closed. */
#include "server.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BLOCK_SIZE (16 * 1024)

static void mark_pending(client *c) {
    if (c->flags & CF_PENDING_WRITE) return;
    c->flags |= CF_PENDING_WRITE;
    c->pw_next = srv.pending_writes;
    srv.pending_writes = c;
}

static reply_block *new_block(size_t size) {
    reply_block *b = km_malloc(sizeof *b + size);
    if (!b) return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

static void link_block(client *c, reply_block *b) {
    if (c->reply_tail) c->reply_tail->next = b;
    else c->reply_head = b;
    c->reply_tail = b;
}

/* Even with no configured limit, one reply may not grow past this: a
 * command like HRANDFIELD key -9223372036854775807 would otherwise take all
 * memory.  The client is disconnected instead, as with a configured limit. */
#define REPLY_ABSOLUTE_MAX (1ULL << 30)

static void check_output_limit(client *c) {
    /* a subscribed client is of the pubsub class, as in Redis */
    const obuf_limit *l = (c->flags & CF_PUBSUB) ? &srv.obuf_pubsub : &srv.obuf_normal;
    if (c->reply_bytes > REPLY_ABSOLUTE_MAX) goto over;
    if (l->hard && c->reply_bytes > l->hard) goto over;
    if (l->soft && c->reply_bytes > l->soft) {
        if (!c->obuf_soft_since) c->obuf_soft_since = srv.now_ms;
        else if (srv.now_ms - c->obuf_soft_since > l->soft_seconds * 1000) goto over;
    } else {
        c->obuf_soft_since = 0;
    }
    return;
over:
    log_msg(LL_WARNING, "Client id=%llu scheduled to be closed ASAP for overcoming of output buffer limits.",
            (unsigned long long)c->id);
    srv.stat_client_outbuf_limit_disconnections++;
    client_free_async(c);
}

void reply_raw(client *c, const char *p, size_t len) {
    if (c->flags & CF_CLOSE_ASAP) return;
    if (c->fd < 0 && !(c->flags & CF_EXECUTING)) return;
    size_t total = len;
    while (len > 0) {
        reply_block *t = c->reply_tail;
        if (!t || t->used == t->size) {
            t = new_block(len > BLOCK_SIZE ? len : BLOCK_SIZE);
            if (!t) {
                log_msg(LL_WARNING, "out of memory queueing a reply, closing client");
                client_free_async(c);
                return;
            }
            link_block(c, t);
        }
        size_t n = t->size - t->used < len ? t->size - t->used : len;
        memcpy(t->buf + t->used, p, n);
        t->used += n;
        p += n;
        len -= n;
    }
    c->reply_bytes += total;
    mark_pending(c);
    check_output_limit(c);
}

void reply_free_blocks(client *c) {
    for (reply_block *b = c->reply_head, *n; b; b = n) {
        n = b->next;
        km_free(b);
    }
    c->reply_head = c->reply_tail = NULL;
    c->reply_bytes = 0;
    c->sent_in_head = 0;
}

static void reply_header(client *c, char prefix, long long n) {
    char buf[32];
    buf[0] = prefix;
    int l = ll_to_str(buf + 1, sizeof buf - 3, n);
    buf[l + 1] = '\r';
    buf[l + 2] = '\n';
    reply_raw(c, buf, (size_t)l + 3);
}

void reply_status(client *c, const char *s) {
    reply_raw(c, "+", 1);
    reply_raw(c, s, strlen(s));
    reply_raw(c, "\r\n", 2);
}

void reply_ok(client *c) { reply_raw(c, "+OK\r\n", 5); }

void reply_error(client *c, const char *msg) {
    srv.stat_total_error_replies++;
    errorstat_count(msg);
    if (c->cmd) ((command *)c->cmd)->failed++;
    if (msg[0] != '-') reply_raw(c, "-", 1);
    /* an error must stay on one line whatever it quotes */
    size_t n = strlen(msg);
    for (size_t i = 0; i < n; i++) {
        char ch = msg[i] == '\r' || msg[i] == '\n' ? ' ' : msg[i];
        reply_raw(c, &ch, 1);
    }
    reply_raw(c, "\r\n", 2);
}

void reply_errorf(client *c, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    reply_error(c, buf);
}

void reply_bulk(client *c, const void *p, size_t len) {
    reply_header(c, '$', (long long)len);
    reply_raw(c, p, len);
    reply_raw(c, "\r\n", 2);
}

void reply_bulk_cstr(client *c, const char *s) {
    if (!s) reply_null(c);
    else reply_bulk(c, s, strlen(s));
}

void reply_bulk_dstr(client *c, const dstr s) { reply_bulk(c, s, dstr_len(s)); }

void reply_bulk_obj(client *c, const kobj *o) {
    char buf[LL_STR_SIZE];
    size_t len;
    const char *p = obj_str(o, buf, &len);
    reply_bulk(c, p, len);
}

void reply_bulk_ll(client *c, long long v) {
    char buf[LL_STR_SIZE];
    int n = ll_to_str(buf, sizeof buf, v);
    reply_bulk(c, buf, (size_t)n);
}

void reply_ll(client *c, long long v) {
    if (v == 0) reply_raw(c, ":0\r\n", 4);
    else if (v == 1) reply_raw(c, ":1\r\n", 4);
    else reply_header(c, ':', v);
}

void reply_double(client *c, double d) {
    char buf[64];
    int n = double_to_str(buf, sizeof buf, d);
    if (c->resp == 2) {
        reply_bulk(c, buf, (size_t)n);
        return;
    }
    reply_raw(c, ",", 1);
    reply_raw(c, buf, (size_t)n);
    reply_raw(c, "\r\n", 2);
}

void reply_bool(client *c, int b) {
    if (c->resp == 2) reply_ll(c, b ? 1 : 0);
    else reply_raw(c, b ? "#t\r\n" : "#f\r\n", 4);
}

void reply_null(client *c) {
    if (c->resp == 2) reply_raw(c, "$-1\r\n", 5);
    else reply_raw(c, "_\r\n", 3);
}

void reply_null_array(client *c) {
    if (c->resp == 2) reply_raw(c, "*-1\r\n", 5);
    else reply_raw(c, "_\r\n", 3);
}

void reply_array_len(client *c, long len) { reply_header(c, '*', len); }

void reply_map_len(client *c, long pairs) {
    if (c->resp == 2) reply_header(c, '*', pairs * 2);
    else reply_header(c, '%', pairs);
}

void reply_set_len(client *c, long len) { reply_header(c, c->resp == 2 ? '*' : '~', len); }
void reply_push_len(client *c, long len) { reply_header(c, c->resp == 2 ? '*' : '>', len); }

void reply_verbatim(client *c, const char *p, size_t len, const char *ext) {
    if (c->resp == 2) {
        reply_bulk(c, p, len);
        return;
    }
    reply_header(c, '=', (long long)len + 4);
    reply_raw(c, ext, 3);
    reply_raw(c, ":", 1);
    reply_raw(c, p, len);
    reply_raw(c, "\r\n", 2);
}

void reply_help(client *c, const char *cmd, const char **lines) {
    long n = 0;
    while (lines[n]) n++;
    char head[128];
    snprintf(head, sizeof head,
             "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", cmd);
    reply_array_len(c, n + 3);
    reply_status(c, head);
    for (long i = 0; i < n; i++) reply_status(c, lines[i]);
    reply_status(c, "HELP");
    reply_status(c, "    Prints this help.");
}

void reply_subcommand_syntax_error(client *c) {
    char name[64];
    snprintf(name, sizeof name, "%s", c->cmd && c->cmd->parent ? c->cmd->parent->name : c->argv[0]);
    for (char *p = name; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
    reply_errorf(c, "ERR unknown subcommand or wrong number of arguments for '%.128s'. Try %s HELP.",
                 c->argc > 1 ? c->argv[1] : "", name);
}

/* A deferred header is an empty block linked into the chain; the next
 * writes go to a fresh block after it.  Filling it in writes the header text
 * into that block. */
void *reply_defer_len(client *c) {
    if (c->flags & CF_CLOSE_ASAP) return NULL;
    reply_block *b = new_block(32);
    if (!b) {
        client_free_async(c);
        return NULL;
    }
    link_block(c, b);
    b->size = 0; /* full: later writes open a new block */
    mark_pending(c);
    return b;
}

static void set_deferred(client *c, void *node, char prefix, long n) {
    reply_block *b = node;
    if (!b || (c->flags & CF_CLOSE_ASAP)) return;
    int l = snprintf(b->buf, 32, "%c%ld\r\n", prefix, n);
    b->used = b->size = (size_t)l;
    c->reply_bytes += (size_t)l;
}

void reply_set_deferred_array(client *c, void *node, long len) { set_deferred(c, node, '*', len); }
void reply_set_deferred_map(client *c, void *node, long pairs) {
    if (c->resp == 2) set_deferred(c, node, '*', pairs * 2);
    else set_deferred(c, node, '%', pairs);
}
void reply_set_deferred_set(client *c, void *node, long len) {
    set_deferred(c, node, c->resp == 2 ? '*' : '~', len);
}

void reply_wrong_type(client *c) {
    reply_error(c, "WRONGTYPE Operation against a key holding the wrong kind of value");
}
void reply_syntax_error(client *c) { reply_error(c, "ERR syntax error"); }
void reply_not_integer(client *c) { reply_error(c, "ERR value is not an integer or out of range"); }
void reply_not_float(client *c) { reply_error(c, "ERR value is not a valid float"); }

int arg_is(const dstr s, const char *word) {
    size_t n = strlen(word);
    return dstr_len(s) == n && strncasecmp(s, word, n) == 0;
}

int arg_ll(client *c, const dstr s, long long *out) {
    if (str_to_ll(s, dstr_len(s), out)) return OK;
    reply_not_integer(c);
    return ERR;
}

int arg_ll_range(client *c, const dstr s, long long min, long long max,
                 long long *out, const char *msg) {
    long long v;
    if (!str_to_ll(s, dstr_len(s), &v) || v < min || v > max) {
        if (msg) reply_error(c, msg);
        else if (!str_to_ll(s, dstr_len(s), &v)) reply_not_integer(c);
        else reply_errorf(c, "ERR value is out of range, value must between %lld and %lld", min, max);
        return ERR;
    }
    *out = v;
    return OK;
}

int arg_positive(client *c, const dstr s, long long *out, const char *msg) {
    return arg_ll_range(c, s, 0, LLONG_MAX, out,
                        msg ? msg : "ERR value is out of range, must be positive");
}

int arg_double(client *c, const dstr s, double *out) {
    if (str_to_double(s, dstr_len(s), out)) return OK;
    reply_not_float(c);
    return ERR;
}

int arg_ldouble(client *c, const dstr s, long double *out) {
    if (str_to_ldouble(s, dstr_len(s), out)) return OK;
    reply_not_float(c);
    return ERR;
}
