"""Run one tool call: unknown-tool handling, atomic attempts and the retry policy; and the
model-callable ``batch`` tool.

Each attempt gets a fresh :class:`ToolContext` from ``make_context(attempt)`` (so its
idempotency key is per attempt) and is one atomic effect: ``run_attempt`` receives its
:class:`ToolAttempt` envelope and a closure that invokes the tool and its ``after_attempt``
hooks, and returns the attempt's output (a journaling host may return a recorded one). The
retry decision is made here, *between* attempt effects, from that output, and the delay goes
through the injected ``sleep`` (the effect host may make it a durable timer). Retries happen
only when the tool's policy is ``safe``/``idempotent`` **and** the failure itself says it is
transient.

``batch`` runs up to 25 independent calls at once. Its children are dispatched by the
running turn (each child is its own tool call with its own attempts), so the tool needs a
:class:`BatchDispatch` from the runtime; invoked anywhere else it answers every item with an
explicit error and runs nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from lash.tools._jsonschema import validate
from lash.tools._outputs import failure, failure_from_exception, failure_message
from lash.tools.base import Tool, ToolContext, ToolRetryPolicy
from lash.types import ToolCallOutput, ToolCallPart, ToolSpec
from lash.types._base import Record


class ToolAttempt(Record, frozen=True, kw_only=True):
    """The envelope of one tool attempt effect: which call, which attempt, out of how many.

    A journaling host hashes it, so a replay that rebuilt a different call or retry limit is
    caught at the attempt it diverges on.
    """

    call: ToolCallPart
    attempt: int
    max_attempts: int


class ToolAttemptOutcome(Record, frozen=True, kw_only=True):
    """The recorded outcome of one tool attempt effect: its output plus the plugin state the
    attempt changed, so a replay that does not run the tool can still re-apply that change.

    ``plugin_states`` maps a plugin id to its whole state snapshot as the attempt left it
    (only plugins whose snapshot differs from the one taken when the attempt began).
    ``state_seq`` is the attempt's position in the turn's completion order of such
    attempts: when concurrent attempts changed the same plugin, a replay keeps the snapshot
    of the one that completed last, as the first run did. ``v`` versions the record; an
    outcome recorded before it existed (a bare :class:`ToolCallOutput`) still decodes, with
    no state change (see :meth:`from_recorded`).
    """

    v: int = 2
    output: ToolCallOutput
    plugin_states: dict[str, Any] = {}
    state_seq: int = 0

    @classmethod
    def from_recorded(cls, data: Any) -> ToolAttemptOutcome:
        """Decode a recorded outcome of either version (version 1 was the bare output)."""
        if isinstance(data, dict) and "output" in data and "v" in data:
            return msgspec.convert(data, type=cls)
        return cls(v=1, output=msgspec.convert(data, type=ToolCallOutput))


ToolAttemptRunner = Callable[
    [ToolAttempt, Callable[[], Awaitable[ToolCallOutput]]], Awaitable[ToolCallOutput]
]
"""Runs one attempt's closure as an effect (``attempt.attempt`` is 1-based)."""


async def _run_inline(
    attempt: ToolAttempt, execute: Callable[[], Awaitable[ToolCallOutput]]
) -> ToolCallOutput:
    return await execute()


__all__ = [
    "BATCH_TOOL",
    "BATCH_TOOL_NAME",
    "BATCH_TOOL_SPEC",
    "MAX_BATCH_CALLS",
    "BatchChild",
    "BatchChildOutcome",
    "BatchDispatch",
    "BatchTool",
    "ToolAttempt",
    "ToolAttemptOutcome",
    "ToolAttemptRunner",
    "execute_tool_call",
    "retry_delay_ms",
    "run_batch",
]


