"""On the Restate host, over a fake positional journal: a worker that dies after plan mode's
``update_plan`` attempt was journaled (and before the commit) is redriven; the redrive replays
the attempt without running the tool and still commits the plan in plan mode's state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

import lash
from lash.durable.restate import RestateEffectHost
from lash.plugins import PlanMode
from lash.stores import SqliteStore
from lash.stores.liveness import opaque_owner
from lash.testing import ScriptedProvider, reply, tool_call
from lash.types import TurnResult

from ._redrive import build_core, drive_attempt
from .fake_journal import Crash, FakeJournal

STEPS = [
    {"step": "Read the code", "status": "completed"},
    {"step": "Change greet()", "status": "in_progress"},
]
RUNS: list[str] = []


class CountingPlanMode(PlanMode):
    async def _run_update_plan(self, ctx: lash.ToolContext, args: dict[str, Any]) -> Any:
        RUNS.append(ctx.call_id)
        return await super()._run_update_plan(ctx, args)


async def test_a_redrive_replays_update_plan_and_commits_the_plan(tmp_path: Path) -> None:
    RUNS.clear()
    journal = FakeJournal()
    db = tmp_path / "s.db"
    owner = opaque_owner("restate:wf-plan", "restate")
    call_key = "s1:t1:1:0:tool_batch:2:child:0:c1"

    async def attempt(model: ScriptedProvider, host: RestateEffectHost) -> dict[str, Any]:
        core = build_core(SqliteStore(db), model, plugins=[CountingPlanMode])
        return await drive_attempt(journal, core, host, owner=owner, turn_input="plan it")

    # positions: 0 start, 1 first model call, 2 the update_plan attempt, 3 the second model
    # call: the worker dies there, after the attempt is journaled and before any commit
    journal.crash_at = 3
    first = RestateEffectHost(journal)
    with pytest.raises(Crash):
        await attempt(ScriptedProvider([tool_call("update_plan", {"plan": STEPS}, "c1")]), first)
    assert RUNS == ["c1"]
    assert first.executed == ["s1:t1:1:0:llm_call:1:attempt:1", f"{call_key}:attempt:1"]
    recorded = msgspec.json.decode(journal.entries[2][1])
    assert recorded["outcome"]["plugin_states"]["plan_mode"]["plan"] == STEPS
    async with SqliteStore(db) as store:
        persisted = await store.load_session("s1")
    assert persisted is None or persisted.head_revision == 0  # nothing committed

    journal.crash_at = None
    second = RestateEffectHost(journal)
    result = msgspec.convert(
        await attempt(ScriptedProvider([reply("planned")]), second), type=TurnResult
    )
    assert result.outcome.kind == "finished"
    assert RUNS == ["c1"]  # the attempt was replayed from the journal, the tool did not run
    assert f"{call_key}:attempt:1" not in second.executed
    assert result.tool_calls[0].output == {"generation": 1, "plan": STEPS}

    async with SqliteStore(db) as store:
        loaded = await store.load_session("s1")
    assert loaded is not None
    state = loaded.checkpoint.plugin_state["plan_mode"]
    assert state["plan"] == STEPS and state["generation"] == 1 and state["enabled"] is True
