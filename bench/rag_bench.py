"""rag_bench.py - embeddings/s of BERT-shaped encoders, what fraction of the
machine's compute peak that is, and where the time of an INFER.RAG goes.
Run by bench_rag.sh, which generates the models and builds bench/peak.c.

  1. peak      cores x GHz x operations per cycle, for int8 VNNI multiply-
               accumulates and fp32 FMAs.  bench/peak.c measures the clock (a chain
               of dependent adds) and, with tight register-only loops on one
               thread, the operations per cycle, rounded to the power of two the
               hardware issues (Zen 5 or Sapphire Rapids: 2 x vpdpbusd zmm = 128
               int8 MACs and 2 x vfmadd zmm = 32 fp32 FMAs per cycle); run before
               and after the benchmarks, the highest clock is kept (other work
               on the shared machine only lowers what a measure sees).  What the
               loops got on THREADS threads at once is stored next to it.
  2. embed     inferkv-cli bench --embed for each model x type x batch, 128-token
               inputs: embeddings/s (median of REPS calls; small batches get more
               calls, at least 32 inputs' worth) and per CPU-second; MACs per
               chunk from the model's shape (inferkv-cli info), GMAC/s, and the
               fraction of peak: the time the MACs would take at peak (matrix
               products at the int8 VNNI rate for Q8_0, the fp32 FMA rate for F16
               and for attention, which runs in fp32) over the time they took.
               With perf available, a profile of one CLI run (where the time goes).
  3. server    INFER.EMBED through inferkv-server from 1 and 32 concurrent clients
               (one 128-token text per call; the embedding scheduler batches across
               clients), alternating with the CLI at batch 1 and 32 on the same
               model in the same run: the front end's overhead.
  4. rag       INFER.RAG over a vector set of chunks (INFER.EMBED ... INTO, timed as
               ingest), stories260K as the generator: per question, the reply's own
               embed_ms / queue_ms / prefill_ms / decode_ms, the client's total,
               and the same steps from the outside (INFER.EMBED, VSIM, INFER.GENERATE
               with MAXTOKENS 1, then with MAXTOKENS n: prefill / decode) on a second
               copy of the generator (its own prefix cache, so neither path warms
               the other's); median and p90.  The reply has no search time: its
               "rest" is the client's total minus the reply's parts (search, prompt
               building and tokenizing, the round trip); the outside VSIM times the
               search alone.  The prompt built from VSIM's hits with the default
               template is checked against the reply's WITHPROMPT.

Figures, not tests: nothing here asserts a target.  The engine threads of the
server run at normal priority (infer-idle-priority no, infer-nice 0) so that
they compete for the cores as the CLI does.
"""
import argparse
import datetime
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from infer_bench import Conn, Target  # noqa: E402

SHARED = os.environ.get("INFERKV_SHARED", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       "..", "shared"))
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")

# Words that are one WordPiece token each in BERT's uncased vocabulary (checked
# with INFER.TOKENIZE before use; any that is not is dropped).
WORDS = ("the of and to in is was he for it with as his on be at by had are but from or have an they which one "
         "you were her all she there would their we him been has when who will more no if out so said what up its "
         "about into than them can only other new some could time these two may then do first any my now such like "
         "our over man me even most made after also did many before must through back years where much your way "
         "well down should because each just those people how too little state good very make world still own see "
         "men work long get here between both life being under never day same another know while last might us "
         "great old year off come since against go came right used take three house small water tree river cat "
         "dog bird boat ship moon sun rain snow bread apple garden school city road door window light night").split()

NAMES = ("Ada Ben Cleo Dan Eva Finn Gus Hana Ivo Jade Kai Lena Milo Nora Otto Pia Quin Rosa Sam Tara Uma Vic "
         "Wren Yara Zed").split()
ANIMALS = "cat dog fox owl bear frog duck mouse rabbit deer horse goat".split()
PLACES = ("river", "old mill", "tall hill", "green forest", "quiet lake", "stone bridge", "big farm", "little town",
          "sandy beach", "dark cave", "windy field", "red barn")
THINGS = ("ball", "kite", "boat", "drum", "book", "hat", "cake", "lamp", "map", "bell")
ACTS = ("sing songs", "run races", "bake bread", "read books", "fly kites", "paint pictures", "catch fish",
        "climb trees", "plant flowers", "tell stories")


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def r3(x):
    return None if x is None else round(x, 3)


# ---- 1. peak -------------------------------------------------------------------------


def cpuinfo_mhz():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except OSError:
        pass
    return None


def cpu_model():
    try:
        d = {}
        for line in open("/proc/cpuinfo"):
            if ":" in line:
                k, v = line.split(":", 1)
                d.setdefault(k.strip(), v.strip())
        return {"model_name": d.get("model name"), "family": d.get("cpu family"), "model": d.get("model")}
    except OSError:
        return {}


def pow2(x):
    """x rounded to the nearest power of two (in log scale)."""
    import math
    return 2 ** round(math.log2(x)) if x and x > 0 else None


