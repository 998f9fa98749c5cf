"""One direct model completion outside the turn machine (for tools and plugins).

``llm_query``, model-backed summarisers and observers ask the model a single question; they
go through the same retry ladder as turns but never touch the session graph.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from lash.clock import Clock, SystemClock
from lash.providers.base import LlmProvider
from lash.providers.retry import LadderEvent, RetryPolicy, Sleep, complete_with_retry
from lash.types import (
    LlmRequest,
    LlmResponse,
    Message,
    ModelSpec,
    ProviderFailure,
    TextPart,
    TokenLedgerEntry,
)

__all__ = ["DirectCompletionError", "direct_completion", "usage_entry", "user_message"]


class DirectCompletionError(Exception):
    """The provider failed the completion (after the retry policy)."""

    def __init__(self, failure: ProviderFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


async def _ignore(event: LadderEvent) -> None:
    return None


async def direct_completion(
    provider: LlmProvider,
    model: ModelSpec,
    messages: Sequence[Message],
    *,
    system: str | None = None,
    retry: RetryPolicy | None = None,
    clock: Clock | None = None,
    sleep: Sleep | None = None,
) -> LlmResponse:
    """Ask ``model`` once (no tools); raise :class:`DirectCompletionError` on failure.

    The default retry policy is a single attempt: callers run inside a tool attempt or a
    host operation that has its own retry story.
    """
    request = LlmRequest(
        model=model.id,
        messages=tuple(messages),
        system=system,
        max_output_tokens=model.max_output_tokens,
        reasoning=model.reasoning,
        capabilities=model.capabilities,
    )
    outcome, _record = await complete_with_retry(
        provider,
        request,
        policy=retry or RetryPolicy.disabled(),
        clock=clock or SystemClock(),
        sleep=sleep or asyncio.sleep,
        on_event=_ignore,
    )
    if isinstance(outcome, ProviderFailure):
        raise DirectCompletionError(outcome)
    return outcome


def usage_entry(
    source: str, model: ModelSpec, response: LlmResponse
) -> tuple[TokenLedgerEntry, ...]:
    """The ledger entry for one response (empty when the provider reported no usage)."""
    if response.usage is None or response.usage.is_zero():
        return ()
    return (TokenLedgerEntry(source=source, model=model.id, usage=response.usage),)


def user_message(message_id: str, text: str) -> Message:
    """A one-part user message."""
    return Message(id=message_id, role="user", parts=(TextPart(text=text),))
