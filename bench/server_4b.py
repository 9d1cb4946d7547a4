"""server_4b.py - a 4B-class model served by inferkv-server under many
concurrent clients (issue 24).  Run by bench_4b.sh, one model file a call.

Starts BUILD/inferkv-server on a free loopback port (persistence off,
infer-threads 2, the infer-* limits given), times INFER.LOAD and reads the
server's RSS after it, then for each client count (40, 80):

  - every client opens a RESP3 connection and, at the same moment, sends
    one INFER.GENERATE (greedy, MAXTOKENS 64, a prompt of its own); the
    answers are sorted by kind: a reply, a queue-full error (the bounded
    queue doing its job: counted, acceptable), anything else (a failure of
    the run, reported);
  - time to first token per reply = queue_ms + prefill_ms of the RESP3
    reply (the server's clock: from the request's arrival on the event loop
    to its first sampled token), p50 / p99 / max;
  - aggregate tokens/s = tokens of every reply over the span from the first
    send to the last reply (prefill included), and decode-only aggregate
    (tokens after each first one over the span from the first first-token);
  - GET latency: a separate process sends one GET every 5 ms on its own
    connection for the whole round and reports p50 / p99 / max; the same
    probe runs for a few seconds with the server idle just before, so both
    figures come from the same minute.

The clients are threads blocked in recv (one connection each) and the GET
probe is paced, so the client side needs next to no CPU: the two cores
belong to the server.  Prints the figures and writes one JSON object to
--out.  Figures, never asserted.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from infer_bench import Conn, Target  # noqa: E402


def pct(vals, p):
    """The p-th percentile (nearest rank) of vals; None when empty."""
    if not vals:
        return None
    s = sorted(vals)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def rss_kib(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ---- the GET probe: its own process, so that the client threads' GIL never
# delays it ------------------------------------------------------------------


def probe_main(port, interval_ms):
    """Runs until stdin closes: one GET every interval_ms; then prints the
    latencies (ms) as JSON on stdout."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = b"*2\r\n$3\r\nGET\r\n$11\r\nbench:probe\r\n"
    want = b"$5\r\nhello\r\n"
    lat = []
    stop = threading.Event()

    def watch():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    nxt = time.perf_counter()
    while not stop.is_set():
        t0 = time.perf_counter()
        s.sendall(req)
        got = b""
        while len(got) < len(want):
            chunk = s.recv(64)
            if not chunk:
                raise SystemExit("probe: connection closed")
            got += chunk
        lat.append((time.perf_counter() - t0) * 1000)
        if got != want:
            raise SystemExit("probe: unexpected reply %r" % got)
        nxt += interval_ms / 1000.0
        time.sleep(max(0.0, nxt - time.perf_counter()))
    json.dump(lat, sys.stdout)


class Probe:
    def __init__(self, port, interval_ms=5):
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--probe", str(port),
                                   "--probe-interval-ms", str(interval_ms)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop(self):
        out, _ = self.p.communicate(timeout=60)
        lat = json.loads(out) if out.strip() else []
        return {"n": len(lat), "p50_ms": round(pct(lat, 50), 3) if lat else None,
                "p99_ms": round(pct(lat, 99), 3) if lat else None,
                "max_ms": round(max(lat), 3) if lat else None}


# ---- one round: n clients at once ------------------------------------------


def prompt_of(i):
    return "Request %d. Write a short story about a lighthouse keeper named Ada number %d." % (i, i)


def one_client(port, model, i, max_tokens, start, out):
    c = None
    try:
        c = Conn(port, timeout=3600)  # a queued request may wait minutes on 2 cores
        c.call("HELLO", 3)
        start.wait()
        t0 = time.time()
        r = c.call("INFER.GENERATE", model, prompt_of(i), "MAXTOKENS", max_tokens, "TEMPERATURE", 0)
        t1 = time.time()
        out[i] = {"t0": t0, "t1": t1, "tokens": r.get("tokens"), "queue_ms": r.get("queue_ms"),
                  "prefill_ms": r.get("prefill_ms"), "decode_ms": r.get("decode_ms"),
                  "prompt_tokens": r.get("prompt_tokens"),
                  "finish": r["finish"].decode() if isinstance(r.get("finish"), bytes) else r.get("finish")}
    except Exception as e:  # noqa: BLE001 - sorted by kind below
        out[i] = {"error": str(e)}
    finally:
        if c:
            c.close()


