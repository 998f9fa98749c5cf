"""The Runtime Scenario DSL: store-level scripts of ingress, claims, leases, faults and commits.

A :class:`RuntimeScenario` is a list of phases run in order against any
:class:`~lash.stores.base.SessionStore` through its public API only (no model, no protocol),
so the same script checks every backend. Phases keep the harness state a worker would hold
(its lease, its claims, the inputs it enqueued by alias) and each asserts what the store must
answer at that point. The phase order is validated *before* anything runs, so a malformed
script fails with a :class:`ScenarioError` naming the rule instead of a confusing store error.

Phase-order rules (core-runtime.md §7.1):

* a lease-releasing phase (:class:`Commit`, or the released-lease :class:`Fault`) is last;
* a dead-holder reclaim (:class:`Lease`) comes before every lease-claiming phase;
* a stale queue-completion :class:`Fault` needs an earlier :class:`TurnWorkClaim`;
* a :class:`NextTurnInputClaim`'s expected aliases and texts align one to one.

For example::

    RuntimeScenario("command first", "session-1", "worker", (
        Ingress(queue=(QueueRefreshToolCatalog("refresh"), QueueProcessWake("wake"))),
        LeadingCommandClaim(expect_turn_work_blocked=True, expect_count=1),
        TurnWorkClaim("idle", expect_count=1),
        Fault(StaleQueueCompletion),
        Commit(),
    ))

The nine scenarios of §7.2 ship here too (:data:`RUNTIME_SCENARIO_COVERAGE`), so a third-party
store can run them: ``await run_scenario(scenario, MyStore(...))``.
"""

from __future__ import annotations

import enum
import inspect
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal, NoReturn, TypeAlias, assert_never

from lash.clock import ManualClock
from lash.errors import StoreError, StoreErrorKind
from lash.stores.base import SessionStore
from lash.stores.liveness import local_process_owner, opaque_owner
from lash.types import (
    CancelTarget,
    CheckpointKind,
    ClaimBoundary,
    GraphUnchanged,
    LeaseAcquired,
    LeaseBusy,
    LeaseClaim,
    LeaseFence,
    LeaseOwner,
    LocalProcessLiveness,
    PendingTurnInput,
    PendingTurnInputDraft,
    ProcessWake,
    QueueClaimCompletion,
    QueuedWorkBatch,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    RuntimeCommit,
    SessionCheckpoint,
    SessionCommand,
    SessionLease,
    TurnInput,
    TurnInputClaim,
    TurnInputClaimCompletion,
    TurnInputIngress,
    TurnInputState,
)

__all__ = [
    "EVIDENCE_KINDS",
    "RUNTIME_SCENARIO_COVERAGE",
    "ActiveTurnInput",
    "Checkpoint",
    "Commit",
    "CommitAfterSessionLeaseRelease",
    "ConflictingReplay",
    "EvidenceKind",
    "Fault",
    "FaultAction",
    "Ingress",
    "Lease",
    "LeadingCommandClaim",
    "NextTurnInput",
    "NextTurnInputClaim",
    "OtherSessionInput",
    "PendingExpectation",
    "Phase",
    "QueueIngress",
    "QueueProcessWake",
    "QueueRefreshToolCatalog",
    "ReclaimDeadHolder",
    "ReplayNextTurnInput",
    "RuntimeScenario",
    "RuntimeScenarioCoverage",
    "ScenarioError",
    "ScenarioFailure",
    "ScenarioReport",
    "StaleQueueCompletion",
    "StoreFactory",
    "TurnInputIngressStep",
    "TurnWorkClaim",
    "dead_local_holder",
    "phase_order_is_valid",
    "run_scenario",
    "run_scenario_on",
    "scenario_coverage",
    "validate_phase_order",
]

EvidenceKind = Literal[
    "queued_ingress", "cancellation", "process_wake", "worker_stale_completion", "lease_time"
]
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = (
    "queued_ingress",
    "cancellation",
    "process_wake",
    "worker_stale_completion",
    "lease_time",
)
"""What a run can show: admitted ingress rows, a successful cancel, a process wake enqueued or
claimed, a stale worker write the store rejected, and a session-lease decision (acquire,
reclaim, release) taken on store time."""

WorkClass = Literal["turn_work", "session_command"]
StoreFactory: TypeAlias = Callable[[ManualClock], SessionStore | Awaitable[SessionStore]]
"""Builds (or asynchronously opens) a fresh, empty store reading the given clock."""

SCENARIO_LEASE_TTL_MS = 60_000
_CLAIM_LIMIT = 10


class ScenarioError(ValueError):
    """A malformed scenario, rejected before it touches a store.

    ``rule`` is a stable name of the broken rule: ``no_phases``, ``release_not_last``,
    ``reclaim_after_lease_claim``, ``stale_completion_without_turn_work``,
    ``misaligned_next_turn_claim``, ``duplicate_alias``, ``unknown_alias`` or
    ``unknown_phase``.
    """

    def __init__(self, scenario: str, rule: str, message: str) -> None:
        self.scenario = scenario
        self.rule = rule
        super().__init__(f"{scenario}: {rule}: {message}")


class ScenarioFailure(AssertionError):
    """The store answered a phase differently from what the scenario requires."""

    def __init__(self, scenario: str, phase_index: int, phase: str, message: str) -> None:
        self.scenario = scenario
        self.phase_index = phase_index
        self.phase = phase
        super().__init__(f"{scenario} [phase {phase_index} {phase}]: {message}")


# --- ingress steps -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueRefreshToolCatalog:
    """Enqueue a ``refresh_tool_catalog`` session command (earliest safe boundary, exclusive)."""

    reason: str


@dataclass(frozen=True, slots=True)
class QueueProcessWake:
    """Enqueue a process-wake turn-work batch (earliest safe boundary, exclusive)."""

    text: str


