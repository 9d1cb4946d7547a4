#!/usr/bin/env bash
# redis-cli session against a real inferkv-server: the commands an operator
# types (RESP2 and -3 for RESP3), output compared with what redis-cli prints
# for Redis, plus --pipe mass insertion and --scan.
set -u
cd "$(dirname "$0")/../.."
build=${INFERKV_BUILD:-build}
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/inferkv-server" --bind 127.0.0.1 --port "$port" --save '' --appendonly no >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait 2>/dev/null' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
pass=0 fail=0
expect() { # name, expected output, redis-cli args...
    local name=$1 want=$2; shift 2
    local got
    got=$(redis-cli -p "$port" "$@" 2>&1)
    if [ "$got" == "$want" ]; then pass=$((pass + 1)); echo "  ok   $name"
    else fail=$((fail + 1)); echo "  FAIL $name: got [$got] want [$want]"; fi
}
expect "PING" "PONG" ping
expect "SET" "OK" set greeting hello
expect "GET" "hello" get greeting
expect "missing key prints nothing in raw mode" "" get nokey
expect "missing key prints (nil) on a tty format" "(nil)" --no-raw get nokey
expect "INCR" "(integer) 1" --no-raw incr hits
redis-cli -p "$port" rpush l a b >/dev/null
expect "LRANGE formatted" $'1) "a"\n2) "b"' --no-raw lrange l 0 -1
expect "error reply" "(error) WRONGTYPE Operation against a key holding the wrong kind of value" --no-raw lpush greeting x
got=$(redis-cli -p "$port" -3 --no-raw hello 3 | head -3 | tr '\n' '|')
if [ "$got" == '1# "server" => "redis"|2# "version" => "7.0.15"|3# "proto" => (integer) 3|' ]; then
    pass=$((pass + 1)); echo "  ok   HELLO 3 map via -3"
else fail=$((fail + 1)); echo "  FAIL HELLO 3: $got"; fi
redis-cli -p "$port" hset h f v >/dev/null
expect "RESP3 map HGETALL" '1# "f" => "v"' -3 --no-raw hgetall h
redis-cli -p "$port" zadd z 1.5 m >/dev/null
expect "RESP3 double" '(double) 1.5' -3 --no-raw zscore z m
printf 'SET mass:%d v\r\n' $(seq 1 5000) | redis-cli -p "$port" --pipe >/dev/null 2>&1
expect "--pipe mass insertion" "5005" dbsize
got=$(redis-cli -p "$port" --scan --pattern 'mass:*' | wc -l)
if [ "$got" -eq 5000 ]; then pass=$((pass + 1)); echo "  ok   --scan finds every key"
else fail=$((fail + 1)); echo "  FAIL --scan found $got of 5000"; fi
got=$(redis-cli -p "$port" info keyspace | tr -d '\r' | grep '^db0:')
if [ "$got" == "db0:keys=5005,expires=0,avg_ttl=0" ]; then pass=$((pass + 1)); echo "  ok   INFO keyspace"
else fail=$((fail + 1)); echo "  FAIL INFO keyspace: $got"; fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
