"""test_server_slowlog.py - SLOWLOG through a real inferkv-server, next to
redis-server 7.0.15 in the same run.

The same session goes to both servers and the entries must be equal once
what differs by nature is masked (ids are compared as a sequence; times,
durations and client ports are checked for shape): slowlog-log-slower-than
0 logs everything and -1 nothing, slowlog-max-len keeps the newest, a
command with more than 32 arguments or an argument over 128 bytes is
summarised as Redis does, passwords (AUTH, HELLO ... AUTH, CONFIG SET
requirepass) are "(redacted)", commands inside MULTI/EXEC are logged one by
one and EXEC is not, and GET / LEN / RESET / HELP answer as Redis's do."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import RawClient, Server, Skip, Tally, check, eq, free_port, stop_process, wait_up  # noqa: E402

t = Tally()


def session(port):
    """Runs the session; returns what SLOWLOG answered at each step."""
    c = RawClient(port)
    out = []
    c.call("CLIENT", "SETNAME", "tester")
    c.call("CONFIG", "SET", "slowlog-log-slower-than", "-1")
    c.call("SLOWLOG", "RESET")
    c.call("SET", "never", "logged")
    out.append(("len with -1", c.call("SLOWLOG", "LEN")))
    c.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
    c.call("SLOWLOG", "RESET")
    c.call("SET", "k", "v")
    c.call("MSET", *sum((["k%d" % i, "v"] for i in range(20)), []))
    c.call("SET", "big", "x" * 300)
    c.call("AUTH", "nopass")
    c.call("AUTH", "user", "secret")
    c.call("HELLO", "2", "AUTH", "default", "secret2")
    c.call("CONFIG", "SET", "requirepass", "")
    c.call("MULTI")
    c.call("INCR", "n")
    c.call("GET", "k")
    c.call("EXEC")
    out.append(("get -1", c.call("SLOWLOG", "GET", "-1")))
    out.append(("get 2", c.call("SLOWLOG", "GET", "2")))
    out.append(("len", c.call("SLOWLOG", "LEN")))
    c.call("CONFIG", "SET", "slowlog-max-len", "3")
    out.append(("len after max-len 3", c.call("SLOWLOG", "LEN")))
    out.append(("get after max-len 3", c.call("SLOWLOG", "GET")))
    out.append(("get -2", c.call("SLOWLOG", "GET", "-2")))
    out.append(("get x", c.call("SLOWLOG", "GET", "x")))
    out.append(("help", c.call("SLOWLOG", "HELP")))
    out.append(("bad sub", c.call("SLOWLOG", "NOPE")))
    out.append(("reset", c.call("SLOWLOG", "RESET")))
    out.append(("len after reset", c.call("SLOWLOG", "LEN")))
    c.call("CONFIG", "SET", "slowlog-max-len", "128")
    c.call("CONFIG", "SET", "slowlog-log-slower-than", "10000")
    c.close()
    return out


def masked(reply, ids):
    """An entry list with its varying parts replaced by their shape."""
    kind, entries = reply
    if kind != "*" or not isinstance(entries, list) or any(e[0] != "*" for e in entries):
        return reply  # not a list of entries (HELP's lines, an error)
    shown = []
    for e in entries:
        f = e[1]
        check(len(f) == 6, "six fields per entry: %r" % (f,))
        ids.append(f[0][1])
        check(f[1][0] == ":" and f[1][1] > 1600000000, "a unix time: %r" % (f[1],))
        check(f[2][0] == ":" and f[2][1] >= 0, "microseconds: %r" % (f[2],))
        peer = f[4][1].decode()
        check(peer.startswith("127.0.0.1:"), "client address: %r" % peer)
        shown.append([x[1] for x in f[3][1]] + [f[5][1]])
    return shown


def run_redis():
    exe = shutil.which("redis-server")
    if not exe:
        return None
    port, d = free_port(), tempfile.mkdtemp(prefix="inferkv-slowlog-redis-")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ping():
        c = RawClient(port)
        c.call("PING")
        c.close()
        return True
    try:
        check(wait_up(proc, ping), "redis-server started")
        return session(port)
    finally:
        stop_process(proc)
        shutil.rmtree(d, ignore_errors=True)


def main():
    with Server() as srv:
        ours = session(srv.port)
    theirs = run_redis()

    def same_answers_as_redis():
        if theirs is None:
            raise Skip("redis-server not installed")
        for (what, a), (_, b) in zip(ours, theirs):
            ids_a, ids_b = [], []
            ma, mb = masked(a, ids_a), masked(b, ids_b)
            eq(ma, mb, what)
            # ids: consecutive, newest first, in both
            check(ids_a == sorted(ids_a, reverse=True) and (not ids_a or ids_a[0] - ids_a[-1] == len(ids_a) - 1),
                  "%s: ids newest first and consecutive %r" % (what, ids_a))

    def long_arguments_summarised():
        entries = dict(ours)["get -1"][1]
        mset = [x[1] for x in entries[-3][1][3][1]]
        eq(mset[0], b"MSET", "the MSET entry")
        eq(len(mset), 32, "32 arguments kept")
        eq(mset[-1], b"... (10 more arguments)", "the rest summarised")
        big = [x[1] for x in entries[-4][1][3][1]]
        eq(big[2], b"x" * 128 + b"... (172 more bytes)", "a long argument cut at 128 bytes")

    def passwords_redacted():
        text = repr(dict(ours)["get -1"])
        check(b"secret" not in text.encode() and "nopass" not in text, "no password in the log")
        check("(redacted)" in text, "redacted markers present")

    t.run(same_answers_as_redis)
    t.run(long_arguments_summarised)
    t.run(passwords_redacted)
    t.done()


if __name__ == "__main__":
    main()
