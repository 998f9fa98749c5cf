"""Turn benchmark row for lash on Restate: the durable ``LashTurn`` workflow, seen by a caller.

``python benchmarks/restate_turns.py`` — prints one ``BENCH {json}`` line. It starts a local
``restate-server`` (``lash.durable.restate.local``; the binary comes from ``.restate/``, put
there by ``scripts/setup.sh``), serves one worker process with hypercorn (this file with the
argument ``worker``; same scripted model, tool and SQLite store at synchronous=FULL as the
SQLite row), registers it, then runs 3 sessions of 40 turns one after another: each turn is a
new workflow (the turn id is the key) invoked over the ingress with a blocking call
(``POST /LashTurn/<turn id>/run``) on a kept-alive HTTP connection, timed from the request to
the decoded result. So a turn here is: ingress → Restate → worker (session open and lease,
journaled start mark, two model calls and one tool call each journaled as a ``ctx.run`` step,
the fsync'd SQLite commit, lease release) → result back through Restate.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lash_model import MODEL, BenchModel, lookup
from workload import PROMPT, TurnRecorder, emit, files_bytes, sqlite_logical_bytes

import lash
from lash.durable.restate.local import LocalRestateServer, find_restate_server, free_port
from lash.stores import SqliteStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# --- the worker process -------------------------------------------------------------------


async def serve(port: int, db: Path) -> None:
    import hypercorn.asyncio
    import hypercorn.config
    import restate

    from lash.durable.restate import turn_services

    cores: list[lash.LashCore] = []

    async def make_core() -> lash.LashCore:
        core = (
            lash.LashCore.builder()
            .provider(BenchModel())
            .model(MODEL)
            .store(SqliteStore(db))
            .effect_host(lash.InlineEffectHost())
            .tools([lookup])
            .build()
        )
        cores.append(core)
        return core

    app = restate.app(services=turn_services(make_core))
    config = hypercorn.config.Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.graceful_timeout = 1
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await hypercorn.asyncio.serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    for core in cores:
        await core.aclose()


# --- the caller ---------------------------------------------------------------------------


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"worker exited early:\n{log.read_text()[-2000:]}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise SystemExit("worker never listened")


def peak_rss_of(pid: int) -> float | None:
    """Peak resident set size (``VmHWM``) of a live process, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def call(conn: http.client.HTTPConnection, path: str, body: dict[str, Any]) -> Any:
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    raw = resp.read()
    if resp.status != 200:
        raise SystemExit(f"{path}: HTTP {resp.status}: {raw[:500]!r}")
    return json.loads(raw)


def main() -> None:
    binary = find_restate_server(ROOT)
    if binary is None:
        raise SystemExit("restate-server is not installed (scripts/setup.sh puts it in .restate/)")
    tmp = Path(tempfile.mkdtemp(prefix="lash-bench-restate-"))
    db = tmp / "lash.db"
    log = tmp / "worker.log"
    rec = TurnRecorder(
        name="lash on Restate (LashTurn workflow, SqliteStore synchronous=FULL)",
        group="lash",
        durable=True,
        notes="caller-side: blocking ingress call per turn; Restate journals the start mark, "
        "both model calls and the tool call; one fsync'd SQLite commit per turn",
    )
    with LocalRestateServer(binary) as server:
        port = free_port()
        with log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "worker", str(port), str(db)],
                cwd=HERE,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_listening(port, worker, log)
            server.register(f"http://127.0.0.1:{port}")
            host, ingress_port = "127.0.0.1", server.ingress_port
            conn = http.client.HTTPConnection(host, ingress_port, timeout=60)
            # Warm-up turn on its own session: the worker builds its core on first use.
            call(conn, "/LashTurn/warmup-0/run", {"session_id": "warmup", "input": PROMPT})
            for s in range(rec.sessions):
                times = rec.new_session()
                for t in range(rec.turns):
                    path = f"/LashTurn/bench-{s}-{t}-{os.getpid()}/run"
                    body = {"session_id": f"bench-{s}", "input": PROMPT}
                    start = time.perf_counter()
                    result = call(conn, path, body)
                    times.append((time.perf_counter() - start) * 1000)
                    kind = (result.get("outcome") or {}).get("kind")
                    if kind != "finished":
                        raise SystemExit(f"turn did not finish: {json.dumps(result)[:500]}")
                    if s == 0:
                        rec.bytes_series.append(sqlite_logical_bytes(db))
            conn.close()
            rec.final_bytes = sqlite_logical_bytes(db)
            if server.log_path is not None:
                data = [p for p in server.log_path.parent.rglob("*") if p.is_file()]
                rec.extra["restate_data_dir_bytes"] = files_bytes(data)
            worker_rss = peak_rss_of(worker.pid)
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=3)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)
    rec.extra["store"] = "sqlite"
    summary = rec.summary()
    # The row's memory is the worker's (the caller only holds an HTTP connection).
    summary["caller_peak_rss_mb"] = summary["peak_rss_mb"]
    summary["peak_rss_mb"] = worker_rss
    emit(summary)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        asyncio.run(serve(int(sys.argv[2]), Path(sys.argv[3])))
    else:
        main()
