#!/usr/bin/env bash
# bench_persist.sh - RDB snapshots of inferkv-server next to redis-server
# 7.0.15: BGSAVE time, load time and memory during BGSAVE, for 1M and 10M
# small keys (key:<i> -> value:<i>), same machine, one server at a time.
#
# For each size and each server (the order alternates):
#   fill     MSET in batches of 100 through redis-cli --pipe
#   bgsave   BGSAVE; its time is the span between the server's own log
#            lines "Background saving started" and "... terminated with
#            success" (both servers write them, to the millisecond);
#            latest_fork_usec; while it runs, every 200 ms, the parent's and
#            the child's RSS and PSS (/proc/<pid>/smaps_rollup): peaks
#            reported, PSS being the memory the two really hold between
#            them; rdb_last_cow_size as the server measured it
#   load     the dump copied to a fresh directory, the server started on
#            it: "DB loaded from disk: X seconds" from its log, and the time
#            until it answers PING
# Ratios are inferkv / redis (below 1.0: inferkv faster).
#
# Then the AOF: SET throughput and latency with appendonly yes +
# appendfsync always, with everysec, and with appendonly no ("off"), each
# mode on a fresh pair of servers (--appenddirname appendonlydir, Redis's
# default name) in their own directories: redis-benchmark -t set -c 50
# -r 1000000 --csv at pipelining 1 and 16, the runs alternating redis /
# inferkv (the order flips each round, one server benchmarked at a time),
# medians over the rounds; rps, p50 and p99 from redis-benchmark's CSV.
# Ratios: ops inferkv / redis (the issue's target: >= 1.0) and p99
# inferkv / redis.  After the runs each server must show INFO persistence
# aof_enabled:1 (0 for "off"), aof_last_write_status:ok and an AOF
# directory holding files (inferkv's at least half as many bytes as
# redis-server's, for the same SETs); an inferkv-server that refuses the
# options, or accepts them without writing an AOF (before inferkv has
# one), gets its row marked "inferkv AOF not active" and no ratio, instead
# of a comparison with an AOF-less server.  A redis-server that fails the same check stops
# the script (the comparison would be meaningless).
#
# The machine's cores are shared with whatever else runs, so the load
# average is recorded at the start and the end, and figures move between
# runs.  Printed and written to bench/out/persist.json.
#   BENCH_PERSIST_SIZES       RDB sizes (default "1000000 10000000"; "" skips the RDB part)
#   BENCH_PERSIST_AOF_MODES   "always everysec off" ("" skips the AOF part)
#   BENCH_PERSIST_AOF_N       SETs per redis-benchmark run (default 200000)
#   BENCH_PERSIST_AOF_ROUNDS  alternations per mode (default 3)
# Quick: BENCH_PERSIST_SIZES=100000 BENCH_PERSIST_AOF_N=20000 BENCH_PERSIST_AOF_ROUNDS=1
set -eu
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
SIZES=${BENCH_PERSIST_SIZES-"1000000 10000000"}
AOF_MODES=${BENCH_PERSIST_AOF_MODES-"always everysec off"}
AOF_N=${BENCH_PERSIST_AOF_N:-200000}
AOF_ROUNDS=${BENCH_PERSIST_AOF_ROUNDS:-3}
. bench/lib.sh # out, tmp, cleanup, free_port, wait_up, used

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
field() { redis-cli -p "$1" info "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f {print $2}'; }
now() { date +%s.%N; }

# start WHO DIR: sets port and pid; the server loads DIR/dump.rdb if any.
start() {
    port=$(free_port)
    if [ "$1" = kv ]; then
        "$build/inferkv-server" --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$2" \
            >"$2/server.log" 2>&1 &
    else
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$2" \
            >"$2/server.log" 2>&1 &
    fi
    pid=$!
    pids+=("$pid")
}

# PONG, not just an answer: redis-server answers -LOADING while it loads
wait_ping() { for _ in $(seq 60000); do [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0; sleep 0.01; done; return 1; }

# mem PID -> "rss_kb pss_kb" (0 0 when gone)
mem() { awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r+0, p+0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo "0 0"; }

results=$tmp/results.txt
: >"$results"
echo "loadavg_start $(loadavg)" >>"$results"
i=0
for n in $SIZES; do
    if [ $((i % 2)) -eq 0 ]; then order="kv redis"; else order="redis kv"; fi
    i=$((i + 1))
    for who in $order; do
        d=$tmp/$who-$n
        mkdir -p "$d"
        start "$who" "$d"
        wait_ping "$port" || { echo "$who did not start" >&2; tail -5 "$d/server.log" >&2; exit 1; }
        echo "== $who: $n keys"
        awk -v n="$n" 'BEGIN { for (b = 0; b < n; b += 100) { m = b + 100 > n ? n - b : 100;
                printf "*%d\r\n$4\r\nMSET\r\n", 1 + 2 * m;
                for (k = b; k < b + m; k++) { ks = "key:" k; vs = "value:" k;
                    printf "$%d\r\n%s\r\n$%d\r\n%s\r\n", length(ks), ks, length(vs), vs } } }' |
            redis-cli -p "$port" --pipe >/dev/null
        [ "$(redis-cli -p "$port" dbsize)" = "$n" ] || { echo "$who: fill failed" >&2; exit 1; }
        used_mem=$(used "$port")
        read -r rss0 pss0 < <(mem "$pid")
        t0=$(now)
        redis-cli -p "$port" bgsave >/dev/null
        peak_prss=0 peak_crss=0 peak_pss=0 child=
        while [ "$(field "$port" persistence rdb_bgsave_in_progress)" = 1 ]; do
            [ -n "$child" ] || child=$(pgrep -P "$pid" | head -n 1 || true)
            read -r prss ppss < <(mem "$pid")
            crss=0 cpss=0
            [ -n "$child" ] && read -r crss cpss < <(mem "$child")
            [ "$prss" -gt "$peak_prss" ] && peak_prss=$prss
            [ "$crss" -gt "$peak_crss" ] && peak_crss=$crss
            [ $((ppss + cpss)) -gt "$peak_pss" ] && peak_pss=$((ppss + cpss))
            sleep 0.2
        done
        t1=$(now)
        # the span between the server's own log lines
        logged_save=$(/usr/bin/python3 - "$d/server.log" <<'PY'
import re, sys, datetime
start = end = None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"\d+:\w (\d+ \w+ \d+ [\d:.]+) . (.*)", line)
    if not m:
        continue
    t = datetime.datetime.strptime(m.group(1), "%d %b %Y %H:%M:%S.%f")
    if m.group(2).startswith("Background saving started"):
        start = t
    elif m.group(2).startswith("Background saving terminated"):
        end = t
