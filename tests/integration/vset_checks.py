"""vset_checks.py - the vector-set checks that hold on both hosts, written
once: inferkv-server (test_server_vset.py) and Debian's redis-server 7.0.15
with build/inferkv.so (test_module_vset.py).  libvcmd implements VADD ...
VRANGE once for both; these checks see them as a client does.  Not named
test_*: tests/run_all.sh runs those as suites.

Each check takes a host object (each suite defines its own):

  host.client(**kw)    a redis-py client (db=... and the like in kw)
  host.raw(proto)      a server_harness.RawClient after HELLO proto
  host.fresh(*opts)    a context manager: another host of the same kind
                       started with these extra server options, stopped
                       afterwards, failing the check on a crash or a
                       sanitizer report in its log

and the few expectations that differ between the hosts:

  host.resp3_redis8_doubles  RESP3 doubles have Redis 8's digits (as in
                             RESP2, where libvcmd prints them); False where
                             the host prints them itself (Redis 7.0: %.17g,
                             the same value)
  host.acl_category          the commands' ACL category in COMMAND INFO, or
                             None where the host gives module commands none
                             (Redis 7.0 has no module API for it)
  host.command_module        the module COMMAND LIST FILTERBY MODULE names
  host.module_also_lists     what else that module lists (lower case); ()
                             when it lists exactly the thirteen commands
  host.scripting             EVAL runs V* commands (Lua)

COMMANDS, KEYSPACE and CONCURRENCY group the checks in the order the
suites run them; each suite runs its host's own checks in between.
"""
import os
import random
import struct
import threading
import time

import redis

from server_harness import RawClient, check, eq, err_of

CLIENTS = 50
OPS_PER_CLIENT = int(os.environ.get("INFERKV_VSET_OPS", "120"))
BIG_SET = int(os.environ.get("INFERKV_VSET_BIG", "20000"))
WRONG = "WRONGTYPE Operation against a key holding the wrong kind of value"
BAD_VEC = "ERR invalid vector specification"
# what a server log must not hold (a sanitizer report, UB, Redis's crash log)
CRASH_MARKERS = ("ERROR: AddressSanitizer", "WARNING: ThreadSanitizer", "runtime error:", "crashed by signal")


# ------------------------------------------------------------------ helpers

def fp32(vec):
    return struct.pack("<%df" % len(vec), *vec)


def values(vec):
    return ["VALUES", len(vec)] + ["%r" % float(x) for x in vec]


def rand_vec(rng, dim):
    return [rng.uniform(-1, 1) for _ in range(dim)]


def info_int(r, section, field):
    return int(r.info(section)[field])


def raw_client(port, proto=2, timeout=60):
    """A RawClient that has said HELLO proto (and checked the answer)."""
    c = RawClient(port, timeout=timeout)
    t, _ = c.call("HELLO", proto)
    eq(t, "%" if proto == 3 else "*", "HELLO %d" % proto)
    return c


def err_text(reply):
    check(reply[0] == "-", "expected an error, got %r" % (reply,))
    return reply[1]


def flat(reply):
    """A RESP3 map as the RESP2 flat array it becomes, for comparisons."""
    t, v = reply
    if t == "%":
        return [x for pair in v for x in pair]
    return v


def drain(p, wait):
    """The data of every message a pubsub gets until it waits `wait` s in vain."""
    got = []
    while True:
        m = p.get_message(timeout=wait)
        if m is None:
            return got
        got.append(m["data"])


def crash_report(log, markers=CRASH_MARKERS):
    """The first of markers found in a server log, or None."""
    return next((m for m in markers if m in log), None)


def redis8_double(d):
    """Redis 8's d2string: integers within +-LLONG_MAX/2 (as a double: 2^62,
    double2ll's bound) as integers, else the shortest round-trip digits
    (Python's repr has the same digits), laid out as fpconv does: plain
    when the exponent is moderate, else d.ddde+-X."""
    from decimal import Decimal
    if d == 0:
        return "-0" if str(d).startswith("-") else "0"
    if d == int(d) and abs(d) <= 2 ** 62:
        return "%d" % int(d)
    sign, digits, k = Decimal(repr(d)).as_tuple()
    digits = list(digits)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        k += 1
    ds = "".join(map(str, digits))
    n = len(ds)
    e = k + n - 1
    out = "-" if sign else ""
    if k >= 0 and abs(e) < n + 7:
        return out + ds + "0" * k
    if k < 0 and (k > -7 or abs(e) < 4):
        before = n + k
        if before <= 0:
            return out + "0." + "0" * -before + ds
        return out + ds[:before] + "." + ds[before:]
    return out + ds[0] + ("." + ds[1:] if n > 1 else "") + "e" + ("-" if e < 0 else "+") + str(abs(e))


# ------------------------------------------------------------- commands

def vadd_values_and_fp32_forms(host):
    """redis-py's execute_command with VALUES 384 floats and with an FP32
    little-endian blob both add; the stored vector comes back close to what
    went in (Q8) or exactly (NOQUANT), in either form."""
    r = host.client()
    rng = random.Random(1)
    a, b = rand_vec(rng, 384), rand_vec(rng, 384)
    eq(r.execute_command("VADD", "v384", "VALUES", 384, *a, "a"), 1, "VADD VALUES 384")
    eq(r.execute_command("VADD", "v384", "FP32", fp32(b), "b"), 1, "VADD FP32 blob")
    eq(r.execute_command("VADD", "v384", "FP32", fp32(b), "b"), 0, "VADD of an existing element")
    eq(r.execute_command("VDIM", "v384"), 384, "VDIM")
    eq(r.execute_command("VCARD", "v384"), 2, "VCARD")
    for name, vec in (("a", a), ("b", b)):
        got = [float(x) for x in r.execute_command("VEMB", "v384", name)]
        eq(len(got), 384, "VEMB length")
        worst = max(abs(x - y) for x, y in zip(got, vec))
        check(worst < 0.02, "Q8 VEMB of %s off by %g" % (name, worst))
    top = r.execute_command("VSIM", "v384", "FP32", fp32(a), "COUNT", 1)
    eq(top, [b"a"], "VSIM by FP32 finds the vector itself")
    top = r.execute_command("VSIM", "v384", "VALUES", 384, *b, "COUNT", 1)
    eq(top, [b"b"], "VSIM by VALUES finds the vector itself")
    eq(r.execute_command("VADD", "n384", "FP32", fp32(a), "a", "NOQUANT"), 1, "VADD NOQUANT")
    got = [float(x) for x in r.execute_command("VEMB", "n384", "a")]
    worst = max(abs(x - y) / max(1e-6, abs(y)) for x, y in zip(got, a))
    check(worst < 1e-5, "NOQUANT VEMB off by %g (relative)" % worst)
    r.delete("v384", "n384")


