"""Every seed error code, provoked through the public API (or the facade for facade codes)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

import lash
from lash.errors import DurableStoreFacet, RuntimeErrorCode, StoreError, StoreErrorKind
from lash.runtime import final_turn
from lash.runtime.plugins import (
    AbortTurn,
    CheckpointContext,
    FinalizeContext,
    PluginSessionContext,
    PrepareContext,
)
from lash.runtime.processes import ensure_stable_process_id
from lash.stores import DurabilityTier, MemoryAttachmentStore, MemoryProcessEnvStore, MemoryStore
from lash.testing import ScriptedProvider, reply, stall, tool_call
from lash.types import LeaseFence, LlmRequest, Message

COVERED: set[str] = set()


def covers(code: RuntimeErrorCode | str) -> Any:
    COVERED.add(str(code))

    def mark(fn: Any) -> Any:
        return fn

    return mark


async def _raises(code: RuntimeErrorCode | str, awaitable: Any) -> lash.LashRuntimeError:
    with pytest.raises(lash.LashRuntimeError) as err:
        await awaitable
    assert err.value.code == RuntimeErrorCode.parse(code), err.value
    return err.value


class DurableHost(lash.InlineEffectHost):
    """An inline host that declares itself durable (the tier check must fire first)."""

    @property
    def tier(self) -> DurabilityTier:
        return DurabilityTier.DURABLE


class DurableAttachments(MemoryAttachmentStore):
    @property
    def tier(self) -> DurabilityTier:
        return DurabilityTier.DURABLE


class DurableEnvs(MemoryProcessEnvStore):
    @property
    def tier(self) -> DurabilityTier:
        return DurabilityTier.DURABLE


@covers(RuntimeErrorCode.MISSING_EXECUTION_SCOPE_ID)
async def test_missing_execution_scope_id(make_core: Any) -> None:
    core = make_core([reply("x")])
    with pytest.raises(lash.LashRuntimeError) as err:
        core.session("   ")
    assert err.value.code == RuntimeErrorCode.MISSING_EXECUTION_SCOPE_ID
    session = await core.session("s").open()
    await _raises(RuntimeErrorCode.MISSING_EXECUTION_SCOPE_ID, session.turn("x").turn_id(" ").run())
    await _raises(RuntimeErrorCode.MISSING_EXECUTION_SCOPE_ID, session.request_turn_cancel("", "r"))


@covers(RuntimeErrorCode.EXECUTION_SCOPE_TURN_ID_MISMATCH)
async def test_execution_scope_turn_id_mismatch(make_core: Any) -> None:
    provider = ScriptedProvider([reply("x")])
    core = make_core(provider)
    session = await core.session("s").open()
    turn = session.turn(lash.TurnInput.text("hi", trace_turn_id="trace-a")).turn_id("scope-b")
    await _raises(RuntimeErrorCode.EXECUTION_SCOPE_TURN_ID_MISMATCH, turn.run())
    assert provider.requests == []


@covers(RuntimeErrorCode.SESSION_EXECUTION_BUSY)
async def test_session_execution_busy(make_core: Any) -> None:
    core = make_core([stall(), reply("x")])
    a = await core.session("s").open()
    b = await core.session("s").open()
    handle = a.turn("hold").start()
    await asyncio.sleep(0.02)
    err = await _raises(RuntimeErrorCode.SESSION_EXECUTION_BUSY, b.turn("also").run())
    assert err.is_retryable
    await _raises(RuntimeErrorCode.SESSION_EXECUTION_BUSY, b.process_pending())
    await handle.cancel()
    await handle.result()


@covers(RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST)
async def test_session_execution_lease_lost(make_core: Any) -> None:
    class Expiring(MemoryStore):
        async def renew_lease(self, fence: LeaseFence, ttl_ms: int) -> Any:
            raise StoreError(StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED, "expired")

    core = make_core(
        [stall()], store=Expiring(), lease_timings=lash.LeaseTimings(ttl_s=0.03, renew_s=0.01)
    )
    session = await core.session("s").open()
    err = await _raises(RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST, session.turn("x").run())
    assert err.is_retryable


@covers(RuntimeErrorCode.MISSING_PROCESS_EXECUTION_ID)
def test_missing_process_execution_id() -> None:
    assert ensure_stable_process_id("proc-1") == "proc-1"
    for bad in ("", "   ", None):
        with pytest.raises(lash.LashRuntimeError) as err:
            ensure_stable_process_id(bad)
        assert err.value.code == RuntimeErrorCode.MISSING_PROCESS_EXECUTION_ID
        assert err.value.message == "process execution requires a non-empty persisted process id"


# The turn-scope check covers the three facets a turn wires; the process registry and the
# trigger store are checked by the process worker, which a later subsystem adds: their codes
# are provoked through the facade constructor that worker will call.
for _facet in DurableStoreFacet:
    COVERED.add(_facet.code)


def test_durable_store_required_codes_for_every_facet() -> None:
    for facet in DurableStoreFacet:
        err = lash.LashRuntimeError.durable_store_required(facet)
        assert err.code == RuntimeErrorCode.durable_store_required(facet)
        assert lash.LashRuntimeError.from_dict(err.to_dict()).code.facet is facet


@pytest.mark.parametrize(
    ("attachments", "envs", "facet"),
    [
        (None, None, DurableStoreFacet.ATTACHMENT_STORE),
        (DurableAttachments, None, DurableStoreFacet.PROCESS_ENV_STORE),
        (DurableAttachments, DurableEnvs, DurableStoreFacet.SESSION_STORE),
    ],
)
async def test_durable_host_requires_durable_facets_before_any_model_call(
    attachments: Any, envs: Any, facet: DurableStoreFacet
) -> None:
    provider = ScriptedProvider([reply("never")])
    builder = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .store(MemoryStore())
        .effect_host(DurableHost())
    )
    if attachments is not None:
        builder.attachment_store(attachments())
    if envs is not None:
        builder.process_env_store(envs())
    core = builder.build()
    session = await core.session("s").open()
    err = await _raises(RuntimeErrorCode.durable_store_required(facet), session.turn("hi").run())
    assert str(err.code) == f"durable_store_required:{facet.value}"
    assert err.message == f"durable effect hosts require a durable {facet.label}"
    assert err.code.is_terminal
    assert provider.requests == []


@covers(RuntimeErrorCode.STORE_COMMIT_FAILED)
async def test_store_commit_failed(make_core: Any) -> None:
    core = make_core([])
    session = await core.session("s").open()
    await session.enqueue("a", source_key="k")
    await _raises(RuntimeErrorCode.STORE_COMMIT_FAILED, session.enqueue("b", source_key="k"))
    storeless = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([]))
        .model(lash.ModelSpec("m"))
        .without_store()
        .effect_host(lash.InlineEffectHost())
        .build()
    )
    s2 = await storeless.session("s").open()
    err = await _raises(RuntimeErrorCode.STORE_COMMIT_FAILED, s2.enqueue("x"))
    assert "persistent runtime store" in err.message


@covers(RuntimeErrorCode.PLUGIN_SESSION_MANAGER)
async def test_plugin_session_manager(make_core: Any) -> None:
    class Broken(lash.Plugin):
        id = "broken"

        async def open_session(self, ctx: PluginSessionContext) -> None:
            raise RuntimeError("cannot build session services")

    core = make_core([], plugins=[Broken])
    await _raises(RuntimeErrorCode.PLUGIN_SESSION_MANAGER, core.session("s").open())


@covers(RuntimeErrorCode.PLUGIN_FINALIZE_TURN)
async def test_plugin_finalize_turn_commits_nothing(make_core: Any) -> None:
    class Failing(lash.Plugin):
        id = "failing"

        async def finalize_turn(self, ctx: FinalizeContext) -> Sequence[Any]:
            raise RuntimeError("after-turn hook broke")

    class Aborting(lash.Plugin):
        id = "aborting"

        async def finalize_turn(self, ctx: FinalizeContext) -> Sequence[Any]:
            return [AbortTurn(code="too_late")]

    for plugin in (Failing, Aborting):
        store = MemoryStore()
        core = make_core([reply("x")], plugins=[plugin], store=store)
        session = await core.session("s").open()
        await _raises(RuntimeErrorCode.PLUGIN_FINALIZE_TURN, session.turn("hi").run())
        assert await store.load_session("s") is None
        lease = await store.get_lease("s")
        assert lease is not None and not lease.is_live(core.config.clock.now_ms())


@covers(RuntimeErrorCode.PLUGIN_CHECKPOINT)
async def test_plugin_checkpoint_commits_runtime_error(make_core: Any) -> None:
    class Failing(lash.Plugin):
        id = "failing"

        async def checkpoint(self, ctx: CheckpointContext) -> Sequence[Any]:
            raise RuntimeError("checkpoint hook broke")

    core = make_core([reply("x")], plugins=[Failing])
    session = await core.session("s").open()
    result = await session.turn("hi").run()
    assert result.outcome.reason == "runtime_error"
    assert result.issues[-1].code == str(RuntimeErrorCode.PLUGIN_CHECKPOINT)


async def test_plugin_checkpoint_abort_carries_the_plugin_code(make_core: Any) -> None:
    class Abort(lash.Plugin):
        id = "abort"

        async def checkpoint(self, ctx: CheckpointContext) -> Sequence[Any]:
            return [AbortTurn(code="plugin_defined_abort", message="stop here")]

    core = make_core([reply("x")], plugins=[Abort])
    session = await core.session("s").open()
    result = await session.turn("hi").run()
    assert result.outcome.reason == "runtime_error"
    assert result.issues[-1].code == "plugin_defined_abort"
    assert not RuntimeErrorCode.parse("plugin_defined_abort").is_known


@covers(RuntimeErrorCode.PLUGIN_PREPARE_TURN)
async def test_plugin_prepare_turn(make_core: Any) -> None:
    class Failing(lash.Plugin):
        id = "failing"

        async def prepare_turn(self, ctx: PrepareContext) -> Sequence[Any]:
            raise RuntimeError("before-turn hook broke")

    store = MemoryStore()
    provider = ScriptedProvider([reply("x")])
    core = make_core(provider, plugins=[Failing], store=store)
    session = await core.session("s").open()
    await _raises(RuntimeErrorCode.PLUGIN_PREPARE_TURN, session.turn("hi").run())
    assert await store.load_session("s") is None
    assert provider.requests == []


async def test_plugin_prepare_abort_commits_plugin_abort(make_core: Any) -> None:
    class Abort(lash.Plugin):
        id = "guard"

        async def prepare_turn(self, ctx: PrepareContext) -> Sequence[Any]:
            return [AbortTurn(code="quota_exceeded", message="no budget left")]

    provider = ScriptedProvider([reply("x")])
    core = make_core(provider, plugins=[Abort])
    session = await core.session("s").open()
    result = await session.turn("hi").run()
    assert result.outcome.reason == "plugin_abort"
    assert result.issues[0].kind == "plugin" and result.issues[0].code == "quota_exceeded"
    assert provider.requests == []
    assert result.head_revision == 1


@covers(RuntimeErrorCode.CONTEXT_PREPARE_TURN)
async def test_context_prepare_turn(make_core: Any) -> None:
    class Failing(lash.Plugin):
        id = "history"

        async def transform_context(
            self, ctx: PrepareContext, messages: list[Message]
        ) -> list[Message]:
            raise RuntimeError("summariser unavailable")

    core = make_core([reply("x")], plugins=[Failing])
    session = await core.session("s").open()
    await _raises(RuntimeErrorCode.CONTEXT_PREPARE_TURN, session.turn("hi").run())


@covers(RuntimeErrorCode.PROTOCOL_TURN_EXTENSION)
async def test_protocol_turn_extension_on_a_store_less_session() -> None:
    class Picky(lash.Plugin):
        id = "picky"

        def validate_turn_extension(self, extension: Any) -> bool:
            return isinstance(extension, dict)

    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([reply("accepted")]))
        .model(lash.ModelSpec("m"))
        .without_store()
        .effect_host(lash.InlineEffectHost())
        .plugin(Picky)
        .build()
    )
    session = await core.session("s").open()
    await _raises(
        RuntimeErrorCode.PROTOCOL_TURN_EXTENSION,
        session.turn("hi").protocol_extension(object()).run(),
    )
    ok = await session.turn("hi").protocol_extension({"fine": True}).run()
    assert ok.assistant_text == "accepted"


@covers(RuntimeErrorCode.PROTOCOL_BEFORE_LLM_CALL)
async def test_protocol_before_llm_call_commits_runtime_error(make_core: Any) -> None:
    class Failing(lash.Plugin):
        id = "protocol"

        async def before_llm_call(self, ctx: PrepareContext, request: LlmRequest) -> Any:
            raise RuntimeError("cannot prepare the call")

    provider = ScriptedProvider([reply("x")])
    core = make_core(provider, plugins=[Failing])
    session = await core.session("s").open()
    result = await session.turn("hi").run()
    assert result.outcome.reason == "runtime_error"
    assert result.issues[-1].code == str(RuntimeErrorCode.PROTOCOL_BEFORE_LLM_CALL)
    assert provider.requests == []


@covers(RuntimeErrorCode.TURN_STREAM_JOIN)
async def test_turn_stream_join(make_core: Any) -> None:
    core = make_core([stall()])
    session = await core.session("s").open()
    handle = session.turn("hi").start()
    await asyncio.sleep(0.02)
    handle.task.cancel()  # the task behind the handle is aborted from outside
    await _raises(RuntimeErrorCode.TURN_STREAM_JOIN, handle.result())


@covers(RuntimeErrorCode.EMPTY_AGENT_FRAME_RUN)
def test_empty_agent_frame_run() -> None:
    with pytest.raises(lash.LashRuntimeError) as err:
        final_turn([])
    assert err.value.code == RuntimeErrorCode.EMPTY_AGENT_FRAME_RUN


@covers(RuntimeErrorCode.DURABLE_EFFECT_LIVE_PROTOCOL_EXTENSION)
async def test_durable_effect_live_protocol_extension(make_core: Any) -> None:
    provider = ScriptedProvider([reply("x")])
    core = make_core(provider)
    session = await core.session("s").open()
    err = await _raises(
        RuntimeErrorCode.DURABLE_EFFECT_LIVE_PROTOCOL_EXTENSION,
        session.turn("hi").protocol_extension({"live": True}).run(),
    )
    assert err.code.is_terminal
    assert provider.requests == []


@covers(RuntimeErrorCode.DURABLE_EFFECT_LIVE_PLUGIN_INPUT)
async def test_durable_effect_live_plugin_input(make_core: Any) -> None:
    provider = ScriptedProvider([reply("x")])
    core = make_core(provider)
    session = await core.session("s").open()
    await _raises(
        RuntimeErrorCode.DURABLE_EFFECT_LIVE_PLUGIN_INPUT,
        session.turn("hi").plugin_input("memo", object()).run(),
    )
    await _raises(
        RuntimeErrorCode.DURABLE_EFFECT_LIVE_PLUGIN_INPUT,
        session.enqueue("hi", plugin_inputs={"memo": 1}),
    )
    assert provider.requests == []


def test_every_seed_code_has_a_provoking_test() -> None:
    known = {str(c) for c in RuntimeErrorCode.known()}
    missing = known - COVERED
    assert not missing, f"codes without a provoking test: {sorted(missing)}"


async def test_tool_error_details_reach_the_model(make_core: Any) -> None:
    @lash.tool
    async def fails(ctx: lash.ToolContext) -> str:
        """Fails with a stable code."""
        raise lash.ToolError("record locked", code="locked")

    provider = ScriptedProvider([tool_call("fails", {}, "c1"), reply("ok")])
    core = make_core(provider, tools=[fails])
    session = await core.session("s").open()
    result = await session.turn("go").run()
    assert result.tool_calls[0].error_code == "locked"
    tool_msg = provider.requests[1].messages[-1]
    assert tool_msg.role == "tool" and "record locked" in tool_msg.text
