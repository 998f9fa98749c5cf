"""Tracing: versioned trace records, sinks and the HTML viewer.

``OtelTraceSink`` loads lazily: it needs the ``lash-runtime[otel]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lash.trace.base import TRACE_SCHEMA_VERSION, TraceContext, Tracer, TraceRecord, TraceSink
from lash.trace.jsonl import JsonlTraceSink
from lash.trace.tee import TeeTraceSink

if TYPE_CHECKING:
    from lash.trace.otel import OtelTraceSink

__all__ = [
    "TRACE_SCHEMA_VERSION",
    "JsonlTraceSink",
    "OtelTraceSink",
    "TeeTraceSink",
    "TraceContext",
    "TraceRecord",
    "TraceSink",
    "Tracer",
]


def __getattr__(name: str) -> Any:
    if name == "OtelTraceSink":
        try:
            from lash.trace.otel import OtelTraceSink
        except ImportError as err:
            raise ImportError(
                f"OtelTraceSink needs OpenTelemetry ({err.name} is missing): "
                "pip install 'lash-runtime[otel]'"
            ) from err
        return OtelTraceSink
    raise AttributeError(f"module 'lash.trace' has no attribute {name!r}")
