"""test_atomic.py - atomic field updates through the script and through WATCH.

`atomic_client` runs each test three ways: inferkv (no scripting: WATCH),
redis-server with the Lua script, and redis-server forced to WATCH.
"""
from __future__ import annotations

import logging
import threading
from typing import Annotated, Any, Optional

import pytest

import inferkv
from inferkv import Model, Range, Tag


class Doc(Model):
    title: Annotated[str, Tag()]
    n: Annotated[int, Range()] = 0
    level: Annotated[int, Tag()] = 0
    f: Annotated[float, Range()] = 0.0
    words: list[str]
    grid: list[list[int]]
    meta: dict[str, list[Optional[float]]]
    bag: Optional[dict[str, str]] = None
    log: Optional[list[str]] = None
    counts: dict[int, int]


def new_doc() -> Doc:
    return Doc(id="d1", title="t", words=[], grid=[], meta={}, counts={})


TRICKY = ['a"b', "c,d", "[e]", "{f}", "g\\h", "ü€😀", "", "x\ny\t", "]", "\\\""]


def script_of_ops(repo: inferkv.Repository[Doc]) -> list[Any]:
    """One sequence of every operation over awkward values; returns the results."""
    d = repo.save(new_doc())
    out: list[Any] = []
    out.append(repo.incr(d, "n", 5))
    out.append(repo.incr(d, "n", -2))
    out.append(repo.incr(d, "level", 3))
    out.append(repo.incr(d, "f", 0.1))
    out.append(repo.incr(d, "f", 0.2))
    out.append(repo.append(d, "title", "-x,\"y\""))
    out.append(repo.push(d, "words", *TRICKY))
    out.append(repo.push(d, "words", "first", "second", left=True))
    out.append(repo.pop(d, "words"))
    out.append(repo.pop(d, "words", left=True))
    out.append(repo.push(d, "grid", [1, 2], [], [3]))
    out.append(repo.pop(d, "grid", left=True))
    out.append(repo.dict_set(d, "meta", "k,1", [1.5, None]))
    out.append(repo.dict_set(d, "meta", 'q"uote:{', []))
    out.append(repo.dict_set(d, "meta", "k,1", [2.0]))
    out.append(repo.dict_del(d, "meta", 'q"uote:{'))
    out.append(repo.dict_del(d, "meta", "nope"))
    out.append(repo.dict_set(d, "bag", "a", "b"))
    out.append(repo.dict_del(d, "bag", "zz"))
    out.append(repo.pop(d, "log"))
    out.append(repo.push(d, "log", "x"))
    out.append(repo.dict_set(d, "counts", -7, 1))
    out.append(repo.dict_set(d, "counts", 7, 2))
    out.append(repo.pop(d, "grid"))
    out.append(repo.pop(d, "grid"))
    out.append(repo.pop(d, "grid"))
    return out


def dump(client: inferkv.Client) -> dict[bytes, Any]:
    """Every key of the database with its value (sets sorted)."""
    out: dict[bytes, Any] = {}
    cursor: Any = b"0"
    while True:
        cursor, keys = client.execute("SCAN", cursor, "COUNT", 1000)
        for k in keys:
            t = client.execute("TYPE", k)
            if t == b"hash":
                out[k] = client.execute("HGETALL", k)
            elif t == b"set":
                out[k] = sorted(client.execute("SMEMBERS", k))
            elif t == b"zset":
                out[k] = client.execute("ZRANGE", k, 0, -1, "WITHSCORES")
            else:
                out[k] = t
        if cursor in (b"0", 0):
            return out


def test_every_operation_results_and_stored_values(atomic_schema: inferkv.Schema,
                                                   atomic_client: inferkv.Client) -> None:
    """incr (int, float), append, push (both ends), pop (both ends, empty,
    None field), dict set / delete give the documented results, and leave
    the record and its indexes as a fresh save of the final object would."""
    repo = atomic_schema.register(Doc)
    out = script_of_ops(repo)
    assert out[:4] == [5, 3, 3, pytest.approx(0.1)] and out[4] == pytest.approx(0.3)
    assert out[5] == 't-x,"y"'
    assert out[6:10] == [len(TRICKY), len(TRICKY) + 2, TRICKY[-1], "first"]
    assert out[10:12] == [3, [1, 2]]
    assert out[12:19] == [True, True, False, True, False, True, False]
    assert out[19:] == [None, 1, True, True, [3], [], None]
    d = repo.get("d1")
    assert d.words == ["second"] + TRICKY[:-1]
    assert d.meta == {"k,1": [2.0]} and d.bag == {"a": "b"} and d.log == ["x"] and d.counts == {-7: 1, 7: 2}
    assert d.grid == [] and d.n == 3 and d.level == 3 and d.title == 't-x,"y"'
    atomic_schema.create()
    assert [x.id for x in repo.find(title='t-x,"y"')] == ["d1"]
    assert repo.find(title="t") == []
    assert [x.id for x in repo.find(level=3)] == ["d1"] and repo.find(level=0) == []
    assert [x.id for x in repo.find(n=inferkv.between(3, 3))] == ["d1"]
    assert [x.id for x in repo.find(f=inferkv.between(0.29, 0.31))] == ["d1"]


