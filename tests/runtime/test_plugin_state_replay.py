"""Plugin state a tool attempt changed travels in the attempt's recorded outcome: a replay that
hands the outcome back without running the tool restores it, so the turn commits the state the
first run had; concurrent attempts that changed one plugin replay to the last completer's state
whatever order the host replays them in; an outcome recorded before the field existed decodes."""

from __future__ import annotations

import asyncio
from typing import Any

import lash
from lash.durable.outcome import dump_outcome, load_outcome
from lash.plugins import PlanMode
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.testing.effect_hosts import ReplayJournalHost
from lash.tools.dispatch import ToolAttemptOutcome
from lash.types import ToolCallOutput, to_builtins

STEPS = [
    {"step": "Read the code", "status": "completed"},
    {"step": "Fix it", "status": "in_progress"},
]


class CountingPlanMode(PlanMode):
    runs: list[str] = []

    async def _run_update_plan(self, ctx: lash.ToolContext, args: dict[str, Any]) -> Any:
        CountingPlanMode.runs.append(ctx.call_id)
        return await super()._run_update_plan(ctx, args)


async def _turn(
    host: ReplayJournalHost, script: list[Any], plugins: list[Any]
) -> tuple[lash.TurnResult, dict[str, Any]]:
    """One turn on a fresh store (a replay stands for a redrive whose first commit never
    happened); returns the result and the committed plugin state."""
    store = MemoryStore()
    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider(script))
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(host)
        .plugins(plugins)
        .build()
    )
    session = await core.session("s1").open()
    result = await session.turn("go").turn_id("t1").run()
    loaded = await store.load_session("s1")
    assert loaded is not None
    return result, dict(loaded.checkpoint.plugin_state)


async def test_a_replayed_update_plan_restores_the_plan_without_running_the_tool() -> None:
    CountingPlanMode.runs = []
    host = ReplayJournalHost()
    script = [tool_call("update_plan", {"plan": STEPS}, "c1"), reply("planned")]
    first, first_state = await _turn(host, script, [CountingPlanMode])
    assert CountingPlanMode.runs == ["c1"] and len(host.ran) == 1
    assert first_state["plan_mode"]["plan"] == STEPS
    assert first_state["plan_mode"]["generation"] == 1

    again, again_state = await _turn(host, script, [CountingPlanMode])
    assert CountingPlanMode.runs == ["c1"]  # replayed, not run
    assert host.replayed == host.ran
    assert again_state["plan_mode"] == first_state["plan_mode"]
    assert again.tool_calls[0].output == first.tool_calls[0].output


async def test_an_attempt_that_changed_no_plugin_records_no_state() -> None:
    @lash.tool
    async def echo(text: str) -> str:
        """Echo."""
        return text

    host = ReplayJournalHost()
    store = MemoryStore()
    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([tool_call("echo", {"text": "hi"}, "c1"), reply("ok")]))
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(host)
        .tools([echo])
        .plugins([lambda: PlanMode(enabled=False)])
        .build()
    )
    session = await core.session("s1").open()
    await session.turn("go").turn_id("t1").run()
    (record,) = host.records.values()
    assert record["v"] == 2 and record["plugin_states"] == {} and record["state_seq"] == 0


class Notes(lash.Plugin):
    """A plugin whose tool appends to its state; ``b`` waits until ``a`` has noted."""

    id = "notes"

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[str] = []
        noted_a = asyncio.Event()

        @lash.tool
        async def note(tag: str) -> str:
            """Note a tag."""
            self.runs.append(tag)
            if tag == "b":
                await noted_a.wait()
            self.state = {**self.state, "notes": [*self.state.get("notes", []), tag]}
            if tag == "a":
                noted_a.set()
            return tag

        self._tool = note

    def tools(self) -> list[lash.Tool]:
        return [self._tool]


def _batch_script() -> list[Any]:
    items = [
        {"tool": "note", "parameters": {"tag": "b"}},
        {"tool": "note", "parameters": {"tag": "a"}},
    ]
    return [tool_call("batch", {"tool_calls": items}, "b1"), reply("ok")]


async def _first_batch_run() -> tuple[ReplayJournalHost, dict[str, Any]]:
    host = ReplayJournalHost()
    _, state = await _turn(host, _batch_script(), [Notes])
    assert state["notes"] == {"notes": ["a", "b"]}
    return host, state


async def test_concurrent_changes_replay_to_the_last_completers_snapshot() -> None:
    host, first_state = await _first_batch_run()
    by_tag = {}
    for key, record in host.records.items():
        by_tag[record["output"]["payload"]] = (key, record)
    (key_a, rec_a), (key_b, rec_b) = by_tag["a"], by_tag["b"]
    # a completed first with only its own note; b's snapshot holds both
    assert rec_a["plugin_states"] == {"notes": {"notes": ["a"]}} and rec_a["state_seq"] == 1
    assert rec_b["plugin_states"] == {"notes": {"notes": ["a", "b"]}} and rec_b["state_seq"] == 2

    # replay b before a: a's older snapshot must not roll the plugin back
    host.delays = {key_a: 20}
    _, replayed_state = await _turn(host, _batch_script(), [Notes])
    assert host.replayed == [key_b, key_a]
    assert replayed_state["notes"] == first_state["notes"]


async def test_concurrent_changes_replay_in_completion_order_too() -> None:
    host, first_state = await _first_batch_run()
    keys = {record["output"]["payload"]: key for key, record in host.records.items()}
    host.delays = {keys["b"]: 20}
    _, replayed_state = await _turn(host, _batch_script(), [Notes])
    assert host.replayed == [keys["a"], keys["b"]]
    assert replayed_state["notes"] == first_state["notes"]


async def test_a_fresh_attempt_after_a_replayed_one_builds_on_the_restored_state() -> None:
    """The redrive replays the first call and runs the second: the run continues from the
    restored plan (generation 2, not 1)."""
    CountingPlanMode.runs = []
    host = ReplayJournalHost()
    one = [tool_call("update_plan", {"plan": STEPS}, "c1"), reply("planned")]
    await _turn(host, one, [CountingPlanMode])
    later = [{"step": "Fix it", "status": "completed"}]
    two = [
        tool_call("update_plan", {"plan": STEPS}, "c1"),
        tool_call("update_plan", {"plan": later}, "c2"),
        reply("planned"),
    ]
    _, state = await _turn(host, two, [CountingPlanMode])
    assert CountingPlanMode.runs == ["c1", "c2"]
    assert state["plan_mode"]["generation"] == 2 and state["plan_mode"]["plan"] == later


def test_an_outcome_recorded_before_plugin_state_still_decodes() -> None:
    output = ToolCallOutput(status="success", payload={"output": 1, "v": "x"}, attempts=1)
    legacy = to_builtins(output)  # what version 1 recorded: the bare output
    decoded = load_outcome(legacy, ToolAttemptOutcome)
    assert decoded == ToolAttemptOutcome(v=1, output=output)
    assert decoded.plugin_states == {} and decoded.state_seq == 0

    current = ToolAttemptOutcome(output=output, plugin_states={"p": {"k": [1]}}, state_seq=3)
    assert load_outcome(dump_outcome(current, ToolAttemptOutcome), ToolAttemptOutcome) == current
