"""test_server_concurrency.py - 1,000 concurrent clients pipelining at the
same time against one inferkv-server; every reply must be correct and in
order for every client.

Each client owns a counter key and alternates INCR and ECHO with a payload
that names the client and step, so its expected reply stream is known
byte for byte.  Clients send in windows of 100 pipelined commands and all
run at once over one selector.  The issue asks 10,000 commands per client;
that takes minutes on a 2-core machine in Python, so the default here is
INFERKV_CONC_PER_CLIENT=1000 (1M commands in total); set it to 10000 for
the full run."""
import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import RawClient, Server, Tally, check, eq  # noqa: E402

CLIENTS = int(os.environ.get("INFERKV_CONC_CLIENTS", "1000"))
PER_CLIENT = int(os.environ.get("INFERKV_CONC_PER_CLIENT", "1000"))
WINDOW = 100


def commands_and_replies(cid, start, n):
    cmds, reps = [], []
    for k in range(start, start + n):
        if k % 2 == 0:
            cmds.append(RawClient.encode("INCR", "ctr:%d" % cid))
            reps.append(b":%d\r\n" % (k // 2 + 1))
        else:
            payload = b"%d:%d" % (cid, k)
            cmds.append(RawClient.encode("ECHO", payload))
            reps.append(b"$%d\r\n%s\r\n" % (len(payload), payload))
    return b"".join(cmds), b"".join(reps)


class Conn:
    def __init__(self, cid, port):
        self.cid = cid
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.sent = 0          # commands sent so far
        self.expect = b""      # replies still expected for the current window
        self.out = b""
        self.bad = None

    def next_window(self):
        n = min(WINDOW, PER_CLIENT - self.sent)
        if n <= 0:
            return False
        self.out, self.expect = commands_and_replies(self.cid, self.sent, n)
        self.sent += n
        return True


def run_all(srv):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < CLIENTS + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, CLIENTS + 256), hard))
    sel = selectors.DefaultSelector()
    conns = [Conn(i, srv.port) for i in range(CLIENTS)]
    for c in conns:
        c.next_window()
        sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    live = len(conns)
    deadline = time.time() + 600
    while live and time.time() < deadline:
        for key, mask in sel.select(timeout=5):
            c = key.data
            if mask & selectors.EVENT_WRITE and c.out:
                n = c.sock.send(c.out)
                c.out = c.out[n:]
                if not c.out:
                    sel.modify(c.sock, selectors.EVENT_READ, c)
            if mask & selectors.EVENT_READ:
                data = c.sock.recv(262144)
                if not data:
                    c.bad = "connection closed"
                elif not c.expect.startswith(data):
                    c.bad = "reply mismatch after %d commands: got %r" % (c.sent, data[:80])
                else:
                    c.expect = c.expect[len(data):]
                    if not c.expect:
                        if c.next_window():
                            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                            continue
                        live -= 1
                        sel.unregister(c.sock)
                        continue
                if c.bad:
                    live -= 1
                    sel.unregister(c.sock)
    bad = [c for c in conns if c.bad or c.expect or c.sent < PER_CLIENT]
    for c in conns:
        c.sock.close()
    return bad


def thousand_clients_pipelining(srv):
    t0 = time.time()
    bad = run_all(srv)
    dt = time.time() - t0
    print("  %d clients x %d pipelined commands in %.1fs" % (CLIENTS, PER_CLIENT, dt))
    check(not bad, "%d clients failed, first: %s" % (len(bad), bad[0].bad if bad else ""))
    c = RawClient(srv.port)
    eq(c.call("GET", "ctr:%d" % (CLIENTS - 1)), ("$", str(PER_CLIENT // 2).encode()), "final counter")
    total = int([l for l in c.call("INFO", "stats")[1].decode().split("\r\n")
                 if l.startswith("total_commands_processed:")][0].split(":")[1])
    check(total >= CLIENTS * PER_CLIENT, "server counted every command")
    c.close()


def main():
    t = Tally()
    with Server("--maxclients", str(CLIENTS + 100)) as srv:
        t.run(thousand_clients_pipelining, srv)
        if not srv.alive():
            t.failed += 1
    t.done()


if __name__ == "__main__":
    main()
