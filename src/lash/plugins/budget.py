"""The tool-output budget as a plugin: it owns what the model sees of every tool result.

The runtime records each tool call's full output durably; this plugin only shapes the
model's view of it. The projection is a pure function of the call and its output, so a
replayed turn (the output coming back from a journal instead of a fresh run) projects
byte-identically. Install it to change the limits; without it the runtime applies the same
projection with its configured defaults.
"""

from __future__ import annotations

from lash.runtime.plugins import Plugin
from lash.tools.projection import Keep, project_output
from lash.types import ToolCallOutput, ToolCallPart, ToolResultPart

__all__ = ["ToolOutputBudget"]


class ToolOutputBudget(Plugin):
    """Window tool output to ``max_bytes`` UTF-8 bytes (or ``max_tokens`` estimated tokens,
    about four bytes each) and ``max_lines`` lines.

    Shell tools keep the tail, everything else the head; ``keep`` forces one direction for
    every tool. Each string leaf of a structured output is windowed on its own, and ``batch``
    results child by child, so the JSON the model reads stays valid.
    """

    id = "tool_output_budget"

    def __init__(
        self,
        max_bytes: int = 16 * 1024,
        max_lines: int = 400,
        keep: Keep | None = None,
        *,
        max_tokens: int | None = None,
    ) -> None:
        super().__init__()
        if max_bytes < 1 or max_lines < 1 or (max_tokens is not None and max_tokens < 1):
            raise ValueError("max_bytes, max_tokens and max_lines must be >= 1")
        self.max_bytes = max_bytes
        self.max_tokens = max_tokens
        self.max_lines = max_lines
        self.keep: Keep | None = keep

    def project_tool_output(self, call: ToolCallPart, output: ToolCallOutput) -> ToolResultPart:
        """The budgeted view (never ``None``: this plugin owns every projection)."""
        if self.max_tokens is not None:
            return project_output(
                call,
                output,
                max_bytes=self.max_tokens,
                max_lines=self.max_lines,
                keep=self.keep,
                unit="tokens",
            )
        return project_output(
            call, output, max_bytes=self.max_bytes, max_lines=self.max_lines, keep=self.keep
        )
