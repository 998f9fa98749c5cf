"""``pending``: how a tool says "the result arrives later" (a durable wait).

A tool returns ``pending()`` instead of a result; the turn parks on the wait named by the
call's completion key (``ctx.await_event_key()``) until a host resolves that key with
``LashCore.resolve_await_event(key, Resolution.ok(value))`` (or ``err``), the optional
deadline passes (the call fails ``await_event_timeout``) or the turn is cancelled. The
resolution becomes the call's final output; the model never sees the pending step.
"""

from __future__ import annotations

from typing import Any

import msgspec

from lash.types import ToolCallOutput

__all__ = ["pending"]


def pending(wait: Any = None, *, deadline_ms: int | None = None) -> ToolCallOutput:
    """A successful output whose ``control.pending`` asks the turn to park.

    ``wait`` is a :class:`~lash.runtime.await_events.WaitIdentity` (default: this call's own
    completion); ``deadline_ms`` bounds the wait, counted from when the turn starts parking.
    """
    if deadline_ms is not None and deadline_ms < 0:
        raise ValueError("deadline_ms must be >= 0")
    request: dict[str, Any] = {
        "wait": None if wait is None else msgspec.to_builtins(wait),
        "deadline_ms": deadline_ms,
    }
    return ToolCallOutput(status="success", control={"pending": request})
