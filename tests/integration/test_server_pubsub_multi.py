"""test_server_pubsub_multi.py - pub/sub, keyspace notifications and
transactions against a real inferkv-server, with real clients (redis-py
and the harness's raw RESP client).

Scenarios (each states the behaviour it checks):
- 100 subscribers on one pattern receive every published message, each in
  publication order, and PUBLISH counts all of them as receivers;
- 20 clients racing optimistic transactions (WATCH/GET/MULTI/SET/EXEC,
  retrying on abort) on one counter end at exactly clients x increments;
- a subscriber that never reads is disconnected by the pubsub output-buffer
  limit while a reading subscriber keeps receiving everything, and the
  server's memory stays bounded while megabytes are published at it;
- RESP3 subscribers get push messages and may run ordinary commands;
- active expiry raises "expired" notifications and aborts a WATCH on the
  key without any client touching it.
"""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import RawClient, Server, Skip, Tally, check, eq  # noqa: E402

try:
    import redis
except ImportError:  # python3-redis is a Debian package (scripts/deps.sh)
    redis = None

SUBSCRIBERS = 100
MESSAGES = 200
RACERS = 20
INCREMENTS = 50


def need_redis_py():
    if redis is None:
        raise Skip("python3-redis is not installed")


def info_field(r, section, field):
    return r.info(section).get(field)


def pattern_fanout(srv):
    """100 pattern subscribers each get all MESSAGES, in order."""
    need_redis_py()
    subs = []
    try:
        for _ in range(SUBSCRIBERS):
            p = redis.Redis(port=srv.port).pubsub()
            p.psubscribe("feed.*")
            msg = p.get_message(timeout=5)
            eq(msg["type"], "psubscribe", "psubscribe confirmation")
            subs.append(p)
        pub = redis.Redis(port=srv.port)
        eq(pub.execute_command("PUBSUB", "NUMPAT"), 1, "one distinct pattern")
        for i in range(MESSAGES):
            n = pub.publish("feed.%d" % (i % 7), "m%d" % i)
            eq(n, SUBSCRIBERS, "receivers of message %d" % i)
        # a message on a channel the pattern does not match reaches nobody
        eq(pub.publish("other", "x"), 0, "non-matching channel")
        for k, p in enumerate(subs):
            for i in range(MESSAGES):
                msg = p.get_message(timeout=5)
                check(msg is not None, "subscriber %d missed message %d" % (k, i))
                eq(msg["type"], "pmessage", "type")
                eq(msg["pattern"], b"feed.*", "pattern")
                eq(msg["channel"], b"feed.%d" % (i % 7), "channel")
                eq(msg["data"], b"m%d" % i, "subscriber %d order" % k)
            eq(p.get_message(timeout=0.05), None, "no extra message")
    finally:
        for p in subs:
            p.close()
    # closing the connections removes the subscriptions
    pub = redis.Redis(port=srv.port)
    deadline = time.time() + 5
    while pub.execute_command("PUBSUB", "NUMPAT") != 0 and time.time() < deadline:
        time.sleep(0.05)
    eq(pub.execute_command("PUBSUB", "NUMPAT"), 0, "patterns left after disconnect")


def watch_race(srv):
    """20 clients x 50 optimistic increments end at exactly 1000."""
    need_redis_py()
    r = redis.Redis(port=srv.port)
    r.set("race:counter", 0)
    errors = []
    aborted = [0]
    lock = threading.Lock()

    def worker():
        c = redis.Redis(port=srv.port)
        try:
            for _ in range(INCREMENTS):
                while True:
                    with c.pipeline(transaction=True) as p:
                        try:
                            p.watch("race:counter")
                            v = int(p.get("race:counter"))
                            p.multi()
                            p.set("race:counter", v + 1)
                            p.execute()
                            break
                        except redis.WatchError:
                            with lock:
                                aborted[0] += 1
        except Exception as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not any(t.is_alive() for t in threads), "racers did not finish")
    check(not errors, "racer errors: %r" % errors[:3])
    eq(int(r.get("race:counter")), RACERS * INCREMENTS, "final count")
    print("       (%d transactions aborted and retried)" % aborted[0])


