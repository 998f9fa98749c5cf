"""Durable waits: one-shot keyed promises a turn parks on and a host resolves by key.

A tool that cannot finish right away returns :func:`lash.tools.pending`; the turn then parks on
the wait's :data:`AwaitEventKey` until someone resolves it (:class:`Resolution`), the deadline
passes, or the turn is cancelled, and the resolution becomes the tool's final output.

Keys are opaque strings, stable per ``(scope, wait identity)`` and signed with HMAC-SHA256
under a per-host secret: a key that was altered, or signed by another host, is simply
``unknown_or_revoked`` (the answer never says which check failed). Resolution is first writer
wins, and a resolution that arrives before anybody waits is kept for the waiter.

The inline registry here lives in memory and belongs to one host instance; the Restate host
keeps the same keys but stores each wait as a workflow promise.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from lash.errors import LashRuntimeError
from lash.runtime.scope import ExecutionScope
from lash.types import ToolCallOutput
from lash.types._base import Record

__all__ = [
    "AWAIT_EVENT_UNKNOWN_OR_REVOKED",
    "AWAIT_EVENT_UNSUPPORTED",
    "AwaitEventKey",
    "AwaitEventRegistry",
    "AwaitEventResolver",
    "AwaitEventSigner",
    "AwaitEventTarget",
    "PendingWait",
    "Resolution",
    "ResolveReceipt",
    "WaitIdentity",
    "output_from_resolution",
    "parse_pending",
    "settle_pending",
]

AwaitEventKey = str
"""An opaque, signed key naming one durable wait."""

AWAIT_EVENT_UNKNOWN_OR_REVOKED = "await_event_unknown_or_revoked"
AWAIT_EVENT_UNSUPPORTED = "await_event_unsupported"
INVALID_AWAIT_EVENT = "invalid_await_event"

_KEY_PREFIX = "lash-aek1"
_REVOKED_CACHE = 4096

WaitKind = Literal[
    "tool_completion", "process_signal", "turn_cancel_gate", "turn_terminal", "custom"
]
ResolutionKind = Literal["ok", "err", "timeout", "cancelled"]


class WaitIdentity(Record, frozen=True, kw_only=True):
    """What a wait is for, within its scope."""

    kind: WaitKind
    tool_call_id: str | None = None
    key: str | None = None
    process_id: str | None = None
    signal_name: str | None = None
    ordinal: int | None = None

    def __post_init__(self) -> None:
        needed: dict[str, tuple[str, ...]] = {
            "tool_completion": ("tool_call_id",),
            "custom": ("key",),
            "process_signal": ("process_id", "signal_name"),
        }
        for name in needed.get(self.kind, ()):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise LashRuntimeError(
                    INVALID_AWAIT_EVENT, f"a {self.kind} wait needs a non-empty {name}"
                )
        if self.kind == "process_signal" and (self.ordinal is None or self.ordinal < 1):
            raise LashRuntimeError(INVALID_AWAIT_EVENT, "a process_signal wait needs ordinal >= 1")

    @classmethod
    def tool_completion(cls, tool_call_id: str) -> WaitIdentity:
        """The completion of one tool call."""
        return cls(kind="tool_completion", tool_call_id=tool_call_id)

    @classmethod
    def custom(cls, key: str) -> WaitIdentity:
        """A wait named by the application."""
        return cls(kind="custom", key=key)

    @property
    def is_turn_control(self) -> bool:
        """Reserved control promises, which session cancel sweeps leave alone."""
        return self.kind in ("turn_cancel_gate", "turn_terminal")


class Resolution(Record, frozen=True, kw_only=True):
    """How a wait ended: ``ok`` with a JSON value, ``err``, ``timeout`` or ``cancelled``."""

    kind: ResolutionKind
    value: Any = None
    code: str | None = None
    message: str | None = None

    @classmethod
    def ok(cls, value: Any = None) -> Resolution:
        """Success with a JSON value (the tool's payload)."""
        return cls(kind="ok", value=value)

    @classmethod
    def err(cls, code: str, message: str = "") -> Resolution:
        """Failure with a stable code (the tool's error code)."""
        return cls(kind="err", code=code, message=message)

    @classmethod
    def timeout(cls) -> Resolution:
        """The deadline passed first."""
        return cls(kind="timeout")

    @classmethod
    def cancelled(cls) -> Resolution:
        """The wait (or its turn, or its session) was cancelled."""
        return cls(kind="cancelled")


class ResolveReceipt(Record, frozen=True, kw_only=True):
    """The answer to a resolve: ``terminal`` is the resolution that won (when known)."""

    outcome: Literal["resolved", "already_resolved", "unknown_or_revoked"]
    terminal: Resolution | None = None


class AwaitEventTarget(Record, frozen=True, kw_only=True):
    """What an authenticated key names; ``key_id`` is a short stable digest of it."""

    scope: ExecutionScope
    wait: WaitIdentity
    key_id: str


class _KeyBody(Record, frozen=True, kw_only=True):
    scope: ExecutionScope
    wait: WaitIdentity


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AwaitEventSigner:
    """Mints and authenticates keys under one secret (32 random bytes unless given)."""

    def __init__(self, secret: bytes | None = None) -> None:
        if secret is not None and len(secret) < 16:
            raise LashRuntimeError(INVALID_AWAIT_EVENT, "an await-event secret needs >= 16 bytes")
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    def _sign(self, body: bytes) -> str:
        return _b64(hmac.new(self._secret, body, hashlib.sha256).digest())

    def mint(self, scope: ExecutionScope, wait: WaitIdentity) -> AwaitEventKey:
        """The key of ``wait`` in ``scope``: the same inputs always give the same key."""
        body = msgspec.json.encode({"scope": scope, "wait": wait}, order="sorted")
        return f"{_KEY_PREFIX}.{_b64(body)}.{self._sign(body)}"

    def open(self, key: object) -> AwaitEventTarget | None:
        """What ``key`` names, or None for anything this signer did not mint."""
        if not isinstance(key, str) or len(key) > 8192:
            return None
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != _KEY_PREFIX:
            return None
        try:
            body = _unb64(parts[1])
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(body), parts[2]):
            return None
        try:
            decoded = msgspec.json.decode(body, type=_KeyBody)
        except (msgspec.DecodeError, msgspec.ValidationError, LashRuntimeError):
            return None
        key_id = hashlib.sha256(body).hexdigest()[:32]
        return AwaitEventTarget(scope=decoded.scope, wait=decoded.wait, key_id=key_id)


