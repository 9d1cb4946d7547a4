"""test_inference.py - generate, stream, embed, rag and their typed errors
(inferkv-server only)."""
from __future__ import annotations

import asyncio
import struct
import threading
from typing import Any

import numpy as np
import pytest

import inferkv


@pytest.fixture
def server(inferkv_server: Any) -> Any:
    """inferkv-server only: redis-server 7.0 has no INFER.* commands (the rest of the
    suite runs against both)."""
    return inferkv_server

PROMPT = "Once upon a time"


def test_generate_resp3_and_resp2(server: Any, client: inferkv.Client) -> None:
    """generate() returns the text with the RESP3 map's counts and timings;
    a RESP2 client gets the same text (greedy) and None for the rest, and
    streams the same text."""
    gen = server.needs_generator()
    g = client.generate(gen, PROMPT, max_tokens=12, temperature=0)
    assert g.tokens == 12 and g.finish == "length" and g.prompt_tokens and g.prompt_tokens > 1
    assert g.decode_ms is not None and g.decode_ms >= 0 and len(g.text) > 0
    c2 = inferkv.Client(port=server.port, protocol=2)
    try:
        g2 = c2.generate(gen, PROMPT, max_tokens=12, temperature=0)
        assert g2.text == g.text and g2.tokens is None
        with c2.stream(gen, PROMPT, max_tokens=12, temperature=0) as s:  # XREAD's RESP2 shape
            assert "".join(s) == g.text
    finally:
        c2.close()
    assert client.generate(gen, PROMPT, max_tokens=12, temperature=0.9, seed=7).text == \
        client.generate(gen, PROMPT, max_tokens=12, temperature=0.9, seed=7).text


def test_stream_yields_the_text_as_it_comes(server: Any, client: inferkv.Client) -> None:
    """stream() yields pieces whose concatenation is the reply's text, gives
    the final Generation as .result, and deletes its stream key."""
    gen = server.needs_generator()
    full = client.generate(gen, PROMPT, max_tokens=40, temperature=0).text
    with client.stream(gen, PROMPT, max_tokens=40, temperature=0) as s:
        pieces = list(s)
    assert len(pieces) > 5 and "".join(pieces) == full
    assert s.result is not None and s.result.text == full and s.result.tokens == 40
    assert client.execute("EXISTS", s._key) == 0


def test_stream_left_early_cancels(server: Any, client: inferkv.Client) -> None:
    """Leaving the `with` after two pieces cancels the generation on the
    server (it stops long before MAXTOKENS) and deletes the key."""
    gen = server.needs_generator()
    before = client.infer_stats()["cancelled"]
    with client.stream(gen, PROMPT, max_tokens=2000, temperature=0) as s:
        it = iter(s)
        next(it)
        next(it)
    assert client.execute("EXISTS", s._key) == 0
    stats = client.infer_stats()
    assert stats["cancelled"] == before + 1 or (s.result is None and isinstance(s.error, inferkv.Cancelled))


def test_stream_error_is_raised(server: Any, client: inferkv.Client) -> None:
    """A refused request (no such model) or one that times out raises its
    typed error from the iteration, not an endless wait or silence."""
    server.needs_generator()
    with pytest.raises(inferkv.ModelNotLoaded):
        with client.stream("nope", PROMPT) as s:
            list(s)
    with pytest.raises(inferkv.InferTimeout):
        with client.stream(server.generator, PROMPT, max_tokens=1500, timeout_ms=1) as s:
            list(s)


def test_embed_shapes_and_values(server: Any, client: inferkv.Client) -> None:
    """embed(text) is a float32 vector, embed([texts]) a matrix in order;
    L2-normalised by default, equal to INFER.EMBED's own FP32 output."""
    enc = server.needs_encoder()
    v = client.embed(enc, "hello world")
    assert v.shape == (64,) and v.dtype == np.float32 and abs(float(np.linalg.norm(v)) - 1) < 1e-4
    m = client.embed(enc, ["hello world", "another text"])
    assert m.shape == (2, 64) and np.array_equal(m[0], v)
    raw = client.execute("INFER.EMBED", enc, "another text", "FP32")[0]
    assert np.array_equal(m[1], np.array(struct.unpack("<64f", raw), dtype=np.float32))
    un = client.embed(enc, "hello world", normalize=False)
    assert abs(float(np.linalg.norm(un)) - 1) > 1e-3


def test_embed_texts_that_look_like_options(server: Any, client: inferkv.Client) -> None:
    """INFER.EMBED reads options from the end: texts such as "FP32" or a
    trailing "NORMALIZE", "yes" are still embedded as texts, one vector each,
    the same as alone."""
    enc = server.needs_encoder()
    for texts in (["a", "FP32"], ["x", "NORMALIZE", "yes"], ["FP32", "FP32"], ["LONG", "chunk"]):
        m = client.embed(enc, texts)
        assert m.shape == (len(texts), 64)
        for i, t in enumerate(texts):
            assert np.allclose(m[i], client.embed(enc, t), atol=1e-6), (texts, t)


