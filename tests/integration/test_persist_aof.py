"""test_persist_aof.py - AOF persistence of inferkv-server (Redis 7.0's
multi-part AOF), checked as a client and by reading the files, and
interoperation with redis-server 7.0.15 in both directions.

The server under test is inferkv-server ($INFERKV_BUILD/inferkv-server,
INFERKV_SERVER overrides) unless `--server redis` (or AOF_TEST_SERVER=redis)
is given: then every case runs against Debian's redis-server 7.0.15, which
is how the suite itself is validated (everything passes there).  The
interop case always needs both servers (in redis mode it is redis ->
redis).  `--only WORD` runs the cases whose name holds WORD.

Cases:
 1 basics: appendonly yes with appendfsync always / everysec / no: every
   type (streams with groups and PELs), TTLs, several DBs survive a
   restart; the directory holds the manifest, a base and an incr file with
   Redis 7's names (appenddirname / appendfilename honoured)
 2 deterministic forms: relative TTLs, INCRBYFLOAT, HINCRBYFLOAT, SPOP,
   XADD *, blocking pops served after blocking, XREADGROUP are written in
   forms whose replay gives the same data (absolute deadlines, explicit
   ids, no blocking or random commands); BITOP, BITFIELD and SORT ...
   STORE replay to the same values; PEXPIRETIME identical after a
   restart that comes more than a second later
 3 kill -9 loop under appendfsync always: every acknowledged INCR / RPUSH /
   XADD survives, nothing beyond the one command in flight appears
 4 kill -9 under appendfsync everysec: the loss is at most ~1 s (asserted
   <= 2 s), and measured
 5 truncation: every cut of the last commands of an incr file plus a sample
   elsewhere, with aof-load-truncated yes (loads what was complete, warns)
   and no (refuses, naming the problem, no crash); a bad byte is refused
   either way; --check-aof / redis-check-aof report the offset
 6 BGREWRITEAOF while 20 clients write, with and without the RDB preamble:
   a new base with a higher seq, history deleted, every acknowledged write
   after a restart
 7 CONFIG SET appendonly yes on a server holding data (the base holds it),
   then CONFIG SET appendonly no (appending stops); and appendonly yes at
   start with a dump.rdb but no AOF: redis-server 7.0.15 starts empty (the
   dump is not loaded), inferkv loads the dump on purpose (src/server/aof.c)
 8 interop: AOF directories written by one server load in the other
 9 INFO persistence: the aof_* fields (the same names as redis-server's)
   and values that agree with the files
10 DEBUG LOADAOF reloads the same dataset; inferkv only: a file that does
   not load leaves the dataset and answers an error (Redis exits), and
   appendonly no is an error
"""
import os
import concurrent.futures
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import LoggedProcess, RawClient, free_port, wait_until  # noqa: E402
import aof_checks as A  # noqa: E402

if os.environ.get("INFERKV_SERVER"):
    server_harness.SERVER = os.path.abspath(os.environ["INFERKV_SERVER"])
REDIS = shutil.which("redis-server")
REDIS_CHECK_AOF = shutil.which("redis-check-aof")
DBS = (0, 1, 9)
CRASH_MARKERS = ("ERROR: AddressSanitizer", "WARNING: ThreadSanitizer", "runtime error:", "crashed by signal",
                 "Segmentation", "Assertion failed", "=== REDIS BUG REPORT")
KEEP = os.environ.get("AOF_TEST_KEEP") == "1"


def parse_mode(argv):
    mode = os.environ.get("AOF_TEST_SERVER", "inferkv")
    only = None
    i = 1
    while i < len(argv):
        a = argv[i]
        if a.startswith("--server="):
            mode = a.split("=", 1)[1]
        elif a == "--server" and i + 1 < len(argv):
            i += 1
            mode = argv[i]
        elif a.startswith("--only="):
            only = a.split("=", 1)[1]
        elif a == "--only" and i + 1 < len(argv):
            i += 1
            only = argv[i]
        i += 1
    if mode not in ("redis", "inferkv", "kv"):
        raise SystemExit("--server redis|inferkv, not %r" % mode)
    return ("redis" if mode == "redis" else "kv"), only


SUT, ONLY = parse_mode(sys.argv)   # the kind of server under test: "kv" or "redis"
NAMES = {"kv": "inferkv-server", "redis": "redis-server"}


# ------------------------------------------------------------------ checks

class Stop(Exception):
    """A check the rest of the case depends on failed (already reported)."""


class Checks:
    """The tally: one line per check ("ok" or "FAIL ... got ..."), counts per
    case, the final "N passed, N failed, N skipped" line run_all.sh reads."""

    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.per_case = []  # (name, passed, failed, skipped, seconds)

    def ok(self, cond, what, got=None):
        if cond:
            self.passed += 1
            print("  ok   " + what)
        else:
            self.failed += 1
            print("  FAIL " + what + ("" if got is None else "\n       got: " + clip(got)))
        sys.stdout.flush()
        return bool(cond)

    def eq(self, got, want, what):
        return self.ok(got == want, what, None if got == want else "%s (want %s)" % (clip(got, 600), clip(want, 600)))

    def need(self, cond, what, got=None):
        if not self.ok(cond, what, got):
            raise Stop(what)

    def need_eq(self, got, want, what):
        if not self.eq(got, want, what):
            raise Stop(what)

    def skip(self, what):
        self.skipped += 1
        print("  SKIP " + what)
        sys.stdout.flush()

    def note(self, text):
        print("       " + text)
        sys.stdout.flush()

    def run_case(self, fn, *args, name=None):
        name = name or fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()
        print("== %s%s" % (name, (": " + doc[0]) if doc else ""))
        sys.stdout.flush()
        p0, f0, s0, t0 = self.passed, self.failed, self.skipped, time.time()
        try:
            fn(self, *args)
        except Stop:
            pass
        except StartFailed as e:
            self.failed += 1
            print("  FAIL %s aborted: a server did not start: %s" % (name, e))
        except Exception as e:  # an unexpected error: a failed check with its story
            self.failed += 1
            print("  FAIL %s aborted: %s" % (name, clip(repr(e), 3000)))
            traceback.print_exc(limit=4, file=sys.stdout)
        for line in stop_all():
            self.failed += 1
            print("  FAIL " + line)
        dt = time.time() - t0
        self.per_case.append((name, self.passed - p0, self.failed - f0, self.skipped - s0, dt))
        print("   (%s: %.1f s)" % (name, dt))
        sys.stdout.flush()

    def done(self, t_start):
        print()
        print("cases (passed/failed/skipped, seconds):")
        for name, p, f, s, dt in self.per_case:
            print("  %-44s %3d/%d/%d  %5.1f s" % (name, p, f, s, dt))
        print("server under test: %s; total %.1f s" % (NAMES[SUT], time.time() - t_start))
        print("%d passed, %d failed, %d skipped" % (self.passed, self.failed, self.skipped))
        sys.exit(1 if self.failed else 0)


def clip(x, n=1500):
    s = x if isinstance(x, str) else repr(x)
    return s if len(s) <= n else s[:n] + "...(%d more chars)" % (len(s) - n)


# ------------------------------------------------------------------ servers

LIVE = []   # every Proc not stopped yet: stop_all() after each case
TMP = []


def tmpdir():
    d = tempfile.mkdtemp(prefix="inferkv-aof-")
    TMP.append(d)
    return d


class Proc(LoggedProcess):
    """inferkv-server ("kv") or redis-server ("redis") on a free port in
    directory d, appendonly yes unless appendonly= says otherwise; with
    expect_up=False a server that does not come up is not an error (look at
    .up, .proc.returncode, log_text())."""

    def __init__(self, kind, d, *opts, appendonly="yes", expect_up=True, up_timeout=30):
        self.kind, self.dir = kind, d
        self.port = free_port()
        if kind == "kv":
            cmd = [server_harness.SERVER]
        else:
            cmd = [REDIS]
        cmd += ["--bind", "127.0.0.1", "--port", str(self.port), "--dir", d, "--save", "",
                "--appendonly", appendonly] + [str(o) for o in opts]
        self.cmd = cmd
        super().__init__(cmd, os.path.join(d, "%s-%d.log" % (kind, self.port)))
        LIVE.append(self)
        self.up = self._wait_up(up_timeout)
        if expect_up and not self.up:
            log = self.log_text()
            rc = self.proc.poll()
            self.kill()
            raise StartFailed("%s %s (exit status %r):\n%s" % (
                NAMES[kind], "exited at start" if rc is not None else "did not answer PING in %d s" % up_timeout,
                rc, tail(log)))

    def _wait_up(self, seconds):
        """True once PING answers; False when the process exits or seconds
        pass (polls every 10 ms: the truncation case starts ~150 servers)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                c = RawClient(self.port, timeout=2)
                try:
                    c.send("PING")
                    r = c.read()
                finally:
                    c.close()
                if r == ("+", "PONG"):
                    return True
            except (OSError, server_harness.Closed):
                pass
            time.sleep(0.01)
        return False

    def client(self, db=0, timeout=30):
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=timeout)

    def info(self, section="persistence"):
        return self.client().info(section)

    def _forget(self):
        try:
            self.log.close()
        except Exception:
            pass
        if self in LIVE:
            LIVE.remove(self)

    def crash_report(self, log=None):
        log = self.log_text() if log is None else log
        for m in CRASH_MARKERS:
            if m in log:
                return "%s reported %r:\n%s" % (NAMES[self.kind], m, tail(log))
        rc = self.proc.returncode
        if rc is not None and rc < 0 and rc != -signal.SIGKILL:
            return "%s died of signal %d:\n%s" % (NAMES[self.kind], -rc, tail(log))
        cores = [f for f in os.listdir(self.dir) if f == "core" or f.startswith("core.")]
        if cores:
            return "core files in %s: %r" % (self.dir, cores)
        return None

    def stop(self, timeout=30):
        """SIGTERM (a clean shutdown); returns the exit status; raises on a
        crash report in the log."""
        log = None
        try:
            self.stop_process(timeout)
            log = self.log_text()
        finally:
            self._forget()
        bad = self.crash_report(log)
        if bad:
            raise AssertionError(bad)
        return self.proc.returncode

    def kill(self):
        """SIGKILL, no questions."""
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(30)
        finally:
            self._forget()

    def wait_exit(self, timeout=30):
        """The exit status of a server expected to stop by itself (None
        when it is still running after timeout seconds: then it is killed)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


class StartFailed(Exception):
    """A server did not start (its log tail is in the message)."""


def tail(log, n=2500):
    return log[-n:]


