"""Opening the connection (pragmas, schema) and the two transaction shapes every job uses."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from lash.errors import StoreError
from lash.stores.sqlite._errors import translate
from lash.stores.sqlite.schema import ensure_schema

__all__ = [
    "ConnectionConfig",
    "SqliteStats",
    "close_connection",
    "open_connection",
    "read_tx",
    "write_tx",
]

T = TypeVar("T")

Synchronous = Literal["full", "normal"]


@dataclass(slots=True)
class SqliteStats:
    """Counters a test or benchmark can read (written only by the worker thread).

    ``write_transactions`` counts ``BEGIN IMMEDIATE``; ``probes`` counts read-only checkpoint
    probes; ``node_rows_read`` counts graph rows decoded by loads.
    """

    write_transactions: int = 0
    read_transactions: int = 0
    probes: int = 0
    node_rows_read: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """How to open the database file."""

    target: str
    """What ``sqlite3.connect`` receives (a path, ``:memory:`` or a ``file:`` URI)."""
    label: str
    """The path used in error messages."""
    uri: bool
    synchronous: Synchronous
    busy_timeout_ms: int


def _set_wal(conn: sqlite3.Connection, deadline_s: float) -> None:
    """Switch to WAL, retrying: the switch needs an exclusive moment and ignores busy_timeout."""
    delay = 0.001
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) not in (5, 6):
                raise
            if time.monotonic() > deadline_s:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        if str(mode).lower() not in ("wal", "memory"):
            raise sqlite3.OperationalError(f"could not switch to WAL (journal_mode={mode})")
        return


def open_connection(config: ConnectionConfig) -> sqlite3.Connection:
    """Open, configure and migrate; raises :class:`StoreError` with a stable kind."""
    try:
        conn = sqlite3.connect(
            config.target,
            isolation_level=None,
            uri=config.uri,
            timeout=config.busy_timeout_ms / 1000,
            cached_statements=256,
        )
    except sqlite3.Error as exc:
        raise translate(exc, config.label) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
        # Touch the header first: junk bytes fail here as NOTADB, before any write.
        conn.execute("PRAGMA user_version").fetchone()
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        _set_wal(conn, time.monotonic() + config.busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA synchronous = {config.synchronous.upper()}")
        conn.execute("PRAGMA temp_store = MEMORY")
        ensure_schema(conn, config.label)
    except StoreError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise translate(exc, config.label) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def close_connection(conn: sqlite3.Connection) -> None:
    """Close; the last connection to close folds the WAL back into the main file."""
    conn.close()


def write_tx(conn: sqlite3.Connection, stats: SqliteStats, fn: Callable[[], T]) -> T:
    """Run ``fn`` inside ``BEGIN IMMEDIATE``: committed whole, or rolled back whole.

    Taking the write lock up front means a read-then-write never acts on a snapshot another
    writer has already superseded.
    """
    conn.execute("BEGIN IMMEDIATE")
    stats.write_transactions += 1
    try:
        result = fn()
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (SQLITE_FULL, ...) already rolled the transaction back.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def read_tx(conn: sqlite3.Connection, stats: SqliteStats, fn: Callable[[], T]) -> T:
    """Run ``fn`` inside a deferred transaction: one consistent snapshot, no write lock."""
    conn.execute("BEGIN")
    stats.read_transactions += 1
    try:
        return fn()
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")
