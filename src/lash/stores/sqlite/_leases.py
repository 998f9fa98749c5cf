"""The session execution lease on SQLite: read the row, decide with ``_logic``, write back.

Every function runs inside the caller's ``BEGIN IMMEDIATE`` transaction, so the read and the
write are one atomic step even across processes sharing the file.
"""

from __future__ import annotations

import sqlite3

from lash.errors import StoreError, StoreErrorKind
from lash.stores import _logic
from lash.stores.sqlite._rows import LEASE_COLUMNS, enc, lease_from_row
from lash.types import LeaseAcquired, LeaseClaim, LeaseFence, LeaseOwner, SessionLease

__all__ = [
    "current_lease",
    "reclaim",
    "release",
    "renew",
    "require_fence",
    "try_claim",
    "write_lease",
]

_SELECT = f"SELECT {LEASE_COLUMNS} FROM session_leases WHERE session_id = ?"
_UPSERT = """
INSERT INTO session_leases (session_id, owner_id, incarnation_id, liveness_json, lease_token,
                            fencing_token, claimed_at_ms, expires_at_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
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


def current_lease(conn: sqlite3.Connection, session_id: str) -> SessionLease | None:
    """The lease row of ``session_id`` (possibly expired or released)."""
    return lease_from_row(conn.execute(_SELECT, (session_id,)).fetchone())


def write_lease(conn: sqlite3.Connection, lease: SessionLease) -> None:
    """Insert or overwrite the row of ``lease.session_id``."""
    owner = lease.owner
    conn.execute(
        _UPSERT,
        (
            lease.session_id,
            owner.owner_id,
            owner.incarnation_id,
            enc(owner.liveness) if owner.liveness is not None else None,
            lease.lease_token,
            lease.fencing_token,
            lease.claimed_at_ms,
            lease.expires_at_ms,
        ),
    )


def try_claim(
    conn: sqlite3.Connection, session_id: str, owner: LeaseOwner, ttl_ms: int, now_ms: int
) -> LeaseClaim:
    """Acquire, re-enter or report busy."""
    _check_session_id(session_id)
    decision = _logic.decide_try_claim(
        current_lease(conn, session_id), session_id, owner, ttl_ms, now_ms
    )
    if isinstance(decision, LeaseAcquired):
        write_lease(conn, decision.lease)
    return decision


def reclaim(
    conn: sqlite3.Connection,
    session_id: str,
    owner: LeaseOwner,
    observed: LeaseFence,
    ttl_ms: int,
    now_ms: int,
) -> LeaseClaim:
    """Take over from a provably dead holder that is still exactly ``observed``."""
    _check_session_id(session_id)
    decision = _logic.decide_reclaim(
        current_lease(conn, session_id), session_id, owner, observed, ttl_ms, now_ms
    )
    if isinstance(decision, LeaseAcquired):
        write_lease(conn, decision.lease)
    return decision


def renew(conn: sqlite3.Connection, fence: LeaseFence, ttl_ms: int, now_ms: int) -> SessionLease:
    """Extend a live lease or fail with lease-expired."""
    lease = _logic.decide_renew(current_lease(conn, fence.session_id), fence, ttl_ms, now_ms)
    conn.execute(
        "UPDATE session_leases SET expires_at_ms = ? WHERE session_id = ?",
        (lease.expires_at_ms, lease.session_id),
    )
    return lease


def release(conn: sqlite3.Connection, fence: LeaseFence) -> None:
    """Fenced release; a fence that no longer names the lease is a silent no-op."""
    released = _logic.decide_release(current_lease(conn, fence.session_id), fence)
    if released is not None:
        write_lease(conn, released)


def require_fence(
    conn: sqlite3.Connection, fence: LeaseFence | None, session_id: str, now_ms: int
) -> SessionLease:
    """The live lease ``fence`` names, or lease-expired (validated in the caller's tx)."""
    return _logic.require_live_fence(current_lease(conn, session_id), fence, now_ms, session_id)
