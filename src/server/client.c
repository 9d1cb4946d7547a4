/* client.c - connections: accept, read and parse, write, free.
 *
 * Each client owns a query buffer (bytes read, not yet parsed) and a reply
 * chain (reply.c).  Reading parses and runs as many pipelined commands as
 * the buffer holds; replies are not written there but collected, and the
 * loop's before-sleep hook writes every client with pending output in one
 * pass (most replies leave with a single write() and no EPOLLOUT
 * registration).  A client is never freed in the middle of a callback that
 * may still use it: it is marked and freed from before-sleep. */
#include "server.h"
#include "aof.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#define READ_CHUNK (16 * 1024)
#define BIG_ARG (32 * 1024)
#define MAX_ACCEPTS_PER_CALL 1000
#define MAX_WRITE_PER_EVENT (1024 * 1024)
/* A written-out reply block up to this size (reply.c's standard block) is
 * kept, emptied, as the client's next block.  Freeing and reallocating it
 * on every write made glibc grow and trim the heap top over and over when
 * many clients are written at once (pub/sub fan-out, many benchmark
 * clients): each trim is an munmap with a TLB shootdown. */
#define KEEP_BLOCK_MAX (16 * 1024)
#define KEEP_BLOCK_MIN 64 /* smaller blocks are deferred-length headers */

static uint64_t id_hash(const void *k) { return (uint64_t)(uintptr_t)k * 0x9e3779b97f4a7c15ULL; }
static int id_eq(const void *a, const void *b) { return a == b; }
static const dict_type id_dict_type = {id_hash, id_eq, NULL, NULL};

static void read_handler(evloop *el, int fd, void *priv, int mask);
static void write_handler(evloop *el, int fd, void *priv, int mask);

size_t clients_count(void) { return srv.clients_by_id ? dict_size(srv.clients_by_id) : 0; }

