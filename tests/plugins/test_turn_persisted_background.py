"""``turn_persisted`` hooks run in the background after the turn returned: the caller never
waits for (or is cancelled by) post-commit maintenance, runs are serialised per session, a
slow run is cut off by its timeout, and ``close()`` cancels what is still going."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pytest

from lash.plugins import ObservationalMemory, ObservationalMemoryConfig
from lash.plugins.memory import BUFFERED_OBSERVATION_PLUGIN_TYPE
from lash.runtime.plugins import Plugin, TurnPersistedContext
from lash.testing import ScriptedProvider, reply
from lash.types import LlmRequest, PluginPayload

OBSERVED = "<observations>\n* 🔴 (10:00) User asked something\n</observations>"


class Hooked(Plugin):
    """Records its post-persist runs; each waits for ``gate`` (set: no wait)."""

    id = "hooked"

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.active = 0
        self.max_active = 0
        self.fail = False

    async def turn_persisted(self, ctx: TurnPersistedContext) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.started.append(ctx.turn_id)
        try:
            await self.gate.wait()
            await asyncio.sleep(0)  # let an overlapping run (if any) start
            if self.fail:
                raise RuntimeError("hook exploded")
            self.finished.append(ctx.turn_id)
        except asyncio.CancelledError:
            self.cancelled.append(ctx.turn_id)
            raise
        finally:
            self.active -= 1


async def open_hooked(make_core: Any, replies: int = 3) -> tuple[Any, Any, Hooked]:
    hooked = Hooked()
    core = make_core([reply(f"answer {i}") for i in range(replies)], plugins=[lambda: hooked])
    session = await core.session("s").open()
    return core, session, hooked


async def test_the_turn_returns_before_its_hooks_finish(make_core: Any) -> None:
    core, session, hooked = await open_hooked(make_core)
    hooked.gate.clear()
    async with asyncio.timeout(5):  # inline hooks would deadlock here: the gate opens later
        result = await session.turn("hello").run()
    assert result.outcome.reason == "assistant_message"
    assert hooked.finished == []
    # the turn's lock is free: another turn runs while the first one's hook still waits
    async with asyncio.timeout(5):
        await session.turn("again").run()
    hooked.gate.set()
    await session.wait_maintenance()
    assert len(hooked.finished) == 2
    await core.aclose()


async def test_cancelling_the_caller_after_the_commit_does_not_cancel_maintenance(
    make_core: Any,
) -> None:
    core, session, hooked = await open_hooked(make_core)
    hooked.gate.clear()
    task = asyncio.create_task(session.turn("hello").run())
    result = await task  # committed and returned while the hook is still waiting
    assert result.outcome.reason == "assistant_message"
    task.cancel()  # a late cancel of the finished caller changes nothing
    await asyncio.sleep(0)
    assert hooked.started == [result.turn_id] and hooked.cancelled == []
    hooked.gate.set()
    await session.wait_maintenance()
    assert hooked.finished == [result.turn_id]
    await core.aclose()


async def test_runs_are_serialised_per_session(make_core: Any) -> None:
    core, session, hooked = await open_hooked(make_core)
    hooked.gate.clear()
    first = await session.turn("one").run()
    second = await session.turn("two").run()
    third = await session.turn("three").run()
    for _ in range(5):
        await asyncio.sleep(0)
    assert hooked.started == [first.turn_id]  # the others wait for it
    hooked.gate.set()
    await session.wait_maintenance()
    assert hooked.finished == [first.turn_id, second.turn_id, third.turn_id]
    assert hooked.max_active == 1
    await core.aclose()


async def test_a_failing_hook_is_logged_and_the_next_run_goes_ahead(
    make_core: Any, caplog: pytest.LogCaptureFixture
) -> None:
    core, session, hooked = await open_hooked(make_core)
    hooked.fail = True
    await session.turn("one").run()
    await session.wait_maintenance()
    assert any("hook exploded" in (r.exc_text or "") for r in caplog.records)
    hooked.fail = False
    second = await session.turn("two").run()
    await session.wait_maintenance()
    assert hooked.finished == [second.turn_id]
    await core.aclose()


async def test_a_slow_run_times_out(make_core: Any, caplog: pytest.LogCaptureFixture) -> None:
    core, session, hooked = await open_hooked(make_core)
    session.post_persist_timeout_s = 0.01
    hooked.gate.clear()  # never opened: only the timeout ends the run
    result = await session.turn("one").run()
    with caplog.at_level(logging.WARNING, logger="lash.runtime.session"):
        async with asyncio.timeout(5):
            await session.wait_maintenance()
    assert hooked.cancelled == [result.turn_id]
    assert any("timed out" in r.getMessage() for r in caplog.records)
    await core.aclose()


async def test_close_cancels_pending_runs(make_core: Any) -> None:
    core, session, hooked = await open_hooked(make_core)
    hooked.gate.clear()
    first = await session.turn("one").run()
    await session.turn("two").run()
    await asyncio.sleep(0)
    await session.close()
    assert hooked.cancelled == [first.turn_id]
    assert hooked.finished == []
    assert session._maintenance == []
    await core.aclose()


class Gated:
    """An observer whose calls wait for ``gate``."""

    def __init__(self, inner: ScriptedProvider) -> None:
        self.inner = inner
        self.gate = asyncio.Event()

    @property
    def kind(self) -> str:
        return self.inner.kind

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def stream(self, request: LlmRequest) -> Any:
        await self.gate.wait()
        async for event in self.inner.stream(request):
            yield event


async def test_memory_appends_land_after_a_turn_that_ran_meanwhile(make_core: Any) -> None:
    """The observer of turn one finishes while turn two runs: its buffered observation waits
    for turn two's commit and lands after it (never inside it)."""
    observer = Gated(ScriptedProvider([reply(OBSERVED)] * 4))
    config = ObservationalMemoryConfig(observation_buffer_tokens=1)
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    release_during_turn_two: list[bool] = []

    class Releasing(ScriptedProvider):
        def stream(self, request: LlmRequest) -> Any:
            if len(self.requests) == 1:  # turn two's model call: let the observer finish
                observer.gate.set()
                release_during_turn_two.append(True)
            return super().stream(request)

    provider = Releasing([reply("one"), reply("two")])
    core = make_core(provider, plugins=[memory])
    session = await core.session("s").open()
    await session.turn("first question").run()
    await session.turn("second question").run()
    assert release_during_turn_two == [True]
    await session.wait_maintenance()
    view = await session.read_view()
    assert [m.text for m in view.messages] == ["first question", "one", "second question", "two"]
    plugin = session.plugin("observational_memory")
    assert isinstance(plugin, ObservationalMemory)
    graph = plugin._access.graph() if plugin._access is not None else None
    assert graph is not None
    kinds = [
        "plugin" if isinstance(n.payload, PluginPayload) else "message" for n in graph.active_path()
    ]
    first_plugin = kinds.index("plugin")
    assert kinds[:first_plugin] == ["message"] * 4  # turn two committed whole before them
    assert all(
        n.payload.plugin_type == BUFFERED_OBSERVATION_PLUGIN_TYPE
        for n in graph.active_path()
        if isinstance(n.payload, PluginPayload)
    )
    await core.aclose()
