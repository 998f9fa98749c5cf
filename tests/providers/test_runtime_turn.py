"""A real adapter under the real runtime: a whole turn (tool loop included) over wire scripts.

This pins the adapter ↔ runtime contract: history with tool calls and results goes out in
the native format, streamed prose arrives as turn events, and usage lands in the turn result.
"""

from __future__ import annotations

import httpx
import pytest

import lash
from lash.providers import OpenAIChatProvider
from lash.stores import MemoryStore
from lash.testing.wire import ScriptedTransport, load_script
from lash.types import TokenUsage

from .helpers import FIXTURES, own


@lash.tool
async def lookup(ctx: lash.ToolContext, q: str) -> str:
    """Look something up."""
    return f"found {q}"


def _core(provider: OpenAIChatProvider) -> lash.LashCore:
    return (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("test-model", context_window=100_000))
        .store(MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools([lookup])
        .batch_tool(False)  # the wire scripts were recorded with exactly one advertised tool
        .build()
    )


async def test_tool_loop_turn_through_the_runtime() -> None:
    transport = ScriptedTransport(
        own("openai-compatible.chat-runtime-tool-loop-1"),
        own("openai-compatible.chat-runtime-tool-loop-2"),
    )
    provider = OpenAIChatProvider(
        api_key="k", base_url="http://wire.test", http_client=httpx.AsyncClient(transport=transport)
    )
    try:
        async with _core(provider) as core:
            session = await core.session("wire-1").open()
            result = await session.turn("find x").run()
    finally:
        await provider.aclose()
    transport.assert_exhausted()
    assert result.outcome.kind == "finished", result.issues
    assert result.assistant_text == "x is found."
    assert [(c.name, c.arguments) for c in result.tool_calls] == [("lookup", {"q": "x"})]
    assert result.usage == TokenUsage(input_tokens=90, cache_read_input_tokens=10, output_tokens=10)


async def test_shared_runtime_fixture_turn() -> None:
    script = load_script(FIXTURES / "runtime/openai-compatible.chat-runtime-text-stream.json")
    transport = ScriptedTransport(script)
    provider = OpenAIChatProvider(
        api_key="k", base_url="http://wire.test", http_client=httpx.AsyncClient(transport=transport)
    )
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("openai/gpt-5.4", context_window=100_000))
        .store(MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .build()
    )
    try:
        async with core:
            session = await core.session("wire-2").open()
            result = await session.turn("hello").run()
    finally:
        await provider.aclose()
    transport.assert_exhausted()
    assert result.assistant_text == "Runtime scripted answer."
    assert result.outcome.kind == "finished"


@pytest.mark.parametrize(
    ("kind", "prefix", "model", "capabilities"),
    [
        ("openai-compatible", "openai-compatible.chat-tool-loop", "m", lash.ModelCapabilities()),
        ("openai", "openai.responses-tool-loop", "m", lash.ModelCapabilities()),
        (
            "anthropic",
            "anthropic.messages-tool-loop",
            "m",
            lash.ModelCapabilities(cache_control="anthropic"),
        ),
        ("google", "google.stream-tool-loop", "gemini-test", lash.ModelCapabilities()),
    ],
)
async def test_each_adapter_runs_a_tool_turn_through_lash_core(
    kind: str, prefix: str, model: str, capabilities: lash.ModelCapabilities
) -> None:
    """Each adapter under LashCore: the committed tool call and its result replay into the
    second request in that provider's native format (ids paired), matched by the script."""
    from .helpers import client_for, make

    transport = ScriptedTransport(own(f"{prefix}-1"), own(f"{prefix}-2"))
    provider = make(kind, http_client=client_for(kind, transport))
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec(model, context_window=100_000, capabilities=capabilities))
        .store(MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .tools([lookup])
        .system_prompt("Be brief.")
        .batch_tool(False)  # the shared fixtures pin one advertised tool
        .build()
    )
    async with core:
        session = await core.session(f"wire-{kind}").open()
        result = await session.turn("find x").run()
    transport.assert_exhausted()
    assert result.outcome.kind == "finished", result.issues
    assert result.assistant_text == "x is found."
    assert [(c.name, c.arguments, c.output) for c in result.tool_calls] == [
        ("lookup", {"q": "x"}, "found x")
    ]
    assert len(result.llm_calls) == 2


async def test_truncated_stream_stops_the_turn_without_settled_text() -> None:
    """A stream cut before its finish reason: retried, then ``provider_error``; the cause is in
    the call record and the unfinished prose is never committed."""
    from lash.providers import RetryPolicy

    from .helpers import client_for, make

    script = own("openai-compatible.chat-truncated-no-finish")
    transport = ScriptedTransport(script, script)
    provider = make(
        "openai-compatible",
        http_client=client_for("openai-compatible", transport),
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.001, max_delay_s=0.001),
    )
    core = (
        lash.LashCore.builder()
        .provider(provider)
        .model(lash.ModelSpec("test-model"))
        .store(MemoryStore())
        .effect_host(lash.InlineEffectHost())
        .build()
    )
    deltas: list[str] = []

    async def sink(activity: lash.TurnActivity) -> None:
        deltas.append(activity.type)

    async with core:
        session = await core.session("cut").open()
        result = await session.turn("hi").on_event(sink).run()
        view = await session.read_view()
    transport.assert_exhausted()
    assert result.outcome.reason == "provider_error"
    attempts = result.llm_calls[0].attempts
    assert [a.outcome for a in attempts] == ["failed", "failed"]
    assert attempts[-1].error is not None
    assert attempts[-1].error.code == "stream_ended_before_finish_reason"
    assert result.issues[0].retryable is True
    assert [m.role for m in view.messages] == ["user"]
    assert "assistant_prose_delta" in deltas and "model_attempt_reset" in deltas
