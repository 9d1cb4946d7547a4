# suite_pool.sh - sourced by the sanitizer scripts: runs their suites a few
# at a time instead of one after another.  Each suite is a real server plus
# a Python client that mostly wait on each other, so two of them share the
# machine's two cores well; the sanitizer suites were the longest part of
# `make test` when run in a row.  Each suite picks its own free ports and
# temporary directories, so running them side by side changes nothing they
# check.  INFERKV_TEST_JOBS=1 runs them in a row again.
#
#   pool_start LABEL CMD...   queue a suite (runs now when a slot is free)
#   pool_finish               wait for all; prints each suite's output in the
#                             order they were queued and adds its summary
#                             line to pool_passed / pool_failed / pool_skipped
# A suite that prints no "N passed, N failed" line, or exits non-zero with
# no failure counted, counts as one failure.
pool_jobs=${INFERKV_TEST_JOBS:-$(nproc)}
pool_dir=$(mktemp -d)
pool_n=0
pool_passed=0 pool_failed=0 pool_skipped=0
trap 'rm -rf "$pool_dir"' EXIT

pool_start() {
    local label=$1; shift
    while [ "$(jobs -rp | wc -l)" -ge "$pool_jobs" ]; do wait -n; done
    local i=$pool_n
    pool_n=$((pool_n + 1))
    printf '%s\n' "$label" >"$pool_dir/$i.label"
    (
        t0=$SECONDS
        "$@" >"$pool_dir/$i.out" 2>&1
        echo "$? $((SECONDS - t0))" >"$pool_dir/$i.rc"
    ) &
}

pool_finish() {
    wait
    local i label rc secs line p f s
    for ((i = 0; i < pool_n; i++)); do
        label=$(cat "$pool_dir/$i.label")
        read -r rc secs <"$pool_dir/$i.rc" || { rc=1 secs=0; }
        grep -v -E '^  ok|^[0-9]+ passed, [0-9]+ failed' "$pool_dir/$i.out"
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$pool_dir/$i.out" | tail -n 1)
        if [ -z "$line" ]; then
            echo "FAIL $label: no summary (exit $rc, $secs s)"
            pool_failed=$((pool_failed + 1)); continue
        fi
        p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
        f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
        s=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$line")
        pool_passed=$((pool_passed + p)) pool_failed=$((pool_failed + f))
        pool_skipped=$((pool_skipped + ${s:-0}))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then pool_failed=$((pool_failed + 1)); fi
        echo "== $label: $line (exit $rc, $secs s)"
    done
}
