"""Scale benchmark for lash on SqliteStore (synchronous=FULL): prints one ``BENCH`` line.

1. Concurrency: ``SCALE_SESSIONS`` sessions x ``SCALE_TURNS`` turns, all on one event loop
   against one database file; counts errors, lease conflicts and lost turns (all must be 0).
2. Memory per parked session (tracemalloc, after the sessions are parked and dropped) and per
   open idle session.
3. History growth: one session driven to ``LONG_TURNS`` committed turns, recording the wall and
   CPU time of each turn and the latency of each store commit.
4. ``open()`` latency of that long session from a fresh core (cold state, warm page cache).
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from lash_model import MODEL, BenchModel, lookup
from workload import PROMPT, emit, peak_rss_mb, percentile, sqlite_logical_bytes

import lash
from lash.errors import LashRuntimeError, RuntimeErrorCode
from lash.stores.sqlite import SqliteStore

SESSIONS = int(os.environ.get("SCALE_SESSIONS", "1000"))
TURNS = int(os.environ.get("SCALE_TURNS", "10"))
LONG_TURNS = int(os.environ.get("LONG_TURNS", "1000"))
OPEN_REPEATS = 20
INTERLEAVED_ROUNDS = int(os.environ.get("INTERLEAVED_ROUNDS", "150"))


def build_core(store: SqliteStore) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(BenchModel())
        .model(MODEL)
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .tools([lookup])
        .build()
    )


class TimedStore(SqliteStore):
    """Records how long each ``commit`` takes, as the runtime awaits it."""

    commit_ms: list[float]

    async def commit(self, commit: Any) -> Any:  # type: ignore[override]
        start = time.perf_counter()
        try:
            return await super().commit(commit)
        finally:
            self.commit_ms.append((time.perf_counter() - start) * 1000)


def ms(values: list[float], q: float) -> float:
    return round(percentile(values, q), 3)


async def concurrency(tmp: Path) -> dict[str, Any]:
    db = tmp / "scale.db"
    store = SqliteStore(db)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    conflicts = 0

    async with build_core(store) as core:

        async def drive(i: int) -> None:
            nonlocal conflicts
            session = await core.session(f"s-{i}").open()
            for _ in range(TURNS):
                start = time.perf_counter()
                try:
                    result = await session.turn(PROMPT).run()
                except LashRuntimeError as err:
                    if err.is_code(RuntimeErrorCode.SESSION_EXECUTION_BUSY):
                        conflicts += 1
                    errors[str(err.code)] = errors.get(str(err.code), 0) + 1
                    continue
                latencies.append((time.perf_counter() - start) * 1000)
                if result.outcome.kind != "finished":
                    errors[f"outcome:{result.outcome.kind}"] = errors.get("outcome", 0) + 1
            await session.park()

        start = time.perf_counter()
        await asyncio.gather(*(drive(i) for i in range(SESSIONS)))
        elapsed = time.perf_counter() - start

        lost = 0
        for i in range(SESSIONS):
            persisted = await store.load_session(f"s-{i}")
            if (
                persisted is None
                or persisted.head_revision != TURNS
                or len(persisted.nodes) != 4 * TURNS
            ):
                lost += 1
    return {
        "sessions": SESSIONS,
        "turns_per_session": TURNS,
        "turns_committed": len(latencies),
        "elapsed_s": round(elapsed, 2),
        "turns_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": ms(latencies, 50),
            "p90": ms(latencies, 90),
            "p99": ms(latencies, 99),
            "max": round(max(latencies), 3) if latencies else None,
        },
        "errors": sum(errors.values()),
        "error_codes": errors,
        "lease_conflicts": conflicts,
        "lost_turns": lost,
        "db_bytes": sqlite_logical_bytes(db),
    }


async def session_memory(tmp: Path, count: int) -> dict[str, Any]:
    """tracemalloc bytes per session: open and idle, then parked (handles dropped).

    Reuses the concurrency run's database, where every session has ``TURNS`` committed turns.
    """
    store = SqliteStore(tmp / "scale.db")
    async with build_core(store) as core:
        await (await core.session("m-warm").open()).park()
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        sessions = [await core.session(f"s-{i}").open() for i in range(count)]
        for s in sessions:
            await s.read_view()  # make sure each handle holds its loaded state
        gc.collect()
        opened = tracemalloc.get_traced_memory()[0]
        parked = [await s.park() for s in sessions]
        del sessions
        gc.collect()
        after_park = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert len(parked) == count
    return {
        "sessions": count,
        "history_turns": TURNS,
        "open_idle_bytes_per_session": round((opened - base) / count),
        "parked_bytes_per_session": round((after_park - base) / count),
    }


async def history_growth(tmp: Path) -> dict[str, Any]:
    db = tmp / "long.db"
    store = TimedStore(db)
    store.commit_ms = []
    wall: list[float] = []
    cpu: list[float] = []
    async with build_core(store) as core:
        session = await core.session("long").open()
        for _ in range(LONG_TURNS):
            w0, c0 = time.perf_counter(), time.process_time()
            await session.turn(PROMPT).run()
            cpu.append((time.process_time() - c0) * 1000)
            wall.append((time.perf_counter() - w0) * 1000)
        commits = list(store.commit_ms)
    windows = {}
    for mark in (10, 100, 250, 500, 750, 1000):
        if mark > LONG_TURNS:
            continue
        lo, hi = max(0, mark - 10), mark
        windows[str(mark)] = {
            "wall_median_ms": round(statistics.median(wall[lo:hi]), 3),
            "cpu_median_ms": round(statistics.median(cpu[lo:hi]), 3),
        }
    open_ms: list[float] = []
    view_ms: list[float] = []
    first_turn_ms: list[float] = []
    for _ in range(OPEN_REPEATS):
        fresh = SqliteStore(db)
        async with build_core(fresh) as core:
            start = time.perf_counter()
            session = await core.session("long").open()
            opened = time.perf_counter()
            view = await session.read_view()
            viewed = time.perf_counter()
            open_ms.append((opened - start) * 1000)
            view_ms.append((viewed - opened) * 1000)
            assert len(view.messages) >= 4 * LONG_TURNS  # + the first turns below
        # a turn right after open (no read_view first), on another fresh core
        async with build_core(SqliteStore(db)) as core:
            session = await core.session("long").open()
            start = time.perf_counter()
            await session.turn(PROMPT).run()
            first_turn_ms.append((time.perf_counter() - start) * 1000)
    return {
        "turns": LONG_TURNS,
        "by_turn_count": windows,
        "per_turn_wall_ms": [round(x, 3) for x in wall],
        "per_turn_cpu_ms": [round(x, 3) for x in cpu],
        "commit_ms": {
            "p50": ms(commits, 50),
            "p90": ms(commits, 90),
            "p99": ms(commits, 99),
            "max": round(max(commits), 3),
        },
        "open_ms": {"p50": ms(open_ms, 50), "p90": ms(open_ms, 90), "min": round(min(open_ms), 3)},
        "read_view_ms": {"p50": ms(view_ms, 50), "p90": ms(view_ms, 90)},
        "first_turn_after_open_ms": {"p50": ms(first_turn_ms, 50), "p90": ms(first_turn_ms, 90)},
        "db_bytes": sqlite_logical_bytes(db),
    }


async def growth_interleaved(tmp: Path) -> dict[str, Any]:
    """Turn cost at several history lengths, measured side by side.

    Sessions are first driven to 10, 100, 500 and 1,000 committed turns; then each takes one
    turn in rotation, ``INTERLEAVED_ROUNDS`` times. A busy minute on a shared machine hits
    every history length alike, so the comparison holds even when absolute figures drift.
    """
    sizes = [n for n in (10, 100, 500, 1000) if n <= LONG_TURNS]
    store = SqliteStore(tmp / "interleaved.db")
    wall: dict[int, list[float]] = {n: [] for n in sizes}
    cpu: dict[int, list[float]] = {n: [] for n in sizes}
    async with build_core(store) as core:
        sessions = {}
        for n in sizes:
            sessions[n] = await core.session(f"h-{n}").open()
            for _ in range(n):
                await sessions[n].turn(PROMPT).run()
        for r in range(INTERLEAVED_ROUNDS):
            order = sizes if r % 2 == 0 else list(reversed(sizes))
            for n in order:
                w0, c0 = time.perf_counter(), time.process_time()
                await sessions[n].turn(PROMPT).run()
                cpu[n].append((time.process_time() - c0) * 1000)
                wall[n].append((time.perf_counter() - w0) * 1000)
    return {
        "rounds": INTERLEAVED_ROUNDS,
        "by_history": {
            str(n): {
                "wall_median_ms": round(statistics.median(wall[n]), 3),
                "cpu_median_ms": round(statistics.median(cpu[n]), 3),
                "wall_p90_ms": ms(wall[n], 90),
            }
            for n in sizes
        },
    }


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="lash-scale-"))
    out: dict[str, Any] = {"name": "lash scale (SqliteStore, synchronous=FULL)", "group": "scale"}
    out["growth"] = await history_growth(tmp)
    out["interleaved"] = await growth_interleaved(tmp)
    out["concurrency"] = await concurrency(tmp)
    out["memory"] = await session_memory(tmp, min(SESSIONS, 1000))
    out["peak_rss_mb"] = peak_rss_mb()
    emit(out)


if __name__ == "__main__":
    asyncio.run(main())
