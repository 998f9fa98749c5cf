"""A deterministic model for tests and demos: each step is one model attempt.

``ScriptedProvider([reply("hi")])`` answers the first request with "hi", streamed in deltas
like a real provider. A step is a :func:`reply`, a :func:`tool_call`, a list of tool calls
(parallel calls), a :func:`provider_error`, a :func:`stall` (hangs until cancelled), or a
callable that receives the request and returns one of those. ``requests`` records every
request received, so tests can assert what the model saw.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from lash.providers.base import ProviderError
from lash.types import (
    ExecutionEvidence,
    LlmRequest,
    LlmResponse,
    ProviderFailure,
    ProviderFailureKind,
    ReasoningDelta,
    ReasoningPart,
    ResponseCompleted,
    ResponsePart,
    StreamEvent,
    TerminalReason,
    TextDelta,
    TextPart,
    TokenUsage,
    ToolCallDelta,
    ToolCallPart,
)
from lash.types._base import Record, encode

__all__ = [
    "ScriptStep",
    "ScriptedProvider",
    "ScriptedReply",
    "ScriptedStall",
    "ScriptedToolCall",
    "ScriptedError",
    "provider_error",
    "reply",
    "stall",
    "tool_call",
]


class ScriptedReply(Record, frozen=True, kw_only=True):
    """Assistant prose (optionally with reasoning) ending the attempt normally."""

    text: str
    reasoning: str | None = None
    usage: TokenUsage | None = None
    terminal_reason: TerminalReason = "stop"


class ScriptedToolCall(Record, frozen=True, kw_only=True):
    """One tool call; a list of these in one step is a parallel call."""

    name: str
    arguments: dict[str, Any]
    call_id: str | None = None
    raw_arguments: str | None = None
    text: str = ""
    usage: TokenUsage | None = None


class ScriptedError(Record, frozen=True, kw_only=True):
    """A failed attempt, optionally after streaming some text."""

    failure: ProviderFailure
    partial_text: str = ""


class ScriptedStall(Record, frozen=True, kw_only=True):
    """Stream ``partial_text`` then hang until cancelled (for cancellation tests)."""

    partial_text: str = ""


StepValue = (
    ScriptedReply | ScriptedToolCall | list[ScriptedToolCall] | ScriptedError | ScriptedStall
)
ScriptStep = StepValue | Callable[[LlmRequest], StepValue]


def reply(
    text: str,
    *,
    reasoning: str | None = None,
    usage: TokenUsage | None = None,
    terminal_reason: TerminalReason = "stop",
) -> ScriptedReply:
    """The model answers with ``text``."""
    return ScriptedReply(
        text=text, reasoning=reasoning, usage=usage, terminal_reason=terminal_reason
    )


def tool_call(
    name: str,
    arguments: dict[str, Any] | None = None,
    call_id: str | None = None,
    *,
    raw_arguments: str | None = None,
    text: str = "",
    usage: TokenUsage | None = None,
) -> ScriptedToolCall:
    """The model calls ``name`` with ``arguments`` (``raw_arguments`` overrides the wire JSON,
    e.g. to send malformed JSON)."""
    return ScriptedToolCall(
        name=name,
        arguments=arguments or {},
        call_id=call_id,
        raw_arguments=raw_arguments,
        text=text,
        usage=usage,
    )


def provider_error(
    kind: ProviderFailureKind = "http",
    *,
    retryable: bool = False,
    message: str | None = None,
    code: str | None = None,
    http_status: int | None = None,
    retry_after_s: float | None = None,
    hard_quota: bool = False,
    terminal_reason: TerminalReason = "provider_error",
    partial_text: str = "",
) -> ScriptedError:
    """The attempt fails with a classified provider failure."""
    return ScriptedError(
        failure=ProviderFailure(
            kind=kind,
            message=message or f"scripted {kind} failure",
            retryable=retryable,
            code=code,
            http_status=http_status,
            retry_after_s=retry_after_s,
            hard_quota=hard_quota,
            terminal_reason=terminal_reason,
        ),
        partial_text=partial_text,
    )


def stall(partial_text: str = "") -> ScriptedStall:
    """The attempt streams ``partial_text`` and then never finishes."""
    return ScriptedStall(partial_text=partial_text)


_DEFAULT_USAGE = TokenUsage(input_tokens=10, output_tokens=5)


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []


class ScriptedProvider:
    """A scripted :class:`~lash.providers.LlmProvider` (kind ``scripted``)."""

    def __init__(
        self,
        steps: Sequence[ScriptStep] = (),
        *,
        chunk_size: int = 8,
        default_usage: TokenUsage | None = _DEFAULT_USAGE,
        model: str | None = None,
        kind: str = "scripted",
    ) -> None:
        self._steps: list[ScriptStep] = list(steps)
        self._chunk_size = max(1, chunk_size)
        self._default_usage = default_usage
        self._model = model
        self._kind = kind
        self.requests: list[LlmRequest] = []
        self.closed = False

    @property
    def kind(self) -> str:
        """``scripted``."""
        return self._kind

    @property
    def remaining(self) -> int:
        """Steps not yet consumed."""
        return len(self._steps)

    def extend(self, steps: Sequence[ScriptStep]) -> None:
        """Append more steps."""
        self._steps.extend(steps)

    async def aclose(self) -> None:
        """Mark the provider closed."""
        self.closed = True

    def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        """Consume one step and stream it."""
        self.requests.append(request)
        if not self._steps:
            step: ScriptStep = ScriptedError(
                failure=ProviderFailure(
                    kind="validation",
                    message="ScriptedProvider has no step left for this request",
                    code="script_exhausted",
                )
            )
        else:
            step = self._steps.pop(0)
        value = step(request) if callable(step) else step
        return self._play(value, request)

    async def _play(self, step: StepValue, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        evidence = ExecutionEvidence(
            served_model=self._model or request.model,
            provider_response_id=f"resp_{uuid.uuid4().hex[:12]}",
        )
        if isinstance(step, ScriptedError):
            for chunk in _chunks(step.partial_text, self._chunk_size):
                yield TextDelta(text=chunk)
                await asyncio.sleep(0)
            raise ProviderError(step.failure)
        if isinstance(step, ScriptedStall):
            for chunk in _chunks(step.partial_text, self._chunk_size):
                yield TextDelta(text=chunk)
            await asyncio.Event().wait()
            return
        if isinstance(step, ScriptedReply):
            parts: list[ResponsePart] = []
            if step.reasoning:
                for chunk in _chunks(step.reasoning, self._chunk_size):
                    yield ReasoningDelta(text=chunk)
                parts.append(ReasoningPart(text=step.reasoning))
            for chunk in _chunks(step.text, self._chunk_size):
                yield TextDelta(text=chunk)
                await asyncio.sleep(0)
            if step.text:
                parts.append(TextPart(text=step.text))
            yield ResponseCompleted(
                response=LlmResponse(
                    parts=tuple(parts),
                    usage=step.usage or self._default_usage,
                    terminal_reason=step.terminal_reason,
                    evidence=evidence,
                )
            )
            return
        calls = step if isinstance(step, list) else [step]
        parts = []
        usage = None
        text = "".join(c.text for c in calls)
        for chunk in _chunks(text, self._chunk_size):
            yield TextDelta(text=chunk)
        if text:
            parts.append(TextPart(text=text))
        for index, call in enumerate(calls):
            call_id = call.call_id or f"call_{uuid.uuid4().hex[:12]}"
            raw = (
                call.raw_arguments
                if call.raw_arguments is not None
                else encode(call.arguments).decode()
            )
            yield ToolCallDelta(index=index, id=call_id, name=call.name, arguments=raw)
            parts.append(
                ToolCallPart(
                    id=call_id, name=call.name, arguments=dict(call.arguments), raw_arguments=raw
                )
            )
            usage = call.usage or usage
        yield ResponseCompleted(
            response=LlmResponse(
                parts=tuple(parts),
                usage=usage or self._default_usage,
                terminal_reason="tool_use",
                evidence=evidence,
            )
        )
