"""inference.py - INFER.* requests and replies, shared by both clients.

Why a module of its own: the argument grammar (docs/commands.md) and the
reply shapes (a RESP3 map or its RESP2 form) are the same for the sync and
the asyncio client; building and parsing them here keeps the two identical.
Every option is checked here only for its Python type; ranges are the
server's to judge, and its error comes back as a typed exception
(errors.py: QueueFull, ModelNotLoaded, ContextOverflow ...).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

from .codecs import vector_bytes
from .errors import ProtocolError
from .ops import as_map, check, text


@dataclass
class Generation:
    """A finished INFER.GENERATE.  Over RESP3 every field is filled; over
    RESP2 the server sends the text only and the rest stay None."""

    text: str
    tokens: int | None = None
    finish: str | None = None  # "stop" or "length"
    prompt_tokens: int | None = None
    reused_tokens: int | None = None
    queue_ms: float | None = None
    prefill_ms: float | None = None
    decode_ms: float | None = None


@dataclass
class Source:
    """One retrieved element of INFER.RAG: its name, VSIM score, and state:
    "used", "cut" (dropped to fit the context) or "no-text"; vset: the
    vector set it came from, for a cross-shard answer (ClusterClient.rag)."""

    element: str
    score: float
    state: str
    vset: str | None = None


@dataclass
class RagAnswer:
    """An INFER.RAG answer with its sources (rank order) and, when asked
    for, the exact prompt the generator got."""

    text: str
    sources: list[Source]
    chunks_used: int
    chunks_retrieved: int
    tokens: int
    finish: str
    prompt_tokens: int
    reused_tokens: int
    embed_ms: float
    queue_ms: float
    prefill_ms: float
    decode_ms: float
    prompt: str | None = None


@dataclass
class ModelInfo:
    """One loaded model name as INFER.MODELS describes it."""

    name: str
    arch: str
    kind: str  # "generator" or "encoder"
    dim: int
    parameters: int
    type: str
    context: int
    requests: int
    path: str
    extra: dict[str, Any] = field(default_factory=dict)


def _str_keys(m: dict[Any, Any]) -> dict[str, Any]:
    return {text(k): v for k, v in m.items()}


def _num(v: Any, cast: type) -> Any:
    return None if v is None else cast(text(v) if isinstance(v, bytes) else v)


def sampling_args(max_tokens: int | None = None, temperature: float | None = None, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None,
                  seed: int | None = None, stop: Sequence[str] | str | None = None, chat: bool = False,
                  timeout_ms: int | None = None, store: str | None = None) -> list[Any]:
    """The options INFER.GENERATE and INFER.RAG share, in their grammar."""
    args: list[Any] = []
    for name, v in (("MAXTOKENS", max_tokens), ("TEMPERATURE", temperature), ("TOPK", top_k), ("TOPP", top_p),
                    ("MINP", min_p), ("REPEAT-PENALTY", repeat_penalty), ("SEED", seed),
                    ("TIMEOUT", timeout_ms)):
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(v).__name__}")
            args += [name, v]
    if stop is not None:
        for s in [stop] if isinstance(stop, str) else stop:
            args += ["STOP", s]
    if chat:
        args.append("CHAT")
    if store is not None:
        args += ["STORE", store]
    return args


def generate_args(model: str, prompt: str | None, prompt_key: str | None, opts: list[Any],
                  stream_key: str | None = None) -> list[Any]:
    if (prompt is None) == (prompt_key is None):
        raise TypeError("give exactly one of prompt and prompt_key")
    args: list[Any] = ["INFER.GENERATE", model]
    args += [prompt] if prompt is not None else ["PROMPTKEY", prompt_key]
    args += opts
    if stream_key is not None:
        args += ["STREAM", stream_key]
    return args


def parse_generation(reply: Any) -> Generation:
    reply = check(reply)
    if isinstance(reply, bytes):
        return Generation(reply.decode("utf-8"))
    m = _str_keys(as_map(reply))
    if "text" not in m:
        raise ProtocolError(f"INFER.GENERATE answered {reply!r:.100}")
    return Generation(text(m["text"]), _num(m.get("tokens"), int), _opt_text(m.get("finish")),
                      _num(m.get("prompt_tokens"), int), _num(m.get("reused_tokens"), int),
                      _num(m.get("queue_ms"), float), _num(m.get("prefill_ms"), float),
                      _num(m.get("decode_ms"), float))


def _opt_text(v: Any) -> str | None:
    return None if v is None else text(v)


def embed_args(model: str, texts: Sequence[str], normalize: bool, long: str) -> list[Any]:
    if long not in ("refuse", "chunk"):
        raise ValueError(f"long must be 'refuse' or 'chunk', got {long!r}")
    return ["INFER.EMBED", model, *texts, "NORMALIZE", "yes" if normalize else "no", "LONG", long, "FP32"]


_OPTION_WORDS = {"NORMALIZE", "LONG", "TIMEOUT"}


def _ambiguous_tail(texts: Sequence[str]) -> bool:
    """Whether INFER.EMBED, which reads options from the end, could take the
    last text (or the last two) for an option (docs/commands.md)."""
    if len(texts) < 2:
        return False  # the first text is always a text
    return texts[-1].upper() == "FP32" or texts[-2].upper() in _OPTION_WORDS


def embed_batches(texts: Sequence[str]) -> list[list[int]]:
    """The order in which to send texts so that none is read as an option:
    one call as given, or rotated, or (when no rotation helps) one call per
    text.  Each batch is a list of indexes into texts."""
    n = len(texts)
    for r in range(n):
        order = list(range(r, n)) + list(range(r))
        if not _ambiguous_tail([texts[i] for i in order]):
            return [order]
    return [[i] for i in range(n)]


def parse_vectors(reply: Any, n: int) -> Any:
    """INFER.EMBED ... FP32's blobs as an (n, dim) float32 array."""
    from .codecs import _numpy

    np = _numpy()
    blobs = check(reply)
    if not isinstance(blobs, list) or len(blobs) != n:
        raise ProtocolError(f"INFER.EMBED answered {len(blobs) if isinstance(blobs, list) else blobs!r} vectors "
                            f"for {n} texts")
    return np.stack([np.frombuffer(bl, dtype="<f4") for bl in blobs]).copy()


