"""OpenAI Agents SDK rows: ``manual`` (history kept by the caller) and ``sqlite``
(``SQLiteSession`` on a file), with a scripted ``Model`` and tracing disabled."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import warnings
from typing import Any

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from agents import Agent, Runner, SQLiteSession, function_tool, set_tracing_disabled  # noqa: E402
from agents.items import ModelResponse  # noqa: E402
from agents.models.interface import Model  # noqa: E402
from agents.usage import Usage  # noqa: E402
from openai.types.responses import (  # noqa: E402
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from workload import (  # noqa: E402
    ANSWER,
    PROMPT,
    TOOL_NAME,
    TurnRecorder,
    emit,
    lookup_impl,
    sqlite_logical_bytes,
)

set_tracing_disabled(True)


def _kind(item: Any) -> str | None:
    return item.get("type") if isinstance(item, dict) else getattr(item, "type", None)


class ScriptedModel(Model):
    """Tool call after the user's message, the answer after the tool's output."""

    def __init__(self) -> None:
        self.calls = 0

    async def get_response(
        self,
        system_instructions,
        input,
        model_settings,
        tools,
        output_schema,
        handoffs,
        tracing,
        **kw: Any,
    ) -> ModelResponse:
        self.calls += 1
        last = input[-1] if isinstance(input, list) else {"type": "message"}
        if _kind(last) == "function_call_output":
            output: list = [
                ResponseOutputMessage(
                    id=f"msg_{self.calls}",
                    type="message",
                    role="assistant",
                    status="completed",
                    content=[ResponseOutputText(type="output_text", text=ANSWER, annotations=[])],
                )
            ]
        else:
            output = [
                ResponseFunctionToolCall(
                    id=f"fc_{self.calls}",
                    call_id=f"call_{self.calls}",
                    type="function_call",
                    name=TOOL_NAME,
                    arguments='{"q": "x"}',
                    status="completed",
                )
            ]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kw: Any):
        raise NotImplementedError


@function_tool
def lookup(q: str) -> str:
    """Look something up."""
    return lookup_impl(q)


async def run(kind: str) -> None:
    durable = kind == "sqlite"
    rec = TurnRecorder(
        name="OpenAI Agents SDK + SQLiteSession"
        if durable
        else "OpenAI Agents SDK (manual history)",
        group="peer",
        durable=durable,
        notes="items appended per turn" if durable else "history passed in",
    )
    db = os.path.join(tempfile.mkdtemp(prefix="bench-oai-"), "s.sqlite")
    for s in range(rec.sessions):
        agent = Agent(name="bench", instructions="be brief", model=ScriptedModel(), tools=[lookup])
        session = SQLiteSession(f"s{s}", db) if durable else None
        history: list = []
        times = rec.new_session()
        for _ in range(rec.turns):
            start = time.perf_counter()
            if session is None:
                result = await Runner.run(agent, [*history, {"role": "user", "content": PROMPT}])
                history = result.to_input_list()
            else:
                await Runner.run(agent, PROMPT, session=session)
            times.append((time.perf_counter() - start) * 1000)
            if durable and s == 0:
                rec.bytes_series.append(sqlite_logical_bytes(db))
        if session is not None:
            session.close()
    if durable:
        rec.final_bytes = sqlite_logical_bytes(db)
    emit(rec.summary())


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1]))
