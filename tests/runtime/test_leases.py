"""The session execution lease: fencing, renewal, loss, dead-holder takeover, idempotent commits."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgspec
import pytest

import lash
from lash.clock import ManualClock
from lash.errors import RuntimeErrorCode, StoreError, StoreErrorKind
from lash.runtime.lease import LeaseGuard
from lash.stores import MemoryStore
from lash.stores.liveness import local_process_owner, opaque_owner
from lash.testing import ScriptedProvider, reply, tool_call
from lash.types import LeaseAcquired, LeaseFence, LocalProcessLiveness, RuntimeCommit


class RecordingStore(MemoryStore):
    """MemoryStore that remembers every commit it was asked to apply."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commits: list[RuntimeCommit] = []

    async def commit(self, commit: RuntimeCommit) -> Any:
        self.commits.append(commit)
        return await super().commit(commit)


def test_lease_timings_require_three_renewals_per_ttl() -> None:
    assert lash.LeaseTimings().ttl_s == 30.0
    assert lash.LeaseTimings.from_ttl(9).renew_s == 3
    with pytest.raises(ValueError, match="3x"):
        lash.LeaseTimings(ttl_s=10, renew_s=5)
    with pytest.raises(ValueError, match="1 ms"):
        lash.LeaseTimings(ttl_s=0, renew_s=0)


async def test_lease_lost_mid_turn_commits_nothing(make_core: Any) -> None:
    clock = ManualClock()
    store = MemoryStore(clock=clock)
    thief = opaque_owner("thief")

    @lash.tool
    async def slow(ctx: lash.ToolContext) -> str:
        """Takes longer than the lease TTL, while another worker takes over."""
        clock.advance(31_000)
        claim = await store.try_claim_lease("s", thief, 30_000)
        assert isinstance(claim, LeaseAcquired)
        return "done late"

    core = make_core(
        [tool_call("slow", {}, "c1"), reply("too late")],
        tools=[slow],
        store=store,
        clock=clock,
    )
    session = await core.session("s").open()
    with pytest.raises(lash.LashRuntimeError) as err:
        await session.turn("go").run()
    assert err.value.code == RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST
    assert await store.load_session("s") is None  # nothing of the turn is visible
    lease = await store.get_lease("s")
    assert lease is not None and lease.owner.owner_id == "thief" and lease.fencing_token == 2


async def test_renewal_failure_marks_lease_lost_and_stops_the_turn(make_core: Any) -> None:
    class FailingRenewal(MemoryStore):
        async def renew_lease(self, fence: LeaseFence, ttl_ms: int) -> Any:
            raise StoreError(StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED, "gone")

    @lash.tool
    async def forever(ctx: lash.ToolContext) -> str:
        """Blocks until cancelled."""
        await asyncio.Event().wait()
        return "never"

    store = FailingRenewal()
    core = make_core(
        [tool_call("forever", {}, "c1"), reply("x")],
        tools=[forever],
        store=store,
        lease_timings=lash.LeaseTimings(ttl_s=0.09, renew_s=0.03),
    )
    session = await core.session("s").open()
    with pytest.raises(lash.LashRuntimeError) as err:
        await asyncio.wait_for(session.turn("go").run(), 5)
    assert err.value.code == RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST
    assert await store.load_session("s") is None


async def test_renewal_keeps_fencing_and_extends_expiry() -> None:
    clock = ManualClock()
    store = MemoryStore(clock=clock)
    owner = opaque_owner("w")
    claim = await store.try_claim_lease("s", owner, 3_000)
    assert isinstance(claim, LeaseAcquired)
    renewed = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        if renewed.is_set():
            await asyncio.Event().wait()
        clock.advance(int(seconds * 1000))
        renewed.set()

    guard = LeaseGuard(store, claim.lease, lash.LeaseTimings(ttl_s=3, renew_s=1), sleep=fake_sleep)
    guard.start()
    await asyncio.wait_for(renewed.wait(), 5)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert guard.lease.fencing_token == claim.lease.fencing_token
    assert guard.lease.expires_at_ms == clock.now_ms() + 3_000
    assert not guard.lost
    await guard.release()
    lease = await store.get_lease("s")
    assert lease is not None and not lease.is_live(clock.now_ms())
    assert lease.fencing_token == claim.lease.fencing_token


