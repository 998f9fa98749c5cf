"""pydantic-ai rows: ``mem`` (history kept in memory) and ``dbos`` (DBOSDurability on SQLite).

The model is a ``FunctionModel`` (pydantic-ai's own scripted-model interface). Under DBOS each
turn is a workflow whose input is the history so far, the pattern pydantic-ai documents.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import (  # noqa: E402
    ModelMessagesTypeAdapter,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel  # noqa: E402
from workload import (  # noqa: E402
    ANSWER,
    PROMPT,
    TOOL_NAME,
    TurnRecorder,
    emit,
    lookup_impl,
    sqlite_logical_bytes,
)


def scripted(messages: list, info: AgentInfo) -> ModelResponse:
    if any(isinstance(p, ToolReturnPart) for p in messages[-1].parts):
        return ModelResponse(parts=[TextPart(ANSWER)])
    return ModelResponse(parts=[ToolCallPart(TOOL_NAME, {"q": "x"})])


def make_agent(name: str, capabilities: list | None = None) -> Agent:
    agent = Agent(FunctionModel(scripted), name=name, capabilities=capabilities or [])

    @agent.tool_plain
    def lookup(q: str) -> str:
        """Look something up."""
        return lookup_impl(q)

    return agent


async def run_memory() -> None:
    rec = TurnRecorder(name="pydantic-ai (in-memory history)", group="peer", durable=False)
    agent = make_agent("bench")
    for _ in range(rec.sessions):
        history: list = []
        times = rec.new_session()
        for _ in range(rec.turns):
            start = time.perf_counter()
            result = await agent.run(PROMPT, message_history=history)
            history = result.all_messages()
            times.append((time.perf_counter() - start) * 1000)
    emit(rec.summary())


def run_dbos() -> None:
    from dbos import DBOS
    from pydantic_ai.durable_exec.dbos import DBOSDurability

    rec = TurnRecorder(
        name="pydantic-ai + DBOSDurability (SQLite)",
        group="peer",
        durable=True,
        notes="workflow per turn, history as workflow input, model calls as steps",
    )
    db = os.path.join(tempfile.mkdtemp(prefix="bench-pyd-dbos-"), "dbos.sqlite")
    DBOS(
        config={
            "name": "bench-pydantic-ai",
            "system_database_url": f"sqlite:///{db}",
            "run_admin_server": False,
            "enable_otlp": False,
        }
    )
    agent = make_agent("bench_dbos", capabilities=[DBOSDurability()])

    @DBOS.workflow()
    async def turn(prompt: str, history_json: bytes) -> bytes:
        history = ModelMessagesTypeAdapter.validate_json(history_json) if history_json else []
        result = await agent.run(prompt, message_history=history)
        return ModelMessagesTypeAdapter.dump_json(result.all_messages())

    DBOS.launch()

    async def drive() -> None:
        for s in range(rec.sessions):
            history = b""
            times = rec.new_session()
            for _ in range(rec.turns):
                start = time.perf_counter()
                history = await turn(PROMPT, history)
                times.append((time.perf_counter() - start) * 1000)
                if s == 0:
                    rec.bytes_series.append(sqlite_logical_bytes(db))

    asyncio.run(drive())
    rec.final_bytes = sqlite_logical_bytes(db)
    emit(rec.summary())
    DBOS.destroy()


if __name__ == "__main__":
    if sys.argv[1] == "mem":
        asyncio.run(run_memory())
    else:
        run_dbos()
