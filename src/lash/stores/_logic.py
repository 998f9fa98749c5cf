"""The backend-independent rules of the session store, as plain functions over records.

Every backend (memory, SQLite, Postgres) selects candidate rows its own way and then asks
these functions what to do: which rows a claim takes, what the new lease row is, whether a
cancel succeeds, whether a commit is an idempotent replay. Keeping the decisions here means
the contract has one implementation, and the conformance kit checks every backend against it.

Nothing here does I/O, reads a clock or mutates its arguments: callers pass ``now_ms`` and
write back the records returned.

Representation conventions shared by the backends:

* A *released* lease row keeps its owner and fencing token but has an empty ``lease_token``
  and ``expires_at_ms == 0`` (see :func:`released_lease`).
* A claimed ingress row carries :class:`~lash.types.ClaimInfo`; an unclaimed row has
  ``claim is None``. ``claim_fencing_token`` counts every (re)claim of the row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Literal

import msgspec

from lash.errors import StoreError, StoreErrorKind
from lash.stores.base import CLAIM_SCAN_SURPLUS
from lash.stores.liveness import is_definitely_dead
from lash.types import (
    CancelOutcome,
    CancelTarget,
    CheckpointKind,
    ClaimBoundary,
    ClaimInfo,
    GraphDelta,
    GraphReplaceFull,
    GraphUnchanged,
    LeaseAcquired,
    LeaseBusy,
    LeaseClaim,
    LeaseFence,
    LeaseOwner,
    PendingTurnInput,
    PendingTurnInputDraft,
    QueuedWorkBatch,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    QueuedWorkItem,
    RuntimeCommit,
    SessionCommand,
    SessionLease,
    SessionNode,
    TokenLedgerEntry,
    TurnInputClaim,
    TurnInputIngress,
    TurnInputState,
    canonical_json,
    merge_ledger,
)

__all__ = [
    "RELEASED_LEASE_TOKEN",
    "acquire_lease",
    "active_turn_input_candidates",
    "ancestry",
    "batch_work_class",
    "build_queued_batch",
    "build_queued_work_claim",
    "build_turn_input",
    "build_turn_input_claim",
    "cancel_turn_input",
    "check_commit_binding",
    "check_head_revision",
    "claim_is_live",
    "claim_lease_token",
    "claim_scan_limit",
    "completed_turn_input",
    "completion_owns_rows",
    "decide_reclaim",
    "decide_release",
    "decide_renew",
    "decide_try_claim",
    "deferred_turn_input",
    "derive_batch_id",
    "derive_turn_input_id",
    "find_turn_input",
    "initial_turn_input_state",
    "lease_is_live",
    "live_generation",
    "merged_token_ledger",
    "next_turn_input_candidates",
    "queued_claim_id",
    "ready_queued_candidates",
    "released_lease",
    "require_live_fence",
    "resolve_graph_delta",
    "row_claimable",
    "same_turn_input_content",
    "select_exact_batches",
    "select_leading_session_command",
    "select_turn_inputs",
    "select_turn_work_prefix",
    "session_lease_token",
    "source_key_replay",
    "turn_input_claim_id",
    "turn_input_claimable_for_checkpoint",
    "turn_replay_decision",
    "unclaimed_turn_input",
    "validate_queued_work_draft",
    "validate_turn_input_draft",
]

RELEASED_LEASE_TOKEN = ""
"""The token of a released lease row (the row and its fencing token stay)."""

WorkClass = Literal["turn_work", "session_command"]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- session execution lease -----------------------------------------------------------


def lease_is_live(lease: SessionLease | None, now_ms: int) -> bool:
    """A lease row is live iff it holds a token and has not expired at ``now_ms``."""
    return lease is not None and lease.lease_token != RELEASED_LEASE_TOKEN and lease.is_live(now_ms)


def live_generation(lease: SessionLease | None, now_ms: int) -> int | None:
    """The fencing token of the live lease, or ``None`` when nobody holds the session."""
    if lease is not None and lease_is_live(lease, now_ms):
        return lease.fencing_token
    return None


def session_lease_token(session_id: str, owner: LeaseOwner, now_ms: int, fencing: int) -> str:
    """The token of a freshly acquired session lease."""
    return f"{session_id}:{owner.owner_id}:{owner.incarnation_id}:{now_ms}:{fencing}"


def acquire_lease(
    previous: SessionLease | None, session_id: str, owner: LeaseOwner, ttl_ms: int, now_ms: int
) -> SessionLease:
    """A fresh lease row: fencing is the previous row's plus one (1 for a new session).

    ``ttl_ms == 0`` yields a lease that is already expired at ``now_ms``.
    """
    fencing = (previous.fencing_token if previous is not None else 0) + 1
    return SessionLease(
        session_id=session_id,
        owner=owner,
        lease_token=session_lease_token(session_id, owner, now_ms, fencing),
        fencing_token=fencing,
        claimed_at_ms=now_ms,
        expires_at_ms=now_ms + ttl_ms,
    )


def _check_ttl(ttl_ms: int) -> None:
    if ttl_ms < 0:
        raise StoreError(StoreErrorKind.INVALID_ARGUMENT, f"lease ttl must be >= 0, got {ttl_ms}")


def decide_try_claim(
    current: SessionLease | None, session_id: str, owner: LeaseOwner, ttl_ms: int, now_ms: int
) -> LeaseClaim:
    """Acquire, re-enter or report busy.

    A live lease of the same incarnation is extended and keeps its token and fencing; a live
    lease of anyone else is ``busy``; a free, released or expired row is acquired afresh.
    The caller writes ``result.lease`` back when the result is :class:`LeaseAcquired`.
    """
    _check_ttl(ttl_ms)
    if current is not None and lease_is_live(current, now_ms):
        if current.owner.same_incarnation(owner):
            return LeaseAcquired(lease=current.renewed(now_ms, ttl_ms))
        return LeaseBusy(holder=current)
    return LeaseAcquired(lease=acquire_lease(current, session_id, owner, ttl_ms, now_ms))


def decide_reclaim(
    current: SessionLease | None,
    session_id: str,
    owner: LeaseOwner,
    observed: LeaseFence,
    ttl_ms: int,
    now_ms: int,
    holder_is_dead: Callable[[LeaseOwner, LeaseOwner], bool] = is_definitely_dead,
) -> LeaseClaim:
    """Take over from a holder proven dead.

    A row that is not live is simply acquired. A live row is replaced (fencing + 1) only if
    it is still exactly ``observed`` *and* its holder is provably dead for ``owner``; a stale
    observation therefore never clears a newer lease.
    """
    _check_ttl(ttl_ms)
    if current is None or not lease_is_live(current, now_ms):
        return LeaseAcquired(lease=acquire_lease(current, session_id, owner, ttl_ms, now_ms))
    if current.matches(observed) and holder_is_dead(current.owner, owner):
        return LeaseAcquired(lease=acquire_lease(current, session_id, owner, ttl_ms, now_ms))
    return LeaseBusy(holder=current)


def _lease_expired(fence: LeaseFence, why: str) -> StoreError:
    return StoreError(
        StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
        f"session {fence.session_id!r}: {why}",
        session_id=fence.session_id,
    )


def require_live_fence(
    current: SessionLease | None, fence: LeaseFence | None, now_ms: int, session_id: str
) -> SessionLease:
    """The current lease if ``fence`` names it and it is live; otherwise lease-expired."""
    if fence is None:
        raise StoreError(
            StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
            f"session {session_id!r}: a session execution lease fence is required",
            session_id=session_id,
        )
    if fence.session_id != session_id:
        raise _lease_expired(fence, f"fence is for another session than {session_id!r}")
    if current is None or not current.matches(fence):
        raise _lease_expired(fence, "fence does not match the current lease")
    if not lease_is_live(current, now_ms):
        raise _lease_expired(fence, "lease has expired or was released")
    return current


def decide_renew(
    current: SessionLease | None, fence: LeaseFence, ttl_ms: int, now_ms: int
) -> SessionLease:
    """The renewed row (same token and fencing, expiry ``now + ttl``) or lease-expired."""
    _check_ttl(ttl_ms)
    lease = require_live_fence(current, fence, now_ms, fence.session_id)
    return lease.renewed(now_ms, ttl_ms)


def released_lease(lease: SessionLease) -> SessionLease:
    """The row after release: owner kept for diagnostics, token and times cleared."""
    return msgspec.structs.replace(
        lease, lease_token=RELEASED_LEASE_TOKEN, claimed_at_ms=0, expires_at_ms=0
    )


def decide_release(current: SessionLease | None, fence: LeaseFence) -> SessionLease | None:
    """The released row if ``fence`` still names the lease, else ``None`` (a silent no-op)."""
    if current is None or current.lease_token == RELEASED_LEASE_TOKEN:
        return None
    if not current.matches(fence):
        return None
    return released_lease(current)


# --- claim generations -----------------------------------------------------------------


def row_claimable(claim: ClaimInfo | None, generation: int) -> bool:
    """Claim-path rule: unclaimed, or claimed under another lease generation.

    A live owner therefore never re-claims its own rows, and any other generation's rows are
    free to take.
    """
    return claim is None or claim.session_lease_generation != generation


def claim_is_live(claim: ClaimInfo | None, lease: SessionLease | None, now_ms: int) -> bool:
    """Lease-less rule (list, cancel): live iff the lease row is live and of the claim's
    generation."""
    if claim is None:
        return False
    return live_generation(lease, now_ms) == claim.session_lease_generation


def claim_lease_token(session_id: str, owner: LeaseOwner, claim_id: str, now_ms: int) -> str:
    """The opaque proof-of-ownership stamped on every row of a claim."""
    return _sha256(f"{session_id}:{owner.owner_id}:{owner.incarnation_id}:{claim_id}:{now_ms}")


def _claim_info(fence: LeaseFence, claim_id: str, now_ms: int) -> ClaimInfo:
    return ClaimInfo(
        claim_id=claim_id,
        lease_token=claim_lease_token(fence.session_id, fence.owner, claim_id, now_ms),
        owner_id=fence.owner.owner_id,
        session_lease_generation=fence.fencing_token,
    )


def claim_scan_limit(max_batches: int) -> int:
    """How many candidate rows a bounded SQL scan should read for ``max_batches``."""
    return max(max_batches, 0) + CLAIM_SCAN_SURPLUS


# --- ids -------------------------------------------------------------------------------


def derive_turn_input_id(
    session_id: str, source_key: str | None, now_ms: int, nonce: str | int
) -> str:
    """``ti:`` + SHA-256 of session, source key, time and a backend nonce."""
    return "ti:" + _sha256(f"{session_id}:{source_key!r}:{now_ms}:{nonce}")


def derive_batch_id(session_id: str, source_key: str | None, now_ms: int, nonce: str | int) -> str:
    """``qwb:`` + SHA-256 of session, source key, time and a backend nonce."""
    return "qwb:" + _sha256(f"{session_id}:{source_key!r}:{now_ms}:{nonce}")


def queued_claim_id(head_seq: int, fencing: int) -> str:
    """``qwc:{head_seq}:{fencing}``."""
    return f"qwc:{head_seq}:{fencing}"


def turn_input_claim_id(head_seq: int, fencing: int) -> str:
    """``tic:{head_seq}:{fencing}``."""
    return f"tic:{head_seq}:{fencing}"


# --- pending turn input ----------------------------------------------------------------


def _invalid(message: str) -> StoreError:
    return StoreError(StoreErrorKind.INVALID_ARGUMENT, message)


def validate_turn_input_draft(draft: PendingTurnInputDraft) -> None:
    """Reject drafts no backend should store (empty ids, active ingress without a turn)."""
    if not draft.session_id:
        raise _invalid("pending turn input needs a non-empty session_id")
    if draft.input_id is not None and not draft.input_id:
        raise _invalid("pending turn input id must be non-empty when given")
    if draft.source_key is not None and not draft.source_key:
        raise _invalid("pending turn input source_key must be non-empty when given")
    ingress = draft.ingress
    if ingress.kind == "active_turn" and not ingress.turn_id:
        raise _invalid("active_turn ingress needs a non-empty turn_id")
    if ingress.kind == "next_turn" and ingress.turn_id is not None:
        raise _invalid("next_turn ingress must not name a turn_id")


def initial_turn_input_state(ingress: TurnInputIngress) -> TurnInputState:
    """Active-turn input waits as ``pending_active``; next-turn input as
    ``deferred_next_turn``."""
    return "pending_active" if ingress.kind == "active_turn" else "deferred_next_turn"


def build_turn_input(
    draft: PendingTurnInputDraft, input_id: str, enqueue_seq: int, now_ms: int
) -> PendingTurnInput:
    """The stored row for an admitted draft."""
    return PendingTurnInput(
        input_id=input_id,
        session_id=draft.session_id,
        enqueue_seq=enqueue_seq,
        ingress=draft.ingress,
        state=initial_turn_input_state(draft.ingress),
        enqueued_at_ms=now_ms,
        input=draft.input,
        source_key=draft.source_key,
    )


def same_turn_input_content(existing: PendingTurnInput, draft: PendingTurnInputDraft) -> bool:
    """Equal source key, ingress and input JSON: the draft resubmits ``existing``."""
    return (
        existing.source_key == draft.source_key
        and canonical_json(existing.ingress) == canonical_json(draft.ingress)
        and canonical_json(existing.input) == canonical_json(draft.input)
    )


def source_key_replay(existing: PendingTurnInput, draft: PendingTurnInputDraft) -> PendingTurnInput:
    """A source-key replay returns ``existing`` (in any state) if ingress and input are equal.

    Changed content under the same key is a ``pending_turn_input_source_key_conflict``.
    """
    if not same_turn_input_content(existing, draft):
        raise StoreError(
            StoreErrorKind.PENDING_TURN_INPUT_SOURCE_KEY_CONFLICT,
            f"source key {draft.source_key!r} of session {draft.session_id!r} was used for "
            f"different input {existing.input_id!r}",
            existing_input_id=existing.input_id,
        )
    return existing


def find_turn_input(
    rows: Iterable[PendingTurnInput], target: CancelTarget
) -> PendingTurnInput | None:
    """The row a cancel target names (by id, by source key, or both must match)."""
    if target.input_id is None and target.source_key is None:
        raise _invalid("a cancel target needs an input_id or a source_key")
    for row in rows:
        if target.input_id is not None and row.input_id != target.input_id:
            continue
        if target.source_key is not None and row.source_key != target.source_key:
            continue
        return row
    return None


def cancel_turn_input(
    row: PendingTurnInput | None,
    target: CancelTarget,
    lease: SessionLease | None,
    now_ms: int,
) -> tuple[CancelOutcome, PendingTurnInput | None]:
    """The cancel outcome for one row and, when it changes, the new row.

    Terminal rows report ``already_*``; ``accepted`` rows and pending rows under a live claim
    report ``already_claimed``; other pending rows become ``cancelled`` (claim cleared).
    """
    if row is None:
        return CancelOutcome(status="not_found", target=target), None
    if row.state == "cancelled":
        return CancelOutcome(status="already_cancelled", input=row, target=target), None
    if row.state == "completed":
        return CancelOutcome(status="already_completed", input=row, target=target), None
    if row.state == "accepted" or claim_is_live(row.claim, lease, now_ms):
        outcome = CancelOutcome(status="already_claimed", input=row, target=target, claim=row.claim)
        return outcome, None
    cancelled = msgspec.structs.replace(row, state="cancelled", claim=None)
    return CancelOutcome(status="cancelled", input=cancelled, target=target), cancelled


def turn_input_claimable_for_checkpoint(
    row: PendingTurnInput, generation: int, turn_id: str, checkpoint: CheckpointKind
) -> bool:
    """Whether an active-turn claim of ``turn_id`` at ``checkpoint`` may take ``row``.

    ``accepted`` rows of another (superseded) generation qualify too: a re-driven turn with
    the same id takes them back under its new lease.
    """
    return (
        row.state in ("pending_active", "accepted")
        and row.ingress.kind == "active_turn"
        and row.ingress.turn_id == turn_id
        and row.ingress.admits(checkpoint)
        and row_claimable(row.claim, generation)
    )


def active_turn_input_candidates(
    rows: Iterable[PendingTurnInput], generation: int, turn_id: str, checkpoint: CheckpointKind
) -> list[PendingTurnInput]:
    """Rows an active-turn claim may take, in enqueue order."""
    picked = [
        r for r in rows if turn_input_claimable_for_checkpoint(r, generation, turn_id, checkpoint)
    ]
    return sorted(picked, key=lambda r: r.enqueue_seq)


def next_turn_input_candidates(
    rows: Iterable[PendingTurnInput], generation: int
) -> list[PendingTurnInput]:
    """Deferred next-turn rows a next-turn claim may take, in enqueue order."""
    picked = [
        r for r in rows if r.state == "deferred_next_turn" and row_claimable(r.claim, generation)
    ]
    return sorted(picked, key=lambda r: r.enqueue_seq)


def select_turn_inputs(
    candidates: Sequence[PendingTurnInput], max_inputs: int
) -> list[PendingTurnInput]:
    """The leading ``max_inputs`` candidates (none for ``max_inputs <= 0``)."""
    return list(candidates[: max(max_inputs, 0)])


def build_turn_input_claim(
    rows: Sequence[PendingTurnInput], fence: LeaseFence, now_ms: int, *, active: bool
) -> TurnInputClaim:
    """Claim ``rows`` under ``fence``'s generation.

    The claim fencing is the head row's counter plus one (claim id ``tic:{seq}:{fencing}``);
    each row's counter advances; an active claim moves rows to ``accepted`` while a next-turn
    claim leaves them ``deferred_next_turn``. The caller stores ``claim.inputs``.
    """
    if not rows:
        raise _invalid("a turn-input claim needs at least one row")
    head = rows[0]
    fencing = head.claim_fencing_token + 1
    info = _claim_info(fence, turn_input_claim_id(head.enqueue_seq, fencing), now_ms)
    claimed = tuple(
        msgspec.structs.replace(
            r,
            claim=info,
            claim_fencing_token=r.claim_fencing_token + 1,
            state="accepted" if active else r.state,
        )
        for r in rows
    )
    return TurnInputClaim(
        session_id=fence.session_id,
        claim_id=info.claim_id,
        lease_token=info.lease_token,
        session_lease_generation=fence.fencing_token,
        inputs=claimed,
    )


def unclaimed_turn_input(row: PendingTurnInput) -> PendingTurnInput:
    """A row handed back: claim cleared, ``accepted`` back to ``pending_active``."""
    state: TurnInputState = "pending_active" if row.state == "accepted" else row.state
    return msgspec.structs.replace(row, claim=None, state=state)


def completed_turn_input(row: PendingTurnInput) -> PendingTurnInput:
    """A row settled by a commit: ``completed`` tombstone, claim cleared."""
    return msgspec.structs.replace(row, state="completed", claim=None)


def deferred_turn_input(row: PendingTurnInput) -> PendingTurnInput:
    """An unaccepted active-turn row of an interrupted turn, re-homed to the next turn."""
    return msgspec.structs.replace(
        row, state="deferred_next_turn", ingress=TurnInputIngress.next_turn(), claim=None
    )


# --- queued work -----------------------------------------------------------------------


def validate_queued_work_draft(draft: QueuedWorkBatchDraft) -> None:
    """Reject batches that could never be claimed: empty, mixed-class, or unnamed."""
    if not draft.session_id:
        raise _invalid("queued work needs a non-empty session_id")
    if draft.source_key is not None and not draft.source_key:
        raise _invalid("queued work source_key must be non-empty when given")
    if not draft.payloads:
        raise _invalid("a queued-work batch needs at least one payload")
    if draft.merge_key.kind == "group" and not draft.merge_key.group:
        raise _invalid("a group merge key needs a group name")
    classes = {_payload_class(p) for p in draft.payloads}
    if len(classes) != 1:
        raise _invalid("a queued-work batch must not mix session commands and turn work")


def _payload_class(payload: object) -> WorkClass:
    return "session_command" if isinstance(payload, SessionCommand) else "turn_work"


def build_queued_batch(
    draft: QueuedWorkBatchDraft, batch_id: str, enqueue_seq: int, now_ms: int
) -> QueuedWorkBatch:
    """The stored batch for a draft; items are ``{batch_id}:item:{i}``."""
    return QueuedWorkBatch(
        batch_id=batch_id,
        session_id=draft.session_id,
        enqueue_seq=enqueue_seq,
        items=tuple(
            QueuedWorkItem(item_id=f"{batch_id}:item:{i}", payload=p)
            for i, p in enumerate(draft.payloads)
        ),
        delivery_policy=draft.delivery_policy,
        slot_policy=draft.slot_policy,
        merge_key=draft.merge_key,
        available_at_ms=draft.available_at_ms,
        enqueued_at_ms=now_ms,
        source_key=draft.source_key,
    )


def batch_work_class(batch: QueuedWorkBatch) -> WorkClass:
    """The batch's class; a mixed or empty batch is a backend error."""
    work_class = batch.work_class
    if work_class is None:
        raise StoreError(
            StoreErrorKind.BACKEND,
            f"queued-work batch {batch.batch_id!r} has no single work class",
        )
    return work_class


