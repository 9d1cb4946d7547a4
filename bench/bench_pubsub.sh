#!/usr/bin/env bash
# bench_pubsub.sh - PUBLISH fan-out of inferkv-server next to redis-server
# 7.0.15, same run, same machine, both on loopback with persistence off.
#
# build/pubsub-bench (tools/pubsub-bench) subscribes 100 connections to one
# channel and publishes N 16-byte messages from one connection, in
# pipelined windows of 64 and of 1 (one PUBLISH at a time); the figure is
# messages delivered per second (100 x N / time until the last subscriber
# has the last message).  Three runs per cell, alternating which server
# goes first, median reported, ratio inferkv/redis.  Printed and written to
# bench/out/pubsub.json.  Measurements, not assertions: the machine's 2
# cores are shared, so figures move by 10-20% between runs.
# BENCH_PUBSUB_N (default 20000) scales the windowed runs.
set -eu
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
N=${BENCH_PUBSUB_N:-20000}
SUBS=100
REPS=3
. bench/lib.sh # out, tmp, cleanup, free_port, wait_up, used, start_servers

driver=$build/pubsub-bench
[ -x "$driver" ] || make -s "$driver"

start_servers

# cell name|window|messages
cells=("window64|64|$N" "window1|1|$((N / 10))")
i=0
for cell in "${cells[@]}"; do
    IFS='|' read -r name window msgs <<<"$cell"
    echo "== $name: $SUBS subscribers, $msgs messages, window $window"
    for rep in $(seq "$REPS"); do
        if [ $(((i + rep) % 2)) -eq 0 ]; then order="$kv_port $rd_port"; else order="$rd_port $kv_port"; fi
        for port in $order; do
            if [ "$port" = "$kv_port" ]; then who=kv; else who=redis; fi
            line=$(nice "$driver" -p "$port" -s "$SUBS" -n "$msgs" -P "$window")
            echo "$who $name $line" >>"$tmp/results.txt"
        done
    done
    i=$((i + 1))
done

/usr/bin/python3 - "$tmp/results.txt" "$out/pubsub.json" "$SUBS" "$REPS" <<'PY'
import datetime, json, platform, statistics, subprocess, sys
src, dest, subs, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
runs = {}
for line in open(src):
    who, cell, js = line.split(" ", 2)
    runs.setdefault(cell, {}).setdefault(who, []).append(json.loads(js))
rows = {}
print(f"\n{'cell':10} {'inferkv msg/s':>14} {'redis msg/s':>14} {'ratio':>7}")
for cell, by in runs.items():
    kv = statistics.median(r["delivered_per_s"] for r in by["kv"])
    rd = statistics.median(r["delivered_per_s"] for r in by["redis"])
    rows[cell] = {"subscribers": subs, "messages": by["kv"][0]["messages"],
                  "window": by["kv"][0]["window"], "payload_bytes": by["kv"][0]["payload_bytes"],
                  "inferkv_delivered_per_s": kv, "redis_delivered_per_s": rd,
                  "ratio": round(kv / rd, 3), "runs": by}
    print(f"{cell:10} {kv:14.0f} {rd:14.0f} {kv / rd:6.2f}x")
redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
json.dump({"benchmark": "pubsub fan-out", "driver": "build/pubsub-bench", "reps": reps,
           "statistic": "median", "machine": platform.machine(), "redis": redis_version,
           "date": datetime.datetime.utcnow().isoformat() + "Z", "results": rows},
          open(dest, "w"), indent=2)
print(f"\nwrote {dest}")
PY
