"""One rule for tests that need a real server (PostgreSQL, restate-server).

Locally a missing server skips the test with the reason, so a contributor without the OS
packages can still run the rest; under CI (``CI`` set to a true value) it fails, because a
green run must mean the server-backed tests actually ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest

from lash.durable.restate.local import LocalRestateServer, find_restate_server

__all__ = ["RESTATE_SERVER_MISSING", "in_ci", "local_restate_server", "server_unavailable"]

RESTATE_SERVER_MISSING = "restate-server is not installed (scripts/setup.sh puts it in .restate/)"


def in_ci() -> bool:
    """Whether this run is CI (``CI`` is ``1``, ``true`` or ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def server_unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip locally: a required server could not be started."""
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@contextmanager
def local_restate_server() -> Iterator[LocalRestateServer]:
    """A ``restate-server`` on loopback for the block (none installed: skip locally, fail in CI)."""
    binary = find_restate_server()
    if binary is None:
        server_unavailable(RESTATE_SERVER_MISSING)
    with LocalRestateServer(binary) as server:
        yield server
