"""test_ingest_cluster.py - inferkv-ingest --shards N: one corpus spread over N
vector sets (docs/ingest.md, "Sharding over a Redis Cluster").

Why a suite of its own: it needs a real Redis Cluster (three primaries, no
replicas, Debian's redis-server with build/inferkv.so, started by
cluster_harness.py as test_cluster.py starts its own), which
test_ingest.py's single inferkv-server does not give.  The encoder is a
gguf-gen tiny-bert over the BGE vocabulary, made by test_ingest.py's
setup_models; without the vocabulary the suite says SKIP.

Checks, on a small made-up tree:
  - a node without the encoder: the error names the node, nothing written;
    --load NAME=FILE loads it on every primary that holds a shard;
  - every file is in exactly one shard, the one crc32(path) % N names; the
    shard sets are the names clients/python/inferkv/shards.py gives, each
    on a primary of its own with its bookkeeping keys, and its meta
    records the split; every element's own vector (VSIM ELE) finds it;
    the per-shard summary lines and the JSON "shards" list;
  - a second run writes nothing on any node; a changed file is re-embedded
    in its shard only; a deleted file's chunks and record leave its shard;
    --dry-run writes nothing;
  - another shard count, a run without --shards, a shard set named as a
    plain --set, and a base with a hash tag are refused with what to do;
    --rebuild --shards 2 deletes the 3-shard split and makes the 2-shard
    one; more shards than primaries warn;
  - inferkv-ask --shards 3 answers from all three shards, sources merged by
    score; a wrong shard count and --stream are refused;
  - a redis-server outside cluster mode and an inferkv-server take
    --shards 2 with both sets on that one server.
Prints "N passed, N failed, N skipped"; exits 1 on failure.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import Server, Skip, Tally, check, eq  # noqa: E402
import cluster_harness as ch  # noqa: E402
from test_ingest import setup_models  # noqa: E402  (the encoder as test_ingest.py makes it, e.gguf)

import redis  # noqa: E402

ROOT = ch.ROOT
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from inferkv.shards import shard_sets  # noqa: E402  (the naming rule the tool must follow)

BUILD = ch.BUILD
GEN = os.path.join(BUILD, "gguf-gen")
INGEST = os.path.join(ROOT, "tools", "ingest", "inferkv-ingest")
ASK = os.path.join(ROOT, "tools", "ingest", "inferkv-ask")
PY = "/usr/bin/python3"
SLOW = int(os.environ.get("INFERKV_TEST_SLOWDOWN", "1"))
BASE = "kb"
OPTS = ["--set", BASE, "--embedder", "e", "--quant", "NOQUANT"]


def crc_shard(rel, n):
    return zlib.crc32(rel.encode("utf-8")) % n


def make_tree(d):
    """Files with distinct contents (distinct vectors); their paths spread over 3 shards and over 2."""
    files = {}
    for i, (name, thing) in enumerate([("alpha", "parser"), ("beta", "lexer"), ("gamma", "cache"),
                                       ("delta", "queue"), ("epsilon", "index")]):
        files["src/%s.c" % name] = ("/* The %s: %s. */\n#include <stddef.h>\n\nint %s_%s_run(int n%d) {\n"
                                    "    return n%d * %d + %d;\n}\n" % (thing, name, name, thing, i, i, i + 3, i * 7))
    files["pkg/tools.py"] = ("\"\"\"Tools.\"\"\"\n\n\ndef fold(xs):\n    return sum(xs)\n\n\n"
                             "class Ledger:\n    def post(self, amount):\n        self.total += amount\n")
    files["docs/guide.md"] = "# Guide\n\nHow to sail a boat.\n\n## Knots\n\nThe bowline and the hitch.\n"
    files["docs/faq.md"] = "# FAQ\n\nWhy is the sky blue?  Scattering.\n\n## Tides\n\nThe moon pulls the sea.\n"
    files["README.md"] = "# Harbour\n\nA project about ships, ropes and lighthouses.\n"
    files["notes/chores.txt"] = "paint the hull\nmend the sail\ncount the oars\n"
    files["web/app.js"] = "export function bell(times) {\n  return 'ding '.repeat(times);\n}\n"
    files["lib/map.rs"] = "/// A chart.\npub struct Chart { pub scale: u32 }\n\nfn plot() -> u32 {\n    7\n}\n"
    for rel, text in files.items():
        os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(d, rel), "w") as f:
            f.write(text)
    return sorted(files)


def ingest(port, root, *args, expect=0, as_json=True):
    p = subprocess.run([PY, INGEST, root, "--port", str(port), *(["--json"] if as_json else []), *args],
                       capture_output=True, text=True, timeout=300 * SLOW)
    if p.returncode != expect:
        raise AssertionError("inferkv-ingest %s: exit %d, want %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), p.returncode, expect, p.stdout[-2000:], p.stderr[-3000:]))
    out = json.loads(p.stdout.strip().splitlines()[-1]) if expect == 0 and as_json else p.stdout
    return out, p.stderr


def ask(port, *args, expect=0):
    """inferkv-ask: its stdout, or (expect != 0) its stderr."""
    p = subprocess.run([PY, ASK, "--port", str(port), *args], capture_output=True, text=True, timeout=300 * SLOW)
    if p.returncode != expect:
        raise AssertionError("inferkv-ask %s: exit %d, want %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), p.returncode, expect, p.stdout[-2000:], p.stderr[-3000:]))
    return p.stdout if expect == 0 else p.stderr


def s(v):
    return v.decode() if isinstance(v, bytes) else v


def records(c, vset):
    return {s(f): json.loads(v) for f, v in c.hgetall("{%s}:files" % vset).items()}


def meta(c, vset):
    return {s(k): s(v) for k, v in c.hgetall("{%s}:meta" % vset).items()}


def elements(c, vset):
    return {s(e) for e in c.execute_command("VRANGE", vset, "-", "+", -1)}


def max_uid(c, vset):
    info = c.execute_command("VINFO", vset)
    return int(dict(zip(map(s, info[0::2]), info[1::2]))["hnsw-max-node-uid"])


def changes(c):
    return int(c.info("persistence")["rdb_changes_since_last_save"])


class Corpus:
    """The shard sets of BASE over some servers: which server holds each (by KEYS on every server, so the
    test does not take the tool's word or its slot arithmetic for it)."""

    def __init__(self, servers, n):
        self.servers, self.n = servers, n          # servers: [(name, redis client)]
        self.sets = shard_sets(BASE, n)

    def holder(self, vset):
        got = [(name, c) for name, c in self.servers if self.local(c, vset)]
        eq(len(got), 1, "%s held by exactly one server" % vset)
        return got[0]

    @staticmethod
    def local(c, key):
        """Whether this server holds key.  KEYS, not EXISTS: a cluster node answers MOVED for a key of
        another node's slot, and KEYS lists what the node has (the names here have no glob characters)."""
        return key.encode() in c.keys(key)

    def client(self, vset):
        return self.holder(vset)[1]

    def check_split(self, expected):
        """Every file in exactly one shard, the one crc32 names; records and elements agree; meta says the
        split.  Returns {vset: server name}."""
        where = {}
        seen = {}
        for i, vset in enumerate(self.sets):
            name, c = self.holder(vset)
            where[vset] = name
            for key in ("{%s}:files" % vset, "{%s}:meta" % vset):
                check(self.local(c, key), "%s is on %s with its set" % (key, name))
            recs = records(c, vset)
            for rel in recs:
                check(rel not in seen, "%s in two shards (%s and %s)" % (rel, seen.get(rel), vset))
                seen[rel] = vset
                eq(crc_shard(rel, self.n), i, "%s: shard crc32(path) %% %d" % (rel, self.n))
            listed = [e for rec in recs.values() for e, _ in rec["chunks"]]
            eq(sorted(listed), sorted(elements(c, vset)), "%s: the records list exactly its elements" % vset)
            m = meta(c, vset)
            eq((m.get("shards"), m.get("shard"), m.get("base")), (str(self.n), str(i), BASE), "%s meta" % vset)
        eq(sorted(seen), expected, "every file in a shard")
        return where

    def snapshot(self):
        """What must not move when nothing is written: each server's change counter, each set's max uid."""
        return ([changes(c) for _, c in self.servers],
                {v: max_uid(self.client(v), v) for v in self.sets})


# ============================================================ the cluster

class ClusterSuite:
    def __init__(self, nodes, tree, expected):
        self.nodes, self.tree, self.expected = nodes, tree, expected
        self.port = nodes[0].port
        self.c3 = Corpus([("127.0.0.1:%d" % n.port, n.client()) for n in nodes], 3)

    def files_of(self, i, n=3):
        return [rel for rel in self.expected if crc_shard(rel, n) == i]

    def test_encoder_missing_names_the_node(self):
        self.nodes[0].client().execute_command("INFER.LOAD", "e", "e.gguf")
        _, err = ingest(self.port, self.tree, *OPTS, "--shards", "3", expect=1)
        others = ["127.0.0.1:%d" % n.port for n in self.nodes[1:]]
        check(all(" on %s: no model 'e' loaded" % o in err for o in others) and
              "127.0.0.1:%d" % self.port not in err, "the error names each node without it: %s" % err)
        check("every node that holds a shard needs the encoder" in err, "says what to do: %s" % err)
        eq([n.client().dbsize() for n in self.nodes], [0, 0, 0], "nothing written")

    def test_first_run_with_load(self):
        out, err = ingest(self.port, self.tree, *OPTS, "--shards", "3", "--load", "e=e.gguf")
        for n in self.nodes:
            names = {s(dict(zip(m[0::2], m[1::2]))[b"name"]) for m in n.client().execute_command("INFER.MODELS")}
            check("e" in names, "--load: e loaded on 127.0.0.1:%d" % n.port)
        where = self.c3.check_split(self.expected)
        eq(len(set(where.values())), 3, "3 shards on 3 different primaries: %r" % where)
        eq([x["set"] for x in out["shards"]], self.c3.sets, "the JSON lists the shards in order")
        eq([x["node"] for x in out["shards"]], [where[v] for v in self.c3.sets], "each shard's node as reported")
        eq([x["files"] for x in out["shards"]], [len(self.files_of(i)) for i in range(3)], "files per shard")
        check(all(x["files"] > 0 for x in out["shards"]), "the tree gives each shard files")
        eq((out["files"], out["new"], out["errors"], out["set"]), (len(self.expected), len(self.expected), 0, BASE),
           "totals")
        eq(out["elements"], sum(x["elements"] for x in out["shards"]), "elements total")
        check("warning" not in err, "no warning when each shard has a primary of its own: %s" % err)

    def test_own_vector_finds_each_element(self):
        for vset in self.c3.sets:
            c = self.c3.client(vset)
            for e in sorted(elements(c, vset)):
                got = c.execute_command("VSIM", vset, "ELE", e, "COUNT", 3, "WITHSCORES")
                hits = dict(zip(map(s, got[0::2]), map(float, got[1::2])))
                check(e in hits and hits[e] >= max(hits.values()), "%s: VSIM ELE finds it first: %r" % (e, hits))

    def test_ask_across_shards(self):
        """inferkv-ask --shards 3 answers from every shard (ClusterClient.rag: VSIM on each, merged)."""
        for n in self.nodes:
            n.client().execute_command("INFER.LOAD", "s", "s.gguf")
        total = sum(self.c3.client(v).execute_command("VCARD", v) for v in self.c3.sets)
        out = ask(self.port, "--set", BASE, "--shards", "3", "--model", "s", "--json", "--count", "100",
                  "--maxtokens", "6", "--temperature", "0", "how", "is", "the", "total", "kept?")
        j = json.loads(out)
        paths = {x["path"] for x in j["sources"]}
        eq(len(j["sources"]), total, "COUNT above the corpus: every element of the three shards is a source")
        check(paths <= set(self.expected) and len(paths) > 1, "sources are files of the tree: %s" % sorted(paths))
        scores = [x["score"] for x in j["sources"]]
        eq(scores, sorted(scores, reverse=True), "merged by score, best first")
        check(j["answer"] and int(j["chunks_retrieved"]) == total, "an answer: %r" % j["answer"])
        out = ask(self.port, "--set", BASE, "--shards", "3", "--model", "s", "--count", "3", "--maxtokens", "6",
                  "--temperature", "0", "ledger")
        eq(out.partition("\nsources:\n")[2].count("\n"), 3, "three sources printed: %r" % out)
        err = ask(self.port, "--set", BASE, "--shards", "2", "--model", "s", "q", expect=1)
        check("split over" in err or "no corpus" in err, "the wrong shard count: %s" % err)
        err = ask(self.port, "--set", BASE, "--shards", "3", "--model", "s", "--stream", "q", expect=1)
        check("--stream" in err, "--stream refused with --shards: %s" % err)

    def test_second_run_writes_nothing(self):
        before = self.c3.snapshot()
        out, _ = ingest(self.port, self.tree, *OPTS, "--shards", "3", as_json=False)
        lines = out.strip().splitlines()
        eq(len(lines), 4, "one line per shard and a total: %r" % out)
        for i, vset in enumerate(self.c3.sets):
            check(lines[i].strip().startswith("shard %d %s on 127.0.0.1:" % (i, vset)) and
                  " %d files: 0 new, 0 changed, %d unchanged" % (len(self.files_of(i)), len(self.files_of(i)))
                  in lines[i] and "0 written" in lines[i], "shard line: %r" % lines[i])
        check(lines[3].startswith("inferkv-ingest: %s (3 shards) <- " % BASE) and
              "%d files: 0 new, 0 changed" % len(self.expected) in lines[3], "total line: %r" % lines[3])
        eq(self.c3.snapshot(), before, "no write on any node (rdb_changes_since_last_save, hnsw-max-node-uid)")

    def test_changed_file_only_its_shard(self):
        rel = "src/gamma.c"
        j = crc_shard(rel, 3)
        vset = self.c3.sets[j]
        c = self.c3.client(vset)
        old = records(c, vset)[rel]["chunks"]
        with open(os.path.join(self.tree, rel), "a") as f:
            f.write("\nint gamma_extra(void) {\n    return 99;\n}\n")
        before = self.c3.snapshot()
        out, _ = ingest(self.port, self.tree, *OPTS, "--shards", "3", "--dry-run")
        eq([x["changed"] for x in out["shards"]], [1 if i == j else 0 for i in range(3)], "dry run: the plan")
        eq(self.c3.snapshot(), before, "--dry-run writes nothing")
        out, _ = ingest(self.port, self.tree, *OPTS, "--shards", "3")
        eq([x["changed"] for x in out["shards"]], [1 if i == j else 0 for i in range(3)], "changed per shard")
        check(out["shards"][j]["chunks_written"] >= 1, "re-embedded in %s" % vset)
        eq([x["chunks_written"] for i, x in enumerate(out["shards"]) if i != j], [0, 0], "nothing elsewhere")
        after = self.c3.snapshot()
        for k, v in enumerate(self.c3.sets):
            if k != j:
                eq(after[1][v], before[1][v], "%s: no new vector" % v)
                eq(after[0][self.c3.servers.index(self.c3.holder(v))], before[0][self.c3.servers.index(
                    self.c3.holder(v))], "%s's node: no write" % v)
        new = records(c, vset)[rel]["chunks"]
        check(new != old and any("gamma_extra" in json.loads(c.execute_command("VGETATTR", vset, e))["text"]
                                 for e, _ in new), "the new text is in %s" % vset)
        self.c3.check_split(self.expected)

    def test_deleted_file_leaves_its_shard(self):
        rel = "docs/faq.md"
        j = crc_shard(rel, 3)
        vset = self.c3.sets[j]
        c = self.c3.client(vset)
        gone = [e for e, _ in records(c, vset)[rel]["chunks"]]
        os.remove(os.path.join(self.tree, rel))
        self.expected.remove(rel)
        out, _ = ingest(self.port, self.tree, *OPTS, "--shards", "3")
        eq([x["deleted"] for x in out["shards"]], [1 if i == j else 0 for i in range(3)], "deleted per shard")
        eq(out["shards"][j]["chunks_removed"], len(gone), "its chunks removed")
        check(rel not in records(c, vset) and not (set(gone) & elements(c, vset)), "record and elements gone")
        self.c3.check_split(self.expected)

    def test_other_splits_refused(self):
        before = self.c3.snapshot()
        _, err = ingest(self.port, self.tree, *OPTS, "--shards", "2", expect=1)
        check("split over 3 shards" in err and "--rebuild" in err and "--shards 3" in err, "another N: %s" % err)
        _, err = ingest(self.port, self.tree, *OPTS, expect=1)
        check("split over 3 shards" in err and "--shards 3" in err and "--rebuild" in err, "no --shards: %s" % err)
        vset = self.c3.sets[1]
        _, err = ingest(self.port, self.tree, "--set", vset, "--embedder", "e", "--quant", "NOQUANT", expect=1)
        check("%s is shard 1 of 3 of the corpus %s" % (vset, BASE) in err and "--rebuild" in err,
              "a shard set as a plain --set: %s" % err)
        _, err = ingest(self.port, self.tree, "--set", "{kb}x", "--shards", "3", expect=2)
        check("without a hash tag" in err, "a base with a hash tag: %s" % err)
        eq(self.c3.snapshot(), before, "nothing written by the refused runs")

    def test_rebuild_to_two_shards(self):
        c2 = Corpus(self.c3.servers, 2)
        out, err = ingest(self.port, self.tree, *OPTS, "--shards", "2", "--rebuild", "--dry-run")
        check("would delete the split over 3 shards" in err, "dry run says what --rebuild would delete: %s" % err)
        self.c3.check_split(self.expected)
        out, err = ingest(self.port, self.tree, *OPTS, "--shards", "2", "--rebuild")
        check("--rebuild deleted the split over 3 shards" in err, "says what it deleted: %s" % err)
        c2.check_split(self.expected)
        eq(out["new"], len(self.expected), "all files ingested again")
        for v in sorted(set(self.c3.sets) - set(c2.sets)):
            eq([k for _, c in self.c3.servers for k in (v, "{%s}:files" % v, "{%s}:meta" % v) if c2.local(c, k)],
               [], "%s and its keys deleted" % v)
        _, err = ingest(self.port, self.tree, *OPTS, "--shards", "3", expect=1)
        check("split over 2 shards" in err, "now the corpus has 2 shards: %s" % err)

    def test_more_shards_than_primaries_warn(self):
        _, err = ingest(self.port, self.tree, *OPTS, "--shards", "6", "--rebuild", "--dry-run")
        check("warning: 6 shards land on 3 primaries" in err and "more shards than the cluster's 3 primaries" in err,
              "warned: %s" % err)

    def test_uneven_slots_warn(self):
        """Shard 1's slot given to shard 0's primary (an empty slot moves by CLUSTER SETSLOT ... NODE on
        both nodes): two shards on one primary while another has none, which the run warns about."""
        sets = self.c3.sets
        slot = self.nodes[0].client().cluster("keyslot", sets[1])
        by_port = {n.port: n for n in self.nodes}
        owner = by_port[int(self.c3.holder(sets[0])[0].rsplit(":", 1)[1])]
        giver = by_port[owner_of(self.nodes[0], slot)]
        check(giver is not owner, "%s and %s are on different primaries before" % (sets[0], sets[1]))
        eq(giver.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot), 0, "slot %d is empty" % slot)
        myid = owner.client().execute_command("CLUSTER", "MYID")
        giver.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", myid)
        owner.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", myid)
        owner.client().execute_command("CLUSTER", "BUMPEPOCH")   # so that the third node takes the move too
        check(server_harness.wait_until(lambda: owner_of(self.nodes[0], slot) == owner.port, 10, 0.05),
              "the node the tool asks sees the move")
        _, err = ingest(self.port, self.tree, *OPTS, "--shards", "3", "--rebuild", "--dry-run")
        check("warning: 3 shards land on 2 primaries" in err and "not spread evenly" in err and
              "127.0.0.1:%d holds %s, %s" % (owner.port, sets[0], sets[1]) in err, "warned: %s" % err)


