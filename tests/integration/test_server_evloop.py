"""test_server_evloop.py - the event loop's fd table under CONFIG SET
maxclients, through a real inferkv-server.

CONFIG SET maxclients runs inside a client's read handler and may grow the
table of fds that the loop is iterating over.  These checks make that happen
while the same fd also has a pending write (the loop then looks the fd up
again after the read handler) and while many clients' events are fired in
one turn; test_server_asan.sh runs this suite against the ASan build too,
where a stale pointer into the old table is a heap-use-after-free report.
Also: a lower maxclients keeps the clients already connected and refuses new
ones with Redis's error, a maxclients the process may not open files for
is refused with the old value kept, and at startup the fd limit is raised
for maxclients or maxclients fitted to it.
"""
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import RawClient, Server, Skip, Tally, check, eq, free_port, stop_process, wait_up  # noqa: E402

if os.environ.get("INFERKV_SERVER"):  # test_server_asan.sh: the ASan build
    server_harness.SERVER = os.path.abspath(os.environ["INFERKV_SERVER"])

t = Tally()
BIG = 8 << 20


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise AssertionError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def maxclients(port):
    c = RawClient(port)
    v = int(c.call("CONFIG", "GET", "maxclients")[1][1][1])
    c.close()
    return v


def room(port, need):
    """The current maxclients, when the fd limit (the server inherits this
    process's) lets it grow by need; else the check is skipped."""
    base = maxclients(port)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard - 32 < base + need:
        raise Skip("RLIMIT_NOFILE hard limit %d leaves no room to grow maxclients %d by %d" % (hard, base, need))
    return base


def resize_with_a_write_pending(srv):
    """Three 8 MiB replies fill the socket buffers, so the fd waits for writable;
    then CONFIG SET maxclients arrives and the client starts reading: the
    read handler grows the table and the write handler runs in the same
    turn.  Every byte of every reply must still arrive, in order."""
    c = RawClient(srv.port)
    c.call("SET", "big", b"v" * BIG)
    c.close()
    base = room(srv.port, 12 * 200)
    want_bulk = b"$%d\r\n" % BIG + b"v" * BIG + b"\r\n"
    for i in range(12):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(resp("GET", "big") * 3)
        time.sleep(0.05)
        s.sendall(resp("CONFIG", "SET", "maxclients", base + 200 * (i + 1)) + resp("PING"))
        got = recv_exact(s, 3 * len(want_bulk) + len(b"+OK\r\n+PONG\r\n"))
        check(got == want_bulk * 3 + b"+OK\r\n+PONG\r\n", "round %d: replies intact" % i)
        s.close()
    eq(maxclients(srv.port), base + 200 * 12, "maxclients after the last grow")


def many_clients_resize_in_one_turn(srv):
    """40 clients each send CONFIG SET maxclients then PING, written before
    any reply is read, so many events fire in one epoll turn and each read
    handler may grow the table under the loop."""
    base = room(srv.port, 40 * 10)
    socks = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(40)]
    for i, s in enumerate(socks):
        s.sendall(resp("CONFIG", "SET", "maxclients", base + 10 * (i + 1)) + resp("PING"))
    for i, s in enumerate(socks):
        eq(recv_exact(s, len(b"+OK\r\n+PONG\r\n")), b"+OK\r\n+PONG\r\n", "client %d" % i)
        s.close()
    eq(maxclients(srv.port), base + 10 * 40, "the last client's value")


def lower_maxclients_keeps_connected_refuses_new(srv):
    """Below the number connected: those stay and are served, a new
    connection gets Redis's error and is closed."""
    held = [RawClient(srv.port) for _ in range(8)]
    eq(held[0].call("CONFIG", "SET", "maxclients", "4"), ("+", "OK"), "CONFIG SET maxclients 4")
    for i, c in enumerate(held):
        eq(c.call("PING"), ("+", "PONG"), "connected client %d still served" % i)
    extra = RawClient(srv.port)
    eq(extra.read(), ("-", "ERR max number of clients reached"), "a new connection")
    check(extra.closed_by_peer(), "the refused connection is closed")
    extra.close()
    eq(held[0].call("CONFIG", "SET", "maxclients", "10000"), ("+", "OK"), "back to 10000")
    for c in held:
        c.close()
    late = RawClient(srv.port)
    eq(late.call("PING"), ("+", "PONG"), "new connections accepted again")
    late.close()


