"""Unit rules: SSE framing, failure classification, script schema and matchers, env wiring."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from lash.providers import ProviderConfigError, from_env
from lash.providers._classify import classify_error_payload, classify_http, parse_retry_after
from lash.providers._common import merge_usage, parse_arguments, usage_from_openai
from lash.providers._sse import SseDecodeError, SseDecoder
from lash.providers.openai_chat import OpenAIChatProvider
from lash.testing.wire import ScriptedTransport, WireScript, WireScriptError, match_request
from lash.types import TokenUsage

# --- SSE framing -------------------------------------------------------------------------


def test_sse_joins_data_lines_and_ignores_other_fields() -> None:
    decoder = SseDecoder()
    out = decoder.feed(b"event: x\r\nid: 1\r\n: comment\r\ndata: a\r\ndata:b\r\n\r\n")
    assert out == ["a\nb"]


def test_sse_byte_split_everywhere_gives_the_same_events() -> None:
    payload = 'data: {"t":"café 😀"}\n\ndata: [DONE]\n\n'.encode()
    whole = SseDecoder().feed(payload)
    decoder = SseDecoder()
    pieces: list[str] = []
    for i in range(len(payload)):
        pieces += decoder.feed(payload[i : i + 1])
    assert pieces == whole == ['{"t":"café 😀"}', "[DONE]"]


def test_sse_cr_split_across_chunks_is_one_line_break() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r\n") == ["a"]


def test_sse_flush_emits_an_unterminated_event() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.pending == "data: tail"
    assert decoder.flush() == ["tail"]


def test_sse_invalid_utf8_keeps_the_raw_bytes() -> None:
    with pytest.raises(SseDecodeError) as caught:
        SseDecoder().feed(b"data: \xff\xfe\n\n")
    assert caught.value.raw == b"data: \xff\xfe"


# --- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 128000 tokens.",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    ],
)
def test_context_overflow_is_terminal(message: str) -> None:
    failure = classify_http(400, {}, json.dumps({"error": {"message": message}}))
    assert failure.terminal_reason == "context_overflow"
    assert failure.kind == "validation" and not failure.retryable


def test_throttle_mentioning_tokens_is_not_context_overflow() -> None:
    body = {"error": {"message": "Rate limit on tokens per min (TPM): too many tokens"}}
    failure = classify_http(429, {}, json.dumps(body))
    assert failure.kind == "quota" and failure.retryable
    assert failure.terminal_reason == "provider_error"


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, "auth", False),
        (403, "auth", False),
        (422, "validation", False),
        (500, "http", True),
        (503, "http", True),
        (529, "http", True),
        (418, "http", False),
    ],
)
def test_status_rules(status: int, kind: str, retryable: bool) -> None:
    failure = classify_http(status, {}, "oops")
    assert (failure.kind, failure.retryable, failure.http_status) == (kind, retryable, status)


def test_model_not_found_is_unsupported() -> None:
    body = {"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}
    failure = classify_http(404, {}, json.dumps(body))
    assert failure.kind == "unsupported" and not failure.retryable


def test_content_policy_rejection_is_content_filter() -> None:
    body = {
        "error": {"message": "rejected by the content_policy", "code": "content_policy_violation"}
    }
    failure = classify_http(400, {}, json.dumps(body))
    assert failure.terminal_reason == "content_filter" and not failure.retryable


def test_hard_quota_marker_with_a_server_wait_is_a_throttle() -> None:
    body = {"error": {"message": "usage limit", "code": "usage_limit_reached"}}
    assert classify_http(429, {}, json.dumps(body)).hard_quota
    throttled = classify_http(429, {"retry-after": "9"}, json.dumps(body))
    assert not throttled.hard_quota and throttled.retryable and throttled.retry_after_s == 9.0


def test_retry_after_sources() -> None:
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"Retry-After": "4"}) == 4.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after({}, {"error": {"details": [{"retryDelay": "300ms"}]}}) == 0.3
    assert parse_retry_after({}, {"details": [{"retryDelay": "1.5s"}]}) == 1.5


def test_in_stream_errors() -> None:
    overloaded = classify_error_payload({"type": "error", "error": {"type": "overloaded_error"}})
    assert overloaded.retryable and overloaded.kind == "stream"
    invalid = classify_error_payload({"error": {"code": "invalid_prompt", "message": "no"}})
    assert not invalid.retryable


# --- assembly and usage ------------------------------------------------------------------


def test_arguments_parse_only_objects() -> None:
    assert parse_arguments('{"a": 1}') == {"a": 1}
    assert parse_arguments("[1, 2]") == {}
    assert parse_arguments('{"a": ') == {}
    assert parse_arguments("") == {}


def test_openai_usage_buckets() -> None:
    usage, reported = usage_from_openai(
        {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 10},
        }
    )
    assert usage == TokenUsage(
        input_tokens=60, cache_read_input_tokens=30, cache_write_input_tokens=10, output_tokens=20
    )
    assert reported is False
    assert usage_from_openai(None) == (None, False)
    deepseek, _ = usage_from_openai({"prompt_tokens": 10, "prompt_cache_hit_tokens": 4})
    assert deepseek is not None and deepseek.cache_read_input_tokens == 4


def test_merge_usage_keeps_earlier_non_zero_buckets() -> None:
    first = TokenUsage(input_tokens=7)
    later = TokenUsage(output_tokens=4)
    assert merge_usage(first, later) == TokenUsage(input_tokens=7, output_tokens=4)
    assert merge_usage(None, later) == later


# --- wire script schema and matchers -----------------------------------------------------


def _script(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema": "lash.provider-wire-script.v1",
        "name": "t",
        "provider_kind": "openai",
        "endpoint": {"method": "POST", "path": "/x"},
        "timeline": [
            {"at": 0, "event": "response_start", "status": 200},
            {"at": 1, "event": "end"},
        ],
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    "bad",
    [
        {"schema": "lash.provider-wire-script.v2"},
        {"surprise": True},
        {"timeline": [{"at": 5, "event": "response_start"}, {"at": 1, "event": "end"}]},
        {"timeline": [{"at": 0, "event": "sse", "data": "x"}]},
        {"timeline": [{"at": 0, "event": "teleport"}]},
        {"timeline": []},
    ],
)
def test_invalid_scripts_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(WireScriptError):
        WireScript.from_json(json.dumps(_script(**bad)))


def test_matchers() -> None:
    script = WireScript.from_json(
        json.dumps(
            _script(
                request_match={
                    "body": {
                        "messages": {"contains_role": "user", "min_len": 2},
                        "tools[0].function.name": {"equals": "lookup"},
                        "include": {"contains": "reasoning.encrypted_content"},
                        "store": {"present": False},
                        "a.b": {"equals": 1},
                    },
                    "headers": {"Authorization": {"contains": "Bearer"}},
                }
            )
        )
    )
    good = {
        "messages": [{"role": "system"}, {"role": "user"}],
        "tools": [{"function": {"name": "lookup"}}],
        "include": ["reasoning.encrypted_content"],
        "a.b": 1,
    }
    headers = [("authorization", "Bearer k")]
    ok = match_request(
        script, method="post", path="/x?y=1", headers=headers, body=json.dumps(good).encode()
    )
    assert ok == []
    bad = {"messages": [{"role": "system"}], "store": False, "tools": []}
    problems = match_request(
        script, method="GET", path="/z", headers=[], body=json.dumps(bad).encode()
    )
    text = "\n".join(problems)
    for fragment in (
        "method",
        "path",
        "role 'user'",
        "length >= 2",
        "tools[0].function.name",
        "reasoning.encrypted_content",
        "store: expected absent",
        "header Authorization",
    ):
        assert fragment in text


# --- env and lazy imports ----------------------------------------------------------------


async def test_from_env_picks_by_precedence() -> None:
    chosen = [
        from_env({"OPENAI_API_KEY": "a", "ANTHROPIC_API_KEY": "b"}),
        from_env({"ANTHROPIC_API_KEY": "b", "GEMINI_API_KEY": "c"}),
        from_env({"GEMINI_API_KEY": "c"}),
        from_env({"OPENROUTER_API_KEY": "d"}),
        from_env({"LASH_BASE_URL": "http://127.0.0.1:8000/v1", "OPENAI_API_KEY": "a"}),
        from_env({"LASH_PROVIDER": "anthropic", "OPENAI_API_KEY": "a", "ANTHROPIC_API_KEY": "b"}),
    ]
    try:
        assert [p.kind for p in chosen] == [
            "openai",
            "anthropic",
            "google",
            "openai-compatible",
            "openai-compatible",
            "anthropic",
        ]
        routed = [p for p in chosen if isinstance(p, OpenAIChatProvider)]
        assert [p.base_url for p in routed] == [
            "https://openrouter.ai/api/v1",
            "http://127.0.0.1:8000/v1",
        ]
    finally:
        for provider in chosen:
            await provider.aclose()


def test_from_env_names_every_variable_when_nothing_is_set() -> None:
    with pytest.raises(ProviderConfigError) as caught:
        from_env({})
    for name in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "OPENROUTER_API_KEY",
        "LASH_BASE_URL",
        "LASH_API_KEY",
    ):
        assert name in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(ProviderConfigError, match="unknown LASH_PROVIDER"):
        from_env({"LASH_PROVIDER": "nope"})
    with pytest.raises(ProviderConfigError, match="GEMINI_API_KEY"):
        from_env({"LASH_PROVIDER": "google"})


def test_importing_providers_imports_no_sdk() -> None:
    code = (
        "import sys, lash.providers as p\n"
        "bad = [m for m in ('openai', 'anthropic', 'google.genai') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "assert p.OpenAIChatProvider.__name__ == 'OpenAIChatProvider'\n"
        "assert 'openai' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_virtual_schedule_is_played_through_the_injected_sleep() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    script = WireScript.from_json(
        json.dumps(
            _script(
                timeline=[
                    {"at": 10, "event": "response_start", "status": 200},
                    {"at": 25, "event": "chunk", "data": "a"},
                    {"at": 25, "event": "chunk", "bytes": [98]},
                    {"at": 40, "event": "end"},
                ]
            )
        )
    )
    transport = ScriptedTransport(script, sleep=sleep)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.post("http://wire.test/x", content=b"{}")
    assert response.content == b"ab"
    assert waits == [0.01, 0.015, 0.015]
    transport.assert_exhausted()


def test_retry_after_http_date_is_measured_against_the_response_date() -> None:
    headers = {
        "retry-after": "Wed, 21 Oct 2026 07:28:30 GMT",
        "date": "Wed, 21 Oct 2026 07:28:00 GMT",
    }
    assert parse_retry_after(headers) == 30.0
    # without the server's own Date header there is nothing to measure against
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2026 07:28:30 GMT"}) is None
    assert parse_retry_after({"retry-after": "soon", "date": "x"}) is None
