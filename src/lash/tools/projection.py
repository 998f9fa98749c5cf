"""The tool-output budget: what the model sees of a tool call's (durable, full) output.

Projection only changes the model's view; the canonical :class:`ToolCallOutput` is recorded
unchanged. Its text is a function of the call and its output alone, so a replayed turn
projects byte-identically.

A string output over budget keeps a window from one end and says what was cut:
``...N bytes truncated...`` (``tokens`` in token mode, ``lines`` when the line cap bound),
then a hint where the whole text is: the output's own ``full_output_path`` when it has one,
otherwise a spill file ``${TMPDIR}/lash-tool-output/{tool}-{sha12}.txt`` named by a hash of
the tool, its arguments and the text (written only when its content changed, so replays
produce the same path). Structured outputs are rendered as compact JSON with each string leaf
windowed on its own, so the JSON stays valid. ``batch`` results are projected per child with
the child tool's own direction. Shell output (``exec_command``, ``write_stdin``) keeps the
*tail*, where errors and exit summaries are; everything else keeps the head.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

import msgspec

from lash.tools._outputs import failure_message
from lash.types import ToolCallOutput, ToolCallPart, ToolResultPart

__all__ = [
    "TAIL_TOOLS",
    "Keep",
    "Unit",
    "project_output",
    "render_output",
    "spill_dir",
    "truncate_text",
]

TAIL_TOOLS = frozenset({"exec_command", "write_stdin"})
"""Tools whose output is windowed from the end by default."""

Keep = Literal["head", "tail"]
Unit = Literal["bytes", "tokens"]

BYTES_PER_TOKEN = 4
"""The token estimate of the token-mode budget: about four UTF-8 bytes per token."""

_READ_ADVICE = (
    "Use `read_file` with `offset`/`limit` or `grep` to inspect specific sections instead of "
    "reading the whole file at once."
)
_GENERIC_HINT = f"The tool output was truncated. {_READ_ADVICE}"


def spill_dir() -> Path:
    """Where over-budget outputs are spilled so the model can read them whole."""
    return Path(tempfile.gettempdir()) / "lash-tool-output"


def project_output(
    call: ToolCallPart,
    output: ToolCallOutput,
    *,
    max_bytes: int = 16 * 1024,
    max_lines: int = 400,
    keep: Keep | None = None,
    unit: Unit = "bytes",
) -> ToolResultPart:
    """Render ``output`` for the model; every string is windowed to ``max_bytes`` UTF-8 bytes
    (``max_bytes`` × 4 in ``tokens`` mode, where ``max_bytes`` counts tokens) and
    ``max_lines`` lines."""
    if max_bytes < 1 or max_lines < 1:
        raise ValueError("max_bytes and max_lines must be >= 1")
    budget = _Budget(
        max_bytes * BYTES_PER_TOKEN if unit == "tokens" else max_bytes, max_lines, unit
    )
    direction: Keep = keep or ("tail" if call.name in TAIL_TOOLS else "head")
    payload = output.payload
    if output.status != "success":
        text = render_output(output)
        if not budget.fits(text):
            text = budget.cut(text, direction, _GENERIC_HINT)
    elif call.name == "batch" and isinstance(payload, dict):
        text = _json(_project_batch(call, output, budget, keep))
    elif isinstance(payload, str):
        text = _project_text(payload, call, output, budget, direction)
    elif payload is None:
        text = "(no output)"
    else:
        text = _json(_project_leaves(payload, call, output, budget, direction))
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
    unit: Unit = "bytes",
) -> str:
    """Keep a window of ``text`` from the head (or tail) within both limits, plus a
    ``...N <unit> truncated...`` marker and ``hint``.

    Whole lines are kept while they fit; a single line longer than the byte budget is cut at
    a character boundary instead of being dropped. The marker counts removed characters
    (``bytes``), estimated tokens (``tokens``) or removed lines when the line cap bound.
    ``text`` already within both limits is returned unchanged.
    """
    budget = _Budget(max_bytes, max_lines, unit)
    if budget.fits(text):
        return text
    return budget.cut(text, keep, hint or _GENERIC_HINT)


class _Budget:
    __slots__ = ("max_bytes", "max_lines", "unit")

    def __init__(self, max_bytes: int, max_lines: int, unit: Unit) -> None:
        self.max_bytes = max_bytes
        self.max_lines = max_lines
        self.unit = unit

    def fits(self, text: str) -> bool:
        return len(_lines(text)) <= self.max_lines and len(text.encode()) <= self.max_bytes

    def cut(self, text: str, keep: Keep, hint: str) -> str:
        lines = _lines(text)
        ordered = lines if keep == "head" else lines[::-1]
        kept: list[str] = []
        used = 0
        hit_bytes = False
        for line in ordered[: self.max_lines]:
            separator = 1 if kept else 0
            size = len(line.encode())
            if used + separator + size <= self.max_bytes:
                kept.append(line)
                used += separator + size
                continue
            hit_bytes = True
            if not kept:
                piece = _cut(line, self.max_bytes, keep)
                if piece:
                    kept.append(piece)
            break
        if keep == "tail":
            kept.reverse()
        preview = "\n".join(kept)
        if hit_bytes and self.unit == "tokens":
            removed_bytes = len(text.encode()) - len(preview.encode())
            marker = f"...{-(-removed_bytes // BYTES_PER_TOKEN)} tokens truncated..."
        elif hit_bytes:
            marker = f"...{len(text) - len(preview)} bytes truncated..."
        else:
            marker = f"...{len(lines) - len(kept)} lines truncated..."
        if keep == "head":
            return f"{preview}\n\n{marker}\n\n{hint}"
        return f"{marker}\n\n{hint}\n\n{preview}"


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def _cut(line: str, max_bytes: int, keep: Keep) -> str:
    data = line.encode()
    piece = data[:max_bytes] if keep == "head" else data[len(data) - max_bytes :]
    # Dropping partial UTF-8 sequences at the cut keeps the text valid and deterministic.
    return piece.decode("utf-8", errors="ignore")


def _project_text(
    text: str, call: ToolCallPart, output: ToolCallOutput, budget: _Budget, keep: Keep
) -> str:
    if budget.fits(text):
        return text
    return budget.cut(text, keep, _hint(call, output, text))


def _project_leaves(
    value: Any, call: ToolCallPart, output: ToolCallOutput, budget: _Budget, keep: Keep
) -> Any:
    if isinstance(value, str):
        return _project_text(value, call, output, budget, keep)
    if isinstance(value, dict):
        return {k: _project_leaves(v, call, output, budget, keep) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_project_leaves(v, call, output, budget, keep) for v in value]
    return value


def _project_batch(
    call: ToolCallPart, output: ToolCallOutput, budget: _Budget, keep: Keep | None
) -> dict[str, Any]:
    """Each child result projected as if that child tool had returned it on its own."""
    results = output.payload.get("results")
    if not isinstance(results, list):
        return {"results": []}
    items = call.arguments.get("tool_calls")
    items = items if isinstance(items, list) else []
    projected: list[Any] = []
    for index, entry in enumerate(results):
        if not isinstance(entry, dict):
            projected.append(_project_leaves(entry, call, output, budget, "head"))
            continue
        item = items[index] if index < len(items) and isinstance(items[index], dict) else {}
        tool = entry.get("tool") if isinstance(entry.get("tool"), str) else item.get("tool")
        tool = tool if isinstance(tool, str) else "tool"
        success = entry.get("success") is True
        value = entry.get("result") if success else entry.get("error")
        if success and tool != "batch":
            params = item.get("parameters")
            child_call = ToolCallPart(
                id=f"{call.id}.{index}",
                name=tool,
                arguments=params if isinstance(params, dict) else {},
            )
            child = ToolCallOutput(status="success", payload=value)
            direction: Keep = keep or ("tail" if tool in TAIL_TOOLS else "head")
            rendered = (
                _project_text(value, child_call, child, budget, direction)
                if isinstance(value, str)
                else _json(_project_leaves(value, child_call, child, budget, direction))
            )
            value = _parse_json(rendered)
        else:
            value = _project_leaves(value, call, output, budget, "head")
        row: dict[str, Any] = {}
        if "index" in entry:
            row["index"] = entry["index"]
        row.update(tool=tool, success=success, duration_ms=entry.get("duration_ms", 0))
        row["result" if success else "error"] = value
        projected.append(row)
    return {"results": projected}


def _parse_json(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def _hint(call: ToolCallPart, output: ToolCallOutput, text: str) -> str:
    payload = output.payload
    path: str | None = None
    if isinstance(payload, dict):
        existing = payload.get("full_output_path")
        if isinstance(existing, str) and existing.strip():
            path = existing
    if path is None:
        path = _spill(call, text)
    if path is None:
        return _GENERIC_HINT
    return f"The tool output was truncated. Full output saved to: {path}\n{_READ_ADVICE}"


def _spill(call: ToolCallPart, text: str) -> str | None:
    """Write ``text`` where the model can read it; the name depends only on the content."""
    digest = hashlib.sha256()
    digest.update(call.name.encode())
    digest.update(_json(call.arguments).encode())
    digest.update(text.encode())
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", call.name)
    path = spill_dir() / f"{stem}-{digest.hexdigest()[:12]}.txt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            unchanged = path.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            unchanged = False
        if not unchanged:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
    except OSError:
        return None
    return str(path)


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