client *client_by_id(uint64_t id) {
    return srv.clients_by_id ? dict_fetch(srv.clients_by_id, (void *)(uintptr_t)id) : NULL;
}

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void format_addr(int fd, int is_unix, int peer, char *out, size_t cap) {
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int r = peer ? getpeername(fd, (struct sockaddr *)&sa, &len)
                 : getsockname(fd, (struct sockaddr *)&sa, &len);
    if (is_unix) {
        snprintf(out, cap, "%s:0", peer ? "" : (srv.unixsocket ? srv.unixsocket : ""));
        return;
    }
    if (r < 0) {
        snprintf(out, cap, "?:0");
        return;
    }
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa.ss_family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)&sa;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
        port = ntohs(s->sin_port);
    } else if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&sa;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
        port = ntohs(s->sin6_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

client *client_create(int fd, int is_unix) {
    if (!srv.clients_by_id) {
        srv.clients_by_id = dict_create(&id_dict_type);
        if (!srv.clients_by_id) return NULL;
    }
    client *c = km_calloc(sizeof *c);
    if (!c) return NULL;
    c->querybuf = dstr_empty();
    if (!c->querybuf) {
        km_free(c);
        return NULL;
    }
    c->id = ++srv.next_client_id;
    c->fd = fd;
    c->resp = 2;
    c->db = &srv.dbs[0];
    c->authenticated = srv.requirepass == NULL;
    c->ctime_ms = c->last_ms = srv.now_ms;
    resp_parser_init(&c->parser);
    if (is_unix) c->flags |= CF_UNIX;
    if (fd >= 0) {
        format_addr(fd, is_unix, 1, c->addr, sizeof c->addr);
        format_addr(fd, is_unix, 0, c->laddr, sizeof c->laddr);
        if (ev_add(srv.el, fd, EV_READ, read_handler, c) < 0) {
            dstr_free(c->querybuf);
            km_free(c);
            return NULL;
        }
    }
    if (dict_add(srv.clients_by_id, (void *)(uintptr_t)c->id, c) != DICT_OK) {
        if (fd >= 0) ev_del(srv.el, fd, EV_READ | EV_WRITE);
        dstr_free(c->querybuf);
        km_free(c);
        return NULL;
    }
    c->next = srv.clients;
    if (srv.clients) srv.clients->prev = c;
    srv.clients = c;
    return c;
}

void client_reset_args(client *c) {
    resp_free_args(c->argv, c->argc);
    c->argv = NULL;
    c->argc = 0;
    c->cmd = NULL;
}

static void unlink_pending(client *c) {
    if (!(c->flags & CF_PENDING_WRITE)) return;
    for (client **pp = &srv.pending_writes; *pp; pp = &(*pp)->pw_next) {
        if (*pp == c) {
            *pp = c->pw_next;
            break;
        }
    }
    c->flags &= ~CF_PENDING_WRITE;
}

void client_free(client *c) {
    if (c->flags & CF_BLOCKED) {
        if (c->bstate.on_cancel) c->bstate.on_cancel(c);
        unblock_client(c);
    }
    multi_client_release(c);
    pubsub_client_release(c);
    if (c->fd >= 0) {
        ev_del(srv.el, c->fd, EV_READ | EV_WRITE);
        close(c->fd);
        c->fd = -1;
    }
    unlink_pending(c);
    if (c->flags & CF_CLOSE_ASAP) {
        for (client **pp = &srv.to_free; *pp; pp = &(*pp)->free_next)
            if (*pp == c) {
                *pp = c->free_next;
                break;
            }
    }
    dict_delete(srv.clients_by_id, (void *)(uintptr_t)c->id);
    if (c->prev) c->prev->next = c->next;
    else srv.clients = c->next;
    if (c->next) c->next->prev = c->prev;
    client_reset_args(c);
    resp_parser_reset(&c->parser);
    reply_free_blocks(c);
    dstr_free(c->querybuf);
    dstr_free(c->name);
    km_free(c);
}

void client_free_async(client *c) {
    if (c->flags & CF_CLOSE_ASAP) return;
    c->flags |= CF_CLOSE_ASAP;
    c->free_next = srv.to_free;
    srv.to_free = c;
}

void clients_free_pending(void) {
    while (srv.to_free) {
        client *c = srv.to_free;
        srv.to_free = c->free_next;
        c->flags &= ~CF_CLOSE_ASAP; /* already unlinked */
        client_free(c);
    }
}

static void protocol_error(client *c, const char *msg) {
    reply_errorf(c, "ERR %s", msg);
    log_msg(LL_VERBOSE, "Protocol error (%s) from client: id=%llu addr=%s", msg,
            (unsigned long long)c->id, c->addr);
    c->flags |= CF_CLOSE_AFTER_REPLY;
    c->qb_pos = dstr_len(c->querybuf); /* the rest of the input is noise now */
}

/* Runs every complete command in the query buffer, in order.  Stops while
 * the client is blocked: its later commands wait for the reply. */
void client_process_input(client *c) {
    char err[256];
    resp_limits lim = {srv.proto_max_bulk_len, !c->authenticated};
    while (c->qb_pos < dstr_len(c->querybuf)) {
        if (c->flags & (CF_BLOCKED | CF_CLOSE_AFTER_REPLY | CF_CLOSE_ASAP)) break;
        lim.unauthenticated = !c->authenticated;
        int r = resp_parse(&c->parser, c->querybuf, dstr_len(c->querybuf), &c->qb_pos,
                           &lim, err, sizeof err);
        if (r == RESP_NEED_MORE) break;
        if (r == RESP_EMPTY) continue;
        if (r == RESP_PROTO_ERR) {
            resp_parser_reset(&c->parser);
            protocol_error(c, err);
            break;
        }
        if (r == RESP_OOM) {
            log_msg(LL_WARNING, "out of memory parsing a request, closing client");
            client_free_async(c);
            break;
        }
        /* a command that blocked and was answered from outside (INFER.*,
         * CLIENT UNBLOCK) left its argv: done with now */
        if (c->argv) client_reset_args(c);
        c->argv = c->parser.argv;
        c->argc = c->parser.argc;
        resp_parser_init(&c->parser);
        c->last_ms = srv.now_ms;
        command_process(c);
        /* a blocked command keeps its argv: it runs again when woken */
        if (!(c->flags & CF_BLOCKED)) client_reset_args(c);
    }
    if (c->qb_pos > 0) {
        dstr_consume(c->querybuf, c->qb_pos);
        c->qb_pos = 0;
    }
}

/* How much to read: a chunk, or for a big argument up to as much as has
 * already arrived (so the buffer doubles as data comes, and a 512 MB value
 * takes a few dozen reads).  The claimed length itself is never used to
 * size the buffer: a client announcing 500 MB and sending 3 bytes costs
 * 16 KB, not 500 MB. */
static size_t read_len(client *c) {
    resp_parser *p = &c->parser;
    if (p->type == 2 && p->bulk >= BIG_ARG) {
        size_t have = dstr_len(c->querybuf) - c->qb_pos;
        size_t want = (size_t)p->bulk + 2;
        if (want > have) {
            size_t rest = want - have;
            size_t step = have > READ_CHUNK ? have : READ_CHUNK;
            return rest < step ? rest : step;
        }
    }
    return READ_CHUNK;
}

static void read_handler(evloop *el, int fd, void *priv, int mask) {
    (void)el; (void)fd; (void)mask;
    client *c = priv;
    if (c->flags & (CF_CLOSE_ASAP | CF_CLOSE_AFTER_REPLY)) return;
    size_t want = read_len(c);
    dstr q = dstr_reserve(c->querybuf, want);
    if (!q) {
        log_msg(LL_WARNING, "out of memory growing a query buffer, closing client");
        client_free_async(c);
        return;
    }
    c->querybuf = q;
    size_t cur = dstr_len(q);
    ssize_t n = read(c->fd, q + cur, want);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        log_msg(LL_VERBOSE, "Reading from client: %s", strerror(errno));
        client_free_async(c);
        return;
    }
    if (n == 0) {
        log_msg(LL_VERBOSE, "Client closed connection id=%llu addr=%s",
                (unsigned long long)c->id, c->addr);
        client_free_async(c);
        return;
    }
    dstr_setlen(q, cur + (size_t)n);
    srv.stat_net_input_bytes += n;
    c->last_ms = srv.now_ms;
    if (dstr_len(q) > c->qb_peak) c->qb_peak = dstr_len(q);
    if ((long long)dstr_len(q) > srv.client_query_buffer_limit) {
        log_msg(LL_WARNING, "Closing client that reached max query buffer length: id=%llu addr=%s (qbuf initial bytes: ...)",
                (unsigned long long)c->id, c->addr);
        srv.stat_client_qbuf_limit_disconnections++;
        client_free_async(c);
        return;
    }
    client_process_input(c);
}

