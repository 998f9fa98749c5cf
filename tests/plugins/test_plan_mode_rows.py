"""Spec rows of processes-tools §5.8 for plan mode: ``update_plan`` (the checklist) and the
plan file with the three-way ``plan_exit`` decision."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import msgspec

import lash
from lash.plugins import PlanMode
from lash.plugins.plan_file import (
    FRESH_CONTEXT,
    IMPLEMENT_NOW,
    KEEP_PLANNING,
    PLAN_EXIT_RESULT_SCHEMA,
    PLAN_TEMPLATE,
    PlanExitAnswer,
    PlanExitRequest,
    PlanReview,
    fresh_context_input,
    next_turn_input,
    plan_file_path,
    read_plan_report,
    seed_plan_file,
)
from lash.plugins.plan_mode import PLAN_SNAPSHOT_EVENT, PLANNING_GUIDANCE, plan_snapshot_event
from lash.plugins.subagents import child_session_id
from lash.runtime.plugins import PluginSessionContext, PrepareContext
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools import Tool, ToolContext, _jsonschema
from lash.tools.builtin import workspace_tools
from lash.types import (
    LlmRequest,
    Message,
    PluginRuntime,
    TextPart,
    ToolCallCompleted,
    ToolCallOutput,
)


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
        if isinstance(e.event, PluginRuntime)
        and e.event.plugin_id == "plan_mode"
        and e.event.event["name"] == PLAN_SNAPSHOT_EVENT
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


# --- plan mode: the plan file and the plan_exit decision -------------------------------------


class Host:
    """A plan_exit prompt that records the requests and gives scripted answers."""

    def __init__(self, *answers: PlanExitAnswer) -> None:
        self.answers = list(answers)
        self.requests: list[PlanExitRequest] = []

    async def __call__(self, request: PlanExitRequest) -> PlanExitAnswer:
        self.requests.append(request)
        return self.answers.pop(0)


def _planning_core(tmp_path: Path, provider: ScriptedProvider, host: Host) -> lash.LashCore:
    planning = functools.partial(PlanMode, workspace=tmp_path, prompt=host)
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools(workspace_tools(tmp_path))
        .plugins([planning])
        .build()
    )


def _names(request: LlmRequest) -> list[str]:
    return [t.name for t in request.tools]


def _user_texts(request: LlmRequest) -> list[str]:
    return [m.text for m in request.messages if m.role == "user"]


async def _completed(session: lash.LashSession, text: str) -> list[ToolCallCompleted]:
    seen: list[ToolCallCompleted] = []

    async def sink(activity: lash.TurnActivity) -> None:
        if isinstance(activity.event, ToolCallCompleted):
            seen.append(activity.event)

    await session.turn(text).on_event(sink).run()
    return seen


async def test_seeded_template_is_readable_without_validation(tmp_path: Path) -> None:
    path = plan_file_path(tmp_path, "run-session")
    assert seed_plan_file(path) is True and seed_plan_file(path) is False  # never overwrites
    report = read_plan_report(path, ".lash/plans/run-session.md")
    assert report.content == PLAN_TEMPLATE
    assert report.review_markdown() == PLAN_TEMPLATE.rstrip()
    # free-form text is a plan too: nothing checks its structure
    path.write_text("just fix the typo\n")
    assert read_plan_report(path, "p.md").review_markdown() == "just fix the typo"
    assert read_plan_report(tmp_path / "missing.md", "m.md").review_markdown() == "Path: `m.md`"

    # in a session: the first planning turn seeds the file, the model reads it, and plan_exit
    # hands the untouched template to the host for review without rejecting it
    host = Host(PlanExitAnswer(selection=IMPLEMENT_NOW))
    provider = ScriptedProvider(
        [
            tool_call("read_file", {"path": ".lash/plans/s.md"}, "c1"),
            tool_call("plan_exit", {}, "c2"),
            reply("approved"),
        ]
    )
    session = await _planning_core(tmp_path, provider, host).session("s").open()
    calls = await _completed(session, "plan")
    assert (tmp_path / ".lash/plans/s.md").read_text() == PLAN_TEMPLATE
    assert "## Verification" in str(calls[0].output.payload)
    [request] = host.requests
    assert request.plan_path == ".lash/plans/s.md"
    assert request.options == (IMPLEMENT_NOW, KEEP_PLANNING, FRESH_CONTEXT)
    assert request.review == PlanReview(title="PLAN", markdown=PLAN_TEMPLATE.rstrip())
    assert calls[1].output.status == "success" and calls[1].output.payload["approved"] is True


async def test_plan_exit_next_turn_input_appends_user_note(tmp_path: Path) -> None:
    base = next_turn_input(".lash/plans/run-session.md")
    assert base.startswith("The plan in `.lash/plans/run-session.md` is approved.")
    assert "User note" not in base
    with_note = next_turn_input(".lash/plans/run-session.md", "start with the safe slice")
    assert with_note == f"{base}\n\nUser note: start with the safe slice"
    assert next_turn_input(".lash/plans/run-session.md", "   ") == base

    host = Host(PlanExitAnswer(selection=IMPLEMENT_NOW, note="start with the safe slice"))
    provider = ScriptedProvider(
        [
            tool_call("write", {"path": ".lash/plans/s.md", "content": "# Plan\n- fix\n"}, "c1"),
            tool_call("plan_exit", {}, "c2"),
            reply("ok, will implement"),
            reply("implementing"),
        ]
    )
    core = _planning_core(tmp_path, provider, host)
    session = await core.session("s").open()
    calls = await _completed(session, "plan")
    assert calls[0].output.status == "success"  # the plan file is writable while planning
    out = calls[1].output.payload
    assert _jsonschema.validate(out, PLAN_EXIT_RESULT_SCHEMA) is None
    assert out["execution_mode"] == "current_session"
    note = "start with the safe slice"
    assert out["next_turn_input"] == next_turn_input(".lash/plans/s.md", note)
    assert out["answer"] == {
        "kind": "single",
        "selection": IMPLEMENT_NOW,
        "note": "start with the safe slice",
    }
    assert out["confirmation_display"] == f"{IMPLEMENT_NOW}\n\nNote: start with the safe slice"
    assert host.requests[0].review == PlanReview(title="PLAN", markdown="# Plan\n- fix")
    plugin = session.plugin("plan_mode")
    assert isinstance(plugin, PlanMode) and plugin.enabled is False
    # the host submits the generated input; the implementation catalog is back
    await session.turn(out["next_turn_input"]).run()
    last = provider.requests[-1]
    assert _user_texts(last)[-1].endswith("User note: start with the safe slice")
    assert "exec_command" in _names(last) and "plan_exit" not in _names(last)


async def test_plan_exit_fresh_context_input_is_short_and_direct(tmp_path: Path) -> None:
    task = fresh_context_input(".lash/plans/run-session.md")
    assert task == "Implement the plan at .lash/plans/run-session.md completely and faithfully."
    assert "\n" not in task and len(task) < 100

    host = Host(PlanExitAnswer(selection=FRESH_CONTEXT, note="ignored in a fresh frame"))
    provider = ScriptedProvider(
        [
            tool_call("glob", {"pattern": "*"}, "c1"),
            tool_call("plan_exit", {}, "c2"),
            reply("implementing from the plan"),
        ]
    )
    core = _planning_core(tmp_path, provider, host)
    session = await core.session("s").open()
    before = (await session.read_view()).current_agent_frame_id
    calls = await _completed(session, "plan the refactor")
    out = calls[1].output.payload
    assert _jsonschema.validate(out, PLAN_EXIT_RESULT_SCHEMA) is None
    assert out["execution_mode"] == "fresh_context" and "next_turn_input" not in out
    assert out["frame_id"].startswith("plan-frame-")
    # the turn ended as a switch: the fresh frame's prompt holds only the short task, no
    # planning history, and runs with the implementation catalog
    assert len(provider.requests) == 3
    fresh = provider.requests[2]
    assert _user_texts(fresh) == [fresh_context_input(".lash/plans/s.md")]
    assert not any(m.role == "tool" for m in fresh.messages)
    assert "exec_command" in _names(fresh) and "plan_exit" not in _names(fresh)
    view = await session.read_view()
    assert view.current_agent_frame_id == out["frame_id"] != before


async def test_plan_exit_keep_planning_and_blocked_file_tools(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x\n")
    host = Host(PlanExitAnswer(selection=KEEP_PLANNING), PlanExitAnswer(selection="Ship it"))
    provider = ScriptedProvider(
        [
            [
                tool_call("write", {"path": "a.txt", "content": "y"}, "c1"),
                tool_call("edit", {"path": ".lash/plans/other.md", "edits": []}, "c2"),
            ],
            tool_call("plan_exit", {}, "c3"),
            tool_call("plan_exit", {}, "c4"),
            reply("still planning"),
        ]
    )
    session = await _planning_core(tmp_path, provider, host).session("s").open()
    result = await session.turn("plan").run()
    blocked = result.tool_calls[:2]
    assert [c.error_code for c in blocked] == ["plan_mode_tool_blocked"] * 2
    assert (tmp_path / "a.txt").read_text() == "x\n"
    kept = result.tool_calls[2]
    assert kept.output["approved"] is False and kept.output["plan_path"] == ".lash/plans/s.md"
    bad = result.tool_calls[3]
    assert (bad.status, bad.error_code) == ("failure", "invalid_plan_exit_answer")
    plugin = session.plugin("plan_mode")
    assert isinstance(plugin, PlanMode) and plugin.enabled
    assert plugin.status() == {
        "session_id": "s",
        "enabled": True,
        "plan_path": ".lash/plans/s.md",
    }
    assert plugin.toggle()["enabled"] is False and plugin.toggle()["enabled"] is True
