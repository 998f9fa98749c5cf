"""Durable, versioned trace records and the sink seam the runtime writes them to.

Tracing is an observer: ``append`` must not block the turn and a failing sink never fails
it. Records carry a :class:`TraceContext` (session, turn, span ids) so viewers and OTel
exporters can nest turns → model calls → tool calls.
"""

from __future__ import annotations

import datetime as _dt
import logging
import uuid
from typing import Any, Protocol, runtime_checkable

import msgspec

from lash.types._base import Record, to_builtins

__all__ = ["TRACE_SCHEMA_VERSION", "TraceContext", "TraceRecord", "TraceSink", "Tracer"]

TRACE_SCHEMA_VERSION = 2

log = logging.getLogger(__name__)


class TraceContext(Record, frozen=True, kw_only=True):
    """Where a record belongs (every field optional)."""

    run_id: str | None = None
    session_id: str | None = None
    turn_id: str | None = None
    graph_node_id: str | None = None
    parent_graph_node_id: str | None = None
    turn_index: int | None = None
    protocol_iteration: int | None = None
    effect_id: int | None = None
    llm_call_id: str | None = None
    metadata: dict[str, Any] | None = None


class TraceRecord(Record, frozen=True, kw_only=True):
    """One trace line: ``{schema_version, id, timestamp, context, type, payload}``."""

    type: str
    context: TraceContext
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    schema_version: int = TRACE_SCHEMA_VERSION
    id: str = msgspec.field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: str = msgspec.field(
        default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
    )


@runtime_checkable
class TraceSink(Protocol):
    """Receives trace records."""

    def append(self, record: TraceRecord) -> None:
        """Record one event (must not block)."""
        ...

    def flush(self) -> None:
        """Make appended records durable."""
        ...


class Tracer:
    """Builds records for one turn and hands them to a sink, swallowing sink failures."""

    __slots__ = ("_base", "_sink")

    def __init__(self, sink: TraceSink | None, base: TraceContext) -> None:
        self._sink = sink
        self._base = base

    @property
    def enabled(self) -> bool:
        """Whether a sink is attached."""
        return self._sink is not None

    def emit(self, kind: str, payload: dict[str, Any] | None = None, **context: Any) -> None:
        """Append one record; ``context`` overrides fields of the base context."""
        if self._sink is None:
            return
        try:
            ctx = msgspec.structs.replace(self._base, **context) if context else self._base
            record = TraceRecord(type=kind, context=ctx, payload=to_builtins(payload or {}))
            self._sink.append(record)
        except Exception:
            log.exception("trace sink failed; the turn goes on")
