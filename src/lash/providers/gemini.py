"""Google Gemini through the API-key Developer API (kind ``google``), buffered or streamed.

Gemini replays tool calls as ``functionCall`` parts in ``model`` turns answered by
``functionResponse`` parts in the following ``user`` turn. Its thought signatures must go back
on the part that carried them (Gemini 3 rejects a follow-up call without them), so a response
records each signature as a :class:`ReasoningPart` replay placed just before that part, and
the request builder re-attaches it to the next part.

Usage: thinking tokens are reported beside the candidate tokens, so output is
``candidates + thoughts`` and reasoning is ``thoughts`` (reasoning stays a subset of output).
A stream may end at EOF without a finish reason (Gemini's stream policy), unless the adapter
is built with ``stream_termination="require_terminal_evidence"``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, Literal, cast

import httpx
import msgspec
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as gtypes

from lash.providers._classify import classify_http, stream_failure, transport_failure
from lash.providers._common import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    PartsBuilder,
    evidence,
    int_or_zero,
    is_http_error,
    merge_usage,
    new_call_id,
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

__all__ = ["GeminiProvider"]

_CONTENT_FILTER = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "LANGUAGE",
    }
)
_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


class GeminiProvider:
    """An adapter for ``models/{model}:generateContent`` and ``:streamGenerateContent``."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        stream: bool = True,
        api_version: str = "v1beta",
        default_headers: Mapping[str, str] | None = None,
        max_output_tokens: int | None = DEFAULT_MAX_OUTPUT_TOKENS,
        expose_thinking: bool = False,
        stream_termination: Literal["require_terminal_evidence", "eof_tolerated"] = (
            "eof_tolerated"
        ),
        request_timeout_s: float = 300.0,
        chunk_timeout_s: float = 120.0,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.streaming = stream
        self.max_output_tokens = max_output_tokens
        self.expose_thinking = expose_thinking
        self.stream_termination = stream_termination
        timeout = httpx.Timeout(request_timeout_s, read=chunk_timeout_s)
        self._http = http_client if http_client is not None else httpx.AsyncClient(timeout=timeout)
        options = gtypes.HttpOptions(
            base_url=base_url,
            api_version=api_version,
            headers=dict(default_headers or {}),
            httpx_async_client=self._http,
        )
        # ``retry_options`` stays unset: the SDK then makes exactly one attempt.
        self._client = genai.Client(api_key=api_key or "", http_options=options)

    @property
    def kind(self) -> str:
        """``google``."""
        return "google"

    async def aclose(self) -> None:
        """Close the SDK client and its HTTP client."""
        await self._client.aio.aclose()
        await self._http.aclose()

    # --- request ------------------------------------------------------------------------

    def build_config(self, request: LlmRequest) -> gtypes.GenerateContentConfig:
        """Everything but the contents: system, tools, limits, thinking, output format."""
        config = gtypes.GenerateContentConfig(
            automatic_function_calling=gtypes.AutomaticFunctionCallingConfig(disable=True),
        )
        if request.system:
            config.system_instruction = request.system
        if request.tools:
            config.tools = [
                gtypes.Tool(
                    function_declarations=[
                        gtypes.FunctionDeclaration(
                            name=t.name,
                            description=t.description,
                            parameters_json_schema=t.parameters,
                        )
                        for t in request.tools
                    ]
                )
            ]
            config.tool_config = gtypes.ToolConfig(
                function_calling_config=gtypes.FunctionCallingConfig(
                    mode=gtypes.FunctionCallingConfigMode(_MODES[request.tool_choice])
                )
            )
        cap = request.max_output_tokens or self.max_output_tokens
        if cap is not None:
            config.max_output_tokens = cap
        effort = checked_reasoning(request)
        if effort is not None or self.expose_thinking:
            thinking = gtypes.ThinkingConfig()
            if effort == "disabled":
                thinking.thinking_budget = 0
            elif effort is not None and effort.isdigit():
                thinking.thinking_budget = int(effort)
            elif effort is not None:
                thinking.thinking_level = gtypes.ThinkingLevel(effort.upper())
            if self.expose_thinking and effort != "disabled":
                thinking.include_thoughts = True
            config.thinking_config = thinking
        schema = request.options.get("output_schema")
        if isinstance(schema, dict):
            config.response_mime_type = "application/json"
            config.response_json_schema = schema.get("schema", {})
        elif request.options.get("json_object"):
            config.response_mime_type = "application/json"
        return config

    def build_contents(self, request: LlmRequest) -> list[gtypes.Content]:
        """History as alternating ``user``/``model`` turns."""
        turns: list[gtypes.Content] = []

        def add(role: str, parts: list[gtypes.Part]) -> None:
            if not parts:
                return
            if turns and turns[-1].role == role and turns[-1].parts is not None:
                turns[-1].parts.extend(parts)
            else:
                turns.append(gtypes.Content(role=role, parts=parts))

        for message in request.messages:
            if message.transient:
                continue
            parts: list[gtypes.Part] = []
            signature: bytes | None = None
            for part in message.parts:
                if isinstance(part, ReasoningPart):
                    signature = _signature(part) or signature
                    continue
                built: gtypes.Part | None = None
                if isinstance(part, TextPart) and part.text:
                    built = gtypes.Part(text=part.text)
                elif isinstance(part, AttachmentPart):
                    built = gtypes.Part(text=attachment_note(part))
                elif isinstance(part, ToolCallPart) and message.role == "assistant":
                    built = gtypes.Part(
                        function_call=gtypes.FunctionCall(name=part.name, args=part.arguments)
                    )
                elif isinstance(part, ToolResultPart):
                    key = "error" if part.is_error else "output"
                    built = gtypes.Part(
                        function_response=gtypes.FunctionResponse(
                            name=part.name, response={key: part.content}
                        )
                    )
                if built is not None:
                    if signature is not None and message.role == "assistant":
                        built.thought_signature = signature
                        signature = None
                    parts.append(built)
            add("model" if message.role == "assistant" else "user", parts)
        return turns

    # --- response -----------------------------------------------------------------------

    async def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        """One attempt, streamed (``streamGenerateContent?alt=sse``) or buffered."""
        contents: Any = self.build_contents(request)
        config = self.build_config(request)
        parser = _GeminiParser()
        try:
            if self.streaming:
                chunks = await self._client.aio.models.generate_content_stream(
                    model=request.model, contents=contents, config=config
                )
                # closing the SDK's generator releases the HTTP response on every exit path
                async with aclosing(cast(AsyncGenerator[Any, None], chunks)) as stream:
                    async for chunk in stream:
                        for event in parser.feed(chunk):
                            yield event
            else:
                response = await self._client.aio.models.generate_content(
                    model=request.model, contents=contents, config=config
                )
                for event in parser.feed(response):
                    yield event
        except genai_errors.APIError as err:
            raise ProviderError(_classify_api_error(err, parser.request_id)) from err
        except genai_errors.UnknownApiResponseError as err:
            cause = err.__cause__
            raw = getattr(cause, "doc", None) or str(err)
            raise ProviderError(
                stream_failure(
                    f"malformed JSON from the provider: {cause or err}",
                    code="stream_malformed_json",
                    raw=raw,
                    request_id=parser.request_id,
                )
            ) from err
        except Exception as err:
            if not is_http_error(err):
                raise
            raise ProviderError(transport_failure(err, request_id=parser.request_id)) from err
        strict = self.streaming and self.stream_termination == "require_terminal_evidence"
        yield ResponseCompleted(response=parser.finish(strict=strict))


