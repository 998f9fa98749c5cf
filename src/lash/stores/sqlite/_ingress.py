"""Pending Turn Input and Queued Work on SQLite.

Candidate rows are selected in SQL (session, state, availability and the claim-generation
rule, in ``enqueue_seq`` order, bounded by the scan surplus); the decision of which rows a
claim takes, what a cancel does and how ids are derived is :mod:`lash.stores._logic`, shared
with every backend. Functions run inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Sequence

import msgspec

from lash.errors import StoreError, StoreErrorKind
from lash.stores import _logic
from lash.stores.sqlite._leases import current_lease, require_fence
from lash.stores.sqlite._rows import (
    BATCH_COLUMNS,
    INPUT_COLUMNS,
    batch_from_row,
    claim_columns,
    enc,
    input_from_row,
)
from lash.types import (
    CancelOutcome,
    CancelTarget,
    CheckpointKind,
    ClaimBoundary,
    LeaseFence,
    PendingTurnInput,
    PendingTurnInputDraft,
    QueuedWorkBatch,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    SuffixCancelResult,
    TurnInputClaim,
)

__all__ = [
    "abandon_queued_work_claim",
    "abandon_turn_input_claim",
    "cancel_queued_work_batch",
    "cancel_turn_inputs",
    "cancel_turn_input_suffix",
    "claim_active_turn_inputs",
    "claim_exact_batches",
    "claim_leading_session_command",
    "claim_next_turn_inputs",
    "claim_ready_queued_work",
    "enqueue_queued_work",
    "enqueue_turn_input",
    "get_turn_input",
    "has_admissible_active_input",
    "leading_batch",
    "list_pending_turn_inputs",
    "list_queued_work",
    "list_pending_queued_work",
    "queued_rows_by_id",
    "turn_input_rows_by_id",
    "write_turn_input",
]

# --- pending turn input ----------------------------------------------------------------

_INPUT_SELECT = f"SELECT {INPUT_COLUMNS} FROM turn_inputs"
_INSERT_INPUT = """
INSERT INTO turn_inputs (session_id, input_id, source_key, ingress_kind, ingress_turn_id,
                         min_boundary, state, enqueued_at_ms, input_json)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPDATE_INPUT = """
UPDATE turn_inputs SET
    ingress_kind = ?, ingress_turn_id = ?, min_boundary = ?, state = ?,
    claim_id = ?, claim_owner_id = ?, claim_token = ?, claim_generation = ?,
    claim_fencing_token = ?
WHERE enqueue_seq = ?
"""
_CLAIMABLE = "(claim_token IS NULL OR claim_generation <> ?)"
_NOT_LIVE_CLAIMED = "(claim_token IS NULL OR claim_generation IS NOT ?)"


def _one_input(
    conn: sqlite3.Connection, where: str, args: tuple[object, ...]
) -> PendingTurnInput | None:
    row = conn.execute(f"{_INPUT_SELECT} WHERE {where}", args).fetchone()
    return input_from_row(row) if row is not None else None


def get_turn_input(
    conn: sqlite3.Connection, session_id: str, input_id: str
) -> PendingTurnInput | None:
    """One input row in any state."""
    return _one_input(conn, "session_id = ? AND input_id = ?", (session_id, input_id))


def write_turn_input(conn: sqlite3.Connection, row: PendingTurnInput) -> None:
    """Write back the mutable columns of ``row`` (state, ingress, claim)."""
    conn.execute(
        _UPDATE_INPUT,
        (
            row.ingress.kind,
            row.ingress.turn_id,
            row.ingress.min_boundary,
            row.state,
            *claim_columns(row.claim),
            row.claim_fencing_token,
            row.enqueue_seq,
        ),
    )


