"""test_find.py - reading by id, SCAN, secondary indexes, index creation,
schemas without a global registry."""
from __future__ import annotations

import datetime as dt
import gc
import os
import random
import subprocess
import sys
import threading
import time
import weakref
from typing import Annotated, Any, Optional

import pytest

import inferkv
from inferkv import Model, Range, Tag, between, ge, gt, le, lt, one_of

HERE = os.path.dirname(os.path.abspath(__file__))
UTC = dt.timezone.utc


class Person(Model):
    name: str
    city: Annotated[str, Tag()]
    age: Annotated[int, Range()]
    born: Annotated[Optional[dt.date], Range()] = None
    seen: Annotated[Optional[dt.datetime], Range()] = None
    vip: Annotated[bool, Tag()] = False
    score: Annotated[float, Range()] = 0.0


PEOPLE = [
    Person(id="p1", name="Ann", city="Oslo", age=31, born=dt.date(1993, 1, 5), seen=dt.datetime(2024, 1, 1, tzinfo=UTC),
           vip=True, score=1.5),
    Person(id="p2", name="Bob", city="Oslo", age=45, born=dt.date(1979, 6, 1), seen=dt.datetime(2024, 6, 1, 12),
           score=-2.0),
    Person(id="p3", name="Cy", city="Rome", age=31, born=None, seen=dt.datetime(2023, 12, 31, 23, 0, tzinfo=UTC),
           vip=True),
    Person(id="p4", name="Di", city="Lima", age=18, born=dt.date(2006, 2, 2)),
    Person(id="p5", name="Ed", city="Rome:Centro", age=70, score=1e300),
]


@pytest.fixture
def people(schema: inferkv.Schema) -> inferkv.Repository[Person]:
    repo = schema.register(Person)
    schema.create()
    repo.save_many(PEOPLE)
    return repo


def ids(objs: list[Any]) -> list[str]:
    return [o.id for o in objs]


def test_get_get_many_exists(people: inferkv.Repository[Person]) -> None:
    """By id: the record, None when missing; get_many keeps the order."""
    assert people.get("p2") == PEOPLE[1]
    assert people.get("zz") is None
    assert people.get_many(["p3", "zz", "p1"]) == [PEOPLE[2], None, PEOPLE[0]]
    assert people.exists("p4") and not people.exists("zz")


def test_tag_equality_and_one_of(people: inferkv.Repository[Person]) -> None:
    """Tag lookups: exact values (":" inside a value included), bools, one_of."""
    assert ids(people.find(city="Oslo")) == ["p1", "p2"]
    assert ids(people.find(city="Rome")) == ["p3"]
    assert ids(people.find(city="Rome:Centro")) == ["p5"]
    assert ids(people.find(vip=True)) == ["p1", "p3"]
    assert ids(people.find(city=one_of("Lima", "Rome"))) == ["p3", "p4"]
    assert people.find(city="Paris") == [] and people.find(city=one_of()) == []


def test_ranges_on_numbers_dates_datetimes(people: inferkv.Repository[Person]) -> None:
    """Range lookups with closed, open and one-sided bounds, ordered by the
    value; dates and datetimes (a naive one taken as UTC) compare in time."""
    assert ids(people.find(age=between(18, 31))) == ["p4", "p1", "p3"]
    assert ids(people.find(age=between(18, 31, lo_open=True))) == ["p1", "p3"]
    assert ids(people.find(age=gt(31))) == ["p2", "p5"]
    assert ids(people.find(age=ge(45))) == ["p2", "p5"]
    assert ids(people.find(age=lt(31))) == ["p4"]
    assert ids(people.find(age=le(31))) == ["p4", "p1", "p3"]
    assert ids(people.find(age=31)) == ["p1", "p3"]
    assert ids(people.find(score=gt(1.0))) == ["p1", "p5"]
    assert ids(people.find(born=lt(dt.date(1995, 1, 1)))) == ["p2", "p1"]
    assert ids(people.find(seen=between(dt.datetime(2023, 12, 31, 22, 0, tzinfo=UTC),
                                        dt.datetime(2024, 1, 1, 0, 30)))) == ["p3", "p1"]
    tz = dt.timezone(dt.timedelta(hours=2))
    assert ids(people.find(seen=ge(dt.datetime(2024, 6, 1, 14, 0, tzinfo=tz)))) == ["p2"]


