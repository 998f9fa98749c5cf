"""Subagents: ``spawn_agent`` runs a task in a child session and returns its final answer.

The child is an ordinary session on the same core, ``{parent}:child:{call_id}`` (stable
across a replayed attempt), with its own initial agent frame, so its prompt holds only its
task. What it may do is chosen by *capability* (:mod:`lash.plugins.capabilities`): an object
that builds the complete spawn request — tool access, extra hidden tools, the usage source,
the prompt. Two are built in:

* ``explore`` — read-only tools only (``read_file``, ``glob``, ``grep`` by default), and so
  it cannot spawn further agents;
* ``peer`` — the same tools as its parent, including ``spawn_agent``.

Hosts pass their own :class:`~lash.plugins.capabilities.Capability` objects in
``capabilities`` (a name equal to a built-in's replaces it). Nesting is capped at depth 5
(:data:`MAX_SUBAGENT_DEPTH`): a session at the maximum depth does not see ``spawn_agent`` at
all. The child's usage (and its own children's) comes back on the tool output under the
request's usage source (``subagent`` for the built-ins), so the parent turn reports it in
``children_usage`` and the parent's commit adds it to the session ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from lash.plugins._common import CHILD_MARK, READ_ONLY_TOOLS
from lash.plugins.capabilities import (
    MAX_SUBAGENT_DEPTH,
    SPAWN_TOOL,
    Capability,
    SpawnContext,
    SpawnRequest,
    StaticCapability,
    child_session_id,
    default_capabilities,
)
from lash.runtime.plugins import Plugin, PluginSessionContext, PrepareContext
from lash.tools import FunctionTool, ToolError
from lash.tools.base import Tool, ToolContext
from lash.types import Message, TextPart, TokenLedgerEntry, ToolCallOutput, TurnResult

__all__ = [
    "CAPABILITIES",
    "MAX_SUBAGENT_DEPTH",
    "Capability",
    "SpawnContext",
    "SpawnRequest",
    "StaticCapability",
    "Subagents",
    "child_session_id",
]

CAPABILITIES = ("explore", "peer")
"""The built-in capability names."""

# Child specs handed from the spawning tool to the child's plugin, per core (a core is the
# unit that opens sessions; weak keys so a closed core takes its entries with it).
_PENDING: weakref.WeakKeyDictionary[Any, dict[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def _spawn_schema(capabilities: Sequence[Capability]) -> dict[str, Any]:
    """The strict spawn schema offering ``capabilities`` (optional field when only one)."""
    names = [c.name for c in capabilities]
    described = " ".join(f"{c.name}: {c.description.rstrip('.')}." for c in capabilities)
    return {
        "type": "object",
        "properties": {
            "task": {
                "type": "string",
                "minLength": 1,
                "description": "A complete, self-contained task: the subagent sees nothing else.",
            },
            "capability": {"type": "string", "enum": names, "description": described},
        },
        "required": ["task", "capability"] if len(names) > 1 else ["task"],
        "additionalProperties": False,
    }


def _registry(
    capabilities: Iterable[str | Capability], read_only_tools: Iterable[str]
) -> dict[str, Capability]:
    """Capabilities by name, in order; names pick built-ins, objects add or replace."""
    builtins = {c.name: c for c in default_capabilities(read_only_tools)}
    out: dict[str, Capability] = {}
    for item in capabilities:
        if isinstance(item, str):
            if item not in builtins:
                raise ValueError(
                    f"unknown capability {item!r}: name one of {CAPABILITIES} or pass a "
                    "Capability object"
                )
            out[item] = builtins[item]
        elif isinstance(item, Capability):
            out[item.name] = item
        else:
            raise ValueError(f"not a capability: {item!r}")
    if not out:
        raise ValueError("subagents need at least one capability")
    return out


class Subagents(Plugin):
    """The ``subagents`` plugin: ``spawn_agent`` in parents, the capability gate in children.

    ``capabilities`` lists built-in names and/or :class:`Capability` objects (default:
    ``explore`` and ``peer``); with exactly one, the ``capability`` argument is optional and
    defaults to it. ``hidden_tools`` are hidden in every child. ``max_turns`` caps each
    child's model iterations (default: the core's limit).
    """

    id = "subagents"

    def __init__(
        self,
        *,
        max_depth: int = MAX_SUBAGENT_DEPTH,
        read_only_tools: Iterable[str] = READ_ONLY_TOOLS,
        max_turns: int | None = None,
        capabilities: Iterable[str | Capability] = CAPABILITIES,
        hidden_tools: Iterable[str] = (),
    ) -> None:
        super().__init__()
        if not 0 <= max_depth <= MAX_SUBAGENT_DEPTH:
            raise ValueError(f"max_depth must be between 0 and {MAX_SUBAGENT_DEPTH}")
        self.read_only_tools = frozenset(read_only_tools)
        self.registry = _registry(capabilities, self.read_only_tools)
        self.capabilities = tuple(self.registry)
        self.max_depth = max_depth
        self.max_turns = max_turns
        self.hidden_tools = tuple(sorted(set(hidden_tools)))
        self._core: Any = None
        self._spawn = FunctionTool.from_schema(
            SPAWN_TOOL,
            "Delegate a task to a subagent that works in its own context and returns its "
            "final answer.",
            _spawn_schema(list(self.registry.values())),
            self._run_spawn,
            threaded=False,
        )

    async def open_session(self, ctx: PluginSessionContext) -> None:
        self._core = ctx.core
        state = dict(ctx.state)
        if not state:
            pending = _PENDING.get(ctx.core, {}) if ctx.core is not None else {}
            state = pending.pop(ctx.session_id, {}) or self._spec_from_id(ctx.session_id)
        self.state = state

    @property
    def depth(self) -> int:
        """0 for a root session, n for a child n levels down."""
        return int(self.state.get("depth", 0))

    @property
    def capability(self) -> str | None:
        """The child's capability (``None`` in a root session)."""
        value = self.state.get("capability")
        return str(value) if value is not None else None

    @property
    def allowed_tools(self) -> frozenset[str] | None:
        """The child's tool allow-list (``None``: no list, the parent's catalog)."""
        tools = self.state.get("tools")
        if tools is None and "tools" not in self.state and self.capability == "explore":
            return self.read_only_tools  # state written before capabilities were objects
        return None if tools is None else frozenset(tools)

    @property
    def hidden(self) -> frozenset[str]:
        """Tools hidden in this session."""
        return frozenset(self.state.get("hidden_tools", ()))

    @property
    def usage_source(self) -> str:
        """The ledger source this session's usage is booked under in its parent."""
        return str(self.state.get("usage_source", "subagent"))

    def tools(self) -> Sequence[Tool]:
        if self.depth >= self.max_depth:
            return ()
        return (self._spawn,)

    def filter_tools(self, tools: dict[str, Tool]) -> dict[str, Tool]:
        allowed, hidden = self.allowed_tools, self.hidden
        if allowed is None and not hidden:
            return tools
        return {
            name: t
            for name, t in tools.items()
            if (allowed is None or name in allowed) and name not in hidden
        }

    async def transform_context(
        self, ctx: PrepareContext, messages: list[Message]
    ) -> list[Message]:
        if self.depth == 0:
            return messages
        note = (
            f"You are a subagent (capability: {self.capability}, depth {self.depth}/"
            f"{self.max_depth}). Work on the task you were given and end with your final "
            "answer as plain text; it is returned to the agent that spawned you."
        )
        return [
            Message(id=f"{ctx.turn_id}:subagent", role="system", parts=(TextPart(text=note),)),
            *messages,
        ]

    def spawn_request(
        self, parent_session_id: str, call_id: str, args: dict[str, Any]
    ) -> SpawnRequest:
        """The checked request for one ``spawn_agent`` call from this session.

        The capability builds it; the session id, depth and depth limit are then this
        plugin's, and ``spawn_agent`` is hidden in a child at the maximum depth.
        """
        name = str(args.get("capability") or self.capabilities[0])
        capability = self.registry.get(name)
        if capability is None:
            raise ToolError(
                f"unknown capability {name!r}; expected one of {list(self.capabilities)}",
                code="unknown_capability",
            )
        depth = self.depth + 1
        if depth > self.max_depth:
            raise ToolError(
                f"subagents may nest at most {self.max_depth} deep", code="subagent_depth_exceeded"
            )
        ctx = SpawnContext(
            parent_session_id=parent_session_id,
            call_id=call_id,
            task=str(args["task"]),
            depth=depth,
            max_depth=self.max_depth,
            parent_capability=self.capability,
            base_hidden_tools=self.hidden_tools,
            max_turns=self.max_turns,
        )
        try:
            request = capability.build_spawn_request(ctx)
        except ToolError:
            raise
        except Exception as err:
            raise ToolError(
                f"capability {name!r} could not build the spawn request: {err}",
                code="invalid_spawn_request",
            ) from err
        if not isinstance(request, SpawnRequest):
            raise ToolError(
                f"capability {name!r} returned {type(request).__name__}, not a SpawnRequest",
                code="invalid_spawn_request",
            )
        hidden = set(request.hidden_tools)
        if depth >= self.max_depth:
            hidden.add(SPAWN_TOOL)
        return SpawnRequest(
            capability=name,
            parent_session_id=parent_session_id,
            session_id=ctx.child_session_id,
            depth=depth,
            max_depth=self.max_depth,
            prompt=request.prompt,
            tools=request.tools,
            hidden_tools=tuple(sorted(hidden)),
            usage_source=request.usage_source or "subagent",
            max_turns=request.max_turns,
        )

    async def _run_spawn(self, ctx: ToolContext, args: dict[str, Any]) -> ToolCallOutput:
        core = self._core
        if core is None:
            raise ToolError("spawn_agent needs a session opened by a LashCore", code="unavailable")
        request = self.spawn_request(ctx.session_id, ctx.call_id, args)
        child_id = request.session_id
        _PENDING.setdefault(core, {})[child_id] = _child_state(request)
        try:
            child = await core.session(child_id).open()
        finally:
            _PENDING.get(core, {}).pop(child_id, None)
        try:
            result = await _run_child(child, request.prompt, ctx, request.max_turns)
        finally:
            with contextlib.suppress(Exception):
                await child.close()
        usage = _child_usage(result, core.config.model.id, request.usage_source)
        if not result.is_success():
            message = result.issues[0].message if result.issues else result.outcome.reason
            return ToolCallOutput(
                status="failure",
                payload={
                    "message": f"subagent stopped ({result.outcome.reason}): {message}",
                    "session_id": child_id,
                },
                error_code="subagent_failed",
                usage=usage,
            )
        answer = result.assistant_text or "(the subagent returned no answer)"
        return ToolCallOutput(status="success", payload=answer, usage=usage)

    def _spec_from_id(self, session_id: str) -> dict[str, Any]:
        """A child reopened without its spec (e.g. in another process before its first
        commit) is rebuilt from its id, with the least privilege."""
        depth = session_id.count(CHILD_MARK)
        if depth == 0:
            return {}
        return {
            "depth": depth,
            "capability": "explore",
            "tools": sorted(self.read_only_tools),
            "hidden_tools": [SPAWN_TOOL],
        }


