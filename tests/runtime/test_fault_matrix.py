"""The Durable Fault Matrix (core-runtime.md §7.3): 14 rows, each executable or reasoned-blocked.

``DURABLE_FAULT_MATRIX`` names, per row, the test that covers it. Meta-tests keep the table
honest (fault kinds, unique ids, known scenarios, concrete blocked rationales, named tests that
exist). The store-level rows (2, 5–10) are real tests in this file and run on every backend in
``STORE_FACTORIES``; the runtime, protocol and SQLite rows point at other suites.
"""

from __future__ import annotations

import ast
import enum
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lash.clock import ManualClock
from lash.errors import StoreError, StoreErrorKind
from lash.stores.base import CLAIM_SCAN_SURPLUS, SessionStore
from lash.stores.liveness import local_process_owner, opaque_owner
from lash.stores.memory import MemoryStore
from lash.testing.scenarios import (
    RUNTIME_SCENARIO_COVERAGE,
    ScenarioReport,
    dead_local_holder,
    run_scenario,
    scenario_coverage,
)
from lash.types import (
    GraphUnchanged,
    LeaseAcquired,
    LeaseBusy,
    LeaseOwner,
    LocalProcessLiveness,
    PendingTurnInputDraft,
    ProcessWake,
    QueueClaimCompletion,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    RuntimeCommit,
    SessionCheckpoint,
    SessionCommand,
    SessionLease,
    TurnInput,
    TurnInputClaim,
    TurnInputClaimCompletion,
)

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = "tests/runtime/test_fault_matrix.py"
SCENARIO_FILE = "tests/runtime/test_runtime_scenarios.py"


class FaultKind(enum.Enum):
    """The seven fault classes the matrix must cover."""

    CRASH_REOPEN = "crash_reopen"
    DUPLICATE_INPUTS = "duplicate_inputs"
    PROVIDER_FAILURE_RETRY = "provider_failure_retry"
    CANCELLATION = "cancellation"
    LEASE_LOSS = "lease_loss"
    TRIGGER_DELIVERY_RECOVERY = "trigger_delivery_recovery"
    BACKEND_PERMUTATION = "backend_permutation"


@dataclass(frozen=True)
class ScenarioEvidence:
    """Covered by a Runtime Scenario (its test lives in the scenario suite)."""

    scenario: str


@dataclass(frozen=True)
class TestEvidence:
    """Covered by a pytest test: ``path::test_name``, or a whole file (``path``)."""

    __test__ = False  # a record, not a test class
    target: str
    backend: str | None = None
    """A backend the cited suite must exercise (named in a module beside it) to count."""

    @property
    def path(self) -> str:
        return self.target.partition("::")[0]

    @property
    def test_name(self) -> str | None:
        return self.target.partition("::")[2] or None


@dataclass(frozen=True)
class Blocked:
    """Not executable in this suite, and why."""

    rationale: str


Evidence = ScenarioEvidence | TestEvidence | Blocked


@dataclass(frozen=True)
class FaultRow:
    number: int
    id: str
    kind: FaultKind
    contract: str
    evidence: tuple[Evidence, ...]


def _here(test_name: str) -> TestEvidence:
    return TestEvidence(f"{THIS_FILE}::{test_name}")