def reply_shapes_resp2_and_resp3(host):
    """Every command's reply, raw, in both protocols: booleans are :1/:0 in
    RESP2 and #t/#f in RESP3, maps are flat arrays in RESP2, doubles are
    bulk strings with Redis 8's digits in RESP2 and ',' in RESP3 (Redis 8's
    digits where host.resp3_redis8_doubles, else the host's, the same
    value), nulls are $-1 / *-1 / _."""
    resp2_scores = {}
    for proto in (2, 3):
        c = host.raw(proto)
        k = "shape%d" % proto
        c.call("DEL", k)
        t = (lambda b: ("#", b)) if proto == 3 else (lambda b: (":", int(b)))
        null, null_arr = (("_", None), ("_", None)) if proto == 3 else (("$", None), ("*", None))
        dbl = "," if proto == 3 else "$"
        redis8_digits = proto == 2 or host.resp3_redis8_doubles
        eq(c.call("VADD", k, *values([1, 0, 0]), "a"), t(True), "VADD new")
        eq(c.call("VADD", k, *values([1, 0, 0]), "a"), t(False), "VADD existing")
        eq(c.call("VADD", k, *values([0.5, 0.5, 0]), "c", "SETATTR", '{"n":3}'), t(True), "VADD SETATTR")
        eq(c.call("VADD", k, *values([0, 1, 0]), "b"), t(True), "VADD b")
        eq(c.call("VCARD", k), (":", 3), "VCARD")
        eq(c.call("VDIM", k), (":", 3), "VDIM")
        eq(c.call("VCARD", "nokey"), (":", 0), "VCARD of a missing key")
        eq(c.call("VSIM", k, *values([1, 0, 0])),
           ("*", [("$", b"a"), ("$", b"c"), ("$", b"b")]), "VSIM plain")
        # [1, 0, 0] scores 1 (a itself), 0.85 and 0.5; [1, 0, 0.25] none integral
        for query in ([1, 0, 0], [1, 0, 0.25]):
            ws = c.call("VSIM", k, *values(query), "WITHSCORES")
            eq(ws[0], "%" if proto == 3 else "*", "VSIM WITHSCORES container")
            items = flat(ws)
            eq(items[0::2], [("$", b"a"), ("$", b"c"), ("$", b"b")], "VSIM WITHSCORES names")
            for (_, name), (kind, text) in zip(items[0::2], items[1::2]):
                eq(kind, dbl, "score type")
                s = text if isinstance(text, str) else text.decode()
                f = float(s)
                check(0 <= f <= 1, "score %s in [0, 1]" % s)
                if redis8_digits:
                    # Redis 8's doubles: integral ones as integers, others
                    # with the shortest digits that round-trip (Python's
                    # repr agrees for values in this range)
                    check(s == ("%d" % f if f == int(f) else repr(f)), "score %r is not shortest" % s)
                    eq(s, redis8_double(f), "score digits")
                if proto == 2:
                    resp2_scores[tuple(query), name] = f
                else:
                    eq(f, resp2_scores[tuple(query), name], "RESP3 score equals the RESP2 one")
            if query == [1, 0, 0]:
                eq(items[1][1] in ("1", b"1"), True, "identical vector scores exactly 1")
        wa = c.call("VSIM", k, *values([1, 0, 0]), "WITHATTRIBS")
        eq(flat(wa), [("$", b"a"), null, ("$", b"c"), ("$", b'{"n":3}'), ("$", b"b"), null], "VSIM WITHATTRIBS")
        both = c.call("VSIM", k, *values([1, 0, 0]), "WITHATTRIBS", "WITHSCORES", "COUNT", 2)
        if proto == 3:
            eq(both[0], "%", "RESP3 WITHSCORES WITHATTRIBS is a map")
            (n1, v1), (n2, v2) = both[1]
            eq((n1, v1[0], len(v1[1]), v1[1][0][0], v1[1][1]), (("$", b"a"), "*", 2, ",", null), "a -> [score, null]")
            eq((n2, v2[1][1]), (("$", b"c"), ("$", b'{"n":3}')), "c -> [score, attr]")
        else:
            eq(both[0], "*", "RESP2 triplets")
            v = both[1]
            eq(len(v), 6, "two triplets")
            eq((v[0], v[1][0], v[2], v[3], v[4][0], v[5]),
               (("$", b"a"), "$", null, ("$", b"c"), "$", ("$", b'{"n":3}')), "name, score, attr")
        eq(c.call("VSIM", "nokey", "anything", "goes"), ("*", []), "VSIM of a missing key")
        eq(c.call("VSIM", "nokey", *values([1, 0, 0]), "WITHSCORES"), ("*", []), "VSIM WITHSCORES of a missing key")
        e = c.call("VEMB", k, "a")
        eq((e[0], [x[0] for x in e[1]]), ("*", [dbl] * 3), "VEMB")
        eq([float(x[1]) for x in e[1]], [1.0, 0.0, 0.0], "VEMB values")
        eq(c.call("VEMB", k, "nosuch"), null, "VEMB of a missing element")
        eq(c.call("VEMB", "nokey", "a"), null, "VEMB of a missing key")
        rawrep = c.call("VEMB", k, "c", "RAW")
        eq(rawrep[0], "*", "VEMB RAW")
        eq(len(rawrep[1]), 4, "Q8 VEMB RAW has 4 items")
        eq(rawrep[1][0], ("+", "int8"), "VEMB RAW quantization")
        eq((rawrep[1][1][0], len(rawrep[1][1][1])), ("$", 3), "VEMB RAW bytes")
        eq((rawrep[1][2][0], rawrep[1][3][0]), (dbl, dbl), "VEMB RAW norm and range are doubles")
        info = c.call("VINFO", k)
        eq(info[0], "%" if proto == 3 else "*", "VINFO container")
        fields = flat(info)
        eq(fields[0::2], [("+", n) for n in (
            "quant-type", "hnsw-m", "vector-dim", "projection-input-dim", "size", "max-level",
            "attributes-count", "vset-uid", "hnsw-max-node-uid")], "VINFO keys")
        eq(fields[1], ("+", "int8"), "quant-type")
        eq((fields[3], fields[5], fields[7], fields[9], fields[13]),
           ((":", 16), (":", 3), (":", 0), (":", 3), (":", 1)), "VINFO values")
        eq(c.call("VINFO", "nokey"), null_arr, "VINFO of a missing key")
        links = c.call("VLINKS", k, "a")
        eq(links[0], "*", "VLINKS")
        check(len(links[1]) >= 1 and all(lv[0] == "*" for lv in links[1]), "VLINKS levels %r" % (links,))
        # the neighbour heuristic may keep c alone (b is closer to c than to a)
        names = set(links[1][-1][1])
        check(names and names <= {("$", b"b"), ("$", b"c")}, "level-0 neighbours of a: %r" % names)
        lvl0 = c.call("VLINKS", k, "a", "WITHSCORES")[1][-1]
        eq(lvl0[0], "%" if proto == 3 else "*", "VLINKS WITHSCORES level container")
        check(all(v[0] == dbl for v in flat(lvl0)[1::2]), "VLINKS scores are doubles")
        eq(c.call("VLINKS", k, "nosuch"), null, "VLINKS of a missing element")
        eq(c.call("VSETATTR", k, "a", '{"x":1}'), t(True), "VSETATTR")
        eq(c.call("VSETATTR", k, "nosuch", '{"x":1}'), t(False), "VSETATTR of a missing element")
        eq(c.call("VGETATTR", k, "a"), ("$", b'{"x":1}'), "VGETATTR")
        eq(c.call("VGETATTR", k, "b"), null, "VGETATTR without attributes")
        eq(c.call("VGETATTR", "nokey", "b"), null, "VGETATTR of a missing key")
        eq(c.call("VISMEMBER", k, "a"), t(True), "VISMEMBER")
        eq(c.call("VISMEMBER", k, "zz"), t(False), "VISMEMBER not")
        eq(c.call("VISMEMBER", "nokey", "zz"), t(False), "VISMEMBER of a missing key")
        one = c.call("VRANDMEMBER", k)
        check(one[0] == "$" and one[1] in (b"a", b"b", b"c"), "VRANDMEMBER %r" % (one,))
        many = c.call("VRANDMEMBER", k, 10)
        eq((many[0], sorted(x[1] for x in many[1])), ("*", [b"a", b"b", b"c"]), "VRANDMEMBER 10 (distinct)")
        dup = c.call("VRANDMEMBER", k, -7)
        eq((dup[0], len(dup[1])), ("*", 7), "VRANDMEMBER -7 (with repeats)")
        eq(c.call("VRANDMEMBER", "nokey"), null, "VRANDMEMBER of a missing key")
        eq(c.call("VRANDMEMBER", "nokey", 3), ("*", []), "VRANDMEMBER count of a missing key")
        eq(c.call("VRANGE", k, "-", "+"), ("*", [("$", b"a"), ("$", b"b"), ("$", b"c")]), "VRANGE - +")
        eq(c.call("VRANGE", k, "(a", "+", 1), ("*", [("$", b"b")]), "VRANGE (a + 1")
        eq(c.call("VRANGE", "nokey", "-", "+"), ("*", []), "VRANGE of a missing key")
        eq(c.call("VREM", k, "a"), t(True), "VREM")
        eq(c.call("VREM", k, "a"), t(False), "VREM again")
        eq(c.call("VREM", "nokey", "a"), t(False), "VREM of a missing key")
        eq(c.call("VDIM", "nokey"), ("-", "ERR key does not exist"), "VDIM of a missing key")
        c.call("DEL", k)
        c.close()


