"""Pieces every adapter shares: response assembly, usage buckets, evidence and body reading.

Adapters differ in wire dialect only; how a streamed tool call becomes a ``ToolCallPart``,
how provider usage lands in our five buckets and how a response body is framed are the same
everywhere and live here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Hashable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from lash.providers._classify import first_header, stream_failure, transport_failure
from lash.providers._sse import SseDecodeError, SseDecoder
from lash.providers.base import ProviderError
from lash.types import (
    ExecutionEvidence,
    ProviderFailure,
    ReasoningPart,
    ResponsePart,
    TextPart,
    TokenUsage,
    ToolCallPart,
)

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "PartsBuilder",
    "evidence",
    "int_or_zero",
    "is_http_error",
    "iter_payloads",
    "merge_usage",
    "new_call_id",
    "parse_arguments",
    "request_id_of",
    "usage_from_counts",
]

DEFAULT_MAX_OUTPUT_TOKENS = 32_768


def decode_stream_event(data: str, request_id: str | None) -> dict[str, Any]:
    """One SSE ``data`` payload as a JSON object, or a ``stream_malformed_json`` failure.

    Every streaming adapter decodes its events the same way; only what it does with the
    object differs.
    """
    try:
        event = json.loads(data)
    except ValueError as err:
        raise ProviderError(
            stream_failure(
                f"malformed JSON in the response stream: {err}",
                code="stream_malformed_json",
                raw=data,
                request_id=request_id,
            )
        ) from err
    if not isinstance(event, dict):
        raise ProviderError(
            stream_failure(
                "a stream event was not a JSON object",
                code="stream_malformed_json",
                raw=data,
                request_id=request_id,
            )
        )
    return event


def new_call_id() -> str:
    """An id for a tool call the provider did not name."""
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_arguments(raw: str) -> dict[str, Any]:
    """Parse tool arguments; anything but a JSON object becomes ``{}`` (the raw text is kept)."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def int_or_zero(value: Any) -> int:
    """A token count from provider JSON (missing, null or junk count as zero)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float):
        return max(0, int(value))
    return 0


def usage_from_counts(
    *,
    total_input: int,
    cache_read: int = 0,
    cache_write: int = 0,
    output: int = 0,
    reasoning: int = 0,
) -> TokenUsage:
    """Our buckets from provider totals: uncached input = total − cache read − cache write."""
    return TokenUsage(
        input_tokens=max(0, total_input - cache_read - cache_write),
        cache_read_input_tokens=cache_read,
        cache_write_input_tokens=cache_write,
        output_tokens=output,
        reasoning_output_tokens=min(reasoning, output) if output else reasoning,
    )


def merge_usage(old: TokenUsage | None, new: TokenUsage | None) -> TokenUsage | None:
    """Streaming merge: a later report overwrites a bucket only with a non-zero value."""
    if old is None:
        return new
    if new is None:
        return old

    def pick(a: int, b: int) -> int:
        return b if b else a

    return TokenUsage(
        input_tokens=pick(old.input_tokens, new.input_tokens),
        cache_read_input_tokens=pick(old.cache_read_input_tokens, new.cache_read_input_tokens),
        cache_write_input_tokens=pick(old.cache_write_input_tokens, new.cache_write_input_tokens),
        output_tokens=pick(old.output_tokens, new.output_tokens),
        reasoning_output_tokens=pick(old.reasoning_output_tokens, new.reasoning_output_tokens),
    )


def evidence(
    *,
    served_model: str | None = None,
    response_id: str | None = None,
    request_id: str | None = None,
    usage: TokenUsage | None = None,
    reasoning_reported: bool = False,
    finish_reason: str | None = None,
) -> ExecutionEvidence | None:
    """Evidence holding only what the provider reported (``None`` when it reported nothing)."""
    reasoning = usage.reasoning_output_tokens if usage is not None and reasoning_reported else None
    if not any(v is not None for v in (served_model, response_id, request_id, reasoning)) and (
        finish_reason is None
    ):
        return None
    return ExecutionEvidence(
        served_model=served_model or None,
        provider_response_id=response_id or None,
        provider_request_id=request_id or None,
        reasoning_output_tokens=reasoning,
        provider_finish_reason=finish_reason or None,
    )


def request_id_of(headers: Any) -> str | None:
    """The provider's request id header (the first, when it is repeated)."""
    for name in ("x-request-id", "request-id", "x-goog-request-id"):
        value = first_header(headers, name)
        if value:
            return value
    return None


