"""test_module_load.py - inferkv.so under load and through its lifecycle.

Debian's redis-server with build/inferkv.so loaded, on a free loopback port,
driven by real clients (redis-py and raw RESP sockets).  Where
test_module_infer.py checks each INFER.* behaviour, this suite checks what
issue 7 asks of the module under pressure:

  flood      500 clients fire INFER.GENERATE at once: no thread is started
             for a request, RSS stays bounded, every client is answered
             (its alone-result or a queue-full error, counted in
             INFER.STATS), GET/SET keep being served meanwhile.
  reloads    100 INFER.LOAD of one name, many with requests in flight: no
             request fails, INFER.MODELS always shows one model, and RSS,
             INFO used_memory, open files, copies of the model in memory
             and engine threads come back to where they were.
  lifecycle  replies in order on a pipelined connection (replies come from
             the main thread), PROMPTKEY/TOKENSKEY evicted mid-request,
             CLIENT KILL / CLIENT UNBLOCK of a blocked client, a load whose
             client went away, MODULE UNLOAD while a load or cancelled
             requests are in flight, SHUTDOWN and SIGTERM with requests
             active, queued and a load just started, the default timeout,
             the engine threads' lower priority, the ACL rules that
             docs/module.md gives, and INFER.LOAD when a thread cannot start
             (redis-server as nobody under RLIMIT_NPROC): an error, no
             thread or model left behind.

The model is stories260K from $INFERKV_SHARED, else one made by
build/gguf-gen --preset stories260k.  INFERKV_MODULE / INFERKV_PRELOAD run
the suite against a sanitizer build of the module (see
test_module_sanitizers.sh); memory-size checks are skipped there because
the sanitizer's allocator keeps freed memory.  INFERKV_LOAD_TESTS (a comma
list of flood, reloads, lifecycle) runs a part.  Timeouts only detect hangs;
nothing here asserts a speed.  Prints "N passed, N failed, N skipped".
"""
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import LoggedProcess, RawClient, Tally, free_port, gen, wait_up  # noqa: E402

import redis  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
MODULE = os.path.abspath(os.environ.get("INFERKV_MODULE", os.path.join(BUILD, "inferkv.so")))
PRELOAD = os.environ.get("INFERKV_PRELOAD", "")
SHARED_MODEL = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
# A reply that takes longer than this is a hang (sanitizer builds are slower).
HANG_S = 120 if PRELOAD else 60
# Tokens of a request meant to stay in flight while something happens to
# it (stories260K: about 0.3 s plain, seconds under TSan).
LONG = 800
FLOOD_CLIENTS = 500
RELOADS = 100
# Threads of Redis itself (background I/O, the allocator's purger), which
# come and go on their own: the thread checks count every other thread.
REDIS_THREADS = ("bio_", "jemalloc_bg_thd", "io_thd_")

TALLY = Tally()
check = TALLY.expect
skip = TALLY.skip


def wait_until(pred, timeout=HANG_S):
    return server_harness.wait_until(pred, timeout)


class Raw(RawClient):
    """A raw RESP2 connection: pipelined sends, replies read one at a time,
    a status, error or integer reply as its whole line (b"+OK")."""

    def __init__(self, port):
        super().__init__(port, timeout=HANG_S)

    def _closed(self):
        return ConnectionError("closed")

    def send(self, *cmds):
        self.send_raw(b"".join(self.encode(*c) for c in cmds))

    def read(self):
        line = self._line()
        t = line[:1]
        if t in (b"+", b"-", b":"):
            return line
        if t == b"$":
            n = int(line[1:])
            return None if n < 0 else self._bytes(n)
        if t == b"*":
            return [self.read() for _ in range(int(line[1:]))]
        raise ValueError("unexpected reply %r" % line)


