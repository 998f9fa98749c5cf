"""Per-turn tool execution grants (spec processes-tools §3.4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
import pytest

import lash
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply, tool_call
from lash.tools import ToolExecutionGrant
from lash.tools.membership import decode_tool_state


def _deferred(seen: list[Mapping[str, Any] | None]) -> list[Any]:
    @lash.tool
    async def remote_lookup(ctx: lash.ToolContext, key: str) -> str:
        """A tool served by a deferred resolver (never advertised)."""
        seen.append(ctx.execution_binding)
        return f"value of {key}"

    @lash.tool
    async def remote_delete(ctx: lash.ToolContext, key: str) -> str:
        """Another deferred tool, not granted."""
        seen.append(ctx.execution_binding)
        return "deleted"

    return [remote_lookup, remote_delete]


@lash.tool
async def local(ctx: lash.ToolContext) -> str:
    """An ordinary catalog tool."""
    return "local"


def _session_core(provider: ScriptedProvider, store: Any, tools: list[Any]) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .tools(tools)
        .batch_tool()
        .build()
    )


async def test_explicit_execution_grant_runs_non_catalog_tool_with_binding() -> None:
    seen: list[Mapping[str, Any] | None] = []
    provider = ScriptedProvider(
        [
            [
                tool_call("remote_lookup", {"key": "k"}, "c1"),
                tool_call("remote_delete", {"key": "k"}, "c2"),
            ],
            reply("done"),
        ]
    )
    session = await _session_core(provider, MemoryStore(), [local]).session("s").open()
    session.add_grant_source("mcp", _deferred(seen))
    grant = ToolExecutionGrant(
        tool_name="remote_lookup", source_id="mcp", binding={"kind": "mcp", "tool_id": "t-1"}
    )
    result = await session.turn("go").grant_tools(grant).run()
    records = {c.call_id: c for c in result.tool_calls}
    assert records["c1"].status == "success"
    assert records["c2"].error_code == "tool_unavailable"  # a source alone grants nothing
    assert seen == [{"kind": "mcp", "tool_id": "t-1"}]


async def test_execution_grant_routes_without_adding_tool_to_state_or_catalog() -> None:
    seen: list[Mapping[str, Any] | None] = []
    store = MemoryStore()
    provider = ScriptedProvider([[tool_call("remote_lookup", {"key": "a"}, "c1")], reply("one")])
    session = await _session_core(provider, store, [local]).session("s").open()
    session.add_grant_source("mcp", _deferred(seen))
    grant = ToolExecutionGrant(tool_name="remote_lookup", source_id="mcp")
    result = await session.turn("go").grant_tools(grant).run()
    assert result.tool_calls[0].status == "success"
    assert all([s.name for s in r.tools] == ["local", "batch"] for r in provider.requests)
    loaded = await store.load_session("s")
    assert loaded is not None
    persisted, _ = decode_tool_state(loaded.checkpoint.tool_state)
    assert [m.name for m in persisted.member_manifests()] == ["local"]  # the grant left no trace
    # the grant was for that turn only
    provider.extend([[tool_call("remote_lookup", {"key": "b"}, "c2")], reply("three")])
    later = await session.turn("again").run()
    assert later.tool_calls[0].error_code == "tool_unavailable"
    assert len(seen) == 1


async def test_execution_grant_reaches_hidden_tool_and_batch_children() -> None:
    seen: list[Mapping[str, Any] | None] = []

    @lash.tool
    async def wipe(ctx: lash.ToolContext) -> str:
        """A tool the host keeps hidden."""
        seen.append(ctx.execution_binding)
        return "wiped"

    items = [{"tool": "wipe", "parameters": {}}]
    provider = ScriptedProvider(
        [[tool_call("batch", {"tool_calls": items}, "b1")], reply("ok"), reply("again")]
    )
    session = await _session_core(provider, MemoryStore(), [local, wipe]).session("s").open()
    await session.set_tool_membership("wipe", False)
    session.add_grant_source("ops", wipe)  # the host routes the hidden tool explicitly
    grant = ToolExecutionGrant(tool_name="wipe", source_id="ops", binding={"account": "ops"})
    result = await session.turn("go").grant_tools(grant).run()
    assert [s.name for s in provider.requests[0].tools] == ["local", "batch"]
    assert result.tool_calls[0].status == "success"
    assert seen == [{"account": "ops"}]


async def test_execution_grant_without_source_does_not_infer_registry_route() -> None:
    ran: list[str] = []

    @lash.tool
    async def wipe(ctx: lash.ToolContext) -> str:
        """A hidden catalog tool."""
        ran.append("wipe")
        return "wiped"

    provider = ScriptedProvider([[tool_call("wipe", {}, "c1")], reply("done")])
    session = await _session_core(provider, MemoryStore(), [wipe]).session("s").open()
    await session.set_tool_membership("wipe", False)
    result = await session.turn("go").grant_tools(ToolExecutionGrant(tool_name="wipe")).run()
    assert result.tool_calls[0].error_code == "tool_unavailable"
    assert ran == []


async def test_unresolved_grant_leaves_the_call_unavailable() -> None:
    provider = ScriptedProvider([[tool_call("ghost", {}, "c1")], reply("done")])
    session = await _session_core(provider, MemoryStore(), [local]).session("s").open()
    grant = ToolExecutionGrant(tool_name="ghost", source_id="nowhere")
    result = await session.turn("go").grant_tools(grant).run()
    assert result.tool_calls[0].error_code == "tool_unavailable"


async def test_grants_are_serialisable_and_validated() -> None:
    grant = ToolExecutionGrant(tool_name="t", source_id="src", binding={"secret_ref": "vault:x"})
    assert msgspec.json.decode(msgspec.json.encode(grant), type=ToolExecutionGrant) == grant
    with pytest.raises(ValueError, match="non-empty tool_name"):
        ToolExecutionGrant(tool_name="")
    session = await _session_core(ScriptedProvider([]), MemoryStore(), []).session("s").open()
    with pytest.raises(ValueError, match="granted twice"):
        session.turn("x").grant_tools(grant, grant)
    session.add_grant_source("src", [])
    with pytest.raises(lash.EmbedError) as err:
        session.add_grant_source("src", [])
    assert err.value.kind == "duplicate_grant_source"
