"""errors.py - every error the client raises, and the map from server replies.

Why a hierarchy of our own: callers should be able to catch "the model's
queue is full" or "this record is corrupt" without parsing message texts,
and a failure must never turn into a silent None.  Server errors keep
redis-py's ResponseError as a base, so code written against redis-py that
catches ResponseError still catches them.

`server_error(exc)` turns a reply error into the most specific class from the
error's prefix and text: the texts are inferkv's (src/infercmd/, the engine's
scheduler) and Redis's, quoted in the table below so that a change of wording
on the server shows up as a failing test (tests/test_errors.py), not as a
wrong class at a user's site.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from redis.exceptions import ExecAbortError, NoScriptError, ResponseError


class InferkvError(Exception):
    """Base of every error raised by the inferkv client."""


# --------------------------------------------------------------------------
# Errors answered by the server
# --------------------------------------------------------------------------


class ServerError(InferkvError, ResponseError):
    """An error reply from the server that no narrower class describes."""


class UnknownCommand(ServerError):
    """The server does not have the command (e.g. EVAL on inferkv, VADD on Redis 7)."""


class WrongType(ServerError):
    """WRONGTYPE: a key holds another type than the command works on."""


class NoScript(ServerError, NoScriptError):
    """NOSCRIPT: the script cache lost our script (SCRIPT FLUSH, a restart)."""


class ExecAborted(ServerError, ExecAbortError):
    """EXECABORT: the server refused a whole transaction."""


class InferError(ServerError):
    """Base of the errors of INFER.* commands."""


class ModelNotLoaded(InferError):
    """No model of that name is loaded (`INFER.LOAD` it first)."""


class WrongModelKind(InferError):
    """A generator was asked for embeddings, or an encoder to generate."""


class QueueFull(InferError):
    """The model's request queue is full (`infer-max-queue`); retry later."""


class ContextOverflow(InferError):
    """Prompt plus MAXTOKENS exceed the model's context or KV budget."""


class InferTimeout(InferError):
    """TIMEOUT expired before the request finished."""


class Cancelled(InferError):
    """The request was cancelled (CLIENT UNBLOCK, model unloaded, shutdown)."""


class ModelLoadError(InferError):
    """INFER.LOAD failed: missing or corrupt file, loading disabled, too many loads."""


class InvalidInput(InferError):
    """A text, option or FILTER expression the server refused before any work."""


class VectorSetMissing(ServerError):
    """The vector set named in INFER.RAG (or VDIM) does not exist."""


class DimensionMismatch(ServerError):
    """A vector's dimension differs from the vector set's."""


class FilterSyntax(InvalidInput):
    """A FILTER expression that does not compile."""


# --------------------------------------------------------------------------
# Errors of the client's own logic
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One field of a record that could not be decoded: its name, why, and
    the stored bytes (None when the field is missing)."""

    field: str
    reason: str
    raw: bytes | None

    def __str__(self) -> str:
        shown = "missing" if self.raw is None else repr(self.raw[:60]) + ("..." if len(self.raw) > 60 else "")
        return f"field {self.field!r}: {self.reason} (stored: {shown})"


class DecodeError(InferkvError, ValueError):
    """A stored record failed validation on load.  Names the key and every
    failing field with the reason; `errors` holds them as FieldError."""

    def __init__(self, key: str, errors: Sequence[FieldError]) -> None:
        self.key = key
        self.errors = list(errors)
        super().__init__(f"{key}: " + "; ".join(str(e) for e in self.errors))


class EncodeError(InferkvError, TypeError):
    """A value cannot be stored in its field (wrong type, NaN in JSON, an
    Invalid placeholder left by safe_load ...)."""

    def __init__(self, model: str, field: str, reason: str) -> None:
        self.model = model
        self.field = field
        self.reason = reason
        super().__init__(f"{model}.{field}: {reason}")


class UnsupportedFieldType(InferkvError, TypeError):
    """A model field's annotation has no codec (raised when the model is
    registered, so that nothing is ever stored with a fallback such as pickle)."""


class RecordNotFound(InferkvError, KeyError):
    """An atomic update addressed a record that does not exist."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)

    def __str__(self) -> str:
        return f"no such record: {self.key}"


class CorruptField(InferkvError, ValueError):
    """An atomic update found a stored field that is not what its type says
    (a list field that is not a JSON array, an int field that is not an int)."""


class ConflictError(InferkvError):
    """An optimistic (WATCH) transaction lost the race too many times in a row."""


class ScriptingUnavailable(InferkvError):
    """Script mode was asked for, but the server has no scripting."""