DURABLE_FAULT_MATRIX: tuple[FaultRow, ...] = (
    FaultRow(
        1,
        "crash-reopen-runtime-rebuild",
        FaultKind.CRASH_REOPEN,
        "A cold rebuild of runtime and session, plus worker recovery, keeps the durable graph "
        "and process state.",
        (
            TestEvidence(
                "tests/runtime/test_crash_recovery.py::"
                "test_runtime_rebuild_and_worker_recovery_with_durable_stores"
            ),
        ),
    ),
    FaultRow(
        2,
        "duplicate-turn-input-source-key",
        FaultKind.DUPLICATE_INPUTS,
        "A duplicate source key returns the original input and payload.",
        (
            ScenarioEvidence("runtime_scenario_observation_replay_keeps_original_turn_input"),
            _here("test_duplicate_turn_input_source_key_returns_the_original"),
        ),
    ),
    FaultRow(
        3,
        "provider-retry-exhaustion",
        FaultKind.PROVIDER_FAILURE_RETRY,
        "Retryable LLM failures are retried deterministically and fail the turn only after "
        "exhaustion.",
        (
            TestEvidence(
                "tests/runtime/test_turns.py::test_retryable_llm_failures_exhaust_and_fail_turn"
            ),
        ),
    ),
    FaultRow(
        4,
        "protocol-provider-failure",
        FaultKind.PROVIDER_FAILURE_RETRY,
        "A protocol-level provider failure stops without inventing a checkpoint.",
        (
            TestEvidence(
                "tests/kernel/test_standard_scenarios.py::"
                "test_standard_protocol_scenario_provider_error_stops_without_checkpoint"
            ),
        ),
    ),
    FaultRow(
        5,
        "checkpoint-redrive-cancel",
        FaultKind.CANCELLATION,
        "Active-turn and next-turn cancellation prevent a later redrive after checkpoint deferral.",
        (
            ScenarioEvidence("runtime_scenario_defers_checkpoint_turn_input_and_respects_cancel"),
            _here("test_checkpoint_redrive_cancel_survives_a_new_lease_generation"),
        ),
    ),
    FaultRow(
        6,
        "lease-release-fence",
        FaultKind.LEASE_LOSS,
        "A released lease cannot commit with a stale fence.",
        (
            ScenarioEvidence("runtime_scenario_rejects_commit_after_session_lease_release"),
            _here("test_released_lease_fence_cannot_commit"),
        ),
    ),
    FaultRow(
        7,
        "dead-lease-reclaim",
        FaultKind.LEASE_LOSS,
        "A dead holder is reclaimable; a stale observed-holder reclaim cannot clear a newer fence.",
        (
            ScenarioEvidence(
                "runtime_scenario_reclaims_dead_session_lease_and_rejects_stale_observation"
            ),
            _here("test_dead_lease_reclaim_needs_proof_of_death"),
        ),
    ),
    FaultRow(
        8,
        "queued-work-claim-generation-supersession",
        FaultKind.LEASE_LOSS,
        "A queue claim superseded by a new generation is rejected at commit.",
        (_here("test_queued_work_claims_supersede_across_session_lease_generations"),),
    ),
    FaultRow(
        9,
        "deferred-next-turn-generation-reclaim",
        FaultKind.LEASE_LOSS,
        "A failed turn's deferred-next-turn claim is reclaimed by an idle retry under a new "
        "generation; the stale completion is rejected.",
        (_here("test_turn_input_claims_supersede_across_session_lease_generations"),),
    ),
    FaultRow(
        10,
        "same-generation-claim-bounded-scan",
        FaultKind.LEASE_LOSS,
        "More than 32 same-generation claims cannot hide later unclaimed rows (queue, command, "
        "input) from bounded scans.",
        (_here("test_same_generation_claim_scans_reach_rows_beyond_the_scan_surplus"),),
    ),
    FaultRow(
        11,
        "trigger-delivery-reserve-start-crash-window",
        FaultKind.TRIGGER_DELIVERY_RECOVERY,
        "A delivery reserved before a crash, with no process row, is reconciled into exactly "
        "one deterministic start.",
        (
            Blocked(
                "The trigger store and process registry are not built yet; this row becomes "
                "executable with the processes and triggers layer."
            ),
        ),
    ),
    FaultRow(
        12,
        "trigger-delivery-prune-orphan-retention",
        FaultKind.TRIGGER_DELIVERY_RECOVERY,
        "Retention prunes delivery rows together with terminal process rows, so recovery does "
        "not resurrect them.",
        (
            Blocked(
                "Trigger delivery retention needs the trigger store and process registry, which "
                "are not built yet."
            ),
        ),
    ),
    FaultRow(
        13,
        "sqlite-backend-conformance",
        FaultKind.BACKEND_PERMUTATION,
        "SQLite runs the full backend conformance contract (reopen, source key, claims, leases, "
        "drainage, effect replay).",
        (TestEvidence("tests/stores/test_conformance.py", backend="sqlite"),),
    ),
    FaultRow(
        14,
        "postgres-backend-conformance",
        FaultKind.BACKEND_PERMUTATION,
        "The same conformance contract against Postgres.",
        (TestEvidence("tests/stores/test_conformance.py", backend="postgres"),),
    ),
)

