"""Injected time. Every timestamp, lease decision and timeout reads a :class:`Clock`."""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of wall-clock milliseconds."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        """The current manual time."""
        return self._now

    def advance(self, ms: int) -> None:
        """Move time forward by ``ms``."""
        if ms < 0:
            raise ValueError("time only moves forward")
        self._now += ms

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms``."""
        self._now = now_ms
