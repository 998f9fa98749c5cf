"""Spec rows of processes-tools §5.8 for the plugin core, subagents and ``plan_exit``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from lash.plugins import PlanMode, Subagents
from lash.plugins.subagents import child_session_id
from lash.runtime.plugins import Plugin, PluginSessionContext, PrepareContext
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools import FunctionTool, Tool, ToolContext
from lash.tools.builtin import workspace_tools
from lash.types import Message, TextPart


def _ctx(name: str) -> ToolContext:
    return ToolContext(session_id="s", turn_id="t", call_id="c", tool_name=name, replay_key="k")


class ToolsAndPrompt(Plugin):
    """Contributes one tool and one prompt note."""

    id = "tools-and-prompt"

    def __init__(self) -> None:
        super().__init__()
        self._tool = FunctionTool.from_schema(
            "note_taker",
            "Takes a note.",
            {"type": "object", "properties": {}},
            lambda: "noted",
        )

    def tools(self) -> Sequence[Tool]:
        return (self._tool,)

    async def transform_context(
        self, ctx: PrepareContext, messages: list[Message]
    ) -> list[Message]:
        note = Message(
            id=f"{ctx.turn_id}:note",
            role="system",
            parts=(TextPart(text="Take notes."),),
        )
        return [*messages, note]


async def test_session_collects_tools_and_prompts(make_core: Any) -> None:
    provider = ScriptedProvider([reply("ok")])
    core = make_core(provider, plugins=[ToolsAndPrompt])
    session = await core.session("s").open()
    await session.turn("hi").run()
    request = provider.requests[0]
    assert [t.name for t in request.tools] == ["note_taker", "batch"]
    assert [m.text for m in request.messages if m.role == "system"] == ["Take notes."]


async def test_spawn_schema_is_strict_and_nameless(make_core: Any) -> None:
    plugin = Subagents()
    await plugin.open_session(PluginSessionContext(session_id="root", state={}))
    (spawn,) = plugin.tools()
    schema = spawn.spec.parameters
    assert schema["additionalProperties"] is False
    assert "agent_name" not in schema["properties"] and "name" not in schema["properties"]
    rejected = await spawn.invoke(
        _ctx("spawn_agent"), {"task": "inspect routing", "capability": "explore", "agent_name": "x"}
    )
    assert (rejected.status, rejected.error_code) == ("failure", "invalid_tool_args")
    assert "agent_name" in str(rejected.payload)


async def test_plan_exit_contract_documents_decision_result() -> None:
    plugin = PlanMode()
    await plugin.open_session(PluginSessionContext(session_id="root", state={}))
    exit_tool = next(t for t in plugin.tools() if t.spec.name == "plan_exit")
    assert exit_tool.spec.parameters["additionalProperties"] is False
    extra = await exit_tool.invoke(_ctx("plan_exit"), {"mode": "now"})
    assert extra.error_code == "invalid_tool_args"
    approved = await exit_tool.invoke(_ctx("plan_exit"), {})
    assert approved.status == "success" and approved.payload["approved"] is True
    assert {"approved", "message", "plan"} <= set(approved.payload)
    again = await exit_tool.invoke(_ctx("plan_exit"), {})
    assert (again.status, again.error_code) == ("failure", "plan_mode_inactive")


async def test_single_capability_spawn_can_omit_capability_field(make_core: Any) -> None:
    plugin = Subagents(capabilities=["explore"])
    await plugin.open_session(PluginSessionContext(session_id="root", state={}))
    (spawn,) = plugin.tools()
    schema = spawn.spec.parameters
    assert schema["required"] == ["task"]
    assert schema["properties"]["capability"]["enum"] == ["explore"]
    provider = ScriptedProvider(
        [tool_call("spawn_agent", {"task": "look around"}, "c1"), reply("seen"), reply("done")]
    )
    core = make_core(provider, plugins=[functools.partial(Subagents, capabilities=["explore"])])
    session = await core.session("root").open()
    result = await session.turn("go").run()
    assert (result.tool_calls[0].status, result.tool_calls[0].output) == ("success", "seen")
    child = await core.session(child_session_id("root", "c1")).open()
    child_plugin = child.plugin("subagents")
    assert isinstance(child_plugin, Subagents) and child_plugin.capability == "explore"
    with pytest.raises(ValueError):
        Subagents(capabilities=[])
    with pytest.raises(ValueError):
        Subagents(capabilities=["admin"])


async def test_spawn_uses_live_parent_provider_when_selecting_subagent_model(
    make_core: Any,
) -> None:
    provider = ScriptedProvider(
        [
            tool_call("spawn_agent", {"task": "t", "capability": "peer"}, "c1"),
            reply("child answer"),
            reply("parent answer"),
        ]
    )
    core = make_core(provider, plugins=[Subagents])
    session = await core.session("root").open()
    result = await session.turn("go").run()
    assert result.tool_calls[0].output == "child answer"
    # the child ran on the parent's live provider and model
    assert [r.model for r in provider.requests] == ["test-model"] * 3
    assert provider.requests[1].messages[-1].text == "t"


def test_standard_stack_exposes_glob_and_read_without_ls(tmp_path: Path) -> None:
    names = [t.spec.name for t in workspace_tools(tmp_path)]
    assert {"read_file", "glob"} <= set(names)
    assert "ls" not in names and "list_dir" not in names
