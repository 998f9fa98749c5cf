"""The live, app-facing turn event stream (not durable history).

Each event is wrapped in a :class:`TurnActivity` with a fresh ``id`` and a ``correlation_id``
that groups the phases of one thing (the deltas of one prose block, a tool call's start and
completion). Settled text never comes from here: it comes from the committed turn result.
"""

from __future__ import annotations

from typing import Any

from lash.types._base import Record
from lash.types.messages import Message
from lash.types.tools import ToolCallOutput
from lash.types.usage import TokenUsage

__all__ = [
    "AssistantProseDelta",
    "ChildUsage",
    "CodeBlockCompleted",
    "CodeBlockStarted",
    "ErrorEvent",
    "FinalValue",
    "ModelAttemptReset",
    "ModelRequestStarted",
    "PluginRuntime",
    "QueuedInputAccepted",
    "QueuedMessagesCommitted",
    "QueuedWorkStarted",
    "ReasoningDeltaEvent",
    "RetryStatus",
    "ToolCallCompleted",
    "ToolCallStarted",
    "ToolValue",
    "TurnActivity",
    "TurnEvent",
    "UsageEvent",
]


class _Ev(Record, frozen=True, kw_only=True, tag_field="type"):
    pass


class QueuedWorkStarted(_Ev, frozen=True, kw_only=True, tag="queued_work_started"):
    """A queued-work drain began."""

    boundary: str
    batch_ids: tuple[str, ...] = ()
    causes: tuple[Any, ...] = ()


class ModelRequestStarted(_Ev, frozen=True, kw_only=True, tag="model_request_started"):
    """A model call is about to be made."""

    protocol_iteration: int


class AssistantProseDelta(_Ev, frozen=True, kw_only=True, tag="assistant_prose_delta"):
    """Live preview of assistant prose."""

    text: str


class ReasoningDeltaEvent(_Ev, frozen=True, kw_only=True, tag="reasoning_delta"):
    """Live reasoning text."""

    text: str


class ModelAttemptReset(_Ev, frozen=True, kw_only=True, tag="model_attempt_reset"):
    """A provider attempt is being retried; delete the text of these correlations."""

    assistant_prose_correlation_ids: tuple[str, ...] = ()
    reasoning_correlation_ids: tuple[str, ...] = ()


class CodeBlockStarted(_Ev, frozen=True, kw_only=True, tag="code_block_started"):
    """A code block started (RLM mode)."""

    language: str
    code: str
    graph_key: str | None = None


class CodeBlockCompleted(_Ev, frozen=True, kw_only=True, tag="code_block_completed"):
    """A code block finished (RLM mode)."""

    language: str
    output: str
    success: bool
    duration_ms: int
    error: str | None = None
    tool_call_ids: tuple[str, ...] = ()
    graph_key: str | None = None


class ToolCallStarted(_Ev, frozen=True, kw_only=True, tag="tool_call_started"):
    """A tool call began."""

    name: str
    args: dict[str, Any]
    call_id: str | None = None
    graph_key: str | None = None
    parent_call_id: str | None = None


class ToolCallCompleted(_Ev, frozen=True, kw_only=True, tag="tool_call_completed"):
    """A tool call finished."""

    name: str
    args: dict[str, Any]
    output: ToolCallOutput
    duration_ms: int
    call_id: str | None = None
    graph_key: str | None = None
    parent_call_id: str | None = None


class FinalValue(_Ev, frozen=True, kw_only=True, tag="final_value"):
    """A final value ended the turn."""

    value: Any


class ToolValue(_Ev, frozen=True, kw_only=True, tag="tool_value"):
    """A tool-authored terminal value ended the turn."""

    tool_name: str
    value: Any


class UsageEvent(_Ev, frozen=True, kw_only=True, tag="usage"):
    """Usage of one model iteration and the turn's running total."""

    protocol_iteration: int
    usage: TokenUsage
    cumulative: TokenUsage


class ChildUsage(_Ev, frozen=True, kw_only=True, tag="child_usage"):
    """Usage of a child session (subagent, compaction, observer)."""

    session_id: str
    source: str
    model: str
    protocol_iteration: int
    usage: TokenUsage
    cumulative: TokenUsage


class RetryStatus(_Ev, frozen=True, kw_only=True, tag="retry_status"):
    """The provider retry ladder is waiting before another attempt."""

    wait_seconds: float
    attempt: int
    max_attempts: int
    reason: str


class PluginRuntime(_Ev, frozen=True, kw_only=True, tag="plugin_runtime"):
    """Plugin activity for UIs."""

    plugin_id: str
    event: Any


class QueuedInputAccepted(_Ev, frozen=True, kw_only=True, tag="queued_input_accepted"):
    """Input addressed to the running turn was claimed at a checkpoint."""

    checkpoint: str
    inputs: tuple[str, ...]


class QueuedMessagesCommitted(_Ev, frozen=True, kw_only=True, tag="queued_messages_committed"):
    """Plugin- or ingress-supplied messages joined the turn at a checkpoint."""

    checkpoint: str
    messages: tuple[Message, ...]


class ErrorEvent(_Ev, frozen=True, kw_only=True, tag="error"):
    """A non-terminal error signal."""

    message: str
    code: str | None = None


TurnEvent = (
    QueuedWorkStarted
    | ModelRequestStarted
    | AssistantProseDelta
    | ReasoningDeltaEvent
    | ModelAttemptReset
    | CodeBlockStarted
    | CodeBlockCompleted
    | ToolCallStarted
    | ToolCallCompleted
    | FinalValue
    | ToolValue
    | UsageEvent
    | ChildUsage
    | RetryStatus
    | PluginRuntime
    | QueuedInputAccepted
    | QueuedMessagesCommitted
    | ErrorEvent
)


class TurnActivity(Record, frozen=True, kw_only=True):
    """An event plus its identity: a unique ``id`` and a grouping ``correlation_id``."""

    id: str
    correlation_id: str
    event: TurnEvent
    turn_id: str | None = None

    @property
    def type(self) -> str:
        """The event's ``type`` tag."""
        return str(type(self.event).__struct_config__.tag)