def slow_subscriber_cut_off(srv):
    """A subscriber that never reads is dropped at the pubsub hard limit;
    memory stays bounded; a reading subscriber gets every message."""
    need_redis_py()
    r = redis.Redis(port=srv.port)
    r.config_set("client-output-buffer-limit", "pubsub 2mb 1mb 60")
    before = info_field(r, "stats", "client_output_buffer_limit_disconnections") or 0

    slow = socket.create_connection(("127.0.0.1", srv.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(RawClient.encode("SUBSCRIBE", "big"))
    fast = redis.Redis(port=srv.port).pubsub()
    fast.subscribe("big")
    eq(fast.get_message(timeout=5)["type"], "subscribe", "fast subscribed")
    time.sleep(0.1)

    base = info_field(r, "memory", "used_memory")
    payload = b"x" * (64 * 1024)
    peak = base
    receivers = []
    received = 0
    total = 320  # 20 MB published at a client that reads nothing
    for i in range(total):
        receivers.append(r.publish("big", payload))
        while True:  # keep the fast subscriber drained
            m = fast.get_message(timeout=0)
            if m is None:
                break
            eq(m["data"], payload, "fast subscriber payload")
            received += 1
        if i % 16 == 0:
            peak = max(peak, info_field(r, "memory", "used_memory"))
    while received < total:
        m = fast.get_message(timeout=5)
        check(m is not None, "fast subscriber got %d of %d" % (received, total))
        received += 1
    peak = max(peak, info_field(r, "memory", "used_memory"))
    eq(receivers[0], 2, "both subscribers at first")
    eq(receivers[-1], 1, "the slow subscriber is gone at the end")
    after = info_field(r, "stats", "client_output_buffer_limit_disconnections")
    eq(after, before + 1, "output-buffer disconnections")
    eq(r.execute_command("PUBSUB", "NUMSUB", "big"), [b"big", 1], "NUMSUB after the cut")
    # the slow client's buffer (2 MB limit) plus one block of slack: not 20 MB
    check(peak - base < 8 * 1024 * 1024, "memory grew by %d bytes" % (peak - base))
    # the server freed the slow client: only the fast one is a pubsub client
    # (draining the slow socket to see its EOF would take minutes at a 4 KB
    # receive window)
    pubsub_clients = r.execute_command("CLIENT", "LIST", "TYPE", "pubsub").decode().strip().splitlines()
    eq(len(pubsub_clients), 1, "pubsub clients left")
    slow.close()
    fast.close()
    r.config_set("client-output-buffer-limit", "pubsub 32mb 8mb 60")


def resp3_push_and_commands(srv):
    """RESP3 subscribers get '>' pushes and may run GET while subscribed;
    RESP2 subscribers may not."""
    c3 = RawClient(srv.port)
    eq(c3.call("HELLO", "3")[0], "%", "HELLO 3 map")
    eq(c3.call("SUBSCRIBE", "r3"), (">", [("$", b"subscribe"), ("$", b"r3"), (":", 1)]), "push confirm")
    eq(c3.call("SET", "r3key", "v"), ("+", "OK"), "RESP3 may SET while subscribed")
    pub = RawClient(srv.port)
    eq(pub.call("PUBLISH", "r3", "hello"), (":", 1), "publish")
    eq(c3.read(), (">", [("$", b"message"), ("$", b"r3"), ("$", b"hello")]), "push message")
    c2 = RawClient(srv.port)
    c2.call("SUBSCRIBE", "r2")
    t, msg = c2.call("GET", "r3key")
    eq(t, "-", "RESP2 GET refused while subscribed")
    check("only (P|S)SUBSCRIBE" in msg, msg)
    eq(c2.call("PING"), ("*", [("$", b"pong"), ("$", b"")]), "RESP2 subscribed PING")
    eq(c2.call("RESET"), ("+", "RESET"), "RESET")
    eq(c2.call("GET", "r3key"), ("$", b"v"), "normal mode after RESET")
    eq(pub.call("PUBSUB", "NUMSUB", "r2"), ("*", [("$", b"r2"), (":", 0)]), "RESET unsubscribed")
    for c in (c3, c2, pub):
        c.close()


def active_expiry_notifies_and_unwatches(srv):
    """Active expiry (no client touches the key) publishes "expired" and
    makes a WATCHing client's EXEC fail."""
    sub = RawClient(srv.port)
    sub.call("CONFIG", "SET", "notify-keyspace-events", "Ex")
    sub.call("SUBSCRIBE", "__keyevent@0__:expired")
    w = RawClient(srv.port)
    eq(w.call("SET", "ttlkey", "v", "PX", "100"), ("+", "OK"), "set with ttl")
    eq(w.call("WATCH", "ttlkey"), ("+", "OK"), "watch")
    msg = sub.read()  # arrives from the active expiry cycle
    eq(msg, ("*", [("$", b"message"), ("$", b"__keyevent@0__:expired"), ("$", b"ttlkey")]), "expired event")
    eq(w.call("MULTI"), ("+", "OK"), "multi")
    eq(w.call("SET", "ttlkey", "again"), ("+", "QUEUED"), "queued")
    eq(w.call("EXEC"), ("*", None), "EXEC aborted by the expiry")
    eq(w.call("EXISTS", "ttlkey"), (":", 0), "the queued SET did not run")
    sub.call("CONFIG", "SET", "notify-keyspace-events", "")
    sub.close()
    w.close()


def main():
    tally = Tally()
    with Server() as srv:
        for fn in (pattern_fanout, watch_race, slow_subscriber_cut_off, resp3_push_and_commands,
                   active_expiry_notifies_and_unwatches):
            tally.run(fn, srv)
        if not srv.alive():
            print("  FAIL server died:\n" + srv.log_text()[-2000:])
            tally.failed += 1
    tally.done()


if __name__ == "__main__":
    main()
