"""Store fixtures over the session's PostgreSQL (``postgres_server``, ``tests/conftest.py``).

Conformance cases of the ``postgres`` backend get the DSN through ``backends.PostgresServer``.
"""

from __future__ import annotations

import pytest

from lash.testing.postgres import TemporaryPostgres

from .backends import PostgresServer


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: TemporaryPostgres) -> str:
    """A superuser DSN of the session's PostgreSQL."""
    return postgres_server.dsn


@pytest.fixture(autouse=True)
def _publish_postgres_dsn(request: pytest.FixtureRequest) -> None:
    """Hand the DSN to the conformance harness of ``postgres-*`` parametrized cases only."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.id.startswith("postgres-"):
        PostgresServer.dsn = request.getfixturevalue("postgres_dsn")
