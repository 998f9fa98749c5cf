"""Ingress: Pending Turn Input (user input waiting for a turn) and Queued Work."""

from __future__ import annotations

from typing import Any, Literal

from lash.types._base import Record
from lash.types.messages import TurnInput

__all__ = [
    "AFTER_CURRENT_TURN_COMMIT",
    "EARLIEST_SAFE_BOUNDARY",
    "AgentFrameTask",
    "CancelOutcome",
    "CancelTarget",
    "CheckpointKind",
    "ClaimBoundary",
    "ClaimInfo",
    "MergeKey",
    "PendingTurnInput",
    "PendingTurnInputDraft",
    "ProcessWake",
    "QueuedPayload",
    "QueuedWorkBatch",
    "QueuedWorkBatchDraft",
    "QueuedWorkClaim",
    "QueuedWorkItem",
    "SessionCommand",
    "SuffixCancelResult",
    "TurnInputClaim",
    "TurnInputIngress",
    "TurnInputState",
    "VacuumReport",
]

CheckpointKind = Literal["after_work", "before_completion"]
ClaimBoundary = Literal["idle", "active_turn_checkpoint"]
TurnInputState = Literal[
    "pending_active", "deferred_next_turn", "accepted", "cancelled", "completed"
]
EARLIEST_SAFE_BOUNDARY = "earliest_safe_boundary"
AFTER_CURRENT_TURN_COMMIT = "after_current_turn_commit"


class TurnInputIngress(Record, frozen=True, kw_only=True):
    """Where pending input goes: the next full turn, or a running turn at a checkpoint.

    ``min_boundary`` ``after_work`` admits both checkpoint kinds; ``before_completion`` only
    the completion checkpoint.
    """

    kind: Literal["next_turn", "active_turn"] = "next_turn"
    turn_id: str | None = None
    min_boundary: CheckpointKind = "after_work"

    @classmethod
    def next_turn(cls) -> TurnInputIngress:
        """Run as the next full turn."""
        return cls()

    @classmethod
    def active_turn(
        cls, turn_id: str, min_boundary: CheckpointKind = "after_work"
    ) -> TurnInputIngress:
        """Inject into the running turn ``turn_id`` at its earliest admitting checkpoint."""
        return cls(kind="active_turn", turn_id=turn_id, min_boundary=min_boundary)

    def admits(self, checkpoint: CheckpointKind) -> bool:
        """Whether this ingress may be claimed at ``checkpoint``."""
        return self.min_boundary == "after_work" or checkpoint == "before_completion"


class ClaimInfo(Record, frozen=True, kw_only=True):
    """Who holds a row: claim id, token, and the lease generation it was taken under."""

    claim_id: str
    lease_token: str
    owner_id: str
    session_lease_generation: int


class PendingTurnInputDraft(Record, frozen=True, kw_only=True):
    """A request to admit input."""

    session_id: str
    input: TurnInput
    ingress: TurnInputIngress = TurnInputIngress()
    input_id: str | None = None
    source_key: str | None = None


class PendingTurnInput(Record, frozen=True, kw_only=True):
    """Admitted input and its state."""

    input_id: str
    session_id: str
    enqueue_seq: int
    ingress: TurnInputIngress
    state: TurnInputState
    enqueued_at_ms: int
    input: TurnInput
    source_key: str | None = None
    claim: ClaimInfo | None = None
    claim_fencing_token: int = 0

    @property
    def id(self) -> str:
        """Alias of :attr:`input_id`."""
        return self.input_id

    @property
    def is_terminal(self) -> bool:
        """Cancelled or completed (a tombstone until vacuumed)."""
        return self.state in ("cancelled", "completed")


class TurnInputClaim(Record, frozen=True, kw_only=True):
    """Inputs claimed together under one lease generation."""

    session_id: str
    claim_id: str
    lease_token: str
    session_lease_generation: int
    inputs: tuple[PendingTurnInput, ...]

    @property
    def input_ids(self) -> tuple[str, ...]:
        """Claimed ids, in order."""
        return tuple(i.input_id for i in self.inputs)