def owner_of(node, slot):
    """The port of slot's primary in node's view."""
    for row in node.client().execute_command("CLUSTER", "SLOTS"):
        if int(row[0]) <= slot <= int(row[1]):
            return int(row[2][1])
    return None


# ============================================================ one server, no cluster

def one_server(label, port, client, tree, expected):
    """--shards 2 on a server outside cluster mode: both sets there, split by crc32."""
    def fn():
        out, _ = ingest(port, tree, *OPTS, "--shards", "2", "--load", "e=e.gguf")
        corpus = Corpus([(label, client)], 2)
        where = corpus.check_split(expected)
        eq(sorted(where.values()), [label, label], "both shard sets on the one server")
        eq(out["elements"], sum(client.execute_command("VCARD", v) for v in corpus.sets), "elements")
        before = corpus.snapshot()
        out, _ = ingest(port, tree, *OPTS, "--shards", "2")
        eq((out["chunks_written"], out["new"], out["changed"]), (0, 0, 0), "second run: nothing to do")
        eq(corpus.snapshot(), before, "second run writes nothing")
        _, err = ingest(port, tree, *OPTS, expect=1)
        check("split over 2 shards" in err, "a plain run refused: %s" % err)
        client.execute_command("INFER.LOAD", "s", "s.gguf")
        j = json.loads(ask(port, "--set", BASE, "--shards", "2", "--model", "s", "--json", "--count", "100",
                           "--maxtokens", "4", "--temperature", "0", "ledger"))
        eq(len(j["sources"]), out["elements"], "inferkv-ask --shards 2 searches both sets on the one server")
    fn.__name__ = "one_server_%s" % label.split()[0].replace("-", "_")
    return fn


