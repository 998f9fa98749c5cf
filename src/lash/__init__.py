"""lash: a durable runtime for LLM agents.

One atomic, fenced, idempotent commit per turn: kill the process at any instant, start it
anywhere, and no committed turn is lost or doubled, no tool call lacks its result, and two
workers never run one session at once.
"""

from lash import stores
from lash.errors import (
    DurableStoreFacet,
    EmbedError,
    LashRuntimeError,
    RuntimeErrorCode,
    StoreError,
    StoreErrorKind,
)
from lash.runtime import (
    AbortTurn,
    CancelReceipt,
    EffectHost,
    EnqueueMessages,
    ExecutionScope,
    InlineEffectHost,
    LashCore,
    LashCoreBuilder,
    LashSession,
    LeaseTimings,
    LiveReplayStore,
    ParkedSession,
    Plugin,
    SessionReadView,
    SwitchAgentFrame,
    TurnBuilder,
    TurnHandle,
    TurnStream,
)
from lash.tools import Tool, ToolContext, ToolError, ToolProvider, tool
from lash.types import (
    Message,
    ModelCapabilities,
    ModelSpec,
    PendingTurnInput,
    TokenUsage,
    ToolCallRecord,
    TurnActivity,
    TurnInput,
    TurnInputIngress,
    TurnIssue,
    TurnOutcome,
    TurnResult,
)

__version__ = "0.1.0"

__all__ = [
    "AbortTurn",
    "CancelReceipt",
    "DurableStoreFacet",
    "EffectHost",
    "EmbedError",
    "EnqueueMessages",
    "ExecutionScope",
    "InlineEffectHost",
    "LashCore",
    "LashCoreBuilder",
    "LashRuntimeError",
    "LashSession",
    "LeaseTimings",
    "LiveReplayStore",
    "Message",
    "ModelCapabilities",
    "ModelSpec",
    "ParkedSession",
    "PendingTurnInput",
    "Plugin",
    "RuntimeErrorCode",
    "SessionReadView",
    "StoreError",
    "StoreErrorKind",
    "SwitchAgentFrame",
    "TokenUsage",
    "Tool",
    "ToolCallRecord",
    "ToolContext",
    "ToolError",
    "ToolProvider",
    "TurnActivity",
    "TurnBuilder",
    "TurnHandle",
    "TurnInput",
    "TurnInputIngress",
    "TurnIssue",
    "TurnOutcome",
    "TurnResult",
    "TurnStream",
    "stores",
    "tool",
]
