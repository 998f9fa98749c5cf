"""The contract between the generic turn machine and an execution protocol.

The machine owns the mechanics every protocol shares (effect ids, replay keys, the
terminal-reason table, usage, progress, cancellation, snapshots). A protocol driver owns the
decisions: given what the model or the tools returned, which messages to append and what to
do next. It answers with a list of :data:`DriverAction`; the machine applies them in order.
Every list ends with exactly one *step* action (:class:`StartLlm`, :class:`StartTools`,
:class:`StartCheckpoint` or :class:`Finish`); the others may precede it.

Drivers are stateless: everything they need is in the :class:`DriverView`, so a restored
machine needs no driver state to go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from lash.kernel.effects import ToolResult
from lash.types import (
    CheckpointKind,
    LlmResponse,
    Message,
    Part,
    Role,
    ToolCallPart,
    TurnEvent,
    TurnIssue,
    TurnOutcome,
)

__all__ = [
    "AdvanceIteration",
    "AppendMessage",
    "DriverAction",
    "DriverView",
    "EmitEvent",
    "Finish",
    "ProtocolDriver",
    "RecordIssue",
    "StartCheckpoint",
    "StartLlm",
    "StartTools",
    "StepAction",
]


@dataclass(frozen=True, slots=True)
class EmitEvent:
    """Publish a live turn event."""

    event: TurnEvent


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """Append a message to the turn; the machine assigns its deterministic id."""

    role: Role
    parts: tuple[Part, ...]


@dataclass(frozen=True, slots=True)
class RecordIssue:
    """Record a turn issue (reported with ``Done``)."""

    issue: TurnIssue


@dataclass(frozen=True, slots=True)
class AdvanceIteration:
    """Move to the next protocol iteration."""


@dataclass(frozen=True, slots=True)
class StartLlm:
    """Call the model with the projected request."""


@dataclass(frozen=True, slots=True)
class StartTools:
    """Run these tool calls as one batch."""

    calls: tuple[ToolCallPart, ...]


@dataclass(frozen=True, slots=True)
class StartCheckpoint:
    """Take a checkpoint; ``on_empty`` is the outcome to finish with when nothing is
    delivered, or ``None`` to start the next model round."""

    kind: CheckpointKind
    on_empty: TurnOutcome | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """End the turn with ``outcome``."""

    outcome: TurnOutcome


StepAction = StartLlm | StartTools | StartCheckpoint | Finish
DriverAction = EmitEvent | AppendMessage | RecordIssue | AdvanceIteration | StepAction


class DriverView(Protocol):
    """What a driver may read of the machine."""

    @property
    def context_messages(self) -> tuple[Message, ...]:
        """History followed by the turn's messages so far."""
        ...

    @property
    def protocol_iteration(self) -> int:
        """The current protocol iteration."""
        ...

    @property
    def max_turns(self) -> int | None:
        """The configured iteration cap."""
        ...

    @property
    def iteration_limit(self) -> int | None:
        """``offset + max_turns``: the first iteration the turn may not reach."""
        ...


class ProtocolDriver(Protocol):
    """An execution protocol, as the turn machine sees it."""

    @property
    def protocol_id(self) -> str:
        """A stable name, recorded in snapshots."""
        ...

    def prepare_iteration(self, view: DriverView) -> Sequence[DriverAction]:
        """Begin a protocol iteration (normally: call the model)."""
        ...

    def on_llm_response(
        self, view: DriverView, response: LlmResponse, *, text_streamed: bool
    ) -> Sequence[DriverAction]:
        """Handle a model response whose terminal reason lets the protocol decide."""
        ...

    def on_tool_results(
        self, view: DriverView, results: Sequence[ToolResult]
    ) -> Sequence[DriverAction]:
        """Handle a completed (not cancelled) tool batch, results in call order."""
        ...

    def turn_limit_text(self, max_turns: int) -> str:
        """The system message appended when the iteration cap ends the turn."""
        ...
