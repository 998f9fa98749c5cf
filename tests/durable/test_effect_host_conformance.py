"""The effect-host conformance kit (persistence spec §7.7-§7.9) over the inline and Restate hosts.

The Restate host is driven from outside, as an application would: a real ``restate-server``
and a worker process serving the ``LashTurn`` workflow, every operation a call over the
ingress, and every handle an independently constructed client ("cold"). Reopen restarts the
server on its data dir and replaces the worker process. Without a ``restate-server`` binary
the Restate cases skip locally and fail in CI.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lash.durable.restate import CANCEL_PROMISE, DONE_PROMISE
from lash.durable.restate.local import LocalRestateServer, find_restate_server, free_port
from lash.errors import LashRuntimeError
from lash.runtime.await_events import (
    AWAIT_EVENT_UNKNOWN_OR_REVOKED,
    Resolution,
    ResolveReceipt,
    WaitIdentity,
)
from lash.runtime.effect_host import CancelReceipt, GateState
from lash.stores.base import DurabilityTier
from lash.testing.effect_host_conformance import (
    Case,
    EffectHostHandle,
    EffectHostHarness,
    HarnessFactory,
    InlineHarness,
    conformance_params,
    inline_harness,
)
from lash.types import CancellationEvidence

from .test_restate_e2e import _in_ci

WORKER = Path(__file__).with_name("effect_host_worker.py")
SERVICE = "LashTurn"

RESTATE_MISSING: Mapping[str, str] = {
    "await": "a Restate wait parks only inside the LashTurn run handler of its own turn",
    "session_sweep": "Restate waits are per-turn workflow promises; a session has no sweep",
    "owner": "only the turn's own run handler opens its gate and seals its completion",
    "terminal": "a turn's terminal is its run result, attachable only after a real turn",
}


class _Worker:
    """One conformance worker process on a loopback port."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER)],
                env={**os.environ, "WORKER_PORT": str(port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"worker on port {self.port} never listened")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


class _RestateHandle:
    """An independently constructed ingress client of the Restate host."""

    def __init__(self, server: LocalRestateServer) -> None:
        self._server = server

    @property
    def tier(self) -> DurabilityTier:
        return DurabilityTier.DURABLE

    async def _call(self, turn_id: str, handler: str, body: Any) -> Any:
        return await asyncio.to_thread(self._server.call, SERVICE, turn_id, handler, body)

    @staticmethod
    def _turn_of(key: str) -> str:
        """The turn a key claims to name (unverified: it only routes the ingress call).

        A key that names no turn goes to a turn that owns nothing, whose handler must still
        answer ``unknown_or_revoked``.
        """
        parts = key.split(".")
        try:
            body = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            turn = json.loads(body)["scope"]["id"]
        except (IndexError, ValueError, KeyError, TypeError):
            return "no-such-turn"
        return turn if isinstance(turn, str) and turn else "no-such-turn"

    async def mint(self, session_id: str, turn_id: str, wait: WaitIdentity) -> str:
        body = {"session_id": session_id, "wait": msgspec.to_builtins(wait)}
        answer = await self._call(turn_id, "await_event_key", body)
        return str(answer["key"])

    async def resolve(self, key: str, resolution: Resolution) -> ResolveReceipt:
        body = {"key": key, "resolution": msgspec.to_builtins(resolution)}
        answer = await self._call(self._turn_of(key), "resolve_await_event", body)
        return msgspec.convert(answer, type=ResolveReceipt)

    async def peek(self, key: str) -> Resolution | None:
        answer = await self._call(self._turn_of(key), "peek_await_event", {"key": key})
        if answer["outcome"] == "unknown_or_revoked":
            raise LashRuntimeError(AWAIT_EVENT_UNKNOWN_OR_REVOKED, "peek: unknown or revoked")
        seen = answer["terminal"]
        return None if seen is None else msgspec.convert(seen, type=Resolution)

    async def request_cancel(
        self, session_id: str, turn_id: str, evidence: CancellationEvidence
    ) -> CancelReceipt:
        answer = await self._call(turn_id, "request_cancel", msgspec.to_builtins(evidence))
        return msgspec.convert(answer, type=CancelReceipt)

    async def wait(
        self, key: str, *, timeout_ms: int | None = None, cancel: asyncio.Event | None = None
    ) -> Resolution:
        raise AssertionError(RESTATE_MISSING["await"])

    async def revoke_session(self, session_id: str) -> None:
        raise AssertionError(RESTATE_MISSING["session_sweep"])

    async def cancel_session(self, session_id: str) -> int:
        raise AssertionError(RESTATE_MISSING["session_sweep"])

    async def gate(self, session_id: str, turn_id: str) -> GateState:
        """Read the turn's cancel and done promises through Restate's introspection."""
        sql = (
            "SELECT key, completion_success_value_utf8 AS value FROM sys_promise "
            f"WHERE service_name = '{SERVICE}' AND service_key = '{turn_id.replace(chr(39), '')}'"
        )
        rows = await asyncio.to_thread(self._server.query, sql)
        seen = {row["key"]: row["value"] for row in rows}
        if seen.get(CANCEL_PROMISE) is not None:
            evidence = msgspec.json.decode(seen[CANCEL_PROMISE], type=CancellationEvidence)
            return GateState(status="cancel_requested", evidence=evidence)
        if seen.get(DONE_PROMISE) is not None:
            return GateState(status="completion_sealed")
        return GateState()

    async def seal(
        self, session_id: str, turn_id: str, local: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        raise AssertionError(RESTATE_MISSING["owner"])

    async def start(self, session_id: str, turn_id: str) -> asyncio.Event:
        raise AssertionError(RESTATE_MISSING["owner"])

    async def publish_terminal(self, session_id: str, turn_id: str, result: Any) -> None:
        raise AssertionError(RESTATE_MISSING["terminal"])

    async def attach(self, session_id: str, turn_id: str) -> Any:
        raise AssertionError(RESTATE_MISSING["terminal"])


class RestateHarness:
    """The Restate host behind a real server and one worker (replaced on reopen)."""

    name = "restate"

    def __init__(self, server: LocalRestateServer, logs: Path) -> None:
        self._server = server
        self._logs = logs
        self._worker: _Worker | None = None
        self._n = 0

    @property
    def missing(self) -> Mapping[str, str]:
        return RESTATE_MISSING

    async def start_worker(self) -> None:
        self._n += 1
        worker = _Worker(free_port(), self._logs / f"worker-{self._n}.log")
        await worker.ready()
        await asyncio.to_thread(self._server.register, f"http://127.0.0.1:{worker.port}")
        self._worker = worker

    async def handle(self) -> EffectHostHandle:
        return _RestateHandle(self._server)

    async def reopen(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        await asyncio.to_thread(self._server.restart)
        await self.start_worker()

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None


@pytest.fixture(scope="module")
def restate_server() -> Iterator[LocalRestateServer | None]:
    binary = find_restate_server()
    if binary is None:
        yield None
        return
    with LocalRestateServer(binary) as server:
        yield server


async def restate_placeholder() -> EffectHostHarness:
    raise AssertionError("the restate harness is built by the test from its server")


HOSTS = {
    "inline": (inline_harness, InlineHarness.MISSING),
    "restate": (restate_placeholder, RESTATE_MISSING),
}


@pytest.mark.parametrize(("factory", "case"), conformance_params(HOSTS))
async def test_effect_host_conformance(
    factory: HarnessFactory, case: Case, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    harness: EffectHostHarness
    if factory is restate_placeholder:
        server: LocalRestateServer | None = request.getfixturevalue("restate_server")
        if server is None:
            reason = "restate-server is not installed (bash scripts/setup.sh puts it in .restate/)"
            if _in_ci():
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        restate = RestateHarness(server, tmp_path)
        await restate.start_worker()
        harness = restate
    else:
        harness = await factory()
    try:
        await case.run(harness)
    finally:
        await harness.aclose()
