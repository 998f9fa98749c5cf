"""Model calls plugins make inside a turn but outside a tool attempt (observational memory's
observer before a prompt) cross the turn's effect host as ``direct_completion`` effects: a
stable key, the request as envelope. On the Restate host a redriven turn replays the recorded
answer (or the recorded failure) instead of asking the observer model again, whether or not
the first run got to append the memory it built, and commits what the first run would have."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import msgspec
import pytest

import lash
from lash.durable.restate import RestateEffectHost, run_durable_turn
from lash.plugins import ObservationalMemory, ObservationalMemoryConfig
from lash.plugins._memory_state import PREPARED_IN_TURN
from lash.plugins.memory import MEMORY_MAINTENANCE_FAILED_EVENT
from lash.runtime.effect_host import DIRECT_COMPLETION_EFFECT, DirectCompletionOutcome
from lash.stores import MemoryStore, SqliteStore
from lash.stores.liveness import opaque_owner
from lash.testing import ScriptedProvider, provider_error, reply
from lash.testing.effect_hosts import RecordingEffectHost
from lash.types import LlmRequest, PluginPayload, PluginRuntime, SessionGraph, TurnResult

from ..durable.fake_journal import Crash, FakeJournal

OBSERVED = (
    "<observations>\n* 🔴 (10:00) User asked about the first topic\n</observations>\n"
    "<current-task>\nAnswer the first topic\n</current-task>"
)
BLOCKING = ObservationalMemoryConfig(
    observation_buffer_tokens=0,  # nothing is observed ahead of need
    observation_message_tokens=60,
    observation_block_after_tokens=60,
)
FIRST = "first " + "a" * 200
OBSERVER_KEY = "s1:t2:2:plugin:observational_memory:direct_completion:observer:1"


def _memory(observer: ScriptedProvider) -> Any:
    return functools.partial(ObservationalMemory, BLOCKING, provider=observer, model="obs")


def _core(store: Any, host: Any, provider: ScriptedProvider, observer: ScriptedProvider) -> Any:
    return (
        lash.LashCore.builder()
        .store(store)
        .effect_host(host)
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .plugins([_memory(observer)])
        .build()
    )


async def _two_turns(host: RecordingEffectHost, observer: ScriptedProvider) -> ScriptedProvider:
    provider = ScriptedProvider([reply("one"), reply("two")])
    async with _core(MemoryStore(), host, provider, observer) as core:
        session = await core.session("s1").open()
        await session.turn(FIRST).turn_id("t1").run()
        result = await session.turn("second").turn_id("t2").run()
        assert result.assistant_text == "two"
        await session.close()
    return provider


async def test_the_observer_call_crosses_the_host_as_a_direct_completion() -> None:
    host = RecordingEffectHost()
    observer = ScriptedProvider([reply(OBSERVED)])
    provider = await _two_turns(host, observer)
    direct = [e for e in host.effects if e.kind == DIRECT_COMPLETION_EFFECT]
    assert [e.replay_key for e in direct] == [OBSERVER_KEY]
    envelope = direct[0].envelope
    assert isinstance(envelope, LlmRequest)
    assert envelope == observer.requests[0]  # the request the observer model was sent
    assert envelope.model == "obs" and "first" in envelope.messages[0].text
    # the observer ran before the turn's first model call, whose prompt carries the memory
    kinds = [e.kind for e in host.effects]
    assert kinds.index(DIRECT_COMPLETION_EFFECT) < len(kinds) - 1
    assert host.effects[-1].kind == "llm_call"
    assert "User asked about the first topic" in provider.requests[-1].messages[1].text

    # the same turn run again (a fresh store, the same history) crosses the same key
    again = RecordingEffectHost()
    await _two_turns(again, ScriptedProvider([reply(OBSERVED)]))
    assert [e.replay_key for e in again.effects] == [e.replay_key for e in host.effects]
    assert [e.envelope for e in again.effects if e.kind == DIRECT_COMPLETION_EFFECT] == [envelope]


async def test_an_inline_turn_leaves_no_turn_mark_on_the_memory() -> None:
    """The turn-id mark that lets a durable redrive replay its own appends is durable-only."""
    store = MemoryStore()
    observer = ScriptedProvider([reply(OBSERVED)])
    provider = ScriptedProvider([reply("one"), reply("two")])
    async with _core(store, RecordingEffectHost(), provider, observer) as core:
        session = await core.session("s1").open()
        await session.turn(FIRST).turn_id("t1").run()
        await session.turn("second").turn_id("t2").run()
        plugin = session.plugin("observational_memory")
        assert isinstance(plugin, ObservationalMemory)
        active = plugin.memory_state().active
        assert active is not None and "first topic" in active.observations
        graph = plugin._access.graph() if plugin._access is not None else None
        assert graph is not None
        bodies = [n.payload.body for n in graph.nodes() if isinstance(n.payload, PluginPayload)]
        assert bodies and all(PREPARED_IN_TURN not in b for b in bodies)
        await session.close()


# --- the Restate host, a redriven turn ----------------------------------------------------


class CrashingMemory(ObservationalMemory):
    """Dies (like the worker would) right before its first prompt-time append, when armed."""

    armed = False

    async def _append(self, access: Any, graph: Any, nodes: Any, usage: Any = ()) -> bool:
        if CrashingMemory.armed:
            CrashingMemory.armed = False
            raise Crash("before the memory append")
        return await super()._append(access, graph, nodes, usage)


def _durable_core(db: Path, provider: ScriptedProvider, observer: ScriptedProvider) -> Any:
    memory = functools.partial(CrashingMemory, BLOCKING, provider=observer, model="obs")
    return (
        lash.LashCore.builder()
        .store(SqliteStore(db))
        .effect_host(lash.InlineEffectHost())
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .plugins([memory])
        .build()
    )


class Redrive:
    """Turn t1 committed through its own journal; turn t2 attempted over ``journal``."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "s.db"
        self.journal = FakeJournal()
        self.owner = opaque_owner("restate:wf-memory", "restate")

    async def run(
        self, turn_id: str, text: str, provider: ScriptedProvider, observer: ScriptedProvider
    ) -> tuple[dict[str, Any], RestateEffectHost]:
        journal = self.journal if turn_id == "t2" else FakeJournal()
        host = RestateEffectHost(journal.context())
        async with _durable_core(self.db, provider, observer) as core:
            data = await run_durable_turn(
                journal,
                core,
                session_id="s1",
                turn_id=turn_id,
                turn_input=text,
                owner=self.owner,
                host=host,
            )
        return data, host

    async def setup(self) -> None:
        await self.run("t1", FIRST, ScriptedProvider([reply("one")]), ScriptedProvider([]))

    async def memory_nodes(self) -> list[Any]:
        async with SqliteStore(self.db) as store:
            loaded = await store.load_session("s1")
        assert loaded is not None
        graph = SessionGraph(loaded.nodes, leaf_node_id=loaded.leaf_node_id)
        return [n for n in graph.active_path() if isinstance(n.payload, PluginPayload)]


