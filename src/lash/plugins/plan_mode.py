"""Plan mode: explore, write the plan, then let the host decide how to go on.

While plan mode is on, :meth:`PlanMode.filter_tools` restricts the session's catalog to the
planning tools (read-only workspace and web tools, ``ask``, ``update_plan``, ``plan_exit``),
so a model asked to plan cannot change the code or run commands; a call to a hidden tool is
``tool_unavailable``. Given a ``workspace``, the plan is a Markdown file,
``.lash/plans/{session}.md``, seeded from :data:`~lash.plugins.plan_file.PLAN_TEMPLATE`;
``edit`` and ``write`` then stay in the catalog but may touch only that file
(``plan_mode_tool_blocked`` otherwise). ``update_plan`` keeps a checklist alongside.

``plan_exit`` shows the plan to the host (a :data:`~lash.plugins.plan_file.PlanExitPrompt`)
and offers three answers: implement now (the result carries ``next_turn_input`` for the host
to submit), keep planning, or implement in a fresh context (the turn ends as an agent-frame
switch into ``plan-frame-{id}`` whose only input is a short pointer to the plan). Every answer
but "keep planning" turns plan mode off. Mode, checklist and plan path are plugin state,
committed with every turn. So are what ``plan_exit`` leaves pending for later in its turn (the
fresh-context switch, the ``plan_mode.state`` event): a durable replay of the attempt restores
the state it recorded, and the switch and the event then happen as on the first run.

The catalog of a turn is fixed when the turn starts: after "implement now" the
implementation tools appear from the next turn on. Subagent sessions are never in plan mode
and get no plan tools or planning guidance: planning belongs to the root session.

Every accepted ``update_plan`` is published as a plugin runtime event named
``update_plan.snapshot`` (payload: ``explanation``, ``plan``, ``generation``) at the next
checkpoint or at the end of the turn; ``plan_mode.state`` (``session_id``, ``enabled``,
``plan_path``) is published when a planning turn starts and when ``plan_exit`` ends planning.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from lash.plugins._common import READ_ONLY_TOOLS, is_subagent_session
from lash.plugins.plan_file import (
    FRESH_CONTEXT,
    IMPLEMENT_NOW,
    KEEP_PLANNING,
    PlanExitAnswer,
    PlanExitPrompt,
    PlanExitRequest,
    PlanFileUnsafe,
    PlanReport,
    PlanReview,
    confirmation_display,
    display_path,
    fresh_context_input,
    next_turn_input,
    plan_file_path,
    read_plan_report,
    seed_plan_file,
    unsafe_plan_file,
)
from lash.runtime.plugins import (
    CheckpointContext,
    Directive,
    EmitEvent,
    FinalizeContext,
    Plugin,
    PluginSessionContext,
    PrepareContext,
    ShortCircuitTool,
    SwitchAgentFrame,
    ToolCallContext,
)
from lash.tools import FunctionTool, ToolError
from lash.tools.base import Tool, ToolContext
from lash.types import LlmRequest, Message, TextPart, ToolCallOutput, ToolCallPart

__all__ = [
    "PLANNING_GUIDANCE",
    "PLAN_MODE_ALLOWED_TOOLS",
    "PLAN_MODE_STATE_EVENT",
    "PLAN_SNAPSHOT_EVENT",
    "PLAN_STATUSES",
    "READ_ONLY_TOOLS",
    "Approve",
    "PlanMode",
    "plan_snapshot_event",
    "render_plan",
]

_log = logging.getLogger(__name__)

PLAN_STATUSES = ("pending", "in_progress", "completed")

_PLAN_TOOLS = frozenset({"update_plan", "plan_exit"})
_FILE_TOOLS = frozenset({"edit", "write"})

PLAN_MODE_ALLOWED_TOOLS = (
    frozenset({"ask", "fetch_url", "glob", "grep", "read_file", "search_tools", "search_web"})
    | _FILE_TOOLS
    | _PLAN_TOOLS
)
"""The planning catalog when a workspace holds the plan file (``edit``/``write`` limited to
that file). Without a workspace there is no file to confine them to, so they are left out."""

PLAN_SNAPSHOT_EVENT = "update_plan.snapshot"
PLAN_MODE_STATE_EVENT = "plan_mode.state"

_PENDING_SWITCH = "pending_switch"
"""State key: the agent-frame switch ``plan_exit`` asked for (``{frame_id, task}``), taken by
the next ``before_llm_call`` of the turn."""
_PENDING_ANNOUNCE = "pending_announce"
"""State key: ``plan_exit`` ended planning and the ``plan_mode.state`` event is still owed."""

PLANNING_GUIDANCE = (
    "Planning: use update_plan for substantial multi-step work and skip it for trivial asks. "
    "Keep steps short with exactly one in_progress while you work, mark steps completed as "
    "you finish them, give an explanation when the plan changes, and mark every step "
    "completed when the task is done. After an update, say briefly what changed and what "
    "comes next instead of repeating the checklist."
)

Approve = Callable[[list[dict[str, str]]], Awaitable[bool]]
"""The older yes/no decision, asked with the checklist: True is "implement now", False is
"keep planning" (for hosts written before the three-way :data:`PlanExitPrompt`)."""

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
    """The ``plan_mode`` plugin (``enabled`` is the state of a new session).

    ``workspace`` is the directory holding ``.lash/plans/`` (use the workspace tools' root);
    without it there is no plan file and the checklist is the plan. ``prompt`` asks the host
    the three-way ``plan_exit`` question; ``approve`` is the older yes/no form. With neither,
    ``plan_exit`` approves "implement now" on the host's behalf.
    """

    id = "plan_mode"

    def __init__(
        self,
        *,
        enabled: bool = True,
        allowed_tools: Iterable[str] | None = None,
        workspace: str | os.PathLike[str] | None = None,
        prompt: PlanExitPrompt | None = None,
        approve: Approve | None = None,
    ) -> None:
        super().__init__()
        if prompt is not None and approve is not None:
            raise ValueError("give plan mode a prompt or an approve callback, not both")
        self._start_enabled = enabled
        self.workspace = Path(workspace).resolve() if workspace is not None else None
        if allowed_tools is None:
            base = PLAN_MODE_ALLOWED_TOOLS
            allowed_tools = base if self.workspace is not None else base - _FILE_TOOLS
        self.allowed_tools = frozenset(allowed_tools) | _PLAN_TOOLS
        self._prompt = prompt
        self._approve = approve
        self._inert = False
        self._published = 0
        self._session_id = ""
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
            "Ask the user to review the plan and decide: implement now, keep planning, or "
            "implement in a fresh context.",
            {"type": "object", "properties": {}, "additionalProperties": False},
            self._run_plan_exit,
            threaded=False,
        )

    # --- state ----------------------------------------------------------------------------

    async def open_session(self, ctx: PluginSessionContext) -> None:
        self._inert = is_subagent_session(ctx.session_id)
        self._session_id = ctx.session_id
        self.state = dict(ctx.state) or {
            "enabled": self._start_enabled and not self._inert,
            "generation": 0,
            "plan": [],
        }
        path = self.plan_file
        if path is not None and self.workspace is not None:
            self.state["plan_path"] = display_path(self.workspace, path)
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

    @property
    def plan_file(self) -> Path | None:
        """This session's plan file (``None`` without a workspace)."""
        if self.workspace is None or self._inert or not self._session_id:
            return None
        return plan_file_path(self.workspace, self._session_id)

    @property
    def plan_path(self) -> str | None:
        """The plan file as shown to the model and the host (relative to the workspace)."""
        value = self.state.get("plan_path")
        return str(value) if value else None

    def enable(self) -> dict[str, Any]:
        """Enter plan mode (takes effect at the next turn; committed with it)."""
        self.state = {**self.state, "enabled": True}
        return self.status()

    def disable(self) -> dict[str, Any]:
        """Leave plan mode (takes effect at the next turn; committed with it)."""
        self.state = {**self.state, "enabled": False}
        return self.status()

    def toggle(self) -> dict[str, Any]:
        """Flip plan mode."""
        return self.disable() if self.enabled else self.enable()

    def status(self) -> dict[str, Any]:
        """What the host operations of lash return: ``{session_id, enabled, plan_path}``."""
        return {
            "session_id": self._session_id,
            "enabled": self.enabled,
            "plan_path": self.plan_path,
        }

    def read_plan(self) -> PlanReport:
        """The plan file as it is now (seeding it first when planning and it is missing)."""
        path = self.plan_file
        if path is None:
            return PlanReport(display_path="")
        if self.enabled:
            try:
                seed_plan_file(path, root=self.workspace)
            except (PlanFileUnsafe, OSError) as exc:
                # Not fatal to the turn: the file tools stay confined and refuse to write it.
                _log.warning("plan file %s not seeded: %s", path, exc)
        return read_plan_report(path, self.plan_path or path.as_posix(), root=self.workspace)

    # --- catalog --------------------------------------------------------------------------

    def tools(self) -> Sequence[Tool]:
        if self._inert:
            return ()
        return (self._update_plan, self._plan_exit) if self.enabled else (self._update_plan,)

    def filter_tools(self, tools: dict[str, Tool]) -> dict[str, Tool]:
        if not self.enabled:
            return tools
        return {name: t for name, t in tools.items() if name in self.allowed_tools}

    async def before_tool_call(
        self, ctx: ToolCallContext, call: ToolCallPart
    ) -> ShortCircuitTool | None:
        if not self.enabled or call.name not in _FILE_TOOLS:
            return None
        blocked = self._file_tool_blocked(call)
        if blocked is None:
            return None
        return ShortCircuitTool(
            output=ToolCallOutput(
                status="failure", payload=blocked, error_code="plan_mode_tool_blocked"
            )
        )

    def _file_tool_blocked(self, call: ToolCallPart) -> str | None:
        """Why a file tool may not run while planning (``None``: it targets the plan file)."""
        path, workspace = self.plan_file, self.workspace
        if path is None or workspace is None:
            return None  # the host allowed file tools without a plan file to confine them to
        target = call.arguments.get("path")
        if not isinstance(target, str) or not target.strip():
            return f"plan mode needs `{call.name}.path`"
        if "\x00" in target:
            return f"`{call.name}.path` contains a NUL byte"
        # Compared without following symlinks: a plan file (or `.lash`) that is a symlink
        # must not make some other file writable while planning.
        shown = self.plan_path or display_path(workspace, path)
        only = f"plan mode lets `{call.name}` change only `{shown}`"
        candidate = Path(target)
        absolute = candidate if candidate.is_absolute() else workspace / candidate
        if Path(os.path.normpath(absolute)) != path:
            return only
        unsafe = unsafe_plan_file(workspace, path)
        if unsafe is not None:
            return f"plan mode refuses to write the plan file: {unsafe}"
        try:
            # `dir/../x` normalises lexically but the tool resolves it through `dir`.
            same = absolute.resolve() == path
        except (OSError, RuntimeError):
            same = False
        return None if same else only

    async def transform_context(
        self, ctx: PrepareContext, messages: list[Message]
    ) -> list[Message]:
        if self._inert:
            return messages
        notes: list[str] = [PLANNING_GUIDANCE]
        if self.enabled:
            where = (
                f"write the plan in `{self.plan_path}` (the only file you may change, with "
                "edit or write)"
                if self.plan_path
                else "keep the checklist current with update_plan"
            )
            notes.append(
                f"Plan mode is on: explore with the read-only tools, {where}, and call "
                "plan_exit when the plan is ready for review. Do not change code or run "
                "commands yet."
            )
        if self.plan:
            notes.append("Current plan:\n" + render_plan(self.plan))
        note = Message(
            id=f"{ctx.turn_id}:plan-mode", role="system", parts=(TextPart(text="\n\n".join(notes)),)
        )
        return [*messages, note]

    async def prepare_turn(self, ctx: PrepareContext) -> Sequence[Directive]:
        if _PENDING_SWITCH in self.state:  # a switch is for the turn that asked for it
            self.state = {k: v for k, v in self.state.items() if k != _PENDING_SWITCH}
        if self._inert or not self.enabled:
            return ()
        self.read_plan()  # seeds the template on the first planning turn
        return [EmitEvent(event=self._state_event())]

    async def before_llm_call(
        self, ctx: PrepareContext, request: LlmRequest
    ) -> SwitchAgentFrame | None:
        pending = self.state.get(_PENDING_SWITCH)
        if pending is None:
            return None
        self.state = {k: v for k, v in self.state.items() if k != _PENDING_SWITCH}
        if not isinstance(pending, dict):
            _log.warning("plan mode dropped a malformed pending switch: %r", pending)
            return None
        return SwitchAgentFrame(frame_id=str(pending["frame_id"]), task=str(pending["task"]))

    async def checkpoint(self, ctx: CheckpointContext) -> Sequence[Directive]:
        return self._publish()

    async def finalize_turn(self, ctx: FinalizeContext) -> Sequence[Directive]:
        return self._publish()

    def _state_event(self) -> dict[str, Any]:
        return {"name": PLAN_MODE_STATE_EVENT, "payload": self.status()}

    def _publish(self) -> list[Directive]:
        """Events not yet published: the plan snapshot (once per update) and the end of
        planning."""
        out: list[Directive] = []
        if self.state.get(_PENDING_ANNOUNCE):
            self.state = {k: v for k, v in self.state.items() if k != _PENDING_ANNOUNCE}
            out.append(EmitEvent(event=self._state_event()))
        if self._inert or self.generation <= self._published:
            return out
        self._published = self.generation
        snapshot = {
            "explanation": self.state.get("explanation"),
            "plan": self.plan,
            "generation": self.generation,
        }
        out.append(EmitEvent(event=plan_snapshot_event(snapshot)))
        return out

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

    async def _ask(self, request: PlanExitRequest) -> PlanExitAnswer:
        if self._prompt is not None:
            answer = await self._prompt(request)
            if not isinstance(answer, PlanExitAnswer) or answer.selection not in request.options:
                raise ToolError(
                    f"the host answered plan_exit with {answer!r}; expected one of "
                    f"{list(request.options)}",
                    code="invalid_plan_exit_answer",
                )
            return answer
        if self._approve is not None:
            approved = await self._approve(self.plan)
            return PlanExitAnswer(selection=IMPLEMENT_NOW if approved else KEEP_PLANNING)
        return PlanExitAnswer(selection=IMPLEMENT_NOW)

    async def _run_plan_exit(self, ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        if not self.enabled:
            raise ToolError("plan mode is not active", code="plan_mode_inactive")
        report = self.read_plan()
        shown = self.plan_path
        checklist = render_plan(self.plan)
        review = report.review_markdown() if shown else (checklist or "(no plan written yet)")
        request = PlanExitRequest(
            question=f"Review the plan in `{shown}`. What next?"
            if shown
            else "Review the plan. What next?",
            review=PlanReview(title="PLAN", markdown=review),
            plan_path=shown or "",
            checklist=tuple(self.plan),
        )
        answer = await self._ask(request)
        base: dict[str, Any] = {
            "plan_path": shown or "",
            "answer": answer.to_json(),
            "plan": self.plan,
        }
        if answer.selection == KEEP_PLANNING:
            return {
                "approved": False,
                **base,
                "message": "Keep planning: the plan was not approved yet.",
            }
        # Kept in state, not on the instance: the attempt records the state it changed, and a
        # replay that restores it must still switch and announce.
        self.state = {**self.state, "enabled": False, _PENDING_ANNOUNCE: True}
        if answer.selection == FRESH_CONTEXT:
            frame_id = f"plan-frame-{uuid.uuid4().hex}"
            task = fresh_context_input(shown, checklist)
            self.state = {**self.state, _PENDING_SWITCH: {"frame_id": frame_id, "task": task}}
            return {
                "approved": True,
                **base,
                "execution_mode": "fresh_context",
                "frame_id": frame_id,
                "message": "Plan approved; implementation continues in a fresh context.",
            }
        return {
            "approved": True,
            **base,
            "execution_mode": "current_session",
            "confirmation_display": confirmation_display(answer.selection, answer.note),
            "next_turn_input": next_turn_input(shown, answer.note),
            "message": "Plan mode is off; implementation tools are available from the next turn.",
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