_EXPECTED_ROWS = (
    ("crash-reopen-runtime-rebuild", FaultKind.CRASH_REOPEN),
    ("duplicate-turn-input-source-key", FaultKind.DUPLICATE_INPUTS),
    ("provider-retry-exhaustion", FaultKind.PROVIDER_FAILURE_RETRY),
    ("protocol-provider-failure", FaultKind.PROVIDER_FAILURE_RETRY),
    ("checkpoint-redrive-cancel", FaultKind.CANCELLATION),
    ("lease-release-fence", FaultKind.LEASE_LOSS),
    ("dead-lease-reclaim", FaultKind.LEASE_LOSS),
    ("queued-work-claim-generation-supersession", FaultKind.LEASE_LOSS),
    ("deferred-next-turn-generation-reclaim", FaultKind.LEASE_LOSS),
    ("same-generation-claim-bounded-scan", FaultKind.LEASE_LOSS),
    ("trigger-delivery-reserve-start-crash-window", FaultKind.TRIGGER_DELIVERY_RECOVERY),
    ("trigger-delivery-prune-orphan-retention", FaultKind.TRIGGER_DELIVERY_RECOVERY),
    ("sqlite-backend-conformance", FaultKind.BACKEND_PERMUTATION),
    ("postgres-backend-conformance", FaultKind.BACKEND_PERMUTATION),
)
"""§7.3 verbatim, so an edit to the table that drifts from the spec fails loudly."""


# --- meta-tests ----------------------------------------------------------------------------


