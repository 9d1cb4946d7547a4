#!/usr/bin/env bash
# make bench: runs every benchmark script in bench/ (bench_*.sh), each of
# which prints its table and writes bench/out/<name>.json.  Figures, not
# tests: nothing here fails on a slow result, only on a broken run.
set -u
build=${1:-build}
cd "$(dirname "$0")/.."
mkdir -p bench/out
status=0
for b in bench/bench_*.sh; do
    [ -f "$b" ] || continue
    echo "== $b"
    if ! nice -n 0 bash "$b" "$build"; then echo "   $b failed"; status=1; fi
done
exit $status
