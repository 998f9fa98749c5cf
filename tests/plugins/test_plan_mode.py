"""Plan mode: a read-only catalog while planning, the checklist in plugin state, plan_exit."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from lash.plugins import PlanMode
from lash.plugins.plan_file import IMPLEMENT_NOW, next_turn_input
from lash.plugins.plan_mode import PLANNING_GUIDANCE, render_plan
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools.builtin import workspace_tools
from lash.types import LlmRequest, PluginRuntime

STEPS = [
    {"step": "Read the code", "status": "completed"},
    {"step": "Change greet()", "status": "in_progress"},
    {"step": "Run the tests", "status": "pending"},
]


def names(request: LlmRequest) -> list[str]:
    return [t.name for t in request.tools]


async def test_planning_restricts_the_catalog_and_keeps_the_plan(
    tmp_path: Path, make_core: Any
) -> None:
    (tmp_path / "a.txt").write_text("x\n")
    provider = ScriptedProvider(
        [
            tool_call("update_plan", {"plan": STEPS, "explanation": "first draft"}, "c1"),
            tool_call("edit", {"path": "a.txt", "edits": [{"oldText": "x", "newText": "y"}]}, "c2"),
            reply("planned"),
        ]
    )
    store = MemoryStore()
    core = make_core(provider, tools=workspace_tools(tmp_path), plugins=[PlanMode], store=store)
    session = await core.session("s").open()
    result = await session.turn("plan the change").run()

    assert names(provider.requests[0]) == [
        "read_file",
        "glob",
        "grep",
        "update_plan",
        "plan_exit",
    ]
    assert result.tool_calls[0].output == {"generation": 1, "plan": STEPS}
    blocked = result.tool_calls[1]
    assert blocked.status == "failure" and blocked.error_code == "tool_unavailable"
    assert (tmp_path / "a.txt").read_text() == "x\n"
    # the plan-mode note rides in the prompt only
    note = provider.requests[0].messages[-2]
    assert note.role == "system" and "Plan mode is on" in note.text
    assert all("Plan mode" not in m.text for m in (await session.read_view()).messages)
    loaded = await store.load_session("s")
    assert loaded is not None
    state = loaded.checkpoint.plugin_state["plan_mode"]
    assert state["enabled"] is True and state["generation"] == 1 and state["plan"] == STEPS


async def test_plan_exit_restores_the_full_catalog_from_the_next_turn(
    tmp_path: Path, make_core: Any
) -> None:
    provider = ScriptedProvider(
        [
            tool_call("update_plan", {"plan": STEPS}, "c1"),
            tool_call("plan_exit", {}, "c2"),
            reply("ready"),
            reply("implementing"),
        ]
    )
    store = MemoryStore()
    core = make_core(provider, tools=workspace_tools(tmp_path), plugins=[PlanMode], store=store)
    session = await core.session("s").open()
    result = await session.turn("plan").run()
    assert result.tool_calls[1].output["approved"] is True
    assert "plan_exit" in names(provider.requests[2])  # fixed for the rest of this turn
    await session.close()

    reopened = await core.session("s").open()
    await reopened.turn("go").run()
    last = provider.requests[-1]
    assert "exec_command" in names(last) and "edit" in names(last)
    assert "plan_exit" not in names(last) and "update_plan" in names(last)
    # the plan survives the reopen and is still shown to the model
    assert any(render_plan(STEPS) in m.text for m in last.messages if m.role == "system")


async def test_update_plan_validates_the_checklist(make_core: Any) -> None:
    two_in_progress = [
        {"step": "a", "status": "in_progress"},
        {"step": "b", "status": "in_progress"},
    ]
    provider = ScriptedProvider(
        [
            [
                tool_call("update_plan", {"plan": two_in_progress}, "c1"),
                tool_call("update_plan", {"plan": []}, "c2"),
                tool_call("update_plan", {"plan": [{"step": "a", "status": "done"}]}, "c3"),
                tool_call("update_plan", {"plan": [{"step": "  ", "status": "pending"}]}, "c4"),
            ],
            reply("ok"),
        ]
    )
    core = make_core(provider, plugins=[PlanMode])
    session = await core.session("s").open()
    result = await session.turn("plan").run()
    codes = [r.error_code for r in result.tool_calls]
    assert codes == ["invalid_plan", "invalid_tool_args", "invalid_tool_args", "invalid_plan"]
    plugin = session.plugin("plan_mode")
    assert isinstance(plugin, PlanMode) and plugin.generation == 0 and plugin.plan == []


async def test_a_host_can_decline_plan_exit_and_toggle_the_mode(make_core: Any) -> None:
    async def decline(plan: list[dict[str, str]]) -> bool:
        return False

    provider = ScriptedProvider([tool_call("plan_exit", {}, "c1"), reply("still planning")])
    core = make_core(provider, plugins=[functools.partial(PlanMode, approve=decline)])
    session = await core.session("s").open()
    result = await session.turn("done?").run()
    assert result.tool_calls[0].output["approved"] is False
    plugin = session.plugin("plan_mode")
    assert isinstance(plugin, PlanMode) and plugin.enabled
    plugin.disable()
    assert plugin.tools()[0].spec.name == "update_plan" and len(plugin.tools()) == 1
    plugin.enable()
    assert plugin.enabled


async def test_plan_mode_can_start_disabled(make_core: Any) -> None:
    provider = ScriptedProvider([reply("hi")])
    core = make_core(provider, plugins=[functools.partial(PlanMode, enabled=False)])
    session = await core.session("s").open()
    await session.turn("hello").run()
    assert names(provider.requests[0]) == ["update_plan", "batch"]
    notes = [m.text for m in provider.requests[0].messages if m.role == "system"]
    assert notes == [PLANNING_GUIDANCE]  # the planning guidance, but not the plan-mode note


async def test_subagent_sessions_are_never_in_plan_mode(tmp_path: Path, make_core: Any) -> None:
    from lash.plugins import READ_ONLY_TOOLS, Subagents

    provider = ScriptedProvider(
        [
            tool_call("spawn_agent", {"task": "look around", "capability": "peer"}, "c1"),
            reply("child answer"),
            reply("root answer"),
        ]
    )
    planning = functools.partial(PlanMode, allowed_tools=READ_ONLY_TOOLS | {"spawn_agent"})
    core = make_core(provider, tools=workspace_tools(tmp_path), plugins=[planning, Subagents])
    session = await core.session("s").open()
    await session.turn("plan with help").run()
    root, child = names(provider.requests[0]), names(provider.requests[1])
    assert "spawn_agent" in root and "edit" not in root
    assert "edit" in child and "exec_command" in child
    assert "update_plan" not in child and "plan_exit" not in child
    assert all("Plan mode" not in m.text for m in provider.requests[1].messages)


async def test_yes_no_approve_maps_onto_the_three_way_decision(
    tmp_path: Path, make_core: Any
) -> None:
    seen: list[list[dict[str, str]]] = []

    async def approve(plan: list[dict[str, str]]) -> bool:
        seen.append(plan)
        return True

    provider = ScriptedProvider(
        [tool_call("update_plan", {"plan": STEPS}, "c1"), tool_call("plan_exit", {}, "c2")]
        + [reply("go")]
    )
    planning = functools.partial(PlanMode, workspace=tmp_path, approve=approve)
    core = make_core(provider, tools=workspace_tools(tmp_path), plugins=[planning])
    session = await core.session("s").open()
    events: list[Any] = []

    async def sink(activity: Any) -> None:
        if isinstance(activity.event, PluginRuntime) and activity.event.plugin_id == "plan_mode":
            events.append(activity.event.event)

    result = await session.turn("plan").on_event(sink).run()
    assert seen == [STEPS]
    out = result.tool_calls[1].output
    assert (out["approved"], out["execution_mode"]) == (True, "current_session")
    assert out["answer"] == {"kind": "single", "selection": IMPLEMENT_NOW}
    assert out["next_turn_input"] == next_turn_input(".lash/plans/s.md")
    states = [e["payload"]["enabled"] for e in events if e["name"] == "plan_mode.state"]
    assert states == [True, False]  # planning started, then ended by plan_exit
    assert (tmp_path / ".lash" / "plans" / "s.md").is_file()
    with pytest.raises(ValueError):
        PlanMode(approve=approve, prompt=lambda request: approve([]))  # type: ignore[arg-type,return-value]
