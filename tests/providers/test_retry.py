"""The retry ladder around one logical model call, with an injected clock and sleep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from lash.clock import ManualClock
from lash.providers.base import ProviderError
from lash.providers.openai_chat import ChatCompat
from lash.providers.retry import AttemptReset, LadderEvent, RetryPolicy, RetryScheduled
from lash.providers.retry import complete_with_retry as ladder
from lash.testing.wire import ScriptedTransport, WireScript
from lash.types import (
    LlmRequest,
    LlmResponse,
    ProviderFailure,
    ResponseCompleted,
    StreamEvent,
    TextDelta,
    TextPart,
    TokenUsage,
)

from .helpers import client_for, make, request


def _script(name: str, *timeline: dict[str, Any]) -> WireScript:
    return WireScript.from_json(
        json.dumps(
            {
                "schema": "lash.provider-wire-script.v1",
                "name": name,
                "provider_kind": "openai-compatible",
                "endpoint": {"method": "POST", "path": "/chat/completions"},
                "request_match": {"headers": {"authorization": {"present": True}}},
                "timeline": list(timeline),
            }
        )
    )


def _error(status: int, body: dict[str, Any], **headers: str) -> WireScript:
    pairs = [{"name": "content-type", "value": "application/json"}]
    pairs += [{"name": k.replace("_", "-"), "value": v} for k, v in headers.items()]
    return _script(
        f"http-{status}",
        {
            "at": 0,
            "event": "http_error",
            "status": status,
            "headers": pairs,
            "body": json.dumps(body),
        },
    )


def _ok(text: str = "done") -> WireScript:
    chunk = {"choices": [{"delta": {"content": text}, "finish_reason": "stop"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}
    return _script(
        "ok",
        {
            "at": 0,
            "event": "response_start",
            "status": 200,
            "headers": [{"name": "content-type", "value": "text/event-stream"}],
        },
        {"at": 1, "event": "sse", "data": json.dumps(chunk)},
        {"at": 2, "event": "sse", "data": json.dumps(usage)},
        {"at": 3, "event": "end"},
    )


def _partial_then_disconnect() -> WireScript:
    return _script(
        "partial",
        {
            "at": 0,
            "event": "response_start",
            "status": 200,
            "headers": [{"name": "content-type", "value": "text/event-stream"}],
        },
        {"at": 1, "event": "sse", "data": json.dumps({"choices": [{"delta": {"content": "par"}}]})},
        {"at": 2, "event": "disconnect", "message": "gone"},
    )


RATE = {"error": {"message": "Rate limit reached", "code": "rate_limit_exceeded"}}
HARD = {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}
BUSY = {"error": {"message": "upstream overloaded", "code": "server_error"}}


class Harness:
    """Runs the ladder over scripts with a manual clock; sleeping advances the clock."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.sleeps: list[float] = []
        self.events: list[LadderEvent] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.advance(int(seconds * 1000))

    async def on_event(self, event: LadderEvent) -> None:
        self.events.append(event)

    async def run(
        self, *scripts: WireScript, policy: RetryPolicy | None = None
    ) -> tuple[Any, Any, ScriptedTransport]:
        transport = ScriptedTransport(*scripts)
        provider = make(
            "openai-compatible",
            http_client=client_for("openai-compatible", transport),
            compat=ChatCompat(stream=True),
        )
        try:
            result, record = await ladder(
                provider,
                request(),
                policy=policy or RetryPolicy(),
                clock=self.clock,
                sleep=self.sleep,
                on_event=self.on_event,
                call_id="call-1",
            )
        finally:
            await provider.aclose()
        return result, record, transport


async def test_429_then_success_is_one_call_record_with_two_attempts() -> None:
    h = Harness()
    result, record, transport = await h.run(_error(429, RATE, retry_after="3"), _ok())
    transport.assert_exhausted()
    assert isinstance(result, LlmResponse) and result.text == "done"
    assert record.call_id == "call-1" and len(record.attempts) == 2
    first, second = record.attempts
    assert first.outcome == "failed" and first.error is not None
    assert first.error.http_status == 429 and first.error.kind == "quota"
    # a server-named wait inside the throttle budget does not consume an attempt
    assert first.retry_budget_consumed is False
    assert first.retry_decision is not None and first.retry_decision.scheduled
    assert first.retry_decision.delay_s == 3.0
    assert second.outcome == "completed" and second.started_at_ms - first.started_at_ms == 3000
    assert second.usage == TokenUsage(input_tokens=9, output_tokens=2)
    assert record.usage == second.usage
    assert h.sleeps == [3.0]
    scheduled = [e for e in h.events if isinstance(e, RetryScheduled)]
    assert [(e.wait_s, e.attempt) for e in scheduled] == [(3.0, 2)]
    assert not [e for e in h.events if isinstance(e, AttemptReset)]


async def test_429_without_retry_after_backs_off_and_consumes_an_attempt() -> None:
    h = Harness()
    result, record, _ = await h.run(_error(429, RATE), _ok())
    assert isinstance(result, LlmResponse)
    assert h.sleeps == [2.0]
    assert record.attempts[0].retry_budget_consumed is True


async def test_exhaustion_after_exactly_max_attempts() -> None:
    h = Harness()
    scripts = [_error(503, BUSY) for _ in range(4)]
    result, record, transport = await h.run(*scripts, _ok())
    assert isinstance(result, ProviderFailure) and result.http_status == 503
    assert len(record.attempts) == 4 and transport.remaining == 1
    assert h.sleeps == [2.0, 4.0, 8.0]
    last = record.attempts[-1].retry_decision
    assert last is not None and not last.scheduled and last.reason == "retry_budget_exhausted"


