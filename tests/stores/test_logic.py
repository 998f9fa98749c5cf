"""Properties of the backend-independent store rules in ``lash.stores._logic``."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lash.errors import StoreError, StoreErrorKind
from lash.stores import _logic as logic
from lash.types import (
    CancelTarget,
    ClaimInfo,
    GraphAppend,
    GraphReplaceFull,
    GraphUnchanged,
    LeaseAcquired,
    LeaseBusy,
    LeaseFence,
    LeaseOwner,
    MergeKey,
    MessagePayload,
    PendingTurnInput,
    PendingTurnInputDraft,
    ProcessWake,
    QueuedWorkBatch,
    QueuedWorkBatchDraft,
    QueuedWorkItem,
    SessionCommand,
    SessionLease,
    SessionNode,
    TextPart,
    TurnInput,
    TurnInputIngress,
)
from lash.types.messages import Message

S = "s"
NOW = 1_000_000

MERGE_KEYS = [
    MergeKey(),
    MergeKey(),
    MergeKey(kind="never"),
    MergeKey(kind="group", group="a"),
    MergeKey(kind="group", group="b"),
]


def _owner(name: str) -> LeaseOwner:
    return LeaseOwner(owner_id=name, incarnation_id=f"{name}:1")


def _fence(generation: int, name: str = "w") -> LeaseFence:
    return LeaseFence(
        session_id=S, owner=_owner(name), lease_token=f"tok-{generation}", fencing_token=generation
    )


def _claim(generation: int) -> ClaimInfo:
    return ClaimInfo(
        claim_id=f"qwc:0:{generation}",
        lease_token="t",
        owner_id="w",
        session_lease_generation=generation,
    )


@st.composite
def batches(draw: st.DrawFn) -> list[QueuedWorkBatch]:
    """A session's queue: mixed classes, policies, keys, availability and claims."""
    n = draw(st.integers(min_value=0, max_value=12))
    out = []
    for seq in range(1, n + 1):
        command = draw(st.integers(0, 5)) == 0
        payload: Any = (
            SessionCommand(command="refresh_tool_catalog")
            if command
            else ProcessWake(wake={"n": seq})
        )
        claimed = draw(st.sampled_from([None, None, None, 1, 2]))
        out.append(
            QueuedWorkBatch(
                batch_id=f"b{seq}",
                session_id=S,
                enqueue_seq=seq,
                items=(QueuedWorkItem(item_id=f"b{seq}:item:0", payload=payload),),
                delivery_policy=draw(
                    st.sampled_from(["earliest_safe_boundary"] * 3 + ["after_current_turn_commit"])
                ),
                slot_policy=draw(st.sampled_from(["join", "join", "join", "exclusive"])),
                merge_key=draw(st.sampled_from(MERGE_KEYS)),
                available_at_ms=draw(st.sampled_from([0, 0, NOW, NOW + 1])),
                enqueued_at_ms=0,
                claim=_claim(claimed) if claimed is not None else None,
                claim_fencing_token=draw(st.integers(min_value=0, max_value=3)),
            )
        )
    draw(st.randoms()).shuffle(out)  # callers must not rely on input order
    return out


boundaries = st.sampled_from(["idle", "active_turn_checkpoint"])


@given(batches(), st.integers(min_value=1, max_value=3))
def test_candidates_are_ready_claimable_and_ordered(rows: list[QueuedWorkBatch], gen: int) -> None:
    candidates = logic.ready_queued_candidates(rows, gen, NOW)
    assert [b.enqueue_seq for b in candidates] == sorted(b.enqueue_seq for b in candidates)
    for b in rows:
        expected = b.available_at_ms <= NOW and (
            b.claim is None or b.claim.session_lease_generation != gen
        )
        assert (b in candidates) == expected


