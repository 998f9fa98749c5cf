"""The provider-neutral LLM request/response model, stream events and call records.

Adapters translate between these and each provider's wire format; the turn machine only
ever sees these types. Execution evidence and usage are *provider-reported only*: an absent
field means "not reported", never zero.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from lash.types._base import Record
from lash.types.messages import Message, ReasoningPart, TextPart, ToolCallPart
from lash.types.usage import TokenUsage

__all__ = [
    "AttemptRecord",
    "ExecutionEvidence",
    "LlmCallRecord",
    "LlmRequest",
    "LlmResponse",
    "ModelCapabilities",
    "ModelSpec",
    "NormalizedError",
    "ProviderFailure",
    "ProviderFailureKind",
    "ReasoningDelta",
    "ResponseCompleted",
    "ResponsePart",
    "RetryDecision",
    "StreamEvent",
    "TerminalReason",
    "TextDelta",
    "ToolCallDelta",
    "ToolSpec",
    "UsageReported",
]

TerminalReason = Literal[
    "stop",
    "tool_use",
    "output_limit",
    "context_overflow",
    "content_filter",
    "provider_error",
    "cancelled",
    "unknown",
]

ProviderFailureKind = Literal[
    "transport",
    "timeout",
    "http",
    "stream",
    "auth",
    "validation",
    "quota",
    "unsupported",
    "unknown",
]


class ModelCapabilities(Record, frozen=True, kw_only=True):
    """Host-supplied facts about a model; providers never guess them from names or URLs."""

    reasoning_efforts: tuple[str, ...] = ()
    default_reasoning_effort: str | None = None
    cache_control: Literal["anthropic", "gemini"] | None = None
    parallel_tool_calls: bool = True
    stream_termination: Literal["require_terminal_evidence", "eof_tolerated"] = (
        "require_terminal_evidence"
    )


class ModelSpec(msgspec.Struct, frozen=True):
    """The model a session uses: id, limits and capabilities.

    ``context_window`` is the prompt/input budget in tokens; ``max_output_tokens`` the output
    cap sent with each request (``None`` leaves it to the provider).
    """

    id: str
    context_window: int = 128_000
    max_output_tokens: int | None = None
    reasoning: str | None = None
    capabilities: ModelCapabilities = msgspec.field(default_factory=ModelCapabilities)

    def __post_init__(self) -> None:
        if not self.id or not self.id.strip():
            raise ValueError("ModelSpec.id must be non-empty")
        if self.context_window <= 0:
            raise ValueError("ModelSpec.context_window must be positive")
        if self.max_output_tokens is not None and self.max_output_tokens <= 0:
            raise ValueError("ModelSpec.max_output_tokens must be positive")


class ToolSpec(Record, frozen=True, kw_only=True):
    """A tool as the model sees it: name, description and a JSON-schema for arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class LlmRequest(Record, frozen=True, kw_only=True):
    """One model call: system prompt, history, tools and generation options."""

    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: Literal["auto", "none", "required"] = "auto"
    max_output_tokens: int | None = None
    reasoning: str | None = None
    capabilities: ModelCapabilities = msgspec.field(default_factory=ModelCapabilities)
    session_id: str | None = None
    agent_frame_id: str | None = None
    request_id: str | None = None
    options: dict[str, Any] = msgspec.field(default_factory=dict)


ResponsePart = TextPart | ReasoningPart | ToolCallPart


class ExecutionEvidence(Record, frozen=True, kw_only=True):
    """What the provider reported about how it served the call."""

    served_model: str | None = None
    provider_response_id: str | None = None
    provider_request_id: str | None = None
    reasoning_output_tokens: int | None = None
    provider_finish_reason: str | None = None


class LlmResponse(Record, frozen=True, kw_only=True):
    """A completed model response."""

    parts: tuple[ResponsePart, ...] = ()
    usage: TokenUsage | None = None
    terminal_reason: TerminalReason = "stop"
    evidence: ExecutionEvidence | None = None

    @property
    def text(self) -> str:
        """Concatenated text parts."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> tuple[ToolCallPart, ...]:
        """Tool calls, in order."""
        return tuple(p for p in self.parts if isinstance(p, ToolCallPart))


# --- stream events (provider -> runtime) ------------------------------------------------


class TextDelta(Record, frozen=True, kw_only=True, tag_field="type", tag="text_delta"):
    """An append-only suffix of assistant prose."""

    text: str


class ReasoningDelta(Record, frozen=True, kw_only=True, tag_field="type", tag="reasoning_delta"):
    """An append-only suffix of reasoning text."""

    text: str


class ToolCallDelta(Record, frozen=True, kw_only=True, tag_field="type", tag="tool_call_delta"):
    """A fragment of a streamed tool call (informational; the response carries the whole)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class UsageReported(Record, frozen=True, kw_only=True, tag_field="type", tag="usage"):
    """Usage the provider reported mid-stream."""

    usage: TokenUsage


class ResponseCompleted(Record, frozen=True, kw_only=True, tag_field="type", tag="completed"):
    """The final, complete response (always the last event of a successful stream)."""

    response: LlmResponse


StreamEvent = TextDelta | ReasoningDelta | ToolCallDelta | UsageReported | ResponseCompleted


# --- failures and call records ----------------------------------------------------------


class ProviderFailure(Record, frozen=True, kw_only=True):
    """A classified provider failure.

    ``retryable`` says whether the same request may succeed later; ``hard_quota`` failures are
    never retried; ``retry_after_s`` carries a server-sent Retry-After/RetryInfo.
    """

    kind: ProviderFailureKind
    message: str
    retryable: bool = False
    code: str | None = None
    http_status: int | None = None
    retry_after_s: float | None = None
    hard_quota: bool = False
    terminal_reason: TerminalReason = "provider_error"
    provider_request_id: str | None = None
    raw: str | None = None


class NormalizedError(Record, frozen=True, kw_only=True):
    """An attempt's error, bounded and redacted for storage."""

    kind: ProviderFailureKind
    message: str
    code: str | None = None
    http_status: int | None = None
    retry_after_s: float | None = None
    provider_request_id: str | None = None
    raw: str | None = None


class RetryDecision(Record, frozen=True, kw_only=True):
    """Whether (and after how long) another attempt was scheduled."""

    scheduled: bool
    delay_s: float | None = None
    reason: str | None = None


class AttemptRecord(Record, frozen=True, kw_only=True):
    """One attempt of one logical model call."""

    ordinal: int
    started_at_ms: int
    duration_ms: int
    outcome: Literal["completed", "failed", "aborted", "interrupted"]
    protocol_position: Literal[
        "no_response", "response_observed", "output_started", "terminal_observed"
    ] = "no_response"
    retry_budget_consumed: bool = True
    retry_decision: RetryDecision | None = None
    error: NormalizedError | None = None
    evidence: ExecutionEvidence | None = None
    usage: TokenUsage | None = None


class LlmCallRecord(Record, frozen=True, kw_only=True):
    """Every attempt of one logical model call, in order."""

    call_id: str
    attempts: tuple[AttemptRecord, ...] = ()
    label: str | None = None
    model: str | None = None

    @property
    def usage(self) -> TokenUsage | None:
        """Usage of the completed attempt, when the provider reported it."""
        for attempt in reversed(self.attempts):
            if attempt.usage is not None:
                return attempt.usage
        return None
