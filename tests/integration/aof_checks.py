"""aof_checks.py - reading Redis 7 multi-part AOF directories for
test_persist_aof.py: the manifest, the RESP commands of an incr (or RESP
base) file with their byte offsets, and what a command means for the
"deterministic forms" checks (absolute deadlines, explicit stream ids, no
blocking or random commands).  Not named test_*: tests/run_all.sh runs
those as suites.

The manifest (Redis 7.0, aof.c) is one line per file:

    file appendonly.aof.1.base.rdb seq 1 type b
    file appendonly.aof.1.incr.aof seq 1 type i

type b is the base (an RDB file when aof-use-rdb-preamble is yes, else
RESP), i an incr file (RESP), h a history file waiting to be deleted.
"""
import os
import re


# ------------------------------------------------------------------ manifest

def read_manifest(aofdir, appendfilename="appendonly.aof"):
    """[{'file': name, 'seq': int, 'type': 'b'|'h'|'i'}] in file order;
    raises AssertionError on a line that is not `file X seq N type T`."""
    path = os.path.join(aofdir, appendfilename + ".manifest")
    out = []
    with open(path, "rb") as f:
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) % 2 or len(parts) < 6:
            raise AssertionError("manifest line %r: not key/value pairs" % line)
        kv = dict(zip(parts[0::2], parts[1::2]))
        if set(kv) < {"file", "seq", "type"} or kv["type"] not in ("b", "h", "i") or not kv["seq"].isdigit():
            raise AssertionError("manifest line %r: wants `file <name> seq <n> type <b|h|i>`" % line)
        out.append({"file": kv["file"].strip('"'), "seq": int(kv["seq"]), "type": kv["type"]})
    return out


def manifest_parts(aofdir, appendfilename="appendonly.aof"):
    """(base entry or None, [incr entries], [history entries])."""
    m = read_manifest(aofdir, appendfilename)
    bases = [e for e in m if e["type"] == "b"]
    if len(bases) > 1:
        raise AssertionError("manifest with %d bases: %r" % (len(bases), m))
    return (bases[0] if bases else None, [e for e in m if e["type"] == "i"], [e for e in m if e["type"] == "h"])


def name_re(appendfilename, kind):
    """The file names Redis 7.0 gives: NAME.SEQ.base.rdb|aof, NAME.SEQ.incr.aof."""
    suffix = r"base\.(rdb|aof)" if kind == "b" else r"incr\.aof"
    return re.compile(r"^%s\.(\d+)\.%s$" % (re.escape(appendfilename), suffix))


# ------------------------------------------------------------------ RESP files

class AofError(Exception):
    """kind is 'truncated' (the data ends inside a command) or 'format'
    (a byte that RESP does not allow there); offset is where the command
    it concerns starts."""

    def __init__(self, kind, offset, what):
        super().__init__("%s at offset %d: %s" % (kind, offset, what))
        self.kind, self.offset = kind, offset


def parse_commands(data):
    """[(start, end, [arg bytes...])] of a RESP AOF file, as Redis's loader
    reads it (annotation lines '#...' skipped)."""
    out = []
    i, n = 0, len(data)
    while i < n:
        start = i
        if data[i:i + 1] == b"#":
            j = data.find(b"\n", i)
            if j < 0:
                raise AofError("truncated", start, "annotation without its newline")
            i = j + 1
            continue
        if data[i:i + 1] != b"*":
            raise AofError("format", start, "expected '*', got %r" % data[i:i + 1])
        j = data.find(b"\r\n", i)
        if j < 0:
            raise AofError("truncated", start, "multibulk length")
        try:
            argc = int(data[i + 1:j])
        except ValueError:
            raise AofError("format", start, "multibulk length %r" % data[i + 1:j])
        if argc < 1:
            raise AofError("format", start, "multibulk length %d" % argc)
        i = j + 2
        args = []
        for _ in range(argc):
            if i >= n:
                raise AofError("truncated", start, "argument missing")
            if data[i:i + 1] != b"$":
                raise AofError("format", start, "expected '$' at %d, got %r" % (i, data[i:i + 1]))
            j = data.find(b"\r\n", i)
            if j < 0:
                raise AofError("truncated", start, "bulk length")
            try:
                ln = int(data[i + 1:j])
            except ValueError:
                raise AofError("format", start, "bulk length %r" % data[i + 1:j])
            i = j + 2
            if i + ln + 2 > n:
                raise AofError("truncated", start, "bulk data")
            if data[i + ln:i + ln + 2] != b"\r\n":
                raise AofError("format", start, "bulk without CRLF at %d" % (i + ln))
            args.append(data[i:i + ln])
            i += ln + 2
        out.append((start, i, args))
    return out


