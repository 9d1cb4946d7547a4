"""test_server_rag.py - INFER.EMBED and INFER.RAG in a real inferkv-server,
through redis-py and a raw RESP client.

Models, in a temporary infer-models-dir: stories260K (from $INFERKV_SHARED,
else its gguf-gen twin) as the generator "s" (and again as "small" with a
256-token context), a gguf-gen tiny-bert encoder "e" over the BGE WordPiece
vocabulary (64-dimensional, 128-token context; $INFERKV_RAG_ENCODER names
another encoder GGUF to use instead), a gguf-gen all-MiniLM-L6-shaped
encoder "slowe" where a test needs an embedding to last (a full queue, a
disconnect, a write during the embedding), and the larger gguf-gen
generator "slow" where a generation must last (a write during it).

Checks: INFER.MODELS shows the kind, and each command refuses the other
kind of model; INFER.EMBED's reply shapes (RESP2, RESP3, FP32) agree with
each other; 32 concurrent clients get exactly the vectors they get alone;
INTO adds through VADD (new, update, SETATTR, WRONGTYPE, dimension, a key
replaced while the engine ran); INFER.RAG's retrieved set equals VSIM on
the vector INFER.EMBED gives the question (with and without FILTER) and
its answer equals INFER.GENERATE on the prompt it reports (with and
without CHAT); chunks from attributes, string keys and hash keys; a
document changed or deleted between two calls shows in the second, one
changed during the generation does not alter the first; the prompt is
cut to the context by dropping the lowest-ranked chunks; TEMPLATE keys;
STREAM and STORE; a full queue answers at once; a disconnect cancels;
hostile input (huge, empty, invalid UTF-8 texts, wrong dimension, missing
keys, bad options) gets clear errors and the server lives; COMMAND INFO,
GETKEYS and the @infer category.  INFER.ANSWER, given the chunks INFER.RAG
retrieved, builds RAG's prompt and gives its answer and chunk states (the
default and a TEMPLATE key, CHAT, a FILTER, chunks cut to the context, no
chunk at all), and refuses bad calls with clear errors.

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
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import RawClient, Server, Skip, Tally, check, eq, err_of, gen  # noqa: E402

import redis  # noqa: E402

BUILD = server_harness.BUILD
if os.environ.get("INFERKV_SERVER"):
    server_harness.SERVER = os.path.abspath(os.environ["INFERKV_SERVER"])
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
BERT_VOCAB = os.path.join(SHARED, "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf")
GEN = os.path.join(BUILD, "gguf-gen")
SLOW = int(os.environ.get("INFERKV_TEST_SLOWDOWN", "1"))

MODELS = tempfile.mkdtemp(prefix="inferkv-rag-models-")

# A small corpus: distinct topics, so that questions have clear neighbours.
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
    "A small fox hides in the tall green grass.",
    "The farmer feeds the cows before sunrise.",
    "Rain falls softly on the roof of the barn.",
    "The queen lives in a castle made of stone.",
]


def setup_models():
    """s.gguf, e.gguf, slowe.gguf, slow.gguf; the encoder needs gguf-gen's tiny-bert."""
    if os.path.exists(STORIES):
        shutil.copy(STORIES, os.path.join(MODELS, "s.gguf"))
    else:
        subprocess.run([GEN, "--preset", "stories260k", "-q", "-o", os.path.join(MODELS, "s.gguf")], check=True)
    if not os.path.exists(BERT_VOCAB):
        raise Skip("no BERT vocabulary at %s" % BERT_VOCAB)
    enc = os.environ.get("INFERKV_RAG_ENCODER")
    if enc:
        shutil.copy(enc, os.path.join(MODELS, "e.gguf"))
    elif subprocess.run([GEN, "--preset", "tiny-bert", "--vocab", BERT_VOCAB, "-q", "-o",
                         os.path.join(MODELS, "e.gguf")], stderr=subprocess.DEVNULL).returncode != 0:
        raise Skip("gguf-gen has no tiny-bert preset")
    subprocess.run([GEN, "--preset", "minilm-l6", "--vocab", BERT_VOCAB, "-q", "-o",
                    os.path.join(MODELS, "slowe.gguf")], check=True)
    subprocess.run([GEN, "--preset", "tiny-llama", "--layers", "8", "--embd", "512", "--heads", "8", "--ffn",
                    "1536", "--ctx", "4096", "--type", "q8_0", "--seed", "7", "-q", "-o",
                    os.path.join(MODELS, "slow.gguf")], check=True)


def start(*extra):
    srv = Server("--infer-models-dir", MODELS, "--infer-threads", "1", "--maxclients", "1000", *extra)
    srv.r = client(srv)
    return srv


def client(srv):
    return redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=120 * SLOW)


def wait_until(pred, timeout=10):
    return server_harness.wait_until(pred, timeout * SLOW)


def info(c):
    return c.info("infer")


