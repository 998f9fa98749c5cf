"""``runtime_persistence``: commits, reads, the session lease, maintenance (persistence.md §7.1).

Queued work and pending turn input live in :mod:`.runtime_persistence_ingress` (same suite
name). Where a reference check does not apply to this contract — the store is multi-session,
attachment references live in the attachment store, checkpoints are not blobs — the case
asserts the nearest meaningful property and says so in its docstring.
"""

from __future__ import annotations

import asyncio

import msgspec

from lash.errors import StoreError, StoreErrorKind
from lash.stores.base import SessionStore
from lash.stores.liveness import current_liveness, local_process_owner
from lash.testing.conformance._harness import CaseSkipped, StoreHarness, Suite
from lash.testing.conformance._support import (
    TTL_MS,
    acquired,
    busy,
    checkpoint,
    command_batch,
    commit,
    expect_error,
    input_draft,
    lease,
    message_node,
    owner,
    wake_batch,
)
from lash.types import (
    AgentFrameRecord,
    GraphAppend,
    GraphReplaceFull,
    GraphUnchanged,
    LeaseAcquired,
    LeaseOwner,
    RuntimeCommitResult,
    SessionMeta,
    TokenLedgerEntry,
    TokenUsage,
    TurnCommitStamp,
    initial_frame_id,
)

SUITE = Suite("runtime_persistence")
case = SUITE.case

S = "session-a"
OTHER = "session-b"


def _ids(session: object) -> list[str]:
    nodes = getattr(session, "nodes", ())
    return [n.node_id for n in nodes]


@case()
async def reports_declared_durability(h: StoreHarness) -> None:
    """The store reports the tier its backend declares."""
    store = await h.open()
    assert isinstance(store, SessionStore)
    assert store.tier is h.tier


@case()
async def commit_increments_head_and_round_trips_agent_frames(h: StoreHarness) -> None:
    """Head revisions count commits; frames, the current frame and execution state load back."""
    store = await h.open()
    fence = await lease(store, S)
    frames = (
        AgentFrameRecord(frame_id=initial_frame_id(S), session_id=S, status="closed"),
        AgentFrameRecord(
            frame_id="frame-2",
            session_id=S,
            reason="compaction",
            previous_frame_id=initial_frame_id(S),
            task="summarise and continue",
            protocol_turn_options={"effort": "low"},
        ),
    )
    ck = checkpoint(1, execution_state={"frames": {"frame-2": {"cursor": 3, "vars": [1, 2]}}})
    first = await store.commit(
        commit(S, fence, nodes=[message_node("n1")], expected=0, frames=frames, ckpt=ck)
    )
    assert first.head_revision == 1 and not first.replayed
    second = await store.commit(
        commit(
            S,
            fence,
            nodes=[message_node("n2", parent="n1", frame="frame-2")],
            expected=1,
            frames=frames,
            current_frame="frame-2",
            ckpt=ck,
        )
    )
    assert second.head_revision == 2
    loaded = await store.load_session(S)
    assert loaded is not None
    assert loaded.head_revision == 2
    assert loaded.agent_frames == frames
    assert loaded.current_agent_frame_id == "frame-2"
    assert loaded.checkpoint.execution_state == ck.execution_state
    assert _ids(loaded) == ["n1", "n2"]
    assert loaded.nodes[1].agent_frame_id == "frame-2"