def doubles_print_as_redis8(host):
    """VEMB of NOQUANT vectors whose components span 1e-30 .. 1e30: in RESP2
    every double in the reply reads back and is printed as Redis 8 prints
    it."""
    c = host.raw(2)
    c.call("DEL", "dbl")
    rng = random.Random(11)
    for i in range(40):
        vec = [rng.choice([-1, 1]) * rng.uniform(1, 10) * 10 ** rng.randint(-30, 30) for _ in range(8)]
        vec[0] = 10 ** rng.randint(-20, 20)
        eq(c.call("VADD", "dbl", "FP32", fp32(vec), "e%d" % i, "NOQUANT"), (":", 1), "VADD")
        for kind, text in c.call("VEMB", "dbl", "e%d" % i)[1]:
            t = text.decode()
            eq(t, redis8_double(float(t)), "double layout")
    c.call("DEL", "dbl")
    c.close()


def error_paths(host):
    """Malformed vectors, mismatches, unknown options, huge counts, wrong
    types and arity, each with Redis's error text; the set untouched."""
    c = host.raw(2)
    c.call("DEL", "ek", "str")
    c.call("SET", "str", "x")
    c.call("VADD", "ek", *values([1, 0, 0]), "a")

    def err(*args):
        return err_text(c.call(*args))

    eq(err("VADD", "ek", *values([1, 0]), "x"), "ERR Vector dimension mismatch - got 2 but set has 3", "dims")
    eq(err("VSIM", "ek", *values([1, 0])), "ERR Vector dimension mismatch - got 2 but set has 3", "VSIM dims")
    eq(err("VADD", "ek", *values([1, 0, 0]), "x", "NOQUANT"),
       "ERR asked quantization mismatch with existing vector set", "quantization mismatch")
    eq(err("VADD", "ek", *values([1, 0, 0]), "x", "M", 32), "ERR asked M value mismatch with existing vector set",
       "M mismatch")
    for what, args in (("NaN component", ("VALUES", 3, 1, "nan", 0)), ("inf component", ("VALUES", 3, 1, "inf", 0)),
                       ("-inf component", ("VALUES", 3, 1, "-inf", 0)),
                       ("component overflowing float", ("VALUES", 3, 1, "1e39", 0)),
                       ("FP32 NaN", ("FP32", struct.pack("<3f", 1, float("nan"), 0))),
                       ("FP32 inf", ("FP32", struct.pack("<3f", 1, float("inf"), 0))),
                       ("FP32 blob of 11 bytes", ("FP32", b"\0" * 11)), ("empty FP32 blob", ("FP32", b"")),
                       ("VALUES count past the end", ("VALUES", 4, 1, 0, 0)),
                       ("negative VALUES count", ("VALUES", -1, 1, 0, 0)),
                       ("huge VALUES count", ("VALUES", 9223372036854775807, 1, 0)),
                       ("non-number component", ("VALUES", 3, 1, "abc", 0)),
                       ("unknown vector format", ("FLOATS", 3, 1, 0, 0))):
        eq(err("VADD", "ek", *args, "x"), BAD_VEC, "VADD %s" % what)
    eq(err("VSIM", "ek", "VALUES", 3, 1, "inf", 0), BAD_VEC, "VSIM inf")
    eq(err("VSIM", "ek", "FP32", b"\0" * 7), BAD_VEC, "VSIM FP32 7 bytes")
    eq(err("VADD", "ek", *values([1, 0, 0]), "x", "BOGUS"), "ERR invalid option after element", "unknown option")
    eq(err("VADD", "ek", *values([1, 0, 0]), "x", "EF"), "ERR invalid option after element", "EF without value")
    eq(err("VADD", "ek", *values([1, 0, 0]), "x", "EF", 0), "ERR invalid EF", "EF 0")
    eq(err("VADD", "ek", *values([1, 0, 0]), "x", "M", 3), "ERR invalid M", "M 3")
    eq(err("VADD", "ek", *values([1, 0, 0])), "ERR wrong number of arguments for 'VADD' command",
       "no element after the vector")
    eq(err("VSIM", "ek", *values([1, 0, 0]), "BOGUS"), "ERR syntax error in VSIM command", "VSIM unknown option")
    eq(err("VSIM", "ek", *values([1, 0, 0]), "COUNT", 0), "ERR invalid COUNT", "VSIM COUNT 0")
    eq(err("VSIM", "ek", *values([1, 0, 0]), "EF", 1000001), "ERR invalid EF", "VSIM EF too large")
    eq(err("VSIM", "ek", "ELE", "nosuch"), "ERR element not found in set", "VSIM ELE missing")
    check(err("VSIM", "ek", *values([1, 0, 0]), "FILTER", ".a ==").startswith("ERR syntax error in FILTER"),
          "bad FILTER")
    e = err("VSIM", "ek", *values([1, 0, 0]), "FILTER", ".a ==\r\n\r\n1 and")
    check(e.startswith("ERR syntax error in FILTER") and "\n" not in e, "bad FILTER, one line: %r" % e)
    eq(c.call("PING"), ("+", "PONG"), "the connection survives a FILTER error with line breaks")
    eq(c.call("VSIM", "ek", *values([1, 0, 0]), "COUNT", 9223372036854775807), ("*", [("$", b"a")]),
       "huge COUNT returns what there is")
    eq(c.call("VRANDMEMBER", "ek", 9223372036854775807), ("*", [("$", b"a")]), "huge VRANDMEMBER count")
    check("out of range" in err("VRANDMEMBER", "ek", -9223372036854775808), "VRANDMEMBER LLONG_MIN")
    eq(err("VRANDMEMBER", "ek", "x"), "ERR COUNT value is not an integer", "VRANDMEMBER count")
    eq(err("VEMB", "ek", "a", "BOGUS"), "ERR invalid option", "VEMB option")
    eq(err("VRANGE", "ek", "a", "+"), "ERR invalid start range format", "VRANGE start")
    eq(err("VRANGE", "ek", "-", "[", 1), "ERR invalid end range format", "VRANGE end")
    eq(err("VRANGE", "ek", "-", "+", "x"), "ERR invalid COUNT value", "VRANGE count")
    for args in (["VADD", "str", *values([1, 0, 0]), "x"], ["VSIM", "str", "ELE", "a"], ["VREM", "str", "a"],
                 ["VCARD", "str"], ["VDIM", "str"], ["VEMB", "str", "a"], ["VLINKS", "str", "a"],
                 ["VINFO", "str"], ["VSETATTR", "str", "a", "{}"], ["VGETATTR", "str", "a"],
                 ["VRANDMEMBER", "str"], ["VISMEMBER", "str", "a"], ["VRANGE", "str", "-", "+"]):
        eq(err(*args), WRONG, "%s against a string" % args[0])
    eq(err("GET", "ek"), WRONG, "GET against a vector set")
    eq(err("LPUSH", "ek", "x"), WRONG, "LPUSH against a vector set")
    for args in (["VADD", "k", "VALUES", "1"], ["VREM", "k"], ["VREM", "k", "a", "b"], ["VSIM", "k", "ELE"],
                 ["VCARD"], ["VDIM", "k", "x"], ["VEMB", "k"], ["VLINKS", "k"], ["VINFO"],
                 ["VSETATTR", "k", "a"], ["VGETATTR", "k"], ["VRANDMEMBER"], ["VISMEMBER", "k"],
                 ["VRANGE", "k", "-"]):
        eq(err(*args), "ERR wrong number of arguments for '%s' command" % args[0], "arity of %s" % args[0])
    eq(c.call("VCARD", "ek"), (":", 1), "the set is untouched by the errors")
    c.call("DEL", "ek", "str")
    c.close()


