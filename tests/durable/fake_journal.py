"""A positional fake of Restate's journal: ``run_typed`` records once, then replays."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


class Crash(BaseException):
    """Stands in for a worker dying at a journal step (nothing catches it)."""


class FakeJournal:
    """Journal entries by position, like Restate: a replay walks them from the start."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, bytes]] = []
        self.cursor = 0
        self.crash_at: int | None = None
        """A position whose first execution raises :class:`Crash` instead."""

    def context(self) -> FakeJournal:
        """A fresh invocation attempt over the same journal (replay from position 0)."""
        self.cursor = 0
        return self

    async def run_typed(
        self, name: str, action: Callable[[], Awaitable[bytes]], options: Any, /
    ) -> bytes:
        position = self.cursor
        self.cursor += 1
        if position < len(self.entries):
            recorded_name, value = self.entries[position]
            assert recorded_name == name, f"journal mismatch at {position}: {recorded_name}"
            return value
        if position == self.crash_at:
            raise Crash(name)
        value = await action()
        self.entries.append((name, value))
        return value
