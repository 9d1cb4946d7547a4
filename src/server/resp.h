/* resp.h - incremental RESP request parser (resp.c).
 *
 * The parser keeps its state between reads so that a command split across
 * any number of packets is assembled without rescanning, and it trusts no
 * length the client sends: counts and sizes are range-checked before any
 * allocation, and argument arrays grow only as arguments actually arrive. */
#ifndef INFERKV_RESP_H
#define INFERKV_RESP_H

#include <stddef.h>
#include "core.h"

#define RESP_INLINE_MAX (64 * 1024)
#define RESP_MULTIBULK_MAX (1024 * 1024)

enum resp_status {
    RESP_NEED_MORE = 0, /* consumed what it could, wait for more bytes */
    RESP_COMMAND = 1,   /* a complete command is in argc/argv */
    RESP_EMPTY = 2,     /* an empty command (blank line, *0): skip it */
    RESP_PROTO_ERR = 3, /* err holds the reply text; close after replying */
    RESP_OOM = 4,
};

typedef struct resp_limits {
    long long max_bulk;       /* proto-max-bulk-len */
    int unauthenticated;      /* stricter limits before AUTH */
} resp_limits;

typedef struct resp_parser {
    int type;           /* 0 none yet, 1 inline, 2 multibulk */
    long long multibulk; /* arguments still expected */
    long long bulk;     /* -1: expecting a $ header */
    int argc, argcap;
    dstr *argv;
} resp_parser;

void resp_parser_init(resp_parser *p);
/* Frees the arguments gathered so far and resets the state. */
void resp_parser_reset(resp_parser *p);
/* Parses from buf[*pos] to buf[len].  On RESP_COMMAND the caller takes
 * p->argv[0..argc) (and must set argc to 0 after taking them).  *pos
 * advances over what was consumed. */
int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *pos,
               const resp_limits *lim, char *err, size_t errlen);
/* Splits an inline command line with Redis's quoting rules ("..." with
 * escapes, '...').  Returns argc, or -1 on unbalanced quotes / OOM. */
int resp_split_args(const char *line, size_t len, dstr **argv_out);
void resp_free_args(dstr *argv, int argc);

#endif
