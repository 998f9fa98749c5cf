"""The PostgreSQL schema, its explicit migrations, and the version gate.

Every session shares one set of ``lash_*`` tables keyed by ``session_id``. The version lives
in ``lash_schema_versions`` (component ``lash-postgres-store``). Opening takes a
transaction-scoped advisory lock, so many workers starting at once create the schema once;
it then applies every migration newer than the recorded version, in order, in that same
transaction, and refuses a database written by a newer lash (``schema_too_new``).
"""

from __future__ import annotations

from dataclasses import dataclass

from lash.errors import StoreError, StoreErrorKind
from lash.stores.postgres._conn import Conn

__all__ = [
    "COMPONENT",
    "MIGRATIONS",
    "SCHEMA_LOCK_KEY",
    "SCHEMA_VERSION",
    "TABLES",
    "Migration",
    "ensure_schema",
]

COMPONENT = "lash-postgres-store"
"""The row of ``lash_schema_versions`` this store owns."""

SCHEMA_LOCK_KEY = (0x6C617368, 1)
"""``pg_advisory_xact_lock(key1, key2)`` taken while the schema is created or migrated."""


@dataclass(frozen=True, slots=True)
class Migration:
    """Statements that take the schema from ``version - 1`` to ``version``."""

    version: int
    description: str
    statements: tuple[str, ...]


_CLAIM_COLUMNS = """
    claim_id TEXT,
    claim_owner_id TEXT,
    claim_token TEXT,
    claim_generation BIGINT,
    claim_fencing_token BIGINT NOT NULL DEFAULT 0
"""

