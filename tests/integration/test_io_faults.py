"""test_io_faults.py - inferkv-server under I/O faults injected with an
LD_PRELOAD shim of our own (tests/fault/io_shim.c, compiled here): a full
disk and a failing disk under the AOF, short and interrupted system calls
on client sockets, and a peer that resets in the middle of a reply.

Every case checks the same four things as the allocation sweeps: no crash
(or, where Redis's rule is to stop, a clean exit that loses nothing
acknowledged), a clear error to the client, the server still serving, and
no acknowledged write lost - read back after a restart on the same files.

  1. sockets, reads cut to 1 byte and interrupted: a pipeline of 300
     commands and a 100 KB value come back exact;
  2. sockets, writes cut to 7 bytes, interrupted, EAGAIN: a 1 MB value and
     a 5,000-element LRANGE come back exact;
  3. a peer reset after 100 KB of a 2 MB reply: that client is dropped, the
     others are served, and the server's memory is back where it was;
  4. AOF everysec on a full disk (ENOSPC), then on a failing one (EIO): the
     write in flight is kept and acknowledged, later writes are refused
     with -MISCONF, reads go on, INFO says err; once the disk is back the
     kept write goes out and writes are taken again; after a restart every
     acknowledged key is there and the refused one is not;
  5. AOF writes cut in half: nothing lost, the file loads and checks clean;
  6. appendfsync always on a full disk, and with fsync failing: the server
     stops (Redis's rule: it cannot keep its promise) without answering
     the write; after a restart every acknowledged key is there.
Prints "N passed, N failed, N skipped"; exits 1 on failure.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import Closed, RawClient, Server, Tally, check, eq, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIM_SRC = os.path.join(ROOT, "tests", "fault", "io_shim.c")
TMP = tempfile.mkdtemp(prefix="inferkv-iofault-")
SHIM = os.path.join(TMP, "io_shim.so")
CTL = os.path.join(TMP, "faults")


def faults(*lines):
    """Turns the given faults on (none: all off); the shim sees the file's
    new mtime at its next call."""
    tmp = CTL + ".new"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, CTL)
    time.sleep(0.02)  # a distinct mtime even on coarse clocks


class FaultyServer(Server):
    """inferkv-server with the shim preloaded (children only: the test
    itself and its compilers do not get it)."""

    def __init__(self, *args):
        old = {k: os.environ.get(k) for k in ("LD_PRELOAD", "IOFAULT_CTL")}
        os.environ["LD_PRELOAD"] = SHIM
        os.environ["IOFAULT_CTL"] = CTL
        try:
            super().__init__(*args)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def used_memory(rc):
    t, v = rc.call("INFO", "memory")
    for line in v.decode().splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return None


def persistence(rc):
    t, v = rc.call("INFO", "persistence")
    return dict(line.split(":", 1) for line in v.decode().splitlines() if ":" in line)


# --------------------------------------------------------------------------


def test_socket_reads():
    """Reads of 1 byte, every other one interrupted: requests still parse."""
    faults("sockread short", "sockread eintr")
    with FaultyServer() as s:
        rc = RawClient(s.port, timeout=60)
        big = b"v" * 100000
        rc.send_raw(b"".join(RawClient.encode("SET", "k%d" % i, "val%d" % i) for i in range(150)) +
                    b"".join(RawClient.encode("GET", "k%d" % i) for i in range(150)))
        replies = [rc.read() for _ in range(300)]
        eq(replies[:150], [("+", "OK")] * 150, "150 pipelined SETs")
        eq(replies[150:], [("$", b"val%d" % i) for i in range(150)], "150 pipelined GETs")
        eq(rc.call("SET", "big", big), ("+", "OK"), "a 100 KB value read 1 byte at a time")
        eq(rc.call("GET", "big"), ("$", big), "and read back")
        rc.close()
    faults()


def test_socket_writes():
    """Writes of at most 7 bytes, interrupted, or EAGAIN: replies arrive whole."""
    with FaultyServer() as s:
        rc = RawClient(s.port, timeout=120)
        big = os.urandom(1 << 20)
        rc.call("SET", "big", big)
        rc.call("RPUSH", "l", *["item%d" % i for i in range(5000)])
        faults("sockwrite short", "sockwrite eintr", "sockwrite eagain")
        eq(rc.call("GET", "big"), ("$", big), "a 1 MB value through 7-byte, interrupted writes")
        t, v = rc.call("LRANGE", "l", 0, -1)
        eq([x[1] for x in v], [b"item%d" % i for i in range(5000)], "LRANGE of 5,000")
        faults()
        rc.close()


def test_peer_reset():
    """A reset 100 KB into a 2 MB reply drops that client only, and frees
    what its reply held."""
    faults()
    with FaultyServer() as s:
        rc = RawClient(s.port, timeout=60)
        rc.call("SET", "big", b"x" * (2 << 20))
        base = used_memory(rc)
        victim = RawClient(s.port, timeout=10)
        victim.call("PING")
        faults("sockwrite reset 100000")
        victim.send("GET", "big")
        gone = False
        try:
            victim.read()
        except (Closed, OSError):
            gone = True
        faults()
        check(gone or victim.closed_by_peer(), "the reset client is dropped")
        victim.close()
        eq(rc.call("PING"), ("+", "PONG"), "the others are served")
        check(wait_until(lambda: used_memory(rc) <= base + (64 << 10), 10),
              "its reply's memory is freed (used_memory %d, before %d)" % (used_memory(rc), base))
        eq(rc.call("STRLEN", "big"), (":", 2 << 20), "the value is intact")
        rc.close()


def aof_server(d, fsync):
    args = ["--appendonly", "yes", "--appendfsync", fsync, "--aof-use-rdb-preamble", "no"]
    return FaultyServer(*args) if d is None else FaultyServer("--dir", d, *args)


def restart_keys(d, keys):
    """The server restarted on directory d without faults: {key: value}."""
    faults()
    with Server("--dir", d, "--appendonly", "yes") as s:
        rc = RawClient(s.port, timeout=60)
        out = {k: rc.call("GET", k)[1] for k in keys}
        rc.close()
    return out


def aof_disk_fault(kind):
    faults()
    s = aof_server(None, "everysec")
    d = s.dir
    try:
        rc = RawClient(s.port, timeout=60)
        eq(rc.call("SET", "a", "1"), ("+", "OK"), "SET before the fault")
        faults("aof " + kind)
        eq(rc.call("SET", "b", "2"), ("+", "OK"), "the write in flight is acknowledged (kept for the AOF)")
        check(wait_until(lambda: persistence(rc).get("aof_last_write_status") == "err", 5), "INFO: write err")
        t, v = rc.call("SET", "c", "3")
        check(t == "-" and v.startswith("MISCONF"), "later writes refused: %r" % (v,))
        eq(rc.call("GET", "a"), ("$", b"1"), "reads go on")
        faults()
        check(wait_until(lambda: persistence(rc).get("aof_last_write_status") == "ok", 10), "the disk is back")
        eq(rc.call("SET", "d", "4"), ("+", "OK"), "writes taken again")
        rc.send("SHUTDOWN")
        s.proc.wait(10)
        check("Error writing to the AOF file" in s.log_text(), "the log says why")
    finally:
        s.stop()
    got = restart_keys(d, ["a", "b", "c", "d"])
    eq(got, {"a": b"1", "b": b"2", "c": None, "d": b"4"}, "after a restart: every acknowledged key, not the refused")
    shutil.rmtree(d, ignore_errors=True)


def test_aof_enospc():
    """AOF everysec on a full disk."""
    aof_disk_fault("enospc")


def test_aof_eio():
    """AOF everysec on a failing disk."""
    aof_disk_fault("eio")


def test_aof_short_writes():
    """Every AOF write cut in half: nothing lost, the file checks clean."""
    faults("aof short")
    s = aof_server(None, "always")
    d = s.dir
    try:
        rc = RawClient(s.port, timeout=60)
        for i in range(200):
            rc.call("SET", "k%d" % i, "v%d" % i)
        rc.send("SHUTDOWN")
        s.proc.wait(10)
    finally:
        s.stop()
    got = restart_keys(d, ["k%d" % i for i in range(200)])
    eq(got, {"k%d" % i: b"v%d" % i for i in range(200)}, "200 keys written through half writes")
    aofdir = os.path.join(d, "appendonlydir")
    incr = [f for f in os.listdir(aofdir) if f.endswith(".incr.aof")]
    out = subprocess.run([server_harness.SERVER, "--check-aof", os.path.join(aofdir, incr[0])], capture_output=True,
                         text=True)
    check(out.returncode == 0, "inferkv-server --check-aof: %s" % out.stdout.strip().splitlines()[-1:])
    shutil.rmtree(d, ignore_errors=True)


def always_stops(fault):
    faults()
    s = aof_server(None, "always")
    d = s.dir
    try:
        rc = RawClient(s.port, timeout=30)
        for i in range(20):
            eq(rc.call("SET", "k%d" % i, "v%d" % i), ("+", "OK"), "acknowledged before the fault")
        faults(fault)
        answered = True
        try:
            r = rc.call("SET", "lost", "x")
            answered = r == ("+", "OK")
        except (Closed, OSError):
            answered = False
        check(not answered, "the write the disk refused is not acknowledged")
        check(wait_until(lambda: not s.alive(), 10), "the server stops (appendfsync always cannot keep its promise)")
        check("Exiting" in s.log_text(), "the log says why")
    finally:
        s.stop()
    got = restart_keys(d, ["k%d" % i for i in range(20)])
    eq(got, {"k%d" % i: b"v%d" % i for i in range(20)}, "after a restart: every acknowledged key")
    shutil.rmtree(d, ignore_errors=True)


def test_always_enospc():
    """appendfsync always on a full disk: stop, lose nothing acknowledged."""
    always_stops("aof enospc")


def test_always_fsync_eio():
    """appendfsync always with fsync failing: stop, lose nothing acknowledged."""
    always_stops("fsync eio")


def main():
    t = Tally()
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", SHIM, SHIM_SRC, "-ldl", "-lpthread"],
                                capture_output=True).returncode != 0:
        print("SKIP: cannot compile %s" % SHIM_SRC)
        print("0 passed, 0 failed, 1 skipped")
        return
    try:
        for fn in (test_socket_reads, test_socket_writes, test_peer_reset, test_aof_enospc, test_aof_eio,
                   test_aof_short_writes, test_always_enospc, test_always_fsync_eio):
            t.run(fn)
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
