"""``runtime_persistence`` continued: queued work and pending turn input (persistence.md §7.1)."""

from __future__ import annotations

import asyncio

import msgspec

from lash.errors import StoreError, StoreErrorKind
from lash.stores.liveness import local_process_owner
from lash.testing.conformance._harness import StoreHarness, Suite
from lash.testing.conformance._support import (
    TTL_MS,
    acquired,
    command_batch,
    commit,
    expect_error,
    input_draft,
    lease,
    message_node,
    wake_batch,
    wake_tag,
)
from lash.types import (
    CancelTarget,
    LeaseFence,
    LeaseOwner,
    MergeKey,
    PendingTurnInput,
    QueuedWorkBatch,
    QueuedWorkClaim,
    TokenLedgerEntry,
    TokenUsage,
)

SUITE = Suite("runtime_persistence")
case = SUITE.case

S = "session-a"
OTHER = "session-b"


def _tags(batches: object) -> list[str]:
    return [wake_tag(b) for b in batches]  # type: ignore[attr-defined]


def _claimed_tags(claim: QueuedWorkClaim | None) -> list[str]:
    assert claim is not None, "expected a queued-work claim"
    return _tags(claim.batches)


def _texts(rows: object) -> list[str]:
    out: list[str] = []
    for row in rows:  # type: ignore[attr-defined]
        item = row.input.items[0]
        out.append(item.text)
    return out


# --- queued work -----------------------------------------------------------------------


@case()
async def queued_work_source_keys_are_idempotent_and_list_ordered(h: StoreHarness) -> None:
    """A source-key replay returns the original batch and payload; lists are ordered and
    per-session."""
    store = await h.open()
    first = await store.enqueue_queued_work(wake_batch(S, "one", source_key="k1"))
    await store.enqueue_queued_work(wake_batch(S, "two"))
    await store.enqueue_queued_work(wake_batch(S, "three", source_key="k3"))
    replay = await store.enqueue_queued_work(wake_batch(S, "changed", source_key="k1"))
    assert replay == first and wake_tag(replay) == "one"
    listed = await store.list_queued_work(S)
    assert _tags(listed) == ["one", "two", "three"]
    assert [b.enqueue_seq for b in listed] == sorted(b.enqueue_seq for b in listed)
    foreign = await store.enqueue_queued_work(wake_batch(OTHER, "theirs", source_key="k1"))
    assert foreign.batch_id != first.batch_id
    assert _tags(await store.list_queued_work(OTHER)) == ["theirs"]
    assert len(await store.list_queued_work(S)) == 3
    assert [i.item_id for i in first.items] == [f"{first.batch_id}:item:0"]


