#!/usr/bin/env bash
# test_module_sanitizers.sh - inferkv.so built with ASan+UBSan and with
# TSan, each loaded into Debian's redis-server with the sanitizer runtime
# preloaded (INFERKV_MODULE / INFERKV_PRELOAD); a suite fails on any
# sanitizer report in a server log (each suite checks it at every stop).
#
#   ASan+UBSan  test_module_infer.py  the module's integration suite
#               test_module_load.py   500-client flood, reloads, lifecycle
#               test_module_vset.py   vector sets: commands, RDB/AOF, corrupt
#                                     payloads, 50 concurrent clients
#               test_module_rag.py    INFER.EMBED / INFER.RAG: replicas, ACL,
#                                     the retrieval's main-thread callbacks
#   TSan        test_module_load.py   the concurrency test: flood, reloads
#                                     under traffic, kill/unload/shutdown races
#
# Runs by default in `make test`: about 3 minutes on 2 cores from a cold
# build (the two module builds are about 50 s of it, incremental after).
#   INFERKV_MODULE_SANITIZERS=0     skip (quick local runs)
#   INFERKV_MODULE_SANITIZERS=full  also test_module_infer.py under TSan
# redis-server itself is not instrumented: TSan sees the module's and the
# engine's threads and the pthread calls between them, not races in Redis;
# LeakSanitizer is off (Redis frees little at exit); the plain run of
# test_module_load.py measures leaks instead.
set -u
cd "$(dirname "$0")/../.."
mode=${INFERKV_MODULE_SANITIZERS:-1}
if [ "$mode" = 0 ]; then
    echo "SKIP: INFERKV_MODULE_SANITIZERS=0"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
start=$(date +%s)
. tests/integration/suite_pool.sh   # the suites run side by side
passed=0 failed=0 skipped=0
build_module() { # dir sanflags -> 0 when built
    local t0 log
    t0=$(date +%s)
    log=$(mktemp)
    if ! nice make -s -j"$(nproc)" BUILD="$1" OPT=-O1 SANFLAGS="$2" "$1/inferkv.so" >"$log" 2>&1; then
        tail -n 20 "$log"; rm -f "$log"
        echo "FAIL: cannot build $1/inferkv.so"; failed=$((failed + 1)); return 1
    fi
    rm -f "$log"
    echo "built $1/inferkv.so ($(( $(date +%s) - t0 )) s)"
}
run() { # label module runtime-lib options suite: queued in the pool
    local label=$1 module=$2 lib=$3 opts=$4 suite=$5
    # shellcheck disable=SC2086 # opts is a list of VAR=value words
    pool_start "$label $suite" env INFERKV_MODULE="$module" \
        INFERKV_PRELOAD="$(gcc -print-file-name="$lib")" $opts /usr/bin/python3 "tests/integration/$suite"
}
# the same trees as test_server_asan.sh and test_engine_tsan.sh (same flags):
# whichever runs first compiles the engine and libraries for both
asan=build/asan tsan=build/tsan
# both builds first, so that no build competes with the suites for the cores
asan_ok=0 tsan_ok=0
build_module "$asan" "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" && asan_ok=1
build_module "$tsan" "-fsanitize=thread" && tsan_ok=1
if [ "$tsan_ok" = 1 ]; then  # the longest suite goes first
    suites=test_module_load.py
    [ "$mode" = full ] && suites="$suites test_module_infer.py"
    for suite in $suites; do
        run "TSan" "$tsan/inferkv.so" libtsan.so "TSAN_OPTIONS=report_signal_unsafe=0" "$suite"
    done
fi
if [ "$asan_ok" = 1 ]; then
    for suite in test_module_infer.py test_module_load.py test_module_vset.py test_module_rag.py; do
        run "ASan+UBSan" "$asan/inferkv.so" libasan.so "ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1" "$suite"
    done
fi
pool_finish
passed=$((passed + pool_passed)) failed=$((failed + pool_failed)) skipped=$((skipped + pool_skipped))
echo "(module sanitizer suites: $(( $(date +%s) - start )) s, builds included)"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
