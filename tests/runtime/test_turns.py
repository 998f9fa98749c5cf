"""Turn-level acceptance tests of the durable turn core (issue 2), against MemoryStore."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import lash
from lash.errors import RuntimeErrorCode
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, provider_error, reply, stall, tool_call
from lash.types import TokenUsage, ToolCallPart


def _tools_started_together(count: int) -> tuple[Any, list[str]]:
    """A tool that only returns once ``count`` calls are running at the same time."""
    started: list[str] = []
    all_in = asyncio.Event()

    @lash.tool
    async def lookup(ctx: lash.ToolContext, q: str) -> str:
        """Look something up."""
        started.append(q)
        if len(started) >= count:
            all_in.set()
        await asyncio.wait_for(all_in.wait(), timeout=5)
        return f"result:{q}"

    return lookup, started


async def test_two_concurrent_tools_then_answer(make_core: Any) -> None:
    lookup, started = _tools_started_together(2)
    provider = ScriptedProvider(
        [
            [
                tool_call(
                    "lookup",
                    {"q": "a"},
                    "call-a",
                    usage=TokenUsage(input_tokens=7, output_tokens=3),
                ),
                tool_call("lookup", {"q": "b"}, "call-b"),
            ],
            reply(
                "Both found.",
                usage=TokenUsage(input_tokens=11, cache_read_input_tokens=4, output_tokens=5),
            ),
        ]
    )
    store = MemoryStore()
    core = make_core(provider, tools=[lookup], store=store)
    session = await core.session("chat-1").open()
    before = await store.load_session("chat-1")
    assert before is None

    kinds: list[str] = []
    async with session.turn("find a and b").stream() as turn:
        async for activity in turn:
            kinds.append(activity.type)
        result = await turn.result()

    assert sorted(started) == ["a", "b"]
    assert result.outcome.kind == "finished"
    assert result.outcome.reason == "assistant_message"
    assert result.assistant_text == "Both found."
    assert len(result.llm_calls) == 2
    assert result.llm_calls[0].usage == TokenUsage(input_tokens=7, output_tokens=3)
    assert result.llm_calls[1].usage == TokenUsage(
        input_tokens=11, cache_read_input_tokens=4, output_tokens=5
    )
    assert result.usage == TokenUsage(input_tokens=18, cache_read_input_tokens=4, output_tokens=8)
    assert result.total_usage() == result.usage
    assert [(c.call_id, c.name, c.status, c.output) for c in result.tool_calls] == [
        ("call-a", "lookup", "success", "result:a"),
        ("call-b", "lookup", "success", "result:b"),
    ]
    # the stream: request, usage, both starts before any completion, then the answer
    assert kinds[0] == "model_request_started"
    first_done = kinds.index("tool_call_completed")
    assert kinds[:first_done].count("tool_call_started") == 2
    assert kinds.count("tool_call_completed") == 2
    assert kinds.index("assistant_prose_delta") > kinds.index("model_request_started", first_done)
    # the commit appended exactly the new nodes
    after = await store.load_session("chat-1")
    assert after is not None and after.head_revision == 1
    roles = [n.payload.message.role for n in after.nodes]  # type: ignore[union-attr]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]
    view = await session.read_view()
    assert [m.role for m in view.messages] == roles
    assert view.messages[1].tool_calls[0].id == "call-a"
    assert view.messages[2].tool_call_id == "call-a" and view.messages[2].text == "result:a"
    # the model saw the tool results paired with their calls on the second request
    second = provider.requests[1]
    assert [m.role for m in second.messages] == ["user", "assistant", "tool", "tool"]


async def test_second_turn_appends_only_new_nodes(make_core: Any) -> None:
    store = MemoryStore()
    core = make_core([reply("one"), reply("two")], store=store)
    session = await core.session("s").open()
    await session.turn("first").run()
    first = await store.load_session("s")
    await session.turn("second").run()
    second = await store.load_session("s")
    assert first is not None and second is not None
    assert second.head_revision == first.head_revision + 1
    assert second.nodes[: len(first.nodes)] == first.nodes
    assert len(second.nodes) == len(first.nodes) + 2
    view = await session.read_view()
    assert [m.text for m in view.messages] == ["first", "one", "second", "two"]


async def test_retryable_llm_failures_exhaust_and_fail_turn(
    make_core: Any, fake_sleep: Any
) -> None:
    """Durable fault matrix row 3: retries are deterministic and fail only after exhaustion."""
    steps = [provider_error("http", retryable=True, http_status=500) for _ in range(4)]
    provider = ScriptedProvider(steps)
    core = make_core(provider, sleep=fake_sleep)
    session = await core.session("s").open()
    result = await session.turn("hi").run()
    assert result.outcome.kind == "stopped" and result.outcome.reason == "provider_error"
    assert len(result.llm_calls) == 1
    attempts = result.llm_calls[0].attempts
    assert [a.outcome for a in attempts] == ["failed"] * 4
    assert fake_sleep.calls == [2.0, 4.0, 8.0]
    assert len(provider.requests) == 4
    issue = result.issues[0]
    assert issue.kind == "llm_provider" and issue.retryable is True
    assert issue.provider_failure_kind == "http"
    view = await session.read_view()
    assert [m.role for m in view.messages] == ["user"]  # no invented assistant text


async def test_retry_then_success_is_one_call_with_two_attempts(make_core: Any) -> None:
    provider = ScriptedProvider(
        [provider_error("quota", retryable=True, retry_after_s=3, http_status=429), reply("ok")]
    )
    core = make_core(provider)
    session = await core.session("s").open()
    kinds: list[str] = []
    result = await session.turn("hi").on_event(_collect(kinds)).run()
    assert result.assistant_text == "ok"
    assert len(result.llm_calls) == 1
    assert [a.outcome for a in result.llm_calls[0].attempts] == ["failed", "completed"]
    assert result.llm_calls[0].attempts[0].retry_budget_consumed is False
    assert "retry_status" in kinds


async def test_hard_quota_is_never_retried(make_core: Any) -> None:
    provider = ScriptedProvider(
        [provider_error("quota", retryable=True, hard_quota=True), reply("x")]
    )
    core = make_core(provider)
    session = await core.session("s").open()
    result = await session.turn("hi").run()
    assert result.outcome.reason == "provider_error"
    assert len(provider.requests) == 1


def _collect(kinds: list[str]) -> Any:
    async def sink(activity: lash.TurnActivity) -> None:
        kinds.append(activity.type)

    return sink


async def test_cancel_during_tool_commits_cancelled_with_evidence(make_core: Any) -> None:
    entered = asyncio.Event()

    @lash.tool
    async def slow(ctx: lash.ToolContext) -> str:
        """Never finishes on its own."""
        entered.set()
        await asyncio.Event().wait()
        return "never"

    @lash.tool
    async def quick(ctx: lash.ToolContext) -> str:
        """Finishes at once."""
        return "quick"

    store = MemoryStore()
    core = make_core(
        [[tool_call("slow", {}, "c-slow"), tool_call("quick", {}, "c-quick")], reply("unused")],
        tools=[slow, quick],
        store=store,
    )
    session = await core.session("s").open()
    handle = session.turn("go").start()
    await asyncio.wait_for(entered.wait(), 5)
    await handle.cancel("user pressed stop")
    result = await handle.result()
    assert result.outcome.kind == "stopped" and result.outcome.reason == "cancelled"
    assert result.cancellation is not None and result.cancellation.is_internal
    assert result.cancellation.reason == "user pressed stop"
    statuses = {c.call_id: c.status for c in result.tool_calls}
    assert statuses == {"c-slow": "cancelled", "c-quick": "success"}
    view = await session.read_view()
    calls = [tc.id for m in view.messages for tc in m.tool_calls]
    answered = [m.tool_call_id for m in view.messages if m.role == "tool"]
    assert sorted(calls) == sorted(answered) == ["c-quick", "c-slow"]
    # the session stays usable and the lease was released by the commit
    lease = await store.get_lease("s")
    assert lease is not None and not lease.is_live(core.config.clock.now_ms())


async def test_cancel_while_streaming_commits_no_partial_text(make_core: Any) -> None:
    provider = ScriptedProvider([stall("half an ans"), reply("fresh")])
    core = make_core(provider)
    session = await core.session("s").open()
    seen: list[lash.TurnActivity] = []
    got_delta = asyncio.Event()

    async def sink(activity: lash.TurnActivity) -> None:
        seen.append(activity)
        if activity.type == "assistant_prose_delta":
            got_delta.set()

    handle = session.turn("go").on_event(sink).start()
    await asyncio.wait_for(got_delta.wait(), 5)
    receipt = await session.request_turn_cancel(handle.turn_id, "req-1", origin="test")
    assert receipt.outcome == "requested"
    result = await handle.result()
    assert result.outcome.reason == "cancelled"
    assert result.cancellation is not None and result.cancellation.request_id == "req-1"
    assert result.llm_calls[0].attempts[0].outcome == "interrupted"
    view = await session.read_view()
    assert [m.role for m in view.messages] == ["user"]
    again = await session.request_turn_cancel(handle.turn_id, "req-2")
    assert again.outcome == "already_requested"
    follow = await session.turn("again").run()
    assert follow.assistant_text == "fresh"
    kinds = [a.type for a in seen]
    assert "model_attempt_reset" in kinds  # observers retract the unfinished prose


async def test_cancel_after_completion_reports_completion_won(make_core: Any) -> None:
    core = make_core([reply("done")])
    session = await core.session("s").open()
    result = await session.turn(lash.TurnInput.text("hi", trace_turn_id="t-1")).run()
    assert result.turn_id == "t-1"
    receipt = await session.request_turn_cancel("t-1", "late")
    assert receipt.outcome == "completion_won_race"


async def test_cancel_before_start_ends_the_turn_without_a_model_call(make_core: Any) -> None:
    provider = ScriptedProvider([reply("never")])
    core = make_core(provider)
    session = await core.session("s").open()
    receipt = await session.request_turn_cancel("t-later", "early-stop", origin="ui")
    assert receipt.outcome == "requested"
    result = await session.turn("hi").turn_id("t-later").run()
    assert result.outcome.reason == "cancelled"
    assert result.cancellation is not None and result.cancellation.request_id == "early-stop"
    assert provider.requests == []
    view = await session.read_view()
    assert [m.role for m in view.messages] == ["user"]


async def test_second_live_writer_is_busy(make_core: Any) -> None:
    store = MemoryStore()
    provider = ScriptedProvider([stall(), reply("second")])
    core = make_core(provider, store=store)
    first = await core.session("s").open()
    second = await core.session("s").open()
    handle = first.turn("hold the lease").start()
    await asyncio.sleep(0.05)
    with pytest.raises(lash.LashRuntimeError) as err:
        await second.turn("me too").run()
    assert err.value.code == RuntimeErrorCode.SESSION_EXECUTION_BUSY
    assert err.value.is_retryable
    await handle.cancel()
    await handle.result()
    result = await second.turn("now").run()
    assert result.assistant_text == "second"
    view = await second.read_view()
    assert [m.text for m in view.messages] == ["hold the lease", "now", "second"]


async def test_unknown_tool_and_malformed_arguments_are_tool_errors(make_core: Any) -> None:
    @lash.tool
    async def add(ctx: lash.ToolContext, a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    core = make_core(
        [
            [
                tool_call("nope", {}, "c1"),
                tool_call("add", {}, "c2", raw_arguments='{"a": 1, "b":'),
                tool_call("add", {"a": "x", "b": 2}, "c3"),
                tool_call("add", {"a": 1, "b": 2}, "c4"),
            ],
            reply("handled"),
        ],
        tools=[add],
    )
    session = await core.session("s").open()
    result = await session.turn("go").run()
    assert result.outcome.reason == "assistant_message"
    records = {c.call_id: c for c in result.tool_calls}
    assert records["c1"].status == "failure" and records["c1"].error_code == "tool_unavailable"
    assert records["c2"].status == "failure" and records["c2"].error_code == "invalid_tool_args"
    assert records["c3"].status == "failure" and records["c3"].error_code == "invalid_tool_args"
    assert records["c4"].status == "success" and records["c4"].output == 3
    view = await session.read_view()
    tool_msgs = {m.tool_call_id: m for m in view.messages if m.role == "tool"}
    assert set(tool_msgs) == {"c1", "c2", "c3", "c4"}
    assert "unavailable" in tool_msgs["c1"].text


async def test_provider_raising_mid_stream_stops_without_settled_text(make_core: Any) -> None:
    class Broken:
        kind = "broken"
        requests: list[Any] = []

        async def aclose(self) -> None:
            return None

        async def _gen(self) -> Any:
            yield lash.types.TextDelta(text="partial")
            raise RuntimeError("socket exploded")

        def stream(self, request: Any) -> Any:
            return self._gen()

    builder = (
        lash.LashCore.builder()
        .provider(Broken())
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(lash.InlineEffectHost())
    )
    core = builder.build()
    session = await core.session("s").open()
    result = await session.turn("hi").run()
    assert result.outcome.reason == "provider_error"
    assert result.issues[0].code == "provider_exception"
    assert "socket exploded" in result.issues[0].message
    assert result.assistant_text == ""
    view = await session.read_view()
    assert [m.role for m in view.messages] == ["user"]


async def test_tool_raising_is_a_tool_error_and_turn_continues(make_core: Any) -> None:
    @lash.tool
    async def boom(ctx: lash.ToolContext) -> str:
        """Always fails."""
        raise ValueError("bad things")

    core = make_core([tool_call("boom", {}, "c1"), reply("recovered")], tools=[boom])
    session = await core.session("s").open()
    result = await session.turn("go").run()
    assert result.assistant_text == "recovered"
    assert result.tool_calls[0].status == "failure"
    assert "bad things" in str(result.tool_calls[0].output)


async def test_max_turns_stops_after_tool_result(make_core: Any) -> None:
    @lash.tool
    async def again(ctx: lash.ToolContext) -> str:
        """Loop."""
        return "more"

    core = make_core([tool_call("again", {}, "c1"), reply("never")], tools=[again], max_turns=1)
    session = await core.session("s").open()
    result = await session.turn("loop").run()
    assert result.outcome.reason == "max_turns"
    view = await session.read_view()
    assert view.messages[-1].role == "system"
    assert "Turn limit reached (1)" in view.messages[-1].text


async def test_tool_context_idempotency_key_is_stable_per_attempt(make_core: Any) -> None:
    keys: list[str] = []

    @lash.tool
    async def side_effect(ctx: lash.ToolContext) -> str:
        """Record the key."""
        keys.append(ctx.idempotency_key)
        assert ctx.session_id == "s" and ctx.call_id == "c1" and ctx.turn_id == "turn-7"
        return "ok"

    core = make_core([tool_call("side_effect", {}, "c1"), reply("done")], tools=[side_effect])
    session = await core.session("s").open()
    await session.turn("go").turn_id("turn-7").run()
    assert keys == ["s:turn-7:1:0:tool_batch:2:child:0:c1:attempt:1"]


async def test_session_state_survives_reopen_on_same_store(make_core: Any) -> None:
    store = MemoryStore()
    core = make_core([reply("one"), reply("two")], store=store)
    s1 = await core.session("s").open()
    await s1.turn("a").run()
    await s1.close()
    s2 = await core.session("s").open()
    await s2.turn("b").run()
    view = await s2.read_view()
    assert [m.text for m in view.messages] == ["a", "one", "b", "two"]
    assert view.turn_index == 2


async def test_other_writer_commit_is_seen_before_next_turn(make_core: Any) -> None:
    store = MemoryStore()
    core = make_core([reply("from A"), reply("from B"), reply("from A again")], store=store)
    a = await core.session("s").open()
    b = await core.session("s").open()
    await a.turn("a1").run()
    await b.turn("b1").run()
    result = await a.turn("a2").run()
    assert result.head_revision == 3
    view = await a.read_view()
    assert [m.text for m in view.messages] == ["a1", "from A", "b1", "from B", "a2", "from A again"]


async def test_tool_call_parts_are_what_the_model_sent(make_core: Any) -> None:
    provider = ScriptedProvider([tool_call("missing", {"x": 1}, "c9"), reply("k")])
    core = make_core(provider)
    session = await core.session("s").open()
    await session.turn("go").run()
    assistant = provider.requests[1].messages[1]
    assert assistant.tool_calls == (
        ToolCallPart(id="c9", name="missing", arguments={"x": 1}, raw_arguments='{"x":1}'),
    )


async def test_provider_retry_policy_is_used(make_core: Any, fake_sleep: Any) -> None:
    from lash.providers import RetryPolicy

    provider = ScriptedProvider([provider_error("http", retryable=True) for _ in range(5)])
    provider.retry = RetryPolicy(max_attempts=2)  # type: ignore[attr-defined]
    core = make_core(provider, sleep=fake_sleep)
    session = await core.session("s").open()
    result = await session.turn("hi").run()
    assert len(result.llm_calls[0].attempts) == 2
    assert len(provider.requests) == 2
