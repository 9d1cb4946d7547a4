"""test_vectors.py - Vector(dim) fields in vector sets, similar(), Model.rag()
(inferkv-server only: redis-server 7.0 has no VADD)."""
from __future__ import annotations

from typing import Annotated, Any, Optional

import numpy as np
import pytest

import inferkv
from inferkv import Model, Tag, Vector



@pytest.fixture
def server(inferkv_server: Any) -> Any:
    """inferkv-server only: redis-server 7.0 has no vector sets (the rest of the
    suite runs against both)."""
    return inferkv_server

Emb4 = Vector(4, quant="NOQUANT")
Emb64 = Vector(64, embedder="e", source="text")


class Movie(Model):
    title: str
    genre: Annotated[str, Tag()]
    year: int
    emb: Optional[Emb4] = None


def movies() -> list[Movie]:
    return [
        Movie(id="m1", title="Alien", genre="scifi", year=1979, emb=np.array([1, 0, 0, 0], dtype=np.float32)),
        Movie(id="m2", title="Aliens", genre="scifi", year=1986, emb=np.array([0.9, 0.1, 0, 0], dtype=np.float32)),
        Movie(id="m3", title="Amelie", genre="romance", year=2001, emb=np.array([0, 1, 0, 0], dtype=np.float32)),
        Movie(id="m4", title="Heat", genre="crime", year=1995, emb=np.array([0, 0, 1, 0.2], dtype=np.float32)),
        Movie(id="m5", title="Untitled", genre="drama", year=2020),
    ]


@pytest.fixture
def catalogue(server: Any, schema: inferkv.Schema) -> inferkv.Repository[Movie]:
    server.needs_vectors()
    repo = schema.register(Movie)
    repo.save_many(movies())
    return repo


def test_vector_round_trip_and_vector_set(catalogue: inferkv.Repository[Movie], client: inferkv.Client,
                                          schema: inferkv.Schema) -> None:
    """The vector is stored exactly (FP32 bytes in the hash) and added to the
    model's vector set with the scalar fields as attributes; no vector, no
    element."""
    m = catalogue.get("m2")
    assert m is not None and m.emb.dtype == np.float32 and list(m.emb) == pytest.approx([0.9, 0.1, 0, 0])
    assert m.emb.tobytes() == np.array([0.9, 0.1, 0, 0], dtype="<f4").tobytes()
    vset = f"{schema.prefix}:__vec__:Movie:emb"
    assert client.execute("VCARD", vset) == 4
    attrs = client.execute("VGETATTR", vset, "m1")
    assert b'"genre":"scifi"' in attrs and b'"year":1979' in attrs
    assert client.execute("VISMEMBER", vset, "m5") in (0, False)


def test_similar_by_vector_with_scores_and_filter(catalogue: inferkv.Repository[Movie]) -> None:
    """similar() ranks by cosine (VSIM), best first with scores in [0, 1];
    filter= is a FILTER expression over the record's fields."""
    hits = catalogue.similar([1, 0.05, 0, 0], k=3)
    assert [h.obj.id for h in hits] == ["m1", "m2", "m3"]
    assert hits[0].score > hits[1].score > hits[2].score and 0 <= hits[2].score <= 1
    assert hits[0].obj.title == "Alien"
    hits = catalogue.similar(np.array([1, 0, 0, 0]), k=5, filter='.genre == "scifi" and .year > 1980')
    assert [h.obj.id for h in hits] == ["m2"]
    with pytest.raises(inferkv.FilterSyntax):
        catalogue.similar([1, 0, 0, 0], filter=".year >")


