"""One physical turn: prepare, drive the sans-IO machine through the effect host, commit once.

The machine decides; this module only performs effects (model calls, tool batches,
checkpoints), watches for cancellation and lease loss, and at the end builds the single fenced,
idempotent :class:`~lash.types.RuntimeCommit` that makes the turn durable. Nothing the turn did
is visible in the store before that commit: the history never holds half a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from lash.errors import LashRuntimeError, RuntimeErrorCode, StoreError, StoreErrorKind
from lash.kernel import MachineConfig, TurnMachine
from lash.kernel.effects import (
    Checkpoint,
    CheckpointDelivered,
    Done,
    EffectFailed,
    Emit,
    LlmCall,
    LlmCompleted,
    LlmFailed,
    Progress,
    Response,
    ToolBatch,
    ToolResult,
    ToolResults,
    child_replay_key,
)
from lash.providers.base import LlmProvider, ProviderError
from lash.providers.retry import (
    AttemptReset,
    ModelAttempt,
    RetryScheduled,
    complete_with_retry,
)
from lash.runtime.await_events import AwaitEventResolver, WaitIdentity, settle_pending
from lash.runtime.config import TOOL_CANCEL_GRACE_S, CoreConfig
from lash.runtime.effect_host import EffectHost, TurnCompletions, effect_sleeper
from lash.runtime.emitter import Emitter, new_id
from lash.runtime.lease import LeaseGuard
from lash.runtime.plugins import (
    AbortTurn,
    CheckpointContext,
    EmitEvent,
    EnqueueMessages,
    FinalizeContext,
    Plugin,
    PrepareContext,
    ReplaceToolArgs,
    ShortCircuitTool,
    SwitchAgentFrame,
    ToolCallContext,
    changed_plugin_states,
    snapshot_plugin_states,
)
from lash.runtime.scope import ExecutionScope
from lash.runtime.state import SessionState
from lash.tools import ToolContext, execute_tool_call, project_output
from lash.tools.base import Tool, ToolAttachments
from lash.tools.dispatch import (
    BATCH_TOOL,
    BATCH_TOOL_NAME,
    BATCH_TOOL_SPEC,
    BatchChild,
    BatchChildOutcome,
    ToolAttempt,
    ToolAttemptOutcome,
    run_batch,
)
from lash.tools.grants import GrantSource, ToolExecutionGrant, resolve_grants
from lash.tools.membership import denied_tools, membership_of
from lash.trace.base import TraceContext, Tracer
from lash.types import (
    AgentFrameRecord,
    AgentFrameTask,
    AssistantOutput,
    AssistantProseDelta,
    AttachmentItem,
    AttachmentPart,
    AttemptRecord,
    CancellationEvidence,
    ErrorEvent,
    ExecutionSummary,
    ExternalUrlSource,
    GraphAppend,
    InlineSource,
    LlmCallRecord,
    LlmRequest,
    Message,
    MessagePayload,
    ModelAttemptReset,
    Part,
    PluginRuntime,
    ProviderFailure,
    QueueClaimCompletion,
    QueuedInputAccepted,
    QueuedMessagesCommitted,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    QueuedWorkStarted,
    ReasoningDelta,
    ReasoningDeltaEvent,
    RetryStatus,
    RuntimeCommit,
    RuntimeCommitResult,
    SessionCheckpoint,
    SessionConfig,
    SessionNode,
    StoredSource,
    StreamEvent,
    TextDelta,
    TextItem,
    TextPart,
    TokenLedgerEntry,
    TokenUsage,
    ToolCallCompleted,
    ToolCallOutput,
    ToolCallPart,
    ToolCallRecord,
    ToolCallStarted,
    ToolResultPart,
    ToolValue,
    TurnInput,
    TurnInputClaim,
    TurnInputClaimCompletion,
    TurnIssue,
    TurnOutcome,
    TurnResult,
    decode,
    merge_ledger,
    to_builtins,
)

__all__ = [
    "BATCH_TOOL_NAME",
    "BATCH_TOOL_SPEC",
    "ClaimSet",
    "PhysicalTurn",
    "TurnRequest",
    "store_error_to_runtime",
]

log = logging.getLogger(__name__)


def store_error_to_runtime(err: StoreError) -> LashRuntimeError:
    """Lease expiry is a lost lease; every other store failure is a failed commit."""
    return err.to_runtime_error()


@dataclass(slots=True)
class ClaimSet:
    """Claims a turn holds and must settle in its commit."""

    turn_inputs: list[TurnInputClaim] = field(default_factory=list)
    queue: list[QueuedWorkClaim] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.turn_inputs or self.queue)

    def queue_completions(self) -> tuple[QueueClaimCompletion, ...]:
        """Completions for every held queue claim."""
        return tuple(
            QueueClaimCompletion(
                claim_id=c.claim_id, lease_token=c.lease_token, batch_ids=c.batch_ids
            )
            for c in self.queue
        )

    def input_completions(self) -> tuple[TurnInputClaimCompletion, ...]:
        """Completions for every held turn-input claim."""
        return tuple(
            TurnInputClaimCompletion(
                claim_id=c.claim_id, lease_token=c.lease_token, input_ids=c.input_ids
            )
            for c in self.turn_inputs
        )

    def clear(self) -> None:
        """Forget settled claims."""
        self.turn_inputs.clear()
        self.queue.clear()


@dataclass(slots=True)
class TurnRequest:
    """What to run as one physical turn."""

    turn_id: str
    input: TurnInput
    claims: ClaimSet
    release_lease: bool = True
    protocol_iteration_offset: int = 0
    causes: tuple[Message, ...] = ()
    plugin_inputs: dict[str, Any] = field(default_factory=dict)
    protocol_extension: Any = None
    max_turns: int | None = None
    effect_host: EffectHost | None = None
    """A per-turn effect host (a durable handler's context-bound host); default: the core's."""
    grants: tuple[ToolExecutionGrant, ...] = ()
    """Per-turn execution grants: tools callable without being advertised."""
    grant_sources: Mapping[str, GrantSource] = field(default_factory=dict)


@dataclass(slots=True)
class TurnEnd:
    """A committed physical turn."""

    result: TurnResult
    commit: RuntimeCommitResult
    frame_switch: TurnOutcome | None = None


class _GuardedProvider:
    """Turns unexpected adapter exceptions into classified, non-retryable failures."""

    def __init__(self, inner: LlmProvider) -> None:
        self._inner = inner

    @property
    def kind(self) -> str:
        return self._inner.kind

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def stream(self, request: LlmRequest) -> AsyncIterator[StreamEvent]:
        try:
            async for event in self._inner.stream(request):
                yield event
        except (ProviderError, asyncio.CancelledError):
            raise
        except Exception as err:
            raise ProviderError(
                ProviderFailure(
                    kind="unknown",
                    message=f"provider raised {type(err).__name__}: {err}",
                    code="provider_exception",
                    raw="".join(traceback.format_exception(err))[-4000:],
                )
            ) from err


_CANCELLED_FAILURE = ProviderFailure(
    kind="unknown", message="the turn was cancelled", code="cancelled", terminal_reason="cancelled"
)


class PhysicalTurn:
    """Runs one physical turn of one session (see the module docstring)."""

    def __init__(
        self,
        *,
        config: CoreConfig,
        state: SessionState,
        plugins: Sequence[Plugin],
        tools: dict[str, Tool],
        request: TurnRequest,
        guard: LeaseGuard | None,
        emitter: Emitter,
        cancel_event: asyncio.Event,
        local_cancel: list[CancellationEvidence],
    ) -> None:
        self.cfg = config
        self.host: EffectHost = request.effect_host or config.effect_host
        self.state = state
        self.plugins = plugins
        self.tools = tools
        self.req = request
        self.guard = guard
        self.emitter = emitter
        self.cancel_event = cancel_event
        self.local_cancel = local_cancel
        self.session_id = state.session_id
        self.turn_id = request.turn_id
        self.scope = ExecutionScope.turn(self.session_id, self.turn_id)
        self.turn_index = state.turn_index + 1
        # model calls of plugin hooks outside tool attempts (direct_completion effects)
        self.completions = TurnCompletions(
            self.host, self.scope, f"{self.session_id}:{self.turn_id}:{self.turn_index}"
        )
        self.llm_calls: list[LlmCallRecord] = []
        self.tool_records: list[ToolCallRecord] = []
        # usage tools spent for the turn (subagents, direct completions): ``children_usage``
        self.child_usage: list[TokenLedgerEntry] = []
        self.started_ms = config.clock.now_ms()
        self.frame_switch: SwitchAgentFrame | None = None
        self.attachment_ids: list[str] = []
        self.prompt_extra: list[Message] = []
        # plugin state changed inside tool attempts: the completion counter of such attempts
        # and, per plugin, the position of the change now applied (see _attempt_effect)
        self.state_seq = 0
        self.state_applied: dict[str, int] = {}
        self.provider = _GuardedProvider(config.provider)
        catalog = dict(tools)
        for plugin in plugins:
            for contributed in plugin.tools():
                catalog[contributed.spec.name] = contributed
        # the Standard protocol's batch tool is an ordinary member: plugins and host
        # membership may remove it like any other tool (a host-defined ``batch`` wins)
        if config.batch_tool and BATCH_TOOL_NAME not in catalog:
            catalog[BATCH_TOOL_NAME] = BATCH_TOOL
        # an explicit grant routes a call to a tool outside the catalog (never advertised),
        # but never to one the session's access policy denies (a fork's hidden_tools)
        denied = denied_tools(state.checkpoint.tool_state)
        granted = resolve_grants(request.grants, request.grant_sources)
        self.granted = {name: g for name, g in granted.items() if name not in denied}
        for plugin in plugins:
            catalog = plugin.filter_tools(catalog)
        # host-hidden tools (persisted membership) are neither advertised nor callable
        membership = membership_of(state.checkpoint.tool_state)
        self.tools = {name: t for name, t in catalog.items() if membership.is_member(name)}
        self.tracer = Tracer(
            config.trace,
            TraceContext(
                session_id=self.session_id,
                turn_id=self.turn_id,
                turn_index=self.turn_index,
                graph_node_id=f"turn:{self.session_id}:{self.turn_id}",
            ),
        )

    # --- helpers --------------------------------------------------------------------------

    def _advertised(self) -> dict[str, Tool]:
        """The callable tools, minus a ``batch`` with nothing else to call."""
        if self.tools.get(BATCH_TOOL_NAME) is BATCH_TOOL and len(self.tools) == 1:
            return {}
        return self.tools

    def _prepare_ctx(self) -> PrepareContext:
        return PrepareContext(
            session_id=self.session_id,
            turn_id=self.turn_id,
            turn_index=self.turn_index,
            agent_frame_id=self.state.current_frame_id,
            context_window=self.cfg.model.context_window,
            completions=self.completions,
        )

    def _check_lease(self) -> None:
        if self.guard is not None and self.guard.lost:
            raise LashRuntimeError(
                RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST,
                f"session {self.session_id} lease was lost while turn {self.turn_id} ran",
            )

    async def _normalize_input(self) -> tuple[list[Part], str | None]:
        parts: list[Part] = []
        for item in self.req.input.items:
            if isinstance(item, TextItem):
                if item.text:
                    parts.append(TextPart(text=item.text))
            elif isinstance(item, AttachmentItem):
                source = item.source
                if isinstance(source, InlineSource):
                    ref = await self.cfg.attachments.put(
                        self.session_id,
                        source.data,
                        source.media_type,
                        label=source.label,
                        owner_turn_id=self.turn_id,
                    )
                    parts.append(AttachmentPart(ref=ref))
                    self.attachment_ids.append(ref.id)
                elif isinstance(source, StoredSource):
                    if not await self.cfg.attachments.holds_ref(self.session_id, source.ref.id):
                        return parts, f"attachment {source.ref.id} is not held by this session"
                    parts.append(AttachmentPart(ref=source.ref))
                    self.attachment_ids.append(source.ref.id)
                elif isinstance(source, ExternalUrlSource):
                    return parts, "external URL attachments are not supported by this runtime"
        return parts, None

    # --- the run --------------------------------------------------------------------------

    async def run(self) -> TurnEnd:
        """Run the turn to its single commit."""
        self.tracer.emit("turn_started", {"input": self.req.input})
        parts, invalid = await self._normalize_input()
        if invalid is not None:
            issue = TurnIssue(kind="input_validation", code="invalid_turn_input", message=invalid)
            await self.emitter.emit(ErrorEvent(message=invalid, code="invalid_turn_input"))
            return await self._finish(TurnOutcome.stopped("invalid_input"), (issue,), ())
        turn_messages: list[Message] = list(self.req.causes)
        if parts or not turn_messages:
            turn_messages.append(
                Message(
                    id=f"{self.turn_id}:user",
                    role="user",
                    parts=tuple(parts) or (TextPart(text=""),),
                )
            )
        history = self.state.prompt_history()
        ctx = self._prepare_ctx()
        for plugin in self.plugins:
            try:
                history = await plugin.transform_context(ctx, history)
            except LashRuntimeError:
                raise
            except Exception as err:
                raise LashRuntimeError(
                    RuntimeErrorCode.CONTEXT_PREPARE_TURN,
                    f"context transform of plugin {plugin.id!r} failed: {err}",
                ) from err
        for plugin in self.plugins:
            try:
                directives = await plugin.prepare_turn(ctx)
            except Exception as err:
                raise LashRuntimeError(
                    RuntimeErrorCode.PLUGIN_PREPARE_TURN,
                    f"before-turn hook of plugin {plugin.id!r} failed: {err}",
                ) from err
            for directive in directives:
                if isinstance(directive, AbortTurn):
                    issue = TurnIssue(kind="plugin", code=directive.code, message=directive.message)
                    return await self._finish(
                        TurnOutcome.stopped("plugin_abort"), (issue,), tuple(turn_messages)
                    )
                if isinstance(directive, EnqueueMessages):
                    history = [*history, *directive.messages]
                elif isinstance(directive, EmitEvent):
                    await self.emitter.emit(
                        PluginRuntime(plugin_id=plugin.id, event=directive.event)
                    )
                else:
                    raise LashRuntimeError(
                        RuntimeErrorCode.PLUGIN_PREPARE_TURN,
                        f"plugin {plugin.id!r} returned a directive not allowed before a turn",
                    )
        machine = TurnMachine(
            MachineConfig(
                session_id=self.session_id,
                turn_id=self.turn_id,
                turn_index=self.turn_index,
                agent_frame_id=self.state.current_frame_id,
                model=self.cfg.model.id,
                system_prompt=self.cfg.system_prompt,
                tools=tuple(t.spec for t in self._advertised().values()),
                max_turns=self.req.max_turns
                if self.req.max_turns is not None
                else self.cfg.max_turns,
                protocol_iteration_offset=self.req.protocol_iteration_offset,
                max_output_tokens=self.cfg.model.max_output_tokens,
                context_window=self.cfg.model.context_window,
                reasoning=self.cfg.model.reasoning,
                capabilities=self.cfg.model.capabilities,
                options=dict(self.req.input.protocol_turn_options or {}),
            ),
            history,
            turn_messages,
        )
        effects = machine.start()
        done: Done | None = None
        while done is None:
            pending = None
            for effect in effects:
                if isinstance(effect, Emit):
                    await self.emitter.emit(effect.event, effect.correlation_id)
                elif isinstance(effect, Progress):
                    pass  # one commit per turn: progress stays in memory (see module docstring)
                elif isinstance(effect, Done):
                    done = effect
                else:
                    pending = effect
            if done is not None:
                break
            if pending is None:
                raise LashRuntimeError(
                    "runtime_effect_protocol", "the turn machine yielded no effect to run"
                )
            self._check_lease()
            response = await self._execute(pending)
            if self.frame_switch is not None:
                outcome = TurnOutcome.frame_switch(
                    self.frame_switch.frame_id,
                    self.frame_switch.task,
                    self.frame_switch.initial_messages,
                )
                return await self._finish(outcome, machine.issues, machine.turn_messages, machine)
            effects = machine.cancel() if response is None else machine.handle(response)
        return await self._finish(done.outcome, done.issues, machine.turn_messages, machine)

    async def _execute(self, effect: LlmCall | ToolBatch | Checkpoint) -> Response | None:
        if isinstance(effect, LlmCall):
            return await self._run_llm(effect)
        if isinstance(effect, ToolBatch):
            return await self._run_tools(effect)
        return await self._run_checkpoint(effect)

    async def _race(self, task: asyncio.Future[Any]) -> bool:
        """Wait for ``task`` or cancellation; True when the task finished first."""
        if self.cancel_event.is_set():
            return False
        waiter = asyncio.ensure_future(self.cancel_event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        return task.done()

    async def _run_llm(self, effect: LlmCall) -> Response:
        request: LlmRequest = effect.request
        if self.cancel_event.is_set():
            return LlmFailed(effect_id=effect.effect_id, failure=_CANCELLED_FAILURE)
        ctx = self._prepare_ctx()
        for plugin in self.plugins:
            try:
                switch = await plugin.before_llm_call(ctx, request)
            except Exception as err:
                return EffectFailed(
                    effect_id=effect.effect_id,
                    code=str(RuntimeErrorCode.PROTOCOL_BEFORE_LLM_CALL),
                    message=f"before_llm_call of plugin {plugin.id!r} failed: {err}",
                )
            if switch is not None:
                self.frame_switch = switch
                return LlmFailed(effect_id=effect.effect_id, failure=_CANCELLED_FAILURE)
        prose = new_id()
        reasoning = new_id()
        streamed = {"prose": False, "reasoning": False}

        async def on_event(event: StreamEvent | AttemptReset | RetryScheduled) -> None:
            nonlocal prose, reasoning
            if isinstance(event, TextDelta):
                streamed["prose"] = True
                await self.emitter.emit(AssistantProseDelta(text=event.text), prose)
            elif isinstance(event, ReasoningDelta):
                streamed["reasoning"] = True
                await self.emitter.emit(ReasoningDeltaEvent(text=event.text), reasoning)
            elif isinstance(event, AttemptReset):
                await self._retract(prose, reasoning, streamed)
                prose, reasoning = new_id(), new_id()
            elif isinstance(event, RetryScheduled):
                await self.emitter.emit(
                    RetryStatus(
                        wait_seconds=event.wait_s,
                        attempt=event.attempt,
                        max_attempts=event.max_attempts,
                        reason=event.reason,
                    )
                )

        call_id = new_id()

        async def call() -> tuple[Any, LlmCallRecord]:
            return await complete_with_retry(
                self.provider,
                request,
                policy=self.cfg.retry,
                clock=self.cfg.clock,
                sleep=effect_sleeper(
                    self.host, self.scope, f"{effect.replay_key}:retry", self.cfg.sleep
                ),
                on_event=on_event,
                call_id=call_id,
                run_attempt=run_attempt,
            )

        async def run_attempt(
            ordinal: int, attempt: Callable[[], Awaitable[ModelAttempt]]
        ) -> ModelAttempt:
            # one effect per attempt, so a replay never repeats a finished attempt and the
            # back-off between two attempts is the host's sleep effect, outside any effect
            return await self.host.run_effect(
                self.scope,
                "llm_call",
                f"{effect.replay_key}:attempt:{ordinal}",
                request,
                attempt,
                result_type=ModelAttempt,
            )

        started = self.cfg.clock.now_ms()
        span = {
            "graph_node_id": f"llm:{call_id}",
            "parent_graph_node_id": f"turn:{self.session_id}:{self.turn_id}",
            "protocol_iteration": effect.protocol_iteration,
            "effect_id": effect.effect_id,
            "llm_call_id": call_id,
        }
        self.tracer.emit("llm_call_started", {"request": request}, **span)
        task = asyncio.ensure_future(call())
        if not await self._race(task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await self._retract(prose, reasoning, streamed)
            self.llm_calls.append(
                LlmCallRecord(
                    call_id=call_id,
                    model=request.model,
                    attempts=(
                        AttemptRecord(
                            ordinal=1,
                            started_at_ms=started,
                            duration_ms=max(0, self.cfg.clock.now_ms() - started),
                            outcome="interrupted",
                        ),
                    ),
                )
            )
            self.tracer.emit("llm_call_failed", {"error": "cancelled"}, **span)
            return LlmFailed(effect_id=effect.effect_id, failure=_CANCELLED_FAILURE)
        try:
            outcome, record = task.result()
        except LashRuntimeError:
            raise
        except Exception as err:
            return EffectFailed(
                effect_id=effect.effect_id,
                code="runtime_effect_llm_call",
                message=f"effect host failed to run the model call: {err}",
            )
        self.llm_calls.append(record)
        if isinstance(outcome, ProviderFailure):
            self.tracer.emit("llm_call_failed", {"error": outcome, "call": record}, **span)
            await self._retract(prose, reasoning, streamed)
            return LlmFailed(effect_id=effect.effect_id, failure=outcome)
        self.tracer.emit(
            "llm_call_completed",
            {"response": outcome, "usage": outcome.usage, "call": record},
            **span,
        )
        if outcome.usage is not None:
            self.tracer.emit("token_usage", {"usage": outcome.usage}, **span)
        return LlmCompleted(
            effect_id=effect.effect_id, response=outcome, text_streamed=streamed["prose"]
        )

    async def _retract(self, prose: str, reasoning: str, streamed: dict[str, bool]) -> None:
        if not (streamed["prose"] or streamed["reasoning"]):
            return
        await self.emitter.emit(
            ModelAttemptReset(
                assistant_prose_correlation_ids=(prose,) if streamed["prose"] else (),
                reasoning_correlation_ids=(reasoning,) if streamed["reasoning"] else (),
            )
        )
        streamed["prose"] = streamed["reasoning"] = False

    async def _run_tools(self, effect: ToolBatch) -> Response:
        calls = effect.calls
        outputs: list[ToolCallOutput | None] = [None] * len(calls)
        durations = [0] * len(calls)
        contexts: list[list[ToolContext]] = [[] for _ in calls]

        for call in calls:
            self.tracer.emit(
                "tool_call_started",
                {"call_id": call.id, "name": call.name, "args": call.arguments},
                graph_node_id=f"tool:{call.id}",
                parent_graph_node_id=f"turn:{self.session_id}:{self.turn_id}",
                effect_id=effect.effect_id,
            )
            await self.emitter.emit(
                ToolCallStarted(name=call.name, args=dict(call.arguments), call_id=call.id), call.id
            )

        async def one(index: int, call: ToolCallPart) -> None:
            started = self.cfg.clock.now_ms()
            key = child_replay_key(effect.replay_key, f"child:{index}:{call.id}")
            try:
                outputs[index] = await self._dispatch_call(call, key, contexts[index])
            finally:
                durations[index] = max(0, self.cfg.clock.now_ms() - started)

        cancelled = False
        if self.host.supports_concurrent_effects:
            tasks = [asyncio.ensure_future(one(i, c)) for i, c in enumerate(calls)]
            gathered = asyncio.ensure_future(asyncio.gather(*tasks, return_exceptions=True))
            if not await self._race(gathered):
                cancelled = True
                for ctxs in contexts:
                    for ctx in ctxs:
                        ctx.cancelled.set()
                await asyncio.wait(tasks, timeout=TOOL_CANCEL_GRACE_S)
                for task in tasks:
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gathered
            else:
                for res in gathered.result():
                    if isinstance(res, LashRuntimeError):
                        raise res
                    if isinstance(res, BaseException):
                        raise res
        else:
            for index, call in enumerate(calls):
                if self.cancel_event.is_set():
                    cancelled = True
                    break
                task = asyncio.ensure_future(one(index, call))
                if not await self._race(task):
                    cancelled = True
                    for ctx in contexts[index]:
                        ctx.cancelled.set()
                    await asyncio.wait({task}, timeout=TOOL_CANCEL_GRACE_S)
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    break
                task.result()

        results: list[ToolResult] = []
        for index, call in enumerate(calls):
            output = outputs[index]
            if output is None:
                output = ToolCallOutput(
                    status="cancelled",
                    payload="cancelled before it finished",
                    error_code="cancelled",
                )
            model_return = self._project(call, output)
            results.append(
                ToolResult(
                    call=call,
                    output=output,
                    model_return=model_return,
                    duration_ms=durations[index],
                )
            )
            self.child_usage.extend(output.usage)
            self.tool_records.append(
                ToolCallRecord(
                    call_id=call.id,
                    name=call.name,
                    arguments=dict(call.arguments),
                    status=output.status,
                    output=output.payload,
                    error_code=output.error_code,
                    duration_ms=durations[index],
                    attempts=output.attempts,
                )
            )
            self.tracer.emit(
                "tool_call_completed",
                {
                    "call_id": call.id,
                    "name": call.name,
                    "args": call.arguments,
                    "output": output,
                    "duration_ms": durations[index],
                },
                graph_node_id=f"tool:{call.id}",
                parent_graph_node_id=f"turn:{self.session_id}:{self.turn_id}",
                effect_id=effect.effect_id,
            )
            await self.emitter.emit(
                ToolCallCompleted(
                    name=call.name,
                    args=dict(call.arguments),
                    output=output,
                    duration_ms=durations[index],
                    call_id=call.id,
                ),
                call.id,
            )
            if output.ok and output.control and "terminal" in output.control:
                terminal = output.control["terminal"]
                if isinstance(terminal, dict) and terminal.get("kind") == "tool_value":
                    await self.emitter.emit(
                        ToolValue(tool_name=call.name, value=terminal.get("value"))
                    )
        return ToolResults(effect_id=effect.effect_id, results=tuple(results), cancelled=cancelled)

    async def _dispatch_call(
        self,
        call: ToolCallPart,
        key: str,
        contexts: list[ToolContext],
        parent_call_id: str | None = None,
    ) -> ToolCallOutput:
        """One tool call: argument and membership checks, ``before_tool_call`` hooks, then the
        attempts, each its own effect ``<key>:attempt:<n>`` through the effect host, each
        completed attempt passing the ``after_tool_call`` hooks inside the attempt (so a
        replayed attempt returns the hooked output). The retry decision is made between
        attempt effects and the back-off is the host's sleep effect ``<key>:attempt:<n>:sleep``
        (a durable timer on a journaling host). Never raises for tool failures."""
        malformed = _malformed_arguments(call)
        if malformed is not None:
            return ToolCallOutput(
                status="failure", payload=malformed, error_code="invalid_tool_args"
            )
        # membership gates first: a call to a tool this turn cannot run never reaches a hook;
        # a grant is the host's explicit routing for this turn, so it wins over membership
        granted = self.granted.get(call.name)
        tool = granted.tool if granted is not None else self._advertised().get(call.name)
        if tool is None:
            return ToolCallOutput(
                status="failure",
                payload=f"Tool '{call.name}' is unavailable in this session",
                error_code="tool_unavailable",
            )
        hook_ctx = ToolCallContext(
            session_id=self.session_id, turn_id=self.turn_id, call_id=call.id, tool_name=call.name
        )
        for plugin in self.plugins:
            try:
                decision = await plugin.before_tool_call(hook_ctx, call)
            except Exception as err:
                return ToolCallOutput(
                    status="failure",
                    payload=f"before_tool_call hook of plugin {plugin.id!r} failed: {err}",
                    error_code="before_tool_call_failed",
                )
            if isinstance(decision, ShortCircuitTool):
                return decision.output
            if isinstance(decision, ReplaceToolArgs):
                call = msgspec.structs.replace(
                    call, arguments=dict(decision.arguments), raw_arguments=None
                )

        async def after_hooks(output: ToolCallOutput) -> ToolCallOutput:
            for plugin in self.plugins:
                try:
                    replaced = await plugin.after_tool_call(hook_ctx, call, output)
                except Exception as err:
                    return ToolCallOutput(
                        status="failure",
                        payload=f"after_tool_call hook of plugin {plugin.id!r} failed: {err}",
                        error_code="after_tool_call_failed",
                    )
                if replaced is not None:
                    output = replaced
            return output

        if tool is BATCH_TOOL:
            dispatch = _TurnBatchDispatch(self, call, key, contexts)
            return await after_hooks(await run_batch(call.arguments, dispatch))
        else:

            def make_context(attempt: int) -> ToolContext:
                ctx = ToolContext(
                    session_id=self.session_id,
                    turn_id=self.turn_id,
                    call_id=call.id,
                    tool_name=call.name,
                    replay_key=key,
                    attempt=attempt,
                    attachments=ToolAttachments(
                        self.cfg.attachments,
                        self.session_id,
                        turn_id=self.turn_id,
                        on_put=lambda ref: self.attachment_ids.append(ref.id),
                    ),
                    trace=self.tracer,
                    await_keys=self._await_key_minter(),
                    execution_binding=granted.grant.binding if granted is not None else None,
                )
                contexts.append(ctx)
                return ctx

            async def run_attempt(
                attempt: ToolAttempt, execute: Callable[[], Awaitable[ToolCallOutput]]
            ) -> ToolCallOutput:
                return await self._attempt_effect(
                    f"{key}:attempt:{attempt.attempt}", attempt, execute
                )

            try:
                output = await execute_tool_call(
                    tool,
                    call,
                    make_context=make_context,
                    sleep=effect_sleeper(self.host, self.scope, f"{key}:attempt", self.cfg.sleep),
                    after_attempt=after_hooks,
                    run_attempt=run_attempt,
                )
                output = await settle_pending(
                    self.host,
                    self.scope,
                    call.id,
                    key,
                    output,
                    cancel=self.cancel_event,
                    sleep=self.cfg.sleep,
                )
            except (asyncio.CancelledError, LashRuntimeError):
                raise
            except Exception as err:
                output = ToolCallOutput(
                    status="failure",
                    payload=f"tool attempt failed in the effect host: {err}",
                    error_code="tool_attempt_failed",
                )
        return output

    async def _attempt_effect(
        self, key: str, attempt: ToolAttempt, execute: Callable[[], Awaitable[ToolCallOutput]]
    ) -> ToolCallOutput:
        """One tool attempt as an effect whose outcome carries the plugin state it changed.

        On a host that can replay (any host without ``replays_effects = False``), the
        attempt snapshots every plugin's state when it begins and records, when it ends
        (after the ``after_tool_call`` hooks), the new snapshot of each plugin that changed,
        numbered in the turn's completion order. When the host hands back a recorded outcome
        without running the attempt (a durable replay), those snapshots are restored, so the
        turn goes on, and commits, with the state the first run had.

        Concurrent attempts share the live plugins: a snapshot taken at an attempt's end holds
        whatever another attempt changed before it. So per plugin the change with the highest
        completion number wins, on replay as in the first run, whatever order the host
        replays them in; a replay never rolls a plugin back to an older attempt's snapshot.
        """
        ran = False
        # a host that never answers from a record has nothing to restore: skip the capture
        capture = getattr(self.host, "replays_effects", True)

        async def body() -> ToolAttemptOutcome:
            nonlocal ran
            ran = True
            if not capture:
                return ToolAttemptOutcome(output=await execute())
            before = snapshot_plugin_states(self.plugins)
            output = await execute()
            changed = changed_plugin_states(self.plugins, before)
            if not changed:
                return ToolAttemptOutcome(output=output)
            self.state_seq += 1
            for plugin_id in changed:
                self.state_applied[plugin_id] = self.state_seq
            return ToolAttemptOutcome(
                output=output, plugin_states=changed, state_seq=self.state_seq
            )

        outcome = await self.host.run_effect(
            self.scope, "tool_attempt", key, attempt, body, result_type=ToolAttemptOutcome
        )
        if not ran and outcome.plugin_states:
            self._replay_plugin_states(outcome)
        return outcome.output

    def _replay_plugin_states(self, outcome: ToolAttemptOutcome) -> None:
        """Restore what a replayed attempt changed, unless a later change already applies."""
        seq = outcome.state_seq
        self.state_seq = max(self.state_seq, seq)
        by_id = {plugin.id: plugin for plugin in self.plugins}
        for plugin_id, snapshot in outcome.plugin_states.items():
            plugin = by_id.get(plugin_id)
            if plugin is None or self.state_applied.get(plugin_id, 0) >= seq:
                continue
            plugin.restore_state(snapshot)
            self.state_applied[plugin_id] = seq

    def _await_key_minter(self) -> Callable[[Any], str] | None:
        """How a tool mints its durable-wait keys on this turn's host (None: no waits)."""
        host = self.host
        if not isinstance(host, AwaitEventResolver):
            return None
        scope = self.scope
        return lambda wait: host.await_event_key(scope, msgspec.convert(wait, WaitIdentity))

    def _project(self, call: ToolCallPart, output: ToolCallOutput) -> ToolResultPart:
        for plugin in self.plugins:
            try:
                part = plugin.project_tool_output(call, output)
            except Exception as err:
                log.warning("tool-result projector of plugin %r failed: %s", plugin.id, err)
                return ToolResultPart(
                    tool_call_id=call.id,
                    name=call.name,
                    content=f"Error [projection_failed]: {err}",
                    is_error=True,
                )
            if part is not None:
                return part
        return project_output(
            call,
            output,
            max_bytes=self.cfg.tool_output_max_bytes,
            max_lines=self.cfg.tool_output_max_lines,
        )

    async def _run_checkpoint(self, effect: Checkpoint) -> Response | None:
        if self.cancel_event.is_set():
            return None
        messages: list[Message] = []
        store = self.cfg.store
        if store is not None and self.guard is not None:
            try:
                inputs, queue = await store.claim_checkpoint_work(
                    self.guard.fence, self.turn_id, effect.kind
                )
            except StoreError as err:
                raise store_error_to_runtime(err) from err
            if inputs is not None:
                self.req.claims.turn_inputs.append(inputs)
                for pending in inputs.inputs:
                    parts = [
                        TextPart(text=i.text)
                        for i in pending.input.items
                        if isinstance(i, TextItem)
                    ]
                    messages.append(
                        Message(
                            id=f"m_ingress_{pending.input_id}",
                            role="user",
                            parts=tuple(parts) or (TextPart(text=""),),
                        )
                    )
                await self.emitter.emit(
                    QueuedInputAccepted(checkpoint=effect.kind, inputs=inputs.input_ids)
                )
            if queue is not None:
                self.req.claims.queue.append(queue)
                messages.extend(render_causes(queue, self.turn_id))
                await self.emitter.emit(
                    QueuedWorkStarted(boundary="active_turn_checkpoint", batch_ids=queue.batch_ids)
                )
        ctx = CheckpointContext(
            session_id=self.session_id,
            turn_id=self.turn_id,
            kind=effect.kind,
            turn_messages=tuple(messages),
        )
        for plugin in self.plugins:
            try:
                directives = await plugin.checkpoint(ctx)
            except Exception as err:
                return EffectFailed(
                    effect_id=effect.effect_id,
                    code=str(RuntimeErrorCode.PLUGIN_CHECKPOINT),
                    message=f"checkpoint hook of plugin {plugin.id!r} failed: {err}",
                )
            for directive in directives:
                if isinstance(directive, AbortTurn):
                    return EffectFailed(
                        effect_id=effect.effect_id,
                        code=directive.code,
                        message=directive.message or f"plugin {plugin.id!r} aborted the turn",
                    )
                if isinstance(directive, EnqueueMessages):
                    messages.extend(directive.messages)
                elif isinstance(directive, EmitEvent):
                    await self.emitter.emit(
                        PluginRuntime(plugin_id=plugin.id, event=directive.event)
                    )
        if messages:
            await self.emitter.emit(
                QueuedMessagesCommitted(checkpoint=effect.kind, messages=tuple(messages))
            )
        return CheckpointDelivered(effect_id=effect.effect_id, messages=tuple(messages))

    # --- finish ---------------------------------------------------------------------------

    async def _finish(
        self,
        outcome: TurnOutcome,
        issues: Sequence[TurnIssue],
        turn_messages: Sequence[Message],
        machine: TurnMachine | None = None,
    ) -> TurnEnd:
        control = self.host.turn_control
        lost = self.guard is not None and self.guard.lost
        local: CancellationEvidence | None = None
        if not lost and (outcome.reason == "cancelled" or self.local_cancel):
            local = (
                self.local_cancel[0]
                if self.local_cancel
                else CancellationEvidence(
                    request_id=f"internal:{self.turn_id}", requested_at_ms=self.cfg.clock.now_ms()
                )
            )
        # awaited before anything commits: a cancel that won a durable gate between the last
        # gate read and this seal makes the turn end cancelled (first writer wins)
        evidence = await control.seal_before_commit(self.session_id, self.turn_id, local)
        if lost:
            raise LashRuntimeError(
                RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST,
                f"session {self.session_id} lease was lost while turn {self.turn_id} ran",
            )
        if evidence is not None and outcome.reason != "cancelled":
            outcome = TurnOutcome.stopped("cancelled")
        if outcome.reason == "cancelled" and evidence is None:
            raise LashRuntimeError(
                "turn_cancellation_evidence_missing",
                f"turn {self.turn_id} ended cancelled without cancellation evidence",
            )
        usage = machine.cumulative_usage if machine is not None else TokenUsage()
        text = outcome.text if outcome.reason == "assistant_message" and outcome.text else ""
        result = TurnResult(
            session_id=self.session_id,
            turn_id=self.turn_id,
            outcome=outcome,
            assistant_output=AssistantOutput(
                safe_text=text, raw_text=text, state="usable" if text else "empty_output"
            ),
            usage=usage,
            children_usage=tuple(merge_ledger(self.child_usage)),
            llm_calls=tuple(self.llm_calls),
            tool_calls=tuple(self.tool_records),
            issues=tuple(issues),
            cancellation=evidence,
            execution=ExecutionSummary(
                had_tool_calls=bool(self.tool_records),
                started_at_ms=self.started_ms,
                duration_ms=max(0, self.cfg.clock.now_ms() - self.started_ms),
            ),
            head_revision=self.state.head_revision + 1,
            turn_index=self.turn_index,
        )
        for plugin in self.plugins:
            try:
                directives = await plugin.finalize_turn(
                    FinalizeContext(session_id=self.session_id, turn_id=self.turn_id, result=result)
                )
            except Exception as err:
                raise LashRuntimeError(
                    RuntimeErrorCode.PLUGIN_FINALIZE_TURN,
                    f"after-turn hook of plugin {plugin.id!r} failed: {err}",
                ) from err
            for directive in directives:
                if isinstance(directive, AbortTurn):
                    raise LashRuntimeError(
                        RuntimeErrorCode.PLUGIN_FINALIZE_TURN,
                        f"plugin {plugin.id!r} tried to abort a finished turn",
                    )
                if isinstance(directive, EnqueueMessages):
                    turn_messages = [*turn_messages, *directive.messages]
                elif isinstance(directive, EmitEvent):
                    await self.emitter.emit(
                        PluginRuntime(plugin_id=plugin.id, event=directive.event)
                    )
        return await self._commit(result, turn_messages)

    async def _commit(self, result: TurnResult, turn_messages: Sequence[Message]) -> TurnEnd:
        state = self.state
        outcome = result.outcome
        messages = list(turn_messages)
        if outcome.reason == "assistant_message" and outcome.text:
            last = next((m for m in reversed(messages) if not m.transient), None)
            if last is None or last.role != "assistant" or last.text != outcome.text:
                messages.append(
                    Message(
                        id=f"{self.turn_id}:final",
                        role="assistant",
                        parts=(TextPart(text=outcome.text),),
                    )
                )
        now = self.cfg.clock.now_ms()
        parent = state.graph.leaf_node_id
        nodes: list[SessionNode] = []
        for index, msg in enumerate(messages):
            node = SessionNode(
                node_id=f"{self.turn_id}:n{index}:{new_id()[:8]}",
                parent_node_id=parent,
                agent_frame_id=state.current_frame_id,
                timestamp_ms=now,
                payload=MessagePayload(message=msg),
            )
            nodes.append(node)
            parent = node.node_id
        frames = list(state.agent_frames)
        current_frame = state.current_frame_id
        outbox: list[QueuedWorkBatchDraft] = []
        switch: TurnOutcome | None = None
        if outcome.kind == "agent_frame_switch" and outcome.frame_id:
            switch = outcome
            if outcome.frame_id != current_frame and all(
                f.frame_id != outcome.frame_id for f in frames
            ):
                frames.append(
                    AgentFrameRecord(
                        frame_id=outcome.frame_id,
                        session_id=self.session_id,
                        reason="continue_as",
                        previous_frame_id=current_frame,
                        created_at_ms=now,
                        task=outcome.task,
                        caused_by=self.turn_id,
                    )
                )
                for index, msg in enumerate(outcome.initial_messages):
                    node = SessionNode(
                        node_id=f"{self.turn_id}:seed{index}:{new_id()[:8]}",
                        parent_node_id=parent,
                        agent_frame_id=outcome.frame_id,
                        timestamp_ms=now,
                        payload=MessagePayload(message=msg),
                    )
                    nodes.append(node)
                    parent = node.node_id
                current_frame = outcome.frame_id
            if self.req.claims:
                outbox.append(
                    QueuedWorkBatchDraft(
                        session_id=self.session_id,
                        payloads=(
                            AgentFrameTask(frame_id=outcome.frame_id, task=outcome.task or ""),
                        ),
                        source_key=f"agent-frame-handoff:{self.turn_id}",
                        slot_policy="exclusive",
                    )
                )
        usage_entries: list[TokenLedgerEntry] = []
        if not result.usage.is_zero():
            usage_entries.append(
                TokenLedgerEntry(source="turn", model=self.cfg.model.id, usage=result.usage)
            )
        usage_deltas = merge_ledger([*usage_entries, *result.children_usage])
        last_prompt = result.llm_calls[-1].usage if result.llm_calls else None
        plugin_state = dict(state.checkpoint.plugin_state)
        for plugin in self.plugins:
            plugin_state[plugin.id] = plugin.snapshot_state()
        checkpoint: SessionCheckpoint = state.with_checkpoint(
            turn_index=self.turn_index,
            token_usage=last_prompt or state.checkpoint.token_usage,
            last_prompt_usage=last_prompt or state.checkpoint.last_prompt_usage,
            plugin_state=plugin_state,
        )
        release = self.req.release_lease and switch is None
        commit = RuntimeCommit(
            session_id=self.session_id,
            graph=GraphAppend(nodes=tuple(nodes), leaf_node_id=parent),
            checkpoint=checkpoint,
            config=SessionConfig(provider_id=self.cfg.provider_id, model=self.cfg.model.id),
            expected_head_revision=state.head_revision,
            lease=self.guard.fence if self.guard is not None else None,
            release_lease=release,
            agent_frames=tuple(frames),
            current_agent_frame_id=current_frame,
            usage_deltas=tuple(usage_deltas),
            completed_queue_claims=self.req.claims.queue_completions(),
            completed_turn_input_claims=self.req.claims.input_completions(),
            enqueued_queue_batches=tuple(outbox),
            interrupted_turn_input_turn_id=self.turn_id,
            committed_attachment_ids=tuple(dict.fromkeys(self.attachment_ids)),
            result=to_builtins(result),
        ).stamped(self.turn_id)
        store = self.cfg.store
        if store is None:
            commit_result = RuntimeCommitResult(head_revision=state.head_revision + 1)
        else:
            try:
                commit_result = await store.commit(commit)
            except StoreError as err:
                if err.kind is StoreErrorKind.SESSION_EXECUTION_LEASE_EXPIRED and self.guard:
                    self.guard.lost = True
                raise store_error_to_runtime(err) from err
        if commit_result.replayed and commit_result.result is not None:
            result = decode(_json(commit_result.result), type=TurnResult)
        else:
            result = msgspec.structs.replace(result, head_revision=commit_result.head_revision)
        for node in nodes:
            state.graph.append(node)
        state.graph.mark_committed()
        state.head_revision = commit_result.head_revision
        state.checkpoint = checkpoint
        state.agent_frames = frames
        state.current_frame_id = current_frame
        state.add_usage(list(usage_deltas))
        if self.guard is not None:
            state.lease_generation = self.guard.generation
            if release:
                self.guard.mark_released()
        self.req.claims.clear()
        if store is not None and self.attachment_ids:
            with contextlib.suppress(StoreError):
                await self.cfg.attachments.commit_refs(self.session_id, self.attachment_ids)
        self.host.turn_control.publish_terminal(self.session_id, self.turn_id, result)
        self.tracer.emit(
            "turn_completed",
            {
                "status": result.outcome.kind,
                "done_reason": result.outcome.reason,
                "agent_frame_switch": switch is not None,
                "head_revision": result.head_revision,
                "usage": result.usage,
            },
        )
        return TurnEnd(result=result, commit=commit_result, frame_switch=switch)


class _TurnBatchDispatch:
    """The running turn's dispatcher for one ``batch`` call's children.

    Each child is a tool call of its own (``{batch_id}:{index:02}``, linked to the batch
    call by ``parent_call_id``) with its own hooks, attempts and replay key. Children run
    concurrently unless the effect host runs effects one at a time.
    """

    __slots__ = ("_call", "_contexts", "_key", "_turn")

    def __init__(
        self, turn: PhysicalTurn, call: ToolCallPart, key: str, contexts: list[ToolContext]
    ) -> None:
        self._turn = turn
        self._call = call
        self._key = key
        self._contexts = contexts

    def callable(self, name: str) -> bool:
        turn = self._turn
        return name in turn.granted or (name in turn._advertised() and name != BATCH_TOOL_NAME)

    async def run(self, children: Sequence[BatchChild]) -> list[BatchChildOutcome]:
        if self._turn.host.supports_concurrent_effects:
            return list(await asyncio.gather(*(self._one(c) for c in children)))
        return [await self._one(child) for child in children]

    async def _one(self, child: BatchChild) -> BatchChildOutcome:
        turn, parent = self._turn, self._call
        call = ToolCallPart(
            id=f"{parent.id}:{child.index:02}", name=child.tool, arguments=child.arguments
        )
        await turn.emitter.emit(
            ToolCallStarted(
                name=call.name, args=child.arguments, call_id=call.id, parent_call_id=parent.id
            ),
            call.id,
        )
        started = turn.cfg.clock.now_ms()
        output = await turn._dispatch_call(
            call, f"{self._key}:batch:{child.index}:{call.id}", self._contexts, parent.id
        )
        duration = max(0, turn.cfg.clock.now_ms() - started)
        await turn.emitter.emit(
            ToolCallCompleted(
                name=call.name,
                args=child.arguments,
                output=output,
                duration_ms=duration,
                call_id=call.id,
                parent_call_id=parent.id,
            ),
            call.id,
        )
        return BatchChildOutcome(output=output, duration_ms=duration)


def _json(value: Any) -> bytes:
    from lash.types import encode

    return encode(value)


def _malformed_arguments(call: ToolCallPart) -> str | None:
    raw = call.raw_arguments
    if raw is None or not raw.strip():
        return None
    try:
        parsed = decode(raw)
    except msgspec.DecodeError as err:
        return f"tool arguments for {call.name!r} are not valid JSON: {err}"
    if not isinstance(parsed, dict):
        return f"tool arguments for {call.name!r} must be a JSON object"
    return None


def render_causes(claim: QueuedWorkClaim, turn_id: str) -> list[Message]:
    """Queued turn work rendered as prompt messages (frame tasks become the task text)."""
    from lash.types import ProcessWake

    lines: list[str] = []
    tasks: list[str] = []
    for batch in claim.batches:
        for item in batch.items:
            payload = item.payload
            if isinstance(payload, ProcessWake):
                lines.append(_json(payload.wake).decode())
            elif isinstance(payload, AgentFrameTask):
                tasks.append(payload.task)
    out: list[Message] = []
    if lines:
        out.append(
            Message(
                id=f"{turn_id}:causes:{claim.claim_id}",
                role="user",
                parts=(TextPart(text="=== TURN EVENTS ===\n" + "\n".join(lines)),),
            )
        )
    for index, task in enumerate(tasks):
        out.append(Message(id=f"{turn_id}:task:{index}", role="user", parts=(TextPart(text=task),)))
    return out
