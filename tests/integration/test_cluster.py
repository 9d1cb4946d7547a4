"""test_cluster.py - inferkv.so in every node of a Redis Cluster (issue 23).

Six Debian redis-server 7.0.15 processes on loopback, cluster-enabled, each
with the module, joined by `redis-cli --cluster create ... --cluster-replicas
1`; stories260K (or a gguf-gen stand-in) and, where the BERT vocabulary is
there, a gguf-gen tiny-bert encoder are loaded on every node, replicas too
(models load per node).  Then a plain primary + `--replicaof` replica pair,
and inferkv-server for the comparison of the two front-ends.

Checks:
  1. COMMAND INFO / COMMAND GETKEYS on a node: INFER.GENERATE (PROMPTKEY,
     TOKENSKEY, STORE, STREAM), INFER.EMBED INTO, INFER.RAG and the V*
     commands show their keys and flags; a prompt that spells a keyword is
     not taken for one.
  2. redis-py's RedisCluster routes INFER.GENERATE PROMPTKEY {a}p STORE
     {a}out to the slot's owner (and only there), the STOREd value reads
     back; keys in two slots: the host's -CROSSSLOT; a node that does not
     own the slot: -MOVED slot host:port (for a STORE key alone too, and
     for INFER.RAG's vector set).
  3. A cluster replica after READONLY runs INFER.GENERATE without STORE /
     STREAM (the primary's answer, greedy, same file) and refuses STORE,
     STREAM and INTO with the answer Redis itself gives a write there (SET,
     XADD, VADD: -MOVED to the primary); without READONLY the host
     redirects even the read.
  4. A plain read-only replica (--replicaof) runs INFER.GENERATE without
     STORE and refuses the write forms with Redis's -READONLY text (as SET
     there); with replica-read-only no it takes them.
  5. inferkv-server's COMMAND INFO for INFER.GENERATE / EMBED / RAG has the
     module's flags (less "module", which the host adds to every module
     command, and "blocking", which a 7.0 module cannot declare), key specs
     and key range; COMMAND GETKEYS answers alike on both for the same calls.
  6. RAG across shards: a corpus spread over three vector sets named by
     inferkv.shards (each on its own primary) and, whole, in one set;
     ClusterClient.rag (embed, VSIM on every shard, merge, INFER.ANSWER)
     returns what INFER.RAG on the whole set returns - the same sources,
     scores, states, prompt and greedy answer - with COUNT, FILTER, CHAT,
     CONTEXTKEY-FIELD chunk keys and a TEMPLATE key; keyless answers go to
     every node in turn, replicas included; a missing shard adds nothing;
     bad FILTERs and missing models are typed errors.
  7. ClusterClient.load_model: INFER.LOAD on all six nodes with a report
     per node (role, error); a missing file fails everywhere, saying why.
  8. Failover: a primary is SIGKILLed during a stream of INFER.GENERATE
     ... STORE through ClusterClient.execute; its replica is promoted, the
     retries land there (it had the model), and nothing acknowledged more
     than 1 s before the kill is missing from it (what was lost is printed;
     Redis replicates asynchronously).
Prints "N passed, N failed, N skipped"; exits 1 on failure.
"""
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import RawClient, Server, Tally, wait_until  # noqa: E402
import cluster_harness as ch  # noqa: E402
from cluster_harness import MODULE, plain  # noqa: E402

import redis  # noqa: E402
from redis.cluster import RedisCluster  # noqa: E402

sys.path.insert(0, os.path.join(ch.ROOT, "clients", "python"))
import inferkv  # noqa: E402
from inferkv import ClusterClient, shard_sets  # noqa: E402

ROOT = ch.ROOT
BUILD = ch.BUILD
SHARED = os.environ.get("INFERKV_SHARED", "/work/shared")
GEN = os.path.join(BUILD, "gguf-gen")
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
BERT_VOCAB = os.path.join(SHARED, "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf")

# redis-py logs every connection error it retries with a traceback: the
# failover test makes hundreds
logging.getLogger("redis.cluster").setLevel(logging.CRITICAL)

TALLY = Tally()
check = TALLY.expect
TMP = tempfile.mkdtemp(prefix="inferkv-cluster-")
MODELS = os.path.join(TMP, "models")
LOGS = []  # every redis-server started, its log checked at the end


def Node(*opts, cluster=True):
    return ch.Node(TMP, MODELS, LOGS, *opts, cluster=cluster)


