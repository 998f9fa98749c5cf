"""OtelTraceSink: one span per turn, model call and tool call, nested turn ⊃ llm/tool."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from lash.trace import OtelTraceSink

from .helpers import traced_run


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_spans_nest_turn_over_llm_and_tool() -> None:
    provider, exporter = _provider()
    await traced_run(OtelTraceSink(provider), turns=2)
    spans = exporter.get_finished_spans()
    turns, llms, tools = (_named(spans, n) for n in ("lash.turn", "lash.llm", "lash.tool"))
    assert len(turns) == 2 and len(llms) == 4 and len(tools) == 2
    assert len(spans) == 8
    by_id = {t.context.span_id: t for t in turns}
    for child in llms + tools:
        assert child.parent is not None and child.parent.span_id in by_id
        parent = by_id[child.parent.span_id]
        assert child.context.trace_id == parent.context.trace_id
        assert parent.start_time is not None and child.start_time is not None
        assert parent.start_time <= child.start_time
        assert child.attributes is not None and parent.attributes is not None
        assert child.attributes["lash.context.turn_id"] == parent.attributes["lash.context.turn_id"]
    assert turns[0].context.trace_id != turns[1].context.trace_id
    for turn in turns:
        assert turn.parent is None
        assert turn.attributes is not None
        assert turn.attributes["lash.turn.status"] == "finished"
        assert turn.attributes["lash.trace.schema_version"] == 2
        assert turn.attributes["lash.context.session_id"] == "s1"
        assert str(turn.attributes["lash.trace.record_json"]).startswith("{")
    tool = tools[0]
    assert tool.attributes is not None
    assert tool.attributes["lash.tool.name"] == "echo"
    assert tool.attributes["lash.tool.status"] == "success"
    assert isinstance(tool.attributes["lash.tool.duration_ms"], int)
    assert tool.attributes["lash.context.graph_node_id"] == "tool:call-0"
    assert tool.status.status_code is not StatusCode.ERROR


async def test_token_usage_is_an_instant_event_inside_the_turn() -> None:
    provider, exporter = _provider()
    await traced_run(OtelTraceSink(provider))
    spans = exporter.get_finished_spans()
    (turn,) = _named(spans, "lash.turn")
    llms = _named(spans, "lash.llm")
    llm_ids = {s.attributes["lash.context.llm_call_id"] for s in llms if s.attributes}
    events = [e for e in turn.events if e.name == "lash.token_usage"]
    assert len(events) == 2
    assert {e.attributes["lash.context.llm_call_id"] for e in events if e.attributes} == llm_ids
    assert all(e.attributes and "lash.usage.output_tokens" in e.attributes for e in events)


def test_from_global_provider_is_a_sink() -> None:
    sink = OtelTraceSink.from_global_provider()
    sink.flush()
    assert hasattr(sink, "append")


def test_failures_and_records_outside_any_span() -> None:
    from lash.trace import TraceContext, TraceRecord

    provider, exporter = _provider()
    sink = OtelTraceSink(provider)
    turn = TraceContext(session_id="s", turn_id="t", graph_node_id="turn:s:t")
    tool = TraceContext(
        session_id="s", turn_id="t", graph_node_id="tool:c", parent_graph_node_id="turn:s:t"
    )
    sink.append(TraceRecord(type="session_started", context=TraceContext(session_id="s")))
    sink.append(TraceRecord(type="turn_started", context=turn))
    sink.append(TraceRecord(type="tool_call_started", context=tool, payload={"name": "boom"}))
    sink.append(
        TraceRecord(
            type="tool_call_completed",
            context=tool,
            payload={"name": "boom", "output": {"status": "failure"}, "duration_ms": 3},
        )
    )
    sink.append(TraceRecord(type="custom", context=turn, payload={"name": "note"}))
    sink.append(
        TraceRecord(
            type="turn_completed",
            context=turn,
            payload={"status": "stopped", "done_reason": "provider_error"},
        )
    )
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"lash.session", "lash.turn", "lash.tool"}
    assert spans["lash.tool"].status.status_code is StatusCode.ERROR
    assert spans["lash.tool"].attributes is not None
    assert spans["lash.tool"].attributes["lash.tool.status"] == "failure"
    assert spans["lash.turn"].status.status_code is StatusCode.ERROR
    assert [e.name for e in spans["lash.turn"].events] == ["lash.custom"]
    assert spans["lash.session"].parent is None
