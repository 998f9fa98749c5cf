"""One SQLite connection owned by one thread, driven from asyncio.

``sqlite3`` calls block, so every statement runs on a dedicated worker thread that owns the
connection for its whole life; the event loop only enqueues jobs and awaits futures that the
worker resolves with ``loop.call_soon_threadsafe``. One thread per connection also gives the
single-writer discipline for free: jobs run strictly in submission order.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from lash.errors import StoreError, StoreErrorKind

__all__ = ["SqliteWorker"]

T = TypeVar("T")

Job = Callable[[sqlite3.Connection], Any]


class _Envelope(Generic[T]):
    """A job plus where to deliver its outcome."""

    __slots__ = ("fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], T],
        future: asyncio.Future[T],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _reject(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _deliver(env: _Envelope[Any], ok: bool, payload: Any) -> None:
    try:
        env.loop.call_soon_threadsafe(_resolve if ok else _reject, env.future, payload)
    except RuntimeError:
        # The awaiting loop is closed; nobody is left to tell.
        pass


class SqliteWorker:
    """A thread that opens a connection with ``opener`` and runs submitted jobs on it.

    The opener runs first, on the worker thread; if it fails, the failure is kept and every
    job (including ones already queued) fails with an equivalent error. The thread holds no
    reference to the owning store, so an abandoned store can still be collected (a finalizer
    then posts the stop sentinel).
    """

    def __init__(
        self,
        opener: Callable[[], sqlite3.Connection],
        closer: Callable[[sqlite3.Connection], None],
        name: str,
    ) -> None:
        self._jobs: queue.SimpleQueue[_Envelope[Any] | None] = queue.SimpleQueue()
        self._opener = opener
        self._closer = closer
        self._open_error: BaseException | None = None
        self._closed = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    @property
    def jobs(self) -> queue.SimpleQueue[_Envelope[Any] | None]:
        """The job queue (exposed so a finalizer can post the stop sentinel)."""
        return self._jobs

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on the worker thread and return its result.

        Cancelling the awaiting task does not cancel the job: a commit that was handed to
        SQLite either lands whole or not at all, and its outcome is simply dropped.
        """
        if self._closed:
            raise StoreError(StoreErrorKind.BACKEND, "the SQLite store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Envelope(fn, future, loop))
        return await future

    async def aclose(self) -> None:
        """Stop accepting jobs, finish queued ones, close the connection, join the thread."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
        if self._thread.is_alive():
            await asyncio.to_thread(self._stopped.wait)

    def _main(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            try:
                conn = self._opener()
            except BaseException as exc:  # surfaced to every job
                self._open_error = exc
            while True:
                env = self._jobs.get()
                if env is None:
                    break
                if conn is None:
                    _deliver(env, False, _reraise_open_error(self._open_error))
                    continue
                try:
                    result = env.fn(conn)
                except BaseException as exc:
                    _deliver(env, False, exc)
                else:
                    _deliver(env, True, result)
        finally:
            if conn is not None:
                try:
                    self._closer(conn)
                except Exception:  # closing is best effort; the data is already durable
                    pass
            self._stopped.set()


def _reraise_open_error(exc: BaseException | None) -> BaseException:
    """A fresh copy of the open failure (one exception object must not be raised twice)."""
    if isinstance(exc, StoreError):
        return StoreError(exc.kind, exc.message, **exc.details)
    return StoreError(StoreErrorKind.BACKEND, f"the SQLite store failed to open: {exc!r}")