print("%.3f" % (end - start).total_seconds() if start and end else "0")
PY
)
        status=$(field "$port" persistence rdb_last_bgsave_status)
        cow=$(field "$port" persistence rdb_last_cow_size)
        fork_us=$(field "$port" stats latest_fork_usec)
        size=$(stat -c %s "$d/dump.rdb")
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
        wait "$pid" 2>/dev/null || true
        echo "save $who $n $logged_save $(echo "$t1 - $t0" | bc) $status $cow $fork_us $size $used_mem $rss0 $pss0 $peak_prss $peak_crss $peak_pss" >>"$results"
        # load: a fresh directory holding only the dump
        l=$tmp/$who-$n-load
        mkdir -p "$l"
        mv "$d/dump.rdb" "$l/dump.rdb"
        rm -rf "$d"
        t0=$(now)
        start "$who" "$l"
        wait_ping "$port" || { echo "$who did not load" >&2; tail -5 "$l/server.log" >&2; exit 1; }
        t1=$(now)
        keys=$(redis-cli -p "$port" dbsize)
        logged=$(sed -n 's/.*DB loaded from disk: \([0-9.]*\) seconds.*/\1/p' "$l/server.log" | tail -n 1)
        read -r rssl pssl < <(mem "$pid")
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
        wait "$pid" 2>/dev/null || true
        rm -rf "$l"
        echo "load $who $n $(echo "$t1 - $t0" | bc) ${logged:-0} $keys $rssl" >>"$results"
    done
