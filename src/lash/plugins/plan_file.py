"""The plan file and the ``plan_exit`` decision contract of plan mode.

While planning, the model writes its plan to one Markdown file in the workspace,
``.lash/plans/{session}.md``, seeded from :data:`PLAN_TEMPLATE`. ``plan_exit`` shows that file
to the host and asks one question with three answers (:data:`PLAN_EXIT_CHOICES`): implement
now in this session, keep planning, or implement in a fresh agent frame. The helpers here are
pure text and file functions, so the decision contract can be checked without a turn.
"""

from __future__ import annotations

import re
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
    "PlanReport",
    "PlanReview",
    "confirmation_display",
    "display_path",
    "fresh_context_input",
    "next_turn_input",
    "plan_file_path",
    "read_plan_report",
    "seed_plan_file",
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


def seed_plan_file(path: Path) -> bool:
    """Write :data:`PLAN_TEMPLATE` to ``path`` unless a plan is already there (True: seeded)."""
    if path.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PLAN_TEMPLATE, encoding="utf-8")
    return True


def read_plan_report(path: Path, shown_as: str) -> PlanReport:
    """Read the plan file as it is: no structure is required, so the untouched template (or
    any free-form text) is a reviewable plan."""
    if not path.is_file():
        return PlanReport(display_path=shown_as)
    return PlanReport(display_path=shown_as, content=path.read_text(encoding="utf-8"))


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
