"""test_module_infer.py - inferkv.so inside Debian's stock redis-server.

Each test starts (or reuses) a real redis-server on a free loopback port with
build/inferkv.so loaded and stories260K (from $INFERKV_SHARED) copied into a
temporary infer-models-dir, and talks to it with redis-py.  The checks are
the failure modes of an in-process inference module (issue 7): replies from
the main thread only, inputs copied under the lock, models outside the
keyspace, a refcounted registry, bounded work, range-checked arguments,
explicit token decoding, cancellation, safe unload and shutdown, confined
model paths.  Prints "N passed, N failed, N skipped"; exits 1 on failure.
"""
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import (Background, Busy, LoggedProcess, Tally, err_of, free_port, gen, wait_until,  # noqa: E402
                            wait_up)

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
MODULE = os.path.abspath(os.environ.get("INFERKV_MODULE", os.path.join(BUILD, "inferkv.so")))
PRELOAD = os.environ.get("INFERKV_PRELOAD", "")  # e.g. libasan.so for an ASan build of the module
CLI = os.path.join(BUILD, "inferkv-cli")
MODEL = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

TALLY = Tally()
check = TALLY.expect


class ModServer(LoggedProcess):
    """redis-server with the module loaded and model 's' ready."""

    def __init__(self, *opts, load=True):
        self.dir = tempfile.mkdtemp(prefix="inferkv-mod-")
        self.models = os.path.join(self.dir, "models")
        os.mkdir(self.models)
        shutil.copy(MODEL, os.path.join(self.models, "stories260K.gguf"))
        with open(os.path.join(self.dir, "secret.gguf"), "wb") as f:
            f.write(b"outside the models dir")
        self.port = free_port()
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", self.dir, "--enable-module-command", "yes",
               "--loadmodule", MODULE, "infer-models-dir", self.models, "infer-threads", "1",
               # MODULE UNLOAD is tested: a module with a data type never unloads
               "infer-vector-sets", "no"]
        cmd += list(opts)
        env = dict(os.environ)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
        super().__init__(cmd, os.path.join(self.dir, "redis.log"), env=env)
        if not wait_up(self.proc, lambda: self.client().ping(), 10, redis.exceptions.ConnectionError):
            raise RuntimeError("redis-server did not start:\n" + self.log_text())
        if load:
            self.client().execute_command("INFER.LOAD", "s", "stories260K.gguf")

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=60, **kw)

    def stats(self):
        r = self.client().execute_command("INFER.STATS")
        return {r[i].decode(): r[i + 1] for i in range(0, len(r), 2)}

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.proc.pid))

    def stop(self):
        if self.proc.poll() is not None and self.proc.returncode != 0:
            print("redis-server exited with status %d; log tail:" % self.proc.returncode)
            print("\n".join(self.log_text().splitlines()[-60:]))
        self.stop_process(10)
        if PRELOAD:
            log = self.log_text()
            check("ERROR: AddressSanitizer" not in log and "runtime error:" not in log and
                  "WARNING: ThreadSanitizer" not in log,
                  "no sanitizer report in the server log")
            if "Sanitizer" in log or "runtime error:" in log:
                print(log[-6000:])
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def cli_text(prompt, n):
    out = subprocess.run([CLI, "generate", "-m", MODEL, "-p", prompt, "-n", str(n), "--temp", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    assert out.startswith(prompt.encode())
    return out[len(prompt.encode()):]


# ---------------------------------------------------------------------------


def test_basic(srv):
    print("greedy generation equals inferkv-cli; tokenizer commands")
    c = srv.client()
    for prompt, n in (("Once upon a time", 40), ("The little dog", 25), ("", 30)):
        check(gen(c, prompt, n) == cli_text(prompt, n), "greedy %r -n %d equals inferkv-cli" % (prompt, n))
    ids = c.execute_command("INFER.TOKENIZE", "s", "Once upon a time")
    check(len(ids) >= 2 and all(isinstance(i, int) for i in ids), "INFER.TOKENIZE returns ids")
    text = c.execute_command("INFER.DETOKENIZE", "s", *ids)
    check(text.strip() == b"Once upon a time", "INFER.DETOKENIZE round-trips the text")
    models = c.execute_command("INFER.MODELS")
    m = {models[0][i].decode(): models[0][i + 1] for i in range(0, len(models[0]), 2)}
    check(len(models) == 1 and m["name"] == b"s" and m["arch"] == b"llama" and m["requests"] == 0,
          "INFER.MODELS lists the model with its architecture and no request in flight")
    info = c.info("infer")
    st = srv.stats()
    check(info.get("infer_models") == 1 and info.get("infer_completed") == st["completed"] >= 3,
          "INFO infer shows the INFER.STATS figures")
    # TOKENSKEY: the same prompt as little-endian uint32 ids gives the same text
    c.set("toks", b"".join(struct.pack("<I", i) for i in ids))
    a = c.execute_command("INFER.GENERATE", "s", "TOKENSKEY", "toks", "MAXTOKENS", 20, "TEMPERATURE", 0)
    check(a == gen(c, "Once upon a time", 20), "TOKENSKEY ids generate what the text prompt generates")
    st = c.execute_command("INFER.GENERATE", "s", "Once upon a time", "MAXTOKENS", 200, "TEMPERATURE", 0,
                           "STOP", "Lily")
    check(b"Lily" not in st and len(st) > 0 and gen(c, "Once upon a time", 200).startswith(st + b"Lily"),
          "STOP ends the text right before the stop string")
    s1 = c.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 30, "TEMPERATURE", 0.9, "SEED", 42)
    s2 = c.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 30, "TEMPERATURE", 0.9, "SEED", 42)
    check(s1 == s2, "seeded sampling is reproducible")
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 2000, "TIMEOUT", 1))
    check(e is not None and e.startswith("TIMEOUT"), "TIMEOUT 1 ms answers a TIMEOUT error (%s)" % e)
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "nosuch", "hi"))
    check(e is not None and "no such model" in e, "unknown model refused")
    c.rpush("alist", "x")
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "alist"))
    check(e is not None and e.startswith("WRONGTYPE"), "PROMPTKEY on a list: WRONGTYPE")
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "missing"))
    check(e is not None and "no such key" in e, "PROMPTKEY on a missing key refused")
    # RESP3: a map with the text, the token count and the finish reason
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"HELLO 3\r\n")
    time.sleep(0.2)
    s.recv(65536)
    s.sendall(b"INFER.GENERATE s Once MAXTOKENS 10 TEMPERATURE 0\r\n")
    buf = b""
    deadline = time.time() + 10
    while b"decode_ms" not in buf or not buf.endswith(b"\r\n") and time.time() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        if buf.count(b"\r\n") >= 17:
            break
    s.close()
    check(buf.startswith(b"%8\r\n") and b"finish" in buf and b"length" in buf and
          gen(c, "Once", 10) in buf, "RESP3 reply is a map with text, tokens and finish reason")
    # STORE: the final text is SET into the key, as the calling user
    a = c.execute_command("INFER.GENERATE", "s", "Once upon a time", "MAXTOKENS", 25, "TEMPERATURE", 0,
                          "STORE", "answer")
    check(a == gen(c, "Once upon a time", 25) and c.get("answer") == a, "STORE sets the key to the reply text")
    c.execute_command("ACL", "SETUSER", "limited", "on", "nopass", "~allowed:*", "+@all")
    lim = srv.client(username="limited", password="x")
    e = err_of(lambda: lim.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 5, "STORE", "other"))
    # STORE's key is declared (key spec OW update): Redis's own ACL check
    # refuses it before the command runs, as for SET
    check(e is not None and "no permissions" in e and c.get("other") is None,
          "STORE into a key the user may not write is refused (%s)" % e)
    c.set("secret", "Once upon a time")
    e = err_of(lambda: lim.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "secret", "MAXTOKENS", 5))
    check(e is not None and "no permissions" in e, "PROMPTKEY outside the user's key patterns refused (%s)" % e)
    c.set("allowed:p", "Once upon a time")
    a = lim.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "allowed:p", "MAXTOKENS", 5, "TEMPERATURE", 0)
    check(a == gen(c, "Once upon a time", 5), "PROMPTKEY inside the user's key patterns works")
    lim.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 5, "STORE", "allowed:x")
    check(c.get("allowed:x") is not None, "STORE into a permitted key works")
    c.execute_command("ACL", "SETUSER", "limited", "-infer.generate")
    e = err_of(lambda: lim.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 5))
    check(e is not None and "no permissions" in e, "ACL -infer.generate keeps the user from generating")
    c.execute_command("ACL", "DELUSER", "limited")
    # STREAM: the pieces XADDed as produced, then a final entry; written on the main thread
    a = c.execute_command("INFER.GENERATE", "s", "Once upon a time", "MAXTOKENS", 40, "TEMPERATURE", 0,
                          "STREAM", "st")
    ents = c.xrange("st")
    pieces = [f[b"text"] for _, f in ents if b"text" in f]
    check(a == gen(c, "Once upon a time", 40) and b"".join(pieces) == a and len(pieces) > 1 and
          ents[-1][1].get(b"finish") == b"length", "STREAM entries concatenate to the reply, then finish=length")
    # live: a reader blocked on the stream gets the first pieces while generation still runs
    seen = {}
    done = threading.Event()

    def reader():
        seen["got"] = srv.client().xread({"live": "0-0"}, block=30000)
        seen["done_then"] = done.is_set()

    rt = threading.Thread(target=reader)
    rt.start()
    time.sleep(0.2)  # the reader is blocked before the first XADD
    t0 = time.time()
    ans = gen(c, "Once upon a time", 1500, "STREAM", "live")
    done.set()
    rt.join(60)
    live = [f[b"text"] for _, f in c.xrange("live") if b"text" in f]
    check(seen.get("got") and seen["done_then"] is False and b"".join(live) == ans,
          "XREAD BLOCK reader saw STREAM pieces before the %.0f ms generation ended" % ((time.time() - t0) * 1000))
    c.set("notastream", "x")
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "Once", "STREAM", "notastream"))
    check(e is not None and e.startswith("WRONGTYPE"), "STREAM into a string key: WRONGTYPE (%s)" % e)
    c.execute_command("ACL", "SETUSER", "limited", "on", "nopass", "~allowed:*", "+@all")
    e = err_of(lambda: lim.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 5, "STREAM", "other"))
    check(e is not None and "permissions" in e and not c.exists("other"),
          "STREAM into a key the user may not write is refused (%s)" % e)
    lim.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 5, "STREAM", "allowed:st")
    check(c.xlen("allowed:st") >= 2, "STREAM into a permitted key works")
    c.execute_command("ACL", "DELUSER", "limited")
    p = c.pipeline(transaction=True)
    p.execute_command("INFER.GENERATE", "s", "hi", "MAXTOKENS", 5)
    res = p.execute(raise_on_error=False)
    check(isinstance(res[0], redis.exceptions.ResponseError) and "MULTI" in str(res[0]),
          "INFER.GENERATE inside MULTI is refused, not left hanging")


