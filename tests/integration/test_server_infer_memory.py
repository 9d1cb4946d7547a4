"""test_server_infer_memory.py - infer-max-memory in a real inferkv-server,
through redis-py (issue 24).

The engine's memory (weights, KV pools, scratch) has a budget of its own,
beside maxmemory's dataset.  Checks: the default is half the machine's RAM
(or its cgroup's lower limit), in CONFIG GET and INFO; a model that fits
loads and INFO memory / INFO infer show its weights (within a few percent
of the file), KV reserved and scratch, per model too, and INFER.STATS the
same; used_memory does not grow with the model and a tight maxmemory
evicts nothing when a model loads; a budget one byte short of a model
refuses it with the figures, leaves nothing loaded and the dataset intact,
and a budget of exactly its size loads it; two models that fit one at a
time do not fit together, and INFER.UNLOAD gives the room back; replacing
a model under its name needs room for both; CONFIG SET takes memory units,
and set below what is loaded refuses further loads; concurrent generations
never move the engine's figures.

Model: stories260K from $INFERKV_SHARED (else its gguf-gen twin).  Prints
"N passed, N failed, N skipped"; exits 1 on failure.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import Server, Tally, check, eq, err_of, gen, usable_ram  # noqa: E402

import redis  # noqa: E402

BUILD = server_harness.BUILD
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
GEN = os.path.join(BUILD, "gguf-gen")
MODELS = tempfile.mkdtemp(prefix="inferkv-mem-models-")


def setup_models():
    if os.path.exists(STORIES):
        shutil.copy(STORIES, os.path.join(MODELS, "s.gguf"))
        return "stories260K from %s" % SHARED
    subprocess.run([GEN, "--preset", "stories260k", "-q", "-o", os.path.join(MODELS, "s.gguf")], check=True)
    return "gguf-gen stories260k-shaped model"



def human(n):
    """The error message's figures (ic_human_bytes)."""
    if n < 1024:
        return "%d B" % n
    if n < 1024 ** 2:
        return "%.1f KiB" % (n / 1024)
    if n < 1024 ** 3:
        return "%.1f MiB" % (n / 1024 ** 2)
    return "%.2f GiB" % (n / 1024 ** 3)


def start(*extra):
    srv = Server("--infer-models-dir", MODELS, "--infer-threads", "1", *extra)
    srv.r = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=120)
    return srv


def engine(c, section="infer"):
    return c.info(section)


def engine_used(c):
    return engine(c)["infer_used_memory"]


def wait_freed(c, want=0):
    check(server_harness.wait_until(lambda: engine_used(c) == want, 30), "engine memory back to %d" % want)


def load(c, name, *extra):
    return c.execute_command("INFER.LOAD", name, "s.gguf", *extra)


