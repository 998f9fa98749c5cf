"""``LashCore.aclose()`` and the sessions' background ``turn_persisted`` runs: a run still
going when the core closes finishes before the stores close (so it never meets a closed store),
one that outlasts the bound is cancelled, and the core does not keep dropped sessions alive."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from pathlib import Path

import pytest

import lash
from lash.runtime.plugins import Plugin, TurnPersistedContext
from lash.stores import SqliteStore
from lash.testing import ScriptedProvider, reply


class SlowHook(Plugin):
    """A post-persist hook that takes a while, then reads the store; ``block`` makes it wait
    for an event nobody sets."""

    id = "slow"

    def __init__(self, store: SqliteStore, *, block: bool = False) -> None:
        super().__init__()
        self.store = store
        self.block = block
        self.read: list[str] = []
        self.errors: list[BaseException] = []
        self.cancelled = False

    async def turn_persisted(self, ctx: TurnPersistedContext) -> None:
        try:
            for _ in range(20):
                await asyncio.sleep(0)
            if self.block:
                await asyncio.Event().wait()
            loaded = await self.store.load_session(ctx.session_id)
            assert loaded is not None
            self.read.append(ctx.turn_id)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        except Exception as exc:
            self.errors.append(exc)
            raise


def _core(store: SqliteStore, hook: SlowHook, replies: int = 1) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(ScriptedProvider([reply(f"answer {i}") for i in range(replies)]))
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .plugins([lambda: hook])
        .build()
    )


async def test_aclose_right_after_a_turn_lets_the_slow_hook_finish(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "s.db")
    hook = SlowHook(store)
    core = _core(store, hook)
    session = await core.session("s").open()
    await session.turn("hello").turn_id("t1").run()
    assert hook.read == []  # still running in the background
    with caplog.at_level(logging.WARNING):
        await core.aclose()
    assert hook.read == ["t1"] and hook.errors == [] and not hook.cancelled
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_run_past_the_bound_is_cancelled_before_the_stores_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = SqliteStore(tmp_path / "s.db")
    hook = SlowHook(store, block=True)
    core = _core(store, hook)
    core.aclose_maintenance_timeout_s = 0.05
    session = await core.session("s").open()
    await session.turn("hello").turn_id("t1").run()
    with caplog.at_level(logging.WARNING):
        async with asyncio.timeout(5):
            await core.aclose()
    assert hook.cancelled and hook.read == [] and hook.errors == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("cancelling turn-persisted runs" in r.getMessage() for r in caplog.records)
    await session.wait_maintenance()  # nothing left behind


async def test_the_core_does_not_keep_a_dropped_session_alive(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    core = _core(store, SlowHook(store))
    session = await core.session("s").open()
    ref = weakref.ref(session)
    del session
    gc.collect()
    assert ref() is None
    await core.aclose()