@dataclass
class _Slot:
    kind: str
    order: tuple[Any, ...]
    chunks: list[str] = field(default_factory=list)
    replay: Any = None
    call_id: str | None = None
    name: str | None = None
    final_arguments: str | None = None


class PartsBuilder:
    """Collects streamed fragments into ordered response parts.

    Each fragment names a slot key (an output index, a block index, ...). Parts come out sorted
    by the slot's ``order`` (insertion order unless given), so tool calls keep the order the
    provider indexed them in even when fragments interleave.
    """

    def __init__(self) -> None:
        self._slots: dict[Hashable, _Slot] = {}

    def _slot(self, key: Hashable, kind: str, order: tuple[Any, ...] | None) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = _Slot(kind=kind, order=order if order is not None else (len(self._slots),))
            self._slots[key] = slot
        return slot

    def text(self, key: Hashable, delta: str, *, order: tuple[Any, ...] | None = None) -> None:
        """Append prose."""
        self._slot(key, "text", order).chunks.append(delta)

    def set_text(self, key: Hashable, text: str, *, order: tuple[Any, ...] | None = None) -> None:
        """Replace a slot's prose with the provider's final text (when it sends one)."""
        slot = self._slot(key, "text", order)
        slot.chunks = [text]

    def reasoning(
        self,
        key: Hashable,
        delta: str = "",
        *,
        replay: Any = None,
        order: tuple[Any, ...] | None = None,
    ) -> None:
        """Append reasoning text and/or set its replay payload."""
        slot = self._slot(key, "reasoning", order)
        if delta:
            slot.chunks.append(delta)
        if replay is not None:
            slot.replay = replay

    def tool(
        self,
        key: Hashable,
        *,
        call_id: str | None = None,
        name: str | None = None,
        arguments_delta: str = "",
        arguments: str | None = None,
        order: tuple[Any, ...] | None = None,
    ) -> None:
        """Record a tool-call fragment; ``arguments`` (when given) is the final full text."""
        slot = self._slot(key, "tool", order)
        if call_id:
            slot.call_id = call_id
        if name:
            slot.name = name
        if arguments_delta:
            slot.chunks.append(arguments_delta)
        if arguments is not None:
            slot.final_arguments = arguments

    def has_tool(self, key: Hashable) -> bool:
        """True when ``key`` names a tool-call slot."""
        slot = self._slots.get(key)
        return slot is not None and slot.kind == "tool"

    def build(self) -> tuple[ResponsePart, ...]:
        """The parts, in order; empty text and reasoning without replay are dropped."""
        out: list[ResponsePart] = []
        for slot in sorted(self._slots.values(), key=lambda s: s.order):
            joined = "".join(slot.chunks)
            if slot.kind == "text":
                if joined:
                    out.append(TextPart(text=joined))
            elif slot.kind == "reasoning":
                if joined or slot.replay is not None:
                    out.append(ReasoningPart(text=joined, replay=slot.replay))
            else:
                raw = slot.final_arguments if slot.final_arguments is not None else joined
                out.append(
                    ToolCallPart(
                        id=slot.call_id or new_call_id(),
                        name=slot.name or "",
                        arguments=parse_arguments(raw),
                        raw_arguments=raw,
                    )
                )
        return tuple(out)

    @property
    def is_empty(self) -> bool:
        """True when nothing with content was collected."""
        return not any(
            slot.kind == "tool" or slot.replay is not None or any(slot.chunks)
            for slot in self._slots.values()
        )


def is_http_error(exc: BaseException) -> bool:
    """True for an exception raised by httpx or its fork httpx2 (the SDKs use either)."""
    return any(
        cls.__module__.split(".")[0] in ("httpx", "httpx2") and cls.__name__ == "HTTPError"
        for cls in type(exc).__mro__
    )


