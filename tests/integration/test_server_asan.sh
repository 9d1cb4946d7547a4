#!/usr/bin/env bash
# test_server_asan.sh - the INFER.*, vector-set, RAG and event-loop suites
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
# exit (databases, clients); use-after-free, overflows and UB are.  The
# suites run side by side (suite_pool.sh).
. tests/integration/suite_pool.sh
for suite in test_server_infer.py test_server_vset.py test_server_rag.py test_server_evloop.py; do
    pool_start "$suite against $ASAN_BUILD/inferkv-server" \
        env INFERKV_SERVER="$ASAN_BUILD/inferkv-server" INFERKV_TEST_SLOWDOWN=4 \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        /usr/bin/python3 "tests/integration/$suite"
done
pool_finish
echo "$pool_passed passed, $pool_failed failed, $pool_skipped skipped"
[ "$pool_failed" -eq 0 ]