/* Writes as much of the reply chain as the socket takes.  0 while the
 * client lives, -1 when it was freed (write error). */
static int write_to_client(client *c) {
    size_t total = 0;
    while (c->reply_bytes > 0 && total < MAX_WRITE_PER_EVENT) {
        struct iovec iov[16];
        int cnt = 0;
        size_t off = c->sent_in_head;
        for (reply_block *b = c->reply_head; b && cnt < 16; b = b->next) {
            if (b->used - off == 0) {
                off = 0;
                continue;
            }
            iov[cnt].iov_base = b->buf + off;
            iov[cnt].iov_len = b->used - off;
            cnt++;
            off = 0;
        }
        if (cnt == 0) break; /* only deferred headers not filled in yet */
        ssize_t n = writev(c->fd, iov, cnt);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            log_msg(LL_VERBOSE, "Error writing to client: %s", strerror(errno));
            client_free_async(c);
            return -1;
        }
        total += (size_t)n;
        srv.stat_net_output_bytes += n;
        c->reply_bytes -= (size_t)n;
        size_t left = (size_t)n;
        while (c->reply_head && left + c->sent_in_head >= c->reply_head->used) {
            reply_block *b = c->reply_head;
            if (b->size == 0 && b->used == 0 && b->next == NULL) break; /* unfilled deferred */
            left -= b->used - c->sent_in_head;
            c->sent_in_head = 0;
            if (b->next == NULL && b->size >= KEEP_BLOCK_MIN && b->size <= KEEP_BLOCK_MAX) {
                b->used = 0; /* the tail stays, empty, for the next reply */
                break;
            }
            c->reply_head = b->next;
            km_free(b);
            if (!c->reply_head) c->reply_tail = NULL;
        }
        if (c->reply_head) c->sent_in_head += left;
    }
    if (total) c->last_ms = srv.now_ms;
    return 0;
}

