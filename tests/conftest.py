"""Fixtures shared by every test package: one throw-away PostgreSQL for the whole session.

``postgres_server`` starts :class:`lash.testing.postgres.TemporaryPostgres` (or uses
``LASH_POSTGRES_DSN``) on first use. Without PostgreSQL the tests that need it are skipped
locally with the reason and *fail* in CI (:func:`lash.testing.servers.server_unavailable`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lash.testing.postgres import PostgresUnavailable, TemporaryPostgres
from lash.testing.servers import server_unavailable


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """The session's PostgreSQL, shared by the store suite and the Restate end-to-end tests."""
    server = TemporaryPostgres()
    try:
        server.start()
    except PostgresUnavailable as exc:
        server_unavailable(f"PostgreSQL unavailable: {exc}")
    try:
        yield server
    finally:
        server.close()