def _defined_tests(path: Path) -> set[str]:
    """Names of the ``test_*`` functions a test module defines (module level or in classes)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def _suite_mentions(test_file: Path, word: str) -> bool:
    """Whether a test module, or a sibling module it imports relatively, names ``word``.

    That is how a suite registers a backend (``from .backends import BACKENDS``).
    """
    sources = [test_file]
    for node in ast.walk(ast.parse(test_file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            sources.append(test_file.parent / f"{node.module.replace('.', '/')}.py")
    return any(
        source.exists() and word.lower() in source.read_text(encoding="utf-8").lower()
        for source in sources
    )


def test_durable_fault_matrix_rows_match_the_spec() -> None:
    assert [r.number for r in DURABLE_FAULT_MATRIX] == list(range(1, 15))
    assert [(r.id, r.kind) for r in DURABLE_FAULT_MATRIX] == list(_EXPECTED_ROWS)
    for row in DURABLE_FAULT_MATRIX:
        assert row.contract.strip(), row.id
        assert row.evidence, row.id


def test_durable_fault_matrix_covers_required_fault_classes() -> None:
    assert len(FaultKind) == 7
    assert {r.kind for r in DURABLE_FAULT_MATRIX} == set(FaultKind)


def test_durable_fault_matrix_row_ids_are_unique() -> None:
    ids = [r.id for r in DURABLE_FAULT_MATRIX]
    assert len(ids) == len(set(ids))


def test_durable_fault_matrix_scenario_evidence_points_at_known_scenarios() -> None:
    known = {c.test_name for c in RUNTIME_SCENARIO_COVERAGE}
    scenario_tests = _defined_tests(ROOT / SCENARIO_FILE)
    cited = [
        (row.id, e.scenario)
        for row in DURABLE_FAULT_MATRIX
        for e in row.evidence
        if isinstance(e, ScenarioEvidence)
    ]
    assert [row_id for row_id, _ in cited] == [
        "duplicate-turn-input-source-key",
        "checkpoint-redrive-cancel",
        "lease-release-fence",
        "dead-lease-reclaim",
    ]
    for row_id, scenario in cited:
        assert scenario in known, f"{row_id} cites unknown scenario {scenario}"
        assert f"test_{scenario}" in scenario_tests, f"{row_id}: no test runs {scenario}"


def test_durable_fault_matrix_blocked_rows_are_alone_and_reasoned() -> None:
    blocked = []
    for row in DURABLE_FAULT_MATRIX:
        reasons = [e for e in row.evidence if isinstance(e, Blocked)]
        if reasons:
            assert len(row.evidence) == 1, f"{row.id} is blocked but also claims evidence"
            assert len(reasons[0].rationale.split()) >= 5, f"{row.id} needs a concrete rationale"
            blocked.append(row.number)
    assert blocked == [11, 12]


def _test_targets() -> list[tuple[str, TestEvidence]]:
    return [
        (row.id, e)
        for row in DURABLE_FAULT_MATRIX
        for e in row.evidence
        if isinstance(e, TestEvidence)
    ]


@pytest.mark.parametrize(
    ("row_id", "evidence"), _test_targets(), ids=[f"{r}:{e.target}" for r, e in _test_targets()]
)
def test_durable_fault_matrix_named_test_exists(row_id: str, evidence: TestEvidence) -> None:
    path = ROOT / evidence.path
    assert path.exists(), f"row {row_id} cites {evidence.path}, which does not exist"
    if evidence.backend is not None:
        assert _suite_mentions(path, evidence.backend), (
            f"row {row_id} cites {evidence.path}, which does not run the {evidence.backend} backend"
        )
    defined = _defined_tests(path)
    if evidence.test_name is None:
        assert defined, f"row {row_id}: {evidence.path} defines no tests"
    else:
        assert evidence.test_name in defined, f"row {row_id}: {evidence.target} is not defined"


def test_store_level_rows_are_tests_in_this_file() -> None:
    here = _defined_tests(ROOT / THIS_FILE)
    local = [e for _, e in _test_targets() if e.path == THIS_FILE]
    assert len(local) == 7  # rows 2 and 5-10
    for evidence in local:
        assert evidence.test_name in here, evidence.target


# --- store-level rows ----------------------------------------------------------------------

BackendFactory = Callable[[ManualClock, Path], SessionStore | Awaitable[SessionStore]]
"""Builds a fresh store on the clock, keeping any files under the directory."""

STORE_FACTORIES: dict[str, BackendFactory] = {
    "memory": lambda clock, _directory: MemoryStore(clock=clock),
}
"""Backends the store-level rows run on (SQLite and Postgres join as they land)."""

TTL_MS = 60_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(
    request: pytest.FixtureRequest, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[SessionStore]:
    built = STORE_FACTORIES[request.param](clock, tmp_path)
    opened = await built if inspect.isawaitable(built) else built
    yield opened
    await opened.aclose()


async def _acquire(
    store: SessionStore, session_id: str, owner: LeaseOwner, ttl: int = TTL_MS
) -> SessionLease:
    claim = await store.try_claim_lease(session_id, owner, ttl)
    assert isinstance(claim, LeaseAcquired), f"{owner.owner_id} found the lease busy"
    return claim.lease


def _wake_draft(session_id: str, text: str) -> QueuedWorkBatchDraft:
    return QueuedWorkBatchDraft(
        session_id=session_id, payloads=(ProcessWake(wake={"input": text}),)
    )


def _command_draft(session_id: str, reason: str) -> QueuedWorkBatchDraft:
    return QueuedWorkBatchDraft(
        session_id=session_id,
        payloads=(SessionCommand(command="refresh_tool_catalog", reason=reason),),
    )


def _input_draft(session_id: str, text: str) -> PendingTurnInputDraft:
    return PendingTurnInputDraft(session_id=session_id, input=TurnInput.text(text))


def _commit(
    lease: SessionLease,
    *,
    queue: QueuedWorkClaim | None = None,
    inputs: TurnInputClaim | None = None,
    release: bool = False,
) -> RuntimeCommit:
    return RuntimeCommit(
        session_id=lease.session_id,
        graph=GraphUnchanged(),
        checkpoint=SessionCheckpoint(),
        lease=lease.fence(),
        release_lease=release,
        completed_queue_claims=(
            ()
            if queue is None
            else (
                QueueClaimCompletion(
                    claim_id=queue.claim_id,
                    lease_token=queue.lease_token,
                    batch_ids=queue.batch_ids,
                ),
            )
        ),
        completed_turn_input_claims=(
            ()
            if inputs is None
            else (
                TurnInputClaimCompletion(
                    claim_id=inputs.claim_id,
                    lease_token=inputs.lease_token,
                    input_ids=inputs.input_ids,
                ),
            )
        ),
    )


async def _rejected(store: SessionStore, commit: RuntimeCommit, kind: StoreErrorKind) -> None:
    """``commit`` fails with ``kind`` and leaves the head and the queue exactly as they were."""
    before = (
        await store.load_session(commit.session_id),
        await store.list_queued_work(commit.session_id),
    )
    with pytest.raises(StoreError) as caught:
        await store.commit(commit)
    assert caught.value.kind is kind, caught.value
    after = (
        await store.load_session(commit.session_id),
        await store.list_queued_work(commit.session_id),
    )
    assert after == before


def _local_claimant(owner_id: str) -> LeaseOwner:
    owner = local_process_owner(owner_id)
    if owner.liveness is None:
        pytest.skip("proving a holder dead needs Linux /proc liveness")
    return owner


async def _run(test_name: str, store: SessionStore) -> ScenarioReport:
    return await run_scenario(scenario_coverage(test_name).scenario, store)


async def test_duplicate_turn_input_source_key_returns_the_original(store: SessionStore) -> None:
    """Row 2: scenario 6, plus source keys are scoped to their session."""
    report = await _run("runtime_scenario_observation_replay_keeps_original_turn_input", store)
    original = await store.get_turn_input(
        report.session_id, report.input_ids["observed-live-input"]
    )
    assert original is not None and original.state == "completed"
    elsewhere = await store.enqueue_turn_input(
        PendingTurnInputDraft(
            session_id="duplicate-source-key-other",
            input=TurnInput.text("a different payload"),
            source_key="runtime-scenario:observation",
        )
    )
    assert elsewhere.input_id != original.input_id
    assert elsewhere.state == "deferred_next_turn"


async def test_checkpoint_redrive_cancel_survives_a_new_lease_generation(
    store: SessionStore,
) -> None:
    """Row 5: scenario 7, then a fresh generation still finds nothing to redrive."""
    report = await _run("runtime_scenario_defers_checkpoint_turn_input_and_respects_cancel", store)
    lease = await _acquire(store, report.session_id, opaque_owner("redrive-successor"))
    assert report.lease is not None and lease.fencing_token > report.lease.fencing_token
    assert await store.claim_next_turn_inputs(lease.fence()) is None
    for checkpoint in ("after_work", "before_completion"):
        claimed = await store.claim_active_turn_inputs(
            lease.fence(), "runtime-scenario-redrive-turn", checkpoint
        )
        assert claimed is None
    assert await store.list_pending_turn_inputs(report.session_id) == []


async def test_released_lease_fence_cannot_commit(store: SessionStore) -> None:
    """Row 6: scenario 8, and a release frees the session at once (no TTL wait)."""
    report = await _run("runtime_scenario_rejects_commit_after_session_lease_release", store)
    assert report.lease is not None
    successor = await _acquire(store, report.session_id, opaque_owner("release-successor"))
    assert successor.fencing_token == report.lease.fencing_token + 1
    await _rejected(store, _commit(report.lease), StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED)
    result = await store.commit(_commit(successor, release=True))
    assert result.head_revision == 2


async def test_dead_lease_reclaim_needs_proof_of_death(store: SessionStore) -> None:
    """Row 7: scenario 9, and holders that cannot be proven dead are never reclaimed."""
    await _run("runtime_scenario_reclaims_dead_session_lease_and_rejects_stale_observation", store)
    claimant = _local_claimant("reclaim-claimant")
    assert claimant.liveness is not None
    mine = claimant.liveness
    alive_elsewhere = {
        "opaque": opaque_owner("opaque-holder"),
        "other-boot": LeaseOwner(
            owner_id="other-boot-holder",
            incarnation_id="i",
            liveness=LocalProcessLiveness(
                host_id=mine.host_id, boot_id=f"{mine.boot_id}-other", pid=1, process_start=0
            ),
        ),
        "live-local": local_process_owner("live-local-holder"),
    }
    for label, holder_owner in alive_elsewhere.items():
        sid = f"reclaim-refused-{label}"
        holder = await _acquire(store, sid, holder_owner)
        refused = await store.reclaim_lease(sid, claimant, holder.fence(), TTL_MS)
        assert isinstance(refused, LeaseBusy), label
        current = await store.get_lease(sid)
        assert current is not None and current.matches(holder.fence()), label

    # A stale observation stays busy even when the newer holder is itself provably dead:
    # only the observed-fence comparison can refuse it.
    sid = "reclaim-stale-observation"
    first = await _acquire(store, sid, dead_local_holder(claimant, "first-dead"))
    second_owner = dead_local_holder(claimant, "second-dead")
    second_claim = await store.reclaim_lease(sid, second_owner, first.fence(), TTL_MS)
    assert isinstance(second_claim, LeaseAcquired)
    second = second_claim.lease
    stale = await store.reclaim_lease(sid, claimant, first.fence(), TTL_MS)
    assert isinstance(stale, LeaseBusy)
    assert stale.holder.matches(second.fence())
    fresh = await store.reclaim_lease(sid, claimant, second.fence(), TTL_MS)
    assert isinstance(fresh, LeaseAcquired)
    assert fresh.lease.fencing_token > second.fencing_token > first.fencing_token


async def test_queued_work_claims_supersede_across_session_lease_generations(
    store: SessionStore, clock: ManualClock
) -> None:
    """Row 8: a queue claim is superseded by release + reacquire, by dead-holder takeover, and
    by TTL takeover; the same generation can never re-claim its own live row."""
    sid = "generation-queue"
    batch = await store.enqueue_queued_work(_wake_draft(sid, "generation work"))

    # (a) Same generation cannot re-claim; the live claim hides the row.
    lease_a = await _acquire(store, sid, opaque_owner("gen-owner-a"))
    claim_a = await store.claim_ready_queued_work(lease_a.fence(), "idle")
    assert claim_a is not None and claim_a.batch_ids == (batch.batch_id,)
    assert claim_a.session_lease_generation == lease_a.fencing_token
    assert await store.claim_ready_queued_work(lease_a.fence(), "idle") is None
    assert await store.list_pending_queued_work(sid) == []

    # (b) Release + reacquire mints a generation that supersedes the old claim.
    await store.release_lease(lease_a.fence())
    assert [b.batch_id for b in await store.list_pending_queued_work(sid)] == [batch.batch_id]
    lease_b = await _acquire(store, sid, opaque_owner("gen-owner-b"))
    assert lease_b.fencing_token > lease_a.fencing_token
    claim_b = await store.claim_ready_queued_work(lease_b.fence(), "idle")
    assert claim_b is not None and claim_b.batch_ids == (batch.batch_id,)
    assert claim_b.fencing_token > claim_a.fencing_token
    assert claim_b.claim_id != claim_a.claim_id
    await _rejected(
        store, _commit(lease_b, queue=claim_a), StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED
    )
    await _rejected(
        store, _commit(lease_a, queue=claim_a), StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED
    )
    await store.release_lease(lease_b.fence())

    # (c) A dead holder's claim is superseded by the claimant that reclaims its lease.
    claimant = _local_claimant("gen-taker")
    dead = await _acquire(store, sid, dead_local_holder(claimant, "gen-dead"))
    claim_dead = await store.claim_ready_queued_work(dead.fence(), "idle")
    assert claim_dead is not None and claim_dead.batch_ids == (batch.batch_id,)
    assert isinstance(await store.try_claim_lease(sid, claimant, TTL_MS), LeaseBusy)
    reclaimed = await store.reclaim_lease(sid, claimant, dead.fence(), TTL_MS)
    assert isinstance(reclaimed, LeaseAcquired)
    taker = reclaimed.lease
    assert taker.fencing_token > dead.fencing_token
    claim_taker = await store.claim_ready_queued_work(taker.fence(), "idle")
    assert claim_taker is not None and claim_taker.batch_ids == (batch.batch_id,)
    assert claim_taker.fencing_token > claim_dead.fencing_token
    await _rejected(
        store, _commit(taker, queue=claim_dead), StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED
    )
    await store.release_lease(taker.fence())

    # (d) A TTL expiry takeover supersedes without any release.
    stale = await _acquire(store, sid, opaque_owner("gen-stale"), ttl=1_000)
    claim_stale = await store.claim_ready_queued_work(stale.fence(), "idle")
    assert claim_stale is not None
    assert isinstance(
        await store.try_claim_lease(sid, opaque_owner("gen-early"), TTL_MS), LeaseBusy
    )
    clock.advance(1_000)
    successor = await _acquire(store, sid, opaque_owner("gen-successor"))
    assert successor.fencing_token > stale.fencing_token
    claim_successor = await store.claim_ready_queued_work(successor.fence(), "idle")
    assert claim_successor is not None and claim_successor.batch_ids == (batch.batch_id,)
    await _rejected(
        store, _commit(successor, queue=claim_stale), StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED
    )

    # The current generation's completion still settles the batch.
    await store.commit(_commit(successor, queue=claim_successor, release=True))
    assert await store.list_queued_work(sid) == []


async def test_turn_input_claims_supersede_across_session_lease_generations(
    store: SessionStore, clock: ManualClock
) -> None:
    """Row 9: a failed turn's deferred-next-turn claim is reclaimed by the next idle retry
    under a new generation, and the failed turn's completion is rejected."""
    sid = "generation-input"
    pending = await store.enqueue_turn_input(_input_draft(sid, "generation next input"))
    assert pending.state == "deferred_next_turn"

    lease_a = await _acquire(store, sid, opaque_owner("tin-owner-a"))
    claim_a = await store.claim_next_turn_inputs(lease_a.fence())
    assert claim_a is not None and claim_a.input_ids == (pending.input_id,)
    assert claim_a.session_lease_generation == lease_a.fencing_token
    assert claim_a.inputs[0].state == "deferred_next_turn"  # a next-turn claim keeps the state
    assert await store.claim_next_turn_inputs(lease_a.fence()) is None
    assert await store.list_pending_turn_inputs(sid) == []

    # The turn fails: its lease is released without a commit (no abandon, no completion).
    await store.release_lease(lease_a.fence())
    assert [p.input_id for p in await store.list_pending_turn_inputs(sid)] == [pending.input_id]

    # The idle retry reclaims the same input under a new generation.
    lease_b = await _acquire(store, sid, opaque_owner("tin-owner-b"), ttl=1_000)
    claim_b = await store.claim_next_turn_inputs(lease_b.fence())
    assert claim_b is not None and claim_b.input_ids == (pending.input_id,)
    assert claim_b.session_lease_generation > claim_a.session_lease_generation
    assert claim_b.claim_id != claim_a.claim_id
    await _rejected(
        store, _commit(lease_b, inputs=claim_a), StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED
    )
    row = await store.get_turn_input(sid, pending.input_id)
    assert row is not None and row.state == "deferred_next_turn"
    assert row.claim is not None and row.claim.claim_id == claim_b.claim_id

    # The retry dies too; after its TTL the next worker supersedes it the same way.
    clock.advance(1_000)
    lease_c = await _acquire(store, sid, opaque_owner("tin-owner-c"))
    claim_c = await store.claim_next_turn_inputs(lease_c.fence())
    assert claim_c is not None and claim_c.input_ids == (pending.input_id,)
    await _rejected(
        store, _commit(lease_c, inputs=claim_b), StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED
    )

    await store.commit(_commit(lease_c, inputs=claim_c, release=True))
    row = await store.get_turn_input(sid, pending.input_id)
    assert row is not None and row.state == "completed"
    assert await store.list_pending_turn_inputs(sid) == []


