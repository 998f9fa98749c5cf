"""Plugins contribute and restrict tools, and may own the projection the model sees."""

from __future__ import annotations

from typing import Any

import lash
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools.base import Tool
from lash.types import ToolCallOutput, ToolCallPart, ToolResultPart


@lash.tool
async def base_tool(ctx: lash.ToolContext) -> str:
    """Always there."""
    return "base"


@lash.tool
async def plugin_tool(ctx: lash.ToolContext) -> str:
    """Contributed by a plugin."""
    return "x" * 5000


class Contributes(lash.Plugin):
    id = "contributes"

    def tools(self) -> list[Tool]:
        return [plugin_tool]

    def project_tool_output(
        self, call: ToolCallPart, output: ToolCallOutput
    ) -> ToolResultPart | None:
        if call.name != "plugin_tool":
            return None
        return ToolResultPart(tool_call_id=call.id, name=call.name, content="[5000 x's]")


class Restricts(lash.Plugin):
    id = "plan-mode"

    def filter_tools(self, tools: dict[str, Tool]) -> dict[str, Tool]:
        return {k: v for k, v in tools.items() if k != "base_tool"}


async def test_contributed_tool_and_custom_projection(make_core: Any) -> None:
    provider = ScriptedProvider([tool_call("plugin_tool", {}, "c1"), reply("ok")])
    core = make_core(provider, tools=[base_tool], plugins=[Contributes])
    session = await core.session("s").open()
    result = await session.turn("go").run()
    names = [t.name for t in provider.requests[0].tools]
    assert names == ["base_tool", "plugin_tool", "batch"]  # batch: on by default
    assert result.tool_calls[0].output == "x" * 5000  # the full output stays durable
    assert provider.requests[1].messages[-1].text == "[5000 x's]"


async def test_filtered_tool_is_unavailable(make_core: Any) -> None:
    provider = ScriptedProvider([tool_call("base_tool", {}, "c1"), reply("ok")])
    core = make_core(provider, tools=[base_tool], plugins=[Contributes, Restricts])
    session = await core.session("s").open()
    result = await session.turn("go").run()
    assert [t.name for t in provider.requests[0].tools] == ["plugin_tool", "batch"]
    assert result.tool_calls[0].error_code == "tool_unavailable"


async def test_two_tool_result_projectors_are_rejected(make_core: Any) -> None:
    class AlsoProjects(lash.Plugin):
        id = "also-projects"

        def project_tool_output(
            self, call: ToolCallPart, output: ToolCallOutput
        ) -> ToolResultPart | None:
            return None

    core = make_core([], plugins=[Contributes, AlsoProjects])
    import pytest

    with pytest.raises(lash.EmbedError) as err:
        await core.session("s").open()
    assert err.value.kind == "duplicate_tool_result_projector"
    assert "contributes" in err.value.message and "also-projects" in err.value.message
