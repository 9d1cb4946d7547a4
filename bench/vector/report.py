#!/usr/bin/python3
"""report.py - the tables and bench/out/vector.json of bench/bench_vector.sh.

bench_vector.sh leaves one directory per dataset under RES (RES/<tag>/),
holding what each measurement printed, next to the load average taken just
before it ran (<name>.load: "1m 5m 15m"):

    data.txt                  the dataset directory (its meta.json is read)
    order.txt, seconds.txt    "ours first" / "peers first"; wall time
    ping.json                 vset_client ping: the bare loopback round trip
    vsb-<quant>-<t>t.json     vset-bench --json (libvset alone; t threads)
    <who>-<quant>-load.json   vset_client load (who: server, module)
    <who>-<quant>-mem.json    used_memory before/after the load, MEMORY USAGE
    <who>-<quant>-w<W>.json   vset_client query at window W
    peers.json                bench/vector/peers.sh --json (hnswlib, USearch)

Usage: report.py RES DEST --params JSON
Prints one block of tables per dataset and writes DEST.  Figures, never
assertions: nothing here judges a result.
"""
import json
import os
import subprocess
import sys

M = 16
REDIS_POINTERS = M * 2 + M * 0.33  # Redis docs: average pointers per node
REDIS_PUBLISHED = {"memory_usage_bytes": 3107002888, "elements": 3000000, "dim": 300, "quant": "q8",
                   "note": "MEMORY USAGE word_embeddings_int8 (Redis docs): 3M x 300-d int8 with small "
                           "JSON attributes"}


def jload(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_avg(path):
    try:
        return open(path).read().split()[:3]
    except OSError:
        return None


def with_load(d, base):
    obj = jload(os.path.join(d, base + ".json"))
    if obj is not None:
        la = load_avg(os.path.join(d, base + ".load"))
        if la:
            obj["loadavg_before"] = la
    return obj


def fmt_int(v):
    return "-" if v is None else "{:,.0f}".format(v)


def lowest(curve, qkey="qps", target=0.95):
    """(ef, recall, qps) at the lowest EF whose recall reaches target; None."""
    for e in curve or []:
        if e["recall"] >= target:
            return {"ef": e["ef"], "recall": e["recall"], "qps": e.get(qkey)}
    return None


def best(curve, qkey="qps"):
    if not curve:
        return None
    e = max(curve, key=lambda x: (x["recall"], -x["ef"]))
    return {"ef": e["ef"], "recall": e["recall"], "qps": e.get(qkey)}


def redis_estimate(dim):
    ptr = REDIS_POINTERS * 8
    return {"q8": round(ptr + dim), "noquant": round(ptr + 4 * dim), "bin": round(ptr + dim / 8)}


def redis_extrapolated(dim):
    per = REDIS_PUBLISHED["memory_usage_bytes"] / REDIS_PUBLISHED["elements"]
    return round(per - REDIS_PUBLISHED["dim"] + dim)


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": int(subprocess.check_output(["nproc"]).strip()), "cpu": cpu,
            "loadavg_at_report": open("/proc/loadavg").read().split()[:3]}


def dataset(d, params):
    data_dir = open(os.path.join(d, "data.txt")).read().strip()
    meta = jload(os.path.join(data_dir, "meta.json")) or {}
    n, dim = meta.get("n"), meta.get("dim")
    out = {"dataset": dict(meta, dir=data_dir),
           "order": (open(os.path.join(d, "order.txt")).read().strip()
                     if os.path.exists(os.path.join(d, "order.txt")) else None),
           "seconds": float(open(os.path.join(d, "seconds.txt")).read())
           if os.path.exists(os.path.join(d, "seconds.txt")) else None,
           "loopback_ping": with_load(d, "ping"),
           "libvset": {}, "server": {}, "module": {}, "peers": None}
    for q in ("q8", "noquant", "bin"):
        for t in (1, 2):
            r = with_load(d, "vsb-%s-%dt" % (q, t))
            if r:
                out["libvset"]["%s_%dthread%s" % (q, t, "s" if t > 1 else "")] = r
        r = with_load(d, "vsb-%s-again" % q)
        if r:
            r.pop("inserts_per_s", None)
            r["how"] = "the 1-thread index reloaded (vset-bench --cache) and queried again between the server's runs"
            out["libvset"]["%s_again" % q] = r
        for who in ("server", "module"):
            load = with_load(d, "%s-%s-load" % (who, q))
            if not load:
                continue
            mem = jload(os.path.join(d, "%s-%s-mem.json" % (who, q))) or {}
            entry = {"load": load, "memory": mem}
            if mem.get("used_memory_after") is not None and n:
                mem["used_memory_bytes_per_vector"] = round(
                    (mem["used_memory_after"] - mem["used_memory_before"]) / n, 1)
            if mem.get("memory_usage_key") and n:
                mem["memory_usage_bytes_per_vector"] = round(mem["memory_usage_key"] / n, 1)
            t = with_load(d, "%s-%s-truth" % (who, q))
            if t:
                t["how"] = "VSIM ... TRUTH: a linear scan over the stored vectors (the quantization's ceiling)"
                entry["truth"] = t
            for w in sorted({1, params["window"]}):
                r = with_load(d, "%s-%s-w%d" % (who, q, w))
                if r:
                    entry["window%d" % w] = r
            out[who][q] = entry
    peers = jload(os.path.join(d, "peers.json"))
    if peers:
        la = load_avg(os.path.join(d, "peers.load"))
        if la:
            peers["loadavg_before_all"] = la
        out["peers"] = peers
    elif os.path.exists(os.path.join(d, "peers.err")):
        out["peers_error"] = open(os.path.join(d, "peers.err")).read().strip()
    if dim:
        out["redis_docs_estimate_bytes_per_vector"] = redis_estimate(dim)
        out["redis_published_extrapolated_q8_bytes_per_vector"] = redis_extrapolated(dim)
    return out


