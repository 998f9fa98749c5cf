"""Conversation messages, their parts, attachments and turn input.

A message is a role plus ordered parts. Tool results are their own ``tool`` messages (one per
call, paired by ``tool_call_id``), which is what every provider's native format can replay.
"""

from __future__ import annotations

from typing import Any, Literal

from lash.types._base import Record

__all__ = [
    "AttachmentItem",
    "AttachmentPart",
    "AttachmentRef",
    "AttachmentSource",
    "ExternalUrlSource",
    "InlineSource",
    "InputItem",
    "Message",
    "Part",
    "ReasoningPart",
    "Role",
    "StoredSource",
    "TextItem",
    "TextPart",
    "ToolCallPart",
    "ToolResultPart",
    "TurnInput",
]

Role = Literal["system", "user", "assistant", "tool"]


class AttachmentRef(Record, frozen=True, kw_only=True):
    """A lash-owned, content-addressed blob (``id`` is the SHA-256 hex of the bytes)."""

    id: str
    media_type: str
    byte_len: int
    label: str | None = None

    @property
    def uri(self) -> str:
        """The canonical ``lash-attachment://sha256/<id>`` URI."""
        return f"lash-attachment://sha256/{self.id}"


class TextPart(Record, frozen=True, kw_only=True, tag_field="kind", tag="text"):
    """Plain text."""

    text: str


class ReasoningPart(Record, frozen=True, kw_only=True, tag_field="kind", tag="reasoning"):
    """Reasoning/thinking text plus an opaque provider replay payload."""

    text: str = ""
    replay: Any = None


class ToolCallPart(Record, frozen=True, kw_only=True, tag_field="kind", tag="tool_call"):
    """A model's request to call a tool. ``arguments`` is the parsed JSON object."""

    id: str
    name: str
    arguments: dict[str, Any]
    raw_arguments: str | None = None


class ToolResultPart(Record, frozen=True, kw_only=True, tag_field="kind", tag="tool_result"):
    """What the model sees of a tool call's result (the budgeted projection)."""

    tool_call_id: str
    name: str
    content: str
    is_error: bool = False


class AttachmentPart(Record, frozen=True, kw_only=True, tag_field="kind", tag="attachment"):
    """A reference to a stored attachment."""

    ref: AttachmentRef


Part = TextPart | ReasoningPart | ToolCallPart | ToolResultPart | AttachmentPart


class Message(Record, frozen=True, kw_only=True):
    """One conversation message. ``transient`` messages are never part of the prompt."""

    id: str
    role: Role
    parts: tuple[Part, ...] = ()
    transient: bool = False

    @property
    def text(self) -> str:
        """The concatenated text (a tool message's text is the result the model saw)."""
        return "".join(
            p.text if isinstance(p, TextPart) else p.content
            for p in self.parts
            if isinstance(p, TextPart | ToolResultPart)
        )

    @property
    def tool_calls(self) -> tuple[ToolCallPart, ...]:
        """Tool calls requested by an assistant message."""
        return tuple(p for p in self.parts if isinstance(p, ToolCallPart))

    @property
    def tool_call_id(self) -> str | None:
        """For a ``tool`` message, the call it answers."""
        for p in self.parts:
            if isinstance(p, ToolResultPart):
                return p.tool_call_id
        return None

    @property
    def reasoning(self) -> str:
        """Concatenated reasoning text."""
        return "".join(p.text for p in self.parts if isinstance(p, ReasoningPart))

    @property
    def attachments(self) -> tuple[AttachmentRef, ...]:
        """Attachment references carried by the message."""
        return tuple(p.ref for p in self.parts if isinstance(p, AttachmentPart))


# --- turn input -------------------------------------------------------------------------


class InlineSource(Record, frozen=True, kw_only=True, tag_field="type", tag="inline"):
    """Bytes supplied with the input; stored and replaced by a reference before any effect."""

    media_type: str
    data: bytes
    label: str | None = None


class StoredSource(Record, frozen=True, kw_only=True, tag_field="type", tag="stored"):
    """A blob the attachment store already holds."""

    ref: AttachmentRef


class ExternalUrlSource(Record, frozen=True, kw_only=True, tag_field="type", tag="external_url"):
    """A URL lash never fetches; passed to providers as-is."""

    media_type: str
    url: str


AttachmentSource = InlineSource | StoredSource | ExternalUrlSource


class TextItem(Record, frozen=True, kw_only=True, tag_field="type", tag="text"):
    """Text input."""

    text: str


class AttachmentItem(Record, frozen=True, kw_only=True, tag_field="type", tag="attachment"):
    """Attachment input."""

    source: AttachmentSource


InputItem = TextItem | AttachmentItem


class TurnInput(Record, frozen=True, kw_only=True):
    """The serialisable input of one turn: items, per-turn protocol options, a stable turn id.

    Live, non-serialisable per-turn values (plugin inputs, protocol extensions) are passed on
    the turn builder instead, because a persisted session must be able to replay its input.
    """

    items: tuple[InputItem, ...] = ()
    protocol_turn_options: dict[str, Any] | None = None
    trace_turn_id: str | None = None

    @classmethod
    def text(cls, text: str, *, trace_turn_id: str | None = None) -> TurnInput:
        """Input holding one text item."""
        return cls(items=(TextItem(text=text),), trace_turn_id=trace_turn_id)

    @classmethod
    def of(cls, value: str | TurnInput) -> TurnInput:
        """Coerce a string into text input."""
        return value if isinstance(value, TurnInput) else cls.text(value)

    def with_attachment(self, source: AttachmentSource) -> TurnInput:
        """A copy with one more attachment item."""
        return TurnInput(
            items=(*self.items, AttachmentItem(source=source)),
            protocol_turn_options=self.protocol_turn_options,
            trace_turn_id=self.trace_turn_id,
        )

    @property
    def is_empty(self) -> bool:
        """True when there are no items."""
        return not self.items

    @property
    def plain_text(self) -> str:
        """The text items joined by newlines."""
        return "\n".join(i.text for i in self.items if isinstance(i, TextItem))
