"""Raw DBOS row: one workflow per turn with three checkpointed steps (model, tool, model) on a
SQLite system database; the workflow input carries the 200-byte prompt, each step returns its
payload. No agent framework: this is the floor of DBOS-based durability for the same turn."""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from dbos import DBOS
from workload import (
    ANSWER,
    PROMPT,
    TurnRecorder,
    emit,
    lookup_impl,
    sqlite_logical_bytes,
)

DB = os.path.join(tempfile.mkdtemp(prefix="bench-dbos-"), "dbos.sqlite")
DBOS(
    config={
        "name": "bench-dbos-raw",
        "system_database_url": f"sqlite:///{DB}",
        "run_admin_server": False,
        "enable_otlp": False,
    }
)


@DBOS.step()
def model_call(k: int) -> str:
    return '{"tool_call": "lookup", "q": "x"}' if k == 0 else ANSWER


@DBOS.step()
def tool_step(q: str) -> str:
    return lookup_impl(q)


@DBOS.workflow()
def turn(prompt: str) -> str:
    model_call(0)
    tool_step("x")
    return model_call(1)


def main() -> None:
    DBOS.launch()
    rec = TurnRecorder(
        name="DBOS raw (workflow + 3 steps, SQLite)",
        group="peer",
        durable=True,
        notes="no agent framework, no history: durability floor",
    )
    for s in range(rec.sessions):
        times = rec.new_session()
        for _ in range(rec.turns):
            start = time.perf_counter()
            turn(PROMPT)
            times.append((time.perf_counter() - start) * 1000)
            if s == 0:
                rec.bytes_series.append(sqlite_logical_bytes(DB))
    rec.final_bytes = sqlite_logical_bytes(DB)
    emit(rec.summary())
    DBOS.destroy()


if __name__ == "__main__":
    main()
