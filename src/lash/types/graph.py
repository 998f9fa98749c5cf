"""The session graph: append-only nodes, an active path from the leaf, agent frames.

The graph is the source of truth; the prompt view and the read view are projections of the
active path. Nodes are never rewritten: branching moves the leaf, compaction opens a frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from lash.types._base import Record
from lash.types.messages import Message

__all__ = [
    "AgentFrameRecord",
    "EventPayload",
    "MessagePayload",
    "NodePayload",
    "PluginPayload",
    "SessionGraph",
    "SessionNode",
    "initial_frame_id",
]


def initial_frame_id(session_id: str) -> str:
    """The id of a session's first agent frame."""
    return f"{session_id}:frame:initial"


class MessagePayload(Record, frozen=True, kw_only=True, tag_field="kind", tag="message"):
    """A conversation message."""

    message: Message


class EventPayload(Record, frozen=True, kw_only=True, tag_field="kind", tag="event"):
    """A protocol/runtime event recorded in history (not part of the prompt)."""

    name: str
    body: Any = None


class PluginPayload(Record, frozen=True, kw_only=True, tag_field="kind", tag="plugin"):
    """A plugin-owned record."""

    plugin_type: str
    body: Any = None


NodePayload = MessagePayload | EventPayload | PluginPayload


class SessionNode(Record, frozen=True, kw_only=True):
    """One append-only graph node."""

    node_id: str
    payload: NodePayload
    parent_node_id: str | None = None
    agent_frame_id: str | None = None
    caused_by: str | None = None
    timestamp_ms: int = 0

    @property
    def message(self) -> Message | None:
        """The message, for message nodes."""
        return self.payload.message if isinstance(self.payload, MessagePayload) else None


class AgentFrameRecord(Record, frozen=True, kw_only=True):
    """An agent frame: a new prompt window inside one session."""

    frame_id: str
    session_id: str
    reason: str = "initial"
    previous_frame_id: str | None = None
    status: str = "active"
    caused_by: str | None = None
    created_at_ms: int = 0
    task: str | None = None
    protocol_turn_options: dict[str, Any] | None = None


class SessionGraph:
    """A mutable in-memory view of the append-only node set plus the leaf pointer.

    Nodes are kept in insertion order; ``committed`` counts the prefix already persisted so a
    commit can append only the new tail.
    """

    __slots__ = ("_nodes", "_order", "committed", "leaf_node_id")

    def __init__(self, nodes: Iterable[SessionNode] = (), leaf_node_id: str | None = None) -> None:
        self._nodes: dict[str, SessionNode] = {}
        self._order: list[str] = []
        for node in nodes:
            self._nodes[node.node_id] = node
            self._order.append(node.node_id)
        self.leaf_node_id = leaf_node_id
        if self.leaf_node_id is not None and self.leaf_node_id not in self._nodes:
            self.leaf_node_id = self._newest_message_node()
        elif self.leaf_node_id is None and self._order:
            self.leaf_node_id = self._order[-1]
        self.committed = len(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._nodes

    def get(self, node_id: str) -> SessionNode | None:
        """The node with ``node_id``, if present."""
        return self._nodes.get(node_id)

    def nodes(self) -> list[SessionNode]:
        """All nodes in insertion order."""
        return [self._nodes[i] for i in self._order]

    def uncommitted(self) -> list[SessionNode]:
        """Nodes appended since the last :meth:`mark_committed`."""
        return [self._nodes[i] for i in self._order[self.committed :]]

    def mark_committed(self) -> None:
        """Record that every current node is persisted."""
        self.committed = len(self._order)

    def append(self, node: SessionNode) -> None:
        """Append a node and make it the leaf. Its parent must already be present."""
        if node.node_id in self._nodes:
            raise ValueError(f"graph already has node {node.node_id!r}")
        if node.parent_node_id is not None and node.parent_node_id not in self._nodes:
            raise ValueError(f"parent {node.parent_node_id!r} of {node.node_id!r} is missing")
        self._nodes[node.node_id] = node
        self._order.append(node.node_id)
        self.leaf_node_id = node.node_id

    def branch_to(self, node_id: str) -> None:
        """Move the leaf to an existing node (history beyond it stays stored)."""
        if node_id not in self._nodes:
            raise KeyError(node_id)
        self.leaf_node_id = node_id

    def active_path(self) -> list[SessionNode]:
        """Nodes from the root to the leaf, oldest first."""
        path: list[SessionNode] = []
        seen: set[str] = set()
        cursor = self.leaf_node_id
        while cursor is not None and cursor not in seen:
            node = self._nodes.get(cursor)
            if node is None:
                break
            seen.add(cursor)
            path.append(node)
            cursor = node.parent_node_id
        path.reverse()
        return path

    def iter_active_messages(self) -> Iterator[tuple[SessionNode, Message]]:
        """Message nodes on the active path."""
        for node in self.active_path():
            msg = node.message
            if msg is not None:
                yield node, msg

    def frame_messages(self, frame_id: str, initial_frame: str) -> list[Message]:
        """The prompt messages of one agent frame: scoped nodes (plus unscoped ones in the
        initial frame), without transient messages, de-duplicated by message id."""
        out: list[Message] = []
        seen: set[str] = set()
        for node, msg in self.iter_active_messages():
            scope = node.agent_frame_id
            if scope != frame_id and not (scope is None and frame_id == initial_frame):
                continue
            if msg.transient or msg.id in seen:
                continue
            seen.add(msg.id)
            out.append(msg)
        return out

    def _newest_message_node(self) -> str | None:
        for node_id in reversed(self._order):
            if self._nodes[node_id].message is not None:
                return node_id
        return self._order[-1] if self._order else None