@case()
async def concurrent_queue_and_turn_input_claims_have_one_owner(h: StoreHarness) -> None:
    """Two claimants with the same live fence race for one batch and one input: one wins."""
    store = await h.open()
    other = await h.second_handle(store)
    fence = await lease(store, S)
    batch = await store.enqueue_queued_work(wake_batch(S, "only"))
    results = await asyncio.gather(
        store.claim_ready_queued_work(fence, "idle"), other.claim_ready_queued_work(fence, "idle")
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1, results
    assert winners[0].batch_ids == (batch.batch_id,)
    assert await store.list_pending_queued_work(S) == []
    assert len(await store.list_queued_work(S)) == 1
    await store.enqueue_turn_input(input_draft(S, "hi"))
    claims = await asyncio.gather(
        store.claim_next_turn_inputs(fence), other.claim_next_turn_inputs(fence)
    )
    assert sum(c is not None for c in claims) == 1, claims
    assert await store.list_pending_turn_inputs(S) == []


@case()
async def checkpoint_work_claims_both_families_once(h: StoreHarness) -> None:
    """One checkpoint claim takes admissible input and safe-boundary work, pinned to the
    generation; the same generation then finds nothing."""
    store = await h.open()
    fence = await lease(store, S)
    await store.enqueue_turn_input(input_draft(S, "steer", turn_id="t1"))
    await store.enqueue_queued_work(wake_batch(S, "wake"))
    inputs, queue = await store.claim_checkpoint_work(fence, "t1", "after_work")
    assert inputs is not None and queue is not None
    assert inputs.session_lease_generation == fence.fencing_token
    assert queue.session_lease_generation == fence.fencing_token
    assert _texts(inputs.inputs) == ["steer"] and inputs.inputs[0].state == "accepted"
    assert _claimed_tags(queue) == ["wake"]
    assert await store.claim_checkpoint_work(fence, "t1", "after_work") == (None, None)
    assert await store.claim_checkpoint_work(fence, "t1", "before_completion") == (None, None)


@case()
async def queued_work_cancel_removes_only_unclaimed_batches(h: StoreHarness) -> None:
    """Cancel deletes unclaimed batches; a live claim hides and protects its batch until it
    is handed back."""
    store = await h.open()
    fence = await lease(store, S)
    b1 = await store.enqueue_queued_work(wake_batch(S, "one"))
    b2 = await store.enqueue_queued_work(wake_batch(S, "two"))
    cancelled = await store.cancel_queued_work_batch(S, b1.batch_id)
    assert cancelled is not None and cancelled.batch_id == b1.batch_id
    assert await store.cancel_queued_work_batch(S, b1.batch_id) is None
    assert await store.cancel_queued_work_batch(S, "unknown") is None
    claim = await store.claim_ready_queued_work(fence, "idle")
    assert claim is not None and claim.batch_ids == (b2.batch_id,)
    assert await store.cancel_queued_work_batch(S, b2.batch_id) is None
    assert await store.list_pending_queued_work(S) == []
    assert _tags(await store.list_queued_work(S)) == ["two"]
    await store.abandon_queued_work_claim(S, claim.claim_id, claim.lease_token)
    assert _tags(await store.list_pending_queued_work(S)) == ["two"]
    again = await store.cancel_queued_work_batch(S, b2.batch_id)
    assert again is not None and again.batch_id == b2.batch_id
    assert await store.list_queued_work(S) == []


@case()
async def queued_work_exact_claim_uses_selected_batch_ids(h: StoreHarness) -> None:
    """Exact claims respect the boundary and exclusivity, may bypass earlier work, and
    complete atomically."""
    store = await h.open()
    fence = await lease(store, S)
    b1 = await store.enqueue_queued_work(wake_batch(S, "one"))
    b2 = await store.enqueue_queued_work(wake_batch(S, "two", delivery="after_current_turn_commit"))
    b3 = await store.enqueue_queued_work(wake_batch(S, "three"))
    j1 = await store.enqueue_queued_work(wake_batch(S, "j1", slot="join"))
    j2 = await store.enqueue_queued_work(wake_batch(S, "j2", slot="join"))
    claim_exact = store.claim_queued_work_by_batch_ids
    assert await claim_exact(fence, "active_turn_checkpoint", [b2.batch_id]) is None
    assert await claim_exact(fence, "idle", [b1.batch_id, b3.batch_id]) is None
    assert await claim_exact(fence, "idle", []) is None
    assert await claim_exact(fence, "idle", ["unknown"]) is None
    assert await claim_exact(fence, "idle", [b3.batch_id, b3.batch_id]) is None
    picked = await claim_exact(fence, "idle", [b3.batch_id])
    assert _claimed_tags(picked) == ["three"]
    assert _tags(await store.list_pending_queued_work(S)) == ["one", "two", "j1", "j2"]
    assert await claim_exact(fence, "idle", [b3.batch_id]) is None
    joined = await claim_exact(fence, "active_turn_checkpoint", [j2.batch_id, j1.batch_id])
    assert _claimed_tags(joined) == ["j1", "j2"]
    assert picked is not None and joined is not None
    await store.commit(commit(S, fence, queue=[picked, joined]))
    assert _tags(await store.list_queued_work(S)) == ["one", "two"]


@case()
async def queued_work_classes_gate_command_and_turn_claims(h: StoreHarness) -> None:
    """Turn claims never skip a leading command; a later command never jumps ahead."""
    store = await h.open()
    fence = await lease(store, S)
    await store.enqueue_queued_work(command_batch(S, "first"))
    await store.enqueue_queued_work(wake_batch(S, "w1"))
    assert await store.claim_ready_queued_work(fence, "idle") is None
    command = await store.claim_leading_session_command(fence)
    assert command is not None and len(command.batches) == 1
    assert command.batches[0].work_class == "session_command"
    assert await store.claim_leading_session_command(fence) is None
    await store.commit(commit(S, fence, queue=[command]))
    turn = await store.claim_ready_queued_work(fence, "idle")
    assert _claimed_tags(turn) == ["w1"]
    assert turn is not None
    await store.commit(commit(S, fence, queue=[turn]))
    await store.enqueue_queued_work(wake_batch(S, "w2", slot="join"))
    await store.enqueue_queued_work(command_batch(S, "second"))
    await store.enqueue_queued_work(wake_batch(S, "w3", slot="join"))
    assert await store.claim_leading_session_command(fence) is None
    turn2 = await store.claim_ready_queued_work(fence, "idle")
    assert _claimed_tags(turn2) == ["w2"]  # the command ends the join group
    assert turn2 is not None
    await store.commit(commit(S, fence, queue=[turn2]))
    assert await store.claim_ready_queued_work(fence, "idle") is None
    second = await store.claim_leading_session_command(fence)
    assert second is not None and second.batches[0].work_class == "session_command"


@case()
async def queued_work_claims_respect_boundaries_abandon_and_stale_completion(
    h: StoreHarness,
) -> None:
    """An after-commit head waits for idle; abandon + reclaim bumps fencing; the stale
    completion is rejected and keeps the batch."""
    store = await h.open()
    fence = await lease(store, S)
    await store.enqueue_queued_work(wake_batch(S, "after", delivery="after_current_turn_commit"))
    await store.enqueue_queued_work(wake_batch(S, "safe"))
    assert await store.claim_ready_queued_work(fence, "active_turn_checkpoint") is None
    assert await store.claim_checkpoint_work(fence, "t1", "after_work") == (None, None)
    q1 = await store.claim_ready_queued_work(fence, "idle")
    assert _claimed_tags(q1) == ["after"]
    assert q1 is not None
    await store.abandon_queued_work_claim(S, q1.claim_id, q1.lease_token)
    q2 = await store.claim_ready_queued_work(fence, "idle")
    assert q2 is not None and q2.batch_ids == q1.batch_ids
    assert q2.fencing_token == q1.fencing_token + 1 and q2.claim_id != q1.claim_id
    await expect_error(
        StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED, store.commit(commit(S, fence, queue=[q1]))
    )
    assert _tags(await store.list_queued_work(S)) == ["after", "safe"]
    assert await store.load_session(S) is None
    await store.commit(commit(S, fence, queue=[q2]))
    assert _tags(await store.list_queued_work(S)) == ["safe"]


@case()
async def queued_work_claims_supersede_across_session_lease_generations(h: StoreHarness) -> None:
    """No same-generation re-claim; a new generation (after release or expiry) takes the
    work over and the old completion fails."""
    store = await h.open()
    gen1 = await lease(store, S, "w1", ttl_ms=1_000)
    await store.enqueue_queued_work(wake_batch(S, "w"))
    q1 = await store.claim_ready_queued_work(gen1, "idle")
    assert q1 is not None and q1.session_lease_generation == gen1.fencing_token
    assert await store.claim_ready_queued_work(gen1, "idle") is None
    await store.release_lease(gen1)
    gen2 = await lease(store, S, "w2", ttl_ms=1_000)
    q2 = await store.claim_ready_queued_work(gen2, "idle")
    assert q2 is not None and q2.fencing_token > q1.fencing_token
    await expect_error(
        StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED, store.commit(commit(S, gen2, queue=[q1]))
    )
    h.clock.advance(1_001)  # gen2's owner dies silently; its TTL frees the session
    gen3 = await lease(store, S, "w3")
    q3 = await store.claim_ready_queued_work(gen3, "idle")
    assert q3 is not None and q3.fencing_token > q2.fencing_token
    await expect_error(
        StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED, store.commit(commit(S, gen3, queue=[q2]))
    )
    await store.commit(commit(S, gen3, queue=[q3]))
    assert await store.list_queued_work(S) == []


@case()
async def claim_liveness_for_lease_less_paths_tracks_session_generations(
    h: StoreHarness,
) -> None:
    """After release, expiry or takeover, retained claims are at once pending and
    cancellable in both lanes."""
    store = await h.open()

    async def claim_both(
        who: str, ttl_ms: int = TTL_MS
    ) -> tuple[LeaseFence, QueuedWorkBatch, PendingTurnInput]:
        fence = await lease(store, S, who, ttl_ms)
        batch = await store.enqueue_queued_work(wake_batch(S, who))
        row = await store.enqueue_turn_input(input_draft(S, who))
        assert await store.claim_ready_queued_work(fence, "idle") is not None
        assert await store.claim_next_turn_inputs(fence) is not None
        assert await store.list_pending_queued_work(S) == []
        assert await store.list_pending_turn_inputs(S) == []
        assert await store.cancel_queued_work_batch(S, batch.batch_id) is None
        target = CancelTarget(input_id=row.input_id)
        [outcome] = await store.cancel_pending_turn_inputs(S, [target])
        assert outcome.status == "already_claimed"
        return fence, batch, row

    async def visible_and_cancellable(batch: QueuedWorkBatch, row: PendingTurnInput) -> None:
        pending = await store.list_pending_queued_work(S)
        assert [b.batch_id for b in pending] == [batch.batch_id]
        inputs = await store.list_pending_turn_inputs(S)
        assert [r.input_id for r in inputs] == [row.input_id]
        assert await store.cancel_queued_work_batch(S, batch.batch_id) is not None
        target = CancelTarget(input_id=row.input_id)
        [outcome] = await store.cancel_pending_turn_inputs(S, [target])
        assert outcome.status == "cancelled"

    fence, batch, row = await claim_both("released")
    await store.release_lease(fence)
    await visible_and_cancellable(batch, row)
    _, batch, row = await claim_both("expired", ttl_ms=1_000)
    h.clock.advance(1_001)
    await visible_and_cancellable(batch, row)
    # takeover: the successor's new generation makes the old claims visible at once
    _, batch, row = await claim_both("taken-over", ttl_ms=1_000)
    h.clock.advance(1_001)
    await lease(store, S, "successor")
    await visible_and_cancellable(batch, row)


@case()
async def same_generation_claim_scans_reach_rows_beyond_the_scan_surplus(h: StoreHarness) -> None:
    """More than 32 same-generation claimed rows never hide later work from a claim."""
    store = await h.open()
    fence = await lease(store, S)
    for i in range(40):
        await store.enqueue_queued_work(wake_batch(S, f"held-{i}"))
    for _ in range(40):
        assert await store.claim_ready_queued_work(fence, "idle") is not None
    await store.enqueue_queued_work(wake_batch(S, "late"))
    assert _claimed_tags(await store.claim_ready_queued_work(fence, "idle")) == ["late"]
    await store.enqueue_queued_work(command_batch(S, "late-command"))
    assert await store.claim_leading_session_command(fence) is not None
    for i in range(40):
        await store.enqueue_turn_input(input_draft(S, f"held-{i}"))
    held = await store.claim_next_turn_inputs(fence, max_inputs=40)
    assert held is not None and len(held.inputs) == 40
    await store.enqueue_turn_input(input_draft(S, "late"))
    late = await store.claim_next_turn_inputs(fence)
    assert late is not None and _texts(late.inputs) == ["late"]


@case()
async def queued_work_respects_membership_limits_exclusivity_reclaim_and_sessions(
    h: StoreHarness,
) -> None:
    """Future work waits; exclusive batches go alone; joins group up to the limit; sessions
    are isolated; a cross-generation reclaim bumps fencing."""
    store = await h.open()
    fence = await lease(store, S, "w1")
    now = h.clock.now_ms()
    await store.enqueue_queued_work(wake_batch(S, "future", available_at_ms=now + 10_000))
    await store.enqueue_queued_work(wake_batch(S, "now", available_at_ms=now))
    await store.enqueue_queued_work(wake_batch(OTHER, "foreign"))
    assert _claimed_tags(await store.claim_ready_queued_work(fence, "idle")) == ["now"]
    assert await store.claim_ready_queued_work(fence, "idle") is None
    h.clock.advance(10_000)
    assert _claimed_tags(await store.claim_ready_queued_work(fence, "idle")) == ["future"]
    for tag in ("x1", "x2"):
        await store.enqueue_queued_work(wake_batch(S, tag))
    assert _claimed_tags(await store.claim_ready_queued_work(fence, "idle")) == ["x1"]
    assert _claimed_tags(await store.claim_ready_queued_work(fence, "idle")) == ["x2"]
    for tag in ("j1", "j2", "j3"):
        await store.enqueue_queued_work(wake_batch(S, tag, slot="join"))
    assert _claimed_tags(await store.claim_ready_queued_work(fence, "idle", 2)) == ["j1", "j2"]
    assert await store.claim_ready_queued_work(fence, "idle", 0) is None
    last = await store.claim_ready_queued_work(fence, "idle")
    assert _claimed_tags(last) == ["j3"]
    assert last is not None and last.fencing_token == 1
    assert _tags(await store.list_queued_work(OTHER)) == ["foreign"]
    await store.release_lease(fence)
    gen2 = await lease(store, S, "w2")
    first = await store.claim_ready_queued_work(gen2, "idle")
    assert _claimed_tags(first) == ["future"]  # the oldest row of the old generation
    assert first is not None and first.fencing_token == 2
    assert first.batches[0].claim_fencing_token == 2


@case()
async def queued_work_join_groups_by_delivery_policy_and_merge_key(h: StoreHarness) -> None:
    """Join claims take only adjacent join batches with equal delivery policy and merge key."""
    store = await h.open()
    fence = await lease(store, S)
    a, b = MergeKey(kind="group", group="a"), MergeKey(kind="group", group="b")
    await store.enqueue_queued_work(wake_batch(S, "a1", slot="join", merge=a))
    await store.enqueue_queued_work(wake_batch(S, "a2", slot="join", merge=a))
    await store.enqueue_queued_work(wake_batch(S, "b1", slot="join", merge=b))
    await store.enqueue_queued_work(
        wake_batch(S, "b2-late", slot="join", merge=b, delivery="after_current_turn_commit")
    )
    await store.enqueue_queued_work(
        wake_batch(S, "b3-late", slot="join", merge=b, delivery="after_current_turn_commit")
    )
    await store.enqueue_queued_work(wake_batch(S, "d1", slot="join"))
    await store.enqueue_queued_work(wake_batch(S, "excl"))
    await store.enqueue_queued_work(wake_batch(S, "d2", slot="join"))
    claim = store.claim_ready_queued_work
    assert _claimed_tags(await claim(fence, "idle")) == ["a1", "a2"]
    assert _claimed_tags(await claim(fence, "idle")) == ["b1"]
    assert _claimed_tags(await claim(fence, "idle")) == ["b2-late", "b3-late"]
    assert _claimed_tags(await claim(fence, "idle")) == ["d1"]
    assert _claimed_tags(await claim(fence, "idle")) == ["excl"]
    assert _claimed_tags(await claim(fence, "idle")) == ["d2"]


@case()
async def queued_work_completion_is_lease_guarded(h: StoreHarness) -> None:
    """A completion from a stale fence or a superseded claim fails and keeps the rows."""
    store = await h.open()
    gen1 = await lease(store, S, "w1")
    await store.enqueue_queued_work(wake_batch(S, "w"))
    q1 = await store.claim_ready_queued_work(gen1, "idle")
    assert q1 is not None
    await store.release_lease(gen1)
    gen2 = await lease(store, S, "w2")
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED, store.commit(commit(S, gen1, queue=[q1]))
    )
    q2 = await store.claim_ready_queued_work(gen2, "idle")
    assert q2 is not None
    await expect_error(
        StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED, store.commit(commit(S, gen2, queue=[q1]))
    )
    assert _tags(await store.list_queued_work(S)) == ["w"]
    await store.commit(commit(S, gen2, queue=[q2]))
    assert await store.list_queued_work(S) == []


