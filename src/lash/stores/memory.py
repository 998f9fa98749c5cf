"""In-memory store facets: ephemeral, and the strictest implementation of the contract.

Strict in two ways. Every record crossing the boundary is round-tripped through the storage
codec, so nothing a caller holds shares mutable state with the store and anything that would
not survive a real backend fails here first. And every mutation builds the new state on
copies and swaps it in at the end, so a failed call changes nothing.

The methods are ``async`` but never await in the middle of a mutation, so on one event loop
each call is atomic without a lock. The store is not thread-safe.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Sequence
from typing import TypeVar

import msgspec

from lash.clock import Clock, SystemClock
from lash.errors import StoreError, StoreErrorKind
from lash.stores import _logic as logic
from lash.stores.base import (
    MAX_CLAIM_BATCHES,
    MAX_CLAIM_INPUTS,
    BlobInfo,
    DurabilityTier,
    SweepReport,
)
from lash.types import (
    AgentFrameRecord,
    AttachmentRef,
    CancelOutcome,
    CancelTarget,
    CheckpointKind,
    ClaimBoundary,
    LeaseAcquired,
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
    SessionCheckpoint,
    SessionConfig,
    SessionLease,
    SessionMeta,
    SessionNode,
    SuffixCancelResult,
    TokenLedgerEntry,
    TurnInputClaim,
    VacuumReport,
    decode,
    encode,
)

__all__ = ["MemoryAttachmentStore", "MemoryProcessEnvStore", "MemoryStore"]

T = TypeVar("T")


def _own(value: T) -> T:
    """A private copy of ``value`` made through the storage codec.

    A value the codec cannot encode or decode back into its own type is a caller error.
    """
    try:
        copy: T = decode(encode(value), type=type(value))
    except (TypeError, ValueError, msgspec.MsgspecError) as exc:
        raise StoreError(
            StoreErrorKind.INVALID_ARGUMENT,
            f"{type(value).__name__} does not survive the storage codec: {exc}",
        ) from exc
    return copy


def _own_all(values: Iterable[T]) -> list[T]:
    return [_own(v) for v in values]


@dataclasses.dataclass(slots=True)
class _StampRow:
    turn_commit_hash: str
    result: RuntimeCommitResult


@dataclasses.dataclass(slots=True)
class _Session:
    """Everything stored for one session. Records are immutable; containers are copied."""

    committed: bool = False
    head_revision: int = 0
    created_at_ms: int = 0
    nodes: dict[str, SessionNode] = dataclasses.field(default_factory=dict)
    tombstoned: set[str] = dataclasses.field(default_factory=set)
    leaf_node_id: str | None = None
    checkpoint: SessionCheckpoint = dataclasses.field(default_factory=SessionCheckpoint)
    config: SessionConfig = dataclasses.field(default_factory=SessionConfig)
    agent_frames: tuple[AgentFrameRecord, ...] = ()
    current_agent_frame_id: str | None = None
    ledger: list[TokenLedgerEntry] = dataclasses.field(default_factory=list)
    stamps: dict[str, _StampRow] = dataclasses.field(default_factory=dict)
    meta: SessionMeta | None = None
    lease: SessionLease | None = None
    inputs: dict[str, PendingTurnInput] = dataclasses.field(default_factory=dict)
    batches: dict[str, QueuedWorkBatch] = dataclasses.field(default_factory=dict)

    def copy(self) -> _Session:
        """A copy whose containers can be mutated without touching ``self``."""
        return dataclasses.replace(
            self,
            nodes=dict(self.nodes),
            tombstoned=set(self.tombstoned),
            ledger=list(self.ledger),
            stamps=dict(self.stamps),
            inputs=dict(self.inputs),
            batches=dict(self.batches),
        )

    def visible_nodes(self) -> dict[str, SessionNode]:
        return {k: n for k, n in self.nodes.items() if k not in self.tombstoned}


class MemoryStore:
    """A :class:`~lash.stores.base.SessionStore` held in process memory (tier ``ephemeral``).

    Pass ``attachments`` to let commits stamp attachment references as committed and
    ``delete_session`` drop the session's references.
    """

    def __init__(
        self, clock: Clock | None = None, *, attachments: MemoryAttachmentStore | None = None
    ) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._attachments = attachments
        self._sessions: dict[str, _Session] = {}
        self._seq = 0

    @property
    def tier(self) -> DurabilityTier:
        """Memory never survives the process."""
        return DurabilityTier.EPHEMERAL

    # --- helpers -------------------------------------------------------------------------

    def _now(self) -> int:
        return self._clock.now_ms()

    def _session(self, session_id: str) -> _Session:
        """The session's state, created empty (not stored) if unknown."""
        return self._sessions.get(session_id) or _Session(created_at_ms=self._now())

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _check_session_id(session_id: str) -> None:
        if not session_id:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "session id must be non-empty")

    def _fenced_session(self, fence: LeaseFence, now: int) -> _Session:
        sess = self._session(fence.session_id)
        logic.require_live_fence(sess.lease, fence, now, fence.session_id)
        return sess

    # --- sessions and commits ------------------------------------------------------------

    async def load_session(
        self, session_id: str, *, active_path_only: bool = False, leaf_node_id: str | None = None
    ) -> PersistedSession | None:
        """The committed session, or ``None``; see :class:`SessionStore`."""
        sess = self._sessions.get(session_id)
        if sess is None or not sess.committed:
            return None
        visible = sess.visible_nodes()
        if active_path_only:
            leaf = leaf_node_id if leaf_node_id is not None else sess.leaf_node_id
            nodes = logic.ancestry(visible, leaf)
        else:
            nodes = list(visible.values())
        return _own(
            PersistedSession(
                session_id=session_id,
                head_revision=sess.head_revision,
                nodes=tuple(nodes),
                leaf_node_id=sess.leaf_node_id,
                checkpoint=sess.checkpoint,
                config=sess.config,
                agent_frames=sess.agent_frames,
                current_agent_frame_id=sess.current_agent_frame_id,
                token_ledger=logic.merged_token_ledger(sess.ledger),
            )
        )

    async def load_node(self, session_id: str, node_id: str) -> SessionNode | None:
        """One visible node, or ``None``."""
        sess = self._sessions.get(session_id)
        if sess is None or node_id in sess.tombstoned:
            return None
        node = sess.nodes.get(node_id)
        return _own(node) if node is not None else None

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        """Apply one commit atomically, in the order of persistence.md §3.2."""
        c = _own(commit)
        self._check_session_id(c.session_id)
        now = self._now()
        # 1. binding
        logic.check_commit_binding(c)
        current = self._sessions.get(c.session_id)
        # 2. idempotent replay, before the lease check
        stamp = c.turn_commit
        if stamp is not None:
            stored = current.stamps.get(stamp.turn_id) if current is not None else None
            if logic.turn_replay_decision(c, stored.turn_commit_hash if stored else None):
                assert stored is not None and current is not None
                if c.release_lease and c.lease is not None:
                    released = logic.decide_release(current.lease, c.lease)
                    if released is not None:
                        current.lease = released
                return _own(msgspec.structs.replace(stored.result, replayed=True))
        # 3. fence
        lease = current.lease if current is not None else None
        logic.require_live_fence(lease, c.lease, now, c.session_id)
        assert current is not None  # a live lease implies a session entry
        # 4. head CAS
        logic.check_head_revision(c.expected_head_revision, current.head_revision)
        new = current.copy()
        # 5. claim settlement
        for qc in c.completed_queue_claims:
            owned = {k: b.claim for k, b in new.batches.items()}
            if not logic.completion_owns_rows(qc.claim_id, qc.lease_token, qc.batch_ids, owned):
                raise StoreError(
                    StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED,
                    f"queued-work claim {qc.claim_id!r} no longer owns {list(qc.batch_ids)}",
                    claim_id=qc.claim_id,
                )
            for batch_id in qc.batch_ids:
                del new.batches[batch_id]
        for tc in c.completed_turn_input_claims:
            owned = {k: r.claim for k, r in new.inputs.items()}
            if not logic.completion_owns_rows(tc.claim_id, tc.lease_token, tc.input_ids, owned):
                raise StoreError(
                    StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED,
                    f"turn-input claim {tc.claim_id!r} no longer owns {list(tc.input_ids)}",
                    claim_id=tc.claim_id,
                )
            for input_id in tc.input_ids:
                new.inputs[input_id] = logic.completed_turn_input(new.inputs[input_id])
        # 6. defer the interrupted turn's unaccepted active input
        interrupted = c.interrupted_turn_input_turn_id
        if interrupted is not None:
            for input_id, row in list(new.inputs.items()):
                if (
                    row.state == "pending_active"
                    and row.ingress.kind == "active_turn"
                    and row.ingress.turn_id == interrupted
                ):
                    new.inputs[input_id] = logic.deferred_turn_input(row)
        # 7. graph delta
        nodes, replace_all, leaf = logic.resolve_graph_delta(
            c.graph, new.nodes.keys(), new.leaf_node_id
        )
        if replace_all:
            new.nodes = {}
            new.tombstoned = set()
        for node in nodes:
            new.nodes[node.node_id] = node
        new.leaf_node_id = leaf
        # 8-9. usage, checkpoint, head
        new.ledger.extend(c.usage_deltas)
        new.checkpoint = c.checkpoint
        new.config = c.config
        new.agent_frames = c.agent_frames
        new.current_agent_frame_id = c.current_agent_frame_id
        new.head_revision = current.head_revision + 1
        new.committed = True
        # 10. outbox (deduplicated by source key)
        seq = self._seq
        enqueued: list[QueuedWorkBatch] = []
        for draft in c.enqueued_queue_batches:
            existing = self._batch_by_source_key(new, draft.source_key)
            if existing is not None:
                enqueued.append(existing)
                continue
            seq += 1
            batch = logic.build_queued_batch(
                draft,
                logic.derive_batch_id(c.session_id, draft.source_key, now, seq),
                seq,
                now,
            )
            new.batches[batch.batch_id] = batch
            enqueued.append(batch)
        result = RuntimeCommitResult(
            head_revision=new.head_revision, enqueued_queue_batches=tuple(enqueued), result=c.result
        )
        # 11. stamp
        if stamp is not None:
            new.stamps[stamp.turn_id] = _StampRow(stamp.turn_commit_hash, result)
        # 12. fenced release
        if c.release_lease and c.lease is not None:
            released = logic.decide_release(new.lease, c.lease)
            if released is not None:
                new.lease = released
        # swap
        self._seq = seq
        self._sessions[c.session_id] = new
        if self._attachments is not None:
            self._attachments._stamp_committed(
                c.session_id, c.committed_attachment_ids, stamp.turn_id if stamp else None, now
            )
        return _own(result)

    @staticmethod
    def _batch_by_source_key(sess: _Session, source_key: str | None) -> QueuedWorkBatch | None:
        if source_key is None:
            return None
        for batch in sess.batches.values():
            if batch.source_key == source_key:
                return batch
        return None

    async def save_session_meta(self, meta: SessionMeta) -> None:
        """Create or replace the session's metadata."""
        m = _own(meta)
        self._check_session_id(m.session_id)
        sess = self._session(m.session_id)
        sess.meta = m
        self._sessions[m.session_id] = sess

    async def load_session_meta(self, session_id: str) -> SessionMeta | None:
        """The session's metadata, if saved."""
        sess = self._sessions.get(session_id)
        return _own(sess.meta) if sess is not None and sess.meta is not None else None

    async def list_sessions(self) -> list[SessionMeta]:
        """Sessions with metadata or a commit, by id (committed ones without metadata get a
        minimal record)."""
        out: list[SessionMeta] = []
        for session_id in sorted(self._sessions):
            sess = self._sessions[session_id]
            if sess.meta is not None:
                out.append(_own(sess.meta))
            elif sess.committed:
                out.append(SessionMeta(session_id=session_id, created_at_ms=sess.created_at_ms))
        return out

    async def delete_session(self, session_id: str) -> None:
        """Forget the session entirely, lease row included (idempotent)."""
        self._sessions.pop(session_id, None)
        if self._attachments is not None:
            self._attachments._drop_session(session_id)

    # --- session execution lease ---------------------------------------------------------

    async def try_claim_lease(self, session_id: str, owner: LeaseOwner, ttl_ms: int) -> LeaseClaim:
        """Acquire, re-enter or report busy."""
        self._check_session_id(session_id)
        owner = _own(owner)
        sess = self._session(session_id)
        claim = logic.decide_try_claim(sess.lease, session_id, owner, ttl_ms, self._now())
        return self._store_lease_claim(session_id, sess, claim)

    async def reclaim_lease(
        self, session_id: str, owner: LeaseOwner, observed: LeaseFence, ttl_ms: int
    ) -> LeaseClaim:
        """Take over from a holder proven dead (only if it is still ``observed``)."""
        self._check_session_id(session_id)
        owner, observed = _own(owner), _own(observed)
        sess = self._session(session_id)
        claim = logic.decide_reclaim(sess.lease, session_id, owner, observed, ttl_ms, self._now())
        return self._store_lease_claim(session_id, sess, claim)

    def _store_lease_claim(self, session_id: str, sess: _Session, claim: LeaseClaim) -> LeaseClaim:
        if isinstance(claim, LeaseAcquired):
            sess.lease = claim.lease
            self._sessions[session_id] = sess
        return _own(claim)

    async def renew_lease(self, fence: LeaseFence, ttl_ms: int) -> SessionLease:
        """Extend a live lease or fail with ``session_execution_lease_expired``."""
        fence = _own(fence)
        sess = self._sessions.get(fence.session_id)
        renewed = logic.decide_renew(sess.lease if sess else None, fence, ttl_ms, self._now())
        assert sess is not None
        sess.lease = renewed
        return _own(renewed)

    async def release_lease(self, fence: LeaseFence) -> None:
        """Release if ``fence`` still names the lease."""
        sess = self._sessions.get(fence.session_id)
        if sess is None:
            return
        released = logic.decide_release(sess.lease, fence)
        if released is not None:
            sess.lease = released

    async def get_lease(self, session_id: str) -> SessionLease | None:
        """The lease row, possibly expired or released."""
        sess = self._sessions.get(session_id)
        return _own(sess.lease) if sess is not None and sess.lease is not None else None

    # --- pending turn input --------------------------------------------------------------

    async def enqueue_turn_input(self, draft: PendingTurnInputDraft) -> PendingTurnInput:
        """Admit input; source-key replays return the original row, changed content
        conflicts."""
        d = _own(draft)
        logic.validate_turn_input_draft(d)
        sess = self._session(d.session_id)
        if d.source_key is not None:
            for row in sess.inputs.values():
                if row.source_key == d.source_key:
                    return _own(logic.source_key_replay(row, d))
        now = self._now()
        if d.input_id is not None:
            existing = sess.inputs.get(d.input_id)
            if existing is not None:
                if logic.same_turn_input_content(existing, d):
                    return _own(existing)
                raise StoreError(
                    StoreErrorKind.INVALID_ARGUMENT,
                    f"input id {d.input_id!r} is already used in session {d.session_id!r}",
                )
        seq = self._next_seq()
        input_id = d.input_id or logic.derive_turn_input_id(d.session_id, d.source_key, now, seq)
        row = logic.build_turn_input(d, input_id, seq, now)
        sess.inputs[input_id] = row
        self._sessions[d.session_id] = sess
        return _own(row)

    async def get_turn_input(self, session_id: str, input_id: str) -> PendingTurnInput | None:
        """One row in any state."""
        sess = self._sessions.get(session_id)
        row = sess.inputs.get(input_id) if sess is not None else None
        return _own(row) if row is not None else None

    async def list_pending_turn_inputs(self, session_id: str) -> list[PendingTurnInput]:
        """Non-terminal, unaccepted rows without a live claim, by enqueue order."""
        sess = self._sessions.get(session_id)
        if sess is None:
            return []
        now = self._now()
        rows = [
            r
            for r in sess.inputs.values()
            if r.state in ("pending_active", "deferred_next_turn")
            and not logic.claim_is_live(r.claim, sess.lease, now)
        ]
        return _own_all(sorted(rows, key=lambda r: r.enqueue_seq))

    async def cancel_pending_turn_inputs(
        self, session_id: str, targets: Sequence[CancelTarget]
    ) -> list[CancelOutcome]:
        """Cancel atomically; one outcome per target, in order."""
        targets = _own_all(targets)
        sess = self._sessions.get(session_id)
        inputs = dict(sess.inputs) if sess is not None else {}
        lease = sess.lease if sess is not None else None
        now = self._now()
        outcomes: list[CancelOutcome] = []
        for target in targets:
            row = logic.find_turn_input(inputs.values(), target)
            outcome, changed = logic.cancel_turn_input(row, target, lease, now)
            if changed is not None:
                inputs[changed.input_id] = changed
            outcomes.append(outcome)
        if sess is not None:
            sess.inputs = inputs
        return _own_all(outcomes)

    async def cancel_pending_turn_input_suffix(
        self, session_id: str, anchor: CancelTarget
    ) -> SuffixCancelResult:
        """Cancel the anchor and every later input of the session."""
        anchor = _own(anchor)
        sess = self._sessions.get(session_id)
        rows = sess.inputs if sess is not None else {}
        anchor_row = logic.find_turn_input(rows.values(), anchor)
        if sess is None or anchor_row is None:
            return SuffixCancelResult(anchor_found=False)
        inputs = dict(sess.inputs)
        now = self._now()
        outcomes: list[CancelOutcome] = []
        suffix = sorted(
            (r for r in inputs.values() if r.enqueue_seq >= anchor_row.enqueue_seq),
            key=lambda r: r.enqueue_seq,
        )
        for row in suffix:
            target = CancelTarget(input_id=row.input_id)
            outcome, changed = logic.cancel_turn_input(row, target, sess.lease, now)
            if changed is not None:
                inputs[changed.input_id] = changed
            outcomes.append(outcome)
        sess.inputs = inputs
        return _own(SuffixCancelResult(anchor_found=True, outcomes=tuple(outcomes)))

    def _store_input_claim(self, sess: _Session, claim: TurnInputClaim) -> TurnInputClaim:
        for row in claim.inputs:
            sess.inputs[row.input_id] = row
        return _own(claim)

    async def claim_next_turn_inputs(
        self, fence: LeaseFence, max_inputs: int = MAX_CLAIM_INPUTS
    ) -> TurnInputClaim | None:
        """Claim deferred next-turn input in order under the fence's generation."""
        fence = _own(fence)
        now = self._now()
        sess = self._fenced_session(fence, now)
        candidates = logic.next_turn_input_candidates(sess.inputs.values(), fence.fencing_token)
        rows = logic.select_turn_inputs(candidates, max_inputs)
        if not rows:
            return None
        claim = logic.build_turn_input_claim(rows, fence, now, active=False)
        return self._store_input_claim(sess, claim)

    async def claim_active_turn_inputs(
        self,
        fence: LeaseFence,
        turn_id: str,
        checkpoint: CheckpointKind,
        max_inputs: int = MAX_CLAIM_INPUTS,
    ) -> TurnInputClaim | None:
        """Claim input addressed to ``turn_id`` that admits ``checkpoint``."""
        fence = _own(fence)
        now = self._now()
        sess = self._fenced_session(fence, now)
        return self._claim_active(sess, fence, turn_id, checkpoint, max_inputs, now)

    def _claim_active(
        self,
        sess: _Session,
        fence: LeaseFence,
        turn_id: str,
        checkpoint: CheckpointKind,
        max_inputs: int,
        now: int,
    ) -> TurnInputClaim | None:
        candidates = logic.active_turn_input_candidates(
            sess.inputs.values(), fence.fencing_token, turn_id, checkpoint
        )
        rows = logic.select_turn_inputs(candidates, max_inputs)
        if not rows:
            return None
        claim = logic.build_turn_input_claim(rows, fence, now, active=True)
        return self._store_input_claim(sess, claim)

    async def abandon_turn_input_claim(
        self, session_id: str, claim_id: str, lease_token: str
    ) -> None:
        """Hand the claim's rows back."""
        sess = self._sessions.get(session_id)
        if sess is None:
            return
        for input_id, row in list(sess.inputs.items()):
            if (
                row.claim is not None
                and row.claim.claim_id == claim_id
                and row.claim.lease_token == lease_token
            ):
                sess.inputs[input_id] = logic.unclaimed_turn_input(row)

    # --- queued work ---------------------------------------------------------------------

    async def enqueue_queued_work(self, draft: QueuedWorkBatchDraft) -> QueuedWorkBatch:
        """Enqueue a batch; a source-key replay returns the stored batch unchanged."""
        d = _own(draft)
        logic.validate_queued_work_draft(d)
        sess = self._session(d.session_id)
        existing = self._batch_by_source_key(sess, d.source_key)
        if existing is not None:
            return _own(existing)
        now = self._now()
        seq = self._next_seq()
        batch_id = logic.derive_batch_id(d.session_id, d.source_key, now, seq)
        batch = logic.build_queued_batch(d, batch_id, seq, now)
        sess.batches[batch_id] = batch
        self._sessions[d.session_id] = sess
        return _own(batch)

    async def list_queued_work(self, session_id: str) -> list[QueuedWorkBatch]:
        """Every batch, claimed or not, by enqueue order."""
        sess = self._sessions.get(session_id)
        if sess is None:
            return []
        return _own_all(sorted(sess.batches.values(), key=lambda b: b.enqueue_seq))

    async def list_pending_queued_work(self, session_id: str) -> list[QueuedWorkBatch]:
        """Batches without a live claim, by enqueue order."""
        sess = self._sessions.get(session_id)
        if sess is None:
            return []
        now = self._now()
        rows = [
            b for b in sess.batches.values() if not logic.claim_is_live(b.claim, sess.lease, now)
        ]
        return _own_all(sorted(rows, key=lambda b: b.enqueue_seq))

    def _queue_candidates(
        self, sess: _Session, fence: LeaseFence, now: int
    ) -> list[QueuedWorkBatch]:
        return logic.ready_queued_candidates(sess.batches.values(), fence.fencing_token, now)

    def _store_queue_claim(
        self, sess: _Session, fence: LeaseFence, batches: Sequence[QueuedWorkBatch], now: int
    ) -> QueuedWorkClaim | None:
        if not batches:
            return None
        claim = logic.build_queued_work_claim(batches, fence, now)
        for batch in claim.batches:
            sess.batches[batch.batch_id] = batch
        return _own(claim)

    async def claim_leading_session_command(self, fence: LeaseFence) -> QueuedWorkClaim | None:
        """Claim one batch, only if the earliest ready batch is a session command."""
        fence = _own(fence)
        now = self._now()
        sess = self._fenced_session(fence, now)
        head = logic.select_leading_session_command(self._queue_candidates(sess, fence, now))
        return self._store_queue_claim(sess, fence, [head] if head else [], now)

    async def claim_ready_queued_work(
        self, fence: LeaseFence, boundary: ClaimBoundary, max_batches: int = MAX_CLAIM_BATCHES
    ) -> QueuedWorkClaim | None:
        """Claim the leading turn work."""
        fence = _own(fence)
        now = self._now()
        sess = self._fenced_session(fence, now)
        picked = logic.select_turn_work_prefix(
            self._queue_candidates(sess, fence, now), boundary, max_batches
        )
        return self._store_queue_claim(sess, fence, picked, now)

    async def claim_queued_work_by_batch_ids(
        self, fence: LeaseFence, boundary: ClaimBoundary, batch_ids: Sequence[str]
    ) -> QueuedWorkClaim | None:
        """Claim exactly ``batch_ids`` if they form a valid claim."""
        fence = _own(fence)
        now = self._now()
        sess = self._fenced_session(fence, now)
        picked = logic.select_exact_batches(
            self._queue_candidates(sess, fence, now), boundary, list(batch_ids)
        )
        return self._store_queue_claim(sess, fence, picked or [], now)

    async def claim_checkpoint_work(
        self,
        fence: LeaseFence,
        turn_id: str,
        checkpoint: CheckpointKind,
        max_inputs: int = MAX_CLAIM_INPUTS,
        max_batches: int = MAX_CLAIM_BATCHES,
    ) -> tuple[TurnInputClaim | None, QueuedWorkClaim | None]:
        """Probe first; only with admissible work validate the fence and claim both
        families."""
        fence = _own(fence)
        now = self._now()
        sess = self._sessions.get(fence.session_id)
        if sess is None:
            return None, None
        inputs = logic.active_turn_input_candidates(
            sess.inputs.values(), fence.fencing_token, turn_id, checkpoint
        )
        queue = logic.select_turn_work_prefix(
            self._queue_candidates(sess, fence, now), "active_turn_checkpoint", max_batches
        )
        if not logic.select_turn_inputs(inputs, max_inputs) and not queue:
            return None, None
        logic.require_live_fence(sess.lease, fence, now, fence.session_id)
        input_claim = self._claim_active(sess, fence, turn_id, checkpoint, max_inputs, now)
        return input_claim, self._store_queue_claim(sess, fence, queue, now)

    async def abandon_queued_work_claim(
        self, session_id: str, claim_id: str, lease_token: str
    ) -> None:
        """Clear the claim from its batches."""
        sess = self._sessions.get(session_id)
        if sess is None:
            return
        for batch_id, batch in list(sess.batches.items()):
            if (
                batch.claim is not None
                and batch.claim.claim_id == claim_id
                and batch.claim.lease_token == lease_token
            ):
                sess.batches[batch_id] = msgspec.structs.replace(batch, claim=None)

    async def cancel_queued_work_batch(
        self, session_id: str, batch_id: str
    ) -> QueuedWorkBatch | None:
        """Delete a batch unless it is missing or live-claimed."""
        sess = self._sessions.get(session_id)
        batch = sess.batches.get(batch_id) if sess is not None else None
        if sess is None or batch is None:
            return None
        if logic.claim_is_live(batch.claim, sess.lease, self._now()):
            return None
        del sess.batches[batch_id]
        return _own(batch)

    # --- maintenance ---------------------------------------------------------------------

    async def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> None:
        """Hide existing nodes from every read (unknown ids are ignored)."""
        sess = self._sessions.get(session_id)
        if sess is None:
            return
        sess.tombstoned |= {i for i in node_ids if i in sess.nodes}

    async def vacuum(self) -> VacuumReport:
        """Remove tombstoned nodes and terminal input rows, counting only this call's work."""
        nodes_removed = inputs_removed = 0
        for sess in self._sessions.values():
            for node_id in sess.tombstoned:
                if sess.nodes.pop(node_id, None) is not None:
                    nodes_removed += 1
            sess.tombstoned = set()
            terminal = [k for k, r in sess.inputs.items() if r.is_terminal]
            for input_id in terminal:
                del sess.inputs[input_id]
            inputs_removed += len(terminal)
        return VacuumReport(
            removed_node_count=nodes_removed,
            removed_pending_turn_input_tombstone_count=inputs_removed,
        )

    async def aclose(self) -> None:
        """Nothing to release."""


