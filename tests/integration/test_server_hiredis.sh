#!/usr/bin/env bash
# hiredis client session: compiles tests/clients/hiredis_session.c against
# Debian's libhiredis and runs it against a real inferkv-server on a free
# loopback port.  The program prints the "N passed, N failed" line.
set -u
cd "$(dirname "$0")/../.."
build=${INFERKV_BUILD:-build}
bin=$(mktemp -d)/hiredis_session
trap 'rm -rf "$(dirname "$bin")"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null' EXIT
if ! cc -std=c11 -Wall -Wextra -Werror -o "$bin" tests/clients/hiredis_session.c -lhiredis; then
    echo "hiredis: cannot build the client (is libhiredis-dev installed?)"
    echo "0 passed, 1 failed"; exit 1
fi
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/inferkv-server" --bind 127.0.0.1 --port "$port" --save '' --appendonly no >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$bin" 127.0.0.1 "$port"