@case()
async def concurrent_head_revision_cas_applies_exactly_once(h: StoreHarness) -> None:
    """Two commits expecting revision 0 race (on two handles where possible): one wins."""
    store = await h.open()
    other = await h.second_handle(store)
    fence = await lease(store, S)
    results = await asyncio.gather(
        store.commit(commit(S, fence, nodes=[message_node("a")], expected=0)),
        other.commit(commit(S, fence, nodes=[message_node("b")], expected=0)),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, RuntimeCommitResult)]
    losses = [r for r in results if isinstance(r, StoreError)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert losses[0].kind is StoreErrorKind.HEAD_REVISION_CONFLICT
    assert wins[0].head_revision == 1
    loaded = await store.load_session(S)
    assert loaded is not None and loaded.head_revision == 1
    assert _ids(loaded) in (["a"], ["b"])


@case()
async def commit_rejects_a_different_session_id(h: StoreHarness) -> None:
    """Multi-session form of the binding check: nothing in a commit may reach another session.

    Another session's fence, an outbox batch for another session and a turn stamp naming
    another session are each rejected, and neither session changes.
    """
    store = await h.open()
    fence_a = await lease(store, S)
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        store.commit(commit(OTHER, fence_a, nodes=[message_node("x")])),
    )
    await expect_error(
        StoreErrorKind.SESSION_BINDING_MISMATCH,
        store.commit(
            commit(S, fence_a, nodes=[message_node("y")], outbox=[wake_batch(OTHER, "w")])
        ),
    )
    stamped = commit(S, fence_a, nodes=[message_node("z")], turn_id="t1")
    assert stamped.turn_commit is not None
    foreign = msgspec.structs.replace(
        stamped,
        turn_commit=TurnCommitStamp(
            session_id=OTHER, turn_id="t1", turn_commit_hash=stamped.turn_commit.turn_commit_hash
        ),
    )
    await expect_error(StoreErrorKind.RUNTIME_TURN_COMMIT_CONFLICT, store.commit(foreign))
    assert await store.load_session(S) is None
    assert await store.load_session(OTHER) is None
    assert await store.list_queued_work(OTHER) == []


@case()
async def load_hydrates_checkpoint_and_usage(h: StoreHarness) -> None:
    """Tool and plugin state load back; the usage ledger merges by (source, model)."""
    store = await h.open()
    fence = await lease(store, S)
    ck = checkpoint(
        2,
        tool_state={"generation": 3, "catalog": ["read_file", "grep"]},
        plugin_state={"plan": {"revision": 2}},
        token_usage=TokenUsage(input_tokens=15, output_tokens=5),
        last_prompt_usage=TokenUsage(input_tokens=5),
    )
    usage1 = [
        TokenLedgerEntry(source="turn", model="m1", usage=TokenUsage(input_tokens=10)),
        TokenLedgerEntry(source="turn", model="m1", usage=TokenUsage(input_tokens=5)),
        TokenLedgerEntry(source="subagent", model="m2", usage=TokenUsage()),
    ]
    await store.commit(commit(S, fence, nodes=[message_node("n1")], ckpt=ck, usage=usage1))
    usage2 = [TokenLedgerEntry(source="turn", model="m1", usage=TokenUsage(output_tokens=5))]
    await store.commit(commit(S, fence, ckpt=ck, usage=usage2))
    loaded = await store.load_session(S)
    assert loaded is not None
    assert loaded.checkpoint == ck
    assert loaded.token_ledger == (
        TokenLedgerEntry(
            source="turn", model="m1", usage=TokenUsage(input_tokens=15, output_tokens=5)
        ),
    )


@case()
async def active_path_read_scope_selects_only_requested_ancestry(h: StoreHarness) -> None:
    """Full loads keep every branch; active-path loads follow the persisted or given leaf."""
    store = await h.open()
    fence = await lease(store, S)
    nodes = [
        message_node("r"),
        message_node("a1", parent="r"),
        message_node("a2", parent="a1"),
        message_node("b1", parent="r"),
    ]
    await store.commit(commit(S, fence, graph=GraphAppend(nodes=tuple(nodes), leaf_node_id="a2")))
    full = await store.load_session(S)
    assert full is not None and sorted(_ids(full)) == ["a1", "a2", "b1", "r"]
    assert full.leaf_node_id == "a2"
    assert _ids(await store.load_session(S, active_path_only=True)) == ["r", "a1", "a2"]
    assert _ids(await store.load_session(S, active_path_only=True, leaf_node_id="b1")) == [
        "r",
        "b1",
    ]
    await store.commit(commit(S, fence, graph=GraphUnchanged(leaf_node_id="b1")))
    moved = await store.load_session(S, active_path_only=True)
    assert moved is not None and moved.leaf_node_id == "b1"
    assert _ids(moved) == ["r", "b1"]