@case()
async def queued_wake_delivery_is_source_key_idempotent_and_claimed_once(h: StoreHarness) -> None:
    """A replayed wake enqueue returns the original batch; it is delivered exactly once."""
    store = await h.open()
    fence = await lease(store, S)
    key = "process:p1:event:1:wake"
    first = await store.enqueue_queued_work(wake_batch(S, "wake", source_key=key))
    again = await store.enqueue_queued_work(wake_batch(S, "wake", source_key=key))
    assert again == first
    assert len(await store.list_queued_work(S)) == 1
    claim = await store.claim_ready_queued_work(fence, "idle")
    assert claim is not None and claim.batch_ids == (first.batch_id,)
    await store.commit(commit(S, fence, queue=[claim]))
    assert await store.list_queued_work(S) == []
    assert await store.claim_ready_queued_work(fence, "idle") is None
    await expect_error(
        StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED, store.commit(commit(S, fence, queue=[claim]))
    )


@case()
async def queue_completion_and_turn_commit_stamp_are_atomic(h: StoreHarness) -> None:
    """A stale completion or a foreign outbox batch rejects the whole final commit; a valid
    one settles everything at once and its retry returns the original outbox identity."""
    store = await h.open()
    fence = await lease(store, S)
    await store.enqueue_queued_work(wake_batch(S, "w"))
    row = await store.enqueue_turn_input(input_draft(S, "hello"))
    stale = await store.claim_ready_queued_work(fence, "idle")
    assert stale is not None
    await store.abandon_queued_work_claim(S, stale.claim_id, stale.lease_token)
    live = await store.claim_ready_queued_work(fence, "idle")
    inputs = await store.claim_next_turn_inputs(fence)
    assert live is not None and inputs is not None
    outbox = [wake_batch(S, "handoff", source_key="agent-frame-handoff:t1")]
    nodes = [message_node("n1")]
    for bad in (
        commit(S, fence, nodes=nodes, queue=[stale], inputs=[inputs], outbox=outbox, turn_id="t1"),
        commit(
            S,
            fence,
            nodes=nodes,
            queue=[live],
            inputs=[inputs],
            outbox=[wake_batch(OTHER, "x")],
            turn_id="t1",
        ),
    ):
        try:
            await store.commit(bad)
        except Exception as exc:
            assert getattr(exc, "kind", None) in (
                StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED,
                StoreErrorKind.SESSION_BINDING_MISMATCH,
            ), exc
        else:
            raise AssertionError("a commit with a bad part must be rejected")
        assert await store.load_session(S) is None
        assert _tags(await store.list_queued_work(S)) == ["w"]
        still = await store.get_turn_input(S, row.input_id)
        assert still is not None and still.state == "deferred_next_turn"
        assert still.claim is not None and still.claim.claim_id == inputs.claim_id
        assert await store.list_queued_work(OTHER) == []
    good = commit(S, fence, nodes=nodes, queue=[live], inputs=[inputs], outbox=outbox, turn_id="t1")
    done = await store.commit(good)
    assert done.head_revision == 1 and len(done.enqueued_queue_batches) == 1
    handoff = done.enqueued_queue_batches[0]
    assert handoff.source_key == "agent-frame-handoff:t1" and wake_tag(handoff) == "handoff"
    assert [b.batch_id for b in await store.list_queued_work(S)] == [handoff.batch_id]
    completed = await store.get_turn_input(S, row.input_id)
    assert completed is not None and completed.state == "completed" and completed.claim is None
    retry = await store.commit(good)
    assert retry.replayed
    assert [b.batch_id for b in retry.enqueued_queue_batches] == [handoff.batch_id]
    assert len(await store.list_queued_work(S)) == 1