def enqueue_turn_input(
    conn: sqlite3.Connection, draft: PendingTurnInputDraft, now_ms: int
) -> PendingTurnInput:
    """Admit input; a source-key replay returns the original (or conflicts)."""
    _logic.validate_turn_input_draft(draft)
    sid = draft.session_id
    if draft.source_key is not None:
        existing = _one_input(conn, "session_id = ? AND source_key = ?", (sid, draft.source_key))
        if existing is not None:
            return _logic.source_key_replay(existing, draft)
    input_id = draft.input_id or _logic.derive_turn_input_id(
        sid, draft.source_key, now_ms, uuid.uuid4().hex
    )
    existing = get_turn_input(conn, sid, input_id)
    if existing is not None:
        if _logic.same_turn_input_content(existing, draft):
            return existing
        raise StoreError(
            StoreErrorKind.INVALID_ARGUMENT,
            f"input id {input_id!r} is already used in session {sid!r}",
            input_id=input_id,
        )
    ingress = draft.ingress
    cursor = conn.execute(
        _INSERT_INPUT,
        (
            sid,
            input_id,
            draft.source_key,
            ingress.kind,
            ingress.turn_id,
            ingress.min_boundary,
            _logic.initial_turn_input_state(ingress),
            now_ms,
            enc(draft.input),
        ),
    )
    seq = cursor.lastrowid
    assert seq is not None
    return _logic.build_turn_input(draft, input_id, seq, now_ms)


def list_pending_turn_inputs(
    conn: sqlite3.Connection, session_id: str, now_ms: int
) -> list[PendingTurnInput]:
    """Pending and deferred rows without a live claim, by enqueue order."""
    live = _logic.live_generation(current_lease(conn, session_id), now_ms)
    rows = conn.execute(
        f"{_INPUT_SELECT} WHERE session_id = ? "
        "AND state IN ('pending_active', 'deferred_next_turn') "
        f"AND {_NOT_LIVE_CLAIMED} ORDER BY enqueue_seq",
        (session_id, live),
    ).fetchall()
    return [input_from_row(r) for r in rows]


def _find_target(
    conn: sqlite3.Connection, session_id: str, target: CancelTarget
) -> PendingTurnInput | None:
    if target.input_id is not None:
        row = get_turn_input(conn, session_id, target.input_id)
    elif target.source_key is not None:
        row = _one_input(conn, "session_id = ? AND source_key = ?", (session_id, target.source_key))
    else:
        row = None
    return _logic.find_turn_input([row] if row is not None else [], target)


def _cancel_one(
    conn: sqlite3.Connection,
    row: PendingTurnInput | None,
    target: CancelTarget,
    now_ms: int,
    session_id: str,
) -> CancelOutcome:
    outcome, changed = _logic.cancel_turn_input(
        row, target, current_lease(conn, session_id), now_ms
    )
    if changed is not None:
        write_turn_input(conn, changed)
    return outcome


def cancel_turn_inputs(
    conn: sqlite3.Connection, session_id: str, targets: Sequence[CancelTarget], now_ms: int
) -> list[CancelOutcome]:
    """Cancel every target in one transaction; one outcome per target."""
    return [
        _cancel_one(conn, _find_target(conn, session_id, t), t, now_ms, session_id) for t in targets
    ]


def cancel_turn_input_suffix(
    conn: sqlite3.Connection, session_id: str, anchor: CancelTarget, now_ms: int
) -> SuffixCancelResult:
    """Cancel the anchor and every later input of the session."""
    found = _find_target(conn, session_id, anchor)
    if found is None:
        return SuffixCancelResult(anchor_found=False)
    rows = conn.execute(
        f"{_INPUT_SELECT} WHERE session_id = ? AND enqueue_seq >= ? ORDER BY enqueue_seq",
        (session_id, found.enqueue_seq),
    ).fetchall()
    outcomes = []
    for raw in rows:
        row = input_from_row(raw)
        target = CancelTarget(input_id=row.input_id)
        outcomes.append(_cancel_one(conn, row, target, now_ms, session_id))
    return SuffixCancelResult(anchor_found=True, outcomes=tuple(outcomes))


def _claim_inputs(
    conn: sqlite3.Connection,
    rows: list[PendingTurnInput],
    fence: LeaseFence,
    now_ms: int,
    *,
    active: bool,
) -> TurnInputClaim | None:
    if not rows:
        return None
    claim = _logic.build_turn_input_claim(rows, fence, now_ms, active=active)
    for row in claim.inputs:
        write_turn_input(conn, row)
    return claim


