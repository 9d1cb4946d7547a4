#!/usr/bin/python3
"""gen_cmdmeta.py - regenerates src/server/cmdmeta_gen.c from redis-server.

COMMAND INFO must answer exactly as redis-server 7.0.15 does (flags, key
positions, ACL categories, tips, key specs, subcommands).  Those are facts
of the interface, so instead of typing them by hand we ask a local
redis-server for them, in RESP3 (which keeps sets, maps and arrays apart),
and store each command's reply verbatim as RESP3 text.  command.c renders
that text in either protocol (cmdmeta.c).  Only the commands and
subcommands inferkv implements are kept: the names are read from the
command table in src/server/command.c.

Usage (from the repository root):
    /usr/bin/python3 tools/cmdmeta/gen_cmdmeta.py [--redis-server PATH]
Writes src/server/cmdmeta_gen.c; the file is committed, so building does
not need redis-server.
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from server_harness import free_port  # noqa: E402

TABLE_SRC = os.path.join(ROOT, "src", "server", "command.c")
OUT = os.path.join(ROOT, "src", "server", "cmdmeta_gen.c")


def implemented_names():
    """Top-level names and the set of "parent|sub" names in command.c."""
    text = open(TABLE_SRC).read()
    names = re.findall(r'\bCS?\("([a-z][a-z0-9_|-]*)"', text)
    names += re.findall(r'\{"([a-z][a-z0-9_|-]*)", [a-z_]+_cmd', text)
    top, subs = [], set()
    for n in names:
        if "|" in n:
            subs.add(n)
        elif n not in top:
            top.append(n)
    return top, subs


class Resp3:
    """A minimal RESP3 reader that also returns the exact bytes of a reply."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        self.buf += chunk

    def _line(self, pos):
        while True:
            i = self.buf.find(b"\r\n", pos)
            if i >= 0:
                return self.buf[pos:i], i + 2
            self._fill()

    def _parse(self, pos):
        """Returns (value, next_pos).  Aggregates are (kind, [children])."""
        line, pos = self._line(pos)
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return (t.decode(), rest.decode()), pos
        if t == b":":
            return (":", int(rest)), pos
        if t == b"_":
            return ("_", None), pos
        if t == b"$":
            n = int(rest)
            while len(self.buf) < pos + n + 2:
                self._fill()
            return ("$", self.buf[pos:pos + n].decode()), pos + n + 2
        if t in (b"*", b"~", b"%"):
            n = int(rest) * (2 if t == b"%" else 1)
            items = []
            for _ in range(n):
                v, pos = self._parse(pos)
                items.append(v)
            return (t.decode(), items), pos
        raise ValueError("unexpected RESP3 type %r" % line)

    def read(self):
        v, pos = self._parse(0)
        self.buf = self.buf[pos:]
        return v


def encode(v):
    kind, x = v
    if kind in ("+", "-"):
        return "%s%s\r\n" % (kind, x)
    if kind == ":":
        return ":%d\r\n" % x
    if kind == "_":
        return "_\r\n"
    if kind == "$":
        return "$%d\r\n%s\r\n" % (len(x.encode()), x)
    n = len(x) // 2 if kind == "%" else len(x)
    return "%s%d\r\n" % (kind, n) + "".join(encode(c) for c in x)


def command(sock, rd, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    return rd.read()


def c_string(s):
    out = []
    for ch in s:
        if ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch in "\"\\":
            out.append("\\" + ch)
        elif " " <= ch < "\x7f":
            out.append(ch)
        else:
            out.append("\\%03o" % ord(ch))
    return "".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--redis-server", default="redis-server")
    args = ap.parse_args()
    top, subs = implemented_names()
    port = free_port()
    proc = subprocess.Popen([args.redis_server, "--port", str(port), "--save", "",
                             "--appendonly", "no", "--bind", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = None
        for _ in range(100):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                time.sleep(0.05)
        if sock is None:
            sys.exit("redis-server did not start")
        rd = Resp3(sock)
        ver = command(sock, rd, "HELLO", "3")
        info = dict(zip([k[1] for k in ver[1][0::2]], ver[1][1::2]))
        version = info["version"][1]
        if version != "7.0.15":
            print("warning: redis-server is %s, not 7.0.15" % version, file=sys.stderr)
        records = []
        for name in top:
            reply = command(sock, rd, "COMMAND", "INFO", name)
            entry = reply[1][0]
            if entry[0] != "*":
                sys.exit("redis-server does not know %s" % name)
            fields = entry[1]
            kind, sublist = fields[9]
            # Redis lists subcommands in hash-table order, which changes
            # with its per-process hash seed; name order keeps this file stable.
            kept = sorted((s for s in sublist if s[1][0][1] in subs), key=lambda s: s[1][0][1])
            fields[9] = (kind, kept)
            missing = subs & {n for n in subs if n.startswith(name + "|")}
            missing -= {s[1][0][1] for s in fields[9][1]}
            if missing:
                sys.exit("redis-server lacks subcommands %s" % sorted(missing))
            records.append((name, encode(entry)))
    finally:
        proc.terminate()
        proc.wait()

    lines = [
        "/* cmdmeta_gen.c - COMMAND INFO replies of redis-server %s, GENERATED." % version,
        " *",
        " * Do not edit: tools/cmdmeta/gen_cmdmeta.py writes this file from a local",
        " * redis-server's `COMMAND INFO <name>` (RESP3), keeping only the commands",
        " * and subcommands inferkv implements.  cmdmeta.c renders each record in",
        " * RESP2 or RESP3. */",
        '#include "server.h"',
        "",
        "const cmdmeta_record cmdmeta_records[] = {",
    ]
    for name, text in records:
        lines.append('    {"%s",' % name)
        lines.append('     "%s"},' % c_string(text))
    lines.append("};")
    lines.append("")
    lines.append("const size_t cmdmeta_count = sizeof cmdmeta_records / sizeof cmdmeta_records[0];")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s: %d commands, %d subcommands" % (OUT, len(records), len(subs)))


if __name__ == "__main__":
    main()
