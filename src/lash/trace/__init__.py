"""Tracing: versioned trace records and sinks."""

from lash.trace.base import TRACE_SCHEMA_VERSION, TraceContext, Tracer, TraceRecord, TraceSink

__all__ = ["TRACE_SCHEMA_VERSION", "TraceContext", "TraceRecord", "TraceSink", "Tracer"]
