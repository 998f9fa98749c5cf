"""Durable waits on the inline host: the ``effect_host_await_events`` vectors (persistence.md
§7.7) and whole turns parked on a pending tool (core-runtime.md §2.12.4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import lash
from lash.errors import LashRuntimeError
from lash.runtime.await_events import (
    AWAIT_EVENT_UNKNOWN_OR_REVOKED,
    AwaitEventResolver,
    AwaitEventSigner,
    Resolution,
    WaitIdentity,
)
from lash.runtime.scope import ExecutionScope
from lash.testing import ScriptedProvider, reply, tool_call
from lash.types import ToolCallOutput, ToolResultPart

WAIT_S = 5.0  # a bound on waiting for something already due; never a sleep
SCOPE = ExecutionScope.turn("s", "t1")


@pytest.fixture
def host() -> lash.InlineEffectHost:
    return lash.InlineEffectHost()


async def _parked(host: lash.InlineEffectHost, key: str, **kw: Any) -> asyncio.Task[Resolution]:
    task = asyncio.ensure_future(host.await_event(SCOPE, key, replay_key="r:await", **kw))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    return task


# --- §7.7 effect_host_await_events ----------------------------------------------------------


def test_inline_host_is_an_await_event_resolver(host: lash.InlineEffectHost) -> None:
    assert isinstance(host, AwaitEventResolver)


def test_key_is_stable(host: lash.InlineEffectHost) -> None:
    wait = WaitIdentity.tool_completion("call-1")
    key = host.await_event_key(SCOPE, wait)
    assert key == host.await_event_key(ExecutionScope.turn("s", "t1"), wait)
    assert key != host.await_event_key(SCOPE, WaitIdentity.tool_completion("call-2"))
    assert key != host.await_event_key(ExecutionScope.turn("s", "t2"), wait)
    assert key != host.await_event_key(SCOPE, WaitIdentity.custom("call-1"))
    # the same secret gives the same key in another host; another secret a different one
    secret = b"k" * 32
    a = lash.InlineEffectHost(await_event_secret=secret).await_event_key(SCOPE, wait)
    b = lash.InlineEffectHost(await_event_secret=secret).await_event_key(SCOPE, wait)
    assert a == b != key


async def test_accepts_early_resolution(host: lash.InlineEffectHost) -> None:
    key = host.await_event_key(SCOPE, WaitIdentity.tool_completion("c"))
    receipt = await host.resolve_await_event(key, Resolution.ok({"n": 1}))
    assert receipt.outcome == "resolved"
    assert await host.peek_await_event(key) == Resolution.ok({"n": 1})
    resolved = await asyncio.wait_for(host.await_event(SCOPE, key, replay_key="r"), WAIT_S)
    assert resolved == Resolution.ok({"n": 1})


async def test_parked_waiter_wakes_on_resolution(host: lash.InlineEffectHost) -> None:
    key = host.await_event_key(SCOPE, WaitIdentity.custom("approval"))
    task = await _parked(host, key)
    assert await host.peek_await_event(key) is None
    await host.resolve_await_event(key, Resolution.err("denied", "no"))
    assert await asyncio.wait_for(task, WAIT_S) == Resolution.err("denied", "no")


async def test_duplicate_resolution_is_terminal(host: lash.InlineEffectHost) -> None:
    key = host.await_event_key(SCOPE, WaitIdentity.tool_completion("c"))
    first = await host.resolve_await_event(key, Resolution.ok(1))
    second = await host.resolve_await_event(key, Resolution.ok(2))
    assert first.outcome == "resolved"
    assert second.outcome == "already_resolved"
    assert second.terminal == Resolution.ok(1)
    assert await host.await_event(SCOPE, key, replay_key="r") == Resolution.ok(1)


async def test_cancel_and_timeout_are_terminal(host: lash.InlineEffectHost) -> None:
    cancel = asyncio.Event()
    cancelled_key = host.await_event_key(SCOPE, WaitIdentity.custom("a"))
    task = await _parked(host, cancelled_key, cancel=cancel)
    cancel.set()
    assert await asyncio.wait_for(task, WAIT_S) == Resolution.cancelled()
    late = await host.resolve_await_event(cancelled_key, Resolution.ok("late"))
    assert (late.outcome, late.terminal) == ("already_resolved", Resolution.cancelled())

    fired = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        assert seconds == 0.25
        await fired.wait()

    timed_key = host.await_event_key(SCOPE, WaitIdentity.custom("b"))
    task = await _parked(host, timed_key, timeout_ms=250, sleep=fake_sleep)
    fired.set()
    assert await asyncio.wait_for(task, WAIT_S) == Resolution.timeout()
    late = await host.resolve_await_event(timed_key, Resolution.ok("late"))
    assert (late.outcome, late.terminal) == ("already_resolved", Resolution.timeout())


async def test_revokes_session_scope(host: lash.InlineEffectHost) -> None:
    key = host.await_event_key(SCOPE, WaitIdentity.custom("a"))
    other = host.await_event_key(ExecutionScope.turn("other", "t1"), WaitIdentity.custom("a"))
    task = await _parked(host, key)
    await host.revoke_await_events_for_session("s")
    assert await asyncio.wait_for(task, WAIT_S) == Resolution.cancelled()
    assert (await host.resolve_await_event(key, Resolution.ok(1))).outcome == "unknown_or_revoked"
    with pytest.raises(LashRuntimeError) as info:
        host.await_event_key(SCOPE, WaitIdentity.custom("new"))
    assert info.value.is_code(AWAIT_EVENT_UNKNOWN_OR_REVOKED)
    with pytest.raises(LashRuntimeError):
        await host.peek_await_event(key)
    # another session is untouched
    assert (await host.resolve_await_event(other, Resolution.ok(1))).outcome == "resolved"


async def test_session_cancel_resolves_outstanding_waits(host: lash.InlineEffectHost) -> None:
    a = host.await_event_key(SCOPE, WaitIdentity.custom("a"))
    b = host.await_event_key(SCOPE, WaitIdentity.tool_completion("c"))
    gate = host.await_event_key(SCOPE, WaitIdentity(kind="turn_cancel_gate"))
    elsewhere = host.await_event_key(ExecutionScope.turn("x", "t"), WaitIdentity.custom("a"))
    tasks = [await _parked(host, a), await _parked(host, b)]
    await host.peek_await_event(gate)
    await host.peek_await_event(elsewhere)
    assert await host.cancel_await_events_for_session("s") == 2
    for task in tasks:
        assert await asyncio.wait_for(task, WAIT_S) == Resolution.cancelled()
    assert await host.peek_await_event(gate) is None  # turn control is not swept
    assert await host.peek_await_event(elsewhere) is None
    # new waits of the session still work normally
    fresh = host.await_event_key(SCOPE, WaitIdentity.custom("after"))
    task = await _parked(host, fresh)
    assert (await host.resolve_await_event(fresh, Resolution.ok(3))).outcome == "resolved"
    assert await asyncio.wait_for(task, WAIT_S) == Resolution.ok(3)


async def test_rejects_tampered_keys(host: lash.InlineEffectHost) -> None:
    key = host.await_event_key(SCOPE, WaitIdentity.custom("a"))
    prefix, body, sig = key.split(".")
    forged_body = AwaitEventSigner().mint(ExecutionScope.turn("s", "t9"), WaitIdentity.custom("a"))
    foreign = lash.InlineEffectHost().await_event_key(SCOPE, WaitIdentity.custom("a"))
    tampered = [
        f"{prefix}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}",
        f"{prefix}.{forged_body.split('.')[1]}.{sig}",
        f"{prefix}.{body[:-1]}.{sig}",
        foreign,
        "",
        "garbage",
        key + ".extra",
    ]
    for bad in tampered:
        receipt = await host.resolve_await_event(bad, Resolution.ok(1))
        assert receipt.outcome == "unknown_or_revoked", bad
        assert receipt.terminal is None
        with pytest.raises(LashRuntimeError) as info:
            await host.peek_await_event(bad)
        assert info.value.is_code(AWAIT_EVENT_UNKNOWN_OR_REVOKED)
    assert await host.peek_await_event(key) is None  # nothing materialised on the real key


def test_wait_identities_validate() -> None:
    with pytest.raises(LashRuntimeError):
        WaitIdentity.tool_completion(" ")
    with pytest.raises(LashRuntimeError):
        WaitIdentity.custom("")


# --- whole turns parked on a pending tool ---------------------------------------------------


def _core(
    provider: ScriptedProvider, tools: list[Any], *, sleep: Any = None
) -> tuple[lash.LashCore, lash.InlineEffectHost]:
    host = lash.InlineEffectHost()
    builder = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(lash.stores.MemoryStore())
        .effect_host(host)
        .tools(tools)
    )
    if sleep is not None:
        builder = builder.sleep(sleep)
    return builder.build(), host


def _approval_tool(deadline_ms: int | None = None) -> tuple[Any, asyncio.Queue[str]]:
    keys: asyncio.Queue[str] = asyncio.Queue()

    @lash.tool
    async def approve(ctx: lash.ToolContext, item: str) -> ToolCallOutput:
        """Ask a human to approve an item; the answer arrives later."""
        keys.put_nowait(ctx.await_event_key())
        return lash.tools.pending(deadline_ms=deadline_ms)

    return approve, keys


def _tool_results(provider: ScriptedProvider) -> list[ToolResultPart]:
    return [
        part
        for message in provider.requests[-1].messages
        for part in message.parts
        if isinstance(part, ToolResultPart)
    ]


async def test_turn_parks_on_pending_tool_and_completes_with_resolved_value() -> None:
    tool, keys = _approval_tool()
    provider = ScriptedProvider([tool_call("approve", {"item": "x"}, "c1"), reply("approved!")])
    core, _ = _core(provider, [tool])
    session = await core.session("s").open()
    turn = asyncio.ensure_future(session.turn("go").turn_id("t1").run())
    key = await asyncio.wait_for(keys.get(), WAIT_S)
    # the host can also compute the key from the ids it sees in the live events
    assert key == core.await_event_key("s", "t1", WaitIdentity.tool_completion("c1"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not turn.done()
    receipt = await core.resolve_await_event(key, Resolution.ok({"approved_by": "ann"}))
    assert receipt.outcome == "resolved"
    result = await asyncio.wait_for(turn, WAIT_S)
    assert result.assistant_text == "approved!"
    [record] = result.tool_calls
    assert (record.status, record.output) == ("success", {"approved_by": "ann"})
    assert len(provider.requests) == 2
    assert "ann" in str(_tool_results(provider)[0])
    again = await core.resolve_await_event(key, Resolution.ok("twice"))
    assert again.outcome == "already_resolved"
    view = await session.read_view()
    assert any("ann" in str(m) for m in view.messages)  # the resolved value is in history


async def test_err_resolution_becomes_a_coded_failure() -> None:
    tool, keys = _approval_tool()
    provider = ScriptedProvider([tool_call("approve", {"item": "x"}, "c1"), reply("ok")])
    core, _ = _core(provider, [tool])
    session = await core.session("s").open()
    turn = asyncio.ensure_future(session.turn("go").run())
    key = await asyncio.wait_for(keys.get(), WAIT_S)
    await core.resolve_await_event(key, Resolution.err("denied", "not today"))
    [record] = (await asyncio.wait_for(turn, WAIT_S)).tool_calls
    assert (record.status, record.error_code, record.output) == (
        "failure",
        "denied",
        "not today",
    )


async def test_deadline_makes_the_call_fail_with_timeout() -> None:
    async def instant(seconds: float) -> None:
        await asyncio.sleep(0)

    tool, keys = _approval_tool(deadline_ms=60_000)
    provider = ScriptedProvider([tool_call("approve", {"item": "x"}, "c1"), reply("ok")])
    core, _ = _core(provider, [tool], sleep=instant)
    session = await core.session("s").open()
    result = await asyncio.wait_for(session.turn("go").run(), WAIT_S)
    key = keys.get_nowait()
    [record] = result.tool_calls
    assert (record.status, record.error_code) == ("failure", "await_event_timeout")
    late = await core.resolve_await_event(key, Resolution.ok(1))
    assert (late.outcome, late.terminal) == ("already_resolved", Resolution.timeout())


async def test_session_cancel_of_waits_cancels_the_call_but_not_the_turn() -> None:
    tool, keys = _approval_tool()
    provider = ScriptedProvider([tool_call("approve", {"item": "x"}, "c1"), reply("fine")])
    core, _ = _core(provider, [tool])
    session = await core.session("s").open()
    turn = asyncio.ensure_future(session.turn("go").run())
    await asyncio.wait_for(keys.get(), WAIT_S)
    assert await core.cancel_await_events("s") == 1
    result = await asyncio.wait_for(turn, WAIT_S)
    assert result.assistant_text == "fine"
    assert result.tool_calls[0].status == "cancelled"


async def test_cancelling_the_turn_ends_a_parked_call() -> None:
    tool, keys = _approval_tool()
    provider = ScriptedProvider([tool_call("approve", {"item": "x"}, "c1"), reply("unused")])
    core, _ = _core(provider, [tool])
    session = await core.session("s").open()
    turn = asyncio.ensure_future(session.turn("go").run())
    key = await asyncio.wait_for(keys.get(), WAIT_S)
    assert session.cancel_running_turns("stop") == 1
    result = await asyncio.wait_for(turn, WAIT_S)
    assert result.tool_calls[0].status == "cancelled"
    assert len(provider.requests) == 1
    late = await core.resolve_await_event(key, Resolution.ok(1))
    assert (late.outcome, late.terminal) == ("already_resolved", Resolution.cancelled())


async def test_deleting_the_session_revokes_its_waits() -> None:
    tool, _ = _approval_tool()
    core, host = _core(ScriptedProvider([]), [tool])
    key = core.await_event_key("gone", "t", WaitIdentity.custom("a"))
    await core.delete_session("gone")
    assert (await core.resolve_await_event(key, Resolution.ok(1))).outcome == "unknown_or_revoked"
    await core.session("gone").open()  # a recreated session id mints waits again
    fresh = core.await_event_key("gone", "t", WaitIdentity.custom("a"))
    assert (await host.resolve_await_event(fresh, Resolution.ok(1))).outcome == "resolved"


async def test_a_host_without_waits_fails_the_call_with_a_code() -> None:
    class Plain:
        def __init__(self) -> None:
            self._inner = lash.InlineEffectHost()

        tier = property(lambda self: self._inner.tier)
        turn_control = property(lambda self: self._inner.turn_control)
        supports_concurrent_effects = True

        async def run_effect(self, *args: Any, **kw: Any) -> Any:
            return await self._inner.run_effect(*args, **kw)

    @lash.tool
    async def later(ctx: lash.ToolContext) -> ToolCallOutput:
        """Always pending."""
        return lash.tools.pending()

    provider = ScriptedProvider([tool_call("later", {}, "c1"), reply("ok")])
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .without_store()
        .effect_host(Plain())
        .tools([later])
        .build()
    )
    session = await core.session("s").open()
    result = await asyncio.wait_for(session.turn("go").run(), WAIT_S)
    assert result.tool_calls[0].error_code == "await_event_unsupported"


async def test_custom_wait_resolved_before_the_turn_parks_is_delivered() -> None:
    holder: dict[str, lash.LashCore] = {}

    @lash.tool
    async def submit(ctx: lash.ToolContext) -> ToolCallOutput:
        """Submit a job that finishes at once (before the turn parks)."""
        wait = WaitIdentity.custom("job-7")
        key = ctx.await_event_key(wait)
        receipt = await holder["core"].resolve_await_event(key, Resolution.ok({"job": 7}))
        assert receipt.outcome == "resolved"
        return lash.tools.pending(wait)

    provider = ScriptedProvider([tool_call("submit", {}, "c1"), reply("done")])
    core, _ = _core(provider, [submit])
    holder["core"] = core
    session = await core.session("s").open()
    result = await asyncio.wait_for(session.turn("go").run(), WAIT_S)
    assert (result.tool_calls[0].status, result.tool_calls[0].output) == ("success", {"job": 7})


async def test_a_malformed_pending_request_fails_the_call_with_a_code() -> None:
    @lash.tool
    async def odd(ctx: lash.ToolContext) -> ToolCallOutput:
        """Returns a malformed pending request."""
        return ToolCallOutput(status="success", control={"pending": {"wait": {"kind": "nope"}}})

    provider = ScriptedProvider([tool_call("odd", {}, "c1"), reply("done")])
    core, _ = _core(provider, [odd])
    session = await core.session("s").open()
    result = await asyncio.wait_for(session.turn("go").run(), WAIT_S)
    assert (result.tool_calls[0].status, result.tool_calls[0].error_code) == (
        "failure",
        "invalid_await_event",
    )
    with pytest.raises(ValueError):
        lash.tools.pending(deadline_ms=-1)
