"""The store view a redrive after the commit replays over (``durable.restate.committed``)."""

from __future__ import annotations

from lash.durable.restate.committed import holds_turn, rewind
from lash.types import PersistedSession, SessionCheckpoint
from lash.types.graph import MessagePayload, SessionNode
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
