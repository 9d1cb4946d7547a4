"""conftest.py - the servers the client's tests run against.

Each test that takes `server` (or a fixture built on it) runs twice: against
a real build/inferkv-server and against Debian's redis-server 7.0.15, both
started here on free loopback ports (never 6379) and stopped at the end of
the session.  Tests of what Redis 7 does not have (vector sets, INFER.*)
skip there, saying so.  redis-server runs with KEYS renamed away, so any
use of KEYS by the client fails loudly instead of passing unnoticed.

Models for INFER.* (in a temporary infer-models-dir): stories260K from
../shared/models (else gguf-gen's preset of the same shape) as generator
"s" (alias "demo"), and gguf-gen's tiny-bert over the BGE WordPiece
vocabulary as encoder "e" (alias "bge", 64 dimensions).  Without the
vocabulary the encoder tests skip with that reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(PKG))
sys.path.insert(0, PKG)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import server_harness  # noqa: E402
from server_harness import free_port, stop_process, wait_up  # noqa: E402

import inferkv  # noqa: E402

BUILD = os.environ.get("INFERKV_BUILD", os.path.join(ROOT, "build"))
SHARED = os.environ.get("INFERKV_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
STORIES = os.path.join(SHARED, "models/cozy-creator_python-gen-worker/stories260K.gguf")
BERT_VOCAB = os.path.join(SHARED, "models/ggml-org_llama.cpp/ggml-vocab-bert-bge.gguf")
GEN = os.path.join(BUILD, "gguf-gen")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class ServerInfo:
    """A running server: its kind ("inferkv" or "redis"), port, and what it
    can do (reasons say why not)."""

    kind: str
    port: int
    proc: Any = None
    generator: str | None = None
    encoder: str | None = None
    no_generator: str = ""
    no_encoder: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def needs_vectors(self) -> None:
        if self.kind != "inferkv":
            pytest.skip("redis-server 7.0 has no vector sets (VADD, VSIM)")

    def needs_generator(self) -> str:
        if self.kind != "inferkv":
            pytest.skip("redis-server 7.0 has no INFER.* commands")
        if self.generator is None:
            pytest.skip(self.no_generator)
        return self.generator

    def needs_encoder(self) -> str:
        if self.kind != "inferkv":
            pytest.skip("redis-server 7.0 has no INFER.* commands")
        if self.encoder is None:
            pytest.skip(self.no_encoder)
        return self.encoder


@pytest.fixture(scope="session")
def models_dir() -> Iterator[tuple[str, str, str]]:
    """(dir, why no generator or "", why no encoder or "")."""
    d = tempfile.mkdtemp(prefix="inferkv-pyclient-models-")
    no_gen = no_enc = ""
    if os.path.exists(STORIES):
        shutil.copy(STORIES, os.path.join(d, "s.gguf"))
    elif subprocess.run([GEN, "--preset", "stories260k", "-q", "-o", os.path.join(d, "s.gguf")],
                        stderr=subprocess.DEVNULL).returncode != 0:
        no_gen = f"no generator: neither {STORIES} nor gguf-gen's stories260k preset"
    if not os.path.exists(BERT_VOCAB):
        no_enc = f"no encoder: the BERT vocabulary {BERT_VOCAB} is missing"
    elif subprocess.run([GEN, "--preset", "tiny-bert", "--vocab", BERT_VOCAB, "-q", "-o", os.path.join(d, "e.gguf")],
                        stderr=subprocess.DEVNULL).returncode != 0:
        no_enc = "no encoder: gguf-gen has no tiny-bert preset"
    yield d, no_gen, no_enc
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def inferkv_server(models_dir: tuple[str, str, str]) -> Iterator[ServerInfo]:
    if not os.path.exists(server_harness.SERVER):
        pytest.skip(f"no {server_harness.SERVER} (run make)")
    d, no_gen, no_enc = models_dir
    srv = server_harness.Server("--infer-models-dir", d, "--infer-threads", "1")
    info = ServerInfo("inferkv", srv.port, srv, no_generator=no_gen, no_encoder=no_enc)
    c = inferkv.Client(port=srv.port)
    if not no_gen:
        c.load_model("s", "s.gguf", aliases=["demo"])
        info.generator = "s"
    if not no_enc:
        c.load_model("e", "e.gguf", aliases=["bge"])
        info.encoder = "e"
    c.close()
    yield info
    srv.stop()
    shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ServerInfo]:
    if not os.path.exists(REDIS):
        pytest.skip("redis-server is not installed (Debian: redis-server)")
    port = free_port()
    d = tempfile.mkdtemp(prefix="inferkv-pyclient-redis-")
    log = open(os.path.join(d, "redis.log"), "w")
    proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", d, "--rename-command", "KEYS", ""], stdout=log, stderr=subprocess.STDOUT)

    def ping() -> bool:
        c = server_harness.RawClient(port)
        c.send("PING")
        c.read()
        c.close()
        return True

    if not wait_up(proc, ping):
        stop_process(proc)
        pytest.fail("redis-server did not start: " + open(os.path.join(d, "redis.log")).read())
    yield ServerInfo("redis", port, proc)
    stop_process(proc)
    log.close()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["inferkv", "redis"])
def server(request: pytest.FixtureRequest) -> ServerInfo:
    """Each test that uses it runs against both servers."""
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]


@pytest.fixture
def client(server: ServerInfo) -> Iterator[inferkv.Client]:
    """A Client on an empty database (FLUSHALL first)."""
    c = inferkv.Client(port=server.port)
    c.execute("FLUSHALL")
    yield c
    c.close()


@pytest.fixture
def schema(client: inferkv.Client) -> Iterator[inferkv.Schema]:
    s = client.schema("t" + uuid.uuid4().hex[:8])
    yield s
    if not s.dropped:
        s.drop()


# Redis runs every atomic operation both ways; inferkv has only WATCH.
ATOMIC_CASES = [("inferkv", "auto"), ("redis", "script"), ("redis", "watch")]


@pytest.fixture(params=ATOMIC_CASES, ids=[f"{s}-{a}" for s, a in ATOMIC_CASES])
def atomic_client(request: pytest.FixtureRequest) -> Iterator[inferkv.Client]:
    kind, atomic = request.param
    info = request.getfixturevalue(f"{kind}_server")
    c = inferkv.Client(port=info.port, atomic=atomic)
    c.execute("FLUSHALL")
    yield c
    c.close()


@pytest.fixture
def atomic_schema(atomic_client: inferkv.Client) -> Iterator[inferkv.Schema]:
    s = atomic_client.schema("a" + uuid.uuid4().hex[:8])
    yield s
    if not s.dropped:
        s.drop()