@case()
async def session_metadata_round_trips(h: StoreHarness) -> None:
    """Metadata saves, loads, replaces and lists by session id."""
    store = await h.open()
    assert await store.load_session_meta(S) is None
    meta = SessionMeta(
        session_id=S, created_at_ms=5, model="m1", name="chat", parent_session_id=None
    )
    await store.save_session_meta(meta)
    await store.save_session_meta(SessionMeta(session_id="session-0", name="first"))
    assert await store.load_session_meta(S) == meta
    renamed = msgspec.structs.replace(meta, name="renamed")
    await store.save_session_meta(renamed)
    assert await store.load_session_meta(S) == renamed
    listed = await store.list_sessions()
    assert [m.session_id for m in listed] == ["session-0", S]
    assert listed[1] == renamed


@case()
async def final_commit_stamp_is_idempotent_and_conflicts_on_changed_hash(h: StoreHarness) -> None:
    """A final commit needs a live lease; its identical retry does not (and still releases
    when asked); the hash ignores the CAS revision and ids; changed content conflicts."""
    store = await h.open()
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        store.commit(commit(S, None, nodes=[message_node("n1")], turn_id="t0")),
    )
    fence = await lease(store, S, "w1")
    final = commit(
        S,
        fence,
        nodes=[message_node("n1", "hi")],
        expected=0,
        turn_id="t1",
        release=True,
        result={"text": "done"},
    )
    first = await store.commit(final)
    assert first.head_revision == 1 and not first.replayed and first.result == {"text": "done"}
    # the lease is released: another owner acquires at once
    fence2 = await lease(store, S, "w2")
    again = await store.commit(final)
    assert again.replayed and again.head_revision == 1 and again.result == {"text": "done"}
    regenerated = commit(
        S, fence, nodes=[message_node("n1-regenerated", "hi")], expected=7, turn_id="t1"
    )
    assert (await store.commit(regenerated)).replayed
    loaded = await store.load_session(S)
    assert loaded is not None and loaded.head_revision == 1 and _ids(loaded) == ["n1"]
    await expect_error(
        StoreErrorKind.RUNTIME_TURN_COMMIT_CONFLICT,
        store.commit(commit(S, fence2, nodes=[message_node("n1", "changed")], turn_id="t1")),
    )
    # an identical retry performs the requested fenced release
    t2 = commit(S, fence2, nodes=[message_node("n2", parent="n1")], turn_id="t2")
    assert (await store.commit(t2)).head_revision == 2
    busy(await store.try_claim_lease(S, owner("w3"), TTL_MS))
    replay = await store.commit(msgspec.structs.replace(t2, release_lease=True))
    assert replay.replayed and replay.head_revision == 2
    acquired(await store.try_claim_lease(S, owner("w3"), TTL_MS))


