"""Attachments for the SQLite store: file blobs beside the database, references inside it.

Layer 1 (ADR 0028) is a content-addressed directory, ``<root>/sha256/<first2>/<hash>``,
written crash-safely by :class:`~lash.stores._file_blobs.FileBlobDir` (shared with the
PostgreSQL store). Layer 2, the per-session reference manifest, is a table in the database,
so a session reads a blob only through a reference it holds: guessing another session's hash
gets ``not_found``.
Layer 3 is :meth:`SqliteAttachmentStore.sweep_unreferenced`, which the host schedules.

Blob modification times are stamped from the store's injected clock (also on a dedup hit),
so the sweep's grace period and a test's manual clock agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lash.errors import StoreError, StoreErrorKind
from lash.stores._file_blobs import FileBlobDir
from lash.stores.base import BlobInfo, DurabilityTier, SweepReport
from lash.types import AttachmentRef

if TYPE_CHECKING:
    from lash.stores.sqlite.store import SqliteStore

__all__ = ["SqliteAttachmentStore", "SqliteProcessEnvStore"]

_STAGING_SUFFIX = ".staging"
_log = logging.getLogger(__name__)

_RECORD_INTENT = """
INSERT INTO attachment_refs (session_id, attachment_id, canonical_uri, intent_at_ms,
                             committed_at_ms, owner_kind, owner_id)
VALUES (?, ?, ?, ?, NULL, ?, ?)
ON CONFLICT (session_id, attachment_id) DO UPDATE SET
    canonical_uri = excluded.canonical_uri,
    intent_at_ms = excluded.intent_at_ms,
    owner_kind = excluded.owner_kind,
    owner_id = excluded.owner_id
