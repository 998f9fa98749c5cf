"""The persisted, source-free tool state of a session, and how a checkpoint stores it.

A :class:`ToolState` is what a session's checkpoint keeps in ``tool_state``: a generation plus
one :class:`ToolStateEntry` per tool id (its last-known manifest, whether it was orphaned, and
whether it is a catalog member). It names no tool *source*: sources are live wiring that a
new process registers again, so a snapshot taken in one process restores in another.

Next to it the checkpoint may carry two sets of tool *names*, each denied whatever id serves
it: ``hidden`` is curation (a name hidden before any source served it; showing it lifts it)
and ``denied`` is the session's access policy (a fork's ``hidden_tools``): never a member,
never executable, not even through a grant, and no membership change lifts it. Checkpoints
written before the registry existed hold only ``{"membership": {"generation", "hidden"}}``;
:func:`decode_tool_state` reads them as an empty snapshot at that generation whose hidden
names become curation, so old sessions still open with the same tools hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from lash.errors import LashRuntimeError
from lash.types import ToolSpec
from lash.types._base import Record

__all__ = [
    "DENIED_KEY",
    "HIDDEN_KEY",
    "INVALID_TOOL_STATE",
    "MEMBERSHIP_KEY",
    "ToolManifest",
    "ToolMembership",
    "ToolState",
    "ToolStateEntry",
    "decode_tool_state",
    "denied_tools",
    "encode_tool_state",
    "membership_of",
    "with_membership",
]

MEMBERSHIP_KEY = "membership"
"""The legacy key (name-based membership, before the registry)."""
HIDDEN_KEY = "hidden"
"""The checkpoint key of names hidden by curation (beside the snapshot's fields)."""
DENIED_KEY = "denied"
"""The checkpoint key of the session's access policy: names that are never executable."""
INVALID_TOOL_STATE = "invalid_tool_state"
"""Error code: a tool state (or a change to one) is malformed or cannot be served."""


class ToolManifest(Record, frozen=True, kw_only=True):
    """A tool's identity and model-facing description, without its implementation."""

    id: str
    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    @classmethod
    def of(cls, spec: ToolSpec, tool_id: str) -> ToolManifest:
        """The manifest of a tool with ``spec`` served under ``tool_id``."""
        return cls(
            id=tool_id, name=spec.name, description=spec.description, parameters=spec.parameters
        )

    @property
    def spec(self) -> ToolSpec:
        """The spec the model sees."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)


class ToolStateEntry(Record, frozen=True, kw_only=True):
    """One tool in a snapshot: manifest, orphan flag and catalog membership.

    ``orphaned`` means no registered source resolved the id when the state was exported; the
    entry keeps its last-known manifest so it can rebind when the source returns.
    """

    manifest: ToolManifest
    orphaned: bool = False
    member: bool = True

    @property
    def is_member(self) -> bool:
        """Advertised and callable now (an orphan never is, whatever its flag says)."""
        return self.member and not self.orphaned


class ToolState(Record, frozen=True, kw_only=True):
    """A session's tool surface: generation plus entries keyed by tool id.

    Edits return new states; hand one to ``ToolRegistry.apply_state`` (or
    ``LashSession.apply_tool_state``) at the generation it was exported at.
    """

    generation: int = 0
    tools: dict[str, ToolStateEntry] = msgspec.field(default_factory=dict)

    def get(self, tool_id: str) -> ToolStateEntry | None:
        """The entry for ``tool_id``, if the state has one."""
        return self.tools.get(tool_id)

    def contains(self, tool_id: str) -> bool:
        """Whether the state has an entry for ``tool_id``."""
        return tool_id in self.tools

    def find(self, name: str) -> tuple[str, ToolStateEntry] | None:
        """The id and entry of the tool called ``name`` (names are unique in a state)."""
        return next(((i, e) for i, e in self.tools.items() if e.manifest.name == name), None)

    def member_manifests(self) -> tuple[ToolManifest, ...]:
        """Manifests of the current catalog members, by id."""
        return tuple(self.tools[i].manifest for i in sorted(self.tools) if self.tools[i].is_member)

    def with_membership(self, tool_id: str, present: bool) -> ToolState:
        """This state with ``tool_id`` a member (``present``) or not; same generation."""
        entry = self.tools.get(tool_id)
        if entry is None:
            raise LashRuntimeError(INVALID_TOOL_STATE, f"unknown tool id {tool_id!r}")
        tools = dict(self.tools)
        tools[tool_id] = msgspec.structs.replace(entry, member=present)
        return msgspec.structs.replace(self, tools=tools)

    def without(self, tool_id: str) -> ToolState:
        """This state without ``tool_id`` (an explicit deletion, for ``apply_state`` only:
        a later rebuild from live sources brings an advertised tool back)."""
        tools = {i: e for i, e in self.tools.items() if i != tool_id}
        return msgspec.structs.replace(self, tools=tools)

    def with_generation(self, generation: int) -> ToolState:
        """This state re-stamped at ``generation``."""
        return msgspec.structs.replace(self, generation=generation)


def encode_tool_state(
    state: ToolState, hidden: Iterable[str] = (), denied: Iterable[str] = ()
) -> dict[str, Any]:
    """The checkpoint form: the snapshot's fields, entries sorted by id, plus the curation's
    hidden names and the access policy's denied names when there are any (sorted, so equal
    states encode equally). A session that never served a tool encodes as ``{}``, as it was
    before the registry."""
    names = sorted(set(hidden))
    policy = sorted(set(denied))
    if state.generation == 0 and not state.tools and not names and not policy:
        return {}
    encoded: dict[str, Any] = msgspec.to_builtins(state)
    encoded["tools"] = {i: encoded["tools"][i] for i in sorted(encoded["tools"])}
    if names:
        encoded[HIDDEN_KEY] = names
    if policy:
        encoded[DENIED_KEY] = policy
    return encoded


def decode_tool_state(tool_state: Mapping[str, Any]) -> tuple[ToolState, frozenset[str]]:
    """The snapshot and hidden-name policy in a checkpoint's ``tool_state``.

    An empty mapping is a fresh session; a legacy ``membership`` record migrates (see the
    module docstring). Anything else malformed is ``invalid_tool_state``.
    """
    if not tool_state:
        return ToolState(), frozenset()
    if "tools" not in tool_state and MEMBERSHIP_KEY in tool_state:
        legacy = _legacy_membership(tool_state)
        return ToolState(generation=legacy.generation), frozenset(legacy.hidden)
    try:
        state = msgspec.convert(dict(tool_state), ToolState)
        hidden = msgspec.convert(tool_state.get(HIDDEN_KEY, []), list[str])
    except msgspec.ValidationError as err:
        raise LashRuntimeError(INVALID_TOOL_STATE, f"corrupt tool state: {err}") from err
    return state, frozenset(hidden)


def denied_tools(tool_state: Mapping[str, Any]) -> frozenset[str]:
    """The access policy in a checkpoint's ``tool_state``: names never executable (``{}`` and
    legacy records have none: their hidden names were curation)."""
    raw = tool_state.get(DENIED_KEY)
    if raw is None or "tools" not in tool_state:
        return frozenset()
    try:
        return frozenset(msgspec.convert(raw, list[str]))
    except msgspec.ValidationError as err:
        raise LashRuntimeError(INVALID_TOOL_STATE, f"corrupt tool access policy: {err}") from err


class ToolMembership(Record, frozen=True, kw_only=True):
    """A name-level view of membership: the generation and every name that is not a member.

    This was the whole persisted record before the registry; it remains the view the turn
    runner filters its catalog with (:func:`membership_of`).
    """

    generation: int = 0
    hidden: tuple[str, ...] = ()

    def is_member(self, name: str) -> bool:
        """Whether ``name`` may be advertised and called (everything not hidden)."""
        return name not in self.hidden

    def changed(self, names: Iterable[str], present: bool) -> ToolMembership:
        """The membership after showing (``present``) or hiding ``names``; unchanged → self."""
        hidden = set(self.hidden)
        wanted = {_name(n) for n in names}
        updated = hidden - wanted if present else hidden | wanted
        if updated == hidden:
            return self
        return ToolMembership(generation=self.generation + 1, hidden=tuple(sorted(updated)))


def membership_of(tool_state: Mapping[str, Any]) -> ToolMembership:
    """The name-level membership of a checkpoint's ``tool_state`` (either format): the
    non-member entries' names plus the hidden and denied names."""
    if "tools" not in tool_state:
        return _legacy_membership(tool_state) if tool_state else ToolMembership()
    state, hidden = decode_tool_state(tool_state)
    denied = {e.manifest.name for e in state.tools.values() if not e.is_member} | hidden
    denied |= denied_tools(tool_state)
    return ToolMembership(generation=state.generation, hidden=tuple(sorted(denied)))


def with_membership(tool_state: Mapping[str, Any], membership: ToolMembership) -> dict[str, Any]:
    """A copy of a legacy ``tool_state`` carrying ``membership`` (other keys untouched)."""
    updated = dict(tool_state)
    updated[MEMBERSHIP_KEY] = msgspec.to_builtins(membership)
    return updated


def _legacy_membership(tool_state: Mapping[str, Any]) -> ToolMembership:
    raw = tool_state.get(MEMBERSHIP_KEY)
    if raw is None:
        return ToolMembership()
    try:
        return msgspec.convert(raw, ToolMembership)
    except msgspec.ValidationError as err:
        raise LashRuntimeError(
            INVALID_TOOL_STATE, f"corrupt tool membership record in tool_state: {err}"
        ) from err


def _name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise LashRuntimeError(
            INVALID_TOOL_STATE, f"tool names must be non-empty strings, got {name!r}"
        )
    return name