def maxclients_beyond_the_fd_limit_refused(srv):
    """The process cannot hold 4 billion clients: refused with Redis's
    text, the old value kept, the server still serving."""
    before = maxclients(srv.port)
    c = RawClient(srv.port)
    kind, msg = c.call("CONFIG", "SET", "maxclients", "4000000000")
    eq(kind, "-", "reply kind")
    check(msg.startswith("ERR CONFIG SET failed (possibly related to argument 'maxclients') - "
                         "The operating system is not able to handle the specified number of clients, try with "),
          "error text: %r" % msg)
    eq(maxclients(srv.port), before, "maxclients unchanged")
    eq(c.call("PING"), ("+", "PONG"), "still serving")
    c.close()


def start_with_nofile(soft, hard):
    """An inferkv-server started under RLIMIT_NOFILE (soft, hard); returns
    (process, port, log path, dir)."""
    port, d = free_port(), tempfile.mkdtemp(prefix="inferkv-nofile-")
    log = os.path.join(d, "server.log")
    proc = subprocess.Popen([server_harness.SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--dir", d, "--logfile", log],
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ping():
        c = RawClient(port)
        c.call("PING")
        c.close()
        return True
    check(wait_up(proc, ping), "server started under NOFILE %d/%d" % (soft, hard))
    return proc, port, log, d


def startup_fits_maxclients_to_the_fd_limit():
    """Started with the default maxclients (10000) under a soft limit of 256:
    the soft limit is raised when the hard one allows (the log says so),
    else maxclients shrinks to the limit minus 32 with a warning, as Redis
    does, instead of accept() failing later."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 10032:
        raise Skip("RLIMIT_NOFILE hard limit %d is below 10032" % hard)
    proc, port, log, d = start_with_nofile(256, hard)
    try:
        eq(maxclients(port), 10000, "maxclients kept when the soft limit can be raised")
        text = open(log).read()
        check("Increased maximum number of open files to 10032 (it was originally set to 256)" in text,
              "the log says the limit was raised:\n" + text[-1500:])
    finally:
        stop_process(proc)
        shutil.rmtree(d, ignore_errors=True)
    proc, port, log, d = start_with_nofile(256, 256)
    try:
        eq(maxclients(port), 224, "maxclients reduced to the hard limit minus 32")
        text = open(log).read()
        check("maxclients has been reduced to 224" in text, "the log warns:\n" + text[-1500:])
    finally:
        stop_process(proc)
        shutil.rmtree(d, ignore_errors=True)


def startup_refused_with_no_fd_for_a_client():
    """A soft and hard limit of 32 leaves no fd for a client: the server
    says so and exits, as Redis does, instead of starting unusable."""
    port, d = free_port(), tempfile.mkdtemp(prefix="inferkv-nofile-")
    log = os.path.join(d, "server.log")
    try:
        proc = subprocess.run([server_harness.SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                               "--dir", d, "--logfile", log],
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        eq(proc.returncode, 1, "exit status")
        text = open(log).read()
        check("is not enough for the server to start" in text, "the log says why:\n" + text[-1500:])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    with Server() as srv:
        for fn in (resize_with_a_write_pending, many_clients_resize_in_one_turn,
                   lower_maxclients_keeps_connected_refuses_new, maxclients_beyond_the_fd_limit_refused):
            t.run(fn, srv)

        def server_alive_with_a_clean_log():
            c = RawClient(srv.port)
            eq(c.call("PING"), ("+", "PONG"), "PING at the end")
            c.close()
            log = srv.log_text()
            check("AddressSanitizer" not in log and "runtime error" not in log,
                  "sanitizer report in the server log:\n" + log[-3000:])

        t.run(server_alive_with_a_clean_log)
    t.run(startup_fits_maxclients_to_the_fd_limit)
    t.run(startup_refused_with_no_fd_for_a_client)
    t.done()


if __name__ == "__main__":
    main()