"""
# An uncommitted intent is forgotten by a sweep only when it is aged past the cutoff and
# its owning turn can no longer commit it: a later, different turn of the same session has
# committed since. Ownerless intents are references like any other (the session forgets
# them explicitly), and process-owned ones stay because no process registry is wired in.
_FORGETTABLE = """
r.committed_at_ms IS NULL AND r.intent_at_ms <= :cutoff AND r.owner_kind = 'turn'
AND EXISTS (
    SELECT 1 FROM turn_commits AS t
    WHERE t.session_id = r.session_id AND t.turn_id <> r.owner_id
      AND t.committed_at_ms > r.intent_at_ms
)
"""
_FORGET_AGED = f"DELETE FROM attachment_refs AS r WHERE {_FORGETTABLE}"
_HAS_LIVE_REF = (
    f"SELECT 1 FROM attachment_refs AS r WHERE r.attachment_id = :id AND NOT ({_FORGETTABLE}) "
    "LIMIT 1"
)


def _not_found(session_id: str, attachment_id: str) -> StoreError:
    return StoreError(
        StoreErrorKind.NOT_FOUND,
        f"session {session_id!r} holds no attachment {attachment_id!r}",
        session_id=session_id,
        attachment_id=attachment_id,
    )


class SqliteAttachmentStore:
    """Content-addressed file blobs plus the per-session manifest in the store's database."""

    def __init__(self, store: SqliteStore, root: Path | None) -> None:
        self._store = store
        self._root = root

    @property
    def tier(self) -> DurabilityTier:
        """The owning store's tier: the references live in its database."""
        return self._store.tier

    @property
    def root(self) -> Path | None:
        """The blob directory (``None`` for an in-memory database without one)."""
        return self._root

    def _require_root(self) -> Path:
        if self._root is None:
            raise StoreError(
                StoreErrorKind.INVALID_ARGUMENT,
                "an in-memory SQLite store has no attachment directory; pass attachments_root",
            )
        return self._root

    def _blobs(self) -> FileBlobDir:
        return FileBlobDir(self._require_root())

    # --- the facet -----------------------------------------------------------------------

    async def put(
        self,
        session_id: str,
        data: bytes,
        media_type: str,
        *,
        label: str | None = None,
        owner_turn_id: str | None = None,
    ) -> AttachmentRef:
        """Record the session's intent first (write-ahead), then store the bytes."""
        if not session_id:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "session id must be non-empty")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "attachment data must be bytes")
        data = bytes(data)
        self._require_root()
        attachment_id = hashlib.sha256(data).hexdigest()
        ref = AttachmentRef(
            id=attachment_id, media_type=media_type, byte_len=len(data), label=label
        )
        owner_kind = "turn" if owner_turn_id is not None else None

        def record(conn: sqlite3.Connection, now: int) -> int:
            conn.execute(
                _RECORD_INTENT,
                (session_id, attachment_id, ref.uri, now, owner_kind, owner_turn_id),
            )
            return now

        stamp = await self._store._run_write(record)
        await asyncio.to_thread(self._blobs().write, attachment_id, data, stamp)
        return ref

    async def get(self, session_id: str, attachment_id: str) -> bytes:
        """The bytes, only if this session holds a reference (``not_found`` otherwise)."""
        if not await self.holds_ref(session_id, attachment_id):
            raise _not_found(session_id, attachment_id)
        data = await asyncio.to_thread(self._blobs().read, attachment_id)
        if data is None:
            raise _not_found(session_id, attachment_id)
        return data

    async def holds_ref(self, session_id: str, attachment_id: str) -> bool:
        """Whether the session references the blob (intent or committed)."""

        def probe(conn: sqlite3.Connection, now: int) -> bool:
            row = conn.execute(
                "SELECT 1 FROM attachment_refs WHERE session_id = ? AND attachment_id = ?",
                (session_id, attachment_id),
            ).fetchone()
            return row is not None

        return await self._store._run_read(probe)

    async def commit_refs(self, session_id: str, attachment_ids: Sequence[str]) -> None:
        """Stamp existing references as committed (update-only: never creates one)."""
        ids = list(attachment_ids)

        def stamp(conn: sqlite3.Connection, now: int) -> None:
            conn.executemany(
                "UPDATE attachment_refs SET committed_at_ms = COALESCE(committed_at_ms, ?) "
                "WHERE session_id = ? AND attachment_id = ?",
                [(now, session_id, a) for a in ids],
            )

        await self._store._run_write(stamp)

    async def forget(self, session_id: str, attachment_id: str) -> None:
        """Drop the session's reference (the blob stays until a sweep)."""

        def drop(conn: sqlite3.Connection, now: int) -> None:
            conn.execute(
                "DELETE FROM attachment_refs WHERE session_id = ? AND attachment_id = ?",
                (session_id, attachment_id),
            )

        await self._store._run_write(drop)

    async def list_blobs(self) -> list[BlobInfo]:
        """Every stored blob, by id."""
        return await asyncio.to_thread(self._blobs().scan)

    async def sweep_unreferenced(self, grace_ms: int = 0) -> SweepReport:
        """Delete blobs no session references, sparing anything touched within ``grace_ms``.

        First forgets aged intents of superseded turns in one statement; then, per
        unreferenced blob, re-checks freshness and references right before deleting, so a
        concurrent ``put`` that refreshed either is spared.
        """
        if grace_ms < 0:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "grace_ms must be >= 0")

        def reconcile(conn: sqlite3.Connection, now: int) -> tuple[int, set[str]]:
            cutoff = now - grace_ms
            conn.execute(_FORGET_AGED, {"cutoff": cutoff})
            live = {
                r[0] for r in conn.execute("SELECT DISTINCT attachment_id FROM attachment_refs")
            }
            return cutoff, live

        cutoff, live = await self._store._run_write(reconcile)
        files = self._blobs()
        blobs = await self.list_blobs()
        reclaimed = 0
        failed: list[str] = []
        for blob in blobs:
            if blob.id in live:
                continue
            if blob.last_modified_ms is not None and blob.last_modified_ms > cutoff:
                continue
            try:
                mtime = await asyncio.to_thread(files.mtime_ms, blob.id)
                if mtime is None or mtime > cutoff:
                    continue
                if await self._has_live_ref(blob.id, cutoff):
                    continue
                await asyncio.to_thread(files.delete, blob.id)
            except (OSError, StoreError):
                failed.append(blob.id)
                continue
            reclaimed += 1
            if await self._has_live_ref(blob.id, cutoff):
                # A put raced the delete: its reference is intact but its bytes are gone.
                _log.error("attachment %s was swept while referenced; re-put it", blob.id)
        return SweepReport(
            scanned_blob_count=len(blobs), reclaimed_count=reclaimed, failed_ids=tuple(failed)
        )

    async def _has_live_ref(self, attachment_id: str, cutoff: int) -> bool:
        def probe(conn: sqlite3.Connection, now: int) -> bool:
            row = conn.execute(_HAS_LIVE_REF, {"id": attachment_id, "cutoff": cutoff}).fetchone()
            return row is not None

        return await self._store._run_read(probe)


class SqliteProcessEnvStore:
    """Process execution environments as rows of the store's database."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    @property
    def tier(self) -> DurabilityTier:
        """The owning store's tier."""
        return self._store.tier

    async def put_env(self, env_ref: str, data: bytes) -> None:
        """Store (overwrite) an env."""
        if not env_ref:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "env ref must be non-empty")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "env data must be bytes")
        payload = bytes(data)

        def write(conn: sqlite3.Connection, now: int) -> None:
            conn.execute(
                "INSERT INTO process_envs (env_ref, data, updated_at_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (env_ref) DO UPDATE SET data = excluded.data, "
                "updated_at_ms = excluded.updated_at_ms",
                (env_ref, payload, now),
            )

        await self._store._run_write(write)

    async def get_env(self, env_ref: str) -> bytes | None:
        """An env, if stored."""

        def read(conn: sqlite3.Connection, now: int) -> bytes | None:
            row = conn.execute(
                "SELECT data FROM process_envs WHERE env_ref = ?", (env_ref,)
            ).fetchone()
            return bytes(row[0]) if row is not None else None

        return await self._store._run_read(read)
