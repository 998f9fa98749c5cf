from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

import lash
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider


class FakeSleep:
    """Records retry-backoff sleeps and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


CoreFactory = Callable[..., lash.LashCore]


@pytest.fixture
def make_core() -> CoreFactory:
    def factory(
        steps: Iterable[Any] | ScriptedProvider = (),
        *,
        tools: Iterable[Any] = (),
        store: Any = None,
        plugins: Iterable[Any] = (),
        sleep: Any = None,
        host: Any = None,
        max_turns: int | None = 50,
        lease_timings: lash.LeaseTimings | None = None,
        clock: Any = None,
    ) -> lash.LashCore:
        provider = steps if isinstance(steps, ScriptedProvider) else ScriptedProvider(list(steps))
        builder = (
            lash.LashCore.builder()
            .provider(provider)
            .model(lash.ModelSpec("test-model", context_window=100_000))
            .store(store if store is not None else MemoryStore(clock=clock))
            .effect_host(host or lash.InlineEffectHost())
            .tools(tools)
            .plugins(plugins)
            .max_turns(max_turns)
            .sleep(sleep or FakeSleep())
        )
        if lease_timings is not None:
            builder.lease_timings(lease_timings)
        if clock is not None:
            builder.clock(clock)
        return builder.build()

    return factory


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()
