"""Agent frames, compaction, plugin state, park/resume/close/delete and store-less sessions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import lash
from lash.runtime.plugins import (
    CompactionContext,
    FinalizeContext,
    PrepareContext,
    SwitchAgentFrame,
)
from lash.stores import MemoryStore
from lash.testing import ScriptedProvider, reply
from lash.types import LlmRequest, Message, TextPart


class SwitchOnce(lash.Plugin):
    id = "switcher"

    async def before_llm_call(self, ctx: PrepareContext, request: LlmRequest) -> Any:
        if ":agent-frame:" not in ctx.turn_id:
            return SwitchAgentFrame(frame_id=f"{ctx.session_id}:frame:worker", task="do the task")
        return None


async def test_agent_frame_switch_continues_as_one_logical_turn(make_core: Any) -> None:
    provider = ScriptedProvider([reply("task done in the new frame")])
    store = MemoryStore()
    core = make_core(provider, plugins=[SwitchOnce], store=store)
    session = await core.session("s").open()
    result = await session.turn("delegate this").turn_id("root").run()
    assert result.turn_id == "root:agent-frame:1"
    assert result.assistant_text == "task done in the new frame"
    # the new frame's prompt holds only its own task, not the old frame's messages
    assert [m.text for m in provider.requests[0].messages] == ["do the task"]
    view = await session.read_view()
    assert view.current_agent_frame_id == "s:frame:worker"
    assert [f.reason for f in view.agent_frames] == ["initial", "continue_as"]
    assert [m.text for m in view.messages] == [
        "delegate this",
        "do the task",
        "task done in the new frame",
    ]
    loaded = await store.load_session("s")
    assert loaded is not None and loaded.head_revision == 2  # one commit per physical turn
    lease = await store.get_lease("s")
    assert lease is not None and not lease.is_live(core.config.clock.now_ms())


async def test_agent_frame_switch_limit(make_core: Any) -> None:
    class AlwaysSwitch(lash.Plugin):
        id = "loop"

        async def before_llm_call(self, ctx: PrepareContext, request: LlmRequest) -> Any:
            n = ctx.turn_id.count(":agent-frame:")
            return SwitchAgentFrame(frame_id=f"f{ctx.turn_id}-{n}", task="again")

    provider = ScriptedProvider([])
    core = make_core(provider, plugins=[AlwaysSwitch])
    session = await core.session("s").open()
    result = await session.turn("go").turn_id("r").run()
    assert result.outcome.reason == "runtime_error"
    assert result.issues[0].code == "agent_frame_switch_limit"
    assert provider.requests == []


class Summariser(lash.Plugin):
    id = "summariser"

    async def compact_context(self, ctx: CompactionContext) -> Sequence[Message]:
        text = " / ".join(m.text for m in ctx.messages if m.text)
        return [Message(id="summary", role="assistant", parts=(TextPart(text=f"Summary: {text}"),))]


async def test_compaction_opens_a_frame_and_never_rewrites_history(make_core: Any) -> None:
    provider = ScriptedProvider([reply("one"), reply("two")])
    core = make_core(provider, plugins=[Summariser])
    session = await core.session("s").open()
    await session.turn("first").run()
    frame = await session.compact()
    assert frame is not None and ":frame:compaction:" in frame
    await session.turn("second").run()
    prompt = [m.text for m in provider.requests[1].messages]
    assert prompt == ["Summary: first / one", "second"]
    view = await session.read_view()
    assert [m.text for m in view.messages] == [
        "first",
        "one",
        "Summary: first / one",
        "second",
        "two",
    ]
    assert [f.reason for f in view.agent_frames] == ["initial", "compaction"]


async def test_compact_without_a_compactor_is_a_no_op(make_core: Any) -> None:
    core = make_core([])
    session = await core.session("s").open()
    assert await session.compact() is None


class Counter(lash.Plugin):
    id = "counter"

    async def finalize_turn(self, ctx: FinalizeContext) -> Sequence[Any]:
        self.state["turns"] = int(self.state.get("turns", 0)) + 1
        return ()


async def test_plugin_state_is_committed_and_restored(make_core: Any) -> None:
    store = MemoryStore()
    core = make_core([reply("a"), reply("b")], plugins=[Counter], store=store)
    s1 = await core.session("s").open()
    await s1.turn("x").run()
    await s1.close()
    s2 = await core.session("s").open()
    await s2.turn("y").run()
    loaded = await store.load_session("s")
    assert loaded is not None
    assert loaded.checkpoint.plugin_state["counter"] == {"turns": 2}


async def test_park_resume_close_and_delete(make_core: Any) -> None:
    store = MemoryStore()
    core = make_core([reply("a"), reply("b"), reply("c")], store=store)
    session = await core.session("s").open()
    await session.turn("x").run()
    parked = await session.park()
    with pytest.raises(lash.EmbedError):
        session.turn("after park")
    resumed = await core.resume(parked)
    await resumed.turn("y").run()
    assert [m.text for m in (await resumed.read_view()).messages] == ["x", "a", "y", "b"]
    await resumed.close()
    await core.delete_session("s")
    assert await store.load_session("s") is None
    fresh = await core.session("s").open()
    await fresh.turn("z").run()
    assert [m.text for m in (await fresh.read_view()).messages] == ["z", "c"]
    lease = await store.get_lease("s")
    assert lease is not None and lease.fencing_token == 1


async def test_store_less_session_keeps_history_in_memory() -> None:
    provider = ScriptedProvider([reply("a"), reply("b")])
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .without_store()
        .effect_host(lash.InlineEffectHost())
        .build()
    )
    session = await core.session("s").open()
    await session.turn("x").run()
    await session.turn("y").run()
    assert [m.text for m in provider.requests[1].messages] == ["x", "a", "y"]
    assert (await session.read_view()).revision == 2


async def test_usage_report_groups_committed_usage(make_core: Any) -> None:
    core = make_core([reply("a"), reply("b")])
    session = await core.session("s").open()
    await session.turn("x").run()
    await session.turn("y").run()
    report = await session.usage_report()
    assert report.usage.input_tokens == 20 and report.usage.output_tokens == 10
    assert [(r.source, r.model) for r in report.by_source_model] == [("turn", "test-model")]
    assert report.total_tokens == 30


def test_builder_requires_explicit_wiring() -> None:
    provider = ScriptedProvider([])
    with pytest.raises(lash.EmbedError) as err:
        lash.LashCore.builder().provider(provider).build()
    assert err.value.kind == "missing_model_spec"
    with pytest.raises(lash.EmbedError) as err:
        lash.LashCore.builder().provider(provider).model(lash.ModelSpec("m")).build()
    assert err.value.kind == "missing_effect_host"
    with pytest.raises(lash.EmbedError) as err:
        (
            lash.LashCore.builder()
            .provider(provider)
            .model(lash.ModelSpec("m"))
            .effect_host(lash.InlineEffectHost())
            .build()
        )
    assert err.value.kind == "missing_session_store"


async def test_branch_and_retention_never_break_the_active_path(make_core: Any) -> None:
    store = MemoryStore()
    core = make_core([reply("one"), reply("two"), reply("two again")], store=store)
    session = await core.session("s").open()
    await session.turn("first").run()
    loaded = await store.load_session("s")
    assert loaded is not None
    branch_point = loaded.leaf_node_id
    assert branch_point is not None
    await session.turn("second").run()
    await session.branch_to(branch_point)
    await session.turn("second, rephrased").run()
    view = await session.read_view()
    assert [m.text for m in view.messages] == ["first", "one", "second, rephrased", "two again"]
    full = await store.load_session("s")
    assert full is not None and len(full.nodes) == 6
    pruned = await session.prune_off_path(older_than_ms=core.config.clock.now_ms() + 1)
    assert pruned == 2  # the abandoned "second" exchange
    report = await core.vacuum()
    assert report.removed_node_count == 2
    after = await store.load_session("s")
    assert after is not None and len(after.nodes) == 4
    view = await session.read_view()
    assert [m.text for m in view.messages] == ["first", "one", "second, rephrased", "two again"]
    assert await session.prune_off_path(older_than_ms=0) == 0


class Noter(lash.Plugin):
    id = "noter"

    async def prepare_turn(self, ctx: PrepareContext) -> Sequence[Any]:
        self.state["seen"] = [*self.state.get("seen", []), ctx.turn_id]
        return ()

    async def finalize_turn(self, ctx: FinalizeContext) -> Sequence[Any]:
        if ctx.turn_id == "boom":
            raise RuntimeError("finalize failed")
        return ()


async def test_plugin_state_rolls_back_on_failure_and_reloads_after_other_writers(
    make_core: Any,
) -> None:
    store = MemoryStore()
    core = make_core([reply("a"), reply("b"), reply("c")], plugins=[Noter], store=store)
    one = await core.session("s").open()
    two = await core.session("s").open()
    await one.turn("x").turn_id("t1").run()
    with pytest.raises(lash.LashRuntimeError):
        await one.turn("y").turn_id("boom").run()
    assert one.plugin("noter").state == {"seen": ["t1"]}  # the failed turn left no trace
    await two.turn("z").turn_id("t2").run()  # another writer commits (it reloads first)
    await one.turn("w").turn_id("t3").run()  # this handle reloads state written by `two`
    loaded = await store.load_session("s")
    assert loaded is not None
    assert loaded.checkpoint.plugin_state["noter"] == {"seen": ["t1", "t2", "t3"]}


async def test_open_loads_only_the_active_path(tmp_path: Any) -> None:
    """A session whose history has an abandoned branch opens with only its active path."""
    from lash.stores import SqliteStore

    steps = [reply(f"r{i}") for i in range(40)]
    store = SqliteStore(tmp_path / "s.db")
    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider(steps))
        .model(lash.ModelSpec("m"))
        .store(store)
        .effect_host(lash.InlineEffectHost())
        .build()
    )
    async with core:
        session = await core.session("s").open()
        for i in range(10):
            await session.turn(f"q{i}").run()
        loaded = await store.load_session("s")
        assert loaded is not None
        fork = loaded.nodes[3].node_id  # after the second exchange
        for i in range(10):
            await session.turn(f"abandoned {i}").run()
        await session.branch_to(fork)
        for i in range(5):
            await session.turn(f"kept {i}").run()
        reopened = await core.session("s").open()
        resident = reopened._state.graph
        full = await store.load_session("s")
        assert full is not None and len(full.nodes) == 50
        assert len(resident) == 4 + 10  # two exchanges before the fork + five after
        view = await reopened.read_view()
        assert [m.text for m in view.messages][:4] == ["q0", "r0", "q1", "r1"]
        assert len(view.messages) == 14
