"""Every store backend the conformance kit runs against: one entry per backend.

Add a backend with one line: ``BACKENDS["name"] = make_harness`` where ``make_harness(tmp_path)``
returns a fresh :class:`lash.testing.conformance.StoreHarness`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from lash.clock import ManualClock
from lash.stores.base import AttachmentStore, DurabilityTier, ProcessEnvStore, SessionStore
from lash.stores.memory import MemoryAttachmentStore, MemoryProcessEnvStore, MemoryStore
from lash.stores.sqlite import SqliteStore
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


def sqlite_harness(tmp_path: Path) -> StoreHarness:
    """SQLite: a fresh file per case; every reopen is a second ``SqliteStore`` on that file.

    The attachment and process-env facets belong to a ``SqliteStore`` too (they share its
    file); the stores opened only to reach a facet are closed by ``cleanup``.
    """
    clock = ManualClock()
    path = tmp_path / "lash.db"
    facet_owners: list[SqliteStore] = []

    async def open_store() -> SessionStore:
        return await SqliteStore(path, clock).open()

    async def reopen_store(store: SessionStore) -> SessionStore:
        return await SqliteStore(path, clock).open()

    async def facet_owner() -> SqliteStore:
        store = await SqliteStore(path, clock).open()
        facet_owners.append(store)
        return store

    async def open_attachments() -> AttachmentStore:
        return (await facet_owner()).attachments

    async def reopen_attachments(blobs: AttachmentStore) -> AttachmentStore:
        return (await facet_owner()).attachments

    async def open_process_envs() -> ProcessEnvStore:
        return (await facet_owner()).process_envs

    async def reopen_process_envs(envs: ProcessEnvStore) -> ProcessEnvStore:
        return (await facet_owner()).process_envs

    async def cleanup() -> None:
        for store in facet_owners:
            await store.aclose()

    return StoreHarness(
        name="sqlite",
        tier=DurabilityTier.DURABLE,
        clock=clock,
        open_store=open_store,
        reopen_store=reopen_store,
        open_attachments=open_attachments,
        reopen_attachments_fn=reopen_attachments,
        open_process_envs=open_process_envs,
        reopen_process_envs_fn=reopen_process_envs,
        cleanup=cleanup,
    )


class PostgresServer:
    """The DSN of the session's PostgreSQL, published by ``conftest.postgres_dsn``."""

    dsn: str | None = None


def postgres_harness(tmp_path: Path) -> StoreHarness:
    """PostgreSQL: a fresh schema per case; every reopen is a second ``PostgresStore`` (its
    own pool) on that schema. The database clock is pinned to the harness's manual clock so
    cases expire leases by moving it; ``cleanup`` drops the schema.
    """
    from lash.stores.postgres import PostgresStore

    dsn = PostgresServer.dsn
    if dsn is None:
        raise RuntimeError("the postgres backend needs the postgres_dsn fixture")
    clock = ManualClock()
    schema = f"lash_case_{uuid.uuid4().hex[:16]}"
    blobs = tmp_path / "blobs"
    facet_owners: list[PostgresStore] = []

    def new_store() -> PostgresStore:
        return PostgresStore(
            dsn,
            schema=schema,
            attachments_root=blobs,
            min_connections=0,
            max_connections=4,
            pinned_clock=clock,
        )

    async def open_store() -> SessionStore:
        return await new_store().open()

    async def reopen_store(store: SessionStore) -> SessionStore:
        return await new_store().open()

    async def facet_owner() -> PostgresStore:
        store = await new_store().open()
        facet_owners.append(store)
        return store

    async def open_attachments() -> AttachmentStore:
        return (await facet_owner()).attachments

    async def reopen_attachments(blobs: AttachmentStore) -> AttachmentStore:
        return (await facet_owner()).attachments

    async def open_process_envs() -> ProcessEnvStore:
        return (await facet_owner()).process_envs

    async def reopen_process_envs(envs: ProcessEnvStore) -> ProcessEnvStore:
        return (await facet_owner()).process_envs

    async def cleanup() -> None:
        for store in facet_owners:
            await store.aclose()
        dropper = new_store()
        try:
            await dropper.drop_schema()
        finally:
            await dropper.aclose()

    return StoreHarness(
        name="postgres",
        tier=DurabilityTier.DURABLE,
        clock=clock,
        open_store=open_store,
        reopen_store=reopen_store,
        open_attachments=open_attachments,
        reopen_attachments_fn=reopen_attachments,
        open_process_envs=open_process_envs,
        reopen_process_envs_fn=reopen_process_envs,
        cleanup=cleanup,
    )


BACKENDS: dict[str, HarnessFactory] = {
    "memory": memory_harness,
    "sqlite": sqlite_harness,
    "postgres": postgres_harness,
}