# --- pending turn input ----------------------------------------------------------------


@case()
async def pending_turn_inputs_source_keys_order_cancel_and_cross_session(h: StoreHarness) -> None:
    """Source-key replays return the original (even cancelled); changed content conflicts;
    order and sessions hold; vacuum prunes only tombstones."""
    store = await h.open()
    i1 = await store.enqueue_turn_input(input_draft(S, "one", source_key="k1"))
    i2 = await store.enqueue_turn_input(input_draft(S, "two", source_key="k2"))
    i3 = await store.enqueue_turn_input(input_draft(S, "three"))
    assert i1.state == "deferred_next_turn" and i1.ingress.kind == "next_turn"
    assert await store.enqueue_turn_input(input_draft(S, "one", source_key="k1")) == i1
    err = await expect_error(
        StoreErrorKind.PENDING_TURN_INPUT_SOURCE_KEY_CONFLICT,
        store.enqueue_turn_input(input_draft(S, "changed", source_key="k1")),
    )
    assert err.details.get("existing_input_id") == i1.input_id
    await expect_error(
        StoreErrorKind.PENDING_TURN_INPUT_SOURCE_KEY_CONFLICT,
        store.enqueue_turn_input(input_draft(S, "one", source_key="k1", turn_id="t1")),
    )
    assert _texts(await store.list_pending_turn_inputs(S)) == ["one", "two", "three"]
    theirs = await store.enqueue_turn_input(input_draft(OTHER, "one", source_key="k1"))
    assert theirs.input_id != i1.input_id
    assert _texts(await store.list_pending_turn_inputs(OTHER)) == ["one"]
    [cancelled] = await store.cancel_pending_turn_inputs(S, [CancelTarget(input_id=i2.input_id)])
    assert cancelled.status == "cancelled"
    assert cancelled.input is not None and cancelled.input.state == "cancelled"
    [again] = await store.cancel_pending_turn_inputs(S, [CancelTarget(source_key="k2")])
    assert again.status == "already_cancelled"
    replay = await store.enqueue_turn_input(input_draft(S, "two", source_key="k2"))
    assert replay.input_id == i2.input_id and replay.state == "cancelled"
    assert [r.input_id for r in await store.list_pending_turn_inputs(S)] == [
        i1.input_id,
        i3.input_id,
    ]
    report = await store.vacuum()
    assert report.removed_pending_turn_input_tombstone_count == 1
    assert await store.get_turn_input(S, i2.input_id) is None
    assert await store.get_turn_input(S, i1.input_id) is not None
    assert (await store.vacuum()).removed_pending_turn_input_tombstone_count == 0


