"""Committed session state on SQLite: loads, the fenced atomic commit, metadata, maintenance.

A commit appends one row per new graph node and rewrites only the small head row
(revision, leaf, config, frames, checkpoint), so the file grows with new content and never
with history length. Validation that needs stored node ids asks only about the ids the delta
mentions; no commit reads the whole graph.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import msgspec

from lash.errors import StoreError, StoreErrorKind
from lash.stores import _logic
from lash.stores.sqlite._conn import SqliteStats
from lash.stores.sqlite._ingress import (
    enqueue_queued_work,
    queued_rows_by_id,
    turn_input_rows_by_id,
    write_turn_input,
)
from lash.stores.sqlite._leases import release, require_fence
from lash.stores.sqlite._rows import (
    INPUT_COLUMNS,
    dec_checkpoint,
    dec_config,
    dec_frames,
    dec_meta,
    dec_node,
    enc,
    input_from_row,
)
from lash.types import (
    GraphDelta,
    GraphUnchanged,
    PersistedSession,
    RuntimeCommit,
    RuntimeCommitResult,
    SessionMeta,
    SessionNode,
    TokenLedgerEntry,
    TokenUsage,
    VacuumReport,
)

__all__ = [
    "check_session_id",
    "commit",
    "delete_session",
    "list_sessions",
    "load_node",
    "load_session",
    "load_session_meta",
    "save_session_meta",
    "tombstone_nodes",
    "vacuum",
]

_dec_result = msgspec.json.Decoder(RuntimeCommitResult).decode

_HEAD = """
SELECT head_revision, leaf_node_id, config_json, agent_frames_json, current_agent_frame_id,
       checkpoint_json
FROM sessions WHERE session_id = ?
"""
_FULL_GRAPH = """
SELECT node_json FROM graph_nodes WHERE session_id = ? AND tombstoned = 0 ORDER BY seq
"""
# The ancestry of one leaf through visible nodes only (a hidden node ends the walk); UNION
# (not UNION ALL) makes a parent cycle terminate instead of recursing forever.
_ACTIVE_PATH = """
WITH RECURSIVE path(depth, node_id, parent_node_id, node_json) AS (
    SELECT 0, node_id, parent_node_id, node_json FROM graph_nodes
    WHERE session_id = ?1 AND node_id = ?2 AND tombstoned = 0
    UNION
    SELECT p.depth + 1, g.node_id, g.parent_node_id, g.node_json
    FROM path AS p JOIN graph_nodes AS g
      ON g.session_id = ?1 AND g.node_id = p.parent_node_id AND g.tombstoned = 0
)
SELECT node_json FROM path ORDER BY depth DESC
"""
_LEDGER = """
SELECT source, model, input_tokens, cache_read_input_tokens, cache_write_input_tokens,
       output_tokens, reasoning_output_tokens
FROM usage_ledger WHERE session_id = ? ORDER BY ord
"""
_UPSERT_USAGE = """
INSERT INTO usage_ledger (session_id, source, model, input_tokens, cache_read_input_tokens,
                          cache_write_input_tokens, output_tokens, reasoning_output_tokens)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (session_id, source, model) DO UPDATE SET
    input_tokens = input_tokens + excluded.input_tokens,
    cache_read_input_tokens = cache_read_input_tokens + excluded.cache_read_input_tokens,
    cache_write_input_tokens = cache_write_input_tokens + excluded.cache_write_input_tokens,
    output_tokens = output_tokens + excluded.output_tokens,
    reasoning_output_tokens = reasoning_output_tokens + excluded.reasoning_output_tokens
