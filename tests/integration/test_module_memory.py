"""test_module_memory.py - infer-max-memory in inferkv.so inside Debian's
stock redis-server (issue 24).

Checks: the module's default budget is half the machine's RAM (or its
cgroup's lower limit) and memory units are taken (infer-max-memory 2gb);
INFO infer reports the engine's bytes (weights within a few percent of the
file, KV reserved, scratch, one line per model) and Redis's used_memory
does not grow with the model; with a budget too small, INFER.LOAD is
refused with the figures - word for word what inferkv-server answers for
the same model and settings - nothing is loaded and the dataset is intact.

Prints "N passed, N failed, N skipped"; exits 1 on failure.
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import LoggedProcess, Server, Tally, check, eq, err_of, free_port, usable_ram, wait_up  # noqa: E402

import redis  # noqa: E402

BUILD = server_harness.BUILD
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
MODULE = os.path.abspath(os.environ.get("INFERKV_MODULE", os.path.join(BUILD, "inferkv.so")))
MODEL = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"



class ModServer(LoggedProcess):
    """redis-server on a free port with the module and stories260K as s.gguf."""

    def __init__(self, *opts):
        self.dir = tempfile.mkdtemp(prefix="inferkv-modmem-")
        self.models = os.path.join(self.dir, "models")
        os.mkdir(self.models)
        shutil.copy(MODEL, os.path.join(self.models, "s.gguf"))
        self.port = free_port()
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", self.dir, "--loadmodule", MODULE, "infer-models-dir", self.models, "infer-threads", "1",
               "infer-vector-sets", "no"] + list(opts)
        super().__init__(cmd, os.path.join(self.dir, "redis.log"))
        if not wait_up(self.proc, lambda: self.client().ping(), 10, redis.exceptions.ConnectionError):
            raise RuntimeError("redis-server did not start:\n" + self.log_text())

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=60)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_process(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_default_and_fits():
    with ModServer() as srv:
        c = srv.client()
        inf = c.info("infer")
        eq(inf["infer_max_memory"], usable_ram() // 2, "default: half the RAM")
        eq((inf["infer_used_memory"], inf["infer_models"]), (0, 0), "nothing loaded")
        used0 = c.info("memory")["used_memory"]
        eq(c.execute_command("INFER.LOAD", "s", "s.gguf"), b"OK", "a model that fits loads")
        inf = c.info("infer")
        size = os.path.getsize(MODEL)
        w, kv, sc = inf["infer_weights_bytes"], inf["infer_kv_reserved_bytes"], inf["infer_scratch_bytes"]
        check(size <= w <= size * 1.05, "weights %d within 5%% of the file's %d" % (w, size))
        check(kv > 0 and sc > 0, "KV reserved and scratch counted")
        eq(inf["infer_used_memory"], w + kv + sc, "used = weights + KV + scratch")
        check(inf["infer_used_memory_human"].endswith("M") and inf["infer_max_memory_human"].endswith("G"),
              "human figures %r / %r" % (inf["infer_used_memory_human"], inf["infer_max_memory_human"]))
        m = inf["infer_model0"]
        eq((m["name"], m["total"], m["kv_used"]), ("s", w + kv + sc, 0), "per-model line")
        grew = c.info("memory")["used_memory"] - used0
        check(grew < w, "Redis's used_memory grew by %d for a %d-byte engine" % (grew, w + kv + sc))
        st = c.execute_command("INFER.STATS")
        st = {st[i].decode(): st[i + 1] for i in range(0, len(st), 2)}
        eq((st["used_memory"], st["max_memory"]), (w + kv + sc, usable_ram() // 2), "INFER.STATS figures")
        eq(c.execute_command("INFER.UNLOAD", "s"), b"OK", "unload")
        check(server_harness.wait_until(lambda: c.info("infer")["infer_used_memory"] == 0, 30), "room back")


def test_units():
    with ModServer("infer-max-memory", "2gb") as srv:
        eq(srv.client().info("infer")["infer_max_memory"], 2 << 30, "infer-max-memory 2gb")


def server_refusal(budget):
    """inferkv-server's answer for the same model, settings and budget."""
    d = tempfile.mkdtemp(prefix="inferkv-modmem-srv-")
    shutil.copy(MODEL, os.path.join(d, "s.gguf"))
    try:
        with Server("--infer-models-dir", d, "--infer-threads", "1", "--infer-max-memory", str(budget)) as srv:
            c = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=60)
            return err_of(lambda: c.execute_command("INFER.LOAD", "s", "s.gguf"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_refused():
    with ModServer("infer-max-memory", "1mb") as srv:
        c = srv.client()
        c.set("precious", "data")
        eq(c.info("infer")["infer_max_memory"], 1 << 20, "infer-max-memory 1mb")
        e = err_of(lambda: c.execute_command("INFER.LOAD", "s", "s.gguf"))
        check(e and re.match(r"infer-max-memory: loading 's' needs [\d.]+ MiB \(weights [\d.]+ MiB \+ KV [\d.]+ MiB "
                             r"\+ scratch [\d.]+ MiB\), 1\.0 MiB of 1\.0 MiB free \(no model loaded\)$", e),
              "refused with the figures: %r" % e)
        eq(c.execute_command("INFER.MODELS"), [], "nothing loaded")
        inf = c.info("infer")
        eq((inf["infer_models"], inf["infer_used_memory"], inf["infer_loading_bytes"]), (0, 0, 0), "INFO unchanged")
        eq(c.get("precious"), b"data", "dataset intact")
        if os.path.exists(server_harness.SERVER):
            eq(server_refusal(1 << 20), e, "inferkv-server refuses with the same words")


def main():
    t = Tally()
    for need in (REDIS, MODULE, MODEL):
        if not os.path.exists(need):
            print("SKIP: %s not found" % need)
            print("0 passed, 0 failed, 1 skipped")
            return
    for fn in (test_default_and_fits, test_units, test_refused):
        t.run(fn)
    t.done()


if __name__ == "__main__":
    main()
