"""Any OpenAI-compatible Chat Completions endpoint (kind ``openai-compatible``).

OpenRouter, vLLM, llama.cpp, Ollama, Together and OpenAI itself speak this dialect with small
differences. Those differences are explicit data in :class:`ChatCompat` (with presets), never
guessed from the URL or the model name.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import httpx
import httpx2
import msgspec

from lash.providers._classify import classify_error_payload, stream_failure
from lash.providers._common import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    PartsBuilder,
    decode_stream_event,
    evidence,
    iter_payloads,
    merge_usage,
    request_id_of,
    usage_from_openai,
)
from lash.providers._openai_http import make_client, open_raw
from lash.providers._render import attachment_note, checked_reasoning, tool_call_arguments
from lash.providers.base import ProviderError
from lash.providers.retry import RetryPolicy
from lash.types import (
    AttachmentPart,
    LlmRequest,
    LlmResponse,
    ProviderFailure,
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
from lash.types._base import Record

__all__ = ["OPENROUTER_BASE_URL", "ChatCompat", "OpenAIChatProvider"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"

CacheRetention = Literal["none", "short", "long"]


class ChatCompat(Record, frozen=True, kw_only=True):
    """How one Chat Completions endpoint differs from the common dialect.

    ``max_tokens_field`` names the output-cap field (``omit`` sends none); ``reasoning_format``
    picks how ``LlmRequest.reasoning`` is encoded (``none`` sends nothing); ``request_fields``
    sends ``parallel_tool_calls``; ``streaming_usage`` asks for a final usage chunk;
    ``session_affinity`` sends the session id and request id so a router keeps a session on
    one backend; ``stream=False`` uses buffered responses.
    """

    max_tokens_field: Literal[
        "max_tokens", "max_completion_tokens", "max_output_tokens", "omit"
    ] = "max_tokens"
    reasoning_format: Literal["none", "openai", "openrouter"] = "none"
    request_fields: bool = True
    streaming_usage: bool = True
    store: bool | None = None
    session_affinity: bool = False
    prompt_cache_key: bool = False
    strict_tools: bool = False
    stream: bool = True
    stream_termination: Literal["require_terminal_evidence", "eof_tolerated"] | None = None
    provider_routing: dict[str, Any] | None = None
    extra_body: dict[str, Any] = msgspec.field(default_factory=dict)

    @classmethod
    def openai(cls) -> ChatCompat:
        """OpenAI's own Chat Completions."""
        return cls(max_tokens_field="max_completion_tokens", reasoning_format="openai", store=False)

    @classmethod
    def openrouter(cls) -> ChatCompat:
        """OpenRouter: its reasoning object, session affinity, strict stream termination."""
        return cls(
            reasoning_format="openrouter",
            session_affinity=True,
            stream_termination="require_terminal_evidence",
        )

    @classmethod
    def local(cls) -> ChatCompat:
        """Local servers (vLLM, llama.cpp, Ollama): no optional request fields."""
        return cls(request_fields=False, streaming_usage=False)

    @classmethod
    def together(cls) -> ChatCompat:
        """Together AI."""
        return cls()

    vllm = local
    ollama = local
    llamacpp = local


_FINISH: dict[str, TerminalReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "output_limit",
    "max_tokens": "output_limit",
    "content_filter": "content_filter",
    "safety": "content_filter",
}


def _unrepresentable(reasoning: str, dialect: str) -> ProviderError:
    return ProviderError(
        ProviderFailure(
            kind="validation",
            message=f"reasoning setting {reasoning!r} cannot be expressed in the {dialect} dialect",
            code="reasoning_encoding_unrepresentable",
        )
    )


