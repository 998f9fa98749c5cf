"""The session store contract: every facet the runtime persists through, behind one protocol.

A store holds many sessions (keyed by session id). Every method that writes under a lease
takes the caller's :class:`~lash.types.LeaseFence` and validates it *in the same transaction*;
failures are :class:`~lash.errors.StoreError` with a stable :class:`~lash.errors.StoreErrorKind`.
The conformance kit in :mod:`lash.testing.conformance` is the executable form of this contract.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from lash.types import (
    AttachmentRef,
    CancelOutcome,
    CancelTarget,
    CheckpointKind,
    ClaimBoundary,
    LeaseClaim,
    LeaseFence,
    LeaseOwner,
    PendingTurnInput,
    PendingTurnInputDraft,
    PersistedSession,
    QueuedWorkBatch,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    RuntimeCommit,
    RuntimeCommitResult,
    SessionLease,
    SessionMeta,
    SessionNode,
    SuffixCancelResult,
    TurnInputClaim,
    VacuumReport,
)
from lash.types._base import Record

__all__ = [
    "AttachmentStore",
    "BlobInfo",
    "MAX_CLAIM_BATCHES",
    "ProcessEnvStore",
    "SweepReport",
    "MAX_CLAIM_INPUTS",
    "CLAIM_SCAN_SURPLUS",
    "DurabilityTier",
    "SessionStore",
]

MAX_CLAIM_INPUTS = 64
MAX_CLAIM_BATCHES = 64
CLAIM_SCAN_SURPLUS = 32


class DurabilityTier(enum.Enum):
    """Whether a facet survives the process."""

    EPHEMERAL = "ephemeral"
    DURABLE = "durable"


@runtime_checkable
class SessionStore(Protocol):
    """Committed session state, the session execution lease, and ingress."""

    @property
    def tier(self) -> DurabilityTier:
        """Declared durability of this store."""
        ...

    # --- sessions and commits ------------------------------------------------------------

    async def load_session(
        self, session_id: str, *, active_path_only: bool = False, leaf_node_id: str | None = None
    ) -> PersistedSession | None:
        """The committed session, or ``None`` if it was never committed.

        ``active_path_only`` loads only the ancestry of ``leaf_node_id`` (default: the
        persisted leaf). Tombstoned nodes are never returned.
        """
        ...

    async def load_node(self, session_id: str, node_id: str) -> SessionNode | None:
        """One node, or ``None`` (unknown or tombstoned)."""
        ...

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        """Apply one commit atomically (see persistence.md §3.2 for the exact order)."""
        ...

    async def save_session_meta(self, meta: SessionMeta) -> None:
        """Create or replace session metadata."""
        ...

    async def load_session_meta(self, session_id: str) -> SessionMeta | None:
        """Session metadata, if any."""
        ...

    async def list_sessions(self) -> list[SessionMeta]:
        """Every session with metadata or a commit, by session id."""
        ...

    async def delete_session(self, session_id: str) -> None:
        """Remove every trace of a session (idempotent; the lease fencing restarts at 1)."""
        ...

    # --- session execution lease ---------------------------------------------------------

    async def try_claim_lease(self, session_id: str, owner: LeaseOwner, ttl_ms: int) -> LeaseClaim:
        """Acquire, re-enter (same incarnation: same tokens), or report ``busy``."""
        ...

    async def reclaim_lease(
        self, session_id: str, owner: LeaseOwner, observed: LeaseFence, ttl_ms: int
    ) -> LeaseClaim:
        """Take over from a holder proven dead, only if it is still exactly ``observed``."""
        ...

    async def renew_lease(self, fence: LeaseFence, ttl_ms: int) -> SessionLease:
        """Extend a live lease; stale fences fail with ``session_execution_lease_expired``."""
        ...

    async def release_lease(self, fence: LeaseFence) -> None:
        """Release if ``fence`` still names the lease; otherwise a silent no-op."""
        ...

    async def get_lease(self, session_id: str) -> SessionLease | None:
        """The lease row (possibly expired or released), if any."""
        ...

    # --- pending turn input --------------------------------------------------------------

    async def enqueue_turn_input(self, draft: PendingTurnInputDraft) -> PendingTurnInput:
        """Admit input (source-key replays return the original; changed content conflicts)."""
        ...

    async def get_turn_input(self, session_id: str, input_id: str) -> PendingTurnInput | None:
        """One input row in any state."""
        ...

    async def list_pending_turn_inputs(self, session_id: str) -> list[PendingTurnInput]:
        """Non-terminal inputs without a live claim, by enqueue order."""
        ...

    async def cancel_pending_turn_inputs(
        self, session_id: str, targets: Sequence[CancelTarget]
    ) -> list[CancelOutcome]:
        """Cancel inputs atomically; one outcome per target."""
        ...

    async def cancel_pending_turn_input_suffix(
        self, session_id: str, anchor: CancelTarget
    ) -> SuffixCancelResult:
        """Cancel the anchor and every later input of the session."""
        ...

    async def claim_next_turn_inputs(
        self, fence: LeaseFence, max_inputs: int = MAX_CLAIM_INPUTS
    ) -> TurnInputClaim | None:
        """Claim deferred next-turn inputs in order under ``fence``'s generation."""
        ...

    async def claim_active_turn_inputs(
        self,
        fence: LeaseFence,
        turn_id: str,
        checkpoint: CheckpointKind,
        max_inputs: int = MAX_CLAIM_INPUTS,
    ) -> TurnInputClaim | None:
        """Claim inputs addressed to running turn ``turn_id`` that admit ``checkpoint``."""
        ...

    async def abandon_turn_input_claim(
        self, session_id: str, claim_id: str, lease_token: str
    ) -> None:
        """Hand a claim back (rows return to their pre-claim state)."""
        ...

    # --- queued work ---------------------------------------------------------------------

    async def enqueue_queued_work(self, draft: QueuedWorkBatchDraft) -> QueuedWorkBatch:
        """Enqueue a batch (a source-key replay returns the original batch unchanged)."""
        ...

    async def list_queued_work(self, session_id: str) -> list[QueuedWorkBatch]:
        """Every batch, claimed or not, by enqueue order."""
        ...

    async def list_pending_queued_work(self, session_id: str) -> list[QueuedWorkBatch]:
        """Batches without a live claim, by enqueue order."""
        ...

    async def claim_leading_session_command(self, fence: LeaseFence) -> QueuedWorkClaim | None:
        """Claim exactly one batch, only if the earliest ready batch is a session command."""
        ...

    async def claim_ready_queued_work(
        self, fence: LeaseFence, boundary: ClaimBoundary, max_batches: int = MAX_CLAIM_BATCHES
    ) -> QueuedWorkClaim | None:
        """Claim the leading turn work (join prefix or one exclusive batch)."""
        ...

    async def claim_queued_work_by_batch_ids(
        self, fence: LeaseFence, boundary: ClaimBoundary, batch_ids: Sequence[str]
    ) -> QueuedWorkClaim | None:
        """Claim exactly these batches, if they form a valid claim."""
        ...

    async def claim_checkpoint_work(
        self,
        fence: LeaseFence,
        turn_id: str,
        checkpoint: CheckpointKind,
        max_inputs: int = MAX_CLAIM_INPUTS,
        max_batches: int = MAX_CLAIM_BATCHES,
    ) -> tuple[TurnInputClaim | None, QueuedWorkClaim | None]:
        """At a checkpoint: claim admissible active input and safe-boundary turn work at once."""
        ...

    async def abandon_queued_work_claim(
        self, session_id: str, claim_id: str, lease_token: str
    ) -> None:
        """Hand a queued-work claim back."""
        ...

    async def cancel_queued_work_batch(
        self, session_id: str, batch_id: str
    ) -> QueuedWorkBatch | None:
        """Delete an unclaimed (or not live-claimed) batch; ``None`` otherwise."""
        ...

    # --- maintenance ---------------------------------------------------------------------

    async def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> None:
        """Hide nodes from every read."""
        ...

    async def vacuum(self) -> VacuumReport:
        """Physically remove tombstoned nodes and terminal input rows."""
        ...

    async def aclose(self) -> None:
        """Release resources."""
        ...


