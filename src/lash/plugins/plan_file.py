"""The plan file and the ``plan_exit`` decision contract of plan mode.

While planning, the model writes its plan to one Markdown file in the workspace,
``.lash/plans/{session}.md``, seeded from :data:`PLAN_TEMPLATE`. ``plan_exit`` shows that file
to the host and asks one question with three answers (:data:`PLAN_EXIT_CHOICES`): implement
now in this session, keep planning, or implement in a fresh agent frame. The helpers here are
pure text and file functions, so the decision contract can be checked without a turn.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from lash.types._base import Record

__all__ = [
    "FRESH_CONTEXT",
    "IMPLEMENT_NOW",
    "KEEP_PLANNING",
    "PLAN_EXIT_CHOICES",
    "PLAN_EXIT_RESULT_SCHEMA",
    "PLAN_TEMPLATE",
    "PlanExitAnswer",
    "PlanExitPrompt",
    "PlanExitRequest",
    "PlanFileUnsafe",
    "PlanReport",
    "PlanReview",
    "confirmation_display",
    "display_path",
    "fresh_context_input",
    "next_turn_input",
    "plan_file_path",
    "read_plan_report",
    "seed_plan_file",
    "unsafe_plan_file",
]

IMPLEMENT_NOW = "Start implementing now"
KEEP_PLANNING = "Keep planning"
FRESH_CONTEXT = "Start in fresh context"
PLAN_EXIT_CHOICES = (IMPLEMENT_NOW, KEEP_PLANNING, FRESH_CONTEXT)
"""The answers ``plan_exit`` offers the host, in the order they are shown."""

PLAN_TEMPLATE = """# Plan

## Goal
- to be decided

## Steps
- to be decided

## Files
- to be decided

## Risks
- to be decided

## Verification
- to be decided
"""
"""What a new plan file holds: a skeleton the model fills in (reviewable as it is)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")

PLAN_EXIT_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approved": {"type": "boolean"},
        "plan_path": {"type": "string"},
        "answer": {
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["single"]},
                "selection": {"type": "string", "enum": list(PLAN_EXIT_CHOICES)},
                "note": {"type": "string"},
            },
            "required": ["kind", "selection"],
            "additionalProperties": False,
        },
        "execution_mode": {"type": "string", "enum": ["current_session", "fresh_context"]},
        "confirmation_display": {"type": "string"},
        "next_turn_input": {"type": "string"},
        "frame_id": {"type": "string"},
        "message": {"type": "string"},
        "plan": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["approved", "plan_path"],
    "additionalProperties": False,
}
"""The shape of every successful ``plan_exit`` result (the tool's documented output)."""


class PlanReview(Record, frozen=True, kw_only=True):
    """The document the host shows next to the question."""

    title: str
    markdown: str


class PlanExitRequest(Record, frozen=True, kw_only=True):
    """What ``plan_exit`` asks the host: one question, the choices, the plan to review."""

    question: str
    options: tuple[str, ...] = PLAN_EXIT_CHOICES
    review: PlanReview | None = None
    allow_note: bool = True
    plan_path: str = ""
    checklist: tuple[dict[str, str], ...] = ()


class PlanExitAnswer(Record, frozen=True, kw_only=True):
    """The host's answer: one of the request's options, plus an optional free-text note."""

    selection: str
    note: str | None = None
    kind: Literal["single"] = "single"

    def to_json(self) -> dict[str, Any]:
        """The answer as it appears in the tool result (no ``note`` when there is none)."""
        out: dict[str, Any] = {"kind": self.kind, "selection": self.selection}
        if self.note is not None:
            out["note"] = self.note
        return out


PlanExitPrompt = Callable[[PlanExitRequest], Awaitable[PlanExitAnswer]]
"""The host callback ``plan_exit`` awaits (inside the tool attempt, so the answer is part of
the call's journaled output)."""


class PlanReport(Record, frozen=True, kw_only=True):
    """The plan file as read for review: its display path and text (``None``: no file)."""

    display_path: str
    content: str | None = None

    def review_markdown(self) -> str:
        """The file's text for review, or just its path when the file is empty or missing."""
        text = (self.content or "").rstrip()
        return text if text.strip() else f"Path: `{self.display_path}`"


def plan_file_path(workspace: Path, session_id: str) -> Path:
    """Where ``session_id``'s plan lives under ``workspace`` (one file per session)."""
    return workspace / ".lash" / "plans" / f"{_UNSAFE.sub('_', session_id)}.md"


