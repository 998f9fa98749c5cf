"""The tool seam the runtime calls: a :class:`Tool` has a model-facing spec and an async
``invoke``; :class:`ToolContext` tells it which session, turn, call and attempt it serves.

``ToolContext.idempotency_key`` is derived from the call's replay key, so it is the same every
time the same attempt is replayed: a tool can make its own side effect exactly-once with it.

``ToolContext.attachments`` (a :class:`ToolAttachments`) and ``ToolContext.trace`` are handed
in by the runtime for calls made inside a turn; both are ``None`` when a tool runs elsewhere
(a unit test, a process row without a session), so tools must check before using them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from lash.types import AttachmentRef, ToolCallOutput, ToolSpec

if TYPE_CHECKING:
    from lash.stores.base import AttachmentStore
    from lash.trace.base import Tracer

__all__ = [
    "Tool",
    "ToolAttachments",
    "ToolContext",
    "ToolError",
    "ToolProvider",
    "ToolRetryPolicy",
]

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


class ToolAttachments:
    """The session's attachment store, narrowed to what one tool call may do.

    Every blob a tool stores is referenced by the call's session and owned by its turn (the
    turn commits the reference with its own commit, so an aborted turn leaves only an
    intent that a sweep can reclaim). Reads see only blobs this session references.
    """

    __slots__ = ("_on_put", "_store", "session_id", "turn_id")

    def __init__(
        self,
        store: AttachmentStore,
        session_id: str,
        *,
        turn_id: str | None = None,
        on_put: Callable[[AttachmentRef], None] | None = None,
    ) -> None:
        self._store = store
        self._on_put = on_put
        self.session_id = session_id
        self.turn_id = turn_id

    async def put(self, data: bytes, media_type: str, label: str | None = None) -> AttachmentRef:
        """Store ``data`` for this session and return its content-addressed reference."""
        ref = await self._store.put(
            self.session_id, data, media_type, label=label, owner_turn_id=self.turn_id
        )
        if self._on_put is not None:
            self._on_put(ref)
        return ref

    async def get(self, attachment_id: str) -> bytes:
        """The bytes of a blob this session references (the store's ``not_found`` otherwise)."""
        return await self._store.get(self.session_id, attachment_id)

    def __repr__(self) -> str:
        return f"ToolAttachments(session_id={self.session_id!r}, turn_id={self.turn_id!r})"


class ToolContext:
    """What a running tool may know about its call, plus the capabilities it may use."""

    __slots__ = (
        "attachments",
        "attempt",
        "call_id",
        "cancelled",
        "idempotency_key",
        "replay_key",
        "session_id",
        "tool_name",
        "trace",
        "turn_id",
        "extras",
        "execution_binding",
        "_await_keys",
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
        attachments: ToolAttachments | None = None,
        trace: Tracer | None = None,
        await_keys: Callable[[Any], str] | None = None,
        execution_binding: Mapping[str, Any] | None = None,
    ) -> None:
        self._await_keys = await_keys
        # the host routing payload of the execution grant this call runs under (else None)
        self.execution_binding = execution_binding
        self.session_id = session_id
        self.turn_id = turn_id
        self.call_id = call_id
        self.tool_name = tool_name
        self.replay_key = replay_key
        self.attempt = attempt
        self.idempotency_key = f"{replay_key}:attempt:{attempt}"
        self.cancelled = cancelled or asyncio.Event()
        self.extras: Mapping[str, Any] = extras or {}
        self.attachments = attachments
        self.trace = trace

    def await_event_key(self, wait: Any = None) -> str:
        """The signed key that resolves this call's durable wait (see :func:`lash.tools.pending`).

        ``wait`` is a :class:`~lash.runtime.await_events.WaitIdentity`; the default is this
        call's own completion. Hand the key to whoever will finish the work; they resolve it
        with ``LashCore.resolve_await_event`` (or the Restate workflow's resolve handler).
        """
        if self._await_keys is None:
            raise ToolError(
                "this turn's effect host has no durable waits", code="await_event_unsupported"
            )
        if wait is None:
            wait = {"kind": "tool_completion", "tool_call_id": self.call_id}
        return self._await_keys(wait)

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
