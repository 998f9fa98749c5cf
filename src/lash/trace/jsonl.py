"""A trace sink that appends one JSON line per record to a file.

Each append opens, writes and closes the file under a short lock, so several sinks (or
processes) may share one path and a crash loses at most the line being written; ``flush``
fsyncs so records written before it survive power loss.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from lash.trace.base import TraceRecord
from lash.types._base import encode

__all__ = ["JsonlTraceSink"]


class JsonlTraceSink:
    """Append :class:`TraceRecord` values to ``path`` as JSON Lines (schema v2)."""

    __slots__ = ("_lock", "path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, record: TraceRecord) -> None:
        """Write one line (the parent directory is created on first use)."""
        line = encode(record) + b"\n"
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def flush(self) -> None:
        """fsync the file, so every appended record is durable."""
        with self._lock:
            if not self.path.exists():
                return
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def __repr__(self) -> str:
        return f"JsonlTraceSink({str(self.path)!r})"
