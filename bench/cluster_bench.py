"""cluster_bench.py - what going through Redis Cluster costs an inference
request, measured against one node on the same machine (bench_cluster.sh
runs it and says how to size it).

Setup: three Debian redis-server 7.0.15 primaries with inferkv.so
(cluster-enabled, joined by redis-cli --cluster create; no replicas: this
measures routing, not replication) and one plain redis-server with the
module, every node with one engine thread (infer-threads 1), the same
generator (stories260K from ../shared, else gguf-gen's twin) and encoder
(gguf-gen minilm-l6 over the BGE vocabulary).  All four share the same 2
cores, so this measures overhead, not scale: with more machines each
primary would have its cores to itself.

  1. generate  INFER.GENERATE ... PROMPTKEY {uN}p MAXTOKENS n, greedy, from
               C clients at once: through redis-py's RedisCluster (routed by
               the key's slot to one of the three primaries) and through
               redis.Redis to the single node, the two sides taking turns
               (A B A B, never both at once).  tok/s = generated tokens (the
               nodes' INFER.STATS generated_tokens) over wall time; TTFT is
               the wall time of a MAXTOKENS 1 request (round trip included).
  2. rag       a corpus of K chunks over three shards (inferkv.shards names,
               one per primary) and, whole, in one set on the single node;
               per question ClusterClient.rag (embed on one node, VSIM on the
               three shards at once, merge and chunk reads, INFER.ANSWER)
               against INFER.RAG on the single node, taking turns: the
               client's split (embed, fan-out, merge, generation) and the
               totals, median and p90.  The two answers are compared
               (greedy): a difference is reported, not hidden.

Writes bench/out/cluster.json and prints a table.  Figures, not tests.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import cluster_harness as ch  # noqa: E402

import redis  # noqa: E402
from redis.cluster import RedisCluster  # noqa: E402

from inferkv import ClusterClient, shard_sets  # noqa: E402

SHARED = os.environ.get("INFERKV_SHARED", os.path.join(ROOT, "..", "shared"))
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
BERT_VOCAB = os.path.join(SHARED, "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf")
TOPICS = ["cats", "farming", "winter", "libraries", "castles", "bread", "ships", "football", "clocks", "bees",
          "trains", "stars", "rivers", "markets", "gardens", "storms"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def r1(x):
    return None if x is None else round(x, 1)


def setup_models(models, gen):
    os.makedirs(models)
    if os.path.exists(STORIES):
        shutil.copy(STORIES, os.path.join(models, "s.gguf"))
    else:
        subprocess.run([gen, "--preset", "stories260k", "-q", "-o", os.path.join(models, "s.gguf")], check=True)
    cmd = [gen, "--preset", "minilm-l6", "-q", "-o", os.path.join(models, "e.gguf")]
    if os.path.exists(BERT_VOCAB):
        cmd[3:3] = ["--vocab", BERT_VOCAB]
    subprocess.run(cmd, check=True)


def generated(clients):
    return sum(int(dict(zip(*[iter(c.execute_command("INFER.STATS"))] * 2)).get(b"generated_tokens", 0))
               for c in clients)


def gen_round(make_client, stat_clients, n_clients, per_client, tokens):
    """n_clients threads, each per_client INFER.GENERATE PROMPTKEY {uN}p:
    (tok/s, wall s, errors)."""
    errors = []
    before = generated(stat_clients)

    def work(k):
        c = make_client()
        for j in range(per_client):
            try:
                c.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "{u%d}p" % ((k * per_client + j) % 64),
                                  "MAXTOKENS", tokens, "TEMPERATURE", 0)
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(repr(e)[:120])
        c.close()

    t0 = time.monotonic()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(n_clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    return (generated(stat_clients) - before) / wall, wall, errors


def ttft(c, n):
    out = []
    for j in range(n):
        t0 = time.monotonic()
        c.execute_command("INFER.GENERATE", "s", "PROMPTKEY", "{u%d}p" % (j % 64), "MAXTOKENS", 1, "TEMPERATURE", 0)
        out.append((time.monotonic() - t0) * 1000)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--requests", type=int, default=24, help="INFER.GENERATE per client per round")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--chunks", type=int, default=300)
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out", "cluster.json"))
    a = ap.parse_args()
    os.environ["INFERKV_BUILD"] = a.build
    tmp = tempfile.mkdtemp(prefix="inferkv-bench-cluster-")
    models = os.path.join(tmp, "models")
    setup_models(models, os.path.join(a.build, "gguf-gen"))
    reg = []
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "nodes": "3 primaries + 1 single node, same 2 cores",
           "note": "overhead of the cluster path on one machine, not scale-out", "generate": [], "rag": {}}
    try:
        nodes = [ch.Node(tmp, models, reg) for _ in range(3)]
        ok, last = ch.create_cluster(nodes, 0)
        if not ok:
            raise SystemExit("cluster create failed: %s" % last)
        single = ch.Node(tmp, models, reg, cluster=False)
        errs = ch.load_everywhere(nodes + [single], [("s", "s.gguf"), ("e", "e.gguf")])
        if errs:
            raise SystemExit("INFER.LOAD failed: %s" % errs)
        rcl = RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=300)
        sc = single.client(socket_timeout=300)
        for i in range(64):
            p = "Once upon a time there was a little %s" % TOPICS[i % len(TOPICS)]
            rcl.set("{u%d}p" % i, p)
            sc.set("{u%d}p" % i, p)
        node_clients = [n.client() for n in nodes]
        owners = sorted({rcl.get_node_from_key("{u%d}p" % i).port for i in range(64)})
        out["prompt_keys_on_primaries"] = len(owners)

        # 1. generation, A B A B
        for n_clients in [int(x) for x in a.clients.split(",") if x]:
            rows = {"cluster": [], "single": []}
            for _ in range(a.rounds):
                for side in ("cluster", "single"):
                    if side == "cluster":
                        rate, wall, e = gen_round(
                            lambda: RedisCluster(host="127.0.0.1", port=nodes[0].port, socket_timeout=300),
                            node_clients, n_clients, a.requests, a.tokens)
                    else:
                        rate, wall, e = gen_round(lambda: single.client(socket_timeout=300), [sc], n_clients,
                                                  a.requests, a.tokens)
                    rows[side].append({"tok_s": rate, "wall_s": wall, "errors": len(e)})
            row = {"clients": n_clients, "requests": n_clients * a.requests, "max_tokens": a.tokens}
            for side in rows:
                row[side + "_tok_s"] = r1(statistics.median(x["tok_s"] for x in rows[side]))
                row[side + "_errors"] = sum(x["errors"] for x in rows[side])
            row["cluster_over_single"] = round(row["cluster_tok_s"] / row["single_tok_s"], 3)
            out["generate"].append(row)
        t_cl, t_si = [], []
        for _ in range(a.rounds):
            t_cl += ttft(rcl, 10)
            t_si += ttft(sc, 10)
        out["ttft_ms"] = {"cluster_p50": r1(statistics.median(t_cl)), "single_p50": r1(statistics.median(t_si)),
                          "cluster_p90": r1(pct(t_cl, 90)), "single_p90": r1(pct(t_si, 90))}

        # 2. RAG across shards against INFER.RAG on one node
        sets = shard_sets("kb", 3)
        out["rag"]["shard_nodes"] = len({rcl.get_node_from_key(k).port for k in sets})
        t0 = time.monotonic()
        for i in range(a.chunks):
            text = "Note %d about %s: the %s of %s is kept in the %s." % (
                i, TOPICS[i % 16], TOPICS[(i * 7) % 16], TOPICS[(i * 3) % 16], TOPICS[(i * 5) % 16])
            attrs = json.dumps({"text": text})
            rcl.execute_command("INFER.EMBED", "e", "INTO", sets[i % 3], "c%d" % i, text, "SETATTR", attrs)
            sc.execute_command("INFER.EMBED", "e", "INTO", "{kb}all", "c%d" % i, text, "SETATTR", attrs)
        out["rag"]["ingest_s"] = round(time.monotonic() - t0, 1)
        cc = ClusterClient("127.0.0.1", nodes[0].port, socket_timeout=300)
        split = {"embed_ms": [], "fanout_ms": [], "merge_ms": [], "generate_ms": [], "total_ms": []}
        single_ms, same = [], 0
        for q in range(a.questions):
            question = "What is kept about %s and %s?" % (TOPICS[q % 16], TOPICS[(q * 5 + 3) % 16])
            t0 = time.monotonic()
            got = cc.rag("s", "e", question, corpus="kb", shards=3, count=5, max_tokens=16, temperature=0)
            split["total_ms"].append((time.monotonic() - t0) * 1000)
            for k in ("embed_ms", "fanout_ms", "merge_ms", "generate_ms"):
                split[k].append(getattr(got, k))
            t0 = time.monotonic()
            r = sc.execute_command("INFER.RAG", "s", "e", "{kb}all", question, "COUNT", 5, "MAXTOKENS", 16,
                                   "TEMPERATURE", 0)
            single_ms.append((time.monotonic() - t0) * 1000)
            same += dict(zip(r[0::2], r[1::2]))[b"text"].decode() == got.text
        out["rag"].update({k: {"p50": r1(statistics.median(v)), "p90": r1(pct(v, 90))} for k, v in split.items()})
        out["rag"]["single_node_total_ms"] = {"p50": r1(statistics.median(single_ms)), "p90": r1(pct(single_ms, 90))}
        out["rag"]["same_answer"] = "%d/%d" % (same, a.questions)
        out["rag"]["chunks"] = a.chunks
        cc.close()
        rcl.close()
    finally:
        for n in reg:
            n.stop()
        bad = ch.bad_log_lines(reg)
        shutil.rmtree(tmp, ignore_errors=True)
        if bad:
            print("server log problems: %s" % bad[:3])
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    print("%-8s %-9s %-12s %-12s %-8s" % ("clients", "requests", "cluster tok/s", "single tok/s", "ratio"))
    for row in out["generate"]:
        print("%-8d %-9d %-13s %-12s %-8s" % (row["clients"], row["requests"], row["cluster_tok_s"],
                                              row["single_tok_s"], row["cluster_over_single"]))
    print("TTFT (MAXTOKENS 1, round trip) p50: cluster %s ms, single %s ms" % (
        out["ttft_ms"]["cluster_p50"], out["ttft_ms"]["single_p50"]))
    rg = out["rag"]
    print("RAG across 3 shards, p50 ms: embed %s, fan-out %s, merge %s, generate %s, total %s; "
          "INFER.RAG on one node %s; same answer %s" % (
              rg["embed_ms"]["p50"], rg["fanout_ms"]["p50"], rg["merge_ms"]["p50"], rg["generate_ms"]["p50"],
              rg["total_ms"]["p50"], rg["single_node_total_ms"]["p50"], rg["same_answer"]))
    print("wrote %s" % a.out)


if __name__ == "__main__":
    main()
