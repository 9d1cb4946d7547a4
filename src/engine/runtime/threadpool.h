/* threadpool.h - internal: run a function on every thread of an
 * infer_threadpool (see infer.h for creation). */
#ifndef INFER_THREADPOOL_H
#define INFER_THREADPOOL_H

#include "infer.h"

/* fn(arg, ith, nth) runs once on each of the nth threads (the caller is
 * ith 0); tp_run returns when all have finished.  Not reentrant: one caller
 * at a time per pool. */
typedef void (*tp_fn)(void *arg, int ith, int nth);
void tp_run(infer_threadpool *tp, tp_fn fn, void *arg);

#endif