def reset(c):
    """Each test starts with no model and the default budget, whatever the
    one before left behind when it failed."""
    for m in c.execute_command("INFER.MODELS"):
        d = {m[i].decode(): m[i + 1] for i in range(0, len(m), 2)}
        c.execute_command("INFER.UNLOAD", d["name"])
    c.config_set("infer-max-memory", usable_ram() // 2)
    wait_freed(c)


def model_lines(info):
    return {k: v for k, v in info.items() if re.match(r"infer_model\d+$", k)}


# --------------------------------------------------------------------------


def test_default_is_half_ram():
    with start() as srv:
        c = srv.r
        want = usable_ram() // 2
        eq(int(c.config_get("infer-max-memory")["infer-max-memory"]), want, "CONFIG GET infer-max-memory")
        eq(engine(c, "memory")["infer_max_memory"], want, "INFO memory infer_max_memory")
        eq(engine(c)["infer_max_memory"], want, "INFO infer infer_max_memory")
        eq(engine(c)["infer_used_memory"], 0, "nothing loaded")


def test_fits_and_reported(srv):
    """A model that fits: figures in INFO memory, INFO infer (per model) and INFER.STATS."""
    c = srv.r
    reset(c)
    for i in range(200):
        c.set("key:%d" % i, "v" * 100)
    used0 = c.info("memory")["used_memory"]
    eq(load(c, "a"), b"OK", "INFER.LOAD")
    mem = c.info("memory")
    inf = engine(c)
    size = os.path.getsize(os.path.join(MODELS, "s.gguf"))
    w, kv, sc = inf["infer_weights_bytes"], inf["infer_kv_reserved_bytes"], inf["infer_scratch_bytes"]
    check(size <= w <= size * 1.05, "weights %d within 5%% of the file's %d bytes" % (w, size))
    check(kv > 0 and kv % inf["infer_kv_blocks_total"] == 0, "KV reserved %d is whole blocks" % kv)
    check(sc > 0, "scratch counted")
    eq(inf["infer_used_memory"], w + kv + sc, "used = weights + KV reserved + scratch")
    eq(inf["infer_kv_used_bytes"], 0, "no KV in use while idle")
    eq(inf["infer_loading_bytes"], 0, "no load in progress")
    for k in ("infer_used_memory", "infer_max_memory", "infer_weights_bytes", "infer_kv_reserved_bytes",
              "infer_kv_used_bytes", "infer_scratch_bytes"):
        eq(mem[k], inf[k], "INFO memory %s equals INFO infer's" % k)
    check(mem["infer_used_memory_human"].endswith("M"), "human figure %r" % mem["infer_used_memory_human"])
    lines = model_lines(inf)
    eq(len(lines), 1, "one model line")
    m = lines["infer_model0"]
    eq((m["name"], m["replaced"], m["weights"], m["kv_reserved"], m["scratch"], m["total"]),
       ("a", 0, w, kv, sc, w + kv + sc), "per-model line")
    # maxmemory counts the dataset only: the model did not grow used_memory
    grew = mem["used_memory"] - used0
    check(grew < w and grew < 256 * 1024, "used_memory grew by %d bytes for a %d-byte model" % (grew, w + kv + sc))
    st = c.execute_command("INFER.STATS")
    st = {st[i].decode(): st[i + 1] for i in range(0, len(st), 2)}
    eq((st["used_memory"], st["weights_bytes"], st["max_memory"]), (w + kv + sc, w, inf["infer_max_memory"]),
       "INFER.STATS has the figures")
    eq(c.execute_command("INFER.UNLOAD", "a"), b"OK", "unload")
    wait_freed(c)


def test_tight_maxmemory_no_eviction():
    """A model loading into a server at its maxmemory evicts no key."""
    with start("--maxmemory-policy", "allkeys-lru") as srv:
        c = srv.r
        for i in range(100):
            c.set("k%d" % i, "x" * 200)
        used = c.info("memory")["used_memory"]
        c.config_set("maxmemory", used + 64 * 1024)
        eq(load(c, "a"), b"OK", "load")
        check(engine_used(c) > 64 * 1024 * 10, "the engine holds far more than maxmemory's headroom")
        c.set("after", "1")
        eq(c.info("stats")["evicted_keys"], 0, "no eviction")
        eq(c.dbsize(), 101, "every key still there")


def model_total(c):
    """The figures of one load of s.gguf with the current settings."""
    eq(load(c, "probe"), b"OK", "probe load")
    total = engine_used(c)
    inf = engine(c)
    parts = (inf["infer_weights_bytes"], inf["infer_kv_reserved_bytes"], inf["infer_scratch_bytes"])
    c.execute_command("INFER.UNLOAD", "probe")
    wait_freed(c)
    return total, parts


def test_refused_with_figures(srv):
    """One byte short: refused with the figures, nothing loaded, data intact."""
    c = srv.r
    reset(c)
    total, (w, kv, sc) = model_total(c)
    c.set("precious", "data")
    dbsize = c.dbsize()
    c.config_set("infer-max-memory", total - 1)
    e = err_of(lambda: load(c, "b"))
    want = ("infer-max-memory: loading 'b' needs %s (weights %s + KV %s + scratch %s), %s of %s free "
            "(no model loaded)" % (human(total), human(w), human(kv), human(sc), human(total - 1), human(total - 1)))
    eq(e, want, "refusal")
    eq(c.execute_command("INFER.MODELS"), [], "nothing loaded")
    inf = engine(c)
    eq((inf["infer_models"], inf["infer_used_memory"], inf["infer_loading_bytes"]), (0, 0, 0), "INFO unchanged")
    eq((c.get("precious"), c.dbsize()), (b"data", dbsize), "dataset intact")
    check(srv.alive(), "server alive")
    c.config_set("infer-max-memory", total)
    eq(load(c, "b"), b"OK", "a budget of exactly the model's size takes it")
    eq(engine_used(c), total, "the estimate was the actual figure")
    c.execute_command("INFER.UNLOAD", "b")
    wait_freed(c)


def test_two_models_one_at_a_time(srv):
    c = srv.r
    reset(c)
    total, _ = model_total(c)
    c.config_set("infer-max-memory", total + total // 2)
    eq(load(c, "a"), b"OK", "first fits")
    e = err_of(lambda: load(c, "b"))
    check(e and e.startswith("infer-max-memory: loading 'b' needs %s" % human(total)) and
          e.endswith("(1 model loaded uses %s)" % human(total)), "second refused: %r" % e)
    # replacing 'a' under its name: old and new both live until the swap, so both must fit
    e = err_of(lambda: load(c, "a"))
    check(e and e.startswith("infer-max-memory: loading 'a'"), "replacement needs room for both: %r" % e)
    eq(len(c.execute_command("INFER.MODELS")), 1, "still one model")
    eq(c.execute_command("INFER.UNLOAD", "a"), b"OK", "unload")
    wait_freed(c)
    eq(load(c, "b"), b"OK", "after INFER.UNLOAD the room is back")
    # set below what is loaded: accepted, loads refused, nothing unloaded
    c.config_set("infer-max-memory", 1024)
    inf = engine(c)
    check(inf["infer_used_memory"] > inf["infer_max_memory"] == 1024, "INFO shows used over the budget")
    e = err_of(lambda: load(c, "c"))
    check(e and "0 B of 1.0 KiB free (1 model loaded uses %s)" % human(total) in e, "refused: %r" % e)
    check(gen(c, "Once", 5, model="b"), "the loaded model still serves")
    c.execute_command("INFER.UNLOAD", "b")
    wait_freed(c)
    c.config_set("infer-max-memory", usable_ram() // 2)


def test_config_units(srv):
    c = srv.r
    reset(c)
    for v, want in (("2gb", 2 << 30), ("512MB", 512 << 20), ("100k", 100000), ("0", 0), ("123456", 123456)):
        c.config_set("infer-max-memory", v)
        eq(int(c.config_get("infer-max-memory")["infer-max-memory"]), want, "CONFIG SET %s" % v)
    eq(engine(c)["infer_max_memory"], 123456, "INFO follows")
    for bad in ("abc", "-1", "1.5gb"):
        check(err_of(lambda: c.config_set("infer-max-memory", bad)), "CONFIG SET %s refused" % bad)
    c.config_set("infer-max-memory", "0")
    eq(load(c, "a"), b"OK", "0: no limit")
    c.execute_command("INFER.UNLOAD", "a")
    wait_freed(c)
    c.config_set("infer-max-memory", usable_ram() // 2)


def test_command_line():
    with start("--infer-max-memory", "64mb") as srv:
        eq(int(srv.r.config_get("infer-max-memory")["infer-max-memory"]), 64 << 20, "--infer-max-memory 64mb")
    with start("--infer-max-memory", "1000") as srv:
        e = err_of(lambda: load(srv.r, "a"))
        check(e and e.startswith("infer-max-memory: loading 'a' needs") and "of 1000 B free" in e, repr(e))


def test_concurrent_generations_fixed(srv):
    """Sixteen clients generating at once: the engine's figures never move
    and never pass the budget; KV in use stays inside KV reserved."""
    c = srv.r
    reset(c)
    total, _ = model_total(c)
    c.config_set("infer-max-memory", total)
    eq(load(c, "a"), b"OK", "load at an exact budget")
    errors, stop = [], threading.Event()

    def worker(i):
        try:
            cc = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=120)
            for k in range(3):
                cc.execute_command("INFER.GENERATE", "a", "Once upon a time %d" % i, "MAXTOKENS", 120,
                                   "TEMPERATURE", 0.8, "SEED", i * 10 + k)
        except Exception as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in ts:
        t.start()
    seen_kv, samples = 0, 0
    while any(t.is_alive() for t in ts):
        inf = engine(c)
        samples += 1
        check(inf["infer_used_memory"] == total <= inf["infer_max_memory"],
              "engine bytes %d (budget %d)" % (inf["infer_used_memory"], inf["infer_max_memory"]))
        check(inf["infer_kv_used_bytes"] <= inf["infer_kv_reserved_bytes"], "KV used within reserved")
        seen_kv = max(seen_kv, inf["infer_kv_used_bytes"])
    for t in ts:
        t.join()
    stop.set()
    eq(errors, [], "every generation answered")
    check(seen_kv > 0, "KV in use seen during generation (%d samples)" % samples)
    c.execute_command("INFER.UNLOAD", "a")
    wait_freed(c)
    c.config_set("infer-max-memory", usable_ram() // 2)


def main():
    t = Tally()
    if not os.path.exists(server_harness.SERVER):
        print("SKIP: %s not built" % server_harness.SERVER)
        print("0 passed, 0 failed, 1 skipped")
        return
    try:
        print("models: %s" % setup_models())
        t.run(test_default_is_half_ram)
        t.run(test_tight_maxmemory_no_eviction)
        t.run(test_command_line)
        srv = start()
        try:
            for fn in (test_fits_and_reported, test_refused_with_figures, test_two_models_one_at_a_time,
                       test_config_units, test_concurrent_generations_fixed):
                t.run(fn, srv)
        finally:
            srv.stop()
    finally:
        shutil.rmtree(MODELS, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