def setup_models():
    """stories260K as s.gguf; a tiny-bert encoder as e.gguf when the BERT
    vocabulary is there (None), else why not."""
    os.mkdir(MODELS)
    if os.path.exists(STORIES):
        shutil.copy(STORIES, os.path.join(MODELS, "s.gguf"))
    else:
        subprocess.run([GEN, "--preset", "stories260k", "-q", "-o", os.path.join(MODELS, "s.gguf")], check=True)
    if not os.path.exists(BERT_VOCAB):
        return "no BERT vocabulary at %s" % BERT_VOCAB
    if subprocess.run([GEN, "--preset", "tiny-bert", "--vocab", BERT_VOCAB, "-q", "-o",
                       os.path.join(MODELS, "e.gguf")], stderr=subprocess.DEVNULL).returncode != 0:
        return "gguf-gen has no tiny-bert preset"
    return None


def load_everywhere(nodes, encoder):
    return ch.load_everywhere(nodes, [("s", "s.gguf")] + ([("e", "e.gguf")] if encoder else []))


def gen_args(*extra, prompt=("Once upon a time",), n=8):
    return ["INFER.GENERATE", "s", *prompt, "MAXTOKENS", n, "TEMPERATURE", 0, *extra]


def err(rc, *args):
    """The error line rc answers to args, or None."""
    t, v = rc.call(*args)
    return v if t == "-" else None


def info_entry(rc, name):
    """COMMAND INFO of one command as {arity, flags, range, specs}."""
    e = plain(rc.call("COMMAND", "INFO", name))[0]
    if not e:
        return None
    specs = []
    for s in e[8]:
        d = dict(zip(s[0::2], s[1::2]))
        bs = dict(zip(d["begin_search"][0::2], d["begin_search"][1::2]))
        fk = dict(zip(d["find_keys"][0::2], d["find_keys"][1::2]))
        specs.append((frozenset(d["flags"]), bs["type"], tuple(bs["spec"]), fk["type"], tuple(fk["spec"])))
    return {"name": e[0], "arity": e[1], "flags": set(e[2]), "range": (e[3], e[4], e[5]), "specs": specs}


def spec(flags, keyword=None, startfrom=0, index=0):
    bs = ("keyword", ("keyword", keyword, "startfrom", startfrom)) if keyword else ("index", ("index", index))
    return (frozenset(flags), bs[0], bs[1], "range", ("lastkey", 0, "keystep", 1, "limit", 0))


RO, RO_INC = ("RO", "access"), ("RO", "access", "incomplete")
INSERT_INC, OW_INC = ("RW", "insert", "incomplete"), ("OW", "update", "incomplete")
WANT_SPECS = {
    "infer.generate": [spec(RO_INC, "PROMPTKEY", 2), spec(RO_INC, "TOKENSKEY", 2), spec(INSERT_INC, "STREAM", 3),
                       spec(OW_INC, "STORE", 3)],
    "infer.embed": [spec(INSERT_INC, "INTO", 2)],
    "infer.rag": [spec(RO, index=3), spec(RO_INC, "TEMPLATE", 5), spec(INSERT_INC, "STREAM", 5),
                  spec(OW_INC, "STORE", 5)],
}
# calls and the keys COMMAND GETKEYS must find in them
GETKEYS = [
    (gen_args("STORE", "{a}out", prompt=("PROMPTKEY", "{a}p")), ["{a}p", "{a}out"]),
    (gen_args("STREAM", "{a}st", "STOP", "x", prompt=("TOKENSKEY", "{a}t")), ["{a}t", "{a}st"]),
    (gen_args("STORE", "o1", "STORE", "o2"), ["o2"]),  # the last STORE is the one written
    (gen_args(prompt=("STORE",)), []),  # a prompt that spells a keyword is a prompt
    (gen_args("STOP", "STORE", "CHAT"), []),  # so is a STOP string
    (["INFER.GENERATE", "s", "PROMPTKEY"], []),  # "PROMPTKEY" alone: the prompt text
    (gen_args(prompt=("PROMPTKEY",)), ["MAXTOKENS"]),  # as the parser reads it (then refuses "8")
    (["INFER.EMBED", "e", "INTO", "{d}docs", "el", "text", "SETATTR", "{}"], ["{d}docs"]),
    (["INFER.EMBED", "e", "hello", "INTO"], []),  # INTO as a text
    (["INFER.RAG", "s", "e", "{d}docs", "q", "COUNT", 3, "TEMPLATE", "{d}t", "STORE", "{d}o", "STREAM", "{d}s"],
     ["{d}docs", "{d}t", "{d}o", "{d}s"]),
    (["INFER.RAG", "s", "e", "{d}docs", "STORE", "FILTER", "STORE", "WITHSOURCES"], ["{d}docs"]),
]


# ---------------------------------------------------------------------------


