"""Builders and a tiny scripted driver loop for kernel tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from lash.kernel import (
    Checkpoint,
    Done,
    Effect,
    Emit,
    LlmCall,
    MachineConfig,
    MachineSnapshot,
    Progress,
    ToolBatch,
    ToolResult,
    TurnMachine,
)
from lash.types import (
    AssistantProseDelta,
    ErrorEvent,
    Message,
    ReasoningDeltaEvent,
    TextPart,
    ToolCallOutput,
    ToolCallPart,
    ToolResultPart,
    decode,
    encode,
)

SESSION = "sess-1"
TURN = "turn-1"


def config(**overrides: Any) -> MachineConfig:
    values: dict[str, Any] = {
        "session_id": SESSION,
        "turn_id": TURN,
        "turn_index": 3,
        "agent_frame_id": "frame-0",
        "model": "test-model",
        "system_prompt": "You are a test.",
        "tools": (),
    }
    values.update(overrides)
    return MachineConfig(**values)


def user(text: str, id: str = "u1") -> Message:
    return Message(id=id, role="user", parts=(TextPart(text=text),))


def machine(
    text: str = "hello",
    *,
    history: Sequence[Message] = (),
    **overrides: Any,
) -> TurnMachine:
    return TurnMachine(config(**overrides), history, [user(text)])


def call(id: str, name: str = "read_file", **arguments: Any) -> ToolCallPart:
    return ToolCallPart(id=id, name=name, arguments=dict(arguments))


def ok_result(
    c: ToolCallPart, text: str = "ok", control: dict[str, Any] | None = None
) -> ToolResult:
    return ToolResult(
        call=c,
        output=ToolCallOutput(status="success", payload=text, control=control),
        model_return=ToolResultPart(tool_call_id=c.id, name=c.name, content=text),
        duration_ms=1,
    )


def failed_result(c: ToolCallPart, text: str, code: str = "tool_failed") -> ToolResult:
    return ToolResult(
        call=c,
        output=ToolCallOutput(status="failure", payload=text, error_code=code),
        model_return=ToolResultPart(tool_call_id=c.id, name=c.name, content=text, is_error=True),
        duration_ms=1,
    )


def step(effects: Sequence[Effect]) -> LlmCall | ToolBatch | Checkpoint | Done:
    """The last effect of a batch (the one that needs an answer, or Done)."""
    last = effects[-1]
    assert isinstance(last, LlmCall | ToolBatch | Checkpoint | Done), last
    return last


def only(effects: Iterable[Effect], kind: type[Any]) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def events(effects: Iterable[Effect], kind: type[Any]) -> list[Any]:
    return [e.event for e in effects if isinstance(e, Emit) and isinstance(e.event, kind)]


def prose(effects: Iterable[Effect]) -> str:
    return "".join(e.text for e in events(effects, AssistantProseDelta))


def reasoning(effects: Iterable[Effect]) -> str:
    return "".join(e.text for e in events(effects, ReasoningDeltaEvent))


def errors(effects: Iterable[Effect]) -> list[str]:
    return [e.message for e in events(effects, ErrorEvent)]


def progress(effects: Iterable[Effect]) -> list[Progress]:
    return only(effects, Progress)


def roundtrip(m: TurnMachine) -> TurnMachine:
    snap = decode(encode(m.snapshot()), type=MachineSnapshot)
    return TurnMachine.restore(snap)


def unanswered_calls(messages: Sequence[Message]) -> set[str]:
    """Ids of tool calls in ``messages`` that no later tool message answers."""
    pending: set[str] = set()
    for m in messages:
        for c in m.tool_calls:
            pending.add(c.id)
        if m.role == "tool" and m.tool_call_id is not None:
            pending.discard(m.tool_call_id)
    return pending