def command_ends(data):
    """The offsets where a complete command ends (0 included)."""
    return [0] + [e for _, e, _ in parse_commands(data)]


def with_db(cmds):
    """[(db, NAME, args)] - NAME upper case, db tracked through SELECT."""
    db, out = 0, []
    for _, _, args in cmds:
        name = args[0].upper()
        if name == b"SELECT":
            db = int(args[1])
        out.append((db, name, args))
    return out


# ------------------------------------------------------------------ meanings

RELATIVE_TTL_COMMANDS = {b"EXPIRE", b"PEXPIRE", b"SETEX", b"PSETEX"}
BLOCKING_COMMANDS = {b"BLPOP", b"BRPOP", b"BLMOVE", b"BRPOPLPUSH", b"BLMPOP", b"BZPOPMIN", b"BZPOPMAX",
                     b"BZMPOP", b"XREAD", b"XREADGROUP", b"WAIT"}
RANDOM_COMMANDS = {b"SPOP", b"SRANDMEMBER", b"RANDOMKEY", b"INCRBYFLOAT", b"HINCRBYFLOAT"}
STREAM_ID = re.compile(rb"^\d+-\d+$")


def relative_ttl(name, args):
    """Why a written command carries a relative time, or None."""
    if name in RELATIVE_TTL_COMMANDS:
        return "%s is relative" % name.decode()
    if name in (b"SET", b"GETEX"):
        first_opt = 3 if name == b"SET" else 2
        for a in args[first_opt:]:
            if a.upper() in (b"EX", b"PX"):
                return "%s with %s" % (name.decode(), a.decode())
    if name == b"RESTORE" and args[2] != b"0" and b"ABSTTL" not in [a.upper() for a in args[4:]]:
        return "RESTORE with a relative ttl"
    return None


def deadline_written(name, args):
    """(key, ms deadline) when the command sets an absolute deadline,
    (key, None) when it removes one (PERSIST, SET without KEEPTTL), else None."""
    up = [a.upper() for a in args]
    if name in (b"PEXPIREAT", b"EXPIREAT"):
        t = int(args[2])
        return args[1], t if name == b"PEXPIREAT" else t * 1000
    if name in (b"SET", b"GETEX"):
        opts = up[3:] if name == b"SET" else up[2:]
        base = 3 if name == b"SET" else 2
        for i, o in enumerate(opts):
            if o == b"PXAT":
                return args[1], int(args[base + i + 1])
            if o == b"EXAT":
                return args[1], int(args[base + i + 1]) * 1000
            if o == b"PERSIST":
                return args[1], None
        if name == b"SET" and b"KEEPTTL" not in opts:
            return args[1], None
        return None
    if name == b"PERSIST":
        return args[1], None
    if name == b"RESTORE" and b"ABSTTL" in up[4:]:
        t = int(args[2])
        return args[1], t if t else None
    return None


def xadd_id(args):
    """The id argument of an XADD (after NOMKSTREAM / MAXLEN|MINID [=|~] n [LIMIT c])."""
    i = 2
    while i < len(args):
        a = args[i].upper()
        if a == b"NOMKSTREAM":
            i += 1
        elif a in (b"MAXLEN", b"MINID"):
            i += 1
            if args[i] in (b"=", b"~"):
                i += 1
            i += 1
        elif a == b"LIMIT":
            i += 2
        else:
            return args[i]
    return None


def show(args, width=110):
    """A command as one short line, for the report."""
    s = " ".join(a.decode(errors="replace") if len(a) < 40 else a[:37].decode(errors="replace") + "..."
                 for a in args)
    return s if len(s) <= width else s[:width - 3] + "..."
