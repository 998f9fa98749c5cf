"""Shared formatting: tool lines, usage, JSON frames."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from lash.types import TokenUsage, TurnResult
from lash.types.events import ToolCallCompleted

__all__ = ["finish_frame", "frame", "tool_line", "tool_status", "usage_text"]

_STATUS = {"success": "ok", "failure": "error", "cancelled": "cancelled"}


def tool_status(event: ToolCallCompleted) -> str:
    """``ok``, ``error`` or ``cancelled``."""
    return _STATUS.get(str(event.output.status), str(event.output.status))


def tool_line(event: ToolCallCompleted) -> str:
    """``[tool] <runtime-name> · ok|error|cancelled · <duration>``."""
    return f"[tool] {event.name} · {tool_status(event)} · {event.duration_ms} ms"


def usage_text(usage: TokenUsage) -> str:
    """``in N · out M`` plus the cache and reasoning buckets when non-zero."""
    text = f"in {usage.input_tokens} · out {usage.output_tokens}"
    if usage.cache_read_input_tokens:
        text += f" · cache read {usage.cache_read_input_tokens}"
    if usage.cache_write_input_tokens:
        text += f" · cache write {usage.cache_write_input_tokens}"
    if usage.reasoning_output_tokens:
        text += f" · reasoning {usage.reasoning_output_tokens}"
    return text


def frame(kind: str, **fields: Any) -> str:
    """One LF-terminated JSON line of the ``--mode json`` stream."""
    body = {"type": kind, **{k: msgspec.to_builtins(v) for k, v in fields.items()}}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")) + "\n"


def finish_frame(stream_id: str, result: TurnResult) -> str:
    """The closing ``turn_finish`` line."""
    return frame(
        "turn_finish",
        stream_id=stream_id,
        ok=result.outcome.kind == "finished",
        cancelled=result.outcome.reason == "cancelled",
        assistant_text=result.assistant_text,
        outcome=result.outcome,
        usage=result.usage,
        children_usage=result.children_usage,
        errors=result.issues,
        execution=result.execution,
        tool_calls=result.tool_calls,
        session_id=result.session_id,
        turn_id=result.turn_id,
        head_revision=result.head_revision,
    )