def test_command_info(node):
    print("1. COMMAND INFO / COMMAND GETKEYS on a cluster node")
    rc = node.raw()
    for name, want in WANT_SPECS.items():
        e = info_entry(rc, name)
        check(e is not None and e["specs"] == want, "%s key specs %s" % (name, e and e["specs"]))
        write_flag = e is not None and "write" in e["flags"]
        check(e is not None and {"readonly", "movablekeys", "noscript"} <= e["flags"] and not write_flag,
              "%s flags %s: readonly (no static write), movablekeys" % (name, e and sorted(e["flags"])))
    check(info_entry(rc, "infer.rag")["range"] == (3, 3, 1) and info_entry(rc, "infer.generate")["range"] == (0, 0, 0),
          "key ranges: RAG 3/3/1 (its vector set), GENERATE 0/0/0")
    for args, want in GETKEYS:
        got = plain(rc.call("COMMAND", "GETKEYS", *args))
        check(got == want, "COMMAND GETKEYS %s -> %s" % (" ".join(map(str, args[:3])) + " ...", got))
    t, v = rc.call("COMMAND", "GETKEYSANDFLAGS", *gen_args("STREAM", "{a}s", "STORE", "{a}o",
                                                            prompt=("PROMPTKEY", "{a}p")))
    flags = {k: set(f) for k, f in plain((t, v))}
    check(flags == {"{a}p": {"RO", "access"}, "{a}s": {"RW", "insert"}, "{a}o": {"OW", "update"}},
          "GETKEYSANDFLAGS: PROMPTKEY read, STREAM and STORE written (%s)" % flags)
    vs = {"VADD": ("RW", "insert"), "VREM": ("RW", "delete"), "VSETATTR": ("RW", "update"), "VSIM": ("RO", "access"),
          "VCARD": ("RO", "access")}
    for name, kf in vs.items():
        e = info_entry(rc, name)
        check(e is not None and e["specs"] == [spec(kf, index=1)] and e["range"] == (1, 1, 1),
              "%s: key at 1, %s" % (name, " ".join(kf)))
    check(plain(rc.call("COMMAND", "GETKEYS", "VSIM", "{d}docs", "ELE", "x")) == ["{d}docs"], "GETKEYS VSIM")
    rc.close()


def test_routing(primaries, rcl):
    print("2. routing: RedisCluster to the owner, CROSSSLOT, MOVED")
    slot = rcl.keyslot("{a}p")
    owner = rcl.get_node_from_key("{a}p")
    o = next(n for n in primaries if n.port == owner.port)
    other = next(n for n in primaries if n.port != owner.port)

    def calls():
        out = {}
        for n in primaries:
            s = n.client().info("commandstats").get("cmdstat_infer.generate", {})
            out[n.port] = s.get("calls", 0)
        return out

    rcl.set("{a}p", "Once upon a time")
    before = calls()
    a = rcl.execute_command(*gen_args("STORE", "{a}out", prompt=("PROMPTKEY", "{a}p")))
    after = calls()
    ran = [p for p in after if after[p] != before[p]]
    check(a and ran == [owner.port], "RedisCluster sent INFER.GENERATE PROMPTKEY/STORE to the owner only (%s)" % ran)
    check(rcl.get("{a}out") == a, "the STOREd text reads back through the cluster")
    check(o.client().get("{a}out") == a and a == o.client().execute_command(*gen_args()),
          "on the owner: the value, and the same greedy text from the prompt itself")
    rc = o.raw()
    e = err(rc, *gen_args("STORE", "{b}out", prompt=("PROMPTKEY", "{a}p")))
    check(e == "CROSSSLOT Keys in request don't hash to the same slot", "keys in two slots: %s" % e)
    e = err(rc, *gen_args("STREAM", "{b}s", prompt=("TOKENSKEY", "{a}t")))
    check(e == "CROSSSLOT Keys in request don't hash to the same slot", "TOKENSKEY + STREAM in two slots: %s" % e)
    e = err(rc, "INFER.RAG", "s", "e", "{a}docs", "q", "STORE", "{b}o")
    check(e == "CROSSSLOT Keys in request don't hash to the same slot", "RAG's set and STORE in two slots: %s" % e)
    rc.close()
    rc = other.raw()
    want = "MOVED %d 127.0.0.1:%d" % (slot, owner.port)
    e = err(rc, *gen_args(prompt=("PROMPTKEY", "{a}p")))
    check(e == want, "PROMPTKEY on a node that does not own the slot: %s" % e)
    e = err(rc, *gen_args("STORE", "{a}o"))
    check(e == want, "a STORE key alone routes too: %s" % e)
    e = err(rc, "INFER.RAG", "s", "e", "{a}docs", "q")
    check(e == want, "INFER.RAG's vector set routes: %s" % e)
    e = err(rc, "INFER.EMBED", "e", "INTO", "{a}docs", "el", "text")
    check(e == want, "INFER.EMBED INTO routes: %s" % e)
    t, v = rc.call(*gen_args(prompt=("STORE",)))
    check(t == "$" and v, "a prompt spelling STORE names no key: runs anywhere")
    rc.close()


