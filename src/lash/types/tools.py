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
    """A tool's complete result: status, JSON payload, optional error code and control."""

    status: ToolStatus
    payload: Any = None
    error_code: str | None = None
    control: dict[str, Any] | None = None
    attempts: int = 1

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
