"""The one turn every framework runs, and the measurements every row reports.

A turn is: a 200-byte user prompt, the model asks for one tool call, the tool returns 400
bytes, the model answers with 400 bytes. The model is scripted at each framework's own model
interface, so nothing here touches a network. This module has no dependency beyond the
standard library so that peer scripts (run in a separate virtual environment) can import it.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROMPT = "p" * 200
TOOL_RESULT = "r" * 400
ANSWER = "a" * 400
TOOL_NAME = "lookup"

TURNS = int(os.environ.get("BENCH_TURNS", "40"))
SESSIONS = int(os.environ.get("BENCH_SESSIONS", "3"))


def lookup_impl(q: str) -> str:
    """The tool body shared by every framework: constant 400 bytes."""
    return TOOL_RESULT


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); stable for small samples."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def sqlite_logical_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes a SQLite database holds, WAL included, as a fresh reader sees them.

    ``page_count * page_size`` through a separate read-only connection counts committed pages
    still in the WAL and ignores the WAL file's preallocated slack, so the figure is the
    durable footprint rather than a snapshot of checkpoint timing.
    """
    uri = f"file:{Path(path).resolve()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)
    finally:
        conn.close()


def files_bytes(paths: Sequence[str | os.PathLike[str]]) -> int:
    """Raw on-disk size of the given files (missing ones count zero)."""
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except OSError:
            pass
    return total


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024, 1)


@dataclass
class TurnRecorder:
    """Per-turn wall times across sessions, plus a bytes-on-disk series for session 0."""

    name: str
    group: str
    durable: bool
    turns: int = TURNS
    sessions: int = SESSIONS
    times_ms: list[list[float]] = field(default_factory=list)
    bytes_series: list[int] = field(default_factory=list)
    final_bytes: int | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def new_session(self) -> list[float]:
        """Start recording a session; returns its list of per-turn times."""
        self.times_ms.append([])
        return self.times_ms[-1]

    def summary(self) -> dict[str, Any]:
        flat = [t for s in self.times_ms for t in s]
        quarter = max(1, self.turns // 4)
        last_quarter = [t for s in self.times_ms for t in s[-quarter:]]
        first_quarter = [t for s in self.times_ms for t in s[:quarter]]
        total_turns = len(flat)
        per_turn_bytes = None
        if self.final_bytes is not None and total_turns:
            per_turn_bytes = round(self.final_bytes / total_turns)
        return {
            "name": self.name,
            "group": self.group,
            "durable": self.durable,
            "turns": total_turns,
            "turns_per_session": self.turns,
            "sessions": self.sessions,
            "median_ms": round(statistics.median(flat), 3),
            "p90_ms": round(percentile(flat, 90), 3),
            "mean_ms": round(statistics.mean(flat), 3),
            "first_quarter_mean_ms": round(statistics.mean(first_quarter), 3),
            "last_quarter_mean_ms": round(statistics.mean(last_quarter), 3),
            "bytes_total": self.final_bytes,
            "bytes_per_turn": per_turn_bytes,
            "peak_rss_mb": peak_rss_mb(),
            "per_turn_ms_session0": [round(t, 3) for t in self.times_ms[0]],
            "bytes_series_session0": self.bytes_series,
            "notes": self.notes,
            **self.extra,
        }


def timed_sessions(
    rec: TurnRecorder,
    run_turn: Callable[[int, int], Any],
    *,
    after_turn: Callable[[int, int], None] | None = None,
) -> None:
    """Synchronous driver: ``run_turn(session, turn)`` timed, ``after_turn`` untimed."""
    for s in range(rec.sessions):
        times = rec.new_session()
        for t in range(rec.turns):
            start = time.perf_counter()
            run_turn(s, t)
            times.append((time.perf_counter() - start) * 1000)
            if after_turn is not None:
                after_turn(s, t)


def emit(payload: dict[str, Any]) -> None:
    """One JSON line on stdout, which the runner collects."""
    sys.stdout.write("BENCH " + json.dumps(payload) + "\n")
    sys.stdout.flush()