@case()
async def session_execution_lease_contract(h: StoreHarness) -> None:
    """Re-entry, busy, renew, fenced release, fencing bumps, ttl 0, and fenced writes."""
    store = await h.open()
    w1 = owner("w1", "i1")
    f1 = await lease(store, S, w1)
    assert f1.fencing_token == 1
    h.clock.advance(1_000)
    reentry = await store.try_claim_lease(S, w1, TTL_MS)
    assert isinstance(reentry, LeaseAcquired)
    assert reentry.lease.lease_token == f1.lease_token
    assert reentry.lease.fencing_token == 1
    assert reentry.lease.expires_at_ms == h.clock.now_ms() + TTL_MS
    held = await store.try_claim_lease(S, owner("w1", "i2"), TTL_MS)
    busy(held)
    assert held.holder.fencing_token == 1  # type: ignore[union-attr]
    busy(await store.try_claim_lease(S, owner("w2"), TTL_MS))
    h.clock.advance(1_000)
    renewed = await store.renew_lease(f1, TTL_MS)
    assert renewed.lease_token == f1.lease_token and renewed.fencing_token == 1
    assert renewed.expires_at_ms == h.clock.now_ms() + TTL_MS
    await store.release_lease(f1)
    await store.release_lease(f1)  # idempotent
    f2 = await lease(store, S, "w2")
    assert f2.fencing_token == 2
    await expect_error(StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED, store.renew_lease(f1, 10))
    await store.release_lease(f1)  # stale: must not free w2's lease
    busy(await store.try_claim_lease(S, w1, TTL_MS))
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        store.commit(commit(S, f1, nodes=[message_node("x")])),
    )
    assert (await store.commit(commit(S, f2, nodes=[message_node("y")]))).head_revision == 1
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        store.claim_ready_queued_work(f1, "idle"),
    )
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED, store.claim_next_turn_inputs(f1)
    )
    # ttl 0 is already expired
    zero = acquired(await store.try_claim_lease(OTHER, owner("z"), 0))
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        store.commit(commit(OTHER, zero, nodes=[message_node("z")])),
    )
    successor = await lease(store, OTHER, "w4")
    assert successor.fencing_token == zero.fencing_token + 1
    # expiry on the clock
    h.clock.advance(TTL_MS + 1)
    await expect_error(StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED, store.renew_lease(f2, 10))
    row = await store.get_lease(S)
    assert row is not None and row.fencing_token == 2


def _local_owner_or_skip(name: str) -> LeaseOwner:
    me = local_process_owner(name)
    if me.liveness is None:
        raise CaseSkipped("no /proc liveness on this platform")
    return me


def _dead_twin(of: LeaseOwner, name: str, **changes: object) -> LeaseOwner:
    """A holder on the same host and boot whose recorded process is not running."""
    assert of.liveness is not None
    liveness = msgspec.structs.replace(
        of.liveness, process_start=of.liveness.process_start + 1, **changes
    )
    return LeaseOwner(owner_id=name, incarnation_id=f"{name}:1", liveness=liveness)


@case(requires={"linux_proc"}, reason="dead-holder proofs read /proc")
async def session_execution_lease_reclaim_contract(h: StoreHarness) -> None:
    """A provably dead holder is reclaimed before its TTL; everyone else stays busy."""
    store = await h.open()
    me = _local_owner_or_skip("claimant")
    dead = _dead_twin(me, "dead")
    held = await lease(store, S, dead)
    busy(await store.try_claim_lease(S, me, TTL_MS))
    taken = acquired(await store.reclaim_lease(S, me, held, TTL_MS))
    assert taken.fencing_token == held.fencing_token + 1
    # a stale observation cannot clear the newer lease
    rival = local_process_owner("rival")
    busy(await store.reclaim_lease(S, rival, held, TTL_MS))
    row = await store.get_lease(S)
    assert row is not None and row.lease_token == taken.lease_token
    # racing reclaimers: exactly one wins
    race = "session-race"
    held2 = await lease(store, race, _dead_twin(me, "dead2"))
    other = await h.second_handle(store)
    outcomes = await asyncio.gather(
        store.reclaim_lease(race, local_process_owner("r1"), held2, TTL_MS),
        other.reclaim_lease(race, local_process_owner("r2"), held2, TTL_MS),
    )
    assert sum(isinstance(o, LeaseAcquired) for o in outcomes) == 1, outcomes
    # cross-host, other boot, opaque and live holders are never provably dead
    live_liveness = current_liveness()
    assert live_liveness is not None
    holders = {
        "cross-host": _dead_twin(me, "h1", host_id="another-host"),
        "other-boot": _dead_twin(me, "h2", boot_id="another-boot"),
        "opaque": owner("h3"),
        "live": LeaseOwner(owner_id="h4", incarnation_id="h4:1", liveness=live_liveness),
    }
    for label, holder in holders.items():
        session = f"session-{label}"
        observed = await lease(store, session, holder)
        busy(await store.reclaim_lease(session, me, observed, TTL_MS))


