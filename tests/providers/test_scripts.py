"""This project's own wire scripts: parallel tool calls, reasoning, cache usage, corrupt
streams, and each adapter's tool loop (call 1 asks for a tool; call 2 must carry the result in
the provider's native format, which the second script's matchers check)."""

from __future__ import annotations

from typing import Any

import pytest

from lash.providers.openai_chat import ChatCompat
from lash.testing.wire import ScriptedTransport, WireMismatch, load_scripts
from lash.types import (
    Message,
    ReasoningDelta,
    ReasoningPart,
    TextDelta,
    TextPart,
    TokenUsage,
    ToolCallDelta,
    ToolCallPart,
    ToolSpec,
)

from .helpers import SCRIPTS, Outcome, client_for, drive, make, own, request, tool_loop_history


async def _one(kind: str, name: str, req: Any, **options: Any) -> Outcome:
    script = own(name)
    transport = ScriptedTransport(script)
    provider = make(kind, http_client=client_for(kind, transport), **options)
    try:
        outcome = await drive(provider, req)
    finally:
        await provider.aclose()
    transport.assert_exhausted()
    outcome.expect(script)
    return outcome


def test_own_scripts_load() -> None:
    scripts = load_scripts(SCRIPTS)
    assert len(scripts) >= 18
    assert all(s.schema == "lash.provider-wire-script.v1" for s in scripts)


TWO_TOOLS = (ToolSpec(name="lookup"), ToolSpec(name="weather"))


# --- Chat Completions --------------------------------------------------------------------


async def test_chat_parallel_tool_calls_reassemble_by_index() -> None:
    outcome = await _one(
        "openai-compatible",
        "openai-compatible.chat-parallel-tool-calls",
        request(tools=TWO_TOOLS),
    )
    calls = outcome.ok.tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_a", "lookup", {"q": "lash"}),
        ("call_b", "weather", {"city": "Oslo"}),
    ]
    assert outcome.ok.usage == TokenUsage(
        input_tokens=70, cache_read_input_tokens=30, output_tokens=20, reasoning_output_tokens=5
    )
    evidence = outcome.ok.evidence
    assert evidence is not None
    assert evidence.reasoning_output_tokens == 5
    assert evidence.served_model == "served-model-1"
    assert evidence.provider_response_id == "chatcmpl-1"
    assert evidence.provider_request_id == "req-parallel"
    indexes = [e.index for e in outcome.events if isinstance(e, ToolCallDelta)]
    assert indexes == [0, 1, 0, 1]


async def test_chat_reasoning_deltas_stream_before_text() -> None:
    outcome = await _one(
        "openai-compatible",
        "openai-compatible.chat-reasoning-deltas",
        request(reasoning="high"),
        compat=ChatCompat(reasoning_format="openrouter"),
    )
    kinds = [type(e).__name__ for e in outcome.events[:-1]]
    assert kinds == ["ReasoningDelta", "ReasoningDelta", "TextDelta"]
    parts = outcome.ok.parts
    assert isinstance(parts[0], ReasoningPart) and parts[0].text == "Think harder."
    assert isinstance(parts[1], TextPart)
    assert outcome.ok.usage == TokenUsage(
        input_tokens=10, output_tokens=8, reasoning_output_tokens=6
    )


async def test_chat_malformed_json_is_a_stream_failure_with_the_raw_chunk() -> None:
    outcome = await _one(
        "openai-compatible", "openai-compatible.chat-malformed-json-chunk", request()
    )
    assert outcome.failed.raw is not None and '"broken"' in outcome.failed.raw
    assert outcome.failed.provider_request_id == "req-malformed"


async def test_chat_truncated_stream_is_never_a_partial_success() -> None:
    outcome = await _one(
        "openai-compatible", "openai-compatible.chat-truncated-no-finish", request()
    )
    assert outcome.response is None
    assert [e.text for e in outcome.events if isinstance(e, TextDelta)] == ["cut off"]


