"""Execution scopes: the stable identity every effect's replay key hangs from."""

from __future__ import annotations

from typing import Literal

from lash.errors import LashRuntimeError, RuntimeErrorCode
from lash.types._base import Record

__all__ = ["ExecutionScope", "require_id"]

ScopeKind = Literal["turn", "process", "queue_drain", "session_delete", "runtime_operation"]


def require_id(value: str | None, what: str) -> str:
    """Return ``value`` or raise ``missing_execution_scope_id`` when it is empty or blank."""
    if value is None or not value.strip():
        raise LashRuntimeError(
            RuntimeErrorCode.MISSING_EXECUTION_SCOPE_ID, f"{what} must be a non-empty id"
        )
    return value


class ExecutionScope(Record, frozen=True, kw_only=True):
    """A turn, a process, a queue drain, a session deletion or a runtime operation."""

    kind: ScopeKind
    id: str
    session_id: str | None = None

    def __post_init__(self) -> None:
        require_id(self.id, f"{self.kind} scope id")
        if self.kind in ("turn", "queue_drain", "session_delete"):
            require_id(self.session_id, f"{self.kind} scope session id")

    @classmethod
    def turn(cls, session_id: str, turn_id: str) -> ExecutionScope:
        """The scope of one turn."""
        return cls(kind="turn", id=turn_id, session_id=session_id)

    @classmethod
    def queue_drain(cls, session_id: str, drain_id: str) -> ExecutionScope:
        """The scope of one idle drain."""
        return cls(kind="queue_drain", id=drain_id, session_id=session_id)

    @classmethod
    def process(cls, process_id: str) -> ExecutionScope:
        """The scope of one background process."""
        return cls(kind="process", id=process_id)