@case()
async def tombstone_vacuum_and_gc_are_minimally_consistent(h: StoreHarness) -> None:
    """Tombstoned nodes vanish from every read; vacuum counts only its own removals."""
    store = await h.open()
    fence = await lease(store, S)
    nodes = [message_node("n1"), message_node("n2", parent="n1"), message_node("n3", parent="n2")]
    await store.commit(commit(S, fence, nodes=nodes))
    await store.tombstone_nodes(S, ["n2", "never-existed"])
    assert await store.load_node(S, "n2") is None
    assert await store.load_node(S, "n1") is not None
    full = await store.load_session(S)
    assert full is not None and _ids(full) == ["n1", "n3"]
    assert "n2" not in _ids(await store.load_session(S, active_path_only=True))
    report = await store.vacuum()
    assert report.removed_node_count == 1
    assert report.removed_pending_turn_input_tombstone_count == 0
    again = await store.vacuum()
    assert again.removed_node_count == 0
    assert again.removed_pending_turn_input_tombstone_count == 0
    assert await store.load_node(S, "n2") is None
    after = await store.load_session(S)
    assert after is not None and _ids(after) == ["n1", "n3"] and after.head_revision == 1


@case()
async def commits_replace_the_checkpoint_and_keep_only_the_live_one(h: StoreHarness) -> None:
    """Nearest form of checkpoint-blob GC (checkpoints are not blobs in this contract).

    After two commits only the second checkpoint is visible; a reset replaces the whole
    graph; vacuum after that removes nothing that is still live.
    """
    store = await h.open()
    fence = await lease(store, S)
    await store.commit(
        commit(S, fence, nodes=[message_node("n1")], ckpt=checkpoint(1, tool_state={"g": 1}))
    )
    await store.commit(
        commit(
            S,
            fence,
            graph=GraphReplaceFull(nodes=(message_node("fresh"),)),
            ckpt=checkpoint(2, tool_state={"g": 2}),
        )
    )
    loaded = await store.load_session(S)
    assert loaded is not None
    assert loaded.head_revision == 2
    assert loaded.checkpoint.turn_index == 2 and loaded.checkpoint.tool_state == {"g": 2}
    assert _ids(loaded) == ["fresh"] and loaded.leaf_node_id == "fresh"
    assert await store.load_node(S, "n1") is None
    report = await store.vacuum()
    assert report.removed_node_count == 0
    assert _ids(await store.load_session(S)) == ["fresh"]


@case(requires={"reopen"}, reason="only durable backends can open a second handle")
async def runtime_persistence_survives_reopen(h: StoreHarness) -> None:
    """Meta, committed state, queued work, pending input and the lease survive reopen."""
    store = await h.open()
    fence = await lease(store, S)
    await store.save_session_meta(SessionMeta(session_id=S, name="kept"))
    await store.commit(commit(S, fence, nodes=[message_node("n1")], ckpt=checkpoint(4)))
    batch = await store.enqueue_queued_work(wake_batch(S, "w", source_key="wake-1"))
    pending = await store.enqueue_turn_input(input_draft(S, "later", source_key="in-1"))
    reopened = await h.reopen(store)
    meta = await reopened.load_session_meta(S)
    assert meta is not None and meta.name == "kept"
    loaded = await reopened.load_session(S)
    assert loaded is not None and loaded.head_revision == 1 and _ids(loaded) == ["n1"]
    assert loaded.checkpoint.turn_index == 4
    assert [b.batch_id for b in await reopened.list_queued_work(S)] == [batch.batch_id]
    assert [i.input_id for i in await reopened.list_pending_turn_inputs(S)] == [pending.input_id]
    row = await reopened.get_lease(S)
    assert row is not None and row.lease_token == fence.lease_token
    busy(await reopened.try_claim_lease(S, owner("intruder"), TTL_MS))
    # the reopened handle accepts the original fence
    assert (await reopened.commit(commit(S, fence, expected=1))).head_revision == 2


