/* ae.c - the event loop: epoll for sockets, a short list for timers.
 *
 * One loop thread runs everything: epoll_wait sleeps until a socket is ready
 * or the nearest timer is due, handlers run, then the before-sleep hook
 * flushes replies and runs the fast expire cycle.  A file event keeps a read
 * and a write handler per fd, so the fd number indexes the table directly.
 * There are only a few timers (the server cron), so a list is enough. */
#include "ae.h"

#include "core.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

typedef struct file_ev {
    int mask;
    ev_file_fn *rfn, *wfn;
    void *priv;
} file_ev;

typedef struct timer_ev {
    long long id;
    long long when_us;
    ev_timer_fn *fn;
    void *priv;
    int deleted;
    struct timer_ev *next;
} timer_ev;

struct evloop {
    int epfd;
    int setsize;
    file_ev *files;
    struct epoll_event *fired;
    timer_ev *timers;
    long long next_timer_id;
    int stop;
    int no_wait;
    ev_hook_fn *before_sleep;
};

evloop *ev_create(int setsize, char *err, size_t errlen) {
    evloop *el = km_calloc(sizeof *el);
    if (!el) goto oom;
    el->files = km_calloc(sizeof(file_ev) * (size_t)setsize);
    el->fired = km_calloc(sizeof(struct epoll_event) * (size_t)setsize);
    if (!el->files || !el->fired) goto oom;
    el->setsize = setsize;
    el->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (el->epfd < 0) {
        snprintf(err, errlen, "epoll_create: %s", strerror(errno));
        km_free(el->files);
        km_free(el->fired);
        km_free(el);
        return NULL;
    }
    return el;
oom:
    snprintf(err, errlen, "out of memory creating the event loop");
    if (el) {
        km_free(el->files);
        km_free(el->fired);
        km_free(el);
    }
    return NULL;
}

void ev_destroy(evloop *el) {
    if (!el) return;
    close(el->epfd);
    for (timer_ev *t = el->timers, *n; t; t = n) {
        n = t->next;
        km_free(t);
    }
    km_free(el->files);
    km_free(el->fired);
    km_free(el);
}

/* Grows the fd table to setsize.  It never shrinks: a lower maxclients is
 * enforced where connections are accepted, and a smaller table would strand
 * the fds above it (Redis grows only, too).  Either both arrays grow or the
 * loop is left as it was.  May run inside a handler (CONFIG SET maxclients
 * from a client's read handler): process_events() holds no pointer into
 * either array across a handler call for that reason. */
int ev_resize(evloop *el, int setsize) {
    if (setsize <= el->setsize) return 0;
    struct epoll_event *e = km_realloc(el->fired, sizeof(*e) * (size_t)setsize);
    if (!e) return -1;
    el->fired = e; /* larger than setsize needs is harmless if files fails */
    file_ev *f = km_realloc(el->files, sizeof(file_ev) * (size_t)setsize);
    if (!f) return -1;
    memset(&f[el->setsize], 0, sizeof(file_ev) * (size_t)(setsize - el->setsize));
    el->files = f;
    el->setsize = setsize;
    return 0;
}

static int apply_mask(evloop *el, int fd, int oldmask, int newmask) {
    struct epoll_event ee = {0};
    ee.data.fd = fd;
    if (newmask & EV_READ) ee.events |= EPOLLIN;
    if (newmask & EV_WRITE) ee.events |= EPOLLOUT;
    int op = oldmask == EV_NONE ? EPOLL_CTL_ADD
             : newmask == EV_NONE ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    return epoll_ctl(el->epfd, op, fd, &ee);
}

int ev_add(evloop *el, int fd, int mask, ev_file_fn *fn, void *priv) {
    if (fd < 0 || fd >= el->setsize) {
        errno = ERANGE;
        return -1;
    }
    file_ev *f = &el->files[fd];
    if (apply_mask(el, fd, f->mask, f->mask | mask) < 0) return -1;
    f->mask |= mask;
    if (mask & EV_READ) f->rfn = fn;
    if (mask & EV_WRITE) f->wfn = fn;
    f->priv = priv;
    return 0;
}

void ev_del(evloop *el, int fd, int mask) {
    if (fd < 0 || fd >= el->setsize) return;
    file_ev *f = &el->files[fd];
    if (f->mask == EV_NONE) return;
    int newmask = f->mask & ~mask;
    apply_mask(el, fd, f->mask, newmask);
    f->mask = newmask;
}

int ev_mask(evloop *el, int fd) {
    return fd >= 0 && fd < el->setsize ? el->files[fd].mask : 0;
}

long long ev_add_timer(evloop *el, long long ms, ev_timer_fn *fn, void *priv) {
    timer_ev *t = km_calloc(sizeof *t);
    if (!t) return -1;
    t->id = el->next_timer_id++;
    t->when_us = mono_us() + ms * 1000;
    t->fn = fn;
    t->priv = priv;
    t->next = el->timers;
    el->timers = t;
    return t->id;
}

void ev_del_timer(evloop *el, long long id) {
    for (timer_ev *t = el->timers; t; t = t->next)
        if (t->id == id) t->deleted = 1;
}

void ev_set_before_sleep(evloop *el, ev_hook_fn *fn) { el->before_sleep = fn; }
void ev_stop(evloop *el) { el->stop = 1; }
void ev_no_wait(evloop *el) { el->no_wait = 1; }

static int wait_ms(evloop *el) {
    if (el->no_wait) return 0;
    long long now = mono_us(), best = -1;
    for (timer_ev *t = el->timers; t; t = t->next)
        if (!t->deleted && (best < 0 || t->when_us < best)) best = t->when_us;
    if (best < 0) return 1000;
    long long ms = (best - now + 999) / 1000;
    return ms < 0 ? 0 : ms > 1000 ? 1000 : (int)ms;
}

static void run_timers(evloop *el) {
    long long now = mono_us();
    for (timer_ev **pp = &el->timers; *pp;) {
        timer_ev *t = *pp;
        if (t->deleted) {
            *pp = t->next;
            km_free(t);
            continue;
        }
        if (t->when_us <= now) {
            long long next = t->fn(el, t->id, t->priv);
            if (next < 0) t->deleted = 1;
            else t->when_us = mono_us() + next * 1000;
        }
        pp = &t->next;
    }
}

static void process_events(evloop *el) {
    int timeout = wait_ms(el);
    el->no_wait = 0;
    int n = epoll_wait(el->epfd, el->fired, el->setsize, timeout);
    for (int i = 0; i < n; i++) {
        /* A handler may grow (reallocate) both arrays: copy the event out,
         * and index the fd table afresh after each handler. */
        int fd = el->fired[i].data.fd;
        uint32_t events = el->fired[i].events;
        assert(fd >= 0 && fd < el->setsize);
        int readable = events & (EPOLLIN | EPOLLERR | EPOLLHUP);
        int writable = events & (EPOLLOUT | EPOLLERR | EPOLLHUP);
        /* Read first: a request's reply is then written in the same turn.
         * Each handler may remove the fd, so recheck the mask. */
        if (readable && (el->files[fd].mask & EV_READ)) el->files[fd].rfn(el, fd, el->files[fd].priv, EV_READ);
        if (writable && (el->files[fd].mask & EV_WRITE)) el->files[fd].wfn(el, fd, el->files[fd].priv, EV_WRITE);
    }
    run_timers(el);
}

void ev_run(evloop *el) {
    el->stop = 0;
    while (!el->stop) {
        if (el->before_sleep) el->before_sleep(el);
        process_events(el);
    }
}
