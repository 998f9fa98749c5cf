"""The tool catalog: which tools a session may call, by unique name, in a stable order.

A catalog is immutable. ``with_``/``without`` return new catalogs, so a catalog captured for
one turn never changes under it; :meth:`ToolCatalog.refresh` re-reads the providers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from lash.tools.base import Tool, ToolProvider
from lash.types import ToolSpec

__all__ = ["DuplicateToolError", "ToolCatalog"]

ToolSource = Tool | ToolProvider


class DuplicateToolError(ValueError):
    """Two tools in one catalog share a name (a registration error, never resolved silently)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"duplicate tool name {name!r}: tool names must be unique in a catalog")
        self.name = name


class ToolCatalog:
    """Tools and tool providers flattened into one name → tool map (registration order)."""

    __slots__ = ("_hidden", "_sources", "_tools")

    def __init__(self, sources: Iterable[ToolSource] = ()) -> None:
        self._sources: tuple[ToolSource, ...] = tuple(sources)
        self._hidden: frozenset[str] = frozenset()
        self._tools = _flatten(self._sources, self._hidden)

    @classmethod
    def _build(cls, sources: tuple[ToolSource, ...], hidden: frozenset[str]) -> ToolCatalog:
        catalog = cls.__new__(cls)
        catalog._sources = sources
        catalog._hidden = hidden
        catalog._tools = _flatten(sources, hidden)
        return catalog

    def specs(self) -> tuple[ToolSpec, ...]:
        """Model-facing specs in registration order."""
        return tuple(t.spec for t in self._tools.values())

    def get(self, name: str) -> Tool | None:
        """The tool called ``name``, or ``None`` when it is not a member."""
        return self._tools.get(name)

    def names(self) -> tuple[str, ...]:
        """Member names in registration order."""
        return tuple(self._tools)

    def with_(self, *sources: ToolSource | Sequence[ToolSource]) -> ToolCatalog:
        """A catalog with more tools or providers (duplicates raise :class:`DuplicateToolError`).

        A name hidden by :meth:`without` becomes visible again when added explicitly.
        """
        added = tuple(_expand(sources))
        new_names = {t.spec.name for t in _flatten(added, frozenset()).values()}
        return self._build(self._sources + added, self._hidden - new_names)

    def without(self, *names: str) -> ToolCatalog:
        """A catalog without the named tools (unknown names are ignored)."""
        return self._build(self._sources, self._hidden | frozenset(names))

    def refresh(self) -> ToolCatalog:
        """Re-read every provider's current tools."""
        return self._build(self._sources, self._hidden)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"ToolCatalog({list(self._tools)!r})"


def _expand(sources: Iterable[ToolSource | Sequence[ToolSource]]) -> Iterator[ToolSource]:
    for source in sources:
        if isinstance(source, Tool | ToolProvider):
            yield source
        else:
            yield from source


def _flatten(sources: Iterable[ToolSource], hidden: frozenset[str]) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    seen: set[str] = set()
    for source in sources:
        members: Iterable[Tool]
        if isinstance(source, Tool):
            members = (source,)
        elif isinstance(source, ToolProvider):
            members = source.tools()
        else:
            raise TypeError(f"not a Tool or ToolProvider: {source!r}")
        for member in members:
            name = member.spec.name
            if name in seen:
                raise DuplicateToolError(name)
            seen.add(name)
            if name not in hidden:
                tools[name] = member
    return tools
