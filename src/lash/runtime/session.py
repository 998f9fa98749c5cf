"""`LashSession`: the host's handle on one durable conversation.

Every turn runs under the session execution lease (a second live writer gets
``session_execution_busy``), reloads state only when another writer could have committed,
drains leading session commands first, follows agent-frame switches as one logical turn, and
ends in exactly one fenced commit per physical turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from lash.errors import (
    DurableStoreFacet,
    EmbedError,
    LashRuntimeError,
    RuntimeErrorCode,
    StoreError,
)
from lash.runtime.config import MAX_AGENT_FRAME_SWITCHES, CoreConfig
from lash.runtime.effect_host import EffectHost
from lash.runtime.emitter import ActivitySink, Emitter, new_id
from lash.runtime.lease import LeaseGuard, LeaseTimings, acquire_lease
from lash.runtime.observation import (
    LiveReplayGap,
    ObservationEvent,
    SessionObservation,
    SessionReadView,
)
from lash.runtime.plugin_graph import PostPersistGraphAccess, SessionGraphWriter
from lash.runtime.plugins import CompactionContext, Plugin, TurnPersistedContext
from lash.runtime.runner import ClaimSet, PhysicalTurn, TurnEnd, TurnRequest, render_causes
from lash.runtime.scope import require_id
from lash.runtime.state import SessionState
from lash.runtime.turn import TurnBuilder
from lash.stores.base import DurabilityTier
from lash.tools.base import Tool
from lash.tools.grants import GrantSource, ToolExecutionGrant
from lash.tools.membership import (
    ToolMembership,
    ToolState,
    decode_tool_state,
    denied_tools,
    encode_tool_state,
    membership_of,
)
from lash.tools.registry import RetainedToolSource, ToolRegistry, ToolSourceLike
from lash.types import (
    AgentFrameRecord,
    CancellationEvidence,
    CancelOutcome,
    CancelTarget,
    GraphAppend,
    GraphReplaceFull,
    GraphUnchanged,
    LeaseOwner,
    Message,
    MessagePayload,
    PendingTurnInput,
    QueueClaimCompletion,
    QueuedWorkBatch,
    QueuedWorkBatchDraft,
    QueuedWorkStarted,
    RuntimeCommit,
    SessionCheckpoint,
    SessionCommand,
    SessionGraph,
    SessionMeta,
    SessionNode,
    SuffixCancelResult,
    TurnInput,
    TurnInputClaim,
    TurnInputIngress,
    TurnIssue,
    TurnOutcome,
    TurnResult,
    UsageReport,
    initial_frame_id,
)

if TYPE_CHECKING:
    from lash.runtime.core import LashCore

__all__ = ["CORE_TOOL_SOURCE", "LashSession", "ParkedSession", "fork_session_state"]

CORE_TOOL_SOURCE = "core"
"""The tool-registry source id of the core's own tools (plugins are ``plugin:{id}``)."""

log = logging.getLogger(__name__)

POST_PERSIST_TIMEOUT_S = 600.0
"""How long one turn's background ``turn_persisted`` hooks may run before they are cancelled."""


class ParkedSession:
    """A lightweight handle to reopen a session later with ``core.resume(parked)``."""

    __slots__ = ("session_id",)

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id

    def __repr__(self) -> str:
        return f"ParkedSession({self.session_id!r})"


class _Running:
    __slots__ = ("cancel_event", "local_cancel")

    def __init__(self, cancel_event: asyncio.Event, local_cancel: list[CancellationEvidence]):
        self.cancel_event = cancel_event
        self.local_cancel = local_cancel


