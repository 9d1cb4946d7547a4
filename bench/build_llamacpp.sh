#!/usr/bin/env bash
# build_llamacpp.sh - builds the llama.cpp peer (llama-bench) the way
# ../shared/ANCHORS.md says, into .cache/ (git-ignored), once:
#   1. npm package node-llama-cpp@3.22.1 (carries llama.cpp v0.5.0's source as
#      a git bundle) into .cache/node-llama-cpp/
#   2. git clone of that bundle into .cache/llama.cpp/
#   3. cmake -DGGML_NATIVE=ON, target llama-bench (about 12 minutes on 2 cores)
# Idempotent: every step is skipped when its result is already there.
# Prints the path of llama-bench on its last line.  JOBS=N overrides -j2.
set -eu
cd "$(dirname "$0")/.."
cache=$PWD/.cache
npmdir=$cache/node-llama-cpp
src=$cache/llama.cpp
bin=$src/build/bin/llama-bench
jobs=${JOBS:-2}
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
mkdir -p "$cache"
bundle=$npmdir/node_modules/node-llama-cpp/llama/gitRelease.bundle
if [ ! -s "$bundle" ]; then
    command -v npm >/dev/null || { echo "npm not found: cannot fetch llama.cpp's source" >&2; exit 1; }
    echo "installing node-llama-cpp@3.22.1 into $npmdir" >&2
    mkdir -p "$npmdir"
    (cd "$npmdir" && NODE_LLAMA_CPP_POSTINSTALL=skip NODE_LLAMA_CPP_SKIP_DOWNLOAD=true \
        npm install --no-package-lock --omit=optional --ignore-scripts -E \
        node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 >&2)
fi
[ -s "$bundle" ] || { echo "no $bundle after npm install" >&2; exit 1; }
if [ ! -f "$src/CMakeLists.txt" ]; then
    echo "cloning the bundle into $src" >&2
    rm -rf "$src"
    git clone -q "$bundle" "$src" >&2
fi
command -v cmake >/dev/null || { echo "cmake not found" >&2; exit 1; }
if [ ! -f "$src/build/CMakeCache.txt" ]; then
    cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
        -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=OFF >&2
fi
echo "building llama-bench (-j$jobs; about 12 minutes on 2 cores)" >&2
cmake --build "$src/build" --target llama-bench -j"$jobs" >&2
[ -x "$bin" ] || { echo "llama-bench not built" >&2; exit 1; }
echo "$bin"