@settings(max_examples=400)
@given(batches(), boundaries, st.integers(min_value=-1, max_value=6), st.integers(1, 3))
def test_turn_work_claim_is_a_valid_prefix(
    rows: list[QueuedWorkBatch], boundary: Any, max_batches: int, gen: int
) -> None:
    candidates = logic.ready_queued_candidates(rows, gen, NOW)
    picked = logic.select_turn_work_prefix(candidates, boundary, max_batches)
    # a prefix: never skips an earlier ready batch, session commands included
    assert picked == candidates[: len(picked)]
    assert len(picked) <= max(max_batches, 0)
    if not picked:
        return
    head = picked[0]
    assert all(b.work_class == "turn_work" for b in picked)
    if boundary == "active_turn_checkpoint":
        assert head.delivery_policy == "earliest_safe_boundary"
    if head.slot_policy == "exclusive" or head.merge_key.kind == "never":
        assert len(picked) == 1
    for b in picked[1:]:
        assert b.slot_policy == "join"
        assert b.delivery_policy == head.delivery_policy
        assert b.merge_key == head.merge_key
    # maximal: the group stops only at the limit or at a batch that cannot join
    rest = candidates[len(picked) :]
    if head.slot_policy == "join" and len(picked) < max_batches and rest:
        nxt = rest[0]
        assert not (
            nxt.slot_policy == "join"
            and nxt.work_class == "turn_work"
            and nxt.delivery_policy == head.delivery_policy
            and nxt.merge_key == head.merge_key
            and head.merge_key.kind != "never"
        )


@given(batches(), boundaries, st.integers(1, 3))
def test_turn_work_never_skips_a_leading_session_command(
    rows: list[QueuedWorkBatch], boundary: Any, gen: int
) -> None:
    candidates = logic.ready_queued_candidates(rows, gen, NOW)
    command = logic.select_leading_session_command(candidates)
    if candidates and candidates[0].work_class == "session_command":
        assert command == candidates[0]
        assert logic.select_turn_work_prefix(candidates, boundary, 64) == []
    else:
        assert command is None


@given(batches(), boundaries, st.integers(1, 3))
def test_same_generation_reclaim_returns_nothing_already_claimed(
    rows: list[QueuedWorkBatch], boundary: Any, gen: int
) -> None:
    fence = _fence(gen)
    store = {b.batch_id: b for b in rows}
    seen: set[str] = set()
    for _ in range(len(rows) + 1):
        candidates = logic.ready_queued_candidates(store.values(), gen, NOW)
        picked = logic.select_turn_work_prefix(candidates, boundary, 4)
        if not picked:
            head = logic.select_leading_session_command(candidates)
            picked = [head] if head is not None else []
        if not picked:
            break
        claim = logic.build_queued_work_claim(picked, fence, NOW)
        ids = set(claim.batch_ids)
        assert not ids & seen, "a generation re-claimed its own rows"
        seen |= ids
        for b in claim.batches:
            store[b.batch_id] = b
    # nothing claimed under this generation is a candidate any more
    assert not {b.batch_id for b in logic.ready_queued_candidates(store.values(), gen, NOW)} & seen


@given(batches(), st.integers(1, 3))
def test_claim_identity_derivation(rows: list[QueuedWorkBatch], gen: int) -> None:
    candidates = logic.ready_queued_candidates(rows, gen, NOW)
    picked = logic.select_turn_work_prefix(candidates, "idle", 64)
    if not picked:
        return
    claim = logic.build_queued_work_claim(picked, _fence(gen), NOW)
    head = picked[0]
    assert claim.fencing_token == head.claim_fencing_token + 1
    assert claim.claim_id == f"qwc:{head.enqueue_seq}:{claim.fencing_token}"
    assert claim.session_lease_generation == gen
    for before, after in zip(picked, claim.batches, strict=True):
        assert after.claim_fencing_token == before.claim_fencing_token + 1
        assert after.claim is not None and after.claim.lease_token == claim.lease_token
        assert after.claim.session_lease_generation == gen
    again = logic.build_queued_work_claim(picked, _fence(gen), NOW)
    assert again.lease_token == claim.lease_token  # deterministic


@given(batches(), boundaries, st.data())
def test_exact_claims_are_valid_prefixes_of_their_own_selection(
    rows: list[QueuedWorkBatch], boundary: Any, data: st.DataObject
) -> None:
    candidates = logic.ready_queued_candidates(rows, 3, NOW)
    ids = data.draw(st.lists(st.sampled_from([b.batch_id for b in rows] + ["x"]), max_size=4))
    picked = logic.select_exact_batches(candidates, boundary, ids)
    if picked is None:
        return
    assert {b.batch_id for b in picked} == set(ids) and len(picked) == len(ids)
    assert all(b in candidates for b in picked)
    assert logic.select_turn_work_prefix(picked, boundary, len(picked)) == picked


