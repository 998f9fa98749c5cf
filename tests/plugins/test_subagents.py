"""spawn_agent: a child session on the same core, capability-gated tools, usage reported to
the parent as children_usage, and the depth limit."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import msgspec
import pytest

import lash
from lash.plugins import MAX_SUBAGENT_DEPTH, READ_ONLY_TOOLS, Subagents
from lash.plugins.capabilities import (
    Capability,
    SpawnContext,
    SpawnRequest,
    StaticCapability,
    default_capabilities,
)
from lash.plugins.subagents import child_session_id
from lash.runtime.plugins import PluginSessionContext
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, stall, tool_call
from lash.tools import FunctionTool
from lash.tools.builtin import workspace_tools
from lash.types import LlmRequest, TokenUsage


def tool_names(request: LlmRequest) -> list[str]:
    return [t.name for t in request.tools]


async def test_explore_child_runs_read_only_and_returns_its_answer(
    tmp_path: Path, make_core: Any
) -> None:
    (tmp_path / "notes.txt").write_text("the answer is 42\n")
    provider = ScriptedProvider(
        [
            tool_call(
                "spawn_agent",
                {"task": "Find the answer in notes.txt", "capability": "explore"},
                "c-spawn",
            ),
            tool_call("read_file", {"path": "notes.txt"}, "c-read"),
            reply("42"),
            reply("The subagent says 42."),
        ]
    )
    store = MemoryStore()
    core = make_core(provider, tools=workspace_tools(tmp_path), plugins=[Subagents], store=store)
    session = await core.session("root").open()
    result = await session.turn("what is the answer?").run()

    assert result.assistant_text == "The subagent says 42."
    spawn = result.tool_calls[0]
    assert spawn.name == "spawn_agent" and spawn.status == "success"
    assert spawn.output == "42"
    parent_tools, child_tools = tool_names(provider.requests[0]), tool_names(provider.requests[1])
    assert "spawn_agent" in parent_tools and "exec_command" in parent_tools
    assert child_tools == ["read_file", "glob", "grep"]
    # the child's prompt is its own frame: only the subagent note and the task
    child_prompt = provider.requests[1].messages
    assert [m.role for m in child_prompt] == ["system", "user"]
    assert "capability: explore, depth 1/5" in child_prompt[0].text
    assert child_prompt[1].text == "Find the answer in notes.txt"

    child_id = child_session_id("root", "c-spawn")
    assert child_id == "root:child:c-spawn"
    child = await store.load_session(child_id)
    assert child is not None and child.head_revision == 1
    assert child.checkpoint.plugin_state["subagents"]["capability"] == "explore"

    # usage: parent's own two calls, the child's two calls under source "subagent"
    call = TokenUsage(input_tokens=10, output_tokens=5)
    assert result.usage == call + call
    assert [(e.source, e.model, e.usage) for e in result.children_usage] == [
        ("subagent", "test-model", call + call)
    ]
    assert result.total_usage() == call + call + call + call
    report = await session.usage_report()
    assert {row.source for row in report.by_source} == {"turn", "subagent"}


async def test_peer_child_inherits_tools_and_can_spawn(tmp_path: Path, make_core: Any) -> None:
    provider = ScriptedProvider(
        [
            tool_call("spawn_agent", {"task": "write it", "capability": "peer"}, "c1"),
            tool_call("write", {"path": "out.txt", "content": "from the child"}, "c2"),
            reply("written"),
            reply("ok"),
        ]
    )
    core = make_core(provider, tools=workspace_tools(tmp_path, shell=False), plugins=[Subagents])
    session = await core.session("root").open()
    result = await session.turn("delegate").run()
    assert result.tool_calls[0].output == "written"
    assert (tmp_path / "out.txt").read_text() == "from the child"
    assert tool_names(provider.requests[1]) == tool_names(provider.requests[0])
    assert "spawn_agent" in tool_names(provider.requests[1])


async def test_spawn_depth_is_limited_and_spawn_agent_hidden_at_max_depth(
    make_core: Any,
) -> None:
    steps: list[Any] = [
        tool_call("spawn_agent", {"task": f"level {d + 1}", "capability": "peer"}, f"d{d}")
        for d in range(MAX_SUBAGENT_DEPTH)
    ]
    steps.append(reply("deepest"))
    steps.extend(reply(f"up {d}") for d in range(MAX_SUBAGENT_DEPTH))
    provider = ScriptedProvider(steps)
    store = MemoryStore()
    core = make_core(provider, plugins=[Subagents], store=store)
    session = await core.session("r").open()
    result = await session.turn("go deep").run()

    offered = [("spawn_agent" in tool_names(r)) for r in provider.requests]
    assert offered[: MAX_SUBAGENT_DEPTH + 1] == [True] * MAX_SUBAGENT_DEPTH + [False]
    deepest = "r" + "".join(f":child:d{d}" for d in range(MAX_SUBAGENT_DEPTH))
    loaded = await store.load_session(deepest)
    assert loaded is not None
    assert loaded.checkpoint.plugin_state["subagents"]["depth"] == MAX_SUBAGENT_DEPTH
    assert result.assistant_text == f"up {MAX_SUBAGENT_DEPTH - 1}"
    # every level's usage rolls up to the root: four spawning children make two calls each,
    # the deepest one answers in one
    calls = 2 * (MAX_SUBAGENT_DEPTH - 1) + 1
    assert [e.source for e in result.children_usage] == ["subagent"]
    assert result.children_usage[0].usage.input_tokens == 10 * calls


async def test_a_configured_max_depth_hides_spawn_earlier(make_core: Any) -> None:
    provider = ScriptedProvider(
        [
            tool_call("spawn_agent", {"task": "one level", "capability": "peer"}, "c1"),
            reply("child done"),
            reply("root done"),
        ]
    )
    core = make_core(provider, plugins=[functools.partial(Subagents, max_depth=1)])
    session = await core.session("r").open()
    await session.turn("go").run()
    assert "spawn_agent" in tool_names(provider.requests[0])
    assert "spawn_agent" not in tool_names(provider.requests[1])


async def test_a_failed_child_is_a_tool_error_with_its_usage(make_core: Any) -> None:
    provider = ScriptedProvider(
        [
            tool_call("spawn_agent", {"task": "loop", "capability": "peer"}, "c1"),
            tool_call("nothing_here", {}, "c2"),
            reply("parent continues"),
        ]
    )
    core = make_core(provider, plugins=[functools.partial(Subagents, max_turns=1)])
    session = await core.session("r").open()
    result = await session.turn("go").run()
    spawn = result.tool_calls[0]
    assert spawn.status == "failure" and spawn.error_code == "subagent_failed"
    assert "max_turns" in spawn.output["message"]
    assert result.children_usage and result.children_usage[0].source == "subagent"
    assert result.assistant_text == "parent continues"


def test_invalid_max_depth() -> None:
    with pytest.raises(ValueError):
        Subagents(max_depth=MAX_SUBAGENT_DEPTH + 1)


async def test_root_session_state_and_spawn_schema(make_core: Any) -> None:
    core = make_core([reply("hi")], plugins=[Subagents])
    session = await core.session("r").open()
    plugin = session.plugin("subagents")
    assert isinstance(plugin, Subagents)
    assert plugin.depth == 0 and plugin.capability is None
    (spawn,) = plugin.tools()
    schema = spawn.spec.parameters
    assert schema["required"] == ["task", "capability"]
    assert schema["properties"]["capability"]["enum"] == ["explore", "peer"]
    assert schema["additionalProperties"] is False
    assert isinstance(lash.LashCore, type)


async def test_cancelling_the_parent_cancels_the_child(make_core: Any) -> None:
    provider = ScriptedProvider(
        [tool_call("spawn_agent", {"task": "wait", "capability": "peer"}, "c1"), stall()]
    )
    store = MemoryStore()
    core = make_core(provider, plugins=[Subagents], store=store)
    session = await core.session("r").open()
    handle = session.turn("go").start()
    while len(provider.requests) < 2:  # the child is waiting on its model
        await asyncio.sleep(0)
    await handle.cancel("stop")
    result = await handle.result()
    assert result.outcome.reason == "cancelled"
    child_id = child_session_id("r", "c1")
    for _ in range(1000):
        child = await store.load_session(child_id)
        if child is not None and child.head_revision == 1:
            break
        await asyncio.sleep(0.001)
    assert child is not None and child.head_revision == 1
    view = await (await core.session(child_id).open()).read_view()
    assert [m.text for m in view.messages] == ["wait"]


class CustomCapability:
    """A host capability: hides one more tool, books usage under its own source and frames
    the task in its own prompt."""

    name = "custom"
    description = "custom work"

    def build_spawn_request(self, ctx: SpawnContext) -> SpawnRequest:
        return ctx.request(
            self.name,
            hidden_tools={"custom_hidden"},
            usage_source="custom-subagent",
            prompt=f"Custom task: {ctx.task}",
        )


def _noop(name: str) -> FunctionTool:
    return FunctionTool.from_schema(name, f"The {name} tool.", {"type": "object"}, lambda: name)


async def test_capability_can_build_complete_spawn_request(make_core: Any) -> None:
    assert isinstance(CustomCapability(), Capability)
    plugin = Subagents(capabilities=[CustomCapability()], hidden_tools=["base_hidden"])
    await plugin.open_session(PluginSessionContext(session_id="root", state={}))
    request = plugin.spawn_request("root", "c1", {"task": "inspect"})
    assert request == SpawnRequest(
        capability="custom",
        parent_session_id="root",
        session_id="root:child:c1",
        depth=1,
        max_depth=MAX_SUBAGENT_DEPTH,
        prompt="Custom task: inspect",
        tools=None,
        hidden_tools=("base_hidden", "custom_hidden"),
        usage_source="custom-subagent",
    )
    assert plugin.tools()[0].spec.parameters["required"] == ["task"]  # the only capability

    # the request is what the child gets: its prompt, its catalog, its usage source
    provider = ScriptedProvider(
        [tool_call("spawn_agent", {"task": "inspect"}, "c1"), reply("child"), reply("parent")]
    )
    store = MemoryStore()
    factory = functools.partial(
        Subagents, capabilities=[CustomCapability()], hidden_tools=["base_hidden"]
    )
    core = make_core(
        provider,
        tools=[_noop("visible"), _noop("custom_hidden"), _noop("base_hidden")],
        plugins=[factory],
        store=store,
    )
    session = await core.session("root").open()
    result = await session.turn("go").run()
    assert result.tool_calls[0].output == "child"
    parent, child = tool_names(provider.requests[0]), tool_names(provider.requests[1])
    assert {"visible", "custom_hidden", "base_hidden", "spawn_agent"} <= set(parent)
    assert "visible" in child and "spawn_agent" in child
    assert "custom_hidden" not in child and "base_hidden" not in child
    assert provider.requests[1].messages[-1].text == "Custom task: inspect"
    assert [e.source for e in result.children_usage] == ["custom-subagent"]
    loaded = await store.load_session("root:child:c1")
    assert loaded is not None
    state = loaded.checkpoint.plugin_state["subagents"]
    assert (state["capability"], state["usage_source"]) == ("custom", "custom-subagent")
    assert state["hidden_tools"] == ["base_hidden", "custom_hidden"]
    # the gate survives a reopen: it is the child's committed state
    reopened = (await core.session("root:child:c1").open()).plugin("subagents")
    assert isinstance(reopened, Subagents) and reopened.hidden == {"base_hidden", "custom_hidden"}


async def test_capabilities_cannot_escape_the_depth_limit_or_rename_the_child() -> None:
    class Rogue:
        name = "rogue"
        description = "tries to escape"

        def build_spawn_request(self, ctx: SpawnContext) -> SpawnRequest:
            return msgspec.structs.replace(ctx.request(self.name), session_id="elsewhere", depth=0)

    plugin = Subagents(capabilities=[Rogue()], max_depth=1)
    await plugin.open_session(PluginSessionContext(session_id="r", state={}))
    request = plugin.spawn_request("r", "c1", {"task": "t"})
    assert (request.session_id, request.depth) == ("r:child:c1", 1)
    assert "spawn_agent" in request.hidden_tools  # the child is at the maximum depth
    assert not request.allows("spawn_agent") and request.allows("read_file")


async def test_broken_capabilities_fail_the_spawn_with_a_code(make_core: Any) -> None:
    class Raises:
        name = "raises"
        description = "always refuses"

        def build_spawn_request(self, ctx: SpawnContext) -> SpawnRequest:
            raise RuntimeError("no budget left")

    class WrongType:
        name = "wrong"
        description = "returns the wrong thing"

        def build_spawn_request(self, ctx: SpawnContext) -> Any:
            return {"task": ctx.task}

    provider = ScriptedProvider(
        [
            [
                tool_call("spawn_agent", {"task": "t", "capability": "raises"}, "c1"),
                tool_call("spawn_agent", {"task": "t", "capability": "wrong"}, "c2"),
            ],
            reply("done"),
        ]
    )
    factory = functools.partial(Subagents, capabilities=[Raises(), WrongType()])
    core = make_core(provider, plugins=[factory])
    session = await core.session("r").open()
    result = await session.turn("go").run()
    assert [c.error_code for c in result.tool_calls] == ["invalid_spawn_request"] * 2
    assert "no budget left" in str(result.tool_calls[0].output)
    assert not result.children_usage


async def test_a_host_capability_replaces_a_builtin_of_the_same_name(make_core: Any) -> None:
    narrow = StaticCapability("explore", "grep only", tools={"grep"})
    plugin = Subagents(capabilities=["explore", "peer", narrow])
    assert plugin.capabilities == ("explore", "peer")
    assert plugin.registry["explore"] is narrow
    schema = plugin._spawn.spec.parameters
    assert "explore: grep only." in schema["properties"]["capability"]["description"]
    explore, peer = default_capabilities()
    assert (explore.name, explore.tools, peer.tools) == ("explore", READ_ONLY_TOOLS, None)
