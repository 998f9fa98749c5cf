"""Every session-store facet in one PostgreSQL database, shared by many workers.

``PostgresStore(dsn)`` is the session store; ``store.attachments`` and
``store.process_envs`` are its attachment and process-env facets. Needs the ``postgres``
extra (``pip install 'lash-runtime[postgres]'``, which brings ``asyncpg``).
"""

from lash.stores.postgres.attachments import PostgresAttachmentStore, PostgresProcessEnvStore
from lash.stores.postgres.schema import SCHEMA_VERSION
from lash.stores.postgres.store import PostgresStore

__all__ = [
    "SCHEMA_VERSION",
    "PostgresAttachmentStore",
    "PostgresProcessEnvStore",
    "PostgresStore",
]
