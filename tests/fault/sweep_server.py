"""sweep_server.py - every allocation of every command of the workloads
(workloads.py) failed in turn, through a real inferkv-server, as SQLite
tests itself.

For each family, each command C in turn is the command under test, with
the state the commands before it leave:
  1. a clean run: FLUSHALL, the commands before C, a snapshot S0 of the
     dataset (databases 0 and 1: every key's type, value, TTL bucket and
     stream groups), C (its reply R), a snapshot S1;
  2. for n = 1, 2, ...: the same state rebuilt, DEBUG ALLOC-FAIL n ID <the
     client>, C; DEBUG ALLOC-FAIL STATUS says whether an allocation of C
     was failed and where.  When none was (n is past C's allocations), the
     reply must be R and the dataset S1, and the sweep of C ends.  When one
     was, the command must have either failed cleanly - an error reply, the
     dataset still S0 - or got past the failure - the reply R and the
     dataset S1; anything else (a partial write, a wrong reply) is a
     failure of the sweep.  After each run the server must answer PING.
The server is the ASan + UBSan build (build/asan/inferkv-server, built by
`make fault`) when there is one: a crash, a use-after-free or UB is a
failure; LeakSanitizer runs at its exit and any leak it reports - memory a
failed command allocated and lost - is a failure too.  Every failure site
is resolved to file:line (addr2line) and counted: the sweep prints how
many distinct allocation call sites it failed.

  sweep_server.py [--server PATH] [--families a,b] [--slice K] [--json FILE]
  sweep_server.py --redis build/asan/inferkv.so [--preload libasan.so] ...

With --redis the server is Debian's redis-server with the module (loaded
with infer-debug yes) and the failures are injected with INFER.DEBUG
ALLOC-FAIL into the module's commands (INFER.*, V*): the module's own
allocations, libinfer's, libinfercmd's, libvcmd's and libvset's.

--slice K sweeps only every K-th command of each family (make test runs a
slice so that CI stays in time; make fault runs them all).  Prints "N
passed, N failed, N skipped" (one check per command swept); exits 1 on
failure.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import server_harness  # noqa: E402
from server_harness import Closed, RawClient, Server, Tally  # noqa: E402

from workloads import FAMILIES, FAMILY_OPTIONS  # noqa: E402

SHARED = os.environ.get("INFERKV_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
MAX_N = 5000  # allocations of one command at most (a runaway sweep stops here, as a failure)
BAD_LOG = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "crashed by signal",
           "ASSERTION FAILED")


def ttl_bucket(ms):
    """PTTL to the second (a rebuilt state's deadline differs by milliseconds)."""
    return ms if ms < 0 else (ms + 500) // 1000


class Sweep:
    def __init__(self, port, debug=("DEBUG",)):
        self.port = port
        self.debug = list(debug)  # DEBUG (inferkv-server) or INFER.DEBUG (inferkv.so)
        self.compact_aof = False
        self.obs = RawClient(port, timeout=60)     # snapshots and STATUS
        self.c = None
        self.cid = None
        self.sites = {}                            # "binary+0x..." -> count
        self.reconnect()

    def reconnect(self):
        if self.c:
            self.c.close()
        self.c = RawClient(self.port, timeout=60)
        self.cid = self.c.call("CLIENT", "ID")[1]

    def call(self, *args):
        """The reply to args, normalised where the order of a reply is not
        part of the command (a set's members, a hash's fields): a failed
        table resize may leave the same contents in another order.  A
        connection the server closed - what it does when it cannot build
        a reply, since a half-written one would corrupt the stream - is
        ("closed", None), and the client is replaced."""
        try:
            r = self.c.call(*args)
        except (Closed, OSError):
            self.reconnect()
            return ("closed", None)
        return normalise(args[0].upper(), r)

    def snapshot(self):
        out = {}
        for db in (0, 1):
            self.obs.call("SELECT", db)
            cursor, keys = "0", []
            while True:
                t, v = self.obs.call("SCAN", cursor, "COUNT", 1000)
                cursor = v[0][1].decode()
                keys += [k[1] for k in v[1][1]]
                if cursor == "0":
                    break
            for k in sorted(keys):
                out[(db, k)] = self.value(k)
        self.obs.call("SELECT", 0)
        return out

    def value(self, k):
        typ = self.obs.call("TYPE", k)[1]
        ttl = ttl_bucket(self.obs.call("PTTL", k)[1])
        o = self.obs
        if typ == "string":
            v = o.call("GET", k)
        elif typ == "list":
            v = o.call("LRANGE", k, 0, -1)
        elif typ == "hash":
            v = sorted(map(repr, o.call("HGETALL", k)[1]))
        elif typ == "set":
            v = sorted(map(repr, o.call("SMEMBERS", k)[1]))
        elif typ == "zset":
            v = o.call("ZRANGE", k, 0, -1, "WITHSCORES")
        elif typ == "stream":
            # everything but times (a consumer's idle, a PEL entry's age)
            # and the radix tree's node counts
            info = fields(o.call("XINFO", "STREAM", k))
            groups = [fields(g) for g in o.call("XINFO", "GROUPS", k)[1]]
            v = (o.call("XRANGE", k, "-", "+"),
                 [info.get(f) for f in ("length", "last-generated-id", "max-deleted-entry-id", "entries-added")],
                 groups,
                 [[(fields(x)["name"], fields(x)["pending"]) for x in
                   o.call("XINFO", "CONSUMERS", k, g["name"][1])[1]] for g in groups],
                 [[(e[1][0], e[1][1], e[1][3]) for e in o.call("XPENDING", k, g["name"][1], "-", "+", 1000)[1]]
                  for g in groups])
        elif typ == "vectorset":
            names = o.call("VRANGE", k, "-", "+")[1] or []
            v = [(n, o.call("VEMB", k, n[1]), o.call("VGETATTR", k, n[1])) for n in names]
        else:
            v = typ
        return (typ, ttl, repr(v))

    def rebuild(self, before):
        """An empty dataset, a fresh client state, the commands before; with
        compact_aof, then an AOF rewritten to hold just that (so that every
        run reloads the same file)."""
        self.call("RESET")
        self.obs.call("FLUSHALL")
        for cmd in before:
            self.call(*cmd)
        if self.compact_aof:
            self.obs.call("BGREWRITEAOF")
            deadline = time.time() + 30
            while time.time() < deadline:
                info = self.obs.call("INFO", "persistence")[1].decode()
                if "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info:
                    break
                time.sleep(0.01)

    def status(self):
        _, v = self.obs.call(*self.debug, "ALLOC-FAIL", "STATUS")
        return v[0][1], v[1][1], v[2][1].decode()

    def check_exec(self, before, got, want, snap):
        """EXEC with an allocation failed in one of its commands: as in
        Redis, a command that fails inside EXEC does not undo the others.
        Each failed one must have answered an error and changed nothing:
        the dataset must be what the others alone make, and their replies
        the clean run's."""
        start = max(i for i, c in enumerate(before) if c[0].upper() == "MULTI")
        queued = before[start + 1:]
        if len(got[1]) != len(queued) or len(want[1]) != len(queued):
            return False, "EXEC answered %d replies for %d commands" % (len(got[1]), len(queued))
        kept = [q for q, r in zip(queued, got[1]) if r[0] != "-"]
        if any(r != w for r, w in zip(got[1], want[1]) if r[0] != "-"):
            return False, "EXEC's other replies differ: %r vs %r" % (got, want)
        self.rebuild(before[:start] + kept)
        if self.snapshot() != snap:
            return False, "EXEC: the dataset is not what its successful commands alone make"
        return True, ""

    def sweep_command(self, before, cmd):
        """(ok, what, runs)."""
        self.rebuild(before)
        s0 = self.snapshot()
        want = self.call(*cmd)
        s1 = self.snapshot()
        for n in range(1, MAX_N + 1):
            self.rebuild(before)
            t, v = self.obs.call(*self.debug, "ALLOC-FAIL", n, "ID", self.cid)
            if t == "-":
                return False, "DEBUG ALLOC-FAIL: %s" % v, n
            got = self.call(*cmd)
            fired, calls, site = self.status()
            snap = self.snapshot()
            ping = self.obs.call("PING")
            if ping != ("+", "PONG"):
                return False, "allocation %d: PING answered %r" % (n, ping), n
            if got[0] == "closed":
                # the reply could not be built: the command ran or did
                # not, as when a network fails; never half of it
                if not fired or snap not in (s0, s1):
                    return False, "allocation %d (%s): the connection was closed and the dataset is %s" % (
                        n, site or "no failure", "neither before nor after: " + diff(s1, snap)), n
                self.sites[site] = self.sites.get(site, 0) + 1
                continue
            if fired and cmd[0].upper() == "EXEC" and got[0] == "*" and got[1] is not None:
                ok, what = self.check_exec(before, got, want, snap)
                if not ok:
                    return False, "allocation %d (%s): %s" % (n, site, what), n
                self.sites[site] = self.sites.get(site, 0) + 1
                continue
            if not fired:
                if got != want or snap != s1:
                    return False, "no failure injected (%d allocations), yet the run differs: %r vs %r" % (
                        calls, got, want), n
                return True, "%d allocations" % (n - 1), n
            self.sites[site] = self.sites.get(site, 0) + 1
            if got[0] == "-":
                if snap != s0:
                    return False, "allocation %d (%s) failed with %r but changed the dataset: %s" % (
                        n, site, got[1], diff(s0, snap)), n
            elif got != want or snap != s1:
                return False, "allocation %d (%s): neither a clean error nor the normal result: %r vs %r; %s" % (
                    n, site, got, want, diff(s1, snap)), n
        return False, "more than %d allocations" % MAX_N, MAX_N


def fields(r):
    """A RESP2 map reply (flat array) as {name: value}."""
    v = r[1]
    return {v[i][1].decode() if isinstance(v[i][1], bytes) else v[i][1]: v[i + 1] for i in range(0, len(v), 2)}


# reply fields that differ from run to run whatever happens: times, and
# what depends on the HNSW graph's random levels and the set's id
TIMINGS = {"embed_ms", "queue_ms", "prefill_ms", "decode_ms", "reused_tokens"}  # and the prefix cache's state
VOLATILE = {"XINFO": {"idle", "inactive", "seen-time", "active-time"},
            "VINFO": {"max-level", "vset-uid", "hnsw-max-node-uid"},
            "INFER.RAG": TIMINGS, "INFER.ANSWER": TIMINGS}


def drop_volatile(cmd, v):
    """v (a flat name/value list, or lists of them) without VOLATILE[cmd]."""
    if not isinstance(v, list):
        return v
    names = VOLATILE[cmd]
    if len(v) % 2 == 0 and all(isinstance(x, tuple) and x[0] in "+$" for x in v[0::2]):
        out = []
        for i in range(0, len(v), 2):
            name = v[i][1].decode() if isinstance(v[i][1], bytes) else v[i][1]
            if name not in names:
                out += [v[i], (v[i + 1][0], drop_volatile(cmd, v[i + 1][1]))]
        return out
    return [(x[0], drop_volatile(cmd, x[1])) if isinstance(x, tuple) else x for x in v]


UNORDERED = {"SMEMBERS", "SUNION", "SINTER", "SDIFF", "HKEYS", "HVALS"}
UNORDERED_PAIRS = {"HGETALL"}
SCANS = {"SCAN", "SSCAN", "HSCAN", "ZSCAN"}


def normalise(cmd, r):
    t, v = r
    if t != "*" or v is None:
        return r
    if cmd in VOLATILE:
        return (t, drop_volatile(cmd, v))
    if cmd == "XPENDING" and v and all(x[0] == "*" and len(x[1]) == 4 for x in v):
        # the extended form: [id, consumer, idle ms, deliveries]; idle is a time
        return (t, [(x[0], [x[1][0], x[1][1], x[1][3]]) for x in v])
    if cmd in UNORDERED:
        return (t, sorted(v, key=repr))
    if cmd in UNORDERED_PAIRS:
        return (t, sorted(zip(v[0::2], v[1::2]), key=repr))
    if cmd in SCANS and len(v) == 2 and v[1][0] == "*":
        items = v[1][1]
        if cmd in ("HSCAN", "ZSCAN"):
            items = list(zip(items[0::2], items[1::2]))
        return (t, [v[0], sorted(items, key=repr)])
    return r


def diff(a, b):
    keys = sorted(set(a) | set(b), key=repr)
    d = [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]
    return repr(d[:2])[:600]


def setup_models(models, bindir):
    """stories260K as s.gguf and a gguf-gen tiny-bert as e.gguf; None, or
    why the infer family cannot run."""
    stories = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
    vocab = os.path.join(SHARED, "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf")
    gen = next((g for g in (os.path.join(bindir, "gguf-gen"), os.path.join(ROOT, "build", "gguf-gen"))
                if os.access(g, os.X_OK)), None)
    if not os.path.exists(stories):
        return "no stories260K under %s" % SHARED
    if not gen:
        return "no gguf-gen built"
    shutil.copy(stories, os.path.join(models, "s.gguf"))
    cmd = [gen, "--preset", "tiny-bert", "-q", "-o", os.path.join(models, "e.gguf")]
    if os.path.exists(vocab):
        cmd[3:3] = ["--vocab", vocab]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return "gguf-gen could not make the tiny-bert encoder"
    return None


def resolve(binaries, sites):
    """{"name+0xoff": n} -> {"file:line (function)": n} with addr2line, name
    being one of binaries' base names."""
    res = {}
    for binary in binaries:
        name = os.path.basename(binary)
        offs = [(s, s.rsplit("+", 1)[1]) for s in sites if s.startswith(name + "+0x")]
        if not offs:
            continue
        # a return address follows the call: one byte back is inside it
        args = ["addr2line", "-f", "-C", "-e", binary] + ["0x%x" % (int(o, 16) - 1) for _, o in offs]
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout.splitlines()
        except (OSError, subprocess.TimeoutExpired):
            out = []
        for i, (s, _) in enumerate(offs):
            fn, loc = out[2 * i:2 * i + 2] if len(out) >= 2 * i + 2 else ("?", "?")
            loc = os.path.relpath(loc.split(" ")[0], ROOT) if loc.startswith("/") else loc
            key = "%s (%s)" % (loc, fn)
            res[key] = res.get(key, 0) + sites[s]
    return res


class ModuleServer(server_harness.LoggedProcess):
    """Debian's redis-server with inferkv.so (infer-debug yes); with
    preload, the sanitizer runtime the module was built with."""

    def __init__(self, module, models, preload):
        self.port = server_harness.free_port()
        self.dir = tempfile.mkdtemp(prefix="inferkv-sweep-redis-")
        cmd = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(self.port), "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir, "--loadmodule", module,
               "infer-models-dir", models, "infer-threads", "1", "infer-debug", "yes"]
        env = dict(os.environ)
        if preload:
            env["LD_PRELOAD"] = preload
        super().__init__(cmd, os.path.join(self.dir, "redis.log"), env=env)

        def ping():
            c = RawClient(self.port)
            c.call("PING")
            c.close()
            return True
        if not server_harness.wait_up(self.proc, ping):
            raise RuntimeError("redis-server with the module did not start:\n" + self.log_text())