def _signature(part: ReasoningPart) -> bytes | None:
    replay = part.replay if isinstance(part.replay, dict) else {}
    encoded = replay.get("thought_signature")
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded)
    except ValueError:
        return None


def _classify_api_error(err: genai_errors.APIError, request_id: str | None) -> ProviderFailure:
    response = err.response
    headers: Any = getattr(response, "headers", {}) or {}
    text = getattr(response, "text", None)
    if not isinstance(text, str) or not text:
        text = json.dumps(err.details) if err.details is not None else str(err)
    failure = classify_http(int(err.code or 0), headers, text)
    if failure.provider_request_id is None and request_id is not None:
        failure = msgspec.structs.replace(failure, provider_request_id=request_id)
    return failure


class _GeminiParser:
    """Accumulates ``GenerateContentResponse`` chunks into events and one response."""

    def __init__(self) -> None:
        self.request_id: str | None = None
        self._parts = PartsBuilder()
        self._slot = 0
        self._open: str | None = None
        self._usage: TokenUsage | None = None
        self._reasoning_reported = False
        self._finish: str | None = None
        self._id: str | None = None
        self._model: str | None = None
        self._calls = 0

    def feed(self, chunk: gtypes.GenerateContentResponse) -> list[StreamEvent]:
        http = chunk.sdk_http_response
        if self.request_id is None and http is not None and http.headers:
            self.request_id = request_id_of(httpx.Headers(http.headers))
        self._id = self._id or chunk.response_id
        self._model = self._model or chunk.model_version
        self._take_usage(chunk.usage_metadata)
        events: list[StreamEvent] = []
        for candidate in (chunk.candidates or [])[:1]:
            if candidate.finish_reason is not None:
                self._finish = str(candidate.finish_reason.value)
            content = candidate.content
            for part in (content.parts if content is not None else None) or []:
                events += self._part(part)
        return events

    def _next(self, kind: str) -> int:
        if self._open != kind or kind in ("tool", "signature"):
            self._slot += 1
            self._open = kind
        return self._slot

    def _part(self, part: gtypes.Part) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        if part.thought_signature:
            encoded = base64.b64encode(part.thought_signature).decode("ascii")
            self._parts.reasoning(self._next("signature"), replay={"thought_signature": encoded})
        if part.function_call is not None:
            call = part.function_call
            arguments = json.dumps(call.args or {}, ensure_ascii=False)
            index = self._calls
            self._calls += 1
            call_id = call.id or new_call_id()
            self._parts.tool(
                self._next("tool"), call_id=call_id, name=call.name, arguments=arguments
            )
            events.append(
                ToolCallDelta(index=index, id=call_id, name=call.name, arguments=arguments)
            )
        elif part.text:
            if part.thought:
                self._parts.reasoning(self._next("reasoning"), part.text)
                events.append(ReasoningDelta(text=part.text))
            else:
                self._parts.text(self._next("text"), part.text)
                events.append(TextDelta(text=part.text))
        return events

    def _take_usage(self, meta: gtypes.GenerateContentResponseUsageMetadata | None) -> None:
        if meta is None:
            return
        thoughts = meta.thoughts_token_count
        cached = int_or_zero(meta.cached_content_token_count)
        usage = usage_from_counts(
            total_input=int_or_zero(meta.prompt_token_count),
            cache_read=cached,
            output=int_or_zero(meta.candidates_token_count) + int_or_zero(thoughts),
            reasoning=int_or_zero(thoughts),
        )
        self._usage = merge_usage(self._usage, usage)
        self._reasoning_reported = self._reasoning_reported or thoughts is not None

    def finish(self, *, strict: bool) -> LlmResponse:
        if strict and self._finish is None:
            raise ProviderError(
                stream_failure(
                    "the stream ended before a finish reason",
                    code="stream_ended_before_finish_reason",
                    request_id=self.request_id,
                )
            )
        parts = self._parts.build()
        terminal: TerminalReason
        if self._finish in (None, "FINISH_REASON_UNSPECIFIED", "STOP"):
            terminal = "tool_use" if any(isinstance(p, ToolCallPart) for p in parts) else "stop"
        elif self._finish == "MAX_TOKENS":
            terminal = "output_limit"
        elif self._finish in _CONTENT_FILTER:
            terminal = "content_filter"
        else:
            terminal = "provider_error"
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
