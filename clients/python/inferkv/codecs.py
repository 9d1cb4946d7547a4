"""codecs.py - how each field type is stored in a hash field, and read back.

Why explicit codecs instead of pickle or "str() and hope": a hash field must
be readable by every other client (redis-cli, another language, the
server's own FILTER and INFER.RAG), and a value that does not decode must
be reported, not guessed.  So every supported annotation compiles, once,
into a pair of functions:

- scalars are stored natively: str as UTF-8, int and float as their
  decimal text (what HINCRBY / HINCRBYFLOAT read and write), bool as 1/0,
  bytes as they are, datetime / date / UUID / Decimal as their ISO or
  canonical text, an Enum as its value's encoding;
- containers (list, dict), nested dataclasses and Optional values inside
  them are stored as compact JSON ("canonical": no spaces, keys in
  insertion order, non-ASCII kept as UTF-8, NaN refused), which the atomic
  list / dict operations edit in place (ops.py, atomic.lua);
- a Vector(dim) field is stored as dim little-endian float32s, the bytes
  VADD/VSIM take after FP32.

Decoders are strict: "01" is not an int, " 1.5" is not a float, "yes" is
not a bool; they raise ValueError with the reason, which the model layer
turns into DecodeError naming the key and the field.  An annotation with no
codec raises UnsupportedFieldType when the model is registered.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import json
import math
import re
import types
import typing
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from .errors import UnsupportedFieldType

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]

_UTC = _dt.timezone.utc
_FLOAT_RE = re.compile(rb"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)", re.IGNORECASE)


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)


def _no_default(o: Any) -> Any:
    raise TypeError(f"{type(o).__name__} is not JSON-able")


# JSONEncoder.encode builds a C encoder on every call; this one is built
# once (no circular-reference markers: to_json makes fresh trees).
_encode_str = getattr(json.encoder, "encode_basestring")  # the C one when built; not in typeshed
_C_JSON = (_c_make_encoder(None, _no_default, _encode_str, None, ":", ",", False, False, False)
           if _c_make_encoder is not None else None)


def dumps(obj: Any) -> str:
    """The canonical JSON text of a JSON-able value (see the module doc)."""
    if _C_JSON is not None and not isinstance(obj, str):
        return "".join(_C_JSON(obj, 0))
    return _JSON.encode(obj)


def _type_name(v: Any) -> str:
    return type(v).__name__


def _fail(expected: str, v: Any) -> TypeError:
    return TypeError(f"expected {expected}, got {_type_name(v)} {v!r:.60}")


# --------------------------------------------------------------------------
# Vector fields
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorSpec:
    """A Vector(dim) field: stored as FP32 bytes in the hash and in the vector
    set `<prefix>:__vec__:<Model>:<field>`.  quant is the set's storage (Q8,
    NOQUANT or BIN, fixed by the first VADD); embedder names the encoder model
    that turns a text query (and `source`, a str field, when the vector is not
    given) into a vector on the server."""

    dim: int
    quant: str = "Q8"
    embedder: str | None = None
    source: str | None = None


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as e:  # pragma: no cover - numpy is a Debian dependency of vectors
        raise ImportError("vector fields and embeddings need numpy (Debian: python3-numpy)") from e
    return numpy


def vector_bytes(v: Any, dim: int | None) -> bytes:
    """A vector (ndarray, list, tuple of numbers, or FP32 bytes) as FP32
    little-endian bytes of `dim` components (any length when dim is None);
    NaN and infinities are refused here, as the server refuses them."""
    np = _numpy()
    if isinstance(v, (bytes, bytearray, memoryview)):
        arr = np.frombuffer(bytes(v), dtype="<f4")
    else:
        if isinstance(v, (str, dict)) or not hasattr(v, "__len__"):
            raise _fail("a vector (ndarray, list of numbers or FP32 bytes)", v)
        try:
            arr = np.asarray(v, dtype="<f4")
        except (TypeError, ValueError) as e:
            raise TypeError(f"not a vector of numbers: {e}") from e
    if arr.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional, got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"expected {dim} components, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError("a vector must not hold NaN or infinite components")
    return arr.tobytes()


def vector_from_bytes(raw: bytes, dim: int | None) -> Any:
    """FP32 bytes as a float32 ndarray (a writable copy)."""
    np = _numpy()
    if len(raw) % 4 or (dim is not None and len(raw) != 4 * dim):
        want = "a multiple of 4" if dim is None else str(4 * dim)
        raise ValueError(f"a vector's bytes must be {want} long, got {len(raw)}")
    return np.frombuffer(raw, dtype="<f4").copy()


# --------------------------------------------------------------------------
# JSON-level codecs: value <-> JSON-able object (inside containers)
# --------------------------------------------------------------------------


@dataclass
class JCodec:
    """to_json: a Python value -> a JSON-able object; from_json: back, checked.
    native: the Python type (str, int, bool) whose values are their own JSON,
    which lists and dicts of it check with one type test per item."""

    to_json: Callable[[Any], Any]
    from_json: Callable[[Any], Any]
    native: type | None = None


def _path(where: str, e: Exception) -> ValueError:
    """A nested decode error with its position ("tags[2]: ...") in front."""
    return ValueError(f"{where}: {e}")


def _jc_scalar(check: Callable[[Any], bool], expected: str) -> JCodec:
    def to(v: Any) -> Any:
        if not check(v):
            raise _fail(expected, v)
        return v

    def frm(o: Any) -> Any:
        if not check(o):
            raise _fail(expected, o)
        return o

    return JCodec(to, frm)


def _native(jc: JCodec, tp: type) -> JCodec:
    jc.native = tp
    return jc


def _jc_float() -> JCodec:
    def to(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _fail("float", v)
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"{f!r} cannot be stored inside JSON")
        return f

    def frm(o: Any) -> Any:
        if isinstance(o, bool) or not isinstance(o, (int, float)):
            raise _fail("float", o)
        return float(o)

    return JCodec(to, frm)


def _jc_text(cls: type, fmt: Callable[[Any], str], parse: Callable[[str], Any], expected: str) -> JCodec:
    def to(v: Any) -> Any:
        if not isinstance(v, cls) or (cls is _dt.date and isinstance(v, _dt.datetime)):
            raise _fail(expected, v)
        return fmt(v)

    def frm(o: Any) -> Any:
        if not isinstance(o, str):
            raise _fail(f"{expected} (as a JSON string)", o)
        try:
            return parse(o)
        except (ValueError, ArithmeticError) as e:
            raise ValueError(f"not a {expected}: {o!r:.60}") from e

    return JCodec(to, frm)


def _jc_bytes() -> JCodec:
    def to(v: Any) -> Any:
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise _fail("bytes", v)
        return base64.b64encode(bytes(v)).decode("ascii")

    def frm(o: Any) -> Any:
        if not isinstance(o, str):
            raise _fail("bytes (as a base64 JSON string)", o)
        try:
            return base64.b64decode(o, validate=True)
        except ValueError as e:
            raise ValueError(f"not base64: {o!r:.60}") from e

    return JCodec(to, frm)


def _jc_enum(cls: type[enum.Enum]) -> JCodec:
    by_value: dict[Any, enum.Enum] = {}
    for m in cls:
        if isinstance(m.value, bool) or not isinstance(m.value, (str, int, float)):
            raise UnsupportedFieldType(f"enum {cls.__name__}: member values must be str, int or float")
        by_value[(type(m.value), m.value)] = m

    def to(v: Any) -> Any:
        if not isinstance(v, cls):
            raise _fail(cls.__name__, v)
        return v.value

    def frm(o: Any) -> Any:
        m = by_value.get((type(o), o))
        if m is None:
            raise ValueError(f"{o!r:.60} is not a value of {cls.__name__}")
        return m

    return JCodec(to, frm)


def _jc_optional(inner: JCodec) -> JCodec:
    def to(v: Any) -> Any:
        return None if v is None else inner.to_json(v)

    def frm(o: Any) -> Any:
        return None if o is None else inner.from_json(o)

    return JCodec(to, frm)


def _jc_list(item: JCodec) -> JCodec:
    ito, ifrom = item.to_json, item.from_json
    native = item.native

    if native is not None:  # list[str] / list[int] / list[bool]: one type test per item
        def to_native(v: Any) -> Any:
            if type(v) is list or isinstance(v, (list, tuple)):
                for x in v:
                    if type(x) is not native:
                        return to_slow(v)
                return v
            raise _fail("list", v)

        def from_native(o: Any) -> Any:
            if type(o) is list:
                for x in o:
                    if type(x) is not native:
                        return from_slow(o)
                return o
            return from_slow(o)

    def to(v: Any) -> Any:
        if not isinstance(v, (list, tuple)):
            raise _fail("list", v)
        out = []
        for i, x in enumerate(v):
            try:
                out.append(ito(x))
            except (TypeError, ValueError) as e:
                raise _path(f"[{i}]", e) from e
        return out

    def frm(o: Any) -> Any:
        if not isinstance(o, list):
            raise _fail("list (a JSON array)", o)
        out = []
        for i, x in enumerate(o):
            try:
                out.append(ifrom(x))
            except (TypeError, ValueError) as e:
                raise _path(f"[{i}]", e) from e
        return out

    to_slow, from_slow = to, frm
    if native is not None:
        return JCodec(to_native, from_native)
    return JCodec(to, frm)


def _key_codec(tp: Any, where: str) -> tuple[Callable[[Any], str], Callable[[str], Any]]:
    """Dict keys are JSON strings: str as is, int as its decimal text, a str
    or int Enum as its value."""
    if tp is str:

        def kto(k: Any) -> str:
            if not isinstance(k, str):
                raise _fail("str key", k)
            return k

        return kto, lambda s: s
    if tp is int:

        def kto_i(k: Any) -> str:
            if isinstance(k, bool) or not isinstance(k, int):
                raise _fail("int key", k)
            return str(k)

        def kfrom_i(s: str) -> int:
            v = int(s)
            if str(v) != s:
                raise ValueError(f"not an int key: {s!r:.60}")
            return v

        return kto_i, kfrom_i
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        jc = _jc_enum(tp)
        if all(isinstance(m.value, str) for m in tp):
            return (lambda k: jc.to_json(k)), (lambda s: jc.from_json(s))
    raise UnsupportedFieldType(f"{where}: dict keys must be str, int or a str Enum, not {tp!r}")


def _jc_dict(ktp: Any, val: JCodec, where: str) -> JCodec:
    kto, kfrom = _key_codec(ktp, where)
    vto, vfrom = val.to_json, val.from_json
    native = val.native if ktp is str else None

    def to(v: Any) -> Any:
        if not isinstance(v, dict):
            raise _fail("dict", v)
        out = {}
        for k, x in v.items():
            ks = kto(k)
            try:
                out[ks] = vto(x)
            except (TypeError, ValueError) as e:
                raise _path(f"[{ks!r}]", e) from e
        return out

    def frm(o: Any) -> Any:
        if not isinstance(o, dict):
            raise _fail("dict (a JSON object)", o)
        out = {}
        for ks, x in o.items():
            try:
                out[kfrom(ks)] = vfrom(x)
            except (TypeError, ValueError) as e:
                raise _path(f"[{ks!r}]", e) from e
        return out

    if native is None:
        return JCodec(to, frm)

    def to_native(v: Any) -> Any:  # dict[str, str | int | bool]: one type test per item
        if type(v) is dict:
            for k, x in v.items():
                if type(k) is not str or type(x) is not native:
                    return to(v)
            return v
        return to(v)

    def from_native(o: Any) -> Any:
        if type(o) is dict:
            for x in o.values():
                if type(x) is not native:
                    return frm(o)
            return o
        return frm(o)

    return JCodec(to_native, from_native)


def _jc_dataclass(cls: type, where: str) -> JCodec:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    codecs = {f.name: json_codec(hints[f.name], f"{where}.{f.name}") for f in fields}
    required = {f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}

    def to(v: Any) -> Any:
        if not isinstance(v, cls):
            raise _fail(cls.__name__, v)
        out = {}
        for name, c in codecs.items():
            try:
                out[name] = c.to_json(getattr(v, name))
            except (TypeError, ValueError) as e:
                raise _path(f".{name}", e) from e
        return out

    def frm(o: Any) -> Any:
        if not isinstance(o, dict):
            raise _fail(f"{cls.__name__} (a JSON object)", o)
        kw = {}
        for name, c in codecs.items():
            if name in o:
                try:
                    kw[name] = c.from_json(o[name])
                except (TypeError, ValueError) as e:
                    raise _path(f".{name}", e) from e
            elif name in required:
                raise ValueError(f".{name}: missing")
        return cls(**kw)

    return JCodec(to, frm)


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """(T, True) for Optional[T] / T | None, (tp, False) otherwise; other
    unions are refused (a stored value must say which type it is)."""
    args = _union_args(tp)
    if args is None:
        return tp, False
    rest = [a for a in args if a is not type(None)]
    if len(rest) != 1:
        raise UnsupportedFieldType(f"union {tp!r}: only Optional[T] is supported")
    return rest[0], len(rest) != len(args)


def strip_annotated(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """(T, metadata) for Annotated[T, ...]; (tp, ()) otherwise."""
    if typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        return args[0], tuple(args[1:])
    return tp, ()


def json_codec(tp: Any, where: str) -> JCodec:
    """The JSON-level codec of an annotation (inside a list, dict or nested
    dataclass, and for whole container fields)."""
    tp, meta = strip_annotated(tp)
    if any(isinstance(m, VectorSpec) for m in meta):
        raise UnsupportedFieldType(f"{where}: a Vector can only be a model's own field")
    inner, optional = strip_optional(tp)
    if optional:
        return _jc_optional(json_codec(inner, where))
    tp = inner
    origin = typing.get_origin(tp)
    if tp is bool:
        return _native(_jc_scalar(lambda v: isinstance(v, bool), "bool"), bool)
    if tp is int:
        return _native(_jc_scalar(lambda v: isinstance(v, int) and not isinstance(v, bool), "int"), int)
    if tp is str:
        return _native(_jc_scalar(lambda v: isinstance(v, str), "str"), str)
    if tp is float:
        return _jc_float()
    if tp is bytes:
        return _jc_bytes()
    if tp is _dt.datetime:
        return _jc_text(_dt.datetime, lambda v: v.isoformat(), _dt.datetime.fromisoformat, "datetime")
    if tp is _dt.date:
        return _jc_text(_dt.date, lambda v: v.isoformat(), _dt.date.fromisoformat, "date")
    if tp is uuid.UUID:
        return _jc_text(uuid.UUID, str, uuid.UUID, "UUID")
    if tp is decimal.Decimal:
        return _jc_text(decimal.Decimal, str, decimal.Decimal, "Decimal")
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _jc_enum(tp)
    if origin in (list, typing.List):
        (item,) = typing.get_args(tp) or (None,)
        if item is None:
            raise UnsupportedFieldType(f"{where}: list needs its item type (list[str])")
        return _jc_list(json_codec(item, where + "[]"))
    if origin in (dict, typing.Dict):
        args = typing.get_args(tp)
        if len(args) != 2:
            raise UnsupportedFieldType(f"{where}: dict needs key and value types (dict[str, int])")
        return _jc_dict(args[0], json_codec(args[1], where + "[]"), where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _jc_dataclass(tp, where)
    raise UnsupportedFieldType(f"{where}: no codec for {tp!r} (supported: str, int, float, bool, bytes, "
                               "datetime, date, UUID, Decimal, Enum, list[T], dict[K, V], dataclasses, "
                               "Optional[T], Vector(dim))")


# --------------------------------------------------------------------------
# Field-level codecs: value <-> the bytes of one hash field
# --------------------------------------------------------------------------


@dataclass
class FieldCodec:
    """How one model field is stored.

    kind: the storage family ("str", "int", "float", "bool", "bytes",
    "datetime", "date", "uuid", "decimal", "enum", "json", "vector");
    score: value -> float for a Range index (None: not orderable);
    attr: value -> JSON-able, for the vector set's attributes (None: not a
    scalar, left out); jc: the JSON-level codec of a "json" field (the
    atomic list / dict operations encode items with it)."""

    kind: str
    encode: Encoder
    decode: Decoder
    score: Callable[[Any], float] | None = None
    attr: Callable[[Any], Any] | None = None
    jc: JCodec | None = None
    item: JCodec | None = None  # list item / dict value codec, for atomic ops
    key_to: Callable[[Any], str] | None = None  # dict key -> JSON key text


def _enc_str(v: Any) -> bytes:
    if type(v) is not str and not isinstance(v, str):
        raise _fail("str", v)
    return v.encode("utf-8")


def _dec_str(raw: bytes) -> str:
    return raw.decode("utf-8")


def _enc_int(v: Any) -> bytes:
    if type(v) is not int and (isinstance(v, bool) or not isinstance(v, int)):
        raise _fail("int", v)
    return str(int(v)).encode("ascii")


def _dec_int(raw: bytes) -> int:
    v = int(raw)
    if str(v).encode("ascii") != raw:
        raise ValueError(f"not a canonical int: {raw!r:.60}")
    return v


def _enc_float(v: Any) -> bytes:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _fail("float", v)
    return repr(float(v)).encode("ascii")


def _dec_float(raw: bytes) -> float:
    if not _FLOAT_RE.fullmatch(raw):
        raise ValueError(f"not a float: {raw!r:.60}")
    return float(raw)


def _enc_bool(v: Any) -> bytes:
    if not isinstance(v, bool):
        raise _fail("bool", v)
    return b"1" if v else b"0"


def _dec_bool(raw: bytes) -> bool:
    if raw == b"1":
        return True
    if raw == b"0":
        return False
    raise ValueError(f"not a bool (1 or 0): {raw!r:.60}")


def _enc_bytes(v: Any) -> bytes:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise _fail("bytes", v)
    return bytes(v)


def _enc_datetime(v: Any) -> bytes:
    if not isinstance(v, _dt.datetime):
        raise _fail("datetime", v)
    return v.isoformat().encode("ascii")


def _dec_datetime(raw: bytes) -> _dt.datetime:
    return _dt.datetime.fromisoformat(raw.decode("ascii"))


def _score_datetime(v: _dt.datetime) -> float:
    """Seconds since the epoch; a naive datetime is taken as UTC (documented)."""
    return (v if v.tzinfo is not None else v.replace(tzinfo=_UTC)).timestamp()


def _enc_date(v: Any) -> bytes:
    if not isinstance(v, _dt.date) or isinstance(v, _dt.datetime):
        raise _fail("date", v)
    return v.isoformat().encode("ascii")


def _dec_date(raw: bytes) -> _dt.date:
    return _dt.date.fromisoformat(raw.decode("ascii"))


def _score_date(v: _dt.date) -> float:
    return float((v - _dt.date(1970, 1, 1)).days * 86400)


def _enc_uuid(v: Any) -> bytes:
    if not isinstance(v, uuid.UUID):
        raise _fail("UUID", v)
    return str(v).encode("ascii")


def _dec_uuid(raw: bytes) -> uuid.UUID:
    return uuid.UUID(raw.decode("ascii"))


def _enc_decimal(v: Any) -> bytes:
    if not isinstance(v, decimal.Decimal):
        raise _fail("Decimal", v)
    return str(v).encode("ascii")


def _dec_decimal(raw: bytes) -> decimal.Decimal:
    try:
        return decimal.Decimal(raw.decode("ascii"))
    except decimal.InvalidOperation as e:
        raise ValueError(f"not a Decimal: {raw!r:.60}") from e


def _enum_codec(cls: type[enum.Enum]) -> FieldCodec:
    """An Enum is stored as its value's own encoding (str values as text, int
    values as decimal text, anything else as JSON); decoding is one dict
    lookup of the stored bytes, so an unknown value is refused, never mapped."""
    values = [m.value for m in cls]
    if all(isinstance(v, str) for v in values):
        def enc_v(v: Any) -> bytes:
            return str(v).encode("utf-8")
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        def enc_v(v: Any) -> bytes:
            return str(v).encode("ascii")
    else:
        _jc_enum(cls)  # refuses member values that are not JSON scalars

        def enc_v(v: Any) -> bytes:
            return dumps(v).encode("utf-8")

    by_raw = {enc_v(m.value): m for m in cls}
    to_raw = {m: enc_v(m.value) for m in cls}

    def enc(v: Any) -> bytes:
        raw = to_raw.get(v) if isinstance(v, cls) else None
        if raw is None:
            raise _fail(cls.__name__, v)
        return raw

    def dec(raw: bytes) -> enum.Enum:
        m = by_raw.get(raw)
        if m is None:
            raise ValueError(f"{raw!r:.60} is not a value of {cls.__name__}")
        return m

    def attr(v: enum.Enum) -> Any:
        return v.value

    score = None
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        def score(v: enum.Enum) -> float:
            return float(v.value)
    return FieldCodec("enum", enc, dec, score=score, attr=attr)


def _json_field(jc: JCodec) -> tuple[Encoder, Decoder]:
    to, frm = jc.to_json, jc.from_json

    def enc(v: Any) -> bytes:
        return dumps(to(v)).encode("utf-8")

    def dec(raw: bytes) -> Any:
        try:
            obj = json.loads(raw)
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise ValueError(f"not JSON: {e}") from e
        return frm(obj)

    return enc, dec


def field_codec(tp: Any, where: str) -> FieldCodec:
    """The codec of a model field's annotation (Optional and Annotated already
    stripped by the caller, except a VectorSpec which it passes as tp)."""
    if isinstance(tp, VectorSpec):
        dim = tp.dim

        def enc_vec(v: Any) -> bytes:
            return vector_bytes(v, dim)

        def dec_vec(raw: bytes) -> Any:
            return vector_from_bytes(raw, dim)

        return FieldCodec("vector", enc_vec, dec_vec)
    if tp is bool:
        return FieldCodec("bool", _enc_bool, _dec_bool, attr=lambda v: v)
    if tp is int:
        return FieldCodec("int", _enc_int, _dec_int, score=float, attr=lambda v: v)
    if tp is float:
        return FieldCodec("float", _enc_float, _dec_float, score=float,
                          attr=lambda v: v if math.isfinite(v) else None)
    if tp is str:
        return FieldCodec("str", _enc_str, _dec_str, attr=lambda v: v)
    if tp is bytes:
        return FieldCodec("bytes", _enc_bytes, bytes)
    if tp is _dt.datetime:
        return FieldCodec("datetime", _enc_datetime, _dec_datetime, score=_score_datetime, attr=_score_datetime)
    if tp is _dt.date:
        return FieldCodec("date", _enc_date, _dec_date, score=_score_date, attr=_score_date)
    if tp is uuid.UUID:
        return FieldCodec("uuid", _enc_uuid, _dec_uuid, attr=str)
    if tp is decimal.Decimal:
        return FieldCodec("decimal", _enc_decimal, _dec_decimal, score=float, attr=float)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_codec(tp)
    jc = json_codec(tp, where)
    enc, dec = _json_field(jc)
    fc = FieldCodec("json", enc, dec, jc=jc)
    origin = typing.get_origin(tp)
    if origin in (list, typing.List):
        fc.kind = "list"
        fc.item = json_codec(typing.get_args(tp)[0], where + "[]")
    elif origin in (dict, typing.Dict):
        fc.kind = "dict"
        ktp, vtp = typing.get_args(tp)
        fc.item = json_codec(vtp, where + "[]")
        fc.key_to = _key_codec(ktp, where)[0]
    return fc