def _child_state(request: SpawnRequest) -> dict[str, Any]:
    """The child's plugin state: its place in the tree and its tool access."""
    return {
        "depth": request.depth,
        "max_depth": request.max_depth,
        "capability": request.capability,
        "parent_session_id": request.parent_session_id,
        "tools": None if request.tools is None else list(request.tools),
        "hidden_tools": list(request.hidden_tools),
        "usage_source": request.usage_source,
    }


async def _run_child(child: Any, task: str, ctx: ToolContext, max_turns: int | None) -> TurnResult:
    """Run one child turn; the parent's cancellation cancels it (it still commits)."""
    builder = child.turn(task).turn_id(f"subagent:{ctx.call_id}")
    if max_turns is not None:
        builder = builder.max_turns(max_turns)
    handle = builder.start()
    cancelled = asyncio.ensure_future(ctx.cancelled.wait())
    try:
        await asyncio.wait({handle.task, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        if not handle.done():
            await handle.cancel("the parent turn was cancelled")
        result: TurnResult = await handle.result()
        return result
    except asyncio.CancelledError:
        await handle.cancel("the parent turn was cancelled")
        raise
    finally:
        cancelled.cancel()


def _child_usage(result: TurnResult, model: str, source: str) -> tuple[TokenLedgerEntry, ...]:
    own = (
        (TokenLedgerEntry(source=source, model=model, usage=result.usage),)
        if not result.usage.is_zero()
        else ()
    )
    return own + tuple(result.children_usage)
