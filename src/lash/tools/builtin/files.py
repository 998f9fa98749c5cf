"""``read_file`` and ``write``: windowed reads of files and directories, whole-file writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import msgspec

from lash.tools.base import ToolError
from lash.tools.builtin._workspace import Workspace
from lash.tools.decorator import FunctionTool, tool

__all__ = ["make_read_file", "make_write"]

DEFAULT_LIMIT = 2000
MAX_LINE_CHARS = 2000
MAX_OUTPUT_BYTES = 50 * 1024
BINARY_SNIFF_BYTES = 8192


def make_read_file(ws: Workspace) -> FunctionTool:
    """The ``read_file`` tool for ``ws``."""

    @tool(name="read_file", retry="safe", max_attempts=2, base_delay_ms=25, max_delay_ms=100)
    def read_file(
        path: Annotated[str, "File or directory path, relative to the workspace root."],
        offset: Annotated[int, msgspec.Meta(ge=1, description="First line to show (1-based).")] = 1,
        limit: Annotated[int, msgspec.Meta(ge=1, description="Maximum lines to show.")] = (
            DEFAULT_LIMIT
        ),
    ) -> str:
        """Read a known file or directory. Text comes back as `LINE: text` lines; a directory comes back as a sorted, paginated entry list (`name/` for directories). Default: 2000 lines. Use `glob` to discover paths."""  # noqa: E501
        target = ws.resolve(path)
        if not target.exists():
            raise ToolError(
                f"Path does not exist: {path}. Use `glob` to locate the correct path.",
                code="file_not_found",
            )
        if target.is_dir():
            entries = sorted(f"{e.name}/" if e.is_dir() else e.name for e in os.scandir(target))
            return _window(iter(entries), offset, limit, "entries", lambda _n, e: e)
        if _is_binary(target):
            raise ToolError(
                f"Binary file detected: {path}. Inspect binary files with `exec_command`.",
                code="binary_file",
            )
        with target.open("rb") as handle:
            lines = (_decode_line(raw) for raw in handle)
            return _window(lines, offset, limit, "lines", lambda n, text: f"{n}: {text}")

    return read_file


def make_write(ws: Workspace) -> FunctionTool:
    """The ``write`` tool for ``ws``."""

    @tool(name="write")
    def write(
        path: Annotated[str, "File path, relative to the workspace root."],
        content: Annotated[str, "The complete new file content."],
    ) -> dict[str, Any]:
        """Create or overwrite a file with the given content, creating parent directories as needed."""  # noqa: E501
        target = ws.resolve(path)
        if target.is_dir():
            raise ToolError(f"Path is a directory: {path}", code="not_a_file")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8")
        target.write_bytes(data)
        shown = ws.display(target)
        return {
            "summary": f"Wrote {len(data)} bytes to {shown}.",
            "path": shown,
            "bytes": len(data),
        }

    return write


def _is_binary(path: Path) -> bool:
    with path.open("rb") as handle:
        return b"\x00" in handle.read(BINARY_SNIFF_BYTES)


def _decode_line(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\n").rstrip("\r")
    if len(text) > MAX_LINE_CHARS:
        return text[:MAX_LINE_CHARS] + f"... [line truncated, {len(text)} chars]"
    return text


def _window(
    items: Any,
    offset: int,
    limit: int,
    kind: str,
    render: Any,
) -> str:
    shown: list[str] = []
    used = 0
    total = 0
    capped = False
    for item in items:
        total += 1
        if total < offset or len(shown) >= limit or capped:
            continue
        line = render(total, item)
        size = len(line.encode()) + (1 if shown else 0)
        if used + size > MAX_OUTPUT_BYTES:
            capped = True
            continue
        shown.append(line)
        used += size
    if total == 0:
        return "(empty directory)" if kind == "entries" else "(empty file)"
    if offset > total:
        raise ToolError(
            f"Offset {offset} is out of range ({total} {kind} in total).",
            code="offset_out_of_range",
        )
    text = "\n".join(shown)
    end = offset + len(shown) - 1
    if capped:
        return (
            f"{text}\n[output capped at 50 KB. Showing {kind} {offset}-{end} of {total}. "
            f"Use offset={end + 1} to continue.]"
        )
    if end < total:
        return (
            f"{text}\n[Showing {kind} {offset}-{end} of {total}. Use offset={end + 1} to continue.]"
        )
    return text
