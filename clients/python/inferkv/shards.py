"""shards.py - the names of a corpus split over N vector sets in a Redis
Cluster (docs/scaling.md, "A corpus over several shards").

Why a rule and not a registry: the ingestion tool that writes the shards
and the cluster client that searches them must agree on the set names, and
a registry key would itself live on one node (one more thing to lose in a
failover).  A rule that both compute from (base name, shard count) needs no
state at all.

The rule: shard i of n is the vector set "<base>.<i>" when that name's hash
slot falls in the i-th of n equal slot ranges (slot * n // 16384 == i),
else "<base>.<i>.<k>" for the smallest k >= 1 whose slot does.  A cluster
made by `redis-cli --cluster create` gives each of its m primaries one of m
equal slot ranges, so with n = m every shard lands on a primary of its own
(with n a multiple of m, n / m shards on each).  Each name is its own hash
tag (it has no braces), so a shard's bookkeeping keys and chunk keys go
under "{<base>.<i>...}" on the same node.
"""
from __future__ import annotations

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

MAX_SHARDS = 16384  # one per slot at most: beyond that two shards must share one


def shard_set(base: str, i: int, n: int) -> str:
    """The vector set holding shard i of n of the corpus `base`."""
    if not base or "{" in base or "}" in base:
        raise ValueError(f"a sharded corpus's base name must be non-empty and have no hash tag: {base!r}")
    if not 1 <= n <= MAX_SHARDS or not 0 <= i < n:
        raise ValueError(f"shard {i} of {n}: want 0 <= i < n <= {MAX_SHARDS}")
    name = f"{base}.{i}"
    k = 0
    # a CRC16 spreads these names evenly: about n tries, and every slot
    # range is reached long before k runs out
    while key_slot(name.encode()) * n // REDIS_CLUSTER_HASH_SLOTS != i:
        k += 1
        name = f"{base}.{i}.{k}"
    return name


def shard_sets(base: str, n: int) -> list[str]:
    """The n vector sets of the corpus `base`, shard 0 first."""
    return [shard_set(base, i, n) for i in range(n)]