done
# ---- AOF: SET throughput and p99 per appendfsync mode --------------------------

# aof_start WHO MODE DIR: sets port and pid, or returns 1 (the log says why)
# when the server exits or does not answer within 10 s
aof_start() {
    local opts=(--appendonly no)
    [ "$2" = off ] || opts=(--appendonly yes --appendfsync "$2" --appenddirname appendonlydir)
    port=$(free_port)
    if [ "$1" = kv ]; then
        "$build/inferkv-server" --bind 127.0.0.1 --port "$port" --save '' "${opts[@]}" --dir "$3" >"$3/server.log" 2>&1 &
    else
        redis-server --bind 127.0.0.1 --port "$port" --save '' "${opts[@]}" --dir "$3" >"$3/server.log" 2>&1 &
    fi
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1000); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# set_bench PORT PIPELINE -> "rps p50 p99" from redis-benchmark --csv
set_bench() {
    redis-benchmark -h 127.0.0.1 -p "$1" -t set -n "$AOF_N" -c 50 -P "$2" -r 1000000 --csv 2>/dev/null |
        awk -F'"' '$2 == "SET" {print $4, $10, $14}'
}

# aof_state WHO MODE PORT DIR: "aof_enabled last_write_status files bytes"
aof_state() {
    local en st files=0 bytes=0
    en=$(field "$3" persistence aof_enabled)
    st=$(field "$3" persistence aof_last_write_status)
    if [ -d "$4/appendonlydir" ]; then
        files=$(find "$4/appendonlydir" -type f | wc -l)
        bytes=$(find "$4/appendonlydir" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
    fi
    echo "${en:-none} ${st:-none} $files $bytes"
}

for mode in $AOF_MODES; do
    echo "== AOF $mode: SET, 50 clients, $AOF_N requests, pipelining 1 and 16, $AOF_ROUNDS alternating rounds"
    up=""
    for who in redis kv; do
        d=$tmp/aof-$mode-$who
        mkdir -p "$d"
        if aof_start "$who" "$mode" "$d"; then
            eval "${who}_port=$port ${who}_pid=$pid"
            up="$up $who"
        else
            why=$(grep -v '^\s*$' "$d/server.log" | tail -n 2 | tr -s '\n\t' '  ' | cut -c1-200)
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            [ "$who" = kv ] || { echo "redis-server did not start with AOF $mode: $why" >&2; exit 1; }
            echo "   inferkv-server refused AOF $mode: $why"
            echo "aofrefused $mode kv $why" >>"$results"
        fi
    done
    for r in $(seq "$AOF_ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then order="redis kv"; else order="kv redis"; fi
        for who in $order; do
            case " $up " in *" $who "*) ;; *) continue ;; esac
            p=${who}_port
            for pl in 1 16; do
                rps='' p50='' p99=
                read -r rps p50 p99 < <(set_bench "${!p}" "$pl") || true
                [ -n "${rps:-}" ] || { echo "$who: redis-benchmark gave no figures (AOF $mode, -P $pl)" >&2; exit 1; }
                echo "   round $r $who -P $pl: $rps SET/s, p50 $p50 ms, p99 $p99 ms"
                echo "aof $mode $pl $who $r $rps $p50 $p99" >>"$results"
            done
        done
    done
    for who in $up; do
        p=${who}_port
        pp=${who}_pid
        state=$(aof_state "$who" "$mode" "${!p}" "$tmp/aof-$mode-$who")
        echo "aofstate $mode $who $state" >>"$results"
        redis-cli -p "${!p}" shutdown nosave >/dev/null 2>&1 || true
        wait "${!pp}" 2>/dev/null || true
        rm -rf "$tmp/aof-$mode-$who"
        # redis-server is the reference: it must really have had the AOF on (or off)
        if [ "$who" = redis ]; then
            read -r en st files bytes <<<"$state"
            if { [ "$mode" = off ] && [ "$en" != 0 ]; } ||
                { [ "$mode" != off ] && { [ "$en" != 1 ] || [ "$st" != ok ] || [ "$bytes" -eq 0 ]; }; }; then
                echo "redis-server's AOF state is not what AOF $mode means: $state" >&2
                exit 1
            fi
        fi
    done