def run_group(a, t, families, opts, models, why, results):
    """Sweeps families on one server started with opts; its sites."""
    if a.redis:
        srv = ModuleServer(os.path.abspath(a.redis), models, a.preload)
    else:
        srv = Server("--enable-debug-command", "local", "--infer-models-dir", models, "--infer-threads", "1", *opts)
    sw = None
    try:
        sw = Sweep(srv.port, ("INFER.DEBUG",) if a.redis else ("DEBUG",))
        if not why and "infer" in families:
            for name in ("s", "e"):
                r = sw.obs.call("INFER.LOAD", name, name + ".gguf")
                if r[0] == "-":
                    why = "INFER.LOAD %s: %s" % (name, r[1])
        for fam in families:
            if fam == "infer" and why:
                t.skip("the infer family: %s" % why)
                continue
            cmds = FAMILIES[fam]
            sw.compact_aof = FAMILY_OPTIONS.get(fam, {}).get("compact_aof", False)
            only = FAMILY_OPTIONS.get(fam, {}).get("sweep_only")
            for i, cmd in enumerate(cmds):
                if i % a.slice:
                    continue
                if a.redis and not (cmd[0].upper().startswith("INFER.") or cmd[0].upper().startswith("V")):
                    continue  # Redis's own command: the module's seam does not see it
                if only and " ".join(cmd).upper() not in only:
                    continue  # set-up only

                def one(fam=fam, i=i, cmd=cmd):
                    try:
                        ok, what, runs = sw.sweep_command(cmds[:i], cmd)
                    except (Closed, OSError) as e:  # the observer's connection: the server went away
                        ok, what, runs = False, "the server stopped answering (%r)" % e, 0
                    results["%s %d %s" % (fam, i, " ".join(cmd)[:60])] = {"ok": ok, "what": what, "runs": runs}
                    if not ok:
                        sw.reconnect()
                    assert ok, ("%s: %s: %s" % (fam, " ".join(cmd)[:80], what))[:700]
                one.__name__ = "%s: %s (%d)" % (fam, " ".join(cmd)[:50], i)
                t.run(one)
    finally:
        if sw and srv.alive():
            sw.obs.send("SHUTDOWN", "NOSAVE")
        srv.stop_process(timeout=60)
        log = srv.log_text()
        srv.log.close()

        def server_log_clean(log=log, srv=srv):
            bad = [ln for ln in log.splitlines() if any(b in ln for b in BAD_LOG)]
            if bad:
                print(log[-6000:])
            assert not bad and srv.proc.returncode == 0, "sanitizer report or unclean exit %r: %s" % (
                srv.proc.returncode, bad[:3])
        server_log_clean.__name__ = "server_log_clean (%s)" % ",".join(families)[:40]
        t.run(server_log_clean)
    return sw.sites if sw else {}


