"""One rule for tests that need a real server (PostgreSQL, restate-server).

Locally a missing server skips the test with the reason, so a contributor without the OS
packages can still run the rest; under CI (``CI`` set to a true value) it fails, because a
green run must mean the server-backed tests actually ran.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "server_unavailable"]


def in_ci() -> bool:
    """Whether this run is CI (``CI`` is ``1``, ``true`` or ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def server_unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip locally: a required server could not be started."""
    if in_ci():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)
