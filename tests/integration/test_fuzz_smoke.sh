#!/usr/bin/env bash
# Builds every libFuzzer target (clang, ASan+UBSan) and runs each over its
# seed corpus (tests/fuzz/corpus/, including inputs that once failed) plus a
# fixed number of mutations from a fixed seed, so the suite is reproducible:
# a crash, leak or sanitizer report fails it.  Open-ended fuzzing, which may
# find new inputs, is `FUZZ_SECONDS=600 make fuzz`.
set -u
cd "$(dirname "$0")/../.."
pass=0 fail=0
if ! command -v clang >/dev/null; then
    echo "SKIP: clang not installed"; echo "0 passed, 0 failed, 1 skipped"; exit 0
fi
if ! bash tests/fuzz/build.sh --build-only > /tmp/inferkv-fuzz-build.log 2>&1; then
    tail -n 30 /tmp/inferkv-fuzz-build.log
    echo "FAIL: fuzz targets do not build"; echo "0 passed, 1 failed"; exit 1
fi
runs=${FUZZ_SMOKE_RUNS:-20000}
for t in "${FUZZ_OUT:-build/fuzz}"/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    work=$(mktemp -d)
    corpus=tests/fuzz/corpus/${name#fuzz_}
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if "$t" -seed=1 -runs="$runs" -rss_limit_mb=4096 -max_len=65536 -artifact_prefix="$work/" "$work" \
        > "$work/log" 2>&1; then
        echo "ok   $name: $(grep -oE 'Done [0-9]+ runs' "$work/log" | tail -n1) (seed 1)"
        pass=$((pass + 1))
    else
        echo "FAIL $name"; tail -n 40 "$work/log"
        fail=$((fail + 1))
    fi
    rm -rf "$work"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
