"""The tool registry: which tools a session serves, from which live source, at which generation.

A :class:`ToolRegistry` joins *sources* (named tool providers: the core's tools, each plugin,
host-added ``live:{n}`` providers) with a source-free :class:`~lash.tools.membership.ToolState`
(one entry per tool id: manifest, orphan flag, catalog membership).

* **Tool ids.** Our tools carry a model-facing name but no identity of their own, so a tool's
  id is the ``tool_id`` it declares (see :func:`with_tool_id`), else ``"tool:" + name``. The
  id deliberately leaves the source out: source ids such as ``live:3`` depend on the order a
  process registers providers, while a persisted id must rebind to the same tool after a
  restart, and the exported state must stay source-free.
* **Generations fence changes.** :meth:`ToolRegistry.apply_state` takes a state exported at
  the current generation and bumps it; any other generation is
  ``tool_state_generation_mismatch``. Rebuilds from live sources bump only when the served
  surface changed, so reopening with the same sources never moves the generation.
* **Restore never fails on a missing source.** A persisted tool no source resolves becomes an
  *orphan*: kept with its last manifest, never a member, rebound by id when a source serves it
  again (the live manifest wins; membership stays attached to the id). A new id that reuses an
  orphan's name supersedes it, and the old id's opt-out does not transfer.
* **Hidden names are not state.** A name in ``hidden`` (curation: hidden before any source
  served it) or in ``policy`` (the session's access policy, a fork's ``hidden_tools``) is never
  a member, whatever id serves it and however it is resolved, so it is not executable even by
  id. Showing a name lifts curation only: showing a policy-denied name is
  ``tool_hidden_by_policy``, and no grant routes to one either.
* **Ambiguity fails.** Two sources serving one id, or two tools sharing a name, is
  ``tool_source_conflict``: execution authority and model-facing names must be unambiguous.
* **State-dependent providers do not churn the surface.** A plugin advertises some tools only
  in some states (plan mode's ``plan_exit`` while planning). Registered through a
  :class:`RetainedToolSource`, a tool it stops advertising stays bound (no orphan, no
  generation bump) and is left out where the surface is *projected* for a turn or a catalog
  (:meth:`RetainedToolSource.advertising`), the way plugin filtering is.
* **Grants never enter state.** :meth:`ToolRegistry.granted_tool` routes a
  :class:`~lash.tools.grants.ToolExecutionGrant` through the source it names and nowhere else,
  without adding the tool to the state or the catalog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from lash.errors import LashRuntimeError
from lash.tools.base import Tool, ToolContext, ToolProvider, ToolRetryPolicy
from lash.tools.grants import ToolExecutionGrant
from lash.tools.membership import (
    INVALID_TOOL_STATE,
    ToolManifest,
    ToolState,
    ToolStateEntry,
)
from lash.types import ToolCallOutput, ToolSpec

__all__ = [
    "INVALID_TOOL_STATE",
    "LazyToolSource",
    "RetainedToolSource",
    "TOOL_HIDDEN_BY_POLICY",
    "TOOL_SOURCE_CONFLICT",
    "TOOL_STATE_GENERATION_MISMATCH",
    "ToolRegistry",
    "ToolRestoreReport",
    "ToolSourceLike",
    "UNKNOWN_TOOL_SOURCE",
    "project_tool_catalog",
    "tool_id_of",
    "with_tool_id",
]

TOOL_STATE_GENERATION_MISMATCH = "tool_state_generation_mismatch"
TOOL_SOURCE_CONFLICT = "tool_source_conflict"
TOOL_HIDDEN_BY_POLICY = "tool_hidden_by_policy"
UNKNOWN_TOOL_SOURCE = "unknown_tool_source"

ToolSourceLike = Tool | ToolProvider | Sequence[Tool]
"""What may be registered as a source: one tool, a provider, or a list of tools."""


@runtime_checkable
class LazyToolSource(Protocol):
    """A source that can resolve tools it does not advertise (deferred, MCP-style lookup)."""

    def resolve_tool(self, name: str) -> Tool | None:
        """The tool called ``name``, or ``None``."""
        ...

    def resolve_tool_id(self, tool_id: str) -> Tool | None:
        """The tool with id ``tool_id``, or ``None``."""
        ...


class RetainedToolSource:
    """A provider whose tools, once advertised, stay in the registry's served surface.

    The registry reads :meth:`tools` (everything seen in this process, the latest object per
    id); the projection asks :meth:`advertising` what the provider offers right now.
    """

    __slots__ = ("_seen", "provider")

    def __init__(self, provider: ToolProvider) -> None:
        self.provider = provider
        self._seen: dict[str, Tool] = {}

    def tools(self) -> Sequence[Tool]:
        current = {tool_id_of(t): t for t in self.provider.tools()}
        claimed = {t.spec.name: i for i, t in current.items()}
        for tool_id, tool in list(self._seen.items()):
            owner = claimed.get(tool.spec.name)
            if owner is not None and owner != tool_id:
                del self._seen[tool_id]  # a new id reuses the name: the old one is superseded
        self._seen.update(current)
        return list(self._seen.values())

    def advertising(self) -> frozenset[str]:
        """The names the provider advertises now (the others are dormant)."""
        return frozenset(t.spec.name for t in self.provider.tools())

    def __repr__(self) -> str:
        return f"RetainedToolSource({self.provider!r})"


def tool_id_of(tool: Tool) -> str:
    """A tool's registry id: its declared ``tool_id``, else ``"tool:" + name``."""
    declared = getattr(tool, "tool_id", None)
    if isinstance(declared, str) and declared.strip():
        return declared
    return f"tool:{tool.spec.name}"


