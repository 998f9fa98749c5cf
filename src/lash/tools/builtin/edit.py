"""``edit``: exact-text replacements in one file, all matched against the original content.

Each ``oldText`` must match one unique region; regions must not overlap; the file is written
once, only after every edit matched, so a failed edit leaves the file untouched. When an
exact match fails, matching falls back to a normalised view (NFKC, trailing whitespace,
unicode dashes/quotes/spaces); lines the edit does not touch keep their original bytes.
The byte-order mark and CRLF line endings of the file are preserved.
"""

from __future__ import annotations

import difflib
import unicodedata
from typing import Annotated, Any

import msgspec

from lash.tools.base import ToolError
from lash.tools.builtin._workspace import Workspace
from lash.tools.decorator import FunctionTool, tool

__all__ = ["EditOp", "apply_edits", "make_edit"]

DIFF_LINES = 240
_BOM = "\ufeff"
_FUZZY = str.maketrans(
    {
        **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-"),
        **dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b"), "'"),
        **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f"), '"'),
        **dict.fromkeys(
            map(
                ord,
                "\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000",
            ),
            " ",
        ),
    }
)


class EditOp(msgspec.Struct, forbid_unknown_fields=True):
    """One replacement."""

    oldText: Annotated[str, "Exact text to replace; must match one unique region of the file."]
    newText: Annotated[str, "Replacement text."]


def make_edit(ws: Workspace) -> FunctionTool:
    """The ``edit`` tool for ``ws``."""

    @tool(name="edit")
    def edit(
        path: Annotated[str, "File to edit, relative to the workspace root."],
        edits: Annotated[
            list[EditOp],
            msgspec.Meta(min_length=1, description="One or more targeted replacements."),
        ],
    ) -> dict[str, Any]:
        """Edit a single file using exact text replacement. Every edits[].oldText must match a unique, non-overlapping region of the original file; merge nearby changes into one edit."""  # noqa: E501
        target = ws.resolve(path)
        if not target.exists():
            raise ToolError(f"Could not edit {path}: file does not exist.", code="file_not_found")
        if not target.is_file():
            raise ToolError(f"Could not edit {path}: not a file.", code="not_a_file")
        try:
            raw = target.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(f"Could not edit {path}: not UTF-8 text.", code="binary_file") from exc
        bom = _BOM if raw.startswith(_BOM) else ""
        body = raw[len(bom) :]
        crlf = "\r\n" in body
        base = body.replace("\r\n", "\n")
        new = apply_edits(base, [(e.oldText, e.newText) for e in edits], path)
        final = new.replace("\n", "\r\n") if crlf else new
        target.write_bytes((bom + final).encode("utf-8"))
        shown = ws.display(target)
        patch = _diff(base, new, shown)
        patch_lines = patch.splitlines()
        diff = "\n".join(patch_lines[:DIFF_LINES])
        if len(patch_lines) > DIFF_LINES:
            diff += f"\n... ({len(patch_lines) - DIFF_LINES} more diff lines)"
        details: dict[str, Any] = {"diff": diff, "patch": patch}
        first = _first_changed_line(base, new)
        if first is not None:
            details["firstChangedLine"] = first
        return {
            "summary": f"Successfully replaced {len(edits)} block(s) in {shown}.",
            "path": shown,
            "replacements": len(edits),
            "details": details,
        }

    return edit


def apply_edits(content: str, edits: list[tuple[str, str]], path: str = "file") -> str:
    """Apply ``(old, new)`` replacements to LF-normalised ``content`` or raise ToolError."""
    if not edits:
        raise ToolError("edits must contain at least one replacement.", code="invalid_tool_args")
    pairs = [(old.replace("\r\n", "\n"), new.replace("\r\n", "\n")) for old, new in edits]
    for index, (old, _) in enumerate(pairs):
        if not old:
            raise ToolError(f"edits[{index}].oldText must not be empty.", code="invalid_tool_args")
    fuzzy = any(old not in content for old, _ in pairs)
    normal = _normalise(content)
    haystack = normal if fuzzy else content
    spans: list[tuple[int, int, int, str]] = []  # (start, end, edit index, new text)
    for index, (old, new) in enumerate(pairs):
        needle = _normalise(old) if fuzzy else old
        start = haystack.find(needle)
        if start < 0:
            raise ToolError(
                f"Could not find edits[{index}].oldText in {path}. The text must match the file "
                "exactly, including whitespace and indentation.",
                code="edit_no_match",
            )
        count = normal.count(_normalise(old))
        if count > 1:
            raise ToolError(
                f"Found {count} occurrences of edits[{index}].oldText in {path}. Include more "
                "surrounding context so it matches exactly one region.",
                code="edit_ambiguous_match",
            )
        spans.append((start, start + len(needle), index, new))
    spans.sort()
    for before, after in zip(spans, spans[1:], strict=False):
        if before[1] > after[0]:
            raise ToolError(
                f"edits[{before[2]}] and edits[{after[2]}] overlap in {path}. Merge them into "
                "one edit or target disjoint regions.",
                code="edit_overlap",
            )
    result = _splice(haystack, spans) if not fuzzy else _splice_fuzzy(content, haystack, spans)
    if result == content:
        raise ToolError(
            f"No changes made to {path}: the replacement text is identical to the original.",
            code="edit_no_change",
        )
    return result


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return text.translate(_FUZZY)


def _splice(text: str, spans: list[tuple[int, int, int, str]]) -> str:
    out: list[str] = []
    cursor = 0
    for start, end, _, new in spans:
        out.append(text[cursor:start])
        out.append(new)
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _splice_fuzzy(original: str, normal: str, spans: list[tuple[int, int, int, str]]) -> str:
    """Replace only the lines the matches touch; every other line keeps its original bytes.

    Normalisation never adds or removes newlines, so line ``i`` of both texts corresponds.
    """
    original_lines = original.split("\n")
    normal_lines = normal.split("\n")
    if len(original_lines) != len(normal_lines):  # pragma: no cover - NFKC keeps newlines
        raise ToolError("cannot preserve unchanged lines for this file", code="edit_no_match")
    line_starts = [0]
    for line in normal_lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)

    def line_of(offset: int) -> int:
        low, high = 0, len(line_starts) - 1
        while low < high:
            mid = (low + high + 1) // 2
            if line_starts[mid] <= offset:
                low = mid
            else:
                high = mid - 1
        return low

    # Group spans whose line ranges touch, then rewrite each group's lines from the normal view.
    groups: list[tuple[int, int, list[tuple[int, int, int, str]]]] = []
    for span in spans:
        first = line_of(span[0])
        last = line_of(max(span[0], span[1] - 1))
        if groups and first <= groups[-1][1]:
            start_line, _, members = groups[-1]
            groups[-1] = (start_line, max(last, groups[-1][1]), [*members, span])
        else:
            groups.append((first, last, [span]))
    out: list[str] = []
    cursor = 0
    for first, last, members in groups:
        out.extend(original_lines[cursor:first])
        seg_start = line_starts[first]
        seg_end = line_starts[last] + len(normal_lines[last])
        segment = normal[seg_start:seg_end]
        shifted = [(s - seg_start, e - seg_start, i, n) for s, e, i, n in members]
        out.append(_splice(segment, shifted))
        cursor = last + 1
    out.extend(original_lines[cursor:])
    return "\n".join(out)


def _diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"a/{name}",
        tofile=f"b/{name}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines).rstrip("\n")


def _first_changed_line(before: str, after: str) -> int | None:
    old, new = before.split("\n"), after.split("\n")
    for index, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            return index + 1
    if len(old) != len(new):
        return min(len(old), len(new)) + 1
    return None
