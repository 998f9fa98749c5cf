"""The retry ladder around one logical model call.

Defaults follow lash: 4 attempts, delays 2 s doubling to at most 10 s, a server Retry-After
honoured up to 60 s, and rate-limit waits that do not consume an attempt while a 90 s throttle
budget lasts (each such wait charges at least 1 s). Hard quota failures are never retried.
Every attempt is recorded; the clock and the sleep are injected so tests never sleep.

Each attempt is one unit (:class:`ModelAttempt`, what happened: a response or a failure, how
far the stream got, when): an optional ``run_attempt`` runs it as an effect, so a journaling
host records attempts one by one and replays them; the retry decision and the delay between
attempts are made outside them, from their recorded outcomes.

An attempt's stream is always closed (also on cancellation), a tool-call fragment counts as
output for the attempt's protocol position, and an exception an adapter failed to classify
becomes a non-retryable ``unknown`` failure instead of escaping the ladder.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import Literal

import msgspec

from lash.clock import Clock
from lash.providers.base import LlmProvider, ProviderError
from lash.types import (
    AttemptRecord,
    LlmCallRecord,
    LlmRequest,
    LlmResponse,
    NormalizedError,
    ProviderFailure,
    ReasoningDelta,
    ResponseCompleted,
    RetryDecision,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
)
from lash.types._base import Record

__all__ = [
    "AttemptReset",
    "ModelAttempt",
    "ModelAttemptRunner",
    "RetryPolicy",
    "RetryScheduled",
    "complete_with_retry",
]

_MAX_DIAGNOSTIC = 2000


class RetryPolicy(Record, frozen=True, kw_only=True):
    """How a logical model call retries."""

    max_attempts: int = 4
    base_delay_s: float = 2.0
    max_delay_s: float = 10.0
    max_retry_after_s: float = 60.0
    throttle_budget_s: float = 90.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("base_delay_s", "max_delay_s", "max_retry_after_s", "throttle_budget_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """One attempt, no waiting on rate limits."""
        return cls(max_attempts=1, throttle_budget_s=0.0)

    def backoff_s(self, retry_index: int) -> float:
        """Delay before retry number ``retry_index`` (0-based)."""
        return float(min(self.base_delay_s * (2**retry_index), self.max_delay_s))


class AttemptReset(Record, frozen=True, kw_only=True):
    """The attempt that was streaming failed; its partial output must be retracted."""

    attempt: int


class RetryScheduled(Record, frozen=True, kw_only=True):
    """Another attempt will run after ``wait_s``."""

    wait_s: float
    attempt: int
    max_attempts: int
    reason: str


LadderEvent = StreamEvent | AttemptReset | RetryScheduled
Sleep = Callable[[float], Awaitable[None]]

Position = Literal["no_response", "response_observed", "output_started", "terminal_observed"]


class ModelAttempt(Record, frozen=True, kw_only=True):
    """What one attempt of a model call came to: its response or its failure, how far its
    stream got, and when it ran. Plain data, so a journaling host can record it."""

    response: LlmResponse | None = None
    failure: ProviderFailure | None = None
    position: Position = "no_response"
    started_at_ms: int = 0
    duration_ms: int = 0


ModelAttemptRunner = Callable[[int, Callable[[], Awaitable[ModelAttempt]]], Awaitable[ModelAttempt]]
"""Runs attempt ``n`` (1-based) of a model call, e.g. as an effect of its own."""


async def _run_inline(ordinal: int, attempt: Callable[[], Awaitable[ModelAttempt]]) -> ModelAttempt:
    return await attempt()


def _unclassified(err: Exception) -> ProviderFailure:
    return ProviderFailure(
        kind="unknown",
        message=f"the provider raised an unclassified error: {type(err).__name__}: {err}",
        code="unclassified_provider_error",
        raw=repr(err),
    )


async def _closing_stream(
    provider: LlmProvider, request: LlmRequest
) -> AsyncGenerator[StreamEvent, None]:
    """The attempt's events, with the adapter's stream closed however the attempt ends."""
    stream = provider.stream(request)
    if hasattr(stream, "aclose"):
        async with aclosing(stream) as events:  # type: ignore[type-var]
            async for event in events:
                yield event
    else:
        async for event in stream:
            yield event


def _normalize(failure: ProviderFailure) -> NormalizedError:
    raw = failure.raw
    if raw is not None and len(raw) > _MAX_DIAGNOSTIC:
        raw = raw[:_MAX_DIAGNOSTIC] + "…"
    return NormalizedError(
        kind=failure.kind,
        message=failure.message[:_MAX_DIAGNOSTIC],
        code=failure.code,
        http_status=failure.http_status,
        retry_after_s=failure.retry_after_s,
        provider_request_id=failure.provider_request_id,
        raw=raw,
    )


async def complete_with_retry(
    provider: LlmProvider,
    request: LlmRequest,
    *,
    policy: RetryPolicy,
    clock: Clock,
    sleep: Sleep,
    on_event: Callable[[LadderEvent], Awaitable[None]],
    call_id: str | None = None,
    run_attempt: ModelAttemptRunner = _run_inline,
) -> tuple[LlmResponse | ProviderFailure, LlmCallRecord]:
    """Run the ladder; return the response (or the final failure) and the call record.

    ``run_attempt`` runs each attempt (default: right here); the retry decision and ``sleep``
    happen between attempts. Cancellation (``asyncio.CancelledError``) propagates; the caller
    records it.
    """
    call_id = call_id or uuid.uuid4().hex
    attempts: list[AttemptRecord] = []
    consumed = 0
    throttle_spent = 0.0
    ordinal = 0

    async def one_attempt() -> ModelAttempt:
        started = clock.now_ms()
        position: Position = "no_response"
        failure: ProviderFailure | None = None
        response: LlmResponse | None = None
        try:
            async with aclosing(_closing_stream(provider, request)) as events:
                async for event in events:
                    if position == "no_response":
                        position = "response_observed"
                    if isinstance(event, TextDelta | ReasoningDelta | ToolCallDelta):
                        position = "output_started"
                    if isinstance(event, ResponseCompleted):
                        position = "terminal_observed"
                        response = event.response
                        break
                    await on_event(event)
            if response is None:
                failure = ProviderFailure(
                    kind="stream",
                    message="the provider stream ended without a complete response",
                    retryable=True,
                    code="stream_ended_without_response",
                )
        except ProviderError as err:
            failure = err.failure
        except Exception as err:  # an adapter bug must not take the turn down uncontrolled
            failure = _unclassified(err)
        return ModelAttempt(
            response=response,
            failure=failure,
            position=position,
            started_at_ms=started,
            duration_ms=max(0, clock.now_ms() - started),
        )

    while True:
        ordinal += 1
        outcome = await run_attempt(ordinal, one_attempt)
        response, failure = outcome.response, outcome.failure
        started, duration, position = outcome.started_at_ms, outcome.duration_ms, outcome.position
        if response is not None:
            attempts.append(
                AttemptRecord(
                    ordinal=ordinal,
                    started_at_ms=started,
                    duration_ms=duration,
                    outcome="completed",
                    protocol_position=position,
                    evidence=response.evidence,
                    usage=response.usage,
                    retry_budget_consumed=True,
                )
            )
            return response, LlmCallRecord(
                call_id=call_id, attempts=tuple(attempts), model=request.model
            )
        assert failure is not None
        throttled = (
            failure.retryable
            and not failure.hard_quota
            and failure.kind == "quota"
            and failure.retry_after_s is not None
        )
        wait_s: float | None = None
        budget_consumed = True
        reason = failure.code or failure.kind
        if failure.retryable and not failure.hard_quota:
            if throttled:
                assert failure.retry_after_s is not None
                wait_s = min(failure.retry_after_s, policy.max_retry_after_s)
                charge = max(wait_s, 1.0)
                if throttle_spent + charge <= policy.throttle_budget_s:
                    throttle_spent += charge
                    budget_consumed = False
                else:
                    throttled = False
            if budget_consumed:
                consumed += 1
                if consumed < policy.max_attempts:
                    backoff = policy.backoff_s(consumed - 1)
                    if failure.retry_after_s is not None:
                        backoff = max(backoff, min(failure.retry_after_s, policy.max_retry_after_s))
                    wait_s = backoff
                else:
                    wait_s = None
        else:
            consumed += 1
        scheduled = wait_s is not None
        if not scheduled:
            reason = (
                "hard_quota"
                if failure.hard_quota
                else "not_retryable"
                if not failure.retryable
                else "retry_budget_exhausted"
            )
        attempts.append(
            AttemptRecord(
                ordinal=ordinal,
                started_at_ms=started,
                duration_ms=duration,
                outcome="failed",
                protocol_position=position,
                retry_budget_consumed=budget_consumed,
                retry_decision=RetryDecision(scheduled=scheduled, delay_s=wait_s, reason=reason),
                error=_normalize(failure),
            )
        )
        if wait_s is None:
            return failure, LlmCallRecord(
                call_id=call_id, attempts=tuple(attempts), model=request.model
            )
        if position != "no_response":
            await on_event(AttemptReset(attempt=ordinal))
        await on_event(
            RetryScheduled(
                wait_s=wait_s, attempt=ordinal + 1, max_attempts=policy.max_attempts, reason=reason
            )
        )
        await sleep(wait_s)


def replace_failure(failure: ProviderFailure, **changes: object) -> ProviderFailure:
    """A copy of ``failure`` with some fields changed."""
    return msgspec.structs.replace(failure, **changes)
