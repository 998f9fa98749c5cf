"""OpenAI's Responses API (kind ``openai``), always streamed.

Conversation history is replayed statelessly (``store: false``): prose as message items, tool
calls as ``function_call`` items paired with ``function_call_output`` items by ``call_id``,
and reasoning as ``reasoning`` items only when we hold their encrypted content.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import httpx
import httpx2

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

__all__ = ["OpenAIResponsesProvider"]

OPENAI_BASE_URL = "https://api.openai.com/v1"

_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.done"})


class OpenAIResponsesProvider:
    """An adapter for ``POST /responses`` with server-sent events."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
        default_headers: Mapping[str, str] | None = None,
        max_output_tokens: int | None = DEFAULT_MAX_OUTPUT_TOKENS,
        cache_retention: Literal["none", "short", "long"] = "short",
        expose_thinking: bool = False,
        request_timeout_s: float = 300.0,
        chunk_timeout_s: float = 120.0,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.max_output_tokens = max_output_tokens
        self.cache_retention = cache_retention
        self.expose_thinking = expose_thinking
        self._sdk, self._http = make_client(
            api_key=api_key,
            base_url=self.base_url,
            http_client=http_client,
            default_headers=default_headers,
            request_timeout_s=request_timeout_s,
            chunk_timeout_s=chunk_timeout_s,
        )

    @property
    def kind(self) -> str:
        """``openai``."""
        return "openai"

    async def aclose(self) -> None:
        """Close the SDK client and its HTTP client."""
        await self._sdk.close()
        await self._http.aclose()

    # --- request ------------------------------------------------------------------------

    def build_body(self, request: LlmRequest) -> dict[str, Any]:
        """The exact JSON body sent for ``request``."""
        body: dict[str, Any] = {"model": request.model}
        if request.system:
            body["instructions"] = request.system
        body["input"] = self._input(request)
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                    "strict": False,
                }
                for t in request.tools
            ]
            body["tool_choice"] = request.tool_choice
            body["parallel_tool_calls"] = request.capabilities.parallel_tool_calls
        body["stream"] = True
        body["store"] = False
        cap = request.max_output_tokens or self.max_output_tokens
        if cap is not None:
            body["max_output_tokens"] = cap
        effort = checked_reasoning(request)
        if effort is not None:
            if effort == "disabled" or effort.isdigit():
                raise ProviderError(
                    ProviderFailure(
                        kind="validation",
                        message=f"reasoning setting {effort!r} cannot be expressed for Responses",
                        code="reasoning_encoding_unrepresentable",
                    )
                )
            reasoning: dict[str, Any] = {"effort": effort}
            if self.expose_thinking:
                reasoning["summary"] = "auto"
            body["reasoning"] = reasoning
            body["include"] = ["reasoning.encrypted_content"]
        schema = request.options.get("output_schema")
        if isinstance(schema, dict):
            body["text"] = {
                "format": {
                    "type": "json_schema",
                    "name": schema.get("name", "output"),
                    "schema": schema.get("schema", {}),
                    "strict": bool(schema.get("strict", True)),
                }
            }
        elif request.options.get("json_object"):
            body["text"] = {"format": {"type": "json_object"}}
        if request.session_id and self.cache_retention != "none":
            body["prompt_cache_key"] = f"{request.session_id}::{request.agent_frame_id or ''}"
            if self.cache_retention == "long":
                body["prompt_cache_retention"] = "24h"
        return body

    def _input(self, request: LlmRequest) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for message in request.messages:
            if message.transient:
                continue
            if message.role == "tool":
                for part in message.parts:
                    if isinstance(part, ToolResultPart):
                        items.append(
                            {
                                "type": "function_call_output",
                                "call_id": part.tool_call_id,
                                "output": part.content,
                            }
                        )
                continue
            if message.role != "assistant":
                content = [
                    {"type": "input_text", "text": p.text}
                    if isinstance(p, TextPart)
                    else {"type": "input_text", "text": attachment_note(p)}
                    for p in message.parts
                    if isinstance(p, TextPart | AttachmentPart)
                ]
                if content:
                    items.append({"role": message.role, "content": content})
                continue
            for part in message.parts:
                if isinstance(part, TextPart) and part.text:
                    items.append(
                        {
                            "type": "message",
                            "role": "assistant",
                            "content": [{"type": "output_text", "text": part.text}],
                        }
                    )
                elif isinstance(part, ToolCallPart):
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": part.id,
                            "name": part.name,
                            "arguments": tool_call_arguments(part),
                        }
                    )
                elif isinstance(part, ReasoningPart):
                    item = _reasoning_item(part)
                    if item is not None:
                        items.append(item)
        return items

    # --- response -----------------------------------------------------------------------

    async def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        """One attempt: POST, then parse the event stream."""
        body = self.build_body(request)
        async with open_raw(self._sdk, "/responses", body) as response:
            parser = _ResponsesParser(request_id=request_id_of(response.headers))
            async for payload in iter_payloads(response, request_id=parser.request_id):
                for event in parser.feed(payload):
                    yield event
        yield ResponseCompleted(response=parser.finish())


