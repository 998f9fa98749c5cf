"""Subagent capabilities: named recipes that turn a ``spawn_agent`` call into a child session.

A :class:`Capability` gets a :class:`SpawnContext` (who is spawning, the task, the child's
depth) and returns the complete :class:`SpawnRequest`: the child session, what it may call
(an allow-list and extra hidden tools), the ledger source its usage is booked under and the
prompt it starts with. The subagents plugin then enforces what no capability may change: the
child session id, the depth and the depth limit (``spawn_agent`` is hidden at the maximum).

``explore`` (read-only tools, no further spawning) and ``peer`` (the parent's tools) are two
:class:`StaticCapability` instances; hosts register their own next to or instead of them.
Children run on the parent's core, so provider and model are always the parent's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from lash.plugins._common import CHILD_MARK, READ_ONLY_TOOLS
from lash.types._base import Record

__all__ = [
    "MAX_SUBAGENT_DEPTH",
    "SPAWN_TOOL",
    "Capability",
    "SpawnContext",
    "SpawnRequest",
    "StaticCapability",
    "child_session_id",
    "default_capabilities",
]

MAX_SUBAGENT_DEPTH = 5
SPAWN_TOOL = "spawn_agent"


def child_session_id(parent_session_id: str, call_id: str) -> str:
    """The child session id for one ``spawn_agent`` call (stable across a replayed attempt)."""
    return f"{parent_session_id}{CHILD_MARK}{call_id}"


class SpawnRequest(Record, frozen=True, kw_only=True):
    """Everything needed to start one child: its session, tool access, usage source, prompt.

    ``tools`` is an allow-list of tool names (``None``: the same catalog as the parent);
    ``hidden_tools`` are removed on top of it. ``usage_source`` is the ledger source of the
    child's own usage in the parent's ``children_usage``.
    """

    capability: str
    parent_session_id: str
    session_id: str
    depth: int
    max_depth: int
    prompt: str
    tools: tuple[str, ...] | None = None
    hidden_tools: tuple[str, ...] = ()
    usage_source: str = "subagent"
    max_turns: int | None = None

    def allows(self, name: str) -> bool:
        """Whether the child may call ``name``."""
        listed = self.tools is None or name in self.tools
        return listed and name not in self.hidden_tools


class SpawnContext(Record, frozen=True, kw_only=True):
    """What a capability knows when it builds a request."""

    parent_session_id: str
    call_id: str
    task: str
    depth: int
    """The child's depth (1 for a child of a root session)."""
    max_depth: int = MAX_SUBAGENT_DEPTH
    parent_capability: str | None = None
    base_hidden_tools: tuple[str, ...] = ()
    """Hidden in every child (the plugin's ``hidden_tools``)."""
    max_turns: int | None = None

    @property
    def child_session_id(self) -> str:
        """The id the child session gets."""
        return child_session_id(self.parent_session_id, self.call_id)

    def request(
        self,
        capability: str,
        *,
        tools: Iterable[str] | None = None,
        hidden_tools: Iterable[str] = (),
        usage_source: str = "subagent",
        prompt: str | None = None,
    ) -> SpawnRequest:
        """A request with this context's session, depth and base hidden tools filled in."""
        return SpawnRequest(
            capability=capability,
            parent_session_id=self.parent_session_id,
            session_id=self.child_session_id,
            depth=self.depth,
            max_depth=self.max_depth,
            prompt=self.task if prompt is None else prompt,
            tools=None if tools is None else tuple(sorted(set(tools))),
            hidden_tools=tuple(sorted(set(self.base_hidden_tools) | set(hidden_tools))),
            usage_source=usage_source,
            max_turns=self.max_turns,
        )


@runtime_checkable
class Capability(Protocol):
    """A named way to spawn a subagent."""

    @property
    def name(self) -> str:
        """What ``spawn_agent``'s ``capability`` argument says."""
        ...

    @property
    def description(self) -> str:
        """One line for the model: when to pick this capability."""
        ...

    def build_spawn_request(self, ctx: SpawnContext) -> SpawnRequest:
        """The complete request for one spawn (raise to refuse it)."""
        ...


class StaticCapability:
    """A capability with a fixed tool access and usage source."""

    def __init__(
        self,
        name: str,
        description: str,
        *,
        tools: Iterable[str] | None = None,
        hidden_tools: Iterable[str] = (),
        usage_source: str = "subagent",
    ) -> None:
        if not name or not name.strip():
            raise ValueError("a capability needs a name")
        self._name = name
        self._description = description
        self.tools = None if tools is None else frozenset(tools)
        self.hidden_tools = frozenset(hidden_tools)
        self.usage_source = usage_source

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._description

    def build_spawn_request(self, ctx: SpawnContext) -> SpawnRequest:
        return ctx.request(
            self._name,
            tools=self.tools,
            hidden_tools=self.hidden_tools,
            usage_source=self.usage_source,
        )

    def __repr__(self) -> str:
        return f"StaticCapability({self._name!r})"


def default_capabilities(
    read_only_tools: Iterable[str] = READ_ONLY_TOOLS,
) -> tuple[StaticCapability, StaticCapability]:
    """The built-in pair: ``explore`` (only ``read_only_tools``, so it cannot spawn) and
    ``peer`` (everything its parent has, including ``spawn_agent``)."""
    return (
        StaticCapability("explore", "read-only investigation", tools=read_only_tools),
        StaticCapability("peer", "same tools as you"),
    )
