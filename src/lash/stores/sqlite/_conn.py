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
    "SyncState",
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

    ``write_transactions`` counts ``BEGIN IMMEDIATE`` (``durable_transactions`` those run
    with ``synchronous=FULL``); ``probes`` counts read-only checkpoint probes;
    ``node_rows_read`` counts graph rows decoded by loads.
    """

    write_transactions: int = 0
    durable_transactions: int = 0
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
    busy_timeout_ms: int


_NORMAL = 1
_FULL = 2


@dataclass(slots=True)
class SyncState:
    """Which ``synchronous`` level the connection is at, and which one durable writes use.

    In WAL mode ``NORMAL`` never fsyncs at commit and ``FULL`` fsyncs the WAL, which also
    makes every earlier transaction durable (the WAL is one ordered log). So writes a host
    acts on (commits, enqueues, cancels, metadata) run at the durable level, while lease and
    claim bookkeeping runs at ``NORMAL``: a power cut can lose only a suffix of that
    bookkeeping, and its owner died in the same cut.
    """

    durable_level: int
    current: int = _NORMAL

    @classmethod
    def for_mode(cls, synchronous: Synchronous) -> SyncState:
        """``"full"``: durable writes fsync; ``"normal"``: nothing fsyncs at commit."""
        return cls(durable_level=_FULL if synchronous == "full" else _NORMAL)

    def apply(self, conn: sqlite3.Connection, durable: bool) -> None:
        """Switch the connection's level (outside a transaction) if it differs."""
        level = self.durable_level if durable else _NORMAL
        if level != self.current:
            conn.execute(f"PRAGMA synchronous = {level}")
            self.current = level


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
        conn.execute(f"PRAGMA synchronous = {_NORMAL}")  # see SyncState
        conn.execute("PRAGMA temp_store = MEMORY")
        # A checkpoint after one huge transaction shrinks the WAL back instead of keeping it.
        conn.execute("PRAGMA journal_size_limit = 67108864").fetchall()
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


def write_tx(
    conn: sqlite3.Connection,
    stats: SqliteStats,
    fn: Callable[[], T],
    sync: SyncState,
    *,
    durable: bool = True,
) -> T:
    """Run ``fn`` inside ``BEGIN IMMEDIATE``: committed whole, or rolled back whole.

    Taking the write lock up front means a read-then-write never acts on a snapshot another
    writer has already superseded. ``durable`` picks the ``synchronous`` level (SyncState).
    """
    sync.apply(conn, durable)
    conn.execute("BEGIN IMMEDIATE")
    stats.write_transactions += 1
    if sync.current == _FULL:
        stats.durable_transactions += 1
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