def test_replica(primaries, replicas, rcl, encoder):
    print("3. a cluster replica after READONLY: reads run, writes go to the primary")
    owner = rcl.get_node_from_key("{a}p")
    o = next(n for n in primaries if n.port == owner.port)
    rep = next((n for n in replicas if n.client().info("replication").get("master_port") == owner.port), None)
    if rep is None:
        TALLY.skip("no replica of the owner of {a}")
        return
    slot = rcl.keyslot("{a}p")
    rc = rep.raw()
    e = err(rc, *gen_args(prompt=("PROMPTKEY", "{a}p")))
    check(e == "MOVED %d 127.0.0.1:%d" % (slot, owner.port), "without READONLY the replica redirects: %s" % e)
    t, v = rc.call(*gen_args())
    check(t == "$" and v, "without READONLY a keyless generation runs on the replica")
    check(rc.call("READONLY") == ("+", "OK"), "READONLY")
    check(wait_until(lambda: rc.call("GET", "{a}p")[1] == b"Once upon a time", 10), "the prompt key replicated")
    want = o.client().execute_command(*gen_args(prompt=("PROMPTKEY", "{a}p")))
    t, v = rc.call(*gen_args(prompt=("PROMPTKEY", "{a}p")))
    check(t == "$" and v == want, "INFER.GENERATE PROMPTKEY on the replica = the primary's answer")
    t, v = rc.call(*gen_args(prompt=("Once upon a time",)))
    check(t == "$" and v == want, "keyless INFER.GENERATE on the replica = the primary's answer")
    redis_set = err(rc, "SET", "{a}out2", "x")
    check(redis_set == "MOVED %d 127.0.0.1:%d" % (slot, owner.port), "Redis's own SET there: %s" % redis_set)
    e = err(rc, *gen_args("STORE", "{a}out2", prompt=("PROMPTKEY", "{a}p")))
    check(e == redis_set, "STORE on the replica answers what SET answers: %s" % e)
    e = err(rc, *gen_args("STORE", "{a}out2"))
    check(e == redis_set, "STORE alone (a keyless prompt): %s" % e)
    redis_xadd = err(rc, "XADD", "{a}st", "*", "f", "v")
    e = err(rc, *gen_args("STREAM", "{a}st"))
    check(e == redis_xadd, "STREAM answers what XADD answers: %s" % e)
    redis_vadd = err(rc, "VADD", "{a}docs", "VALUES", 2, 1, 0, "x")
    e = err(rc, "INFER.EMBED", "e", "INTO", "{a}docs", "el", "text")
    check(e == redis_vadd, "INTO answers what VADD answers: %s" % e)
    e = err(rc, "INFER.RAG", "s", "e", "{a}docs", "q", "STORE", "{a}o")
    check(e == redis_set, "INFER.RAG with STORE: %s" % e)
    check(o.client().get("{a}out2") is None and rc.call("EXISTS", "{a}out2")[1] == 0, "nothing was written")
    if encoder:
        # RAG: chunk keys (a string, a hash, a missing one) and a TEMPLATE
        # key under the set's hash tag; FILTER and EF passed through
        rcl.set("{a}tpl", "{context}\nQ: {question}\nA:")
        rcl.set("{a}ck0", "The cat sat on the mat.")
        rcl.hset("{a}ck1", mapping={"text": "Stars shine at night."})
        rcl.set("{a}ck3", "Old news.")
        docs = [("the cat sat on the mat", 2001), ("stars shine at night", 2002), ("bread in the oven", 2003),
                ("old news from the past", 1999)]
        for i, (t, year) in enumerate(docs):
            rcl.execute_command("INFER.EMBED", "e", "INTO", "{a}docs", "d%d" % i, t, "SETATTR",
                                '{"src": "{a}ck%d", "year": %d}' % (i, year))
        rag = ["INFER.RAG", "s", "e", "{a}docs", "where is the cat", "COUNT", 4, "CONTEXTKEY-FIELD", "src",
               "TEMPLATE", "{a}tpl", "FILTER", ".year > 2000", "EF", 50, "WITHSOURCES", "WITHPROMPT",
               "MAXTOKENS", 5, "TEMPERATURE", 0]
        want = plain(o.raw().call(*rag))
        fields = dict(zip(want[0::2], want[1::2])) if isinstance(want, list) else {}
        states = {src[0]: src[2] for src in fields.get("sources", [])}
        check(states == {"d0": "used", "d1": "used", "d2": "no-text"} and
              "Q: where is the cat" in fields.get("prompt", ""),
              "INFER.RAG on the primary: string and hash chunk keys, a missing one, TEMPLATE, FILTER with EF (%s)"
              % states)
        check(wait_until(lambda: rc.call("EXISTS", "{a}ck1")[1] == 1 and rc.call("VCARD", "{a}docs")[1] == 4, 10),
              "the vector set and chunk keys replicated")
        got = plain(rc.call(*rag))
        timing = ("embed_ms", "queue_ms", "prefill_ms", "decode_ms", "reused_tokens")
        strip = (lambda r: [x for i, x in enumerate(r) if not (i % 2 and r[i - 1] in timing)]
                 if isinstance(r, list) else r)
        check(strip(got) == strip(want),
              "INFER.RAG without STORE on the replica = the primary's reply, sources and prompt (%s)" % str(got)[:120])
        e = err(rc, "INFER.RAG", "s", "e", "{a}nosuch", "q")
        check(e == "ERR vector set '{a}nosuch' does not exist", "a missing set on the replica: %s" % e)
    rc.close()


