"""test_persist_sidecar.py - rdb-sidecar: tamper evidence for dumps and AOF
base files, through a real inferkv-server.

With rdb-sidecar yes every dump and AOF base gets NAME.sidecar (BLAKE2b per
64 KiB block, Reed-Solomon parity: 2 parity blocks per stripe of 16).  At
start a file whose blocks were flipped or zeroed is repaired from parity
when each stripe has at most 2 damaged blocks (the log names the blocks,
and every key comes back equal), and the server refuses to start when a
stripe has more; a damaged sidecar is ignored with a warning; a dump whose
own CRC checks out wins over a disagreeing sidecar.  redis-server 7.0.15
loads a dump with a sidecar beside it unchanged (it ignores the file).
The sidecar library's own cases are tests/unit/test_sidecar.c."""
import os
import random
import shutil
import sys
import tempfile

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import server_harness  # noqa: E402
from server_harness import LoggedProcess, Tally, check, eq, free_port, wait_up  # noqa: E402

if os.environ.get("INFERKV_SERVER"):
    server_harness.SERVER = os.path.abspath(os.environ["INFERKV_SERVER"])
REDIS = shutil.which("redis-server")
BLOCK = 64 * 1024
LIVE = []


class Proc(LoggedProcess):
    def __init__(self, d, *opts, binary=None, expect_up=True):
        self.dir = d
        self.port = free_port()
        cmd = [binary or server_harness.SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", d,
               "--save", ""] + list(opts)
        super().__init__(cmd, os.path.join(d, "server-%d.log" % self.port))
        LIVE.append(self)
        self.up = wait_up(self.proc, lambda: self.client().ping(), 60, redis.exceptions.ConnectionError)
        if expect_up and not self.up:
            log = self.log_text()
            self.stop()
            raise RuntimeError("the server did not start:\n%s" % log[-3000:])

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=60)

    def stop(self, timeout=30):
        self.stop_process(timeout)
        log = self.log_text()
        self.log.close()
        if self in LIVE:
            LIVE.remove(self)
        for mark in ("ERROR: AddressSanitizer", "runtime error:", "Assertion", "Segmentation"):
            if mark in log:
                raise AssertionError("the server reported %r:\n%s" % (mark, log[-3000:]))
        return log


def stop_all():
    for p in list(LIVE):
        try:
            p.stop(5)
        except AssertionError as e:
            print("  after the failure: %s" % e)


def dataset(c, n=3000):
    """About 1.5 MB of incompressible values: some 24 blocks, 2 stripes."""
    rnd = random.Random(5)
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        pipe.set("k:%d" % i, rnd.randbytes(500))
    pipe.rpush("list", *[str(i) for i in range(100)])
    pipe.hset("hash", mapping={"f%d" % i: i for i in range(50)})
    pipe.execute()


def snapshot(c):
    out = {}
    for k in c.scan_iter(count=1000):
        t = c.type(k)
        if t == b"string":
            out[k] = c.get(k)
        elif t == b"list":
            out[k] = c.lrange(k, 0, -1)
        elif t == b"hash":
            out[k] = c.hgetall(k)
    return out


def damage(path, blocks, zero=False):
    with open(path, "r+b") as f:
        for b in blocks:
            f.seek(b * BLOCK + 100)
            if zero:
                f.write(b"\0" * 1000)
            else:
                f.seek(b * BLOCK + 100)
                x = f.read(1)
                f.seek(b * BLOCK + 100)
                f.write(bytes([x[0] ^ 0x5A]))


def saved_dump(opts=()):
    d = tempfile.mkdtemp(prefix="inferkv-sidecar-")
    p = Proc(d, "--rdb-sidecar", "yes", *opts)
    c = p.client()
    dataset(c)
    want = snapshot(c)
    eq(c.save(), True, "SAVE")
    p.stop()
    return d, want


