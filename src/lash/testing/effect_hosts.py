"""Effect-host doubles for tests: hosts that record what the turn driver hands them.

Runtime tests want to see which effects a turn crosses (kind, scope, replay key, envelope),
run a host that lacks durable waits, or stand in for a durable host's redrive (an effect
recorded once is answered from its record instead of running again). These doubles keep that
protocol boilerplate in one place; the real hosts are
:class:`lash.runtime.effect_host.InlineEffectHost` and the Restate host.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from lash.durable.outcome import dump_outcome, load_outcome
from lash.runtime.effect_host import InlineEffectHost, TurnControl
from lash.runtime.scope import ExecutionScope
from lash.stores.base import DurabilityTier
from lash.types._base import Record

__all__ = ["BareEffectHost", "EffectRecord", "RecordingEffectHost", "ReplayJournalHost"]

T = TypeVar("T")


class EffectRecord(Record, frozen=True, kw_only=True):
    """One effect as a host was handed it."""

    scope: ExecutionScope
    kind: str
    replay_key: str
    envelope: Any = None


class RecordingEffectHost(InlineEffectHost):
    """An inline host that records every effect before running it.

    ``concurrent=False`` makes it a serial host (tool batches run one call at a time);
    ``tier`` lets a test pose as a durable host without journaling anything.
    """

    def __init__(
        self, *, concurrent: bool = True, tier: DurabilityTier = DurabilityTier.EPHEMERAL
    ) -> None:
        super().__init__()
        self._concurrent = concurrent
        self._tier = tier
        self.effects: list[EffectRecord] = []

    @property
    def tier(self) -> DurabilityTier:
        """The tier the test asked for (inline unless told)."""
        return self._tier

    @property
    def supports_concurrent_effects(self) -> bool:
        """Whether tool batches may run concurrently on this host."""
        return self._concurrent

    async def run_effect(
        self,
        scope: ExecutionScope,
        kind: str,
        replay_key: str,
        envelope: Any,
        execute: Callable[[], Awaitable[T]],
        *,
        result_type: Any = None,
    ) -> T:
        """Record the effect, then answer it (:meth:`_answer`)."""
        self.effects.append(
            EffectRecord(scope=scope, kind=kind, replay_key=replay_key, envelope=envelope)
        )
        return await self._answer(kind, replay_key, execute, result_type)

    async def _answer(
        self, kind: str, replay_key: str, execute: Callable[[], Awaitable[T]], result_type: Any
    ) -> T:
        """Run the effect inline; a journaling double answers from its record instead."""
        return await execute()


class ReplayJournalHost(RecordingEffectHost):
    """Journals effects by replay key; a key already recorded is replayed, not run.

    Outcomes are stored encoded (:func:`~lash.durable.outcome.dump_outcome`) and decoded with
    the effect's ``result_type`` on replay, the way a durable host round-trips them, so a test
    sees what a redrive would. Only effects whose kind is in ``kinds`` are journaled (``None``
    journals every kind); others just run. ``ran`` and ``replayed`` list the journaled keys
    in the order they executed or were answered from the record; ``delays`` makes a replayed
    key answer after that many event-loop turns, to reorder concurrent replays. Every effect
    is also in :attr:`effects`, as on :class:`RecordingEffectHost`.
    """

    replays_effects = True
    """Unlike the inline host it derives from, this host answers effects from its record."""

    def __init__(self, *, kinds: Collection[str] | None = ("tool_attempt",)) -> None:
        super().__init__()
        self._kinds = None if kinds is None else frozenset(kinds)
        self.records: dict[str, Any] = {}
        self.ran: list[str] = []
        self.replayed: list[str] = []
        self.delays: dict[str, int] = {}

    async def _answer(
        self, kind: str, replay_key: str, execute: Callable[[], Awaitable[T]], result_type: Any
    ) -> T:
        """Replay a recorded key; otherwise run the effect and record its outcome."""
        if self._kinds is not None and kind not in self._kinds:
            return await execute()
        if replay_key in self.records:
            for _ in range(self.delays.get(replay_key, 0)):
                await asyncio.sleep(0)
            self.replayed.append(replay_key)
            replayed: T = load_outcome(self.records[replay_key], result_type)
            return replayed
        value = await execute()
        self.ran.append(replay_key)
        self.records[replay_key] = dump_outcome(value, result_type)
        return value


class BareEffectHost:
    """The effect-host protocol and nothing more: effects run inline (on a wrapped
    :class:`InlineEffectHost`), but there are no durable waits, so a turn that needs to park
    on one has to fail instead."""

    def __init__(self) -> None:
        self._inline = InlineEffectHost()

    @property
    def tier(self) -> DurabilityTier:
        """Inline: nothing is journaled."""
        return self._inline.tier

    @property
    def turn_control(self) -> TurnControl:
        """This host's turn-control promises."""
        return self._inline.turn_control

    @property
    def supports_concurrent_effects(self) -> bool:
        """Tool batches run concurrently."""
        return self._inline.supports_concurrent_effects

    async def run_effect(self, *args: Any, **kwargs: Any) -> Any:
        """Execute locally (see :meth:`InlineEffectHost.run_effect`)."""
        return await self._inline.run_effect(*args, **kwargs)

    async def sleep(self, *args: Any, **kwargs: Any) -> None:
        """The configured sleep, right here (see :meth:`InlineEffectHost.sleep`)."""
        await self._inline.sleep(*args, **kwargs)