def stop_all():
    """Stops what a case left running; returns failure lines for crashes."""
    out = []
    for p in list(LIVE):
        try:
            p.stop(10)
        except AssertionError as e:
            out.append("after the case: %s" % e)
    return out


def wait_info(p, pred, timeout=60):
    """Polls INFO persistence until pred(info) is true; returns the last info
    (the caller checks pred again).  Gives up at once when INFO has no
    aof_rewrite_in_progress field (a server without AOF: no hang)."""
    last = [None]

    def f():
        last[0] = p.info()
        return pred(last[0]) or "aof_rewrite_in_progress" not in last[0]
    wait_until(f, timeout, 0.02)
    return last[0]


def rewrite_done(i):
    return i.get("aof_rewrite_in_progress") == 0 and i.get("aof_rewrite_scheduled") == 0


def check_aof(kind, path):
    """(exit status, output) of `inferkv-server --check-aof PATH` or
    redis-check-aof PATH; None when redis-check-aof is not installed."""
    if kind == "kv":
        cmd = [server_harness.SERVER, "--check-aof", path]
    elif REDIS_CHECK_AOF:
        cmd = [REDIS_CHECK_AOF, path]
    else:
        return None
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    except subprocess.TimeoutExpired:
        return (None, "timed out after 30 s")
    return p.returncode, p.stdout.decode(errors="replace")


def mentions_number(text, n):
    return re.search(r"(?<![0-9])%d(?![0-9])" % n, text) is not None


def aof_dir(d, dirname="appendonlydir"):
    return os.path.join(d, dirname)


def files_of(adir):
    return {f: os.path.getsize(os.path.join(adir, f)) for f in os.listdir(adir)} if os.path.isdir(adir) else {}


def incr_path(d, dirname="appendonlydir", appendfilename="appendonly.aof"):
    """The path of the (last) incr file named by the manifest."""
    adir = aof_dir(d, dirname)
    _, incrs, _ = A.manifest_parts(adir, appendfilename)
    if not incrs:
        raise AssertionError("no incr file in the manifest of %s" % adir)
    return os.path.join(adir, incrs[-1]["file"])


# ------------------------------------------------------------------ the dataset

