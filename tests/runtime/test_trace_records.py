"""The runtime writes nested, versioned trace records for turns, model calls and tool calls."""

from __future__ import annotations

from typing import Any

import lash
from lash.testing import ScriptedProvider, reply, tool_call
from lash.trace import TRACE_SCHEMA_VERSION, TraceRecord


class ListSink:
    def __init__(self) -> None:
        self.records: list[TraceRecord] = []
        self.flushed = 0

    def append(self, record: TraceRecord) -> None:
        self.records.append(record)

    def flush(self) -> None:
        self.flushed += 1


class BrokenSink:
    def append(self, record: TraceRecord) -> None:
        raise OSError("disk gone")

    def flush(self) -> None:
        raise OSError("disk gone")


def _core(sink: Any, steps: list[Any], tools: list[Any]) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(ScriptedProvider(steps))
        .model(lash.ModelSpec("m"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools(tools)
        .trace(sink)
        .build()
    )


@lash.tool
async def echo(ctx: lash.ToolContext, text: str) -> str:
    """Echo."""
    return text


async def test_turn_llm_and_tool_records_nest() -> None:
    sink = ListSink()
    core = _core(sink, [tool_call("echo", {"text": "hi"}, "c1"), reply("done")], [echo])
    session = await core.session("s").open()
    result = await session.turn("go").turn_id("t1").run()
    kinds = [r.type for r in sink.records]
    assert kinds == [
        "turn_started",
        "llm_call_started",
        "llm_call_completed",
        "token_usage",
        "tool_call_started",
        "tool_call_completed",
        "llm_call_started",
        "llm_call_completed",
        "token_usage",
        "turn_completed",
    ]
    assert all(r.schema_version == TRACE_SCHEMA_VERSION for r in sink.records)
    turn_node = "turn:s:t1"
    assert sink.records[0].context.graph_node_id == turn_node
    llm = sink.records[1].context
    assert llm.parent_graph_node_id == turn_node and llm.graph_node_id == f"llm:{llm.llm_call_id}"
    tool = sink.records[4]
    assert tool.context.graph_node_id == "tool:c1" and tool.payload["name"] == "echo"
    done = sink.records[-1].payload
    assert done["status"] == "finished" and done["head_revision"] == result.head_revision
    await core.aclose()
    assert sink.flushed == 1


async def test_a_failing_sink_never_fails_the_turn() -> None:
    core = _core(BrokenSink(), [reply("fine")], [])
    session = await core.session("s").open()
    result = await session.turn("go").run()
    assert result.assistant_text == "fine"
    await core.aclose()