class _IdentifiedTool:
    """A tool served under an explicit id (everything else delegates)."""

    __slots__ = ("_tool", "tool_id")

    def __init__(self, tool: Tool, tool_id: str) -> None:
        self._tool = tool
        self.tool_id = tool_id

    @property
    def spec(self) -> ToolSpec:
        return self._tool.spec

    @property
    def retry_policy(self) -> ToolRetryPolicy:
        return self._tool.retry_policy

    async def invoke(self, ctx: ToolContext, arguments: Mapping[str, Any]) -> ToolCallOutput:
        return await self._tool.invoke(ctx, arguments)

    def __getattr__(self, name: str) -> Any:
        # retry overrides (max_attempts, ...) and anything else the dispatcher reads
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._tool, name)

    def __repr__(self) -> str:
        return f"{self._tool!r} as {self.tool_id!r}"


def with_tool_id(tool: Tool, tool_id: str) -> Tool:
    """``tool`` served under ``tool_id`` (e.g. a new implementation that reuses a name)."""
    if not isinstance(tool_id, str) or not tool_id.strip():
        raise LashRuntimeError(INVALID_TOOL_STATE, "a tool id must be a non-empty string")
    return _IdentifiedTool(tool, tool_id)


class _Source:
    """One registered source and the lookups the registry needs from it."""

    __slots__ = ("kind", "lazy", "provider", "source_id")

    def __init__(self, source_id: str, provider: ToolSourceLike) -> None:
        self.source_id = source_id
        self.provider = provider
        # classified once: protocol isinstance checks are too slow for every turn
        self.kind = "tool" if isinstance(provider, Tool) else "provider"
        if self.kind == "provider" and not isinstance(provider, ToolProvider):
            self.kind = "list"
        self.lazy = isinstance(provider, LazyToolSource)

    def advertised(self) -> list[tuple[str, Tool]]:
        provider: Any = self.provider
        tools: Iterable[Tool]
        if self.kind == "tool":
            tools = (provider,)
        elif self.kind == "provider":
            tools = provider.tools()
        else:
            tools = provider
        listed = [(tool_id_of(t), t) for t in tools]
        ids: set[str] = set()
        names: set[str] = set()
        for tool_id, tool in listed:
            name = tool.spec.name
            if not name:
                raise LashRuntimeError(INVALID_TOOL_STATE, "a tool name cannot be empty")
            if tool_id in ids or name in names:
                what = f"id {tool_id!r}" if tool_id in ids else f"name {name!r}"
                raise LashRuntimeError(
                    TOOL_SOURCE_CONFLICT, f"source {self.source_id!r} serves the tool {what} twice"
                )
            ids.add(tool_id)
            names.add(name)
        return listed

    def by_id(self, tool_id: str) -> Tool | None:
        found = next((t for i, t in self.advertised() if i == tool_id), None)
        if found is None and self.lazy and isinstance(self.provider, LazyToolSource):
            found = self.provider.resolve_tool_id(tool_id)
        if found is not None and tool_id_of(found) != tool_id:
            raise LashRuntimeError(
                INVALID_TOOL_STATE,
                f"source {self.source_id!r} resolved {tool_id!r} to a tool with id "
                f"{tool_id_of(found)!r}",
            )
        return found

    def by_name(self, name: str) -> Tool | None:
        found = next((t for _, t in self.advertised() if t.spec.name == name), None)
        if found is None and self.lazy and isinstance(self.provider, LazyToolSource):
            found = self.provider.resolve_tool(name)
        return found


