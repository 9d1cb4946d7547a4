#!/usr/bin/env bash
# Builds every libFuzzer target tests/fuzz/fuzz_*.c with clang, ASan and
# UBSan into build/fuzz/ (or $FUZZ_OUT), linked with the core and engine
# sources built the same way (fuzz_rdb and fuzz_aof also with the server's).  Then,
# unless --build-only, runs each for FUZZ_SECONDS (default 15) from its
# seed corpus tests/fuzz/corpus/<name>/ (if any) and fails if a target
# crashes.  `make fuzz` calls this.
set -eu
cd "$(dirname "$0")/../.."
out=${FUZZ_OUT:-build/fuzz}
mkdir -p "$out/obj"
CC=${FUZZ_CC:-clang}
FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -Isrc -Isrc/core -Isrc/engine -Isrc/vector -Isrc/server -Isrc/infercmd -Isrc/vcmd -Wall -Wextra -Werror -Wno-unused-command-line-argument"
# Compiles run N at a time (N = cores): the objects are independent.
jobs_max=$(nproc 2>/dev/null || echo 2)
failed_mark=$out/.compile-failed
rm -f "$failed_mark"
compile() { "$@" || touch "$failed_mark"; }
throttle() { while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done; }
objs=()
for src in src/core/*.c src/engine/*/*.c src/vector/*.c; do
    case "$src" in src/engine/cli/*) continue ;; esac
    [ -f "$src" ] || continue
    o=$out/obj/$(echo "$src" | tr / _).o
    isa=""
    case "$src" in
        *_avx2.c) isa="-mavx2 -mfma -mf16c" ;;
        *_avx512.c) isa="-mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c" ;;
    esac
    if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ "$0" -nt "$o" ]; then
        throttle
        compile $CC $FLAGS $isa -c "$src" -o "$o" &
    fi
    objs+=("$o")
done
# The server's objects, for targets that drive server code (fuzz_rdb: the
# RDB loader needs the keyspace, every type and the front-end libraries);
# server.c's main() is renamed so that libFuzzer's main is the one.
# Their headers change often (server.h): any header newer than an object
# rebuilds it.
srv_objs=()
newest_hdr=$(ls -t src/server/*.h src/core/*.h src/vector/*.h src/infercmd/*.h src/vcmd/*.h src/engine/*.h | head -n 1)
for src in src/server/*.c src/infercmd/*.c src/vcmd/*.c; do
    [ -f "$src" ] || continue
    o=$out/obj/$(echo "$src" | tr / _).o
    extra=""
    [ "$src" = src/server/server.c ] && extra="-Dmain=inferkv_server_main"
    if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ "$0" -nt "$o" ] || [ "$newest_hdr" -nt "$o" ]; then
        throttle
        compile $CC $FLAGS $extra -c "$src" -o "$o" &
    fi
    srv_objs+=("$o")
done
wait
if [ -f "$failed_mark" ]; then
    echo "FAIL: a fuzz object did not compile (see above)"
    exit 1
fi
targets=()
for f in tests/fuzz/fuzz_*.c; do
    name=$(basename "$f" .c)
    more=()
    case "$name" in fuzz_rdb|fuzz_aof) more=("${srv_objs[@]}") ;; esac
    # -lb2 -lisal: the server's sidecar.c (in fuzz_rdb's server objects, and
    # fuzz_sidecar's own)
    throttle
    compile $CC $FLAGS -fsanitize=fuzzer "$f" "${more[@]}" "${objs[@]}" -lpcre2-8 -lm -lpthread -llzf -lb2 -lisal \
        -o "$out/$name" &
    targets+=("$name")
done
wait
if [ -f "$failed_mark" ]; then
    echo "FAIL: a fuzz target did not build (see above)"
    exit 1
fi
for name in "${targets[@]}"; do echo "built $out/$name"; done
[ "${1:-}" = --build-only ] && exit 0
secs=${FUZZ_SECONDS:-15}
for name in "${targets[@]}"; do
    corpus=tests/fuzz/corpus/${name#fuzz_}
    work=$(mktemp -d)
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null || true
    echo "running $name for ${secs}s"
    if ! INFERKV_SHARED=${INFERKV_SHARED:-$(cd .. && pwd)/shared} \
        "$out/$name" -max_total_time="$secs" -rss_limit_mb=4096 -max_len=65536 "$work" \
        -artifact_prefix="$out/$name-" > "$out/$name.log" 2>&1; then
        echo "FAIL: $name crashed; see $out/$name.log"; tail -n 30 "$out/$name.log"; rm -rf "$work"; exit 1
    fi
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$out/$name.log" | tail -n1
    rm -rf "$work"
done
