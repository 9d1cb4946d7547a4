"""test_server_basic.py - a realistic session against a real inferkv-server
with redis-py (RESP2) and a raw RESP3 client: every data family, expiry
(lazy and active), SCAN completeness, eviction, AUTH, blocking pops,
pipelining and a Unix socket.  Each check states the behaviour it needs."""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import RawClient, Server, Skip, Tally, check, eq, free_port, stop_process, wait_up  # noqa: E402

import redis  # Debian python3-redis, run with /usr/bin/python3


def r_for(srv, **kw):
    return redis.Redis(host="127.0.0.1", port=srv.port, decode_responses=True, **kw)


def strings(srv):
    r = r_for(srv)
    r.flushall()
    eq(r.set("greeting", "hello"), True, "SET")
    eq(r.get("greeting"), "hello", "GET")
    eq(r.append("greeting", " world"), 11, "APPEND returns the new length")
    eq(r.getrange("greeting", -5, -1), "world", "GETRANGE with negative indexes")
    eq(r.setrange("greeting", 0, "J"), 11, "SETRANGE")
    eq(r.get("greeting"), "Jello world", "SETRANGE result")
    eq(r.incr("n"), 1, "INCR creates")
    eq(r.incrby("n", 41), 42, "INCRBY")
    eq(r.incrbyfloat("f", "10.5"), 10.5, "INCRBYFLOAT")
    raw = RawClient(srv.port)
    eq(raw.call("INCRBYFLOAT", "f", "0.1"), ("$", b"10.6"), "INCRBYFLOAT prints like Redis")
    raw.close()
    eq(r.mset({"a": "1", "b": "2"}), True, "MSET")
    eq(r.mget("a", "b", "missing"), ["1", "2", None], "MGET with a missing key")
    eq(r.set("a", "x", nx=True), None, "SET NX on an existing key")
    eq(r.set("a", "y", xx=True, get=True), "1", "SET XX GET returns the old value")
    try:
        r.incr("greeting")
        raise AssertionError("INCR on text must fail")
    except redis.ResponseError as e:
        eq(str(e), "value is not an integer or out of range", "INCR error text")
    r.setbit("bits", 7, 1)
    eq(r.bitcount("bits"), 1, "BITCOUNT")
    eq(r.bitpos("bits", 1), 7, "BITPOS")


def expiry(srv):
    r = r_for(srv)
    r.flushall()
    r.set("short", "v", px=150)
    check(0 < r.pttl("short") <= 150, "PTTL within the set time")
    time.sleep(0.3)
    eq(r.get("short"), None, "lazy expiry on access")
    # active expiry: keys that are never read again still go away
    for i in range(200):
        r.set("tmp:%d" % i, "v", px=100)
    r.set("keep", "v")
    time.sleep(1.5)
    eq(r.dbsize(), 1, "active expiry removed every expired key")
    eq(r.expire("keep", 100, nx=True), True, "EXPIRE NX on a key without TTL")
    eq(r.expire("keep", 50, gt=True), False, "EXPIRE GT with a smaller TTL")
    eq(r.persist("keep"), True, "PERSIST")
    eq(r.ttl("keep"), -1, "TTL after PERSIST")
    eq(r.ttl("nokey"), -2, "TTL of a missing key")


def lists(srv):
    r = r_for(srv)
    r.flushall()
    eq(r.rpush("l", "a", "b", "c"), 3, "RPUSH")
    eq(r.lpush("l", "z"), 4, "LPUSH")
    eq(r.lrange("l", 0, -1), ["z", "a", "b", "c"], "LRANGE")
    eq(r.linsert("l", "before", "b", "x"), 5, "LINSERT")
    eq(r.lpos("l", "x"), 2, "LPOS")
    eq(r.lpop("l", 2), ["z", "a"], "LPOP with count")
    eq(r.lmove("l", "l2", "RIGHT", "LEFT"), "c", "LMOVE")
    eq(r.lrem("l", 0, "x"), 1, "LREM")
    eq(r.lrange("l", 0, -1), ["b"], "list after LREM")
    r.rpush("big", *range(1000))
    eq(r.ltrim("big", 100, 199), True, "LTRIM")
    eq(r.llen("big"), 100, "LLEN after LTRIM")
    eq(r.lindex("big", -1), "199", "LINDEX negative")