static void after_write(client *c) {
    if (c->reply_bytes > 0) {
        if (!(c->flags & CF_WRITE_HANDLER)) {
            if (ev_add(srv.el, c->fd, EV_WRITE, write_handler, c) == 0)
                c->flags |= CF_WRITE_HANDLER;
        }
        return;
    }
    if (c->flags & CF_WRITE_HANDLER) {
        ev_del(srv.el, c->fd, EV_WRITE);
        c->flags &= ~CF_WRITE_HANDLER;
    }
    if (c->flags & CF_CLOSE_AFTER_REPLY) client_free_async(c);
}

static void write_handler(evloop *el, int fd, void *priv, int mask) {
    (void)el; (void)fd; (void)mask;
    client *c = priv;
    if (c->flags & CF_CLOSE_ASAP) return;
    /* this turn's writes may not be in the AOF yet (before_sleep writes
     * it): a reply must never go out ahead of its write */
    if (aof_has_pending()) aof_flush_before_replies();
    if (write_to_client(c) == 0) after_write(c);
}

void clients_handle_pending_writes(void) {
    while (srv.pending_writes) {
        client *c = srv.pending_writes;
        srv.pending_writes = c->pw_next;
        c->flags &= ~CF_PENDING_WRITE;
        if (c->flags & CF_CLOSE_ASAP || c->fd < 0) continue;
        if (c->flags & CF_WRITE_HANDLER) continue; /* EPOLLOUT will drive it */
        if (write_to_client(c) == 0) after_write(c);
    }
}

/* Idle timeout and query-buffer shrinking; runs from the server cron. */
void clients_cron(void) {
    for (client *c = srv.clients; c; c = c->next) {
        if (c->flags & CF_CLOSE_ASAP) continue;
        if (srv.timeout_s > 0 && !(c->flags & CF_BLOCKED) &&
            srv.now_ms - c->last_ms > srv.timeout_s * 1000) {
            log_msg(LL_VERBOSE, "Closing idle client");
            client_free_async(c);
            continue;
        }
        /* an idle client gives its kept (empty) reply block back */
        if (c->reply_bytes == 0 && c->reply_head && srv.now_ms - c->last_ms > 2000) reply_free_blocks(c);
        if (c->qb_pos == 0 && dstr_len(c->querybuf) == 0 && dstr_avail(c->querybuf) > 32 * 1024 &&
            srv.now_ms - c->last_ms > 2000) {
            c->querybuf = dstr_shrink(c->querybuf);
            c->qb_peak = 0;
        }
    }
}

static void tune_socket(int fd, int is_unix) {
    set_nonblock(fd);
    if (is_unix) return;
    int yes = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    if (srv.tcp_keepalive > 0) {
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &yes, sizeof yes);
        int idle = srv.tcp_keepalive;
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    }
}

/* Redis 7.0's refusal, byte for byte: clients and Redis's own test suite
 * match on it. */
static const char protected_msg[] =
    "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set "
    "for the default user. In this mode connections are only accepted from the loopback interface. If you "
    "want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just "
    "disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface "
    "by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not "
    "publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) "
    "Alternatively you can just disable the protected mode by editing the Redis configuration file, and "
    "setting the protected mode option to 'no', and then restarting the server. 3) If you started the "
    "server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an "
    "authentication password for the default user. NOTE: You only need to do one of the above things in "
    "order for the server to start accepting connections from the outside.\r\n";

/* Whether a TCP peer is loopback as Redis 7.0 counts it: exactly
 * 127.0.0.1 or ::1 (it compares the address text), so 127.0.0.2 is not,
 * nor is an unknown peer. */
