"""Holding a session execution lease while a turn runs.

A :class:`LeaseGuard` claims the lease (taking over a holder that is provably dead), renews it
every ``renew_s`` in the background, and if a renewal fails marks itself *lost* and wakes the
turn so it stops early. Losing the lease is not a cancellation: the fenced commit is rejected
and the caller sees ``session_execution_lease_lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from lash.errors import LashRuntimeError, RuntimeErrorCode, StoreError
from lash.stores.base import SessionStore
from lash.stores.liveness import is_definitely_dead
from lash.types import LeaseAcquired, LeaseFence, LeaseOwner, SessionLease
from lash.types._base import Record

__all__ = ["LeaseGuard", "LeaseTimings", "acquire_lease"]

log = logging.getLogger(__name__)


class LeaseTimings(Record, frozen=True, kw_only=True):
    """Lease TTL and renewal interval; ``ttl_s >= 3 * renew_s`` so two renewals may be missed."""

    ttl_s: float = 30.0
    renew_s: float = 10.0

    def __post_init__(self) -> None:
        if self.ttl_s < 0.001 or self.renew_s < 0.001:
            raise ValueError("lease ttl and renew interval must be at least 1 ms")
        if self.ttl_s < 3 * self.renew_s:
            raise ValueError(
                f"lease ttl ({self.ttl_s}s) must be at least 3x the renew interval "
                f"({self.renew_s}s) so an owner survives two missed renewals"
            )

    @classmethod
    def from_ttl(cls, ttl_s: float) -> LeaseTimings:
        """Renew every third of the TTL."""
        return cls(ttl_s=ttl_s, renew_s=ttl_s / 3)

    @property
    def ttl_ms(self) -> int:
        """TTL in milliseconds."""
        return max(1, int(self.ttl_s * 1000))


Sleep = Callable[[float], Awaitable[None]]


async def acquire_lease(
    store: SessionStore, session_id: str, owner: LeaseOwner, ttl_ms: int
) -> SessionLease | None:
    """Claim the lease, reclaiming from a provably dead holder; ``None`` when busy."""
    try:
        claim = await store.try_claim_lease(session_id, owner, ttl_ms)
        if isinstance(claim, LeaseAcquired):
            return claim.lease
        holder = claim.holder
        if not is_definitely_dead(holder.owner, owner):
            return None
        claim = await store.reclaim_lease(session_id, owner, holder.fence(), ttl_ms)
        return claim.lease if isinstance(claim, LeaseAcquired) else None
    except StoreError as err:
        raise LashRuntimeError(
            RuntimeErrorCode.STORE_COMMIT_FAILED, f"session lease claim failed: {err}"
        ) from err


class LeaseGuard:
    """A held lease plus its renewal task."""

    def __init__(
        self,
        store: SessionStore,
        lease: SessionLease,
        timings: LeaseTimings,
        *,
        on_lost: Callable[[], None] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self.lease = lease
        self._timings = timings
        self._on_lost = on_lost
        self._sleep = sleep
        self.lost = False
        self.released = False
        self._task: asyncio.Task[None] | None = None

    @property
    def fence(self) -> LeaseFence:
        """The fence to present with every write."""
        return self.lease.fence()

    @property
    def generation(self) -> int:
        """The fencing token (the claim generation)."""
        return self.lease.fencing_token

    def start(self) -> None:
        """Start background renewal."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while not self.released and not self.lost:
            await self._sleep(self._timings.renew_s)
            if self.released:
                return
            try:
                self.lease = await self._store.renew_lease(self.fence, self._timings.ttl_ms)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # any renewal failure means the lease is gone
                log.warning("session %s lease renewal failed: %s", self.lease.session_id, err)
                self.lost = True
                if self._on_lost is not None:
                    self._on_lost()
                return

    async def stop(self) -> None:
        """Stop renewing (the lease stays until released or expired)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def mark_released(self) -> None:
        """The commit released the lease atomically."""
        self.released = True

    async def release(self) -> None:
        """Stop renewing and release the lease (best effort, fenced)."""
        await self.stop()
        if self.released:
            return
        self.released = True
        try:
            await self._store.release_lease(self.fence)
        except StoreError as err:
            raise LashRuntimeError(
                RuntimeErrorCode.STORE_COMMIT_FAILED, f"session lease release failed: {err}"
            ) from err
