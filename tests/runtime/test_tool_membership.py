"""Persisted per-session tool membership through the session API (spec processes-tools §3.3).

A session's tool state is its registry's :class:`~lash.tools.ToolState`; a fresh session that
serves tools starts at generation 1, and every effective membership change bumps it once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lash
from lash.stores import MemoryStore, SqliteStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools.membership import (
    ToolMembership,
    decode_tool_state,
    membership_of,
    with_membership,
)


def _tools(ran: list[str]) -> list[Any]:
    @lash.tool
    async def add(ctx: lash.ToolContext, a: int, b: int) -> int:
        """Add two numbers."""
        ran.append("add")
        return a + b

    @lash.tool
    async def wipe(ctx: lash.ToolContext) -> str:
        """A dangerous tool a host wants hidden."""
        ran.append("wipe")
        return "wiped"

    return [add, wipe]


def _core(provider: ScriptedProvider, tools: list[Any], store: Any) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .tools(tools)
        .batch_tool(False)  # these tests pin exact advertised lists
        .build()
    )


def _advertised(provider: ScriptedProvider) -> list[str]:
    return [spec.name for spec in provider.requests[-1].tools]


async def test_hidden_tool_is_not_advertised_and_a_call_is_tool_unavailable() -> None:
    ran: list[str] = []
    provider = ScriptedProvider([[tool_call("wipe", {}, "c1")], reply("done")])
    session = await _core(provider, _tools(ran), MemoryStore()).session("s").open()
    assert session.tool_state().generation == 1
    generation = await session.set_tool_membership("wipe", False)
    assert generation == 2
    result = await session.turn("go").run()
    assert _advertised(provider) == ["add"]
    record = result.tool_calls[0]
    assert record.status == "failure" and record.error_code == "tool_unavailable"
    assert ran == []


async def test_membership_change_is_committed_and_survives_reopen() -> None:
    store = MemoryStore()
    ran: list[str] = []
    provider = ScriptedProvider([reply("one")])
    core = _core(provider, _tools(ran), store)
    session = await core.session("s").open()
    before = session.head_revision
    await session.set_tool_membership(["wipe", "add"], False)
    assert session.head_revision == before + 1
    loaded = await store.load_session("s")
    assert loaded is not None
    assert membership_of(loaded.checkpoint.tool_state).hidden == ("add", "wipe")
    state, hidden = decode_tool_state(loaded.checkpoint.tool_state)
    wipe = state.get("tool:wipe")
    assert wipe is not None and not wipe.member and hidden == frozenset()  # per id, not policy
    # showing one again bumps the generation; a no-op change commits nothing
    assert await session.set_tool_membership("add", True) == 3
    revision = session.head_revision
    assert await session.set_tool_membership("add", True) == 3
    assert session.head_revision == revision
    reopened = await core.session("s").open()
    assert reopened.tool_membership().hidden == ("wipe",)
    await reopened.turn("hi").run()
    assert _advertised(provider) == ["add"]
    # a turn's commit carries the membership forward
    loaded = await store.load_session("s")
    assert loaded is not None
    assert membership_of(loaded.checkpoint.tool_state).hidden == ("wipe",)


async def test_hidden_tool_stays_hidden_after_reopen_in_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    ran: list[str] = []
    async with _core(ScriptedProvider([reply("x")]), _tools(ran), SqliteStore(path)) as core:
        session = await core.session("s").open()
        await session.set_tool_membership("wipe", False)
        await session.turn("first").run()
    # a fresh process: new store handle, new core, the tool's provider re-registered
    provider = ScriptedProvider([[tool_call("wipe", {}, "c1")], reply("after")])
    async with _core(provider, _tools(ran), SqliteStore(path)) as core:
        session = await core.session("s").open()
        result = await session.turn("again").run()
    assert _advertised(provider) == ["add"]
    assert result.tool_calls[0].error_code == "tool_unavailable"
    assert ran == []


async def test_new_tools_are_members_after_reopen_and_unserved_hidden_names_stay_hidden() -> None:
    store = MemoryStore()
    ran: list[str] = []
    add, wipe = _tools(ran)
    first = ScriptedProvider([reply("one")])
    session = await _core(first, [add], store).session("s").open()
    await session.set_tool_membership("ghost", False)  # hiding a tool nobody serves yet
    await session.turn("hi").run()
    assert _advertised(first) == ["add"]
    later = ScriptedProvider([reply("two")])
    session = await _core(later, [add, wipe], store).session("s").open()
    await session.turn("hi").run()
    assert _advertised(later) == ["add", "wipe"]

    # the name hidden before anyone served it is born hidden when it appears
    @lash.tool
    async def ghost(ctx: lash.ToolContext) -> str:
        """Appears late."""
        return "boo"

    last = ScriptedProvider([reply("three")])
    session = await _core(last, [add, wipe, ghost], store).session("s").open()
    await session.turn("hi").run()
    assert _advertised(last) == ["add", "wipe"]
    entry = session.tool_state().get("tool:ghost")
    assert entry is not None and not entry.is_member


async def test_legacy_membership_checkpoint_still_opens_with_the_same_tools_hidden(
    tmp_path: Path,
) -> None:
    from lash.runtime.lease import acquire_lease
    from lash.stores.liveness import local_process_owner
    from lash.types import GraphUnchanged, RuntimeCommit, SessionCheckpoint

    # a checkpoint as written before the registry: only hidden names
    store = SqliteStore(tmp_path / "legacy.db")
    lease = await acquire_lease(store, "s", local_process_owner(), 30_000)
    assert lease is not None
    legacy = {"membership": {"generation": 4, "hidden": ["wipe"]}}
    await store.commit(
        RuntimeCommit(
            session_id="s",
            graph=GraphUnchanged(leaf_node_id=None),
            checkpoint=SessionCheckpoint(tool_state=legacy),
            expected_head_revision=0,
            lease=lease.fence(),
            release_lease=True,
        )
    )
    ran: list[str] = []
    provider = ScriptedProvider([[tool_call("wipe", {}, "c1")], reply("done")])
    async with _core(provider, _tools(ran), store) as core:
        session = await core.session("s").open()
        assert session.tool_state().generation == 5  # migrated onto the live surface
        result = await session.turn("go").run()
        assert _advertised(provider) == ["add"]
        assert result.tool_calls[0].error_code == "tool_unavailable" and ran == []
        loaded = await store.load_session("s")
        assert loaded is not None and "membership" not in loaded.checkpoint.tool_state
        state, hidden = decode_tool_state(loaded.checkpoint.tool_state)
        assert hidden == {"wipe"} and state.generation == 5


def test_membership_record_rejects_bad_names_and_corrupt_state() -> None:
    with pytest.raises(lash.LashRuntimeError, match="non-empty") as bad_name:
        ToolMembership().changed([""], False)
    assert bad_name.value.is_code("invalid_tool_state")
    with pytest.raises(lash.LashRuntimeError, match="corrupt tool membership") as corrupt:
        membership_of({"membership": {"hidden": 3}})
    assert corrupt.value.is_code("invalid_tool_state")
    state = with_membership({"other": 1}, ToolMembership(generation=2, hidden=("x",)))
    assert state["other"] == 1 and membership_of(state) == ToolMembership(
        generation=2, hidden=("x",)
    )


async def test_corrupt_legacy_membership_record_fails_open_with_invalid_tool_state(
    tmp_path: Path,
) -> None:
    from lash.runtime.lease import acquire_lease
    from lash.stores.liveness import local_process_owner
    from lash.types import GraphUnchanged, RuntimeCommit, SessionCheckpoint

    store = SqliteStore(tmp_path / "corrupt.db")
    lease = await acquire_lease(store, "s", local_process_owner(), 30_000)
    assert lease is not None
    corrupt = {"membership": {"generation": "four", "hidden": ["wipe"]}}
    await store.commit(
        RuntimeCommit(
            session_id="s",
            graph=GraphUnchanged(leaf_node_id=None),
            checkpoint=SessionCheckpoint(tool_state=corrupt),
            expected_head_revision=0,
            lease=lease.fence(),
            release_lease=True,
        )
    )
    async with _core(ScriptedProvider([]), _tools([]), store) as core:
        with pytest.raises(lash.LashRuntimeError) as opened:
            await core.session("s").open()
        assert opened.value.is_code("invalid_tool_state")
        loaded = await store.load_session("s")  # the stored record is left as it was
        assert loaded is not None and loaded.checkpoint.tool_state == corrupt