def pairs(flat):
    """A RESP2 map (flat list) as a dict with str keys."""
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def floats(blob):
    return list(struct.unpack("<%df" % (len(blob) // 4), blob))


def emb(c, *texts, model="e", extra=()):
    """INFER.EMBED ... FP32: one list of floats per text."""
    return [floats(b) for b in c.execute_command("INFER.EMBED", model, *texts, *extra, "FP32")]


def emb_blob(c, text, model="e"):
    return c.execute_command("INFER.EMBED", model, text, "FP32")[0]


def rag(c, q, *extra, vset="docs", gen_model="s", enc="e"):
    return pairs(c.execute_command("INFER.RAG", gen_model, enc, vset, q, *extra))


def load_corpus(c, key="docs"):
    c.delete(key)
    for i, d in enumerate(DOCS):
        attrs = '{"text": %s, "year": %d}' % (repr_json(d), 1990 + i)
        eq(c.execute_command("INFER.EMBED", "e", "INTO", key, "doc%d" % i, d, "SETATTR", attrs), 1, "INTO doc%d" % i)


def repr_json(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Background(server_harness.Background):
    join_timeout = 300 * SLOW


# --------------------------------------------------------------------------


def test_model_kinds(srv):
    """INFER.MODELS shows generator / encoder; each command refuses the other kind."""
    c = srv.r
    ms = {}
    for m in c.execute_command("INFER.MODELS"):
        d = pairs(m)
        ms[d["name"].decode()] = d
    eq(ms["s"]["kind"], b"generator", "stories kind")
    eq(ms["e"]["kind"], b"encoder", "encoder kind")
    eq(ms["e"]["arch"], b"bert", "encoder arch")
    check(ms["e"]["dim"] > 0 and ms["s"]["dim"] == 0, "dims %r %r" % (ms["e"]["dim"], ms["s"]["dim"]))
    e = err_of(lambda: gen(c, "hello", 5, model="e"))
    check(e and "encoder" in e and "INFER.EMBED" in e, "GENERATE on an encoder: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.EMBED", "s", "hello"))
    check(e and "not an encoder" in e, "EMBED on a generator: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.RAG", "e", "e", "docs", "q"))
    check(e and "encoder" in e, "RAG with an encoder as generator: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.RAG", "s", "s", "docs", "q"))
    check(e and "not an encoder" in e, "RAG with a generator as embedder: %s" % e)
    e = err_of(lambda: c.execute_command("INFER.RAG", "s", "nosuch", "docs", "q"))
    check(e and "no such model" in e, "unknown embedder: %s" % e)
    ids = c.execute_command("INFER.TOKENIZE", "e", "hello world")
    check(len(ids) >= 2, "INFER.TOKENIZE works on an encoder: %r" % ids)


def test_embed_shapes(srv):
    """Doubles (RESP2 strings, RESP3 doubles) and FP32 blobs give the same vectors, normalised by default."""
    c = srv.r
    texts = ["hello world", "the cat sat on the mat", "a third text"]
    blobs = emb(c, *texts)
    eq(len(blobs), 3, "one vector per text")
    dim = len(blobs[0])
    models = {pairs(m)["name"]: pairs(m) for m in c.execute_command("INFER.MODELS")}
    eq(dim, models[b"e"]["dim"], "as many floats as INFER.MODELS's dim")
    dbl = c.execute_command("INFER.EMBED", "e", *texts)
    for v, d in zip(blobs, dbl):
        eq(len(d), dim, "doubles per vector")
        check(all(float(x) == y for x, y in zip(d, v)), "RESP2 doubles equal the FP32 floats")
    for v in blobs:
        n = sum(x * x for x in v) ** 0.5
        check(abs(n - 1) < 1e-4, "normalised by default (|v| = %r)" % n)
    raw = emb(c, texts[0], extra=("NORMALIZE", "no"))[0]
    n = sum(x * x for x in raw) ** 0.5
    check(all(abs(a / n - b) < 1e-5 for a, b in zip(raw, blobs[0])), "NORMALIZE no: the same direction")
    eq(emb(c, texts[1])[0], blobs[1], "alone and in a batch: the same vector")
    rc = RawClient(srv.port)
    rc.call("HELLO", "3")
    t, vecs = rc.call("INFER.EMBED", "e", texts[0])
    rc.close()
    eq(t, "*", "RESP3 array")
    check(all(x[0] == "," for x in vecs[0][1]), "RESP3 doubles")
    check(all(float(x[1]) == y for x, y in zip(vecs[0][1], blobs[0])), "RESP3 doubles equal the floats")
    # options are read from the end: a text that spells an option word elsewhere is a text
    v = emb(c, "FP32", "NORMALIZE")
    eq(len(v), 2, "option words not at the end are texts")


def test_embed_concurrent(srv):
    """32 concurrent clients, different texts: each gets exactly its solo vectors (batched by the scheduler)."""
    jobs = [("text number %d about %s" % (i, DOCS[i % len(DOCS)]), DOCS[(i * 7) % len(DOCS)]) for i in range(32)]
    alone = {j: srv.r.execute_command("INFER.EMBED", "e", *j, "FP32") for j in jobs}
    bgs = [Background(lambda j=j: client(srv).execute_command("INFER.EMBED", "e", *j, "FP32")) for j in jobs]
    for b in bgs:
        b.join()
    errs = [b.error for b in bgs if b.error]
    check(not errs, "errors: %r" % errs[:3])
    bad = [j for j, b in zip(jobs, bgs) if b.result != alone[j]]
    check(not bad, "%d of 32 differ from their solo vectors" % len(bad))


def test_embed_into(srv):
    """INTO is a VADD of the vector: 1 new, 0 updated, SETATTR, WRONGTYPE, dimension errors, notifications."""
    c = srv.r
    c.delete("iv", "str")
    v = emb(c, "the cat sat on the mat")[0]
    eq(c.execute_command("INFER.EMBED", "e", "INTO", "iv", "a", "the cat sat on the mat", "NOQUANT"), 1, "new")
    got = [float(x) for x in c.execute_command("VEMB", "iv", "a")]
    check(all(abs(x - y) < 1e-5 for x, y in zip(got, v)), "VEMB gives the embedding back")
    eq(c.execute_command("INFER.EMBED", "e", "INTO", "iv", "a", "dogs bark", "NOQUANT", "SETATTR", '{"k":1}'), 0,
       "update answers 0")
    eq(c.execute_command("VGETATTR", "iv", "a"), b'{"k":1}', "SETATTR applied")
    v2 = emb(c, "dogs bark")[0]
    got = [float(x) for x in c.execute_command("VEMB", "iv", "a")]
    check(all(abs(x - y) < 1e-5 for x, y in zip(got, v2)), "the vector was replaced")
    e = err_of(lambda: c.execute_command("INFER.EMBED", "e", "INTO", "iv", "b", "x", "Q8"))
    check(e and "quantization mismatch" in e, "VADD's quantization error: %s" % e)
    c.set("str", "x")
    e = err_of(lambda: c.execute_command("INFER.EMBED", "e", "INTO", "str", "b", "x"))
    check(e and e.startswith("WRONGTYPE"), "WRONGTYPE: %s" % e)
    c.delete("v3")
    c.execute_command("VADD", "v3", "VALUES", 3, 1, 0, 0, "x")
    e = err_of(lambda: c.execute_command("INFER.EMBED", "e", "INTO", "v3", "b", "x"))
    check(e and "dimension mismatch" in e, "dimension: %s" % e)
    # keyspace notification, as VADD sends it
    c.config_set("notify-keyspace-events", "KEA")
    ps = client(srv).pubsub()
    ps.psubscribe("__keyspace@0__:iv")
    ps.get_message(timeout=1)
    c.execute_command("INFER.EMBED", "e", "INTO", "iv", "c", "birds", "NOQUANT")
    msg = None
    for _ in range(20):
        msg = ps.get_message(timeout=0.5)
        if msg and msg["type"] == "pmessage":
            break
    check(msg and msg["data"] == b"vadd", "vadd event: %r" % msg)
    ps.close()
    c.config_set("notify-keyspace-events", "")


def test_into_key_replaced(srv):
    """INTO's VADD runs when the vector is back: a key replaced meanwhile answers as VADD would then."""
    c = srv.r
    c.delete("late")
    c.execute_command("VADD", "late", "VALUES", 3, 1, 0, 0, "x")
    with open(os.path.join(MODELS, "long.txt")) as f:
        long_text = f.read()[:20000]
    bg = Background(lambda: client(srv).execute_command("INFER.EMBED", "slowe", "INTO", "late", "y", long_text,
                                                        "LONG", "chunk"))
    check(wait_until(lambda: info(c)["infer_in_flight"] >= 1), "the embedding is running")
    c.delete("late")
    c.set("late", "now a string")
    bg.join()
    check(bg.error is not None and str(bg.error).startswith("WRONGTYPE"),
          "WRONGTYPE from the key as it is now: %r / %r" % (bg.error, bg.result))
    c.delete("late")
    bg = Background(lambda: client(srv).execute_command("INFER.EMBED", "slowe", "INTO", "late", "y", long_text,
                                                        "LONG", "chunk"))
    check(wait_until(lambda: info(c)["infer_in_flight"] >= 1), "the embedding is running")
    c.execute_command("VADD", "late", "VALUES", 3, 1, 0, 0, "x")
    bg.join()
    check(bg.error is not None and "dimension mismatch" in str(bg.error), "set created meanwhile: %r" % bg.error)


def check_rag_matches(c, q, *extra, gen_model="s"):
    """INFER.RAG's sources are VSIM on INFER.EMBED's vector; its answer is INFER.GENERATE on its prompt."""
    count = 5
    for i in range(len(extra) - 1):
        if str(extra[i]).upper() == "COUNT":
            count = int(extra[i + 1])
    filt = []
    for i in range(len(extra) - 1):
        if str(extra[i]).upper() == "FILTER":
            filt = ["FILTER", extra[i + 1]]
    m = rag(c, q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 24, "TEMPERATURE", 0, *extra, gen_model=gen_model)
    vs = c.execute_command("VSIM", "docs", "FP32", emb_blob(c, q), "WITHSCORES", "COUNT", count, *filt)
    got = [(s[0], s[1]) for s in m["sources"]]
    want = [(vs[i], vs[i + 1]) for i in range(0, len(vs), 2)]
    eq(got, want, "RAG's sources = VSIM on the question's embedding (%r)" % q)
    eq(m["chunks_retrieved"], len(want), "chunks_retrieved")
    used = [s for s in m["sources"] if s[2] == b"used"]
    eq(m["chunks_used"], len(used), "chunks_used counts the used sources")
    chat = [x for x in extra if str(x).upper() == "CHAT"]
    answer = gen(c, m["prompt"], 24, *chat, model=gen_model)
    eq(m["text"], answer, "RAG's answer = INFER.GENERATE on its prompt (%r)" % q)
    return m


def test_rag_equals_parts(srv):
    """The retrieved set is VSIM's; the answer is INFER.GENERATE's on the reported prompt."""
    c = srv.r
    load_corpus(c)
    for q in ("Where did the cat sit?", "What do farmers do in the morning?", "Tell me about winter"):
        m = check_rag_matches(c, q)
        p = m["prompt"].decode()
        for name, _, state in m["sources"]:
            text = DOCS[int(name.decode()[3:])]
            check((text in p) == (state == b"used"), "used chunks and only they are in the prompt")
        eq(m["chunks_used"], 5, "all 5 fit stories260K's context")
        idx = [p.index(DOCS[int(s[0].decode()[3:])]) for s in m["sources"]]
        eq(idx, sorted(idx), "chunks in rank order")
        check(p.startswith("Use the context below") and p.endswith("Question: %s\nAnswer:" % q),
              "the default template: %r" % p[-80:])
    check_rag_matches(c, "a quiet village at night", "COUNT", 3, "FILTER", ".year > 1995")
    check_rag_matches(c, "stone castle", "COUNT", 8)
    check_rag_matches(c, "stone castle", "CHAT")
    m = rag(c, "anything", "COUNT", 3, "FILTER", ".year > 3000", "MAXTOKENS", 5, "TEMPERATURE", 0, "WITHSOURCES")
    eq((m["chunks_retrieved"], m["chunks_used"], m["sources"]), (0, 0, []), "a FILTER matching nothing: no chunk")
    # the RESP3 form: a map with doubles
    rc = RawClient(srv.port, timeout=60 * SLOW)
    rc.call("HELLO", "3")
    t, mp = rc.call("INFER.RAG", "s", "e", "docs", "cat", "MAXTOKENS", 5, "TEMPERATURE", 0, "WITHSOURCES")
    rc.close()
    eq(t, "%", "RESP3 map")
    d = {k[1].decode(): v for k, v in mp}
    eq(list(d)[:3], ["text", "chunks_used", "chunks_retrieved"], "field order")
    check(d["sources"][1][0][1][1][0] == "," and d["embed_ms"][0] == ",", "scores and timings are doubles")


def test_rag_chunk_keys(srv):
    """CONTEXTKEY-FIELD: chunks from string keys and hash keys named in the attributes; missing ones are no-text."""
    c = srv.r
    c.delete("kd", "ck:0", "ck:1", "ck:2")
    c.set("ck:0", "Fresh bread comes from the bakery.")
    c.hset("ck:1", mapping={"text": "Bakers bake bread before dawn.", "other": "x"})
    for i, d in enumerate(["bread bakery", "bakers bake bread", "bread crumbs"]):
        c.execute_command("INFER.EMBED", "e", "INTO", "kd", "k%d" % i, d, "SETATTR", '{"src": "ck:%d"}' % i)
    m = rag(c, "bread", "CONTEXTKEY-FIELD", "src", "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 5, "TEMPERATURE", 0,
            vset="kd")
    st = {s[0]: s[2] for s in m["sources"]}
    eq(st, {b"k0": b"used", b"k1": b"used", b"k2": b"no-text"}, "states")
    p = m["prompt"].decode()
    check("Fresh bread comes" in p and "Bakers bake bread" in p, "string and hash chunks in the prompt")
    m = rag(c, "bread", "WITHSOURCES", "MAXTOKENS", 5, "TEMPERATURE", 0, vset="kd")
    eq(m["chunks_used"], 0, "no 'text' attribute without CONTEXTKEY-FIELD: no chunk")


def test_rag_between_calls(srv):
    """A document changed or deleted between two INFER.RAG calls shows in the second."""
    c = srv.r
    load_corpus(c)
    q = "Where did the cat sit?"
    m1 = rag(c, q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 5, "TEMPERATURE", 0)
    top = m1["sources"][0][0]
    old = DOCS[int(top.decode()[3:])].encode()
    check(old in m1["prompt"], "the top document is in the first prompt")
    c.execute_command("VSETATTR", "docs", top, '{"text": "The cat now sleeps on the sofa."}')
    m2 = rag(c, q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 5, "TEMPERATURE", 0)
    check(b"sleeps on the sofa" in m2["prompt"] and old not in m2["prompt"], "the changed text is used")
    c.execute_command("VREM", "docs", top)
    m3 = rag(c, q, "WITHSOURCES", "MAXTOKENS", 5, "TEMPERATURE", 0)
    check(top not in [s[0] for s in m3["sources"]], "the deleted document is gone")
    check_rag_matches(c, q)


def test_rag_during_generation(srv):
    """Documents changed while the answer is generated do not alter it (one snapshot, copied)."""
    c = srv.r
    load_corpus(c)
    c.delete("rs")
    q = "Where did the cat sit?"
    m0 = rag(c, q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 1, "TEMPERATURE", 0, gen_model="slow")
    before, first, second = m0["prompt"], m0["sources"][0][0], m0["sources"][1][0]
    bg = Background(lambda: pairs(client(srv).execute_command(
        "INFER.RAG", "slow", "e", "docs", q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 300, "TEMPERATURE", 0,
        "STREAM", "rs")))
    check(wait_until(lambda: c.xlen("rs") >= 1, 60), "generation under way")
    c.execute_command("VSETATTR", "docs", first, '{"text": "CHANGED DURING GENERATION"}')
    c.execute_command("VREM", "docs", second)
    bg.join()
    check(bg.error is None, "answered: %r" % bg.error)
    m = bg.result
    eq(m["prompt"], before, "the prompt is the one from before the writes")
    check(second in [s[0] for s in m["sources"]], "the document deleted meanwhile was used")
    text = b"".join(e[1][b"text"] for e in c.xrange("rs") if b"text" in e[1])
    eq(text, m["text"], "STREAM entries concatenate to the answer")
    after = rag(c, q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 1, "TEMPERATURE", 0, gen_model="slow")
    check(b"CHANGED DURING GENERATION" in after["prompt"], "the next call sees the change")
    check(second not in [s[0] for s in after["sources"]], "and the deletion")


def test_rag_cut_to_context(srv):
    """Chunks that do not fit the context beside MAXTOKENS are dropped, lowest-ranked first."""
    c = srv.r
    c.delete("long")
    long_docs = [("%s " % d) * 6 for d in DOCS[:8]]
    for i, d in enumerate(long_docs):
        c.execute_command("INFER.EMBED", "e", "INTO", "long", "L%d" % i, DOCS[i], "SETATTR",
                          '{"text": %s}' % repr_json(d))
    m = rag(c, "cat", "COUNT", 8, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 40, "TEMPERATURE", 0, vset="long",
            gen_model="small")
    states = [s[2] for s in m["sources"]]
    k = m["chunks_used"]
    check(0 < k < 8, "some but not all chunks fit: %d" % k)
    eq(states, [b"used"] * k + [b"cut"] * (8 - k), "the lowest-ranked are the ones cut")
    ntok = len(c.execute_command("INFER.TOKENIZE", "small", m["prompt"]))
    check(ntok <= 256 - 40, "the prompt (%d tokens) leaves MAXTOKENS in the 256-token context" % ntok)
    eq(m["text"], gen(c, m["prompt"], 40, model="small"), "answer = GENERATE on the prompt")
    m2 = rag(c, "cat", "COUNT", 8, "WITHSOURCES", "MAXTOKENS", 20, "TEMPERATURE", 0, vset="long", gen_model="small")
    check(m2["chunks_used"] >= k, "fewer MAXTOKENS leave room for as many chunks or more")
    e = err_of(lambda: rag(c, "cat", "MAXTOKENS", 250, vset="long", gen_model="small"))
    check(e and "does not fit" in e, "no room even without chunks: %s" % e)
    e = err_of(lambda: rag(c, "cat", "MAXTOKENS", 256, vset="long", gen_model="small"))
    check(e and "MAXTOKENS" in e, "MAXTOKENS = context: %s" % e)


def test_rag_template(srv):
    """TEMPLATE key: placeholders filled; a missing, bad or wrong-type template is a clear error."""
    c = srv.r
    load_corpus(c)
    c.set("tpl", "Facts:\n{context}\n\nQ: {question}\nA:")
    m = rag(c, "cat", "TEMPLATE", "tpl", "COUNT", 2, "WITHPROMPT", "WITHSOURCES", "MAXTOKENS", 8, "TEMPERATURE", 0)
    p = m["prompt"].decode()
    first, second = (DOCS[int(s[0].decode()[3:])] for s in m["sources"])
    eq(p, "Facts:\n%s\n\n%s\n\nQ: cat\nA:" % (first, second), "the template filled")
    e = err_of(lambda: rag(c, "cat", "TEMPLATE", "nosuchtpl"))
    check(e and "TEMPLATE key 'nosuchtpl' does not exist" in e, "missing template key: %s" % e)
    c.set("tpl2", "no placeholders here")
    e = err_of(lambda: rag(c, "cat", "TEMPLATE", "tpl2"))
    check(e and "{context}" in e, "template without placeholders: %s" % e)
    c.delete("tpl3")
    c.rpush("tpl3", "x")
    e = err_of(lambda: rag(c, "cat", "TEMPLATE", "tpl3"))
    check(e and e.startswith("WRONGTYPE"), "template of the wrong type: %s" % e)


def test_rag_store(srv):
    """STORE: the answer is also SET into the key."""
    c = srv.r
    load_corpus(c)
    c.delete("ans")
    m = rag(c, "cat", "MAXTOKENS", 10, "TEMPERATURE", 0, "STORE", "ans")
    eq(c.get("ans"), m["text"], "STORE")


def answer(c, q, chunks, *extra, gen_model="s"):
    return pairs(c.execute_command("INFER.ANSWER", gen_model, q, "CHUNKS", len(chunks), *chunks, *extra))


def chunk_texts(c, vset, sources):
    """The 'text' attribute of each source, in rank order (what INFER.RAG read)."""
    out = []
    for name, _, _ in sources:
        a = c.execute_command("VGETATTR", vset, name)
        out.append(json.loads(a)["text"])
    return out


def test_answer(srv):
    """INFER.ANSWER on the chunks INFER.RAG retrieved gives RAG's prompt, states and answer; its own errors."""
    c = srv.r
    load_corpus(c)
    c.set("tpl", "Facts:\n{context}\n\nQ: {question}\nA:")
    cases = [("Where did the cat sit?", (), "docs", "s"),
             ("a quiet village at night", ("COUNT", 3, "FILTER", ".year > 1995"), "docs", "s"),
             ("stone castle", ("CHAT",), "docs", "s"),
             ("cat", ("TEMPLATE", "tpl", "COUNT", 2), "docs", "s"),
             ("cat", ("COUNT", 8), "long", "small")]
    for q, extra, vset, gm in cases:
        gen_opts = [x for x in extra if str(x) in ("CHAT",)]
        tmpl = list(extra[extra.index("TEMPLATE"):extra.index("TEMPLATE") + 2]) if "TEMPLATE" in extra else []
        m = rag(c, q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 40, "TEMPERATURE", 0, *extra, vset=vset, gen_model=gm)
        texts = chunk_texts(c, vset, m["sources"])
        a = answer(c, q, texts, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 40, "TEMPERATURE", 0, *tmpl, *gen_opts,
                   gen_model=gm)
        what = "%r %s" % (q, " ".join(map(str, extra)))
        eq(a["prompt"], m["prompt"], "ANSWER's prompt = RAG's for its chunks (%s)" % what)
        eq(a["sources"], [s[2] for s in m["sources"]], "ANSWER's states = RAG's (%s)" % what)
        eq((a["text"], a["chunks_used"], a["chunks_given"]), (m["text"], m["chunks_used"], len(texts)),
           "ANSWER's answer and counts = RAG's (%s)" % what)
    check(0 < a["chunks_used"] < 8, "the last case cut chunks to the context (%d used)" % a["chunks_used"])
    # no chunk at all: RAG with a FILTER that matches nothing
    m = rag(c, "anything", "FILTER", ".year > 3000", "WITHPROMPT", "MAXTOKENS", 5, "TEMPERATURE", 0)
    a = answer(c, "anything", [], "WITHPROMPT", "MAXTOKENS", 5, "TEMPERATURE", 0)
    eq((a["prompt"], a["text"], a["chunks_used"]), (m["prompt"], m["text"], 0), "CHUNKS 0 = RAG with no hit")
    # a chunk that alone can never fit the context drops itself and all below it
    big = "word " * 3000
    a = answer(c, "cat", ["The cat sat.", big, "Dogs bark."], "WITHSOURCES", "MAXTOKENS", 10, "TEMPERATURE", 0,
               gen_model="small")
    eq(a["sources"], [b"used", b"cut", b"cut"], "a chunk too long to ever fit cuts itself and what follows")
    # chunk texts that spell options are texts; STORE after them is a key
    c.delete("ans")
    a = answer(c, "cat", ["STORE", "TEMPLATE"], "STORE", "ans", "MAXTOKENS", 6, "TEMPERATURE", 0)
    eq(c.get("ans"), a["text"], "STORE after chunks that spell keywords")
    rc = RawClient(srv.port)
    t, v = rc.call("COMMAND", "GETKEYS", "INFER.ANSWER", "s", "q", "CHUNKS", "2", "STORE", "TEMPLATE", "TEMPLATE",
                   "tpl", "STREAM", "st", "STORE", "out")
    eq([x[1] for x in v] if t == "*" else (t, v), [b"tpl", b"st", b"out"], "GETKEYS skips the chunks")
    t, v = rc.call("COMMAND", "GETKEYS", "INFER.ANSWER", "s", "q", "CHUNKS", "1", "STORE")
    eq((t, v), ("*", []), "a chunk spelling STORE is no key")
    rc.call("HELLO", "3")
    t, mp = rc.call("INFER.ANSWER", "s", "cat", "CHUNKS", 1, "The cat sat.", "MAXTOKENS", 4, "TEMPERATURE", 0)
    d = {k[1].decode(): v for k, v in mp} if t == "%" else {}
    eq(list(d)[:3], ["text", "chunks_used", "chunks_given"], "RESP3 map, field order")
    check("embed_ms" not in d and "queue_ms" in d, "no embed_ms: nothing was embedded")
    rc.close()
    bad = [(["s", "q", "COUNT", 1, "x"], "CHUNKS expected"),
           (["s", "q", "CHUNKS", 3, "a", "b"], "CHUNKS 3 needs 3 chunk texts, got 2"),
           (["s", "q", "CHUNKS", -1, "a"], "CHUNKS must be an integer"),
           (["s", "q", "CHUNKS", "two", "a", "b"], "CHUNKS must be an integer"),
           (["s", "q", "CHUNKS", 1, "a", "COUNT", 3], "unknown option 'COUNT'"),
           (["s", "q", "CHUNKS", 1, "a", "FILTER", ".x"], "unknown option 'FILTER'"),
           (["s", "q", "CHUNKS", 1, "a", "TEMPLATE"], "no value after 'TEMPLATE'"),
           (["s", "q", "CHUNKS", 1, "a", "TEMPLATE", "nosuchtpl"], "TEMPLATE key 'nosuchtpl' does not exist"),
           (["e", "q", "CHUNKS", 1, "a"], "is an encoder"),
           (["nosuch", "q", "CHUNKS", 1, "a"], "no such model"),
           (["s", "", "CHUNKS", 1, "a"], "question"),
           (["s", "q", "CHUNKS", 1, "a", "MAXTOKENS", 0], "MAXTOKENS"),
           (["s", "q", "CHUNKS"], "wrong number of arguments")]
    for args, want in bad:
        e = err_of(lambda: c.execute_command("INFER.ANSWER", *args))
        check(e and want in e, "INFER.ANSWER %s: %s" % (" ".join(map(str, args)), e))
    c.delete("tpl3")
    c.rpush("tpl3", "x")
    e = err_of(lambda: answer(c, "q", ["a"], "TEMPLATE", "tpl3"))
    check(e and e.startswith("WRONGTYPE"), "a TEMPLATE key of the wrong type: %s" % e)


def test_hostile(srv):
    """Huge, empty and invalid texts, wrong dimensions, missing keys, bad options: clear errors; the server lives."""
    c = srv.r
    load_corpus(c)
    cases = [
        (["INFER.EMBED", "e", ""], "text is empty"),
        (["INFER.EMBED", "e", "ok", ""], "text 2 is empty"),
        (["INFER.EMBED", "e", b"bad \xff\xfe utf8"], "not valid UTF-8"),
        (["INFER.EMBED", "e", b"overlong \xc0\xaf"], "not valid UTF-8"),
        (["INFER.EMBED", "e", b"surrogate \xed\xa0\x80"], "not valid UTF-8"),
        (["INFER.EMBED", "e", b"nul \x00 byte"], "NUL"),
        (["INFER.EMBED", "e", "x" * (17 << 20)], "too large"),
        (["INFER.EMBED", "e", "word " * 2000], "embedding failed"),
        (["INFER.EMBED", "e", "hi", "NORMALIZE", "maybe"], "NORMALIZE must be yes or no"),
        (["INFER.EMBED", "e", "hi", "LONG", "truncate"], "LONG must be refuse or chunk"),
        (["INFER.EMBED", "e", "hi", "TIMEOUT", "-1"], "TIMEOUT"),
        (["INFER.EMBED", "e", "hi", "FP32", "FP32"], "given twice"),
        (["INFER.EMBED", "e", "INTO", "k", "el"], "wrong number of arguments"),
        (["INFER.EMBED", "e", "INTO", "k", "el", "t", "FP32"], "FP32"),
        (["INFER.EMBED", "e", "INTO", "k", "el", "t", "BOGUS", "1"], "unknown option 'BOGUS'"),
        (["INFER.EMBED", "e", "INTO", "k", "el", "t", "Q8", "BIN"], "quantization"),
        (["INFER.EMBED", "e", "INTO", "k", "el", ""], "text is empty"),
        (["INFER.EMBED", "nosuch", "hi"], "no such model"),
        (["INFER.EMBED", "e"], "wrong number of arguments"),
        (["INFER.RAG", "s", "e", "docs", ""], "question is empty"),
        (["INFER.RAG", "s", "e", "docs", b"\xff"], "not valid UTF-8"),
        (["INFER.RAG", "s", "e", "docs", "word " * 2000], "embedding failed"),
        (["INFER.RAG", "s", "e", "docs", "q", "COUNT", "0"], "COUNT"),
        (["INFER.RAG", "s", "e", "docs", "q", "COUNT", "abc"], "COUNT"),
        (["INFER.RAG", "s", "e", "docs", "q", "COUNT", "1000000"], "COUNT"),
        (["INFER.RAG", "s", "e", "docs", "q", "COUNT"], "no value after 'COUNT'"),
        (["INFER.RAG", "s", "e", "docs", "q", "BOGUS", "1"], "unknown option 'BOGUS'"),
        (["INFER.RAG", "s", "e", "docs", "q", "FILTER", ".year >"], "FILTER"),
        (["INFER.RAG", "s", "e", "docs", "q", "TEMPERATURE", "-1"], "TEMPERATURE"),
        (["INFER.RAG", "s", "e", "docs", "q", "CONTEXTKEY-FIELD", ""], "CONTEXTKEY-FIELD"),
        (["INFER.RAG", "s", "e", "nosuchset", "q"], "vector set 'nosuchset' does not exist"),
        (["INFER.RAG", "s", "e", "", "q"], "vector set name is empty"),
        (["INFER.RAG", "s", "e", "docs"], "wrong number of arguments"),
    ]
    for args, want in cases:
        e = err_of(lambda: c.execute_command(*args))
        shown = [a[:40] if isinstance(a, (str, bytes)) else a for a in args]
        check(e is not None and want in e, "%r -> %s" % (shown, e))
    c.delete("v3")
    c.execute_command("VADD", "v3", "VALUES", 3, 1, 0, 0, "x")
    e = err_of(lambda: rag(c, "q", vset="v3"))
    check(e and "vector set 'v3'" in e and "dimension mismatch" in e, "wrong dimension: %s" % e)
    c.set("notaset", "x")
    e = err_of(lambda: rag(c, "q", vset="notaset"))
    check(e and e.startswith("WRONGTYPE"), "wrong type: %s" % e)
    e = err_of(lambda: rag(c, "q", "TEMPLATE", "missing-template"))
    check(e and "does not exist" in e, "missing template: %s" % e)
    # hostile attributes: not JSON, nested, escapes, a non-string text
    c.delete("hv")
    attrs = ['not json at all', '{"text": 42}', '{"a": {"text": "nested"}, "text": "top \\u00e9\\ud83d\\ude00"}',
             '{"text": "unterminated', '{"text": "lone \\ud800 surrogate"}', '[1, 2, 3]', '{"text":"a\\"b\\\\c"}']
    for i, a in enumerate(attrs):
        c.execute_command("INFER.EMBED", "e", "INTO", "hv", "h%d" % i, "hostile %d" % i, "SETATTR", a)
    m = rag(c, "hostile", "COUNT", len(attrs), "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 5, "TEMPERATURE", 0,
            vset="hv")
    st = {s[0].decode(): s[2] for s in m["sources"]}
    eq(sorted(k for k, v in st.items() if v == b"used"), ["h2", "h4", "h6"], "only string 'text' fields are used")
    p = m["prompt"].decode("utf-8")
    check("top \u00e9\U0001F600" in p and "lone \ufffd surrogate" in p and 'a"b\\c' in p and "nested" not in p,
          "escapes decoded, nested fields ignored: %r" % p)
    p = c.pipeline(transaction=True)
    p.execute_command("INFER.EMBED", "e", "hi")
    p.execute_command("INFER.RAG", "s", "e", "docs", "hi")
    res = p.execute(raise_on_error=False)
    check(all(isinstance(r, redis.exceptions.ResponseError) and "MULTI" in str(r) for r in res),
          "inside MULTI: refused (%r)" % res)
    eq(c.ping(), True, "alive")


def test_command_info(srv):
    """COMMAND INFO key specs, exact COMMAND GETKEYS, the @infer category."""
    c = srv.r
    rc = RawClient(srv.port)
    names = sorted(x[1].decode() for x in rc.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", "infer")[1])
    check("infer.embed" in names and "infer.rag" in names, "@infer members: %r" % names)
    ci = [x[1] for x in rc.call("COMMAND", "INFO", "infer.rag")[1][0][1]]
    rc.close()
    eq(ci[0], b"infer.rag", "name")
    eq(ci[1], -5, "arity")
    eq(ci[3:6], [3, 3, 1], "first/last/step")
    flags = [x[1] for x in ci[2]]
    check("movablekeys" in flags and "blocking" in flags, "flags %r" % flags)
    eq(len(ci[8]), 4, "four key specs")
    rc = RawClient(srv.port)

    def keys(*args):
        t, v = rc.call("COMMAND", "GETKEYS", *args)
        return [x[1] for x in v] if t == "*" else (t, v)
    eq(keys("INFER.RAG", "s", "e", "docs", "q", "COUNT", "3", "TEMPLATE", "t", "WITHSOURCES", "STREAM", "st",
            "STORE", "out"), [b"docs", b"t", b"st", b"out"], "RAG keys")
    eq(keys("INFER.RAG", "s", "e", "docs", "TEMPLATE"), [b"docs"], "a question that spells an option is not one")
    eq(keys("INFER.EMBED", "e", "INTO", "vs", "el", "text"), [b"vs"], "INTO key")
    eq(keys("INFER.EMBED", "e", "a", "INTO", "b"), [], "no key without INTO")
    rc.close()


def test_stats(srv):
    """Embeddings count in INFER.STATS; a disconnect cancels a queued embedding."""
    c = srv.r
    with open(os.path.join(MODELS, "long.txt")) as f:
        long_text = f.read()
    before = pairs(c.execute_command("INFER.STATS"))
    first = Background(lambda: client(srv).execute_command("INFER.EMBED", "slowe", long_text[:30000], "LONG", "chunk"))
    check(wait_until(lambda: info(c)["infer_in_flight"] >= 1), "first embedding running")
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(RawClient.encode("INFER.EMBED", "slowe", long_text[:30000], "LONG", "chunk"))
    check(wait_until(lambda: info(c)["infer_in_flight"] >= 2), "second one in flight")
    s.close()
    check(wait_until(lambda: pairs(c.execute_command("INFER.STATS"))["cancelled"] > before["cancelled"], 60),
          "the disconnected client's embedding was cancelled")
    first.join()
    check(first.error is None and len(first.result) == 1, "the first one completed")
    check(wait_until(lambda: info(c)["infer_in_flight"] == 0), "nothing left in flight")
    after = pairs(c.execute_command("INFER.STATS"))
    check(after["submitted"] > before["submitted"] and after["completed"] > before["completed"], "counted")


def test_queue_full():
    """A full encoder queue answers an error at once; GET/SET go on; the admitted requests finish."""
    srv = start("--infer-max-queue", "1", "--infer-max-batch", "1")
    try:
        srv.r.execute_command("INFER.LOAD", "slowe", "slowe.gguf")
        srv.r.execute_command("INFER.LOAD", "s", "s.gguf")
        with open(os.path.join(MODELS, "long.txt")) as f:
            long_text = f.read()[:30000]
        out, lock = [], threading.Lock()

        def one(cmd):
            t0 = time.time()
            try:
                k = ("ok", client(srv).execute_command(*cmd))
            except redis.exceptions.ResponseError as e:
                k = ("err", str(e))
            with lock:
                out.append(k + (time.time() - t0,))

        busy = [Background(lambda: one(["INFER.EMBED", "slowe", long_text, "LONG", "chunk"]))]
        check(wait_until(lambda: info(srv.r)["infer_in_flight"] == 1), "a long embedding running")
        time.sleep(0.3)
        busy.append(Background(lambda: one(["INFER.EMBED", "slowe", long_text, "LONG", "chunk"])))
        check(wait_until(lambda: info(srv.r)["infer_in_flight"] == 2), "a second one admitted")
        t0 = time.time()
        errs = []
        for cmd in (["INFER.EMBED", "slowe", "short text"], ["INFER.RAG", "s", "slowe", "docs", "q"]):
            e = err_of(lambda: srv.r.execute_command(*cmd))
            errs.append(e)
        el = time.time() - t0
        check(all(e and "queue" in e for e in errs), "queue-full errors: %r" % errs)
        check(el < 2 * SLOW, "answered at once (%.2f s)" % el)
        srv.r.set("k", "v")
        eq(srv.r.get("k"), b"v", "GET/SET while the queue is full")
        for b in busy:
            b.join()
        check(len(out) == 2 and all(k == "ok" for k, _, _ in out), "the admitted ones finished: %r" %
              [(k, str(x)[:60]) for k, x, _ in out])
        check(pairs(srv.r.execute_command("INFER.STATS"))["rejected"] >= 2, "rejections counted")
    finally:
        srv.stop()


def main():
    t = Tally()
    if not os.path.exists(server_harness.SERVER) or not os.path.exists(GEN):
        print("SKIP: %s or %s not built" % (server_harness.SERVER, GEN))
        print("0 passed, 0 failed, 1 skipped")
        return
    try:
        try:
            setup_models()
        except Skip as e:
            print("SKIP: %s" % e)
            print("0 passed, 0 failed, 1 skipped")
            return
        with open(os.path.join(MODELS, "long.txt"), "w") as f:
            words = ["alpha", "river", "stone", "green", "quick", "house", "light", "tree", "ocean", "cloud"]
            f.write(" ".join(words[(i * 7 + i // 3) % len(words)] for i in range(20000)))
        srv = start()
        try:
            for name, path, extra in (("s", "s.gguf", []), ("small", "s.gguf", ["CONTEXT", 256]),
                                      ("e", "e.gguf", []), ("slowe", "slowe.gguf", []),
                                      ("slow", "slow.gguf", ["CONTEXT", 4096])):
                srv.r.execute_command("INFER.LOAD", name, path, *extra)
            for fn in (test_model_kinds, test_embed_shapes, test_embed_concurrent, test_embed_into,
                       test_into_key_replaced, test_rag_equals_parts, test_rag_chunk_keys, test_rag_between_calls,
                       test_rag_during_generation, test_rag_cut_to_context, test_rag_template, test_rag_store,
                       test_answer,
                       test_hostile, test_command_info, test_stats):
                t.run(fn, srv)

            def server_still_running(s=srv):
                check(s.alive(), "server still running")
            t.run(server_still_running)
        finally:
            srv.stop()
            with open(os.path.join(srv.dir, "server.log"), errors="replace") as f:
                log = f.read()
            shutil.rmtree(srv.dir, ignore_errors=True)

            def server_log_clean(log=log, srv=srv):
                bad = "Sanitizer" in log or "runtime error:" in log or srv.proc.returncode not in (0, None)
                if bad:
                    print(log[-4000:])
                check(not bad, "exit status %r or a sanitizer report" % srv.proc.returncode)
            t.run(server_log_clean)
        t.run(test_queue_full)
    finally:
        shutil.rmtree(MODELS, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
