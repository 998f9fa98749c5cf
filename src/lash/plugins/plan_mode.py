"""Plan mode: explore and plan with read-only tools, keep a checklist, then exit to implement.

While plan mode is on, :meth:`PlanMode.filter_tools` restricts the session's catalog to
read-only tools plus the plan tools, so a model that is asked to plan cannot edit files or
run commands (a call to a hidden tool is ``tool_unavailable``). The checklist lives in the
plugin's state, which the runtime commits with every turn, so it survives a restart.

The catalog of a turn is fixed when the turn starts: after ``plan_exit`` the implementation
tools appear from the next turn on. Subagent sessions are never in plan mode and get no plan
tools or planning guidance: planning belongs to the root session.

Every accepted ``update_plan`` is published as a plugin runtime event named
``update_plan.snapshot`` (payload: ``explanation``, ``plan``, ``generation``) at the next
checkpoint or at the end of the turn, so a UI can show the checklist as it changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from lash.plugins._common import READ_ONLY_TOOLS, is_subagent_session
from lash.runtime.plugins import (
    CheckpointContext,
    Directive,
    EmitEvent,
    FinalizeContext,
    Plugin,
    PluginSessionContext,
    PrepareContext,
)
from lash.tools import FunctionTool, ToolError
from lash.tools.base import Tool, ToolContext
from lash.types import Message, TextPart

__all__ = [
    "PLANNING_GUIDANCE",
    "PLAN_SNAPSHOT_EVENT",
    "PLAN_STATUSES",
    "READ_ONLY_TOOLS",
    "PlanMode",
    "plan_snapshot_event",
]

PLAN_STATUSES = ("pending", "in_progress", "completed")

_PLAN_TOOLS = frozenset({"update_plan", "plan_exit"})

PLAN_SNAPSHOT_EVENT = "update_plan.snapshot"

PLANNING_GUIDANCE = (
    "Planning: use update_plan for substantial multi-step work and skip it for trivial asks. "
    "Keep steps short with exactly one in_progress while you work, mark steps completed as "
    "you finish them, give an explanation when the plan changes, and mark every step "
    "completed when the task is done. After an update, say briefly what changed and what "
    "comes next instead of repeating the checklist."
)

Approve = Callable[[list[dict[str, str]]], Awaitable[bool]]
"""Asked on ``plan_exit`` with the current plan: True leaves plan mode."""

_UPDATE_PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "explanation": {"type": "string", "description": "Why the plan changed (optional)."},
        "plan": {
            "type": "array",
            "minItems": 1,
            "description": "The whole plan, replacing the previous one.",
            "items": {
                "type": "object",
                "properties": {
                    "step": {"type": "string", "minLength": 1},
                    "status": {"type": "string", "enum": list(PLAN_STATUSES)},
                },
                "required": ["step", "status"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["plan"],
    "additionalProperties": False,
}


class PlanMode(Plugin):
    """The ``plan_mode`` plugin (``enabled`` is the state of a new session)."""

    id = "plan_mode"

    def __init__(
        self,
        *,
        enabled: bool = True,
        allowed_tools: Iterable[str] = READ_ONLY_TOOLS,
        approve: Approve | None = None,
    ) -> None:
        super().__init__()
        self._start_enabled = enabled
        self.allowed_tools = frozenset(allowed_tools) | _PLAN_TOOLS
        self._approve = approve
        self._inert = False
        self._published = 0
        self._update_plan = FunctionTool.from_schema(
            "update_plan",
            "Replace the plan checklist. Each step is pending, in_progress or completed; at "
            "most one step may be in_progress.",
            _UPDATE_PLAN_SCHEMA,
            self._run_update_plan,
            threaded=False,
        )
        self._plan_exit = FunctionTool.from_schema(
            "plan_exit",
            "Leave plan mode once the plan is ready; implementation tools become available "
            "from the next turn.",
            {"type": "object", "properties": {}, "additionalProperties": False},
            self._run_plan_exit,
            threaded=False,
        )

    # --- state ----------------------------------------------------------------------------

    async def open_session(self, ctx: PluginSessionContext) -> None:
        self._inert = is_subagent_session(ctx.session_id)
        self.state = dict(ctx.state) or {
            "enabled": self._start_enabled and not self._inert,
            "generation": 0,
            "plan": [],
        }
        self._published = self.generation

    @property
    def enabled(self) -> bool:
        """Whether the session is planning."""
        return bool(self.state.get("enabled"))

    @property
    def plan(self) -> list[dict[str, str]]:
        """The current checklist (``[{"step", "status"}]``)."""
        return [dict(item) for item in self.state.get("plan", [])]

    @property
    def generation(self) -> int:
        """Bumped by every accepted plan update."""
        return int(self.state.get("generation", 0))

    def enable(self) -> None:
        """Enter plan mode (takes effect at the next turn; committed with it)."""
        self.state = {**self.state, "enabled": True}

    def disable(self) -> None:
        """Leave plan mode (takes effect at the next turn; committed with it)."""
        self.state = {**self.state, "enabled": False}

    # --- catalog --------------------------------------------------------------------------

    def tools(self) -> Sequence[Tool]:
        if self._inert:
            return ()
        return (self._update_plan, self._plan_exit) if self.enabled else (self._update_plan,)

    def filter_tools(self, tools: dict[str, Tool]) -> dict[str, Tool]:
        if not self.enabled:
            return tools
        return {name: t for name, t in tools.items() if name in self.allowed_tools}

    async def transform_context(
        self, ctx: PrepareContext, messages: list[Message]
    ) -> list[Message]:
        if self._inert:
            return messages
        notes: list[str] = [PLANNING_GUIDANCE]
        if self.enabled:
            notes.append(
                "Plan mode is on: explore with the read-only tools, keep the checklist "
                "current with update_plan, and call plan_exit when the plan is ready. Do not "
                "change files or run commands yet."
            )
        if self.plan:
            notes.append("Current plan:\n" + render_plan(self.plan))
        note = Message(
            id=f"{ctx.turn_id}:plan-mode", role="system", parts=(TextPart(text="\n\n".join(notes)),)
        )
        return [*messages, note]

    async def checkpoint(self, ctx: CheckpointContext) -> Sequence[Directive]:
        return self._publish()

    async def finalize_turn(self, ctx: FinalizeContext) -> Sequence[Directive]:
        return self._publish()

    def _publish(self) -> list[Directive]:
        """The snapshot event for plan updates not yet published (at most one per call)."""
        if self._inert or self.generation <= self._published:
            return []
        self._published = self.generation
        snapshot = {
            "explanation": self.state.get("explanation"),
            "plan": self.plan,
            "generation": self.generation,
        }
        return [EmitEvent(event=plan_snapshot_event(snapshot))]

    # --- tools ----------------------------------------------------------------------------

    async def _run_update_plan(self, ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        plan = [{"step": str(i["step"]).strip(), "status": str(i["status"])} for i in args["plan"]]
        explanation = str(args.get("explanation") or "").strip() or None
        if any(not item["step"] for item in plan):
            raise ToolError("every plan step needs text", code="invalid_plan")
        if sum(item["status"] == "in_progress" for item in plan) > 1:
            raise ToolError("at most one step may be in_progress", code="invalid_plan")
        generation = self.generation + 1
        self.state = {
            **self.state,
            "plan": plan,
            "generation": generation,
            "explanation": explanation,
        }
        return {"generation": generation, "plan": plan}

    async def _run_plan_exit(self, ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        if not self.enabled:
            raise ToolError("plan mode is not active", code="plan_mode_inactive")
        if self._approve is not None and not await self._approve(self.plan):
            return {"approved": False, "message": "Keep planning: the plan was not approved."}
        self.disable()
        return {
            "approved": True,
            "message": "Plan mode is off; implementation tools are available from the next turn.",
            "plan": self.plan,
        }


def render_plan(plan: Sequence[dict[str, str]]) -> str:
    """The checklist as Markdown (``[x]`` done, ``[>]`` in progress, ``[ ]`` pending)."""
    marks = {"completed": "[x]", "in_progress": "[>]", "pending": "[ ]"}
    return "\n".join(f"- {marks.get(i['status'], '[ ]')} {i['step']}" for i in plan)


def plan_snapshot_event(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The ``update_plan.snapshot`` runtime event for ``snapshot`` (``explanation`` left out
    when empty, as in lash)."""
    payload: dict[str, Any] = {
        "plan": [{"step": i["step"], "status": i["status"]} for i in snapshot.get("plan", [])],
        "generation": int(snapshot.get("generation", 0)),
    }
    if snapshot.get("explanation"):
        payload["explanation"] = snapshot["explanation"]
    return {"name": PLAN_SNAPSHOT_EVENT, "payload": payload}