class ModServer(LoggedProcess):
    """redis-server with inferkv.so loaded; the model file is copied into a
    temporary infer-models-dir as m.gguf."""

    def __init__(self, model, *opts, threads=1, load=True, uid=None, preexec=None):
        self.dir = tempfile.mkdtemp(prefix="inferkv-load-")
        self.models = os.path.join(self.dir, "models")
        os.mkdir(self.models)
        self.model_path = os.path.join(self.models, "m.gguf")
        shutil.copy(model, self.model_path)
        self.port = free_port()
        self.threads = threads  # infer-threads: the scheduler plus threads-1 pool workers per model
        # MODULE UNLOAD is tested: a module with a data type never unloads
        self.modargs = ["infer-models-dir", self.models, "infer-threads", str(threads),
                        "infer-vector-sets", "no"] + list(opts)
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", self.dir, "--enable-module-command", "yes", "--enable-debug-command", "yes",
               "--maxclients", "4000", "--loadmodule", MODULE] + self.modargs
        if uid is not None:  # run as that user (RLIMIT_NPROC binds only a user without privileges)
            os.chmod(self.dir, 0o777)
            os.chmod(self.models, 0o755)
            os.chmod(self.model_path, 0o644)
            cmd = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"] + cmd
        env = dict(os.environ)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
        super().__init__(cmd, os.path.join(self.dir, "redis.log"), env=env, preexec_fn=preexec)
        self.pid = self.proc.pid
        if not wait_up(self.proc, lambda: self.client().ping(), 20, redis.exceptions.ConnectionError):
            log = self.log_text()
            self.stop()
            raise RuntimeError("redis-server did not start:\n" + log)
        self.c = self.client()
        if load:
            self.load()

    def load(self, name="s"):
        return self.c.execute_command("INFER.LOAD", name, "m.gguf")

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=HANG_S)

    def stats(self):
        r = self.c.execute_command("INFER.STATS")
        return {r[i].decode(): r[i + 1] for i in range(0, len(r), 2)}

    def models_list(self):
        out = []
        for m in self.c.execute_command("INFER.MODELS"):
            out.append({m[i].decode(): m[i + 1] for i in range(0, len(m), 2)})
        return out

    def idle(self):
        return wait_until(lambda: self.stats()["in_flight"] == 0)

    def tids(self):
        try:
            return set(os.listdir("/proc/%d/task" % self.pid))
        except FileNotFoundError:
            return set()

    def module_tids(self):
        """Threads other than the main thread and Redis's own helpers."""
        out = set()
        for t in self.tids():
            try:
                with open("/proc/%d/task/%s/comm" % (self.pid, t)) as f:
                    comm = f.read().strip()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if t != str(self.pid) and not comm.startswith(REDIS_THREADS):
                out.add(t)
        return out

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def model_maps(self):
        """Copies of the model in the server's address space: mappings of
        the file, or read-only anonymous mappings of exactly its size (the
        engine reads a model into such memory rather than mapping the file)."""
        real = os.path.realpath(self.model_path)
        size = (os.path.getsize(real) + 4095) // 4096 * 4096
        n = 0
        with open("/proc/%d/maps" % self.pid) as f:
            for line in f:
                fields = line.split()
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                if line.rstrip().endswith(real) or (len(fields) == 5 and fields[1] == "r--p" and hi - lo == size):
                    n += 1
        return n

    def used_memory(self):
        return self.c.info("memory")["used_memory"]

    def clients(self):
        return self.c.info("clients")["connected_clients"]

    def stat_field(self, tid, i):
        try:
            with open("/proc/%d/task/%s/stat" % (self.pid, tid)) as f:
                return int(f.read().rsplit(")", 1)[1].split()[i])
        except (FileNotFoundError, ProcessLookupError):
            return None

    def nice_of(self, tid):
        return self.stat_field(tid, 16)

    def policy_of(self, tid):  # 0 SCHED_OTHER, 5 SCHED_IDLE
        return self.stat_field(tid, 38)

    def stop(self):
        self.stop_process(20)
        log = self.log_text()
        if PRELOAD:
            bad = ("ERROR: AddressSanitizer" in log or "runtime error:" in log or
                   "WARNING: ThreadSanitizer" in log)
            check(not bad, "no sanitizer report in the server log")
            if bad:
                print(log[-8000:])
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return log


class Background(server_harness.Background):
    """A background call; a daemon thread, so a hung one cannot keep the suite from exiting."""

    join_timeout = HANG_S + 30
    daemon = True


def close(c):
    """Closes a redis-py client's sockets (Redis.close() in redis-py 4.3
    only returns the connection to its pool)."""
    c.connection_pool.disconnect()


def one_shot(srv, fn):
    """Runs fn(client) on a fresh connection and closes it."""
    c = srv.client()
    try:
        return fn(c)
    finally:
        close(c)


# ---------------------------------------------------------------------------


