#!/usr/bin/env bash
# Conformance suite: replays tests/conformance/corpus against redis-server
# 7.0.15 and build/inferkv-server, in RESP2 and RESP3 (tests/conformance/
# run.py), and turns tests/conformance/out/report.json into the suite line
# "N passed, N failed": one count per compared command per protocol.
# There is no list of expected failures: anything that differs fails the
# suite, and the report says what differed.
#
# When src/server/ has no sources yet there is nothing to test: the suite
# says so and reports itself skipped.  When it has sources but the binary is
# missing, that is a failure (`make` builds it).
set -u
cd "$(dirname "$0")/../.."
build=${INFERKV_BUILD:-build}
server=$build/inferkv-server
report=tests/conformance/out/report.json

if [ ! -x "$server" ]; then
    if ! ls src/server/*.c >/dev/null 2>&1; then
        echo "conformance: no inferkv-server yet (src/server/ has no sources): skipped"
        echo "0 passed, 0 failed, 1 skipped"
        exit 0
    fi
    echo "conformance: $server does not exist; build it with make"
    echo "0 passed, 1 failed"
    exit 1
fi

rm -f "$report"
/usr/bin/python3 tests/conformance/run.py --server "$server" --keep-going "$@"
rc=$?
if [ ! -f "$report" ]; then
    echo "conformance: run.py wrote no report (exit $rc)"
    echo "0 passed, 1 failed"
    exit 1
fi
/usr/bin/python3 - "$report" "$rc" <<'EOF'
import json, sys
rep = json.load(open(sys.argv[1]))
rc = int(sys.argv[2])
t = rep["totals"]
failed = t["differing"]
# A run that stopped early, or trouble outside compared replies (a server
# that exited or did not start), must not pass even if what ran matched.
if not rep.get("complete", False) or rep.get("problems"):
    failed = max(failed, 1)
print("%d passed, %d failed" % (t["identical"], failed))
sys.exit(1 if failed or rc else 0)
EOF
