"""The nine Runtime Scenarios (core-runtime.md §7.2), the phase-order property and metadata.

Each scenario runs through :func:`lash.testing.scenarios.run_scenario`, which asserts the
scenario's own invariant phase by phase; the tests then re-read the store directly, so a
harness bug that skipped a check would still be caught. Every test runs on each backend in
``STORE_FACTORIES``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lash.clock import ManualClock
from lash.stores.base import SessionStore
from lash.stores.memory import MemoryStore
from lash.testing.scenarios import (
    EVIDENCE_KINDS,
    RUNTIME_SCENARIO_COVERAGE,
    Checkpoint,
    Commit,
    CommitAfterSessionLeaseRelease,
    ConflictingReplay,
    Fault,
    Ingress,
    LeadingCommandClaim,
    Lease,
    NextTurnInput,
    NextTurnInputClaim,
    Phase,
    QueueProcessWake,
    ReclaimDeadHolder,
    RuntimeScenario,
    ScenarioError,
    ScenarioFailure,
    ScenarioReport,
    StaleQueueCompletion,
    TurnWorkClaim,
    phase_order_is_valid,
    run_scenario,
    run_scenario_on,
    scenario_coverage,
    validate_phase_order,
)
from lash.types import PendingTurnInputDraft, TurnInput

BackendFactory = Callable[[ManualClock, Path], SessionStore | Awaitable[SessionStore]]
"""Builds a fresh store on the clock, keeping any files under the directory."""

STORE_FACTORIES: dict[str, BackendFactory] = {
    "memory": lambda clock, _directory: MemoryStore(clock=clock),
}
"""Backends every scenario runs on (SQLite and Postgres join as they land)."""


@pytest.fixture(params=sorted(STORE_FACTORIES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    built = STORE_FACTORIES[request.param](ManualClock(), tmp_path)
    opened = await built if inspect.isawaitable(built) else built
    yield opened
    await opened.aclose()


async def _run(test_name: str, store: SessionStore) -> ScenarioReport:
    return await run_scenario(scenario_coverage(test_name).scenario, store)


# --- the nine scenarios --------------------------------------------------------------------


async def test_runtime_scenario_drains_command_before_turn_work_and_commits_checkpoint(
    store: SessionStore,
) -> None:
    report = await _run(
        "runtime_scenario_drains_command_before_turn_work_and_commits_checkpoint", store
    )
    loaded = await store.load_session(report.session_id)
    assert loaded is not None
    assert loaded.checkpoint.turn_index == 7
    assert loaded.head_revision == report.head_revision == 2  # checkpoint + final; fault rejected
    assert await store.list_queued_work(report.session_id) == []
    assert report.lease_released
    assert {"queued_ingress", "process_wake", "worker_stale_completion", "lease_time"} <= (
        report.evidence
    )


async def test_runtime_scenario_command_only_queue_drain_completes_without_turn_work(
    store: SessionStore,
) -> None:
    report = await _run(
        "runtime_scenario_command_only_queue_drain_completes_without_turn_work", store
    )
    loaded = await store.load_session(report.session_id)
    assert loaded is not None and loaded.head_revision == 1
    assert await store.list_queued_work(report.session_id) == []
    assert "process_wake" not in report.evidence
    assert report.lease_released


async def test_runtime_scenario_queued_work_claim_keeps_pending_next_turn_input(
    store: SessionStore,
) -> None:
    report = await _run("runtime_scenario_queued_work_claim_keeps_pending_next_turn_input", store)
    sid = report.session_id
    pending = await store.list_pending_turn_inputs(sid)
    assert [(p.input_id, p.state, p.ingress.kind, p.claim) for p in pending] == [
        (report.input_ids["pending-user-input"], "deferred_next_turn", "next_turn", None)
    ]
    # The wake is held by the live claim: stored, but not pending.
    assert len(await store.list_queued_work(sid)) == 1
    assert await store.list_pending_queued_work(sid) == []
    assert not report.lease_released


async def test_runtime_scenario_claims_process_wake_at_active_checkpoint_boundary(
    store: SessionStore,
) -> None:
    report = await _run("runtime_scenario_claims_process_wake_at_active_checkpoint_boundary", store)
    (batch,) = await store.list_queued_work(report.session_id)
    assert batch.delivery_policy == "earliest_safe_boundary"
    assert batch.claim is not None and report.lease is not None
    assert batch.claim.session_lease_generation == report.lease.fencing_token
    assert await store.list_pending_queued_work(report.session_id) == []
    assert "process_wake" in report.evidence


async def test_runtime_scenario_claims_queued_turn_input_and_completes_it(
    store: SessionStore,
) -> None:
    report = await _run("runtime_scenario_claims_queued_turn_input_and_completes_it", store)
    for alias in ("first", "second"):
        row = await store.get_turn_input(report.session_id, report.input_ids[alias])
        assert row is not None and row.state == "completed"
    assert await store.list_pending_turn_inputs(report.session_id) == []
    other = await store.list_pending_turn_inputs("runtime-scenario-other-session")
    assert [(o.input.plain_text, o.state) for o in other] == [
        ("other session input", "deferred_next_turn")
    ]


async def test_runtime_scenario_observation_replay_keeps_original_turn_input(
    store: SessionStore,
) -> None:
    report = await _run("runtime_scenario_observation_replay_keeps_original_turn_input", store)
    original = report.input_ids["observed-live-input"]
    assert report.input_ids["observed-live-input-replay"] == original
    # A replay after completion still answers with the original row, now completed.
    again = await store.enqueue_turn_input(
        PendingTurnInputDraft(
            session_id=report.session_id,
            input=TurnInput.text("observed live input"),
            source_key="runtime-scenario:observation",
        )
    )
    assert (again.input_id, again.state) == (original, "completed")


async def test_runtime_scenario_defers_checkpoint_turn_input_and_respects_cancel(
    store: SessionStore,
) -> None:
    report = await _run("runtime_scenario_defers_checkpoint_turn_input_and_respects_cancel", store)
    rows = {
        alias: await store.get_turn_input(report.session_id, report.input_ids[alias])
        for alias in ("active-keep", "active-cancel", "next-cancel")
    }
    assert {alias: row and row.state for alias, row in rows.items()} == {
        "active-keep": "cancelled",
        "active-cancel": "cancelled",
        "next-cancel": "cancelled",
    }
    keep, dropped = rows["active-keep"], rows["active-cancel"]
    assert keep is not None and keep.ingress.kind == "next_turn"  # deferred before its cancel
    assert dropped is not None and dropped.ingress.kind == "active_turn"  # never resurrected
    assert "cancellation" in report.evidence


async def test_runtime_scenario_rejects_commit_after_session_lease_release(
    store: SessionStore,
) -> None:
    report = await _run("runtime_scenario_rejects_commit_after_session_lease_release", store)
    loaded = await store.load_session(report.session_id)
    assert loaded is not None
    assert (loaded.head_revision, loaded.checkpoint.turn_index) == (1, 0)
    assert report.lease_released
    assert "worker_stale_completion" in report.evidence


async def test_runtime_scenario_reclaims_dead_session_lease_and_rejects_stale_observation(
    store: SessionStore,
) -> None:
    report = await _run(
        "runtime_scenario_reclaims_dead_session_lease_and_rejects_stale_observation", store
    )
    current = await store.get_lease(report.session_id)
    assert report.lease is not None and current is not None
    assert current.matches(report.lease.fence())
    assert current.fencing_token == 3  # the dead holder had 1, the racing reclaimer 2
    assert current.owner.owner_id == "runtime-scenario-reclaim-owner"
    assert report.evidence == frozenset({"lease_time"})


# --- metadata ------------------------------------------------------------------------------


def test_scenario_coverage_metadata_is_unique_and_complete() -> None:
    assert len(RUNTIME_SCENARIO_COVERAGE) == 9
    names = [c.test_name for c in RUNTIME_SCENARIO_COVERAGE]
    assert len(set(names)) == 9
    assert len({c.display_name for c in RUNTIME_SCENARIO_COVERAGE}) == 9
    assert len({c.scenario.session_id for c in RUNTIME_SCENARIO_COVERAGE}) == 9
    module = globals()
    for coverage in RUNTIME_SCENARIO_COVERAGE:
        assert coverage.test_name.startswith("runtime_scenario_"), coverage.test_name
        assert coverage.display_name.strip() and coverage.owned_invariant.strip()
        assert coverage.scenario.name == coverage.display_name
        test = module.get(f"test_{coverage.test_name}")
        assert test is not None and inspect.iscoroutinefunction(test), coverage.test_name
        coverage.scenario.validate()


def test_every_runtime_scenario_test_has_a_coverage_entry() -> None:
    declared = {c.test_name for c in RUNTIME_SCENARIO_COVERAGE}
    defined = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert {n for n in defined if n.startswith("runtime_scenario_")} == declared


def test_evidence_kinds_are_the_runtime_contract_set() -> None:
    assert set(EVIDENCE_KINDS) == {
        "queued_ingress",
        "cancellation",
        "process_wake",
        "worker_stale_completion",
        "lease_time",
    }


async def test_scenario_evidence_covers_every_required_kind(store: SessionStore) -> None:
    """Across the contract scenarios, every evidence kind a simulation requires is observed."""
    seen: set[str] = set()
    for coverage in RUNTIME_SCENARIO_COVERAGE:
        seen |= (await run_scenario(coverage.scenario, store)).evidence
    assert seen == set(EVIDENCE_KINDS)


async def test_run_scenario_on_opens_a_fresh_store_and_closes_it() -> None:
    opened: list[MemoryStore] = []
    closed: list[MemoryStore] = []

    class Tracking(MemoryStore):
        async def aclose(self) -> None:
            closed.append(self)
            await super().aclose()

    async def open_store(clock: ManualClock) -> SessionStore:
        opened.append(Tracking(clock=clock))
        return opened[-1]

    scenario = scenario_coverage(
        "runtime_scenario_command_only_queue_drain_completes_without_turn_work"
    ).scenario
    first = await run_scenario_on(scenario, open_store)
    second = await run_scenario_on(scenario, open_store)  # a reused store would find no command
    assert first.lease_released and second.lease_released
    assert len(opened) == 2 and closed == opened


# --- validation and failure reporting ------------------------------------------------------


@pytest.mark.parametrize(
    ("phases", "rule"),
    [
        ((), "no_phases"),
        ((Commit(), Ingress()), "release_not_last"),
        ((Fault(CommitAfterSessionLeaseRelease), Ingress()), "release_not_last"),
        ((Checkpoint(), Lease(ReclaimDeadHolder())), "reclaim_after_lease_claim"),
        ((Lease(ReclaimDeadHolder()), Lease(ReclaimDeadHolder())), "reclaim_after_lease_claim"),
        (
            (LeadingCommandClaim(), Fault(StaleQueueCompletion)),
            "stale_completion_without_turn_work",
        ),
        ((NextTurnInputClaim(expect_texts=("x",)),), "misaligned_next_turn_claim"),
        ((NextTurnInputClaim(expect_aliases=("x",), expect_texts=("x",)),), "unknown_alias"),
        ((Ingress(cancel=("ghost",)),), "unknown_alias"),
        (
            (Ingress(turn_inputs=(ConflictingReplay("t", "k", expected_alias="nope"),)),),
            "unknown_alias",
        ),
        (
            (Ingress(turn_inputs=(NextTurnInput("a", "one"), NextTurnInput("a", "two"))),),
            "duplicate_alias",
        ),
        ((cast(Phase, "commit"),), "unknown_phase"),
        ((Fault(cast(Any, "stale_queue_completion")),), "unknown_phase"),
        ((Lease(cast(Any, ReclaimDeadHolder)),), "unknown_phase"),
    ],
)
def test_phase_order_validator_names_the_broken_rule(phases: tuple[Phase, ...], rule: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        validate_phase_order(phases, scenario="bad")
    assert caught.value.rule == rule
    assert str(caught.value).startswith(f"bad: {rule}: ")


async def test_invalid_scenario_is_rejected_before_any_write(store: SessionStore) -> None:
    scenario = RuntimeScenario(
        "release in the middle",
        "runtime-scenario-invalid",
        "owner",
        (Ingress(queue=(QueueProcessWake("never enqueued"),)), Commit(), Ingress()),
    )
    with pytest.raises(ScenarioError, match="release_not_last"):
        await run_scenario(scenario, store)
    assert await store.list_queued_work("runtime-scenario-invalid") == []
    assert await store.get_lease("runtime-scenario-invalid") is None


async def test_scenario_failure_names_the_phase_where_the_store_disagreed(
    store: SessionStore,
) -> None:
    scenario = RuntimeScenario(
        "wrong count",
        "runtime-scenario-wrong-count",
        "owner",
        (Ingress(queue=(QueueProcessWake("one wake"),)), TurnWorkClaim("idle", expect_count=2)),
    )
    with pytest.raises(ScenarioFailure, match=r"wrong count \[phase 1 TurnWorkClaim\]") as caught:
        await run_scenario(scenario, store)
    assert caught.value.phase_index == 1


# --- phase-order property ------------------------------------------------------------------

_SYMBOLS = (
    "ingress",
    "checkpoint",
    "leading_command_claim",
    "turn_work_claim",
    "next_turn_input_claim",
    "misaligned_next_turn_input_claim",
    "dead_lease_reclaim",
    "stale_queue_completion",
    "released_lease_commit",
    "commit",
)


def _phase(symbol: str) -> Phase:
    phases: dict[str, Phase] = {
        "ingress": Ingress(),
        "checkpoint": Checkpoint(),
        "leading_command_claim": LeadingCommandClaim(),
        "turn_work_claim": TurnWorkClaim("idle"),
        "next_turn_input_claim": NextTurnInputClaim(),
        "misaligned_next_turn_input_claim": NextTurnInputClaim(expect_aliases=("one",)),
        "dead_lease_reclaim": Lease(ReclaimDeadHolder()),
        "stale_queue_completion": Fault(StaleQueueCompletion),
        "released_lease_commit": Fault(CommitAfterSessionLeaseRelease),
        "commit": Commit(),
    }
    return phases[symbol]


def _oracle(symbols: list[str]) -> bool:
    """The §7.1 rules restated over whole prefixes, independently of the validator's loop."""
    releasing = {"commit", "released_lease_commit"}
    takes_lease = {
        "checkpoint",
        "leading_command_claim",
        "turn_work_claim",
        "next_turn_input_claim",
        "misaligned_next_turn_input_claim",
        "stale_queue_completion",
        "commit",
        "dead_lease_reclaim",
    }
    if "misaligned_next_turn_input_claim" in symbols:
        return False
    if any(s in releasing for s in symbols[:-1]):
        return False
    for i, symbol in enumerate(symbols):
        before = symbols[:i]
        if symbol == "dead_lease_reclaim" and takes_lease.intersection(before):
            return False
        if symbol == "stale_queue_completion" and "turn_work_claim" not in before:
            return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_SYMBOLS), min_size=1, max_size=8))
def test_runtime_state_machine_property_phase_order_matches_scenario_dsl(
    symbols: list[str],
) -> None:
    phases = [_phase(s) for s in symbols]
    assert phase_order_is_valid(phases) == _oracle(symbols)
