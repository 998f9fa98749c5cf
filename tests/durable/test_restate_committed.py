"""The store view a redrive after the commit replays over (``durable.restate.committed``)."""

from __future__ import annotations

from typing import cast

from lash.durable.restate.committed import _CommittedTurnStore, holds_turn, rewind
from lash.stores.base import DurabilityTier, SessionStore
from lash.stores.liveness import opaque_owner
from lash.types import (
    GraphAppend,
    PersistedSession,
    RuntimeCommit,
    RuntimeCommitResult,
    SessionCheckpoint,
)
from lash.types.graph import MessagePayload, SessionNode
from lash.types.lease import LeaseFence
from lash.types.messages import Message, TextPart


def _node(node_id: str, parent: str | None) -> SessionNode:
    message = Message(id=node_id, role="user", parts=(TextPart(text=node_id),))
    return SessionNode(
        node_id=node_id, parent_node_id=parent, payload=MessagePayload(message=message)
    )


def _session() -> PersistedSession:
    nodes = (
        _node("t0:n0:aa", None),
        _node("t0:n1:bb", "t0:n0:aa"),
        _node("t1:n0:cc", "t0:n1:bb"),
        _node("t1:n1:dd", "t1:n0:cc"),
        _node("memory:n0:ee", "t1:n1:dd"),  # a plugin node appended after the commit
    )
    return PersistedSession(
        session_id="s1",
        head_revision=3,
        nodes=nodes,
        leaf_node_id="memory:n0:ee",
        checkpoint=SessionCheckpoint(turn_index=2),
    )


def test_rewind_hides_the_turn_and_what_follows_and_restores_its_start() -> None:
    persisted = _session()
    assert holds_turn(persisted, "t1") and not holds_turn(persisted, "t9")
    before = rewind(persisted, "t1", start_revision=1)
    assert [n.node_id for n in before.nodes] == ["t0:n0:aa", "t0:n1:bb"]
    assert before.leaf_node_id == "t0:n1:bb"
    assert before.head_revision == 1 and before.checkpoint.turn_index == 1


def test_rewind_leaves_a_session_without_the_turn_alone() -> None:
    persisted = _session()
    assert rewind(persisted, "t9", start_revision=0) is persisted
    assert not holds_turn(None, "t1")


class _Inner:
    """A store that must not be written: the turn is already committed."""

    tier = DurabilityTier.DURABLE

    def __init__(self) -> None:
        self.released: list[LeaseFence] = []

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        raise AssertionError("the committed turn was written again")

    async def release_lease(self, fence: LeaseFence) -> None:
        self.released.append(fence)


async def test_the_committed_turn_is_answered_as_a_replay_without_a_write() -> None:
    inner = _Inner()
    view = _CommittedTurnStore(cast(SessionStore, inner), "s1", "t1", start_revision=4)
    assert view.tier is DurabilityTier.DURABLE
    fence = LeaseFence(
        session_id="s1",
        owner=opaque_owner("restate:LashTurn/t1", "test"),
        lease_token="tok",
        fencing_token=3,
    )
    commit = RuntimeCommit(
        session_id="s1",
        graph=GraphAppend(nodes=()),
        checkpoint=SessionCheckpoint(turn_index=5),
        expected_head_revision=4,
        lease=fence,
        release_lease=True,
        result={"head_revision": 5},
    ).stamped("t1")
    answer = await view.commit(commit)
    # the revision the stored commit made, even if plugin appends moved the head since
    expected = RuntimeCommitResult(head_revision=5, result={"head_revision": 5}, replayed=True)
    assert answer == expected
    assert inner.released == [fence]  # what the stored commit did with the lease
