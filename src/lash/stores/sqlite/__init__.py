"""The embedded durable default: every store facet over one SQLite file.

``SqliteStore(path)`` is the session store; ``store.attachments`` and
``store.process_envs`` are the attachment and process-env facets sharing its connection.
"""

from lash.stores.sqlite.attachments import SqliteAttachmentStore, SqliteProcessEnvStore
from lash.stores.sqlite.schema import SCHEMA_VERSION
from lash.stores.sqlite.store import SqliteStore

__all__ = ["SCHEMA_VERSION", "SqliteAttachmentStore", "SqliteProcessEnvStore", "SqliteStore"]