class PipelineError(InferkvError):
    """A pipeline was misused: a value needed before the pipeline ran, pipelines
    exited out of order, a Pending read before its pipeline executed."""


class SchemaMismatch(InferkvError):
    """The index definitions stored on the server differ from this process's
    models: another version of the application created them."""


class SchemaDropped(InferkvError):
    """The schema a repository belongs to was dropped."""


class IndexNotReady(InferkvError):
    """A query used a secondary index before `Schema.create()` built it."""


class ProtocolError(InferkvError):
    """A reply whose shape the client does not expect (a server bug or a
    server that is not inferkv / Redis)."""


# --------------------------------------------------------------------------
# Reply error -> class
# --------------------------------------------------------------------------

# (class, prefix of the error text or None, substring of the text or None).
# First match wins; the texts are quoted from the servers.
_RULES: list[tuple[type[ServerError], str | None, str | None]] = [
    (NoScript, "NOSCRIPT", None),
    (WrongType, "WRONGTYPE", None),
    (ExecAborted, "EXECABORT", None),
    (InferTimeout, "TIMEOUT", None),  # "TIMEOUT generation did not finish within N ms"
    (Cancelled, "UNBLOCKED", None),  # "UNBLOCKED generation cancelled via CLIENT UNBLOCK"
    (UnknownCommand, None, "unknown command"),  # "ERR unknown command 'EVAL', with args ..."
    (QueueFull, None, "queue full"),  # "ERR generation failed: queue full (64 requests waiting)"
    (ModelNotLoaded, None, "no such model"),  # "ERR no such model 'x' (INFER.LOAD it first)"
    (WrongModelKind, None, "is a generator, not an encoder"),
    (WrongModelKind, None, "is an encoder (it makes embeddings)"),
    (ContextOverflow, None, "exceed the context"),  # "ERR prompt (N tokens) + MAXTOKENS M exceed the context of C"
    (ContextOverflow, None, "exceed the KV budget"),
    (ContextOverflow, None, "the context holds"),  # "ERR the prompt has N tokens; the context holds C"
    (ContextOverflow, None, "the prompt does not fit"),
    (ContextOverflow, None, "cannot fit the generator's context"),
    (Cancelled, None, "generation cancelled"),
    (Cancelled, None, "embedding cancelled"),
    (ModelLoadError, None, "cannot load model"),
    (ModelLoadError, None, "infer-models-dir is not set"),
    (ModelLoadError, None, "too many model loads"),
    (ModelLoadError, None, "too many models loaded"),
    (ModelLoadError, None, "model path must"),
    (ModelLoadError, None, "invalid model path"),
    (FilterSyntax, None, "in FILTER expression"),  # "ERR syntax error in FILTER expression at position N: ..."
    (DimensionMismatch, None, "dimension mismatch"),  # "ERR Vector dimension mismatch - got N but set has M"
    (VectorSetMissing, None, "does not exist"),  # "ERR vector set 'k' does not exist"
    (InvalidInput, None, "is not valid UTF-8"),
    (InvalidInput, None, "no text to embed"),
    (InvalidInput, None, "text to embed is too large"),
    (InvalidInput, None, "texts per request"),
    (InvalidInput, None, "unknown option"),
    (InvalidInput, None, "text is empty"),
    (InvalidInput, None, "syntax error:"),  # "ERR syntax error: option given twice: 'FP32'"
    (InvalidInput, None, " must be "),  # "ERR MAXTOKENS must be an integer between 1 and 2048"
]


def error_from_text(text: str) -> ServerError:
    """The typed error for an error reply's full text ("ERR ...", "WRONGTYPE ...")."""
    lowered = text.lower()
    for cls, prefix, sub in _RULES:
        if prefix is not None and not text.startswith(prefix):
            continue
        if sub is not None and sub.lower() not in lowered:
            continue
        return cls(text)
    return ServerError(text)


def server_error(exc: BaseException) -> BaseException:
    """The typed error for a reply error that redis-py's own parser made
    (it strips the ERR / NOSCRIPT / EXECABORT code from the text); ours and
    anything that is not a reply error are returned unchanged."""
    if isinstance(exc, ServerError) or not isinstance(exc, ResponseError):
        return exc
    if isinstance(exc, NoScriptError):
        return NoScript("NOSCRIPT " + str(exc))
    if isinstance(exc, ExecAbortError):
        return ExecAborted("EXECABORT " + str(exc))
    if type(exc) is not ResponseError:  # NOPERM, READONLY, LOADING ...: redis-py's own class says it
        return exc
    return error_from_text(str(exc))


def error_class_for(text: str) -> type[BaseException]:
    """The class an error reply with this full text becomes (tests)."""
    return type(error_from_text(text))
