#!/usr/bin/env bash
# bench_stream.sh - stream throughput of inferkv-server next to redis-server
# 7.0.15, same run, same machine, both on loopback with persistence off.
#
#   xadd         XADD bs * f <16 bytes>      (appends to one stream)
#   xadd_maxlen  XADD bt MAXLEN ~ 1000 * f v (appends and trims nodes)
#   xread        XREAD COUNT 10 STREAMS br 0 (10 entries from the head of a
#                10,000-entry stream)
#   xread_tail   XREAD COUNT 10 STREAMS br <id of entry 9,990> (the tail)
#   xrange_100   XRANGE br - + COUNT 100
#
# Each with redis-benchmark -n N -c 50, pipelines of 1 and 16; ops/s, p50,
# p99 per server and the ratio inferkv/redis.  Then memory: used_memory
# per entry after loading BENCH_STREAM_ENTRIES (default 200000) entries of
# three small fields with redis-cli --pipe.  Printed and written to
# bench/out/stream.json.  Measurements, not assertions: the machine's 2
# cores are shared, so figures move by 10-20% between runs; the tests
# alternate which server goes first so that load hits both alike.
# BENCH_N (default 200000) scales the runs.
set -euf # -f: the "*" of XADD's id must reach redis-benchmark unexpanded
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
N=${BENCH_N:-200000}
NENT=${BENCH_STREAM_ENTRIES:-200000}
. bench/lib.sh # out, tmp, cleanup, free_port, wait_up, used, start_servers

start_servers

# The read tests use a fixed stream of 10,000 entries with explicit ids.
preload() {
    redis-cli -p "$1" del br >/dev/null
    awk 'BEGIN { for (i = 1; i <= 10000; i++) printf "XADD br %d-0 f value-%08d g %d\r\n", i, i, i }' |
        redis-cli -p "$1" --pipe >/dev/null
}
preload "$kv_port"
preload "$rd_port"

# name|command line
tests=(
    "xadd|XADD bs * f 0123456789abcdef"
    "xadd_maxlen|XADD bt MAXLEN ~ 1000 * f v"
    "xread|XREAD COUNT 10 STREAMS br 0"
    "xread_tail|XREAD COUNT 10 STREAMS br 9990-0"
    "xrange_100|XRANGE br - + COUNT 100"
)

for P in 1 16; do
    echo "== redis-benchmark -n $N -c 50 -P $P"
    i=0
    for t in "${tests[@]}"; do
        name=${t%%|*}
        cmd=${t#*|}
        if [ $((i % 2)) -eq 0 ]; then order="$kv_port $rd_port"; else order="$rd_port $kv_port"; fi
        for port in $order; do
            if [ "$port" = "$kv_port" ]; then who=kv; else who=redis; fi
            # shellcheck disable=SC2086  # the command line splits into arguments on purpose
            line=$(nice redis-benchmark -h 127.0.0.1 -p "$port" -n "$N" -c 50 -P "$P" --csv -q $cmd 2>/dev/null | tail -n 1)
            echo "$who $P $name $line" >>"$tmp/results.txt"
        done
        i=$((i + 1))
    done
done
for port in "$kv_port" "$rd_port"; do
    echo "len $port $(redis-cli -p "$port" xlen bs) $(redis-cli -p "$port" xlen bt)" >>"$tmp/lens.txt"
done

echo "== memory: $NENT entries"
for port in "$kv_port" "$rd_port"; do
    redis-cli -p "$port" flushall >/dev/null
    sleep 0.2
    u0=$(used "$port")
    awk -v n="$NENT" 'BEGIN { for (i = 1; i <= n; i++) printf "XADD mem %d-0 temp %d hum %d dev sensor-%d\r\n", i, i % 40, i % 100, i % 17 }' |
        redis-cli -p "$port" --pipe >/dev/null
    echo "mem $port $(( $(used "$port") - u0 ))" >>"$tmp/lens.txt"
done

/usr/bin/python3 - "$tmp" "$out/stream.json" "$N" "$NENT" <<'PY'
import csv, io, json, subprocess, sys
tmp, dest, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = {}
for line in open(tmp + "/results.txt"):
    who, p, name, rest = line.rstrip("\n").split(" ", 3)
    r = next(csv.reader(io.StringIO(rest)))
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    rows[(who, int(p), name)] = {"ops": float(r[1]), "p50_ms": float(r[4]), "p99_ms": float(r[6])}
result = {"machine": {"nproc": int(subprocess.check_output(["nproc"]).strip())},
          "redis_benchmark": {"n": n, "clients": 50}, "throughput": {}}
for p in (1, 16):
    table = {}
    print("\n-P %-3d %-12s %12s %8s %8s | %12s %8s %8s | %6s" %
          (p, "test", "inferkv op/s", "p50", "p99", "redis op/s", "p50", "p99", "ratio"))
    for (who, pp, name), r in rows.items():
        if who != "redis" or pp != p or ("kv", p, name) not in rows:
            continue
        k = rows[("kv", p, name)]
        ratio = k["ops"] / r["ops"] if r["ops"] else 0.0
        table[name] = {"inferkv": k, "redis": r, "ratio": round(ratio, 3)}
        print("       %-12s %12.0f %8.3f %8.3f | %12.0f %8.3f %8.3f | %6.2f" %
              (name, k["ops"], k["p50_ms"], k["p99_ms"], r["ops"], r["p50_ms"], r["p99_ms"], ratio))
    result["throughput"]["P%d" % p] = table
lens = [l.split() for l in open(tmp + "/lens.txt")]
result["stream_lengths_after"] = {"inferkv": {"bs": int(lens[0][2]), "bt": int(lens[0][3])},
                                  "redis": {"bs": int(lens[1][2]), "bt": int(lens[1][3])}}
nent = int(sys.argv[4])
kvm, rdm = int(lens[2][2]), int(lens[3][2])
result["memory"] = {"entries": nent, "inferkv_bytes_per_entry": round(kvm / nent, 1),
                    "redis_bytes_per_entry": round(rdm / nent, 1), "ratio": round(kvm / rdm, 3)}
print("\nmemory %d entries: inferkv %.1f B/entry | redis %.1f B/entry | ratio %.2f" %
      (nent, kvm / nent, rdm / nent, kvm / rdm))
json.dump(result, open(dest, "w"), indent=2)
print("\nwrote", dest)
PY