def display_path(workspace: Path, path: Path) -> str:
    """``path`` relative to ``workspace`` when inside it, POSIX-style."""
    try:
        return path.relative_to(workspace).as_posix()
    except ValueError:
        return path.as_posix()


class PlanFileUnsafe(ValueError):
    """The plan file (or a directory on its way from the workspace root) is a symlink or not
    what it should be, so writing it could change some other file."""


def unsafe_plan_file(root: Path | None, path: Path) -> str | None:
    """Why ``path`` cannot be trusted as the plan file (``None``: it can).

    Nothing is resolved: every existing component from ``root`` (exclusive) down to ``path``
    is checked with ``lstat``, so a symlinked ``.lash``, ``plans`` or plan file is refused
    rather than followed. Without ``root`` only the file itself is checked.
    """
    chain: list[Path] = [path]
    if root is not None:
        try:
            rel = path.relative_to(root)
        except ValueError:
            return f"`{path}` is not under the workspace"
        chain = [root.joinpath(*rel.parts[: i + 1]) for i in range(len(rel.parts))]
    for i, component in enumerate(chain):
        try:
            mode = os.lstat(component).st_mode
        except FileNotFoundError:
            return None  # nothing below a missing component exists either
        except OSError as exc:
            return f"cannot inspect `{component}`: {exc.strerror or exc}"
        if stat.S_ISLNK(mode):
            return f"`{component}` is a symlink"
        last = i == len(chain) - 1
        if last and not stat.S_ISREG(mode):
            return f"`{component}` is not a regular file"
        if not last and not stat.S_ISDIR(mode):
            return f"`{component}` is not a directory"
    return None


def seed_plan_file(path: Path, *, root: Path | None = None) -> bool:
    """Write :data:`PLAN_TEMPLATE` to ``path`` unless a plan is already there (True: seeded).

    Raises :class:`PlanFileUnsafe` when the file or a directory between ``root`` and it is a
    symlink: the template is never written through one (``O_NOFOLLOW`` + ``O_EXCL``).
    """
    reason = unsafe_plan_file(root, path)
    if reason is not None:
        raise PlanFileUnsafe(reason)
    if os.path.lexists(path):
        return False
    _make_dirs(path.parent, root)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        return False  # created meanwhile; the checks above apply to it next time
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(PLAN_TEMPLATE)
    return True


def _make_dirs(directory: Path, root: Path | None) -> None:
    # One level at a time, so a symlink planted between the check and the mkdir is refused.
    if root is None:
        directory.mkdir(parents=True, exist_ok=True)
        return
    current = root
    for part in directory.relative_to(root).parts:
        current = current / part
        try:
            current.mkdir()
        except FileExistsError:
            pass
        if not stat.S_ISDIR(os.lstat(current).st_mode):
            raise PlanFileUnsafe(f"`{current}` is not a directory")


def read_plan_report(path: Path, shown_as: str, *, root: Path | None = None) -> PlanReport:
    """Read the plan file as it is: no structure is required, so the untouched template (or
    any free-form text) is a reviewable plan. A symlinked plan file is not read (no content)."""
    if unsafe_plan_file(root, path) is not None:
        return PlanReport(display_path=shown_as)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return PlanReport(display_path=shown_as)
    with os.fdopen(fd, encoding="utf-8") as handle:
        return PlanReport(display_path=shown_as, content=handle.read())


def _note(note: str | None) -> str | None:
    return note if note is not None and note.strip() else None


def _where(plan_path: str | None) -> str:
    return f"`{plan_path}`" if plan_path else "the plan checklist"


def next_turn_input(plan_path: str | None, note: str | None = None) -> str:
    """The input a host submits after "implement now": go, no confirmation, plus the user's
    note when there is one (a blank note is dropped). ``None``: there is no plan file."""
    text = (
        f"The plan in {_where(plan_path)} is approved. Implement it now: begin right away and "
        "do not ask for confirmation."
    )
    extra = _note(note)
    return f"{text}\n\nUser note: {extra}" if extra is not None else text


def fresh_context_input(plan_path: str | None, checklist: str = "") -> str:
    """The whole task of the fresh agent frame: one direct line naming the plan file (with no
    plan file, the checklist itself follows, since the new frame cannot see the old one)."""
    if plan_path:
        return f"Implement the plan at {plan_path} completely and faithfully."
    return f"Implement this plan completely and faithfully:\n\n{checklist}".rstrip()


def confirmation_display(selection: str, note: str | None = None) -> str:
    """How a host may echo the decision back to the user."""
    extra = _note(note)
    return f"{selection}\n\nNote: {extra}" if extra is not None else selection
