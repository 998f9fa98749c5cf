"""The tool seam the runtime calls: a :class:`Tool` has a model-facing spec and an async
``invoke``; :class:`ToolContext` tells it which session, turn, call and attempt it serves.

``ToolContext.idempotency_key`` is derived from the call's replay key, so it is the same every
time the same attempt is replayed: a tool can make its own side effect exactly-once with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from lash.types import ToolCallOutput, ToolSpec

__all__ = ["Tool", "ToolContext", "ToolError", "ToolProvider", "ToolRetryPolicy"]

ToolRetryPolicy = Literal["never", "safe", "idempotent"]


class ToolError(Exception):
    """Raise from a tool to return a failure to the model with a stable ``code``.

    ``retry_after_ms`` (or ``retryable=True`` for the policy's backoff delay) marks the
    failure as safe to retry (only honoured for tools whose retry policy is ``safe`` or
    ``idempotent``).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str = "tool_error",
        retry_after_ms: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after_ms = retry_after_ms
        self.retryable = retry_after_ms is not None if retryable is None else retryable


class ToolContext:
    """What a running tool may know about its call."""

    __slots__ = (
        "attempt",
        "call_id",
        "cancelled",
        "idempotency_key",
        "replay_key",
        "session_id",
        "tool_name",
        "turn_id",
        "extras",
    )

    def __init__(
        self,
        *,
        session_id: str,
        turn_id: str,
        call_id: str,
        tool_name: str,
        replay_key: str,
        attempt: int = 1,
        cancelled: asyncio.Event | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.turn_id = turn_id
        self.call_id = call_id
        self.tool_name = tool_name
        self.replay_key = replay_key
        self.attempt = attempt
        self.idempotency_key = f"{replay_key}:attempt:{attempt}"
        self.cancelled = cancelled or asyncio.Event()
        self.extras: Mapping[str, Any] = extras or {}

    def __repr__(self) -> str:
        return (
            f"ToolContext(session_id={self.session_id!r}, turn_id={self.turn_id!r}, "
            f"call_id={self.call_id!r}, attempt={self.attempt})"
        )


@runtime_checkable
class Tool(Protocol):
    """A callable tool."""

    @property
    def spec(self) -> ToolSpec:
        """Name, description and argument schema."""
        ...

    @property
    def retry_policy(self) -> ToolRetryPolicy:
        """Whether failed attempts may be retried."""
        ...

    async def invoke(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolCallOutput:
        """Validate ``arguments``, run, and return the full output.

        Expected failures (bad arguments, :class:`ToolError`, exceptions from user code) are
        returned as ``failure`` outputs, never raised; only cancellation propagates.
        """
        ...


@runtime_checkable
class ToolProvider(Protocol):
    """A group of tools contributed together (a plugin, an MCP server, a workspace)."""

    def tools(self) -> Sequence[Tool]:
        """The tools this provider offers now."""
        ...
