"""Durable waits and turn control as Restate promises, and the per-session wait index.

Every wait of a turn is a promise of the ``LashTurn`` workflow keyed by that turn
(``lash.await:<key id>``); the turn's cancel gate (``lash.turn_cancel``) and its terminal
(``lash.turn_terminal``) are two more promises of the same workflow. Promises are first
writer wins, which is exactly the contract of a wait resolution, a cancel-vs-seal race and a
terminal publication.

A session's waits live in many workflows, so a session-wide sweep needs an index: the
``<workflow>WaitIndex`` virtual object, keyed by session id, serializes the registration of
each pending wait (on peek or park, one state entry each) and of each turn whose terminal
someone attaches to, forgets them once they are terminal, answers whether the session was
revoked, and runs the two sweeps: ``cancel_all`` (pending
non-control waits end ``cancelled``) and ``revoke_all`` (a tombstone; every pending wait ends
``cancelled``, attached terminals fail, and later mints, resolves and peeks are unknown).
"""

from __future__ import annotations

from typing import Any

import msgspec
import restate
from restate import ObjectContext, ObjectSharedContext, TerminalError

from lash.errors import LashRuntimeError
from lash.runtime.await_events import (
    AwaitEventKey,
    AwaitEventSigner,
    AwaitEventTarget,
    Resolution,
    ResolveReceipt,
    WaitIdentity,
)
from lash.runtime.effect_host import GateState
from lash.runtime.scope import ExecutionScope
from lash.types import CancellationEvidence, to_builtins

__all__ = [
    "AWAIT_SECRET_REQUIRED",
    "CANCEL_PROMISE",
    "MissingSecretSigner",
    "TERMINAL_PROMISE",
    "TURN_CONTROL_REVOKED",
    "await_promise_name",
    "index_call",
    "index_name",
    "read_gate",
    "resolve_gate",
    "resolve_wait_promise",
    "wait_index",
]

CANCEL_PROMISE = "lash.turn_cancel"
"""The turn's cancel gate: a :class:`GateState` (``cancel_requested`` or ``completion_sealed``)."""

TERMINAL_PROMISE = "lash.turn_terminal"
"""The turn's terminal: ``{"result": ...}`` once published, ``{"revoked": true}`` on deletion."""

TURN_CONTROL_REVOKED = "turn_control_unknown_or_revoked"

AWAIT_SECRET_REQUIRED = "restate_await_secret_required"
"""A durable wait was used on a Restate deployment configured without ``await_event_secret``."""


def secret_required() -> LashRuntimeError:
    """The error of a durable wait on a deployment without a shared signing secret."""
    return LashRuntimeError(
        AWAIT_SECRET_REQUIRED,
        "durable waits on Restate need await_event_secret (>= 16 bytes, the same on every "
        "worker): a per-process random secret could not verify a parked wait's key after a "
        "worker restart or on another worker",
    )


class MissingSecretSigner(AwaitEventSigner):
    """Stands in for the signer of a deployment without ``await_event_secret``: plain turns
    run, and the first durable-wait mint or key check fails with
    :data:`AWAIT_SECRET_REQUIRED` instead of signing with a secret no other worker has."""

    def __init__(self) -> None:
        super().__init__(bytes(32))  # never used to sign: mint and open refuse first

    def mint(self, scope: ExecutionScope, wait: WaitIdentity) -> AwaitEventKey:
        """Refuses: no shared secret."""
        raise secret_required()

    def open(self, key: object) -> AwaitEventTarget | None:
        """Refuses: no shared secret."""
        raise secret_required()


def index_name(workflow_name: str) -> str:
    """The wait-index virtual object that goes with a turn workflow."""
    return f"{workflow_name}WaitIndex"


def await_promise_name(key_id: str) -> str:
    """The workflow promise that holds one durable wait."""
    return f"lash.await:{key_id}"


