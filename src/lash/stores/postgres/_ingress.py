"""Pending Turn Input and Queued Work on PostgreSQL.

Claims run with the session's lease row locked (:func:`require_fence`); candidates are read
in ``enqueue_seq`` order with ``FOR UPDATE SKIP LOCKED`` (a row a concurrent cancel holds is
passed over rather than waited for), and each chosen row is written by a *guarded* update
that re-checks the claim-generation rule. If any guarded update misses, the claim's
savepoint rolls back and the claim reports nothing (:class:`ClaimRaced`). Which rows a claim
takes, what a cancel does and how ids are derived is :mod:`lash.stores._logic`, shared with
every backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import msgspec

from lash.errors import StoreError, StoreErrorKind
from lash.stores import _logic
from lash.stores.postgres._conn import Conn, Now, rowcount
from lash.stores.postgres._leases import current_lease, require_fence
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
    "ClaimRaced",
    "abandon_queued_work_claim",
    "abandon_turn_input_claim",
    "cancel_queued_work_batch",
    "cancel_turn_input_suffix",
    "cancel_turn_inputs",
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
    "list_pending_queued_work",
    "list_pending_turn_inputs",
    "list_queued_work",
    "lock_queued_rows",
    "lock_turn_input_rows",
    "write_turn_input",
]


class ClaimRaced(Exception):
    """A guarded claim update found its row changed; the claim's savepoint rolls back."""


def _inputs(rows: Iterable[asyncpg.Record]) -> list[PendingTurnInput]:
    return [input_from_row(tuple(r)) for r in rows]


def _batches(rows: Iterable[asyncpg.Record]) -> list[QueuedWorkBatch]:
    return [batch_from_row(tuple(r)) for r in rows]


# --- pending turn input ----------------------------------------------------------------

_INPUT_SELECT = f"SELECT {INPUT_COLUMNS} FROM lash_turn_inputs"
_INSERT_INPUT = """
INSERT INTO lash_turn_inputs (session_id, input_id, source_key, ingress_kind, ingress_turn_id,
                              min_boundary, state, enqueued_at_ms, input_json)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
RETURNING enqueue_seq
"""
_UPDATE_INPUT = """
UPDATE lash_turn_inputs SET
    ingress_kind = $1, ingress_turn_id = $2, min_boundary = $3, state = $4,
    claim_id = $5, claim_owner_id = $6, claim_token = $7, claim_generation = $8,
    claim_fencing_token = $9
WHERE enqueue_seq = $10
"""
# The claim path's rule, re-checked by the guarded update (``$11`` = the claiming generation).
_GUARDED_INPUT_UPDATE = _UPDATE_INPUT + " AND (claim_token IS NULL OR claim_generation <> $11)"


def _input_args(row: PendingTurnInput) -> tuple[Any, ...]:
    return (
        row.ingress.kind,
        row.ingress.turn_id,
        row.ingress.min_boundary,
        row.state,
        *claim_columns(row.claim),
        row.claim_fencing_token,
        row.enqueue_seq,
    )


async def get_turn_input(conn: Conn, session_id: str, input_id: str) -> PendingTurnInput | None:
    """One input row in any state."""
    row = await conn.fetchrow(
        f"{_INPUT_SELECT} WHERE session_id = $1 AND input_id = $2", session_id, input_id
    )
    return input_from_row(tuple(row)) if row is not None else None


async def _by_source_key(conn: Conn, session_id: str, source_key: str) -> PendingTurnInput | None:
    row = await conn.fetchrow(
        f"{_INPUT_SELECT} WHERE session_id = $1 AND source_key = $2", session_id, source_key
    )
    return input_from_row(tuple(row)) if row is not None else None


async def write_turn_input(conn: Conn, row: PendingTurnInput) -> None:
    """Write back the mutable columns of ``row`` (state, ingress, claim)."""
    await conn.execute(_UPDATE_INPUT, *_input_args(row))