async def iter_payloads(response: Any, *, request_id: str | None = None) -> AsyncIterator[str]:
    """Yield the data payloads of an SSE body, or the whole body when it is plain JSON.

    Transport failures mid-body and undecodable bytes raise ``ProviderError`` (kind ``stream``
    or ``timeout``) carrying what had been received in ``raw``. When the connection drops
    mid-event, a buffered event that is already complete JSON is handed over first, so the
    caller accounts for everything the provider actually delivered.
    """
    content_type = response.headers.get("content-type", "").lower()
    decoder = SseDecoder()
    sse = "event-stream" in content_type
    buffered = bytearray()
    broken: ProviderError | None = None
    try:
        async for chunk in response.aiter_bytes():
            if sse:
                for payload in decoder.feed(chunk):
                    yield payload
            else:
                buffered.extend(chunk)
    except SseDecodeError as err:
        raise ProviderError(
            stream_failure(
                str(err), code="stream_decode_error", raw=repr(err.raw), request_id=request_id
            )
        ) from err
    except Exception as err:
        if not is_http_error(err):
            raise
        failure = transport_failure(err, request_id=request_id)
        pending = decoder.pending if sse else bytes(buffered).decode("utf-8", errors="replace")
        if pending:
            failure = _with_raw(failure, pending)
        broken = ProviderError(failure)
        broken.__cause__ = err
    if broken is not None:
        if sse:
            try:
                salvage = decoder.flush()
            except SseDecodeError:
                salvage = []
            for payload in salvage:
                if _is_json(payload):
                    yield payload
        raise broken
    if sse:
        for payload in decoder.flush():
            yield payload
        return
    body = bytes(buffered)
    if body.lstrip().startswith(b"data:"):
        for payload in [*decoder.feed(body), *decoder.flush()]:
            yield payload
        return
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProviderError(
            stream_failure(
                "invalid UTF-8 in response body",
                code="stream_decode_error",
                raw=repr(body[:2000]),
                request_id=request_id,
            )
        ) from err
    if text.strip():
        yield text


def _is_json(payload: str) -> bool:
    try:
        json.loads(payload)
    except ValueError:
        return False
    return True


def _with_raw(failure: ProviderFailure, pending: str) -> ProviderFailure:
    raw = f"{failure.raw or ''}\n--- received before failure ---\n{pending}"
    return msgspec.structs.replace(failure, raw=raw)


def _first_count(source: Any, *paths: str) -> tuple[int, bool]:
    """The first of ``paths`` (dotted) present in ``source``, and whether any was present."""
    for path in paths:
        current = source
        for key in path.split("."):
            current = current.get(key) if isinstance(current, dict) else None
        if current is not None:
            return int_or_zero(current), True
    return 0, False


def usage_from_openai(raw: Any) -> tuple[TokenUsage | None, bool]:
    """Our buckets from an OpenAI-shaped ``usage`` object (Chat or Responses, and clones).

    Returns the usage (``None`` when there was no usage object) and whether a reasoning count
    was reported at all (absent is "not reported", never zero).
    """
    if not isinstance(raw, dict):
        return None, False
    total_input, _ = _first_count(raw, "prompt_tokens", "input_tokens")
    output, _ = _first_count(raw, "completion_tokens", "output_tokens")
    cache_read, _ = _first_count(
        raw,
        "input_tokens_details.cached_tokens",
        "prompt_tokens_details.cached_tokens",
        "cached_tokens",
        "prompt_cache_hit_tokens",
    )
    cache_write, _ = _first_count(
        raw,
        "input_tokens_details.cache_write_tokens",
        "prompt_tokens_details.cache_write_tokens",
        "cache_write_tokens",
    )
    reasoning, reported = _first_count(
        raw,
        "output_tokens_details.reasoning_tokens",
        "completion_tokens_details.reasoning_tokens",
        "reasoning_tokens",
    )
    usage = usage_from_counts(
        total_input=total_input,
        cache_read=cache_read,
        cache_write=cache_write,
        output=output,
        reasoning=reasoning,
    )
    return usage, reported
