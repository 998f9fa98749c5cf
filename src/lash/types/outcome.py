"""Turn outcomes, issues, cancellation evidence and the host-facing turn result."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from lash.types._base import Record
from lash.types.llm import LlmCallRecord, ProviderFailureKind, TerminalReason
from lash.types.messages import Message
from lash.types.tools import ToolCallRecord
from lash.types.usage import TokenLedgerEntry, TokenUsage

__all__ = [
    "STOP_REASONS",
    "AssistantOutput",
    "CancellationEvidence",
    "ExecutionSummary",
    "OutcomeKind",
    "TurnIssue",
    "TurnOutcome",
    "TurnResult",
]

OutcomeKind = Literal["finished", "agent_frame_switch", "stopped"]

STOP_REASONS: frozenset[str] = frozenset(
    {
        "cancelled",
        "incomplete",
        "invalid_input",
        "max_turns",
        "tool_failure",
        "provider_error",
        "plugin_abort",
        "runtime_error",
        "submitted_error",
        "tool_error",
    }
)
FINISH_REASONS: frozenset[str] = frozenset({"assistant_message", "final_value", "tool_value"})


class TurnOutcome(Record, frozen=True, kw_only=True):
    """How a turn ended.

    ``kind`` is ``finished``, ``agent_frame_switch`` or ``stopped``; ``reason`` names the finish
    (``assistant_message``, ``final_value``, ``tool_value``) or the stop (``cancelled``,
    ``provider_error``, ``max_turns``, ...).
    """

    kind: OutcomeKind
    reason: str
    text: str | None = None
    value: Any = None
    tool_name: str | None = None
    frame_id: str | None = None
    task: str | None = None
    initial_messages: tuple[Message, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "stopped" and self.reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {self.reason!r}")
        if self.kind == "finished" and self.reason not in FINISH_REASONS:
            raise ValueError(f"unknown finish reason {self.reason!r}")

    @classmethod
    def assistant_message(cls, text: str) -> TurnOutcome:
        """Finished with assistant prose."""
        return cls(kind="finished", reason="assistant_message", text=text)

    @classmethod
    def tool_value(cls, tool_name: str, value: Any) -> TurnOutcome:
        """Finished by a tool-authored terminal value."""
        return cls(kind="finished", reason="tool_value", tool_name=tool_name, value=value)

    @classmethod
    def final_value(cls, value: Any) -> TurnOutcome:
        """Finished with a final value."""
        return cls(kind="finished", reason="final_value", value=value)

    @classmethod
    def stopped(
        cls, reason: str, *, value: Any = None, tool_name: str | None = None
    ) -> TurnOutcome:
        """Stopped for ``reason``."""
        return cls(kind="stopped", reason=reason, value=value, tool_name=tool_name)

    @classmethod
    def frame_switch(
        cls, frame_id: str, task: str, initial_messages: tuple[Message, ...] = ()
    ) -> TurnOutcome:
        """The turn continues in a new agent frame."""
        return cls(
            kind="agent_frame_switch",
            reason="agent_frame_switch",
            frame_id=frame_id,
            task=task,
            initial_messages=initial_messages,
        )

    @property
    def is_success(self) -> bool:
        """Finished or switched frames."""
        return self.kind != "stopped"


class TurnIssue(Record, frozen=True, kw_only=True):
    """A problem observed during a turn (provider failure, tool failure, plugin abort, ...)."""

    kind: str
    message: str
    code: str | None = None
    terminal_reason: TerminalReason | None = None
    raw: str | None = None
    retryable: bool | None = None
    provider_failure_kind: ProviderFailureKind | None = None


class CancellationEvidence(Record, frozen=True, kw_only=True):
    """Why a turn was cancelled: who asked, and the request id that won the cancel gate."""

    request_id: str
    origin: str | None = None
    reason: str | None = None
    requested_at_ms: int = 0

    @property
    def is_internal(self) -> bool:
        """True for evidence written by the owner itself (``internal:{turn_id}``)."""
        return self.request_id.startswith("internal:")


class AssistantOutput(Record, frozen=True, kw_only=True):
    """The assistant's final prose and how usable it is."""

    safe_text: str = ""
    raw_text: str = ""
    state: Literal["usable", "empty_output", "traceback_only", "recovered_from_error"] = (
        "empty_output"
    )


class ExecutionSummary(Record, frozen=True, kw_only=True):
    """Coarse facts about what the turn did."""

    had_tool_calls: bool = False
    had_code_execution: bool = False
    started_at_ms: int = 0
    duration_ms: int = 0


class TurnResult(Record, frozen=True, kw_only=True):
    """The committed result of one turn."""

    session_id: str
    turn_id: str
    outcome: TurnOutcome
    assistant_output: AssistantOutput = msgspec.field(default_factory=AssistantOutput)
    usage: TokenUsage = msgspec.field(default_factory=TokenUsage)
    children_usage: tuple[TokenLedgerEntry, ...] = ()
    llm_calls: tuple[LlmCallRecord, ...] = ()
    tool_calls: tuple[ToolCallRecord, ...] = ()
    issues: tuple[TurnIssue, ...] = ()
    cancellation: CancellationEvidence | None = None
    execution: ExecutionSummary = msgspec.field(default_factory=ExecutionSummary)
    head_revision: int | None = None
    turn_index: int = 0

    @property
    def assistant_text(self) -> str:
        """The settled assistant prose ("" when the turn produced none)."""
        return self.assistant_output.safe_text

    @property
    def errors(self) -> tuple[TurnIssue, ...]:
        """Alias of :attr:`issues` (lash's field name)."""
        return self.issues

    def total_usage(self) -> TokenUsage:
        """The turn's own usage plus every child session's."""
        total = self.usage
        for entry in self.children_usage:
            total = total + entry.usage
        return total

    def is_success(self) -> bool:
        """Finished or switched frames."""
        return self.outcome.is_success
