"""A session's tool surface across resume, fork, rebuild and orphaning (spec processes-tools
§3.3 Registry, §5.7 rows "lifecycle").

The tools come from a plugin whose surface the test changes between opens, as a host's
dynamic provider (an MCP server, a workspace) would; stores are real (``MemoryStore`` and a
``SqliteStore`` file reopened through a new handle for cold rebuilds).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import lash
from lash.stores import MemoryStore, SqliteStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools import FunctionTool, ToolExecutionGrant, ToolState, with_tool_id
from lash.tools.base import Tool
from lash.tools.membership import decode_tool_state, encode_tool_state

EMPTY = {"type": "object", "properties": {}}


def dyn(tool_id: str, name: str, description: str) -> Tool:
    """A tool served under ``tool_id`` that reports which implementation ran."""
    result = {"id": tool_id, "description": description}
    tool = FunctionTool.from_schema(name, description, EMPTY, lambda args: result)
    return with_tool_id(tool, tool_id)


class Surface:
    """What the dynamic provider serves right now (shared by every session that opens)."""

    def __init__(self, *tools: Tool) -> None:
        self.now: list[Tool] = list(tools)

    def replace(self, *tools: Tool) -> None:
        self.now = list(tools)

    def plugin(self) -> Any:
        surface = self

        class DynamicToolSurface(lash.Plugin):
            id = "dynamic_tool_surface"

            def tools(self) -> Sequence[Tool]:
                return list(surface.now)

        return DynamicToolSurface


def make_core(provider: ScriptedProvider, store: Any, surface: Surface) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .plugins([surface.plugin()])
        .batch_tool(False)
        .build()
    )


def catalog_names(session: lash.LashSession) -> list[str]:
    return [entry["name"] for entry in session.tool_catalog()]


def advertised(provider: ScriptedProvider) -> list[str]:
    return [spec.name for spec in provider.requests[-1].tools]


async def call_tools(
    session: lash.LashSession, provider: ScriptedProvider, *names: str
) -> dict[str, lash.ToolCallRecord]:
    """Run a turn in which the model calls each of ``names``; records by tool name."""
    provider.extend([[tool_call(n, {}, f"call-{n}") for n in names], reply("done")])
    result = await session.turn(f"call {', '.join(names)}").run()
    return {record.name: record for record in result.tool_calls}


def member(state: ToolState, tool_id: str) -> bool:
    entry = state.get(tool_id)
    assert entry is not None, f"{tool_id} has no entry"
    return entry.is_member


async def test_cold_resume_discovers_curated_live_surface_and_persists_it_without_flapping(
    tmp_path: Path,
) -> None:
    path = tmp_path / "surface.db"
    original = dyn("tool:original", "original", "in the first persisted surface")
    discovered = dyn("tool:discovered", "discovered", "advertised while the session is parked")
    surface = Surface(original)
    provider = ScriptedProvider([])
    async with make_core(provider, SqliteStore(path), surface) as core:
        session = await core.session("live-surface").open()
        curated = session.tool_state().with_membership("tool:original", False)
        persisted_generation = await session.apply_tool_state(curated)
        parked = await session.park()

    surface.replace(original, discovered)
    store = SqliteStore(path)  # a cold rebuild: new process, new store handle, same file
    async with make_core(provider, store, surface) as core:
        resumed = await core.resume(parked)
        committed = resumed.head_revision
        state = resumed.tool_state()
        assert state.generation == persisted_generation + 1
        assert not member(state, "tool:original")  # the opt-out stays with the id
        assert member(state, "tool:discovered")  # new ids are members by default
        assert catalog_names(resumed) == ["discovered"]
        records = await call_tools(resumed, provider, "discovered", "original")
        assert advertised(provider) == ["discovered"]
        assert records["discovered"].output == {
            "id": "tool:discovered",
            "description": "advertised while the session is parked",
        }
        assert records["original"].error_code == "tool_unavailable"
        # the turn's commit persisted the rebuilt surface exactly
        assert resumed.head_revision == committed + 1
        loaded = await store.load_session("live-surface")
        assert loaded is not None
        assert loaded.checkpoint.tool_state == encode_tool_state(state)
        await resumed.park()

    async with make_core(provider, SqliteStore(path), surface) as core:
        again = await core.session("live-surface").open()
        assert again.tool_state() == state  # same sources: no bump, nothing dirty
        revision = again.head_revision
        assert await again.refresh_tools() == state
        assert again.head_revision == revision  # and nothing to commit
        assert catalog_names(again) == ["discovered"]


async def test_cold_resume_commits_a_discovered_surface_once_with_refresh_tools() -> None:
    store = MemoryStore()
    surface = Surface(dyn("tool:a", "a", "first"))
    provider = ScriptedProvider([reply("x")])
    session = await make_core(provider, store, surface).session("s").open()
    await session.turn("hi").run()
    surface.replace(dyn("tool:a", "a", "first"), dyn("tool:b", "b", "second"))
    reopened = await make_core(provider, store, surface).session("s").open()
    revision = reopened.head_revision
    state = await reopened.refresh_tools()
    assert reopened.head_revision == revision + 1 and member(state, "tool:b")
    third = await make_core(provider, store, surface).session("s").open()
    assert third.tool_state() == state
    await third.refresh_tools()
    assert third.head_revision == revision + 1  # persisted once, no flapping


async def test_session_fork_discovers_live_tools_and_preserves_curation_and_hidden_policy() -> None:
    curated = dyn("tool:curated", "curated", "opted out before the fork")
    discovered = dyn("tool:fork_discovered", "fork_discovered", "appears before the fork")
    hidden = dyn("tool:fork_hidden", "fork_hidden", "must never reach the child")
    surface = Surface(curated)
    provider = ScriptedProvider([reply("parent turn")])
    store = MemoryStore()
    core = make_core(provider, store, surface)
    parent = await core.session("fork-parent").open()
    await parent.turn("remember this").run()
    await parent.apply_tool_state(parent.tool_state().with_membership("tool:curated", False))

    surface.replace(curated, discovered, hidden)
    child = await core.fork_session("fork-parent", "fork-child", hidden_tools=["fork_hidden"])
    state = child.tool_state()
    assert not member(state, "tool:curated")  # curation survives the fork
    assert member(state, "tool:fork_discovered")  # the stale snapshot meets live sources
    assert not member(state, "tool:fork_hidden")  # policy, even for a newly discovered id
    assert catalog_names(child) == ["fork_discovered"]
    records = await call_tools(child, provider, "fork_discovered", "fork_hidden", "curated")
    assert advertised(provider) == ["fork_discovered"]
    assert records["fork_discovered"].status == "success"
    assert records["fork_hidden"].error_code == "tool_unavailable"
    assert records["curated"].error_code == "tool_unavailable"
    # the child starts from the parent's history; the parent is untouched by the fork
    child_view = await child.read_view()
    assert [m.text for m in child_view.messages][:2] == ["remember this", "parent turn"]
    parent_view = await parent.read_view()
    assert len(parent_view.messages) == 2
    meta = {m.session_id: m for m in await core.list_sessions()}
    assert meta["fork-child"].parent_session_id == "fork-parent"
    # the hidden policy is the child's own: it survives reopen, the parent never had it
    reopened = await core.session("fork-child").open()
    assert not member(reopened.tool_state(), "tool:fork_hidden")
    assert member((await core.session("fork-parent").open()).tool_state(), "tool:fork_hidden")
    with pytest.raises(lash.EmbedError) as err:
        await core.fork_session("fork-parent", "fork-child")
    assert err.value.kind == "session_exists"


async def test_composed_session_catalog_discovers_callable_tool_without_exposing_hidden_tool() -> (
    None
):
    original = dyn("tool:compose_original", "compose_original", "before composition")
    discovered = dyn("tool:compose_discovered", "compose_discovered", "found by the next turn")
    hidden = dyn("tool:compose_hidden", "compose_hidden", "excluded by the child's policy")
    surface = Surface(original)
    store = MemoryStore()
    provider = ScriptedProvider([reply("parent")])
    core = make_core(provider, store, surface)
    await (await core.session("parent").open()).turn("hi").run()
    child = await core.fork_session("parent", "compose-child", hidden_tools=["compose_hidden"])
    assert "compose_discovered" not in catalog_names(child)

    # the surface changes while the session stands open; the next turn composes it
    surface.replace(original, discovered, hidden)
    records = await call_tools(child, provider, "compose_discovered", "compose_hidden")
    assert advertised(provider) == ["compose_original", "compose_discovered"]
    assert records["compose_discovered"].output == {
        "id": "tool:compose_discovered",
        "description": "found by the next turn",
    }
    assert records["compose_hidden"].error_code == "tool_unavailable"
    assert catalog_names(child) == ["compose_original", "compose_discovered"]
    assert not member(child.tool_state(), "tool:compose_hidden")


async def test_hidden_tool_stays_denied_across_cold_store_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "hidden.db"
    visible = dyn("tool:cold_visible", "cold_visible", "visible before and after")
    discovered = dyn("tool:cold_discovered", "cold_discovered", "new after the rebuild")
    hidden = dyn("tool:cold_hidden", "cold_hidden", "hidden by the child's policy")
    surface = Surface(visible, hidden)
    provider = ScriptedProvider([reply("parent")])
    async with make_core(provider, SqliteStore(path), surface) as core:
        await (await core.session("parent").open()).turn("hi").run()
        child = await core.fork_session("parent", "cold-child", hidden_tools=["cold_hidden"])
        assert catalog_names(child) == ["cold_visible"]
        records = await call_tools(child, provider, "cold_hidden")
        assert records["cold_hidden"].error_code == "tool_unavailable"

    surface.replace(visible, discovered, hidden)
    async with make_core(provider, SqliteStore(path), surface) as core:
        rebuilt = await core.session("cold-child").open()
        assert catalog_names(rebuilt) == ["cold_visible", "cold_discovered"]
        records = await call_tools(rebuilt, provider, "cold_discovered", "cold_hidden")
        assert advertised(provider) == ["cold_visible", "cold_discovered"]
        assert records["cold_discovered"].status == "success"
        assert records["cold_hidden"].error_code == "tool_unavailable"


async def test_orphan_lifecycle_rebinds_by_id_and_supersedes_same_name_without_duplicates(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orphan.db"
    original = dyn("tool:orphan-original", "orphaned_name", "persisted original manifest")
    rebound = dyn("tool:orphan-original", "orphaned_name", "fresh live manifest")
    replacement = dyn("tool:orphan-replacement", "orphaned_name", "a new id reusing the name")
    surface = Surface(original)
    provider = ScriptedProvider([])
    async with make_core(provider, SqliteStore(path), surface) as core:
        session = await core.session("orphans").open()
        opted_out = session.tool_state().with_membership("tool:orphan-original", False)
        await session.apply_tool_state(opted_out)
        parked = await session.park()

    surface.replace()  # the source is gone while the session is parked
    async with make_core(provider, SqliteStore(path), surface) as core:
        resumed = await core.resume(parked)  # opens anyway
        entry = resumed.tool_state().get("tool:orphan-original")
        assert entry is not None and entry.orphaned and not entry.is_member
        assert "orphaned_name" not in catalog_names(resumed)
        records = await call_tools(resumed, provider, "orphaned_name")
        assert records["orphaned_name"].error_code == "tool_unavailable"

        surface.replace(rebound)  # the source returns: rebind by id
        state = await resumed.refresh_tools()
        entry = state.get("tool:orphan-original")
        assert entry is not None and not entry.orphaned
        assert not entry.is_member  # the opt-out stays with the id
        assert entry.manifest.description == "fresh live manifest"  # the live manifest wins
        records = await call_tools(resumed, provider, "orphaned_name")
        assert records["orphaned_name"].error_code == "tool_unavailable"

        # a plugin that stops advertising a tool in-process leaves it dormant (plugin tools
        # are state-dependent, like plan mode's plan_exit): bound, no orphan, no bump, but
        # neither in the catalog nor callable; only a cold open without it orphans it
        surface.replace()
        dormant = await resumed.refresh_tools()
        entry = dormant.get("tool:orphan-original")
        assert entry is not None and not entry.orphaned and dormant.generation == state.generation
        assert "orphaned_name" not in catalog_names(resumed)
        surface.replace(replacement)
        replaced = await resumed.refresh_tools()
        assert not replaced.contains("tool:orphan-original")  # superseded, not duplicated
        assert member(replaced, "tool:orphan-replacement")  # the old opt-out did not transfer
        assert catalog_names(resumed).count("orphaned_name") == 1
        records = await call_tools(resumed, provider, "orphaned_name")
        assert records["orphaned_name"].output == {
            "id": "tool:orphan-replacement",
            "description": "a new id reusing the name",
        }
        loaded = await SqliteStore(path).load_session("orphans")
        assert loaded is not None
        assert decode_tool_state(loaded.checkpoint.tool_state)[0] == resumed.tool_state()


async def test_public_apply_tool_state_round_trip_keeps_delta_and_generation_fencing() -> None:
    first = dyn("tool:apply-first", "apply_first", "first live tool")
    second = dyn("tool:apply-second", "apply_second", "second live tool")
    store = MemoryStore()
    provider = ScriptedProvider([])
    session = await make_core(provider, store, Surface(first, second)).session("apply").open()

    stale = session.tool_state()
    edited = stale.with_membership("tool:apply-first", False)
    applied_generation = await session.apply_tool_state(edited)
    assert applied_generation == stale.generation + 1
    applied = session.tool_state()
    assert not member(applied, "tool:apply-first")
    assert member(applied, "tool:apply-second")  # a delta over the snapshot, not a blanket opt-out
    assert catalog_names(session) == ["apply_second"]
    records = await call_tools(session, provider, "apply_first", "apply_second")
    assert records["apply_first"].error_code == "tool_unavailable"
    assert records["apply_second"].status == "success"
    loaded = await store.load_session("apply")
    assert loaded is not None and decode_tool_state(loaded.checkpoint.tool_state)[0] == applied

    revision = session.head_revision
    with pytest.raises(lash.LashRuntimeError) as err:
        await session.apply_tool_state(stale)
    assert err.value.is_code("tool_state_generation_mismatch")
    assert "generation mismatch" in str(err.value)
    assert str(applied_generation) in err.value.message
    assert session.head_revision == revision and session.tool_state() == applied


async def test_host_added_tool_source_is_served_committed_and_orphaned_without_it() -> None:
    store = MemoryStore()
    provider = ScriptedProvider([])
    surface = Surface(dyn("tool:base", "base", "from the plugin"))
    session = await make_core(provider, store, surface).session("live").open()
    extra = dyn("tool:extra", "extra", "added by the host")
    assert session.add_tool_source([extra]) == "live:1"
    records = await call_tools(session, provider, "extra")
    assert advertised(provider) == ["base", "extra"] and records["extra"].status == "success"
    loaded = await store.load_session("live")
    assert loaded is not None
    assert member(decode_tool_state(loaded.checkpoint.tool_state)[0], "tool:extra")

    # a new process that does not register the source again: the tool is an orphan
    reopened = await make_core(provider, store, surface).session("live").open()
    entry = reopened.tool_state().get("tool:extra")
    assert entry is not None and entry.orphaned
    records = await call_tools(reopened, provider, "extra")
    assert records["extra"].error_code == "tool_unavailable"
    source_id = reopened.add_tool_source(extra)  # registering it again rebinds by id
    assert member(reopened.tool_state(), "tool:extra")
    generation = reopened.remove_tool_source(source_id)
    assert not reopened.tool_state().contains("tool:extra")
    assert reopened.tool_state().generation == generation
    with pytest.raises(lash.LashRuntimeError) as err:
        reopened.remove_tool_source(source_id)
    assert err.value.is_code("unknown_tool_source")


async def test_another_writers_tool_change_reaches_a_standing_handle() -> None:
    store = MemoryStore()
    provider = ScriptedProvider([])
    surface = Surface(dyn("tool:x", "x", "x"), dyn("tool:y", "y", "y"))
    core = make_core(provider, store, surface)
    first = await core.session("shared").open()
    second = await core.session("shared").open()
    generation = await first.set_tool_membership("x", False)
    records = await call_tools(second, provider, "x", "y")
    assert advertised(provider) == ["y"]
    assert records["x"].error_code == "tool_unavailable"
    assert second.tool_state().generation == generation
    assert catalog_names(second) == ["y"]


async def test_tool_catalog_leaves_out_what_plugins_filter() -> None:
    class PlanMode(lash.Plugin):
        id = "plan-mode"

        def filter_tools(self, tools: dict[str, Tool]) -> dict[str, Tool]:
            return {name: tool for name, tool in tools.items() if name != "write"}

    surface = Surface(dyn("tool:read", "read", "r"), dyn("tool:write", "write", "w"))
    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([]))
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .plugins([surface.plugin(), PlanMode])
        .build()
    )
    session = await core.session("s").open()
    assert catalog_names(session) == ["read"]
    assert member(session.tool_state(), "tool:write")  # filtering is not membership


async def test_refresh_tool_catalog_command_commits_the_rediscovered_surface() -> None:
    store = MemoryStore()
    provider = ScriptedProvider([reply("one")])
    surface = Surface(dyn("tool:a", "a", "first"))
    session = await make_core(provider, store, surface).session("cmd").open()
    await session.turn("hi").run()
    surface.replace(dyn("tool:a", "a", "first"), dyn("tool:b", "b", "appeared"))
    await session.submit_command("refresh_tool_catalog", reason="new tools")
    assert await session.process_pending() == []
    loaded = await store.load_session("cmd")
    assert loaded is not None
    persisted, _ = decode_tool_state(loaded.checkpoint.tool_state)
    assert member(persisted, "tool:b") and persisted == session.tool_state()
    revision = session.head_revision
    assert await session.refresh_tools() == persisted
    assert session.head_revision == revision  # already persisted: nothing more to commit


async def test_stale_export_over_another_writers_commit_is_rejected_even_at_a_reused_number() -> (
    None
):
    # A's uncommitted sources raise its local generation to the number B commits next for
    # other content; A's stale export must not pass the fence and undo B's hide.
    store = MemoryStore()
    provider = ScriptedProvider([reply("one")])
    surface = Surface(dyn("tool:x", "x", "x"), dyn("tool:y", "y", "y"))
    core = make_core(provider, store, surface)
    a = await core.session("shared").open()
    await a.turn("hi").run()
    b = await core.session("shared").open()
    a.add_tool_source([dyn("tool:l1", "l1", "l1")])
    a.add_tool_source([dyn("tool:l2", "l2", "l2")])
    stale = a.tool_state()
    committed = await b.set_tool_membership("x", False)
    assert committed == stale.generation - 1  # B commits the number A's next bump would take
    with pytest.raises(lash.LashRuntimeError) as refused:
        await a.apply_tool_state(stale.with_membership("tool:y", False))
    assert refused.value.is_code("tool_state_generation_mismatch")
    assert a.tool_state().generation > stale.generation  # never reused for other content
    loaded = await store.load_session("shared")
    assert loaded is not None
    persisted, _ = decode_tool_state(loaded.checkpoint.tool_state)
    assert not member(persisted, "tool:x") and member(persisted, "tool:y")  # B's hide stands
    # a fresh export from A carries B's hide and applies
    fresh = a.tool_state()
    assert not member(fresh, "tool:x")
    await a.apply_tool_state(fresh.with_membership("tool:y", False))
    loaded = await store.load_session("shared")
    assert loaded is not None
    persisted, _ = decode_tool_state(loaded.checkpoint.tool_state)
    assert not member(persisted, "tool:x") and not member(persisted, "tool:y")


async def test_fork_hidden_tools_are_access_policy_that_showing_cannot_lift() -> None:
    store = MemoryStore()
    provider = ScriptedProvider([reply("one")])
    ran: list[str] = []
    shell_impl = FunctionTool.from_schema(
        "shell", "s", EMPTY, lambda args: ran.append("shell") or "ran"
    )
    surface = Surface(dyn("tool:x", "x", "x"), with_tool_id(shell_impl, "tool:shell"))
    core = make_core(provider, store, surface)
    parent = await core.session("parent").open()
    await parent.turn("hi").run()
    child = await core.fork_session("parent", "child", hidden_tools=["shell"])
    await child.set_tool_membership("x", False)  # curation, which showing does lift
    before = child.tool_state()
    with pytest.raises(lash.LashRuntimeError) as refused:
        await child.set_tool_membership(["x", "shell"], True)
    assert refused.value.is_code("tool_hidden_by_policy")
    assert child.tool_state() == before  # the refused change changed nothing
    await child.set_tool_membership("x", True)
    assert catalog_names(child) == ["x"]
    # neither membership nor a grant makes the policy-denied tool executable
    child.add_grant_source("ops", shell_impl)
    provider.extend([[tool_call("shell", {}, "c-shell")], reply("done")])
    grant = ToolExecutionGrant(tool_name="shell", source_id="ops")
    result = await child.turn("run shell").grant_tools(grant).run()
    assert result.tool_calls[0].error_code == "tool_unavailable" and ran == []
    # the policy is persisted apart from curation and survives a reopen
    loaded = await store.load_session("child")
    assert loaded is not None and loaded.checkpoint.tool_state["denied"] == ["shell"]
    reopened = await make_core(provider, store, surface).session("child").open()
    with pytest.raises(lash.LashRuntimeError):
        await reopened.set_tool_membership("shell", True)
    records = await call_tools(reopened, provider, "shell")
    assert records["shell"].error_code == "tool_unavailable" and ran == []


async def test_reset_session_keeps_the_access_policy_curation_and_generation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reset.db"
    surface = Surface(
        dyn("tool:x", "x", "x"), dyn("tool:y", "y", "y"), dyn("tool:shell", "shell", "s")
    )
    provider = ScriptedProvider([reply("one")])
    async with make_core(provider, SqliteStore(path), surface) as core:
        parent = await core.session("parent").open()
        await parent.turn("hi").run()
        child = await core.fork_session("parent", "child", hidden_tools=["shell"])
        await child.set_tool_membership("x", False)
        generation = child.tool_state().generation
        await child.submit_command("reset_session", reason="user /reset")
        assert await child.process_pending() == []
        view = await child.read_view()
        assert not view.messages  # the conversation did start over
        assert child.tool_state().generation >= generation  # the fence never moves back
        records = await call_tools(child, provider, "shell", "x", "y")
        assert records["shell"].error_code == "tool_unavailable"
        assert records["x"].error_code == "tool_unavailable"
        assert records["y"].status == "success"
        after = child.tool_state().generation
        assert after >= generation
    async with make_core(provider, SqliteStore(path), surface) as core:  # a cold reopen
        again = await core.session("child").open()
        assert catalog_names(again) == ["y"]
        assert again.tool_state().generation == after
        with pytest.raises(lash.LashRuntimeError) as refused:
            await again.set_tool_membership("shell", True)
        assert refused.value.is_code("tool_hidden_by_policy")
        records = await call_tools(again, provider, "shell", "x")
        assert records["shell"].error_code == "tool_unavailable"
        assert records["x"].error_code == "tool_unavailable"


async def test_plan_mode_toggles_neither_orphan_plan_exit_nor_move_the_generation(
    tmp_path: Path,
) -> None:
    from lash.plugins.plan_mode import PlanMode

    provider = ScriptedProvider([reply("planning")])
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .plugins([lambda: PlanMode(workspace=tmp_path)])
        .batch_tool(False)
        .build()
    )
    session = await core.session("p").open()
    plan = session.plugin("plan_mode")
    assert isinstance(plan, PlanMode)
    await session.turn("1").run()
    exported = session.tool_state()
    assert "plan_exit" in advertised(provider) and "plan_exit" in catalog_names(session)
    plan.disable()
    records = await call_tools(session, provider, "plan_exit")
    assert records["plan_exit"].error_code == "tool_unavailable"
    assert "plan_exit" not in advertised(provider) and "plan_exit" not in catalog_names(session)
    assert session.tool_state() == exported  # no orphan, no bump: the export stays valid
    plan.enable()
    provider.extend([reply("planning again")])
    await session.turn("3").run()
    assert "plan_exit" in advertised(provider) and "plan_exit" in catalog_names(session)
    assert session.tool_state() == exported
    await session.apply_tool_state(exported.with_membership("tool:update_plan", False))


async def test_a_plugin_tool_dropped_in_process_is_dormant_and_comes_back_unchanged() -> None:
    x, y = dyn("tool:x", "x", "x"), dyn("tool:y", "y", "y")
    surface = Surface(x, y)
    provider = ScriptedProvider([])
    session = await make_core(provider, MemoryStore(), surface).session("d").open()
    before = session.tool_state()
    surface.replace(x)
    records = await call_tools(session, provider, "x", "y")
    assert records["x"].status == "success" and records["y"].error_code == "tool_unavailable"
    assert advertised(provider) == ["x"] and catalog_names(session) == ["x"]
    assert session.tool_state() == before and member(before, "tool:y")
    surface.replace(x, y)
    records = await call_tools(session, provider, "y")
    assert records["y"].status == "success" and catalog_names(session) == ["x", "y"]
    assert session.tool_state() == before
