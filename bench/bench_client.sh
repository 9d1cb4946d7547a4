#!/usr/bin/env bash
# bench_client.sh - the typed Python client (clients/python) against plain
# redis-py: saves and loads of a 10-field model per second, single and
# pipelined, on inferkv-server and redis-server (issue 16: typed at most
# 1.5x plain).  The driver is bench/bench_client.py (its docstring says how
# each figure is taken).  Prints a table and writes bench/out/client.json.
# Sizes: BENCH_CLIENT_N (5000 records), BENCH_CLIENT_ROUNDS (5),
# BENCH_CLIENT_BATCH (100); about a minute on the 2-core machine.
set -eu
cd "$(dirname "$0")/.."
build=${1:-${INFERKV_BUILD:-build}}
INFERKV_BUILD=$(cd "$build" && pwd) exec /usr/bin/python3 bench/bench_client.py
