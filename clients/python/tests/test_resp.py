"""test_resp.py - RESP3 over redis-py 4.3, the pool, raw commands, error classes."""
from __future__ import annotations

import asyncio
import threading

import pytest
from redis.connection import Encoder

import inferkv
from inferkv import _resp
from inferkv.errors import error_class_for


class FakeBuffer:
    """The two methods of redis-py's SocketBuffer the parser uses."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def readline(self) -> bytes:
        i = self.data.index(b"\r\n", self.pos)
        line = self.data[self.pos:i]
        self.pos = i + 2
        return line

    def read(self, n: int) -> bytes:
        d = self.data[self.pos:self.pos + n]
        self.pos += n + 2
        return d


def parse(data: bytes) -> object:
    p = _resp.Resp3Parser(socket_read_size=65536)
    p._buffer = FakeBuffer(data)
    p.encoder = Encoder("utf-8", "strict", False)
    return p.read_response()


def test_parser_reads_every_resp3_type() -> None:
    """Each RESP3 type becomes the Python value the module doc promises;
    attributes are dropped and pushes skipped so the reply after them is read."""
    assert parse(b"%2\r\n+a\r\n:1\r\n$1\r\nb\r\n,2.5\r\n") == {b"a": 1, b"b": 2.5}
    assert parse(b"~2\r\n#t\r\n#f\r\n") == [True, False]
    assert parse(b"_\r\n") is None
    assert parse(b"(12345678901234567890\r\n") == 12345678901234567890
    assert parse(b"=8\r\ntxt:abcd\r\n") == b"abcd"
    assert parse(b",inf\r\n") == float("inf")
    assert parse(b"|1\r\n+ttl\r\n:3\r\n$2\r\nok\r\n") == b"ok"
    assert parse(b">2\r\n+message\r\n+x\r\n:7\r\n") == 7
    assert parse(b"*2\r\n$-1\r\n*-1\r\n") == [None, None]
    err = parse(b"!21\r\nSYNTAX invalid syntax\r\n")
    assert isinstance(err, inferkv.ServerError) and "SYNTAX" in str(err)
    wt = parse(b"-WRONGTYPE Operation against a key\r\n")
    assert isinstance(wt, inferkv.WrongType)


def test_error_texts_map_to_typed_classes() -> None:
    """The server's error texts (quoted from src/infercmd and the engine's
    scheduler) become the documented classes."""
    cases = {
        "ERR no such model 'x' (INFER.LOAD it first)": inferkv.ModelNotLoaded,
        "ERR generation failed: queue full (64 requests waiting)": inferkv.QueueFull,
        "ERR embedding failed: queue full (64 requests waiting)": inferkv.QueueFull,
        "ERR prompt (10 tokens) + MAXTOKENS 9999 exceed the context of 512": inferkv.ContextOverflow,
        "ERR generation failed: prompt + max tokens (99) exceed the KV budget of 64 tokens": inferkv.ContextOverflow,
        "TIMEOUT generation did not finish within 5 ms": inferkv.InferTimeout,
        "UNBLOCKED generation cancelled via CLIENT UNBLOCK": inferkv.Cancelled,
        "ERR model 'e' is an encoder (it makes embeddings): use INFER.EMBED": inferkv.WrongModelKind,
        "ERR model 's' is a generator, not an encoder: INFER.EMBED needs one": inferkv.WrongModelKind,
        "ERR cannot load model: no such file": inferkv.ModelLoadError,
        "ERR infer-models-dir is not set: loading models is disabled": inferkv.ModelLoadError,
        "ERR vector set 'k' does not exist": inferkv.VectorSetMissing,
        "ERR Vector dimension mismatch - got 3 but set has 4": inferkv.DimensionMismatch,
        "ERR syntax error in FILTER expression at position 3: x": inferkv.FilterSyntax,
        "ERR text 2 is not valid UTF-8 (at byte 17)": inferkv.InvalidInput,
        "ERR unknown command 'EVAL', with args beginning with: ": inferkv.UnknownCommand,
        "NOSCRIPT No matching script. Please use EVAL.": inferkv.NoScript,
        "ERR something else": inferkv.ServerError,
    }
    for text, cls in cases.items():
        assert error_class_for(text) is cls, text


def test_resp3_negotiated_and_maps_are_dicts(client: inferkv.Client) -> None:
    """Both servers answer HELLO 3: the pool speaks RESP3 and a hash comes
    back as a dict; protocol=2 gets the flat array, and the typed layer reads
    either (a saved record loads the same)."""
    assert client.protocol == 3
    client.execute("HSET", "h", "a", "1")
    assert client.execute("HGETALL", "h") == {b"a": b"1"}
    c2 = inferkv.Client(port=client.pool.connection_kwargs["port"], protocol=2)
    try:
        assert c2.protocol == 2
        assert c2.execute("HGETALL", "h") == [b"a", b"1"]

        class Point(inferkv.Model):
            x: int

        p = c2.schema("p2").register(Point)
        saved = p.save(Point(x=3))
        assert p.get(saved.id) == saved
        assert client.schema("p2").register(Point).get(saved.id) == saved
    finally:
        c2.close()


def test_plain_redis_helpers_still_work(client: inferkv.Client) -> None:
    """client.redis is redis-py with its own RESP2 pool: its helpers parse
    what they expect (HGETALL a dict, ZRANGE WITHSCORES pairs)."""
    r = client.redis
    r.hset("h", mapping={"a": "1"})
    r.zadd("z", {"m": 2.5})
    assert r.hgetall("h") == {b"a": b"1"}
    assert r.zrange("z", 0, -1, withscores=True) == [(b"m", 2.5)]


def test_errors_raise_typed(client: inferkv.Client) -> None:
    """An error reply raises its class (here WRONGTYPE), never returns."""
    client.execute("SET", "s", "x")
    with pytest.raises(inferkv.WrongType):
        client.execute("HGETALL", "s")


def test_pool_size_is_a_bound(server: object) -> None:
    """max_connections=2: eight threads doing 20 commands each share two
    connections (the pool makes callers wait, it never opens a third)."""
    c = inferkv.Client(port=server.port, max_connections=2)  # type: ignore[attr-defined]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(20):
                c.execute("INCR", "n")
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors
        assert int(c.execute("GET", "n")) == 160
        assert len(c.pool._connections) <= 2
    finally:
        c.execute("DEL", "n")
        c.close()


def test_async_pool_and_resp3(server: object) -> None:
    """The asyncio client negotiates RESP3 too, and 50 concurrent tasks share
    a pool of 3 connections."""

    async def main() -> None:
        c = inferkv.AsyncClient(port=server.port, max_connections=3)  # type: ignore[attr-defined]
        try:
            assert await c.protocol() == 3
            await c.execute("DEL", "an")
            await asyncio.gather(*[c.execute("INCR", "an") for _ in range(50)])
            assert int(await c.execute("GET", "an")) == 50
            assert len(c.pool._connections) <= 3
            await c.execute("DEL", "an")
        finally:
            await c.close()

    asyncio.run(main())


def test_unix_socket(inferkv_server: object) -> None:
    """Client and AsyncClient reach a server over its Unix socket (RESP3
    too), and a record saved there loads."""
    import server_harness

    srv = server_harness.Server(unix=True)
    try:
        c = inferkv.Client(unix_socket_path=srv.unixsocket)

        class Point(inferkv.Model):
            x: int

        repo = c.schema("u").register(Point)
        p = repo.save(Point(x=5))
        assert c.protocol == 3 and repo.get(p.id) == p
        c.close()

        async def main() -> None:
            ac = inferkv.AsyncClient(unix_socket_path=srv.unixsocket)
            try:
                assert await ac.protocol() == 3
                assert await ac.schema("u").register(Point).get(p.id) == p
            finally:
                await ac.close()

        asyncio.run(main())
    finally:
        srv.stop()
        import shutil

        shutil.rmtree(srv.dir, ignore_errors=True)


def test_resp2_only_server_falls_back() -> None:
    """A server without HELLO (Redis < 6): protocol=None stays on RESP2 and
    works; protocol=3 refuses to connect rather than pretend."""
    import socket

    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    port = lsock.getsockname()[1]
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while not stop.is_set():
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n" in buf:  # one reply per command: commands here are small
                    n = int(buf[1:buf.index(b"\r\n")])
                    parts = buf.split(b"\r\n")
                    if len(parts) < 1 + 2 * n:
                        break
                    name = parts[2].upper()
                    buf = b"\r\n".join(parts[1 + 2 * n:])
                    conn.sendall(b"-ERR unknown command 'HELLO'\r\n" if name == b"HELLO" else b"+PONG\r\n")

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        c = inferkv.Client(port=port)
        assert c.protocol == 2 and c.execute("PING") == b"PONG"
        c.close()
        strict = inferkv.Client(port=port, protocol=3)
        with pytest.raises(inferkv.UnknownCommand):
            strict.execute("PING")
        strict.close()
    finally:
        stop.set()
        lsock.close()
