# lib.sh - sourced by the bench_*.sh scripts that put inferkv-server next to
# redis-server: the scratch directory and its cleanup, a free loopback port,
# both servers started on loopback with persistence off, used_memory.
# Kept in one place so that every comparison starts its servers the same way.
# Expects $build (the build directory) and runs from the repository root.

out=bench/out
mkdir -p "$out"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
used() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}'; }

# Sets kv_port/kv_pid (inferkv-server) and rd_port/rd_pid (redis-server),
# logs in $tmp, and returns once both answer PING (non-zero, which stops a
# `set -e` script, when one does not).
start_servers() {
    kv_port=$(free_port)
    "$build/inferkv-server" --bind 127.0.0.1 --port "$kv_port" --save '' --appendonly no >"$tmp/kv.log" 2>&1 &
    kv_pid=$!
    pids+=("$kv_pid")
    rd_port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$rd_port" --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
    rd_pid=$!
    pids+=("$rd_pid")
    wait_up "$kv_port" || { echo "inferkv-server did not answer PING:" >&2; tail -n 5 "$tmp/kv.log" >&2; return 1; }
    wait_up "$rd_port" || { echo "redis-server did not answer PING:" >&2; tail -n 5 "$tmp/redis.log" >&2; return 1; }
}
