"""processes-tools §3.5: each tool attempt is its own effect through the effect host (key
``<call key>:attempt:<n>``, envelope ``ToolAttempt{call, attempt, max_attempts}``), the retry
decision is made between attempt effects, and the back-off between two attempts is the host's
sleep effect ``<call key>:attempt:<n>:sleep``. A host that returns recorded attempt outcomes
(a journal) therefore never runs a finished attempt again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

import lash
from lash.runtime.effect_host import LocalSleep
from lash.runtime.plugins import ToolCallContext
from lash.runtime.scope import ExecutionScope
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, provider_error, reply, tool_call
from lash.tools.base import ToolRetryPolicy
from lash.tools.dispatch import ToolAttempt
from lash.types import ToolCallOutput, ToolCallPart


class Crash(BaseException):
    """A worker dying at an effect boundary (nothing in the runtime catches it)."""


class JournalHost(lash.InlineEffectHost):
    """An inline host with a memo journal: an effect whose key was recorded returns the
    recorded outcome without running; ``crash_on_sleep`` dies at that sleep's key."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded: dict[str, Any] = {}
        self.log: list[tuple[str, str, Any]] = []
        self.crash_on_sleep: str | None = None
        self.in_effect = 0

    def fresh_attempt(self) -> None:
        self.log.clear()

    async def run_effect(
        self,
        scope: ExecutionScope,
        kind: str,
        replay_key: str,
        envelope: Any,
        execute: Callable[[], Awaitable[Any]],
        *,
        result_type: Any = None,
    ) -> Any:
        if replay_key in self.recorded:
            self.log.append(("replayed", replay_key, envelope))
            return self.recorded[replay_key]
        self.log.append((kind, replay_key, envelope))
        self.in_effect += 1
        try:
            value = await execute()
        finally:
            self.in_effect -= 1
        self.recorded[replay_key] = value
        return value

    async def sleep(
        self, scope: ExecutionScope, replay_key: str, seconds: float, *, local: LocalSleep
    ) -> None:
        assert self.in_effect == 0, "a back-off must not run inside an attempt effect"
        if replay_key in self.recorded:
            self.log.append(("replayed", replay_key, seconds))
            return
        self.log.append(("sleep", replay_key, seconds))
        if replay_key.endswith(self.crash_on_sleep or "\0"):
            raise Crash(replay_key)
        await local(seconds)
        self.recorded[replay_key] = None


class CountHooks(lash.Plugin):
    id = "count-hooks"

    def __init__(self, host: JournalHost) -> None:
        super().__init__()
        self.host = host
        self.seen: list[tuple[Any, bool]] = []

    async def after_tool_call(
        self, ctx: ToolCallContext, call: ToolCallPart, output: ToolCallOutput
    ) -> ToolCallOutput | None:
        self.seen.append((output.error_code or output.payload, self.host.in_effect > 0))
        return None


def _flaky(fail_times: int, *, policy: ToolRetryPolicy = "safe") -> tuple[Any, list[int]]:
    calls: list[int] = []

    @lash.tool(retry=policy, max_attempts=3, base_delay_ms=40)
    async def flaky(ctx: lash.ToolContext) -> str:
        """Fails transiently a few times, then works."""
        calls.append(ctx.attempt)
        if len(calls) <= fail_times:
            raise lash.ToolError("busy", code="busy", retryable=True)
        return "done"

    return flaky, calls


async def _turn(
    host: JournalHost,
    tools: list[Any],
    script: list[Any],
    plugins: list[Any] = (),  # type: ignore[assignment]
) -> lash.TurnResult:
    async def no_wall_clock(seconds: float) -> None:
        return None

    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider(script))
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(host)
        .tools(tools)
        .plugins([_factory(plugin) for plugin in plugins])
        .batch_tool()
        .sleep(no_wall_clock)
        .build()
    )
    session = await core.session("s").open()
    return await session.turn("go").turn_id("t1").run()


