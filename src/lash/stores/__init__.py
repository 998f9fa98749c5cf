"""Store facets and their backends: ``MemoryStore`` (ephemeral) and ``SqliteStore`` (durable)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lash.stores.base import AttachmentStore, DurabilityTier, ProcessEnvStore, SessionStore
from lash.stores.memory import MemoryAttachmentStore, MemoryProcessEnvStore, MemoryStore

if TYPE_CHECKING:
    from lash.stores.sqlite import SqliteStore

__all__ = [
    "AttachmentStore",
    "DurabilityTier",
    "MemoryAttachmentStore",
    "MemoryProcessEnvStore",
    "MemoryStore",
    "ProcessEnvStore",
    "SessionStore",
    "SqliteStore",
]


def __getattr__(name: str) -> Any:
    if name == "SqliteStore":
        from lash.stores.sqlite import SqliteStore

        return SqliteStore
    raise AttributeError(name)
