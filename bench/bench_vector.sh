#!/usr/bin/env bash
# bench_vector.sh - vector sets (VADD/VSIM over libvset's HNSW): the library
# alone, inferkv-server through a pipelining client, redis-server 7.0.15
# with build/inferkv.so when it answers VADD, and the peers hnswlib and
# USearch (f32, int8) on the same vectors, same run, same machine, scored
# against the same exact ground truth.
#
# Datasets (bench/vector/gen_vectors.py, made once into bench/out/vdata/ and
# reused): 100k x 128-d clustered (100 Gaussian clusters), 100k x 128-d
# uniform random unit vectors, 100k x 768-d clustered; 1000 queries each.
# For each:
#   libvset    build/vset-bench: inserts/s with one thread and with two
#              (target: two >= 1.8x one), recall@10 and queries/s per EF,
#              bytes per vector (vset_memory / n); Q8, NOQUANT, BIN.
#   server     inferkv-server on a free loopback port, persistence off:
#              VADD key FP32 <blob> <row> [NOQUANT|BIN] for every vector
#              through bench/vector/vset_client.c (hiredis, compiled here
#              into $build/bench/, WINDOW commands in flight), timed; then
#              VSIM key FP32 <blob> COUNT 10 EF ef for the queries, at
#              window WINDOW and (Q8) window 1, recall against the ground
#              truth; memory = used_memory delta / n and MEMORY USAGE / n.
#   module     the same (Q8) against redis-server 7.0.15 --loadmodule
#              build/inferkv.so, only when the module answers VADD.
#   peers      bench/vector/peers.sh: hnswlib (C++), USearch f32 and int8
#              (Node), inserts/s, curves, memory.
# M 16, EF construction 200, one thread unless said, EF 10..640.  Ours and
# the peers alternate which goes first from one dataset to the next; each
# libvset index is kept (vset-bench --cache) and queried again between the
# server's runs, and the server/libvset ratio (target: within 20%) uses
# that second curve, measured under the same load as the server's.
# Prints a summary, the curves and memory per dataset; writes
# bench/out/vector.json with everything, the load average before each run
# and the kernels libvset used.  Figures, not tests: the script fails only
# on a broken run (a server that does not start, a client error).
#
# Environment (defaults in brackets):
#   BENCH_VEC_N [100000]   vectors per set (20000: a ~3-minute quick run)
#   BENCH_VEC_QUERIES [1000]
#   BENCH_VEC_SETS ["clustered:128 uniform:128 clustered:768"]
#   BENCH_VEC_EF [10,20,40,80,160,320,640]
#   BENCH_VEC_MIN_TIME [0.3; 0.15 below 50000 vectors]  seconds of timed
#                          passes per EF (at least one pass), every engine
#   BENCH_VEC_WINDOW [64]  commands in flight from the client
#   BENCH_VEC_TRUTH_QUERIES [200]  queries of VSIM ... TRUTH (exact search
#                          over the stored vectors: the quantization's
#                          recall ceiling), once per server load
#   BENCH_VEC_QUANTS ["q8 noquant bin"]  Q8 always runs
#   BENCH_VEC_PEERS [1]    0 skips the peers
#   BENCH_VEC_MODULE ["clustered:128"]  the sets that get the module column
#                          ("all", or 0 for none): each costs one more build
set -eu
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
. bench/lib.sh # out, tmp, cleanup, free_port, wait_up, used

N=${BENCH_VEC_N:-100000}
NQ=${BENCH_VEC_QUERIES:-1000}
EFS=${BENCH_VEC_EF:-10,20,40,80,160,320,640}
if [ "$N" -ge 50000 ]; then MINT=${BENCH_VEC_MIN_TIME:-0.3}; else MINT=${BENCH_VEC_MIN_TIME:-0.15}; fi
WIN=${BENCH_VEC_WINDOW:-64}
NTRUTH=${BENCH_VEC_TRUTH_QUERIES:-200}
SETS=${BENCH_VEC_SETS:-clustered:128 uniform:128 clustered:768}
QUANTS=${BENCH_VEC_QUANTS:-q8 noquant bin}
PEERS=${BENCH_VEC_PEERS:-1}
MODULE=${BENCH_VEC_MODULE:-clustered:128}
t_start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

for f in "$build/vset-bench" "$build/inferkv-server"; do
    [ -x "$f" ] || { echo "bench_vector.sh: $f is missing (make first)" >&2; exit 1; }
done
# One consistent build for the whole run, even if build/ is rebuilt meanwhile.
bin=$tmp/bin
mkdir -p "$bin"
cp "$build/vset-bench" "$build/inferkv-server" "$bin/"
[ ! -f "$build/inferkv.so" ] || cp "$build/inferkv.so" "$bin/"

# ---- the client: compiled when missing or older than its source ----
client=$build/bench/vset_client
src=bench/vector/vset_client.c
if [ ! -x "$client" ] || [ "$src" -nt "$client" ]; then
    [ -f /usr/include/hiredis/hiredis.h ] || { echo "bench_vector.sh: hiredis missing (apt-get install libhiredis-dev)" >&2; exit 1; }
    mkdir -p "$build/bench"
    echo "== compiling $client"
    cc -O2 -Wall "$src" -o "$client" -lhiredis