def test_flood(model):
    print("%d clients fire INFER.GENERATE at once" % FLOOD_CLIENTS)
    srv = ModServer(model, "infer-max-queue", "64", "infer-max-active", "16", threads=2, load=False)
    try:
        before_load = srv.module_tids()
        srv.load()
        idle = srv.module_tids()
        idle_total = len(srv.tids())
        c = srv.c
        combos = [(p, n) for p in ("Once upon a time", "The cat", "Lily") for n in (8, 12, 16)]
        alone = {k: gen(c, *k) for k in combos}
        st0 = srv.stats()
        rss0 = srv.rss_kb()
        clients0 = srv.clients()

        results = [None] * FLOOD_CLIENTS
        ready = threading.Barrier(FLOOD_CLIENTS + 1)
        done = threading.Event()

        def client(i):
            k = combos[i % len(combos)]
            cl = srv.client()
            try:
                cl.ping()  # connected before the flood starts
                ready.wait(HANG_S)
                results[i] = ("ok", k, gen(cl, *k))
            except redis.exceptions.ResponseError as e:
                results[i] = ("err", k, str(e))
            except Exception as e:  # noqa: BLE001 - a dropped or hung connection
                results[i] = ("conn", k, repr(e))
            finally:
                close(cl)

        seen = set()
        peak = {"rss": rss0, "threads": idle_total}

        def sample():
            while not done.is_set():
                seen.update(srv.module_tids())
                peak["threads"] = max(peak["threads"], len(srv.tids()))
                peak["rss"] = max(peak["rss"], srv.rss_kb())
                time.sleep(0.002)

        probe = {"ok": 0, "busy": 0, "bad": []}

        def prober():
            pc = srv.client()
            i = 0
            while not done.is_set():
                try:
                    pc.set("probe", i)
                    v = pc.get("probe")
                    r = pc.execute_command("INFER.STATS")
                    busy = dict(zip(r[::2], r[1::2]))[b"in_flight"]
                    if v == str(i).encode():
                        probe["ok"] += 1
                        probe["busy"] += busy > 0
                    else:
                        probe["bad"].append(v)
                except Exception as e:  # noqa: BLE001
                    probe["bad"].append(repr(e))
                    break
                i += 1
                time.sleep(0.001)  # leave the 2 cores to the server
            close(pc)

        ts = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(FLOOD_CLIENTS)]
        for t in ts:
            t.start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            ready.wait(HANG_S)
        except threading.BrokenBarrierError:
            pass  # a client could not connect: it reports itself below
        t0 = time.time()
        pt = threading.Thread(target=prober, daemon=True)
        pt.start()
        deadline = time.time() + HANG_S + 30
        for t in ts:
            t.join(max(0.1, deadline - time.time()))
        elapsed = time.time() - t0
        done.set()
        sampler.join()
        pt.join(HANG_S)

        hung = sum(1 for t in ts if t.is_alive())
        kinds = [r[0] if r else "hang" for r in results]
        n_ok, n_err = kinds.count("ok"), kinds.count("err")
        print("  (%d answered in %.1f s: %d texts, %d errors; %d GET/SET round trips, %d with requests in flight)"
              % (FLOOD_CLIENTS - hung, elapsed, n_ok, n_err, probe["ok"], probe["busy"]))
        check(hung == 0 and kinds.count("conn") == 0 and n_ok + n_err == FLOOD_CLIENTS,
              "every one of %d clients answered, none hung or dropped (%d hung, %d dropped)"
              % (FLOOD_CLIENTS, hung, kinds.count("conn")))
        wrong = [r for r in results if r and r[0] == "ok" and r[2] != alone[r[1]]]
        check(n_ok > 0 and not wrong, "each text equals the request's alone-result (%d texts, %d differ)"
              % (n_ok, len(wrong)))
        errs = [r[2] for r in results if r and r[0] == "err"]
        check(n_err > 0 and all("queue full" in e for e in errs),
              "a flood beyond queue + batch gets queue-full errors and no other error (%d; %s)"
              % (n_err, errs[0] if errs else "none"))
        check(srv.idle(), "nothing left in flight after the flood")
        st = srv.stats()
        check(st["rejected"] - st0["rejected"] == n_err and st["completed"] - st0["completed"] == n_ok,
              "INFER.STATS counts the flood: %d rejected, %d completed" %
              (st["rejected"] - st0["rejected"], st["completed"] - st0["completed"]))
        check(st["queued"] == 0 and st["active"] == 0, "queue and batch empty afterwards")
        started = seen - idle
        check(not started, "no module thread started during the flood (%d new; %d engine threads at rest)"
              % (len(started), len(idle - before_load)))
        check(peak["threads"] <= idle_total + 8, "all threads bounded: %d at rest, %d at peak "
              "(Redis's allocator may add a few helpers)" % (idle_total, peak["threads"]))
        check(len(idle - before_load) == srv.threads,
              "a model runs exactly infer-threads (%d) threads: %d" % (srv.threads, len(idle - before_load)))
        check(wait_until(lambda: srv.module_tids() == idle, 10), "same engine threads after the flood")
        if PRELOAD:
            skip("RSS bound (sanitizer allocator): peak +%d KiB" % (peak["rss"] - rss0))
        else:
            check(peak["rss"] - rss0 < 64 * 1024, "RSS bounded: +%d KiB at peak over %d KiB at rest (< 64 MiB)"
                  % (peak["rss"] - rss0, rss0))
        check(probe["ok"] > 0 and probe["busy"] > 0 and not probe["bad"],
              "GET/SET served correctly during the flood (%d round trips, %d while requests were in flight)"
              % (probe["ok"], probe["busy"]))
        check(wait_until(lambda: srv.clients() <= clients0, 10),
              "every flood connection closed on the server (%d clients)" % srv.clients())
    finally:
        srv.stop()