def is_queue_full(msg):
    return "queue full" in msg.lower()


def round_of(t, model, n, max_tokens):
    start = threading.Barrier(n + 1)
    out = [None] * n
    ts = [threading.Thread(target=one_client, args=(t.port, model, i, max_tokens, start, out)) for i in range(n)]
    for th in ts:
        th.start()
    probe = Probe(t.port)
    time.sleep(0.2)
    start.wait()
    for th in ts:
        th.join()
    get = probe.stop()
    ok = [o for o in out if o and "error" not in o]
    qf = [o["error"] for o in out if o and "error" in o and is_queue_full(o["error"])]
    bad = [o["error"] if o else "no answer" for o in out if not o or ("error" in o and not is_queue_full(o["error"]))]
    row = {"clients": n, "replies": len(ok), "queue_full": len(qf), "failures": len(bad), "get_busy": get}
    if bad:
        row["first_failure"] = bad[0]
    if qf:
        row["queue_full_text"] = qf[0]
    if not ok:
        return row
    first_send = min(o["t0"] for o in ok)
    wall = max(o["t1"] for o in ok) - first_send
    toks = [o["tokens"] or 0 for o in ok]
    ttft = [o["queue_ms"] + o["prefill_ms"] for o in ok]
    lat = [(o["t1"] - o["t0"]) * 1000 for o in ok]
    first_tok = min(o["t0"] + (o["queue_ms"] + o["prefill_ms"]) / 1000 for o in ok)
    span = max(o["t1"] for o in ok) - first_tok
    row.update({
        "tokens": sum(toks), "prompt_tokens": sum(o["prompt_tokens"] or 0 for o in ok), "wall_s": round(wall, 2),
        "agg_tok_s": round(sum(toks) / wall, 2) if wall > 0 else None,
        "decode_agg_tok_s": round(sum(max(0, k - 1) for k in toks) / span, 2) if span > 0 else None,
        "ttft_ms_p50": round(pct(ttft, 50)), "ttft_ms_p99": round(pct(ttft, 99)), "ttft_ms_max": round(max(ttft)),
        "queue_ms_p50": round(pct([o["queue_ms"] for o in ok], 50)),
        "prefill_ms_p50": round(pct([o["prefill_ms"] for o in ok], 50)),
        "latency_ms_p50": round(pct(lat, 50)), "latency_ms_max": round(max(lat)),
        "finish": sorted(set(str(o["finish"]) for o in ok)),
    })
    return row


