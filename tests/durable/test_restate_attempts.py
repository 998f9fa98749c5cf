"""On the Restate host, over a fake positional journal: each tool attempt is its own journaled
step and each retry back-off a named durable timer between them, so a worker that dies during a
back-off is redriven at the timer without running the earlier attempt again; and the run
handler's seal waits for the durable gate, so a cancel that closed it first (after the turn's
last gate read) makes the turn commit cancelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from restate import TerminalError

import lash
from lash.durable.restate import RestateEffectHost
from lash.durable.restate.service import _JournaledTurnControl
from lash.durable.restate.waits import CANCEL_PROMISE
from lash.stores import SqliteStore
from lash.stores.liveness import opaque_owner
from lash.testing import ScriptedProvider, reply, tool_call
from lash.types import CancellationEvidence, TurnResult, to_builtins

from ._redrive import build_core, drive_attempt
from .fake_journal import Crash, FakeJournal


class _Timer:
    def __init__(self, journal: FakeJournal, name: str, seconds: float, crash: bool) -> None:
        self.journal, self.name, self.seconds, self.crash = journal, name, seconds, crash

    def __await__(self) -> Any:
        return self._wait().__await__()

    async def _wait(self) -> None:
        async def fire() -> bytes:
            if self.crash:
                raise Crash(self.name)
            return b"fired"

        await self.journal.run_typed(self.name, fire, None)


class _Promise:
    def __init__(self, store: dict[str, Any], name: str) -> None:
        self.store, self.name = store, name

    async def resolve(self, value: Any) -> None:
        if self.name in self.store:
            raise TerminalError("promise already completed", 409)
        self.store[self.name] = value

    async def peek(self) -> Any:
        return self.store.get(self.name)


class FakeWorkflow:
    """Timers are positional journal entries (a replay finds a fired one and does not wait);
    promises are a shared dict, like Restate's workflow promises."""

    def __init__(self, journal: FakeJournal) -> None:
        self.journal = journal
        self.promises: dict[str, Any] = {}
        self.timers: list[tuple[str | None, float]] = []
        self.crash_on_timer: str | None = None

    def sleep(self, delta: Any, name: str | None = None) -> _Timer:
        self.timers.append((name, delta.total_seconds()))
        crash = name is not None and name == self.crash_on_timer
        return _Timer(self.journal, f"timer:{name}", delta.total_seconds(), crash)

    def promise(self, name: str, type_hint: Any = None) -> _Promise:
        return _Promise(self.promises, name)


async def test_a_worker_dying_in_a_back_off_is_redriven_at_the_timer_not_the_first_attempt(
    tmp_path: Path,
) -> None:
    calls: list[int] = []

    @lash.tool(retry="safe", max_attempts=3, base_delay_ms=250)
    async def flaky(ctx: lash.ToolContext) -> str:
        """Fails once with a transient error, then works."""
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise lash.ToolError("busy", code="busy", retryable=True)
        return "done"

    journal = FakeJournal()
    workflow = FakeWorkflow(journal)
    db = tmp_path / "s.db"
    owner = opaque_owner("restate:wf-attempts", "restate")

    async def attempt(model: ScriptedProvider, host: RestateEffectHost) -> dict[str, Any]:
        core = build_core(SqliteStore(db), model, tools=[flaky])
        return await drive_attempt(journal, core, host, owner=owner, turn_input="go")

    first_model = ScriptedProvider([tool_call("flaky", {}, call_id="c1")])
    first = RestateEffectHost(journal, workflow=workflow)
    # die when the back-off's timer is about to be journaled
    call_key = "s1:t1:1:0:tool_batch:2:child:0:c1"
    workflow.crash_on_timer = f"lash:{call_key}:attempt:1:sleep"
    with pytest.raises(Crash):
        await attempt(first_model, first)
    assert calls == [1]
    assert first.executed == ["s1:t1:1:0:llm_call:1:attempt:1", f"{call_key}:attempt:1"]
    assert workflow.timers == [(f"lash:{call_key}:attempt:1:sleep", 0.25)]

    workflow.crash_on_timer = None
    second = RestateEffectHost(journal, workflow=workflow)
    result = msgspec.convert(
        await attempt(ScriptedProvider([reply("ok")]), second), type=TurnResult
    )
    assert result.outcome.kind == "finished"
    record = result.tool_calls[0]
    assert (record.status, record.attempts, record.output) == ("success", 2, "done")
    assert calls == [1, 2]  # attempt 1 was replayed from its journaled step
    assert second.executed[0] == f"{call_key}:attempt:2"
    assert len(second.executed) == 2 and "llm_call" in second.executed[1]
    names = [name for name, _ in journal.entries]
    assert names[:5] == [
        "lash:s1:t1:start",
        "lash:s1:t1:1:0:llm_call:1:attempt:1",
        f"lash:{call_key}:attempt:1",
        f"timer:lash:{call_key}:attempt:1:sleep",
        f"lash:{call_key}:attempt:2",
    ]

    third = RestateEffectHost(journal, workflow=workflow)
    timers_before = len(workflow.timers)
    replayed = msgspec.convert(await attempt(ScriptedProvider([]), third), type=TurnResult)
    assert replayed.head_revision == result.head_revision and replayed.outcome == result.outcome
    assert third.executed == [] and calls == [1, 2]
    # the replay re-issues the journaled timer (as Restate requires), it does not add one
    assert workflow.timers[timers_before:] == [(f"lash:{call_key}:attempt:1:sleep", 0.25)]
    assert journal.cursor == len(journal.entries)