def test_conditions_combine_and_page(people: inferkv.Repository[Person]) -> None:
    """Several conditions intersect (ordered by the first range); limit and
    offset page the result."""
    assert ids(people.find(city="Oslo", age=gt(40))) == ["p2"]
    assert ids(people.find(vip=True, age=31, city="Rome")) == ["p3"]
    assert ids(people.find(age=ge(0), limit=2)) == ["p4", "p1"]
    assert ids(people.find(age=ge(0), limit=2, offset=2)) == ["p3", "p2"]
    assert people.find_ids(age=ge(0), offset=4) == ["p5"]


def test_updates_and_deletes_move_index_entries(people: inferkv.Repository[Person],
                                                client: inferkv.Client) -> None:
    """A save with new values moves the record between tag sets and re-scores
    it; a None removes it from that range; delete removes it everywhere."""
    p = people.get("p1")
    p.city, p.age, p.born = "Rome", 99, None
    people.save(p)
    assert ids(people.find(city="Oslo")) == ["p2"]
    assert ids(people.find(city="Rome")) == ["p1", "p3"]
    assert ids(people.find(age=gt(90))) == ["p1"]
    assert "p1" not in ids(people.find(born=ge(dt.date(1900, 1, 1))))
    assert people.delete("p1") is True and people.delete("p1") is False
    assert people.find(city="Rome") == people.find(city="Rome") and ids(people.find(city="Rome")) == ["p3"]
    assert people.find(age=gt(90)) == [] and people.find(vip=True) == [PEOPLE[2]]
    for key in client.execute("SCAN", 0, "MATCH", "*", "COUNT", 10000)[1]:
        if b"__idx__" in key:
            members = client.execute("SMEMBERS" if client.execute("TYPE", key) == b"set" else "ZRANGE", key,
                                     *(() if client.execute("TYPE", key) == b"set" else (0, -1)))
            assert b"p1" not in members, key


def test_index_stays_exact_under_concurrent_writers(schema: inferkv.Schema, client: inferkv.Client) -> None:
    """6 threads save random values into 20 records at once: afterwards every
    tag set and sorted set holds exactly what the records say (the index is
    written in the same transaction as the record)."""
    repo = schema.register(Person)
    schema.create()

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(40):
            i = rnd.randrange(20)
            repo.save(Person(id=f"x{i}", name="n", city=rnd.choice(["A", "B", "C"]), age=rnd.randrange(5),
                             vip=rnd.random() < 0.5))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = {o.id: o for o in repo.scan()}
    for city in "ABC":
        assert sorted(ids(repo.find(city=city))) == sorted(i for i, o in records.items() if o.city == city)
        raw = client.execute("SMEMBERS", f"{schema.prefix}:__idx__:Person:city:{city}")
        assert sorted(m.decode() for m in raw) == sorted(i for i, o in records.items() if o.city == city)
    for age in range(5):
        assert sorted(ids(repo.find(age=age))) == sorted(i for i, o in records.items() if o.age == age)
    zs = client.execute("ZRANGE", f"{schema.prefix}:__idx__:Person:age", 0, -1, "WITHSCORES")
    pairs = zs.items() if isinstance(zs, dict) else [(m, s) for m, s in zs]
    assert {m.decode(): float(s) for m, s in pairs} == {i: float(o.age) for i, o in records.items()}


def test_stale_index_entry_is_filtered(people: inferkv.Repository[Person], client: inferkv.Client,
                                       schema: inferkv.Schema) -> None:
    """An id the index lists but whose record no longer matches (or is gone)
    is not returned: find() checks every loaded record."""
    client.execute("SADD", f"{schema.prefix}:__idx__:Person:city:Lima", "p1", "ghost")
    assert ids(people.find(city="Lima")) == ["p4"]


