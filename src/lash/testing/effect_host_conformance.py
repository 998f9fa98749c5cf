"""Conformance kit for effect hosts seen from outside (persistence spec §7.7-§7.9).

A host is described once as an :class:`EffectHostHarness`: it opens *handles* (for a durable
host, each handle is an independently constructed client over the same substrate, so two
handles are two "cold" instances) and says which optional abilities it lacks, each with a
written reason. Cases are plain async functions over a harness; :func:`conformance_params`
pairs harness factories with cases as ``pytest.param`` objects with ids
``"<host>-<suite>-<case>"`` and marks a case whose needs the host lacks as skipped *with the
host's reason*, so nothing is left out silently.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from lash.errors import LashRuntimeError
from lash.runtime.await_events import (
    AWAIT_EVENT_UNKNOWN_OR_REVOKED,
    AwaitEventSigner,
    Resolution,
    ResolveReceipt,
    WaitIdentity,
)
from lash.runtime.effect_host import CancelReceipt, GateState, InlineEffectHost
from lash.runtime.scope import ExecutionScope
from lash.stores.base import DurabilityTier
from lash.types import CancellationEvidence

__all__ = [
    "ABILITIES",
    "ALL_CASES",
    "Case",
    "EffectHostHandle",
    "EffectHostHarness",
    "HarnessFactory",
    "InlineHarness",
    "conformance_params",
    "inline_harness",
]

ABILITIES = frozenset(
    {
        "await",  # park on a key with a deadline or a cancel event from outside a turn
        "session_sweep",  # revoke / cancel every wait of a session
        "cold",  # independently constructed handles share one substrate
        "reopen",  # the host can be torn down and brought back over the same substrate
        "gate_read",  # read a turn's cancel gate from outside
        "owner",  # act as a turn's owner from outside: open its gate, seal its completion
        "terminal",  # publish and attach to a turn's terminal promise from outside
        "request_cancel",  # request a turn's cancel
    }
)


class EffectHostHandle(Protocol):
    """One client of an effect host; every method mirrors a host operation."""

    @property
    def tier(self) -> DurabilityTier:
        """The host's declared durability tier."""
        ...

    async def mint(self, session_id: str, turn_id: str, wait: WaitIdentity) -> str:
        """The key of ``wait`` in the turn scope ``(session_id, turn_id)``."""
        ...

    async def resolve(self, key: str, resolution: Resolution) -> ResolveReceipt:
        """Resolve a key, first writer wins."""
        ...

    async def peek(self, key: str) -> Resolution | None:
        """The terminal resolution or None; raises ``await_event_unknown_or_revoked``."""
        ...

    async def wait(
        self, key: str, *, timeout_ms: int | None = None, cancel: asyncio.Event | None = None
    ) -> Resolution:
        """Park on a key (ability ``await``)."""
        ...

    async def revoke_session(self, session_id: str) -> None:
        """Tombstone a session's waits and control promises (ability ``session_sweep``)."""
        ...

    async def cancel_session(self, session_id: str) -> int:
        """Cancel a session's pending non-control waits (ability ``session_sweep``)."""
        ...

    async def request_cancel(
        self, session_id: str, turn_id: str, evidence: CancellationEvidence
    ) -> CancelReceipt:
        """Request a turn's cancel (ability ``request_cancel``)."""
        ...

    async def gate(self, session_id: str, turn_id: str) -> GateState:
        """A turn's cancel gate (ability ``gate_read``)."""
        ...

    async def seal(
        self, session_id: str, turn_id: str, local: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        """Seal a turn at its finish (ability ``owner``)."""
        ...

    async def start(self, session_id: str, turn_id: str) -> asyncio.Event:
        """Open a turn's gate as its owner does; the event fires on cancel (ability ``owner``)."""
        ...

    async def publish_terminal(self, session_id: str, turn_id: str, result: Any) -> None:
        """Publish a turn's result (ability ``terminal``)."""
        ...

    async def attach(self, session_id: str, turn_id: str) -> Any:
        """Wait for a turn's result (ability ``terminal``)."""
        ...


class EffectHostHarness(Protocol):
    """A host under test: handles over one substrate, and what it cannot do (with reasons)."""

    name: str

    @property
    def missing(self) -> Mapping[str, str]:
        """Ability -> why this host lacks it (at least five words)."""
        ...

    async def handle(self) -> EffectHostHandle:
        """A new handle (a cold instance for hosts with ``cold``)."""
        ...

    async def reopen(self) -> None:
        """Tear the host down and bring it back over the same substrate (ability ``reopen``)."""
        ...

    async def aclose(self) -> None:
        """Release everything the harness opened."""
        ...


HarnessFactory = Callable[[], Awaitable[EffectHostHarness]]


@dataclasses.dataclass(frozen=True)
class Case:
    """One vector: its suite, its name, the abilities it needs, and its body."""

    suite: str
    name: str
    needs: frozenset[str]
    run: Callable[[EffectHostHarness], Awaitable[None]]


def conformance_params(
    harnesses: Mapping[str, tuple[HarnessFactory, Mapping[str, str]]],
    cases: Iterable[Case] | None = None,
) -> list[Any]:
    """``pytest.param(factory, case)`` per host and case; lacking hosts skip with a reason."""
    import pytest

    params: list[Any] = []
    for host, (factory, missing) in harnesses.items():
        for reason in missing.values():
            if len(reason.split()) < 5:
                raise ValueError(f"{host}: a missing ability needs a real reason, got {reason!r}")
        for case in ALL_CASES if cases is None else cases:
            lacking = sorted(case.needs & set(missing))
            marks = [
                pytest.mark.skip(reason=f"{host} lacks {a}: {missing[a]}") for a in lacking[:1]
            ]
            params.append(
                pytest.param(factory, case, id=f"{host}-{case.suite}-{case.name}", marks=marks)
            )
    return params


# --- the inline host ------------------------------------------------------------------------


class _InlineHandle:
    def __init__(self, host: InlineEffectHost) -> None:
        self._host = host

    @property
    def tier(self) -> DurabilityTier:
        return self._host.tier

    async def mint(self, session_id: str, turn_id: str, wait: WaitIdentity) -> str:
        return self._host.await_event_key(ExecutionScope.turn(session_id, turn_id), wait)

    async def resolve(self, key: str, resolution: Resolution) -> ResolveReceipt:
        return await self._host.resolve_await_event(key, resolution)

    async def peek(self, key: str) -> Resolution | None:
        return await self._host.peek_await_event(key)

    async def wait(
        self, key: str, *, timeout_ms: int | None = None, cancel: asyncio.Event | None = None
    ) -> Resolution:
        # the inline registry finds the wait by its key; the scope argument is not consulted
        return await self._host.await_event(
            ExecutionScope.turn("conformance", "conformance"),
            key,
            replay_key="conformance",
            cancel=cancel,
            timeout_ms=timeout_ms,
        )

    async def revoke_session(self, session_id: str) -> None:
        await self._host.revoke_await_events_for_session(session_id)
        self._host.turn_control.revoke_session(session_id)

    async def cancel_session(self, session_id: str) -> int:
        return await self._host.cancel_await_events_for_session(session_id)

    async def request_cancel(
        self, session_id: str, turn_id: str, evidence: CancellationEvidence
    ) -> CancelReceipt:
        return self._host.turn_control.request_cancel(session_id, turn_id, evidence)

    async def gate(self, session_id: str, turn_id: str) -> GateState:
        return self._host.turn_control.peek(session_id, turn_id)

    async def seal(
        self, session_id: str, turn_id: str, local: CancellationEvidence | None
    ) -> CancellationEvidence | None:
        return self._host.turn_control.seal(session_id, turn_id, local)

    async def start(self, session_id: str, turn_id: str) -> asyncio.Event:
        return self._host.turn_control.register(session_id, turn_id)

    async def publish_terminal(self, session_id: str, turn_id: str, result: Any) -> None:
        self._host.turn_control.publish_terminal(session_id, turn_id, result)

    async def attach(self, session_id: str, turn_id: str) -> Any:
        return await self._host.turn_control.terminal(session_id, turn_id)


class InlineHarness:
    """The inline host: one in-memory instance; every handle is that same instance."""

    name = "inline"
    MISSING: Mapping[str, str] = {
        "cold": "inline waits live in one instance's memory, so no second instance shares them",
        "reopen": "an inline host keeps nothing, so there is no substrate to reopen",
    }

    def __init__(self) -> None:
        self._host = InlineEffectHost()

    @property
    def missing(self) -> Mapping[str, str]:
        return self.MISSING

    async def handle(self) -> EffectHostHandle:
        return _InlineHandle(self._host)

    async def reopen(self) -> None:
        raise LashRuntimeError("unsupported", "the inline host cannot reopen")

    async def aclose(self) -> None:
        return None


async def inline_harness() -> EffectHostHarness:
    """A fresh inline host."""
    return InlineHarness()


# --- cases ------------------------------------------------------------------------------------

ALL_CASES: list[Case] = []


def _case(
    suite: str, *needs: str
) -> Callable[[Callable[[EffectHostHarness], Awaitable[None]]], Any]:
    def register(fn: Callable[[EffectHostHarness], Awaitable[None]]) -> Any:
        assert set(needs) <= ABILITIES, needs
        ALL_CASES.append(Case(suite, fn.__name__, frozenset(needs), fn))
        return fn

    return register


_N = 0


def _ids(prefix: str) -> tuple[str, str]:
    """A fresh (session, turn) pair, so cases never collide on a shared substrate."""
    global _N
    _N += 1
    return f"{prefix}-s{_N}", f"{prefix}-t{_N}-{id(object())}"


def _evidence(request_id: str) -> CancellationEvidence:
    return CancellationEvidence(request_id=request_id, origin="conformance", reason="stop")


async def _assert_unknown(handle: EffectHostHandle, key: str) -> None:
    receipt = await handle.resolve(key, Resolution.ok("x"))
    assert receipt.outcome == "unknown_or_revoked", receipt
    try:
        await handle.peek(key)
    except LashRuntimeError as err:
        assert err.is_code(AWAIT_EVENT_UNKNOWN_OR_REVOKED), err
    else:
        raise AssertionError(f"peek accepted a bad key {key[:40]!r}")


def _tampered(key: str, s: str, t: str, wait: WaitIdentity) -> list[str]:
    """Altered signature, altered body, another host's signature, and non-keys."""
    prefix, body, sig = key.split(".")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    foreign = AwaitEventSigner(b"some-other-host-secret-0123456789")
    return [
        f"{prefix}.{body}.{flipped}",
        f"{prefix}.{body[:-2]}.{sig}",
        foreign.mint(ExecutionScope.turn(s, t), wait),
        f"other.{body}.{sig}",
        key + ".extra",
        "",
        "not-a-key",
    ]


# effect_host_await_events (§7.7)


@_case("await_events")
async def key_is_stable(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("stable")
    wait = WaitIdentity.tool_completion("call-1")
    key = await a.mint(s, t, wait)
    assert await a.mint(s, t, wait) == key
    assert await a.mint(s, t, WaitIdentity.tool_completion("call-2")) != key
    assert await a.mint(s, t + "x", wait) != key
    assert await a.peek(key) is None


@_case("await_events")
async def accepts_early_resolution(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("early")
    key = await a.mint(s, t, WaitIdentity.custom("approval"))
    first = Resolution.ok({"approved": True})
    receipt = await a.resolve(key, first)
    assert (receipt.outcome, receipt.terminal) == ("resolved", first)
    assert await a.peek(key) == first


@_case("await_events", "await")
async def early_resolution_reaches_a_later_waiter(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("early-wait")
    key = await a.mint(s, t, WaitIdentity.custom("approval"))
    await a.resolve(key, Resolution.ok(1))
    assert await a.wait(key) == Resolution.ok(1)


@_case("await_events")
async def duplicate_resolution_is_terminal(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("dup")
    key = await a.mint(s, t, WaitIdentity.tool_completion("c"))
    first = Resolution.err("denied", "no")
    await a.resolve(key, first)
    again = await a.resolve(key, Resolution.ok("late"))
    assert (again.outcome, again.terminal) == ("already_resolved", first)
    assert await a.peek(key) == first


@_case("await_events", "await")
async def cancel_and_timeout_are_terminal(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("ct")
    timed = await a.mint(s, t, WaitIdentity.custom("timed"))
    assert await a.wait(timed, timeout_ms=0) == Resolution.timeout()
    late = await a.resolve(timed, Resolution.ok())
    assert (late.outcome, late.terminal) == ("already_resolved", Resolution.timeout())
    cancelled = await a.mint(s, t, WaitIdentity.custom("cancelled"))
    stop = asyncio.Event()
    stop.set()
    assert await a.wait(cancelled, cancel=stop) == Resolution.cancelled()
    assert await a.peek(cancelled) == Resolution.cancelled()


@_case("await_events", "session_sweep")
async def revokes_session_scope(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("revoke")
    key = await a.mint(s, t, WaitIdentity.custom("w"))
    other_s, other_t = _ids("revoke-other")
    other = await a.mint(other_s, other_t, WaitIdentity.custom("w"))
    await a.revoke_session(s)
    await _assert_unknown(a, key)
    try:
        await a.mint(s, t, WaitIdentity.custom("w2"))
    except LashRuntimeError as err:
        assert err.is_code(AWAIT_EVENT_UNKNOWN_OR_REVOKED)
    else:
        raise AssertionError("a revoked session minted a key")
    assert (await a.resolve(other, Resolution.ok())).outcome == "resolved"


@_case("await_events", "session_sweep", "await")
async def session_cancel_resolves_outstanding_waits(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("sweep")
    k1 = await a.mint(s, t, WaitIdentity.custom("one"))
    k2 = await a.mint(s, t, WaitIdentity.tool_completion("c2"))
    parked = asyncio.ensure_future(a.wait(k1))
    await asyncio.sleep(0)
    await a.peek(k2)  # materialize the second wait
    assert await a.cancel_session(s) == 2
    assert await asyncio.wait_for(parked, 5) == Resolution.cancelled()
    assert await a.peek(k2) == Resolution.cancelled()
    fresh = await a.mint(s, t, WaitIdentity.custom("after"))
    assert (await a.resolve(fresh, Resolution.ok(3))).outcome == "resolved"
    assert await a.wait(fresh) == Resolution.ok(3)


@_case("await_events")
async def rejects_tampered_keys(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("tamper")
    key = await a.mint(s, t, WaitIdentity.custom("w"))
    for bad in _tampered(key, s, t, WaitIdentity.custom("w")):
        await _assert_unknown(a, bad)
    assert await a.peek(key) is None


# await_event_cold (§7.8)


_IDENTITIES = [
    WaitIdentity.tool_completion("call-cold"),
    WaitIdentity(kind="process_signal", process_id="p1", signal_name="go", ordinal=1),
    WaitIdentity.custom("cold-custom"),
    WaitIdentity(kind="turn_cancel_gate"),
    WaitIdentity(kind="turn_terminal"),
]


@_case("cold", "cold")
async def cold_tier_is_durable(h: EffectHostHarness) -> None:
    assert (await h.handle()).tier is DurabilityTier.DURABLE


@_case("cold", "cold", "await")
async def cold_mint_resolve_observe_all_identities(h: EffectHostHarness) -> None:
    s, t = _ids("cold-all")
    for n, wait in enumerate(_IDENTITIES):
        a, b, c = await h.handle(), await h.handle(), await h.handle()
        key = await a.mint(s, t, wait)
        assert await b.mint(s, t, wait) == key
        assert await c.peek(key) is None
        resolution = Resolution.ok({"n": n})
        assert (await b.resolve(key, resolution)).outcome == "resolved"
        assert await c.peek(key) == resolution
        assert await a.peek(key) == resolution
        assert await c.wait(key) == resolution
        again = await c.resolve(key, Resolution.cancelled())
        assert (again.outcome, again.terminal) == ("already_resolved", resolution)


@_case("cold", "cold")
async def cold_first_writer_wins(h: EffectHostHarness) -> None:
    s, t = _ids("cold-fww")
    a, b = await h.handle(), await h.handle()
    key = await a.mint(s, t, WaitIdentity.custom("race"))
    settle, cancel = await asyncio.gather(
        a.resolve(key, Resolution.ok("settled")), b.resolve(key, Resolution.cancelled())
    )
    outcomes = sorted([settle.outcome, cancel.outcome])
    assert outcomes == ["already_resolved", "resolved"], outcomes
    assert settle.terminal == cancel.terminal
    assert await (await h.handle()).peek(key) == settle.terminal


@_case("cold", "cold", "await")
async def cold_replayed_parked_owner(h: EffectHostHarness) -> None:
    s, t = _ids("cold-park")
    a, b, c, d = [await h.handle() for _ in range(4)]
    key = await a.mint(s, t, WaitIdentity.custom("parked"))
    parked = asyncio.ensure_future(a.wait(key))
    await asyncio.sleep(0)
    assert (await b.resolve(key, Resolution.ok("go"))).outcome == "resolved"
    assert await asyncio.wait_for(parked, 5) == Resolution.ok("go")
    assert await c.wait(key) == Resolution.ok("go")
    assert await d.wait(key) == Resolution.ok("go")


@_case("cold", "cold", "owner", "request_cancel")
async def cold_seal_and_cancel_race_agree(h: EffectHostHarness) -> None:
    """An owner's seal and another instance's cancel request race for one gate: either the
    completion won (no evidence, ``completion_won_race``) or the cancel did (its evidence)."""
    s, t = _ids("cold-seal-race")
    owner, other = await h.handle(), await h.handle()
    await owner.start(s, t)
    sealed, receipt = await asyncio.gather(
        owner.seal(s, t, None), other.request_cancel(s, t, _evidence("race"))
    )
    if sealed is None:
        assert receipt.outcome == "completion_won_race", receipt
    else:
        assert (receipt.outcome, receipt.evidence, sealed) == (
            "requested",
            _evidence("race"),
            _evidence("race"),
        )


@_case("cold", "cold", "reopen")
async def cold_key_stability(h: EffectHostHarness) -> None:
    s, t = _ids("cold-stable")
    wait = WaitIdentity.tool_completion("call-stable")
    key = await (await h.handle()).mint(s, t, wait)
    await h.reopen()
    again = await h.handle()
    assert await again.mint(s, t, wait) == key
    assert (await again.resolve(key, Resolution.ok("after"))).outcome == "resolved"


@_case("cold", "cold", "await")
async def cold_auth_tamper_matrix(h: EffectHostHarness) -> None:
    s, t = _ids("cold-tamper")
    a = await h.handle()
    key = await a.mint(s, t, WaitIdentity.custom("w"))
    for bad in _tampered(key, s, t, WaitIdentity.custom("w")):
        other = await h.handle()
        await _assert_unknown(other, bad)
        try:
            await other.wait(bad, timeout_ms=0)
        except LashRuntimeError as err:
            assert err.is_code(AWAIT_EVENT_UNKNOWN_OR_REVOKED), err
        else:
            raise AssertionError(f"a wait accepted a bad key {bad[:40]!r}")
    assert await (await h.handle()).peek(key) is None  # nothing materialized or resolved


@_case("cold", "cold", "reopen", "session_sweep")
async def cold_revocation_survives_reopen(h: EffectHostHarness) -> None:
    s, t = _ids("cold-revoke")
    key = await (await h.handle()).mint(s, t, WaitIdentity.custom("w"))
    await (await h.handle()).revoke_session(s)
    await h.reopen()
    await _assert_unknown(await h.handle(), key)


@_case("cold", "cold", "session_sweep")
async def cold_cancel_sweep_excludes_turn_control(h: EffectHostHarness) -> None:
    s, t = _ids("cold-sweep")
    a = await h.handle()
    plain = await a.mint(s, t, WaitIdentity.custom("w"))
    gate = await a.mint(s, t, WaitIdentity(kind="turn_cancel_gate"))
    await a.peek(plain)
    await a.peek(gate)
    assert await (await h.handle()).cancel_session(s) == 1
    assert await a.peek(plain) == Resolution.cancelled()
    assert await a.peek(gate) is None
    still_open = await (await h.handle()).resolve(gate, Resolution.ok("still-open"))
    assert still_open.outcome == "resolved"  # the sweep left the control key writable


@_case("cold", "cold", "terminal")
async def cold_terminal_attach_both_orders(h: EffectHostHarness) -> None:
    s, t = _ids("cold-term")
    early = asyncio.ensure_future((await h.handle()).attach(s, t))
    await asyncio.sleep(0)
    await (await h.handle()).publish_terminal(s, t, {"outcome": "done"})
    assert await asyncio.wait_for(early, 5) == {"outcome": "done"}
    assert await (await h.handle()).attach(s, t) == {"outcome": "done"}


# turn_control (§7.9)


@_case("turn_control", "request_cancel", "owner", "terminal")
async def cancel_before_start_duplicate_replay_and_terminal_attach(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("tc-before")
    first = await a.request_cancel(s, t, _evidence("r1"))
    assert (first.outcome, first.evidence) == ("requested", _evidence("r1"))
    durable = a.tier is DurabilityTier.DURABLE
    assert first.durability_tier == ("durable" if durable else "inline")
    dup = await a.request_cancel(s, t, _evidence("r2"))
    assert (dup.outcome, dup.evidence) == ("already_requested", _evidence("r1"))
    fired = await a.start(s, t)
    assert fired.is_set()  # the turn finds its gate resolved when it starts
    replayed = await a.start(s, t)
    assert replayed.is_set()
    assert await a.seal(s, t, None) == _evidence("r1")
    attached = asyncio.ensure_future(a.attach(s, t))
    await asyncio.sleep(0)
    await a.publish_terminal(s, t, "cancelled")
    await a.publish_terminal(s, t, "second")
    assert await asyncio.wait_for(attached, 5) == "cancelled"
    assert await a.attach(s, t) == "cancelled"


@_case("turn_control", "request_cancel", "owner", "gate_read")
async def completion_seal_vs_cancel_is_first_writer_wins(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("tc-seal")
    await a.start(s, t)
    assert await a.seal(s, t, None) is None
    assert (await a.gate(s, t)).status == "completion_sealed"
    assert (await a.request_cancel(s, t, _evidence("late"))).outcome == "completion_won_race"
    s2, t2 = _ids("tc-seal2")
    await a.start(s2, t2)
    assert (await a.request_cancel(s2, t2, _evidence("early"))).outcome == "requested"
    assert await a.seal(s2, t2, None) == _evidence("early")
    assert (await a.gate(s2, t2)).status == "cancel_requested"


@_case("turn_control", "request_cancel", "owner", "gate_read", "session_sweep")
async def exact_scope_and_session_sweep_isolation(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("tc-exact")
    other_t = t + "-other"
    gate_a = await a.start(s, t)
    gate_b = await a.start(s, other_t)
    key = await a.mint(s, t, WaitIdentity.custom("w"))
    await a.peek(key)
    assert await a.cancel_session(s) == 1
    assert not gate_a.is_set() and (await a.gate(s, t)).status == "open"
    assert (await a.request_cancel(s, t, _evidence("only-a"))).outcome == "requested"
    await asyncio.wait_for(gate_a.wait(), 10)  # a remote owner hears of it a moment later
    assert not gate_b.is_set()
    assert (await a.gate(s, other_t)).status == "open"
    future_t = t + "-future"
    assert (await a.request_cancel(s, future_t, _evidence("later"))).outcome == "requested"
    assert (await a.gate(s, other_t)).status == "open"


@_case("turn_control", "request_cancel", "terminal", "session_sweep")
async def session_deletion_revokes_control_promises(h: EffectHostHarness) -> None:
    a = await h.handle()
    s, t = _ids("tc-delete")
    attached = asyncio.ensure_future(a.attach(s, t))
    await asyncio.sleep(0)
    await a.revoke_session(s)
    try:
        await asyncio.wait_for(attached, 5)
    except LashRuntimeError as err:
        assert err.is_code("turn_control_unknown_or_revoked"), err
    else:
        raise AssertionError("an attach outlived its session's deletion")
    assert (await a.request_cancel(s, t, _evidence("x"))).outcome == "unknown_or_revoked"
    await a.publish_terminal(s, t, "ghost")
    try:
        await a.attach(s, t)
    except LashRuntimeError as err:
        assert err.is_code("turn_control_unknown_or_revoked"), err
    else:
        raise AssertionError("a deleted session's terminal was attachable")


@_case("turn_control", "request_cancel", "gate_read")
async def cancel_requests_are_exact_per_turn_and_first_writer_wins(h: EffectHostHarness) -> None:
    """The part of the four vectors above a host answers without owning the turn."""
    a, b = await h.handle(), await h.handle()
    s, t = _ids("tc-outside")
    other_t = t + "-other"
    assert (await a.gate(s, t)).status == "open"
    first = await a.request_cancel(s, t, _evidence("r1"))
    assert (first.outcome, first.evidence) == ("requested", _evidence("r1"))
    dup = await b.request_cancel(s, t, _evidence("r2"))
    assert (dup.outcome, dup.evidence) == ("already_requested", _evidence("r1"))
    assert await b.gate(s, t) == GateState(status="cancel_requested", evidence=_evidence("r1"))
    assert (await a.gate(s, other_t)).status == "open"
    assert (await b.request_cancel(s, other_t, _evidence("r3"))).outcome == "requested"
    assert (await a.gate(s, t)).evidence == _evidence("r1")
