"""execute_tool_call: unknown tools, attempts, retry policy and delays, cancellation."""

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from lash.tools import ToolContext, ToolError, ToolRetryPolicy, execute_tool_call, tool
from lash.tools.dispatch import retry_delay_ms
from lash.types import ToolCallOutput, ToolSpec

from .helpers import call, make_ctx


class Recorder:
    """An injected sleep plus the contexts dispatch created."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.contexts: list[ToolContext] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def make_context(self, attempt: int) -> ToolContext:
        ctx = make_ctx(attempt)
        self.contexts.append(ctx)
        return ctx


def flaky(fail_times: int, *, retry: ToolRetryPolicy, error: ToolError | None = None) -> Any:
    attempts: list[int] = []

    @tool(name="flaky", retry=retry)
    async def f(ctx: ToolContext) -> str:
        attempts.append(ctx.attempt)
        if len(attempts) <= fail_times:
            raise error or ToolError("busy", code="busy", retryable=True)
        return f"ok after {ctx.attempt}"

    return f, attempts


async def dispatch(t: Any, rec: Recorder, **kwargs: Any) -> ToolCallOutput:
    return await execute_tool_call(
        t, call("flaky"), make_context=rec.make_context, sleep=rec.sleep, **kwargs
    )


async def test_unknown_tool_is_unavailable() -> None:
    rec = Recorder()
    out = await execute_tool_call(
        None, call("ghost"), make_context=rec.make_context, sleep=rec.sleep
    )
    assert out.status == "failure"
    assert out.error_code == "tool_unavailable"
    assert out.payload == "Tool 'ghost' is unavailable in this session"
    assert rec.contexts == []


async def test_default_retry_policy_never_retries_safe_failures() -> None:
    t, attempts = flaky(1, retry="never")
    rec = Recorder()
    out = await dispatch(t, rec)
    assert out.status == "failure" and out.error_code == "busy"
    assert out.attempts == 1
    assert attempts == [1] and rec.sleeps == []


async def test_safe_retry_policy_retries_safe_failure_and_stops_on_success() -> None:
    t, attempts = flaky(2, retry="safe")
    rec = Recorder()
    out = await dispatch(t, rec, max_attempts=5, base_delay_ms=100, max_delay_ms=10_000)
    assert out.status == "success" and out.payload == "ok after 3"
    assert out.attempts == 3
    assert attempts == [1, 2, 3]
    assert rec.sleeps == [0.1, 0.2]  # base × 2^k


async def test_exhaustion_reports_attempts_and_clears_retry_flags() -> None:
    t, attempts = flaky(10, retry="idempotent")
    rec = Recorder()
    out = await dispatch(t, rec, max_attempts=3, base_delay_ms=200, max_delay_ms=300)
    assert out.status == "failure" and out.error_code == "busy"
    assert out.attempts == 3
    assert out.retryable is False and out.retry_after_ms is None
    assert attempts == [1, 2, 3]
    assert rec.sleeps == [0.2, 0.3]  # 200, then 400 capped at 300


async def test_safe_retry_policy_marks_exhausted_after_final_attempt() -> None:
    t, attempts = flaky(10, retry="safe")
    rec = Recorder()
    out = await dispatch(t, rec, max_attempts=2, base_delay_ms=0)
    assert (out.status, out.error_code, out.attempts) == ("failure", "busy", 2)
    assert out.retryable is False  # exhausted: the final failure is no longer retryable
    assert attempts == [1, 2]


async def test_idempotent_retry_policy_uses_journaled_attempts_without_provider_replay_key() -> (
    None
):
    t, attempts = flaky(10, retry="idempotent")
    rec = Recorder()
    out = await dispatch(t, rec, max_attempts=3, base_delay_ms=0)
    assert (out.status, out.attempts) == ("failure", 3)
    assert attempts == [1, 2, 3]
    # every attempt is its own journaled unit: a distinct idempotency key per attempt
    assert len({c.idempotency_key for c in rec.contexts}) == 3


async def test_non_retryable_failure_is_not_retried_even_under_safe_policy() -> None:
    t, attempts = flaky(1, retry="safe", error=ToolError("bad input", code="bad"))
    rec = Recorder()
    out = await dispatch(t, rec)
    assert out.error_code == "bad" and out.attempts == 1
    assert attempts == [1]


async def test_requested_delay_wins_over_backoff_and_is_capped() -> None:
    t, _ = flaky(2, retry="safe", error=ToolError("slow down", code="rate", retry_after_ms=40))
    rec = Recorder()
    out = await dispatch(t, rec, base_delay_ms=1000)
    assert out.status == "success"
    assert rec.sleeps == [0.04, 0.04]
    assert retry_delay_ms(1, 9_000, base_delay_ms=1, max_delay_ms=5_000) == 5_000
    assert retry_delay_ms(4, None, base_delay_ms=10, max_delay_ms=0) == 80  # 0 = uncapped


async def test_tool_overrides_retry_limits() -> None:
    attempts: list[int] = []

    @tool(name="flaky", retry="safe", max_attempts=2, base_delay_ms=25, max_delay_ms=100)
    def f() -> str:
        attempts.append(1)
        raise ToolError("busy", retryable=True)

    rec = Recorder()
    out = await dispatch(f, rec, max_attempts=9, base_delay_ms=1000)
    assert out.attempts == 2 and len(attempts) == 2
    assert rec.sleeps == [0.025]


async def test_retry_context_has_stable_replay_key_across_attempts() -> None:
    t, _ = flaky(2, retry="safe")
    rec = Recorder()
    await dispatch(t, rec)
    assert [c.attempt for c in rec.contexts] == [1, 2, 3]
    assert {c.replay_key for c in rec.contexts} == {"lash-tool:s1:call-1"}
    assert len({c.idempotency_key for c in rec.contexts}) == 3


async def test_cancellation_stops_retry_immediately() -> None:
    started = asyncio.Event()
    attempts: list[int] = []

    @tool(name="flaky", retry="safe")
    async def f(ctx: ToolContext) -> str:
        attempts.append(ctx.attempt)
        started.set()
        await asyncio.sleep(3600)
        return "never"

    rec = Recorder()
    task = asyncio.create_task(dispatch(f, rec))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == [1] and rec.sleeps == []


async def test_cancellation_during_the_retry_sleep_propagates() -> None:
    t, attempts = flaky(5, retry="safe")

    async def cancelled_sleep(_: float) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await execute_tool_call(t, call("flaky"), make_context=make_ctx, sleep=cancelled_sleep)
    assert attempts == [1]


class RaisingTool:
    """A third-party tool that breaks the 'return, never raise' contract."""

    spec = ToolSpec(name="raw")
    retry_policy: ToolRetryPolicy = "never"

    def __init__(self, exc: BaseException | None, result: Any = None) -> None:
        self.exc = exc
        self.result = result

    async def invoke(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolCallOutput:
        if self.exc is not None:
            raise self.exc
        return self.result  # type: ignore[no-any-return]


async def test_exceptions_escaping_invoke_become_failures() -> None:
    rec = Recorder()
    out = await execute_tool_call(
        RaisingTool(RuntimeError("boom")),
        call("raw"),
        make_context=rec.make_context,
        sleep=rec.sleep,
    )
    assert out.error_code == "tool_error" and out.payload == "RuntimeError: boom"
    out = await execute_tool_call(
        RaisingTool(ToolError("nope", code="denied")),
        call("raw"),
        make_context=rec.make_context,
        sleep=rec.sleep,
    )
    assert out.error_code == "denied"
    out = await execute_tool_call(
        RaisingTool(None, result="not an output"),
        call("raw"),
        make_context=rec.make_context,
        sleep=rec.sleep,
    )
    assert out.error_code == "tool_error" and "ToolCallOutput" in out.payload
