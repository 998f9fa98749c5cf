"""Real Restate: a worker is SIGKILLed mid-turn and a second worker finishes it by replay.

One ``restate-server`` (the npm package, installed into ``.restate/`` by scripts/setup.sh) runs
on loopback with a temporary data dir; workers are subprocesses serving the ``LashTurn``
workflow with hypercorn and share one SQLite store file; the model is a loopback
``WireServer`` playing an OpenAI-compatible tool loop. In CI a missing server is a failure;
elsewhere these tests skip with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import msgspec
import pytest

from lash.durable.restate.local import (
    LocalRestateServer,
    RestateHttpError,
    free_port,
)
from lash.testing.postgres import TemporaryPostgres
from lash.testing.servers import local_restate_server
from lash.testing.wire import WireScript, WireServer, load_script
from lash.types import TurnResult

HERE = Path(__file__).parent
WORKER = HERE / "restate_worker.py"
PROBE = HERE / "probe_worker.py"
SCRIPTS = [load_script(HERE / "scripts" / f"restate-replay-{n}.json") for n in (1, 2)]
DEADLINE_S = 120.0
"""How long any one wait (a worker listening, a journal entry, a turn's result) may take: a
loaded 2-core box starts Python workers and answers admin queries slowly."""
REQUEST_S = 30.0
"""One HTTP request's timeout; waits longer than that poll with several requests."""

# a whole test may chain several waits; only a hung test comes near this
pytestmark = pytest.mark.timeout(6 * DEADLINE_S)


Counter = Callable[[], Awaitable[int]]
T = TypeVar("T")


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[dict[str, str], Counter]]:
    """Worker settings for a store shared by both workers, and a commit counter for it."""
    if request.param == "sqlite":
        db = tmp_path / "store.db"

        async def count_sqlite() -> int:
            return _commits(db)

        yield {"WORKER_DB": str(db)}, count_sqlite
        return
    server: TemporaryPostgres = request.getfixturevalue("postgres_server")
    schema = f"restate_{request.node.name.split('[')[0][-20:].lower()}_{os.getpid()}"
    schema = "".join(c if c.isalnum() or c == "_" else "_" for c in schema)[:60]
    blobs = tmp_path / "blobs"
    blobs.mkdir()

    async def count() -> int:
        return await _pg_commits(server.dsn, schema)

    yield {"WORKER_DB": str(blobs), "WORKER_PG_DSN": server.dsn, "WORKER_PG_SCHEMA": schema}, count