def main():
    ap = argparse.ArgumentParser()
    asan = os.path.join(ROOT, "build", "asan", "inferkv-server")
    ap.add_argument("--server", default=os.environ.get("INFERKV_SERVER") or
                    (asan if os.path.exists(asan) else server_harness.SERVER))
    ap.add_argument("--families", default=None, help="default: all (with --redis: infer,vset)")
    ap.add_argument("--redis", metavar="MODULE", help="sweep Debian's redis-server with this inferkv.so instead")
    ap.add_argument("--preload", default="", help="with --redis: the sanitizer runtime to preload")
    ap.add_argument("--slice", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    server_harness.SERVER = os.path.abspath(a.server)
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    t = Tally()
    t0 = time.time()
    print("sweeping %s (slice 1/%d)" % (("redis-server with " + a.redis) if a.redis else server_harness.SERVER,
                                        a.slice))
    results = {}
    models = tempfile.mkdtemp(prefix="inferkv-sweep-models-")
    why = setup_models(models, os.path.dirname(server_harness.SERVER))
    families = (a.families or ("infer,vset" if a.redis else ",".join(FAMILIES))).split(",")
    # families that need a server of their own (FAMILY_OPTIONS) run on one each
    groups = [([f for f in families if f not in FAMILY_OPTIONS], [])]
    groups += [([f], FAMILY_OPTIONS[f].get("server", [])) for f in families if f in FAMILY_OPTIONS and not a.redis]
    all_sites = {}
    try:
        for fams, opts in groups:
            if fams:
                for site, n in run_group(a, t, fams, opts, models, why, results).items():
                    all_sites[site] = all_sites.get(site, 0) + n
    finally:
        shutil.rmtree(models, ignore_errors=True)
    sites = resolve([os.path.abspath(a.redis)] if a.redis else [server_harness.SERVER], all_sites)
    print("allocation call sites failed: %d distinct, %d injected failures (%.1f s)" % (
        len(sites), sum(sites.values()), time.time() - t0))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"server": server_harness.SERVER, "slice": a.slice, "results": results, "sites": sites}, f,
                      indent=1, sort_keys=True)
    t.done()


if __name__ == "__main__":
    main()