def test_script_and_watch_write_the_same_bytes(redis_server: Any, inferkv_server: Any) -> None:
    """Review finding "separate Lua scripts for a fake Redis that drift": the
    one script (atomic.lua) and the WATCH path (ops.py) run the same
    operations on redis-server, and on inferkv, and every key ends up with
    byte-identical contents and every operation with the same result."""
    runs = []
    for port, atomic in ((redis_server.port, "script"), (redis_server.port, "watch"), (inferkv_server.port, "auto")):
        c = inferkv.Client(port=port, atomic=atomic)
        c.execute("FLUSHALL")
        try:
            out = script_of_ops(c.schema("drift").register(Doc))
            runs.append((atomic, c.atomic_mode, out, dump(c)))
        finally:
            c.execute("FLUSHALL")
            c.close()
    assert [r[1] for r in runs] == ["script", "watch", "watch"]
    _, _, out0, dump0 = runs[0]
    for atomic, _, out, state in runs[1:]:
        assert out == out0, atomic
        assert state == dump0, atomic


def test_concurrent_increments_and_pushes_lose_nothing(atomic_schema: inferkv.Schema,
                                                       atomic_client: inferkv.Client) -> None:
    """8 threads x 25 incr and 4 threads x 20 push on one record: the count
    is exact and every pushed item is there once (no lost update)."""
    repo = atomic_schema.register(Doc)
    repo.save(new_doc())
    errors: list[BaseException] = []

    def incr() -> None:
        try:
            for _ in range(25):
                repo.incr("d1", "n", 1)
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    def push(t: int) -> None:
        try:
            for i in range(20):
                repo.push("d1", "words", f"{t}-{i}")
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=incr) for _ in range(8)] + \
              [threading.Thread(target=push, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    d = repo.get("d1")
    assert d.n == 200
    assert sorted(d.words) == sorted(f"{t}-{i}" for t in range(4) for i in range(20))
    atomic_schema.create()
    assert [x.id for x in repo.find(n=200)] == ["d1"]


def test_update_of_missing_record_raises_and_creates_nothing(atomic_schema: inferkv.Schema,
                                                             atomic_client: inferkv.Client) -> None:
    """An atomic update of a record that does not exist raises RecordNotFound
    (a bare HINCRBY would have made a one-field hash that fails to load)."""
    repo = atomic_schema.register(Doc)
    for call in (lambda: repo.incr("ghost", "n"), lambda: repo.append("ghost", "title", "x"),
                 lambda: repo.push("ghost", "words", "x"), lambda: repo.pop("ghost", "words"),
                 lambda: repo.dict_set("ghost", "meta", "k", [])):
        with pytest.raises(inferkv.RecordNotFound, match="ghost"):
            call()
    assert atomic_client.execute("DBSIZE") == 0


def test_wrong_field_kind_refused_before_sending(atomic_schema: inferkv.Schema) -> None:
    """incr on a str field, push on a dict field, a push item of the wrong
    type: TypeError at the call, nothing sent."""
    repo = atomic_schema.register(Doc)
    repo.save(new_doc())
    with pytest.raises(TypeError):
        repo.incr("d1", "title")
    with pytest.raises(TypeError):
        repo.push("d1", "meta", "x")
    with pytest.raises(TypeError):
        repo.push("d1", "grid", "not a list")
    with pytest.raises(TypeError):
        repo.incr("d1", "n", 0.5)
    with pytest.raises(AttributeError):
        repo.incr("d1", "nope")


def test_corrupt_container_raises_and_is_left_alone(atomic_schema: inferkv.Schema,
                                                    atomic_client: inferkv.Client) -> None:
    """A list field holding something that is not a JSON array raises
    CorruptField (both paths) and is not overwritten."""
    repo = atomic_schema.register(Doc)
    d = repo.save(new_doc())
    for bad in (b"oops", b'{"a":1}', b"[1,,2]"):
        atomic_client.execute("HSET", repo.key(d), "words", bad)
        with pytest.raises(inferkv.CorruptField, match="words"):
            repo.push(d, "words", "x")
        with pytest.raises(inferkv.CorruptField):
            repo.pop(d, "words")
        assert atomic_client.execute("HGET", repo.key(d), "words") == bad


def test_wrongtype_key_raises(atomic_schema: inferkv.Schema, atomic_client: inferkv.Client) -> None:
    """A record key that holds a string: the update raises WrongType, it does
    not report success."""
    repo = atomic_schema.register(Doc)
    atomic_client.execute("SET", repo.key("d1"), "x")
    with pytest.raises(inferkv.WrongType):
        repo.incr("d1", "n")
    with pytest.raises(inferkv.WrongType):
        repo.get("d1")


def test_atomic_mode_detected_once_and_said(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The client asks once (SCRIPT LOAD): redis-server -> "script"; inferkv,
    which has no scripting -> "watch", logged at INFO, not passed over."""
    caplog.set_level(logging.INFO, logger="inferkv")
    c = inferkv.Client(port=server.port)
    try:
        want = "script" if server.kind == "redis" else "watch"
        assert c.atomic_mode == want
        assert c.atomic_mode == want
        said = [r.getMessage() for r in caplog.records if "no scripting" in r.getMessage()]
        assert len(said) == (1 if want == "watch" else 0)
    finally:
        c.close()


def test_forced_script_mode_without_scripting_raises(inferkv_server: Any) -> None:
    """atomic="script" against inferkv raises ScriptingUnavailable at the
    first write that must read first (a save with Tag indexes, an update),
    with the server's "unknown command" in the message; nothing is written."""
    c = inferkv.Client(port=inferkv_server.port, atomic="script")
    try:
        c.execute("FLUSHALL")
        repo = c.schema("f").register(Doc)
        with pytest.raises(inferkv.ScriptingUnavailable, match="unknown command"):
            repo.save(new_doc())
        with pytest.raises(inferkv.ScriptingUnavailable, match="unknown command"):
            repo.incr("d1", "n")
        assert c.execute("DBSIZE") == 0
    finally:
        c.execute("FLUSHALL")
        c.close()


def test_script_refused_by_acl_is_raised_not_skipped(redis_server: Any) -> None:
    """Review finding "errors swallowed during script loading": a user whose
    ACL forbids scripting gets the NOPERM error, not a silent fallback."""
    admin = inferkv.Client(port=redis_server.port)
    admin.execute("ACL", "SETUSER", "noscript", "on", ">pw", "~*", "+@all", "-@scripting")
    c = inferkv.Client(port=redis_server.port, username="noscript", password="pw")
    try:
        with pytest.raises(Exception, match="(?i)noperm|permission"):
            _ = c.atomic_mode
    finally:
        c.close()
        admin.execute("ACL", "DELUSER", "noscript")
        admin.close()


def test_noscript_reloads_the_script(redis_server: Any) -> None:
    """After SCRIPT FLUSH the next update loads the script again (once) and
    succeeds, alone and inside a pipeline."""
    c = inferkv.Client(port=redis_server.port, atomic="script")
    try:
        c.execute("FLUSHALL")
        repo = c.schema("ns").register(Doc)
        repo.save(new_doc())
        assert repo.incr("d1", "n") == 1
        c.execute("SCRIPT", "FLUSH")
        assert repo.incr("d1", "n") == 2
        c.execute("SCRIPT", "FLUSH")
        with c.pipeline() as p:
            a = p.incr(repo, "d1", "n")
            b = p.push(repo, "d1", "words", "w")
        assert (a.value, b.value) == (3, 1)
    finally:
        c.execute("FLUSHALL")
        c.close()


def test_failed_update_leaves_no_watch_on_the_connection(server: Any) -> None:
    """A WATCH-path update that fails after its WATCH (record missing, corrupt
    field) releases the WATCH: with a pool of one connection, a later
    transaction is not aborted by a write another client made to that key."""
    c = inferkv.Client(port=server.port, max_connections=1, atomic="watch")
    other = inferkv.Client(port=server.port)
    try:
        c.execute("FLUSHALL")
        repo = c.schema("w").register(Doc)
        with pytest.raises(inferkv.RecordNotFound):
            repo.incr("d1", "n")
        other.execute("HSET", repo.key("d1"), "n", "1")
        repo.save(new_doc())  # a MULTI/EXEC: it would come back aborted under a stale WATCH
        other.execute("HSET", repo.key("d1"), "words", "junk")
        with pytest.raises(inferkv.CorruptField):
            repo.push("d1", "words", "x")
        other.execute("HSET", repo.key("d1"), "n", "5")
        with c.pipeline() as p:
            p.execute_command("SET", "k", "v")
            p.execute_command("HSET", repo.key("d1"), "title", "u")
        assert p.results == [b"OK", 0]
    finally:
        c.execute("FLUSHALL")
        c.close()
        other.close()


def test_lost_races_end_in_conflict_error() -> None:
    """The WATCH path starts again when EXEC comes back aborted, sleeping a
    little longer each time, and after MAX_WATCH_TRIES raises ConflictError
    (never loops forever, never reports success)."""
    from inferkv import ops

    class Repo:
        spec = inferkv.model.ModelSpec(Doc, "Doc")
        keys = ops.Keyspace("p", "Doc")

    flow = ops.batch_flow([ops.IncrOp(Repo(), "d1", "n", 1)], "watch")  # type: ignore[arg-type]
    req = next(flow)
    sleeps = []
    with pytest.raises(inferkv.ConflictError, match="gave up"):
        while True:
            if isinstance(req, float):
                sleeps.append(req)
                req = flow.send(None)
            elif req[0][0] == b"WATCH":
                req = flow.send([b"OK", 1, [b"3"]])
            else:  # MULTI, HINCRBY, HGET, EXEC -> aborted by a concurrent write
                req = flow.send([b"OK"] + [b"QUEUED"] * (len(req) - 2) + [None])
    assert len(sleeps) == ops.MAX_WATCH_TRIES