class CancelTarget(Record, frozen=True, kw_only=True):
    """An input to cancel, by id or by source key."""

    input_id: str | None = None
    source_key: str | None = None


class CancelOutcome(Record, frozen=True, kw_only=True):
    """The outcome of cancelling one input."""

    status: Literal[
        "cancelled", "already_claimed", "already_completed", "already_cancelled", "not_found"
    ]
    input: PendingTurnInput | None = None
    target: CancelTarget | None = None
    claim: ClaimInfo | None = None


class SuffixCancelResult(Record, frozen=True, kw_only=True):
    """Cancelling an anchor and every later input of the session."""

    anchor_found: bool
    outcomes: tuple[CancelOutcome, ...] = ()


class VacuumReport(Record, frozen=True, kw_only=True):
    """What one vacuum removed."""

    removed_node_count: int = 0
    removed_pending_turn_input_tombstone_count: int = 0


# --- queued work --------------------------------------------------------------------------


class ProcessWake(Record, frozen=True, kw_only=True, tag_field="type", tag="process_wake"):
    """A background process woke the session (turn work)."""

    wake: dict[str, Any]


class AgentFrameTask(Record, frozen=True, kw_only=True, tag_field="type", tag="agent_frame_task"):
    """The hand-off into a new agent frame (turn work)."""

    frame_id: str
    task: str
    protocol_turn_options: dict[str, Any] | None = None


class SessionCommand(Record, frozen=True, kw_only=True, tag_field="type", tag="session_command"):
    """A command applied to the session between turns."""

    command: Literal["refresh_tool_catalog", "reset_session"]
    reason: str = ""


QueuedPayload = ProcessWake | AgentFrameTask | SessionCommand


class MergeKey(Record, frozen=True, kw_only=True):
    """Which join batches may be claimed together."""

    kind: Literal["never", "payload_default", "group"] = "payload_default"
    group: str | None = None


class QueuedWorkBatchDraft(Record, frozen=True, kw_only=True):
    """A request to enqueue a batch of queued work."""

    session_id: str
    payloads: tuple[QueuedPayload, ...]
    source_key: str | None = None
    delivery_policy: Literal["earliest_safe_boundary", "after_current_turn_commit"] = (
        "earliest_safe_boundary"
    )
    slot_policy: Literal["join", "exclusive"] = "exclusive"
    merge_key: MergeKey = MergeKey()
    available_at_ms: int = 0


class QueuedWorkItem(Record, frozen=True, kw_only=True):
    """One payload of a batch."""

    item_id: str
    payload: QueuedPayload


class QueuedWorkBatch(Record, frozen=True, kw_only=True):
    """A stored queued-work batch."""

    batch_id: str
    session_id: str
    enqueue_seq: int
    items: tuple[QueuedWorkItem, ...]
    delivery_policy: Literal["earliest_safe_boundary", "after_current_turn_commit"]
    slot_policy: Literal["join", "exclusive"]
    merge_key: MergeKey
    available_at_ms: int
    enqueued_at_ms: int
    source_key: str | None = None
    claim: ClaimInfo | None = None
    claim_fencing_token: int = 0

    @property
    def work_class(self) -> Literal["turn_work", "session_command"] | None:
        """``session_command`` or ``turn_work`` when every payload agrees, else ``None``."""
        if not self.items:
            return None
        classes = {
            "session_command" if isinstance(i.payload, SessionCommand) else "turn_work"
            for i in self.items
        }
        if len(classes) != 1:
            return None
        return "session_command" if "session_command" in classes else "turn_work"


class QueuedWorkClaim(Record, frozen=True, kw_only=True):
    """Batches claimed together under one lease generation."""

    session_id: str
    claim_id: str
    lease_token: str
    fencing_token: int
    session_lease_generation: int
    batches: tuple[QueuedWorkBatch, ...]

    @property
    def batch_ids(self) -> tuple[str, ...]:
        """Claimed batch ids, in order."""
        return tuple(b.batch_id for b in self.batches)
