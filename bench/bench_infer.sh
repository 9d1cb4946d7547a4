#!/usr/bin/env bash
# bench_infer.sh - INFER.GENERATE under concurrency and its cost to GET/SET
# latency (issues 6 and 7), for a model with Qwen3-0.6B's shapes in Q8_0
# (gguf-gen --preset qwen3-0.6b, seeded random weights; generated once and
# cached in .cache/bench-models, shared with bench_engine.sh).
#
# Against Debian's redis-server with build/inferkv.so, and against
# build/inferkv-server when it has INFER.* (else "skipped"), with
# infer-threads 2: aggregate tok/s and time to first token at 1, 4, 16, 64
# clients; redis-benchmark GET/SET p50/p99 idle and with 4 generations
# running; plain redis-server idle as the baseline.  Prints a table and
# writes bench/out/infer.json with the issues' targets next to the figures
# (reported, never asserted).  The driver is bench/infer_bench.py.
#
# BENCH_INFER_TOKENS (default 32), BENCH_INFER_LEVELS (1,4,16,64), BENCH_GET_N
# (50000), BENCH_LATENCY_ROUNDS (3) and BENCH_THREADS (2) scale it while iterating.
set -eu
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
models=.cache/bench-models
model=$models/qwen3-0.6b-q8_0.gguf
mkdir -p "$models" bench/out
if [ ! -s "$model" ]; then
    echo "generating $model (once; cached in $models)"
    "$build/gguf-gen" --preset qwen3-0.6b --type q8_0 --seed 1 -q -o "$model.part" && mv "$model.part" "$model"
fi
exec /usr/bin/python3 bench/infer_bench.py --build "$build" --model "$model" --out bench/out/infer.json