def test_find_needs_an_index_and_create(schema: inferkv.Schema) -> None:
    """find() on a field without an index raises (it never scans); before
    schema.create() it raises IndexNotReady."""
    repo = schema.register(Person)
    with pytest.raises(inferkv.IndexNotReady, match="create"):
        repo.find(city="Oslo")
    schema.create()
    with pytest.raises(ValueError, match="not indexed"):
        repo.find(name="Ann")
    with pytest.raises(TypeError, match="Tag"):
        repo.find(city=gt("A"))
    with pytest.raises(ValueError, match="at least one"):
        repo.find()


def test_scan_uses_scan_not_keys(people: inferkv.Repository[Person], client: inferkv.Client,
                                 server: Any) -> None:
    """Review finding "KEYS instead of SCAN": listing records by pattern goes
    through SCAN (redis-server here has KEYS renamed away, and commandstats
    show no KEYS call), and a pattern narrows it; glob characters in a
    prefix are escaped."""
    assert sorted(people.scan_ids()) == ["p1", "p2", "p3", "p4", "p5"]
    assert sorted(people.scan_ids(match="p[12]")) == ["p1", "p2"]
    assert sorted(o.name for o in people.scan(count=2)) == ["Ann", "Bob", "Cy", "Di", "Ed"]
    stats = client.execute("INFO", "commandstats")
    stats = stats.decode() if isinstance(stats, bytes) else str(stats)
    assert "cmdstat_scan:" in stats and "cmdstat_keys:" not in stats
    if server.kind == "redis":
        with pytest.raises(inferkv.UnknownCommand):
            client.execute("KEYS", "*")


def test_create_is_idempotent_and_backfills(schema: inferkv.Schema, client: inferkv.Client) -> None:
    """Records saved before their indexes existed are indexed by create();
    a second create() finds them ready and does nothing; a record with a
    corrupt field is reported (not skipped silently), its good fields are
    indexed, and a find() that reaches it raises DecodeError."""

    class Plain(Model):
        city: str
        age: int

    plain = schema.register(Plain, name="Person2")
    for i in range(30):
        plain.save(Plain(id=f"r{i}", city="Oslo" if i % 2 else "Rome", age=i))
    client.execute("HSET", plain.key("r7"), "age", "seven")

    class Indexed(Model):
        city: Annotated[str, Tag()]
        age: Annotated[int, Range()]

    s2 = client.schema(schema.prefix)
    repo = s2.register(Indexed, name="Person2")
    report = s2.create()
    assert report.models == {"Person2": "built"} and report.indexed == {"Person2": 30}
    assert [e.key for e in report.corrupt] == [plain.key("r7")]
    assert "age" in str(report.corrupt[0])
    assert len(repo.find(city="Rome")) == 15
    with pytest.raises(inferkv.DecodeError, match="r7"):  # its city was indexed; loading it still fails loudly
        repo.find(city="Oslo")
    assert ids(repo.find(age=between(5, 9))) == ["r5", "r6", "r8", "r9"]
    assert s2.create().models == {"Person2": "ready"}


def test_definition_mismatch_raises_until_rebuild(schema: inferkv.Schema, client: inferkv.Client) -> None:
    """Another process version with different indexes: create() and find()
    raise SchemaMismatch (nothing is dropped behind anyone's back) until
    create(rebuild=True) rebuilds the indexes for the new definition."""
    repo = schema.register(Person)
    schema.create()
    repo.save_many(PEOPLE)

    class Person3(Model):
        name: Annotated[str, Tag()]
        city: str
        age: Annotated[int, Range()]

    s2 = client.schema(schema.prefix)
    r2 = s2.register(Person3, name="Person")
    with pytest.raises(inferkv.SchemaMismatch):
        s2.create()
    with pytest.raises(inferkv.SchemaMismatch):
        r2.find(name="Ann")
    s2.create(rebuild=True)
    assert ids(r2.find(name="Ann")) == ["p1"]
    assert client.execute("EXISTS", f"{schema.prefix}:__idx__:Person:city:Oslo") == 0