def test_rag_returns_answer_and_sources(server: Any, client: inferkv.Client) -> None:
    """rag() answers with its sources in VSIM's order (element, score, state)
    and, asked, the prompt; the sources are what VSIM finds for the
    question's embedding."""
    gen, enc = server.needs_generator(), server.needs_encoder()
    docs = ["The cat sat on the mat.", "Dogs bark at strangers.", "Bread is baked in the morning."]
    for i, d in enumerate(docs):
        client.execute("INFER.EMBED", enc, "INTO", "kb", f"d{i}", d, "SETATTR", f'{{"text": "{d}"}}')
    ans = client.rag(gen, enc, "kb", "Where did the cat sit?", count=2, max_tokens=8, temperature=0,
                     with_prompt=True)
    assert len(ans.sources) == 2 and ans.chunks_retrieved == 2 and ans.tokens >= 1
    q = client.embed(enc, "Where did the cat sit?")
    vsim = client.execute("VSIM", "kb", "FP32", q.tobytes(), "COUNT", 2)
    assert [s.element for s in ans.sources] == [x.decode() for x in vsim]
    assert all(s.state == "used" and 0 <= s.score <= 1 for s in ans.sources)
    assert ans.prompt is not None and "Where did the cat sit?" in ans.prompt
    with pytest.raises(inferkv.VectorSetMissing):
        client.rag(gen, enc, "nokb", "q")


def test_typed_errors_from_the_server(server: Any, client: inferkv.Client) -> None:
    """Server errors arrive as their classes: ModelNotLoaded, WrongModelKind,
    ContextOverflow, InvalidInput, InferTimeout."""
    gen, enc = server.needs_generator(), server.needs_encoder()
    with pytest.raises(inferkv.ModelNotLoaded):
        client.generate("nope", "x")
    with pytest.raises(inferkv.ModelNotLoaded):
        client.embed("nope", "x")
    with pytest.raises(inferkv.WrongModelKind):
        client.embed(gen, "x")
    with pytest.raises(inferkv.WrongModelKind):
        client.generate(enc, "x")
    with pytest.raises(inferkv.ContextOverflow):
        client.generate(gen, PROMPT * 20, max_tokens=2048)
    with pytest.raises(inferkv.InvalidInput):
        client.embed(enc, "")
    with pytest.raises(inferkv.InferTimeout):
        client.generate(gen, PROMPT, max_tokens=1500, timeout_ms=1)
    with pytest.raises(inferkv.ModelLoadError):
        client.load_model("x", "../etc/passwd")
    assert {m.name: m.kind for m in client.models()}["e"] == "encoder"


def test_queue_full_is_typed(server: Any, client: inferkv.Client) -> None:
    """A model loaded with infer-max-queue 1 and infer-max-batch 1 refuses a
    third concurrent request at once with QueueFull."""
    server.needs_generator()
    old = {k: client.execute("CONFIG", "GET", k) for k in ("infer-max-queue", "infer-max-batch")}
    client.execute("CONFIG", "SET", "infer-max-queue", "1")
    client.execute("CONFIG", "SET", "infer-max-batch", "1")
    try:
        client.load_model("q", "s.gguf")
    finally:
        for k, v in old.items():
            val = v[k.encode()] if isinstance(v, dict) else v[1]
            client.execute("CONFIG", "SET", k, val)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            client.generate("q", PROMPT, max_tokens=600, temperature=0)
        except inferkv.InferkvError as e:
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.unload_model("q")
    assert errors and all(isinstance(e, inferkv.QueueFull) for e in errors), errors


def test_async_inference(server: Any) -> None:
    """The asyncio client generates, streams and embeds like the sync one."""
    gen, enc = server.needs_generator(), server.needs_encoder()

    async def main() -> None:
        c = inferkv.AsyncClient(port=server.port)
        try:
            g = await c.generate(gen, PROMPT, max_tokens=20, temperature=0)
            async with c.stream(gen, PROMPT, max_tokens=20, temperature=0) as s:
                pieces = [p async for p in s]
            assert "".join(pieces) == g.text and s.result is not None and s.result.tokens == 20
            async with c.stream(gen, PROMPT, max_tokens=2000, temperature=0) as s2:
                async for _ in s2:
                    break
            assert await c.execute("EXISTS", s2._key) == 0
            v = await c.embed(enc, ["a", "b"])
            assert v.shape == (2, 64)
            with pytest.raises(inferkv.ModelNotLoaded):
                await c.generate("nope", "x")
        finally:
            await c.close()

    asyncio.run(main())
