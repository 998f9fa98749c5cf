"""Effects the turn machine asks for, and the responses that answer them.

Reply-producing effects (:class:`LlmCall`, :class:`ToolBatch`, :class:`Checkpoint`) carry a
deterministic ``effect_id`` (a per-turn counter from 1) and a ``replay_key``; the driver answers
each with a response echoing that id. :class:`Emit`, :class:`Progress` and :class:`Done` are
fire-and-forget and never cross an effect host.
"""

from __future__ import annotations

from typing import Any

from lash.types import (
    CheckpointKind,
    LlmResponse,
    Message,
    ProviderFailure,
    ToolCallOutput,
    ToolCallPart,
    ToolResultPart,
    TurnEvent,
    TurnIssue,
    TurnOutcome,
)
from lash.types._base import Record

__all__ = [
    "CheckpointDelivered",
    "Checkpoint",
    "Done",
    "Effect",
    "EffectFailed",
    "Emit",
    "LlmCall",
    "LlmCompleted",
    "LlmFailed",
    "Progress",
    "Response",
    "ToolBatch",
    "ToolResult",
    "ToolResults",
    "child_replay_key",
    "turn_replay_key",
]


def turn_replay_key(
    session_id: str,
    turn_id: str,
    turn_index: int,
    protocol_iteration: int,
    kind: str,
    effect_id: int,
) -> str:
    """``{session}:{turn}:{turn_index}:{iteration}:{kind}:{effect_id}`` (lash's format)."""
    return f"{session_id}:{turn_id}:{turn_index}:{protocol_iteration}:{kind}:{effect_id}"


def child_replay_key(parent: str, suffix: str) -> str:
    """A child effect's key: the parent key plus a suffix."""
    return f"{parent}:{suffix}"


# --- effects ------------------------------------------------------------------------------


class LlmCall(Record, frozen=True, kw_only=True, tag_field="effect", tag="llm_call"):
    """Call the model with ``request`` (see :class:`lash.types.LlmRequest`)."""

    effect_id: int
    replay_key: str
    protocol_iteration: int
    request: Any  # LlmRequest; typed loosely to keep this module free of request building


class ToolBatch(Record, frozen=True, kw_only=True, tag_field="effect", tag="tool_batch"):
    """Run these tool calls (concurrently unless the host says otherwise)."""

    effect_id: int
    replay_key: str
    protocol_iteration: int
    calls: tuple[ToolCallPart, ...]


class Checkpoint(Record, frozen=True, kw_only=True, tag_field="effect", tag="checkpoint"):
    """A safe boundary: deliver injected input (if any) before the turn goes on."""

    effect_id: int
    replay_key: str
    protocol_iteration: int
    kind: CheckpointKind


class Emit(Record, frozen=True, kw_only=True, tag_field="effect", tag="emit"):
    """Publish a live turn event."""

    event: TurnEvent
    correlation_id: str | None = None


class Progress(Record, frozen=True, kw_only=True, tag_field="effect", tag="progress"):
    """The turn's settled messages so far (a resume-safe tail the driver may persist)."""

    messages: tuple[Message, ...]


class Done(Record, frozen=True, kw_only=True, tag_field="effect", tag="done"):
    """The turn is over."""

    outcome: TurnOutcome
    issues: tuple[TurnIssue, ...] = ()


Effect = LlmCall | ToolBatch | Checkpoint | Emit | Progress | Done


# --- responses ----------------------------------------------------------------------------


class ToolResult(Record, frozen=True, kw_only=True):
    """One finished tool call: the full output and the projection the model sees."""

    call: ToolCallPart
    output: ToolCallOutput
    model_return: ToolResultPart
    duration_ms: int = 0


class LlmCompleted(Record, frozen=True, kw_only=True, tag_field="reply", tag="llm_completed"):
    """The model answered. ``text_streamed`` says whether prose deltas were already emitted."""

    effect_id: int
    response: LlmResponse
    text_streamed: bool = True


class LlmFailed(Record, frozen=True, kw_only=True, tag_field="reply", tag="llm_failed"):
    """The model call failed after the retry ladder (or was cancelled)."""

    effect_id: int
    failure: ProviderFailure


class ToolResults(Record, frozen=True, kw_only=True, tag_field="reply", tag="tool_results"):
    """Results of a tool batch, in call order. ``cancelled`` ends the turn after recording them."""

    effect_id: int
    results: tuple[ToolResult, ...]
    cancelled: bool = False


class CheckpointDelivered(
    Record, frozen=True, kw_only=True, tag_field="reply", tag="checkpoint_delivered"
):
    """Messages injected at a checkpoint (empty: nothing to deliver)."""

    effect_id: int
    messages: tuple[Message, ...] = ()


class EffectFailed(Record, frozen=True, kw_only=True, tag_field="reply", tag="effect_failed"):
    """The effect host could not execute an effect; the turn stops as a runtime error."""

    effect_id: int
    code: str
    message: str


Response = LlmCompleted | LlmFailed | ToolResults | CheckpointDelivered | EffectFailed
