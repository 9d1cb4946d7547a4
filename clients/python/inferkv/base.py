"""base.py - what the sync and the asyncio client share: every multi-step
operation as a flow (ops.py explains flows), query conditions, pipeline
state and Pending results.

Why flows here and thin drivers elsewhere: a repository's find(), a
schema's create() or a similarity search each take several round trips
and decisions between them.  Written once as generators, the sync
Repository and the AsyncRepository cannot disagree; each only sends what
the flow yields and hands back the replies.
"""
from __future__ import annotations

import contextvars
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Generic, Iterable, Sequence, TypeVar

from .codecs import vector_bytes
from .errors import IndexNotReady, PipelineError, SchemaDropped, SchemaMismatch
from .model import FieldSpec, Invalid, Model, ModelSpec, check_model_name
from .ops import (
    Flow,
    Keyspace,
    Op,
    Outcome,
    Repo,
    as_map,
    batch_flow,
    check,
    decode_record,
    detect_flow,
    glob_escape,
    text,
)

log = logging.getLogger("inferkv")

T = TypeVar("T", bound=Model)
V = TypeVar("V")


# --------------------------------------------------------------------------
# Query conditions
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A range condition on a Range-indexed field; None is unbounded."""

    lo: Any = None
    hi: Any = None
    lo_open: bool = False
    hi_open: bool = False


def between(lo: Any, hi: Any, *, lo_open: bool = False, hi_open: bool = False) -> Bound:
    """lo <= value <= hi (open ends exclude the bound)."""
    return Bound(lo, hi, lo_open, hi_open)


def gt(x: Any) -> Bound:
    return Bound(x, None, True, False)


def ge(x: Any) -> Bound:
    return Bound(x, None, False, False)


def lt(x: Any) -> Bound:
    return Bound(None, x, False, True)


def le(x: Any) -> Bound:
    return Bound(None, x, False, False)


@dataclass(frozen=True)
class OneOf:
    """Equality with any of several values (a Tag-indexed field)."""

    values: tuple[Any, ...]


def one_of(*values: Any) -> OneOf:
    return OneOf(tuple(values))


@dataclass
class Hit(Generic[V]):
    """A similarity search result: the record and its VSIM score (1 is the
    same direction, 0 the opposite)."""

    obj: V
    score: float


def _score_arg(x: float | None, open_: bool, inf: str) -> bytes:
    if x is None:
        return inf.encode()
    s = "+inf" if x == math.inf else "-inf" if x == -math.inf else repr(float(x))
    return (("(" if open_ else "") + s).encode()


# --------------------------------------------------------------------------
# Pipelines
# --------------------------------------------------------------------------


class Pending(Generic[V]):
    """The result of an operation queued in a pipeline, known once the
    outermost pipeline has run.  `value` raises PipelineError before that,
    and the operation's own error if it failed."""

    __slots__ = ("_outcome", "_what")

    def __init__(self, what: str) -> None:
        self._outcome: Outcome | None = None
        self._what = what

    @property
    def done(self) -> bool:
        return self._outcome is not None

    @property
    def value(self) -> V:
        o = self._outcome
        if o is None:
            raise PipelineError(f"{self._what}: its pipeline has not run yet (the outermost `with` runs it)")
        if o.error is not None:
            raise o.error
        return o.value  # type: ignore[no-any-return]

    def _set(self, outcome: Outcome) -> None:
        self._outcome = outcome

    def __repr__(self) -> str:
        return f"<Pending {self._what}: {'done' if self.done else 'waiting'}>"


