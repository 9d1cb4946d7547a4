"""test_server_streams.py - streams under real clients against a real
inferkv-server: consumer groups with many blocked consumers, blocked
readers that disconnect or are unblocked by CLIENT UNBLOCK, the order in
which blocked readers are served, and a long random workload checked
against a model of the stream.

The byte-exact replies of every stream command are checked by the
conformance corpus (tests/conformance/corpus/streams*.txt); this suite
checks what needs many clients, threads or volume."""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import RawClient, Server, Skip, Tally, check, eq, free_port  # noqa: E402

ENTRIES = int(os.environ.get("INFERKV_STREAM_ENTRIES", "3000"))
CONSUMERS = 50


def info_field(r, section, field):
    return int(r.info(section)[field])


def wait_blocked(r, n, what, deadline_s=10):
    end = time.time() + deadline_s
    while time.time() < end:
        if info_field(r, "clients", "blocked_clients") == n:
            return
        time.sleep(0.01)
    raise AssertionError("%s: blocked_clients never reached %d (is %d)"
                         % (what, n, info_field(r, "clients", "blocked_clients")))


def fifty_consumers_get_every_entry_once(srv):
    """A producer XADDs ENTRIES entries while 50 consumers of one group wait
    in XREADGROUP BLOCK and acknowledge what they get: each entry reaches
    exactly one consumer, intact, and nothing is left pending."""
    admin = redis.Redis(port=srv.port)
    admin.xgroup_create("jobs", "workers", id="$", mkstream=True)
    got = [[] for _ in range(CONSUMERS)]
    errors = []
    stop = threading.Event()

    def consume(i):
        r = redis.Redis(port=srv.port, socket_timeout=30)
        name = "consumer-%d" % i
        try:
            while True:
                reply = r.execute_command("XREADGROUP", "GROUP", "workers", name, "COUNT", 7,
                                          "BLOCK", 200, "STREAMS", "jobs", ">")
                if not reply:
                    if stop.is_set():
                        return
                    continue
                key, entries = reply[0]
                ids = []
                for eid, fields in entries:
                    got[i].append((eid, fields))
                    ids.append(eid)
                if r.xack("jobs", "workers", *ids) != len(ids):
                    errors.append("%s: XACK acknowledged fewer than delivered" % name)
        except Exception as e:  # reported below, the test must not hang
            errors.append("%s: %r" % (name, e))

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(CONSUMERS)]
    for t in threads:
        t.start()
    wait_blocked(admin, CONSUMERS, "consumers waiting before the producer starts")
    producer = redis.Redis(port=srv.port)
    sent = {}
    for n in range(ENTRIES):
        eid = producer.xadd("jobs", {"n": str(n), "payload": "job-%d" % n})
        sent[eid] = n
    end = time.time() + 60
    while time.time() < end and sum(len(g) for g in got) < ENTRIES and not errors:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    check(not errors, "consumer errors: %s" % errors[:3])
    delivered = [e for g in got for e in g]
    ids = [eid for eid, _ in delivered]
    eq(len(ids), ENTRIES, "entries delivered")
    eq(len(set(ids)), ENTRIES, "distinct entries delivered (no duplicates)")
    eq(set(ids), set(sent), "delivered ids are the produced ids")
    for eid, fields in delivered:
        n = sent[eid]
        eq(fields, {b"n": str(n).encode(), b"payload": b"job-%d" % n}, "fields of %r" % eid)
    busy = sum(1 for g in got if g)
    print("  %d entries over %d consumers (%d got some)" % (ENTRIES, CONSUMERS, busy))
    check(busy > 1, "work spread over more than one consumer")
    pending = admin.xpending("jobs", "workers")
    eq(pending["pending"], 0, "XPENDING count after every XACK")
    eq((pending["min"], pending["max"], pending["consumers"]), (None, None, []),
       "XPENDING summary of an empty PEL")
    g = admin.xinfo_groups("jobs")[0]
    eq(g["consumers"], CONSUMERS, "consumers in the group")
    eq(g["entries-read"], ENTRIES, "group entries-read")
    eq(g["lag"], 0, "group lag")
    eq(admin.xlen("jobs"), ENTRIES, "XLEN")
    admin.delete("jobs")


