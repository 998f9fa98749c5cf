"""Observational memory (processes-tools §4.2, the §5.8 rows): the observation log kept as
plugin nodes, written after durable commits and in front of prompts, read back from the graph.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from lash.errors import LashRuntimeError, StoreError, StoreErrorKind
from lash.plugins import ObservationalMemory, ObservationalMemoryConfig
from lash.plugins._memory_state import (
    ObservedMessage,
    active_state_node,
    buffered_observation_node,
    buffered_reflection_node,
    prefix_len_leaving_tail_budget,
    split_message_batches,
    unobserved_messages,
)
from lash.plugins.memory import (
    ACTIVE_STATE_PLUGIN_TYPE,
    BUFFERED_OBSERVATION_PLUGIN_TYPE,
    build_graph_state,
    parse_memory_output,
    prefix_len_covering_tokens,
    retained_tokens_after,
    should_run_async_maintenance,
)
from lash.runtime.plugins import (
    AppendedPluginNodes,
    AppendPluginNodesResult,
    FinalizeContext,
    PluginSessionContext,
    PrepareContext,
    TurnPersistedContext,
)
from lash.stores import MemoryStore, SqliteStore
from lash.testing import ScriptedProvider, reply
from lash.types import (
    LlmRequest,
    Message,
    MessagePayload,
    PluginPayload,
    RuntimeCommit,
    RuntimeCommitResult,
    SessionGraph,
    SessionNode,
    StreamEvent,
    TextPart,
    TokenLedgerEntry,
    ToolCallPart,
    ToolResultPart,
    TurnOutcome,
    TurnResult,
)

OBSERVED = (
    "<observations>\nDate: Apr 14, 2026\n* 🔴 (10:00) User asked about the first topic\n"
    "</observations>\n<current-task>\nAnswer the first topic\n</current-task>\n"
    "<suggested-response>\nContinue with the answer.\n</suggested-response>"
)


def user(message_id: str, text: str, role: Any = "user") -> Message:
    return Message(id=message_id, role=role, parts=(TextPart(text=text),))


class GraphBuilder:
    """Appends nodes to a graph the way commits do (each a child of the leaf)."""

    def __init__(self) -> None:
        self.graph = SessionGraph()
        self.count = 0

    def _add(self, payload: Any) -> str:
        self.count += 1
        node = SessionNode(
            node_id=f"n{self.count}",
            parent_node_id=self.graph.leaf_node_id,
            timestamp_ms=1_776_160_800_000,  # 2026-04-14 10:00 UTC
            payload=payload,
        )
        self.graph.append(node)
        return node.node_id

    def message(self, message_id: str, text: str, role: Any = "user") -> str:
        return self._add(MessagePayload(message=user(message_id, text, role)))

    def plugin(self, payload: PluginPayload) -> str:
        return self._add(payload)


class RecordingAccess:
    """A SessionGraphAccess that records every append request (and applies it)."""

    def __init__(self, graph: SessionGraph, session_id: str = "s") -> None:
        self._graph = graph
        self._session_id = session_id
        self.requests: list[tuple[tuple[PluginPayload, ...], str | None, tuple[Any, ...]]] = []

    @property
    def session_id(self) -> str:
        return self._session_id

    def graph(self) -> SessionGraph:
        return self._graph

    async def append_plugin_nodes(
        self,
        nodes: Sequence[PluginPayload],
        *,
        requires_ancestor_node_id: str | None,
        usage: Sequence[TokenLedgerEntry] = (),
    ) -> AppendPluginNodesResult:
        self.requests.append((tuple(nodes), requires_ancestor_node_id, tuple(usage)))
        ids = []
        for index, payload in enumerate(nodes):
            node = SessionNode(
                node_id=f"appended-{len(self.requests)}-{index}",
                parent_node_id=self._graph.leaf_node_id,
                payload=payload,
            )
            self._graph.append(node)
            ids.append(node.node_id)
        return AppendedPluginNodes(node_ids=tuple(ids), leaf_node_id=ids[-1] if ids else "")


def persisted_ctx(graph: SessionGraph, access: RecordingAccess) -> TurnPersistedContext:
    result = TurnResult(session_id="s", turn_id="t1", outcome=TurnOutcome.assistant_message("done"))
    return TurnPersistedContext(
        session_id="s",
        turn_id="t1",
        result=result,
        graph=graph,
        leaf_node_id=graph.leaf_node_id,
        head_revision=1,
        session_graph=access,
    )


async def unit_memory(
    provider: ScriptedProvider, config: ObservationalMemoryConfig
) -> ObservationalMemory:
    memory = ObservationalMemory(config, provider=provider, model="observer-model")
    await memory.open_session(PluginSessionContext(session_id="s", state={}))
    return memory


# --- §5.8 rows ----------------------------------------------------------------------------


def test_parse_memory_output_extracts_xml_sections() -> None:
    parsed = parse_memory_output(
        "<observations>\nDate: Apr 12, 2026\n* 🔴 Test\n</observations>\n"
        "<current-task>\nWork\n</current-task>\n<suggested-response>\nContinue\n"
        "</suggested-response>"
    )
    assert parsed.observations == "Date: Apr 12, 2026\n* 🔴 Test"
    assert (parsed.current_task, parsed.suggested_response) == ("Work", "Continue")
    # no sections at all: the whole answer is the observations; empty hints are absent
    bare = parse_memory_output("  just a note  \n")
    assert (bare.observations, bare.current_task, bare.suggested_response) == (
        "just a note",
        None,
        None,
    )
    empty_hint = parse_memory_output("<observations>x</observations><current-task> </current-task>")
    assert empty_hint.current_task is None and not empty_hint.is_empty
    unclosed = parse_memory_output("<observations>never closed")
    assert unclosed.observations == "<observations>never closed"


def test_build_graph_state_resets_buffers_after_active_state() -> None:
    b = GraphBuilder()
    b.message("m1", "hello")
    b.plugin(buffered_observation_node(observed_through_message_id="m1", observations="old"))
    old_active = b.plugin(
        active_state_node(observed_through_message_id="m1", observations="first memory")
    )
    b.plugin(
        buffered_reflection_node(
            source_state_node_id=old_active,
            observed_through_message_id="m1",
            observations="reflection of the first memory",
        )
    )
    active = b.plugin(
        active_state_node(
            observed_through_message_id="m1", observations="active memory", current_task="help"
        )
    )
    b.message("m2", "need help")
    b.plugin(buffered_observation_node(observed_through_message_id="m2", observations="new"))
    b.plugin(buffered_observation_node(observed_through_message_id="m2", observations="dup"))
    b.plugin(PluginPayload(plugin_type=BUFFERED_OBSERVATION_PLUGIN_TYPE, body={"bad": 1}))

    state = build_graph_state(b.graph)
    assert state.active is not None
    assert (state.active.state_node_id, state.active.observations) == (active, "active memory")
    assert state.active.current_task == "help"
    # the buffer and the reflection written before the newest active state are gone
    assert [c.observations for c in state.buffered_observations] == ["new"]
    assert state.buffered_reflection is None

    # a reflection of the *current* active state survives
    b.plugin(
        buffered_reflection_node(
            source_state_node_id=active, observed_through_message_id="m1", observations="short"
        )
    )
    reflection = build_graph_state(b.graph).buffered_reflection
    assert reflection is not None and reflection.observations == "short"
    # and the walk follows the active path only: branching back forgets later records
    b.graph.branch_to(old_active)
    assert build_graph_state(b.graph).active.observations == "first memory"  # type: ignore[union-attr]


def test_retained_message_tokens_tracks_suffix_after_message() -> None:
    messages = [ObservedMessage(user(f"m{i}", c * 4000)) for i, c in enumerate("abc", 1)]
    retained = retained_tokens_after(messages)
    assert retained["m3"] == 0
    assert retained["m2"] == messages[2].tokens > 1000
    assert retained["m1"] == messages[1].tokens + messages[2].tokens


def test_prefix_len_covering_tokens_handles_partial_prefix() -> None:
    messages = [ObservedMessage(user(f"m{i}", c * 4000)) for i, c in enumerate("abc", 1)]
    assert prefix_len_covering_tokens(messages, 2000) == 2
    assert prefix_len_covering_tokens(messages, 0) == 0
    assert prefix_len_covering_tokens(messages, 10**6) is None
    # keep at most ~1 message raw at the tail
    assert prefix_len_leaving_tail_budget(messages, messages[2].tokens) == 2
    assert prefix_len_leaving_tail_budget(messages, 0) == 3
    assert [len(b) for b in split_message_batches(messages, 2100)] == [2, 1]


def test_token_estimate_is_the_observer_rendering() -> None:
    b = GraphBuilder()
    b.message("u", "hi there")
    b.message("s", "system text", role="system")
    b.message("a", "hello")
    (first, second) = unobserved_messages(b.graph, None)
    assert first.rendered == "[Apr 14, 2026 10:00] USER\nhi there"
    assert first.tokens == (len(first.rendered) + 3) // 4
    assert second.id == "a"  # system messages are never observed
    assert [m.id for m in unobserved_messages(b.graph, "u")] == ["a"]
    assert unobserved_messages(b.graph, "not-on-the-path") == []


async def test_maintenance_uses_post_persist_leaf_as_append_cas_ancestor() -> None:
    b = GraphBuilder()
    b.message("committed-message", "x" * 64)
    committed_leaf = b.graph.leaf_node_id
    provider = ScriptedProvider([reply(OBSERVED)])
    memory = await unit_memory(
        provider,
        ObservationalMemoryConfig(observation_buffer_tokens=1, observation_max_tokens_per_batch=1),
    )
    access = RecordingAccess(b.graph)
    await memory.turn_persisted(persisted_ctx(b.graph, access))

    assert len(access.requests) == 1
    nodes, ancestor, usage = access.requests[0]
    assert ancestor == committed_leaf
    assert [n.plugin_type for n in nodes] == [BUFFERED_OBSERVATION_PLUGIN_TYPE]
    assert nodes[0].body["observed_through_message_id"] == "committed-message"
    assert "first topic" in nodes[0].body["observations"]
    assert nodes[0].body["current_task"] == "Answer the first topic"
    assert [(u.source, u.model) for u in usage] == [("observer", "observer-model")]
    asked = provider.requests[0]
    assert asked.model == "observer-model" and asked.system and "observation log" in asked.system
    assert "USER\n" + "x" * 64 in asked.messages[0].text


async def test_maintenance_hook_only_runs_from_post_persisted_graph() -> None:
    b = GraphBuilder()
    b.message("post-persist-message", "x" * 64)
    provider = ScriptedProvider([reply("<observations>\n- Persisted graph only.\n</observations>")])
    memory = await unit_memory(provider, ObservationalMemoryConfig(observation_buffer_tokens=1))
    access = RecordingAccess(b.graph)
    memory.bind_session_graph(access)

    result = TurnResult(session_id="s", turn_id="t1", outcome=TurnOutcome.assistant_message("done"))
    finalized = await memory.finalize_turn(
        FinalizeContext(session_id="s", turn_id="t1", result=result)
    )
    assert finalized == ()
    assert access.requests == [] and provider.requests == []  # before the commit: nothing

    await memory.turn_persisted(persisted_ctx(b.graph, access))
    assert len(access.requests) == 1 and len(provider.requests) == 1


async def test_maintenance_waits_for_the_durable_commit(make_core: Any) -> None:
    """End to end: the observer is asked only once the turn's commit is in the store, and a
    turn whose commit fails leaves no maintenance behind."""
    store = MemoryStore()
    seen_at_observe: list[int] = []

    async def before_observe(request: LlmRequest) -> None:
        loaded = await store.load_session("s")
        assert loaded is not None
        seen_at_observe.append(len([n for n in loaded.nodes if n.message is not None]))

    observer = Interleaving(ScriptedProvider([reply(OBSERVED), reply(OBSERVED)]), before_observe)
    config = ObservationalMemoryConfig(observation_buffer_tokens=1)
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    core = make_core([reply("answer")], plugins=[memory], store=store)
    session = await core.session("s").open()
    await session.turn("question " * 10).run()
    await session.wait_maintenance()  # post-persist hooks run in the background
    assert seen_at_observe == [2]  # the user message and the answer were already durable

    failing = FailingCommits()
    core2 = make_core([reply("answer")], plugins=[memory], store=failing)
    other = await core2.session("f").open()
    with pytest.raises(LashRuntimeError):
        await other.turn("question " * 10).run()
    assert seen_at_observe == [2]  # no observer call for a turn that never became durable


async def test_post_persist_append_lands_after_a_newer_turn_never_over_it(
    make_core: Any, tmp_path: Path
) -> None:
    """While the observer works (the lease went with the commit) another worker commits a
    turn; the buffered observation is appended after that turn, on the same path."""
    store = SqliteStore(str(tmp_path / "lash.db"))
    other_core = make_core([reply("other answer")], store=store)

    async def another_worker_commits(request: LlmRequest) -> None:
        other = await other_core.session("s").open()
        await other.turn("from the other worker").run()

    observer = Interleaving(
        ScriptedProvider([reply(OBSERVED), reply(OBSERVED)]), another_worker_commits
    )
    config = ObservationalMemoryConfig(observation_buffer_tokens=1)
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    core = make_core([reply("first answer"), reply("third")], plugins=[memory], store=store)
    session = await core.session("s").open()
    await session.turn("first question " * 5).run()
    await session.wait_maintenance()  # post-persist hooks run in the background

    loaded = await store.load_session("s")
    assert loaded is not None
    path = SessionGraph(loaded.nodes, loaded.leaf_node_id).active_path()
    kinds = [
        n.message.text if n.message is not None else n.payload.plugin_type  # type: ignore[union-attr]
        for n in path
    ]
    assert kinds == [
        "first question " * 5,
        "first answer",
        "from the other worker",
        "other answer",
        BUFFERED_OBSERVATION_PLUGIN_TYPE,  # one batch per message (1-token interval)
        BUFFERED_OBSERVATION_PLUGIN_TYPE,
    ]
    through = [n.payload.body["observed_through_message_id"] for n in path[-2:]]  # type: ignore[union-attr]
    assert through == [path[0].message.id, path[1].message.id]  # type: ignore[union-attr]
    # this handle follows: its next turn sees the other worker's turn and the buffer
    await session.turn("third question").run()
    view = await session.read_view()
    assert [m.text for m in view.messages][2:4] == ["from the other worker", "other answer"]
    await core.aclose()
    await other_core.aclose()


async def test_post_persist_append_is_refused_on_a_branch_that_left_the_leaf(
    make_core: Any, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    holder: dict[str, Any] = {}

    async def branch_away(request: LlmRequest) -> None:
        other = await holder["core2"].session("s").open()
        first_user = (await other.read_view()).messages[0]
        graph_node = next(
            n.node_id
            for n in (await store.load_session("s")).nodes  # type: ignore[union-attr]
            if n.message is not None and n.message.id == first_user.id
        )
        await other.branch_to(graph_node)

    observer = Interleaving(ScriptedProvider([reply(OBSERVED), reply(OBSERVED)]), branch_away)
    config = ObservationalMemoryConfig(observation_buffer_tokens=1)
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    core = make_core([reply("answer")], plugins=[memory], store=store)
    holder["core2"] = make_core([], store=store)
    session = await core.session("s").open()
    await session.turn("question " * 10).run()
    await session.wait_maintenance()  # post-persist hooks run in the background

    assert len(observer.inner.requests) == 2  # the observer ran ...
    loaded = await store.load_session("s")
    assert loaded is not None
    assert all(not isinstance(n.payload, PluginPayload) for n in loaded.nodes)  # ... no append
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # refused, not failed


async def test_observations_replace_the_observed_history_and_survive_reopening(
    make_core: Any, tmp_path: Path
) -> None:
    db = tmp_path / "lash.db"
    config = ObservationalMemoryConfig(
        observation_buffer_tokens=50,
        observation_message_tokens=60,
        observation_block_after_tokens=10_000,
        reflection_observation_tokens=10_000,
    )
    observer = ScriptedProvider([reply(OBSERVED)], model="obs")
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    provider = ScriptedProvider([reply("answer one"), reply("answer two"), reply("answer three")])
    core = make_core(provider, plugins=[memory], store=SqliteStore(str(db)))
    session = await core.session("s").open()
    await session.turn("first " + "a" * 200).run()
    await session.wait_maintenance()  # post-persist hooks run in the background
    # after the commit: one buffered observation covering the first user message
    plugin = session.plugin("observational_memory")
    assert isinstance(plugin, ObservationalMemory)
    buffered = plugin.memory_state().buffered_observations
    assert [b.observations.splitlines()[-1] for b in buffered] == [
        "* 🔴 (10:00) User asked about the first topic"
    ]
    first_user_id = (await session.read_view()).messages[0].id
    assert buffered[0].observed_through_message_id == first_user_id
    assert provider.requests[0].messages[0].text.startswith("first ")  # nothing replaced yet

    await session.turn("second").run()
    await session.wait_maintenance()  # post-persist hooks run in the background
    prompt = provider.requests[-1].messages
    assert [m.role for m in prompt] == ["system", "system", "user", "assistant", "user"]
    assert "observation log" in prompt[0].text
    assert "User asked about the first topic" in prompt[1].text
    assert "<current-task>\nAnswer the first topic\n</current-task>" in prompt[1].text
    assert prompt[2].text.startswith("<system-reminder>")
    assert [m.text for m in prompt[3:]] == ["answer one", "second"]  # the observed user turn
    assert all("aaaa" not in m.text for m in prompt)  # ... is gone from the prompt
    assert len(observer.requests) == 1  # activation needed no second observer call
    view = await session.read_view()
    assert [m.text for m in view.messages][1:] == ["answer one", "second", "answer two"]
    report = await session.usage_report()
    assert ("observer", "obs") in {(r.source, r.model) for r in report.by_source_model}
    await core.aclose()

    # a new process: the memory is restored from the graph nodes in the file
    provider2 = ScriptedProvider([reply("answer three")])
    core2 = make_core(provider2, plugins=[memory], store=SqliteStore(str(db)))
    reopened = await core2.session("s").open()
    restored = reopened.plugin("observational_memory")
    assert isinstance(restored, ObservationalMemory)
    active = restored.memory_state().active
    assert active is not None and active.observed_through_message_id == first_user_id
    await reopened.turn("third").run()
    prompt = provider2.requests[-1].messages
    assert "User asked about the first topic" in prompt[1].text
    assert [m.text for m in prompt[3:]] == ["answer one", "second", "answer two", "third"]
    await core2.aclose()


async def test_a_turn_waits_for_the_observer_past_the_block_threshold(
    make_core: Any, tmp_path: Path
) -> None:
    db = tmp_path / "lash.db"
    config = ObservationalMemoryConfig(
        observation_buffer_tokens=0,  # no buffering ahead of need
        observation_message_tokens=60,
        observation_block_after_tokens=60,
    )
    observer = ScriptedProvider([reply(OBSERVED)])
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    provider = ScriptedProvider([reply("answer one"), reply("answer two")])
    store = SqliteStore(str(db))
    core = make_core(provider, plugins=[memory], store=store)
    session = await core.session("s").open()
    await session.turn("first " + "a" * 200).run()
    await session.wait_maintenance()  # post-persist hooks run in the background
    assert observer.requests == []  # below every threshold after the first commit
    await session.turn("second").run()

    assert len(observer.requests) == 1
    prompt = provider.requests[-1].messages
    assert [m.text for m in prompt[3:]] == ["second"]  # everything before it was observed
    loaded = await store.load_session("s")
    assert loaded is not None
    path = SessionGraph(loaded.nodes, loaded.leaf_node_id).active_path()
    labels = [
        n.payload.plugin_type if isinstance(n.payload, PluginPayload) else n.message.role  # type: ignore[union-attr]
        for n in path
    ]
    # the active state was committed before the turn's own messages, on the same path
    assert labels == ["user", "assistant", ACTIVE_STATE_PLUGIN_TYPE, "user", "assistant"]
    assert loaded.head_revision == 3
    await core.aclose()


async def test_reflection_is_buffered_after_commit_and_replaces_a_long_log(
    make_core: Any,
) -> None:
    long_log = "<observations>\n" + "* 🔴 (10:00) detail " * 25 + "\n</observations>"
    condensed = "<observations>\n* 🔴 condensed log\n</observations>"
    observer = ScriptedProvider([reply(long_log), reply(condensed)])
    config = ObservationalMemoryConfig(
        observation_buffer_tokens=50,
        observation_message_tokens=60,
        reflection_observation_tokens=100,
    )
    assert config.reflection_buffer_activation_tokens == 50
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    provider = ScriptedProvider([reply("one"), reply("two"), reply("three")])
    core = make_core(provider, plugins=[memory])
    session = await core.session("s").open()
    await session.turn("first " + "a" * 200).run()  # buffered observation (long)
    await session.wait_maintenance()  # post-persist hooks run in the background
    await session.turn("second").run()  # activated in the prompt; reflection buffered after
    await session.wait_maintenance()  # post-persist hooks run in the background
    plugin = session.plugin("observational_memory")
    assert isinstance(plugin, ObservationalMemory)
    state = plugin.memory_state()
    assert state.active is not None and "detail" in state.active.observations
    assert state.buffered_reflection is not None
    assert state.buffered_reflection.source_state_node_id == state.active.state_node_id
    assert "condense" in (observer.requests[1].system or "")

    await session.turn("third").run()
    assert "condensed log" in provider.requests[-1].messages[1].text
    assert "detail" not in provider.requests[-1].messages[1].text
    assert len(observer.requests) == 2
    active = plugin.memory_state().active
    assert active is not None and active.observations == "* 🔴 condensed log"


async def test_tool_results_never_open_the_raw_tail() -> None:
    """When the observed stretch ends on a tool call, its results stay paired with it."""
    b = GraphBuilder()
    history = [
        user("u1", "go"),
        Message(
            id="a1",
            role="assistant",
            parts=(ToolCallPart(id="c1", name="grep", arguments={}),),
        ),
        Message(
            id="t1",
            role="tool",
            parts=(ToolResultPart(tool_call_id="c1", name="grep", content="found"),),
        ),
        user("a2", "done", role="assistant"),
    ]
    for message in history:
        b._add(MessagePayload(message=message))
    b.plugin(active_state_node(observed_through_message_id="a1", observations="* went looking"))
    memory = ObservationalMemory(provider=ScriptedProvider([]), model="obs")
    memory.bind_session_graph(RecordingAccess(b.graph))
    ctx = PrepareContext(
        session_id="s", turn_id="t", turn_index=1, agent_frame_id="f", context_window=10_000
    )
    prompt = await memory.transform_context(ctx, [*history, user("u2", "and then?")])
    assert [m.id for m in prompt[3:]] == ["a1", "t1", "a2", "u2"]
    assert "* went looking" in prompt[1].text
    # a plain boundary: the tail starts right after the observed message
    b.plugin(active_state_node(observed_through_message_id="t1", observations="* found it"))
    prompt = await memory.transform_context(ctx, [*history, user("u2", "and then?")])
    assert [m.id for m in prompt[3:]] == ["a2", "u2"]


async def test_a_buffered_chunk_the_active_log_already_covers_is_not_merged_again() -> None:
    """A post-persist run raced the prompt's own observation: its chunk (through m1) lands
    after the active state (through m2); activating it would repeat m1's observations and
    move the observed-through mark back."""
    b = GraphBuilder()
    b.message("m1", "first " * 40)
    b.message("m2", "second " * 40, role="assistant")
    b.plugin(active_state_node(observed_through_message_id="m2", observations="* both seen"))
    b.plugin(buffered_observation_node(observed_through_message_id="m1", observations="* m1"))
    b.message("m3", "third " * 40)
    config = ObservationalMemoryConfig(
        observation_buffer_tokens=0,
        observation_message_tokens=1,
        observation_block_after_tokens=10_000,
    )
    memory = ObservationalMemory(config, provider=ScriptedProvider([]), model="obs")
    access = RecordingAccess(b.graph)
    memory.bind_session_graph(access)
    ctx = PrepareContext(
        session_id="s", turn_id="t", turn_index=1, agent_frame_id="f", context_window=10_000
    )
    await memory.transform_context(ctx, [user("m3", "third " * 40)])
    assert access.requests == []  # nothing activated
    active = memory.memory_state().active
    assert active is not None
    assert active.observed_through_message_id == "m2" and active.observations == "* both seen"


def test_should_run_async_maintenance_follows_the_buffer_interval() -> None:
    b = GraphBuilder()
    b.message("m1", "x" * 64)
    config = ObservationalMemoryConfig(observation_buffer_tokens=10)
    assert should_run_async_maintenance(config, b.graph)
    b.plugin(buffered_observation_node(observed_through_message_id="m1", observations="seen"))
    assert not should_run_async_maintenance(config, b.graph)  # buffered through the end
    assert not should_run_async_maintenance(
        ObservationalMemoryConfig(observation_buffer_tokens=0), GraphBuilder().graph
    )


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        ObservationalMemoryConfig(observation_buffer_tokens=-1)
    with pytest.raises(ValueError):
        ObservationalMemoryConfig(reflection_buffer_activation_bps=10_001)
    assert ObservationalMemoryConfig().observation_message_tokens == 30_000


async def test_without_a_bound_session_the_prompt_is_untouched() -> None:
    memory = ObservationalMemory()
    messages = [user("u", "hi")]
    ctx = PrepareContext(
        session_id="s", turn_id="t", turn_index=0, agent_frame_id="f", context_window=1000
    )
    assert await memory.transform_context(ctx, messages) == messages


# --- helpers ------------------------------------------------------------------------------


class Interleaving:
    """Runs ``before`` (once) when the first request arrives, then answers from ``inner``."""

    def __init__(
        self, inner: ScriptedProvider, before: Callable[[LlmRequest], Awaitable[None]]
    ) -> None:
        self.inner = inner
        self._before: Callable[[LlmRequest], Awaitable[None]] | None = before

    @property
    def kind(self) -> str:
        return self.inner.kind

    def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        async def events() -> AsyncIterator[StreamEvent]:
            before, self._before = self._before, None
            if before is not None:
                await before(request)
            async for event in self.inner.stream(request):
                yield event

        return events()

    async def aclose(self) -> None:
        await self.inner.aclose()


class FailingCommits(MemoryStore):
    """A store whose turn commits fail (the turn never becomes durable)."""

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        if commit.turn_commit is not None:
            raise StoreError(StoreErrorKind.BACKEND, "disk on fire")
        return await super().commit(commit)


async def test_maintenance_under_a_held_lease_keeps_using_it(make_core: Any) -> None:
    """``process_pending`` keeps the lease across turns; the background maintenance appends
    once it is free (under the session lock, with a lease of its own), and the next claimed
    turn still commits after the appended nodes."""
    store = MemoryStore()
    observer = ScriptedProvider([reply(OBSERVED)] * 4)
    config = ObservationalMemoryConfig(observation_buffer_tokens=1)
    memory = functools.partial(ObservationalMemory, config, provider=observer, model="obs")
    core = make_core([reply("one"), reply("two")], plugins=[memory], store=store)
    session = await core.session("s").open()
    await session.enqueue("first")
    await session.process_pending()
    await session.wait_maintenance()  # post-persist hooks run in the background
    await session.enqueue("second")
    results = await session.process_pending()
    await session.wait_maintenance()  # post-persist hooks run in the background
    assert [r.outcome.reason for r in results] == ["assistant_message"]
    loaded = await store.load_session("s")
    assert loaded is not None
    path = SessionGraph(loaded.nodes, loaded.leaf_node_id).active_path()
    kinds = ["plugin" if isinstance(n.payload, PluginPayload) else "message" for n in path]
    assert (
        kinds == ["message", "message", "plugin", "plugin", "message", "message"] + ["plugin"] * 2
    )
    lease = await store.get_lease("s")
    assert lease is None or lease.lease_token == ""  # released once the queue drained
