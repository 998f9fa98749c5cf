"""Shared failure classification: every adapter turns its errors into one ``ProviderFailure``.

The rules are data-driven and provider-neutral so the retry ladder can make one decision for
all of them: which failures may succeed on a later attempt (``retryable``), which are account
limits that no retry fixes (``hard_quota``), how long the server asked us to wait
(``retry_after_s``), and which failures end the turn with a specific terminal reason
(``context_overflow``, ``content_filter``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from lash.types import ProviderFailure, ProviderFailureKind, TerminalReason

__all__ = [
    "RETRYABLE_STATUSES",
    "classify_error_payload",
    "classify_http",
    "first_header",
    "parse_retry_after",
    "stream_failure",
    "transport_failure",
]

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})

# Phrasings providers use when the prompt does not fit the model's context window.
_CONTEXT_OVERFLOW = (
    "context_length_exceeded",
    "context length exceeded",
    "maximum context length",
    "context window",
    "context_window",
    "prompt is too long",
    "prompt too long",
    "input is too long",
    "input too long",
    "too many input tokens",
    "too many tokens",
    "exceeds the maximum number of tokens",
    "maximum number of tokens allowed",
    "reduce the length of the messages",
    "exceeds the model's maximum",
    "model_context_window_exceeded",
    "request_too_large",
)
# A throttle message may mention tokens; never read it as a context overflow.
_THROTTLE_WORDS = ("rate limit", "rate_limit", "ratelimit", "throttl", "tpm", "per min", "quota")
# Account limits: no retry helps until a human acts (unless the server names a wait).
_HARD_QUOTA = (
    "insufficient_quota",
    "usage_limit_reached",
    "usage_not_included",
    "billing_hard_limit",
    "credit balance is too low",
    "exceeded your current quota",
)
# Per-window throttles that reuse the quota wording but reset on their own.
_WINDOWED = ("perminute", "per minute", "per_minute", "persecond", "per second")
_CONTENT_FILTER = (
    "content_filter",
    "content_policy",
    "content policy",
    "prohibited_content",
    "safety",
    "sensitive",
    "responsible ai",
)
_UNSUPPORTED = ("model_not_found", "unsupported model", "does not exist", "unknown model")
_RETRYABLE_CODES = frozenset(
    {
        "server_error",
        "internal_error",
        "internal",
        "api_error",
        "overloaded_error",
        "overloaded",
        "rate_limit_exceeded",
        "rate_limit_error",
        "resource_exhausted",
        "service_unavailable",
        "unavailable",
        "timeout",
        "deadline_exceeded",
    }
)
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "cf-ray")
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)?\s*$")


def first_header(headers: Mapping[str, str] | Any, name: str, *, split: bool = True) -> str | None:
    """The first value of ``name`` (case-insensitive); duplicates keep their first value.

    ``split=False`` keeps a joined value whole (HTTP-dates contain commas)."""
    get_list = getattr(headers, "get_list", None)
    if callable(get_list):
        values = get_list(name)
        return str(values[0]) if values else None
    lowered = name.lower()
    for key, value in headers.items():
        if str(key).lower() == lowered:
            text = str(value)
            return (text.split(",")[0] if split else text).strip()
    return None


def _duration_s(text: str) -> float | None:
    match = _DURATION.match(text)
    if match is None:
        return None
    value = float(match.group(1))
    unit = match.group(2) or "s"
    return value / 1000.0 if unit == "ms" else value * 60.0 if unit == "m" else value


def _walk(value: Any) -> Iterable[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def parse_retry_after(headers: Mapping[str, str] | Any, body: Any = None) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, ``retry-after`` or RetryInfo."""
    ms = first_header(headers, "retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    header = first_header(headers, "retry-after", split=False)
    if header is not None:
        try:
            return max(0.0, float(header))
        except ValueError:
            dated = _http_date_delay(header, first_header(headers, "date", split=False))
            if dated is not None:
                return dated
    for obj in _walk(body):
        delay = obj.get("retryDelay") or obj.get("retry_delay")
        if isinstance(delay, str):
            parsed = _duration_s(delay)
            if parsed is not None:
                return parsed
    return None


def _error_fields(body: Any) -> tuple[str | None, str | None]:
    """``(code, message)`` from an OpenAI, Anthropic or Google error envelope."""
    if not isinstance(body, dict):
        return None, None
    err = body.get("error", body)
    if isinstance(err, str):
        desc = body.get("error_description") or body.get("message")
        return err, str(desc) if desc is not None else err
    if not isinstance(err, dict):
        return None, None
    code: str | None = None
    for key in ("code", "type", "status"):
        value = err.get(key)
        if isinstance(value, str) and value:
            code = value
            break
    message = err.get("message")
    return code, str(message) if message is not None else None


def _has(text: str, markers: Iterable[str]) -> bool:
    return any(marker in text for marker in markers)


def _decide(
    *,
    status: int | None,
    code: str | None,
    message: str,
    text: str,
    retry_after_s: float | None,
    request_id: str | None,
    raw: str | None,
    default_kind: ProviderFailureKind,
) -> ProviderFailure:
    lowered = text.lower()
    code_l = (code or "").lower()
    kind: ProviderFailureKind = default_kind
    retryable = status in RETRYABLE_STATUSES if status is not None else code_l in _RETRYABLE_CODES
    hard = False
    terminal: TerminalReason = "provider_error"
    throttle_words = _has(lowered, _THROTTLE_WORDS)

    if status in (401, 403):
        kind = "auth"
    elif status in (400, 413, 422):
        kind = "validation"
    elif status == 429:
        kind = "quota"

    if _has(lowered, _CONTEXT_OVERFLOW) and not throttle_words:
        kind, retryable, terminal = "validation", False, "context_overflow"
    elif _has(lowered, _HARD_QUOTA) and retry_after_s is None and not _has(lowered, _WINDOWED):
        kind, retryable, hard = "quota", False, True
    elif status == 429 or code_l in ("rate_limit_exceeded", "rate_limit_error"):
        kind, retryable = "quota", True
    elif _has(lowered, _UNSUPPORTED) and status in (None, 400, 404):
        kind, retryable = "unsupported", False
    elif _has(lowered, _CONTENT_FILTER) and status in (None, 400, 422):
        kind, retryable, terminal = "validation", False, "content_filter"
    return ProviderFailure(
        kind=kind,
        message=message,
        retryable=retryable,
        code=code or (f"http_{status}" if status is not None else None),
        http_status=status,
        retry_after_s=retry_after_s,
        hard_quota=hard,
        terminal_reason=terminal,
        provider_request_id=request_id,
        raw=raw,
    )


def classify_http(
    status: int, headers: Mapping[str, str] | Any, body: str | bytes | None
) -> ProviderFailure:
    """Classify a non-2xx HTTP response."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else (body or "")
    try:
        parsed: Any = json.loads(text) if text.strip() else None
    except ValueError:
        parsed = None
    code, message = _error_fields(parsed)
    request_id = None
    for name in _REQUEST_ID_HEADERS[:3]:
        request_id = first_header(headers, name)
        if request_id:
            break
    if request_id is None and isinstance(parsed, dict):
        rid = parsed.get("request_id")
        request_id = rid if isinstance(rid, str) else None
    return _decide(
        status=status,
        code=code,
        message=message or (text[:500] if text else f"HTTP {status}"),
        text=text,
        retry_after_s=parse_retry_after(headers, parsed),
        request_id=request_id,
        raw=text or None,
        default_kind="http",
    )


def classify_error_payload(
    payload: Any, *, raw: str | None = None, request_id: str | None = None
) -> ProviderFailure:
    """Classify an error delivered *inside* a 200 stream (no HTTP status to go on)."""
    code, message = _error_fields(payload)
    text = raw if raw is not None else json.dumps(payload)
    return _decide(
        status=None,
        code=code,
        message=message or "the provider reported an error in the stream",
        text=text,
        retry_after_s=parse_retry_after({}, payload),
        request_id=request_id,
        raw=text,
        default_kind="stream",
    )


def stream_failure(
    message: str, *, code: str, raw: str | None = None, request_id: str | None = None
) -> ProviderFailure:
    """A corrupt or truncated stream: retryable, never a partial success."""
    return ProviderFailure(
        kind="stream",
        message=message,
        retryable=True,
        code=code,
        provider_request_id=request_id,
        raw=raw,
    )


def transport_failure(exc: BaseException, *, request_id: str | None = None) -> ProviderFailure:
    """A network-level failure: timeouts, refused connections, dropped streams."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        names |= {cls.__name__ for cls in type(cause).__mro__}
    message = str(exc) or type(exc).__name__
    if cause is not None and str(cause) and str(cause) not in message:
        message = f"{message} ({cause})"
    raw = f"{type(exc).__name__}: {exc}"
    if cause is not None and cause is not exc:
        raw += f" (caused by {type(cause).__name__}: {cause})"
    if names & {"TimeoutException", "APITimeoutError", "TimeoutError"}:
        return ProviderFailure(
            kind="timeout",
            message=message,
            retryable=True,
            code="timeout",
            provider_request_id=request_id,
            raw=raw,
        )
    if names & {"RemoteProtocolError", "ReadError", "StreamError", "IncompleteRead"}:
        return ProviderFailure(
            kind="stream",
            message=message,
            retryable=True,
            code="stream_disconnected",
            provider_request_id=request_id,
            raw=raw,
        )
    return ProviderFailure(
        kind="transport",
        message=message,
        retryable=True,
        code="transport",
        provider_request_id=request_id,
        raw=raw,
    )


def _http_date_delay(retry_at: str, sent_at: str | None) -> float | None:
    """An HTTP-date Retry-After, measured against the response's own ``Date`` header.

    Reading our wall clock would make the delay depend on clock skew (and break injected
    clocks); the server's two timestamps give the wait it meant. Without ``Date``: ``None``.
    """
    if sent_at is None:
        return None
    try:
        delta = parsedate_to_datetime(retry_at) - parsedate_to_datetime(sent_at)
    except (TypeError, ValueError):
        return None
    return max(0.0, delta.total_seconds())
