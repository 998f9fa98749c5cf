"""Shared helpers for the tool tests."""

from __future__ import annotations

from typing import Any

from lash.tools import Tool, ToolContext
from lash.types import ToolCallOutput, ToolCallPart


def make_ctx(attempt: int = 1, *, session_id: str = "s1", call_id: str = "call-1") -> ToolContext:
    return ToolContext(
        session_id=session_id,
        turn_id="t1",
        call_id=call_id,
        tool_name="tool",
        replay_key=f"lash-tool:{session_id}:{call_id}",
        attempt=attempt,
    )


def call(
    name: str, arguments: dict[str, Any] | None = None, call_id: str = "call-1"
) -> ToolCallPart:
    return ToolCallPart(id=call_id, name=name, arguments=arguments or {})


async def run(
    tool: Tool,
    arguments: dict[str, Any] | None = None,
    *,
    session_id: str = "s1",
    call_id: str = "call-1",
) -> ToolCallOutput:
    return await tool.invoke(make_ctx(session_id=session_id, call_id=call_id), arguments or {})
