#!/usr/bin/env bash
# Runs every test suite and sums their "N passed, N failed" lines.
#   tests/run_all.sh BUILD_DIR [unit|integration|all]
# Unit suites are the binaries BUILD_DIR/tests/test_*; integration suites are
# tests/integration/test_*.sh and test_*.py (run with /usr/bin/python3, which
# sees Debian's python3-* packages).  Each suite's output is shown as it runs.
# The last line is the total, and the exit status is non-zero if any suite
# failed or printed no summary.
set -u
build=${1:-build}
which=${2:-all}
cd "$(dirname "$0")/.."
export INFERKV_BUILD=$(cd "$build" && pwd)
export INFERKV_SHARED=${INFERKV_SHARED:-$(cd .. && pwd)/shared}
total_p=0 total_f=0 total_s=0 bad_suites=() timings=()

run_suite() {
    local name=$1; shift
    echo "== $name"
    local out rc t0=$SECONDS
    out=$("$@" 2>&1); rc=$?
    printf '%s\n' "$out"
    echo "   ($name: $((SECONDS - t0)) s)"
    timings+=("$((SECONDS - t0)) $name")
    local line
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n1)
    if [ -z "$line" ]; then
        echo "   (suite printed no summary, exit $rc)"
        bad_suites+=("$name"); total_f=$((total_f + 1)); return
    fi
    local p f s
    p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
    s=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$line"); s=${s:-0}
    total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + s))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then bad_suites+=("$name"); fi
}

if [ "$which" = all ] || [ "$which" = unit ]; then
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        run_suite "unit/$(basename "$t")" "$t"
    done
fi
if [ "$which" = all ] || [ "$which" = integration ]; then
    for t in tests/integration/test_*.sh tests/integration/test_*.py; do
        [ -f "$t" ] || continue
        case "$t" in
            *.py) run_suite "integration/$(basename "$t")" /usr/bin/python3 "$t" ;;
            *.sh) run_suite "integration/$(basename "$t")" bash "$t" ;;
        esac
    done
fi
echo
# the slowest suites, so that the 20-minute budget of `make test` is watched
echo "slowest suites (seconds): $(printf '%s\n' "${timings[@]}" | sort -rn | head -n 8 | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
echo "all suites: ${SECONDS} s"
if [ ${#bad_suites[@]} -gt 0 ]; then echo "failing suites: ${bad_suites[*]}"; fi
echo "$total_p passed, $total_f failed, $total_s skipped"
[ ${#bad_suites[@]} -eq 0 ]
