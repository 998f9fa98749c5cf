"""Attachments for the PostgreSQL store: the manifest in the database, the bytes in files.

Layer 2 (ADR 0028, the per-session reference manifest) is the ``lash_attachment_refs``
table, shared by every worker. Layer 1 is :class:`~lash.stores._file_blobs.FileBlobDir`
under ``attachments_root`` — a directory every worker must see (a shared volume), since any
worker may serve any session. Timestamps (intents, commit stamps, blob freshness) come from
the database clock, like every other decision of this store.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lash.errors import StoreError, StoreErrorKind
from lash.stores._file_blobs import FileBlobDir
from lash.stores.base import BlobInfo, DurabilityTier, SweepReport
from lash.stores.postgres._conn import Conn
from lash.types import AttachmentRef

if TYPE_CHECKING:
    from lash.stores.postgres.store import PostgresStore

__all__ = ["PostgresAttachmentStore", "PostgresProcessEnvStore"]

_RECORD_INTENT = """
INSERT INTO lash_attachment_refs (session_id, attachment_id, canonical_uri, intent_at_ms,
                                  committed_at_ms, owner_kind, owner_id)
VALUES ($1, $2, $3, $4, NULL, $5, $6)
ON CONFLICT (session_id, attachment_id) DO UPDATE SET
    canonical_uri = excluded.canonical_uri,
    intent_at_ms = excluded.intent_at_ms,
    owner_kind = excluded.owner_kind,
    owner_id = excluded.owner_id
