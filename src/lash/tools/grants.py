"""Per-turn tool execution grants: run one named tool outside catalog membership.

A grant is a host's explicit, per-turn authorisation (deferred tool resolution, a remote
executor, a tool the session keeps hidden). It routes a call to a tool the model was never
shown, without adding that tool to the advertised catalog or to persisted tool state. The
grant itself is a plain serialisable record; the tool it names is resolved only from the
*grant source* the session registered under ``source_id``. A grant without a source routes
nowhere: a route is never inferred from the catalog, so a hidden tool runs only when the host
registers it in a grant source explicitly.
The grant's ``binding`` (account, secret reference, executor address) reaches the tool as
``ToolContext.execution_binding``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from lash.tools.base import Tool, ToolProvider
from lash.types._base import Record

__all__ = ["GrantSource", "GrantedTool", "ToolExecutionGrant", "resolve_grants"]

GrantSource = Tool | ToolProvider | Sequence[Tool]


class ToolExecutionGrant(Record, frozen=True, kw_only=True):
    """Authorises calls to ``tool_name`` for one turn, routed through ``source_id``."""

    tool_name: str
    source_id: str | None = None
    binding: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.tool_name, str) or not self.tool_name:
            raise ValueError("a tool execution grant needs a non-empty tool_name")
        if self.source_id is not None and not self.source_id:
            raise ValueError("a tool execution grant's source_id must be non-empty when given")


@dataclass(frozen=True, slots=True)
class GrantedTool:
    """A grant resolved to the tool that will run it."""

    tool: Tool
    grant: ToolExecutionGrant


def resolve_grants(
    grants: Iterable[ToolExecutionGrant], sources: Mapping[str, GrantSource]
) -> dict[str, GrantedTool]:
    """Grants by tool name, each bound to its tool. A grant whose source or tool is missing
    resolves to nothing, so a call to it stays ``tool_unavailable``; a second grant for the
    same name is rejected (which binding applies would be ambiguous)."""
    resolved: dict[str, GrantedTool] = {}
    seen: set[str] = set()
    for grant in grants:
        if grant.tool_name in seen:
            raise ValueError(f"tool {grant.tool_name!r} is granted twice in one turn")
        seen.add(grant.tool_name)
        source = None if grant.source_id is None else sources.get(grant.source_id)
        tool = None if source is None else _find(source, grant.tool_name)
        if tool is not None:
            resolved[grant.tool_name] = GrantedTool(tool, grant)
    return resolved


def _find(source: GrantSource, name: str) -> Tool | None:
    members: Iterable[Tool]
    if isinstance(source, Tool):
        members = (source,)
    elif isinstance(source, ToolProvider):
        members = source.tools()
    else:
        members = source
    return next((t for t in members if t.spec.name == name), None)