def combine_peaks(runs, threads):
    """cores x GHz x ops/cycle from the peak.c runs (see the docstring)."""
    runs = [p for p in runs if p]
    if not runs:
        return None
    cores = min(threads, os.cpu_count() or threads)
    ghz = max(max(p["ghz"], p["ghz_after"]) for p in runs)
    i8 = pow2(max(p["int8_vnni_macs_per_cycle_1t"] for p in runs))
    f32 = pow2(max(p["fp32_fma_per_cycle_1t"] for p in runs))
    return {"cores": cores, "ghz": round(ghz, 3), "int8_macs_per_cycle_per_core": i8,
            "fp32_fmas_per_cycle_per_core": f32,
            "int8_vnni_gmacs": round(cores * ghz * i8, 1), "fp32_gfmas": round(cores * ghz * f32, 1),
            "loops_measured": {"int8_vnni_gmacs": max(p["int8_vnni_gmacs"] for p in runs),
                               "fp32_gfmas": max(p["fp32_gfmas"] for p in runs)},
            "runs": runs}


def per_core(peak):
    """The peak of one core, for figures per CPU-second."""
    return dict(peak, int8_vnni_gmacs=peak["int8_vnni_gmacs"] / peak["cores"],
                fp32_gfmas=peak["fp32_gfmas"] / peak["cores"])


def measure_peak(peak_bin, threads):
    if not peak_bin or not os.path.exists(peak_bin):
        return None
    out = subprocess.run([peak_bin, str(threads), "0.3"], stdout=subprocess.PIPE, text=True).stdout
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


# ---- 2. the CLI's embeddings/s ------------------------------------------------------------


