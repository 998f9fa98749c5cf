"""``glob`` and ``grep``: find paths and lines, honouring ``.gitignore`` and skipping noise.

Glob patterns follow lash: ``*`` and ``?`` also match ``/`` (so ``*.py`` finds Python files
at any depth), ``**/`` matches zero or more directories, ``[...]`` and ``{a,b}`` work as
usual. Returned paths are relative to the workspace root and sorted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from lash.tools.base import ToolError
from lash.tools.builtin._workspace import Workspace
from lash.tools.decorator import FunctionTool, tool

__all__ = ["glob_to_regex", "make_glob", "make_grep"]

MAX_GREP_LINE_CHARS = 500
MAX_GREP_FILE_BYTES = 5 * 1024 * 1024


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob pattern (see the module docstring) to an anchored regex."""
    return re.compile(_translate(pattern, 0, False)[0] + r"\Z", re.DOTALL)


def _translate(pattern: str, i: int, in_brace: bool) -> tuple[str, int]:
    out: list[str] = []
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                at_start = i == 0 or pattern[i - 1] == "/"
                if at_start and pattern.startswith("**/", i):
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                out.append(".*")
                i += 2
                continue
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1 : end]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif ch == "{":
            alternatives: list[str] = []
            i += 1
            while True:
                alt, i = _translate(pattern, i, True)
                alternatives.append(alt)
                if i >= n or pattern[i] == "}":
                    break
                i += 1  # skip ","
            out.append("(?:" + "|".join(alternatives) + ")")
        elif in_brace and ch in ",}":
            return "".join(out), i
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out), i


def make_glob(ws: Workspace) -> FunctionTool:
    """The ``glob`` tool for ``ws``."""

    @tool(name="glob", retry="safe", max_attempts=2, base_delay_ms=25, max_delay_ms=100)
    def glob(
        pattern: Annotated[str, msgspec.Meta(min_length=1, description="Glob pattern to match.")],
        path: Annotated[str, "Base directory to search in."] = ".",
        limit: Annotated[
            Annotated[int, msgspec.Meta(ge=1)] | Literal["none"] | None,
            'Maximum results to return. Use null or "none" for no cap.',
        ] = 100,
    ) -> dict[str, Any]:
        """Find filesystem paths by glob. Hidden entries, .git, node_modules and gitignored paths are skipped. Returns `paths` (relative to the workspace root) sorted, with truncation metadata."""  # noqa: E501
        base = _directory(ws, path)
        while pattern.startswith("./"):
            pattern = pattern[2:]
        try:
            matcher = glob_to_regex(pattern)
        except re.error as exc:
            raise ToolError(f"Invalid glob pattern: {exc}", code="invalid_tool_args") from exc
        matched: set[str] = set()
        for entry, _is_dir in ws.walk(base):
            rel = entry.relative_to(base).as_posix()
            if matcher.match(rel):
                matched.add(ws.display(entry))
        paths = sorted(matched)
        cap = None if limit in (None, "none") else int(limit)
        shown = paths if cap is None else paths[:cap]
        result: dict[str, Any] = {"paths": shown}
        if len(shown) < len(paths):
            result["truncated"] = {
                "shown": len(shown),
                "total": len(paths),
                "omitted": len(paths) - len(shown),
            }
        return result

    return glob


def make_grep(ws: Workspace) -> FunctionTool:
    """The ``grep`` tool for ``ws``."""

    @tool(name="grep", retry="safe", max_attempts=2, base_delay_ms=25, max_delay_ms=100)
    def grep(
        pattern: Annotated[
            str, msgspec.Meta(min_length=1, description="Regular expression (Python syntax).")
        ],
        path: Annotated[str, "File or directory to search."] = ".",
        include: Annotated[str | None, "Only search files whose path matches this glob."] = None,
        ignore_case: Annotated[bool, "Match case-insensitively."] = False,
        limit: Annotated[int, msgspec.Meta(ge=1, description="Maximum matching lines.")] = 100,
    ) -> dict[str, Any]:
        """Search file contents with a regular expression. Skips binary, hidden and gitignored files. Returns `matches` as {path, line, text}, in path order."""  # noqa: E501
        target = ws.resolve(path)
        if not target.exists():
            raise ToolError(f"Path does not exist: {path}", code="file_not_found")
        try:
            regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as exc:
            raise ToolError(f"Invalid regular expression: {exc}", code="invalid_tool_args") from exc
        include_re = glob_to_regex(include) if include else None
        files: Any
        if target.is_dir():
            files = (p for p, is_dir in ws.walk(target) if not is_dir)
        else:
            files = iter([target])
        matches: list[dict[str, Any]] = []
        truncated = False
        for file in files:
            if include_re is not None:
                rel = file.relative_to(target).as_posix() if target.is_dir() else file.name
                if not include_re.match(rel):
                    continue
            if not ws.contains(file) or not file.is_file():
                continue  # a symlink pointing out of the workspace is never read
            for number, text in _lines(file):
                if regex.search(text):
                    if len(matches) >= limit:
                        truncated = True
                        break
                    if len(text) > MAX_GREP_LINE_CHARS:
                        text = text[:MAX_GREP_LINE_CHARS] + "..."
                    matches.append({"path": ws.display(file), "line": number, "text": text})
            if truncated:
                break
        result: dict[str, Any] = {"matches": matches}
        if truncated:
            result["truncated"] = True
        return result

    return grep


def _directory(ws: Workspace, path: str) -> Path:
    base = ws.resolve(path)
    if not base.exists():
        raise ToolError(f"Path does not exist: {path}", code="file_not_found")
    if not base.is_dir():
        raise ToolError(
            f"{path} is a file, not a directory. Pass the parent directory as path and use "
            "the pattern to match files.",
            code="not_a_directory",
        )
    return base


def _lines(path: Path) -> list[tuple[int, str]]:
    try:
        if path.stat().st_size > MAX_GREP_FILE_BYTES:
            return []
        data = path.read_bytes()
    except OSError:
        return []
    if b"\x00" in data[:8192]:
        return []
    text = data.decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
    return [(i + 1, line.rstrip("\r")) for i, line in enumerate(text.split("\n"))]