async def enqueue_turn_input(
    conn: Conn, draft: PendingTurnInputDraft, now_ms: int
) -> PendingTurnInput:
    """Admit input; a source-key replay returns the original (or conflicts).

    The insert is ``ON CONFLICT DO NOTHING``: two concurrent replays of one source key both
    end up returning the single stored row.
    """
    _logic.validate_turn_input_draft(draft)
    sid = draft.session_id
    if draft.source_key is not None:
        existing = await _by_source_key(conn, sid, draft.source_key)
        if existing is not None:
            return _logic.source_key_replay(existing, draft)
    input_id = draft.input_id or _logic.derive_turn_input_id(
        sid, draft.source_key, now_ms, uuid.uuid4().hex
    )
    ingress = draft.ingress
    seq = await conn.fetchval(
        _INSERT_INPUT,
        sid,
        input_id,
        draft.source_key,
        ingress.kind,
        ingress.turn_id,
        ingress.min_boundary,
        _logic.initial_turn_input_state(ingress),
        now_ms,
        enc(draft.input),
    )
    if seq is not None:
        return _logic.build_turn_input(draft, input_id, int(seq), now_ms)
    # Lost a race (or a replay): the unique row that exists decides.
    if draft.source_key is not None:
        existing = await _by_source_key(conn, sid, draft.source_key)
        if existing is not None:
            return _logic.source_key_replay(existing, draft)
    existing = await get_turn_input(conn, sid, input_id)
    if existing is not None and _logic.same_turn_input_content(existing, draft):
        return existing
    raise StoreError(
        StoreErrorKind.INVALID_ARGUMENT,
        f"input id {input_id!r} is already used in session {sid!r}",
        input_id=input_id,
    )


async def list_pending_turn_inputs(
    conn: Conn, session_id: str, now_ms: int
) -> list[PendingTurnInput]:
    """Pending and deferred rows without a live claim, by enqueue order."""
    live = _logic.live_generation(await current_lease(conn, session_id), now_ms)
    rows = await conn.fetch(
        f"{_INPUT_SELECT} WHERE session_id = $1 "
        "AND state IN ('pending_active', 'deferred_next_turn') "
        "AND (claim_token IS NULL OR claim_generation IS DISTINCT FROM $2::bigint) "
        "ORDER BY enqueue_seq",
        session_id,
        live,
    )
    return _inputs(rows)


async def lock_turn_input_rows(
    conn: Conn, session_id: str, input_ids: Sequence[str]
) -> dict[str, PendingTurnInput]:
    """The session's rows among ``input_ids``, locked in enqueue order (no deadlock cycles)."""
    if not input_ids:
        return {}
    rows = await conn.fetch(
        f"{_INPUT_SELECT} WHERE session_id = $1 AND input_id = ANY($2::text[]) "
        "ORDER BY enqueue_seq FOR UPDATE",
        session_id,
        list(input_ids),
    )
    return {r.input_id: r for r in _inputs(rows)}


async def _lock_targets(
    conn: Conn, session_id: str, targets: Sequence[CancelTarget]
) -> list[PendingTurnInput]:
    ids = [t.input_id for t in targets if t.input_id is not None]
    keys = [t.source_key for t in targets if t.source_key is not None]
    rows = await conn.fetch(
        f"{_INPUT_SELECT} WHERE session_id = $1 "
        "AND (input_id = ANY($2::text[]) OR source_key = ANY($3::text[])) "
        "ORDER BY enqueue_seq FOR UPDATE",
        session_id,
        ids,
        keys,
    )
    return _inputs(rows)


async def _cancel_rows(
    conn: Conn,
    session_id: str,
    pairs: Sequence[tuple[PendingTurnInput | None, CancelTarget]],
    now_ms: int,
) -> list[CancelOutcome]:
    lease = await current_lease(conn, session_id)
    outcomes: list[CancelOutcome] = []
    changed_rows: dict[int, PendingTurnInput] = {}
    for row, target in pairs:
        if row is not None and row.enqueue_seq in changed_rows:
            row = changed_rows[row.enqueue_seq]
        outcome, changed = _logic.cancel_turn_input(row, target, lease, now_ms)
        if changed is not None:
            await write_turn_input(conn, changed)
            changed_rows[changed.enqueue_seq] = changed
        outcomes.append(outcome)
    return outcomes


async def cancel_turn_inputs(
    conn: Conn, session_id: str, targets: Sequence[CancelTarget], now_ms: int
) -> list[CancelOutcome]:
    """Cancel every target in one transaction; one outcome per target."""
    for target in targets:
        if target.input_id is None and target.source_key is None:
            _logic.find_turn_input([], target)  # raises the invalid-target error
    locked = await _lock_targets(conn, session_id, targets)
    pairs = [(_logic.find_turn_input(locked, t), t) for t in targets]
    return await _cancel_rows(conn, session_id, pairs, now_ms)


