"""infer_bench.py - INFER.GENERATE under concurrency, and what generation
costs plain GET/SET latency (issues 6 and 7).  Run by bench_infer.sh.

For each target - Debian's redis-server with inferkv.so, and inferkv-server
when it answers INFER.LOAD - on a free loopback port with persistence off:

  1. with 1, 4, 16 and 64 clients, each sending one INFER.GENERATE (greedy,
     MAXTOKENS N, a prompt of its own) at the same moment over a raw RESP3
     connection: aggregate decode tok/s (tokens after each client's first,
     over the span from the first first-token to the last reply), the
     end-to-end rate (all tokens over first send to last reply, prefill
     included) and time to first token (queue_ms + prefill_ms of the RESP3
     reply).  1 client: median of 3 rounds, 4: of 2, 16 and 64: one.
  2. redis-benchmark GET and SET p50/p99 (-c 50, -n BENCH_GET_N) of every
     server idle, and of each INFER server while 4 clients generate back to
     back; all servers run at once and the runs alternate in rotating order
     for BENCH_LATENCY_ROUNDS rounds (median kept), so that load from
     elsewhere on the shared machine hits them alike.

plus redis-server without the module, idle, as issue 7's baseline.  The
issues' targets are printed next to the figures and stored in the JSON;
they are reported, never asserted.
"""
import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "integration"))
from server_harness import LoggedProcess, RawClient, free_port, wait_up  # noqa: E402

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
BENCH = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"


def plain(reply):
    """A typed RawClient reply as a plain Python value; an error raises RuntimeError."""
    t, v = reply
    if t in "-!":
        raise RuntimeError(v)
    if t == ",":
        return float(v)
    if t in "*~>":
        return None if v is None else [plain(x) for x in v]
    if t == "%":
        out = {}
        for k, x in v:
            k = plain(k)
            out[k.decode() if isinstance(k, bytes) else k] = plain(x)
        return out
    return v


class Conn(RawClient):
    """A raw RESP2/RESP3 connection (redis-py 4.3 has no RESP3) whose replies
    are plain values."""

    def __init__(self, port, timeout=600):
        super().__init__(port, timeout=timeout)

    def _closed(self):
        return ConnectionError("connection closed")

    def read(self):
        return plain(self._reply())


def answers_ping(port):
    c = Conn(port, timeout=2)
    try:
        return c.call("PING") == "PONG"
    finally:
        c.close()


class Target(LoggedProcess):
    """A server process under test."""

    def __init__(self, name, cmd, workdir):
        self.name = name
        self.port = free_port()
        super().__init__([c.replace("@PORT@", str(self.port)) for c in cmd],
                         os.path.join(workdir, name.replace(" ", "_").replace("/", "_") + ".log"))
        self.up = wait_up(self.proc, lambda: answers_ping(self.port), 30)

    def call(self, *args):
        c = Conn(self.port)
        try:
            return c.call(*args)
        finally:
            c.close()

    def stop(self):
        self.stop_process(30)
        self.log.close()

    def log_tail(self, n=15):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-n:])


# ---- 1. generation under concurrency ------------------------------------------


def prompt_of(i):
    return "Request %d. Write a short story about a lighthouse keeper named Ada number %d." % (i, i)


def one_generation(port, model, i, max_tokens, start, out):
    c = Conn(port)
    try:
        c.call("HELLO", 3)
        start.wait()
        t0 = time.time()
        r = c.call("INFER.GENERATE", model, prompt_of(i), "MAXTOKENS", max_tokens, "TEMPERATURE", 0)
        t1 = time.time()
        if isinstance(r, dict):
            out[i] = {"t0": t0, "t1": t1, "tokens": r.get("tokens"), "queue_ms": r.get("queue_ms"),
                      "prefill_ms": r.get("prefill_ms"), "decode_ms": r.get("decode_ms"),
                      "finish": r.get("finish")}
        else:  # RESP2-style reply: only the text
            out[i] = {"t0": t0, "t1": t1, "tokens": None}
    except Exception as e:  # noqa: BLE001 - reported in the row
        out[i] = {"error": str(e)}
    finally:
        c.close()