@case()
async def pending_turn_input_bulk_and_suffix_cancellation(h: StoreHarness) -> None:
    """Bulk cancel reports per target; suffix cancel covers every later row, claimed ones
    included; a missing anchor is reported."""
    store = await h.open()
    fence = await lease(store, S)
    i1 = await store.enqueue_turn_input(input_draft(S, "one", source_key="a"))
    await store.enqueue_turn_input(input_draft(S, "two", source_key="b"))
    i3 = await store.enqueue_turn_input(input_draft(S, "three", turn_id="t1"))
    i4 = await store.enqueue_turn_input(input_draft(S, "four"))
    i5 = await store.enqueue_turn_input(input_draft(S, "five"))
    outcomes = await store.cancel_pending_turn_inputs(
        S,
        [
            CancelTarget(input_id=i1.input_id),
            CancelTarget(source_key="b"),
            CancelTarget(input_id="missing"),
        ],
    )
    assert [o.status for o in outcomes] == ["cancelled", "cancelled", "not_found"]
    assert outcomes[2].target == CancelTarget(input_id="missing")
    claim = await store.claim_active_turn_inputs(fence, "t1", "after_work")
    assert claim is not None and claim.input_ids == (i3.input_id,)
    suffix = await store.cancel_pending_turn_input_suffix(S, CancelTarget(source_key="b"))
    assert suffix.anchor_found
    assert [(o.input.input_id if o.input else None, o.status) for o in suffix.outcomes] == [
        (outcomes[1].input.input_id if outcomes[1].input else None, "already_cancelled"),
        (i3.input_id, "already_claimed"),
        (i4.input_id, "cancelled"),
        (i5.input_id, "cancelled"),
    ]
    claimed = suffix.outcomes[1]
    assert claimed.claim is not None and claimed.claim.claim_id == claim.claim_id
    by_id = await store.cancel_pending_turn_input_suffix(S, CancelTarget(input_id=i4.input_id))
    assert by_id.anchor_found
    assert [o.status for o in by_id.outcomes] == ["already_cancelled", "already_cancelled"]
    missing = await store.cancel_pending_turn_input_suffix(S, CancelTarget(source_key="nope"))
    assert not missing.anchor_found and missing.outcomes == ()
    assert await store.list_pending_turn_inputs(S) == []