def test_plain_replica(encoder):
    print("4. a plain --replicaof replica: reads run, writes get -READONLY")
    p, r = Node(cluster=False), None
    try:
        r = Node("--replicaof", "127.0.0.1", str(p.port), cluster=False)
        check(wait_until(lambda: r.client().info("replication").get("master_link_status") == "up", 15),
              "replica linked")
        errs = load_everywhere([p, r], encoder)
        check(not errs, "model loaded on the primary and the replica %s" % errs)
        p.client().set("p", "Once upon a time")
        check(wait_until(lambda: r.client().get("p") is not None, 10), "the prompt key replicated")
        want = p.client().execute_command(*gen_args(prompt=("PROMPTKEY", "p")))
        rc = r.raw()
        t, v = rc.call(*gen_args(prompt=("PROMPTKEY", "p")))
        check(t == "$" and v == want, "INFER.GENERATE PROMPTKEY on the replica = the primary's answer")
        ro = err(rc, "SET", "x", "y")
        check(ro == "READONLY You can't write against a read only replica.", "Redis's SET there: %s" % ro)
        for what, args in (("STORE", gen_args("STORE", "out")), ("STREAM", gen_args("STREAM", "st")),
                           ("INTO", ["INFER.EMBED", "e", "INTO", "docs", "el", "text"]),
                           ("RAG STORE", ["INFER.RAG", "s", "e", "docs", "q", "STORE", "o"])):
            e = err(rc, *args)
            check(e == ro, "%s on the replica: %s" % (what, e))
        check(rc.call("EXISTS", "out")[1] == 0 and p.client().exists("out") == 0, "nothing was written")
        check(rc.call("CONFIG", "SET", "replica-read-only", "no") == ("+", "OK"), "replica-read-only no")
        t, v = rc.call(*gen_args("STORE", "out"))
        check(t == "$" and rc.call("GET", "out")[1] == v, "a writable replica takes STORE, as it takes SET")
        rc.close()
    finally:
        if r:
            r.stop()
        p.stop()


def test_front_ends_agree(node):
    print("5. inferkv-server's COMMAND INFO and GETKEYS = the module's")
    with Server() as s:
        srv, mod = RawClient(s.port), node.raw()
        for name in WANT_SPECS:
            a, b = info_entry(srv, name), info_entry(mod, name)
            same = (a and b and a["arity"] == b["arity"] and a["range"] == b["range"] and a["specs"] == b["specs"] and
                    a["flags"] - {"blocking"} == b["flags"] - {"module"})
            check(same, "%s: arity %s/%s, range %s/%s, flags %s / %s, specs equal %s" % (
                name, a and a["arity"], b and b["arity"], a and a["range"], b and b["range"],
                a and sorted(a["flags"]), b and sorted(b["flags"]), a and b and a["specs"] == b["specs"]))
        for args, _ in GETKEYS:
            ga, gb = plain(srv.call("COMMAND", "GETKEYS", *args)), plain(mod.call("COMMAND", "GETKEYS", *args))
            check(ga == gb, "GETKEYS %s ...: server %s, module %s" % (" ".join(map(str, args[:4])), ga, gb))
        e = info_entry(srv, "infer.generate")
        check(e and "write" not in e["flags"] and "readonly" in e["flags"],
              "inferkv-server: INFER.GENERATE is no write")
        srv.close()
        mod.close()


