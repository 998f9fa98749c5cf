"""``RestateEffectHost``: every atomic effect of a turn is one journaled ``ctx.run``.

The step is named ``lash:<replay key>`` and records ``{kind, key, envelope hash, canonical
envelope, outcome | error}`` as JSON. Errors are data: an effect whose closure raised is
recorded as failed and raises the same error again on every replay, so a redrive never turns
a recorded failure into a fresh attempt. On replay Restate hands back the recorded step
without running the closure; the host rebuilds the envelope, compares it with the recorded
one, and stops with ``restate_effect_hash_mismatch`` naming the first diverging JSON path
when they differ (remembering whether more journal follows, which decides whether the
handler can end the invocation terminally; see ``service.replay_failure``).

Restate journals are positional, so effects run one at a time
(:attr:`supports_concurrent_effects` is ``False``).

Sleep effects are durable timers named ``lash:<replay key>``, raced with the turn's cancel
gate; a redrive replays a fired timer instead of sleeping again. Each tool attempt and each
model-call attempt is its own step (``<call key>:attempt:<n>``, ``<llm key>:attempt:<n>``) and
the retry back-off between two of them is such a timer (``<call key>:attempt:<n>:sleep``,
``<llm key>:retry:<n>:sleep``), so a worker killed during a back-off resumes at the timer and
never runs the earlier attempt again. Restate allows no timer inside a journaled closure, so a
sleep made while an effect's closure runs (e.g. a retry inside a tool's own direct
completion) is the configured local sleep.

Durable waits (a tool returned :func:`lash.tools.pending`) are workflow promises named
``lash.await:<key id>``: the turn enters the wait in its session's wait index, then parks on
the promise (raced with the cancel gate and, with a deadline, a durable timer), so it
survives worker death and Restate restarts, and session sweeps reach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol, TypeVar

import msgspec
import restate
from restate import RunOptions, TerminalError
from restate.serde import BytesSerde
from restate.server_context import restate_context_is_replaying

from lash.durable.envelope import canonical, canonical_json, diverging_paths, envelope_hash
from lash.durable.outcome import dump_outcome, load_outcome
from lash.durable.restate.waits import (
    MissingSecretSigner,
    await_promise_name,
    index_call,
    resolve_wait_promise,
)
from lash.errors import LashRuntimeError
from lash.runtime.await_events import (
    AWAIT_EVENT_UNKNOWN_OR_REVOKED,
    AWAIT_EVENT_UNSUPPORTED,
    AwaitEventKey,
    AwaitEventSigner,
    Resolution,
    ResolveReceipt,
    WaitIdentity,
)
from lash.runtime.effect_host import GateState, LocalSleep, TurnControl
from lash.runtime.scope import ExecutionScope
from lash.stores.base import DurabilityTier
from lash.types import CancellationEvidence

__all__ = [
    "EFFECT_HASH_MISMATCH",
    "CancelProbe",
    "JournalingContext",
    "RecordedEffectError",
    "ReplayDivergence",
    "RestateEffectHost",
    "effect_step_name",
]

T = TypeVar("T")

EFFECT_HASH_MISMATCH = "restate_effect_hash_mismatch"
"""The code of a replay whose freshly built envelope differs from the recorded one."""

_RECORD_VERSION = 1

CancelProbe = Callable[[], Awaitable[CancellationEvidence | None]]
"""Reads a turn's durable cancel gate (e.g. a Restate promise peek): its evidence, or None."""


class JournalingContext(Protocol):
    """The part of a Restate handler context the host uses (a fake one in unit tests)."""

    def run_typed(
        self, name: str, action: Callable[[], Awaitable[bytes]], options: RunOptions[bytes], /
    ) -> Awaitable[bytes]:
        """Run ``action`` once and journal its bytes; on replay return the journaled bytes."""
        ...


