"""bench_client.py - what the typed Python client (clients/python) costs over
plain redis-py, for saves and loads of a 10-field model (issue 16).  Run by
bench_client.sh; prints a table and writes bench/out/client.json.

For each server - inferkv-server and Debian's redis-server, both started
here on free loopback ports with persistence off - and each case:

  save         Repository.save(obj), one at a time      vs  r.hset(key, mapping=...)
  load         Repository.get(id), one at a time        vs  r.hgetall(key)
  save, piped  `with client.pipeline()` of BATCH saves  vs  r.pipeline() (MULTI/EXEC) of BATCH HSETs
  load, piped  Repository.get_many(BATCH ids)           vs  r.pipeline(transaction=False) of BATCH HGETALLs

The plain side writes and reads the very bytes the typed side stores (the
model's encoded fields, computed beforehand), and gets the raw hash back
without decoding it: the difference is the typed layer (encoding,
validation, decoding, objects) plus RESP3 parsing.  The two sides alternate
A B A B for ROUNDS rounds so that load from elsewhere on the machine hits
both alike; each figure is the median round.  The issue's target - typed
at most 1.5x plain (ratio = typed time / plain time) - is reported, never
asserted.  Also reported, informational: a save of a model with a Tag and
a Range index (on inferkv a WATCH transaction: two round trips; on Redis
the Lua script: one).

Environment: BENCH_CLIENT_N (records, default 5000), BENCH_CLIENT_ROUNDS
(default 5), BENCH_CLIENT_BATCH (default 100), INFERKV_BUILD.
"""
from __future__ import annotations

import datetime
import enum
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import field
from typing import Annotated, Any, Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import redis  # noqa: E402
from server_harness import LoggedProcess, free_port, stop_process, wait_up  # noqa: E402

import inferkv  # noqa: E402
from inferkv import Model, Range, Tag  # noqa: E402

BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
N = int(os.environ.get("BENCH_CLIENT_N", "5000"))
ROUNDS = int(os.environ.get("BENCH_CLIENT_ROUNDS", "5"))
BATCH = int(os.environ.get("BENCH_CLIENT_BATCH", "100"))
TARGET = 1.5


class Plan(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Account(Model):
    """The benchmark's model: 10 fields of the usual kinds."""

    name: str
    email: str
    age: int
    balance: float
    active: bool
    plan: Plan
    created: datetime.datetime
    tags: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    note: Optional[str] = None


class IndexedAccount(Model):
    name: str
    email: str
    age: Annotated[int, Range()]
    balance: float
    active: bool
    plan: Annotated[Plan, Tag()]
    created: datetime.datetime
    tags: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)
    note: Optional[str] = None


def account(i: int, cls: type = Account) -> Any:
    return cls(id=f"{i:08d}", name=f"user {i}", email=f"user{i}@example.com", age=20 + i % 50,
               balance=i * 1.25, active=bool(i % 2), plan=Plan.PRO if i % 3 else Plan.FREE,
               created=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(seconds=i),
               tags=["a", "b", f"t{i % 7}"], limits={"daily": 100, "monthly": 3000}, note=f"note {i}")


def start(kind: str, tmp: str) -> tuple[LoggedProcess, int]:
    port = free_port()
    if kind == "inferkv":
        cmd = [os.path.join(BUILD, "inferkv-server"), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
               "--appendonly", "no", "--dir", tmp]
    else:
        cmd = [shutil.which("redis-server") or "/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", str(port),
               "--save", "", "--appendonly", "no", "--dir", tmp]
    p = LoggedProcess(cmd, os.path.join(tmp, f"{kind}.log"))

    def ping() -> bool:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())

    if not wait_up(p.proc, ping, errors=(OSError, redis.exceptions.ConnectionError)):
        raise RuntimeError(f"{kind} did not start:\n{p.log_text()}")
    return p, port


def timed(fn: Callable[[], None], ops: int) -> float:
    t0 = time.perf_counter()
    fn()
    return ops / (time.perf_counter() - t0)