# ------------------------------------------------------------- keyspace

def type_plumbing(host):
    """The keyspace commands treat a vector set as a value of type
    'vectorset': TYPE, OBJECT, EXISTS, KEYS, SCAN TYPE, RANDOMKEY, DBSIZE,
    DEL/UNLINK, RENAME(NX), COPY (deep), MOVE, SWAPDB, EXPIRE/TTL/PERSIST,
    FLUSHDB/FLUSHALL; UNLINK, DEL and FLUSHALL ASYNC of big sets (on Redis
    freed on its lazy-free thread)."""
    r = host.client()
    r.flushall()
    r.execute_command("VADD", "vs", *values([1, 0]), "a")
    r.execute_command("VADD", "vs", *values([0, 1]), "b")
    r.set("str", "x")
    r.rpush("lst", "x")
    eq(r.type("vs"), b"vectorset", "TYPE")
    eq(r.object("encoding", "vs"), b"raw", "OBJECT ENCODING")
    eq(r.object("refcount", "vs"), 1, "OBJECT REFCOUNT")
    check(r.object("idletime", "vs") >= 0, "OBJECT IDLETIME")
    eq(r.exists("vs"), 1, "EXISTS")
    eq(sorted(r.keys("*")), [b"lst", b"str", b"vs"], "KEYS")
    eq(r.dbsize(), 3, "DBSIZE")
    cursor, found = 0, []
    while True:
        cursor, batch = r.scan(cursor, count=1, _type="vectorset")
        found += batch
        if cursor == 0:
            break
    eq(found, [b"vs"], "SCAN TYPE vectorset")
    seen = {r.randomkey() for _ in range(60)}
    check(b"vs" in seen, "RANDOMKEY picks the vector set too: %r" % seen)
    # RENAME / RENAMENX keep the set (same elements, same TTL)
    r.pexpire("vs", 100000)
    eq(r.rename("vs", "vs2"), True, "RENAME")
    eq((r.exists("vs"), r.execute_command("VCARD", "vs2"), r.type("vs2")), (0, 2, b"vectorset"), "after RENAME")
    check(r.pttl("vs2") > 0, "RENAME keeps the TTL")
    eq(r.renamenx("vs2", "str"), False, "RENAMENX onto an existing key")
    eq(r.renamenx("vs2", "vs"), True, "RENAMENX")
    eq(r.persist("vs"), True, "PERSIST")
    eq(r.ttl("vs"), -1, "TTL after PERSIST")
    # COPY is deep: writes to the copy leave the original alone
    eq(r.copy("vs", "vc"), True, "COPY")
    eq(r.execute_command("VADD", "vc", *values([1, 1]), "c"), 1, "VADD to the copy")
    eq(r.execute_command("VREM", "vc", "a"), 1, "VREM from the copy")
    eq(r.execute_command("VSETATTR", "vc", "b", '{"copy":1}'), 1, "VSETATTR on the copy")
    eq(r.execute_command("VCARD", "vs"), 2, "original VCARD after writes to the copy")
    eq(r.execute_command("VRANGE", "vs", "-", "+"), [b"a", b"b"], "original elements")
    eq(r.execute_command("VGETATTR", "vs", "b"), None, "original attributes")
    eq(r.execute_command("VRANGE", "vc", "-", "+"), [b"b", b"c"], "copy elements")
    eq([float(x) for x in r.execute_command("VEMB", "vs", "a")], [1.0, 0.0], "original vector")
    eq(r.copy("vs", "vc"), False, "COPY onto an existing key")
    eq(r.copy("vs", "vc", replace=True), True, "COPY REPLACE")
    eq(r.execute_command("VRANGE", "vc", "-", "+"), [b"a", b"b"], "replaced copy")
    eq(r.copy("vs", "vcdb", destination_db=2), True, "COPY DB 2")
    r2 = host.client(db=2)
    eq(r2.execute_command("VCARD", "vcdb"), 2, "copy in db 2")
    # MOVE and SWAPDB carry the set
    eq(r.move("vc", 1), True, "MOVE")
    r1 = host.client(db=1)
    eq((r.exists("vc"), r1.execute_command("VCARD", "vc")), (0, 2), "after MOVE")
    eq(r.swapdb(0, 1), True, "SWAPDB")
    eq((r.execute_command("VCARD", "vc"), r1.execute_command("VCARD", "vs")), (2, 2), "after SWAPDB")
    r.swapdb(0, 1)
    # DEL / UNLINK / expiry free it
    eq(r.delete("vs"), 1, "DEL")
    eq(r.execute_command("VCARD", "vs"), 0, "VCARD after DEL")
    r.execute_command("VADD", "vs", *values([1, 0]), "a")
    eq(r.unlink("vs"), 1, "UNLINK")
    r.execute_command("VADD", "vs", *values([1, 0]), "a")
    eq(r.pexpire("vs", 30), True, "PEXPIRE")
    check(0 < r.pttl("vs") <= 30, "PTTL")
    time.sleep(0.1)
    eq((r.exists("vs"), r.execute_command("VISMEMBER", "vs", "a")), (0, 0), "expired")
    r.execute_command("VADD", "vs", *values([1, 0]), "a")
    r1.execute_command("VADD", "other", *values([1, 0]), "a")
    eq(r.flushdb(), True, "FLUSHDB")
    eq((r.dbsize(), r1.dbsize()), (0, 2), "FLUSHDB leaves db 1 (vc, other)")
    eq(r.flushall(), True, "FLUSHALL")
    eq((r1.dbsize(), r2.dbsize()), (0, 0), "FLUSHALL")
    # big sets: UNLINK and FLUSHALL ASYNC (Redis frees them on its lazy-free
    # thread, above its LAZYFREE_THRESHOLD of 64 allocations)
    rng = random.Random(4)
    for key in ("u1", "u2", "u3"):
        p = r.pipeline(transaction=False)
        for i in range(600):
            p.execute_command("VADD", key, "FP32", fp32(rand_vec(rng, 16)), "e%d" % i, "SETATTR", '{"i":%d}' % i)
        p.execute()
    eq(r.unlink("u1"), 1, "UNLINK a 600-element set")
    eq(r.delete("u2"), 1, "DEL a 600-element set")
    eq(r.flushall(asynchronous=True), True, "FLUSHALL ASYNC")
    eq(r.dbsize(), 0, "empty after FLUSHALL ASYNC")