class PipelineState:
    """The operations queued by one outermost pipeline and everything nested
    in it.  It belongs to one client and one owner (a thread, or an asyncio
    task): code elsewhere never joins it, even when it inherited the context
    variable (asyncio tasks copy their parent's context)."""

    def __init__(self, client: object, owner: object) -> None:
        self.client = client
        self.owner = owner
        self.ops: list[Op] = []
        self.pendings: list[Pending[Any] | None] = []
        self.open = True
        self.token: contextvars.Token[PipelineState | None] | None = None

    def add(self, op: Op, what: str | None = None) -> Pending[Any] | None:
        p: Pending[Any] | None = Pending(what) if what is not None else None
        self.ops.append(op)
        self.pendings.append(p)
        return p

    def truncate(self, n: int) -> None:
        """Forget what a nested pipeline queued (it ended with an exception)."""
        for p in self.pendings[n:]:
            if p is not None:
                p._set(Outcome(error=PipelineError("discarded: its nested pipeline raised")))
        del self.ops[n:]
        del self.pendings[n:]

    def resolve(self, outs: Sequence[Outcome]) -> BaseException | None:
        first: BaseException | None = None
        for p, o in zip(self.pendings, outs):
            if p is not None:
                p._set(o)
            if o.error is not None and first is None:
                first = o.error
        return first

    def fail(self, error: BaseException) -> None:
        for p in self.pendings:
            if p is not None and not p.done:
                p._set(Outcome(error=error))


ACTIVE: contextvars.ContextVar[PipelineState | None] = contextvars.ContextVar("inferkv_pipeline", default=None)


def enter(client: object, owner: object) -> tuple[PipelineState, bool]:
    """The pipeline a `with client.pipeline()` works on: the active one of
    this client and owner (joined: True), or a new one made active."""
    cur = active_for(client, owner)
    if cur is not None:
        return cur, True
    st = PipelineState(client, owner)
    st.token = ACTIVE.set(st)
    return st, False


def leave(st: PipelineState) -> bool:
    """Makes st inactive; False when another pipeline entered after st is
    still active (an out-of-order exit: st's variable is restored later, by
    the exit of that one).  Restores every closed pipeline left in the
    variable by such an exit, so that none stays referenced."""
    st.open = False
    if ACTIVE.get() is not st:
        return False
    cur: PipelineState | None = st
    while cur is not None and not cur.open and cur.token is not None:
        token, cur.token = cur.token, None
        try:
            ACTIVE.reset(token)
        except ValueError:  # made in another context (a task's copy): nothing to restore here
            break
        cur = ACTIVE.get()
    return True


def active_for(client: object, owner: object) -> PipelineState | None:
    st = ACTIVE.get()
    if st is not None and st.open and st.client is client and st.owner == owner:
        return st
    return None


# --------------------------------------------------------------------------
# What both clients share
# --------------------------------------------------------------------------


class ClientCore:
    """The atomic mode (asked of the server once per client) and settings."""

    def __init__(self, atomic: str, namespace: str) -> None:
        if atomic not in ("auto", "script", "watch"):
            raise ValueError(f"atomic must be 'auto', 'script' or 'watch', got {atomic!r}")
        self._atomic = atomic
        self._mode: str | None = "watch" if atomic == "watch" else None
        self.namespace = namespace

    def mode_flow(self) -> Flow:
        """The mode for operations that read before they write: asked once
        (SCRIPT LOAD), then cached.  Two flows asking at once both load the
        script, which is harmless."""
        if self._mode is None:
            mode = yield from detect_flow("script" if self._atomic == "script" else None)
            if mode == "watch":
                log.info("inferkv: the server has no scripting; atomic updates use WATCH/MULTI transactions")
            self._mode = mode
        return self._mode

    def write_flow(self, ops: Sequence[Op]) -> Flow:
        mode = None
        if any(op.needs_read for op in ops):
            mode = yield from self.mode_flow()
        return (yield from batch_flow(ops, mode))


