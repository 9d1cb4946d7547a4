"""model.py - typed models: dataclasses stored as one hash field per attribute.

Why dataclasses and not Pydantic: Debian bookworm ships Pydantic 1.10,
whose API Pydantic 2 replaced; building on it would tie every application
to a major version upstream has left.  The stdlib's dataclasses have no
such clock, cost nothing to construct, and what Pydantic would add -
validation - is done here where it matters, per field and naming the
field: on save (a value that does not fit its annotation raises
EncodeError) and on load (a stored value that does not decode raises
DecodeError naming the key, the field and the reason; safe_load hands back
the object with an Invalid marker in each failed field).  See codecs.py
for the encodings.

A model is a subclass of Model, which makes it a keyword-only dataclass
(fields with and without defaults in any order) with an `id: str`:

    class User(Model):
        name: Annotated[str, Tag()]          # equality index
        age: Annotated[int, Range()] = 0     # range index
        bio: str | None = None
        embedding: Vector(64, embedder="e", source="bio") | None = None

Models are not registered anywhere by being defined: a Schema binds a
model to a client and a key prefix (schema.py), so two schemas (or two
tests) can use the same class without seeing each other.
"""
from __future__ import annotations

import dataclasses
import decimal
import json
import os
import time
import typing
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from .codecs import FieldCodec, VectorSpec, dumps, field_codec, strip_annotated, strip_optional
from .errors import DecodeError, EncodeError, FieldError, UnsupportedFieldType

# What a field decoder may raise on bad bytes (KeyError never: enums use .get).
DECODE_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, ArithmeticError, decimal.InvalidOperation)


@dataclass(frozen=True)
class Tag:
    """Index marker: equality lookups (`find(status="open")`), kept as one set
    of ids per value.  For str, int, bool, Enum, UUID and date fields."""


@dataclass(frozen=True)
class Range:
    """Index marker: range lookups (`find(age=between(18, 30))`), kept as one
    sorted set of ids scored by the value.  For int, float, Decimal, datetime,
    date and numeric Enum fields (a naive datetime is taken as UTC)."""


def Vector(dim: int, *, quant: str = "Q8", embedder: str | None = None, source: str | None = None) -> Any:
    """The annotation of a vector field of `dim` float32 components, kept in
    the model's vector set for `similar()`.  quant: the set's storage (Q8,
    NOQUANT, BIN); embedder: the encoder model for text queries; source: a
    str field embedded on the server (INFER.EMBED) when the vector is None."""
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 65536:
        raise ValueError(f"Vector dim must be an int in 1..65536, got {dim!r}")
    quant = quant.upper()
    if quant not in ("Q8", "NOQUANT", "BIN"):
        raise ValueError(f"Vector quant must be Q8, NOQUANT or BIN, got {quant!r}")
    return Annotated[Any, VectorSpec(dim, quant, embedder, source)]