def _factory(plugin: lash.Plugin) -> Callable[[], lash.Plugin]:
    return lambda: plugin


def _tool_steps(host: JournalHost) -> list[tuple[str, str]]:
    return [(kind, key) for kind, key, _ in host.log if ":llm_call:" not in key]


async def test_each_attempt_is_its_own_effect_and_each_back_off_a_sleep_between_them() -> None:
    tool, calls = _flaky(fail_times=2)
    host = JournalHost()
    hooks = CountHooks(host)
    result = await _turn(host, [tool], [tool_call("flaky", {}, "c1"), reply("ok")], [hooks])
    record = result.tool_calls[0]
    assert (record.status, record.attempts) == ("success", 3)
    assert calls == [1, 2, 3]
    steps = _tool_steps(host)
    assert [kind for kind, _ in steps] == [
        "tool_attempt",
        "sleep",
        "tool_attempt",
        "sleep",
        "tool_attempt",
    ]
    call_key = steps[0][1].removesuffix(":attempt:1")
    assert "c1" in call_key
    assert [key for _, key in steps] == [
        f"{call_key}:attempt:1",
        f"{call_key}:attempt:1:sleep",
        f"{call_key}:attempt:2",
        f"{call_key}:attempt:2:sleep",
        f"{call_key}:attempt:3",
    ]
    envelopes = [env for kind, _, env in host.log if kind == "tool_attempt"]
    assert all(isinstance(e, ToolAttempt) for e in envelopes)
    assert [(e.attempt, e.max_attempts, e.call.id) for e in envelopes] == [
        (1, 3, "c1"),
        (2, 3, "c1"),
        (3, 3, "c1"),
    ]
    # after_tool_call: once per completed attempt, inside that attempt's effect
    assert hooks.seen == [("busy", True), ("busy", True), ("done", True)]


async def test_a_redrive_after_a_death_in_the_back_off_does_not_run_the_first_attempt_again() -> (
    None
):
    tool, calls = _flaky(fail_times=1)
    host = JournalHost()
    hooks = CountHooks(host)
    host.crash_on_sleep = ":attempt:1:sleep"
    script = [tool_call("flaky", {}, "c1"), reply("ok")]
    try:
        await _turn(host, [tool], script, [hooks])
    except Crash:
        pass
    else:
        raise AssertionError("the turn did not die in the back-off")
    assert calls == [1] and hooks.seen == [("busy", True)]

    host.crash_on_sleep = None
    host.fresh_attempt()
    result = await _turn(host, [tool], [reply("ok")], [hooks])  # call 1 is recorded
    assert result.tool_calls[0].status == "success" and result.tool_calls[0].attempts == 2
    assert calls == [1, 2]  # attempt 1 came back from the record
    assert hooks.seen == [("busy", True), ("done", True)]  # and its hooks did not run again
    kinds = [(kind, key.rsplit(":attempt:", 1)[-1]) for kind, key in _tool_steps(host)]
    assert kinds == [("replayed", "1"), ("sleep", "1:sleep"), ("tool_attempt", "2")]


async def test_a_never_policy_tool_is_one_attempt_effect_and_no_sleep() -> None:
    tool, calls = _flaky(fail_times=5, policy="never")
    host = JournalHost()
    result = await _turn(host, [tool], [tool_call("flaky", {}, "c1"), reply("ok")])
    record = result.tool_calls[0]
    assert (record.status, record.error_code, record.attempts) == ("failure", "busy", 1)
    assert calls == [1]
    steps = _tool_steps(host)
    assert len(steps) == 1 and steps[0][0] == "tool_attempt"
    assert steps[0][1].endswith(":attempt:1")


async def test_exhausted_attempts_clear_the_retry_hint_and_keep_the_count() -> None:
    tool, calls = _flaky(fail_times=5)
    host = JournalHost()
    result = await _turn(host, [tool], [tool_call("flaky", {}, "c1"), reply("ok")])
    record = result.tool_calls[0]
    assert (record.status, record.error_code, record.attempts) == ("failure", "busy", 3)
    assert calls == [1, 2, 3]
    assert [kind for kind, _ in _tool_steps(host)].count("sleep") == 2  # none after the last


