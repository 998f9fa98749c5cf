"""Tool call outputs and records.

The full :class:`ToolCallOutput` is durable; the model sees a budgeted projection of it
(a :class:`~lash.types.messages.ToolResultPart`).
"""

from __future__ import annotations

from typing import Any, Literal

from lash.types._base import Record
from lash.types.usage import TokenLedgerEntry

__all__ = ["ToolCallOutput", "ToolCallRecord", "ToolStatus"]

ToolStatus = Literal["success", "failure", "cancelled"]


class ToolCallOutput(Record, frozen=True, kw_only=True):
    """A tool's complete result: status, JSON payload, optional error code and control.

    A failure's ``payload`` is its message (a string), or a dict with a ``"message"`` key plus
    structured detail. ``retryable``/``retry_after_ms`` say the failure is transient; dispatch
    honours them only for tools whose retry policy allows it, and clears them on exhaustion.

    ``usage`` is model usage the tool spent on the turn's behalf (a subagent's child session,
    a direct completion); it travels with the output so a replayed attempt reports it again,
    and the turn adds it to ``TurnResult.children_usage``.
    """

    status: ToolStatus
    payload: Any = None
    error_code: str | None = None
    control: dict[str, Any] | None = None
    attempts: int = 1
    retryable: bool = False
    retry_after_ms: int | None = None
    usage: tuple[TokenLedgerEntry, ...] = ()

    @property
    def ok(self) -> bool:
        """True on success."""
        return self.status == "success"


class ToolCallRecord(Record, frozen=True, kw_only=True):
    """One tool call of a turn, as the host sees it."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    status: ToolStatus
    output: Any = None
    error_code: str | None = None
    duration_ms: int = 0
    attempts: int = 1
