"""test_server_protected.py - protected mode and the Unix socket options,
through real server processes and real TCP / Unix-socket clients.

Each scenario runs against inferkv-server and, when it is installed,
against redis-server 7.0.15 started with the same options; what the
clients see must be what this file expects and the same on both servers.
Clients connect from source address 127.0.0.2 (a non-loopback peer as
Redis counts it: only 127.0.0.1 and ::1 are local) and from 127.0.0.1.

Scenarios (each states the behaviour it checks):
- defaults (protected mode on, no password): a client from 127.0.0.2 gets
  Redis's exact -DENIED text and is closed, whichever local address it
  reached; 127.0.0.1, ::1 and the Unix socket are served; INFO counts the
  refusals in rejected_connections;
- CONFIG SET protected-mode no / yes at run time takes effect for new
  connections only; CONFIG SET requirepass lets 127.0.0.2 in, where it
  must AUTH first (NOAUTH), and clearing it closes the door again;
- --protected-mode no at startup serves 127.0.0.2;
- --requirepass at startup lets 127.0.0.2 in, behind AUTH;
- unixsocketperm is applied to the socket file (chmod), shown by CONFIG
  GET and immutable at run time.
"""
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import (RawClient, Server, Skip, Tally, check, eq, free_port,  # noqa: E402
                            stop_process, wait_up)

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
OTHER = "127.0.0.2"  # loopback network, but not local to Redis's protected mode
BIND = ["--bind", "127.0.0.1", "127.0.0.2", "-::1"]

DENIED = (
    b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is "
    b"set for the default user. In this mode connections are only accepted from the loopback interface. "
    b"If you want to connect from external computers to Redis you may adopt one of the following "
    b"solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from "
    b"the loopback interface by connecting to Redis from the same host the server is running, however "
    b"MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make "
    b"this change permanent. 2) Alternatively you can just disable the protected mode by editing the "
    b"Redis configuration file, and setting the protected mode option to 'no', and then restarting the "
    b"server. 3) If you started the server manually just for testing, restart it with the "
    b"'--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: "
    b"You only need to do one of the above things in order for the server to start accepting "
    b"connections from the outside.\r\n")


def can_bind(family, addr):
    try:
        s = socket.socket(family)
        s.bind((addr, 0))
        s.close()
        return True
    except OSError:
        return False


HAVE_V6 = can_bind(socket.AF_INET6, "::1")


class FromClient(RawClient):
    """A RawClient whose TCP connection leaves from a chosen source address."""

    def __init__(self, port, src, dst="127.0.0.1", timeout=5):
        self.sock = socket.socket(socket.AF_INET6 if ":" in src else socket.AF_INET)
        self.sock.settimeout(timeout)
        self.sock.bind((src, 0))
        self.sock.connect((dst, port))
        self.buf = b""


def refusal(port, src, dst="127.0.0.1"):
    """Connects from src without sending anything and returns (all bytes
    received, whether the server closed the connection) within 5 s."""
    c = FromClient(port, src, dst)
    data, closed = b"", False
    try:
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                closed = True
                break
            data += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    c.close()
    return data, closed


def served(port, src, dst="127.0.0.1"):
    """What PING answers on a connection from src."""
    c = FromClient(port, src, dst)
    try:
        return c.call("PING")
    finally:
        c.close()


class Reference:
    """redis-server 7.0.15 with the same options as a Server (same shape:
    port, unixsocket, dir, stop())."""

    def __init__(self, *args, unix=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="inferkv-redis-")
        self.unixsocket = os.path.join(self.dir, "kv.sock") if unix else None
        cmd = [REDIS, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
               "--daemonize", "no", "--dir", self.dir]
        if self.unixsocket:
            cmd += ["--unixsocket", self.unixsocket]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_up(self.proc, self._ping):
            self.stop()
            raise Skip("redis-server did not start")

    def _ping(self):
        c = RawClient(self.port)
        c.call("PING")
        c.close()
        return True

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def have_reference():
    if not os.access(REDIS, os.X_OK):
        return False
    out = subprocess.run([REDIS, "--version"], capture_output=True, text=True).stdout
    return "v=7.0.15" in out


def both(scenario, *args, unix=False):
    """Runs scenario(server) on inferkv-server and, when available, on
    redis-server with the same options; the observations must be equal."""
    if not can_bind(socket.AF_INET, OTHER):
        raise Skip("cannot bind a socket to %s" % OTHER)
    with Server(*args, unix=unix) as srv:
        ours = scenario(srv)
    if not have_reference():
        print("  (redis-server 7.0.15 not installed: not compared)")
        return
    with Reference(*args, unix=unix) as ref:
        theirs = scenario(ref)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        eq(a, b, "observation %d, inferkv vs redis-server" % i)
    eq(len(ours), len(theirs), "observations")


def stats_field(c, field):
    for line in c.call("INFO", "stats")[1].decode().split("\r\n"):
        if line.startswith(field + ":"):
            return int(line.split(":")[1])
    return None


# ------------------------------------------------------------ scenarios

