"""The same scripts served by a real HTTP/1.1 server on 127.0.0.1 (real sockets, chunked
framing, abrupt disconnects), reached by the real adapters through ``base_url``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from lash.providers.openai_chat import ChatCompat
from lash.testing.wire import WireMismatch, WireScript, WireServer, load_script
from lash.types import Message, TextDelta, TokenUsage

from .helpers import FIXTURES, Outcome, drive, make, own, request, tool_loop_history, user


async def _serve(
    kind: str, scripts: list[Any], req: Any, prefix: str = "", **options: Any
) -> tuple[Outcome, WireServer]:
    async with WireServer(*scripts) as server:
        provider = make(kind, base_url=server.url(prefix), **options)
        try:
            outcome = await drive(provider, req)
        finally:
            await provider.aclose()
    return outcome, server


async def test_split_code_point_over_real_chunks() -> None:
    script = load_script(FIXTURES / "canonical/openai-compatible.chat-tool-call-split-stream.json")
    outcome, server = await _serve("openai-compatible", [script], request("openai/gpt-5.4"))
    server.assert_exhausted()
    outcome.expect(script)
    assert outcome.ok.text == "café "
    assert outcome.ok.evidence is not None
    assert outcome.ok.evidence.provider_request_id == "req-stream-a"


async def test_real_disconnect_is_a_retryable_stream_failure() -> None:
    script = load_script(FIXTURES / "canonical/openai-compatible.chat-mid-stream-disconnect.json")
    outcome, server = await _serve("openai-compatible", [script], request("openai/gpt-5.4"))
    server.assert_exhausted()
    assert outcome.failed.kind == "stream" and outcome.failed.retryable
    assert outcome.response is None


async def test_http_error_with_repeated_headers() -> None:
    script = load_script(FIXTURES / "canonical/openai-compatible.chat-rate-limit-429.json")
    outcome, server = await _serve(
        "openai-compatible",
        [script],
        request("openai/gpt-5.4"),
        compat=ChatCompat(stream=False),
    )
    server.assert_exhausted()
    outcome.expect(script)
    assert outcome.failed.retry_after_s == 7.0
    assert outcome.failed.provider_request_id == "req-429-a"


async def test_anthropic_over_sockets() -> None:
    script = load_script(FIXTURES / "canonical/anthropic.messages-text-stream.json")
    outcome, server = await _serve(
        "anthropic", [script], request("claude-sonnet-4-20250514", user("hi"))
    )
    server.assert_exhausted()
    outcome.expect(script)
    assert outcome.ok.usage == TokenUsage(input_tokens=7, output_tokens=4)


async def test_responses_over_sockets_under_a_path_prefix() -> None:
    script = load_script(FIXTURES / "canonical/codex.responses-tool-call-stream.json")
    outcome, server = await _serve(
        "openai",
        [script],
        request("gpt-5.4-codex"),
        prefix="/backend-api/codex",
    )
    server.assert_exhausted()
    outcome.expect(script)


async def test_gemini_tool_loop_over_sockets() -> None:
    first_script, second_script = own("google.stream-tool-loop-1"), own("google.stream-tool-loop-2")
    async with WireServer(first_script, second_script) as server:
        provider = make("google", base_url=server.url())
        try:
            first = await drive(provider, request("gemini-test", system="Be brief."))
            call = first.ok.tool_calls[0]
            history = tool_loop_history(call)
            history = (
                history[0],
                Message(id="a1", role="assistant", parts=first.ok.parts),
                history[2],
            )
            second = await drive(provider, request("gemini-test", *history, system="Be brief."))
        finally:
            await provider.aclose()
    server.assert_exhausted()
    assert second.ok.text == "x is found."
    assert [e.text for e in second.events if isinstance(e, TextDelta)] == ["x is found."]
    assert len(server.exchanges) == 2


async def test_silent_server_times_out_on_the_chunk_timeout() -> None:
    script = load_script(FIXTURES / "canonical/openai-compatible.chat-stream-chunk-timeout.json")
    outcome, _ = await _serve(
        "openai-compatible", [script], request("openai/gpt-5.4"), chunk_timeout_s=0.2
    )
    assert outcome.failed.kind == "timeout" and outcome.failed.retryable


async def test_mismatch_answers_400_with_the_diff() -> None:
    script = own("openai-compatible.chat-tool-loop-2")
    async with WireServer(script) as server:
        async with httpx.AsyncClient() as client:
            response = await client.post(
                server.url("/chat/completions"),
                json={"model": "m", "messages": []},
                headers={"authorization": "Bearer secret-token"},
            )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "messages[3].tool_call_id" in message
    assert "secret-token" not in message and "<redacted>" in message
    with pytest.raises(WireMismatch):
        server.assert_exhausted()


async def test_unused_scripts_are_reported() -> None:
    async with WireServer(own("openai-compatible.chat-tool-loop-1")) as server:
        pass
    with pytest.raises(AssertionError, match="never requested"):
        server.assert_exhausted()


@pytest.mark.parametrize(
    ("kind", "path", "frame"),
    [
        ("openai-compatible", "/chat/completions", {"choices": [{"delta": {"content": "hi"}}]}),
        ("openai", "/responses", {"type": "response.output_text.delta", "delta": "hi"}),
        (
            "anthropic",
            "/v1/messages",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "hi"},
            },
        ),
        (
            "google",
            "/v1beta/models/m:streamGenerateContent?alt=sse",
            {"candidates": [{"content": {"parts": [{"text": "hi"}]}}]},
        ),
    ],
)
async def test_cancel_mid_stream_releases_the_connection(
    kind: str, path: str, frame: dict[str, Any]
) -> None:
    script = WireScript.from_json(
        json.dumps(
            {
                "schema": "lash.provider-wire-script.v1",
                "name": f"{kind}-hang",
                "provider_kind": kind,
                "endpoint": {"method": "POST", "path": path},
                "timeline": [
                    {
                        "at": 0,
                        "event": "response_start",
                        "status": 200,
                        "headers": [{"name": "content-type", "value": "text/event-stream"}],
                    },
                    {"at": 1, "event": "sse", "data": json.dumps(frame)},
                    {"at": 2, "event": "timeout"},
                ],
            }
        )
    )
    first_delta = asyncio.Event()
    async with WireServer(script, hold_timeout_s=5.0) as server:
        provider = make(kind, base_url=server.url())

        async def consume() -> None:
            async for event in provider.stream(request("m")):
                if isinstance(event, TextDelta):
                    first_delta.set()

        task = asyncio.ensure_future(consume())
        await asyncio.wait_for(first_delta.wait(), 5.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await provider.aclose()
    server.assert_exhausted()