fi

res=$tmp/res
mkdir -p "$res"
load3() { cut -d' ' -f1-3 /proc/loadavg >"$1"; }

# ---- servers: one inferkv-server, and redis-server + module if it answers VADD ----
kv_port=$(free_port)
"$bin/inferkv-server" --bind 127.0.0.1 --port "$kv_port" --save '' --appendonly no >"$tmp/kv.log" 2>&1 &
pids+=($!)
wait_up "$kv_port" || { echo "inferkv-server did not answer PING:" >&2; tail -n 5 "$tmp/kv.log" >&2; exit 1; }

mod_skip=""
md_port=""
if [ "$MODULE" = 0 ]; then
    mod_skip="BENCH_VEC_MODULE=$MODULE"
elif ! command -v redis-server >/dev/null; then
    mod_skip="redis-server is not installed"
elif [ ! -f "$bin/inferkv.so" ]; then
    mod_skip="$build/inferkv.so is not built"
else
    md_port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$md_port" --save '' --appendonly no --dir "$tmp" \
        --loadmodule "$bin/inferkv.so" >"$tmp/module.log" 2>&1 &
    md_pid=$!
    pids+=("$md_pid")
    if ! wait_up "$md_port"; then
        mod_skip="redis-server did not start with $build/inferkv.so: $(tail -n 1 "$tmp/module.log")"
    else
        probe=$(redis-cli -p "$md_port" VADD __probe VALUES 2 1 0 a 2>&1 | head -c 200)
        if [ "$probe" != 1 ]; then
            mod_skip="redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') loads $build/inferkv.so but VADD answers: $probe"
        fi
        redis-cli -p "$md_port" del __probe >/dev/null 2>&1 || true
    fi
    if [ -n "$mod_skip" ]; then kill "$md_pid" 2>/dev/null || true; md_port=""; fi
fi
[ -z "$mod_skip" ] || echo "== module column skipped: $mod_skip"

# ---- measurements ----
vsb() { # dir name vset-bench-args...: libvset alone
    local d=$1 name=$2; shift 2
    load3 "$d/$name.load"
    "$bin/vset-bench" "$data" --json "$d/$name.json" "$@" >"$d/$name.log"
    if grep -q '^loaded' "$d/$name.log"; then
        echo "   libvset $name (index reloaded) (EF recall q/s): $(awk '$1 ~ /^[0-9]+$/ && NF == 3 {printf "%s %s %s; ", $1, $2, $3}' "$d/$name.log")"
    else
        echo "   libvset $name: $(grep -m 1 '^inserts' "$d/$name.log")  [load $(cat "$d/$name.load")]"
    fi
}

server_run() { # dir who port quant windows...: load, memory, then VSIM at each window
    # ("lib": libvset's queries again, from the index vset-bench kept)
    local d=$1 who=$2 port=$3 quant=$4 key=bench:vec
    shift 4
    redis-cli -p "$port" del "$key" >/dev/null
    sleep 0.2
    local u0 u1 mu
    u0=$(used "$port")
    load3 "$d/$who-$quant-load.load"
    "$client" load "$data" --port "$port" --key "$key" --quant "$quant" --window "$WIN" >"$d/$who-$quant-load.json"
    u1=$(used "$port")
    mu=$(redis-cli -p "$port" memory usage "$key" | tr -d '\r')
    case $mu in '' | *[!0-9]*) mu=null ;; esac
    echo "{\"used_memory_before\": $u0, \"used_memory_after\": $u1, \"memory_usage_key\": $mu}" >"$d/$who-$quant-mem.json"
    echo "   $who $quant load: $(cat "$d/$who-$quant-load.json")"
    # the quantization's ceiling: exact search over the stored vectors
    load3 "$d/$who-$quant-truth.load"
    "$client" query "$data" --port "$port" --key "$key" --ef 10 --window "$WIN" --min-time 0 --queries "$NTRUTH" \
        --truth >"$d/$who-$quant-truth.json" 2>"$d/$who-$quant-truth.log"
    echo "   $who $quant TRUTH ($NTRUTH queries, linear scan): $(awk '$3 == "EF" {printf "recall %s, %s q/s", $6, $7}' "$d/$who-$quant-truth.log")"
    for w in "$@"; do
        if [ "$w" = lib ]; then
            vsb "$d" "vsb-$quant-again" --quant "$quant" --ef "$EFS" --min-time "$MINT" --cache "$tmp/$quant.idx"
            continue
        fi
        load3 "$d/$who-$quant-w$w.load"
        "$client" query "$data" --port "$port" --key "$key" --ef "$EFS" --window "$w" --min-time "$MINT" \
            >"$d/$who-$quant-w$w.json" 2>"$d/$who-$quant-w$w.log" ||
            { echo "vset_client query failed ($who $quant window $w):" >&2; tail -n 5 "$d/$who-$quant-w$w.log" >&2; exit 1; }
        echo "   $who $quant window $w (EF recall q/s): $(awk '$3 == "EF" {printf "%s %s %s; ", $4, $6, $7}' "$d/$who-$quant-w$w.log")"
    done
    redis-cli -p "$port" del "$key" >/dev/null
}

