"""Store facets and their backends."""

from lash.stores.base import AttachmentStore, DurabilityTier, ProcessEnvStore, SessionStore

__all__ = ["AttachmentStore", "DurabilityTier", "ProcessEnvStore", "SessionStore"]