class BlobInfo(Record, frozen=True, kw_only=True):
    """A stored blob as listed by the blob store."""

    id: str
    byte_len: int
    last_modified_ms: int | None = None


class SweepReport(Record, frozen=True, kw_only=True):
    """What one unreferenced-blob sweep did."""

    scanned_blob_count: int = 0
    reclaimed_count: int = 0
    failed_ids: tuple[str, ...] = ()


@runtime_checkable
class AttachmentStore(Protocol):
    """Content-addressed blobs plus the per-session reference manifest (ADR 0028).

    A session reads a blob only if it holds a reference to it, so nobody reads another
    session's attachment by guessing its hash.
    """

    @property
    def tier(self) -> DurabilityTier:
        """Declared durability."""
        ...

    async def put(
        self,
        session_id: str,
        data: bytes,
        media_type: str,
        *,
        label: str | None = None,
        owner_turn_id: str | None = None,
    ) -> AttachmentRef:
        """Store bytes (deduplicated by hash) and record the session's reference intent."""
        ...

    async def get(self, session_id: str, attachment_id: str) -> bytes:
        """The bytes, if this session holds a reference (``not_found`` otherwise)."""
        ...

    async def holds_ref(self, session_id: str, attachment_id: str) -> bool:
        """Whether the session references the blob (intent or committed)."""
        ...

    async def commit_refs(self, session_id: str, attachment_ids: Sequence[str]) -> None:
        """Stamp existing references as committed (never creates references)."""
        ...

    async def forget(self, session_id: str, attachment_id: str) -> None:
        """Drop the session's reference (the blob stays until a sweep)."""
        ...

    async def list_blobs(self) -> list[BlobInfo]:
        """Every stored blob."""
        ...

    async def sweep_unreferenced(self, grace_ms: int = 0) -> SweepReport:
        """Delete blobs no session references (host-triggered)."""
        ...


@runtime_checkable
class ProcessEnvStore(Protocol):
    """Content-addressed process execution environments."""

    @property
    def tier(self) -> DurabilityTier:
        """Declared durability."""
        ...

    async def put_env(self, env_ref: str, data: bytes) -> None:
        """Store (overwrite) an env."""
        ...

    async def get_env(self, env_ref: str) -> bytes | None:
        """An env, if stored."""
        ...
