#!/usr/bin/env bash
# test_server_asan.sh - the INFER.*, vector-set and RAG integration suites
# once more against an inferkv-server built with ASan + UBSan
# (build/asan/inferkv-server).  Each suite fails on any sanitizer report or
# unclean exit in the server's log; this script adds the build and sums
# the suites' "N passed, N failed" lines.
#
# The flags are exactly `make asan`'s, in the same tree (build/asan), so
# the two share objects.
set -u
cd "$(dirname "$0")/../.."
ASAN_BUILD=${INFERKV_ASAN_BUILD:-build/asan}
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
if ! nice make -s -j"$(nproc)" BUILD="$ASAN_BUILD" OPT=-O1 SANFLAGS="$SAN" "$ASAN_BUILD/inferkv-server" >/dev/null 2>&1; then
    echo "  FAIL: cannot build $ASAN_BUILD/inferkv-server:"
    nice make -s -j"$(nproc)" BUILD="$ASAN_BUILD" OPT=-O1 SANFLAGS="$SAN" "$ASAN_BUILD/inferkv-server" 2>&1 | tail -20
    echo "0 passed, 1 failed"
    exit 1
fi
# Leaks are not checked: the server exits without freeing what lives until
# exit (databases, clients); use-after-free, overflows and UB are.
passed=0 failed=0 skipped=0
for suite in test_server_infer.py test_server_vset.py test_server_rag.py; do
    echo "-- $suite against $ASAN_BUILD/inferkv-server"
    out=$(env INFERKV_SERVER="$ASAN_BUILD/inferkv-server" INFERKV_TEST_SLOWDOWN=4 \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        /usr/bin/python3 "tests/integration/$suite" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -v -E '^[0-9]+ passed, [0-9]+ failed'
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "  FAIL $suite: no summary (exit $rc)"; failed=$((failed + 1)); continue
    fi
    p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
    s=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$line")
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + ${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
