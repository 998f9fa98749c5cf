"""The session execution lease on PostgreSQL: lock the row, decide with ``_logic``, write back.

:func:`lock_lease` serialises everything that decides on one session's lease: a
transaction-scoped advisory lock on the session id (so two first claims of a session that has
no row yet cannot both win under READ COMMITTED), then ``SELECT … FOR UPDATE`` on the row,
held until the transaction ends. "Now" is read from the database only after the lock is
held, so a transaction that waited for the lock never decides with a stale time.
"""

from __future__ import annotations

from lash.errors import StoreError, StoreErrorKind
from lash.stores import _logic
from lash.stores.postgres._conn import Conn, Now
from lash.stores.sqlite._rows import LEASE_COLUMNS, enc, lease_from_row
from lash.types import LeaseAcquired, LeaseClaim, LeaseFence, LeaseOwner, SessionLease

__all__ = [
    "current_lease",
    "lock_lease",
    "reclaim",
    "release",
    "renew",
    "require_fence",
    "try_claim",
    "write_lease",
]

_SESSION_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':' || $1, 0))"
_SELECT = f"SELECT {LEASE_COLUMNS} FROM lash_session_leases WHERE session_id = $1"
_UPSERT = """
INSERT INTO lash_session_leases (session_id, owner_id, incarnation_id, liveness_json,
                                 lease_token, fencing_token, claimed_at_ms, expires_at_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (session_id) DO UPDATE SET
    owner_id = excluded.owner_id,
    incarnation_id = excluded.incarnation_id,
    liveness_json = excluded.liveness_json,
    lease_token = excluded.lease_token,
    fencing_token = excluded.fencing_token,
    claimed_at_ms = excluded.claimed_at_ms,
    expires_at_ms = excluded.expires_at_ms
"""


def _check_session_id(session_id: str) -> None:
    if not session_id:
        raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "session id must be non-empty")


async def current_lease(conn: Conn, session_id: str) -> SessionLease | None:
    """The lease row, unlocked (reads and lease-less liveness checks)."""
    row = await conn.fetchrow(_SELECT, session_id)
    return lease_from_row(tuple(row) if row is not None else None)


async def lock_lease(conn: Conn, session_id: str, now: Now) -> tuple[SessionLease | None, int]:
    """Lock the session's lease for the rest of the transaction; ``(row, db now)``."""
    await conn.execute(_SESSION_LOCK, session_id)
    row = await conn.fetchrow(_SELECT + " FOR UPDATE", session_id)
    return lease_from_row(tuple(row) if row is not None else None), await now(conn)


async def write_lease(conn: Conn, lease: SessionLease) -> None:
    """Insert or overwrite the row of ``lease.session_id``."""
    owner = lease.owner
    await conn.execute(
        _UPSERT,
        lease.session_id,
        owner.owner_id,
        owner.incarnation_id,
        enc(owner.liveness) if owner.liveness is not None else None,
        lease.lease_token,
        lease.fencing_token,
        lease.claimed_at_ms,
        lease.expires_at_ms,
    )


async def try_claim(
    conn: Conn, session_id: str, owner: LeaseOwner, ttl_ms: int, now: Now
) -> LeaseClaim:
    """Acquire, re-enter or report busy."""
    _check_session_id(session_id)
    current, now_ms = await lock_lease(conn, session_id, now)
    decision = _logic.decide_try_claim(current, session_id, owner, ttl_ms, now_ms)
    if isinstance(decision, LeaseAcquired):
        await write_lease(conn, decision.lease)
    return decision


async def reclaim(
    conn: Conn,
    session_id: str,
    owner: LeaseOwner,
    observed: LeaseFence,
    ttl_ms: int,
    now: Now,
) -> LeaseClaim:
    """Take over from a provably dead holder that is still exactly ``observed``."""
    _check_session_id(session_id)
    current, now_ms = await lock_lease(conn, session_id, now)
    decision = _logic.decide_reclaim(current, session_id, owner, observed, ttl_ms, now_ms)
    if isinstance(decision, LeaseAcquired):
        await write_lease(conn, decision.lease)
    return decision


async def renew(conn: Conn, fence: LeaseFence, ttl_ms: int, now: Now) -> SessionLease:
    """Extend a live lease or fail with lease-expired (decided by the database clock)."""
    current, now_ms = await lock_lease(conn, fence.session_id, now)
    lease = _logic.decide_renew(current, fence, ttl_ms, now_ms)
    await conn.execute(
        "UPDATE lash_session_leases SET expires_at_ms = $1 WHERE session_id = $2",
        lease.expires_at_ms,
        lease.session_id,
    )
    return lease


async def release(conn: Conn, fence: LeaseFence, current: SessionLease | None) -> None:
    """Fenced release of the locked row; a fence that no longer names it is a no-op."""
    released = _logic.decide_release(current, fence)
    if released is not None:
        await write_lease(conn, released)


async def require_fence(
    conn: Conn, fence: LeaseFence | None, session_id: str, now: Now
) -> tuple[SessionLease, int]:
    """Lock the lease and check ``fence`` names it and it is live; ``(lease, db now)``.

    The row stays locked until the transaction ends, so no takeover can interleave with the
    write that follows.
    """
    current, now_ms = await lock_lease(conn, session_id, now)
    return _logic.require_live_fence(current, fence, now_ms, session_id), now_ms