def test_args(srv):
    print("argument range checks")
    c = srv.client()
    bad = [
        (["MAXTOKENS", 0], "MAXTOKENS"), (["MAXTOKENS", -9999999], "MAXTOKENS"),
        (["MAXTOKENS", "abc"], "MAXTOKENS"), (["MAXTOKENS", "99999999999999999999999"], "MAXTOKENS"),
        (["MAXTOKENS", 100000], "MAXTOKENS"), (["TEMPERATURE", "nan"], "TEMPERATURE"),
        (["TEMPERATURE", -1], "TEMPERATURE"), (["TEMPERATURE", "x"], "TEMPERATURE"),
        (["TOPK", -1], "TOPK"), (["TOPP", 0], "TOPP"), (["TOPP", 1.5], "TOPP"), (["MINP", 2], "MINP"),
        (["REPEAT-PENALTY", 0], "REPEAT-PENALTY"), (["SEED", -1], "SEED"),
        (["SEED", "184467440737095516160"], "SEED"), (["TIMEOUT", -5], "TIMEOUT"),
        (["STOP", ""], "STOP"), (["BOGUS", 1], "syntax"), (["MAXTOKENS"], "syntax"),
    ]
    for extra, word in bad:
        e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "hi", *extra))
        check(e is not None and word in e, "INFER.GENERATE %s -> error (%s)" % (" ".join(map(str, extra)), e))
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s"))
    check(e is not None and "wrong number" in e, "missing prompt: arity error")
    e = err_of(lambda: c.execute_command("INFER.LOAD", "t", "stories260K.gguf", "CONTEXT", 0))
    check(e is not None and "CONTEXT" in e, "INFER.LOAD CONTEXT 0 refused")
    e = err_of(lambda: c.execute_command("INFER.DETOKENIZE", "s", 1, 999999))
    check(e is not None and "token id" in e, "INFER.DETOKENIZE id out of range refused")
    e = err_of(lambda: c.execute_command("INFER.DETOKENIZE", "s", "-1"))
    check(e is not None and "token id" in e, "INFER.DETOKENIZE negative id refused")
    # TOKENSKEY: explicit little-endian decoding, length and range checks
    c.set("t5", b"\x01\x00\x00\x00\x02")
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "TOKENSKEY", "t5"))
    check(e is not None and "4-byte" in e, "TOKENSKEY of 5 bytes refused")
    c.set("t0", b"")
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "TOKENSKEY", "t0"))
    check(e is not None and "4-byte" in e, "empty TOKENSKEY refused")
    c.set("tbig", struct.pack("<II", 1, 512))
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "TOKENSKEY", "tbig"))
    check(e is not None and "out of range" in e, "TOKENSKEY id 512 (vocab 512) refused")
    c.set("tneg", struct.pack("<I", 0xFFFFFFFF))
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "TOKENSKEY", "tneg"))
    check(e is not None and "out of range" in e, "TOKENSKEY id 0xFFFFFFFF refused")
    check(c.ping(), "server alive after every bad argument")


