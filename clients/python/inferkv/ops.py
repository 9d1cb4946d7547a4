"""ops.py - every write and read of a record, as commands, without I/O.

Why without I/O: the sync and the asyncio clients must behave the same, and
the optimistic (WATCH) path and the script path must write the same bytes.
So each operation is an object that produces commands, and the protocol -
read, plan, MULTI/EXEC, retry on a lost WATCH, load the script again on
NOSCRIPT - is one generator (`batch_flow`) that yields the commands to send
and receives the replies.  client.py and aio.py only drive it.

An operation (Op) gives up to three forms of itself:

- `direct()`: commands that need nothing read first (a save of a model
  without Tag indexes: HSET, HDEL, ZADD / ZREM, VADD / VREM; a read);
- `script(sha)`: one EVALSHA of atomic.lua, plus direct commands, where the
  operation must read before it writes (old tag values, a list's text, the
  record's existence) and the server has scripting;
- `plan(state)`: the same writes computed here from values read under
  WATCH (RecordState), for servers without scripting (inferkv).  `plan`
  also updates the state, so that later operations of one pipeline see the
  writes of earlier ones.

Each form is a Unit: commands, and `finish(replies)` that turns their
replies into the operation's result or raises its typed error.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Sequence

from .codecs import dumps
from .errors import (
    ConflictError,
    CorruptField,
    NoScript,
    ProtocolError,
    RecordNotFound,
    ServerError,
    server_error,
)
from .model import FieldSpec, ModelSpec

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "atomic.lua"), "rb") as _f:
    SCRIPT: bytes = _f.read()
SCRIPT_SHA: str = hashlib.sha1(SCRIPT).hexdigest()

Cmd = tuple[Any, ...]
Reply = Any  # a decoded reply, or an exception instance for an error reply
Flow = Generator[Any, Any, Any]  # yields list[Cmd] (send) or float (sleep)

MAX_WATCH_TRIES = 100


def _arg(a: Any) -> bytes:
    if isinstance(a, str):
        return a.encode("utf-8")
    if isinstance(a, bool):
        raise TypeError("a bool is not a command argument (say 1/0 or yes/no)")
    if isinstance(a, int):
        return str(a).encode("ascii")
    if isinstance(a, float):
        return repr(a).encode("ascii")
    if isinstance(a, (bytearray, memoryview)):
        return bytes(a)
    raise TypeError(f"a {type(a).__name__} is not a command argument")


def pack(cmds: Sequence[Cmd]) -> bytes:
    """Commands in RESP, ready to send in one write.  (redis-py's packer
    encodes each argument through several checks; the typed layer already
    has bytes for nearly everything, and this is the hot path of saves.)"""
    out: list[bytes] = []
    app = out.append
    for c in cmds:
        app(b"*%d\r\n" % len(c))
        for a in c:
            if type(a) is not bytes:
                a = _arg(a)
            app(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def check(reply: Reply) -> Reply:
    """The reply, or its typed error raised."""
    if isinstance(reply, BaseException):
        raise server_error(reply)
    return reply


def as_map(reply: Reply) -> dict[Any, Any]:
    """A map reply (RESP3 map, or RESP2 flat array) as a dict."""
    reply = check(reply)
    if isinstance(reply, dict):
        return reply
    if reply is None:
        return {}
    if not isinstance(reply, list) or len(reply) % 2:
        raise ProtocolError(f"expected a map, got {reply!r:.80}")
    it = iter(reply)
    return dict(zip(it, it))


def text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def b(v: str | bytes) -> bytes:
    return v if isinstance(v, bytes) else v.encode("utf-8")


# --------------------------------------------------------------------------
# Key layout
# --------------------------------------------------------------------------

_GLOB = {ord(c): "\\" + c for c in "*?[]\\"}


def glob_escape(s: str) -> str:
    """s as a literal inside a SCAN MATCH pattern."""
    return s.translate(_GLOB)


class Keyspace:
    """The keys of one model under one prefix:

    - records: `<prefix>:<Model>:<id>` (hashes)
    - range indexes: `<prefix>:__idx__:<Model>:<field>` (sorted sets)
    - tag indexes: `<prefix>:__idx__:<Model>:<field>:<value>` (sets)
    - vector sets: `<prefix>:__vec__:<Model>:<field>`
    - the schema record: `<prefix>:__schema__:<Model>` (a hash)
    """

    def __init__(self, prefix: str, model: str) -> None:
        self.prefix = prefix
        self.model = model
        self.record_prefix = f"{prefix}:{model}:"
        self._rp = self.record_prefix.encode("utf-8")
        self.idx_base = f"{prefix}:__idx__:{model}:".encode("utf-8")
        self.vec_base = f"{prefix}:__vec__:{model}:".encode("utf-8")
        self.meta = f"{prefix}:__schema__:{model}".encode("utf-8")

    def record(self, id: str) -> bytes:
        return self._rp + id.encode("utf-8")

    def id_of(self, key: bytes) -> str:
        return key[len(self._rp):].decode("utf-8")

    def range_key(self, f: FieldSpec) -> bytes:
        return self.idx_base + f.bname

    def tag_key(self, f: FieldSpec, raw: bytes) -> bytes:
        return self.idx_base + f.bname + b":" + raw

    def vset(self, f: FieldSpec) -> bytes:
        return self.vec_base + f.bname

    def patterns(self) -> list[str]:
        """SCAN patterns of every key this model owns (schema.drop)."""
        return [glob_escape(self.record_prefix) + "*",
                glob_escape(self.idx_base.decode("utf-8")) + "*",
                glob_escape(self.vec_base.decode("utf-8")) + "*"]


# --------------------------------------------------------------------------
# Units and the state the WATCH path plans with
# --------------------------------------------------------------------------


@dataclass
class Unit:
    """Commands of one operation and what makes its result of their replies."""

    cmds: list[Cmd]
    finish: Callable[[list[Reply]], Any]


def _check_all(replies: list[Reply]) -> None:
    for r in replies:
        check(r)


def _none(replies: list[Reply]) -> None:
    _check_all(replies)
    return None


def _known(value: Any) -> Callable[[list[Reply]], Any]:
    """finish() for a result computed before sending: the replies only
    need to be free of errors."""
    def finish(replies: list[Reply]) -> Any:
        _check_all(replies)
        return value

    return finish


@dataclass
class RecordState:
    """A record as read under WATCH, then as the planned writes leave it."""

    exists: bool
    fields: dict[bytes, bytes | None] = field(default_factory=dict)

    def get(self, f: bytes) -> bytes | None:
        if f not in self.fields:
            raise AssertionError(f"field {f!r} was not read")  # an Op's read_fields is incomplete
        return self.fields[f]


class Op:
    """Base of the operations (see the module doc)."""

    key: bytes
    needs_read: bool = False

    def read_fields(self) -> list[bytes]:
        return []

    def direct(self) -> Unit:
        raise NotImplementedError

    def script(self, sha: str) -> Unit:
        return self.direct()

    def plan(self, st: RecordState) -> Unit:
        return self.direct()


class Repo:
    """What an Op needs of its repository: the compiled model and its keys."""

    spec: ModelSpec
    keys: Keyspace


# --------------------------------------------------------------------------
# Writes
# --------------------------------------------------------------------------


class SaveOp(Op):
    """Writes a whole record: HSET of the non-None fields, HDEL of the None
    ones, the Range indexes (ZADD / ZREM), vector sets (VADD with the
    record's attributes / VREM), and the Tag indexes, which need the old
    values (atomic.lua 'save', or plan() under WATCH)."""

    def __init__(self, repo: Repo, obj: Any) -> None:
        spec, keys = repo.spec, repo.keys
        if not isinstance(obj.id, str) or not obj.id:
            raise ValueError(f"{spec.name}: a record's id must be a non-empty str, got {obj.id!r}")
        enc = spec.encode(obj)
        if not enc.set:
            raise ValueError(f"{spec.name} {obj.id!r}: every field is None, and an empty hash cannot exist")
        self.repo = repo
        self.id = obj.id
        self.key = keys.record(obj.id)
        self.enc = enc
        self.needs_read = bool(spec.tags)
        extra: list[Cmd] = []
        bid = obj.id.encode("utf-8")
        for f in spec.ranges:
            v = getattr(obj, f.name)
            if v is None:
                extra.append((b"ZREM", keys.range_key(f), bid))
            else:
                extra.append((b"ZADD", keys.range_key(f), spec.score(f, v), bid))
        for f in spec.vectors:
            raw = enc.set.get(f.bname)
            assert f.vector is not None
            if raw is None:
                extra.append((b"VREM", keys.vset(f), bid))
            else:
                extra.append((b"VADD", keys.vset(f), b"FP32", raw, bid, f.vector.quant,
                               b"SETATTR", spec.attributes(obj, f)))
        self.extra = extra

    def _hash_cmds(self) -> list[Cmd]:
        cmds: list[Cmd] = [(b"HSET", self.key, *self.enc.flat)]  # never empty (checked in __init__)
        if self.enc.delete:
            cmds.append((b"HDEL", self.key, *self.enc.delete))
        return cmds

    def direct(self) -> Unit:
        return Unit(self._hash_cmds() + self.extra, _none)

    def read_fields(self) -> list[bytes]:
        return [f.bname for f in self.repo.spec.tags]

    def script(self, sha: str) -> Unit:
        spec, keys = self.repo.spec, self.repo.keys
        args: list[Any] = [b"save", keys.idx_base, self.id, len(self.enc.set), *self.enc.flat]
        args.append(len(self.enc.delete))
        args.extend(self.enc.delete)
        args.append(len(spec.tags))
        args.extend(f.bname for f in spec.tags)
        return Unit([(b"EVALSHA", sha, 1, self.key, *args)] + self.extra, _none)

    def plan(self, st: RecordState) -> Unit:
        spec, keys = self.repo.spec, self.repo.keys
        bid = self.id.encode("utf-8")
        tag_cmds: list[Cmd] = []
        for f in spec.tags:
            old = st.fields.get(f.bname) if st.exists else None
            new = self.enc.set.get(f.bname)
            tag_cmds.extend(_retag(keys, f, bid, old, new))
        st.exists = True
        for k, v in self.enc.set.items():
            st.fields[k] = v
        for k in self.enc.delete:
            st.fields[k] = None
        return Unit(tag_cmds + self._hash_cmds() + self.extra, _none)


def _retag(keys: Keyspace, f: FieldSpec, bid: bytes, old: bytes | None, new: bytes | None) -> list[Cmd]:
    """atomic.lua's retag(): move the id from the old value's set to the new one's."""
    if old == new:
        return []
    cmds: list[Cmd] = []
    if old is not None:
        cmds.append((b"SREM", keys.tag_key(f, old), bid))
    if new is not None:
        cmds.append((b"SADD", keys.tag_key(f, new), bid))
    return cmds


class DeleteOp(Op):
    """Deletes a record and its index and vector entries; the result is True
    when the record existed."""

    def __init__(self, repo: Repo, id: str) -> None:
        self.repo = repo
        self.id = id
        self.key = repo.keys.record(id)
        self.needs_read = bool(repo.spec.tags)
        bid = id.encode("utf-8")
        self.extra: list[Cmd] = [(b"ZREM", repo.keys.range_key(f), bid) for f in repo.spec.ranges]
        self.extra += [(b"VREM", repo.keys.vset(f), bid) for f in repo.spec.vectors]

    def _finish(self, replies: list[Reply]) -> bool:
        _check_all(replies)
        return bool(replies[0])

    def direct(self) -> Unit:
        return Unit([(b"DEL", self.key)] + self.extra, self._finish)

    def read_fields(self) -> list[bytes]:
        return [f.bname for f in self.repo.spec.tags]

    def script(self, sha: str) -> Unit:
        tags = [f.bname for f in self.repo.spec.tags]
        cmd = (b"EVALSHA", sha, 1, self.key, b"delete", self.repo.keys.idx_base, self.id, len(tags), *tags)
        return Unit([cmd] + self.extra, self._finish)

    def plan(self, st: RecordState) -> Unit:
        bid = self.id.encode("utf-8")
        cmds: list[Cmd] = []
        if st.exists:
            for f in self.repo.spec.tags:
                cmds.extend(_retag(self.repo.keys, f, bid, st.fields.get(f.bname), None))
        existed = st.exists
        st.exists = False
        for k in list(st.fields):
            st.fields[k] = None

        def finish(replies: list[Reply]) -> bool:
            _check_all(replies)
            return existed

        return Unit(cmds + [(b"DEL", self.key)] + self.extra, finish)


class FieldOp(Op):
    """Base of the atomic updates of one field of an existing record."""

    needs_read = True
    kinds: tuple[str, ...] = ()
    name = ""

    def __init__(self, repo: Repo, id: str, field_name: str) -> None:
        self.repo = repo
        self.id = id
        self.key = repo.keys.record(id)
        self.f = repo.spec.field(field_name)
        if self.f.codec.kind not in self.kinds:
            raise TypeError(f"{self.name}() needs a field of kind {'/'.join(self.kinds)}; "
                            f"{repo.spec.name}.{field_name} is {self.f.codec.kind}")

    def read_fields(self) -> list[bytes]:
        return [self.f.bname]

    def _exists(self, st: RecordState) -> None:
        if not st.exists:
            raise RecordNotFound(self.key.decode("utf-8", "replace"))

    def _script_error(self, reply: Reply) -> Reply:
        """atomic.lua's NOTFOUND / CORRUPT errors as the client's classes."""
        if isinstance(reply, ServerError):
            msg = str(reply)
            if msg.startswith("NOTFOUND"):
                raise RecordNotFound(self.key.decode("utf-8", "replace"))
            if msg.startswith("CORRUPT"):
                raise CorruptField(msg[len("CORRUPT "):])
        return check(reply)

    def _evalsha(self, sha: str, *args: Any) -> Cmd:
        return (b"EVALSHA", sha, 1, self.key, self.name.encode(), self.repo.keys.idx_base, self.id, self.f.bname, *args)

    def _corrupt(self, what: str) -> CorruptField:
        return CorruptField(f"{self.key.decode('utf-8', 'replace')} field {self.f.name} is not {what}")


class IncrOp(FieldOp):
    """Adds to an int or float field (HINCRBY / HINCRBYFLOAT, so the server
    does the arithmetic and formats the result in both paths), moves its
    Range score by the same amount (ZINCRBY) and its Tag.  The result is the
    new value; the record must exist (RecordNotFound)."""

    kinds = ("int", "float")
    name = "incr"

    def __init__(self, repo: Repo, id: str, field_name: str, by: int | float) -> None:
        super().__init__(repo, id, field_name)
        if isinstance(by, bool) or not isinstance(by, (int, float)):
            raise TypeError(f"incr by must be a number, got {type(by).__name__}")
        if self.f.codec.kind == "int" and not isinstance(by, int):
            raise TypeError(f"{repo.spec.name}.{self.f.name} is an int field: incr by an int")
        self.by = by
        self.by_raw = str(by).encode() if isinstance(by, int) else repr(float(by)).encode()
        self.rkey = repo.keys.range_key(self.f) if self.f.index == "range" else b""

    def _decode(self, raw: Reply) -> Any:
        return self.f.codec.decode(raw)

    def script(self, sha: str) -> Unit:
        cmd = self._evalsha(sha, self.by_raw, self.f.codec.kind, b"1" if self.f.index == "tag" else b"0", self.rkey)
        return Unit([cmd], lambda r: self._decode(self._script_error(r[0])))

    def plan(self, st: RecordState) -> Unit:
        self._exists(st)
        old = st.get(self.f.bname)
        bid = self.id.encode("utf-8")
        is_float = self.f.codec.kind == "float"
        try:
            oldv = 0 if old is None else self.f.codec.decode(old)
        except ValueError as e:
            raise self._corrupt(f"a number ({e})") from e
        cmds: list[Cmd] = [((b"HINCRBYFLOAT" if is_float else b"HINCRBY"), self.key, self.f.bname, self.by_raw),
                           (b"HGET", self.key, self.f.bname)]
        if self.rkey:
            cmds.append((b"ZINCRBY", self.rkey, self.by_raw, bid))
        if self.f.index == "tag":  # int only (Tag is refused on floats)
            cmds.extend(_retag(self.repo.keys, self.f, bid, old, str(oldv + self.by).encode()))
        # the state's view (a later op of the pipeline reads it): exact for ints
        st.fields[self.f.bname] = (repr(oldv + self.by) if is_float else str(oldv + self.by)).encode()

        def finish(replies: list[Reply]) -> Any:
            _check_all(replies)
            return self._decode(replies[1])

        return Unit(cmds, finish)


class AppendOp(FieldOp):
    """Appends text to a str field (None counts as ""); the result is the
    new value.  Mirrors atomic.lua 'append'."""

    kinds = ("str",)
    name = "append"

    def __init__(self, repo: Repo, id: str, field_name: str, text: str) -> None:
        super().__init__(repo, id, field_name)
        if not isinstance(text, str):
            raise TypeError(f"append needs a str, got {type(text).__name__}")
        self.text = text.encode("utf-8")

    def script(self, sha: str) -> Unit:
        cmd = self._evalsha(sha, self.text, b"1" if self.f.index == "tag" else b"0")
        return Unit([cmd], lambda r: self.f.codec.decode(self._script_error(r[0])))

    def plan(self, st: RecordState) -> Unit:
        self._exists(st)
        old = st.get(self.f.bname)
        new = (old or b"") + self.text
        cmds: list[Cmd] = [(b"HSET", self.key, self.f.bname, new)]
        if self.f.index == "tag":
            cmds.extend(_retag(self.repo.keys, self.f, self.id.encode("utf-8"), old, new))
        st.fields[self.f.bname] = new
        decoded = self.f.codec.decode(new)
        return Unit(cmds, _known(decoded))


def _load_container(op: FieldOp, raw: bytes | None, kind: type) -> Any:
    """A list / dict field's JSON, checked as atomic.lua's container() does."""
    if raw is None:
        return kind()
    try:
        v = json.loads(raw)
    except ValueError as e:
        raise op._corrupt(f"a JSON {'array' if kind is list else 'object'}") from e
    if not isinstance(v, kind):
        raise op._corrupt(f"a JSON {'array' if kind is list else 'object'}")
    return v


class PushOp(FieldOp):
    """Adds items to a list field, at the end or (left) at the front in the
    order given; the result is the new length.  Mirrors atomic.lua 'push'."""

    kinds = ("list",)
    name = "push"

    def __init__(self, repo: Repo, id: str, field_name: str, items: Sequence[Any], left: bool) -> None:
        super().__init__(repo, id, field_name)
        if not items:
            raise ValueError("push needs at least one item")
        item = self.f.codec.item
        assert item is not None
        try:
            self.objs = [item.to_json(x) for x in items]
            self.texts = [dumps(o).encode("utf-8") for o in self.objs]
        except (TypeError, ValueError) as e:
            raise TypeError(f"{repo.spec.name}.{field_name}: cannot push {e}") from e
        self.left = left

    def script(self, sha: str) -> Unit:
        cmd = self._evalsha(sha, b"L" if self.left else b"R", len(self.texts), *self.texts)
        return Unit([cmd], lambda r: int(self._script_error(r[0])))

    def plan(self, st: RecordState) -> Unit:
        self._exists(st)
        lst = _load_container(self, st.get(self.f.bname), list)
        lst = self.objs + lst if self.left else lst + self.objs
        new = dumps(lst).encode("utf-8")
        st.fields[self.f.bname] = new
        n = len(lst)
        return Unit([(b"HSET", self.key, self.f.bname, new)], _known(n))


class PopOp(FieldOp):
    """Removes and returns the last (or, left, the first) item of a list
    field; None when it is empty.  Mirrors atomic.lua 'pop'."""

    kinds = ("list",)
    name = "pop"

    def __init__(self, repo: Repo, id: str, field_name: str, left: bool) -> None:
        super().__init__(repo, id, field_name)
        self.left = left

    def _item(self, raw: Reply) -> Any:
        if raw is None:
            return None
        item = self.f.codec.item
        assert item is not None
        try:
            return item.from_json(json.loads(raw))
        except (TypeError, ValueError) as e:
            raise self._corrupt(f"a list of valid items ({e})") from e

    def script(self, sha: str) -> Unit:
        cmd = self._evalsha(sha, b"L" if self.left else b"R")
        return Unit([cmd], lambda r: self._item(self._script_error(r[0])))

    def plan(self, st: RecordState) -> Unit:
        self._exists(st)
        raw = st.get(self.f.bname)
        lst = _load_container(self, raw, list)
        if not lst:
            return Unit([], lambda r: None)
        v = lst.pop(0 if self.left else -1)
        new = dumps(lst).encode("utf-8")
        st.fields[self.f.bname] = new
        text_v = dumps(v).encode("utf-8")
        return Unit([(b"HSET", self.key, self.f.bname, new)], _known(self._item(text_v)))


class DictOp(FieldOp):
    """Sets (value given) or deletes one key of a dict field; the result is
    True when the key was added (set) or removed (delete).  Mirrors
    atomic.lua 'dset' / 'ddel'."""

    kinds = ("dict",)

    def __init__(self, repo: Repo, id: str, field_name: str, key: Any, value: Any = None,
                 delete: bool = False) -> None:
        self.name = "ddel" if delete else "dset"
        super().__init__(repo, id, field_name)
        assert self.f.codec.key_to is not None and self.f.codec.item is not None
        try:
            self.kstr = self.f.codec.key_to(key)
            self.ktext = dumps(self.kstr).encode("utf-8")
            if not delete:
                self.vobj = self.f.codec.item.to_json(value)
                self.vtext = dumps(self.vobj).encode("utf-8")
        except (TypeError, ValueError) as e:
            raise TypeError(f"{repo.spec.name}.{field_name}: {e}") from e
        self.delete = delete

    def script(self, sha: str) -> Unit:
        args = (self.ktext,) if self.delete else (self.ktext, self.vtext)
        return Unit([self._evalsha(sha, *args)], lambda r: bool(self._script_error(r[0])))

    def plan(self, st: RecordState) -> Unit:
        self._exists(st)
        raw = st.get(self.f.bname)
        d = _load_container(self, raw, dict)
        if self.delete:
            if self.kstr not in d:
                return Unit([], lambda r: False)
            del d[self.kstr]
            changed = True
        else:
            changed = self.kstr not in d
            d[self.kstr] = self.vobj
        new = dumps(d).encode("utf-8")
        st.fields[self.f.bname] = new
        return Unit([(b"HSET", self.key, self.f.bname, new)], _known(changed))


# --------------------------------------------------------------------------
# Reads that can sit in a pipeline
# --------------------------------------------------------------------------


class GetOp(Op):
    """HGETALL of one record, decoded (None when missing); `safe` gives a
    Loaded (object, failed fields) instead of raising DecodeError."""

    def __init__(self, repo: Repo, id: str, safe: bool = False) -> None:
        self.repo = repo
        self.id = id
        self.key = repo.keys.record(id)
        self.safe = safe

    def direct(self) -> Unit:
        return Unit([(b"HGETALL", self.key)], lambda r: decode_record(self.repo, self.id, r[0], self.safe))


class RawOp(Op):
    """Any command, its reply unchanged (Pipeline.execute_command)."""

    def __init__(self, args: Sequence[Any]) -> None:
        self.args = tuple(args)
        self.key = b""

    def direct(self) -> Unit:
        return Unit([self.args], lambda r: check(r[0]))


def decode_record(repo: Repo, id: str, reply: Reply, safe: bool = False) -> Any:
    from .model import Loaded

    raw = as_map(reply)
    key = repo.keys.record_prefix + id
    if not raw:
        return Loaded(None, []) if safe else None
    if safe:
        obj, errors = repo.spec.safe_decode(key, id, raw)
        return Loaded(obj, errors)
    return repo.spec.decode(key, id, raw)


# --------------------------------------------------------------------------
# The protocol
# --------------------------------------------------------------------------


@dataclass
class Outcome:
    """An operation's result, or the error it ended with."""

    value: Any = None
    error: BaseException | None = None


def _run_units(units: list[Unit], replies: list[Reply]) -> list[Outcome]:
    out: list[Outcome] = []
    i = 0
    for u in units:
        n = len(u.cmds)
        try:
            out.append(Outcome(u.finish(replies[i:i + n])))
        except Exception as e:  # noqa: BLE001 - each op keeps its own error; the caller raises
            out.append(Outcome(error=e))
        i += n
    return out


def _exec_replies(replies: list[Reply], n: int) -> list[Reply] | None:
    """The EXEC array of [MULTI, n queued commands, EXEC]: None when a WATCH
    was lost; a refused transaction raises the first queue-time error."""
    exec_reply = replies[-1]
    if isinstance(exec_reply, BaseException):
        for r in replies[1:-1]:
            if isinstance(r, BaseException):
                raise server_error(r)
        raise server_error(exec_reply)
    check(replies[0])
    if exec_reply is None:
        return None
    if not isinstance(exec_reply, list) or len(exec_reply) != n:
        raise ProtocolError(f"EXEC answered {exec_reply!r:.80} for {n} commands")
    return exec_reply


def batch_flow(ops: Sequence[Op], mode: str | None, transaction: bool = True) -> Flow:
    """Runs ops as one unit of work and returns one Outcome per op.

    mode: "script" (EVALSHA atomic.lua), "watch" (optimistic transactions),
    or None when no op needs a read (the caller did not ask the server).
    Several commands go in one MULTI/EXEC when transaction is true (always,
    for pipelines); one command alone is sent as it is.
    """
    if mode == "watch" and any(op.needs_read for op in ops):
        return (yield from _watch_flow(ops))
    units = [op.script(SCRIPT_SHA) if (op.needs_read and mode == "script") else op.direct() for op in ops]
    cmds = [c for u in units for c in u.cmds]
    uses_script = mode == "script" and any(op.needs_read for op in ops)
    if len(cmds) == 1 or not transaction:
        replies = yield cmds
        if uses_script and any(isinstance(r, NoScript) for r in replies):
            # SCRIPT FLUSH or a restart since we loaded it: load, send again
            # only what failed (each EVALSHA is one operation on its own)
            check((yield [(b"SCRIPT", b"LOAD", SCRIPT)])[0])
            again = [i for i, r in enumerate(replies) if isinstance(r, NoScript)]
            redo = yield [cmds[i] for i in again]
            for i, r in zip(again, redo):
                replies[i] = r
        return _run_units(units, replies)
    head: list[Cmd] = [(b"MULTI",)]
    if uses_script:  # inside the transaction, so no flush can come between
        head.append((b"SCRIPT", b"LOAD", SCRIPT))
    replies = yield head + cmds + [(b"EXEC",)]
    result = _exec_replies(replies, len(head) - 1 + len(cmds))
    assert result is not None  # no WATCH here
    return _run_units(units, result[len(head) - 1:])


def _watch_flow(ops: Sequence[Op]) -> Flow:
    """WATCH the records the ops read, read their fields, plan every op on
    that state, and write it all in one MULTI/EXEC; start again when another
    client changed a watched record (bounded, with jittered back-off)."""
    reads: dict[bytes, list[bytes]] = {}
    for op in ops:
        if op.needs_read:
            fs = reads.setdefault(op.key, [])
            for f in op.read_fields():
                if f not in fs:
                    fs.append(f)
    keys = list(reads)
    for attempt in range(MAX_WATCH_TRIES):
        cmds: list[Cmd] = [(b"WATCH", *keys)]
        for k in keys:
            cmds.append((b"EXISTS", k))
            if reads[k]:
                cmds.append((b"HMGET", k, *reads[k]))
        replies = yield cmds
        try:
            check(replies[0])
            states: dict[bytes, RecordState] = {}
            i = 1
            for k in keys:
                st = RecordState(bool(check(replies[i])))
                i += 1
                if reads[k]:
                    vals = check(replies[i])
                    i += 1
                    st.fields = dict(zip(reads[k], vals))
                states[k] = st
            units = [op.plan(states[op.key]) if op.key in states else op.direct() for op in ops]
        except Exception:  # a refused plan (record missing, corrupt field ...): release the WATCH first
            yield [(b"UNWATCH",)]
            raise
        body = [c for u in units for c in u.cmds]
        if not body:  # nothing to write (a pop of an empty list): the reads were the answer
            check((yield [(b"UNWATCH",)])[0])
            return _run_units(units, [])
        replies = yield [(b"MULTI",)] + body + [(b"EXEC",)]
        result = _exec_replies(replies, len(body))
        if result is not None:
            return _run_units(units, result)
        yield min(0.05, 0.0005 * (2 ** min(attempt, 7))) * random.random()
    raise ConflictError(f"gave up after {MAX_WATCH_TRIES} optimistic transactions lost to concurrent writers "
                        f"on {', '.join(k.decode('utf-8', 'replace') for k in keys[:3])}")


def detect_flow(forced: str | None) -> Flow:
    """Which atomic mode this server allows: SCRIPT LOAD succeeds ->
    "script"; "unknown command" -> "watch" (inferkv: no scripting); any
    other error (NOPERM ...) is raised, never taken for either."""
    reply = (yield [(b"SCRIPT", b"LOAD", SCRIPT)])[0]
    if isinstance(reply, BaseException):
        err = server_error(reply)
        from .errors import ScriptingUnavailable, UnknownCommand
        if isinstance(err, UnknownCommand):
            if forced == "script":
                said = str(err) if len(str(err)) <= 80 else str(err)[:77] + "..."
                raise ScriptingUnavailable(f"atomic='script' but the server has no scripting (SCRIPT LOAD: {said})") \
                    from err
            return "watch"
        raise err
    if text(reply) != SCRIPT_SHA:
        raise ProtocolError(f"SCRIPT LOAD answered {reply!r}, expected {SCRIPT_SHA}")
    return forced or "script"


def single(ops_out: list[Outcome]) -> Any:
    """The one outcome of a one-op batch: its value, or its error raised."""
    o = ops_out[0]
    if o.error is not None:
        raise o.error
    return o.value


def raise_first(outs: list[Outcome]) -> list[Any]:
    for o in outs:
        if o.error is not None:
            raise o.error
    return [o.value for o in outs]