def test_reloads(model):
    print("%d INFER.LOAD reloads of one name with requests in flight" % RELOADS)
    srv = ModServer(model, threads=2)
    try:
        c = srv.c
        jobs = [("Once upon a time", 60), ("The dog", 40), ("Lily", 80)]
        alone = {k: gen(c, *k) for k in jobs}
        maps_once = srv.model_maps()
        stop = threading.Event()
        results, errors, odd_models = [], [], []

        def worker(k):
            wc = srv.client()
            while not stop.is_set():
                try:
                    results.append((k, gen(wc, *k)))
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
            close(wc)

        def poller():
            pc = srv.client()
            while not stop.is_set():
                ms = pc.execute_command("INFER.MODELS")
                names = [m[1] for m in ms]
                if names != [b"s"]:
                    odd_models.append(names)
                time.sleep(0.001)
            close(pc)

        def traffic(n_reloads):
            stop.clear()
            ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in jobs]
            ts.append(threading.Thread(target=poller, daemon=True))
            for t in ts:
                t.start()
            wait_until(lambda: srv.stats()["in_flight"] > 0, 10)
            busy = 0
            for i in range(n_reloads):
                if i % 2 == 0:  # every other reload waits for a request in flight
                    wait_until(lambda: srv.stats()["in_flight"] > 0, 5)
                busy += srv.stats()["in_flight"] > 0  # requests (this client's loads are synchronous)
                srv.load()
                time.sleep(0.002)
            stop.set()
            for t in ts:
                t.join(HANG_S)
            srv.idle()
            wait_until(lambda: srv.clients() == 1, 10)
            return busy

        def snapshot():
            return {"rss": srv.rss_kb(), "used": srv.used_memory(), "fds": srv.fds(),
                    "maps": srv.model_maps(), "threads": srv.module_tids()}

        traffic(10)  # warm-up: allocator arenas and caches reach their steady state
        a = snapshot()
        n_before = len(results)
        busy = traffic(RELOADS)
        b = snapshot()
        n = len(results) - n_before
        print("  (%d requests served; %d of %d reloads with requests in flight)" % (n, busy, RELOADS))
        check(busy >= RELOADS // 4, "at least a quarter of the reloads had requests in flight (%d)" % busy)
        check(not errors and n > 0 and all(t == alone[k] for k, t in results),
              "no request failed or changed across the reloads (%d errors)" % len(errors))
        check(not odd_models, "INFER.MODELS showed exactly one model 's' throughout (%d odd replies)"
              % len(odd_models))
        ms = srv.models_list()
        st = srv.stats()
        check(len(ms) == 1 and ms[0]["name"] == b"s" and ms[0]["requests"] == 0 and st["models"] == 1 and
              st["in_flight"] == 0 and st["loads_running"] == 0,
              "afterwards: one model, nothing in flight, no load running")
        check(b["maps"] == a["maps"] == maps_once > 0,
              "replaced models unmapped: the model file is mapped %d time(s) as after one load (%d)"
              % (b["maps"], maps_once))
        check(len(b["threads"]) == len(a["threads"]) > 0,
              "replaced models' threads and the load threads joined (%d engine threads before, %d after)"
              % (len(a["threads"]), len(b["threads"])))
        check(b["fds"] == a["fds"], "no file descriptor leaked (%d -> %d)" % (a["fds"], b["fds"]))
        check(abs(b["used"] - a["used"]) < 256 * 1024, "INFO used_memory steady: %d -> %d bytes (within 256 KiB)"
              % (a["used"], b["used"]))
        if PRELOAD:
            skip("RSS after reloads (sanitizer allocator): %+d KiB" % (b["rss"] - a["rss"]))
        else:
            check(b["rss"] - a["rss"] < 16 * 1024, "RSS steady: %d -> %d KiB (growth < 16 MiB)"
                  % (a["rss"], b["rss"]))
    finally:
        srv.stop()


def test_pipelined_order(srv):
    print("replies in order on pipelined connections (written by the main thread)")
    c = srv.c
    a, b = gen(c, "Once upon a time", 50), gen(c, "The cat", 20)
    conns = [Raw(srv.port) for _ in range(16)]
    for i, r in enumerate(conns):
        r.send(("INFER.GENERATE", "s", "Once upon a time", "MAXTOKENS", 50, "TEMPERATURE", 0), ("PING",),
               ("INFER.GENERATE", "s", "The cat", "MAXTOKENS", 20, "TEMPERATURE", 0),
               ("SET", "pk%d" % i, "v%d" % i), ("GET", "pk%d" % i))
    good = 0
    for i, r in enumerate(conns):
        got = [r.read() for _ in range(5)]
        good += got == [a, b"+PONG", b, b"+OK", b"v%d" % i]
        r.close()
    check(good == len(conns), "16 pipelined connections: text, PONG, text, OK, value in order (%d right)" % good)


def test_evicted_inputs(srv):
    print("PROMPTKEY / TOKENSKEY evicted while the request runs")
    c = srv.c
    want = gen(c, "Once upon a time", LONG)
    ids = c.execute_command("INFER.TOKENIZE", "s", "Once upon a time")
    c.set("p", "Once upon a time")
    c.set("t", b"".join(struct.pack("<I", i) for i in ids))
    for i in range(200):
        c.set("filler:%d" % i, "x" * 1000)
    evicted0 = c.info("stats")["evicted_keys"]
    c.config_set("maxmemory-policy", "allkeys-random")
    bp = Background(lambda: one_shot(srv, lambda x: x.execute_command(
        "INFER.GENERATE", "s", "PROMPTKEY", "p", "MAXTOKENS", LONG, "TEMPERATURE", 0)))
    bt = Background(lambda: one_shot(srv, lambda x: x.execute_command(
        "INFER.GENERATE", "s", "TOKENSKEY", "t", "MAXTOKENS", LONG, "TEMPERATURE", 0)))
    wait_until(lambda: srv.stats()["in_flight"] >= 2, 10)
    c.config_set("maxmemory", 1)  # below what the server uses: commands now evict every key
    wait_until(lambda: c.exists("p", "t") == 0, 10)
    gone = c.exists("p", "t")
    running = srv.stats()["in_flight"]
    evicted = c.info("stats")["evicted_keys"] - evicted0
    c.config_set("maxmemory", 0)
    c.config_set("maxmemory-policy", "noeviction")
    bp.join()
    bt.join()
    check(gone == 0 and evicted >= 200 and running == 2,
          "both input keys evicted while both requests run (%d keys evicted, %d running)" % (evicted, running))
    check(bp.error is None and bp.result == want, "PROMPTKEY request unchanged by the eviction (%r)" % bp.error)
    check(bt.error is None and bt.result == want, "TOKENSKEY request unchanged by the eviction (%r)" % bt.error)
    check(len(srv.models_list()) == 1, "the model survives eviction (it is not in the keyspace)")


def test_kill_and_unblock(srv):
    print("CLIENT KILL and CLIENT UNBLOCK of a client blocked in INFER.GENERATE")
    c = srv.c
    want = gen(c, "Once upon a time", LONG)
    other = Background(lambda: one_shot(srv, lambda x: gen(x, "Once upon a time", LONG)))
    victim = srv.client()
    vid = victim.client_id()
    st0 = srv.stats()
    vb = Background(lambda: gen(victim, "Once upon a time", LONG))
    wait_until(lambda: srv.stats()["in_flight"] >= 2, 10)
    c.execute_command("CLIENT", "KILL", "ID", vid)
    vb.join()
    check(isinstance(vb.error, redis.exceptions.ConnectionError), "the killed client's connection is closed (%r)"
          % vb.error)
    check(wait_until(lambda: srv.stats()["cancelled"] > st0["cancelled"], 10),
          "CLIENT KILL cancels the request (INFER.STATS cancelled +%d)" % (srv.stats()["cancelled"] - st0["cancelled"]))
    other.join()
    check(other.error is None and other.result == want, "a concurrent request is unaffected by the kill")
    close(victim)

    ub = srv.client()
    uid = ub.client_id()
    st1 = srv.stats()
    bg = Background(lambda: gen(ub, "Once upon a time", LONG))
    wait_until(lambda: srv.stats()["in_flight"] >= 1, 10)
    n = c.execute_command("CLIENT", "UNBLOCK", uid)
    bg.join()
    check(n == 1 and isinstance(bg.error, redis.exceptions.ResponseError) and "UNBLOCKED" in str(bg.error)
          and not bg.hung(), "CLIENT UNBLOCK (%d): the client is answered UNBLOCKED (%r)" % (n, bg.error))
    check(ub.ping(), "the unblocked connection takes commands again")
    check(srv.idle(), "its request leaves nothing in flight")
    check(wait_until(lambda: srv.stats()["cancelled"] > st1["cancelled"], 10),
          "CLIENT UNBLOCK cancels the request rather than running it for nobody")
    # the ERROR form goes through the disconnect callback: cancelled too
    st2 = srv.stats()
    bg = Background(lambda: gen(ub, "Once upon a time", LONG))
    wait_until(lambda: srv.stats()["in_flight"] >= 1, 10)
    n = c.execute_command("CLIENT", "UNBLOCK", uid, "ERROR")
    bg.join()
    check(n == 1 and isinstance(bg.error, redis.exceptions.ResponseError) and "UNBLOCKED" in str(bg.error),
          "CLIENT UNBLOCK ERROR answers UNBLOCKED (%r)" % (bg.error,))
    check(wait_until(lambda: srv.stats()["cancelled"] > st2["cancelled"], 10) and srv.idle(),
          "CLIENT UNBLOCK ERROR cancels the request")
    close(ub)


def test_load_client_gone(srv):
    print("INFER.LOAD whose client disconnects before the answer")
    r = Raw(srv.port)
    r.send(("INFER.LOAD", "gone", "m.gguf"))
    r.close()
    ok = wait_until(lambda: any(m["name"] == b"gone" for m in srv.models_list()), 30)
    check(ok and srv.stats()["loads_running"] == 0, "the model is loaded anyway, the load thread joined")
    srv.c.execute_command("INFER.UNLOAD", "gone")


def documented_acl_rules():
    """The ACL SETUSER lines of docs/module.md's Security section."""
    path = os.path.join(ROOT, "docs", "module.md")
    if not os.path.exists(path):
        return {}
    rules, section = {}, False
    with open(path) as f:
        for line in f:
            if line.startswith("## "):
                section = line.strip() == "## Security"
            elif section and line.startswith("ACL SETUSER "):
                words = line.split()
                rules[words[2]] = words[2:]
    return rules


def test_acl_rules(srv):
    print("the ACL rules docs/module.md gives do what it says")
    c = srv.c
    rules = documented_acl_rules()
    check(set(rules) >= {"app", "guest", "ops"}, "docs/module.md shows rules for app, guest and ops (%s)"
          % sorted(rules))
    if not set(rules) >= {"app", "guest", "ops"}:
        return
    for words in rules.values():
        c.execute_command("ACL", "SETUSER", *words)
    c.execute_command("ACL", "SETUSER", "readers", "on", "nopass", "~*", "+@read", "+@write")
    cmds = {"generate": ("INFER.GENERATE", "s", "Once", "MAXTOKENS", 2), "tokenize": ("INFER.TOKENIZE", "s", "x"),
            "detokenize": ("INFER.DETOKENIZE", "s", 1), "models": ("INFER.MODELS",), "stats": ("INFER.STATS",),
            "load": ("INFER.LOAD", "acl", "m.gguf"), "unload": ("INFER.UNLOAD", "acl")}

    def allowed(user, name):
        words = rules.get(user, [])
        pw = next((w[1:] for w in words if w.startswith(">")), "x")
        r = Raw(srv.port)
        try:
            r.send(("AUTH", user, pw), cmds[name])
            auth, rep = r.read(), r.read()
        finally:
            r.close()
        return auth == b"+OK" and not (isinstance(rep, bytes) and rep.startswith(b"-NOPERM"))

    want = {"app": {"generate", "tokenize", "detokenize", "models"},
            "guest": set(), "ops": set(cmds), "readers": set()}
    for user, ok in want.items():
        got = {name for name in cmds if allowed(user, name)}
        check(got == ok, "ACL user %s may run %s (%s)" % (user, sorted(ok) or "no INFER.* command", sorted(got)))
    if any(m["name"] == b"acl" for m in srv.models_list()):
        c.execute_command("INFER.UNLOAD", "acl")
    for user in list(rules) + ["readers"]:
        c.execute_command("ACL", "DELUSER", user)


def busy_main_thread(srv, seconds):
    """Blocks the server's main thread for a moment (DEBUG SLEEP), so that
    commands sent meanwhile are read in the same event-loop iteration."""
    r = Raw(srv.port)
    r.send(("DEBUG", "SLEEP", seconds))
    time.sleep(0.02)
    return r


def test_unload_races(srv, before_load):
    print("MODULE UNLOAD while a load or cancelled requests are in flight")
    c = srv.c
    # 1. a load in flight: INFER.LOAD and MODULE UNLOAD read in one iteration
    sl = busy_main_thread(srv, 0.1)
    a, b = Raw(srv.port), Raw(srv.port)
    a.send(("INFER.LOAD", "s2", "m.gguf"))
    b.send(("MODULE", "UNLOAD", "infer"))
    rb, ra = b.read(), a.read()
    sl.read()
    check(rb.startswith(b"-") and ra == b"+OK",
          "MODULE UNLOAD with a load in flight refused (%s); the load completes (%s)" % (rb[:60], ra))
    check(len(srv.models_list()) == 2, "both models registered")
    c.execute_command("INFER.UNLOAD", "s2")
    for x in (a, b, sl):
        x.close()

    # 2. clients disconnect mid-generation and MODULE UNLOAD follows at once
    gens = [Raw(srv.port) for _ in range(4)]
    for g in gens:
        g.send(("INFER.GENERATE", "s", "Once upon a time", "MAXTOKENS", 1500))
    wait_until(lambda: srv.stats()["in_flight"] >= 4, 10)
    st0 = srv.stats()
    # u is accepted before the sleep, so that the 4 disconnects and its
    # MODULE UNLOAD are read in the one iteration after it, before Redis
    # can release any cancelled client (in beforeSleep): deterministic
    u = Raw(srv.port)
    u.send(("PING",))
    u.read()
    sl = busy_main_thread(srv, 0.1)
    for g in gens:
        g.close()
    u.send(("MODULE", "UNLOAD", "infer"))
    ru = u.read()
    sl.read()
    check(ru.startswith(b"-"), "MODULE UNLOAD right after 4 disconnects refused while they drain (%s)" % ru[:60])
    check(srv.idle(), "the cancelled requests drain")
    check(srv.stats()["cancelled"] - st0["cancelled"] == 4, "all 4 counted as cancelled")
    check(c.execute_command("MODULE", "UNLOAD", "infer") == b"OK", "MODULE UNLOAD once drained succeeds")
    # a subset: a helper thread of the allocator or sanitizer runtime that
    # was there before may have ended since
    check(wait_until(lambda: not (srv.module_tids() - before_load), 10),
          "every engine thread joined: no thread beyond those before any model was loaded (%d left)"
          % len(srv.module_tids() - before_load))
    check(c.set("after", "1") and c.get("after") == b"1", "server serves after the unload")
    c.execute_command("MODULE", "LOAD", MODULE, *srv.modargs)
    srv.load()
    check(gen(c, "Once", 10) == gen(c, "Once", 10), "module loads again and generates")
    u.close()


def test_nice(srv, before_load):
    print("engine threads run at a lower priority than the server")
    c = srv.c
    r = Raw(srv.port)
    r.send(("INFER.GENERATE", "s", "Once upon a time", "MAXTOKENS", 1500))
    wait_until(lambda: srv.stats()["active"] >= 1, 10)
    time.sleep(0.05)  # a few steps: the pool workers take the nice value on their next task
    engine = srv.module_tids() - before_load
    nices = {t: srv.nice_of(t) for t in engine}
    policies = {t: srv.policy_of(t) for t in engine}
    main_nice = srv.nice_of(str(srv.pid))
    main_policy = srv.policy_of(str(srv.pid))
    r.close()  # cancels it
    srv.idle()
    check(engine and all(n is not None and n > main_nice for n in nices.values()),
          "%d engine threads at nice %s, above the main thread's %s" %
          (len(engine), sorted(set(nices.values())), main_nice))
    check(engine and main_policy == 0 and all(p == 5 for p in policies.values()),
          "engine threads in SCHED_IDLE (infer-idle-priority yes, the default): policies %s, main thread %s" %
          (sorted(set(policies.values())), main_policy))
    c.ping()


def test_default_timeout(model):
    print("infer-default-timeout applies when a request gives no TIMEOUT")
    srv = ModServer(model, "infer-default-timeout", "20")
    try:
        c = srv.c
        e = None
        try:
            gen(c, "Once upon a time", 1500)
        except redis.exceptions.ResponseError as x:
            e = str(x)
        check(e is not None and e.startswith("TIMEOUT"), "no TIMEOUT given: the default answers %s" % e)
        t = gen(c, "Once upon a time", 300, "TIMEOUT", 0)
        check(len(t) > 0, "TIMEOUT 0 overrides the default: the full text (%d bytes)" % len(t))
        check(srv.idle() and srv.stats()["timeouts"] >= 1, "the timeout is counted and nothing is left in flight")
    finally:
        srv.stop()


def shutdown_busy(model, how):
    srv = ModServer(model, "infer-max-active", "1")
    try:
        bgs = [Background(lambda: one_shot(srv, lambda x: gen(x, "Once upon a time", 1500))) for _ in range(4)]
        wait_until(lambda: srv.stats()["in_flight"] >= 4, 10)
        wait_until(lambda: srv.stats()["active"] == 1 and srv.stats()["queued"] == 3, 10)
        st = srv.stats()
        sl = busy_main_thread(srv, 0.1)
        a = Raw(srv.port)
        a.send(("INFER.LOAD", "s2", "m.gguf"))
        if how == "SHUTDOWN":
            b = Raw(srv.port)
            b.send(("SHUTDOWN", "NOSAVE"))
        else:
            srv.proc.send_signal(signal.SIGTERM)
        try:
            rc = srv.proc.wait(HANG_S)
        except subprocess.TimeoutExpired:
            rc = None
        for g in bgs:
            g.join()
        log = srv.log_text()
        check(st["active"] == 1 and st["queued"] == 3, "%s: 1 request active and 3 queued when it came" % how)
        check(rc == 0 and "ready to exit" in log and "crashed" not in log and "Sanitizer" not in log,
              "%s with requests active and queued and an INFER.LOAD just started: exit status %s, clean log"
              % (how, rc))
        check(not any(g.hung() for g in bgs), "%s: no client left hanging" % how)
    finally:
        srv.stop()


def test_lifecycle(model):
    srv = ModServer(model, load=False)
    try:
        before_load = srv.module_tids()
        srv.load()
        for fn, args in ((test_pipelined_order, ()), (test_evicted_inputs, ()), (test_kill_and_unblock, ()),
                         (test_load_client_gone, ()), (test_nice, (before_load,)), (test_acl_rules, ()),
                         (test_unload_races, (before_load,))):
            t0 = time.time()
            fn(srv, *args)
            print("  (%.1f s)" % (time.time() - t0))
        check(srv.proc.poll() is None and srv.c.ping(), "server alive after the lifecycle checks")
    finally:
        srv.stop()
    test_default_timeout(model)
    test_thread_start_failure(model)
    print("shutdown with requests active, queued and a load running")
    shutdown_busy(model, "SHUTDOWN")
    shutdown_busy(model, "SIGTERM")


NOBODY = 65534


def user_tasks(uid):
    """Threads owned by uid on the machine: what RLIMIT_NPROC counts."""
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                st = dict(line.split(":", 1) for line in f if ":" in line)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(st.get("Uid", "-1").split()[0]) == uid:
            n += int(st.get("Threads", "0"))
    return n


def test_thread_start_failure(model):
    print("a thread that cannot start: INFER.LOAD answers an error, nothing leaks or hangs")
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        skip("needs root and setpriv to run redis-server as nobody under RLIMIT_NPROC")
        return
    # redis-server runs as nobody with RLIMIT_NPROC = LIMIT: a thread cannot
    # start once nobody owns LIMIT threads.  Idle processes of nobody take
    # up the room, so that exactly 0, 1 or 2 more threads can start.
    limit = user_tasks(NOBODY) + 48
    srv = ModServer(model, threads=2, uid=NOBODY,
                    preexec=lambda: resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit)))
    fillers = []
    try:
        c = srv.c
        before = srv.module_tids()
        want = gen(c, "Once upon a time", 20)

        def leave_room(extra):
            while fillers and user_tasks(NOBODY) > limit - extra:
                f = fillers.pop()
                f.kill()
                f.wait()
            while user_tasks(NOBODY) < limit - extra:
                fillers.append(subprocess.Popen(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                                                 "--clear-groups", "sleep", "120"]))
                wait_until(lambda: open("/proc/%d/status" % fillers[-1].pid).read().find("\nUid:\t%d" % NOBODY)
                           >= 0 or fillers[-1].poll() is not None, 5)
            return limit - user_tasks(NOBODY)

        # infer-threads 2: a load starts its own thread, then a pool worker and
        # the scheduler (and the allocator may start a helper); with room for
        # 0, 1, 2, ... more threads each start fails in turn until one fits
        failures, loaded_at = [], None
        for extra in range(0, 9):
            room = leave_room(extra)
            e = None
            try:
                c.execute_command("INFER.LOAD", "t", "m.gguf")
            except redis.exceptions.ResponseError as x:
                e = str(x)
            if e is None:
                loaded_at = room
                break
            failures.append(e)
            names = [m["name"] for m in srv.models_list()]
            check(names == [b"s"] and srv.stats()["loads_running"] == 0,
                  "room for %d more thread(s): INFER.LOAD answered with an error (%s), no model added" % (room, e))
            check(wait_until(lambda: srv.module_tids() == before, 10),
                  "room for %d more thread(s): no thread of the failed load left behind" % room)
            if extra == 0:
                check(gen(c, "Once upon a time", 20) == want, "with no thread to spare, the loaded model generates")
        kinds = set(f.split(":")[0] for f in failures)
        check(len(kinds) >= 2 and loaded_at is not None and loaded_at >= 3,
              "the load thread and the model's own threads each failed to start, then it loaded with room for %s "
              "(failures: %s)" % (loaded_at, sorted(kinds)))
        c.execute_command("INFER.UNLOAD", "t")
        leave_room(limit)
        check(c.execute_command("INFER.LOAD", "t", "m.gguf") == b"OK" and gen(c, "Once upon a time", 20) == want and
              wait_until(lambda: len(srv.module_tids() - before) == srv.threads, 10),
              "with room again, INFER.LOAD works and its model runs infer-threads threads")
        check(srv.proc.poll() is None, "server alive")
    finally:
        for f in fillers:
            f.kill()
            f.wait()
        srv.stop()