class ReplayDivergence(msgspec.Struct, frozen=True, kw_only=True):
    """A replay mismatch, and whether the diverging step was the last one journaled (then the
    handler may still end the invocation terminally)."""

    message: str
    at_journal_end: bool


class RecordedEffectError(Exception):
    """An effect's recorded failure, raised again on every replay of it."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


class _Record(msgspec.Struct, frozen=True, kw_only=True):
    v: int
    kind: str
    key: str
    envelope_hash: str
    envelope: str
    outcome: Any = None
    error: dict[str, str] | None = None


def effect_step_name(replay_key: str) -> str:
    """The journal step name of an effect."""
    return f"lash:{replay_key}"


class RestateEffectHost:
    """A durable effect host bound to one Restate handler invocation (one per turn)."""

    def __init__(
        self,
        ctx: JournalingContext,
        *,
        turn_control: TurnControl | None = None,
        cancel_probe: CancelProbe | None = None,
        workflow: Any = None,
        signer: AwaitEventSigner | None = None,
        cancel_promise: str | None = None,
        index: str | None = None,
        replaying: Callable[[], bool] | None = None,
    ) -> None:
        """``workflow`` (the run handler's ``WorkflowContext``) and ``signer`` enable durable
        waits and timers; ``cancel_promise`` names the turn's cancel gate (a
        :class:`GateState` promise) that parked waits and sleeps race; ``index`` names the
        session wait index that makes the turn's waits reachable by session sweeps;
        ``replaying`` says whether journal entries are still ahead (Restate's own flag by
        default)."""
        self._ctx = ctx
        self._workflow = workflow
        self._signer = signer if signer is not None else MissingSecretSigner()
        self._cancel_promise = cancel_promise
        self._index = index
        self._in_effect = 0
        self.mismatch: ReplayDivergence | None = None
        """Set when a replayed effect was rebuilt differently than its journal record."""
        self._mismatch_error: LashRuntimeError | None = None
        self._replaying = replaying if replaying is not None else _replay_flag(ctx)
        self._control = turn_control if turn_control is not None else TurnControl()
        self._probe = cancel_probe
        self._options: RunOptions[bytes] = RunOptions(serde=BytesSerde())
        self.executed: list[str] = []
        """Replay keys whose closures ran in this process (not replayed from the journal)."""

    @property
    def tier(self) -> DurabilityTier:
        """Durable: outcomes live in the Restate journal."""
        return DurabilityTier.DURABLE

    @property
    def turn_control(self) -> TurnControl:
        """This invocation's cancel gate and terminal promises."""
        return self._control

    @property
    def supports_concurrent_effects(self) -> bool:
        """No: the journal is positional, so effects must start in a fixed order."""
        return False

    async def run_effect(
        self,
        scope: ExecutionScope,
        kind: str,
        replay_key: str,
        envelope: Any,
        execute: Callable[[], Awaitable[T]],
        *,
        result_type: Any = None,
    ) -> T:
        """Journal one effect, or replay its recorded outcome after checking the envelope.

        With a cancel probe, the durable cancel gate is read (a journaled, replay-stable
        observation) before the effect starts; a requested cancel resolves the turn's local
        gate and parks here, so the turn driver abandons the effect and ends the turn cancelled
        without journaling it.

        A replay whose envelope differs from the record (same kind and key) does not stop at
        once when more journal follows: Restate would refuse to end the handler there. The
        host then *follows the journal*: it hands back recorded outcomes (so the turn takes
        the recorded path), runs no closure, and ends with the mismatch at the journal's end,
        where the handler can end the invocation terminally.
        """
        self._end_if_diverged()
        if self._probe is not None and scope.session_id is not None:
            evidence = await self._probe()
            if evidence is not None:
                self._control.request_cancel(scope.session_id, scope.id, evidence)
                await asyncio.Event().wait()  # the driver's cancel race ends this task
        text = canonical_json(envelope)
        digest = envelope_hash(text)
        fresh: dict[str, Any] = {}

        async def action() -> bytes:
            if self._mismatch_error is not None:
                # a diverged replay reached a step the journal never recorded: end here
                raise TerminalError(str(self._mismatch_error), 500)
            self.executed.append(replay_key)
            outcome: Any = None
            error: dict[str, str] | None = None
            self._in_effect += 1
            try:
                value = await execute()
            except Exception as err:
                error = _error_data(err)
            else:
                fresh["value"] = value
                outcome = dump_outcome(value, result_type)
            finally:
                self._in_effect -= 1
            record = _Record(
                v=_RECORD_VERSION,
                kind=kind,
                key=replay_key,
                envelope_hash=digest,
                envelope=text,
                outcome=outcome,
                error=error,
            )
            return msgspec.json.encode(record)

        try:
            raw = await self._ctx.run_typed(effect_step_name(replay_key), action, self._options)
        except TerminalError:
            if self._mismatch_error is None:
                raise
            raise self._ending() from None
        record = msgspec.json.decode(raw, type=_Record)
        same_step = record.kind == kind and record.key == replay_key
        if self._mismatch_error is None and (not same_step or record.envelope_hash != digest):
            error = _mismatch(scope, kind, replay_key, record, envelope)
            ahead = self._replaying()
            self._mismatch_error = error
            self.mismatch = ReplayDivergence(message=str(error), at_journal_end=not ahead)
            if not ahead or not same_step:
                raise error  # a different step cannot be followed: its outcome would not fit
        if record.error is not None:
            raise _rebuild_error(record.error)
        if "value" in fresh:
            value: T = fresh["value"]
            return value
        replayed: T = load_outcome(record.outcome, result_type)
        return replayed

    def _end_if_diverged(self) -> None:
        """After a mismatch, stop as soon as the journal has nothing more to replay."""
        if self._mismatch_error is not None and not self._replaying():
            raise self._ending()

    def _ending(self) -> LashRuntimeError:
        """The mismatch error, now at the journal's end (the handler may end terminally)."""
        assert self._mismatch_error is not None and self.mismatch is not None
        self.mismatch = ReplayDivergence(message=self.mismatch.message, at_journal_end=True)
        return self._mismatch_error

    def divergence(self) -> LashRuntimeError | None:
        """The replay mismatch this invocation found, if any (then nothing may be committed)."""
        if self._mismatch_error is None:
            return None
        return self._ending() if not self._replaying() else self._mismatch_error

    # --- sleeps ------------------------------------------------------------------------------

    async def sleep(
        self, scope: ExecutionScope, replay_key: str, seconds: float, *, local: LocalSleep
    ) -> None:
        """A durable timer named ``lash:<replay key>``, raced with the turn's cancel gate.

        A redrive replays a timer that already fired instead of sleeping again. Inside an
        effect's journaled closure Restate allows no timer (the closure's whole outcome is one
        journal entry), so a sleep there is the configured local one; a winning cancel
        request parks the sleeper so the turn driver ends the turn cancelled.
        """
        if self._workflow is None or self._in_effect:
            await local(seconds)
            return
        self._end_if_diverged()
        timer = self._workflow.sleep(
            timedelta(seconds=max(0.0, seconds)), name=effect_step_name(replay_key)
        )
        if self._cancel_promise is None:
            await timer
            return
        gate = self._workflow.promise(self._cancel_promise, type_hint=dict[str, Any]).value()
        which, value = await restate.select(slept=timer, cancel=gate)
        if which == "slept":
            return
        state = msgspec.convert(value, type=GateState)
        if state.status == "cancel_requested" and state.evidence is not None:
            if scope.session_id is not None:
                self._control.request_cancel(scope.session_id, scope.id, state.evidence)
            await asyncio.Event().wait()  # the driver's cancel race ends this task
        await timer

    # --- durable waits ---------------------------------------------------------------------

    def _require_workflow(self) -> Any:
        if self._workflow is None:
            raise LashRuntimeError(
                AWAIT_EVENT_UNSUPPORTED, "durable waits need the run handler's workflow context"
            )
        return self._workflow

    async def _register(self, key: str) -> None:
        """Enter a wait of this turn in its session's index; a revoked session's keys are
        unknown from then on."""
        target = self._signer.open(key)
        if self._index is None or target is None or target.scope.session_id is None:
            return
        answer = await index_call(
            self._require_workflow(),
            self._index,
            target.scope.session_id,
            "register",
            {
                "turn": target.scope.id,
                "key": key,
                "key_id": target.key_id,
                "control": target.wait.is_turn_control,
            },
        )
        if answer.get("revoked"):
            raise LashRuntimeError(AWAIT_EVENT_UNKNOWN_OR_REVOKED, "the session was revoked")

    async def _revoked(self, key: str) -> bool:
        """Whether the session of a wait of this turn was revoked (no index write)."""
        target = self._signer.open(key)
        if self._index is None or target is None or target.scope.session_id is None:
            return False
        answer = await index_call(
            self._require_workflow(), self._index, target.scope.session_id, "status", {}
        )
        return bool(answer.get("revoked"))

    async def _forget(self, key: str) -> None:
        """A wait of this turn is terminal: its index entry (if any) goes."""
        target = self._signer.open(key)
        if self._index is None or target is None or target.scope.session_id is None:
            return
        await index_call(
            self._require_workflow(),
            self._index,
            target.scope.session_id,
            "unregister",
            {"key_id": target.key_id},
        )

    def await_event_key(self, scope: ExecutionScope, wait: WaitIdentity) -> AwaitEventKey:
        """The stable signed key of ``wait`` in ``scope``."""
        return self._signer.mint(scope, wait)

    async def resolve_await_event(self, key: str, resolution: Resolution) -> ResolveReceipt:
        """Resolve a wait of this turn from inside its run handler."""
        workflow = self._require_workflow()
        if await self._revoked(key):
            return ResolveReceipt(outcome="unknown_or_revoked")
        receipt = await resolve_wait_promise(workflow, self._signer, key, resolution)
        if receipt.outcome == "resolved":
            await self._forget(key)
        return receipt

    async def peek_await_event(self, key: str) -> Resolution | None:
        """A wait's terminal resolution, or None while pending."""
        workflow = self._require_workflow()
        target = self._signer.open(key)
        if target is None or target.scope.id != workflow.key():
            raise LashRuntimeError(AWAIT_EVENT_UNKNOWN_OR_REVOKED, "unknown or revoked key")
        if await self._revoked(key):
            raise LashRuntimeError(AWAIT_EVENT_UNKNOWN_OR_REVOKED, "the session was revoked")
        seen = await workflow.promise(
            await_promise_name(target.key_id), type_hint=dict[str, Any]
        ).peek()
        if seen is None:
            await self._register(key)  # pending: a session sweep can reach it now
            return None
        return msgspec.convert(seen, type=Resolution)

    async def await_event(
        self,
        scope: ExecutionScope,
        key: str,
        *,
        replay_key: str,
        cancel: asyncio.Event | None = None,
        timeout_ms: int | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> Resolution:
        """Park on the wait's promise, racing the turn's cancel gate and a durable timer.

        Everything here is a journaled promise or timer, so a redrive (after a worker death
        or a Restate restart) parks on the same promise again or replays how it ended. The
        wait is entered in the session index first, so session sweeps reach it.
        """
        workflow = self._require_workflow()
        self._end_if_diverged()
        target = self._signer.open(key)
        if target is None or target.scope != scope:
            raise LashRuntimeError(AWAIT_EVENT_UNKNOWN_OR_REVOKED, "unknown or revoked key")
        await self._register(key)
        promise = workflow.promise(await_promise_name(target.key_id), type_hint=dict[str, Any])
        racers: dict[str, Any] = {"resolved": promise.value()}
        if self._cancel_promise is not None:
            racers["cancel"] = workflow.promise(
                self._cancel_promise, type_hint=dict[str, Any]
            ).value()
        if timeout_ms is not None:
            racers["timeout"] = workflow.sleep(timedelta(milliseconds=max(0, timeout_ms)))
        which, value = await restate.select(**racers)
        evidence: CancellationEvidence | None = None
        if which == "cancel":
            evidence = msgspec.convert(value, type=GateState).evidence
            if evidence is None:  # the gate was sealed, not cancelled: keep waiting
                del racers["cancel"]
                which, value = await restate.select(**racers)
        if which == "resolved":
            await self._forget(key)
            return msgspec.convert(value, type=Resolution)
        ended = Resolution.timeout() if which == "timeout" else Resolution.cancelled()
        receipt = await resolve_wait_promise(workflow, self._signer, key, ended)
        await self._forget(key)
        terminal = receipt.terminal if receipt.terminal is not None else ended
        if evidence is not None and scope.session_id is not None:
            self._control.request_cancel(scope.session_id, scope.id, evidence)
        return terminal

    async def revoke_await_events_for_session(self, session_id: str) -> None:
        """Tombstone the session in its wait index: parked waits end cancelled."""
        if self._index is None:
            raise LashRuntimeError(AWAIT_EVENT_UNSUPPORTED, "no session wait index configured")
        await index_call(self._require_workflow(), self._index, session_id, "revoke_all", {})

    async def cancel_await_events_for_session(self, session_id: str) -> int:
        """End the session's pending non-control waits as cancelled; returns how many."""
        if self._index is None:
            raise LashRuntimeError(AWAIT_EVENT_UNSUPPORTED, "no session wait index configured")
        answer = await index_call(
            self._require_workflow(), self._index, session_id, "cancel_all", {}
        )
        return int(answer.get("cancelled", 0))


def _replay_flag(ctx: object) -> Callable[[], bool]:
    """Whether journal entries are still ahead of the handler: the SDK's VM knows (its
    context variable is only current in the task that made the last journal call)."""
    vm = getattr(ctx, "vm", None)
    probe = getattr(vm, "is_replaying", None)
    if callable(probe):
        return lambda: bool(probe())
    return restate_context_is_replaying.get


def _error_data(err: Exception) -> dict[str, str]:
    if isinstance(err, LashRuntimeError):
        return {"type": "LashRuntimeError", "code": str(err.code), "message": err.message}
    if isinstance(err, RecordedEffectError):
        return {"type": err.error_type, "message": err.message}
    return {"type": type(err).__name__, "message": str(err)}


def _rebuild_error(data: dict[str, str]) -> Exception:
    if data.get("type") == "LashRuntimeError":
        return LashRuntimeError(data.get("code", "runtime_effect_failed"), data.get("message", ""))
    return RecordedEffectError(data.get("type", "Exception"), data.get("message", ""))


def _mismatch(
    scope: ExecutionScope, kind: str, key: str, record: _Record, envelope: Any
) -> LashRuntimeError:
    paths: list[str] = []
    if record.kind != kind:
        paths.append("$kind")
    if record.key != key:
        paths.append("$replay_key")
    if not paths:
        recorded = msgspec.json.decode(record.envelope)
        paths = diverging_paths(recorded, canonical(msgspec.json.decode(canonical_json(envelope))))
        if not paths:  # same JSON under a different hash: a hashing change, not a data change
            paths = ["$"]
    return LashRuntimeError(
        EFFECT_HASH_MISMATCH,
        f"replayed {kind} effect {key!r} of scope {scope.id!r} was built differently than "
        f"the recorded one; first diverging path: {paths[0]}"
        + (f" (also {', '.join(paths[1:])})" if len(paths) > 1 else ""),
    )
