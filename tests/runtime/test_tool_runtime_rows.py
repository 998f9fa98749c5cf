"""Spec rows of processes-tools §5.7 ("runtime:"): how tool attempts cross the effect host,
serial hosts, opaque direct completions, result projection and cancellation of running calls.
"""

from __future__ import annotations

import asyncio
from typing import Any

import lash
from lash.plugins import LlmTools
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.testing.effect_hosts import RecordingEffectHost
from lash.types import ToolCallOutput, ToolCallPart, ToolResultPart

WAIT_S = 5.0


def _core(
    provider: ScriptedProvider,
    tools: list[Any],
    *,
    host: lash.InlineEffectHost | None = None,
    plugins: list[Any] | None = None,
) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(host or lash.InlineEffectHost())
        .tools(tools)
        .plugins(plugins or [])
        .build()
    )


def _concurrency_probe() -> tuple[Any, list[int]]:
    peaks: list[int] = []
    running = 0

    @lash.tool
    async def step(ctx: lash.ToolContext, n: int) -> int:
        """Yields a few times while it runs, recording how many steps overlap."""
        nonlocal running
        running += 1
        peaks.append(running)
        for _ in range(5):
            await asyncio.sleep(0)
        running -= 1
        return n

    return step, peaks


async def test_tool_attempt_effect_crosses_controller_per_child_attempt_and_runs_local_tools() -> (
    None
):
    ran: list[str] = []

    @lash.tool
    async def local(ctx: lash.ToolContext, tag: str) -> str:
        """Runs in-process."""
        ran.append(tag)
        return tag

    host = RecordingEffectHost()
    batch = {"tool_calls": [{"tool": "local", "parameters": {"tag": "b0"}}]}
    provider = ScriptedProvider(
        [
            [
                tool_call("local", {"tag": "a"}, "c1"),
                tool_call("local", {"tag": "b"}, "c2"),
                tool_call("batch", batch, "c3"),
            ],
            reply("done"),
        ]
    )
    result = await _core(provider, [local], host=host).session("s").open()
    done = await result.turn("go").run()
    assert sorted(ran) == ["a", "b", "b0"]
    attempts = [e.replay_key for e in host.effects if e.kind == "tool_attempt"]
    kinds = [e.kind for e in host.effects]
    assert kinds.count("llm_call") == 2
    # one tool_attempt effect per child call (the batch tool itself is not an attempt; each of
    # its children is), each with its own replay key naming the child
    assert len(attempts) == len(set(attempts)) == 3
    assert any(":child:0:c1" in k for k in attempts)
    assert any(":child:1:c2" in k for k in attempts)
    assert any("c3:00" in k for k in attempts)
    assert [c.status for c in done.tool_calls] == ["success"] * 3


async def test_tool_batch_serializes_child_attempts_when_controller_disallows_concurrency() -> None:
    step, peaks = _concurrency_probe()
    batch = {"tool_calls": [{"tool": "step", "parameters": {"n": n}} for n in (3, 4)]}
    calls = [
        tool_call("step", {"n": 1}, "c1"),
        tool_call("step", {"n": 2}, "c2"),
        tool_call("batch", batch, "c3"),
    ]
    host = RecordingEffectHost(concurrent=False)
    provider = ScriptedProvider([calls, reply("done")])
    session = await _core(provider, [step], host=host).session("s").open()
    result = await asyncio.wait_for(session.turn("go").run(), WAIT_S)
    assert max(peaks) == 1 and len(peaks) == 4
    assert [c.output for c in result.tool_calls][:2] == [1, 2]
    assert [r["result"] for r in result.tool_calls[2].output["results"]] == [3, 4]
    # the same calls overlap on a host that allows concurrency
    step, peaks = _concurrency_probe()
    provider = ScriptedProvider([calls, reply("done")])
    session = await _core(provider, [step], host=RecordingEffectHost()).session("s").open()
    await asyncio.wait_for(session.turn("go").run(), WAIT_S)
    assert max(peaks) > 1


async def test_tool_direct_completion_is_opaque_inside_scoped_attempt() -> None:
    side = ScriptedProvider([reply("Paris")], model="side")
    provider = ScriptedProvider(
        [tool_call("llm_query", {"prompt": "Capital of France?"}, "c1"), reply("It is Paris.")]
    )
    host = RecordingEffectHost()
    plugins = [lambda: LlmTools(side, "side")]
    session = await _core(provider, [], host=host, plugins=plugins).session("s").open()
    result = await session.turn("ask").run()
    assert result.tool_calls[0].output == "Paris"
    assert len(side.requests) == 1
    # the direct completion ran inside the tool attempt: no effect of its own crossed the host
    assert [e.kind for e in host.effects] == ["llm_call", "tool_attempt", "llm_call"]


class Shorten(lash.Plugin):
    """Owns the model's view of ``big``'s results."""

    id = "shorten"

    def project_tool_output(
        self, call: ToolCallPart, output: ToolCallOutput
    ) -> ToolResultPart | None:
        if call.name != "big":
            return None
        return ToolResultPart(tool_call_id=call.id, name=call.name, content="[summary]")


async def test_tool_result_projector_only_changes_model_observation() -> None:
    @lash.tool
    async def big(ctx: lash.ToolContext) -> str:
        """A large result."""
        return "y" * 10_000

    provider = ScriptedProvider([tool_call("big", {}, "c1"), reply("ok")])
    session = await _core(provider, [big], plugins=[Shorten]).session("s").open()
    events: list[lash.TurnActivity] = []

    async def sink(activity: lash.TurnActivity) -> None:
        events.append(activity)

    result = await session.turn("go").on_event(sink).run()
    assert result.tool_calls[0].output == "y" * 10_000  # the canonical record keeps it all
    completed = [e.event for e in events if e.type == "tool_call_completed"]
    assert completed[0].output.payload == "y" * 10_000
    model_view = [
        p for m in provider.requests[1].messages for p in m.parts if isinstance(p, ToolResultPart)
    ]
    assert [p.content for p in model_view] == ["[summary]"]


async def test_standard_runtime_cancels_in_flight_tool_calls_when_token_fires() -> None:
    started = asyncio.Event()
    observed: list[str] = []
    count = 0

    @lash.tool
    async def wait_forever(ctx: lash.ToolContext, tag: str) -> str:
        """Runs until cancelled."""
        nonlocal count
        count += 1
        if count == 2:
            started.set()
        await ctx.cancelled.wait()
        observed.append(tag)
        return "stopped"

    provider = ScriptedProvider(
        [
            [
                tool_call("wait_forever", {"tag": "a"}, "c1"),
                tool_call("wait_forever", {"tag": "b"}, "c2"),
            ],
            reply("unused"),
        ]
    )
    session = await _core(provider, [wait_forever]).session("s").open()
    turn = asyncio.ensure_future(session.turn("go").run())
    await asyncio.wait_for(started.wait(), WAIT_S)
    assert session.cancel_running_turns("stop") == 1
    result = await asyncio.wait_for(turn, WAIT_S)
    assert result.outcome.reason == "cancelled"
    assert sorted(observed) == ["a", "b"]  # both in-flight calls saw the cancellation
    assert len(provider.requests) == 1