QueueIngress: TypeAlias = QueueRefreshToolCatalog | QueueProcessWake


@dataclass(frozen=True, slots=True)
class NextTurnInput:
    """Admit next-turn input remembered under ``alias``."""

    alias: str
    text: str
    _: KW_ONLY
    source_key: str | None = None


@dataclass(frozen=True, slots=True)
class ReplayNextTurnInput:
    """Replay a source key; the store must hand back ``expected_alias``'s id and payload."""

    alias: str
    text: str
    source_key: str
    _: KW_ONLY
    expected_alias: str
    expected_text: str


@dataclass(frozen=True, slots=True)
class ConflictingReplay:
    """Replay a source key with changed content; the store must refuse with a conflict."""

    text: str
    source_key: str
    _: KW_ONLY
    expected_alias: str


@dataclass(frozen=True, slots=True)
class OtherSessionInput:
    """Admit next-turn input for another session (it must never be claimed here)."""

    session_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ActiveTurnInput:
    """Admit input addressed to running turn ``turn_id``."""

    alias: str
    turn_id: str
    text: str
    _: KW_ONLY
    min_boundary: CheckpointKind = "after_work"


TurnInputIngressStep: TypeAlias = (
    NextTurnInput | ReplayNextTurnInput | ConflictingReplay | OtherSessionInput | ActiveTurnInput
)


@dataclass(frozen=True, slots=True)
class PendingExpectation:
    """One row ``list_pending_turn_inputs`` must show, in order."""

    alias: str
    state: TurnInputState = "deferred_next_turn"
    ingress: Literal["next_turn", "active_turn"] = "next_turn"


