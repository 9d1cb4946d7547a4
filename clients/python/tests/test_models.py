"""test_models.py - typed models: encodings, keys, validation on save and load."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from typing import Annotated, Optional

import pytest

import inferkv
from inferkv import Model, Range, Tag


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass
class Address:
    city: str
    zip: Optional[str] = None
    tags: list[str] = dataclasses.field(default_factory=list)


class Everything(Model):
    name: str
    count: int = 0
    ratio: float = 0.0
    on: bool = False
    data: bytes = b""
    when: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime(2024, 5, 6, 7, 8, 9,
                                                                             tzinfo=dt.timezone.utc))
    day: dt.date = dt.date(2024, 1, 2)
    color: Color = Color.RED
    level: Level = Level.LOW
    uid: uuid.UUID = uuid.UUID(int=7)
    price: decimal.Decimal = decimal.Decimal("1.10")
    items: list[int] = dataclasses.field(default_factory=list)
    nested: list[dict[str, list[Optional[float]]]] = dataclasses.field(default_factory=list)
    counts: dict[int, str] = dataclasses.field(default_factory=dict)
    addr: Optional[Address] = None
    note: Optional[str] = None
    blobs: list[bytes] = dataclasses.field(default_factory=list)
    stamps: list[dt.datetime] = dataclasses.field(default_factory=list)


def full() -> Everything:
    return Everything(
        name="Zoë \"quoted\", [brackets] {braces}", count=-12345678901234567890, ratio=0.1, on=True,
        data=b"\x00\xff\x80binary", when=dt.datetime(2021, 3, 4, 5, 6, 7, 890123), day=dt.date(1999, 12, 31),
        color=Color.BLUE, level=Level.HIGH, uid=uuid.uuid4(), price=decimal.Decimal("-0.000123"),
        items=[1, -2, 3], nested=[{"a": [1.5, None]}, {}], counts={3: "three", -1: "minus"},
        addr=Address("Oslo", None, ["x"]), note="", blobs=[b"\x01\x02", b""],
        stamps=[dt.datetime(2020, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))])


def test_every_field_type_round_trips(schema: inferkv.Schema) -> None:
    """Nested dataclasses, lists, dicts (int keys), datetimes (naive and
    aware), dates, enums (str and int), bytes (not UTF-8), UUID, Decimal,
    Optional and defaults come back equal, with their types."""
    repo = schema.register(Everything)
    for obj in (full(), Everything(name="defaults only")):
        repo.save(obj)
        got = repo.get(obj.id)
        assert got == obj
        assert type(got.level) is Level and type(got.addr) is type(obj.addr)


def test_stored_as_native_strings_and_json_never_pickle(schema: inferkv.Schema, client: inferkv.Client) -> None:
    """Review finding "pickle used for serialisation": every stored value is
    plain text another client reads - native for scalars, compact JSON for
    containers - and only the bytes field holds the raw bytes it was given."""
    repo = schema.register(Everything)
    obj = repo.save(full())
    raw = client.execute("HGETALL", repo.key(obj))
    assert raw[b"count"] == b"-12345678901234567890"
    assert raw[b"ratio"] == b"0.1"
    assert raw[b"on"] == b"1"
    assert raw[b"color"] == b"blue" and raw[b"level"] == b"2"
    assert raw[b"when"] == b"2021-03-04T05:06:07.890123"
    assert raw[b"day"] == b"1999-12-31"
    assert raw[b"data"] == b"\x00\xff\x80binary"
    assert raw[b"items"] == b"[1,-2,3]"
    assert raw[b"counts"] == b'{"3":"three","-1":"minus"}'
    assert json.loads(raw[b"addr"]) == {"city": "Oslo", "zip": None, "tags": ["x"]}
    assert raw[b"name"].decode() == obj.name
    for k, v in raw.items():
        assert not v.startswith(b"\x80"), f"{k!r} looks pickled"
        if k != b"data":
            v.decode("utf-8")  # text, not a binary serialisation


def test_keys_are_prefix_model_id(client: inferkv.Client) -> None:
    """Keys are `prefix:ModelName:id`, the prefix and the name configurable."""

    class Thing(Model):
        x: int

    a = client.schema("shop").register(Thing)
    b = client.schema("other").register(Thing, name="Item")
    t = a.save(Thing(id="42", x=1))
    b.save(Thing(id="42", x=2))
    assert a.key(t) == "shop:Thing:42"
    assert client.execute("HGET", "shop:Thing:42", "x") == b"1"
    assert client.execute("HGET", "other:Item:42", "x") == b"2"
    with pytest.raises(ValueError):
        client.schema("p").register(Thing, name="a:b")
    with pytest.raises(ValueError):
        client.schema("bad prefix")


def test_none_removes_the_field_and_defaults_fill_absent_ones(schema: inferkv.Schema, client: inferkv.Client) -> None:
    """An Optional field set to None is deleted from the hash (not stored as
    "None"); a field absent from the hash loads as its default, so records
    written before a field was added still load."""
    repo = schema.register(Everything)
    obj = repo.save(full())
    obj.note = None
    repo.save(obj)
    assert client.execute("HEXISTS", repo.key(obj), "note") == 0
    client.execute("HDEL", repo.key(obj), "items", "count")
    got = repo.get(obj.id)
    assert got.note is None and got.items == [] and got.count == 0


CORRUPT = [
    ("count", b"12x", "int"),
    ("count", b"012", "canonical"),
    ("ratio", b" 1.5", "float"),
    ("on", b"yes", "bool"),
    ("color", b"green", "Color"),
    ("when", b"yesterday", "isoformat"),
    ("items", b"[1,2", "JSON"),
    ("items", b'[1,"two"]', "[1]"),
    ("addr", b'{"zip":"1"}', "city: missing"),
    ("name", b"\xff\xfe", "utf-8"),
    ("uid", b"not-a-uuid", "UUID"),
    ("price", b"1.2.3", "Decimal"),
]


@pytest.mark.parametrize("field,raw,reason", CORRUPT, ids=[f"{f}={r!r}" for f, r, _ in CORRUPT])
def test_corrupt_field_raises_naming_key_field_reason(schema: inferkv.Schema, client: inferkv.Client, field: str,
                                                      raw: bytes, reason: str) -> None:
    """Review finding "corrupted fields silently set to None on load": a field
    that does not decode raises DecodeError naming the key, the field and
    why (the message and .errors)."""
    repo = schema.register(Everything)
    obj = repo.save(full())
    client.execute("HSET", repo.key(obj), field, raw)
    with pytest.raises(inferkv.DecodeError) as ei:
        repo.get(obj.id)
    e = ei.value
    assert e.key == repo.key(obj) and repo.key(obj) in str(e)
    assert [x.field for x in e.errors] == [field] and field in str(e)
    assert reason.lower() in e.errors[0].reason.lower() or reason.lower() in str(e).lower(), str(e)
    assert e.errors[0].raw == raw


def test_missing_required_field_is_an_error(schema: inferkv.Schema, client: inferkv.Client) -> None:
    """A required field (no default, not Optional) absent from the hash is
    reported as missing, not filled with None."""
    repo = schema.register(Everything)
    obj = repo.save(full())
    client.execute("HDEL", repo.key(obj), "name")
    with pytest.raises(inferkv.DecodeError, match="field 'name': missing"):
        repo.get(obj.id)


def test_safe_load_returns_object_and_failures(schema: inferkv.Schema, client: inferkv.Client) -> None:
    """safe_load gives the object with every good field, an Invalid (raw bytes
    and reason, never None) in each bad one, and the list of failures; saving
    it back before fixing the fields raises EncodeError."""
    repo = schema.register(Everything)
    obj = repo.save(full())
    client.execute("HSET", repo.key(obj), "count", "many", "color", "green")
    loaded = repo.safe_load(obj.id)
    assert sorted(e.field for e in loaded.errors) == ["color", "count"]
    assert isinstance(loaded.obj.count, inferkv.Invalid) and loaded.obj.count.raw == b"many"
    assert loaded.obj.name == obj.name and loaded.obj.items == obj.items
    with pytest.raises(inferkv.EncodeError, match="count"):
        repo.save(loaded.obj)
    loaded.obj.count, loaded.obj.color = 1, Color.RED
    repo.save(loaded.obj)
    assert repo.get(obj.id).count == 1
    assert repo.safe_load("nope") == (None, [])
    assert repo.get("nope") is None


@pytest.mark.parametrize("field,value", [("count", "3"), ("count", True), ("ratio", "0.5"), ("on", 1),
                                         ("items", [1, "2"]), ("when", "2024-01-01"), ("color", "red"),
                                         ("name", None), ("counts", {"x": "y"}), ("ratio", float("nan")),
                                         ("nested", [{"a": [float("inf")]}])])
def test_wrong_value_refused_on_save(schema: inferkv.Schema, client: inferkv.Client, field: str, value: object) -> None:
    """A value that does not fit its annotation raises EncodeError naming the
    field before anything is written (an int field takes no "3" or True, a
    JSON field no infinity)."""
    repo = schema.register(Everything)
    obj = full()
    setattr(obj, field, value)
    if field == "ratio" and value != value:  # NaN is a float: stored natively, refused only inside JSON
        repo.save(obj)
        assert repo.get(obj.id).ratio != repo.get(obj.id).ratio
        return
    with pytest.raises(inferkv.EncodeError, match=field):
        repo.save(obj)
    assert client.execute("EXISTS", repo.key(obj)) == 0


def test_unsupported_annotation_refused_at_register(client: inferkv.Client) -> None:
    """An annotation with no codec (a plain class, a non-Optional union, a
    Tag on a list) is refused when the model is registered - there is no
    fallback such as pickle."""

    class Opaque:
        pass

    class A(Model):
        x: Opaque

    class B(Model):
        x: int | str

    class C(Model):
        x: Annotated[list[str], Tag()]

    class D(Model):
        x: Annotated[str, Range()]

    for cls in (A, B, C, D):
        with pytest.raises(inferkv.UnsupportedFieldType):
            client.schema("u").register(cls)


def test_model_is_a_keyword_dataclass() -> None:
    """Models are dataclasses (keyword-only: required fields may follow
    defaults), with a fresh time-ordered id per object."""

    class M(Model):
        a: int = 1
        b: str

    m1, m2 = M(b="x"), M(b="y")
    assert dataclasses.is_dataclass(m1) and m1.a == 1
    assert m1.id != m2.id and len(m1.id) == 24
    with pytest.raises(TypeError):
        M(1, "x")  # type: ignore[misc]


def test_all_none_record_is_refused(schema: inferkv.Schema) -> None:
    """A record whose every field is None would be an empty hash, which
    Redis cannot hold: saving it raises instead of silently storing nothing."""

    class Sparse(Model):
        a: Optional[int] = None

    repo = schema.register(Sparse)
    with pytest.raises(ValueError, match="empty hash"):
        repo.save(Sparse())