def model_shape(cli, path):
    """From inferkv-cli info: layers, embd, ffn, heads, kv heads, head dim, pooling, arch."""
    txt = subprocess.run([cli, "info", path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    s = {}
    m = re.search(r"^architecture:\s*(\S+)", txt, re.M)
    s["arch"] = m.group(1) if m else "bert"
    for key, pat in (("layers", r"^layers:\s*(\d+)"), ("embd", r"^embedding:\s*(\d+)"),
                     ("ffn", r"^feed-forward:\s*(\d+)"), ("params", r"^parameters:\s*(\d+)")):
        m = re.search(pat, txt, re.M)
        s[key] = int(m.group(1)) if m else None
    m = re.search(r"^heads:\s*(\d+) \(kv (\d+), head dim (\d+)\)", txt, re.M)
    s["heads"], s["kv_heads"], s["head_dim"] = (int(m.group(i)) for i in (1, 2, 3)) if m else (None,) * 3
    m = re.search(r"pooling (\w+)", txt)
    s["pooling"] = m.group(1) if m else "mean"
    return s


def macs_per_chunk(s, T):
    """Multiply-accumulates to embed one sequence of T tokens.

    Per layer and token, the matrix products: Q and O (E x H*hd each), K and V
    (E x KVH*hd each), the feed-forward (E x F up and F x E down; nomic-bert's
    gated one has a third E x F).  Per layer and sequence, attention: q k^T and
    p v, T x T x hd per head each.  The engine stops the last layer after
    attention for the rows pooling does not read: with CLS or last pooling, O
    and the feed-forward of the last layer run on one row instead of T.
    Returns (matmul MACs, attention MACs, MACs of the full textbook count)."""
    E, F, L = s["embd"], s["ffn"], s["layers"]
    H, KVH, hd = s["heads"], s["kv_heads"], s["head_dim"]
    qkvo = E * H * hd * 2 + E * KVH * hd * 2
    ff = E * F * (3 if s["arch"] == "nomic-bert" else 2)
    per_tok = qkvo + ff
    attn = 2 * T * T * H * hd
    mm = L * T * per_tok
    full = mm + L * attn
    if s["pooling"] in ("cls", "last"):
        mm -= (T - 1) * (E * H * hd + ff)
    return mm, L * attn, full


def cli_embed(cli, path, batches, tokens, threads, reps):
    """inferkv-cli bench --embed's JSON.  A rep is one infer_embed call of
    `batch` inputs, so small batches get more reps (at least ~32 inputs'
    worth, at most 100) for their median to mean something."""
    out = None
    for group in sorted(set(min(100, max(reps, -(-32 // b))) for b in batches)):
        bs = [b for b in batches if min(100, max(reps, -(-32 // b))) == group]
        cmd = [cli, "bench", "--embed", "-m", path, "--tokens", str(tokens), "--threads", str(threads),
               "--reps", str(group), "--json"]
        for b in bs:
            cmd += ["--batch", str(b)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if p.returncode != 0 or not lines:
            raise RuntimeError("inferkv-cli bench --embed failed: %s" % (p.stderr.strip() or p.stdout.strip())[-300:])
        j = json.loads(lines[-1])
        for b in j["batches"]:
            b["reps"] = group
        if out is None:
            out = j
        else:
            out["batches"] += j["batches"]
    out["batches"].sort(key=lambda b: batches.index(b["batch"]))
    return out


def fraction_of_peak(eps, mm, attn, wtype, peak):
    """The time the MACs of eps chunks would take at peak over one second."""
    if not peak or not eps:
        return None
    int8 = peak["int8_vnni_gmacs"] * 1e9
    fp32 = peak["fp32_gfmas"] * 1e9
    mm_rate = int8 if wtype == "q8_0" else fp32
    return eps * (mm / mm_rate + attn / fp32)


def perf_profile(cli, path, batch, tokens, threads, work):
    """The top symbols of one CLI run under perf record (None without perf)."""
    perf = shutil.which("perf")
    if not perf or os.environ.get("BENCH_RAG_PERF", "1") == "0":
        return None
    data = os.path.join(work, "perf.data")
    r = subprocess.run([perf, "record", "-q", "-F", "999", "-o", data, "--", cli, "bench", "--embed", "-m", path,
                        "--batch", str(batch), "--tokens", str(tokens), "--threads", str(threads), "--reps", "3"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or not os.path.exists(data):
        return {"unavailable": (r.stderr.strip().splitlines() or ["perf record failed"])[-1][:200]}
    rep = subprocess.run([perf, "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    syms = []
    for line in rep.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[([.k])\]\s+(\S+)", line)
        if m:
            syms.append({"pct": float(m.group(1)), "symbol": m.group(3), "kernel": m.group(2) == "k"})
    groups = {}
    for x in syms:
        g = next((name for name, pat in PROFILE_GROUPS if not x["kernel"] and re.search(pat, x["symbol"])),
                 "kernel (page faults, scheduling, interrupts)" if x["kernel"] else "other")
        groups[g] = round(groups.get(g, 0) + x["pct"], 1)
    return {"batch": batch, "top": syms[:15], "groups": groups}


# perf symbols by what they do (first match wins; [k] symbols are the kernel's)
PROFILE_GROUPS = (
    ("matrix products (weights x activations)", r"quant_|matmul|gemm|gemv|f16_|bf16_|dot_"),
    ("activation quantization / packing", r"prepare_row|quantize|repack"),
    ("attention (q k^T, softmax, p v)", r"qk_|pv_|softmax|attn"),
    ("elementwise (gelu, layernorm, adds, biases)", r"gelu|layernorm|add_|bias|qkv_post|scale|silu|pool|embed_worker"),
    ("thread pool waiting / dispatch", r"sched_yield|tp_|pthread|futex|spin|barrier"),
)


# ---- 3. INFER.EMBED through the server -------------------------------------------------------


def one_token_words(t, enc):
    ok = []
    for w in WORDS:
        ids = t.call("INFER.TOKENIZE", enc, w)
        if isinstance(ids, list) and len(ids) == 3:  # CLS w SEP
            ok.append(w)
    return ok


def make_texts(t, enc, n, tokens, words, seed=1):
    """n distinct texts of exactly `tokens` tokens (CLS and SEP included)."""
    rnd = random.Random(seed)
    texts = []
    for _ in range(n):
        ws = [rnd.choice(words) for _ in range(tokens - 2)]
        txt = " ".join(ws)
        got = len(t.call("INFER.TOKENIZE", enc, txt))
        if got != tokens:
            raise RuntimeError("a calibrated text has %d tokens, not %d" % (got, tokens))
        texts.append(txt)
    return texts


def server_embed(port, enc, texts, clients, total):
    """`clients` connections each sending INFER.EMBED enc <one text> FP32 back to
    back until `total` embeddings are done: embeddings/s and per-call latency."""
    lock = threading.Lock()
    state = {"left": total}
    lat = []
    errors = []
    start = threading.Barrier(clients + 1)

    def work(i):
        c = Conn(port)
        try:
            start.wait()
            k = 0
            while True:
                with lock:
                    if state["left"] <= 0:
                        return
                    state["left"] -= 1
                txt = texts[(i * 7919 + k) % len(texts)]
                k += 1
                t0 = time.time()
                v = c.call("INFER.EMBED", enc, txt, "FP32")
                dt = time.time() - t0
                if not (isinstance(v, list) and len(v) == 1):
                    raise RuntimeError("bad reply %r" % (v,))
                with lock:
                    lat.append(dt * 1000)
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))
        finally:
            c.close()

    ts = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for th in ts:
        th.start()
    start.wait()
    t0 = time.time()
    for th in ts:
        th.join()
    wall = time.time() - t0
    row = {"clients": clients, "embeddings": len(lat), "wall_s": round(wall, 3),
           "embeddings_s": round(len(lat) / wall, 2) if wall > 0 else None,
           "latency_ms_p50": r3(pct(lat, 0.5)), "latency_ms_p90": r3(pct(lat, 0.9))}
    if errors:
        row["errors"] = len(errors)
        row["first_error"] = errors[0]
    return row


# ---- 4. INFER.RAG --------------------------------------------------------------------------


def chunk_text(i, rnd):
    name, animal = NAMES[i % len(NAMES)], ANIMALS[(i // len(NAMES)) % len(ANIMALS)]
    place, place2 = rnd.choice(PLACES), rnd.choice(PLACES)
    return ("%s the %s lived near the %s. Every morning %s liked to %s with a %s. One day %s found a %s by the %s "
            "and told everyone about it." % (name, animal, place, name, rnd.choice(ACTS), rnd.choice(THINGS), name,
                                             rnd.choice(THINGS), place2))


def question_of(i, rnd):
    name, animal = NAMES[i % len(NAMES)], ANIMALS[(i // len(NAMES)) % len(ANIMALS)]
    return rnd.choice(("Where did %s the %s live?", "What did %s the %s like to do?",
                       "What did %s the %s find one day?")) % (name, animal)


def ingest(port, enc, key, chunks, clients):
    """INFER.EMBED enc INTO key c<i> <text> SETATTR {"text": ...} from `clients` connections."""
    lock = threading.Lock()
    nxt = {"i": 0}
    errors = []

    def work():
        c = Conn(port)
        try:
            while True:
                with lock:
                    i = nxt["i"]
                    nxt["i"] += 1
                if i >= len(chunks):
                    return
                r = c.call("INFER.EMBED", enc, "INTO", key, "c%d" % i, chunks[i], "SETATTR",
                           json.dumps({"text": chunks[i], "i": i}))
                if r not in (0, 1):
                    raise RuntimeError("INTO c%d: %r" % (i, r))
        except Exception as e:  # noqa: BLE001
            errors.append(str(e))
        finally:
            c.close()

    t0 = time.time()
    ts = [threading.Thread(target=work) for _ in range(clients)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    wall = time.time() - t0
    if errors:
        raise RuntimeError("ingest: %s" % errors[0])
    return {"chunks": len(chunks), "clients": clients, "wall_s": round(wall, 3),
            "chunks_s": round(len(chunks) / wall, 1)}


def default_prompt(question, chunks):
    return ("Use the context below to answer the question.\n\nContext:\n%s\n\nQuestion: %s\nAnswer:"
            % ("\n\n".join(chunks), question))


def vsim_texts(reply):
    """The chunk texts of VSIM ... WITHSCORES WITHATTRIBS, RESP3 (a map element ->
    [score, attrs]) or flat triplets."""
    out = []
    if isinstance(reply, dict):
        vals = list(reply.values())
        attrs = [v[1] if isinstance(v, list) else None for v in vals]
    else:
        attrs = [reply[i + 2] for i in range(0, len(reply), 3)]
    for a in attrs:
        if a is None:
            continue
        out.append(json.loads(a)["text"])
    return out


def rag_round(c, q, args, rag_first):
    """One question both ways; returns (rag row, outside row)."""
    def via_rag():
        t0 = time.time()
        r = c.call("INFER.RAG", "s", "e", "docs", q, "COUNT", args.count, "MAXTOKENS", args.max_tokens,
                   "TEMPERATURE", 0, "WITHPROMPT")
        wall = (time.time() - t0) * 1000
        row = {"total_ms": wall}
        for k in ("embed_ms", "queue_ms", "prefill_ms", "decode_ms", "prompt_tokens", "reused_tokens", "tokens",
                  "chunks_used"):
            row[k] = r.get(k)
        row["other_ms"] = wall - sum(r.get(k) or 0 for k in ("embed_ms", "queue_ms", "prefill_ms", "decode_ms"))
        prompt = r.get("prompt")
        row["prompt"] = prompt.decode(errors="replace") if isinstance(prompt, bytes) else prompt
        return row

    def outside():
        row = {}
        t0 = time.time()
        vec = c.call("INFER.EMBED", "e", q, "FP32")[0]
        t1 = time.time()
        hits = c.call("VSIM", "docs", "FP32", vec, "WITHSCORES", "WITHATTRIBS", "COUNT", args.count)
        t2 = time.time()
        prompt = default_prompt(q, vsim_texts(hits))
        t3 = time.time()
        one = c.call("INFER.GENERATE", "s_out", prompt, "MAXTOKENS", 1, "TEMPERATURE", 0)
        t4 = time.time()
        full = c.call("INFER.GENERATE", "s_out", prompt, "MAXTOKENS", args.max_tokens, "TEMPERATURE", 0)
        t5 = time.time()
        row.update({"embed_ms": (t1 - t0) * 1000, "search_ms": (t2 - t1) * 1000,
                    "prefill_ms": (t4 - t3) * 1000, "prefill_server_ms": one.get("prefill_ms"),
                    "generate_ms": (t5 - t4) * 1000, "decode_server_ms": full.get("decode_ms"),
                    "reused_tokens_second_call": full.get("reused_tokens"), "tokens": full.get("tokens"),
                    "prompt": prompt})
        # the decode, from the outside: the full call minus what its prefill and queue took
        row["decode_ms"] = row["generate_ms"] - (full.get("prefill_ms") or 0) - (full.get("queue_ms") or 0)
        row["total_ms"] = row["embed_ms"] + row["search_ms"] + row["prefill_ms"] + row["decode_ms"]
        return row

    if rag_first:
        a = via_rag()
        b = outside()
    else:
        b = outside()
        a = via_rag()
    return a, b


def summarize(rows, keys):
    out = {}
    for k in keys:
        xs = [r[k] for r in rows if r.get(k) is not None]
        if xs:
            out[k] = {"p50": r3(pct(xs, 0.5)), "p90": r3(pct(xs, 0.9))}
    return out


def bench_rag(t, args, work):
    c = Conn(t.port)
    c.call("HELLO", 3)
    rnd = random.Random(7)
    chunks = [chunk_text(i, rnd) for i in range(args.chunks)]
    res = {"chunks": args.chunks, "questions": args.questions, "count": args.count, "max_tokens": args.max_tokens}
    res["ingest"] = ingest(t.port, "e", "docs", chunks, 8)
    print("    ingest: %d chunks by INFER.EMBED ... INTO from 8 clients in %.2f s (%.0f chunks/s)" % (
        args.chunks, res["ingest"]["wall_s"], res["ingest"]["chunks_s"]))
    qs = [question_of(rnd.randrange(args.chunks), rnd) for _ in range(args.questions + 2)]
    rtt = []
    for _ in range(50):
        t0 = time.time()
        c.call("PING")
        rtt.append((time.time() - t0) * 1000)
    res["ping_ms_p50"] = r3(pct(rtt, 0.5))
    rag_rows, out_rows = [], []
    same = 0
    for i, q in enumerate(qs):
        a, b = rag_round(c, q, args, i % 2 == 0)
        if i < 2:  # warm-up: first touches of both generators
            continue
        same += a["prompt"] == b["prompt"]
        a.pop("prompt")
        b.pop("prompt")
        rag_rows.append(a)
        out_rows.append(b)
    c.close()
    res["inside"] = summarize(rag_rows, ("total_ms", "embed_ms", "queue_ms", "prefill_ms", "decode_ms", "other_ms",
                                         "prompt_tokens", "reused_tokens", "tokens", "chunks_used"))
    res["outside"] = summarize(out_rows, ("total_ms", "embed_ms", "search_ms", "prefill_ms", "prefill_server_ms",
                                          "decode_ms", "decode_server_ms", "generate_ms", "tokens"))
    res["prompts_equal"] = "%d of %d" % (same, len(rag_rows))
    return res


# ---- main ----------------------------------------------------------------------------------


def main():
    env = os.environ.get
    quick = env("BENCH_RAG_QUICK", "0") not in ("", "0")
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--models-dir", default=".cache/bench-models")
    ap.add_argument("--peak", default=None, help="the built bench/peak.c")
    ap.add_argument("--out", default="bench/out/rag.json")
    ap.add_argument("--models", default=env("BENCH_RAG_MODELS", "minilm-l6" if quick else "minilm-l6 bert-base"))
    ap.add_argument("--types", default=env("BENCH_RAG_TYPES", "q8_0" if quick else "f16 q8_0"))
    ap.add_argument("--batches", default=env("BENCH_RAG_BATCHES", "1 32" if quick else "1 32 256"))
    ap.add_argument("--tokens", type=int, default=int(env("BENCH_RAG_TOKENS", 128)))
    ap.add_argument("--reps", type=int, default=int(env("BENCH_RAG_REPS", 1 if quick else 3)))
    ap.add_argument("--threads", type=int, default=int(env("BENCH_THREADS", 2)))
    ap.add_argument("--clients", default=env("BENCH_RAG_CLIENTS", "1 32"))
    ap.add_argument("--server-n", type=int, default=int(env("BENCH_RAG_SERVER_N", 96 if quick else 384)))
    ap.add_argument("--rounds", type=int, default=int(env("BENCH_RAG_ROUNDS", 1 if quick else 2)))
    ap.add_argument("--chunks", type=int, default=int(env("BENCH_RAG_CHUNKS", 200 if quick else 1000)))
    ap.add_argument("--questions", type=int, default=int(env("BENCH_RAG_QUESTIONS", 10 if quick else 20)))
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=int(env("BENCH_RAG_MAXTOKENS", 64)))
    args = ap.parse_args()
    models = args.models.split()
    types = args.types.split()
    batches = [int(x) for x in args.batches.split()]
    levels = [int(x) for x in args.clients.split()]
    cli = os.path.join(args.build, "inferkv-cli")
    server = os.path.abspath(os.path.join(args.build, "inferkv-server"))
    T = args.tokens

    result = {"benchmark": "rag", "date": datetime.datetime.utcnow().isoformat() + "Z",
              "machine": dict(cpu_model(), nproc=os.cpu_count(), cpuinfo_mhz=cpuinfo_mhz()),
              "loadavg_start": [round(x, 2) for x in os.getloadavg()],
              "threads": args.threads, "tokens": T, "reps": args.reps,
              "note": ("Random-weight models with the shapes of the presets (gguf-gen, BGE WordPiece vocabulary). "
                       "2 cores shared with other engineers' builds and tests: figures are noisy (per CPU-second "
                       "figures less so). Peak: cores x GHz x ops/cycle, both measured by bench/peak.c."),
              "targets": {"minilm_q8_0_chunks_s": ">= 1000 chunks of 128 tokens per second on the 2 cores"},
              "targets_asserted": False}
    work = tempfile.mkdtemp(prefix="inferkv-bench-rag-")
    try:
        # 1. peak
        p0 = measure_peak(args.peak, args.threads)
        print("== peak (bench/peak.c, %d threads): %s" % (args.threads, p0))

        # 2. CLI embeddings/s
        print("== inferkv-cli bench --embed, %d-token inputs, %d threads, median of %d calls (at least 32 inputs' "
          "worth)" % (T, args.threads, args.reps))
        rows = []
        for m in models:
            for ty in types:
                path = os.path.join(args.models_dir, "%s-%s.gguf" % (m, ty))
                shape = model_shape(cli, path)
                mm, attn, full = macs_per_chunk(shape, T)
                j = cli_embed(cli, path, batches, T, args.threads, args.reps)
                for b in j["batches"]:
                    row = {"model": m, "type": ty, "batch": b["batch"], "reps": b["reps"],
                           "embeddings_s": b["embeddings_s"],
                           "per_cpu_s": b["per_cpu_s"], "gmacs_per_chunk": round((mm + attn) / 1e9, 4),
                           "matmul_share": round(mm / (mm + attn), 3),
                           "gmac_s": round(b["embeddings_s"] * (mm + attn) / 1e9, 1)}
                    rows.append(row)
                    print("    %-10s %-5s batch %4d %8.1f emb/s %7.1f per CPU-s  %7.1f GMAC/s" % (
                        m, ty, b["batch"], b["embeddings_s"], b["per_cpu_s"], row["gmac_s"]))
                    sys.stdout.flush()
                result.setdefault("shapes", {})[m] = dict(shape, macs_matmul=mm, macs_attention=attn,
                                                          macs_textbook=full)
        result["embed"] = rows
        target_path = os.path.join(args.models_dir, "%s-%s.gguf" % (models[0], "q8_0" if "q8_0" in types
                                                                     else types[0]))
        result["profile"] = perf_profile(cli, target_path, 32 if 32 in batches else batches[-1], T, args.threads,
                                         work)

        # 3 and 4: the server
        mdir = os.path.join(work, "models")
        os.mkdir(mdir)
        os.symlink(os.path.abspath(target_path), os.path.join(mdir, "e.gguf"))
        have_stories = os.path.exists(STORIES)
        if have_stories:
            shutil.copy(STORIES, os.path.join(mdir, "s.gguf"))
        else:
            subprocess.run([os.path.join(args.build, "gguf-gen"), "--preset", "stories260k", "-q", "-o",
                            os.path.join(mdir, "s.gguf")], check=True)
        result["generator"] = "stories260K.gguf (shared/models)" if have_stories else "gguf-gen --preset stories260k"
        result["server_encoder"] = os.path.basename(target_path)
        result["server_encoder_model"] = models[0]
        result["server_encoder_type"] = "q8_0" if "q8_0" in types else types[0]
        maxc = max(levels)
        t = Target("inferkv-server", [server, "--port", "@PORT@", "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", work, "--maxclients", "1000",
                                      "--infer-models-dir", mdir, "--infer-threads", str(args.threads),
                                      "--infer-max-batch", str(max(64, maxc)),
                                      "--infer-max-queue", str(max(256, 4 * maxc)),
                                      "--infer-idle-priority", "no", "--infer-nice", "0"], work)
        try:
            if not t.up:
                raise RuntimeError("inferkv-server did not start: %s" % t.log_tail(5))
            for name, f in (("e", "e.gguf"), ("s", "s.gguf"), ("s_out", "s.gguf")):
                r = t.call("INFER.LOAD", name, f)
                if r != "OK":
                    raise RuntimeError("INFER.LOAD %s: %r" % (name, r))
            words = one_token_words(t, "e")
            texts = make_texts(t, "e", 64, T, words)
            server_embed(t.port, "e", texts, 4, 16)  # warm-up
            print("== INFER.EMBED through inferkv-server (%s, one %d-token text per call, %d per level), "
                  "alternating with the CLI at the same batch" % (os.path.basename(target_path), T, args.server_n))
            runs = {("server", n): [] for n in levels}
            runs.update({("cli", n): [] for n in levels})
            for rnd_i in range(args.rounds):
                order = ["cli", "server"] if rnd_i % 2 == 0 else ["server", "cli"]
                for who in order:
                    if who == "cli":
                        j = cli_embed(cli, target_path, levels, T, args.threads, 3)
                        for b in j["batches"]:
                            runs[("cli", b["batch"])].append({"embeddings_s": b["embeddings_s"]})
                    else:
                        for n in levels:
                            runs[("server", n)].append(server_embed(t.port, "e", texts, n, max(args.server_n, n)))
            srv = {}
            for n in levels:
                s_rows = runs[("server", n)]
                c_rows = runs[("cli", n)]
                s_eps = statistics.median(r["embeddings_s"] for r in s_rows if r.get("embeddings_s"))
                c_eps = statistics.median(r["embeddings_s"] for r in c_rows)
                best = sorted(s_rows, key=lambda r: r.get("embeddings_s") or 0)[len(s_rows) // 2]
                srv[str(n)] = dict(best, embeddings_s=round(s_eps, 2), cli_batch_embeddings_s=round(c_eps, 2),
                                   server_over_cli=round(s_eps / c_eps, 3) if c_eps else None, rounds=len(s_rows))
                print("    %3d clients: %7.1f emb/s (p50 %.1f ms, p90 %.1f ms per call)   CLI batch %3d: %7.1f "
                      "emb/s   server/CLI %.2f%s" % (n, s_eps, best["latency_ms_p50"], best["latency_ms_p90"], n, c_eps,
                                                    srv[str(n)]["server_over_cli"] or 0,
                                                    ", %d errors (%s)" % (best["errors"], best["first_error"])
                                                    if best.get("errors") else ""))
            result["server_embed"] = srv

            print("== INFER.RAG: %d chunks, %d questions, COUNT %d, MAXTOKENS %d, greedy" % (
                args.chunks, args.questions, args.count, args.max_tokens))
            result["rag"] = bench_rag(t, args, work)
        finally:
            t.stop()

        p1 = measure_peak(args.peak, args.threads)
        peak = combine_peaks([p0, p1], args.threads)
        result["peak"] = peak
        for row in result["embed"]:
            sh = result["shapes"][row["model"]]
            f = fraction_of_peak(row["embeddings_s"], sh["macs_matmul"], sh["macs_attention"], row["type"], peak)
            row["fraction_of_peak"] = r3(f)
            if peak:
                f = fraction_of_peak(row["per_cpu_s"], sh["macs_matmul"], sh["macs_attention"], row["type"],
                                     per_core(peak))
                row["fraction_of_core_peak_per_cpu_s"] = r3(f)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report(result)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("\nwrote %s" % args.out)


def report(res):
    peak = res.get("peak")
    print("\nCompute peak = cores x GHz x operations per cycle (assumptions: the clock a dependent-add chain "
          "measures,\n  highest of the runs, holds with all cores busy; ops/cycle as a one-thread register-only "
          "loop measures them, rounded to a power of two):")
    if peak:
        print("  %d cores x %.2f GHz (measured; /proc/cpuinfo says %s MHz, the nominal/TSC rate)" % (
            peak["cores"], peak["ghz"], res["machine"].get("cpuinfo_mhz")))
        print("  int8 VNNI  %7.1f GMAC/s  (%d MACs/cycle/core: vpdpbusd zmm, 64 each)" % (
            peak["int8_vnni_gmacs"], peak["int8_macs_per_cycle_per_core"]))
        print("  fp32 FMA   %7.1f GFMA/s  (%d FMAs/cycle/core: vfmadd231ps zmm, 16 each)" % (
            peak["fp32_gfmas"], peak["fp32_fmas_per_cycle_per_core"]))
        print("  (the loops on %d threads at once got %.0f GMAC/s and %.0f GFMA/s this run)" % (
            peak["cores"], peak["loops_measured"]["int8_vnni_gmacs"], peak["loops_measured"]["fp32_gfmas"]))
    else:
        print("  not measured (bench/peak.c did not build or run)")
    print("\nMACs per %d-token chunk (matrix products + attention; CLS pooling skips the last layer's O and FFN "
          "for all rows but one):" % res["tokens"])
    for m, s in res.get("shapes", {}).items():
        print("  %-10s %2d layers, hidden %d, ffn %d, %d heads x %d, pooling %s: %.3f GMAC (%.0f%% matrix products, "
              "attention %.3f)" % (m, s["layers"], s["embd"], s["ffn"], s["heads"], s["head_dim"], s["pooling"],
                                   (s["macs_matmul"] + s["macs_attention"]) / 1e9,
                                   100 * s["macs_matmul"] / (s["macs_matmul"] + s["macs_attention"]),
                                   s["macs_attention"] / 1e9))
    print("\nEmbeddings/s (inferkv-cli bench --embed, %d threads, median of `reps` calls of `batch` inputs):" %
          res["threads"])
    print("  %-10s %-5s %6s %5s %10s %10s %9s %9s %9s" % ("model", "type", "batch", "reps", "emb/s", "per CPU-s",
                                                          "GMAC/s", "of peak", "per CPU"))
    for r in res.get("embed", []):
        f = r.get("fraction_of_peak")
        fc = r.get("fraction_of_core_peak_per_cpu_s")
        print("  %-10s %-5s %6d %5d %10.1f %10.1f %9.1f %9s %9s" % (
            r["model"], r["type"], r["batch"], r["reps"], r["embeddings_s"], r["per_cpu_s"], r["gmac_s"],
            "%.1f%%" % (100 * f) if f is not None else "-", "%.1f%%" % (100 * fc) if fc is not None else "-"))
    print("  of peak: the time the chunks' MACs take at peak (matrix products at the int8 VNNI rate for Q8_0, "
          "the fp32 FMA rate\n  for F16; attention at fp32) over the time taken; per CPU: the same per CPU-second "
          "against one core's peak\n  (other load on the machine affects it less; spinning workers count as busy, "
          "so it is a floor)")
    mini = [r for r in res.get("embed", []) if r["model"] == "minilm-l6" and r["type"] == "q8_0"]
    if mini:
        best = max(mini, key=lambda r: r["embeddings_s"])
        sh = res["shapes"]["minilm-l6"]
        need = 1000 * (sh["macs_matmul"] + sh["macs_attention"]) / 1e9
        line = "  target MiniLM Q8_0 >= 1000 chunks/s: best %.1f chunks/s (batch %d), %s" % (
            best["embeddings_s"], best["batch"], "meets" if best["embeddings_s"] >= 1000 else "BELOW target")
        res["target_met"] = best["embeddings_s"] >= 1000
        if peak:
            at_peak = 1 / fraction_of_peak(1, sh["macs_matmul"], sh["macs_attention"], "q8_0", peak)
            line += ("\n  1000 chunks/s needs %.0f GMAC/s; at the measured peak the 2 cores would do at most %.0f "
                     "chunks/s, so the target is %.2fx the peak" % (need, at_peak, 1000 / at_peak))
            res["minilm_q8_0_chunks_s_at_peak"] = round(at_peak, 1)
            res["target_over_peak"] = round(1000 / at_peak, 2)
        print(line)
    prof = res.get("profile")
    if prof and prof.get("top"):
        print("\nWhere the time goes (perf record of inferkv-cli bench --embed, %s, batch %d, %d threads):" % (
            res.get("server_encoder"), prof["batch"], res["threads"]))
        for g, v in sorted(prof["groups"].items(), key=lambda kv: -kv[1]):
            print("  %5.1f%%  %s" % (v, g))
        print("  top symbols: %s" % ", ".join("%s %.1f%%" % (p["symbol"], p["pct"]) for p in prof["top"][:8]))
        mm_share = prof["groups"].get("matrix products (weights x activations)")
        row = next((r for r in res.get("embed", []) if r["model"] == res.get("server_encoder_model") and
                    r["type"] == res.get("server_encoder_type") and r["batch"] == prof["batch"]), None)
        if mm_share and row and peak:
            sh = res["shapes"][row["model"]]
            core = per_core(peak)
            rate = core["int8_vnni_gmacs"] if row["type"] == "q8_0" else core["fp32_gfmas"]
            eff = row["per_cpu_s"] * sh["macs_matmul"] / 1e9 / rate / (mm_share / 100)
            res["matmul_kernel_fraction_of_peak"] = r3(eff)
            print("  the matrix-product kernel, while it runs, reaches about %.0f%% of a core's %s peak "
                  "(%.1f emb per CPU-s x %.3f GMAC of products / %.0f%% of the samples)" % (
                      100 * eff, "int8 VNNI" if row["type"] == "q8_0" else "fp32 FMA", row["per_cpu_s"],
                      sh["macs_matmul"] / 1e9, mm_share))
    elif prof:
        print("\nperf profile: %s" % prof.get("unavailable"))
    if res.get("server_embed"):
        print("\nINFER.EMBED through inferkv-server (%s) vs the CLI at the same batch, same run:" %
              res["server_encoder"])
        for n, r in res["server_embed"].items():
            print("  %3s clients %8.1f emb/s  CLI %8.1f  server/CLI %.2f  call p50 %.1f ms p90 %.1f ms" % (
                n, r["embeddings_s"], r["cli_batch_embeddings_s"], r["server_over_cli"] or 0, r["latency_ms_p50"],
                r["latency_ms_p90"]))
    rag = res.get("rag")
    if rag:
        print("\nINFER.RAG latency, ms (%d questions, %d chunks, COUNT %d, MAXTOKENS %d; PING %.3f ms):" % (
            rag["questions"], rag["chunks"], rag["count"], rag["max_tokens"], rag["ping_ms_p50"]))
        print("  %-44s %9s %9s" % ("", "p50", "p90"))
        ins, out = rag["inside"], rag["outside"]
        for label, d, k in (("INFER.RAG total (client)", ins, "total_ms"),
                            ("  embed (reply embed_ms)", ins, "embed_ms"),
                            ("  generation queue (reply queue_ms)", ins, "queue_ms"),
                            ("  prefill (reply prefill_ms)", ins, "prefill_ms"),
                            ("  decode (reply decode_ms)", ins, "decode_ms"),
                            ("  rest: search, prompt, round trip", ins, "other_ms"),
                            ("outside, sum of the steps", out, "total_ms"),
                            ("  embed (INFER.EMBED question)", out, "embed_ms"),
                            ("  search (VSIM FP32 COUNT k WITHATTRIBS)", out, "search_ms"),
                            ("  prefill (INFER.GENERATE MAXTOKENS 1)", out, "prefill_ms"),
                            ("  decode (MAXTOKENS n minus its prefill)", out, "decode_ms")):
            v = d.get(k)
            if v:
                print("  %-44s %9.2f %9.2f" % (label, v["p50"], v["p90"]))
        for k in ("prompt_tokens", "tokens", "reused_tokens"):
            if k in ins:
                print("  %-44s %9.0f %9.0f" % (k, ins[k]["p50"], ins[k]["p90"]))
        print("  prompts built from VSIM's hits equal INFER.RAG's WITHPROMPT: %s" % rag["prompts_equal"])
    print("load average: start %s, end %s" % (res.get("loadavg_start"), res.get("loadavg_end")))


if __name__ == "__main__":
    main()