def last_vrem_deletes_the_key(host):
    """The VREM that removes the last element deletes the key (not before);
    a VADD then makes a new set with other settings."""
    r = host.client()
    r.delete("lv")
    for i in range(5):
        r.execute_command("VADD", "lv", *values([i + 1, 1]), "e%d" % i)
    for i in range(4):
        eq(r.execute_command("VREM", "lv", "e%d" % i), 1, "VREM e%d" % i)
        eq(r.exists("lv"), 1, "key lives while elements remain")
    eq(r.execute_command("VREM", "lv", "e4"), 1, "last VREM")
    eq((r.exists("lv"), r.type("lv")), (0, b"none"), "the last VREM deleted the key")
    eq(r.execute_command("VADD", "lv", *values([1, 0, 0]), "x", "BIN"), 1, "a new set with other settings")
    eq(r.execute_command("VINFO", "lv")[1], b"bin", "new quantization")
    r.delete("lv")


def watch_and_multi(host):
    """VADD, VREM and VSETATTR invalidate a WATCH on their key (VREM even
    when the element is missing, as in Redis, where a key opened for
    writing is signalled); reads do not; V* commands queue in MULTI, and
    run from a Lua script where the host has EVAL."""
    r, other = host.client(), host.client()
    r.delete("w")
    r.execute_command("VADD", "w", *values([1, 0]), "a")

    def watched(action):
        with r.pipeline() as p:
            p.watch("w")
            action()
            p.multi()
            p.execute_command("VCARD", "w")
            try:
                return p.execute()
            except redis.WatchError:
                return None

    eq(watched(lambda: other.execute_command("VADD", "w", *values([0, 1]), "b")), None, "WATCH aborted by VADD")
    eq(watched(lambda: other.execute_command("VSETATTR", "w", "b", "{}")), None, "aborted by VSETATTR")
    eq(watched(lambda: other.execute_command("VREM", "w", "missing")), None, "aborted by VREM (no-op)")
    eq(watched(lambda: other.execute_command("VSIM", "w", "ELE", "a")), [2], "VSIM leaves WATCH alone")
    eq(watched(lambda: other.execute_command("VCARD", "w")), [2], "VCARD leaves WATCH alone")
    with r.pipeline() as p:
        p.execute_command("VADD", "w", *values([1, 1]), "c")
        p.execute_command("VCARD", "w")
        p.execute_command("VREM", "w", "a")
        p.execute_command("VRANGE", "w", "-", "+")
        eq(p.execute(), [1, 3, 1, [b"b", b"c"]], "MULTI/EXEC of V* commands")
    if host.scripting:
        eq(r.eval("return redis.call('VCARD', KEYS[1])", 1, "w"), 2, "V* from a Lua script")
    r.delete("w")


