"""Pending Turn Input, Queued Work and session commands through the public session API."""

from __future__ import annotations

from typing import Any

import pytest

import lash
from lash.clock import ManualClock
from lash.errors import RuntimeErrorCode
from lash.runtime.plugins import EnqueueMessages, FinalizeContext
from lash.stores import MemoryStore
from lash.stores.liveness import opaque_owner
from lash.testing import ScriptedProvider, reply, tool_call
from lash.types import ProcessWake, QueuedWorkBatchDraft, TurnInputIngress


async def test_process_pending_merges_next_turn_inputs_into_one_turn(make_core: Any) -> None:
    provider = ScriptedProvider([reply("answered both")])
    store = MemoryStore()
    core = make_core(provider, store=store)
    session = await core.session("s").open()
    first = await session.enqueue("question one", source_key="m-1")
    second = await session.enqueue("question two", source_key="m-2")
    assert [p.input_id for p in await session.pending_inputs()] == [first.id, second.id]
    results = await session.process_pending()
    assert len(results) == 1
    assert results[0].assistant_text == "answered both"
    assert await session.pending_inputs() == []
    assert (await store.get_turn_input("s", first.id)).state == "completed"  # type: ignore[union-attr]
    user = provider.requests[0].messages[-1]
    assert user.text == "question onequestion two"
    assert await session.process_pending() == []  # idle: nothing left


async def test_source_key_replay_and_conflict(make_core: Any) -> None:
    core = make_core([])
    session = await core.session("s").open()
    a = await session.enqueue("hello", source_key="host:42")
    b = await session.enqueue("hello", source_key="host:42")
    assert a.id == b.id
    with pytest.raises(lash.LashRuntimeError) as err:
        await session.enqueue("changed", source_key="host:42")
    assert err.value.code == RuntimeErrorCode.STORE_COMMIT_FAILED
    assert "source_key" in err.value.message or "source key" in err.value.message


async def test_cancelled_input_never_runs(make_core: Any) -> None:
    provider = ScriptedProvider([reply("ran")])
    core = make_core(provider)
    session = await core.session("s").open()
    keep = await session.enqueue("keep")
    drop = await session.enqueue("drop")
    outcome = await session.cancel_pending(drop.id)
    assert outcome.status == "cancelled"
    again = await session.cancel_pending(drop.id)
    assert again.status == "already_cancelled"
    missing = await session.cancel_pending("nope")
    assert missing.status == "not_found"
    await session.process_pending()
    assert provider.requests[0].messages[-1].text == "keep"
    done = await session.cancel_pending(keep.id)
    assert done.status == "already_completed"


async def test_suffix_cancel(make_core: Any) -> None:
    core = make_core([])
    session = await core.session("s").open()
    ids = [(await session.enqueue(f"m{i}")).id for i in range(4)]
    result = await session.cancel_pending_suffix(ids[1])
    assert result.anchor_found
    assert [o.status for o in result.outcomes] == ["cancelled"] * 3
    assert [p.id for p in await session.pending_inputs()] == [ids[0]]
    missing = await session.cancel_pending_suffix("nope")
    assert not missing.anchor_found


async def test_active_turn_input_is_injected_at_the_next_checkpoint(make_core: Any) -> None:
    core_ref: list[lash.LashCore] = []

    @lash.tool
    async def work(ctx: lash.ToolContext) -> str:
        """Do work; meanwhile the user types a follow-up."""
        await core_ref[0].enqueue_turn_input(
            ctx.session_id, "also check the logs", ingress=TurnInputIngress.active_turn(ctx.turn_id)
        )
        return "worked"

    provider = ScriptedProvider([tool_call("work", {}, "c1"), reply("checked the logs too")])
    core = make_core(provider, tools=[work])
    core_ref.append(core)
    session = await core.session("s").open()
    kinds: list[str] = []

    async def sink(activity: lash.TurnActivity) -> None:
        kinds.append(activity.type)

    result = await session.turn("start").on_event(sink).run()
    assert result.assistant_text == "checked the logs too"
    assert "queued_input_accepted" in kinds
    second = provider.requests[1].messages
    assert second[-1].role == "user" and second[-1].text == "also check the logs"
    assert second[-1].id.startswith("m_ingress_")
    assert await session.pending_inputs() == []
    view = await session.read_view()
    assert [m.role for m in view.messages] == ["user", "assistant", "tool", "user", "assistant"]


async def test_active_input_missing_the_last_checkpoint_becomes_the_next_turn(
    make_core: Any,
) -> None:
    core_ref: list[lash.LashCore] = []

    class LateInput(lash.Plugin):
        id = "late"

        async def finalize_turn(self, ctx: FinalizeContext) -> list[EnqueueMessages]:
            if ctx.turn_id == "t-1":
                await core_ref[0].enqueue_turn_input(
                    ctx.session_id, "late words", ingress=TurnInputIngress.active_turn("t-1")
                )
            return []

    provider = ScriptedProvider([reply("first"), reply("second")])
    core = make_core(provider, plugins=[LateInput])
    core_ref.append(core)
    session = await core.session("s").open()
    await session.turn("hi").turn_id("t-1").run()
    pending = await session.pending_inputs()
    assert len(pending) == 1
    assert pending[0].state == "deferred_next_turn"
    assert pending[0].ingress.kind == "next_turn"
    results = await session.process_pending()
    assert [r.assistant_text for r in results] == ["second"]
    assert provider.requests[1].messages[-1].text == "late words"


