#!/usr/bin/env bash
# bench_cluster.sh - inference through Redis Cluster against one node (issue
# 23): tokens/s and time to first token of INFER.GENERATE through redis-py's
# RedisCluster (three primaries with inferkv.so) and through one plain
# redis-server with the module, taking turns, from 1 and 8 clients; and the
# latency of a RAG answer across three shards (inferkv.ClusterClient.rag:
# embed, VSIM fan-out, merge, INFER.ANSWER) next to INFER.RAG on one node
# holding the whole corpus.  Every node runs on the same 2 cores: this
# measures the cluster path's overhead, not scale-out (docs/scaling.md does
# the arithmetic for more machines).  The driver is bench/cluster_bench.py
# (its docstring says how each figure is taken).  Writes
# bench/out/cluster.json and prints a table.  About 2 minutes.
#
# Sizes (environment): BENCH_CLUSTER_CLIENTS (1,8)  BENCH_CLUSTER_REQUESTS
# (24 per client per round)  BENCH_CLUSTER_TOKENS (64)  BENCH_CLUSTER_ROUNDS
# (2)  BENCH_CLUSTER_CHUNKS (300)  BENCH_CLUSTER_QUESTIONS (20)
set -eu
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
if [ ! -f "$build/inferkv.so" ] || ! command -v redis-server >/dev/null; then
    echo "bench_cluster: needs $build/inferkv.so and redis-server (make; scripts/deps.sh)"
    exit 1
fi
exec /usr/bin/python3 bench/cluster_bench.py --build "$build" \
    --clients "${BENCH_CLUSTER_CLIENTS:-1,8}" --requests "${BENCH_CLUSTER_REQUESTS:-24}" \
    --tokens "${BENCH_CLUSTER_TOKENS:-64}" --rounds "${BENCH_CLUSTER_ROUNDS:-2}" \
    --chunks "${BENCH_CLUSTER_CHUNKS:-300}" --questions "${BENCH_CLUSTER_QUESTIONS:-20}"