@case()
async def pending_turn_input_claims_reclaim_complete_and_fence(h: StoreHarness) -> None:
    """Live claims hide and protect rows; abandon + reclaim bumps fencing; stale completion
    fails without disturbing the live claim; completed rows are never claimed again."""
    store = await h.open()
    fence = await lease(store, S)
    row = await store.enqueue_turn_input(input_draft(S, "hello", source_key="k"))
    c1 = await store.claim_next_turn_inputs(fence)
    assert c1 is not None and c1.input_ids == (row.input_id,)
    [outcome] = await store.cancel_pending_turn_inputs(S, [CancelTarget(input_id=row.input_id)])
    assert outcome.status == "already_claimed"
    assert await store.list_pending_turn_inputs(S) == []
    await store.abandon_turn_input_claim(S, c1.claim_id, c1.lease_token)
    assert [r.input_id for r in await store.list_pending_turn_inputs(S)] == [row.input_id]
    c2 = await store.claim_next_turn_inputs(fence)
    assert c2 is not None and c2.claim_id != c1.claim_id
    assert c2.inputs[0].claim_fencing_token == c1.inputs[0].claim_fencing_token + 1
    await expect_error(
        StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED, store.commit(commit(S, fence, inputs=[c1]))
    )
    live = await store.get_turn_input(S, row.input_id)
    assert live is not None and live.claim is not None and live.claim.claim_id == c2.claim_id
    await store.commit(commit(S, fence, inputs=[c2]))
    done = await store.get_turn_input(S, row.input_id)
    assert done is not None and done.state == "completed"
    assert await store.claim_next_turn_inputs(fence) is None
    [late] = await store.cancel_pending_turn_inputs(S, [CancelTarget(source_key="k")])
    assert late.status == "already_completed"
    replay = await store.enqueue_turn_input(input_draft(S, "hello", source_key="k"))
    assert replay.input_id == row.input_id and replay.state == "completed"