def dump_repaired_from_parity():
    d, want = saved_dump()
    try:
        dump = os.path.join(d, "dump.rdb")
        check(os.path.exists(dump + ".sidecar"), "SAVE with rdb-sidecar yes writes dump.rdb.sidecar beside the dump")
        size = os.path.getsize(dump)
        check(size > 16 * BLOCK, "the dump spans more than one stripe (%d bytes)" % size)
        damage(dump, [1, 5])        # two flipped blocks in stripe 0
        damage(dump, [17], zero=True)  # a zeroed range in stripe 1
        p = Proc(d, "--rdb-sidecar", "yes")
        got = snapshot(p.client())
        log = p.stop()
        eq(len(got), len(want), "after repair every key loads")
        check(got == want, "every value equals what was saved")
        check("repaired from parity" in log and "1, 5, 17" in log,
              "the log names the damaged blocks and says they were repaired: %r" %
              [l for l in log.splitlines() if "sidecar" in l])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def too_much_damage_refused():
    d, _ = saved_dump()
    try:
        dump = os.path.join(d, "dump.rdb")
        damage(dump, [2, 3, 4])  # three in one stripe: parity rebuilds two
        p = Proc(d, "--rdb-sidecar", "yes", expect_up=False)
        log = p.stop()
        check(not p.up, "a stripe with three damaged blocks: the server does not start")
        check(p.proc.returncode not in (None, 0), "it exits with an error (%r)" % p.proc.returncode)
        check("cannot be repaired" in log and "2, 3, 4" in log,
              "the log names the blocks: %r" % log.strip().splitlines()[-1:])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def damaged_sidecar_ignored():
    d, want = saved_dump()
    try:
        side = os.path.join(d, "dump.rdb.sidecar")
        with open(side, "r+b") as f:
            f.seek(40)
            f.write(b"\xff\xff\xff\xff")
        p = Proc(d, "--rdb-sidecar", "yes")
        got = snapshot(p.client())
        log = p.stop()
        check(got == want, "an intact dump with a damaged sidecar loads whole")
        check("not usable" in log, "the log says the sidecar was ignored")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def stale_sidecar_loses_to_crc():
    d, _ = saved_dump()
    try:
        dump = os.path.join(d, "dump.rdb")
        side = dump + ".sidecar"
        old_side = open(side, "rb").read()
        p = Proc(d, "--rdb-sidecar", "yes")
        c = p.client()
        c.set("k:0", b"changed" + b"x" * 493)  # same size, other bytes
        want = snapshot(c)
        c.save()
        p.stop()
        with open(side, "wb") as f:  # put the old sidecar back: stale
            f.write(old_side)
        p = Proc(d, "--rdb-sidecar", "yes")
        got = snapshot(p.client())
        log = p.stop()
        check(got == want, "a dump whose own CRC checks out is loaded as it is, not 'repaired' to old bytes")
        check("stale" in log, "the log says the sidecar is stale")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sidecar_replaced_on_each_save():
    d = tempfile.mkdtemp(prefix="inferkv-sidecar-")
    try:
        p = Proc(d, "--rdb-sidecar", "no")
        c = p.client()
        c.set("a", "1")
        c.save()
        check(not os.path.exists(os.path.join(d, "dump.rdb.sidecar")), "rdb-sidecar no: no sidecar")
        eq(c.config_set("rdb-sidecar", "yes"), True, "CONFIG SET rdb-sidecar yes")
        c.save()
        check(os.path.exists(os.path.join(d, "dump.rdb.sidecar")), "after CONFIG SET: SAVE writes one")
        c.bgsave()
        server_harness.wait_until(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 0, 30)
        check(os.path.exists(os.path.join(d, "dump.rdb.sidecar")), "BGSAVE writes one too")
        eq(c.config_set("rdb-sidecar", "no"), True, "CONFIG SET rdb-sidecar no")
        c.save()
        check(not os.path.exists(os.path.join(d, "dump.rdb.sidecar")),
              "a save with rdb-sidecar no removes the old sidecar (it would be stale)")
        p.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def aof_base_repaired():
    d = tempfile.mkdtemp(prefix="inferkv-sidecar-")
    try:
        p = Proc(d, "--rdb-sidecar", "yes", "--appendonly", "yes")
        c = p.client()
        dataset(c)
        eq(c.bgrewriteaof(), True, "BGREWRITEAOF")
        server_harness.wait_until(lambda: c.info("persistence")["aof_rewrite_in_progress"] == 0 and
                                  c.info("persistence")["aof_rewrites"] == 1, 30)
        c.set("after", "rewrite")
        want = snapshot(c)
        p.stop()
        aofdir = os.path.join(d, "appendonlydir")
        bases = [f for f in os.listdir(aofdir) if ".base." in f and not f.endswith(".sidecar")]
        eq(len(bases), 1, "one base file")
        base = os.path.join(aofdir, bases[0])
        check(os.path.exists(base + ".sidecar"), "the rewritten base has its sidecar (%s.sidecar)" % bases[0])
        check(not [f for f in os.listdir(aofdir) if f.startswith("temp")], "no temp file or sidecar left")
        damage(base, [3, 9])
        p = Proc(d, "--rdb-sidecar", "yes", "--appendonly", "yes")
        got = snapshot(p.client())
        log = p.stop()
        check(got == want, "a damaged AOF base is repaired and the dataset is whole (incr file replayed on top)")
        check("repaired from parity" in log, "the log says so")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def redis_ignores_sidecar():
    if not REDIS:
        return
    d, want = saved_dump()
    try:
        p = Proc(d, "--appendonly", "no", binary=REDIS)
        got = snapshot(p.client())
        p.stop()
        check(got == want, "redis-server 7.0.15 loads a dump with a sidecar beside it: every key equal")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    if not os.path.exists(server_harness.SERVER):
        print("SKIP: %s is not built" % server_harness.SERVER)
        print("0 passed, 0 failed, 1 skipped")
        return
    t = Tally()
    for fn in (dump_repaired_from_parity, too_much_damage_refused, damaged_sidecar_ignored,
               stale_sidecar_loses_to_crc, sidecar_replaced_on_each_save, aof_base_repaired):
        t.run(fn)
        stop_all()
    if REDIS:
        t.run(redis_ignores_sidecar)
        stop_all()
    else:
        t.skip("redis_ignores_sidecar: redis-server not installed (scripts/deps.sh)")
    t.done()


if __name__ == "__main__":
    main()
