#!/usr/bin/env bash
# test_python_client.sh - the typed Python client's suite (clients/python/tests,
# pytest) against a real inferkv-server and Debian's redis-server 7.0, both
# started by the suite on free loopback ports (clients/python/tests/conftest.py).
# Runs it with /usr/bin/python3 -m pytest and ends with the line run_all.sh
# reads, "N passed, N failed, N skipped" (pytest's errors count as failed);
# skipped tests are listed with their reason (-rs).  About 10-20 s.
set -u
cd "$(dirname "$0")/../.."
if ! /usr/bin/python3 -c 'import pytest, redis, numpy' 2>/dev/null; then
    echo "SKIP: needs python3-pytest, python3-redis and python3-numpy (scripts/deps.sh installs them)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
out=$(/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider clients/python/tests 2>&1)
rc=$?
printf '%s\n' "$out"
summary=$(printf '%s\n' "$out" | grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|errors?|deselected)' | tail -n1)
count() { grep -oE "[0-9]+ $1" <<<"$summary" | grep -oE '^[0-9]+' | head -n1; }
p=$(count passed); f=$(count failed); e=$(count 'errors?'); s=$(count skipped)
p=${p:-0} f=${f:-0} e=${e:-0} s=${s:-0}
f=$((f + e))
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # pytest itself failed (collection, usage)
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
