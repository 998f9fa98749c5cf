"""Small rendering rules shared by the request builders."""

from __future__ import annotations

import json

from lash.providers.base import ProviderError
from lash.types import AttachmentPart, LlmRequest, ProviderFailure, ToolCallPart

__all__ = ["attachment_note", "checked_reasoning", "tool_call_arguments"]


def checked_reasoning(request: LlmRequest) -> str | None:
    """The requested reasoning setting, refused when the host said the model cannot do it.

    ``disabled`` and a token budget (digits) pass through to the dialect's own encoder; an
    effort name must be one of ``capabilities.reasoning_efforts`` when the host listed any.
    """
    effort = request.reasoning
    allowed = request.capabilities.reasoning_efforts
    if effort is None or effort == "disabled" or effort.isdigit() or not allowed:
        return effort
    if effort not in allowed:
        raise ProviderError(
            ProviderFailure(
                kind="validation",
                message=f"reasoning effort {effort!r} is not one of {list(allowed)}",
                code="unsupported_effort",
            )
        )
    return effort


def tool_call_arguments(part: ToolCallPart) -> str:
    """The arguments text to replay: the model's own bytes when we have them.

    Replaying the exact text keeps the prompt prefix byte-stable for provider prompt caches.
    """
    if part.raw_arguments is not None:
        return part.raw_arguments
    return json.dumps(part.arguments, ensure_ascii=False, separators=(",", ":"))


def attachment_note(part: AttachmentPart) -> str:
    """A textual stand-in for an attachment whose bytes this request does not carry."""
    ref = part.ref
    label = f" {ref.label!r}" if ref.label else ""
    return f"[attachment{label}: {ref.media_type}, {ref.byte_len} bytes, {ref.uri}]"
