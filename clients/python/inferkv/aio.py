"""aio.py - the asyncio client: AsyncClient, AsyncSchema, AsyncRepository,
AsyncPipeline.

The same flows as the sync client (base.py, ops.py), driven over
redis.asyncio's BlockingConnectionPool.  Pipelines belong to the asyncio
task that opened them: a task started inside a pipeline (asyncio.gather,
create_task) inherits the context variable but never joins its parent's
pipeline; it gets its own, so concurrent tasks cannot queue into, or run,
each other's transactions.  A task cancelled in the middle of a command
closes its connection instead of returning it to the pool half-read.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, AsyncIterator, Generic, Sequence

from redis import asyncio as aioredis
from redis.exceptions import ResponseError

from . import _resp
from .base import ClientCore, CreateReport, Hit, Pending, PipelineState, RepoCore, SchemaCore, T, _id, \
    active_for, enter, first_error, leave
from .client import _embed_flow, _one, _watch_state
from .errors import PipelineError, ProtocolError, server_error
from .inference import (
    Generation,
    ModelInfo,
    RagAnswer,
    generate_args,
    load_args,
    parse_generation,
    parse_models,
    parse_rag,
    parse_stats,
    rag_args,
    sampling_args,
    STREAM_TTL,
    stream_key,
    xread_entries,
)
from .model import Loaded, Model
from .ops import AppendOp, DeleteOp, DictOp, Flow, GetOp, IncrOp, Op, PopOp, PushOp, RawOp, pack, single


class AsyncClient(ClientCore):
    """The asyncio twin of Client (same arguments, same methods, awaited)."""

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
            cls: type = _resp.AsyncUnixConnection
        else:
            kwargs.update(host=host, port=port)
            cls = _resp.AsyncConnection
        self._unix = unix_socket_path is not None
        self._plain_kwargs = kwargs
        self.max_connections = max_connections
        self.pool = aioredis.BlockingConnectionPool(connection_class=cls, max_connections=max_connections,
                                                    timeout=pool_timeout, protocol=protocol, **kwargs)
        self._redis: aioredis.Redis | None = None

    async def _run(self, flow: Flow) -> Any:
        try:
            req = next(flow)
        except StopIteration as stop:  # nothing to send: no connection taken
            return stop.value
        conn = await self.pool.get_connection("_")
        watching = False
        try:
            while True:
                if not req:  # a flow with nothing to send this step
                    resp: Any = []
                elif isinstance(req, (int, float)):
                    await asyncio.sleep(req)
                    resp = None
                else:
                    data = pack(req)  # a bad argument raises here, before anything is sent
                    try:
                        await conn.send_packed_command([data], check_health=False)
                        watching = _watch_state(req, watching)
                        resp = []
                        for _ in req:
                            try:
                                resp.append(await conn.read_response())
                            except ResponseError as e:
                                resp.append(e)
                    except BaseException:
                        await conn.disconnect()
                        raise
                try:
                    req = flow.send(resp)
                except StopIteration as stop:
                    return stop.value
        except BaseException:
            if watching:
                await conn.disconnect()
            raise
        finally:
            await self.pool.release(conn)

    async def execute(self, *args: Any) -> Any:
        return await self._run(_one(args))

    async def protocol(self) -> int:
        conn = await self.pool.get_connection("_")
        try:
            return int(conn.protocol)
        finally:
            await self.pool.release(conn)

    async def atomic_mode(self) -> str:
        return str(await self._run(self.mode_flow()))

    @property
    def redis(self) -> aioredis.Redis:
        """A plain redis.asyncio client on a RESP2 pool of its own (see Client.redis)."""
        if self._redis is None:
            kw = dict(self._plain_kwargs)
            cls = aioredis.UnixDomainSocketConnection if self._unix else aioredis.Connection
            pool = aioredis.BlockingConnectionPool(connection_class=cls, max_connections=self.max_connections, **kw)
            self._redis = aioredis.Redis(connection_pool=pool)
        return self._redis

    async def close(self) -> None:
        await self.pool.disconnect()
        if self._redis is not None:
            await self._redis.connection_pool.disconnect()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def _owner(self) -> object:
        return asyncio.current_task()

    def _pipeline(self) -> PipelineState | None:
        return active_for(self, self._owner())

    def schema(self, prefix: str = "app") -> "AsyncSchema":
        return AsyncSchema(self, prefix)

    def pipeline(self) -> "AsyncPipeline":
        return AsyncPipeline(self)

    async def generate(self, model: str, prompt: str | None = None, *, prompt_key: str | None = None,
                       max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
                       top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
                       seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
                       timeout_ms: int | None = None, store: str | None = None) -> Generation:
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, store)
        return parse_generation(await self._run(_one(generate_args(model, prompt, prompt_key, opts))))

    def stream(self, model: str, prompt: str | None = None, *, prompt_key: str | None = None,
               max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
               top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
               seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
               timeout_ms: int | None = None, store: str | None = None) -> "AsyncGenerationStream":
        """`async with client.stream(...) as s: async for piece in s: ...`"""
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, store)
        key = stream_key(self.namespace)
        return AsyncGenerationStream(self, generate_args(model, prompt, prompt_key, opts, key), key)

    async def embed(self, model: str, texts: str | Sequence[str], *, normalize: bool = True,
                    long: str = "refuse") -> Any:
        return await self._run(_embed_flow(model, texts, normalize, long))

    async def rag(self, generator: str, embedder: str, vset: str, question: str, *, count: int | None = None,
                  filter: str | None = None, filter_ef: int | None = None, ef: int | None = None,
                  contextkey_field: str | None = None, template_key: str | None = None, with_prompt: bool = False,
                  max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
                  seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
                  timeout_ms: int | None = None, store: str | None = None) -> RagAnswer:
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, store)
        args = rag_args(generator, embedder, vset, question, count=count, filter=filter, filter_ef=filter_ef, ef=ef,
                        contextkey_field=contextkey_field, template_key=template_key, with_prompt=with_prompt,
                        opts=opts)
        return parse_rag(await self._run(_one(args)))

    async def load_model(self, name: str, path: str, *, context: int | None = None,
                         aliases: Sequence[str] = ()) -> None:
        await self._run(_one(load_args(name, path, context, aliases)))

    async def unload_model(self, name: str) -> None:
        await self._run(_one(["INFER.UNLOAD", name]))

    async def models(self) -> list[ModelInfo]:
        return parse_models(await self._run(_one(["INFER.MODELS"])))

    async def infer_stats(self) -> dict[str, Any]:
        return parse_stats(await self._run(_one(["INFER.STATS"])))


class AsyncGenerationStream:
    """GenerationStream for asyncio: the generation runs as a task on a
    connection of its own; leaving the `async with` early cancels it."""

    def __init__(self, client: AsyncClient, args: list[Any], key: str) -> None:
        self._client = client
        self._args = args
        self._key = key
        self._buffer: deque[str] = deque()
        self._last: bytes = b"0-0"
        self._finished = False
        self._closed = False
        self._ttl_set = False
        self._task: asyncio.Task[Any] | None = None
        self._conn: Any = None
        self._client_id: Any = None
        self.result: Generation | None = None
        self._error: BaseException | None = None

    async def _start(self) -> None:
        kw = self._client.pool.connection_kwargs
        cls: Any = _resp.AsyncUnixConnection if kw.get("path") else _resp.AsyncConnection
        self._conn = cls(**kw)
        await self._conn.connect()
        await self._conn.send_command("CLIENT", "ID")
        self._client_id = await self._conn.read_response()
        self._task = asyncio.ensure_future(self._generate())

    async def _generate(self) -> Any:
        await self._conn.send_command(*self._args)
        return await self._conn.read_response()

    async def __aenter__(self) -> "AsyncGenerationStream":
        await self._start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        if self._task is None:
            await self._start()
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self._finished:
                await self.aclose()
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            if self._closed:
                raise StopAsyncIteration
            await self._poll()

    async def _poll(self) -> None:
        assert self._task is not None
        done_before = self._task.done()
        if done_before:
            reply = await self._client.execute("XREAD", "COUNT", 4096, "STREAMS", self._key, self._last)
        else:
            reply = await self._client.execute("XREAD", "COUNT", 256, "BLOCK", 100, "STREAMS", self._key, self._last)
        entries = xread_entries(reply)
        if entries and not self._ttl_set:  # see GenerationStream._poll
            await self._client.execute("EXPIRE", self._key, STREAM_TTL)
            self._ttl_set = True
        for eid, fields in entries:
            self._last = eid
            if "text" in fields:
                self._buffer.append(fields["text"])
            if "finish" in fields:
                await self._end()
        if not entries and done_before:
            await self._end()
            if self._error is None and self.result is None:
                self._error = ProtocolError("INFER.GENERATE STREAM ended without its final entry")

    async def _end(self) -> None:
        assert self._task is not None
        try:
            self.result = parse_generation(await self._task)
        except Exception as e:  # noqa: BLE001 - raised to the reader once the text is drained
            self._error = server_error(e)
        self._finished = True

    @property
    def error(self) -> BaseException | None:
        """The generation's error when it ended with one (also raised by the
        iteration that reaches the end; kept here when the stream was left
        early)."""
        return self._error

    async def _wait_final_entry(self, seconds: float = 5.0) -> None:
        """See GenerationStream._wait_final_entry."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            reply = await self._client.execute("XREAD", "COUNT", 4096, "BLOCK", 100, "STREAMS", self._key,
                                               self._last)
            for eid, fields in xread_entries(reply):
                self._last = eid
                if "finish" in fields:
                    return

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._task is not None and not self._finished:
                # the request may not be blocked yet when the first UNBLOCK comes
                unblocked = False
                while not self._task.done():
                    unblocked = bool(await self._client.execute("CLIENT", "UNBLOCK", self._client_id)) or unblocked
                    await asyncio.wait({self._task}, timeout=0.05)
                error = self._task.exception()
                if error is not None:  # kept, not raised: the caller left before the end
                    self._error = server_error(error)
                if unblocked:
                    await self._wait_final_entry()
            await self._client.execute("DEL", self._key)
        finally:
            if self._conn is not None:
                await self._conn.disconnect()


