/* threadpool.c - a persistent pool that runs one function on every thread.
 *
 * A forward pass dispatches a few hundred parallel regions per token (every
 * matrix product, every attention), so the cost of a dispatch matters more
 * than anything else here.  Workers therefore spin briefly on a generation
 * counter before sleeping on a condition variable: back-to-back regions never
 * pay for a futex wake, and an idle pool costs no CPU.  The caller takes part
 * as thread 0, so a pool of one spawns nothing. */
#include "runtime/threadpool.h"
#include "kernels/ialloc.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Workers pause-spin, then yield, then sleep.  Yielding matters when the
 * machine has more runnable threads than cores: a pure spin would burn the
 * timeslice that the thread we wait for needs. */
#define SPIN_ITERS 2000   /* pause loops before yielding */
#define YIELD_ITERS 200   /* sched_yield loops before sleeping */

struct infer_threadpool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    _Atomic unsigned gen;     /* bumped once per region */
    _Atomic int pending;      /* workers still running the current region */
    _Atomic int sleepers;     /* workers blocked on `wake` */
    _Atomic int stop;
    _Atomic int nice;     /* wanted nice value of the workers */
    _Atomic int idle;     /* wanted: SCHED_IDLE class */
    _Atomic unsigned nice_gen; /* bumped by infer_threadpool_set_nice */
    tp_fn fn;
    void *arg;
};

typedef struct {
    infer_threadpool *tp;
    int ith;
} worker_arg;

static void *worker(void *p) {
    worker_arg wa = *(worker_arg *)p;
    free(p);
    infer_threadpool *tp = wa.tp;
    /* Not the current value: the caller may already have started a region
     * before this thread first runs.  Every worker exists before the first
     * region, when gen is 0. */
    unsigned seen = 0, nice_seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&tp->gen, memory_order_acquire) == seen) {
            if (atomic_load(&tp->stop)) return NULL;
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            if (spins < SPIN_ITERS + YIELD_ITERS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&tp->mu);
            atomic_fetch_add(&tp->sleepers, 1);
            while (atomic_load(&tp->gen) == seen && !atomic_load(&tp->stop))
                pthread_cond_wait(&tp->wake, &tp->mu);
            atomic_fetch_sub(&tp->sleepers, 1);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->stop)) return NULL;
        seen = atomic_load(&tp->gen);
        if (atomic_load(&tp->nice_gen) != nice_seen) {
            nice_seen = atomic_load(&tp->nice_gen);
            infer_thread_set_priority(atomic_load(&tp->nice), atomic_load(&tp->idle));
        }
        tp->fn(tp->arg, wa.ith, tp->n);
        atomic_fetch_sub_explicit(&tp->pending, 1, memory_order_release);
    }
}

infer_threadpool *infer_threadpool_create(int n_threads, char *err, size_t errlen) {
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 256 ? 256 : c > 0 ? (int)c : 1;
    }
    if (n_threads > 256) {
        snprintf(err, errlen, "thread count %d is above the limit of 256", n_threads);
        return NULL;
    }
    infer_threadpool *tp = ie_calloc(1, sizeof *tp);
    if (!tp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->wake, NULL);
    tp->threads = ie_calloc((size_t)n_threads, sizeof *tp->threads);
    if (!tp->threads) {
        snprintf(err, errlen, "out of memory");
        infer_threadpool_free(tp);
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        worker_arg *wa = ie_malloc(sizeof *wa);
        int rc = wa ? 0 : ENOMEM;
        if (wa) {
            wa->tp = tp;
            wa->ith = i;
            rc = pthread_create(&tp->threads[i], NULL, worker, wa);
            if (rc) free(wa);
        }
        if (rc) {
            snprintf(err, errlen, "cannot start worker thread %d: %s", i, strerror(rc));
            tp->n = i; /* join only those started */
            infer_threadpool_free(tp);
            return NULL;
        }
    }
    return tp;
}

void infer_threadpool_free(infer_threadpool *tp) {
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n; i++)
        if (tp->threads) pthread_join(tp->threads[i], NULL);
    pthread_cond_destroy(&tp->wake);
    pthread_mutex_destroy(&tp->mu);
    free(tp->threads);
    free(tp);
}

int infer_threadpool_size(const infer_threadpool *tp) { return tp->n; }

/* The calling thread's policy and nice value.  The class is set first:
 * leaving SCHED_IDLE resets nothing, and setpriority then applies the nice
 * value to whichever class the thread is in. */
void infer_thread_set_priority(int nice, int idle) {
    pid_t tid = (pid_t)syscall(SYS_gettid);
    struct sched_param sp = {0};
    sched_setscheduler(tid, idle ? SCHED_IDLE : SCHED_OTHER, &sp);
    setpriority(PRIO_PROCESS, (id_t)tid, nice);
}

/* Workers apply it themselves at their next region: priorities are per
 * thread on Linux and only the thread itself knows its tid cheaply. */
void infer_threadpool_set_priority(infer_threadpool *tp, int nice, int idle) {
    atomic_store(&tp->nice, nice);
    atomic_store(&tp->idle, idle);
    atomic_fetch_add(&tp->nice_gen, 1);
}

void tp_run(infer_threadpool *tp, tp_fn fn, void *arg) {
    if (tp->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    tp->fn = fn;
    tp->arg = arg;
    atomic_store(&tp->pending, tp->n - 1);
    /* seq_cst, not release: this store and the load of `sleepers` below
     * pair with the worker's increment of `sleepers` and load of `gen`
     * (a store-buffer pattern); with weaker ordering both sides could read
     * the old value and the worker would sleep through the region. */
    atomic_fetch_add(&tp->gen, 1);
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->mu);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->mu);
    }
    fn(arg, 0, tp->n);
    for (int spins = 0; atomic_load_explicit(&tp->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_ITERS) cpu_relax();
        else sched_yield();
    }
}
