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


class _FrameView:
    """The prompt messages of one agent frame, built incrementally along the active path.

    ``frame_id=None`` selects every non-transient message on the path, without
    de-duplication (the read view's transcript).
    """

    __slots__ = ("frame_id", "initial_frame", "messages", "seen")

    def __init__(self, frame_id: str | None, initial_frame: str | None) -> None:
        self.frame_id = frame_id
        self.initial_frame = initial_frame
        self.messages: list[Message] = []
        self.seen: set[str] = set()

    def add(self, node: SessionNode) -> None:
        msg = node.message
        if msg is None or msg.transient:
            return
        if self.frame_id is None:
            self.messages.append(msg)
            return
        scope = node.agent_frame_id
        if scope != self.frame_id and not (scope is None and self.frame_id == self.initial_frame):
            return
        if msg.id in self.seen:
            return
        self.seen.add(msg.id)
        self.messages.append(msg)


class SessionGraph:
    """A mutable in-memory view of the append-only node set plus the leaf pointer.

    Nodes are kept in insertion order; ``committed`` counts the prefix already persisted so a
    commit can append only the new tail.
    """

    __slots__ = ("_frames", "_leaf", "_nodes", "_order", "_path", "_path_leaf", "committed")

    def __init__(self, nodes: Iterable[SessionNode] = (), leaf_node_id: str | None = None) -> None:
        self._nodes: dict[str, SessionNode] = {}
        self._order: list[str] = []
        # Projection caches of the active path, valid while ``_path_leaf`` is the leaf. Appending
        # a child of the leaf (every turn's commit) extends them in place, so building the next
        # prompt costs O(new nodes), not O(history).
        self._leaf: str | None = None
        self._path: list[SessionNode] | None = None
        self._path_leaf: str | None = None
        self._frames: dict[tuple[str, str] | None, _FrameView] = {}
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
        extends = (
            self._path is not None
            and self._path_leaf == self._leaf
            and node.parent_node_id == self._leaf
        )
        self._nodes[node.node_id] = node
        self._order.append(node.node_id)
        self._leaf = node.node_id
        if extends and self._path is not None:
            self._path.append(node)
            self._path_leaf = node.node_id
            for view in self._frames.values():
                view.add(node)
        else:
            self._forget_path()

    @property
    def leaf_node_id(self) -> str | None:
        """The leaf of the active path."""
        return self._leaf

    @leaf_node_id.setter
    def leaf_node_id(self, node_id: str | None) -> None:
        if node_id != self._leaf:
            self._forget_path()
        self._leaf = node_id

    def _forget_path(self) -> None:
        self._path = None
        self._path_leaf = None
        self._frames.clear()

    def branch_to(self, node_id: str) -> None:
        """Move the leaf to an existing node (history beyond it stays stored)."""
        if node_id not in self._nodes:
            raise KeyError(node_id)
        self.leaf_node_id = node_id

    def active_path(self) -> list[SessionNode]:
        """Nodes from the root to the leaf, oldest first."""
        return list(self._active_path())

    def _active_path(self) -> list[SessionNode]:
        """The cached active path (callers must not mutate it)."""
        if self._path is None or self._path_leaf != self._leaf:
            self._frames.clear()
            self._path = self._walk_path()
            self._path_leaf = self._leaf
        return self._path

    def _walk_path(self) -> list[SessionNode]:
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
        for node in self._active_path():
            msg = node.message
            if msg is not None:
                yield node, msg

    def frame_messages(self, frame_id: str, initial_frame: str) -> list[Message]:
        """The prompt messages of one agent frame: scoped nodes (plus unscoped ones in the
        initial frame), without transient messages, de-duplicated by message id."""
        return list(self._frame_view((frame_id, initial_frame)).messages)

    def visible_messages(self) -> list[Message]:
        """Every non-transient message on the active path (the read view's transcript)."""
        return list(self._frame_view(None).messages)

    def _frame_view(self, key: tuple[str, str] | None) -> _FrameView:
        path = self._active_path()
        view = self._frames.get(key)
        if view is None:
            view = _FrameView(*key) if key is not None else _FrameView(None, None)
            for node in path:
                view.add(node)
            self._frames[key] = view
        return view

    def _newest_message_node(self) -> str | None:
        for node_id in reversed(self._order):
            if self._nodes[node_id].message is not None:
                return node_id
        return self._order[-1] if self._order else None
