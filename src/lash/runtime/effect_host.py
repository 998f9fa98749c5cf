"""Effect hosts: where reply-producing effects actually run.

The inline host runs every effect in-process and keeps its durable-wait promises in memory
(instance-owned: two hosts never share them). A durable host (Restate, a later issue) journals
each effect under its replay key and replays recorded outcomes instead of re-running them. The
turn driver does not know which one it has; it asks :attr:`EffectHost.tier` only to enforce that
a durable host is wired to durable stores.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from lash.errors import LashRuntimeError, StoreError
from lash.runtime.await_events import (
    AwaitEventKey,
    AwaitEventRegistry,
    AwaitEventSigner,
    Resolution,
    ResolveReceipt,
    WaitIdentity,
)
from lash.runtime.scope import ExecutionScope
from lash.stores.base import DurabilityTier
from lash.types import CancellationEvidence, LlmRequest, LlmResponse
from lash.types._base import Record

__all__ = [
    "DIRECT_COMPLETION_EFFECT",
    "SLEEP_EFFECT_REJECTED",
    "CancelReceipt",
    "DirectCompletionFailed",
    "DirectCompletionOutcome",
    "EffectHost",
    "EffectSleepRejected",
    "GateState",
    "InlineEffectHost",
    "SleepEffectHost",
    "TurnCompletions",
    "TurnControl",
    "effect_sleeper",
]

T = TypeVar("T")

_CONTROL_CACHE = 4096

LocalSleep = Callable[[float], Awaitable[Any]]
"""The configured in-process sleep (``CoreConfig.sleep``)."""


class CancelReceipt(Record, frozen=True, kw_only=True):
    """The answer to a cancel request."""

    outcome: Literal["requested", "already_requested", "completion_won_race", "unknown_or_revoked"]
    durability_tier: Literal["inline", "durable"] = "inline"
    evidence: CancellationEvidence | None = None


class GateState(Record, frozen=True, kw_only=True):
    """The first-writer-wins cancel gate of one turn."""

    status: Literal["open", "cancel_requested", "completion_sealed"] = "open"
    evidence: CancellationEvidence | None = None


class TurnControl:
    """Cancel gates and terminal promises of turns, keyed by ``(session_id, turn_id)``.

    The first writer wins: a completion seal makes later cancel requests report
    ``completion_won_race``; a cancel request makes the turn end cancelled with its evidence.
    """

    def __init__(self) -> None:
        self._gates: OrderedDict[tuple[str, str], GateState] = OrderedDict()
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self._terminals: OrderedDict[tuple[str, str], asyncio.Future[Any]] = OrderedDict()
        self._revoked: set[str] = set()

    def _trim(self) -> None:
        while len(self._gates) > _CONTROL_CACHE:
            key, _ = self._gates.popitem(last=False)
            self._events.pop(key, None)
        while len(self._terminals) > _CONTROL_CACHE:
            self._terminals.popitem(last=False)

    def register(self, session_id: str, turn_id: str) -> asyncio.Event:
        """Open (or re-open on replay) a turn's gate; the event fires on a cancel request."""
        key = (session_id, turn_id)
        event = self._events.get(key)
        if event is None:
            event = asyncio.Event()
            self._events[key] = event
        gate = self._gates.get(key)
        if gate is None:
            self._gates[key] = GateState()
            self._trim()
        elif gate.status == "cancel_requested":
            event.set()
        return event

    def peek(self, session_id: str, turn_id: str) -> GateState:
        """The gate's state (``open`` when unknown)."""
        return self._gates.get((session_id, turn_id), GateState())

    def request_cancel(
        self, session_id: str, turn_id: str, evidence: CancellationEvidence
    ) -> CancelReceipt:
        """Resolve the gate with a cancel request, first writer wins.

        A request for a turn that has not started yet is kept: when that turn starts it finds
        the gate already resolved and ends cancelled without calling the model.
        """
        if session_id in self._revoked:
            return CancelReceipt(outcome="unknown_or_revoked")
        key = (session_id, turn_id)
        gate = self._gates.get(key)
        if gate is None:
            gate = GateState()
            self._gates[key] = gate
            self._trim()
        if gate.status == "cancel_requested":
            return CancelReceipt(outcome="already_requested", evidence=gate.evidence)
        if gate.status == "completion_sealed":
            return CancelReceipt(outcome="completion_won_race")
        self._gates[key] = GateState(status="cancel_requested", evidence=evidence)
        event = self._events.get(key)
        if event is not None:
            event.set()
        return CancelReceipt(outcome="requested", evidence=evidence)

    def seal(
        self, session_id: str, turn_id: str, local_evidence: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        """At finish: record local cancellation or seal completion; return the winning evidence."""
        key = (session_id, turn_id)
        gate = self._gates.get(key, GateState())
        if gate.status == "cancel_requested":
            return gate.evidence
        if gate.status == "completion_sealed":
            return None
        if local_evidence is not None:
            self._gates[key] = GateState(status="cancel_requested", evidence=local_evidence)
            return local_evidence
        self._gates[key] = GateState(status="completion_sealed")
        return None

    async def seal_before_commit(
        self, session_id: str, turn_id: str, local_evidence: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        """The seal the turn driver awaits before it commits: :meth:`seal`, and for a host
        whose gate also lives elsewhere (a durable promise), that gate's first writer too.

        The answer decides what is committed: evidence means the turn ends cancelled even if
        it finished, because a cancel request won the gate first.
        """
        return self.seal(session_id, turn_id, local_evidence)

    def adopt(self, session_id: str, turn_id: str, gate: GateState) -> None:
        """Take a gate decided elsewhere (a durable gate's first writer) as this one's."""
        key = (session_id, turn_id)
        self._gates[key] = gate
        self._trim()
        event = self._events.get(key)
        if event is not None and gate.status == "cancel_requested":
            event.set()

    def terminal(self, session_id: str, turn_id: str) -> asyncio.Future[Any]:
        """The future resolved with a turn's committed result (failed for a revoked session)."""
        if session_id in self._revoked:
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(_revoked_error(session_id))
            return failed
        key = (session_id, turn_id)
        fut = self._terminals.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._terminals[key] = fut
            self._trim()
        return fut

    def publish_terminal(self, session_id: str, turn_id: str, result: Any) -> None:
        """Resolve a turn's terminal future (first writer wins; ignored once revoked)."""
        if session_id in self._revoked:
            return
        fut = self.terminal(session_id, turn_id)
        if not fut.done():
            fut.set_result(result)

    def revoke_session(self, session_id: str) -> None:
        """Forget a deleted session's control promises forever.

        Terminal promises go too, so a recreated session id never attaches to a deleted
        session's result; anyone still waiting on one gets ``turn_control_unknown_or_revoked``.
        """
        self._revoked.add(session_id)
        for key in [k for k in self._gates if k[0] == session_id]:
            self._gates.pop(key, None)
            self._events.pop(key, None)
        for key in [k for k in self._terminals if k[0] == session_id]:
            fut = self._terminals.pop(key)
            if not fut.done():
                fut.set_exception(_revoked_error(session_id))

    def unrevoke_session(self, session_id: str) -> None:
        """Allow a recreated session id to be controlled again."""
        self._revoked.discard(session_id)


def _revoked_error(session_id: str) -> LashRuntimeError:
    return LashRuntimeError(
        "turn_control_unknown_or_revoked", f"session {session_id!r} was deleted"
    )


@runtime_checkable
class EffectHost(Protocol):
    """Executes effects for a scope, and owns the turn-control promises."""

    @property
    def tier(self) -> DurabilityTier:
        """Inline hosts are ``EPHEMERAL``; journaling hosts ``DURABLE``."""
        ...

    @property
    def turn_control(self) -> TurnControl:
        """Cancel gates and terminal promises."""
        ...

    @property
    def supports_concurrent_effects(self) -> bool:
        """Whether a tool batch may run its calls concurrently."""
        ...

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
        """Run one effect (a durable host may return a recorded outcome instead).

        ``result_type`` is the outcome's type, so a journaling host can decode a recorded
        outcome on replay; inline hosts ignore it.
        """
        ...

    async def sleep(
        self, scope: ExecutionScope, replay_key: str, seconds: float, *, local: LocalSleep
    ) -> None:
        """A sleep effect (a retry back-off): ``local`` (the configured sleep) for an inline
        host, a journaled timer for a durable one. See :func:`effect_sleeper`."""
        ...


SLEEP_EFFECT_REJECTED = "sleep_effect_rejected"
"""The code of a sleep effect its host refused (the retry it delayed fails explicitly)."""


@runtime_checkable
class SleepEffectHost(Protocol):
    """A host through which delays cross as sleep effects (a durable host makes them timers)."""

    async def sleep(
        self, scope: ExecutionScope, replay_key: str, seconds: float, *, local: LocalSleep
    ) -> None:
        """Wait ``seconds`` under the stable ``replay_key``; ``local`` is the configured sleep."""
        ...


class EffectSleepRejected(RuntimeError):
    """A host refused a sleep effect.

    Deliberately not a :class:`LashRuntimeError`: a refused retry delay ends that tool call
    with an explicit failure instead of failing the whole turn.
    """

    code = SLEEP_EFFECT_REJECTED


def effect_sleeper(
    host: object, scope: ExecutionScope, key_prefix: str, local: LocalSleep
) -> Callable[[float], Awaitable[None]]:
    """A sleep callable whose n-th call is the sleep effect ``<key_prefix>:<n>:sleep``.

    Retry loops call it once per failed attempt ``n``, so keys are stable across replays.
    A host without sleep effects just runs ``local``. A host error becomes
    :class:`EffectSleepRejected` (cancellation passes through).
    """
    count = 0

    async def sleep(seconds: float) -> None:
        nonlocal count
        count += 1
        if not isinstance(host, SleepEffectHost):
            await local(seconds)
            return
        key = f"{key_prefix}:{count}:sleep"
        try:
            await host.sleep(scope, key, seconds, local=local)
        except EffectSleepRejected:
            raise
        except Exception as err:
            raise EffectSleepRejected(f"the effect host refused sleep {key!r}: {err}") from err

    return sleep


DIRECT_COMPLETION_EFFECT = "direct_completion"
"""The effect kind of a model call a plugin makes inside a turn but outside a tool attempt."""


class DirectCompletionOutcome(Record, frozen=True, kw_only=True):
    """What a direct completion recorded: the response, or the failure as data.

    A failure is recorded (not left to re-run on replay) so a redriven turn takes the path
    the first run took: a plugin that degraded around a failed call degrades again, and the
    prompt it shapes, hence the main model call's envelope, stays the same.
    """

    response: LlmResponse | None = None
    error: str | None = None


class DirectCompletionFailed(Exception):
    """A direct completion failed (now, or in the run whose outcome was replayed)."""


class TurnCompletions:
    """Direct completions of one turn's plugin hooks, each an effect on the turn's host.

    The n-th call a plugin makes under ``label`` in the turn is the ``direct_completion``
    effect ``<turn key>:plugin:<plugin id>:direct_completion:<label>:<n>`` with the request as
    its envelope, so a durable host replays the recorded answer on a redrive instead of asking
    the model again. An inline host just runs the call.
    """

    def __init__(self, host: EffectHost, scope: ExecutionScope, turn_key: str) -> None:
        self._host = host
        self._scope = scope
        self._turn_key = turn_key
        self._seq: dict[tuple[str, str], int] = {}

    @property
    def durable(self) -> bool:
        """Whether the calls are journaled (a redrive replays them)."""
        return self._host.tier == DurabilityTier.DURABLE

    def _next_key(self, plugin_id: str, label: str) -> str:
        n = self._seq.get((plugin_id, label), 0) + 1
        self._seq[(plugin_id, label)] = n
        return f"{self._turn_key}:plugin:{plugin_id}:{DIRECT_COMPLETION_EFFECT}:{label}:{n}"

    async def complete(
        self,
        plugin_id: str,
        label: str,
        request: LlmRequest,
        execute: Callable[[], Awaitable[LlmResponse]],
    ) -> LlmResponse:
        """Run ``execute`` (which sends ``request``) as a journaled effect.

        Any ordinary failure is recorded as data and raised as :class:`DirectCompletionFailed`
        (on replay too); runtime and store errors (lease, fencing) pass through unrecorded.
        """

        async def body() -> DirectCompletionOutcome:
            try:
                return DirectCompletionOutcome(response=await execute())
            except (LashRuntimeError, StoreError):
                raise
            except Exception as err:
                return DirectCompletionOutcome(error=str(err) or type(err).__name__)

        outcome = await self._host.run_effect(
            self._scope,
            DIRECT_COMPLETION_EFFECT,
            self._next_key(plugin_id, label),
            request,
            body,
            result_type=DirectCompletionOutcome,
        )
        if outcome.response is None:
            raise DirectCompletionFailed(outcome.error or "direct completion failed")
        return outcome.response


class InlineEffectHost:
    """Runs every effect in-process, right away; durable waits are in-memory promises.

    The wait registry belongs to this instance (two hosts never share promises); keys are
    signed with ``await_event_secret`` (random per instance unless given).
    """

    def __init__(self, *, await_event_secret: bytes | None = None) -> None:
        self._control = TurnControl()
        self._waits = AwaitEventRegistry(AwaitEventSigner(await_event_secret))

    @property
    def tier(self) -> DurabilityTier:
        """Inline: nothing is journaled."""
        return DurabilityTier.EPHEMERAL

    @property
    def turn_control(self) -> TurnControl:
        """This host's turn-control promises."""
        return self._control

    @property
    def supports_concurrent_effects(self) -> bool:
        """Tool batches run concurrently."""
        return True

    replays_effects = False
    """Nothing is journaled, so no effect is ever answered from a record: a tool attempt need
    not capture the plugin state it changed (see ``PhysicalTurn``'s attempt effects)."""

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
        """Execute locally."""
        return await execute()

    async def sleep(
        self, scope: ExecutionScope, replay_key: str, seconds: float, *, local: LocalSleep
    ) -> None:
        """Nothing to journal: the configured sleep, right here."""
        await local(seconds)

    # --- durable waits (see lash.runtime.await_events) -------------------------------------

    def await_event_key(self, scope: ExecutionScope, wait: WaitIdentity) -> AwaitEventKey:
        """The stable signed key of ``wait`` in ``scope``."""
        return self._waits.key(scope, wait)

    async def resolve_await_event(self, key: str, resolution: Resolution) -> ResolveReceipt:
        """Resolve a wait, first writer wins (early resolutions are kept for the waiter)."""
        return self._waits.resolve(key, resolution)

    async def peek_await_event(self, key: str) -> Resolution | None:
        """A wait's terminal resolution, or None while pending."""
        return self._waits.peek(key)

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
        """Park in-process until the wait resolves, ``cancel`` fires or the deadline passes."""
        return await self._waits.wait(key, cancel=cancel, timeout_ms=timeout_ms, sleep=sleep)

    async def revoke_await_events_for_session(self, session_id: str) -> None:
        """Tombstone a deleted session's waits."""
        self._waits.revoke_session(session_id)

    def unrevoke_await_events_for_session(self, session_id: str) -> None:
        """Let a recreated session id mint waits again."""
        self._waits.unrevoke_session(session_id)

    async def cancel_await_events_for_session(self, session_id: str) -> int:
        """Resolve the session's outstanding waits as cancelled; returns how many."""
        return self._waits.cancel_session(session_id)
