#!/usr/bin/env bash
# test_module_sanitizers.sh - runs test_module_infer.py against inferkv.so
# built with ASan+UBSan and with TSan, each preloaded into Debian's
# redis-server; the suite fails on any sanitizer report in the server log.
# Opt-in (it builds two more copies of the engine): set
# INFERKV_MODULE_SANITIZERS=1, e.g.
#   INFERKV_MODULE_SANITIZERS=1 bash tests/integration/test_module_sanitizers.sh
set -u
cd "$(dirname "$0")/../.."
if [ "${INFERKV_MODULE_SANITIZERS:-0}" != 1 ]; then
    echo "SKIP: set INFERKV_MODULE_SANITIZERS=1 to build and run the ASan and TSan module suites"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
passed=0 failed=0
run() {
    local name=$1 dir=$2 flags=$3 lib=$4 opts=$5
    if ! nice make -s BUILD="$dir" OPT=-O1 SANFLAGS="$flags" "$dir/inferkv.so" >/dev/null; then
        echo "FAIL: cannot build $dir/inferkv.so"; failed=$((failed + 1)); return
    fi
    local out line
    out=$(env INFERKV_MODULE="$dir/inferkv.so" INFERKV_PRELOAD="$(gcc -print-file-name="$lib")" $opts \
          /usr/bin/python3 tests/integration/test_module_infer.py 2>&1)
    local rc=$?
    printf '%s\n' "$out" | grep -v '^  ok' 
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n1)
    if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
        echo "ok   $name: $line"; passed=$((passed + 1))
    else
        echo "FAIL $name (exit $rc): ${line:-no summary}"; failed=$((failed + 1))
    fi
}
run "ASan+UBSan module" build/asan-module "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
    libasan.so "ASAN_OPTIONS=detect_leaks=0"
run "TSan module" build/tsan-module "-fsanitize=thread" libtsan.so "TSAN_OPTIONS=report_signal_unsafe=0"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