# --- phases --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Ingress:
    """Enqueue queued work, then turn inputs, then cancel the listed aliases.

    ``expect_classes`` (when given) is the work class of each enqueued batch, in order.
    """

    queue: tuple[QueueIngress, ...] = ()
    turn_inputs: tuple[TurnInputIngressStep, ...] = ()
    cancel: tuple[str, ...] = ()
    expect_classes: tuple[WorkClass, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A fenced, non-releasing commit: sets ``turn_index``, completes the command claim.

    With ``defer_interrupted_turn_id`` the commit moves that turn's unaccepted active inputs
    to the next turn. Afterwards it may check the pending list, cancel aliases, and assert
    that no next-turn claim is possible.
    """

    turn_index: int | None = None
    defer_interrupted_turn_id: str | None = None
    expect_pending: tuple[PendingExpectation, ...] | None = None
    cancel_after: tuple[str, ...] = ()
    expect_no_next_turn_claim: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LeadingCommandClaim:
    """Claim the leading session command; optionally check turn work is blocked first."""

    expect_count: int = 0
    expect_turn_work_blocked: bool | None = None


@dataclass(frozen=True, slots=True)
class TurnWorkClaim:
    """Claim ready turn work at ``boundary`` and check the count and the untouched inputs."""

    boundary: ClaimBoundary = "idle"
    _: KW_ONLY
    expect_count: int = 0
    expect_pending: tuple[PendingExpectation, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NextTurnInputClaim:
    """Claim next-turn inputs; check their aliases and texts (none expected: no claim)."""

    expect_aliases: tuple[str, ...] = ()
    expect_texts: tuple[str, ...] = ()
    expect_hidden: bool = False


@dataclass(frozen=True, slots=True)
class ReclaimDeadHolder:
    """A dead local holder takes the lease; the scenario owner sees busy, then reclaims."""

    assert_stale_observation_busy: bool = True


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease action."""

    action: ReclaimDeadHolder = field(default_factory=ReclaimDeadHolder)


class FaultAction(enum.Enum):
    """The stale writes a :class:`Fault` phase injects."""

    STALE_QUEUE_COMPLETION = "stale_queue_completion"
    """Complete the turn-work claim with a tampered lease token: must be superseded."""
    COMMIT_AFTER_SESSION_LEASE_RELEASE = "commit_after_session_lease_release"
    """Commit again with the fence a final commit released: the lease must be expired."""


StaleQueueCompletion = FaultAction.STALE_QUEUE_COMPLETION
CommitAfterSessionLeaseRelease = FaultAction.COMMIT_AFTER_SESSION_LEASE_RELEASE


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected stale write the store must reject: ``Fault(StaleQueueCompletion)``."""

    action: FaultAction


@dataclass(frozen=True, slots=True, kw_only=True)
class Commit:
    """The fenced final commit: releases the lease and completes every held claim.

    Always asserts the session's queued work is empty afterwards.
    """

    expect_pending_empty: bool = False
    expect_turn_index: int | None = None


Phase: TypeAlias = (
    Ingress
    | Checkpoint
    | LeadingCommandClaim
    | TurnWorkClaim
    | NextTurnInputClaim
    | Lease
    | Fault
    | Commit
)
_PHASE_TYPES = (
    Ingress,
    Checkpoint,
    LeadingCommandClaim,
    TurnWorkClaim,
    NextTurnInputClaim,
    Lease,
    Fault,
    Commit,
)


@dataclass(frozen=True, slots=True)
class RuntimeScenario:
    """A named script of phases for one session, run by ``lease_owner_id``."""

    name: str
    session_id: str
    lease_owner_id: str = "runtime-scenario-owner"
    phases: tuple[Phase, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "phases", tuple(self.phases))

    def validate(self) -> None:
        """Raise :class:`ScenarioError` if the phase order breaks a rule."""
        validate_phase_order(self.phases, scenario=self.name)


# --- validation ----------------------------------------------------------------------------


def _releases_lease(phase: Phase) -> bool:
    return isinstance(phase, Commit) or (
        isinstance(phase, Fault) and phase.action is CommitAfterSessionLeaseRelease
    )


def _claims_lease(phase: Phase) -> bool:
    """Phases that take (or need) the scenario owner's live lease."""
    if isinstance(phase, Fault):
        return phase.action is StaleQueueCompletion
    return isinstance(
        phase, Checkpoint | LeadingCommandClaim | TurnWorkClaim | NextTurnInputClaim | Commit
    )


def validate_phase_order(phases: Sequence[Phase], *, scenario: str = "scenario") -> None:
    """Check the §7.1 phase-order rules and alias references, before anything runs."""
    if not phases:
        raise ScenarioError(scenario, "no_phases", "a scenario needs at least one phase")
    lease_taken = False
    turn_work_claimed = False
    aliases: set[str] = set()
    last = len(phases) - 1
    for index, phase in enumerate(phases):
        where = f"phase {index} ({type(phase).__name__})"
        _check_shape(phase, scenario, where)
        if _releases_lease(phase) and index != last:
            raise ScenarioError(
                scenario, "release_not_last", f"{where} releases the lease but is not last"
            )
        if isinstance(phase, Lease):
            if lease_taken:
                raise ScenarioError(
                    scenario,
                    "reclaim_after_lease_claim",
                    f"{where} reclaims a dead holder after the lease was already claimed",
                )
            lease_taken = True
        if isinstance(phase, Fault) and phase.action is StaleQueueCompletion:
            if not turn_work_claimed:
                raise ScenarioError(
                    scenario,
                    "stale_completion_without_turn_work",
                    f"{where} needs an earlier TurnWorkClaim phase",
                )
        if isinstance(phase, NextTurnInputClaim) and len(phase.expect_aliases) != len(
            phase.expect_texts
        ):
            raise ScenarioError(
                scenario,
                "misaligned_next_turn_claim",
                f"{where} expects {len(phase.expect_aliases)} aliases but "
                f"{len(phase.expect_texts)} texts",
            )
        if isinstance(phase, TurnWorkClaim):
            turn_work_claimed = True
        if _claims_lease(phase):
            lease_taken = True
        _check_aliases(phase, aliases, scenario, where)


def _check_shape(phase: object, scenario: str, where: str) -> None:
    """Catch phases built from the wrong objects (a class instead of an instance, say)."""
    if not isinstance(phase, _PHASE_TYPES):
        raise ScenarioError(scenario, "unknown_phase", f"{where} is not a scenario phase")
    if isinstance(phase, Fault) and not isinstance(phase.action, FaultAction):
        raise ScenarioError(
            scenario, "unknown_phase", f"{where} action must be a FaultAction, not {phase.action!r}"
        )
    if isinstance(phase, Lease) and not isinstance(phase.action, ReclaimDeadHolder):
        raise ScenarioError(
            scenario,
            "unknown_phase",
            f"{where} action must be ReclaimDeadHolder(...), not {phase.action!r}",
        )


def _check_aliases(phase: Phase, aliases: set[str], scenario: str, where: str) -> None:
    def known(alias: str) -> None:
        if alias not in aliases:
            raise ScenarioError(
                scenario, "unknown_alias", f"{where} refers to undeclared input `{alias}`"
            )

    def declare(alias: str) -> None:
        if alias in aliases:
            raise ScenarioError(
                scenario, "duplicate_alias", f"{where} declares input `{alias}` twice"
            )
        aliases.add(alias)

    if isinstance(phase, Ingress):
        for step in phase.turn_inputs:
            if isinstance(step, ReplayNextTurnInput | ConflictingReplay):
                known(step.expected_alias)
            if isinstance(step, NextTurnInput | ReplayNextTurnInput | ActiveTurnInput):
                declare(step.alias)
        for alias in phase.cancel:
            known(alias)
    elif isinstance(phase, Checkpoint):
        for expectation in phase.expect_pending or ():
            known(expectation.alias)
        for alias in phase.cancel_after:
            known(alias)
    elif isinstance(phase, TurnWorkClaim):
        for expectation in phase.expect_pending or ():
            known(expectation.alias)
    elif isinstance(phase, NextTurnInputClaim):
        for alias in phase.expect_aliases:
            known(alias)


def phase_order_is_valid(phases: Sequence[Phase]) -> bool:
    """Whether :func:`validate_phase_order` accepts ``phases``."""
    try:
        validate_phase_order(phases)
    except ScenarioError:
        return False
    return True


# --- running -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioReport:
    """What a run observed, for assertions beyond the phases' own."""

    name: str
    session_id: str
    evidence: frozenset[EvidenceKind]
    phases: tuple[str, ...]
    lease: SessionLease | None
    lease_released: bool
    head_revision: int | None
    input_ids: Mapping[str, str]


def dead_local_holder(claimant: LeaseOwner, owner_id: str) -> LeaseOwner:
    """An owner on ``claimant``'s host and boot whose process provably no longer runs.

    It names this process's pid with a start time that cannot be ours, which is exactly what
    a reused pid looks like to the liveness proof.
    """
    mine = claimant.liveness
    if mine is None:
        raise ValueError("a dead local holder needs a claimant with local-process liveness")
    liveness = LocalProcessLiveness(
        host_id=mine.host_id,
        boot_id=mine.boot_id,
        pid=os.getpid(),
        process_start=mine.process_start + 1,
    )
    return LeaseOwner(
        owner_id=owner_id, incarnation_id=f"{owner_id}:incarnation", liveness=liveness
    )


def _queue_draft(session_id: str, step: QueueIngress) -> QueuedWorkBatchDraft:
    if isinstance(step, QueueRefreshToolCatalog):
        payload: SessionCommand | ProcessWake = SessionCommand(
            command="refresh_tool_catalog", reason=step.reason
        )
    else:
        payload = ProcessWake(
            wake={
                "wake_id": f"wake:{session_id}:{step.text}",
                "process_id": f"process:{step.text}",
                "sequence": 1,
                "event_type": "process.wake",
                "input": step.text,
            }
        )
    return QueuedWorkBatchDraft(
        session_id=session_id,
        payloads=(payload,),
        delivery_policy="earliest_safe_boundary",
        slot_policy="exclusive",
    )


def _queue_completion(claim: QueuedWorkClaim) -> QueueClaimCompletion:
    return QueueClaimCompletion(
        claim_id=claim.claim_id, lease_token=claim.lease_token, batch_ids=claim.batch_ids
    )


def _input_completion(claim: TurnInputClaim) -> TurnInputClaimCompletion:
    return TurnInputClaimCompletion(
        claim_id=claim.claim_id, lease_token=claim.lease_token, input_ids=claim.input_ids
    )


def _has_wake(batches: Sequence[QueuedWorkBatch]) -> bool:
    return any(isinstance(item.payload, ProcessWake) for b in batches for item in b.items)


class _Run:
    """The worker-side state of one scenario run."""

    def __init__(self, scenario: RuntimeScenario, store: SessionStore) -> None:
        self.scenario = scenario
        self.store = store
        self.session_id = scenario.session_id
        self.evidence: set[EvidenceKind] = set()
        self.inputs: dict[str, PendingTurnInput] = {}
        self.owner: LeaseOwner | None = None
        self.lease: SessionLease | None = None
        self.released = False
        self.turn_index = 0
        self.head_revision: int | None = None
        self.command_claim: QueuedWorkClaim | None = None
        self.turn_claim: QueuedWorkClaim | None = None
        self.input_claim: TurnInputClaim | None = None
        self.phase_index = 0
        self.phase_name = ""

    # -- helpers --------------------------------------------------------------------------

    def fail(self, message: str) -> NoReturn:
        raise ScenarioFailure(self.scenario.name, self.phase_index, self.phase_name, message)

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.fail(message)

    def acquired(self, claim: LeaseClaim, what: str) -> SessionLease:
        if not isinstance(claim, LeaseAcquired):
            self.fail(f"{what}: expected the lease to be acquired, got busy ({claim.holder})")
        self.evidence.add("lease_time")
        return claim.lease

    def held_lease(self) -> SessionLease:
        if self.lease is None:
            self.fail("no session lease is held")
        return self.lease

    async def ensure_lease(self) -> SessionLease:
        if self.released:
            self.fail("this phase needs the session lease, but it was already released")
        if self.lease is not None:
            return self.lease
        owner = opaque_owner(
            self.scenario.lease_owner_id, f"{self.scenario.lease_owner_id}:incarnation"
        )
        claim = await self.store.try_claim_lease(self.session_id, owner, SCENARIO_LEASE_TTL_MS)
        self.owner = owner
        self.lease = self.acquired(claim, "claim the session lease")
        return self.lease

    def commit_for(
        self,
        lease: SessionLease,
        *,
        release: bool,
        queue_claims: Sequence[QueuedWorkClaim | None] = (),
        queue_completions: Sequence[QueueClaimCompletion] = (),
        input_claim: TurnInputClaim | None = None,
        interrupted_turn_id: str | None = None,
    ) -> RuntimeCommit:
        completions = [*queue_completions]
        completions += [_queue_completion(c) for c in queue_claims if c is not None]
        return RuntimeCommit(
            session_id=self.session_id,
            graph=GraphUnchanged(),
            checkpoint=SessionCheckpoint(turn_index=self.turn_index),
            lease=lease.fence(),
            release_lease=release,
            completed_queue_claims=tuple(completions),
            completed_turn_input_claims=(
                (_input_completion(input_claim),) if input_claim is not None else ()
            ),
            interrupted_turn_input_turn_id=interrupted_turn_id,
        )

    async def expect_store_error(
        self, kind: StoreErrorKind, action: Awaitable[object], what: str
    ) -> StoreError:
        try:
            await action
        except StoreError as err:
            if err.kind is not kind:
                self.fail(f"{what}: expected {kind.value}, got {err.kind.value}: {err.message}")
            return err
        self.fail(f"{what}: expected {kind.value}, but the store accepted it")

    async def head(self) -> tuple[int, int] | None:
        loaded = await self.store.load_session(self.session_id)
        if loaded is None:
            return None
        return loaded.head_revision, loaded.checkpoint.turn_index

    async def expect_pending(self, expectations: Sequence[PendingExpectation]) -> None:
        pending = await self.store.list_pending_turn_inputs(self.session_id)
        got = [p.input_id for p in pending]
        want = [self.inputs[e.alias].input_id for e in expectations]
        self.check(got == want, f"pending turn inputs {got} != expected {want}")
        for row, expectation in zip(pending, expectations, strict=True):
            self.check(
                row.state == expectation.state,
                f"`{expectation.alias}` is {row.state}, expected {expectation.state}",
            )
            self.check(
                row.ingress.kind == expectation.ingress,
                f"`{expectation.alias}` ingress is {row.ingress.kind}, "
                f"expected {expectation.ingress}",
            )

    async def cancel(self, alias: str) -> None:
        input_id = self.inputs[alias].input_id
        outcomes = await self.store.cancel_pending_turn_inputs(
            self.session_id, [CancelTarget(input_id=input_id)]
        )
        self.check(len(outcomes) == 1, f"one cancel target gave {len(outcomes)} outcomes")
        outcome = outcomes[0]
        self.check(
            outcome.status == "cancelled", f"cancel `{alias}` gave {outcome.status}, not cancelled"
        )
        self.check(
            outcome.input is not None and outcome.input.input_id == input_id,
            f"cancel `{alias}` returned the wrong row",
        )
        row = await self.store.get_turn_input(self.session_id, input_id)
        self.check(row is not None and row.state == "cancelled", f"`{alias}` is not cancelled")
        self.evidence.add("cancellation")

    # -- phases ---------------------------------------------------------------------------

    async def run_phase(self, phase: Phase) -> None:
        if isinstance(phase, Ingress):
            await self.ingress(phase)
        elif isinstance(phase, Checkpoint):
            await self.checkpoint(phase)
        elif isinstance(phase, LeadingCommandClaim):
            await self.leading_command_claim(phase)
        elif isinstance(phase, TurnWorkClaim):
            await self.turn_work_claim(phase)
        elif isinstance(phase, NextTurnInputClaim):
            await self.next_turn_input_claim(phase)
        elif isinstance(phase, Lease):
            await self.reclaim_dead_holder(phase.action)
        elif isinstance(phase, Fault):
            if phase.action is StaleQueueCompletion:
                await self.stale_queue_completion()
            else:
                await self.commit_after_release()
        elif isinstance(phase, Commit):
            await self.final_commit(phase)
        else:
            assert_never(phase)

    async def ingress(self, phase: Ingress) -> None:
        enqueued: list[QueuedWorkBatch] = []
        for step in phase.queue:
            batch = await self.store.enqueue_queued_work(_queue_draft(self.session_id, step))
            self.check(batch.session_id == self.session_id, "batch stored for the wrong session")
            enqueued.append(batch)
            self.evidence.add("queued_ingress")
        if _has_wake(enqueued):
            self.evidence.add("process_wake")
        if phase.expect_classes is not None:
            classes = tuple(b.work_class for b in enqueued)
            self.check(
                classes == phase.expect_classes,
                f"enqueued classes {classes} != expected {phase.expect_classes}",
            )
        for turn_input in phase.turn_inputs:
            await self.enqueue_turn_input(turn_input)
            self.evidence.add("queued_ingress")
        for alias in phase.cancel:
            await self.cancel(alias)

    async def enqueue_turn_input(self, step: TurnInputIngressStep) -> None:
        if isinstance(step, NextTurnInput):
            row = await self.store.enqueue_turn_input(
                PendingTurnInputDraft(
                    session_id=self.session_id,
                    input=TurnInput.text(step.text),
                    source_key=step.source_key,
                )
            )
            self.check(
                row.state == "deferred_next_turn",
                f"next-turn input `{step.alias}` enqueued as {row.state}",
            )
            self.inputs[step.alias] = row
        elif isinstance(step, ActiveTurnInput):
            row = await self.store.enqueue_turn_input(
                PendingTurnInputDraft(
                    session_id=self.session_id,
                    input=TurnInput.text(step.text),
                    ingress=TurnInputIngress.active_turn(step.turn_id, step.min_boundary),
                )
            )
            self.check(
                row.state == "pending_active",
                f"active-turn input `{step.alias}` enqueued as {row.state}",
            )
            self.inputs[step.alias] = row
        elif isinstance(step, ReplayNextTurnInput):
            row = await self.store.enqueue_turn_input(
                PendingTurnInputDraft(
                    session_id=self.session_id,
                    input=TurnInput.text(step.text),
                    source_key=step.source_key,
                )
            )
            original = self.inputs[step.expected_alias]
            self.check(
                row.input_id == original.input_id,
                f"replay of {step.source_key!r} returned {row.input_id}, "
                f"not the original {original.input_id}",
            )
            self.check(
                row.input.plain_text == step.expected_text,
                f"replay of {step.source_key!r} changed the payload to {row.input.plain_text!r}",
            )
            self.inputs[step.alias] = row
        elif isinstance(step, ConflictingReplay):
            original = self.inputs[step.expected_alias]
            err = await self.expect_store_error(
                StoreErrorKind.PENDING_TURN_INPUT_SOURCE_KEY_CONFLICT,
                self.store.enqueue_turn_input(
                    PendingTurnInputDraft(
                        session_id=self.session_id,
                        input=TurnInput.text(step.text),
                        source_key=step.source_key,
                    )
                ),
                f"changed replay of {step.source_key!r}",
            )
            self.check(
                err.details.get("existing_input_id") == original.input_id,
                f"conflict names {err.details.get('existing_input_id')!r}, "
                f"not the original {original.input_id}",
            )
            stored = await self.store.get_turn_input(self.session_id, original.input_id)
            self.check(
                stored is not None and stored.input == original.input,
                "a refused replay changed the original input",
            )
        else:
            row = await self.store.enqueue_turn_input(
                PendingTurnInputDraft(session_id=step.session_id, input=TurnInput.text(step.text))
            )
            self.check(row.session_id == step.session_id, "input stored for the wrong session")

    async def checkpoint(self, phase: Checkpoint) -> None:
        lease = await self.ensure_lease()
        if phase.turn_index is not None:
            self.turn_index = phase.turn_index
        result = await self.store.commit(
            self.commit_for(
                lease,
                release=False,
                queue_claims=[self.command_claim],
                interrupted_turn_id=phase.defer_interrupted_turn_id,
            )
        )
        self.head_revision = result.head_revision
        self.command_claim = None
        head = await self.head()
        self.check(
            head == (result.head_revision, self.turn_index),
            f"checkpoint persisted {head}, expected ({result.head_revision}, {self.turn_index})",
        )
        if phase.expect_pending is not None:
            await self.expect_pending(phase.expect_pending)
        for alias in phase.cancel_after:
            await self.cancel(alias)
        if phase.expect_no_next_turn_claim:
            claim = await self.store.claim_next_turn_inputs(lease.fence(), _CLAIM_LIMIT)
            self.check(claim is None, f"claimed {claim and claim.input_ids} after cancellation")

    async def leading_command_claim(self, phase: LeadingCommandClaim) -> None:
        lease = await self.ensure_lease()
        if phase.expect_turn_work_blocked is not None:
            turn = await self.store.claim_ready_queued_work(lease.fence(), "idle", _CLAIM_LIMIT)
            self.check(
                (turn is None) == phase.expect_turn_work_blocked,
                f"turn-work claim before the command gave {turn and turn.batch_ids}",
            )
            if turn is not None:
                self.turn_claim = turn
        claim = await self.store.claim_leading_session_command(lease.fence())
        count = len(claim.batches) if claim is not None else 0
        self.check(
            count == phase.expect_count, f"claimed {count} commands, not {phase.expect_count}"
        )
        if claim is not None:
            self.check(
                all(b.work_class == "session_command" for b in claim.batches),
                "the command claim holds turn work",
            )
        self.command_claim = claim

    async def turn_work_claim(self, phase: TurnWorkClaim) -> None:
        lease = await self.ensure_lease()
        claim = await self.store.claim_ready_queued_work(
            lease.fence(), phase.boundary, _CLAIM_LIMIT
        )
        count = len(claim.batches) if claim is not None else 0
        self.check(
            count == phase.expect_count,
            f"claimed {count} turn-work batches at {phase.boundary}, not {phase.expect_count}",
        )
        if claim is not None:
            self.check(
                all(b.work_class == "turn_work" for b in claim.batches),
                "the turn-work claim holds a session command",
            )
            self.check(
                claim.session_lease_generation == lease.fencing_token,
                "the claim is not pinned to the lease generation",
            )
            if _has_wake(claim.batches):
                self.evidence.add("process_wake")
        if phase.expect_pending is not None:
            await self.expect_pending(phase.expect_pending)
        self.turn_claim = claim

    async def next_turn_input_claim(self, phase: NextTurnInputClaim) -> None:
        lease = await self.ensure_lease()
        claim = await self.store.claim_next_turn_inputs(lease.fence(), _CLAIM_LIMIT)
        if not phase.expect_aliases:
            self.check(claim is None, f"unexpected next-turn claim {claim and claim.input_ids}")
            return
        if claim is None:
            self.fail("expected a next-turn input claim, got none")
        want = tuple(self.inputs[a].input_id for a in phase.expect_aliases)
        self.check(claim.input_ids == want, f"claimed {claim.input_ids}, expected {want}")
        texts = tuple(i.input.plain_text for i in claim.inputs)
        self.check(texts == phase.expect_texts, f"claimed texts {texts} != {phase.expect_texts}")
        self.check(
            claim.session_lease_generation == lease.fencing_token,
            "the claim is not pinned to the lease generation",
        )
        if phase.expect_hidden:
            pending = {
                p.input_id for p in await self.store.list_pending_turn_inputs(self.session_id)
            }
            visible = sorted(pending.intersection(claim.input_ids))
            self.check(not visible, f"live-claimed inputs {visible} are still listed as pending")
        self.input_claim = claim

    async def reclaim_dead_holder(self, action: ReclaimDeadHolder) -> None:
        """A dead holder's lease is taken over with a higher fence; stale observations fail.

        With ``assert_stale_observation_busy`` a second dead-looking worker wins the race to
        reclaim first, so the scenario owner's reclaim still names the *first* holder. The
        newer holder is provably dead too, so only the store's observed-fence comparison can
        refuse that stale reclaim. The owner then re-observes and reclaims.
        """
        if self.lease is not None:
            self.fail("a dead-holder reclaim must run before any other lease claim")
        claimant = local_process_owner(self.scenario.lease_owner_id)
        if claimant.liveness is None:
            self.fail("dead-holder reclaim needs local-process liveness (Linux /proc)")
        ttl = SCENARIO_LEASE_TTL_MS
        dead = dead_local_holder(claimant, "runtime-scenario-dead-holder")
        holder = self.acquired(
            await self.store.try_claim_lease(self.session_id, dead, ttl), "dead holder claims"
        )
        observed = await self.observe_busy(claimant, holder)
        if action.assert_stale_observation_busy:
            racer = dead_local_holder(claimant, "runtime-scenario-racing-reclaimer")
            won = self.acquired(
                await self.store.reclaim_lease(self.session_id, racer, holder.fence(), ttl),
                "racing reclaim from the dead holder",
            )
            stale = await self.store.reclaim_lease(self.session_id, claimant, observed, ttl)
            if not isinstance(stale, LeaseBusy):
                self.fail("a reclaim against a stale observed holder cleared the newer lease")
            self.check(stale.holder.matches(won.fence()), "the stale reclaim names a wrong holder")
            holder = won
            observed = await self.observe_busy(claimant, holder)
        reclaimed = self.acquired(
            await self.store.reclaim_lease(self.session_id, claimant, observed, ttl),
            "reclaim from the dead holder",
        )
        self.check(
            reclaimed.fencing_token > holder.fencing_token,
            f"reclaim kept fencing token {reclaimed.fencing_token} (holder had "
            f"{holder.fencing_token})",
        )
        if action.assert_stale_observation_busy:
            late = local_process_owner("runtime-scenario-late-claimant")
            late_claim = await self.store.reclaim_lease(self.session_id, late, observed, ttl)
            if not isinstance(late_claim, LeaseBusy):
                self.fail("a late reclaim against a stale observed holder took the lease")
        current = await self.store.get_lease(self.session_id)
        self.check(
            current is not None and current.matches(reclaimed.fence()),
            "the reclaimed lease is not the stored lease",
        )
        self.owner, self.lease = claimant, reclaimed

    async def observe_busy(self, claimant: LeaseOwner, holder: SessionLease) -> LeaseFence:
        """Try to claim, expect ``busy`` naming ``holder``, and return the observed fence."""
        busy = await self.store.try_claim_lease(self.session_id, claimant, SCENARIO_LEASE_TTL_MS)
        if not isinstance(busy, LeaseBusy):
            self.fail("the claimant acquired a lease a live-looking holder still held")
        self.check(busy.holder.matches(holder.fence()), "busy names the wrong holder")
        return busy.holder.fence()

    async def stale_queue_completion(self) -> None:
        lease = await self.ensure_lease()
        claim = self.turn_claim
        if claim is None:
            self.fail("the stale-completion fault needs a claimed turn-work batch")
        stale = QueueClaimCompletion(
            claim_id=claim.claim_id,
            lease_token=f"{claim.lease_token}:stale",
            batch_ids=claim.batch_ids,
        )
        before_queue = await self.store.list_queued_work(self.session_id)
        before_head = await self.head()
        await self.expect_store_error(
            StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED,
            self.store.commit(self.commit_for(lease, release=False, queue_completions=[stale])),
            "stale queue completion",
        )
        self.check(
            await self.store.list_queued_work(self.session_id) == before_queue,
            "a rejected stale completion changed the queue",
        )
        self.check(await self.head() == before_head, "a rejected stale completion moved the head")
        self.evidence.add("worker_stale_completion")

    async def commit_after_release(self) -> None:
        if not self.released:
            await self.final_commit(Commit())
        lease = self.held_lease()
        before = await self.head()
        self.turn_index += 1
        await self.expect_store_error(
            StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED,
            self.store.commit(self.commit_for(lease, release=False)),
            "commit with a released fence",
        )
        self.check(await self.head() == before, "a commit with a released fence moved the head")
        self.evidence.add("worker_stale_completion")

    async def final_commit(self, phase: Commit) -> None:
        lease = await self.ensure_lease()
        result = await self.store.commit(
            self.commit_for(
                lease,
                release=True,
                queue_claims=[self.command_claim, self.turn_claim],
                input_claim=self.input_claim,
            )
        )
        self.head_revision = result.head_revision
        self.released = True
        self.evidence.add("lease_time")
        completed_inputs = self.input_claim.input_ids if self.input_claim is not None else ()
        self.command_claim = self.turn_claim = self.input_claim = None
        for input_id in completed_inputs:
            row = await self.store.get_turn_input(self.session_id, input_id)
            self.check(
                row is not None and row.state == "completed", f"input {input_id} not completed"
            )
        if phase.expect_pending_empty:
            pending = await self.store.list_pending_turn_inputs(self.session_id)
            self.check(not pending, f"inputs still pending: {[p.input_id for p in pending]}")
        loaded = await self.store.load_session(self.session_id)
        if loaded is None:
            self.fail("the final commit left no committed session")
        self.check(loaded.session_id == self.session_id, "loaded the wrong session")
        self.check(loaded.head_revision == result.head_revision, "head revision mismatch")
        if phase.expect_turn_index is not None:
            self.check(
                loaded.checkpoint.turn_index == phase.expect_turn_index,
                f"checkpoint turn_index {loaded.checkpoint.turn_index}, "
                f"expected {phase.expect_turn_index}",
            )
        queued = await self.store.list_queued_work(self.session_id)
        self.check(not queued, f"queued work left after the final commit: {queued}")


async def run_scenario(scenario: RuntimeScenario, store: SessionStore) -> ScenarioReport:
    """Validate ``scenario``, then run its phases against ``store``.

    Raises :class:`ScenarioError` for a malformed script (nothing is written) and
    :class:`ScenarioFailure` where the store breaks the contract.
    """
    scenario.validate()
    run = _Run(scenario, store)
    for index, phase in enumerate(scenario.phases):
        run.phase_index, run.phase_name = index, type(phase).__name__
        await run.run_phase(phase)
    return ScenarioReport(
        name=scenario.name,
        session_id=scenario.session_id,
        evidence=frozenset(run.evidence),
        phases=tuple(type(p).__name__ for p in scenario.phases),
        lease=run.lease,
        lease_released=run.released,
        head_revision=run.head_revision,
        input_ids={alias: row.input_id for alias, row in run.inputs.items()},
    )


async def run_scenario_on(
    scenario: RuntimeScenario, factory: StoreFactory, clock: ManualClock | None = None
) -> ScenarioReport:
    """Run ``scenario`` on a fresh store from ``factory`` and close the store afterwards."""
    built = factory(clock if clock is not None else ManualClock())
    store = await built if inspect.isawaitable(built) else built
    try:
        return await run_scenario(scenario, store)
    finally:
        await store.aclose()


# --- the nine Runtime Scenarios (core-runtime.md §7.2) -----------------------------------


@dataclass(frozen=True, slots=True)
class RuntimeScenarioCoverage:
    """A scenario with the test that runs it and the invariant it owns."""

    test_name: str
    display_name: str
    owned_invariant: str
    scenario: RuntimeScenario


def _coverage(
    test_name: str, display_name: str, invariant: str, session_id: str, owner: str, *phases: Phase
) -> RuntimeScenarioCoverage:
    return RuntimeScenarioCoverage(
        test_name=test_name,
        display_name=display_name,
        owned_invariant=invariant,
        scenario=RuntimeScenario(display_name, session_id, owner, phases),
    )


_REDRIVE_TURN = "runtime-scenario-redrive-turn"
_OBSERVATION_KEY = "runtime-scenario:observation"

RUNTIME_SCENARIO_COVERAGE: tuple[RuntimeScenarioCoverage, ...] = (
    _coverage(
        "runtime_scenario_drains_command_before_turn_work_and_commits_checkpoint",
        "command before turn work",
        "A leading session command blocks turn work until claimed; a checkpoint persists "
        "turn_index 7; a stale queue completion is rejected; the final commit drains the queue.",
        "runtime-scenario-command-before-turn",
        "runtime-scenario-worker",
        Ingress(
            queue=(
                QueueRefreshToolCatalog("refresh before turn"),
                QueueProcessWake("wake after command"),
            ),
            expect_classes=("session_command", "turn_work"),
        ),
        LeadingCommandClaim(expect_turn_work_blocked=True, expect_count=1),
        Checkpoint(turn_index=7),
        TurnWorkClaim("idle", expect_count=1),
        Fault(StaleQueueCompletion),
        Commit(expect_turn_index=7),
    ),
    _coverage(
        "runtime_scenario_command_only_queue_drain_completes_without_turn_work",
        "command-only queue drain",
        "A queue holding only a command claims no turn work and still commits cleanly.",
        "runtime-scenario-command-only",
        "runtime-scenario-command-only-worker",
        Ingress(
            queue=(QueueRefreshToolCatalog("command-only refresh"),),
            expect_classes=("session_command",),
        ),
        LeadingCommandClaim(expect_count=1),
        TurnWorkClaim("idle", expect_count=0),
        Commit(),
    ),
    _coverage(
        "runtime_scenario_queued_work_claim_keeps_pending_next_turn_input",
        "queued work claim keeps pending next-turn input",
        "Claiming queued turn work leaves pending next-turn input untouched.",
        "runtime-scenario-queue-keeps-turn-input",
        "runtime-scenario-queue-turn-input-owner",
        Ingress(
            queue=(QueueProcessWake("wake selected before user input"),),
            turn_inputs=(NextTurnInput("pending-user-input", "still pending user input"),),
            expect_classes=("turn_work",),
        ),
        TurnWorkClaim(
            "idle", expect_count=1, expect_pending=(PendingExpectation("pending-user-input"),)
        ),
    ),
    _coverage(
        "runtime_scenario_claims_process_wake_at_active_checkpoint_boundary",
        "active checkpoint process wake claim",
        "An earliest-safe-boundary process wake is claimable at the active-turn checkpoint.",
        "runtime-scenario-active-checkpoint-wake",
        "runtime-scenario-active-checkpoint-owner",
        Ingress(queue=(QueueProcessWake("wake at checkpoint"),), expect_classes=("turn_work",)),
        TurnWorkClaim("active_turn_checkpoint", expect_count=1),
    ),
    _coverage(
        "runtime_scenario_claims_queued_turn_input_and_completes_it",
        "queued turn input completion",
        "Next-turn inputs are claimed in order, other sessions are excluded, live-claimed rows "
        "are hidden, and the commit completes them.",
        "runtime-scenario-queued-turn-input",
        "runtime-scenario-turn-input-owner",
        Ingress(
            turn_inputs=(
                NextTurnInput("first", "first queued input"),
                NextTurnInput("second", "second queued input"),
                OtherSessionInput("runtime-scenario-other-session", "other session input"),
            )
        ),
        NextTurnInputClaim(
            expect_aliases=("first", "second"),
            expect_texts=("first queued input", "second queued input"),
            expect_hidden=True,
        ),
        Commit(expect_pending_empty=True),
    ),
    _coverage(
        "runtime_scenario_observation_replay_keeps_original_turn_input",
        "observation replay preserves live turn input",
        "Replaying a source key returns the original id and payload; a changed payload "
        "conflicts; the single input is claimed and completed.",
        "runtime-scenario-observation-replay",
        "runtime-scenario-observation-replay-owner",
        Ingress(
            turn_inputs=(
                NextTurnInput(
                    "observed-live-input", "observed live input", source_key=_OBSERVATION_KEY
                ),
                ReplayNextTurnInput(
                    "observed-live-input-replay",
                    "observed live input",
                    _OBSERVATION_KEY,
                    expected_alias="observed-live-input",
                    expected_text="observed live input",
                ),
                ConflictingReplay(
                    "changed payload must conflict",
                    _OBSERVATION_KEY,
                    expected_alias="observed-live-input",
                ),
            )
        ),
        NextTurnInputClaim(
            expect_aliases=("observed-live-input",),
            expect_texts=("observed live input",),
            expect_hidden=True,
        ),
        Commit(expect_pending_empty=True),
    ),
    _coverage(
        "runtime_scenario_defers_checkpoint_turn_input_and_respects_cancel",
        "checkpoint redrive cancel",
        "Inputs cancelled before the commit stay cancelled; deferral moves the surviving active "
        "input to the next turn; cancelling it afterwards leaves nothing for an idle claim.",
        "runtime-scenario-checkpoint-redrive-cancel",
        "runtime-scenario-redrive-input-owner",
        Ingress(
            turn_inputs=(
                ActiveTurnInput("active-keep", _REDRIVE_TURN, "active input to redrive"),
                ActiveTurnInput(
                    "active-cancel", _REDRIVE_TURN, "active input cancelled before redrive"
                ),
                NextTurnInput("next-cancel", "next input cancelled before redrive"),
            ),
            cancel=("active-cancel", "next-cancel"),
        ),
        Checkpoint(
            defer_interrupted_turn_id=_REDRIVE_TURN,
            expect_pending=(PendingExpectation("active-keep"),),
            cancel_after=("active-keep",),
            expect_no_next_turn_claim=True,
        ),
        Commit(expect_pending_empty=True),
    ),
    _coverage(
        "runtime_scenario_rejects_commit_after_session_lease_release",
        "session lease release fault",
        "After a final commit releases the lease, a commit with the same fence fails with "
        "session_execution_lease_expired.",
        "runtime-scenario-lease-failure",
        "runtime-scenario-lease-owner",
        Fault(CommitAfterSessionLeaseRelease),
    ),
    _coverage(
        "runtime_scenario_reclaims_dead_session_lease_and_rejects_stale_observation",
        "dead session lease reclaim",
        "A dead local holder is reclaimed with a higher fence, and a late reclaim against the "
        "stale observed holder stays busy.",
        "runtime-scenario-dead-lease-reclaim",
        "runtime-scenario-reclaim-owner",
        Lease(ReclaimDeadHolder()),
    ),
)
"""The nine Runtime Scenarios; each runs under the pytest test ``test_<test_name>``."""


def scenario_coverage(test_name: str) -> RuntimeScenarioCoverage:
    """The coverage entry for ``test_name`` (with or without the ``test_`` prefix)."""
    name = test_name.removeprefix("test_")
    for entry in RUNTIME_SCENARIO_COVERAGE:
        if entry.test_name == name:
            return entry
    raise KeyError(test_name)