async def test_backoff_is_capped_and_max_attempts_is_respected() -> None:
    h = Harness()
    policy = RetryPolicy(max_attempts=6, base_delay_s=2.0, max_delay_s=5.0)
    result, record, _ = await h.run(*[_error(500, BUSY) for _ in range(6)], policy=policy)
    assert isinstance(result, ProviderFailure)
    assert len(record.attempts) == 6
    assert h.sleeps == [2.0, 4.0, 5.0, 5.0, 5.0]


async def test_hard_quota_is_never_retried() -> None:
    h = Harness()
    result, record, transport = await h.run(_error(429, HARD), _ok())
    assert isinstance(result, ProviderFailure) and result.hard_quota and not result.retryable
    assert len(record.attempts) == 1 and h.sleeps == [] and transport.remaining == 1
    decision = record.attempts[0].retry_decision
    assert decision is not None and decision.reason == "hard_quota" and not decision.scheduled


async def test_validation_failure_is_not_retried() -> None:
    h = Harness()
    body = {"error": {"message": "bad tools", "code": "invalid_request_error"}}
    result, record, _ = await h.run(_error(400, body), _ok())
    assert isinstance(result, ProviderFailure) and result.kind == "validation"
    assert len(record.attempts) == 1 and h.sleeps == []
    assert record.attempts[0].retry_decision is not None
    assert record.attempts[0].retry_decision.reason == "not_retryable"


async def test_throttle_budget_caps_free_waits() -> None:
    h = Harness()
    policy = RetryPolicy(throttle_budget_s=90.0)
    long_wait = _error(429, RATE, retry_after="60")
    result, record, _ = await h.run(
        long_wait, _error(429, RATE, retry_after="60"), _ok(), policy=policy
    )
    assert isinstance(result, LlmResponse)
    assert h.sleeps == [60.0, 60.0]
    assert [a.retry_budget_consumed for a in record.attempts] == [False, True, True]


async def test_retry_after_is_capped() -> None:
    h = Harness()
    result, _, _ = await h.run(_error(503, BUSY, retry_after="600"), _ok())
    assert isinstance(result, LlmResponse)
    assert h.sleeps == [60.0]


async def test_failure_after_output_retracts_the_attempt() -> None:
    h = Harness()
    result, record, _ = await h.run(_partial_then_disconnect(), _ok("whole"))
    assert isinstance(result, LlmResponse) and result.text == "whole"
    kinds = [type(e).__name__ for e in h.events]
    assert kinds == ["TextDelta", "AttemptReset", "RetryScheduled", "TextDelta"]
    assert record.attempts[0].protocol_position == "output_started"
    assert record.attempts[0].error is not None and record.attempts[0].error.kind == "stream"


# --- ladder mechanics with hand-written providers ---------------------------------------


class Fake:
    """A provider whose attempts are scripted in Python."""

    kind = "fake"

    def __init__(self, *attempts: Any) -> None:
        self.attempts = list(attempts)
        self.closed = 0
        self.started = 0

    async def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        self.started += 1
        step = self.attempts.pop(0)
        try:
            if isinstance(step, BaseException):
                raise step
            for event in step:
                if event == "hang":
                    await asyncio.Event().wait()
                yield event
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        return None


async def _ladder(provider: Fake, policy: RetryPolicy | None = None) -> tuple[Any, Any]:
    h = Harness()
    return await ladder(
        provider,
        request(),
        policy=policy or RetryPolicy(),
        clock=h.clock,
        sleep=h.sleep,
        on_event=h.on_event,
    )


DONE = ResponseCompleted(response=LlmResponse(parts=(TextPart(text="x"),)))


async def test_stream_is_closed_as_soon_as_the_response_completes() -> None:
    provider = Fake([TextDelta(text="x"), DONE, TextDelta(text="ignored")])
    result, record = await _ladder(provider)
    assert isinstance(result, LlmResponse)
    assert provider.closed == 1 and len(record.attempts) == 1


async def test_unclassified_adapter_error_becomes_a_non_retryable_failure() -> None:
    provider = Fake(KeyError("boom"), [DONE])
    result, record = await _ladder(provider)
    assert isinstance(result, ProviderFailure)
    assert result.kind == "unknown" and not result.retryable and "KeyError" in result.message
    assert provider.started == 1


async def test_stream_that_ends_without_a_response_is_retried() -> None:
    provider = Fake([TextDelta(text="x")], [DONE])
    result, record = await _ladder(provider)
    assert isinstance(result, LlmResponse)
    assert record.attempts[0].error is not None
    assert record.attempts[0].error.code == "stream_ended_without_response"


async def test_cancellation_propagates_and_closes_the_stream() -> None:
    provider = Fake([TextDelta(text="x"), "hang"])
    task = asyncio.ensure_future(_ladder(provider))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.closed == 1


async def test_provider_error_from_a_fake_is_classified_as_given() -> None:
    failure = ProviderFailure(kind="auth", message="no", retryable=False)
    provider = Fake(ProviderError(failure), [DONE])
    result, record = await _ladder(provider)
    assert result == failure and len(record.attempts) == 1


def test_policy_validation_and_presets() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="base_delay_s"):
        RetryPolicy(base_delay_s=-1.0)
    assert RetryPolicy.disabled().max_attempts == 1
    assert [RetryPolicy().backoff_s(i) for i in range(4)] == [2.0, 4.0, 8.0, 10.0]


async def test_disabled_policy_makes_one_attempt() -> None:
    provider = Fake(ProviderError(ProviderFailure(kind="timeout", message="t", retryable=True)))
    result, record = await _ladder(provider, RetryPolicy.disabled())
    assert isinstance(result, ProviderFailure) and len(record.attempts) == 1
