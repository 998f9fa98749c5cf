"""The ``LashTurn`` Restate workflow: one workflow per turn, keyed by the turn id.

``run`` opens the session with a lease owner derived from the workflow key (a redriven
invocation re-enters its own lease instead of waiting for it to expire), journals the head
revision the turn starts from, and runs the turn with that stable turn id through a
:class:`RestateEffectHost`. When Restate redrives ``run`` after a crash, model calls and tool
attempts replay from the journal and the final commit is idempotent by its turn stamp.

A redrive whose rebuilt effect differs from the journal fails its attempt with
:class:`ReplayMismatch` naming the diverging path (Restate cannot end an invocation mid-replay).

A tool that returns :func:`lash.tools.pending` parks ``run`` on a durable wait (a workflow
promise); ``resolve_await_event`` (body ``{"key", "resolution"}``) completes it, first writer
wins, and ``await_event_key`` (body ``{"session_id", "wait"}``) mints a wait's key for hosts
that only know the tool call id. Keys are signed with ``await_event_secret``; every worker of
a deployment needs the same secret, or keys stop resolving when another worker redrives.

``request_cancel`` resolves the turn's durable cancel promise, first writer wins; ``run``
reads that gate before every effect and after the turn resolves a completion promise, so a
late request reports ``completion_won_race``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

import msgspec
import restate
from restate import RunOptions, TerminalError, WorkflowContext, WorkflowSharedContext
from restate.serde import BytesSerde

from lash.durable.restate.host import (
    EFFECT_HASH_MISMATCH,
    JournalingContext,
    RestateEffectHost,
    await_promise_name,
    resolve_wait_promise,
)
from lash.errors import DurableStoreFacet, LashRuntimeError
from lash.runtime.await_events import AwaitEventSigner, Resolution, WaitIdentity
from lash.runtime.core import LashCore
from lash.runtime.effect_host import CancelReceipt, TurnControl
from lash.runtime.scope import ExecutionScope, require_id
from lash.stores.base import DurabilityTier
from lash.stores.liveness import opaque_owner
from lash.types import CancellationEvidence, LeaseOwner, TurnInput, to_builtins

__all__ = [
    "CANCEL_PROMISE",
    "DONE_PROMISE",
    "CoreSource",
    "ReplayMismatch",
    "TurnRunRequest",
    "run_durable_turn",
    "turn_owner",
    "turn_workflow",
]

CANCEL_PROMISE = "lash.turn_cancel"
DONE_PROMISE = "lash.turn_done"

CoreSource = LashCore | Callable[[], Awaitable[LashCore]]
"""A worker's core, or a factory that builds it on the first invocation."""


