"""Replaying a turn whose commit is already durable (a redrive after the commit).

A worker can die after the turn's commit but before Restate records the handler's answer.
Restate then redrives ``run``, and the handler must replay its *whole* journal before it may
end: an early return, or any journal command other than the recorded one, is the SDK's journal
mismatch (code 570) and the invocation retries forever.

So the redrive runs the turn again, but over the session *as the turn saw it*: the store view
hides the turn's own nodes (and anything after them), rewinds the turn index and the head
revision to the journaled start, so every effect rebuilds the recorded envelope and replays
its recorded outcome; no closure runs. The turn's commit is then answered here, without a
write, as an idempotent replay of the one that is already stored: nothing is committed twice,
and the turn goes on to publish its terminal like a first run.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import msgspec

from lash.runtime.core import LashCore
from lash.stores.base import DurabilityTier, SessionStore
from lash.types import PersistedSession, RuntimeCommit, RuntimeCommitResult

__all__ = ["committed_turn_core", "holds_turn"]


def holds_turn(persisted: PersistedSession | None, turn_id: str) -> bool:
    """Whether the stored session already holds nodes of the turn ``turn_id``."""
    if persisted is None:
        return False
    prefix = f"{turn_id}:"
    return any(n.node_id.startswith(prefix) for n in persisted.nodes)


def committed_turn_core(
    core: LashCore, session_id: str, turn_id: str, start_revision: int
) -> LashCore:
    """``core`` over a store view in which ``turn_id`` of ``session_id`` is not committed
    yet, and whose commit of that turn is answered as a replay of the stored one."""
    store = core.config.store
    assert store is not None  # the durable tier check ran first
    view = _CommittedTurnStore(store, session_id, turn_id, start_revision)
    return LashCore(dataclasses.replace(core.config, store=cast(SessionStore, view)))


class _CommittedTurnStore:
    """Delegates to the real store, except the session load (rewound to before the turn)
    and the session's commits (answered without writing: the turn is already committed)."""

    def __init__(
        self,
        inner: SessionStore,
        session_id: str,
        turn_id: str,
        start_revision: int,
    ) -> None:
        self._inner = inner
        self._session_id = session_id
        self._turn_id = turn_id
        self._start = start_revision

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def tier(self) -> DurabilityTier:
        """The real store's tier."""
        return self._inner.tier

    async def load_session(
        self, session_id: str, *, active_path_only: bool = False, leaf_node_id: str | None = None
    ) -> PersistedSession | None:
        """The session as the turn found it: without the turn's nodes and what follows."""
        persisted = await self._inner.load_session(
            session_id, active_path_only=active_path_only, leaf_node_id=leaf_node_id
        )
        if persisted is None or session_id != self._session_id:
            return persisted
        return rewind(persisted, self._turn_id, self._start)

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        """The turn's commit is already stored: answer it as the idempotent replay would (the
        revision the stored commit made: one past the turn's start, even when plugin appends
        moved the head since)."""
        if commit.session_id != self._session_id:
            return await self._inner.commit(commit)
        if commit.release_lease and commit.lease is not None:
            await self._inner.release_lease(commit.lease)  # what the stored commit did
        base = commit.expected_head_revision
        revision = (base if base is not None else self._start) + 1
        return RuntimeCommitResult(head_revision=revision, result=commit.result, replayed=True)


def rewind(persisted: PersistedSession, turn_id: str, start_revision: int) -> PersistedSession:
    """``persisted`` before the turn ``turn_id``: its nodes, and nodes below them, dropped;
    the leaf is the turn's parent; turn index and head revision are the turn's start."""
    prefix = f"{turn_id}:"
    turn_nodes = [n for n in persisted.nodes if n.node_id.startswith(prefix)]
    if not turn_nodes:
        return persisted
    dropped = {n.node_id for n in turn_nodes}
    changed = True
    while changed:  # descendants of the turn's nodes, whatever the load order
        changed = False
        for node in persisted.nodes:
            if node.node_id not in dropped and node.parent_node_id in dropped:
                dropped.add(node.node_id)
                changed = True
    first = next(n for n in turn_nodes if n.parent_node_id not in dropped)
    checkpoint = msgspec.structs.replace(
        persisted.checkpoint, turn_index=max(0, persisted.checkpoint.turn_index - 1)
    )
    return msgspec.structs.replace(
        persisted,
        head_revision=start_revision,
        nodes=tuple(n for n in persisted.nodes if n.node_id not in dropped),
        leaf_node_id=first.parent_node_id,
        checkpoint=checkpoint,
    )