def fmt(r):
    s = "%d replies, %d queue-full, %d failures" % (r["replies"], r["queue_full"], r["failures"])
    if r.get("agg_tok_s") is not None:
        s += "; %d tokens in %.1f s: %.2f tok/s (decode %.2f); TTFT p50 %d ms p99 %d ms" % (
            r["tokens"], r["wall_s"], r["agg_tok_s"], r["decode_agg_tok_s"] or 0, r["ttft_ms_p50"], r["ttft_ms_p99"])
    g = r["get_busy"]
    if g.get("p99_ms") is not None:
        s += "; GET p99 %.3f ms (%d GETs)" % (g["p99_ms"], g["n"])
    if r.get("first_failure"):
        s += "; first failure: %s" % r["first_failure"]
    return s


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--probe":
        ap = argparse.ArgumentParser()
        ap.add_argument("--probe", type=int)
        ap.add_argument("--probe-interval-ms", type=float, default=5)
        a = ap.parse_args()
        probe_main(a.probe, a.probe_interval_ms)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--out", required=True)
    ap.add_argument("--clients", default="40,80")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--kv-memory", type=int, default=0, help="bytes; 0: room for max-batch sequences of "
                    "context tokens")
    ap.add_argument("--idle-priority", default="yes", help="infer-idle-priority: yes (the server's default) "
                    "or no")
    ap.add_argument("--idle-seconds", type=float, default=5)
    args = ap.parse_args()
    clients = [int(x) for x in args.clients.split(",") if x]

    work = tempfile.mkdtemp(prefix="inferkv-bench-4b-")
    models = os.path.join(work, "models")
    os.mkdir(models)
    os.symlink(os.path.abspath(args.model), os.path.join(models, "model.gguf"))
    # F16 K and V: 2 x layers x kv-heads x head-dim x 2 bytes a token (Qwen3-4B: 144 KiB)
    kv = args.kv_memory or args.max_batch * args.context * 147456 + (64 << 20)
    opts = {"infer-threads": args.threads, "infer-max-batch": args.max_batch, "infer-max-queue": args.max_queue,
            "infer-kv-memory": kv, "infer-idle-priority": args.idle_priority}
    cmd = [os.path.abspath(os.path.join(args.build, "inferkv-server")), "--port", "@PORT@", "--bind", "127.0.0.1",
           "--save", "", "--appendonly", "no", "--dir", work, "--maxclients", "1000",
           "--infer-models-dir", models]
    for k, v in opts.items():
        cmd += ["--" + k, str(v)]
    res = {"model": args.model, "server_options": opts, "context": args.context, "max_tokens": args.max_tokens,
           "ttft_source": "queue_ms + prefill_ms of the RESP3 reply", "get_probe": "one GET every 5 ms, own process"}
    t = Target("inferkv-server", cmd, work)
    try:
        if not t.up:
            res["error"] = "inferkv-server did not start: " + t.log_tail(5).strip()
            print("    " + res["error"])
            return dump(res, args.out)
        pid = t.proc.pid
        res["rss_kib_before_load"] = rss_kib(pid)
        t0 = time.time()
        r = t.call("INFER.LOAD", "m", "model.gguf", "CONTEXT", args.context)
        res["load_s"] = round(time.time() - t0, 2)
        res["rss_kib_after_load"] = rss_kib(pid)
        print("    INFER.LOAD: %s in %.2f s, server RSS %.0f MiB" % (r, res["load_s"], res["rss_kib_after_load"] / 1024))
        t.call("SET", "bench:probe", "hello")
        w = Conn(t.port)
        w.call("HELLO", 3)
        w.call("INFER.GENERATE", "m", "warm up", "MAXTOKENS", 2, "TEMPERATURE", 0)  # first touch of the weights
        w.close()
        res["rounds"] = {}
        for n in clients:
            p = Probe(t.port)
            time.sleep(args.idle_seconds)
            idle = p.stop()
            r = round_of(t, "m", n, args.max_tokens)
            r["get_idle"] = idle
            if idle.get("p99_ms") and r["get_busy"].get("p99_ms"):
                r["get_p99_busy_over_idle"] = round(r["get_busy"]["p99_ms"] / idle["p99_ms"], 2)
            res["rounds"][str(n)] = r
            print("    %3d clients: %s; idle GET p99 %.3f ms" % (n, fmt(r), idle["p99_ms"] or 0))
            sys.stdout.flush()
        res["rss_kib_peak"] = rss_kib(pid, "VmHWM")
        st = Conn(t.port)
        st.call("HELLO", 3)
        stats = st.call("INFER.STATS")
        st.close()
        res["infer_stats"] = {k: v for k, v in stats.items() if isinstance(v, (int, float))}
    except Exception as e:  # noqa: BLE001 - reported in the JSON and by bench_4b.sh
        res["error"] = str(e)
        print("    error: %s" % e)
    finally:
        t.stop()
        for f in os.listdir(models):
            os.unlink(os.path.join(models, f))
        os.rmdir(models)
        for f in os.listdir(work):
            try:
                os.unlink(os.path.join(work, f))
            except OSError:
                pass
        try:
            os.rmdir(work)
        except OSError:
            pass
    dump(res, args.out)


def dump(res, path):
    with open(path, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
