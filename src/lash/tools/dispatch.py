"""Run one tool call: unknown-tool handling, atomic attempts and the retry policy.

Each attempt gets a fresh :class:`ToolContext` from ``make_context(attempt)`` (so its
idempotency key is per attempt) and the delay between attempts goes through the injected
``sleep`` (the effect host may journal it). Retries happen only when the tool's policy is
``safe``/``idempotent`` **and** the failure itself says it is transient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec

from lash.tools._outputs import failure, failure_from_exception
from lash.tools.base import Tool, ToolContext
from lash.types import ToolCallOutput, ToolCallPart

__all__ = ["execute_tool_call", "retry_delay_ms"]


async def execute_tool_call(
    tool: Tool | None,
    call: ToolCallPart,
    *,
    make_context: Callable[[int], ToolContext],
    sleep: Callable[[float], Awaitable[None]],
    max_attempts: int = 3,
    base_delay_ms: int = 200,
    max_delay_ms: int = 5000,
) -> ToolCallOutput:
    """Execute ``call`` with ``tool`` and return its full output (``attempts`` filled in).

    A missing tool is a ``tool_unavailable`` failure. A tool may override the retry limits
    with ``max_attempts``/``base_delay_ms``/``max_delay_ms`` attributes (``FunctionTool``
    has them). Cancellation propagates and stops retries at once.
    """
    if tool is None:
        return failure("tool_unavailable", f"Tool '{call.name}' is unavailable in this session")
    policy = tool.retry_policy
    limit = 1
    if policy in ("safe", "idempotent"):
        limit = max(1, _override(tool, "max_attempts", max_attempts))
    base = _override(tool, "base_delay_ms", base_delay_ms)
    cap = _override(tool, "max_delay_ms", max_delay_ms)

    attempt = 1
    while True:
        output = await _attempt(tool, make_context(attempt), call.arguments)
        if output.status != "failure" or not output.retryable or limit == 1:
            return _with_attempts(output, attempt)
        if attempt >= limit:
            return msgspec.structs.replace(
                output, attempts=attempt, retryable=False, retry_after_ms=None
            )
        delay = retry_delay_ms(attempt, output.retry_after_ms, base_delay_ms=base, max_delay_ms=cap)
        await sleep(delay / 1000)
        attempt += 1


def retry_delay_ms(
    attempt: int, requested_ms: int | None, *, base_delay_ms: int, max_delay_ms: int
) -> int:
    """Delay before the attempt after ``attempt`` (1-based): the tool's request, else
    ``base × 2^(attempt-1)``; either way capped by ``max_delay_ms`` (0 = uncapped)."""
    delay = requested_ms if requested_ms is not None else base_delay_ms * (2 ** (attempt - 1))
    delay = max(0, delay)
    return delay if max_delay_ms <= 0 else min(delay, max_delay_ms)


async def _attempt(tool: Tool, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolCallOutput:
    try:
        output = await tool.invoke(ctx, arguments)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a tool that broke the "return, never raise" contract
        return failure_from_exception(exc)
    if not isinstance(output, ToolCallOutput):
        return failure(
            "tool_error",
            f"TypeError: tool '{tool.spec.name}' returned {type(output).__name__}, "
            "not ToolCallOutput",
        )
    return output


def _with_attempts(output: ToolCallOutput, attempts: int) -> ToolCallOutput:
    if output.attempts == attempts:
        return output
    return msgspec.structs.replace(output, attempts=attempts)


def _override(tool: Tool, name: str, default: int) -> int:
    value = getattr(tool, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
