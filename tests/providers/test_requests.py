"""Request building: each dialect's native history, tools, caching and reasoning encodings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from lash.providers.anthropic import AnthropicProvider, sanitize_tool_id
from lash.providers.base import ProviderError
from lash.providers.gemini import GeminiProvider
from lash.providers.openai_chat import ChatCompat, OpenAIChatProvider
from lash.providers.openai_responses import OpenAIResponsesProvider
from lash.testing.wire import ScriptedTransport
from lash.types import (
    AttachmentPart,
    AttachmentRef,
    Message,
    ModelCapabilities,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    ToolSpec,
)

from .helpers import client_for, drive, make, own, request, tool_loop_history, user

CALL = ToolCallPart(id="call:1/x", name="lookup", arguments={"q": "x"}, raw_arguments='{"q": "x"}')
TOOLS = (ToolSpec(name="lookup"), ToolSpec(name="weather"))


@pytest.fixture
async def chat() -> AsyncIterator[Any]:
    made: list[Any] = []

    def factory(**options: Any) -> OpenAIChatProvider:
        provider = OpenAIChatProvider(api_key="k", base_url="http://x.test/v1", **options)
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        await provider.aclose()


# --- Chat Completions --------------------------------------------------------------------


async def test_chat_history_in_native_format(chat: Any) -> None:
    attachment = AttachmentPart(ref=AttachmentRef(id="ab" * 32, media_type="image/png", byte_len=3))
    history = (
        Message(id="s", role="system", parts=(TextPart(text="extra rule"),)),
        Message(id="u0", role="user", parts=(TextPart(text="see "), attachment)),
        Message(id="tr", role="user", parts=(TextPart(text="ignored"),), transient=True),
        *tool_loop_history(CALL),
    )
    body = chat().build_body(request("m", *history, system="sys", tools=TOOLS))
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "system", "user", "user", "assistant", "tool"]
    assert "lash-attachment://sha256/" in body["messages"][2]["content"]
    assistant = body["messages"][4]
    assert assistant["content"] is None
    assert assistant["tool_calls"] == [
        {
            "id": "call:1/x",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        }
    ]
    assert body["messages"][5] == {"role": "tool", "tool_call_id": "call:1/x", "content": "found x"}
    assert body["tool_choice"] == "auto" and body["parallel_tool_calls"] is True
    assert body["max_tokens"] == 32_768 and body["stream_options"] == {"include_usage": True}


async def test_chat_compat_presets(chat: Any) -> None:
    local = chat(compat=ChatCompat.local()).build_body(request())
    assert "parallel_tool_calls" not in local and "stream_options" not in local
    openai = chat(compat=ChatCompat.openai()).build_body(request(reasoning="low"))
    assert openai["max_completion_tokens"] == 32_768 and openai["reasoning_effort"] == "low"
    assert openai["store"] is False
    omit = chat(compat=ChatCompat(max_tokens_field="omit")).build_body(request())
    assert not {"max_tokens", "max_completion_tokens", "max_output_tokens"} & set(omit)
    router = chat(
        compat=ChatCompat(reasoning_format="openrouter", provider_routing={"sort": "price"})
    )
    assert router.build_body(request(reasoning="2048"))["reasoning"] == {"max_tokens": 2048}
    assert router.build_body(request(reasoning="disabled"))["reasoning"] == {"enabled": False}
    assert router.build_body(request(reasoning="high"))["reasoning"] == {"effort": "high"}
    assert router.build_body(request())["provider"] == {"sort": "price"}
    with pytest.raises(ProviderError) as caught:
        chat(compat=ChatCompat.openai()).build_body(request(reasoning="disabled"))
    assert caught.value.failure.code == "reasoning_encoding_unrepresentable"
    assert not caught.value.failure.retryable


@pytest.mark.parametrize(
    ("dialect", "retention", "marked"),
    [
        ("anthropic", "short", ["system", "tool", "user"]),
        ("anthropic", "long", ["system", "tool", "user"]),
        ("gemini", "short", ["user"]),
        ("anthropic", "none", []),
    ],
)
async def test_chat_cache_markers(
    chat: Any, dialect: str, retention: str, marked: list[str]
) -> None:
    caps = ModelCapabilities(cache_control=dialect)  # type: ignore[arg-type]
    body = chat(cache_retention=retention).build_body(
        request(
            "m",
            user("first"),
            user("second", id="u2"),
            system="sys",
            tools=TOOLS,
            capabilities=caps,
        )
    )
    found: list[str] = []
    for entry in body["messages"]:
        content = entry["content"]
        if isinstance(content, list) and "cache_control" in content[0]:
            found.append(entry["role"])
            assert content[0]["cache_control"].get("ttl") == ("1h" if retention == "long" else None)
    if "cache_control" in body["tools"][-1]:
        found.append("tool")
    assert sorted(found) == sorted(marked)
    if "user" in marked:
        assert body["messages"][-1]["content"][0]["text"] == "second"


async def test_chat_session_affinity_header_and_body() -> None:
    script = own("openai-compatible.chat-tool-loop-1")
    transport = ScriptedTransport(script)
    provider = make(
        "openai-compatible",
        http_client=client_for("openai-compatible", transport),
        compat=ChatCompat.openrouter(),
    )
    try:
        await drive(
            provider,
            request("m", system="Be brief.", session_id="s" * 300, request_id="req-7"),
        )
    finally:
        await provider.aclose()
    exchange = transport.exchanges[0]
    assert exchange.header("x-client-request-id") == "req-7"
    assert exchange.json()["session_id"] == "s" * 256


async def test_chat_structured_output(chat: Any) -> None:
    schema = {"name": "answer", "schema": {"type": "object"}, "strict": True}
    body = chat().build_body(request(options={"output_schema": schema}))
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }


# --- Responses ---------------------------------------------------------------------------


async def test_responses_body() -> None:
    provider = OpenAIResponsesProvider(api_key="k", cache_retention="long")
    try:
        signed = ReasoningPart(
            text="t", replay={"id": "rs_1", "encrypted_content": "E", "summary": []}
        )
        history = (
            user("q"),
            Message(id="a", role="assistant", parts=(signed, TextPart(text="hm"), CALL)),
            tool_loop_history(CALL)[2],
        )
        body = provider.build_body(
            request(
                "m",
                *history,
                system="sys",
                session_id="s1",
                reasoning="high",
                tool_choice="required",
                options={"output_schema": {"name": "o", "schema": {}}},
            )
        )
    finally:
        await provider.aclose()
    assert body["instructions"] == "sys"
    types = [item.get("type", item.get("role")) for item in body["input"]]
    assert types == ["user", "reasoning", "message", "function_call", "function_call_output"]
    assert body["input"][1] == {
        "type": "reasoning",
        "encrypted_content": "E",
        "id": "rs_1",
        "summary": [],
    }
    assert body["input"][3]["arguments"] == '{"q": "x"}'
    assert body["tool_choice"] == "required" and body["store"] is False
    assert body["reasoning"] == {"effort": "high"} and body["include"] == [
        "reasoning.encrypted_content"
    ]
    assert body["prompt_cache_key"] == "s1::" and body["prompt_cache_retention"] == "24h"
    assert body["text"]["format"]["type"] == "json_schema"


# --- Anthropic ---------------------------------------------------------------------------


def test_tool_ids_are_sanitised_stably() -> None:
    assert sanitize_tool_id("call:1/x") == "call_1_x"
    assert sanitize_tool_id("a" * 80) == "a" * 64
    assert sanitize_tool_id("") == sanitize_tool_id("")
    assert sanitize_tool_id("").startswith("toolu_")


async def test_anthropic_history_merges_turns_and_pairs_ids() -> None:
    provider = AnthropicProvider(api_key="k", cache_retention="none")
    try:
        history = (
            *tool_loop_history(CALL, text="Checking."),
            Message(
                id="t2",
                role="tool",
                parts=(
                    ToolResultPart(
                        tool_call_id="call:2", name="weather", content="boom", is_error=True
                    ),
                ),
            ),
            user("and now?", id="u9"),
        )
        assistant_reasoning = Message(
            id="a0",
            role="assistant",
            parts=(
                ReasoningPart(text="unsigned"),
                ReasoningPart(text="signed", replay={"signature": "S"}),
                ReasoningPart(replay={"redacted_data": "R"}),
                TextPart(text="earlier"),
            ),
        )
        req = request(
            "claude",
            user("hi", id="u0"),
            assistant_reasoning,
            *history,
            tools=TOOLS,
            tool_choice="required",
            capabilities=ModelCapabilities(parallel_tool_calls=False),
        )
        body = provider.build_body(req)
    finally:
        await provider.aclose()
    roles = [t["role"] for t in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert [b["type"] for b in body["messages"][1]["content"]] == [
        "thinking",
        "redacted_thinking",
        "text",
    ]
    # "find x" from the loop history merges into the user turn after "earlier"
    tool_use = body["messages"][3]["content"][1]
    results = body["messages"][4]["content"]
    assert tool_use == {"type": "tool_use", "id": "call_1_x", "name": "lookup", "input": {"q": "x"}}
    assert results[0] == {"type": "tool_result", "tool_use_id": "call_1_x", "content": "found x"}
    assert results[1]["is_error"] is True and results[2] == {"type": "text", "text": "and now?"}
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "cache_control" not in str(body)


async def test_anthropic_thinking_modes() -> None:
    provider = AnthropicProvider(api_key="k", cache_retention="long")
    try:
        budget = request(reasoning="4096", system="s")
        assert provider.build_body(budget)["thinking"] == {"type": "enabled", "budget_tokens": 4096}
        assert "interleaved-thinking" in provider.beta_header(budget)
        adaptive = provider.build_body(request(reasoning="high"))
        assert adaptive["thinking"] == {"type": "adaptive"}
        assert adaptive["output_config"] == {"effort": "high"}
        assert "interleaved" not in provider.beta_header(request(reasoning="high"))
        assert provider.build_body(request(reasoning="disabled"))["thinking"] == {
            "type": "disabled"
        }
        assert provider.build_body(budget)["system"][0]["cache_control"] == {
            "type": "ephemeral",
            "ttl": "1h",
        }
    finally:
        await provider.aclose()


# --- Gemini ------------------------------------------------------------------------------


async def test_gemini_config_and_contents() -> None:
    provider = GeminiProvider(api_key="k", expose_thinking=True)
    try:
        req = request(
            "gemini",
            *tool_loop_history(CALL),
            system="sys",
            reasoning="high",
            tool_choice="none",
            options={"output_schema": {"schema": {"type": "object"}}},
        )
        config = provider.build_config(req)
        contents = provider.build_contents(req)
        budget = provider.build_config(request(reasoning="0"))
        off = provider.build_config(request(reasoning="disabled"))
    finally:
        await provider.aclose()
    assert config.system_instruction == "sys"
    assert config.tool_config is not None and config.tool_config.function_calling_config is not None
    assert str(config.tool_config.function_calling_config.mode.value) == "NONE"  # type: ignore[union-attr]
    assert config.thinking_config is not None
    assert config.thinking_config.include_thoughts is True
    assert str(config.thinking_config.thinking_level.value) == "HIGH"  # type: ignore[union-attr]
    assert config.response_mime_type == "application/json"
    assert budget.thinking_config is not None and budget.thinking_config.thinking_budget == 0
    assert off.thinking_config is not None and off.thinking_config.include_thoughts is None
    assert [c.role for c in contents] == ["user", "model", "user"]
    response_part = contents[2].parts[0]  # type: ignore[index]
    assert response_part.function_response is not None
    assert response_part.function_response.response == {"output": "found x"}


@pytest.mark.parametrize("kind", ["openai-compatible", "openai", "anthropic", "google"])
async def test_unsupported_effort_fails_before_any_request(kind: str) -> None:
    transport = ScriptedTransport()
    provider = make(kind, http_client=client_for(kind, transport))
    caps = ModelCapabilities(reasoning_efforts=("low", "high"))
    try:
        outcome = await drive(provider, request("m", reasoning="extreme", capabilities=caps))
    finally:
        await provider.aclose()
    assert outcome.failed.code == "unsupported_effort"
    assert outcome.failed.kind == "validation" and not outcome.failed.retryable
    assert transport.exchanges == []