def _unknown(what: str) -> LashRuntimeError:
    return LashRuntimeError(AWAIT_EVENT_UNKNOWN_OR_REVOKED, f"{what}: unknown or revoked key")


@dataclass
class _Entry:
    session_id: str | None
    turn_control: bool
    terminal: Resolution | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class AwaitEventRegistry:
    """In-memory durable waits owned by one host instance."""

    def __init__(self, signer: AwaitEventSigner | None = None) -> None:
        self._signer = signer if signer is not None else AwaitEventSigner()
        self._entries: dict[str, _Entry] = {}
        self._revoked: OrderedDict[str, None] = OrderedDict()

    @property
    def signer(self) -> AwaitEventSigner:
        """The signer whose keys this registry accepts."""
        return self._signer

    def _open(self, key: object) -> tuple[AwaitEventTarget, _Entry] | None:
        target = self._signer.open(key)
        if target is None or target.scope.session_id in self._revoked:
            return None
        entry = self._entries.get(target.key_id)
        if entry is None:
            entry = _Entry(
                session_id=target.scope.session_id, turn_control=target.wait.is_turn_control
            )
            self._entries[target.key_id] = entry
        return target, entry

    def key(self, scope: ExecutionScope, wait: WaitIdentity) -> AwaitEventKey:
        """Mint the key of ``wait``; a revoked session mints nothing."""
        if scope.session_id is not None and scope.session_id in self._revoked:
            raise _unknown(f"session {scope.session_id!r} was revoked")
        return self._signer.mint(scope, wait)

    def resolve(self, key: object, resolution: Resolution) -> ResolveReceipt:
        """First writer wins; an early resolution waits for its waiter."""
        opened = self._open(key)
        if opened is None:
            return ResolveReceipt(outcome="unknown_or_revoked")
        _, entry = opened
        if entry.terminal is not None:
            return ResolveReceipt(outcome="already_resolved", terminal=entry.terminal)
        entry.terminal = resolution
        entry.done.set()
        return ResolveReceipt(outcome="resolved", terminal=resolution)

    def peek(self, key: object) -> Resolution | None:
        """The terminal resolution, or None while pending; raises for a bad key."""
        opened = self._open(key)
        if opened is None:
            raise _unknown("peek")
        return opened[1].terminal

    async def wait(
        self,
        key: object,
        *,
        cancel: asyncio.Event | None = None,
        timeout_ms: int | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> Resolution:
        """Park until resolved; a cancel or a passed deadline resolves the wait itself."""
        opened = self._open(key)
        if opened is None:
            raise _unknown("await")
        _, entry = opened
        if entry.terminal is None:
            racers: dict[asyncio.Future[Any], Resolution | None] = {
                asyncio.ensure_future(entry.done.wait()): None
            }
            if cancel is not None:
                racers[asyncio.ensure_future(cancel.wait())] = Resolution.cancelled()
            if timeout_ms is not None:
                racers[asyncio.ensure_future(sleep(max(0, timeout_ms) / 1000))] = (
                    Resolution.timeout()
                )
            try:
                finished, _ = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for racer in racers:
                    racer.cancel()
            if entry.terminal is None:
                winners = [racers[f] for f in racers if f in finished]
                self.resolve(key, next(w for w in winners if w is not None))
        assert entry.terminal is not None
        return entry.terminal

    def revoke_session(self, session_id: str) -> None:
        """Tombstone a session: its keys become unknown; parked waiters end cancelled."""
        self._revoked[session_id] = None
        self._revoked.move_to_end(session_id)
        while len(self._revoked) > _REVOKED_CACHE:
            self._revoked.popitem(last=False)
        for key_id in [k for k, e in self._entries.items() if e.session_id == session_id]:
            entry = self._entries.pop(key_id)
            if entry.terminal is None:
                entry.terminal = Resolution.cancelled()
                entry.done.set()

    def unrevoke_session(self, session_id: str) -> None:
        """Allow a recreated session id to mint keys again."""
        self._revoked.pop(session_id, None)

    def cancel_session(self, session_id: str) -> int:
        """Resolve every pending (non turn-control) wait of a session as cancelled."""
        count = 0
        for entry in self._entries.values():
            if entry.session_id == session_id and not entry.turn_control and entry.terminal is None:
                entry.terminal = Resolution.cancelled()
                entry.done.set()
                count += 1
        return count


@runtime_checkable
class AwaitEventResolver(Protocol):
    """A host that can park turns on durable waits."""

    def await_event_key(self, scope: ExecutionScope, wait: WaitIdentity) -> AwaitEventKey:
        """The stable signed key of ``wait`` in ``scope``."""
        ...

    async def resolve_await_event(self, key: str, resolution: Resolution) -> ResolveReceipt:
        """Resolve a wait, first writer wins."""
        ...

    async def peek_await_event(self, key: str) -> Resolution | None:
        """A wait's terminal resolution, or None while it is pending."""
        ...

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
        """Park on a wait until it resolves, is cancelled or times out."""
        ...

    async def revoke_await_events_for_session(self, session_id: str) -> None:
        """Tombstone a session's waits forever."""
        ...

    async def cancel_await_events_for_session(self, session_id: str) -> int:
        """Resolve a session's outstanding waits as cancelled; later waits work normally."""
        ...


class PendingWait(Record, frozen=True, kw_only=True):
    """A tool's request to park: which wait, and how long at most (milliseconds)."""

    wait: WaitIdentity
    deadline_ms: int | None = None


def parse_pending(output: ToolCallOutput, call_id: str) -> PendingWait | None | str:
    """The pending request in a successful output's control, None without one, or an error text.

    A request without a ``wait`` waits for the call's own completion.
    """
    if not output.ok or not output.control or "pending" not in output.control:
        return None
    raw = output.control["pending"]
    if not isinstance(raw, dict):
        return "control.pending must be an object"
    data = dict(raw)
    if data.get("wait") is None:
        data["wait"] = {"kind": "tool_completion", "tool_call_id": call_id}
    try:
        pending = msgspec.convert(data, type=PendingWait)
    except (msgspec.ValidationError, LashRuntimeError) as err:
        return f"invalid pending request: {err}"
    if pending.deadline_ms is not None and pending.deadline_ms < 0:
        return "pending deadline_ms must be >= 0"
    return pending


def output_from_resolution(resolution: Resolution, *, attempts: int = 1) -> ToolCallOutput:
    """The final tool output a resolution stands for."""
    if resolution.kind == "ok":
        return ToolCallOutput(status="success", payload=resolution.value, attempts=attempts)
    if resolution.kind == "err":
        return ToolCallOutput(
            status="failure",
            payload=resolution.message or resolution.code or "failed",
            error_code=resolution.code or "tool_error",
            attempts=attempts,
        )
    if resolution.kind == "timeout":
        return ToolCallOutput(
            status="failure",
            payload="the tool's completion did not arrive before its deadline",
            error_code="await_event_timeout",
            attempts=attempts,
        )
    return ToolCallOutput(
        status="cancelled",
        payload="the tool's completion wait was cancelled",
        error_code="cancelled",
        attempts=attempts,
    )


async def settle_pending(
    host: object,
    scope: ExecutionScope,
    call_id: str,
    replay_key: str,
    output: ToolCallOutput,
    *,
    cancel: asyncio.Event | None,
    sleep: Callable[[float], Awaitable[Any]],
) -> ToolCallOutput:
    """Turn a pending tool output into its final one by parking on the wait through ``host``."""
    pending = parse_pending(output, call_id)
    if pending is None:
        return output
    if isinstance(pending, str):
        return ToolCallOutput(status="failure", payload=pending, error_code=INVALID_AWAIT_EVENT)
    if not isinstance(host, AwaitEventResolver):
        return ToolCallOutput(
            status="failure",
            payload="this effect host cannot park a turn on a durable wait",
            error_code=AWAIT_EVENT_UNSUPPORTED,
        )
    try:
        key = host.await_event_key(scope, pending.wait)
        resolution = await host.await_event(
            scope,
            key,
            replay_key=f"{replay_key}:await",
            cancel=cancel,
            timeout_ms=pending.deadline_ms,
            sleep=sleep,
        )
    except LashRuntimeError as err:
        if not err.is_code(AWAIT_EVENT_UNKNOWN_OR_REVOKED):
            raise
        resolution = Resolution.cancelled()
    final = output_from_resolution(resolution, attempts=output.attempts)
    if output.usage:
        final = msgspec.structs.replace(final, usage=output.usage)
    return final