async def index_call(
    ctx: Any, index: str, session_id: str, handler: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Call a handler of the session's wait index (a journaled call of ``ctx``)."""
    raw = await ctx.generic_call(index, handler, msgspec.json.encode(body), key=session_id)
    answer: dict[str, Any] = msgspec.json.decode(raw)
    return answer


async def resolve_wait_promise(
    workflow: Any, signer: AwaitEventSigner, key: str, resolution: Resolution
) -> ResolveReceipt:
    """Resolve a wait's promise in the workflow ``workflow`` (its key is the turn id), first
    writer wins; a key of another turn, or not signed by ``signer``, is unknown."""
    target = signer.open(key)
    if target is None or target.scope.kind != "turn" or target.scope.id != workflow.key():
        return ResolveReceipt(outcome="unknown_or_revoked")
    promise = workflow.promise(await_promise_name(target.key_id), type_hint=dict[str, Any])
    existing = await promise.peek()
    if existing is None:
        try:
            await promise.resolve(msgspec.to_builtins(resolution))
        except TerminalError:
            existing = await promise.peek()  # another resolution won meanwhile
        else:
            return ResolveReceipt(outcome="resolved", terminal=resolution)
    terminal = None if existing is None else msgspec.convert(existing, type=Resolution)
    return ResolveReceipt(outcome="already_resolved", terminal=terminal)


async def read_gate(workflow: Any) -> GateState:
    """The turn's cancel gate as it stands."""
    seen = await workflow.promise(CANCEL_PROMISE, type_hint=dict[str, Any]).peek()
    return GateState() if seen is None else msgspec.convert(seen, type=GateState)


async def resolve_gate(workflow: Any, evidence: CancellationEvidence | None) -> GateState:
    """Close the gate with a cancel request (``evidence``) or a completion seal (None);
    first writer wins, and the gate that stands afterwards is returned."""
    gate = GateState(
        status="cancel_requested" if evidence is not None else "completion_sealed",
        evidence=evidence,
    )
    promise = workflow.promise(CANCEL_PROMISE, type_hint=dict[str, Any])
    existing = await promise.peek()
    if existing is None:
        try:
            await promise.resolve(to_builtins(gate))
        except TerminalError:
            existing = await promise.peek()
        else:
            return gate
    return GateState() if existing is None else msgspec.convert(existing, type=GateState)


class _Wait(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    turn: str
    control: bool = False


class _Register(msgspec.Struct, frozen=True, kw_only=True):
    turn: str
    key: str | None = None
    key_id: str | None = None
    control: bool = False


class _Unregister(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str | None = None
    turn: str | None = None


_WAIT = "w:"
"""State key prefix of a pending wait someone peeked or parks on (``w:<key id>``)."""

_TURN = "t:"
"""State key prefix of a turn whose terminal someone attaches to (``t:<turn id>``)."""


def wait_index(
    workflow_name: str = "LashTurn", *, name: str | None = None
) -> restate.VirtualObject:
    """The per-session wait index of the turn workflow ``workflow_name``.

    One state entry per pending wait (``w:<key id>``) and per turn with an attached terminal
    (``t:<turn id>``), so a registration reads and writes one entry. Entries leave when the
    wait resolves (``unregister``), when a sweep settles it, and when the turn ends
    (``end_turn``), so the index holds only what a sweep can still reach.
    """
    index = restate.VirtualObject(name or index_name(workflow_name))

    async def revoked(ctx: ObjectSharedContext | ObjectContext) -> bool:
        return bool(await ctx.get("revoked", type_hint=bool))

    async def entries(ctx: ObjectContext, prefix: str) -> list[str]:
        return sorted(k for k in await ctx.state_keys() if k.startswith(prefix))

    async def legacy(ctx: ObjectContext) -> tuple[dict[str, _Wait], list[str]]:
        """The whole-dict state of older deployments (``waits``, ``turns``), then cleared."""
        raw = await ctx.get("waits", type_hint=dict[str, Any]) or {}
        turns = list(await ctx.get("turns", type_hint=list[str]) or [])
        if raw:
            ctx.clear("waits")
        if turns:
            ctx.clear("turns")
        return {k: msgspec.convert(v, type=_Wait) for k, v in raw.items()}, turns

    async def wait_at(ctx: ObjectContext, name: str) -> _Wait | None:
        raw = await ctx.get(name, type_hint=dict[str, Any])
        return None if raw is None else msgspec.convert(raw, type=_Wait)

    async def settle(ctx: ObjectContext, wait: _Wait) -> str:
        body = {"key": wait.key, "resolution": to_builtins(Resolution.cancelled())}
        raw = await ctx.generic_call(
            workflow_name, "settle", msgspec.json.encode(body), key=wait.turn
        )
        outcome: str = msgspec.json.decode(raw).get("outcome", "")
        return outcome

    @index.handler(name="register", ingress_private=True)
    async def register(ctx: ObjectContext, request: dict[str, Any]) -> dict[str, Any]:
        """Record a pending wait (by key id) or a turn with an attached terminal; refused
        once revoked."""
        body = msgspec.convert(request, type=_Register)
        if await revoked(ctx):
            return {"revoked": True}
        if body.key is not None and body.key_id is not None:
            entry = _WAIT + body.key_id
            if await ctx.get(entry, type_hint=dict[str, Any]) is None:
                wait = _Wait(key=body.key, turn=body.turn, control=body.control)
                ctx.set(entry, to_builtins(wait))
        else:
            ctx.set(_TURN + body.turn, True)
        return {"revoked": False}

    @index.handler(name="unregister", ingress_private=True)
    async def unregister(ctx: ObjectContext, request: dict[str, Any]) -> dict[str, Any]:
        """Forget a wait that is terminal now (a sweep has nothing more to do with it)."""
        body = msgspec.convert(request, type=_Unregister)
        if body.key_id is not None:
            ctx.clear(_WAIT + body.key_id)
        return {}

    @index.handler(name="end_turn", ingress_private=True)
    async def end_turn(ctx: ObjectContext, request: dict[str, Any]) -> dict[str, Any]:
        """The turn published its terminal: forget it and the waits it left behind."""
        body = msgspec.convert(request, type=_Unregister)
        if body.turn is None:
            return {}
        ctx.clear(_TURN + body.turn)
        for entry in await entries(ctx, _WAIT):
            seen = await wait_at(ctx, entry)
            if seen is not None and seen.turn == body.turn:
                ctx.clear(entry)
        return {}

    @index.handler(name="status", kind="shared")
    async def status(ctx: ObjectSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """Whether the session was revoked."""
        return {"revoked": await revoked(ctx)}

    @index.handler(name="size", kind="shared")
    async def size(ctx: ObjectSharedContext, request: dict[str, Any]) -> dict[str, Any]:
        """How many waits and turns the index holds (for operators and tests)."""
        keys = await ctx.state_keys()
        return {
            "waits": sum(1 for k in keys if k.startswith(_WAIT)),
            "turns": sum(1 for k in keys if k.startswith(_TURN)),
        }

    @index.handler(name="cancel_all")
    async def cancel_all(ctx: ObjectContext, request: dict[str, Any]) -> dict[str, Any]:
        """End every pending non-control wait ``cancelled``; returns how many it ended."""
        count = 0
        old, old_turns = await legacy(ctx)
        for key_id, wait in old.items():
            if wait.control:
                ctx.set(_WAIT + key_id, to_builtins(wait))  # kept, as its own entry
            elif await settle(ctx, wait) == "resolved":
                count += 1
        for turn in old_turns:
            ctx.set(_TURN + turn, True)
        for entry in await entries(ctx, _WAIT):
            seen = await wait_at(ctx, entry)
            if seen is None or seen.control:
                continue
            if await settle(ctx, seen) == "resolved":
                count += 1
            ctx.clear(entry)
        return {"cancelled": count}

    @index.handler(name="revoke_all")
    async def revoke_all(ctx: ObjectContext, request: dict[str, Any]) -> dict[str, Any]:
        """Tombstone the session: pending waits end cancelled, attached terminals fail."""
        ctx.set("revoked", True)
        old, old_turns = await legacy(ctx)
        turns: set[str] = set(old_turns)
        for wait in old.values():
            await settle(ctx, wait)
            turns.add(wait.turn)
        for entry in await entries(ctx, _WAIT):
            seen = await wait_at(ctx, entry)
            if seen is not None:
                await settle(ctx, seen)
                turns.add(seen.turn)
            ctx.clear(entry)
        for entry in await entries(ctx, _TURN):
            turns.add(entry[len(_TURN) :])
            ctx.clear(entry)
        for turn in sorted(turns):
            await ctx.generic_call(workflow_name, "revoke_control", b"{}", key=turn)
        return {"revoked": True}

    return index
