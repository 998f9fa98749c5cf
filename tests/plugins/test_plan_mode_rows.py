"""Spec rows of processes-tools §5.8 for ``update_plan`` (the checklist half of plan mode)."""

from __future__ import annotations

from typing import Any

import msgspec

import lash
from lash.plugins import PlanMode
from lash.plugins.plan_mode import PLAN_SNAPSHOT_EVENT, PLANNING_GUIDANCE, plan_snapshot_event
from lash.plugins.subagents import child_session_id
from lash.runtime.plugins import PluginSessionContext, PrepareContext
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools import Tool, ToolContext
from lash.types import Message, PluginRuntime, TextPart, ToolCallOutput


async def _opened(session_id: str = "root") -> PlanMode:
    plugin = PlanMode(enabled=False)
    await plugin.open_session(PluginSessionContext(session_id=session_id, state={}))
    return plugin


def _update_plan(plugin: PlanMode) -> Tool:
    return next(t for t in plugin.tools() if t.spec.name == "update_plan")


async def _call(plugin: PlanMode, args: dict[str, Any]) -> ToolCallOutput:
    ctx = ToolContext(
        session_id="root", turn_id="t", call_id="c", tool_name="update_plan", replay_key="k"
    )
    return await _update_plan(plugin).invoke(ctx, args)


async def _prompt_notes(plugin: PlanMode, session_id: str) -> list[str]:
    ctx = PrepareContext(
        session_id=session_id, turn_id="t", turn_index=1, agent_frame_id="f", context_window=1000
    )
    user = Message(id="u", role="user", parts=(TextPart(text="hi"),))
    shaped = await plugin.transform_context(ctx, [user])
    return [m.text for m in shaped if m.role == "system"]


async def test_validates_shape() -> None:
    plugin = await _opened()
    for bad in (
        {"plan": [{"step": "", "status": "pending"}]},
        {"plan": [{"step": "   ", "status": "pending"}]},
        {"plan": []},
        {"plan": [{"step": "a", "status": "done"}]},
        {"plan": [{"step": "a"}]},
    ):
        out = await _call(plugin, bad)
        assert out.status == "failure", bad
    assert plugin.generation == 0 and plugin.plan == []


async def test_rejects_multiple_in_progress_steps() -> None:
    plugin = await _opened()
    out = await _call(
        plugin,
        {"plan": [{"step": "a", "status": "in_progress"}, {"step": "b", "status": "in_progress"}]},
    )
    assert (out.status, out.error_code) == ("failure", "invalid_plan")
    assert plugin.generation == 0


async def test_bumps_generation_on_success() -> None:
    plugin = await _opened()
    assert plugin.generation == 0
    out = await _call(plugin, {"plan": [{"step": "one", "status": "pending"}]})
    assert out.status == "success"
    assert plugin.generation == 1
    assert plugin.plan == [{"step": "one", "status": "pending"}]


async def test_plan_snapshot_event_encodes_snapshot() -> None:
    snapshot = {
        "explanation": None,
        "plan": [
            {"step": "done work", "status": "completed"},
            {"step": "current", "status": "in_progress"},
            {"step": "later", "status": "pending"},
        ],
        "generation": 1,
    }
    event = plan_snapshot_event(snapshot)
    assert event["name"] == PLAN_SNAPSHOT_EVENT == "update_plan.snapshot"
    assert event["payload"] == {"plan": snapshot["plan"], "generation": 1}
    assert msgspec.json.decode(msgspec.json.encode(event)) == event
    # a turn that updates the plan publishes the snapshot once, as a plugin runtime event
    steps = [{"step": "a", "status": "in_progress"}]
    provider = ScriptedProvider(
        [tool_call("update_plan", {"plan": steps, "explanation": "why"}, "c1"), reply("ok")]
    )
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .plugins([PlanMode])
        .build()
    )
    session = await core.session("s").open()
    events: list[lash.TurnActivity] = []

    async def sink(activity: lash.TurnActivity) -> None:
        events.append(activity)

    await session.turn("plan").on_event(sink).run()
    published = [
        e.event.event
        for e in events
        if isinstance(e.event, PluginRuntime) and e.event.plugin_id == "plan_mode"
    ]
    assert published == [
        {
            "name": "update_plan.snapshot",
            "payload": {"plan": steps, "generation": 1, "explanation": "why"},
        }
    ]


async def test_factory_marks_child_sessions_inactive() -> None:
    root = await _opened("root")
    child = await _opened(child_session_id("root", "call-1"))
    assert [t.spec.name for t in root.tools()] == ["update_plan"]
    assert child.tools() == ()
    assert child.enabled is False


async def test_root_session_contributes_planning_guidance() -> None:
    plugin = await _opened("root")
    assert await _prompt_notes(plugin, "root") == [PLANNING_GUIDANCE]


async def test_child_session_does_not_contribute_planning_guidance() -> None:
    child_id = child_session_id("root", "call-1")
    plugin = await _opened(child_id)
    assert await _prompt_notes(plugin, child_id) == []
