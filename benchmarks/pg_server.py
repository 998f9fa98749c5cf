"""A throw-away PostgreSQL for the benchmark, with durability left on.

``lash.testing.postgres.TemporaryPostgres`` starts its cluster with ``fsync=off`` (tests only
need crash safety). A benchmark row that claims durability must pay for the flush, so this
subclass starts the same cluster with PostgreSQL's defaults: ``fsync=on``,
``synchronous_commit=on``, ``full_page_writes=on`` — every commit waits for its WAL flush,
like the SQLite row's synchronous=FULL.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from lash.testing.postgres import TemporaryPostgres


class DurablePostgres(TemporaryPostgres):
    """``TemporaryPostgres`` restarted with durable settings right after it starts."""

    def start(self) -> None:
        super().start()
        if self.external or self.data_dir is None:
            return
        # initdb + the first start run with the test settings; restart with durable ones.
        self.stop("fast")
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        assert self._dir is not None
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self._port}",
                f"-k {self._dir}",
                "-c fsync=on",
                "-c synchronous_commit=on",
                "-c full_page_writes=on",
                "-c max_connections=200",
            ]
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self._dir / "data"),
            "-l",
            str(self._dir / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )


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
    with DurablePostgres() as pg:
        print(asyncio.run(server_settings(pg.dsn)))
