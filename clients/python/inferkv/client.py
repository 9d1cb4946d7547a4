"""client.py - the synchronous client: Client, Schema, Repository, Pipeline.

The work is done by flows (ops.py, base.py); this module drives them over
a redis-py BlockingConnectionPool of RESP3 connections (_resp.py): take a
connection, send each batch a flow yields as one write, read one reply per
command, hand them back, return the connection.  A connection that an
exception leaves in doubt (a read cut short, a WATCH not yet released) is
closed rather than returned to the pool.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Generic, Iterator, Sequence

import redis
from redis.exceptions import ResponseError

from . import _resp
from .base import (
    ClientCore,
    CreateReport,
    Hit,
    Pending,
    PipelineState,
    RepoCore,
    SchemaCore,
    T,
    _id,
    active_for,
    enter,
    leave,
    first_error,
)
from .errors import PipelineError, ProtocolError, server_error
from .inference import (
    Generation,
    ModelInfo,
    RagAnswer,
    embed_args,
    embed_batches,
    generate_args,
    load_args,
    parse_generation,
    parse_models,
    parse_rag,
    parse_stats,
    parse_vectors,
    rag_args,
    sampling_args,
    STREAM_TTL,
    stream_key,
    xread_entries,
)
from .model import Loaded, Model
from .ops import (
    AppendOp,
    DeleteOp,
    DictOp,
    Flow,
    GetOp,
    IncrOp,
    Op,
    PopOp,
    PushOp,
    RawOp,
    check,
    pack,
    single,
)



def _name(c: Any) -> bytes:
    n = c[0]
    return n.upper() if isinstance(n, bytes) else str(n).upper().encode()


def _watch_state(cmds: list[Any], watching: bool) -> bool:
    """Whether the connection holds a WATCH after sending cmds.  The flows
    put WATCH first in its batch and EXEC / UNWATCH last (a WATCH queued
    inside MULTI is refused by the server), so the ends say it all."""
    if _name(cmds[0]) == b"WATCH":
        watching = True
    if _name(cmds[-1]) in (b"EXEC", b"UNWATCH", b"DISCARD"):
        watching = False
    return watching


class Client(ClientCore):
    """A connection pool to one inferkv (or Redis) server, and everything the
    typed layer does over it.

    max_connections: the pool's size; a caller waits up to pool_timeout
    seconds for a free connection.  protocol: None (RESP3 when the server
    has HELLO, else RESP2), 3 or 2.  atomic: "auto" (scripts where the
    server has them, else WATCH/MULTI), "script" or "watch".
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, *, db: int = 0, username: str | None = None,
                 password: str | None = None, unix_socket_path: str | None = None, max_connections: int = 16,
                 pool_timeout: float = 20.0, socket_timeout: float | None = None, protocol: int | None = None,
                 atomic: str = "auto", client_name: str | None = None, namespace: str = "inferkv") -> None:
        super().__init__(atomic, namespace)
        if protocol not in (None, 2, 3):
            raise ValueError(f"protocol must be None, 2 or 3, got {protocol!r}")
        kwargs: dict[str, Any] = dict(db=db, username=username, password=password, socket_timeout=socket_timeout,
                                      client_name=client_name)
        if unix_socket_path is not None:
            kwargs["path"] = unix_socket_path
            cls: type = _resp.UnixConnection
        else:
            kwargs.update(host=host, port=port)
            cls = _resp.Connection
        self._plain_kwargs = dict(kwargs)
        self._plain_kwargs["connection_class"] = (redis.UnixDomainSocketConnection if unix_socket_path
                                                  else redis.Connection)
        self.max_connections = max_connections
        self.pool = redis.BlockingConnectionPool(connection_class=cls, max_connections=max_connections,
                                                 timeout=pool_timeout, protocol=protocol, **kwargs)
        self._redis: redis.Redis | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ plumbing

    def _run(self, flow: Flow) -> Any:
        """Drives a flow on one pooled connection; returns its value."""
        try:
            req = next(flow)
        except StopIteration as stop:  # nothing to send: no connection taken
            return stop.value
        conn = self.pool.get_connection("_")
        watching = False
        try:
            while True:
                if not req:  # a flow with nothing to send this step
                    resp: Any = []
                elif isinstance(req, (int, float)):
                    time.sleep(req)
                    resp = None
                else:
                    data = pack(req)  # a bad argument raises here, before anything is sent
                    try:
                        conn.send_packed_command([data], check_health=False)
                        watching = _watch_state(req, watching)
                        resp = []
                        for _ in req:
                            try:
                                resp.append(conn.read_response())
                            except ResponseError as e:
                                resp.append(e)
                    except BaseException:
                        conn.disconnect()  # replies may be left unread
                        raise
                try:
                    req = flow.send(resp)
                except StopIteration as stop:
                    return stop.value
        except BaseException:
            if watching:
                conn.disconnect()
            raise
        finally:
            self.pool.release(conn)

    def execute(self, *args: Any) -> Any:
        """One command; the reply as the RESP3 parser gives it (maps as dicts,
        doubles as floats), an error reply raised as its typed error."""
        return self._run(_one(args))

    @property
    def protocol(self) -> int:
        """The protocol the pool's connections speak (2 or 3)."""
        conn = self.pool.get_connection("_")
        try:
            return int(conn.protocol)
        finally:
            self.pool.release(conn)

    @property
    def atomic_mode(self) -> str:
        """"script" or "watch": how updates that read before they write run
        here (asked of the server on first use, then cached)."""
        return str(self._run(self.mode_flow()))

    @property
    def redis(self) -> redis.Redis:
        """A plain redis-py client for commands the typed layer does not wrap.
        redis-py 4.3's helpers parse RESP2 shapes only, so it has a RESP2
        pool of its own (same size) rather than sharing the RESP3 one."""
        with self._lock:
            if self._redis is None:
                kw = dict(self._plain_kwargs)
                cls = kw.pop("connection_class")
                pool = redis.BlockingConnectionPool(connection_class=cls, max_connections=self.max_connections,
                                                    **kw)
                self._redis = redis.Redis(connection_pool=pool)
            return self._redis

    def close(self) -> None:
        """Closes every connection (in use or idle)."""
        self.pool.disconnect()
        if self._redis is not None:
            self._redis.connection_pool.disconnect()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _owner(self) -> object:
        return threading.get_ident()

    def _pipeline(self) -> PipelineState | None:
        return active_for(self, self._owner())

    # ------------------------------------------------------------- models

    def schema(self, prefix: str = "app") -> "Schema":
        """A new Schema (models under keys `prefix:ModelName:id`)."""
        return Schema(self, prefix)

    def pipeline(self) -> "Pipeline":
        """A pipeline context: writes inside it are queued and sent as one
        MULTI/EXEC when the outermost pipeline exits without an exception."""
        return Pipeline(self)

    # ---------------------------------------------------------- inference

    def generate(self, model: str, prompt: str | None = None, *, prompt_key: str | None = None,
                 max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
                 top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
                 seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
                 timeout_ms: int | None = None, store: str | None = None) -> Generation:
        """INFER.GENERATE: the whole answer at once."""
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, store)
        return parse_generation(self._run(_one(generate_args(model, prompt, prompt_key, opts))))

    def stream(self, model: str, prompt: str | None = None, *, prompt_key: str | None = None,
               max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
               top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
               seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
               timeout_ms: int | None = None, store: str | None = None) -> "GenerationStream":
        """INFER.GENERATE ... STREAM: an iterator over the pieces of text as
        the server produces them (use it in a `with` so that leaving early
        cancels the generation); `.result` is the Generation at the end."""
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, store)
        key = stream_key(self.namespace)
        return GenerationStream(self, generate_args(model, prompt, prompt_key, opts, key), key)

    def embed(self, model: str, texts: str | Sequence[str], *, normalize: bool = True, long: str = "refuse") -> Any:
        """INFER.EMBED ... FP32: a float32 vector for one text, an (n, dim)
        array for a sequence of texts.  Texts that INFER.EMBED could read as
        options (a last text "FP32" ...) are sent in an order where it cannot."""
        return self._run(_embed_flow(model, texts, normalize, long))

    def rag(self, generator: str, embedder: str, vset: str, question: str, *, count: int | None = None,
            filter: str | None = None, filter_ef: int | None = None, ef: int | None = None,
            contextkey_field: str | None = None, template_key: str | None = None, with_prompt: bool = False,
            max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
            top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
            seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
            timeout_ms: int | None = None, store: str | None = None) -> RagAnswer:
        """INFER.RAG ... WITHSOURCES: the answer and the elements it came from."""
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, store)
        args = rag_args(generator, embedder, vset, question, count=count, filter=filter, filter_ef=filter_ef, ef=ef,
                        contextkey_field=contextkey_field, template_key=template_key, with_prompt=with_prompt,
                        opts=opts)
        return parse_rag(self._run(_one(args)))

    def load_model(self, name: str, path: str, *, context: int | None = None, aliases: Sequence[str] = ()) -> None:
        """INFER.LOAD (path relative to the server's infer-models-dir)."""
        self._run(_one(load_args(name, path, context, aliases)))

    def unload_model(self, name: str) -> None:
        self._run(_one(["INFER.UNLOAD", name]))

    def models(self) -> list[ModelInfo]:
        return parse_models(self._run(_one(["INFER.MODELS"])))

    def infer_stats(self) -> dict[str, Any]:
        return parse_stats(self._run(_one(["INFER.STATS"])))