def ready_queued_candidates(
    batches: Iterable[QueuedWorkBatch], generation: int, now_ms: int
) -> list[QueuedWorkBatch]:
    """Claim candidates: available by ``now_ms``, claimable by ``generation``, in order."""
    picked = [
        b for b in batches if b.available_at_ms <= now_ms and row_claimable(b.claim, generation)
    ]
    return sorted(picked, key=lambda b: b.enqueue_seq)


def select_leading_session_command(
    candidates: Sequence[QueuedWorkBatch],
) -> QueuedWorkBatch | None:
    """The head candidate, only if it is a session command (commands go one at a time)."""
    if not candidates:
        return None
    head = candidates[0]
    return head if batch_work_class(head) == "session_command" else None


def _joins(head: QueuedWorkBatch, other: QueuedWorkBatch) -> bool:
    """Whether ``other`` may ride in a join claim headed by ``head``.

    A ``never`` merge key never merges (not even with another ``never``) — the name says so;
    otherwise delivery policy and merge key must be equal.
    """
    return (
        other.slot_policy == "join"
        and batch_work_class(other) == "turn_work"
        and other.delivery_policy == head.delivery_policy
        and other.merge_key == head.merge_key
        and head.merge_key.kind != "never"
    )


def select_turn_work_prefix(
    candidates: Sequence[QueuedWorkBatch], boundary: ClaimBoundary, max_batches: int
) -> list[QueuedWorkBatch]:
    """The leading candidates one turn-work claim takes (empty: nothing claimable).

    The head must be turn work (an earlier ready session command is never skipped); at an
    ``active_turn_checkpoint`` it must be ``earliest_safe_boundary``; an exclusive head goes
    alone; a join head extends through immediately following joinable batches up to
    ``max_batches``.
    """
    if max_batches <= 0 or not candidates:
        return []
    head = candidates[0]
    if batch_work_class(head) != "turn_work":
        return []
    if boundary == "active_turn_checkpoint" and head.delivery_policy != "earliest_safe_boundary":
        return []
    selected = [head]
    if head.slot_policy != "join":
        return selected
    for other in candidates[1:]:
        if len(selected) >= max_batches or not _joins(head, other):
            break
        selected.append(other)
    return selected


