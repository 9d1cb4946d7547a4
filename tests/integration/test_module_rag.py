"""test_module_rag.py - INFER.EMBED and INFER.RAG of inferkv.so inside
Debian's stock redis-server 7.0.15 (with the module's vector sets).

Models as in test_server_rag.py: stories260K ("s", and "small" with a
256-token context), a gguf-gen tiny-bert encoder ("e"), a MiniLM-shaped
encoder ("slowe") where an embedding must last, and the larger gguf-gen
generator ("slow") where a generation must.

Checks: kinds and the errors across them; INFER.EMBED's reply shapes and
batching across 16 concurrent clients; INTO through the server's VADD,
replicated as that VADD (a replica with no model gets the vector) and
refused without write permission on the key; INFER.RAG's sources equal
VSIM on INFER.EMBED's vector and its answer INFER.GENERATE on its prompt;
changes between two calls show in the second, changes during the
generation do not alter the first; the calling user's key permissions
apply to the vector set, the chunk keys and the TEMPLATE key (the
retrieval reads through a detached context on the main thread); hostile
input gets clear errors; a full queue answers at once; a disconnect
cancels; INFER.ANSWER given RAG's chunks gives RAG's prompt, answer and
chunk states, declares its keys past the chunk texts, and its TEMPLATE key
is under the caller's ACL; the server log stays clean.
Prints "N passed, N failed, N skipped"; exits 1 on failure.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import (LoggedProcess, RawClient, Tally, err_of, free_port, gen,  # noqa: E402
                            wait_up)

import redis  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
MODULE = os.path.abspath(os.environ.get("INFERKV_MODULE", os.path.join(BUILD, "inferkv.so")))
PRELOAD = os.environ.get("INFERKV_PRELOAD", "")
# sanitizer builds (a preloaded runtime) compute several times slower
SLOW = int(os.environ.get("INFERKV_TEST_SLOWDOWN", "4" if PRELOAD else "1"))
GEN = os.path.join(BUILD, "gguf-gen")
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
BERT_VOCAB = os.path.join(SHARED, "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

TALLY = Tally()


def wait_until(pred, timeout=10):
    return server_harness.wait_until(pred, timeout * SLOW)


class Background(server_harness.Background):
    join_timeout = 300 * SLOW
check = TALLY.expect
MODELS = tempfile.mkdtemp(prefix="inferkv-modrag-models-")

DOCS = [
    "The cat sat on the warm mat by the door.",
    "Dogs bark loudly at strangers in the night.",
    "Birds fly south when the winter comes.",
    "The river runs fast after the spring rain.",
    "Bread is baked early in the morning by the baker.",
    "The old ship sailed across the stormy sea.",
    "Children play football in the park after school.",
    "The moon shines bright over the quiet village.",
    "Apples and pears grow in the orchard on the hill.",
    "The train to the city leaves at seven o'clock.",
    "Snow covers the mountains for most of the year.",
    "The library keeps thousands of old books.",
]


class ModServer(LoggedProcess):
    """redis-server with inferkv.so (vector sets on) and the test models loaded."""

    def __init__(self, *opts, load=True, models=True):
        self.dir = tempfile.mkdtemp(prefix="inferkv-modrag-")
        self.port = free_port()
        cmd = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", self.dir, "--loadmodule", MODULE, "infer-threads", "1"]
        if models:
            cmd += ["infer-models-dir", MODELS]
        cmd += list(opts)
        env = dict(os.environ)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
        super().__init__(cmd, os.path.join(self.dir, "redis.log"), env=env)
        if not wait_up(self.proc, lambda: self.client().ping(), 10, redis.exceptions.ConnectionError):
            raise RuntimeError("redis-server did not start:\n" + self.log_text())
        if load:
            c = self.client()
            for name, path, extra in (("s", "s.gguf", []), ("small", "s.gguf", ["CONTEXT", 256]),
                                      ("e", "e.gguf", []), ("slowe", "slowe.gguf", []),
                                      ("slow", "slow.gguf", ["CONTEXT", 4096])):
                c.execute_command("INFER.LOAD", name, path, *extra)

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=120 * SLOW, **kw)

    def stats(self):
        return pairs(self.client().execute_command("INFER.STATS"))

    def stop(self):
        if self.proc.poll() is not None and self.proc.returncode != 0:
            print("redis-server exited with status %d; log tail:" % self.proc.returncode)
            print("\n".join(self.log_text().splitlines()[-400:]))
        self.stop_process(10)
        log = self.log_text()
        bad = ("ERROR: AddressSanitizer", "WARNING: ThreadSanitizer", "runtime error:", "crashed by signal")
        check(not any(b in log for b in bad), "no crash or sanitizer report in the server log (port %d)" % self.port)
        if any(b in log for b in bad):
            print(log[-6000:])
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def pairs(flat):
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def floats(blob):
    return list(struct.unpack("<%df" % (len(blob) // 4), blob))


def emb_blob(c, text, model="e"):
    return c.execute_command("INFER.EMBED", model, text, "FP32")[0]


def rag(c, q, *extra, vset="docs", gen_model="s", enc="e"):
    return pairs(c.execute_command("INFER.RAG", gen_model, enc, vset, q, *extra))


def jstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_corpus(c, key="docs"):
    c.delete(key)
    for i, d in enumerate(DOCS):
        c.execute_command("INFER.EMBED", "e", "INTO", key, "doc%d" % i, d, "SETATTR",
                          '{"text": %s, "year": %d}' % (jstr(d), 1990 + i))


def setup_models():
    if os.path.exists(STORIES):
        shutil.copy(STORIES, os.path.join(MODELS, "s.gguf"))
    else:
        subprocess.run([GEN, "--preset", "stories260k", "-q", "-o", os.path.join(MODELS, "s.gguf")], check=True)
    if not os.path.exists(BERT_VOCAB):
        return "no BERT vocabulary at %s" % BERT_VOCAB
    enc = os.environ.get("INFERKV_RAG_ENCODER")
    if enc:
        shutil.copy(enc, os.path.join(MODELS, "e.gguf"))
    elif subprocess.run([GEN, "--preset", "tiny-bert", "--vocab", BERT_VOCAB, "-q", "-o",
                         os.path.join(MODELS, "e.gguf")], stderr=subprocess.DEVNULL).returncode != 0:
        return "gguf-gen has no tiny-bert preset"
    subprocess.run([GEN, "--preset", "minilm-l6", "--vocab", BERT_VOCAB, "-q", "-o",
                    os.path.join(MODELS, "slowe.gguf")], check=True)
    subprocess.run([GEN, "--preset", "tiny-llama", "--layers", "8", "--embd", "512", "--heads", "8", "--ffn",
                    "1536", "--ctx", "4096", "--type", "q8_0", "--seed", "7", "-q", "-o",
                    os.path.join(MODELS, "slow.gguf")], check=True)
    words = ["alpha", "river", "stone", "green", "quick", "house", "light", "tree", "ocean", "cloud"]
    with open(os.path.join(MODELS, "long.txt"), "w") as f:
        f.write(" ".join(words[(i * 7 + i // 3) % len(words)] for i in range(20000)))
    return None


def long_text(n=16000):
    with open(os.path.join(MODELS, "long.txt")) as f:
        return f.read()[:n]


# ---------------------------------------------------------------------------


def test_kinds_and_shapes(srv):
    print("kinds, reply shapes, batching across clients")
    c = srv.client()
    ms = {pairs(m)["name"]: pairs(m) for m in c.execute_command("INFER.MODELS")}
    check(ms[b"e"]["kind"] == b"encoder" and ms[b"s"]["kind"] == b"generator" and ms[b"e"]["dim"] > 0,
          "INFER.MODELS shows kind and dim")
    e = err_of(lambda: gen(c, "hi", 5, model="e"))
    check(e is not None and "encoder" in e, "GENERATE on an encoder: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.EMBED", "s", "hi"))
    check(e is not None and "not an encoder" in e, "EMBED on a generator: %s" % e)
    texts = ["hello world", "the cat sat on the mat"]
    blobs = [floats(b) for b in c.execute_command("INFER.EMBED", "e", *texts, "FP32")]
    dbl = c.execute_command("INFER.EMBED", "e", *texts)
    check(len(blobs) == 2 and len(blobs[0]) == ms[b"e"]["dim"], "one vector of dim floats per text")
    check(all(float(x) == y for v, d in zip(blobs, dbl) for x, y in zip(d, v)), "RESP2 doubles = FP32 floats")
    rc = RawClient(srv.port)
    rc.call("HELLO", "3")
    t, vecs = rc.call("INFER.EMBED", "e", texts[0])
    rc.close()
    check(t == "*" and all(x[0] == "," for x in vecs[0][1]), "RESP3 doubles")
    jobs = ["client %d: %s" % (i, DOCS[i % len(DOCS)]) for i in range(16)]
    alone = {j: emb_blob(c, j) for j in jobs}
    bgs = [Background(lambda j=j: emb_blob(srv.client(), j)) for j in jobs]
    for b in bgs:
        b.join()
    check(all(b.error is None and b.result == alone[j] for j, b in zip(jobs, bgs)),
          "16 concurrent clients get their solo vectors")


def test_into_and_replication(srv):
    print("INTO: VADD as the user, replicated as VADD (the replica has no model)")
    c = srv.client()
    rep = ModServer("--replicaof", "127.0.0.1", str(srv.port), load=False, models=False)
    try:
        rc = rep.client()
        check(wait_until(lambda: rc.info("replication").get("master_link_status") == "up", 20), "replica in sync")
        c.delete("iv")
        v = floats(emb_blob(c, "the cat sat on the mat"))
        check(c.execute_command("INFER.EMBED", "e", "INTO", "iv", "a", "the cat sat on the mat", "NOQUANT",
                                "SETATTR", '{"k": 1}') == 1, "INTO answers VADD's 1")
        check(c.execute_command("INFER.EMBED", "e", "INTO", "iv", "a", "the cat sat on the mat", "NOQUANT") == 0,
              "and 0 for an update")
        got = [float(x) for x in c.execute_command("VEMB", "iv", "a")]
        check(all(abs(x - y) < 1e-5 for x, y in zip(got, v)), "VEMB gives the embedding back")
        check(wait_until(lambda: rc.execute_command("VCARD", "iv") == 1, 10), "the replica has the element")
        rgot = [float(x) for x in rc.execute_command("VEMB", "iv", "a")]
        check(rgot == got and rc.execute_command("VGETATTR", "iv", "a") == b'{"k": 1}',
              "with the same vector and attributes, without the model")
    finally:
        rep.stop()
    c.set("str", "x")
    e = err_of(lambda: c.execute_command("INFER.EMBED", "e", "INTO", "str", "b", "x"))
    check(e is not None and e.startswith("WRONGTYPE"), "WRONGTYPE: %s" % e)
    c.execute_command("VADD", "v3", "VALUES", 3, 1, 0, 0, "x")
    e = err_of(lambda: c.execute_command("INFER.EMBED", "e", "INTO", "v3", "b", "x"))
    check(e is not None and "dimension mismatch" in e, "dimension mismatch: %s" % e)
    c.execute_command("ACL", "SETUSER", "ro", "on", "nopass", "resetkeys", "%R~*", "%W~w:*", "+@all")
    u = srv.client(username="ro", password="x")
    e = err_of(lambda: u.execute_command("INFER.EMBED", "e", "INTO", "iv", "b", "x"))
    check(e is not None and "no permissions" in e, "INTO without write permission: %s" % e)
    check(u.execute_command("INFER.EMBED", "e", "INTO", "w:iv", "b", "x") == 1, "INTO a key the user may write")


def check_matches(c, q, *extra):
    m = rag(c, q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 24, "TEMPERATURE", 0, *extra)
    count = 5
    filt = []
    for i in range(len(extra) - 1):
        if str(extra[i]).upper() == "COUNT":
            count = int(extra[i + 1])
        if str(extra[i]).upper() == "FILTER":
            filt = ["FILTER", extra[i + 1]]
    vs = c.execute_command("VSIM", "docs", "FP32", emb_blob(c, q), "WITHSCORES", "COUNT", count, *filt)
    check([(s[0], s[1]) for s in m["sources"]] == [(vs[i], vs[i + 1]) for i in range(0, len(vs), 2)],
          "RAG %r: sources = VSIM on INFER.EMBED's vector" % q)
    chat = [x for x in extra if str(x).upper() == "CHAT"]
    check(m["text"] == gen(c, m["prompt"], 24, *chat), "RAG %r: answer = GENERATE on its prompt" % q)
    return m


def test_rag(srv):
    print("INFER.RAG = VSIM + INFER.GENERATE; snapshots; templates; chunk keys")
    c = srv.client()
    load_corpus(c)
    for q in ("Where did the cat sit?", "winter snow", "books"):
        m = check_matches(c, q)
        check(m["chunks_used"] == 5 and m["chunks_retrieved"] == 5, "5 chunks used")
    check_matches(c, "village", "COUNT", 3, "FILTER", ".year > 1995")
    check_matches(c, "village", "CHAT")
    # between two calls
    m1 = rag(c, "cat", "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 3, "TEMPERATURE", 0)
    top = m1["sources"][0][0]
    c.execute_command("VSETATTR", "docs", top, '{"text": "REWRITTEN"}')
    m2 = rag(c, "cat", "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 3, "TEMPERATURE", 0)
    check(b"REWRITTEN" in m2["prompt"], "a change between two calls shows in the second")
    c.execute_command("VREM", "docs", top)
    m3 = rag(c, "cat", "WITHSOURCES", "MAXTOKENS", 3, "TEMPERATURE", 0)
    check(top not in [s[0] for s in m3["sources"]], "a deletion too")
    # during the generation
    load_corpus(c)
    c.delete("rs")
    m0 = rag(c, "cat", "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 1, "TEMPERATURE", 0, gen_model="slow")
    bg = Background(lambda: pairs(srv.client().execute_command(
        "INFER.RAG", "slow", "e", "docs", "cat", "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 300, "TEMPERATURE", 0,
        "STREAM", "rs")))
    check(wait_until(lambda: c.xlen("rs") >= 1, 60), "generation under way")
    c.execute_command("VSETATTR", "docs", m0["sources"][0][0], '{"text": "CHANGED"}')
    c.execute_command("VREM", "docs", m0["sources"][1][0])
    bg.join()
    check(bg.error is None and bg.result["prompt"] == m0["prompt"], "writes during the generation change nothing")
    text = b"".join(e[1][b"text"] for e in c.xrange("rs") if b"text" in e[1])
    check(bg.error is None and text == bg.result["text"], "STREAM entries concatenate to the answer")
    # cut to the context
    c.delete("long")
    for i, d in enumerate(DOCS[:6]):
        c.execute_command("INFER.EMBED", "e", "INTO", "long", "L%d" % i, d, "SETATTR", '{"text": %s}' % jstr(
            (d + " ") * 6))
    m = rag(c, "cat", "COUNT", 6, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 40, "TEMPERATURE", 0, vset="long",
            gen_model="small")
    k = m["chunks_used"]
    check(0 < k < 6 and [s[2] for s in m["sources"]] == [b"used"] * k + [b"cut"] * (6 - k),
          "the lowest-ranked chunks are cut to fit (%d used)" % k)
    check(m["text"] == gen(c, m["prompt"], 40, model="small"), "and the answer is GENERATE's on that prompt")
    # template and chunk keys
    c.set("tpl", "{context}\nQ: {question}\nA:")
    c.set("ck:0", "Fresh bread comes from the bakery.")
    c.hset("ck:1", mapping={"text": "Bakers bake bread before dawn."})
    c.delete("kd")
    for i in range(3):
        c.execute_command("INFER.EMBED", "e", "INTO", "kd", "k%d" % i, "bread %d" % i, "SETATTR",
                          '{"src": "ck:%d"}' % i)
    m = rag(c, "bread", "CONTEXTKEY-FIELD", "src", "TEMPLATE", "tpl", "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 5,
            "TEMPERATURE", 0, vset="kd")
    st = {s[0]: s[2] for s in m["sources"]}
    check(st == {b"k0": b"used", b"k1": b"used", b"k2": b"no-text"}, "string, hash and missing chunk keys: %r" % st)
    check(m["prompt"].endswith(b"\nQ: bread\nA:") and b"Fresh bread" in m["prompt"], "the TEMPLATE key is used")


def test_answer(srv):
    print("INFER.ANSWER on RAG's chunks = INFER.RAG; its keys and ACL")
    c = srv.client()
    load_corpus(c)
    c.set("tpl", "{context}\nQ: {question}\nA:")
    c.delete("long")
    for i, d in enumerate(DOCS[:6]):
        c.execute_command("INFER.EMBED", "e", "INTO", "long", "L%d" % i, d, "SETATTR", '{"text": %s}' % jstr(
            (d + " ") * 6))
    for q, extra, tmpl, vset, gm in (("Where did the cat sit?", (), (), "docs", "s"),
                                     ("village", ("COUNT", 3, "FILTER", ".year > 1995"), (), "docs", "s"),
                                     ("books", ("CHAT",), ("CHAT",), "docs", "s"),
                                     ("cat", ("TEMPLATE", "tpl"), ("TEMPLATE", "tpl"), "docs", "s"),
                                     ("cat", ("COUNT", 6), (), "long", "small")):
        m = rag(c, q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 40, "TEMPERATURE", 0, *extra, vset=vset,
                gen_model=gm)
        texts = [json.loads(c.execute_command("VGETATTR", vset, s[0]))["text"] for s in m["sources"]]
        a = pairs(c.execute_command("INFER.ANSWER", gm, q, "CHUNKS", len(texts), *texts, "WITHSOURCES", "WITHPROMPT",
                                    "MAXTOKENS", 40, "TEMPERATURE", 0, *tmpl))
        check(a["prompt"] == m["prompt"] and a["text"] == m["text"] and a["sources"] == [s[2] for s in m["sources"]]
              and a["chunks_used"] == m["chunks_used"] and a["chunks_given"] == len(texts),
              "ANSWER %r %s: RAG's prompt, answer and states" % (q, " ".join(map(str, extra))))
    rc = RawClient(srv.port)
    t, v = rc.call("COMMAND", "GETKEYS", "INFER.ANSWER", "s", "q", "CHUNKS", "1", "STORE", "TEMPLATE", "tpl",
                   "STORE", "out")
    check(t == "*" and [x[1] for x in v] == [b"tpl", b"out"], "GETKEYS skips the chunk texts: %r" % (v,))
    rc.close()
    c.execute_command("ACL", "SETUSER", "notpl", "on", "nopass", "resetkeys", "%R~docs", "+@all")
    u = srv.client(username="notpl", password="x")
    e = err_of(lambda: u.execute_command("INFER.ANSWER", "s", "q", "CHUNKS", 1, "a", "TEMPLATE", "tpl"))
    check(e is not None and "no permissions" in e, "a TEMPLATE key the user may not read: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.ANSWER", "s", "q", "CHUNKS", 2, "a"))
    check(e == "CHUNKS 2 needs 2 chunk texts, got 1", "too few chunks: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.ANSWER", "s", "q", "CHUNKS", 1, "a", "TEMPLATE", "nosuch"))
    check(e == "TEMPLATE key 'nosuch' does not exist", "a missing TEMPLATE key: %s" % e)
    c.delete("ans")
    a = c.execute_command("INFER.ANSWER", "s", "q", "CHUNKS", 1, "a", "STORE", "ans", "MAXTOKENS", 4, "TEMPERATURE", 0)
    check(c.get("ans") == pairs(a)["text"], "STORE")


def test_acl(srv):
    print("the calling user's key permissions apply to what the retrieval reads")
    c = srv.client()
    load_corpus(c)
    c.set("tpl", "{context}\nQ: {question}\nA:")
    c.set("ck:0", "chunk zero")
    c.delete("kd")
    c.execute_command("INFER.EMBED", "e", "INTO", "kd", "k0", "bread", "SETATTR", '{"src": "ck:0"}')
    c.execute_command("ACL", "SETUSER", "reader", "on", "nopass", "resetkeys", "%R~docs", "%R~kd", "+@all")
    u = srv.client(username="reader", password="x")
    m = rag(u, "cat", "MAXTOKENS", 3, "TEMPERATURE", 0)
    check(m["chunks_used"] == 5, "a user who may read the set gets an answer")
    # the vector set and the TEMPLATE key are declared (key specs): Redis's
    # own ACL check refuses them before the command runs, and logs the key;
    # the chunk keys are data, checked by the module as it reads them
    c.acl_log_reset()
    e = err_of(lambda: rag(u, "cat", "TEMPLATE", "tpl"))
    log = c.acl_log(count=1)
    check(e is not None and "no permissions" in e and log and log[0].get("object") == "tpl",
          "TEMPLATE key not readable: %s (ACL LOG: %s)" % (e, log and log[0].get("object")))
    e = err_of(lambda: rag(u, "bread", "CONTEXTKEY-FIELD", "src", vset="kd"))
    check(e is not None and "no permissions" in e and "ck:0" in e, "chunk key not readable: %s" % e)
    c.execute_command("ACL", "SETUSER", "noset", "on", "nopass", "resetkeys", "%R~other", "+@all")
    e = err_of(lambda: rag(srv.client(username="noset", password="x"), "cat"))
    log = c.acl_log(count=1)
    check(e is not None and "no permissions" in e and log and log[0].get("object") == "docs",
          "vector set not readable: %s (ACL LOG: %s)" % (e, log and log[0].get("object")))


def test_hostile(srv):
    print("hostile input: clear errors, the server lives")
    c = srv.client()
    load_corpus(c)
    cases = [
        (["INFER.EMBED", "e", ""], "empty"),
        (["INFER.EMBED", "e", b"\xff\xfe"], "not valid UTF-8"),
        (["INFER.EMBED", "e", b"a\x00b"], "NUL"),
        (["INFER.EMBED", "e", "x" * (17 << 20)], "too large"),
        (["INFER.EMBED", "e", "word " * 2000], "embedding failed"),
        (["INFER.EMBED", "e", "hi", "NORMALIZE", "maybe"], "NORMALIZE"),
        (["INFER.EMBED", "e", "INTO", "k"], "wrong number"),
        (["INFER.RAG", "s", "e", "docs", ""], "empty"),
        (["INFER.RAG", "s", "e", "docs", b"\xc0\xaf"], "not valid UTF-8"),
        (["INFER.RAG", "s", "e", "docs", "q", "COUNT", "0"], "COUNT"),
        (["INFER.RAG", "s", "e", "docs", "q", "FILTER", "(("], "FILTER"),
        (["INFER.RAG", "s", "e", "nosuch", "q"], "does not exist"),
        (["INFER.RAG", "s", "e", "docs", "q", "TEMPLATE", "nosuch"], "TEMPLATE key 'nosuch' does not exist"),
        (["INFER.RAG", "s", "e", "docs", "q", "BOGUS", "1"], "unknown option"),
    ]
    for args, want in cases:
        e = err_of(lambda: c.execute_command(*args))
        shown = [a[:30] if isinstance(a, (str, bytes)) else a for a in args]
        check(e is not None and want in e, "%r -> %s" % (shown, e))
    c.execute_command("VADD", "v3", "VALUES", 3, 1, 0, 0, "x")
    e = err_of(lambda: rag(c, "q", vset="v3"))
    check(e is not None and "dimension mismatch" in e and "'v3'" in e, "wrong dimension: %s" % e)
    c.set("notaset", "x")
    e = err_of(lambda: rag(c, "q", vset="notaset"))
    check(e is not None and e.startswith("WRONGTYPE"), "wrong type: %s" % e)
    p = c.pipeline(transaction=True)
    p.execute_command("INFER.EMBED", "e", "hi")
    p.execute_command("INFER.RAG", "s", "e", "docs", "hi")
    res = p.execute(raise_on_error=False)
    check(all(isinstance(r, redis.exceptions.ResponseError) and "MULTI" in str(r) for r in res),
          "inside MULTI: refused")
    check(c.ping(), "alive")


def test_disconnect(srv):
    print("a disconnect cancels a queued embedding and a RAG in its embedding step")
    c = srv.client()
    before = srv.stats()["cancelled"]
    first = Background(lambda: srv.client().execute_command("INFER.EMBED", "slowe", long_text(), "LONG", "chunk"))
    check(wait_until(lambda: srv.stats()["in_flight"] >= 1, 10), "first embedding running")
    socks = []
    for cmd in (("INFER.EMBED", "slowe", long_text(), "LONG", "chunk"), ("INFER.RAG", "s", "slowe", "docs", "q")):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(RawClient.encode(*cmd))
        socks.append(s)
    check(wait_until(lambda: srv.stats()["in_flight"] >= 3, 10), "both queued")
    for s in socks:
        s.close()
    check(wait_until(lambda: srv.stats()["cancelled"] >= before + 2, 60), "both cancelled")
    first.join()
    check(first.error is None, "the first one completed")
    check(wait_until(lambda: srv.stats()["in_flight"] == 0, 30), "nothing left in flight")
    check(c.ping(), "alive")


def test_queue_full():
    print("a full queue answers at once")
    srv = ModServer("infer-max-queue", "1", "infer-max-batch", "1", load=False)
    try:
        c = srv.client()
        c.execute_command("INFER.LOAD", "slowe", "slowe.gguf")
        c.execute_command("INFER.LOAD", "s", "s.gguf")
        busy = [Background(lambda: srv.client().execute_command("INFER.EMBED", "slowe", long_text(), "LONG",
                                                                "chunk"))]
        check(wait_until(lambda: srv.stats()["in_flight"] == 1, 10), "one long embedding running")
        time.sleep(0.3)
        busy.append(Background(lambda: srv.client().execute_command("INFER.EMBED", "slowe", long_text(), "LONG",
                                                                     "chunk")))
        check(wait_until(lambda: srv.stats()["in_flight"] == 2, 10), "a second one admitted")
        t0 = time.time()
        errs = [err_of(lambda: c.execute_command("INFER.EMBED", "slowe", "short")),
                err_of(lambda: c.execute_command("INFER.RAG", "s", "slowe", "docs", "q"))]
        check(all(e is not None and "queue" in e for e in errs) and time.time() - t0 < 2 * SLOW,
              "queue-full errors at once: %r" % errs)
        c.set("k", "v")
        check(c.get("k") == b"v", "GET/SET meanwhile")
        for b in busy:
            b.join()
        check(all(b.error is None for b in busy), "the admitted ones finished: %r" % [b.error for b in busy])
    finally:
        srv.stop()


def main():
    if not os.path.exists(MODULE) or not os.path.exists(GEN) or not os.path.exists(REDIS):
        print("SKIP: %s, %s or redis-server missing" % (MODULE, GEN))
        print("0 passed, 0 failed, 1 skipped")
        return
    try:
        why = setup_models()
        if why:
            print("SKIP: " + why)
            print("0 passed, 0 failed, 1 skipped")
            return
        srv = ModServer()
        try:
            for fn in (test_kinds_and_shapes, test_into_and_replication, test_rag, test_answer, test_acl, test_hostile,
                       test_disconnect):
                try:
                    fn(srv)
                except Exception as e:  # noqa: BLE001 - a crash in a step is a failure, not the end
                    check(False, "%s raised %r" % (fn.__name__, e))
            check(srv.proc.poll() is None, "server still running")
        finally:
            srv.stop()
        test_queue_full()
    finally:
        shutil.rmtree(MODELS, ignore_errors=True)
    TALLY.done()


if __name__ == "__main__":
    main()
