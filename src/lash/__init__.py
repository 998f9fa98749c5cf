"""lash: a durable runtime for LLM agents.

One atomic, fenced, idempotent commit per turn: kill the process at any instant, start it
anywhere, and no committed turn is lost or doubled, no tool call lacks its result, and two
workers never run one session at once.

The facade names below load lazily, so ``import lash.kernel`` or ``import lash.types`` never
pulls in asyncio, sockets or SQLite: the kernel stays provably free of I/O.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lash.errors import (
    DurableStoreFacet,
    EmbedError,
    LashRuntimeError,
    RuntimeErrorCode,
    StoreError,
    StoreErrorKind,
)

if TYPE_CHECKING:
    from lash import stores
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

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "AbortTurn",
            "CancelReceipt",
            "EffectHost",
            "EnqueueMessages",
            "ExecutionScope",
            "InlineEffectHost",
            "LashCore",
            "LashCoreBuilder",
            "LashSession",
            "LeaseTimings",
            "LiveReplayStore",
            "ParkedSession",
            "Plugin",
            "SessionReadView",
            "SwitchAgentFrame",
            "TurnBuilder",
            "TurnHandle",
            "TurnStream",
        ),
        "lash.runtime",
    ),
    **dict.fromkeys(("Tool", "ToolContext", "ToolError", "ToolProvider", "tool"), "lash.tools"),
    **dict.fromkeys(
        (
            "Message",
            "ModelCapabilities",
            "ModelSpec",
            "PendingTurnInput",
            "TokenUsage",
            "ToolCallRecord",
            "TurnActivity",
            "TurnInput",
            "TurnInputIngress",
            "TurnIssue",
            "TurnOutcome",
            "TurnResult",
        ),
        "lash.types",
    ),
}
_SUBMODULES = frozenset(
    {"stores", "runtime", "tools", "types", "kernel", "providers", "testing", "errors", "clock"}
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"lash.{name}")
    raise AttributeError(f"module 'lash' has no attribute {name!r}")


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