async def test_chat_truncated_stream_tolerated_when_endpoint_says_so() -> None:
    outcome = await _one_tolerant()
    assert outcome.ok.text == "cut off" and outcome.ok.terminal_reason == "stop"


async def _one_tolerant() -> Outcome:
    script = own("openai-compatible.chat-truncated-no-finish")
    transport = ScriptedTransport(script)
    provider = make(
        "openai-compatible",
        http_client=client_for("openai-compatible", transport),
        compat=ChatCompat(stream_termination="eof_tolerated"),
    )
    try:
        return await drive(provider, request())
    finally:
        await provider.aclose()


async def test_chat_tool_loop() -> None:
    first = await _one(
        "openai-compatible",
        "openai-compatible.chat-tool-loop-1",
        request("m", system="Be brief."),
    )
    call = first.ok.tool_calls[0]
    assert call == ToolCallPart(
        id="call_1", name="lookup", arguments={"q": "x"}, raw_arguments='{"q":"x"}'
    )
    second = await _one(
        "openai-compatible",
        "openai-compatible.chat-tool-loop-2",
        request("m", *tool_loop_history(call), system="Be brief."),
    )
    assert second.ok.text == "x is found."


# --- Responses ---------------------------------------------------------------------------


async def test_responses_reasoning_and_parallel_calls() -> None:
    outcome = await _one(
        "openai",
        "openai.responses-reasoning-parallel-tools",
        request(reasoning="medium", session_id="session-1", agent_frame_id="frame-1"),
        expose_thinking=True,
    )
    parts = outcome.ok.parts
    assert isinstance(parts[0], ReasoningPart)
    assert parts[0].text == "Plan: two lookups."
    assert parts[0].replay["encrypted_content"] == "ENC123"
    calls = outcome.ok.tool_calls
    assert [(c.id, c.arguments) for c in calls] == [("call_a", {"q": "a"}), ("call_b", {"q": "b"})]
    assert outcome.ok.usage == TokenUsage(
        input_tokens=50, cache_read_input_tokens=150, output_tokens=40, reasoning_output_tokens=25
    )
    evidence = outcome.ok.evidence
    assert evidence is not None and evidence.served_model == "served-resp-model"
    assert [e.text for e in outcome.events if isinstance(e, ReasoningDelta)] == [
        "Plan: ",
        "two lookups.",
    ]


async def test_responses_tool_loop_replays_reasoning_only_with_encrypted_content() -> None:
    first = await _one("openai", "openai.responses-tool-loop-1", request("m", system="Be brief."))
    call = first.ok.tool_calls[0]
    assert (call.id, call.arguments) == ("call_1", {"q": "x"})
    history = tool_loop_history(call)
    # a reasoning part without encrypted content cannot be replayed and is left out
    assistant = history[1]
    history = (
        history[0],
        Message(
            id=assistant.id,
            role="assistant",
            parts=(ReasoningPart(text="private", replay={"id": "rs_9"}), *assistant.parts),
        ),
        history[2],
    )
    second = await _one("openai", "openai.responses-tool-loop-2", request("m", *history))
    assert second.ok.text == "x is found."
    assert second.ok.usage == TokenUsage(input_tokens=30, output_tokens=4)


async def test_responses_malformed_json() -> None:
    outcome = await _one("openai", "openai.responses-malformed-json-chunk", request())
    assert outcome.failed.raw is not None and "output_text.delta" in outcome.failed.raw


# --- Anthropic ---------------------------------------------------------------------------


