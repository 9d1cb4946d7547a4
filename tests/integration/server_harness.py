"""server_harness.py - shared by the inferkv-server integration tests.

Starts a real build/inferkv-server on a free loopback port (persistence
off), waits until it answers PING, and stops it afterwards; offers a tiny
raw RESP2/RESP3 client (redis-py 4.3 has no RESP3) and the pass/fail tally
whose last line, "N passed, N failed", tests/run_all.sh reads.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
SERVER = os.path.join(BUILD, "inferkv-server")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """A running inferkv-server; use as a context manager."""

    def __init__(self, *args, unix=False):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="inferkv-test-")
        self.unixsocket = os.path.join(self.dir, "kv.sock") if unix else None
        cmd = [SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
               "--appendonly", "no", "--dir", self.dir]
        if self.unixsocket:
            cmd += ["--unixsocket", self.unixsocket]
        cmd += list(args)
        self.log = open(os.path.join(self.dir, "server.log"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("inferkv-server exited at startup:\n" + self.log_text())
            try:
                c = RawClient(self.port)
                c.send("PING")
                c.read()
                c.close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("inferkv-server did not answer PING")

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Closed(Exception):
    pass


class RawClient:
    """A blocking RESP client that returns replies with their RESP type:
    ('+', str) ('-', str) (':', int) ('$', bytes|None) ('*', list|None)
    ('%', list of pairs) ('~', list) (',', str) ('_', None) ('#', bool)
    ('=', bytes)."""

    def __init__(self, port=None, unix=None, timeout=10):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, *args):
        self.sock.sendall(self.encode(*args))

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.send(*args)
        return self.read()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise Closed()
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = chr(line[0]), line[1:]
        if t in "+-,":
            return (t, rest.decode(errors="replace"))
        if t == ":":
            return (t, int(rest))
        if t == "_":
            return (t, None)
        if t == "#":
            return (t, rest == b"t")
        if t in "$=":
            n = int(rest)
            return (t, None if n < 0 else self._bytes(n))
        if t in "*~>":
            n = int(rest)
            return (t, None if n < 0 else [self.read() for _ in range(n)])
        if t == "%":
            return (t, [(self.read(), self.read()) for _ in range(int(rest))])
        raise ValueError("bad reply type %r" % line)

    def closed_by_peer(self, wait=2.0):
        """True when the server has closed the connection."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


class Tally:
    """Runs named checks, prints each failure, ends with the summary line."""

    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def run(self, fn, *args):
        name = fn.__name__
        try:
            fn(*args)
            self.passed += 1
            print("  ok   %s" % name)
        except Skip as e:
            self.skipped += 1
            print("  SKIP %s: %s" % (name, e))
        except Exception as e:  # a failed check or an unexpected error
            self.failed += 1
            import traceback
            print("  FAIL %s: %r" % (name, e))
            traceback.print_exc(limit=3, file=sys.stdout)
        sys.stdout.flush()

    def done(self):
        print("%d passed, %d failed, %d skipped" % (self.passed, self.failed, self.skipped))
        sys.exit(1 if self.failed else 0)


class Skip(Exception):
    pass


def check(cond, what=""):
    if not cond:
        raise AssertionError(what)


def eq(got, want, what=""):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))