async def cancel_turn_input_suffix(
    conn: Conn, session_id: str, anchor: CancelTarget, now_ms: int
) -> SuffixCancelResult:
    """Cancel the anchor and every later input of the session."""
    found = _logic.find_turn_input(await _lock_targets(conn, session_id, [anchor]), anchor)
    if found is None:
        return SuffixCancelResult(anchor_found=False)
    rows = _inputs(
        await conn.fetch(
            f"{_INPUT_SELECT} WHERE session_id = $1 AND enqueue_seq >= $2 "
            "ORDER BY enqueue_seq FOR UPDATE",
            session_id,
            found.enqueue_seq,
        )
    )
    pairs = [(r, CancelTarget(input_id=r.input_id)) for r in rows]
    outcomes = await _cancel_rows(conn, session_id, pairs, now_ms)
    return SuffixCancelResult(anchor_found=True, outcomes=tuple(outcomes))


async def _claim_inputs(
    conn: Conn,
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
        status = await conn.execute(_GUARDED_INPUT_UPDATE, *_input_args(row), fence.fencing_token)
        if rowcount(status) != 1:
            raise ClaimRaced(row.input_id)
    return claim


async def _active_candidates(
    conn: Conn,
    session_id: str,
    generation: int,
    turn_id: str,
    checkpoint: CheckpointKind,
    limit: int,
    *,
    lock: bool,
) -> list[PendingTurnInput]:
    rows = await conn.fetch(
        f"{_INPUT_SELECT} WHERE session_id = $1 AND state IN ('pending_active', 'accepted') "
        "AND ingress_kind = 'active_turn' AND ingress_turn_id = $2 "
        "AND (min_boundary = 'after_work' OR $3::text = 'before_completion') "
        "AND (claim_token IS NULL OR claim_generation <> $4) ORDER BY enqueue_seq LIMIT $5"
        + (" FOR UPDATE SKIP LOCKED" if lock else ""),
        session_id,
        turn_id,
        checkpoint,
        generation,
        limit,
    )
    return _logic.active_turn_input_candidates(_inputs(rows), generation, turn_id, checkpoint)


async def has_admissible_active_input(
    conn: Conn, session_id: str, generation: int, turn_id: str, checkpoint: CheckpointKind
) -> bool:
    """Read-only probe: would an active-turn claim take anything?"""
    found = await _active_candidates(
        conn, session_id, generation, turn_id, checkpoint, 1, lock=False
    )
    return bool(found)


async def claim_active_turn_inputs(
    conn: Conn,
    fence: LeaseFence,
    turn_id: str,
    checkpoint: CheckpointKind,
    max_inputs: int,
    now: Now,
    *,
    validated_now: int | None = None,
) -> TurnInputClaim | None:
    """Claim inputs addressed to running turn ``turn_id`` that admit ``checkpoint``."""
    sid = fence.session_id
    if validated_now is None:
        _, now_ms = await require_fence(conn, fence, sid, now)
    else:
        now_ms = validated_now
    if max_inputs <= 0:
        return None
    candidates = await _active_candidates(
        conn, sid, fence.fencing_token, turn_id, checkpoint, max_inputs, lock=True
    )
    rows = _logic.select_turn_inputs(candidates, max_inputs)
    return await _claim_inputs(conn, rows, fence, now_ms, active=True)


async def claim_next_turn_inputs(
    conn: Conn, fence: LeaseFence, max_inputs: int, now: Now
) -> TurnInputClaim | None:
    """Claim deferred next-turn inputs in order under ``fence``'s generation."""
    sid = fence.session_id
    _, now_ms = await require_fence(conn, fence, sid, now)
    if max_inputs <= 0:
        return None
    generation = fence.fencing_token
    rows = await conn.fetch(
        f"{_INPUT_SELECT} WHERE session_id = $1 AND state = 'deferred_next_turn' "
        "AND (claim_token IS NULL OR claim_generation <> $2) ORDER BY enqueue_seq LIMIT $3 "
        "FOR UPDATE SKIP LOCKED",
        sid,
        generation,
        max_inputs,
    )
    candidates = _logic.next_turn_input_candidates(_inputs(rows), generation)
    picked = _logic.select_turn_inputs(candidates, max_inputs)
    return await _claim_inputs(conn, picked, fence, now_ms, active=False)


async def abandon_turn_input_claim(
    conn: Conn, session_id: str, claim_id: str, lease_token: str
) -> None:
    """Hand a claim back: rows return to their pre-claim state."""
    rows = await conn.fetch(
        f"{_INPUT_SELECT} WHERE session_id = $1 AND claim_id = $2 AND claim_token = $3 "
        "ORDER BY enqueue_seq FOR UPDATE",
        session_id,
        claim_id,
        lease_token,
    )
    for row in _inputs(rows):
        await write_turn_input(conn, _logic.unclaimed_turn_input(row))


# --- queued work -----------------------------------------------------------------------

_BATCH_SELECT = f"SELECT {BATCH_COLUMNS} FROM lash_queued_batches"
_INSERT_BATCH = """
INSERT INTO lash_queued_batches (session_id, batch_id, source_key, delivery_policy,
                                 slot_policy, merge_key_json, available_at_ms, enqueued_at_ms,
                                 items_json)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
RETURNING enqueue_seq
"""
_GUARDED_BATCH_CLAIM = """
UPDATE lash_queued_batches SET
    claim_id = $1, claim_owner_id = $2, claim_token = $3, claim_generation = $4,
    claim_fencing_token = $5
WHERE enqueue_seq = $6 AND (claim_token IS NULL OR claim_generation <> $4)
"""


async def enqueue_queued_work(
    conn: Conn, draft: QueuedWorkBatchDraft, now_ms: int
) -> QueuedWorkBatch:
    """Enqueue a batch; a source-key replay returns the original batch unchanged."""
    _logic.validate_queued_work_draft(draft)
    sid = draft.session_id

    async def by_source_key(key: str) -> QueuedWorkBatch | None:
        row = await conn.fetchrow(
            f"{_BATCH_SELECT} WHERE session_id = $1 AND source_key = $2", sid, key
        )
        return batch_from_row(tuple(row)) if row is not None else None

    if draft.source_key is not None:
        existing = await by_source_key(draft.source_key)
        if existing is not None:
            return existing
    batch_id = _logic.derive_batch_id(sid, draft.source_key, now_ms, uuid.uuid4().hex)
    batch = _logic.build_queued_batch(draft, batch_id, 0, now_ms)
    seq = await conn.fetchval(
        _INSERT_BATCH,
        sid,
        batch_id,
        draft.source_key,
        draft.delivery_policy,
        draft.slot_policy,
        enc(draft.merge_key),
        draft.available_at_ms,
        now_ms,
        enc(batch.items),
    )
    if seq is None and draft.source_key is not None:
        existing = await by_source_key(draft.source_key)
        if existing is not None:
            return existing
    if seq is None:
        raise StoreError(StoreErrorKind.BACKEND, f"batch id {batch_id!r} collided; retry")
    return msgspec.structs.replace(batch, enqueue_seq=int(seq))


async def list_queued_work(conn: Conn, session_id: str) -> list[QueuedWorkBatch]:
    """Every batch, claimed or not, by enqueue order."""
    rows = await conn.fetch(
        f"{_BATCH_SELECT} WHERE session_id = $1 ORDER BY enqueue_seq", session_id
    )
    return _batches(rows)


async def list_pending_queued_work(
    conn: Conn, session_id: str, now_ms: int
) -> list[QueuedWorkBatch]:
    """Batches without a live claim, by enqueue order (the liveness test is in SQL)."""
    live = _logic.live_generation(await current_lease(conn, session_id), now_ms)
    rows = await conn.fetch(
        f"{_BATCH_SELECT} WHERE session_id = $1 "
        "AND (claim_token IS NULL OR claim_generation IS DISTINCT FROM $2::bigint) "
        "ORDER BY enqueue_seq",
        session_id,
        live,
    )
    return _batches(rows)


async def _ready_candidates(
    conn: Conn, session_id: str, generation: int, now_ms: int, limit: int, *, lock: bool
) -> list[QueuedWorkBatch]:
    rows = await conn.fetch(
        f"{_BATCH_SELECT} WHERE session_id = $1 AND available_at_ms <= $2 "
        "AND (claim_token IS NULL OR claim_generation <> $3) ORDER BY enqueue_seq LIMIT $4"
        + (" FOR UPDATE SKIP LOCKED" if lock else ""),
        session_id,
        now_ms,
        generation,
        limit,
    )
    return _logic.ready_queued_candidates(_batches(rows), generation, now_ms)


async def leading_batch(
    conn: Conn, session_id: str, generation: int, now_ms: int
) -> QueuedWorkBatch | None:
    """Read-only probe: the earliest ready batch claimable by ``generation``."""
    candidates = await _ready_candidates(conn, session_id, generation, now_ms, 1, lock=False)
    return candidates[0] if candidates else None


async def _claim_batches(
    conn: Conn, batches: Sequence[QueuedWorkBatch], fence: LeaseFence, now_ms: int
) -> QueuedWorkClaim | None:
    if not batches:
        return None
    claim = _logic.build_queued_work_claim(batches, fence, now_ms)
    for b in claim.batches:
        status = await conn.execute(
            _GUARDED_BATCH_CLAIM, *claim_columns(b.claim), b.claim_fencing_token, b.enqueue_seq
        )
        if rowcount(status) != 1:
            raise ClaimRaced(b.batch_id)
    return claim


async def claim_leading_session_command(
    conn: Conn, fence: LeaseFence, now: Now
) -> QueuedWorkClaim | None:
    """Claim one batch, only if the earliest ready claimable batch is a session command."""
    sid = fence.session_id
    _, now_ms = await require_fence(conn, fence, sid, now)
    candidates = await _ready_candidates(
        conn, sid, fence.fencing_token, now_ms, _logic.claim_scan_limit(1), lock=True
    )
    head = _logic.select_leading_session_command(candidates)
    return await _claim_batches(conn, [head] if head is not None else [], fence, now_ms)


async def claim_ready_queued_work(
    conn: Conn,
    fence: LeaseFence,
    boundary: ClaimBoundary,
    max_batches: int,
    now: Now,
    *,
    validated_now: int | None = None,
) -> QueuedWorkClaim | None:
    """Claim the leading turn work (a join prefix or one exclusive batch)."""
    sid = fence.session_id
    if validated_now is None:
        _, now_ms = await require_fence(conn, fence, sid, now)
    else:
        now_ms = validated_now
    if max_batches <= 0:
        return None
    candidates = await _ready_candidates(
        conn, sid, fence.fencing_token, now_ms, _logic.claim_scan_limit(max_batches), lock=True
    )
    picked = _logic.select_turn_work_prefix(candidates, boundary, max_batches)
    return await _claim_batches(conn, picked, fence, now_ms)


async def lock_queued_rows(
    conn: Conn, session_id: str, batch_ids: Sequence[str]
) -> dict[str, QueuedWorkBatch]:
    """The session's batches among ``batch_ids``, locked in enqueue order."""
    if not batch_ids:
        return {}
    rows = await conn.fetch(
        f"{_BATCH_SELECT} WHERE session_id = $1 AND batch_id = ANY($2::text[]) "
        "ORDER BY enqueue_seq FOR UPDATE",
        session_id,
        list(batch_ids),
    )
    return {b.batch_id: b for b in _batches(rows)}


async def claim_exact_batches(
    conn: Conn,
    fence: LeaseFence,
    boundary: ClaimBoundary,
    batch_ids: Sequence[str],
    now: Now,
) -> QueuedWorkClaim | None:
    """Claim exactly ``batch_ids`` if they form a valid claim; ``None`` otherwise."""
    sid = fence.session_id
    _, now_ms = await require_fence(conn, fence, sid, now)
    found = await lock_queued_rows(conn, sid, list(dict.fromkeys(batch_ids)))
    candidates = _logic.ready_queued_candidates(found.values(), fence.fencing_token, now_ms)
    picked = _logic.select_exact_batches(candidates, boundary, batch_ids)
    return await _claim_batches(conn, picked or [], fence, now_ms)


async def abandon_queued_work_claim(
    conn: Conn, session_id: str, claim_id: str, lease_token: str
) -> None:
    """Clear the claim columns of rows still held by ``claim_id`` + ``lease_token``."""
    await conn.execute(
        "UPDATE lash_queued_batches SET claim_id = NULL, claim_owner_id = NULL, "
        "claim_token = NULL, claim_generation = NULL "
        "WHERE session_id = $1 AND claim_id = $2 AND claim_token = $3",
        session_id,
        claim_id,
        lease_token,
    )


async def cancel_queued_work_batch(
    conn: Conn, session_id: str, batch_id: str, now_ms: int
) -> QueuedWorkBatch | None:
    """Delete and return the batch unless it is missing or live-claimed."""
    found = await lock_queued_rows(conn, session_id, [batch_id])
    batch = found.get(batch_id)
    if batch is None:
        return None
    if _logic.claim_is_live(batch.claim, await current_lease(conn, session_id), now_ms):
        return None
    await conn.execute("DELETE FROM lash_queued_batches WHERE enqueue_seq = $1", batch.enqueue_seq)
    return batch