def test_server_write_rule():
    print("5b. inferkv-server: a generation without STORE is a read, with STORE a write")
    with Server("--infer-models-dir", MODELS, "--infer-threads", "1", "--appendonly", "yes", "--appendfsync",
                "always", "--save", "3600 1") as s:
        c = redis.Redis(host="127.0.0.1", port=s.port, socket_timeout=60)
        c.execute_command("INFER.LOAD", "s", "s.gguf")
        aof = os.path.join(s.dir, "appendonlydir")

        def incr():
            names = [f for f in os.listdir(aof) if f.endswith(".incr.aof")]
            return b"".join(open(os.path.join(aof, f), "rb").read() for f in names)

        check(wait_until(lambda: b"INFER" not in incr(), 5), "AOF open")
        before = incr()
        a = c.execute_command(*gen_args())
        check(a and incr() == before, "INFER.GENERATE without STORE writes nothing to the AOF")
        c.execute_command(*gen_args("STORE", "out"))
        after = incr()
        check(b"SET" in after[len(before):] and b"out" in after[len(before):] and b"INFER" not in after,
              "with STORE the AOF gets the SET, never the INFER.GENERATE")
        gone = tempfile.mkdtemp(dir=TMP)
        c.config_set("dir", gone)
        shutil.rmtree(gone)
        c.bgsave()
        check(wait_until(lambda: c.info("persistence")["rdb_last_bgsave_status"] == "err", 10), "a failed BGSAVE")
        rc = RawClient(s.port, timeout=60)
        misconf = err(rc, "SET", "k", "v")
        check(misconf and misconf.startswith("MISCONF"), "writes refused (MISCONF)")
        t, v = rc.call(*gen_args())
        check(t == "$" and v == a, "INFER.GENERATE without STORE still runs: a read")
        for what, args in (("STORE", gen_args("STORE", "o")), ("STREAM", gen_args("STREAM", "st")),
                           ("INTO", ["INFER.EMBED", "e", "INTO", "docs", "el", "text"]),
                           ("RAG STORE", ["INFER.RAG", "s", "e", "docs", "q", "STORE", "o"])):
            check(err(rc, *args) == misconf, "%s refused as a write (MISCONF)" % what)
        rc.close()
        c.config_set("dir", s.dir)


# distinct topics, so that questions have clear neighbours
CORPUS = [
    "The cat sat on the warm mat by the door.",
    "Farmers milk the cows early in the morning.",
    "Snow covers the mountains all winter long.",
    "The library lends books to every reader in town.",
    "A stone castle stands on the hill above the river.",
    "Bakers bake fresh bread before dawn.",
    "The ship sailed across the stormy ocean.",
    "Children play football in the park after school.",
    "The old clock in the tower strikes twelve at noon.",
    "Bees make honey from the flowers in the garden.",
    "The train leaves the station at seven every evening.",
    "Stars shine brightly over the quiet village at night.",
]
SHARDS = 3


def jstr(x):
    return json.dumps(x)