def _batch(seq: int, slot: Any, merge: MergeKey | None = None) -> QueuedWorkBatch:
    return QueuedWorkBatch(
        batch_id=f"b{seq}",
        session_id=S,
        enqueue_seq=seq,
        items=(QueuedWorkItem(item_id=f"b{seq}:item:0", payload=ProcessWake(wake={})),),
        delivery_policy="earliest_safe_boundary",
        slot_policy=slot,
        merge_key=merge or MergeKey(),
        available_at_ms=0,
        enqueued_at_ms=0,
    )


def test_exclusive_heads_go_alone_and_never_keys_never_merge() -> None:
    exclusive_first = [_batch(1, "exclusive"), _batch(2, "join"), _batch(3, "join")]
    assert logic.select_turn_work_prefix(exclusive_first, "idle", 8) == exclusive_first[:1]
    assert logic.select_turn_work_prefix(exclusive_first[1:], "idle", 8) == exclusive_first[1:]
    never = MergeKey(kind="never")
    nevers = [_batch(1, "join", never), _batch(2, "join", never)]
    assert logic.select_turn_work_prefix(nevers, "idle", 8) == nevers[:1]


def test_exclusive_pairs_and_duplicates_are_not_exact_claims() -> None:
    rows = [
        QueuedWorkBatch(
            batch_id=f"b{i}",
            session_id=S,
            enqueue_seq=i,
            items=(QueuedWorkItem(item_id="x", payload=ProcessWake(wake={})),),
            delivery_policy="earliest_safe_boundary",
            slot_policy="exclusive",
            merge_key=MergeKey(),
            available_at_ms=0,
            enqueued_at_ms=0,
        )
        for i in (1, 2)
    ]
    assert logic.select_exact_batches(rows, "idle", ["b1", "b2"]) is None
    assert logic.select_exact_batches(rows, "idle", ["b2", "b2"]) is None
    assert logic.select_exact_batches(rows, "idle", []) is None
    assert logic.select_exact_batches(rows, "idle", ["b2"]) == [rows[1]]


def test_mixed_batches_are_rejected_at_enqueue_and_at_claim() -> None:
    mixed = (ProcessWake(wake={}), SessionCommand(command="reset_session"))
    with pytest.raises(StoreError) as err:
        logic.validate_queued_work_draft(QueuedWorkBatchDraft(session_id=S, payloads=mixed))
    assert err.value.kind is StoreErrorKind.INVALID_ARGUMENT
    batch = QueuedWorkBatch(
        batch_id="b",
        session_id=S,
        enqueue_seq=1,
        items=tuple(QueuedWorkItem(item_id=str(i), payload=p) for i, p in enumerate(mixed)),
        delivery_policy="earliest_safe_boundary",
        slot_policy="join",
        merge_key=MergeKey(),
        available_at_ms=0,
        enqueued_at_ms=0,
    )
    with pytest.raises(StoreError) as err:
        logic.select_turn_work_prefix([batch], "idle", 4)
    assert err.value.kind is StoreErrorKind.BACKEND


# --- turn input ------------------------------------------------------------------------


def _input(
    seq: int,
    state: Any,
    ingress: TurnInputIngress,
    claim: ClaimInfo | None = None,
) -> PendingTurnInput:
    return PendingTurnInput(
        input_id=f"i{seq}",
        session_id=S,
        enqueue_seq=seq,
        ingress=ingress,
        state=state,
        enqueued_at_ms=0,
        input=TurnInput.text(str(seq)),
        claim=claim,
    )


ingresses = st.sampled_from(
    [
        TurnInputIngress.next_turn(),
        TurnInputIngress.active_turn("t1"),
        TurnInputIngress.active_turn("t1", "before_completion"),
        TurnInputIngress.active_turn("t2"),
    ]
)
states = st.sampled_from(
    ["pending_active", "deferred_next_turn", "accepted", "cancelled", "completed"]
)


