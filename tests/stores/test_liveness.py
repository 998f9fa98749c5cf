"""Lease-owner identities and dead-holder proofs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec
import pytest

from lash.stores import liveness
from lash.stores.liveness import (
    is_definitely_dead,
    local_process_owner,
    opaque_owner,
    process_start_time,
)
from lash.types import LeaseOwner, LocalProcessLiveness

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


def _fake_proc(tmp_path: Path, pid: int, stat: str) -> None:
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "stat").write_text(stat)


def test_start_time_is_read_after_the_last_paren_of_comm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(liveness, "_PROC", tmp_path)
    fields = " ".join(str(i) for i in range(3, 53))  # field 3 .. 52; field 22 reads "22"
    _fake_proc(tmp_path, 41, f"41 (we ird) (x)) {fields}")
    assert process_start_time(41) == 22
    _fake_proc(tmp_path, 42, "42 (short) S 1 2")
    assert process_start_time(42) is None
    assert process_start_time(43) is None


def _local(**changes: object) -> LocalProcessLiveness:
    base = LocalProcessLiveness(host_id="h", boot_id="b", pid=7, process_start=100)
    return msgspec.structs.replace(base, **changes)


def _owner(name: str, proof: LocalProcessLiveness | None) -> LeaseOwner:
    return LeaseOwner(owner_id=name, incarnation_id=f"{name}:1", liveness=proof)


def test_dead_only_with_same_host_and_boot_and_a_gone_or_reused_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(liveness, "_PROC", tmp_path)
    fields = " ".join(["S"] + ["0"] * 18 + ["100"] + ["0"] * 5)
    _fake_proc(tmp_path, 7, f"7 (holder) {fields}")
    claimant = _owner("c", _local(pid=8))
    assert not is_definitely_dead(_owner("h", _local()), claimant)  # running, same start
    assert is_definitely_dead(_owner("h", _local(process_start=99)), claimant)  # pid reused
    assert is_definitely_dead(_owner("h", _local(pid=9)), claimant)  # gone
    assert not is_definitely_dead(_owner("h", _local(pid=9, host_id="x")), claimant)
    assert not is_definitely_dead(_owner("h", _local(pid=9, boot_id="x")), claimant)
    assert not is_definitely_dead(_owner("h", None), claimant)
    assert not is_definitely_dead(_owner("h", _local(pid=9)), _owner("c", None))


@linux_only
def test_local_owner_describes_this_process() -> None:
    me = local_process_owner()
    assert me.liveness is not None and me.liveness.pid == os.getpid()
    assert me.liveness.process_start == process_start_time(os.getpid())
    assert not is_definitely_dead(me, local_process_owner("other"))
    assert local_process_owner("x").incarnation_id != local_process_owner("x").incarnation_id
    assert local_process_owner("x").owner_id == "x"


def test_opaque_owners_are_never_dead() -> None:
    holder = opaque_owner("h", "h:1")
    assert holder.liveness is None and holder.owner_id == "h" and holder.incarnation_id == "h:1"
    assert not is_definitely_dead(holder, local_process_owner())
    assert opaque_owner().owner_id != opaque_owner().owner_id