def test_cross_shard_rag(primaries, replicas, cc):
    print("6. RAG across shards: ClusterClient.rag = INFER.RAG on one node holding the whole corpus")
    rcl = cc.redis
    sets = shard_sets("kb", SHARDS)
    owners = [rcl.get_node_from_key(k).port for k in sets]
    check(len(set(owners)) == SHARDS and set(owners) <= {n.port for n in primaries},
          "the %d shard sets %s land on %d different primaries (%s)" % (SHARDS, sets, SHARDS, owners))
    for k in sets + ["{kb}all"]:
        rcl.delete(k)
    for i, d in enumerate(CORPUS):
        shard = sets[i % SHARDS]
        year = 1990 + i
        # the text in the attributes (the default) and in a chunk key under
        # the set's own hash tag (CONTEXTKEY-FIELD); the single-node set
        # {kb}all gets the same, under its tag
        for vset, tag in ((shard, "{%s}" % shard), ("{kb}all", "{kb}")):
            rcl.set("%sck:%d" % (tag, i), d)
            rcl.execute_command("INFER.EMBED", "e", "INTO", vset, "doc%d" % i, d, "SETATTR",
                                '{"text": %s, "year": %d, "src": %s}' % (jstr(d), year, jstr("%sck:%d" % (tag, i))))
    rcl.set("{kb}tpl", "Facts:\n{context}\n\nQ: {question}\nA:")
    check(sum(rcl.execute_command("VCARD", k) for k in sets) == len(CORPUS) == rcl.execute_command("VCARD", "{kb}all"),
          "every element in one shard, and all of them in {kb}all")

    def single(q, *extra):
        r = rcl.execute_command("INFER.RAG", "s", "e", "{kb}all", q, "WITHSOURCES", "WITHPROMPT", "MAXTOKENS", 12,
                                "TEMPERATURE", 0, *extra)
        m = {k.decode(): v for k, v in zip(r[0::2], r[1::2])}
        m["sources"] = [(a.decode(), float(b), c.decode()) for a, b, c in m["sources"]]
        return m

    cases = [("Where did the cat sit?", (), {}),
             ("a quiet village at night", ("COUNT", 3), {"count": 3}),
             ("what happens in winter", ("COUNT", 4, "FILTER", ".year > 1991"), {"count": 4, "filter": ".year > 1991"}),
             ("bread and honey", ("CHAT",), {"chat": True}),
             ("the castle by the river", ("CONTEXTKEY-FIELD", "src", "COUNT", 6),
              {"contextkey_field": "src", "count": 6}),
             ("cats and clocks", ("TEMPLATE", "{kb}tpl"), {"template_key": "{kb}tpl"})]
    for q, extra, kw in cases:
        want = single(q, *extra)
        got = cc.rag("s", "e", q, corpus="kb", shards=SHARDS, with_prompt=True, max_tokens=12, temperature=0, **kw)
        srcs = [(x.element, x.score, x.state) for x in got.sources]
        what = "%r %s" % (q, " ".join(map(str, extra)))
        check(srcs == want["sources"], "%s: the same top-k, scores and states (%s / %s)" % (
            what, srcs[:3], want["sources"][:3]))
        check(got.prompt == want["prompt"].decode() and got.text == want["text"].decode() and
              got.chunks_used == want["chunks_used"] and got.chunks_retrieved == want["chunks_retrieved"],
              "%s: the same prompt and answer (%r / %r)" % (what, got.text, want["text"]))
        check(all(x.vset in sets for x in got.sources), "%s: each source names its shard" % what)
    # the generation step goes to every node in turn, replicas included
    seen = {cc.rag("s", "e", "cat", corpus="kb", shards=SHARDS, max_tokens=2, temperature=0).node for _ in range(6)}
    check({int(n.split(":")[1]) for n in seen} == {n.port for n in primaries + replicas},
          "six keyless answers ran on the six nodes: %s" % sorted(seen))
    got = cc.rag("s", "e", "cat", sets=[sets[0], "kb.nosuch"], max_tokens=2, temperature=0)
    check(got.chunks_retrieved == len(CORPUS) // SHARDS and {x.vset for x in got.sources} == {sets[0]},
          "a missing shard set contributes nothing (as VSIM answers for it)")
    try:
        cc.rag("s", "e", "cat", corpus="kb", shards=SHARDS, filter=".year >", max_tokens=2)
        check(False, "a bad FILTER is refused")
    except inferkv.InferkvError as e:
        check("FILTER" in str(e) or "filter" in str(e), "a bad FILTER: %s" % e)
    try:
        cc.rag("nosuch", "e", "cat", corpus="kb", shards=SHARDS)
        check(False, "a model not loaded is refused")
    except inferkv.ModelNotLoaded as e:
        check("no such model" in str(e), "ModelNotLoaded: %s" % e)


def test_load_model_report(cc):
    print("7. ClusterClient.load_model: every node, a report per node")
    rep = cc.load_model("s2", "s.gguf")
    roles = sorted(r.role for r in rep.results)
    check(rep.ok and roles == ["primary"] * 3 + ["replica"] * 3, "loaded on 3 primaries and 3 replicas:\n%s" % rep)
    rep = cc.unload_model("s2")
    check(rep.ok and len(rep.results) == 6, "unloaded everywhere")
    rep = cc.load_model("bad", "nosuch.gguf", check=False)
    check(not rep.ok and len(rep.failed) == 6 and all("nosuch.gguf" in r.error for r in rep.failed),
          "a missing file fails on every node, each saying why:\n%s" % rep)
    try:
        cc.load_model("bad", "nosuch.gguf")
        check(False, "check=True raises")
    except inferkv.ModelLoadError as e:
        check(str(e).count("nosuch.gguf") == 6, "ModelLoadError names the six nodes")