def keyspace_notifications(host):
    """'vadd', 'vrem', 'vsetattr' in the module class 'd' (part of 'A'),
    'new' on creation, 'del' (generic) when the last VREM deletes the key -
    the same on both hosts; nothing of class 'd' reaches a subscriber to
    'g' only."""
    r = host.client()
    r.delete("nk")
    r.config_set("notify-keyspace-events", "KEAn")
    p = r.pubsub()
    p.psubscribe("__keyspace@0__:nk")
    eq(p.get_message(timeout=5)["type"], "psubscribe", "psubscribed")
    r.execute_command("VADD", "nk", *values([1, 0]), "a")
    r.execute_command("VADD", "nk", *values([0, 1]), "b")
    r.execute_command("VSETATTR", "nk", "a", '{"x":1}')
    r.execute_command("VREM", "nk", "zz")  # nothing removed: no event
    r.execute_command("VREM", "nk", "a")
    r.execute_command("VREM", "nk", "b")
    eq(drain(p, 0.5), [b"new", b"vadd", b"vadd", b"vsetattr", b"vrem", b"vrem", b"del"], "keyspace events")
    r.config_set("notify-keyspace-events", "Kg")
    r.execute_command("VADD", "nk", *values([1, 0]), "a")
    r.delete("nk")
    eq(drain(p, 0.3), [b"del"], "class g only: DEL but no vadd")
    r.config_set("notify-keyspace-events", "")
    p.close()


# --------------------------------------------------------------- memory

