/* mem.h - internal: what the parts of the runtime hold beyond a ctx's own
 * buffers, for the figures of infer_mem (mem.c).
 *
 * A scheduler's requests hold memory that grows with how many there are:
 * each its sampler, and each active one its KV block table and the
 * sampler's work arrays over the vocabulary.  The scheduler's bounds
 * (max_queue, max_active) cap it, so it is counted as reserved scratch
 * when the scheduler is made: requests can then never take the engine past
 * the figure it was admitted under.  Request data (prompt ids, texts to
 * embed, vectors and answer text on their way out) is not counted: it is
 * the client's, bounded by the front-end's limits on a command. */
#ifndef INFER_MEM_H
#define INFER_MEM_H

#include "infer.h"

#include <stddef.h>
#include <stdint.h>

/* sampler.c: one sampler after a draw over n_vocab logits (0: before any). */
size_t sampler_bytes(int32_t n_vocab);

/* sched.c: resolves p's defaults against c (as infer_sched_create does),
 * reserves c's logits for the largest step (ctx_reserve_logits: counted in
 * a dry ctx) and returns the bytes the scheduler's requests may hold at
 * most; UINT64_MAX when the logits cannot be allocated. */
uint64_t sched_reserve(infer_ctx *c, const infer_sched_params *p);

#endif