async def test_dead_local_holder_is_taken_over_without_waiting_for_ttl(make_core: Any) -> None:
    store = MemoryStore()
    me = local_process_owner("me")
    if me.liveness is None:
        pytest.skip("local-process liveness needs /proc (Linux)")
    dead_pid = 4_000_000 + os.getpid() % 1000
    assert not os.path.exists(f"/proc/{dead_pid}")
    dead = msgspec.structs.replace(
        local_process_owner("crashed-worker"),
        liveness=LocalProcessLiveness(
            host_id=me.liveness.host_id,
            boot_id=me.liveness.boot_id,
            pid=dead_pid,
            process_start=1,
        ),
    )
    claim = await store.try_claim_lease("s", dead, 3_600_000)
    assert isinstance(claim, LeaseAcquired)
    core = make_core([reply("recovered")], store=store)
    session = await core.session("s").open()
    result = await session.turn("resume").run()
    assert result.assistant_text == "recovered"
    lease = await store.get_lease("s")
    assert lease is not None and lease.fencing_token == 2


async def test_live_local_holder_is_not_taken_over(make_core: Any) -> None:
    store = MemoryStore()
    alive = local_process_owner("still-running")  # this very process: provably alive
    claim = await store.try_claim_lease("s", alive, 3_600_000)
    assert isinstance(claim, LeaseAcquired)
    core = make_core([reply("x")], store=store)
    session = await core.session("s").open()
    with pytest.raises(lash.LashRuntimeError) as err:
        await session.turn("go").run()
    assert err.value.code == RuntimeErrorCode.SESSION_EXECUTION_BUSY


async def test_commit_replay_is_idempotent_and_changed_retry_conflicts(make_core: Any) -> None:
    store = RecordingStore()
    core = make_core([reply("the answer")], store=store)
    session = await core.session("s").open()
    result = await session.turn("q").turn_id("turn-1").run()
    commit = store.commits[-1]
    assert commit.turn_commit is not None and commit.lease is not None
    lease = await store.get_lease("s")
    assert lease is not None and not lease.is_live(core.config.clock.now_ms())  # released

    # an identical retry (even with fresh node ids) returns the stored result without a lease
    renamed = msgspec.structs.replace(
        commit,
        graph=msgspec.structs.replace(
            commit.graph,
            nodes=tuple(
                msgspec.structs.replace(n, node_id=n.node_id + "-replay", timestamp_ms=1)
                for n in commit.graph.nodes  # type: ignore[union-attr]
            ),
        ),
    )
    replayed = await store.commit(renamed.stamped("turn-1"))
    assert replayed.replayed
    assert replayed.head_revision == result.head_revision
    assert replayed.result["assistant_output"]["safe_text"] == "the answer"

    # a retry with different semantic content is rejected
    changed = msgspec.structs.replace(
        commit, checkpoint=msgspec.structs.replace(commit.checkpoint, turn_index=99)
    ).stamped("turn-1")
    with pytest.raises(StoreError) as err:
        await store.commit(changed)
    assert err.value.kind is StoreErrorKind.RUNTIME_TURN_COMMIT_CONFLICT

    # a stale fence cannot make a new (unstamped) commit
    stale = msgspec.structs.replace(commit, turn_commit=None, expected_head_revision=None)
    with pytest.raises(StoreError) as err2:
        await store.commit(stale)
    assert err2.value.kind is StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED
    loaded = await store.load_session("s")
    assert loaded is not None and loaded.head_revision == 1


async def test_duplicate_turn_id_with_new_content_fails_the_commit(make_core: Any) -> None:
    core = make_core(ScriptedProvider([reply("one"), reply("two")]))
    session = await core.session("s").open()
    await session.turn("a").turn_id("same").run()
    with pytest.raises(lash.LashRuntimeError) as err:
        await session.turn("b").turn_id("same").run()
    assert err.value.code == RuntimeErrorCode.STORE_COMMIT_FAILED
    view = await session.read_view()
    assert [m.text for m in view.messages] == ["a", "one"]
