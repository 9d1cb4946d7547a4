#!/usr/bin/python3
"""Conformance runner: replays the command corpus against redis-server 7.0.15
and against inferkv-server, in RESP2 and in RESP3, and compares the replies.

Why it exists: inferkv must be indistinguishable from Redis for real clients.
The only honest way to check that is to send the very same bytes to both
servers and compare what comes back, type for type and byte for byte, with a
small, documented set of normalisations (docs/conformance.md) for replies
whose order is unspecified or whose values are inherently different.

It speaks RESP itself (a few dozen lines below) instead of using a client
library, because client libraries erase exactly what must be compared: the
reply type (simple string vs bulk string, RESP3 double vs bulk), null kinds
and error texts.

Corpus format: see docs/conformance.md.  Output: tests/conformance/out/
report.json and summary.txt; with --reference-only, a transcript of every
reply under out/reference/ to check the corpus itself.

stdlib only; run with /usr/bin/python3.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
OUT = os.path.join(HERE, "out")

REPLY_TIMEOUT = 5.0      # seconds to wait for one reply before calling it lost
START_TIMEOUT = 10.0     # seconds for a server to start answering PING
MAX_LINE = 1 << 20       # a reply line longer than this is a broken server
MAX_BULK = 1 << 30       # ... and so is a longer bulk reply
MAX_ITEMS = 1 << 24      # ... or an aggregate with more elements
MAX_DEPTH = 64           # ... or one nested deeper
MAX_SCAN_CALLS = 100000  # @scan gives up after this many calls (a loop)

MODIFIERS = ("sort", "ignore", "type-only", "len", "scan", "mask", "nowait", "replies",
             "fields", "has")
BLOCK_WAIT = 1.0         # seconds @nowait waits for the server to block the client


# Pseudo-replies that mean the connection is gone or unusable.
LOST = ("timeout", "connection-closed", "server-exited", "server-unresponsive",
        "server-did-not-start", "bad-reply", "no-connection")


class CorpusError(Exception):
    pass


class Fatal(Exception):
    """A server could not be started or died: ends the run unless --keep-going."""


# ---------------------------------------------------------------- corpus ---

_ESC = {"n": b"\n", "r": b"\r", "t": b"\t", "b": b"\b", "a": b"\a",
        "\\": b"\\", '"': b'"', "0": b"\x00"}


def split_args(line):
    """Splits one corpus line into byte-string arguments.

    Like redis-cli: words separated by blanks; "double quotes" with escapes
    \\xHH \\n \\r \\t \\b \\a \\0 \\\\ \\"; 'single quotes' are literal
    except \\'.  A closing quote must be followed by a blank or the end."""
    args, i, n = [], 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        if line[i] == '"':
            i += 1
            while True:
                if i >= n:
                    raise CorpusError("unterminated double quote")
                c = line[i]
                if c == "\\":
                    if i + 1 >= n:
                        raise CorpusError("backslash at end of line")
                    e = line[i + 1]
                    if e == "x":
                        h = line[i + 2:i + 4]
                        if not re.fullmatch(r"[0-9a-fA-F]{2}", h):
                            raise CorpusError("bad \\x escape")
                        cur.append(int(h, 16))
                        i += 4
                        continue
                    if e not in _ESC:
                        raise CorpusError("unknown escape \\" + e)
                    cur += _ESC[e]
                    i += 2
                    continue
                if c == '"':
                    i += 1
                    break
                cur += c.encode("utf-8")
                i += 1
        elif line[i] == "'":
            i += 1
            while True:
                if i >= n:
                    raise CorpusError("unterminated single quote")
                c = line[i]
                if c == "\\" and line[i + 1:i + 2] == "'":
                    cur += b"'"
                    i += 2
                    continue
                if c == "'":
                    i += 1
                    break
                cur += c.encode("utf-8")
                i += 1
        else:
            while i < n and line[i] not in " \t":
                cur += line[i].encode("utf-8")
                i += 1
            args.append(bytes(cur))
            continue
        if i < n and line[i] not in " \t":
            raise CorpusError("closing quote must be followed by a blank")
        args.append(bytes(cur))


class Step:
    """One thing to do: a command, raw bytes, a read, a sleep, a client switch."""

    def __init__(self, kind, lineno, text, **kw):
        self.kind = kind          # cmd raw read closed disconnect sleep client
        self.lineno = lineno
        self.text = text
        self.args = kw.get("args")
        self.nreplies = kw.get("nreplies", 1)
        self.mods = kw.get("mods", {})
        self.value = kw.get("value")
        self.protos = kw.get("protos", (2, 3))


