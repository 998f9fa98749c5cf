"""Store facets and their backends: ``MemoryStore`` (ephemeral), ``SqliteStore`` (durable,
embedded) and ``PostgresStore`` (durable, shared by many workers; needs ``asyncpg``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lash.stores.base import AttachmentStore, DurabilityTier, ProcessEnvStore, SessionStore
from lash.stores.memory import MemoryAttachmentStore, MemoryProcessEnvStore, MemoryStore

if TYPE_CHECKING:
    from lash.stores.postgres import PostgresStore
    from lash.stores.sqlite import SqliteStore

__all__ = [
    "AttachmentStore",
    "DurabilityTier",
    "MemoryAttachmentStore",
    "MemoryProcessEnvStore",
    "MemoryStore",
    "PostgresStore",
    "ProcessEnvStore",
    "SessionStore",
    "SqliteStore",
]


def __getattr__(name: str) -> Any:
    if name == "SqliteStore":
        from lash.stores.sqlite import SqliteStore

        return SqliteStore
    if name == "PostgresStore":
        from lash.stores.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(name)
