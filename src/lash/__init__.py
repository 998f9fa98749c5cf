"""lash: a durable runtime for LLM agents.

One atomic, fenced, idempotent commit per turn: kill the process at any instant, start it
anywhere, and no committed turn is lost or doubled, no tool call lacks its result, and two
workers never run one session at once.
"""

from lash.errors import (
    DurableStoreFacet,
    EmbedError,
    LashRuntimeError,
    RuntimeErrorCode,
    StoreError,
    StoreErrorKind,
)
from lash.types import (
    Message,
    ModelSpec,
    TokenUsage,
    ToolCallRecord,
    TurnActivity,
    TurnInput,
    TurnIssue,
    TurnOutcome,
    TurnResult,
)

__all__ = [
    "DurableStoreFacet",
    "EmbedError",
    "LashRuntimeError",
    "Message",
    "ModelSpec",
    "RuntimeErrorCode",
    "StoreError",
    "StoreErrorKind",
    "TokenUsage",
    "ToolCallRecord",
    "TurnActivity",
    "TurnInput",
    "TurnIssue",
    "TurnOutcome",
    "TurnResult",
]
