#!/usr/bin/env bash
# bench_server.sh - inferkv-server next to redis-server 7.0.15, same run,
# same machine, both on loopback with persistence off.
#
#   1. redis-benchmark -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,
#      zadd,lrange_100 -n N -c 50, with -P 1 and -P 16: ops/s, p50, p99 for
#      each server and the ratio inferkv/redis.
#   2. memory per key: 1M small strings and 100k small hashes (5 fields)
#      loaded with redis-cli --pipe; used_memory and RSS growth per key.
#
# Figures are printed and written to bench/out/server.json.  They are
# measurements, not assertions.  BENCH_N (default 500000) and
# BENCH_STRINGS / BENCH_HASHES scale the runs down while iterating.
set -eu
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
N=${BENCH_N:-500000}
NSTR=${BENCH_STRINGS:-1000000}
NHASH=${BENCH_HASHES:-100000}
TESTS=set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100
. bench/lib.sh # out, tmp, cleanup, free_port, wait_up, used, start_servers

start_servers

bench() { # port pipeline -> csv on stdout
    nice redis-benchmark -h 127.0.0.1 -p "$1" -t "$TESTS" -n "$N" -c 50 -P "$2" --csv -q 2>/dev/null
}

# Each test runs on both servers back to back (alternating which goes
# first), so that load from elsewhere on the machine hits both alike.
for P in 1 16; do
    echo "== redis-benchmark -n $N -c 50 -P $P"
    redis-cli -p "$kv_port" flushall >/dev/null; redis-cli -p "$rd_port" flushall >/dev/null
    i=0
    for t in ${TESTS//,/ }; do
        if [ $((i % 2)) -eq 0 ]; then order="$kv_port $rd_port"; else order="$rd_port $kv_port"; fi
        for port in $order; do
            if [ "$port" = "$kv_port" ]; then f="$tmp/kv_P$P.csv"; else f="$tmp/redis_P$P.csv"; fi
            TESTS=$t bench "$port" "$P" | { if [ -s "$f" ]; then tail -n +2; else cat; fi; } >>"$f"
        done
        i=$((i + 1))
    done
done

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

memory_run() { # name port pid generator
    local name=$1 port=$2 pid=$3 gen=$4
    redis-cli -p "$port" flushall >/dev/null
    sleep 0.2
    local u0 r0 u1 r1
    u0=$(used "$port"); r0=$(rss_kb "$pid")
    $gen | redis-cli -p "$port" --pipe >/dev/null
    u1=$(used "$port"); r1=$(rss_kb "$pid")
    echo "$name $((u1 - u0)) $(((r1 - r0) * 1024))"
}
gen_strings() { awk -v n="$NSTR" 'BEGIN { for (i = 0; i < n; i++) printf "SET key:%08d val:%08d\r\n", i, i }'; }
gen_hashes() { awk -v n="$NHASH" 'BEGIN { for (i = 0; i < n; i++) printf "HSET hash:%07d name n%d age %d city c%d zip %d email e%d\r\n", i, i, i % 90, i % 50, i % 99999, i }'; }

echo "== memory: $NSTR small strings, $NHASH small hashes"
memory_run kv_strings "$kv_port" "$kv_pid" gen_strings >"$tmp/mem.txt"
memory_run redis_strings "$rd_port" "$rd_pid" gen_strings >>"$tmp/mem.txt"
memory_run kv_hashes "$kv_port" "$kv_pid" gen_hashes >>"$tmp/mem.txt"
memory_run redis_hashes "$rd_port" "$rd_pid" gen_hashes >>"$tmp/mem.txt"

/usr/bin/python3 - "$tmp" "$out/server.json" "$N" "$NSTR" "$NHASH" <<'PY'
import csv, json, subprocess, sys
tmp, dest, n, nstr, nhash = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])

def load(path):
    rows = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            name = r["test"].split(" ")[0]
            rows[name] = {"ops": float(r["rps"]), "p50_ms": float(r["p50_latency_ms"]),
                          "p99_ms": float(r["p99_latency_ms"])}
    return rows

result = {"machine": {"nproc": int(subprocess.check_output(["nproc"]).strip())},
          "redis_benchmark": {"n": n, "clients": 50}, "throughput": {}, "memory": {}}
for p in (1, 16):
    kv, rd = load("%s/kv_P%d.csv" % (tmp, p)), load("%s/redis_P%d.csv" % (tmp, p))
    table = {}
    print("\n-P %d %-12s %12s %8s %8s | %12s %8s %8s | %6s" %
          (p, "test", "inferkv op/s", "p50", "p99", "redis op/s", "p50", "p99", "ratio"))
    for name in rd:
        k, r = kv.get(name), rd[name]
        if not k:
            continue
        ratio = k["ops"] / r["ops"] if r["ops"] else 0.0
        table[name] = {"inferkv": k, "redis": r, "ratio": round(ratio, 3)}
        print("      %-12s %12.0f %8.3f %8.3f | %12.0f %8.3f %8.3f | %6.2f" %
              (name, k["ops"], k["p50_ms"], k["p99_ms"], r["ops"], r["p50_ms"], r["p99_ms"], ratio))
    result["throughput"]["P%d" % p] = table
mem = {}
for line in open(tmp + "/mem.txt"):
    name, used, rss = line.split()
    mem[name] = (int(used), int(rss))
for kind, count in (("strings", nstr), ("hashes", nhash)):
    k, r = mem["kv_" + kind], mem["redis_" + kind]
    entry = {"keys": count,
             "inferkv_used_bytes_per_key": round(k[0] / count, 1),
             "redis_used_bytes_per_key": round(r[0] / count, 1),
             "inferkv_rss_bytes_per_key": round(k[1] / count, 1),
             "redis_rss_bytes_per_key": round(r[1] / count, 1)}
    entry["ratio_used"] = round(entry["inferkv_used_bytes_per_key"] / entry["redis_used_bytes_per_key"], 3)
    result["memory"][kind] = entry
    print("\nmemory %-8s inferkv %7.1f B/key (rss %7.1f) | redis %7.1f B/key (rss %7.1f) | ratio %.2f" %
          (kind, entry["inferkv_used_bytes_per_key"], entry["inferkv_rss_bytes_per_key"],
           entry["redis_used_bytes_per_key"], entry["redis_rss_bytes_per_key"], entry["ratio_used"]))
json.dump(result, open(dest, "w"), indent=2)
print("\nwrote", dest)
PY
