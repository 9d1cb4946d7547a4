#!/usr/bin/env bash
# The scheduler's tests (continuous batching, cancel, timeouts, a random
# stress run) and the engine's batched decoding under ThreadSanitizer: any
# data race report fails the suite.
set -u
cd "$(dirname "$0")/../.."
if ! make -s -j"$(nproc)" BUILD=build/tsan OPT=-O1 SANFLAGS="-fsanitize=thread" build/tsan/tests/test_sched \
        build/tsan/tests/test_engine > /tmp/inferkv-tsan-build.log 2>&1; then
    tail -n 20 /tmp/inferkv-tsan-build.log; echo "0 passed, 1 failed"; exit 1
fi
pass=0 fail=0
for t in test_sched test_engine; do
    log=$(mktemp)
    TSAN_OPTIONS="halt_on_error=1 exitcode=66" build/tsan/tests/$t > "$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && ! grep -q "WARNING: ThreadSanitizer" "$log"; then
        echo "ok   $t under TSan: $(tail -n1 "$log")"; pass=$((pass + 1))
    else
        echo "FAIL $t under TSan (exit $rc)"; grep -A 30 "WARNING: ThreadSanitizer" "$log" | head -n 60; tail -n 5 "$log"
        fail=$((fail + 1))
    fi
    rm -f "$log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
