"""Subagents: ``spawn_agent`` runs a task in a child session and returns its final answer.

The child is an ordinary session on the same core, ``{parent}:child:{call_id}`` (stable
across a replayed attempt), with its own initial agent frame, so its prompt holds only the
task. What it may do is chosen by *capability*:

* ``explore`` — read-only tools only (``read_file``, ``glob``, ``grep`` by default), and it
  cannot spawn further agents;
* ``peer`` — the same tools as its parent, including ``spawn_agent``.

Nesting is capped at depth 5 (:data:`MAX_SUBAGENT_DEPTH`): a session at the maximum depth
does not see ``spawn_agent`` at all. The child's usage (and its own children's) comes back on
the tool output with source ``subagent``, so the parent turn reports it in
``children_usage`` and the parent's commit adds it to the session ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from lash.plugins._common import CHILD_MARK, READ_ONLY_TOOLS
from lash.runtime.plugins import Plugin, PluginSessionContext, PrepareContext
from lash.tools import FunctionTool, ToolError
from lash.tools.base import Tool, ToolContext
from lash.types import Message, TextPart, TokenLedgerEntry, ToolCallOutput, TurnResult

__all__ = ["CAPABILITIES", "MAX_SUBAGENT_DEPTH", "Subagents", "child_session_id"]

MAX_SUBAGENT_DEPTH = 5
CAPABILITIES = ("explore", "peer")

# Child specs handed from the spawning tool to the child's plugin, per core (a core is the
# unit that opens sessions; weak keys so a closed core takes its entries with it).
_PENDING: weakref.WeakKeyDictionary[Any, dict[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def child_session_id(parent_session_id: str, call_id: str) -> str:
    """The child session id for one ``spawn_agent`` call."""
    return f"{parent_session_id}{CHILD_MARK}{call_id}"


_SPAWN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task": {
            "type": "string",
            "minLength": 1,
            "description": "A complete, self-contained task: the subagent sees nothing else.",
        },
        "capability": {
            "type": "string",
            "enum": list(CAPABILITIES),
            "description": "explore: read-only investigation. peer: same tools as you.",
        },
    },
    "required": ["task", "capability"],
    "additionalProperties": False,
}


def _spawn_schema(capabilities: tuple[str, ...]) -> dict[str, Any]:
    """The spawn schema offering ``capabilities`` (the field is optional when only one)."""
    properties = dict(_SPAWN_SCHEMA["properties"])
    properties["capability"] = {**properties["capability"], "enum": list(capabilities)}
    required = ["task", "capability"] if len(capabilities) > 1 else ["task"]
    return {**_SPAWN_SCHEMA, "properties": properties, "required": required}


class Subagents(Plugin):
    """The ``subagents`` plugin: ``spawn_agent`` in parents, the capability gate in children.

    ``max_turns`` caps each child's model iterations (default: the core's limit).
    ``capabilities`` narrows what a spawn may ask for; with exactly one, the ``capability``
    argument is optional and defaults to it.
    """

    id = "subagents"

    def __init__(
        self,
        *,
        max_depth: int = MAX_SUBAGENT_DEPTH,
        read_only_tools: Iterable[str] = READ_ONLY_TOOLS,
        max_turns: int | None = None,
        capabilities: Iterable[str] = CAPABILITIES,
    ) -> None:
        super().__init__()
        if not 0 <= max_depth <= MAX_SUBAGENT_DEPTH:
            raise ValueError(f"max_depth must be between 0 and {MAX_SUBAGENT_DEPTH}")
        offered = tuple(dict.fromkeys(capabilities))
        if not offered or any(c not in CAPABILITIES for c in offered):
            raise ValueError(f"capabilities must be a non-empty subset of {CAPABILITIES}")
        self.capabilities = offered
        self.max_depth = max_depth
        self.read_only_tools = frozenset(read_only_tools)
        self.max_turns = max_turns
        self._core: Any = None
        self._spawn = FunctionTool.from_schema(
            "spawn_agent",
            "Delegate a task to a subagent that works in its own context and returns its "
            "final answer. Use explore for read-only investigation, peer for work that needs "
            "your tools.",
            _spawn_schema(offered),
            self._run_spawn,
            threaded=False,
        )

    async def open_session(self, ctx: PluginSessionContext) -> None:
        self._core = ctx.core
        state = dict(ctx.state)
        if not state:
            pending = _PENDING.get(ctx.core, {}) if ctx.core is not None else {}
            state = pending.pop(ctx.session_id, {}) or _spec_from_id(ctx.session_id)
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

    def tools(self) -> Sequence[Tool]:
        if self.depth >= self.max_depth or self.capability == "explore":
            return ()
        return (self._spawn,)

    def filter_tools(self, tools: dict[str, Tool]) -> dict[str, Tool]:
        if self.capability != "explore":
            return tools
        return {name: t for name, t in tools.items() if name in self.read_only_tools}

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

    async def _run_spawn(self, ctx: ToolContext, args: dict[str, Any]) -> ToolCallOutput:
        core = self._core
        if core is None:
            raise ToolError("spawn_agent needs a session opened by a LashCore", code="unavailable")
        capability = str(args.get("capability") or self.capabilities[0])
        depth = self.depth + 1
        if depth > self.max_depth or self.capability == "explore":
            raise ToolError(
                f"subagents may nest at most {self.max_depth} deep", code="subagent_depth_exceeded"
            )
        child_id = child_session_id(ctx.session_id, ctx.call_id)
        _PENDING.setdefault(core, {})[child_id] = {
            "depth": depth,
            "capability": capability,
            "parent_session_id": ctx.session_id,
        }
        try:
            child = await core.session(child_id).open()
        finally:
            _PENDING.get(core, {}).pop(child_id, None)
        try:
            result = await _run_child(child, str(args["task"]), ctx, self.max_turns)
        finally:
            with contextlib.suppress(Exception):
                await child.close()
        usage = _child_usage(result, core.config.model.id)
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


def _child_usage(result: TurnResult, model: str) -> tuple[TokenLedgerEntry, ...]:
    own = (
        (TokenLedgerEntry(source="subagent", model=model, usage=result.usage),)
        if not result.usage.is_zero()
        else ()
    )
    return own + tuple(result.children_usage)


def _spec_from_id(session_id: str) -> dict[str, Any]:
    """A child reopened without its spec (e.g. in another process before its first commit)
    is rebuilt from its id, with the least privilege."""
    depth = session_id.count(CHILD_MARK)
    if depth == 0:
        return {}
    return {"depth": depth, "capability": "explore"}
