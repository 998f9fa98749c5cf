"""The ``lash`` command: print mode, interactive chat, sessions, trace viewer, demo."""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    """Entry point of the ``lash`` console script."""
    from lash.cli.app import main as run

    run()
