"""test_module_vset.py - vector sets (VADD ... VRANGE) from build/inferkv.so
inside Debian's stock redis-server 7.0.15, which has none of its own.

libvcmd implements the commands once for inferkv-server and the module; this
suite checks what the module adds around them and what a client sees.  The
checks that hold on both hosts are in vset_checks.py (run here against
ModServer, and by test_server_vset.py against inferkv-server):

  commands     every command's reply shapes in RESP2 and RESP3 (raw
               replies: a map told from an array, a double from a bulk
               string), Redis 8's double digits in RESP2, the error paths
               (dimensions, quantization, NaN/inf, FP32 blob length,
               options, WRONGTYPE, arity), redis-py's VALUES and FP32 forms
  keyspace     TYPE vectorset, OBJECT, RENAME, COPY (deep), MOVE, SWAPDB,
               expiry, UNLINK and FLUSHALL ASYNC (lazy free), WATCH, MULTI,
               Lua, keyspace events, the last VREM deleting the key
  memory       MEMORY USAGE, used_memory growing with a 20,000-vector set
               and given back, maxmemory eviction and OOM
  registration COMMAND INFO (arity, flags, key specs), FILTERBY MODULE
  concurrency  50 clients adding, searching and removing against a model

and here, what only the module host has:

  persistence  DEBUG RELOAD, SAVE + restart, BGREWRITEAOF (RDB preamble and
               plain VADD commands, REDUCE sets through INFER.VSETRESTORE)
               + restart, replication to a replica: every set equal
               afterwards; corrupt RDB files refused with a reason in the
               log and no crash; 300 mutated DUMP payloads through RESTORE
  registration MODULE UNLOAD refused once the type exists,
               infer-vector-sets no/yes/bad, a host that already has VADD
               (a stand-in module): nothing registered

INFERKV_MODULE / INFERKV_PRELOAD run it against a sanitizer build of the
module (as test_module_sanitizers.sh does for the other module suites).
Prints "N passed, N failed, N skipped".
"""
import contextlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vset_checks  # noqa: E402
from server_harness import LoggedProcess, Tally, check, eq, err_of, free_port, wait_up  # noqa: E402
from vset_checks import crash_report, err_text, fp32, rand_vec, raw_client  # noqa: E402

import redis  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
MODULE = os.path.abspath(os.environ.get("INFERKV_MODULE", os.path.join(BUILD, "inferkv.so")))
PRELOAD = os.environ.get("INFERKV_PRELOAD", "")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


class ModServer(LoggedProcess):
    """redis-server with inferkv.so (vector sets on) on a free loopback
    port; restart() starts it again on the same directory and files.  It is
    vset_checks' host, with what differs from inferkv-server:"""

    resp3_redis8_doubles = False  # Redis 7.0 prints RESP3 doubles itself (%.17g)
    acl_category = None  # 7.0's module API has no ACL categories for commands
    command_module = "infer"
    module_also_lists = ("infer.vsetrestore",)  # and the INFER.* commands
    scripting = True

    def __init__(self, *opts, modargs=("infer-vector-sets", "yes"), dir=None, pre=(), expect_up=True):
        self.dir = dir or tempfile.mkdtemp(prefix="inferkv-vset-")
        self.opts, self.modargs, self.pre = list(opts), list(modargs), list(pre)
        self.start(expect_up)

    def cmdline(self):
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
               "--appendonly", "no", "--enable-debug-command", "yes", "--enable-module-command", "yes"]
        for m in self.pre:
            cmd += ["--loadmodule", m]
        return cmd + self.opts + ["--loadmodule", MODULE] + self.modargs

    def start(self, expect_up=True):
        self.port = free_port()
        env = dict(os.environ)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
        super().__init__(self.cmdline(), os.path.join(self.dir, "redis-%d.log" % self.port), env=env)
        up = wait_up(self.proc, lambda: self.client().ping(), 20, redis.exceptions.ConnectionError)
        if expect_up and not up:
            log = self.log_text()
            self.stop_process(5)
            raise RuntimeError("redis-server did not start:\n" + log[-3000:])
        return up

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=60, **kw)

    def raw(self, proto=2):
        return raw_client(self.port, proto)

    def stop(self, keep=False):
        self.stop_process(20)
        log = self.log_text()
        self.log.close()
        sane = crash_report(log) is None
        if not sane:
            print(log[-6000:])
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        return sane, log

    def restart(self, *opts):
        """Stops (SIGTERM: no save with --save "") and starts again on the same
        files, with opts replacing the extra server options when given."""
        self.stop_process(20)
        self.log.close()
        if opts:
            self.opts = list(opts)
        self.start()

    @contextlib.contextmanager
    def fresh(self, *opts):
        """Another redis-server with the module and opts, checked at its stop."""
        srv = ModServer(*opts)
        try:
            yield srv
        finally:
            ok, _ = srv.stop()
        check(ok, "no sanitizer report or crash")


