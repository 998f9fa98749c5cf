"""Session execution leases: owner identities, fences and claim results."""

from __future__ import annotations

from typing import Literal

import msgspec

from lash.types._base import Record

__all__ = [
    "LeaseAcquired",
    "LeaseBusy",
    "LeaseClaim",
    "LeaseFence",
    "LeaseOwner",
    "LocalProcessLiveness",
    "SessionLease",
]


class LocalProcessLiveness(Record, frozen=True, kw_only=True):
    """Proof material that lets a claimant on the same host and boot prove a holder dead."""

    host_id: str
    boot_id: str
    pid: int
    process_start: int


class LeaseOwner(Record, frozen=True, kw_only=True):
    """Who holds (or wants) a lease. Re-entry needs the same owner *and* incarnation.

    ``liveness`` ``None`` is *opaque*: such a holder is never provably dead, so only its TTL
    frees the lease.
    """

    owner_id: str
    incarnation_id: str
    liveness: LocalProcessLiveness | None = None

    def same_incarnation(self, other: LeaseOwner) -> bool:
        """Same owner id and incarnation id."""
        return self.owner_id == other.owner_id and self.incarnation_id == other.incarnation_id


class LeaseFence(Record, frozen=True, kw_only=True):
    """The part of a lease a writer presents to prove it still owns the session."""

    session_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int


class SessionLease(Record, frozen=True, kw_only=True):
    """A session execution lease row."""

    session_id: str
    owner: LeaseOwner
    lease_token: str
    fencing_token: int
    claimed_at_ms: int
    expires_at_ms: int

    def fence(self) -> LeaseFence:
        """The fence of this lease."""
        return LeaseFence(
            session_id=self.session_id,
            owner=self.owner,
            lease_token=self.lease_token,
            fencing_token=self.fencing_token,
        )

    def is_live(self, now_ms: int) -> bool:
        """Unexpired at ``now_ms``."""
        return self.expires_at_ms > now_ms

    def matches(self, fence: LeaseFence) -> bool:
        """True when ``fence`` names exactly this lease."""
        return (
            self.session_id == fence.session_id
            and self.owner.same_incarnation(fence.owner)
            and self.lease_token == fence.lease_token
            and self.fencing_token == fence.fencing_token
        )

    def renewed(self, now_ms: int, ttl_ms: int) -> SessionLease:
        """A copy whose expiry is ``now + ttl``."""
        return msgspec.structs.replace(self, expires_at_ms=now_ms + ttl_ms)


class LeaseAcquired(Record, frozen=True, kw_only=True, tag_field="kind", tag="acquired"):
    """The claimant now holds ``lease``."""

    lease: SessionLease
    status: Literal["acquired"] = "acquired"


class LeaseBusy(Record, frozen=True, kw_only=True, tag_field="kind", tag="busy"):
    """Someone else holds a live lease."""

    holder: SessionLease
    status: Literal["busy"] = "busy"


LeaseClaim = LeaseAcquired | LeaseBusy