def _reasoning_item(part: ReasoningPart) -> dict[str, Any] | None:
    """A reasoning input item, only when we hold its encrypted content (else it cannot replay)."""
    replay = part.replay if isinstance(part.replay, dict) else {}
    encrypted = replay.get("encrypted_content")
    if not isinstance(encrypted, str) or not encrypted:
        return None
    item: dict[str, Any] = {"type": "reasoning", "encrypted_content": encrypted}
    if isinstance(replay.get("id"), str):
        item["id"] = replay["id"]
    summary = replay.get("summary")
    item["summary"] = summary if isinstance(summary, list) else []
    return item


class _ResponsesParser:
    """Turns Responses stream events into our events and one final response."""

    def __init__(self, *, request_id: str | None) -> None:
        self.request_id = request_id
        self._parts = PartsBuilder()
        self._usage: TokenUsage | None = None
        self._reasoning_reported = False
        self._terminal: dict[str, Any] | None = None
        self._refusal: list[str] = []
        self._id: str | None = None
        self._model: str | None = None
        self._last_raw: str | None = None
        self._streamed: set[int] = set()

    def feed(self, payload: str) -> list[StreamEvent]:
        data = payload.strip()
        if not data or data == "[DONE]":
            return []
        self._last_raw = data
        event = decode_stream_event(data, self.request_id)
        kind = event.get("type")
        response = event.get("response")
        if isinstance(response, dict):
            self._take_response(response)
        if kind == "error":
            raise ProviderError(classify_error_payload(event, raw=data, request_id=self.request_id))
        if kind == "response.failed":
            error = response.get("error") if isinstance(response, dict) else None
            raise ProviderError(
                classify_error_payload(
                    {"error": error} if error else event, raw=data, request_id=self.request_id
                )
            )
        if kind in _TERMINAL_EVENTS:
            self._terminal = response if isinstance(response, dict) else {}
            return []
        index = event.get("output_index")
        index = index if isinstance(index, int) else 0
        if kind == "response.output_item.added":
            return self._item(index, event.get("item"), done=False)
        if kind == "response.output_item.done":
            return self._item(index, event.get("item"), done=True)
        if kind == "response.output_text.delta":
            return self._text(index, event.get("delta"))
        if kind == "response.refusal.delta":
            delta = event.get("delta")
            if isinstance(delta, str):
                self._refusal.append(delta)
            return []
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                self._streamed.add(index)
                self._parts.reasoning(index, delta, order=(index,))
                return [ReasoningDelta(text=delta)]
            return []
        if kind == "response.function_call_arguments.delta":
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                self._parts.tool(index, arguments_delta=delta, order=(index,))
                return [ToolCallDelta(index=index, arguments=delta)]
            return []
        if kind == "response.function_call_arguments.done":
            arguments = event.get("arguments")
            if isinstance(arguments, str):
                self._parts.tool(index, arguments=arguments, order=(index,))
        return []

    def _text(self, index: int, delta: Any) -> list[StreamEvent]:
        if not isinstance(delta, str) or not delta:
            return []
        self._streamed.add(index)
        self._parts.text(index, delta, order=(index,))
        return [TextDelta(text=delta)]

    def _item(self, index: int, item: Any, *, done: bool) -> list[StreamEvent]:
        if not isinstance(item, dict):
            return []
        kind = item.get("type")
        if kind == "function_call":
            call_id = item.get("call_id") or item.get("id")
            name = item.get("name")
            arguments = item.get("arguments") if done else None
            self._parts.tool(
                index,
                call_id=call_id if isinstance(call_id, str) else None,
                name=name if isinstance(name, str) else None,
                arguments=arguments if isinstance(arguments, str) else None,
                order=(index,),
            )
            if not done:
                return [
                    ToolCallDelta(
                        index=index,
                        id=call_id if isinstance(call_id, str) else None,
                        name=name if isinstance(name, str) else None,
                    )
                ]
        elif kind == "message" and done and index not in self._streamed:
            text = "".join(
                c.get("text", "")
                for c in item.get("content") or []
                if isinstance(c, dict) and c.get("type") == "output_text"
            )
            if text:
                self._parts.set_text(index, text, order=(index,))
                return [TextDelta(text=text)]
        elif kind == "reasoning":
            summary = item.get("summary") if isinstance(item.get("summary"), list) else []
            replay: dict[str, Any] = {"id": item.get("id"), "summary": summary}
            if isinstance(item.get("encrypted_content"), str):
                replay["encrypted_content"] = item["encrypted_content"]
            text = ""
            if done and index not in self._streamed:
                text = "\n".join(s.get("text", "") for s in summary or [] if isinstance(s, dict))
            self._parts.reasoning(index, text, replay=replay if done else None, order=(index,))
            if text:
                return [ReasoningDelta(text=text)]
        return []

    def _take_response(self, response: dict[str, Any]) -> None:
        if isinstance(response.get("id"), str):
            self._id = response["id"]
        if isinstance(response.get("model"), str):
            self._model = response["model"]
        usage, reported = usage_from_openai(response.get("usage"))
        self._usage = merge_usage(self._usage, usage)
        self._reasoning_reported = self._reasoning_reported or reported

    def finish(self) -> LlmResponse:
        if self._terminal is None:
            raise ProviderError(
                stream_failure(
                    "the stream ended before a terminal response event",
                    code="stream_ended_before_terminal_response",
                    raw=self._last_raw,
                    request_id=self.request_id,
                )
            )
        terminal_response = self._terminal
        if self._parts.is_empty:
            for index, item in enumerate(terminal_response.get("output") or []):
                self._item(index, item, done=True)
        parts = self._parts.build()
        if self._refusal and not any(isinstance(p, TextPart) for p in parts):
            parts = (*parts, TextPart(text="".join(self._refusal)))
        status = terminal_response.get("status")
        details = terminal_response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        terminal: TerminalReason
        if reason in ("max_output_tokens", "max_tokens"):
            terminal = "output_limit"
        elif reason in ("content_filter", "safety") or self._refusal:
            terminal = "content_filter"
        elif status == "incomplete" or reason is not None:
            terminal = "provider_error"
        elif status == "cancelled":
            terminal = "cancelled"
        elif any(isinstance(p, ToolCallPart) for p in parts):
            terminal = "tool_use"
        else:
            terminal = "stop"
        finish = reason if isinstance(reason, str) else status if isinstance(status, str) else None
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
                finish_reason=finish,
            ),
        )
