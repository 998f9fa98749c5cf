"""The sans-IO turn machine: responses in, effects out.

Theory of operation
-------------------
A :class:`TurnMachine` runs one physical turn. It never performs I/O: :meth:`TurnMachine.start`
and :meth:`TurnMachine.handle` return lists of :data:`~lash.kernel.effects.Effect`. Each list
is zero or more fire-and-forget effects (``Emit``, ``Progress``) followed by exactly one
*reply-producing* effect (``LlmCall``, ``ToolBatch``, ``Checkpoint``) that the driver must
answer, or by ``Done``. The machine then waits for the response echoing that effect's id;
a response carrying any other id is ignored (it is stale or a duplicate).

States::

    PREPARING --start--> WAITING_LLM <--> WAITING_TOOLS / WAITING_CHECKPOINT --> FINISHED
                   (any non-terminal state) --invalid response--> FAILED

``FINISHED`` and ``FAILED`` are sticky: every later call raises :class:`MachineUsageError`
and changes nothing. A call that is illegal in the current state also raises
:class:`MachineUsageError` and leaves the machine as it was. A response that is malformed
(wrong kind for the awaited effect, tool results that do not match the batch, unknown part
kinds) raises :class:`ProtocolViolation` and moves the machine to ``FAILED``.

The generic rules live here: effect ids (a counter from 1), replay keys, the terminal-reason
table, usage accounting, progress, cancellation, checkpoint delivery and snapshots. What to do
with a model response or a tool batch is decided by a :class:`~lash.kernel.driver.ProtocolDriver`
(the Standard driver by default).

No tool call is ever left without its result: whenever the turn ends while a batch is
outstanding (cancel, an effect-host failure, a protocol violation) the machine appends a
synthetic error result for every pending call first.
"""

from __future__ import annotations

import enum
import operator
from collections.abc import Sequence
from typing import Literal, NoReturn

import msgspec

from lash.kernel.config import MachineConfig
from lash.kernel.driver import (
    AdvanceIteration,
    AppendMessage,
    DriverAction,
    EmitEvent,
    Finish,
    ProtocolDriver,
    RecordIssue,
    StartCheckpoint,
    StartLlm,
    StartTools,
)
from lash.kernel.effects import (
    Checkpoint,
    CheckpointDelivered,
    Done,
    Effect,
    EffectFailed,
    Emit,
    LlmCall,
    LlmCompleted,
    LlmFailed,
    Progress,
    ToolBatch,
    ToolResult,
    ToolResults,
    turn_replay_key,
)
from lash.kernel.prompt import build_llm_request, prompt_messages
from lash.kernel.standard import StandardDriver
from lash.types import (
    CheckpointKind,
    ErrorEvent,
    LlmRequest,
    LlmResponse,
    Message,
    ModelRequestStarted,
    Part,
    ProviderFailure,
    ReasoningPart,
    Role,
    TerminalReason,
    TextPart,
    TokenUsage,
    ToolCallOutput,
    ToolCallPart,
    ToolResultPart,
    TurnIssue,
    TurnOutcome,
    UsageEvent,
)
from lash.types._base import Record

__all__ = [
    "CONTEXT_OVERFLOW_PERCENT",
    "AwaitedEffect",
    "KernelError",
    "MachineSnapshot",
    "MachineState",
    "MachineUsageError",
    "ProtocolViolation",
    "TurnMachine",
    "stop_reason_for",
]

SNAPSHOT_VERSION = 1

CONTEXT_OVERFLOW_PERCENT = 95
"""An output-limit stop counts as a context overflow once the prompt used this share of the
window: the model had no room left to answer, so "incomplete" would mislead."""

_STOP_REASON_BY_TERMINAL: dict[str, str] = {
    "output_limit": "incomplete",
    "context_overflow": "provider_error",
    "content_filter": "provider_error",
    "provider_error": "provider_error",
    "cancelled": "cancelled",
}


