"""server_harness.py - shared by the integration tests, a benchmark and a tool.

Starts a real build/inferkv-server on a free loopback port (persistence
off), waits until it answers PING, and stops it afterwards; offers a tiny
raw RESP2/RESP3 client (redis-py 4.3 has no RESP3) and the pass/fail tally
whose last line, "N passed, N failed, N skipped", tests/run_all.sh reads.
The helpers below it (a logged child process, wait_up / wait_until, a
background call, busy clients, INFER.GENERATE through redis-py) serve the
module suites, bench/infer_bench.py and tools/cmdmeta too, so that each
exists once.  Not named test_*: run_all.sh runs those as suites.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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


def usable_ram():
    """What infer-max-memory's default is half of: RAM, or the cgroup's
    limit when lower (src/infercmd/budget.c reads the same)."""
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(p) as f:
                v = f.read().strip()
        except OSError:
            continue
        if v.isdigit() and 0 < int(v) < ram:
            ram = int(v)
    return ram


def stop_process(proc, timeout=10):
    """SIGTERM, then SIGKILL when it has not exited within timeout seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_up(proc, ping, seconds=10, errors=(OSError,)):
    """Calls ping() until it returns true (True), proc exits or seconds pass
    (False); the exceptions in errors count as not up yet."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if ping():
                return True
        except errors:
            pass
        time.sleep(0.05)
    return False


def wait_until(pred, timeout=10, interval=0.005):
    """Polls pred() until it is true (True) or timeout seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False


class LoggedProcess:
    """A child process whose stdout and stderr go to log_path."""

    def __init__(self, cmd, log_path, **popen):
        self.log_path = log_path
        self.log = open(log_path, "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, **popen)

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def alive(self):
        return self.proc.poll() is None

    def stop_process(self, timeout=10):
        stop_process(self.proc, timeout)


class Server(LoggedProcess):
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
        super().__init__(cmd, os.path.join(self.dir, "server.log"))
        if wait_up(self.proc, self._ping):
            return
        if self.proc.poll() is not None:
            raise RuntimeError("inferkv-server exited at startup:\n" + self.log_text())
        self.stop()
        raise RuntimeError("inferkv-server did not answer PING")

    def _ping(self):
        c = RawClient(self.port)
        c.send("PING")
        c.read()
        c.close()
        return True

    def stop(self):
        self.stop_process()
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
    ('=', bytes) ('!', str).  Subclasses that want other reply shapes
    override read() and build on _line() / _bytes() / _reply()."""

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
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def send(self, *args):
        self.sock.sendall(self.encode(*args))

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.send(*args)
        return self.read()

    def _closed(self):
        """The exception a read raises when the server has closed the connection."""
        return Closed()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise self._closed()
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
        return self._reply()

    def _reply(self):
        line = self._line()
        t, rest = chr(line[0]), line[1:]
        if t in "+-,":
            return (t, rest.decode(errors="replace"))
        if t == "!":
            return (t, self._bytes(int(rest)).decode(errors="replace"))
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
            return (t, None if n < 0 else [self._reply() for _ in range(n)])
        if t == "%":
            return (t, [(self._reply(), self._reply()) for _ in range(int(rest))])
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

    def expect(self, cond, what):
        """One check that reports at once and lets the caller carry on (the
        module suites' style: many checks per step, no exception)."""
        if cond:
            self.passed += 1
            print("  ok   " + what)
        else:
            self.failed += 1
            print("  FAIL " + what)
        sys.stdout.flush()

    def skip(self, what):
        self.skipped += 1
        print("  SKIP " + what)

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


class Background:
    """Runs fn in a thread and keeps its result or exception.  Suites set
    join_timeout (how long join() waits: a hang, not a speed) and daemon
    in a subclass."""

    join_timeout = 120
    daemon = False

    def __init__(self, fn):
        self.result = self.error = None
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, args=(fn,), daemon=self.daemon)
        self.t.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except Exception as e:  # noqa: BLE001 - kept for the check
            self.error = e
        self.done.set()

    def join(self, timeout=None):
        self.t.join(self.join_timeout if timeout is None else timeout)
        return self

    def hung(self):
        return self.t.is_alive()


class Busy:
    """n threads, each with its own client from make_client(), calling
    fn(client) `times` times; what they return and raise is collected in
    results and errors (keeps a server busy while a test acts on it)."""

    def __init__(self, n, times, make_client, fn):
        self.results, self.errors = [], []
        self.threads = [threading.Thread(target=self._work, args=(times, make_client, fn)) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _work(self, times, make_client, fn):
        c = make_client()
        for _ in range(times):
            try:
                self.results.append(fn(c))
            except Exception as e:  # noqa: BLE001 - kept for the check
                self.errors.append(e)

    def join(self, timeout):
        for t in self.threads:
            t.join(timeout)
        return self


def gen(c, prompt, n, *extra, model="s"):
    """Greedy INFER.GENERATE of n tokens through a redis-py client."""
    return c.execute_command("INFER.GENERATE", model, prompt, "MAXTOKENS", n, "TEMPERATURE", 0, *extra)


def err_of(fn):
    """The error text a redis-py call raises, or None."""
    import redis  # only the suites that use redis-py need it installed
    try:
        fn()
    except redis.exceptions.ResponseError as e:
        return str(e)
    return None
