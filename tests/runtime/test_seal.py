"""The completion seal is awaited before the commit: a cancel request that wins the gate while
the seal is still being decided (after the turn's last gate read) makes the turn end, and
commit, cancelled; first writer wins, as in lash."""

from __future__ import annotations

import asyncio

import lash
from lash.runtime.effect_host import TurnControl
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply
from lash.types import CancellationEvidence, RuntimeCommit, RuntimeCommitResult


class SlowSeal(TurnControl):
    """A gate whose seal takes a while to be decided (as a durable gate's round trip does)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def seal_before_commit(
        self, session_id: str, turn_id: str, local_evidence: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        self.entered.set()
        await self.release.wait()
        return await super().seal_before_commit(session_id, turn_id, local_evidence)


class SlowSealHost(lash.InlineEffectHost):
    def __init__(self) -> None:
        super().__init__()
        self.control = SlowSeal()

    @property
    def turn_control(self) -> TurnControl:
        return self.control


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.commits: list[RuntimeCommit] = []

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        self.commits.append(commit)
        return await super().commit(commit)


def _evidence(request_id: str) -> CancellationEvidence:
    return CancellationEvidence(request_id=request_id, origin="user", reason="stop")


async def _start(host: SlowSealHost, store: CountingStore) -> asyncio.Task[lash.TurnResult]:
    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([reply("all done")]))
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(host)
        .build()
    )
    session = await core.session("s").open()
    task = asyncio.ensure_future(session.turn("go").turn_id("t1").run())
    await asyncio.wait_for(host.control.entered.wait(), 5)
    return task


async def test_a_cancel_winning_the_gate_during_the_seal_ends_and_commits_the_turn_cancelled() -> (
    None
):
    host, store = SlowSealHost(), CountingStore()
    task = await _start(host, store)
    assert store.commits == []  # nothing commits while the seal is undecided
    receipt = host.control.request_cancel("s", "t1", _evidence("r1"))
    assert receipt.outcome == "requested"
    host.control.release.set()
    result = await asyncio.wait_for(task, 5)
    assert (result.outcome.kind, result.outcome.reason) == ("stopped", "cancelled")
    assert result.cancellation == _evidence("r1")
    assert len(store.commits) == 1
    committed = store.commits[0].result
    assert isinstance(committed, dict)
    assert committed["outcome"]["reason"] == "cancelled"
    assert committed["cancellation"]["request_id"] == "r1"
    again = host.control.request_cancel("s", "t1", _evidence("r2"))
    assert (again.outcome, again.evidence) == ("already_requested", _evidence("r1"))


async def test_a_seal_decided_first_commits_the_finished_turn_and_a_later_cancel_loses() -> None:
    host, store = SlowSealHost(), CountingStore()
    task = await _start(host, store)
    assert store.commits == []
    host.control.release.set()
    result = await asyncio.wait_for(task, 5)
    assert result.outcome.kind == "finished" and result.cancellation is None
    assert len(store.commits) == 1
    late = host.control.request_cancel("s", "t1", _evidence("late"))
    assert late.outcome == "completion_won_race"


async def test_the_inline_seal_is_the_gate_seal() -> None:
    control = TurnControl()
    control.register("s", "t")
    assert await control.seal_before_commit("s", "t", None) is None
    assert control.peek("s", "t").status == "completion_sealed"
    other = TurnControl()
    other.request_cancel("s", "t", _evidence("early"))
    assert await other.seal_before_commit("s", "t", None) == _evidence("early")