async def test_a_redrive_after_the_memory_append_replays_the_observer(tmp_path: Path) -> None:
    run = Redrive(tmp_path)
    await run.setup()
    # positions: 0 start, 1 the observer, 2 the turn's model call: the worker dies there,
    # after the observer's answer was journaled and the memory it built appended
    run.journal.crash_at = 2
    first_observer = ScriptedProvider([reply(OBSERVED)])
    with pytest.raises(Crash):
        await run.run("t2", "second", ScriptedProvider([reply("lost")]), first_observer)
    assert len(first_observer.requests) == 1
    recorded = msgspec.json.decode(run.journal.entries[1][1])
    assert recorded["kind"] == DIRECT_COMPLETION_EFFECT and recorded["key"] == OBSERVER_KEY
    outcome = msgspec.convert(recorded["outcome"], type=DirectCompletionOutcome)
    assert outcome.response is not None and outcome.response.text == OBSERVED
    nodes = await run.memory_nodes()
    assert len(nodes) == 1 and nodes[0].payload.body[PREPARED_IN_TURN] == "t2"

    run.journal.crash_at = None
    observer = ScriptedProvider([reply("<observations>\n* something else\n</observations>")])
    provider = ScriptedProvider([reply("two")])
    data, host = await run.run("t2", "second", provider, observer)
    result = msgspec.convert(data, type=TurnResult)
    assert result.outcome.kind == "finished" and result.assistant_text == "two"
    assert observer.requests == []  # replayed from the journal: the observer was not asked
    assert host.mismatch is None and OBSERVER_KEY not in host.executed
    assert "User asked about the first topic" in provider.requests[0].messages[1].text
    nodes = await run.memory_nodes()
    assert len(nodes) == 1  # the first run's append stands; nothing was appended twice

    # and once more after the commit: the whole journal replays, nothing runs, same result
    again_observer, again_provider = ScriptedProvider([]), ScriptedProvider([])
    replayed, host = await run.run("t2", "second", again_provider, again_observer)
    assert again_observer.requests == [] and again_provider.requests == []
    assert host.mismatch is None and host.executed == []
    again = msgspec.convert(replayed, type=TurnResult)
    assert again.outcome == result.outcome and again.assistant_text == "two"
    assert len(await run.memory_nodes()) == 1
    assert "first topic" in nodes[0].payload.body["observations"]