@case(requires={"reopen"}, reason="only durable backends can open a second handle")
async def session_execution_lease_first_claim_excludes_concurrent_reopen_handles(
    h: StoreHarness,
) -> None:
    """Two handles race the very first claim of a session: exactly one wins."""
    store = await h.open()
    other = await h.reopen(store)
    outcomes = await asyncio.gather(
        store.try_claim_lease(S, owner("a"), TTL_MS),
        other.try_claim_lease(S, owner("b"), TTL_MS),
    )
    winners = [o for o in outcomes if isinstance(o, LeaseAcquired)]
    assert len(winners) == 1, outcomes
    assert winners[0].lease.fencing_token == 1


@case()
async def runtime_persistence_clock_expiry(h: StoreHarness) -> None:
    """The store reads the injected clock: after the TTL a successor takes over, re-claims
    both lanes with higher claim fencing, and only its commit lands."""
    store = await h.open()
    stale = await lease(store, S, "w1", ttl_ms=1_000)
    await store.enqueue_queued_work(wake_batch(S, "w"))
    await store.enqueue_turn_input(input_draft(S, "hello"))
    q1 = await store.claim_ready_queued_work(stale, "idle")
    i1 = await store.claim_next_turn_inputs(stale)
    assert q1 is not None and i1 is not None
    h.clock.advance(999)
    busy(await store.try_claim_lease(S, owner("w2"), TTL_MS))
    h.clock.advance(2)
    fresh = await lease(store, S, "w2")
    assert fresh.fencing_token == stale.fencing_token + 1
    q2 = await store.claim_ready_queued_work(fresh, "idle")
    i2 = await store.claim_next_turn_inputs(fresh)
    assert q2 is not None and i2 is not None
    assert q2.fencing_token > q1.fencing_token and q2.claim_id != q1.claim_id
    assert i2.inputs[0].claim_fencing_token > i1.inputs[0].claim_fencing_token
    assert i2.claim_id != i1.claim_id
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        store.commit(commit(S, stale, queue=[q1], inputs=[i1], turn_id="t-stale")),
    )
    done = await store.commit(commit(S, fresh, queue=[q2], inputs=[i2], turn_id="t-fresh"))
    assert done.head_revision == 1
    assert await store.list_queued_work(S) == []
    row = await store.get_turn_input(S, i2.input_ids[0])
    assert row is not None and row.state == "completed"


@case()
async def checkpoint_claim_probe_is_read_only_on_empty_or_deferred_heads(h: StoreHarness) -> None:
    """Nearest form of the probe transaction counters (backends expose no counters).

    With nothing admissible — an empty queue, or only an after-commit head — a checkpoint
    claim answers ``(None, None)`` without validating the fence (a read-only probe) and
    changes nothing; once admissible work exists the stale fence is rejected.
    """
    store = await h.open()
    stale = await lease(store, S, "w1")
    await store.release_lease(stale)
    assert await store.claim_checkpoint_work(stale, "t1", "after_work") == (None, None)
    deferred = await store.enqueue_queued_work(
        wake_batch(S, "later", delivery="after_current_turn_commit")
    )
    command = await store.enqueue_queued_work(command_batch(S))
    assert await store.claim_checkpoint_work(stale, "t1", "before_completion") == (None, None)
    pending = await store.list_pending_queued_work(S)
    assert [b.batch_id for b in pending] == [deferred.batch_id, command.batch_id]
    assert all(b.claim is None for b in pending)
    await store.enqueue_turn_input(input_draft(S, "steer", turn_id="t1"))
    await expect_error(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        store.claim_checkpoint_work(stale, "t1", "after_work"),
    )


_ATTACH = {"attachments"}
_ATTACH_WHY = "attachment references live in the backend's attachment store"