def select_exact_batches(
    candidates: Sequence[QueuedWorkBatch], boundary: ClaimBoundary, batch_ids: Sequence[str]
) -> list[QueuedWorkBatch] | None:
    """The batches an exact claim takes, or ``None`` if ``batch_ids`` is not a valid claim.

    Every id must be a ready, claimable turn-work candidate (duplicates are invalid); in
    enqueue order they must form exactly the prefix :func:`select_turn_work_prefix` would
    take from them. Earlier unrelated work may be bypassed.
    """
    if not batch_ids or len(set(batch_ids)) != len(batch_ids):
        return None
    by_id = {b.batch_id: b for b in candidates}
    chosen: list[QueuedWorkBatch] = []
    for batch_id in batch_ids:
        batch = by_id.get(batch_id)
        if batch is None or batch_work_class(batch) != "turn_work":
            return None
        chosen.append(batch)
    chosen.sort(key=lambda b: b.enqueue_seq)
    if len(select_turn_work_prefix(chosen, boundary, len(chosen))) != len(chosen):
        return None
    return chosen


def build_queued_work_claim(
    batches: Sequence[QueuedWorkBatch], fence: LeaseFence, now_ms: int
) -> QueuedWorkClaim:
    """Claim ``batches`` under ``fence``'s generation.

    Claim fencing is the head batch's counter plus one (``qwc:{seq}:{fencing}``); every
    batch's counter advances. The caller stores ``claim.batches``.
    """
    if not batches:
        raise _invalid("a queued-work claim needs at least one batch")
    head = batches[0]
    fencing = head.claim_fencing_token + 1
    info = _claim_info(fence, queued_claim_id(head.enqueue_seq, fencing), now_ms)
    claimed = tuple(
        msgspec.structs.replace(b, claim=info, claim_fencing_token=b.claim_fencing_token + 1)
        for b in batches
    )
    return QueuedWorkClaim(
        session_id=fence.session_id,
        claim_id=info.claim_id,
        lease_token=info.lease_token,
        fencing_token=fencing,
        session_lease_generation=fence.fencing_token,
        batches=claimed,
    )


