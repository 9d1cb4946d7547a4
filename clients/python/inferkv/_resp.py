"""_resp.py - RESP3 for redis-py 4.3's connections (sync and asyncio).

Why this exists: Debian bookworm ships redis-py 4.3, whose parsers know only
RESP2.  RESP3 is worth having here: INFER.GENERATE answers a map with the
token counts and timings (RESP2 gets the text only), VSIM's scores come as
doubles, HGETALL as a map.  So the client's connections are redis-py
Connection subclasses with a parser that reads every RESP3 type, and that
send `HELLO 3` after redis-py's own AUTH / CLIENT SETNAME / SELECT; a server
that refuses HELLO (Redis < 6) stays on RESP2 when the protocol is "auto".

Reply values (decode_responses is off; the client decodes what it knows):
simple and bulk strings, verbatim strings -> bytes; integers and big numbers
-> int; doubles -> float; booleans -> bool; null -> None; arrays and sets ->
list; maps -> dict (insertion order = the server's order); attributes are
read and dropped; pushes (only sent to subscribed or tracking connections,
which this client never makes) are skipped.  Error replies become the typed
errors of errors.py, returned (not raised) as redis-py's parsers do, so
that a pipeline can read every reply before deciding what to raise.

The client's own command paths read these shapes and RESP2's alike
(`replies.as_map` and friends), so a Client(protocol=2) behaves the same.
"""
from __future__ import annotations

from typing import Any

from redis import connection as _sync
from redis.asyncio import connection as _async
from redis.exceptions import ConnectionError as _RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError

from .errors import error_from_text

_CLOSED = "Connection closed by server."


def _parse_error(parser: Any, text: str) -> BaseException:
    """redis-py's special cases (connection-level errors, AUTH) stay as its
    classes; every other error reply becomes ours, with its full text."""
    special = _sync.BaseParser.parse_error(parser, text)
    if not isinstance(special, ResponseError) or type(special).__name__ in (
        "AuthenticationError",
        "AuthenticationWrongNumberOfArgsError",
        "ModuleError",
        "NoPermissionError",
        "ReadOnlyError",
        "BusyLoadingError",
    ):
        return special
    return error_from_text(text)


class Resp3Parser(_sync.PythonParser):
    """redis-py's pure-Python parser, extended to the RESP3 types."""

    def parse_error(self, response: str) -> BaseException:
        return _parse_error(self, response)

    def read_response(self, disable_decoding: bool = False) -> Any:
        while True:
            raw = self._buffer.readline()
            if not raw:
                raise _RedisConnectionError(_CLOSED)
            t, rest = raw[:1], raw[1:]
            if t == b"$":
                n = int(rest)
                if n < 0:
                    return None
                data = self._buffer.read(n)
                return data if disable_decoding else self.encoder.decode(data)
            if t == b"*" or t == b"~":
                n = int(rest)
                if n < 0:
                    return None
                return [self.read_response(disable_decoding) for _ in range(n)]
            if t == b"%":
                out = {}
                for _ in range(int(rest)):
                    k = self.read_response(disable_decoding)
                    out[_hashable(k)] = self.read_response(disable_decoding)
                return out
            if t == b":" or t == b"(":
                return int(rest)
            if t == b"+":
                return rest if disable_decoding else self.encoder.decode(rest)
            if t == b"-":
                error = self.parse_error(rest.decode("utf-8", errors="replace"))
                if isinstance(error, _RedisConnectionError):
                    raise error
                return error
            if t == b",":
                return _double(rest)
            if t == b"_":
                return None
            if t == b"#":
                return rest == b"t"
            if t == b"=":
                data = self._buffer.read(int(rest))
                data = data[4:]  # "txt:" / "mkd:"
                return data if disable_decoding else self.encoder.decode(data)
            if t == b"!":
                text = self._buffer.read(int(rest)).decode("utf-8", errors="replace")
                return self.parse_error(text)
            if t == b"|":
                for _ in range(2 * int(rest)):
                    self.read_response(disable_decoding)
                continue  # the value the attributes describe follows
            if t == b">":
                for _ in range(int(rest)):
                    self.read_response(disable_decoding)
                continue  # out-of-band push: not a reply
            raise InvalidResponse(f"Protocol Error: {raw!r}")


