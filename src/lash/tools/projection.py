"""The tool-output budget: what the model sees of a tool call's (durable, full) output.

Projection only changes the model's view; the canonical :class:`ToolCallOutput` is recorded
unchanged. It is a pure function of its inputs, so a replayed turn projects byte-identically.

Over budget, structured payloads first have their long string leaves windowed (so a
command's ``output`` is cut, not the JSON around it), then the rendered text is cut to the
budget and a note says how much was left out. Shell tools keep the *tail* (errors and exit
summaries come last); everything else keeps the head.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from lash.tools._outputs import failure_message
from lash.types import ToolCallOutput, ToolCallPart, ToolResultPart

__all__ = ["TAIL_TOOLS", "project_output", "render_output", "truncate_text"]

TAIL_TOOLS = frozenset({"exec_command", "start_command", "write_stdin"})
"""Tools whose output is windowed from the end by default."""

Keep = Literal["head", "tail"]


def project_output(
    call: ToolCallPart,
    output: ToolCallOutput,
    *,
    max_bytes: int = 16 * 1024,
    max_lines: int = 400,
    keep: Keep | None = None,
) -> ToolResultPart:
    """Render ``output`` for the model within ``max_bytes`` UTF-8 bytes and ``max_lines``."""
    if max_bytes < 1 or max_lines < 1:
        raise ValueError("max_bytes and max_lines must be >= 1")
    direction: Keep = keep or ("tail" if call.name in TAIL_TOOLS else "head")
    text = render_output(output)
    if not _fits(text, max_bytes, max_lines) and output.status == "success":
        payload = output.payload
        if isinstance(payload, dict | list):
            windowed = _window_leaves(payload, max_bytes // 2, max_lines, direction)
            text = _json(windowed)
    if not _fits(text, max_bytes, max_lines):
        text = truncate_text(
            text, max_bytes=max_bytes, max_lines=max_lines, keep=direction, hint=_hint(output)
        )
    return ToolResultPart(
        tool_call_id=call.id,
        name=call.name,
        content=text,
        is_error=output.status != "success",
    )


def render_output(output: ToolCallOutput) -> str:
    """The full, unbudgeted text of an output."""
    if output.status == "failure":
        code = output.error_code or "tool_error"
        text = f"Error [{code}]: {failure_message(output)}"
        detail = _detail(output.payload)
        return f"{text}\n{_json(detail)}" if detail else text
    if output.status == "cancelled":
        message = failure_message(output)
        return f"Tool call cancelled: {message}" if message else "Tool call cancelled."
    payload = output.payload
    if payload is None:
        return "(no output)"
    if isinstance(payload, str):
        return payload
    return _json(payload)


def truncate_text(
    text: str,
    *,
    max_bytes: int,
    max_lines: int,
    keep: Keep = "head",
    hint: str | None = None,
) -> str:
    """Keep the head (or tail) of ``text`` within both limits and say what was omitted.

    Whole lines are kept while they fit; a single line longer than the byte budget is cut at
    a character boundary. ``text`` already within both limits is returned unchanged.
    """
    if _fits(text, max_bytes, max_lines):
        return text
    lines = text.split("\n")
    ordered = lines if keep == "head" else list(reversed(lines))
    kept: list[str] = []
    used = 0
    for line in ordered[:max_lines]:
        size = len(line.encode()) + (1 if kept else 0)
        if used + size > max_bytes:
            if not kept:
                kept.append(_cut(line, max_bytes, keep))
            break
        kept.append(line)
        used += size
    if keep == "tail":
        kept.reverse()
    body = "\n".join(kept)
    total_bytes = len(text.encode())
    omitted_bytes = total_bytes - len(body.encode())
    omitted_lines = len(lines) - len(kept)
    where = "after" if keep == "head" else "before"
    unit = (
        f"{omitted_lines} of {len(lines)} lines"
        if omitted_lines > 0
        else f"{omitted_bytes} of {total_bytes} bytes"
    )
    note = (
        f"[output truncated {where} this point: {unit} ({omitted_bytes} bytes) omitted; "
        f"{hint or 'the full output is kept in the tool call record'}]"
    )
    return f"{body}\n{note}" if keep == "head" else f"{note}\n{body}"


def _fits(text: str, max_bytes: int, max_lines: int) -> bool:
    return text.count("\n") < max_lines and len(text.encode()) <= max_bytes


def _cut(line: str, max_bytes: int, keep: Keep) -> str:
    data = line.encode()
    piece = data[:max_bytes] if keep == "head" else data[len(data) - max_bytes :]
    # Dropping partial UTF-8 sequences at the cut keeps the text valid and deterministic.
    return piece.decode("utf-8", errors="ignore")


def _window_leaves(value: Any, max_bytes: int, max_lines: int, keep: Keep) -> Any:
    if isinstance(value, str):
        return truncate_text(value, max_bytes=max_bytes, max_lines=max_lines, keep=keep)
    if isinstance(value, dict):
        return {k: _window_leaves(v, max_bytes, max_lines, keep) for k, v in value.items()}
    if isinstance(value, list):
        return [_window_leaves(v, max_bytes, max_lines, keep) for v in value]
    return value


def _hint(output: ToolCallOutput) -> str | None:
    payload = output.payload
    if isinstance(payload, dict) and isinstance(payload.get("full_output_path"), str):
        return f"full output in {payload['full_output_path']} (use read_file with offset/limit)"
    return None


def _detail(payload: Any) -> dict[str, Any] | None:
    if not isinstance(payload, dict):
        return None
    rest = {k: v for k, v in payload.items() if k != "message"}
    return rest or None


def _json(value: Any) -> str:
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return repr(value)