def engines(ds, window):
    """(label, curve, qps key, inserts/s, loadavg, extra) in table order."""
    rows = []
    lv, sv, md = ds["libvset"], ds["server"], ds["module"]
    peers = (ds["peers"] or {}).get("peers", {})

    def add(label, curve, qkey, ips, la, kind, short):
        rows.append({"label": label, "curve": curve, "qkey": qkey, "ips": ips, "load": la, "kind": kind,
                     "short": short})

    for q in ("q8", "noquant", "bin"):
        one = lv.get("%s_1thread" % q)
        if one:
            add("libvset %s, 1 thread" % q, one.get("fresh"), "qps", one.get("inserts_per_s"),
                one.get("loadavg_before"), "lib", "libvset %s" % q)
        again = lv.get("%s_again" % q)
        if again:
            add("libvset %s, again (reloaded)" % q, again.get("fresh"), "qps", None, again.get("loadavg_before"),
                "lib", "libvset %s again" % q)
        two = lv.get("%s_2threads" % q)
        if two:
            add("libvset %s, 2 threads" % q, None, "qps", two.get("inserts_per_s"), two.get("loadavg_before"),
                "lib2", "")
        for who, name, sh in (("server", "server", "server"), ("module", "module", "module")):
            e = (sv if who == "server" else md).get(q)
            if not e:
                continue
            w = e.get("window%d" % window)
            add("%s %s, window %d" % (name, q, window), w and w["search"], "qps", e["load"].get("inserts_per_s"),
                e["load"].get("loadavg_before"), who, "%s %s w%d" % (sh, q, window))
            t = e.get("truth")
            if t:
                add("%s %s, TRUTH %d q" % (name, q, t["queries"]), t["search"], "qps", None,
                    t.get("loadavg_before"), "truth", "")
            w1 = e.get("window1")
            if w1 and window != 1:
                add("%s %s, window 1" % (name, q), w1["search"], "qps", None, w1.get("loadavg_before"), who + "1",
                    "%s %s w1" % (sh, q))
    if "hnswlib" in peers:
        p = peers["hnswlib"]
        add("hnswlib f32", p["search"], "qps", p["inserts_per_s"], p.get("loadavg_before"), "peer", "hnswlib f32")
    for key, label in (("usearch_f32", "usearch f32"), ("usearch_i8", "usearch i8")):
        if key in peers:
            p = peers[key]
            add(label + ", batch", p["search"], "qps_batch", p["inserts_per_s"], p.get("loadavg_before"), "peer",
                label + " batch")
            add(label + ", call", p["search"], "qps_call", None, None, "peer", label + " call")
    return rows