async def _pg_commits(dsn: str, schema: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value = await conn.fetchval(f"SELECT count(*) FROM {schema}.lash_turn_commits")
        return int(value)
    except asyncpg.UndefinedTableError:
        return 0
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def restate_server() -> Iterator[LocalRestateServer]:
    with local_restate_server() as server:
        yield server


class Worker:
    """One worker process on a fixed loopback port."""

    def __init__(self, port: int, env: dict[str, str], log: Path, *, script: Path = WORKER) -> None:
        self.port = port
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(script)],
                env={**os.environ, **env, "WORKER_PORT": str(port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def ready(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"worker on port {self.port} never listened")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        # Hypercorn waits for Restate's kept-alive HTTP/2 connection to close; give it a
        # moment, then kill (the tests prove nothing about graceful shutdown).
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.kill()


def _commits(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM turn_commits").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


async def _wait_for(path: Path, worker: Worker) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists():
        assert worker.proc.poll() is None, worker.log.read_text()
        assert time.monotonic() < deadline, f"the worker never parked:\n{worker.log.read_text()}"
        await asyncio.sleep(0.05)


Finish = Callable[[LocalRestateServer, str], Awaitable[object]]


async def _attach(server: LocalRestateServer, turn_id: str) -> object:
    return await _attach_to(server, "LashTurn", turn_id)


async def _register(server: LocalRestateServer, port: int) -> None:
    answer = await _patiently(
        lambda: server.register(f"http://127.0.0.1:{port}"), "the deployment's registration"
    )
    assert not isinstance(answer, RestateHttpError), answer


async def _patiently(request: Callable[[], Any], what: str) -> Any:
    """An idempotent request, repeated while the server is too slow to answer in time (a
    transport timeout), until :data:`DEADLINE_S`; an HTTP error answer is returned as is."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            return await asyncio.to_thread(request)
        except RestateHttpError as err:
            return err
        except OSError as err:  # socket timeouts and refused connections
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out waiting for {what}: {err!r}") from err
            await asyncio.sleep(0.2)


async def _send_run(
    server: LocalRestateServer, turn_id: str, text: str, *, session_id: str = "s1"
) -> None:
    """Start ``LashTurn/run`` for ``turn_id`` without waiting for its result."""
    body = {"session_id": session_id, "input": text}
    await asyncio.to_thread(server.send, "LashTurn", turn_id, "run", body)


@contextlib.asynccontextmanager
async def _registered_worker(
    server: LocalRestateServer, env: dict[str, str], log: Path, *, script: Path = WORKER
) -> AsyncIterator[Worker]:
    """One worker on a fresh port, listening and registered as the deployment; stopped on
    exit."""
    worker = Worker(free_port(), env, log, script=script)
    try:
        await worker.ready()
        await _register(server, worker.port)
        yield worker
    finally:
        worker.stop()


async def _kill_and_redrive(
    server: LocalRestateServer,
    tmp_path: Path,
    turn_id: str,
    text: str,
    envs: tuple[dict[str, str], dict[str, str]],
    crash: Callable[[Worker], Awaitable[None]],
    finish: Callable[[Worker], Awaitable[T]],
) -> T:
    """Worker A (``envs[0]``, log ``a.log``) is registered and runs ``turn_id`` until ``crash``
    has seen it reach its kill point and die; worker B (``envs[1]``, log ``b.log``) then
    listens on the same port, and ``finish`` observes the redrive it serves."""
    port = free_port()
    first = Worker(port, envs[0], tmp_path / "a.log")
    second: Worker | None = None
    try:
        await first.ready()
        await _register(server, port)
        await _send_run(server, turn_id, text)
        await crash(first)
        second = Worker(port, envs[1], tmp_path / "b.log")
        await second.ready()
        return await finish(second)
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def _crash_and_redrive(
    server: LocalRestateServer,
    tmp_path: Path,
    turn_id: str,
    store: dict[str, str],
    second_env: dict[str, str],
    finish: Finish,
    *,
    scripts: list[WireScript] | None = None,
    text: str = "write the line",
    lines_at_crash: str = "one\n",
) -> tuple[WireServer, object, Path]:
    """Worker A runs model call 1 and the tool, parks at its marker and is SIGKILLed before
    model call 2 (the lines file then reads ``lines_at_crash``); worker B (same port, same
    store, plus ``second_env``) takes over. Returns the wire server, what ``finish`` observed
    and the lines file."""
    lines, marker = tmp_path / "lines.txt", tmp_path / "parked"
    async with WireServer(*(SCRIPTS if scripts is None else scripts)) as wire:
        base = {
            **store,
            "WORKER_LINES": str(lines),
            "WORKER_MODEL_URL": wire.url(),
        }

        async def park_and_kill(first: Worker) -> None:
            await _wait_for(marker, first)
            first.kill()
            assert lines.read_text() == lines_at_crash

        outcome = await _kill_and_redrive(
            server,
            tmp_path,
            turn_id,
            text,
            ({**base, "WORKER_PARK_MARKER": str(marker)}, {**base, **second_env}),
            park_and_kill,
            lambda _second: finish(server, turn_id),
        )
    return wire, outcome, lines


async def test_a_killed_worker_turn_is_finished_by_another_worker_by_replay(
    restate_server: LocalRestateServer,
    tmp_path: Path,
    store_env: tuple[dict[str, str], Counter],
) -> None:
    store, commits = store_env
    turn_id = f"turn-replay-{tmp_path.name}"
    wire, outcome, lines = await _crash_and_redrive(
        restate_server, tmp_path, turn_id, store, {}, _attach
    )
    assert not isinstance(outcome, Exception), outcome
    result = msgspec.convert(outcome, type=TurnResult)
    assert result.outcome.kind == "finished", result.issues
    assert result.assistant_text == "Line written."
    assert [c.name for c in result.tool_calls] == ["append_line"]
    assert lines.read_text() == "one\n"  # the tool ran once: the redrive replayed it
    wire.assert_exhausted()
    assert len(wire.exchanges) == 2  # each model request reached the model exactly once
    assert await commits() == 1


RETRY_SCRIPTS = [load_script(HERE / "scripts" / f"restate-retry-{n}.json") for n in (1, 2)]


async def test_a_worker_killed_in_a_retry_back_off_resumes_at_the_timer_without_rerunning(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    """A ``safe`` tool fails once with a transient error; worker A is SIGKILLed while the
    back-off (a durable timer) is pending; worker B replays attempt 1 from its journaled step,
    finds the timer, and runs only attempt 2."""
    server = restate_server
    lines, attempts = tmp_path / "lines.txt", tmp_path / "attempts.txt"
    turn_id = "turn-retry-backoff"
    async with WireServer(*RETRY_SCRIPTS) as wire:
        env = {
            "WORKER_DB": str(tmp_path / "store.db"),
            "WORKER_LINES": str(lines),
            "WORKER_ATTEMPTS": str(attempts),
            "WORKER_BACKOFF_MS": "5000",
            "WORKER_MODEL_URL": wire.url(),
        }

        async def kill_in_the_back_off(first: Worker) -> None:
            rows: list[dict[str, Any]] = []

            async def timer_journaled() -> bool:
                nonlocal rows
                assert first.proc.poll() is None, first.log.read_text()
                rows = await _journal(server, turn_id, service="LashTurn")
                return any(str(r.get("name", "")).endswith(":call_r:attempt:1:sleep") for r in rows)

            await _until(timer_journaled, "the retry back-off to be journaled as a timer")
            first.kill()
            assert attempts.read_text() == "1\n"  # killed during the back-off, before attempt 2
            names = [str(r.get("name") or "") for r in rows]
            attempt_1 = next(n for n in names if n.endswith(":call_r:attempt:1"))
            timer = next(r for r in rows if str(r.get("name", "")).endswith(":attempt:1:sleep"))
            assert timer["name"] == f"{attempt_1}:sleep"
            assert "sleep" in str(timer.get("entry_type")).lower(), timer
            assert "run" in str(_row(rows, attempt_1).get("entry_type")).lower()
            assert names.index(attempt_1) < names.index(timer["name"])
            assert not any(n.endswith(":call_r:attempt:2") for n in names)

        outcome = await _kill_and_redrive(
            server,
            tmp_path,
            turn_id,
            "retry the write",
            (env, env),
            kill_in_the_back_off,
            lambda _second: _attach(server, turn_id),
        )
    assert not isinstance(outcome, Exception), outcome
    result = msgspec.convert(outcome, type=TurnResult)
    assert result.outcome.kind == "finished", result.issues
    assert result.assistant_text == "Written after a retry."
    record = result.tool_calls[0]
    assert (record.name, record.status, record.attempts) == ("flaky_write", "success", 2)
    assert attempts.read_text() == "1\n2\n"  # attempt 1 ran once: the redrive replayed it
    assert lines.read_text() == "two\n"
    wire.assert_exhausted()
    assert len(wire.exchanges) == 2
    assert _commits(tmp_path / "store.db") == 1


def _row(rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(r for r in rows if r.get("name") == name)


async def test_a_changed_envelope_on_redrive_ends_the_turn_terminally_naming_the_field(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    """Worker B's first model request differs ($.system) with more journal after it: B follows
    the journal (recorded outcomes, nothing run), and where the journal ends (the model call A
    died in) the invocation ends terminally: no retry, no model call, no commit."""
    db = tmp_path / "store.db"

    async def attach_and_status(server: LocalRestateServer, turn_id: str) -> object:
        outcome = await _attach(server, turn_id)
        terminal = await _patiently(
            lambda: server.call("LashTurn", turn_id, "attach_terminal", {"session_id": "s1"}),
            "the published terminal",
        )
        sql = (
            "SELECT status, retry_count FROM sys_invocation WHERE target_service_name = "
            f"'LashTurn' AND target_service_key = '{turn_id}' AND target_handler_name = 'run'"
        )
        rows: list[dict[str, Any]] = []

        async def settled() -> bool:
            nonlocal rows
            rows = await _patiently(lambda: server.query(sql), "the invocation's status")
            busy = ("pending", "scheduled", "ready", "running")
            return bool(rows) and all(row["status"] not in busy for row in rows)

        await _until(settled, "the run invocation to settle")
        return outcome, terminal, rows

    wire, seen, lines = await _crash_and_redrive(
        restate_server,
        tmp_path,
        "turn-mismatch",
        {"WORKER_DB": str(db)},
        {"WORKER_SYSTEM_PROMPT": "a new prompt"},
        attach_and_status,
    )
    assert isinstance(seen, tuple)
    outcome, terminal, rows = seen
    assert isinstance(outcome, RestateHttpError), outcome
    assert "restate_effect_hash_mismatch" in outcome.body
    assert "first diverging path: $.system" in outcome.body
    assert terminal["outcome"] == "failed"
    assert terminal["error"]["code"] == "restate_effect_hash_mismatch"
    assert [row["status"] for row in rows] == ["completed"]
    assert len(wire.exchanges) == 1  # only worker A's first call reached the model
    assert lines.read_text() == "one\n"
    assert _commits(db) == 0


async def test_cancel_requests_are_first_writer_wins_and_a_cancelled_turn_never_calls_the_model(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    server = restate_server
    async with WireServer(*SCRIPTS) as wire:
        env = {
            "WORKER_DB": str(tmp_path / "store.db"),
            "WORKER_LINES": str(tmp_path / "lines.txt"),
            "WORKER_MODEL_URL": wire.url(),
        }
        async with _registered_worker(server, env, tmp_path / "w.log"):

            def cancel(turn_id: str, request_id: str) -> dict[str, object]:
                body = {"request_id": request_id, "origin": "test", "reason": "stop"}
                answer: dict[str, object] = server.call("LashTurn", turn_id, "request_cancel", body)
                return answer

            first = await asyncio.to_thread(cancel, "turn-cancel", "r1")
            second = await asyncio.to_thread(cancel, "turn-cancel", "r2")
            assert first["outcome"] == "requested" and first["durability_tier"] == "durable"
            assert second["outcome"] == "already_requested"
            assert second["evidence"]["request_id"] == "r1"  # type: ignore[index]

            await _send_run(server, "turn-cancel", "write the line")
            cancelled = msgspec.convert(await _attach(server, "turn-cancel"), type=TurnResult)
            assert (cancelled.outcome.kind, cancelled.outcome.reason) == ("stopped", "cancelled")
            assert cancelled.cancellation is not None
            assert cancelled.cancellation.request_id == "r1"
            assert wire.exchanges == []

            await _send_run(server, "turn-done", "write the line", session_id="s2")
            done = msgspec.convert(await _attach(server, "turn-done"), type=TurnResult)
            assert done.outcome.kind == "finished"
            late = await asyncio.to_thread(cancel, "turn-done", "r3")
            assert late["outcome"] == "completion_won_race"  # run sealed the gate before commit

            def control(turn_id: str, handler: str, body: object) -> dict[str, Any]:
                answer: dict[str, Any] = server.call("LashTurn", turn_id, handler, body)
                return answer

            # the terminal promise run published is what an attach sees, for both turns
            attached = await asyncio.to_thread(
                control, "turn-done", "attach_terminal", {"session_id": "s2"}
            )
            assert attached["outcome"] == "terminal"
            assert msgspec.convert(attached["terminal"], type=TurnResult) == done
            stopped = await asyncio.to_thread(
                control, "turn-cancel", "attach_terminal", {"session_id": "s1"}
            )
            assert msgspec.convert(stopped["terminal"], type=TurnResult) == cancelled
            gate = await asyncio.to_thread(control, "turn-cancel", "peek_gate", {})
            assert (gate["status"], gate["evidence"]["request_id"]) == ("cancel_requested", "r1")
            assert _commits(tmp_path / "store.db") == 2


async def test_a_cancel_closing_the_gate_after_the_last_read_makes_the_turn_commit_cancelled(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    """The cancel lands while the last model call runs (the gate was read before it, and a
    running effect is not interrupted): the seal, awaited before the commit, finds the gate
    closed by the cancel, so the receipt's ``requested`` and the committed turn agree."""
    server = restate_server
    held, release = tmp_path / "held", tmp_path / "release"
    db = tmp_path / "store.db"
    async with WireServer(*SCRIPTS) as wire:
        env = {
            "WORKER_DB": str(db),
            "WORKER_LINES": str(tmp_path / "lines.txt"),
            "WORKER_MODEL_URL": wire.url(),
            "WORKER_HOLD_MARKER": str(held),
            "WORKER_HOLD_RELEASE": str(release),
        }
        async with _registered_worker(server, env, tmp_path / "w.log") as worker:
            await _send_run(server, "turn-late-cancel", "write the line")
            await _wait_for(held, worker)
            cancel = {"request_id": "r-late", "origin": "test", "reason": "stop"}
            receipt = await asyncio.to_thread(
                server.call, "LashTurn", "turn-late-cancel", "request_cancel", cancel
            )
            assert receipt["outcome"] == "requested", receipt
            release.write_text("go\n")
            outcome = await _attach(server, "turn-late-cancel")
            attached = await _patiently(
                lambda: server.call(
                    "LashTurn", "turn-late-cancel", "attach_terminal", {"session_id": "s1"}
                ),
                "the published terminal",
            )
    assert not isinstance(outcome, Exception), outcome
    result = msgspec.convert(outcome, type=TurnResult)
    assert (result.outcome.kind, result.outcome.reason) == ("stopped", "cancelled")
    assert result.cancellation is not None and result.cancellation.request_id == "r-late"
    assert len(wire.exchanges) == 2  # the model answered; the cancel still won the gate
    assert attached["outcome"] == "terminal"
    assert msgspec.convert(attached["terminal"], type=TurnResult) == result
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT result_json FROM turn_commits").fetchall()
    assert len(rows) == 1  # one commit, and it holds the cancelled outcome
    committed = json.loads(rows[0][0])["result"]
    assert committed["outcome"]["reason"] == "cancelled"
    assert committed["cancellation"]["request_id"] == "r-late"


async def test_a_memory_store_worker_fails_the_turn_terminally_before_anything_runs(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    server = restate_server
    async with WireServer(*SCRIPTS) as wire:
        env = {
            "WORKER_MEMORY_STORE": "1",
            "WORKER_DB": str(tmp_path / "unused.db"),
            "WORKER_LINES": str(tmp_path / "lines.txt"),
            "WORKER_MODEL_URL": wire.url(),
        }
        async with _registered_worker(server, env, tmp_path / "w.log"):
            await _send_run(server, "turn-memory", "write the line")
            outcome = await _attach(server, "turn-memory")
    assert isinstance(outcome, RestateHttpError), outcome
    assert "durable_store_required:attachment_store" in outcome.body
    assert wire.exchanges == [] and not (tmp_path / "lines.txt").exists()


# --- the host's mechanics on a real server, without a whole turn (probe_worker.py) ----------


@pytest.fixture
async def probe(restate_server: LocalRestateServer, tmp_path: Path) -> AsyncIterator[Worker]:
    async with _registered_worker(
        restate_server, {}, tmp_path / "probe.log", script=PROBE
    ) as worker:
        yield worker


def _marks(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def _journal(
    server: LocalRestateServer, key: str, *, service: str = "LashProbe"
) -> list[dict[str, Any]]:
    sql = (
        "SELECT j.* FROM sys_journal j JOIN sys_invocation i ON j.id = i.id "
        f"WHERE i.target_service_name = '{service}' AND i.target_service_key = '{key}' "
        "AND i.target_handler_name = 'run' ORDER BY j.index"
    )
    return await asyncio.to_thread(server.query, sql)


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_sleep_effect_is_a_journaled_timer_that_a_replay_does_not_sleep_again(
    restate_server: LocalRestateServer, probe: Worker, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.jsonl"
    body = {"mode": "sleep", "seconds": 1.5, "marks": str(marks)}
    await asyncio.to_thread(restate_server.send, "LashProbe", "sleep-1", "run", body)

    async def timer_journaled() -> bool:
        rows = await _journal(restate_server, "sleep-1")
        return any(row.get("name") == "lash:probe:attempt:1:sleep" for row in rows)

    await _until(timer_journaled, "the sleep to be journaled as a named timer")
    rows = await _journal(restate_server, "sleep-1")
    timer = next(r for r in rows if r.get("name") == "lash:probe:attempt:1:sleep")
    assert "sleep" in str(timer.get("entry_type")).lower(), timer
    result = await _attach_to(restate_server, "LashProbe", "sleep-1")
    assert result == {"attempt": 1, "slept_s": pytest.approx(0.0, abs=0.5)}, result
    first, replayed = _marks(marks)
    assert first["slept_s"] >= 1.4  # the first attempt waited for the timer ...
    assert replayed["slept_s"] < 0.5  # ... the replay found it fired and did not wait again


async def test_a_sleep_effect_ends_when_the_turn_cancel_gate_closes(
    restate_server: LocalRestateServer, probe: Worker, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.jsonl"
    body = {"mode": "sleep_cancel", "marks": str(marks)}
    await asyncio.to_thread(restate_server.send, "LashProbe", "sleep-2", "run", body)

    async def timer_journaled() -> bool:
        rows = await _journal(restate_server, "sleep-2")
        return any(row.get("name") == "lash:probe:attempt:1:sleep" for row in rows)

    await _until(timer_journaled, "the 300 s timer to start")
    started = time.monotonic()
    await asyncio.to_thread(
        restate_server.call, "LashProbe", "sleep-2", "cancel", {"request_id": "stop-1"}
    )
    result = await _attach_to(restate_server, "LashProbe", "sleep-2")
    assert result == {"attempt": 0, "cancelled_by": "stop-1"}, result
    assert time.monotonic() - started < 30


async def test_a_changed_envelope_at_the_end_of_the_journal_ends_the_invocation_terminally(
    restate_server: LocalRestateServer, probe: Worker, tmp_path: Path
) -> None:
    marks = tmp_path / "marks.jsonl"
    body = {"mode": "mismatch", "system": "be brief", "marks": str(marks)}
    await asyncio.to_thread(restate_server.send, "LashProbe", "mismatch-end", "run", body)
    outcome = await _attach_to(restate_server, "LashProbe", "mismatch-end")
    assert isinstance(outcome, RestateHttpError), outcome
    assert "restate_effect_hash_mismatch" in outcome.body
    assert "first diverging path: $.system" in outcome.body
    await asyncio.sleep(1.0)  # a retried attempt would append another mark by now
    first, replayed = _marks(marks)
    assert first == {"attempt": 0, "value": "model answer"}
    assert "restate_effect_hash_mismatch" in replayed["error"]
    assert len(_marks(marks)) == 2


async def _attach_to(server: LocalRestateServer, service: str, key: str) -> Any:
    return await _patiently(
        lambda: server.attach_workflow(service, key, timeout_s=REQUEST_S),
        f"the result of {service}/{key}",
    )


async def test_a_worker_dying_after_the_commit_is_redriven_to_the_committed_result(
    restate_server: LocalRestateServer,
    tmp_path: Path,
    store_env: tuple[dict[str, str], Counter],
) -> None:
    """Worker A dies (``os._exit``) right after the turn's commit is durable, before its
    handler returns. Worker B's redrive replays the whole journal (no closure runs), answers
    the commit as the stored replay and publishes the terminal: the invocation completes,
    ``attach`` answers the committed result, and there is exactly one commit."""
    store, commits = store_env
    lines, marker = tmp_path / "lines.txt", tmp_path / "exited"
    turn_id = f"turn-after-commit-{tmp_path.name}"
    async with WireServer(*SCRIPTS) as wire:
        base = {**store, "WORKER_LINES": str(lines), "WORKER_MODEL_URL": wire.url()}

        async def exit_after_commit(first: Worker) -> None:
            deadline = time.monotonic() + DEADLINE_S
            while first.proc.poll() is None:
                assert time.monotonic() < deadline, first.log.read_text()
                await asyncio.sleep(0.05)
            assert first.proc.returncode == 9 and marker.exists(), first.log.read_text()
            assert await commits() == 1

        async def the_committed_result(second: Worker) -> None:
            outcome = await _attach(restate_server, turn_id)
            assert not isinstance(outcome, Exception), (outcome, second.log.read_text())
            result = msgspec.convert(outcome, type=TurnResult)
            assert result.outcome.kind == "finished", result.issues
            assert result.assistant_text == "Line written."
            assert [c.name for c in result.tool_calls] == ["append_line"]
            assert result.head_revision == 1  # the revision the one commit made
            terminal = await _patiently(
                lambda: restate_server.call(
                    "LashTurn", turn_id, "attach_terminal", {"session_id": "s1"}
                ),
                "the turn's terminal",
            )
            assert terminal["outcome"] == "terminal", terminal
            published = msgspec.convert(terminal["terminal"], type=TurnResult)
            assert published.assistant_text == "Line written."
            assert published.head_revision == result.head_revision

        await _kill_and_redrive(
            restate_server,
            tmp_path,
            turn_id,
            "write the line",
            ({**base, "WORKER_EXIT_AFTER_COMMIT": str(marker)}, base),
            exit_after_commit,
            the_committed_result,
        )
    assert lines.read_text() == "one\n"  # the tool ran once
    assert len(wire.exchanges) == 2  # each model request reached the model once
    assert await commits() == 1
    if "WORKER_PG_DSN" not in store:
        with sqlite3.connect(store["WORKER_DB"]) as conn:  # the redrive let go of the lease
            (token,) = conn.execute(
                "SELECT lease_token FROM session_leases WHERE session_id = 's1'"
            ).fetchone()
        assert not token, token


async def test_without_an_await_secret_plain_turns_run_and_durable_waits_fail_clearly(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    """A deployment without ``await_event_secret`` runs plain turns; the first durable-wait
    mint ends terminally with ``restate_await_secret_required`` (no per-process random
    secret whose keys another worker could not verify)."""
    db, lines = tmp_path / "store.db", tmp_path / "lines.txt"
    turn_id = f"turn-no-secret-{tmp_path.name}"
    async with WireServer(*SCRIPTS) as wire:
        env = {
            "WORKER_DB": str(db),
            "WORKER_LINES": str(lines),
            "WORKER_MODEL_URL": wire.url(),
            "WORKER_NO_AWAIT_SECRET": "1",
        }
        async with _registered_worker(restate_server, env, tmp_path / "worker.log"):
            await _send_run(restate_server, turn_id, "write the line")
            result = msgspec.convert(await _attach(restate_server, turn_id), type=TurnResult)
            assert result.outcome.kind == "finished", result.issues
            mint = {"session_id": "s1", "wait": {"kind": "custom", "key": "w"}}
            answer = await _patiently(
                lambda: restate_server.call("LashTurn", turn_id, "await_event_key", mint),
                "the mint's answer",
            )
            assert isinstance(answer, RestateHttpError), answer
            assert "restate_await_secret_required" in answer.body, answer.body
    assert lines.read_text() == "one\n" and _commits(db) == 1


PLAN_SCRIPTS = [load_script(HERE / "scripts" / f"restate-plan-{n}.json") for n in (1, 2)]


async def test_a_redriven_update_plan_is_replayed_and_its_plan_is_committed(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    """Worker A runs plan mode's ``update_plan`` (journaled with the plugin state it changed)
    and is SIGKILLed before model call 2; worker B replays the attempt without running the
    tool, and the one commit holds the plan in plan mode's state."""
    from lash.stores import SqliteStore

    db = tmp_path / "store.db"
    wire, outcome, lines = await _crash_and_redrive(
        restate_server,
        tmp_path,
        "turn-plan-replay",
        {"WORKER_DB": str(db), "WORKER_PLAN_MODE": "1"},
        {},
        _attach,
        scripts=PLAN_SCRIPTS,
        text="plan the work",
        lines_at_crash="update_plan\n",
    )
    assert not isinstance(outcome, Exception), outcome
    result = msgspec.convert(outcome, type=TurnResult)
    assert result.outcome.kind == "finished", result.issues
    assert result.assistant_text == "Planned."
    assert lines.read_text() == "update_plan\n"  # the redrive replayed it, did not run it
    wire.assert_exhausted()
    assert _commits(db) == 1
    async with SqliteStore(db) as store:
        loaded = await store.load_session("s1")
    assert loaded is not None
    state = loaded.checkpoint.plugin_state["plan_mode"]
    assert state["generation"] == 1 and state["explanation"] == "draft"
    assert [item["step"] for item in state["plan"]] == ["Read the code", "Fix it"]