class OpenAIChatProvider:
    """An adapter for Chat Completions endpoints (streamed or buffered)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
        compat: ChatCompat | None = None,
        default_headers: Mapping[str, str] | None = None,
        max_output_tokens: int | None = DEFAULT_MAX_OUTPUT_TOKENS,
        cache_retention: CacheRetention = "short",
        request_timeout_s: float = 300.0,
        chunk_timeout_s: float = 120.0,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.compat = compat or ChatCompat()
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.max_output_tokens = max_output_tokens
        self.cache_retention: CacheRetention = cache_retention
        self._sdk, self._http = make_client(
            api_key=api_key,
            base_url=self.base_url,
            http_client=http_client,
            default_headers=default_headers,
            request_timeout_s=request_timeout_s,
            chunk_timeout_s=chunk_timeout_s,
        )

    @classmethod
    def openrouter(cls, *, api_key: str, **options: Any) -> OpenAIChatProvider:
        """OpenRouter with its preset."""
        options.setdefault("base_url", OPENROUTER_BASE_URL)
        options.setdefault("compat", ChatCompat.openrouter())
        return cls(api_key=api_key, **options)

    @property
    def kind(self) -> str:
        """``openai-compatible``."""
        return "openai-compatible"

    async def aclose(self) -> None:
        """Close the SDK client and its HTTP client."""
        await self._sdk.close()
        await self._http.aclose()

    # --- request ------------------------------------------------------------------------

    def build_body(self, request: LlmRequest) -> dict[str, Any]:
        """The exact JSON body sent for ``request``."""
        compat = self.compat
        body: dict[str, Any] = {"model": request.model, "messages": self._messages(request)}
        if request.tools:
            body["tools"] = [self._tool(t.name, t.description, t.parameters) for t in request.tools]
            body["tool_choice"] = request.tool_choice
            if compat.request_fields:
                body["parallel_tool_calls"] = request.capabilities.parallel_tool_calls
        cap = request.max_output_tokens or self.max_output_tokens
        if cap is not None and compat.max_tokens_field != "omit":
            body[compat.max_tokens_field] = cap
        self._reasoning(request, body)
        schema = request.options.get("output_schema")
        if isinstance(schema, dict):
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema.get("name", "output"),
                    "schema": schema.get("schema", {}),
                    "strict": bool(schema.get("strict", True)),
                },
            }
        elif request.options.get("json_object"):
            body["response_format"] = {"type": "json_object"}
        body["stream"] = compat.stream
        if compat.stream and compat.streaming_usage:
            body["stream_options"] = {"include_usage": True}
        if compat.store is not None:
            body["store"] = compat.store
        if compat.prompt_cache_key and request.session_id and self.cache_retention != "none":
            body["prompt_cache_key"] = f"{request.session_id}::{request.agent_frame_id or ''}"
        if compat.session_affinity and request.session_id:
            body["session_id"] = request.session_id[:256]
        if compat.provider_routing:
            body["provider"] = dict(compat.provider_routing)
        body.update(compat.extra_body)
        self._cache_markers(request, body)
        return body

    def _tool(self, name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
        function: dict[str, Any] = {
            "name": name,
            "description": description,
            "parameters": parameters,
        }
        if self.compat.strict_tools:
            function["strict"] = True
        return {"type": "function", "function": function}

    def _reasoning(self, request: LlmRequest, body: dict[str, Any]) -> None:
        effort = checked_reasoning(request)
        dialect = self.compat.reasoning_format
        if effort is None or dialect == "none":
            return
        if dialect == "openai":
            if effort == "disabled" or effort.isdigit():
                raise _unrepresentable(effort, "openai")
            body["reasoning_effort"] = effort
        elif effort == "disabled":
            body["reasoning"] = {"enabled": False}
        elif effort.isdigit():
            body["reasoning"] = {"max_tokens": int(effort)}
        else:
            body["reasoning"] = {"effort": effort}

    def _messages(self, request: LlmRequest) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if request.system:
            out.append({"role": "system", "content": request.system})
        for message in request.messages:
            if message.transient:
                continue
            if message.role == "tool":
                for part in message.parts:
                    if isinstance(part, ToolResultPart):
                        out.append(
                            {
                                "role": "tool",
                                "tool_call_id": part.tool_call_id,
                                "content": part.content,
                            }
                        )
                continue
            texts: list[str] = []
            calls: list[dict[str, Any]] = []
            details: list[Any] = []
            for part in message.parts:
                if isinstance(part, TextPart):
                    texts.append(part.text)
                elif isinstance(part, AttachmentPart):
                    texts.append(attachment_note(part))
                elif isinstance(part, ToolCallPart):
                    calls.append(
                        {
                            "id": part.id,
                            "type": "function",
                            "function": {"name": part.name, "arguments": tool_call_arguments(part)},
                        }
                    )
                elif isinstance(part, ReasoningPart) and isinstance(part.replay, dict):
                    replay_details = part.replay.get("reasoning_details")
                    if isinstance(replay_details, list):
                        details.extend(replay_details)
            text = "".join(texts)
            if message.role == "assistant":
                entry: dict[str, Any] = {"role": "assistant", "content": text or None}
                if calls:
                    entry["tool_calls"] = calls
                if details:
                    entry["reasoning_details"] = details
                if text or calls:
                    out.append(entry)
            else:
                out.append({"role": message.role, "content": text})
        return out

    def _cache_markers(self, request: LlmRequest, body: dict[str, Any]) -> None:
        dialect = request.capabilities.cache_control
        if dialect is None or self.cache_retention == "none":
            return
        marker: dict[str, Any] = {"type": "ephemeral"}
        if self.cache_retention == "long" and dialect == "anthropic":
            marker["ttl"] = "1h"
        messages: list[dict[str, Any]] = body["messages"]

        def mark(entry: dict[str, Any]) -> None:
            content = entry.get("content")
            if isinstance(content, str) and content:
                entry["content"] = [
                    {"type": "text", "text": content, "cache_control": dict(marker)}
                ]

        if dialect == "anthropic":
            for entry in messages:
                if entry["role"] == "system":
                    mark(entry)
                    break
            if body.get("tools"):
                body["tools"][-1]["cache_control"] = dict(marker)
        for entry in reversed(messages):
            if entry["role"] in ("user", "assistant") and isinstance(entry.get("content"), str):
                mark(entry)
                break

    # --- response -----------------------------------------------------------------------

    async def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        """One attempt: POST, then parse the stream (or buffered body) into events."""
        body = self.build_body(request)
        headers: dict[str, str] = {}
        if self.compat.session_affinity and request.request_id:
            headers["x-client-request-id"] = request.request_id
        async with open_raw(self._sdk, "/chat/completions", body, headers=headers) as response:
            parser = _ChatParser(request_id=request_id_of(response.headers))
            async for payload in iter_payloads(response, request_id=parser.request_id):
                for event in parser.feed(payload):
                    yield event
        strict = (
            self.compat.stream_termination or request.capabilities.stream_termination
        ) == "require_terminal_evidence"
        yield ResponseCompleted(response=parser.finish(streamed=self.compat.stream, strict=strict))


class _ChatParser:
    """Turns Chat Completions chunks (or one buffered completion) into events and a response."""

    def __init__(self, *, request_id: str | None) -> None:
        self.request_id = request_id
        self._parts = PartsBuilder()
        self._usage: TokenUsage | None = None
        self._reasoning_reported = False
        self._finish: str | None = None
        self._refusal: list[str] = []
        self._id: str | None = None
        self._model: str | None = None
        self._last_raw: str | None = None

    def feed(self, payload: str) -> list[StreamEvent]:
        data = payload.strip()
        if not data:
            return []
        if data == "[DONE]":
            return []  # a sentinel, not terminal evidence: finish_reason is
        self._last_raw = data
        chunk = decode_stream_event(data, self.request_id)
        if chunk.get("error"):
            raise ProviderError(classify_error_payload(chunk, raw=data, request_id=self.request_id))
        self._id = self._id or _str(chunk.get("id"))
        self._model = self._model or _str(chunk.get("model"))
        self._take_usage(chunk.get("usage"))
        events: list[StreamEvent] = []
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                continue
            self._take_usage(choice.get("usage"))
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish and self._finish is None:
                self._finish = finish
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice.get("message")
            if isinstance(delta, dict):
                events += self._delta(delta)
        return events

    def _take_usage(self, raw: Any) -> None:
        usage, reported = usage_from_openai(raw)
        self._usage = merge_usage(self._usage, usage)
        self._reasoning_reported = self._reasoning_reported or reported

    def _delta(self, delta: dict[str, Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for key in ("reasoning_content", "reasoning", "reasoning_text"):
            value = delta.get(key)
            if isinstance(value, str) and value:
                self._parts.reasoning("reasoning", value, order=(0,))
                events.append(ReasoningDelta(text=value))
                break
        details = delta.get("reasoning_details")
        if isinstance(details, list) and details:
            self._parts.reasoning("reasoning", replay={"reasoning_details": details}, order=(0,))
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._parts.text("text", content, order=(1,))
            events.append(TextDelta(text=content))
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refusal.append(refusal)
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            if not isinstance(call, dict):
                continue
            index = call.get("index")
            index = index if isinstance(index, int) else position
            function = call.get("function")
            if not isinstance(function, dict):
                function = {}
            call_id = _str(call.get("id"))
            name = _str(function.get("name"))
            arguments = function.get("arguments")
            if isinstance(arguments, dict):
                arguments = json.dumps(arguments)
            fragment = arguments if isinstance(arguments, str) else ""
            self._parts.tool(
                ("tool", index),
                call_id=call_id,
                name=name,
                arguments_delta=fragment,
                order=(2, index),
            )
            events.append(ToolCallDelta(index=index, id=call_id, name=name, arguments=fragment))
        return events

    def finish(self, *, streamed: bool, strict: bool) -> LlmResponse:
        if streamed and strict and self._finish is None and not self._refusal:
            raise ProviderError(
                stream_failure(
                    "the stream ended before a finish_reason",
                    code="stream_ended_before_finish_reason",
                    raw=self._last_raw,
                    request_id=self.request_id,
                )
            )
        parts = self._parts.build()
        if self._refusal and not any(isinstance(p, TextPart) for p in parts):
            parts = (*parts, TextPart(text="".join(self._refusal)))
        terminal: TerminalReason
        if self._refusal:
            terminal = "content_filter"
        elif self._finish is None:
            terminal = "tool_use" if any(isinstance(p, ToolCallPart) for p in parts) else "stop"
        else:
            terminal = _FINISH.get(self._finish, "provider_error")
        if not parts and terminal not in ("output_limit", "content_filter", "cancelled"):
            raise ProviderError(
                ProviderFailure(
                    kind="stream",
                    message="the provider returned no text, reasoning or tool call",
                    retryable=True,
                    code="empty_response",
                    provider_request_id=self.request_id,
                    raw=self._last_raw,
                )
            )
        return LlmResponse(
            parts=parts,
            usage=self._usage,
            terminal_reason=terminal,
            evidence=evidence(
                served_model=self._model,
                response_id=self._id,
                request_id=self.request_id,
                usage=self._usage,
                reasoning_reported=self._reasoning_reported,
                finish_reason=self._finish,
            ),
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
