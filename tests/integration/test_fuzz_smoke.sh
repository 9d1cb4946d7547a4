#!/usr/bin/env bash
# Builds every libFuzzer target (clang, ASan+UBSan) and runs each for a few
# seconds from its seed corpus: a crash, leak or sanitizer report fails the
# suite.  Longer runs: `FUZZ_SECONDS=600 make fuzz`.
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
secs=${FUZZ_SMOKE_SECONDS:-8}
for t in build/fuzz/fuzz_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    work=$(mktemp -d)
    corpus=tests/fuzz/corpus/${name#fuzz_}
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if "$t" -max_total_time="$secs" -rss_limit_mb=4096 -max_len=65536 -artifact_prefix="$work/" "$work" \
        > "$work/log" 2>&1; then
        echo "ok   $name: $(grep -oE 'Done [0-9]+ runs' "$work/log" | tail -n1) in ${secs}s"
        pass=$((pass + 1))
    else
        echo "FAIL $name"; tail -n 40 "$work/log"
        fail=$((fail + 1))
    fi
    rm -rf "$work"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