# --- commits ---------------------------------------------------------------------------


def check_commit_binding(commit: RuntimeCommit) -> None:
    """Step 1 of a commit: everything in it must belong to ``commit.session_id``.

    An outbox batch for another session is a binding mismatch; a turn stamp for another
    session is a turn-commit conflict.
    """
    for draft in commit.enqueued_queue_batches:
        if draft.session_id != commit.session_id:
            raise StoreError(
                StoreErrorKind.SESSION_BINDING_MISMATCH,
                f"commit for session {commit.session_id!r} enqueues work for {draft.session_id!r}",
                bound=commit.session_id,
                attempted=draft.session_id,
            )
        validate_queued_work_draft(draft)
    stamp = commit.turn_commit
    if stamp is not None and stamp.session_id != commit.session_id:
        raise StoreError(
            StoreErrorKind.RUNTIME_TURN_COMMIT_CONFLICT,
            f"turn stamp names session {stamp.session_id!r}, commit is for {commit.session_id!r}",
            session_id=commit.session_id,
            turn_id=stamp.turn_id,
        )


def turn_replay_decision(commit: RuntimeCommit, stored_hash: str | None) -> bool:
    """Step 2: ``True`` when this commit replays an already stamped turn.

    ``stored_hash`` is the hash recorded for ``(session, commit.turn_commit.turn_id)``, if
    any. A different hash under the same turn id is a turn-commit conflict.
    """
    stamp = commit.turn_commit
    if stamp is None or stored_hash is None:
        return False
    if stored_hash != stamp.turn_commit_hash:
        raise StoreError(
            StoreErrorKind.RUNTIME_TURN_COMMIT_CONFLICT,
            f"turn {stamp.turn_id!r} of session {commit.session_id!r} was already committed "
            "with different content",
            session_id=commit.session_id,
            turn_id=stamp.turn_id,
        )
    return True