def parse_corpus(path):
    steps, mods, protos = [], {}, (2, 3)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            if line.startswith("@"):
                words = line[1:].split(None, 1)
                name, rest = words[0], (words[1] if len(words) > 1 else "")
                if name in MODIFIERS:
                    if name in mods:
                        raise CorpusError("@%s given twice" % name)
                    if name == "sort" and rest not in ("", "pairs", "lines"):
                        raise CorpusError("@sort takes nothing, 'pairs' or 'lines'")
                    if name in ("mask", "fields", "has") and not rest:
                        raise CorpusError("@%s needs field names" % name)
                    if name == "replies" and not (rest.isdigit() and 1 <= int(rest) <= 1000):
                        raise CorpusError("@replies N, N in 1..1000")
                    if name not in ("sort", "mask", "replies", "fields", "has") and rest:
                        raise CorpusError("@%s takes no argument" % name)
                    mods[name] = rest.split() if name in ("mask", "fields", "has") else rest
                    continue
                if mods and name not in ("read",):
                    raise CorpusError("modifiers must precede a command or @read")
                if name == "client":
                    if not rest.isdigit() or not 1 <= int(rest) <= 64:
                        raise CorpusError("@client N, N in 1..64")
                    steps.append(Step("client", lineno, line, value=int(rest),
                                      protos=protos))
                elif name == "sleep":
                    if not rest.isdigit():
                        raise CorpusError("@sleep MS")
                    steps.append(Step("sleep", lineno, line, value=int(rest),
                                      protos=protos))
                elif name == "proto":
                    table = {"2": (2,), "3": (3,), "any": (2, 3)}
                    if rest not in table:
                        raise CorpusError("@proto 2|3|any")
                    protos = table[rest]
                elif name == "raw":
                    a = split_args(rest)
                    if len(a) not in (1, 2) or (len(a) == 2 and not a[1].isdigit()):
                        raise CorpusError("@raw BYTES [NREPLIES]")
                    steps.append(Step("raw", lineno, line, args=[a[0]],
                                      nreplies=int(a[1]) if len(a) == 2 else 1,
                                      protos=protos))
                elif name == "fill":
                    a = rest.split()
                    if len(a) not in (1, 2) or not all(x.isdigit() for x in a) \
                            or not 1 <= int(a[0]) <= 64 << 20:
                        raise CorpusError("@fill NBYTES [NREPLIES], NBYTES in 1..64M")
                    steps.append(Step("raw", lineno, line, args=[b"x" * int(a[0])],
                                      nreplies=int(a[1]) if len(a) == 2 else 0,
                                      protos=protos))
                elif name == "read":
                    steps.append(Step("read", lineno, line, mods=mods, protos=protos))
                    mods = {}
                elif name == "closed":
                    steps.append(Step("closed", lineno, line, protos=protos))
                elif name == "disconnect":
                    steps.append(Step("disconnect", lineno, line, protos=protos))
                else:
                    raise CorpusError("unknown directive @" + name)
                continue
            args = split_args(line)
            if "scan" in mods:
                up = args[0].upper()
                if up not in (b"SCAN", b"SSCAN", b"HSCAN", b"ZSCAN"):
                    raise CorpusError("@scan only applies to SCAN/SSCAN/HSCAN/ZSCAN")
            steps.append(Step("cmd", lineno, line, args=args, mods=mods, protos=protos))
            mods = {}
        except CorpusError as e:
            raise CorpusError("%s:%d: %s" % (os.path.basename(path), lineno, e))
    if mods:
        raise CorpusError("%s: modifiers at end of file" % os.path.basename(path))
    return steps


# ------------------------------------------------------------------ RESP ---

