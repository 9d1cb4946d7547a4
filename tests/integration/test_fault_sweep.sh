#!/usr/bin/env bash
# test_fault_sweep.sh - the allocation-failure sweeps (issue 25) against the
# ASan + UBSan build (build/asan, the tree test_server_asan.sh and `make
# asan` share), LeakSanitizer on:
#   - tests/fault/sweep_server.py: every allocation of every command of
#     tests/fault/workloads.py failed in turn through a real inferkv-server
#     (DEBUG ALLOC-FAIL): each run ends with a clean error and the dataset
#     unchanged, or with the command done whole, the server serving, and
#     nothing leaked at its exit;
#   - the same through Debian's redis-server with build/asan/inferkv.so
#     (INFER.DEBUG ALLOC-FAIL; the module's INFER.* and V* commands);
#   - build/asan/tests/test_engine_oom: the same for libinfer's own seam
#     (infer_set_alloc_hook): model load, vocabularies, generation, the
#     scheduler, embeddings;
# then tests/fault/coverage.py's table of the allocation sites reached.
# A few seconds once built; `make fault` runs the same and writes the
# per-command report (build/asan/fault-sweep.json).
set -u
cd "$(dirname "$0")/../.."
ASAN_BUILD=${INFERKV_ASAN_BUILD:-build/asan}
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
targets="$ASAN_BUILD/inferkv-server $ASAN_BUILD/inferkv.so $ASAN_BUILD/gguf-gen $ASAN_BUILD/tests/test_engine_oom"
if ! nice make -s -j"$(nproc)" BUILD="$ASAN_BUILD" OPT=-O1 SANFLAGS="$SAN" $targets >/dev/null 2>&1; then
    echo "  FAIL: cannot build $targets:"
    nice make -s -j"$(nproc)" BUILD="$ASAN_BUILD" OPT=-O1 SANFLAGS="$SAN" $targets 2>&1 | tail -20
    echo "0 passed, 1 failed"
    exit 1
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
p=0 f=0 s=0
count() { # adds a suite's "N passed, N failed[, N skipped]" line
    local line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' <<<"$1" | tail -n1)
    if [ -z "$line" ]; then f=$((f + 1)); return; fi
    p=$((p + $(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")))
    f=$((f + $(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")))
    local sk; sk=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$line"); s=$((s + ${sk:-0}))
}
out=$(/usr/bin/python3 tests/fault/sweep_server.py --server "$ASAN_BUILD/inferkv-server" \
    --json "$ASAN_BUILD/fault-sweep.json" 2>&1)
rc=$?
printf '%s\n' "$out"
count "$out"
[ $rc -eq 0 ] || [ $f -gt 0 ] || f=1
out=$(/usr/bin/python3 tests/fault/sweep_server.py --redis "$ASAN_BUILD/inferkv.so" \
    --preload "$(gcc -print-file-name=libasan.so)" --json "$ASAN_BUILD/fault-sweep-module.json" 2>&1)
rc=$?
printf 'inferkv.so in redis-server:\n%s\n' "$out"
before=$f
count "$out"
[ $rc -eq 0 ] || [ $f -gt $before ] || f=$((f + 1))
out=$(INFERKV_FAULT_SITES=1 "$ASAN_BUILD/tests/test_engine_oom" 2>&1)
rc=$?
printf '%s\n' "$out" | grep '^  site ' > "$ASAN_BUILD/fault-engine-sites.txt"
printf 'engine (test_engine_oom under ASan):\n%s\n' "$(printf '%s\n' "$out" | grep -v '^  site ')"
before=$f
count "$out"
[ $rc -eq 0 ] || [ $f -gt $before ] || f=$((f + 1))
/usr/bin/python3 tests/fault/coverage.py --server-json "$ASAN_BUILD/fault-sweep.json" \
    --server-json "$ASAN_BUILD/fault-sweep-module.json" --engine-sites "$ASAN_BUILD/fault-engine-sites.txt"
echo "$p passed, $f failed, $s skipped"
[ $f -eq 0 ]