def test_create_from_many_processes_while_writing(server: Any, client: inferkv.Client) -> None:
    """Review finding "racy index creation from several processes": 300
    records without indexes, then 5 processes run schema.create() at the same
    moment while another saves random values: every create succeeds, and
    the indexes are exactly what the records hold afterwards."""
    prefix = "mp"
    sys.path.insert(0, HERE)
    import index_worker

    class PaintV1(Model):
        color: str
        n: int

    v1 = client.schema(prefix).register(PaintV1, name="Paint")
    v1.save_many([PaintV1(id=f"p{i}", color=index_worker.COLORS[i % 4], n=i) for i in range(300)])
    start = time.time() + 1.5
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    cmd = [sys.executable, os.path.join(HERE, "index_worker.py"), str(server.port), prefix]
    procs = [subprocess.Popen(cmd + ["create", str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
             for _ in range(5)]
    procs.append(subprocess.Popen(cmd + ["write", str(start), "300"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env))
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()
    assert {o.decode().strip() for o, _ in outs[:5]} <= {"built", "ready"}
    repo = client.schema(prefix).register(index_worker.Paint, name="Paint")
    records = {o.id: o for o in repo.scan()}
    assert len(records) == 300
    for color in index_worker.COLORS:
        members = client.execute("SMEMBERS", f"{prefix}:__idx__:Paint:color:{color}")
        assert sorted(m.decode() for m in members) == sorted(i for i, o in records.items() if o.color == color)
    zs = client.execute("ZRANGE", f"{prefix}:__idx__:Paint:n", 0, -1, "WITHSCORES")
    pairs = zs.items() if isinstance(zs, dict) else [(m, s) for m, s in zs]
    assert {m.decode(): float(s) for m, s in pairs} == {i: float(o.n) for i, o in records.items()}


def test_schemas_isolate_and_drop_leaves_nothing(client: inferkv.Client) -> None:
    """Review finding "a global model registry that leaks between tests":
    the same class in two schemas sees only its own records; drop() deletes
    every key of its models (records, indexes, schema records) and nothing
    else, and the repositories refuse further use."""
    client.execute("SET", "unrelated", "1")
    s1, s2 = client.schema("one"), client.schema("two")
    r1, r2 = s1.register(Person), s2.register(Person)
    s1.create()
    s2.create()
    r1.save_many(PEOPLE)
    r2.save(PEOPLE[0])
    assert sorted(r1.scan_ids()) == ["p1", "p2", "p3", "p4", "p5"] and list(r2.scan_ids()) == ["p1"]
    assert ids(r2.find(city="Oslo")) == ["p1"]
    with pytest.raises(ValueError, match="already registered"):
        s1.register(Person)
    n = s1.drop()
    assert n > 5
    assert list(r2.scan_ids()) == ["p1"]
    cursor, keys = client.execute("SCAN", 0, "MATCH", "one:*", "COUNT", 10000)
    assert keys == [] and client.execute("EXISTS", "unrelated") == 1
    with pytest.raises(inferkv.SchemaDropped):
        r1.get("p1")
    with pytest.raises(inferkv.SchemaDropped):
        s1.register(Person)


def test_nothing_global_keeps_a_model_alive(server: Any) -> None:
    """A model class defined, registered, used and dropped inside a function
    is garbage once the function returns: no module-level registry holds it."""

    def use() -> weakref.ref[type]:
        class Ephemeral(Model):
            x: Annotated[int, Tag()]

        c = inferkv.Client(port=server.port)
        s = c.schema("eph")
        r = s.register(Ephemeral)
        s.create()
        r.save(Ephemeral(x=1))
        with c.pipeline():
            r.save(Ephemeral(x=2))
        assert len(r.find(x=1)) == 1
        s.drop()
        c.close()
        return weakref.ref(Ephemeral)

    ref = use()
    gc.collect()
    assert ref() is None


def test_index_creation_errors_are_raised(schema: inferkv.Schema, client: inferkv.Client) -> None:
    """Review finding "errors swallowed during index creation": when the
    server refuses part of create() (here an index key that holds a string),
    create() raises the server's error instead of reporting success, and the
    index is not marked ready."""
    repo = schema.register(Person)
    repo.save(PEOPLE[0])
    client.execute("SET", f"{schema.prefix}:__idx__:Person:age", "not a sorted set")
    with pytest.raises(inferkv.WrongType):
        schema.create()
    with pytest.raises(inferkv.IndexNotReady):
        repo.find(city="Oslo")