def _one(args: Sequence[Any]) -> Flow:
    return check((yield [tuple(args)])[0])


def _embed_flow(model: str, texts: str | Sequence[str], normalize: bool, long: str) -> Flow:
    from .codecs import _numpy

    single_text = isinstance(texts, str)
    items = [texts] if isinstance(texts, str) else list(texts)
    if not items:
        raise ValueError("embed() needs at least one text")
    for t in items:
        if not isinstance(t, str):
            raise TypeError(f"texts must be str, got {type(t).__name__}")
    batches = embed_batches(items)
    replies = yield [tuple(embed_args(model, [items[i] for i in order], normalize, long)) for order in batches]
    rows: list[Any] = [None] * len(items)
    for order, r in zip(batches, replies):
        vecs = parse_vectors(r, len(order))
        for i, v in zip(order, vecs):
            rows[i] = v
    out = _numpy().stack(rows)
    return out[0] if single_text else out


class GenerationStream:
    """The text of one INFER.GENERATE ... STREAM as it arrives.

    The generation runs on a connection of its own (it blocks that
    connection until the end) in a background thread; this iterator reads
    the stream key with XREAD BLOCK through the pool.  close() (or leaving
    the `with`) before the end cancels the generation with CLIENT UNBLOCK,
    and the stream key is deleted in every case."""

    def __init__(self, client: Client, args: list[Any], key: str) -> None:
        self._client = client
        self._key = key
        self._buffer: deque[str] = deque()
        self._last: bytes = b"0-0"
        self._finished = False
        self._closed = False
        self._ttl_set = False
        self.result: Generation | None = None
        self._error: BaseException | None = None
        self._reply: Any = None
        kw = client.pool.connection_kwargs
        self._conn: Any = _resp.UnixConnection(**kw) if kw.get("path") else _resp.Connection(**kw)
        self._conn.connect()
        self._conn.send_command("CLIENT", "ID")
        self._client_id = self._conn.read_response()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._generate, args=(args,), daemon=True)
        self._thread.start()

    def _generate(self, args: list[Any]) -> None:
        try:
            self._conn.send_command(*args)
            self._reply = self._conn.read_response()
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread, which raises it
            self._error = server_error(e)
        finally:
            self._done.set()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._finished:
                self.close()
                if self._error is not None:
                    raise self._error
                raise StopIteration
            if self._closed:
                raise StopIteration
            self._poll()

    def _poll(self) -> None:
        done_before = self._done.is_set()
        if done_before:  # everything is written: read what is left without blocking
            reply = self._client.execute("XREAD", "COUNT", 4096, "STREAMS", self._key, self._last)
        else:
            reply = self._client.execute("XREAD", "COUNT", 256, "BLOCK", 100, "STREAMS", self._key, self._last)
        entries = xread_entries(reply)
        if entries and not self._ttl_set:
            # a safety net: a stream never closed (its process died) expires
            self._client.execute("EXPIRE", self._key, STREAM_TTL)
            self._ttl_set = True
        for eid, fields in entries:
            self._last = eid
            if "text" in fields:
                self._buffer.append(fields["text"])
            if "finish" in fields:
                self._end()
        if not entries and done_before:
            # the reply is in and the stream has nothing more: a refused
            # request (no entry at all) or a server that wrote no final entry
            self._end()
            if self._error is None and self.result is None:
                self._error = ProtocolError("INFER.GENERATE STREAM ended without its final entry")

    def _end(self) -> None:
        self._done.wait()
        self._thread.join()
        if self._error is None and self._reply is not None:
            try:
                self.result = parse_generation(self._reply)
            except Exception as e:  # noqa: BLE001 - raised to the reader at the end
                self._error = e
        self._finished = True

    @property
    def error(self) -> BaseException | None:
        """The generation's error when it ended with one (also raised by the
        iteration that reaches the end; kept here when the stream was left
        early)."""
        return self._error

    def close(self) -> None:
        """Cancels the generation if it is still running, deletes the stream
        key, closes the generation's connection."""
        if self._closed:
            return
        self._closed = True
        try:
            # the request may not be blocked yet when the first UNBLOCK comes
            unblocked = False
            while not self._done.is_set():
                unblocked = bool(self._client.execute("CLIENT", "UNBLOCK", self._client_id)) or unblocked
                self._done.wait(0.05)
            self._thread.join()
            if unblocked and not self._finished:
                self._wait_final_entry()
            self._client.execute("DEL", self._key)
        finally:
            self._conn.disconnect()

    def _wait_final_entry(self, seconds: float = 5.0) -> None:
        """After CLIENT UNBLOCK the server answers at once but writes the
        stream's final ("cancelled") entry when the engine stops, later;
        deleting the key before that would see it come back."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reply = self._client.execute("XREAD", "COUNT", 4096, "BLOCK", 100, "STREAMS", self._key, self._last)
            for eid, fields in xread_entries(reply):
                self._last = eid
                if "finish" in fields:
                    return

    def __enter__(self) -> "GenerationStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Pipeline:
    """`with client.pipeline() as p:` - writes made inside are queued and
    sent as one MULTI/EXEC when the outermost pipeline exits normally.

    - Nested pipelines (of the same client, in the same thread) join the
      outer one; one that exits with an exception drops only what it queued.
    - On every exit path the context variable is reset: an exception, a
      failed EXEC, or success; a discarded pipeline sends nothing.
    - Repository.save() and .delete() join automatically; reads and atomic
      updates whose value you need are queued through p.get(), p.incr() ...,
      which return a Pending (Repository.incr() inside a pipeline raises
      PipelineError instead of returning a value it cannot know yet).
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._state: PipelineState | None = None
        self._savepoint = 0
        self._joined = False
        self.results: list[Any] | None = None

    def __enter__(self) -> "Pipeline":
        self._state, self._joined = enter(self._client, self._client._owner())
        self._savepoint = len(self._state.ops)
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> None:
        st = self._state
        assert st is not None
        if self._joined:
            if et is not None:
                st.truncate(self._savepoint)
            return None
        in_order = leave(st)
        if et is not None:
            st.fail(PipelineError("discarded: the pipeline's block raised"))
            return None
        if not in_order:
            st.fail(PipelineError("discarded: pipelines exited out of order"))
            raise PipelineError("pipelines exited out of order: the one entered last must exit first")
        if not st.ops:
            self.results = []
            return None
        try:
            outs = self._client._run(self._client.write_flow(st.ops))
        except BaseException as e:
            st.fail(e)
            raise
        error = st.resolve(outs)
        self.results = [o.value if o.error is None else o.error for o in outs]
        if error is not None:
            raise error

    def _add(self, op: Op, what: str) -> Pending[Any]:
        st = self._state
        if st is None or not st.open:
            raise PipelineError("use the pipeline inside its `with` block")
        p = st.add(op, what)
        assert p is not None
        return p

    def get(self, repo: "Repository[T]", id: str) -> Pending[T | None]:
        repo._alive()
        return self._add(GetOp(repo, id), f"get {repo.name} {id}")

    def safe_load(self, repo: "Repository[T]", id: str) -> Pending[Loaded]:
        repo._alive()
        return self._add(GetOp(repo, id, safe=True), f"safe_load {repo.name} {id}")

    def incr(self, repo: "Repository[T]", obj: str | Model, field: str, by: int | float = 1) -> Pending[Any]:
        return self._add(IncrOp(repo, _id(obj), field, by), f"incr {repo.name}.{field}")

    def append(self, repo: "Repository[T]", obj: str | Model, field: str, text: str) -> Pending[str]:
        return self._add(AppendOp(repo, _id(obj), field, text), f"append {repo.name}.{field}")

    def push(self, repo: "Repository[T]", obj: str | Model, field: str, *items: Any,
             left: bool = False) -> Pending[int]:
        return self._add(PushOp(repo, _id(obj), field, items, left), f"push {repo.name}.{field}")

    def pop(self, repo: "Repository[T]", obj: str | Model, field: str, *, left: bool = False) -> Pending[Any]:
        return self._add(PopOp(repo, _id(obj), field, left), f"pop {repo.name}.{field}")

    def dict_set(self, repo: "Repository[T]", obj: str | Model, field: str, key: Any, value: Any) -> Pending[bool]:
        return self._add(DictOp(repo, _id(obj), field, key, value), f"dict_set {repo.name}.{field}")

    def dict_del(self, repo: "Repository[T]", obj: str | Model, field: str, key: Any) -> Pending[bool]:
        return self._add(DictOp(repo, _id(obj), field, key, delete=True), f"dict_del {repo.name}.{field}")

    def execute_command(self, *args: Any) -> Pending[Any]:
        """Any command, queued in the transaction; its raw reply."""
        return self._add(RawOp(args), f"{args[0]!r}")