# ------------------------------------------------------------------ helpers

# Redis's CRC-64 (Jones polynomial, reflected), for DUMP payloads.
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x95AC9329AC4BC9B5 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc64(data):
    crc = 0
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def module_type_id(name, encver):
    """The 64-bit id an RDB stores for a module type: nine 6-bit characters
    of the name, then a 10-bit encoding version."""
    cs = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    i = 0
    for ch in name:
        i = (i << 6) | cs.index(ch)
    return (i << 10) | encver


# ---------------------------------------------------------- persistence

def build_sets(r, seed=5):
    """Sets of every kind: Q8 with attributes, NOQUANT, BIN, M 32, REDUCE."""
    rng = random.Random(seed)
    specs = {"q8": (24, []), "noq": (16, ["NOQUANT"]), "bin": (40, ["BIN"]), "m32": (12, ["M", 32]),
             "red": (64, [])}
    for key, (dim, opts) in specs.items():
        p = r.pipeline(transaction=False)
        for i in range(300):
            v = rand_vec(rng, dim)
            attr = ["SETATTR", '{"i":%d,"k":"%s"}' % (i, key)] if i % 3 == 0 else []
            pre = ["REDUCE", 8] if key == "red" else []
            p.execute_command("VADD", key, *pre, "FP32", fp32(v), "%s:%d" % (key, i), *opts, *attr)
        p.execute()
    # a binary name and removals, so ids have holes
    r.execute_command("VADD", "q8", "FP32", fp32(rand_vec(rng, 24)), b"bin\x00\xffname", "SETATTR", "{}")
    for i in range(0, 300, 7):
        r.execute_command("VREM", "q8", "q8:%d" % i)
    return list(specs)


def snapshot(r, keys, exact=True):
    """What a client can see of each set.  exact: VSIM results, raw stored
    vectors, VLINKS and the digest too (the graph is restored as saved)."""
    out = {}
    for k in keys:
        info = r.execute_command("VINFO", k)
        d = dict(zip(info[0::2], info[1::2]))
        d.pop(b"vset-uid")
        uid = d.pop(b"hnsw-max-node-uid")  # checked on its own: see same()
        names = r.execute_command("VRANGE", k, "-", "+")
        s = {"info": d, "names": names, "attrs": [r.execute_command("VGETATTR", k, n) for n in names],
             "emb": [[float(x) for x in r.execute_command("VEMB", k, n)] for n in names[::25]]}
        s["uid"] = uid
        if not exact:
            d.pop(b"max-level")  # level draws differ where the graph is rebuilt
        else:
            s["sim"] = [r.execute_command("VSIM", k, "ELE", n, "WITHSCORES", "COUNT", 5) for n in names[::25]]
            s["raw"] = [r.execute_command("VEMB", k, n, "RAW") for n in names[::25]]
            s["links"] = [r.execute_command("VLINKS", k, n) for n in names[::50]]
            s["digest"] = r.execute_command("DEBUG", "DIGEST-VALUE", k)
        out[k] = s
    return out