def memory_accounting(host):
    """MEMORY USAGE counts the set and grows with it and its attributes;
    INFO used_memory grows by about MEMORY USAGE with a 20,000-vector set
    (in the module libvset allocates through RedisModule_Alloc) and gives
    it back on DEL."""
    r = host.client()
    r.flushall()
    rng = random.Random(7)
    r.execute_command("VADD", "mu", "FP32", fp32(rand_vec(rng, 32)), "e0")
    first = r.memory_usage("mu")
    check(first > 0, "MEMORY USAGE %r" % first)
    for i in range(1, 200):
        r.execute_command("VADD", "mu", "FP32", fp32(rand_vec(rng, 32)), "e%d" % i)
    more = r.memory_usage("mu")
    check(more > first * 10, "MEMORY USAGE grows: %d then %d" % (first, more))
    for i in range(200):
        r.execute_command("VSETATTR", "mu", "e%d" % i, '{"category":"c%d","year":%d}' % (i, 1900 + i))
    check(r.memory_usage("mu") > more, "MEMORY USAGE grows with attributes")
    r.delete("mu")

    n = BIG_SET
    base = info_int(r, "memory", "used_memory")
    dim = 64
    p = r.pipeline(transaction=False)
    t0 = time.time()
    for i in range(n):
        p.execute_command("VADD", "big", "FP32", fp32(rand_vec(rng, dim)), "element:%d" % i)
        if i % 1000 == 999:
            p.execute()
    p.execute()
    added = time.time() - t0
    eq(r.execute_command("VCARD", "big"), n, "VCARD of the big set")
    full = info_int(r, "memory", "used_memory")
    usage = r.memory_usage("big")
    # stored: 64 int8 + norm/range, names, links at level 0 (2M = 32) ...
    check(full - base > n * 100, "used_memory grew by %d for %d vectors" % (full - base, n))
    check(usage > n * 100, "MEMORY USAGE %d" % usage)
    check(abs((full - base) - usage) < (full - base) * 0.25,
          "MEMORY USAGE %d vs used_memory growth %d" % (usage, full - base))
    eq(r.delete("big"), 1, "DEL big")
    after = info_int(r, "memory", "used_memory")
    check(after - base < (full - base) * 0.05, "used_memory after DEL: base %d, full %d, after %d"
          % (base, full, after))
    print("       %d vectors of %d dims: %.1fs, %d bytes (%.0f per vector), MEMORY USAGE %d"
          % (n, dim, added, full - base, (full - base) / n, usage))


def maxmemory_evicts_vector_sets(host):
    """Vector-set memory counts against maxmemory (on a fresh host): under
    allkeys-lru the sets are evicted, under noeviction VADD (deny-oom)
    answers OOM."""
    with host.fresh("--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru") as s:
        r = s.client()
        rng = random.Random(3)
        for k in range(100):
            p = r.pipeline(transaction=False)
            for i in range(100):
                p.execute_command("VADD", "set%d" % k, "FP32", fp32(rand_vec(rng, 64)), "e%d" % i)
            p.execute()
        evicted = info_int(r, "stats", "evicted_keys")
        check(evicted > 0, "no vector set was evicted")
        check(info_int(r, "memory", "used_memory") < 3 * 1024 * 1024 + 512 * 1024, "used_memory stays near maxmemory")
        check(r.dbsize() < 100, "keys left: %d" % r.dbsize())
        r.config_set("maxmemory-policy", "noeviction")
        e = None
        for k in range(100):
            e = err_of(lambda: [r.execute_command("VADD", "more%d" % k, "FP32", fp32(rand_vec(rng, 64)), "e%d" % i)
                                for i in range(100)])
            if e:
                break
        check(e and e.startswith("OOM command not allowed"), "VADD under noeviction: %r" % e)
        # Reads still work.  A set may hold fewer than 100: eviction may take
        # the set being filled (it is a key like any other) and the rest of
        # its VADDs make it anew, and under noeviction the last set fills
        # until the limit is crossed.
        n = r.execute_command("VCARD", r.randomkey())
        check(1 <= n <= 100, "VCARD of a random key after OOM: %r" % n)


# --------------------------------------------------------- registration

# arity, command flags in Redis's order, key spec flags (Redis 8's)
COMMAND_INFO = {
    "VADD": (-5, ["write", "denyoom", "module"], ["RW", "insert"]),
    "VREM": (3, ["write", "module"], ["RW", "delete"]),
    "VSIM": (-4, ["readonly", "module"], ["RO", "access"]),
    "VDIM": (2, ["readonly", "module", "fast"], ["RO", "access"]),
    "VCARD": (2, ["readonly", "module", "fast"], ["RO", "access"]),
    "VEMB": (-3, ["readonly", "module", "fast"], ["RO", "access"]),
    "VLINKS": (-3, ["readonly", "module", "fast"], ["RO", "access"]),
    "VINFO": (2, ["readonly", "module", "fast"], ["RO", "access"]),
    "VSETATTR": (4, ["write", "module", "fast"], ["RW", "update"]),
    "VGETATTR": (3, ["readonly", "module", "fast"], ["RO", "access"]),
    "VRANDMEMBER": (-2, ["readonly", "module"], ["RO", "access"]),
    "VISMEMBER": (3, ["readonly", "module"], ["RO", "access"]),
    "VRANGE": (-4, ["readonly", "module"], ["RO", "access"]),
}
NAMES = list(COMMAND_INFO)