def encode_command(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """One client connection; replies come back as typed tuples:
    ('simple', b) ('error', b) ('int', n) ('bulk', b) ('nullbulk',)
    ('nullarray',) ('null',) ('double', raw) ('bool', b) ('bignum', raw)
    ('verbatim', fmt, b) ('blob-error', b) ('array', (...)) ('map', ((k, v),...))
    ('set', (...)) ('push', (...)) ('attr', map, reply).  Doubles keep their
    text so that formatting differences show."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pending = 0      # replies expected from @nowait commands

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError
        if not data:
            raise EOFError
        self.buf += data

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > MAX_LINE:
                raise ValueError("reply line too long")
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data = bytes(self.buf[:n])
        if self.buf[n:n + 2] != b"\r\n":
            raise ValueError("bulk not terminated by CRLF")
        del self.buf[:n + 2]
        return data

    def _count(self, s, limit, null_ok=True):
        if not re.fullmatch(rb"-?[0-9]+", s):
            raise ValueError("bad length %r" % s)
        n = int(s)
        if n > limit or n < (-1 if null_ok else 0):
            raise ValueError("length %d out of bounds" % n)
        return n

    def read(self, depth=0):
        # A misbehaving server must yield a "bad-reply", never a crash of
        # the runner: every length and the nesting depth are bounded.
        if depth > MAX_DEPTH:
            raise ValueError("reply nested too deep")
        line = self._line()
        if not line:
            raise ValueError("empty reply line")
        t, s = line[:1], line[1:]
        if t == b"+":
            return ("simple", s)
        if t == b"-":
            return ("error", s)
        if t == b":":
            if not re.fullmatch(rb"-?[0-9]+", s):
                raise ValueError("bad integer %r" % s)
            return ("int", int(s))
        if t == b"$":
            n = self._count(s, MAX_BULK)
            return ("nullbulk",) if n < 0 else ("bulk", self._exact(n))
        if t in (b"*", b"~", b">"):
            n = self._count(s, MAX_ITEMS, null_ok=(t == b"*"))
            if n < 0:
                return ("nullarray",)
            items = tuple(self.read(depth + 1) for _ in range(n))
            return ({b"*": "array", b"~": "set", b">": "push"}[t], items)
        if t == b"%":
            n = self._count(s, MAX_ITEMS, null_ok=False)
            return ("map", tuple((self.read(depth + 1), self.read(depth + 1))
                                 for _ in range(n)))
        if t == b"|":
            n = self._count(s, MAX_ITEMS, null_ok=False)
            attrs = tuple((self.read(depth + 1), self.read(depth + 1)) for _ in range(n))
            return ("attr", attrs, self.read(depth + 1))
        if t == b"_":
            return ("null",)
        if t == b",":
            return ("double", s)
        if t == b"#":
            if s not in (b"t", b"f"):
                raise ValueError("bad boolean")
            return ("bool", s == b"t")
        if t == b"(":
            return ("bignum", s)
        if t == b"=":
            data = self._exact(self._count(s, MAX_BULK, null_ok=False))
            if len(data) < 4 or data[3:4] != b":":
                raise ValueError("verbatim string without a format")
            return ("verbatim", data[:3], data[4:])
        if t == b"!":
            return ("blob-error", self._exact(self._count(s, MAX_BULK, null_ok=False)))
        raise ValueError("unknown reply type byte %r" % t)

    def has_unread(self):
        """True when bytes the server sent are still waiting: a desync."""
        if self.buf:
            return True
        try:
            self.sock.setblocking(False)
            try:
                return bool(self.sock.recv(1, socket.MSG_PEEK))
            except (BlockingIOError, InterruptedError):
                return False
            finally:
                self.sock.settimeout(REPLY_TIMEOUT)
        except OSError:
            return False

    def wait_closed(self, timeout=2.0):
        """True when the server closes the connection within timeout."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except socket.timeout:
            return False
        except OSError:
            return True
        finally:
            try:
                self.sock.settimeout(REPLY_TIMEOUT)
            except OSError:
                pass


def render(r):
    """A short readable text for a reply, for the report."""
    def s(b):
        out = []
        for ch in b:
            c = chr(ch)
            if c == '"' or c == "\\":
                out.append("\\" + c)
            elif 32 <= ch < 127:
                out.append(c)
            else:
                out.append({10: "\\n", 13: "\\r", 9: "\\t"}.get(ch, "\\x%02x" % ch))
        return '"' + "".join(out) + '"'
    t = r[0]
    if t == "simple":
        return "+" + s(r[1])[1:-1]
    if t in ("error", "blob-error"):
        return "-" + s(r[1])[1:-1]
    if t == "int":
        return ":%d" % r[1]
    if t == "bulk":
        return s(r[1])
    if t in ("double", "bignum"):
        return (",", "(")[t == "bignum"] + r[1].decode("latin-1")
    if t == "bool":
        return "#t" if r[1] else "#f"
    if t == "verbatim":
        return "=" + r[1].decode("latin-1") + ":" + s(r[2])
    if t in ("array", "set", "push"):
        o, c = {"array": ("[", "]"), "set": ("~{", "}"), "push": (">[", "]")}[t]
        return o + ", ".join(render(x) for x in r[1]) + c
    if t == "map":
        return "%{" + ", ".join(render(k) + ": " + render(v) for k, v in r[1]) + "}"
    if t == "attr":
        return "|" + render(("map", r[1])) + " " + render(r[2])
    if t in ("nullbulk", "nullarray", "null"):
        return {"nullbulk": "(nil bulk)", "nullarray": "(nil array)", "null": "_"}[t]
    if t == "len":
        return "(%s of length %d)" % (r[1], r[2])
    if t == "type":
        return "(any %s)" % r[1]
    if t == "ignored":
        return "(ignored %s)" % ("error" if r[1] else "reply")
    if t == "masked":
        return "*"
    if t == "fields":
        return "(fields) " + ", ".join(
            "%s=%s" % (f, "(missing)" if v is None else
                       v if isinstance(v, str) else v.decode("latin-1")) for f, v in r[1])
    if t == "unexpected-reply":
        return "(a reply where none was due: %s)" % render(r[1])
    if t == "desync-after":
        return "(unexpected extra data after %s)" % render(r[1])
    if t == "replies":
        return "(replies) " + "; ".join(render(x) for x in r[1])
    if t == "scan":
        return "(scan union) " + render(r[1])
    return "(%s%s)" % (t, (": " + str(r[1])) if len(r) > 1 else "")


def clip(text, limit=4000):
    return text if len(text) <= limit else text[:limit] + "... (%d chars)" % len(text)


# --------------------------------------------------------- normalisation ---

def _sort_key(r):
    return render(r)


def _pairs(items):
    return [tuple(items[i:i + 2]) for i in range(0, len(items) - len(items) % 2, 2)]


def normalise(r, mods):
    if "ignore" in mods:
        return ("ignored", r[0] in ("error", "blob-error"))
    if "type-only" in mods:
        return ("type", r[0])
    if "fields" in mods or "has" in mods:
        return info_fields(r, mods.get("fields", []), mods.get("has", []))
    if "len" in mods:
        if r[0] in ("array", "set", "map", "push"):
            return ("len", r[0], len(r[1]))
        return r
    if "mask" in mods:
        r = mask(r, set(f.encode() for f in mods["mask"]))
    if "sort" in mods:
        r = sort_reply(r, mods["sort"])
    return r


def info_fields(r, exact, present):
    """INFO-style text reduced to the named fields: their values (@fields)
    or only whether they are there (@has); other replies stay as they are."""
    if r[0] not in ("bulk", "verbatim"):
        return r
    values = {}
    for line in r[-1].split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if sep and not line.startswith(b"#"):
            values[name.decode("latin-1")] = value
    out = [(f, values.get(f)) for f in exact]
    out += [(f, "present" if f in values else None) for f in present]
    return ("fields", tuple(out))


def sort_reply(r, how):
    t = r[0]
    pairs = how == "pairs"
    if how == "lines":
        if t in ("bulk", "simple", "verbatim"):
            return r[:-1] + (b"\r\n".join(sorted(r[-1].split(b"\r\n"))),)
        return r
    if t == "map":
        return ("map", tuple(sorted(r[1], key=lambda kv: _sort_key(kv[0]))))
    if t in ("array", "set", "replies"):
        # RESP3 gives pairs as two-element arrays: those sort as elements.
        if pairs and len(r[1]) % 2 == 0 and not all(x[0] == "array" for x in r[1]):
            items = _pairs(r[1])
            items.sort(key=lambda p: _sort_key(p[0]))
            return (t, tuple(x for p in items for x in p))
        return (t, tuple(sorted(r[1], key=_sort_key)))
    return r


def mask(r, fields):
    """Replaces the value of the named fields: map entries, flat key/value
    arrays, and `field=value` / `field:value` items inside text replies."""
    t = r[0]
    if t == "map":
        return ("map", tuple((k, ("masked",) if k[0] in ("bulk", "simple") and k[1] in fields
                              else mask(v, fields)) for k, v in r[1]))
    if t in ("array", "set", "push"):
        items = list(r[1])
        if len(items) % 2 == 0 and all(x[0] in ("bulk", "simple") for x in items[0::2]) \
                and any(x[1] in fields for x in items[0::2]):
            for i in range(0, len(items), 2):
                if items[i][1] in fields:
                    items[i + 1] = ("masked",)
            return (t, tuple(items))
        return (t, tuple(mask(x, fields) for x in items))
    if t in ("bulk", "simple", "verbatim"):
        text = r[-1]
        for f in fields:
            text = re.sub(rb"(^|[\s,])(" + re.escape(f) + rb")([=:])[^\s,]*",
                          rb"\1\2\3*", text)
        return r[:-1] + (text,)
    return r


# --------------------------------------------------------------- servers ---

def _die_with_parent():
    # The servers must not outlive the runner even if it is killed hard.
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, argv_fn, workdir):
        self.name, self.argv_fn, self.workdir = name, argv_fn, workdir
        self.proc, self.port, self.logf = None, None, None

    def start(self):
        last = ""
        for _ in range(3):
            self.port = free_port()
            logpath = os.path.join(self.workdir, self.name + ".log")
            self.logf = open(logpath, "ab")
            self.proc = subprocess.Popen(self.argv_fn(self.port), cwd=self.workdir,
                                         stdin=subprocess.DEVNULL, stdout=self.logf,
                                         stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_parent)
            deadline = time.time() + START_TIMEOUT
            while time.time() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    c = Conn(self.port)
                    c.send(encode_command([b"PING"]))
                    r = c.read()
                    c.close()
                    if r == ("simple", b"PONG"):
                        return
                except (OSError, EOFError, TimeoutError, ValueError):
                    pass
                time.sleep(0.02)
            self.stop()
            with open(logpath, "rb") as f:
                last = f.read()[-2000:].decode("utf-8", "replace")
        raise Fatal("%s did not start answering PING on 127.0.0.1; its output:\n%s"
                    % (self.name, last))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None