def new_id() -> str:
    """A fresh id: 12 hex digits of milliseconds since the epoch, then 12
    random ones, so that ids sort roughly by creation time and never collide
    across processes."""
    return "%012x%s" % (time.time_ns() // 1_000_000, os.urandom(6).hex())


@dataclass(frozen=True)
class Invalid:
    """Put by safe_load in a field whose stored bytes did not decode: the
    bytes (None if missing) and why.  Saving an object that still holds one
    raises EncodeError, so a corrupt value is never written back unnoticed."""

    raw: bytes | None
    reason: str


class Loaded(typing.NamedTuple):
    """What safe_load returns: the object and the fields that failed (empty
    when the record is clean); None as obj when the record does not exist."""

    obj: Any
    errors: list[FieldError]


@dataclass(kw_only=True, eq=False)
class Model:
    """Base of every model: a keyword-only dataclass with a string id (the
    last part of the key `prefix:ModelName:id`).  Subclasses become
    dataclasses themselves (do not decorate them again)."""

    id: str = dataclasses.field(default_factory=new_id)

    __inferkv_model__: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(kw_only=True, eq=False)(cls)

    def __eq__(self, other: object) -> bool:
        """Field by field; vectors (ndarrays) compare by value."""
        if type(other) is not type(self):
            return NotImplemented
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if hasattr(a, "shape") or hasattr(b, "shape"):
                if a is None or b is None or getattr(a, "shape", None) != getattr(b, "shape", None):
                    return False
                if not bool((a == b).all()):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable


_MISSING = dataclasses.MISSING


@dataclass
class FieldSpec:
    """One stored field, compiled: its codec, whether None is allowed (stored
    as the hash field's absence), its default, and its index or vector."""

    name: str
    bname: bytes
    codec: FieldCodec
    optional: bool
    default: Any
    default_factory: Any
    index: str | None  # "tag" | "range" | None
    vector: VectorSpec | None

    @property
    def required(self) -> bool:
        return not self.optional and self.default is _MISSING and self.default_factory is _MISSING

    def fill(self) -> Any:
        """The value of a field absent from the hash: its default, None when
        Optional, else a decode error ("missing")."""
        if self.default is not _MISSING:
            return self.default
        if self.default_factory is not _MISSING:
            return self.default_factory()
        if self.optional:
            return None
        raise ValueError("missing")


_TAG_KINDS = {"str", "int", "bool", "enum", "uuid", "date"}


@dataclass
class Encoded:
    """A record ready to write: fields to HSET (as a dict, and as HSET's
    field value ... arguments), fields to HDEL (None values)."""

    set: dict[bytes, bytes]
    delete: list[bytes]
    flat: list[bytes]


class ModelSpec:
    """A model class compiled once: its fields' codecs, indexes and vectors,
    and the encode / decode of whole records."""

    def __init__(self, cls: type, name: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Model)):
            raise TypeError(f"{cls!r} is not a subclass of inferkv.Model")
        self.cls = cls
        self.name = name
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except NameError as e:
            raise UnsupportedFieldType(f"{cls.__name__}: cannot resolve an annotation: {e}") from e
        self.fields: list[FieldSpec] = []
        for f in dataclasses.fields(cls):
            if f.name == "id":
                if strip_annotated(hints["id"])[0] is not str:
                    raise UnsupportedFieldType(f"{cls.__name__}.id must be a str")
                continue
            if not f.init:
                continue
            self.fields.append(self._compile(cls.__name__, f, hints[f.name]))
        self.by_name = {f.name: f for f in self.fields}
        self.tags = [f for f in self.fields if f.index == "tag"]
        self.ranges = [f for f in self.fields if f.index == "range"]
        self.vectors = [f for f in self.fields if f.vector is not None]
        self.attr_fields = [f for f in self.fields if f.codec.attr is not None]
        for v in self.vectors:
            src = v.vector.source if v.vector else None
            if src is not None and (src not in self.by_name or self.by_name[src].codec.kind != "str"):
                raise UnsupportedFieldType(f"{cls.__name__}.{v.name}: source {src!r} is not a str field")
            if src is not None and v.vector is not None and v.vector.embedder is None:
                raise UnsupportedFieldType(f"{cls.__name__}.{v.name}: a source needs an embedder")
        self._fast = [(f.name, f.bname, f.codec.decode, f) for f in self.fields]

    @staticmethod
    def _compile(model: str, f: dataclasses.Field[Any], hint: Any) -> FieldSpec:
        where = f"{model}.{f.name}"
        tp, optional = strip_optional(hint)
        tp, meta = strip_annotated(tp)
        if not optional:  # Annotated[Optional[T], ...]
            tp, optional = strip_optional(tp)
        index = None
        vector = None
        for m in meta:
            if isinstance(m, Tag) or m is Tag:
                index = "tag"
            elif isinstance(m, Range) or m is Range:
                index = "range"
            elif isinstance(m, VectorSpec):
                vector = m
        codec = field_codec(vector if vector is not None else tp, where)
        if index == "tag" and codec.kind not in _TAG_KINDS:
            raise UnsupportedFieldType(f"{where}: a Tag index needs a str, int, bool, Enum, UUID or date field")
        if index == "range" and codec.score is None:
            raise UnsupportedFieldType(f"{where}: a Range index needs an int, float, Decimal, datetime, date "
                                       "or numeric Enum field")
        if vector is not None and index is not None:
            raise UnsupportedFieldType(f"{where}: a Vector field cannot also be a Tag or Range")
        return FieldSpec(f.name, f.name.encode(), codec, optional, f.default, f.default_factory, index, vector)

    # ------------------------------------------------------------------ write

    def encode(self, obj: Any) -> Encoded:
        """The hash fields of obj; raises EncodeError naming the field."""
        if not isinstance(obj, self.cls):
            raise TypeError(f"expected a {self.cls.__name__}, got {type(obj).__name__}")
        out: dict[bytes, bytes] = {}
        delete: list[bytes] = []
        flat: list[bytes] = []
        d = obj.__dict__
        f: FieldSpec | None = None
        try:
            for f in self.fields:  # every codec refuses an Invalid, so the hot path needs no check
                v = d[f.name]
                if v is None:
                    if not f.optional:
                        raise EncodeError(self.name, f.name, "None in a field that is not Optional")
                    delete.append(f.bname)
                else:
                    raw = out[f.bname] = f.codec.encode(v)
                    flat.append(f.bname)
                    flat.append(raw)
        except (TypeError, ValueError, ArithmeticError, KeyError) as e:
            if isinstance(e, EncodeError) or f is None:
                raise
            v = getattr(obj, f.name, None)
            if isinstance(v, Invalid):
                raise EncodeError(self.name, f.name,
                                  f"still holds the Invalid value safe_load left ({v.reason})") from None
            raise EncodeError(self.name, f.name, str(e)) from e
        return Encoded(out, delete, flat)

    def encode_value(self, f: FieldSpec, v: Any) -> bytes | None:
        """One field's stored bytes (None for a None value)."""
        if v is None:
            if not f.optional:
                raise EncodeError(self.name, f.name, "None in a field that is not Optional")
            return None
        try:
            return f.codec.encode(v)
        except (TypeError, ValueError, ArithmeticError) as e:
            raise EncodeError(self.name, f.name, str(e)) from e

    def score(self, f: FieldSpec, v: Any) -> float:
        """A Range index score; NaN is refused (a sorted set cannot hold it)."""
        assert f.codec.score is not None
        s = f.codec.score(v)
        if s != s:
            raise EncodeError(self.name, f.name, "NaN cannot be indexed by a Range")
        return s

    def attributes(self, obj: Any, vec: FieldSpec) -> str:
        """The vector set attributes of obj: its scalar fields (FILTER reads
        them), and `text`, the source field's value, when the vector has a
        source (INFER.RAG reads the chunk from `text`)."""
        attrs: dict[str, Any] = {}
        for f in self.attr_fields:
            v = getattr(obj, f.name)
            if v is not None and not isinstance(v, Invalid) and f.codec.attr is not None:
                a = f.codec.attr(v)
                if a is not None:
                    attrs[f.name] = a
        spec = vec.vector
        if spec is not None and spec.source is not None:
            src = getattr(obj, spec.source)
            if isinstance(src, str):
                attrs["text"] = src
        return dumps(attrs)

    # ------------------------------------------------------------------- read

    def decode(self, key: str, id: str, raw: dict[bytes, bytes]) -> Any:
        """The object stored in raw (HGETALL's fields); raises DecodeError
        naming key, every failing field and why."""
        obj = object.__new__(self.cls)
        d = obj.__dict__
        d["id"] = id
        try:
            for name, bname, dec, f in self._fast:
                v = raw.get(bname)
                d[name] = f.fill() if v is None else dec(v)
        except DECODE_ERRORS:
            obj, errors = self.safe_decode(key, id, raw)
            raise DecodeError(key, errors) from None
        return obj

    def safe_decode(self, key: str, id: str, raw: dict[bytes, bytes]) -> tuple[Any, list[FieldError]]:
        """(object, failures): every field that fails holds Invalid."""
        obj = object.__new__(self.cls)
        d = obj.__dict__
        d["id"] = id
        errors: list[FieldError] = []
        for name, bname, dec, f in self._fast:
            v = raw.get(bname)
            try:
                d[name] = f.fill() if v is None else dec(v)
            except DECODE_ERRORS as e:
                reason = str(e) or type(e).__name__
                errors.append(FieldError(name, reason, v))
                d[name] = Invalid(v, reason)
        return obj, errors

    def field(self, name: str) -> FieldSpec:
        f = self.by_name.get(name)
        if f is None:
            raise AttributeError(f"{self.cls.__name__} has no stored field {name!r}")
        return f

    def definition(self) -> str:
        """What other processes must agree on (schema.create checks it): the
        indexed fields and the vector fields, as canonical JSON."""
        return json.dumps({
            "tag": sorted(f.name for f in self.tags),
            "range": sorted(f.name for f in self.ranges),
            "vector": {f.name: [f.vector.dim, f.vector.quant] for f in self.vectors if f.vector},
        }, sort_keys=True, separators=(",", ":"))


def check_model_name(name: str) -> str:
    """A model name is one key segment: no ':' or glob characters, not
    starting with '__' (reserved for index, vector and schema keys)."""
    if not name or name.startswith("__") or any(c in name for c in ":*?[]\\ "):
        raise ValueError(f"bad model name {name!r}: one key segment without ':', spaces or glob characters, "
                         "not starting with '__'")
    return name