@dataclass(frozen=True, slots=True)
class _Entry:
    manifest: ToolManifest
    source_id: str | None  # None: orphaned (no registered source resolves the id)
    member: bool

    @property
    def is_member(self) -> bool:
        return self.member and self.source_id is not None

    def export(self) -> ToolStateEntry:
        return ToolStateEntry(
            manifest=self.manifest, orphaned=self.source_id is None, member=self.member
        )


@dataclass(frozen=True, slots=True)
class _Reconciled:
    entries: dict[str, _Entry]
    tools: dict[str, Tool]
    orphaned: tuple[str, ...]
    changed: bool


@dataclass(frozen=True, slots=True)
class ToolRestoreReport:
    """What :meth:`ToolRegistry.restore_state` did.

    ``dirty`` means the served surface differs from the snapshot (a new tool, a refreshed
    manifest, a rebound or superseded orphan): the caller should persist the new state.
    ``orphaned`` lists persisted ids no source resolves now; surface them to the user.
    """

    generation: int
    orphaned: tuple[str, ...]
    dirty: bool


class ToolRegistry:
    """Live sources plus the generation-fenced tool state of one session."""

    def __init__(self, *, hidden: Iterable[str] = (), policy: Iterable[str] = ()) -> None:
        self._sources: dict[str, _Source] = {}
        self._entries: dict[str, _Entry] = {}
        self._tools: dict[str, Tool] = {}
        self._exported: dict[str, ToolStateEntry] | None = None  # cache of _export(_entries)
        self._generation = 0
        self._hidden = frozenset(hidden)
        self._policy = frozenset(policy)
        self._next_live = 0
        # set once a generation has been handed out (an export or a restore): from then on a
        # restore never moves the generation back nor reuses one for a different surface
        self._pinned = False

    # --- reading --------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Bumps on every change to the served surface."""
        return self._generation

    @property
    def hidden(self) -> frozenset[str]:
        """Names hidden by curation, whatever id serves them (showing lifts them)."""
        return self._hidden

    @property
    def policy(self) -> frozenset[str]:
        """Names the session's access policy denies: never members, never executable."""
        return self._policy

    def source_ids(self) -> tuple[str, ...]:
        """Registered sources, in registration order."""
        return tuple(self._sources)

    def export_state(self) -> ToolState:
        """The source-free snapshot (persist it; restore or apply it later)."""
        self._pinned = True
        return ToolState(generation=self._generation, tools=dict(self._export()))

    def member_tools(self) -> dict[str, Tool]:
        """Callable tools by name, in source registration order: the catalog."""
        return {e.manifest.name: self._tools[i] for i, e in self._entries.items() if e.is_member}

    def member_sources(self) -> dict[str, str]:
        """The source id serving each member, by tool name."""
        return {
            e.manifest.name: e.source_id
            for e in self._entries.values()
            if e.is_member and e.source_id is not None
        }

    def member_specs(self) -> tuple[ToolSpec, ...]:
        """What the model is shown."""
        return tuple(t.spec for t in self.member_tools().values())

    def project_catalog(self) -> list[dict[str, Any]]:
        """Every member as a JSON record (host-owned discovery, e.g. a ``search_tools``)."""
        return project_tool_catalog(e.manifest for e in self._entries.values() if e.is_member)

    # --- sources --------------------------------------------------------------------------

    def upsert_source(self, source_id: str, source: ToolSourceLike) -> int:
        """Register (or replace) a source and reconcile; returns the generation.

        An orphan whose id the source serves rebinds to it. A conflict with another source
        leaves the registry unchanged.
        """
        if not isinstance(source_id, str) or not source_id:
            raise LashRuntimeError(INVALID_TOOL_STATE, "a tool source id must be non-empty")
        sources = dict(self._sources)
        sources[source_id] = _Source(source_id, source)
        done = self._reconcile(self._entries_as_state(), sources, live=True)
        self._sources = sources
        self._adopt(done, self._generation + 1 if done.changed else self._generation)
        return self._generation

    def add_live_source(self, source: ToolSourceLike) -> str:
        """Register a host-added provider under a fresh ``live:{n}`` id (returned)."""
        self._next_live += 1
        source_id = f"live:{self._next_live}"
        while source_id in self._sources:
            self._next_live += 1
            source_id = f"live:{self._next_live}"
        self.upsert_source(source_id, source)
        return source_id

    def remove_source(self, source_id: str) -> int:
        """Unregister a source and drop every tool bound to it; returns the generation."""
        if source_id not in self._sources:
            raise LashRuntimeError(UNKNOWN_TOOL_SOURCE, f"no tool source {source_id!r}")
        del self._sources[source_id]
        entries = {i: e for i, e in self._entries.items() if e.source_id != source_id}
        tools = {i: t for i, t in self._tools.items() if i in entries}
        self._adopt(_Reconciled(entries, tools, (), True), self._generation + 1)
        return self._generation

    def refresh_sources(self) -> int:
        """Re-read every source's advertised tools; bumps only when the surface changed."""
        done = self._reconcile(self._entries_as_state(), self._sources, live=True)
        self._adopt(done, self._generation + 1 if done.changed else self._generation)
        return self._generation

    # --- state changes --------------------------------------------------------------------

    def apply_state(self, next_state: ToolState) -> int:
        """Replace the state with ``next_state``, exported at the current generation.

        The snapshot defines the surface (leaving an id out deletes it for now); each entry
        rebinds to the one source that serves its id. An entry no source serves is rejected
        unless it was exported as an orphan. Returns the new generation (current + 1).
        """
        self._fence(next_state.generation)
        done = self._reconcile(next_state, self._sources, live=False)
        self._adopt(done, self._generation + 1)
        return self._generation

    def restore_state(
        self,
        snapshot: ToolState,
        *,
        hidden: Iterable[str] | None = None,
        policy: Iterable[str] | None = None,
    ) -> ToolRestoreReport:
        """Rebuild from the live sources with ``snapshot``'s per-id membership on top.

        Not fenced: the snapshot's generation is adopted, plus one when the served surface
        differs from it (then ``dirty``). Never fails for a missing source (see orphans).
        ``hidden`` and ``policy``, when given, replace the curation's hidden names and the
        access policy (both are persisted beside the snapshot, not in it).

        Once this registry has handed out a generation, a restore (another writer's commit
        reloaded) never reuses one for a different surface: uncommitted local changes may
        have raised the local generation to the very number another writer committed for
        other content, so a surface that differs from the local one lands above both, and a
        stale export is then refused by :meth:`apply_state`.
        """
        names = self._hidden if hidden is None else frozenset(hidden)
        denied = self._policy if policy is None else frozenset(policy)
        done = self._reconcile(snapshot, self._sources, live=True, hidden=names | denied)
        generation = snapshot.generation + 1 if done.changed else snapshot.generation
        if self._pinned:
            local = self._generation
            same = (
                names == self._hidden
                and denied == self._policy
                and not _differs(done.entries, self._export())
            )
            if same:
                generation = max(generation, local)
            elif generation <= local:
                generation = max(local, snapshot.generation) + 1
        self._pinned = True
        self._hidden = names
        self._policy = denied
        self._adopt(done, generation)
        return ToolRestoreReport(
            generation=self._generation,
            orphaned=done.orphaned,
            dirty=done.changed or generation != snapshot.generation,
        )

    def set_membership(self, names: Iterable[str], present: bool) -> int:
        """Show (``present``) or hide tools by name; returns the generation.

        Known names (bound or orphaned) change their entry's membership. Hiding a name no
        entry has records it in the curation's hidden names, so a tool that appears later under
        it is born a non-member; showing a name also lifts it from there. Showing a name the
        access policy denies is ``tool_hidden_by_policy`` and changes nothing. Bumps once when
        anything changed.
        """
        wanted = set()
        for name in names:
            if not isinstance(name, str) or not name:
                raise LashRuntimeError(
                    INVALID_TOOL_STATE, f"tool names must be non-empty strings, got {name!r}"
                )
            wanted.add(name)
        if present and wanted & self._policy:
            denied = ", ".join(repr(n) for n in sorted(wanted & self._policy))
            raise LashRuntimeError(
                TOOL_HIDDEN_BY_POLICY,
                f"the session's access policy hides {denied}: membership cannot show it",
            )
        state = self._entries_as_state()
        known = set()
        for tool_id, entry in self._entries.items():
            if entry.manifest.name in wanted:
                known.add(entry.manifest.name)
                state = state.with_membership(tool_id, present)
        hidden = self._hidden - wanted if present else self._hidden | (wanted - known)
        done = self._reconcile(state, self._sources, live=True, hidden=hidden | self._policy)
        changed = hidden != self._hidden or _differs(done.entries, self._export())
        self._hidden = hidden
        self._adopt(done, self._generation + 1 if changed else self._generation)
        return self._generation

    def add_hidden(self, names: Iterable[str]) -> int:
        """Extend the access policy (a fork's ``hidden_tools``); returns the generation."""
        policy = self._policy | frozenset(names)
        if policy == self._policy:
            return self._generation
        done = self._reconcile(
            self._entries_as_state(), self._sources, live=True, hidden=self._hidden | policy
        )
        self._policy = policy
        self._adopt(done, self._generation + 1)
        return self._generation

    # --- execution ------------------------------------------------------------------------

    def tool(self, name: str) -> Tool | None:
        """The member tool called ``name`` (the execution gate), or ``None``.

        A name no entry has is looked up lazily in the sources and recorded (a member unless
        hidden); an orphan is retried against the sources first.
        """
        entry = next(((i, e) for i, e in self._entries.items() if e.manifest.name == name), None)
        if entry is not None and entry[1].source_id is None:
            self.refresh_sources()
            entry = next(
                ((i, e) for i, e in self._entries.items() if e.manifest.name == name), None
            )
        if entry is None:
            entry = self._resolve_lazily(lambda s: s.by_name(name))
        if entry is None or not entry[1].is_member:
            return None
        return self._tools.get(entry[0])

    def tool_by_id(self, tool_id: str) -> Tool | None:
        """The member tool with id ``tool_id``, or ``None`` (hidden, non-member, orphaned,
        unknown): hidden tools are never executable, not even by id."""
        entry = self._entries.get(tool_id)
        if entry is not None and entry.source_id is None:
            self.refresh_sources()
            entry = self._entries.get(tool_id)
        if entry is None:
            found = self._resolve_lazily(lambda s: s.by_id(tool_id))
            entry = found[1] if found is not None else None
        if entry is None or not entry.is_member:
            return None
        return self._tools.get(tool_id)

    async def execute_by_id(
        self, tool_id: str, ctx: ToolContext, arguments: Mapping[str, Any]
    ) -> ToolCallOutput:
        """Run a member tool by id; anything else is a ``tool_unavailable`` failure."""
        tool = self.tool_by_id(tool_id)
        if tool is None:
            entry = self._entries.get(tool_id)
            reason = "is not a catalog member"
            if entry is not None and entry.source_id is None:
                reason = "was restored from a persisted session but no source serves it now"
            elif entry is None:
                reason = "is unknown"
            return _unavailable(f"tool id {tool_id!r} {reason}")
        return await tool.invoke(ctx, arguments)

    def granted_tool(self, grant: ToolExecutionGrant) -> Tool | None:
        """The tool a grant routes to: only through the source it names, never inferred from
        the catalog, and without recording anything in the state."""
        if grant.source_id is None or grant.tool_name in self._policy:
            return None
        source = self._sources.get(grant.source_id)
        return None if source is None else source.by_name(grant.tool_name)

    async def execute_granted(
        self, grant: ToolExecutionGrant, ctx: ToolContext, arguments: Mapping[str, Any]
    ) -> ToolCallOutput:
        """Run a granted tool (its binding should already be on ``ctx.execution_binding``)."""
        if grant.source_id is None:
            return _unavailable(
                f"granted tool {grant.tool_name!r} names no tool source to route through"
            )
        tool = self.granted_tool(grant)
        if tool is None:
            return _unavailable(
                f"tool source {grant.source_id!r} does not serve granted tool {grant.tool_name!r}"
            )
        return await tool.invoke(ctx, arguments)

    # --- internals ------------------------------------------------------------------------

    def _fence(self, generation: int) -> None:
        if generation != self._generation:
            raise LashRuntimeError(
                TOOL_STATE_GENERATION_MISMATCH,
                f"tool state generation mismatch: the change was made at generation "
                f"{generation}, the registry is at generation {self._generation}",
            )

    def _export(self) -> dict[str, ToolStateEntry]:
        if self._exported is None:
            self._exported = _export(self._entries)
        return self._exported

    def _entries_as_state(self) -> ToolState:
        return ToolState(generation=self._generation, tools=self._export())

    def _adopt(self, done: _Reconciled, generation: int) -> None:
        if done.entries is not self._entries:
            self._exported = None
        self._entries = done.entries
        self._tools = done.tools
        self._generation = generation

    def _resolve_lazily(self, lookup: Any) -> tuple[str, _Entry] | None:
        for source in self._sources.values():
            tool = lookup(source)
            if tool is None:
                continue
            tool_id = tool_id_of(tool)
            existing = self._entries.get(tool_id)
            if existing is not None:
                return (tool_id, existing) if existing.source_id == source.source_id else None
            name = tool.spec.name
            if any(e.manifest.name == name for e in self._entries.values()):
                return None
            manifest = ToolManifest.of(tool.spec, tool_id)
            entry = _Entry(manifest, source.source_id, name not in self._hidden | self._policy)
            entries = {**self._entries, tool_id: entry}
            done = _Reconciled(entries, {**self._tools, tool_id: tool}, (), True)
            self._adopt(done, self._generation + 1)
            return tool_id, entry
        return None

    def _reconcile(
        self,
        snapshot: ToolState,
        sources: Mapping[str, _Source],
        *,
        live: bool,
        hidden: frozenset[str] | None = None,
    ) -> _Reconciled:
        """The one place live sources meet persisted per-id state.

        ``live``: the sources' advertisements define the surface and the snapshot overlays
        membership (snapshot-only ids resolve lazily or stay as orphans). Otherwise the
        snapshot defines the surface (an explicit ``apply_state``).
        """
        hidden = self._hidden | self._policy if hidden is None else hidden
        if snapshot.tools is not self._exported:  # our own export is valid by construction
            _validate(snapshot)
        stored_tools = snapshot.tools
        entries: dict[str, _Entry] = {}
        tools: dict[str, Tool] = {}
        owners: dict[str, str] = {}  # name -> id
        if live:
            for source in sources.values():
                for tool_id, tool in source.advertised():
                    name = tool.spec.name
                    if tool_id in entries or name in owners:
                        other = entries.get(tool_id) or entries[owners[name]]
                        what = f"id {tool_id!r}" if tool_id in entries else f"name {name!r}"
                        raise LashRuntimeError(
                            TOOL_SOURCE_CONFLICT,
                            f"source {source.source_id!r} serves the tool {what}, already "
                            f"served by source {other.source_id!r}",
                        )
                    manifest = ToolManifest.of(tool.spec, tool_id)
                    stored = stored_tools.get(tool_id)  # membership belongs to the id
                    member = (stored is None or stored.member) and name not in hidden
                    entries[tool_id] = _Entry(manifest, source.source_id, member)
                    tools[tool_id] = tool
                    owners[name] = tool_id
        orphaned: list[str] = []
        for tool_id, stored in stored_tools.items():
            name = stored.manifest.name
            if tool_id in entries:
                continue  # advertised: already bound with this id's membership
            resolved = _resolve_id(tool_id, sources)
            if resolved is not None:
                source_id, tool = resolved
                manifest = ToolManifest.of(tool.spec, tool_id)
                member = stored.member and manifest.name not in hidden
                _insert(entries, owners, tool_id, _Entry(manifest, source_id, member))
                tools[tool_id] = tool
            elif not live and not stored.orphaned:
                raise LashRuntimeError(
                    INVALID_TOOL_STATE, f"no registered tool source serves tool id {tool_id!r}"
                )
            elif live and name in owners:
                continue  # a live tool now owns the name under a new id: this orphan is gone
            else:
                orphaned.append(tool_id)
                member = stored.member and name not in hidden
                _insert(entries, owners, tool_id, _Entry(stored.manifest, None, member))
        changed = _differs(entries, stored_tools)
        return _Reconciled(entries, tools, tuple(orphaned), changed)