"""
# An uncommitted intent is forgotten by a sweep only when it is aged past the cutoff and
# its owning turn can no longer commit it: a later, different turn of the same session has
# committed since. Ownerless and process-owned intents stay (no process registry here).
_FORGETTABLE = """
r.committed_at_ms IS NULL AND r.intent_at_ms <= $1 AND r.owner_kind = 'turn'
AND EXISTS (
    SELECT 1 FROM lash_turn_commits AS t
    WHERE t.session_id = r.session_id AND t.turn_id <> r.owner_id
      AND t.committed_at_ms > r.intent_at_ms
)
"""
_FORGET_AGED = f"DELETE FROM lash_attachment_refs AS r WHERE {_FORGETTABLE}"
_HAS_LIVE_REF = (
    f"SELECT 1 FROM lash_attachment_refs AS r WHERE r.attachment_id = $2 "
    f"AND NOT ({_FORGETTABLE}) LIMIT 1"
)


def _not_found(session_id: str, attachment_id: str) -> StoreError:
    return StoreError(
        StoreErrorKind.NOT_FOUND,
        f"session {session_id!r} holds no attachment {attachment_id!r}",
        session_id=session_id,
        attachment_id=attachment_id,
    )


class PostgresAttachmentStore:
    """Content-addressed file blobs plus the shared per-session manifest in PostgreSQL."""

    def __init__(self, store: PostgresStore, root: Path | None) -> None:
        self._store = store
        self._blobs = FileBlobDir(root) if root is not None else None

    @property
    def tier(self) -> DurabilityTier:
        """Durable: blobs and references survive the process."""
        return DurabilityTier.DURABLE

    @property
    def root(self) -> Path | None:
        """The blob directory (``None`` when the store was opened without one)."""
        return self._blobs.root if self._blobs is not None else None

    def _dir(self) -> FileBlobDir:
        if self._blobs is None:
            raise StoreError(
                StoreErrorKind.INVALID_ARGUMENT,
                "this PostgresStore has no attachment directory; pass attachments_root",
            )
        return self._blobs

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
        blobs = self._dir()
        attachment_id = hashlib.sha256(data).hexdigest()
        ref = AttachmentRef(
            id=attachment_id, media_type=media_type, byte_len=len(data), label=label
        )
        owner_kind = "turn" if owner_turn_id is not None else None

        async def record(conn: Conn, now: int) -> int:
            await conn.execute(
                _RECORD_INTENT, session_id, attachment_id, ref.uri, now, owner_kind, owner_turn_id
            )
            return now

        stamp = await self._store._run_write(record)
        await asyncio.to_thread(blobs.write, attachment_id, data, stamp)
        return ref

    async def get(self, session_id: str, attachment_id: str) -> bytes:
        """The bytes, only if this session holds a reference (``not_found`` otherwise)."""
        if not await self.holds_ref(session_id, attachment_id):
            raise _not_found(session_id, attachment_id)
        data = await asyncio.to_thread(self._dir().read, attachment_id)
        if data is None:
            raise _not_found(session_id, attachment_id)
        return data

    async def holds_ref(self, session_id: str, attachment_id: str) -> bool:
        """Whether the session references the blob (intent or committed)."""

        async def probe(conn: Conn, now: int) -> bool:
            row = await conn.fetchval(
                "SELECT 1 FROM lash_attachment_refs WHERE session_id = $1 AND attachment_id = $2",
                session_id,
                attachment_id,
            )
            return row is not None

        return await self._store._run_read(probe)

    async def commit_refs(self, session_id: str, attachment_ids: Sequence[str]) -> None:
        """Stamp existing references as committed (update-only: never creates one)."""
        ids = list(attachment_ids)

        async def stamp(conn: Conn, now: int) -> None:
            await conn.execute(
                "UPDATE lash_attachment_refs SET committed_at_ms = COALESCE(committed_at_ms, $1) "
                "WHERE session_id = $2 AND attachment_id = ANY($3::text[])",
                now,
                session_id,
                ids,
            )

        await self._store._run_write(stamp)

    async def forget(self, session_id: str, attachment_id: str) -> None:
        """Drop the session's reference (the blob stays until a sweep)."""

        async def drop(conn: Conn, now: int) -> None:
            await conn.execute(
                "DELETE FROM lash_attachment_refs WHERE session_id = $1 AND attachment_id = $2",
                session_id,
                attachment_id,
            )

        await self._store._run_write(drop)

    async def list_blobs(self) -> list[BlobInfo]:
        """Every stored blob, by id."""
        return await asyncio.to_thread(self._dir().scan)

    async def sweep_unreferenced(self, grace_ms: int = 0) -> SweepReport:
        """Delete blobs no session references, sparing anything touched within ``grace_ms``.

        First forgets aged intents of superseded turns in one statement; then, per
        unreferenced blob, re-checks freshness and references right before deleting, so a
        concurrent ``put`` (on any worker) that refreshed either is spared.
        """
        if grace_ms < 0:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "grace_ms must be >= 0")
        blobs = self._dir()

        async def reconcile(conn: Conn, now: int) -> tuple[int, set[str]]:
            cutoff = now - grace_ms
            await conn.execute(_FORGET_AGED, cutoff)
            rows = await conn.fetch("SELECT DISTINCT attachment_id FROM lash_attachment_refs")
            return cutoff, {str(r[0]) for r in rows}

        cutoff, live = await self._store._run_write(reconcile)
        listed = await self.list_blobs()
        reclaimed = 0
        failed: list[str] = []
        for blob in listed:
            if blob.id in live:
                continue
            if blob.last_modified_ms is not None and blob.last_modified_ms > cutoff:
                continue
            try:
                mtime = await asyncio.to_thread(blobs.mtime_ms, blob.id)
                if mtime is None or mtime > cutoff:
                    continue
                if await self._has_live_ref(blob.id, cutoff):
                    continue
                await asyncio.to_thread(blobs.delete, blob.id)
            except (OSError, StoreError):
                failed.append(blob.id)
                continue
            reclaimed += 1
        return SweepReport(
            scanned_blob_count=len(listed), reclaimed_count=reclaimed, failed_ids=tuple(failed)
        )

    async def _has_live_ref(self, attachment_id: str, cutoff: int) -> bool:
        async def probe(conn: Conn, now: int) -> bool:
            return await conn.fetchval(_HAS_LIVE_REF, cutoff, attachment_id) is not None

        return await self._store._run_read(probe)


class PostgresProcessEnvStore:
    """Process execution environments as rows of the shared database."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    @property
    def tier(self) -> DurabilityTier:
        """Durable."""
        return DurabilityTier.DURABLE

    async def put_env(self, env_ref: str, data: bytes) -> None:
        """Store (overwrite) an env."""
        if not env_ref:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "env ref must be non-empty")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "env data must be bytes")
        payload = bytes(data)

        async def write(conn: Conn, now: int) -> None:
            await conn.execute(
                "INSERT INTO lash_process_envs (env_ref, data, updated_at_ms) VALUES ($1, $2, $3) "
                "ON CONFLICT (env_ref) DO UPDATE SET data = excluded.data, "
                "updated_at_ms = excluded.updated_at_ms",
                env_ref,
                payload,
                now,
            )

        await self._store._run_write(write)

    async def get_env(self, env_ref: str) -> bytes | None:
        """An env, if stored."""

        async def read(conn: Conn, now: int) -> bytes | None:
            raw = await conn.fetchval(
                "SELECT data FROM lash_process_envs WHERE env_ref = $1", env_ref
            )
            return bytes(raw) if raw is not None else None

        return await self._store._run_read(read)
