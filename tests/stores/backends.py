"""Every store backend the conformance kit runs against: one entry per backend.

Add a backend with one line: ``BACKENDS["name"] = make_harness`` where ``make_harness(tmp_path)``
returns a fresh :class:`lash.testing.conformance.StoreHarness`.
"""

from __future__ import annotations

from pathlib import Path

from lash.clock import ManualClock
from lash.stores.base import AttachmentStore, DurabilityTier, ProcessEnvStore, SessionStore
from lash.stores.memory import MemoryAttachmentStore, MemoryProcessEnvStore, MemoryStore
from lash.testing.conformance import HarnessFactory, StoreHarness


def memory_harness(tmp_path: Path) -> StoreHarness:
    """The in-memory backend: ephemeral, so it cannot reopen."""
    del tmp_path
    clock = ManualClock()

    async def open_store() -> SessionStore:
        return MemoryStore(clock)

    async def open_attachments() -> AttachmentStore:
        return MemoryAttachmentStore(clock)

    async def open_process_envs() -> ProcessEnvStore:
        return MemoryProcessEnvStore()

    return StoreHarness(
        name="memory",
        tier=DurabilityTier.EPHEMERAL,
        clock=clock,
        open_store=open_store,
        open_attachments=open_attachments,
        open_process_envs=open_process_envs,
    )


BACKENDS: dict[str, HarnessFactory] = {
    "memory": memory_harness,
}