def rag_args(generator: str, embedder: str, vset: str | bytes, question: str, *, count: int | None,
             filter: str | None, filter_ef: int | None, ef: int | None, contextkey_field: str | None,
             template_key: str | None, with_prompt: bool, opts: list[Any]) -> list[Any]:
    args: list[Any] = ["INFER.RAG", generator, embedder, vset, question]
    if count is not None:
        args += ["COUNT", count]
    if filter is not None:
        args += ["FILTER", filter]
    if filter_ef is not None:
        args += ["FILTER-EF", filter_ef]
    if ef is not None:
        args += ["EF", ef]
    if contextkey_field is not None:
        args += ["CONTEXTKEY-FIELD", contextkey_field]
    if template_key is not None:
        args += ["TEMPLATE", template_key]
    args.append("WITHSOURCES")
    if with_prompt:
        args.append("WITHPROMPT")
    return args + opts


def parse_rag(reply: Any) -> RagAnswer:
    m = _str_keys(as_map(reply))
    try:
        sources = [Source(text(s[0]), float(text(s[1]) if isinstance(s[1], bytes) else s[1]), text(s[2]))
                   for s in m.get("sources") or []]
        return RagAnswer(text(m["text"]), sources, int(m["chunks_used"]), int(m["chunks_retrieved"]),
                         int(m["tokens"]), text(m["finish"]), int(m["prompt_tokens"]), int(m["reused_tokens"]),
                         _num(m["embed_ms"], float), _num(m["queue_ms"], float), _num(m["prefill_ms"], float),
                         _num(m["decode_ms"], float), _opt_text(m.get("prompt")))
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise ProtocolError(f"INFER.RAG answered {reply!r:.120}: {e}") from e


def parse_models(reply: Any) -> list[ModelInfo]:
    out = []
    for item in check(reply) or []:
        m = _str_keys(as_map(item))
        known = ("name", "arch", "kind", "dim", "parameters", "type", "context", "requests", "path")
        out.append(ModelInfo(text(m["name"]), text(m["arch"]), text(m["kind"]), int(m["dim"]),
                             int(m["parameters"]), text(m["type"]), int(m["context"]), int(m["requests"]),
                             text(m["path"]), {k: v for k, v in m.items() if k not in known}))
    return out


def parse_stats(reply: Any) -> dict[str, Any]:
    out = {}
    for k, v in _str_keys(as_map(reply)).items():
        if isinstance(v, bytes):
            s = v.decode()
            try:
                v = int(s)
            except ValueError:
                try:
                    v = float(s)
                except ValueError:
                    v = s
        out[k] = v
    return out


def load_args(name: str, path: str, context: int | None, aliases: Sequence[str]) -> list[Any]:
    args: list[Any] = ["INFER.LOAD", name, path]
    if context is not None:
        args += ["CONTEXT", context]
    if aliases:
        args += ["ALIAS", *aliases]
    return args


def query_blob(q: Any) -> bytes:
    """A similarity query vector as the FP32 bytes VSIM takes."""
    return vector_bytes(q, None)


STREAM_TTL = 3600  # seconds a streamed generation's key outlives a client that never closed it


def stream_key(namespace: str) -> str:
    """A fresh key for one streamed generation (deleted when it ends)."""
    return f"{namespace}:__stream__:{uuid.uuid4().hex}"


def xread_entries(reply: Any) -> list[tuple[bytes, dict[str, str]]]:
    """The entries of an XREAD of one stream (RESP3 map or RESP2 array), as
    (id, fields) with the fields decoded."""
    reply = check(reply)
    if reply is None:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
    else:
        streams = [s[1] for s in reply]
    out = []
    for entries in streams:
        for eid, flat in entries:
            it = iter(flat)
            out.append((eid, {text(k): v.decode("utf-8") for k, v in zip(it, it)}))
    return out
