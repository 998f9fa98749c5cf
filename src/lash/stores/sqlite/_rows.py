"""Row <-> record conversion for the SQLite tables.

Records are encoded with msgspec (compact JSON, the project's one codec); the columns the
SQL filters on (state, ingress, claim generation, availability) are stored unpacked beside
the JSON so the claim and listing queries run in SQL.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import msgspec

from lash.errors import StoreError, StoreErrorKind
from lash.types import (
    AgentFrameRecord,
    ClaimInfo,
    LeaseOwner,
    LocalProcessLiveness,
    MergeKey,
    PendingTurnInput,
    QueuedWorkBatch,
    QueuedWorkItem,
    SessionCheckpoint,
    SessionConfig,
    SessionLease,
    SessionMeta,
    SessionNode,
    TurnInput,
    TurnInputIngress,
)

__all__ = [
    "BATCH_COLUMNS",
    "INPUT_COLUMNS",
    "LEASE_COLUMNS",
    "batch_from_row",
    "claim_columns",
    "dec_checkpoint",
    "dec_config",
    "dec_frames",
    "dec_meta",
    "dec_node",
    "enc",
    "input_from_row",
    "lease_from_row",
]

_encode = msgspec.json.Encoder().encode


def enc(value: Any) -> bytes:
    """Encode for storage; a value the codec cannot store is the caller's error."""
    try:
        return _encode(value)
    except (TypeError, ValueError, msgspec.MsgspecError) as exc:
        raise StoreError(
            StoreErrorKind.INVALID_ARGUMENT,
            f"{type(value).__name__} does not survive the storage codec: {exc}",
        ) from exc


dec_node = msgspec.json.Decoder(SessionNode).decode
dec_checkpoint = msgspec.json.Decoder(SessionCheckpoint).decode
dec_config = msgspec.json.Decoder(SessionConfig).decode
dec_frames = msgspec.json.Decoder(tuple[AgentFrameRecord, ...]).decode
dec_meta = msgspec.json.Decoder(SessionMeta).decode
_dec_liveness = msgspec.json.Decoder(LocalProcessLiveness).decode
_dec_input = msgspec.json.Decoder(TurnInput).decode
_dec_items = msgspec.json.Decoder(tuple[QueuedWorkItem, ...]).decode
_dec_merge_key = msgspec.json.Decoder(MergeKey).decode

LEASE_COLUMNS = (
    "session_id, owner_id, incarnation_id, liveness_json, lease_token, fencing_token, "
    "claimed_at_ms, expires_at_ms"
)


def lease_from_row(row: sqlite3.Row | tuple[Any, ...] | None) -> SessionLease | None:
    """A :class:`SessionLease` from a ``LEASE_COLUMNS`` row."""
    if row is None:
        return None
    sid, owner_id, incarnation, liveness, token, fencing, claimed, expires = row
    return SessionLease(
        session_id=sid,
        owner=LeaseOwner(
            owner_id=owner_id or "",
            incarnation_id=incarnation or "",
            liveness=_dec_liveness(liveness) if liveness is not None else None,
        ),
        lease_token=token or "",
        fencing_token=int(fencing),
        claimed_at_ms=int(claimed or 0),
        expires_at_ms=int(expires or 0),
    )


def claim_columns(claim: ClaimInfo | None) -> tuple[str | None, str | None, str | None, int | None]:
    """``(claim_id, claim_owner_id, claim_token, claim_generation)`` of a claim."""
    if claim is None:
        return None, None, None, None
    return claim.claim_id, claim.owner_id, claim.lease_token, claim.session_lease_generation


def _claim(
    claim_id: str | None, owner_id: str | None, token: str | None, generation: int | None
) -> ClaimInfo | None:
    if claim_id is None or token is None:
        return None
    return ClaimInfo(
        claim_id=claim_id,
        lease_token=token,
        owner_id=owner_id or "",
        session_lease_generation=int(generation or 0),
    )


INPUT_COLUMNS = (
    "enqueue_seq, session_id, input_id, source_key, ingress_kind, ingress_turn_id, "
    "min_boundary, state, enqueued_at_ms, input_json, claim_id, claim_owner_id, claim_token, "
    "claim_generation, claim_fencing_token"
)


def input_from_row(row: tuple[Any, ...]) -> PendingTurnInput:
    """A :class:`PendingTurnInput` from an ``INPUT_COLUMNS`` row."""
    (
        seq,
        sid,
        input_id,
        source_key,
        kind,
        turn_id,
        min_boundary,
        state,
        enqueued_at,
        input_json,
        claim_id,
        claim_owner,
        claim_token,
        claim_generation,
        claim_fencing,
    ) = row
    return PendingTurnInput(
        input_id=input_id,
        session_id=sid,
        enqueue_seq=int(seq),
        ingress=TurnInputIngress(kind=kind, turn_id=turn_id, min_boundary=min_boundary),
        state=state,
        enqueued_at_ms=int(enqueued_at),
        input=_dec_input(input_json),
        source_key=source_key,
        claim=_claim(claim_id, claim_owner, claim_token, claim_generation),
        claim_fencing_token=int(claim_fencing),
    )


BATCH_COLUMNS = (
    "enqueue_seq, session_id, batch_id, source_key, delivery_policy, slot_policy, "
    "merge_key_json, available_at_ms, enqueued_at_ms, items_json, claim_id, claim_owner_id, "
    "claim_token, claim_generation, claim_fencing_token"
)


def batch_from_row(row: tuple[Any, ...]) -> QueuedWorkBatch:
    """A :class:`QueuedWorkBatch` from a ``BATCH_COLUMNS`` row."""
    (
        seq,
        sid,
        batch_id,
        source_key,
        delivery,
        slot,
        merge_key,
        available_at,
        enqueued_at,
        items,
        claim_id,
        claim_owner,
        claim_token,
        claim_generation,
        claim_fencing,
    ) = row
    return QueuedWorkBatch(
        batch_id=batch_id,
        session_id=sid,
        enqueue_seq=int(seq),
        items=_dec_items(items),
        delivery_policy=delivery,
        slot_policy=slot,
        merge_key=_dec_merge_key(merge_key),
        available_at_ms=int(available_at),
        enqueued_at_ms=int(enqueued_at),
        source_key=source_key,
        claim=_claim(claim_id, claim_owner, claim_token, claim_generation),
        claim_fencing_token=int(claim_fencing),
    )