# --- attachments -----------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Blob:
    data: bytes
    last_modified_ms: int


@dataclasses.dataclass(slots=True)
class _Ref:
    intent_at_ms: int
    committed_at_ms: int | None = None
    owner_turn_id: str | None = None


class MemoryAttachmentStore:
    """Content-addressed blobs plus a per-session reference manifest, in memory.

    A session reads only blobs it references, so a guessed hash reveals nothing. ``put``
    records the reference before the bytes and refreshes the blob's timestamp on a dedup hit
    (the sweep's grace check relies on it). The sweep deletes only blobs that no session
    references and that are older than the grace period; intents are never reconciled away
    automatically (``forget`` them).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._blobs: dict[str, _Blob] = {}
        self._refs: dict[tuple[str, str], _Ref] = {}

    @property
    def tier(self) -> DurabilityTier:
        """Memory never survives the process."""
        return DurabilityTier.EPHEMERAL

    async def put(
        self,
        session_id: str,
        data: bytes,
        media_type: str,
        *,
        label: str | None = None,
        owner_turn_id: str | None = None,
    ) -> AttachmentRef:
        """Store ``data`` under its SHA-256 and record the session's reference."""
        if not session_id:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "session id must be non-empty")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "attachment data must be bytes")
        payload = bytes(data)
        blob_id = hashlib.sha256(payload).hexdigest()
        now = self._clock.now_ms()
        ref = self._refs.get((session_id, blob_id))
        self._refs[(session_id, blob_id)] = _Ref(
            intent_at_ms=now,
            committed_at_ms=ref.committed_at_ms if ref is not None else None,
            owner_turn_id=owner_turn_id,
        )
        self._blobs[blob_id] = _Blob(payload, now)
        return AttachmentRef(id=blob_id, media_type=media_type, byte_len=len(payload), label=label)

    async def get(self, session_id: str, attachment_id: str) -> bytes:
        """The bytes, only for a session holding a reference."""
        blob = self._blobs.get(attachment_id)
        if (session_id, attachment_id) not in self._refs or blob is None:
            raise StoreError(
                StoreErrorKind.NOT_FOUND,
                f"attachment {attachment_id!r} is not available to session {session_id!r}",
            )
        return blob.data

    async def holds_ref(self, session_id: str, attachment_id: str) -> bool:
        """Whether the session references the blob."""
        return (session_id, attachment_id) in self._refs

    async def commit_refs(self, session_id: str, attachment_ids: Sequence[str]) -> None:
        """Stamp existing references committed (never creates one)."""
        self._stamp_committed(session_id, attachment_ids, None, self._clock.now_ms())

    def _stamp_committed(
        self, session_id: str, attachment_ids: Iterable[str], turn_id: str | None, now: int
    ) -> None:
        """Commit-time stamping: the listed ids, plus every intent owned by ``turn_id``."""
        wanted = set(attachment_ids)
        for (sid, aid), ref in self._refs.items():
            if sid != session_id or ref.committed_at_ms is not None:
                continue
            if aid in wanted or (turn_id is not None and ref.owner_turn_id == turn_id):
                ref.committed_at_ms = now

    def _drop_session(self, session_id: str) -> None:
        for key in [k for k in self._refs if k[0] == session_id]:
            del self._refs[key]

    async def forget(self, session_id: str, attachment_id: str) -> None:
        """Drop the session's reference; the blob waits for a sweep."""
        self._refs.pop((session_id, attachment_id), None)

    async def list_blobs(self) -> list[BlobInfo]:
        """Every stored blob, by id."""
        return [
            BlobInfo(id=k, byte_len=len(b.data), last_modified_ms=b.last_modified_ms)
            for k, b in sorted(self._blobs.items())
        ]

    async def sweep_unreferenced(self, grace_ms: int = 0) -> SweepReport:
        """Delete unreferenced blobs last written at least ``grace_ms`` ago."""
        if grace_ms < 0:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "grace_ms must be >= 0")
        cutoff = self._clock.now_ms() - grace_ms
        referenced = {aid for (_, aid) in self._refs}
        scanned = reclaimed = 0
        for blob_id, blob in list(self._blobs.items()):
            scanned += 1
            if blob_id in referenced or blob.last_modified_ms > cutoff:
                continue
            del self._blobs[blob_id]
            reclaimed += 1
        return SweepReport(scanned_blob_count=scanned, reclaimed_count=reclaimed)


class MemoryProcessEnvStore:
    """Process execution environments by content ref, in memory."""

    def __init__(self) -> None:
        self._envs: dict[str, bytes] = {}

    @property
    def tier(self) -> DurabilityTier:
        """Memory never survives the process."""
        return DurabilityTier.EPHEMERAL

    async def put_env(self, env_ref: str, data: bytes) -> None:
        """Store or overwrite an env."""
        if not env_ref:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "env ref must be non-empty")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "env data must be bytes")
        self._envs[env_ref] = bytes(data)

    async def get_env(self, env_ref: str) -> bytes | None:
        """The env, if stored."""
        return self._envs.get(env_ref)