static int peer_is_local(int fd) {
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0) return 0;
    if (sa.ss_family == AF_INET)
        return ((struct sockaddr_in *)&sa)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    if (sa.ss_family == AF_INET6) return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&sa)->sin6_addr);
    return 0;
}

int client_is_local(const client *c) { return (c->flags & CF_UNIX) || peer_is_local(c->fd); }

/* Protected mode: a server started with no configuration listens on every
 * interface, so while the default user has no password only loopback and
 * Unix-socket clients are served; the others get Redis's explanation and
 * are closed (after the maxclients check, as in Redis). */
static int refuse_unprotected(int fd, int is_unix) {
    if (is_unix || !srv.protected_mode || srv.requirepass || peer_is_local(fd)) return 0;
    ssize_t w = write(fd, protected_msg, sizeof protected_msg - 1);
    (void)w; /* the connection is closed either way */
    close(fd);
    srv.stat_rejected_conn++;
    return 1;
}

static void accept_common(int lfd, int is_unix) {
    for (int i = 0; i < MAX_ACCEPTS_PER_CALL; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_msg(LL_WARNING, "Accepting client connection: %s", strerror(errno));
            return;
        }
        tune_socket(fd, is_unix);
        if (clients_count() >= srv.maxclients) {
            static const char msg[] = "-ERR max number of clients reached\r\n";
            ssize_t w = write(fd, msg, sizeof msg - 1);
            (void)w;
            close(fd);
            srv.stat_rejected_conn++;
            continue;
        }
        if (refuse_unprotected(fd, is_unix)) continue;
        if (!client_create(fd, is_unix)) {
            log_msg(LL_WARNING, "Error registering fd event for the new client: %s", strerror(errno));
            close(fd);
            continue;
        }
        srv.stat_numconnections++;
    }
}

void net_accept_handler(evloop *el, int fd, void *priv, int mask) {
    (void)el; (void)priv; (void)mask;
    accept_common(fd, 0);
}

void net_accept_unix_handler(evloop *el, int fd, void *priv, int mask) {
    (void)el; (void)priv; (void)mask;
    accept_common(fd, 1);
}

static int listen_one(const char *addr, char *err, size_t errlen) {
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", srv.port);
    struct addrinfo hints = {0}, *res, *p;
    hints.ai_family = strchr(addr, ':') ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (strcmp(addr, "*") == 0) addr = NULL;
    int rv = getaddrinfo(addr, portstr, &hints, &res);
    if (rv != 0) {
        snprintf(err, errlen, "%s", gai_strerror(rv));
        return -1;
    }
    int fd = -1;
    for (p = res; p; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype | SOCK_CLOEXEC, p->ai_protocol);
        if (fd < 0) continue;
        int yes = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        if (p->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &yes, sizeof yes);
        if (bind(fd, p->ai_addr, p->ai_addrlen) == 0 && listen(fd, srv.tcp_backlog) == 0) break;
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int listen_unix(char *err, size_t errlen) {
    struct sockaddr_un sa = {0};
    if (strlen(srv.unixsocket) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "unixsocket path too long");
        return -1;
    }
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, srv.unixsocket);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    unlink(srv.unixsocket);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) goto fail;
    if (srv.unixsocketperm) chmod(srv.unixsocket, (mode_t)srv.unixsocketperm);
    if (listen(fd, srv.tcp_backlog) < 0) goto fail;
    set_nonblock(fd);
    return fd;
fail:
    snprintf(err, errlen, "%s", strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
}

