"""Context size management: a rolling prompt window, and compaction into a new agent frame.

:class:`RollingHistory` shapes only the *prompt view* of each turn: when the current frame's
history is estimated over ``max_context_tokens`` it drops the oldest messages (keeping the
leading system messages and at least the last ``keep_last``) and says so in a system note.
Durable history is never touched, so the read view and a later, larger window still see
everything.

:class:`Compaction` answers ``session.compact()``: an injected summariser (usually a model
call, see :func:`model_summariser`) condenses the frame's messages, and the summary seeds a
new agent frame. The old frame stays in the graph unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from lash.plugins._completion import direct_completion, user_message
from lash.providers.base import LlmProvider
from lash.runtime.plugins import CompactionContext, Plugin, PrepareContext
from lash.types import Message, ModelSpec, TextPart, encode, stable_hash

__all__ = [
    "Compaction",
    "RollingHistory",
    "Summariser",
    "estimate_tokens",
    "model_summariser",
    "render_transcript",
]

SeedRole = Literal["user", "assistant", "system"]

Summariser = Callable[[Sequence[Message]], Awaitable[str]]
"""Turns a frame's messages into summary text ("" means: nothing to compact)."""

_CHARS_PER_TOKEN = 4
_MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(message: Message) -> int:
    """A provider-neutral size estimate (~4 bytes of JSON per token, plus framing)."""
    return len(encode(message.parts)) // _CHARS_PER_TOKEN + _MESSAGE_OVERHEAD_TOKENS


class RollingHistory(Plugin):
    """Keep the prompt within ``max_context_tokens`` by dropping the oldest messages.

    ``max_context_tokens=None`` uses 80 % of the model's context window. The window never
    starts with a tool result whose call was dropped (providers reject orphaned results).
    """

    id = "rolling_history"

    def __init__(self, max_context_tokens: int | None = None, keep_last: int = 8) -> None:
        super().__init__()
        if max_context_tokens is not None and max_context_tokens < 1:
            raise ValueError("max_context_tokens must be >= 1")
        if keep_last < 1:
            raise ValueError("keep_last must be >= 1")
        self.max_context_tokens = max_context_tokens
        self.keep_last = keep_last

    async def transform_context(
        self, ctx: PrepareContext, messages: list[Message]
    ) -> list[Message]:
        budget = self.max_context_tokens or max(1, ctx.context_window * 4 // 5)
        sizes = [estimate_tokens(m) for m in messages]
        if sum(sizes) <= budget:
            return messages
        prefix = 0
        while prefix < len(messages) and messages[prefix].role == "system":
            prefix += 1
        total = sum(sizes)
        cut = prefix
        last_droppable = max(prefix, len(messages) - self.keep_last)
        while cut < last_droppable and total > budget:
            total -= sizes[cut]
            cut += 1
        while cut < len(messages) and messages[cut].role == "tool":
            cut += 1
        dropped = cut - prefix
        if dropped == 0:
            return messages
        note = Message(
            id=f"{ctx.turn_id}:rolling-history",
            role="system",
            parts=(
                TextPart(
                    text=f"[{dropped} earlier messages of this conversation are omitted from "
                    "this prompt to fit the context window; they are still in the history.]"
                ),
            ),
        )
        return [*messages[:prefix], note, *messages[cut:]]


class Compaction(Plugin):
    """Compact the current frame into a summary that seeds a new frame.

    The seed is a ``user`` message by default because several providers require the prompt
    to open with one; pass ``role="assistant"`` to present it as the model's own notes.
    """

    id = "compaction"

    def __init__(self, summarise: Summariser, *, role: SeedRole = "user") -> None:
        super().__init__()
        if role not in ("user", "assistant", "system"):
            raise ValueError("role must be 'user', 'assistant' or 'system'")
        self._summarise = summarise
        self._role: SeedRole = role

    async def compact_context(self, ctx: CompactionContext) -> Sequence[Message]:
        if not ctx.messages:
            return ()
        summary = (await self._summarise(ctx.messages)).strip()
        if not summary:
            return ()
        text = f"Summary of the conversation so far:\n\n{summary}"
        message_id = f"compaction:{stable_hash(text)[:16]}"
        return (Message(id=message_id, role=self._role, parts=(TextPart(text=text),)),)


_SUMMARY_INSTRUCTIONS = (
    "Summarise the conversation below so that work can continue from the summary alone. "
    "Keep: the goal, decisions and constraints, what was done and found, files touched, "
    "and what remains. Be concise; use short sections and bullet points."
)


def render_transcript(messages: Sequence[Message]) -> str:
    """A plain-text transcript (tool calls by name and arguments, results as the model saw)."""
    lines: list[str] = []
    for message in messages:
        text = message.text
        calls = ", ".join(f"{c.name}({encode(c.arguments).decode()})" for c in message.tool_calls)
        if calls:
            text = f"{text}\n[calls {calls}]" if text else f"[calls {calls}]"
        lines.append(f"{message.role}: {text}")
    return "\n\n".join(lines)


def model_summariser(
    provider: LlmProvider, model: ModelSpec, *, instructions: str = _SUMMARY_INSTRUCTIONS
) -> Summariser:
    """A :data:`Summariser` that asks ``model`` for the summary with one direct completion."""

    async def summarise(messages: Sequence[Message]) -> str:
        response = await direct_completion(
            provider,
            model,
            [user_message("compaction-request", render_transcript(messages))],
            system=instructions,
        )
        return response.text

    return summarise
