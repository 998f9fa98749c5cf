"""The ``batch`` tool outside a running turn (processes-tools §5.7 ``batch`` rows).

Outside a turn there is no dispatcher for the children: every item gets an explicit error and
no child runs. The concurrent in-turn behaviour is in tests/runtime/test_tool_hooks_and_batch.py.
"""

from __future__ import annotations

from typing import Any

from lash.tools import execute_tool_call
from lash.tools.dispatch import (
    BATCH_TOOL,
    BATCH_TOOL_SPEC,
    BatchChild,
    BatchChildOutcome,
    run_batch,
)
from lash.types import ToolCallOutput

from .helpers import call, make_ctx


async def _nap(seconds: float) -> None:
    return None


async def _dispatch_batch(arguments: dict[str, Any]) -> ToolCallOutput:
    return await execute_tool_call(
        BATCH_TOOL, call("batch", arguments), make_context=make_ctx, sleep=_nap
    )


async def test_batch_returns_explicit_errors_without_runtime_execution_context() -> None:
    out = await _dispatch_batch(
        {
            "tool_calls": [
                {"tool": "alpha", "parameters": {}},
                {"tool": "beta", "parameters": {"value": "ok"}},
                {"tool": "beta", "parameters": {"value": "fail"}},
            ]
        }
    )
    assert out.status == "success"
    results = out.payload["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0] == {
        "index": 0,
        "tool": "alpha",
        "success": False,
        "duration_ms": 0,
        "error": "tool batch dispatch is unavailable outside runtime execution",
    }


async def test_batch_rejects_nested_batch_as_partial_failure() -> None:
    out = await _dispatch_batch(
        {"tool_calls": [{"tool": "batch", "parameters": {"tool_calls": []}}]}
    )
    assert out.status == "success"
    [first] = out.payload["results"]
    assert first["error"] == "Tool 'batch' is not allowed inside batch"
    assert first["success"] is False


async def test_batch_marks_overflow_calls_as_failures() -> None:
    items = [{"tool": "alpha", "parameters": {}} for _ in range(26)]
    out = await _dispatch_batch({"tool_calls": items})
    assert (out.status, out.error_code) == ("failure", "invalid_tool_args")
    assert "tool_calls" in out.payload and "at most 25 items" in out.payload


class Recording:
    """A dispatcher that records what it was asked to run."""

    def __init__(self, callable_names: set[str]) -> None:
        self.names = callable_names
        self.ran: list[BatchChild] = []

    def callable(self, name: str) -> bool:
        return name in self.names

    async def run(self, children: Any) -> list[BatchChildOutcome]:
        self.ran.extend(children)
        return [
            BatchChildOutcome(
                output=ToolCallOutput(status="success", payload=c.index)
                if c.tool == "ok"
                else ToolCallOutput(status="failure", payload="boom", error_code="bad"),
                duration_ms=3,
            )
            for c in children
        ]


async def test_batch_does_not_run_child_tools_without_runtime_execution_context() -> None:
    out = await _dispatch_batch(
        {
            "tool_calls": [
                {"tool": "probe_a", "parameters": {}},
                {"tool": "probe_b", "parameters": {}},
            ]
        }
    )
    assert out.status == "success"
    assert [r["success"] for r in out.payload["results"]] == [False, False]
    # with a dispatcher the same items run; unknown tools still fail alone
    dispatch = Recording({"ok", "bad"})
    out = await run_batch(
        {
            "tool_calls": [
                {"tool": "bad", "parameters": {"x": 1}},
                {"tool": "nope", "parameters": {}},
                {"tool": "ok", "parameters": {}},
            ]
        },
        dispatch,
    )
    assert [(c.index, c.tool, c.arguments) for c in dispatch.ran] == [
        (0, "bad", {"x": 1}),
        (2, "ok", {}),
    ]
    assert out.payload == {
        "results": [
            {
                "index": 0,
                "tool": "bad",
                "success": False,
                "duration_ms": 3,
                "error": {"code": "bad", "message": "boom"},
            },
            {
                "index": 1,
                "tool": "nope",
                "success": False,
                "duration_ms": 0,
                "error": "Tool 'nope' is unavailable in this session",
            },
            {"index": 2, "tool": "ok", "success": True, "duration_ms": 3, "result": 2},
        ]
    }


async def test_batch_schema_is_strict() -> None:
    schema = BATCH_TOOL_SPEC.parameters
    assert schema["additionalProperties"] is False
    tool_calls = schema["properties"]["tool_calls"]
    assert (tool_calls["minItems"], tool_calls["maxItems"]) == (1, 25)
    for bad in ({}, {"tool_calls": []}, {"tool_calls": [{"tool": "a"}]}, {"extra": 1}):
        out = await _dispatch_batch(bad)
        assert out.error_code == "invalid_tool_args", bad
