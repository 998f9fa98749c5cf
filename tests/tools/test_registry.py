"""The generation-fenced tool registry (spec processes-tools §3.3 Registry, §3.4, §5.7 rows
"registry")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import pytest

from lash.errors import LashRuntimeError
from lash.tools import FunctionTool, ToolContext, ToolExecutionGrant
from lash.tools.base import Tool
from lash.tools.membership import (
    ToolMembership,
    ToolState,
    ToolStateEntry,
    decode_tool_state,
    denied_tools,
    encode_tool_state,
    membership_of,
)
from lash.tools.registry import (
    TOOL_HIDDEN_BY_POLICY,
    TOOL_SOURCE_CONFLICT,
    TOOL_STATE_GENERATION_MISMATCH,
    ToolRegistry,
    project_tool_catalog,
    tool_id_of,
    with_tool_id,
)

EMPTY = {"type": "object", "properties": {}}


def make_tool(name: str, description: str = "", result: Any = None) -> Tool:
    value = name if result is None else result
    return FunctionTool.from_schema(name, description or name, EMPTY, lambda args: value)


def names(tools: Mapping[str, Tool]) -> list[str]:
    return list(tools)


def ctx(binding: Mapping[str, Any] | None = None) -> ToolContext:
    return ToolContext(
        session_id="s",
        turn_id="t",
        call_id="c",
        tool_name="x",
        replay_key="k",
        execution_binding=binding,
    )


class Dynamic:
    """A provider whose advertised tools change under it."""

    def __init__(self, *tool_names: str) -> None:
        self.names = list(tool_names)

    def tools(self) -> Sequence[Tool]:
        return [make_tool(n, "dynamic") for n in self.names]


class LazyOnly:
    """Advertises nothing; resolves ``host_only`` on request (a deferred resolver)."""

    def __init__(self, calls: list[str] | None = None) -> None:
        self.calls = calls if calls is not None else []
        self.host_only = make_tool("host_only", "host-only")

    def tools(self) -> Sequence[Tool]:
        return ()

    def resolve_tool(self, name: str) -> Tool | None:
        self.calls.append(f"name:{name}")
        return self.host_only if name == "host_only" else None

    def resolve_tool_id(self, tool_id: str) -> Tool | None:
        self.calls.append(f"id:{tool_id}")
        return self.host_only if tool_id == "tool:host_only" else None


def mixed() -> list[Tool]:
    return [make_tool("enabled_tool"), make_tool("disabled_tool")]


def base_registry(*sources: tuple[str, Any]) -> ToolRegistry:
    registry = ToolRegistry()
    registry.upsert_source("plugins", [make_tool("mock_tool", "mock")])
    for source_id, source in sources:
        registry.upsert_source(source_id, source)
    return registry


def snapshot_with_external_tool() -> ToolState:
    return base_registry(("external", [make_tool("search", "search")])).export_state()


def test_registry_makes_advertised_tools_members_by_default() -> None:
    registry = ToolRegistry()
    registry.upsert_source("plugins", mixed())
    state = registry.export_state()
    enabled, disabled = state.get("tool:enabled_tool"), state.get("tool:disabled_tool")
    assert enabled is not None and enabled.is_member
    assert disabled is not None and disabled.is_member
    assert [m.name for m in state.member_manifests()] == ["disabled_tool", "enabled_tool"]
    assert names(registry.member_tools()) == ["enabled_tool", "disabled_tool"]  # source order
    assert registry.generation == 1


def test_exported_tool_state_is_source_free() -> None:
    registry = base_registry()
    live = registry.add_live_source(mixed())
    assert live == "live:1"
    encoded = msgspec.json.encode(registry.export_state()).decode()
    assert "enabled_tool" in encoded
    assert "source" not in encoded and "plugins" not in encoded and "live:" not in encoded
    # and it round-trips through JSON unchanged
    decoded = msgspec.json.decode(encoded, type=ToolState)
    assert decoded == registry.export_state()


def test_apply_state_rebinds_source_free_snapshot_to_current_sources() -> None:
    source = ToolRegistry()
    source.upsert_source("plugins", mixed())
    snapshot = source.export_state().with_membership("tool:disabled_tool", False)
    target = ToolRegistry()
    target.upsert_source("elsewhere", mixed())  # a different source id serves the same ids
    target.upsert_source("more", [make_tool("extra")])
    generation = target.apply_state(snapshot.with_generation(target.generation))
    assert generation == target.generation == 3
    # the snapshot defines the surface: an id it leaves out is gone for now
    assert names(target.member_tools()) == ["enabled_tool"]
    assert not target.export_state().contains("tool:extra")
    assert target.tool("enabled_tool") is not None
    assert target.tool("disabled_tool") is None


def test_apply_state_rejects_tools_not_advertised_by_source() -> None:
    registry = base_registry()
    before = registry.export_state()
    tools = dict(before.tools)
    tools["tool:missing"] = ToolStateEntry(manifest=make_manifest("missing"))
    with pytest.raises(LashRuntimeError) as err:
        registry.apply_state(ToolState(generation=before.generation, tools=tools))
    assert err.value.is_code("invalid_tool_state")
    assert registry.export_state() == before  # nothing applied


def test_apply_state_rejects_snapshot_when_provider_is_absent() -> None:
    snapshot = snapshot_with_external_tool()
    target = base_registry()
    with pytest.raises(LashRuntimeError) as err:
        target.apply_state(snapshot.with_generation(target.generation))
    assert err.value.is_code("invalid_tool_state") and "tool:search" in err.value.message


def test_apply_state_rejects_ambiguous_current_source_binding() -> None:
    registry = ToolRegistry()
    registry.upsert_source("exact-a", LazyOnly())
    registry.upsert_source("exact-b", LazyOnly())
    state = ToolState(
        generation=registry.generation,
        tools={"tool:host_only": ToolStateEntry(manifest=make_manifest("host_only"))},
    )
    with pytest.raises(LashRuntimeError) as err:
        registry.apply_state(state)
    assert err.value.is_code(TOOL_SOURCE_CONFLICT)
    assert "exact-a" in err.value.message and "exact-b" in err.value.message


def test_apply_state_is_generation_fenced() -> None:
    registry = base_registry()
    stale = registry.export_state()
    assert registry.apply_state(stale.with_membership("tool:mock_tool", False)) == 2
    with pytest.raises(LashRuntimeError) as err:
        registry.apply_state(stale)
    assert err.value.is_code(TOOL_STATE_GENERATION_MISMATCH)
    assert "generation mismatch" in str(err.value) and "generation 2" in err.value.message
    assert registry.tool("mock_tool") is None  # the rejected change did not land


def test_apply_state_round_trips_while_orphans_exist() -> None:
    target = base_registry()
    target.restore_state(snapshot_with_external_tool())
    edited = target.export_state().with_membership("tool:mock_tool", False)
    target.apply_state(edited)
    exported = target.export_state()
    orphan, mock = exported.get("tool:search"), exported.get("tool:mock_tool")
    assert orphan is not None and orphan.orphaned
    assert mock is not None and not mock.is_member
    # an entry that was bound at export must still resolve
    strict = snapshot_with_external_tool().with_generation(target.generation)
    with pytest.raises(LashRuntimeError):
        target.apply_state(strict)


def test_refresh_sources_re_reads_group_provider_manifests() -> None:
    provider = Dynamic("dynamic_one")
    registry = ToolRegistry()
    registry.upsert_source("plugins", provider)
    assert names(registry.member_tools()) == ["dynamic_one"]
    provider.names.append("dynamic_two")
    assert registry.refresh_sources() == 2
    assert names(registry.member_tools()) == ["dynamic_one", "dynamic_two"]
    provider.names.remove("dynamic_one")
    assert registry.refresh_sources() == 3
    assert names(registry.member_tools()) == ["dynamic_two"]
    assert registry.refresh_sources() == 3  # unchanged surface: no bump


async def test_cold_restore_adds_newly_advertised_tools_and_marks_state_dirty() -> None:
    provider = Dynamic("dynamic_one")
    source = ToolRegistry()
    source.upsert_source("plugins", provider)
    snapshot = source.export_state()
    provider.names.append("dynamic_two")
    resumed = ToolRegistry()
    resumed.upsert_source("plugins", provider)
    report = resumed.restore_state(snapshot)
    assert report.dirty and report.generation == snapshot.generation + 1
    entry = resumed.export_state().get("tool:dynamic_two")
    assert entry is not None and entry.is_member
    output = await resumed.execute_by_id("tool:dynamic_two", ctx(), {})
    assert output.ok and output.payload == "dynamic_two"
    # restoring what it now serves changes nothing: not dirty, no bump
    again = ToolRegistry()
    again.upsert_source("plugins", provider)
    report = again.restore_state(resumed.export_state())
    assert not report.dirty and report.generation == resumed.generation


def test_restore_state_adopts_generation_at_or_above_three() -> None:
    snapshot = base_registry().export_state().with_generation(3)
    target = base_registry()
    assert target.generation == 1
    report = target.restore_state(snapshot)
    assert report.generation == 3 and target.generation == 3
    assert report.orphaned == () and not report.dirty
    assert target.export_state().generation == 3
    fresh = base_registry()
    with pytest.raises(LashRuntimeError) as err:
        fresh.apply_state(snapshot)
    assert err.value.is_code(TOOL_STATE_GENERATION_MISMATCH)


async def test_restore_orphans_unresolved_tools_instead_of_failing() -> None:
    target = base_registry()
    report = target.restore_state(snapshot_with_external_tool())
    assert report.orphaned == ("tool:search",) and report.dirty
    assert "search" not in target.member_tools()
    exported = target.export_state()
    assert all(m.name != "search" for m in exported.member_manifests())
    entry = exported.get("tool:search")
    assert entry is not None and entry.orphaned and not entry.is_member
    output = await target.execute_by_id("tool:search", ctx(), {})
    assert output.error_code == "tool_unavailable" and "no source serves it" in output.payload
    assert target.tool("search") is None
    assert target.tool("mock_tool") is not None  # bound tools are unaffected


async def test_orphan_rebinds_when_source_is_upserted_again() -> None:
    target = base_registry()
    target.restore_state(snapshot_with_external_tool())
    orphaned_at = target.generation
    target.upsert_source("external", [make_tool("search", "search")])
    assert target.generation > orphaned_at
    entry = target.export_state().get("tool:search")
    assert entry is not None and not entry.orphaned and entry.is_member
    output = await target.execute_by_id("tool:search", ctx(), {})
    assert output.ok and output.payload == "search"


def test_restore_uses_live_manifest_and_preserves_membership_for_same_id() -> None:
    snapshot = base_registry().export_state().with_membership("tool:mock_tool", False)
    target = ToolRegistry()
    target.upsert_source("plugins", [make_tool("mock_tool", "live manifest")])
    target.restore_state(snapshot)
    entry = target.export_state().get("tool:mock_tool")
    assert entry is not None
    assert entry.manifest.description == "live manifest"
    assert not entry.is_member  # membership stays attached to the id


def test_restore_drops_superseded_orphan_and_does_not_transfer_opt_out() -> None:
    snapshot = snapshot_with_external_tool().with_membership("tool:search", False)
    target = base_registry()
    replacement = with_tool_id(make_tool("search", "another implementation"), "tool:replaced")
    target.add_live_source([replacement])
    report = target.restore_state(snapshot)
    assert report.orphaned == ()
    exported = target.export_state()
    assert not exported.contains("tool:search")
    entry = exported.get("tool:replaced")
    assert entry is not None and entry.is_member  # opt-out was per id
    assert names(target.member_tools()).count("search") == 1


async def test_hidden_lazy_resolved_tool_is_not_executable_by_id() -> None:
    calls: list[str] = []
    target = ToolRegistry(hidden=["host_only"])
    target.upsert_source("exact-a", LazyOnly(calls))
    output = await target.execute_by_id("tool:host_only", ctx(), {})
    assert output.error_code == "tool_unavailable"
    assert calls == ["id:tool:host_only"]  # it was resolved, and still refused
    entry = target.export_state().get("tool:host_only")
    assert entry is not None and not entry.is_member
    assert target.tool("host_only") is None and target.tool_by_id("tool:host_only") is None


async def test_lazy_resolution_records_a_member_when_not_hidden() -> None:
    target = ToolRegistry()
    target.upsert_source("exact-a", LazyOnly())
    before = target.generation
    output = await target.execute_by_id("tool:host_only", ctx(), {})
    assert output.ok and output.payload == "host_only"
    entry = target.export_state().get("tool:host_only")
    assert entry is not None and entry.is_member and target.generation == before + 1


async def test_execution_grant_routes_without_adding_tool_to_state_or_catalog() -> None:
    calls: list[str] = []
    registry = base_registry(("exact", LazyOnly(calls)))
    assert not registry.export_state().contains("tool:host_only")
    generation = registry.generation
    grant = ToolExecutionGrant(
        tool_name="host_only", source_id="exact", binding={"kind": "test", "route": "grant"}
    )
    seen: list[Any] = []
    registry_tool = registry.granted_tool(grant)
    assert registry_tool is not None
    output = await registry.execute_granted(grant, ctx(grant.binding), {})
    seen.append(output.payload)
    assert output.ok and seen == ["host_only"]
    assert not registry.export_state().contains("tool:host_only")
    assert "host_only" not in registry.member_tools()
    assert all(e["name"] != "host_only" for e in registry.project_catalog())
    assert registry.generation == generation


async def test_execution_grant_without_source_does_not_infer_registry_route() -> None:
    registry = base_registry(("exact", LazyOnly()))
    grant = ToolExecutionGrant(tool_name="host_only")
    assert registry.granted_tool(grant) is None
    output = await registry.execute_granted(grant, ctx(), {})
    assert output.error_code == "tool_unavailable"
    assert "names no tool source" in output.payload
    # not even a catalog member is reached without a named source
    assert registry.granted_tool(ToolExecutionGrant(tool_name="mock_tool")) is None
    assert not registry.export_state().contains("tool:host_only")


def test_remove_source_removes_all_source_tools() -> None:
    registry = base_registry(("external", [make_tool("search"), make_tool("fetch")]))
    assert names(registry.member_tools()) == ["mock_tool", "search", "fetch"]
    generation = registry.remove_source("external")
    assert generation == 3 and names(registry.member_tools()) == ["mock_tool"]
    assert not registry.export_state().contains("tool:search")  # removed, not orphaned
    with pytest.raises(LashRuntimeError) as err:
        registry.remove_source("external")
    assert err.value.is_code("unknown_tool_source")


def test_project_tool_catalog_projects_all_members_with_catalog_metadata() -> None:
    registry = ToolRegistry()
    registry.upsert_source("plugins", [make_tool("read_file", "desc for read_file")])
    registry.upsert_source("search", [make_tool("search_tools", "desc for search_tools")])
    registry.set_membership(["hidden_one"], False)
    catalog = registry.project_catalog()
    assert [e["name"] for e in catalog] == ["read_file", "search_tools"]
    assert catalog[0] == {
        "id": "tool:read_file",
        "name": "read_file",
        "description": "desc for read_file",
        "parameters": EMPTY,
    }
    for tier in ("availability", "showcased", "callable", "searchable"):
        assert tier not in catalog[0]
    registry.set_membership(["read_file"], False)
    assert [e["name"] for e in registry.project_catalog()] == ["search_tools"]
    assert project_tool_catalog(registry.export_state().member_manifests()) == [catalog[1]]


def test_ambiguous_id_or_name_across_sources_fails_and_changes_nothing() -> None:
    registry = base_registry()
    before = registry.export_state()
    with pytest.raises(LashRuntimeError) as err:
        registry.upsert_source("other", [make_tool("mock_tool", "impostor")])
    assert err.value.is_code(TOOL_SOURCE_CONFLICT)
    renamed = with_tool_id(make_tool("mock_tool"), "tool:different")
    with pytest.raises(LashRuntimeError) as err:
        registry.upsert_source("other", [renamed])
    assert err.value.is_code(TOOL_SOURCE_CONFLICT) and "name" in err.value.message
    assert registry.export_state() == before and registry.source_ids() == ("plugins",)


def test_set_membership_is_per_id_and_hides_unserved_names_by_policy() -> None:
    provider = Dynamic("add")
    registry = ToolRegistry()
    registry.upsert_source("plugins", provider)
    assert registry.set_membership(["add", "ghost"], False) == 2
    assert registry.hidden == frozenset({"ghost"})
    assert registry.set_membership(["add"], False) == 2  # no change, no bump
    provider.names.append("ghost")
    registry.refresh_sources()
    ghost = registry.export_state().get("tool:ghost")
    assert ghost is not None and not ghost.is_member  # born hidden
    assert registry.set_membership(["ghost", "add"], True) == 4
    assert names(registry.member_tools()) == ["add", "ghost"] and registry.hidden == frozenset()


def test_declared_tool_ids_and_wrapped_tools() -> None:
    plain = make_tool("x")
    assert tool_id_of(plain) == "tool:x"
    wrapped = with_tool_id(plain, "mcp:server/x")
    assert tool_id_of(wrapped) == "mcp:server/x" and wrapped.spec == plain.spec
    assert wrapped.retry_policy == plain.retry_policy
    with pytest.raises(LashRuntimeError):
        with_tool_id(plain, " ")


def test_checkpoint_encoding_round_trips_and_reads_legacy_membership() -> None:
    registry = base_registry()
    registry.set_membership(["ghost"], False)
    encoded = encode_tool_state(registry.export_state(), registry.hidden)
    assert encoded["hidden"] == ["ghost"]
    state, hidden = decode_tool_state(msgspec.json.decode(msgspec.json.encode(encoded)))
    assert state == registry.export_state() and hidden == {"ghost"}
    assert membership_of(encoded) == ToolMembership(generation=2, hidden=("ghost",))
    legacy = {"membership": {"generation": 4, "hidden": ["wipe"]}}
    state, hidden = decode_tool_state(legacy)
    assert state == ToolState(generation=4) and hidden == {"wipe"}
    assert decode_tool_state({}) == (ToolState(), frozenset())
    with pytest.raises(LashRuntimeError) as err:
        decode_tool_state({"generation": 1, "tools": {"t": 3}})
    assert err.value.is_code("invalid_tool_state")


def test_restore_rejects_a_snapshot_whose_keys_do_not_match_its_manifests() -> None:
    registry = base_registry()
    bad = ToolState(tools={"tool:a": ToolStateEntry(manifest=make_manifest("b"))})
    with pytest.raises(LashRuntimeError) as err:
        registry.restore_state(bad)
    assert err.value.is_code("invalid_tool_state")


def make_manifest(name: str) -> Any:
    from lash.tools.membership import ToolManifest

    return ToolManifest(id=f"tool:{name}", name=name, description=name)


async def test_a_tool_with_a_declared_id_keeps_its_retry_settings_and_runs() -> None:
    inner = FunctionTool.from_schema(
        "flaky", "retried", EMPTY, lambda args: "ok", retry="safe", max_attempts=5
    )
    wrapped = with_tool_id(inner, "mcp:srv/flaky")
    delegated: Any = wrapped  # what the dispatcher reads for retry overrides
    assert wrapped.retry_policy == "safe" and delegated.max_attempts == 5
    registry = ToolRegistry()
    registry.upsert_source("mcp", [wrapped])
    assert registry.export_state().contains("mcp:srv/flaky")
    output = await registry.execute_by_id("mcp:srv/flaky", ctx(), {})
    assert output.ok and output.payload == "ok"
    assert not hasattr(wrapped, "_missing")


def test_restore_after_an_export_never_reuses_a_generation_for_another_surface() -> None:
    committed = base_registry().export_state()  # generation 1, mock_tool a member
    local = base_registry()
    local.restore_state(committed)
    local.upsert_source("extra", [make_tool("extra")])  # uncommitted local change: 2
    stale = local.export_state()
    # another writer commits generation 2 for a different surface
    theirs = committed.with_membership("tool:mock_tool", False).with_generation(2)
    report = local.restore_state(theirs)
    assert report.generation == 3 and report.dirty  # above both: 2 meant other content
    with pytest.raises(LashRuntimeError) as err:
        local.apply_state(stale)
    assert err.value.is_code(TOOL_STATE_GENERATION_MISMATCH)
    assert local.tool("mock_tool") is None and local.tool("extra") is not None
    # a reload that lands on the surface already served keeps the generation
    same = local.export_state()
    assert local.restore_state(same).generation == same.generation
    # and an older commit of the same surface never moves it back
    assert local.restore_state(same.with_generation(1)).generation == same.generation


def test_access_policy_is_apart_from_curation_and_never_lifted() -> None:
    registry = ToolRegistry()
    registry.upsert_source("plugins", [make_tool("shell"), make_tool("add")])
    registry.upsert_source("ops", [make_tool("ops_shell")])
    assert registry.add_hidden(["shell", "ops_shell"]) == 3  # a fork's hidden_tools
    registry.set_membership(["add", "ghost"], False)  # curation
    assert registry.policy == {"shell", "ops_shell"} and registry.hidden == {"ghost"}
    before = registry.export_state()
    with pytest.raises(LashRuntimeError) as err:
        registry.set_membership(["add", "shell"], True)
    assert err.value.is_code(TOOL_HIDDEN_BY_POLICY) and "'shell'" in err.value.message
    assert registry.export_state() == before and registry.tool("add") is None
    registry.set_membership(["add", "ghost"], True)  # curation lifts
    assert names(registry.member_tools()) == ["add"] and registry.hidden == frozenset()
    assert registry.tool_by_id("tool:shell") is None
    grant = ToolExecutionGrant(tool_name="ops_shell", source_id="ops")
    assert registry.granted_tool(grant) is None  # no grant routes to a denied name
    encoded = encode_tool_state(registry.export_state(), registry.hidden, registry.policy)
    assert encoded["denied"] == ["ops_shell", "shell"] and "hidden" not in encoded
    assert denied_tools(encoded) == {"ops_shell", "shell"}
    assert set(membership_of(encoded).hidden) == {"ops_shell", "shell"}
    state, hidden = decode_tool_state(encoded)
    rebuilt = ToolRegistry()
    rebuilt.upsert_source("plugins", [make_tool("shell"), make_tool("add")])
    rebuilt.restore_state(state, hidden=hidden, policy=denied_tools(encoded))
    with pytest.raises(LashRuntimeError):
        rebuilt.set_membership(["shell"], True)
    with pytest.raises(LashRuntimeError) as err:
        denied_tools({"generation": 1, "tools": {}, "denied": "shell"})
    assert err.value.is_code("invalid_tool_state")
