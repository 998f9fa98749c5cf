"""How long one fsync'd SQLite commit takes on this disk right now (WAL and rollback journal).

Disk latency on shared VMs varies by an order of magnitude between runs, so every benchmark
run records this next to its figures.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import time

from workload import emit


def probe(journal: str, synchronous: str, n: int = 200) -> float:
    path = os.path.join(tempfile.mkdtemp(prefix="bench-fsync-"), "probe.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (v) VALUES (?)", (b"x" * 1000,))
        conn.execute("COMMIT")
        samples.append((time.perf_counter() - start) * 1000)
    conn.close()
    return round(statistics.median(samples), 3)


if __name__ == "__main__":
    emit(
        {
            "name": "fsync probe",
            "group": "probe",
            "commit_median_ms": {
                "WAL/FULL": probe("WAL", "FULL"),
                "WAL/NORMAL": probe("WAL", "NORMAL"),
                "DELETE/FULL": probe("DELETE", "FULL"),
            },
        }
    )
