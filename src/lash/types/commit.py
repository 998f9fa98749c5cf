"""The one write shape of a session: :class:`RuntimeCommit`, a fenced *delta*.

A commit appends the turn's new graph nodes (never the whole history), replaces the small
checkpoint, appends usage, settles claims and stamps the turn with a semantic hash that
ignores ids, timestamps, lease fields and the head revision, so an identical replay of the
same turn is recognised and answered with the stored result.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from lash.types._base import Record, to_builtins
from lash.types.graph import AgentFrameRecord, SessionNode
from lash.types.ingress import QueuedWorkBatch, QueuedWorkBatchDraft
from lash.types.lease import LeaseFence
from lash.types.usage import TokenLedgerEntry, TokenUsage

__all__ = [
    "CHECKPOINT_SCHEMA_VERSION",
    "GraphAppend",
    "GraphDelta",
    "GraphReplaceFull",
    "GraphUnchanged",
    "PersistedSession",
    "QueueClaimCompletion",
    "RuntimeCommit",
    "RuntimeCommitResult",
    "SessionCheckpoint",
    "SessionConfig",
    "SessionMeta",
    "TurnCommitStamp",
    "TurnInputClaimCompletion",
    "turn_commit_hash",
]

CHECKPOINT_SCHEMA_VERSION = 1


class GraphUnchanged(Record, frozen=True, kw_only=True, tag_field="kind", tag="unchanged"):
    """No new nodes; the leaf may still move."""

    leaf_node_id: str | None = None


class GraphAppend(Record, frozen=True, kw_only=True, tag_field="kind", tag="append"):
    """Append new nodes (ids must be new) and set the leaf."""

    nodes: tuple[SessionNode, ...]
    leaf_node_id: str | None = None


class GraphReplaceFull(Record, frozen=True, kw_only=True, tag_field="kind", tag="replace_full"):
    """Replace the whole graph (session reset only)."""

    nodes: tuple[SessionNode, ...]
    leaf_node_id: str | None = None


GraphDelta = GraphUnchanged | GraphAppend | GraphReplaceFull


class SessionConfig(Record, frozen=True, kw_only=True):
    """The provider and model recorded with a commit."""

    provider_id: str | None = None
    model: str | None = None


class SessionCheckpoint(Record, frozen=True, kw_only=True):
    """Small per-session state replaced on every commit."""

    schema_version: int = CHECKPOINT_SCHEMA_VERSION
    turn_index: int = 0
    token_usage: TokenUsage = msgspec.field(default_factory=TokenUsage)
    last_prompt_usage: TokenUsage | None = None
    protocol_turn_options: dict[str, Any] | None = None
    plugin_state: dict[str, Any] = msgspec.field(default_factory=dict)
    tool_state: dict[str, Any] = msgspec.field(default_factory=dict)
    execution_state: dict[str, Any] = msgspec.field(default_factory=dict)


class TurnCommitStamp(Record, frozen=True, kw_only=True):
    """Marks a final turn commit: replays with the same hash are answered idempotently."""

    session_id: str
    turn_id: str
    turn_commit_hash: str


class QueueClaimCompletion(Record, frozen=True, kw_only=True):
    """Settles a queued-work claim (deletes its batches)."""

    claim_id: str
    lease_token: str
    batch_ids: tuple[str, ...]


class TurnInputClaimCompletion(Record, frozen=True, kw_only=True):
    """Settles a turn-input claim (marks its inputs completed)."""

    claim_id: str
    lease_token: str
    input_ids: tuple[str, ...]


class RuntimeCommit(Record, frozen=True, kw_only=True):
    """Everything a turn (or a progress boundary) writes, in one transaction."""

    session_id: str
    graph: GraphDelta
    checkpoint: SessionCheckpoint
    config: SessionConfig = msgspec.field(default_factory=SessionConfig)
    expected_head_revision: int | None = None
    lease: LeaseFence | None = None
    release_lease: bool = False
    agent_frames: tuple[AgentFrameRecord, ...] = ()
    current_agent_frame_id: str | None = None
    usage_deltas: tuple[TokenLedgerEntry, ...] = ()
    turn_commit: TurnCommitStamp | None = None
    completed_queue_claims: tuple[QueueClaimCompletion, ...] = ()
    completed_turn_input_claims: tuple[TurnInputClaimCompletion, ...] = ()
    enqueued_queue_batches: tuple[QueuedWorkBatchDraft, ...] = ()
    interrupted_turn_input_turn_id: str | None = None
    committed_attachment_ids: tuple[str, ...] = ()
    result: Any = None
    """The host-facing turn result (JSON), returned verbatim on an idempotent replay."""

    def stamped(self, turn_id: str) -> RuntimeCommit:
        """A copy carrying the turn stamp computed from this commit's semantic content."""
        stamp = TurnCommitStamp(
            session_id=self.session_id, turn_id=turn_id, turn_commit_hash=turn_commit_hash(self)
        )
        return msgspec.structs.replace(self, turn_commit=stamp)