def test_failover(primaries, replicas):
    print("8. failover: a primary killed during a stream of STOREd generations")
    rcl = RedisCluster(host="127.0.0.1", port=replicas[0].port, socket_timeout=10)
    victim = next(n for n in primaries if n.port == rcl.get_node_from_key("{f}x").port)
    rep = next(n for n in replicas if n.client().info("replication").get("master_port") == victim.port)
    acked = {}  # i -> (text, time acknowledged)
    stop = threading.Event()
    errors = []

    def stream():
        # ClusterClient.execute retries across the failover itself (for up
        # to 60 s here); what still fails is counted and tried again
        c = ClusterClient("127.0.0.1", replicas[0].port, socket_timeout=10)
        i = 0
        deadline = time.monotonic() + 90
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                a = c.execute(*gen_args("STORE", "{f}out:%d" % i, prompt=("Once upon a time %d" % i,), n=4),
                              retry_for=60)
                acked[i] = (a, time.monotonic())
                i += 1
            except Exception as e:  # noqa: BLE001 - counted, the same request again
                errors.append(repr(e)[:100])
                time.sleep(0.2)
        c.close()

    t = threading.Thread(target=stream)
    t.start()
    check(wait_until(lambda: len(acked) >= 20, 60), "20 generations STOREd before the kill")
    n_before = len(acked)
    killed_at = time.monotonic()
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(10)
    promoted = wait_until(lambda: rep.client().info("replication").get("role") == "master", 40, 0.1)
    check(promoted, "the replica was promoted (%.1f s)" % (time.monotonic() - killed_at))
    check(wait_until(lambda: any(at > killed_at for _, at in acked.values()) and
                     max(at for _, at in acked.values()) > killed_at + 1 and len(acked) > n_before + 5, 60),
          "after the promotion the client's retries succeed (%d generations after the kill, %d errors on the way)"
          % (len(acked) - n_before, len(errors)))
    print("  errors seen: %s" % sorted(set(errors))[:5])
    stop.set()
    t.join(60)
    r = rep.client()
    lost = [i for i, (a, at) in acked.items() if r.get("{f}out:%d" % i) != a]
    lost_early = [i for i in lost if acked[i][1] < killed_at - 1.0]
    print("  failover: %d acknowledged, %d lost (all acknowledged within %.0f ms before the kill: %s)" % (
        len(acked), len(lost), 1000, sorted(lost)))
    check(not lost_early, "nothing acknowledged more than 1 s before the kill is missing from the new primary %s"
          % lost_early)
    check(all(r.get("{f}out:%d" % i) == a for i, (a, at) in acked.items() if at > killed_at),
          "everything acknowledged after the kill is on the new primary")
    gen_ok = r.execute_command(*gen_args())
    check(gen_ok, "the new primary generates (its model was loaded beforehand)")
    rcl.close()


def main():
    if not os.path.exists(MODULE):
        print("no module at %s" % MODULE)
        TALLY.skip("module not built")
        TALLY.done()
    t0 = time.time()
    why = setup_models()
    encoder = why is None
    if why:
        print("  (no encoder: %s; the RAG-on-replica check is skipped)" % why)
    nodes = []
    try:
        for _ in range(6):
            nodes.append(Node())  # one at a time, so that a failed start still stops the others
        ok, last = ch.create_cluster(nodes, 1)
        check(ok, "redis-cli --cluster create (%s); cluster_state:ok on all six nodes, replicas linked" % last)
        primaries = [n for n in nodes if n.client().info("replication")["role"] == "master"]
        replicas = [n for n in nodes if n not in primaries]
        rcl = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=60)
        # models load per node: INFER.LOAD sent to every node, replicas too
        # (what docs/module.md shows with redis-py; ClusterClient.load_model
        # in test 7)
        rcl.execute_command("INFER.LOAD", "s", "s.gguf", target_nodes=RedisCluster.ALL_NODES)
        if encoder:
            rcl.execute_command("INFER.LOAD", "e", "e.gguf", target_nodes=RedisCluster.ALL_NODES)
        want = {b"s", b"e"} if encoder else {b"s"}
        loaded = [{dict(zip(m[0::2], m[1::2]))[b"name"] for m in n.client().execute_command("INFER.MODELS")}
                  for n in nodes]
        check(all(x == want for x in loaded), "INFER.LOAD with target_nodes=ALL_NODES: on all six nodes")
        test_command_info(nodes[0])
        test_routing(primaries, rcl)
        test_replica(primaries, replicas, rcl, encoder)
        rcl.close()
        test_plain_replica(encoder)
        test_front_ends_agree(nodes[0])
        test_server_write_rule()
        cc = ClusterClient("127.0.0.1", nodes[0].port, socket_timeout=60)
        if encoder:
            test_cross_shard_rag(primaries, replicas, cc)
        else:
            TALLY.skip("RAG across shards: no encoder")
        test_load_model_report(cc)
        cc.close()
        for n in nodes:
            check(n.alive(), "node %d still up" % n.port)
        test_failover(primaries, replicas)  # last: it kills a primary
    finally:
        for n in nodes:
            n.stop()
        bad = ch.bad_log_lines(LOGS)
        check(not bad, "server logs clean %s" % bad[:3])
        shutil.rmtree(TMP, ignore_errors=True)
    print("(%.1f s)" % (time.time() - t0))
    TALLY.done()


if __name__ == "__main__":
    main()
