"""The plugin hook contract: where plugins may act during a turn, and what they may do.

A :class:`Plugin` overrides only the hooks it needs. Hooks return *directives* (abort, enqueue
messages, emit events) rather than mutating the runtime; the runtime checks which directives
each hook point allows. Hook failures map to the stable codes of lash:

========================  ==========================  ======================================
hook                      failure code                 allowed directives
========================  ==========================  ======================================
``open_session``          ``plugin_session_manager``   —
``transform_context``     ``context_prepare_turn``     (returns the prompt messages)
``prepare_turn``          ``plugin_prepare_turn``      abort (commits ``plugin_abort``), enqueue
``before_llm_call``       ``protocol_before_llm_call`` switch agent frame
``checkpoint``            ``plugin_checkpoint``        abort (error with the plugin's code), enqueue
``finalize_turn``         ``plugin_finalize_turn``     enqueue, emit (abort is an error)
``validate_turn_extension`` ``protocol_turn_extension`` accept / reject
``turn_persisted``        logged, never fails a turn   — (may append plugin nodes, see below)
========================  ==========================  ======================================

``turn_persisted`` runs only after a turn's commit is durable (lash's ``TurnPersisted``), as a
background task of the session once the turn has returned: runs are serialised per session,
cut off by ``LashSession.post_persist_timeout_s``, cancelled by ``close()``, and awaited with
``LashSession.wait_maintenance()``. ``ctx.graph`` is a copy of the post-persist graph. With
the :class:`SessionGraphAccess` a session lends each plugin (``bind_session_graph``) a plugin
can append its own nodes to the session graph in a fenced commit of their own, guarded by a
required ancestor: an append whose ancestor left the active path is refused, so background
maintenance never clobbers a newer turn.

Plugins also shape the tool catalog (``tools`` contributes, ``filter_tools`` restricts) and may
own the projection of tool results the model sees (``project_tool_output``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from lash.tools.base import Tool
from lash.types import (
    CheckpointKind,
    LlmRequest,
    Message,
    PluginPayload,
    SessionGraph,
    TokenLedgerEntry,
    ToolCallOutput,
    ToolCallPart,
    ToolResultPart,
    TurnResult,
    to_builtins,
)
from lash.types._base import Record

__all__ = [
    "AbortTurn",
    "AppendPluginNodesResult",
    "AppendedPluginNodes",
    "SessionGraphAccess",
    "StaleBranch",
    "TurnPersistedContext",
    "ReplaceToolArgs",
    "ShortCircuitTool",
    "ToolCallContext",
    "CheckpointContext",
    "CompactionContext",
    "Directive",
    "EmitEvent",
    "EnqueueMessages",
    "FinalizeContext",
    "Plugin",
    "PluginSessionContext",
    "PrepareContext",
    "SwitchAgentFrame",
    "changed_plugin_states",
    "snapshot_plugin_states",
]


class AbortTurn(Record, frozen=True, kw_only=True, tag_field="directive", tag="abort_turn"):
    """Stop the turn (``code`` is the plugin's own stable code)."""

    code: str
    message: str = ""


class EnqueueMessages(
    Record, frozen=True, kw_only=True, tag_field="directive", tag="enqueue_messages"
):
    """Add messages (user or system) to the prompt or the turn."""

    messages: tuple[Message, ...]


class EmitEvent(Record, frozen=True, kw_only=True, tag_field="directive", tag="emit_event"):
    """Publish a plugin runtime event to the live stream."""

    event: Any


class SwitchAgentFrame(Record, frozen=True, kw_only=True):
    """End the turn as an agent-frame switch into ``frame_id`` with ``task``."""

    frame_id: str
    task: str
    initial_messages: tuple[Message, ...] = ()


Directive = AbortTurn | EnqueueMessages | EmitEvent


class ReplaceToolArgs(Record, frozen=True, kw_only=True):
    """``before_tool_call``: run the tool with these arguments instead."""

    arguments: dict[str, Any]


class ShortCircuitTool(Record, frozen=True, kw_only=True):
    """``before_tool_call``: do not run the tool; this is its result."""

    output: ToolCallOutput


class ToolCallContext(Record, frozen=True, kw_only=True):
    """Given to the per-call tool hooks."""

    session_id: str
    turn_id: str
    call_id: str
    tool_name: str


class PluginSessionContext(Record, frozen=True, kw_only=True):
    """Given to :meth:`Plugin.open_session`.

    ``core`` is the :class:`~lash.runtime.core.LashCore` opening the session, so a plugin can
    open child sessions on the same wiring (subagents); ``None`` outside a core.
    """

    session_id: str
    state: dict[str, Any]
    core: Any = None


class PrepareContext(Record, frozen=True, kw_only=True):
    """Given to prompt-shaping hooks before the first model call of a turn."""

    session_id: str
    turn_id: str
    turn_index: int
    agent_frame_id: str
    context_window: int
    completions: Any = None
    """The turn's :class:`~lash.runtime.effect_host.TurnCompletions`: a model call a hook makes
    through it is a journaled ``direct_completion`` effect (``None`` outside a turn)."""


class CheckpointContext(Record, frozen=True, kw_only=True):
    """Given to :meth:`Plugin.checkpoint`."""

    session_id: str
    turn_id: str
    kind: CheckpointKind
    turn_messages: tuple[Message, ...]


class FinalizeContext(Record, frozen=True, kw_only=True):
    """Given to :meth:`Plugin.finalize_turn` (the result is not committed yet)."""

    session_id: str
    turn_id: str
    result: TurnResult


class AppendedPluginNodes(Record, frozen=True, kw_only=True, tag_field="status", tag="appended"):
    """The plugin nodes were committed; ``leaf_node_id`` is the new leaf."""

    node_ids: tuple[str, ...]
    leaf_node_id: str


class StaleBranch(Record, frozen=True, kw_only=True, tag_field="status", tag="stale_branch"):
    """Nothing was written: the required ancestor is no longer on the active path."""

    current_leaf_node_id: str | None = None


AppendPluginNodesResult = AppendedPluginNodes | StaleBranch


class SessionGraphAccess(Protocol):
    """What a session lends its plugins: the committed graph and fenced plugin-node appends."""

    @property
    def session_id(self) -> str:
        """The session's id."""
        ...

    def graph(self) -> SessionGraph:
        """The session's committed working graph (read it, never mutate it)."""
        ...

    async def append_plugin_nodes(
        self,
        nodes: Sequence[PluginPayload],
        *,
        requires_ancestor_node_id: str | None,
        usage: Sequence[TokenLedgerEntry] = (),
    ) -> AppendPluginNodesResult:
        """Commit ``nodes`` after the current leaf, only while ``requires_ancestor_node_id`` is
        on the active path; ``usage`` (the model calls that produced them) joins the commit."""
        ...


class TurnPersistedContext:
    """Given to :meth:`Plugin.turn_persisted` once the turn's commit is durable.

    ``leaf_node_id`` is the leaf the commit left (the post-persist leaf): appends made from
    this hook name it as their required ancestor.
    """

    def __init__(
        self,
        *,
        session_id: str,
        turn_id: str,
        result: TurnResult,
        graph: SessionGraph,
        leaf_node_id: str | None,
        head_revision: int,
        session_graph: SessionGraphAccess,
    ) -> None:
        self.session_id = session_id
        self.turn_id = turn_id
        self.result = result
        self.graph = graph
        self.leaf_node_id = leaf_node_id
        self.head_revision = head_revision
        self.session_graph = session_graph


class CompactionContext:
    """Given to :meth:`Plugin.compact_context`."""

    def __init__(self, session_id: str, graph: SessionGraph, messages: Sequence[Message]) -> None:
        self.session_id = session_id
        self.graph = graph
        self.messages = tuple(messages)


class Plugin:
    """Base class: every hook is a no-op. Override what you need.

    ``state`` is this plugin's per-session, JSON-serialisable state; the runtime persists it in
    the session checkpoint after every turn and hands it back on open.
    """

    id: str = "plugin"

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    async def open_session(self, ctx: PluginSessionContext) -> None:
        """Called when a session opens, with the persisted plugin state."""
        self.state = dict(ctx.state)

    def snapshot_state(self) -> Any:
        """A detached JSON copy of ``state``: what a turn commits, and what a tool attempt
        records when it changed it (so a durable replay of the attempt can put it back)."""
        return to_builtins(self.state)

    def restore_state(self, snapshot: Any) -> None:
        """Put back a :meth:`snapshot_state` copy (a replayed tool attempt's change)."""
        self.state = dict(snapshot) if isinstance(snapshot, dict) else {}

    async def transform_context(
        self, ctx: PrepareContext, messages: list[Message]
    ) -> list[Message]:
        """Shape the prompt view (never durable history)."""
        return messages

    async def prepare_turn(self, ctx: PrepareContext) -> Sequence[Directive]:
        """Before the first model call."""
        return ()

    async def before_llm_call(
        self, ctx: PrepareContext, request: LlmRequest
    ) -> SwitchAgentFrame | None:
        """Before every model call."""
        return None

    async def checkpoint(self, ctx: CheckpointContext) -> Sequence[Directive]:
        """At each checkpoint: messages to commit into the turn, or an abort."""
        return ()

    async def finalize_turn(self, ctx: FinalizeContext) -> Sequence[Directive]:
        """After the turn is assembled, before it is committed."""
        return ()

    def bind_session_graph(self, access: SessionGraphAccess) -> None:
        """Called once when the session handle is built: its graph and plugin-node appends."""
        return None

    async def turn_persisted(self, ctx: TurnPersistedContext) -> None:
        """After the turn's commit is durable, in the background once the turn returned (best
        effort: a failure or timeout is logged, the committed turn stands)."""
        return None

    def validate_turn_extension(self, extension: Any) -> bool:
        """Accept or reject a live per-turn protocol extension."""
        return True

    async def before_tool_call(
        self, ctx: ToolCallContext, call: ToolCallPart
    ) -> ReplaceToolArgs | ShortCircuitTool | None:
        """Before a tool runs: replace its arguments or answer for it (errors become the tool
        failure ``before_tool_call_failed``)."""
        return None

    async def after_tool_call(
        self, ctx: ToolCallContext, call: ToolCallPart, output: ToolCallOutput
    ) -> ToolCallOutput | None:
        """After a tool ran: return a replacement result, or ``None`` to keep it (errors become
        the tool failure ``after_tool_call_failed``)."""
        return None

    def tools(self) -> Sequence[Tool]:
        """Tools this plugin contributes to the session's catalog (membership = availability)."""
        return ()

    def filter_tools(self, tools: dict[str, Tool]) -> dict[str, Tool]:
        """Restrict the effective catalog for the next turn (e.g. plan mode)."""
        return tools

    def project_tool_output(
        self, call: ToolCallPart, output: ToolCallOutput
    ) -> ToolResultPart | None:
        """What the model sees of a tool result; the first plugin returning a part wins.

        ``None`` leaves it to the default budgeted projection. The full output stays durable.
        """
        return None

    async def compact_context(self, ctx: CompactionContext) -> Sequence[Message]:
        """Seed messages for a compaction frame (empty: this plugin does not compact)."""
        return ()


def snapshot_plugin_states(plugins: Sequence[Plugin]) -> dict[str, Any]:
    """Every plugin's :meth:`Plugin.snapshot_state`, by plugin id."""
    return {plugin.id: plugin.snapshot_state() for plugin in plugins}


def changed_plugin_states(plugins: Sequence[Plugin], before: dict[str, Any]) -> dict[str, Any]:
    """The snapshots of the plugins whose state differs from ``before`` (taken earlier)."""
    changed: dict[str, Any] = {}
    for plugin in plugins:
        now = plugin.snapshot_state()
        if plugin.id not in before or before[plugin.id] != now:
            changed[plugin.id] = now
    return changed
