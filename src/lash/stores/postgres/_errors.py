"""Map asyncpg and connection failures onto stable :class:`StoreErrorKind` values.

Callers match kinds, never driver text. Serialization failures, deadlocks and lock timeouts
(SQLSTATE 40001, 40P01, 55P03) and lost connections (a server restart, a network blip) are
*retryable*: nothing was committed, or — when a connection dies after ``COMMIT`` was sent —
the commit is idempotent by its turn stamp, so a fresh attempt is always safe.
"""

from __future__ import annotations

import asyncpg

from lash.errors import StoreError, StoreErrorKind

__all__ = ["RETRYABLE_SQLSTATES", "translate"]

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
"""Serialization failure, deadlock detected, lock not available (``lock_timeout``)."""

_CONNECTION_CLASSES = ("08", "57")  # connection exceptions; operator intervention (shutdown)
_READ_ONLY = "25006"
_DISK_FULL = "53100"


def translate(exc: BaseException, label: str) -> StoreError:
    """The :class:`StoreError` for a driver or socket error."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state in RETRYABLE_SQLSTATES:
            return StoreError(
                StoreErrorKind.BACKEND,
                f"transient conflict in {label} (SQLSTATE {state}); retry: {exc}",
                retryable=True,
                sqlstate=state,
            )
        if state == _READ_ONLY:
            return StoreError(StoreErrorKind.READ_ONLY, f"{label} is read-only: {exc}")
        if state == _DISK_FULL:
            return StoreError(
                StoreErrorKind.DISK_FULL, f"{label} is out of disk; nothing was committed: {exc}"
            )
        if state.startswith(_CONNECTION_CLASSES):
            return StoreError(
                StoreErrorKind.BACKEND,
                f"{label} connection lost (SQLSTATE {state}); retry: {exc}",
                retryable=True,
                sqlstate=state,
            )
        return StoreError(
            StoreErrorKind.BACKEND, f"PostgreSQL error in {label}: {exc}", sqlstate=state
        )
    if isinstance(exc, asyncpg.InterfaceError | OSError | TimeoutError | ConnectionError):
        return StoreError(
            StoreErrorKind.BACKEND,
            f"{label} is unreachable or the connection dropped; retry: {exc}",
            retryable=True,
        )
    return StoreError(StoreErrorKind.BACKEND, f"{label}: {exc}")