def _active_candidates(
    conn: sqlite3.Connection,
    session_id: str,
    generation: int,
    turn_id: str,
    checkpoint: CheckpointKind,
    limit: int,
) -> list[PendingTurnInput]:
    rows = conn.execute(
        f"{_INPUT_SELECT} WHERE session_id = ? AND state IN ('pending_active', 'accepted') "
        "AND ingress_kind = 'active_turn' AND ingress_turn_id = ? "
        "AND (min_boundary = 'after_work' OR ? = 'before_completion') "
        f"AND {_CLAIMABLE} ORDER BY enqueue_seq LIMIT ?",
        (session_id, turn_id, checkpoint, generation, limit),
    ).fetchall()
    return _logic.active_turn_input_candidates(
        (input_from_row(r) for r in rows), generation, turn_id, checkpoint
    )


def has_admissible_active_input(
    conn: sqlite3.Connection,
    session_id: str,
    generation: int,
    turn_id: str,
    checkpoint: CheckpointKind,
) -> bool:
    """Read-only probe: would an active-turn claim take anything?"""
    return bool(_active_candidates(conn, session_id, generation, turn_id, checkpoint, 1))


def claim_active_turn_inputs(
    conn: sqlite3.Connection,
    fence: LeaseFence,
    turn_id: str,
    checkpoint: CheckpointKind,
    max_inputs: int,
    now_ms: int,
    *,
    validated: bool = False,
) -> TurnInputClaim | None:
    """Claim inputs addressed to running turn ``turn_id`` that admit ``checkpoint``."""
    sid = fence.session_id
    if not validated:
        require_fence(conn, fence, sid, now_ms)
    if max_inputs <= 0:
        return None
    candidates = _active_candidates(conn, sid, fence.fencing_token, turn_id, checkpoint, max_inputs)
    rows = _logic.select_turn_inputs(candidates, max_inputs)
    return _claim_inputs(conn, rows, fence, now_ms, active=True)


def claim_next_turn_inputs(
    conn: sqlite3.Connection, fence: LeaseFence, max_inputs: int, now_ms: int
) -> TurnInputClaim | None:
    """Claim deferred next-turn inputs in order under ``fence``'s generation."""
    sid = fence.session_id
    require_fence(conn, fence, sid, now_ms)
    if max_inputs <= 0:
        return None
    generation = fence.fencing_token
    raw = conn.execute(
        f"{_INPUT_SELECT} WHERE session_id = ? AND state = 'deferred_next_turn' "
        f"AND {_CLAIMABLE} ORDER BY enqueue_seq LIMIT ?",
        (sid, generation, max_inputs),
    ).fetchall()
    candidates = _logic.next_turn_input_candidates((input_from_row(r) for r in raw), generation)
    rows = _logic.select_turn_inputs(candidates, max_inputs)
    return _claim_inputs(conn, rows, fence, now_ms, active=False)


def abandon_turn_input_claim(
    conn: sqlite3.Connection, session_id: str, claim_id: str, lease_token: str
) -> None:
    """Hand a claim back: rows return to their pre-claim state."""
    raw = conn.execute(
        f"{_INPUT_SELECT} WHERE session_id = ? AND claim_id = ? AND claim_token = ?",
        (session_id, claim_id, lease_token),
    ).fetchall()
    for r in raw:
        write_turn_input(conn, _logic.unclaimed_turn_input(input_from_row(r)))


def turn_input_rows_by_id(
    conn: sqlite3.Connection, session_id: str, input_ids: Sequence[str]
) -> dict[str, PendingTurnInput]:
    """The session's rows among ``input_ids``."""
    if not input_ids:
        return {}
    marks = ",".join("?" * len(input_ids))
    raw = conn.execute(
        f"{_INPUT_SELECT} WHERE session_id = ? AND input_id IN ({marks})",
        (session_id, *input_ids),
    ).fetchall()
    rows = (input_from_row(r) for r in raw)
    return {r.input_id: r for r in rows}


