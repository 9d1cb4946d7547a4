/* pubsub_bench.c - PUBLISH fan-out benchmark for any RESP server.
 *
 * Opens S subscriber connections that SUBSCRIBE to one channel and one
 * publisher connection that sends N PUBLISH commands in pipelined windows,
 * all driven by one epoll loop, and measures the time from the first
 * PUBLISH until every subscriber has received every message.  Messages
 * have a fixed size, so a subscriber is done when it has read exactly
 * N * frame bytes; nothing is parsed on the hot path, so the client costs
 * little next to the server it measures.  Prints one JSON line:
 * delivered messages per second (S * N / elapsed) and publishes per second.
 *
 * Written for bench/bench_pubsub.sh, which runs it against inferkv-server
 * and redis-server in the same run. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SUBS 10000

typedef struct conn {
    int fd;
    long long got;  /* bytes received after the SUBSCRIBE confirmation */
    long long want; /* bytes of confirmation still to skip */
} conn;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n bytes (blocking); 0 on success. */
static int read_exact(int fd, char *buf, size_t n) {
    while (n) {
        ssize_t r = read(fd, buf, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) continue;
            return -1;
        }
        buf += r;
        n -= (size_t)r;
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: pubsub-bench -p PORT [-s SUBSCRIBERS] [-n MESSAGES] [-d BYTES] [-P WINDOW]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int port = 0, nsubs = 100, window = 64;
    long long nmsg = 20000, dsize = 16;
    int opt;
    while ((opt = getopt(argc, argv, "p:s:n:d:P:")) != -1) {
        char *end;
        long long v = strtoll(optarg, &end, 10);
        if (*end || v <= 0) usage();
        switch (opt) {
        case 'p': port = (int)v; break;
        case 's': nsubs = (int)v; break;
        case 'n': nmsg = v; break;
        case 'd': dsize = v; break;
        case 'P': window = (int)v; break;
        default: usage();
        }
    }
    if (port <= 0 || port > 65535 || nsubs > MAX_SUBS || dsize > 1 << 20 || window > 100000) usage();

    static const char chan[] = "bench-channel";
    char *payload = malloc((size_t)dsize);
    conn *subs = calloc((size_t)nsubs, sizeof *subs);
    if (!payload || !subs) {
        perror("malloc");
        return 1;
    }
    memset(payload, 'p', (size_t)dsize);
    /* the frame every subscriber receives per message */
    long long frame = snprintf(NULL, 0, "*3\r\n$7\r\nmessage\r\n$%zu\r\n%s\r\n$%lld\r\n", strlen(chan), chan, dsize) +
                      dsize + 2;
    char confirm[128];
    int clen = snprintf(confirm, sizeof confirm, "*3\r\n$9\r\nsubscribe\r\n$%zu\r\n%s\r\n:1\r\n", strlen(chan), chan);

    char sub_cmd[128];
    int slen = snprintf(sub_cmd, sizeof sub_cmd, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(chan), chan);
    for (int i = 0; i < nsubs; i++) {
        subs[i].fd = dial(port);
        if (subs[i].fd < 0 || write_all(subs[i].fd, sub_cmd, (size_t)slen) < 0) {
            perror("subscriber");
            return 1;
        }
        char got[128];
        if (read_exact(subs[i].fd, got, (size_t)clen) < 0 || memcmp(got, confirm, (size_t)clen) != 0) {
            fprintf(stderr, "subscriber %d: unexpected SUBSCRIBE reply\n", i);
            return 1;
        }
    }
    int pub = dial(port);
    if (pub < 0) {
        perror("publisher");
        return 1;
    }

    /* one PUBLISH command, repeated */
    size_t cmdlen = (size_t)snprintf(NULL, 0, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%lld\r\n", strlen(chan), chan, dsize) +
                    (size_t)dsize + 2;
    char *cmd = malloc(cmdlen * (size_t)window);
    if (!cmd) {
        perror("malloc");
        return 1;
    }
    for (int w = 0; w < window; w++) {
        char *p = cmd + cmdlen * (size_t)w;
        int h = sprintf(p, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%lld\r\n", strlen(chan), chan, dsize);
        memcpy(p + h, payload, (size_t)dsize);
        memcpy(p + h + dsize, "\r\n", 2);
    }

    int ep = epoll_create1(0);
    if (ep < 0) {
        perror("epoll");
        return 1;
    }
    for (int i = 0; i < nsubs; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, subs[i].fd, &ev) < 0) {
            perror("epoll_ctl");
            return 1;
        }
    }
    struct epoll_event pev = {.events = EPOLLIN, .data.u32 = (uint32_t)nsubs};
    epoll_ctl(ep, EPOLL_CTL_ADD, pub, &pev);

    long long sent = 0, replies = 0, done_subs = 0, target = nmsg * frame;
    char buf[1 << 16];
    double start = now_s();
    /* The publisher keeps at most one window in flight: it sends the next
     * window when all replies of the previous one are in. */
    long long inflight = 0;
    while (done_subs < nsubs || replies < nmsg) {
        if (inflight == 0 && sent < nmsg) {
            long long n = nmsg - sent < window ? nmsg - sent : window;
            if (write_all(pub, cmd, cmdlen * (size_t)n) < 0) {
                perror("publish");
                return 1;
            }
            sent += n;
            inflight = n;
        }
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 10000);
        if (k == 0) {
            fprintf(stderr, "stalled: %lld of %lld subscribers done, %lld replies\n", done_subs,
                    (long long)nsubs, replies);
            return 1;
        }
        for (int e = 0; e < k; e++) {
            uint32_t id = evs[e].data.u32;
            int fd = id == (uint32_t)nsubs ? pub : subs[id].fd;
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                fprintf(stderr, "connection closed by the server\n");
                return 1;
            }
            if (id == (uint32_t)nsubs) {
                /* replies are ":<n>\r\n": count line ends */
                for (ssize_t i = 0; i < r; i++)
                    if (buf[i] == '\n') {
                        replies++;
                        inflight--;
                    }
            } else {
                conn *c = &subs[id];
                int was_done = c->got >= target;
                c->got += r;
                if (!was_done && c->got >= target) done_subs++;
            }
        }
    }
    double elapsed = now_s() - start;
    printf("{\"subscribers\": %d, \"messages\": %lld, \"payload_bytes\": %lld, \"window\": %d, "
           "\"elapsed_s\": %.4f, \"delivered_per_s\": %.0f, \"published_per_s\": %.0f}\n",
           nsubs, nmsg, dsize, window, elapsed, (double)nsubs * (double)nmsg / elapsed, (double)nmsg / elapsed);
    for (int i = 0; i < nsubs; i++) close(subs[i].fd);
    close(pub);
    close(ep);
    free(cmd);
    free(subs);
    free(payload);
    return 0;
}