def test_paths(srv):
    print("model paths confined to infer-models-dir")
    c = srv.client()
    for p in ("../secret.gguf", "/etc/passwd", srv.models + "/stories260K.gguf", "sub/../../secret.gguf",
              "..", ""):
        e = err_of(lambda: c.execute_command("INFER.LOAD", "x", p))
        check(e is not None and ("infer-models-dir" in e or "invalid" in e), "INFER.LOAD %r refused (%s)" % (p, e))
    e = err_of(lambda: c.execute_command("INFER.LOAD", "x", "nosuch.gguf"))
    check(e is not None and e.startswith("cannot load model"), "missing file: clear error (%s)" % e)
    with open(os.path.join(srv.models, "bad.gguf"), "wb") as f:
        f.write(b"GGUF" + os.urandom(200))
    e = err_of(lambda: c.execute_command("INFER.LOAD", "x", "bad.gguf"))
    check(e is not None and e.startswith("cannot load model"), "corrupt GGUF: clear error")
    check(len(c.execute_command("INFER.MODELS")) == 1, "no model registered by a refused load")


def test_inputs_copied(srv):
    print("inputs copied under the lock; keyspace changes harmless")
    c = srv.client()
    want = gen(c, "Once upon a time", 1500)
    c.set("p", "Once upon a time")
    bg = Background(lambda: srv.client().execute_command("INFER.GENERATE", "s", "PROMPTKEY", "p",
                                                          "MAXTOKENS", 1500, "TEMPERATURE", 0))
    wait_until(lambda: srv.stats()["in_flight"] >= 1)
    c.set("p", "Something completely different " * 50)
    c.delete("p")
    bg.join()
    check(bg.error is None and bg.result == want, "PROMPTKEY overwritten then deleted mid-request: same text")
    c.set("p", "Once upon a time")
    bg = Background(lambda: srv.client().execute_command("INFER.GENERATE", "s", "PROMPTKEY", "p",
                                                          "MAXTOKENS", 1500, "TEMPERATURE", 0))
    wait_until(lambda: srv.stats()["in_flight"] >= 1)
    c.flushall()
    c.config_set("maxmemory", "1mb")
    bg.join()
    c.config_set("maxmemory", "0")
    check(bg.error is None and bg.result == want, "FLUSHALL + small maxmemory mid-request: same text")
    check(len(c.execute_command("INFER.MODELS")) == 1, "model survives FLUSHALL (it is not in the keyspace)")


