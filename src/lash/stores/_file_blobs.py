"""Layer 1 of ADR 0028 as files: a content-addressed blob directory shared by store backends.

``<root>/sha256/<first2>/<hash>``, written crash-safely (unique staging file, fsync, rename,
fsync of the directory). A dedup hit re-stamps the file's modification time with the
caller's timestamp, because the unreferenced-blob sweep spares anything fresher than its
grace period. Methods block; async callers run them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

from lash.errors import StoreError, StoreErrorKind
from lash.stores.base import BlobInfo

__all__ = ["FileBlobDir", "is_blob_id", "translate_os"]

_STAGING_SUFFIX = ".staging"


def translate_os(exc: OSError, what: str) -> StoreError:
    """The :class:`StoreError` for a filesystem error while doing ``what``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreError(StoreErrorKind.DISK_FULL, f"the disk is full while {what}: {exc}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StoreError(StoreErrorKind.READ_ONLY, f"read-only storage while {what}: {exc}")
    return StoreError(StoreErrorKind.BACKEND, f"I/O error while {what}: {exc}")


def is_blob_id(name: str) -> bool:
    """Whether ``name`` is a lowercase SHA-256 hex digest."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _refresh_stored(path: Path, size: int, stamp: tuple[int, int]) -> bool:
    """A dedup hit: refresh the stored blob's stamp (its freshness for the sweep).

    ``False`` when there is nothing to refresh — a new blob, or one a sweep removed a moment
    ago — so the caller writes it.
    """
    try:
        if path.stat().st_size != size:
            return False
        os.utime(path, ns=stamp)
    except FileNotFoundError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileBlobDir:
    """Blobs as files under ``root``; ids are SHA-256 hex digests of the bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, blob_id: str) -> Path:
        """Where ``blob_id`` lives; a malformed id is ``not_found`` (never a path escape)."""
        if not is_blob_id(blob_id):
            raise StoreError(StoreErrorKind.NOT_FOUND, f"{blob_id!r} is not an attachment id")
        return self.root / "sha256" / blob_id[:2] / blob_id

    def write(self, blob_id: str, data: bytes, stamp_ms: int) -> None:
        """Store ``data`` (or refresh the stamp of an identical stored blob)."""
        path = self.path(blob_id)
        stamp = (stamp_ms * 1_000_000, stamp_ms * 1_000_000)
        try:
            if _refresh_stored(path, len(data), stamp):
                return
            shard = path.parent
            if not shard.is_dir():
                shard.mkdir(parents=True, exist_ok=True)
                _fsync_dir(shard.parent)
                _fsync_dir(shard.parent.parent)
            staging = shard / f".{blob_id}.{uuid.uuid4().hex}{_STAGING_SUFFIX}"
            try:
                with open(staging, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.utime(staging, ns=stamp)
                os.replace(staging, path)
            except BaseException:
                staging.unlink(missing_ok=True)
                raise
            _fsync_dir(shard)
        except OSError as exc:
            raise translate_os(exc, f"writing attachment {blob_id}") from exc

    def read(self, blob_id: str) -> bytes | None:
        """The bytes, or ``None`` when the blob is absent."""
        try:
            return self.path(blob_id).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise translate_os(exc, f"reading attachment {blob_id}") from exc

    def scan(self) -> list[BlobInfo]:
        """Every stored blob, by id."""
        base = self.root / "sha256"
        out: list[BlobInfo] = []
        try:
            shards = sorted(os.scandir(base), key=lambda e: e.name)
        except FileNotFoundError:
            return out
        except OSError as exc:
            raise translate_os(exc, "listing attachments") from exc
        for shard in shards:
            if not shard.is_dir():
                continue
            for entry in sorted(os.scandir(shard.path), key=lambda e: e.name):
                if not is_blob_id(entry.name) or not entry.is_file():
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                out.append(
                    BlobInfo(
                        id=entry.name,
                        byte_len=st.st_size,
                        last_modified_ms=st.st_mtime_ns // 1_000_000,
                    )
                )
        return out

    def mtime_ms(self, blob_id: str) -> int | None:
        """The blob's modification stamp, or ``None`` when absent."""
        try:
            return self.path(blob_id).stat().st_mtime_ns // 1_000_000
        except FileNotFoundError:
            return None

    def delete(self, blob_id: str) -> None:
        """Remove the blob (idempotent)."""
        self.path(blob_id).unlink(missing_ok=True)
