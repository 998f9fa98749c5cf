"""Tool call outputs and records.

The full :class:`ToolCallOutput` is durable; the model sees a budgeted projection of it
(a :class:`~lash.types.messages.ToolResultPart`).
"""

from __future__ import annotations

from typing import Any, Literal

from lash.types._base import Record

__all__ = ["ToolCallOutput", "ToolCallRecord", "ToolStatus"]

ToolStatus = Literal["success", "failure", "cancelled"]


class ToolCallOutput(Record, frozen=True, kw_only=True):
    """A tool's complete result: status, JSON payload, optional error code and control.

    A failure's ``payload`` is its message (a string), or a dict with a ``"message"`` key plus
    structured detail. ``retryable``/``retry_after_ms`` say the failure is transient; dispatch
    honours them only for tools whose retry policy allows it, and clears them on exhaustion.
    """

    status: ToolStatus
    payload: Any = None
    error_code: str | None = None
    control: dict[str, Any] | None = None
    attempts: int = 1
    retryable: bool = False
    retry_after_ms: int | None = None

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