int net_listen(char *err, size_t errlen) {
    srv.nlisten = 0;
    if (srv.port != 0) {
        char addrs[1024];
        snprintf(addrs, sizeof addrs, "%s", srv.bindaddr ? srv.bindaddr : "* -::*");
        for (char *save = NULL, *tok = strtok_r(addrs, " ", &save); tok;
             tok = strtok_r(NULL, " ", &save)) {
            int optional = tok[0] == '-';
            const char *a = optional ? tok + 1 : tok;
            if (strcmp(a, "::*") == 0) a = "::";
            if (srv.nlisten == (int)(sizeof srv.listen_fds / sizeof srv.listen_fds[0])) break;
            char e[256];
            int fd = listen_one(a, e, sizeof e);
            if (fd < 0) {
                if (optional) continue;
                snprintf(err, errlen, "Could not create server TCP listening socket %s:%d: %s",
                         a, srv.port, e);
                return ERR;
            }
            set_nonblock(fd);
            if (ev_add(srv.el, fd, EV_READ, net_accept_handler, NULL) < 0) {
                snprintf(err, errlen, "cannot watch the listening socket");
                close(fd);
                return ERR;
            }
            srv.listen_fds[srv.nlisten++] = fd;
        }
    }
    srv.unix_fd = -1;
    if (srv.unixsocket) {
        char e[256];
        int fd = listen_unix(e, sizeof e);
        if (fd < 0) {
            snprintf(err, errlen, "Failed opening Unix socket: %s", e);
            return ERR;
        }
        if (ev_add(srv.el, fd, EV_READ, net_accept_unix_handler, NULL) < 0) {
            close(fd);
            snprintf(err, errlen, "cannot watch the unix socket");
            return ERR;
        }
        srv.unix_fd = fd;
    }
    if (srv.nlisten == 0 && srv.unix_fd < 0) {
        snprintf(err, errlen, "Configured to not listen anywhere, exiting.");
        return ERR;
    }
    return OK;
}

void net_close_listeners(void) {
    for (int i = 0; i < srv.nlisten; i++) close(srv.listen_fds[i]);
    srv.nlisten = 0;
    if (srv.unix_fd >= 0) {
        close(srv.unix_fd);
        if (srv.unixsocket) unlink(srv.unixsocket);
        srv.unix_fd = -1;
    }
}

dstr client_info_line(dstr s, client *c) {
    char flags[16], *f = flags;
    /* Redis's letters, in Redis's order */
    if (c->flags & CF_PUBSUB) *f++ = 'P';
    if (c->flags & CF_MULTI) *f++ = 'x';
    if (c->flags & CF_BLOCKED) *f++ = 'b';
    if (multi_dirty(c)) *f++ = 'd';
    if (c->flags & CF_CLOSE_AFTER_REPLY) *f++ = 'c';
    if (c->flags & CF_CLOSE_ASAP) *f++ = 'A';
    if (c->flags & CF_UNIX) *f++ = 'U';
    if (c->flags & CF_NO_EVICT) *f++ = 'e';
    if (f == flags) *f++ = 'N';
    *f = '\0';
    int ev = c->fd >= 0 ? ev_mask(srv.el, c->fd) : 0;
    char events[3] = {0}, *e = events;
    if (ev & EV_READ) *e++ = 'r';
    if (ev & EV_WRITE) *e++ = 'w';
    char cmdname[64] = "NULL";
    if (c->lastcmd) command_full_name(c->lastcmd, cmdname, sizeof cmdname);
    size_t obl = c->reply_head ? c->reply_head->used : 0;
    size_t oll = 0;
    for (reply_block *b = c->reply_head; b; b = b->next) oll++;
    return dstr_catfmt(s,
        "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=%d sub=%zu psub=%zu "
        "ssub=%zu multi=%d qbuf=%zu qbuf-free=%zu argv-mem=0 multi-mem=0 rbs=%zu rbp=%zu obl=%zu "
        "oll=%zu omem=%zu tot-mem=%zu events=%s cmd=%s user=default redir=-1 resp=%d",
        (unsigned long long)c->id, c->addr, c->laddr, c->fd, c->name ? c->name : "",
        (srv.now_ms - c->ctime_ms) / 1000, (srv.now_ms - c->last_ms) / 1000, flags, c->db->id,
        pubsub_client_count(c, 0), pubsub_client_count(c, 1), pubsub_client_count(c, 2),
        multi_queue_len(c),
        dstr_len(c->querybuf) - c->qb_pos, dstr_avail(c->querybuf), dstr_alloc_size(c->querybuf),
        c->qb_peak, obl, oll, c->reply_bytes,
        sizeof *c + dstr_alloc_size(c->querybuf) + c->reply_bytes, events, cmdname, c->resp);
}