# ---------------------------------------------------------------- runner ---

class Target:
    """One server plus the client connections a file has opened on it."""

    def __init__(self, server, proto):
        self.server, self.proto = server, proto
        self.conns = {}
        self.broken = None  # reason, once the server died

    def conn(self, cid):
        c = self.conns.get(cid)
        if c is None:
            c = Conn(self.server.port)
            if self.proto == 3:
                # The HELLO reply names the server and a client id: it is the
                # handshake, not a compared reply (the corpus tests HELLO itself).
                # An error (NOAUTH while requirepass is set) leaves the
                # connection in RESP2 on both servers alike; not fatal.
                c.send(encode_command([b"HELLO", b"3"]))
                c.read()
            self.conns[cid] = c
        return c

    def drop(self, cid):
        c = self.conns.pop(cid, None)
        if c:
            c.close()

    def close_all(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}

    def _lost(self, cid, what):
        self.drop(cid)
        if what == "connection-closed":
            # A crash shows first as a closed connection; give the process
            # a moment to be seen as exited, so the report says which.
            for _ in range(10):
                if not self.server.alive():
                    break
                time.sleep(0.02)
        if not self.server.alive():
            self.broken = "server exited"
            return ("server-exited",)
        if what == "timeout" and not self._answers_ping():
            # A hung server would cost REPLY_TIMEOUT per remaining command.
            self.broken = "server stopped answering"
            return ("server-unresponsive",)
        return (what,)

    def _answers_ping(self):
        try:
            c = Conn(self.server.port)
            try:
                c.sock.settimeout(2.0)
                c.send(encode_command([b"PING"]))
                return c.read() == ("simple", b"PONG")
            finally:
                c.close()
        except (OSError, EOFError, TimeoutError, ValueError):
            return False

    def read_one(self, cid):
        c = self.conns.get(cid)
        if c is None:
            return ("no-connection",)
        try:
            return c.read()
        except TimeoutError:
            return self._lost(cid, "timeout")
        except EOFError:
            return self._lost(cid, "connection-closed")
        except (ValueError, OSError) as e:
            self.drop(cid)
            return ("bad-reply", str(e))

    def do_send(self, cid, data):
        if self.broken:
            return ({"server exited": "server-exited",
                     "server did not start": "server-did-not-start"}
                    .get(self.broken, "server-unresponsive"),)
        try:
            self.conn(cid).send(data)
        except Fatal:
            raise
        except (OSError, EOFError, TimeoutError, ValueError):
            return self._lost(cid, "connection-closed")
        return None

    def command(self, cid, args, nowait=False, nreplies=1):
        err = self.do_send(cid, encode_command(args))
        if err:
            return err
        if nowait:
            self.conns[cid].pending += nreplies
            self._wait_blocked(cid)
            return None
        return self.read_n(cid, nreplies)

    def read_n(self, cid, n):
        if n == 1:
            return self.read_one(cid)
        replies = []
        for _ in range(n):
            r = self.read_one(cid)
            replies.append(r)
            if r[0] in LOST:
                break
        return ("replies", tuple(replies))

    def _wait_blocked(self, cid):
        """After a @nowait command: wait until the server has either
        answered it or counts as many blocked clients as there are commands
        waiting (INFO clients, as Redis's own tests do), so that the next
        command, sent on another connection, cannot overtake it.  A server
        without that INFO field costs BLOCK_WAIT, then the run goes on."""
        waiting = sum(1 for c in self.conns.values() if c.pending and not c.has_unread())
        deadline = time.time() + BLOCK_WAIT
        while time.time() < deadline:
            c = self.conns.get(cid)
            if c is None or c.has_unread():
                return
            try:
                admin = Conn(self.server.port)
                try:
                    admin.send(encode_command([b"INFO", b"clients"]))
                    info = admin.read()
                finally:
                    admin.close()
            except (OSError, EOFError, TimeoutError, ValueError):
                return
            m = re.search(rb"blocked_clients:(\d+)", info[-1] if info[0] in
                          ("bulk", "verbatim") else b"")
            if m and int(m.group(1)) >= waiting:
                return
            time.sleep(0.005)

    def scan(self, cid, args):
        """Runs a SCAN-family command to completion; the union of elements."""
        idx = 1 if args[0].upper() == b"SCAN" else 2
        pairs = args[0].upper() in (b"HSCAN", b"ZSCAN")
        args = list(args)
        seen = set()
        for _ in range(MAX_SCAN_CALLS):
            r = self.command(cid, args)
            if r[0] != "array" or len(r[1]) != 2 or r[1][0][0] != "bulk" \
                    or r[1][1][0] != "array":
                return r
            items = r[1][1][1]
            if pairs:
                seen.update(_pairs(items))
            else:
                seen.update((x,) for x in items)
            cursor = r[1][0][1]
            if cursor == b"0":
                flat = tuple(x for p in sorted(seen, key=lambda p: _sort_key(p[0])) for x in p)
                return ("scan", ("array", flat))
            args[idx] = cursor
        return ("scan-did-not-end",)

    def raw(self, cid, data, n):
        err = self.do_send(cid, data)
        if err:
            return err
        if n == 0:
            time.sleep(0.05)
            c = self.conns.get(cid)
            if c is None or not c.has_unread():
                return ("no-reply",)
            return ("unexpected-reply", self.read_one(cid))
        return self.read_n(cid, n)

    def closed(self, cid):
        c = self.conns.get(cid)
        if c is None:
            return ("closed",)
        if c.wait_closed():
            self.drop(cid)
            return ("closed",)
        return ("still-open",)

    def read_pending(self, cid, n):
        c = self.conns.get(cid)
        if c is None:
            return ("no-connection",)
        c.pending = max(0, c.pending - n)
        return self.read_n(cid, n)

    def desync(self, cid):
        c = self.conns.get(cid)
        return c is not None and c.pending == 0 and c.has_unread()