async def test_session_commands_drain_before_later_input(make_core: Any) -> None:
    provider = ScriptedProvider([reply("one"), reply("after reset")])
    clock = ManualClock()
    store = MemoryStore(clock=clock)
    core = make_core(provider, store=store, clock=clock)
    session = await core.session("s").open()
    await session.turn("remember me").run()
    await session.submit_command("refresh_tool_catalog", reason="new tools")
    await session.submit_command("reset_session", reason="start over")
    clock.advance(5)  # commands run first only when enqueued strictly earlier than the input
    await session.enqueue("fresh start")
    results = await session.process_pending()
    assert [r.assistant_text for r in results] == ["after reset"]
    assert await session.queued_work() == []
    loaded = await store.load_session("s")
    assert loaded is not None and loaded.head_revision == 4  # turn, 2 commands, turn
    view = await session.read_view()
    assert [m.text for m in view.messages] == ["fresh start", "after reset"]
    assert provider.requests[1].messages[0].text == "fresh start"


async def test_foreground_turn_drains_leading_commands_first(make_core: Any) -> None:
    store = MemoryStore()
    core = make_core([reply("a"), reply("b")], store=store)
    session = await core.session("s").open()
    await session.turn("x").run()
    await session.submit_command("reset_session")
    await session.turn("y").run()
    view = await session.read_view()
    assert [m.text for m in view.messages] == ["y", "b"]


async def test_input_runs_before_queued_turn_work(make_core: Any) -> None:
    provider = ScriptedProvider([reply("for input"), reply("for wake")])
    store = MemoryStore()
    core = make_core(provider, store=store)
    session = await core.session("s").open()
    await store.enqueue_queued_work(
        QueuedWorkBatchDraft(
            session_id="s",
            payloads=(ProcessWake(wake={"process": "p1", "event": "done"}),),
            delivery_policy="after_current_turn_commit",
        )
    )
    await session.enqueue("user words")
    results = await session.process_pending()
    assert [r.assistant_text for r in results] == ["for input", "for wake"]
    wake_prompt = provider.requests[1].messages[-1].text
    assert wake_prompt.startswith("=== TURN EVENTS ===") and '"process":"p1"' in wake_prompt


async def test_safe_boundary_wake_joins_the_running_turn_at_its_checkpoint(
    make_core: Any,
) -> None:
    provider = ScriptedProvider([reply("first look"), reply("saw the wake")])
    store = MemoryStore()
    core = make_core(provider, store=store)
    session = await core.session("s").open()
    await store.enqueue_queued_work(
        QueuedWorkBatchDraft(session_id="s", payloads=(ProcessWake(wake={"process": "p2"}),))
    )
    await session.enqueue("user words")
    results = await session.process_pending()
    assert [r.assistant_text for r in results] == ["saw the wake"]
    assert provider.requests[1].messages[-1].text.startswith("=== TURN EVENTS ===")
    assert await session.queued_work() == []


async def test_process_pending_is_busy_until_the_holder_lease_expires(make_core: Any) -> None:
    clock = ManualClock()
    store = MemoryStore(clock=clock)
    core = make_core(
        [reply("taken over")],
        store=store,
        clock=clock,
        lease_timings=lash.LeaseTimings(ttl_s=30, renew_s=10),
    )
    holder = opaque_owner("other-worker")
    claim = await store.try_claim_lease("s", holder, 30_000)
    assert claim.status == "acquired"
    session = await core.session("s").open()
    await session.enqueue("work")
    with pytest.raises(lash.LashRuntimeError) as err:
        await session.process_pending()
    assert err.value.code == RuntimeErrorCode.SESSION_EXECUTION_BUSY
    assert "other-worker" in err.value.message
    clock.advance(30_001)
    results = await session.process_pending()
    assert [r.assistant_text for r in results] == ["taken over"]
    lease = await store.get_lease("s")
    assert lease is not None and lease.fencing_token == 2


async def test_enqueue_rejects_live_plugin_inputs(make_core: Any) -> None:
    core = make_core([])
    session = await core.session("s").open()
    with pytest.raises(lash.LashRuntimeError) as err:
        await session.enqueue("x", plugin_inputs={"memo": object()})
    assert err.value.code == RuntimeErrorCode.DURABLE_EFFECT_LIVE_PLUGIN_INPUT
    assert await session.pending_inputs() == []


async def test_vacuum_removes_terminal_input_tombstones(make_core: Any) -> None:
    provider = ScriptedProvider([reply("ran")])
    store = MemoryStore()
    core = make_core(provider, store=store)
    session = await core.session("s").open()
    done = await session.enqueue("run me")
    dropped = await session.enqueue("drop me")
    await session.cancel_pending(dropped.id)
    await session.process_pending()
    live = await session.enqueue("still pending")
    report = await core.vacuum()
    assert report.removed_pending_turn_input_tombstone_count == 2
    assert await store.get_turn_input("s", done.id) is None
    assert await store.get_turn_input("s", dropped.id) is None
    assert [p.id for p in await session.pending_inputs()] == [live.id]
    again = await core.vacuum()
    assert again.removed_pending_turn_input_tombstone_count == 0
