"""Turn builders and the three ways to run a turn: ``run()``, ``stream()`` and ``start()``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from lash.errors import LashRuntimeError, RuntimeErrorCode
from lash.runtime.effect_host import EffectHost
from lash.runtime.emitter import ActivitySink, new_id
from lash.runtime.scope import require_id
from lash.tools.grants import ToolExecutionGrant
from lash.types import CancellationEvidence, TurnActivity, TurnInput, TurnResult

if TYPE_CHECKING:
    from lash.runtime.session import LashSession

__all__ = ["TurnBuilder", "TurnHandle", "TurnStream", "final_turn"]


def final_turn(turns: Sequence[TurnResult]) -> TurnResult:
    """The last physical turn of a logical turn (an empty run is an invariant violation)."""
    if not turns:
        raise LashRuntimeError(
            RuntimeErrorCode.EMPTY_AGENT_FRAME_RUN,
            "the runtime returned an agent-frame run with no turns",
        )
    return turns[-1]


class TurnBuilder:
    """An ephemeral request for one turn of a session."""

    def __init__(self, session: LashSession, turn_input: str | TurnInput) -> None:
        self._session = session
        self._input = TurnInput.of(turn_input)
        self._turn_id: str | None = None
        self._plugin_inputs: dict[str, Any] = {}
        self._extension: Any = None
        self._max_turns: int | None = None
        self._sinks: list[ActivitySink] = []
        self._effect_host: EffectHost | None = None
        self._grants: dict[str, ToolExecutionGrant] = {}

    def turn_id(self, turn_id: str) -> TurnBuilder:
        """Use a stable turn id (required for exactly-once redrives by a host)."""
        self._turn_id = turn_id
        return self

    def plugin_input(self, key: str, value: Any) -> TurnBuilder:
        """Attach a live, non-serialisable per-turn plugin input (store-less sessions only)."""
        self._plugin_inputs[key] = value
        return self

    def protocol_extension(self, extension: Any) -> TurnBuilder:
        """Attach a live protocol extension (store-less sessions only)."""
        self._extension = extension
        return self

    def max_turns(self, max_turns: int) -> TurnBuilder:
        """Cap this turn's model iterations."""
        self._max_turns = max_turns
        return self

    def effects(self, host: EffectHost) -> TurnBuilder:
        """Run this turn's effects through ``host`` (e.g. a durable host bound to a handler's
        context); pair it with a stable :meth:`turn_id` so a redrive replays the same keys."""
        self._effect_host = host
        return self

    def grant_tools(self, *grants: ToolExecutionGrant) -> TurnBuilder:
        """Let this turn run the granted tools when the model calls them, without advertising
        them or touching the session's tool membership (each grant carries its binding)."""
        for grant in grants:
            if not isinstance(grant, ToolExecutionGrant):
                raise TypeError(f"not a ToolExecutionGrant: {grant!r}")
            if grant.tool_name in self._grants:
                raise ValueError(f"tool {grant.tool_name!r} is granted twice in one turn")
            self._grants[grant.tool_name] = grant
        return self

    def on_event(self, sink: Callable[[TurnActivity], Awaitable[None]]) -> TurnBuilder:
        """Also deliver every live event to ``sink`` (awaited: a slow sink slows the turn)."""
        self._sinks.append(sink)
        return self

    def _resolve_turn_id(self) -> str:
        trace = self._input.trace_turn_id
        if self._turn_id is not None:
            require_id(self._turn_id, "turn id")
            if trace is not None and trace != self._turn_id:
                raise LashRuntimeError(
                    RuntimeErrorCode.EXECUTION_SCOPE_TURN_ID_MISMATCH,
                    f"input trace turn id {trace!r} differs from the turn id {self._turn_id!r}",
                )
            return self._turn_id
        if trace is not None:
            return require_id(trace, "trace turn id")
        return new_id()

    async def _execute(
        self, turn_id: str, sinks: list[ActivitySink], local_cancel: list[CancellationEvidence]
    ) -> TurnResult:
        return await self._session._run_foreground(
            self._input,
            turn_id=turn_id,
            sinks=[*self._sinks, *sinks],
            plugin_inputs=self._plugin_inputs,
            protocol_extension=self._extension,
            max_turns=self._max_turns,
            local_cancel=local_cancel,
            effect_host=self._effect_host,
            grants=tuple(self._grants.values()),
        )

    async def run(self) -> TurnResult:
        """Run the turn to its commit and return the result."""
        return await self._execute(self._resolve_turn_id(), [], [])

    def stream(self) -> TurnStream:
        """An async context manager yielding live :class:`TurnActivity` values, then the result."""
        return TurnStream(self, self._resolve_turn_id())

    def start(self) -> TurnHandle:
        """Start the turn in the background and return a handle to cancel or await it."""
        return TurnHandle(self, self._resolve_turn_id())


