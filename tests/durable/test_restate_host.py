"""RestateEffectHost over a fake positional journal: replay, envelope mismatch, errors as data,
and a whole turn that "dies" before its second model call and is redriven."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

import lash
from lash.durable.restate import (
    AWAIT_SECRET_REQUIRED,
    EFFECT_HASH_MISMATCH,
    RecordedEffectError,
    RestateEffectHost,
    run_durable_turn,
    turn_services,
)
from lash.errors import LashRuntimeError
from lash.runtime.await_events import AwaitEventSigner, WaitIdentity
from lash.runtime.scope import ExecutionScope
from lash.stores import MemoryStore
from lash.stores.base import DurabilityTier
from lash.stores.liveness import opaque_owner
from lash.testing import ScriptedProvider, reply, tool_call
from lash.types import (
    CancellationEvidence,
    LlmCallRecord,
    LlmRequest,
    LlmResponse,
    Message,
    ProviderFailure,
    TextPart,
    ToolCallOutput,
    TurnResult,
)

from ._redrive import build_core, drive_attempt
from .fake_journal import Crash, FakeJournal

SCOPE = ExecutionScope.turn("s1", "t1")
LLM_TYPE = tuple[LlmResponse | ProviderFailure, LlmCallRecord]


def _request(text: str) -> LlmRequest:
    return LlmRequest(
        model="m", messages=(Message(id="t1:m1", role="user", parts=(TextPart(text=text),)),)
    )


async def test_host_is_durable_and_runs_effects_one_at_a_time() -> None:
    host = RestateEffectHost(FakeJournal())
    assert host.tier is DurabilityTier.DURABLE
    assert host.supports_concurrent_effects is False


async def test_a_replay_returns_the_recorded_outcome_without_running_the_closure() -> None:
    journal = FakeJournal()
    calls: list[str] = []
    outcome = (
        LlmResponse(parts=(TextPart(text="hi"),)),
        LlmCallRecord(call_id="c1", model="m"),
    )

    async def call() -> tuple[LlmResponse | ProviderFailure, LlmCallRecord]:
        calls.append("llm")
        return outcome

    first = RestateEffectHost(journal.context())
    got = await first.run_effect(SCOPE, "llm_call", "k1", _request("x"), call, result_type=LLM_TYPE)
    assert got == outcome and calls == ["llm"] and first.executed == ["k1"]

    second = RestateEffectHost(journal.context())
    replayed = await second.run_effect(
        SCOPE, "llm_call", "k1", _request("x"), call, result_type=LLM_TYPE
    )
    assert calls == ["llm"] and second.executed == []
    assert replayed == outcome
    assert isinstance(replayed[0], LlmResponse) and isinstance(replayed[1], LlmCallRecord)


async def test_a_provider_failure_outcome_replays_as_the_same_member_of_the_union() -> None:
    journal = FakeJournal()
    failure = ProviderFailure(kind="quota", message="slow down", retryable=True)

    async def call() -> tuple[LlmResponse | ProviderFailure, LlmCallRecord]:
        return failure, LlmCallRecord(call_id="c", model="m")

    await RestateEffectHost(journal.context()).run_effect(
        SCOPE, "llm_call", "k", _request("x"), call, result_type=LLM_TYPE
    )
    got, _ = await RestateEffectHost(journal.context()).run_effect(
        SCOPE, "llm_call", "k", _request("x"), call, result_type=LLM_TYPE
    )
    assert got == failure


async def test_a_changed_envelope_on_replay_is_a_mismatch_naming_the_first_diverging_path() -> None:
    journal = FakeJournal()
    ran: list[int] = []

    async def call() -> ToolCallOutput:
        ran.append(1)
        return ToolCallOutput(status="success", payload="ok")

    await RestateEffectHost(journal.context()).run_effect(
        SCOPE, "tool_attempt", "k", _request("before"), call, result_type=ToolCallOutput
    )
    with pytest.raises(LashRuntimeError) as info:
        await RestateEffectHost(journal.context()).run_effect(
            SCOPE, "tool_attempt", "k", _request("after"), call, result_type=ToolCallOutput
        )
    assert info.value.is_code(EFFECT_HASH_MISMATCH)
    assert "$.messages[0].parts[0].text" in info.value.message
    assert "before" not in info.value.message and "after" not in info.value.message
    assert ran == [1]


async def test_a_different_effect_kind_at_a_recorded_key_is_a_mismatch() -> None:
    journal = FakeJournal()

    async def call() -> ToolCallOutput:
        return ToolCallOutput(status="success")

    await RestateEffectHost(journal.context()).run_effect(SCOPE, "tool_attempt", "k", {}, call)
    with pytest.raises(LashRuntimeError, match=r"\$kind") as info:
        await RestateEffectHost(journal.context()).run_effect(SCOPE, "llm_call", "k", {}, call)
    assert info.value.is_code(EFFECT_HASH_MISMATCH)


async def test_an_effect_error_is_recorded_as_data_and_replayed_without_running_again() -> None:
    journal = FakeJournal()
    ran: list[int] = []

    async def boom() -> ToolCallOutput:
        ran.append(1)
        raise ValueError("disk on fire")

    for _ in range(2):
        with pytest.raises(RecordedEffectError, match="ValueError: disk on fire"):
            await RestateEffectHost(journal.context()).run_effect(
                SCOPE, "tool_attempt", "k", {"a": 1}, boom, result_type=ToolCallOutput
            )
    assert ran == [1]
    assert len(journal.entries) == 1


async def test_a_recorded_runtime_error_keeps_its_code_on_replay() -> None:
    journal = FakeJournal()

    async def fail() -> None:
        raise LashRuntimeError("store_commit_failed", "nope")

    for _ in range(2):
        with pytest.raises(LashRuntimeError) as info:
            await RestateEffectHost(journal.context()).run_effect(SCOPE, "direct", "k", {}, fail)
        assert info.value.is_code("store_commit_failed") and info.value.message == "nope"


# --- whole turns ------------------------------------------------------------------------


def _commits(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM turn_commits").fetchone()[0])


async def test_a_redriven_turn_replays_the_model_and_the_tool_and_commits_once(
    tmp_path: Path,
) -> None:
    """The first attempt dies before its second model call; the redrive (a new core on the same
    store, same owner) replays call 1 and the tool, then runs call 2 and commits once. A third
    attempt after the commit answers from the store without running anything."""
    lines = tmp_path / "lines.txt"

    @lash.tool
    async def append(ctx: lash.ToolContext, text: str) -> str:
        """Append a line to the file."""
        with lines.open("a") as fh:
            fh.write(text + "\n")
        return "appended"

    db = tmp_path / "s.db"
    owner = opaque_owner("restate:wf-1", "restate")
    journal = FakeJournal()
    journal.crash_at = 3  # start marker, llm_call, tool_attempt, then the second llm_call

    async def attempt(model: ScriptedProvider, host: RestateEffectHost) -> dict[str, Any]:
        core = build_core(lash.stores.SqliteStore(db), model, tools=[append])
        return await drive_attempt(journal, core, host, owner=owner, turn_input="go")

    first_model = ScriptedProvider([tool_call("append", {"text": "one"}, call_id="c1")])
    with pytest.raises(Crash):
        await attempt(first_model, RestateEffectHost(journal))
    assert lines.read_text() == "one\n"
    assert len(first_model.requests) == 1 and _commits(db) == 0

    journal.crash_at = None
    second_model = ScriptedProvider([reply("done")])
    host = RestateEffectHost(journal)
    result = msgspec.convert(await attempt(second_model, host), type=TurnResult)
    assert result.outcome.kind == "finished" and result.assistant_text == "done"
    assert lines.read_text() == "one\n"
    assert len(second_model.requests) == 1
    assert len(host.executed) == 1 and "llm_call" in host.executed[0]
    assert [c.name for c in result.tool_calls] == ["append"]
    assert _commits(db) == 1

    third_model = ScriptedProvider([])
    again = RestateEffectHost(journal)
    # a redrive after the commit replays the whole journal (names checked by the fake) over
    # the session as the turn found it, runs nothing and answers the committed result
    replayed = msgspec.convert(await attempt(third_model, again), type=TurnResult)
    assert journal.cursor == len(journal.entries)
    assert replayed.head_revision == result.head_revision
    assert replayed.assistant_text == "done" and replayed.outcome == result.outcome
    assert again.executed == [] and third_model.requests == []
    assert _commits(db) == 1 and lines.read_text() == "one\n"


async def test_a_cancel_seen_at_an_effect_boundary_ends_the_turn_cancelled(
    tmp_path: Path,
) -> None:
    """The probe reads the durable gate before each effect; once it reports a request the
    turn stops before that effect is journaled and commits as cancelled with the evidence."""
    ran: list[str] = []

    @lash.tool
    async def work(ctx: lash.ToolContext) -> str:
        """Do some work."""
        ran.append("work")
        return "ok"

    evidence = CancellationEvidence(request_id="r1", origin="user", reason="stop")
    probes: list[int] = []

    async def probe() -> CancellationEvidence | None:
        probes.append(1)
        return evidence if len(probes) >= 2 else None

    journal = FakeJournal()
    host = RestateEffectHost(journal, cancel_probe=probe)
    model = ScriptedProvider([tool_call("work", {}, call_id="c1"), reply("never")])
    async with build_core(lash.stores.SqliteStore(tmp_path / "s.db"), model, tools=[work]) as core:
        session = await core.session("s1").owner(opaque_owner("o", "i")).open()
        result = await session.turn("go").turn_id("t1").effects(host).run()
    assert (result.outcome.kind, result.outcome.reason) == ("stopped", "cancelled")
    assert result.cancellation is not None and result.cancellation.request_id == "r1"
    assert ran == [] and len(model.requests) == 1
    assert len(journal.entries) == 1  # only the first model call


async def test_a_durable_host_on_a_memory_store_fails_before_anything_runs() -> None:
    journal = FakeJournal()
    model = ScriptedProvider([reply("never")])
    async with build_core(MemoryStore(), model, tools=[]) as core:
        session = await core.session("s1").open()
        with pytest.raises(LashRuntimeError) as info:
            await session.turn("go").turn_id("t1").effects(RestateEffectHost(journal)).run()
    assert str(info.value.code) == "durable_store_required:attachment_store"
    assert journal.entries == [] and model.requests == []


async def test_the_durable_turn_refuses_a_memory_store_before_opening_or_journaling() -> None:
    journal = FakeJournal()
    model = ScriptedProvider([reply("never")])
    async with build_core(MemoryStore(), model, tools=[]) as core:
        with pytest.raises(LashRuntimeError) as info:
            await run_durable_turn(
                journal,
                core,
                session_id="s1",
                turn_id="t1",
                turn_input="go",
                owner=opaque_owner("o", "i"),
            )
        assert await core.list_sessions() == []
    assert str(info.value.code) == "durable_store_required:attachment_store"
    assert journal.entries == [] and model.requests == []


class _TimerWorkflow:
    """Just enough of a WorkflowContext for a sleep without a cancel gate."""

    def __init__(self) -> None:
        self.timers: list[tuple[str | None, float]] = []

    async def _fire(self) -> None:
        return None

    def sleep(self, delta: Any, name: str | None = None) -> Any:
        self.timers.append((name, delta.total_seconds()))
        return self._fire()


async def test_a_sleep_outside_effects_is_a_named_timer_and_inside_an_effect_a_local_sleep() -> (
    None
):
    workflow = _TimerWorkflow()
    host = RestateEffectHost(FakeJournal(), workflow=workflow)
    local: list[float] = []

    async def configured(seconds: float) -> None:
        local.append(seconds)

    await host.sleep(SCOPE, "tool:c1:attempt:1:sleep", 0.25, local=configured)
    assert workflow.timers == [("lash:tool:c1:attempt:1:sleep", 0.25)] and local == []

    async def attempt() -> str:
        # Restate allows no timer inside a journaled closure: the configured sleep runs
        await host.sleep(SCOPE, "tool:c1:attempt:2:sleep", 0.5, local=configured)
        return "done"

    assert await host.run_effect(SCOPE, "tool_attempt", "tool:c1", {}, attempt) == "done"
    assert local == [0.5] and len(workflow.timers) == 1

    bare = RestateEffectHost(FakeJournal())  # no workflow context: nothing to journal a timer in
    await bare.sleep(SCOPE, "k:1:sleep", 1.0, local=configured)
    assert local == [0.5, 1.0]


async def test_a_mismatch_is_remembered_and_ends_the_invocation_only_at_the_journal_end() -> None:
    from restate import TerminalError

    from lash.durable.restate import ReplayDivergence, ReplayMismatch
    from lash.durable.restate.service import replay_failure

    journal = FakeJournal()
    host = RestateEffectHost(journal)
    await host.run_effect(SCOPE, "llm_call", "llm:1", _request("a"), _answer)
    assert host.mismatch is None
    replay = RestateEffectHost(journal.context())
    with pytest.raises(LashRuntimeError) as caught:
        await replay.run_effect(SCOPE, "llm_call", "llm:1", _request("b"), _answer)
    assert replay.mismatch is not None and replay.mismatch.at_journal_end  # nothing followed
    assert isinstance(replay_failure(replay, caught.value), TerminalError)
    replay.mismatch = ReplayDivergence(message="x", at_journal_end=False)
    assert isinstance(replay_failure(replay, caught.value), ReplayMismatch)
    retryable = LashRuntimeError("session_execution_busy", "busy")
    assert replay_failure(RestateEffectHost(FakeJournal()), retryable) is retryable


async def _answer() -> str:
    return "answer"


async def test_a_diverged_replay_follows_the_journal_and_stops_at_its_end_running_nothing() -> None:
    """With more journal after the diverging step, the host hands back recorded outcomes (the
    turn takes the recorded path) and raises the mismatch where the journal ends, before any
    closure runs; only then may the handler end the invocation terminally."""
    journal = FakeJournal()
    first = RestateEffectHost(journal)
    assert await first.run_effect(SCOPE, "llm_call", "llm:1", _request("a"), _answer) == "answer"
    assert await first.run_effect(SCOPE, "tool_attempt", "tool:c1", {"x": 1}, _tool) == "tool"

    journal.context()
    ran: list[str] = []
    replay = RestateEffectHost(journal, replaying=lambda: journal.cursor < len(journal.entries))

    async def fresh() -> str:
        ran.append("closure")
        return "fresh"

    assert await replay.run_effect(SCOPE, "llm_call", "llm:1", _request("b"), fresh) == "answer"
    assert replay.mismatch is not None and not replay.mismatch.at_journal_end
    assert await replay.run_effect(SCOPE, "tool_attempt", "tool:c1", {"x": 2}, fresh) == "tool"
    with pytest.raises(LashRuntimeError) as caught:
        await replay.run_effect(SCOPE, "llm_call", "llm:2", _request("c"), fresh)
    assert caught.value.is_code(EFFECT_HASH_MISMATCH)
    assert "first diverging path: $.messages[0].parts[0].text" in caught.value.message
    assert replay.mismatch.at_journal_end and ran == [] and replay.executed == []
    assert len(journal.entries) == 2  # nothing new was journaled


async def _tool() -> str:
    return "tool"


def test_without_a_signer_the_host_refuses_durable_waits_with_a_stable_code() -> None:
    """Plain effects need no secret; a durable-wait mint without one fails clearly instead of
    signing with a random per-process secret that another worker could not verify."""
    host = RestateEffectHost(FakeJournal())
    with pytest.raises(LashRuntimeError) as caught:
        host.await_event_key(SCOPE, WaitIdentity.custom("w"))
    assert caught.value.is_code(AWAIT_SECRET_REQUIRED)
    signer = AwaitEventSigner(b"0123456789abcdef")
    signed = RestateEffectHost(FakeJournal(), signer=signer)
    wait = WaitIdentity.custom("w")
    assert signed.await_event_key(SCOPE, wait) == signer.mint(SCOPE, wait)


def test_a_turn_workflow_without_a_secret_is_built_for_plain_turns() -> None:
    services = turn_services(lambda: _never(), name="NoSecretTurn")
    assert [s.name for s in services] == ["NoSecretTurn", "NoSecretTurnWaitIndex"]


async def _never() -> lash.LashCore:
    raise AssertionError("not built")
