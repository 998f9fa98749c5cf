"""@tool in a module using postponed annotations (hints are strings until resolved)."""

from __future__ import annotations

from typing import TypedDict

import lash.tools
from lash.tools import ToolContext, tool

from .helpers import run


class Window(TypedDict):
    start: int
    end: int


@tool
async def span(ctx: ToolContext, window: Window, label: str | None = None) -> str:
    """Describe a window."""
    return f"{ctx.call_id}:{window['end'] - window['start']}:{label}"


@tool
def qualified(ctx: lash.tools.ToolContext, n: int) -> int:
    return n + 1


async def test_string_annotations_are_resolved() -> None:
    props = span.spec.parameters["properties"]
    assert list(props) == ["window", "label"]
    assert props["window"]["required"] == ["start", "end"]
    assert props["label"] == {"type": ["string", "null"], "default": None}
    out = await run(span, {"window": {"start": 2, "end": 5}}, call_id="c")
    assert out.payload == "c:3:None"


async def test_qualified_context_annotation_is_detected() -> None:
    assert list(qualified.spec.parameters["properties"]) == ["n"]
    assert (await run(qualified, {"n": 1})).payload == 2