class RuntimeCommitResult(Record, frozen=True, kw_only=True):
    """What a commit returns (also what an idempotent replay returns)."""

    head_revision: int
    enqueued_queue_batches: tuple[QueuedWorkBatch, ...] = ()
    result: Any = None
    replayed: bool = False


class SessionMeta(Record, frozen=True, kw_only=True):
    """Descriptive metadata of a session."""

    session_id: str
    created_at_ms: int = 0
    model: str | None = None
    name: str | None = None
    parent_session_id: str | None = None


class PersistedSession(Record, frozen=True, kw_only=True):
    """A session as loaded from a store."""

    session_id: str
    head_revision: int
    nodes: tuple[SessionNode, ...]
    leaf_node_id: str | None
    checkpoint: SessionCheckpoint
    config: SessionConfig = msgspec.field(default_factory=SessionConfig)
    agent_frames: tuple[AgentFrameRecord, ...] = ()
    current_agent_frame_id: str | None = None
    token_ledger: tuple[TokenLedgerEntry, ...] = ()


_VOLATILE_KEYS = frozenset(
    {"node_id", "parent_node_id", "leaf_node_id", "timestamp_ms", "created_at_ms"}
)
_IGNORED_COMMIT_FIELDS = ("expected_head_revision", "lease", "release_lease", "turn_commit")


_CONTAINERS = (dict, list, tuple)
_SORTED_JSON = msgspec.json.Encoder(order="sorted")


def _scrub(value: Any) -> Any:
    # Recurse only into containers: calling this on every leaf string was most of the cost of
    # hashing a turn's commit (the output is the same either way).
    if isinstance(value, dict):
        is_message = "role" in value and "parts" in value
        return {
            k: _scrub(v) if isinstance(v, _CONTAINERS) else v
            for k, v in value.items()
            if k not in _VOLATILE_KEYS and not (is_message and k == "id")
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) if isinstance(v, _CONTAINERS) else v for v in value]
    return value


def turn_commit_hash(commit: RuntimeCommit) -> str:
    """SHA-256 of the commit's semantic content.

    Lease fields, the expected head revision, the stamp itself, node ids, parent ids, the
    leaf, timestamps and message ids are removed first, so a replay that regenerates ids and
    timestamps hashes the same.
    """
    # The result is excluded from the hash: drop it before converting, not after (it is about
    # half of a turn's commit).
    data = to_builtins(msgspec.structs.replace(commit, result=None))
    for key in _IGNORED_COMMIT_FIELDS:
        data.pop(key, None)
    data.pop("result", None)
    # ``data`` is builtins already: encode it directly rather than via canonical_json's
    # second to_builtins pass (same bytes).
    return hashlib.sha256(_SORTED_JSON.encode(_scrub(data))).hexdigest()
