"""Spec rows of processes-tools §5.7 on retry delays: a delay between two attempts crosses the
effect host as a sleep effect with a stable key, and a host that refuses it ends that tool call
with an explicit failure instead of failing the turn.
"""

from __future__ import annotations

from typing import Any

import lash
from lash.runtime.effect_host import EffectSleepRejected, LocalSleep, effect_sleeper
from lash.runtime.scope import ExecutionScope
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, tool_call


class SleepRecordingHost(lash.InlineEffectHost):
    """Inline host that records each sleep effect (and may refuse them)."""

    def __init__(self, *, refuse: bool = False) -> None:
        super().__init__()
        self.refuse = refuse
        self.sleeps: list[tuple[str, str, float]] = []

    async def sleep(
        self, scope: ExecutionScope, replay_key: str, seconds: float, *, local: LocalSleep
    ) -> None:
        self.sleeps.append((scope.id, replay_key, seconds))
        if self.refuse:
            raise lash.LashRuntimeError("sleep_refused", "this host takes no timers")
        await local(seconds)


def _flaky(fail_times: int) -> tuple[Any, list[int]]:
    calls: list[int] = []

    @lash.tool(retry="safe", max_attempts=3, base_delay_ms=40)
    async def flaky(ctx: lash.ToolContext) -> str:
        """Fails transiently a few times, then works."""
        calls.append(ctx.attempt)
        if len(calls) <= fail_times:
            raise lash.ToolError("busy", code="busy", retryable=True)
        return "done"

    return flaky, calls


async def _run(host: SleepRecordingHost, tool: Any) -> lash.TurnResult:
    slept: list[float] = []

    async def no_wall_clock(seconds: float) -> None:
        slept.append(seconds)

    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([tool_call("flaky", {}, "c1"), reply("ok")]))
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(host)
        .tools([tool])
        .sleep(no_wall_clock)
        .build()
    )
    session = await core.session("s").open()
    result = await session.turn("go").turn_id("t1").run()
    assert slept == [seconds for _, _, seconds in host.sleeps if not host.refuse]
    return result


async def test_retry_delay_crosses_effect_controller_as_sleep_effect() -> None:
    tool, calls = _flaky(fail_times=2)
    host = SleepRecordingHost()
    result = await _run(host, tool)
    record = result.tool_calls[0]
    assert (record.status, record.attempts) == ("success", 3)
    assert calls == [1, 2, 3]
    keys = [key for _, key, _ in host.sleeps]
    assert len(keys) == 2 and all(
        k.endswith(f":attempt:{n}:sleep") for n, k in zip((1, 2), keys, strict=True)
    )
    assert keys[0].removesuffix(":attempt:1:sleep") == keys[1].removesuffix(":attempt:2:sleep")
    assert "c1" in keys[0]  # named after the call, so a replay finds the same timer
    assert [s for _, _, s in host.sleeps] == [0.04, 0.08]  # base x 2^(attempt-1)
    assert {scope for scope, _, _ in host.sleeps} == {"t1"}

    again = SleepRecordingHost()
    await _run(again, _flaky(fail_times=2)[0])
    assert [k for _, k, _ in again.sleeps] == keys  # stable across runs of the same turn


async def test_retry_sleep_controller_rejection_returns_explicit_tool_failure() -> None:
    tool, calls = _flaky(fail_times=2)
    host = SleepRecordingHost(refuse=True)
    result = await _run(host, tool)
    assert result.outcome.kind == "finished"  # the turn goes on; only the call failed
    record = result.tool_calls[0]
    assert record.status == "failure"
    assert record.error_code == "tool_attempt_failed"
    assert calls == [1]  # no further attempt after the refused delay
    assert [key.endswith(":attempt:1:sleep") for _, key, _ in host.sleeps] == [True]


async def test_a_host_without_sleep_effects_uses_the_configured_sleep() -> None:
    slept: list[float] = []

    async def local(seconds: float) -> None:
        slept.append(seconds)

    sleep = effect_sleeper(object(), ExecutionScope.turn("s", "t"), "k", local)
    await sleep(0.5)
    await sleep(1.0)
    assert slept == [0.5, 1.0]


async def test_a_refusing_host_raises_a_non_runtime_error_naming_the_key() -> None:
    host = SleepRecordingHost(refuse=True)
    sleep = effect_sleeper(host, ExecutionScope.turn("s", "t"), "tool:c9:attempt", _never)
    try:
        await sleep(0.1)
    except EffectSleepRejected as err:
        assert not isinstance(err, lash.LashRuntimeError)
        assert "tool:c9:attempt:1:sleep" in str(err)
    else:
        raise AssertionError("a refused sleep passed silently")


async def _never(seconds: float) -> None:
    raise AssertionError("the refusing host must not sleep locally")
