"""inferkv - the typed Python client for inferkv (and Redis 7).

    from inferkv import Client, Model, Tag, Range, Vector

Guide: docs/python.md.  Modules: client (sync), aio (asyncio), model and
codecs (typed records), ops and atomic.lua (writes), base (flows shared by
both clients), inference (INFER.*), cluster and shards (Redis Cluster: models on every
node, RAG across shards), errors, _resp (RESP3 for redis-py 4.3).
"""
from .base import Bound, CreateReport, Hit, OneOf, Pending, between, ge, gt, le, lt, one_of
from .aio import AsyncClient, AsyncGenerationStream, AsyncPipeline, AsyncRepository, AsyncSchema
from .client import Client, GenerationStream, Pipeline, Repository, Schema
from .cluster import ClusterClient, ClusterRagAnswer, ClusterReport, NodeResult
from .errors import (
    Cancelled,
    ConflictError,
    ContextOverflow,
    CorruptField,
    DecodeError,
    DimensionMismatch,
    EncodeError,
    ExecAborted,
    FieldError,
    FilterSyntax,
    IndexNotReady,
    InferError,
    InferkvError,
    InferTimeout,
    InvalidInput,
    ModelLoadError,
    ModelNotLoaded,
    NoScript,
    PipelineError,
    ProtocolError,
    QueueFull,
    RecordNotFound,
    SchemaDropped,
    SchemaMismatch,
    ScriptingUnavailable,
    ServerError,
    UnknownCommand,
    UnsupportedFieldType,
    VectorSetMissing,
    WrongModelKind,
    WrongType,
)
from .inference import Generation, ModelInfo, RagAnswer, Source
from .model import Invalid, Loaded, Model, Range, Tag, Vector, new_id
from .shards import shard_set, shard_sets

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncGenerationStream", "AsyncPipeline", "AsyncRepository", "AsyncSchema",
    "Bound", "Cancelled", "Client", "ClusterClient", "ClusterRagAnswer", "ClusterReport", "ConflictError", "ContextOverflow", "CorruptField", "CreateReport",
    "DecodeError", "DimensionMismatch", "EncodeError", "ExecAborted", "FieldError", "FilterSyntax",
    "Generation", "GenerationStream", "Hit", "IndexNotReady", "InferError", "InferTimeout", "InferkvError",
    "Invalid", "InvalidInput", "Loaded", "Model", "ModelInfo", "ModelLoadError", "ModelNotLoaded", "NoScript",
    "OneOf", "Pending", "Pipeline", "PipelineError", "ProtocolError", "QueueFull", "RagAnswer", "Range",
    "RecordNotFound", "Repository", "Schema", "SchemaDropped", "SchemaMismatch", "ScriptingUnavailable",
    "ServerError", "Source", "Tag", "UnknownCommand", "UnsupportedFieldType", "Vector", "VectorSetMissing",
    "WrongModelKind", "WrongType", "between", "ge", "gt", "le", "lt", "new_id", "one_of", "shard_set", "shard_sets",
]
