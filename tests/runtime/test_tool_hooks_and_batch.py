"""The ``batch`` tool and the per-call tool hooks."""

from __future__ import annotations

import asyncio
from typing import Any

import lash
from lash.runtime.plugins import ReplaceToolArgs, ShortCircuitTool, ToolCallContext
from lash.testing import ScriptedProvider, reply, tool_call
from lash.types import ToolCallOutput, ToolCallPart


def _barrier_tool(count: int) -> tuple[Any, list[str]]:
    seen: list[str] = []
    ready = asyncio.Event()

    @lash.tool
    async def fetch(ctx: lash.ToolContext, url: str) -> str:
        """Fetch a url (returns only once all batch items run at the same time)."""
        seen.append(url)
        if len(seen) >= count:
            ready.set()
        await asyncio.wait_for(ready.wait(), 5)
        return f"body of {url}"

    return fetch, seen


def _core(provider: ScriptedProvider, tools: list[Any], plugins: list[Any] = ()) -> lash.LashCore:  # type: ignore[assignment]
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools(tools)
        .plugins(plugins)
        .batch_tool()
        .build()
    )


async def test_turn_run_batch_tool_runs_every_call_concurrently_and_preserves_order() -> None:
    fetch, seen = _barrier_tool(2)
    items = [
        {"tool": "fetch", "parameters": {"url": "a"}},
        {"tool": "fetch", "parameters": {"url": "b"}},
        {"tool": "batch", "parameters": {"tool_calls": []}},
        {"tool": "nope", "parameters": {}},
    ]
    provider = ScriptedProvider([tool_call("batch", {"tool_calls": items}, "b1"), reply("ok")])
    core = _core(provider, [fetch])
    session = await core.session("s").open()
    events: list[lash.TurnActivity] = []

    async def sink(activity: lash.TurnActivity) -> None:
        events.append(activity)

    result = await session.turn("go").on_event(sink).run()
    assert sorted(seen) == ["a", "b"]
    assert [t.name for t in provider.requests[0].tools] == ["fetch", "batch"]
    payload = result.tool_calls[0].output
    assert [r["index"] for r in payload["results"]] == [0, 1, 2, 3]
    assert payload["results"][0] == {
        "index": 0,
        "tool": "fetch",
        "success": True,
        "duration_ms": payload["results"][0]["duration_ms"],
        "result": "body of a",
    }
    assert payload["results"][2]["error"] == "Tool 'batch' is not allowed inside batch"
    assert payload["results"][3]["error"] == "Tool 'nope' is unavailable in this session"
    assert set(payload) == {"results"}
    children = sorted(
        (e.event.call_id, e.event.parent_call_id)
        for e in events
        if e.type == "tool_call_started" and e.event.parent_call_id
    )
    assert children == [("b1:00", "b1"), ("b1:01", "b1")]


async def test_batch_over_25_calls_is_an_invalid_args_failure() -> None:
    ran: list[int] = []

    @lash.tool
    async def noop(ctx: lash.ToolContext) -> str:
        """Nothing."""
        ran.append(1)
        return "ok"

    items = [{"tool": "noop", "parameters": {}} for _ in range(26)]
    provider = ScriptedProvider([tool_call("batch", {"tool_calls": items}, "b"), reply("done")])
    session = await _core(provider, [noop]).session("s").open()
    result = await session.turn("go").run()
    record = result.tool_calls[0]
    assert (record.status, record.error_code) == ("failure", "invalid_tool_args")
    assert "tool_calls" in record.output and "at most 25 items" in record.output
    assert ran == []


class Hooks(lash.Plugin):
    id = "hooks"

    async def before_tool_call(self, ctx: ToolCallContext, call: ToolCallPart) -> Any:
        if call.name == "add" and call.arguments.get("a") == 0:
            return ReplaceToolArgs(arguments={"a": 40, "b": call.arguments["b"]})
        if call.name == "add" and call.arguments.get("a") == -1:
            return ShortCircuitTool(output=ToolCallOutput(status="success", payload=99))
        if call.name == "add" and call.arguments.get("a") == -2:
            raise RuntimeError("hook exploded")
        return None

    async def after_tool_call(
        self, ctx: ToolCallContext, call: ToolCallPart, output: ToolCallOutput
    ) -> ToolCallOutput | None:
        if output.ok and output.payload == 41:
            return ToolCallOutput(status="success", payload=42)
        return None


async def test_before_and_after_tool_hooks() -> None:
    ran: list[tuple[int, int]] = []

    @lash.tool
    async def add(ctx: lash.ToolContext, a: int, b: int) -> int:
        """Add."""
        ran.append((a, b))
        return a + b

    calls = [
        tool_call("add", {"a": 0, "b": 1}, "c1"),
        tool_call("add", {"a": -1, "b": 1}, "c2"),
        tool_call("add", {"a": -2, "b": 1}, "c3"),
        tool_call("add", {"a": 2, "b": 3}, "c4"),
    ]
    provider = ScriptedProvider([calls, reply("done")])
    session = await _core(provider, [add], [Hooks]).session("s").open()
    result = await session.turn("go").run()
    out = {c.call_id: (c.status, c.output, c.error_code) for c in result.tool_calls}
    assert out["c1"] == ("success", 42, None)  # replaced args (40+1), then replaced result
    assert out["c2"] == ("success", 99, None)  # short-circuited: the tool never ran
    assert out["c3"][0] == "failure" and out["c3"][2] == "before_tool_call_failed"
    assert out["c4"] == ("success", 5, None)
    assert sorted(ran) == [(2, 3), (40, 1)]