_V1 = Migration(
    version=1,
    description="every session-store facet in shared tables keyed by session id",
    statements=(
        # The head row: revision (the CAS target), leaf, config, frames and checkpoint.
        """
        CREATE TABLE lash_sessions (
            session_id TEXT PRIMARY KEY,
            head_revision BIGINT NOT NULL,
            leaf_node_id TEXT,
            config_json BYTEA NOT NULL,
            agent_frames_json BYTEA NOT NULL,
            current_agent_frame_id TEXT,
            checkpoint_json BYTEA NOT NULL,
            created_at_ms BIGINT NOT NULL,
            updated_at_ms BIGINT NOT NULL
        )
        """,
        "CREATE TABLE lash_session_meta (session_id TEXT PRIMARY KEY, meta_json BYTEA NOT NULL)",
        """
        CREATE TABLE lash_graph_nodes (
            seq BIGSERIAL PRIMARY KEY,
            session_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            parent_node_id TEXT,
            tombstoned BOOLEAN NOT NULL DEFAULT FALSE,
            node_json BYTEA NOT NULL,
            UNIQUE (session_id, node_id)
        )
        """,
        """
        CREATE TABLE lash_usage_ledger (
            ord BIGSERIAL PRIMARY KEY,
            session_id TEXT NOT NULL,
            source TEXT NOT NULL,
            model TEXT NOT NULL,
            input_tokens BIGINT NOT NULL,
            cache_read_input_tokens BIGINT NOT NULL,
            cache_write_input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            reasoning_output_tokens BIGINT NOT NULL,
            UNIQUE (session_id, source, model)
        )
        """,
        """
        CREATE TABLE lash_turn_commits (
            session_id TEXT NOT NULL,
            turn_id TEXT NOT NULL,
            turn_commit_hash TEXT NOT NULL,
            result_json BYTEA NOT NULL,
            committed_at_ms BIGINT NOT NULL,
            PRIMARY KEY (session_id, turn_id)
        )
        """,
        # Release clears the token and times but keeps fencing_token: generations never repeat.
        """
        CREATE TABLE lash_session_leases (
            session_id TEXT PRIMARY KEY,
            owner_id TEXT,
            incarnation_id TEXT,
            liveness_json BYTEA,
            lease_token TEXT,
            fencing_token BIGINT NOT NULL,
            claimed_at_ms BIGINT,
            expires_at_ms BIGINT
        )
        """,
        f"""
        CREATE TABLE lash_turn_inputs (
            enqueue_seq BIGSERIAL PRIMARY KEY,
            session_id TEXT NOT NULL,
            input_id TEXT NOT NULL,
            source_key TEXT,
            ingress_kind TEXT NOT NULL,
            ingress_turn_id TEXT,
            min_boundary TEXT NOT NULL,
            state TEXT NOT NULL,
            enqueued_at_ms BIGINT NOT NULL,
            input_json BYTEA NOT NULL,
            {_CLAIM_COLUMNS},
            UNIQUE (session_id, input_id)
        )
        """,
        """
        CREATE UNIQUE INDEX lash_turn_inputs_by_source_key
            ON lash_turn_inputs (session_id, source_key) WHERE source_key IS NOT NULL
        """,
        """
        CREATE INDEX lash_turn_inputs_by_state
            ON lash_turn_inputs (session_id, state, enqueue_seq)
        """,
        "CREATE INDEX lash_turn_inputs_by_claim ON lash_turn_inputs (session_id, claim_id)",
        f"""
        CREATE TABLE lash_queued_batches (
            enqueue_seq BIGSERIAL PRIMARY KEY,
            session_id TEXT NOT NULL,
            batch_id TEXT NOT NULL,
            source_key TEXT,
            delivery_policy TEXT NOT NULL,
            slot_policy TEXT NOT NULL,
            merge_key_json BYTEA NOT NULL,
            available_at_ms BIGINT NOT NULL,
            enqueued_at_ms BIGINT NOT NULL,
            items_json BYTEA NOT NULL,
            {_CLAIM_COLUMNS},
            UNIQUE (session_id, batch_id)
        )
        """,
        """
        CREATE UNIQUE INDEX lash_queued_batches_by_source_key
            ON lash_queued_batches (session_id, source_key) WHERE source_key IS NOT NULL
        """,
        """
        CREATE INDEX lash_queued_batches_ready
            ON lash_queued_batches (session_id, available_at_ms, enqueue_seq)
        """,
        "CREATE INDEX lash_queued_batches_by_claim ON lash_queued_batches (session_id, claim_id)",
        # ADR 0028 layer 2: which session holds which blob, and whether a commit adopted it.
        """
        CREATE TABLE lash_attachment_refs (
            session_id TEXT NOT NULL,
            attachment_id TEXT NOT NULL,
            canonical_uri TEXT NOT NULL,
            intent_at_ms BIGINT NOT NULL,
            committed_at_ms BIGINT,
            owner_kind TEXT CHECK (owner_kind IN ('turn', 'process')),
            owner_id TEXT,
            CHECK ((owner_kind IS NULL) = (owner_id IS NULL)),
            PRIMARY KEY (session_id, attachment_id)
        )
        """,
        "CREATE INDEX lash_attachment_refs_by_id ON lash_attachment_refs (attachment_id)",
        """
        CREATE INDEX lash_attachment_refs_uncommitted
            ON lash_attachment_refs (session_id, owner_kind, owner_id)
            WHERE committed_at_ms IS NULL
        """,
        """
        CREATE TABLE lash_process_envs (
            env_ref TEXT PRIMARY KEY,
            data BYTEA NOT NULL,
            updated_at_ms BIGINT NOT NULL
        )
        """,
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1,)
"""Every migration in order; ``MIGRATIONS[i].version == i + 1``."""

SCHEMA_VERSION = MIGRATIONS[-1].version

TABLES = frozenset(
    {
        "lash_sessions",
        "lash_session_meta",
        "lash_graph_nodes",
        "lash_usage_ledger",
        "lash_turn_commits",
        "lash_session_leases",
        "lash_turn_inputs",
        "lash_queued_batches",
        "lash_attachment_refs",
        "lash_process_envs",
    }
)
"""Tables a current-version schema must have."""

_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS lash_schema_versions (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL
)
"""


async def _tables(conn: Conn) -> set[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name LIKE 'lash\\_%'"
    )
    return {str(r[0]) for r in rows}


async def ensure_schema(conn: Conn, label: str) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` or refuse it; returns the version found."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *SCHEMA_LOCK_KEY)
        await conn.execute(_VERSIONS_TABLE)
        found = await conn.fetchval(
            "SELECT version FROM lash_schema_versions WHERE component = $1", COMPONENT
        )
        found = int(found) if found is not None else 0
        if found > SCHEMA_VERSION:
            raise StoreError(
                StoreErrorKind.SCHEMA_TOO_NEW,
                f"{label} has lash schema version {found}, but this lash supports up to "
                f"{SCHEMA_VERSION}; upgrade lash to open it",
                found=found,
                supported=SCHEMA_VERSION,
            )
        if found == 0:
            stray = (await _tables(conn)) & TABLES
            if stray:
                raise StoreError(
                    StoreErrorKind.CORRUPT,
                    f"{label} has lash tables ({', '.join(sorted(stray))}) but no schema "
                    "version; refusing to write into it",
                    found=found,
                )
        for migration in MIGRATIONS:
            if migration.version > found:
                for statement in migration.statements:
                    await conn.execute(statement)
        if found < SCHEMA_VERSION:
            await conn.execute(
                "INSERT INTO lash_schema_versions (component, version) VALUES ($1, $2) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                COMPONENT,
                SCHEMA_VERSION,
            )
        missing = TABLES - await _tables(conn)
        if missing:
            raise StoreError(
                StoreErrorKind.CORRUPT,
                f"{label} claims lash schema version {found} but lacks tables "
                f"{', '.join(sorted(missing))}",
                found=found,
            )
    return found