@case(requires=_ATTACH, reason=_ATTACH_WHY)
async def attachment_manifest_records_intent_and_commit_stamps(h: StoreHarness) -> None:
    """A put records the session's reference; out-of-band and runtime commits stamp it
    without creating references; forgetting removes the orphan."""
    store = await h.open()
    blobs = await h.attachments()
    ref = await blobs.put(S, b"chart", "image/png", owner_turn_id="t1")
    assert await blobs.holds_ref(S, ref.id)
    await blobs.commit_refs(S, [ref.id])
    fence = await lease(store, S)
    stamped = msgspec.structs.replace(
        commit(S, fence, nodes=[message_node("n1")]), committed_attachment_ids=(ref.id,)
    )
    assert (await store.commit(stamped.stamped("t1"))).head_revision == 1
    assert await blobs.get(S, ref.id) == b"chart"
    await blobs.commit_refs(OTHER, [ref.id])
    assert not await blobs.holds_ref(OTHER, ref.id)
    await blobs.forget(S, ref.id)
    assert not await blobs.holds_ref(S, ref.id)
    await blobs.commit_refs(S, [ref.id])  # a forgotten reference is never resurrected
    assert not await blobs.holds_ref(S, ref.id)
    await expect_error(StoreErrorKind.NOT_FOUND, blobs.get(S, ref.id))


@case(requires=_ATTACH, reason=_ATTACH_WHY)
async def attachment_manifest_keeps_same_content_ownership_per_session(h: StoreHarness) -> None:
    """Two sessions holding the same content keep independent references."""
    blobs = await h.attachments()
    a = await blobs.put(S, b"same", "text/plain")
    b = await blobs.put(OTHER, b"same", "text/plain")
    assert a.id == b.id
    await blobs.commit_refs(S, [a.id])
    await blobs.forget(OTHER, b.id)
    assert await blobs.holds_ref(S, a.id) and await blobs.get(S, a.id) == b"same"
    assert not await blobs.holds_ref(OTHER, a.id)
    await blobs.put(OTHER, b"same", "text/plain")  # re-recording never disturbs S's reference
    await blobs.forget(OTHER, a.id)
    assert await blobs.holds_ref(S, a.id)


@case(requires=_ATTACH, reason=_ATTACH_WHY)
async def attachment_manifest_reference_tracking_and_gc_root_set(h: StoreHarness) -> None:
    """Intents and committed references both hold a blob against sweeps; other sessions and
    unknown ids hold nothing; forgetting every reference makes the blob collectable."""
    blobs = await h.attachments()
    intent = await blobs.put(S, b"intent", "text/plain")
    committed = await blobs.put(S, b"committed", "text/plain")
    await blobs.commit_refs(S, [committed.id])
    assert await blobs.holds_ref(S, intent.id) and await blobs.holds_ref(S, committed.id)
    assert not await blobs.holds_ref(OTHER, intent.id)
    assert not await blobs.holds_ref(S, "f" * 64)
    assert (await blobs.sweep_unreferenced(0)).reclaimed_count == 0
    assert len(await blobs.list_blobs()) == 2
    await blobs.forget(S, intent.id)
    assert (await blobs.sweep_unreferenced(0)).reclaimed_count == 1
    assert [b.id for b in await blobs.list_blobs()] == [committed.id]
    await blobs.forget(S, committed.id)
    assert (await blobs.sweep_unreferenced(0)).reclaimed_count == 1
    assert await blobs.list_blobs() == []


@case(requires=_ATTACH, reason=_ATTACH_WHY)
async def attachment_guard_hides_blobs_from_sessions_without_a_reference(h: StoreHarness) -> None:
    """Replaces the no-op-manifest check: every backend here keeps a real manifest, so the
    session guard always applies — a guessed hash reveals nothing."""
    blobs = await h.attachments()
    ref = await blobs.put(S, b"private", "text/plain")
    await expect_error(StoreErrorKind.NOT_FOUND, blobs.get(OTHER, ref.id))
    assert not await blobs.holds_ref(OTHER, ref.id)
    await blobs.forget(OTHER, ref.id)  # forgetting a reference one never held is harmless
    assert await blobs.get(S, ref.id) == b"private"