def find_model(tmp):
    if os.path.exists(SHARED_MODEL):
        return SHARED_MODEL, "stories260K from " + SHARED
    gg = os.path.join(BUILD, "gguf-gen")
    if not os.path.exists(gg):
        return None, None
    out = os.path.join(tmp, "stories260k-gen.gguf")
    subprocess.run([gg, "--preset", "stories260k", "--seed", "1", "-q", "-o", out], check=True)
    return out, "gguf-gen --preset stories260k (stories260K not under %s)" % SHARED


def main():
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="inferkv-load-model-")
    try:
        model, what = find_model(tmp) if os.path.exists(MODULE) else (None, None)
        if not os.path.exists(MODULE):
            skip("%s not built" % MODULE)
        elif not model:
            skip("no model: stories260K absent and gguf-gen not built")
        else:
            print("model: %s; module: %s%s" % (what, MODULE, " (preload %s)" % PRELOAD if PRELOAD else ""))
            which = os.environ.get("INFERKV_LOAD_TESTS", "flood,reloads,lifecycle").split(",")
            for name, fn in (("flood", test_flood), ("reloads", test_reloads), ("lifecycle", test_lifecycle)):
                if name in which:
                    t1 = time.time()
                    try:
                        fn(model)
                    except Exception:  # noqa: BLE001 - an unexpected error fails the group, the rest still runs
                        traceback.print_exc(file=sys.stdout)
                        check(False, "%s: ran to its end without an unexpected error" % name)
                    print("  (%s: %.1f s)" % (name, time.time() - t1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("(%.1f s)" % (time.time() - t0))
    TALLY.done()


if __name__ == "__main__":
    main()
