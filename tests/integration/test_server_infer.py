"""test_server_infer.py - INFER.* in a real inferkv-server, through redis-py
and a raw RESP client (issue 6).

Models: stories260K from $INFERKV_SHARED when present (else a model of the
same shape written by build/gguf-gen, so every test still runs), and a
larger gguf-gen model ("slow", ~27M Q8_0 weights, context 4096) wherever a
test needs generation to last long enough to act in the middle of it
(disconnect, streaming, a full queue).  Both are copied or written into a
temporary infer-models-dir.

Checks: greedy INFER.GENERATE equals `inferkv-cli generate`; 32 concurrent
clients each get their solo text; seeded sampling reproducible alone and
under concurrency; a disconnect frees the request's KV blocks at once; a
full queue answers an error at once while GET/SET keep working; reloading
a model under load fails no request; shared prefixes hit the prefix cache;
STREAM readers see tokens live and the entries concatenate to the answer;
STORE, PROMPTKEY, TOKENSKEY, RESP3 map, TIMEOUT, ALIAS, UNLOAD; hostile
arguments, paths and files each get a clear error and the server lives;
the infer-* config through the command line and CONFIG GET/SET; COMMAND
INFO and the @infer ACL category.

INFERKV_SERVER overrides the server binary (the ASan run uses it).
Prints "N passed, N failed, N skipped"; exits 1 on failure.
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
import server_harness  # noqa: E402
from server_harness import Busy, RawClient, Server, Tally, check, eq, err_of, gen  # noqa: E402

import redis  # noqa: E402

BUILD = server_harness.BUILD
if os.environ.get("INFERKV_SERVER"):
    server_harness.SERVER = os.path.abspath(os.environ["INFERKV_SERVER"])
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
CLI = os.path.join(BUILD, "inferkv-cli")
GEN = os.path.join(BUILD, "gguf-gen")
SLOW = int(os.environ.get("INFERKV_TEST_SLOWDOWN", "1"))  # sanitizer builds wait longer

MODELS = tempfile.mkdtemp(prefix="inferkv-infer-models-")
OUTSIDE = os.path.join(os.path.dirname(MODELS), os.path.basename(MODELS) + "-secret.gguf")


def setup_models():
    """s.gguf (stories260K or its gguf-gen twin) and slow.gguf."""
    if os.path.exists(STORIES):
        shutil.copy(STORIES, os.path.join(MODELS, "s.gguf"))
        kind = "stories260K from %s" % SHARED
    else:
        subprocess.run([GEN, "--preset", "stories260k", "-q", "-o", os.path.join(MODELS, "s.gguf")], check=True)
        kind = "gguf-gen stories260k-shaped model (%s absent)" % STORIES
    subprocess.run([GEN, "--preset", "tiny-llama", "--layers", "8", "--embd", "512", "--heads", "8", "--ffn",
                    "1536", "--ctx", "4096", "--type", "q8_0", "--seed", "7", "-q", "-o",
                    os.path.join(MODELS, "slow.gguf")], check=True)
    with open(OUTSIDE, "wb") as f:
        f.write(b"outside the models dir")
    return kind


def start(*extra):
    srv = Server("--infer-models-dir", MODELS, "--infer-threads", "1", "--maxclients", "1000", *extra)
    srv.r = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=120 * SLOW)
    return srv


def client(srv):
    return redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=120 * SLOW)


def wait_until(pred, timeout=10):
    return server_harness.wait_until(pred, timeout * SLOW)


def info(c):
    return c.info("infer")


def cli_text(prompt, n):
    out = subprocess.run([CLI, "generate", "-m", os.path.join(MODELS, "s.gguf"), "-p", prompt, "-n", str(n),
                          "--temp", "0", "-t", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         check=True).stdout
    check(out.startswith(prompt.encode()), "inferkv-cli echoes the prompt")
    return out[len(prompt.encode()):]


class Background(server_harness.Background):
    join_timeout = 300 * SLOW


# --------------------------------------------------------------------------

def test_greedy_equals_cli(srv):
    """Greedy INFER.GENERATE returns exactly what inferkv-cli generate prints."""
    c = srv.r
    for prompt, n in (("Once upon a time", 40), ("The little dog", 25), ("", 30)):
        eq(gen(c, prompt, n), cli_text(prompt, n), "greedy %r -n %d" % (prompt, n))


def test_resp3_map(srv):
    """RESP3 answers a map: text, tokens, finish reason, prompt/reused tokens, timings."""
    rc = RawClient(srv.port, timeout=60 * SLOW)
    rc.call("HELLO", "3")
    t, pairs = rc.call("INFER.GENERATE", "s", "Once", "MAXTOKENS", "10", "TEMPERATURE", "0")
    rc.close()
    eq(t, "%", "reply type")
    m = {k[1].decode() if isinstance(k[1], bytes) else k[1]: v for k, v in pairs}
    eq(sorted(m), sorted(["text", "tokens", "finish", "prompt_tokens", "reused_tokens", "queue_ms",
                          "prefill_ms", "decode_ms"]), "map keys")
    eq(m["text"][1], gen(srv.r, "Once", 10), "text")
    eq(m["tokens"], (":", 10), "token count")
    eq(m["finish"][1], b"length", "finish reason")
    check(m["decode_ms"][0] == "," and float(m["decode_ms"][1]) >= 0, "timings are doubles")
    e = err_of(lambda: srv.r.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 2000, "TIMEOUT", 1))
    check(e is not None and e.startswith("TIMEOUT"), "TIMEOUT 1 ms answers a TIMEOUT error (%s)" % e)


def test_answered_commands_free_their_arguments(srv):
    """A command answered after it blocked (every INFER.GENERATE) lets go of
    its arguments: 800 generations, each carrying 4 KiB of arguments the
    server keeps while it generates (16 STOP strings of 256 bytes), leave
    used_memory where it was, not 3 MiB higher (they once stayed until the
    server stopped: found by the allocation-failure sweep's leak check)."""
    c = srv.r
    stops = []
    for i in range(16):
        stops += ["STOP", ("%02d" % i) * 128]
    for _ in range(5):
        c.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 1, "TEMPERATURE", 0, *stops)
    before = int(c.info("memory")["used_memory"])
    for _ in range(800):
        c.execute_command("INFER.GENERATE", "s", "Once", "MAXTOKENS", 1, "TEMPERATURE", 0, *stops)
    grown = int(c.info("memory")["used_memory"]) - before
    check(grown < 1 << 20, "used_memory grew %d bytes over 800 answered generations (3.3 MB of arguments)" % grown)


