"""Observational memory's state, rebuilt from its plugin nodes in the session graph.

The memory owns three node types on the active path:

- ``…state``: the *active* memory — the observation log, the continuity hints and the id of
  the last message it covers (``observed_through_message_id``);
- ``…buffered_observation``: observations written ahead of need for a stretch of messages,
  waiting to be folded into the active memory;
- ``…buffered_reflection``: a condensed rewrite of one particular active state, waiting to
  replace it.

:func:`build_graph_state` walks the path oldest first; every active node supersedes what came
before it, so buffers written before the newest active state are dropped (they were folded in
or belong to a state that no longer exists). This walk *is* the plugin's restore: nothing of
the memory lives anywhere but the graph.

Token figures are estimates (a token per four characters of the text the observer is shown),
the same measure for every threshold, so they only need to be consistent, not exact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import msgspec

from lash.types import (
    AttachmentPart,
    Message,
    PluginPayload,
    Record,
    SessionGraph,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    encode,
)

__all__ = [
    "ACTIVE_STATE_PLUGIN_TYPE",
    "BUFFERED_OBSERVATION_PLUGIN_TYPE",
    "BUFFERED_REFLECTION_PLUGIN_TYPE",
    "PREPARED_IN_TURN",
    "ActiveMemory",
    "BufferedObservation",
    "BufferedReflection",
    "MemoryGraphState",
    "ObservedMessage",
    "active_state_node",
    "approx_token_count",
    "buffered_observation_node",
    "buffered_reflection_node",
    "build_graph_state",
    "prefix_len_covering_tokens",
    "prefix_len_leaving_tail_budget",
    "retained_tokens_after",
    "split_message_batches",
    "total_tokens",
    "unobserved_messages",
]

ACTIVE_STATE_PLUGIN_TYPE = "lash.context.observational_memory.state"
BUFFERED_OBSERVATION_PLUGIN_TYPE = "lash.context.observational_memory.buffered_observation"
BUFFERED_REFLECTION_PLUGIN_TYPE = "lash.context.observational_memory.buffered_reflection"
PREPARED_IN_TURN = "prepared_in_turn"
"""Body key naming the durable turn whose prompt preparation appended the node (readers of
the node's other fields ignore it); a redrive of that turn uses it to replay its own appends."""


class ActiveMemory(Record, frozen=True, kw_only=True):
    """The memory the prompt is built from (``state_node_id`` is its graph node)."""

    state_node_id: str = ""
    observed_through_message_id: str | None = None
    observations: str = ""
    current_task: str | None = None
    suggested_response: str | None = None

    @property
    def is_empty(self) -> bool:
        """Nothing to put in a prompt."""
        return (
            not self.observations.strip()
            and self.current_task is None
            and self.suggested_response is None
        )


class BufferedObservation(Record, frozen=True, kw_only=True):
    """Observations of the messages up to ``observed_through_message_id``, not yet active."""

    observed_through_message_id: str
    observations: str = ""
    current_task: str | None = None
    suggested_response: str | None = None


class BufferedReflection(Record, frozen=True, kw_only=True):
    """A condensed rewrite of the active state ``source_state_node_id``."""

    source_state_node_id: str
    observed_through_message_id: str = ""
    observations: str = ""
    current_task: str | None = None
    suggested_response: str | None = None


class MemoryGraphState(Record, frozen=True, kw_only=True):
    """What the graph says the memory is now."""

    active: ActiveMemory | None = None
    buffered_observations: tuple[BufferedObservation, ...] = ()
    buffered_reflection: BufferedReflection | None = None


class _ActiveBody(msgspec.Struct, frozen=True, kw_only=True):
    observed_through_message_id: str
    observations: str
    current_task: str | None = None
    suggested_response: str | None = None


class _BufferedObservationBody(msgspec.Struct, frozen=True, kw_only=True):
    observed_through_message_id: str
    observations: str
    current_task: str | None = None
    suggested_response: str | None = None
    observation_tokens: int = 0


class _BufferedReflectionBody(msgspec.Struct, frozen=True, kw_only=True):
    source_state_node_id: str
    observed_through_message_id: str
    observations: str
    current_task: str | None = None
    suggested_response: str | None = None
    observation_tokens: int = 0


def _body(kind: type[Any], body: Any) -> Any:
    try:
        return msgspec.convert(body, type=kind)
    except (msgspec.ValidationError, TypeError):
        return None  # a node this version cannot read is skipped, never fatal


def _hints(current_task: str | None, suggested_response: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if current_task is not None:
        out["current_task"] = current_task
    if suggested_response is not None:
        out["suggested_response"] = suggested_response
    return out


def _memory_body(
    observed_through_message_id: str,
    observations: str,
    current_task: str | None,
    suggested_response: str | None,
) -> dict[str, Any]:
    """The fields an active state and a buffered observation share."""
    return {
        "observed_through_message_id": observed_through_message_id,
        "observations": observations,
        **_hints(current_task, suggested_response),
    }


def active_state_node(
    *,
    observed_through_message_id: str,
    observations: str,
    current_task: str | None = None,
    suggested_response: str | None = None,
) -> PluginPayload:
    """A new active memory state."""
    body = _memory_body(observed_through_message_id, observations, current_task, suggested_response)
    return PluginPayload(plugin_type=ACTIVE_STATE_PLUGIN_TYPE, body=body)


def buffered_observation_node(
    *,
    observed_through_message_id: str,
    observations: str,
    current_task: str | None = None,
    suggested_response: str | None = None,
) -> PluginPayload:
    """A buffered observation chunk."""
    body = _memory_body(observed_through_message_id, observations, current_task, suggested_response)
    body["observation_tokens"] = approx_token_count(observations)
    return PluginPayload(plugin_type=BUFFERED_OBSERVATION_PLUGIN_TYPE, body=body)


def buffered_reflection_node(
    *,
    source_state_node_id: str,
    observed_through_message_id: str,
    observations: str,
    current_task: str | None = None,
    suggested_response: str | None = None,
    observation_tokens: int = 0,
) -> PluginPayload:
    """A buffered reflection of the active state ``source_state_node_id``."""
    body: dict[str, Any] = {
        "source_state_node_id": source_state_node_id,
        "observed_through_message_id": observed_through_message_id,
        "observations": observations,
        **_hints(current_task, suggested_response),
        "observation_tokens": observation_tokens,
    }
    return PluginPayload(plugin_type=BUFFERED_REFLECTION_PLUGIN_TYPE, body=body)


def build_graph_state(graph: SessionGraph) -> MemoryGraphState:
    """Restore the memory from the plugin nodes on ``graph``'s active path."""
    active: ActiveMemory | None = None
    buffered: list[BufferedObservation] = []
    reflection: BufferedReflection | None = None
    for node in graph.active_path():
        payload = node.payload
        if not isinstance(payload, PluginPayload):
            continue
        if payload.plugin_type == ACTIVE_STATE_PLUGIN_TYPE:
            state = _body(_ActiveBody, payload.body)
            if state is None:
                continue
            active = ActiveMemory(
                state_node_id=node.node_id,
                observed_through_message_id=state.observed_through_message_id,
                observations=state.observations,
                current_task=state.current_task,
                suggested_response=state.suggested_response,
            )
            buffered = []
            reflection = None
        elif payload.plugin_type == BUFFERED_OBSERVATION_PLUGIN_TYPE:
            chunk = _body(_BufferedObservationBody, payload.body)
            if chunk is None or any(
                b.observed_through_message_id == chunk.observed_through_message_id for b in buffered
            ):
                continue
            buffered.append(
                BufferedObservation(
                    observed_through_message_id=chunk.observed_through_message_id,
                    observations=chunk.observations,
                    current_task=chunk.current_task,
                    suggested_response=chunk.suggested_response,
                )
            )
        elif payload.plugin_type == BUFFERED_REFLECTION_PLUGIN_TYPE:
            pending = _body(_BufferedReflectionBody, payload.body)
            if pending is None or active is None:
                continue
            if pending.source_state_node_id != active.state_node_id:
                continue
            reflection = BufferedReflection(
                source_state_node_id=pending.source_state_node_id,
                observed_through_message_id=pending.observed_through_message_id,
                observations=pending.observations,
                current_task=pending.current_task,
                suggested_response=pending.suggested_response,
            )
    return MemoryGraphState(
        active=active, buffered_observations=tuple(buffered), buffered_reflection=reflection
    )


def approx_token_count(text: str) -> int:
    """About one token per four characters, rounded up."""
    return (len(text) + 3) // 4


def _format_timestamp(timestamp_ms: int) -> str:
    if timestamp_ms <= 0:
        return "unknown time"
    moment = dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=dt.UTC)
    return f"{moment:%b} {moment.day}, {moment:%Y %H:%M}"


def _part_text(part: Any) -> str:
    if isinstance(part, TextPart):
        return part.text
    if isinstance(part, ToolCallPart):
        return f"[tool call] {part.name} {encode(part.arguments).decode()}"
    if isinstance(part, ToolResultPart):
        return f"[tool result] {part.content}"
    if isinstance(part, AttachmentPart):
        return "[attachment]"
    return ""  # reasoning is display-only: never remembered


class ObservedMessage:
    """A message as the observer sees it, with its token estimate."""

    __slots__ = ("message", "rendered", "timestamp_ms", "tokens")

    def __init__(self, message: Message, timestamp_ms: int = 0) -> None:
        self.message = message
        self.timestamp_ms = timestamp_ms
        body = "\n".join(_part_text(p) for p in message.parts).strip()
        self.rendered = f"[{_format_timestamp(timestamp_ms)}] {message.role.upper()}\n{body}"
        self.tokens = approx_token_count(self.rendered)

    @property
    def id(self) -> str:
        """The message id."""
        return self.message.id


def unobserved_messages(
    graph: SessionGraph, observed_through_message_id: str | None
) -> list[ObservedMessage]:
    """The conversation messages on the active path after ``observed_through_message_id``
    (every one when it is ``None``; none when it is not on the path). System and transient
    messages are never observed."""
    seen = observed_through_message_id is None
    out: list[ObservedMessage] = []
    for node, message in graph.iter_active_messages():
        if message.role == "system" or message.transient:
            continue
        if not seen:
            seen = message.id == observed_through_message_id
            continue
        out.append(ObservedMessage(message, node.timestamp_ms))
    return out


def total_tokens(messages: Sequence[ObservedMessage]) -> int:
    """The estimate for a run of messages."""
    return sum(m.tokens for m in messages)


def retained_tokens_after(messages: Sequence[ObservedMessage]) -> dict[str, int]:
    """For each message id, the tokens of the messages that follow it."""
    retained: dict[str, int] = {}
    suffix = 0
    for message in reversed(messages):
        retained[message.id] = suffix
        suffix += message.tokens
    return retained


def prefix_len_leaving_tail_budget(messages: Sequence[ObservedMessage], tail_tokens: int) -> int:
    """How many leading messages to observe so that at most ``tail_tokens`` stay raw."""
    if not messages:
        return 0
    if tail_tokens <= 0:
        return len(messages)
    suffix = 0
    for index in range(len(messages) - 1, -1, -1):
        suffix += messages[index].tokens
        if suffix > tail_tokens:
            return index + 1
    return 0


def prefix_len_covering_tokens(messages: Sequence[ObservedMessage], target: int) -> int | None:
    """The shortest prefix holding at least ``target`` tokens (``None``: there is none)."""
    if target <= 0:
        return 0
    total = 0
    for index, message in enumerate(messages):
        total += message.tokens
        if total >= target:
            return index + 1
    return None


def split_message_batches(
    messages: Sequence[ObservedMessage], max_tokens: int
) -> list[list[ObservedMessage]]:
    """Consecutive batches of at most ``max_tokens`` (a bigger message gets its own)."""
    batches: list[list[ObservedMessage]] = []
    current: list[ObservedMessage] = []
    size = 0
    for message in messages:
        tokens = max(1, message.tokens)
        if current and size + tokens > max_tokens:
            batches.append(current)
            current, size = [], 0
        current.append(message)
        size += tokens
    if current:
        batches.append(current)
    return batches
