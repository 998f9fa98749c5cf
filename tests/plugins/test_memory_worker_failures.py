"""An observer or reflector that fails in front of a prompt degrades the prompt, never the
user's turn: the memory stays as it was, the failure is published as a plugin event, and the
next turn tries again. Runtime errors (lease, fencing, store) still fail the turn."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import lash
from lash.errors import LashRuntimeError, RuntimeErrorCode, StoreError, StoreErrorKind
from lash.plugins import ObservationalMemory, ObservationalMemoryConfig
from lash.plugins.memory import MEMORY_MAINTENANCE_FAILED_EVENT, _degradable
from lash.testing import ScriptedProvider, provider_error, reply
from lash.types import LlmRequest, PluginRuntime, StreamEvent

OBSERVED = (
    "<observations>\n* 🔴 (10:00) User asked about the first topic\n</observations>\n"
    "<current-task>\nAnswer the first topic\n</current-task>"
)

BLOCKING = ObservationalMemoryConfig(
    observation_buffer_tokens=0,  # nothing is observed ahead of need
    observation_message_tokens=60,
    observation_block_after_tokens=60,
)


class Unreachable:
    """An observer endpoint that is down: every call raises (not a classified failure)."""

    kind = "unreachable"

    def __init__(self) -> None:
        self.calls = 0

    async def aclose(self) -> None:
        return None

    async def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        self.calls += 1
        raise ConnectionError("observer endpoint unreachable")
        yield  # pragma: no cover


async def run_turn(session: lash.LashSession, text: str) -> tuple[lash.TurnResult, list[Any]]:
    events: list[Any] = []

    async def sink(activity: lash.TurnActivity) -> None:
        if isinstance(activity.event, PluginRuntime):
            events.append(activity.event.event)

    result = await session.turn(text).on_event(sink).run()
    return result, [e for e in events if e.get("name") == MEMORY_MAINTENANCE_FAILED_EVENT]


async def test_observer_down_past_the_block_threshold_keeps_turns_running(
    make_core: Any,
) -> None:
    observer = Unreachable()
    memory = functools.partial(ObservationalMemory, BLOCKING, provider=observer, model="obs")
    provider = ScriptedProvider([reply("answer one"), reply("answer two"), reply("answer three")])
    core = make_core(provider, plugins=[memory])
    session = await core.session("s").open()
    await session.turn("first " + "a" * 200).run()
    assert observer.calls == 0

    for text, answer in (("second", "answer two"), ("third", "answer three")):
        result, failures = await run_turn(session, text)
        assert result.outcome.kind == "finished"
        assert result.outcome.reason == "assistant_message"
        assert result.assistant_text == answer
        assert len(failures) == 1
        assert failures[0]["payload"]["worker"] == "observer"
        assert failures[0]["payload"]["phase"] == "prepare"
        assert "unreachable" in failures[0]["payload"]["error"]
        # the raw conversation is the prompt: nothing was observed away
        prompt = [m.text for m in provider.requests[-1].messages if m.role != "system"]
        assert prompt[0].startswith("first ") and prompt[-1] == text
    assert observer.calls == 2  # one attempt per turn, not one per advance step
    plugin = session.plugin("observational_memory")
    assert isinstance(plugin, ObservationalMemory)
    assert plugin.memory_state().active is None
    await core.aclose()


async def test_observer_recovers_on_a_later_turn(make_core: Any) -> None:
    down = provider_error("http", message="observer is down")
    observer = ScriptedProvider([down, reply(OBSERVED)])
    memory = functools.partial(ObservationalMemory, BLOCKING, provider=observer, model="obs")
    provider = ScriptedProvider([reply("one"), reply("two"), reply("three")])
    core = make_core(provider, plugins=[memory])
    session = await core.session("s").open()
    await session.turn("first " + "a" * 200).run()
    _, failures = await run_turn(session, "second")
    assert [f["payload"]["error"] for f in failures] == ["observer is down"]
    _, failures = await run_turn(session, "third")
    assert failures == []
    assert "User asked about the first topic" in provider.requests[-1].messages[1].text
    await core.aclose()


async def test_reflector_down_past_its_block_threshold_keeps_the_log(make_core: Any) -> None:
    long_log = "<observations>\n" + "* 🔴 (10:00) detail " * 25 + "\n</observations>"
    observer = ScriptedProvider([reply(long_log), provider_error("http", message="reflector down")])
    config = ObservationalMemoryConfig(
        observation_buffer_tokens=0,
        observation_message_tokens=60,
        observation_block_after_tokens=60,
        reflection_observation_tokens=50,
        reflection_block_after_tokens=50,
    )
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    provider = ScriptedProvider([reply("one"), reply("two")])
    core = make_core(provider, plugins=[memory])
    session = await core.session("s").open()
    await session.turn("first " + "a" * 200).run()
    result, failures = await run_turn(session, "second")  # observes, then cannot reflect
    assert result.outcome.kind == "finished"
    assert [f["payload"]["worker"] for f in failures] == ["reflector"]
    assert "detail" in provider.requests[-1].messages[1].text  # the unreflected log is used
    assert "condense" in (observer.requests[1].system or "")  # the failed call: a reflection
    await core.aclose()


def test_runtime_and_store_errors_are_not_degraded() -> None:
    assert _degradable(ConnectionError("down"))
    assert _degradable(ValueError("bad output"))
    assert not _degradable(
        LashRuntimeError(RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST, "lease lost")
    )
    assert not _degradable(StoreError(StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED, "fenced"))
