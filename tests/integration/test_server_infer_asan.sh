#!/usr/bin/env bash
# test_server_infer_asan.sh - the INFER.* integration suite once more against
# an inferkv-server built with ASan + UBSan (build/asan/inferkv-server).
# The suite fails on any sanitizer report or unclean exit in the server's
# log; this script adds the build.
#
# The flags are exactly `make asan`'s, in the same tree (build/asan), so
# the two share objects.
set -u
cd "$(dirname "$0")/../.."
ASAN_BUILD=${INFERKV_ASAN_BUILD:-build/asan}
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
if ! nice make -s BUILD="$ASAN_BUILD" OPT=-O1 SANFLAGS="$SAN" "$ASAN_BUILD/inferkv-server" >/dev/null 2>&1; then
    echo "  FAIL: cannot build $ASAN_BUILD/inferkv-server:"
    nice make -s BUILD="$ASAN_BUILD" OPT=-O1 SANFLAGS="$SAN" "$ASAN_BUILD/inferkv-server" 2>&1 | tail -20
    echo "0 passed, 1 failed"
    exit 1
fi
# Leaks are not checked: the server exits without freeing what lives until
# exit (databases, clients); use-after-free, overflows and UB are.
exec env INFERKV_SERVER="$ASAN_BUILD/inferkv-server" INFERKV_TEST_SLOWDOWN=4 \
    ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    /usr/bin/python3 tests/integration/test_server_infer.py