async def test_batch_children_are_individually_keyed_attempt_effects() -> None:
    tool, calls = _flaky(fail_times=1)
    host = JournalHost()
    items = [{"tool": "flaky", "parameters": {}}, {"tool": "flaky", "parameters": {}}]
    script = [tool_call("batch", {"tool_calls": items}, "b1"), reply("ok")]
    result = await _turn(host, [tool], script)
    payload = result.tool_calls[0].output
    assert [r["success"] for r in payload["results"]] == [True, True]
    keys = [key for kind, key in _tool_steps(host) if kind == "tool_attempt"]
    child0 = [k for k in keys if ":batch:0:b1:00:" in k]
    child1 = [k for k in keys if ":batch:1:b1:01:" in k]
    assert child0 and child1 and len(child0) + len(child1) == len(keys) == 3
    assert all(k.rsplit(":attempt:", 1)[-1] in ("1", "2") for k in keys)
    envelopes = [env for kind, _, env in host.log if kind == "tool_attempt"]
    assert {msgspec.structs.asdict(e)["call"].id for e in envelopes} == {"b1:00", "b1:01"}
    assert sorted(calls) == [1, 1, 2] or sorted(calls) == [1, 2, 2]


# --- model calls: the same shape (``<llm key>:attempt:<n>``, ``<llm key>:retry:<n>:sleep``) ---


async def _model_turn(host: JournalHost, script: list[Any]) -> tuple[lash.TurnResult, Any]:
    async def no_wall_clock(seconds: float) -> None:
        return None

    provider = ScriptedProvider(script)
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(host)
        .retry(lash.providers.RetryPolicy(max_attempts=3, base_delay_s=0.5))
        .sleep(no_wall_clock)
        .build()
    )
    session = await core.session("s").open()
    return await session.turn("go").turn_id("t1").run(), provider


async def test_each_model_attempt_is_its_own_effect_with_the_back_off_between_them() -> None:
    host = JournalHost()
    busy = provider_error("http", retryable=True, http_status=529)
    result, provider = await _model_turn(host, [busy, reply("hello")])
    assert result.assistant_text == "hello"
    assert len(provider.requests) == 2
    assert [a.outcome for a in result.llm_calls[0].attempts] == ["failed", "completed"]
    steps = [(kind, key) for kind, key, _ in host.log]
    llm_key = steps[0][1].removesuffix(":attempt:1")
    assert steps == [
        ("llm_call", f"{llm_key}:attempt:1"),
        ("sleep", f"{llm_key}:retry:1:sleep"),
        ("llm_call", f"{llm_key}:attempt:2"),
    ]
    assert host.log[1][2] == 0.5
    # every attempt of one call carries the same request envelope
    assert host.log[0][2] == host.log[2][2] == provider.requests[0]


async def test_a_redrive_after_a_death_in_a_model_back_off_does_not_call_the_model_again() -> None:
    host = JournalHost()
    host.crash_on_sleep = ":retry:1:sleep"
    busy = provider_error("http", retryable=True, http_status=529)
    try:
        await _model_turn(host, [busy])
    except Crash:
        pass
    else:
        raise AssertionError("the turn did not die in the back-off")
    host.crash_on_sleep = None
    host.fresh_attempt()
    result, provider = await _model_turn(host, [reply("hello")])
    assert result.assistant_text == "hello"
    assert len(provider.requests) == 1  # attempt 1's failure came back from the record
    record = result.llm_calls[0]
    assert [a.outcome for a in record.attempts] == ["failed", "completed"]
    assert record.attempts[0].retry_decision is not None
    assert record.attempts[0].retry_decision.scheduled
    assert [kind for kind, _, _ in host.log] == ["replayed", "sleep", "llm_call"]