class Repository(RepoCore[T], Generic[T]):
    """A model bound to a Schema: save, load, find, update, search."""

    client: Client

    def __init__(self, schema: "Schema", cls: type[T], name: str) -> None:
        super().__init__(schema, cls, name)
        self.client = schema.client

    def _no_pipeline(self, what: str) -> None:
        if self.client._pipeline() is not None:
            raise PipelineError(f"{self.name}.{what}() inside a pipeline cannot return its value yet: "
                                f"use p.{what}({self.name}, ...), which returns a Pending")

    def _update(self, op: Op) -> Any:
        self._alive()
        return single(self.client._run(self.client.write_flow([op])))

    # -------------------------------------------------------------- writes

    def save(self, obj: T) -> T:
        """Writes obj (all fields, indexes, vectors) atomically; inside a
        pipeline it is queued.  Returns obj."""
        from .ops import SaveOp

        self._alive()
        st = self.client._pipeline()
        if st is not None:
            if self.sourced:
                self.client._run(self.embed_flow(obj))
            st.add(SaveOp(self, obj))
            return obj
        single(self.client._run(self.save_flow(self.client, [obj])))
        return obj

    def save_many(self, objs: Sequence[T]) -> None:
        """Writes several records in one MULTI/EXEC."""
        self._alive()
        if not objs:
            return
        st = self.client._pipeline()
        if st is not None:
            for o in objs:
                self.save(o)
            return
        first_error(self.client._run(self.save_flow(self.client, list(objs))))

    def delete(self, obj: str | Model) -> bool | None:
        """Deletes the record and its index and vector entries; True when it
        existed.  Inside a pipeline it is queued and returns None."""
        self._alive()
        op = DeleteOp(self, _id(obj))
        st = self.client._pipeline()
        if st is not None:
            st.add(op)
            return None
        return bool(single(self.client._run(self.client.write_flow([op]))))

    def incr(self, obj: str | Model, field: str, by: int | float = 1) -> Any:
        """Adds `by` to an int or float field of a stored record, atomically;
        returns the new value (and sets it on obj when an object is given)."""
        self._no_pipeline("incr")
        v = self._update(IncrOp(self, _id(obj), field, by))
        if isinstance(obj, Model):
            setattr(obj, field, v)
        return v

    def append(self, obj: str | Model, field: str, text: str) -> str:
        """Appends to a str field atomically; returns the new value."""
        self._no_pipeline("append")
        v = self._update(AppendOp(self, _id(obj), field, text))
        if isinstance(obj, Model):
            setattr(obj, field, v)
        return str(v)

    def push(self, obj: str | Model, field: str, *items: Any, left: bool = False) -> int:
        """Adds items to a list field (at the front, in order, with left);
        returns the new length.  A given object is not updated (reload it)."""
        self._no_pipeline("push")
        return int(self._update(PushOp(self, _id(obj), field, items, left)))

    def pop(self, obj: str | Model, field: str, *, left: bool = False) -> Any:
        """Removes and returns the last (left: first) item; None if empty."""
        self._no_pipeline("pop")
        return self._update(PopOp(self, _id(obj), field, left))

    def dict_set(self, obj: str | Model, field: str, key: Any, value: Any) -> bool:
        """Sets one key of a dict field; True when the key is new."""
        self._no_pipeline("dict_set")
        return bool(self._update(DictOp(self, _id(obj), field, key, value)))

    def dict_del(self, obj: str | Model, field: str, key: Any) -> bool:
        """Removes one key of a dict field; True when it was there."""
        self._no_pipeline("dict_del")
        return bool(self._update(DictOp(self, _id(obj), field, key, delete=True)))

    # --------------------------------------------------------------- reads

    def get(self, id: str) -> T | None:
        """The record, or None when it does not exist; DecodeError when a
        field does not decode (naming the key, the field and why)."""
        self._alive()
        return self.client._run(self.get_flow([id]))[0]  # type: ignore[no-any-return]

    def get_many(self, ids: Sequence[str]) -> list[T | None]:
        self._alive()
        return list(self.client._run(self.get_flow(list(ids)))) if ids else []

    def safe_load(self, id: str) -> Loaded:
        """(object, failed fields): each failed field holds an Invalid with
        the stored bytes and the reason; obj is None for a missing record."""
        self._alive()
        return self.client._run(self.get_flow([id], safe=True))[0]  # type: ignore[no-any-return]

    def exists(self, id: str) -> bool:
        self._alive()
        return bool(self.client.execute("EXISTS", self.keys.record(id)))

    def find(self, *, limit: int | None = None, offset: int = 0, **conds: Any) -> list[T]:
        """Records matching every condition, through the Tag and Range
        indexes: `field=value`, `field=one_of(a, b)` (Tag), `field=between(lo,
        hi)` / gt / ge / lt / le (Range).  Ordered by the first range
        condition, else by id."""
        return list(self.client._run(self.find_flow(conds, limit, offset)))

    def find_ids(self, *, limit: int | None = None, offset: int = 0, **conds: Any) -> list[str]:
        r = self.client._run(self.find_ids_flow(conds, limit, offset))
        return list(r[0]) if r else []

    def scan_ids(self, match: str = "*", count: int = 500) -> Iterator[str]:
        """Every id whose key matches `prefix:Model:<match>`, through SCAN
        (never KEYS): a record present for the whole scan is seen at least
        once (SCAN's guarantee), so ids may repeat."""
        cursor: Any = b"0"
        while True:
            cursor, ids = self.client._run(self.scan_page_flow(cursor, match, count))
            yield from ids
            if cursor in (b"0", 0, "0"):
                return

    def scan(self, match: str = "*", count: int = 500) -> Iterator[T]:
        """The records of scan_ids(), loaded a page at a time."""
        cursor: Any = b"0"
        while True:
            cursor, ids = self.client._run(self.scan_page_flow(cursor, match, count))
            if ids:
                for o in self.client._run(self.get_flow(ids)):
                    if o is not None:
                        yield o
            if cursor in (b"0", 0, "0"):
                return

    def similar(self, query: Any, k: int = 10, *, field: str | None = None, filter: str | None = None,
                ef: int | None = None, embedder: str | None = None) -> list[Hit[T]]:
        """The k records whose vector is nearest the query (VSIM): a vector,
        or a text embedded on the server (INFER.EMBED with the field's
        embedder).  filter: a FILTER expression over the records' scalar
        fields (`.age > 30 and .city == "Oslo"`)."""
        return list(self.client._run(self.similar_flow(query, k, field, filter, ef, embedder)))

    def rag(self, question: str, *, generator: str, field: str | None = None, k: int | None = None,
            filter: str | None = None, embedder: str | None = None, with_prompt: bool = False,
            max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
            top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
            seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
            timeout_ms: int | None = None) -> RagAnswer:
        """INFER.RAG over this model's vector set: the records' source texts
        are the chunks; the sources' elements are record ids."""
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, None)
        args = self.rag_args(question, generator, field, k, filter, embedder, with_prompt, opts)
        return parse_rag(self.client._run(_one(args)))