def same(got, want, what):
    """eq() over two snapshots, naming the first set and field that differ
    instead of printing both whole."""
    eq(sorted(got), sorted(want), "%s: keys" % what)
    for k in want:
        eq(sorted(got[k]), sorted(want[k]), "%s: %s fields" % (what, k))
        for f in want[k]:
            if f != "uid" and got[k][f] != want[k][f]:
                g, w = got[k][f], want[k][f]
                if isinstance(w, list) and len(g) == len(w):
                    i = next(i for i in range(len(w)) if g[i] != w[i])
                    g, w = "[%d] %r" % (i, g[i]), "[%d] %r" % (i, w[i])
                raise AssertionError("%s: %s %s: got %s, want %s" % (what, k, f, str(g)[:600], str(w)[:600]))


def same_uid(got, want, what):
    """VINFO hnsw-max-node-uid counts inserts (updates included) and
    survives a load in Redis.  libvset's loader counts every loaded node as
    one more insert (vs_load_place -> place() bumps node_uid after
    vset_load set it from the data), so this fails until that is fixed in
    src/vector/."""
    g = {k: got[k]["uid"] for k in want}
    w = {k: want[k]["uid"] for k in want}
    eq(g, w, "%s: VINFO hnsw-max-node-uid kept (libvset load adds the node count)" % what)


def close_enough(a, b, what):
    """Two snapshot(exact=False) of the same sets rebuilt from VADD: same
    names, attributes and settings, vectors within quantization noise."""
    for k in a:  # (hnsw-max-node-uid is left out: a rebuild redoes the inserts)
        ia, ib = dict(a[k]["info"]), dict(b[k]["info"])
        for info in (ia, ib):
            info.pop(b"max-level", None)
        eq(ib, ia, "%s: %s VINFO" % (what, k))
        eq(b[k]["names"], a[k]["names"], "%s: %s names" % (what, k))
        eq(b[k]["attrs"], a[k]["attrs"], "%s: %s attributes" % (what, k))
        for va, vb in zip(a[k]["emb"], b[k]["emb"]):
            worst = max(abs(x - y) for x, y in zip(va, vb))
            check(worst < 1e-3, "%s: %s vector moved by %g" % (what, k, worst))


def debug_reload_and_restart(srv):
    """DEBUG RELOAD, then SAVE and a restart on the same dump.rdb: every set
    equal (names, attributes, settings, vectors, raw bytes, links, VSIM
    results and DEBUG DIGEST-VALUE; the graph is loaded, not rebuilt)."""
    r = srv.client()
    r.flushall()
    keys = build_sets(r)
    before = snapshot(r, keys)
    eq(r.execute_command("DEBUG", "RELOAD"), b"OK", "DEBUG RELOAD")
    after = snapshot(r, keys)
    same(after, before, "every set equal after DEBUG RELOAD")
    eq(r.save(), True, "SAVE")
    srv.restart()
    r = srv.client()
    eq(sorted(r.keys("*")), sorted(k.encode() for k in keys), "keys after the restart")
    same(snapshot(r, keys), before, "every set equal after SAVE + restart")
    eq(r.execute_command("VADD", "red", "REDUCE", 8, "FP32", fp32([0.5] * 64), "more"), 1,
       "a loaded REDUCE set takes new input vectors")
    dumped = r.dump("q8")
    r.delete("q8c")
    eq(r.restore("q8c", 0, dumped), b"OK", "DUMP / RESTORE")
    eq(r.execute_command("DEBUG", "DIGEST-VALUE", "q8c"), r.execute_command("DEBUG", "DIGEST-VALUE", "q8"),
       "RESTOREd copy has the same digest")
    r.execute_command("VSETATTR", "q8c", "q8:1", '{"changed":1}')
    check(r.execute_command("DEBUG", "DIGEST-VALUE", "q8c") != r.execute_command("DEBUG", "DIGEST-VALUE", "q8"),
          "the digest changes with an attribute")
    r.flushall()
    same_uid(after, before, "DEBUG RELOAD")


