"""Where a durable lash turn spends its time: prints one ``BENCH`` line.

Two views of ``PROFILE_TURNS`` SQLite turns after a warm-up:

* the event-loop thread under cProfile, own time grouped by area (kernel, runtime, store
  front end, codecs, asyncio, ...), plus the top functions;
* the SQLite worker thread, timed job by job (which store call, how long on the thread), by
  wrapping each submitted job — the thread is invisible to cProfile.
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from lash_turns import build_core
from workload import PROMPT, emit

from lash.stores.sqlite import SqliteStore, _thread

TURNS = int(os.environ.get("PROFILE_TURNS", "300"))
WARMUP = int(os.environ.get("PROFILE_WARMUP", "20"))

AREAS = [  # first match wins
    ("selectors", "waiting in epoll (for the SQLite thread)"),
    ("'poll' of 'select.epoll'", "waiting in epoll (for the SQLite thread)"),
    ("'put' of '_queue.SimpleQueue'", "thread hand-off (queue put, self-pipe)"),
    ("'recv' of '_socket.socket'", "thread hand-off (queue put, self-pipe)"),
    ("_write_to_self", "thread hand-off (queue put, self-pipe)"),
    ("_read_from_self", "thread hand-off (queue put, self-pipe)"),
    ("/lash/kernel/", "lash.kernel (turn machine)"),
    ("/lash/runtime/", "lash.runtime (driver, session, lease)"),
    ("/lash/stores/", "lash.stores (front end on the loop)"),
    ("/lash/tools/", "lash.tools"),
    ("/lash/types/", "lash.types (records, hashing)"),
    ("/lash/trace/", "lash.trace"),
    ("/lash/", "lash (other)"),
    ("asyncio", "asyncio event loop"),
    ("msgspec", "msgspec codecs"),
    ("uuid", "uuid"),
    ("benchmarks", "benchmark model + tool"),
]


def area_of(key: tuple[str, int, str]) -> str:
    text = f"{key[0]}:{key[2]}"
    for needle, label in AREAS:
        if needle in text:
            return label
    return "other (builtins, stdlib)"


async def main() -> None:
    db = Path(tempfile.mkdtemp(prefix="lash-profile-")) / "p.db"
    jobs: dict[str, list[float]] = defaultdict(list)
    original = _thread.SqliteWorker.run

    async def timed_run(self: Any, fn: Any) -> Any:
        caller = sys._getframe(1).f_code.co_name
        if caller.startswith("_run"):
            caller = sys._getframe(2).f_code.co_name

        def job(conn: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(conn)
            finally:
                jobs[caller].append((time.perf_counter() - start) * 1000)

        return await original(self, job)

    _thread.SqliteWorker.run = timed_run  # type: ignore[method-assign]
    async with build_core(SqliteStore(db)) as core:
        session = await core.session("p").open()
        for _ in range(WARMUP):
            await session.turn(PROMPT).run()
        jobs.clear()
        profiler = cProfile.Profile()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        profiler.enable()
        for _ in range(TURNS):
            await session.turn(PROMPT).run()
        profiler.disable()
        wall = (time.perf_counter() - wall0) * 1000 / TURNS
        cpu = (time.process_time() - cpu0) * 1000 / TURNS
    _thread.SqliteWorker.run = original  # type: ignore[method-assign]

    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())
    by_area: dict[str, float] = defaultdict(float)
    for key, value in stats.items():
        by_area[area_of(key)] += value[2]
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    emit(
        {
            "name": "lash turn profile (SqliteStore)",
            "group": "profile",
            "turns": TURNS,
            "profiled_wall_ms_per_turn": round(wall, 3),
            "profiled_cpu_ms_per_turn": round(cpu, 3),
            "loop_thread_share": {
                k: round(v / total, 3) for k, v in sorted(by_area.items(), key=lambda kv: -kv[1])
            },
            "top_functions": [
                {
                    "function": f"{Path(k[0]).name}:{k[1]}({k[2]})",
                    "calls_per_turn": round(v[1] / TURNS, 1),
                    "own_share": round(v[2] / total, 3),
                }
                for k, v in top
            ],
            "sqlite_thread_jobs": {
                name: {
                    "per_turn": round(len(times) / TURNS, 2),
                    "mean_ms": round(sum(times) / len(times), 3),
                }
                for name, times in sorted(jobs.items())
            },
        }
    )


if __name__ == "__main__":
    asyncio.run(main())
