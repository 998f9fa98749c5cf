"""Fan live turn events out to the caller's sink and the session's live-replay buffer.

A slow sink slows the turn (it is awaited), but a failing sink never fails it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from lash.runtime.observation import LiveReplayStore
from lash.types import TurnActivity, TurnEvent

__all__ = ["ActivitySink", "Emitter", "new_id"]

log = logging.getLogger(__name__)

ActivitySink = Callable[[TurnActivity], Awaitable[None]]


def new_id() -> str:
    """A fresh opaque id: 128 random bits as 32 hex digits.

    (The same shape as ``uuid4().hex`` at under half the cost; a turn mints a couple of dozen.)
    """
    return os.urandom(16).hex()


class Emitter:
    """Builds :class:`TurnActivity` envelopes and delivers them."""

    def __init__(
        self,
        session_id: str,
        turn_id: str,
        sinks: list[ActivitySink],
        replay: LiveReplayStore | None,
        revision: Callable[[], int],
    ) -> None:
        self.session_id = session_id
        self.turn_id = turn_id
        self._sinks = sinks
        self._replay = replay
        self._revision = revision

    async def emit(self, event: TurnEvent, correlation_id: str | None = None) -> TurnActivity:
        """Deliver one event."""
        activity = TurnActivity(
            id=new_id(),
            correlation_id=correlation_id or new_id(),
            event=event,
            turn_id=self.turn_id,
        )
        if self._replay is not None:
            try:
                self._replay.append(
                    self.session_id, self._revision(), "turn_activity", activity=activity
                )
            except Exception:  # live replay is best-effort by contract
                log.exception("live replay append failed")
        for sink in self._sinks:
            try:
                await sink(activity)
            except Exception:
                log.exception("turn activity sink failed; the turn goes on")
        return activity
