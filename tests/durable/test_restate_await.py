"""Real Restate: a turn parked on a durable wait survives its worker and the Restate server.

A tool returns ``pending``; the ``LashTurn`` run parks on the wait's workflow promise. The
worker is SIGKILLed and ``restate-server`` is restarted on the same data dir; a new worker
comes up; resolving the key through the workflow's ``resolve_await_event`` handler completes
the turn, which commits once with the resolved value in its history. This module owns its
own server (it restarts it), so other modules' servers are untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from lash.durable.restate.local import LocalRestateServer, free_port
from lash.testing.servers import local_restate_server
from lash.testing.wire import WireServer, load_script
from lash.types import TurnResult

from .test_restate_e2e import DEADLINE_S, Worker, _attach, _commits

HERE = Path(__file__).parent
SCRIPTS = [load_script(HERE / "scripts" / f"restate-await-{n}.json") for n in (1, 2)]


@pytest.fixture(scope="module")
def restate_server() -> Iterator[LocalRestateServer]:
    with local_restate_server() as server:
        yield server


async def _first_key(keys: Path, worker: Worker) -> str:
    deadline = time.monotonic() + DEADLINE_S
    while not keys.exists() or not keys.read_text().strip():
        assert worker.proc.poll() is None, worker.log.read_text()
        assert time.monotonic() < deadline, f"the tool never ran:\n{worker.log.read_text()}"
        await asyncio.sleep(0.05)
    return keys.read_text().splitlines()[0]


async def _invocation_status(server: LocalRestateServer, turn_id: str) -> str:
    sql = (
        "SELECT status FROM sys_invocation WHERE target_service_name = 'LashTurn' "
        f"AND target_service_key = '{turn_id}' AND target_handler_name = 'run'"
    )
    rows = await asyncio.to_thread(server.query, sql)
    return str(rows[0]["status"]) if rows else "missing"


async def test_a_parked_turn_survives_worker_death_and_a_restate_restart(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    server = restate_server
    db, keys = tmp_path / "store.db", tmp_path / "keys.txt"
    turn_id = "turn-await"
    async with WireServer(*SCRIPTS) as wire:
        env = {
            "WORKER_DB": str(db),
            "WORKER_LINES": str(tmp_path / "lines.txt"),
            "WORKER_KEYS": str(keys),
            "WORKER_MODEL_URL": wire.url(),
        }
        port = free_port()
        first = Worker(port, env, tmp_path / "a.log")
        second: Worker | None = None
        try:
            await first.ready()
            await asyncio.to_thread(server.register, f"http://127.0.0.1:{port}")
            body = {"session_id": "s1", "input": "approve the item"}
            await asyncio.to_thread(server.send, "LashTurn", turn_id, "run", body)
            key = await _first_key(keys, first)

            def call(handler: str, payload: object) -> dict[str, object]:
                answer: dict[str, object] = server.call("LashTurn", turn_id, handler, payload)
                return answer

            # the host can mint the same key from the tool call id it saw
            minted = await asyncio.to_thread(
                call,
                "await_event_key",
                {"session_id": "s1", "wait": {"kind": "tool_completion", "tool_call_id": "call_w"}},
            )
            assert minted == {"outcome": "minted", "key": key}
            peeked = await asyncio.to_thread(call, "peek_await_event", {"key": key})
            assert peeked == {"outcome": "pending", "terminal": None}
            assert len(wire.exchanges) == 1  # parked after the first model call
            assert await _invocation_status(server, turn_id) != "completed"

            first.kill()
            await asyncio.to_thread(server.restart)
            assert await _invocation_status(server, turn_id) != "completed"
            second = Worker(port, env, tmp_path / "b.log")
            await second.ready()

            prefix, payload, sig = key.split(".")
            tampered = f"{prefix}.{payload}.{'A' * len(sig)}"
            bad = await asyncio.to_thread(
                call, "resolve_await_event", {"key": tampered, "resolution": {"kind": "ok"}}
            )
            assert bad == {"outcome": "unknown_or_revoked", "terminal": None}

            resolution = {"kind": "ok", "value": "approved-by-ann", "code": None, "message": None}
            receipt = await asyncio.to_thread(
                call, "resolve_await_event", {"key": key, "resolution": resolution}
            )
            assert receipt == {"outcome": "resolved", "terminal": resolution}
            outcome = await _attach(server, turn_id)
            assert not isinstance(outcome, Exception), outcome
            result = msgspec.convert(outcome, type=TurnResult)

            again = await asyncio.to_thread(
                call,
                "resolve_await_event",
                {"key": key, "resolution": {"kind": "ok", "value": "late"}},
            )
            assert again == {"outcome": "already_resolved", "terminal": resolution}
        finally:
            first.stop()
            if second is not None:
                second.stop()
    assert result.outcome.kind == "finished", result.issues
    assert result.assistant_text == "Approved and done."
    [record] = result.tool_calls
    assert (record.name, record.status, record.output) == (
        "wait_for_approval",
        "success",
        "approved-by-ann",
    )
    assert keys.read_text().splitlines() == [key]  # the tool ran once; the redrive replayed it
    wire.assert_exhausted()
    assert len(wire.exchanges) == 2  # each model request reached the model exactly once
    assert _commits(db) == 1


async def _served(
    server: LocalRestateServer, tmp_path: Path, wire: WireServer, name: str
) -> tuple[Worker, Path]:
    keys = tmp_path / f"{name}-keys.txt"
    env = {
        "WORKER_DB": str(tmp_path / f"{name}.db"),
        "WORKER_LINES": str(tmp_path / "lines.txt"),
        "WORKER_KEYS": str(keys),
        "WORKER_MODEL_URL": wire.url(),
    }
    worker = Worker(free_port(), env, tmp_path / f"{name}.log")
    await worker.ready()
    await asyncio.to_thread(server.register, f"http://127.0.0.1:{worker.port}")
    return worker, keys


async def test_cancelling_a_parked_turn_ends_it_cancelled_and_the_wait_terminal(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    server = restate_server
    turn_id = "turn-await-cancel"
    async with WireServer(SCRIPTS[0]) as wire:
        worker, keys = await _served(server, tmp_path, wire, "cancel")
        try:
            body = {"session_id": "s1", "input": "approve the item"}
            await asyncio.to_thread(server.send, "LashTurn", turn_id, "run", body)
            key = await _first_key(keys, worker)
            stop = {"request_id": "r1", "origin": "test", "reason": "stop"}
            receipt = await asyncio.to_thread(
                server.call, "LashTurn", turn_id, "request_cancel", stop
            )
            assert receipt["outcome"] == "requested"
            outcome = await _attach(server, turn_id)
            assert not isinstance(outcome, Exception), outcome
            result = msgspec.convert(outcome, type=TurnResult)
            late = await asyncio.to_thread(
                server.call,
                "LashTurn",
                turn_id,
                "resolve_await_event",
                {"key": key, "resolution": {"kind": "ok", "value": "late"}},
            )
        finally:
            worker.stop()
    assert (result.outcome.kind, result.outcome.reason) == ("stopped", "cancelled")
    assert result.cancellation is not None and result.cancellation.request_id == "r1"
    assert len(wire.exchanges) == 1  # the model was not called again
    assert late["outcome"] == "already_resolved"
    assert late["terminal"]["kind"] == "cancelled"


async def test_a_wait_past_its_deadline_fails_the_call_with_a_durable_timer(
    restate_server: LocalRestateServer, tmp_path: Path
) -> None:
    server = restate_server
    turn_id = "turn-await-timeout"
    scripts = [load_script(HERE / "scripts" / f"restate-await-timeout-{n}.json") for n in (1, 2)]
    async with WireServer(*scripts) as wire:
        worker, keys = await _served(server, tmp_path, wire, "timeout")
        try:
            body = {"session_id": "s1", "input": "approve quickly"}
            await asyncio.to_thread(server.send, "LashTurn", turn_id, "run", body)
            outcome = await _attach(server, turn_id)
            assert not isinstance(outcome, Exception), outcome
            result = msgspec.convert(outcome, type=TurnResult)
            key = keys.read_text().splitlines()[0]
            late = await asyncio.to_thread(
                server.call,
                "LashTurn",
                turn_id,
                "resolve_await_event",
                {"key": key, "resolution": {"kind": "ok", "value": "late"}},
            )
        finally:
            worker.stop()
    assert result.outcome.kind == "finished", result.issues
    assert result.assistant_text == "Timed out."
    [record] = result.tool_calls
    assert (record.status, record.error_code) == ("failure", "await_event_timeout")
    wire.assert_exhausted()
    assert late["outcome"] == "already_resolved"
    assert late["terminal"]["kind"] == "timeout"