def test_concurrent_32(srv):
    """32 concurrent greedy clients with different lengths each get exactly their solo text."""
    prompts = ["Once upon a time", "The cat", "Lily", "", "Tim went", "One day", "She", "The sun"]
    jobs = [(prompts[i % len(prompts)], 10 + 7 * i) for i in range(32)]
    alone = {}
    for p, n in jobs:
        alone[(p, n)] = gen(srv.r, p, n)
    bgs = [Background(lambda p=p, n=n: gen(client(srv), p, n)) for p, n in jobs]
    for b in bgs:
        b.join()
    errs = [b.error for b in bgs if b.error]
    check(not errs, "errors: %r" % errs[:3])
    bad = [j for j, b in zip(jobs, bgs) if b.result != alone[j]]
    check(not bad, "%d of 32 differ from their solo text, e.g. %r" % (len(bad), bad[:2]))


def test_seeded_sampling(srv):
    """Same seed, same text: alone twice and among 8 concurrent requests; another seed differs."""
    args = ("MAXTOKENS", 40, "TEMPERATURE", 0.9, "TOPK", 40, "TOPP", 0.95, "SEED")
    run = lambda c, seed: c.execute_command("INFER.GENERATE", "s", "Once upon a time", *args, seed)  # noqa: E731
    a1, a2 = run(srv.r, 42), run(srv.r, 42)
    eq(a1, a2, "alone")
    others = [run(srv.r, s) for s in (1, 2, 3)]
    check(any(o != a1 for o in others), "different seeds give different texts")
    bgs = [Background(lambda s=s: run(client(srv), s)) for s in (42, 1, 42, 2, 42, 3, 42, 42)]
    res = [b.join().result for b in bgs]
    eq([r for r, s in zip(res, (42, 1, 42, 2, 42, 3, 42, 42)) if s == 42], [a1] * 5, "seed 42 under concurrency")
    eq([res[1], res[3], res[5]], others, "seeds 1, 2, 3 under concurrency")


def test_disconnect_frees_kv(srv):
    """A client that disconnects mid-generation: cancelled, its KV blocks back in the pool at once."""
    c = srv.r
    base = info(c)
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(RawClient.encode("INFER.GENERATE", "slow", "Once upon a time", "MAXTOKENS", "4000"))
    check(wait_until(lambda: info(c)["infer_kv_blocks_used"] > 2 and info(c)["infer_in_flight"] == 1),
          "generation running with KV blocks held: %r" % info(c))
    s.close()
    t0 = time.time()
    check(wait_until(lambda: info(c)["infer_kv_blocks_used"] == 0 and info(c)["infer_in_flight"] == 0, 5),
          "KV blocks back after the disconnect: %r" % info(c))
    print("    (blocks back %.0f ms after the disconnect)" % ((time.time() - t0) * 1000))
    eq(info(c)["infer_cancelled"], base["infer_cancelled"] + 1, "cancelled count")
    eq(c.ping(), True, "server alive")