def defaults_refuse_other_addresses():
    """Protected mode on, no password: 127.0.0.2 gets -DENIED and is
    closed; 127.0.0.1, ::1 and the Unix socket are served."""
    def scenario(s):
        seen = []
        admin = RawClient(s.port)
        seen.append(admin.call("CONFIG", "GET", "protected-mode"))
        before = stats_field(admin, "rejected_connections")
        for dst in ("127.0.0.1", OTHER):
            data, closed = refusal(s.port, OTHER, dst)
            eq(data, DENIED, "DENIED text to %s -> %s" % (OTHER, dst))
            check(closed, "closed after DENIED")
            seen.append((data, closed))
        eq(served(s.port, "127.0.0.1"), ("+", "PONG"), "127.0.0.1 served")
        if HAVE_V6:
            eq(served(s.port, "::1", "::1"), ("+", "PONG"), "::1 served")
        u = RawClient(unix=s.unixsocket)
        eq(u.call("PING"), ("+", "PONG"), "Unix socket served")
        u.close()
        eq(stats_field(admin, "rejected_connections") - before, 2, "rejected_connections counts refusals")
        seen.append(admin.call("DBSIZE"))
        admin.close()
        return seen
    both(scenario, *BIND, unix=True)


def config_set_at_run_time():
    """CONFIG SET protected-mode no/yes and requirepass take effect for new
    connections; a connection let in stays in."""
    def scenario(s):
        seen = []
        admin = RawClient(s.port)
        seen.append(admin.call("CONFIG", "SET", "protected-mode", "no"))
        eq(served(s.port, OTHER), ("+", "PONG"), "protected-mode no: served")
        kept = FromClient(s.port, OTHER)
        eq(kept.call("PING"), ("+", "PONG"), "kept connection")
        seen.append(admin.call("CONFIG", "SET", "protected-mode", "yes"))
        seen.append(admin.call("CONFIG", "GET", "protected-mode"))
        eq(refusal(s.port, OTHER), (DENIED, True), "protected-mode yes again: refused")
        eq(kept.call("PING"), ("+", "PONG"), "the connection let in earlier stays served")
        kept.close()
        seen.append(admin.call("CONFIG", "SET", "requirepass", "x"))
        c = FromClient(s.port, OTHER)
        eq(c.call("PING"), ("-", "NOAUTH Authentication required."), "a password: let in, behind AUTH")
        seen.append(c.call("AUTH", "wrong"))
        eq(c.call("AUTH", "x"), ("+", "OK"), "AUTH")
        eq(c.call("PING"), ("+", "PONG"), "served after AUTH")
        # clearing the password closes the door to new connections again
        seen.append(c.call("CONFIG", "SET", "requirepass", ""))
        eq(refusal(s.port, OTHER), (DENIED, True), "no password again: refused")
        eq(c.call("PING"), ("+", "PONG"), "the authenticated connection stays")
        c.close()
        admin.close()
        return seen
    both(scenario, *BIND)


def protected_mode_off_at_startup():
    """--protected-mode no: 127.0.0.2 is served."""
    def scenario(s):
        c = FromClient(s.port, OTHER)
        seen = [c.call("PING"), c.call("CONFIG", "GET", "protected-mode")]
        eq(seen[0], ("+", "PONG"), "served")
        c.close()
        return seen
    both(scenario, *BIND, "--protected-mode", "no")


def requirepass_at_startup():
    """--requirepass: 127.0.0.2 gets in but must AUTH (NOAUTH first)."""
    def scenario(s):
        c = FromClient(s.port, OTHER)
        seen = [c.call("GET", "k"), c.call("AUTH", "x"), c.call("GET", "k")]
        eq(seen[0], ("-", "NOAUTH Authentication required."), "NOAUTH")
        eq(seen[1], ("+", "OK"), "AUTH")
        eq(seen[2], ("$", None), "served after AUTH")
        c.close()
        return seen
    both(scenario, *BIND, "--requirepass", "x")


def unixsocketperm_applied():
    """--unixsocketperm 700: the socket file's mode, CONFIG GET, and
    CONFIG SET refused (startup only)."""
    def scenario(s):
        mode = stat.S_IMODE(os.stat(s.unixsocket).st_mode)
        eq(mode, 0o700, "socket file mode")
        c = RawClient(unix=s.unixsocket)
        seen = [mode, c.call("CONFIG", "GET", "unixsocketperm"),
                c.call("CONFIG", "SET", "unixsocketperm", "777"),
                c.call("CONFIG", "SET", "unixsocket", "/tmp/x.sock")]
        eq(seen[1], ("*", [("$", b"unixsocketperm"), ("$", b"700")]), "CONFIG GET")
        check(seen[2][0] == "-", "immutable")
        c.close()
        return seen
    both(scenario, *BIND, "--unixsocketperm", "700", unix=True)


def main():
    t = Tally()
    t.run(defaults_refuse_other_addresses)
    t.run(config_set_at_run_time)
    t.run(protected_mode_off_at_startup)
    t.run(requirepass_at_startup)
    t.run(unixsocketperm_applied)
    t.done()


if __name__ == "__main__":
    main()
