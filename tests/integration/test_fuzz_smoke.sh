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
jobs_max=${INFERKV_TEST_JOBS:-$(nproc)}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
# one target per core at a time (each is single-threaded); results are
# printed in a fixed order once all are done
smoke() { # target -> $results/NAME.{ok,fail}
    local t=$1 name work corpus
    name=$(basename "$t")
    work=$(mktemp -d)
    corpus=tests/fuzz/corpus/${name#fuzz_}
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if "$t" -seed=1 -runs="$runs" -rss_limit_mb=4096 -max_len=65536 -artifact_prefix="$work/" "$work" \
        > "$work/log" 2>&1; then
        echo "ok   $name: $(grep -oE 'Done [0-9]+ runs' "$work/log" | tail -n1) (seed 1)" > "$results/$name.ok"
    else
        { echo "FAIL $name"; tail -n 40 "$work/log"; } > "$results/$name.fail"
    fi
    rm -rf "$work"
}
started=0
for t in "${FUZZ_OUT:-build/fuzz}"/fuzz_*; do
    [ -x "$t" ] || continue
    started=$((started + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
    smoke "$t" &
done
wait
for f in "$results"/*; do
    [ -e "$f" ] || continue
    cat "$f"
    case "$f" in *.ok) pass=$((pass + 1)) ;; *) fail=$((fail + 1)) ;; esac
done
if [ $((pass + fail)) -ne "$started" ]; then
    echo "FAIL: $started targets started, $((pass + fail)) reported"; fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