def disconnect_while_blocked_leaves_nothing(srv):
    """Readers blocked in XREAD and XREADGROUP that disconnect are
    forgotten: blocked_clients drops back, and the next XADD serves the
    reader that is still there (and only it)."""
    r = redis.Redis(port=srv.port)
    r.delete("dq")
    r.xgroup_create("dq", "g", id="$", mkstream=True)
    gone = []
    for args in (("XREAD", "BLOCK", 0, "STREAMS", "dq", "$"),
                 ("XREADGROUP", "GROUP", "g", "ghost", "BLOCK", 0, "STREAMS", "dq", ">"),
                 ("XREAD", "BLOCK", 0, "STREAMS", "other", "dq", "$", "$")):
        c = RawClient(srv.port)
        c.send(*args)
        gone.append(c)
    wait_blocked(r, 3, "three blocked readers")
    for c in gone:
        c.close()
    wait_blocked(r, 0, "after they disconnected")
    stay = RawClient(srv.port)
    stay.send("XREADGROUP", "GROUP", "g", "alive", "BLOCK", 0, "STREAMS", "dq", ">")
    wait_blocked(r, 1, "one new reader")
    eid = r.xadd("dq", {"f": "v"}, id="1-1")
    eq(stay.read(), ("*", [("*", [("$", b"dq"), ("*", [("*", [("$", b"1-1"), ("*", [("$", b"f"), ("$", b"v")])])])])]),
       "the remaining reader's reply")
    eq(eid, b"1-1", "XADD id")
    consumers = [d["name"] for d in r.xinfo_consumers("dq", "g")]
    eq(consumers, [b"alive"], "no consumer was created for the reader that left")
    eq(r.xpending("dq", "g")["pending"], 1, "only the delivered entry is pending")
    stay.close()
    r.delete("dq")


def client_unblock(srv):
    """CLIENT UNBLOCK answers a blocked XREAD as on timeout (a null array)
    or with the UNBLOCKED error, and says 0 for a client that is not
    blocked."""
    r = redis.Redis(port=srv.port)
    c = RawClient(srv.port)
    cid = c.call("CLIENT", "ID")[1]
    eq(r.execute_command("CLIENT", "UNBLOCK", cid), 0, "UNBLOCK of a client that is not blocked")
    c.send("XREAD", "BLOCK", 0, "STREAMS", "ub", "$")
    wait_blocked(r, 1, "XREAD blocked")
    eq(r.execute_command("CLIENT", "UNBLOCK", cid), 1, "UNBLOCK TIMEOUT")
    eq(c.read(), ("*", None), "the unblocked reader's reply")
    c.send("XREADGROUP", "GROUP", "nog", "x", "BLOCK", 0, "STREAMS", "ub", ">")
    eq(c.read()[0], "-", "XREADGROUP on a missing group does not block")
    c.send("BLPOP", "ublist", 0)
    wait_blocked(r, 1, "BLPOP blocked")
    eq(r.execute_command("CLIENT", "UNBLOCK", cid, "ERROR"), 1, "UNBLOCK ERROR")
    eq(c.read(), ("-", "UNBLOCKED client unblocked via CLIENT UNBLOCK"), "the unblocked client's error")
    wait_blocked(r, 0, "nothing blocked after UNBLOCK")
    eq(c.call("PING"), ("+", "PONG"), "the client goes on")
    r.xadd("ub", {"f": "v"})  # a waiter entry must not be left behind to serve
    eq(c.call("PING"), ("+", "PONG"), "no stray reply after XADD")
    c.close()
    r.delete("ub")


