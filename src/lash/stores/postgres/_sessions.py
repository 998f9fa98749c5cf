"""Committed session state on PostgreSQL: loads, the fenced atomic commit, metadata, upkeep.

The commit (persistence.md §3.2) runs in one transaction. It locks the session's lease row
first and keeps it locked to the end, so the idempotent-replay check, the fence check and
every write see one owner; the head is then written with an optimistic compare-and-swap
(``… WHERE head_revision = <read revision>``), which a concurrent writer can only lose.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from lash.errors import StoreError, StoreErrorKind
from lash.stores import _logic
from lash.stores.postgres._conn import Conn, Now
from lash.stores.postgres._ingress import (
    enqueue_queued_work,
    lock_queued_rows,
    lock_turn_input_rows,
    write_turn_input,
)
from lash.stores.postgres._leases import lock_lease, release
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
FROM lash_sessions WHERE session_id = $1
"""
_FULL_GRAPH = """
SELECT node_json FROM lash_graph_nodes WHERE session_id = $1 AND NOT tombstoned ORDER BY seq
"""
# The ancestry of one leaf through visible nodes only (a hidden node ends the walk); UNION
# (not UNION ALL) makes a parent cycle terminate instead of recursing forever.
_ACTIVE_PATH = """
WITH RECURSIVE path(depth, node_id, parent_node_id, node_json) AS (
    SELECT 0, node_id, parent_node_id, node_json FROM lash_graph_nodes
    WHERE session_id = $1 AND node_id = $2 AND NOT tombstoned
    UNION
    SELECT p.depth + 1, g.node_id, g.parent_node_id, g.node_json
    FROM path AS p JOIN lash_graph_nodes AS g
      ON g.session_id = $1 AND g.node_id = p.parent_node_id AND NOT g.tombstoned
    WHERE p.depth < 1000000
)
SELECT node_json FROM path ORDER BY depth DESC
"""
_LEDGER = """
SELECT source, model, input_tokens, cache_read_input_tokens, cache_write_input_tokens,
       output_tokens, reasoning_output_tokens
FROM lash_usage_ledger WHERE session_id = $1 ORDER BY ord
"""
_UPSERT_USAGE = """
INSERT INTO lash_usage_ledger AS u (session_id, source, model, input_tokens,
    cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_output_tokens)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (session_id, source, model) DO UPDATE SET
    input_tokens = u.input_tokens + excluded.input_tokens,
    cache_read_input_tokens = u.cache_read_input_tokens + excluded.cache_read_input_tokens,
    cache_write_input_tokens = u.cache_write_input_tokens + excluded.cache_write_input_tokens,
    output_tokens = u.output_tokens + excluded.output_tokens,
    reasoning_output_tokens = u.reasoning_output_tokens + excluded.reasoning_output_tokens
"""
# The head compare-and-swap: a row that moved past the revision this commit read is left
# alone (no row returned) and the commit fails with head_revision_conflict.
_CAS_HEAD = """
INSERT INTO lash_sessions AS s (session_id, head_revision, leaf_node_id, config_json,
    agent_frames_json, current_agent_frame_id, checkpoint_json, created_at_ms, updated_at_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
ON CONFLICT (session_id) DO UPDATE SET
    head_revision = excluded.head_revision,
    leaf_node_id = excluded.leaf_node_id,
    config_json = excluded.config_json,
    agent_frames_json = excluded.agent_frames_json,
    current_agent_frame_id = excluded.current_agent_frame_id,
    checkpoint_json = excluded.checkpoint_json,
    updated_at_ms = excluded.updated_at_ms
WHERE s.head_revision = $9
RETURNING head_revision
"""
_INSERT_NODE = """
INSERT INTO lash_graph_nodes (session_id, node_id, parent_node_id, node_json)
VALUES ($1, $2, $3, $4)
"""


# --- reads -----------------------------------------------------------------------------


async def load_session(
    conn: Conn, session_id: str, active_path_only: bool, leaf_node_id: str | None
) -> PersistedSession | None:
    """The committed session (``None`` if never committed)."""
    head = await conn.fetchrow(_HEAD, session_id)
    if head is None:
        return None
    revision, leaf, config, frames, current_frame, checkpoint = tuple(head)
    if active_path_only:
        start = leaf_node_id if leaf_node_id is not None else leaf
        raw = await conn.fetch(_ACTIVE_PATH, session_id, start) if start else []
    else:
        raw = await conn.fetch(_FULL_GRAPH, session_id)
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
        for r in await conn.fetch(_LEDGER, session_id)
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


async def load_node(conn: Conn, session_id: str, node_id: str) -> SessionNode | None:
    """One visible node."""
    raw = await conn.fetchval(
        "SELECT node_json FROM lash_graph_nodes "
        "WHERE session_id = $1 AND node_id = $2 AND NOT tombstoned",
        session_id,
        node_id,
    )
    return dec_node(raw) if raw is not None else None


# --- the commit ------------------------------------------------------------------------


