"""test_pipeline.py - pipelines: one transaction, nesting, every exit path,
threads and asyncio tasks each with their own."""
from __future__ import annotations

import asyncio
import random
import threading
from typing import Annotated, Any

import pytest

import inferkv
from inferkv import Model, Tag


class Item2(Model):
    name: Annotated[str, Tag()]
    n: int = 0


def stat(client: inferkv.Client, cmd: str) -> int:
    """calls of one command so far (INFO commandstats)."""
    info = client.execute("INFO", "commandstats")
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith(f"cmdstat_{cmd}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


@pytest.fixture
def items(schema: inferkv.Schema) -> inferkv.Repository[Item2]:
    return schema.register(Item2)


def test_pipeline_is_one_transaction(client: inferkv.Client, items: inferkv.Repository[Item2]) -> None:
    """Writes inside are invisible until the block ends, then all land in one
    MULTI/EXEC; Pendings resolve to the values."""
    observer = inferkv.Client(port=client.pool.connection_kwargs["port"])
    execs = stat(client, "exec")
    with client.pipeline() as p:
        a = items.save(Item2(id="a", name="x"))
        items.save(Item2(id="b", name="y"))
        got = p.get(items, "a")
        raw = p.execute_command("HGET", items.key("b"), "name")
        assert observer.execute("EXISTS", items.key("a")) == 0
        with pytest.raises(inferkv.PipelineError):
            _ = got.value
    assert got.value == a and raw.value == b"y"
    assert stat(client, "exec") == execs + 1
    observer.close()


def test_nested_pipelines_join_the_outer(client: inferkv.Client, items: inferkv.Repository[Item2]) -> None:
    """An inner pipeline adds to the outer one: nothing runs at its exit,
    everything runs once at the outer exit."""
    execs = stat(client, "exec")
    with client.pipeline() as outer:
        items.save(Item2(id="a", name="x"))
        with client.pipeline() as inner:
            items.save(Item2(id="b", name="y"))
            got = inner.get(items, "a")
        assert not got.done and client.redis.exists(items.key("b")) == 0
    assert got.value is not None and got.value.name == "x"
    assert items.get("b") is not None
    assert stat(client, "exec") == execs + 1
    assert len(outer.results or []) == 3 and inner.results is None


def test_inner_exception_drops_only_the_inner_ops(client: inferkv.Client, items: inferkv.Repository[Item2]) -> None:
    """A nested pipeline that raises takes back only what it queued; the
    outer one (which caught the error) still runs its own writes."""
    with client.pipeline():
        items.save(Item2(id="a", name="x"))
        with pytest.raises(RuntimeError):
            with client.pipeline() as inner:
                items.save(Item2(id="b", name="y"))
                lost = inner.get(items, "a")
                raise RuntimeError("boom")
        items.save(Item2(id="c", name="z"))
    assert items.get("a") is not None and items.get("c") is not None and items.get("b") is None
    with pytest.raises(inferkv.PipelineError, match="discarded"):
        _ = lost.value


def test_exception_discards_and_resets(client: inferkv.Client, items: inferkv.Repository[Item2]) -> None:
    """Review finding "pipeline context variable not reset on exceptions": a
    block that raises sends nothing, its Pendings say so, and the next write
    outside runs at once (it is not queued into the dead pipeline)."""
    with pytest.raises(KeyError):
        with client.pipeline() as p:
            items.save(Item2(id="a", name="x"))
            pending = p.get(items, "a")
            raise KeyError("boom")
    assert client.execute("EXISTS", items.key("a")) == 0
    with pytest.raises(inferkv.PipelineError, match="discarded"):
        _ = pending.value
    items.save(Item2(id="b", name="y"))
    assert client.execute("EXISTS", items.key("b")) == 1
    assert inferkv.base.ACTIVE.get() is None


def test_failed_execution_resets_too(client: inferkv.Client, items: inferkv.Repository[Item2]) -> None:
    """A pipeline whose transaction the server refuses (an unknown command
    queued) raises that error, applies nothing, and resets: the next save is
    immediate.  A command failing inside EXEC raises its error while the
    other operations' Pendings hold their results."""
    with pytest.raises(inferkv.UnknownCommand):
        with client.pipeline() as p:
            items.save(Item2(id="a", name="x"))
            p.execute_command("NOSUCHCOMMAND")
    assert client.execute("EXISTS", items.key("a")) == 0
    items.save(Item2(id="b", name="y"))
    assert client.execute("EXISTS", items.key("b")) == 1
    client.execute("SET", "str", "v")
    with pytest.raises(inferkv.WrongType):
        with client.pipeline() as p:
            ok = p.execute_command("SET", "k", "1")
            bad = p.execute_command("HGET", "str", "f")
    assert ok.value == b"OK"
    with pytest.raises(inferkv.WrongType):
        _ = bad.value
    items.save(Item2(id="c", name="z"))
    assert client.execute("EXISTS", items.key("c")) == 1


def test_out_of_order_exit_is_refused(client: inferkv.Client, items: inferkv.Repository[Item2]) -> None:
    """Two pipelines entered by hand and exited in the wrong order: the
    first exit raises PipelineError (it would otherwise clobber the second's
    state) and sends nothing; the second still works; afterwards no
    pipeline is active."""
    other = inferkv.Client(port=client.pool.connection_kwargs["port"])
    p1 = client.pipeline().__enter__()
    items.save(Item2(id="a", name="x"))  # queued in p1
    p2 = other.pipeline().__enter__()
    with pytest.raises(inferkv.PipelineError, match="out of order"):
        p1.__exit__(None, None, None)
    p2.__exit__(None, None, None)
    assert client.execute("EXISTS", items.key("a")) == 0
    items.save(Item2(id="b", name="y"))
    assert client.execute("EXISTS", items.key("b")) == 1
    assert inferkv.base.ACTIVE.get() is None
    other.close()


def test_value_returning_update_inside_pipeline_is_refused(client: inferkv.Client,
                                                           items: inferkv.Repository[Item2]) -> None:
    """items.incr() inside a pipeline would have to return a value it cannot
    know yet: it raises PipelineError pointing to p.incr(), which queues it."""
    items.save(Item2(id="a", name="x"))
    with client.pipeline() as p:
        with pytest.raises(inferkv.PipelineError, match="p.incr"):
            items.incr("a", "n")
        n = p.incr(items, "a", "n", 2)
    assert n.value == 2


def test_pipeline_sees_its_own_writes(atomic_schema: inferkv.Schema, atomic_client: inferkv.Client) -> None:
    """In one pipeline, an update after a save of the same record works on
    the saved value (script: the server runs them in order; WATCH: the plan
    carries the save forward), and the tag index ends up right."""
    repo = atomic_schema.register(Item2)
    repo.save(Item2(id="a", name="old", n=10))
    with atomic_client.pipeline() as p:
        repo.save(Item2(id="a", name="mid", n=1))
        n = p.incr(repo, "a", "n", 5)
        s = p.append(repo, "a", "name", "!")
        repo.delete("b")
    assert (n.value, s.value) == (6, "mid!")
    atomic_schema.create()
    assert [i.id for i in repo.find(name="mid!")] == ["a"]
    assert repo.find(name="old") == [] and repo.find(name="mid") == []


def test_threads_do_not_share_pipelines(client: inferkv.Client, items: inferkv.Repository[Item2]) -> None:
    """A save in another thread while this thread is inside a pipeline runs
    at once: it neither joins nor disturbs this thread's pipeline."""
    done = threading.Event()
    with client.pipeline() as p:
        items.save(Item2(id="mine", name="x"))
        t = threading.Thread(target=lambda: (items.save(Item2(id="theirs", name="y")), done.set()))
        t.start()
        t.join()
        assert done.is_set() and client.redis.exists(items.key("theirs")) == 1
    assert len(p.results or []) == 1


def test_gather_100_tasks_each_get_their_own(server: Any) -> None:
    """Review finding "nested or concurrent pipelines in one asyncio task
    overwrite each other": 100 tasks run by asyncio.gather - started inside
    an outer pipeline, so they inherit its context variable - each open a
    pipeline (and a nested one), sleep at random points and save their own
    record: each task's results hold exactly its own operations, the outer
    pipeline only its own, and every record is stored."""

    async def main() -> None:
        c = inferkv.AsyncClient(port=server.port, max_connections=8)
        await c.execute("FLUSHALL")
        repo = c.schema("g").register(Item2)

        async def task(i: int) -> list[Any]:
            await asyncio.sleep(random.random() * 0.01)
            async with c.pipeline() as p:
                await repo.save(Item2(id=f"t{i}", name=f"n{i}", n=i))
                await asyncio.sleep(random.random() * 0.01)
                async with c.pipeline() as inner:
                    got = inner.get(repo, f"t{i}")
                    await asyncio.sleep(random.random() * 0.01)
                await repo.save(Item2(id=f"u{i}", name=f"m{i}"))
            assert got.value is not None and got.value.n == i
            return p.results or []

        async with c.pipeline() as outer:
            await repo.save(Item2(id="outer", name="o"))
            results = await asyncio.gather(*[task(i) for i in range(100)])
        assert outer.results == [None]
        for i, r in enumerate(results):
            assert len(r) == 3 and r[1].id == f"t{i}", (i, r)
        names = sorted([o.name async for o in repo.scan()])
        assert len(names) == 201
        assert inferkv.base.ACTIVE.get() is None
        await c.execute("FLUSHALL")
        await c.close()

    asyncio.run(main())


def test_async_exception_resets(server: Any) -> None:
    """The asyncio pipeline resets on an exception too: the next save runs at
    once, and a cancelled task leaves no pipeline behind."""

    async def main() -> None:
        c = inferkv.AsyncClient(port=server.port)
        await c.execute("FLUSHALL")
        repo = c.schema("ae").register(Item2)
        with pytest.raises(ValueError):
            async with c.pipeline():
                await repo.save(Item2(id="a", name="x"))
                raise ValueError
        await repo.save(Item2(id="b", name="y"))
        assert await c.execute("EXISTS", repo.key("a")) == 0
        assert await c.execute("EXISTS", repo.key("b")) == 1

        async def stuck() -> None:
            async with c.pipeline():
                await repo.save(Item2(id="c", name="z"))
                await asyncio.sleep(10)

        t = asyncio.ensure_future(stuck())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await repo.save(Item2(id="d", name="w"))
        assert await c.execute("EXISTS", repo.key("c")) == 0
        assert await c.execute("EXISTS", repo.key("d")) == 1
        await c.execute("FLUSHALL")
        await c.close()

    asyncio.run(main())
