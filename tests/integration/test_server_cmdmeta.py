#!/usr/bin/python3
"""test_server_cmdmeta.py - COMMAND INFO / COMMAND / COMMAND LIST match redis-server.

For every command and subcommand inferkv lists, COMMAND INFO must be
identical to redis-server 7.0.15's (flags, key positions, ACL categories,
tips, key specs, subcommands) in RESP2 and RESP3, except that a parent's
subcommand list holds only the subcommands inferkv implements, and that
INFER.* and the vector-set commands (Redis 8's, which 7.0.15 lacks) are
only checked to be well-formed entries of their category.  The
dispatch table (arity, key positions, what GETKEYS answers) must agree with
the metadata too.  Skipped when redis-server is not installed.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_harness import RawClient, Server, Skip, Tally, check, eq, free_port  # noqa: E402


class Redis:
    def __init__(self):
        exe = shutil.which("redis-server")
        if not exe:
            raise Skip("redis-server not installed")
        self.port = free_port()
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                RawClient(self.port).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# Redis 8's vector-set commands (src/server/cmdmeta_vset.c): redis-server
# 7.0.15 has no entry to compare with.
VECTOR_SET_COMMANDS = {"VADD", "VREM", "VSIM", "VDIM", "VCARD", "VEMB", "VLINKS", "VINFO", "VSETATTR",
                       "VGETATTR", "VRANDMEMBER", "VISMEMBER", "VRANGE"}


def strip_unimplemented_subs(entry, ours):
    """Redis's entry with only the subcommands inferkv also lists."""
    t, fields = entry
    t9, subs = fields[9]
    # Redis orders subcommands by its randomly seeded hash table, so the
    # order carries no meaning; compare them sorted by name.
    kept = sorted((s for s in subs if s[1][0][1].decode() in ours), key=lambda s: s[1][0][1])
    return (t, fields[:9] + [(t9, kept)])


def main():
    tally = Tally()
    try:
        redis = Redis()
    except Skip as e:
        print("  SKIP all: %s" % e)
        tally.skipped += 1
        tally.done()
    try:
        with Server() as srv:
            names = [n.decode() for _, n in RawClient(srv.port).call("COMMAND", "LIST")[1]]
            ours = set(names)

            def info_matches_redis(proto):
                a, b = RawClient(srv.port), RawClient(redis.port)
                a.call("HELLO", proto)
                b.call("HELLO", proto)
                for name in names:
                    got = a.call("COMMAND", "INFO", name)
                    if name.startswith("infer."):
                        # redis-server has no INFER.*: ours must still be a
                        # real entry, in the @infer category.
                        check(got[1][0][0] == "*" and b"@infer" in repr(got).encode(),
                              "COMMAND INFO %s (RESP%d): %r" % (name, proto, got))
                        continue
                    if name in VECTOR_SET_COMMANDS:
                        # Redis 8's, not in 7.0.15: a real entry named as
                        # registered, in @vectorset, with one key spec
                        # (test_server_vset.py checks the fields).
                        e = got[1][0]
                        check(e[0] == "*" and e[1][0][1] == name.encode() and b"@vectorset" in repr(got).encode()
                              and len(e[1][8][1]) == 1, "COMMAND INFO %s (RESP%d): %r" % (name, proto, got))
                        continue
                    want = b.call("COMMAND", "INFO", name)
                    want = ("*", [strip_unimplemented_subs(want[1][0], ours)])
                    got = ("*", [strip_unimplemented_subs(got[1][0], ours)])
                    eq(got, want, "COMMAND INFO %s (RESP%d)" % (name, proto))

            def info_matches_redis_resp2():
                info_matches_redis(2)

            def info_matches_redis_resp3():
                info_matches_redis(3)

            def command_lists_every_command_once():
                c = RawClient(srv.port)
                allinfo = c.call("COMMAND")[1]
                top = [e[1][0][1].decode() for e in allinfo]
                eq(len(top), len(set(top)), "duplicates in COMMAND")
                eq(c.call("COMMAND", "COUNT"), (":", len(top)), "COMMAND COUNT")
                eq(sorted(top), sorted(n for n in names if "|" not in n), "COMMAND vs COMMAND LIST")
                for e in allinfo:
                    eq(e, c.call("COMMAND", "INFO", e[1][0][1])[1][0], "COMMAND entry")

            def getkeys_agrees_with_key_positions():
                # Dispatch uses command.c's table; COMMAND INFO shows the
                # generated metadata.  GETKEYS on a sample of fixed-position
                # commands proves the two agree.
                a, b = RawClient(srv.port), RawClient(redis.port)
                for args in (["get", "k"], ["mset", "a", "1", "b", "2"], ["rename", "a", "b"],
                             ["blpop", "a", "b", "0"], ["lmove", "a", "b", "LEFT", "RIGHT"],
                             ["object", "encoding", "k"], ["memory", "usage", "k"],
                             ["object", "nosuch", "k"], ["object", "encoding"], ["config", "get", "x"], ["zrangestore", "d", "s", "0", "1"],
                             ["bitop", "and", "d", "a", "b"], ["lcs", "a", "b"], ["bitfield_ro", "k", "get", "u8", "0"],
                             ["sort", "k", "limit", "0", "1", "store", "d", "store", "e"], ["sort_ro", "k", "store", "d"]):
                    eq(a.call("COMMAND", "GETKEYS", *args), b.call("COMMAND", "GETKEYS", *args),
                       "GETKEYS %s" % args)

            def log_has_no_metadata_warnings():
                text = srv.log_text()
                check("COMMAND INFO" not in text, "startup warned: " + text)

            tally.run(info_matches_redis_resp2)
            tally.run(info_matches_redis_resp3)
            tally.run(command_lists_every_command_once)
            tally.run(getkeys_agrees_with_key_positions)
            tally.run(log_has_no_metadata_warnings)
    finally:
        redis.stop()
    tally.done()


if __name__ == "__main__":
    main()
