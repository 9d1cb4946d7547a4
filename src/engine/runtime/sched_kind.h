/* sched_kind.h - internal: infer_sched is one of two schedulers, decoding
 * (sched.c) or embedding (embed_sched.c).  They share the public free,
 * cancel and stats calls, so the first member of each object says which one
 * it is, and sched.c hands the embedding kind's calls to embed_sched.c. */
#ifndef INFER_SCHED_KIND_H
#define INFER_SCHED_KIND_H

#include "infer.h"

enum { SCHED_DECODE = 0x44454331u, SCHED_EMBED = 0x454d4231u };

typedef struct {
    uint32_t kind;
    infer_ctx *ctx;   /* the ctx it owns */
    uint64_t reserve; /* bytes its requests may hold beyond the ctx's (mem.h) */
} sched_head;

static inline uint32_t sched_kind(const infer_sched *s) { return ((const sched_head *)(const void *)s)->kind; }

void embed_sched_free(infer_sched *s);
int embed_sched_cancel(infer_sched *s, uint64_t id);
void embed_sched_get_stats(infer_sched *s, infer_sched_stats *st);

#endif