# --- queued work -----------------------------------------------------------------------

_BATCH_SELECT = f"SELECT {BATCH_COLUMNS} FROM queued_batches"
_INSERT_BATCH = """
INSERT INTO queued_batches (session_id, batch_id, source_key, delivery_policy, slot_policy,
                            merge_key_json, available_at_ms, enqueued_at_ms, items_json)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_UPDATE_BATCH_CLAIM = """
UPDATE queued_batches SET
    claim_id = ?, claim_owner_id = ?, claim_token = ?, claim_generation = ?,
    claim_fencing_token = ?
WHERE enqueue_seq = ?
"""


def enqueue_queued_work(
    conn: sqlite3.Connection, draft: QueuedWorkBatchDraft, now_ms: int
) -> QueuedWorkBatch:
    """Enqueue a batch; a source-key replay returns the original batch unchanged."""
    _logic.validate_queued_work_draft(draft)
    sid = draft.session_id
    if draft.source_key is not None:
        raw = conn.execute(
            f"{_BATCH_SELECT} WHERE session_id = ? AND source_key = ?", (sid, draft.source_key)
        ).fetchone()
        if raw is not None:
            return batch_from_row(raw)
    batch_id = _logic.derive_batch_id(sid, draft.source_key, now_ms, uuid.uuid4().hex)
    batch = _logic.build_queued_batch(draft, batch_id, 0, now_ms)
    cursor = conn.execute(
        _INSERT_BATCH,
        (
            sid,
            batch_id,
            draft.source_key,
            draft.delivery_policy,
            draft.slot_policy,
            enc(draft.merge_key),
            draft.available_at_ms,
            now_ms,
            enc(batch.items),
        ),
    )
    seq = cursor.lastrowid
    assert seq is not None
    return msgspec.structs.replace(batch, enqueue_seq=seq)


def list_queued_work(conn: sqlite3.Connection, session_id: str) -> list[QueuedWorkBatch]:
    """Every batch, claimed or not, by enqueue order."""
    raw = conn.execute(
        f"{_BATCH_SELECT} WHERE session_id = ? ORDER BY enqueue_seq", (session_id,)
    ).fetchall()
    return [batch_from_row(r) for r in raw]


def list_pending_queued_work(
    conn: sqlite3.Connection, session_id: str, now_ms: int
) -> list[QueuedWorkBatch]:
    """Batches without a live claim, by enqueue order (the liveness test is in SQL)."""
    live = _logic.live_generation(current_lease(conn, session_id), now_ms)
    raw = conn.execute(
        f"{_BATCH_SELECT} WHERE session_id = ? AND {_NOT_LIVE_CLAIMED} ORDER BY enqueue_seq",
        (session_id, live),
    ).fetchall()
    return [batch_from_row(r) for r in raw]


def _ready_candidates(
    conn: sqlite3.Connection, session_id: str, generation: int, now_ms: int, limit: int
) -> list[QueuedWorkBatch]:
    raw = conn.execute(
        f"{_BATCH_SELECT} WHERE session_id = ? AND available_at_ms <= ? AND {_CLAIMABLE} "
        "ORDER BY enqueue_seq LIMIT ?",
        (session_id, now_ms, generation, limit),
    ).fetchall()
    return _logic.ready_queued_candidates((batch_from_row(r) for r in raw), generation, now_ms)


def leading_batch(
    conn: sqlite3.Connection, session_id: str, generation: int, now_ms: int
) -> QueuedWorkBatch | None:
    """Read-only probe: the earliest ready batch claimable by ``generation``."""
    candidates = _ready_candidates(conn, session_id, generation, now_ms, 1)
    return candidates[0] if candidates else None


def _claim_batches(
    conn: sqlite3.Connection, batches: Sequence[QueuedWorkBatch], fence: LeaseFence, now_ms: int
) -> QueuedWorkClaim | None:
    if not batches:
        return None
    claim = _logic.build_queued_work_claim(batches, fence, now_ms)
    conn.executemany(
        _UPDATE_BATCH_CLAIM,
        [(*claim_columns(b.claim), b.claim_fencing_token, b.enqueue_seq) for b in claim.batches],
    )
    return claim


def claim_leading_session_command(
    conn: sqlite3.Connection, fence: LeaseFence, now_ms: int
) -> QueuedWorkClaim | None:
    """Claim one batch, only if the earliest ready claimable batch is a session command."""
    sid = fence.session_id
    require_fence(conn, fence, sid, now_ms)
    candidates = _ready_candidates(
        conn, sid, fence.fencing_token, now_ms, _logic.claim_scan_limit(1)
    )
    head = _logic.select_leading_session_command(candidates)
    return _claim_batches(conn, [head] if head is not None else [], fence, now_ms)


def claim_ready_queued_work(
    conn: sqlite3.Connection,
    fence: LeaseFence,
    boundary: ClaimBoundary,
    max_batches: int,
    now_ms: int,
    *,
    validated: bool = False,
) -> QueuedWorkClaim | None:
    """Claim the leading turn work (a join prefix or one exclusive batch)."""
    sid = fence.session_id
    if not validated:
        require_fence(conn, fence, sid, now_ms)
    if max_batches <= 0:
        return None
    candidates = _ready_candidates(
        conn, sid, fence.fencing_token, now_ms, _logic.claim_scan_limit(max_batches)
    )
    picked = _logic.select_turn_work_prefix(candidates, boundary, max_batches)
    return _claim_batches(conn, picked, fence, now_ms)


def queued_rows_by_id(
    conn: sqlite3.Connection, session_id: str, batch_ids: Sequence[str]
) -> dict[str, QueuedWorkBatch]:
    """The session's batches among ``batch_ids``."""
    if not batch_ids:
        return {}
    marks = ",".join("?" * len(batch_ids))
    raw = conn.execute(
        f"{_BATCH_SELECT} WHERE session_id = ? AND batch_id IN ({marks})",
        (session_id, *batch_ids),
    ).fetchall()
    rows = (batch_from_row(r) for r in raw)
    return {b.batch_id: b for b in rows}