async def _resolve_graph(
    conn: Conn, session_id: str, delta: GraphDelta, current_leaf: str | None
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
    existing: set[str] = set()
    if mentioned:
        rows = await conn.fetch(
            "SELECT node_id FROM lash_graph_nodes WHERE session_id = $1 "
            "AND node_id = ANY($2::text[])",
            session_id,
            sorted(mentioned),
        )
        existing = {str(r[0]) for r in rows}
    return _logic.resolve_graph_delta(delta, existing, current_leaf)


async def _check_completions(conn: Conn, c: RuntimeCommit) -> None:
    """Step 5: every completion must still own all its rows (locked until the commit ends)."""
    sid = c.session_id
    batch_rows = [
        (qc, await lock_queued_rows(conn, sid, qc.batch_ids)) for qc in c.completed_queue_claims
    ]
    input_rows = [
        (tc, await lock_turn_input_rows(conn, sid, tc.input_ids))
        for tc in c.completed_turn_input_claims
    ]
    for qc, batches in batch_rows:
        owned = {k: v.claim for k, v in batches.items()}
        if not _logic.completion_owns_rows(qc.claim_id, qc.lease_token, qc.batch_ids, owned):
            raise StoreError(
                StoreErrorKind.QUEUED_WORK_CLAIM_SUPERSEDED,
                f"queued-work claim {qc.claim_id!r} no longer owns every listed batch",
                claim_id=qc.claim_id,
            )
    for tc, inputs in input_rows:
        owned = {k: v.claim for k, v in inputs.items()}
        if not _logic.completion_owns_rows(tc.claim_id, tc.lease_token, tc.input_ids, owned):
            raise StoreError(
                StoreErrorKind.TURN_INPUT_CLAIM_SUPERSEDED,
                f"turn-input claim {tc.claim_id!r} no longer owns every listed input",
                claim_id=tc.claim_id,
            )


async def _settle_claims(conn: Conn, c: RuntimeCommit) -> None:
    sid = c.session_id
    for qc in c.completed_queue_claims:
        await conn.execute(
            "DELETE FROM lash_queued_batches WHERE session_id = $1 AND batch_id = ANY($2::text[])",
            sid,
            list(qc.batch_ids),
        )
    for tc in c.completed_turn_input_claims:
        for row in (await lock_turn_input_rows(conn, sid, tc.input_ids)).values():
            await write_turn_input(conn, _logic.completed_turn_input(row))
    if c.interrupted_turn_input_turn_id is not None:
        raw = await conn.fetch(
            f"SELECT {INPUT_COLUMNS} FROM lash_turn_inputs WHERE session_id = $1 "
            "AND state = 'pending_active' AND ingress_turn_id = $2 "
            "ORDER BY enqueue_seq FOR UPDATE",
            sid,
            c.interrupted_turn_input_turn_id,
        )
        for r in raw:
            await write_turn_input(conn, _logic.deferred_turn_input(input_from_row(tuple(r))))


async def _adopt_attachments(conn: Conn, c: RuntimeCommit, now_ms: int) -> None:
    sid = c.session_id
    if c.committed_attachment_ids:
        await conn.execute(
            "UPDATE lash_attachment_refs SET committed_at_ms = COALESCE(committed_at_ms, $1) "
            "WHERE session_id = $2 AND attachment_id = ANY($3::text[])",
            now_ms,
            sid,
            list(c.committed_attachment_ids),
        )
    if c.turn_commit is not None:
        await conn.execute(
            "UPDATE lash_attachment_refs SET committed_at_ms = $1 WHERE session_id = $2 "
            "AND committed_at_ms IS NULL AND owner_kind = 'turn' AND owner_id = $3",
            now_ms,
            sid,
            c.turn_commit.turn_id,
        )


async def commit(conn: Conn, c: RuntimeCommit, now: Now) -> RuntimeCommitResult:
    """Apply one commit (persistence.md §3.2, in order) inside the caller's transaction."""
    check_session_id(c.session_id)
    _logic.check_commit_binding(c)
    sid = c.session_id
    current, now_ms = await lock_lease(conn, sid, now)
    stamp = c.turn_commit
    if stamp is not None:
        stored = await conn.fetchrow(
            "SELECT turn_commit_hash, result_json FROM lash_turn_commits "
            "WHERE session_id = $1 AND turn_id = $2",
            sid,
            stamp.turn_id,
        )
        if _logic.turn_replay_decision(c, stored[0] if stored is not None else None):
            assert stored is not None
            if c.release_lease and c.lease is not None:
                await release(conn, c.lease, current)
            return msgspec.structs.replace(_dec_result(stored[1]), replayed=True)
    _logic.require_live_fence(current, c.lease, now_ms, sid)
    head = await conn.fetchrow(
        "SELECT head_revision, leaf_node_id FROM lash_sessions WHERE session_id = $1", sid
    )
    actual, current_leaf = (int(head[0]), head[1]) if head is not None else (0, None)
    _logic.check_head_revision(c.expected_head_revision, actual)
    await _check_completions(conn, c)

    nodes, replace_all, leaf = await _resolve_graph(conn, sid, c.graph, current_leaf)
    if replace_all:
        await conn.execute("DELETE FROM lash_graph_nodes WHERE session_id = $1", sid)
    if nodes:
        await conn.executemany(
            _INSERT_NODE, [(sid, n.node_id, n.parent_node_id, enc(n)) for n in nodes]
        )
    if c.usage_deltas:
        await conn.executemany(
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
    written = await conn.fetchval(
        _CAS_HEAD,
        sid,
        revision,
        leaf,
        enc(c.config),
        enc(c.agent_frames),
        c.current_agent_frame_id,
        enc(c.checkpoint),
        now_ms,
        actual,
    )
    if written is None:
        raise StoreError(
            StoreErrorKind.HEAD_REVISION_CONFLICT,
            f"session {sid!r} head moved past revision {actual} during the commit",
            expected=actual,
            session_id=sid,
        )
    await _settle_claims(conn, c)
    await _adopt_attachments(conn, c, now_ms)
    outbox = []
    for draft in c.enqueued_queue_batches:
        outbox.append(await enqueue_queued_work(conn, draft, now_ms))
    result_json = enc(
        RuntimeCommitResult(
            head_revision=revision, enqueued_queue_batches=tuple(outbox), result=c.result
        )
    )
    if stamp is not None:
        await conn.execute(
            "INSERT INTO lash_turn_commits (session_id, turn_id, turn_commit_hash, result_json, "
            "committed_at_ms) VALUES ($1, $2, $3, $4, $5)",
            sid,
            stamp.turn_id,
            stamp.turn_commit_hash,
            result_json,
            now_ms,
        )
    # Return what a replay would return: the result as it survives the storage codec.
    result = _dec_result(result_json)
    if c.release_lease and c.lease is not None:
        await release(conn, c.lease, current)
    return result


# --- metadata and maintenance ----------------------------------------------------------


def check_session_id(session_id: str) -> None:
    """Reject the empty session id before it reaches a table."""
    if not session_id:
        raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "session id must be non-empty")


async def save_session_meta(conn: Conn, meta: SessionMeta) -> None:
    """Create or replace metadata."""
    check_session_id(meta.session_id)
    await conn.execute(
        "INSERT INTO lash_session_meta (session_id, meta_json) VALUES ($1, $2) "
        "ON CONFLICT (session_id) DO UPDATE SET meta_json = excluded.meta_json",
        meta.session_id,
        enc(meta),
    )


async def load_session_meta(conn: Conn, session_id: str) -> SessionMeta | None:
    """Metadata, if any."""
    raw = await conn.fetchval(
        "SELECT meta_json FROM lash_session_meta WHERE session_id = $1", session_id
    )
    return dec_meta(raw) if raw is not None else None


async def list_sessions(conn: Conn) -> list[SessionMeta]:
    """Every session with metadata or a commit, by id (bare metadata for commit-only ones)."""
    rows = await conn.fetch(
        "SELECT s.session_id, m.meta_json, h.created_at_ms FROM "
        "(SELECT session_id FROM lash_sessions UNION SELECT session_id FROM lash_session_meta) "
        "AS s LEFT JOIN lash_session_meta AS m ON m.session_id = s.session_id "
        "LEFT JOIN lash_sessions AS h ON h.session_id = s.session_id "
        'ORDER BY s.session_id COLLATE "C"'
    )
    return [
        dec_meta(m) if m is not None else SessionMeta(session_id=sid, created_at_ms=created or 0)
        for sid, m, created in (tuple(r) for r in rows)
    ]


_SESSION_TABLES = (
    "lash_attachment_refs",
    "lash_queued_batches",
    "lash_turn_inputs",
    "lash_usage_ledger",
    "lash_graph_nodes",
    "lash_turn_commits",
    "lash_session_meta",
    "lash_sessions",
    "lash_session_leases",
)


async def delete_session(conn: Conn, session_id: str, now: Now) -> None:
    """Remove every row of the session, the lease row last (fencing restarts at 1)."""
    await lock_lease(conn, session_id, now)
    for table in _SESSION_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE session_id = $1", session_id)


async def tombstone_nodes(conn: Conn, session_id: str, node_ids: Sequence[str]) -> None:
    """Hide nodes from every read (vacuum removes them)."""
    await conn.execute(
        "UPDATE lash_graph_nodes SET tombstoned = TRUE "
        "WHERE session_id = $1 AND node_id = ANY($2::text[])",
        session_id,
        list(node_ids),
    )


async def vacuum(conn: Conn) -> VacuumReport:
    """Delete tombstoned nodes and terminal input rows; report only this call's removals."""
    nodes = await conn.fetchval(
        "WITH d AS (DELETE FROM lash_graph_nodes WHERE tombstoned RETURNING 1) "
        "SELECT count(*) FROM d"
    )
    inputs = await conn.fetchval(
        "WITH d AS (DELETE FROM lash_turn_inputs WHERE state IN ('cancelled', 'completed') "
        "RETURNING 1) SELECT count(*) FROM d"
    )
    return VacuumReport(
        removed_node_count=int(nodes or 0),
        removed_pending_turn_input_tombstone_count=int(inputs or 0),
    )