def test_concurrent(srv):
    print("concurrent clients get their alone-results")
    c = srv.client()
    jobs = [("Once upon a time", 60), ("The cat", 30), ("Lily", 90), ("", 45), ("Tim went", 15),
            ("One day", 120), ("She", 75), ("The sun", 50)]
    alone = [gen(c, p, n) for p, n in jobs]
    bgs = [Background(lambda p=p, n=n: gen(srv.client(), p, n)) for p, n in jobs]
    res = [b.join() for b in bgs]
    check(all(b.error is None for b in res) and [b.result for b in res] == alone,
          "8 concurrent greedy requests equal their alone-results")


def test_unload_model(srv):
    print("INFER.UNLOAD / reload under load")
    c = srv.client()
    want = gen(c, "Once upon a time", 300)
    busy = Busy(4, 8, srv.client, lambda cc: gen(cc, "Once upon a time", 300))
    reloads = 0
    for _ in range(6):
        c.execute_command("INFER.LOAD", "s", "stories260K.gguf")
        reloads += 1
        time.sleep(0.05)
    errors, results = busy.join(120).errors, busy.results
    check(reloads == 6 and not errors and len(results) == 32 and all(r == want for r in results),
          "6 reloads under 4 busy clients: 32 requests, none failed, all correct (%d errors)" % len(errors))
    bg = Background(lambda: gen(srv.client(), "Once upon a time", 1500))
    wait_until(lambda: srv.stats()["in_flight"] >= 1)
    c.execute_command("INFER.UNLOAD", "s")
    bg.join()
    check(bg.error is None and bg.result == gen_alone_cache["1500"], "INFER.UNLOAD mid-request: it finishes")
    e = err_of(lambda: gen(c, "x", 5))
    check(e is not None and "no such model" in e, "unloaded model is gone")
    c.execute_command("INFER.LOAD", "s", "stories260K.gguf")
    # 100 reloads must not leak: RSS settles
    def rss():
        with open("/proc/%d/status" % srv.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0
    for _ in range(10):
        c.execute_command("INFER.LOAD", "s", "stories260K.gguf")
    before = rss()
    for _ in range(100):
        c.execute_command("INFER.LOAD", "s", "stories260K.gguf")
    after = rss()
    if PRELOAD:
        # a sanitizer's quarantine keeps freed memory: RSS says nothing there
        print("  (RSS growth over 100 reloads not checked under a preloaded sanitizer: %d KiB)" %
              (after - before))
    else:
        check(after - before < 20 * 1024, "100 reloads: RSS grew %d KiB (< 20 MiB)" % (after - before))


gen_alone_cache = {}


def test_module_unload():
    print("MODULE UNLOAD refused while busy, then succeeds")
    srv = ModServer("infer-max-active", "1")
    try:
        c = srv.client()
        bgs = [Background(lambda: gen(srv.client(), "Once upon a time", 1500)) for _ in range(3)]
        wait_until(lambda: srv.stats()["in_flight"] >= 3)
        e = err_of(lambda: c.execute_command("MODULE", "UNLOAD", "infer"))
        check(e is not None, "MODULE UNLOAD with requests in flight refused (%s)" % e)
        for b in bgs:
            b.join()
        check(all(b.error is None and b.result == gen_alone_cache["1500"] for b in bgs),
              "the requests finish correctly after the refused unload")
        base = srv.threads()
        check(c.execute_command("MODULE", "UNLOAD", "infer") == b"OK", "MODULE UNLOAD when idle succeeds")
        e = err_of(lambda: c.execute_command("INFER.STATS"))
        check(e is not None and "unknown command" in e, "INFER.* gone after unload")
        # infer-threads 1: a model has its scheduler thread and no pool worker
        check(srv.threads() == base - 1, "engine thread joined at unload (%d -> %d)" % (base, srv.threads()))
        c.set("k", "v")
        check(c.get("k") == b"v", "server works after unload")
        for bad in (["infer-threads", "0"], ["infer-max-queue", "x"], ["infer-bogus", "1"], ["infer-threads"],
                    ["infer-models-dir", os.path.join(srv.dir, "nosuchdir")]):
            e = err_of(lambda: c.execute_command("MODULE", "LOAD", MODULE, *bad))
            check(e is not None, "module refuses to load with options %s" % " ".join(bad))
        c.execute_command("MODULE", "LOAD", MODULE, "infer-vector-sets", "no")
        e = err_of(lambda: c.execute_command("INFER.LOAD", "s", "stories260K.gguf"))
        check(e is not None and "infer-models-dir" in e, "without infer-models-dir INFER.LOAD is refused")
        c.execute_command("MODULE", "UNLOAD", "infer")
        c.execute_command("MODULE", "LOAD", MODULE, "infer-models-dir", srv.models, "infer-vector-sets", "no")
        c.execute_command("INFER.LOAD", "s", "stories260K.gguf")
        check(gen(c, "Once upon a time", 40) == cli_text("Once upon a time", 40), "module loads again and works")
    finally:
        srv.stop()


def test_queue_full():
    print("bounded queue: full queue answers at once, GET/SET keep working")
    srv = ModServer("infer-max-queue", "2", "infer-max-active", "1")
    try:
        c = srv.client()
        out = []
        lock = threading.Lock()

        def one():
            try:
                r = gen(srv.client(), "Once upon a time", 1000)
                with lock:
                    out.append(("ok", r))
            except redis.exceptions.ResponseError as e:
                with lock:
                    out.append(("err", str(e)))

        bgs = [Background(one) for _ in range(10)]
        wait_until(lambda: len(out) >= 7)
        t0 = time.time()
        c.set("a", "1")
        okget = c.get("a") == b"1"
        check(okget, "SET/GET answer while the queue is full (%.1f ms)" % ((time.time() - t0) * 1000))
        for b in bgs:
            b.join()
        errs = [x for k, x in out if k == "err"]
        oks = [x for k, x in out if k == "ok"]
        check(len(out) == 10, "every client answered (%d)" % len(out))
        check(len(errs) >= 5 and all("queue" in e for e in errs), "queue-full errors: %d (%s)" %
              (len(errs), errs[0] if errs else ""))
        check(len(oks) >= 2 and all(o == oks[0] for o in oks), "admitted requests all completed")
        check(srv.stats()["rejected"] >= 5, "INFER.STATS counts rejected")
    finally:
        srv.stop()


def test_disconnect_cancels():
    print("a client that disconnects cancels its request")
    srv = ModServer("infer-max-active", "1")
    try:
        bg = Background(lambda: gen(srv.client(), "Once upon a time", 1500))
        wait_until(lambda: srv.stats()["in_flight"] >= 1)
        socks = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", srv.port))
            cmd = [b"INFER.GENERATE", b"s", b"Once", b"MAXTOKENS", b"2000"]
            s.sendall(b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in cmd))
            socks.append(s)
        wait_until(lambda: srv.stats()["in_flight"] >= 3)
        for s in socks:
            s.close()
        ok = wait_until(lambda: srv.stats()["cancelled"] >= 2, 10)
        check(ok, "two disconnected clients: INFER.STATS cancelled = %d" % srv.stats()["cancelled"])
        bg.join()
        check(bg.error is None and bg.result == gen_alone_cache["1500"], "the connected client is unaffected")
        check(wait_until(lambda: srv.stats()["in_flight"] == 0), "nothing left in flight")
    finally:
        srv.stop()


