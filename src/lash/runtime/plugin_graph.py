"""The :class:`~lash.runtime.plugins.SessionGraphAccess` a session lends its plugins.

A plugin (observational memory) keeps its records as plugin nodes in the session graph and
writes them outside the turn's own commit: from ``transform_context`` while the turn holds
the lease, or from ``turn_persisted`` after the lease went with the turn's commit. Either way
the write is one fenced commit that appends after the current leaf, CAS on the head revision,
and only while the caller's required ancestor is still on the active path: a write planned
against an older graph never lands on a branch that left it.

The session's working state is updated in place, so a turn that is still running commits its
own nodes after the appended ones. ``turn_persisted`` hooks run in the background after the
turn returned (see :class:`PostPersistGraphAccess`): their appends wait for the session's
lock, so they never land in the middle of a later turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lash.runtime.emitter import new_id
from lash.runtime.plugins import AppendedPluginNodes, AppendPluginNodesResult, StaleBranch
from lash.types import (
    GraphAppend,
    PluginPayload,
    SessionGraph,
    SessionNode,
    TokenLedgerEntry,
    merge_ledger,
)

if TYPE_CHECKING:
    from lash.runtime.lease import LeaseGuard
    from lash.runtime.session import LashSession

__all__ = ["PostPersistGraphAccess", "SessionGraphWriter"]


def on_active_path(graph: SessionGraph, node_id: str) -> bool:
    """Whether ``node_id`` lies on the path from the root to the leaf."""
    return any(node.node_id == node_id for node in graph.active_path())


class SessionGraphWriter:
    """Plugin-node appends for one :class:`LashSession` (the session's own helper)."""

    def __init__(self, session: LashSession) -> None:
        self._session = session
        self.turn_guard: LeaseGuard | None = None
        """The running turn's lease while it is held (set by the session around a turn)."""

    @property
    def session_id(self) -> str:
        return self._session.session_id

    def graph(self) -> SessionGraph:
        return self._session._state.graph

    async def append_plugin_nodes(
        self,
        nodes: Sequence[PluginPayload],
        *,
        requires_ancestor_node_id: str | None,
        usage: Sequence[TokenLedgerEntry] = (),
    ) -> AppendPluginNodesResult:
        session = self._session
        guard = self.turn_guard
        if guard is not None and (guard.released or guard.lost):
            guard = None
        fresh: LeaseGuard | None = None
        if guard is None:
            fresh = await session._acquire()
            guard = fresh
        error: BaseException | None = None
        try:
            if fresh is not None:
                await session._ensure_fresh(fresh)
            state = session._state
            graph = state.graph
            if requires_ancestor_node_id is not None and not on_active_path(
                graph, requires_ancestor_node_id
            ):
                return StaleBranch(current_leaf_node_id=graph.leaf_node_id)
            if not nodes:
                return AppendedPluginNodes(node_ids=(), leaf_node_id=graph.leaf_node_id or "")
            now = session._cfg.clock.now_ms()
            parent = graph.leaf_node_id
            built: list[SessionNode] = []
            for payload in nodes:
                node = SessionNode(
                    node_id=f"{self.session_id}:plugin:{new_id()}",
                    parent_node_id=parent,
                    agent_frame_id=state.current_frame_id,
                    timestamp_ms=now,
                    payload=payload,
                )
                built.append(node)
                parent = node.node_id
            deltas = tuple(merge_ledger(list(usage)))
            store = session._cfg.store
            if store is not None and guard is not None:
                result = await session._store_call(
                    store.commit(
                        state.commit_delta(
                            GraphAppend(nodes=tuple(built), leaf_node_id=parent),
                            guard.fence,
                            release_lease=fresh is not None,
                            usage_deltas=deltas,
                        )
                    )
                )
                state.head_revision = result.head_revision
                state.lease_generation = guard.generation
                if fresh is not None:
                    fresh.mark_released()
            else:
                state.head_revision += 1
            for node in built:
                graph.append(node)
            graph.mark_committed()
            state.add_usage(list(deltas))
            return AppendedPluginNodes(
                node_ids=tuple(n.node_id for n in built), leaf_node_id=parent or ""
            )
        except BaseException as err:
            error = err
            raise
        finally:
            if fresh is not None:
                await session._settle(fresh, error)


class PostPersistGraphAccess:
    """The graph access a background ``turn_persisted`` hook gets: the session's writer, with
    each append taken under the session's turn lock.

    Between turns no lease is held, so the writer acquires (and releases) its own; while a
    later turn runs, the append waits for it to commit, then lands after it (the post-persist
    leaf is still the required ancestor). Only the append holds the lock, never the model
    calls that produced its nodes.
    """

    def __init__(self, writer: SessionGraphWriter, lock: asyncio.Lock) -> None:
        self._writer = writer
        self._lock = lock

    @property
    def session_id(self) -> str:
        return self._writer.session_id

    def graph(self) -> SessionGraph:
        return self._writer.graph()

    async def append_plugin_nodes(
        self,
        nodes: Sequence[PluginPayload],
        *,
        requires_ancestor_node_id: str | None,
        usage: Sequence[TokenLedgerEntry] = (),
    ) -> AppendPluginNodesResult:
        async with self._lock:
            return await self._writer.append_plugin_nodes(
                nodes, requires_ancestor_node_id=requires_ancestor_node_id, usage=usage
            )
