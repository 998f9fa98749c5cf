"""Lease owner identities and the one liveness proof a claimant may use to skip a TTL.

A holder can be proven dead only by a claimant on the same host *and* the same boot: then a
missing ``/proc/<pid>`` entry, or one whose start time differs from the recorded one (the pid
was reused), is proof. Anything else — another host, another boot, an opaque identity — is
never provably dead, so only the lease TTL frees the session.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from pathlib import Path

from lash.types import LeaseOwner, LocalProcessLiveness

__all__ = [
    "current_liveness",
    "is_definitely_dead",
    "local_process_owner",
    "opaque_owner",
    "process_start_time",
]

_PROC = Path("/proc")
_BOOT_ID = _PROC / "sys" / "kernel" / "random" / "boot_id"
_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
_START_TIME_FIELD_AFTER_COMM = 19
"""``starttime`` is field 22 of ``/proc/<pid>/stat``: index 19 after ``pid`` and ``(comm)``."""


def _read_text(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def _host_id() -> str:
    """A stable id of this machine: the systemd machine id, else the host name."""
    for path in _MACHINE_ID_FILES:
        machine_id = _read_text(path)
        if machine_id is not None:
            return machine_id
    return socket.gethostname()


def process_start_time(pid: int) -> int | None:
    """The kernel start time (clock ticks since boot) of ``pid``, or ``None`` if it is gone.

    The ``comm`` field may contain spaces and parentheses, so the line is split after the
    *last* ``)``.
    """
    raw = _read_text(_PROC / str(pid) / "stat")
    if raw is None:
        return None
    _, sep, rest = raw.rpartition(")")
    if not sep:
        return None
    fields = rest.split()
    if len(fields) <= _START_TIME_FIELD_AFTER_COMM:
        return None
    try:
        return int(fields[_START_TIME_FIELD_AFTER_COMM])
    except ValueError:
        return None


def current_liveness() -> LocalProcessLiveness | None:
    """Proof material for this process, or ``None`` where ``/proc`` is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    boot_id = _read_text(_BOOT_ID)
    pid = os.getpid()
    start = process_start_time(pid)
    if boot_id is None or start is None:
        return None
    return LocalProcessLiveness(host_id=_host_id(), boot_id=boot_id, pid=pid, process_start=start)


def local_process_owner(owner_id: str | None = None) -> LeaseOwner:
    """A fresh identity for this process, with local liveness where the OS supports it.

    Every call mints a new incarnation, so two opens in one process still collide at the
    lease (re-entry needs the same incarnation). Off Linux the identity is opaque.
    """
    incarnation = uuid.uuid4().hex
    liveness = current_liveness()
    if owner_id is None:
        owner_id = f"pid:{os.getpid()}@{liveness.host_id if liveness else socket.gethostname()}"
    return LeaseOwner(owner_id=owner_id, incarnation_id=incarnation, liveness=liveness)


def opaque_owner(owner_id: str | None = None, incarnation_id: str | None = None) -> LeaseOwner:
    """An identity that is never provably dead (TTL-only recovery).

    Durable hosts pass a stable ``owner_id``/``incarnation_id`` derived from their invocation,
    so a retry of the same invocation re-enters its own lease.
    """
    return LeaseOwner(
        owner_id=owner_id if owner_id is not None else f"opaque:{uuid.uuid4().hex}",
        incarnation_id=incarnation_id if incarnation_id is not None else uuid.uuid4().hex,
    )


def is_definitely_dead(holder: LeaseOwner, claimant: LeaseOwner) -> bool:
    """True only when ``claimant`` can prove ``holder``'s process no longer runs.

    Both must carry local liveness with the same host and boot; then the holder is dead if
    its ``/proc/<pid>/stat`` is missing or shows a different start time.
    """
    held, mine = holder.liveness, claimant.liveness
    if held is None or mine is None:
        return False
    if held.host_id != mine.host_id or held.boot_id != mine.boot_id:
        return False
    return process_start_time(held.pid) != held.process_start
