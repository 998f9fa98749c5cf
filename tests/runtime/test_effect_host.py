"""The effect-host scope suite: execution scopes and the inline host.

Every effect's replay key hangs from its :class:`ExecutionScope`, so a scope must keep exactly
the identity it was given and must refuse an empty one (``missing_execution_scope_id``) before
anything runs; an empty id would make two executions share one journal.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

import lash
from lash.errors import LashRuntimeError, RuntimeErrorCode
from lash.runtime.effect_host import EffectHost, InlineEffectHost, TurnControl
from lash.runtime.scope import ExecutionScope, require_id
from lash.stores import MemoryStore
from lash.stores.base import DurabilityTier
from lash.testing import ScriptedProvider, reply, tool_call
from lash.testing.effect_hosts import RecordingEffectHost
from lash.types import decode, encode

BLANKS = ["", " ", "   ", "\t", "\n", " \t\n "]


def assert_missing_scope_id(info: pytest.ExceptionInfo[LashRuntimeError]) -> None:
    assert info.value.code is RuntimeErrorCode.MISSING_EXECUTION_SCOPE_ID
    assert info.value.is_terminal
    assert "non-empty" in info.value.message


# --- ExecutionScope preserves metadata ------------------------------------------------------


def test_turn_scope_preserves_metadata() -> None:
    scope = ExecutionScope.turn("session-1", "turn-1")
    assert (scope.kind, scope.id, scope.session_id) == ("turn", "turn-1", "session-1")


def test_queue_drain_scope_preserves_metadata() -> None:
    scope = ExecutionScope.queue_drain("session-1", "drain-9")
    assert (scope.kind, scope.id, scope.session_id) == ("queue_drain", "drain-9", "session-1")


def test_process_scope_preserves_metadata() -> None:
    scope = ExecutionScope.process("proc-3")
    assert (scope.kind, scope.id, scope.session_id) == ("process", "proc-3", None)


def test_session_delete_and_runtime_operation_scopes() -> None:
    delete = ExecutionScope(kind="session_delete", id="session-1", session_id="session-1")
    assert (delete.kind, delete.id, delete.session_id) == (
        "session_delete",
        "session-1",
        "session-1",
    )
    operation = ExecutionScope(kind="runtime_operation", id="op-1")
    assert (operation.kind, operation.id, operation.session_id) == (
        "runtime_operation",
        "op-1",
        None,
    )


def test_ids_are_kept_verbatim() -> None:
    # padding and unusual characters are identity, not noise: nothing is normalised
    scope = ExecutionScope.turn(" tenant:a/chat ", "turn ✓ 1")
    assert scope.session_id == " tenant:a/chat "
    assert scope.id == "turn ✓ 1"


@pytest.mark.parametrize(
    "scope",
    [
        ExecutionScope.turn("s", "t"),
        ExecutionScope.queue_drain("s", "d"),
        ExecutionScope.process("p"),
        ExecutionScope(kind="session_delete", id="s", session_id="s"),
        ExecutionScope(kind="runtime_operation", id="op"),
    ],
    ids=lambda s: s.kind,
)
def test_scopes_round_trip_and_compare_by_value(scope: ExecutionScope) -> None:
    assert decode(encode(scope), type=ExecutionScope) == scope
    twin = msgspec.structs.replace(scope)
    assert twin == scope and hash(twin) == hash(scope)


def test_scopes_of_different_kinds_or_sessions_differ() -> None:
    scopes = {
        ExecutionScope.turn("s", "x"),
        ExecutionScope.turn("s2", "x"),
        ExecutionScope.queue_drain("s", "x"),
        ExecutionScope.process("x"),
        ExecutionScope(kind="runtime_operation", id="x"),
    }
    assert len(scopes) == 5


# --- empty ids are rejected ---------------------------------------------------------------


@pytest.mark.parametrize("blank", BLANKS)
def test_turn_scope_rejects_a_blank_turn_id(blank: str) -> None:
    with pytest.raises(LashRuntimeError) as info:
        ExecutionScope.turn("session-1", blank)
    assert_missing_scope_id(info)


@pytest.mark.parametrize("blank", BLANKS)
def test_turn_scope_rejects_a_blank_session_id(blank: str) -> None:
    with pytest.raises(LashRuntimeError) as info:
        ExecutionScope.turn(blank, "turn-1")
    assert_missing_scope_id(info)


@pytest.mark.parametrize("blank", BLANKS)
def test_process_scope_rejects_a_blank_process_id(blank: str) -> None:
    with pytest.raises(LashRuntimeError) as info:
        ExecutionScope.process(blank)
    assert_missing_scope_id(info)


@pytest.mark.parametrize("blank", BLANKS)
def test_queue_drain_scope_rejects_blank_ids(blank: str) -> None:
    with pytest.raises(LashRuntimeError) as drain:
        ExecutionScope.queue_drain("session-1", blank)
    assert_missing_scope_id(drain)
    with pytest.raises(LashRuntimeError) as session:
        ExecutionScope.queue_drain(blank, "drain-1")
    assert_missing_scope_id(session)


@pytest.mark.parametrize("kind", ["turn", "queue_drain", "session_delete"])
def test_session_bound_scopes_need_a_session_id(kind: Any) -> None:
    with pytest.raises(LashRuntimeError) as info:
        ExecutionScope(kind=kind, id="x")
    assert_missing_scope_id(info)


def test_runtime_operation_scope_rejects_a_blank_id() -> None:
    with pytest.raises(LashRuntimeError) as info:
        ExecutionScope(kind="runtime_operation", id=" ")
    assert_missing_scope_id(info)


def test_the_message_names_what_was_missing() -> None:
    with pytest.raises(LashRuntimeError) as info:
        ExecutionScope.queue_drain("", "drain-1")
    assert "queue_drain scope session id" in info.value.message
    with pytest.raises(LashRuntimeError) as info:
        ExecutionScope.process("")
    assert "process scope id" in info.value.message


@pytest.mark.parametrize(
    "data",
    [
        b'{"kind":"turn","id":"","session_id":"s"}',
        b'{"kind":"turn","id":"t","session_id":"  "}',
        b'{"kind":"turn","id":"t"}',
        b'{"kind":"process","id":"\\t"}',
    ],
)
def test_decoding_a_scope_with_a_blank_id_fails(data: bytes) -> None:
    # a stored or wire scope goes through the same check as a constructed one
    with pytest.raises(LashRuntimeError) as info:
        decode(data, type=ExecutionScope)
    assert_missing_scope_id(info)


def test_require_id() -> None:
    assert require_id("x", "thing") == "x"
    assert require_id(" x ", "thing") == " x "
    for bad in (None, "", "  "):
        with pytest.raises(LashRuntimeError) as info:
            require_id(bad, "the widget id")
        assert_missing_scope_id(info)
        assert info.value.message == "the widget id must be a non-empty id"


# --- the inline host ------------------------------------------------------------------------


def test_inline_host_declares_itself_ephemeral() -> None:
    host = InlineEffectHost()
    assert host.tier is DurabilityTier.EPHEMERAL
    assert host.supports_concurrent_effects
    assert isinstance(host, EffectHost)
    assert isinstance(host.turn_control, TurnControl)
    assert host.turn_control is host.turn_control  # one control per host


async def test_run_effect_runs_the_local_executor_once_and_returns_its_value() -> None:
    host = InlineEffectHost()
    calls: list[str] = []

    async def execute() -> dict[str, int]:
        calls.append("ran")
        return {"answer": 42}

    scope = ExecutionScope.turn("s", "t")
    value = await host.run_effect(scope, "tool_attempt", "s/t/tool/1", {"call": 1}, execute)
    assert value == {"answer": 42}
    assert calls == ["ran"]


async def test_run_effect_propagates_executor_errors_after_one_attempt() -> None:
    host = InlineEffectHost()
    calls = 0

    async def execute() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("tool exploded")

    with pytest.raises(RuntimeError, match="tool exploded"):
        await host.run_effect(ExecutionScope.turn("s", "t"), "tool_attempt", "k", None, execute)
    assert calls == 1


async def test_inline_host_does_not_journal() -> None:
    # nothing is recorded, so re-running a replay key executes again (a durable host would
    # return the recorded outcome instead)
    host = InlineEffectHost()
    counter = iter(range(10))

    async def execute() -> int:
        return next(counter)

    scope = ExecutionScope.turn("s", "t")
    first = await host.run_effect(scope, "llm_call", "same-key", None, execute)
    second = await host.run_effect(scope, "llm_call", "same-key", None, execute)
    assert (first, second) == (0, 1)


async def test_inline_host_runs_effects_concurrently() -> None:
    host = InlineEffectHost()
    both_started = asyncio.Event()
    started = 0

    async def execute() -> str:
        nonlocal started
        started += 1
        if started == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 5)
        return "ok"

    scope = ExecutionScope.turn("s", "t")
    results = await asyncio.gather(
        host.run_effect(scope, "tool_attempt", "k1", None, execute),
        host.run_effect(scope, "tool_attempt", "k2", None, execute),
    )
    assert results == ["ok", "ok"]


async def test_cancelling_run_effect_cancels_the_executor() -> None:
    host = InlineEffectHost()
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def execute() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.ensure_future(
        host.run_effect(ExecutionScope.turn("s", "t"), "llm_call", "k", None, execute)
    )
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


# --- through a turn ---------------------------------------------------------------------------


def _core(host: InlineEffectHost, provider: ScriptedProvider, tools: list[Any]) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .store(MemoryStore())
        .effect_host(host)
        .provider(provider)
        .model(lash.ModelSpec("m"))
        .tools(tools)
        .build()
    )


@lash.tool
async def double(ctx: lash.ToolContext, n: int) -> int:
    """Double a number."""
    return 2 * n


async def test_a_turn_runs_every_effect_under_its_turn_scope() -> None:
    host = RecordingEffectHost()
    provider = ScriptedProvider([tool_call("double", {"n": 21}, "call-1"), reply("42")])
    async with _core(host, provider, [double]) as core:
        session = await core.session("chat-1").open()
        result = await session.turn(lash.TurnInput.text("go", trace_turn_id="turn-1")).run()
    assert result.assistant_text == "42"
    assert [e.kind for e in host.effects] == ["llm_call", "tool_attempt", "llm_call"]
    assert {e.scope for e in host.effects} == {ExecutionScope.turn("chat-1", "turn-1")}
    keys = [e.replay_key for e in host.effects]
    assert len(set(keys)) == len(keys), "every effect of a turn has its own replay key"
    assert all(key.strip() for key in keys)


async def test_replay_keys_are_deterministic_for_the_same_turn() -> None:
    runs: list[list[str]] = []
    for _ in range(2):
        host = RecordingEffectHost()
        provider = ScriptedProvider([tool_call("double", {"n": 1}, "call-1"), reply("2")])
        async with _core(host, provider, [double]) as core:
            session = await core.session("chat-1").open()
            await session.turn(lash.TurnInput.text("go", trace_turn_id="turn-1")).run()
        runs.append([e.replay_key for e in host.effects])
    assert runs[0] == runs[1]


async def test_a_durable_host_wired_to_memory_stores_fails_loudly_before_running() -> None:
    host = RecordingEffectHost(tier=DurabilityTier.DURABLE)
    provider = ScriptedProvider([reply("never")])
    async with _core(host, provider, []) as core:
        session = await core.session("chat-1").open()
        with pytest.raises(LashRuntimeError) as info:
            await session.turn("go").run()
    # facets are checked in lash's order: the attachment store comes first
    assert str(info.value.code) == "durable_store_required:attachment_store"
    assert info.value.message == "durable effect hosts require a durable attachment store"
    assert info.value.is_terminal
    assert host.effects == []
    assert provider.requests == []


async def test_a_per_turn_effect_host_runs_that_turns_effects() -> None:
    """``turn.effects(host)`` routes one turn's effects through a handler-bound host."""

    from lash.testing import ScriptedProvider, reply

    journal = RecordingEffectHost()
    core = (
        lash.LashCore.builder()
        .provider(ScriptedProvider([reply("a"), reply("b")]))
        .model(lash.ModelSpec("m"))
        .store(lash.stores.MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .build()
    )
    session = await core.session("s").open()
    await session.turn("plain").run()
    assert journal.effects == []
    await session.turn("journaled").turn_id("t-2").effects(journal).run()
    # one effect per attempt
    assert [f"{e.kind}:{e.replay_key}" for e in journal.effects] == [
        "llm_call:s:t-2:2:0:llm_call:1:attempt:1"
    ]