def generation_round(port, model, n, max_tokens):
    start = threading.Barrier(n + 1)
    out = [None] * n
    ts = [threading.Thread(target=one_generation, args=(port, model, i, max_tokens, start, out))
          for i in range(n)]
    for t in ts:
        t.start()
    start.wait()
    for t in ts:
        t.join()
    errors = [o["error"] for o in out if "error" in o]
    ok = [o for o in out if "error" not in o]
    if not ok:
        return {"clients": n, "errors": len(errors), "error": errors[0] if errors else "no reply"}
    wall = max(o["t1"] for o in ok) - min(o["t0"] for o in ok)
    toks = [o["tokens"] if o["tokens"] is not None else max_tokens for o in ok]
    ttft = [o["queue_ms"] + o["prefill_ms"] for o in ok if o.get("queue_ms") is not None and
            o.get("prefill_ms") is not None]
    lat = [(o["t1"] - o["t0"]) * 1000 for o in ok]
    dec = [o["decode_ms"] for o in ok if o.get("decode_ms") is not None]
    row = {"clients": n, "errors": len(errors), "tokens": sum(toks), "wall_s": round(wall, 3),
           "agg_tok_s": round(sum(toks) / wall, 2) if wall > 0 else None,
           "latency_ms_p50": round(statistics.median(lat), 1), "latency_ms_max": round(max(lat), 1),
           "finish": sorted(set(o["finish"].decode() if isinstance(o.get("finish"), bytes) else str(o.get("finish"))
                                for o in ok))}
    if ttft:
        row["ttft_ms_p50"] = round(statistics.median(ttft), 1)
        row["ttft_ms_max"] = round(max(ttft), 1)
    if len(ttft) == len(ok):
        # decode only: tokens after each client's first one, over the span
        # from the first first-token to the last reply
        first = min(o["t0"] + (o["queue_ms"] + o["prefill_ms"]) / 1000 for o in ok)
        span = max(o["t1"] for o in ok) - first
        if span > 0:
            row["decode_agg_tok_s"] = round(sum(t - 1 for t in toks) / span, 2)
    if dec and len(dec) == len(ok):
        # per-sequence decode speed, averaged: how fast one client sees tokens arrive
        row["per_client_decode_tok_s"] = round(statistics.mean(
            (t - 1) / (d / 1000) for t, d in zip(toks, dec) if d > 0 and t > 1), 2) if any(
            d > 0 for d in dec) else None
    if errors:
        row["first_error"] = errors[0]
    return row


