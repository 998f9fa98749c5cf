"""Builders for :class:`ToolCallOutput` values, shared by the decorator, dispatch and builtins.

Every failure the tool layer produces goes through :func:`failure`, so the payload shape
(a message string, or a dict with ``"message"`` plus detail) is the same everywhere.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lash.tools.base import ToolError
from lash.types import ToolCallOutput

__all__ = ["failure", "failure_from_exception", "failure_message", "success"]


def success(payload: Any = None) -> ToolCallOutput:
    """A successful output carrying ``payload``."""
    return ToolCallOutput(status="success", payload=payload)


def failure(
    code: str,
    message: str,
    *,
    detail: dict[str, Any] | None = None,
    retryable: bool = False,
    retry_after_ms: int | None = None,
) -> ToolCallOutput:
    """A failed output; ``detail`` keys ride next to ``"message"`` in a dict payload."""
    payload: Any = message if not detail else {"message": message, **detail}
    return ToolCallOutput(
        status="failure",
        payload=payload,
        error_code=code,
        retryable=retryable,
        retry_after_ms=retry_after_ms,
    )


def failure_from_exception(exc: BaseException) -> ToolCallOutput:
    """Map an exception raised by tool code to a failure (never for cancellation)."""
    if isinstance(exc, asyncio.CancelledError):  # pragma: no cover - callers re-raise first
        raise exc
    if isinstance(exc, ToolError):
        return failure(
            exc.code,
            exc.message,
            retryable=exc.retryable,
            retry_after_ms=exc.retry_after_ms,
        )
    return failure("tool_error", f"{type(exc).__name__}: {exc}")


def failure_message(output: ToolCallOutput) -> str:
    """The human message of a failure or cancellation output."""
    payload = output.payload
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return str(payload["message"])
    return "" if payload is None else str(payload)