@case()
async def turn_input_claims_supersede_across_session_lease_generations(h: StoreHarness) -> None:
    """Next-turn claims: no same-generation re-claim; a new generation takes over."""
    store = await h.open()
    gen1 = await lease(store, S, "w1", ttl_ms=1_000)
    await store.enqueue_turn_input(input_draft(S, "hello"))
    c1 = await store.claim_next_turn_inputs(gen1)
    assert c1 is not None and c1.session_lease_generation == gen1.fencing_token
    assert await store.claim_next_turn_inputs(gen1) is None
    await store.release_lease(gen1)
    gen2 = await lease(store, S, "w2", ttl_ms=1_000)
    c2 = await store.claim_next_turn_inputs(gen2)
    assert c2 is not None and c2.claim_id != c1.claim_id
    await expect_error(
        StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED, store.commit(commit(S, gen2, inputs=[c1]))
    )
    h.clock.advance(1_001)
    gen3 = await lease(store, S, "w3")
    c3 = await store.claim_next_turn_inputs(gen3)
    assert c3 is not None and c3.claim_id not in (c1.claim_id, c2.claim_id)
    await expect_error(
        StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED, store.commit(commit(S, gen3, inputs=[c2]))
    )
    await store.commit(commit(S, gen3, inputs=[c3]))
    row = await store.get_turn_input(S, c3.input_ids[0])
    assert row is not None and row.state == "completed"


@case()
async def pending_turn_input_cancel_covers_active_and_deferred_states(h: StoreHarness) -> None:
    """Cancelled input is never resurrected by deferral; deferred input is cancellable and
    then unclaimable."""
    store = await h.open()
    fence = await lease(store, S)
    active = await store.enqueue_turn_input(input_draft(S, "steer", turn_id="t1"))
    nxt = await store.enqueue_turn_input(input_draft(S, "later"))
    outcomes = await store.cancel_pending_turn_inputs(
        S, [CancelTarget(input_id=active.input_id), CancelTarget(input_id=nxt.input_id)]
    )
    assert [o.status for o in outcomes] == ["cancelled", "cancelled"]
    await store.commit(commit(S, fence, interrupted="t1"))
    still = await store.get_turn_input(S, active.input_id)
    assert still is not None and still.state == "cancelled"
    missed = await store.enqueue_turn_input(input_draft(S, "missed", turn_id="t1"))
    await store.commit(commit(S, fence, interrupted="t1"))
    deferred = await store.get_turn_input(S, missed.input_id)
    assert deferred is not None and deferred.state == "deferred_next_turn"
    assert deferred.ingress.kind == "next_turn"
    [outcome] = await store.cancel_pending_turn_inputs(S, [CancelTarget(input_id=missed.input_id)])
    assert outcome.status == "cancelled"
    assert await store.claim_next_turn_inputs(fence) is None
    assert await store.claim_active_turn_inputs(fence, "t1", "before_completion") is None


@case()
async def pending_active_turn_inputs_defer_unaccepted_once_on_interrupt(h: StoreHarness) -> None:
    """An after-work claim takes matching input in order; the interrupt commit completes the
    accepted and defers the unaccepted exactly once; other turns are untouched."""
    store = await h.open()
    fence = await lease(store, S)
    a1 = await store.enqueue_turn_input(input_draft(S, "a1", turn_id="t1"))
    a2 = await store.enqueue_turn_input(
        input_draft(S, "a2", turn_id="t1", min_boundary="before_completion")
    )
    a3 = await store.enqueue_turn_input(input_draft(S, "a3", turn_id="t1"))
    o1 = await store.enqueue_turn_input(input_draft(S, "o1", turn_id="t2"))
    assert a1.state == "pending_active"
    claim = await store.claim_active_turn_inputs(fence, "t1", "after_work")
    assert claim is not None and claim.input_ids == (a1.input_id, a3.input_id)
    assert all(i.state == "accepted" for i in claim.inputs)
    await store.commit(
        commit(S, fence, nodes=[message_node("n1")], inputs=[claim], interrupted="t1")
    )
    states = {
        i.input_id: (r.state if (r := await store.get_turn_input(S, i.input_id)) else None)
        for i in (a1, a2, a3, o1)
    }
    assert states == {
        a1.input_id: "completed",
        a2.input_id: "deferred_next_turn",
        a3.input_id: "completed",
        o1.input_id: "pending_active",
    }
    nxt = await store.claim_next_turn_inputs(fence)
    assert nxt is not None and nxt.input_ids == (a2.input_id,)
    assert nxt.inputs[0].ingress.kind == "next_turn"
    await store.commit(commit(S, fence, interrupted="t1"))
    again = await store.get_turn_input(S, a2.input_id)
    assert again is not None and again.state == "deferred_next_turn"
    assert again.claim is not None and again.claim.claim_id == nxt.claim_id
    late = await store.enqueue_turn_input(
        input_draft(S, "late", turn_id="t3", min_boundary="before_completion")
    )
    assert await store.claim_active_turn_inputs(fence, "t3", "after_work") is None
    gate = await store.claim_active_turn_inputs(fence, "t3", "before_completion")
    assert gate is not None and gate.input_ids == (late.input_id,)