"""
_UPSERT_HEAD = """
INSERT INTO sessions (session_id, head_revision, leaf_node_id, config_json, agent_frames_json,
                      current_agent_frame_id, checkpoint_json, created_at_ms, updated_at_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
    head_revision = excluded.head_revision,
    leaf_node_id = excluded.leaf_node_id,
    config_json = excluded.config_json,
    agent_frames_json = excluded.agent_frames_json,
    current_agent_frame_id = excluded.current_agent_frame_id,
    checkpoint_json = excluded.checkpoint_json,
    updated_at_ms = excluded.updated_at_ms
"""
_INSERT_NODE = """
INSERT INTO graph_nodes (session_id, node_id, parent_node_id, node_json) VALUES (?, ?, ?, ?)
"""


# --- reads -----------------------------------------------------------------------------


def load_session(
    conn: sqlite3.Connection,
    stats: SqliteStats,
    session_id: str,
    active_path_only: bool,
    leaf_node_id: str | None,
) -> PersistedSession | None:
    """The committed session (``None`` if never committed)."""
    head = conn.execute(_HEAD, (session_id,)).fetchone()
    if head is None:
        return None
    revision, leaf, config, frames, current_frame, checkpoint = head
    if active_path_only:
        start = leaf_node_id if leaf_node_id is not None else leaf
        raw = conn.execute(_ACTIVE_PATH, (session_id, start)).fetchall() if start else []
    else:
        raw = conn.execute(_FULL_GRAPH, (session_id,)).fetchall()
    stats.node_rows_read += len(raw)
    ledger = [
        TokenLedgerEntry(
            source=r[0],
            model=r[1],
            usage=TokenUsage(
                input_tokens=r[2],
                cache_read_input_tokens=r[3],
                cache_write_input_tokens=r[4],
                output_tokens=r[5],
                reasoning_output_tokens=r[6],
            ),
        )
        for r in conn.execute(_LEDGER, (session_id,))
    ]
    return PersistedSession(
        session_id=session_id,
        head_revision=int(revision),
        nodes=tuple(dec_node(r[0]) for r in raw),
        leaf_node_id=leaf,
        checkpoint=dec_checkpoint(checkpoint),
        config=dec_config(config),
        agent_frames=dec_frames(frames),
        current_agent_frame_id=current_frame,
        token_ledger=_logic.merged_token_ledger(ledger),
    )


def load_node(conn: sqlite3.Connection, session_id: str, node_id: str) -> SessionNode | None:
    """One visible node."""
    row = conn.execute(
        "SELECT node_json FROM graph_nodes WHERE session_id = ? AND node_id = ? AND tombstoned = 0",
        (session_id, node_id),
    ).fetchone()
    return dec_node(row[0]) if row is not None else None


# --- the commit ------------------------------------------------------------------------


def _existing_node_ids(conn: sqlite3.Connection, session_id: str, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    wanted = sorted(ids)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(
            r[0]
            for r in conn.execute(
                f"SELECT node_id FROM graph_nodes WHERE session_id = ? AND node_id IN ({marks})",
                (session_id, *chunk),
            )
        )
    return found


def _resolve_graph(
    conn: sqlite3.Connection, session_id: str, delta: GraphDelta, current_leaf: str | None
) -> tuple[list[SessionNode], bool, str | None]:
    """``_logic.resolve_graph_delta`` fed only the stored ids the delta mentions."""
    mentioned: set[str] = {current_leaf} if current_leaf is not None else set()
    if delta.leaf_node_id is not None:
        mentioned.add(delta.leaf_node_id)
    if not isinstance(delta, GraphUnchanged):
        for node in delta.nodes:
            mentioned.add(node.node_id)
            if node.parent_node_id is not None:
                mentioned.add(node.parent_node_id)
    existing = _existing_node_ids(conn, session_id, mentioned)
    return _logic.resolve_graph_delta(delta, existing, current_leaf)


def _check_completions(conn: sqlite3.Connection, c: RuntimeCommit) -> None:
    sid = c.session_id
    for qc in c.completed_queue_claims:
        batches = queued_rows_by_id(conn, sid, qc.batch_ids)
        owned = {k: v.claim for k, v in batches.items()}
        if not _logic.completion_owns_rows(qc.claim_id, qc.lease_token, qc.batch_ids, owned):
            raise StoreError(
                StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED,
                f"queued-work claim {qc.claim_id!r} no longer owns every listed batch",
                claim_id=qc.claim_id,
            )
    for tc in c.completed_turn_input_claims:
        inputs = turn_input_rows_by_id(conn, sid, tc.input_ids)
        owned = {k: v.claim for k, v in inputs.items()}
        if not _logic.completion_owns_rows(tc.claim_id, tc.lease_token, tc.input_ids, owned):
            raise StoreError(
                StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED,
                f"turn-input claim {tc.claim_id!r} no longer owns every listed input",
                claim_id=tc.claim_id,
            )


def _settle_claims(conn: sqlite3.Connection, c: RuntimeCommit) -> None:
    sid = c.session_id
    for qc in c.completed_queue_claims:
        conn.executemany(
            "DELETE FROM queued_batches WHERE session_id = ? AND batch_id = ?",
            [(sid, b) for b in qc.batch_ids],
        )
    for tc in c.completed_turn_input_claims:
        for row in turn_input_rows_by_id(conn, sid, tc.input_ids).values():
            write_turn_input(conn, _logic.completed_turn_input(row))
    if c.interrupted_turn_input_turn_id is not None:
        raw = conn.execute(
            f"SELECT {INPUT_COLUMNS} FROM turn_inputs WHERE session_id = ? "
            "AND state = 'pending_active' AND ingress_turn_id = ?",
            (sid, c.interrupted_turn_input_turn_id),
        ).fetchall()
        for r in raw:
            write_turn_input(conn, _logic.deferred_turn_input(input_from_row(r)))


def _adopt_attachments(conn: sqlite3.Connection, c: RuntimeCommit, now_ms: int) -> None:
    sid = c.session_id
    if c.committed_attachment_ids:
        conn.executemany(
            "UPDATE attachment_refs SET committed_at_ms = COALESCE(committed_at_ms, ?) "
            "WHERE session_id = ? AND attachment_id = ?",
            [(now_ms, sid, a) for a in c.committed_attachment_ids],
        )
    if c.turn_commit is not None:
        conn.execute(
            "UPDATE attachment_refs SET committed_at_ms = ? WHERE session_id = ? "
            "AND committed_at_ms IS NULL AND owner_kind = 'turn' AND owner_id = ?",
            (now_ms, sid, c.turn_commit.turn_id),
        )


def commit(conn: sqlite3.Connection, c: RuntimeCommit, now_ms: int) -> RuntimeCommitResult:
    """Apply one commit (persistence.md §3.2, in order) inside the caller's write tx."""
    check_session_id(c.session_id)
    _logic.check_commit_binding(c)
    sid = c.session_id
    stamp = c.turn_commit
    if stamp is not None:
        stored = conn.execute(
            "SELECT turn_commit_hash, result_json FROM turn_commits "
            "WHERE session_id = ? AND turn_id = ?",
            (sid, stamp.turn_id),
        ).fetchone()
        if _logic.turn_replay_decision(c, stored[0] if stored is not None else None):
            # Only this session's lease: a fence naming another session releases nothing.
            if c.release_lease and c.lease is not None and c.lease.session_id == sid:
                release(conn, c.lease)
            return msgspec.structs.replace(_dec_result(stored[1]), replayed=True)
    require_fence(conn, c.lease, sid, now_ms)
    head = conn.execute(
        "SELECT head_revision, leaf_node_id FROM sessions WHERE session_id = ?", (sid,)
    ).fetchone()
    actual, current_leaf = (int(head[0]), head[1]) if head is not None else (0, None)
    _logic.check_head_revision(c.expected_head_revision, actual)
    _check_completions(conn, c)

    nodes, replace_all, leaf = _resolve_graph(conn, sid, c.graph, current_leaf)
    if replace_all:
        conn.execute("DELETE FROM graph_nodes WHERE session_id = ?", (sid,))
    if nodes:
        conn.executemany(_INSERT_NODE, [(sid, n.node_id, n.parent_node_id, enc(n)) for n in nodes])
    if c.usage_deltas:
        conn.executemany(
            _UPSERT_USAGE,
            [
                (
                    sid,
                    e.source,
                    e.model,
                    e.usage.input_tokens,
                    e.usage.cache_read_input_tokens,
                    e.usage.cache_write_input_tokens,
                    e.usage.output_tokens,
                    e.usage.reasoning_output_tokens,
                )
                for e in c.usage_deltas
            ],
        )
    revision = actual + 1
    conn.execute(
        _UPSERT_HEAD,
        (
            sid,
            revision,
            leaf,
            enc(c.config),
            enc(c.agent_frames),
            c.current_agent_frame_id,
            enc(c.checkpoint),
            now_ms,
            now_ms,
        ),
    )
    _settle_claims(conn, c)
    _adopt_attachments(conn, c, now_ms)
    outbox = tuple(enqueue_queued_work(conn, d, now_ms) for d in c.enqueued_queue_batches)
    result_json = enc(
        RuntimeCommitResult(head_revision=revision, enqueued_queue_batches=outbox, result=c.result)
    )
    if stamp is not None:
        conn.execute(
            "INSERT INTO turn_commits (session_id, turn_id, turn_commit_hash, result_json, "
            "committed_at_ms) VALUES (?, ?, ?, ?, ?)",
            (sid, stamp.turn_id, stamp.turn_commit_hash, result_json, now_ms),
        )
    # Return what a replay would return: the result as it survives the storage codec.
    result = _dec_result(result_json)
    if c.release_lease and c.lease is not None:
        release(conn, c.lease)
    return result


# --- metadata and maintenance ----------------------------------------------------------


def check_session_id(session_id: str) -> None:
    """Reject the empty session id before it reaches a table."""
    if not session_id:
        raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "session id must be non-empty")


