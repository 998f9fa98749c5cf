"""Route Ctrl+C to a callback while a turn runs (instead of killing the process)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator

__all__ = ["cancel_on_sigint", "on_sigint"]


@contextlib.contextmanager
def on_sigint(callback: Callable[[], None]) -> Iterator[bool]:
    """Call ``callback`` on SIGINT inside the block; yields whether the handler is installed."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        yield False
        return
    try:
        yield True
    finally:
        loop.remove_signal_handler(signal.SIGINT)


@contextlib.contextmanager
def cancel_on_sigint(
    cancel: Callable[[str], Awaitable[None]], notify: Callable[[], None] | None = None
) -> Iterator[bool]:
    """Ctrl+C cancels the running turn cooperatively (it still commits, as cancelled)."""
    tasks: set[asyncio.Task[None]] = set()

    def fire() -> None:
        if notify is not None:
            notify()
        task = asyncio.ensure_future(cancel("cancelled with Ctrl+C"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    with on_sigint(fire) as installed:
        yield installed