def bench_server(kind: str, port: int) -> dict[str, Any]:
    client = inferkv.Client(port=port, max_connections=4)
    plain = redis.Redis(port=port)
    client.execute("FLUSHALL")
    repo = client.schema("bench").register(Account)
    objs = [account(i) for i in range(N)]
    keys = [repo.key(o) for o in objs]
    mappings = [repo.spec.encode(o).set for o in objs]
    ids = [o.id for o in objs]
    batches = [range(i, min(i + BATCH, N)) for i in range(0, N, BATCH)]

    def typed_save() -> None:
        for o in objs:
            repo.save(o)

    def plain_save() -> None:
        for k, m in zip(keys, mappings):
            plain.hset(k, mapping=m)

    def typed_load() -> None:
        for i in ids:
            repo.get(i)

    def plain_load() -> None:
        for k in keys:
            plain.hgetall(k)

    def typed_save_piped() -> None:
        for b in batches:
            with client.pipeline():
                for i in b:
                    repo.save(objs[i])

    def plain_save_piped() -> None:
        for b in batches:
            p = plain.pipeline()
            for i in b:
                p.hset(keys[i], mapping=mappings[i])
            p.execute()

    def typed_load_piped() -> None:
        for b in batches:
            repo.get_many([ids[i] for i in b])

    def plain_load_piped() -> None:
        for b in batches:
            p = plain.pipeline(transaction=False)
            for i in b:
                p.hgetall(keys[i])
            p.execute()

    # the loads must find what the typed side reads back as equal
    typed_save()
    assert repo.get(ids[7]) == objs[7]
    assert plain.hgetall(keys[7]) == mappings[7]
    cases = {
        "save": (typed_save, plain_save),
        "load": (typed_load, plain_load),
        "save_piped": (typed_save_piped, plain_save_piped),
        "load_piped": (typed_load_piped, plain_load_piped),
    }
    out: dict[str, Any] = {"protocol": client.protocol, "atomic_mode": client.atomic_mode}
    for name, (typed, plain_fn) in cases.items():
        t_rates, p_rates = [], []
        typed()  # warm
        plain_fn()
        for _ in range(ROUNDS):
            t_rates.append(timed(typed, N))
            p_rates.append(timed(plain_fn, N))
        t, p = statistics.median(t_rates), statistics.median(p_rates)
        out[name] = {"typed_ops_s": round(t), "plain_ops_s": round(p), "ratio": round(p / t, 3),
                     "typed_rounds": [round(x) for x in t_rates], "plain_rounds": [round(x) for x in p_rates],
                     "within_target": p / t <= TARGET}
    irepo = client.schema("bench").register(IndexedAccount, name="Indexed")
    iobjs = [account(i, IndexedAccount) for i in range(N)]

    def indexed_save() -> None:
        for o in iobjs:
            irepo.save(o)

    indexed_save()
    out["save_indexed"] = {"typed_ops_s": round(statistics.median(timed(indexed_save, N) for _ in range(ROUNDS)))}
    client.execute("FLUSHALL")
    client.close()
    plain.close()
    return out


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="bench-client-")
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "redis_py": redis.__version__,
                    "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg())},
        "config": {"records": N, "rounds": ROUNDS, "batch": BATCH, "target_ratio": TARGET},
        "servers": {},
    }
    procs = []
    try:
        for kind in ("inferkv", "redis"):
            p, port = start(kind, tmp)
            procs.append(p)
            result["servers"][kind] = bench_server(kind, port)
    finally:
        for p in procs:
            stop_process(p.proc)
        shutil.rmtree(tmp, ignore_errors=True)
    result["machine"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"typed client vs plain redis-py, 10-field model, {N} records, median of {ROUNDS} alternating rounds")
    print(f"{'server':8} {'case':12} {'typed ops/s':>12} {'plain ops/s':>12} {'ratio':>6}  (target <= {TARGET})")
    for kind, cases in result["servers"].items():
        for name in ("save", "load", "save_piped", "load_piped"):
            c = cases[name]
            print(f"{kind:8} {name:12} {c['typed_ops_s']:>12} {c['plain_ops_s']:>12} {c['ratio']:>6.2f}"
                  f"  {'ok' if c['within_target'] else 'OVER'}")
        print(f"{kind:8} {'save_indexed':12} {cases['save_indexed']['typed_ops_s']:>12} {'-':>12} {'-':>6}"
              f"  ({cases['atomic_mode']} mode)")
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "client.json"), "w") as f:
        json.dump(result, f, indent=1)
    print("wrote bench/out/client.json")


if __name__ == "__main__":
    if not os.path.exists(os.path.join(BUILD, "inferkv-server")):
        sys.exit(f"no {BUILD}/inferkv-server: run make")
    main()