def save_session_meta(conn: sqlite3.Connection, meta: SessionMeta) -> None:
    """Create or replace metadata."""
    check_session_id(meta.session_id)
    conn.execute(
        "INSERT INTO session_meta (session_id, meta_json) VALUES (?, ?) "
        "ON CONFLICT (session_id) DO UPDATE SET meta_json = excluded.meta_json",
        (meta.session_id, enc(meta)),
    )


def load_session_meta(conn: sqlite3.Connection, session_id: str) -> SessionMeta | None:
    """Metadata, if any."""
    row = conn.execute(
        "SELECT meta_json FROM session_meta WHERE session_id = ?", (session_id,)
    ).fetchone()
    return dec_meta(row[0]) if row is not None else None


def list_sessions(conn: sqlite3.Connection) -> list[SessionMeta]:
    """Every session with metadata or a commit, by id (bare metadata for commit-only ones)."""
    rows = conn.execute(
        "SELECT s.session_id, m.meta_json, h.created_at_ms FROM "
        "(SELECT session_id FROM sessions UNION SELECT session_id FROM session_meta) AS s "
        "LEFT JOIN session_meta AS m ON m.session_id = s.session_id "
        "LEFT JOIN sessions AS h ON h.session_id = s.session_id ORDER BY s.session_id"
    ).fetchall()
    return [
        dec_meta(m) if m is not None else SessionMeta(session_id=sid, created_at_ms=created or 0)
        for sid, m, created in rows
    ]


