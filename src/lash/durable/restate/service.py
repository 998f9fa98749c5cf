"""The ``LashTurn`` Restate workflow: one workflow per turn, keyed by the turn id.

``run`` opens the session with a lease owner derived from the workflow key (a redriven
invocation re-enters its own lease instead of waiting for it to expire), journals the head
revision the turn starts from, and runs the turn with that stable turn id through a
:class:`RestateEffectHost`. When Restate redrives ``run`` after a crash, model calls and tool
attempts replay from the journal and the final commit is idempotent by its turn stamp.

A redrive whose rebuilt effect differs from the journal ends the invocation with the terminal
error ``restate_effect_hash_mismatch`` naming the diverging path when the diverging step is the
last one journaled. When more journal follows it, Restate cannot end the invocation (a handler
ends only after replaying its whole journal), so the attempt fails with :class:`ReplayMismatch`
and the retry policy pauses or kills the invocation. Nothing is committed either way.

Turn control lives in two workflow promises (see :mod:`lash.durable.restate.waits`): the cancel
gate, which ``request_cancel`` and the owner's seal race for (first writer wins), and the
terminal, which ``run`` publishes after its commit and ``attach_terminal`` waits for. Durable
waits are promises too; the session wait index (``<name>WaitIndex``) makes them reachable by
session sweeps and revocation. Keys are signed with ``await_event_secret``; every worker of a
deployment needs the same secret (without one, durable waits fail with
``restate_await_secret_required``).

Handlers (JSON bodies): ``run`` ``{session_id, input}``; ``request_cancel`` ``{request_id,
origin?, reason?, session_id?}``; ``peek_gate``; ``open_gate`` / ``seal_gate`` /
``attach_terminal`` / ``publish_terminal`` ``{session_id, ...}`` (owner side; ``run`` does the
same itself); ``await_event_key`` ``{session_id, wait}``; ``resolve_await_event`` ``{key,
resolution}``; ``peek_await_event`` ``{key}``; ``await_event`` ``{key, timeout_ms?}``. The
ingress is the trust boundary: expose it only to the hosts that own these turns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

import msgspec
import restate
from restate import RunOptions, TerminalError, WorkflowContext, WorkflowSharedContext
from restate.serde import BytesSerde

from lash.durable.restate.committed import committed_turn_core, holds_turn
from lash.durable.restate.host import JournalingContext, RestateEffectHost
from lash.durable.restate.waits import (
    CANCEL_PROMISE,
    TERMINAL_PROMISE,
    MissingSecretSigner,
    await_promise_name,
    index_call,
    index_name,
    read_gate,
    resolve_gate,
    resolve_wait_promise,
    secret_required,
    wait_index,
)
from lash.errors import DurableStoreFacet, LashRuntimeError
from lash.runtime.await_events import (
    AwaitEventSigner,
    AwaitEventTarget,
    Resolution,
    ResolveReceipt,
    WaitIdentity,
)
from lash.runtime.core import LashCore
from lash.runtime.effect_host import CancelReceipt, GateState, TurnControl
from lash.runtime.scope import ExecutionScope, require_id
from lash.stores.base import DurabilityTier
from lash.stores.liveness import opaque_owner
from lash.types import CancellationEvidence, LeaseOwner, TurnInput, to_builtins

__all__ = [
    "CANCEL_PROMISE",
    "TERMINAL_PROMISE",
    "CoreSource",
    "ReplayMismatch",
    "TurnRunRequest",
    "replay_failure",
    "run_durable_turn",
    "turn_owner",
    "turn_services",
    "turn_workflow",
]

CoreSource = LashCore | Callable[[], Awaitable[LashCore]]
"""A worker's core, or a factory that builds it on the first invocation."""


class ReplayMismatch(RuntimeError):
    """A redrive rebuilt an effect differently than the journal recorded it.

    Raised when more journal follows the diverging step: Restate only lets a handler end once
    it has replayed its whole journal, so the mismatch fails the attempt instead of the
    invocation: the invocation's last failure names
    the diverging path, and the retry policy's ``on_max_attempts`` decides between pausing it
    (the server default: fix or roll back the deployment, then resume) and killing it.
    """


class TurnRunRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The body of ``LashTurn/<turn id>/run``."""

    session_id: str
    input: str | TurnInput


class _Start(msgspec.Struct, frozen=True, kw_only=True):
    head_revision: int


def turn_owner(service: str, turn_id: str) -> LeaseOwner:
    """The lease owner of a turn's workflow: the same for every attempt of that invocation."""
    return opaque_owner(f"restate:{service}/{turn_id}", "restate-workflow-run")


async def run_durable_turn(
    ctx: JournalingContext,
    core: LashCore,
    *,
    session_id: str,
    turn_id: str,
    turn_input: str | TurnInput,
    owner: LeaseOwner,
    host: RestateEffectHost | None = None,
) -> dict[str, Any]:
    """Run (or replay) one turn inside a journaling handler; returns the result as JSON.

    A redrive that finds the turn already committed (the worker died after the commit) runs
    the turn again over the session as the turn found it (see
    :mod:`lash.durable.restate.committed`): the whole journal replays, as Restate requires
    before a handler may end, no closure runs, and the commit is answered as an idempotent
    replay of the stored one.
    """
    require_id(session_id, "session id")
    require_id(turn_id, "turn id")
    _require_durable_stores(core)
    session = await core.session(session_id).owner(owner).open()
    try:
        opened_at = session.head_revision

        async def mark() -> bytes:
            return msgspec.json.encode(_Start(head_revision=opened_at))

        raw = await ctx.run_typed(
            f"lash:{session_id}:{turn_id}:start", mark, RunOptions(serde=BytesSerde())
        )
        start = msgspec.json.decode(raw, type=_Start)
        if session.head_revision != start.head_revision:
            store = core.config.store
            assert store is not None  # the tier check above
            persisted = await store.load_session(session_id, active_path_only=True)
            if persisted is not None and holds_turn(persisted, turn_id):
                await session.close()
                replay_core = committed_turn_core(core, session_id, turn_id, start.head_revision)
                session = await replay_core.session(session_id).owner(owner).open()
        host = host if host is not None else RestateEffectHost(ctx)
        result = await session.turn(turn_input).turn_id(turn_id).effects(host).run()
        maintenance = getattr(session, "wait_maintenance", None)
        if maintenance is not None:
            await maintenance()  # turn_persisted runs finish here; closing would cancel them
        data: dict[str, Any] = to_builtins(result)
        return data
    finally:
        await session.close()


def _require_durable_stores(core: LashCore) -> None:
    """The turn-start tier check, made before the session opens or anything is journaled."""
    cfg = core.config
    if cfg.attachments.tier is not DurabilityTier.DURABLE:
        raise LashRuntimeError.durable_store_required(DurableStoreFacet.ATTACHMENT_STORE)
    if cfg.process_envs.tier is not DurabilityTier.DURABLE:
        raise LashRuntimeError.durable_store_required(DurableStoreFacet.PROCESS_ENV_STORE)
    if cfg.store is None or cfg.store.tier is not DurabilityTier.DURABLE:
        raise LashRuntimeError.durable_store_required(DurableStoreFacet.SESSION_STORE)


def replay_failure(host: RestateEffectHost, err: LashRuntimeError) -> Exception:
    """How a run handler ends on ``err``: retryable errors fail the attempt (Restate retries),
    others end the invocation with a :class:`TerminalError`.

    A replay mismatch is terminal when the diverging step was the last one journaled. When
    more journal follows it, Restate only lets a handler end once it has replayed its whole
    journal, so the attempt fails with :class:`ReplayMismatch` and the retry policy pauses or
    kills the invocation.
    """
    if host.mismatch is not None:
        if not host.mismatch.at_journal_end:
            return ReplayMismatch(str(err))
        return TerminalError(str(err), 500)
    if err.is_retryable:
        return err
    return TerminalError(str(err), 500)