@case(requires={"linux_proc"}, reason="dead-holder takeover reads /proc")
async def dead_owner_takeover_supersedes_claims_in_both_lanes(h: StoreHarness) -> None:
    """A reclaimed (dead-holder) lease is a new generation: the successor re-claims both
    lanes before any TTL passes and the dead holder's completions fail."""
    store = await h.open()
    me = local_process_owner("successor")
    assert me.liveness is not None
    dead_liveness = msgspec.structs.replace(
        me.liveness, process_start=me.liveness.process_start + 1
    )
    dead = LeaseOwner(owner_id="dead", incarnation_id="dead:1", liveness=dead_liveness)
    held = await lease(store, S, dead)
    await store.enqueue_queued_work(wake_batch(S, "w"))
    await store.enqueue_turn_input(input_draft(S, "hi"))
    q1 = await store.claim_ready_queued_work(held, "idle")
    i1 = await store.claim_next_turn_inputs(held)
    assert q1 is not None and i1 is not None
    taken = acquired(await store.reclaim_lease(S, me, held, TTL_MS))
    q2 = await store.claim_ready_queued_work(taken, "idle")
    i2 = await store.claim_next_turn_inputs(taken)
    assert q2 is not None and i2 is not None
    await expect_error(
        StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED, store.commit(commit(S, taken, queue=[q1]))
    )
    await expect_error(
        StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED, store.commit(commit(S, taken, inputs=[i1]))
    )
    await store.commit(commit(S, taken, queue=[q2], inputs=[i2]))
    assert await store.list_queued_work(S) == []


@case()
async def a_failed_commit_changes_nothing(h: StoreHarness) -> None:
    """A commit that fails late (a duplicate node id, after claims, deferral and usage were
    already validated) leaves claims, input states, usage, checkpoint and queue untouched."""
    store = await h.open()
    fence = await lease(store, S)
    await store.commit(commit(S, fence, nodes=[message_node("n1")], turn_index=1))
    await store.enqueue_queued_work(wake_batch(S, "w"))
    row = await store.enqueue_turn_input(input_draft(S, "hello"))
    active = await store.enqueue_turn_input(input_draft(S, "steer", turn_id="t1"))
    queue = await store.claim_ready_queued_work(fence, "idle")
    inputs = await store.claim_next_turn_inputs(fence)
    assert queue is not None and inputs is not None
    usage = [TokenLedgerEntry(source="turn", model="m", usage=TokenUsage(input_tokens=9))]
    bad = commit(
        S,
        fence,
        nodes=[message_node("n2", parent="n1"), message_node("n1")],
        expected=1,
        turn_index=2,
        queue=[queue],
        inputs=[inputs],
        interrupted="t1",
        usage=usage,
        outbox=[wake_batch(S, "outbox", source_key="out")],
        turn_id="t1",
    )
    try:
        await store.commit(bad)
    except StoreError:
        pass
    else:
        raise AssertionError("appending an existing node id must fail")
    loaded = await store.load_session(S)
    assert loaded is not None and loaded.head_revision == 1
    assert loaded.checkpoint.turn_index == 1 and loaded.token_ledger == ()
    assert [n.node_id for n in loaded.nodes] == ["n1"]
    assert _tags(await store.list_queued_work(S)) == ["w"]
    assert await store.list_pending_queued_work(S) == []
    kept = await store.get_turn_input(S, row.input_id)
    assert kept is not None and kept.state == "deferred_next_turn"
    assert kept.claim is not None and kept.claim.claim_id == inputs.claim_id
    still_active = await store.get_turn_input(S, active.input_id)
    assert still_active is not None and still_active.state == "pending_active"
    good = commit(
        S,
        fence,
        nodes=[message_node("n2", parent="n1")],
        expected=1,
        turn_index=2,
        queue=[queue],
        inputs=[inputs],
        interrupted="t1",
        usage=usage,
        turn_id="t1",
    )
    assert (await store.commit(good)).head_revision == 2
    deferred = await store.get_turn_input(S, active.input_id)
    assert deferred is not None and deferred.state == "deferred_next_turn"