class TurnHandle:
    """A running turn."""

    def __init__(
        self, builder: TurnBuilder, turn_id: str, sinks: list[ActivitySink] | None = None
    ) -> None:
        self.turn_id = turn_id
        self._session = builder._session
        self._local_cancel: list[CancellationEvidence] = []
        self.task: asyncio.Task[TurnResult] = asyncio.get_running_loop().create_task(
            builder._execute(turn_id, sinks or [], self._local_cancel)
        )

    def done(self) -> bool:
        """True once the turn has committed or failed."""
        return self.task.done()

    async def cancel(self, reason: str | None = None) -> None:
        """Cancel the turn cooperatively; it still commits, as ``Stopped(cancelled)``."""
        self._session._cancel_local(self.turn_id, self._local_cancel, reason)

    async def result(self) -> TurnResult:
        """The committed result (raises the turn's :class:`LashRuntimeError`)."""
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.task.cancelled():
                raise LashRuntimeError(
                    RuntimeErrorCode.TURN_STREAM_JOIN, f"turn {self.turn_id} task was aborted"
                ) from None
            raise
        except LashRuntimeError:
            raise
        except Exception as err:
            raise LashRuntimeError(
                RuntimeErrorCode.TURN_STREAM_JOIN, f"turn {self.turn_id} task failed: {err!r}"
            ) from err


_DONE = object()


class TurnStream:
    """Pull-style live events of one turn (use as ``async with ... as turn``)."""

    def __init__(self, builder: TurnBuilder, turn_id: str) -> None:
        self._builder = builder
        self.turn_id = turn_id
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._handle: TurnHandle | None = None

    async def _sink(self, activity: TurnActivity) -> None:
        await self._queue.put(activity)

    async def __aenter__(self) -> TurnStream:
        self._handle = TurnHandle(self._builder, self.turn_id, [self._sink])
        self._handle.task.add_done_callback(lambda _t: self._queue.put_nowait(_DONE))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle = self._handle
        if handle is None:
            return
        if not handle.done():
            await handle.cancel("stream closed before the turn finished")
            with contextlib.suppress(Exception):
                await handle.result()

    @property
    def handle(self) -> TurnHandle:
        """The underlying handle (after ``__aenter__``)."""
        if self._handle is None:
            raise RuntimeError("use 'async with session.turn(...).stream() as turn'")
        return self._handle

    def __aiter__(self) -> AsyncIterator[TurnActivity]:
        return self._events()

    async def _events(self) -> AsyncIterator[TurnActivity]:
        self.handle  # noqa: B018 - raises when not entered
        while True:
            item = await self._queue.get()
            if item is _DONE:
                self._queue.put_nowait(_DONE)
                return
            yield item

    async def cancel(self, reason: str | None = None) -> None:
        """Cancel the turn."""
        await self.handle.cancel(reason)

    async def result(self) -> TurnResult:
        """The committed result."""
        return await self.handle.result()