def pipelined_commands_wait_behind_a_blocked_read(srv):
    """Commands pipelined behind a blocked XREAD run after it is served (or
    times out), in order, and see its effects."""
    r = redis.Redis(port=srv.port)
    r.delete("pp")
    r.xgroup_create("pp", "g", id="$", mkstream=True)
    c = RawClient(srv.port)
    c.send_raw(RawClient.encode("XREADGROUP", "GROUP", "g", "a", "BLOCK", 0, "STREAMS", "pp", ">") +
               RawClient.encode("XPENDING", "pp", "g") + RawClient.encode("PING"))
    wait_blocked(r, 1, "XREADGROUP blocked with commands behind it")
    r.xadd("pp", {"f": "v"}, id="5-5")
    eq(c.read()[1][0][1][0], ("$", b"pp"), "the blocked read is served first")
    eq(c.read(), ("*", [(":", 1), ("$", b"5-5"), ("$", b"5-5"), ("*", [("*", [("$", b"a"), ("$", b"1")])])]),
       "XPENDING behind it sees the delivery")
    eq(c.read(), ("+", "PONG"), "then PING")
    c.send_raw(RawClient.encode("XREAD", "BLOCK", 50, "STREAMS", "pp", "$") + RawClient.encode("XLEN", "pp"))
    eq(c.read(), ("*", None), "timeout reply")
    eq(c.read(), (":", 1), "the command behind the timed-out read")
    c.close()
    r.delete("pp")


def blocked_readers_served_in_arrival_order(srv):
    """Consumers of one group that blocked one after the other get the
    following entries in that order, one entry each."""
    r = redis.Redis(port=srv.port)
    r.delete("ord")
    r.xgroup_create("ord", "g", id="$", mkstream=True)
    clients = []
    for i in range(6):
        c = RawClient(srv.port)
        c.send("XREADGROUP", "GROUP", "g", "c%d" % i, "BLOCK", 0, "STREAMS", "ord", ">")
        wait_blocked(r, i + 1, "reader %d blocked" % i)
        clients.append(c)
    for i in range(6):
        r.xadd("ord", {"i": str(i)}, id="%d-0" % (i + 1))
    for i, c in enumerate(clients):
        reply = c.read()
        entry = reply[1][0][1][1][1][0][1]
        eq(entry[0], ("$", b"%d-0" % (i + 1)), "entry of reader %d" % i)
        c.close()
    r.delete("ord")


def resp3_reply_is_a_map(srv):
    """In RESP3 XREAD answers a map of key -> entries, also when a blocked
    reader is served later."""
    c = RawClient(srv.port)
    c.call("HELLO", "3")
    r = redis.Redis(port=srv.port)
    r.delete("m3")
    r.xadd("m3", {"a": "1"}, id="1-0")
    eq(c.call("XREAD", "STREAMS", "m3", "0")[0], "%", "synchronous reply type")
    c.send("XREAD", "BLOCK", 0, "STREAMS", "m3", "$")
    wait_blocked(r, 1, "RESP3 reader blocked")
    r.xadd("m3", {"b": "2"}, id="2-0")
    got = c.read()
    eq(got[0], "%", "served reply type")
    eq(got[1][0][0], ("$", b"m3"), "served key")
    eq(c.call("XREAD", "BLOCK", 1, "STREAMS", "m3", "$"), ("_", None), "timeout in RESP3")
    c.close()
    r.delete("m3")