done

echo "loadavg_end $(loadavg)" >>"$results"

/usr/bin/python3 - "$results" "$out/persist.json" <<'PY'
import json, os, sys
src, dest = sys.argv[1], sys.argv[2]
res = {"machine": {"cpus": os.cpu_count()}, "sizes": {}}
aof_lines = []
for line in open(src):
    w = line.split()
    if w[0].startswith("loadavg"):
        res["machine"][w[0]] = " ".join(w[1:])
        continue
    if w[0] in ("aof", "aofstate", "aofrefused"):
        aof_lines.append(w)
        continue
    kind, who, n = w[0], w[1], w[2]
    row = res["sizes"].setdefault(n, {}).setdefault(who, {})
    if kind == "save":
        (secs, polled, status, cow, fork_us, size, used, rss0, pss0, prss, crss, pss) = w[3:]
        row.update({"bgsave_s": float(secs), "bgsave_polled_s": float(polled), "bgsave_status": status,
                    "rdb_last_cow_size": int(cow),
                    "fork_us": int(fork_us), "dump_bytes": int(size), "used_memory": int(used),
                    "rss_before_kb": int(rss0), "pss_before_kb": int(pss0),
                    "bgsave_peak_parent_rss_kb": int(prss), "bgsave_peak_child_rss_kb": int(crss),
                    "bgsave_peak_parent_plus_child_pss_kb": int(pss)})
    else:
        secs, logged, keys, rss = w[3:]
        row.update({"load_to_ping_s": float(secs), "load_logged_s": float(logged), "loaded_keys": int(keys),
                    "rss_after_load_kb": int(rss)})
if res["sizes"]:
    print("%-9s %-6s %9s %8s %9s %9s %11s %11s %11s %10s" % ("keys", "server", "bgsave_s", "fork_ms", "load_s",
          "to_ping_s", "dump_MB", "rss_MB", "peakPSS_MB", "cow_MB"))
for n, rows in res["sizes"].items():
    for who in ("kv", "redis"):
        r = rows.get(who)
        if not r:
            continue
        print("%-9s %-6s %9.2f %8.1f %9.3f %9.2f %11.1f %11.1f %11.1f %10.1f" % (
            n, who, r["bgsave_s"], r["fork_us"] / 1000, r["load_logged_s"], r["load_to_ping_s"],
            r["dump_bytes"] / 1e6, r["rss_before_kb"] / 1024, r["bgsave_peak_parent_plus_child_pss_kb"] / 1024,
            r["rdb_last_cow_size"] / 1e6))
    if "kv" in rows and "redis" in rows:
        kv, rd = rows["kv"], rows["redis"]
        rows["ratio_kv_over_redis"] = {
            "bgsave": round(kv["bgsave_s"] / rd["bgsave_s"], 3) if rd["bgsave_s"] else None,
            "load_logged": round(kv["load_logged_s"] / rd["load_logged_s"], 3) if rd["load_logged_s"] else None,
            "load_to_ping": round(kv["load_to_ping_s"] / rd["load_to_ping_s"], 3) if rd["load_to_ping_s"] else None,
            "bgsave_peak_pss": round(kv["bgsave_peak_parent_plus_child_pss_kb"] /
                                     max(1, rd["bgsave_peak_parent_plus_child_pss_kb"]), 3),
        }
        print("%-9s ratio  bgsave %.2f, load %.2f (to PING %.2f), peak PSS during BGSAVE %.2f" % (
            n, rows["ratio_kv_over_redis"]["bgsave"] or 0, rows["ratio_kv_over_redis"]["load_logged"] or 0,
            rows["ratio_kv_over_redis"]["load_to_ping"] or 0, rows["ratio_kv_over_redis"]["bgsave_peak_pss"]))

