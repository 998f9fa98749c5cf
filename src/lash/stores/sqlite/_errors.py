"""Map ``sqlite3`` and filesystem failures onto stable :class:`StoreErrorKind` values.

Callers match kinds, never SQLite message text, so every driver error crossing the store
boundary goes through :func:`translate`.
"""

from __future__ import annotations

import errno
import os
import sqlite3

from lash.errors import StoreError, StoreErrorKind

__all__ = ["translate", "translate_os"]

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26


def translate(exc: sqlite3.Error, path: str | None = None) -> StoreError:
    """The :class:`StoreError` for a driver error (``path`` improves the messages)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    where = f" ({path})" if path else ""
    if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StoreError(
            StoreErrorKind.CORRUPT,
            f"the file is not a lash SQLite database or is corrupt{where}: {exc}",
        )
    if primary == _SQLITE_FULL:
        return StoreError(
            StoreErrorKind.DISK_FULL, f"the disk is full; nothing was committed{where}: {exc}"
        )
    if primary == _SQLITE_READONLY:
        return StoreError(StoreErrorKind.READ_ONLY, f"the database is read-only{where}: {exc}")
    if primary == _SQLITE_CANTOPEN:
        directory = _directory(path) if path is not None else None
        if directory is not None and not os.path.isdir(directory):
            return StoreError(
                StoreErrorKind.BACKEND,
                f"the database directory {directory} does not exist{where}: {exc}",
            )
        if directory is not None and not os.access(directory, os.W_OK | os.X_OK):
            return StoreError(
                StoreErrorKind.READ_ONLY,
                f"the database directory is not writable{where}: {exc}",
            )
        return StoreError(StoreErrorKind.BACKEND, f"cannot open the database{where}: {exc}")
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return StoreError(
            StoreErrorKind.BACKEND, f"the database is busy{where}: {exc}", retryable=True
        )
    if primary == _SQLITE_IOERR:
        return StoreError(StoreErrorKind.BACKEND, f"disk I/O error{where}: {exc}")
    return StoreError(StoreErrorKind.BACKEND, f"SQLite error{where}: {exc}")


def translate_os(exc: OSError, what: str) -> StoreError:
    """The :class:`StoreError` for a filesystem error while doing ``what``."""
    if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
        return StoreError(StoreErrorKind.DISK_FULL, f"the disk is full while {what}: {exc}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(StoreErrorKind.READ_ONLY, f"read-only storage while {what}: {exc}")
    return StoreError(StoreErrorKind.BACKEND, f"I/O error while {what}: {exc}")


def _directory(path: str) -> str | None:
    if path in ("", ":memory:"):
        return None
    return os.path.dirname(os.path.abspath(path)) or "."
