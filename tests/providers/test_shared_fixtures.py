"""Every shared wire-script fixture runs through the real adapter (or classifier) it belongs to.

The fixtures are lash's ``lash.provider-wire-script.v1`` files, copied into
``tests/providers/fixtures`` (``LASH_PROVIDER_FIXTURES`` overrides). Kinds map onto our adapters:

* ``openai-compatible`` → :class:`OpenAIChatProvider` (buffered when the script wants
  ``stream: false``);
* ``openai`` → :class:`OpenAIResponsesProvider`;
* ``codex`` → :class:`OpenAIResponsesProvider` under the Codex base path (the same Responses
  dialect; the Codex OAuth transport itself is out of scope);
* ``anthropic`` → :class:`AnthropicProvider`;
* ``google_oauth`` (Code Assist) → :class:`GeminiProvider`: the *response* side is the same
  Gemini dialect, so the script is replayed at the API-key endpoint with API-key request
  matchers, and streamed chunks are taken out of Code Assist's ``{"response": …}`` envelope;
* ``oauth_token`` → the shared HTTP failure classifier (no model adapter talks to it).

A fixture the plan below does not name fails the suite, so new fixtures cannot be skipped.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
import pytest

from lash.providers._classify import classify_http
from lash.providers.openai_chat import ChatCompat
from lash.testing.wire import (
    HeaderMatcher,
    JsonMatcher,
    RequestMatch,
    ScriptedTransport,
    Sse,
    WireScript,
    load_script,
)
from lash.types import ReasoningDelta, TextDelta, TokenUsage, ToolCallDelta

from .helpers import FIXTURES, client_for, drive, make, request, user

if not FIXTURES.is_dir():  # a missing fixture set must fail loudly, never skip
    raise RuntimeError(f"provider wire-script fixtures not found at {FIXTURES}")

# fixture → extra facts to assert beyond its own expected_provider block (dotted paths on the
# outcome: ``response.…``, ``failure.…``)
PLAN: dict[str, dict[str, Any]] = {
    "canonical/anthropic.messages-text-stream": {
        "response.usage": TokenUsage(input_tokens=7, output_tokens=4),
        "response.evidence.provider_request_id": "req-anthropic-text",
        "response.evidence.provider_response_id": "msg_1",
        "response.evidence.served_model": "claude-sonnet-4-20250514",
        "response.evidence.provider_finish_reason": "end_turn",
    },
    "canonical/codex.responses-mid-stream-disconnect": {
        "failure.kind": "stream",
        "failure.provider_request_id": "req-codex-disconnect",
    },
    "canonical/codex.responses-rate-limit-429": {
        "failure.kind": "quota",
        "failure.retry_after_s": 9.0,
        "failure.hard_quota": False,
        "failure.provider_request_id": "req-codex-429-a",
    },
    "canonical/codex.responses-text-stream": {
        "response.usage": TokenUsage(input_tokens=7, output_tokens=3),
        "response.evidence.provider_response_id": "resp_codex_1",
    },
    "canonical/codex.responses-tool-call-stream": {
        "response.usage": TokenUsage(input_tokens=8, output_tokens=5),
        "response.tool_calls.0.id": "call_1",
        "response.tool_calls.0.arguments": {"q": "x"},
    },
    "canonical/google.generate-content-text": {
        "response.usage": TokenUsage(input_tokens=4, cache_read_input_tokens=2, output_tokens=3),
        "response.evidence.provider_request_id": "req-google-generate",
        "response.evidence.reasoning_output_tokens": None,
    },
    "canonical/google.stream-generate-content-text-stream": {
        "response.usage": TokenUsage(input_tokens=6, output_tokens=4, reasoning_output_tokens=1),
        "response.evidence.reasoning_output_tokens": 1,
    },
    "canonical/openai-compatible.chat-mid-stream-disconnect": {
        "failure.retryable": True,
        "failure.provider_request_id": "req-disconnect",
    },
    "canonical/openai-compatible.chat-rate-limit-429": {
        "failure.kind": "quota",
        "failure.retry_after_s": 7.0,
        "failure.provider_request_id": "req-429-a",
    },
    "canonical/openai-compatible.chat-response-start-timeout": {"failure.http_status": None},
    "canonical/openai-compatible.chat-stream-chunk-timeout": {
        "failure.provider_request_id": "req-timeout"
    },
    "canonical/openai-compatible.chat-tool-call-split-stream": {
        "response.text": "café ",
        "response.tool_calls.0.id": "call_1",
        "response.tool_calls.0.arguments": {"q": "x"},
        "response.tool_calls.0.raw_arguments": '{"q":"x"}',
        "response.evidence.provider_request_id": "req-stream-a",
        "response.usage": None,
    },
    "canonical/openai-compatible.chat-validation-error": {
        "failure.kind": "validation",
        "failure.hard_quota": False,
    },
    "canonical/openai.responses-text-stream": {
        "response.usage": TokenUsage(input_tokens=5, output_tokens=2),
        "response.evidence.provider_request_id": "req-responses",
        "response.evidence.provider_response_id": "resp_1",
    },
    "recorded-reality/anthropic.messages-hard-quota-400": {
        "failure.kind": "quota",
        "failure.hard_quota": True,
        "failure.retryable": False,
        "failure.http_status": 400,
    },
    "recorded-reality/anthropic.messages-rate-limit-429": {
        "failure.kind": "quota",
        "failure.hard_quota": False,
        "failure.retryable": True,
        "failure.provider_request_id": "req_011CYNj7TmYSikEg9SLgfNhr",
    },
    "recorded-reality/google.generate-content-hard-quota-429": {
        "failure.kind": "quota",
        "failure.hard_quota": True,
        "failure.retryable": False,
        "failure.retry_after_s": None,
    },
    "recorded-reality/google.generate-content-per-minute-429": {
        "failure.kind": "quota",
        "failure.hard_quota": False,
        "failure.retryable": True,
        "failure.retry_after_s": 55.0,
    },
    "recorded-reality/oauth.token-invalid-client-401": {
        "failure.kind": "auth",
        "failure.retryable": False,
        "failure.code": "invalid_client",
    },
    "recorded-reality/oauth.token-invalid-grant-400": {
        "failure.kind": "validation",
        "failure.retryable": False,
        "failure.code": "invalid_grant",
    },
    "recorded-reality/oauth.token-invalid-scope-400": {
        "failure.kind": "validation",
        "failure.retryable": False,
        "failure.code": "invalid_scope",
    },
    "recorded-reality/openai.chat-hard-quota-429": {
        "failure.kind": "quota",
        "failure.hard_quota": True,
        "failure.retryable": False,
    },
    "recorded-reality/openai.chat-per-minute-429": {
        "failure.kind": "quota",
        "failure.hard_quota": False,
        "failure.retryable": True,
        # the server named no Retry-After: the ladder uses its own backoff, nothing invented
        "failure.retry_after_s": None,
    },
    "recorded-reality/openai.chat-structured-refusal": {
        "response.terminal_reason": "content_filter",
        "response.text": "I'm sorry, I cannot assist with that request.",
        "response.usage": TokenUsage(input_tokens=81, output_tokens=11),
        "response.evidence.reasoning_output_tokens": 0,
        "response.evidence.served_model": "gpt-4o-2024-08-06",
    },
    "recorded-reality/openai.responses-structured-truncation": {
        "response.terminal_reason": "output_limit",
        "response.text": "",
        "response.usage": None,
    },
    "runtime/openai-compatible.chat-runtime-text-stream": {
        "response.text": "Runtime scripted answer.",
        "response.terminal_reason": "stop",
    },
}

ALL = sorted(str(p.relative_to(FIXTURES))[:-5] for p in FIXTURES.rglob("*.json"))


def test_every_fixture_has_a_plan() -> None:
    assert ALL == sorted(PLAN), "a shared fixture was added or removed; extend PLAN"


def _get(outcome: Any, path: str) -> Any:
    value = outcome
    for key in path.split("."):
        value = value[int(key)] if key.isdigit() else getattr(value, key)
    return value


def _matcher_value(script: WireScript, path: str) -> Any:
    matcher = script.request_match.body.get(path)
    return None if matcher is None or matcher.equals is msgspec.UNSET else matcher.equals


def _gemini_script(script: WireScript) -> tuple[WireScript, bool]:
    """Code Assist script → the same responses at the API-key Gemini endpoint."""
    stream = "stream" in script.endpoint.path.lower()
    model = _matcher_value(script, "model") or "gemini-test"
    verb = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body: dict[str, JsonMatcher] = {"contents[0].role": JsonMatcher(equals="user")}
    if "request.contents[0].parts[0].text" in script.request_match.body:
        body["contents[0].parts[0].text"] = JsonMatcher(contains="answer directly")
    adapted = script.with_endpoint(path=f"/v1beta/models/{model}:{verb}").with_request_match(
        RequestMatch(body=body, headers={"x-goog-api-key": HeaderMatcher(present=True)})
    )
    timeline = tuple(
        msgspec.structs.replace(e, data=json.dumps(json.loads(e.data)["response"]))
        if isinstance(e, Sse) and '"response"' in e.data
        else e
        for e in adapted.timeline
    )
    return msgspec.structs.replace(adapted, timeline=timeline), stream


async def _run(name: str) -> Any:
    script = load_script(FIXTURES / f"{name}.json")
    kind = script.provider_kind
    model = _matcher_value(script, "model") or "test-model"
    options: dict[str, Any] = {}
    req_options: dict[str, Any] = {}
    if {"response_format.type", "text.format.type"} & set(script.request_match.body):
        req_options["options"] = {"output_schema": {"name": "answer", "schema": {"type": "object"}}}
    adapter_kind = kind
    base = "http://wire.test"
    if kind == "openai-compatible":
        if _matcher_value(script, "stream") is False:
            options["compat"] = ChatCompat(stream=False)
    elif kind == "codex":
        adapter_kind = "openai"
        base += "/backend-api/codex"
        options["default_headers"] = {"OpenAI-Beta": "responses=experimental"}
    elif kind == "google_oauth":
        adapter_kind = "google"
        script, stream = _gemini_script(script)
        options["stream"] = stream
    elif kind == "oauth_token":
        transport = ScriptedTransport(script)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.post("http://wire.test/token", data={"grant_type": "x"})
        transport.assert_exhausted()
        failure = classify_http(response.status_code, response.headers, response.text)
        return script, type("O", (), {"failure": failure, "response": None})()
    transport = ScriptedTransport(script)
    provider = make(
        adapter_kind, base_url=base, http_client=client_for(adapter_kind, transport), **options
    )
    try:
        outcome = await drive(
            provider,
            request(model, user("Please answer directly: what is x?"), **req_options),
        )
    finally:
        await provider.aclose()
    transport.assert_exhausted()
    return script, outcome


@pytest.mark.parametrize("name", sorted(PLAN))
async def test_fixture_through_adapter(name: str) -> None:
    script, outcome = await _run(name)
    if hasattr(outcome, "expect"):
        outcome.expect(script)
    for path, want in PLAN[name].items():
        assert _get(outcome, path) == want, f"{name}: {path}"


async def test_split_code_point_streams_whole_characters() -> None:
    _, outcome = await _run("canonical/openai-compatible.chat-tool-call-split-stream")
    texts = [e.text for e in outcome.events if isinstance(e, TextDelta)]
    assert texts == ["café "]
    deltas = [e for e in outcome.events if isinstance(e, ToolCallDelta)]
    assert [d.arguments for d in deltas] == ['{"q":', '"x"}']
    assert deltas[0].id == "call_1" and deltas[0].name == "lookup"


async def test_disconnect_keeps_what_was_received_for_diagnosis() -> None:
    _, outcome = await _run("canonical/openai-compatible.chat-mid-stream-disconnect")
    assert outcome.failed.raw is not None and "partial" in outcome.failed.raw
    assert [e.text for e in outcome.events if isinstance(e, TextDelta)] == ["partial"]


async def test_chunk_timeout_commits_no_output() -> None:
    _, outcome = await _run("canonical/openai-compatible.chat-stream-chunk-timeout")
    assert not [e for e in outcome.events if isinstance(e, TextDelta | ReasoningDelta)]
    assert outcome.failed.kind == "timeout"