def hashes(srv):
    r = r_for(srv)
    r.flushall()
    eq(r.hset("h", mapping={"f1": "v1", "f2": "v2"}), 2, "HSET")
    eq(r.hgetall("h"), {"f1": "v1", "f2": "v2"}, "HGETALL")
    eq(r.hincrby("h", "n", 5), 5, "HINCRBY")
    eq(r.hincrbyfloat("h", "x", 1.5), 1.5, "HINCRBYFLOAT")
    eq(r.hdel("h", "f1", "nope"), 1, "HDEL")
    eq(sorted(r.hkeys("h")), ["f2", "n", "x"], "HKEYS")
    big = {"field:%d" % i: str(i) for i in range(3000)}
    r.hset("bigh", mapping=big)
    seen = dict(r.hscan_iter("bigh", count=50))
    eq(seen, big, "HSCAN returns every field of a large hash")


def sets(srv):
    r = r_for(srv)
    r.flushall()
    eq(r.sadd("s1", "a", "b", "c"), 3, "SADD")
    r.sadd("s2", "b", "c", "d")
    eq(r.sinter("s1", "s2"), {"b", "c"}, "SINTER")
    eq(r.sunionstore("u", "s1", "s2"), 4, "SUNIONSTORE")
    eq(r.sdiff("s1", "s2"), {"a"}, "SDIFF")
    eq(r.smismember("s1", "a", "z"), [1, 0], "SMISMEMBER")
    eq(r.execute_command("SINTERCARD", 2, "s1", "s2"), 2, "SINTERCARD")
    popped = r.spop("u", 4)
    eq(sorted(popped), ["a", "b", "c", "d"], "SPOP count takes everything")
    eq(r.exists("u"), 0, "an emptied set is deleted")
    members = {str(i) for i in range(2000)}
    r.sadd("bigs", *members)
    eq(set(r.sscan_iter("bigs", count=100)), members, "SSCAN completeness")


def zsets(srv):
    r = r_for(srv)
    r.flushall()
    eq(r.zadd("z", {"a": 1, "b": 2, "c": 3}), 3, "ZADD")
    eq(r.zrange("z", 0, -1, withscores=True), [("a", 1.0), ("b", 2.0), ("c", 3.0)], "ZRANGE WITHSCORES")
    eq(r.zincrby("z", 10, "a"), 11.0, "ZINCRBY")
    eq(r.zrank("z", "a"), 2, "ZRANK after ZINCRBY")
    eq(r.zrangebyscore("z", "(2", "+inf"), ["c", "a"], "ZRANGEBYSCORE exclusive")
    eq(r.zrevrangebyscore("z", "+inf", "-inf", start=0, num=1), ["a"], "ZREVRANGEBYSCORE LIMIT")
    raw = RawClient(srv.port)
    eq(raw.call("ZSCORE", "z", "b"), ("$", b"2"), "ZSCORE formatting")
    r.zadd("w", {"b": 1, "d": 1})
    eq(r.zunionstore("zu", {"z": 1, "w": 2}), 4, "ZUNIONSTORE WEIGHTS")
    eq(r.zscore("zu", "b"), 4.0, "weighted sum")
    eq(r.zpopmin("zu"), [("d", 2.0)], "ZPOPMIN takes the lowest score")
    eq(r.zadd("z", {"c": 1}, gt=True, ch=True), 0, "ZADD GT does not lower a score")
    eq(r.execute_command("ZADD", "zf", "1.1", "m"), 1, "ZADD float")
    eq(raw.call("ZSCORE", "zf", "m"), ("$", b"1.1000000000000001"), "ZSCORE is %.17g as in Redis 7.0")
    raw.close()


def keyspace(srv):
    r = r_for(srv)
    r.flushall()
    names = {"key:%d" % i for i in range(5000)}
    with r.pipeline(transaction=False) as p:
        for n in names:
            p.set(n, "v")
        p.execute()
    got = set(r.scan_iter(count=100))
    eq(got, names, "SCAN returns every key while the table is rehashing")
    eq(set(r.scan_iter(match="key:1??")), {"key:%d" % i for i in range(100, 200)}, "SCAN MATCH")
    eq(r.rename("key:1", "renamed"), True, "RENAME")
    eq(r.execute_command("COPY", "renamed", "copied", "DB", 3), 1, "COPY to another db")
    eq(r.move("renamed", 2), True, "MOVE")
    r2 = redis.Redis(host="127.0.0.1", port=srv.port, db=2, decode_responses=True)
    eq(r2.get("renamed"), "v", "the moved key is in db 2")
    eq(r.swapdb(0, 2), True, "SWAPDB")
    eq(r2.dbsize(), 4999, "db 2 now holds what db 0 held")
    eq(r.type("renamed"), "string", "TYPE")
    eq(r.object("encoding", "renamed"), "embstr", "OBJECT ENCODING")