def stop_reason_for(terminal_reason: TerminalReason) -> str | None:
    """The stop reason a terminal reason forces, or ``None`` when the protocol decides."""
    return _STOP_REASON_BY_TERMINAL.get(terminal_reason)


class KernelError(Exception):
    """Base of the kernel's exceptions; ``code`` is stable, the message is for humans."""

    code: str = "kernel_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class MachineUsageError(KernelError):
    """A call that is illegal in the machine's current state; the state is unchanged."""

    code = "machine_usage"


class ProtocolViolation(KernelError):
    """A malformed response; the machine has moved to ``FAILED``."""

    code = "protocol_violation"


class MachineState(enum.Enum):
    """Where the machine is in the turn."""

    PREPARING = "preparing"
    WAITING_LLM = "waiting_llm"
    WAITING_TOOLS = "waiting_tools"
    WAITING_CHECKPOINT = "waiting_checkpoint"
    FINISHED = "finished"
    FAILED = "failed"


_TERMINAL_STATES = frozenset({MachineState.FINISHED, MachineState.FAILED})
_WAITING_BY_KIND = {
    "llm_call": MachineState.WAITING_LLM,
    "tool_batch": MachineState.WAITING_TOOLS,
    "checkpoint": MachineState.WAITING_CHECKPOINT,
}

EffectKind = Literal["llm_call", "tool_batch", "checkpoint"]


class AwaitedEffect(Record, frozen=True, kw_only=True):
    """The reply-producing effect the machine is waiting on (enough to re-issue it)."""

    kind: EffectKind
    effect_id: int
    replay_key: str
    protocol_iteration: int
    calls: tuple[ToolCallPart, ...] = ()
    checkpoint: CheckpointKind | None = None
    on_empty: TurnOutcome | None = None
    """For a checkpoint: finish with this when nothing is delivered (``None``: next round)."""


class MachineSnapshot(Record, frozen=True, kw_only=True):
    """Everything a machine is; :meth:`TurnMachine.restore` rebuilds an equivalent one."""

    version: int
    """Bumped when the layout changes; required so an old record never passes as new."""
    protocol: str
    config: MachineConfig
    history: tuple[Message, ...] = ()
    turn_messages: tuple[Message, ...] = ()
    state: MachineState
    last_effect_id: int = 0
    message_seq: int = 0
    protocol_iteration: int = 0
    cumulative_usage: TokenUsage = msgspec.field(default_factory=TokenUsage)
    awaiting: AwaitedEffect | None = None
    outcome: TurnOutcome | None = None
    issues: tuple[TurnIssue, ...] = ()


_CANCELLED_TOOL_TEXT = "Tool call cancelled before it completed."
_MESSAGE_ID = operator.attrgetter("id")