def test_updates_and_deletes_follow_into_the_set(catalogue: inferkv.Repository[Movie], client: inferkv.Client,
                                                 schema: inferkv.Schema) -> None:
    """A changed vector or attribute is what the next search sees; None or
    delete() removes the element; a wrong dimension or NaN is refused on save."""
    m = catalogue.get("m3")
    m.emb = np.array([1, 0, 0, 0], dtype=np.float32)
    m.year = 1970
    catalogue.save(m)
    assert [h.obj.id for h in catalogue.similar([1, 0, 0, 0], k=5, filter=".year < 1975")] == ["m3"]
    m.emb = None
    catalogue.save(m)
    catalogue.delete("m1")
    vset = f"{schema.prefix}:__vec__:Movie:emb"
    assert client.execute("VCARD", vset) == 2
    assert [h.obj.id for h in catalogue.similar([1, 0, 0, 0], k=5)] == ["m2", "m4"]
    with pytest.raises(inferkv.EncodeError, match="4 components"):
        catalogue.save(Movie(title="x", genre="y", year=1, emb=[1, 2, 3]))
    with pytest.raises(inferkv.EncodeError, match="NaN"):
        catalogue.save(Movie(title="x", genre="y", year=1, emb=[1, 2, 3, float("nan")]))


class Note(Model):
    text: str
    topic: Annotated[str, Tag()]
    emb: Optional[Emb64] = None


NOTES = ["The cat sat on the warm mat by the door.", "Dogs bark loudly at strangers in the night.",
         "Bread is baked early in the morning by the baker.", "The old ship sailed across the stormy sea.",
         "Snow covers the mountains for most of the year."]


@pytest.fixture
def notes(server: Any, schema: inferkv.Schema) -> inferkv.Repository[Note]:
    server.needs_encoder()
    repo = schema.register(Note)
    repo.save_many([Note(id=f"n{i}", text=t, topic="animals" if i < 2 else "other") for i, t in enumerate(NOTES)])
    return repo


def test_source_text_embedded_on_the_server(notes: inferkv.Repository[Note], client: inferkv.Client) -> None:
    """A vector with a source field is computed by INFER.EMBED on save (equal
    to client.embed of the text), and again when the text changes."""
    n = notes.get("n0")
    assert n is not None and n.emb.shape == (64,)
    assert np.allclose(n.emb, client.embed("e", NOTES[0]), atol=1e-6)
    n.text = "A completely different sentence about trains."
    notes.save(n)
    assert np.allclose(notes.get("n0").emb, client.embed("e", n.text), atol=1e-6)


def test_similar_by_text(notes: inferkv.Repository[Note], client: inferkv.Client) -> None:
    """A text query is embedded on the server with the field's encoder: each
    note's own text finds that note first, and filter= narrows by tag."""
    for i, t in enumerate(NOTES):
        assert notes.similar(t, k=1)[0].obj.id == f"n{i}"
    hits = notes.similar(NOTES[4], k=5, filter='.topic == "animals"')
    assert sorted(h.obj.id for h in hits) == ["n0", "n1"]


def test_model_rag_answers_from_records(server: Any, notes: inferkv.Repository[Note]) -> None:
    """Model.rag() runs INFER.RAG over the model's vector set: the answer comes
    with its sources, which are record ids in VSIM's order."""
    gen = server.needs_generator()
    ans = notes.rag(NOTES[3], generator=gen, k=2, max_tokens=8, temperature=0, with_prompt=True)
    assert isinstance(ans.text, str) and ans.tokens >= 1
    assert [s.element for s in ans.sources] == [h.obj.id for h in notes.similar(NOTES[3], k=2)]
    assert ans.sources[0].element == "n3" and ans.sources[0].state == "used"
    assert ans.prompt is not None and NOTES[3] in ans.prompt


def test_resp2_client_searches_the_same(catalogue: inferkv.Repository[Movie], server: Any) -> None:
    """A protocol=2 client reads VSIM's flat reply: the same hits and scores."""
    c2 = inferkv.Client(port=server.port, protocol=2)
    try:
        r2 = c2.schema(catalogue.schema.prefix).register(Movie)
        a = catalogue.similar([1, 0.05, 0, 0], k=3)
        b = r2.similar([1, 0.05, 0, 0], k=3)
        assert [(h.obj, round(h.score, 5)) for h in a] == [(h.obj, round(h.score, 5)) for h in b]
    finally:
        c2.close()
