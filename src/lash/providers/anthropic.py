"""Anthropic's Messages API (kind ``anthropic``), always streamed.

History is replayed in Anthropic's strict alternation: adjacent same-role turns are merged,
tool calls become ``tool_use`` blocks and their results ``tool_result`` blocks in the next
user turn, paired by a sanitised id. Prompt-cache markers go on the last system block, the
last tool and the last block of the trailing user turn, so a growing conversation keeps
hitting the cache written by the previous call.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal, cast

import anthropic
import httpx2

from lash.providers._classify import (
    classify_error_payload,
    classify_http,
    stream_failure,
    transport_failure,
)
from lash.providers._common import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    PartsBuilder,
    decode_stream_event,
    evidence,
    int_or_zero,
    iter_payloads,
    request_id_of,
    usage_from_counts,
)
from lash.providers._render import attachment_note, checked_reasoning
from lash.providers.base import ProviderError
from lash.providers.retry import RetryPolicy
from lash.types import (
    AttachmentPart,
    LlmRequest,
    LlmResponse,
    ReasoningDelta,
    ReasoningPart,
    ResponseCompleted,
    StreamEvent,
    TerminalReason,
    TextDelta,
    TextPart,
    TokenUsage,
    ToolCallDelta,
    ToolCallPart,
    ToolResultPart,
)

__all__ = ["AnthropicProvider"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
FINE_GRAINED_TOOL_STREAMING = "fine-grained-tool-streaming-2025-05-14"
INTERLEAVED_THINKING = "interleaved-thinking-2025-05-14"

_RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")

_STOP: dict[str, TerminalReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_use",
    "max_tokens": "output_limit",
    "model_context_window_exceeded": "context_overflow",
    "refusal": "content_filter",
    "safety": "content_filter",
    "sensitive": "content_filter",
}


def sanitize_tool_id(call_id: str) -> str:
    """Anthropic accepts ``[A-Za-z0-9_-]{1,64}``; map any id into it, the same way each time."""
    cleaned = _UNSAFE_ID.sub("_", call_id)[:64]
    return cleaned or f"toolu_{uuid.uuid5(uuid.NAMESPACE_OID, call_id).hex[:24]}"


class AnthropicProvider:
    """An adapter for ``POST /v1/messages`` with server-sent events.

    ``http_client`` is an ``httpx2.AsyncClient``: the Anthropic SDK is built on that fork of
    httpx and accepts nothing else.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        http_client: httpx2.AsyncClient | None = None,
        default_headers: Mapping[str, str] | None = None,
        max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
        cache_retention: Literal["none", "short", "long"] = "short",
        request_timeout_s: float = 300.0,
        chunk_timeout_s: float = 120.0,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.base_url = (base_url or ANTHROPIC_BASE_URL).rstrip("/")
        self.max_output_tokens = max_output_tokens
        self.cache_retention = cache_retention
        timeout = httpx2.Timeout(request_timeout_s, read=chunk_timeout_s)
        self._http = http_client if http_client is not None else httpx2.AsyncClient(timeout=timeout)
        headers = dict(default_headers or {})
        if api_key:
            # Recent SDKs send the key as a bearer token; the Messages API's documented header
            # is x-api-key, so it goes out that way too (same key, never a second credential).
            headers.setdefault("x-api-key", api_key)
        self._sdk = anthropic.AsyncAnthropic(
            api_key=api_key or "",
            base_url=self.base_url,
            http_client=self._http,
            max_retries=0,
            timeout=timeout,
            default_headers=headers,
        )

    @property
    def kind(self) -> str:
        """``anthropic``."""
        return "anthropic"

    async def aclose(self) -> None:
        """Close the SDK client and its HTTP client."""
        await self._sdk.close()
        await self._http.aclose()

    # --- request ------------------------------------------------------------------------

    def _marker(self) -> dict[str, Any] | None:
        if self.cache_retention == "none":
            return None
        marker: dict[str, Any] = {"type": "ephemeral"}
        if self.cache_retention == "long":
            marker["ttl"] = "1h"
        return marker

    def beta_header(self, request: LlmRequest) -> str:
        """The ``anthropic-beta`` value for ``request``."""
        betas = [FINE_GRAINED_TOOL_STREAMING]
        if request.reasoning is not None and request.reasoning.isdigit():
            betas.append(INTERLEAVED_THINKING)
        return ",".join(betas)

    def build_body(self, request: LlmRequest) -> dict[str, Any]:
        """The exact JSON body sent for ``request``."""
        marker = self._marker()
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_output_tokens or self.max_output_tokens,
        }
        if request.system:
            system: dict[str, Any] = {"type": "text", "text": request.system}
            if marker:
                system["cache_control"] = dict(marker)
            body["system"] = [system]
        body["messages"] = self._messages(request, marker)
        if request.tools:
            tools: list[dict[str, Any]] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
            if marker:
                tools[-1]["cache_control"] = dict(marker)
            body["tools"] = tools
            choice = {"auto": "auto", "required": "any", "none": "none"}[request.tool_choice]
            tool_choice: dict[str, Any] = {"type": choice}
            if choice != "none" and not request.capabilities.parallel_tool_calls:
                tool_choice["disable_parallel_tool_use"] = True
            body["tool_choice"] = tool_choice
        effort = checked_reasoning(request)
        if effort == "disabled":
            body["thinking"] = {"type": "disabled"}
        elif effort is not None and effort.isdigit():
            body["thinking"] = {"type": "enabled", "budget_tokens": int(effort)}
        elif effort is not None:
            body["thinking"] = {"type": "adaptive"}
            body["output_config"] = {"effort": effort}
        schema = request.options.get("output_schema")
        if isinstance(schema, dict):
            output_config = body.setdefault("output_config", {})
            output_config["format"] = {"type": "json_schema", "schema": schema.get("schema", {})}
        body["stream"] = True
        return body

    def _messages(self, request: LlmRequest, marker: dict[str, Any] | None) -> list[dict[str, Any]]:
        turns: list[dict[str, Any]] = []

        def add(role: str, blocks: list[dict[str, Any]]) -> None:
            if not blocks:
                return
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"].extend(blocks)
            else:
                turns.append({"role": role, "content": blocks})

        for message in request.messages:
            if message.transient:
                continue
            blocks: list[dict[str, Any]] = []
            for part in message.parts:
                if isinstance(part, TextPart) and part.text:
                    blocks.append({"type": "text", "text": part.text})
                elif isinstance(part, AttachmentPart):
                    blocks.append({"type": "text", "text": attachment_note(part)})
                elif isinstance(part, ToolCallPart) and message.role == "assistant":
                    blocks.append(
                        {
                            "type": "tool_use",
                            "id": sanitize_tool_id(part.id),
                            "name": part.name,
                            "input": part.arguments,
                        }
                    )
                elif isinstance(part, ToolResultPart):
                    result: dict[str, Any] = {
                        "type": "tool_result",
                        "tool_use_id": sanitize_tool_id(part.tool_call_id),
                        "content": part.content,
                    }
                    if part.is_error:
                        result["is_error"] = True
                    blocks.append(result)
                elif isinstance(part, ReasoningPart) and message.role == "assistant":
                    block = _thinking_block(part)
                    if block is not None:
                        blocks.append(block)
            add("assistant" if message.role == "assistant" else "user", blocks)
        if marker and turns and turns[-1]["role"] == "user":
            turns[-1]["content"][-1]["cache_control"] = dict(marker)
        return turns

    # --- response -----------------------------------------------------------------------

    @asynccontextmanager
    async def _open(self, request: LlmRequest) -> AsyncIterator[Any]:
        body = self.build_body(request)
        headers = {**_RAW_STREAM, "anthropic-beta": self.beta_header(request)}
        try:
            response = await self._sdk.post(
                "/v1/messages",
                cast_to=cast(Any, httpx2.Response),
                body=body,
                options={"headers": headers},
            )
        except anthropic.APIStatusError as err:
            raise ProviderError(
                classify_http(err.status_code, err.response.headers, err.response.text)
            ) from err
        except anthropic.APIConnectionError as err:
            raise ProviderError(transport_failure(err)) from err
        try:
            yield response
        finally:
            await response.aclose()

    async def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        """One attempt: POST, then parse the event stream."""
        async with self._open(request) as response:
            parser = _MessagesParser(request_id=request_id_of(response.headers))
            async for payload in iter_payloads(response, request_id=parser.request_id):
                for event in parser.feed(payload):
                    yield event
        yield ResponseCompleted(response=parser.finish())


