/* ae.h - the epoll event loop (ae.c): file events and timers. */
#ifndef INFERKV_AE_H
#define INFERKV_AE_H

#include <stddef.h>

#define EV_NONE 0
#define EV_READ 1
#define EV_WRITE 2

typedef struct evloop evloop;
typedef void ev_file_fn(evloop *el, int fd, void *priv, int mask);
/* Returns the delay in ms until the next run, or -1 to stop the timer. */
typedef long long ev_timer_fn(evloop *el, long long id, void *priv);
typedef void ev_hook_fn(evloop *el);

evloop *ev_create(int setsize, char *err, size_t errlen);
void ev_destroy(evloop *el);
int ev_resize(evloop *el, int setsize);
int ev_add(evloop *el, int fd, int mask, ev_file_fn *fn, void *priv);
void ev_del(evloop *el, int fd, int mask);
int ev_mask(evloop *el, int fd);
long long ev_add_timer(evloop *el, long long ms, ev_timer_fn *fn, void *priv);
void ev_del_timer(evloop *el, long long id);
void ev_set_before_sleep(evloop *el, ev_hook_fn *fn);
void ev_run(evloop *el);
void ev_stop(evloop *el);
/* Lets the next epoll_wait return at once (work queued outside events). */
void ev_no_wait(evloop *el);

#endif
