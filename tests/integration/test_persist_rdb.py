"""test_persist_rdb.py - RDB snapshots of inferkv-server, and interoperation
with redis-server 7.0.15 in both directions.

The contract is that a dump written by inferkv loads in redis-server 7.0.15
with every key, value, TTL and stream group equal, and that a dump written
by redis-server 7.0.15 (ziplist / listpack / intset encodings included)
loads in inferkv the same way.  Equality is checked key by key through a
client: every type's whole value, PEXPIRETIME, streams through XINFO
STREAM FULL (entries, counters, groups, PELs with delivery times,
consumers), vector sets through VINFO, VRANGE, VEMB, VGETATTR and VLINKS
(the graph itself).  Vector sets travel as inferkv.so's module type, so
the redis-server side loads build/inferkv.so (INFERKV_MODULE overrides);
without it those keys are left out and the suite says so.

Also: SAVE / BGSAVE / LASTSAVE / save points / SHUTDOWN [NO]SAVE / SIGTERM /
DEBUG RELOAD / FLUSHALL / stop-writes-on-bgsave-error / INFO persistence,
BGSAVE while 50 clients write (the dump is the dataset at fork time),
expired keys at load, 1M keys both ways (INFERKV_RDB_BIG_KEYS), and
corruption: every truncation point of a small dump, flipped bytes, a wrong
CRC - always a refusal that names the offset, never a crash or a partial
load (inferkv-server --check-rdb runs the loader alone; a few cases start
the real server)."""
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import LoggedProcess, Skip, Tally, check, eq, free_port, stop_process, wait_up  # noqa: E402

if os.environ.get("INFERKV_SERVER"):
    server_harness.SERVER = os.path.abspath(os.environ["INFERKV_SERVER"])
REDIS = shutil.which("redis-server")
MODULE = os.environ.get("INFERKV_MODULE", os.path.join(server_harness.BUILD, "inferkv.so"))
BIG_KEYS = int(os.environ.get("INFERKV_RDB_BIG_KEYS", "1000000"))
DBS = (0, 1, 9, 15)


# ------------------------------------------------------------------ servers

LIVE = []  # every Proc not stopped yet: a failed check stops them (stop_all)


class Proc(LoggedProcess):
    """inferkv-server or redis-server on a free port in directory d (files
    there are its dump), with the given extra options."""

    def __init__(self, kind, d, *opts, module=False, expect_up=True):
        self.kind, self.dir = kind, d
        self.port = free_port()
        if kind == "kv":
            cmd = [server_harness.SERVER]
        else:
            if not REDIS:
                raise Skip("redis-server not installed (scripts/deps.sh)")
            cmd = [REDIS]
        cmd += ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", d, "--save", "", "--appendonly", "no"]
        if module:
            cmd += ["--loadmodule", MODULE]
        cmd += list(opts)
        super().__init__(cmd, os.path.join(d, "%s-%d.log" % (kind, self.port)))
        LIVE.append(self)
        self.up = wait_up(self.proc, lambda: self.client().ping(), 60, redis.exceptions.ConnectionError)
        if expect_up and not self.up:
            log = self.log_text()
            self.stop()
            raise RuntimeError("%s did not start:\n%s" % (kind, log[-3000:]))

    def client(self, db=0):
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=120)

    def stop(self, timeout=30):
        self.stop_process(timeout)
        log = self.log_text()
        self.log.close()
        if self in LIVE:
            LIVE.remove(self)
        for mark in ("ERROR: AddressSanitizer", "runtime error:", "Assertion", "Segmentation"):
            if mark in log:
                raise AssertionError("%s reported %r:\n%s" % (self.kind, mark, log[-3000:]))
        return self.proc.returncode


def stop_all():
    """Stops what a failed check left running (its report is printed)."""
    for p in list(LIVE):
        try:
            p.stop(5)
        except AssertionError as e:
            print("  after the failure: %s" % e)


def module_usable():
    if not REDIS or not os.path.exists(MODULE):
        return False
    d = tempfile.mkdtemp(prefix="inferkv-rdb-mod-")
    try:
        p = Proc("redis", d, module=True, expect_up=False)
        ok = p.up
        p.stop()
        return ok
    finally:
        shutil.rmtree(d, ignore_errors=True)


HAVE_MODULE = None


def have_module():
    global HAVE_MODULE
    if HAVE_MODULE is None:
        HAVE_MODULE = module_usable()
    return HAVE_MODULE


def tmpdir():
    return tempfile.mkdtemp(prefix="inferkv-rdb-")


def dump_path(p):
    return os.path.join(p.dir, "dump.rdb")


# ------------------------------------------------------------------ the dataset

def binary_keys():
    return [b"", b"\x00", b"\xff\xfe\x00key", b"with space", b"new\nline", b"\r\n*3\r\n", bytes(range(256))]


