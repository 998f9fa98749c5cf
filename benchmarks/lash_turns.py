"""Turn benchmark rows for lash: ``memory`` (MemoryStore), ``sqlite`` (synchronous=FULL) or
``postgres`` (a throw-away local PostgreSQL with fsync=on, synchronous_commit=on).

Usage: ``python benchmarks/lash_turns.py memory|sqlite|postgres`` — prints one ``BENCH {json}``
line.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
from lash_model import MODEL, BenchModel, lookup
from pg_server import new_schema, schema_bytes, server_settings
from workload import PROMPT, TurnRecorder, emit, sqlite_logical_bytes

import lash
from lash.stores import MemoryStore, PostgresStore
from lash.stores.sqlite import SqliteStore
from lash.testing.postgres import TemporaryPostgres


def build_core(store: lash.stores.SessionStore) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(BenchModel())
        .model(MODEL)
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .tools([lookup])
        .build()
    )


NAMES = {
    "memory": ("lash + MemoryStore", "no durability"),
    "sqlite": ("lash + SqliteStore (synchronous=FULL)", "one fsync'd commit per turn"),
    "postgres": (
        "lash + PostgresStore (fsync=on)",
        "local PostgreSQL 15 over loopback TCP (asyncpg), fsync=on, synchronous_commit=on; "
        "bytes are pg_total_relation_size of the schema's tables",
    ),
}


async def run(kind: str, dsn: str | None = None) -> None:
    durable = kind != "memory"
    name, notes = NAMES[kind]
    rec = TurnRecorder(name=name, group="lash", durable=durable, notes=notes)
    tmp = Path(tempfile.mkdtemp(prefix="lash-bench-"))
    db = tmp / "lash.db"
    schema = new_schema()
    store: lash.stores.SessionStore
    probe: asyncpg.Connection | None = None  # one connection for the untimed size probes
    if kind == "postgres":
        assert dsn is not None
        probe = await asyncpg.connect(dsn)
        pg_store = PostgresStore(dsn, schema=schema, attachments_root=tmp / "blobs")
        await pg_store.open()
        store = pg_store
        rec.extra["postgres"] = await server_settings(dsn)
    elif kind == "sqlite":
        store = SqliteStore(db)
    else:
        store = MemoryStore()
    cpu: list[float] = []
    async with build_core(store) as core:
        for s in range(rec.sessions):
            session = await core.session(f"bench-{s}").open()
            times = rec.new_session()
            for _ in range(rec.turns):
                start, cpu_start = time.perf_counter(), time.process_time()
                result = await session.turn(PROMPT).run()
                times.append((time.perf_counter() - start) * 1000)
                cpu.append((time.process_time() - cpu_start) * 1000)
                if result.outcome.kind != "finished":
                    raise SystemExit(f"turn did not finish: {result.outcome}")
                if s == 0 and kind == "sqlite":
                    rec.bytes_series.append(sqlite_logical_bytes(db))
                elif s == 0 and probe is not None:
                    rec.bytes_series.append(await schema_bytes(probe, schema))
    if kind == "sqlite":
        rec.final_bytes = sqlite_logical_bytes(db)
    elif probe is not None:
        rec.final_bytes = await schema_bytes(probe, schema)
        await probe.close()
    # CPU time (both threads) is steadier than wall time on a shared machine's disk.
    # For Postgres it is this process only; the server's CPU is not counted.
    rec.extra["cpu_median_ms"] = round(statistics.median(cpu), 3)
    rec.extra["cpu_ms_session0"] = [round(c, 3) for c in cpu[: rec.turns]]
    emit(rec.summary())


def main(kind: str) -> None:
    if kind == "postgres":
        with TemporaryPostgres(durable=True) as pg:
            asyncio.run(run(kind, pg.dsn))
    else:
        asyncio.run(run(kind))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite")