class AsyncPipeline:
    """`async with client.pipeline() as p:` - see Pipeline; owned by the
    task that entered it."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._state: PipelineState | None = None
        self._savepoint = 0
        self._joined = False
        self.results: list[Any] | None = None

    async def __aenter__(self) -> "AsyncPipeline":
        self._state, self._joined = enter(self._client, self._client._owner())
        self._savepoint = len(self._state.ops)
        return self

    async def __aexit__(self, et: Any, ev: Any, tb: Any) -> None:
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
            outs = await self._client._run(self._client.write_flow(st.ops))
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
            raise PipelineError("use the pipeline inside its `async with` block")
        p = st.add(op, what)
        assert p is not None
        return p

    def get(self, repo: "AsyncRepository[T]", id: str) -> Pending[T | None]:
        repo._alive()
        return self._add(GetOp(repo, id), f"get {repo.name} {id}")

    def safe_load(self, repo: "AsyncRepository[T]", id: str) -> Pending[Loaded]:
        repo._alive()
        return self._add(GetOp(repo, id, safe=True), f"safe_load {repo.name} {id}")

    def incr(self, repo: "AsyncRepository[T]", obj: str | Model, field: str, by: int | float = 1) -> Pending[Any]:
        return self._add(IncrOp(repo, _id(obj), field, by), f"incr {repo.name}.{field}")

    def append(self, repo: "AsyncRepository[T]", obj: str | Model, field: str, text: str) -> Pending[str]:
        return self._add(AppendOp(repo, _id(obj), field, text), f"append {repo.name}.{field}")

    def push(self, repo: "AsyncRepository[T]", obj: str | Model, field: str, *items: Any,
             left: bool = False) -> Pending[int]:
        return self._add(PushOp(repo, _id(obj), field, items, left), f"push {repo.name}.{field}")

    def pop(self, repo: "AsyncRepository[T]", obj: str | Model, field: str, *, left: bool = False) -> Pending[Any]:
        return self._add(PopOp(repo, _id(obj), field, left), f"pop {repo.name}.{field}")

    def dict_set(self, repo: "AsyncRepository[T]", obj: str | Model, field: str, key: Any,
                 value: Any) -> Pending[bool]:
        return self._add(DictOp(repo, _id(obj), field, key, value), f"dict_set {repo.name}.{field}")

    def dict_del(self, repo: "AsyncRepository[T]", obj: str | Model, field: str, key: Any) -> Pending[bool]:
        return self._add(DictOp(repo, _id(obj), field, key, delete=True), f"dict_del {repo.name}.{field}")

    def execute_command(self, *args: Any) -> Pending[Any]:
        return self._add(RawOp(args), f"{args[0]!r}")


class AsyncRepository(RepoCore[T], Generic[T]):
    """Repository for asyncio: the same methods, awaited (scan and scan_ids
    are async iterators)."""

    def __init__(self, schema: "AsyncSchema", cls: type[T], name: str) -> None:
        super().__init__(schema, cls, name)
        self.client = schema.client

    def _no_pipeline(self, what: str) -> None:
        if self.client._pipeline() is not None:
            raise PipelineError(f"{self.name}.{what}() inside a pipeline cannot return its value yet: "
                                f"use p.{what}({self.name}, ...), which returns a Pending")

    async def _update(self, op: Op) -> Any:
        self._alive()
        return single(await self.client._run(self.client.write_flow([op])))

    async def save(self, obj: T) -> T:
        from .ops import SaveOp

        self._alive()
        st = self.client._pipeline()
        if st is not None:
            if self.sourced:
                await self.client._run(self.embed_flow(obj))
            st.add(SaveOp(self, obj))
            return obj
        single(await self.client._run(self.save_flow(self.client, [obj])))
        return obj

    async def save_many(self, objs: Sequence[T]) -> None:
        self._alive()
        if not objs:
            return
        if self.client._pipeline() is not None:
            for o in objs:
                await self.save(o)
            return
        first_error(await self.client._run(self.save_flow(self.client, list(objs))))

    async def delete(self, obj: str | Model) -> bool | None:
        self._alive()
        op = DeleteOp(self, _id(obj))
        st = self.client._pipeline()
        if st is not None:
            st.add(op)
            return None
        return bool(single(await self.client._run(self.client.write_flow([op]))))

    async def incr(self, obj: str | Model, field: str, by: int | float = 1) -> Any:
        self._no_pipeline("incr")
        v = await self._update(IncrOp(self, _id(obj), field, by))
        if isinstance(obj, Model):
            setattr(obj, field, v)
        return v

    async def append(self, obj: str | Model, field: str, text: str) -> str:
        self._no_pipeline("append")
        v = await self._update(AppendOp(self, _id(obj), field, text))
        if isinstance(obj, Model):
            setattr(obj, field, v)
        return str(v)

    async def push(self, obj: str | Model, field: str, *items: Any, left: bool = False) -> int:
        self._no_pipeline("push")
        return int(await self._update(PushOp(self, _id(obj), field, items, left)))

    async def pop(self, obj: str | Model, field: str, *, left: bool = False) -> Any:
        self._no_pipeline("pop")
        return await self._update(PopOp(self, _id(obj), field, left))

    async def dict_set(self, obj: str | Model, field: str, key: Any, value: Any) -> bool:
        self._no_pipeline("dict_set")
        return bool(await self._update(DictOp(self, _id(obj), field, key, value)))

    async def dict_del(self, obj: str | Model, field: str, key: Any) -> bool:
        self._no_pipeline("dict_del")
        return bool(await self._update(DictOp(self, _id(obj), field, key, delete=True)))

    async def get(self, id: str) -> T | None:
        self._alive()
        return (await self.client._run(self.get_flow([id])))[0]  # type: ignore[no-any-return]

    async def get_many(self, ids: Sequence[str]) -> list[T | None]:
        self._alive()
        return list(await self.client._run(self.get_flow(list(ids)))) if ids else []

    async def safe_load(self, id: str) -> Loaded:
        self._alive()
        return (await self.client._run(self.get_flow([id], safe=True)))[0]  # type: ignore[no-any-return]

    async def exists(self, id: str) -> bool:
        self._alive()
        return bool(await self.client.execute("EXISTS", self.keys.record(id)))

    async def find(self, *, limit: int | None = None, offset: int = 0, **conds: Any) -> list[T]:
        return list(await self.client._run(self.find_flow(conds, limit, offset)))

    async def find_ids(self, *, limit: int | None = None, offset: int = 0, **conds: Any) -> list[str]:
        r = await self.client._run(self.find_ids_flow(conds, limit, offset))
        return list(r[0]) if r else []

    async def scan_ids(self, match: str = "*", count: int = 500) -> AsyncIterator[str]:
        cursor: Any = b"0"
        while True:
            cursor, ids = await self.client._run(self.scan_page_flow(cursor, match, count))
            for i in ids:
                yield i
            if cursor in (b"0", 0, "0"):
                return

    async def scan(self, match: str = "*", count: int = 500) -> AsyncIterator[T]:
        cursor: Any = b"0"
        while True:
            cursor, ids = await self.client._run(self.scan_page_flow(cursor, match, count))
            if ids:
                for o in await self.client._run(self.get_flow(ids)):
                    if o is not None:
                        yield o
            if cursor in (b"0", 0, "0"):
                return

    async def similar(self, query: Any, k: int = 10, *, field: str | None = None, filter: str | None = None,
                      ef: int | None = None, embedder: str | None = None) -> list[Hit[T]]:
        return list(await self.client._run(self.similar_flow(query, k, field, filter, ef, embedder)))

    async def rag(self, question: str, *, generator: str, field: str | None = None, k: int | None = None,
                  filter: str | None = None, embedder: str | None = None, with_prompt: bool = False,
                  max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
                  seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
                  timeout_ms: int | None = None) -> RagAnswer:
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, None)
        return parse_rag(await self.client._run(_one(self.rag_args(question, generator, field, k, filter, embedder,
                                                                   with_prompt, opts))))


class AsyncSchema(SchemaCore):
    """Schema for asyncio (register is immediate; create and drop are awaited)."""

    def __init__(self, client: AsyncClient, prefix: str = "app") -> None:
        super().__init__(prefix)
        self.client = client

    def register(self, cls: type[T], *, name: str | None = None) -> AsyncRepository[T]:
        name = name or cls.__name__
        self._check_new(name)
        repo = AsyncRepository(self, cls, name)
        self.repos[name] = repo
        return repo

    async def create(self, *, rebuild: bool = False) -> CreateReport:
        report = CreateReport()
        for repo in self.repos.values():
            await self.client._run(self.create_flow(repo, rebuild, report))
        return report

    async def drop(self) -> int:
        n = int(await self.client._run(self.drop_flow()))
        self.dropped = True
        self.repos.clear()
        return n


__all__ = ["AsyncClient", "AsyncGenerationStream", "AsyncPipeline", "AsyncRepository", "AsyncSchema"]