class Schema(SchemaCore):
    """Models of one application under one key prefix.  No registry exists
    outside it: register() binds a model here, drop() deletes every key of
    its models and unbinds them."""

    def __init__(self, client: Client, prefix: str = "app") -> None:
        super().__init__(prefix)
        self.client = client

    def register(self, cls: type[T], *, name: str | None = None) -> Repository[T]:
        """Binds a Model subclass; keys are `prefix:<name or class name>:id`."""
        name = name or cls.__name__
        self._check_new(name)
        repo = Repository(self, cls, name)
        self.repos[name] = repo
        return repo

    def create(self, *, rebuild: bool = False) -> CreateReport:
        """Records each model's index definition on the server and builds its
        indexes from the records already there.  Idempotent, and safe from
        many processes at once; a definition that differs from the one
        stored raises SchemaMismatch (rebuild=True replaces it)."""
        report = CreateReport()
        for repo in self.repos.values():
            self.client._run(self.create_flow(repo, rebuild, report))
        return report

    def drop(self) -> int:
        """Deletes every key of the registered models (records, indexes,
        vector sets, schema records) through SCAN + UNLINK; the repositories
        refuse further use.  Returns the number of keys deleted."""
        n = int(self.client._run(self.drop_flow()))
        self.dropped = True
        self.repos.clear()
        return n


__all__ = ["Client", "GenerationStream", "Pipeline", "Repository", "Schema", "Hit"]
