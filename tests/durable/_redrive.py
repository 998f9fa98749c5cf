"""Shared scaffolding for the fake-journal redrive tests: one core per attempt over the same
store, and one durable-turn attempt (session ``s1``, turn ``t1``) over a shared journal, so each
test reads as its crash point and its assertions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lash
from lash.durable.restate import RestateEffectHost, run_durable_turn
from lash.testing import ScriptedProvider

from .fake_journal import FakeJournal


def build_core(
    store: Any,
    provider: ScriptedProvider,
    *,
    tools: Sequence[Any] | None = None,
    plugins: Sequence[Any] | None = None,
) -> lash.LashCore:
    """A core on an inline host (the durable host is passed per turn); tools and plugins are
    only configured when given, as each test asks."""
    builder = (
        lash.LashCore.builder()
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .provider(provider)
        .model(lash.ModelSpec("m"))
    )
    if tools is not None:
        builder = builder.tools(list(tools))
    if plugins is not None:
        builder = builder.plugins(list(plugins))
    return builder.build()


async def drive_attempt(
    journal: FakeJournal,
    core: lash.LashCore,
    host: RestateEffectHost,
    *,
    owner: Any,
    turn_input: str,
) -> dict[str, Any]:
    """One invocation attempt of turn ``t1`` in session ``s1``: replays the journal from its
    start, then runs on (or raises the journal's ``Crash``)."""
    async with core:
        return await run_durable_turn(
            journal.context(),
            core,
            session_id="s1",
            turn_id="t1",
            turn_input=turn_input,
            owner=owner,
            host=host,
        )