class _JournaledTurnControl(TurnControl):
    """The run handler's turn control: the runner's seal closes the durable gate and waits
    for its answer before the turn commits; terminal publication resolves the durable
    terminal (eagerly issued, awaited after the turn).

    The durable gate is the one ``request_cancel`` writes, and it can be closed by a cancel
    the turn never read (one landing after the last gate read). The seal therefore resolves
    that promise first-writer-wins and adopts whatever stands: a cancel that got there first
    makes the turn end, and commit, cancelled.

    After a replay mismatch the seal refuses (so nothing is committed) and nothing more is
    written.
    """

    def __init__(self, workflow: WorkflowContext) -> None:
        super().__init__()
        self._workflow = workflow
        self.pending: list[Awaitable[Any]] = []
        self.host: RestateEffectHost | None = None

    def halted(self) -> bool:
        return self.host is not None and self.host.mismatch is not None

    def seal(
        self, session_id: str, turn_id: str, local_evidence: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        diverged = self.host.divergence() if self.host is not None else None
        if diverged is not None:
            raise diverged  # a replay that left its journal's path commits nothing
        evidence = super().seal(session_id, turn_id, local_evidence)
        if not self.halted():
            gate = GateState(
                status="cancel_requested" if evidence is not None else "completion_sealed",
                evidence=evidence,
            )
            promise = self._workflow.promise(CANCEL_PROMISE, type_hint=dict[str, Any])
            self.pending.append(promise.resolve(to_builtins(gate)))
        return evidence

    async def seal_before_commit(
        self, session_id: str, turn_id: str, local_evidence: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        diverged = self.host.divergence() if self.host is not None else None
        if diverged is not None:
            raise diverged  # a replay that left its journal's path commits nothing
        evidence = TurnControl.seal(self, session_id, turn_id, local_evidence)
        if self.halted():
            return evidence
        gate = await _close_gate(self._workflow, evidence)
        if gate.status == "cancel_requested" and gate.evidence is not None:
            self.adopt(session_id, turn_id, gate)
            return gate.evidence
        return evidence

    def publish_terminal(self, session_id: str, turn_id: str, result: Any) -> None:
        super().publish_terminal(session_id, turn_id, result)
        if not self.halted():
            self.pending.append(_publish(self._workflow, {"result": to_builtins(result)}))

    async def settle(self) -> None:
        """Wait for the durable writes; one that lost its first-writer race is fine."""
        for write in self.pending:
            with contextlib.suppress(TerminalError):
                await write
        self.pending.clear()


async def _close_gate(workflow: Any, evidence: CancellationEvidence | None) -> GateState:
    """Resolve the durable gate (first writer wins) and return the gate that stands; one
    journaled write when nobody got there first, a read more when somebody did."""
    gate = GateState(
        status="cancel_requested" if evidence is not None else "completion_sealed",
        evidence=evidence,
    )
    promise = workflow.promise(CANCEL_PROMISE, type_hint=dict[str, Any])
    try:
        await promise.resolve(to_builtins(gate))
    except TerminalError:
        seen = await promise.peek()
        return gate if seen is None else msgspec.convert(seen, type=GateState)
    return gate


def _publish(workflow: Any, terminal: dict[str, Any]) -> Awaitable[Any]:
    promise = workflow.promise(TERMINAL_PROMISE, type_hint=dict[str, Any])
    write: Awaitable[Any] = promise.resolve(terminal)
    return write


def turn_services(
    core: CoreSource,
    *,
    name: str = "LashTurn",
    retry_policy: restate.InvocationRetryPolicy | None = None,
    inactivity_timeout: timedelta | None = None,
    await_event_secret: bytes | None = None,
) -> list[restate.Workflow | restate.VirtualObject]:
    """What a worker serves: the ``LashTurn`` workflow and its session wait index."""
    return [
        turn_workflow(
            core,
            name=name,
            retry_policy=retry_policy,
            inactivity_timeout=inactivity_timeout,
            await_event_secret=await_event_secret,
        ),
        wait_index(name),
    ]


def turn_workflow(
    core: CoreSource,
    *,
    name: str = "LashTurn",
    retry_policy: restate.InvocationRetryPolicy | None = None,
    inactivity_timeout: timedelta | None = None,
    await_event_secret: bytes | None = None,
) -> restate.Workflow:
    """The ``LashTurn`` workflow bound to this worker's core (built once, on first use).

    Serve it together with :func:`wait_index` (or use :func:`turn_services`): durable waits,
    session sweeps and session-scoped turn control go through that index.
    ``await_event_secret`` (>= 16 bytes, the same on every worker) signs durable-wait keys.
    Without one, plain turns run, but the first durable-wait mint or key check fails with
    ``restate_await_secret_required`` (a terminal handler error over the ingress): a random
    per-process secret would leave a parked wait's key unverifiable after a worker restart.
    """
    signer: AwaitEventSigner = (
        AwaitEventSigner(await_event_secret)
        if await_event_secret is not None
        else MissingSecretSigner()
    )
    has_secret = await_event_secret is not None

    def keys() -> AwaitEventSigner:
        """The signer of durable-wait keys; a handler ends terminally without a secret."""
        if not has_secret:
            raise TerminalError(str(secret_required()), 500)
        return signer

    index = index_name(name)
    workflow = restate.Workflow(
        name, invocation_retry_policy=retry_policy, inactivity_timeout=inactivity_timeout
    )
    holder: dict[str, LashCore] = {}
    lock = asyncio.Lock()

    async def get_core() -> LashCore:
        if isinstance(core, LashCore):
            return core
        async with lock:
            if "core" not in holder:
                holder["core"] = await core()
            return holder["core"]

    async def is_revoked(ctx: Any, session_id: str | None) -> bool:
        if session_id is None:
            return False
        answer = await index_call(ctx, index, session_id, "status", {})
        return bool(answer.get("revoked"))

    async def enter_turn(ctx: Any, session_id: str) -> bool:
        """Record that someone attaches to this turn's terminal (so a revocation wakes
        them); False once revoked."""
        answer = await index_call(ctx, index, session_id, "register", {"turn": ctx.key()})
        return not answer.get("revoked")

    async def end_turn(ctx: Any, session_id: str | None) -> None:
        """The turn's terminal is published: the index forgets the turn and its waits."""
        if session_id is not None:
            await index_call(ctx, index, session_id, "end_turn", {"turn": ctx.key()})

    def open_key(ctx: Any, key: str) -> AwaitEventTarget | None:
        """Authenticate a key of this turn."""
        target = keys().open(key)
        if target is None or target.scope.kind != "turn" or target.scope.id != ctx.key():
            return None
        return target

    async def forget_wait(ctx: Any, target: AwaitEventTarget) -> None:
        """The wait is terminal: its index entry (if any) goes."""
        if target.scope.session_id is not None:
            body = {"key_id": target.key_id}
            await index_call(ctx, index, target.scope.session_id, "unregister", body)

    async def enter_wait(ctx: Any, key: str) -> AwaitEventTarget | None:
        """Authenticate a key of this turn and enter it (pending) in its session index."""
        target = open_key(ctx, key)
        if target is None:
            return None
        if target.scope.session_id is not None:
            answer = await index_call(
                ctx,
                index,
                target.scope.session_id,
                "register",
                {
                    "turn": ctx.key(),
                    "key": key,
                    "key_id": target.key_id,
                    "control": target.wait.is_turn_control,
                },
            )
            if answer.get("revoked"):
                return None
        return target

    @workflow.main(name="run")
    async def run(ctx: WorkflowContext, request: dict[str, Any]) -> dict[str, Any]:
        try:
            body = msgspec.convert(request, type=TurnRunRequest)
        except msgspec.ValidationError as err:
            raise TerminalError(f"invalid_turn_request: {err}", 400) from err
        turn_id = ctx.key()
        journal = cast(JournalingContext, ctx)  # restate's overloaded run_typed fits the protocol
        control = _JournaledTurnControl(ctx)

        async def probe() -> CancellationEvidence | None:
            gate = await read_gate(ctx)
            return gate.evidence if gate.status == "cancel_requested" else None

        host = RestateEffectHost(
            journal,
            turn_control=control,
            cancel_probe=probe,
            workflow=ctx,
            signer=signer,
            cancel_promise=CANCEL_PROMISE,
            index=index,
        )
        control.host = host
        try:
            result = await run_durable_turn(
                journal,
                await get_core(),
                session_id=body.session_id,
                turn_id=turn_id,
                turn_input=body.input,
                owner=turn_owner(name, turn_id),
                host=host,
            )
        except LashRuntimeError as err:
            failure = replay_failure(host, err)
            if isinstance(failure, TerminalError):
                error = {"code": str(err.code), "message": err.message}
                with contextlib.suppress(TerminalError):
                    await _publish(ctx, {"error": error})
                await end_turn(ctx, body.session_id)
            raise failure from err
        await control.settle()
        await end_turn(ctx, body.session_id)
        return result

    @workflow.handler(name="request_cancel")
    async def request_cancel(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        try:
            body = msgspec.convert(request, type=_CancelRequest)
            require_id(body.request_id, "cancel request id")
        except (msgspec.ValidationError, LashRuntimeError) as err:
            raise TerminalError(f"invalid_cancel_request: {err}", 400) from err
        evidence = CancellationEvidence(
            request_id=body.request_id,
            origin=body.origin,
            reason=body.reason,
            requested_at_ms=body.requested_at_ms,
        )
        receipt = CancelReceipt(outcome="unknown_or_revoked", durability_tier="durable")
        if not await is_revoked(ctx, body.session_id):
            gate = await resolve_gate(ctx, evidence)
            if gate.status == "completion_sealed":
                receipt = CancelReceipt(outcome="completion_won_race", durability_tier="durable")
            else:
                won = gate.evidence == evidence
                receipt = CancelReceipt(
                    outcome="requested" if won else "already_requested",
                    durability_tier="durable",
                    evidence=gate.evidence,
                )
        answer: dict[str, Any] = to_builtins(receipt)
        return answer

    @workflow.handler(name="peek_gate")
    async def peek_gate(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """The turn's cancel gate."""
        answer: dict[str, Any] = to_builtins(await read_gate(ctx))
        return answer

    @workflow.handler(name="open_gate")
    async def open_gate(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """An owner opens (or re-opens on replay) its gate: the gate as it stands."""
        body = msgspec.convert(request, type=_SessionRequest)
        if await is_revoked(ctx, body.session_id):
            return {"outcome": "unknown_or_revoked"}
        return {"outcome": "open", "gate": to_builtins(await read_gate(ctx))}

    @workflow.handler(name="await_gate")
    async def await_gate(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """Park until the gate closes (cancel requested or completion sealed)."""
        seen = await ctx.promise(CANCEL_PROMISE, type_hint=dict[str, Any]).value()
        return dict(seen)

    @workflow.handler(name="seal_gate")
    async def seal_gate(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """The owner's seal at its finish: its own cancel evidence, or completion; first
        writer wins against ``request_cancel``. Answers the evidence that stands."""
        body = msgspec.convert(request, type=_SealRequest)
        if await is_revoked(ctx, body.session_id):
            return {"outcome": "unknown_or_revoked"}
        gate = await resolve_gate(ctx, body.evidence)
        return {"outcome": gate.status, "evidence": to_builtins(gate.evidence)}

    @workflow.handler(name="publish_terminal")
    async def publish_terminal(
        ctx: WorkflowSharedContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        """Publish the turn's terminal (first writer wins; ignored once revoked)."""
        body = msgspec.convert(request, type=_TerminalRequest)
        if await is_revoked(ctx, body.session_id):
            return {"outcome": "unknown_or_revoked"}
        try:
            await _publish(ctx, {"result": body.terminal})
        except TerminalError:
            return {"outcome": "already_published"}
        await end_turn(ctx, body.session_id)
        return {"outcome": "published"}

    @workflow.handler(name="attach_terminal")
    async def attach_terminal(
        ctx: WorkflowSharedContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        """Wait for the turn's terminal; a revoked session's terminal is unknown."""
        body = msgspec.convert(request, type=_SessionRequest)
        if await is_revoked(ctx, body.session_id):
            return {"outcome": "unknown_or_revoked"}
        terminal = ctx.promise(TERMINAL_PROMISE, type_hint=dict[str, Any])
        seen = await terminal.peek()
        if seen is None:  # park, entered in the index so that a revocation wakes us
            if not await enter_turn(ctx, body.session_id):
                return {"outcome": "unknown_or_revoked"}
            seen = await terminal.value()
            if not seen.get("revoked"):
                await end_turn(ctx, body.session_id)  # published: nobody parks any more
        if seen.get("revoked") or await is_revoked(ctx, body.session_id):
            return {"outcome": "unknown_or_revoked"}
        if "error" in seen:
            return {"outcome": "failed", "error": seen["error"]}
        return {"outcome": "terminal", "terminal": seen.get("result")}

    @workflow.handler(name="revoke_control", ingress_private=True)
    async def revoke_control(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """The session index's revocation: attached terminals wake and fail."""
        with contextlib.suppress(TerminalError):
            await _publish(ctx, {"revoked": True})
        return {}

    @workflow.handler(name="settle", ingress_private=True)
    async def settle(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """The session index's sweep of one wait (no index round trip)."""
        body = msgspec.convert(request, type=_ResolveRequest)
        answer: dict[str, Any] = to_builtins(
            await resolve_wait_promise(ctx, keys(), body.key, body.resolution)
        )
        return answer

    @workflow.handler(name="resolve_await_event")
    async def resolve_await_event(
        ctx: WorkflowSharedContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            body = msgspec.convert(request, type=_ResolveRequest)
        except (msgspec.ValidationError, LashRuntimeError) as err:
            raise TerminalError(f"invalid_await_event: {err}", 400) from err
        receipt = ResolveReceipt(outcome="unknown_or_revoked")
        target = open_key(ctx, body.key)
        if target is not None and not await is_revoked(ctx, target.scope.session_id):
            receipt = await resolve_wait_promise(ctx, keys(), body.key, body.resolution)
            if receipt.outcome == "resolved":
                await forget_wait(ctx, target)
        answer: dict[str, Any] = to_builtins(receipt)
        return answer

    @workflow.handler(name="peek_await_event")
    async def peek_await_event(
        ctx: WorkflowSharedContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        key = request.get("key") if isinstance(request, dict) else None
        unknown = {"outcome": "unknown_or_revoked", "terminal": None}
        target = open_key(ctx, key) if isinstance(key, str) else None
        if target is None or await is_revoked(ctx, target.scope.session_id):
            return unknown
        seen = await ctx.promise(await_promise_name(target.key_id), type_hint=dict[str, Any]).peek()
        if seen is not None:
            return {"outcome": "resolved", "terminal": seen}
        if isinstance(key, str) and await enter_wait(ctx, key) is None:  # a sweep reaches it
            return unknown
        return {"outcome": "pending", "terminal": None}

    @workflow.handler(name="await_event")
    async def await_event(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """Park on a wait from outside the turn, with an optional deadline (a durable timer
        that writes ``timeout`` into the wait when it fires first)."""
        try:
            body = msgspec.convert(request, type=_AwaitRequest)
        except msgspec.ValidationError as err:
            raise TerminalError(f"invalid_await_event: {err}", 400) from err
        target = await enter_wait(ctx, body.key)
        if target is None:
            return {"outcome": "unknown_or_revoked", "terminal": None}
        promise = ctx.promise(await_promise_name(target.key_id), type_hint=dict[str, Any])
        if body.timeout_ms is None:
            seen = await promise.value()
            await forget_wait(ctx, target)
            return {"outcome": "resolved", "terminal": seen}
        timer = ctx.sleep(timedelta(milliseconds=max(0, body.timeout_ms)))
        which, value = await restate.select(resolved=promise.value(), timeout=timer)
        if which == "resolved":
            await forget_wait(ctx, target)
            return {"outcome": "resolved", "terminal": value}
        receipt = await resolve_wait_promise(ctx, keys(), body.key, Resolution.timeout())
        await forget_wait(ctx, target)
        return {"outcome": "resolved", "terminal": to_builtins(receipt.terminal)}

    @workflow.handler(name="await_event_key")
    async def await_event_key(
        ctx: WorkflowSharedContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            body = msgspec.convert(request, type=_KeyRequest)
            key = keys().mint(ExecutionScope.turn(body.session_id, ctx.key()), body.wait)
        except (msgspec.ValidationError, LashRuntimeError) as err:
            raise TerminalError(f"invalid_await_event: {err}", 400) from err
        if await is_revoked(ctx, body.session_id):
            return {"outcome": "unknown_or_revoked"}
        return {"outcome": "minted", "key": key}

    return workflow


class _ResolveRequest(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    resolution: Resolution


class _AwaitRequest(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    timeout_ms: int | None = None


class _KeyRequest(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    wait: WaitIdentity


class _SessionRequest(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str


class _SealRequest(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    evidence: CancellationEvidence | None = None


class _TerminalRequest(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str | None = None
    terminal: Any = None


class _CancelRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A cancel request; with ``session_id`` it is refused once the session was revoked."""

    request_id: str
    origin: str | None = None
    reason: str | None = None
    requested_at_ms: int = 0
    session_id: str | None = None