class ReplayMismatch(RuntimeError):
    """A redrive rebuilt an effect differently than the journal recorded it.

    Restate only lets a handler end once it has replayed its whole journal, so the
    mismatch fails the attempt instead of the invocation: the invocation's last failure names
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

    A redrive that finds the session already past the revision the turn started from, with
    the turn's own messages committed, answers from the store instead of running again.
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
            view = await session.read_view()
            prefix = f"{turn_id}:"
            if any(m.id.startswith(prefix) for m in view.messages):
                return {
                    "session_id": session_id,
                    "turn_id": turn_id,
                    "already_committed": True,
                    "head_revision": view.revision,
                }
        host = host if host is not None else RestateEffectHost(ctx)
        result = await session.turn(turn_input).turn_id(turn_id).effects(host).run()
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


def turn_workflow(
    core: CoreSource,
    *,
    name: str = "LashTurn",
    retry_policy: restate.InvocationRetryPolicy | None = None,
    inactivity_timeout: timedelta | None = None,
    await_event_secret: bytes | None = None,
) -> restate.Workflow:
    """The ``LashTurn`` workflow bound to this worker's core (built once, on first use).

    ``await_event_secret`` signs durable-wait keys; without one each worker process draws a
    random secret, so keys minted by one process do not resolve through another.
    """
    signer = AwaitEventSigner(await_event_secret)
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

    @workflow.main(name="run")
    async def run(ctx: WorkflowContext, request: dict[str, Any]) -> dict[str, Any]:
        try:
            body = msgspec.convert(request, type=TurnRunRequest)
        except msgspec.ValidationError as err:
            raise TerminalError(f"invalid_turn_request: {err}", 400) from err
        turn_id = ctx.key()
        journal = cast(JournalingContext, ctx)  # restate's overloaded run_typed fits the protocol
        cancel = ctx.promise(CANCEL_PROMISE, type_hint=dict[str, Any])

        async def probe() -> CancellationEvidence | None:
            seen = await cancel.peek()
            return None if seen is None else msgspec.convert(seen, type=CancellationEvidence)

        host = RestateEffectHost(
            journal,
            turn_control=TurnControl(),
            cancel_probe=probe,
            workflow=ctx,
            signer=signer,
            cancel_promise=CANCEL_PROMISE,
        )
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
            if err.is_code(EFFECT_HASH_MISMATCH):
                # Found mid-replay, where Restate cannot end the invocation: fail the attempt
                # with the diagnosis; the retry policy pauses (or kills) the invocation.
                raise ReplayMismatch(str(err)) from err
            if err.is_retryable:
                raise
            raise TerminalError(str(err), 500) from err
        await ctx.promise(DONE_PROMISE, type_hint=dict[str, Any]).resolve(
            {"outcome": (result.get("outcome") or {}).get("kind", "committed")}
        )
        return result

    @workflow.handler(name="request_cancel")
    async def request_cancel(ctx: WorkflowSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        try:
            evidence = msgspec.convert(request, type=CancellationEvidence)
            require_id(evidence.request_id, "cancel request id")
        except (msgspec.ValidationError, LashRuntimeError) as err:
            raise TerminalError(f"invalid_cancel_request: {err}", 400) from err
        receipt: dict[str, Any] = to_builtins(await _request_cancel(ctx, evidence))
        return receipt

    @workflow.handler(name="resolve_await_event")
    async def resolve_await_event(
        ctx: WorkflowSharedContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            body = msgspec.convert(request, type=_ResolveRequest)
        except (msgspec.ValidationError, LashRuntimeError) as err:
            raise TerminalError(f"invalid_await_event: {err}", 400) from err
        receipt = await resolve_wait_promise(ctx, signer, body.key, body.resolution)
        answer: dict[str, Any] = to_builtins(receipt)
        return answer

    @workflow.handler(name="peek_await_event")
    async def peek_await_event(
        ctx: WorkflowSharedContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        target = signer.open(request.get("key") if isinstance(request, dict) else None)
        if target is None or target.scope.id != ctx.key():
            return {"outcome": "unknown_or_revoked", "terminal": None}
        seen = await ctx.promise(await_promise_name(target.key_id), type_hint=dict[str, Any]).peek()
        return {"outcome": "resolved" if seen is not None else "pending", "terminal": seen}

    @workflow.handler(name="await_event_key")
    async def await_event_key(
        ctx: WorkflowSharedContext, request: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            body = msgspec.convert(request, type=_KeyRequest)
            key = signer.mint(ExecutionScope.turn(body.session_id, ctx.key()), body.wait)
        except (msgspec.ValidationError, LashRuntimeError) as err:
            raise TerminalError(f"invalid_await_event: {err}", 400) from err
        return {"key": key}

    return workflow


class _ResolveRequest(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    resolution: Resolution


class _KeyRequest(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    wait: WaitIdentity


async def _request_cancel(
    ctx: WorkflowSharedContext, evidence: CancellationEvidence
) -> CancelReceipt:
    cancel = ctx.promise(CANCEL_PROMISE, type_hint=dict[str, Any])
    existing = await cancel.peek()
    if existing is None:
        if await ctx.promise(DONE_PROMISE, type_hint=dict[str, Any]).peek() is not None:
            return CancelReceipt(outcome="completion_won_race", durability_tier="durable")
        try:
            await cancel.resolve(to_builtins(evidence))
        except TerminalError:
            existing = await cancel.peek()  # another request won the gate meanwhile
        else:
            return CancelReceipt(outcome="requested", durability_tier="durable", evidence=evidence)
    return CancelReceipt(
        outcome="already_requested",
        durability_tier="durable",
        evidence=None if existing is None else msgspec.convert(existing, type=CancellationEvidence),
    )