def served_waits_leave_nothing_behind(srv):
    """A client served long before its timeout (XREAD BLOCK 100000 and
    BLPOP 100000, each woken at once by a write, thousands of times) leaves
    no state behind: used_memory does not grow with the number of waits.
    (Each wait used to leave an event-loop timer until its deadline, about
    56 bytes each and one more entry the loop walked on every turn.)"""
    r = redis.Redis(port=srv.port)
    r.delete("tw", "twl")
    waiter, writer = RawClient(srv.port), RawClient(srv.port)

    def cycles(n):
        for i in range(n):
            waiter.send("XREAD", "BLOCK", 100000, "STREAMS", "tw", "$")
            wait_blocked(r, 1, "XREAD blocked")
            writer.call("XADD", "tw", "MAXLEN", 1, "*", "f", "v")
            eq(waiter.read()[0], "*", "the woken XREAD")
            waiter.send("BLPOP", "twl", 100000)
            wait_blocked(r, 1, "BLPOP blocked")
            writer.call("RPUSH", "twl", "x")
            eq(waiter.read(), ("*", [("$", b"twl"), ("$", b"x")]), "the woken BLPOP")

    cycles(50)  # reply blocks, dict sizes and the like settle first
    before = info_field(r, "memory", "used_memory")
    cycles(1500)
    grown = info_field(r, "memory", "used_memory") - before
    check(grown < 40000, "used_memory grew by %d bytes over 3000 served waits" % grown)
    waiter.close()
    writer.close()
    r.delete("tw", "twl")