def aof_rewrite_and_restart(srv):
    """appendonly yes: writes reach the AOF verbatim; BGREWRITEAOF with the
    RDB preamble (exact) and without it (one VADD per element, a REDUCE set
    as INFER.VSETRESTORE) and a restart from the AOF keep every set."""
    r = srv.client()
    r.flushall()
    keys = build_sets(r, seed=9)
    before = snapshot(r, keys)
    r.config_set("appendonly", "yes")
    check(wait_aof(r), "the first AOF rewrite finished")
    r.execute_command("VADD", "q8", "FP32", fp32([0.25] * 24), "late", "SETATTR", '{"late":1}')
    r.execute_command("VREM", "noq", "noq:5")
    r.execute_command("VSETATTR", "bin", "bin:1", '{"set":"after"}')
    before = snapshot(r, keys)
    srv.restart("--appendonly", "yes")
    r = srv.client()
    same(snapshot(r, keys, exact=False), snapshot_plain(before), "sets and later writes back from the AOF")
    # rewrite with the RDB preamble: exact
    r.execute_command("BGREWRITEAOF")
    check(wait_aof(r), "BGREWRITEAOF (RDB preamble) finished")
    before = snapshot(r, keys)
    srv.restart("--appendonly", "yes")
    r = srv.client()
    same(snapshot(r, keys), before, "every set exact after a preamble rewrite + restart")
    # rewrite without the preamble: VADD commands and INFER.VSETRESTORE
    r.config_set("aof-use-rdb-preamble", "no")
    r.execute_command("BGREWRITEAOF")
    check(wait_aof(r), "BGREWRITEAOF (commands) finished")
    base = aof_base(srv.dir)
    check(b"VADD" in base and b"infer.vsetrestore" in base and b"SETATTR" in base and b"NOQUANT" in base,
          "the rewritten AOF holds VADD ... SETATTR/NOQUANT and INFER.VSETRESTORE for the REDUCE set")
    srv.restart("--appendonly", "yes", "--aof-use-rdb-preamble", "no")
    r = srv.client()
    after = snapshot(r, keys, exact=False)
    close_enough(snapshot_plain(before), after, "AOF of VADD commands")
    eq(r.execute_command("DEBUG", "DIGEST-VALUE", "red"), before["red"]["digest"],
       "the REDUCE set restored exactly (same digest)")
    eq(r.execute_command("VINFO", "red")[7], 64, "projection input dimension kept")
    for k in ("q8", "bin"):
        for n in after[k]["names"][::40]:
            eq(r.execute_command("VSIM", k, "ELE", n, "COUNT", 1), [n], "%s: VSIM ELE %r finds itself" % (k, n))
    raws = [r.execute_command("VEMB", "q8", n, "RAW")[1] for n in after["q8"]["names"][::25]]
    eq(raws, [x[1] for x in before["q8"]["raw"]], "Q8 sets re-added from VEMB keep their int8 codes")
    r.config_set("appendonly", "no")
    r.flushall()


def snapshot_plain(s):
    """An exact snapshot cut down to what snapshot(exact=False) holds."""
    out = {}
    for k, x in s.items():
        out[k] = {f: v for f, v in x.items() if f in ("info", "names", "attrs", "emb", "uid")}
        out[k]["info"] = {f: v for f, v in x["info"].items() if f != b"max-level"}
    return out