class RepoCore(Repo, Generic[T]):
    """A model bound to a schema: its compiled spec, keys and the flows of
    every operation (the sync / async Repository add the I/O)."""

    def __init__(self, schema: "SchemaCore", cls: type[T], name: str) -> None:
        self.schema = schema
        self.cls = cls
        self.spec = ModelSpec(cls, check_model_name(name))
        self.keys = Keyspace(schema.prefix, name)
        self.name = name
        self._ready = False
        # vector fields computed from a source text (save may embed first)
        self.sourced = any(f.vector is not None and f.vector.source is not None for f in self.spec.vectors)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.keys.record_prefix}*>"

    def _alive(self) -> None:
        if self.schema.dropped:
            raise SchemaDropped(f"{self.name}: its schema (prefix {self.schema.prefix!r}) was dropped")

    def key(self, id_or_obj: str | Model) -> str:
        """The record's key, `prefix:ModelName:id`."""
        return self.keys.record(_id(id_or_obj)).decode("utf-8")

    # --------------------------------------------------------------- writes

    def embed_flow(self, obj: Any) -> Flow:
        """Fills each vector field that has a source text and no vector (or
        whose source changed since its vector was computed or loaded) with
        INFER.EMBED of that text."""
        if not self.sourced:
            return None
        todo = []
        seen = obj.__dict__.setdefault("_inferkv_sources", {})
        for f in self.spec.vectors:
            spec = f.vector
            if spec is None or spec.source is None:
                continue
            src = getattr(obj, spec.source)
            if src is None:
                continue
            if getattr(obj, f.name) is None or seen.get(f.name) != src:
                todo.append((f, src))
        if not todo:
            return None
        cmds = [("INFER.EMBED", f.vector.embedder, src, "NORMALIZE", "yes", "LONG", "refuse", "FP32")
                for f, src in todo if f.vector is not None]
        replies = yield cmds
        for (f, src), r in zip(todo, replies):
            from .codecs import vector_from_bytes

            blobs = check(r)
            assert f.vector is not None
            setattr(obj, f.name, vector_from_bytes(blobs[0], f.vector.dim))
            seen[f.name] = src
        return None

    def remember_sources(self, obj: Any) -> Any:
        """A loaded object's vectors were computed from its loaded texts."""
        if obj is not None and self.sourced:
            seen = obj.__dict__.setdefault("_inferkv_sources", {})
            for f in self.spec.vectors:
                if f.vector is not None and f.vector.source is not None:
                    seen[f.name] = getattr(obj, f.vector.source)
        return obj

    def save_flow(self, client: ClientCore, objs: Sequence[Any]) -> Flow:
        from .ops import SaveOp

        if self.sourced:
            for obj in objs:
                yield from self.embed_flow(obj)
        ops = [SaveOp(self, o) for o in objs]
        return (yield from client.write_flow(ops))

    # ---------------------------------------------------------------- reads

    def get_flow(self, ids: Sequence[str], safe: bool = False) -> Flow:
        replies = yield [(b"HGETALL", self.keys.record(i)) for i in ids]
        out = [decode_record(self, i, r, safe) for i, r in zip(ids, replies)]
        for o in out:
            self.remember_sources(o.obj if safe else o)
        return out

    def index_check_flow(self) -> Flow:
        """find() needs the indexes built: the schema record must hold our
        definition and say ready (cached once seen)."""
        if self._ready:
            return None
        r = yield [(b"HMGET", self.keys.meta, b"definition", b"ready")]
        definition, ready = check(r[0])
        if definition is None:
            raise IndexNotReady(f"{self.name}: indexes not created; call schema.create() first")
        if definition != self.spec.definition().encode():
            raise SchemaMismatch(f"{self.name}: the server's index definition {text(definition)} differs from "
                                 f"this process's {self.spec.definition()}")
        if ready != b"1":
            raise IndexNotReady(f"{self.name}: indexes are being built by schema.create()")
        self._ready = True
        return None

    def _conditions(self, conds: dict[str, Any]) -> list[tuple[FieldSpec, Any, list[Any]]]:
        """Each condition with the commands that read its ids."""
        if not conds:
            raise ValueError("find() needs at least one condition (scan() walks every record)")
        out = []
        for name, want in conds.items():
            f = self.spec.field(name)
            cmd: list[tuple[Any, ...]]
            if f.index == "range":
                if isinstance(want, Bound):
                    lo = None if want.lo is None else self.spec.score(f, want.lo)
                    hi = None if want.hi is None else self.spec.score(f, want.hi)
                    cmd = [(b"ZRANGEBYSCORE", self.keys.range_key(f), _score_arg(lo, want.lo_open, "-inf"),
                            _score_arg(hi, want.hi_open, "+inf"))]
                else:
                    s = self.spec.score(f, want)
                    cmd = [(b"ZRANGEBYSCORE", self.keys.range_key(f), _score_arg(s, False, ""),
                            _score_arg(s, False, ""))]
            elif f.index == "tag":
                if isinstance(want, Bound):
                    raise TypeError(f"{self.name}.{name} has a Tag index: equality or one_of(), not a range")
                values = want.values if isinstance(want, OneOf) else (want,)
                keys = [self.keys.tag_key(f, self._tag_raw(f, v)) for v in values]
                cmd = [(b"SUNION", *keys)] if keys else []
            else:
                raise ValueError(f"{self.name}.{name} is not indexed: annotate it with Tag() or Range() "
                                 "(find() never scans)")
            out.append((f, want, cmd))
        return out

    def _tag_raw(self, f: FieldSpec, v: Any) -> bytes:
        raw = self.spec.encode_value(f, v)
        if raw is None:
            raise ValueError(f"{self.name}.{f.name}: None is not indexed")
        return raw

    def _matches(self, obj: Any, conds: list[tuple[FieldSpec, Any, list[Any]]]) -> bool:
        """Re-checks a loaded record against the conditions (it may have
        changed between the index read and the record read)."""
        for f, want, _ in conds:
            v = getattr(obj, f.name)
            if v is None or isinstance(v, Invalid):
                return False
            if f.index == "tag":
                values = want.values if isinstance(want, OneOf) else (want,)
                raw = self.spec.encode_value(f, v)
                if raw not in [self._tag_raw(f, x) for x in values]:
                    return False
            else:
                s = self.spec.score(f, v)
                if isinstance(want, Bound):
                    if want.lo is not None:
                        lo = self.spec.score(f, want.lo)
                        if s < lo or (want.lo_open and s == lo):
                            return False
                    if want.hi is not None:
                        hi = self.spec.score(f, want.hi)
                        if s > hi or (want.hi_open and s == hi):
                            return False
                elif s != self.spec.score(f, want):
                    return False
        return True

    def find_ids_flow(self, conds: dict[str, Any], limit: int | None, offset: int) -> Flow:
        self._alive()
        yield from self.index_check_flow()
        cs = self._conditions(conds)
        if any(not cmd for _, _, cmd in cs):  # one_of() with no values matches nothing
            return []
        cmds = [c for _, _, cmd in cs for c in cmd]
        replies = yield cmds
        ordered: list[bytes] | None = None
        sets: list[set[bytes]] = []
        for (f, _, _), r in zip(cs, replies):
            ids = check(r)
            if f.index == "range" and ordered is None:
                ordered = list(ids)
            sets.append(set(ids))
        common = set.intersection(*sets) if sets else set()
        if ordered is None:
            ordered = sorted(common)
        ids = [i.decode("utf-8") for i in ordered if i in common]
        return ids[offset:None if limit is None else offset + limit], cs

    def find_flow(self, conds: dict[str, Any], limit: int | None, offset: int) -> Flow:
        r = yield from self.find_ids_flow(conds, limit, offset)
        if not r:
            return []
        ids, cs = r
        if not ids:
            return []
        objs = yield from self.get_flow(ids)
        return [o for o in objs if o is not None and self._matches(o, cs)]

    def scan_page_flow(self, cursor: bytes, match: str, count: int) -> Flow:
        self._alive()
        pattern = glob_escape(self.keys.record_prefix) + match
        r = check((yield [(b"SCAN", cursor, b"MATCH", pattern.encode("utf-8"), b"COUNT", count,
                           b"TYPE", b"hash")])[0])
        cursor, keys = r[0], r[1]
        return cursor, [self.keys.id_of(k) for k in keys]

    # ------------------------------------------------------------- vectors

    def _vector_field(self, name: str | None) -> FieldSpec:
        if name is not None:
            f = self.spec.field(name)
            if f.vector is None:
                raise TypeError(f"{self.name}.{name} is not a Vector field")
            return f
        if len(self.spec.vectors) != 1:
            raise TypeError(f"{self.name} has {len(self.spec.vectors)} Vector fields: name one with field=")
        return self.spec.vectors[0]

    def similar_flow(self, query: Any, k: int, field: str | None, filter: str | None, ef: int | None,
                     embedder: str | None) -> Flow:
        self._alive()
        f = self._vector_field(field)
        assert f.vector is not None
        if isinstance(query, str):
            model = embedder or f.vector.embedder
            if model is None:
                raise TypeError(f"{self.name}.{f.name}: a text query needs an embedder (Vector(..., embedder=) "
                                "or similar(embedder=))")
            blob = check((yield [("INFER.EMBED", model, query, "NORMALIZE", "yes", "LONG", "refuse", "FP32")])[0])[0]
        else:
            blob = vector_bytes(query, f.vector.dim)
        args: list[Any] = [b"VSIM", self.keys.vset(f), b"FP32", blob, b"WITHSCORES", b"COUNT", k]
        if filter is not None:
            args += [b"FILTER", filter]
        if ef is not None:
            args += [b"EF", ef]
        scores = as_map((yield [tuple(args)])[0])
        ids = [text(i) for i in scores]
        values = [float(v if isinstance(v, (int, float)) else text(v)) for v in scores.values()]
        if not ids:
            return []
        objs = yield from self.get_flow(ids)
        return [Hit(o, s) for o, s in zip(objs, values) if o is not None]

    def rag_args(self, question: str, generator: str, field: str | None, k: int | None, filter: str | None,
                 embedder: str | None, with_prompt: bool, opts: list[Any]) -> list[Any]:
        from .inference import rag_args

        self._alive()
        f = self._vector_field(field)
        assert f.vector is not None
        if f.vector.source is None:
            raise TypeError(f"{self.name}.{f.name} has no source text field: INFER.RAG reads the chunk from it")
        model = embedder or f.vector.embedder
        if model is None:
            raise TypeError(f"{self.name}.{f.name} has no embedder")
        return rag_args(generator, model, self.keys.vset(f), question, count=k, filter=filter, filter_ef=None,
                        ef=None, contextkey_field=None, template_key=None, with_prompt=with_prompt, opts=opts)


