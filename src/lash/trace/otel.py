"""Export trace records as OpenTelemetry spans: ``lash.turn`` ⊃ ``lash.llm``, ``lash.tool``.

Start/complete record pairs become spans (keyed by ``graph_node_id`` and parented through
``parent_graph_node_id``); every other record becomes an instant span event on the span it
belongs to, or a zero-length ``lash.<type>`` span when it belongs to none. Needs the
``lash-runtime[otel]`` extra. ``flush`` is a no-op: the host owns its ``TracerProvider``.
"""

from __future__ import annotations

import datetime as _dt
import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider

from lash.trace.base import TraceRecord
from lash.types._base import encode

__all__ = ["OtelTraceSink"]

_STARTS = {
    "turn_started": "lash.turn",
    "llm_call_started": "lash.llm",
    "tool_call_started": "lash.tool",
}
_ENDS = {"turn_completed", "llm_call_completed", "llm_call_failed", "tool_call_completed"}
_INSTANT_NAMES = {"session_started": "lash.session", "prompt_built": "lash.prompt"}
_CONTEXT_FIELDS = (
    "run_id",
    "session_id",
    "turn_id",
    "graph_node_id",
    "parent_graph_node_id",
    "turn_index",
    "protocol_iteration",
    "effect_id",
    "llm_call_id",
)
_USAGE_KEYS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
)


def _ns(timestamp: str) -> int | None:
    try:
        return int(_dt.datetime.fromisoformat(timestamp).timestamp() * 1_000_000_000)
    except ValueError:
        return None


def _attributes(record: TraceRecord) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "lash.trace.schema_version": record.schema_version,
        "lash.trace.record_id": record.id,
        "lash.trace.event_type": record.type,
        "lash.trace.record_json": encode(record).decode("utf-8"),
    }
    for name in _CONTEXT_FIELDS:
        value = getattr(record.context, name)
        if value is not None:
            attrs[f"lash.context.{name}"] = value
    return attrs


def _usage_attributes(usage: Any) -> dict[str, Any]:
    if not isinstance(usage, dict):
        return {}
    return {f"lash.usage.{k}": usage[k] for k in _USAGE_KEYS if isinstance(usage.get(k), int)}


class OtelTraceSink:
    """A :class:`~lash.trace.TraceSink` writing spans to an OpenTelemetry tracer."""

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer: Tracer = otel_trace.get_tracer("lash", tracer_provider=tracer_provider)
        self._open: dict[str, Span] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_global_provider(cls) -> OtelTraceSink:
        """Use the process-wide tracer provider."""
        return cls()

    def append(self, record: TraceRecord) -> None:
        """Open, close or annotate a span for one record."""
        with self._lock:
            if record.type in _STARTS:
                self._start(record, _STARTS[record.type])
            elif record.type in _ENDS and record.context.graph_node_id in self._open:
                self._end(record)
            else:
                self._instant(record)

    def flush(self) -> None:
        """No-op: flush the host's tracer provider instead."""

    def _parent(self, record: TraceRecord) -> Span | None:
        parent_id = record.context.parent_graph_node_id
        return self._open.get(parent_id) if parent_id else None

    def _start(self, record: TraceRecord, name: str) -> None:
        parent = self._parent(record)
        ctx = otel_trace.set_span_in_context(parent) if parent is not None else None
        attrs = _attributes(record)
        if name == "lash.tool":
            attrs["lash.tool.name"] = str(record.payload.get("name", ""))
        if name == "lash.llm":
            request = record.payload.get("request")
            if isinstance(request, dict) and isinstance(request.get("model"), str):
                attrs["lash.llm.model"] = request["model"]
        span = self._tracer.start_span(
            name,
            context=ctx or otel_context.Context(),
            attributes=attrs,
            start_time=_ns(record.timestamp),
        )
        key = record.context.graph_node_id or record.id
        self._open[key] = span

    def _end(self, record: TraceRecord) -> None:
        key = record.context.graph_node_id or ""
        span = self._open.pop(key)
        payload = record.payload
        span.set_attribute("lash.trace.end_record_id", record.id)
        span.set_attribute("lash.trace.end_record_json", encode(record).decode("utf-8"))
        failed = False
        if record.type == "tool_call_completed":
            output = payload.get("output")
            status = output.get("status") if isinstance(output, dict) else None
            span.set_attribute("lash.tool.status", str(status or "unknown"))
            if isinstance(payload.get("duration_ms"), int):
                span.set_attribute("lash.tool.duration_ms", payload["duration_ms"])
            failed = status not in (None, "success")
        elif record.type == "llm_call_completed":
            span.set_attributes(_usage_attributes(payload.get("usage")))
        elif record.type == "llm_call_failed":
            failed = True
            span.set_attribute("lash.llm.error", str(payload.get("error")))
        elif record.type == "turn_completed":
            span.set_attribute("lash.turn.status", str(payload.get("status")))
            if payload.get("done_reason") is not None:
                span.set_attribute("lash.turn.done_reason", str(payload["done_reason"]))
            span.set_attributes(_usage_attributes(payload.get("usage")))
            failed = (
                payload.get("status") == "stopped" and payload.get("done_reason") != "cancelled"
            )
        if failed:
            span.set_status(Status(StatusCode.ERROR, record.type))
        span.end(end_time=_ns(record.timestamp))

    def _instant(self, record: TraceRecord) -> None:
        name = _INSTANT_NAMES.get(record.type, f"lash.{record.type}")
        attrs = _attributes(record)
        if record.type == "token_usage":
            attrs.update(_usage_attributes(record.payload.get("usage")))
        owner = self._open.get(record.context.graph_node_id or "") or self._parent(record)
        when = _ns(record.timestamp)
        if owner is not None:
            owner.add_event(name, attributes=attrs, timestamp=when)
            return
        span = self._tracer.start_span(
            name, context=otel_context.Context(), attributes=attrs, start_time=when
        )
        span.end(end_time=when)