def _insert(entries: dict[str, _Entry], owners: dict[str, str], tool_id: str, e: _Entry) -> None:
    name = e.manifest.name
    if name in owners and owners[name] != tool_id:
        raise LashRuntimeError(
            INVALID_TOOL_STATE,
            f"tool ids {owners[name]!r} and {tool_id!r} both claim the name {name!r}",
        )
    entries[tool_id] = e
    owners[name] = tool_id


def _resolve_id(tool_id: str, sources: Mapping[str, _Source]) -> tuple[str, Tool] | None:
    matches = [(sid, t) for sid, s in sources.items() if (t := s.by_id(tool_id)) is not None]
    if len(matches) > 1:
        owners = ", ".join(repr(sid) for sid, _ in matches)
        raise LashRuntimeError(
            TOOL_SOURCE_CONFLICT, f"tool id {tool_id!r} is served by several sources: {owners}"
        )
    return matches[0] if matches else None


def _validate(snapshot: ToolState) -> None:
    names: set[str] = set()
    for tool_id, entry in snapshot.tools.items():
        if not tool_id.strip() or tool_id != entry.manifest.id:
            raise LashRuntimeError(
                INVALID_TOOL_STATE,
                f"tool state key {tool_id!r} does not match manifest id {entry.manifest.id!r}",
            )
        name = entry.manifest.name
        if not name.strip() or name in names:
            raise LashRuntimeError(
                INVALID_TOOL_STATE, f"tool state has an empty or duplicate tool name {name!r}"
            )
        names.add(name)


def _differs(entries: Mapping[str, _Entry], stored: Mapping[str, ToolStateEntry]) -> bool:
    """Whether ``entries`` would export to something other than ``stored``."""
    if entries.keys() != stored.keys():
        return True
    for tool_id, entry in entries.items():
        old = stored[tool_id]
        if (
            old.member != entry.member
            or old.orphaned != (entry.source_id is None)
            or old.manifest != entry.manifest
        ):
            return True
    return False


def _export(entries: Mapping[str, _Entry]) -> dict[str, ToolStateEntry]:
    return {i: entries[i].export() for i in sorted(entries)}


def _unavailable(message: str) -> ToolCallOutput:
    return ToolCallOutput(status="failure", payload=message, error_code="tool_unavailable")


def project_tool_catalog(manifests: Iterable[ToolManifest]) -> list[dict[str, Any]]:
    """Each member manifest as ``{id, name, description, parameters}``: no tiers, because
    membership alone decides what is callable."""
    return [
        {"id": m.id, "name": m.name, "description": m.description, "parameters": m.parameters}
        for m in manifests
    ]
