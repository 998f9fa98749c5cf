"""``standard_tool_stack`` (processes-tools §4.2, the standard-stack rows of §5.8): the budget
plugin, exactly one context approach, the workspace tools, and web tools only with a key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lash
from lash.plugins import ObservationalMemory, ObservationalMemoryConfig, RollingHistory
from lash.plugins.memory import BUFFERED_OBSERVATION_PLUGIN_TYPE
from lash.stores import MemoryStore, SqliteStore
from lash.testing import ScriptedProvider, reply
from lash.tools.builtin import StandardToolStack, standard_tool_stack
from lash.types import PluginPayload

OBSERVED = "<observations>\n* 🔴 (10:00) User asked for a greeting\n</observations>"


async def _no_sleep(seconds: float) -> None:
    return None


def build_core(stack: StandardToolStack, provider: ScriptedProvider, store: Any) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("test-model", context_window=100_000))
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .tools(stack.tools)
        .plugins(stack.plugins)
        .sleep(_no_sleep)
        .build()
    )


async def test_rolling_history_context_installs_rolling_history_only(tmp_path: Path) -> None:
    default = standard_tool_stack(tmp_path)
    assert default.context == "rolling_history"
    stack = standard_tool_stack(tmp_path, context="rolling_history", max_context_tokens=500)
    assert stack.plugin_ids == ("tool_output_budget", "rolling_history")
    assert "observational_memory" not in stack.plugin_ids

    provider = ScriptedProvider([reply("hi")])
    core = build_core(stack, provider, MemoryStore())
    session = await core.session("s").open()
    await session.turn("hello").run()
    history = session.plugin("rolling_history")
    assert isinstance(history, RollingHistory) and history.max_context_tokens == 500
    assert session.plugin("observational_memory") is None
    assert session.plugin("tool_output_budget") is not None
    await core.aclose()
    await stack.aclose()

    with pytest.raises(ValueError, match="observational_memory"):
        standard_tool_stack(tmp_path, memory=ObservationalMemoryConfig())


async def test_observational_memory_context_installs_om_support(tmp_path: Path) -> None:
    config = ObservationalMemoryConfig(observation_buffer_tokens=10)
    stack = standard_tool_stack(tmp_path, context="observational_memory", memory=config)
    assert stack.plugin_ids == ("tool_output_budget", "observational_memory")
    assert "rolling_history" not in stack.plugin_ids
    with pytest.raises(ValueError, match="rolling_history"):
        standard_tool_stack(tmp_path, context="observational_memory", max_context_tokens=10)

    # the memory works out of the stack: after the durable commit the observer (the session's
    # own provider and model) writes a buffered observation into the SQLite graph
    store = SqliteStore(str(tmp_path / "lash.db"))
    # the turn's reply, then one observer reply per message (each over the 10-token batch)
    provider = ScriptedProvider([reply("hello there"), reply(OBSERVED), reply(OBSERVED)])
    core = build_core(stack, provider, store)
    session = await core.session("s").open()
    await session.turn("please greet me warmly").run()
    await session.wait_maintenance()  # the observer runs after the turn returned
    memory = session.plugin("observational_memory")
    assert isinstance(memory, ObservationalMemory) and memory.config == config
    observer_request = provider.requests[1]
    assert observer_request.model == "test-model" and observer_request.tools == ()
    assert "please greet me warmly" in observer_request.messages[0].text
    loaded = await store.load_session("s")
    assert loaded is not None
    plugin_nodes = [n.payload for n in loaded.nodes if isinstance(n.payload, PluginPayload)]
    assert [p.plugin_type for p in plugin_nodes] == [BUFFERED_OBSERVATION_PLUGIN_TYPE] * 2
    assert provider.remaining == 0
    await core.aclose()
    await stack.aclose()


async def test_web_tools_are_explicitly_keyed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LASH_WEB_API_KEY", "from-the-environment")
    without = standard_tool_stack(tmp_path)
    assert not {"search_web", "fetch_url"} & set(without.tool_names)
    with_key = standard_tool_stack(tmp_path, web_api_key="key")
    assert {"search_web", "fetch_url"} <= set(with_key.tool_names)

    # what the model is offered follows the stack
    provider = ScriptedProvider([reply("a"), reply("b")])
    for stack in (without, with_key):
        core = build_core(stack, provider, MemoryStore())
        session = await core.session("s").open()
        await session.turn("hi").run()
        await core.aclose()
        await stack.aclose()
    offered = [{t.name for t in r.tools} for r in provider.requests]
    assert "search_web" not in offered[0] and "search_web" in offered[1]


def test_standard_stack_does_not_install_cli_local_grep(tmp_path: Path) -> None:
    stack = standard_tool_stack(tmp_path)
    assert stack.tool_names == [
        "exec_command",
        "start_command",
        "write_stdin",
        "edit",
        "write",
        "read_file",
        "glob",
    ]
    assert "grep" in standard_tool_stack(tmp_path, grep=True).tool_names
    assert "exec_command" not in standard_tool_stack(tmp_path, shell=False).tool_names


def test_exactly_one_context_approach_or_none(tmp_path: Path) -> None:
    bare = standard_tool_stack(tmp_path, context=None)
    assert bare.plugin_ids == ("tool_output_budget",) and bare.context is None
    with pytest.raises(ValueError, match="context approach"):
        standard_tool_stack(tmp_path, context=None, max_context_tokens=10)
    with pytest.raises(ValueError, match="unknown context approach"):
        standard_tool_stack(tmp_path, context="summaries")  # type: ignore[arg-type]
