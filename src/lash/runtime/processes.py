"""The identity guard of background process execution.

Processes (durable background work with its own lease) are a later subsystem; the rule they
rest on is fixed now: a process's execution identity is its persisted id, so a (re-)execution
that cannot present a non-empty id has lost its idempotency anchor and must fail loudly.
"""

from __future__ import annotations

from lash.errors import LashRuntimeError

__all__ = ["ensure_stable_process_id"]


def ensure_stable_process_id(process_id: str | None) -> str:
    """Return ``process_id`` or raise ``missing_process_execution_id``."""
    if process_id is None or not process_id.strip():
        raise LashRuntimeError.missing_process_execution_id()
    return process_id
