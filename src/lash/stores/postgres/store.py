"""``PostgresStore``: every session-store facet in one PostgreSQL database, for many workers.

All sessions live in shared ``lash_*`` tables keyed by session id, so any worker can run any
session; the session execution lease (fenced, decided by the *database* clock) makes sure
only one runs it at a time. Each method is one transaction on a pooled connection:

* a commit is one transaction that locks the session's lease row ``FOR UPDATE`` for its
  whole length once the fence is validated, then writes the head with an optimistic
  compare-and-swap;
* claims lock the lease row the same way, scan candidates ``FOR UPDATE SKIP LOCKED`` and
  take each row with a guarded update;
* serialization failures, deadlocks, lock timeouts and lost connections surface as
  ``StoreError(kind=backend, retryable=True)`` — retry the operation (a commit is idempotent
  by its turn stamp, so even a commit whose acknowledgement was lost is safe to retry).

Pool sizing: each call holds one connection for one short transaction, and a running turn
also renews its lease in the background, so a worker process needs about *sessions it runs
concurrently + 1* connections; the default ``max_connections=10`` covers a worker running a
handful of sessions at once. Across the fleet keep ``workers × max_connections`` below the
server's ``max_connections`` (100 by default). ``min_connections=1`` keeps one warm.
Per connection, ``lock_timeout`` (10 s) and ``statement_timeout`` (30 s) bound how long a
call can wait behind another worker.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import asyncpg

from lash.clock import Clock
from lash.errors import StoreError, StoreErrorKind
from lash.stores.base import MAX_CLAIM_BATCHES, MAX_CLAIM_INPUTS, DurabilityTier
from lash.stores.postgres import _ingress, _leases, _sessions
from lash.stores.postgres._conn import Conn, Now
from lash.stores.postgres._errors import translate
from lash.stores.postgres.attachments import PostgresAttachmentStore, PostgresProcessEnvStore
from lash.stores.postgres.schema import ensure_schema
from lash.types import (
    EARLIEST_SAFE_BOUNDARY,
    CancelOutcome,
    CancelTarget,
    CheckpointKind,
    ClaimBoundary,
    LeaseClaim,
    LeaseFence,
    LeaseOwner,
    PendingTurnInput,
    PendingTurnInputDraft,
    PersistedSession,
    QueuedWorkBatch,
    QueuedWorkBatchDraft,
    QueuedWorkClaim,
    RuntimeCommit,
    RuntimeCommitResult,
    SessionLease,
    SessionMeta,
    SessionNode,
    SuffixCancelResult,
    TurnInputClaim,
    VacuumReport,
)

__all__ = ["PostgresStore"]

T = TypeVar("T")

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn)


class PostgresStore:
    """A durable :class:`~lash.stores.base.SessionStore` shared by many worker processes.

    ``dsn`` is a libpq-style URL (``postgresql://user:pass@host:5432/db``). ``schema``
    places the ``lash_*`` tables in that schema (created if missing) instead of the
    connection's default. ``attachments_root`` is the blob directory of the attachment
    facet (shared by every worker); without it, attachment ``put``/``get`` fail with
    ``invalid_argument``.

    ``pinned_clock`` is for tests only: it stands in for the database clock so a test can
    expire leases by moving a :class:`~lash.clock.ManualClock`. Leave it ``None`` in
    production, where every lease decision reads the database's clock.

    The pool opens lazily on first use (or with :meth:`open` / ``async with``).
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        attachments_root: str | os.PathLike[str] | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        lock_timeout_ms: int = 10_000,
        statement_timeout_ms: int = 30_000,
        connect_timeout_s: float = 10.0,
        pinned_clock: Clock | None = None,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise StoreError(
                StoreErrorKind.INVALID_ARGUMENT,
                f"schema must match {_SCHEMA_NAME.pattern}, got {schema!r}",
            )
        if not 0 <= min_connections <= max_connections or max_connections < 1:
            raise StoreError(
                StoreErrorKind.INVALID_ARGUMENT,
                "need 0 <= min_connections <= max_connections and max_connections >= 1",
            )
        self._dsn = dsn
        self._label = f"PostgreSQL {_redact(dsn)}" + (f" schema {schema}" if schema else "")
        self._schema = schema
        self._min = min_connections
        self._max = max_connections
        self._settings = {
            "lock_timeout": str(lock_timeout_ms),
            "statement_timeout": str(statement_timeout_ms),
            "application_name": "lash",
        }
        if schema is not None:
            self._settings["search_path"] = schema
        self._connect_timeout = connect_timeout_s
        # A client-side backstop above the server's statement_timeout: a call never hangs on
        # a connection whose server vanished without closing it.
        self._command_timeout = statement_timeout_ms / 1000 + 5
        self._now = Now(pinned_clock)
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._attachments = PostgresAttachmentStore(
            self, Path(attachments_root) if attachments_root is not None else None
        )
        self._process_envs = PostgresProcessEnvStore(self)

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def tier(self) -> DurabilityTier:
        """Durable: committed state survives every worker."""
        return DurabilityTier.DURABLE

    @property
    def schema(self) -> str | None:
        """The schema holding the tables (``None``: the connection's default)."""
        return self._schema

    @property
    def attachments(self) -> PostgresAttachmentStore:
        """The attachment facet (manifest in the database, blobs under ``attachments_root``)."""
        return self._attachments

    @property
    def process_envs(self) -> PostgresProcessEnvStore:
        """The process-env facet (rows in the same database)."""
        return self._process_envs

    async def open(self) -> PostgresStore:
        """Open the pool and create or migrate the schema; raises the open failure, if any."""
        await self._ready()
        return self

    async def _ready(self) -> asyncpg.Pool[asyncpg.Record]:
        pool = self._pool
        if pool is not None:
            return pool
        if self._closed:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, f"{self._label} is closed")
        async with self._open_lock:
            if self._pool is not None:
                return self._pool
            try:
                if self._schema is not None:
                    await self._create_schema()
                pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=self._min,
                    max_size=self._max,
                    timeout=self._connect_timeout,
                    command_timeout=self._command_timeout,
                    server_settings=self._settings,
                )
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise translate(exc, self._label) from exc
            try:
                async with pool.acquire() as conn:
                    await ensure_schema(conn, self._label)
            except BaseException as exc:
                await pool.close()
                if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError):
                    raise translate(exc, self._label) from exc
                raise
            self._pool = pool
            return pool

    async def _create_schema(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
        except asyncpg.UniqueViolationError:
            pass  # created concurrently by another worker
        finally:
            await conn.close()

    async def __aenter__(self) -> PostgresStore:
        try:
            return await self.open()
        except BaseException:
            await self.aclose()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pool (waits briefly for calls in flight, then terminates)."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=10)
        except (TimeoutError, asyncpg.InterfaceError, OSError):
            pool.terminate()

    # --- job plumbing (package-internal) -------------------------------------------------

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]], *, readonly: bool = False) -> T:
        """Run ``fn(conn)`` in one transaction; driver errors become :class:`StoreError`."""
        pool = await self._ready()
        try:
            async with pool.acquire() as conn:
                if readonly:
                    tx = conn.transaction(isolation="repeatable_read", readonly=True)
                else:
                    tx = conn.transaction()
                async with tx:
                    return await fn(conn)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            raise translate(exc, self._label) from exc

    async def _run_write(self, fn: Callable[[Conn, int], Awaitable[T]]) -> T:
        """Run ``fn(conn, db_now_ms)`` in one read-write transaction."""
        now = self._now

        async def job(conn: Conn) -> T:
            return await fn(conn, await now(conn))

        return await self._tx(job)

    async def _run_read(self, fn: Callable[[Conn, int], Awaitable[T]]) -> T:
        """Run ``fn(conn, db_now_ms)`` in one read-only snapshot."""
        now = self._now

        async def job(conn: Conn) -> T:
            return await fn(conn, await now(conn))

        return await self._tx(job, readonly=True)

    async def _claim(self, fn: Callable[[Conn], Awaitable[T | None]]) -> T | None:
        """A claim transaction: a raced guarded update rolls it all back and yields ``None``."""
        try:
            return await self._tx(fn)
        except _ingress.ClaimRaced:
            return None

    # --- sessions and commits ------------------------------------------------------------

    async def load_session(
        self, session_id: str, *, active_path_only: bool = False, leaf_node_id: str | None = None
    ) -> PersistedSession | None:
        """The committed session, or ``None``; ``active_path_only`` reads only the ancestry."""
        return await self._tx(
            lambda conn: _sessions.load_session(conn, session_id, active_path_only, leaf_node_id),
            readonly=True,
        )

    async def load_node(self, session_id: str, node_id: str) -> SessionNode | None:
        """One node, or ``None`` (unknown or tombstoned)."""
        return await self._tx(
            lambda conn: _sessions.load_node(conn, session_id, node_id), readonly=True
        )

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        """Apply one commit atomically (persistence.md §3.2)."""
        return await self._tx(lambda conn: _sessions.commit(conn, commit, self._now))

    async def save_session_meta(self, meta: SessionMeta) -> None:
        """Create or replace session metadata."""
        await self._tx(lambda conn: _sessions.save_session_meta(conn, meta))

    async def load_session_meta(self, session_id: str) -> SessionMeta | None:
        """Session metadata, if any."""
        return await self._tx(
            lambda conn: _sessions.load_session_meta(conn, session_id), readonly=True
        )

    async def list_sessions(self) -> list[SessionMeta]:
        """Every session with metadata or a commit, by session id."""
        return await self._tx(_sessions.list_sessions, readonly=True)

    async def delete_session(self, session_id: str) -> None:
        """Remove every trace of a session (idempotent; fencing restarts at 1)."""
        await self._tx(lambda conn: _sessions.delete_session(conn, session_id, self._now))

    async def list_sessions_with_pending_work(self, limit: int = 1000) -> list[str]:
        """Sessions holding next-turn input or ready queued work — a worker's polling source.

        Rows claimed by a live owner are included (the worker finds the session busy and
        skips it); rows of a dead owner's generation are included, so they get taken over.
        """

        async def scan(conn: Conn, now: int) -> list[str]:
            rows = await conn.fetch(
                "SELECT session_id FROM ("
                "SELECT session_id FROM lash_turn_inputs WHERE state = 'deferred_next_turn' "
                "UNION SELECT session_id FROM lash_queued_batches WHERE available_at_ms <= $1"
                ') AS pending ORDER BY session_id COLLATE "C" LIMIT $2',
                now,
                limit,
            )
            return [str(r[0]) for r in rows]

        return await self._run_read(scan)

    # --- session execution lease ---------------------------------------------------------

    async def try_claim_lease(self, session_id: str, owner: LeaseOwner, ttl_ms: int) -> LeaseClaim:
        """Acquire, re-enter (same incarnation), or report ``busy``."""
        return await self._tx(
            lambda conn: _leases.try_claim(conn, session_id, owner, ttl_ms, self._now)
        )

    async def reclaim_lease(
        self, session_id: str, owner: LeaseOwner, observed: LeaseFence, ttl_ms: int
    ) -> LeaseClaim:
        """Take over from a holder proven dead, only if it is still exactly ``observed``."""
        return await self._tx(
            lambda conn: _leases.reclaim(conn, session_id, owner, observed, ttl_ms, self._now)
        )

    async def renew_lease(self, fence: LeaseFence, ttl_ms: int) -> SessionLease:
        """Extend a live lease; stale or expired fences (by the database clock) fail."""
        return await self._tx(lambda conn: _leases.renew(conn, fence, ttl_ms, self._now))

    async def release_lease(self, fence: LeaseFence) -> None:
        """Release if ``fence`` still names the lease; otherwise a silent no-op."""

        async def job(conn: Conn) -> None:
            current, _ = await _leases.lock_lease(conn, fence.session_id, self._now)
            await _leases.release(conn, fence, current)

        await self._tx(job)

    async def get_lease(self, session_id: str) -> SessionLease | None:
        """The lease row (possibly expired or released), if any."""
        return await self._tx(lambda conn: _leases.current_lease(conn, session_id), readonly=True)

    # --- pending turn input --------------------------------------------------------------

    async def enqueue_turn_input(self, draft: PendingTurnInputDraft) -> PendingTurnInput:
        """Admit input (source-key replays return the original; changed content conflicts)."""
        return await self._run_write(
            lambda conn, now: _ingress.enqueue_turn_input(conn, draft, now)
        )

    async def get_turn_input(self, session_id: str, input_id: str) -> PendingTurnInput | None:
        """One input row in any state."""
        return await self._tx(
            lambda conn: _ingress.get_turn_input(conn, session_id, input_id), readonly=True
        )

    async def list_pending_turn_inputs(self, session_id: str) -> list[PendingTurnInput]:
        """Non-terminal inputs without a live claim, by enqueue order."""
        return await self._run_read(
            lambda conn, now: _ingress.list_pending_turn_inputs(conn, session_id, now)
        )

    async def cancel_pending_turn_inputs(
        self, session_id: str, targets: Sequence[CancelTarget]
    ) -> list[CancelOutcome]:
        """Cancel inputs atomically; one outcome per target."""
        return await self._run_write(
            lambda conn, now: _ingress.cancel_turn_inputs(conn, session_id, targets, now)
        )

    async def cancel_pending_turn_input_suffix(
        self, session_id: str, anchor: CancelTarget
    ) -> SuffixCancelResult:
        """Cancel the anchor and every later input of the session."""
        return await self._run_write(
            lambda conn, now: _ingress.cancel_turn_input_suffix(conn, session_id, anchor, now)
        )

    async def claim_next_turn_inputs(
        self, fence: LeaseFence, max_inputs: int = MAX_CLAIM_INPUTS
    ) -> TurnInputClaim | None:
        """Claim deferred next-turn inputs in order under ``fence``'s generation."""
        return await self._claim(
            lambda conn: _ingress.claim_next_turn_inputs(conn, fence, max_inputs, self._now)
        )

    async def claim_active_turn_inputs(
        self,
        fence: LeaseFence,
        turn_id: str,
        checkpoint: CheckpointKind,
        max_inputs: int = MAX_CLAIM_INPUTS,
    ) -> TurnInputClaim | None:
        """Claim inputs addressed to running turn ``turn_id`` that admit ``checkpoint``."""
        return await self._claim(
            lambda conn: _ingress.claim_active_turn_inputs(
                conn, fence, turn_id, checkpoint, max_inputs, self._now
            )
        )

    async def abandon_turn_input_claim(
        self, session_id: str, claim_id: str, lease_token: str
    ) -> None:
        """Hand a claim back (rows return to their pre-claim state)."""
        await self._tx(
            lambda conn: _ingress.abandon_turn_input_claim(conn, session_id, claim_id, lease_token)
        )

    # --- queued work ---------------------------------------------------------------------

    async def enqueue_queued_work(self, draft: QueuedWorkBatchDraft) -> QueuedWorkBatch:
        """Enqueue a batch (a source-key replay returns the original batch unchanged)."""
        return await self._run_write(
            lambda conn, now: _ingress.enqueue_queued_work(conn, draft, now)
        )

    async def list_queued_work(self, session_id: str) -> list[QueuedWorkBatch]:
        """Every batch, claimed or not, by enqueue order."""
        return await self._tx(
            lambda conn: _ingress.list_queued_work(conn, session_id), readonly=True
        )

    async def list_pending_queued_work(self, session_id: str) -> list[QueuedWorkBatch]:
        """Batches without a live claim, by enqueue order."""
        return await self._run_read(
            lambda conn, now: _ingress.list_pending_queued_work(conn, session_id, now)
        )

    async def claim_leading_session_command(self, fence: LeaseFence) -> QueuedWorkClaim | None:
        """Claim exactly one batch, only if the earliest ready batch is a session command."""
        return await self._claim(
            lambda conn: _ingress.claim_leading_session_command(conn, fence, self._now)
        )

    async def claim_ready_queued_work(
        self, fence: LeaseFence, boundary: ClaimBoundary, max_batches: int = MAX_CLAIM_BATCHES
    ) -> QueuedWorkClaim | None:
        """Claim the leading turn work (join prefix or one exclusive batch)."""
        return await self._claim(
            lambda conn: _ingress.claim_ready_queued_work(
                conn, fence, boundary, max_batches, self._now
            )
        )

    async def claim_queued_work_by_batch_ids(
        self, fence: LeaseFence, boundary: ClaimBoundary, batch_ids: Sequence[str]
    ) -> QueuedWorkClaim | None:
        """Claim exactly these batches, if they form a valid claim."""
        return await self._claim(
            lambda conn: _ingress.claim_exact_batches(conn, fence, boundary, batch_ids, self._now)
        )

    async def claim_checkpoint_work(
        self,
        fence: LeaseFence,
        turn_id: str,
        checkpoint: CheckpointKind,
        max_inputs: int = MAX_CLAIM_INPUTS,
        max_batches: int = MAX_CLAIM_BATCHES,
    ) -> tuple[TurnInputClaim | None, QueuedWorkClaim | None]:
        """At a checkpoint: claim admissible active input and safe-boundary turn work at once.

        A read-only probe runs first; only when it finds something does one write
        transaction lock the lease, validate the fence and claim both families.
        """
        sid, generation = fence.session_id, fence.fencing_token

        async def probe(conn: Conn, now: int) -> bool:
            if max_inputs > 0 and await _ingress.has_admissible_active_input(
                conn, sid, generation, turn_id, checkpoint
            ):
                return True
            if max_batches <= 0:
                return False
            head = await _ingress.leading_batch(conn, sid, generation, now)
            return (
                head is not None
                and head.work_class == "turn_work"
                and head.delivery_policy == EARLIEST_SAFE_BOUNDARY
            )

        if not await self._run_read(probe):
            return None, None

        async def claim(conn: Conn) -> tuple[TurnInputClaim | None, QueuedWorkClaim | None]:
            _, now_ms = await _leases.require_fence(conn, fence, sid, self._now)
            inputs = await _ingress.claim_active_turn_inputs(
                conn, fence, turn_id, checkpoint, max_inputs, self._now, validated_now=now_ms
            )
            batches = await _ingress.claim_ready_queued_work(
                conn,
                fence,
                "active_turn_checkpoint",
                max_batches,
                self._now,
                validated_now=now_ms,
            )
            return inputs, batches

        result = await self._claim(claim)
        return result if result is not None else (None, None)

    async def abandon_queued_work_claim(
        self, session_id: str, claim_id: str, lease_token: str
    ) -> None:
        """Hand a queued-work claim back."""
        await self._tx(
            lambda conn: _ingress.abandon_queued_work_claim(conn, session_id, claim_id, lease_token)
        )

    async def cancel_queued_work_batch(
        self, session_id: str, batch_id: str
    ) -> QueuedWorkBatch | None:
        """Delete an unclaimed (or not live-claimed) batch; ``None`` otherwise."""
        return await self._run_write(
            lambda conn, now: _ingress.cancel_queued_work_batch(conn, session_id, batch_id, now)
        )

    # --- maintenance ---------------------------------------------------------------------

    async def tombstone_nodes(self, session_id: str, node_ids: Sequence[str]) -> None:
        """Hide nodes from every read."""
        ids = list(node_ids)
        await self._tx(lambda conn: _sessions.tombstone_nodes(conn, session_id, ids))

    async def vacuum(self) -> VacuumReport:
        """Physically remove tombstoned nodes and terminal input rows."""
        return await self._tx(_sessions.vacuum)

    async def drop_schema(self) -> None:
        """Drop this store's schema and everything in it (tests; requires ``schema``)."""
        if self._schema is None:
            raise StoreError(StoreErrorKind.INVALID_ARGUMENT, "drop_schema needs a schema")

        async def drop(conn: Conn) -> Any:
            return await conn.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')

        await self._tx(drop)
