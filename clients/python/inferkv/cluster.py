"""cluster.py - inferkv.so in a Redis Cluster: models loaded on every node,
and retrieval-augmented answers over a corpus split across shards
(docs/scaling.md).

Why a client of its own beside Client: a cluster has no single server to
hold a connection pool to, and two of its jobs are fan-outs no one node can
do - INFER.LOAD on every primary and replica (models are files each node
maps, never replicated), and VSIM on every shard's vector set followed by a
merge.  Routing itself is redis-py's RedisCluster (MOVED, ASK, failover
refreshes); the INFER.* and V* commands declare their keys, so it routes
them like any Redis command.

The cross-shard answer keeps one rule: it is what INFER.RAG on one node
holding the whole corpus would answer.  The question is embedded once
(INFER.EMBED ... FP32, the vector INFER.RAG embeds), VSIM runs on each
shard with the same COUNT, FILTER and EF, the hits are merged by score and
the best COUNT kept - the top COUNT of the union is the top COUNT of the
whole, since each shard returned its own best COUNT - and the chunk texts
are read where INFER.RAG would read them (the "text" attribute, or the key
CONTEXTKEY-FIELD names, on the shard's node).  The prompt is then built by
the server, not here: INFER.ANSWER takes the chunks in rank order and
renders, cuts to the context and generates exactly as INFER.RAG's last
steps do, so no copy of the template logic lives in the client.
"""
from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ConnectionError, RedisClusterException, RedisError, ResponseError, TimeoutError

from .errors import ModelLoadError, ProtocolError, server_error
from .inference import RagAnswer, Source, load_args, sampling_args
from .ops import as_map, text
from .shards import shard_sets

log = logging.getLogger("inferkv")


@dataclass
class NodeResult:
    """What one node answered to a command sent to every node."""

    node: str        # "host:port"
    role: str        # "primary" or "replica"
    ok: bool
    error: str | None
    seconds: float


@dataclass
class ClusterReport:
    """The per-node outcome of a command sent to every node."""

    command: str
    results: list[NodeResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if not r.ok]

    def __str__(self) -> str:
        lines = [f"{self.command}: {len(self.results) - len(self.failed)}/{len(self.results)} nodes ok"]
        for r in self.results:
            lines.append(f"  {r.node} {r.role:<7} {'ok' if r.ok else 'FAILED: ' + str(r.error)} ({r.seconds:.2f} s)")
        return "\n".join(lines)


@dataclass
class ClusterRagAnswer(RagAnswer):
    """A cross-shard answer: RagAnswer's fields (embed_ms is the client's
    INFER.EMBED round trip), the time of the VSIM fan-out, of the merge and
    chunk reads, and the node that generated."""

    fanout_ms: float = 0.0
    merge_ms: float = 0.0
    generate_ms: float = 0.0
    node: str = ""


class _OneServer:
    """What ClusterClient uses of RedisCluster, over one server outside
    cluster mode (inferkv-server, or a Redis without cluster-enabled): a
    corpus split over several sets on one server is searched the same way,
    which is how small deployments and tests run one."""

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        self._r = redis.Redis(host=host, port=port, **kwargs)
        self._node = ClusterNode(host, port, server_type="primary")

    def get_nodes(self) -> list[ClusterNode]:
        return [self._node]

    def get_node_from_key(self, key: str, replica: bool = False) -> ClusterNode:
        return self._node

    def execute_command(self, *args: Any, target_nodes: Any = None) -> Any:
        return self._r.execute_command(*args)

    def __getattr__(self, name: str) -> Any:  # type, get, hget, hgetall ...: the server's
        return getattr(self._r, name)

    def close(self) -> None:
        self._r.close()


def _node_name(n: ClusterNode) -> str:
    return f"{n.host}:{n.port}"


