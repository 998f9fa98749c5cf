"""The Standard protocol: the model drives tools through native function calling.

One iteration is one model call. Prose with no tool calls is the answer (after a
``before_completion`` checkpoint, so queued input or plugins can still intervene); tool calls
run as one batch, their results go back to the model after one ``after_work`` checkpoint, and
the loop repeats until the model answers, a tool ends the turn, or the iteration cap is hit.

Response normalisation keeps the committed messages independent of how a provider chunked its
output: adjacent text parts are merged, and so are adjacent reasoning parts that carry no
replay payload. Live prose deltas are only produced here when the provider did *not* stream
them already, so a host never sees the same text twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lash.kernel.driver import (
    AdvanceIteration,
    AppendMessage,
    DriverAction,
    DriverView,
    EmitEvent,
    Finish,
    RecordIssue,
    StartCheckpoint,
    StartLlm,
    StartTools,
)
from lash.kernel.effects import ToolResult
from lash.types import (
    AssistantProseDelta,
    ErrorEvent,
    LlmResponse,
    Message,
    Part,
    ReasoningDeltaEvent,
    ReasoningPart,
    ResponsePart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    TurnIssue,
    TurnOutcome,
)

__all__ = [
    "EMPTY_RESPONSE_MESSAGE",
    "StandardDriver",
    "normalize_response_parts",
    "terminal_tool_value",
]

EMPTY_RESPONSE_MESSAGE = "Model returned no assistant text or tool calls."


def normalize_response_parts(parts: Sequence[ResponsePart]) -> tuple[ResponsePart, ...]:
    """Merge adjacent text parts, and adjacent replay-free reasoning parts.

    Empty text parts disappear in the merge. Reasoning parts with a replay payload are opaque
    provider state and are never merged.
    """
    out: list[ResponsePart] = []
    for part in parts:
        prev = out[-1] if out else None
        if isinstance(part, TextPart):
            if not part.text:
                continue
            if isinstance(prev, TextPart):
                out[-1] = TextPart(text=prev.text + part.text)
                continue
        elif isinstance(part, ReasoningPart) and part.replay is None:
            if isinstance(prev, ReasoningPart) and prev.replay is None:
                out[-1] = ReasoningPart(text=prev.text + part.text)
                continue
        out.append(part)
    return tuple(out)


def terminal_tool_value(result: ToolResult) -> tuple[bool, Any]:
    """``(True, value)`` when a *successful* output asks to end the turn with a tool value."""
    output = result.output
    if not output.ok or not output.control:
        return False, None
    terminal = output.control.get("terminal")
    if isinstance(terminal, dict) and terminal.get("kind") == "tool_value":
        return True, terminal.get("value")
    return False, None


def _last_is_tool_result(messages: Sequence[Message]) -> bool:
    if not messages:
        return False
    last = messages[-1]
    return any(isinstance(p, ToolResultPart) for p in last.parts)


class StandardDriver:
    """The Standard protocol driver (stateless; one instance may serve many machines)."""

    @property
    def protocol_id(self) -> str:
        """Recorded in snapshots."""
        return "standard"

    def prepare_iteration(self, view: DriverView) -> Sequence[DriverAction]:
        """Every iteration starts with exactly one model call."""
        return [StartLlm()]

    def on_llm_response(
        self, view: DriverView, response: LlmResponse, *, text_streamed: bool
    ) -> Sequence[DriverAction]:
        """Turn a model response into an answer, a tool batch, or an empty-response stop."""
        actions: list[DriverAction] = []
        if not text_streamed:
            # Live preview for providers that did not stream: one delta per non-empty part,
            # in the order the model produced them.
            for part in response.parts:
                if isinstance(part, TextPart) and part.text:
                    actions.append(EmitEvent(AssistantProseDelta(text=part.text)))
                elif isinstance(part, ReasoningPart) and part.text:
                    actions.append(EmitEvent(ReasoningDeltaEvent(text=part.text)))

        texts: list[TextPart] = []
        calls: list[ToolCallPart] = []
        # Reasoning keeps its position relative to tool calls: (index of the call it preceded).
        reasoning: list[tuple[int, ReasoningPart]] = []
        for part in normalize_response_parts(response.parts):
            if isinstance(part, TextPart):
                texts.append(part)
            elif isinstance(part, ToolCallPart):
                calls.append(part)
            else:
                text = part.text.strip()
                if not text and part.replay is None:
                    continue
                reasoning.append((len(calls), ReasoningPart(text=text, replay=part.replay)))

        text = "".join(p.text for p in texts)
        if not calls:
            if not text.strip() and not reasoning:
                if _last_is_tool_result(view.context_messages):
                    # A tool-only task may legitimately end with an empty answer.
                    actions.append(
                        StartCheckpoint(
                            kind="before_completion",
                            on_empty=TurnOutcome.assistant_message(""),
                        )
                    )
                    return actions
                actions.append(
                    RecordIssue(
                        TurnIssue(
                            kind="llm_provider",
                            code="empty_response",
                            message=EMPTY_RESPONSE_MESSAGE,
                            terminal_reason=response.terminal_reason,
                        )
                    )
                )
                actions.append(
                    EmitEvent(ErrorEvent(message=EMPTY_RESPONSE_MESSAGE, code="empty_response"))
                )
                actions.append(Finish(TurnOutcome.stopped("provider_error")))
                return actions
            parts: list[Part] = [p for _, p in reasoning]
            parts.extend(p for p in texts if p.text.strip())
            actions.append(AppendMessage(role="assistant", parts=tuple(parts)))
            actions.append(
                StartCheckpoint(
                    kind="before_completion",
                    on_empty=TurnOutcome.assistant_message(text if text.strip() else ""),
                )
            )
            return actions

        message_parts: list[Part] = list(texts)
        pending = iter(reasoning)
        next_reasoning = next(pending, None)
        for index, call in enumerate(calls):
            while next_reasoning is not None and next_reasoning[0] <= index:
                message_parts.append(next_reasoning[1])
                next_reasoning = next(pending, None)
            message_parts.append(call)
        while next_reasoning is not None:
            message_parts.append(next_reasoning[1])
            next_reasoning = next(pending, None)
        actions.append(AppendMessage(role="assistant", parts=tuple(message_parts)))
        actions.append(StartTools(calls=tuple(calls)))
        return actions

    def on_tool_results(
        self, view: DriverView, results: Sequence[ToolResult]
    ) -> Sequence[DriverAction]:
        """Feed results back; end on a terminal tool value or at the iteration cap."""
        actions: list[DriverAction] = [
            AppendMessage(role="tool", parts=(r.model_return,)) for r in results
        ]
        for result in results:
            terminal, value = terminal_tool_value(result)
            if terminal:
                # The live ToolValue event is the tool host's to emit (it sees the output
                # first); the machine only settles the outcome.
                actions.append(Finish(TurnOutcome.tool_value(result.call.name, value)))
                return actions
        actions.append(AdvanceIteration())
        limit = view.iteration_limit
        if limit is not None and view.protocol_iteration + 1 >= limit:
            assert view.max_turns is not None
            actions.append(
                AppendMessage(
                    role="system", parts=(TextPart(text=self.turn_limit_text(view.max_turns)),)
                )
            )
            actions.append(Finish(TurnOutcome.stopped("max_turns")))
            return actions
        actions.append(StartCheckpoint(kind="after_work", on_empty=None))
        return actions

    def turn_limit_text(self, max_turns: int) -> str:
        """The message the read view and the assembler recognise as a turn-limit stop."""
        return f"Turn limit reached ({max_turns}) before a final assistant response."
