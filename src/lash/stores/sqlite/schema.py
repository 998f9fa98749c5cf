"""The SQLite schema, its versioned migrations, and the checks made when a file is opened.

The version lives in ``PRAGMA user_version`` and the file is marked as lash's with
``PRAGMA application_id``. Opening applies every migration newer than the file's version in
one ``BEGIN IMMEDIATE`` transaction (so two processes opening a fresh file race safely),
refuses a file written by a newer lash (``schema_too_new``), and refuses anything that is
not a lash database (``corrupt``) instead of writing tables into it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from lash.errors import StoreError, StoreErrorKind

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TABLES",
    "Migration",
    "ensure_schema",
]

APPLICATION_ID = 0x6C617368
"""``PRAGMA application_id`` of a lash database (the bytes ``lash``)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """Statements that take a database from ``version - 1`` to ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    version=1,
    description="every session-store facet in one file",
    statements=(
        # The head row: revision (the CAS target), leaf, config, frames and checkpoint.
        """
        CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY,
            head_revision INTEGER NOT NULL,
            leaf_node_id TEXT,
            config_json BLOB NOT NULL,
            agent_frames_json BLOB NOT NULL,
            current_agent_frame_id TEXT,
            checkpoint_json BLOB NOT NULL,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL
        )
        """,
        "CREATE TABLE session_meta (session_id TEXT PRIMARY KEY, meta_json BLOB NOT NULL)",
        # Append-only graph: one row per node; the parent column drives active-path reads.
        """
        CREATE TABLE graph_nodes (
            seq INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            parent_node_id TEXT,
            tombstoned INTEGER NOT NULL DEFAULT 0,
            node_json BLOB NOT NULL,
            UNIQUE (session_id, node_id)
        )
        """,
        # The usage ledger, merged by (source, model) as it is written; ord keeps first-seen order.
        """
        CREATE TABLE usage_ledger (
            ord INTEGER PRIMARY KEY,
            session_id TEXT NOT NULL,
            source TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens INTEGER NOT NULL,
            cache_read_input_tokens INTEGER NOT NULL,
            cache_write_input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            reasoning_output_tokens INTEGER NOT NULL,
            UNIQUE (session_id, source, model)
        )
        """,
        """
        CREATE TABLE turn_commits (
            session_id TEXT NOT NULL,
            turn_id TEXT NOT NULL,
            turn_commit_hash TEXT NOT NULL,
            result_json BLOB NOT NULL,
            committed_at_ms INTEGER NOT NULL,
            PRIMARY KEY (session_id, turn_id)
        )
        """,
        # Release nulls the owner columns but keeps fencing_token, so generations never repeat.
        """
        CREATE TABLE session_leases (
            session_id TEXT PRIMARY KEY,
            owner_id TEXT,
            incarnation_id TEXT,
            liveness_json BLOB,
            lease_token TEXT,
            fencing_token INTEGER NOT NULL,
            claimed_at_ms INTEGER,
            expires_at_ms INTEGER
        )
        """,
        """
        CREATE TABLE turn_inputs (
            enqueue_seq INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL,
            input_id TEXT NOT NULL,
            source_key TEXT,
            ingress_kind TEXT NOT NULL,
            ingress_turn_id TEXT,
            min_boundary TEXT NOT NULL,
            state TEXT NOT NULL,
            enqueued_at_ms INTEGER NOT NULL,
            input_json BLOB NOT NULL,
            claim_id TEXT,
            claim_owner_id TEXT,
            claim_token TEXT,
            claim_generation INTEGER,
            claim_fencing_token INTEGER NOT NULL DEFAULT 0,
            UNIQUE (session_id, input_id)
        )
        """,
        """
        CREATE UNIQUE INDEX turn_inputs_by_source_key
            ON turn_inputs (session_id, source_key) WHERE source_key IS NOT NULL
        """,
        "CREATE INDEX turn_inputs_by_state ON turn_inputs (session_id, state)",
        "CREATE INDEX turn_inputs_by_claim ON turn_inputs (session_id, claim_id)",
        """
        CREATE TABLE queued_batches (
            enqueue_seq INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL,
            batch_id TEXT NOT NULL,
            source_key TEXT,
            delivery_policy TEXT NOT NULL,
            slot_policy TEXT NOT NULL,
            merge_key_json BLOB NOT NULL,
            available_at_ms INTEGER NOT NULL,
            enqueued_at_ms INTEGER NOT NULL,
            items_json BLOB NOT NULL,
            claim_id TEXT,
            claim_owner_id TEXT,
            claim_token TEXT,
            claim_generation INTEGER,
            claim_fencing_token INTEGER NOT NULL DEFAULT 0,
            UNIQUE (session_id, batch_id)
        )
        """,
        """
        CREATE UNIQUE INDEX queued_batches_by_source_key
            ON queued_batches (session_id, source_key) WHERE source_key IS NOT NULL
        """,
        "CREATE INDEX queued_batches_by_session ON queued_batches (session_id, available_at_ms)",
        "CREATE INDEX queued_batches_by_claim ON queued_batches (session_id, claim_id)",
        # ADR 0028 layer 2: which session holds which blob, and whether a commit adopted it.
        """
        CREATE TABLE attachment_refs (
            session_id TEXT NOT NULL,
            attachment_id TEXT NOT NULL,
            canonical_uri TEXT NOT NULL,
            intent_at_ms INTEGER NOT NULL,
            committed_at_ms INTEGER,
            owner_kind TEXT CHECK (owner_kind IN ('turn', 'process')),
            owner_id TEXT,
            CHECK ((owner_kind IS NULL) = (owner_id IS NULL)),
            PRIMARY KEY (session_id, attachment_id)
        )
        """,
        "CREATE INDEX attachment_refs_by_id ON attachment_refs (attachment_id)",
        """
        CREATE INDEX attachment_refs_uncommitted
            ON attachment_refs (session_id, owner_kind, owner_id) WHERE committed_at_ms IS NULL
        """,
        """
        CREATE TABLE process_envs (
            env_ref TEXT PRIMARY KEY,
            data BLOB NOT NULL,
            updated_at_ms INTEGER NOT NULL
        )
        """,
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1,)
"""Every migration in order; ``MIGRATIONS[i].version == i + 1``."""

SCHEMA_VERSION = MIGRATIONS[-1].version

TABLES = frozenset(
    {
        "sessions",
        "session_meta",
        "graph_nodes",
        "usage_ledger",
        "turn_commits",
        "session_leases",
        "turn_inputs",
        "queued_batches",
        "attachment_refs",
        "process_envs",
    }
)
"""Tables a current-version database must have."""


def _user_objects(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND type = 'table'"
    ).fetchall()
    return {str(r[0]) for r in rows}


def ensure_schema(conn: sqlite3.Connection, path: str) -> int:
    """Bring the database to :data:`SCHEMA_VERSION` or refuse it; returns the version found.

    Runs in one ``BEGIN IMMEDIATE`` transaction: the version read and the migrations that
    follow cannot interleave with another process doing the same.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        tables = _user_objects(conn)
        if found > SCHEMA_VERSION:
            raise StoreError(
                StoreErrorKind.SCHEMA_TOO_NEW,
                f"{path} has lash schema version {found}, but this lash supports up to "
                f"{SCHEMA_VERSION}; upgrade lash to open it",
                found=found,
                supported=SCHEMA_VERSION,
            )
        if found == 0 and app_id == 0 and tables:
            raise StoreError(
                StoreErrorKind.CORRUPT,
                f"{path} is a SQLite database but not a lash database "
                f"(it has unrelated tables: {', '.join(sorted(tables)[:5])}); "
                "refusing to write into it",
                found=found,
            )
        if found > 0 and app_id != APPLICATION_ID:
            raise StoreError(
                StoreErrorKind.CORRUPT,
                f"{path} is not a lash database (application_id {app_id:#x}, user_version {found})",
                found=found,
            )
        for migration in MIGRATIONS:
            if migration.version > found:
                for statement in migration.statements:
                    conn.execute(statement)
        # Written even when unchanged: a read-only file or directory fails here, at open,
        # rather than at the first commit.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if found < SCHEMA_VERSION:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            tables = _user_objects(conn)
        missing = TABLES - tables
        if missing:
            raise StoreError(
                StoreErrorKind.CORRUPT,
                f"{path} claims lash schema version {found} but lacks tables "
                f"{', '.join(sorted(missing))}",
                found=found,
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
