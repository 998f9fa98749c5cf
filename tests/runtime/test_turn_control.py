"""Turn control: first-writer-wins cancel gates and terminal promises (persistence.md §7.9).

The four ``turn_control`` conformance functions, run against the inline effect host's
:class:`TurnControl`, plus the same contract through the public session API.

As in lash, a cancel request for a turn that has not started yet is kept (the keyed promise
exists before its owner): the turn then starts, finds the gate resolved and ends cancelled.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import lash
from lash.errors import LashRuntimeError
from lash.runtime.effect_host import GateState, TurnControl
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, stall
from lash.types import CancellationEvidence, TurnActivity

WAIT_S = 5.0  # a bound on waiting for something already due; never a sleep


def evidence(request_id: str, reason: str = "stop button") -> CancellationEvidence:
    return CancellationEvidence(
        request_id=request_id, origin="user_interrupt", reason=reason, requested_at_ms=7
    )


@pytest.fixture
def control() -> TurnControl:
    return lash.InlineEffectHost().turn_control


# --- §7.9 cancel before start, duplicate, replay, terminal attach ------------------------------


async def test_cancel_before_start_duplicate_replay_and_terminal_attach(
    control: TurnControl,
) -> None:
    gate_event = control.register("s", "turn-a")
    assert not gate_event.is_set()
    assert control.peek("s", "turn-a") == GateState(status="open")

    first = control.request_cancel("s", "turn-a", evidence("request-1"))
    assert first.outcome == "requested"
    assert first.evidence == evidence("request-1")
    assert first.durability_tier == "inline"
    assert gate_event.is_set()  # the owner wakes

    duplicate = control.request_cancel("s", "turn-a", evidence("request-2", "again"))
    assert duplicate.outcome == "already_requested"
    assert duplicate.evidence == evidence("request-1")  # the first request's evidence

    # replay: the owner is rebuilt (a new attempt) and re-opens the gate; the pending cancel
    # survives and is visible at once
    replayed = control.register("s", "turn-a")
    assert replayed.is_set()
    assert control.peek("s", "turn-a") == GateState(
        status="cancel_requested", evidence=evidence("request-1")
    )
    observed = control.seal("s", "turn-a", None)
    assert observed == evidence("request-1")

    # terminal attach: an attacher waiting before publication gets the committed result
    attached = control.terminal("s", "turn-a")
    assert not attached.done()
    control.publish_terminal("s", "turn-a", {"outcome": "cancelled", "revision": 7})
    assert await asyncio.wait_for(attached, WAIT_S) == {"outcome": "cancelled", "revision": 7}
    # first writer wins: a second publication changes nothing
    control.publish_terminal("s", "turn-a", {"outcome": "finished"})
    late = control.terminal("s", "turn-a")
    assert late.done()
    assert late.result() == {"outcome": "cancelled", "revision": 7}


async def test_an_attacher_after_publication_gets_the_result_at_once(
    control: TurnControl,
) -> None:
    control.register("s", "t")
    control.seal("s", "t", None)
    control.publish_terminal("s", "t", "result")
    assert await control.terminal("s", "t") == "result"


def test_a_request_before_the_turn_starts_is_kept(control: TurnControl) -> None:
    receipt = control.request_cancel("s", "not-started-yet", evidence("r"))
    assert receipt.outcome == "requested"
    assert control.peek("s", "not-started-yet").status == "cancel_requested"
    # when the owner registers, the gate fires at once
    assert control.register("s", "not-started-yet").is_set()


def test_registering_twice_keeps_one_open_gate(control: TurnControl) -> None:
    one = control.register("s", "t")
    two = control.register("s", "t")
    assert one is two
    assert not two.is_set()
    assert control.request_cancel("s", "t", evidence("r")).outcome == "requested"
    assert one.is_set()


# --- §7.9 completion seal vs cancel: first writer wins, both orders --------------------------


def test_completion_seal_first_wins(control: TurnControl) -> None:
    gate_event = control.register("s", "t")
    assert control.seal("s", "t", None) is None
    assert control.peek("s", "t").status == "completion_sealed"
    late = control.request_cancel("s", "t", evidence("late"))
    assert late.outcome == "completion_won_race"
    assert late.evidence is None
    assert not gate_event.is_set()
    assert control.peek("s", "t") == GateState(status="completion_sealed")
    # a second seal (even one carrying local cancellation) cannot flip the outcome
    assert control.seal("s", "t", evidence("internal:t")) is None


def test_cancel_first_wins(control: TurnControl) -> None:
    control.register("s", "t")
    requested = control.request_cancel("s", "t", evidence("early"))
    assert requested.outcome == "requested"
    # the owner's completion seal loses and reports the winning evidence
    assert control.seal("s", "t", None) == evidence("early")
    assert control.seal("s", "t", evidence("internal:t")) == evidence("early")
    assert control.peek("s", "t").evidence == evidence("early")
    assert control.request_cancel("s", "t", evidence("later")).outcome == "already_requested"


def test_local_cancellation_is_written_to_the_gate(control: TurnControl) -> None:
    control.register("s", "t")
    local = CancellationEvidence(request_id="internal:t", origin="local")
    assert control.seal("s", "t", local) == local
    assert control.peek("s", "t") == GateState(status="cancel_requested", evidence=local)
    after = control.request_cancel("s", "t", evidence("remote"))
    assert after.outcome == "already_requested"
    assert after.evidence == local


async def test_concurrent_seal_and_cancel_agree(control: TurnControl) -> None:
    """Whichever lands first, the owner and the requester see the same winner."""
    for order in range(2):
        turn = f"race-{order}"
        control.register("s", turn)

        async def seal(turn: str = turn) -> CancellationEvidence | None:
            await asyncio.sleep(0)
            return control.seal("s", turn, None)

        async def cancel(turn: str = turn) -> Any:
            await asyncio.sleep(0)
            return control.request_cancel("s", turn, evidence("race-request"))

        jobs = (seal(), cancel()) if order == 0 else (cancel(), seal())
        results = await asyncio.gather(*jobs)
        sealed, receipt = (results[0], results[1]) if order == 0 else (results[1], results[0])
        if receipt.outcome == "completion_won_race":
            assert sealed is None
            assert order == 0
        else:
            assert receipt.outcome == "requested"
            assert sealed == receipt.evidence == evidence("race-request")
            assert order == 1


# --- §7.9 exact scope isolation ------------------------------------------------------------


async def test_cancels_are_exact_per_turn_and_session(control: TurnControl) -> None:
    a = control.register("s", "turn-a")
    b = control.register("s", "turn-b")
    other_session = control.register("s2", "turn-a")

    assert control.request_cancel("s", "turn-a", evidence("request-a")).outcome == "requested"
    assert a.is_set()
    assert not b.is_set()
    assert not other_session.is_set()
    assert control.peek("s", "turn-b").status == "open"
    assert control.peek("s2", "turn-a").status == "open"

    # the untouched turns still finish normally
    assert control.seal("s", "turn-b", None) is None
    assert control.seal("s2", "turn-a", None) is None
    assert control.seal("s", "turn-a", None) == evidence("request-a")

    # and a later turn of the same session is its own gate
    future = control.register("s", "turn-future")
    assert not future.is_set()
    assert (
        control.request_cancel("s", "turn-future", evidence("request-future")).outcome
        == "requested"
    )


async def test_terminal_promises_are_exact_per_turn_and_session(control: TurnControl) -> None:
    waiting_b = control.terminal("s", "turn-b")
    waiting_other = control.terminal("s2", "turn-a")
    control.publish_terminal("s", "turn-a", "result-a")
    assert (await control.terminal("s", "turn-a")) == "result-a"
    assert not waiting_b.done()
    assert not waiting_other.done()
    control.publish_terminal("s2", "turn-a", "result-s2")
    assert await waiting_other == "result-s2"
    assert not waiting_b.done()
    waiting_b.cancel()


# --- §7.9 session deletion revokes control promises --------------------------------------------


async def test_session_deletion_revokes_control_promises(control: TurnControl) -> None:
    gate = control.register("doomed", "t-1")
    control.register("kept", "t-1")
    control.revoke_session("doomed")

    after = control.request_cancel("doomed", "t-1", evidence("request-after-delete"))
    assert after.outcome == "unknown_or_revoked"
    assert not gate.is_set()
    assert control.peek("doomed", "t-1") == GateState()
    # a turn registered after deletion still cannot be reached
    control.register("doomed", "t-2")
    assert control.request_cancel("doomed", "t-2", evidence("r")).outcome == "unknown_or_revoked"
    # other sessions are untouched
    assert control.request_cancel("kept", "t-1", evidence("r")).outcome == "requested"


async def test_revocation_fails_waiting_attachers_and_forgets_results(
    control: TurnControl,
) -> None:
    waiting = control.terminal("doomed", "t-waiting")
    control.publish_terminal("doomed", "t-done", "old result")
    control.revoke_session("doomed")

    with pytest.raises(LashRuntimeError) as info:
        await asyncio.wait_for(waiting, WAIT_S)
    assert str(info.value.code) == "turn_control_unknown_or_revoked"
    with pytest.raises(LashRuntimeError):
        await control.terminal("doomed", "t-done")
    # a late publication from the deleted incarnation is ignored
    control.publish_terminal("doomed", "t-late", "ghost")
    with pytest.raises(LashRuntimeError):
        await control.terminal("doomed", "t-late")

    # a recreated session id starts clean: no stale result leaks into it
    control.unrevoke_session("doomed")
    fresh = control.terminal("doomed", "t-done")
    assert not fresh.done()
    control.register("doomed", "t-new")
    assert control.request_cancel("doomed", "t-new", evidence("r")).outcome == "requested"
    fresh.cancel()


def test_each_host_owns_its_promises() -> None:
    one = lash.InlineEffectHost()
    two = lash.InlineEffectHost()
    running = one.turn_control.register("s", "t")
    assert two.turn_control.request_cancel("s", "t", evidence("r")).outcome == "requested"
    assert not running.is_set()  # another host's request never reaches this owner
    assert one.turn_control.peek("s", "t").status == "open"
    assert one.turn_control.request_cancel("s", "t", evidence("r")).outcome == "requested"
    assert running.is_set()


# --- through the public API ------------------------------------------------------------------


def _core(*steps: Any, host: lash.InlineEffectHost | None = None) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .store(MemoryStore())
        .effect_host(host or lash.InlineEffectHost())
        .provider(ScriptedProvider(list(steps)))
        .model(lash.ModelSpec("m"))
        .build()
    )


async def _start_stalled(session: lash.LashSession, text: str) -> lash.TurnHandle:
    """Start a turn whose model call streams a little and then hangs until cancelled."""
    streaming = asyncio.Event()

    async def sink(activity: TurnActivity) -> None:
        if activity.type == "assistant_prose_delta":
            streaming.set()

    handle = session.turn(text).on_event(sink).start()
    await asyncio.wait_for(streaming.wait(), WAIT_S)
    return handle


async def test_request_turn_cancel_stops_a_running_turn() -> None:
    host = lash.InlineEffectHost()
    async with _core(stall("thinking about"), reply("next"), host=host) as core:
        session = await core.session("chat").open()
        handle = await _start_stalled(session, "long job")
        assert host.turn_control.peek("chat", handle.turn_id).status == "open"

        receipt = await session.request_turn_cancel(
            handle.turn_id, "req-1", origin="ui", reason="stop button"
        )
        assert receipt.outcome == "requested"
        assert receipt.durability_tier == "inline"
        assert receipt.evidence is not None and receipt.evidence.request_id == "req-1"

        result = await asyncio.wait_for(handle.result(), WAIT_S)
        assert result.outcome.kind == "stopped"
        assert result.outcome.reason == "cancelled"
        assert result.cancellation is not None
        assert result.cancellation.request_id == "req-1"
        assert result.cancellation.origin == "ui"
        assert result.cancellation.reason == "stop button"
        assert not result.cancellation.is_internal

        duplicate = await session.request_turn_cancel(handle.turn_id, "req-2")
        assert duplicate.outcome == "already_requested"
        assert duplicate.evidence is not None and duplicate.evidence.request_id == "req-1"

        # the committed turn holds the input but no half-streamed prose
        view = await session.read_view()
        assert [(m.role, m.text) for m in view.messages] == [("user", "long job")]
        # and the session goes on
        assert (await session.turn("again").run()).assistant_text == "next"


async def test_request_turn_cancel_is_exact_per_session() -> None:
    async with _core(stall("working"), reply("unused")) as core:
        busy = await core.session("busy").open()
        idle = await core.session("idle").open()
        handle = await _start_stalled(busy, "long job")

        stray = await idle.request_turn_cancel(handle.turn_id, "wrong-session")
        assert stray.outcome == "requested"  # kept for that session's turn id, not this one
        await asyncio.sleep(0.05)
        assert not handle.done()

        assert (await busy.request_turn_cancel(handle.turn_id, "right")).outcome == "requested"
        result = await asyncio.wait_for(handle.result(), WAIT_S)
        assert result.cancellation is not None and result.cancellation.request_id == "right"


async def test_request_turn_cancel_after_completion_reports_completion_won() -> None:
    async with _core(reply("done")) as core:
        session = await core.session("chat").open()
        result = await session.turn(lash.TurnInput.text("hi", trace_turn_id="t-1")).run()
        receipt = await session.request_turn_cancel(result.turn_id, "late")
        assert receipt.outcome == "completion_won_race"


async def test_request_turn_cancel_rejects_blank_ids() -> None:
    async with _core() as core:
        session = await core.session("chat").open()
        for turn_id, request_id in (("", "r"), ("  ", "r"), ("t", ""), ("t", " \t")):
            with pytest.raises(LashRuntimeError) as info:
                await session.request_turn_cancel(turn_id, request_id)
            assert info.value.code == lash.RuntimeErrorCode.MISSING_EXECUTION_SCOPE_ID


async def test_deleting_a_session_revokes_its_turn_control() -> None:
    async with _core(reply("done")) as core:
        session = await core.session("chat").open()
        result = await session.turn("hi").run()
        await core.delete_session("chat")
        receipt = await session.request_turn_cancel(result.turn_id, "after-delete")
        assert receipt.outcome == "unknown_or_revoked"