ROW_COUNT = 34


async def test_same_generation_claim_scans_reach_rows_beyond_the_scan_surplus(
    store: SessionStore,
) -> None:
    """Row 10: 34 rows claimed one at a time under one generation; each claim still reaches
    the next unclaimed row although the earlier, live-claimed ones exceed the scan surplus."""
    assert ROW_COUNT > CLAIM_SCAN_SURPLUS + 1

    queue_sid = "bounded-scan-queue"
    batches = [
        await store.enqueue_queued_work(_wake_draft(queue_sid, f"q{i}")) for i in range(ROW_COUNT)
    ]
    lease = await _acquire(store, queue_sid, opaque_owner("bounded-scan-queue-owner"))
    for expected in batches:
        claim = await store.claim_ready_queued_work(lease.fence(), "idle", max_batches=1)
        assert claim is not None and claim.batch_ids == (expected.batch_id,)
    assert await store.claim_ready_queued_work(lease.fence(), "idle", max_batches=1) is None
    await store.release_lease(lease.fence())

    command_sid = "bounded-scan-command"
    commands = [
        await store.enqueue_queued_work(_command_draft(command_sid, f"c{i}"))
        for i in range(ROW_COUNT)
    ]
    lease = await _acquire(store, command_sid, opaque_owner("bounded-scan-command-owner"))
    for expected in commands:
        claim = await store.claim_leading_session_command(lease.fence())
        assert claim is not None and claim.batch_ids == (expected.batch_id,)
    assert await store.claim_leading_session_command(lease.fence()) is None
    await store.release_lease(lease.fence())

    input_sid = "bounded-scan-turn-input"
    inputs = [
        await store.enqueue_turn_input(_input_draft(input_sid, f"i{i}")) for i in range(ROW_COUNT)
    ]
    lease = await _acquire(store, input_sid, opaque_owner("bounded-scan-input-owner"))
    for expected_input in inputs:
        claimed = await store.claim_next_turn_inputs(lease.fence(), max_inputs=1)
        assert claimed is not None and claimed.input_ids == (expected_input.input_id,)
    assert await store.claim_next_turn_inputs(lease.fence(), max_inputs=1) is None
    await store.release_lease(lease.fence())