def run_file(path, family, proto, targets, record, warn):
    """Runs one corpus file in one protocol on every target (lockstep).
    record(step, client, replies) is called once per compared step; warn(text)
    reports trouble that is not a compared reply."""
    steps = [s for s in parse_corpus(path) if proto in s.protos]
    for t in targets:
        t.close_all()
        r = t.command(1, [b"FLUSHALL"])
        if r != ("simple", b"OK"):
            # Not fatal: the file still runs and its replies are compared.
            warn("%s: FLUSHALL before %s (RESP%d) answered %s"
                 % (t.server.name, family, proto, render(r)))
    cid = 1
    for st in steps:
        if st.kind == "client":
            cid = st.value
            continue
        if st.kind == "sleep":
            time.sleep(st.value / 1000.0)
            continue
        if st.kind == "disconnect":
            for t in targets:
                t.drop(cid)
            continue
        replies = []
        for t in targets:
            if st.kind == "cmd":
                if "scan" in st.mods:
                    r = t.scan(cid, st.args)
                else:
                    r = t.command(cid, st.args, nowait="nowait" in st.mods,
                                  nreplies=int(st.mods.get("replies", 1)))
                    if r is None:
                        r = ("sent",)   # its reply is compared at @read
            elif st.kind == "raw":
                r = t.raw(cid, st.args[0], st.nreplies)
            elif st.kind == "read":
                r = t.read_pending(cid, int(st.mods.get("replies", 1)))
            elif st.kind == "closed":
                r = t.closed(cid)
            if t.desync(cid):
                r = ("desync-after", r)
                t.drop(cid)
            replies.append((r, normalise(r, st.mods)))
        if any(r != ("sent",) for r, _ in replies):
            record(st, cid, replies)
    for t in targets:
        # A final round trip on every connection: a reply still in flight
        # means a desync that no single step noticed.
        for c_id in list(t.conns):
            c = t.conns[c_id]
            if c.pending:
                continue
            want = ("bulk", b"end-of-file-sentinel")
            r = t.command(c_id, [b"ECHO", want[1]])
            if r != want:
                replies = [(r, r) if u is t else (want, want) for u in targets]
                record(Step("eof", 0, "(end of file: ECHO sentinel)"), c_id, replies)
        t.close_all()