class LashSession:
    """One session, opened by ``await core.session(id).open()``."""

    def __init__(
        self,
        core: LashCore,
        config: CoreConfig,
        state: SessionState,
        plugins: Sequence[Plugin],
        owner: LeaseOwner,
    ) -> None:
        self._core = core
        self._cfg = config
        self._state = state
        self._plugins = list(plugins)
        self._owner = owner
        self._lock = asyncio.Lock()
        self._running: dict[str, _Running] = {}
        self._closed = False
        self._grant_sources: dict[str, GrantSource] = {}
        # the tool surface: live sources plus the persisted, generation-fenced tool state
        self._registry = ToolRegistry()
        self._registry.upsert_source(CORE_TOOL_SOURCE, list(config.tools))
        # a plugin's state-dependent tools (plan mode's plan_exit) stay in the served surface
        # and are dropped at projection, so toggling them is no orphan and no generation bump
        self._plugin_sources: dict[str, RetainedToolSource] = {}
        for plugin in self._plugins:
            source = RetainedToolSource(plugin)
            self._plugin_sources[f"plugin:{plugin.id}"] = source
            self._registry.upsert_source(f"plugin:{plugin.id}", source)
        self._tool_state_synced: Mapping[str, Any] | None = None
        self._tool_state_persisted: Mapping[str, Any] = state.checkpoint.tool_state
        self._sync_tools()
        self._graph_writer = SessionGraphWriter(self)
        for plugin in self._plugins:
            plugin.bind_session_graph(self._graph_writer)
        # background turn_persisted runs, oldest first; each waits for the one before it
        self._maintenance: list[asyncio.Task[None]] = []
        self.post_persist_timeout_s = POST_PERSIST_TIMEOUT_S

    # --- identity -------------------------------------------------------------------------

    @property
    def session_id(self) -> str:
        """This session's id."""
        return self._state.session_id

    @property
    def owner(self) -> LeaseOwner:
        """The lease owner identity this handle claims with."""
        return self._owner

    def plugin(self, plugin_id: str) -> Plugin | None:
        """This session's instance of plugin ``plugin_id`` (for host operations such as
        switching plan mode); its state is committed with the next turn."""
        return next((p for p in self._plugins if p.id == plugin_id), None)

    @property
    def head_revision(self) -> int:
        """The committed revision this handle last saw."""
        return self._state.head_revision

    # --- turns ----------------------------------------------------------------------------

    def turn(self, turn_input: str | TurnInput) -> TurnBuilder:
        """A builder for one turn: ``await session.turn("hi").run()``."""
        self._check_open()
        return TurnBuilder(self, turn_input)

    def _check_open(self) -> None:
        if self._closed:
            raise EmbedError("session_closed", f"session {self.session_id} is closed")

    def _check_tiers(self, host: EffectHost | None = None) -> None:
        cfg = self._cfg
        if (host or cfg.effect_host).tier is not DurabilityTier.DURABLE:
            return
        if cfg.attachments.tier is not DurabilityTier.DURABLE:
            raise LashRuntimeError.durable_store_required(DurableStoreFacet.ATTACHMENT_STORE)
        if cfg.process_envs.tier is not DurabilityTier.DURABLE:
            raise LashRuntimeError.durable_store_required(DurableStoreFacet.PROCESS_ENV_STORE)
        if cfg.store is not None and cfg.store.tier is not DurabilityTier.DURABLE:
            raise LashRuntimeError.durable_store_required(DurableStoreFacet.SESSION_STORE)

    def _check_live_inputs(self, plugin_inputs: dict[str, Any], extension: Any) -> None:
        if self._cfg.store is not None:
            if extension is not None:
                raise LashRuntimeError(
                    RuntimeErrorCode.DURABLE_EFFECT_LIVE_PROTOCOL_EXTENSION,
                    "a persisted session cannot replay a live protocol extension; "
                    "put replayable data in protocol_turn_options",
                )
            if plugin_inputs:
                raise LashRuntimeError(
                    RuntimeErrorCode.DURABLE_EFFECT_LIVE_PLUGIN_INPUT,
                    "a persisted session cannot replay live plugin inputs "
                    f"({', '.join(sorted(plugin_inputs))}); persist them in plugin state instead",
                )
        elif extension is not None:
            for plugin in self._plugins:
                if not plugin.validate_turn_extension(extension):
                    raise LashRuntimeError(
                        RuntimeErrorCode.PROTOCOL_TURN_EXTENSION,
                        f"plugin {plugin.id!r} rejected the turn's protocol extension",
                    )

    async def _acquire(self) -> LeaseGuard | None:
        store = self._cfg.store
        if store is None:
            return None
        timings = self._cfg.lease_timings
        lease = await acquire_lease(store, self.session_id, self._owner, timings.ttl_ms)
        if lease is None:
            holder = await store.get_lease(self.session_id)
            who = holder.owner.owner_id if holder is not None else "another worker"
            raise LashRuntimeError(
                RuntimeErrorCode.SESSION_EXECUTION_BUSY,
                f"session {self.session_id} is being run by {who}",
            )
        guard = LeaseGuard(store, lease, timings, on_lost=self._on_lease_lost)
        guard.start()
        return guard

    def _on_lease_lost(self) -> None:
        for running in self._running.values():
            running.cancel_event.set()

    async def _ensure_fresh(self, guard: LeaseGuard | None) -> None:
        store = self._cfg.store
        if store is None or guard is None:
            return
        known = self._state.lease_generation
        if known is not None and guard.generation in (known, known + 1):
            self._state.lease_generation = guard.generation
            return
        try:
            persisted = await store.load_session(self.session_id, active_path_only=True)
        except StoreError as err:
            raise LashRuntimeError("session_head_refresh", f"session reload failed: {err}") from err
        if persisted is not None:
            self._state = SessionState.from_persisted(persisted)
            self._restore_plugin_state()
        self._state.lease_generation = guard.generation

    def _restore_plugin_state(self) -> None:
        """Reset every plugin's state to what the last commit holds (after a reload by another
        writer's commit, or after a failed turn whose changes were never committed)."""
        saved = self._state.checkpoint.plugin_state
        for plugin in self._plugins:
            plugin.state = dict(saved.get(plugin.id) or {})

    async def _settle(self, guard: LeaseGuard | None, error: BaseException | None) -> None:
        if error is not None:
            self._restore_plugin_state()
        if guard is None:
            return
        await guard.stop()
        if guard.released or guard.lost:
            return
        if isinstance(error, LashRuntimeError) and error.is_code(
            RuntimeErrorCode.STORE_COMMIT_FAILED
        ):
            return  # leave it to expire: the store may be unhealthy
        try:
            await guard.release()
        except LashRuntimeError:
            if error is None:
                raise
            log.warning("releasing the lease of session %s failed", self.session_id)

    async def _run_foreground(
        self,
        turn_input: TurnInput,
        *,
        turn_id: str,
        sinks: list[ActivitySink],
        plugin_inputs: dict[str, Any],
        protocol_extension: Any,
        max_turns: int | None,
        local_cancel: list[CancellationEvidence],
        effect_host: EffectHost | None = None,
        grants: tuple[ToolExecutionGrant, ...] = (),
    ) -> TurnResult:
        self._check_open()
        require_id(self.session_id, "session id")
        self._check_tiers(effect_host)
        self._check_live_inputs(plugin_inputs, protocol_extension)
        async with self._lock:
            guard = await self._acquire()
            error: BaseException | None = None
            try:
                await self._ensure_fresh(guard)
                await self._drain_commands(guard)
                request = TurnRequest(
                    turn_id=turn_id,
                    input=turn_input,
                    claims=ClaimSet(),
                    release_lease=True,
                    plugin_inputs=plugin_inputs,
                    protocol_extension=protocol_extension,
                    max_turns=max_turns,
                    effect_host=effect_host,
                    grants=grants,
                    grant_sources=dict(self._grant_sources),
                )
                return await self._drive(request, guard, sinks, local_cancel)
            except BaseException as err:
                error = err
                raise
            finally:
                await self._settle(guard, error)

    async def _drive(
        self,
        request: TurnRequest,
        guard: LeaseGuard | None,
        sinks: list[ActivitySink],
        local_cancel: list[CancellationEvidence] | None = None,
    ) -> TurnResult:
        """Run a logical turn: physical turns until one does not switch frames."""
        root = request.turn_id
        frame_before = self._state.current_frame_id
        results: list[TurnResult] = []
        switches = 0
        while True:
            end = await self._physical(
                request, guard, sinks, local_cancel if local_cancel is not None else []
            )
            results.append(end.result)
            if end.frame_switch is None:
                break
            switches += 1
            if switches >= MAX_AGENT_FRAME_SWITCHES:
                limit = await self._physical(
                    TurnRequest(
                        turn_id=f"{root}:agent-frame:{switches}",
                        input=TurnInput(),
                        claims=request.claims,
                        release_lease=request.release_lease,
                        effect_host=request.effect_host,
                    ),
                    guard,
                    sinks,
                    local_cancel if local_cancel is not None else [],
                    terminal=(
                        TurnOutcome.stopped("runtime_error"),
                        TurnIssue(
                            kind="runtime",
                            code="agent_frame_switch_limit",
                            message=f"more than {MAX_AGENT_FRAME_SWITCHES} agent-frame switches",
                        ),
                    ),
                )
                results.append(limit.result)
                break
            claims = ClaimSet()
            task = end.frame_switch.task or ""
            if end.commit.enqueued_queue_batches and guard is not None and self._cfg.store:
                ids = [b.batch_id for b in end.commit.enqueued_queue_batches]
                claim = await self._store_call(
                    self._cfg.store.claim_queued_work_by_batch_ids(guard.fence, "idle", ids)
                )
                if claim is None:
                    raise LashRuntimeError(
                        RuntimeErrorCode.STORE_COMMIT_FAILED,
                        "the agent-frame hand-off batch could not be claimed",
                    )
                claims.queue.append(claim)
            request = TurnRequest(
                turn_id=f"{root}:agent-frame:{switches}",
                input=TurnInput.text(task),
                claims=claims,
                release_lease=request.release_lease,
                plugin_inputs=request.plugin_inputs,
                max_turns=request.max_turns,
                effect_host=request.effect_host,
                grants=request.grants,
                grant_sources=request.grant_sources,
            )
        self._publish_commit(frame_before)
        return results[-1]

    async def _physical(
        self,
        request: TurnRequest,
        guard: LeaseGuard | None,
        sinks: list[ActivitySink],
        local_cancel: list[CancellationEvidence],
        terminal: tuple[TurnOutcome, TurnIssue] | None = None,
    ) -> TurnEnd:
        control = (request.effect_host or self._cfg.effect_host).turn_control
        cancel_event = control.register(self.session_id, request.turn_id)
        running = _Running(cancel_event, local_cancel)
        self._running[request.turn_id] = running
        if guard is not None and guard.lost:
            cancel_event.set()
        emitter = Emitter(
            self.session_id,
            request.turn_id,
            sinks,
            self._cfg.live_replay,
            lambda: self._state.head_revision,
        )
        self._sync_tools()
        turn = PhysicalTurn(
            config=self._cfg,
            state=self._state,
            plugins=self._plugins,
            tools=self._served_tools(),
            request=request,
            guard=guard,
            emitter=emitter,
            cancel_event=cancel_event,
            local_cancel=local_cancel,
        )
        self._graph_writer.turn_guard = guard
        try:
            if terminal is not None:
                end = await turn._finish(terminal[0], (terminal[1],), ())
            else:
                end = await turn.run()
            if self._cfg.store is not None:  # the turn's commit carried the tool state
                self._tool_state_persisted = self._state.checkpoint.tool_state
            if not end.commit.replayed:
                self._schedule_turn_persisted(request.turn_id, end.result)
            return end
        except LashRuntimeError as err:
            if err.is_code(RuntimeErrorCode.SESSION_EXECUTION_LEASE_LOST) and self._cfg.store:
                await self._abandon(request.claims)
            raise
        finally:
            self._graph_writer.turn_guard = None
            self._running.pop(request.turn_id, None)

    def _schedule_turn_persisted(self, turn_id: str, result: TurnResult) -> None:
        """lash's ``TurnPersisted``: plugin hooks after the commit is durable, run as a
        background task so the turn returns (and its lock is released) without waiting for
        them. Runs are serialised per session; see :meth:`wait_maintenance`."""
        hooks = [p for p in self._plugins if type(p).turn_persisted is not Plugin.turn_persisted]
        if not hooks:
            return
        live = self._state.graph
        ctx = TurnPersistedContext(
            session_id=self.session_id,
            turn_id=turn_id,
            result=result,
            # a copy: the run may start after later turns moved the live graph on
            graph=SessionGraph(live.nodes(), live.leaf_node_id),
            leaf_node_id=live.leaf_node_id,
            head_revision=self._state.head_revision,
            session_graph=PostPersistGraphAccess(self._graph_writer, self._lock),
        )
        previous = self._maintenance[-1] if self._maintenance else None
        task = asyncio.create_task(
            self._turn_persisted(ctx, hooks, previous),
            name=f"lash-turn-persisted:{self.session_id}:{turn_id}",
        )
        self._maintenance.append(task)
        task.add_done_callback(self._maintenance_done)

    def _maintenance_done(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._maintenance.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("turn-persisted run failed", exc_info=task.exception())

    async def _turn_persisted(
        self,
        ctx: TurnPersistedContext,
        hooks: Sequence[Plugin],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """One turn's hooks, after the previous run finished; a failing or slow hook is
        logged and never touches the committed turn."""
        if previous is not None:
            await asyncio.wait([previous])
        try:
            async with asyncio.timeout(self.post_persist_timeout_s):
                for plugin in hooks:
                    try:
                        await plugin.turn_persisted(ctx)
                    except Exception:
                        log.exception(
                            "turn-persisted hook of plugin %r failed (session %s, turn %s)",
                            plugin.id,
                            self.session_id,
                            ctx.turn_id,
                        )
        except TimeoutError:
            log.warning(
                "turn-persisted hooks of session %s, turn %s timed out after %ss",
                self.session_id,
                ctx.turn_id,
                self.post_persist_timeout_s,
            )

    async def wait_maintenance(self) -> None:
        """Wait until every background ``turn_persisted`` run scheduled so far (and any it
        led to) has finished. Never raises for a failed run (those are logged)."""
        while self._maintenance:
            await asyncio.wait(list(self._maintenance))

    async def cancel_maintenance(self) -> None:
        """Cancel the background ``turn_persisted`` runs still going and wait for them to
        unwind (what a core shutting down does once its grace period is over)."""
        await self._stop_maintenance()

    async def _quiesce_for_close(self) -> None:
        """Refuse while a turn is in flight; otherwise stop the background runs (one may hold
        the lock for its append) and refuse if something else still holds the lock."""
        if not self._running:
            await self._stop_maintenance()
        if self._running or self._lock.locked():
            raise EmbedError(
                "session_still_in_use", f"session {self.session_id} has a turn in flight"
            )

    async def _stop_maintenance(self) -> None:
        """Cancel the background ``turn_persisted`` runs and wait for them to unwind."""
        tasks = list(self._maintenance)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _abandon(self, claims: ClaimSet) -> None:
        store = self._cfg.store
        if store is None:
            return
        for claim in claims.turn_inputs:
            with contextlib.suppress(StoreError):
                await store.abandon_turn_input_claim(
                    self.session_id, claim.claim_id, claim.lease_token
                )
        for qclaim in claims.queue:
            with contextlib.suppress(StoreError):
                await store.abandon_queued_work_claim(
                    self.session_id, qclaim.claim_id, qclaim.lease_token
                )
        claims.clear()

    async def _store_call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except StoreError as err:
            raise err.to_runtime_error() from err

    def _publish_commit(self, frame_before: str) -> None:
        replay = self._cfg.live_replay
        try:
            view = self._state.read_view()
            if view.current_agent_frame_id != frame_before:
                replay.append(
                    self.session_id,
                    view.revision,
                    "agent_frame_switched",
                    frame_id=view.current_agent_frame_id,
                )
            replay.append(self.session_id, view.revision, "committed", read_view=view)
        except Exception:
            log.exception("publishing the commit to live replay failed")

    # --- cancellation ---------------------------------------------------------------------

    def _cancel_local(
        self, turn_id: str, local_cancel: list[CancellationEvidence], reason: str | None
    ) -> None:
        if not local_cancel:
            local_cancel.append(
                CancellationEvidence(
                    request_id=f"internal:{turn_id}",
                    origin="local",
                    reason=reason,
                    requested_at_ms=self._cfg.clock.now_ms(),
                )
            )
        running = self._running.get(turn_id)
        if running is not None:
            running.cancel_event.set()

    async def request_turn_cancel(
        self,
        turn_id: str,
        request_id: str,
        *,
        origin: str | None = None,
        reason: str | None = None,
    ) -> Any:
        """Ask a running turn of this session to stop; first writer wins (see ``CancelReceipt``)."""
        require_id(turn_id, "turn id")
        require_id(request_id, "cancel request id")
        evidence = CancellationEvidence(
            request_id=request_id,
            origin=origin,
            reason=reason,
            requested_at_ms=self._cfg.clock.now_ms(),
        )
        return self._cfg.effect_host.turn_control.request_cancel(self.session_id, turn_id, evidence)

    def cancel_running_turns(self, reason: str | None = None) -> int:
        """Cancel every turn started through this handle; returns how many."""
        for turn_id, running in list(self._running.items()):
            self._cancel_local(turn_id, running.local_cancel, reason)
        return len(self._running)

    # --- ingress --------------------------------------------------------------------------

    def _require_store(self, what: str) -> Any:
        store = self._cfg.store
        if store is None:
            raise LashRuntimeError(
                RuntimeErrorCode.STORE_COMMIT_FAILED, f"{what} requires a persistent runtime store"
            )
        return store

    async def enqueue(
        self,
        turn_input: str | TurnInput,
        *,
        source_key: str | None = None,
        input_id: str | None = None,
        ingress: TurnInputIngress | None = None,
        plugin_inputs: dict[str, Any] | None = None,
    ) -> PendingTurnInput:
        """Admit input for a later turn (``NextTurn``) or the running one (``active_turn``)."""
        return await self._core.enqueue_turn_input(
            self.session_id,
            turn_input,
            source_key=source_key,
            input_id=input_id,
            ingress=ingress,
            plugin_inputs=plugin_inputs,
        )

    async def pending_inputs(self) -> list[PendingTurnInput]:
        """Inputs waiting for a turn (not live-claimed), in order."""
        store = self._require_store("pending input")
        result: list[PendingTurnInput] = await self._store_call(
            store.list_pending_turn_inputs(self.session_id)
        )
        return result

    async def cancel_pending(self, input_id: str) -> CancelOutcome:
        """Cancel one pending input (by id)."""
        store = self._require_store("pending input")
        outcomes: list[CancelOutcome] = await self._store_call(
            store.cancel_pending_turn_inputs(self.session_id, [CancelTarget(input_id=input_id)])
        )
        self._publish_queue("cancelled", (input_id,))
        return outcomes[0]

    async def cancel_pending_by_source_key(self, source_key: str) -> CancelOutcome:
        """Cancel one pending input (by source key)."""
        store = self._require_store("pending input")
        outcomes: list[CancelOutcome] = await self._store_call(
            store.cancel_pending_turn_inputs(self.session_id, [CancelTarget(source_key=source_key)])
        )
        return outcomes[0]

    async def cancel_pending_suffix(self, anchor_input_id: str) -> SuffixCancelResult:
        """Cancel an input and every later one."""
        store = self._require_store("pending input")
        result: SuffixCancelResult = await self._store_call(
            store.cancel_pending_turn_input_suffix(
                self.session_id, CancelTarget(input_id=anchor_input_id)
            )
        )
        return result

    async def queued_work(self) -> list[QueuedWorkBatch]:
        """Queued work batches (claimed or not)."""
        store = self._require_store("queued work")
        result: list[QueuedWorkBatch] = await self._store_call(
            store.list_queued_work(self.session_id)
        )
        return result

    async def submit_command(
        self, command: str, *, reason: str = "", idempotency_key: str | None = None
    ) -> QueuedWorkBatch:
        """Queue a session command (``refresh_tool_catalog`` or ``reset_session``)."""
        store = self._require_store("session commands")
        key = idempotency_key or new_id()
        require_id(key, "command idempotency key")
        draft = QueuedWorkBatchDraft(
            session_id=self.session_id,
            payloads=(SessionCommand(command=command, reason=reason),),  # type: ignore[arg-type]
            source_key=f"command:{command}:{key}",
            delivery_policy="after_current_turn_commit",
            slot_policy="exclusive",
        )
        batch: QueuedWorkBatch = await self._store_call(store.enqueue_queued_work(draft))
        self._publish_queue("enqueued", (batch.batch_id,))
        return batch

    def _publish_queue(self, change: str, ids: tuple[str, ...]) -> None:
        try:
            self._cfg.live_replay.append(
                self.session_id, self._state.head_revision, "queue_changed", change=change, ids=ids
            )
        except Exception:
            log.exception("publishing a queue change failed")

    async def process_pending(self) -> list[TurnResult]:
        """Run pending input and queued work as turns until the session is idle."""
        self._check_open()
        store = self._require_store("processing pending work")
        self._check_tiers()
        results: list[TurnResult] = []
        async with self._lock:
            guard = await self._acquire()
            assert guard is not None
            error: BaseException | None = None
            try:
                await self._ensure_fresh(guard)
                while True:
                    if await self._commands_first(store):
                        if await self._drain_commands(guard):
                            continue
                    claim: TurnInputClaim | None = await self._store_call(
                        store.claim_next_turn_inputs(guard.fence)
                    )
                    if claim is not None:
                        results.append(await self._run_claimed_inputs(claim, guard))
                        continue
                    qclaim = await self._store_call(
                        store.claim_ready_queued_work(guard.fence, "idle")
                    )
                    if qclaim is not None:
                        turn_id = new_id()
                        emitter = Emitter(
                            self.session_id,
                            turn_id,
                            [],
                            self._cfg.live_replay,
                            lambda: self._state.head_revision,
                        )
                        await emitter.emit(
                            QueuedWorkStarted(boundary="idle", batch_ids=qclaim.batch_ids)
                        )
                        causes = tuple(render_causes(qclaim, turn_id))
                        request = TurnRequest(
                            turn_id=turn_id,
                            input=TurnInput(),
                            claims=ClaimSet(queue=[qclaim]),
                            release_lease=False,
                            causes=causes,
                        )
                        results.append(await self._drive(request, guard, []))
                        continue
                    if await self._drain_commands(guard):
                        continue
                    break
            except BaseException as err:
                error = err
                raise
            finally:
                await self._settle(guard, error)
        return results

    async def _run_claimed_inputs(self, claim: TurnInputClaim, guard: LeaseGuard) -> TurnResult:
        items: list[Any] = []
        options: dict[str, Any] | None = None
        trace: str | None = None
        for pending in claim.inputs:
            items.extend(pending.input.items)
            if options is None and pending.input.protocol_turn_options is not None:
                options = pending.input.protocol_turn_options
            if trace is None and pending.input.trace_turn_id is not None:
                trace = pending.input.trace_turn_id
        merged = TurnInput(items=tuple(items), protocol_turn_options=options, trace_turn_id=trace)
        request = TurnRequest(
            turn_id=trace or new_id(),
            input=merged,
            claims=ClaimSet(turn_inputs=[claim]),
            release_lease=False,
        )
        return await self._drive(request, guard, [])

    async def _commands_first(self, store: Any) -> bool:
        batches: list[QueuedWorkBatch] = await self._store_call(
            store.list_pending_queued_work(self.session_id)
        )
        commands = [b for b in batches if b.work_class == "session_command"]
        if not commands:
            return False
        inputs: list[PendingTurnInput] = await self._store_call(
            store.list_pending_turn_inputs(self.session_id)
        )
        next_turn = [i for i in inputs if i.state == "deferred_next_turn"]
        if not next_turn:
            return True
        return min(b.enqueued_at_ms for b in commands) < min(i.enqueued_at_ms for i in next_turn)

    async def _drain_commands(self, guard: LeaseGuard | None) -> bool:
        """Apply every leading session command, each in its own commit."""
        store = self._cfg.store
        if store is None or guard is None:
            return False
        drained = False
        while True:
            claim = await self._store_call(store.claim_leading_session_command(guard.fence))
            if claim is None:
                return drained
            drained = True
            state = self._state
            graph: Any = GraphUnchanged(leaf_node_id=state.graph.leaf_node_id)
            checkpoint = state.checkpoint
            frames = tuple(state.agent_frames)
            current = state.current_frame_id
            reset = any(
                isinstance(item.payload, SessionCommand) and item.payload.command == "reset_session"
                for batch in claim.batches
                for item in batch.items
            )
            if not reset and any(
                isinstance(item.payload, SessionCommand)
                and item.payload.command == "refresh_tool_catalog"
                for batch in claim.batches
                for item in batch.items
            ):
                self._sync_tools()  # re-read the sources; this command's commit persists them
                checkpoint = state.checkpoint
            if reset:
                graph = GraphReplaceFull(nodes=(), leaf_node_id=None)
                # the conversation starts over; the tool surface (access policy, curation and
                # the generation that fences changes to it) is not conversation and stays
                checkpoint = SessionCheckpoint(
                    turn_index=state.turn_index, tool_state=state.checkpoint.tool_state
                )
                frames = (
                    AgentFrameRecord(
                        frame_id=initial_frame_id(self.session_id),
                        session_id=self.session_id,
                        reason="initial",
                    ),
                )
                current = frames[0].frame_id
            commit = RuntimeCommit(
                session_id=self.session_id,
                graph=graph,
                checkpoint=checkpoint,
                config=state.config,
                expected_head_revision=state.head_revision,
                lease=guard.fence,
                agent_frames=frames,
                current_agent_frame_id=current,
                completed_queue_claims=(
                    QueueClaimCompletion(
                        claim_id=claim.claim_id,
                        lease_token=claim.lease_token,
                        batch_ids=claim.batch_ids,
                    ),
                ),
            )
            result = await self._store_call(store.commit(commit))
            self._tool_state_persisted = checkpoint.tool_state
            if reset:
                self._state = SessionState(self.session_id, head_revision=result.head_revision)
                self._state.checkpoint = checkpoint
            else:
                self._state.head_revision = result.head_revision
            self._state.lease_generation = guard.generation

    # --- observation ----------------------------------------------------------------------

    async def read_view(self) -> SessionReadView:
        """The committed transcript (reloaded from the store when there is one)."""
        store = self._cfg.store
        if store is not None and not self._lock.locked():
            persisted = await self._store_call(
                store.load_session(self.session_id, active_path_only=True)
            )
            if persisted is not None and persisted.head_revision != self._state.head_revision:
                fresh = SessionState.from_persisted(persisted)
                fresh.lease_generation = None
                self._state = fresh
        return self._state.read_view()

    async def usage_report(self) -> UsageReport:
        """Committed usage grouped by source and model."""
        await self.read_view()
        return UsageReport.from_entries(self._state.ledger)

    async def current_observation(self) -> SessionObservation:
        """A fresh read view plus the cursor to resume live events from."""
        view = await self.read_view()
        cursor = self._cfg.live_replay.tail_cursor(self.session_id, view.revision)
        return SessionObservation(read_view=view, cursor=cursor)

    async def resume_from_cursor(
        self, cursor: str
    ) -> tuple[list[ObservationEvent], SessionObservation | None, LiveReplayGap | None]:
        """Events after ``cursor``; on a gap, a fresh observation to restart from."""
        events, gap = self._cfg.live_replay.replay_after(self.session_id, cursor)
        if gap is None:
            return events, None, None
        return [], await self.current_observation(), gap

    def subscribe(self, cursor: str) -> AsyncIterator[ObservationEvent | LiveReplayGap]:
        """Replay after ``cursor`` and then follow live events."""
        return self._cfg.live_replay.subscribe(self.session_id, cursor)

    # --- lifecycle ------------------------------------------------------------------------

    async def compact(self) -> str | None:
        """Open a compaction frame seeded by the first plugin that offers a summary.

        Prior history is never rewritten; the new frame just starts a new prompt window.
        Returns the new frame id, or ``None`` when no plugin compacts.
        """
        store = self._cfg.store
        async with self._lock:
            guard = await self._acquire()
            error: BaseException | None = None
            try:
                await self._ensure_fresh(guard)
                ctx = CompactionContext(
                    self.session_id, self._state.graph, self._state.prompt_history()
                )
                seeds: Sequence[Message] = ()
                for plugin in self._plugins:
                    seeds = await plugin.compact_context(ctx)
                    if seeds:
                        break
                if not seeds:
                    return None
                state = self._state
                now = self._cfg.clock.now_ms()
                frame_id = f"{self.session_id}:frame:compaction:{new_id()}"
                frames = (
                    *state.agent_frames,
                    AgentFrameRecord(
                        frame_id=frame_id,
                        session_id=self.session_id,
                        reason="compaction",
                        previous_frame_id=state.current_frame_id,
                        created_at_ms=now,
                    ),
                )
                parent = state.graph.leaf_node_id
                nodes = []
                for index, msg in enumerate(seeds):
                    node = SessionNode(
                        node_id=f"{frame_id}:seed{index}",
                        parent_node_id=parent,
                        agent_frame_id=frame_id,
                        timestamp_ms=now,
                        payload=MessagePayload(message=msg),
                    )
                    nodes.append(node)
                    parent = node.node_id
                if store is not None and guard is not None:
                    result = await self._store_call(
                        store.commit(
                            state.commit_delta(
                                GraphAppend(nodes=tuple(nodes), leaf_node_id=parent),
                                guard.fence,
                                release_lease=True,
                                agent_frames=frames,
                                current_agent_frame_id=frame_id,
                            )
                        )
                    )
                    guard.mark_released()
                    state.head_revision = result.head_revision
                    state.lease_generation = guard.generation
                for node in nodes:
                    state.graph.append(node)
                state.graph.mark_committed()
                state.agent_frames = list(frames)
                before = state.current_frame_id
                state.current_frame_id = frame_id
                self._publish_commit(before)
                return frame_id
            except BaseException as err:
                error = err
                raise
            finally:
                await self._settle(guard, error)

    async def branch_to(self, node_id: str) -> None:
        """Move the active leaf to an earlier node; later history stays stored, off the path."""
        store = self._require_store("branching")
        async with self._lock:
            guard = await self._acquire()
            assert guard is not None
            error: BaseException | None = None
            try:
                await self._ensure_fresh(guard)
                state = self._state
                if node_id not in state.graph and (
                    await self._store_call(store.load_node(self.session_id, node_id)) is None
                ):
                    raise LashRuntimeError(
                        RuntimeErrorCode.STORE_COMMIT_FAILED,
                        f"session {self.session_id} has no node {node_id!r}",
                    )
                result = await self._store_call(
                    store.commit(
                        state.commit_delta(
                            GraphUnchanged(leaf_node_id=node_id), guard.fence, release_lease=True
                        )
                    )
                )
                guard.mark_released()
                # only the active path is resident: load the new leaf's ancestry
                persisted = await self._store_call(
                    store.load_session(self.session_id, active_path_only=True)
                )
                if persisted is not None:
                    self._state = SessionState.from_persisted(persisted)
                self._state.head_revision = result.head_revision
                self._state.lease_generation = guard.generation
            except BaseException as err:
                error = err
                raise
            finally:
                await self._settle(guard, error)

    def add_grant_source(self, source_id: str, source: GrantSource) -> None:
        """Register tools that only execution grants reach (``ToolExecutionGrant.source_id``):
        nothing here is advertised to the model. Live wiring: register again after reopen."""
        require_id(source_id, "grant source id")
        if source_id in self._grant_sources:
            raise EmbedError(
                "duplicate_grant_source", f"grant source {source_id!r} is already registered"
            )
        self._grant_sources[source_id] = source

    # --- tool surface ---------------------------------------------------------------------

    def tool_membership(self) -> ToolMembership:
        """The name-level view of membership: every tool name that is not a catalog member."""
        return membership_of(self._state.checkpoint.tool_state)

    def tool_state(self) -> ToolState:
        """The session's tool state as last synced with the sources (edit it, then hand it
        to :meth:`apply_tool_state` at the same generation)."""
        return self._registry.export_state()

    def tool_catalog(self) -> list[dict[str, Any]]:
        """Every callable tool as ``{id, name, description, parameters}``: the registry's
        members, less what plugins filter out (plan mode, authority hiding)."""
        visible = self._served_tools()
        for plugin in self._plugins:
            visible = plugin.filter_tools(visible)
        return [e for e in self._registry.project_catalog() if e["name"] in visible]

    def _served_tools(self) -> dict[str, Tool]:
        """The registry's members less plugin tools their plugin does not advertise now."""
        tools = self._registry.member_tools()
        bound = self._registry.member_sources()
        dormant: set[str] = set()
        for source_id, source in self._plugin_sources.items():
            live = source.advertising()
            dormant.update(n for n, s in bound.items() if s == source_id and n not in live)
        return {n: t for n, t in tools.items() if n not in dormant} if dormant else tools

    def add_tool_source(self, source: ToolSourceLike) -> str:
        """Serve more tools in this session (a host-added provider); returns its ``live:{n}``
        source id. Live wiring: the tools are advertised from the next turn and the state
        change is committed with the next commit; register again after reopen, or its tools
        come back as orphans."""
        self._check_open()
        source_id = self._registry.add_live_source(source)
        self._note_tool_change()
        return source_id

    def remove_tool_source(self, source_id: str) -> int:
        """Stop serving a source's tools (unknown ids are ``unknown_tool_source``); returns the
        tool-state generation."""
        self._check_open()
        generation = self._registry.remove_source(source_id)
        self._note_tool_change()
        return generation

    async def set_tool_membership(self, names: str | Iterable[str], present: bool) -> int:
        """Show (``present``) or hide tools by name, committed under the lease.

        A hidden tool is left out of the model's catalog and a call to it is
        ``tool_unavailable``. Membership belongs to the tool's id, so it survives reopen,
        cold rebuilds and the source going away and coming back; a name no source serves yet
        is hidden by policy, so the tool is born hidden when it appears. Returns the tool-state
        generation (a no-op leaves it and commits nothing).
        """
        wanted = (names,) if isinstance(names, str) else tuple(names)
        return await self._change_tools(lambda registry: registry.set_membership(wanted, present))

    async def apply_tool_state(self, state: ToolState) -> int:
        """Replace the tool state with ``state`` (exported by :meth:`tool_state`, edited) and
        commit it. Generation-fenced: a state exported before any other change is
        ``tool_state_generation_mismatch``. Returns the new generation."""
        if not isinstance(state, ToolState):
            raise TypeError(f"apply_tool_state needs a ToolState, not {type(state).__name__}")
        return await self._change_tools(lambda registry: registry.apply_state(state))

    async def refresh_tools(self) -> ToolState:
        """Re-read every tool source (new tools, refreshed manifests, orphans rebinding or
        appearing) and commit the state only if it differs from the committed one."""
        await self._change_tools(None)
        return self._registry.export_state()

    def _sync_tools(self) -> None:
        """Bring the registry and the working checkpoint's ``tool_state`` together.

        A checkpoint the registry has not seen (the first open, another writer's commit) is
        restored over the live sources; otherwise the sources are re-read. A changed surface
        lands in the working checkpoint, so the next commit persists it.
        """
        stored = self._state.checkpoint.tool_state
        synced = self._tool_state_synced
        if synced is None or (stored is not synced and stored != synced):
            if synced is not None:  # reloaded from the store
                self._tool_state_persisted = stored
            snapshot, hidden = decode_tool_state(stored)
            self._registry.restore_state(snapshot, hidden=hidden, policy=denied_tools(stored))
        else:
            before = self._registry.generation
            if self._registry.refresh_sources() == before:
                return  # nothing changed: the working checkpoint already holds the state
        self._note_tool_change()

    def _note_tool_change(self) -> None:
        registry = self._registry
        encoded = encode_tool_state(registry.export_state(), registry.hidden, registry.policy)
        if encoded != self._state.checkpoint.tool_state:
            self._state.checkpoint = self._state.with_checkpoint(tool_state=encoded)
        self._tool_state_synced = self._state.checkpoint.tool_state

    async def _change_tools(self, change: Callable[[ToolRegistry], int] | None) -> int:
        """Apply ``change`` to the synced registry under the lease; commit the tool state when
        it differs from the committed one."""
        self._check_open()
        async with self._lock:
            guard = await self._acquire()
            error: BaseException | None = None
            try:
                await self._ensure_fresh(guard)
                self._sync_tools()
                generation = self._registry.generation
                if change is not None:
                    generation = change(self._registry)
                    self._note_tool_change()
                state = self._state
                store = self._cfg.store
                if store is not None and guard is not None:
                    if state.checkpoint.tool_state == self._tool_state_persisted:
                        return generation
                    result = await self._store_call(
                        store.commit(
                            state.commit_delta(
                                GraphUnchanged(leaf_node_id=state.graph.leaf_node_id), guard.fence
                            )
                        )
                    )
                    state.head_revision = result.head_revision
                    state.lease_generation = guard.generation
                    self._tool_state_persisted = state.checkpoint.tool_state
                return generation
            except BaseException as err:
                error = err
                raise
            finally:
                await self._settle(guard, error)

    async def prune_off_path(self, older_than_ms: int) -> int:
        """Retention lever: hide graph nodes that are off the active path and older than the
        cutoff (``vacuum()`` then deletes them). The active path is never touched. Returns how
        many nodes were tombstoned."""
        store = self._require_store("pruning history")
        async with self._lock:
            guard = await self._acquire()
            error: BaseException | None = None
            try:
                await self._ensure_fresh(guard)
                persisted = await self._store_call(store.load_session(self.session_id))
                if persisted is None:
                    return 0
                state = SessionState.from_persisted(persisted)
                on_path = {n.node_id for n in state.graph.active_path()}
                doomed = [
                    n.node_id
                    for n in persisted.nodes
                    if n.node_id not in on_path and n.timestamp_ms < older_than_ms
                ]
                if doomed:
                    await self._store_call(store.tombstone_nodes(self.session_id, doomed))
                return len(doomed)
            except BaseException as err:
                error = err
                raise
            finally:
                await self._settle(guard, error)

    async def park(self) -> ParkedSession:
        """Drop this handle's runtime state; reopen later with ``core.resume(parked)``."""
        self._require_store("parking a session")
        await self._quiesce_for_close()
        self._closed = True
        return ParkedSession(self.session_id)

    async def close(self) -> None:
        """Close this handle (committed state stays in the store). Background
        ``turn_persisted`` runs still going are cancelled: call :meth:`wait_maintenance` first
        to let them finish."""
        await self._quiesce_for_close()
        self._closed = True

    def __repr__(self) -> str:
        return f"LashSession({self.session_id!r}, revision={self._state.head_revision})"


async def fork_session_state(
    config: CoreConfig,
    source_session_id: str,
    session_id: str,
    *,
    hidden_tools: Iterable[str] = (),
    owner: LeaseOwner,
) -> None:
    """Commit a new session ``session_id`` that starts where ``source_session_id`` stands:
    its active path, agent frames, checkpoint and tool state (curation included), with
    ``hidden_tools`` added to the fork's access policy (never executable; showing them is
    ``tool_hidden_by_policy``).

    The child opens over its own live sources, so tools that appeared since the parent's last
    commit are discovered, curated ids stay curated and hidden names stay denied.
    Attachments are not copied: the child cannot read blobs only the parent references.
    """
    store = config.store
    if store is None:
        raise EmbedError("missing_session_store", "forking a session needs a session store")
    require_id(source_session_id, "session id")
    require_id(session_id, "session id")
    try:
        source = await store.load_session(source_session_id, active_path_only=True)
        if source is None:
            raise EmbedError("session_not_found", f"no session {source_session_id!r} to fork")
        if await store.load_session(session_id, active_path_only=True) is not None:
            raise EmbedError("session_exists", f"session {session_id!r} already exists")
        parent_initial = initial_frame_id(source_session_id)
        child_initial = initial_frame_id(session_id)

        def frame(frame_id: str | None) -> str | None:
            return child_initial if frame_id == parent_initial else frame_id

        nodes = tuple(
            msgspec.structs.replace(n, agent_frame_id=frame(n.agent_frame_id)) for n in source.nodes
        )
        frames = tuple(
            msgspec.structs.replace(
                f,
                frame_id=frame(f.frame_id),
                session_id=session_id,
                previous_frame_id=frame(f.previous_frame_id),
            )
            for f in source.agent_frames
        )
        tools, hidden = decode_tool_state(source.checkpoint.tool_state)
        denied = denied_tools(source.checkpoint.tool_state) | frozenset(hidden_tools)
        checkpoint = msgspec.structs.replace(
            source.checkpoint,
            tool_state=encode_tool_state(tools, hidden, denied),
            execution_state={},
        )
        timings: LeaseTimings = config.lease_timings
        lease = await acquire_lease(store, session_id, owner, timings.ttl_ms)
        if lease is None:
            raise LashRuntimeError(
                RuntimeErrorCode.SESSION_EXECUTION_BUSY, f"session {session_id} is busy"
            )
        await store.commit(
            RuntimeCommit(
                session_id=session_id,
                graph=GraphAppend(nodes=nodes, leaf_node_id=source.leaf_node_id),
                checkpoint=checkpoint,
                config=source.config,
                expected_head_revision=0,
                lease=lease.fence(),
                release_lease=True,
                agent_frames=frames,
                current_agent_frame_id=frame(source.current_agent_frame_id),
            )
        )
        if await store.load_session_meta(session_id) is None:
            await store.save_session_meta(
                SessionMeta(
                    session_id=session_id,
                    created_at_ms=config.clock.now_ms(),
                    model=config.model.id,
                    name=session_id,
                    parent_session_id=source_session_id,
                )
            )
    except StoreError as err:
        raise err.to_runtime_error() from err
