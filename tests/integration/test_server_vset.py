"""test_server_vset.py - vector sets (VADD, VSIM, ... VRANGE) in a real
inferkv-server.

libvcmd implements the commands once for the server and the module; this
suite checks what the server adds around them and what a client sees.  The
checks that hold on both hosts are in vset_checks.py (run here against
inferkv-server, and by test_module_vset.py against redis-server with
inferkv.so): every command's reply shapes in RESP2 and RESP3 (raw replies,
so a map is told from an array and a double from a bulk string), the
'vectorset' type in the keyspace commands (TYPE, RENAME, COPY as a deep
copy, MOVE, SWAPDB, EXPIRE, SCAN TYPE, OBJECT, MEMORY USAGE), memory
accounting and eviction, WATCH, keyspace notifications, COMMAND metadata,
error paths, and 50 clients adding, searching and removing at once against
a model.  Here only: the vset-* configuration.
INFERKV_SERVER overrides the server binary (for a sanitizer build); the
server's log must end without a sanitizer report either way.
"""
import contextlib
import os
import sys

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
import vset_checks  # noqa: E402
from server_harness import Server, Tally, check, eq  # noqa: E402
from vset_checks import CRASH_MARKERS, crash_report, raw_client  # noqa: E402

if os.environ.get("INFERKV_SERVER"):
    server_harness.SERVER = os.path.abspath(os.environ["INFERKV_SERVER"])


class VsetServer(Server):
    """An inferkv-server as vset_checks' host, with what differs from
    redis-server + inferkv.so:"""

    resp3_redis8_doubles = True  # RESP3 doubles printed as Redis 8 prints them
    acl_category = "@vectorset"
    command_module = "vectorset"  # as Redis 8 lists them: the thirteen alone
    module_also_lists = ()
    scripting = False  # no EVAL
    log_markers = ("Sanitizer",) + CRASH_MARKERS

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=60, **kw)

    def raw(self, proto=2):
        return raw_client(self.port, proto)

    def log_text(self):
        if self.log.closed:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        return super().log_text()

    def check_clean(self):
        """No sanitizer report or crash in the log, a clean exit status."""
        log = self.log_text()
        bad = crash_report(log, self.log_markers) is not None or self.proc.returncode not in (0, None)
        if bad:
            print(log[-6000:])
        check(not bad, "exit status %r, sanitizer report or crash in the log" % self.proc.returncode)

    @contextlib.contextmanager
    def fresh(self, *opts):
        """Another inferkv-server with opts, checked at its stop."""
        with VsetServer(*opts) as srv:
            yield srv
        srv.check_clean()


def vset_config(srv):
    """CONFIG GET / SET know Redis 8's vset-force-single-threaded-execution."""
    c = srv.raw(2)
    eq(c.call("CONFIG", "GET", "vset-force-single-threaded-execution"),
       ("*", [("$", b"vset-force-single-threaded-execution"), ("$", b"no")]), "CONFIG GET")
    eq(c.call("CONFIG", "SET", "vset-force-single-threaded-execution", "yes"), ("+", "OK"), "CONFIG SET")
    c.call("CONFIG", "SET", "vset-force-single-threaded-execution", "no")
    c.close()


def main():
    t = Tally()
    with VsetServer() as srv:
        for fn in vset_checks.COMMANDS + (vset_config,) + vset_checks.KEYSPACE + vset_checks.CONCURRENCY:
            t.run(fn, srv)
        if not srv.alive():
            print("  FAIL server died")
            t.failed += 1

    def server_log_clean():
        srv.check_clean()
    t.run(server_log_clean)
    t.done()


if __name__ == "__main__":
    main()