def test_client_unblock(srv):
    """CLIENT UNBLOCK of a client in INFER.GENERATE: answered UNBLOCKED at once, request cancelled, KV freed (both forms)."""
    c = srv.r
    for form in ([], ["ERROR"]):
        base = info(c)
        victim = client(srv)
        vid = victim.client_id()
        bg = Background(lambda: victim.execute_command("INFER.GENERATE", "slow", "Once upon a time",
                                                       "MAXTOKENS", "4000"))
        check(wait_until(lambda: info(c)["infer_in_flight"] == 1), "generation running")
        eq(c.execute_command("CLIENT", "UNBLOCK", vid, *form), 1, "CLIENT UNBLOCK %s unblocks" % form)
        bg.join()
        check(isinstance(bg.error, redis.exceptions.ResponseError) and "UNBLOCKED" in str(bg.error),
              "CLIENT UNBLOCK %s: the client is answered UNBLOCKED (%r)" % (form, bg.error))
        check(wait_until(lambda: info(c)["infer_in_flight"] == 0 and info(c)["infer_kv_blocks_used"] == 0, 5),
              "CLIENT UNBLOCK %s: the request is cancelled, its KV blocks freed: %r" % (form, info(c)))
        eq(info(c)["infer_cancelled"], base["infer_cancelled"] + 1, "cancelled count after UNBLOCK %s" % form)
        eq(victim.ping(), True, "the unblocked connection takes commands again")
        victim.close()


def test_queue_full():
    """Queue full: the surplus requests get an error at once; GET/SET answer meanwhile; admitted ones finish."""
    srv = start("--infer-max-queue", "2", "--infer-max-batch", "1")
    try:
        srv.r.execute_command("INFER.LOAD", "slow", "slow.gguf", "CONTEXT", "4096")
        out, lock = [], threading.Lock()

        def one():
            t0 = time.time()
            try:
                r = gen(client(srv), "Once upon a time", 400, model="slow")
                k = ("ok", r)
            except redis.exceptions.ResponseError as e:
                k = ("err", str(e))
            with lock:
                out.append(k + (time.time() - t0,))

        first = Background(one)
        check(wait_until(lambda: info(srv.r)["infer_in_flight"] == 1 and info(srv.r)["infer_active"] == 1), "first request running")
        bgs = [Background(one) for _ in range(7)]
        check(wait_until(lambda: len(out) >= 5), "5 rejections arrive while 3 are admitted")
        t0 = time.time()
        srv.r.set("k", "v")
        eq(srv.r.get("k"), b"v", "GET/SET while the queue is full")
        print("    (SET+GET took %.1f ms with the queue full)" % ((time.time() - t0) * 1000))
        for b in [first] + bgs:
            b.join()
        errs = [x for k, x, _ in out if k == "err"]
        oks = [x for k, x, _ in out if k == "ok"]
        eq(len(out), 8, "every client answered")
        check(len(errs) == 5 and all("queue" in e for e in errs), "queue-full errors: %r" % errs[:2])
        check(len(oks) == 3 and all(o == oks[0] for o in oks), "the admitted requests all completed alike")
        check(info(srv.r)["infer_rejected"] >= 5, "INFO infer counts rejections")
    finally:
        srv.stop()
    log_clean(srv)


def test_reload_under_load(srv):
    """INFER.LOAD of the name in use, repeatedly under 4 busy clients: no request fails, all correct."""
    c = srv.r
    want = gen(c, "Once upon a time", 200)
    busy = Busy(4, 6, lambda: client(srv), lambda cc: gen(cc, "Once upon a time", 200))
    for _ in range(6):
        eq(c.execute_command("INFER.LOAD", "s", "s.gguf"), b"OK", "reload")
        time.sleep(0.03)
    errors, results = busy.join(300 * SLOW).errors, busy.results
    check(not errors, "failed requests: %r" % errors[:3])
    eq(len(results), 24, "every request answered")
    check(all(r == want for r in results), "every answer equals the solo text")
    names = sorted(m[1] for m in c.execute_command("INFER.MODELS"))
    eq(names, [b"s", b"slow"], "registered names after the reloads")
    eq(info(c)["infer_in_flight"], 0, "nothing in flight")