# AOF rows: medians over the rounds, each server's AOF state after its runs
import statistics
aof = {}
for w in aof_lines:
    if w[0] == "aof":
        mode, pl, who, rnd, rps, p50, p99 = w[1:8]
        aof.setdefault(mode, {"runs": {}})["runs"].setdefault("P" + pl, {}).setdefault(who, []).append(
            {"round": int(rnd), "rps": float(rps), "p50_ms": float(p50), "p99_ms": float(p99)})
    elif w[0] == "aofstate":
        mode, who, en, st, files, nbytes = w[1:7]
        aof.setdefault(mode, {"runs": {}}).setdefault("state", {})[who] = {
            "aof_enabled": en, "aof_last_write_status": st, "aof_dir_files": int(files), "aof_dir_bytes": int(nbytes)}
    else:
        aof.setdefault(w[1], {"runs": {}}).setdefault("state", {})[w[2]] = {"refused": " ".join(w[3:])}
for mode, m in aof.items():
    st = m.get("state", {}).get("kv", {})
    if "refused" in st:
        m["kv_status"] = "inferkv AOF not active: the options were refused (%s)" % st["refused"]
    elif mode == "off":
        m["kv_status"] = "ok" if st.get("aof_enabled") == "0" else "inferkv shows aof_enabled:%s with appendonly no" % (
            st.get("aof_enabled"))
    elif st.get("aof_enabled") != "1":
        m["kv_status"] = "inferkv AOF not active: INFO persistence aof_enabled:%s" % st.get("aof_enabled")
    elif not st.get("aof_dir_bytes"):
        m["kv_status"] = "inferkv AOF not active: %d files, %d bytes in appendonlydir" % (
            st.get("aof_dir_files", 0), st.get("aof_dir_bytes", 0))
    elif st.get("aof_last_write_status") != "ok":
        m["kv_status"] = "inferkv AOF failing: aof_last_write_status:%s" % st.get("aof_last_write_status")
    elif st["aof_dir_bytes"] < 0.5 * m.get("state", {}).get("redis", {}).get("aof_dir_bytes", 0):
        # the same SETs went to both: an AOF much smaller than redis's is not logging them all
        m["kv_status"] = "inferkv AOF not active: %d bytes in appendonlydir, redis-server's %d for the same SETs" % (
            st["aof_dir_bytes"], m["state"]["redis"]["aof_dir_bytes"])
    else:
        m["kv_status"] = "ok"
    m["rows"] = {}
    for pl, by in m["runs"].items():
        row = {}
        for who, runs in by.items():
            row[who] = {k: round(statistics.median(r[k] for r in runs), 3) for k in ("rps", "p50_ms", "p99_ms")}
            row[who]["rounds"] = len(runs)
        if m["kv_status"] == "ok" and "kv" in row and "redis" in row:
            row["ratio_kv_over_redis"] = {"ops": round(row["kv"]["rps"] / row["redis"]["rps"], 3),
                                          "p99": round(row["kv"]["p99_ms"] / max(row["redis"]["p99_ms"], 1e-9), 3)}
        m["rows"][pl] = row
if aof:
    res["aof"] = aof
    res["aof_target"] = "SET throughput inferkv / redis >= 1.0 per mode and pipelining (reported, not asserted)"
    print("\nAOF: SET, 50 clients, medians          redis SET/s   p99 ms   inferkv SET/s   p99 ms   ops ratio  p99 ratio")
    for mode, m in aof.items():
        for pl, row in sorted(m["rows"].items(), key=lambda kv: int(kv[0][1:])):
            rd, kv = row.get("redis"), row.get("kv")
            left = "%-8s -%-4s" % (mode, pl)
            cells = "%13.0f %8.3f" % (rd["rps"], rd["p99_ms"]) if rd else "%13s %8s" % ("-", "-")
            cells += " %15.0f %8.3f" % (kv["rps"], kv["p99_ms"]) if kv else " %15s %8s" % ("-", "-")
            if "ratio_kv_over_redis" in row:
                r = row["ratio_kv_over_redis"]
                cells += " %10.2f %10.2f%s" % (r["ops"], r["p99"], "" if r["ops"] >= 1.0 else "  (ops BELOW 1.0)")
            else:
                cells += "   " + m["kv_status"]
            print("  %-36s %s" % (left, cells))
print("load average: start %s, end %s" % (res["machine"].get("loadavg_start"), res["machine"].get("loadavg_end")))
json.dump(res, open(dest, "w"), indent=1)
PY
