"""Observation: the committed read view, opaque cursors, and the bounded live-replay buffer.

The read view is the only source of settled transcript text. Live replay lets a reconnecting
observer catch up on what streamed since its cursor; it is bounded (2048 events or 120 s per
session by default) and best-effort — a trimmed or unknown cursor yields a *gap* plus a fresh
observation, never an error that fails a turn.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Literal

from lash.clock import Clock, SystemClock
from lash.types import AgentFrameRecord, Message, TokenUsage, TurnActivity
from lash.types._base import Record

__all__ = [
    "CURSOR_PREFIX",
    "LiveReplayGap",
    "LiveReplayStore",
    "ObservationEvent",
    "SessionCursor",
    "SessionObservation",
    "SessionReadView",
]

CURSOR_PREFIX = "lashsc1"


class SessionReadView(Record, frozen=True, kw_only=True):
    """An immutable projection of a session's committed state."""

    session_id: str
    revision: int
    turn_index: int
    messages: tuple[Message, ...]
    current_agent_frame_id: str
    agent_frames: tuple[AgentFrameRecord, ...] = ()
    frame_messages: tuple[Message, ...] = ()
    token_usage: TokenUsage = TokenUsage()
    last_prompt_usage: TokenUsage | None = None


class SessionCursor(Record, frozen=True, kw_only=True):
    """A position in a session's observation stream (encoded as an opaque string)."""

    session_id: str
    revision: int
    live_position: int

    def encode(self) -> str:
        """``lashsc1:{revision}:{live_position}:{session_id}``."""
        return f"{CURSOR_PREFIX}:{self.revision}:{self.live_position}:{self.session_id}"

    @classmethod
    def parse(cls, text: str, *, session_id: str | None = None) -> SessionCursor:
        """Parse a cursor; malformed cursors and other sessions' cursors are errors."""
        parts = text.split(":", 3)
        if len(parts) != 4 or parts[0] != CURSOR_PREFIX:
            raise ValueError(f"malformed session cursor {text!r}")
        try:
            revision, position = int(parts[1]), int(parts[2])
        except ValueError as err:
            raise ValueError(f"malformed session cursor {text!r}") from err
        if revision < 0 or position < 0 or not parts[3]:
            raise ValueError(f"malformed session cursor {text!r}")
        if session_id is not None and parts[3] != session_id:
            raise ValueError(f"cursor belongs to session {parts[3]!r}, not {session_id!r}")
        return cls(session_id=parts[3], revision=revision, live_position=position)


class ObservationEvent(Record, frozen=True, kw_only=True):
    """One observable change: a turn activity, a commit, a frame switch, or a queue change."""

    session_id: str
    revision: int
    cursor: str
    kind: Literal[
        "turn_activity", "committed", "agent_frame_switched", "queue_changed", "process_changed"
    ]
    activity: TurnActivity | None = None
    read_view: SessionReadView | None = None
    frame_id: str | None = None
    change: str | None = None
    ids: tuple[str, ...] = ()


class LiveReplayGap(Record, frozen=True, kw_only=True):
    """The cursor could not be served from the buffer."""

    reason: Literal["trimmed", "unavailable"]
    latest_cursor: str


class SessionObservation(Record, frozen=True, kw_only=True):
    """A fresh snapshot: the read view and the cursor to resume from."""

    read_view: SessionReadView
    cursor: str


class _SessionLog:
    __slots__ = ("events", "first_position", "next_position", "waiters")

    def __init__(self) -> None:
        self.events: deque[tuple[int, int, ObservationEvent]] = deque()
        self.first_position = 1
        self.next_position = 1
        self.waiters: set[asyncio.Event] = set()


class LiveReplayStore:
    """An in-memory, per-session, bounded replay buffer."""

    def __init__(
        self, *, capacity: int = 2048, ttl_s: float = 120.0, clock: Clock | None = None
    ) -> None:
        self._capacity = capacity
        self._ttl_ms = int(ttl_s * 1000)
        self._clock = clock or SystemClock()
        self._logs: dict[str, _SessionLog] = {}

    def _log(self, session_id: str) -> _SessionLog:
        log = self._logs.get(session_id)
        if log is None:
            log = self._logs[session_id] = _SessionLog()
        return log

    def _trim(self, log: _SessionLog) -> None:
        cutoff = self._clock.now_ms() - self._ttl_ms
        while log.events and (len(log.events) > self._capacity or log.events[0][1] < cutoff):
            position, _, _ = log.events.popleft()
            log.first_position = position + 1

    def tail_cursor(self, session_id: str, revision: int) -> str:
        """The cursor just after the newest buffered event."""
        log = self._log(session_id)
        return SessionCursor(
            session_id=session_id, revision=revision, live_position=log.next_position - 1
        ).encode()

    def append(
        self,
        session_id: str,
        revision: int,
        kind: Any,
        *,
        activity: TurnActivity | None = None,
        read_view: SessionReadView | None = None,
        frame_id: str | None = None,
        change: str | None = None,
        ids: tuple[str, ...] = (),
    ) -> ObservationEvent:
        """Append one event and wake subscribers."""
        log = self._log(session_id)
        position = log.next_position
        log.next_position += 1
        cursor = SessionCursor(
            session_id=session_id, revision=revision, live_position=position
        ).encode()
        event = ObservationEvent(
            session_id=session_id,
            revision=revision,
            cursor=cursor,
            kind=kind,
            activity=activity,
            read_view=read_view,
            frame_id=frame_id,
            change=change,
            ids=ids,
        )
        log.events.append((position, self._clock.now_ms(), event))
        self._trim(log)
        for waiter in list(log.waiters):
            waiter.set()
        return event

    def replay_after(
        self, session_id: str, cursor: str
    ) -> tuple[list[ObservationEvent], LiveReplayGap | None]:
        """Events strictly after ``cursor``, or a gap when it cannot be served."""
        parsed = SessionCursor.parse(cursor, session_id=session_id)
        log = self._log(session_id)
        self._trim(log)
        latest = SessionCursor(
            session_id=session_id, revision=parsed.revision, live_position=log.next_position - 1
        ).encode()
        if parsed.live_position > log.next_position - 1:
            return [], LiveReplayGap(reason="unavailable", latest_cursor=latest)
        if parsed.live_position + 1 < log.first_position:
            return [], LiveReplayGap(reason="trimmed", latest_cursor=latest)
        return [e for p, _, e in log.events if p > parsed.live_position], None

    async def subscribe(
        self, session_id: str, cursor: str
    ) -> AsyncIterator[ObservationEvent | LiveReplayGap]:
        """Replay after ``cursor`` and then yield live events as they arrive."""
        log = self._log(session_id)
        wake = asyncio.Event()
        log.waiters.add(wake)
        try:
            while True:
                events, gap = self.replay_after(session_id, cursor)
                if gap is not None:
                    yield gap
                    cursor = gap.latest_cursor
                    continue
                for event in events:
                    cursor = event.cursor
                    yield event
                wake.clear()
                if not self.replay_after(session_id, cursor)[0]:
                    await wake.wait()
        finally:
            log.waiters.discard(wake)

    def forget(self, session_id: str) -> None:
        """Drop a session's buffer."""
        self._logs.pop(session_id, None)
