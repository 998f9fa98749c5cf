"""execute_tool_call's ``run_attempt``: each attempt crosses it as one unit with a
``ToolAttempt`` envelope, and the retry decision is made from what it returns, so a recorded
outcome (a journal's replay) stands in for running the attempt."""

from collections.abc import Awaitable, Callable
from typing import Any

from lash.tools import ToolContext, ToolError, execute_tool_call, pending, tool
from lash.tools.dispatch import ToolAttempt
from lash.types import ToolCallOutput

from .helpers import call, make_ctx


def _flaky(fail_times: int, ran: list[int]) -> Any:
    @tool(name="flaky", retry="safe", max_attempts=3, base_delay_ms=10)
    async def flaky(ctx: ToolContext) -> str:
        ran.append(ctx.attempt)
        if len(ran) <= fail_times:
            raise ToolError("busy", code="busy", retryable=True)
        return "done"

    return flaky


async def test_every_attempt_crosses_run_attempt_with_its_envelope_and_sleeps_between() -> None:
    ran: list[int] = []
    trail: list[str] = []

    async def run_attempt(
        attempt: ToolAttempt, execute: Callable[[], Awaitable[ToolCallOutput]]
    ) -> ToolCallOutput:
        trail.append(f"attempt {attempt.attempt}/{attempt.max_attempts} {attempt.call.id}")
        return await execute()

    async def sleep(seconds: float) -> None:
        trail.append(f"sleep {seconds}")

    out = await execute_tool_call(
        _flaky(2, ran), call("flaky"), make_context=make_ctx, sleep=sleep, run_attempt=run_attempt
    )
    assert (out.status, out.attempts) == ("success", 3)
    assert ran == [1, 2, 3]
    assert trail == [
        "attempt 1/3 call-1",
        "sleep 0.01",
        "attempt 2/3 call-1",
        "sleep 0.02",
        "attempt 3/3 call-1",
    ]


async def test_a_recorded_attempt_outcome_is_not_run_again_and_decides_the_retry() -> None:
    ran: list[int] = []
    recorded = ToolCallOutput(status="failure", payload="busy", error_code="busy", retryable=True)

    async def replaying(
        attempt: ToolAttempt, execute: Callable[[], Awaitable[ToolCallOutput]]
    ) -> ToolCallOutput:
        if attempt.attempt == 1:
            return recorded  # what the journal holds for attempt 1
        return await execute()

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    out = await execute_tool_call(
        _flaky(0, ran), call("flaky"), make_context=make_ctx, sleep=sleep, run_attempt=replaying
    )
    assert (out.status, out.payload, out.attempts) == ("success", "done", 2)
    assert ran == [2] and slept == [0.01]


async def test_hooks_run_inside_the_attempt_and_a_pending_launch_skips_them() -> None:
    inside = False
    seen: list[tuple[str, bool]] = []

    async def hook(output: ToolCallOutput) -> ToolCallOutput:
        seen.append((output.status, inside))
        return output

    async def run_attempt(
        attempt: ToolAttempt, execute: Callable[[], Awaitable[ToolCallOutput]]
    ) -> ToolCallOutput:
        nonlocal inside
        inside = True
        try:
            return await execute()
        finally:
            inside = False

    async def never_sleep(seconds: float) -> None:
        raise AssertionError("no retry expected")

    @tool(name="later", retry="safe")
    async def later(ctx: ToolContext) -> ToolCallOutput:
        return pending()

    out = await execute_tool_call(
        later,
        call("later"),
        make_context=make_ctx,
        sleep=never_sleep,
        after_attempt=hook,
        run_attempt=run_attempt,
    )
    assert out.control is not None and "pending" in out.control and seen == []

    ran: list[int] = []
    done = await execute_tool_call(
        _flaky(0, ran),
        call("flaky"),
        make_context=make_ctx,
        sleep=never_sleep,
        after_attempt=hook,
        run_attempt=run_attempt,
    )
    assert done.ok and seen == [("success", True)]