def claim_exact_batches(
    conn: sqlite3.Connection,
    fence: LeaseFence,
    boundary: ClaimBoundary,
    batch_ids: Sequence[str],
    now_ms: int,
) -> QueuedWorkClaim | None:
    """Claim exactly ``batch_ids`` if they form a valid claim; ``None`` otherwise."""
    sid = fence.session_id
    require_fence(conn, fence, sid, now_ms)
    found = queued_rows_by_id(conn, sid, list(dict.fromkeys(batch_ids)))
    candidates = _logic.ready_queued_candidates(found.values(), fence.fencing_token, now_ms)
    picked = _logic.select_exact_batches(candidates, boundary, batch_ids)
    return _claim_batches(conn, picked or [], fence, now_ms)


def abandon_queued_work_claim(
    conn: sqlite3.Connection, session_id: str, claim_id: str, lease_token: str
) -> None:
    """Clear the claim columns of rows still held by ``claim_id`` + ``lease_token``."""
    conn.execute(
        "UPDATE queued_batches SET claim_id = NULL, claim_owner_id = NULL, claim_token = NULL, "
        "claim_generation = NULL WHERE session_id = ? AND claim_id = ? AND claim_token = ?",
        (session_id, claim_id, lease_token),
    )


def cancel_queued_work_batch(
    conn: sqlite3.Connection, session_id: str, batch_id: str, now_ms: int
) -> QueuedWorkBatch | None:
    """Delete and return the batch unless it is missing or live-claimed."""
    raw = conn.execute(
        f"{_BATCH_SELECT} WHERE session_id = ? AND batch_id = ?", (session_id, batch_id)
    ).fetchone()
    if raw is None:
        return None
    batch = batch_from_row(raw)
    if _logic.claim_is_live(batch.claim, current_lease(conn, session_id), now_ms):
        return None
    conn.execute("DELETE FROM queued_batches WHERE enqueue_seq = ?", (batch.enqueue_seq,))
    return batch