@st.composite
def input_rows(draw: st.DrawFn) -> list[PendingTurnInput]:
    n = draw(st.integers(0, 10))
    return [
        _input(
            seq,
            draw(states),
            draw(ingresses),
            (lambda g: _claim(g) if g else None)(draw(st.sampled_from([0, 1, 2]))),
        )
        for seq in range(1, n + 1)
    ]


@given(input_rows(), st.sampled_from(["after_work", "before_completion"]), st.integers(-1, 5))
def test_turn_input_claims_respect_state_ingress_generation_and_max(
    rows: list[PendingTurnInput], checkpoint: Any, max_inputs: int
) -> None:
    gen = 2
    nxt = logic.select_turn_inputs(logic.next_turn_input_candidates(rows, gen), max_inputs)
    active = logic.select_turn_inputs(
        logic.active_turn_input_candidates(rows, gen, "t1", checkpoint), max_inputs
    )
    for picked in (nxt, active):
        assert len(picked) <= max(max_inputs, 0)
        assert [r.enqueue_seq for r in picked] == sorted(r.enqueue_seq for r in picked)
        assert all(r.claim is None or r.claim.session_lease_generation != gen for r in picked)
    assert all(r.state == "deferred_next_turn" for r in nxt)
    for r in active:
        assert r.state in ("pending_active", "accepted")
        assert r.ingress.turn_id == "t1" and r.ingress.admits(checkpoint)
    if active:
        claim = logic.build_turn_input_claim(active, _fence(gen), NOW, active=True)
        assert all(r.state == "accepted" for r in claim.inputs)
        assert claim.claim_id == f"tic:{active[0].enqueue_seq}:{active[0].claim_fencing_token + 1}"
    if nxt:
        claim = logic.build_turn_input_claim(nxt, _fence(gen), NOW, active=False)
        assert all(r.state == "deferred_next_turn" for r in claim.inputs)
        again = logic.next_turn_input_candidates(claim.inputs, gen)
        assert again == []  # same generation sees nothing


def _lease(gen: int, expires: int = NOW + 10) -> SessionLease:
    return SessionLease(
        session_id=S,
        owner=_owner("w"),
        lease_token=f"tok-{gen}",
        fencing_token=gen,
        claimed_at_ms=NOW,
        expires_at_ms=expires,
    )


@pytest.mark.parametrize(
    ("state", "claim_gen", "lease", "expected"),
    [
        ("cancelled", None, None, "already_cancelled"),
        ("completed", None, None, "already_completed"),
        ("accepted", 1, None, "already_claimed"),
        ("accepted", 1, _lease(2), "already_claimed"),
        ("pending_active", 1, _lease(1), "already_claimed"),
        ("deferred_next_turn", 1, _lease(1), "already_claimed"),
        ("deferred_next_turn", 1, _lease(2), "cancelled"),
        ("deferred_next_turn", 1, _lease(1, expires=NOW), "cancelled"),
        ("deferred_next_turn", 1, None, "cancelled"),
        ("pending_active", None, _lease(1), "cancelled"),
    ],
)
def test_cancel_outcome_table(
    state: Any, claim_gen: int | None, lease: SessionLease | None, expected: str
) -> None:
    claim = _claim(claim_gen) if claim_gen is not None else None
    row = _input(1, state, TurnInputIngress.next_turn(), claim)
    target = CancelTarget(input_id="i1")
    outcome, changed = logic.cancel_turn_input(row, target, lease, NOW)
    assert outcome.status == expected and outcome.target == target
    if expected == "cancelled":
        assert changed is not None and changed.state == "cancelled" and changed.claim is None
    else:
        assert changed is None
    missing, none = logic.cancel_turn_input(None, target, lease, NOW)
    assert missing.status == "not_found" and none is None


def test_source_key_replay_compares_ingress_and_input() -> None:
    draft = PendingTurnInputDraft(session_id=S, input=TurnInput.text("a"), source_key="k")
    row = logic.build_turn_input(draft, "i1", 1, NOW)
    assert row.state == "deferred_next_turn"
    assert logic.source_key_replay(row, draft) is row
    for changed in (
        msgspec.structs.replace(draft, input=TurnInput.text("b")),
        msgspec.structs.replace(draft, ingress=TurnInputIngress.active_turn("t")),
    ):
        with pytest.raises(StoreError) as err:
            logic.source_key_replay(row, changed)
        assert err.value.kind is StoreErrorKind.PENDING_TURN_INPUT_SOURCE_KEY_CONFLICT
        assert err.value.details["existing_input_id"] == "i1"