def resp3(srv):
    c = RawClient(srv.port)
    hello = c.call("HELLO", "3")
    eq(hello[0], "%", "HELLO 3 answers a map")
    fields = {k[1]: v[1] for k, v in hello[1]}
    eq(fields[b"proto"], 3, "proto field")
    c.call("HSET", "h3", "f", "v")
    eq(c.call("HGETALL", "h3"), ("%", [(("$", b"f"), ("$", b"v"))]), "HGETALL is a map")
    c.call("SADD", "s3", "x")
    eq(c.call("SMEMBERS", "s3"), ("~", [("$", b"x")]), "SMEMBERS is a set")
    c.call("ZADD", "z3", "1.5", "m")
    eq(c.call("ZSCORE", "z3", "m"), (",", "1.5"), "ZSCORE is a double")
    eq(c.call("GET", "missing"), ("_", None), "null in RESP3")
    eq(c.call("ZRANGE", "z3", "0", "-1", "WITHSCORES"), ("*", [("*", [("$", b"m"), (",", "1.5")])]),
       "WITHSCORES pairs in RESP3")
    eq(c.call("INFO", "server")[0], "=", "INFO is a verbatim string")
    eq(c.call("HELLO", "2")[0], "*", "back to RESP2 the map is flattened")
    c.close()


def pipelining(srv):
    c = RawClient(srv.port)
    n = 2000
    c.send_raw(b"".join(RawClient.encode("INCR", "pipe") for _ in range(n)))
    for i in range(1, n + 1):
        eq(c.read(), (":", i), "pipelined reply %d in order" % i)
    c.close()


def maxmemory(srv):
    r = r_for(srv)
    r.flushall()
    used = int(r.info("memory")["used_memory"])
    r.config_set("maxmemory", str(used + 2 * 1024 * 1024))
    r.config_set("maxmemory-policy", "allkeys-lru")
    for i in range(20000):
        r.set("evict:%d" % i, "x" * 200)
    check(r.dbsize() < 20000, "allkeys-lru evicted keys")
    check(int(r.info("stats")["evicted_keys"]) > 0, "evicted_keys counted")
    r.config_set("maxmemory-policy", "noeviction")
    try:
        for i in range(20000):
            r.set("more:%d" % i, "x" * 200)
        raise AssertionError("noeviction must refuse writes over the limit")
    except redis.ResponseError as e:
        check(str(e).startswith("OOM command not allowed"), "OOM error text: %s" % e)
    eq(r.get("evict:19999"), "x" * 200, "reads still work at the limit")
    r.config_set("maxmemory", "0")
    r.flushall()


def auth(srv):
    r = r_for(srv)
    r.config_set("requirepass", "s3cret")
    try:
        c = RawClient(srv.port)
        eq(c.call("GET", "k"), ("-", "NOAUTH Authentication required."), "NOAUTH before AUTH")
        eq(c.call("AUTH", "wrong"), ("-", "WRONGPASS invalid username-password pair or user is disabled."),
           "wrong password")
        eq(c.call("AUTH", "s3cret"), ("+", "OK"), "AUTH")
        eq(c.call("PING"), ("+", "PONG"), "commands work after AUTH")
        c.close()
        c = RawClient(srv.port)
        eq(c.call("HELLO", "3", "AUTH", "default", "s3cret")[0], "%", "HELLO AUTH")
        c.close()
    finally:
        c = RawClient(srv.port)
        c.call("AUTH", "s3cret")
        c.call("CONFIG", "SET", "requirepass", "")
        c.close()


