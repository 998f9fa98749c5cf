"""Turn benchmark rows for lash: ``memory`` (MemoryStore) or ``sqlite`` (synchronous=FULL).

Usage: ``python benchmarks/lash_turns.py memory|sqlite`` — prints one ``BENCH {json}`` line.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lash_model import MODEL, BenchModel, lookup
from workload import PROMPT, TurnRecorder, emit, sqlite_logical_bytes

import lash
from lash.stores import MemoryStore
from lash.stores.sqlite import SqliteStore


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


async def run(kind: str) -> None:
    durable = kind == "sqlite"
    rec = TurnRecorder(
        name=f"lash + {'SqliteStore (synchronous=FULL)' if durable else 'MemoryStore'}",
        group="lash",
        durable=durable,
        notes="one fsync'd commit per turn" if durable else "no durability",
    )
    tmp = Path(tempfile.mkdtemp(prefix="lash-bench-"))
    db = tmp / "lash.db"
    store: lash.stores.SessionStore = SqliteStore(db) if durable else MemoryStore()
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
                if durable and s == 0:
                    rec.bytes_series.append(sqlite_logical_bytes(db))
    if durable:
        rec.final_bytes = sqlite_logical_bytes(db)
    # CPU time (both threads) is steadier than wall time on a shared machine's disk.
    rec.extra["cpu_median_ms"] = round(statistics.median(cpu), 3)
    rec.extra["cpu_ms_session0"] = [round(c, 3) for c in cpu[: rec.turns]]
    emit(rec.summary())


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1] if len(sys.argv) > 1 else "sqlite"))
