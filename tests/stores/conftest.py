"""Store fixtures: one throw-away PostgreSQL for the whole session, started on first use.

``postgres_dsn`` starts :class:`lash.testing.postgres.TemporaryPostgres` (or uses
``LASH_POSTGRES_DSN``). Without PostgreSQL the tests that need it are skipped locally with
the reason, and *fail* in CI (``CI=true``), where a missing server is a broken set-up.
Conformance cases of the ``postgres`` backend get the DSN through ``backends.PostgresServer``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lash.testing.postgres import PostgresUnavailable, TemporaryPostgres

from .backends import PostgresServer


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TemporaryPostgres]:
    """The session's PostgreSQL (skipped locally, failed in CI, when unavailable)."""
    server = TemporaryPostgres()
    try:
        server.start()
    except PostgresUnavailable as exc:
        reason = f"PostgreSQL unavailable: {exc}"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.close()


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
