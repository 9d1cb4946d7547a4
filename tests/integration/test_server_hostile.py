"""test_server_hostile.py - malformed and abusive input against a real
inferkv-server.  Each bad request must get Redis's protocol error and a
closed connection (or be refused by a limit) while the server and every
other client carry on; nothing here may crash or wedge the server."""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import Closed, RawClient, Server, Tally, check, eq  # noqa: E402

# (bytes sent, error expected); each connection must then be closed.
PROTOCOL_ERRORS = [
    (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*2147483648\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*99999999999999999999\r\n", "ERR Protocol error: invalid multibulk length"),
    (b"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*1\r\n$536870913\r\n", "ERR Protocol error: invalid bulk length"),
    (b"*1\r\nPING\r\n", "ERR Protocol error: expected '$', got 'P'"),
    (b"*2\r\n$4\r\nECHO\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
    (b"SET k \"unterminated\r\n", "ERR Protocol error: unbalanced quotes in request"),
    (b"ECHO 'a'b\r\n", "ERR Protocol error: unbalanced quotes in request"),
    (b"A" * (70 * 1024), "ERR Protocol error: too big inline request"),
    (b"*" + b"1" * (70 * 1024), "ERR Protocol error: too big mbulk count string"),
    (b"*1\r\n$" + b"1" * (70 * 1024), "ERR Protocol error: too big bulk count string"),
]


def protocol_errors(srv):
    bystander = RawClient(srv.port)
    bystander.call("SET", "bystander", "ok")
    for data, want in PROTOCOL_ERRORS:
        c = RawClient(srv.port)
        c.send_raw(data)
        eq(c.read(), ("-", want), "reply to %r" % data[:40])
        check(c.closed_by_peer(), "connection closed after %r" % data[:40])
        c.close()
        eq(bystander.call("GET", "bystander"), ("$", b"ok"), "other client unaffected")
    bystander.close()


def huge_count_is_cheap(srv):
    """Claiming 2^31-1 arguments (or a 500 MB bulk) costs nothing until the
    bytes actually arrive."""
    info = RawClient(srv.port)
    before = int(dict(l.split(":", 1) for l in info.call("INFO", "memory")[1].decode().split("\r\n")
                      if ":" in l)["used_memory"])
    conns = []
    for _ in range(50):
        c = RawClient(srv.port)
        c.send_raw(b"*2147483647\r\n$3\r\nSET\r\n$500000000\r\nabc")
        conns.append(c)
    time.sleep(0.3)
    after = int(dict(l.split(":", 1) for l in info.call("INFO", "memory")[1].decode().split("\r\n")
                     if ":" in l)["used_memory"])
    check(after - before < 50 * 1024 * 1024, "memory grew by %d bytes" % (after - before))
    for c in conns:
        c.close()
    eq(info.call("PING"), ("+", "PONG"), "server fine")
    info.close()


def cut_mid_command(srv):
    for cut in (b"*3\r\n$3\r\nSET\r\n$1\r\nk", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc",
                b"*3\r", b"SET k v", b"$"):
        c = RawClient(srv.port)
        c.send_raw(cut)
        c.sock.shutdown(socket.SHUT_RDWR)
        c.close()
    c = RawClient(srv.port)
    eq(c.call("EXISTS", "k"), (":", 0), "half commands were never executed")
    c.close()


def query_buffer_limit(srv):
    admin = RawClient(srv.port)
    eq(admin.call("CONFIG", "SET", "client-query-buffer-limit", "1mb"), ("+", "OK"), "set limit")
    c = RawClient(srv.port)
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$5000000\r\n")
    try:
        for _ in range(40):
            c.send_raw(b"x" * 65536)
    except OSError:
        pass
    check(c.closed_by_peer(), "client over client-query-buffer-limit is closed")
    eq(admin.call("EXISTS", "q"), (":", 0), "its command never ran")
    admin.call("CONFIG", "SET", "client-query-buffer-limit", "1gb")
    admin.close()


def bulk_limit(srv):
    admin = RawClient(srv.port)
    admin.call("CONFIG", "SET", "proto-max-bulk-len", "1mb")
    c = RawClient(srv.port)
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1048577\r\n")
    eq(c.read(), ("-", "ERR Protocol error: invalid bulk length"), "bulk over proto-max-bulk-len")
    check(c.closed_by_peer(), "closed")
    eq(admin.call("SETRANGE", "b", "1048576", "x"),
       ("-", "ERR string exceeds maximum allowed size (proto-max-bulk-len)"), "SETRANGE limit")
    admin.call("CONFIG", "SET", "proto-max-bulk-len", "512mb")
    admin.close()


def unauthenticated_limits(srv):
    admin = RawClient(srv.port)
    admin.call("CONFIG", "SET", "requirepass", "pw")
    try:
        c = RawClient(srv.port)
        c.send_raw(b"*11\r\n")
        eq(c.read(), ("-", "ERR Protocol error: unauthenticated multibulk length"), "multibulk before AUTH")
        check(c.closed_by_peer(), "closed")
        c = RawClient(srv.port)
        c.send_raw(b"*1\r\n$16385\r\n")
        eq(c.read(), ("-", "ERR Protocol error: unauthenticated bulk length"), "bulk before AUTH")
    finally:
        admin.call("CONFIG", "SET", "requirepass", "")
        admin.close()


def output_buffer_limit(srv):
    admin = RawClient(srv.port)
    admin.call("SET", "big", "x" * 100000)
    admin.call("CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 0 0")
    c = RawClient(srv.port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # a client that sends and never reads must be cut off, not buffered forever
    try:
        c.send_raw(RawClient.encode("GET", "big") * 400)
    except OSError:
        pass
    time.sleep(1.0)
    clients = admin.call("CLIENT", "LIST")[1].decode()
    eq(clients.count("\n"), 1, "the slow reader was disconnected")
    admin.call("CONFIG", "SET", "client-output-buffer-limit", "normal 0 0 0")
    admin.close()
    c.close()


def random_garbage(srv):
    rng = random.Random(1234)
    alphabet = b"*$\r\n:+-0123456789abc \"'\\x"
    for i in range(300):
        n = rng.randint(1, 300)
        data = bytes(rng.choice(alphabet) for _ in range(n))
        try:
            c = RawClient(srv.port, timeout=2)
            c.send_raw(data)
            c.sock.settimeout(0.05)
            try:
                c.sock.recv(65536)
            except (socket.timeout, OSError):
                pass
            c.close()
        except OSError:
            pass
    c = RawClient(srv.port)
    eq(c.call("PING"), ("+", "PONG"), "alive after garbage")
    c.close()


def wrong_arguments(srv):
    c = RawClient(srv.port)
    eq(c.call("GET"), ("-", "ERR wrong number of arguments for 'get' command"), "arity")
    eq(c.call("NOPE", "a"), ("-", "ERR unknown command 'NOPE', with args beginning with: 'a' "), "unknown")
    eq(c.call("SET", "k", "v", "EX", "-1"), ("-", "ERR invalid expire time in 'set' command"), "bad EX")
    eq(c.call("ECHO", "a\r\nb")[1], b"a\r\nb", "CRLF inside a bulk is data")
    c.call("SET", "k", "v")
    eq(c.call("LPUSH", "k", "x"), ("-", "WRONGTYPE Operation against a key holding the wrong kind of value"),
       "WRONGTYPE")
    eq(c.call("HRANDFIELD", "nohash", "-9223372036854775807", "WITHVALUES"), ("-", "ERR value is out of range"),
       "huge count refused")
    c.close()


def main():
    t = Tally()
    with Server() as srv:
        for fn in (protocol_errors, huge_count_is_cheap, cut_mid_command, query_buffer_limit, bulk_limit,
                   unauthenticated_limits, output_buffer_limit, random_garbage, wrong_arguments):
            t.run(fn, srv)
            if not srv.alive():
                t.failed += 1
                print("  FAIL server died after %s\n%s" % (fn.__name__, srv.log_text()[-2000:]))
                break
    t.done()


if __name__ == "__main__":
    main()
