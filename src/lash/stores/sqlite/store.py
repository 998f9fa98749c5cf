"""``SqliteStore``: every session-store facet in one SQLite file, the embedded durable default.

One connection lives on its own worker thread (:mod:`._thread`); each method is one job and,
when it writes, one ``BEGIN IMMEDIATE`` transaction. The file is in WAL mode. With
``synchronous="full"`` (the default) every write a host may act on — a commit, an enqueue, a
cancel, metadata — fsyncs the WAL before it returns, so it survives power loss; lease and
claim bookkeeping does not fsync by itself (see ``SyncState``), which leaves one fsync per
turn. ``synchronous="normal"`` never fsyncs at commit: still crash-consistent, but the last
acknowledged commits may roll back on power loss.

Several ``SqliteStore`` objects (threads or processes) may share one file: the write lock and
the busy timeout serialise them.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

from lash.clock import Clock, SystemClock
from lash.stores.base import MAX_CLAIM_BATCHES, MAX_CLAIM_INPUTS, DurabilityTier
from lash.stores.sqlite import _ingress, _leases, _sessions
from lash.stores.sqlite._conn import (
    ConnectionConfig,
    SqliteStats,
    SyncState,
    close_connection,
    open_connection,
    read_tx,
    write_tx,
)
from lash.stores.sqlite._errors import translate
from lash.stores.sqlite._thread import SqliteWorker
from lash.stores.sqlite.attachments import SqliteAttachmentStore, SqliteProcessEnvStore
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

__all__ = ["SqliteStore"]

T = TypeVar("T")
Synchronous = Literal["full", "normal"]


def _resolve_target(path: str | os.PathLike[str]) -> tuple[str, str, bool, Path | None]:
    """``(connect target, label, is_uri, filesystem path or None for in-memory)``."""
    raw = os.fspath(path)
    if raw.startswith("file:"):
        parsed = urllib.parse.urlsplit(raw)
        fs = urllib.parse.unquote(parsed.path or raw[len("file:") :].split("?", 1)[0])
        memory = fs in ("", ":memory:") or "mode=memory" in parsed.query
        return raw, fs or raw, True, None if memory else Path(fs)
    if raw == ":memory:" or raw == "":
        return ":memory:", ":memory:", False, None
    return raw, raw, False, Path(raw)


class SqliteStore:
    """A durable :class:`~lash.stores.base.SessionStore` over one SQLite file.

    ``path`` is a file path (created if missing), ``":memory:"``, or a ``file:`` URI (for
    example ``file:lash.db?mode=ro``). Attachments live in a content-addressed directory
    beside the file (``<path>-attachments/`` unless ``attachments_root`` is given); the
    reference manifest and process envs live in the database.

    Open failures (not a lash database, corrupt, written by a newer lash, read-only) surface
    as :class:`~lash.errors.StoreError` from :meth:`open` / ``async with`` / the first call.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        clock: Clock | None = None,
        *,
        synchronous: Synchronous = "full",
        busy_timeout_ms: int = 15_000,
        attachments_root: str | os.PathLike[str] | None = None,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', got {synchronous!r}")
        target, label, uri, fs_path = _resolve_target(path)
        self._label = label
        self._path = fs_path
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.stats = SqliteStats()
        self._sync = SyncState.for_mode(synchronous)
        config = ConnectionConfig(
            target=target,
            label=label,
            uri=uri,
            busy_timeout_ms=busy_timeout_ms,
        )
        self._worker = SqliteWorker(
            lambda: open_connection(config),
            close_connection,
            name=f"lash-sqlite:{os.path.basename(label)}",
        )
        # Stop the thread if the store is dropped without aclose().
        self._finalizer = weakref.finalize(self, self._worker.jobs.put, None)
        if attachments_root is not None:
            root: Path | None = Path(attachments_root)
        elif fs_path is not None:
            root = fs_path.with_name(fs_path.name + "-attachments")
        else:
            root = None
        self._attachments = SqliteAttachmentStore(self, root)
        self._process_envs = SqliteProcessEnvStore(self)

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def tier(self) -> DurabilityTier:
        """Durable for a file; an in-memory database (``":memory:"``) is ephemeral."""
        return DurabilityTier.DURABLE if self._path is not None else DurabilityTier.EPHEMERAL

    @property
    def path(self) -> Path | None:
        """The database file (``None`` for an in-memory database)."""
        return self._path

    @property
    def clock(self) -> Clock:
        """The injected clock every lease and timestamp decision reads."""
        return self._clock

    @property
    def attachments(self) -> SqliteAttachmentStore:
        """The attachment facet (file blobs beside the database, manifest inside it)."""
        return self._attachments

    @property
    def process_envs(self) -> SqliteProcessEnvStore:
        """The process-env facet (rows in the same database)."""
        return self._process_envs

    async def open(self) -> SqliteStore:
        """Wait until the file is open and migrated; raises the open failure, if any."""
        await self._worker.run(lambda conn: None)
        return self

    async def __aenter__(self) -> SqliteStore:
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
        """Finish queued jobs, close the connection and stop the worker thread."""
        self._finalizer.detach()
        await self._worker.aclose()

    # --- job plumbing (package-internal) -------------------------------------------------

    def _translate(self, exc: sqlite3.Error) -> Exception:
        return translate(exc, self._label)

    async def _run_write(
        self, fn: Callable[[sqlite3.Connection, int], T], *, durable: bool = True
    ) -> T:
        """Run ``fn(conn, now_ms)`` in one ``BEGIN IMMEDIATE`` transaction on the worker.

        ``durable=False`` is for lease and claim bookkeeping only (see ``SyncState``).
        """
        clock, stats, sync = self._clock, self.stats, self._sync

        def job(conn: sqlite3.Connection) -> T:
            try:
                return write_tx(
                    conn, stats, lambda: fn(conn, clock.now_ms()), sync, durable=durable
                )
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

        return await self._worker.run(job)

    async def _run_read(self, fn: Callable[[sqlite3.Connection, int], T]) -> T:
        """Run ``fn(conn, now_ms)`` in one read transaction (a consistent snapshot)."""
        clock, stats = self._clock, self.stats

        def job(conn: sqlite3.Connection) -> T:
            try:
                return read_tx(conn, stats, lambda: fn(conn, clock.now_ms()))
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

        return await self._worker.run(job)

    async def _run_raw(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` outside any transaction helper (pragmas, checkpoints)."""

        def job(conn: sqlite3.Connection) -> T:
            try:
                return fn(conn)
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

        return await self._worker.run(job)

    async def checkpoint_wal(self) -> None:
        """Fold the WAL into the main file and truncate it (a maintenance lever)."""
        await self._run_raw(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())

    # --- sessions and commits ------------------------------------------------------------

    async def load_session(
        self, session_id: str, *, active_path_only: bool = False, leaf_node_id: str | None = None
    ) -> PersistedSession | None:
        """The committed session, or ``None``; ``active_path_only`` reads only the ancestry."""
        stats = self.stats
        return await self._run_read(
            lambda conn, now: _sessions.load_session(
                conn, stats, session_id, active_path_only, leaf_node_id
            )
        )

    async def load_node(self, session_id: str, node_id: str) -> SessionNode | None:
        """One node, or ``None`` (unknown or tombstoned)."""
        return await self._run_read(
            lambda conn, now: _sessions.load_node(conn, session_id, node_id)
        )

    async def commit(self, commit: RuntimeCommit) -> RuntimeCommitResult:
        """Apply one commit atomically (persistence.md §3.2)."""
        return await self._run_write(lambda conn, now: _sessions.commit(conn, commit, now))

    async def save_session_meta(self, meta: SessionMeta) -> None:
        """Create or replace session metadata."""
        await self._run_write(lambda conn, now: _sessions.save_session_meta(conn, meta))

    async def load_session_meta(self, session_id: str) -> SessionMeta | None:
        """Session metadata, if any."""
        return await self._run_read(lambda conn, now: _sessions.load_session_meta(conn, session_id))

    async def list_sessions(self) -> list[SessionMeta]:
        """Every session with metadata or a commit, by session id."""
        return await self._run_read(lambda conn, now: _sessions.list_sessions(conn))

    async def delete_session(self, session_id: str) -> None:
        """Remove every trace of a session (idempotent; fencing restarts at 1)."""
        await self._run_write(lambda conn, now: _sessions.delete_session(conn, session_id))

    # --- session execution lease ---------------------------------------------------------

    async def try_claim_lease(self, session_id: str, owner: LeaseOwner, ttl_ms: int) -> LeaseClaim:
        """Acquire, re-enter (same incarnation), or report ``busy``."""
        return await self._run_write(
            lambda conn, now: _leases.try_claim(conn, session_id, owner, ttl_ms, now),
            durable=False,
        )

    async def reclaim_lease(
        self, session_id: str, owner: LeaseOwner, observed: LeaseFence, ttl_ms: int
    ) -> LeaseClaim:
        """Take over from a holder proven dead, only if it is still exactly ``observed``."""
        return await self._run_write(
            lambda conn, now: _leases.reclaim(conn, session_id, owner, observed, ttl_ms, now),
            durable=False,
        )

    async def renew_lease(self, fence: LeaseFence, ttl_ms: int) -> SessionLease:
        """Extend a live lease; stale fences fail with lease-expired."""
        return await self._run_write(
            lambda conn, now: _leases.renew(conn, fence, ttl_ms, now), durable=False
        )

    async def release_lease(self, fence: LeaseFence) -> None:
        """Release if ``fence`` still names the lease; otherwise a silent no-op."""
        await self._run_write(lambda conn, now: _leases.release(conn, fence), durable=False)

    async def get_lease(self, session_id: str) -> SessionLease | None:
        """The lease row (possibly expired or released), if any."""
        return await self._run_read(lambda conn, now: _leases.current_lease(conn, session_id))

    # --- pending turn input --------------------------------------------------------------

    async def enqueue_turn_input(self, draft: PendingTurnInputDraft) -> PendingTurnInput:
        """Admit input (source-key replays return the original; changed content conflicts)."""
        return await self._run_write(
            lambda conn, now: _ingress.enqueue_turn_input(conn, draft, now)
        )

    async def get_turn_input(self, session_id: str, input_id: str) -> PendingTurnInput | None:
        """One input row in any state."""
        return await self._run_read(
            lambda conn, now: _ingress.get_turn_input(conn, session_id, input_id)
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
        return await self._run_write(
            lambda conn, now: _ingress.claim_next_turn_inputs(conn, fence, max_inputs, now),
            durable=False,
        )

    async def claim_active_turn_inputs(
        self,
        fence: LeaseFence,
        turn_id: str,
        checkpoint: CheckpointKind,
        max_inputs: int = MAX_CLAIM_INPUTS,
    ) -> TurnInputClaim | None:
        """Claim inputs addressed to running turn ``turn_id`` that admit ``checkpoint``."""
        return await self._run_write(
            lambda conn, now: _ingress.claim_active_turn_inputs(
                conn, fence, turn_id, checkpoint, max_inputs, now
            ),
            durable=False,
        )

    async def abandon_turn_input_claim(
        self, session_id: str, claim_id: str, lease_token: str
    ) -> None:
        """Hand a claim back (rows return to their pre-claim state)."""
        await self._run_write(
            lambda conn, now: _ingress.abandon_turn_input_claim(
                conn, session_id, claim_id, lease_token
            ),
            durable=False,
        )

    # --- queued work ---------------------------------------------------------------------

    async def enqueue_queued_work(self, draft: QueuedWorkBatchDraft) -> QueuedWorkBatch:
        """Enqueue a batch (a source-key replay returns the original batch unchanged)."""
        return await self._run_write(
            lambda conn, now: _ingress.enqueue_queued_work(conn, draft, now)
        )

    async def list_queued_work(self, session_id: str) -> list[QueuedWorkBatch]:
        """Every batch, claimed or not, by enqueue order."""
        return await self._run_read(lambda conn, now: _ingress.list_queued_work(conn, session_id))

    async def list_pending_queued_work(self, session_id: str) -> list[QueuedWorkBatch]:
        """Batches without a live claim, by enqueue order."""
        return await self._run_read(
            lambda conn, now: _ingress.list_pending_queued_work(conn, session_id, now)
        )

    async def claim_leading_session_command(self, fence: LeaseFence) -> QueuedWorkClaim | None:
        """Claim exactly one batch, only if the earliest ready batch is a session command."""
        return await self._run_write(
            lambda conn, now: _ingress.claim_leading_session_command(conn, fence, now),
            durable=False,
        )

    async def claim_ready_queued_work(
        self, fence: LeaseFence, boundary: ClaimBoundary, max_batches: int = MAX_CLAIM_BATCHES
    ) -> QueuedWorkClaim | None:
        """Claim the leading turn work (join prefix or one exclusive batch)."""
        return await self._run_write(
            lambda conn, now: _ingress.claim_ready_queued_work(
                conn, fence, boundary, max_batches, now
            ),
            durable=False,
        )

    async def claim_queued_work_by_batch_ids(
        self, fence: LeaseFence, boundary: ClaimBoundary, batch_ids: Sequence[str]
    ) -> QueuedWorkClaim | None:
        """Claim exactly these batches, if they form a valid claim."""
        return await self._run_write(
            lambda conn, now: _ingress.claim_exact_batches(conn, fence, boundary, batch_ids, now),
            durable=False,
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
        transaction validate the fence and claim both families, so idle checkpoints never
        take the database write lock.
        """
        clock, stats, sid = self._clock, self.stats, fence.session_id
        generation = fence.fencing_token

        def probe(conn: sqlite3.Connection) -> bool:
            stats.probes += 1
            now = clock.now_ms()
            if max_inputs > 0 and _ingress.has_admissible_active_input(
                conn, sid, generation, turn_id, checkpoint
            ):
                return True
            if max_batches <= 0:
                return False
            head = _ingress.leading_batch(conn, sid, generation, now)
            return (
                head is not None
                and head.work_class == "turn_work"
                and head.delivery_policy == EARLIEST_SAFE_BOUNDARY
            )

        def claim(
            conn: sqlite3.Connection, now: int
        ) -> tuple[TurnInputClaim | None, QueuedWorkClaim | None]:
            _leases.require_fence(conn, fence, sid, now)
            inputs = _ingress.claim_active_turn_inputs(
                conn, fence, turn_id, checkpoint, max_inputs, now, validated=True
            )
            batches = _ingress.claim_ready_queued_work(
                conn, fence, "active_turn_checkpoint", max_batches, now, validated=True
            )
            return inputs, batches

        def job(conn: sqlite3.Connection) -> tuple[TurnInputClaim | None, QueuedWorkClaim | None]:
            try:
                if not read_tx(conn, stats, lambda: probe(conn)):
                    return None, None
                return write_tx(
                    conn, stats, lambda: claim(conn, clock.now_ms()), self._sync, durable=False
                )
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

        return await self._worker.run(job)

    async def abandon_queued_work_claim(
        self, session_id: str, claim_id: str, lease_token: str
    ) -> None:
        """Hand a queued-work claim back."""
        await self._run_write(
            lambda conn, now: _ingress.abandon_queued_work_claim(
                conn, session_id, claim_id, lease_token
            ),
            durable=False,
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
        await self._run_write(lambda conn, now: _sessions.tombstone_nodes(conn, session_id, ids))

    async def vacuum(self) -> VacuumReport:
        """Physically remove tombstoned nodes and terminal input rows."""
        return await self._run_write(lambda conn, now: _sessions.vacuum(conn))