def main():
    t = Tally()
    for what, path in (("the module", ch.MODULE), ("gguf-gen", GEN), ("inferkv-server", server_harness.SERVER),
                       ("redis-server", ch.REDIS)):
        if not os.path.exists(path):
            t.skip("sharded ingestion: no %s at %s" % (what, path))
            t.done()
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="inferkv-ingest-cluster-")
    models = os.path.join(tmp, "models")
    os.mkdir(models)
    try:
        setup_models(models)
    except Skip as e:
        t.skip("sharded ingestion: %s" % e)
        shutil.rmtree(tmp, ignore_errors=True)
        t.done()
    logs, nodes = [], []
    try:
        for _ in range(3):
            nodes.append(ch.Node(tmp, models, logs))  # one at a time: a failed start still stops the others
        ok, last = ch.create_cluster(nodes, 0)
        if not ok:
            raise RuntimeError("redis-cli --cluster create: %s" % last)
        tree = os.path.join(tmp, "tree")
        expected = make_tree(tree)
        check(all(any(crc_shard(r, n) == i for r in expected) for n in (2, 3) for i in range(n)),
              "the made-up tree has files for every shard")
        suite = ClusterSuite(nodes, tree, expected)
        for fn in (suite.test_encoder_missing_names_the_node, suite.test_first_run_with_load,
                   suite.test_own_vector_finds_each_element, suite.test_ask_across_shards,
                   suite.test_second_run_writes_nothing,
                   suite.test_changed_file_only_its_shard, suite.test_deleted_file_leaves_its_shard,
                   suite.test_other_splits_refused, suite.test_rebuild_to_two_shards,
                   suite.test_more_shards_than_primaries_warn, suite.test_uneven_slots_warn):
            t.run(fn)
        for n in nodes:
            n.stop()
        plain = ch.Node(tmp, models, logs, cluster=False)
        nodes.append(plain)
        t.run(one_server("redis-server (no cluster)", plain.port, plain.client(), tree, expected))
        srv = Server("--infer-models-dir", models, "--infer-threads", "1")
        try:
            c = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=60)
            t.run(one_server("inferkv-server", srv.port, c, tree, expected))
        finally:
            srv.stop()
            shutil.rmtree(srv.dir, ignore_errors=True)

        def server_logs_clean():
            bad = ch.bad_log_lines(logs)
            check(not bad, "server logs clean: %s" % bad[:3])
        t.run(server_logs_clean)
    except Exception as e:  # noqa: BLE001 - a setup failure is one failure, not a traceback without a summary
        print("  FAIL setup: %r" % e)
        t.failed += 1
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("(%.1f s)" % (time.time() - t0))
    t.done()


if __name__ == "__main__":
    main()