def _evidence(request_id: str) -> CancellationEvidence:
    return CancellationEvidence(request_id=request_id, origin="user", reason="stop")


async def test_the_seal_adopts_a_cancel_that_closed_the_durable_gate_first(tmp_path: Path) -> None:
    """No probe read the gate after the cancel landed: only the seal can see it, and it must
    before the commit."""
    journal = FakeJournal()
    workflow = FakeWorkflow(journal)
    workflow.promises[CANCEL_PROMISE] = to_builtins(
        {"status": "cancel_requested", "evidence": to_builtins(_evidence("r1"))}
    )
    control = _JournaledTurnControl(workflow)  # type: ignore[arg-type]
    host = RestateEffectHost(journal, turn_control=control, workflow=workflow)
    control.host = host
    model = ScriptedProvider([reply("finished anyway")])
    async with build_core(SqliteStore(tmp_path / "s.db"), model, tools=[]) as core:
        session = await core.session("s1").owner(opaque_owner("o", "i")).open()
        result = await session.turn("go").turn_id("t1").effects(host).run()
        view = await session.read_view()
    assert (result.outcome.kind, result.outcome.reason) == ("stopped", "cancelled")
    assert result.cancellation == _evidence("r1")
    assert len(model.requests) == 1  # the model answered; the gate's first writer still wins
    assert control.peek("s1", "t1").status == "cancel_requested"
    late = control.request_cancel("s1", "t1", _evidence("r2"))
    assert (late.outcome, late.evidence) == ("already_requested", _evidence("r1"))
    assert view.revision == 1  # one commit, of the cancelled outcome (evidence makes it so)
    await control.settle()


async def test_the_seal_closes_an_open_durable_gate_before_the_commit(tmp_path: Path) -> None:
    journal = FakeJournal()
    workflow = FakeWorkflow(journal)
    control = _JournaledTurnControl(workflow)  # type: ignore[arg-type]
    host = RestateEffectHost(journal, turn_control=control, workflow=workflow)
    control.host = host
    core = build_core(SqliteStore(tmp_path / "s.db"), ScriptedProvider([reply("ok")]), tools=[])
    async with core:
        session = await core.session("s1").owner(opaque_owner("o", "i")).open()
        result = await session.turn("go").turn_id("t1").effects(host).run()
    assert result.outcome.kind == "finished" and result.cancellation is None
    assert workflow.promises[CANCEL_PROMISE]["status"] == "completion_sealed"
    assert control.request_cancel("s1", "t1", _evidence("late")).outcome == "completion_won_race"
    await control.settle()