def family_files(corpus, only):
    files = sorted(f for f in os.listdir(corpus) if f.endswith(".txt"))
    fams = [f[:-4] for f in files]
    if only:
        wanted = set(only.split(","))
        unknown = wanted - set(fams)
        if unknown:
            raise CorpusError("unknown family: %s (have: %s)"
                              % (", ".join(sorted(unknown)), ", ".join(fams)))
        fams = [f for f in fams if f in wanted]
    return fams


class Recorder:
    """Counts and keeps what one family's steps gave, per protocol: a reply
    compared with the reference (a difference is kept with both replies), or
    with --reference-only, a transcript and the replies that were lost."""

    def __init__(self, famrep, fam, proto, reference_only, problems):
        self.famrep, self.fam, self.proto = famrep, fam, proto
        self.reference_only, self.problems = reference_only, problems
        self.transcript = []

    def __call__(self, st, cid, replies):
        self.famrep["commands"] += 1
        ref_raw, ref_norm = replies[0]
        if self.reference_only:
            self._reference(st, cid, ref_raw, ref_norm)
            return
        got_raw, got_norm = replies[1]
        if ref_norm == got_norm:
            self.famrep["identical"] += 1
            return
        self.famrep["differing"] += 1
        normalised = ref_norm is not ref_raw or got_norm is not got_raw
        self.famrep["differences"].append({
            "line": st.lineno, "proto": self.proto, "client": cid, "command": st.text,
            "redis": clip(render(ref_raw)), "inferkv": clip(render(got_raw)),
            "normalised": {"redis": clip(render(ref_norm)), "inferkv": clip(render(got_norm))}
            if normalised else None})

    def _reference(self, st, cid, raw, norm):
        self.transcript.append("%d [c%d] %s\n    %s" % (st.lineno, cid, st.text, render(raw)))
        if norm is not raw:
            self.transcript.append("    compared as: %s" % render(norm))
        lost = raw[0] in LOST + ("desync-after", "scan-did-not-end", "unexpected-reply") or \
            (raw[0] == "replies" and any(x[0] in LOST for x in raw[1]))
        # A connection the step itself expects to lose is no problem.
        expected = st.kind == "closed" or (st.kind == "raw" and raw[0] == "connection-closed")
        if lost and not expected:
            self.problems.append("%s.txt:%d RESP%d: %s -> %s"
                                 % (self.fam, st.lineno, self.proto, st.text, render(raw)))
        self.famrep["identical"] += not lost
        self.famrep["differing"] += lost