async def execute_tool_call(
    tool: Tool | None,
    call: ToolCallPart,
    *,
    make_context: Callable[[int], ToolContext],
    sleep: Callable[[float], Awaitable[None]],
    max_attempts: int = 3,
    base_delay_ms: int = 200,
    max_delay_ms: int = 5000,
    after_attempt: Callable[[ToolCallOutput], Awaitable[ToolCallOutput]] | None = None,
    run_attempt: ToolAttemptRunner = _run_inline,
) -> ToolCallOutput:
    """Execute ``call`` with ``tool`` and return its full output (``attempts`` filled in).

    A missing tool is a ``tool_unavailable`` failure. A tool may override the retry limits
    with ``max_attempts``/``base_delay_ms``/``max_delay_ms`` attributes (``FunctionTool``
    has them). Cancellation propagates and stops retries at once.

    ``after_attempt`` (the session's ``after_tool_call`` hooks) sees every *completed*
    attempt, before the retry decision and before exhaustion is marked, and may replace its
    output; a pending launch is not a completed result, so it skips the hooks and ends the
    attempts. The hooks run inside the attempt's effect, so a replayed attempt hands back the
    hooked output without running them again.
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

        async def execute(n: int = attempt) -> ToolCallOutput:
            output = await _attempt(tool, make_context(n), call.arguments)
            if after_attempt is not None and not _is_pending(output):
                output = await after_attempt(output)
            return output

        envelope = ToolAttempt(call=call, attempt=attempt, max_attempts=limit)
        output = await run_attempt(envelope, execute)
        if _is_pending(output):
            return _with_attempts(output, attempt)
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


def _is_pending(output: ToolCallOutput) -> bool:
    control = output.control
    return output.status == "success" and control is not None and "pending" in control


def _with_attempts(output: ToolCallOutput, attempts: int) -> ToolCallOutput:
    if output.attempts == attempts:
        return output
    return msgspec.structs.replace(output, attempts=attempts)


def _override(tool: Tool, name: str, default: int) -> int:
    value = getattr(tool, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# --- the batch tool -----------------------------------------------------------------------

BATCH_TOOL_NAME = "batch"
MAX_BATCH_CALLS = 25
BATCH_TOOL_SPEC = ToolSpec(
    name=BATCH_TOOL_NAME,
    description=(
        f"Run up to {MAX_BATCH_CALLS} independent tool calls at once; they start together and "
        "may finish in any order. Use it for two or more calls that do not depend on each "
        "other; make dependent calls one after another instead."
    ),
    parameters={
        "type": "object",
        "properties": {
            "tool_calls": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_CALLS,
                "description": (
                    f"1-{MAX_BATCH_CALLS} items like "
                    '{"tool": "read_file", "parameters": {"path": "README.md"}}. '
                    "Never put another batch inside."
                ),
                "items": {
                    "type": "object",
                    "properties": {
                        "tool": {"type": "string"},
                        "parameters": {"type": "object", "additionalProperties": True},
                    },
                    "required": ["tool", "parameters"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["tool_calls"],
        "additionalProperties": False,
    },
)

_OUTSIDE_RUNTIME = "tool batch dispatch is unavailable outside runtime execution"
_NESTED = f"Tool '{BATCH_TOOL_NAME}' is not allowed inside batch"


@dataclass(frozen=True, slots=True)
class BatchChild:
    """One item of a batch, to be dispatched as its own tool call."""

    index: int
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BatchChildOutcome:
    """What one dispatched child produced."""

    output: ToolCallOutput
    duration_ms: int


class BatchDispatch(Protocol):
    """How a running turn lends the batch tool its dispatcher."""

    def callable(self, name: str) -> bool:
        """Whether ``name`` may be called in this session now (catalog member or granted)."""
        ...

    async def run(self, children: Sequence[BatchChild]) -> Sequence[BatchChildOutcome]:
        """Dispatch ``children`` (concurrently where the host allows), outcomes in order."""
        ...


async def run_batch(arguments: Mapping[str, Any], dispatch: BatchDispatch | None) -> ToolCallOutput:
    """Validate a batch, answer unusable items at once, dispatch the rest, results by index.

    Malformed arguments (no items, more than :data:`MAX_BATCH_CALLS`, items without a tool
    name or parameters object) fail the whole call. A nested ``batch`` or an unknown tool
    fails only its own item. Without ``dispatch`` every other item fails explicitly and no
    child runs.
    """
    problem = validate(dict(arguments), BATCH_TOOL_SPEC.parameters)
    if problem is not None:
        return failure("invalid_tool_args", problem)
    results: list[dict[str, Any]] = []
    runnable: list[BatchChild] = []
    for index, item in enumerate(arguments["tool_calls"]):
        name = str(item["tool"]).strip()
        if name == BATCH_TOOL_NAME:
            results.append(_immediate(index, name, _NESTED))
        elif dispatch is None:
            results.append(_immediate(index, name, _OUTSIDE_RUNTIME))
        elif not name or not dispatch.callable(name):
            results.append(_immediate(index, name, f"Tool '{name}' is unavailable in this session"))
        else:
            runnable.append(BatchChild(index=index, tool=name, arguments=dict(item["parameters"])))
    if runnable and dispatch is not None:
        outcomes = await dispatch.run(runnable)
        for child, outcome in zip(runnable, outcomes, strict=True):
            results.append(_child_result(child, outcome))
    results.sort(key=lambda r: int(r["index"]))
    return ToolCallOutput(status="success", payload={"results": results})


def _immediate(index: int, tool: str, error: str) -> dict[str, Any]:
    return {"index": index, "tool": tool, "success": False, "duration_ms": 0, "error": error}


def _child_result(child: BatchChild, outcome: BatchChildOutcome) -> dict[str, Any]:
    output = outcome.output
    entry: dict[str, Any] = {
        "index": child.index,
        "tool": child.tool,
        "success": output.ok,
        "duration_ms": outcome.duration_ms,
    }
    if output.ok:
        entry["result"] = output.payload
    else:
        error: dict[str, Any] = {
            "code": output.error_code or output.status,
            "message": failure_message(output),
        }
        if isinstance(output.payload, dict):
            error.update({k: v for k, v in output.payload.items() if k != "message"})
        entry["error"] = error
    return entry


class BatchTool:
    """The ``batch`` tool as a catalog member.

    A running turn recognises this object and runs :func:`run_batch` with its own
    dispatcher; :meth:`invoke` is what happens anywhere else (no runtime to dispatch
    children), so it validates and reports every item as undispatchable.
    """

    __slots__ = ()

    @property
    def spec(self) -> ToolSpec:
        return BATCH_TOOL_SPEC

    @property
    def retry_policy(self) -> ToolRetryPolicy:
        return "never"

    async def invoke(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolCallOutput:
        return await run_batch(arguments, None)

    def __repr__(self) -> str:
        return "BatchTool()"


BATCH_TOOL = BatchTool()
"""The one ``batch`` tool instance the runtime adds to a session's catalog."""
