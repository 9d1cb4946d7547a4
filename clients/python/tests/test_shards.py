"""test_shards.py - the naming rule of a corpus split over shards
(inferkv.shards; docs/scaling.md, "A corpus over several shards"): the
ingestion tool writes these names and ClusterClient.rag searches them, so
the rule must hold exactly and never change by accident."""
from __future__ import annotations

import pytest
from redis.crc import key_slot

from inferkv import shard_set, shard_sets


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 100])
def test_each_shard_lands_in_its_slot_range(n: int) -> None:
    """Shard i's slot is in the i-th of n equal ranges, so n shards over n
    primaries made by redis-cli --cluster create sit one per primary."""
    names = shard_sets("kb", n)
    assert len(names) == n == len(set(names))
    for i, name in enumerate(names):
        assert key_slot(name.encode()) * n // 16384 == i, (i, name)
        assert name == f"kb.{i}" or name.startswith(f"kb.{i}."), name


def test_the_first_candidate_that_fits_is_taken() -> None:
    """BASE.i when it fits, else BASE.i.k for the smallest k: a fixed
    example, so that a change to the rule fails here."""
    assert shard_sets("docs", 3) == ["docs.0.1", "docs.1", "docs.2.4"]
    for i, name in enumerate(shard_sets("kb", 4)):
        parts = name.split(".")
        if len(parts) == 3:
            k = int(parts[2])
            earlier = [f"kb.{i}"] + [f"kb.{i}.{j}" for j in range(1, k)]
            assert all(key_slot(e.encode()) * 4 // 16384 != i for e in earlier)


def test_one_shard_is_the_plain_name() -> None:
    assert shard_sets("kb", 1) == ["kb.0"]
    assert shard_set("kb", 0, 1) == "kb.0"


@pytest.mark.parametrize("base, i, n", [("", 0, 1), ("{kb}docs", 0, 2), ("kb}", 0, 2), ("kb", 2, 2),
                                         ("kb", -1, 2), ("kb", 0, 0), ("kb", 0, 16385)])
def test_bad_arguments_are_refused(base: str, i: int, n: int) -> None:
    with pytest.raises(ValueError):
        shard_set(base, i, n)