def run_family(opts, fam, proto, servers, famrep, problems):
    """Starts the servers, runs one file in one protocol, stops them.
    Returns the Recorder; raises Fatal when the run must stop."""
    rec = Recorder(famrep, fam, proto, opts.reference_only, problems)
    targets = []
    try:
        not_started = set()
        for s in servers:
            try:
                s.start()
            except Fatal as e:
                # The reference must start; a server under test that does
                # not start fails every command of the file.
                if s is servers[0] or not opts.keep_going:
                    raise
                problems.append("%s RESP%d: %s" % (fam, proto, e))
                not_started.add(s.name)
        targets = [Target(s, proto) for s in servers]
        for t in targets:
            if t.server.name in not_started:
                t.broken = "server did not start"
        try:
            run_file(os.path.join(opts.corpus, fam + ".txt"), fam, proto, targets, rec,
                     problems.append)
        except Fatal as e:
            problems.append("%s RESP%d: %s" % (fam, proto, e))
            if not opts.keep_going:
                raise
        dead = [s.name for s in servers if not s.alive() and s.name not in not_started]
        if dead:
            problems.append("%s RESP%d: %s exited during the file" % (fam, proto, ", ".join(dead)))
            if not opts.keep_going:
                raise Fatal("%s exited (use --keep-going to go on)" % ", ".join(dead))
    finally:
        for t in targets:
            t.close_all()
        for s in servers:
            s.stop()
    return rec


