"""Persisted per-session tool membership: which advertised tools a host has hidden.

The record lives in the session checkpoint's ``tool_state`` under ``"membership"``, so it is
committed with every turn and survives reopen and a cold rebuild from the store. Only hidden
names are stored: a tool a provider starts advertising later is a member by default, and a
hidden name stays denied even while its provider is absent (and after it returns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from lash.types._base import Record

__all__ = ["MEMBERSHIP_KEY", "ToolMembership", "membership_of", "with_membership"]

MEMBERSHIP_KEY = "membership"


class ToolMembership(Record, frozen=True, kw_only=True):
    """Hidden tool names plus a generation that bumps on every effective change."""

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
    """The membership stored in a checkpoint's ``tool_state`` (empty when none)."""
    raw = tool_state.get(MEMBERSHIP_KEY)
    if raw is None:
        return ToolMembership()
    try:
        return msgspec.convert(raw, ToolMembership)
    except msgspec.ValidationError as err:
        raise ValueError(f"corrupt tool membership record in tool_state: {err}") from err


def with_membership(tool_state: Mapping[str, Any], membership: ToolMembership) -> dict[str, Any]:
    """A copy of ``tool_state`` carrying ``membership`` (other keys untouched)."""
    updated = dict(tool_state)
    updated[MEMBERSHIP_KEY] = msgspec.to_builtins(membership)
    return updated


def _name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"tool names must be non-empty strings, got {name!r}")
    return name
