"""A durable replay of ``plan_exit`` (the attempt answered from its record, the tool not run)
still does what the first run did later in the turn: the fresh-context switch into the
recorded agent frame and the one ``plan_mode.state`` event that ends planning."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import lash
from lash.plugins import PlanMode
from lash.plugins.plan_file import FRESH_CONTEXT, PlanExitAnswer, PlanExitRequest
from lash.plugins.plan_mode import PLAN_MODE_STATE_EVENT
from lash.runtime.plugins import PluginSessionContext, PrepareContext
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.testing.effect_hosts import ReplayJournalHost
from lash.types import LlmRequest, PluginRuntime, ToolCallCompleted

STEPS = [{"step": "Do it", "status": "pending"}]


class Prompt:
    def __init__(self) -> None:
        self.asked = 0

    async def __call__(self, request: PlanExitRequest) -> PlanExitAnswer:
        self.asked += 1
        return PlanExitAnswer(selection=FRESH_CONTEXT)


async def _turn(
    tmp_path: Path, host: ReplayJournalHost, prompt: Prompt
) -> tuple[list[Any], str | None, list[dict[str, Any]], list[LlmRequest], dict[str, Any]]:
    """One planning turn on a fresh store (standing for a redrive whose commit never landed):
    the tool outputs, the agent frame it ended in, plan mode's events, the model requests and the
    committed plan-mode state."""
    provider = ScriptedProvider(
        [
            tool_call("update_plan", {"plan": STEPS}, "c1"),
            tool_call("plan_exit", {}, "c2"),
            reply("implementing"),
        ]
    )
    store = MemoryStore()
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(host)
        .plugins([functools.partial(PlanMode, workspace=tmp_path, prompt=prompt)])
        .build()
    )
    session = await core.session("s").open()
    events: list[dict[str, Any]] = []
    outputs: list[Any] = []

    async def sink(activity: lash.TurnActivity) -> None:
        if isinstance(activity.event, ToolCallCompleted):
            outputs.append(activity.event.output.payload)
        if isinstance(activity.event, PluginRuntime) and activity.event.plugin_id == "plan_mode":
            events.append(activity.event.event)

    await session.turn("plan it").turn_id("t1").on_event(sink).run()
    frame = (await session.read_view()).current_agent_frame_id
    loaded = await store.load_session("s")
    assert loaded is not None
    state = dict(loaded.checkpoint.plugin_state["plan_mode"])
    await core.aclose()
    return outputs, frame, events, list(provider.requests), state


def _states(events: list[dict[str, Any]]) -> list[bool]:
    return [e["payload"]["enabled"] for e in events if e["name"] == PLAN_MODE_STATE_EVENT]


async def test_a_replayed_fresh_context_plan_exit_still_switches_and_announces_once(
    tmp_path: Path,
) -> None:
    host, prompt = ReplayJournalHost(), Prompt()
    first, first_frame, first_events, _, first_state = await _turn(tmp_path, host, prompt)
    frame_id = first[1]["frame_id"]
    assert first_frame == frame_id and _states(first_events) == [True, False]
    assert prompt.asked == 1 and len(host.records) == 2

    again, frame, events, requests, state = await _turn(tmp_path, host, prompt)
    assert prompt.asked == 1 and len(host.replayed) == 2  # plan_exit replayed, not asked again
    assert again == first
    assert frame == frame_id  # the recorded switch, into the recorded frame
    assert len(requests) == 3  # the fresh frame's model call happened
    assert _states(events) == [True, False]  # the end of planning announced exactly once
    assert state == first_state and not state["enabled"]
    assert "pending_switch" not in state and "pending_announce" not in state


async def test_state_committed_before_the_pending_fields_still_opens(tmp_path: Path) -> None:
    old = {"enabled": True, "generation": 2, "plan": STEPS}
    plugin = PlanMode(workspace=tmp_path)
    await plugin.open_session(PluginSessionContext(session_id="s", state=old))
    assert plugin.enabled and plugin.plan == STEPS and plugin.generation == 2
    plugin.restore_state({"enabled": False, "generation": 3, "plan": []})  # an old record
    assert not plugin.enabled and plugin.generation == 3
    ctx = PrepareContext(
        session_id="s", turn_id="t", turn_index=1, agent_frame_id="f", context_window=1000
    )
    assert await plugin.before_llm_call(ctx, LlmRequest(model="m", messages=())) is None


async def test_a_switch_left_pending_by_an_earlier_turn_is_dropped(tmp_path: Path) -> None:
    pending = {"frame_id": "plan-frame-x", "task": "go"}
    state = {"enabled": False, "generation": 0, "plan": [], "pending_switch": pending}
    plugin = PlanMode(workspace=tmp_path)
    await plugin.open_session(PluginSessionContext(session_id="s", state=state))
    ctx = PrepareContext(
        session_id="s", turn_id="t", turn_index=1, agent_frame_id="f", context_window=1000
    )
    await plugin.prepare_turn(ctx)
    assert await plugin.before_llm_call(ctx, LlmRequest(model="m", messages=())) is None
    assert "pending_switch" not in plugin.state