class AsyncResp3Parser(_async.PythonParser):
    """The asyncio twin of Resp3Parser (same types, same values)."""

    def parse_error(self, response: str) -> BaseException:
        return _parse_error(self, response)

    async def read_response(self, disable_decoding: bool = False) -> Any:
        if not self._buffer or not self.encoder:
            raise _RedisConnectionError(_CLOSED)
        while True:
            raw = await self._buffer.readline()
            if not raw:
                raise _RedisConnectionError(_CLOSED)
            t, rest = raw[:1], raw[1:]
            if t == b"$":
                n = int(rest)
                if n < 0:
                    return None
                data = await self._buffer.read(n)
                return data if disable_decoding else self.encoder.decode(data)
            if t == b"*" or t == b"~":
                n = int(rest)
                if n < 0:
                    return None
                return [await self.read_response(disable_decoding) for _ in range(n)]
            if t == b"%":
                out = {}
                for _ in range(int(rest)):
                    k = await self.read_response(disable_decoding)
                    out[_hashable(k)] = await self.read_response(disable_decoding)
                return out
            if t == b":" or t == b"(":
                return int(rest)
            if t == b"+":
                return rest if disable_decoding else self.encoder.decode(rest)
            if t == b"-":
                error = self.parse_error(rest.decode("utf-8", errors="replace"))
                if isinstance(error, _RedisConnectionError):
                    raise error
                return error
            if t == b",":
                return _double(rest)
            if t == b"_":
                return None
            if t == b"#":
                return rest == b"t"
            if t == b"=":
                data = (await self._buffer.read(int(rest)))[4:]
                return data if disable_decoding else self.encoder.decode(data)
            if t == b"!":
                text = (await self._buffer.read(int(rest))).decode("utf-8", errors="replace")
                return self.parse_error(text)
            if t == b"|":
                for _ in range(2 * int(rest)):
                    await self.read_response(disable_decoding)
                continue
            if t == b">":
                for _ in range(int(rest)):
                    await self.read_response(disable_decoding)
                continue
            raise InvalidResponse(f"Protocol Error: {raw!r}")


def _double(text: bytes) -> float:
    """A RESP3 double (`inf`, `-inf`, `nan` spelled as Redis spells them)."""
    return float(text)


def _hashable(key: Any) -> Any:
    """Map keys must be hashable: an array key (never sent by inferkv or
    Redis 7, allowed by RESP3) becomes a tuple."""
    return tuple(key) if isinstance(key, list) else key


def _want(protocol: int | None) -> int:
    return 3 if protocol is None else protocol


class _Hello:
    """What the connection classes share: the protocol they were asked for
    (None: "auto", RESP3 when the server has HELLO) and the one they got."""

    requested: int | None
    protocol: int

    def _hello_failed(self, error: BaseException) -> None:
        if self.requested == 3:
            raise error
        self.protocol = 2

    def _negotiate(self) -> None:
        """HELLO 3 after redis-py's own connection set-up (sync)."""
        conn: Any = self
        self.protocol = 2
        if _want(self.requested) == 3:
            conn.send_command("HELLO", 3)
            try:
                conn.read_response()
                self.protocol = 3
            except ResponseError as e:
                self._hello_failed(e)

    async def _anegotiate(self) -> None:
        """HELLO 3 after redis-py's own connection set-up (asyncio)."""
        conn: Any = self
        self.protocol = 2
        if _want(self.requested) == 3:
            await conn.send_command("HELLO", 3)
            try:
                await conn.read_response()
                self.protocol = 3
            except ResponseError as e:
                self._hello_failed(e)


class _SyncHello(_Hello):
    """The sync connections' RESP3 parser and negotiation, for TCP and Unix
    sockets alike (mixed in before redis-py's connection class)."""

    def __init__(self, *args: Any, protocol: int | None = None, **kwargs: Any) -> None:
        kwargs["parser_class"] = Resp3Parser
        super().__init__(*args, **kwargs)
        self.requested = protocol
        self.protocol = 2

    def on_connect(self) -> None:
        super().on_connect()  # type: ignore[misc]
        self._negotiate()


class Connection(_SyncHello, _sync.Connection):
    """A redis-py TCP connection that speaks RESP3 when it can."""


class UnixConnection(_SyncHello, _sync.UnixDomainSocketConnection):
    """The Unix-socket variant of Connection."""


class AsyncConnection(_Hello, _async.Connection):
    """An asyncio redis-py connection that speaks RESP3 when it can."""

    def __init__(self, *args: Any, protocol: int | None = None, **kwargs: Any) -> None:
        kwargs["parser_class"] = AsyncResp3Parser
        super().__init__(*args, **kwargs)
        self.requested = protocol
        self.protocol = 2

    async def on_connect(self) -> None:
        await super().on_connect()
        await self._anegotiate()


class AsyncUnixConnection(_Hello, _async.UnixDomainSocketConnection):
    """The Unix-socket variant of AsyncConnection."""

    def __init__(self, *args: Any, protocol: int | None = None, **kwargs: Any) -> None:
        kwargs["parser_class"] = AsyncResp3Parser
        super().__init__(*args, **kwargs)
        self.requested = protocol
        self.protocol = 2

    async def on_connect(self) -> None:
        await super().on_connect()
        await self._anegotiate()


__all__ = [
    "AsyncConnection",
    "AsyncResp3Parser",
    "AsyncUnixConnection",
    "Connection",
    "Resp3Parser",
    "UnixConnection",
]