def command_metadata(host):
    """COMMAND COUNT / LIST / INFO / GETKEYS know the thirteen commands,
    named in upper case as Redis 8 registers them: in both protocols
    COMMAND INFO has Redis 8's arity and flags, firstkey = lastkey = step =
    1, the @vectorset ACL category (where the host gives one) and one key
    spec: RW insert (VADD), RW delete (VREM), RW update (VSETATTR), RO
    access (the readers).  COMMAND LIST FILTERBY MODULE lists them, INFO
    commandstats counts them."""
    c = host.raw(2)
    listed = [n.decode() for _, n in c.call("COMMAND", "LIST")[1]]
    for n in NAMES:
        check(n in listed, "COMMAND LIST lacks %s" % n)
    eq(c.call("COMMAND", "COUNT"), (":", len([n for n in listed if "|" not in n])), "COMMAND COUNT")
    if host.acl_category:
        acl = sorted(n.decode() for _, n in
                     c.call("COMMAND", "LIST", "FILTERBY", "ACLCAT", host.acl_category.lstrip("@"))[1])
        eq(acl, sorted(NAMES), "FILTERBY ACLCAT %s" % host.acl_category)
    mod = sorted(n.decode() for _, n in c.call("COMMAND", "LIST", "FILTERBY", "MODULE", host.command_module)[1])
    if host.module_also_lists:
        check(all(n in mod for n in NAMES) and all(n in mod for n in host.module_also_lists),
              "FILTERBY MODULE %s: %r" % (host.command_module, mod))
    else:
        eq(mod, sorted(NAMES), "FILTERBY MODULE %s" % host.command_module)
    c.close()
    for proto in (2, 3):
        c = host.raw(proto)
        for name, (arity, flags, kflags) in COMMAND_INFO.items():
            e = c.call("COMMAND", "INFO", name.lower())[1][0][1]
            eq((e[0][1], e[1][1], [f[1] for f in e[2][1]], e[3][1], e[4][1], e[5][1], len(e[8][1])),
               (name.encode(), arity, flags, 1, 1, 1, 1), "RESP%d COMMAND INFO %s" % (proto, name))
            if host.acl_category:
                check(("+", host.acl_category) in e[6][1], "ACL categories of %s" % name)
            spec = flat(e[8][1][0])
            spec = dict((k[1].decode(), v) for k, v in zip(spec[0::2], spec[1::2]))
            eq([f[1] for f in spec["flags"][1]], kflags, "%s key spec flags" % name)
        eq(c.call("COMMAND", "GETKEYS", "VADD", "k", "VALUES", "1", "1", "e"), ("*", [("$", b"k")]), "GETKEYS VADD")
        eq(c.call("COMMAND", "GETKEYS", "vsim", "k2", "ELE", "e"), ("*", [("$", b"k2")]), "GETKEYS VSIM")
        c.close()
    c = host.raw(2)
    c.call("VCARD", "x")
    stats = c.call("INFO", "commandstats")[1].decode()
    check("cmdstat_VCARD:calls=" in stats, "INFO commandstats has VCARD")
    c.close()


# ---------------------------------------------------------- concurrency

def fifty_clients_against_a_model(host):
    """50 threads, each on its own connection and its own slice of element
    names, add (new and updates, some with attributes), remove, search and
    test membership on one shared set.  Each thread knows exactly which of
    its names are in the set, so every VISMEMBER it asks must agree; at the
    end VCARD, VRANGE, VISMEMBER and VEMB (the last vector written) agree
    with the union of the models."""
    key = "conc"
    ops = OPS_PER_CLIENT
    host.client().delete(key)
    dim = 16
    models = [dict() for _ in range(CLIENTS)]
    errors = []

    def work(t):
        rng = random.Random(1000 + t)
        r = host.client()
        mine = models[t]
        universe = ["c%d:%d" % (t, i) for i in range(20)]
        try:
            for _ in range(ops):
                op = rng.random()
                name = rng.choice(universe)
                if op < 0.45:
                    v = rand_vec(rng, dim)
                    extra = ["SETATTR", '{"t":%d}' % t] if rng.random() < 0.3 else []
                    got = r.execute_command("VADD", key, "FP32", fp32(v), name, *extra)
                    if got != (0 if name in mine else 1):
                        errors.append("VADD %s answered %r (present: %s)" % (name, got, name in mine))
                    mine[name] = v
                elif op < 0.65:
                    got = r.execute_command("VREM", key, name)
                    if got != (1 if name in mine else 0):
                        errors.append("VREM %s answered %r (present: %s)" % (name, got, name in mine))
                    mine.pop(name, None)
                elif op < 0.85:
                    res = r.execute_command("VSIM", key, "FP32", fp32(rand_vec(rng, dim)), "COUNT", 5,
                                            "WITHSCORES")
                    if len(res) > 10 or len(res) % 2:
                        errors.append("VSIM reply %r" % res[:4])
                    for s in res[1::2]:
                        if not 0 <= float(s) <= 1.0000001:
                            errors.append("VSIM score %r" % s)
                else:
                    got = r.execute_command("VISMEMBER", key, name)
                    if got != (1 if name in mine else 0):
                        errors.append("VISMEMBER %s answered %r (present: %s)" % (name, got, name in mine))
        except Exception as e:  # noqa: BLE001 - reported below; the test must not hang
            errors.append("client %d: %r" % (t, e))
        finally:
            r.connection_pool.disconnect()

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(CLIENTS)]
    t0 = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    check(not any(th.is_alive() for th in threads), "a client hung")
    check(not errors, "%d disagreements, first: %s" % (len(errors), errors[:3]))
    r = host.client()
    want = sorted(n.encode() for m in models for n in m)
    eq(r.execute_command("VCARD", key), len(want), "VCARD against the models")
    eq(sorted(r.execute_command("VRANGE", key, "-", "+")), want, "VRANGE against the models")
    for t, m in enumerate(models):
        for i in range(20):
            n = "c%d:%d" % (t, i)
            eq(r.execute_command("VISMEMBER", key, n), 1 if n in m else 0, "VISMEMBER %s" % n)
        for n, v in m.items():
            got = [float(x) for x in r.execute_command("VEMB", key, n)]
            check(max(abs(x - y) for x, y in zip(got, v)) < 0.02, "VEMB %s is the last vector written" % n)
    # every element still finds itself: the graph survived the churn
    for n in random.Random(5).sample(want, min(40, len(want))):
        eq(r.execute_command("VSIM", key, "ELE", n, "COUNT", 1), [n], "VSIM ELE %s finds itself" % n)
    print("       %d clients x %d operations in %.1fs, %d elements left"
          % (CLIENTS, ops, time.time() - t0, len(want)))
    r.delete(key)


COMMANDS = (command_metadata, vadd_values_and_fp32_forms, reply_shapes_resp2_and_resp3, doubles_print_as_redis8,
            error_paths)
KEYSPACE = (type_plumbing, last_vrem_deletes_the_key, watch_and_multi, keyspace_notifications, memory_accounting,
            maxmemory_evicts_vector_sets)
CONCURRENCY = (fifty_clients_against_a_model,)