def blocking(srv):
    r = r_for(srv)
    r.flushall()
    got = {}

    def waiter():
        w = r_for(srv)
        got["v"] = w.blpop(["q1", "q2"], timeout=5)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.3)
    eq(r.set("other", "x"), True, "other clients go on while one is blocked")
    r.rpush("q2", "job")
    t.join(5)
    eq(got.get("v"), ("q2", "job"), "BLPOP woken by a push from another client")
    t0 = time.time()
    eq(r.brpop("never", timeout=0.2), None, "BRPOP times out with nil")
    check(time.time() - t0 < 2, "timeout honoured")
    eq(int(r.info("clients")["blocked_clients"]), 0, "no blocked client left behind")


def clients_and_timeout(srv):
    r = r_for(srv)
    eq(r.client_setname("session"), True, "CLIENT SETNAME")
    eq(r.client_getname(), "session", "CLIENT GETNAME")
    check("name=session" in r.execute_command("CLIENT", "INFO"), "CLIENT INFO shows the name")
    victim = RawClient(srv.port)
    vid = victim.call("CLIENT", "ID")[1]
    eq(r.execute_command("CLIENT", "KILL", "ID", vid), 1, "CLIENT KILL ID")
    check(victim.closed_by_peer(), "killed client is disconnected")
    r.config_set("timeout", "1")
    idle = RawClient(srv.port)
    idle.call("PING")
    check(idle.closed_by_peer(wait=4), "idle client closed after timeout")
    r.config_set("timeout", "0")


def unix_socket(srv):
    r = redis.Redis(unix_socket_path=srv.unixsocket, decode_responses=True)
    eq(r.ping(), True, "PING over the Unix socket")
    r.set("via-unix", "yes")
    eq(r_for(srv).get("via-unix"), "yes", "same keyspace over TCP")


ERROR_SESSION = [("NOSUCHCMD",), ("SET", "s", "1"), ("LPUSH", "s", "x"), ("INCR", "s", "x"),
                 ("SET", "n", "abc"), ("INCR", "n"), ("XREADGROUP", "GROUP", "g", "c", "STREAMS", "nos", ">"),
                 ("HSET", "h"), ("GET", "s", "extra")]


def info_sections_and_errorstats(srv):
    """INFO's default sections are Redis's, in its order, and errorstats
    counts the same session's errors under the same codes; CONFIG RESETSTAT
    clears them.  Compared with redis-server 7.0.15 in the same run."""
    exe = shutil.which("redis-server")
    if not exe:
        raise Skip("redis-server not installed")
    port, d = free_port(), tempfile.mkdtemp(prefix="inferkv-basic-redis-")
    ref = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", d],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        rr = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
        check(wait_up(ref, rr.ping, errors=(redis.exceptions.ConnectionError, OSError)), "redis-server started")
        ours = RawClient(srv.port)
        theirs = RawClient(port)
        for c in (ours, theirs):
            c.call("CONFIG", "RESETSTAT")
            for cmd in ERROR_SESSION:
                c.call(*cmd)

        def lines(c, section):
            text = c.call("INFO", section)[1]
            text = text.decode() if isinstance(text, bytes) else text
            return [ln for ln in text.split("\r\n") if ln and (ln.startswith("#") or ln.startswith("errorstat_"))]

        heads = lambda c: [ln for ln in lines(c, "default") if ln.startswith("#")]  # noqa: E731
        eq(heads(ours), heads(theirs), "INFO's default section headers")
        eq(lines(ours, "errorstats"), lines(theirs, "errorstats"), "INFO errorstats after the same errors")
        check(any(ln.startswith("errorstat_WRONGTYPE:count=") for ln in lines(ours, "errorstats")), "WRONGTYPE counted")
        ours.call("CONFIG", "RESETSTAT")
        eq(lines(ours, "errorstats"), ["# Errorstats"], "CONFIG RESETSTAT clears errorstats")
        ours.close()
        theirs.close()
    finally:
        stop_process(ref)
        shutil.rmtree(d, ignore_errors=True)


def main():
    t = Tally()
    with Server(unix=True) as srv:
        for fn in (strings, expiry, lists, hashes, sets, zsets, keyspace, resp3, pipelining,
                   maxmemory, auth, blocking, clients_and_timeout, unix_socket, info_sections_and_errorstats):
            t.run(fn, srv)
        check_alive = srv.alive()
    if not check_alive:
        t.failed += 1
        print("  FAIL server died during the session")
    t.done()


if __name__ == "__main__":
    main()