def summary_text(opts, report, protos):
    tot, stopped = report["totals"], report["stopped"]
    lines = []
    head = "reference check (redis-server alone)" if opts.reference_only else \
        "conformance: %s vs redis-server" % opts.server
    lines.append(head + ", protocols " + "+".join("RESP%d" % p for p in protos))
    if stopped:
        lines.append("INCOMPLETE RUN (%s): the numbers below cover only what ran" % stopped)
    lines.append("%-16s %8s %10s %10s" % ("family", "commands", "identical", "differing"))
    for fam, fr in report["families"].items():
        lines.append("%-16s %8d %10d %10d" % (fam, fr["commands"], fr["identical"], fr["differing"]))
    lines.append("%-16s %8d %10d %10d" % ("total", tot["commands"], tot["identical"],
                                          tot["differing"]))
    by_cmd = {}
    for fam, fr in report["families"].items():
        for d in fr["differences"][:opts.show]:
            lines.append("")
            lines.append("%s.txt:%d RESP%d [c%d] %s" % (fam, d["line"], d["proto"], d["client"],
                                                       d["command"]))
            # What was compared; the raw replies are in report.json.
            shown = d["normalised"] or d
            lines.append("  redis:   " + shown["redis"][:400])
            lines.append("  inferkv: " + shown["inferkv"][:400])
        if len(fr["differences"]) > opts.show:
            lines.append("  ... %d more differences in %s (see report.json)"
                         % (len(fr["differences"]) - opts.show, fam))
        for d in fr["differences"]:
            words = d["command"].split()
            name = words[0].upper() if words and not words[0].startswith("@") else d["command"][:12]
            by_cmd[name] = by_cmd.get(name, 0) + 1
    if by_cmd:
        top = sorted(by_cmd.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
        lines.append("")
        lines.append("differing checks by command: " + ", ".join("%s %d" % kv for kv in top) +
                     (", ..." if len(by_cmd) > 20 else ""))
    for p in report["problems"]:
        lines.append("problem: " + p)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="run only these families (comma separated)")
    ap.add_argument("--reference-only", action="store_true",
                    help="run against redis-server alone, to validate the corpus")
    build = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
    ap.add_argument("--server", default=os.path.join(build, "inferkv-server"),
                    help="server under test (default: build/inferkv-server)")
    ap.add_argument("--redis", default="redis-server", help="reference redis-server")
    ap.add_argument("--keep-going", action="store_true",
                    help="after a server crash, restart it and go on with the next file")
    ap.add_argument("--proto", choices=("2", "3", "both"), default="both")
    ap.add_argument("--corpus", default=CORPUS, help="corpus directory (default: corpus/)")
    ap.add_argument("--show", type=int, default=5,
                    help="differences shown per family in the summary")
    opts = ap.parse_args()

    try:
        fams = family_files(opts.corpus, opts.only)
        for fam in fams:
            parse_corpus(os.path.join(opts.corpus, fam + ".txt"))
    except CorpusError as e:
        print("corpus error: %s" % e, file=sys.stderr)
        return 2
    if not shutil.which(opts.redis):
        print("reference %s not found (scripts/deps.sh installs redis-server)" % opts.redis,
              file=sys.stderr)
        return 2
    if not opts.reference_only and not os.access(opts.server, os.X_OK):
        print("server under test %s does not exist (build it with `make`); "
              "use --reference-only to check the corpus alone" % opts.server, file=sys.stderr)
        return 2
    protos = (2, 3) if opts.proto == "both" else (int(opts.proto),)

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    workdir = tempfile.mkdtemp(prefix="inferkv-conformance-")
    servers = [Server("redis-server", lambda p: [opts.redis, "--port", str(p), "--bind",
                                                 "127.0.0.1", "--save", "", "--appendonly", "no",
                                                 "--daemonize", "no"], workdir)]
    if not opts.reference_only:
        server = os.path.abspath(opts.server)
        servers.append(Server("inferkv-server",
                              lambda p: [server, "--port", str(p), "--bind", "127.0.0.1"],
                              workdir))
    refdir = os.path.join(OUT, "reference")
    os.makedirs(refdir if opts.reference_only else OUT, exist_ok=True)

    report = {"reference": "redis-server", "server": None if opts.reference_only else opts.server,
              "protocols": list(protos), "families": {}}
    problems = []
    stopped = None   # why the run ended before the last file, if it did
    status = 0
    try:
        for fam in fams:
            famrep = report["families"].setdefault(
                fam, {"commands": 0, "identical": 0, "differing": 0, "differences": []})
            for proto in protos:
                rec = run_family(opts, fam, proto, servers, famrep, problems)
                if opts.reference_only:
                    with open(os.path.join(refdir, "%s.resp%d.txt" % (fam, proto)), "w") as f:
                        f.write("\n".join(rec.transcript) + "\n")
    except Fatal as e:
        print("fatal: %s" % e, file=sys.stderr)
        stopped = "fatal: %s" % e
        status = 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        stopped = "interrupted"
        status = 130
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    tot = {"commands": 0, "identical": 0, "differing": 0}
    for fr in report["families"].values():
        for k in tot:
            tot[k] += fr[k]
    report.update(totals=tot, problems=problems, complete=stopped is None, stopped=stopped)
    with open(os.path.join(OUT, "reference.json" if opts.reference_only else "report.json"),
              "w") as f:
        json.dump(report, f, indent=1)
    text = summary_text(opts, report, protos)
    with open(os.path.join(OUT, "reference-summary.txt" if opts.reference_only
                           else "summary.txt"), "w") as f:
        f.write(text)
    sys.stdout.write(text)
    if tot["differing"] or problems:
        status = status or 1
    return status


if __name__ == "__main__":
    sys.exit(main())
