/* test_core_cqueue.c - the completion queue between worker threads and the
 * event loop: items posted from several threads are all delivered, each
 * producer's in its posting order, and the eventfd becomes readable. */
#include "test.h"
#include "core.h"

#include <poll.h>
#include <pthread.h>

#define PRODUCERS 4
#define PER 2000

static cqueue *q;
static int last_seen[PRODUCERS];
static int delivered, out_of_order;
static cq_item items[PRODUCERS][PER];

static void deliver(cq_item *it) {
    int prod = (int)(it->client_id >> 32), seq = (int)(it->client_id & 0xffffffff);
    if (seq != last_seen[prod] + 1) out_of_order++;
    last_seen[prod] = seq;
    delivered++;
}

static void *producer(void *arg) {
    int p = (int)(intptr_t)arg;
    for (int i = 0; i < PER; i++) {
        items[p][i].client_id = ((uint64_t)p << 32) | (uint64_t)i;
        items[p][i].deliver = deliver;
        cq_post(q, &items[p][i]);
    }
    return NULL;
}

static void test_many_producers(void) {
    char err[128];
    q = cq_create(err, sizeof err);
    CHECK(q);
    for (int p = 0; p < PRODUCERS; p++) last_seen[p] = -1;
    pthread_t th[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) pthread_create(&th[p], NULL, producer, (void *)(intptr_t)p);
    while (delivered < PRODUCERS * PER) {
        struct pollfd pfd = {cq_fd(q), POLLIN, 0};
        if (poll(&pfd, 1, 1000) == 1) cq_drain(q);
        else break;
    }
    for (int p = 0; p < PRODUCERS; p++) pthread_join(th[p], NULL);
    cq_drain(q);
    CHECK_EQ_INT(delivered, PRODUCERS * PER);
    CHECK_EQ_INT(out_of_order, 0);
    cq_destroy(q);
}

int main(void) {
    TEST_RUN(test_many_producers);
    return TEST_DONE();
}