def _id(x: str | Model) -> str:
    if isinstance(x, Model):
        return x.id
    if isinstance(x, str):
        return x
    raise TypeError(f"expected an id (str) or a model object, got {type(x).__name__}")


@dataclass
class CreateReport:
    """What Schema.create() did per model: "ready" (already built),
    "built" (this call indexed `indexed` records) or "none" (no index);
    `corrupt` lists records with fields that could not be indexed."""

    models: dict[str, str] = field(default_factory=dict)
    indexed: dict[str, int] = field(default_factory=dict)
    corrupt: list[Any] = field(default_factory=list)


class SchemaCore:
    """Models bound to one client and one key prefix (no global registry:
    drop the schema, or let it go, and nothing remains)."""

    def __init__(self, prefix: str) -> None:
        if not prefix or any(c in prefix for c in "*?[]\\ "):
            raise ValueError(f"bad prefix {prefix!r}: non-empty, no spaces or glob characters")
        self.prefix = prefix
        self.repos: dict[str, RepoCore[Any]] = {}
        self.dropped = False

    def _check_new(self, name: str) -> None:
        if self.dropped:
            raise SchemaDropped(f"schema {self.prefix!r} was dropped")
        if name in self.repos:
            raise ValueError(f"a model named {name!r} is already registered in schema {self.prefix!r}")

    def create_flow(self, repo: RepoCore[Any], rebuild: bool, report: CreateReport) -> Flow:
        """Makes repo's indexes exist and agree with its definition; safe to
        run from many processes at once (see docs/python.md#indexes)."""
        keys, spec = repo.keys, repo.spec
        d = spec.definition().encode()
        r = yield [(b"HSETNX", keys.meta, b"definition", d), (b"HMGET", keys.meta, b"definition", b"ready")]
        check(r[0])
        stored, ready = check(r[1])
        if stored != d:
            if not rebuild:
                raise SchemaMismatch(f"{repo.name}: the server's index definition {text(stored)} differs from "
                                     f"this process's {d.decode()}; run schema.create(rebuild=True) once to "
                                     "rebuild the indexes")
            yield from self._unlink_flow([glob_escape(keys.idx_base.decode()) + "*",
                                          glob_escape(keys.vec_base.decode()) + "*"])
            check((yield [(b"HSET", keys.meta, b"definition", d), (b"HDEL", keys.meta, b"ready")])[0])
        elif ready == b"1":
            report.models[repo.name] = "ready"
            repo._ready = True
            return None
        if not (spec.tags or spec.ranges or spec.vectors):
            report.models[repo.name] = "none"
        else:
            n = 0
            cursor: Any = b"0"
            pattern = (glob_escape(keys.record_prefix) + "*").encode("utf-8")
            while True:
                page = check((yield [(b"SCAN", cursor, b"MATCH", pattern, b"COUNT", 500, b"TYPE", b"hash")])[0])
                cursor, found = page[0], page[1]
                if found:
                    n += yield from self._backfill_flow(repo, found, report)
                if cursor in (b"0", 0, "0"):
                    break
            report.models[repo.name] = "built"
            report.indexed[repo.name] = n
        check((yield [(b"HSET", keys.meta, b"ready", b"1")])[0])
        repo._ready = True
        return None

    def _backfill_flow(self, repo: RepoCore[Any], keys_found: list[bytes], report: CreateReport) -> Flow:
        """Indexes one SCAN page under WATCH, so that a record a writer changes
        meanwhile is indexed as it is after that write (the writer maintains
        its own entries; a lost WATCH reads the page again)."""
        from .ops import MAX_WATCH_TRIES, _exec_replies

        spec, keys = repo.spec, repo.keys
        for attempt in range(MAX_WATCH_TRIES):
            replies = yield [(b"WATCH", *keys_found)] + [(b"HGETALL", k) for k in keys_found]
            check(replies[0])
            cmds: list[Any] = []
            for k, r in zip(keys_found, replies[1:]):
                raw = as_map(r)
                if not raw:
                    continue
                id = keys.id_of(k)
                bid = id.encode("utf-8")
                obj, errors = spec.safe_decode(k.decode("utf-8", "replace"), id, raw)
                if errors:
                    from .errors import DecodeError

                    report.corrupt.append(DecodeError(k.decode("utf-8", "replace"), errors))
                for f in spec.tags:
                    v = raw.get(f.bname)
                    if v is not None and not isinstance(getattr(obj, f.name), Invalid):
                        cmds.append((b"SADD", keys.tag_key(f, v), bid))
                for f in spec.ranges:
                    v = getattr(obj, f.name)
                    if v is not None and not isinstance(v, Invalid):
                        cmds.append((b"ZADD", keys.range_key(f), spec.score(f, v), bid))
                for f in spec.vectors:
                    v = getattr(obj, f.name)
                    if v is not None and not isinstance(v, Invalid) and f.vector is not None:
                        cmds.append((b"VADD", keys.vset(f), b"FP32", raw[f.bname], bid, f.vector.quant,
                                     b"SETATTR", spec.attributes(obj, f)))
            if not cmds:
                check((yield [(b"UNWATCH",)])[0])
                return 0
            replies = yield [(b"MULTI",)] + cmds + [(b"EXEC",)]
            result = _exec_replies(replies, len(cmds))
            if result is not None:
                for x in result:
                    check(x)
                return len(keys_found)
            yield 0.001 * (1 + attempt % 10)
        from .errors import ConflictError

        raise ConflictError(f"{repo.name}: gave up indexing a page of records that kept changing")

    def _unlink_flow(self, patterns: Iterable[str]) -> Flow:
        n = 0
        for pattern in patterns:
            cursor: Any = b"0"
            while True:
                page = check((yield [(b"SCAN", cursor, b"MATCH", pattern.encode("utf-8"), b"COUNT", 1000)])[0])
                cursor, found = page[0], page[1]
                if found:
                    n += check((yield [(b"UNLINK", *found)])[0])
                if cursor in (b"0", 0, "0"):
                    break
        return n

    def drop_flow(self) -> Flow:
        n = 0
        for repo in self.repos.values():
            n += yield from self._unlink_flow(repo.keys.patterns())
            n += check((yield [(b"DEL", repo.keys.meta)])[0])
        return n


def first_error(outs: Sequence[Outcome]) -> None:
    for o in outs:
        if o.error is not None:
            raise o.error

