"""Pure, serialisable data: messages, usage, outcomes, events, the session graph, commits.

Nothing here does I/O or imports asyncio.
"""

from lash.types._base import Record, canonical_json, decode, encode, stable_hash, to_builtins
from lash.types.commit import (
    GraphAppend,
    GraphDelta,
    GraphReplaceFull,
    GraphUnchanged,
    PersistedSession,
    QueueClaimCompletion,
    RuntimeCommit,
    RuntimeCommitResult,
    SessionCheckpoint,
    SessionConfig,
    SessionMeta,
    TurnCommitStamp,
    TurnInputClaimCompletion,
    turn_commit_hash,
)
from lash.types.events import *  # noqa: F403
from lash.types.events import __all__ as _events_all
from lash.types.graph import (
    AgentFrameRecord,
    EventPayload,
    MessagePayload,
    NodePayload,
    PluginPayload,
    SessionGraph,
    SessionNode,
    initial_frame_id,
)
from lash.types.ingress import *  # noqa: F403
from lash.types.ingress import __all__ as _ingress_all
from lash.types.lease import *  # noqa: F403
from lash.types.lease import __all__ as _lease_all
from lash.types.llm import *  # noqa: F403
from lash.types.llm import __all__ as _llm_all
from lash.types.messages import *  # noqa: F403
from lash.types.messages import __all__ as _messages_all
from lash.types.outcome import *  # noqa: F403
from lash.types.outcome import __all__ as _outcome_all
from lash.types.tools import ToolCallOutput, ToolCallRecord, ToolStatus
from lash.types.usage import TokenLedgerEntry, TokenUsage, UsageReport, UsageRow, merge_ledger

__all__ = [
    "AgentFrameRecord",
    "EventPayload",
    "GraphAppend",
    "GraphDelta",
    "GraphReplaceFull",
    "GraphUnchanged",
    "MessagePayload",
    "NodePayload",
    "PersistedSession",
    "PluginPayload",
    "QueueClaimCompletion",
    "Record",
    "RuntimeCommit",
    "RuntimeCommitResult",
    "SessionCheckpoint",
    "SessionConfig",
    "SessionGraph",
    "SessionMeta",
    "SessionNode",
    "TokenLedgerEntry",
    "TokenUsage",
    "ToolCallOutput",
    "ToolCallRecord",
    "ToolStatus",
    "TurnCommitStamp",
    "TurnInputClaimCompletion",
    "UsageReport",
    "UsageRow",
    "canonical_json",
    "decode",
    "encode",
    "initial_frame_id",
    "merge_ledger",
    "stable_hash",
    "to_builtins",
    "turn_commit_hash",
    *_events_all,
    *_ingress_all,
    *_lease_all,
    *_llm_all,
    *_messages_all,
    *_outcome_all,
]
