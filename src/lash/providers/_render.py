"""Small rendering rules shared by the request builders."""

from __future__ import annotations

import json

from lash.types import AttachmentPart, ToolCallPart

__all__ = ["attachment_note", "tool_call_arguments"]


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