def _thinking_block(part: ReasoningPart) -> dict[str, Any] | None:
    """Thinking replays only with its signature (or as redacted data); else it is dropped."""
    replay = part.replay if isinstance(part.replay, dict) else {}
    if isinstance(replay.get("redacted_data"), str):
        return {"type": "redacted_thinking", "data": replay["redacted_data"]}
    signature = replay.get("signature")
    if isinstance(signature, str) and signature:
        return {"type": "thinking", "thinking": part.text, "signature": signature}
    return None


class _MessagesParser:
    """Turns Messages stream events into our events and one final response."""

    def __init__(self, *, request_id: str | None) -> None:
        self.request_id = request_id
        self._parts = PartsBuilder()
        self._usage_raw: dict[str, Any] = {}
        self._stop: str | None = None
        self._started = False
        self._stopped = False
        self._id: str | None = None
        self._model: str | None = None
        self._last_raw: str | None = None
        self._signatures: dict[int, list[str]] = {}

    def feed(self, payload: str) -> list[StreamEvent]:
        data = payload.strip()
        if not data or data == "[DONE]":
            return []
        self._last_raw = data
        event = decode_stream_event(data, self.request_id)
        kind = event.get("type")
        if kind == "error":
            raise ProviderError(classify_error_payload(event, raw=data, request_id=self.request_id))
        if kind == "message_start":
            message = event.get("message")
            if not isinstance(message, dict):
                message = {}
            self._started = True
            self._id = message.get("id") if isinstance(message.get("id"), str) else None
            self._model = message.get("model") if isinstance(message.get("model"), str) else None
            self._take_usage(message.get("usage"))
            return []
        if kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self._stop = delta["stop_reason"]
            self._take_usage(event.get("usage"))
            return []
        if kind == "message_stop":
            self._stopped = True
            return []
        index = event.get("index")
        index = index if isinstance(index, int) else 0
        if kind == "content_block_start":
            return self._block_start(index, event.get("content_block"))
        if kind == "content_block_delta":
            return self._block_delta(index, event.get("delta"))
        return []

    def _take_usage(self, raw: Any) -> None:
        if isinstance(raw, dict):
            for key, value in raw.items():
                if value not in (None, 0) or key not in self._usage_raw:
                    self._usage_raw[key] = value

    def _block_start(self, index: int, block: Any) -> list[StreamEvent]:
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            self._parts.text(index, text if isinstance(text, str) else "", order=(index,))
            if isinstance(text, str) and text:
                return [TextDelta(text=text)]
        elif kind == "thinking":
            text = block.get("thinking")
            self._parts.reasoning(index, text if isinstance(text, str) else "", order=(index,))
            if isinstance(text, str) and text:
                return [ReasoningDelta(text=text)]
        elif kind == "redacted_thinking":
            self._parts.reasoning(
                index, replay={"redacted_data": block.get("data")}, order=(index,)
            )
        elif kind in ("tool_use", "server_tool_use"):
            call_id = block.get("id") if isinstance(block.get("id"), str) else None
            name = block.get("name") if isinstance(block.get("name"), str) else None
            initial = block.get("input")
            arguments = json.dumps(initial) if isinstance(initial, dict) and initial else None
            self._parts.tool(
                index, call_id=call_id, name=name, arguments_delta=arguments or "", order=(index,)
            )
            return [ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments or "")]
        return []

    def _block_delta(self, index: int, delta: Any) -> list[StreamEvent]:
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str):
            self._parts.text(index, delta["text"], order=(index,))
            return [TextDelta(text=delta["text"])]
        if kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            self._parts.reasoning(index, delta["thinking"], order=(index,))
            return [ReasoningDelta(text=delta["thinking"])]
        if kind == "signature_delta" and isinstance(delta.get("signature"), str):
            self._signatures.setdefault(index, []).append(delta["signature"])
            self._parts.reasoning(
                index, replay={"signature": "".join(self._signatures[index])}, order=(index,)
            )
            return []
        if kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            fragment = delta["partial_json"]
            if fragment:
                self._parts.tool(index, arguments_delta=fragment, order=(index,))
                return [ToolCallDelta(index=index, arguments=fragment)]
        return []

    def _usage(self) -> tuple[TokenUsage | None, bool]:
        raw = self._usage_raw
        if not raw:
            return None, False
        uncached = int_or_zero(raw.get("input_tokens"))
        read = int_or_zero(raw.get("cache_read_input_tokens"))
        write = int_or_zero(raw.get("cache_creation_input_tokens"))
        details = raw.get("output_tokens_details")
        thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
        usage = usage_from_counts(
            total_input=uncached + read + write,
            cache_read=read,
            cache_write=write,
            output=int_or_zero(raw.get("output_tokens")),
            reasoning=int_or_zero(thinking),
        )
        return usage, thinking is not None

    def finish(self) -> LlmResponse:
        if not (self._started and self._stopped):
            raise ProviderError(
                stream_failure(
                    "the stream ended before message_stop",
                    code="stream_ended_before_message_stop",
                    raw=self._last_raw,
                    request_id=self.request_id,
                )
            )
        parts = self._parts.build()
        if self._stop is None:
            terminal: TerminalReason = (
                "tool_use" if any(isinstance(p, ToolCallPart) for p in parts) else "stop"
            )
        else:
            terminal = _STOP.get(self._stop, "provider_error")
        usage, reasoning_reported = self._usage()
        return LlmResponse(
            parts=parts,
            usage=usage,
            terminal_reason=terminal,
            evidence=evidence(
                served_model=self._model,
                response_id=self._id,
                request_id=self.request_id,
                usage=usage,
                reasoning_reported=reasoning_reported,
                finish_reason=self._stop,
            ),
        )
