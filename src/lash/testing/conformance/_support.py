"""Small builders and assertions the conformance suites share."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from lash.errors import StoreError, StoreErrorKind
from lash.stores.base import SessionStore
from lash.types import (
    AgentFrameRecord,
    CheckpointKind,
    GraphAppend,
    GraphDelta,
    GraphUnchanged,
    LeaseAcquired,
    LeaseBusy,
    LeaseClaim,
    LeaseFence,
    LeaseOwner,
    MergeKey,
    Message,
    MessagePayload,
    PendingTurnInputDraft,
    ProcessWake,
    QueueClaimCompletion,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    RuntimeCommit,
    SessionCheckpoint,
    SessionCommand,
    SessionNode,
    TextPart,
    TokenLedgerEntry,
    TurnInput,
    TurnInputClaim,
    TurnInputClaimCompletion,
    TurnInputIngress,
)

__all__ = [
    "TTL_MS",
    "acquired",
    "busy",
    "checkpoint",
    "command_batch",
    "commit",
    "expect_error",
    "input_draft",
    "lease",
    "message_node",
    "owner",
    "queue_done",
    "inputs_done",
    "wake_batch",
]

T = TypeVar("T")

TTL_MS = 30_000
"""The lease TTL cases use unless they test expiry."""


def owner(name: str, incarnation: str | None = None) -> LeaseOwner:
    """An opaque owner (never provably dead)."""
    return LeaseOwner(owner_id=name, incarnation_id=incarnation or f"{name}:incarnation")


def acquired(claim: LeaseClaim) -> LeaseFence:
    """The fence of an acquired claim; fails the case on ``busy``."""
    assert isinstance(claim, LeaseAcquired), f"expected the lease to be acquired, got {claim}"
    return claim.lease.fence()


def busy(claim: LeaseClaim) -> None:
    """Fails the case unless ``claim`` is ``busy``."""
    assert isinstance(claim, LeaseBusy), f"expected the lease to be busy, got {claim}"


async def lease(
    store: SessionStore, session_id: str, who: LeaseOwner | str = "worker", ttl_ms: int = TTL_MS
) -> LeaseFence:
    """Acquire the session lease and return its fence."""
    who = owner(who) if isinstance(who, str) else who
    return acquired(await store.try_claim_lease(session_id, who, ttl_ms))


def message_node(
    node_id: str, text: str | None = None, parent: str | None = None, *, frame: str | None = None
) -> SessionNode:
    """A user-message node."""
    msg = Message(id=f"m-{node_id}", role="user", parts=(TextPart(text=text or node_id),))
    return SessionNode(
        node_id=node_id,
        payload=MessagePayload(message=msg),
        parent_node_id=parent,
        agent_frame_id=frame,
    )


def checkpoint(turn_index: int = 0, **kwargs: Any) -> SessionCheckpoint:
    """A checkpoint with the given fields."""
    return SessionCheckpoint(turn_index=turn_index, **kwargs)


def commit(
    session_id: str,
    fence: LeaseFence | None,
    *,
    nodes: Sequence[SessionNode] = (),
    graph: GraphDelta | None = None,
    expected: int | None = None,
    turn_index: int = 0,
    ckpt: SessionCheckpoint | None = None,
    usage: Sequence[TokenLedgerEntry] = (),
    queue: Sequence[QueuedWorkClaim] = (),
    inputs: Sequence[TurnInputClaim] = (),
    outbox: Sequence[QueuedWorkBatchDraft] = (),
    interrupted: str | None = None,
    release: bool = False,
    frames: Sequence[AgentFrameRecord] = (),
    current_frame: str | None = None,
    turn_id: str | None = None,
    result: Any = None,
) -> RuntimeCommit:
    """A commit; ``turn_id`` stamps it as a final turn commit."""
    if graph is None:
        graph = GraphAppend(nodes=tuple(nodes)) if nodes else GraphUnchanged()
    c = RuntimeCommit(
        session_id=session_id,
        graph=graph,
        checkpoint=ckpt if ckpt is not None else checkpoint(turn_index),
        expected_head_revision=expected,
        lease=fence,
        release_lease=release,
        agent_frames=tuple(frames),
        current_agent_frame_id=current_frame,
        usage_deltas=tuple(usage),
        completed_queue_claims=tuple(queue_done(q) for q in queue),
        completed_turn_input_claims=tuple(inputs_done(i) for i in inputs),
        enqueued_queue_batches=tuple(outbox),
        interrupted_turn_input_turn_id=interrupted,
        result=result,
    )
    return c.stamped(turn_id) if turn_id is not None else c


def queue_done(claim: QueuedWorkClaim) -> QueueClaimCompletion:
    """The completion that settles ``claim``."""
    return QueueClaimCompletion(
        claim_id=claim.claim_id, lease_token=claim.lease_token, batch_ids=claim.batch_ids
    )


def inputs_done(claim: TurnInputClaim) -> TurnInputClaimCompletion:
    """The completion that settles ``claim``."""
    return TurnInputClaimCompletion(
        claim_id=claim.claim_id, lease_token=claim.lease_token, input_ids=claim.input_ids
    )


def input_draft(
    session_id: str,
    text: str,
    *,
    source_key: str | None = None,
    turn_id: str | None = None,
    min_boundary: CheckpointKind = "after_work",
) -> PendingTurnInputDraft:
    """Next-turn input, or active-turn input for ``turn_id``."""
    ingress = (
        TurnInputIngress.active_turn(turn_id, min_boundary)
        if turn_id is not None
        else TurnInputIngress.next_turn()
    )
    return PendingTurnInputDraft(
        session_id=session_id, input=TurnInput.text(text), ingress=ingress, source_key=source_key
    )


def wake_batch(
    session_id: str,
    tag: str,
    *,
    source_key: str | None = None,
    slot: str = "exclusive",
    delivery: str = "earliest_safe_boundary",
    merge: MergeKey | None = None,
    available_at_ms: int = 0,
) -> QueuedWorkBatchDraft:
    """A turn-work batch carrying one process wake tagged ``tag``."""
    return QueuedWorkBatchDraft(
        session_id=session_id,
        payloads=(ProcessWake(wake={"tag": tag}),),
        source_key=source_key,
        slot_policy=slot,  # type: ignore[arg-type]
        delivery_policy=delivery,  # type: ignore[arg-type]
        merge_key=merge if merge is not None else MergeKey(),
        available_at_ms=available_at_ms,
    )


def command_batch(
    session_id: str, reason: str = "", *, source_key: str | None = None
) -> QueuedWorkBatchDraft:
    """A session-command batch (refresh the tool catalog)."""
    return QueuedWorkBatchDraft(
        session_id=session_id,
        payloads=(SessionCommand(command="refresh_tool_catalog", reason=reason),),
        source_key=source_key,
        delivery_policy="after_current_turn_commit",
        slot_policy="exclusive",
    )


def wake_tag(batch: Any) -> str:
    """The tag of a :func:`wake_batch` batch."""
    payload = batch.items[0].payload
    assert isinstance(payload, ProcessWake)
    return str(payload.wake["tag"])


async def expect_error(kind: StoreErrorKind, awaitable: Awaitable[T]) -> StoreError:
    """Await and require a :class:`StoreError` of ``kind``."""
    try:
        value = await awaitable
    except StoreError as exc:
        assert exc.kind is kind, f"expected {kind.value}, got {exc.kind.value}: {exc.message}"
        return exc
    raise AssertionError(f"expected StoreError {kind.value}, got {value!r}")
