"""The connection type the query modules take, and the database clock.

Every lease decision reads :func:`db_now_ms` *inside* the deciding transaction, after the
lease row is locked: the database's clock, never a worker's, so workers with skewed clocks
(or a forged lease row with a far-future expiry) cannot decide anything by themselves.
"""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from lash.clock import Clock

__all__ = ["Conn", "NOW_MS_SQL", "Now", "db_now_ms", "rowcount"]

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

NOW_MS_SQL = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
"""Milliseconds since the epoch by the server's clock, read when the statement runs."""


class Now:
    """Where "now" comes from: the database, or a pinned test clock.

    ``pinned`` exists only so the conformance kit can expire leases by moving a manual
    clock instead of sleeping; production stores leave it ``None``.
    """

    __slots__ = ("pinned",)

    def __init__(self, pinned: Clock | None) -> None:
        self.pinned = pinned

    async def __call__(self, conn: Conn) -> int:
        """The current time in milliseconds, as the deciding transaction sees it."""
        if self.pinned is not None:
            return self.pinned.now_ms()
        return await db_now_ms(conn)


async def db_now_ms(conn: Conn) -> int:
    """The server's clock in milliseconds."""
    value = await conn.fetchval(NOW_MS_SQL)
    return int(value)


def rowcount(status: str) -> int:
    """Rows affected, from a command status such as ``"UPDATE 3"``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