def check_head_revision(expected: int | None, actual: int) -> None:
    """Step 4: the head compare-and-swap (``None`` skips it; a new session is at 0)."""
    if expected is not None and expected != actual:
        raise StoreError(
            StoreErrorKind.HEAD_REVISION_CONFLICT,
            f"expected head revision {expected}, found {actual}",
            expected=expected,
            actual=actual,
        )


def completion_owns_rows(
    claim_id: str,
    lease_token: str,
    row_ids: Sequence[str],
    claims_by_id: Mapping[str, ClaimInfo | None],
) -> bool:
    """Step 5: the claim still owns *every* listed row of this session.

    ``claims_by_id`` maps the session's row ids to their current claim.
    """
    if not row_ids or len(set(row_ids)) != len(row_ids):
        return False
    for row_id in row_ids:
        if row_id not in claims_by_id:
            return False
        claim = claims_by_id[row_id]
        if claim is None or claim.claim_id != claim_id or claim.lease_token != lease_token:
            return False
    return True


def resolve_graph_delta(
    delta: GraphDelta, current_ids: Iterable[str], current_leaf: str | None
) -> tuple[list[SessionNode], bool, str | None]:
    """Validate a graph delta against the stored node ids.

    Returns ``(nodes_to_write, replace_all, new_leaf)``. Appended ids must be new (also
    among themselves) and parents must exist; the leaf, when given, must be one of the
    resulting nodes. An omitted leaf keeps the current one (``unchanged``) or becomes the last
    written node.
    """
    # A set-like (a dict's keys view, say) is used as is: copying every stored id on each
    # commit made an in-memory commit O(history).
    existing = current_ids if isinstance(current_ids, AbstractSet) else set(current_ids)
    leaf: str | None
    if isinstance(delta, GraphUnchanged):
        leaf = delta.leaf_node_id if delta.leaf_node_id is not None else current_leaf
        if leaf is not None and leaf not in existing:
            raise _invalid(f"leaf {leaf!r} is not a node of the session")
        return [], False, leaf
    nodes = list(delta.nodes)
    replace_all = isinstance(delta, GraphReplaceFull)
    stored: AbstractSet[str] = frozenset() if replace_all else existing
    added: set[str] = set()
    for node in nodes:
        if node.node_id in added or node.node_id in stored:
            raise _invalid(f"graph already has node {node.node_id!r}")
        parent = node.parent_node_id
        if parent is not None and parent not in added and parent not in stored:
            raise _invalid(f"parent {parent!r} of node {node.node_id!r} is missing")
        added.add(node.node_id)
    if delta.leaf_node_id is not None:
        leaf = delta.leaf_node_id
        if leaf not in added and leaf not in stored:
            raise _invalid(f"leaf {leaf!r} is not a node of the session")
    elif nodes:
        leaf = nodes[-1].node_id
    else:
        leaf = None if replace_all else current_leaf
    return nodes, replace_all, leaf


def ancestry(nodes_by_id: Mapping[str, SessionNode], leaf: str | None) -> list[SessionNode]:
    """The visible ancestry of ``leaf``, root first; the walk stops at a hidden node."""
    path: list[SessionNode] = []
    seen: set[str] = set()
    cursor = leaf
    while cursor is not None and cursor not in seen:
        node = nodes_by_id.get(cursor)
        if node is None:
            break
        seen.add(cursor)
        path.append(node)
        cursor = node.parent_node_id
    path.reverse()
    return path


def merged_token_ledger(entries: Iterable[TokenLedgerEntry]) -> tuple[TokenLedgerEntry, ...]:
    """The ledger as loads return it: merged by ``(source, model)``, zero totals dropped."""
    return tuple(merge_ledger(entries))