def wait_aof(r, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = r.info("persistence")
        if not p["aof_rewrite_in_progress"] and not p["aof_rewrite_scheduled"]:
            return p.get("aof_last_bgrewrite_status") == "ok"
        time.sleep(0.05)
    return False


def aof_base(d):
    out = b""
    for root, _, files in os.walk(d):
        for f in files:
            if ".base." in f:
                with open(os.path.join(root, f), "rb") as fh:
                    out += fh.read()
    return out


def replication(srv):
    """A replica with the module gets the sets by full sync (RDB) and the
    later VADD / VREM / VSETATTR verbatim: equal on both sides."""
    r = srv.client()
    r.flushall()
    keys = build_sets(r, seed=13)
    rep = ModServer()
    try:
        rr = rep.client()
        rr.replicaof("127.0.0.1", srv.port)
        check(wait_sync(rr), "the replica synced")
        same(snapshot(rr, keys), snapshot(r, keys), "full sync: every set equal on the replica")
        rng = random.Random(2)
        for i in range(50):
            r.execute_command("VADD", "q8", "FP32", fp32(rand_vec(rng, 24)), "new%d" % i, "SETATTR", '{"n":%d}' % i)
        r.execute_command("VADD", "q8", "FP32", fp32(rand_vec(rng, 24)), "q8:1")  # an update
        r.execute_command("VREM", "bin", "bin:3")
        r.execute_command("VSETATTR", "noq", "noq:4", '{"x":"y"}')
        for i in range(300):
            r.execute_command("VREM", "m32", "m32:%d" % i)
        r.execute_command("WAIT", 1, 5000)
        check(wait_until_equal(lambda: rr.dbsize(), lambda: r.dbsize()), "the replica caught up")
        a, b = snapshot(r, [k for k in keys if k != "m32"], exact=False), None
        b = snapshot(rr, [k for k in keys if k != "m32"], exact=False)
        same(b, a, "writes replicated verbatim: names, attributes, vectors equal")
        eq(rr.exists("m32"), 0, "the VREM that emptied a set deleted it on the replica too")
        e = err_of(lambda: rr.execute_command("VADD", "q8", "FP32", fp32([0.0] * 24), "x"))
        check(e is not None and "read only replica" in e, "VADD on a read-only replica refused (%s)" % e)
    finally:
        ok, _ = rep.stop()
        check(ok, "replica: no sanitizer report or crash")
    r.flushall()


def wait_sync(rr, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        i = rr.info("replication")
        if i.get("master_link_status") == "up" and not i.get("master_sync_in_progress"):
            return True
        time.sleep(0.05)
    return False


def wait_until_equal(f, g, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if f() == g():
            return True
        time.sleep(0.05)
    return False


def corrupt_rdb_refused(_srv):
    """A dump.rdb whose vectorset payload is damaged (written uncompressed
    and without a checksum, so that Redis's own checks pass) makes
    redis-server refuse to start - an exit, not a signal - with the
    module's reason in the log; a value saved under encoding version 0
    (Redis 8's) is refused by name.  A few random flips: load or refuse,
    never crash."""
    d = tempfile.mkdtemp(prefix="inferkv-vset-rdb-")
    opts = ("--rdbcompression", "no", "--rdbchecksum", "no")
    srv = ModServer(*opts, dir=d)
    try:
        r = srv.client()
        rng = random.Random(21)
        for i in range(60):
            r.execute_command("VADD", "s", "FP32", fp32(rand_vec(rng, 8)), "e%d" % i, "SETATTR", '{"i":%d}' % i)
        r.save()
        ok, _ = srv.stop(keep=True)
        check(ok, "clean first run")
        path = os.path.join(d, "dump.rdb")
        with open(path, "rb") as f:
            good = f.read()
        at = good.find(b"VSET")
        check(at > 0, "the payload is visible in the uncompressed RDB")
        tid1 = b"\x81" + module_type_id("vectorset", 1).to_bytes(8, "big")
        check(good.count(tid1) == 1, "the vectorset type id (encoding version 1) is in the RDB")

        def start_on(data):
            with open(path, "wb") as f:
                f.write(data)
            s = ModServer(*opts, dir=d, expect_up=False)
            up = s.proc.poll() is None
            if not up:
                s.proc.wait(10)
            rc = s.proc.returncode
            if up:
                check(s.client().execute_command("VCARD", "s") >= 0, "a server that loaded still answers")
            ok, log = s.stop(keep=True)
            check(ok, "no crash or sanitizer report (rc %r)" % rc)
            return up, rc, log

        def flip(data, off, xor=0xFF):
            b = bytearray(data)
            b[off] ^= xor
            return bytes(b)

        def put_u32(data, off, v):
            b = bytearray(data)
            b[off:off + 4] = struct.pack("<I", v)
            return bytes(b)

        cases = [
            ("magic", flip(good, at), "bad header"),
            ("format version", put_u32(good, at + 4, 77), "version 77"),
            ("M", put_u32(good, at + 17, 0), "M 0"),
            ("element count", put_u32(good, at + 41, 1000000), "under id bound"),
            ("first node id", put_u32(good, at + 57, 0x7fffffff), "past the id bound"),
            ("encoding version 0 (Redis 8's)",
             good.replace(tid1, b"\x81" + module_type_id("vectorset", 0).to_bytes(8, "big")), "encoding version 0"),
            ("truncated payload", good[:at + len(good[at:]) // 2], None),
        ]
        for what, data, reason in cases:
            up, rc, log = start_on(data)
            # Redis then runs its own RDB check, which skips module values,
            # and exits 0 when that passes, else 1: either way not a crash
            check(not up and rc in (0, 1), "%s: redis-server refuses to start (got up=%s rc=%r)" % (what, up, rc))
            if reason:
                check(reason in log, "%s: the log says why (%r)" % (what, reason))
        loaded = refused = 0
        end = good.find(b"VEND", at)
        for i in range(6):
            off = random.Random(100 + i).randrange(at + 8, end)
            up, rc, _ = start_on(flip(good, off, 1 << (i % 8)))
            check(up or rc in (0, 1), "random flip at +%d: loads or refuses (rc %r)" % (off - at, rc))
            loaded, refused = loaded + up, refused + (not up)
        print("       random flips: %d loaded, %d refused" % (loaded, refused))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def restore_fuzz(srv):
    """300 DUMP payloads with a few bytes changed (and the CRC fixed, so the
    module's loader sees them): each RESTORE answers OK or an error, the
    server stays up, and a set that did load is consistent."""
    r = srv.client()
    r.flushall()
    rng = random.Random(31)
    for i in range(40):
        r.execute_command("VADD", "src", "FP32", fp32(rand_vec(rng, 8)), "e%d" % i,
                          *(["SETATTR", '{"i":%d}' % i] if i % 2 else []))
    payload = r.dump("src")
    body, trailer = payload[:-8], payload[-8:]
    eq(struct.pack("<Q", crc64(body)), trailer, "crc64 matches Redis's")
    ok = bad = 0
    for i in range(300):
        b = bytearray(body[:-2])  # the value; the RDB version (2 bytes) stays
        for _ in range(rng.choice((1, 1, 2, 3))):
            b[rng.randrange(1, len(b))] = rng.randrange(256)
        if i % 10 == 0:
            del b[rng.randrange(1, len(b)):]
        data = bytes(b) + body[-2:]
        data += struct.pack("<Q", crc64(data))
        try:
            r.restore("f%d" % i, 0, data)
        except redis.exceptions.ResponseError as e:
            bad += 1
            check("Bad data format" in str(e) or "DUMP payload" in str(e), "RESTORE error %r" % str(e))
            continue
        ok += 1
        # a set that loaded answers like any other (its dimension may differ)
        check(r.execute_command("VCARD", "f%d" % i) > 0, "a restored set is not empty")
        err_of(lambda: r.execute_command("VSIM", "f%d" % i, "VALUES", 8, *[0.5] * 8, "COUNT", 3))
        r.execute_command("VRANGE", "f%d" % i, "-", "+")
    check(r.ping(), "server alive after 300 mutated RESTOREs (%d loaded, %d refused)" % (ok, bad))
    check(bad > 0, "most mutations refused")
    # the restore command itself refuses garbage and existing keys
    e = err_of(lambda: r.execute_command("INFER.VSETRESTORE", "rk", b"VSET\x01\x00\x00\x00garbage"))
    check(e is not None and "vector set data" in e, "INFER.VSETRESTORE of garbage: %r" % e)
    e = err_of(lambda: r.execute_command("INFER.VSETRESTORE", "src", b"x"))
    check(e is not None and e.startswith("BUSYKEY"), "INFER.VSETRESTORE onto an existing key: %r" % e)
    r.flushall()


# ---------------------------------------------------------- registration

def module_unload_refused(srv):
    """MODULE UNLOAD is refused once the vectorset data type exists."""
    c = srv.raw(3)
    e = err_text(c.call("MODULE", "UNLOAD", "infer"))
    check("data types" in e, "MODULE UNLOAD refused once the vectorset type exists: %r" % e)
    c.close()


def option_and_unload(_srv):
    """infer-vector-sets: no, the V* commands are unknown and the module
    unloads as before; a bad value refuses the load; absent (the default)
    or yes registers them (and the module stays)."""
    srv = ModServer(modargs=("infer-vector-sets", "no"))
    try:
        r = srv.client()
        e = err_of(lambda: r.execute_command("VCARD", "k"))
        check(e is not None and "unknown command" in e, "with infer-vector-sets no, no V* commands (%s)" % e)
        eq(r.execute_command("MODULE", "UNLOAD", "infer"), b"OK", "and MODULE UNLOAD works")
        e = err_of(lambda: r.execute_command("MODULE", "LOAD", MODULE, "infer-vector-sets", "maybe"))
        check(e is not None, "infer-vector-sets maybe refused")
        r.execute_command("MODULE", "LOAD", MODULE, "infer-vector-sets", "no")
        check(err_of(lambda: r.execute_command("VCARD", "k")) is not None, "infer-vector-sets no: no V* commands")
        r.execute_command("MODULE", "UNLOAD", "infer")
        r.execute_command("MODULE", "LOAD", MODULE)
        eq(r.execute_command("VADD", "k", "VALUES", 2, 1, 0, "a"), 1, "MODULE LOAD with no option: vector sets on")
        check("vectorset: 13 commands registered" in srv.log_text(), "the log says what was registered")
    finally:
        ok, _ = srv.stop()
        check(ok, "no sanitizer report or crash")


FAKE_HOST = r'''
/* A stand-in for a server with vector sets of its own: registers VADD. */
#include "redismodule_api.h"
static int fake(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv, (void)argc;
    return RedisModule_ReplyWithSimpleString(ctx, "HOST-VADD");
}
__attribute__((visibility("default"))) int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv,
                                                              int argc) {
    (void)argv, (void)argc;
    if (inferkv_rm_init(ctx, "hostvs", 1, REDISMODULE_APIVER_1) != REDISMODULE_OK) return REDISMODULE_ERR;
    return RedisModule_CreateCommand(ctx, "VADD", fake, "write", 1, 1, 1);
}
'''


def host_with_vector_sets(_srv):
    """Where the host already serves VADD (as Redis 8 does), the module
    registers no V* command and no data type, says so in the log, and the
    rest of it (INFER.*, MODULE UNLOAD) works as without vector sets."""
    tmp = tempfile.mkdtemp(prefix="inferkv-vset-host-")
    try:
        src, so = os.path.join(tmp, "host.c"), os.path.join(tmp, "hostvs.so")
        with open(src, "w") as f:
            f.write(FAKE_HOST)
        b = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-I", os.path.join(ROOT, "src/module"), "-o", so, src,
                            os.path.join(ROOT, "src/module/rm_api.c")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        check(b.returncode == 0, "the stand-in module builds: %s" % b.stdout.decode()[-500:])
        srv = ModServer(pre=[so])
        try:
            r = srv.client()
            eq(r.execute_command("VADD", "k", "VALUES", 1, 1, "a"), b"HOST-VADD", "VADD is the host's")
            e = err_of(lambda: r.execute_command("VCARD", "k"))
            check(e is not None and "unknown command" in e, "no V* command of the module (%s)" % e)
            check("registers none" in srv.log_text(), "the log says the host has vector sets")
            check(isinstance(r.execute_command("INFER.STATS"), list), "INFER.* registered")
            eq(r.execute_command("MODULE", "UNLOAD", "infer"), b"OK", "no data type: MODULE UNLOAD works")
        finally:
            ok, _ = srv.stop()
            check(ok, "no sanitizer report or crash")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t = Tally()
    if not os.path.exists(MODULE):
        print("SKIP: %s not built" % MODULE)
        t.skipped += 1
        t.done()
    t0 = time.time()
    srv = ModServer()
    try:
        for fn in vset_checks.COMMANDS + (module_unload_refused,) + vset_checks.KEYSPACE + (
                debug_reload_and_restart, aof_rewrite_and_restart, replication, restore_fuzz) + \
                vset_checks.CONCURRENCY:
            t.run(fn, srv)
        alive = srv.proc.poll() is None
    finally:
        sane, _ = srv.stop()

    def server_ran_clean():
        check(alive and sane, "the server ran the suite without a crash or sanitizer report")
    t.run(server_ran_clean)
    for fn in (corrupt_rdb_refused, option_and_unload, host_with_vector_sets):
        t.run(fn, None)
    print("(%.1f s)" % (time.time() - t0))
    t.done()


if __name__ == "__main__":
    main()