def _attr_text(attrs: Any, field: str) -> str | None:
    """The string member `field` of a JSON object, as the server reads
    attributes (top-level members only; anything else: None)."""
    if attrs is None:
        return None
    try:
        obj = json.loads(text(attrs))
    except (ValueError, UnicodeDecodeError):
        return None
    v = obj.get(field) if isinstance(obj, dict) else None
    if not isinstance(v, str):
        return None
    # the server decodes a lone surrogate escape to U+FFFD
    return v.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class ClusterClient:
    """A Redis Cluster with inferkv.so in every node.

    host/port: any node (the rest are discovered).  Keyword arguments go to
    redis-py's RedisCluster (password, username, socket_timeout ...).  A
    server outside cluster mode is taken as a cluster of one node, so the
    same code runs against a single inferkv-server (`clustered` says which).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 7000, *, socket_timeout: float | None = 120.0,
                 **kwargs: Any) -> None:
        self._kwargs = dict(kwargs, socket_timeout=socket_timeout)
        probe = redis.Redis(host=host, port=port, **self._kwargs)
        try:
            clustered = str(probe.info("cluster").get("cluster_enabled", 0)) == "1"
        except RedisError as e:
            raise server_error(e) from e
        finally:
            probe.close()
        self.redis: Any = (RedisCluster(host=host, port=port, **self._kwargs) if clustered
                           else _OneServer(host, port, **self._kwargs))
        self.clustered = clustered
        self._known = {(n.host, n.port) for n in self.redis.get_nodes()}
        self._rr = itertools.count()
        self._rr_lock = threading.Lock()

    # ------------------------------------------------------------ failover

    def execute(self, *args: Any, retry_for: float = 30.0) -> Any:
        """One command, routed by its keys (INFER.* and V* declare theirs);
        an error reply raised as its typed error.  A connection that fails
        - a primary that died, a failover under way - is retried for
        retry_for seconds on a client rebuilt from the nodes still
        answering, so the command lands on the promoted replica once the
        cluster has one.  A command whose connection broke may have run:
        it runs again (STORE sets the same key again; STREAM may get its
        entries twice)."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return self.redis.execute_command(*args)
            except ResponseError as e:
                raise server_error(e) from e
            # AttributeError: redis-py 4.3 leaves a node without a
            # connection after it gave up on it ("'NoneType' object has no
            # attribute 'execute_command'"); a rebuilt client has none
            except (ConnectionError, TimeoutError, RedisClusterException, AttributeError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.25)
                self.refresh()

    def refresh(self) -> bool:
        """Rebuilds the routing client from every node known so far that
        still answers (redis-py 4.3's own refresh after a failover can fail
        for good).  Whether it could; the old client stays otherwise."""
        if not self.clustered:
            return False  # one server: nothing to fail over to
        seeds = [ClusterNode(h, p) for h, p in sorted(self._known)]
        try:
            fresh = RedisCluster(startup_nodes=seeds, **self._kwargs)
        except (RedisError, RedisClusterException, OSError, TypeError):
            return False  # no node answers with a whole slot map yet
        old, self.redis = self.redis, fresh
        self._known |= {(n.host, n.port) for n in fresh.get_nodes()}
        try:
            old.close()
        except (RedisError, OSError, AttributeError) as e:  # a dead node's connection: nothing to release
            log.debug("closing the replaced cluster client: %r", e)
        return True

    def close(self) -> None:
        self.redis.close()

    def __enter__(self) -> "ClusterClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ nodes

    def nodes(self) -> list[tuple[str, str]]:
        """Every node as ("host:port", "primary" | "replica")."""
        return [(_node_name(n), "primary" if n.server_type == "primary" else "replica")
                for n in self.redis.get_nodes()]

    def _on_node(self, node: ClusterNode, *args: Any) -> Any:
        try:
            return self.redis.execute_command(*args, target_nodes=node)
        except RedisError as e:
            raise server_error(e) from e

    def _everywhere(self, args: Sequence[Any]) -> ClusterReport:
        nodes = self.redis.get_nodes()

        def one(n: ClusterNode) -> NodeResult:
            t0 = time.monotonic()
            role = "primary" if n.server_type == "primary" else "replica"
            try:
                self._on_node(n, *args)
                return NodeResult(_node_name(n), role, True, None, time.monotonic() - t0)
            except (RedisError, OSError) as e:
                return NodeResult(_node_name(n), role, False, str(e), time.monotonic() - t0)

        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as ex:
            results = list(ex.map(one, nodes))
        return ClusterReport(" ".join(str(a) for a in args[:3]), sorted(results, key=lambda r: r.node))

    # ------------------------------------------------------------ models

    def load_model(self, name: str, path: str, *, context: int | None = None, aliases: Sequence[str] = (),
                   check: bool = True) -> ClusterReport:
        """INFER.LOAD on every primary and every replica, at once (a model is
        a file each node maps; nothing replicates it).  The per-node report;
        with check, ModelLoadError naming the nodes that failed."""
        report = self._everywhere(load_args(name, path, context, aliases))
        if check and not report.ok:
            raise ModelLoadError("ERR " + "; ".join(f"{r.node}: {r.error}" for r in report.failed))
        return report

    def unload_model(self, name: str, *, check: bool = True) -> ClusterReport:
        """INFER.UNLOAD on every node (requests in flight finish first)."""
        report = self._everywhere(["INFER.UNLOAD", name])
        if check and not report.ok:
            raise ModelLoadError("ERR " + "; ".join(f"{r.node}: {r.error}" for r in report.failed))
        return report

    # ------------------------------------------------------------ retrieval

    def _generation_node(self) -> ClusterNode:
        """The next node in turn, replicas included."""
        nodes = sorted(self.redis.get_nodes(), key=_node_name)
        with self._rr_lock:
            i = next(self._rr)
        return nodes[i % len(nodes)]

    def rag(self, generator: str, embedder: str, question: str, *, corpus: str | None = None,
            shards: int | None = None, sets: Sequence[str] | None = None, count: int = 5,
            filter: str | None = None, filter_ef: int | None = None, ef: int | None = None,
            contextkey_field: str | None = None, template_key: str | None = None, with_prompt: bool = False,
            max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
            top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
            seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
            timeout_ms: int | None = None, store: str | None = None) -> ClusterRagAnswer:
        """INFER.RAG over a corpus split across shards: the sets of `corpus`
        with `shards` shards (inferkv.shards' naming rule, what
        inferkv-ingest --shards writes), or the vector sets `sets`.  The
        answer is INFER.RAG's on one node holding every set's elements.
        The generation runs on the TEMPLATE / STORE key's node when one is
        given, else on every node in turn."""
        if sets is None:
            if corpus is None or shards is None:
                raise TypeError("give corpus= and shards=, or sets=")
            sets = shard_sets(corpus, shards)
        elif corpus is not None or shards is not None:
            raise TypeError("give corpus= and shards=, or sets=, not both")
        if not sets:
            raise ValueError("no vector set to search")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive integer, got {count!r}")
        opts = sampling_args(max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop, chat,
                             timeout_ms, store)

        # one node embeds and generates: the TEMPLATE / STORE key's (one
        # slot, or the host's CROSSSLOT), else every node in turn, replicas
        # included (a call that writes nothing is a read anywhere)
        key = store if store is not None else template_key
        node = self.redis.get_node_from_key(key) if key is not None else self._generation_node()
        t0 = time.monotonic()
        vec = self._embed(node, embedder, question)
        t1 = time.monotonic()
        per_set = self._fan_out(sets, vec, count, filter, filter_ef, ef)
        t2 = time.monotonic()
        hits = sorted(((score, si, rank, name, attrs) for si, res in enumerate(per_set)
                       for rank, (name, score, attrs) in enumerate(res)),
                      key=lambda h: (-h[0], h[1], h[2]))[:count]
        texts = [self._chunk(sets[si], attrs, contextkey_field) for _, si, _, _, attrs in hits]
        t3 = time.monotonic()

        given = [t for t in texts if t is not None]
        args: list[Any] = ["INFER.ANSWER", generator, question, "CHUNKS", len(given), *given, "WITHSOURCES"]
        if with_prompt:
            args.append("WITHPROMPT")
        if template_key is not None:
            args += ["TEMPLATE", template_key]
        args += opts
        try:
            reply = self.redis.execute_command(*args, target_nodes=node)
        except RedisError as e:
            raise server_error(e) from e
        t4 = time.monotonic()

        m = {text(k): v for k, v in as_map(reply).items()}
        try:
            states = iter(text(s) for s in m.get("sources") or [])
            sources = [Source(text(name), float(score), "no-text" if t is None else next(states), vset=sets[si])
                       for (score, si, _, name, _), t in zip(hits, texts)]
            return ClusterRagAnswer(
                text(m["text"]), sources, int(m["chunks_used"]), len(hits), int(m["tokens"]), text(m["finish"]),
                int(m["prompt_tokens"]), int(m["reused_tokens"]), (t1 - t0) * 1000, float(m["queue_ms"]),
                float(m["prefill_ms"]), float(m["decode_ms"]), text(m["prompt"]) if "prompt" in m else None,
                fanout_ms=(t2 - t1) * 1000, merge_ms=(t3 - t2) * 1000, generate_ms=(t4 - t3) * 1000,
                node=_node_name(node))
        except (KeyError, StopIteration, TypeError, ValueError) as e:
            raise ProtocolError(f"INFER.ANSWER answered {reply!r:.120}: {e}") from e

    def _embed(self, node: ClusterNode, embedder: str, question: str) -> bytes:
        """The question's vector as INFER.RAG embeds it (FP32 bytes), on
        node: INFER.EMBED of a text names no key, any node runs it."""
        try:
            reply = self.redis.execute_command("INFER.EMBED", embedder, question, "FP32", target_nodes=node)
        except RedisError as e:
            raise server_error(e) from e
        if not isinstance(reply, list) or len(reply) != 1 or not isinstance(reply[0], bytes):
            raise ProtocolError(f"INFER.EMBED answered {reply!r:.80}")
        return reply[0]

    def _fan_out(self, sets: Sequence[str], vec: bytes, count: int, filter: str | None, filter_ef: int | None,
                 ef: int | None) -> list[list[tuple[str, float, Any]]]:
        """VSIM on every set at once, each on its slot's node: per set, its
        hits (name, score, attributes) best first; a missing set has none."""
        tail: list[Any] = ["WITHSCORES", "WITHATTRIBS", "COUNT", count]
        if filter is not None:
            tail += ["FILTER", filter]
        if filter_ef is not None:
            tail += ["FILTER-EF", filter_ef]
        if ef is not None:
            tail += ["EF", ef]

        def one(vset: str) -> list[tuple[str, float, Any]]:
            try:
                flat = self.redis.execute_command("VSIM", vset, "FP32", vec, *tail)
            except RedisError as e:
                raise server_error(e) from e
            if isinstance(flat, dict):  # RESP3: name -> [score, attributes]
                return [(text(k), float(v[0]), v[1]) for k, v in flat.items()]
            if not isinstance(flat, list) or len(flat) % 3:
                raise ProtocolError(f"VSIM {vset} answered {flat!r:.80}")
            return [(text(flat[i]), float(flat[i + 1]), flat[i + 2]) for i in range(0, len(flat), 3)]

        with ThreadPoolExecutor(max_workers=min(32, len(sets))) as ex:
            return list(ex.map(one, sets))

    def _chunk(self, vset: str, attrs: Any, contextkey_field: str | None) -> str | bytes | None:
        """A hit's chunk where INFER.RAG reads it: the "text" attribute, or
        (CONTEXTKEY-FIELD) the string key, or hash key's "text" field, that
        the attribute names - on the shard's node, where the set's hash tag
        keeps it.  None: no text (the hit is reported "no-text")."""
        if contextkey_field is None:
            return _attr_text(attrs, "text")
        key = _attr_text(attrs, contextkey_field)
        if key is None:
            return None
        try:
            kind = text(self.redis.type(key))
            if kind == "string":
                v = self.redis.get(key)
            elif kind == "hash":
                v = self.redis.hget(key, "text")
            else:
                return None
        except RedisError as e:
            raise server_error(e) from e
        return v  # the bytes as stored: the server takes them as INFER.RAG would
