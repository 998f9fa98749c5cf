"""The scripted model at lash's own model interface (``LlmProvider``).

Like the peers' fakes it answers in one piece: a tool call when the last message is a user
prompt, the 400-byte answer when the last message is the tool's result. No deltas are
streamed, so the figure is the runtime's cost, not the cost of chunking a fake stream.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

from workload import ANSWER, TOOL_NAME, lookup_impl

import lash
from lash.types import (
    LlmRequest,
    LlmResponse,
    ResponseCompleted,
    StreamEvent,
    TextPart,
    TokenUsage,
    ToolCallPart,
)

_USAGE = TokenUsage(input_tokens=10, output_tokens=5)


class BenchModel:
    """Deterministic model: tool call, then answer."""

    def __init__(self) -> None:
        self._ids = itertools.count()

    @property
    def kind(self) -> str:
        return "bench"

    async def aclose(self) -> None:
        return None

    def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        return self._play(request)

    async def _play(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        last = request.messages[-1] if request.messages else None
        if last is not None and last.role == "tool":
            response = LlmResponse(
                parts=(TextPart(text=ANSWER),), usage=_USAGE, terminal_reason="stop"
            )
        else:
            call_id = f"call_{next(self._ids)}"
            response = LlmResponse(
                parts=(
                    ToolCallPart(
                        id=call_id,
                        name=TOOL_NAME,
                        arguments={"q": "x"},
                        raw_arguments='{"q": "x"}',
                    ),
                ),
                usage=_USAGE,
                terminal_reason="tool_use",
            )
        yield ResponseCompleted(response=response)


@lash.tool
async def lookup(ctx: lash.ToolContext, q: str) -> str:
    """Look something up."""
    return lookup_impl(q)


MODEL = lash.ModelSpec("bench-model")