def print_dataset(tag, ds, params):
    meta = ds["dataset"]
    window = params["window"]
    desc = "%s n=%s dim=%s queries=%s seed=%s" % (meta.get("kind"), meta.get("n"), meta.get("dim"),
                                                  meta.get("queries"), meta.get("seed"))
    if meta.get("kind") == "clustered":
        desc += " (100 clusters, spread %s)" % meta.get("spread")
    kern = next((v.get("kernels") for v in ds["libvset"].values() if v.get("kernels")), "?")
    ping = ds.get("loopback_ping") or {}
    print("\n==== %s: %s" % (tag, desc))
    print("     %s, %s s; libvset kernels %s; loopback PING round trip p50 %s us, p99 %s us" %
          (ds.get("order"), ds.get("seconds"), kern, ping.get("p50_us", "-"), ping.get("p99_us", "-")))
    print("     server = inferkv-server, module = redis-server 7.0.15 + build/inferkv.so; window = VSIM/VADD "
          "in flight from the hiredis client; TRUTH = VSIM ... TRUTH, exact search over the stored vectors")

    rows = engines(ds, window)
    one = ds["libvset"].get("q8_1thread", {}).get("inserts_per_s")
    print("\n%-32s %14s  %-15s %s" % ("", "inserts/s", "load before", "lowest EF with recall@10 >= 0.95 "
                                                                       "(else the best recall)"))
    for r in rows:
        ips = fmt_int(r["ips"]) if r["ips"] is not None else "-"
        if r["kind"] == "lib2" and one and r["ips"]:
            ips += " (%.2fx)" % (r["ips"] / one)
        hit = lowest(r["curve"], r["qkey"]) if r["curve"] else None
        if r["kind"] == "truth":
            e = r["curve"][0]
            at = "exact over stored vectors: %.4f (%s q/s)" % (e["recall"], fmt_int(e["qps"]))
        elif hit:
            at = "EF %d: %.4f at %s q/s" % (hit["ef"], hit["recall"], fmt_int(hit["qps"]))
        elif r["curve"]:
            b = best(r["curve"], r["qkey"])
            at = "none; best %.4f at EF %d (%s q/s)" % (b["recall"], b["ef"], fmt_int(b["qps"]))
        else:
            at = ""
        print("%-32s %14s  %-15s %s" % (r["label"], ips, " ".join(r["load"] or []), at))

    # server / libvset ratios
    for q in ("q8", "noquant", "bin"):
        first = ds["libvset"].get("%s_1thread" % q)
        lib = ds["libvset"].get("%s_again" % q) or first
        srv = ds["server"].get(q)
        if not lib or not srv:
            continue
        lc = {e["ef"]: e for e in lib.get("fresh", [])}
        parts = []
        for w in sorted({window, 1}, reverse=True):
            sc = srv.get("window%d" % w)
            if not sc:
                continue
            ratios = [(e["ef"], e["qps"] / lc[e["ef"]]["qps"]) for e in sc["search"]
                      if e["ef"] in lc and lc[e["ef"]]["qps"]]
            if not ratios:
                continue
            hit = lowest(lib.get("fresh"))  # the library's own lowest EF
            at = next((r for ef, r in ratios if hit and ef == hit["ef"]), None)
            med = sorted(r for _, r in ratios)[len(ratios) // 2]
            parts.append("window %d: %s median over EFs %.2f" %
                         (w, "%.2f at EF %d," % (at, hit["ef"]) if at is not None else "", med))
            srv.setdefault("ratio_to_libvset", {})["window%d" % w] = {
                "per_ef": {str(ef): round(r, 3) for ef, r in ratios}, "median": round(med, 3),
                "at_libvset_lowest_ef_095": round(at, 3) if at is not None else None}
        ins = srv["load"].get("inserts_per_s")
        if ins and first and first.get("inserts_per_s"):
            parts.append("inserts %.2f" % (ins / first["inserts_per_s"]))
            srv.setdefault("ratio_to_libvset", {})["inserts"] = round(ins / first["inserts_per_s"], 3)
        srv.setdefault("ratio_to_libvset", {})["libvset_curve"] = "again" if lib is not first else "first"
        print("server/libvset %s (q/s vs libvset %s): %s" %
              (q, "again, reloaded between the server's runs" if lib is not first else "1 thread", "; ".join(parts)))
    if one and ds["libvset"].get("q8_2threads", {}).get("inserts_per_s"):
        ds["libvset"]["insert_speedup_2_threads_q8"] = round(ds["libvset"]["q8_2threads"]["inserts_per_s"] / one, 3)

    # curves
    groups = [("q8 / int8", lambda r: " q8" in r["short"] or "i8" in r["short"]),
              ("float32", lambda r: "noquant" in r["short"] or "f32" in r["short"]),
              ("binary", lambda r: " bin" in r["short"])]
    for title, pick in groups:
        cols = [r for r in rows if r["curve"] and pick(r)]
        if not cols:
            continue
        print("\nrecall@10 / queries/s per EF, %s (one client thread; server: one event loop)" % title)
        print("%5s" % "EF" + "".join(" | %-20.20s" % c["short"] for c in cols))
        efs = [e["ef"] for e in cols[0]["curve"]]
        for ef in efs:
            line = "%5d" % ef
            for c in cols:
                e = next((x for x in c["curve"] if x["ef"] == ef), None)
                line += " | %6.4f %13s" % (e["recall"], fmt_int(e.get(c["qkey"]))) if e else " | %20s" % "-"
            print(line)
        w1 = [c for c in cols if c["kind"] in ("server1", "module1")]
        for c in w1:
            lat = ", ".join("EF %d %s/%s" % (e["ef"], e.get("p50_us"), e.get("p99_us")) for e in c["curve"])
            print("  %s p50/p99 us: %s" % (c["label"], lat))

    # memory
    dim = meta.get("dim")
    est = ds.get("redis_docs_estimate_bytes_per_vector", {})
    print("\nmemory, bytes per vector         %10s %10s %10s" % ("q8", "noquant", "bin"))

    def mrow(label, vals):
        print("%-32s %10s %10s %10s" % (label, *[("%.0f" % v) if isinstance(v, (int, float)) else (v or "-")
                                                  for v in vals]))
    mrow("libvset (vset_memory / n)", [ds["libvset"].get("%s_1thread" % q, {}).get("bytes_per_vector")
                                       for q in ("q8", "noquant", "bin")])
    for who, name in (("server", "server"), ("module", "module")):
        if ds[who]:
            mrow("%s used_memory delta / n" % name,
                 [ds[who].get(q, {}).get("memory", {}).get("used_memory_bytes_per_vector") for q in
                  ("q8", "noquant", "bin")])
            mrow("%s MEMORY USAGE / n" % name,
                 [ds[who].get(q, {}).get("memory", {}).get("memory_usage_bytes_per_vector") for q in
                  ("q8", "noquant", "bin")])
    peers = (ds["peers"] or {}).get("peers", {})
    if "hnswlib" in peers:
        m = peers["hnswlib"]["memory"]
        mrow("hnswlib f32 layout / rss", ["", "%.0f/%.0f" % (m["layout_bytes_per_vector"],
                                                             m["rss_bytes_per_vector"]), ""])
    for key, col in (("usearch_f32", 1), ("usearch_i8", 0)):
        if key in peers:
            m = peers[key]["memory"]
            v = ["", "", ""]
            v[col] = "%.0f/%.0f" % (m["serialized_bytes_per_vector"], m["rss_bytes_per_vector"])
            mrow(key.replace("_", " ") + " file / rss", v)
    if est:
        mrow("Redis docs formula (estimate)", [est["q8"], est["noquant"], est["bin"]])
        mrow("Redis published 1036 B, scaled", [ds["redis_published_extrapolated_q8_bytes_per_vector"], "", ""])
    if dim:
        print("  (Redis docs formula: (M*2 + M*0.33) pointers x 8 B = %.0f B + the vector (q8 %d B, noquant %d B, "
              "bin %d B) at M 16 -- an estimate from their docs; \"published, scaled\": MEMORY USAGE of their "
              "3M x 300-d int8 set with small JSON attributes = 1036 B/vector, minus 300 B of vector plus %d)" %
              (REDIS_POINTERS * 8, dim, 4 * dim, dim // 8, dim))
    if not ds["module"]:
        why = params.get("module_skipped") or "not run on this set (BENCH_VEC_MODULE=%s)" % params.get("module_sets")
        ds["module_skipped"] = why
        print("redis 7.0.15 + inferkv.so: " + why)
    if ds["module"]:
        print("  (module: redis-server 7.0.15 with build/inferkv.so loaded, counted in jemalloc's size classes; "
              "inferkv-server and vset-bench count glibc's malloc_usable_size)")
    if ds.get("peers_error"):
        print("peers: " + ds["peers_error"])


def main():
    res, dest = sys.argv[1], sys.argv[2]
    params = json.loads(sys.argv[sys.argv.index("--params") + 1])
    result = {"parameters": dict(params, M=M, ef_construction=200,
                                 threads="1 unless said (libvset q8_2threads: 2 insert threads)",
                                 qps="all queries over all timed passes / their time (vset-bench, vset_client, "
                                     "hnswlib 'qps', USearch 'qps_batch' and 'qps_call'); peers' medians "
                                     "are in their entries"),
              "machine": machine(),
              "redis_docs": {
                  "formula": "(M*2 + M*0.33) pointers of 8 bytes per node plus the vector "
                             "(an estimate from Redis's memory-optimization docs)",
                  "pointer_bytes_at_m16": round(REDIS_POINTERS * 8, 1),
                  "published": dict(REDIS_PUBLISHED, bytes_per_vector=round(
                      REDIS_PUBLISHED["memory_usage_bytes"] / REDIS_PUBLISHED["elements"], 1)),
                  "query_figure": "about 50k VSIM/s on a 3M x 300-d int8 set with up to 32 threads"},
              "datasets": {}}
    kernels = set()
    for tag in params["sets"]:
        d = os.path.join(res, tag)
        if not os.path.isdir(d):
            continue
        ds = dataset(d, params)
        print_dataset(tag, ds, params)
        for v in ds["libvset"].values():
            if isinstance(v, dict) and v.get("kernels"):
                kernels.add(v["kernels"])
        result["datasets"][tag] = ds
    result["libvset_kernels"] = sorted(kernels)
    with open(dest, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print("\nwrote", dest)


if __name__ == "__main__":
    main()
