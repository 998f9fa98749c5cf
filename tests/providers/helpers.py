"""Shared helpers for provider tests: build adapters over wire scripts and drive one attempt."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2

from lash.providers.anthropic import AnthropicProvider
from lash.providers.base import LlmProvider, ProviderError
from lash.providers.gemini import GeminiProvider
from lash.providers.openai_chat import OpenAIChatProvider
from lash.providers.openai_responses import OpenAIResponsesProvider
from lash.testing.wire import ScriptedTransport, WireScript, check_expected, load_script
from lash.types import (
    LlmRequest,
    LlmResponse,
    Message,
    ProviderFailure,
    ResponseCompleted,
    StreamEvent,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)

FIXTURES = Path(os.environ.get("LASH_PROVIDER_FIXTURES", str(Path(__file__).parent / "fixtures")))
SCRIPTS = Path(__file__).parent / "scripts"
BASE = "http://wire.test"


def own(name: str) -> WireScript:
    """One of this directory's scripts."""
    return load_script(SCRIPTS / f"{name}.json")


@dataclass
class Outcome:
    """What one attempt produced."""

    response: LlmResponse | None = None
    failure: ProviderFailure | None = None
    events: list[StreamEvent] = field(default_factory=list)

    def expect(self, script: WireScript) -> None:
        """Assert the script's ``expected_provider`` block holds."""
        problems = check_expected(
            script.expected_provider or {},
            response=self.response,
            failure=self.failure,
            events=self.events,
        )
        assert not problems, "\n".join(problems)

    @property
    def ok(self) -> LlmResponse:
        assert self.response is not None, f"expected a response, got {self.failure}"
        return self.response

    @property
    def failed(self) -> ProviderFailure:
        assert self.failure is not None, f"expected a failure, got {self.response}"
        return self.failure


async def drive(provider: LlmProvider, request: LlmRequest) -> Outcome:
    """Run one attempt and collect its events, response or failure."""
    outcome = Outcome()
    try:
        async for event in provider.stream(request):
            outcome.events.append(event)
            if isinstance(event, ResponseCompleted):
                outcome.response = event.response
    except ProviderError as err:
        outcome.failure = err.failure
    return outcome


def client_for(kind: str, transport: ScriptedTransport) -> Any:
    """The HTTP client an adapter of ``kind`` takes (Anthropic's SDK requires httpx2)."""
    if kind == "anthropic":
        return httpx2.AsyncClient(transport=transport)
    return httpx.AsyncClient(transport=transport)


def make(kind: str, *, base_url: str = BASE, http_client: Any = None, **options: Any) -> Any:
    """An adapter of ``kind`` pointed at ``base_url``."""
    common: dict[str, Any] = {"api_key": "test-key", "base_url": base_url, **options}
    if http_client is not None:
        common["http_client"] = http_client
    if kind == "openai-compatible":
        return OpenAIChatProvider(**common)
    if kind == "openai":
        return OpenAIResponsesProvider(**common)
    if kind == "anthropic":
        return AnthropicProvider(**common)
    if kind == "google":
        return GeminiProvider(**common)
    raise AssertionError(f"unknown kind {kind}")


def user(text: str, id: str = "u1") -> Message:
    return Message(id=id, role="user", parts=(TextPart(text=text),))


def request(model: str = "test-model", *messages: Message, **options: Any) -> LlmRequest:
    options.setdefault("tools", (ToolSpec(name="lookup", description="Look something up."),))
    return LlmRequest(model=model, messages=messages or (user("hello"),), **options)


def tool_loop_history(call: ToolCallPart, *, text: str = "") -> tuple[Message, ...]:
    """user → assistant (optional prose + the call) → tool result."""
    parts: tuple[Any, ...] = ((TextPart(text=text),) if text else ()) + (call,)
    return (
        user("find x"),
        Message(id="a1", role="assistant", parts=parts),
        Message(
            id="t1",
            role="tool",
            parts=(ToolResultPart(tool_call_id=call.id, name=call.name, content="found x"),),
        ),
    )
