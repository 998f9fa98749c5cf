from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

import lash
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider


async def _no_sleep(seconds: float) -> None:
    return None


CoreFactory = Callable[..., lash.LashCore]


@pytest.fixture
def make_core() -> CoreFactory:
    def factory(
        steps: Iterable[Any] | ScriptedProvider = (),
        *,
        tools: Iterable[Any] = (),
        store: Any = None,
        plugins: Iterable[Any] = (),
        host: Any = None,
        max_turns: int | None = 50,
        context_window: int = 100_000,
    ) -> lash.LashCore:
        provider = steps if isinstance(steps, ScriptedProvider) else ScriptedProvider(list(steps))
        return (
            lash.LashCore.builder()
            .provider(provider)
            .model(lash.ModelSpec("test-model", context_window=context_window))
            .store(store if store is not None else MemoryStore())
            .effect_host(host or lash.InlineEffectHost())
            .tools(tools)
            .plugins(plugins)
            .max_turns(max_turns)
            .sleep(_no_sleep)
            .build()
        )

    return factory
