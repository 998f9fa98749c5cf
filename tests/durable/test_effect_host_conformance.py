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
from collections.abc import Awaitable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from lash.durable.restate import index_name
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
from lash.testing.servers import RESTATE_SERVER_MISSING, server_unavailable
from lash.types import CancellationEvidence

WORKER = Path(__file__).with_name("effect_host_worker.py")
SERVICE = "LashTurn"
INDEX = index_name(SERVICE)
REVOKED = "turn_control_unknown_or_revoked"
CASE_DEADLINE_S = 60.0

RESTATE_MISSING: Mapping[str, str] = {}
"""The Restate host has every ability the kit asks about."""


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

    def ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise TimeoutError(f"worker on port {self.port} never listened")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


class _Deployment:
    """The module's server and its one worker; reopen restarts both on the same ports, so
    invocations parked before a reopen resume on the new worker."""

    def __init__(self, server: LocalRestateServer, logs: Path) -> None:
        self.server = server
        self._logs = logs
        self._port = free_port()
        self._n = 0
        self.worker: _Worker | None = None

    def start_worker(self) -> None:
        self._n += 1
        worker = _Worker(self._port, self._logs / f"worker-{self._n}.log")
        worker.ready()
        self.server.register(f"http://127.0.0.1:{self._port}")
        self.worker = worker

    def reopen(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        self.server.restart()
        self.start_worker()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


class _RestateHandle:
    """An independently constructed ingress client of the Restate host (its own connection
    pool), so two handles are two cold instances over one substrate."""

    def __init__(self, ingress: str) -> None:
        self._http = httpx.AsyncClient(base_url=ingress, timeout=httpx.Timeout(60.0))
        self._parked: set[asyncio.Future[Any]] = set()
        self._registering: set[asyncio.Future[Any]] = set()

    @property
    def tier(self) -> DurabilityTier:
        return DurabilityTier.DURABLE

    async def _call(self, turn_id: str, handler: str, body: Any) -> Any:
        reply = await self._http.post(f"/{SERVICE}/{turn_id}/{handler}", json=body)
        assert reply.status_code == 200, (handler, reply.status_code, reply.text)
        return reply.json()

    async def _in_order(self) -> None:
        """Operations of one handle happen in the order they were issued: a sweep waits until
        this handle's earlier parks have entered their waits."""
        if self._registering:
            await asyncio.gather(*list(self._registering))

    def _park(self, call: Awaitable[Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(call)
        self._parked.add(task)
        task.add_done_callback(self._parked.discard)
        return task

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
        if answer["outcome"] == "unknown_or_revoked":
            raise LashRuntimeError(AWAIT_EVENT_UNKNOWN_OR_REVOKED, "mint: session revoked")
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

    async def wait(
        self, key: str, *, timeout_ms: int | None = None, cancel: asyncio.Event | None = None
    ) -> Resolution:
        entered = asyncio.ensure_future(self.peek(key))  # enters the wait in its index
        self._registering.add(entered)
        try:
            seen = await entered
        finally:
            self._registering.discard(entered)
        if seen is not None:
            return seen
        body = {"key": key, "timeout_ms": timeout_ms}
        parked = self._park(self._call(self._turn_of(key), "await_event", body))
        if cancel is not None:
            stop = self._park(cancel.wait())
            await asyncio.wait({parked, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not parked.done():
                # a waiter's own cancel token resolves the wait itself, first writer wins
                receipt = await self.resolve(key, Resolution.cancelled())
                parked.cancel()
                assert receipt.terminal is not None, receipt
                return receipt.terminal
            stop.cancel()
        answer = await parked
        if answer["outcome"] == "unknown_or_revoked":
            raise LashRuntimeError(AWAIT_EVENT_UNKNOWN_OR_REVOKED, "await: unknown or revoked")
        return msgspec.convert(answer["terminal"], type=Resolution)

    async def revoke_session(self, session_id: str) -> None:
        await self._in_order()
        await self._http.post(f"/{INDEX}/{session_id}/revoke_all", json={})

    async def cancel_session(self, session_id: str) -> int:
        await self._in_order()
        reply = await self._http.post(f"/{INDEX}/{session_id}/cancel_all", json={})
        return int(reply.json()["cancelled"])

    async def request_cancel(
        self, session_id: str, turn_id: str, evidence: CancellationEvidence
    ) -> CancelReceipt:
        body = {**msgspec.to_builtins(evidence), "session_id": session_id}
        answer = await self._call(turn_id, "request_cancel", body)
        return msgspec.convert(answer, type=CancelReceipt)

    async def gate(self, session_id: str, turn_id: str) -> GateState:
        return msgspec.convert(await self._call(turn_id, "peek_gate", {}), type=GateState)

    async def seal(
        self, session_id: str, turn_id: str, local: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        body = {"session_id": session_id, "evidence": msgspec.to_builtins(local)}
        answer = await self._call(turn_id, "seal_gate", body)
        if answer["outcome"] == "unknown_or_revoked":
            raise LashRuntimeError(REVOKED, "seal: the session was revoked")
        seen = answer["evidence"]
        return None if seen is None else msgspec.convert(seen, type=CancellationEvidence)

    async def start(self, session_id: str, turn_id: str) -> asyncio.Event:
        answer = await self._call(turn_id, "open_gate", {"session_id": session_id})
        if answer["outcome"] == "unknown_or_revoked":
            raise LashRuntimeError(REVOKED, "start: the session was revoked")
        fired = asyncio.Event()
        if msgspec.convert(answer["gate"], type=GateState).status == "cancel_requested":
            fired.set()
            return fired

        async def watch() -> None:
            closed = msgspec.convert(await self._call(turn_id, "await_gate", {}), type=GateState)
            if closed.status == "cancel_requested":
                fired.set()

        self._park(watch())
        return fired

    async def publish_terminal(self, session_id: str, turn_id: str, result: Any) -> None:
        body = {"session_id": session_id, "terminal": result}
        await self._call(turn_id, "publish_terminal", body)

    async def attach(self, session_id: str, turn_id: str) -> Any:
        answer = await self._call(turn_id, "attach_terminal", {"session_id": session_id})
        if answer["outcome"] == "unknown_or_revoked":
            raise LashRuntimeError(REVOKED, "attach: the session was revoked")
        assert answer["outcome"] == "terminal", answer
        return answer["terminal"]

    async def aclose(self) -> None:
        for task in list(self._parked):
            task.cancel()
        await asyncio.gather(*self._parked, return_exceptions=True)
        await self._http.aclose()


class RestateHarness:
    """The Restate host behind the module's server and worker."""

    name = "restate"

    def __init__(self, deployment: _Deployment) -> None:
        self._deployment = deployment
        self._handles: list[_RestateHandle] = []

    @property
    def missing(self) -> Mapping[str, str]:
        return RESTATE_MISSING

    async def handle(self) -> EffectHostHandle:
        handle = _RestateHandle(self._deployment.server.ingress_url)
        self._handles.append(handle)
        return handle

    async def reopen(self) -> None:
        await asyncio.to_thread(self._deployment.reopen)

    async def aclose(self) -> None:
        for handle in self._handles:
            await handle.aclose()


@pytest.fixture(scope="module")
def restate_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Deployment | None]:
    binary = find_restate_server()
    if binary is None:
        yield None
        return
    with LocalRestateServer(binary) as server:
        deployment = _Deployment(server, tmp_path_factory.mktemp("conformance-workers"))
        deployment.start_worker()
        try:
            yield deployment
        finally:
            deployment.stop()


async def restate_placeholder() -> EffectHostHarness:
    raise AssertionError("the restate harness is built by the test from its server")


HOSTS = {
    "inline": (inline_harness, InlineHarness.MISSING),
    "restate": (restate_placeholder, RESTATE_MISSING),
}


@pytest.mark.parametrize(("factory", "case"), conformance_params(HOSTS))
async def test_effect_host_conformance(
    factory: HarnessFactory, case: Case, request: pytest.FixtureRequest
) -> None:
    harness: EffectHostHarness
    if factory is restate_placeholder:
        deployment: _Deployment | None = request.getfixturevalue("restate_deployment")
        if deployment is None:
            server_unavailable(RESTATE_SERVER_MISSING)
        harness = RestateHarness(deployment)
    else:
        harness = await factory()
    try:
        await asyncio.wait_for(case.run(harness), CASE_DEADLINE_S)
    finally:
        await harness.aclose()


async def _index_size(handle: _RestateHandle, session_id: str) -> dict[str, int]:
    reply = await handle._http.post(f"/{INDEX}/{session_id}/size", json={})
    assert reply.status_code == 200, reply.text
    answer: dict[str, int] = reply.json()
    return answer


async def _until_size(handle: _RestateHandle, session_id: str, want: dict[str, int]) -> None:
    """Poll the index (a woken parker unregisters a moment after its wait resolves)."""
    deadline = time.monotonic() + CASE_DEADLINE_S
    while (seen := await _index_size(handle, session_id)) != want:
        assert time.monotonic() < deadline, (seen, want)
        await asyncio.sleep(0.05)


async def test_the_restate_wait_index_shrinks_as_waits_resolve_and_turns_end(
    request: pytest.FixtureRequest,
) -> None:
    """The session index holds only what a sweep can still reach: a wait leaves it when it
    resolves (by a resolve, or when its parker wakes), a turn when its terminal is
    published, and the waits a finished turn left behind go with it."""
    deployment: _Deployment | None = request.getfixturevalue("restate_deployment")
    if deployment is None:
        server_unavailable(RESTATE_SERVER_MISSING)
    harness = RestateHarness(deployment)
    try:
        a = await harness.handle()
        assert isinstance(a, _RestateHandle)
        s, t1, t2 = "index-size", "index-size-t1", "index-size-t2"
        peeked = await a.mint(s, t1, WaitIdentity.custom("peeked"))
        resolved = await a.mint(s, t1, WaitIdentity.custom("resolved"))
        parked_key = await a.mint(s, t1, WaitIdentity.custom("parked"))
        assert await a.peek(peeked) is None and await a.peek(resolved) is None
        parked = asyncio.ensure_future(a.wait(parked_key))
        attached = asyncio.ensure_future(a.attach(s, t2))
        await _until_size(a, s, {"waits": 3, "turns": 1})

        assert (await a.resolve(resolved, Resolution.ok(1))).outcome == "resolved"
        await _until_size(a, s, {"waits": 2, "turns": 1})
        assert (await a.resolve(parked_key, Resolution.ok(2))).outcome == "resolved"
        assert await asyncio.wait_for(parked, CASE_DEADLINE_S) == Resolution.ok(2)
        await _until_size(a, s, {"waits": 1, "turns": 1})

        await a.publish_terminal(s, t2, {"done": 2})
        assert await asyncio.wait_for(attached, CASE_DEADLINE_S) == {"done": 2}
        await _until_size(a, s, {"waits": 1, "turns": 0})
        await a.publish_terminal(s, t1, {"done": 1})  # t1 ends: its peeked wait goes too
        await _until_size(a, s, {"waits": 0, "turns": 0})

        for n in range(5):  # churn leaves nothing behind
            key = await a.mint(s, t1, WaitIdentity.custom(f"churn-{n}"))
            assert await a.peek(key) is None
            assert (await a.resolve(key, Resolution.ok(n))).outcome == "resolved"
            assert await a.attach(s, t1) == {"done": 1}
        assert await _index_size(a, s) == {"waits": 0, "turns": 0}
    finally:
        await harness.aclose()
