"""LangGraph rows: ``none`` (no checkpointer, history passed in) and ``sqlite`` (SqliteSaver,
``durability="sync"``), both on the prebuilt ReAct agent with a scripted chat model."""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
import uuid
import warnings
from typing import Any

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langgraph.prebuilt import create_react_agent  # noqa: E402
from workload import (  # noqa: E402
    ANSWER,
    PROMPT,
    TOOL_NAME,
    TurnRecorder,
    emit,
    lookup_impl,
    sqlite_logical_bytes,
)


class ScriptedChat(BaseChatModel):
    """Tool call after a human message, the answer after a tool message."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "bench-scripted"

    def bind_tools(self, tools: Any, **kw: Any) -> ScriptedChat:
        return self

    def _generate(self, messages: list, stop: Any = None, run_manager: Any = None, **kw: Any):
        self.calls += 1
        if isinstance(messages[-1], ToolMessage):
            msg = AIMessage(content=ANSWER, id=f"ai-{self.calls}")
        else:
            msg = AIMessage(
                content="",
                id=f"ai-{self.calls}",
                tool_calls=[{"id": f"call-{self.calls}", "name": TOOL_NAME, "args": {"q": "x"}}],
            )
        return ChatResult(generations=[ChatGeneration(message=msg)])


@tool
def lookup(q: str) -> str:
    """Look something up."""
    return lookup_impl(q)


def run(kind: str) -> None:
    durable = kind == "sqlite"
    rec = TurnRecorder(
        name="LangGraph + SqliteSaver (durability=sync)"
        if durable
        else "LangGraph (no checkpointer)",
        group="peer",
        durable=durable,
        notes="checkpoint per superstep plus pending writes" if durable else "history passed in",
    )
    total_bytes = 0
    for s in range(rec.sessions):
        saver = None
        conn = None
        db = os.path.join(tempfile.mkdtemp(prefix="bench-lg-"), "cp.sqlite")
        if durable:
            from langgraph.checkpoint.sqlite import SqliteSaver

            conn = sqlite3.connect(db, check_same_thread=False)
            saver = SqliteSaver(conn)
        graph = create_react_agent(ScriptedChat(), [lookup], checkpointer=saver)
        config = {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}
        history: list = []
        times = rec.new_session()
        for _ in range(rec.turns):
            start = time.perf_counter()
            if saver is None:
                out = graph.invoke({"messages": [*history, HumanMessage(PROMPT)]})
                history = out["messages"]
            else:
                graph.invoke({"messages": [HumanMessage(PROMPT)]}, config, durability="sync")
            times.append((time.perf_counter() - start) * 1000)
            if durable and s == 0:
                rec.bytes_series.append(sqlite_logical_bytes(db))
        if conn is not None:
            conn.close()
            total_bytes += sqlite_logical_bytes(db)
    if durable:
        rec.final_bytes = total_bytes
    emit(rec.summary())


if __name__ == "__main__":
    run(sys.argv[1])