def generation_levels(t, model, levels, max_tokens, rounds):
    rows = {}
    for n in levels:
        rs = [generation_round(t.port, model, n, max_tokens) for _ in range(rounds.get(n, 1))]
        good = [r for r in rs if r.get("agg_tok_s")]
        best = sorted(good, key=lambda r: r["agg_tok_s"])[len(good) // 2] if good else rs[0]
        best["rounds"] = len(rs)
        rows[str(n)] = best
        print("    %3d clients: %s" % (n, fmt_gen(best)))
        sys.stdout.flush()
    return rows


def fmt_gen(r):
    if "error" in r:
        return "error: %s" % r["error"]
    s = "%8.1f tok/s agg (%d tokens in %.2f s)" % (r["agg_tok_s"], r["tokens"], r["wall_s"])
    if "decode_agg_tok_s" in r:
        s += ", decode %.1f tok/s" % r["decode_agg_tok_s"]
    if "ttft_ms_p50" in r:
        s += ", TTFT p50 %.0f ms max %.0f ms" % (r["ttft_ms_p50"], r["ttft_ms_max"])
    if r.get("errors"):
        s += ", %d errors (%s)" % (r["errors"], r.get("first_error", ""))
    return s


# ---- 2. GET/SET latency idle and under generation ----------------------------


def redis_benchmark(port, n):
    out = subprocess.run([BENCH, "-h", "127.0.0.1", "-p", str(port), "-t", "get,set", "-n", str(n), "-c", "50",
                          "--csv", "-q"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    rows = {}
    lines = [l for l in out.splitlines() if l.strip()]
    if not lines:
        return rows
    head = [h.strip('"') for h in lines[0].split(",")]
    for l in lines[1:]:
        vals = [v.strip('"') for v in l.split(",")]
        d = dict(zip(head, vals))
        name = d["test"].split(" ")[0].lower()
        rows[name] = {"ops": float(d["rps"]), "p50_ms": float(d["p50_latency_ms"]),
                      "p99_ms": float(d["p99_latency_ms"])}
    return rows


class Generators:
    """k clients generating back to back until stopped."""

    def __init__(self, port, model, k, max_tokens):
        self.stop_ev = threading.Event()
        self.tokens = 0
        self.done = 0
        self.errors = []
        self.conns = []
        self.ts = [threading.Thread(target=self.run, args=(port, model, i, max_tokens), daemon=True)
                   for i in range(k)]
        for t in self.ts:
            t.start()

    def run(self, port, model, i, max_tokens):
        c = Conn(port)
        self.conns.append(c)
        while not self.stop_ev.is_set():
            try:
                c.call("INFER.GENERATE", model, prompt_of(100 + i), "MAXTOKENS", max_tokens, "TEMPERATURE", 0)
                self.done += 1
            except Exception as e:  # noqa: BLE001
                if not self.stop_ev.is_set():
                    self.errors.append(str(e))
                return

    def stop(self):
        self.stop_ev.set()
        for c in self.conns:  # a disconnect cancels the request in flight
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self.ts:
            t.join(60)


def wait_active(t, k, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline and (active_requests(t) or 0) < k:
        time.sleep(0.05)
    return active_requests(t)


def median_of(runs):
    out = {}
    for test in ("get", "set"):
        vals = [r[test] for r in runs if test in r]
        if vals:
            out[test] = {k: round(statistics.median(v[k] for v in vals), 3) for k in ("ops", "p50_ms", "p99_ms")}
            out[test]["runs"] = len(vals)
    return out


def latency_all(servers, n_requests, reps):
    """GET/SET latency of every server idle, and of each INFER server with 4
    generations running; all servers are up at once and the runs alternate
    (rotating order each round), so that load from elsewhere on the machine
    hits them alike.  Medians over the rounds."""
    runs = {(t.name, phase): [] for t, model in servers for phase in ("idle", "generating_4") if
            phase == "idle" or model}
    seen = {t.name: [] for t, _ in servers}
    plan = [(t, model, phase) for t, model in servers for phase in ("idle", "generating_4")
            if phase == "idle" or model]
    for r in range(reps):
        k = r % len(plan)
        for t, model, phase in plan[k:] + plan[:k]:
            if phase == "idle":
                runs[(t.name, phase)].append(redis_benchmark(t.port, n_requests))
                continue
            g = Generators(t.port, model, 4, 256)
            seen[t.name].append(wait_active(t, 4))
            runs[(t.name, phase)].append(redis_benchmark(t.port, n_requests))
            seen[t.name].append(active_requests(t))
            g.stop()
            if g.errors:
                print("    %s: generation errors during the latency run: %s" % (t.name, g.errors[0]))
            time.sleep(0.3)
        print("    round %d of %d done" % (r + 1, reps))
        sys.stdout.flush()
    out = {}
    for (name, phase), rs in runs.items():
        out.setdefault(name, {})[phase] = median_of(rs)
    for name, s in seen.items():
        if s:
            out[name]["active_sequences_seen"] = s
    return out


def active_requests(t):
    try:
        st = t.call("INFER.STATS")
    except Exception:  # noqa: BLE001
        return None
    if isinstance(st, list):
        st = {st[i].decode() if isinstance(st[i], bytes) else st[i]: st[i + 1] for i in range(0, len(st), 2)}
    return st.get("active")


# ---- targets ---------------------------------------------------------------------------


def bench_generation(t, model_file, args):
    print("== %s (port %d)" % (t.name, t.port))
    t0 = time.time()
    r = t.call("INFER.LOAD", "q", model_file, "CONTEXT", args.context)
    print("    INFER.LOAD %s: %s (%.1f s)" % (model_file, r, time.time() - t0))
    generation_round(t.port, "q", 1, 4)  # warm-up: first touch of the weights
    res = {"load_s": round(time.time() - t0, 2)}
    res["generate"] = generation_levels(t, "q", args.levels, args.max_tokens, {1: 3, 4: 2})
    g = res["generate"]
    for key in ("agg_tok_s", "decode_agg_tok_s"):
        if g.get("1", {}).get(key) and g.get("16", {}).get(key):
            res["agg16_over_1" if key == "decode_agg_tok_s" else "e2e_agg16_over_1"] = round(
                g["16"][key] / g["1"][key], 2)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--out", default="bench/out/infer.json")
    ap.add_argument("--max-tokens", type=int, default=int(os.environ.get("BENCH_INFER_TOKENS", 32)))
    ap.add_argument("--levels", default=os.environ.get("BENCH_INFER_LEVELS", "1,4,16,64"))
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 2)))
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--get-n", type=int, default=int(os.environ.get("BENCH_GET_N", 50000)))
    ap.add_argument("--latency-rounds", type=int, default=int(os.environ.get("BENCH_LATENCY_ROUNDS", 3)))
    args = ap.parse_args()
    args.levels = [int(x) for x in args.levels.split(",")]
    maxc = max(args.levels)
    # KV room for every client at once: prompt (~30 tokens) + MAXTOKENS, at
    # Qwen3-0.6B's 112 KiB per token in F16 (doubled for F32), plus slack
    kv = maxc * (args.max_tokens + 64) * 229376 + (64 << 20)

    work = tempfile.mkdtemp(prefix="inferkv-bench-infer-")
    models = os.path.join(work, "models")
    os.mkdir(models)
    os.symlink(os.path.abspath(args.model), os.path.join(models, "model.gguf"))
    module = os.path.abspath(os.path.join(args.build, "inferkv.so"))
    server = os.path.abspath(os.path.join(args.build, "inferkv-server"))
    common = ["--port", "@PORT@", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work,
              "--maxclients", "1000"]
    result = {"benchmark": "infer", "date": datetime.datetime.utcnow().isoformat() + "Z",
              "model": "gguf-gen --preset qwen3-0.6b --type q8_0 (random weights)",
              "max_tokens": args.max_tokens, "threads": args.threads, "levels": args.levels,
              "context": args.context, "kv_bytes": kv,
              "machine": {"nproc": os.cpu_count()},
              "loadavg_start": [round(x, 2) for x in os.getloadavg()],
              "note": ("2 cores shared with other engineers' builds and tests while this ran: figures are "
                       "noisy. Greedy decoding of a random-weight model; every client has its own prompt."),
              "targets": {"agg16_over_1": ">= 3.0 (aggregate decode tok/s at 16 clients vs 1; "
                                          "e2e_agg16_over_1 is the same with prefill included)",
                          "get_p99_ratio": "<= 1.1 (GET p99 with 4 generations running vs idle)"},
              "targets_asserted": False, "targets_source": "issues 6 and 7",
              "targets_by_server": {}}
    targets = []
    servers = []
    try:
        if os.path.exists(module):
            targets.append(("redis-server + inferkv.so", [REDIS] + common + [
                "--loadmodule", module, "infer-models-dir", models, "infer-threads", str(args.threads),
                "infer-max-active", str(maxc), "infer-max-queue", str(4 * maxc), "infer-kv-memory", str(kv)]))
        else:
            result["redis-server + inferkv.so"] = {"skipped": "%s not built" % module}
        if os.path.exists(server):
            targets.append(("inferkv-server", [server] + common + [
                "--infer-models-dir", models, "--infer-threads", str(args.threads),
                "--infer-max-batch", str(maxc), "--infer-max-queue", str(4 * maxc), "--infer-kv-memory", str(kv)]))
        else:
            result["inferkv-server"] = {"skipped": "%s not built" % server}
        up = []  # (Target, model name or None) kept running for the latency runs
        for name, cmd in targets:
            t = Target(name, cmd, work)
            servers.append(t)
            why = None
            if not t.up:
                why = ("inferkv-server has no INFER.* (infer-* options refused: %s)" % t.log_tail(2).strip()
                       if name == "inferkv-server" else "did not start: %s" % t.log_tail(5).strip())
            else:
                try:
                    t.call("INFER.STATS")
                except RuntimeError as e:
                    why = "%s has no INFER.* (%s)" % (name, e)
            if why:
                result[name] = {"skipped": why}
                print("== %s: skipped: %s" % (name, why))
                t.stop()
                continue
            try:
                result[name] = bench_generation(t, "model.gguf", args)
                up.append((t, "q"))
            except RuntimeError as e:
                result[name] = {"error": str(e)}
                print("    error: %s" % e)
        plain = Target("redis-server (no module)", [REDIS] + common, work)
        servers.append(plain)
        result["redis-server (no module)"] = {}
        up.append((plain, None))
        print("== GET/SET latency, redis-benchmark -c 50 -n %d, %d alternating rounds: every server idle, "
              "and each INFER server with 4 generations running" % (args.get_n, args.latency_rounds))
        lat = latency_all(up, args.get_n, args.latency_rounds)
        for name, v in lat.items():
            result[name]["latency"] = v
            if "generating_4" in v:
                for test in ("get", "set"):
                    if test in v["idle"] and test in v["generating_4"]:
                        result[name]["%s_p99_ratio" % test] = round(
                            v["generating_4"][test]["p99_ms"] / v["idle"][test]["p99_ms"], 2)
    finally:
        for t in servers:
            t.stop()
        shutil.rmtree(work, ignore_errors=True)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    report(result)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print("\nwrote %s" % args.out)


def report(result):
    names = ["redis-server + inferkv.so", "inferkv-server"]
    print("\nINFER.GENERATE, MAXTOKENS %d, greedy: aggregate decode tok/s / end-to-end tok/s / TTFT p50 ms"
          % result["max_tokens"])
    print("%-28s" % "clients" + "".join("%24s" % n for n in result["levels"]))
    for name in names:
        r = result.get(name, {})
        if "generate" not in r:
            print("%-28s %s" % (name, "skipped: " + r["skipped"] if "skipped" in r else "error: %s" % r.get("error")))
            continue
        cells = []
        for n in result["levels"]:
            g = r["generate"].get(str(n), {})
            cells.append("%7s /%7s /%6s" % (g.get("decode_agg_tok_s", "-"), g.get("agg_tok_s", "err"),
                                            int(g["ttft_ms_p50"]) if "ttft_ms_p50" in g else "-"))
        print("%-28s" % name + "".join("%24s" % c for c in cells))
    print("\ntarget: aggregate decode tok/s at 16 clients >= 3x single client (reported, not asserted)")
    for name in names:
        r = result.get(name, {})
        if "agg16_over_1" in r:
            ok = r["agg16_over_1"] >= 3.0
            result["targets_by_server"].setdefault(name, {})["agg16_over_1_met"] = ok
            print("  %-28s %.2fx  %s  (end-to-end with prefill: %sx)" % (
                name, r["agg16_over_1"], "meets" if ok else "BELOW target", r.get("e2e_agg16_over_1", "-")))
    print("\nGET / SET latency, redis-benchmark -c 50 (ms)        p50     p99   ops/s")
    rows = [("redis-server (no module)", "idle")]
    for name in names:
        rows += [(name, "idle"), (name, "generating_4")]
    for name, phase in rows:
        lat = result.get(name, {}).get("latency", {}).get(phase)
        if not lat:
            continue
        for test in ("get", "set"):
            if test in lat:
                v = lat[test]
                print("  %-28s %-13s %-4s %7.3f %7.3f %8.0f" % (name, phase, test.upper(), v["p50_ms"], v["p99_ms"],
                                                              v["ops"]))
    print("\ntarget: GET p99 with 4 generations running <= 1.1x idle (reported, not asserted)")
    base = result.get("redis-server (no module)", {}).get("latency", {}).get("idle", {}).get("get")
    for name in names:
        r = result.get(name, {})
        if "get_p99_ratio" in r:
            ok = r["get_p99_ratio"] <= 1.1
            result["targets_by_server"].setdefault(name, {})["get_p99_ratio_met"] = ok
            extra = ""
            if base:
                extra = " (vs redis without the module idle: %.2fx)" % (
                    r["latency"]["generating_4"]["get"]["p99_ms"] / base["p99_ms"])
                r["get_p99_under_generation_over_plain_redis_idle"] = round(
                    r["latency"]["generating_4"]["get"]["p99_ms"] / base["p99_ms"], 2)
            print("  %-28s %.2fx  %s%s" % (name, r["get_p99_ratio"], "meets" if ok else "ABOVE target", extra))


if __name__ == "__main__":
    main()
