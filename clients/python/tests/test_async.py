"""test_async.py - the asyncio client does what the sync one does (same flows)."""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any, Optional

import pytest

import inferkv
from inferkv import Model, Range, Tag, between


class Task(Model):
    title: Annotated[str, Tag()]
    prio: Annotated[int, Range()] = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    owner: Optional[str] = None


def test_async_repository_parity(server: Any) -> None:
    """save / get / safe_load / find / scan / atomic updates / delete through
    AsyncRepository give what the sync Repository gives for the same data."""

    async def main() -> None:
        c = inferkv.AsyncClient(port=server.port)
        sync = inferkv.Client(port=server.port)
        try:
            await c.execute("FLUSHALL")
            s = c.schema("as")
            tasks = s.register(Task)
            await s.create()
            await tasks.save_many([Task(id=f"t{i}", title="a" if i % 2 else "b", prio=i) for i in range(10)])
            t3 = await tasks.get("t3")
            assert t3 is not None and t3.prio == 3
            assert [t.id for t in await tasks.find(title="a", prio=between(2, 6))] == ["t3", "t5"]
            assert await tasks.incr(t3, "prio", 10) == 13 and t3.prio == 13
            assert await tasks.push("t3", "notes", "x", "y") == 2
            assert await tasks.pop("t3", "notes", left=True) == "x"
            assert await tasks.append("t3", "title", "!") == "a!"
            ids = sorted([i async for i in tasks.scan_ids()])
            assert ids == sorted(f"t{i}" for i in range(10))
            assert await tasks.delete("t0") is True
            sync.execute("HSET", tasks.key("t1"), "prio", "high")
            with pytest.raises(inferkv.DecodeError, match="prio"):
                await tasks.get("t1")
            loaded = await tasks.safe_load("t1")
            assert [e.field for e in loaded.errors] == ["prio"]
            same = sync.schema("as").register(Task)
            assert same.get("t3") == await tasks.get("t3")
            async with c.pipeline() as p:
                n = p.incr(tasks, "t3", "prio", 1)
                await tasks.save(Task(id="t99", title="z"))
            assert n.value == 14 and await tasks.exists("t99")
            with pytest.raises(inferkv.RecordNotFound):
                await tasks.incr("ghost", "prio")
            assert await s.drop() > 0
            with pytest.raises(inferkv.SchemaDropped):
                await tasks.get("t3")
        finally:
            await c.close()
            sync.close()

    asyncio.run(main())


Emb3 = inferkv.Vector(3, quant="NOQUANT")


def test_async_vectors(inferkv_server: Any) -> None:
    """similar() through the asyncio client (inferkv-server: vector sets)."""

    class V(Model):
        name: str
        emb: Emb3

    async def main() -> None:
        c = inferkv.AsyncClient(port=inferkv_server.port)
        try:
            await c.execute("FLUSHALL")
            repo = c.schema("av").register(V)
            await repo.save_many([V(id="x", name="x", emb=[1, 0, 0]), V(id="y", name="y", emb=[0, 1, 0])])
            hits = await repo.similar([0.1, 1, 0], k=2)
            assert [h.obj.id for h in hits] == ["y", "x"]
        finally:
            await c.execute("FLUSHALL")
            await c.close()

    asyncio.run(main())