def build_dataset(p, prefix="", dbs=DBS, seed=7):
    """Every type: strings, lists, sets, sorted sets, hashes (small and big
    encodings), streams with consumer groups, pending entries, deletions,
    idle consumers; TTLs set relatively and absolutely; several DBs (so
    SELECT in the file).  Explicit stream ids so that any server builds
    the same streams."""
    rnd = random.Random(seed)
    now_ms = int(time.time() * 1000)
    for db in dbs:
        c = p.client(db)
        K = lambda k: prefix + k  # noqa: E731
        q = c.pipeline(transaction=False)
        for v in [0, -1, 127, -129, 32768, 2 ** 31, -(2 ** 31) - 1, 2 ** 63 - 1, -(2 ** 63)]:
            q.set(K("int:%d" % v), str(v))
        for i, v in enumerate([b"", b"007", b"-0", b"1e5", b"3.14", b"12345678901234567890123"]):
            q.set(K("odd:%d" % i), v)
        q.set(K("raw"), "r" * 45)
        q.set(K("lzf"), "abc" * 3000)
        q.set(K("noise"), bytes(rnd.getrandbits(8) for _ in range(1000)))
        q.set(K("bin\x00\r\nkey"), b"\x00\x01\xff\r\n" * 5)
        q.rpush(K("list:small"), "a", "1", "-5", "b" * 70)
        q.rpush(K("list:big"), *["item-%d" % i for i in range(600)])
        q.lpush(K("list:small"), "head")
        q.sadd(K("set:ints"), *[str(i) for i in (-3, 0, 7, 2 ** 40)])
        q.sadd(K("set:strs"), "a", "b", "c\x00d", "e" * 100)
        q.sadd(K("set:big"), *["m%d" % i for i in range(600)])
        q.srem(K("set:big"), "m7")
        q.zadd(K("zset:small"), {"a": 1, "b": 2.5, "c": -3, "d": 0})
        q.zadd(K("zset:inf"), {"lo": float("-inf"), "hi": float("inf"), "tiny": 1e-300})
        q.zadd(K("zset:big"), {"member-%d" % i: rnd.random() * 1000 for i in range(200)})
        q.zincrby(K("zset:small"), 2, "a")
        q.hset(K("hash:small"), mapping={"f1": "v1", "n": "42", "empty": ""})
        q.hset(K("hash:big"), mapping={"field%d" % i: "value%d" % i for i in range(300)})
        q.hincrby(K("hash:small"), "n", 5)
        q.hset(K("hash:bin"), mapping={b"\x00f": b"\xff", b"f\n": b"v\r"})
        q.execute()
        # streams: explicit ids, two groups with pending entries, acks, claims,
        # an idle consumer, deletions, an empty stream with a group
        c.xadd(K("stream:small"), {"f": "v"}, id="1-1")
        for i in range(1, 200):
            fields = {"a": str(i), "b": "x" * (i % 20)} if i % 7 else {"other": str(i)}
            c.xadd(K("stream:big"), fields, id="%d-%d" % (1000 + i // 3, i % 3))
        c.xdel(K("stream:big"), "1010-1", "1020-0")
        c.xgroup_create(K("stream:big"), "g1", id="0")
        c.xgroup_create(K("stream:big"), "g2", id="1030-0")
        c.xreadgroup("g1", "alice", {K("stream:big"): ">"}, count=12)
        c.xreadgroup("g1", "bob", {K("stream:big"): ">"}, count=5)
        c.xreadgroup("g2", "carol", {K("stream:big"): ">"}, count=3)
        c.xack(K("stream:big"), "g1", "1000-1", "1000-2")
        c.xclaim(K("stream:big"), "g1", "bob", 0, ["1001-0", "1001-1"])
        c.execute_command("XGROUP", "CREATECONSUMER", K("stream:big"), "g2", "idle-one")
        c.xgroup_create(K("stream:empty"), "g", id="$", mkstream=True)
        c.execute_command("XSETID", K("stream:small"), "99-5", "ENTRIESADDED", "7", "MAXDELETEDID", "1-0")
        # TTLs, relative and absolute
        c.set(K("ttl:px"), "v", px=3600 * 1000 + 123)
        c.set(K("ttl:ex"), "v", ex=5000)
        c.hset(K("ttl:hash"), "f", "v")
        c.pexpireat(K("ttl:hash"), now_ms + 86400 * 1000 + 7)
        c.rpush(K("ttl:list"), "a")
        c.expire(K("ttl:list"), 100000)
        c.setex(K("ttl:setex"), 7000, "v")
        c.set(K("ttl:keep"), "v", ex=9000)
        c.set(K("ttl:keep"), "w", keepttl=True)
        c.set(K("ttl:persisted"), "v", ex=100)
        c.persist(K("ttl:persisted"))


def pairs(flat):
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def norm_stream(full, counters=True):
    """XINFO STREAM FULL as a comparable value, without what Redis does not
    keep across an AOF replay: the consumers' seen-time (replaying XCLAIM /
    XGROUP CREATECONSUMER sets it to the load time) and the radix tree's
    node counts (an encoding, rebuilt by a rewrite).  counters=False also
    leaves out the groups' entries-read and lag: redis-server 7.0.15 writes
    an XREADGROUP as XCLAIM ... LASTID, which moves last-delivered-id but
    not entries-read (deterministic_forms notes whether they match)."""
    d = pairs(full)
    for k in (b"radix-tree-keys", b"radix-tree-nodes"):
        d.pop(k, None)
    groups = []
    for g in d.get(b"groups") or []:
        gd = pairs(g)
        cons = []
        for co in gd.get(b"consumers") or []:
            cd = pairs(co)
            cd.pop(b"seen-time", None)
            cd.pop(b"active-time", None)
            cons.append(sorted(cd.items()))
        gd[b"consumers"] = cons
        if not counters:
            gd.pop(b"entries-read", None)
            gd.pop(b"lag", None)
        groups.append(sorted(gd.items()))
    d[b"groups"] = groups
    return sorted(d.items())


def value_of(c, k, t, counters=True):
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
        return norm_stream(c.execute_command("XINFO", "STREAM", k, "FULL", "COUNT", 0), counters)
    raise AssertionError("type %r of %r" % (t, k))


def snapshot(p, dbs=DBS, counters=True):
    """{(db, key): (type, value, PEXPIRETIME)} for every key."""
    out = {}
    for db in dbs:
        c = p.client(db)
        for k in c.scan_iter(count=1000):
            t = c.type(k)
            out[(db, k)] = (t, value_of(c, k, t, counters), c.execute_command("PEXPIRETIME", k))
    return out


def snapshot_diff(a, b):
    """None when equal, else a short description."""
    if a == b:
        return None
    only_a = sorted(set(a) - set(b))[:5]
    only_b = sorted(set(b) - set(a))[:5]
    diff = [(k, a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]][:3]
    return "%d vs %d keys; only before %r; only after %r; differing %s" % (
        len(a), len(b), only_a, only_b, [clip(repr(x), 500) for x in diff])


# ------------------------------------------------------------------ file checks

def check_layout(chk, d, preamble, seq=1, dirname="appendonlydir", appendfilename="appendonly.aof", what=""):
    """The directory holds exactly the manifest, one base (NAME.seq.base.rdb
    with the preamble, .aof without) and one incr file (NAME.seq.incr.aof),
    each as the manifest says; returns (base entry, incr entry)."""
    adir = aof_dir(d, dirname)
    chk.need(os.path.isdir(adir), "%sthe AOF directory %s exists" % (what, dirname), files_of(d))
    mpath = os.path.join(adir, appendfilename + ".manifest")
    chk.need(os.path.exists(mpath), "%sthe manifest %s.manifest exists" % (what, appendfilename), files_of(adir))
    try:
        base, incrs, hist = A.manifest_parts(adir, appendfilename)
    except AssertionError as e:
        chk.need(False, "%sthe manifest parses as `file <name> seq <n> type <b|h|i>` lines" % what,
                 "%s\n%s" % (e, open(mpath, "rb").read()[:500]))
    text = open(mpath, "rb").read().decode(errors="replace")
    chk.need(base is not None and len(incrs) == 1 and not hist,
             "%sthe manifest lists one base and one incr file, no history" % what, text)
    ext = "rdb" if preamble == "yes" else "aof"
    chk.eq((base["file"], base["seq"]), ("%s.%d.base.%s" % (appendfilename, seq, ext), seq),
           "%sthe base is %s.%d.base.%s, seq %d" % (what, appendfilename, seq, ext, seq))
    chk.eq((incrs[0]["file"], incrs[0]["seq"]), ("%s.%d.incr.aof" % (appendfilename, seq), seq),
           "%sthe incr file is %s.%d.incr.aof, seq %d" % (what, appendfilename, seq, seq))
    want = {base["file"], incrs[0]["file"], appendfilename + ".manifest"}
    chk.eq(set(os.listdir(adir)), want, "%sthe directory holds exactly the manifest's files" % what)
    bdata = open(os.path.join(adir, base["file"]), "rb").read() if os.path.exists(
        os.path.join(adir, base["file"])) else None
    if preamble == "yes":
        chk.ok(bdata is not None and bdata.startswith(b"REDIS"), "%sthe base is an RDB file (REDIS....)" % what,
               None if bdata is None else bdata[:16])
    else:
        ok, got = True, None
        try:
            A.parse_commands(bdata or b"")
        except A.AofError as e:
            ok, got = False, str(e)
        chk.ok(bdata is not None and ok, "%sthe base is RESP commands (no preamble)" % what, got)
    return base, incrs[0]


def incr_commands(chk, path, what="the incr file"):
    data = open(path, "rb").read()
    try:
        return data, A.parse_commands(data)
    except A.AofError as e:
        chk.need(False, "%s parses as complete RESP commands" % what, "%s: %r" % (e, data[max(0, e.offset - 40):
                                                                                       e.offset + 80]))


# ------------------------------------------------------------------ 1 basics

def basics(chk, fsync, preamble, dirname=None, appendfilename=None):
    """appendonly yes: a dataset of every type in several DBs survives a restart."""
    d = tmpdir()
    opts = ["--appendfsync", fsync, "--aof-use-rdb-preamble", preamble]
    if dirname:
        opts += ["--appenddirname", dirname, "--appendfilename", appendfilename]
    dirname = dirname or "appendonlydir"
    appendfilename = appendfilename or "appendonly.aof"
    p = Proc(SUT, d, *opts)
    c = p.client()
    chk.eq(c.config_get("appendfsync"), {"appendfsync": fsync}, "CONFIG GET appendfsync is %s" % fsync)
    chk.eq(c.config_get("appendonly"), {"appendonly": "yes"}, "CONFIG GET appendonly is yes")
    build_dataset(p, seed=len(fsync))
    before = snapshot(p)
    chk.ok(len(before) > 100, "the dataset is built (%d keys in DBs %s)" % (len(before), DBS))
    check_layout(chk, d, preamble, 1, dirname, appendfilename)
    path = incr_path(d, dirname, appendfilename)
    data, cmds = incr_commands(chk, path)
    dbs_selected = sorted({int(a[1]) for _, _, a in cmds if a[0].upper() == b"SELECT"})
    chk.eq(dbs_selected, sorted(DBS), "the incr file SELECTs each DB written (%d commands, %d bytes)"
           % (len(cmds), len(data)))
    chk.eq(p.stop(), 0, "SIGTERM: a clean exit")
    q = Proc(SUT, d, *opts)
    after = snapshot(q)
    chk.ok(before == after, "after a restart every key, value, TTL (PEXPIRETIME) and stream group/PEL is equal "
           "(%d keys)" % len(before), snapshot_diff(before, after))
    chk.eq(q.info()["aof_enabled"], 1, "INFO aof_enabled:1 after the restart")
    q.stop()


def basics_always(chk):
    """appendfsync always (RDB preamble): every type survives a restart."""
    basics(chk, "always", "yes")


def basics_everysec(chk):
    """appendfsync everysec (no preamble): every type survives a restart."""
    basics(chk, "everysec", "no")


def basics_no(chk):
    """appendfsync no, appenddirname aof-files, appendfilename my.aof: every type survives."""
    basics(chk, "no", "yes", "aof-files", "my.aof")


# ------------------------------------------------------------------ 2 deterministic forms

def deterministic_forms(chk):
    """Relative times, randomness, blocking: written in deterministic forms.

    EXPIRE / SET EX / SETEX / PSETEX / GETEX / EXPIRE NX|GT|LT|XX,
    INCRBYFLOAT, HINCRBYFLOAT, SPOP, XADD *, BLPOP BRPOP BLMOVE BRPOPLPUSH
    BLMPOP BZPOPMIN BZPOPMAX served after blocking, XREADGROUP (also
    blocked), XAUTOCLAIM; the replay more than a second later gives
    identical data and deadlines."""
    d = tmpdir()
    opts = ["--appendfsync", "always", "--aof-use-rdb-preamble", "no"]
    p = Proc(SUT, d, *opts)
    c = p.client()
    c3 = p.client(3)
    t_rel = time.time()
    # relative TTLs
    c.set("e:expire", "v")
    c.expire("e:expire", 100)
    c.set("e:setex", "v", ex=100)
    c.set("e:setpx", "v", px=100500)
    c.setex("e:setexcmd", 100, "v")
    c.psetex("e:psetex", 100700, "v")
    c.set("e:getex", "v")
    c.getex("e:getex", ex=200)
    c.set("e:getexpx", "v")
    c.getex("e:getexpx", px=200300)
    c.set("e:nxgt", "v")
    c.execute_command("EXPIRE", "e:nxgt", 300, "NX")      # applies (no TTL yet)
    c.execute_command("EXPIRE", "e:nxgt", 50, "NX")       # does not apply
    c.execute_command("EXPIRE", "e:nxgt", 400, "GT")      # applies
    c.execute_command("EXPIRE", "e:nxgt", 100, "GT")      # does not apply
    c.execute_command("PEXPIRE", "e:nxgt", 350000, "LT")  # applies
    c.set("e:xx", "v", ex=1000)
    c.execute_command("PEXPIRE", "e:xx", 900000, "XX")
    c.set("e:exat", "v", exat=int(time.time()) + 3000)
    c.set("e:gone", "v")
    c.expire("e:gone", -1)                                 # deletes the key
    c3.set("e:db3", "v")
    c3.expire("e:db3", 500)
    c3.set("e:db3px", "v", px=500000)
    # INCRBYFLOAT / HINCRBYFLOAT
    c.set("f:float", "1.5", ex=1000)
    got_float = c.incrbyfloat("f:float", 2.25)
    got_float = c.incrbyfloat("f:float", "0.1")
    c.hset("f:hash", "x", "1")
    c.hincrbyfloat("f:hash", "x", 1.5)
    got_hfloat = c.hincrbyfloat("f:hash", "y", "0.3")
    # SPOP
    c.sadd("s:pop", *"abcdefghij")
    popped = [c.spop("s:pop")] + c.spop("s:pop", 3)
    c.sadd("s:all", "x", "y")
    c.spop("s:all", 5)                                     # empties the set
    # XADD *
    ids = [c.xadd("x:auto", {"n": str(i)}) for i in range(5)]
    ids.append(c.xadd("x:auto", {"n": "5"}, maxlen=3, approximate=True))
    ids.append(c.xadd("x:auto", {"n": "6"}, id="%d-*" % (int(time.time() * 1000) + 10 ** 6)))
    # XREADGROUP (new entries, NOACK), XAUTOCLAIM.  Not a read of the
    # history (XREADGROUP ... 0): redis-server 7.0.15 counts the delivery
    # but does not write it, so the count differs after a replay.
    c.xgroup_create("x:auto", "grp", id="0")
    c.xreadgroup("grp", "alice", {"x:auto": ">"}, count=2)
    c.xreadgroup("grp", "bob", {"x:auto": ">"}, count=1, noack=True)
    c.xack("x:auto", "grp", ids[-4] if len(ids) > 4 else ids[0])
    c.execute_command("XAUTOCLAIM", "x:auto", "grp", "carol", 0, "0-0", "COUNT", 1)
    c.xgroup_create("x:blk", "g", id="$", mkstream=True)
    # blocking commands served after blocking
    results = {}

    def blocked(name, *cmd):
        cl = p.client(timeout=20)
        try:
            results[name] = cl.execute_command(*cmd)
        except Exception as e:  # reported below
            results[name] = e

    blockers = [("BLPOP", "BLPOP", "b:list", 10), ("BRPOP", "BRPOP", "b:rlist", 10),
                ("BLMOVE", "BLMOVE", "b:src", "b:dst", "LEFT", "RIGHT", 10),
                ("BRPOPLPUSH", "BRPOPLPUSH", "b:src2", "b:dst2", 10),
                ("BLMPOP", "BLMPOP", 10, 1, "b:mlist", "LEFT", "COUNT", 2),
                ("BZPOPMIN", "BZPOPMIN", "b:zset", 10), ("BZPOPMAX", "BZPOPMAX", "b:zset2", 10),
                ("XREADGROUP BLOCK", "XREADGROUP", "GROUP", "g", "dave", "BLOCK", 10000, "STREAMS", "x:blk", ">")]
    threads = [threading.Thread(target=blocked, args=(b[0],) + b[1:], daemon=True) for b in blockers]
    for t in threads:
        t.start()
    nblk = len(blockers)
    chk.need(wait_until(lambda: p.info("clients")["blocked_clients"] == nblk, 10),
             "%d clients block (INFO blocked_clients)" % nblk, p.info("clients").get("blocked_clients"))
    c.rpush("b:list", "l1", "l2")
    c.rpush("b:rlist", "r1", "r2")
    c.rpush("b:src", "m1", "m2")
    c.rpush("b:src2", "n1")
    c.rpush("b:mlist", "a", "b", "c")
    c.zadd("b:zset", {"z1": 1, "z2": 2})
    c.zadd("b:zset2", {"z1": 1, "z2": 2})
    blk_id = c.xadd("x:blk", {"k": "v"})
    for t in threads:
        t.join(15)
    chk.need(not any(t.is_alive() for t in threads), "every blocked client is served")
    # (redis-py's shapes: tuples, float scores)
    want_served = {"BLPOP": (b"b:list", b"l1"), "BRPOP": (b"b:rlist", b"r2"), "BLMOVE": b"m1",
                   "BRPOPLPUSH": b"n1", "BLMPOP": [b"b:mlist", [b"a", b"b"]], "BZPOPMIN": (b"b:zset", b"z1", 1.0),
                   "BZPOPMAX": (b"b:zset2", b"z2", 2.0)}
    chk.eq({k: results.get(k) for k in want_served}, want_served, "the blocked pops got the pushed values")
    chk.ok(isinstance(results.get("XREADGROUP BLOCK"), list) and repr(blk_id) in repr(results["XREADGROUP BLOCK"]),
           "the blocked XREADGROUP got the new entry", results.get("XREADGROUP BLOCK"))
    c.rpush("b:list", "l3")   # the key lives on, so its pop must be replayed
    # BITOP, BITFIELD, SORT ... STORE: written as they are (their effect
    # depends only on the data), so the replay must rebuild the same values.
    # A set sorted ALPHA BY equal weights: inferkv breaks the ties by the
    # members, so the replay stores the same list; redis-server 7.0.15
    # leaves them in hash-table order, which the replay does not repeat
    # (so that step is inferkv's only).
    c.set("bo:a", b"\xff\x0f\xf0")
    c.set("bo:b", b"\x0f")
    c.execute_command("BITOP", "XOR", "bo:xor", "bo:a", "bo:b")
    c.execute_command("BITOP", "NOT", "bo:not", "bo:a")
    c.set("bo:gone", "x")
    c.execute_command("BITOP", "AND", "bo:gone", "bo:nosuch")       # deletes it
    c.execute_command("BITFIELD", "bf:1", "SET", "i8", "#3", -7, "INCRBY", "u4", 100, 9,
                      "OVERFLOW", "SAT", "INCRBY", "u4", 100, 9)
    c.execute_command("BITFIELD", "bf:1", "OVERFLOW", "WRAP", "INCRBY", "i16", 8, 40000)
    c.rpush("so:list", 3, 1, 2, 10)
    c.sadd("so:set", *"edcba")
    c.mset({"so:w_%s" % m: 1 for m in "abcde"})
    c.zadd("so:z", {"x": 3, "y": 1, "z": 2})
    c.execute_command("SORT", "so:list", "STORE", "so:out1")
    c.execute_command("SORT", "so:list", "DESC", "LIMIT", 1, 2, "GET", "#", "GET", "so:w_*", "STORE", "so:out2")
    if SUT == "kv":
        c.execute_command("SORT", "so:set", "BY", "so:w_*", "ALPHA", "STORE", "so:out3")
    c.execute_command("SORT", "so:set", "BY", "nosort", "STORE", "so:out4")
    c.execute_command("SORT", "so:z", "BY", "nosort", "DESC", "STORE", "so:out5")
    c.rpush("so:out6", "old")
    c.execute_command("SORT", "so:nosuch", "STORE", "so:out6")       # deletes it
    sorted_lists = {k: c.lrange(k, 0, -1) for k in ("so:out1", "so:out2", "so:out3", "so:out4", "so:out5")}
    want_sorts = 6 if SUT == "kv" else 5
    before = snapshot(p, dbs=(0, 3), counters=False)
    groups_before = {k: stream_counters(p, k) for k in (b"x:auto", b"x:blk")}
    data, cmds = incr_commands(chk, incr_path(d))
    cmds = A.with_db(cmds)
    by_name = {}
    for db, name, args in cmds:
        by_name.setdefault(name, []).append(args)

    def first(name, key=None):
        for args in by_name.get(name, []):
            if key is None or (len(args) > 1 and args[1] == key):
                return A.show(args)
        return None

    # no relative time anywhere
    rel = [(A.show(a), why) for db, n, a in cmds for why in [A.relative_ttl(n, a)] if why]
    chk.eq(rel, [], "no command in the incr file carries a relative time (EXPIRE, PEXPIRE, SETEX, PSETEX, "
                    "SET/GETEX with EX/PX)")
    # the last deadline written for each key equals its PEXPIRETIME
    written = {}
    for db, name, args in cmds:
        dl = A.deadline_written(name, args)
        if dl:
            written[(db, dl[0])] = dl[1]
    ttl_keys = [(0, k) for k in (b"e:expire", b"e:setex", b"e:setpx", b"e:setexcmd", b"e:psetex", b"e:getex",
                                 b"e:getexpx", b"e:nxgt", b"e:xx", b"e:exat", b"f:float")] + \
               [(3, b"e:db3"), (3, b"e:db3px")]
    mism = {k: (written.get(k, "none written"), before.get(k, (None, None, None))[2]) for k in ttl_keys
            if written.get(k) != before.get(k, (None, None, None))[2]}
    chk.eq(mism, {}, "for %d keys given TTLs in every way the absolute deadline in the file equals PEXPIRETIME "
                     "(PEXPIREAT / SET PXAT / EXPIREAT forms)" % len(ttl_keys))
    chk.ok((0, b"e:gone") not in before, "EXPIRE with a negative time deleted the key")
    # INCRBYFLOAT, HINCRBYFLOAT, SPOP
    gone = sorted(n.decode() for n in set(by_name) & A.RANDOM_COMMANDS)
    chk.eq(gone, [], "no INCRBYFLOAT, HINCRBYFLOAT, SPOP, SRANDMEMBER in the file")
    sets_float = [a for a in by_name.get(b"SET", []) if a[1] == b"f:float"]
    final_float = c.get("f:float")
    chk.ok(sets_float and sets_float[-1][2] == final_float and float(final_float) == got_float,
           "INCRBYFLOAT is written as SET of the resulting value (%s)" % A.show(sets_float[-1] if sets_float else []),
           [A.show(a) for a in sets_float])
    hsets = [a for a in by_name.get(b"HSET", []) + by_name.get(b"HMSET", []) if a[1] == b"f:hash"]
    chk.ok(any(a[2:4] == [b"y", c.hget("f:hash", "y")] for a in hsets) and float(c.hget("f:hash", "y")) == got_hfloat,
           "HINCRBYFLOAT is written as HSET of the resulting value (%s)" % (A.show(hsets[-1]) if hsets else None),
           [A.show(a) for a in hsets])
    srem = [m for a in by_name.get(b"SREM", []) if a[1] == b"s:pop" for m in a[2:]]
    chk.eq(sorted(srem), sorted(popped), "SPOP is written as SREM of the popped members (%s)"
           % first(b"SREM", b"s:pop"))
    # XADD ids
    xadds = [a for a in by_name.get(b"XADD", [])]
    bad = [A.show(a) for a in xadds if not A.STREAM_ID.match(A.xadd_id(a) or b"")]
    chk.eq(bad, [], "every XADD in the file has an explicit id (%d XADDs)" % len(xadds))
    auto_ids = [A.xadd_id(a) for a in xadds if a[1] == b"x:auto"]
    chk.eq(auto_ids, ids, "the ids written are the ids the server returned (%s)" % first(b"XADD", b"x:auto"))
    # blocking commands
    blk = sorted(n.decode() for n in set(by_name) & A.BLOCKING_COMMANDS)
    chk.eq(blk, [], "no blocking command (BLPOP ... BZMPOP, XREAD, XREADGROUP) in the file")
    for key, what in ((b"b:list", "BLPOP"), (b"b:rlist", "BRPOP"), (b"b:src", "BLMOVE"), (b"b:src2", "BRPOPLPUSH"),
                      (b"b:mlist", "BLMPOP"), (b"b:zset", "BZPOPMIN"), (b"b:zset2", "BZPOPMAX")):
        pops = [A.show(a) for db, n, a in cmds if len(a) > 1 and (a[1] == key or (
            n in (b"LMPOP", b"ZMPOP") and key in a)) and n not in (b"RPUSH", b"ZADD", b"LPUSH", b"DEL")]
        chk.ok(len(pops) == 1, "%s served after blocking is written as one non-blocking command: %s"
               % (what, pops[0] if pops else None), pops)
    # XREADGROUP
    xr = [A.show(a) for db, n, a in cmds if (n == b"XCLAIM" and a[1] in (b"x:auto", b"x:blk")) or (
        n == b"XGROUP" and a[1].upper() in (b"SETID", b"CREATECONSUMER") and a[2] in (b"x:auto", b"x:blk"))]
    chk.ok(xr, "XREADGROUP is written as XCLAIM / XGROUP SETID|CREATECONSUMER forms (%d commands; e.g. %s)"
           % (len(xr), xr[:1]), xr)
    kinds = {n: len(by_name.get(n, [])) for n in (b"BITOP", b"BITFIELD", b"SORT")}
    chk.ok(kinds[b"BITOP"] >= 2 and kinds[b"BITFIELD"] >= 2 and kinds[b"SORT"] >= want_sorts,
           "BITOP, BITFIELD and SORT ... STORE are in the file as written (%r)" % kinds, kinds)
    chk.ok(not c.exists("bo:gone", "so:out6"), "BITOP and SORT ... STORE with empty results deleted their "
                                               "destinations")
    for line in show_forms(cmds):
        chk.note(line)
    # the replay, more than a second later
    chk.eq(p.stop(), 0, "SIGTERM: a clean exit")
    time.sleep(max(0.0, 1.3 - (time.time() - t_rel)))
    q = Proc(SUT, d, *opts)
    after = snapshot(q, dbs=(0, 3), counters=False)
    chk.ok(before == after, "after a restart %.1f s later every key is equal, PEXPIRETIME identical, streams with "
           "their groups, PELs (delivery times and counts), last-delivered ids (%d keys)"
           % (time.time() - t_rel, len(before)), snapshot_diff(before, after))
    qc = q.client()
    got_lists = {k: qc.lrange(k, 0, -1) for k in sorted_lists}
    chk.eq(got_lists, sorted_lists, "SORT ... STORE results are the same after the replay")
    groups_after = {k: stream_counters(q, k) for k in (b"x:auto", b"x:blk")}
    chk.note("groups' (entries-read, lag) before %r, after the replay %r%s" % (
        groups_before, groups_after, "" if groups_before == groups_after else
        " (not compared: redis-server 7.0.15 does not keep them through XCLAIM ... LASTID)"))
    q.stop()


def stream_counters(p, key):
    return [(g[b"name"], g[b"entries-read"], g[b"lag"]) for g in
            (pairs(x) for x in p.client().execute_command("XINFO", "GROUPS", key))]


def show_forms(cmds):
    """One example line of each interesting command the file holds."""
    seen, out = set(), []
    for db, name, args in cmds:
        if name in (b"PEXPIREAT", b"EXPIREAT", b"SET", b"HSET", b"SREM", b"XADD", b"LPOP", b"RPOP", b"LMOVE",
                    b"RPOPLPUSH", b"LMPOP", b"ZPOPMIN", b"ZPOPMAX", b"ZMPOP", b"XCLAIM", b"XGROUP", b"MULTI", b"DEL",
                    b"UNLINK", b"PERSIST"):
            sig = (name, tuple(a.upper() for a in args[3:] if a.upper() in (b"PXAT", b"EXAT", b"KEEPTTL", b"GT",
                                                                              b"LT", b"NX", b"XX", b"SETID",
                                                                              b"CREATECONSUMER", b"LASTID")))
            if name == b"XGROUP":
                sig = (name, args[1].upper())
            if sig not in seen:
                seen.add(sig)
                out.append("written: " + A.show(args))
    return out


# ------------------------------------------------------------------ 3/4 kill -9

class Writer:
    """One connection doing INCR k:cnt, RPUSH k:list n, XADD k:stream * n n
    in turn, each waiting for its reply; counts what was acknowledged and
    remembers the command in flight when the connection dies.  ack_times
    hold, per kind, when each write (numbered from 0) was acknowledged."""

    KINDS = ("cnt", "list", "stream")

    def __init__(self, port, start):
        self.acked = dict(start)
        self.ack_times = {k: {} for k in self.KINDS}
        self.inflight = None
        self.error = None
        self.t = threading.Thread(target=self._run, args=(port,), daemon=True)
        self.t.start()

    def _run(self, port):
        try:
            c = RawClient(port, timeout=10)
        except OSError as e:
            self.error = e
            return
        i = 0
        try:
            while True:
                kind = self.KINDS[i % 3]
                n = self.acked[kind]
                if kind == "cnt":
                    cmd = ("INCR", "k:cnt")
                elif kind == "list":
                    cmd = ("RPUSH", "k:list", n)
                else:
                    cmd = ("XADD", "k:stream", "*", "n", n)
                self.inflight = kind
                c.send(*cmd)
                r = c.read()
                if r[0] == "-":
                    self.error = r[1]
                    return
                self.acked[kind] = n + 1
                self.ack_times[kind][n] = time.monotonic()
                self.inflight = None
                i += 1
        except (server_harness.Closed, OSError) as e:
            self.died = repr(e)
        finally:
            c.close()

    def join(self, timeout=15):
        self.t.join(timeout)
        return not self.t.is_alive()


def durable_state(p):
    """(counter, list length, stream length) after a restart, checking that
    the list is 0..n-1 at its ends and the stream's last entry is n-1."""
    c = p.client()
    cnt = int(c.get("k:cnt") or 0)
    ln = c.llen("k:list")
    sl = c.xlen("k:stream")
    problems = []
    if ln and (c.lindex("k:list", 0) != b"0" or c.lindex("k:list", -1) != str(ln - 1).encode()):
        problems.append("list ends %r..%r for length %d" % (c.lindex("k:list", 0), c.lindex("k:list", -1), ln))
    if sl:
        last = c.xrevrange("k:stream", count=1)[0][1]
        if last != {b"n": str(sl - 1).encode()}:
            problems.append("stream's last entry %r for length %d" % (last, sl))
    return {"cnt": cnt, "list": ln, "stream": sl}, problems


def kill_loop(chk, fsync, rounds, run_range, max_loss_s=None):
    d = tmpdir()
    opts = ["--appendfsync", fsync]
    rnd = random.Random(20 + rounds)
    state = {"cnt": 0, "list": 0, "stream": 0}
    p = Proc(SUT, d, *opts)
    rows, bad, losses = [], [], []
    inflight_applied = 0
    total_acked = 0
    for r in range(rounds):
        w = Writer(p.port, state)
        time.sleep(rnd.uniform(*run_range))
        p.kill()
        t_kill = time.monotonic()
        if not w.join(15):
            chk.need(False, "round %d: the writer noticed the SIGKILL" % r)
        if w.error:
            chk.need(False, "round %d: the writer's commands succeed" % r, w.error)
        p = Proc(SUT, d, *opts, expect_up=False)
        if not p.up:
            log = p.log_text()
            p.kill()
            chk.need(False, "round %d: the server restarts on the AOF left by SIGKILL" % r, tail(log))
        got, problems = durable_state(p)
        acked_round = sum(w.acked[k] - state[k] for k in state)
        total_acked += acked_round
        loss = []
        for k in Writer.KINDS:
            hi = w.acked[k] + (1 if w.inflight == k else 0)
            if got[k] > hi:
                bad.append("round %d: %s is %d, acknowledged %d, in flight %s" % (r, k, got[k], w.acked[k], w.inflight))
            if got[k] < w.acked[k]:
                first_missing = w.ack_times[k].get(got[k])
                loss.append((k, w.acked[k] - got[k], (t_kill - first_missing) * 1000 if first_missing else None))
        for pr in problems:
            bad.append("round %d: %s" % (r, pr))
        rows.append((r, acked_round, w.inflight, loss))
        if w.inflight and got[w.inflight] == w.acked[w.inflight] + 1:
            inflight_applied += 1
        if max_loss_s is None and loss:
            bad.append("round %d: acknowledged writes missing: %r (acknowledged %r, found %r)"
                       % (r, loss, w.acked, got))
        losses.append(loss)
        state = got
        if bad:
            break
    c = p.client()
    full = c.lrange("k:list", 0, -1)
    p.stop()
    chk.ok(total_acked > rounds, "the writer got acknowledgements (%d writes in %d rounds)" % (total_acked, len(rows)))
    chk.eq([int(x) for x in full], list(range(len(full))), "the list is exactly 0..n-1 at the end (n=%d)" % len(full))
    chk.note("the command in flight at the SIGKILL was found applied after %d of %d restarts"
             % (inflight_applied, len(rows)))
    if max_loss_s is None:
        chk.ok(not bad, "after each of %d SIGKILLs every acknowledged INCR/RPUSH/XADD is there and nothing beyond the "
                        "command in flight" % rounds, "\n".join(bad))
    else:
        over = [(r, l) for r, _, _, loss in rows for l in loss if l[2] is None or l[2] > max_loss_s * 1000]
        chk.ok(not bad, "after each of %d SIGKILLs nothing beyond the command in flight appears" % rounds,
               "\n".join(bad))
        chk.ok(not over, "the writes lost were acknowledged within %.1f s of the SIGKILL" % max_loss_s, over)
        for r, n, infl, loss in rows:
            chk.note("round %d: %d writes acknowledged, lost %s" % (
                r, n, ", ".join("%s %d (%.0f ms)" % (k, m, ms or 0) for k, m, ms in loss) or "none (0 ms)"))
    return rows


def kill9_always(chk):
    """appendfsync always, SIGKILL at a random moment, 20 rounds: no acknowledged write is lost."""
    kill_loop(chk, "always", 20, (0.05, 0.3))


def kill9_everysec(chk):
    """appendfsync everysec, SIGKILL after 2-3 s of writes: the loss is at most ~1 s of writes."""
    rows = kill_loop(chk, "everysec", 4, (2.2, 3.2), max_loss_s=2.0)
    lost = sum(m for _, _, _, loss in rows for _, m, _ in loss)
    worst = max([ms or 0 for _, _, _, loss in rows for _, _, ms in loss] or [0])
    chk.note("everysec + SIGKILL: %d acknowledged writes lost in all, worst %.0f ms (a killed process leaves what "
             "it write()s in the page cache: only a crash of the machine loses the unsynced second)" % (lost, worst))


# ------------------------------------------------------------------ 5 truncation

def model(cmds):
    """The dataset the commands give: {(db, key): value} (the small AOF's
    commands only: SELECT SET RPUSH INCR HSET DEL MULTI EXEC); a MULTI
    without its EXEC is dropped, as Redis's loader reverts it."""
    db, data, pending = 0, {}, None
    for args in cmds:
        name = args[0].upper()
        if name == b"MULTI":
            pending = []
            continue
        if name == b"EXEC":
            for a in pending:
                db = apply(data, db, a)
            pending = None
            continue
        if pending is not None:
            pending.append(args)
        else:
            db = apply(data, db, args)
    return data


def apply(data, db, args):
    name = args[0].upper()
    if name == b"SELECT":
        return int(args[1])
    k = (db, args[1])
    if name == b"SET":
        data[k] = ("string", args[2])
    elif name == b"RPUSH":
        data[k] = ("list", data.get(k, ("list", []))[1] + list(args[2:]))
    elif name in (b"INCR", b"INCRBY"):
        by = int(args[2]) if name == b"INCRBY" else 1
        data[k] = ("string", str(int(data.get(k, ("string", b"0"))[1]) + by).encode())
    elif name == b"HSET":
        h = dict(data.get(k, ("hash", {}))[1])
        for i in range(2, len(args), 2):
            h[args[i]] = args[i + 1]
        data[k] = ("hash", h)
    elif name == b"DEL":
        for key in args[1:]:
            data.pop((db, key), None)
    else:
        raise AssertionError("the model does not know %r" % name)
    return db


def server_data(p, dbs=(0, 2)):
    out = {}
    for db in dbs:
        c = p.client(db)
        for k in c.scan_iter():
            t = c.type(k)
            if t == b"string":
                out[(db, k)] = ("string", c.get(k))
            elif t == b"list":
                out[(db, k)] = ("list", c.lrange(k, 0, -1))
            elif t == b"hash":
                out[(db, k)] = ("hash", c.hgetall(k))
            else:
                out[(db, k)] = (t.decode(), None)
    return out


def small_aof(chk, d):
    """A small AOF written by the server under test: SET, RPUSH, INCR, HSET,
    DEL in two DBs, and a MULTI/EXEC block at the end; no preamble."""
    p = Proc(SUT, d, "--appendfsync", "always", "--aof-use-rdb-preamble", "no")
    c, c2 = p.client(), p.client(2)
    for i in range(6):
        c.set("k:%d" % i, "v%d" % i)
        c.rpush("l", "e%d" % i)
        c.incr("n")
    c.hset("h", mapping={"a": "1", "b": "2"})
    c.delete("k:3")
    c2.set("other", "db2")
    c2.rpush("l2", "x", "y")
    c.hset("h", "c", "3")
    c.set("k:9", "v9")
    tx = c.pipeline(transaction=True)
    tx.set("t", "1")
    tx.incr("n")
    tx.rpush("l", "tx")
    tx.execute()
    want = server_data(p)
    p.stop()
    adir = aof_dir(d)
    _, incrs, _ = A.manifest_parts(adir)
    base, _, _ = A.manifest_parts(adir)
    data, cmds = incr_commands(chk, os.path.join(adir, incrs[0]["file"]))
    chk.need(model([a for _, _, a in cmds]) == want, "the model of the small AOF's %d commands gives the server's "
             "data" % len(cmds), (model([a for _, _, a in cmds]), want))
    return adir, base["file"], incrs[0]["file"], data, cmds


def truncation(chk):
    """Truncated incr files: aof-load-truncated yes loads what was complete, no refuses.

    Every cut in the last two commands (the RPUSH and EXEC closing a
    MULTI block), every command end and 16 random cuts elsewhere; the
    checker on each; then bad bytes."""
    d = tmpdir()
    adir, base_name, incr_name, data, cmds = small_aof(chk, d)
    ends = [0] + [e for _, e, _ in cmds]
    n = len(data)
    rnd = random.Random(99)
    last_two = cmds[-2][0]
    offsets = set(range(last_two, n + 1)) | set(ends) | set(rnd.sample(range(1, last_two), min(16, last_two - 1)))
    offsets = sorted(offsets)
    chk.note("incr file: %d commands, %d bytes; testing %d cuts (every offset from %d, every command end, 16 "
             "random others)" % (len(cmds), n, len(offsets), last_two))
    # per offset: the commands complete before it, and whether the file is valid
    cases = []
    for off in offsets:
        complete = [(s, e, a) for s, e, a in cmds if e <= off]
        keep_upto, multi_at = 0, None
        for s, e, a in complete:
            name = a[0].upper()
            if name == b"MULTI":
                multi_at = s
            elif name == b"EXEC":
                multi_at = None
            if multi_at is None:
                keep_upto = e
        # valid: the cut is at a command end outside a MULTI block; a loader
        # keeps the complete commands up to keep_upto (an open MULTI reverted)
        valid = off in ends and multi_at is None
        cases.append((off, valid, model([a for _, _, a in complete]), keep_upto))
    wd = tmpdir()
    wadir = aof_dir(wd)
    problems = {"yes": [], "no": [], "check": []}
    # the checker runs on its own copies, two at a time, beside the servers
    pool = concurrent.futures.ThreadPoolExecutor(2)
    checks = []
    if REDIS_CHECK_AOF or SUT == "kv":
        for off, valid, want, keep_upto in cases:
            cd = aof_dir(tmpdir())
            shutil.copytree(adir, cd)
            with open(os.path.join(cd, incr_name), "wb") as f:
                f.write(data[:off])
            fut = pool.submit(check_aof, SUT, os.path.join(cd, "appendonly.aof.manifest"))
            checks.append((off, valid, keep_upto, fut))
    warned = refused_named = 0
    msgs = {}
    for off, valid, want, keep_upto in cases:
        for setting in ("yes", "no"):
            if valid and setting == "yes" and off not in (0, n):
                continue  # a valid file: one setting is enough
            shutil.rmtree(wadir, ignore_errors=True)
            shutil.copytree(adir, wadir)
            with open(os.path.join(wadir, incr_name), "wb") as f:
                f.write(data[:off])
            p = Proc(SUT, wd, "--aof-load-truncated", setting, "--appendfsync", "always", expect_up=False,
                     up_timeout=15)
            log = p.log_text()
            if p.up:
                got = server_data(p)
                log = p.log_text()
                p.kill()   # nothing to save; a clean shutdown waits for a serverCron tick
                bad = p.crash_report(log)
                if bad:
                    problems[setting].append("cut %d: %s" % (off, bad))
                    continue
                if not valid and setting == "no":
                    problems["no"].append("cut %d: started with aof-load-truncated no" % off)
                elif got != want:
                    problems[setting].append("cut %d: loaded %r, want %r" % (off, got, want))
                elif not valid:
                    if re.search(r"(?i)short read|truncat", log) and incr_name in log:
                        warned += 1
                        msgs.setdefault("warn", [x for x in log.splitlines()
                                                 if re.search(r"(?i)short read|truncat", x)])
                    else:
                        problems["yes"].append("cut %d: loaded without a warning naming %s" % (off, incr_name))
            else:
                rc = p.wait_exit(15)
                log = p.log_text()
                bad = p.crash_report(log)
                p._forget()
                if bad:
                    problems[setting].append("cut %d: %s" % (off, bad))
                elif rc is None:
                    problems[setting].append("cut %d: neither up nor exited in 15 s" % off)
                elif valid or setting == "yes":
                    problems[setting].append("cut %d: refused a %s file (exit %r): %s" % (
                        off, "valid" if valid else "truncated", rc, tail(log, 600)))
                elif not (rc > 0 and re.search(r"(?i)unexpected end|short read|truncat", log) and incr_name in log):
                    problems["no"].append("cut %d: exit %r, log does not name the problem and %s: %s"
                                          % (off, rc, incr_name, tail(log, 600)))
                else:
                    refused_named += 1
                    msgs.setdefault("refuse", [l for l in log.splitlines()
                                               if re.search(r"(?i)unexpected end|short read|truncat", l)])
    for off, valid, keep_upto, fut in checks:
        rc, out = fut.result(120)
        if valid:
            if rc != 0:
                problems["check"].append("cut %d (valid): exit %r: %s" % (off, rc, out[-400:]))
        elif rc != 1 or not re.search(r"(?i)not valid|invalid|truncat|unexpected", out) or not mentions_number(
                out, keep_upto):
            problems["check"].append("cut %d: exit %r, want 1 and the offset %d: %s" % (off, rc, keep_upto, out[-500:]))
        else:
            last_end = max(e for e in ends if e <= off)
            msgs.setdefault("check" if keep_upto == last_end else "check (open MULTI)", out.strip().splitlines())
    pool.shutdown()
    ntrunc = sum(1 for c in cases if not c[1])
    chk.ok(not problems["yes"], "aof-load-truncated yes: each of %d truncated files loads exactly the commands "
           "complete before the cut (an open MULTI reverted) and warns naming the file" % ntrunc,
           "\n".join(problems["yes"][:8]))
    chk.ok(not problems["no"], "aof-load-truncated no: each of %d truncated files is refused (exit status, no crash) "
           "naming the problem and the file; the %d valid cuts load" % (ntrunc, len(cases) - ntrunc),
           "\n".join(problems["no"][:8]))
    for k in ("warn", "refuse"):
        if msgs.get(k):
            chk.note("%s: %s" % (k, " | ".join(x.split(" # ", 1)[-1].split(" * ", 1)[-1] for x in msgs[k][:3])))
    if REDIS_CHECK_AOF or SUT == "kv":
        chk.ok(not problems["check"], "%s reports each truncated file invalid (exit 1) with the offset of the last "
               "complete command, and each valid one valid" % ("redis-check-aof" if SUT == "redis" else "--check-aof"),
               "\n".join(problems["check"][:8]))
        for k in ("check", "check (open MULTI)"):
            if msgs.get(k):
                chk.note("%s: %s" % (k, " | ".join(msgs[k][-3:])))
    else:
        chk.skip("redis-check-aof is not installed")
    truncated_then_appended(chk, adir, incr_name, data, cmds)
    bad_bytes(chk, adir, incr_name, data, cmds)


def truncated_then_appended(chk, adir, incr_name, data, cmds):
    """After a load with aof-load-truncated yes the server appends after the
    last complete command: a write, a restart with aof-load-truncated no,
    everything there."""
    wd = tmpdir()
    wadir = aof_dir(wd)
    shutil.copytree(adir, wadir)
    cut = cmds[-6][0] + 7   # inside the command before the MULTI block
    with open(os.path.join(wadir, incr_name), "wb") as f:
        f.write(data[:cut])
    p = Proc(SUT, wd, "--aof-load-truncated", "yes", "--appendfsync", "always")
    p.client().set("after-cut", "1")
    want = server_data(p)
    p.stop()
    q = Proc(SUT, wd, "--aof-load-truncated", "no", "--appendfsync", "always", expect_up=False)
    if not q.up:
        q.wait_exit(15)
        log = q.log_text()
        q._forget()
        chk.ok(False, "a write after loading a truncated file appends after the last complete command (a restart "
                      "with aof-load-truncated no loads it)", tail(log, 800))
        return
    got = server_data(q)
    q.stop()
    chk.ok(got == want and (0, b"after-cut") in got, "a write after loading a truncated file appends after the "
           "last complete command (a restart with aof-load-truncated no loads it)", (got, want))


def bad_bytes(chk, adir, incr_name, data, cmds):
    """A byte RESP does not allow in the middle of the file is refused with
    either aof-load-truncated setting, naming the file; the checker names the
    offset."""
    mid = cmds[len(cmds) // 2]
    s, e, args = mid
    dollar2 = data.index(b"$", data.index(b"$", s) + 1)  # the second argument's '$'
    for what, pos, byte in (("'$' of an argument replaced by 'X'", dollar2, b"X"),
                            ("'*' of a command replaced by '?'", s, b"?")):
        bad = data[:pos] + byte + data[pos + 1:]
        wd = tmpdir()
        wadir = aof_dir(wd)
        shutil.copytree(adir, wadir)
        with open(os.path.join(wadir, incr_name), "wb") as f:
            f.write(bad)
        for setting in ("yes", "no"):
            p = Proc(SUT, wd, "--aof-load-truncated", setting, expect_up=False, up_timeout=15)
            if p.up:
                p.stop()
                chk.ok(False, "%s at offset %d: refused with aof-load-truncated %s" % (what, pos, setting),
                       "the server started")
                continue
            rc = p.wait_exit(15)
            log = p.log_text()
            crash = p.crash_report(log)
            p._forget()
            line = [x for x in log.splitlines() if re.search(r"(?i)format", x)]
            chk.ok(rc is not None and rc > 0 and not crash and line and incr_name in log,
                   "%s at offset %d: refused with aof-load-truncated %s (exit %r) naming a bad format and the file%s"
                   % (what, pos, setting, rc, (": " + line[0].split(" # ", 1)[-1][:120]) if line else ""),
                   crash or tail(log, 800))
        r = check_aof(SUT, os.path.join(wadir, "appendonly.aof.manifest"))
        if r is None:
            chk.skip("redis-check-aof is not installed")
            continue
        rc, out = r
        hexpos = re.search(r"0x\s*%x\b" % pos, out, re.I)
        chk.ok(rc == 1 and (mentions_number(out, s) or mentions_number(out, pos) or hexpos),
               "the checker reports it (exit 1) with the offset (%d, the command at %d)" % (pos, s), (rc, out[-600:]))
        chk.note("checker: " + " | ".join(out.strip().splitlines()[-4:-1]))


# ------------------------------------------------------------------ 6 BGREWRITEAOF under load

def rewrite_under_load(chk, preamble):
    d = tmpdir()
    opts = ["--appendfsync", "everysec", "--aof-use-rdb-preamble", preamble, "--rdb-key-save-delay", "100"]
    p = Proc(SUT, d, *opts)
    c = p.client()
    c.mset({"pad:%d" % i: "x" * 100 for i in range(3000)})   # the child takes ~0.3-0.7 s over these
    base0, incr0 = check_layout(chk, d, preamble, 1, what="before: ")
    nclients = 20
    acked = [[0, 0] for _ in range(nclients)]
    stop = threading.Event()
    errors = []

    def writer(i):
        try:
            r = RawClient(p.port, timeout=20)
            while not stop.is_set():
                n = acked[i][1]
                r.send("INCR", "c:%d" % i)
                x = r.read()
                if x[0] != ":":
                    raise AssertionError(x)
                acked[i][0] = x[1]
                r.send("RPUSH", "l:%d" % i, n)
                x = r.read()
                if x[0] != ":":
                    raise AssertionError(x)
                acked[i][1] = n + 1
            r.close()
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(nclients)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    a0 = sum(x[1] for x in acked)
    reply = c.bgrewriteaof()
    t0 = time.time()
    chk.ok(reply in (True, b"Background append only file rewriting started",
                     "Background append only file rewriting started"), "BGREWRITEAOF starts", reply)
    pers = wait_info(p, lambda i: rewrite_done(i) and i.get("aof_rewrites", 0) >= 1, 60)
    dt = time.time() - t0
    a1 = sum(x[1] for x in acked)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(20)
    chk.need(not any(t.is_alive() for t in threads), "the 20 writers stop")
    chk.eq(errors, [], "no writer got an error")
    chk.need(rewrite_done(pers), "the rewrite finishes (aof_rewrite_in_progress:0, aof_rewrite_scheduled:0)", pers)
    chk.eq((pers.get("aof_rewrites"), pers.get("aof_last_bgrewrite_status")), (1, "ok"),
           "aof_rewrites:1, aof_last_bgrewrite_status:ok")
    chk.ok(a1 - a0 > 20, "the clients were served while the child rewrote (%d writes in %.2f s)" % (a1 - a0, dt),
           a1 - a0)
    adir = aof_dir(d)
    # history files are deleted (Redis does it in the background)
    wait_until(lambda: set(os.listdir(adir)) == ({e["file"] for e in A.read_manifest(adir)}
                                                 | {"appendonly.aof.manifest"}), 10, 0.05)
    base1, incr1 = check_layout(chk, d, preamble, 2, what="after: ")
    chk.ok(base1["seq"] > base0["seq"] and incr1["seq"] > incr0["seq"],
           "the new base and incr have higher seqs (%d, %d)" % (base1["seq"], incr1["seq"]))
    chk.ok(not os.path.exists(os.path.join(adir, base0["file"])) and not os.path.exists(
        os.path.join(adir, incr0["file"])), "the old files %s, %s are gone" % (base0["file"], incr0["file"]),
        sorted(os.listdir(adir)))
    chk.eq(p.stop(), 0, "SIGTERM: a clean exit")
    q = Proc(SUT, d, *opts)
    qc = q.client()
    pl = qc.pipeline(transaction=False)
    for i in range(nclients):
        pl.get("c:%d" % i)
        pl.lrange("l:%d" % i, 0, -1)
    res = pl.execute()
    wrong = []
    for i in range(nclients):
        cnt, lst = res[2 * i], res[2 * i + 1]
        if int(cnt or 0) != acked[i][0] or [int(x) for x in lst] != list(range(acked[i][1])):
            wrong.append("client %d: counter %r (acknowledged %d), list of %d (acknowledged %d)" %
                         (i, cnt, acked[i][0], len(lst), acked[i][1]))
    chk.ok(not wrong, "after a restart each of 20 clients' counter and list is exactly what it had acknowledged "
           "(%d writes)" % (2 * sum(x[1] for x in acked)), "\n".join(wrong[:5]))
    chk.eq(qc.dbsize(), 3000 + 2 * nclients, "DBSIZE")
    q.stop()


def bgrewriteaof_preamble(chk):
    """BGREWRITEAOF with the RDB preamble while 20 clients write."""
    rewrite_under_load(chk, "yes")


def bgrewriteaof_no_preamble(chk):
    """BGREWRITEAOF without the preamble (a RESP base) while 20 clients write."""
    rewrite_under_load(chk, "no")


# ------------------------------------------------------------------ 7 CONFIG SET appendonly

def config_set_appendonly(chk):
    """CONFIG SET appendonly yes on a server with data writes a base of it; no stops appending."""
    d = tmpdir()
    p = Proc(SUT, d, "--appendfsync", "always", appendonly="no")
    c = p.client()
    build_dataset(p, dbs=(0, 1), seed=3)
    chk.eq(os.path.exists(aof_dir(d)), False, "no AOF directory while appendonly is no")
    chk.eq(c.config_set("appendonly", "yes"), True, "CONFIG SET appendonly yes")
    pers = wait_info(p, lambda i: i.get("aof_enabled") == 1 and rewrite_done(i), 60)
    chk.need(pers.get("aof_enabled") == 1 and rewrite_done(pers),
             "the rewrite completes: aof_enabled:1, aof_rewrite_in_progress:0, aof_rewrite_scheduled:0", pers)
    at_switch = snapshot(p, dbs=(0, 1))
    base, incr = check_layout(chk, d, "yes", 1)
    adir = aof_dir(d)
    chk.ok(os.path.getsize(os.path.join(adir, base["file"])) > 1000, "the base holds the data (%d bytes)"
           % os.path.getsize(os.path.join(adir, base["file"])))
    # the base alone: a copy with only the base in its manifest
    bd = tmpdir()
    os.mkdir(aof_dir(bd))
    shutil.copy(os.path.join(adir, base["file"]), aof_dir(bd))
    with open(os.path.join(aof_dir(bd), "appendonly.aof.manifest"), "w") as f:
        f.write("file %s seq %d type b\n" % (base["file"], base["seq"]))
    b = Proc(SUT, bd)
    got = snapshot(b, dbs=(0, 1))
    b.stop()
    chk.ok(got == at_switch, "the base alone (a manifest naming only it) gives the dataset at the switch (%d keys)"
           % len(got), snapshot_diff(at_switch, got))
    incr_file = os.path.join(adir, incr["file"])
    s0 = os.path.getsize(incr_file)
    c.set("after-yes", "1")
    c.rpush("ttl:list", "more")
    chk.ok(os.path.getsize(incr_file) > s0, "writes after the switch are appended to %s" % incr["file"])
    before = snapshot(p, dbs=(0, 1))
    chk.eq(p.stop(), 0, "SIGTERM: a clean exit")
    q = Proc(SUT, d, "--appendfsync", "always")
    after = snapshot(q, dbs=(0, 1))
    chk.ok(before == after, "a restart with appendonly yes keeps the data (%d keys)" % len(after),
           snapshot_diff(before, after))
    qc = q.client()
    chk.eq(qc.config_set("appendonly", "no"), True, "CONFIG SET appendonly no")
    chk.eq(q.info().get("aof_enabled"), 0, "aof_enabled:0")
    incr_file = incr_path(d)
    s1 = os.path.getsize(incr_file)
    qc.set("after-no", "1")
    qc.rpush("list:small", "after-no")
    time.sleep(1.2)
    chk.eq(os.path.getsize(incr_file), s1, "nothing is appended after CONFIG SET appendonly no (1.2 s later)")
    q.stop()
    r = Proc(SUT, d, "--appendfsync", "always")
    rs = snapshot(r, dbs=(0, 1))
    r.stop()
    chk.ok(rs == after, "a restart with appendonly yes has the data up to the switch off, not the writes after it",
           snapshot_diff(after, rs))


def appendonly_yes_over_dump_rdb(chk):
    """appendonly yes at start with a dump.rdb and no AOF: redis starts empty, inferkv loads the dump."""
    # Redis 7.0 loads only the AOF when appendonly is yes; with no AOF
    # directory it does not fall back to dump.rdb: it starts with an empty
    # dataset and writes a base of it (the classic way to lose data by
    # turning appendonly on in the config file; CONFIG SET appendonly yes at
    # runtime, case 7, is the safe way).  inferkv departs from this on
    # purpose (src/server/aof.c): it loads the dump and the new base holds it.
    d = tmpdir()
    p = Proc(SUT, d, appendonly="no")
    c = p.client()
    c.set("from-rdb", "1")
    c.rpush("list", "a", "b")
    chk.need(c.save() is True, "SAVE writes dump.rdb (appendonly no)")
    p.stop()
    dump = os.path.join(d, "dump.rdb")
    before = open(dump, "rb").read()
    q = Proc(SUT, d)
    if SUT == "redis":
        chk.eq(q.client().dbsize(), 0, "restarted with appendonly yes and no AOF directory: redis-server 7.0.15 "
                                       "starts empty (dump.rdb is not loaded)")
    else:
        chk.eq(q.client().dbsize(), 2, "restarted with appendonly yes and no AOF directory: inferkv loads dump.rdb "
                                       "(unlike redis-server 7.0.15, which starts empty)")
    check_layout(chk, d, "yes", 1)
    chk.eq(open(dump, "rb").read() == before, True, "dump.rdb is left as it was")
    q.stop()
    if SUT == "kv":
        os.remove(dump)
        r = Proc(SUT, d)
        chk.eq(sorted(r.client().keys()), [b"from-rdb", b"list"], "the new base holds the dump's data (a restart "
                                                                  "without dump.rdb has it)")
        r.stop()


# ------------------------------------------------------------------ 8 interop

def interop(chk, writer, reader, preamble):
    d1 = tmpdir()
    a = Proc(writer, d1, "--aof-use-rdb-preamble", preamble, "--appendfsync", "everysec")
    build_dataset(a, prefix="a:", seed=5)
    a.client().bgrewriteaof()
    pers = wait_info(a, lambda i: rewrite_done(i) and i.get("aof_rewrites", 0) >= 1, 60)
    chk.need(rewrite_done(pers) and pers.get("aof_rewrites", 0) >= 1, "%s: BGREWRITEAOF completes" % NAMES[writer],
             pers)
    build_dataset(a, prefix="b:", seed=6)
    c = a.client()
    c.rpush("a:list:small", "after-rewrite")
    c.expire("a:list:big", 5000)
    c.incrbyfloat("a:odd:4", 1.25)
    c.xreadgroup("g1", "dave", {"a:stream:big": ">"}, count=4)
    c.xack("a:stream:big", "g1", "1004-0")
    before = snapshot(a)
    a.stop()
    _, incrs, _ = A.manifest_parts(aof_dir(d1))
    base = A.manifest_parts(aof_dir(d1))[0]
    d2 = tmpdir()
    shutil.copytree(aof_dir(d1), aof_dir(d2))
    b = Proc(reader, d2, "--aof-use-rdb-preamble", preamble, expect_up=False)
    if not b.up:
        b.wait_exit(15)
        log = b.log_text()
        b._forget()
        chk.need(False, "%s starts on the AOF directory %s wrote" % (NAMES[reader], NAMES[writer]), tail(log))
    after = snapshot(b)
    chk.ok(before == after, "%s loads the AOF directory %s wrote (base %s, %d incr bytes): %d keys equal"
           % (NAMES[reader], NAMES[writer], base["file"], sum(os.path.getsize(os.path.join(aof_dir(d1), e["file"]))
                                                              for e in incrs), len(after)),
           snapshot_diff(before, after))
    b.stop()


def interop_cases():
    """(name, fn) for each direction: in redis mode redis -> redis."""
    out = []
    pairs_ = [("redis", "redis")] if SUT == "redis" else [("kv", "redis"), ("redis", "kv")]
    for w, r in pairs_:
        for pre in ("yes", "no"):
            def fn(chk, w=w, r=r, pre=pre):
                interop(chk, w, r, pre)
            fn.__doc__ = "an AOF directory written by %s (aof-use-rdb-preamble %s) loads in %s" % (
                NAMES[w], pre, NAMES[r])
            out.append(("interop_%s_to_%s_preamble_%s" % (w, r, pre), fn))
    return out


# ------------------------------------------------------------------ 9 INFO

AOF_FIELDS_ON = None


def aof_field_names(kind, appendonly):
    d = tmpdir()
    p = Proc(kind, d, appendonly=appendonly)
    names = sorted(k for k in p.info() if k.startswith("aof_"))
    p.stop()
    return names


def info_persistence(chk):
    """INFO persistence: the aof_* fields exist (redis-server's names) and agree with the files."""
    if REDIS:
        for mode in ("yes", "no"):
            want = aof_field_names("redis", mode)
            got = aof_field_names(SUT, mode)
            chk.eq(got, want, "with appendonly %s the aof_* field names are redis-server's" % mode)
    else:
        chk.skip("redis-server not installed: the field names are not compared")
    d = tmpdir()
    p = Proc(SUT, d, "--appendfsync", "always", "--rdb-key-save-delay", "200")
    c = p.client()
    i = p.info()
    chk.eq({k: i.get(k) for k in ("aof_enabled", "aof_rewrite_in_progress", "aof_rewrite_scheduled",
                                  "aof_last_bgrewrite_status", "aof_last_write_status", "aof_rewrites",
                                  "aof_buffer_length", "aof_last_rewrite_time_sec")},
           {"aof_enabled": 1, "aof_rewrite_in_progress": 0, "aof_rewrite_scheduled": 0,
            "aof_last_bgrewrite_status": "ok", "aof_last_write_status": "ok", "aof_rewrites": 0,
            "aof_buffer_length": 0, "aof_last_rewrite_time_sec": -1}, "at start: enabled, idle, no rewrite yet")
    s0 = i.get("aof_current_size")
    c.mset({"k%d" % j: "v" * 50 for j in range(2000)})
    i = p.info()
    chk.ok(isinstance(s0, int) and isinstance(i.get("aof_current_size"), int) and i["aof_current_size"] > s0 + 100000,
           "aof_current_size grows with the writes (%r -> %r)" % (s0, i.get("aof_current_size")))
    # a BGREWRITEAOF during a BGSAVE is scheduled
    chk.eq(c.bgsave(), True, "BGSAVE starts (slowed: rdb-key-save-delay 200)")
    r = c.bgrewriteaof()
    i = p.info()
    chk.ok(i.get("aof_rewrite_scheduled") == 1 and i.get("aof_rewrite_in_progress") == 0,
           "BGREWRITEAOF during a BGSAVE: aof_rewrite_scheduled:1, aof_rewrite_in_progress:0 (reply %r)" % r,
           {k: i.get(k) for k in ("aof_rewrite_scheduled", "aof_rewrite_in_progress")})
    seen_in_progress = wait_until(lambda: p.info().get("aof_rewrite_in_progress") == 1, 15, 0.01)
    chk.need(seen_in_progress, "then the scheduled rewrite runs (aof_rewrite_in_progress:1)")
    i = wait_info(p, lambda x: rewrite_done(x) and x.get("rdb_bgsave_in_progress") == 0 and x.get("aof_rewrites") == 1,
                  60)
    c.set("after", "x")
    i = p.info()
    adir = aof_dir(d)
    base, incrs, _ = A.manifest_parts(adir)
    bsize = os.path.getsize(os.path.join(adir, base["file"]))
    isize = sum(os.path.getsize(os.path.join(adir, e["file"])) for e in incrs)
    chk.eq({k: i.get(k) for k in ("aof_rewrites", "aof_last_bgrewrite_status", "aof_rewrite_in_progress",
                                  "aof_rewrite_scheduled", "aof_last_write_status", "aof_buffer_length")},
           {"aof_rewrites": 1, "aof_last_bgrewrite_status": "ok", "aof_rewrite_in_progress": 0,
            "aof_rewrite_scheduled": 0, "aof_last_write_status": "ok", "aof_buffer_length": 0},
           "after the rewrite: aof_rewrites:1, status ok, idle, empty buffer")
    chk.ok(isinstance(i.get("aof_last_rewrite_time_sec"), int) and i["aof_last_rewrite_time_sec"] >= 0,
           "aof_last_rewrite_time_sec >= 0 (%r)" % i.get("aof_last_rewrite_time_sec"))
    chk.eq(i.get("aof_base_size"), bsize, "aof_base_size is the size of %s" % base["file"])
    chk.eq(i.get("aof_current_size"), bsize + isize, "aof_current_size is base + incr (%d + %d)" % (bsize, isize))
    chk.eq(c.config_set("appendonly", "no"), True, "CONFIG SET appendonly no")
    chk.eq(p.info().get("aof_enabled"), 0, "aof_enabled:0")
    p.stop()


def bgrewriteaof_in_exec(chk):
    """BGREWRITEAOF inside MULTI/EXEC is scheduled, not forked from the
    transaction, and the rewrite then runs from cron - with appendonly no
    as well (it writes a base and a manifest)."""
    for appendonly in ("yes", "no"):
        d = tmpdir()
        p = Proc(SUT, d, "--appendonly", appendonly)
        c = p.client()
        c.set("k", "v")
        raw = server_harness.RawClient(c.connection_pool.connection_kwargs["port"])  # redis-py maps it to True
        raw.call("MULTI")
        raw.call("BGREWRITEAOF")
        chk.eq(raw.call("EXEC"), ("*", [("+", "Background append only file rewriting scheduled")]),
               "appendonly %s: EXEC's reply" % appendonly)
        raw.close()
        i = wait_info(p, lambda x: rewrite_done(x) and x.get("aof_rewrites", 0) >= 1, 30)
        chk.ok(rewrite_done(i) and i.get("aof_rewrites", 0) >= 1,
               "appendonly %s: the scheduled rewrite ran (aof_rewrites %r)" % (appendonly, i.get("aof_rewrites")))
        base, _, _ = A.manifest_parts(aof_dir(d))
        chk.ok(base is not None and os.path.exists(os.path.join(aof_dir(d), base["file"])),
               "appendonly %s: the manifest names a base file that exists" % appendonly)
        p.stop()


def debug_loadaof(chk):
    """DEBUG LOADAOF (what Redis's own test suite reloads with): the dataset
    replaced by what the AOF files load, equal to what it was.  inferkv
    only: files that do not load (a bad byte in the incr file) leave the
    dataset as it was and answer an error, where Redis 7.0 exits; with
    appendonly no it is an error."""
    d = tmpdir()
    # Redis 7.0 refuses DEBUG without enable-debug-command
    p = Proc(SUT, d, "--appendonly", "yes", "--aof-use-rdb-preamble", "no", "--enable-debug-command", "local")
    build_dataset(p, seed=3)
    before = snapshot(p)
    raw = server_harness.RawClient(p.client().connection_pool.connection_kwargs["port"])
    chk.eq(raw.call("DEBUG", "LOADAOF"), ("+", "OK"), "DEBUG LOADAOF answers OK")
    after = snapshot(p)
    chk.ok(before == after, "the dataset reloaded from the AOF is the one written (%d keys)" % len(before),
           snapshot_diff(before, after))
    if SUT == "kv":
        path = incr_path(d)
        data = open(path, "rb").read()
        pos = data.index(b"*", len(data) // 2)  # a command's start
        with open(path, "r+b") as f:
            f.seek(pos)
            f.write(b"!")
        t, v = raw.call("DEBUG", "LOADAOF")
        chk.ok(t == "-" and "Error loading the append only file" in v, "a bad byte: an error (%r)" % (v,))
        chk.ok(snapshot(p) == before, "and the dataset as it was")
        chk.eq(raw.call("PING"), ("+", "PONG"), "the server serves on")
        with open(path, "r+b") as f:
            f.seek(pos)
            f.write(b"*")
        raw.close()
        p.stop()
        q = Proc(SUT, tmpdir(), "--appendonly", "no", "--enable-debug-command", "local")
        rq = server_harness.RawClient(q.client().connection_pool.connection_kwargs["port"])
        t, v = rq.call("DEBUG", "LOADAOF")
        chk.ok(t == "-" and "AOF is not enabled" in v, "appendonly no: an error (%r)" % (v,))
        rq.close()
        q.stop()
    else:
        raw.close()
        p.stop()


# ------------------------------------------------------------------ main

def main():
    t_start = time.time()
    chk = Checks()
    if SUT == "kv" and not os.path.exists(server_harness.SERVER):
        print("SKIP: %s is not built" % server_harness.SERVER)
        print("0 passed, 0 failed, 1 skipped")
        return
    if SUT == "redis" and not REDIS:
        print("SKIP: redis-server is not installed (scripts/deps.sh)")
        print("0 passed, 0 failed, 1 skipped")
        return
    print("server under test: %s (%s)" % (NAMES[SUT], server_harness.SERVER if SUT == "kv" else REDIS))
    cases = [("basics_always", basics_always), ("basics_everysec", basics_everysec), ("basics_no", basics_no),
             ("deterministic_forms", deterministic_forms), ("kill9_always", kill9_always),
             ("kill9_everysec", kill9_everysec), ("truncation", truncation),
             ("bgrewriteaof_preamble", bgrewriteaof_preamble), ("bgrewriteaof_no_preamble", bgrewriteaof_no_preamble),
             ("config_set_appendonly", config_set_appendonly),
             ("appendonly_yes_over_dump_rdb", appendonly_yes_over_dump_rdb)] + interop_cases() + \
            [("info_persistence", info_persistence), ("bgrewriteaof_in_exec", bgrewriteaof_in_exec),
             ("debug_loadaof", debug_loadaof)]
    for name, fn in cases:
        if ONLY and ONLY not in name:
            continue
        if name.startswith("interop") and not REDIS:
            chk.skip("%s: redis-server not installed (scripts/deps.sh)" % name)
            continue
        chk.run_case(fn, name=name)
    if not KEEP or not chk.failed:
        for d in TMP:
            shutil.rmtree(d, ignore_errors=True)
    else:
        print("kept: %s" % " ".join(TMP))
    chk.done(t_start)


if __name__ == "__main__":
    main()
