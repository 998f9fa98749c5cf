"""The benchmark's PostgreSQL: helpers around a durable ``TemporaryPostgres``.

``lash.testing.postgres.TemporaryPostgres`` starts its cluster with ``fsync=off`` (tests only
need crash safety). A benchmark row that claims durability must pay for the flush, so the
benchmarks start it with ``durable=True``: PostgreSQL's defaults ``fsync=on``,
``synchronous_commit=on``, ``full_page_writes=on`` — every commit waits for its WAL flush,
like the SQLite row's synchronous=FULL.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from lash.testing.postgres import TemporaryPostgres


def new_schema() -> str:
    return f"bench_{uuid.uuid4().hex[:12]}"


async def schema_bytes(conn: asyncpg.Connection, schema: str) -> int:
    """Bytes the schema's tables take (heap, indexes, TOAST), as PostgreSQL counts them."""
    value = await conn.fetchval(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind = 'r'",
        schema,
    )
    return int(value)


async def server_settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for name in ("fsync", "synchronous_commit", "full_page_writes", "server_version"):
            out[name] = str(await conn.fetchval(f"SHOW {name}"))
        return out
    finally:
        await conn.close()


if __name__ == "__main__":
    with TemporaryPostgres(durable=True) as pg:
        print(asyncio.run(server_settings(pg.dsn)))