def test_prefix_cache(srv):
    """A second request sharing a long prompt prefix reuses its KV blocks (reused_tokens, hit rate)."""
    prefix = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park " * 3
    base = info(srv.r)
    gen(srv.r, prefix + "with her dog.", 5)
    rc = RawClient(srv.port, timeout=60 * SLOW)
    rc.call("HELLO", "3")
    t, pairs = rc.call("INFER.GENERATE", "s", prefix + "with her cat.", "MAXTOKENS", "5", "TEMPERATURE", "0")
    rc.close()
    m = {k[1].decode(): v for k, v in pairs}
    check(m["reused_tokens"][1] >= 32, "reused %r of %r prompt tokens" % (m["reused_tokens"], m["prompt_tokens"]))
    now = info(srv.r)
    check(now["infer_prefix_hit_rate"] > 0 and now["infer_kv_blocks_cached"] > 0,
          "INFO infer shows prefix hits: %r -> %r" % (base["infer_prefix_hit_rate"], now["infer_prefix_hit_rate"]))


def splits_char(a, b):
    """True when a ends with the start of a UTF-8 character that b's first
    bytes complete (the engine may pass on invalid bytes a random model
    emits, but never cuts a valid character in two)."""
    for back in range(1, min(4, len(a)) + 1):
        lead = a[-back]
        if lead & 0xC0 == 0x80:
            continue
        need = 2 if lead & 0xE0 == 0xC0 else 3 if lead & 0xF0 == 0xE0 else 4 if lead & 0xF8 == 0xF0 else 1
        missing = need - back
        return missing > 0 and len(b) >= missing and all(x & 0xC0 == 0x80 for x in b[:missing])
    return False


def test_stream(srv):
    """STREAM: an XREAD BLOCK reader sees tokens before generation ends; entries concatenate to the answer."""
    c = srv.r
    seen = {}

    def reader():
        rr = client(srv)
        got = rr.xread({"answer": "0-0"}, block=60000 * SLOW)
        seen["first"] = got
        seen["gen_done_then"] = bg.done.is_set()

    bg = None
    rt = threading.Thread(target=reader)
    bg = Background(lambda: gen(client(srv), "Once upon a time", 600, "STREAM", "answer", model="slow"))
    rt.start()
    rt.join(120 * SLOW)
    bg.join()
    check(bg.error is None, "generation failed: %r" % bg.error)
    check(seen.get("first"), "the reader got entries")
    check(seen["gen_done_then"] is False, "the first entries arrived while generation was still running")
    ents = c.xrange("answer")
    texts = [f[b"text"] for _, f in ents if b"text" in f]
    eq(b"".join(texts), bg.result, "concatenated stream text")
    check(len(texts) > 10, "one entry per piece (%d)" % len(texts))
    for i in range(len(texts) - 1):
        check(not splits_char(texts[i], texts[i + 1]), "entry %d ends inside a character the next completes" % i)
    eq(ents[-1][1].get(b"finish"), b"length", "final entry: finish reason")
    eq(ents[-1][1].get(b"tokens"), b"600", "final entry: token count")
    c.set("str", "x")
    e = err_of(lambda: gen(c, "Once", 5, "STREAM", "str"))
    check(e is not None and e.startswith("WRONGTYPE"), "STREAM into a string key: %s" % e)


