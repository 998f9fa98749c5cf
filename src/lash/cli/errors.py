"""The one error type the CLI shows: a single clear line and a non-zero exit, no traceback."""

from __future__ import annotations

import sys
from typing import IO, Any

__all__ = ["CliError"]


class CliError(Exception):
    """A user-facing failure (bad config, unknown provider or session, unreadable file)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def show(self, file: IO[Any] | None = None) -> None:
        """``lash: error: <message>`` on stderr."""
        print(f"lash: error: {self.message}", file=file or sys.stderr)