async def test_a_redrive_before_the_append_replays_the_observer_and_appends(
    tmp_path: Path,
) -> None:
    run = Redrive(tmp_path)
    await run.setup()
    CrashingMemory.armed = True
    first_observer = ScriptedProvider([reply(OBSERVED)])
    with pytest.raises(Crash):
        await run.run("t2", "second", ScriptedProvider([]), first_observer)
    assert len(first_observer.requests) == 1 and len(run.journal.entries) == 2
    assert await run.memory_nodes() == []  # died before the append

    observer = ScriptedProvider([reply("<observations>\n* something else\n</observations>")])
    provider = ScriptedProvider([reply("two")])
    data, host = await run.run("t2", "second", provider, observer)
    result = msgspec.convert(data, type=TurnResult)
    assert result.assistant_text == "two" and observer.requests == []
    assert host.mismatch is None
    assert "User asked about the first topic" in provider.requests[0].messages[1].text
    nodes = await run.memory_nodes()
    assert len(nodes) == 1 and "first topic" in nodes[0].payload.body["observations"]


async def test_a_recorded_observer_failure_degrades_the_redrive_the_same_way(
    tmp_path: Path,
) -> None:
    """A failure is recorded as data: the redrive does not ask the (now healthy) observer,
    builds the same raw prompt, and its model call replays without an envelope mismatch."""
    run = Redrive(tmp_path)
    await run.setup()
    down = ScriptedProvider([provider_error("http", message="observer is down")])
    first_provider = ScriptedProvider([reply("two")])
    first, _ = await run.run("t2", "second", first_provider, down)
    recorded = msgspec.json.decode(run.journal.entries[1][1])
    assert recorded["kind"] == DIRECT_COMPLETION_EFFECT
    assert recorded["outcome"]["error"] == "observer is down"
    raw_prompt = first_provider.requests[0]
    assert "User asked" not in str(raw_prompt.messages)

    # the worker died after the commit, before Restate heard the handler end: the redrive
    # replays the whole journal, the failure included, against the healthy observer
    healthy = ScriptedProvider([reply(OBSERVED)])
    provider = ScriptedProvider([])
    data, host = await run.run("t2", "second", provider, healthy)
    assert healthy.requests == [] and provider.requests == []  # both replayed
    assert host.mismatch is None
    replayed = msgspec.convert(data, type=TurnResult)
    committed = msgspec.convert(first, type=TurnResult)
    assert replayed.outcome == committed.outcome and replayed.assistant_text == "two"
    assert (replayed.head_revision, replayed.turn_index) == (committed.head_revision, 2)
    assert await run.memory_nodes() == []


async def test_an_inline_observer_failure_still_degrades_and_is_published() -> None:
    host = RecordingEffectHost()
    down = ScriptedProvider([provider_error("http", message="observer is down")])
    provider = ScriptedProvider([reply("one"), reply("two")])
    events: list[Any] = []

    async def sink(activity: lash.TurnActivity) -> None:
        if isinstance(activity.event, PluginRuntime):
            events.append(activity.event.event)

    async with _core(MemoryStore(), host, provider, down) as core:
        session = await core.session("s1").open()
        await session.turn(FIRST).turn_id("t1").run()
        result = await session.turn("second").turn_id("t2").on_event(sink).run()
        await session.close()
    assert result.assistant_text == "two"
    assert [e["payload"]["error"] for e in events if e["name"] == MEMORY_MAINTENANCE_FAILED_EVENT]
    assert [e.replay_key for e in host.effects if e.kind == DIRECT_COMPLETION_EFFECT] == [
        OBSERVER_KEY
    ]