def test_store_and_keys(srv):
    """STORE sets the answer; PROMPTKEY/TOKENSKEY read copies; wrong types and missing keys refused."""
    c = srv.r
    a = gen(c, "Once upon a time", 25, "STORE", "ans")
    eq(c.get("ans"), a, "STORE")
    c.set("p", "Once upon a time")
    eq(c.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "p", "MAXTOKENS", 25, "TEMPERATURE", 0), a, "PROMPTKEY")
    ids = c.execute_command("INFER.TOKENIZE", "s", "Once upon a time")
    c.set("toks", b"".join(struct.pack("<I", i) for i in ids))
    eq(c.execute_command("INFER.GENERATE", "s", "TOKENSKEY", "toks", "MAXTOKENS", 25, "TEMPERATURE", 0), a,
       "TOKENSKEY ids generate what the text generates")
    eq(c.execute_command("INFER.DETOKENIZE", "s", *ids).strip(), b"Once upon a time", "DETOKENIZE round trip")
    c.rpush("alist", "x")
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "alist"))
    check(e is not None and e.startswith("WRONGTYPE"), "PROMPTKEY on a list: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "missing"))
    check(e is not None and "no such key" in e, "PROMPTKEY on a missing key: %s" % e)
    # the prompt is copied at submit: overwriting the key mid-request changes nothing
    want = gen(c, "Once upon a time", 600, model="slow")
    c.set("p", "Once upon a time")
    bg = Background(lambda: client(srv).execute_command("INFER.GENERATE", "slow", "PROMPTKEY", "p",
                                                         "MAXTOKENS", 600, "TEMPERATURE", 0))
    wait_until(lambda: info(c)["infer_in_flight"] >= 1)
    c.set("p", "Something else entirely " * 20)
    c.flushall()
    bg.join()
    check(bg.error is None, "PROMPTKEY request failed: %r" % bg.error)
    eq(bg.result, want, "PROMPTKEY overwritten and flushed mid-request")


def test_models_alias_unload(srv):
    """INFER.MODELS fields; ALIAS names one model twice; UNLOAD mid-request lets it finish."""
    c = srv.r
    eq(c.execute_command("INFER.LOAD", "a1", "s.gguf", "CONTEXT", "512", "ALIAS", "a2", "a3"), b"OK", "LOAD ALIAS")
    ms = {}
    for m in c.execute_command("INFER.MODELS"):
        d = {m[i].decode(): m[i + 1] for i in range(0, len(m), 2)}
        ms[d["name"].decode()] = d
    check({"a1", "a2", "a3"} <= set(ms), "aliases listed: %r" % sorted(ms))
    eq(ms["a2"]["context"], 512, "CONTEXT applied")
    check(ms["a1"]["arch"] == b"llama" and ms["a1"]["parameters"] > 0 and ms["a1"]["bytes"] > 0 and
          ms["a1"]["requests"] == 0 and ms["a1"]["type"], "fields: %r" % ms["a1"])
    eq(gen(c, "Once", 20, model="a3"), gen(c, "Once", 20), "an alias generates like the name")
    for n in ("a1", "a2", "a3"):
        eq(c.execute_command("INFER.UNLOAD", n), b"OK", "unload " + n)
    bg = Background(lambda: gen(client(srv), "Once upon a time", 800, model="slow"))
    wait_until(lambda: info(c)["infer_in_flight"] >= 1)
    eq(c.execute_command("INFER.UNLOAD", "slow"), b"OK", "UNLOAD while generating")
    check(bg.join().error is None and len(bg.result) > 0, "the request finishes on the unloaded model")
    e = err_of(lambda: gen(c, "x", 5, model="slow"))
    check(e is not None and "no such model" in e, "unloaded model gone: %s" % e)
    c.execute_command("INFER.LOAD", "slow", "slow.gguf", "CONTEXT", "4096")


def test_hostile_arguments(srv):
    """Bad numbers, options, token data: each a clear error; the server lives."""
    c = srv.r
    bad = [
        (["MAXTOKENS", 0], "MAXTOKENS"), (["MAXTOKENS", -1], "MAXTOKENS"), (["MAXTOKENS", -9999999], "MAXTOKENS"),
        (["MAXTOKENS", "abc"], "MAXTOKENS"), (["MAXTOKENS", "99999999999999999999999"], "MAXTOKENS"),
        (["MAXTOKENS", 100000], "MAXTOKENS"), (["TEMPERATURE", "nan"], "TEMPERATURE"),
        (["TEMPERATURE", -1], "TEMPERATURE"), (["TOPK", -1], "TOPK"), (["TOPP", 0], "TOPP"),
        (["TOPP", 1.5], "TOPP"), (["MINP", 2], "MINP"), (["REPEAT-PENALTY", 0], "REPEAT-PENALTY"),
        (["SEED", -1], "SEED"), (["SEED", "184467440737095516160"], "SEED"), (["TIMEOUT", -5], "TIMEOUT"),
        (["STOP", ""], "STOP"), (["BOGUS", 1], "syntax error: unknown option 'BOGUS'"),
        (["MAXTOKENS"], "syntax error: no value after 'MAXTOKENS'"),
    ]
    for extra, word in bad:
        e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "hi", *extra))
        check(e is not None and word in e, "%r -> %s" % (extra, e))
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "s"))
    check(e is not None and "wrong number" in e, "arity: %s" % e)
    for val, word in ((b"\x01\x00\x00\x00\x02", "4-byte"), (b"", "4-byte"), (struct.pack("<II", 1, 10 ** 6),
                      "out of range"), (struct.pack("<I", 0xFFFFFFFF), "out of range")):
        c.set("t", val)
        e = err_of(lambda: c.execute_command("INFER.GENERATE", "s", "TOKENSKEY", "t"))
        check(e is not None and word in e, "TOKENSKEY %r -> %s" % (val, e))
    for args, word in ((["s", 1, 999999], "token id"), (["s", "-1"], "token id"), (["s", "x"], "token id")):
        e = err_of(lambda: c.execute_command("INFER.DETOKENIZE", *args))
        check(e is not None and word in e, "DETOKENIZE %r -> %s" % (args, e))
    e = err_of(lambda: c.execute_command("INFER.GENERATE", "nosuch", "hi"))
    check(e is not None and "no such model" in e, "unknown model: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.LOAD", "t", "s.gguf", "CONTEXT", 0))
    check(e is not None and "CONTEXT" in e, "CONTEXT 0: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.LOAD", "t", "s.gguf", "BOGUS"))
    check(e is not None and "unknown option 'BOGUS'" in e, "unknown LOAD option: %s" % e)
    p = c.pipeline(transaction=True)
    p.execute_command("INFER.GENERATE", "s", "hi", "MAXTOKENS", 5)
    res = p.execute(raise_on_error=False)
    check(isinstance(res[0], redis.exceptions.ResponseError) and "MULTI" in str(res[0]),
          "inside MULTI/EXEC: refused, not left hanging (%r)" % res)
    eq(c.ping(), True, "alive")