async def test_anthropic_cache_usage_thinking_and_parallel_tools() -> None:
    outcome = await _one(
        "anthropic",
        "anthropic.messages-cache-usage-thinking-tools",
        request(system="You are terse.", tools=TWO_TOOLS, reasoning="2048"),
    )
    response = outcome.ok
    assert response.usage == TokenUsage(
        input_tokens=12, cache_read_input_tokens=900, cache_write_input_tokens=88, output_tokens=57
    )
    assert response.usage.input_total() == 1000
    thinking = response.parts[0]
    assert isinstance(thinking, ReasoningPart)
    assert thinking.text == "Need both." and thinking.replay == {"signature": "SIG=="}
    # the second call's JSON is truncated by the model: parsed to {} but the raw text is kept
    assert [(c.name, c.arguments, c.raw_arguments) for c in response.tool_calls] == [
        ("lookup", {"q": "a"}, '{"q":"a"}'),
        ("weather", {}, '{"city":"Oslo"'),
    ]
    assert response.evidence is not None
    assert response.evidence.served_model == "claude-served"
    assert response.evidence.reasoning_output_tokens is None


async def test_anthropic_tool_loop_pairs_tool_use_and_tool_result() -> None:
    first = await _one("anthropic", "anthropic.messages-tool-loop-1", request("claude-x"))
    call = first.ok.tool_calls[0]
    assert (call.id, call.arguments) == ("toolu_01", {"q": "x"})
    second = await _one(
        "anthropic",
        "anthropic.messages-tool-loop-2",
        request("claude-x", *tool_loop_history(call, text="Checking.")),
    )
    assert second.ok.text == "x is found."


async def test_anthropic_error_event_is_classified() -> None:
    outcome = await _one("anthropic", "anthropic.messages-overloaded-in-stream", request())
    assert outcome.failed.kind == "stream"


async def test_anthropic_stream_without_message_stop_fails() -> None:
    outcome = await _one("anthropic", "anthropic.messages-truncated-before-stop", request())
    assert outcome.response is None


# --- Gemini ------------------------------------------------------------------------------


async def test_gemini_tool_loop_replays_thought_signature() -> None:
    first = await _one(
        "google", "google.stream-tool-loop-1", request("gemini-test", system="Be brief.")
    )
    response = first.ok
    assert response.terminal_reason == "tool_use"
    assert response.usage == TokenUsage(
        input_tokens=30, cache_read_input_tokens=20, output_tokens=18, reasoning_output_tokens=11
    )
    reasoning = [p for p in response.parts if isinstance(p, ReasoningPart)]
    assert reasoning[0].text == "Pondering"
    assert any(p.replay == {"thought_signature": "c2lnLTE="} for p in reasoning)
    assert response.evidence is not None
    assert response.evidence.served_model == "gemini-served"
    assert response.evidence.provider_response_id == "g-1"
    history = (
        tool_loop_history(response.tool_calls[0])[0],
        Message(id="a1", role="assistant", parts=response.parts),
        tool_loop_history(response.tool_calls[0])[2],
    )
    second = await _one(
        "google", "google.stream-tool-loop-2", request("gemini-test", *history, system="Be brief.")
    )
    assert second.ok.text == "x is found."


async def test_gemini_malformed_json() -> None:
    outcome = await _one("google", "google.stream-malformed-json-chunk", request("gemini-test"))
    assert outcome.failed.raw is not None and "candidates" in outcome.failed.raw
    assert [e.text for e in outcome.events if isinstance(e, TextDelta)] == ["ok"]


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("openai-compatible", "openai-compatible.chat-tool-loop-2"),
        ("openai", "openai.responses-tool-loop-2"),
        ("anthropic", "anthropic.messages-tool-loop-2"),
        ("google", "google.stream-tool-loop-2"),
    ],
)
async def test_second_call_without_the_tool_result_does_not_match(kind: str, name: str) -> None:
    script = own(name)
    transport = ScriptedTransport(script)
    provider = make(kind, http_client=client_for(kind, transport))
    try:
        # depending on the SDK the mismatch surfaces directly or as a connection failure
        outcome = await drive(provider, request("gemini-test"))
        assert outcome.failure is not None
    except WireMismatch:
        pass
    finally:
        await provider.aclose()
    with pytest.raises(WireMismatch, match="does not match wire script") as caught:
        transport.assert_exhausted()
    assert caught.value.problems and all("body" in p for p in caught.value.problems)