class TurnMachine:
    """One physical turn as a pure state machine (see the module docstring)."""

    def __init__(
        self,
        config: MachineConfig,
        history: Sequence[Message] = (),
        turn_messages: Sequence[Message] = (),
        *,
        driver: ProtocolDriver | None = None,
    ) -> None:
        self._config = config
        self._driver: ProtocolDriver = driver if driver is not None else StandardDriver()
        self._history = tuple(history)
        self._history_prompt: tuple[Message, ...] | None = None  # projected once per turn
        self._messages: list[Message] = list(turn_messages)
        self._state = MachineState.PREPARING
        self._last_effect_id = 0
        self._message_seq = 0
        self._iteration = config.protocol_iteration_offset
        self._usage = TokenUsage()
        self._awaiting: AwaitedEffect | None = None
        self._outcome: TurnOutcome | None = None
        self._issues: list[TurnIssue] = []

    # --- read-only views ----------------------------------------------------------------

    @property
    def config(self) -> MachineConfig:
        """The machine's configuration."""
        return self._config

    @property
    def state(self) -> MachineState:
        """The current state."""
        return self._state

    @property
    def history(self) -> tuple[Message, ...]:
        """Messages before this turn (the prompt view it started from)."""
        return self._history

    @property
    def turn_messages(self) -> tuple[Message, ...]:
        """The turn's input message(s) plus every message the turn appended so far."""
        return tuple(self._messages)

    @property
    def context_messages(self) -> tuple[Message, ...]:
        """History followed by the turn's messages."""
        return (*self._history, *self._messages)

    @property
    def cumulative_usage(self) -> TokenUsage:
        """Usage reported by every model call of the turn so far."""
        return self._usage

    @property
    def outcome(self) -> TurnOutcome | None:
        """How the turn ended (``None`` while it runs)."""
        return self._outcome

    @property
    def issues(self) -> tuple[TurnIssue, ...]:
        """Problems observed so far."""
        return tuple(self._issues)

    @property
    def protocol_iteration(self) -> int:
        """The current protocol iteration (starts at the configured offset)."""
        return self._iteration

    @property
    def max_turns(self) -> int | None:
        """The configured iteration cap."""
        return self._config.max_turns

    @property
    def iteration_limit(self) -> int | None:
        """``offset + max_turns``."""
        return self._config.iteration_limit

    @property
    def is_done(self) -> bool:
        """True once the machine is ``FINISHED`` or ``FAILED``."""
        return self._state in _TERMINAL_STATES

    @property
    def awaiting(self) -> AwaitedEffect | None:
        """The effect the machine waits on, if any."""
        return self._awaiting

    @property
    def pending_effect(self) -> LlmCall | ToolBatch | Checkpoint | None:
        """The awaited effect, rebuilt exactly as it was issued (for re-execution on resume)."""
        if self._awaiting is None:
            return None
        return self._effect_for(self._awaiting)

    # --- inputs -------------------------------------------------------------------------

    def start(self) -> list[Effect]:
        """Begin the turn: the first protocol iteration (normally the first model call)."""
        if self._state is not MachineState.PREPARING:
            raise MachineUsageError(
                f"start() is only valid while preparing (state {self._state.value})"
            )
        try:
            return self._run_actions(self._driver.prepare_iteration(self))
        except ProtocolViolation as exc:
            self._fail(exc)
            raise

    def handle(self, response: object) -> list[Effect]:
        """Feed the response to the awaited effect; returns the next effects.

        A response whose ``effect_id`` is not the awaited one returns ``[]`` and changes
        nothing.

        Raises:
            MachineUsageError: the machine is finished, failed, or not yet started.
            ProtocolViolation: the response is malformed (the machine is now ``FAILED``).
        """
        self._require_running("handle")
        if self._state is MachineState.PREPARING:
            raise MachineUsageError("handle() before start(): nothing is awaited yet")
        if not isinstance(
            response, LlmCompleted | LlmFailed | ToolResults | CheckpointDelivered | EffectFailed
        ):
            raise MachineUsageError(f"not a response: {type(response).__name__}")
        awaited = self._awaiting
        assert awaited is not None
        if response.effect_id != awaited.effect_id:
            return []
        try:
            if isinstance(response, EffectFailed):
                return self._on_effect_failed(awaited, response)
            if awaited.kind == "llm_call" and isinstance(response, LlmCompleted):
                return self._on_llm_completed(response)
            if awaited.kind == "llm_call" and isinstance(response, LlmFailed):
                return self._on_llm_failed(response)
            if awaited.kind == "tool_batch" and isinstance(response, ToolResults):
                return self._on_tool_results(awaited, response)
            if awaited.kind == "checkpoint" and isinstance(response, CheckpointDelivered):
                return self._on_checkpoint(awaited, response)
            self._violation(f"{type(response).__name__} does not answer a {awaited.kind} effect")
        except ProtocolViolation as exc:
            self._fail(exc)
            raise

    def cancel(self) -> list[Effect]:
        """Stop the turn as cancelled from any non-terminal state.

        While a tool batch is outstanding, a synthetic cancelled result is appended for every
        pending call first, so no tool call lacks its result.
        """
        self._require_running("cancel")
        effects: list[Effect] = []
        if self._awaiting is not None and self._awaiting.kind == "tool_batch":
            self._append_synthetic_results(self._awaiting.calls, _CANCELLED_TOOL_TEXT)
            effects.append(Progress(messages=self.turn_messages))
        self._finish(TurnOutcome.stopped("cancelled"))
        effects.append(Done(outcome=TurnOutcome.stopped("cancelled"), issues=self.issues))
        return effects

    # --- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> MachineSnapshot:
        """A serialisable record of the whole machine."""
        return MachineSnapshot(
            version=SNAPSHOT_VERSION,
            protocol=self._driver.protocol_id,
            config=self._config,
            history=self._history,
            turn_messages=self.turn_messages,
            state=self._state,
            last_effect_id=self._last_effect_id,
            message_seq=self._message_seq,
            protocol_iteration=self._iteration,
            cumulative_usage=self._usage,
            awaiting=self._awaiting,
            outcome=self._outcome,
            issues=self.issues,
        )

    @classmethod
    def restore(
        cls, snapshot: MachineSnapshot, *, driver: ProtocolDriver | None = None
    ) -> TurnMachine:
        """Rebuild a machine that behaves exactly like the one that was snapshotted.

        Raises:
            ValueError: the snapshot is from another protocol or an unknown version.
        """
        if snapshot.version != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported machine snapshot version {snapshot.version}")
        chosen: ProtocolDriver = driver if driver is not None else StandardDriver()
        if chosen.protocol_id != snapshot.protocol:
            raise ValueError(
                f"snapshot is for protocol {snapshot.protocol!r}, driver is {chosen.protocol_id!r}"
            )
        waiting = snapshot.awaiting
        if (waiting is None) != (
            snapshot.state in _TERMINAL_STATES or snapshot.state is MachineState.PREPARING
        ) or (waiting is not None and _WAITING_BY_KIND[waiting.kind] is not snapshot.state):
            raise ValueError("inconsistent machine snapshot: awaited effect does not match state")
        m = cls(snapshot.config, snapshot.history, snapshot.turn_messages, driver=chosen)
        m._state = snapshot.state
        m._last_effect_id = snapshot.last_effect_id
        m._message_seq = snapshot.message_seq
        m._iteration = snapshot.protocol_iteration
        m._usage = snapshot.cumulative_usage
        m._awaiting = waiting
        m._outcome = snapshot.outcome
        m._issues = list(snapshot.issues)
        return m

    # --- response handlers --------------------------------------------------------------

    def _on_llm_completed(self, response: LlmCompleted) -> list[Effect]:
        llm = response.response
        if not isinstance(llm, LlmResponse):
            self._violation("LlmCompleted.response is not an LlmResponse")
        self._validate_response_parts(llm)
        self._validate_calls(llm.tool_calls, allow_empty=True)
        effects: list[Effect] = []
        terminal = llm.terminal_reason
        usage = llm.usage
        if usage is not None:
            self._usage = self._usage + usage
            effects.append(
                Emit(
                    event=UsageEvent(
                        protocol_iteration=self._iteration, usage=usage, cumulative=self._usage
                    )
                )
            )
        if terminal == "output_limit" and self._prompt_filled_window(usage):
            terminal = "context_overflow"
        stop = stop_reason_for(terminal)
        if stop is not None:
            if terminal != "cancelled":
                message = f"Model response ended with terminal reason {terminal}."
                self._issues.append(
                    TurnIssue(
                        kind="llm_provider",
                        code=terminal,
                        terminal_reason=terminal,
                        message=message,
                    )
                )
                effects.append(Emit(event=ErrorEvent(message=message, code=terminal)))
            return effects + self._done(TurnOutcome.stopped(stop), dirty=False)
        actions = self._driver.on_llm_response(self, llm, text_streamed=response.text_streamed)
        return effects + self._run_actions(actions)

    def _on_llm_failed(self, response: LlmFailed) -> list[Effect]:
        failure = response.failure
        if not isinstance(failure, ProviderFailure):
            self._violation("LlmFailed.failure is not a ProviderFailure")
        if failure.terminal_reason == "cancelled":
            return self._done(TurnOutcome.stopped("cancelled"), dirty=False)
        code = failure.code or failure.kind
        self._issues.append(
            TurnIssue(
                kind="llm_provider",
                code=code,
                terminal_reason=failure.terminal_reason,
                message=failure.message,
                retryable=failure.retryable,
                provider_failure_kind=failure.kind,
                raw=failure.raw,
            )
        )
        error = Emit(event=ErrorEvent(message=f"LLM error: {failure.message}", code=code))
        return [error, *self._done(TurnOutcome.stopped("provider_error"), dirty=False)]

    def _on_tool_results(self, awaited: AwaitedEffect, response: ToolResults) -> list[Effect]:
        results = response.results
        calls = awaited.calls
        if response.cancelled:
            if len(results) > len(calls):
                self._violation("more tool results than calls in the batch")
        elif len(results) != len(calls):
            self._violation(f"expected {len(calls)} tool results, got {len(results)}")
        # Cancelled batches may report a subset, still in call order.
        position = 0
        for result in results:
            if not isinstance(result, ToolResult):
                self._violation("tool results must be ToolResult records")
            while position < len(calls) and calls[position].id != result.call.id:
                if not response.cancelled:
                    break
                position += 1
            if position >= len(calls) or calls[position].id != result.call.id:
                self._violation(f"tool result for {result.call.id!r} does not match the batch")
            if calls[position].name != result.call.name:
                self._violation(f"tool result for {result.call.id!r} names another tool")
            ret = result.model_return
            if not isinstance(ret, ToolResultPart) or ret.tool_call_id != result.call.id:
                self._violation(f"model_return of {result.call.id!r} is not its tool result")
            if not isinstance(result.output, ToolCallOutput):
                self._violation(f"output of {result.call.id!r} is not a ToolCallOutput")
            position += 1
        if response.cancelled:
            answered = {r.call.id for r in results}
            for result in results:
                self._append("tool", (result.model_return,))
            missing = tuple(c for c in calls if c.id not in answered)
            self._append_synthetic_results(missing, _CANCELLED_TOOL_TEXT)
            return self._done(TurnOutcome.stopped("cancelled"), dirty=True)
        return self._run_actions(self._driver.on_tool_results(self, results))

    def _on_checkpoint(self, awaited: AwaitedEffect, response: CheckpointDelivered) -> list[Effect]:
        fresh: list[Message] = []
        seen: set[str] = set()
        if response.messages:  # most checkpoints deliver nothing: skip the O(history) set
            seen.update(map(_MESSAGE_ID, self._history))
            seen.update(map(_MESSAGE_ID, self._messages))
        for message in response.messages:
            if not isinstance(message, Message):
                self._violation("checkpoint deliveries must be Message records")
            if message.id in seen:
                continue
            seen.add(message.id)
            fresh.append(message)
        if not fresh:
            if awaited.on_empty is not None:
                return self._done(awaited.on_empty, dirty=False)
            return self._run_actions(self._driver.prepare_iteration(self))
        self._messages.extend(fresh)
        if awaited.checkpoint == "before_completion":
            # Injected input forces another model round, within the iteration cap.
            self._iteration += 1
            if self._limit_reached():
                return self._turn_limit_stop()
        return self._run_actions(self._driver.prepare_iteration(self), dirty=True)

    def _on_effect_failed(self, awaited: AwaitedEffect, response: EffectFailed) -> list[Effect]:
        dirty = False
        if awaited.kind == "tool_batch":
            text = f"Tool call was not executed: {response.code}: {response.message}"
            self._append_synthetic_results(awaited.calls, text)
            dirty = True
        self._issues.append(
            TurnIssue(
                kind="runtime_effect_controller", code=response.code, message=response.message
            )
        )
        error = Emit(event=ErrorEvent(message=response.message, code=response.code))
        return [error, *self._done(TurnOutcome.stopped("runtime_error"), dirty=dirty)]

    # --- action interpreter -------------------------------------------------------------

    def _run_actions(self, actions: Sequence[DriverAction], *, dirty: bool = False) -> list[Effect]:
        """Apply driver actions in order; the last must be a step action."""
        effects: list[Effect] = []
        if not actions:
            self._violation("protocol driver returned no actions")
        for index, action in enumerate(actions):
            last = index == len(actions) - 1
            if isinstance(action, EmitEvent):
                effects.append(Emit(event=action.event))
            elif isinstance(action, AppendMessage):
                self._append(action.role, action.parts)
                dirty = True
            elif isinstance(action, RecordIssue):
                self._issues.append(action.issue)
            elif isinstance(action, AdvanceIteration):
                self._iteration += 1
            elif not last:
                self._violation(f"protocol driver action {type(action).__name__} must come last")
            elif isinstance(action, Finish):
                return effects + self._done(action.outcome, dirty=dirty)
            elif isinstance(action, StartLlm | StartTools | StartCheckpoint):
                if dirty:
                    effects.append(Progress(messages=self.turn_messages))
                effects.extend(self._issue(action))
                return effects
            else:
                self._violation(f"unknown protocol driver action {action!r}")
        self._violation("protocol driver actions did not end with a step")

    def _issue(self, action: StartLlm | StartTools | StartCheckpoint) -> list[Effect]:
        self._last_effect_id += 1
        eid = self._last_effect_id
        kind: EffectKind
        if isinstance(action, StartLlm):
            kind = "llm_call"
        elif isinstance(action, StartTools):
            kind = "tool_batch"
            self._validate_calls(action.calls)
        else:
            kind = "checkpoint"
        key = turn_replay_key(
            self._config.session_id,
            self._config.turn_id,
            self._config.turn_index,
            self._iteration,
            kind,
            eid,
        )
        awaited = AwaitedEffect(
            kind=kind,
            effect_id=eid,
            replay_key=key,
            protocol_iteration=self._iteration,
            calls=action.calls if isinstance(action, StartTools) else (),
            checkpoint=action.kind if isinstance(action, StartCheckpoint) else None,
            on_empty=action.on_empty if isinstance(action, StartCheckpoint) else None,
        )
        self._awaiting = awaited
        self._state = _WAITING_BY_KIND[kind]
        effect = self._effect_for(awaited)
        if isinstance(effect, LlmCall):
            started = Emit(event=ModelRequestStarted(protocol_iteration=self._iteration))
            return [started, effect]
        return [effect]

    def _effect_for(self, awaited: AwaitedEffect) -> LlmCall | ToolBatch | Checkpoint:
        if awaited.kind == "llm_call":
            return LlmCall(
                effect_id=awaited.effect_id,
                replay_key=awaited.replay_key,
                protocol_iteration=awaited.protocol_iteration,
                request=self._request(awaited.replay_key),
            )
        if awaited.kind == "tool_batch":
            return ToolBatch(
                effect_id=awaited.effect_id,
                replay_key=awaited.replay_key,
                protocol_iteration=awaited.protocol_iteration,
                calls=awaited.calls,
            )
        assert awaited.checkpoint is not None
        return Checkpoint(
            effect_id=awaited.effect_id,
            replay_key=awaited.replay_key,
            protocol_iteration=awaited.protocol_iteration,
            kind=awaited.checkpoint,
        )

    def _request(self, replay_key: str) -> LlmRequest:
        if self._history_prompt is None:
            self._history_prompt = prompt_messages(self._history)
        messages = (*self._history_prompt, *prompt_messages(self._messages))
        return build_llm_request(self._config, messages, request_id=replay_key, projected=True)

    # --- helpers ------------------------------------------------------------------------

    def _done(self, outcome: TurnOutcome, *, dirty: bool) -> list[Effect]:
        effects: list[Effect] = []
        if dirty:
            effects.append(Progress(messages=self.turn_messages))
        self._finish(outcome)
        effects.append(Done(outcome=outcome, issues=self.issues))
        return effects

    def _finish(self, outcome: TurnOutcome) -> None:
        self._outcome = outcome
        self._awaiting = None
        self._state = MachineState.FINISHED

    def _limit_reached(self) -> bool:
        limit = self._config.iteration_limit
        return limit is not None and self._iteration >= limit

    def _turn_limit_stop(self) -> list[Effect]:
        assert self._config.max_turns is not None
        text = self._driver.turn_limit_text(self._config.max_turns)
        self._append("system", (TextPart(text=text),))
        return self._done(TurnOutcome.stopped("max_turns"), dirty=True)

    def _append(self, role: Role, parts: tuple[Part, ...]) -> Message:
        # Ids are "{turn_id}:m{n}"; skip any n already taken by a delivered message, so ids stay
        # unique and remain a pure function of the machine's state.
        taken = {m.id for m in self._messages}
        while True:
            self._message_seq += 1
            message_id = f"{self._config.turn_id}:m{self._message_seq}"
            if message_id not in taken:
                break
        message = Message(id=message_id, role=role, parts=parts)
        self._messages.append(message)
        return message

    def _append_synthetic_results(self, calls: Sequence[ToolCallPart], text: str) -> None:
        for call in calls:
            part = ToolResultPart(tool_call_id=call.id, name=call.name, content=text, is_error=True)
            self._append("tool", (part,))

    def _prompt_filled_window(self, usage: TokenUsage | None) -> bool:
        window = self._config.context_window
        if usage is None or window is None:
            return False
        return usage.input_total() * 100 >= window * CONTEXT_OVERFLOW_PERCENT

    def _require_running(self, what: str) -> None:
        if self._state in _TERMINAL_STATES:
            raise MachineUsageError(f"{what}() after the turn ended (state {self._state.value})")

    def _validate_response_parts(self, response: LlmResponse) -> None:
        for part in response.parts:
            if not isinstance(part, TextPart | ReasoningPart | ToolCallPart):
                self._violation(f"unsupported response part {type(part).__name__}")

    def _validate_calls(self, calls: Sequence[ToolCallPart], *, allow_empty: bool = False) -> None:
        if not calls and not allow_empty:
            self._violation("a tool batch needs at least one call")
        ids: set[str] = set()
        for call in calls:
            if not call.id:
                self._violation(f"tool call to {call.name!r} has no id")
            if call.id in ids:
                self._violation(f"duplicate tool call id {call.id!r} in one response")
            ids.add(call.id)

    def _violation(self, message: str) -> NoReturn:
        raise ProtocolViolation(message)

    def _fail(self, exc: ProtocolViolation) -> None:
        """Move to ``FAILED``, leaving the transcript well-formed for whoever commits it."""
        awaited = self._awaiting
        if awaited is not None and awaited.kind == "tool_batch":
            # Responses are validated before anything is appended, so no call has a result yet.
            text = f"Tool call result was rejected: {exc.message}"
            self._append_synthetic_results(awaited.calls, text)
        self._issues.append(TurnIssue(kind="runtime", code=exc.code, message=exc.message))
        self._outcome = TurnOutcome.stopped("runtime_error")
        self._awaiting = None
        self._state = MachineState.FAILED