_SESSION_TABLES = (
    "sessions",
    "session_meta",
    "graph_nodes",
    "usage_ledger",
    "turn_commits",
    "session_leases",
    "turn_inputs",
    "queued_batches",
    "attachment_refs",
)


def delete_session(conn: sqlite3.Connection, session_id: str) -> None:
    """Remove every row of the session, the lease row included (fencing restarts at 1)."""
    for table in _SESSION_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))


def tombstone_nodes(conn: sqlite3.Connection, session_id: str, node_ids: Sequence[str]) -> None:
    """Hide nodes from every read (vacuum removes them)."""
    conn.executemany(
        "UPDATE graph_nodes SET tombstoned = 1 WHERE session_id = ? AND node_id = ?",
        [(session_id, n) for n in node_ids],
    )


def vacuum(conn: sqlite3.Connection) -> VacuumReport:
    """Delete tombstoned nodes and terminal input rows; report only this call's removals."""
    nodes = conn.execute("DELETE FROM graph_nodes WHERE tombstoned = 1").rowcount
    inputs = conn.execute(
        "DELETE FROM turn_inputs WHERE state IN ('cancelled', 'completed')"
    ).rowcount
    return VacuumReport(
        removed_node_count=max(nodes, 0),
        removed_pending_turn_input_tombstone_count=max(inputs, 0),
    )