@pytest.mark.parametrize(
    "draft",
    [
        PendingTurnInputDraft(session_id="", input=TurnInput.text("a")),
        PendingTurnInputDraft(session_id=S, input=TurnInput.text("a"), source_key=""),
        PendingTurnInputDraft(
            session_id=S, input=TurnInput.text("a"), ingress=TurnInputIngress(kind="active_turn")
        ),
    ],
)
def test_bad_turn_input_drafts_are_invalid_arguments(draft: PendingTurnInputDraft) -> None:
    with pytest.raises(StoreError) as err:
        logic.validate_turn_input_draft(draft)
    assert err.value.kind is StoreErrorKind.INVALID_ARGUMENT


# --- leases ----------------------------------------------------------------------------

lease_ops = st.lists(
    st.tuples(
        st.sampled_from(["claim", "advance", "release", "release_stale", "renew", "reclaim"]),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from([0, 5, 50]),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(lease_ops)
def test_lease_decisions_keep_fencing_monotonic_and_one_holder(ops: list[Any]) -> None:
    now = NOW
    row: SessionLease | None = None
    fences: list[LeaseFence] = []
    top = 0
    for op, who, amount in ops:
        owner = _owner(who)
        if op == "advance":
            now += amount
        elif op in ("claim", "reclaim"):
            before = row
            if op == "claim":
                result = logic.decide_try_claim(row, S, owner, amount, now)
            else:
                observed = fences[-1] if fences else _fence(0)
                result = logic.decide_reclaim(
                    row, S, owner, observed, amount, now, holder_is_dead=lambda h, c: True
                )
            if isinstance(result, LeaseBusy):
                assert before is not None and logic.lease_is_live(before, now)
                assert result.holder == before
                continue
            assert isinstance(result, LeaseAcquired)
            new = result.lease
            if (
                op == "claim"
                and before is not None
                and logic.lease_is_live(before, now)
                and before.owner.same_incarnation(owner)
            ):
                assert new.fencing_token == before.fencing_token
                assert new.lease_token == before.lease_token
            else:
                assert new.fencing_token == (before.fencing_token if before else 0) + 1
                assert new.lease_token == f"{S}:{who}:{who}:1:{now}:{new.fencing_token}"
            assert new.expires_at_ms == now + amount
            assert new.fencing_token >= top
            top = new.fencing_token
            row = new
            fences.append(new.fence())
        elif op == "renew" and fences:
            try:
                renewed = logic.decide_renew(row, fences[-1], amount, now)
            except StoreError as exc:
                assert exc.kind is StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED
                assert (
                    row is None or not row.matches(fences[-1]) or not logic.lease_is_live(row, now)
                )
            else:
                assert row is not None and renewed.fencing_token == row.fencing_token
                row = renewed
        elif op in ("release", "release_stale") and fences:
            fence = fences[-1] if op == "release" else fences[0]
            released = logic.decide_release(row, fence)
            if released is not None:
                assert row is not None and row.matches(fence)
                assert released.fencing_token == row.fencing_token
                assert not logic.lease_is_live(released, now)
                row = released


def test_ttl_zero_is_expired_and_negative_ttl_is_invalid() -> None:
    result = logic.decide_try_claim(None, S, _owner("a"), 0, NOW)
    assert isinstance(result, LeaseAcquired) and not logic.lease_is_live(result.lease, NOW)
    with pytest.raises(StoreError) as err:
        logic.decide_try_claim(None, S, _owner("a"), -1, NOW)
    assert err.value.kind is StoreErrorKind.INVALID_ARGUMENT


def test_reclaim_needs_the_observed_fence_and_a_dead_holder() -> None:
    current = _lease(3)
    observed = current.fence()
    claimant = _owner("c")
    busy = logic.decide_reclaim(current, S, claimant, observed, 10, NOW, lambda h, c: False)
    assert isinstance(busy, LeaseBusy)
    stale = msgspec.structs.replace(observed, fencing_token=2)
    busy = logic.decide_reclaim(current, S, claimant, stale, 10, NOW, lambda h, c: True)
    assert isinstance(busy, LeaseBusy)
    taken = logic.decide_reclaim(current, S, claimant, observed, 10, NOW, lambda h, c: True)
    assert isinstance(taken, LeaseAcquired) and taken.lease.fencing_token == 4


def test_claim_liveness_for_lease_less_readers() -> None:
    claim = _claim(2)
    assert logic.claim_is_live(claim, _lease(2), NOW)
    assert not logic.claim_is_live(claim, _lease(3), NOW)
    assert not logic.claim_is_live(claim, _lease(2, expires=NOW), NOW)
    assert not logic.claim_is_live(claim, logic.released_lease(_lease(2)), NOW)
    assert not logic.claim_is_live(None, _lease(2), NOW)
    assert not logic.claim_is_live(claim, None, NOW)


# --- graph -----------------------------------------------------------------------------


def _node(node_id: str, parent: str | None = None) -> SessionNode:
    msg = Message(id=node_id, role="user", parts=(TextPart(text=node_id),))
    return SessionNode(node_id=node_id, payload=MessagePayload(message=msg), parent_node_id=parent)


def test_graph_delta_rules() -> None:
    existing = ["a", "b"]
    nodes, replace_all, leaf = logic.resolve_graph_delta(
        GraphAppend(nodes=(_node("c", "b"),)), existing, "b"
    )
    assert [n.node_id for n in nodes] == ["c"] and not replace_all and leaf == "c"
    assert logic.resolve_graph_delta(GraphUnchanged(), existing, "b") == ([], False, "b")
    assert logic.resolve_graph_delta(GraphUnchanged(leaf_node_id="a"), existing, "b")[2] == "a"
    _, replace_all, leaf = logic.resolve_graph_delta(
        GraphReplaceFull(nodes=(_node("a"),)), existing, "b"
    )
    assert replace_all and leaf == "a"
    for bad in (
        GraphAppend(nodes=(_node("a"),)),
        GraphAppend(nodes=(_node("c"), _node("c"))),
        GraphAppend(nodes=(_node("c", "missing"),)),
        GraphAppend(nodes=(_node("c"),), leaf_node_id="zzz"),
        GraphUnchanged(leaf_node_id="zzz"),
    ):
        with pytest.raises(StoreError) as err:
            logic.resolve_graph_delta(bad, existing, "b")
        assert err.value.kind is StoreErrorKind.INVALID_ARGUMENT


def test_ancestry_follows_parents_and_stops_at_hidden_nodes() -> None:
    nodes = {n.node_id: n for n in (_node("r"), _node("a", "r"), _node("b", "a"), _node("x", "r"))}
    assert [n.node_id for n in logic.ancestry(nodes, "b")] == ["r", "a", "b"]
    assert [n.node_id for n in logic.ancestry(nodes, "x")] == ["r", "x"]
    assert logic.ancestry(nodes, None) == []
    del nodes["a"]
    assert [n.node_id for n in logic.ancestry(nodes, "b")] == ["b"]


def test_completion_must_own_every_row() -> None:
    claim = ClaimInfo(claim_id="c", lease_token="t", owner_id="w", session_lease_generation=1)
    other = msgspec.structs.replace(claim, lease_token="u")
    rows = {"a": claim, "b": claim, "c": other, "d": None}
    assert logic.completion_owns_rows("c", "t", ["a", "b"], rows)
    for ids in (["a", "c"], ["a", "d"], ["a", "missing"], ["a", "a"], []):
        assert not logic.completion_owns_rows("c", "t", ids, rows)


def test_ids_have_their_prefixes() -> None:
    assert logic.derive_turn_input_id(S, None, NOW, 1).startswith("ti:")
    assert logic.derive_batch_id(S, "k", NOW, 1).startswith("qwb:")
    assert logic.derive_batch_id(S, "k", NOW, 1) != logic.derive_batch_id(S, "k", NOW, 2)
    assert logic.queued_claim_id(7, 3) == "qwc:7:3"
    assert logic.turn_input_claim_id(7, 3) == "tic:7:3"
    assert logic.claim_scan_limit(64) == 96