def build_dataset(r, vsets, seed=7):
    """Every type and every encoding Redis has for it, binary keys, TTLs,
    several databases.  Explicit stream ids, so that any server builds the
    same streams."""
    rnd = random.Random(seed)
    now_ms = int(time.time() * 1000)
    for db in DBS:
        c = r.client(db)
        p = c.pipeline(transaction=False)
        # strings: integer encodings at every width, embstr, raw, LZF-able, binary
        for v in [0, -1, 127, 128, -128, -129, 32767, 32768, -32769, 2 ** 31 - 1, 2 ** 31, -(2 ** 31) - 1,
                  2 ** 63 - 1, -(2 ** 63)]:
            p.set("int:%d:%d" % (db, v), str(v))
        for i, v in enumerate([b"", b"007", b"-0", b"+1", b"1e5", b"3.14", b" 1", b"12345678901234567890123"]):
            p.set("odd:%d" % i, v)
        p.set("embstr", "e" * 20)
        p.set("raw", "r" * 45)
        p.set("lzf", "abc" * 5000)
        p.set("noise", bytes(rnd.getrandbits(8) for _ in range(3000)))
        p.set("bin", b"\x00\x01\x02\xff" * 10)
        for k in binary_keys():
            p.set(b"k:" + k, k + b"v")
        if db == 0:
            p.set(b"", b"the empty key")
        # lists
        p.rpush("list:small", "a", "1", "-5", "b" * 70)
        p.rpush("list:big", *["item-%d" % i for i in range(1500)])
        p.rpush("list:ints", *[str(i * 997) for i in range(300)])
        p.rpush("list:long", "x" * 9000, "y", "z" * 20000)
        # sets: intset, big intset -> hashtable, strings
        p.sadd("set:ints", *[str(i) for i in (-3, 0, 7, 2 ** 40, -(2 ** 40))])
        p.sadd("set:bigints", *[str(i * 3) for i in range(700)])
        p.sadd("set:strs", "a", "b", "c\x00d", "e" * 100)
        p.sadd("set:big", *["m%d" % i for i in range(2000)])
        # sorted sets: listpack, skiplist, odd scores
        p.zadd("zset:small", {"a": 1, "b": 2.5, "c": -3, "d": 0})
        p.zadd("zset:inf", {"lo": float("-inf"), "hi": float("inf"), "mid": 1e300, "tiny": 1e-300})
        p.zadd("zset:big", {"member-%d" % i: rnd.random() * 1000 for i in range(300)})
        p.zadd("zset:longmember", {"L" * 100: 1, "s": 2})
        p.zadd("zset:same", {"m%d" % i: 5 for i in range(50)})
        # hashes: listpack, hashtable by count and by length
        p.hset("hash:small", mapping={"f1": "v1", "n": "42", "neg": "-7", "empty": ""})
        p.hset("hash:big", mapping={"field%d" % i: "value%d" % i for i in range(300)})
        p.hset("hash:longval", mapping={"a": "v" * 100, "b": "2"})
        p.hset("hash:bin", mapping={b"\x00f": b"\xff", b"f\n": b"v\r"})
        p.execute()
        # streams: several nodes, same / different fields, deletions, groups
        c.xadd("stream:small", {"f": "v"}, id="1-1")
        for i in range(1, 700):
            fields = {"a": str(i), "b": "x" * (i % 50)} if i % 7 else {"other": str(i), "more": "m", "3": "4"}
            c.xadd("stream:big", fields, id="%d-%d" % (1000 + i // 3, i % 3))
        c.xdel("stream:big", "1010-1", "1100-0", "1101-2", "1233-0")
        c.xgroup_create("stream:big", "g1", id="0")
        c.xgroup_create("stream:big", "g2", id="1100-0")
        c.xgroup_create("stream:big", "g3", id="$")
        c.xreadgroup("g1", "alice", {"stream:big": ">"}, count=30)
        c.xreadgroup("g1", "bob", {"stream:big": ">"}, count=20)
        c.xreadgroup("g2", "carol", {"stream:big": ">"}, count=5)
        c.xack("stream:big", "g1", "1000-1", "1000-2", "1003-0")
        c.xclaim("stream:big", "g1", "bob", 0, ["1004-0", "1004-1"])
        c.execute_command("XGROUP", "CREATECONSUMER", "stream:big", "g3", "idle-one")
        c.xadd("stream:deleted", {"a": "1"}, id="5-0")
        c.xadd("stream:deleted", {"a": "2"}, id="6-0")
        c.xdel("stream:deleted", "5-0", "6-0")
        c.xgroup_create("stream:empty", "g", id="$", mkstream=True)
        # a node whose entries are all deleted (XTRIM MINID keeps it: its
        # last, deleted, entry is at the minimum)
        c.xadd("stream:alldel", {"a": "1"}, id="1-0")
        c.xadd("stream:alldel", {"a": "2"}, id="2-0")
        c.xdel("stream:alldel", "2-0")
        c.execute_command("XTRIM", "stream:alldel", "MINID", "2-0")
        c.xadd("stream:trim", {"v": "1"}, id="1-0")
        for i in range(2, 400):
            c.xadd("stream:trim", {"v": str(i)}, id="%d-0" % i)
        c.xtrim("stream:trim", maxlen=250, approximate=False)
        c.execute_command("XSETID", "stream:small", "99-5", "ENTRIESADDED", "7", "MAXDELETEDID", "1-0")
        # TTLs (milliseconds matter)
        c.set("ttl:1", "v", px=3600 * 1000 + 123)
        c.hset("ttl:hash", "f", "v")
        c.pexpireat("ttl:hash", now_ms + 86400 * 1000 + 7)
        c.rpush("ttl:list", "a")
        c.pexpireat("ttl:list", now_ms + 500 * 86400 * 1000)
        if vsets:
            build_vsets(c, rnd)


def build_vsets(c, rnd):
    for name, opts, dim in (("vs:q8", [], 8), ("vs:noquant", ["NOQUANT"], 5), ("vs:bin", ["BIN"], 16),
                            ("vs:reduce", ["REDUCE", "4"], 12)):
        for i in range(60):
            vec = [str(round(rnd.uniform(-1, 1), 4)) for _ in range(dim)]
            args = ["VADD", name] + (opts[:2] if opts and opts[0] == "REDUCE" else []) + ["VALUES", str(dim)] + vec
            args += ["el-%d" % i] + [o for o in opts if o != "REDUCE" and not o.isdigit()]
            if i % 5 == 0:
                args += ["SETATTR", '{"i": %d, "tag": "t%d"}' % (i, i % 3)]
            c.execute_command(*args)
        c.execute_command("VREM", name, "el-3")


# ------------------------------------------------------------------ snapshots

def value_of(c, k, t):
    if t == b"string":
        return c.get(k)
    if t == b"list":
        return c.lrange(k, 0, -1)
    if t == b"set":
        return sorted(c.smembers(k))
    if t == b"zset":
        return c.execute_command("ZRANGE", k, 0, -1, "WITHSCORES")
    if t == b"hash":
        return sorted(c.hgetall(k).items())
    if t == b"stream":
        return c.execute_command("XINFO", "STREAM", k, "FULL", "COUNT", 0)
    if t == b"vectorset":
        names = c.execute_command("VRANGE", k, "-", "+", -1)
        # vset-uid numbers the sets of one process in creation (or load)
        # order: not part of the data
        vi = c.execute_command("VINFO", k)
        info = [x for i, x in enumerate(vi) if vi[i - (i % 2)] != b"vset-uid"]
        els = [(n, c.execute_command("VEMB", k, n), c.execute_command("VGETATTR", k, n),
                c.execute_command("VLINKS", k, n)) for n in names]
        return (info, els)
    raise AssertionError("type %r" % t)


def snapshot(p, with_vsets=True, dbs=DBS):
    """{(db, key): (type, value, pexpiretime)} for every key."""
    out = {}
    for db in dbs:
        c = p.client(db)
        for k in c.scan_iter(count=1000):
            t = c.type(k)
            if t == b"vectorset" and not with_vsets:
                continue
            out[(db, k)] = (t, value_of(c, k, t), c.execute_command("PEXPIRETIME", k))
    return out


def encodings(p, dbs=DBS):
    out = {}
    for db in dbs:
        c = p.client(db)
        for k in c.scan_iter(count=1000):
            out[(db, k)] = c.object("encoding", k)
    return out


def same_snapshot(a, b, what):
    if a == b:
        return len(a)
    only_a = sorted(set(a) - set(b))[:5]
    only_b = sorted(set(b) - set(a))[:5]
    diff = [(k, a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]][:3]
    raise AssertionError("%s: %d vs %d keys; only first %r; only second %r; differing %r" %
                         (what, len(a), len(b), only_a, only_b, [repr(x)[:600] for x in diff]))


def info(p, section="persistence"):
    return p.client().info(section)


def save_and_stop(p):
    eq(p.client().save(), True, "SAVE")
    p.stop()


def copy_dump(src, dst_dir):
    shutil.copy(dump_path(src), os.path.join(dst_dir, "dump.rdb"))


# ------------------------------------------------------------------ tests

def inferkv_restart_keeps_everything():
    """inferkv -> SAVE -> a restarted inferkv: every key, value and TTL."""
    d = tmpdir()
    a = Proc("kv", d)
    build_dataset(a, vsets=True)
    before = snapshot(a)
    eq(info(a)["rdb_changes_since_last_save"] > 0, True, "changes counted")
    save_and_stop(a)
    b = Proc("kv", d)
    n = same_snapshot(before, snapshot(b), "inferkv restart")
    eq(info(b)["rdb_last_load_keys_loaded"], n, "rdb_last_load_keys_loaded")
    eq(info(b)["rdb_changes_since_last_save"], 0, "nothing changed since the load")
    b.stop()
    shutil.rmtree(d, ignore_errors=True)
    print("       %d keys equal after a restart" % n)


def redis_to_inferkv_to_redis():
    """A dataset built natively by redis-server 7.0.15 (listpack, intset,
    quicklist, hashtable, skiplist encodings) loads in inferkv equal key by
    key; inferkv's dump of it loads back in redis-server equal again, with
    the encodings redis-server had built natively."""
    mod = have_module()
    d1, d2, d3 = tmpdir(), tmpdir(), tmpdir()
    r1 = Proc("redis", d1, module=mod)
    build_dataset(r1, vsets=mod)
    native = snapshot(r1)
    native_enc = encodings(r1)
    save_and_stop(r1)
    copy_dump(r1, d2)
    k = Proc("kv", d2)
    n1 = same_snapshot(native, snapshot(k), "redis-server dump loaded by inferkv")
    save_and_stop(k)
    copy_dump(k, d3)
    r2 = Proc("redis", d3, module=mod)
    n2 = same_snapshot(native, snapshot(r2), "inferkv dump loaded by redis-server")
    enc2 = encodings(r2)
    diff = {x: (native_enc[x], enc2.get(x)) for x in native_enc if native_enc[x] != enc2.get(x)}
    eq(diff, {}, "encodings redis-server chose loading inferkv's dump")
    r2.stop()
    for x in (d1, d2, d3):
        shutil.rmtree(x, ignore_errors=True)
    print("       redis -> inferkv: %d keys equal; inferkv -> redis: %d keys equal%s" %
          (n1, n2, "" if mod else " (no vector sets: %s does not load)" % MODULE))


def inferkv_to_redis():
    """A dataset built natively by inferkv loads in redis-server 7.0.15
    (with inferkv.so for the vector sets) equal key by key."""
    mod = have_module()
    d1, d2 = tmpdir(), tmpdir()
    k = Proc("kv", d1)
    build_dataset(k, vsets=True, seed=11)
    native = snapshot(k, with_vsets=mod)
    save_and_stop(k)
    copy_dump(k, d2)
    r = Proc("redis", d2, module=mod, expect_up=False)
    if not r.up:
        log = r.log_text()
        r.stop()
        raise AssertionError("redis-server refused inferkv's dump:\n" + log[-2000:])
    n = same_snapshot(native, snapshot(r, with_vsets=mod), "inferkv dump loaded by redis-server")
    r.stop()
    for x in (d1, d2):
        shutil.rmtree(x, ignore_errors=True)
    if not mod:
        raise Skip("%d keys equal, vector sets left out: %s does not load in redis-server" % (n, MODULE))
    print("       %d keys equal" % n)


def options_compression_checksum_off():
    """rdbcompression no and rdbchecksum no write files both servers load."""
    d1, d2 = tmpdir(), tmpdir()
    k = Proc("kv", d1, "--rdbcompression", "no", "--rdbchecksum", "no")
    build_dataset(k, vsets=False, seed=3)
    native = snapshot(k)
    save_and_stop(k)
    data = open(dump_path(k), "rb").read()
    eq(data[-8:], b"\x00" * 8, "no checksum written")
    check(b"abc" * 100 in data, "the long string is stored uncompressed")
    copy_dump(k, d2)
    r = Proc("redis", d2)
    same_snapshot(native, snapshot(r), "uncompressed, unchecksummed dump in redis-server")
    r.stop()
    k2 = Proc("kv", d1)
    same_snapshot(native, snapshot(k2), "uncompressed, unchecksummed dump in inferkv")
    k2.stop()
    for x in (d1, d2):
        shutil.rmtree(x, ignore_errors=True)


def big_dataset_both_ways():
    """INFERKV_RDB_BIG_KEYS (1M) small keys, with TTLs on some, each way."""
    n = BIG_KEYS
    d1, d2, d3, d4 = tmpdir(), tmpdir(), tmpdir(), tmpdir()
    k = Proc("kv", d1)
    c = k.client()
    p = c.pipeline(transaction=False)
    for base in range(0, n, 1000):
        p.mset({"key:%d" % i: "value:%d" % i for i in range(base, min(n, base + 1000))})
        if len(p) >= 50:
            p.execute()
    p.execute()
    for i in range(0, n, 997):
        p.pexpire("key:%d" % i, 10 ** 9 + i)
    p.execute()
    eq(c.dbsize(), n, "DBSIZE before")
    expected_ttl = {("key:%d" % i).encode(): 10 ** 9 + i for i in range(0, n, 997)}
    save_and_stop(k)
    copy_dump(k, d2)
    r = Proc("redis", d2, "--enable-debug-command", "yes")
    rc = r.client()
    eq(rc.dbsize(), n, "DBSIZE in redis-server")
    checked = 0
    for base in range(0, n, 5000):
        keys = ["key:%d" % i for i in range(base, min(n, base + 5000))]
        vals = rc.mget(keys)
        want = [("value:%s" % kk[4:]).encode() for kk in keys]
        if vals != want:
            raise AssertionError("values differ near %s" % keys[0])
        checked += len(keys)
    pp = rc.pipeline(transaction=False)
    for kk in expected_ttl:
        pp.pttl(kk)
    ttls = pp.execute()
    for (kk, want), got in zip(expected_ttl.items(), ttls):
        check(want - 60000 < got <= want, "TTL of %r: %r" % (kk, got))
    # and back: redis-server's dump of a DEBUG POPULATE dataset into inferkv
    rc.execute_command("DEBUG", "POPULATE", n, "pop", 16)
    save_and_stop(r)
    copy_dump(r, d3)
    t0 = time.time()
    k2 = Proc("kv", d3)
    load_s = time.time() - t0
    c2 = k2.client()
    eq(c2.dbsize(), 2 * n, "DBSIZE in inferkv")
    for base in range(0, n, 5000):
        keys = ["pop:%d" % i for i in range(base, min(n, base + 5000))]
        vals = c2.mget(keys)
        for kk, v in zip(keys, vals):
            if v is None or not v.startswith(("value:%s" % kk[4:]).encode()):
                raise AssertionError("%s: %r" % (kk, v))
        checked += len(keys)
    k2.stop()
    for x in (d1, d2, d3, d4):
        shutil.rmtree(x, ignore_errors=True)
    print("       %d keys inferkv -> redis, %d keys redis -> inferkv (started in %.1f s)" % (n, n, load_s))


def bgsave_while_fifty_clients_write():
    """BGSAVE while 50 clients write: each client applies MULTI (SET, RPUSH,
    HSET, INCR of a shared counter) transactions numbered 0, 1, 2...  The
    dump must hold, for every client, exactly its transactions 0..L-1 for
    one L between what was acknowledged when BGSAVE was sent and what had
    been sent when its reply came (the fork instant), with the shared
    counter equal to the sum: the dataset at fork time, nothing before,
    nothing after.  The child is slowed down (rdb-key-save-delay) so that
    the parent serves thousands of writes while it saves."""
    d = tmpdir()
    k = Proc("kv", d, "--rdb-key-save-delay", "200")
    c = k.client()
    c.mset({"pad:%d" % i: "x" * 100 for i in range(3000)})  # something for the child to chew on
    clients = 50
    sent = [0] * clients
    acked = [0] * clients
    stop = threading.Event()
    errors = []

    def writer(i):
        r = k.client()
        n = 0
        try:
            while not stop.is_set():
                p = r.pipeline(transaction=True)
                p.set("w:%d" % i, n)
                p.rpush("log:%d" % i, n)
                p.hset("h:%d" % i, "last", n)
                p.incr("total")
                sent[i] = n + 1
                p.execute()
                acked[i] = n + 1
                n += 1
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    low = list(acked)
    eq(c.bgsave(), True, "BGSAVE started")
    high = list(sent)
    eq(info(k)["rdb_bgsave_in_progress"], 1, "in progress")
    check(server_harness.wait_until(lambda: info(k)["rdb_bgsave_in_progress"] == 0, 120), "BGSAVE finished")
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)
    eq(errors, [], "writer errors")
    pers = info(k)
    eq(pers["rdb_last_bgsave_status"], "ok", "status")
    check(pers["rdb_last_cow_size"] > 0, "copy-on-write measured: %r" % pers["rdb_last_cow_size"])
    after = sum(acked)
    k.stop()
    # the dump, in a second server
    d2 = tmpdir()
    copy_dump(k, d2)
    k2 = Proc("kv", d2)
    c2 = k2.client()
    total = 0
    for i in range(clients):
        log = [int(x) for x in c2.lrange("log:%d" % i, 0, -1)]
        L = len(log)
        eq(log, list(range(L)), "client %d's list is a prefix" % i)
        check(low[i] <= L <= high[i], "client %d: %d transactions in the dump, acknowledged %d, sent %d before the fork"
              % (i, L, low[i], high[i]))
        if L:
            eq(int(c2.get("w:%d" % i)), L - 1, "client %d's string" % i)
            eq(int(c2.hget("h:%d" % i, "last")), L - 1, "client %d's hash" % i)
        total += L
    eq(int(c2.get("total") or 0), total, "shared counter")
    check(after > total + 1000, "the parent kept serving during the save (%d writes at fork, %d at the end)"
          % (total, after))
    k2.stop()
    for x in (d, d2):
        shutil.rmtree(x, ignore_errors=True)
    print("       %d transactions in the dump, %d acknowledged by the end, copy-on-write %d bytes" %
          (total, after, pers["rdb_last_cow_size"]))


def save_points_trigger_bgsave():
    """save 1 1: a change and a second later the cron starts a BGSAVE,
    which writes the file, moves LASTSAVE and zeroes the change count."""
    d = tmpdir()
    k = Proc("kv", d, "--save", "1 1")
    c = k.client()
    before = c.lastsave()
    time.sleep(1.1)
    c.set("a", "1")
    check(server_harness.wait_until(lambda: c.lastsave() != before and info(k)["rdb_bgsave_in_progress"] == 0, 10),
          "a BGSAVE ran")
    check(os.path.exists(dump_path(k)), "dump written")
    eq(info(k)["rdb_changes_since_last_save"], 0, "changes since the save")
    eq(info(k, "stats")["total_forks"] >= 1, True, "total_forks")
    eq(c.config_get("save"), {"save": "1 1"}, "CONFIG GET save")
    k.stop()
    shutil.rmtree(d, ignore_errors=True)


def shutdown_and_signals():
    """SHUTDOWN SAVE writes the dump without save points, SHUTDOWN NOSAVE
    does not even with them, SIGTERM saves when save points exist, and a
    failing final save keeps the server running (SHUTDOWN's error)."""
    d = tmpdir()
    k = Proc("kv", d)
    k.client().set("x", "1")
    try:
        k.client().shutdown(save=True)
    except redis.exceptions.ConnectionError:
        pass
    k.proc.wait(10)
    eq(k.proc.returncode, 0, "exit status")
    k.stop()
    check(os.path.exists(dump_path(k)), "SHUTDOWN SAVE wrote the dump")
    k = Proc("kv", d, "--save", "3600 1")
    eq(k.client().get("x"), b"1", "loaded")
    k.client().set("x", "2")
    try:
        k.client().shutdown(nosave=True)
    except redis.exceptions.ConnectionError:
        pass
    k.proc.wait(10)
    k.stop()
    k = Proc("kv", d, "--save", "3600 1")
    eq(k.client().get("x"), b"1", "NOSAVE did not save")
    k.client().set("x", "3")
    k.proc.send_signal(signal.SIGTERM)
    k.proc.wait(10)
    eq(k.proc.returncode, 0, "SIGTERM exit status")
    k.stop()
    k = Proc("kv", d)
    eq(k.client().get("x"), b"3", "SIGTERM saved")
    # a save that cannot happen: the directory is gone
    gone = tmpdir()
    c = k.client()
    c.config_set("dir", gone)
    shutil.rmtree(gone)
    try:
        c.shutdown(save=True)
        raise AssertionError("SHUTDOWN SAVE succeeded without a directory")
    except redis.exceptions.ResponseError as e:
        eq(str(e), "Errors trying to SHUTDOWN. Check logs.", "error")
    eq(c.ping(), True, "still serving")
    k.stop()
    shutil.rmtree(d, ignore_errors=True)


def stop_writes_on_bgsave_error():
    """A failed BGSAVE with save points configured refuses writes (and PING)
    with MISCONF until a save succeeds; reads go on."""
    d, gone = tmpdir(), tmpdir()
    k = Proc("kv", d, "--save", "3600 1")
    c = k.client()
    c.set("a", "1")
    c.config_set("dir", gone)
    shutil.rmtree(gone)
    eq(c.bgsave(), True, "BGSAVE started")
    check(server_harness.wait_until(lambda: info(k)["rdb_bgsave_in_progress"] == 0, 10), "finished")
    eq(info(k)["rdb_last_bgsave_status"], "err", "status")
    for fn in (lambda: c.set("b", "2"), lambda: c.ping()):
        try:
            fn()
            raise AssertionError("not refused")
        except redis.exceptions.ResponseError as e:
            check(str(e).startswith("MISCONF Redis is configured to save RDB snapshots"), str(e))
    eq(c.get("a"), b"1", "reads go on")
    c.config_set("dir", d)
    eq(c.save(), True, "SAVE")
    eq(c.set("b", "2"), True, "writes allowed again")
    c.config_set("stop-writes-on-bgsave-error", "no")
    k.stop()
    shutil.rmtree(d, ignore_errors=True)


def commands_and_info():
    """LASTSAVE, SAVE while a BGSAVE runs, BGSAVE twice, BGSAVE in MULTI,
    DEBUG RELOAD, FLUSHALL's save, and INFO persistence has every field
    redis-server 7.0.15 has."""
    d = tmpdir()
    k = Proc("kv", d, "--rdb-key-save-delay", "100000")
    c = k.client()
    c.mset({"a%d" % i: i for i in range(30)})
    eq(c.bgsave(), True, "BGSAVE")
    for fn, msg in ((c.save, "Background save already in progress"),
                    (c.bgsave, "Background save already in progress")):
        try:
            fn()
            raise AssertionError("allowed")
        except redis.exceptions.ResponseError as e:
            eq(str(e), msg, "error")
    pers = info(k)
    eq(pers["rdb_bgsave_in_progress"], 1, "in progress")
    eq(pers["current_save_keys_total"], 30, "keys total")
    # FLUSHALL drops the save in progress
    c.config_set("save", "3600 1")
    c.flushall()
    eq(info(k)["rdb_bgsave_in_progress"], 0, "FLUSHALL killed the child")
    eq(info(k)["rdb_last_bgsave_status"], "ok", "a cancelled save is not a failed one")
    check(not [f for f in os.listdir(d) if f.startswith("temp-")], "no temp file left")
    check(os.path.exists(dump_path(k)), "FLUSHALL with save points saved")
    c.config_set("rdb-key-save-delay", "0")
    c.set("x", "y")
    last = c.lastsave()
    time.sleep(1.1)
    raw = server_harness.RawClient(k.port)
    eq([raw.call("MULTI"), raw.call("BGSAVE"), raw.call("EXEC")],
       [("+", "OK"), ("+", "QUEUED"), ("*", [("+", "Background saving scheduled")])], "BGSAVE in MULTI")
    raw.close()
    check(server_harness.wait_until(lambda: c.lastsave() > last and info(k)["rdb_bgsave_in_progress"] == 0, 10),
          "the scheduled save ran")
    c.set("y", "z")
    eq(c.execute_command("DEBUG", "RELOAD"), b"OK", "DEBUG RELOAD")
    eq((c.get("x"), c.get("y")), (b"y", b"z"), "data after DEBUG RELOAD")
    if REDIS:
        dr = tmpdir()
        r = Proc("redis", dr)
        want = set(info(r).keys())
        r.stop()
        shutil.rmtree(dr, ignore_errors=True)
        eq(sorted(want - set(info(k).keys())), [], "INFO persistence fields missing")
    k.stop()
    shutil.rmtree(d, ignore_errors=True)


def expired_keys_skipped_at_load():
    """A key whose time passed while the server was down is not loaded."""
    d = tmpdir()
    k = Proc("kv", d)
    c = k.client()
    c.set("short", "v", px=800)
    c.set("long", "v", ex=1000)
    c.set("plain", "v")
    save_and_stop(k)
    time.sleep(1.0)
    k = Proc("kv", d)
    pers = info(k)
    eq((pers["rdb_last_load_keys_loaded"], pers["rdb_last_load_keys_expired"]), (2, 1), "loaded, expired")
    eq(k.client().exists("short", "long", "plain"), 2, "keys")
    k.stop()
    shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ old encodings

def _crc64_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x95AC9329AC4BC9B5 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc64_table()


def crc64(data):
    c = 0
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c


def rlen(n):
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n < 2 ** 32:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def rstr(b):
    return rlen(len(b)) + b


def zl_entry(prev, v):
    pl = bytes([prev]) if prev < 254 else b"\xfe" + struct.pack("<I", prev)
    if isinstance(v, int):
        if 0 <= v <= 12:
            enc = bytes([0xF1 + v])
        elif -128 <= v <= 127:
            enc = b"\xfe" + struct.pack("<b", v)
        elif -32768 <= v <= 32767:
            enc = b"\xc0" + struct.pack("<h", v)
        elif -(1 << 23) <= v < (1 << 23):
            enc = b"\xf0" + struct.pack("<i", v)[:3]
        elif -(1 << 31) <= v < (1 << 31):
            enc = b"\xd0" + struct.pack("<i", v)
        else:
            enc = b"\xe0" + struct.pack("<q", v)
    else:
        n = len(v)
        if n < 64:
            enc = bytes([n]) + v
        elif n < 16384:
            enc = bytes([0x40 | (n >> 8), n & 0xFF]) + v
        else:
            enc = b"\x80" + struct.pack(">I", n) + v
    return pl + enc


def ziplist(vals):
    body, prev, last = b"", 0, 10
    for v in vals:
        e = zl_entry(prev, v)
        last = 10 + len(body)
        body += e
        prev = len(e)
    return struct.pack("<IIH", 10 + len(body) + 1, last, len(vals)) + body + b"\xff"


def lp_entry(v):
    if isinstance(v, int):
        if 0 <= v <= 127:
            e = bytes([v])
        elif -4096 <= v <= 4095:
            u = v & 0x1FFF
            e = bytes([0xC0 | (u >> 8), u & 0xFF])
        elif -32768 <= v <= 32767:
            e = b"\xf1" + struct.pack("<h", v)
        elif -(1 << 23) <= v < (1 << 23):
            e = b"\xf2" + struct.pack("<i", v)[:3]
        elif -(1 << 31) <= v < (1 << 31):
            e = b"\xf3" + struct.pack("<i", v)
        else:
            e = b"\xf4" + struct.pack("<q", v)
    else:
        n = len(v)
        e = (bytes([0x80 | n]) if n < 64 else bytes([0xE0 | (n >> 8), n & 0xFF]) if n < 4096
             else b"\xf0" + struct.pack("<I", n)) + v
    n = len(e)
    if n <= 127:
        back = bytes([n])
    else:
        back = bytes([n >> 7, (n & 127) | 128])
    return e + back


def listpack(vals):
    body = b"".join(lp_entry(v) for v in vals)
    return struct.pack("<IH", 6 + len(body) + 1, len(vals)) + body + b"\xff"


def intset(vals, width):
    fmt = {2: "<h", 4: "<i", 8: "<q"}[width]
    return struct.pack("<II", width, len(vals)) + b"".join(struct.pack(fmt, v) for v in sorted(vals))


def old_dump():
    """A version-9 file (what Redis 5 / 6 write) with every encoding Redis
    7.0 no longer writes: ziplists, quicklist v1, zipmap, text scores, the
    first stream format, the seconds expire opcode."""
    now = int(time.time())
    recs = []

    def rec(t, key, val, expire_s=None):
        pre = b"" if expire_s is None else b"\xfd" + struct.pack("<I", expire_s)
        recs.append(pre + bytes([t]) + rstr(key) + val)

    rec(10, b"l:ziplist", rstr(ziplist([b"a", 5, -200, 70000, 2 ** 40, b"x" * 70, 12, 0])))
    rec(14, b"l:quick", rlen(2) + rstr(ziplist([b"n1", b"n2"])) + rstr(ziplist([b"n3", 300])))
    rec(11, b"s:i16", rstr(intset([-5, 1, 300], 2)))
    rec(11, b"s:i32", rstr(intset([-70000, 1, 70000], 4)))
    rec(11, b"s:i64", rstr(intset([-(2 ** 40), 2 ** 40], 8)))
    rec(12, b"z:ziplist", rstr(ziplist([b"c", b"-inf", b"d", -3, b"a", 1, b"b", b"2.5"])))
    rec(13, b"h:ziplist", rstr(ziplist([b"f", b"v", b"n", 42, b"e", b""])), expire_s=now + 86400)
    zm = bytes([2]) + b"\x02f1\x02\x00v1" + b"\x02f2\x03\x01v22X" + b"\xff"
    rec(9, b"h:zipmap", rstr(zm))
    rec(3, b"z:text", rlen(3) + rstr(b"a") + b"\x031.5" + rstr(b"b") + b"\xfe" + rstr(b"c") + b"\x02-2")
    # a stream in the first format: one node (master fields a, b), three
    # entries, the second deleted, the third with its own fields
    ms = 1700000000000
    lp = [2, 1, 2, b"a", b"b", 0,
          2, 0, 0, b"1", b"2", 5,
          3, 0, 1, b"3", b"4", 5,
          0, 1, 0, 1, b"z", b"9", 6]
    node_key = struct.pack(">QQ", ms, 0)
    sval = rlen(1) + rstr(node_key) + rstr(listpack(lp))
    sval += rlen(2) + rlen(ms + 1) + rlen(0)   # length, last id
    sval += rlen(1) + rstr(b"grp") + rlen(ms) + rlen(0)  # a group at the first entry
    sval += rlen(1) + struct.pack(">QQ", ms, 0) + struct.pack("<q", ms + 5) + rlen(2)  # its PEL
    sval += rlen(1) + rstr(b"alice") + struct.pack("<q", ms + 9) + rlen(1) + struct.pack(">QQ", ms, 0)
    rec(15, b"st:v1", sval)
    body = b"REDIS0009" + b"\xfa" + rstr(b"redis-ver") + rstr(b"6.2.14") + b"\xfe\x00" + b"".join(recs) + b"\xff"
    return body + struct.pack("<Q", crc64(body))


def old_encodings_load_alike():
    """A Redis 5/6-style file with ziplists, quicklist v1, zipmap, intsets of
    each width, text scores, the first stream format and the old seconds
    expiry loads in redis-server 7.0.15 and in inferkv to the same keys."""
    data = old_dump()
    d1, d2 = tmpdir(), tmpdir()
    for d in (d1, d2):
        open(os.path.join(d, "dump.rdb"), "wb").write(data)
    r = Proc("redis", d1, expect_up=False)
    if not r.up:
        log = r.log_text()
        r.stop()
        raise AssertionError("redis-server refused the hand-made file:\n" + log[-1500:])
    k = Proc("kv", d2)
    a, b = snapshot(r, dbs=(0,)), snapshot(k, dbs=(0,))
    n = same_snapshot(a, b, "a version-9 file in redis-server and in inferkv")
    eq(n, 10, "keys")
    r.stop()
    k.stop()
    for d in (d1, d2):
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ corruption

def check_rdb(path):
    """(exit status, output) of inferkv-server --check-rdb."""
    p = subprocess.run([server_harness.SERVER, "--check-rdb", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace")


def small_dump(d):
    """A small dump with every type (streams with a group, a vector set)."""
    k = Proc("kv", d)
    c = k.client()
    c.set("s", "v")
    c.set("n", 123456)
    c.set("lzf", "abcd" * 40)
    c.set("t", "x", px=10 ** 12)
    c.rpush("l", "a", "b", "1")
    c.sadd("set", "1", "x")
    c.zadd("z", {"a": 1.5, "b": 2})
    c.hset("h", mapping={"f": "v", "g": "1"})
    c.xadd("st", {"f": "v"}, id="1-1")
    c.xadd("st", {"f": "w", "g": "x"}, id="1-2")
    c.xgroup_create("st", "grp", id="0")
    c.xreadgroup("grp", "cons", {"st": ">"}, count=1)
    c.execute_command("VADD", "vs", "VALUES", 3, 1, 2, 3, "e1")
    c.execute_command("VADD", "vs", "VALUES", 3, 3, 2, 1, "e2")
    save_and_stop(k)
    return open(dump_path(k), "rb").read()


def classify(rc, out, what):
    """A refusal (exit 1 naming an offset) or a clean load (exit 0); never a
    crash (a signal, a sanitizer report) or another status."""
    if rc == 0 and out.startswith("OK:"):
        return "ok"
    if rc == 1 and "at offset " in out:
        return "refused"
    raise AssertionError("%s: exit %d: %s" % (what, rc, out[-1500:]))


def every_truncation_refused():
    """Every proper prefix of a small dump is refused, naming an offset."""
    d = tmpdir()
    data = small_dump(d)
    eq(classify(*check_rdb(os.path.join(d, "dump.rdb")), "whole"), "ok", "the whole file")
    path = os.path.join(d, "cut.rdb")
    for n in range(len(data)):
        with open(path, "wb") as f:
            f.write(data[:n])
        rc, out = check_rdb(path)
        eq(classify(rc, out, "cut at %d" % n), "refused", "prefix of %d bytes" % n)
    shutil.rmtree(d, ignore_errors=True)
    print("       %d truncation points refused" % len(data))


def flipped_bytes():
    """Each byte of a small dump flipped: with the CRC every flip is refused;
    with the CRC zeroed (checking off) the parsers see the damage and
    either refuse it or load something sound - never a crash."""
    d = tmpdir()
    data = small_dump(d)
    path = os.path.join(d, "flip.rdb")
    refused = loaded = 0
    rnd = random.Random(5)
    for i in range(len(data) - 8):
        for mask in (0xff, 1 << rnd.randrange(8)):
            b = bytearray(data)
            b[i] ^= mask
            with open(path, "wb") as f:
                f.write(b)
            eq(classify(*check_rdb(path), "flip %d/%02x" % (i, mask)), "refused", "byte %d flipped (CRC on)" % i)
            b[-8:] = b"\x00" * 8
            with open(path, "wb") as f:
                f.write(b)
            if classify(*check_rdb(path), "flip %d/%02x, no CRC" % (i, mask)) == "ok":
                loaded += 1
            else:
                refused += 1
    shutil.rmtree(d, ignore_errors=True)
    print("       %d flips refused by the CRC; without it %d refused by the parsers, %d loaded soundly"
          % (2 * (len(data) - 8), refused, loaded))


def server_refuses_corrupt_file_at_start():
    """The server itself: a truncated file and a wrong CRC stop it at start
    (exit 1) with a log line naming the offset and the problem."""
    d = tmpdir()
    data = small_dump(d)
    cases = {"truncated": data[:len(data) // 2],
             "wrong CRC": data[:-8] + bytes(x ^ 0x5a for x in data[-8:]),
             "not an RDB": b"hello world, this is not a dump"}
    for what, blob in cases.items():
        with open(os.path.join(d, "dump.rdb"), "wb") as f:
            f.write(blob)
        p = Proc("kv", d, expect_up=False)
        p.proc.wait(30)
        rc = p.proc.returncode
        log = p.log_text()
        p.stop()
        eq(rc, 1, "%s: exit status" % what)
        check("Fatal error loading the RDB file" in log and "at offset " in log, "%s: %s" % (what, log[-800:]))
        print("       %s: %s" % (what, [l for l in log.splitlines() if "Fatal" in l][0].split(" # ", 1)[-1][:160]))
    shutil.rmtree(d, ignore_errors=True)


def main():
    if not os.path.exists(server_harness.SERVER):
        print("SKIP: %s is not built" % server_harness.SERVER)
        print("0 passed, 0 failed, 1 skipped")
        return
    t = Tally()
    for fn in (inferkv_restart_keeps_everything, redis_to_inferkv_to_redis, inferkv_to_redis,
               options_compression_checksum_off, old_encodings_load_alike, save_points_trigger_bgsave, shutdown_and_signals,
               stop_writes_on_bgsave_error, commands_and_info, expired_keys_skipped_at_load,
               bgsave_while_fifty_clients_write, every_truncation_refused, flipped_bytes,
               server_refuses_corrupt_file_at_start, big_dataset_both_ways):
        needs_redis = fn not in (inferkv_restart_keeps_everything, save_points_trigger_bgsave, shutdown_and_signals,
                                 stop_writes_on_bgsave_error, expired_keys_skipped_at_load,
                                 bgsave_while_fifty_clients_write, every_truncation_refused, flipped_bytes,
                                 server_refuses_corrupt_file_at_start, commands_and_info)
        if needs_redis and not REDIS:
            t.skip("%s: redis-server not installed (scripts/deps.sh)" % fn.__name__)
            continue
        t.run(fn)
        stop_all()
    t.done()


if __name__ == "__main__":
    main()
