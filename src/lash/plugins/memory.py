"""Observational memory: short notes that outlive the prompt window.

Notes come from the model (the ``remember`` tool) and/or from an injected observer that
looks at each finished turn. They live in the plugin's state (committed with every turn) and
are put in front of every prompt as one system message. The memory is bounded: at most
``max_notes`` notes and ``max_chars`` characters, oldest dropped first, so it can never grow
the prompt without limit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from lash.runtime.plugins import (
    Directive,
    FinalizeContext,
    Plugin,
    PluginSessionContext,
    PrepareContext,
)
from lash.tools import FunctionTool, ToolError
from lash.tools.base import Tool, ToolContext
from lash.types import Message, TextPart, TurnResult

__all__ = ["ObservationalMemory", "Observer"]

Observer = Callable[[TurnResult], Awaitable[Sequence[str]]]
"""Given a finished (not yet committed) turn, returns notes worth keeping."""

_HEADER = "Notes observed earlier in this session (oldest first):"


class ObservationalMemory(Plugin):
    """Bounded session notes contributed to every prompt."""

    id = "observational_memory"

    def __init__(
        self,
        *,
        max_notes: int = 50,
        max_chars: int = 4000,
        max_note_chars: int = 500,
        observer: Observer | None = None,
        remember_tool: bool = True,
    ) -> None:
        super().__init__()
        if min(max_notes, max_chars, max_note_chars) < 1:
            raise ValueError("max_notes, max_chars and max_note_chars must be >= 1")
        self.max_notes = max_notes
        self.max_chars = max_chars
        self.max_note_chars = max_note_chars
        self._observer = observer
        self._tools: tuple[Tool, ...] = ()
        if remember_tool:
            self._tools = (
                FunctionTool.from_schema(
                    "remember",
                    "Keep a short note (a fact, decision or preference) that stays visible in "
                    "later turns of this session.",
                    {
                        "type": "object",
                        "properties": {"note": {"type": "string", "minLength": 1}},
                        "required": ["note"],
                        "additionalProperties": False,
                    },
                    self._run_remember,
                    threaded=False,
                ),
            )

    async def open_session(self, ctx: PluginSessionContext) -> None:
        notes = ctx.state.get("notes", [])
        self.state = {"notes": [str(n) for n in notes] if isinstance(notes, list) else []}

    @property
    def notes(self) -> list[str]:
        """The notes, oldest first."""
        return list(self.state.get("notes", []))

    def add_note(self, note: str) -> bool:
        """Keep ``note`` (trimmed, deduplicated, bounded); False when it is empty."""
        text = " ".join(note.split())
        if not text:
            return False
        if len(text) > self.max_note_chars:
            text = text[: self.max_note_chars - 1] + "…"
        notes = [n for n in self.notes if n != text]
        notes.append(text)
        while len(notes) > self.max_notes or sum(len(n) for n in notes) > self.max_chars:
            notes.pop(0)
        self.state = {**self.state, "notes": notes}
        return True

    def tools(self) -> Sequence[Tool]:
        return self._tools

    async def transform_context(
        self, ctx: PrepareContext, messages: list[Message]
    ) -> list[Message]:
        notes = self.notes
        if not notes:
            return messages
        text = _HEADER + "\n" + "\n".join(f"- {n}" for n in notes)
        memory = Message(
            id=f"{ctx.turn_id}:observational-memory", role="system", parts=(TextPart(text=text),)
        )
        return [memory, *messages]

    async def finalize_turn(self, ctx: FinalizeContext) -> Sequence[Directive]:
        if self._observer is not None:
            for note in await self._observer(ctx.result):
                self.add_note(note)
        return ()

    async def _run_remember(self, ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        if not self.add_note(str(args["note"])):
            raise ToolError("the note is empty", code="invalid_note")
        return {"notes": len(self.notes)}
