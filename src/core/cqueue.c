/* cqueue.c - completion queue from worker threads to the event loop.
 *
 * Engine threads finish work at any time; only the loop thread may touch
 * clients and the keyspace.  A worker posts an item (which already holds a
 * copy of everything the reply needs) under a mutex and bumps an eventfd;
 * the loop, woken by epoll, takes the whole list at once and delivers each
 * item on its own thread.  Posting never blocks on the loop and never
 * allocates: the item is the caller's. */
#include "core.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct cqueue {
    pthread_mutex_t lock;
    cq_item *head, *tail;
    int fd;
};

cqueue *cq_create(char *err, size_t errlen) {
    cqueue *q = km_calloc(sizeof *q);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->fd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        km_free(q);
        return NULL;
    }
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

void cq_destroy(cqueue *q) {
    if (!q) return;
    close(q->fd);
    pthread_mutex_destroy(&q->lock);
    km_free(q);
}

int cq_fd(const cqueue *q) { return q->fd; }

void cq_post(cqueue *q, cq_item *item) {
    item->next = NULL;
    pthread_mutex_lock(&q->lock);
    assert(!q->head == !q->tail); /* posting onto a tail-less list would drop everything queued */
    if (q->tail) q->tail->next = item;
    else q->head = item;
    q->tail = item;
    pthread_mutex_unlock(&q->lock);
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the loop is already due. */
    ssize_t r = write(q->fd, &one, sizeof one);
    (void)r;
}

size_t cq_drain(cqueue *q) {
    uint64_t cnt;
    ssize_t r = read(q->fd, &cnt, sizeof cnt);
    (void)r;
    pthread_mutex_lock(&q->lock);
    cq_item *it = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    size_t n = 0;
    while (it) {
        cq_item *next = it->next;
        it->deliver(it);
        it = next;
        n++;
    }
    return n;
}