def test_many_clients():
    print("200 concurrent clients: bounded threads, every client answered")
    srv = ModServer("infer-max-queue", "64", "--maxclients", "1000")
    try:
        base = srv.threads()
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], srv.threads())
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        out = []
        lock = threading.Lock()

        def one(i):
            try:
                r = gen(srv.client(), "Once", 20 + i % 7)
                with lock:
                    out.append(("ok", r))
            except redis.exceptions.ResponseError as e:
                with lock:
                    out.append(("err", str(e)))
            except Exception as e:  # noqa: BLE001
                with lock:
                    out.append(("conn", str(e)))

        ts = [threading.Thread(target=one, args=(i,)) for i in range(200)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        stop.set()
        sampler.join()
        kinds = [k for k, _ in out]
        check(len(out) == 200 and "conn" not in kinds, "200 clients all answered (%d ok, %d errors)" %
              (kinds.count("ok"), kinds.count("err")))
        check(all("queue" in x for k, x in out if k == "err"), "the only errors are queue-full")
        check(peak[0] <= base + 2, "thread count bounded: %d at rest, %d at peak" % (base, peak[0]))
        check(srv.client().ping(), "server alive")
    finally:
        srv.stop()


def test_shutdown_busy():
    print("server shutdown with requests in flight exits cleanly")
    srv = ModServer("infer-max-active", "2")
    try:
        bgs = [Background(lambda: gen(srv.client(), "Once upon a time", 1500)) for _ in range(4)]
        wait_until(lambda: srv.stats()["in_flight"] >= 4)
        try:
            srv.client().shutdown(nosave=True)
        except redis.exceptions.ConnectionError:
            pass
        rc = srv.proc.wait(15)
        for b in bgs:
            b.join()
        log = srv.log_text()
        check(rc == 0 and "crashed" not in log and "Redis is now ready to exit" in log,
              "exit status %d, clean log" % rc)
    finally:
        srv.stop()


def main():
    if not os.path.exists(MODULE):
        print("SKIP: %s not built" % MODULE)
        TALLY.skipped += 1
    elif not os.path.exists(MODEL):
        print("SKIP: stories260K not found under %s (set INFERKV_SHARED)" % SHARED)
        TALLY.skipped += 1
    else:
        srv = ModServer()
        try:
            gen_alone_cache["1500"] = gen(srv.client(), "Once upon a time", 1500)
            test_basic(srv)
            test_args(srv)
            test_paths(srv)
            test_inputs_copied(srv)
            test_concurrent(srv)
            test_unload_model(srv)
            check(srv.proc.poll() is None, "server still running after the suite")
        finally:
            srv.stop()
        test_module_unload()
        test_queue_full()
        test_disconnect_cancels()
        test_many_clients()
        test_shutdown_busy()
    TALLY.done()


if __name__ == "__main__":
    main()