def random_workload_matches_a_model(srv):
    """Thousands of random XADD / XDEL / XTRIM (exact) / XRANGE / XREVRANGE
    calls over a stream of several nodes agree with a plain list model."""
    rnd = random.Random(1234)
    r = redis.Redis(port=srv.port)
    r.delete("rw")
    model = []  # (ms, seq, fields) in id order
    ms, last = 1, (0, 0)  # last: the top id ever added (deletes do not lower it)
    def sid(e):
        return b"%d-%d" % (e[0], e[1])
    def rng(lo, hi, rev=False, count=None):
        sel = [e for e in model if lo <= (e[0], e[1]) <= hi]
        if rev:
            sel.reverse()
        if count is not None:
            sel = sel[:count]
        return [(sid(e), e[2]) for e in sel]
    for step in range(6000):
        op = rnd.random()
        if op < 0.55 or not model:
            ms += rnd.choice((0, 0, 1, 7))
            seq = 0 if last[0] != ms else last[1] + 1
            last = (ms, seq)
            nf = rnd.randint(1, 3)
            fields = {("f%d" % k).encode(): (b"v" * rnd.randint(0, 90)) + str(step).encode() for k in range(nf)}
            got = r.xadd("rw", fields, id="%d-%d" % (ms, seq))
            eq(got, b"%d-%d" % (ms, seq), "XADD id at step %d" % step)
            model.append((ms, seq, fields))
        elif op < 0.70:
            victims = rnd.sample(model, min(len(model), rnd.randint(1, 2)))
            n = r.xdel("rw", *[sid(v) for v in victims])
            eq(n, len(victims), "XDEL count at step %d" % step)
            for v in victims:
                model.remove(v)
        elif op < 0.705:
            keep = rnd.randint(len(model) * 3 // 4, len(model))
            n = r.execute_command("XTRIM", "rw", "MAXLEN", keep)
            eq(n, len(model) - keep, "XTRIM MAXLEN count at step %d" % step)
            model = model[len(model) - keep:]
        elif op < 0.71 and model:
            pivot = rnd.choice(model[:len(model) // 4 + 1])
            n = r.execute_command("XTRIM", "rw", "MINID", sid(pivot))
            before = [e for e in model if (e[0], e[1]) < (pivot[0], pivot[1])]
            eq(n, len(before), "XTRIM MINID count at step %d" % step)
            model = model[len(before):]
        else:
            a, b = sorted((rnd.randint(0, ms + 1), rnd.randint(0, ms + 1)))
            count = rnd.choice((None, 1, 5, 50))
            rev = rnd.random() < 0.5
            args = ["XREVRANGE", "rw", "%d" % b, "%d" % a] if rev else ["XRANGE", "rw", "%d" % a, "%d" % b]
            if count:
                args += ["COUNT", count]
            got = [(i, f) for i, f in r.execute_command(*args)]
            want = rng((a, 0), (b, 2 ** 64 - 1), rev, count)
            eq(got, want, "%s at step %d" % (" ".join(map(str, args)), step))
        if step % 500 == 0:
            eq(r.xlen("rw"), len(model), "XLEN at step %d" % step)
    eq(r.xlen("rw"), len(model), "final XLEN")
    full = r.xrange("rw", "-", "+")
    eq([i for i, _ in full], [sid(e) for e in model], "final XRANGE ids")
    print("  6000 random operations, %d entries left" % len(model))
    r.delete("rw")


class RandomStreamCommands:
    """Random stream commands over a few keys, groups and consumers, valid
    and invalid, with explicit ids (no clock-made "*" ids)."""

    def __init__(self, seed):
        self.rnd = random.Random(seed)

    def rid(self):
        rnd = self.rnd
        r = rnd.random()
        if r < 0.05:
            return rnd.choice(["-", "+", "0", "0-0", "abc", "$", ">", "18446744073709551615-18446744073709551615",
                               "(1-1", "(0"])
        ms = rnd.randint(0, 60)
        return str(ms) if r < 0.3 else "%d-%d" % (ms, rnd.randint(0, 3))

    def count(self):
        return self.rnd.choice(["0", "1", "2", "5", "100", "-1", "abc"])

    def xadd(self, k):
        rnd = self.rnd
        args = ["XADD", k]
        if rnd.random() < 0.2:
            args.append("NOMKSTREAM")
        if rnd.random() < 0.3:
            strategy = rnd.choice(["MAXLEN", "MINID"])
            args.append(strategy)
            if rnd.random() < 0.6:
                args.append(rnd.choice(["~", "="]))
            args.append(rnd.choice(["0", "1", "3", "10", "50"]) if strategy == "MAXLEN" else self.rid())
            if rnd.random() < 0.3:
                args += ["LIMIT", self.count()]
        ms = rnd.randint(0, 80)
        args.append(rnd.choice(["%d-%d" % (ms, rnd.randint(0, 3)), "%d-*" % ms, str(ms)]))
        for _ in range(rnd.randint(1, 3)):
            args += [rnd.choice(["f", "g", "h"]), str(rnd.randint(0, 300)) * rnd.randint(1, 3)]
        return args

    def next(self):
        rnd = self.rnd
        k, g, c = rnd.choice(["s1", "s2", "str"]), rnd.choice(["g1", "g2"]), rnd.choice(["c1", "c2", "c3"])
        t = rnd.randint(0, 17)
        if t <= 4:
            return self.xadd(k)
        opt_count = ["COUNT", self.count()] if rnd.random() < 0.5 else []
        return [
            lambda: ["XDEL", k] + [self.rid() for _ in range(rnd.randint(1, 3))],
            lambda: ["XRANGE", k, self.rid(), self.rid()] + opt_count,
            lambda: ["XREVRANGE", k, self.rid(), self.rid()] + opt_count,
            lambda: ["XTRIM", k, rnd.choice(["MAXLEN", "MINID"]), rnd.choice(["~", "=", "5"]),
                     rnd.choice(["2", "10", "20-0"])],
            lambda: ["XGROUP", "CREATE", k, g, rnd.choice(["$", "0", self.rid()])] +
            (["MKSTREAM"] if rnd.random() < 0.5 else []) +
            (["ENTRIESREAD", rnd.choice(["-1", "3", "100"])] if rnd.random() < 0.3 else []),
            lambda: rnd.choice([["XGROUP", "SETID", k, g, rnd.choice(["$", self.rid()])],
                                ["XGROUP", "DESTROY", k, g], ["XGROUP", "CREATECONSUMER", k, g, c],
                                ["XGROUP", "DELCONSUMER", k, g, c]]),
            lambda: ["XREADGROUP", "GROUP", g, c] + opt_count + (["NOACK"] if rnd.random() < 0.2 else []) +
            ["STREAMS", k, rnd.choice([">", ">", "0", self.rid()])],
            lambda: ["XACK", k, g] + [self.rid() for _ in range(rnd.randint(1, 3))],
            lambda: ["XCLAIM", k, g, c, rnd.choice(["0", "100000"])] + [self.rid() for _ in range(rnd.randint(1, 3))] +
            rnd.choice([[], ["JUSTID"], ["FORCE", "JUSTID"], ["RETRYCOUNT", "3", "JUSTID"], ["LASTID", self.rid(), "JUSTID"]]),
            lambda: ["XAUTOCLAIM", k, g, c, rnd.choice(["0", "100000"]), self.rid(), "COUNT",
                     rnd.choice(["1", "2", "10"]), "JUSTID"],
            lambda: rnd.choice([["XINFO", "GROUPS", k], ["XINFO", "STREAM", k], ["XLEN", k], ["XPENDING", k, g],
                                ["XREAD", "COUNT", self.count(), "STREAMS", k, self.rid()]]),
            lambda: ["XSETID", k, self.rid()] +
            (["ENTRIESADDED", rnd.choice(["0", "5", "1000"])] if rnd.random() < 0.3 else []) +
            (["MAXDELETEDID", self.rid()] if rnd.random() < 0.3 else []),
            lambda: rnd.choice([["DEL", k], ["SET", "str", "x"], ["XPENDING", k, g, "-", "+", "10"]]),
        ][min(t - 5, 12)]()


def comparable(reply, cmd):
    """What can be equal between two servers: everything but the idle times
    (clock) of extended XPENDING."""
    if cmd[0] == "XPENDING" and len(cmd) > 3 and reply[0] == "*" and reply[1]:
        return ("*", [("*", [x[1][0], x[1][1], x[1][3]]) for x in reply[1]])
    return reply


def random_commands_match_redis(srv):
    """30,000 random stream commands (valid and not) give the same replies
    as redis-server 7.0.15 fed the same sequence, in the same state."""
    redis_bin = shutil.which("redis-server")
    if not redis_bin:
        raise Skip("redis-server not installed (scripts/deps.sh)")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="inferkv-redis-")
    proc = subprocess.Popen([redis_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ref = None
        for _ in range(200):
            try:
                ref = RawClient(port)
                break
            except OSError:
                time.sleep(0.05)
        check(ref is not None, "redis-server started")
        version = [l for l in ref.call("INFO", "server")[1].decode().split("\r\n") if l.startswith("redis_version:")]
        if not version or not version[0].endswith(":7.0.15"):
            raise Skip("reference is %s, not 7.0.15" % version)
        ours = RawClient(srv.port)
        differing = []
        total = 0
        for seed in (1, 2, 3, 4, 5):
            ours.call("FLUSHALL")
            ref.call("FLUSHALL")
            gen = RandomStreamCommands(seed)
            for _ in range(6000):
                cmd = gen.next()
                a, b = comparable(ours.call(*cmd), cmd), comparable(ref.call(*cmd), cmd)
                total += 1
                if a != b:
                    differing.append((seed, " ".join(cmd), a, b))
        print("  %d random commands, %d differing" % (total, len(differing)))
        check(not differing, "first differences: %s" % differing[:3])
        ours.close()
        ref.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t = Tally()
    with Server() as srv:
        t.run(fifty_consumers_get_every_entry_once, srv)
        t.run(disconnect_while_blocked_leaves_nothing, srv)
        t.run(client_unblock, srv)
        t.run(pipelined_commands_wait_behind_a_blocked_read, srv)
        t.run(blocked_readers_served_in_arrival_order, srv)
        t.run(resp3_reply_is_a_map, srv)
        t.run(served_waits_leave_nothing_behind, srv)
        t.run(random_workload_matches_a_model, srv)
        t.run(random_commands_match_redis, srv)
        if not srv.alive():
            print("  FAIL server died")
            t.failed += 1
    t.done()


if __name__ == "__main__":
    main()