def test_hostile_paths_and_files(srv):
    """Paths outside infer-models-dir (absolute, ..), missing and corrupted files: clear errors."""
    c = srv.r
    for p in ("../" + os.path.basename(OUTSIDE), OUTSIDE, os.path.join(MODELS, "s.gguf"), "sub/../../x.gguf",
              "..", "", "/etc/passwd"):
        e = err_of(lambda: c.execute_command("INFER.LOAD", "x", p))
        check(e is not None and ("infer-models-dir" in e or "invalid" in e), "INFER.LOAD %r -> %s" % (p, e))
    e = err_of(lambda: c.execute_command("INFER.LOAD", "x", "nosuch.gguf"))
    check(e is not None and e.startswith("cannot load model"), "missing file: %s" % e)
    bad = os.path.join(MODELS, "bad.gguf")
    with open(bad, "wb") as f:
        f.write(b"GGUF" + os.urandom(300))
    e = err_of(lambda: c.execute_command("INFER.LOAD", "x", "bad.gguf"))
    check(e is not None and e.startswith("cannot load model"), "random bytes after the magic: %s" % e)
    with open(os.path.join(MODELS, "s.gguf"), "rb") as f:
        data = bytearray(f.read())
    for cut in (len(data) // 2, 100):
        with open(bad, "wb") as f:
            f.write(data[:cut])
        e = err_of(lambda: c.execute_command("INFER.LOAD", "x", "bad.gguf"))
        check(e is not None and e.startswith("cannot load model"), "truncated to %d bytes: %s" % (cut, e))
    os.unlink(bad)
    names = [m[1] for m in c.execute_command("INFER.MODELS")]
    check(b"x" not in names, "no model registered by a refused load")
    eq(c.ping(), True, "alive")


def test_shutdown_busy():
    """SHUTDOWN with generations in flight and a load running: the engines stop, the process exits cleanly."""
    srv = start("--infer-max-batch", "2")
    try:
        srv.r.execute_command("INFER.LOAD", "slow", "slow.gguf", "CONTEXT", "4096")
        bgs = [Background(lambda: gen(client(srv), "Once upon a time", 3000, model="slow")) for _ in range(4)]
        check(wait_until(lambda: info(srv.r)["infer_in_flight"] >= 4), "4 requests in flight")
        loader = RawClient(srv.port, timeout=30 * SLOW)
        loader.send("INFER.LOAD", "other", "slow.gguf")  # a load thread running too
        try:
            client(srv).shutdown(nosave=True)
        except redis.exceptions.ConnectionError:
            pass
        eq(srv.proc.wait(30 * SLOW), 0, "exit status")
        for b in bgs:
            b.join()
        check(all(b.error is not None or b.result is not None for b in bgs), "every client saw an answer or EOF")
    finally:
        srv.stop()
    log_clean(srv)


def _pings(c):
    try:
        return c.ping()
    except redis.exceptions.ConnectionError:
        return False


def test_config():
    """infer-* options: command line, CONFIG GET/SET, range checks; models dir confinement switchable."""
    srv = start("--infer-max-queue", "7", "--infer-kv-memory", "8mb", "--infer-default-timeout", "1")
    try:
        c = srv.r
        got = c.config_get("infer-*")
        eq(got["infer-max-queue"], "7", "from the command line")
        eq(got["infer-kv-memory"], str(8 * 1024 * 1024), "memory units")
        eq(got["infer-models-dir"], os.path.realpath(MODELS), "models dir")
        check(set(got) >= {"infer-threads", "infer-max-batch", "infer-default-timeout"}, "all listed: %r" % got)
        c.execute_command("INFER.LOAD", "slow", "slow.gguf", "CONTEXT", "4096")
        e = err_of(lambda: gen(c, "Once", 900, model="slow"))
        check(e is not None and e.startswith("TIMEOUT"), "infer-default-timeout 1 applies: %s" % e)
        e = err_of(lambda: gen(c, "Once", 2000, model="slow"))
        check(e is not None and "KV budget" in e, "infer-kv-memory 8mb bounds a request: %s" % e)
        c.config_set("infer-default-timeout", 0)
        check(len(gen(c, "Once", 20, model="slow")) > 0, "CONFIG SET infer-default-timeout 0: no timeout")
        for k, v in (("infer-threads", "-1"), ("infer-max-queue", "0"), ("infer-max-batch", "x"),
                     ("infer-models-dir", "/nonexistent/dir")):
            e = err_of(lambda: c.config_set(k, v))
            check(e is not None, "CONFIG SET %s %s refused" % (k, v))
        c.config_set("infer-default-max-tokens", 3)
        eq(c.execute_command("INFER.GENERATE", "slow", "Once", "TEMPERATURE", 0), gen(c, "Once", 3, model="slow"),
           "infer-default-max-tokens 3 is the MAXTOKENS of a request that gives none")
        for k, v in (("infer-default-max-tokens", "0"), ("infer-max-loads", "0"), ("infer-nice", "20")):
            e = err_of(lambda: c.config_set(k, v))
            check(e is not None, "CONFIG SET %s %s refused" % (k, v))
        c.config_set("infer-max-loads", 1)
        c.config_set("infer-nice", 10)
        eq(c.config_get("infer-idle-priority")["infer-idle-priority"], "yes", "infer-idle-priority defaults to yes")
        c.config_set("infer-idle-priority", "no")
        eq(c.config_get("infer-idle-priority")["infer-idle-priority"], "no", "CONFIG SET infer-idle-priority no")
        check(err_of(lambda: c.config_set("infer-idle-priority", "maybe")) is not None,
              "CONFIG SET infer-idle-priority maybe refused")
        eq({k: v for k, v in c.config_get("infer-*").items() if k in ("infer-max-loads", "infer-nice")},
           {"infer-max-loads": "1", "infer-nice": "10"}, "CONFIG SET infer-max-loads / infer-nice")
        c.config_set("infer-max-batch", 4)
        eq(c.config_get("infer-max-batch")["infer-max-batch"], "4", "CONFIG SET infer-max-batch")
        c.config_set("infer-models-dir", "")
        e = err_of(lambda: c.execute_command("INFER.LOAD", "x", "s.gguf"))
        check(e is not None and "infer-models-dir" in e, "no models dir: loading disabled (%s)" % e)
    finally:
        srv.stop()
    log_clean(srv)
    # the same options from a config file
    port = server_harness.free_port()
    conf = os.path.join(MODELS, "..", os.path.basename(MODELS) + ".conf")
    with open(conf, "w") as f:
        f.write("port %d\nbind 127.0.0.1\nsave \"\"\ninfer-max-queue 9\ninfer-max-batch 3\n"
                "infer-models-dir %s\n" % (port, MODELS))
    proc = subprocess.Popen([server_harness.SERVER, conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        c = redis.Redis(host="127.0.0.1", port=port, socket_timeout=30)
        check(wait_until(lambda: _pings(c)), "server with a config file answers")
        got = c.config_get("infer-*")
        check(got["infer-max-queue"] == "9" and got["infer-max-batch"] == "3" and
              got["infer-models-dir"] == os.path.realpath(MODELS), "from the config file: %r" % got)
    finally:
        proc.terminate()
        proc.wait(30)
        os.unlink(conf)
    bad = subprocess.run([server_harness.SERVER, "--port", "0", "--infer-threads", "999"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=10)
    check(bad.returncode != 0 and b"infer-threads" in bad.stdout, "bad option on the command line refused")


def _task_stat(pid, tid, i):
    try:
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            return int(f.read().rsplit(")", 1)[1].split()[i])
    except (FileNotFoundError, ProcessLookupError):
        return None


def test_engine_priority(srv):
    """Engine threads run in SCHED_IDLE at nice 5 (infer-idle-priority yes, infer-nice 5), the event loop as it was."""
    pid = srv.proc.pid
    before = set(os.listdir("/proc/%d/task" % pid))
    c = srv.r
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(RawClient.encode("INFER.GENERATE", "slow", "Once upon a time", "MAXTOKENS", "4000"))
    check(wait_until(lambda: info(c)["infer_in_flight"] == 1), "generation running")
    time.sleep(0.1)  # pool workers take the priority at their next task
    engine = [t for t in os.listdir("/proc/%d/task" % pid) if t != str(pid)]
    pol = {t: _task_stat(pid, t, 38) for t in engine}
    nic = {t: _task_stat(pid, t, 16) for t in engine}
    s.close()
    check(wait_until(lambda: info(c)["infer_in_flight"] == 0), "cancelled by the disconnect")
    eq(_task_stat(pid, str(pid), 38), 0, "event loop in SCHED_OTHER")
    eq(_task_stat(pid, str(pid), 16), 0, "event loop at nice 0")
    idle = [t for t in engine if pol[t] == 5]
    # slow's pool (infer-threads 1: the scheduler thread computes) and s's
    check(len(idle) >= 2 and all(nic[t] == 5 for t in idle),
          "engine threads in SCHED_IDLE at nice 5: policies %r nices %r (threads before: %d)" % (pol, nic, len(before)))


def test_command_info_acl(srv):
    """COMMAND INFO describes INFER.*; they are in the @infer ACL category."""
    c = srv.r
    rc = RawClient(srv.port)
    names = sorted(x[1].decode() for x in rc.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "infer")[1])
    rc.close()
    eq(names, sorted(["infer.load", "infer.unload", "infer.models", "infer.generate", "infer.embed", "infer.rag",
                      "infer.answer", "infer.tokenize", "infer.detokenize", "infer.stats", "infer.vsetrestore"]),
       "@infer members")
    rc = RawClient(srv.port)
    ci = [x[1] for x in rc.call("COMMAND", "INFO", "infer.generate")[1][0][1]]
    rc.close()
    eq(ci[0], b"infer.generate", "name")
    eq(ci[1], -3, "arity")
    flags, cats = [x[1] for x in ci[2]], [x[1] for x in ci[6]]
    check("@infer" in cats and "blocking" in flags, "flags %r categories %r" % (flags, cats))
    st = c.execute_command("INFER.STATS")
    d = {st[i].decode(): st[i + 1] for i in range(0, len(st), 2)}
    inf = info(c)
    check(all("infer_" + k in inf for k in d), "INFO infer has every INFER.STATS field")
    eq(inf["infer_models"], d["models"], "same figures")


def log_clean(srv):
    """No sanitizer report and a clean exit in the server's log."""
    with open(os.path.join(srv.dir, "server.log"), errors="replace") as f:
        log = f.read()
    shutil.rmtree(srv.dir, ignore_errors=True)
    bad = "Sanitizer" in log or "runtime error:" in log or srv.proc.returncode not in (0, None)
    if bad:
        print(log[-6000:])
    check(not bad, "exit status %r, sanitizer report or crash in the log" % srv.proc.returncode)


def stop_and_check(t, srv):
    srv.stop()

    def server_log_clean(s=srv):
        log_clean(s)
    t.run(server_log_clean)


def main():
    t = Tally()
    if not os.path.exists(server_harness.SERVER):
        print("SKIP: %s not built" % server_harness.SERVER)
        print("0 passed, 0 failed, 1 skipped")
        return
    if not os.path.exists(GEN) or not os.path.exists(CLI):
        print("SKIP: %s or %s not built" % (GEN, CLI))
        print("0 passed, 0 failed, 1 skipped")
        return
    try:
        print("models: %s" % setup_models())
        srv = start()
        try:
            srv.r.execute_command("INFER.LOAD", "s", "s.gguf")
            srv.r.execute_command("INFER.LOAD", "slow", "slow.gguf", "CONTEXT", "4096")
            for fn in (test_greedy_equals_cli, test_resp3_map, test_answered_commands_free_their_arguments,
                       test_concurrent_32, test_seeded_sampling,
                       test_disconnect_frees_kv, test_client_unblock, test_reload_under_load, test_prefix_cache, test_stream,
                       test_store_and_keys, test_models_alias_unload, test_hostile_arguments,
                       test_hostile_paths_and_files, test_engine_priority, test_command_info_acl):
                t.run(fn, srv)
            def server_still_running(s=srv):
                check(s.alive(), "server still running")
            t.run(server_still_running)
        finally:
            stop_and_check(t, srv)
        t.run(test_queue_full)
        t.run(test_shutdown_busy)
        t.run(test_config)
    finally:
        shutil.rmtree(MODELS, ignore_errors=True)
        if os.path.exists(OUTSIDE):
            os.unlink(OUTSIDE)
    t.done()


if __name__ == "__main__":
    main()