has_quant() { case " $QUANTS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

ours() { # dir
    local d=$1
    # Each 1-thread build keeps its index (vset-bench --cache): reloaded
    # between the server's runs ("lib" below), so that the server/libvset
    # ratio compares queries measured minutes, not a build, apart.
    vsb "$d" vsb-q8-1t --quant q8 --threads 1 --ef "$EFS" --min-time "$MINT" --cache "$tmp/q8.idx"
    vsb "$d" vsb-q8-2t --quant q8 --threads 2 --ef 40 --min-time 0
    server_run "$d" server "$kv_port" q8 "$WIN" lib 1
    if [ -n "$md_port" ] && { [ "$MODULE" = all ] || case " $MODULE " in *" $set "*) true ;; *) false ;; esac; }; then
        server_run "$d" module "$md_port" q8 "$WIN" 1
    fi
    rm -f "$tmp/q8.idx"
    local q
    for q in noquant bin; do
        has_quant $q || continue
        vsb "$d" vsb-$q-1t --quant $q --threads 1 --ef "$EFS" --min-time "$MINT" --cache "$tmp/$q.idx"
        server_run "$d" server "$kv_port" $q "$WIN" lib
        rm -f "$tmp/$q.idx"
    done
}

peers_failed=0
peers() { # dir
    local d=$1
    [ "$PEERS" = 1 ] || return 0
    echo "   peers (hnswlib, usearch f32, usearch i8) ..."
    load3 "$d/peers.load"
    if INFERKV_BUILD=$build VBENCH_MIN_TIME=$MINT bash bench/vector/peers.sh "$data" --ef "$EFS" \
        --min-time "$MINT" --json "$d/peers.json" >"$d/peers.log" 2>&1; then
        echo "   peers inserts/s: $(awk '$1 ~ /^(hnswlib|usearch_f32|usearch_i8)$/ && NF >= 4 && $2 ~ /^[0-9.]+$/ {printf "%s %s; ", $1, $2}' "$d/peers.log")"
        grep -E 'skipping' "$d/peers.log" | sed 's/^/   /' || true
    else
        echo "   peers.sh failed:"; tail -n 10 "$d/peers.log" | sed 's/^/     /'
        tail -n 3 "$d/peers.log" >"$d/peers.err"
        peers_failed=1
    fi
}

tags=()
i=0
for set in $SETS; do
    kind=${set%%:*}
    dim=${set#*:}
    if [ $((N % 1000)) -eq 0 ]; then size=$((N / 1000))k; else size=$N; fi
    tag=$kind-$size-$dim
    [ "$NQ" = 1000 ] || tag=$tag-q$NQ
    tags+=("$tag")
    data=$PWD/$out/vdata/$tag
    d=$res/$tag
    mkdir -p "$d"
    echo "== $tag: dataset $data"
    /usr/bin/python3 bench/vector/gen_vectors.py --kind "$kind" --n "$N" --dim "$dim" --queries "$NQ" \
        --seed 1 --out "$data"
    echo "$data" >"$d/data.txt"
    t0=$(date +%s)
    load3 "$d/ping.load"
    "$client" ping - --port "$kv_port" --n 5000 >"$d/ping.json"
    if [ $((i % 2)) -eq 0 ]; then
        echo "ours first" >"$d/order.txt"
        ours "$d"
        peers "$d"
    else
        echo "peers first" >"$d/order.txt"
        peers "$d"
        ours "$d"
    fi
    echo $(($(date +%s) - t0)) >"$d/seconds.txt"
    echo "   $tag: $(cat "$d/seconds.txt") s"
    i=$((i + 1))
done

params=$(/usr/bin/python3 -c 'import json, sys
print(json.dumps({"n": int(sys.argv[1]), "queries": int(sys.argv[2]), "efs": [int(x) for x in sys.argv[3].split(",")],
                  "min_time_s": float(sys.argv[4]), "window": int(sys.argv[5]), "sets": sys.argv[6].split(),
                  "quants": sys.argv[7].split(), "module_skipped": sys.argv[8] or None,
                  "module_sets": sys.argv[11], "loadavg_at_start": sys.argv[12].split(), "build": sys.argv[9], "total_seconds": int(sys.argv[10])}))' \
    "$N" "$NQ" "$EFS" "$MINT" "$WIN" "${tags[*]}" "$QUANTS" "$mod_skip" "$build" $(($(date +%s) - t_start)) "$MODULE" "$load_start")
/usr/bin/python3 bench/vector/report.py "$res" "$out/vector.json" --params "$params"
echo "total $(($(date +%s) - t_start)) s"
exit $peers_failed
